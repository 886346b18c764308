/* qlean-network-state-private.h: QleanNetwork's fields, for its own files
 *
 * SPDX-License-Identifier: MIT
 *
 * A network is one object spread over four files, one concern each:
 * qlean-network.c (the GObject, its constructors and getters),
 * qlean-network-addresses.c (subnet, names, addresses and MACs of the
 * machines), qlean-network-switch.c (the vde_switch and NAT plug
 * processes, their console and their lifetime) and
 * qlean-network-partition.c (VLAN splits). This header is what they
 * share; machines and pools use qlean-network-private.h instead.
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-network-state-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include "qlean-network-private.h"
#include "qlean-util-private.h"

G_BEGIN_DECLS

#define GATEWAY_HOST 1
#define FIRST_MACHINE_HOST 2
#define MAX_HOSTS 254
/* libslirp's DHCP server hands out this many addresses from its start
 * address; they are kept apart from the ones Qlean hands out. */
#define NAT_DHCP_CLIENTS 16
#define PARTITION_VLAN_A 1
#define PARTITION_VLAN_B 2

typedef enum
{
  NET_STOPPED,
  NET_STARTING,
  NET_RUNNING,
  NET_STOPPING,
} NetState;

typedef void (*ReplyFunc) (QleanNetwork *self,
                           const char   *data,
                           const GError *error,
                           gpointer      user_data);

typedef struct
{
  char      *line;
  ReplyFunc  func;
  gpointer   user_data;
} Command;

typedef struct
{
  char     *name;
  gpointer  owner;
  guint     host;
} Member;

struct _QleanNetwork
{
  GObject           parent_instance;

  char             *name;
  char             *subnet;
  gboolean          nat;
  QleanLink        *link;

  /* From the subnet, fixed after construction. */
  GError           *subnet_error;
  guint32           base;
  guint             prefix;
  guint             n_hosts;
  guint             max_machine_host;
  guint16           tag;
  /* The switch is another process's (qlean_network_new_for_socket()):
   * never started, stopped or reconfigured from here. */
  gboolean          shared;

  /* Read anywhere, under the lock. */
  GMutex            lock;
  GHashTable       *members;          /* name -> Member */
  char             *run_dir;
  char             *socket_path;
  GPid              switch_pid;
  GPid              plug_pid;
  gint              state;            /* NetState, atomic */

  /* Worker only. */
  GSubprocess      *vswitch;
  GSubprocess      *plug;
  GOutputStream    *console_in;
  GDataInputStream *console_out;
  GQueue            commands;
  Command          *in_flight;
  gboolean          writing;
  GString          *data;
  gboolean          in_data;
  GQueue            output_tail;
  GPtrArray        *start_waiters;
  GPtrArray        *stop_waiters;
  GError           *start_error;
  GSource          *start_timer;
  GSource          *poll_timer;
  GSource          *stop_timer;
};

/* qlean-network-addresses.c */
gboolean   qlean_network_parse_subnet     (const char    *subnet,
                                           gboolean       nat,
                                           guint32       *base,
                                           guint         *prefix,
                                           GError       **error);
char      *qlean_network_host_address     (QleanNetwork  *self,
                                           guint          host);
void       qlean_network_member_free      (gpointer       data);
/* Under the lock: the members, by port. */
GPtrArray *qlean_network_members_by_port  (QleanNetwork  *self);

/* qlean-network-switch.c; the console runs on the worker thread. */
void       qlean_network_command_free     (Command       *command);
void       qlean_network_console_send     (QleanNetwork  *self,
                                           ReplyFunc      func,
                                           gpointer       user_data,
                                           const char    *format,
                                           ...) G_GNUC_PRINTF (4, 5);
void       qlean_network_ignore_reply     (QleanNetwork  *self,
                                           const char    *data,
                                           const GError  *error,
                                           gpointer       user_data);

G_END_DECLS
