/* test-machine.c: machines on real QEMU (TCG), with the minimal image
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <glib/gstdio.h>

#include <qlean/qlean.h>

#include "qlean-image-private.h"
#include "qlean-util-private.h"
#include "test-common.h"

/* One running machine (test_shared_machine()) serves the tests that only
 * run commands; each test that changes a machine's life makes its own. */

static char *
stdout_text (QleanExecResult *result)
{
  return g_strstrip (qlean_exec_result_get_stdout_text (result));
}

static void
test_whoami (void)
{
  QleanMachine *machine = test_shared_machine ();
  g_autoptr(QleanExecResult) result = NULL;
  g_autofree char *out = NULL;

  if (machine == NULL)
    return;

  result = test_run (machine, "whoami");
  out = stdout_text (result);
  g_assert_true (qlean_exec_result_success (result));
  g_assert_cmpstr (out, ==, "root");
}

static void
test_uname_matches_image_kernel (void)
{
  QleanMachine *machine = test_shared_machine ();
  g_auto(QleanMinimalInputs) inputs = { 0 };
  g_autoptr(QleanExecResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;

  if (machine == NULL)
    return;

  g_assert_true (qlean_minimal_find_inputs (&inputs, &error));
  g_assert_no_error (error);

  result = test_run (machine, "uname -r");
  out = stdout_text (result);
  g_assert_cmpstr (out, ==, inputs.kernel_release);
}

static void
test_exit_status (void)
{
  QleanMachine *machine = test_shared_machine ();
  g_autoptr(QleanExecResult) result = NULL;
  g_autoptr(GError) error = NULL;

  if (machine == NULL)
    return;

  result = test_run (machine, "exit 3");
  g_assert_cmpint (qlean_exec_result_get_exit_status (result), ==, 3);
  g_assert_cmpint (qlean_exec_result_get_signal (result), ==, 0);
  g_assert_false (qlean_exec_result_get_if_signaled (result));
  g_assert_false (qlean_exec_result_success (result));
  g_assert_false (qlean_exec_result_check (result, &error));
  g_assert_error (error, G_SPAWN_EXIT_ERROR, 3);
}

static void
test_signal (void)
{
  QleanMachine *machine = test_shared_machine ();
  g_autoptr(QleanExecResult) result = NULL;

  if (machine == NULL)
    return;

  result = test_run (machine, "kill -9 $$");
  g_assert_true (qlean_exec_result_get_if_signaled (result));
  g_assert_cmpint (qlean_exec_result_get_signal (result), ==, 9);
  g_assert_cmpint (qlean_exec_result_get_exit_status (result), ==, -1);
  g_assert_false (qlean_exec_result_success (result));
}

static void
test_stderr_apart (void)
{
  QleanMachine *machine = test_shared_machine ();
  g_autoptr(QleanExecResult) result = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  if (machine == NULL)
    return;

  result = test_run (machine, "echo to-out; echo to-err >&2; echo more-out");
  out = qlean_exec_result_get_stdout_text (result);
  err = qlean_exec_result_get_stderr_text (result);
  g_assert_cmpstr (out, ==, "to-out\nmore-out\n");
  g_assert_cmpstr (err, ==, "to-err\n");
  g_assert_false (qlean_exec_result_get_stdout_truncated (result));
}

static void
test_binary_output (void)
{
  QleanMachine *machine = test_shared_machine ();
  g_autoptr(QleanExecResult) result = NULL;
  GBytes *out;
  const guint8 *data;
  gsize len;

  if (machine == NULL)
    return;

  /* Every byte value, including NUL and 0xFF (the agent's sync marker). */
  result = test_run (machine, "i=0; while [ $i -lt 256 ]; do printf \"\\\\$(printf %o $i)\"; i=$((i+1)); done");
  out = qlean_exec_result_get_stdout (result);
  data = g_bytes_get_data (out, &len);
  g_assert_cmpuint (len, ==, 256);
  for (guint i = 0; i < 256; i++)
    g_assert_cmpuint (data[i], ==, i);
}

typedef struct
{
  GMainLoop       *loop;
  QleanExecResult *result;
  GError          *error;
  GThread         *callback_thread;
} AsyncState;

static void
async_exec_done (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  AsyncState *state = user_data;

  state->callback_thread = g_thread_self ();
  state->result = qlean_machine_exec_finish (QLEAN_MACHINE (source), result, &state->error);
  g_main_loop_quit (state->loop);
}

/* The async flavour completes on the caller's main loop, on its thread. */
static void
test_async_exec_on_main_loop (void)
{
  QleanMachine *machine = test_shared_machine ();
  g_autoptr(GMainLoop) loop = NULL;
  g_autofree char *out = NULL;
  AsyncState state = { 0 };

  if (machine == NULL)
    return;

  loop = g_main_loop_new (NULL, FALSE);
  state.loop = loop;
  qlean_machine_exec_async (machine, "echo async", NULL, async_exec_done, &state);
  g_main_loop_run (loop);

  g_assert_no_error (state.error);
  g_assert_true (state.callback_thread == g_thread_self ());
  out = stdout_text (state.result);
  g_assert_cmpstr (out, ==, "async");
  g_clear_object (&state.result);
}

static gpointer
exec_in_thread (gpointer data)
{
  QleanMachine *machine = data;

  return qlean_machine_exec (machine, "echo from-thread", NULL, NULL);
}

/* Blocking calls from several threads at once, none running a loop. */
static void
test_blocking_exec_from_threads (void)
{
  QleanMachine *machine = test_shared_machine ();
  GThread *threads[4];

  if (machine == NULL)
    return;

  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    threads[i] = g_thread_new ("exec", exec_in_thread, machine);

  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    {
      g_autoptr(QleanExecResult) result = g_thread_join (threads[i]);
      g_autofree char *out = NULL;

      g_assert_nonnull (result);
      out = stdout_text (result);
      g_assert_cmpstr (out, ==, "from-thread");
    }
}

static gboolean
process_gone (GPid pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/stat", (int) pid);
  g_autofree char *stat = NULL;
  const char *state;

  /* Wait a moment for the worker to reap it; a zombie counts as gone. */
  for (int i = 0; i < 200; i++)
    {
      g_clear_pointer (&stat, g_free);
      if (!g_file_get_contents (path, &stat, NULL, NULL))
        return TRUE;
      state = strrchr (stat, ')');
      if (state != NULL && (state[2] == 'Z' || state[2] == 'X'))
        return TRUE;
      g_usleep (10000);
    }

  return FALSE;
}

static void
test_shutdown_leaves_nothing (void)
{
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *run_dir = NULL;
  GPid pid;

  if (!test_have_qemu ())
    return;

  machine = qlean_machine_new_with_name ("shutdown-test", NULL, NULL);
  g_assert_true (qlean_machine_spawn (machine, NULL, &error));
  g_assert_no_error (error);

  pid = qlean_machine_get_pid (machine);
  run_dir = g_strdup (qlean_machine_get_run_dir (machine));
  g_assert_cmpint (pid, >, 0);
  g_assert_true (g_file_test (run_dir, G_FILE_TEST_IS_DIR));

  {
    struct stat st;

    g_assert_cmpint (stat (run_dir, &st), ==, 0);
    g_assert_cmpint (st.st_mode & 0777, ==, 0700);
  }

  g_assert_true (qlean_machine_shutdown (machine, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (qlean_machine_get_state (machine), ==, QLEAN_MACHINE_STATE_STOPPED);
  g_assert_true (process_gone (pid));
  g_assert_false (g_file_test (run_dir, G_FILE_TEST_EXISTS));
  g_assert_null (qlean_machine_get_run_dir (machine));

  /* A stopped machine refuses commands, and says why. */
  g_assert_null (qlean_machine_exec (machine, "true", NULL, &error));
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE);
  g_assert_nonnull (strstr (error->message, "stopped"));
}

static void
test_dispose_leaves_nothing (void)
{
  QleanMachine *machine;
  g_autoptr(GError) error = NULL;
  g_autofree char *run_dir = NULL;
  GPid pid;

  if (!test_have_qemu ())
    return;

  machine = qlean_machine_new (NULL, NULL);
  g_assert_true (qlean_machine_spawn (machine, NULL, &error));
  g_assert_no_error (error);
  pid = qlean_machine_get_pid (machine);
  run_dir = g_strdup (qlean_machine_get_run_dir (machine));

  g_object_unref (machine);

  /* The last reference may be one the worker thread still holds for a
   * moment after the spawn completed (the end of the callback that
   * completed it): then that thread disposes of the machine, just
   * after. Slow under valgrind, so allow it a few seconds. */
  g_assert_true (process_gone (pid));
  for (int i = 0; i < 300 && g_file_test (run_dir, G_FILE_TEST_EXISTS); i++)
    g_usleep (10000);
  g_assert_false (g_file_test (run_dir, G_FILE_TEST_EXISTS));
}

static void
test_kill (void)
{
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GError) error = NULL;
  GPid pid;

  if (!test_have_qemu ())
    return;

  machine = qlean_machine_new (NULL, NULL);
  g_assert_true (qlean_machine_spawn (machine, NULL, &error));
  pid = qlean_machine_get_pid (machine);
  g_assert_true (qlean_machine_kill (machine, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (qlean_machine_get_state (machine), ==, QLEAN_MACHINE_STATE_STOPPED);
  g_assert_true (process_gone (pid));

  /* It can start again. */
  g_assert_true (qlean_machine_spawn (machine, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (qlean_machine_get_state (machine), ==, QLEAN_MACHINE_STATE_RUNNING);
}

static guint
count_run_dirs (void)
{
  g_autofree char *base = NULL;
  g_autoptr(GDir) dir = NULL;
  guint n = 0;

  base = g_strdup_printf ("%s/qlean-%u", g_get_tmp_dir (), (guint) getuid ());
  if (g_getenv ("XDG_RUNTIME_DIR") != NULL)
    {
      g_free (base);
      base = g_build_filename (g_getenv ("XDG_RUNTIME_DIR"), "qlean", NULL);
    }

  dir = g_dir_open (base, 0, NULL);
  while (dir != NULL && g_dir_read_name (dir) != NULL)
    n++;

  return n;
}

static void
test_missing_qemu_binary (void)
{
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GError) error = NULL;
  guint before = count_run_dirs ();

  qlean_machine_config_set_qemu_binary (config, "/nonexistent/qemu-system-x86_64");
  machine = qlean_machine_new (NULL, config);

  g_assert_false (qlean_machine_spawn (machine, NULL, &error));
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_QEMU_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "/nonexistent/qemu-system-x86_64"));
  g_assert_nonnull (strstr (error->message, "qemu-system-x86"));
  g_assert_cmpint (qlean_machine_get_state (machine), ==, QLEAN_MACHINE_STATE_STOPPED);
  g_assert_cmpuint (count_run_dirs (), ==, before);
}

static void
test_missing_kernel (void)
{
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GError) error = NULL;
  guint before = count_run_dirs ();

  if (!test_have_qemu ())
    return;

  qlean_machine_config_set_kernel (config, "/nonexistent/vmlinuz-0.0");
  machine = qlean_machine_new (NULL, config);

  g_assert_false (qlean_machine_spawn (machine, NULL, &error));
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG);
  g_assert_nonnull (strstr (error->message, "/nonexistent/vmlinuz-0.0"));
  g_assert_cmpuint (count_run_dirs (), ==, before);
}

static void
test_qemu_exits_during_boot (void)
{
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GError) error = NULL;
  const char *extra[] = { "-device", "no-such-device-model", NULL };
  guint before = count_run_dirs ();

  if (!test_have_qemu ())
    return;

  qlean_machine_config_set_extra_args (config, extra);
  machine = qlean_machine_new (NULL, config);

  g_assert_false (qlean_machine_spawn (machine, NULL, &error));
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_QEMU_EXITED);
  /* The status and QEMU's own words. */
  g_assert_nonnull (strstr (error->message, "exited with status 1"));
  g_assert_nonnull (strstr (error->message, "no-such-device-model"));
  g_assert_cmpuint (count_run_dirs (), ==, before);
}

/* An initramfs whose init never starts the agent: the start must fail
 * within the boot timeout, quoting the console. */
static void
test_agent_never_answers (void)
{
  g_auto(QleanMinimalInputs) inputs = { 0 };
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *tmpdir = NULL;
  g_autofree char *init = NULL;
  g_autofree char *initrd = NULL;
  g_autofree char *builder = NULL;
  g_autofree char *output = NULL;
  gint64 started;
  int status;

  if (!test_have_qemu ())
    return;

  g_assert_true (qlean_minimal_find_inputs (&inputs, &error));

  tmpdir = g_dir_make_tmp ("qlean-test-XXXXXX", &error);
  g_assert_no_error (error);
  init = g_build_filename (tmpdir, "init", NULL);
  initrd = g_build_filename (tmpdir, "initrd.img", NULL);
  g_assert_true (g_file_set_contents_full (init,
                                           "#!/bin/busybox sh\n"
                                           "/bin/busybox mount -t devtmpfs dev /dev\n"
                                           "echo qlean-test: this init starts no agent > /dev/ttyS0\n"
                                           "exec /bin/busybox sleep 3600\n",
                                           -1, G_FILE_SET_CONTENTS_NONE, 0755, &error));

  builder = g_test_build_filename (G_TEST_DIST, "..", "tools", "qlean-build-initramfs.sh", NULL);
  {
    const char *argv[] = { "bash", builder, "--kernel-release", inputs.kernel_release,
                           "--init", init, "--output", initrd, NULL };

    g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH,
                                 NULL, NULL, &output, NULL, &status, &error));
    g_assert_no_error (error);
    g_assert_cmpint (status, ==, 0);
  }

  qlean_machine_config_set_initrd (config, initrd);
  machine = qlean_machine_new (NULL, config);
  qlean_machine_set_boot_timeout (machine, 8000);

  started = g_get_monotonic_time ();
  g_assert_false (qlean_machine_spawn (machine, NULL, &error));
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_AGENT_TIMEOUT);
  g_assert_nonnull (strstr (error->message, "qlean-test: this init starts no agent"));
  /* Bounded: the timeout plus the time to kill QEMU. */
  g_assert_cmpint (g_get_monotonic_time () - started, <, 8000 * 1000 + 5 * G_USEC_PER_SEC);
  g_assert_cmpint (qlean_machine_get_state (machine), ==, QLEAN_MACHINE_STATE_STOPPED);

  g_assert_true (qlean_rm_rf (tmpdir, NULL));
}

int
main (int    argc,
      char **argv)
{
  int ret;

  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/machine/exec/whoami", test_whoami);
  g_test_add_func ("/machine/exec/uname-matches-image-kernel", test_uname_matches_image_kernel);
  g_test_add_func ("/machine/exec/exit-status", test_exit_status);
  g_test_add_func ("/machine/exec/signal", test_signal);
  g_test_add_func ("/machine/exec/stderr-apart", test_stderr_apart);
  g_test_add_func ("/machine/exec/binary-output", test_binary_output);
  g_test_add_func ("/machine/exec/async", test_async_exec_on_main_loop);
  g_test_add_func ("/machine/exec/blocking-from-threads", test_blocking_exec_from_threads);
  g_test_add_func ("/machine/life/shutdown-leaves-nothing", test_shutdown_leaves_nothing);
  g_test_add_func ("/machine/life/dispose-leaves-nothing", test_dispose_leaves_nothing);
  g_test_add_func ("/machine/life/kill-and-restart", test_kill);
  g_test_add_func ("/machine/errors/missing-qemu-binary", test_missing_qemu_binary);
  g_test_add_func ("/machine/errors/missing-kernel", test_missing_kernel);
  g_test_add_func ("/machine/errors/qemu-exits-during-boot", test_qemu_exits_during_boot);
  g_test_add_func ("/machine/errors/agent-never-answers", test_agent_never_answers);

  ret = g_test_run ();

  test_shared_machine_end ();
  return ret;
}
