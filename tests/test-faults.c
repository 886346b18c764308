/* test-faults.c: machines that fail under us, runners that die, and what
 * they leave behind (real QEMU, TCG, the minimal image)
 *
 * SPDX-License-Identifier: MIT
 *
 * Protocol faults a fake peer can produce (malformed JSON, foreign ids,
 * replies over the size cap, a peer closing mid-reply) are covered by
 * tests/unit/test-qmp-client.c and tests/unit/test-qga-client.c; these
 * are the faults only a real guest and a real QEMU produce.
 */

#include "config.h"

#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <glib/gstdio.h>

#include <qlean/qlean.h>
#include "qlean-run-logs-private.h"
#include "test-common.h"

#define RUNNER_ARG "--qlean-faults-runner"
#define RUNNER_MACHINES 3

static QleanMachine *
boot_machine (void)
{
  g_autoptr(QleanMachine) machine = qlean_machine_new (NULL, NULL);
  g_autoptr(GError) error = NULL;

  qlean_machine_spawn (machine, NULL, &error);
  g_assert_no_error (error);

  return g_steal_pointer (&machine);
}

typedef struct
{
  gboolean         done;
  QleanExecResult *result;
  GError          *error;
  gint64           finished;
} AsyncExec;

static void
async_exec_done_cb (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  AsyncExec *exec = user_data;

  exec->result = qlean_machine_exec_finish (QLEAN_MACHINE (source), result, &exec->error);
  exec->finished = g_get_monotonic_time ();
  exec->done = TRUE;
  g_main_context_wakeup (NULL);
}

static void
async_exec_clear (AsyncExec *exec)
{
  g_clear_object (&exec->result);
  g_clear_error (&exec->error);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (AsyncExec, async_exec_clear)

/* Iterates the default context until @exec completes or @timeout_ms
 * passes; returns whether it completed. */
static gboolean
async_exec_wait (AsyncExec *exec,
                 guint      timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + timeout_ms * G_TIME_SPAN_MILLISECOND;

  while (!exec->done && g_get_monotonic_time () < deadline)
    {
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (2000);
    }

  return exec->done;
}

/* Polls with exec until @command prints something, or gives up. */
static void
wait_for_output (QleanMachine *machine,
                 const char   *command,
                 guint         timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + timeout_ms * G_TIME_SPAN_MILLISECOND;

  for (;;)
    {
      g_autofree char *out = test_run_text (machine, command);

      if (*out != '\0')
        return;
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_usleep (50000);
    }
}

/* QEMU killed with SIGKILL while a command runs: the call fails within
 * a second, as a crash, and the machine says CRASHED. */
static void
test_qemu_killed_during_exec (void)
{
  g_autoptr(QleanMachine) machine = NULL;
  g_auto(AsyncExec) exec = { 0 };
  gint64 killed;
  GPid pid;

  if (!test_have_qemu ())
    return;

  machine = boot_machine ();
  qlean_machine_exec_async (machine, "sleep 30", NULL, async_exec_done_cb, &exec);
  wait_for_output (machine, "pidof sleep || true", 10000);
  g_assert_false (exec.done);

  pid = qlean_machine_get_pid (machine);
  g_assert_cmpint (pid, >, 0);
  killed = g_get_monotonic_time ();
  g_assert_no_errno (kill (pid, SIGKILL));

  g_assert_true (async_exec_wait (&exec, 5000));
  g_test_message ("exec failed %.1f ms after SIGKILL: %s",
                  (exec.finished - killed) / 1000.0, exec.error ? exec.error->message : "(no error)");
  g_assert_null (exec.result);
  g_assert_error (exec.error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_CRASHED);
  g_assert_cmpint (exec.finished - killed, <, G_USEC_PER_SEC);

  /* The state follows QEMU's exit, which the worker sees on its own. */
  while (qlean_machine_get_state (machine) != QLEAN_MACHINE_STATE_CRASHED &&
         g_get_monotonic_time () - killed < G_USEC_PER_SEC)
    g_usleep (5000);
  g_assert_cmpint (qlean_machine_get_state (machine), ==, QLEAN_MACHINE_STATE_CRASHED);
  g_assert_cmpint (qlean_machine_get_pid (machine), ==, 0);
}

/* The agent stops answering (SIGSTOP, sent through qlean-guest): an
 * agent call times out; after SIGCONT the next call resyncs and works. */
static void
test_agent_stopped (void)
{
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(QleanQgaClient) qga = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;
  guint saved_timeout;
  gint64 start, elapsed;

  if (!test_have_qemu ())
    return;

  machine = boot_machine ();
  qga = qlean_machine_dup_qga (machine);
  g_assert_nonnull (qga);
  g_assert_true (qlean_qga_client_ping (qga, NULL, &error));
  g_assert_no_error (error);

  out = test_run_text (machine, "kill -STOP $(cat /run/qemu-ga.pid) && echo stopped");
  g_assert_cmpstr (out, ==, "stopped");

  saved_timeout = qlean_qga_client_get_timeout (qga);
  qlean_qga_client_set_timeout (qga, 1000);
  start = g_get_monotonic_time ();
  g_assert_false (qlean_qga_client_ping (qga, NULL, &error));
  elapsed = g_get_monotonic_time () - start;
  g_test_message ("ping with the agent stopped: %s after %.0f ms", error->message, elapsed / 1000.0);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_assert_cmpint (elapsed, >=, 900 * G_TIME_SPAN_MILLISECOND);
  g_assert_cmpint (elapsed, <, 5 * G_USEC_PER_SEC);
  g_clear_error (&error);

  /* The data channel is unaffected by a stuck agent. */
  g_free (out);
  out = test_run_text (machine, "kill -CONT $(cat /run/qemu-ga.pid) && echo continued");
  g_assert_cmpstr (out, ==, "continued");

  qlean_qga_client_set_timeout (qga, 10000);
  g_assert_true (qlean_qga_client_ping (qga, NULL, &error));
  g_assert_no_error (error);
  /* And the one after, with no resync needed. */
  g_assert_true (qlean_qga_client_ping (qga, NULL, &error));
  g_assert_no_error (error);
  qlean_qga_client_set_timeout (qga, saved_timeout);

  g_assert_true (qlean_machine_shutdown (machine, NULL, &error));
  g_assert_no_error (error);
}

/* Runs `sh -c @script` through the agent alone and waits for its end. */
static void
agent_sh (QleanMachine *machine,
          const char   *script)
{
  g_autoptr(QleanQgaClient) qga = qlean_machine_dup_qga (machine);
  const char *args[] = { "-c", script, NULL };
  g_autoptr(GError) error = NULL;
  gint64 pid;

  pid = qlean_qga_client_exec (qga, "/bin/sh", args, NULL, NULL, FALSE, NULL, &error);
  g_assert_no_error (error);
  for (;;)
    {
      g_autoptr(QleanQgaExecStatus) status = qlean_qga_client_exec_status (qga, pid, NULL, &error);

      g_assert_no_error (error);
      if (status->exited)
        {
          g_assert_cmpint (status->exit_code, ==, 0);
          return;
        }
      g_usleep (10000);
    }
}

/* Asserts that @error is a timeout that took about @timeout_ms. */
static void
assert_timed_out (const char   *what,
                  const GError *error,
                  gint64        start,
                  guint         timeout_ms)
{
  gint64 elapsed = g_get_monotonic_time () - start;

  g_test_message ("%s with qlean-guest stopped: %s after %.0f ms", what,
                  error ? error->message : "(no error)", elapsed / 1000.0);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_assert_cmpint (elapsed, >=, (timeout_ms - 100) * G_TIME_SPAN_MILLISECOND);
  g_assert_cmpint (elapsed, <, (timeout_ms + 4000) * G_TIME_SPAN_MILLISECOND);
}

static gpointer
cancel_later_thread (gpointer user_data)
{
  g_usleep (300000);
  g_cancellable_cancel (user_data);
  return NULL;
}

/* qlean-guest stops answering (SIGSTOP, sent through the agent): file
 * calls and the start of a command time out after the agent client's
 * timeout, a cancelled file call returns at once, and after SIGCONT the
 * next calls work on the same channel. */
static void
test_guest_program_stopped (void)
{
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(QleanQgaClient) qga = NULL;
  g_autoptr(QleanGuestLauncher) launcher = NULL;
  g_autoptr(QleanGuestProcess) process = NULL;
  g_autoptr(GCancellable) cancellable = NULL;
  g_autoptr(GFileInfo) info = NULL;
  g_autoptr(GBytes) contents = NULL;
  g_autoptr(GBytes) data = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GThread) canceller = NULL;
  g_autofree char *pid = NULL;
  g_autofree char *script = NULL;
  g_autofree char *out = NULL;
  const char *argv[] = { "true", NULL };
  guint saved_timeout;
  gint64 start;

  if (!test_have_qemu ())
    return;

  machine = boot_machine ();
  qga = qlean_machine_dup_qga (machine);
  pid = test_run_text (machine, "echo $PPID");
  data = g_bytes_new_static ("kept\n", 5);
  g_assert_true (qlean_machine_write (machine, "/root/kept", data, NULL, &error));
  g_assert_no_error (error);

  script = g_strdup_printf ("kill -STOP %s", pid);
  agent_sh (machine, script);
  saved_timeout = qlean_qga_client_get_timeout (qga);
  qlean_qga_client_set_timeout (qga, 1000);

  start = g_get_monotonic_time ();
  info = qlean_machine_metadata (machine, "/root/kept", NULL, &error);
  g_assert_null (info);
  assert_timed_out ("metadata", error, start, 1000);
  g_clear_error (&error);

  start = g_get_monotonic_time ();
  contents = qlean_machine_read (machine, "/root/kept", NULL, &error);
  g_assert_null (contents);
  assert_timed_out ("read", error, start, 1000);
  g_clear_error (&error);

  start = g_get_monotonic_time ();
  g_assert_false (qlean_machine_write (machine, "/root/lost", data, NULL, &error));
  assert_timed_out ("write", error, start, 1000);
  g_clear_error (&error);

  launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_NONE);
  start = g_get_monotonic_time ();
  process = qlean_guest_launcher_spawnv (launcher, machine, argv, &error);
  g_assert_null (process);
  assert_timed_out ("spawn", error, start, 1000);
  g_clear_error (&error);

  /* Cancelled: back at once, whatever the timeout. */
  qlean_qga_client_set_timeout (qga, 60000);
  cancellable = g_cancellable_new ();
  canceller = g_thread_new ("canceller", cancel_later_thread, cancellable);
  start = g_get_monotonic_time ();
  g_assert_false (qlean_machine_exists (machine, "/root/kept", cancellable, &error));
  g_test_message ("exists, cancelled after 300 ms: %s after %.0f ms", error->message,
                  (g_get_monotonic_time () - start) / 1000.0);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_cmpint (g_get_monotonic_time () - start, <, 5 * G_USEC_PER_SEC);
  g_clear_error (&error);

  g_free (script);
  script = g_strdup_printf ("kill -CONT %s", pid);
  agent_sh (machine, script);
  qlean_qga_client_set_timeout (qga, saved_timeout);

  /* The same channel serves again; the late answers went nowhere. */
  g_clear_object (&info);
  info = qlean_machine_metadata (machine, "/root/kept", NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (g_file_info_get_size (info), ==, 5);
  g_clear_pointer (&contents, g_bytes_unref);
  contents = qlean_machine_read (machine, "/root/kept", NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (contents, data));
  out = test_run_text (machine, "echo $PPID");
  g_assert_cmpstr (out, ==, pid);

  g_assert_true (qlean_machine_shutdown (machine, NULL, &error));
  g_assert_no_error (error);
}

/* Which program runs the commands: qlean-guest, or qemu-ga as the
 * fallback; and which boot of the guest this is. */
static void
exec_origin (QleanMachine  *machine,
             char         **parent,
             char         **boot_id)
{
  g_autofree char *out = test_run_text (machine, "read -r c < /proc/$PPID/comm; "
                                            "read -r b < /proc/sys/kernel/random/boot_id; echo $c $b");
  g_auto(GStrv) fields = g_strsplit (out, " ", 2);

  g_assert_cmpuint (g_strv_length (fields), ==, 2);
  *parent = g_strdup (fields[0]);
  *boot_id = g_strdup (fields[1]);
}

/* After a reset the agent answers again at once (exec falls back to it)
 * and qlean-guest within a bounded wait. Returns the seconds until
 * qlean-guest ran a command. */
static double
wait_for_guest_program (QleanMachine *machine,
                        const char   *boot_before)
{
  g_autoptr(QleanQgaClient) qga = qlean_machine_dup_qga (machine);
  g_autoptr(GError) error = NULL;
  gint64 start = g_get_monotonic_time ();
  gboolean rebooted = FALSE;

  g_assert_true (qlean_qga_client_ping (qga, NULL, &error));
  g_assert_no_error (error);

  for (;;)
    {
      g_autofree char *parent = NULL;
      g_autofree char *boot_id = NULL;

      exec_origin (machine, &parent, &boot_id);
      if (!g_str_equal (boot_id, boot_before))
        rebooted = TRUE;
      if (g_str_equal (parent, "qlean-guest"))
        {
          g_assert_true (rebooted);
          return (g_get_monotonic_time () - start) / (double) G_USEC_PER_SEC;
        }
      g_assert_cmpstr (parent, ==, "qemu-ga");
      g_assert_cmpint (g_get_monotonic_time () - start, <, 30 * G_USEC_PER_SEC);
      g_usleep (100000);
    }
}

/* The guest reboots during a session, from inside (`reboot -f`) and from
 * QMP (system_reset while a command runs): the calls in flight fail, and
 * the agent and qlean-guest are reached again. */
static void
test_guest_reboots (void)
{
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(QleanQmpClient) qmp = NULL;
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *parent = NULL;
  g_auto(AsyncExec) reboot = { 0 };
  g_auto(AsyncExec) sleeper = { 0 };
  g_autofree char *boot_id = NULL;
  double seconds;

  if (!test_have_qemu ())
    return;

  machine = boot_machine ();
  exec_origin (machine, &parent, &boot_id);
  g_assert_cmpstr (parent, ==, "qlean-guest");

  /* From inside: the command that reboots never exits. */
  qlean_machine_exec_async (machine, "reboot -f", NULL, async_exec_done_cb, &reboot);
  g_assert_true (async_exec_wait (&reboot, 20000));
  g_test_message ("reboot -f: %s", reboot.error ? reboot.error->message : "(succeeded)");
  g_assert_null (reboot.result);
  g_assert_nonnull (reboot.error);
  seconds = wait_for_guest_program (machine, boot_id);
  g_test_message ("qlean-guest answered %.2f s after `reboot -f` failed", seconds);
  g_assert_cmpint (qlean_machine_get_state (machine), ==, QLEAN_MACHINE_STATE_RUNNING);

  /* From QMP, in the middle of a command. */
  g_clear_pointer (&parent, g_free);
  g_clear_pointer (&boot_id, g_free);
  exec_origin (machine, &parent, &boot_id);
  qlean_machine_exec_async (machine, "sleep 30", NULL, async_exec_done_cb, &sleeper);
  wait_for_output (machine, "pidof sleep || true", 10000);
  qmp = qlean_machine_dup_qmp (machine);
  reply = qlean_qmp_client_execute (qmp, "system_reset", NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (async_exec_wait (&sleeper, 10000));
  g_test_message ("sleep 30 during system_reset: %s",
                  sleeper.error ? sleeper.error->message : "(succeeded)");
  g_assert_null (sleeper.result);
  g_assert_nonnull (sleeper.error);
  seconds = wait_for_guest_program (machine, boot_id);
  g_test_message ("qlean-guest answered %.2f s after system_reset", seconds);

  g_assert_true (qlean_machine_shutdown (machine, NULL, &error));
  g_assert_no_error (error);
}

/* Run directories and sockets */

static gboolean
connect_as (uid_t       uid,
            const char *path,
            int        *connect_errno)
{
  struct sockaddr_un address = { .sun_family = AF_UNIX };
  int status;
  pid_t child;

  g_assert_cmpuint (strlen (path), <, sizeof address.sun_path);
  strcpy (address.sun_path, path);

  child = fork ();
  g_assert_cmpint (child, >=, 0);
  if (child == 0)
    {
      int fd;

      if (setgroups (0, NULL) != 0 || setgid (uid) != 0 || setuid (uid) != 0)
        _exit (100);
      fd = socket (AF_UNIX, SOCK_STREAM, 0);
      if (fd < 0)
        _exit (101);
      if (connect (fd, (struct sockaddr *) &address, sizeof address) == 0)
        _exit (0);
      _exit (errno < 100 ? errno : 102);
    }

  g_assert_cmpint (waitpid (child, &status, 0), ==, child);
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), <, 100);
  *connect_errno = WEXITSTATUS (status);
  return *connect_errno == 0;
}

static void
test_run_dir_modes (void)
{
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *base = NULL;
  const char *run_dir;
  const char *sockets[] = { "qmp.sock", "qga.sock", "data.sock" };
  struct stat st;

  if (!test_have_qemu ())
    return;

  machine = boot_machine ();
  run_dir = qlean_machine_get_run_dir (machine);
  g_assert_nonnull (run_dir);
  base = g_path_get_dirname (run_dir);

  g_assert_no_errno (lstat (base, &st));
  g_assert_true (S_ISDIR (st.st_mode));
  g_assert_cmpuint (st.st_uid, ==, getuid ());
  g_assert_cmpuint (st.st_mode & 07777, ==, 0700);

  g_assert_no_errno (lstat (run_dir, &st));
  g_assert_true (S_ISDIR (st.st_mode));
  g_assert_cmpuint (st.st_uid, ==, getuid ());
  g_assert_cmpuint (st.st_mode & 07777, ==, 0700);

  for (guint i = 0; i < G_N_ELEMENTS (sockets); i++)
    {
      g_autofree char *path = g_build_filename (run_dir, sockets[i], NULL);
      int connect_errno = 0;

      g_assert_no_errno (lstat (path, &st));
      g_assert_true (S_ISSOCK (st.st_mode));
      g_assert_cmpuint (st.st_uid, ==, getuid ());

      /* As root, really try it as someone else. */
      if (getuid () == 0)
        {
          g_assert_false (connect_as (65534, path, &connect_errno));
          g_assert_cmpint (connect_errno, ==, EACCES);
        }
    }
  if (getuid () != 0)
    g_test_message ("not root: checked modes only, not a connection as another user");

  g_assert_true (qlean_machine_shutdown (machine, NULL, &error));
  g_assert_no_error (error);
}

/* A runner killed with SIGKILL */

/* The runner: holds a pool (its network's switch and NAT plug, and
 * RUNNER_MACHINES machines), says "ready" and waits to be killed. */
static int
runner_main (void)
{
  g_autoptr(QleanPool) pool = qlean_pool_new ();
  g_autoptr(GError) error = NULL;

  /* Never outlive the test, whatever happens to it. */
  prctl (PR_SET_PDEATHSIG, SIGKILL);

  for (guint i = 0; i < RUNNER_MACHINES; i++)
    {
      g_autofree char *name = g_strdup_printf ("runner%u", i);

      if (!qlean_pool_add (pool, name, NULL, NULL, &error))
        break;
    }
  if (error == NULL)
    qlean_pool_spawn_all (pool, NULL, &error);
  if (error != NULL)
    {
      g_printerr ("runner: %s\n", error->message);
      return 1;
    }

  g_print ("ready\n");
  fflush (stdout);
  for (;;)
    pause ();
}

/* Processes whose command line mentions @dir, by program name. */
static GHashTable *
processes_using (const char *dir)
{
  GHashTable *found = g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL, g_free);
  g_autoptr(GDir) proc = g_dir_open ("/proc", 0, NULL);
  const char *name;

  g_assert_nonnull (proc);
  while ((name = g_dir_read_name (proc)) != NULL)
    {
      g_autofree char *path = NULL;
      g_autofree char *cmdline = NULL;
      g_autofree char *program = NULL;
      gsize len;
      gint64 pid = g_ascii_strtoll (name, NULL, 10);

      if (pid <= 0 || pid == getpid ())
        continue;
      path = g_strdup_printf ("/proc/%s/cmdline", name);
      if (!g_file_get_contents (path, &cmdline, &len, NULL) || len == 0)
        continue;
      program = g_path_get_basename (cmdline);
      for (gsize i = 0; i + 1 < len; i++)
        if (cmdline[i] == '\0')
          cmdline[i] = ' ';
      if (strstr (cmdline, dir) != NULL)
        g_hash_table_insert (found, GINT_TO_POINTER ((int) pid), g_steal_pointer (&program));
    }

  return found;
}

static guint
count_named (GHashTable *processes,
             const char *prefix)
{
  GHashTableIter iter;
  gpointer value;
  guint n = 0;

  g_hash_table_iter_init (&iter, processes);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    if (g_str_has_prefix (value, prefix))
      n++;

  return n;
}

static char *
describe_processes (GHashTable *processes)
{
  GString *out = g_string_new (NULL);
  GHashTableIter iter;
  gpointer key, value;

  g_hash_table_iter_init (&iter, processes);
  while (g_hash_table_iter_next (&iter, &key, &value))
    g_string_append_printf (out, "%s%d %s", out->len ? ", " : "", GPOINTER_TO_INT (key),
                            (const char *) value);

  return g_string_free (out, FALSE);
}

static char *
make_test_dir (const char *name)
{
  const char *base = g_getenv ("QLEAN_RUN_DIR");
  g_autofree char *template = NULL;

  g_assert_nonnull (base);
  g_assert_cmpint (g_mkdir_with_parents (base, 0700), ==, 0);
  template = g_strdup_printf ("%s/%s-XXXXXX", base, name);
  g_assert_nonnull (g_mkdtemp_full (template, 0700));

  return g_steal_pointer (&template);
}

static char *
own_start_time (void)
{
  g_autofree char *stat = NULL;
  g_auto(GStrv) fields = NULL;

  g_assert_true (g_file_get_contents ("/proc/self/stat", &stat, NULL, NULL));
  fields = g_strsplit (strrchr (stat, ')') + 2, " ", 0);
  return g_strdup (fields[19]);
}

static void
write_file (const char *dir,
            const char *name,
            const char *contents)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autoptr(GError) error = NULL;

  g_file_set_contents (path, contents, -1, &error);
  g_assert_no_error (error);
}

/* A run directory that looks like a live process's: ours. */
static char *
make_live_run_dir (const char *base)
{
  g_autofree char *path = g_build_filename (base, "alive-XXXXXX", NULL);
  g_autofree char *start = own_start_time ();
  g_autofree char *owner = g_strdup_printf ("%d %s\n", (int) getpid (), start);

  g_assert_nonnull (g_mkdtemp_full (path, 0700));
  write_file (path, "owner", owner);
  write_file (path, "console.log", "");
  return g_steal_pointer (&path);
}

/* A `qlean start` machine entry owned by @pid. */
static char *
make_machine_entry (const char *base,
                    const char *name,
                    GPid        pid)
{
  g_autofree char *machines = g_build_filename (base, "machines", NULL);
  g_autofree char *dir = g_build_filename (machines, name, NULL);
  g_autofree char *state = g_strdup_printf ("{\"name\":\"%s\",\"state\":\"running\",\"owner-pid\":%d,"
                                            "\"qemu-pid\":0,\"image\":\"minimal\",\"started\":0,"
                                            "\"run-dir\":\"\"}", name, (int) pid);

  g_assert_cmpint (g_mkdir_with_parents (dir, 0700), ==, 0);
  write_file (dir, "state.json", state);
  write_file (dir, "owner.log", "");
  return g_steal_pointer (&dir);
}

/* A QEMU that exits at once (a bad argument, a missing library, the
 * wrong binary) may be reaped before the launcher asks for its pid: the
 * start must fail with QEMU's own words, never crash. Two starts at a
 * time, as a pool does, make the race likely. */
#define EXITING_QEMU_STARTS 200

typedef struct
{
  guint   pending;
  guint   failed;
} ExitingStarts;

static void
exiting_qemu_spawn_cb (GObject      *source,
                       GAsyncResult *result,
                       gpointer      user_data)
{
  ExitingStarts *starts = user_data;
  QleanMachine *machine = QLEAN_MACHINE (source);
  g_autoptr(GError) error = NULL;

  g_assert_false (qlean_machine_spawn_finish (machine, result, &error));
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_QEMU_EXITED);
  g_assert_nonnull (strstr (error->message, "exited with status 3"));
  g_assert_nonnull (strstr (error->message, "stand-in QEMU refuses to start"));
  g_assert_cmpint (qlean_machine_get_state (machine), ==, QLEAN_MACHINE_STATE_STOPPED);
  g_assert_cmpint (qlean_machine_get_pid (machine), ==, 0);
  g_assert_null (qlean_machine_get_run_dir (machine));
  starts->failed++;
  starts->pending--;
  g_main_context_wakeup (NULL);
}

static void
test_qemu_exits_at_once (void)
{
  g_autofree char *dir = NULL;
  g_autofree char *fake_qemu = NULL;
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  ExitingStarts starts = { 0 };

  if (!test_have_qemu ())
    return;

  dir = g_dir_make_tmp ("qlean-exiting-qemu-XXXXXX", NULL);
  g_assert_nonnull (dir);
  fake_qemu = g_build_filename (dir, "qemu-system-x86_64", NULL);
  g_assert_true (g_file_set_contents_full (fake_qemu,
                                           "#!/bin/sh\necho 'stand-in QEMU refuses to start' >&2\nexit 3\n",
                                           -1, G_FILE_SET_CONTENTS_NONE, 0755, NULL));
  qlean_machine_config_set_qemu_binary (config, fake_qemu);

  for (guint i = 0; i < EXITING_QEMU_STARTS / 2; i++)
    {
      g_autoptr(QleanMachine) a = qlean_machine_new (NULL, config);
      g_autoptr(QleanMachine) b = qlean_machine_new (NULL, config);

      starts.pending = 2;
      qlean_machine_spawn_async (a, NULL, exiting_qemu_spawn_cb, &starts);
      qlean_machine_spawn_async (b, NULL, exiting_qemu_spawn_cb, &starts);
      while (starts.pending > 0)
        g_main_context_iteration (NULL, TRUE);
    }
  g_assert_cmpuint (starts.failed, ==, EXITING_QEMU_STARTS);

  g_unlink (fake_qemu);
  g_assert_no_errno (g_rmdir (dir));
}

/* The console log keeps its head and its latest output, whatever a guest
 * writes: fed 64 MiB through its pipe (as QEMU would write it), the
 * file never passes its bound, and reading it from the start gives the
 * head, a gap said in bytes, then the latest output. No QEMU needed. */
#define FLOOD_BYTES (64u * 1024 * 1024)
#define FLOOD_LINE_LEN 14

static void
flood_line (char  *line,
            guint  i)
{
  g_snprintf (line, FLOOD_LINE_LEN + 1, "line %08u\n", i);
}

typedef struct
{
  int       fd;
  gboolean  done;
} Flood;

static gpointer
flood_thread (gpointer user_data)
{
  Flood *flood = user_data;
  g_autofree char *chunk = g_malloc (65536 + FLOOD_LINE_LEN + 1);
  guint line = 0;
  gsize sent = 0;

  while (sent < FLOOD_BYTES)
    {
      gsize len = 0;

      while (len + FLOOD_LINE_LEN <= 65536)
        {
          flood_line (chunk + len, line++);
          len += FLOOD_LINE_LEN;
        }
      for (gsize off = 0; off < len;)
        {
          ssize_t n = write (flood->fd, chunk + off, len - off);

          g_assert_cmpint (n, >, 0);
          off += n;
        }
      sent += len;
    }
  close (flood->fd);
  g_atomic_int_set (&flood->done, TRUE);

  return GUINT_TO_POINTER (line);
}

static void
test_console_log_bounded (void)
{
  g_autofree char *dir = g_dir_make_tmp ("qlean-console-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "console.log", NULL);
  g_autoptr(QleanConsoleLog) log = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GString) read_back = g_string_new (NULL);
  g_autofree char *contents = NULL;
  g_autofree char *buffer = g_malloc (65536);
  char expected[FLOOD_LINE_LEN + 1];
  Flood flood = { -1, FALSE };
  GThread *thread;
  guint64 offset = 0, skipped = 0;
  goffset max_size = 0;
  gsize len, n;
  guint lines;

  log = qlean_console_log_new (path, &flood.fd, &error);
  g_assert_no_error (error);
  thread = g_thread_new ("flood", flood_thread, &flood);
  while (!g_atomic_int_get (&flood.done))
    {
      GStatBuf st;

      if (g_stat (path, &st) == 0)
        max_size = MAX (max_size, st.st_size);
      g_usleep (1000);
    }
  lines = GPOINTER_TO_UINT (g_thread_join (thread));
  qlean_console_log_close (log);

  g_test_message ("largest console file: %" G_GOFFSET_FORMAT " bytes", max_size);
  g_assert_cmpint (max_size, <=, QLEAN_CONSOLE_MAX_BYTES);
  g_assert_true (g_file_get_contents (path, &contents, &len, NULL));
  g_assert_cmpuint (len, <=, QLEAN_CONSOLE_MAX_BYTES);
  g_assert_cmpuint (len, >=, QLEAN_CONSOLE_HEAD_BYTES + QLEAN_CONSOLE_TAIL_BYTES);

  /* The file: the head, the marker, the latest output. */
  flood_line (expected, 0);
  g_assert_true (g_str_has_prefix (contents, expected));
  g_assert_nonnull (g_strstr_len (contents, len, "console output dropped here"));
  flood_line (expected, lines - 1);
  g_assert_true (g_str_has_suffix (contents, expected));

  /* Read back through the log: every byte but the dropped ones. */
  while ((n = qlean_console_log_read (log, &offset, buffer, 65536, &skipped)) > 0)
    g_string_append_len (read_back, buffer, n);
  g_assert_cmpuint (offset, ==, (guint64) lines * FLOOD_LINE_LEN);
  g_assert_cmpuint (skipped + read_back->len, ==, offset);
  g_assert_cmpuint (read_back->len, <, len);
  flood_line (expected, 0);
  g_assert_true (g_str_has_prefix (read_back->str, expected));
  flood_line (expected, lines - 1);
  g_assert_true (g_str_has_suffix (read_back->str, expected));

  g_clear_pointer (&log, qlean_console_log_unref);
  g_unlink (path);
  g_assert_no_errno (g_rmdir (dir));
}

static gsize
process_rss (void)
{
  g_autofree char *status = NULL;
  const char *line;

  g_assert_true (g_file_get_contents ("/proc/self/status", &status, NULL, NULL));
  line = strstr (status, "\nVmRSS:");
  g_assert_nonnull (line);
  return g_ascii_strtoull (line + strlen ("\nVmRSS:"), NULL, 10) * 1024;
}

typedef struct
{
  gboolean  done;
  char     *match;
  GError   *error;
} ConsoleWait;

static void
console_wait_done_cb (GObject      *source,
                      GAsyncResult *result,
                      gpointer      user_data)
{
  ConsoleWait *wait = user_data;

  wait->match = qlean_machine_wait_for_console_text_finish (QLEAN_MACHINE (source), result,
                                                            &wait->error);
  wait->done = TRUE;
  g_main_context_wakeup (NULL);
}

/* A guest flooding its serial console while a test waits for console
 * text: the console file stays within its bound (made small here, so
 * that a megabyte of output shows it), the wait still finds the text
 * written after the flood, and this process's memory does not grow with
 * the output. */
#define CONSOLE_FLOOD_BYTES "1000000"
#define SMALL_HEAD (16 * 1024)
#define SMALL_TAIL (32 * 1024)

static void
test_console_flood (void)
{
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(QleanExecResult) result = NULL;
  g_autofree char *console_path = NULL;
  g_autofree char *contents = NULL;
  ConsoleWait wait = { 0 };
  goffset max_size = 0;
  gsize rss_before, rss_max;

  if (!test_have_qemu ())
    return;

  qlean_console_log_set_limits (SMALL_HEAD, SMALL_TAIL);
  machine = boot_machine ();
  console_path = qlean_machine_get_console_path (machine);

  /* The wait's first look at the console, before the flood. */
  g_assert_null (qlean_machine_wait_for_console_text (machine, "qlean-flood-done", 0, NULL,
                                                      &wait.error));
  g_clear_error (&wait.error);
  rss_before = rss_max = process_rss ();

  result = test_run (machine, "setsid sh -c 'yes qlean-console-flood | head -c " CONSOLE_FLOOD_BYTES
                              " > /dev/ttyS0; echo qlean-flood-done > /dev/ttyS0' "
                              "</dev/null >/dev/null 2>&1 &");
  qlean_machine_wait_for_console_text_async (machine, "qlean-flood-done", 120000, NULL,
                                             console_wait_done_cb, &wait);
  while (!wait.done)
    {
      GStatBuf st;

      if (g_stat (console_path, &st) == 0)
        max_size = MAX (max_size, st.st_size);
      rss_max = MAX (rss_max, process_rss ());
      g_main_context_iteration (NULL, FALSE);
      g_usleep (10000);
    }
  g_assert_no_error (wait.error);
  g_assert_cmpstr (wait.match, ==, "qlean-flood-done");

  g_test_message ("largest console file %" G_GOFFSET_FORMAT " bytes; RSS %" G_GSIZE_FORMAT
                  " KiB, at most %" G_GSIZE_FORMAT " KiB during the flood",
                  max_size, rss_before / 1024, rss_max / 1024);
  g_assert_cmpint (max_size, <=, SMALL_HEAD + 2 * SMALL_TAIL + 128);
  g_assert_true (g_file_get_contents (console_path, &contents, NULL, NULL));
  g_assert_nonnull (strstr (contents, "console output dropped here"));
  g_assert_cmpuint (rss_max - rss_before, <, 1536 * 1024);

  g_free (wait.match);
  qlean_console_log_set_limits (QLEAN_CONSOLE_HEAD_BYTES, QLEAN_CONSOLE_TAIL_BYTES);
}

/* Memory that cannot hold the kernel and unpack the initramfs is
 * refused before QEMU starts (the stand-in QEMU here would leave a file
 * behind), with the minimum in the message, not after a boot timeout. */
static void
test_memory_too_small (void)
{
  g_autofree char *dir = NULL;
  g_autofree char *fake_qemu = NULL;
  g_autofree char *started = NULL;
  g_autofree char *script = NULL;
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GError) error = NULL;
  gint64 start;

  if (!test_have_qemu ())
    return;

  dir = g_dir_make_tmp ("qlean-small-memory-XXXXXX", NULL);
  g_assert_nonnull (dir);
  fake_qemu = g_build_filename (dir, "qemu-system-x86_64", NULL);
  started = g_build_filename (dir, "started", NULL);
  script = g_strdup_printf ("#!/bin/sh\ntouch '%s'\nexec qemu-system-x86_64 \"$@\"\n", started);
  g_assert_true (g_file_set_contents_full (fake_qemu, script, -1, G_FILE_SET_CONTENTS_NONE,
                                           0755, NULL));
  qlean_machine_config_set_qemu_binary (config, fake_qemu);
  qlean_machine_config_set_memory_mib (config, 16);
  machine = qlean_machine_new (NULL, config);

  start = g_get_monotonic_time ();
  g_assert_false (qlean_machine_spawn (machine, NULL, &error));
  g_test_message ("%s", error->message);
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG);
  g_assert_nonnull (strstr (error->message, "has 16 MiB of memory"));
  g_assert_nonnull (strstr (error->message, "need at least "));
  g_assert_cmpint (g_get_monotonic_time () - start, <, 5 * G_USEC_PER_SEC);
  g_assert_false (g_file_test (started, G_FILE_TEST_EXISTS));
  g_assert_cmpint (qlean_machine_get_state (machine), ==, QLEAN_MACHINE_STATE_STOPPED);
  g_assert_null (qlean_machine_get_run_dir (machine));

  g_unlink (fake_qemu);
  g_assert_no_errno (g_rmdir (dir));
}

/* A kernel that panics while booting (here before pvpanic's driver is
 * loaded: no init to run) fails the start at once, quoting the panic,
 * instead of rebooting until the boot timeout. */
static void
test_boot_panic (void)
{
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GError) error = NULL;
  gint64 start;

  if (!test_have_qemu ())
    return;

  qlean_machine_config_set_cmdline (config, "rdinit=/qlean-no-such-init");
  machine = qlean_machine_new (NULL, config);
  qlean_machine_set_boot_timeout (machine, 60000);

  start = g_get_monotonic_time ();
  g_assert_false (qlean_machine_spawn (machine, NULL, &error));
  g_test_message ("after %.1f s: %s", (g_get_monotonic_time () - start) / 1e6, error->message);
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_CRASHED);
  g_assert_nonnull (strstr (error->message, "panicked while starting: Kernel panic - not syncing: "));
  g_assert_cmpint (g_get_monotonic_time () - start, <, 30 * G_USEC_PER_SEC);
  g_assert_cmpint (qlean_machine_get_state (machine), ==, QLEAN_MACHINE_STATE_STOPPED);
  g_assert_cmpint (qlean_machine_get_pid (machine), ==, 0);
}

static char *
qlean_cli_path (void)
{
  char *path = g_test_build_filename (G_TEST_BUILT, "..", "tools", "qlean", NULL);

  if (!g_file_test (path, G_FILE_TEST_IS_EXECUTABLE))
    g_clear_pointer (&path, g_free);
  return path;
}

static GStrv
run_dirs_in (const char *base)
{
  g_autoptr(GDir) dir = g_dir_open (base, 0, NULL);
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *name;

  g_assert_nonnull (dir);
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *owner = g_build_filename (base, name, "owner", NULL);

      if (g_file_test (owner, G_FILE_TEST_EXISTS))
        g_ptr_array_add (names, g_strdup (name));
    }
  g_ptr_array_add (names, NULL);

  return (GStrv) g_ptr_array_free (g_steal_pointer (&names), FALSE);
}

static void
test_runner_killed (void)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) runner = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(GHashTable) before = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *base = NULL;
  g_autofree char *line = NULL;
  g_autofree char *left = NULL;
  g_autofree char *live = NULL;
  g_autofree char *dead_entry = NULL;
  g_autofree char *live_entry = NULL;
  g_autofree char *cli = NULL;
  g_autofree char *vde_switch = NULL;
  g_autofree char *gc_out = NULL;
  g_autofree char *gc_err = NULL;
  g_auto(GStrv) dirs = NULL;
  g_auto(GStrv) remaining = NULL;
  const char *self_exe = "/proc/self/exe";
  g_autofree char *exe = NULL;
  gint64 killed;
  GPid runner_pid;
  int gc_status;

  if (!test_have_qemu ())
    return;
  vde_switch = g_find_program_in_path ("vde_switch");
  if (vde_switch == NULL)
    {
      g_test_skip ("vde_switch is not installed (apt-get install vde2)");
      return;
    }
  cli = qlean_cli_path ();
  if (cli == NULL)
    {
      g_test_skip ("the qlean command is not built");
      return;
    }

  /* The runner's own run base: whatever mentions it is the runner's. */
  base = make_test_dir ("faults-runner");
  exe = g_file_read_link (self_exe, &error);
  g_assert_no_error (error);

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_subprocess_launcher_setenv (launcher, "QLEAN_RUN_DIR", base, TRUE);
  runner = g_subprocess_launcher_spawn (launcher, &error, exe, RUNNER_ARG, NULL);
  g_assert_no_error (error);
  runner_pid = g_ascii_strtoll (g_subprocess_get_identifier (runner), NULL, 10);

  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (runner));
  line = g_data_input_stream_read_line (out, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (line, ==, "ready");

  before = processes_using (base);
  left = describe_processes (before);
  g_test_message ("runner %d holds: %s", (int) runner_pid, left);
  g_assert_cmpuint (count_named (before, "qemu-system"), ==, RUNNER_MACHINES);
  g_assert_cmpuint (count_named (before, "vde_switch"), ==, 1);
  g_clear_pointer (&left, g_free);

  killed = g_get_monotonic_time ();
  g_subprocess_send_signal (runner, SIGKILL);
  g_subprocess_wait (runner, NULL, &error);
  g_assert_no_error (error);

  for (;;)
    {
      g_autoptr(GHashTable) now = processes_using (base);

      if (g_hash_table_size (now) == 0)
        break;
      if (g_get_monotonic_time () - killed > 5 * G_USEC_PER_SEC)
        {
          left = describe_processes (now);
          g_error ("5 s after the runner was killed these remain: %s", left);
        }
      g_usleep (20000);
    }
  g_test_message ("all of the runner's processes were gone %.0f ms after SIGKILL",
                  (g_get_monotonic_time () - killed) / 1000.0);

  /* Its run directories remain, with a dead owner; beside them one of a
   * live owner and `qlean start` entries of a dead and a live owner. */
  dirs = run_dirs_in (base);
  g_assert_cmpuint (g_strv_length (dirs), >=, RUNNER_MACHINES + 1);
  live = make_live_run_dir (base);
  dead_entry = make_machine_entry (base, "dead", runner_pid);
  live_entry = make_machine_entry (base, "alive", getpid ());

  {
    g_autoptr(GSubprocessLauncher) gc = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                                                   G_SUBPROCESS_FLAGS_STDERR_PIPE);
    g_autoptr(GSubprocess) process = NULL;

    g_subprocess_launcher_setenv (gc, "QLEAN_RUN_DIR", base, TRUE);
    process = g_subprocess_launcher_spawn (gc, &error, cli, "gc", NULL);
    g_assert_no_error (error);
    g_subprocess_communicate_utf8 (process, NULL, NULL, &gc_out, &gc_err, &error);
    g_assert_no_error (error);
    gc_status = g_subprocess_get_exit_status (process);
    g_test_message ("qlean gc: status %d\n%s%s", gc_status, gc_out, gc_err);
    g_assert_cmpint (gc_status, ==, 0);
  }

  for (guint i = 0; dirs[i] != NULL; i++)
    {
      g_autofree char *path = g_build_filename (base, dirs[i], NULL);

      g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
    }
  g_assert_true (g_file_test (live, G_FILE_TEST_IS_DIR));
  remaining = run_dirs_in (base);
  g_assert_cmpuint (g_strv_length (remaining), ==, 1);
  g_assert_false (g_file_test (dead_entry, G_FILE_TEST_EXISTS));
  g_assert_true (g_file_test (live_entry, G_FILE_TEST_IS_DIR));

  /* Clean up what the test made. */
  {
    g_autoptr(GFile) file = g_file_new_for_path (base);
    g_autoptr(GFileEnumerator) children = NULL;
    g_autofree char *machines = g_build_filename (base, "machines", NULL);
    g_autofree char *state = g_build_filename (live_entry, "state.json", NULL);
    g_autofree char *log = g_build_filename (live_entry, "owner.log", NULL);
    g_autofree char *owner = g_build_filename (live, "owner", NULL);
    g_autofree char *console = g_build_filename (live, "console.log", NULL);

    g_unlink (state);
    g_unlink (log);
    g_rmdir (live_entry);
    g_rmdir (machines);
    g_unlink (owner);
    g_unlink (console);
    g_rmdir (live);
    g_assert_no_errno (g_rmdir (base));
  }
}

int
main (int    argc,
      char **argv)
{
  if (argc == 2 && g_str_equal (argv[1], RUNNER_ARG))
    return runner_main ();

  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/faults/qemu-killed-during-exec", test_qemu_killed_during_exec);
  g_test_add_func ("/faults/agent-stopped", test_agent_stopped);
  g_test_add_func ("/faults/guest-program-stopped", test_guest_program_stopped);
  g_test_add_func ("/faults/guest-reboots", test_guest_reboots);
  g_test_add_func ("/faults/run-dir-modes", test_run_dir_modes);
  g_test_add_func ("/faults/runner-killed", test_runner_killed);
  g_test_add_func ("/faults/qemu-exits-at-once", test_qemu_exits_at_once);
  g_test_add_func ("/faults/console-log-bounded", test_console_log_bounded);
  g_test_add_func ("/faults/console-flood", test_console_flood);
  g_test_add_func ("/faults/memory-too-small", test_memory_too_small);
  g_test_add_func ("/faults/boot-panic", test_boot_panic);

  return g_test_run ();
}
