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

static gboolean
have_qemu_img (void)
{
  g_autofree char *path = g_find_program_in_path ("qemu-img");

  if (path == NULL)
    g_test_skip ("qemu-img is not installed (apt-get install qemu-utils)");
  return path != NULL;
}

static void
run_qemu_img (const char * const *argv)
{
  g_autoptr(GError) error = NULL;
  int status;

  g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL,
                               NULL, NULL, NULL, NULL, &status, &error));
  g_assert_no_error (error);
  g_assert_true (g_spawn_check_wait_status (status, &error));
  g_assert_no_error (error);
}

static void
assert_image_refused (const char *path,
                      const char *named)
{
  g_autoptr(QleanImage) image = qlean_image_new_from_file (path);
  g_autoptr(GError) error = NULL;

  g_assert_false (qlean_image_prepare (image, NULL, &error));
  g_test_message ("%s: %s", path, error->message);
  g_assert_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_INVALID_SOURCE);
  g_assert_nonnull (strstr (error->message, path));
  g_assert_nonnull (strstr (error->message, named));
  g_assert_false (qlean_image_is_prepared (image));
}

/* A custom image whose qcow2 header names another file of the host (a
 * backing file, an external data file; vmdk extents likewise) would have
 * QEMU read that file into the guest's disk: refused when the image is
 * prepared, so that a machine on it never starts QEMU. The files the
 * images name are the test's own: qemu-img create truncates a data
 * file. */
static void
test_image_names_host_files (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("qlean-disks-XXXXXX", &error);
  g_autofree char *secret = g_build_filename (dir, "secret.raw", NULL);
  g_autofree char *backing = g_build_filename (dir, "backing.qcow2", NULL);
  g_autofree char *data = g_build_filename (dir, "data.raw", NULL);
  g_autofree char *data_file_option = g_strdup_printf ("data_file=%s", data);
  g_autofree char *with_data = g_build_filename (dir, "data-file.qcow2", NULL);
  g_autofree char *vmdk = g_build_filename (dir, "disk.vmdk", NULL);
  g_autofree char *good = g_build_filename (dir, "good.qcow2", NULL);
  g_autoptr(QleanImage) good_image = NULL;
  g_autoptr(QleanImage) raw_image = NULL;
  guint before = count_run_dirs ();

  g_assert_no_error (error);
  if (!have_qemu_img ())
    {
      qlean_rm_rf (dir, NULL);
      return;
    }

  g_assert_true (g_file_set_contents (secret, "a file of the host\n", -1, &error));
  {
    const char *create_backing[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", secret,
                                     backing, "1M", NULL };
    const char *create_data[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-o", data_file_option,
                                  with_data, "1M", NULL };
    const char *create_vmdk[] = { "qemu-img", "create", "-q", "-f", "vmdk", vmdk, "1M", NULL };
    const char *create_good[] = { "qemu-img", "create", "-q", "-f", "qcow2", good, "1M", NULL };

    run_qemu_img (create_backing);
    run_qemu_img (create_data);
    run_qemu_img (create_vmdk);
    run_qemu_img (create_good);
  }

  assert_image_refused (backing, secret);
  assert_image_refused (with_data, data);
  assert_image_refused (vmdk, "vmdk");

  /* A machine on it fails before QEMU runs. */
  if (test_have_qemu ())
    {
      g_autoptr(QleanImage) image = qlean_image_new_from_file (backing);
      g_autoptr(QleanMachine) machine = qlean_machine_new (image, NULL);

      g_assert_false (qlean_machine_spawn (machine, NULL, &error));
      g_assert_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_INVALID_SOURCE);
      g_clear_error (&error);
      g_assert_cmpint (qlean_machine_get_state (machine), !=, QLEAN_MACHINE_STATE_RUNNING);
      g_assert_cmpuint (count_run_dirs (), ==, before);
    }

  /* Self-contained ones are taken, in the format found. */
  good_image = qlean_image_new_from_file (good);
  g_assert_true (qlean_image_prepare (good_image, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (qlean_image_get_disk_format (good_image), ==, "qcow2");
  raw_image = qlean_image_new_from_file (secret);
  g_assert_true (qlean_image_prepare (raw_image, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (qlean_image_get_disk_format (raw_image), ==, "raw");

  g_assert_true (qlean_rm_rf (dir, NULL));
}

/* The argument of the -blockdev in @argv that defines @node. */
static const char *
blockdev_of (char       **argv,
             const char  *node)
{
  g_autofree char *wanted = g_strdup_printf ("\"node-name\":\"%s\"", node);

  for (guint i = 0; argv[i] != NULL && argv[i + 1] != NULL; i++)
    if (g_str_equal (argv[i], "-blockdev") && strstr (argv[i + 1], wanted) != NULL)
      return argv[i + 1];

  return NULL;
}

/* QEMU opens the chain Qlean made: the machine's overlay over the image's
 * disk, named explicitly in the format found when it was checked, and
 * that disk with no backing of its own, whatever its header says later. */
static void
test_image_backing_named (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("qlean-disks-XXXXXX", &error);
  g_autofree char *qcow2 = g_build_filename (dir, "base.qcow2", NULL);
  g_autofree char *raw = g_build_filename (dir, "base.raw", NULL);
  const char *formats[] = { "qcow2", "raw" };
  const char *paths[] = { qcow2, raw };

  g_assert_no_error (error);
  if (!test_have_qemu () || !have_qemu_img ())
    {
      qlean_rm_rf (dir, NULL);
      return;
    }

  for (guint i = 0; i < G_N_ELEMENTS (formats); i++)
    {
      const char *create[] = { "qemu-img", "create", "-q", "-f", formats[i], paths[i], "1M", NULL };
      g_autoptr(QleanImage) image = NULL;
      g_autoptr(QleanMachine) machine = NULL;
      g_auto(GStrv) argv = NULL;
      g_autofree char *driver = g_strdup_printf ("\"driver\":\"%s\"", formats[i]);
      g_autofree char *file = g_strdup_printf ("\"filename\":\"%s\"", paths[i]);
      const char *base, *disk;

      run_qemu_img (create);
      image = qlean_image_new_from_file (paths[i]);
      machine = qlean_machine_new (image, NULL);
      argv = qlean_machine_dry_run (machine, &error);
      g_assert_no_error (error);

      base = blockdev_of (argv, "base0");
      disk = blockdev_of (argv, "disk0");
      g_assert_nonnull (base);
      g_assert_nonnull (disk);
      g_test_message ("%s\n%s", base, disk);
      g_assert_nonnull (strstr (base, driver));
      g_assert_nonnull (strstr (base, file));
      g_assert_nonnull (strstr (base, "\"read-only\":true"));
      /* raw has no backing to name; qcow2's is none. */
      g_assert_true ((strstr (base, "\"backing\":null") != NULL) == (i == 0));
      g_assert_nonnull (strstr (disk, "\"backing\":\"base0\""));
    }

  g_assert_true (qlean_rm_rf (dir, NULL));
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
  g_test_add_func ("/machine/image/names-host-files", test_image_names_host_files);
  g_test_add_func ("/machine/image/backing-named", test_image_backing_named);

  ret = g_test_run ();

  test_shared_machine_end ();
  return ret;
}
