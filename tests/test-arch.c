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
#include "qlean-machine-firmware-private.h"
#include "qlean-qemu-argv-private.h"
#include "qlean-util-private.h"
#include "test-arch.h"
#include "test-common.h"

/* Whether @arch's machines can start here: its QEMU and, for a foreign
 * architecture, the sysroot its minimal image is built from. Skips the
 * test, saying what is missing, when not. */
gboolean
test_arch_available (QleanArch arch)
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

/* How each architecture boots with each firmware choice, with a kernel
 * to boot directly and without one (a disk's boot loader). */
static void
test_firmware_choice (void)
{
  enum { DIRECT, UEFI, FAILS };
  static const struct
  {
    QleanArch arch;
    QleanFirmware firmware;
    gboolean kernel;
    int outcome;
    const char *message;   /* a part of the error's, for FAILS */
  } cases[] = {
    /* auto: a kernel boots directly everywhere; a disk boots through the
     * BIOS where there is one, else through UEFI. */
    { QLEAN_ARCH_X86_64, QLEAN_FIRMWARE_AUTO, TRUE, DIRECT },
    { QLEAN_ARCH_X86_64, QLEAN_FIRMWARE_AUTO, FALSE, DIRECT },
    { QLEAN_ARCH_AARCH64, QLEAN_FIRMWARE_AUTO, TRUE, DIRECT },
    { QLEAN_ARCH_AARCH64, QLEAN_FIRMWARE_AUTO, FALSE, UEFI },
    { QLEAN_ARCH_RISCV64, QLEAN_FIRMWARE_AUTO, TRUE, DIRECT },
    { QLEAN_ARCH_RISCV64, QLEAN_FIRMWARE_AUTO, FALSE, FAILS, "give the machine a kernel" },
    /* bios: never UEFI; aarch64's virt then needs a kernel. */
    { QLEAN_ARCH_X86_64, QLEAN_FIRMWARE_BIOS, FALSE, DIRECT },
    { QLEAN_ARCH_AARCH64, QLEAN_FIRMWARE_BIOS, TRUE, DIRECT },
    { QLEAN_ARCH_AARCH64, QLEAN_FIRMWARE_BIOS, FALSE, FAILS, "“uefi”" },
    { QLEAN_ARCH_RISCV64, QLEAN_FIRMWARE_BIOS, TRUE, DIRECT },
    /* uefi: always, kernel or not, where Qlean knows a firmware. */
    { QLEAN_ARCH_X86_64, QLEAN_FIRMWARE_UEFI, TRUE, UEFI },
    { QLEAN_ARCH_X86_64, QLEAN_FIRMWARE_UEFI, FALSE, UEFI },
    { QLEAN_ARCH_AARCH64, QLEAN_FIRMWARE_UEFI, TRUE, UEFI },
    { QLEAN_ARCH_AARCH64, QLEAN_FIRMWARE_UEFI, FALSE, UEFI },
    { QLEAN_ARCH_RISCV64, QLEAN_FIRMWARE_UEFI, TRUE, FAILS, "knows no UEFI firmware for riscv64" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      const QleanArchInfo *info = qlean_arch_get_info (cases[i].arch);
      QleanQemuSpec spec = {
        .arch = info,
        .name = "firmware",
        .kernel = cases[i].kernel ? "/k" : NULL,
        .uefi_code = "stale",
      };
      g_autoptr(GError) error = NULL;
      int outcome = cases[i].outcome;
      gboolean ok;

      /* UEFI that is not installed here: the error names its package. */
      if (outcome == UEFI && !g_file_test (info->uefi_code, G_FILE_TEST_IS_REGULAR))
        outcome = FAILS;

      ok = qlean_machine_resolve_firmware ("firmware", cases[i].firmware, &spec, &error);
      g_test_message ("%s firmware %d kernel %d: %s", info->name, cases[i].firmware, cases[i].kernel,
                      ok ? (spec.uefi_code ? spec.uefi_code : "direct") : error->message);
      switch (outcome)
        {
        case DIRECT:
          g_assert_no_error (error);
          g_assert_true (ok);
          g_assert_null (spec.uefi_code);
          break;
        case UEFI:
          g_assert_no_error (error);
          g_assert_true (ok);
          g_assert_cmpstr (spec.uefi_code, ==, info->uefi_code);
          break;
        case FAILS:
        default:
          g_assert_false (ok);
          g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG);
          g_assert_nonnull (strstr (error->message, "“firmware”"));
          if (cases[i].outcome == UEFI)
            {
              g_assert_nonnull (strstr (error->message, info->uefi_package));
              g_assert_nonnull (strstr (error->message, "qlean check --arch"));
            }
          else
            g_assert_nonnull (strstr (error->message, cases[i].message));
          break;
        }
    }
}

/* UEFI on QEMU's command line: the code read-only, the variables the
 * run's own copy in its run directory, and no -bios beside them. */
static void
test_argv_uefi (void)
{
  for (QleanArch arch = QLEAN_ARCH_X86_64; arch <= QLEAN_ARCH_RISCV64; arch++)
    {
      const QleanArchInfo *info = qlean_arch_get_info (arch);
      QleanQemuSpec spec = {
        .qemu_binary = info->qemu_binary,
        .arch = info,
        .name = "uefi",
        .cores = 1,
        .memory_mib = 256,
        .disk = "/d.qcow2",
        .run_dir = "/run/x,y",
        .qmp_fd = -1, .qga_fd = -1, .data_fd = -1, .console_fd = -1,
      };
      g_auto(GStrv) direct = qlean_qemu_argv_build (&spec);
      g_auto(GStrv) uefi = NULL;
      g_autofree char *code = NULL;
      guint drives = 0;

      /* Without UEFI: no flash, and the machine type's own firmware. */
      g_assert_false (argv_mentions ((const char * const *) direct, "pflash"));
      g_assert_cmpstr (argv_value ((const char * const *) direct, "-bios"), ==, info->bios);

      if (info->uefi_code == NULL)
        continue;
      spec.uefi_code = info->uefi_code;
      uefi = qlean_qemu_argv_build (&spec);
      code = g_strdup_printf ("if=pflash,format=raw,unit=0,readonly=on,file=%s", info->uefi_code);
      for (guint i = 0; uefi[i] != NULL; i++)
        if (g_str_equal (uefi[i], "-drive"))
          {
            drives++;
            if (drives == 1)
              g_assert_cmpstr (uefi[i + 1], ==, code);
            else
              /* The run directory's comma doubled, as QEMU reads it. */
              g_assert_cmpstr (uefi[i + 1], ==, "if=pflash,format=raw,unit=1,file=/run/x,,y/" QLEAN_UEFI_VARS);
          }
      g_assert_cmpuint (drives, ==, 2);
      g_assert_null (argv_value ((const char * const *) uefi, "-bios"));
      g_assert_null (argv_value ((const char * const *) uefi, "-kernel"));
    }
}

/* An empty qcow2 disk in @dir, as an image file without a kernel. */
static char *
make_blank_disk (const char *dir)
{
  g_autoptr(GError) error = NULL;
  char *disk = g_build_filename (dir, "disk.qcow2", NULL);
  const char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2", disk, "16M", NULL };
  int status;

  g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                               NULL, NULL, &status, &error));
  g_assert_no_error (error);
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  return disk;
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
  guint checked = 0;

  dir = g_dir_make_tmp ("qlean-arch-XXXXXX", &error);
  g_assert_no_error (error);
  disk = make_blank_disk (dir);
  kernel = g_build_filename (dir, "vmlinuz", NULL);
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

/* The dry run of a machine of @image with @firmware, and @kernel if
 * not NULL. */
static char **
dry_run_with_firmware (QleanImage     *image,
                       QleanFirmware   firmware,
                       const char     *kernel,
                       GError        **error)
{
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(QleanMachine) machine = NULL;

  qlean_machine_config_set_firmware (config, firmware);
  if (kernel != NULL)
    qlean_machine_config_set_kernel (config, kernel);
  machine = qlean_machine_new_with_name ("fw-dry", image, config);
  return qlean_machine_dry_run (machine, error);
}

/* A machine's dry run for each firmware choice: an aarch64 disk without
 * a kernel boots through AAVMF; with a kernel, directly. */
static void
test_dry_run_firmware (void)
{
  const QleanArchInfo *arm = qlean_arch_get_info (QLEAN_ARCH_AARCH64);
  const QleanArchInfo *x86 = qlean_arch_get_info (QLEAN_ARCH_X86_64);
  g_autofree char *qemu = g_find_program_in_path (arm->qemu_binary);
  g_autofree char *dir = NULL;
  g_autofree char *disk = NULL;
  g_autofree char *kernel = NULL;
  g_autoptr(QleanImage) image = NULL;
  g_autoptr(QleanImage) x86_image = NULL;
  g_autoptr(GError) error = NULL;
  static const struct { QleanFirmware firmware; gboolean kernel; gboolean pflash; } cases[] = {
    { QLEAN_FIRMWARE_AUTO, FALSE, TRUE },
    { QLEAN_FIRMWARE_AUTO, TRUE, FALSE },
    { QLEAN_FIRMWARE_UEFI, FALSE, TRUE },
    { QLEAN_FIRMWARE_UEFI, TRUE, TRUE },
    { QLEAN_FIRMWARE_BIOS, TRUE, FALSE },
  };

  if (qemu == NULL || !g_file_test (arm->uefi_code, G_FILE_TEST_IS_REGULAR))
    {
      g_test_skip ("qemu-system-aarch64 or AAVMF is not installed "
                   "(apt-get install qemu-system-arm qemu-efi-aarch64)");
      return;
    }

  dir = g_dir_make_tmp ("qlean-firmware-XXXXXX", &error);
  g_assert_no_error (error);
  disk = make_blank_disk (dir);
  kernel = g_build_filename (dir, "vmlinuz", NULL);
  g_assert_true (g_file_set_contents (kernel, "not a kernel", -1, NULL));
  image = qlean_image_new_from_file (disk);
  qlean_image_set_guest_arch (image, QLEAN_ARCH_AARCH64);

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_auto(GStrv) argv = dry_run_with_firmware (image, cases[i].firmware,
                                                  cases[i].kernel ? kernel : NULL, &error);
      const char * const *a;

      g_assert_no_error (error);
      a = (const char * const *) argv;
      g_assert_cmpint (argv_mentions (a, "if=pflash"), ==, cases[i].pflash);
      g_assert_cmpint (argv_mentions (a, "/" QLEAN_UEFI_VARS), ==, cases[i].pflash);
      g_assert_cmpint (argv_mentions (a, arm->uefi_code), ==, cases[i].pflash);
      g_assert_cmpint (argv_value (a, "-kernel") != NULL, ==, cases[i].kernel);
      /* The kernel's command line goes with a kernel only. */
      g_assert_cmpint (argv_value (a, "-append") != NULL, ==, cases[i].kernel);
    }

  /* No kernel and no BIOS: nothing can boot the disk without UEFI. */
  {
    g_auto(GStrv) argv = dry_run_with_firmware (image, QLEAN_FIRMWARE_BIOS, NULL, &error);

    g_assert_null (argv);
    g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG);
    g_assert_nonnull (strstr (error->message, "no BIOS"));
    g_clear_error (&error);
  }

  /* x86-64 through OVMF: its argv where it is installed, else an error
   * that names the package. */
  x86_image = qlean_image_new_from_file (disk);
  qlean_image_set_guest_arch (x86_image, QLEAN_ARCH_X86_64);
  {
    g_auto(GStrv) argv = dry_run_with_firmware (x86_image, QLEAN_FIRMWARE_UEFI, NULL, &error);

    if (g_file_test (x86->uefi_code, G_FILE_TEST_IS_REGULAR) &&
        g_file_test (x86->uefi_vars, G_FILE_TEST_IS_REGULAR))
      {
        g_assert_no_error (error);
        g_assert_true (argv_mentions ((const char * const *) argv, x86->uefi_code));
      }
    else if (error == NULL || !g_error_matches (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_QEMU_NOT_FOUND))
      {
        g_assert_null (argv);
        g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG);
        g_assert_nonnull (strstr (error->message, "install the ovmf package"));
      }
    g_clear_error (&error);
  }

  g_assert_true (qlean_rm_rf (dir, NULL));
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

QleanMachine *
test_arch_arm_machine (void)
{
  g_autoptr(QleanImage) image = NULL;
  g_autoptr(QleanMachineConfig) config = NULL;
  g_autoptr(GError) error = NULL;
  gint64 start;

  if (!test_arch_available (QLEAN_ARCH_AARCH64))
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
  QleanMachine *machine = test_arch_arm_machine ();
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
  QleanMachine *machine = test_arch_arm_machine ();
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
  QleanMachine *machine = test_arch_arm_machine ();
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

  if (!test_arch_available (QLEAN_ARCH_AARCH64))
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

/* An aarch64 disk that only UEFI boots */

/* The fixture of tests/images/build-uefi-fixture.sh, made from the
 * aarch64 minimal image's kernel and initramfs: a GPT disk with an EFI
 * system partition and GRUB, no kernel Qlean could boot directly. NULL,
 * the test skipped with the reason, where it cannot be built. */
static char *
get_uefi_fixture (void)
{
  g_autoptr(QleanImage) minimal = qlean_image_new_minimal_for_arch (QLEAN_ARCH_AARCH64);
  g_autoptr(GError) error = NULL;
  g_autofree char *script = g_test_build_filename (G_TEST_DIST, "images", "build-uefi-fixture.sh", NULL);
  g_autofree char *default_cache = g_build_filename (g_get_home_dir (), ".cache", "qlean-test-fixtures", NULL);
  const char *cache = g_getenv ("QLEAN_FIXTURE_CACHE");
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  const char *argv[] = { "bash", script, NULL, NULL, qlean_minimal_cmdline (QLEAN_ARCH_AARCH64),
                         cache && *cache ? cache : default_cache, NULL };
  gint64 start = g_get_monotonic_time ();
  int status = 0;

  g_assert_true (qlean_image_prepare (minimal, NULL, &error));
  g_assert_no_error (error);
  argv[2] = qlean_image_get_kernel (minimal);
  argv[3] = qlean_image_get_initrd (minimal);

  if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &out, &err,
                     &status, &error) ||
      !g_spawn_check_wait_status (status, &error))
    {
      g_autofree char *why = g_strdup_printf ("the UEFI fixture could not be built (%s): %s",
                                              error->message, err ? g_strstrip (err) : "");

      g_test_skip (why);
      return NULL;
    }
  g_test_message ("UEFI fixture %s ready in %.1f s", g_strstrip (out),
                  (g_get_monotonic_time () - start) / 1e6);
  return g_steal_pointer (&out);
}

/* The run directories of machines named @prefix-something, now. */
static GPtrArray *
list_run_dirs (const char *prefix)
{
  g_autofree char *base = qlean_get_run_base_dir (NULL);
  g_autoptr(GDir) dir = g_dir_open (base, 0, NULL);
  GPtrArray *found = g_ptr_array_new_with_free_func (g_free);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    if (g_str_has_prefix (name, prefix))
      g_ptr_array_add (found, g_build_filename (base, name, NULL));

  return found;
}

/* A disk with no kernel to boot directly boots through AAVMF and GRUB
 * (firmware "auto"), runs commands, and leaves nothing when it ends:
 * its copy of the UEFI variables goes with its run directory. */
static void
test_arm_uefi_boot (void)
{
  const QleanArchInfo *info = qlean_arch_get_info (QLEAN_ARCH_AARCH64);
  g_autofree char *disk = NULL;
  g_autoptr(QleanImage) image = NULL;
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *run_dir = NULL;
  g_autofree char *vars = NULL;
  g_autofree char *uname = NULL;
  g_autofree char *efi = NULL;
  GStatBuf vars_st, template_st;
  gint64 start;

  if (!test_arch_available (QLEAN_ARCH_AARCH64))
    return;
  if (!g_file_test (info->uefi_code, G_FILE_TEST_IS_REGULAR))
    {
      g_test_skip ("AAVMF is not installed (apt-get install qemu-efi-aarch64)");
      return;
    }
  disk = get_uefi_fixture ();
  if (disk == NULL)
    return;

  image = qlean_image_new_from_file (disk);
  qlean_image_set_guest_arch (image, QLEAN_ARCH_AARCH64);
  machine = qlean_machine_new_with_name ("arm-uefi", image, NULL);
  /* The firmware alone takes several seconds under TCG, more on a
   * loaded host. */
  qlean_machine_set_boot_timeout (machine, 300 * 1000);
  start = g_get_monotonic_time ();
  g_assert_true (qlean_machine_spawn (machine, NULL, &error));
  g_assert_no_error (error);
  g_test_message ("aarch64 UEFI boot (AAVMF, GRUB, kernel) to ready: %.2f s",
                  (g_get_monotonic_time () - start) / 1e6);

  /* The run's own variables, sparse: the template is mostly empty. */
  run_dir = g_strdup (qlean_machine_get_run_dir (machine));
  g_assert_nonnull (run_dir);
  vars = g_build_filename (run_dir, QLEAN_UEFI_VARS, NULL);
  g_assert_cmpint (g_stat (vars, &vars_st), ==, 0);
  g_assert_cmpint (g_stat (info->uefi_vars, &template_st), ==, 0);
  g_assert_cmpint (vars_st.st_size, ==, template_st.st_size);
  g_assert_cmpint (vars_st.st_mode & 0777, ==, 0600);

  uname = test_run_text (machine, "uname -m");
  g_assert_cmpstr (uname, ==, "aarch64");
  /* Booted by the firmware, not by QEMU: the kernel sees EFI. */
  efi = test_run_text (machine, "test -d /sys/firmware/efi && echo efi || echo none");
  g_assert_cmpstr (efi, ==, "efi");

  /* A snapshot holds the flash chips too (QEMU migrates them): a
   * restore, in a new run with new variables, goes on where it was. */
  g_free (test_run_text (machine, "echo before > /tmp/uefi-marker"));
  g_assert_true (qlean_machine_snapshot (machine, "uefi", NULL, &error));
  g_assert_no_error (error);
  start = g_get_monotonic_time ();
  g_assert_true (qlean_machine_restore (machine, "uefi", NULL, &error));
  g_assert_no_error (error);
  g_test_message ("aarch64 UEFI restore to ready: %.2f s", (g_get_monotonic_time () - start) / 1e6);
  g_assert_false (g_file_test (run_dir, G_FILE_TEST_EXISTS));
  g_free (run_dir);
  run_dir = g_strdup (qlean_machine_get_run_dir (machine));
  g_free (vars);
  vars = g_build_filename (run_dir, QLEAN_UEFI_VARS, NULL);
  g_assert_true (g_file_test (vars, G_FILE_TEST_IS_REGULAR));
  {
    g_autofree char *marker = test_run_text (machine, "cat /tmp/uefi-marker");

    g_assert_cmpstr (marker, ==, "before");
  }

  g_assert_true (qlean_machine_kill (machine, NULL, &error));
  g_assert_no_error (error);
  g_assert_false (g_file_test (vars, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (run_dir, G_FILE_TEST_EXISTS));
}

/* A UEFI start that fails leaves no variables behind, even where the
 * run directory is kept to be looked at (clear off). */
static void
test_arm_uefi_failed_start (void)
{
  const QleanArchInfo *info = qlean_arch_get_info (QLEAN_ARCH_AARCH64);
  g_autofree char *dir = NULL;
  g_autofree char *disk = NULL;
  g_autoptr(QleanImage) image = NULL;
  g_autoptr(QleanMachineConfig) config = NULL;
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) before = NULL;
  g_autoptr(GPtrArray) after = NULL;
  const char *bad_args[] = { "-no-such-option", NULL };
  guint kept = 0;

  if (!test_arch_available (QLEAN_ARCH_AARCH64))
    return;
  if (!g_file_test (info->uefi_code, G_FILE_TEST_IS_REGULAR))
    {
      g_test_skip ("AAVMF is not installed (apt-get install qemu-efi-aarch64)");
      return;
    }

  dir = g_dir_make_tmp ("qlean-uefi-XXXXXX", &error);
  g_assert_no_error (error);
  disk = make_blank_disk (dir);
  image = qlean_image_new_from_file (disk);
  qlean_image_set_guest_arch (image, QLEAN_ARCH_AARCH64);
  config = qlean_machine_config_new ();
  qlean_machine_config_set_clear (config, FALSE);
  qlean_machine_config_set_extra_args (config, bad_args);
  machine = qlean_machine_new_with_name ("uefi-fails", image, config);

  /* Its run directory, uefi-fails-XXXXXX, and its state directory
   * (uefi-fails.state-XXXXXX, its disk), both kept. */
  before = list_run_dirs ("uefi-fails");
  g_assert_false (qlean_machine_spawn (machine, NULL, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);
  g_clear_object (&machine);

  after = list_run_dirs ("uefi-fails");
  for (guint i = 0; i < after->len; i++)
    {
      const char *kept_dir = g_ptr_array_index (after, i);
      g_autofree char *base = g_path_get_basename (kept_dir);
      g_autofree char *vars = g_build_filename (kept_dir, QLEAN_UEFI_VARS, NULL);
      g_autofree char *log = g_build_filename (kept_dir, QLEAN_QEMU_LOG, NULL);

      if (g_ptr_array_find_with_equal_func (before, kept_dir, g_str_equal, NULL))
        continue;
      if (g_str_has_prefix (base, "uefi-fails-"))
        {
          kept++;
          /* QEMU ran, and said why it stopped; the variables are gone. */
          g_assert_true (g_file_test (log, G_FILE_TEST_EXISTS));
          g_assert_false (g_file_test (vars, G_FILE_TEST_EXISTS));
        }
      g_assert_true (qlean_rm_rf (kept_dir, NULL));
    }
  g_assert_cmpuint (kept, ==, 1);
  g_assert_true (qlean_rm_rf (dir, NULL));
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

  if (!test_have_qemu () || !test_arch_available (QLEAN_ARCH_AARCH64))
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
  g_test_add_func ("/arch/argv/uefi", test_argv_uefi);
  g_test_add_func ("/arch/firmware/choice", test_firmware_choice);
  g_test_add_func ("/arch/dry-run/file-image", test_dry_run_file_image);
  g_test_add_func ("/arch/dry-run/firmware", test_dry_run_firmware);
  g_test_add_func ("/arch/aarch64/uname", test_arm_uname);
  g_test_add_func ("/arch/aarch64/exec", test_arm_exec);
  g_test_add_func ("/arch/aarch64/files", test_arm_files);
  g_test_add_func ("/arch/aarch64/fast-start", test_arm_fast_start);
  g_test_add_func ("/arch/aarch64/pool-with-x86-64", test_mixed_pool_ping);
  test_arch_transports_add_tests ();
  g_test_add_func ("/arch/aarch64/uefi/failed-start", test_arm_uefi_failed_start);
  g_test_add_func ("/arch/aarch64/uefi/boot", test_arm_uefi_boot);

  status = g_test_run ();

  if (arm_machine != NULL && qlean_machine_get_state (arm_machine) == QLEAN_MACHINE_STATE_RUNNING)
    qlean_machine_shutdown (arm_machine, NULL, NULL);
  g_clear_object (&arm_machine);

  return status;
}
