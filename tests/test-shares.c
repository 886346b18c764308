/* test-shares.c: host folders in the guest (virtio-9p), on real QEMU
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>
#include <sys/stat.h>
#include <glib/gstdio.h>

#include <qlean/qlean.h>
#include "test-common.h"

static QleanMachine *machine;
static char *skip_reason;
static char *top;        /* a temporary directory holding everything below */
static char *rw_dir;     /* shared read-write at /mnt/rw */
static char *ro_dir;     /* shared read-only at /mnt/ro */
static char *secret;     /* a host file outside both shares */

static void
make_dirs (void)
{
  g_autoptr(GError) error = NULL;

  if (top != NULL)
    return;

  top = g_dir_make_tmp ("qlean-shares-XXXXXX", &error);
  g_assert_no_error (error);
  rw_dir = g_build_filename (top, "a", "rw", NULL);
  ro_dir = g_build_filename (top, "a", "ro", NULL);
  secret = g_build_filename (top, "secret.txt", NULL);
  g_assert_cmpint (g_mkdir_with_parents (rw_dir, 0700), ==, 0);
  g_assert_cmpint (g_mkdir_with_parents (ro_dir, 0700), ==, 0);
  g_assert_true (g_file_set_contents (secret, "host secret\n", -1, &error));
  g_assert_no_error (error);
}

/* Starts a machine with the two shares; FALSE (the test skipped) when
 * the host cannot run one, or has no guest kernel with 9p. */
static QleanMachine *
start_machine (const char *name)
{
  g_autoptr(QleanMachineConfig) config = NULL;
  g_autoptr(QleanMachine) started = NULL;
  g_autoptr(GError) error = NULL;

  if (!test_have_qemu ())
    return NULL;

  make_dirs ();
  config = qlean_machine_config_new ();
  g_assert_true (qlean_machine_config_add_share (config, rw_dir, "/mnt/rw", FALSE, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_machine_config_add_share (config, ro_dir, "/mnt/ro", TRUE, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (qlean_machine_config_get_n_shares (config), ==, 2);

  started = qlean_machine_new_with_name (name, NULL, config);
  if (!qlean_machine_spawn (started, NULL, &error))
    {
      if (g_error_matches (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT))
        {
          skip_reason = g_strdup (error->message);
          return NULL;
        }
      g_assert_no_error (error);
    }

  return g_steal_pointer (&started);
}

static gboolean
get_machine (void)
{
  if (skip_reason != NULL)
    {
      g_test_skip (skip_reason);
      return FALSE;
    }
  if (machine == NULL)
    machine = start_machine ("shares");
  if (machine == NULL && skip_reason != NULL)
    g_test_skip (skip_reason);

  return machine != NULL;
}

static void
test_config_errors (void)
{
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *file = NULL;
  g_autofree char *missing = NULL;
  const char *guest_path = NULL;
  QleanShareFlags flags = QLEAN_SHARE_NONE;

  make_dirs ();
  file = g_build_filename (top, "secret.txt", NULL);
  missing = g_build_filename (top, "no-such-dir", NULL);

  g_assert_false (qlean_machine_config_add_share (config, missing, "/mnt/x", FALSE, &error));
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG);
  g_assert_nonnull (strstr (error->message, missing));
  g_clear_error (&error);

  g_assert_false (qlean_machine_config_add_share (config, file, "/mnt/x", FALSE, &error));
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG);
  g_assert_nonnull (strstr (error->message, file));
  g_clear_error (&error);

  for (guint i = 0; i < 5; i++)
    {
      const char *bad[] = { "relative", "/", "/mnt/../etc", "/mnt//x", "/mnt/x/" };

      g_assert_false (qlean_machine_config_add_share (config, rw_dir, bad[i], FALSE, &error));
      g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG);
      g_clear_error (&error);
    }
  g_assert_cmpuint (qlean_machine_config_get_n_shares (config), ==, 0);

  /* The host path is kept canonical: `..` and links resolved. */
  {
    g_autofree char *roundabout = g_build_filename (rw_dir, "..", "rw", NULL);
    g_autoptr(QleanMachineConfig) copy = NULL;

    g_assert_true (qlean_machine_config_add_share_full (config, roundabout, "/mnt/x",
                                                        QLEAN_SHARE_READONLY, &error));
    g_assert_no_error (error);
    g_assert_false (qlean_machine_config_add_share (config, ro_dir, "/mnt/x", FALSE, &error));
    g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG);
    g_clear_error (&error);

    copy = qlean_machine_config_copy (config);
    g_assert_cmpuint (qlean_machine_config_get_n_shares (copy), ==, 1);
    g_assert_cmpstr (qlean_machine_config_get_share (copy, 0, &guest_path, &flags), ==, rw_dir);
    g_assert_cmpstr (guest_path, ==, "/mnt/x");
    g_assert_cmpint (flags, ==, QLEAN_SHARE_READONLY);
    qlean_machine_config_clear_shares (config);
    g_assert_cmpuint (qlean_machine_config_get_n_shares (config), ==, 0);
    g_assert_cmpuint (qlean_machine_config_get_n_shares (copy), ==, 1);
  }
}

/* The QEMU command line: one fsdev and one 9p device per share, the
 * host path's commas doubled (QEMU's option syntax), the share boot's
 * kernel rather than the cloud one. */
static void
test_argv (void)
{
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(QleanMachine) dry = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *comma = NULL;
  g_autofree char *joined = NULL;
  g_autofree char *want = NULL;
  g_auto(GStrv) argv = NULL;

  if (!test_have_qemu ())
    return;

  make_dirs ();
  comma = g_build_filename (top, "a,b", NULL);
  g_assert_cmpint (g_mkdir_with_parents (comma, 0700), ==, 0);
  g_assert_true (qlean_machine_config_add_share_full (config, comma, "/mnt/c",
                                                      QLEAN_SHARE_MAPPED_XATTR, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_machine_config_add_share (config, ro_dir, "/mnt/ro", TRUE, &error));
  dry = qlean_machine_new_with_name ("shares-dry", NULL, config);
  argv = qlean_machine_dry_run (dry, &error);
  if (argv == NULL && g_error_matches (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT))
    {
      g_test_skip (error->message);
      return;
    }
  g_assert_no_error (error);
  joined = g_strjoinv ("\n", argv);

  want = g_strdup_printf ("\n-fsdev\nlocal,id=share0,path=%s/a,,b,security_model=mapped-xattr\n"
                          "-device\nvirtio-9p-pci,fsdev=share0,mount_tag=qlean0,id=share0\n", top);
  g_assert_nonnull (strstr (joined, want));
  g_free (want);
  want = g_strdup_printf ("\n-fsdev\nlocal,id=share1,path=%s,security_model=none,readonly=on\n"
                          "-device\nvirtio-9p-pci,fsdev=share1,mount_tag=qlean1,id=share1\n", ro_dir);
  g_assert_nonnull (strstr (joined, want));

  /* Not the kernel a machine without shares boots. */
  {
    g_autoptr(QleanMachine) plain = qlean_machine_new_with_name ("shares-dry-plain", NULL, NULL);
    g_auto(GStrv) plain_argv = qlean_machine_dry_run (plain, &error);
    const char *kernel = NULL, *plain_kernel = NULL;

    g_assert_no_error (error);
    for (guint i = 0; argv[i] != NULL && argv[i + 1] != NULL; i++)
      if (g_str_equal (argv[i], "-kernel"))
        kernel = argv[i + 1];
    for (guint i = 0; plain_argv[i] != NULL && plain_argv[i + 1] != NULL; i++)
      if (g_str_equal (plain_argv[i], "-kernel"))
        plain_kernel = plain_argv[i + 1];
    g_assert_nonnull (kernel);
    g_assert_nonnull (plain_kernel);
    g_assert_cmpstr (kernel, !=, plain_kernel);
  }
}

static void
test_host_to_guest (void)
{
  g_autofree char *path = NULL;
  g_autofree char *text = NULL;
  g_autoptr(GError) error = NULL;

  if (!get_machine ())
    return;

  path = g_build_filename (rw_dir, "from-host.txt", NULL);
  g_assert_true (g_file_set_contents (path, "written on the host\n", -1, &error));
  g_assert_no_error (error);
  text = test_run_out (machine, "cat /mnt/rw/from-host.txt");
  g_assert_cmpstr (text, ==, "written on the host\n");

  /* Later changes show too: no stale cache. */
  g_assert_true (g_file_set_contents (path, "changed\n", -1, &error));
  g_clear_pointer (&text, g_free);
  text = test_run_out (machine, "cat /mnt/rw/from-host.txt");
  g_assert_cmpstr (text, ==, "changed\n");
}

static void
test_guest_to_host (void)
{
  g_autofree char *path = NULL;
  g_autofree char *text = NULL;
  g_autofree char *out = NULL;
  g_autoptr(GError) error = NULL;

  if (!get_machine ())
    return;

  out = test_run_out (machine, "mkdir -p /mnt/rw/sub && echo from the guest > /mnt/rw/sub/g.txt");
  path = g_build_filename (rw_dir, "sub", "g.txt", NULL);
  g_assert_true (g_file_get_contents (path, &text, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (text, ==, "from the guest\n");
}

static void
test_readonly (void)
{
  g_autofree char *path = NULL;
  g_autofree char *text = NULL;
  g_autofree char *out = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanExecResult) result = NULL;

  if (!get_machine ())
    return;

  path = g_build_filename (ro_dir, "data.txt", NULL);
  g_assert_true (g_file_set_contents (path, "read only\n", -1, &error));
  g_assert_no_error (error);
  text = test_run_out (machine, "cat /mnt/ro/data.txt");
  g_assert_cmpstr (text, ==, "read only\n");

  /* Writing, creating and removing all fail with EROFS. */
  result = test_run (machine, "echo x > /mnt/ro/data.txt; echo \"$?\"; touch /mnt/ro/new; "
                              "echo \"$?\"; rm -f /mnt/ro/data.txt; echo \"$?\"");
  out = g_strndup (g_bytes_get_data (qlean_exec_result_get_stdout (result), NULL),
                   g_bytes_get_size (qlean_exec_result_get_stdout (result)));
  g_assert_cmpstr (out, ==, "1\n1\n1\n");
  g_clear_pointer (&out, g_free);
  out = g_strndup (g_bytes_get_data (qlean_exec_result_get_stderr (result), NULL),
                   g_bytes_get_size (qlean_exec_result_get_stderr (result)));
  g_assert_nonnull (strstr (out, "Read-only file system"));
  g_clear_pointer (&text, g_free);
  g_assert_true (g_file_get_contents (path, &text, NULL, &error));
  g_assert_cmpstr (text, ==, "read only\n");
  g_free (path);
  path = g_build_filename (ro_dir, "new", NULL);
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
}

/* A symbolic link in the share that points out of it, absolute or
 * relative, is resolved by the guest in the guest: it never reaches the
 * host file it names on the host. */
static void
test_symlink_escape (void)
{
  g_autofree char *abs_link = NULL;
  g_autofree char *rel_link = NULL;
  g_autofree char *command = NULL;
  g_autofree char *out = NULL;

  if (!get_machine ())
    return;

  abs_link = g_build_filename (rw_dir, "abs-link", NULL);
  rel_link = g_build_filename (rw_dir, "rel-link", NULL);
  g_unlink (abs_link);
  g_unlink (rel_link);
  g_assert_cmpint (symlink (secret, abs_link), ==, 0);
  /* From top/a/rw: ../../secret.txt is the secret on the host. */
  g_assert_cmpint (symlink ("../../secret.txt", rel_link), ==, 0);

  /* The guest sees the links as links, and following them reads
   * nothing (there is no such file in the guest), whatever they name. */
  out = test_run_text (machine, "readlink /mnt/rw/abs-link");
  g_assert_cmpstr (out, ==, secret);
  g_clear_pointer (&out, g_free);
  command = g_strdup_printf ("cat /mnt/rw/abs-link /mnt/rw/rel-link /mnt/rw/../../secret.txt "
                             "/mnt/ro/../rw/../../secret.txt 2>/dev/null; "
                             "find /mnt -name secret.txt; true");
  out = test_run_out (machine, command);
  g_assert_null (strstr (out, "host secret"));
  g_assert_cmpstr (out, ==, "");
  /* The guest's root is not the share's parent. */
  g_clear_pointer (&out, g_free);
  out = test_run_text (machine, "ls /mnt/rw/..");
  g_assert_null (strstr (out, "secret"));
}

/* QEMU cannot save a machine with a mounted 9p share: a snapshot says
 * why, and the machine runs on with its shares. */
static void
test_snapshot_refused (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;

  if (!get_machine ())
    return;

  g_assert_false (qlean_machine_snapshot (machine, "s", NULL, &error));
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE);
  g_assert_nonnull (strstr (error->message, "host folders"));
  out = test_run_text (machine, "grep -c ' 9p ' /proc/mounts");
  g_assert_cmpstr (out, ==, "2");
}

/* A second machine of the same shape starts from the first one's saved
 * boot (fast start), with other folders, which are mounted too. */
static void
test_fast_start (void)
{
  g_autoptr(QleanMachine) second = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *path = NULL;
  g_autofree char *text = NULL;
  gint64 start;

  if (!get_machine ())
    return;

  path = g_build_filename (rw_dir, "fast.txt", NULL);
  g_assert_true (g_file_set_contents (path, "fast\n", -1, &error));
  start = g_get_monotonic_time ();
  second = start_machine ("shares-2");
  g_assert_nonnull (second);
  g_test_message ("second machine with shares started in %.2f s",
                  (g_get_monotonic_time () - start) / 1e6);
  text = test_run_out (second, "cat /mnt/rw/fast.txt; grep -c ' 9p ' /proc/mounts");
  g_assert_cmpstr (text, ==, "fast\n2\n");
  qlean_machine_kill (second, NULL, &error);
  g_assert_no_error (error);
}

int
main (int argc, char **argv)
{
  int ret;

  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/shares/config-errors", test_config_errors);
  g_test_add_func ("/shares/argv", test_argv);
  g_test_add_func ("/shares/host-to-guest", test_host_to_guest);
  g_test_add_func ("/shares/guest-to-host", test_guest_to_host);
  g_test_add_func ("/shares/readonly", test_readonly);
  g_test_add_func ("/shares/symlink-escape", test_symlink_escape);
  g_test_add_func ("/shares/snapshot-refused", test_snapshot_refused);
  g_test_add_func ("/shares/fast-start", test_fast_start);

  ret = g_test_run ();

  if (machine != NULL)
    {
      qlean_machine_kill (machine, NULL, NULL);
      g_object_unref (machine);
    }
  if (top != NULL)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", top);

      g_spawn_command_line_sync (cmd, NULL, NULL, NULL, &error);
    }
  g_free (skip_reason);

  return ret;
}
