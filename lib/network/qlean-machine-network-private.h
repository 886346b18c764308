/* qlean-machine-network-private.h: a machine's side of a QleanNetwork
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-machine-network-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include "qlean-machine.h"
#include "qlean-network-private.h"

G_BEGIN_DECLS

/* Attaches the machine to @network (no-op when already attached) and
 * returns what its network card needs; @mac_address, when set, replaces
 * the network's. */
QleanNetworkLease *qlean_machine_network_resolve          (QleanMachine        *self,
                                                           QleanNetwork        *network,
                                                           const char          *mac_address,
                                                           GError             **error);

/* Fails unless @network runs, naming what to do. */
gboolean           qlean_machine_network_check_running    (QleanMachine        *self,
                                                           QleanNetwork        *network,
                                                           GError             **error);

/* On the worker, while the machine starts and once its agent answers:
 * gives the guest's interface its address (and default route with NAT),
 * and lists every machine of the network in its /etc/hosts. */
void               qlean_machine_network_configure_async  (QleanMachine        *self,
                                                           QleanQgaClient      *qga,
                                                           GCancellable        *cancellable,
                                                           GAsyncReadyCallback  callback,
                                                           gpointer             user_data);
gboolean           qlean_machine_network_configure_finish (QleanMachine        *self,
                                                           GAsyncResult        *result,
                                                           GError             **error);

gboolean           qlean_machine_network_match_interface  (JsonArray           *interfaces,
                                                           const char          *mac_address,
                                                           gboolean             need_ipv4,
                                                           char               **name,
                                                           char               **ipv4,
                                                           char               **seen);

G_END_DECLS
