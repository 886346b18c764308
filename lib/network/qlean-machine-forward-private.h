/* qlean-machine-forward-private.h: port forwards of a machine
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-machine-forward-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include "qlean-machine.h"

G_BEGIN_DECLS

/* Worker thread only: closes every port the machine forwards, and every
 * connection through them. Called when a run ends. */
void qlean_machine_forward_release (QleanMachine *self);

G_END_DECLS
