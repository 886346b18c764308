/* test-arch.c: guests of another architecture than the host's (aarch64
 * under TCG), and the QEMU command line of every architecture
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>
#include <utime.h>
#include <glib/gstdio.h>

#include "qlean-arch-private.h"
#include "qlean-image-private.h"
#include "qlean-qemu-argv-private.h"
#include "qlean-util-private.h"
#include "test-common.h"

/* Whether @arch's machines can start here: its QEMU and, for a foreign
 * architecture, the sysroot its minimal image is built from. Skips the
 * test, saying what is missing, when not. */
static gboolean
have_arch (QleanArch arch)
{
  const QleanArchInfo *info = qlean_arch_get_info (arch);
  g_autofree char *qemu = g_find_program_in_path (info->qemu_binary);
  g_auto(QleanMinimalInputs) inputs = { .arch = arch };
  g_autoptr(GError) error = NULL;

  if (qemu == NULL)
    {
      g_autofree char *why = g_strdup_printf ("%s is not installed (apt-get install %s)",
                                              info->qemu_binary, info->qemu_package);
      g_test_skip (why);
      return FALSE;
    }

  if (!qlean_minimal_find_inputs (&inputs, &error))
    {
      g_autofree char *why = g_strdup_printf ("no %s minimal image inputs: %s", info->name,
                                              error->message);
      g_test_skip (why);
      return FALSE;
    }

  return TRUE;
}

/* The value after @option in @argv, or NULL; every occurrence must be
 * followed by a value. */
static const char *
argv_value (const char * const *argv,
            const char         *option)
{
  for (guint i = 0; argv[i] != NULL; i++)
    if (g_str_equal (argv[i], option))
      return argv[i + 1];

  return NULL;
}

static gboolean
argv_has (const char * const *argv,
          const char         *arg)
{
  return g_strv_contains (argv, arg);
}

static gboolean
argv_mentions (const char * const *argv,
               const char         *needle)
{
  for (guint i = 0; argv[i] != NULL; i++)
    if (strstr (argv[i], needle) != NULL)
      return TRUE;

  return FALSE;
}

/* Names and the enum */

static void
test_names (void)
{
  g_autoptr(GEnumClass) klass = g_type_class_ref (QLEAN_TYPE_ARCH);
  static const struct { const char *name; QleanArch arch; } names[] = {
    { "x86_64", QLEAN_ARCH_X86_64 }, { "amd64", QLEAN_ARCH_X86_64 },
    { "aarch64", QLEAN_ARCH_AARCH64 }, { "arm64", QLEAN_ARCH_AARCH64 },
    { "riscv64", QLEAN_ARCH_RISCV64 },
  };
  QleanArch arch;

  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_assert_true (qlean_arch_from_string (names[i].name, &arch));
      g_assert_cmpint (arch, ==, names[i].arch);
    }
  g_assert_false (qlean_arch_from_string ("sparc64", &arch));
  g_assert_false (qlean_arch_from_string (NULL, &arch));

  /* The enum's nicks are the kernel's names, which the CLI takes. */
  for (QleanArch a = QLEAN_ARCH_X86_64; a <= QLEAN_ARCH_RISCV64; a++)
    {
      GEnumValue *value = g_enum_get_value (klass, a);

      g_assert_nonnull (value);
      g_assert_cmpstr (value->value_nick, ==, qlean_arch_to_string (a));
      g_assert_cmpint (qlean_arch_get_info (a)->arch, ==, a);
    }

  /* This suite runs on x86-64 hosts (and would on aarch64 ones). */
  g_assert_true (qlean_arch_get_host () == QLEAN_ARCH_X86_64 ||
                 qlean_arch_get_host () == QLEAN_ARCH_AARCH64);
}

/* The image's architecture, from where it comes from. */
static void
test_image_arch (void)
{
  g_autoptr(QleanImage) minimal = qlean_image_new_minimal ();
  g_autoptr(QleanImage) arm = qlean_image_new_minimal_for_arch (QLEAN_ARCH_AARCH64);
  g_autoptr(QleanImage) file = qlean_image_new_from_file ("/nonexistent/riscv.qcow2");
  g_autoptr(GError) error = NULL;
  QleanArch arch = QLEAN_ARCH_X86_64;

  g_assert_cmpint (qlean_image_get_guest_arch (minimal), ==, qlean_arch_get_host ());
  g_assert_cmpint (qlean_image_get_guest_arch (arm), ==, QLEAN_ARCH_AARCH64);
  g_assert_cmpstr (qlean_image_get_arch (arm), ==, "arm64");
  g_object_get (arm, "guest-arch", &arch, NULL);
  g_assert_cmpint (arch, ==, QLEAN_ARCH_AARCH64);

  g_assert_cmpint (qlean_image_get_guest_arch (file), ==, QLEAN_ARCH_X86_64);
  qlean_image_set_guest_arch (file, QLEAN_ARCH_RISCV64);
  g_assert_cmpint (qlean_image_get_guest_arch (file), ==, QLEAN_ARCH_RISCV64);
  g_assert_cmpstr (qlean_image_get_arch (file), ==, "riscv64");
}

/* Each architecture's QEMU command line, built from a resolved spec as
 * a machine makes it: no QEMU, no boot. */
static char **
build_argv (QleanArch arch,
            gboolean  kvm)
{
  QleanQemuSpec spec = {
    .qemu_binary = qlean_arch_get_info (arch)->qemu_binary,
    .arch = qlean_arch_get_info (arch),
    .name = "argv-test",
    .kvm = kvm,
    .cores = 1,
    .memory_mib = 256,
    .kernel = "/k",
    .initrd = "/i",
    .cmdline = qlean_minimal_cmdline (arch),
    .run_dir = "/run/x",
    .qmp_fd = -1,
    .qga_fd = -1,
    .data_fd = -1,
    .net_socket = "/net",
    .net_port = 2,
    .net_mac = "02:00:00:00:00:02",
  };

  return qlean_qemu_argv_build (&spec);
}

static void
assert_pci_virtio (const char * const *argv)
{
  g_assert_true (argv_mentions (argv, "virtio-serial-pci"));
  g_assert_true (argv_mentions (argv, "virtio-net-pci"));
  g_assert_true (argv_has (argv, "pvpanic-pci"));
  /* No device of the PC's ISA bus. */
  g_assert_false (argv_has (argv, "pvpanic"));
  g_assert_false (argv_mentions (argv, "isa-"));
}

static void
test_argv_x86_64 (void)
{
  g_auto(GStrv) argv = build_argv (QLEAN_ARCH_X86_64, FALSE);
  g_auto(GStrv) kvm = build_argv (QLEAN_ARCH_X86_64, TRUE);
  const char * const *a = (const char * const *) argv;

  g_assert_cmpstr (argv[0], ==, "qemu-system-x86_64");
  g_assert_cmpstr (argv_value (a, "-machine"), ==, "q35");
  g_assert_cmpstr (argv_value (a, "-cpu"), ==, "max");
  g_assert_null (argv_value (a, "-bios"));
  g_assert_true (g_str_has_prefix (argv_value (a, "-append"), "console=ttyS0 "));
  g_assert_nonnull (strstr (argv_value (a, "-append"), "i8042.noaux"));
  assert_pci_virtio (a);
  g_assert_cmpstr (argv_value ((const char * const *) kvm, "-cpu"), ==, "host");
  g_assert_cmpstr (argv_value ((const char * const *) kvm, "-accel"), ==, "kvm");
}

static void
test_argv_aarch64 (void)
{
  g_auto(GStrv) argv = build_argv (QLEAN_ARCH_AARCH64, FALSE);
  const char * const *a = (const char * const *) argv;
  const char *append = argv_value (a, "-append");

  g_assert_cmpstr (argv[0], ==, "qemu-system-aarch64");
  g_assert_cmpstr (argv_value (a, "-machine"), ==, "virt");
  /* Pointer authentication emulated costs seconds of boot. */
  g_assert_cmpstr (argv_value (a, "-cpu"), ==, "max,pauth=off");
  g_assert_cmpstr (argv_value (a, "-accel"), ==, "tcg,tb-size=32");
  g_assert_null (argv_value (a, "-bios"));
  g_assert_false (argv_mentions (a, "q35"));
  g_assert_true (g_str_has_prefix (append, "console=ttyAMA0 "));
  /* Nothing of the PC's: no i8042, 8250 or TSC parameters. */
  g_assert_null (strstr (append, "i8042"));
  g_assert_null (strstr (append, "8250"));
  g_assert_null (strstr (append, "tsc="));
  g_assert_null (qlean_arch_get_info (QLEAN_ARCH_AARCH64)->one_core_cmdline);
  assert_pci_virtio (a);
}

static void
test_argv_riscv64 (void)
{
  g_auto(GStrv) argv = build_argv (QLEAN_ARCH_RISCV64, FALSE);
  const char * const *a = (const char * const *) argv;

  g_assert_cmpstr (argv[0], ==, "qemu-system-riscv64");
  g_assert_cmpstr (argv_value (a, "-machine"), ==, "virt");
  /* OpenSBI, which QEMU ships (qemu-system-data's opensbi-riscv64-*). */
  g_assert_cmpstr (argv_value (a, "-bios"), ==, "default");
  g_assert_true (g_str_has_prefix (argv_value (a, "-append"), "console=ttyS0 "));
  g_assert_false (argv_mentions (a, "q35"));
  assert_pci_virtio (a);
}

/* The library's own dry run: the QEMU binary is looked up for the
 * image's architecture, and KVM is never used for a foreign one. */
static void
test_dry_run_file_image (void)
{
  static const struct { QleanArch arch; const char *machine; const char *console; } cases[] = {
    { QLEAN_ARCH_AARCH64, "virt", "ttyAMA0" },
    { QLEAN_ARCH_RISCV64, "virt", "ttyS0" },
  };
  g_autofree char *dir = NULL;
  g_autofree char *disk = NULL;
  g_autofree char *kernel = NULL;
  g_autoptr(GError) error = NULL;
  const char *qemu_img_argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", NULL, "16M", NULL };
  guint checked = 0;
  int status;

  dir = g_dir_make_tmp ("qlean-arch-XXXXXX", &error);
  g_assert_no_error (error);
  disk = g_build_filename (dir, "disk.qcow2", NULL);
  kernel = g_build_filename (dir, "vmlinuz", NULL);
  qemu_img_argv[5] = disk;
  g_assert_true (g_spawn_sync (NULL, (char **) qemu_img_argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                               NULL, NULL, &status, &error));
  g_assert_no_error (error);
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  g_assert_true (g_file_set_contents (kernel, "not a kernel", -1, NULL));

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      const QleanArchInfo *info = qlean_arch_get_info (cases[i].arch);
      g_autoptr(QleanImage) image = qlean_image_new_from_file (disk);
      g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
      g_autoptr(QleanMachine) machine = NULL;
      g_auto(GStrv) argv = NULL;
      g_autofree char *console = g_strdup_printf ("console=%s", cases[i].console);
      g_autofree char *qemu = g_find_program_in_path (info->qemu_binary);

      /* riscv64's QEMU is in qemu-system-misc, which setup.sh leaves out. */
      if (qemu == NULL)
        {
          g_test_message ("%s not checked: %s is not installed (apt-get install %s)", info->name,
                          info->qemu_binary, info->qemu_package);
          continue;
        }
      checked++;

      qlean_image_set_guest_arch (image, cases[i].arch);
      qlean_machine_config_set_kernel (config, kernel);
      /* The console comes from the image's architecture, not from us. */
      machine = qlean_machine_new_with_name ("arch-dry", image, config);
      argv = qlean_machine_dry_run (machine, &error);
      g_assert_no_error (error);
      g_assert_true (g_str_has_suffix (argv[0], info->qemu_binary));
      g_assert_cmpstr (argv_value ((const char * const *) argv, "-machine"), ==, cases[i].machine);
      g_assert_cmpstr (argv_value ((const char * const *) argv, "-cpu"), ==, info->tcg_cpu);
      g_assert_cmpstr (argv_value ((const char * const *) argv, "-accel"), ==, "tcg,tb-size=32");
      g_assert_nonnull (strstr (argv_value ((const char * const *) argv, "-append"), console));
      g_clear_object (&machine);

      /* KVM asked for a guest KVM cannot run: a clear error. */
      qlean_machine_config_set_accel (config, QLEAN_ACCEL_KVM);
      machine = qlean_machine_new_with_name ("arch-kvm", image, config);
      g_clear_pointer (&argv, g_strfreev);
      argv = qlean_machine_dry_run (machine, &error);
      g_assert_null (argv);
      g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG);
      g_assert_nonnull (strstr (error->message, info->name));
      g_assert_nonnull (strstr (error->message, "tcg"));
      g_clear_error (&error);
    }

  g_assert_true (qlean_rm_rf (dir, NULL));
  if (checked == 0)
    g_test_skip ("neither qemu-system-aarch64 nor qemu-system-riscv64 is installed "
                 "(apt-get install qemu-system-arm)");
}

/* A foreign minimal image needs its sysroot; without one, the error says
 * where it looked and how to make one. */
static void
test_missing_sysroot (void)
{
  g_autoptr(QleanImage) image = qlean_image_new_minimal_for_arch (QLEAN_ARCH_AARCH64);
  g_autoptr(GError) error = NULL;
  g_autofree char *empty = g_dir_make_tmp ("qlean-nosysroot-XXXXXX", NULL);
  g_autofree char *missing = g_build_filename (empty, "arm64", NULL);

  g_setenv ("QLEAN_SYSROOT_AARCH64", missing, TRUE);
  g_assert_false (qlean_image_prepare (image, NULL, &error));
  g_unsetenv ("QLEAN_SYSROOT_AARCH64");
  g_assert_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT);
  g_assert_nonnull (strstr (error->message, missing));
  g_assert_nonnull (strstr (error->message, "tools/setup.sh deps"));
  g_assert_nonnull (strstr (error->message, "QLEAN_SYSROOT_AARCH64"));
  g_clear_error (&error);

  /* setup.sh makes none for riscv64: the error says how to make one. */
  g_clear_object (&image);
  image = qlean_image_new_minimal_for_arch (QLEAN_ARCH_RISCV64);
  g_setenv ("QLEAN_SYSROOT_RISCV64", missing, TRUE);
  g_assert_false (qlean_image_prepare (image, NULL, &error));
  g_unsetenv ("QLEAN_SYSROOT_RISCV64");
  g_assert_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT);
  g_assert_nonnull (strstr (error->message, "depmod -b"));
  g_assert_null (strstr (error->message, "setup.sh"));
  g_rmdir (empty);
}

/* An aarch64 machine, under TCG */

static QleanMachine *arm_machine;

static QleanMachine *
get_arm_machine (void)
{
  g_autoptr(QleanImage) image = NULL;
  g_autoptr(QleanMachineConfig) config = NULL;
  g_autoptr(GError) error = NULL;
  gint64 start;

  if (!have_arch (QLEAN_ARCH_AARCH64))
    return NULL;

  if (arm_machine == NULL)
    {
      image = qlean_image_new_minimal_for_arch (QLEAN_ARCH_AARCH64);
      config = qlean_machine_config_new ();
      /* A kernel boot, whatever saved boots the cache has. */
      qlean_machine_config_set_fast_start (config, FALSE);
      arm_machine = qlean_machine_new_with_name ("arm", image, config);
      start = g_get_monotonic_time ();
      qlean_machine_spawn (arm_machine, NULL, &error);
      g_assert_no_error (error);
      g_test_message ("aarch64 cold boot to ready: %.2f s",
                      (g_get_monotonic_time () - start) / 1e6);
    }

  g_assert_cmpint (qlean_machine_get_state (arm_machine), ==, QLEAN_MACHINE_STATE_RUNNING);
  return arm_machine;
}

static void
test_arm_uname (void)
{
  QleanMachine *machine = get_arm_machine ();
  g_autofree char *uname = NULL;
  g_autofree char *whoami = NULL;

  if (machine == NULL)
    return;

  uname = test_run_text (machine, "uname -m");
  g_assert_cmpstr (uname, ==, "aarch64");
  whoami = test_run_text (machine, "whoami");
  g_assert_cmpstr (whoami, ==, "root");
}

static void
test_arm_exec (void)
{
  QleanMachine *machine = get_arm_machine ();
  g_autoptr(QleanExecResult) result = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autofree char *guest = NULL;

  if (machine == NULL)
    return;

  result = test_run (machine, "echo out; echo err >&2; exit 3");
  out = qlean_exec_result_get_stdout_text (result);
  err = qlean_exec_result_get_stderr_text (result);
  g_assert_cmpint (qlean_exec_result_get_exit_status (result), ==, 3);
  g_assert_cmpstr (out, ==, "out\n");
  g_assert_cmpstr (err, ==, "err\n");

  /* Through qlean-guest, cross-built for aarch64, when Qlean has it. */
  guest = qlean_find_guest_program_for_arch (QLEAN_ARCH_AARCH64);
  if (guest != NULL)
    {
      g_autofree char *file = test_run_text (machine, "test -x /usr/lib/qlean/qlean-guest && echo yes");

      g_assert_cmpstr (file, ==, "yes");
    }
  else
    g_test_message ("no qlean-guest for aarch64: exec went through the agent alone");
}

static void
test_arm_files (void)
{
  QleanMachine *machine = get_arm_machine ();
  g_autoptr(GBytes) contents = NULL;
  g_autoptr(GBytes) back = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *up_path = NULL;
  g_autofree char *down_path = NULL;
  g_autofree char *down_data = NULL;
  g_autoptr(GFile) up = NULL;
  g_autoptr(GFile) down = NULL;
  g_autoptr(GByteArray) random = g_byte_array_new ();
  g_autofree char *sum = NULL;
  g_autofree char *guest_sum = NULL;
  gsize len;

  if (machine == NULL)
    return;

  /* The file system calls. */
  contents = g_bytes_new_static ("hello from x86-64\n", 18);
  g_assert_true (qlean_machine_write (machine, "/tmp/arch-fs", contents, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_machine_exists (machine, "/tmp/arch-fs", NULL, &error));
  back = qlean_machine_read (machine, "/tmp/arch-fs", NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (back, contents));

  /* Upload and download, 1 MiB of random bytes, checked on both sides. */
  for (guint i = 0; i < 1024 * 1024 / 4; i++)
    {
      guint32 r = g_random_int ();

      g_byte_array_append (random, (const guint8 *) &r, sizeof r);
    }
  dir = g_dir_make_tmp ("qlean-arch-XXXXXX", &error);
  g_assert_no_error (error);
  up_path = g_build_filename (dir, "up", NULL);
  down_path = g_build_filename (dir, "down", NULL);
  g_assert_true (g_file_set_contents (up_path, (const char *) random->data, random->len, NULL));
  up = g_file_new_for_path (up_path);
  down = g_file_new_for_path (down_path);

  g_assert_true (qlean_machine_upload (machine, up, "/tmp/arch-up", NULL, &error));
  g_assert_no_error (error);
  sum = g_compute_checksum_for_data (G_CHECKSUM_SHA256, random->data, random->len);
  guest_sum = test_run_text (machine, "sha256sum /tmp/arch-up | cut -d' ' -f1");
  g_assert_cmpstr (guest_sum, ==, sum);

  g_assert_true (qlean_machine_download (machine, "/tmp/arch-up", down, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (g_file_get_contents (down_path, &down_data, &len, NULL));
  g_assert_cmpuint (len, ==, random->len);
  g_assert_cmpmem (down_data, len, random->data, random->len);

  g_assert_true (qlean_rm_rf (dir, NULL));
}

/* Fast start from a saved aarch64 boot: a shape of its own, so that this
 * run saves it (a cold boot) and a second machine loads it. */
static void
test_arm_fast_start (void)
{
  g_autoptr(QleanImage) image = NULL;
  g_autoptr(QleanMachineConfig) config = NULL;
  g_autoptr(QleanMachine) first = NULL;
  g_autoptr(QleanMachine) second = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GHashTable) before = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autofree char *states = g_build_filename (g_get_user_cache_dir (), "qlean", "boot-states", NULL);
  g_autofree char *saved = NULL;
  g_autofree char *uname = NULL;
  g_autoptr(GDir) listing = NULL;
  struct utimbuf old = { 1000000000, 1000000000 };
  GStatBuf st;
  const char *name;
  gint64 start;
  double seconds;

  if (!have_arch (QLEAN_ARCH_AARCH64))
    return;

  listing = g_dir_open (states, 0, NULL);
  while (listing != NULL && (name = g_dir_read_name (listing)) != NULL)
    g_hash_table_add (before, g_strdup (name));
  g_clear_pointer (&listing, g_dir_close);

  image = qlean_image_new_minimal_for_arch (QLEAN_ARCH_AARCH64);
  config = qlean_machine_config_new ();
  qlean_machine_config_set_memory_mib (config, 260 + 4 * g_random_int_range (0, 32));

  first = qlean_machine_new_with_name ("arm-template", image, config);
  g_assert_true (qlean_machine_spawn (first, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_machine_kill (first, NULL, &error));
  g_assert_no_error (error);

  listing = g_dir_open (states, 0, &error);
  g_assert_no_error (error);
  while ((name = g_dir_read_name (listing)) != NULL)
    if (g_str_has_suffix (name, ".state") && !g_hash_table_contains (before, name))
      saved = g_build_filename (states, name, NULL);
  g_assert_nonnull (saved);
  /* Marked as long unused: a load marks it used now. */
  g_assert_cmpint (utime (saved, &old), ==, 0);

  second = qlean_machine_new_with_name ("arm-fast", image, config);
  start = g_get_monotonic_time ();
  g_assert_true (qlean_machine_spawn (second, NULL, &error));
  g_assert_no_error (error);
  uname = test_run_text (second, "uname -m");
  seconds = (g_get_monotonic_time () - start) / 1e6;
  g_assert_cmpstr (uname, ==, "aarch64");
  g_assert_cmpint (g_stat (saved, &st), ==, 0);
  g_assert_cmpint (st.st_mtime, >, old.modtime);
  g_test_message ("aarch64 fast start to first exec done: %.2f s", seconds);
  {
    /* Its own name, not its template's. */
    g_autofree char *hostname = test_run_text (second, "hostname");

    g_assert_cmpstr (hostname, ==, "arm-fast");
  }
  g_assert_true (qlean_machine_shutdown (second, NULL, &error));
  g_assert_no_error (error);

  /* This shape's saved boot goes: the next run saves one again. */
  {
    g_autofree char *lock = g_strconcat (saved, ".lock", NULL);
    g_autofree char *mac = g_strconcat (saved, ".mac", NULL);

    g_unlink (saved);
    g_unlink (lock);
    g_unlink (mac);
  }
}

/* An x86-64 and an aarch64 machine on one pool's network. */
static void
test_mixed_pool_ping (void)
{
  g_autoptr(QleanPool) pool = NULL;
  g_autoptr(QleanImage) arm = NULL;
  g_autoptr(QleanMachine) x86_machine = NULL;
  g_autoptr(QleanMachine) arm_machine_ = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *x86_ip = NULL;
  g_autofree char *arm_ip = NULL;
  g_autofree char *x86_uname = NULL;
  g_autofree char *arm_uname = NULL;
  g_autofree char *ping = NULL;

  if (!test_have_qemu () || !have_arch (QLEAN_ARCH_AARCH64))
    return;

  pool = qlean_pool_new ();
  arm = qlean_image_new_minimal_for_arch (QLEAN_ARCH_AARCH64);
  g_assert_true (qlean_pool_add (pool, "x86", NULL, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_pool_add (pool, "arm", arm, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_pool_spawn_all (pool, NULL, &error));
  g_assert_no_error (error);

  x86_machine = qlean_pool_get (pool, "x86", &error);
  arm_machine_ = qlean_pool_get (pool, "arm", &error);
  g_assert_no_error (error);
  x86_uname = test_run_text (x86_machine, "uname -m");
  arm_uname = test_run_text (arm_machine_, "uname -m");
  g_assert_cmpstr (x86_uname, ==, "x86_64");
  g_assert_cmpstr (arm_uname, ==, "aarch64");

  x86_ip = qlean_machine_get_ip (x86_machine, NULL, &error);
  g_assert_no_error (error);
  arm_ip = qlean_machine_get_ip (arm_machine_, NULL, &error);
  g_assert_no_error (error);
  g_clear_pointer (&ping, g_free);
  ping = g_strdup_printf ("ping -c 2 -W 2 %s >/dev/null && echo ok", arm_ip);
  {
    g_autofree char *ok = test_run_text (x86_machine, ping);

    g_assert_cmpstr (ok, ==, "ok");
  }
  g_free (ping);
  ping = g_strdup_printf ("ping -c 2 -W 2 %s >/dev/null && echo ok", x86_ip);
  {
    g_autofree char *ok = test_run_text (arm_machine_, ping);

    g_assert_cmpstr (ok, ==, "ok");
  }
  {
    /* And by name. */
    g_autofree char *ok = test_run_text (arm_machine_, "ping -c 1 -W 2 x86 >/dev/null && echo ok");

    g_assert_cmpstr (ok, ==, "ok");
  }

  g_assert_true (qlean_pool_shutdown_all (pool, NULL, &error));
  g_assert_no_error (error);
}

int
main (int    argc,
      char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);

  /* First, while there is only one thread: it sets a variable. */
  g_test_add_func ("/arch/errors/missing-sysroot", test_missing_sysroot);
  g_test_add_func ("/arch/names", test_names);
  g_test_add_func ("/arch/image", test_image_arch);
  g_test_add_func ("/arch/argv/x86_64", test_argv_x86_64);
  g_test_add_func ("/arch/argv/aarch64", test_argv_aarch64);
  g_test_add_func ("/arch/argv/riscv64", test_argv_riscv64);
  g_test_add_func ("/arch/dry-run/file-image", test_dry_run_file_image);
  g_test_add_func ("/arch/aarch64/uname", test_arm_uname);
  g_test_add_func ("/arch/aarch64/exec", test_arm_exec);
  g_test_add_func ("/arch/aarch64/files", test_arm_files);
  g_test_add_func ("/arch/aarch64/fast-start", test_arm_fast_start);
  g_test_add_func ("/arch/aarch64/pool-with-x86-64", test_mixed_pool_ping);

  status = g_test_run ();

  if (arm_machine != NULL && qlean_machine_get_state (arm_machine) == QLEAN_MACHINE_STATE_RUNNING)
    qlean_machine_shutdown (arm_machine, NULL, NULL);
  g_clear_object (&arm_machine);

  return status;
}
