/* qlean-machine-virtiofs-private.h: host folders over virtiofs, one virtiofsd per share
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-machine-virtiofs-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include "qlean-machine-config.h"
#include "qlean-machine-run-private.h"

G_BEGIN_DECLS

/* Worker thread: how the shares of a start of @machine reach the guest,
 * 9P or VIRTIOFS, never AUTO: the config's choice, with AUTO resolved
 * (virtiofs where it can run, else 9p, with the reason logged). An
 * explicit VIRTIOFS that cannot run stays VIRTIOFS: the launch then
 * fails with the reason (qlean_machine_virtiofs_start()). A start that
 * loads a saved state (@restoring) keeps 9p: the state's devices are. */
QleanShareKind qlean_machine_pick_share_kind (QleanMachine *machine,
                                              gboolean      restoring);

/* Worker thread: the kind this run decided on (run data), or what
 * qlean_machine_pick_share_kind() says for a machine that has no
 * starting run (dry runs). */
QleanShareKind qlean_machine_run_get_share_kind (QleanMachineRun *run);
void           qlean_machine_run_set_share_kind (QleanMachineRun *run,
                                                 QleanShareKind   kind);

/* Worker thread: starts one virtiofsd per share of @machine, listening
 * in @run_dir, before QEMU connects to them. They belong to @run: they
 * are killed, and their sockets removed, when it is released. */
gboolean       qlean_machine_virtiofs_start  (QleanMachine    *machine,
                                              QleanMachineRun *run,
                                              const char      *run_dir,
                                              GError         **error);

/* Whether @run serves its shares over virtiofs: its QEMU has a
 * vhost-user-fs device, which QEMU cannot migrate, so it cannot be
 * saved, from its first instant. */
gboolean       qlean_machine_run_has_virtiofs (QleanMachineRun *run);

G_END_DECLS
