/* test-exec.c: running commands in a machine, on real QEMU, with the
 * minimal image: live output, environment, user, stdin, status and
 * signal, timeouts, cancellation, concurrency, big output, errors and
 * the agent fallback; the `qlean start/exec/stop/ls` cycle is in
 * test-exec-cli.c
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <fcntl.h>
#include <string.h>

#include <qlean/qlean.h>
#include <glib/gstdio.h>
#include <gio/gunixinputstream.h>

#include "test-common.h"
#include "test-exec.h"

/* One machine for every test but the CLI's, which boots its own through
 * `qlean start`. Each boot costs seconds of a core under TCG.
 *
 * tests/meson.build runs these tests once more with QLEAN_TEST_TRANSPORT
 * set to "agent": then that machine uses the stock QEMU guest agent
 * alone, and its guest does not even start qlean-guest (qlean.noguest=1).
 * A test that cannot work there skips, saying why. */
static QleanMachine *agent_machine;

static gboolean
on_agent (void)
{
  return g_strcmp0 (g_getenv ("QLEAN_TEST_TRANSPORT"), "agent") == 0;
}

static QleanMachine *
exec_machine (void)
{
  g_autoptr(GError) error = NULL;

  if (!on_agent ())
    return test_shared_machine ();
  if (!test_have_qemu ())
    return NULL;

  if (agent_machine == NULL)
    {
      g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();

      qlean_machine_config_set_guest_transport (config, QLEAN_GUEST_TRANSPORT_AGENT);
      qlean_machine_config_set_cmdline (config, "qlean.noguest=1");
      agent_machine = qlean_machine_new_with_name ("exec-agent-only", NULL, config);
      qlean_machine_spawn (agent_machine, NULL, &error);
      g_assert_no_error (error);
      g_assert_cmpint (qlean_machine_get_guest_transport (agent_machine), ==,
                       QLEAN_GUEST_TRANSPORT_AGENT);
    }

  g_assert_cmpint (qlean_machine_get_state (agent_machine), ==, QLEAN_MACHINE_STATE_RUNNING);
  return agent_machine;
}

/* Whether this run is over the agent, where the test cannot work (for
 * @reason): then it is skipped, saying why. */
gboolean
skip_on_agent (const char *reason)
{
  if (!on_agent ())
    return FALSE;

  g_test_skip (reason);
  return TRUE;
}

/* A command's stdout, which must have succeeded. */
static QleanGuestProcess *
spawn (QleanGuestLauncher *launcher,
       QleanMachine       *machine,
       const char * const *argv)
{
  g_autoptr(GError) error = NULL;
  QleanGuestProcess *process = qlean_guest_launcher_spawnv (launcher, machine, argv, &error);

  g_assert_no_error (error);
  g_assert_nonnull (process);
  return process;
}

double
seconds_since (gint64 start)
{
  return (g_get_monotonic_time () - start) / (double) G_USEC_PER_SEC;
}

/* Waits until no process in the guest has @pattern in its command line
 * (zombies that init has yet to reap included). */
static gboolean
guest_process_gone (QleanMachine *machine,
                    const char   *pattern)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  while (g_get_monotonic_time () < deadline)
    {
      g_autofree char *ps = test_run_out (machine, "ps");

      if (strstr (ps, pattern) == NULL)
        return TRUE;
      g_usleep (100 * 1000);
    }

  return FALSE;
}

/* Through the agent alone, a process's output goes through a temporary
 * directory in the guest, removed once it ended however it ended: waits
 * until none is left (the removal follows the end). TRUE over
 * qlean-guest, which makes none. */
static gboolean
agent_files_gone (QleanMachine *machine)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  while (on_agent () && g_get_monotonic_time () < deadline)
    {
      /* An entry may go while ls reads it. */
      g_autofree char *ls = test_run_out (machine, "ls -a /tmp 2>/dev/null; true");

      if (strstr (ls, "qlean-exec-") == NULL)
        return TRUE;
      g_usleep (100 * 1000);
    }

  return !on_agent ();
}

/* Output */

/* The first line arrives while the command still runs: a second before
 * the second line, and before the process ended. */
static void
test_live_output (void)
{
  QleanMachine *machine = exec_machine ();
  const char * const argv[] = { "sh", "-c", "echo a; sleep 1; echo b", NULL };
  g_autoptr(QleanGuestLauncher) launcher = NULL;
  g_autoptr(QleanGuestProcess) process = NULL;
  g_autoptr(GError) error = NULL;
  GInputStream *out;
  GString *seen = g_string_new (NULL);
  gint64 start, first_at = 0, end_at;
  gboolean running_at_first = FALSE;
  char buffer[64];
  gssize n;

  if (machine == NULL)
    return;

  launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_STDOUT_PIPE);
  start = g_get_monotonic_time ();
  process = spawn (launcher, machine, argv);
  out = qlean_guest_process_get_stdout_pipe (process);
  g_assert_nonnull (out);

  while ((n = g_input_stream_read (out, buffer, sizeof buffer, NULL, &error)) > 0)
    {
      g_string_append_len (seen, buffer, n);
      if (first_at == 0 && strchr (seen->str, '\n') != NULL)
        {
          first_at = g_get_monotonic_time ();
          running_at_first = !qlean_guest_process_get_if_exited (process);
        }
    }
  g_assert_no_error (error);
  end_at = g_get_monotonic_time ();

  qlean_guest_process_wait_check (process, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (seen->str, ==, "a\nb\n");
  g_assert_true (running_at_first);
  /* `sleep 1` separates the lines; output only at exit would not. */
  g_assert_cmpfloat ((end_at - first_at) / (double) G_USEC_PER_SEC, >=, 0.8);
  g_test_message ("first line after %.0f ms, the end after %.0f ms",
                  (first_at - start) / 1000.0, (end_at - start) / 1000.0);
  g_string_free (seen, TRUE);
}

/* stdout and stderr apart keep their own order; merged, the order in
 * which the process wrote them. */
static void
test_stderr_order (void)
{
  QleanMachine *machine = exec_machine ();
  const char * const argv[] = {
    "sh", "-c", "echo 1; echo 2 >&2; echo 3; echo 4 >&2; echo 5; echo 6 >&2", NULL
  };
  g_autoptr(QleanGuestLauncher) launcher = NULL;
  g_autoptr(QleanGuestProcess) apart = NULL;
  g_autoptr(QleanGuestProcess) merged = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  if (machine == NULL)
    return;

  launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_STDOUT_PIPE |
                                       QLEAN_GUEST_PROCESS_FLAGS_STDERR_PIPE);
  apart = spawn (launcher, machine, argv);
  qlean_guest_process_communicate_utf8 (apart, NULL, NULL, &out, &err, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (out, ==, "1\n3\n5\n");
  g_assert_cmpstr (err, ==, "2\n4\n6\n");
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  qlean_guest_launcher_set_flags (launcher, QLEAN_GUEST_PROCESS_FLAGS_STDOUT_PIPE |
                                            QLEAN_GUEST_PROCESS_FLAGS_STDERR_MERGE);
  merged = spawn (launcher, machine, argv);
  g_assert_null (qlean_guest_process_get_stderr_pipe (merged));
  qlean_guest_process_communicate_utf8 (merged, NULL, NULL, &out, &err, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (out, ==, "1\n2\n3\n4\n5\n6\n");
  g_assert_null (err);
}

/* Environment, working directory, user */

static void
test_env (void)
{
  QleanMachine *machine = exec_machine ();
  const char * const show[] = {
    "sh", "-c", "printf '%s|%s|%s' \"$FOO\" \"$ODD\" \"${HOME-unset}\"", NULL
  };
  const char * const env_argv[] = { "env", NULL };
  /* argv is passed as is: nothing here is ever seen by a shell. */
  const char * const verbatim[] = { "printf", "%s|%s", "$(echo pwned) `id`", "a 'b' \"c\"\n\\", NULL };
  char *only[] = { (char *) "ONLY=1", NULL };
  g_autoptr(QleanGuestLauncher) launcher = NULL;
  g_autoptr(QleanExecResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;

  if (machine == NULL)
    return;

  launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_NONE);
  qlean_guest_launcher_setenv (launcher, "FOO", "bar", TRUE);
  qlean_guest_launcher_setenv (launcher, "FOO", "ignored", FALSE);
  qlean_guest_launcher_setenv (launcher, "ODD", "a b $HOME `x` ;", TRUE);
  qlean_guest_launcher_unsetenv (launcher, "HOME");
  result = qlean_guest_launcher_run (launcher, machine, show, NULL, &error);
  g_assert_no_error (error);
  out = qlean_exec_result_get_stdout_text (result);
  g_assert_cmpstr (out, ==, "bar|a b $HOME `x` ;|unset");
  g_clear_object (&result);
  g_clear_pointer (&out, g_free);

  qlean_guest_launcher_set_environ (launcher, only);
  result = qlean_guest_launcher_run (launcher, machine, env_argv, NULL, &error);
  g_assert_no_error (error);
  out = qlean_exec_result_get_stdout_text (result);
  g_assert_nonnull (strstr (out, "ONLY=1\n"));
  g_assert_null (strstr (out, "FOO="));
  g_assert_null (strstr (out, "HOME="));
  g_clear_object (&result);
  g_clear_pointer (&out, g_free);

  result = qlean_guest_launcher_run (launcher, machine, verbatim, NULL, &error);
  g_assert_no_error (error);
  out = qlean_exec_result_get_stdout_text (result);
  g_assert_cmpstr (out, ==, "$(echo pwned) `id`|a 'b' \"c\"\n\\");
}

static void
test_cwd (void)
{
  QleanMachine *machine = exec_machine ();
  const char * const pwd[] = { "pwd", NULL };
  g_autoptr(QleanGuestLauncher) launcher = NULL;
  g_autoptr(QleanExecResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;

  if (machine == NULL)
    return;

  launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_NONE);
  result = qlean_guest_launcher_run (launcher, machine, pwd, NULL, &error);
  g_assert_no_error (error);
  out = qlean_exec_result_get_stdout_text (result);
  g_assert_cmpstr (out, ==, "/\n");
  g_clear_object (&result);
  g_clear_pointer (&out, g_free);

  qlean_guest_launcher_set_cwd (launcher, "/tmp");
  result = qlean_guest_launcher_run (launcher, machine, pwd, NULL, &error);
  g_assert_no_error (error);
  out = qlean_exec_result_get_stdout_text (result);
  g_assert_cmpstr (out, ==, "/tmp\n");
  g_clear_object (&result);

  /* A missing directory is an error that names it, not a command that ran. */
  qlean_guest_launcher_set_cwd (launcher, "/nonexistent-dir");
  result = qlean_guest_launcher_run (launcher, machine, pwd, NULL, &error);
  g_assert_null (result);
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "/nonexistent-dir"));
}

static void
test_user (void)
{
  QleanMachine *machine = exec_machine ();
  const char * const id[] = { "sh", "-c", "echo $(id -u):$(id -g):$HOME:$USER", NULL };
  g_autoptr(QleanGuestLauncher) launcher = NULL;
  g_autoptr(QleanExecResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;

  if (machine == NULL)
    return;

  launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_NONE);
  qlean_guest_launcher_set_user (launcher, "nobody");
  result = qlean_guest_launcher_run (launcher, machine, id, NULL, &error);
  g_assert_no_error (error);
  out = qlean_exec_result_get_stdout_text (result);
  g_assert_cmpstr (out, ==, "65534:65534:/nonexistent:nobody\n");
  g_clear_object (&result);
  g_clear_pointer (&out, g_free);

  /* By number, too. */
  qlean_guest_launcher_set_user (launcher, "65534");
  result = qlean_guest_launcher_run (launcher, machine, id, NULL, &error);
  g_assert_no_error (error);
  out = qlean_exec_result_get_stdout_text (result);
  g_assert_true (g_str_has_prefix (out, "65534:"));
  g_clear_object (&result);

  qlean_guest_launcher_set_user (launcher, "no-such-user");
  result = qlean_guest_launcher_run (launcher, machine, id, NULL, &error);
  g_assert_null (result);
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "no-such-user"));
}

/* stdin */

GBytes *
random_bytes (gsize   size,
              guint32 seed)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (seed);
  guint32 *words = g_malloc (size + 4);

  for (gsize i = 0; i < size / 4 + 1; i++)
    words[i] = g_rand_int (rand);
  return g_bytes_new_take (words, size);
}

/* 10 MiB of binary data through `cat`, by the stdin pipe and as the
 * launcher's fixed input, compared by checksum on both sides. */
static void
test_stdin_round_trip (void)
{
  QleanMachine *machine = exec_machine ();
  const char * const cat[] = { "cat", NULL };
  const char * const sum[] = { "sha256sum", NULL };
  g_autoptr(GBytes) data = random_bytes (10 * 1024 * 1024, 10);
  g_autofree char *expected = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, data);
  g_autoptr(QleanGuestLauncher) launcher = NULL;
  g_autoptr(QleanGuestProcess) process = NULL;
  g_autoptr(QleanExecResult) result = NULL;
  g_autoptr(GBytes) out = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *got = NULL;
  g_autofree char *guest_sum = NULL;
  gint64 start;

  if (machine == NULL)
    return;

  /* Over the stock agent, the pipe's input goes through guest files and
   * a pump in the guest: the same bytes must come out. */
  launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_STDIN_PIPE |
                                       QLEAN_GUEST_PROCESS_FLAGS_STDOUT_PIPE);
  process = spawn (launcher, machine, cat);
  start = g_get_monotonic_time ();
  qlean_guest_process_communicate (process, data, NULL, &out, NULL, &error);
  g_assert_no_error (error);
  g_test_message ("10 MiB through a stdin pipe and back: %.1f s", seconds_since (start));
  g_assert_true (qlean_guest_process_get_successful (process));
  g_assert_cmpuint (g_bytes_get_size (out), ==, g_bytes_get_size (data));
  got = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, out);
  g_assert_cmpstr (got, ==, expected);
  g_assert_true (agent_files_gone (machine));

  /* The guest sees exactly these bytes. */
  qlean_guest_launcher_set_flags (launcher, QLEAN_GUEST_PROCESS_FLAGS_NONE);
  qlean_guest_launcher_set_stdin (launcher, data);
  start = g_get_monotonic_time ();
  result = qlean_guest_launcher_run (launcher, machine, sum, NULL, &error);
  g_assert_no_error (error);
  g_test_message ("10 MiB as fixed input: %.1f s", seconds_since (start));
  g_assert_true (qlean_exec_result_success (result));
  guest_sum = qlean_exec_result_get_stdout_text (result);
  guest_sum[strcspn (guest_sum, " ")] = '\0';
  g_assert_cmpstr (guest_sum, ==, expected);
}

/* Status */

static void
test_exit_and_signal (void)
{
  QleanMachine *machine = exec_machine ();
  const char * const killed[] = { "sh", "-c", "kill -9 $$", NULL };
  g_autoptr(QleanExecResult) result = NULL;
  g_autoptr(QleanGuestLauncher) launcher = NULL;
  g_autoptr(QleanGuestProcess) process = NULL;
  g_autoptr(GError) error = NULL;

  if (machine == NULL)
    return;

  result = test_run (machine, "exit 7");
  g_assert_cmpint (qlean_exec_result_get_exit_status (result), ==, 7);
  g_assert_cmpint (qlean_exec_result_get_signal (result), ==, 0);
  g_assert_false (qlean_exec_result_get_if_signaled (result));
  g_clear_object (&result);

  result = test_run (machine, "kill -9 $$");
  g_assert_true (qlean_exec_result_get_if_signaled (result));
  g_assert_cmpint (qlean_exec_result_get_signal (result), ==, 9);
  g_assert_cmpint (qlean_exec_result_get_exit_status (result), ==, -1);
  g_assert_false (qlean_exec_result_success (result));

  launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_NONE);
  process = spawn (launcher, machine, killed);
  g_assert_false (qlean_guest_process_wait_check (process, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_FAILED);
  g_assert_true (qlean_guest_process_get_if_signaled (process));
  g_assert_false (qlean_guest_process_get_if_exited (process));
  g_assert_cmpint (qlean_guest_process_get_term_sig (process), ==, 9);
  g_assert_cmpint (qlean_guest_process_get_exit_status (process), ==, -1);
}

/* Terminals */

/* Reads @stream until what came holds @needle; returns all of it. */
static char *
read_until (GInputStream *stream,
            const char   *needle)
{
  GString *got = g_string_new (NULL);

  while (strstr (got->str, needle) == NULL)
    {
      char buffer[4096];
      g_autoptr(GError) error = NULL;
      gssize n = g_input_stream_read (stream, buffer, sizeof buffer, NULL, &error);

      g_assert_no_error (error);
      if (n == 0)
        break;
      g_string_append_len (got, buffer, n);
    }
  return g_string_free (got, FALSE);
}

/* A terminal of the launcher's size, resized while the process runs,
 * with input through its line discipline and one output. */
static void
test_terminal (void)
{
  QleanMachine *machine = exec_machine ();
  const char * const script[] = { "sh", "-c", "stty size; [ -t 0 ] && [ -t 2 ] && echo ttys; "
                                  "read x; stty size; echo got-$x >&2; exit 4", NULL };
  g_autoptr(QleanGuestLauncher) launcher = NULL;
  g_autoptr(QleanGuestProcess) process = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *first = NULL;
  g_autofree char *second = NULL;

  if (skip_on_agent ("a terminal needs qlean-guest; the guest agent runs commands on pipes"))
    return;
  if (machine == NULL)
    return;

  launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_TERMINAL |
                                       QLEAN_GUEST_PROCESS_FLAGS_STDIN_PIPE |
                                       QLEAN_GUEST_PROCESS_FLAGS_STDOUT_PIPE |
                                       QLEAN_GUEST_PROCESS_FLAGS_STDERR_PIPE);
  qlean_guest_launcher_set_window_size (launcher, 33, 77);
  process = spawn (launcher, machine, script);
  g_assert_null (qlean_guest_process_get_stderr_pipe (process));
  first = read_until (qlean_guest_process_get_stdout_pipe (process), "ttys");
  g_assert_nonnull (strstr (first, "33 77\r\nttys"));

  qlean_guest_process_set_window_size (process, 40, 100);
  /* The resize and the input travel separately: let it land first. */
  g_usleep (500 * 1000);
  g_output_stream_write_all (qlean_guest_process_get_stdin_pipe (process), "abc\r", 4, NULL, NULL, &error);
  g_assert_no_error (error);
  second = read_until (qlean_guest_process_get_stdout_pipe (process), "got-abc");
  g_assert_nonnull (strstr (second, "40 100\r\ngot-abc"));
  g_assert_true (qlean_guest_process_wait (process, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (qlean_guest_process_get_exit_status (process), ==, 4);
}

/* Timeouts and cancellation */

static void
test_timeout_kills (void)
{
  QleanMachine *machine = exec_machine ();
  const char * const argv[] = { "sh", "-c", "echo partial; sleep 101; echo never", NULL };
  g_autoptr(QleanGuestLauncher) launcher = NULL;
  g_autoptr(QleanGuestProcess) process = NULL;
  g_autoptr(GBytes) out = NULL;
  g_autoptr(GBytes) partial = NULL;
  g_autoptr(GError) error = NULL;
  gint64 start;
  double elapsed;

  if (machine == NULL)
    return;

  launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_STDOUT_PIPE);
  qlean_guest_launcher_set_timeout (launcher, 1000);
  start = g_get_monotonic_time ();
  process = spawn (launcher, machine, argv);
  g_assert_false (qlean_guest_process_communicate (process, NULL, NULL, &out, NULL, &error));
  elapsed = seconds_since (start);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_assert_true (qlean_guest_process_get_timed_out (process));
  g_assert_cmpfloat (elapsed, >=, 0.9);
  g_assert_cmpfloat (elapsed, <, 10);

  partial = qlean_guest_process_get_stdout_bytes (process);
  g_assert_nonnull (partial);
  g_assert_cmpmem (g_bytes_get_data (partial, NULL), g_bytes_get_size (partial), "partial\n", 8);
  /* The whole process group went: the shell and its sleep. */
  g_assert_true (guest_process_gone (machine, "sleep 101"));
  g_assert_true (agent_files_gone (machine));
}

static gboolean
cancel_cb (gpointer user_data)
{
  g_cancellable_cancel (user_data);
  return G_SOURCE_REMOVE;
}

typedef struct
{
  GMainLoop *loop;
  gboolean   ok;
  GBytes    *out;
  GError    *error;
} CommunicateState;

static void
communicate_cb (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  CommunicateState *state = user_data;

  state->ok = qlean_guest_process_communicate_finish (QLEAN_GUEST_PROCESS (source), result,
                                                      &state->out, NULL, &state->error);
  g_main_loop_quit (state->loop);
}

static void
exec_cb (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  CommunicateState *state = user_data;
  g_autoptr(QleanExecResult) exec_result = qlean_machine_exec_finish (QLEAN_MACHINE (source), result,
                                                                      &state->error);

  state->ok = exec_result != NULL;
  g_main_loop_quit (state->loop);
}

/* Cancelling does what a timeout does: the process group dies, the call
 * fails (G_IO_ERROR_CANCELLED), the partial output is kept. */
static void
test_cancel_kills (void)
{
  QleanMachine *machine = exec_machine ();
  const char * const argv[] = { "sh", "-c", "echo partial; sleep 102; echo never", NULL };
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GMainLoop) loop = g_main_loop_new (context, FALSE);
  g_autoptr(QleanGuestLauncher) launcher = NULL;
  g_autoptr(QleanGuestProcess) process = NULL;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GCancellable) exec_cancellable = g_cancellable_new ();
  g_autoptr(GBytes) partial = NULL;
  g_autoptr(GSource) timer = NULL;
  CommunicateState state = { loop, FALSE, NULL, NULL };
  gint64 start;

  if (machine == NULL)
    return;

  g_main_context_push_thread_default (context);
  launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_STDOUT_PIPE);
  process = spawn (launcher, machine, argv);
  start = g_get_monotonic_time ();
  timer = g_timeout_source_new (1000);
  g_source_set_callback (timer, cancel_cb, cancellable, NULL);
  g_source_attach (timer, context);
  qlean_guest_process_communicate_async (process, NULL, cancellable, communicate_cb, &state);
  g_main_loop_run (loop);
  g_assert_false (state.ok);
  g_assert_error (state.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_cmpfloat (seconds_since (start), <, 10);
  partial = qlean_guest_process_get_stdout_bytes (process);
  g_assert_cmpmem (g_bytes_get_data (partial, NULL), g_bytes_get_size (partial), "partial\n", 8);
  g_clear_error (&state.error);
  g_assert_true (guest_process_gone (machine, "sleep 102"));
  g_assert_true (agent_files_gone (machine));

  /* The same through qlean_machine_exec. */
  g_source_destroy (timer);
  g_clear_pointer (&timer, g_source_unref);
  timer = g_timeout_source_new (1000);
  g_source_set_callback (timer, cancel_cb, exec_cancellable, NULL);
  g_source_attach (timer, context);
  start = g_get_monotonic_time ();
  qlean_machine_exec_async (machine, "sleep 103", exec_cancellable, exec_cb, &state);
  g_main_loop_run (loop);
  g_assert_false (state.ok);
  g_assert_error (state.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_cmpfloat (seconds_since (start), <, 10);
  g_clear_error (&state.error);
  g_assert_true (guest_process_gone (machine, "sleep 103"));
  g_main_context_pop_thread_default (context);
}

/* A stdin pipe used line by line: each line's answer comes back before
 * the next line is written, and closing the pipe is end-of-file. */
static void
test_stdin_interactive (void)
{
  QleanMachine *machine = exec_machine ();
  const char * const argv[] = {
    "sh", "-c", "while IFS= read -r l; do echo \"got $l\"; done; echo eof", NULL
  };
  g_autoptr(QleanGuestLauncher) launcher = NULL;
  g_autoptr(QleanGuestProcess) process = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(GError) error = NULL;
  GOutputStream *in;
  const char *lines[] = { "one", "two words", NULL };

  if (machine == NULL)
    return;

  launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_STDIN_PIPE |
                                       QLEAN_GUEST_PROCESS_FLAGS_STDOUT_PIPE);
  process = spawn (launcher, machine, argv);
  in = qlean_guest_process_get_stdin_pipe (process);
  out = g_data_input_stream_new (qlean_guest_process_get_stdout_pipe (process));

  for (guint i = 0; lines[i] != NULL; i++)
    {
      g_autofree char *line = g_strconcat (lines[i], "\n", NULL);
      g_autofree char *expected = g_strconcat ("got ", lines[i], NULL);
      g_autofree char *answer = NULL;

      g_assert_true (g_output_stream_write_all (in, line, strlen (line), NULL, NULL, &error));
      g_assert_no_error (error);
      answer = g_data_input_stream_read_line (out, NULL, NULL, &error);
      g_assert_no_error (error);
      g_assert_cmpstr (answer, ==, expected);
    }

  /* Still running: it answered, and waits for more. */
  g_assert_false (qlean_guest_process_get_if_exited (process));
  g_assert_true (g_output_stream_close (in, NULL, &error));
  g_assert_no_error (error);
  {
    g_autofree char *last = g_data_input_stream_read_line (out, NULL, NULL, &error);

    g_assert_no_error (error);
    g_assert_cmpstr (last, ==, "eof");
  }
  g_assert_true (qlean_guest_process_wait_check (process, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (agent_files_gone (machine));
}

/* A process that ends without reading all of its stdin: the writes stop
 * (the rest is refused as a broken pipe, which communicate takes as the
 * end), nothing hangs, and nothing stays behind in the guest. */
static void
test_stdin_unread (void)
{
  QleanMachine *machine = exec_machine ();
  const char * const head[] = { "head", "-c", "5", NULL };
  const char * const none[] = { "sh", "-c", "echo ignored", NULL };
  g_autoptr(GBytes) data = random_bytes (4 * 1024 * 1024, 4);
  g_autoptr(QleanGuestLauncher) launcher = NULL;
  g_autoptr(QleanGuestProcess) process = NULL;
  g_autoptr(GBytes) out = NULL;
  g_autoptr(GError) error = NULL;

  if (machine == NULL)
    return;

  launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_STDIN_PIPE |
                                       QLEAN_GUEST_PROCESS_FLAGS_STDOUT_PIPE);
  process = spawn (launcher, machine, head);
  g_assert_true (qlean_guest_process_communicate (process, data, NULL, &out, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_guest_process_get_successful (process));
  g_assert_cmpmem (g_bytes_get_data (out, NULL), g_bytes_get_size (out),
                   g_bytes_get_data (data, NULL), 5);
  g_clear_pointer (&out, g_bytes_unref);
  g_clear_object (&process);

  process = spawn (launcher, machine, none);
  g_assert_true (qlean_guest_process_communicate (process, data, NULL, &out, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_guest_process_get_successful (process));
  g_assert_cmpmem (g_bytes_get_data (out, NULL), g_bytes_get_size (out), "ignored\n", 8);
  g_assert_true (agent_files_gone (machine));
}

/* Whether any process of the guest is in the process group @pgid
 * (zombies included), until 10 s passed. */
static gboolean
guest_group_gone (QleanMachine *machine,
                  const char   *pgid)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  while (g_get_monotonic_time () < deadline)
    {
      g_autofree char *stat = test_run_out (machine, "cat /proc/[0-9]*/stat 2>/dev/null; true");
      g_auto(GStrv) lines = g_strsplit (stat, "\n", -1);
      gboolean found = FALSE;

      for (guint i = 0; lines[i] != NULL && !found; i++)
        {
          /* After the command's name: state, ppid, pgrp. */
          const char *rest = strrchr (lines[i], ')');
          g_auto(GStrv) fields = rest ? g_strsplit (rest + 2, " ", 4) : NULL;

          found = fields != NULL && g_strv_length (fields) >= 3 &&
                  g_strcmp0 (fields[2], pgid) == 0;
        }
      if (!found)
        return TRUE;
      g_usleep (100 * 1000);
    }

  return FALSE;
}

/* Killing, or cancelling, a process whose stdin pipe is open ends it and
 * whatever feeds its stdin in the guest, with input still waiting. */
static void
test_stdin_kill_and_cancel (void)
{
  QleanMachine *machine = exec_machine ();
  const char * const cat[] = { "cat", NULL };
  const char * const sleeper[] = { "sleep", "104", NULL };
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(GMainLoop) loop = g_main_loop_new (context, FALSE);
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GBytes) data = random_bytes (8 * 1024 * 1024, 8);
  g_autoptr(QleanGuestLauncher) launcher = NULL;
  g_autoptr(QleanGuestProcess) process = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GSource) timer = NULL;
  g_autofree char *pgid = NULL;
  CommunicateState state = { loop, FALSE, NULL, NULL };
  char echo[6] = "";
  gsize got = 0;

  if (machine == NULL)
    return;

  launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_STDIN_PIPE |
                                       QLEAN_GUEST_PROCESS_FLAGS_STDOUT_PIPE);
  process = spawn (launcher, machine, cat);
  pgid = g_strdup (qlean_guest_process_get_identifier (process));
  g_assert_true (g_output_stream_write_all (qlean_guest_process_get_stdin_pipe (process),
                                            "alive\n", 6, NULL, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (g_input_stream_read_all (qlean_guest_process_get_stdout_pipe (process), echo, 6,
                                          &got, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (echo, got, "alive\n", 6);

  qlean_guest_process_force_exit (process);
  g_assert_false (qlean_guest_process_wait_check (process, NULL, &error));
  g_assert_true (qlean_guest_process_get_if_signaled (process));
  g_assert_cmpint (qlean_guest_process_get_term_sig (process), ==, 9);
  g_clear_error (&error);
  /* Over the agent the pump shared the process's group. */
  if (on_agent ())
    g_assert_true (guest_group_gone (machine, pgid));
  g_assert_true (agent_files_gone (machine));
  g_clear_object (&process);

  /* A process that never reads, with 8 MiB offered (more than waits
   * for it in the guest and on the host together): cancelling still ends
   * everything, the write that was blocked included. */
  g_main_context_push_thread_default (context);
  process = spawn (launcher, machine, sleeper);
  timer = g_timeout_source_new (2000);
  g_source_set_callback (timer, cancel_cb, cancellable, NULL);
  g_source_attach (timer, context);
  qlean_guest_process_communicate_async (process, data, cancellable, communicate_cb, &state);
  g_main_loop_run (loop);
  g_assert_false (state.ok);
  g_assert_error (state.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&state.error);
  g_clear_pointer (&state.out, g_bytes_unref);
  g_assert_true (guest_process_gone (machine, "sleep 104"));
  g_assert_true (agent_files_gone (machine));
  g_main_context_pop_thread_default (context);
}

/* Concurrency */

typedef struct
{
  GMainLoop *loop;
  guint      pending;
  guint      right;
  GString   *log;
} Concurrent;

typedef struct
{
  Concurrent *all;
  guint       index;
} OneExec;

/* Counts @exec_result right when it is @one's: its word and index on
 * stdout, its index as the status. */
static void
one_done (OneExec         *one,
          const char      *word,
          QleanExecResult *exec_result,
          GError          *error)
{
  g_autofree char *expected = g_strdup_printf ("%s-%u\n", word, one->index);
  g_autofree char *out = NULL;

  g_assert_no_error (error);
  out = qlean_exec_result_get_stdout_text (exec_result);
  if (g_str_equal (out, expected) && qlean_exec_result_get_exit_status (exec_result) == (int) one->index)
    one->all->right++;
  else
    g_string_append_printf (one->all->log, "%s %u got “%s”, status %d\n", word, one->index, out,
                            qlean_exec_result_get_exit_status (exec_result));

  if (--one->all->pending == 0)
    g_main_loop_quit (one->all->loop);
  g_free (one);
}

static void
one_exec_cb (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanExecResult) exec_result = qlean_machine_exec_finish (QLEAN_MACHINE (source), result,
                                                                      &error);

  one_done (user_data, "caller", exec_result, error);
}

static void
one_run_cb (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanExecResult) exec_result = qlean_guest_launcher_run_finish (QLEAN_GUEST_LAUNCHER (source),
                                                                            result, &error);

  one_done (user_data, "process", exec_result, error);
}

/* 16 commands in flight, finishing in another order than they started,
 * each result going to its own caller; then 8 launcher processes, whose
 * output comes through pipes (through the agent alone, files that are
 * polled), the same way. */
static void
test_concurrent (void)
{
  QleanMachine *machine = exec_machine ();
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  g_autoptr(QleanGuestLauncher) launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_NONE);
  Concurrent all = { loop, 16, 0, g_string_new (NULL) };

  if (machine == NULL)
    return;

  for (guint i = 0; i < 16; i++)
    {
      g_autofree char *command = g_strdup_printf ("sleep 0.%u; echo caller-%u; exit %u", 15 - i, i, i);
      OneExec *one = g_new0 (OneExec, 1);

      one->all = &all;
      one->index = i;
      qlean_machine_exec_async (machine, command, NULL, one_exec_cb, one);
    }
  g_main_loop_run (loop);

  g_assert_cmpstr (all.log->str, ==, "");
  g_assert_cmpuint (all.right, ==, 16);

  all.pending = 8;
  all.right = 0;
  for (guint i = 0; i < 8; i++)
    {
      g_autofree char *script = g_strdup_printf ("sleep 0.%u; echo process-%u; exit %u", 7 - i, i, i);
      const char * const argv[] = { "sh", "-c", script, NULL };
      OneExec *one = g_new0 (OneExec, 1);

      one->all = &all;
      one->index = i;
      qlean_guest_launcher_run_async (launcher, machine, argv, NULL, one_run_cb, one);
    }
  g_main_loop_run (loop);

  g_assert_cmpstr (all.log->str, ==, "");
  g_assert_cmpuint (all.right, ==, 8);
  g_assert_true (agent_files_gone (machine));
  g_string_free (all.log, TRUE);
}

static void
slow_cb (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  gint64 *done_at = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanExecResult) exec_result = qlean_machine_exec_finish (QLEAN_MACHINE (source), result,
                                                                      &error);

  g_assert_no_error (error);
  g_assert_true (qlean_exec_result_success (exec_result));
  *done_at = g_get_monotonic_time ();
}

static void
test_slow_does_not_block_fast (void)
{
  QleanMachine *machine = exec_machine ();
  g_autofree char *out = NULL;
  gint64 start, slow_done = 0;
  double fast;

  if (machine == NULL)
    return;

  start = g_get_monotonic_time ();
  qlean_machine_exec_async (machine, "sleep 3", NULL, slow_cb, &slow_done);
  out = test_run_out (machine, "echo fast");
  fast = seconds_since (start);
  g_assert_cmpstr (out, ==, "fast\n");
  g_assert_cmpfloat (fast, <, 1.5);
  g_assert_cmpint (slow_done, ==, 0);

  while (slow_done == 0)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpfloat ((slow_done - start) / (double) G_USEC_PER_SEC, >=, 2.9);
  g_test_message ("fast: %.0f ms while `sleep 3` ran", fast * 1000);
}

/* Big output */

/* @command's result with the 64 MiB cap a stream: qlean_machine_exec()
 * through qlean-guest; through the agent alone (whose exec is the
 * agent's own, capped at 16 MiB) a QleanGuestLauncher's run. */
static QleanExecResult *
run_with_big_cap (QleanMachine *machine,
                  const char   *command)
{
  const char * const argv[] = { "/bin/sh", "-c", command, NULL };
  g_autoptr(QleanGuestLauncher) launcher = NULL;
  g_autoptr(GError) error = NULL;
  QleanExecResult *result;

  if (!on_agent ())
    return test_run (machine, command);

  launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_NONE);
  result = qlean_guest_launcher_run (launcher, machine, argv, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (result);
  return result;
}

#define BIG_SIZE (64 * 1024 * 1024)
#define BIG_BLOCK (1024 * 1024)
/* 64 blocks of 1 MiB: an 8-digit index, then the same random 1 MiB - 8
 * bytes. Cheap for the guest even under TCG, and a lost, doubled or
 * misplaced piece changes the checksum, as blocks do not line up with
 * the frames that carry them. */
#define BIG_COMMAND "i=0; while [ $i -lt 64 ]; do printf %08d $i; cat /tmp/qlean-chunk; i=$((i+1)); done"

static char *
big_checksum (GBytes *chunk)
{
  GChecksum *checksum = g_checksum_new (G_CHECKSUM_SHA256);
  char *result;

  for (guint i = 0; i < BIG_SIZE / BIG_BLOCK; i++)
    {
      char index[16];

      g_snprintf (index, sizeof index, "%08u", i);
      g_checksum_update (checksum, (const guchar *) index, 8);
      g_checksum_update (checksum, g_bytes_get_data (chunk, NULL), g_bytes_get_size (chunk));
    }
  result = g_strdup (g_checksum_get_string (checksum));
  g_checksum_free (checksum);
  return result;
}

static void
test_big_output (void)
{
  QleanMachine *machine = exec_machine ();
  const char * const argv[] = { "sh", "-c", BIG_COMMAND, NULL };
  g_autoptr(GBytes) chunk = NULL;
  g_autofree char *expected = NULL;
  g_autofree char *got = NULL;
  g_autoptr(QleanExecResult) result = NULL;
  g_autoptr(QleanGuestLauncher) launcher = NULL;
  g_autoptr(QleanGuestProcess) process = NULL;
  g_autoptr(GChecksum) checksum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autoptr(GError) error = NULL;
  GInputStream *out;
  gsize total = 0;
  gssize n;
  guint8 *buffer;
  gint64 start;

  if (machine == NULL)
    return;

  g_free (test_run_out (machine, "head -c 1048568 /dev/urandom > /tmp/qlean-chunk"));
  chunk = qlean_machine_read (machine, "/tmp/qlean-chunk", NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_bytes_get_size (chunk), ==, BIG_BLOCK - 8);
  expected = big_checksum (chunk);

  /* Four times what the agent could have carried, all of it. */
  start = g_get_monotonic_time ();
  result = run_with_big_cap (machine, BIG_COMMAND);
  g_test_message ("64 MiB through %s in %.2f s",
                  on_agent () ? "the launcher's run" : "qlean_machine_exec", seconds_since (start));
  g_assert_true (qlean_exec_result_success (result));
  g_assert_false (qlean_exec_result_get_stdout_truncated (result));
  g_assert_cmpuint (g_bytes_get_size (qlean_exec_result_get_stdout (result)), ==, BIG_SIZE);
  got = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, qlean_exec_result_get_stdout (result));
  g_assert_cmpstr (got, ==, expected);
  g_clear_object (&result);

  /* And read live from the launcher's pipe, never held whole. */
  launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_STDOUT_PIPE);
  process = spawn (launcher, machine, argv);
  out = qlean_guest_process_get_stdout_pipe (process);
  buffer = g_malloc (256 * 1024);
  while ((n = g_input_stream_read (out, buffer, 256 * 1024, NULL, &error)) > 0)
    {
      g_checksum_update (checksum, buffer, n);
      total += n;
    }
  g_free (buffer);
  g_assert_no_error (error);
  qlean_guest_process_wait_check (process, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (total, ==, BIG_SIZE);
  g_assert_cmpstr (g_checksum_get_string (checksum), ==, expected);
  g_free (test_run_out (machine, "rm /tmp/qlean-chunk"));
}

/* Output beyond exec's cap (64 MiB a stream through qlean-guest) is read
 * and dropped, not kept: the result says it was cut short, and the
 * command still ran to its end. */
static void
test_capped_output (void)
{
  QleanMachine *machine = exec_machine ();
  g_autoptr(QleanExecResult) result = NULL;
  gint64 start;

  if (machine == NULL)
    return;

  start = g_get_monotonic_time ();
  result = run_with_big_cap (machine, "dd if=/dev/zero bs=1048576 count=65 2>/dev/null; echo done >&2");
  g_test_message ("65 MiB of output in %.2f s", seconds_since (start));
  g_assert_true (qlean_exec_result_success (result));
  g_assert_cmpuint (g_bytes_get_size (qlean_exec_result_get_stdout (result)), ==, BIG_SIZE);
  g_assert_true (qlean_exec_result_get_stdout_truncated (result));
  g_assert_false (qlean_exec_result_get_stderr_truncated (result));
  g_assert_cmpmem (g_bytes_get_data (qlean_exec_result_get_stderr (result), NULL),
                   g_bytes_get_size (qlean_exec_result_get_stderr (result)), "done\n", 5);
}

/* A process whose piped output nobody reads cannot fill the host's
 * memory: once 16 MiB wait on the host, it is killed with a clear error,
 * and what waited still reaches the pipe. Both drivers stop at exactly
 * that limit (QLEAN_GUEST_RECEIVE_LIMIT, AGENT_UNREAD_LIMIT), so what
 * the pipe gives is at most the limit plus what the pipe itself held
 * when the process was killed: its capacity. */
#define UNREAD_LIMIT (16 * 1024 * 1024)
static void
test_unread_pipe (void)
{
  QleanMachine *machine = exec_machine ();
  const char * const argv[] = { "sh", "-c", "dd if=/dev/zero bs=1048576 count=64 2>/dev/null", NULL };
  g_autoptr(QleanGuestLauncher) launcher = NULL;
  g_autoptr(QleanGuestProcess) process = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree guint8 *buffer = NULL;
  GInputStream *stdout_pipe;
  gsize total = 0;
  int pipe_size;
  gssize n;

  if (machine == NULL)
    return;

  launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_STDOUT_PIPE);
  process = spawn (launcher, machine, argv);
  stdout_pipe = qlean_guest_process_get_stdout_pipe (process);
  g_assert_true (G_IS_UNIX_INPUT_STREAM (stdout_pipe));
  g_assert_false (qlean_guest_process_wait (process, NULL, &error));
  g_test_message ("%s", error->message);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE);
  g_assert_nonnull (strstr (error->message, "read its pipes"));

  pipe_size = fcntl (g_unix_input_stream_get_fd (G_UNIX_INPUT_STREAM (stdout_pipe)), F_GETPIPE_SZ);
  g_assert_cmpint (pipe_size, >, 0);
  buffer = g_malloc (256 * 1024);
  while ((n = g_input_stream_read (stdout_pipe, buffer, 256 * 1024, NULL, NULL)) > 0)
    total += n;
  g_test_message ("%" G_GSIZE_FORMAT " bytes reached the pipe, %d of them held by the pipe",
                  total, pipe_size);
  g_assert_cmpuint (total, >=, 15 * 1024 * 1024);
  g_assert_cmpuint (total, <=, UNREAD_LIMIT + pipe_size);
}

/* Errors */

static void
test_not_found (void)
{
  QleanMachine *machine = exec_machine ();
  const char * const missing[] = { "qlean-no-such-program", "--flag", NULL };
  const char * const missing_path[] = { "/nonexistent/bin/tool", NULL };
  g_autoptr(QleanGuestLauncher) launcher = NULL;
  g_autoptr(QleanGuestProcess) process = NULL;
  g_autoptr(QleanExecResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *err = NULL;

  if (machine == NULL)
    return;

  launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_STDOUT_PIPE);
  process = qlean_guest_launcher_spawnv (launcher, machine, missing, &error);
  g_assert_null (process);
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_COMMAND_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "qlean-no-such-program"));
  g_clear_error (&error);

  result = qlean_guest_launcher_run (launcher, machine, missing_path, NULL, &error);
  g_assert_null (result);
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_COMMAND_NOT_FOUND);
  g_clear_error (&error);

  /* Through the shell it is the shell's 127, never a success. */
  result = test_run (machine, "qlean-no-such-program");
  g_assert_cmpint (qlean_exec_result_get_exit_status (result), ==, 127);
  err = qlean_exec_result_get_stderr_text (result);
  g_assert_nonnull (strstr (err, "not found"));
  /* Failed starts leave nothing behind either. */
  g_assert_true (agent_files_gone (machine));
}

/* Over the agent, qlean_machine_exec() starts `setsid -- ARGV` through
 * guest-exec; a guest without setsid gets the shell wrapper, which runs
 * the argv as it is. */
static void
test_agent_without_setsid (void)
{
  QleanMachine *machine = exec_machine ();
  g_autoptr(QleanExecResult) result = NULL;
  g_autofree char *setsid = NULL;
  g_autofree char *out = NULL;
  g_autofree char *command = NULL;

  if (machine == NULL)
    return;
  if (!on_agent ())
    {
      g_test_skip ("it checks how the agent transport starts a command");
      return;
    }

  setsid = test_run_out (machine, "which setsid");
  g_strchomp (setsid);
  g_assert_true (g_path_is_absolute (setsid));
  command = g_strdup_printf ("mv %s /setsid.away", setsid);
  g_free (test_run_out (machine, command));

  result = test_run (machine, "echo without setsid; exit 3");
  g_assert_cmpint (qlean_exec_result_get_exit_status (result), ==, 3);
  out = qlean_exec_result_get_stdout_text (result);
  g_assert_cmpstr (out, ==, "without setsid\n");
  g_clear_object (&result);
  result = test_run (machine, "/qlean-no-such-program");
  g_assert_cmpint (qlean_exec_result_get_exit_status (result), ==, 127);

  g_free (command);
  command = g_strdup_printf ("mv /setsid.away %s", setsid);
  g_free (test_run_out (machine, command));
  g_free (out);
  out = test_run_out (machine, "which setsid");
  g_assert_cmpstr (g_strchomp (out), ==, setsid);
}

/* The transport is decided once per run. A machine that chose
 * qlean-guest fails exec, naming qlean-guest, while it does not answer
 * (it never switches to the agent), and works again once it is back.
 * The minimal image's init restarts qlean-guest 0.1 s after it exits,
 * so it is first made unstartable (renamed), then killed; the host
 * learns of its end from QEMU's VSERPORT_CHANGE event. A machine whose
 * config asks for the agent runs everything through qemu-ga. */
static void
test_agent_fallback (void)
{
  QleanMachine *shared = exec_machine ();
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(QleanMachineConfig) config = NULL;
  g_autoptr(GError) failure = NULL;
  g_autoptr(GError) spawn_error = NULL;
  g_autofree char *parent = NULL;
  gint64 deadline;

  if (skip_on_agent ("this run's machine has no qlean-guest to lose or to fall back from"))
    return;
  if (shared == NULL)
    return;

  /* Who runs our shell: qlean-guest, as long as it answers. */
  g_assert_cmpint (qlean_machine_get_guest_transport (shared), ==, QLEAN_GUEST_TRANSPORT_QLEAN_GUEST);
  parent = test_run_out (shared, "cat /proc/$PPID/comm");
  g_assert_cmpstr (parent, ==, "qlean-guest\n");
  g_free (test_run_out (shared, "mv /usr/lib/qlean/qlean-guest /usr/lib/qlean/qlean-guest.off && "
                            "(sleep 0.3; kill -9 $(pidof qlean-guest)) </dev/null >/dev/null 2>&1 &"));

  deadline = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;
  do
    {
      g_autoptr(QleanExecResult) result = NULL;

      g_usleep (200 * 1000);
      g_clear_error (&failure);
      result = qlean_machine_exec (shared, "true", NULL, &failure);
    }
  while (failure == NULL && g_get_monotonic_time () < deadline);
  g_assert_nonnull (failure);
  g_assert_nonnull (strstr (failure->message, "qlean-guest"));
  g_assert_cmpint (qlean_machine_get_guest_transport (shared), ==, QLEAN_GUEST_TRANSPORT_QLEAN_GUEST);

  /* Back: init starts it again, and the host's HELLO finds it. The
   * agent, which the machine has as well, puts it back. */
  {
    g_autoptr(QleanQgaClient) qga = qlean_machine_dup_qga (shared);
    const char *args[] = { "/usr/lib/qlean/qlean-guest.off", "/usr/lib/qlean/qlean-guest", NULL };
    g_autoptr(GError) error = NULL;

    qlean_qga_client_exec (qga, "/bin/mv", args, NULL, NULL, FALSE, NULL, &error);
    g_assert_no_error (error);
  }
  deadline = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;
  do
    {
      g_autoptr(QleanExecResult) result = NULL;

      g_usleep (200 * 1000);
      g_clear_pointer (&parent, g_free);
      result = qlean_machine_exec (shared, "cat /proc/$PPID/comm", NULL, NULL);
      if (result != NULL)
        parent = qlean_exec_result_get_stdout_text (result);
    }
  while (g_strcmp0 (parent, "qlean-guest\n") != 0 && g_get_monotonic_time () < deadline);
  g_assert_cmpstr (parent, ==, "qlean-guest\n");

  /* The agent transport: qemu-ga runs the commands. */
  config = qlean_machine_config_new ();
  qlean_machine_config_set_guest_transport (config, QLEAN_GUEST_TRANSPORT_AGENT);
  machine = qlean_machine_new_with_name ("exec-agent", NULL, config);
  qlean_machine_spawn (machine, NULL, &spawn_error);
  g_assert_no_error (spawn_error);
  g_assert_cmpint (qlean_machine_get_guest_transport (machine), ==, QLEAN_GUEST_TRANSPORT_AGENT);
  g_clear_pointer (&parent, g_free);
  parent = test_run_out (machine, "cat /proc/$PPID/comm");
  g_assert_cmpstr (parent, ==, "qemu-ga\n");

  /* The agent runs commands on pipes: a terminal is refused, saying why. */
  {
    g_autoptr(QleanGuestLauncher) launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_TERMINAL);
    const char * const sh[] = { "sh", NULL };
    g_autoptr(QleanGuestProcess) process = NULL;
    g_autoptr(GError) error = NULL;

    process = qlean_guest_launcher_spawnv (launcher, machine, sh, &error);
    g_assert_null (process);
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
    g_assert_nonnull (strstr (error->message, "needs qlean-guest"));
  }

  /* Output and status come through the agent just as well. */
  {
    g_autoptr(QleanExecResult) result = test_run (machine, "echo via-agent; echo err >&2; exit 3");
    g_autofree char *out = qlean_exec_result_get_stdout_text (result);
    g_autofree char *err = qlean_exec_result_get_stderr_text (result);

    g_assert_cmpstr (out, ==, "via-agent\n");
    g_assert_cmpstr (err, ==, "err\n");
    g_assert_cmpint (qlean_exec_result_get_exit_status (result), ==, 3);
  }

  /* The agent's cap is 16 MiB a stream, and the result says it cut. */
  {
    gint64 start = g_get_monotonic_time ();
    g_autoptr(QleanExecResult) result = test_run (machine, "dd if=/dev/zero bs=1048576 count=17 2>/dev/null");

    g_test_message ("17 MiB through the agent in %.2f s", seconds_since (start));
    g_assert_true (qlean_exec_result_success (result));
    g_assert_cmpuint (g_bytes_get_size (qlean_exec_result_get_stdout (result)), ==, 16 * 1024 * 1024);
    g_assert_true (qlean_exec_result_get_stdout_truncated (result));
    g_assert_false (qlean_exec_result_get_stderr_truncated (result));
  }

  g_assert_true (qlean_machine_shutdown (machine, NULL, &spawn_error));
  g_assert_no_error (spawn_error);
}

/* A machine shared with other processes, as `qlean start` does: what is
 * attached runs commands and processes and moves files, through a relay
 * of qlean-guest's channel or, on the agent alone, through a proxy of
 * the agent (which a marker file beside the socket announces); the share
 * ends with the machine and leaves nothing behind. Its own machine, as
 * it stops it. */
static void
test_share_attach (void)
{
  const char *argv[] = { "sh", "-c", "echo \"$GREETING\"; pwd", NULL };
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(QleanMachine) attached = NULL;
  g_autoptr(QleanExecResult) result = NULL;
  g_autoptr(QleanGuestLauncher) launcher = NULL;
  g_autoptr(GBytes) contents = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *socket_path = NULL;
  g_autofree char *other_path = NULL;
  g_autofree char *marker = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  if (!test_have_qemu ())
    return;

  if (on_agent ())
    {
      qlean_machine_config_set_guest_transport (config, QLEAN_GUEST_TRANSPORT_AGENT);
      qlean_machine_config_set_cmdline (config, "qlean.noguest=1");
    }
  machine = qlean_machine_new_with_name ("exec-shared", NULL, config);
  qlean_machine_spawn (machine, NULL, &error);
  g_assert_no_error (error);

  dir = g_dir_make_tmp ("qlean-test-share-XXXXXX", &error);
  g_assert_no_error (error);
  socket_path = g_build_filename (dir, "ctl.sock", NULL);
  other_path = g_build_filename (dir, "other.sock", NULL);
  marker = g_strconcat (socket_path, ".agent", NULL);
  g_assert_true (qlean_machine_share (machine, socket_path, &error));
  g_assert_no_error (error);
  g_assert_cmpint (g_file_test (marker, G_FILE_TEST_EXISTS), ==, on_agent ());
  g_assert_false (qlean_machine_share (machine, other_path, &error));
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE);
  g_clear_error (&error);

  attached = qlean_machine_attach ("exec-shared", socket_path, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (qlean_machine_get_guest_transport (attached), ==,
                   on_agent () ? QLEAN_GUEST_TRANSPORT_AGENT : QLEAN_GUEST_TRANSPORT_QLEAN_GUEST);

  result = qlean_machine_exec (attached, "echo out; echo err >&2; hostname; exit 4", NULL, &error);
  g_assert_no_error (error);
  out = qlean_exec_result_get_stdout_text (result);
  err = qlean_exec_result_get_stderr_text (result);
  g_assert_cmpstr (out, ==, "out\nexec-shared\n");
  g_assert_cmpstr (err, ==, "err\n");
  g_assert_cmpint (qlean_exec_result_get_exit_status (result), ==, 4);
  g_clear_object (&result);
  g_clear_pointer (&out, g_free);

  launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_NONE);
  qlean_guest_launcher_setenv (launcher, "GREETING", "through the share", TRUE);
  qlean_guest_launcher_set_cwd (launcher, "/tmp");
  result = qlean_guest_launcher_run (launcher, attached, argv, NULL, &error);
  g_assert_no_error (error);
  out = qlean_exec_result_get_stdout_text (result);
  g_assert_cmpstr (out, ==, "through the share\n/tmp\n");

  /* Files go to the owner's guest. */
  contents = g_bytes_new_static ("shared\n", 7);
  g_assert_true (qlean_machine_write (attached, "/tmp/shared.txt", contents, NULL, &error));
  g_assert_no_error (error);
  g_clear_pointer (&contents, g_bytes_unref);
  contents = qlean_machine_read (machine, "/tmp/shared.txt", NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (g_bytes_get_data (contents, NULL), g_bytes_get_size (contents), "shared\n", 7);

  /* Dropping what is attached only disconnects. */
  g_clear_object (&attached);
  g_assert_cmpint (qlean_machine_get_state (machine), ==, QLEAN_MACHINE_STATE_RUNNING);

  g_assert_true (qlean_machine_shutdown (machine, NULL, &error));
  g_assert_no_error (error);
  g_assert_false (g_file_test (socket_path, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (marker, G_FILE_TEST_EXISTS));
  g_assert_cmpint (g_rmdir (dir), ==, 0);
}

int
main (int argc,
      char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/exec/output/live", test_live_output);
  g_test_add_func ("/exec/output/stderr-order", test_stderr_order);
  g_test_add_func ("/exec/launcher/env", test_env);
  g_test_add_func ("/exec/launcher/cwd", test_cwd);
  g_test_add_func ("/exec/launcher/user", test_user);
  g_test_add_func ("/exec/stdin/10-mib-round-trip", test_stdin_round_trip);
  g_test_add_func ("/exec/stdin/interactive", test_stdin_interactive);
  g_test_add_func ("/exec/stdin/unread", test_stdin_unread);
  g_test_add_func ("/exec/stdin/kill-and-cancel", test_stdin_kill_and_cancel);
  g_test_add_func ("/exec/status/exit-and-signal", test_exit_and_signal);
  g_test_add_func ("/exec/terminal", test_terminal);
  g_test_add_func ("/exec/timeout/kills", test_timeout_kills);
  g_test_add_func ("/exec/cancel/kills", test_cancel_kills);
  g_test_add_func ("/exec/concurrent/16", test_concurrent);
  g_test_add_func ("/exec/concurrent/slow-does-not-block-fast", test_slow_does_not_block_fast);
  g_test_add_func ("/exec/output/64-mib", test_big_output);
  g_test_add_func ("/exec/output/capped", test_capped_output);
  g_test_add_func ("/exec/output/unread-pipe", test_unread_pipe);
  g_test_add_func ("/exec/errors/not-found", test_not_found);
  g_test_add_func ("/exec/agent/without-setsid", test_agent_without_setsid);
  g_test_add_func ("/exec/share/attach", test_share_attach);
  /* Last but for the CLI's own machine: it takes qlean-guest away a while. */
  g_test_add_func ("/exec/transport", test_agent_fallback);
  g_test_add_func ("/exec/cli/start-exec-ls-stop", test_cli_cycle);

  status = g_test_run ();

  test_shared_machine_end ();
  if (agent_machine != NULL &&
      qlean_machine_get_state (agent_machine) == QLEAN_MACHINE_STATE_RUNNING)
    qlean_machine_shutdown (agent_machine, NULL, NULL);
  g_clear_object (&agent_machine);

  return status;
}
