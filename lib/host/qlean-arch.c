/* qlean-arch.c: guest architectures
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>
#include <sys/utsname.h>

#include "qlean-arch-private.h"

static const QleanArchInfo arch_table[] = {
  {
    .arch = QLEAN_ARCH_X86_64,
    .name = "x86_64",
    .debian_name = "amd64",
    .qemu_binary = "qemu-system-x86_64",
    .qemu_package = "qemu-system-x86",
    .machine = "q35",
    .tcg_cpu = "max",
    .bios_boots_disk = TRUE,
    /* OVMF without Secure Boot or SMM, which q35 would need emulated. */
    .uefi_code = "/usr/share/OVMF/OVMF_CODE_4M.fd",
    .uefi_vars = "/usr/share/OVMF/OVMF_VARS_4M.fd",
    .uefi_package = "ovmf",
    .console = "ttyS0",
    .panic_device = "pvpanic-pci",
    /* QEMU 7.2 has it on x86 only. */
    .genid_device = "vmgenid,guid=auto",
    .elf_machine = 62,
    .minimal_cmdline =
      "console=ttyS0 quiet loglevel=0 panic=-1 "
      "mitigations=off tsc=reliable no_timer_check "
      "i8042.noaux i8042.nokbd i8042.nopnp cryptomgr.notests "
      "random.trust_cpu=on audit=0 8250.nr_uarts=1 pci=lastbus=0 "
      "noreplace-smp nokaslr",
    /* Calibrating the APIC timer costs ~0.1 s under TCG. */
    .one_core_cmdline = "noapictimer",
    .kernel_package = "linux-image-cloud-amd64",
    .cross_compiler_package = "gcc-x86-64-linux-gnu",
    .boot_vmlinux = TRUE,
  },
  {
    .arch = QLEAN_ARCH_AARCH64,
    .name = "aarch64",
    .debian_name = "arm64",
    .qemu_binary = "qemu-system-aarch64",
    .qemu_package = "qemu-system-arm",
    /* virt has PCIe, so the same virtio-*-pci devices work. */
    .machine = "virt",
    /* `max` alone emulates pointer authentication, which makes the
     * kernel reach /init at 7 s instead of 1.5 s (MEASUREMENTS.md). */
    .tcg_cpu = "max,pauth=off",
    /* virt has no BIOS: QEMU boots a kernel itself, and a disk boots
     * through AAVMF (edk2), about 6 s under TCG. */
    .uefi_code = "/usr/share/AAVMF/AAVMF_CODE.fd",
    .uefi_vars = "/usr/share/AAVMF/AAVMF_VARS.fd",
    .uefi_package = "qemu-efi-aarch64",
    .console = "ttyAMA0",
    .panic_device = "pvpanic-pci",
    .elf_machine = 183,
    .minimal_cmdline =
      "console=ttyAMA0 quiet loglevel=0 panic=-1 "
      "mitigations=off cryptomgr.notests random.trust_cpu=on audit=0 nokaslr",
    .kernel_package = "linux-image-cloud-arm64",
    .cross_compiler_package = "gcc-aarch64-linux-gnu",
    .sysroot_by_setup = TRUE,
  },
  {
    .arch = QLEAN_ARCH_RISCV64,
    .name = "riscv64",
    .debian_name = "riscv64",
    .qemu_binary = "qemu-system-riscv64",
    .qemu_package = "qemu-system-misc",
    .machine = "virt",
    .tcg_cpu = "rv64",
    /* OpenSBI, which QEMU ships: the kernel runs in supervisor mode. */
    .bios = "default",
    /* No UEFI: Debian 12, which setup.sh targets, packages no edk2 for
     * riscv64, so a disk without a kernel cannot boot. */
    .console = "ttyS0",
    .panic_device = "pvpanic-pci",
    .elf_machine = 243,
    .minimal_cmdline =
      "console=ttyS0 quiet loglevel=0 panic=-1 "
      "mitigations=off cryptomgr.notests audit=0 nokaslr",
    .kernel_package = "linux-image-riscv64",
    .cross_compiler_package = "gcc-riscv64-linux-gnu",
  },
};

G_STATIC_ASSERT (G_N_ELEMENTS (arch_table) == QLEAN_ARCH_RISCV64 + 1);

const QleanArchInfo *
qlean_arch_get_info (QleanArch arch)
{
  if ((guint) arch >= G_N_ELEMENTS (arch_table))
    arch = QLEAN_ARCH_X86_64;

  g_assert (arch_table[arch].arch == arch);
  return &arch_table[arch];
}

/**
 * qlean_arch_get_host:
 *
 * The architecture of the host, the only one KVM can run. A host that
 * is none of #QleanArch's counts as x86-64.
 *
 * Returns: the host's architecture
 *
 * Since: 0.1
 */
QleanArch
qlean_arch_get_host (void)
{
  static gsize host = 0;

  if (g_once_init_enter (&host))
    {
      struct utsname uts;
      QleanArch arch = QLEAN_ARCH_X86_64;

      if (uname (&uts) == 0)
        qlean_arch_from_string (uts.machine, &arch);
      g_once_init_leave (&host, (gsize) arch + 1);
    }

  return (QleanArch) (host - 1);
}

gboolean
qlean_arch_is_host (QleanArch arch)
{
  return arch == qlean_arch_get_host ();
}

/**
 * qlean_arch_to_string:
 * @arch: a #QleanArch
 *
 * Returns: the kernel's name of @arch (`x86_64`, `aarch64`, `riscv64`),
 *   which is also its #GEnumValue nick
 *
 * Since: 0.1
 */
const char *
qlean_arch_to_string (QleanArch arch)
{
  return qlean_arch_get_info (arch)->name;
}

/**
 * qlean_arch_from_string:
 * @name: an architecture's name: the kernel's (`x86_64`, `aarch64`,
 *   `riscv64`) or Debian's (`amd64`, `arm64`)
 * @arch: (out): where to store the architecture
 *
 * Returns: whether @name is a known architecture
 *
 * Since: 0.1
 */
gboolean
qlean_arch_from_string (const char *name,
                        QleanArch  *arch)
{
  g_return_val_if_fail (arch != NULL, FALSE);

  if (name == NULL)
    return FALSE;

  for (guint i = 0; i < G_N_ELEMENTS (arch_table); i++)
    if (g_str_equal (name, arch_table[i].name) || g_str_equal (name, arch_table[i].debian_name))
      {
        *arch = arch_table[i].arch;
        return TRUE;
      }

  return FALSE;
}

char *
qlean_arch_find_sysroot (QleanArch   arch,
                         char      **tried)
{
  const QleanArchInfo *info = qlean_arch_get_info (arch);
  g_autofree char *env_name = g_strdup_printf ("QLEAN_SYSROOT_%s", info->name);
  g_autoptr(GPtrArray) candidates = g_ptr_array_new_with_free_func (g_free);
  const char *from_env;

  for (char *p = env_name; *p != '\0'; p++)
    *p = g_ascii_toupper (*p);
  from_env = g_getenv (env_name);

  /* A variable that is set is the only place looked at: a test that
   * points it at an empty directory means "none". */
  if (from_env != NULL && *from_env != '\0')
    g_ptr_array_add (candidates, g_strdup (from_env));
  else
    {
      g_ptr_array_add (candidates, g_build_filename (g_get_user_cache_dir (), "qlean", "sysroots",
                                                     info->debian_name, NULL));
      g_ptr_array_add (candidates, g_build_filename ("/var/cache/qlean/sysroots", info->debian_name, NULL));
    }

  if (tried != NULL)
    {
      g_ptr_array_add (candidates, NULL);
      *tried = g_strjoinv (", ", (char **) candidates->pdata);
      g_ptr_array_remove_index (candidates, candidates->len - 1);
    }

  for (guint i = 0; i < candidates->len; i++)
    if (g_file_test (g_ptr_array_index (candidates, i), G_FILE_TEST_IS_DIR))
      return g_strdup (g_ptr_array_index (candidates, i));

  return NULL;
}
