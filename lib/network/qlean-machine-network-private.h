/* qlean-machine-network-private.h: a machine's side of a QleanNetwork
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-machine-network-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include "qlean-machine.h"
#include "qlean-machine-run-private.h"
#include "qlean-network-private.h"

G_BEGIN_DECLS

/* Gives the machine the network's part in each of its starts (its
 * network card, then the guest's address as a boot stage); QleanNetwork's
 * class calls it, before any machine can be on a network. */
void               qlean_machine_network_register         (void);

gboolean           qlean_machine_network_match_interface  (JsonArray           *interfaces,
                                                           const char          *mac_address,
                                                           gboolean             need_ipv4,
                                                           char               **name,
                                                           char               **ipv4,
                                                           char               **seen);

/* Worker: a machine restored from another's state (its identity fix
 * gives it its own MAC) keeps its link down from before the load
 * (hold) until the fix ran (release, which returns @task's result), so
 * that nothing goes out with the other machine's MAC. */
void               qlean_machine_network_hold_link        (QleanMachineRun     *run);
void               qlean_machine_network_release_link     (QleanMachineRun     *run,
                                                           GTask               *task);

G_END_DECLS
