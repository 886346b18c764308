/* qlean-arch-private.h: what differs between guest architectures
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-arch-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include "qlean-arch.h"

G_BEGIN_DECLS

/* Everything Qlean does differently for one guest architecture, in one
 * table (qlean-arch.c), so that a new architecture is one more row. */
typedef struct
{
  QleanArch    arch;
  const char  *name;              /* the kernel's and QEMU's: x86_64, aarch64 */
  const char  *debian_name;       /* Debian's: amd64, arm64 */
  const char  *qemu_binary;       /* qemu-system-aarch64 */
  const char  *qemu_package;      /* the Debian package that has it */
  const char  *machine;           /* -machine */
  const char  *tcg_cpu;           /* -cpu under TCG */
  const char  *bios;              /* -bios, or NULL for QEMU's default */
  /* Whether the machine type's own firmware boots a disk's boot loader
   * (SeaBIOS on q35): where not, a disk without a kernel boots through
   * UEFI. */
  gboolean     bios_boots_disk;
  /* The UEFI firmware, as Debian packages it: its code (mapped read-only)
   * and the template of its variables (copied for each run), or NULL
   * where Qlean knows none. */
  const char  *uefi_code;
  const char  *uefi_vars;
  const char  *uefi_package;
  const char  *console;           /* the serial console's device in the guest */
  const char  *panic_device;      /* the pvpanic device, or NULL */
  /* The VM generation ID device, or NULL where QEMU has none: a new ID
   * at every start, a restore included, makes the guest kernel reseed
   * its random generator (Linux 5.18+). */
  const char  *genid_device;
  guint16      elf_machine;       /* e_machine of its programs */
  /* The minimal image's kernel command line: each parameter trims boot
   * time under TCG, where every initcall and probe costs many times what
   * it costs on hardware (MEASUREMENTS.md, bench/boot). */
  const char  *minimal_cmdline;
  /* Added for one CPU, which needs no timer calibration, or NULL. */
  const char  *one_core_cmdline;
  /* The Debian packages of the minimal image's kernel and of the cross
   * compiler that builds qlean-guest for it. */
  const char  *kernel_package;
  const char  *cross_compiler_package;
  /* Whether tools/setup.sh deps makes this architecture's sysroot (Debian
   * 12, which it targets, has no riscv64 packages). */
  gboolean     sysroot_by_setup;
  /* Whether the minimal image boots an uncompressed ELF kernel taken out
   * of the packaged one (x86-64's PVH entry); other architectures boot
   * the packaged image as it is. */
  gboolean     boot_vmlinux;
} QleanArchInfo;

const QleanArchInfo *qlean_arch_get_info (QleanArch arch);
/* Whether KVM can run this architecture here at all: only the host's own. */
gboolean             qlean_arch_is_host  (QleanArch arch);
/* The unpacked Debian packages a foreign minimal image is built from
 * (tools/setup.sh deps makes them): $QLEAN_SYSROOT_<ARCH>, else
 * $XDG_CACHE_HOME/qlean/sysroots/<debian name>, else
 * /var/cache/qlean/sysroots/<debian name>. Returns the first that exists,
 * or NULL; @tried lists every place looked at, for an error message. */
char                *qlean_arch_find_sysroot (QleanArch   arch,
                                              char      **tried);

G_END_DECLS
