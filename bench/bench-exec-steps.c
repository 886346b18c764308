/* bench-exec-steps.c: where the time of one `true` round trip goes
 *
 * SPDX-License-Identifier: MIT
 *
 * bench-exec's breakdown, apart from its comparison with SSH because it
 * reaches below the public API: on a machine of its own whose
 * qlean-guest times each EXEC (QLEAN_GUEST_TRACE on the kernel command
 * line reaches init's environment, and so qlean-guest's; see
 * guest/qlean-guest-exec.c), it sends EXEC frames on the machine's
 * channel itself, from the worker thread as the library does, and
 * timestamps each step on the host:
 *
 *   call      the bench thread asks the worker to send the request
 *   queued    the worker has framed it and handed it to the socket
 *   started   STARTED arrived (the guest's vfork() returned)
 *   exit      EXIT arrived
 *   back      the bench thread has the result
 *
 * and reads the guest's own steps (received, spawned, reaped, EXIT
 * queued, EXIT written) from its trace file afterwards. The two clocks
 * are not compared: the guest's steps are differences of its own clock,
 * and what the round trip spends outside both programs (the socket,
 * QEMU, virtio, the guest kernel waking qlean-guest, both ways) is the
 * host's queued -> exit less the guest's received -> written. The same
 * command through qlean_machine_exec() on the same machine gives what
 * the library's layers above the channel add.
 */

#include "config.h"

#include <stdio.h>
#include <string.h>

#include <qlean/qlean.h>

#include "bench-common.h"
#include "bench-exec-steps.h"
#include "qlean-guest-channel-private.h"
#include "qlean-machine-run-private.h"
#include "qlean-worker-private.h"

#define TRACE_PATH "/run/qlean-guest.trace"

enum
{
  HOST_CALL,
  HOST_QUEUED,
  HOST_STARTED,
  HOST_EXIT,
  HOST_BACK,
  N_HOST_STEPS
};

enum
{
  GUEST_RECEIVED,
  GUEST_SPAWNED,
  GUEST_REAPED,
  GUEST_QUEUED,
  GUEST_SENT,
  N_GUEST_STEPS
};

/* One EXEC sent by hand, and when each of its steps happened on the
 * host (seconds, bench_now()). */
typedef struct
{
  GMutex             lock;
  GCond              cond;
  gboolean           done;
  QleanGuestChannel *channel;
  GBytes            *request;
  QleanGuestStream  *stream;
  guint8             end;       /* EXIT, or what ended it otherwise */
  double             t[N_HOST_STEPS];
} RawExec;

/* Worker thread. */
static void
raw_exec_cb (QleanGuestStream *stream,
             guint8            type,
             guint8            fd,
             GBytes           *payload,
             const GError     *error,
             gpointer          user_data)
{
  RawExec *rx = user_data;
  double now = bench_now ();

  if (type == QLEAN_GUEST_FRAME_STARTED)
    {
      rx->t[HOST_STARTED] = now;
      return;
    }
  if (type == QLEAN_GUEST_FRAME_DATA || type == QLEAN_GUEST_FRAME_EOF)
    return;

  rx->t[HOST_EXIT] = now;
  rx->end = type;
  qlean_guest_stream_close (stream);
  g_clear_pointer (&rx->stream, qlean_guest_stream_unref);
  g_mutex_lock (&rx->lock);
  rx->done = TRUE;
  g_cond_signal (&rx->cond);
  g_mutex_unlock (&rx->lock);
}

static gboolean
raw_exec_in_worker (gpointer user_data)
{
  RawExec *rx = user_data;

  rx->stream = qlean_guest_channel_open_stream (rx->channel, QLEAN_GUEST_FRAME_EXEC, rx->request,
                                                raw_exec_cb, rx, NULL);
  rx->t[HOST_QUEUED] = bench_now ();
  return G_SOURCE_REMOVE;
}

/* Runs @argv once through @channel; its host steps go into @t. */
static void
raw_exec (QleanGuestChannel  *channel,
          const char * const *argv,
          double              t[N_HOST_STEPS])
{
  g_autoptr(QleanGuestTlv) tlv = qlean_guest_tlv_new ();
  RawExec rx = { 0 };

  for (guint i = 0; argv[i] != NULL; i++)
    qlean_guest_tlv_add_string (tlv, QLEAN_GUEST_TAG_ARG, argv[i]);
  qlean_guest_tlv_add_u32 (tlv, QLEAN_GUEST_TAG_FLAGS, 0);
  rx.request = qlean_guest_tlv_free_to_bytes (g_steal_pointer (&tlv));
  rx.channel = channel;
  g_mutex_init (&rx.lock);
  g_cond_init (&rx.cond);

  rx.t[HOST_CALL] = bench_now ();
  qlean_worker_invoke (raw_exec_in_worker, &rx, NULL);
  g_mutex_lock (&rx.lock);
  while (!rx.done)
    g_cond_wait (&rx.cond, &rx.lock);
  g_mutex_unlock (&rx.lock);
  rx.t[HOST_BACK] = bench_now ();

  if (rx.end != QLEAN_GUEST_FRAME_EXIT || rx.t[HOST_STARTED] == 0)
    g_error ("EXEC %s ended with frame %u, not STARTED then EXIT", argv[0], rx.end);
  memcpy (t, rx.t, sizeof rx.t);
  g_bytes_unref (rx.request);
  g_mutex_clear (&rx.lock);
  g_cond_clear (&rx.cond);
}

/* The statistics */

typedef struct
{
  const char *what;
  GArray     *ms;    /* one value per round trip */
} Step;

static void
step_add (Step   *step,
          double  ms)
{
  if (step->ms == NULL)
    step->ms = g_array_new (FALSE, FALSE, sizeof (double));
  g_array_append_val (step->ms, ms);
}

static void
step_print (const Step *step)
{
  double mean = 0;

  for (guint i = 0; i < step->ms->len; i++)
    mean += g_array_index (step->ms, double, i) / step->ms->len;
  g_print ("  %-58s %8.3f %8.3f %8.3f\n", step->what, bench_percentile (step->ms, 0.5),
           bench_percentile (step->ms, 0.9), mean);
}

/* The guest's steps of the last @n EXECs before the one that read the
 * trace: one line each, "id received spawned reaped queued sent" in ns. */
static GArray *
guest_steps (QleanMachine *machine,
             guint         n)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanExecResult) result = qlean_machine_exec (machine, "cat " TRACE_PATH, NULL, &error);
  g_autoptr(GArray) rows = g_array_new (FALSE, FALSE, sizeof (gint64) * N_GUEST_STEPS);
  g_auto(GStrv) lines = NULL;
  guint total;

  if (result == NULL || !qlean_exec_result_success (result))
    g_error ("reading the guest's trace failed: %s", error ? error->message : "non-zero exit");
  lines = g_strsplit (qlean_exec_result_get_stdout_text (result), "\n", -1);
  total = g_strv_length (lines);
  /* The text ends with a newline: the last piece is empty. */
  if (total < n + 1)
    g_error ("the guest's trace has %u lines, %u wanted: does its init pass QLEAN_GUEST_TRACE on?",
             total, n);
  for (guint i = total - 1 - n; i < total - 1; i++)
    {
      gint64 row[N_GUEST_STEPS];
      guint id;

      if (sscanf (lines[i], "%u %" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %" G_GINT64_FORMAT
                  " %" G_GINT64_FORMAT " %" G_GINT64_FORMAT, &id, &row[0], &row[1], &row[2],
                  &row[3], &row[4]) != 6)
        g_error ("bad trace line “%s”", lines[i]);
      g_array_append_vals (rows, row, 1);
    }
  return g_steal_pointer (&rows);
}

/* @n round trips of @argv sent by hand, then their table. */
static void
time_raw (QleanMachine       *machine,
          QleanGuestChannel  *channel,
          const char         *title,
          const char * const *argv,
          int                 n)
{
  Step host_queue = { "host: call -> request queued on the socket (worker hop)" };
  Step transit = { "outside both programs: socket, QEMU, virtio, guest wake-up (both ways)" };
  Step spawn = { "guest: EXEC received -> vfork() returned (child exec'd)" };
  Step run = { "guest: vfork() returned -> child reaped" };
  Step reply = { "guest: reaped -> EXIT queued" };
  Step write = { "guest: EXIT queued -> written to the port" };
  Step guest = { "guest: EXEC received -> EXIT written (all)" };
  Step host_back = { "host: EXIT read -> bench thread has it (worker hop)" };
  Step total = { "total: call -> back" };
  g_autoptr(GArray) host = g_array_new (FALSE, FALSE, sizeof (double) * N_HOST_STEPS);
  g_autoptr(GArray) rows = NULL;
  Step *steps[] = { &host_queue, &transit, &spawn, &run, &reply, &write, &guest, &host_back, &total };

  for (int i = 0; i < n; i++)
    {
      double t[N_HOST_STEPS];

      raw_exec (channel, argv, t);
      g_array_append_vals (host, t, 1);
    }
  rows = guest_steps (machine, n);

  for (int i = 0; i < n; i++)
    {
      const double *t = &g_array_index (host, double, i * N_HOST_STEPS);
      const gint64 *g = &g_array_index (rows, gint64, i * N_GUEST_STEPS);
      double guest_ms = (g[GUEST_SENT] - g[GUEST_RECEIVED]) / 1e6;

      step_add (&host_queue, (t[HOST_QUEUED] - t[HOST_CALL]) * 1000);
      step_add (&transit, (t[HOST_EXIT] - t[HOST_QUEUED]) * 1000 - guest_ms);
      step_add (&spawn, (g[GUEST_SPAWNED] - g[GUEST_RECEIVED]) / 1e6);
      step_add (&run, (g[GUEST_REAPED] - g[GUEST_SPAWNED]) / 1e6);
      step_add (&reply, (g[GUEST_QUEUED] - g[GUEST_REAPED]) / 1e6);
      step_add (&write, (g[GUEST_SENT] - g[GUEST_QUEUED]) / 1e6);
      step_add (&guest, guest_ms);
      step_add (&host_back, (t[HOST_BACK] - t[HOST_EXIT]) * 1000);
      step_add (&total, (t[HOST_BACK] - t[HOST_CALL]) * 1000);
    }

  g_print ("\n%s, %d round trips, ms:\n  %-58s %8s %8s %8s\n", title, n, "step", "median", "p90", "mean");
  for (guint i = 0; i < G_N_ELEMENTS (steps); i++)
    {
      step_print (steps[i]);
      g_array_unref (steps[i]->ms);
    }
}

static void
time_library (QleanMachine *machine,
              const char   *command,
              int           n)
{
  Step total = { NULL };
  g_autofree char *what = g_strdup_printf ("qlean_machine_exec (\"%s\"), same machine", command);

  total.what = what;
  for (int i = 0; i < n; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(QleanExecResult) result = NULL;
      double start = bench_now ();

      result = qlean_machine_exec (machine, command, NULL, &error);
      if (result == NULL || !qlean_exec_result_success (result))
        g_error ("exec %s failed: %s", command, error ? error->message : "non-zero exit");
      step_add (&total, (bench_now () - start) * 1000);
    }
  step_print (&total);
  g_array_unref (total.ms);
}

void
bench_exec_steps (QleanImage *image,
                  int         n)
{
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(QleanMachineRun) run = NULL;
  g_autoptr(QleanGuestChannel) channel = NULL;
  g_autoptr(GError) error = NULL;
  const char * const sh_true[] = { "/bin/sh", "-c", "true", NULL };
  const char * const bin_true[] = { "/bin/true", NULL };

  qlean_machine_config_set_cmdline (config, "QLEAN_GUEST_TRACE=" TRACE_PATH);
  machine = qlean_machine_new_with_name ("bench-exec-steps", image, config);
  if (!qlean_machine_spawn (machine, NULL, &error))
    g_error ("%s", error->message);
  run = qlean_machine_ref_run (machine, QLEAN_MACHINE_OP_RUN_COMMAND, FALSE, &error);
  if (run == NULL)
    g_error ("%s", error->message);
  channel = qlean_machine_run_dup_guest_channel (run);
  if (channel == NULL || !qlean_guest_channel_is_ready (channel))
    g_error ("the machine has no qlean-guest channel");

  /* Warm up: the guest's page cache, TCG's translated blocks. */
  for (int i = 0; i < 10; i++)
    {
      double t[N_HOST_STEPS];

      raw_exec (channel, sh_true, t);
      raw_exec (channel, bin_true, t);
    }

  g_print ("\nWhere a round trip of `true` goes (a machine of its own, QLEAN_GUEST_TRACE on)\n");
  time_raw (machine, channel, "EXEC {/bin/sh -c true} sent on the channel by hand", sh_true, n);
  time_raw (machine, channel, "EXEC {/bin/true} sent on the channel by hand", bin_true, n);
  g_print ("\nThe library's layers above the channel (GTask, sync call, launcher, process), ms:\n"
           "  %-58s %8s %8s %8s\n", "call", "median", "p90", "mean");
  time_library (machine, "true", n);
  time_library (machine, "/bin/true", n);

  qlean_machine_kill (machine, NULL, NULL);
}
