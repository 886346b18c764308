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

/* qlean-machine-network-interface.c */

/* How long a guest may take to show its network card, or an address on
 * it. The minimal image shows both at once; distribution images may
 * still be renaming interfaces or running a DHCP client. */
#define QLEAN_INTERFACE_WAIT_MS 10000

/* The interface a wait found. */
typedef struct
{
  char *name;
  char *ipv4;   /* its first IPv4 address, or NULL */
} QleanInterfaceFound;

void                 qlean_interface_found_free          (QleanInterfaceFound *found);

/* On the worker: polls guest-network-get-interfaces through @qga until
 * the interface with @mac_address (any but loopback when NULL), or with
 * @or_mac_address when that is not NULL, shows, with an IPv4 address
 * when @need_ipv4. Fails with G_IO_ERROR_TIMED_OUT
 * after QLEAN_INTERFACE_WAIT_MS, with what the guest showed as its
 * message: empty when it showed no interface, so that callers say so in
 * a sentence of their own. */
void                 qlean_machine_wait_interface_async  (gpointer             source_object,
                                                          QleanQgaClient      *qga,
                                                          const char          *mac_address,
                                                          const char          *or_mac_address,
                                                          gboolean             need_ipv4,
                                                          GCancellable        *cancellable,
                                                          GAsyncReadyCallback  callback,
                                                          gpointer             user_data);
QleanInterfaceFound *qlean_machine_wait_interface_finish (GAsyncResult        *result,
                                                          GError             **error);

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
