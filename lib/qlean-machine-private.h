/* qlean-machine-private.h: what the rest of Qlean may use of a machine
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include "qlean-machine.h"

G_BEGIN_DECLS

/* Fails with QLEAN_MACHINE_ERROR_INVALID_STATE unless the machine is
 * RUNNING; @what names the call for the message. */
gboolean qlean_machine_check_running (QleanMachine  *self,
                                      const char    *what,
                                      GError       **error);

const char *qlean_machine_state_to_string (QleanMachineState state);

G_END_DECLS
