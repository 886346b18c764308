/* bench-start.c: where the time of a fast start goes, and a spare
 *
 * SPDX-License-Identifier: MIT
 *
 * One minimal machine at a time, started from its saved boot with its
 * memory template (QleanMachineConfig:memory-template) and without it
 * (the old fast start, whole RAM in the stream), the two alternating in
 * the same run: spawn, then the first `true`. The library's steps are
 * read off its own log: the bench's log writer stamps every debug line
 * (QLEAN_DEBUG_ARGV's command line just before QEMU is spawned, the
 * "qlean-traffic" domain's copy of every QMP and agent line, the boot
 * stages) with the host's monotonic clock and the CPU time QEMU has
 * used so far (the sum of its threads' schedstat run times).
 *
 * Then, below the public API, QEMU alone: the command line of the last
 * template start, run by hand with the same descriptors, until its QMP
 * greeting (with and without -kernel/-initrd), and the prototype of a
 * pre-started spare: a QEMU already running with that command line,
 * paused with -incoming defer, its RAM mapped from the template, whose
 * "start" is migrate-incoming of the small device state, cont, a fix
 * of the guest's identity and the first `true`, all on the qlean-guest
 * channel as the library does; and the same spare prepared further
 * ahead (state loaded; continued; continued and warmed by running the
 * identity fix and `true` once, since TCG translates the guest's code
 * afresh in every QEMU).
 */

#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include <gio/gio.h>

#include <qlean/qlean.h>

#include "bench-common.h"
#include "qlean-guest-channel-private.h"
#include "qlean-machine-object-private.h"
#include "qlean-worker-private.h"

static int opt_runs = 10;
static int opt_memory = 0;
static gboolean opt_verbose = FALSE;
static gboolean opt_spares_only = FALSE;

static const GOptionEntry entries[] = {
  { "runs", 'n', 0, G_OPTION_ARG_INT, &opt_runs, "Starts per path; medians are shown (default 10)", "N" },
  { "memory", 'm', 0, G_OPTION_ARG_INT, &opt_memory, "Guest memory in MiB (default: the image's)", "MIB" },
  { "verbose", 'v', 0, G_OPTION_ARG_NONE, &opt_verbose, "Print each start's stamped log", NULL },
  { "spares-only", 's', 0, G_OPTION_ARG_NONE, &opt_spares_only,
    "Only the library's warmed spares against a start from the template", NULL },
  { NULL }
};

/* QEMU's CPU time */

/* The CPU time of @pid's threads so far, in seconds: the sum of their
 * schedstat run times (nanoseconds, unlike /proc/PID/stat's ticks of
 * 10 ms). Threads that have exited are missing: QEMU's that matter
 * (main loop, vCPU, RCU) live as long as it does. */
static double
qemu_cpu (GPid pid)
{
  g_autofree char *dir_path = g_strdup_printf ("/proc/%d/task", (int) pid);
  g_autoptr(GDir) dir = NULL;
  const char *tid;
  guint64 ns = 0;

  if (pid <= 0 || (dir = g_dir_open (dir_path, 0, NULL)) == NULL)
    return 0;
  while ((tid = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename (dir_path, tid, "schedstat", NULL);
      g_autofree char *text = NULL;

      if (g_file_get_contents (path, &text, NULL, NULL))
        ns += g_ascii_strtoull (text, NULL, 10);
    }
  return ns / 1e9;
}

/* The QEMU this process started last (the only one alive at a time). */
static GPid
find_qemu_child (void)
{
  g_autoptr(GArray) pids = bench_qemu_children ();
  GPid found = 0;

  for (guint i = 0; i < pids->len; i++)
    found = MAX (found, g_array_index (pids, GPid, i));
  return found;
}

/* The stamped log */

typedef struct
{
  double  t;        /* bench_now() */
  double  cpu;      /* QEMU's CPU time then, seconds */
  double  faults;   /* QEMU's minor page faults then */
  char   *text;
} Stamp;

static GMutex log_lock;
static GArray *stamps;          /* Stamp, of the start being measured */
static GPid logged_pid;
static char *last_argv;         /* QEMU's command line, last start's */

static void
stamp_clear (gpointer data)
{
  g_free (((Stamp *) data)->text);
}

static GLogWriterOutput
stamp_writer (GLogLevelFlags   level,
              const GLogField *fields,
              gsize            n_fields,
              gpointer         user_data)
{
  const char *message = bench_log_message (level, fields, n_fields);
  Stamp stamp = { bench_now (), 0, 0, NULL };

  if (message == NULL)
    return G_LOG_WRITER_HANDLED;

  g_mutex_lock (&log_lock);
  if (bench_log_is_qemu_argv (message))
    {
      /* QLEAN_DEBUG_ARGV: QEMU is about to be spawned. */
      const char *argv_start = strstr (message, ": ");

      g_free (last_argv);
      last_argv = g_strdup (argv_start ? argv_start + 2 : message);
      logged_pid = 0;
      stamp.text = g_strdup ("spawn QEMU");
    }
  else
    {
      if (logged_pid == 0)
        logged_pid = find_qemu_child ();
      stamp.cpu = qemu_cpu (logged_pid);
      stamp.faults = bench_proc_minor_faults (logged_pid);
      stamp.text = g_strdup (message);
    }
  if (stamps != NULL)
    g_array_append_val (stamps, stamp);
  else
    g_free (stamp.text);
  g_mutex_unlock (&log_lock);

  return G_LOG_WRITER_HANDLED;
}

/* Steps of a library start */

enum
{
  STEP_SPAWN,           /* QEMU spawned */
  STEP_GREETING,        /* QMP greeting read */
  STEP_INCOMING,        /* migrate-incoming sent */
  STEP_LOADED,          /* query-migrate said completed */
  STEP_CONT,            /* cont answered */
  STEP_HELLO,           /* qlean-guest answered HELLO */
  STEP_AGENT,           /* the agent answered its sync */
  STEP_TRANSPORT,       /* transport decided (qlean-guest's HELLO or grace) */
  STEP_IDENTITY,        /* identity stage begins */
  STEP_READY,           /* spawn returned */
  STEP_EXEC,            /* the first `true` returned */
  N_STEPS
};

static const char *step_names[N_STEPS] = {
  "QEMU spawned",
  "QMP greeting",
  "migrate-incoming sent",
  "load completed (query-migrate)",
  "cont answered",
  "qlean-guest HELLO answered",
  "agent sync answered",
  "transport decided",
  "identity stage begins",
  "ready (spawn returned)",
  "first `true` returned",
};

typedef struct
{
  double t[N_STEPS];    /* seconds since spawn was called; -1: not seen */
  double cpu[N_STEPS];  /* QEMU's CPU time then */
  double faults_cont;   /* QEMU's minor page faults when cont answered */
  double faults_ready;  /* ... when ready */
  double faults_exec;   /* ... and after the first `true` */
} Timeline;

/* The first stamp at or after @from whose text holds all of @needles. */
static const Stamp *
find_stamp (GArray      *log,
            guint       *from,
            const char  *needle,
            const char  *needle2)
{
  for (guint i = *from; i < log->len; i++)
    {
      const Stamp *s = &g_array_index (log, Stamp, i);

      if (strstr (s->text, needle) != NULL && (needle2 == NULL || strstr (s->text, needle2) != NULL))
        {
          *from = i;
          return s;
        }
    }
  return NULL;
}

static void
timeline_note (Timeline    *line,
               guint        step,
               const Stamp *s,
               double       t0)
{
  line->t[step] = s ? s->t - t0 : -1;
  line->cpu[step] = s ? s->cpu : -1;
}

/* Reads the steps off the log of one start. Commands go out and answers
 * come back in order on each channel, so each answer is the first
 * matching line after its command. */
static void
timeline_read (Timeline *line,
               GArray   *log,
               double    t0)
{
  guint i = 0, j;

  timeline_note (line, STEP_SPAWN, find_stamp (log, &i, "spawn QEMU", NULL), t0);
  j = i;
  timeline_note (line, STEP_GREETING, find_stamp (log, &j, "qmp <-", "\"QMP\""), t0);
  j = i;
  if (find_stamp (log, &j, "qmp ->", "migrate-incoming"))
    {
      timeline_note (line, STEP_INCOMING, &g_array_index (log, Stamp, j), t0);
      timeline_note (line, STEP_LOADED, find_stamp (log, &j, "qmp <-", "\"completed\""), t0);
      if (find_stamp (log, &j, "qmp ->", "\"cont\""))
        {
          const Stamp *cont = find_stamp (log, &j, "qmp <-", "\"return\"");

          timeline_note (line, STEP_CONT, cont, t0);
          line->faults_cont = cont ? cont->faults : 0;
        }
      else
        timeline_note (line, STEP_CONT, NULL, t0);
    }
  else
    for (guint s = STEP_INCOMING; s <= STEP_CONT; s++)
      timeline_note (line, s, NULL, t0);
  j = i;
  timeline_note (line, STEP_HELLO, find_stamp (log, &j, "qlean-guest answered", NULL), t0);
  j = i;
  timeline_note (line, STEP_AGENT, find_stamp (log, &j, "qga <-", "\"return\""), t0);
  j = i;
  timeline_note (line, STEP_TRANSPORT, find_stamp (log, &j, "guest transport", NULL), t0);
  j = i;
  timeline_note (line, STEP_IDENTITY, find_stamp (log, &j, "boot stage identity", NULL), t0);
}

/* One start of @config's machine and its first `true`. */
static void
start_once (QleanImage         *image,
            QleanMachineConfig *config,
            Timeline           *line)
{
  g_autoptr(QleanMachine) machine = qlean_machine_new (image, config);
  g_autoptr(QleanExecResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) log = g_array_new (FALSE, TRUE, sizeof (Stamp));
  GPid pid;
  double t0;

  g_array_set_clear_func (log, stamp_clear);
  g_mutex_lock (&log_lock);
  stamps = log;
  g_mutex_unlock (&log_lock);

  t0 = bench_now ();
  if (!qlean_machine_spawn (machine, NULL, &error))
    g_error ("%s", error->message);
  line->t[STEP_READY] = bench_now () - t0;
  pid = qlean_machine_get_pid (machine);
  line->cpu[STEP_READY] = qemu_cpu (pid);
  line->faults_ready = bench_proc_minor_faults (pid);
  result = qlean_machine_exec (machine, "true", NULL, &error);
  if (result == NULL)
    g_error ("%s", error->message);
  line->t[STEP_EXEC] = bench_now () - t0;
  line->cpu[STEP_EXEC] = qemu_cpu (pid);
  line->faults_exec = bench_proc_minor_faults (pid);

  g_mutex_lock (&log_lock);
  stamps = NULL;
  g_mutex_unlock (&log_lock);
  timeline_read (line, log, t0);

  if (opt_verbose)
    for (guint i = 0; i < log->len; i++)
      {
        const Stamp *s = &g_array_index (log, Stamp, i);

        g_print ("    %8.4f  cpu %6.3f  %.160s\n", s->t - t0, s->cpu, s->text);
      }

  qlean_machine_kill (machine, NULL, NULL);
}


/* QEMU by hand: the last template start's command line */

typedef struct
{
  char              *dir;       /* its sockets, console and pid file */
  GSubprocess       *qemu;
  GPid               pid;
  GIOStream         *qmp;
  GDataInputStream  *qmp_in;
  QleanGuestChannel *channel;
  double             t0;        /* bench_now() at spawn */
} RawQemu;

enum
{
  RAW_FULL,             /* the command line as the library runs it */
  RAW_NO_KERNEL,        /* without -kernel, -initrd and -append */
};

/* @last_argv back into arguments: only -append's value has spaces, and
 * none of its words starts with '-'. */
static GPtrArray *
raw_argv (const char *joined,
          const char *dir,
          int         variant)
{
  g_auto(GStrv) words = g_strsplit (joined, " ", -1);
  GPtrArray *argv = g_ptr_array_new_with_free_func (g_free);

  for (guint i = 0; words[i] != NULL; i++)
    {
      if (g_str_equal (words[i], "-append"))
        {
          g_autoptr(GString) value = g_string_new (words[++i]);

          while (words[i + 1] != NULL && words[i + 1][0] != '-')
            g_string_append_printf (value, " %s", words[++i]);
          if (variant == RAW_NO_KERNEL)
            continue;
          g_ptr_array_add (argv, g_strdup ("-append"));
          g_ptr_array_add (argv, g_string_free (g_steal_pointer (&value), FALSE));
          continue;
        }
      if (variant == RAW_NO_KERNEL && (g_str_equal (words[i], "-kernel") || g_str_equal (words[i], "-initrd")))
        {
          i++;
          continue;
        }
      if (g_str_equal (words[i], "-pidfile"))
        {
          g_ptr_array_add (argv, g_strdup (words[i++]));
          g_ptr_array_add (argv, g_build_filename (dir, "qemu.pid", NULL));
          continue;
        }
      g_ptr_array_add (argv, g_strdup (words[i]));
    }
  g_ptr_array_add (argv, NULL);
  return argv;
}

/* The saved boot the command line maps the RAM of (mem-path=X.ram). */
static char *
raw_state_path (const char *joined)
{
  const char *p = strstr (joined, "mem-path=");
  const char *end;

  if (p == NULL)
    g_error ("the last template start mapped no memory template");
  p += strlen ("mem-path=");
  end = strstr (p, ".ram");
  return g_strndup (p, end - p);
}

static gboolean
raw_new_channel_in_worker (gpointer user_data)
{
  RawQemu *raw = user_data;
  g_autoptr(GError) error = NULL;
  g_autofree char *path = g_build_filename (raw->dir, "data.sock", NULL);
  g_autoptr(GIOStream) stream = qlean_machine_connect_unix (path, &error);

  if (stream == NULL)
    g_error ("%s", error->message);
  raw->channel = qlean_guest_channel_new (stream);
  return G_SOURCE_REMOVE;
}

/* Spawns QEMU with the descriptors the library gives it (QMP, agent and
 * data sockets listening, the console, the saved state) and reads its
 * QMP greeting. */
static void
raw_start (RawQemu    *raw,
           const char *joined,
           int         variant,
           gboolean    channel)
{
  const char *names[] = { "qmp.sock", "qga.sock", "data.sock" };
  const int fds[] = { QLEAN_QMP_FD, QLEAN_QGA_FD, QLEAN_DATA_FD };
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GPtrArray) argv = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *state = raw_state_path (joined);
  g_autofree char *log = NULL;
  g_autofree char *greeting = NULL;

  raw->dir = g_dir_make_tmp ("bench-start-XXXXXX", &error);
  if (raw->dir == NULL)
    g_error ("%s", error->message);
  argv = raw_argv (joined, raw->dir, variant);
  log = g_build_filename (raw->dir, "qemu.log", NULL);
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDERR_MERGE);
  g_subprocess_launcher_set_stdout_file_path (launcher, log);
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autofree char *path = g_build_filename (raw->dir, names[i], NULL);
      g_autoptr(GSocket) listener = qlean_machine_listen_unix (path, &error);

      if (listener == NULL)
        g_error ("%s", error->message);
      g_subprocess_launcher_take_fd (launcher, dup (g_socket_get_fd (listener)), fds[i]);
    }
  g_subprocess_launcher_take_fd (launcher, open ("/dev/null", O_WRONLY | O_CLOEXEC), QLEAN_CONSOLE_FD);
  g_subprocess_launcher_take_fd (launcher, open (state, O_RDONLY | O_CLOEXEC), QLEAN_STATE_FD);

  raw->t0 = bench_now ();
  raw->qemu = g_subprocess_launcher_spawnv (launcher, (const char * const *) argv->pdata, &error);
  if (raw->qemu == NULL)
    g_error ("%s", error->message);
  raw->pid = atoi (g_subprocess_get_identifier (raw->qemu));
  {
    g_autofree char *path = g_build_filename (raw->dir, "qmp.sock", NULL);

    raw->qmp = qlean_machine_connect_unix (path, &error);
    if (raw->qmp == NULL)
      g_error ("%s", error->message);
  }
  raw->qmp_in = g_data_input_stream_new (g_io_stream_get_input_stream (raw->qmp));
  greeting = g_data_input_stream_read_line (raw->qmp_in, NULL, NULL, &error);
  if (greeting == NULL || strstr (greeting, "\"QMP\"") == NULL)
    {
      g_autofree char *text = NULL;

      g_file_get_contents (log, &text, NULL, NULL);
      g_error ("no QMP greeting from QEMU: %s", text ? text : "");
    }
  if (channel)
    qlean_worker_invoke (raw_new_channel_in_worker, raw, NULL);
}

/* Sends @command and reads until its answer; events are skipped, or
 * until a line holding @until when that is not NULL. */
static void
raw_qmp (RawQemu    *raw,
         const char *command,
         const char *until)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *line = g_strconcat (command, "\n", NULL);

  if (!g_output_stream_write_all (g_io_stream_get_output_stream (raw->qmp), line, strlen (line),
                                  NULL, NULL, &error))
    g_error ("%s", error->message);
  for (;;)
    {
      g_autofree char *answer = g_data_input_stream_read_line (raw->qmp_in, NULL, NULL, &error);

      if (answer == NULL)
        g_error ("QMP closed: %s", error ? error->message : "end of stream");
      if (strstr (answer, "\"error\"") != NULL)
        g_error ("QMP %s failed: %s", command, answer);
      if (until != NULL ? strstr (answer, until) != NULL : strstr (answer, "\"return\"") != NULL)
        return;
    }
}

/* The guest's side, on the worker as the library does it: a call
 * handed to the worker, and the bench thread waiting for its end. */
typedef struct
{
  GMutex             lock;
  GCond              cond;
  gboolean           done;
  gboolean           ok;
  QleanGuestChannel *channel;
  GBytes            *request;     /* EXEC's, or NULL for HELLO */
  QleanGuestStream  *stream;
} GuestCall;

static void
guest_call_end (GuestCall *call,
                gboolean   ok)
{
  g_mutex_lock (&call->lock);
  call->ok = ok;
  call->done = TRUE;
  g_cond_signal (&call->cond);
  g_mutex_unlock (&call->lock);
}

static gboolean
raw_close_channel_in_worker (gpointer user_data)
{
  qlean_guest_channel_close (user_data);
  return G_SOURCE_REMOVE;
}

static void
guest_hello_cb (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  guest_call_end (user_data, qlean_guest_channel_hello_finish (QLEAN_GUEST_CHANNEL (source), result, NULL));
}

static void
guest_exec_cb (QleanGuestStream *stream,
               guint8            type,
               guint8            fd,
               GBytes           *payload,
               const GError     *error,
               gpointer          user_data)
{
  GuestCall *call = user_data;

  if (type == QLEAN_GUEST_FRAME_STARTED || type == QLEAN_GUEST_FRAME_DATA ||
      type == QLEAN_GUEST_FRAME_EOF)
    return;
  qlean_guest_stream_close (stream);
  g_clear_pointer (&call->stream, qlean_guest_stream_unref);
  guest_call_end (call, type == QLEAN_GUEST_FRAME_EXIT);
}

static gboolean
guest_call_in_worker (gpointer user_data)
{
  GuestCall *call = user_data;

  if (call->request == NULL)
    qlean_guest_channel_hello_async (call->channel, 10000, NULL, guest_hello_cb, call);
  else
    call->stream = qlean_guest_channel_open_stream (call->channel, QLEAN_GUEST_FRAME_EXEC, call->request,
                                                    guest_exec_cb, call, NULL);
  return G_SOURCE_REMOVE;
}

/* HELLO when @argv is NULL, else runs @argv in the guest to its end. */
static void
guest_call (QleanGuestChannel  *channel,
            const char * const *argv)
{
  GuestCall call = { 0 };

  call.channel = channel;
  if (argv != NULL)
    {
      g_autoptr(QleanGuestTlv) tlv = qlean_guest_tlv_new ();

      for (guint i = 0; argv[i] != NULL; i++)
        qlean_guest_tlv_add_string (tlv, QLEAN_GUEST_TAG_ARG, argv[i]);
      qlean_guest_tlv_add_u32 (tlv, QLEAN_GUEST_TAG_FLAGS, 0);
      call.request = qlean_guest_tlv_free_to_bytes (g_steal_pointer (&tlv));
    }
  g_mutex_init (&call.lock);
  g_cond_init (&call.cond);
  qlean_worker_invoke (guest_call_in_worker, &call, NULL);
  g_mutex_lock (&call.lock);
  while (!call.done)
    g_cond_wait (&call.cond, &call.lock);
  g_mutex_unlock (&call.lock);
  if (!call.ok)
    g_error ("%s in the spare's guest failed", argv ? argv[0] : "HELLO");
  g_clear_pointer (&call.request, g_bytes_unref);
  g_mutex_clear (&call.lock);
  g_cond_clear (&call.cond);
}

/* What the library's identity stage does in the guest, in short: name,
 * machine-id, random seed, all shell builtins. */
static const char * const identity_argv[] = {
  "/bin/sh", "-c",
  "printf %s \"$1\" > /proc/sys/kernel/hostname\n"
  "if [ -s /etc/machine-id ]; then printf '%s\\n' \"$2\" > /etc/machine-id; fi\n"
  "printf '\\001\\002\\003\\004' > /dev/urandom\n",
  "sh", "spare", "0123456789abcdef0123456789abcdef", NULL
};
static const char * const true_argv[] = { "/bin/sh", "-c", "true", NULL };

static void
raw_stop (RawQemu *raw)
{
  if (raw->channel != NULL)
    qlean_worker_invoke (raw_close_channel_in_worker, raw->channel, g_object_unref);
  g_subprocess_force_exit (raw->qemu);
  g_subprocess_wait (raw->qemu, NULL, NULL);
  g_clear_object (&raw->qemu);
  g_clear_object (&raw->qmp_in);
  g_clear_object (&raw->qmp);
  {
    g_autoptr(GDir) dir = g_dir_open (raw->dir, 0, NULL);
    const char *name;

    while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
      {
        g_autofree char *path = g_build_filename (raw->dir, name, NULL);

        g_unlink (path);
      }
    g_rmdir (raw->dir);
  }
  g_clear_pointer (&raw->dir, g_free);
}

/* Median of step @step over @lines (values < 0, steps not seen, left out). */
static double
median_of (GArray  *lines,
           guint    step,
           gboolean cpu)
{
  g_autoptr(GArray) values = g_array_new (FALSE, FALSE, sizeof (double));

  for (guint i = 0; i < lines->len; i++)
    {
      const Timeline *line = &g_array_index (lines, Timeline, i);
      double v = cpu ? line->cpu[step] : line->t[step];

      if (line->t[step] >= 0)
        g_array_append_val (values, v);
    }
  return values->len ? bench_percentile (values, 0.5) : -1;
}

static void
print_timelines (GArray *old,
                 GArray *template)
{
  g_print ("\n%-34s  %21s  %21s\n", "step (median, s since spawn call)", "old: at / QEMU CPU",
           "template: at / QEMU CPU");
  for (guint s = 0; s < N_STEPS; s++)
    {
      double ot = median_of (old, s, FALSE), oc = median_of (old, s, TRUE);
      double tt = median_of (template, s, FALSE), tc = median_of (template, s, TRUE);

      g_print ("%-34s  %9.3f / %9.3f  %9.3f / %9.3f\n", step_names[s], ot, oc, tt, tc);
    }
}

/* QEMU alone: spawn until its QMP greeting, @n times. */
static void
measure_qemu_alone (const char *joined,
                    int         variant,
                    int         n)
{
  g_autoptr(GArray) wall = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GArray) cpu = g_array_new (FALSE, FALSE, sizeof (double));

  for (int i = 0; i < n; i++)
    {
      RawQemu raw = { 0 };
      double t, c;

      raw_start (&raw, joined, variant, FALSE);
      t = bench_now () - raw.t0;
      c = qemu_cpu (raw.pid);
      g_array_append_val (wall, t);
      g_array_append_val (cpu, c);
      raw_stop (&raw);
    }
  g_print ("%-46s  %9.3f  %9.3f\n",
           variant == RAW_FULL ? "QEMU exec -> QMP greeting, same argv" :
                                 "... without -kernel/-initrd/-append",
           bench_percentile (wall, 0.5), bench_percentile (cpu, 0.5));
}

enum
{
  SPARE_PAUSED,         /* -incoming defer, nothing loaded yet */
  SPARE_LOADED,         /* device state loaded, not continued */
  SPARE_RUNNING,        /* continued, qlean-guest answered, idle */
  SPARE_WARM,           /* ... and ran the identity fix and `true` once */
  N_SPARES
};

enum
{
  SP_LOADED,
  SP_CONT,
  SP_HELLO,
  SP_IDENTITY,
  SP_EXEC,
  SP_CPU_START,         /* QEMU CPU from "start" to the first exec */
  SP_CPU_TOTAL,         /* ... and what the spare used before */
  SP_PREP,              /* wall time to make the spare */
  N_SP
};

/* A spare made ready to level @level, then started: the times of each
 * step from "start", medians of @n. */
static void
measure_spare (const char *joined,
               int         level,
               int         n)
{
  static const char *names[N_SPARES] = {
    "spare paused (-incoming defer)", "spare loaded, not continued", "spare running, idle",
    "spare running, warmed",
  };
  GArray *v[N_SP];

  for (guint k = 0; k < N_SP; k++)
    v[k] = g_array_new (FALSE, FALSE, sizeof (double));
  for (int i = 0; i < n; i++)
    {
      RawQemu raw = { 0 };
      double r[N_SP] = { 0 }, t0, idle_cpu;

      raw_start (&raw, joined, RAW_FULL, TRUE);
      raw_qmp (&raw, "{\"execute\":\"qmp_capabilities\"}", NULL);
      raw_qmp (&raw, "{\"execute\":\"migrate-set-capabilities\",\"arguments\":{\"capabilities\":["
                     "{\"capability\":\"x-ignore-shared\",\"state\":true},"
                     "{\"capability\":\"events\",\"state\":true}]}}", NULL);
      if (level >= SPARE_LOADED)
        raw_qmp (&raw, "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"fd:6\"}}", "\"completed\"");
      if (level >= SPARE_RUNNING)
        {
          raw_qmp (&raw, "{\"execute\":\"cont\"}", NULL);
          guest_call (raw.channel, NULL);
        }
      /* TCG translates the guest's code afresh in each QEMU: a spare
       * that ran the same commands once has them translated. */
      if (level >= SPARE_WARM)
        {
          guest_call (raw.channel, identity_argv);
          guest_call (raw.channel, true_argv);
        }
      r[SP_PREP] = bench_now () - raw.t0;
      /* A spare waits a while before it is taken. */
      g_usleep (200 * 1000);
      idle_cpu = qemu_cpu (raw.pid);

      t0 = bench_now ();
      if (level < SPARE_LOADED)
        raw_qmp (&raw, "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"fd:6\"}}", "\"completed\"");
      r[SP_LOADED] = bench_now () - t0;
      if (level < SPARE_RUNNING)
        {
          raw_qmp (&raw, "{\"execute\":\"cont\"}", NULL);
          r[SP_CONT] = bench_now () - t0;
          guest_call (raw.channel, NULL);
        }
      else
        r[SP_CONT] = r[SP_LOADED];
      r[SP_HELLO] = bench_now () - t0;
      guest_call (raw.channel, identity_argv);
      r[SP_IDENTITY] = bench_now () - t0;
      guest_call (raw.channel, true_argv);
      r[SP_EXEC] = bench_now () - t0;
      r[SP_CPU_TOTAL] = qemu_cpu (raw.pid);
      r[SP_CPU_START] = r[SP_CPU_TOTAL] - idle_cpu;
      raw_stop (&raw);
      for (guint k = 0; k < N_SP; k++)
        g_array_append_val (v[k], r[k]);
    }

  g_print ("%-32s  %7.3f  %7.3f  %7.3f  %7.3f  %7.3f  %9.3f  %9.3f  %7.3f\n", names[level],
           bench_percentile (v[SP_LOADED], 0.5), bench_percentile (v[SP_CONT], 0.5),
           bench_percentile (v[SP_HELLO], 0.5), bench_percentile (v[SP_IDENTITY], 0.5),
           bench_percentile (v[SP_EXEC], 0.5), bench_percentile (v[SP_CPU_START], 0.5),
           bench_percentile (v[SP_CPU_TOTAL], 0.5), bench_percentile (v[SP_PREP], 0.5));
  for (guint k = 0; k < N_SP; k++)
    g_array_unref (v[k]);
}

/* The library's warmed spares (QleanMachineConfig:spares) against a
 * start from the template, alternating, @n of each: start -> ready and
 * -> first `true`, and QEMU's CPU from "start" to the first `true` and
 * in all (the spare's own start included, paid ahead). The spare is
 * made ready before each taken start (not timed) and idles 200 ms, as
 * one waiting for its machine would; the start that takes it starts
 * the next spare behind it, which competes with the first `true`. */
static void
measure_library_spares (QleanImage         *image,
                        QleanMachineConfig *config,
                        int                 n)
{
  g_autoptr(QleanMachineConfig) spares = qlean_machine_config_copy (config);
  GArray *v[2][4];
  const char *names[2] = { "template start", "library spare taken" };

  qlean_machine_config_set_memory_template (spares, TRUE);
  qlean_machine_config_set_spares (spares, 1);
  for (guint p = 0; p < 2; p++)
    for (guint k = 0; k < 4; k++)
      v[p][k] = g_array_new (FALSE, FALSE, sizeof (double));

  for (int i = 0; i < n; i++)
    for (guint p = 0; p < 2; p++)
      {
        g_autoptr(QleanMachineConfig) plain = qlean_machine_config_copy (spares);
        g_autoptr(QleanMachine) machine = NULL;
        g_autoptr(QleanExecResult) result = NULL;
        g_autoptr(GError) error = NULL;
        double r[4], t0, cpu0 = 0;
        GPid spare = 0, pid;

        qlean_machine_config_set_spares (plain, 0);
        if (p == 1)
          {
            if (!qlean_machine_prepare_spares (image, spares, NULL, &error))
              g_error ("%s", error->message);
            g_usleep (200 * 1000);
            spare = find_qemu_child ();
            cpu0 = qemu_cpu (spare);
          }
        machine = qlean_machine_new (image, p == 1 ? spares : plain);
        t0 = bench_now ();
        if (!qlean_machine_spawn (machine, NULL, &error))
          g_error ("%s", error->message);
        r[0] = bench_now () - t0;
        result = qlean_machine_exec (machine, "true", NULL, &error);
        if (result == NULL)
          g_error ("%s", error->message);
        r[1] = bench_now () - t0;
        pid = qlean_machine_get_pid (machine);
        if (p == 1 && pid != spare)
          g_error ("the start did not take the spare (QEMU %d, the spare's %d)", (int) pid,
                   (int) spare);
        r[3] = qemu_cpu (pid);
        r[2] = r[3] - cpu0;
        qlean_machine_kill (machine, NULL, NULL);
        for (guint k = 0; k < 4; k++)
          g_array_append_val (v[p][k], r[k]);
        g_print ("  run %d %-20s ready %.3f  first true %.3f  QEMU CPU at start %.3f, in all %.3f\n",
                 i, names[p], r[0], r[1], r[2], r[3]);
      }
  qlean_machine_stop_spares ();

  g_print ("\n%-24s  %9s  %11s  %13s  %11s\n", "median of each", "ready (s)", "first true",
           "CPU at start", "CPU in all");
  for (guint p = 0; p < 2; p++)
    g_print ("%-24s  %9.3f  %11.3f  %13.3f  %11.3f\n", names[p],
             bench_percentile (v[p][0], 0.5), bench_percentile (v[p][1], 0.5),
             bench_percentile (v[p][2], 0.5), bench_percentile (v[p][3], 0.5));
  g_print ("start -> first true: template / spare = %.1fx\n",
           bench_percentile (v[0][1], 0.5) / bench_percentile (v[1][1], 0.5));
  for (guint p = 0; p < 2; p++)
    for (guint k = 0; k < 4; k++)
      g_array_unref (v[p][k]);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GOptionContext) context = g_option_context_new ("- where a fast start's time goes");
  g_autoptr(QleanImage) image = qlean_image_new_minimal ();
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) old = g_array_new (FALSE, TRUE, sizeof (Timeline));
  g_autoptr(GArray) template = g_array_new (FALSE, TRUE, sizeof (Timeline));
  g_autofree char *loadavg = NULL;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    g_error ("%s", error->message);

  if (opt_memory > 0)
    qlean_machine_config_set_memory_mib (config, opt_memory);

  /* Every debug line, the traffic's included, comes to the writer. */
  g_setenv ("G_MESSAGES_DEBUG", "all", TRUE);
  g_setenv ("QLEAN_DEBUG_ARGV", "1", TRUE);
  g_log_set_writer_func (stamp_writer, NULL, NULL);

  if (!qlean_image_prepare (image, NULL, &error))
    g_error ("%s", error->message);

  /* Each path's saved boot exists before the first measured start. */
  for (guint t = 0; t < 2; t++)
    {
      Timeline warm = { 0 };

      qlean_machine_config_set_memory_template (config, t == 1);
      start_once (image, config, &warm);
    }

  g_file_get_contents ("/proc/loadavg", &loadavg, NULL, NULL);
  if (opt_spares_only)
    {
      g_print ("warmed spares, %d starts per path alternating, load average before: %s", opt_runs,
               loadavg ? loadavg : "?\n");
      measure_library_spares (image, config, opt_runs);
      g_clear_pointer (&loadavg, g_free);
      g_file_get_contents ("/proc/loadavg", &loadavg, NULL, NULL);
      g_print ("load average after: %s", loadavg);
      return 0;
    }
  g_print ("fast start of the minimal image, %d starts per path alternating, load average before: %s",
           opt_runs, loadavg ? loadavg : "?\n");
  for (int r = 0; r < opt_runs; r++)
    for (guint t = 0; t < 2; t++)
      {
        Timeline line = { 0 };

        qlean_machine_config_set_memory_template (config, t == 1);
        start_once (image, config, &line);
        g_array_append_val (t ? template : old, line);
        g_print ("  run %d %-8s ready %.3f  first true %.3f  QEMU CPU %.3f  "
                 "minor faults at cont / ready / first true %.0f / %.0f / %.0f\n",
                 r, t ? "template" : "old", line.t[STEP_READY], line.t[STEP_EXEC],
                 line.cpu[STEP_EXEC], line.faults_cont, line.faults_ready, line.faults_exec);
      }
  print_timelines (old, template);

  /* Below the library: the last template start's command line. */
  g_print ("\n%-46s  %9s  %9s\n", "QEMU alone (median)", "wall (s)", "CPU (s)");
  measure_qemu_alone (last_argv, RAW_FULL, opt_runs);
  measure_qemu_alone (last_argv, RAW_NO_KERNEL, opt_runs);
  g_print ("\n%-32s  %7s  %7s  %7s  %7s  %7s  %9s  %9s  %7s\n", "start -> (median, s)", "loaded",
           "cont", "HELLO", "ident.", "true", "CPU start", "CPU total", "prep");
  for (int level = 0; level < N_SPARES; level++)
    measure_spare (last_argv, level, opt_runs);
  g_print ("\nthe library's warmed spares against a start from the template:\n");
  measure_library_spares (image, config, opt_runs);
  g_clear_pointer (&loadavg, g_free);
  g_file_get_contents ("/proc/loadavg", &loadavg, NULL, NULL);
  g_print ("load average after: %s", loadavg);

  return 0;
}
