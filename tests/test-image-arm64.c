/* test-image-arm64.c: aarch64 distribution images on an x86-64 host,
 * offline: the agent taken from the arm64 sysroot, a pull through a
 * real HTTP server on 127.0.0.1, preparation with libguestfs, and a
 * boot under qemu-system-aarch64 (TCG) that runs `uname -m`
 *
 * SPDX-License-Identifier: MIT
 *
 * The image is built in seconds from the arm64 sysroot (tools/setup.sh
 * deps) by tests/images/build-arm64-fixture.sh, cached under
 * $QLEAN_FIXTURE_CACHE or ~/.cache/qlean-test-fixtures, and served by
 * tests/images/fixture-server.c. Apart from test-image.c, whose Debian
 * fixture is amd64: these tests need another fixture, the sysroot and
 * the cross-built qlean-guest, and skip without them.
 */

#include "config.h"

#include <elf.h>
#include <string.h>
#include <glib/gstdio.h>

#include <qlean/qlean.h>

#include "images/fixture-build.h"
#include "images/fixture-server.h"
#include "qlean-arch-private.h"
#include "qlean-host-private.h"
#include "qlean-image-guestfs-private.h"
#include "qlean-image-private.h"
#include "test-common.h"

#define FIXTURE_NAME "debian-12-generic-arm64"

static char *fixture_dir;
static char *fixture_skip_reason;
static FixtureServer *server;

/* Skips unless the host is x86-64: what these tests are about is a
 * foreign guest. */
static gboolean
need_x86_64_host (void)
{
  if (qlean_arch_get_host () == QLEAN_ARCH_X86_64)
    return TRUE;

  g_test_skip ("aarch64 is a foreign architecture only on an x86-64 host");
  return FALSE;
}

/* The same, and skips unless the arm64 sysroot exists. */
static gboolean
need_sysroot (void)
{
  g_autofree char *sysroot = NULL;
  g_autofree char *tried = NULL;

  if (!need_x86_64_host ())
    return FALSE;

  sysroot = qlean_arch_find_sysroot (QLEAN_ARCH_AARCH64, &tried);
  if (sysroot == NULL)
    {
      g_autofree char *reason = g_strdup_printf ("no arm64 sysroot (looked in %s); "
                                                 "tools/setup.sh deps makes one", tried);
      g_test_skip (reason);
      return FALSE;
    }

  return TRUE;
}

/* The fixture: built (or found) once per run, and served. */
static gboolean
need_fixture (void)
{
  return need_sysroot () &&
         fixture_need ("build-arm64-fixture.sh", "the arm64 fixture", &fixture_dir,
                       &fixture_skip_reason, &server);
}

/* A fresh, empty cache for one test. */
static char *
make_cache (const char *name)
{
  return fixture_make_cache ("image-arm64-tests", name);
}

/* e_machine of an ELF file, or 0. */
static guint16
elf_machine_of (const char *path)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  Elf64_Ehdr ehdr;

  if (!g_file_get_contents (path, &data, &len, NULL) || len < sizeof ehdr ||
      memcmp (data, ELFMAG, SELFMAG) != 0)
    return 0;
  memcpy (&ehdr, data, sizeof ehdr);
  return ehdr.e_machine;
}

/* The QEMU of a foreign architecture is never probed for KVM: its
 * guests cannot run under the host's KVM at all. */
static void
test_kvm_probe_foreign (void)
{
  g_autofree char *qemu = NULL;
  g_autofree char *reason = NULL;

  if (!need_x86_64_host ())
    return;
  qemu = qlean_host_find_qemu_for_arch (NULL, QLEAN_ARCH_AARCH64, NULL);
  if (qemu == NULL)
    {
      g_test_skip ("qemu-system-aarch64 is not installed");
      return;
    }

  g_assert_false (qlean_host_kvm_usable (qemu, &reason));
  g_assert_nonnull (reason);
  g_assert_nonnull (strstr (reason, "only x86_64 guests"));
}

/* Catalog entries carry their architecture; it is in the cache paths. */
static void
test_catalog_arch (void)
{
  g_autoptr(QleanImage) arm = qlean_image_new_from_distro (QLEAN_DISTRO_DEBIAN, FIXTURE_NAME);
  g_autoptr(QleanImage) amd = qlean_image_new_from_distro (QLEAN_DISTRO_DEBIAN, "debian-12-generic-amd64");

  g_assert_cmpstr (qlean_image_get_arch (arm), ==, "arm64");
  g_assert_cmpint (qlean_image_get_guest_arch (arm), ==, QLEAN_ARCH_AARCH64);
  g_assert_cmpstr (qlean_image_get_arch (amd), ==, "amd64");
  g_assert_cmpint (qlean_image_get_guest_arch (amd), ==, QLEAN_ARCH_X86_64);
}

/* The arm64 agent and what it loads, from the sysroot's ELF headers. */
static void
test_agent_from_sysroot (void)
{
  g_auto(QleanHostAgent) agent = { 0 };
  g_autoptr(GError) error = NULL;
  g_autofree char *sysroot = NULL;

  if (!need_sysroot ())
    return;
  sysroot = qlean_arch_find_sysroot (QLEAN_ARCH_AARCH64, NULL);

  g_assert_true (qlean_find_agent (&agent, QLEAN_ARCH_AARCH64, &error));
  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (agent.qemu_ga, sysroot));
  g_assert_cmpuint (elf_machine_of (agent.qemu_ga), ==, EM_AARCH64);
  g_assert_true (g_str_has_suffix (agent.loader, "/ld-linux-aarch64.so.1"));
  g_assert_cmpuint (elf_machine_of (agent.loader), ==, EM_AARCH64);
  g_assert_cmpuint (agent.libs->len, ==, agent.sonames->len);
  /* Direct (libglib) and indirect (libpcre2, which glib loads) needs,
   * each once, none of them the loader. */
  g_assert_true (g_ptr_array_find_with_equal_func (agent.sonames, "libglib-2.0.so.0", g_str_equal, NULL));
  g_assert_true (g_ptr_array_find_with_equal_func (agent.sonames, "libc.so.6", g_str_equal, NULL));
  g_assert_true (g_ptr_array_find_with_equal_func (agent.sonames, "libpcre2-8.so.0", g_str_equal, NULL));
  for (guint i = 0; i < agent.libs->len; i++)
    {
      const char *lib = g_ptr_array_index (agent.libs, i);

      g_assert_true (g_str_has_prefix (lib, sysroot));
      g_assert_cmpuint (elf_machine_of (lib), ==, EM_AARCH64);
      g_assert_false (g_str_has_suffix (lib, "ld-linux-aarch64.so.1"));
      for (guint j = i + 1; j < agent.sonames->len; j++)
        g_assert_cmpstr (g_ptr_array_index (agent.sonames, i), !=, g_ptr_array_index (agent.sonames, j));
    }
  /* Only the path, for the cache key: the same file. */
  {
    g_autofree char *program = qlean_find_agent_program (QLEAN_ARCH_AARCH64);

    g_assert_cmpstr (program, ==, agent.qemu_ga);
  }

}

/* Without a sysroot, the error says how to make one. In a subprocess,
 * which sets QLEAN_SYSROOT_AARCH64 before any thread runs. */
static void
test_agent_no_sysroot (void)
{
  if (g_test_subprocess ())
    {
      g_auto(QleanHostAgent) agent = { 0 };
      g_autoptr(GError) error = NULL;
      g_autofree char *empty = g_dir_make_tmp ("qlean-no-sysroot-XXXXXX", &error);

      g_assert_no_error (error);
      g_setenv ("QLEAN_SYSROOT_AARCH64", empty, TRUE);
      g_assert_false (qlean_find_agent (&agent, QLEAN_ARCH_AARCH64, &error));
      g_assert_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT);
      g_assert_nonnull (strstr (error->message, "tools/setup.sh deps"));
      g_assert_nonnull (strstr (error->message, empty));
      g_rmdir (empty);
      return;
    }

  if (!need_x86_64_host ())
    return;
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

/* Pull, verify, prepare and boot: the whole path of a distribution
 * image, for an aarch64 one. */
static void
test_pull_prepare_boot (void)
{
  g_autofree char *cache = NULL;
  g_autofree char *cached = NULL;
  g_autofree char *mirror = NULL;
  g_autofree char *text = NULL;
  g_autofree char *kernel = NULL;
  g_autofree char *qemu = NULL;
  g_autoptr(QleanImage) image = NULL;
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GError) error = NULL;
  const char *cmdline;
  gsize len = 0;
  gint64 start;

  if (!need_fixture ())
    return;
  qemu = qlean_host_find_qemu_for_arch (NULL, QLEAN_ARCH_AARCH64, NULL);
  if (qemu == NULL)
    {
      g_test_skip ("qemu-system-aarch64 is not installed");
      return;
    }

  cache = make_cache ("pull-prepare-boot");
  image = qlean_image_new_from_distro (QLEAN_DISTRO_DEBIAN, FIXTURE_NAME);
  mirror = g_strdup (fixture_server_get_url (server));
  qlean_image_set_mirror (image, mirror);
  qlean_image_set_cache_dir (image, cache);

  start = g_get_monotonic_time ();
  qlean_image_pull (image, NULL, &error);
  g_assert_no_error (error);
  cached = qlean_image_get_cached_path (image);
  g_assert_nonnull (strstr (cached, "/images/arm64/" FIXTURE_NAME "/"));
  g_assert_cmpuint (fixture_server_count (server, "/" FIXTURE_NAME "/" FIXTURE_NAME ".qcow2"), ==, 1);
  qlean_image_verify (image, NULL, &error);
  g_assert_no_error (error);
  g_test_message ("pull + verify: %.1f s", (g_get_monotonic_time () - start) / 1e6);

  start = g_get_monotonic_time ();
  qlean_image_prepare (image, NULL, &error);
  g_assert_no_error (error);
  g_test_message ("prepare: %.1f s", (g_get_monotonic_time () - start) / 1e6);

  g_assert_nonnull (strstr (qlean_image_get_disk (image), "/prepared/arm64/" FIXTURE_NAME "/"));
  /* Debian's arm64 kernel as it is: an Image (magic at offset 56). */
  g_assert_true (g_file_get_contents (qlean_image_get_kernel (image), &kernel, &len, NULL));
  g_assert_cmpuint (len, >, 64);
  g_assert_cmpmem (kernel + 56, 4, "ARM\x64", 4);
  cmdline = qlean_image_get_cmdline (image);
  g_assert_true (g_str_has_prefix (cmdline, "console=ttyAMA0 root=UUID="));
  /* No x86 hardware named on an arm64 kernel's command line. */
  g_assert_null (strstr (cmdline, "tsc="));
  g_assert_null (strstr (cmdline, "i8042"));
  g_assert_false (qlean_image_has_cloud_init (image));

  machine = qlean_machine_new_with_name ("arm", image, NULL);
  /* A whole aarch64 kernel under TCG on a busy 2-core host. */
  qlean_machine_set_boot_timeout (machine, 300 * 1000);
  start = g_get_monotonic_time ();
  qlean_machine_spawn (machine, NULL, &error);
  g_assert_no_error (error);
  g_test_message ("boot: %.1f s", (g_get_monotonic_time () - start) / 1e6);

  text = test_run_text (machine, "uname -m");
  g_assert_cmpstr (text, ==, "aarch64");
  g_clear_pointer (&text, g_free);
  /* The agent that answered is the one put in from the sysroot, under
   * BusyBox's init, which read the lines in its own format. */
  text = test_run_text (machine, "grep -c '^::respawn:/opt/qlean/qlean-run' /etc/inittab; "
                             "test -x /opt/qlean/bin/qemu-ga && pidof ld-linux.so >/dev/null && echo agent");
  g_assert_cmpstr (text, ==, "2\nagent");

  qlean_machine_kill (machine, NULL, NULL);
  g_clear_object (&machine);
  g_clear_object (&image);
  fixture_remove_cache (cache);
}

/* A custom arm64 image from the fixture's zboot/ directory, with a
 * cache of its own. */
static QleanImage *
zboot_image (const char *file,
             const char *cache)
{
  g_autofree char *path = g_build_filename (fixture_dir, "zboot", file, NULL);
  g_autoptr(GError) error = NULL;
  QleanImage *image = qlean_image_new_from_url (path, NULL, &error);

  g_assert_no_error (error);
  qlean_image_set_guest_arch (image, QLEAN_ARCH_AARCH64);
  qlean_image_set_cache_dir (image, cache);
  g_assert_cmpstr (qlean_image_get_arch (image), ==, "arm64");
  return image;
}

/* An image whose kernel is an EFI zboot one (Fedora's aarch64 kernels),
 * which QEMU 7.2 cannot load with -kernel: with no EFI boot loader it
 * fails to prepare with an error that says so, not with a machine that
 * never boots; with one, its machines boot that loader through UEFI. */
static void
test_prepare_zboot (void)
{
  g_autofree char *cache = NULL;
  g_autoptr(QleanImage) image = NULL;
  g_autoptr(QleanImage) efi = NULL;
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) argv = NULL;
  g_autofree char *joined = NULL;

  if (!need_fixture ())
    return;

  cache = make_cache ("zboot");
  image = zboot_image ("zboot-arm64.qcow2", cache);
  g_assert_false (qlean_image_prepare (image, NULL, &error));
  g_assert_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_PREPARE_FAILED);
  g_assert_nonnull (strstr (error->message, "EFI zboot"));
  g_assert_nonnull (strstr (error->message, "no EFI boot loader"));
  g_assert_false (qlean_image_is_prepared (image));
  g_clear_error (&error);

  efi = zboot_image ("zboot-efi-arm64.qcow2", cache);
  qlean_image_prepare (efi, NULL, &error);
  g_assert_no_error (error);
  g_assert_null (qlean_image_get_kernel (efi));
  g_assert_null (qlean_image_get_initrd (efi));
  g_assert_true (g_file_test (qlean_image_get_disk (efi), G_FILE_TEST_IS_REGULAR));

  /* The machine boots the disk through the firmware, with no -kernel. */
  machine = qlean_machine_new_with_name ("zboot", efi, NULL);
  argv = qlean_machine_dry_run (machine, &error);
  if (g_error_matches (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG) &&
      strstr (error->message, "qemu-efi-aarch64") != NULL)
    g_test_message ("no AAVMF, no UEFI argv to check: %s", error->message);
  else
    {
      g_assert_no_error (error);
      joined = g_strjoinv (" ", argv);
      g_assert_false (g_strv_contains ((const char * const *) argv, "-kernel"));
      g_assert_nonnull (strstr (joined, "AAVMF_CODE.fd"));
    }

  g_clear_object (&machine);
  g_clear_object (&image);
  g_clear_object (&efi);
  fixture_remove_cache (cache);
}

int
main (int    argc,
      char **argv)
{
  int ret;

  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/image-arm64/kvm-probe/foreign", test_kvm_probe_foreign);
  g_test_add_func ("/image-arm64/catalog/arch", test_catalog_arch);
  g_test_add_func ("/image-arm64/agent/sysroot", test_agent_from_sysroot);
  g_test_add_func ("/image-arm64/agent/no-sysroot", test_agent_no_sysroot);
  g_test_add_func ("/image-arm64/prepare/zboot", test_prepare_zboot);
  g_test_add_func ("/image-arm64/pull-prepare-boot", test_pull_prepare_boot);

  ret = g_test_run ();
  g_clear_pointer (&server, fixture_server_free);
  return ret;
}
