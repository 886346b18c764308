/* test-helpers.c: the g_test helpers, machine logs and wait helpers, on
 * real QEMU with the minimal image
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <glib/gstdio.h>

#include <qlean/qlean-test.h>

#include "qlean-util-private.h"

/* Set in main, before any thread, and inherited by the subprocesses. */
static char *artifacts_root;
static char *run_root;

static char *
read_file (const char *dir,
           const char *name)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autoptr(GError) error = NULL;
  char *contents = NULL;

  g_file_get_contents (path, &contents, NULL, &error);
  g_assert_no_error (error);
  return contents;
}

static QleanExecResult *
run_shell (QleanMachine *machine,
           const char   *command)
{
  g_autoptr(GError) error = NULL;
  QleanExecResult *result = qlean_machine_exec (machine, command, NULL, &error);

  g_assert_no_error (error);
  g_assert_true (qlean_exec_result_success (result));
  return result;
}

/* Run directories of this binary's machines (QLEAN_RUN_DIR is ours). */
static guint
count_run_dirs (void)
{
  g_autoptr(GDir) dir = g_dir_open (run_root, 0, NULL);
  const char *name;
  guint n = 0;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_test_message ("left in %s: %s", run_root, name);
      n++;
    }
  return n;
}

/* Failure artifacts */

static void
test_artifacts_dir (void)
{
  g_autofree char *dir = qlean_test_get_artifacts_dir ();
  g_autofree char *expected = g_build_filename (artifacts_root, "helpers", "artifacts", "dir", NULL);

  g_assert_cmpstr (dir, ==, expected);
}

static void
fatal_assertion_subprocess (void)
{
  QleanMachine *machine = qlean_test_get_machine ();
  g_autoptr(QleanExecResult) result = NULL;

  if (machine == NULL)
    return;

  result = run_shell (machine, "echo qlean-fatal-marker > /dev/console");
  g_assert_cmpint (1, ==, 2);   /* the deliberate failure */
}

static void
nonfatal_failure_subprocess (void)
{
  QleanMachine *machine = qlean_test_get_machine ();
  g_autoptr(QleanExecResult) result = NULL;

  result = run_shell (machine, "echo qlean-nonfatal-marker > /dev/console");
  g_test_fail_printf ("deliberate non-fatal failure");
}

static void
check_artifacts (const char *subprocess_path,
                 const char *console_marker,
                 const char *failure_text)
{
  g_autofree char *relative = g_strdup (subprocess_path + 1);
  g_autofree char *dir = NULL;
  g_autofree char *machine_dir = NULL;
  g_autofree char *console = NULL;
  g_autofree char *transcript = NULL;
  g_autofree char *failure = NULL;

  dir = g_build_filename (artifacts_root, relative, NULL);
  machine_dir = g_build_filename (dir, "qlean-test", NULL);

  g_test_message ("artifacts expected in %s", dir);
  g_assert_true (g_file_test (machine_dir, G_FILE_TEST_IS_DIR));

  console = read_file (machine_dir, "console.log");
  g_assert_nonnull (strstr (console, console_marker));

  transcript = read_file (machine_dir, "transcript.log");
  g_assert_nonnull (strstr (transcript, "qmp -> {\"execute\":\"qmp_capabilities\""));
  g_assert_nonnull (strstr (transcript, "qmp <- {\"QMP\""));
  g_assert_nonnull (strstr (transcript, "qga -> "));
  g_assert_nonnull (strstr (transcript, "guest-sync"));

  failure = read_file (dir, "failure.txt");
  g_assert_nonnull (strstr (failure, failure_text));
}

static void
test_artifacts_fatal (void)
{
  if (!qlean_test_skip_unless_available ())
    return;

  g_test_trap_subprocess ("/helpers/artifacts/fatal/subprocess", 180 * G_USEC_PER_SEC,
                          G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  g_test_trap_assert_stderr ("*assertion failed (1 == 2)*");
  g_test_trap_assert_stderr ("*console logs and QMP/QGA transcripts of "
                             "/helpers/artifacts/fatal/subprocess are in *");

  check_artifacts ("/helpers/artifacts/fatal/subprocess", "qlean-fatal-marker",
                   "assertion failed (1 == 2)");
  /* The dying test killed its machine and its run directory went. */
  g_assert_cmpuint (count_run_dirs (), ==, 0);
}

static void
test_artifacts_nonfatal (void)
{
  if (!qlean_test_skip_unless_available ())
    return;

  g_test_trap_subprocess ("/helpers/artifacts/nonfatal/subprocess", 180 * G_USEC_PER_SEC,
                          G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  g_test_trap_assert_stderr ("*console logs and QMP/QGA transcripts of "
                             "/helpers/artifacts/nonfatal/subprocess are in *");

  check_artifacts ("/helpers/artifacts/nonfatal/subprocess", "qlean-nonfatal-marker",
                   "g_test_failed()");
  /* The test binary's exit killed the machine and removed its run dir. */
  g_assert_cmpuint (count_run_dirs (), ==, 0);
}

/* Keep on failure (QLEAN_TEST_KEEP) */

#define KEEP_SUBPROCESS "/helpers/keep/fatal/subprocess"
#define KEPT_NAME "kept-helpers-keep-fatal-subprocess-qlean-test"

static void
keep_fatal_subprocess (void)
{
  QleanMachine *machine;
  g_autoptr(QleanExecResult) result = NULL;

  /* A fresh process with no machine yet, so no thread reads the
   * environment while it changes. */
  g_setenv ("QLEAN_TEST_KEEP", "1", TRUE);
  machine = qlean_test_get_machine ();
  if (machine == NULL)
    return;

  result = run_shell (machine, "echo left-by-the-test > /root/kept");
  g_assert_cmpint (1, ==, 2);   /* the deliberate failure */
}

/* Runs the built `qlean` with @args; returns its exit status and output. */
static int
run_cli (const char  *const *args,
         char              **output)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;
  int status = -1;

  g_ptr_array_add (argv, (char *) QLEAN_BUILD_CLI);
  for (guint i = 0; args[i] != NULL; i++)
    g_ptr_array_add (argv, (char *) args[i]);
  g_ptr_array_add (argv, NULL);

  /* Its output must not reach ours, which is TAP. */
  g_spawn_sync (NULL, (char **) argv->pdata, NULL,
                G_SPAWN_STDERR_TO_DEV_NULL | (output == NULL ? G_SPAWN_STDOUT_TO_DEV_NULL : 0),
                NULL, NULL, output, NULL, &status, &error);
  g_assert_no_error (error);
  return g_spawn_check_wait_status (status, NULL) ? 0 : status;
}

static void
test_keep_fatal (void)
{
  const char *cat[] = { "exec", KEPT_NAME, "--", "cat", "/root/kept", NULL };
  const char *stop[] = { "stop", KEPT_NAME, NULL };
  const char *gc_kept[] = { "gc", "--kept", NULL };
  const char *ls[] = { "ls", NULL };
  g_autofree char *kept = NULL;
  g_autofree char *listed = NULL;
  g_autofree char *after = NULL;
  g_autofree char *machines = g_build_filename (run_root, "machines", NULL);
  int status, gc_status;

  if (!qlean_test_skip_unless_available ())
    return;

  g_test_trap_subprocess (KEEP_SUBPROCESS, 180 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  g_test_trap_assert_stderr ("*console logs and QMP/QGA transcripts of " KEEP_SUBPROCESS " are in *");
  g_test_trap_assert_stderr ("*kept qlean-test as “" KEPT_NAME "”*qlean stop " KEPT_NAME "*");

  /* The failed test's machine runs on, with what the test left in it;
   * `qlean ls` says who kept it, and `qlean gc --kept` ends it. */
  status = run_cli (cat, &kept);
  run_cli (ls, &listed);
  gc_status = run_cli (gc_kept, NULL);
  run_cli (ls, &after);
  if (strstr (after, KEPT_NAME) != NULL)
    run_cli (stop, NULL);   /* not left running when the checks below fail */
  g_assert_cmpint (status, ==, 0);
  g_assert_cmpstr (kept, ==, "left-by-the-test\n");
  g_assert_nonnull (strstr (listed, KEPT_NAME));
  g_assert_nonnull (strstr (listed, "kept by " KEEP_SUBPROCESS " (pid "));
  g_assert_cmpint (gc_status, ==, 0);
  g_assert_null (strstr (after, KEPT_NAME));
  g_rmdir (machines);
  g_assert_cmpuint (count_run_dirs (), ==, 0);
}

/* Logs of the shared machine */

static void
test_transcript (void)
{
  QleanMachine *machine = qlean_test_get_machine ();
  g_autoptr(QleanExecResult) result = NULL;
  g_autofree char *transcript = NULL;
  g_auto(GStrv) lines = NULL;

  if (machine == NULL)
    return;

  result = run_shell (machine, "true");
  transcript = read_file (qlean_machine_get_run_dir (machine), "transcript.log");
  lines = g_strsplit (transcript, "\n", -1);

  g_assert_true (g_str_has_prefix (lines[0], "# QMP and guest agent traffic of machine qlean-test"));
  /* "SECONDS.MICROS CHANNEL DIRECTION LINE" */
  for (guint i = 2; lines[i] != NULL && lines[i][0] != '\0'; i++)
    {
      g_auto(GStrv) fields = g_strsplit (lines[i], " ", 4);

      g_assert_cmpuint (g_strv_length (fields), ==, 4);
      g_assert_nonnull (strchr (fields[0], '.'));
      g_assert_true (g_str_equal (fields[1], "qmp") || g_str_equal (fields[1], "qga"));
      g_assert_true (g_str_equal (fields[2], "->") || g_str_equal (fields[2], "<-"));
    }
  g_assert_nonnull (strstr (transcript, "qmp <- {\"return\""));
  /* The agent's sync bytes are escaped: one message, one line. */
  g_assert_nonnull (strstr (transcript, "qga -> \\xff"));
}

static void
test_save_logs_never_ran (void)
{
  g_autoptr(QleanMachine) machine = qlean_machine_new (NULL, NULL);
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_build_filename (artifacts_root, "never", NULL);

  g_assert_false (qlean_machine_save_logs (machine, dir, &error));
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE);
  g_assert_false (g_file_test (dir, G_FILE_TEST_EXISTS));
}

/* Runs last but one: it ends the shared machine. */
static void
test_save_logs_after_stop (void)
{
  QleanMachine *machine = qlean_test_get_machine ();
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanExecResult) result = NULL;
  g_autofree char *dir = g_build_filename (artifacts_root, "after-stop", NULL);
  g_autofree char *console = NULL;
  g_autofree char *transcript = NULL;

  if (machine == NULL)
    return;

  result = run_shell (machine, "echo qlean-last-words > /dev/console");
  qlean_machine_kill (machine, NULL, &error);
  g_assert_no_error (error);
  g_assert_null (qlean_machine_get_run_dir (machine));

  qlean_machine_save_logs (machine, dir, &error);
  g_assert_no_error (error);
  console = read_file (dir, "console.log");
  g_assert_nonnull (strstr (console, "qlean-last-words"));
  transcript = read_file (dir, "transcript.log");
  g_assert_nonnull (strstr (transcript, "qmp_capabilities"));
}

/* Wait helpers */

static void
test_wait_file (void)
{
  QleanMachine *machine = qlean_test_get_machine ();
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanExecResult) result = NULL;
  gint64 start;

  if (machine == NULL)
    return;

  result = run_shell (machine, "rm -f /tmp/qlean-wait-file; "
                               "setsid sh -c 'sleep 1; touch /tmp/qlean-wait-file' "
                               "</dev/null >/dev/null 2>&1 &");
  start = g_get_monotonic_time ();
  g_assert_true (qlean_machine_wait_for_file (machine, "/tmp/qlean-wait-file", 30000, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (g_get_monotonic_time () - start, >=, 900 * 1000);

  g_assert_false (qlean_machine_wait_for_file (machine, "/tmp/never there", 700, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "file /tmp/never there"));
  g_assert_nonnull (strstr (error->message, "last seen: no such file"));
  g_clear_error (&error);

  /* 0 checks once. */
  g_assert_true (qlean_machine_wait_for_file (machine, "/tmp/qlean-wait-file", 0, NULL, &error));
  g_assert_no_error (error);
}

static void
test_wait_port (void)
{
  QleanMachine *machine = qlean_test_get_machine ();
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanExecResult) result = NULL;

  if (machine == NULL)
    return;

  g_assert_false (qlean_machine_wait_for_port (machine, 4567, 0, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_clear_error (&error);

  /* busybox httpd daemonizes once it listens. */
  result = run_shell (machine, "setsid sh -c 'sleep 1; exec httpd -f -p 4567 -h /tmp' "
                               "</dev/null >/dev/null 2>&1 &");
  g_assert_true (qlean_machine_wait_for_port (machine, 4567, 30000, NULL, &error));
  g_assert_no_error (error);

  g_assert_false (qlean_machine_wait_for_port (machine, 4568, 700, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "TCP port 4568"));
  g_assert_nonnull (strstr (error->message, "TCP ports listening: "));
  g_assert_nonnull (strstr (error->message, "4567"));

  g_clear_object (&result);
  result = run_shell (machine, "killall httpd");
}

static void
test_wait_unit (void)
{
  QleanMachine *machine = qlean_test_get_machine ();
  g_autoptr(GError) error = NULL;
  gint64 start;

  if (machine == NULL)
    return;

  /* The minimal image has no systemd: that is said at once. Distro
   * images test the active case. */
  start = g_get_monotonic_time ();
  g_assert_false (qlean_machine_wait_for_unit (machine, "ssh.service", 60000, NULL, &error));
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_COMMAND_NOT_FOUND);
  g_assert_cmpint (g_get_monotonic_time () - start, <, 30 * G_USEC_PER_SEC);
  g_assert_nonnull (strstr (error->message, "systemctl"));
}

static void
test_wait_console (void)
{
  QleanMachine *machine = qlean_test_get_machine ();
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanExecResult) result = NULL;
  g_autofree char *match = NULL;

  if (machine == NULL)
    return;

  result = run_shell (machine, "setsid sh -c 'sleep 1; echo qlean-console-marker-42 > /dev/console' "
                               "</dev/null >/dev/null 2>&1 &");
  match = qlean_machine_wait_for_console_text (machine, "^qlean-console-marker-\\d+$", 30000,
                                               NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (match, ==, "qlean-console-marker-42");

  g_assert_null (qlean_machine_wait_for_console_text (machine, "never-there-\\d{9}", 700,
                                                      NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "last seen: "));
  /* What it last saw are console lines; under load the kernel's own
   * warnings (logged at warning level) may come after the marker. */
  {
    g_autofree char *path = qlean_machine_get_console_path (machine);
    g_autofree char *console = NULL;
    g_auto(GStrv) seen = g_strsplit (strstr (error->message, "last seen: ") + strlen ("last seen: "), " | ", -1);

    g_assert_true (g_file_get_contents (path, &console, NULL, NULL));
    g_assert_nonnull (seen[0]);
    g_assert_cmpstr (seen[0], !=, "");
    g_assert_nonnull (strstr (console, seen[0]));
    g_assert_nonnull (strstr (console, "qlean-console-marker-42"));
  }
  g_clear_error (&error);

  g_assert_null (qlean_machine_wait_for_console_text (machine, "(unclosed", 700, NULL, &error));
  g_assert_nonnull (error);
  g_assert_true (error->domain == G_REGEX_ERROR);
}

static void
test_wait_until_succeeds (void)
{
  QleanMachine *machine = qlean_test_get_machine ();
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanExecResult) result = NULL;
  g_autoptr(QleanExecResult) success = NULL;
  g_autofree char *out = NULL;
  const char * const argv[] = { "sh", "-c", "cat /tmp/qlean-ready || { echo not yet; exit 3; }", NULL };
  const char * const fails[] = { "sh", "-c", "echo broken >&2; exit 7", NULL };

  if (machine == NULL)
    return;

  result = run_shell (machine, "rm -f /tmp/qlean-ready; "
                               "setsid sh -c 'sleep 1; echo ready > /tmp/qlean-ready' "
                               "</dev/null >/dev/null 2>&1 &");
  success = qlean_machine_wait_until_succeeds (machine, argv, 30000, NULL, &error);
  g_assert_no_error (error);
  out = qlean_exec_result_get_stdout_text (success);
  g_assert_cmpstr (out, ==, "ready\n");

  g_assert_null (qlean_machine_wait_until_succeeds (machine, fails, 700, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "exit status 7, broken"));
}

typedef struct
{
  GMainLoop *loop;
  gboolean   ok;
  GError    *error;
} AsyncState;

static void
wait_file_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  AsyncState *state = user_data;

  state->ok = qlean_machine_wait_for_file_finish (QLEAN_MACHINE (source), result, &state->error);
  g_main_loop_quit (state->loop);
}

static gboolean
cancel_cb (gpointer user_data)
{
  g_cancellable_cancel (user_data);
  return G_SOURCE_REMOVE;
}

static void
test_wait_async (void)
{
  QleanMachine *machine = qlean_test_get_machine ();
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  AsyncState state = { loop, FALSE, NULL };
  gint64 start;

  if (machine == NULL)
    return;

  qlean_machine_wait_for_file_async (machine, "/proc/version", 30000, NULL, wait_file_cb, &state);
  g_main_loop_run (loop);
  g_assert_no_error (state.error);
  g_assert_true (state.ok);

  /* Cancelling ends the wait at once, not at its timeout. */
  start = g_get_monotonic_time ();
  qlean_machine_wait_for_file_async (machine, "/nowhere", 60000, cancellable, wait_file_cb, &state);
  g_timeout_add (300, cancel_cb, cancellable);
  g_main_loop_run (loop);
  g_assert_error (state.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_false (state.ok);
  g_assert_cmpint (g_get_monotonic_time () - start, <, 10 * G_USEC_PER_SEC);
  g_clear_error (&state.error);
}

static void
test_wait_not_running (void)
{
  g_autoptr(QleanMachine) machine = qlean_machine_new (NULL, NULL);
  g_autoptr(GError) error = NULL;

  g_assert_false (qlean_machine_wait_for_port (machine, 22, 1000, NULL, &error));
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE);
}

/* Reset between tests */

#define LEFTOVER "/root/leftover"
/* Set in the environment of this binary run again as a child that
 * turned reset off; the child registers only the reset-off tests. */
#define RESET_CHILD_ENV "QLEAN_TEST_HELPERS_RESET_CHILD"

/* Leaves a file for the next test to find, or not. */
static void
test_reset_leave (void)
{
  QleanMachine *machine = qlean_test_get_machine ();
  g_autoptr(GBytes) contents = g_bytes_new_static ("left by an earlier test\n", 24);
  g_autoptr(GError) error = NULL;

  if (machine == NULL)
    return;

  g_assert_true (qlean_machine_write (machine, LEFTOVER, contents, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_machine_exists (machine, LEFTOVER, NULL, &error));
  g_assert_no_error (error);
}

/* Runs right after test_reset_leave: the file is there exactly when
 * the machine was not reset in between. The message tells the parent
 * of a reset-off child which case it saw. */
static void
check_leftover (QleanMachine *machine)
{
  g_autoptr(GError) error = NULL;
  gboolean reset = qlean_test_get_reset ();
  gboolean exists = qlean_machine_exists (machine, LEFTOVER, NULL, &error);

  g_assert_no_error (error);
  g_test_message ("reset %s: %s %s", reset ? "on" : "off", LEFTOVER,
                  exists ? "persisted" : "gone");
  g_assert_cmpint (exists, ==, !reset);
}

static void
test_reset_gone (void)
{
  QleanMachine *machine = qlean_test_get_machine ();

  if (machine == NULL)
    return;

  if (!qlean_test_get_reset ())
    {
      g_test_skip ("QLEAN_TEST_RESET turns the reset off");
      return;
    }
  check_leftover (machine);
}

static void
test_reset_child_check (void)
{
  QleanMachine *machine = qlean_test_get_machine ();

  if (machine != NULL)
    check_leftover (machine);
}

/* Runs this binary again with qlean_test_set_reset (FALSE) and
 * QLEAN_TEST_RESET as given; returns its output. A child keeps the
 * choice from leaking into this binary's other tests. */
static char *
run_reset_child (const char *reset_env)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) child = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *self = g_file_read_link ("/proc/self/exe", &error);
  char *out = NULL;

  g_assert_no_error (error);
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                        G_SUBPROCESS_FLAGS_STDERR_MERGE);
  g_subprocess_launcher_setenv (launcher, RESET_CHILD_ENV, "1", TRUE);
  if (reset_env != NULL)
    g_subprocess_launcher_setenv (launcher, "QLEAN_TEST_RESET", reset_env, TRUE);
  else
    g_subprocess_launcher_unsetenv (launcher, "QLEAN_TEST_RESET");

  child = g_subprocess_launcher_spawn (launcher, &error, self, "--tap", NULL);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8 (child, NULL, NULL, &out, NULL, &error);
  g_assert_no_error (error);
  g_test_message ("child with QLEAN_TEST_RESET=%s:\n%s", reset_env ? reset_env : "(unset)", out);
  g_assert_true (g_subprocess_get_if_exited (child));
  g_assert_cmpint (g_subprocess_get_exit_status (child), ==, 0);

  return out;
}

static void
test_reset_off (void)
{
  g_autofree char *off = NULL;
  g_autofree char *forced = NULL;

  if (!qlean_test_skip_unless_available ())
    return;

  /* qlean_test_set_reset (FALSE): the file stays for the next test. */
  off = run_reset_child (NULL);
  g_assert_nonnull (strstr (off, "# reset off: " LEFTOVER " persisted"));
  g_assert_nonnull (strstr (off, "ok 2 /helpers/reset-off/check"));

  /* The environment overrides the program's choice. */
  forced = run_reset_child ("1");
  g_assert_nonnull (strstr (forced, "# reset on: " LEFTOVER " gone"));
  g_assert_nonnull (strstr (forced, "ok 2 /helpers/reset-off/check"));
}

/* After test_save_logs_after_stop killed it, the next test gets the
 * machine running again. */
static void
test_after_kill (void)
{
  QleanMachine *machine = qlean_test_get_machine ();
  g_autoptr(QleanExecResult) result = NULL;

  if (machine == NULL)
    return;

  g_assert_cmpint (qlean_machine_get_state (machine), ==, QLEAN_MACHINE_STATE_RUNNING);
  result = run_shell (machine, "true");
}

static int status;

/* Registered before the helpers' own exit handler, so it runs after it,
 * once the shared machine is gone. The artifacts stay when a test
 * failed: they explain why. */
static void
remove_scratch (void)
{
  qlean_rm_rf (run_root, NULL);
  if (status == 0)
    qlean_rm_rf (artifacts_root, NULL);
  else
    g_printerr ("# test artifacts kept in %s\n", artifacts_root);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  /* Still no thread: set what the subprocesses inherit. */
  if (g_test_subprocess ())
    {
      artifacts_root = g_strdup (g_getenv ("QLEAN_TEST_ARTIFACTS"));
      run_root = g_strdup (g_getenv ("QLEAN_RUN_DIR"));
    }
  else
    {
      /* Artifacts in the build tree; run directories in /tmp, where
       * socket paths stay short. */
      artifacts_root = g_test_build_filename (G_TEST_BUILT, "test-helpers-XXXXXX", NULL);
      g_assert_nonnull (g_mkdtemp (artifacts_root));
      run_root = g_dir_make_tmp ("qlean-test-helpers-XXXXXX", NULL);
      g_assert_nonnull (run_root);
      g_setenv ("QLEAN_TEST_ARTIFACTS", artifacts_root, TRUE);
      g_setenv ("QLEAN_RUN_DIR", run_root, TRUE);
      atexit (remove_scratch);
    }

  if (g_getenv (RESET_CHILD_ENV) != NULL)
    {
      qlean_test_set_reset (FALSE);
      qlean_test_add_func ("/helpers/reset-off/leave", test_reset_leave);
      qlean_test_add_func ("/helpers/reset-off/check", test_reset_child_check);
      status = g_test_run ();
      return status;
    }

  g_test_add_func ("/helpers/artifacts/dir", test_artifacts_dir);
  g_test_add_func ("/helpers/artifacts/fatal", test_artifacts_fatal);
  g_test_add_func ("/helpers/artifacts/fatal/subprocess", fatal_assertion_subprocess);
  g_test_add_func ("/helpers/artifacts/nonfatal", test_artifacts_nonfatal);
  qlean_test_add_func ("/helpers/artifacts/nonfatal/subprocess", nonfatal_failure_subprocess);
  g_test_add_func ("/helpers/keep/fatal", test_keep_fatal);
  g_test_add_func (KEEP_SUBPROCESS, keep_fatal_subprocess);
  g_test_add_func ("/helpers/logs/never-ran", test_save_logs_never_ran);
  qlean_test_add_func ("/helpers/logs/transcript", test_transcript);
  qlean_test_add_func ("/helpers/wait/file", test_wait_file);
  qlean_test_add_func ("/helpers/wait/port", test_wait_port);
  qlean_test_add_func ("/helpers/wait/unit", test_wait_unit);
  qlean_test_add_func ("/helpers/wait/console", test_wait_console);
  qlean_test_add_func ("/helpers/wait/until-succeeds", test_wait_until_succeeds);
  qlean_test_add_func ("/helpers/wait/async", test_wait_async);
  g_test_add_func ("/helpers/wait/not-running", test_wait_not_running);
  /* In this order: the second looks for what the first left. */
  qlean_test_add_func ("/helpers/reset/leave", test_reset_leave);
  qlean_test_add_func ("/helpers/reset/gone", test_reset_gone);
  g_test_add_func ("/helpers/reset/off", test_reset_off);
  /* A suite of its own, registered last, so that it runs last. */
  qlean_test_add_func ("/helpers/stopped/save-logs", test_save_logs_after_stop);
  qlean_test_add_func ("/helpers/stopped/after-kill", test_after_kill);

  status = g_test_run ();
  return status;
}
