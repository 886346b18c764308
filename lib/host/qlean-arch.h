/* qlean-arch.h: guest architectures
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#if !defined(QLEAN_INSIDE) && !defined(QLEAN_COMPILATION)
# error "Only <qlean/qlean.h> can be included directly."
#endif

#include <glib-object.h>

#include "qlean-version-macros.h"

G_BEGIN_DECLS

/**
 * QleanArch:
 * @QLEAN_ARCH_X86_64: 64-bit x86 (Debian's amd64), on QEMU's q35 machine.
 * @QLEAN_ARCH_AARCH64: 64-bit Arm (Debian's arm64), on QEMU's virt machine.
 * @QLEAN_ARCH_RISCV64: 64-bit RISC-V, on QEMU's virt machine with OpenSBI.
 *
 * The architecture of a guest. A guest of another architecture than the
 * host's runs under TCG, QEMU's emulation, which costs about what an
 * x86-64 guest costs without KVM.
 *
 * Since: 0.1
 */
typedef enum
{
  QLEAN_ARCH_X86_64,  /*< nick=x86_64 >*/
  QLEAN_ARCH_AARCH64, /*< nick=aarch64 >*/
  QLEAN_ARCH_RISCV64, /*< nick=riscv64 >*/
} QleanArch;

QLEAN_AVAILABLE_IN_0_1
QleanArch    qlean_arch_get_host     (void);
QLEAN_AVAILABLE_IN_0_1
const char  *qlean_arch_to_string    (QleanArch    arch);
QLEAN_AVAILABLE_IN_0_1
gboolean     qlean_arch_from_string  (const char  *name,
                                      QleanArch   *arch);

G_END_DECLS
