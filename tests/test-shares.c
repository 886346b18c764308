/* test-shares.c: host folders in the guest (virtio-9p and virtiofs), on real QEMU
 *
 * The tests that run in a guest run twice, once per kind of share
 * (/shares/9p/… and /shares/virtiofs/…), each kind on a machine of its
 * own; virtiofs ones are skipped, saying why, where virtiofsd cannot
 * run.
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <glib/gstdio.h>

#include <qlean/qlean.h>
#include "test-common.h"

/* One machine per kind, indexed by QleanShareKind (9P, VIRTIOFS). */
static QleanMachine *machines[3];
static char *skip_reasons[3];
static char *top;        /* a temporary directory holding everything below */
static char *rw_dir;     /* shared read-write at /mnt/rw */
static char *ro_dir;     /* shared read-only at /mnt/ro */
static char *cached_dir; /* shared read-only and cached at /mnt/cached */
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
  cached_dir = g_build_filename (top, "a", "cached", NULL);
  secret = g_build_filename (top, "secret.txt", NULL);
  g_assert_cmpint (g_mkdir_with_parents (rw_dir, 0700), ==, 0);
  g_assert_cmpint (g_mkdir_with_parents (ro_dir, 0700), ==, 0);
  g_assert_cmpint (g_mkdir_with_parents (cached_dir, 0700), ==, 0);
  {
    g_autofree char *cached_file = g_build_filename (cached_dir, "c.txt", NULL);

    g_assert_true (g_file_set_contents (cached_file, "cached\n", -1, &error));
    g_assert_no_error (error);
  }
  g_assert_true (g_file_set_contents (secret, "host secret\n", -1, &error));
  g_assert_no_error (error);
}

/* Where virtiofsd is, or NULL (Qlean's own candidates). */
static gboolean
have_virtiofsd (void)
{
  return g_file_test ("/usr/lib/qemu/virtiofsd", G_FILE_TEST_IS_EXECUTABLE) ||
         g_file_test ("/usr/libexec/virtiofsd", G_FILE_TEST_IS_EXECUTABLE) ||
         g_file_test ("/usr/libexec/qemu/virtiofsd", G_FILE_TEST_IS_EXECUTABLE);
}

/* How many processes run virtiofsd on @source (its argv says
 * source=@source) with argument @option too, if not NULL; zombies have
 * no argv and do not count. */
static guint
count_virtiofsd_with (const char *source,
                      const char *option)
{
  g_autoptr(GDir) proc = g_dir_open ("/proc", 0, NULL);
  g_autofree char *want = g_strdup_printf ("source=%s", source);
  const char *name;
  guint n = 0;

  g_assert_nonnull (proc);
  while ((name = g_dir_read_name (proc)) != NULL)
    {
      g_autofree char *path = g_build_filename ("/proc", name, "cmdline", NULL);
      g_autofree char *cmdline = NULL;
      gsize len = 0;
      gboolean is_daemon = FALSE, has_source = FALSE, has_option = option == NULL;

      if (!g_ascii_isdigit (name[0]) || !g_file_get_contents (path, &cmdline, &len, NULL))
        continue;
      for (gsize i = 0; i < len; i += strlen (cmdline + i) + 1)
        {
          is_daemon = is_daemon || g_str_has_suffix (cmdline + i, "virtiofsd");
          has_source = has_source || g_str_equal (cmdline + i, want);
          has_option = has_option || g_str_equal (cmdline + i, option);
        }
      n += is_daemon && has_source && has_option;
    }
  return n;
}

static guint
count_virtiofsd (const char *source)
{
  return count_virtiofsd_with (source, NULL);
}

/* Starts a machine with the two shares, of @kind; NULL (the test
 * skipped) when the host cannot run one, or has no guest kernel with
 * 9p. */
static QleanMachine *
start_machine (const char     *name,
               QleanShareKind  kind)
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
  g_assert_true (qlean_machine_config_add_share_full (config, cached_dir, "/mnt/cached",
                                                      QLEAN_SHARE_READONLY | QLEAN_SHARE_CACHED,
                                                      &error));
  g_assert_no_error (error);
  g_assert_cmpuint (qlean_machine_config_get_n_shares (config), ==, 3);
  qlean_machine_config_set_share_kind (config, kind);

  if (kind == QLEAN_SHARE_KIND_VIRTIOFS && !have_virtiofsd ())
    {
      skip_reasons[kind] = g_strdup ("virtiofsd is not installed (qemu-system-common)");
      return NULL;
    }

  started = qlean_machine_new_with_name (name, NULL, config);
  if (!qlean_machine_spawn (started, NULL, &error))
    {
      if (g_error_matches (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT) ||
          (kind == QLEAN_SHARE_KIND_VIRTIOFS &&
           g_error_matches (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG)))
        {
          skip_reasons[kind] = g_strdup (error->message);
          return NULL;
        }
      g_assert_no_error (error);
    }

  return g_steal_pointer (&started);
}

/* The test's machine, of the kind in its data. */
static QleanMachine *
get_machine (gconstpointer data)
{
  QleanShareKind kind = GPOINTER_TO_INT (data);

  if (skip_reasons[kind] != NULL)
    {
      g_test_skip (skip_reasons[kind]);
      return NULL;
    }
  if (machines[kind] == NULL)
    machines[kind] = start_machine (kind == QLEAN_SHARE_KIND_9P ? "shares-9p" : "shares-vfs", kind);
  if (machines[kind] == NULL && skip_reasons[kind] != NULL)
    g_test_skip (skip_reasons[kind]);

  return machines[kind];
}

/* The file system a kind mounts, as /proc/mounts names it. */
static const char *
fs_type (gconstpointer data)
{
  return GPOINTER_TO_INT (data) == QLEAN_SHARE_KIND_9P ? "9p" : "virtiofs";
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

  /* Only a read-only share may be cached. */
  g_assert_false (qlean_machine_config_add_share_full (config, rw_dir, "/mnt/x",
                                                       QLEAN_SHARE_CACHED, &error));
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG);
  g_assert_nonnull (strstr (error->message, "read-only"));
  g_clear_error (&error);
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

/* The value after @option in @argv, or NULL. */
static const char *
argv_value (char       **argv,
            const char  *option)
{
  for (guint i = 0; argv[i] != NULL && argv[i + 1] != NULL; i++)
    if (g_str_equal (argv[i], option))
      return argv[i + 1];
  return NULL;
}

/* Whether @argv boots the kernel a machine without shares boots. */
static gboolean
same_kernel_as_plain (char **argv)
{
  g_autoptr(QleanMachine) plain = qlean_machine_new_with_name ("shares-dry-plain", NULL, NULL);
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) plain_argv = qlean_machine_dry_run (plain, &error);

  g_assert_no_error (error);
  g_assert_nonnull (argv_value (argv, "-kernel"));
  g_assert_nonnull (argv_value (plain_argv, "-kernel"));
  return g_str_equal (argv_value (argv, "-kernel"), argv_value (plain_argv, "-kernel"));
}

/* The argv a machine of @config would run, or NULL (the test skipped)
 * when the host cannot make the minimal image. */
static char **
dry_run (QleanMachineConfig *config,
         const char         *name)
{
  g_autoptr(QleanMachine) dry = qlean_machine_new_with_name (name, NULL, config);
  g_autoptr(GError) error = NULL;
  char **argv = qlean_machine_dry_run (dry, &error);

  if (argv == NULL && g_error_matches (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT))
    {
      g_test_skip (error->message);
      return NULL;
    }
  g_assert_no_error (error);
  return argv;
}

/* The QEMU command line: one fsdev and one 9p device per share, the
 * host path's commas doubled (QEMU's option syntax), the share boot's
 * kernel rather than the cloud one. The share kind is auto: a share
 * with owners in xattrs makes it 9p, which virtiofs cannot do. */
static void
test_argv (void)
{
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
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
  argv = dry_run (config, "shares-dry");
  if (argv == NULL)
    return;
  joined = g_strjoinv ("\n", argv);

  want = g_strdup_printf ("\n-fsdev\nlocal,id=share0,path=%s/a,,b,security_model=mapped-xattr\n"
                          "-device\nvirtio-9p-pci,fsdev=share0,mount_tag=qlean0,id=share0\n", top);
  g_assert_nonnull (strstr (joined, want));
  g_free (want);
  want = g_strdup_printf ("\n-fsdev\nlocal,id=share1,path=%s,security_model=none,readonly=on\n"
                          "-device\nvirtio-9p-pci,fsdev=share1,mount_tag=qlean1,id=share1\n", ro_dir);
  g_assert_nonnull (strstr (joined, want));

  /* Not the kernel a machine without shares boots. */
  g_assert_false (same_kernel_as_plain (argv));
}

/* virtiofs: the QEMU command line has one vhost-user-fs device per
 * share, on its virtiofsd's socket, and guest RAM virtiofsd can map;
 * the minimal image's own kernel (Debian's cloud kernel has virtiofs). */
static void
test_argv_virtiofs (void)
{
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *joined = NULL;
  g_auto(GStrv) argv = NULL;

  if (!test_have_qemu ())
    return;

  make_dirs ();
  g_assert_true (qlean_machine_config_add_share (config, rw_dir, "/mnt/rw", FALSE, &error));
  g_assert_true (qlean_machine_config_add_share (config, ro_dir, "/mnt/ro", TRUE, &error));
  qlean_machine_config_set_share_kind (config, QLEAN_SHARE_KIND_VIRTIOFS);
  g_assert_cmpint (qlean_machine_config_get_share_kind (config), ==, QLEAN_SHARE_KIND_VIRTIOFS);
  argv = dry_run (config, "shares-dry-vfs");
  if (argv == NULL)
    return;
  joined = g_strjoinv ("\n", argv);

  g_assert_nonnull (strstr (joined, "/virtiofs-0.sock\n-device\n"
                                    "vhost-user-fs-pci,chardev=vfs0,tag=qlean0,id=share0\n"));
  g_assert_nonnull (strstr (joined, "/virtiofs-1.sock\n-device\n"
                                    "vhost-user-fs-pci,chardev=vfs1,tag=qlean1,id=share1\n"));
  g_assert_nonnull (strstr (joined, "memory-backend-memfd,id=qlean.ram,"));
  g_assert_nonnull (strstr (joined, ",share=on\n"));
  g_assert_null (strstr (joined, "-fsdev"));

  g_assert_true (same_kernel_as_plain (argv));
}

/* virtiofs is 9p's peer only where its options allow: owners kept in
 * xattrs are 9p's alone, and asking for both says so. */
static void
test_virtiofs_refuses_xattr (void)
{
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(QleanMachine) refused = NULL;
  g_autoptr(GError) error = NULL;

  if (!test_have_qemu ())
    return;
  if (!have_virtiofsd ())
    {
      g_test_skip ("virtiofsd is not installed (qemu-system-common)");
      return;
    }

  make_dirs ();
  g_assert_true (qlean_machine_config_add_share_full (config, rw_dir, "/mnt/rw",
                                                      QLEAN_SHARE_MAPPED_XATTR, &error));
  qlean_machine_config_set_share_kind (config, QLEAN_SHARE_KIND_VIRTIOFS);
  refused = qlean_machine_new_with_name ("shares-xattr", NULL, config);
  g_assert_false (qlean_machine_spawn (refused, NULL, &error));
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG);
  g_assert_nonnull (strstr (error->message, "extended attributes"));
  g_assert_cmpuint (count_virtiofsd (rw_dir), ==, 0);
}

/* Where virtiofsd cannot run (here: QLEAN_VIRTIOFSD names nothing),
 * auto falls back to 9p and logs why, and asking for virtiofs fails the
 * start, saying why, before QEMU runs. In a subprocess: whether
 * virtiofsd can run is found once per process. */
static void
test_virtiofs_unavailable (void)
{
  if (!test_have_qemu ())
    return;

  if (g_test_subprocess ())
    {
      g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
      g_autoptr(QleanMachine) refused = NULL;
      g_autoptr(GError) error = NULL;
      g_autofree char *joined = NULL;
      g_auto(GStrv) argv = NULL;

      g_setenv ("QLEAN_VIRTIOFSD", "/nonexistent/virtiofsd", TRUE);
      g_setenv ("G_MESSAGES_DEBUG", "qlean", TRUE);
      make_dirs ();
      g_assert_true (qlean_machine_config_add_share (config, ro_dir, "/mnt/ro", TRUE, &error));
      argv = dry_run (config, "shares-dry-fallback");
      if (argv == NULL)
        return;
      joined = g_strjoinv ("\n", argv);
      g_assert_nonnull (strstr (joined, "virtio-9p-pci,fsdev=share0"));
      g_assert_null (strstr (joined, "vhost-user-fs"));

      qlean_machine_config_set_share_kind (config, QLEAN_SHARE_KIND_VIRTIOFS);
      refused = qlean_machine_new_with_name ("shares-no-virtiofsd", NULL, config);
      g_assert_false (qlean_machine_spawn (refused, NULL, &error));
      g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG);
      g_assert_nonnull (strstr (error->message, "virtiofsd is not installed"));
      return;
    }

  g_test_trap_subprocess (NULL, 300 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_INHERIT_STDERR);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stdout ("*shares over 9p rather than virtiofs: virtiofsd is not installed*");
}

/* Iterates the default context until @machine is in @state. */
static void
wait_state (QleanMachine      *machine,
            QleanMachineState  state)
{
  gint64 deadline = g_get_monotonic_time () + 20 * G_TIME_SPAN_SECOND;

  while (qlean_machine_get_state (machine) != state)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (2000);
    }
}

/* The virtiofsd processes belong to the run: none is left, and no
 * socket, once it ends, however it ends: a shutdown, a kill, QEMU
 * dying (a crash) or a start that fails after they started. */
static void
test_virtiofs_daemons_end (void)
{
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(QleanMachine) own = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = NULL;
  const char *bad_args[] = { "-device", "no-such-device", NULL };

  if (!test_have_qemu ())
    return;
  if (!have_virtiofsd ())
    {
      g_test_skip ("virtiofsd is not installed (qemu-system-common)");
      return;
    }

  make_dirs ();
  dir = g_build_filename (top, "own", NULL);
  g_assert_cmpint (g_mkdir_with_parents (dir, 0700), ==, 0);
  g_assert_true (qlean_machine_config_add_share (config, dir, "/mnt/own", TRUE, &error));
  qlean_machine_config_set_share_kind (config, QLEAN_SHARE_KIND_VIRTIOFS);
  own = qlean_machine_new_with_name ("shares-vfs-end", NULL, config);

  for (guint round = 0; round < 3; round++)
    {
      g_autofree char *run_dir = NULL;
      g_autofree char *socket = NULL;

      if (!qlean_machine_spawn (own, NULL, &error))
        {
          if (g_error_matches (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG))
            {
              g_test_skip (error->message);
              return;
            }
          g_assert_no_error (error);
        }
      g_assert_cmpuint (count_virtiofsd (dir), >=, 1);
      run_dir = g_strdup (qlean_machine_get_run_dir (own));
      socket = g_build_filename (run_dir, "virtiofs-0.sock", NULL);
      g_assert_true (g_file_test (socket, G_FILE_TEST_EXISTS));

      if (round == 0)
        g_assert_true (qlean_machine_shutdown (own, NULL, &error));
      else if (round == 1)
        g_assert_true (qlean_machine_kill (own, NULL, &error));
      else
        {
          g_assert_cmpint (kill (qlean_machine_get_pid (own), SIGKILL), ==, 0);
          wait_state (own, QLEAN_MACHINE_STATE_CRASHED);
        }
      g_assert_no_error (error);
      g_assert_cmpuint (count_virtiofsd (dir), ==, 0);
      g_assert_false (g_file_test (socket, G_FILE_TEST_EXISTS));
    }

  /* QEMU refuses the machine after the daemons started. */
  qlean_machine_config_set_extra_args (config, bad_args);
  g_clear_object (&own);
  own = qlean_machine_new_with_name ("shares-vfs-fail", NULL, config);
  g_assert_false (qlean_machine_spawn (own, NULL, &error));
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_QEMU_EXITED);
  g_assert_cmpuint (count_virtiofsd (dir), ==, 0);
}

static void
test_host_to_guest (gconstpointer data)
{
  QleanMachine *machine;
  g_autofree char *path = NULL;
  g_autofree char *text = NULL;
  g_autoptr(GError) error = NULL;

  if ((machine = get_machine (data)) == NULL)
    return;

  path = g_build_filename (rw_dir, "from-host.txt", NULL);
  g_assert_true (g_file_set_contents (path, "written on the host\n", -1, &error));
  g_assert_no_error (error);
  text = test_run_out (machine, "cat /mnt/rw/from-host.txt");
  g_assert_cmpstr (text, ==, "written on the host\n");

  /* Later changes show too: over 9p at once (no cache), over virtiofs
   * once FUSE's one-second timeouts pass (cache=auto); the guest waits
   * at most five seconds for it. */
  g_assert_true (g_file_set_contents (path, "changed\n", -1, &error));
  g_clear_pointer (&text, g_free);
  text = test_run_out (machine, "i=0; while [ \"$(cat /mnt/rw/from-host.txt)\" != changed ] && "
                                "[ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done; "
                                "cat /mnt/rw/from-host.txt");
  g_assert_cmpstr (text, ==, "changed\n");
}

static void
test_guest_to_host (gconstpointer data)
{
  QleanMachine *machine;
  g_autofree char *path = NULL;
  g_autofree char *text = NULL;
  g_autofree char *out = NULL;
  g_autoptr(GError) error = NULL;

  if ((machine = get_machine (data)) == NULL)
    return;

  out = test_run_out (machine, "mkdir -p /mnt/rw/sub && echo from the guest > /mnt/rw/sub/g.txt");
  path = g_build_filename (rw_dir, "sub", "g.txt", NULL);
  g_assert_true (g_file_get_contents (path, &text, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (text, ==, "from the guest\n");
}

static void
test_readonly (gconstpointer data)
{
  QleanMachine *machine;
  g_autofree char *path = NULL;
  g_autofree char *text = NULL;
  g_autofree char *out = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanExecResult) result = NULL;

  if ((machine = get_machine (data)) == NULL)
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
  /* Nor does the guest's root get to write by mounting it read-write
   * again: the host refuses (QEMU's readonly=on, virtiofsd's read-only
   * bind mount). */
  g_clear_pointer (&out, g_free);
  g_clear_object (&result);
  result = test_run (machine, "mount -o remount,rw /mnt/ro; echo x > /mnt/ro/data.txt; echo \"$?\"; "
                              "touch /mnt/ro/new; echo \"$?\"");
  out = g_strndup (g_bytes_get_data (qlean_exec_result_get_stdout (result), NULL),
                   g_bytes_get_size (qlean_exec_result_get_stdout (result)));
  g_assert_cmpstr (out, ==, "1\n1\n");
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
test_symlink_escape (gconstpointer data)
{
  QleanMachine *machine;
  g_autofree char *abs_link = NULL;
  g_autofree char *rel_link = NULL;
  g_autofree char *command = NULL;
  g_autofree char *out = NULL;

  if ((machine = get_machine (data)) == NULL)
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

/* QEMU cannot save a machine with a mounted 9p share, nor one with a
 * virtiofs device: a snapshot says why, and the machine runs on with
 * its shares. */
static void
test_snapshot_refused (gconstpointer data)
{
  QleanMachine *machine;
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;
  g_autofree char *command = NULL;

  if ((machine = get_machine (data)) == NULL)
    return;

  g_assert_false (qlean_machine_snapshot (machine, "s", NULL, &error));
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE);
  g_assert_nonnull (strstr (error->message, "host folders"));
  command = g_strdup_printf ("grep -c ' %s ' /proc/mounts", fs_type (data));
  out = test_run_text (machine, command);
  g_assert_cmpstr (out, ==, "3");
}

/* A cached read-only share reads like any other; over 9p it is mounted
 * cache=loose, over virtiofs its daemon runs cache=always. */
static void
test_cached (gconstpointer data)
{
  QleanMachine *machine;
  g_autofree char *out = NULL;

  if ((machine = get_machine (data)) == NULL)
    return;

  out = test_run_out (machine, "cat /mnt/cached/c.txt");
  g_assert_cmpstr (out, ==, "cached\n");
  g_clear_pointer (&out, g_free);
  if (GPOINTER_TO_INT (data) == QLEAN_SHARE_KIND_9P)
    {
      out = test_run_text (machine, "grep ' /mnt/cached ' /proc/mounts");
      /* /proc/mounts says cache=loose as "loose". */
      g_assert_nonnull (strstr (out, ",loose,"));
      g_assert_nonnull (strstr (out, " ro,"));
    }
  else
    g_assert_cmpuint (count_virtiofsd_with (cached_dir, "cache=always"), >=, 1);
}

/* A second machine of the same shape starts, with its shares mounted:
 * over 9p from the first one's saved boot (fast start), over virtiofs
 * by booting (its device cannot be saved). */
static void
test_fast_start (gconstpointer data)
{
  QleanMachine *machine;
  g_autoptr(QleanMachine) second = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *path = NULL;
  g_autofree char *text = NULL;
  g_autofree char *command = NULL;
  gint64 start;

  if ((machine = get_machine (data)) == NULL)
    return;

  path = g_build_filename (rw_dir, "fast.txt", NULL);
  g_assert_true (g_file_set_contents (path, "fast\n", -1, &error));
  start = g_get_monotonic_time ();
  second = start_machine ("shares-2", GPOINTER_TO_INT (data));
  g_assert_nonnull (second);
  g_test_message ("second machine with %s shares started in %.2f s", fs_type (data),
                  (g_get_monotonic_time () - start) / 1e6);
  command = g_strdup_printf ("cat /mnt/rw/fast.txt; grep -c ' %s ' /proc/mounts", fs_type (data));
  text = test_run_out (second, command);
  g_assert_cmpstr (text, ==, "fast\n3\n");
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
  g_test_add_func ("/shares/argv-virtiofs", test_argv_virtiofs);
  g_test_add_func ("/shares/virtiofs-refuses-xattr", test_virtiofs_refuses_xattr);
  g_test_add_func ("/shares/virtiofs-unavailable", test_virtiofs_unavailable);
  g_test_add_func ("/shares/virtiofs-daemons-end", test_virtiofs_daemons_end);
  for (QleanShareKind kind = QLEAN_SHARE_KIND_9P; kind <= QLEAN_SHARE_KIND_VIRTIOFS; kind++)
    {
      const char *prefix = kind == QLEAN_SHARE_KIND_9P ? "/shares/9p" : "/shares/virtiofs";
      gconstpointer data = GINT_TO_POINTER (kind);
      struct { const char *name; GTestDataFunc func; } tests[] = {
        { "host-to-guest", test_host_to_guest },
        { "guest-to-host", test_guest_to_host },
        { "readonly", test_readonly },
        { "symlink-escape", test_symlink_escape },
        { "snapshot-refused", test_snapshot_refused },
        { "cached", test_cached },
        { "second-machine", test_fast_start },
      };

      for (guint i = 0; i < G_N_ELEMENTS (tests); i++)
        {
          g_autofree char *path = g_strdup_printf ("%s/%s", prefix, tests[i].name);

          g_test_add_data_func (path, data, tests[i].func);
        }
    }

  ret = g_test_run ();

  for (guint i = 0; i < G_N_ELEMENTS (machines); i++)
    if (machines[i] != NULL)
      {
        qlean_machine_kill (machines[i], NULL, NULL);
        g_object_unref (machines[i]);
      }
  if (top != NULL)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", top);

      g_spawn_command_line_sync (cmd, NULL, NULL, NULL, &error);
    }
  for (guint i = 0; i < G_N_ELEMENTS (skip_reasons); i++)
    g_free (skip_reasons[i]);

  return ret;
}
