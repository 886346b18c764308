/* test-arch.h: what test-arch.c shares with the files of its program
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <qlean/qlean.h>

G_BEGIN_DECLS

/* Whether guests of @arch can run here; if not, the test is skipped,
 * saying what is missing. */
gboolean      test_arch_available        (QleanArch arch);
/* The aarch64 machine the tests share (qlean-guest transport), booted on
 * first use; NULL (and the test skipped) where aarch64 cannot run. */
QleanMachine *test_arch_arm_machine      (void);
void          test_arch_transports_add_tests (void);

G_END_DECLS
