/* qlean-guest-process-private.h: how launchers start guest processes
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include "qlean-guest-channel-private.h"
#include "qlean-guest-launcher.h"
#include "qlean-guest-process.h"
#include "qlean-machine.h"

G_BEGIN_DECLS

/* Worker thread only. Sends the EXEC request on @channel; @task (whose
 * source object may be anything) completes with the process once the
 * guest reports it started, or with the error that kept it from
 * starting. */
void qlean_guest_process_start (QleanMachine           *machine,
                                QleanGuestChannel      *channel,
                                QleanGuestProcessFlags  flags,
                                const char             *program,
                                GBytes                 *request,
                                GBytes                 *stdin_bytes,
                                guint                   timeout_ms,
                                GTask                  *task);

/* Lets @self start processes in a machine that is still starting, for
 * the commands Qlean itself runs before the machine is ready (a restored
 * machine's new identity). */
void qlean_guest_launcher_set_starting (QleanGuestLauncher *self);

G_END_DECLS
