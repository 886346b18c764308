/* qlean-machine-private.h: what the rest of Qlean may use of a machine
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include "qlean-guest-channel-private.h"
#include "qlean-machine.h"

G_BEGIN_DECLS

/* Fails with QLEAN_MACHINE_ERROR_INVALID_STATE unless the machine is
 * RUNNING; @what names the call for the message. */
gboolean qlean_machine_check_running (QleanMachine  *self,
                                      const char    *what,
                                      GError       **error);

const char *qlean_machine_state_to_string (QleanMachineState state);

/* The machine's channel to qlean-guest, once it answers. */
void               qlean_machine_get_guest_channel_async  (QleanMachine        *self,
                                                           GCancellable        *cancellable,
                                                           GAsyncReadyCallback  callback,
                                                           gpointer             user_data);
QleanGuestChannel *qlean_machine_get_guest_channel_finish (QleanMachine        *self,
                                                           GAsyncResult        *result,
                                                           GError             **error);

G_END_DECLS
