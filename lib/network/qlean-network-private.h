/* qlean-network-private.h: what machines and pools use of a network
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-network-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include "qlean-network.h"

G_BEGIN_DECLS

/* The QEMU device id of a machine's network card, for QMP set_link. */
#define QLEAN_NETWORK_NIC_ID "nic0"
/* The id of the card's backend (-netdev, qlean-qemu-argv.c), whose link
 * a restored copy keeps down until it has its own MAC. */
#define QLEAN_NETWORK_NETDEV_ID "net0"

/* A warmed spare for machines on a network (qlean-machine-spares.c)
 * has its card from the start, as they do, but on a hub of QEMU's own
 * (this one) and with this MAC, the same in every spare: a machine that
 * takes the spare gives the guest's card its own MAC, and then joins
 * its switch to the hub. */
#define QLEAN_NETWORK_SPARE_HUB 0
#define QLEAN_NETWORK_SPARE_MAC "06:71:00:00:00:01"

/* What one machine gets from the network: fixed from attach to detach. */
typedef struct
{
  guint  port;          /* the vde_switch port it plugs into */
  char  *mac_address;   /* locally administered, from network and port */
  char  *address;       /* dotted quad */
  guint  prefix;
  char  *gateway;       /* the NAT plug's address, or NULL without NAT */
  char  *socket_path;   /* the switch; a placeholder while not running */
} QleanNetworkLease;

void qlean_network_lease_free (QleanNetworkLease *lease);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (QleanNetworkLease, qlean_network_lease_free)

/* Reserves an address, MAC and port for @name. @owner (not referenced)
 * tells the machine that holds the name: attaching the same name with
 * the same owner again is a no-op, with another owner an error. Thread
 * safe. */
gboolean           qlean_network_attach     (QleanNetwork  *self,
                                             const char    *name,
                                             gpointer       owner,
                                             GError       **error);
/* Frees what @owner holds under @name; nothing if it holds nothing. */
void               qlean_network_detach     (QleanNetwork  *self,
                                             const char    *name,
                                             gpointer       owner);
QleanNetworkLease *qlean_network_lookup     (QleanNetwork  *self,
                                             const char    *name);
/* "ADDRESS NAME" for every attached machine, in attach order. */
GStrv              qlean_network_dup_hosts  (QleanNetwork  *self);

/* Whether @name can be a machine's name on a network: a host name label. */
gboolean           qlean_network_check_name (const char    *name,
                                             GError       **error);

G_END_DECLS
