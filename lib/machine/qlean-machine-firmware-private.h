/* qlean-machine-firmware-private.h: how a machine boots, and UEFI's per-run variables
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-machine-firmware-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include "qlean-machine-config.h"
#include "qlean-qemu-argv-private.h"

G_BEGIN_DECLS

/* Decides how machine @name boots with @firmware (its config's), from
 * @spec's architecture and kernel (set before): sets @spec->uefi_code
 * for a UEFI boot, after checking that the firmware is installed. An
 * error names what is missing or what to choose instead. */
gboolean qlean_machine_resolve_firmware (const char     *name,
                                         QleanFirmware   firmware,
                                         QleanQemuSpec  *spec,
                                         GError        **error);

/* The run's own copy of the UEFI variables, QLEAN_UEFI_VARS in
 * @spec->run_dir, made before QEMU starts; nothing to do when the
 * machine does not boot through UEFI. */
gboolean qlean_machine_firmware_copy_vars (const QleanQemuSpec  *spec,
                                           GError              **error);

/* Removes that copy (if any) from @run_dir: at every end of a run, the
 * run directory kept or not. */
void     qlean_machine_firmware_remove_vars (const char *run_dir);

G_END_DECLS
