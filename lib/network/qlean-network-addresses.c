/* qlean-network-addresses.c: who is on a network, at which address
 *
 * SPDX-License-Identifier: MIT
 *
 * The bookkeeping half of QleanNetwork, apart from the processes: the
 * subnet, the machines' names, and the address, MAC and switch port each
 * one gets. It needs no switch (a dry run and qlean_network_add_host()
 * use it before anything runs), and it is thread safe under the
 * network's lock, where the switch's half belongs to the worker thread.
 */

#include "config.h"

#include <arpa/inet.h>
#include <string.h>
#include <glib/gi18n-lib.h>

#include "qlean-host-private.h"
#include "qlean-network-state-private.h"

/* Subnets and addresses */

gboolean
qlean_network_parse_subnet (const char  *subnet,
                            gboolean     nat,
                            guint32     *base,
                            guint       *prefix,
                            GError     **error)
{
  g_auto(GStrv) parts = g_strsplit (subnet, "/", 2);
  struct in_addr addr;
  guint64 bits = 0;
  guint min_hosts = nat ? NAT_DHCP_CLIENTS + 2 : 1;
  guint max_prefix = 29;

  while (max_prefix > 8 && MIN ((1u << (32 - max_prefix)) - 2, MAX_HOSTS) - 1 < min_hosts)
    max_prefix--;

  if (g_strv_length (parts) != 2 || inet_pton (AF_INET, parts[0], &addr) != 1 ||
      !g_ascii_string_to_unsigned (parts[1], 10, 8, max_prefix, &bits, NULL))
    {
      g_set_error (error, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_INVALID_SUBNET,
                   _("The subnet “%s” is not an IPv4 CIDR like 10.87.0.0/24 with a prefix "
                     "from 8 to %u"), subnet, max_prefix);
      return FALSE;
    }

  *prefix = bits;
  *base = ntohl (addr.s_addr) & (0xffffffffu << (32 - bits));
  return TRUE;
}

char *
qlean_network_host_address (QleanNetwork *self,
                            guint         host)
{
  struct in_addr addr = { htonl (self->base + host) };
  char buffer[INET_ADDRSTRLEN];

  return g_strdup (inet_ntop (AF_INET, &addr, buffer, sizeof buffer));
}

static char *
host_mac_address (QleanNetwork *self,
                  guint         host)
{
  /* 02: locally administered and unicast; 0x71 ('q') marks Qlean. */
  return g_strdup_printf ("02:71:%02x:%02x:%02x:%02x",
                          self->tag >> 8, self->tag & 0xff, (host >> 8) & 0xff, host & 0xff);
}

gboolean
qlean_network_check_name (const char  *name,
                          GError     **error)
{
  gsize len = name ? strlen (name) : 0;
  gboolean ok = len > 0 && len <= 63 && name[0] != '-' && name[len - 1] != '-';

  for (gsize i = 0; ok && i < len; i++)
    ok = g_ascii_isalnum (name[i]) || name[i] == '-';

  if (!ok)
    g_set_error (error, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_INVALID_NAME,
                 _("“%s” cannot be a machine name on a network: use 1 to 63 letters, digits "
                   "and inner hyphens, as in a host name"), name ? name : "");
  return ok;
}

/* Members */

void
qlean_network_member_free (gpointer data)
{
  Member *member = data;

  g_free (member->name);
  g_free (member);
}

/**
 * qlean_network_add_host:
 * @self: a #QleanNetwork
 * @machine_name: the name of a machine, a host name label
 * @address: its IPv4 address in dotted form, a machine address of the
 *   subnet (host 2 and up)
 * @error: return location for a #GError
 *
 * Gives @machine_name the fixed @address on this network: a machine of
 * that name that joins the network takes it rather than the next free
 * one, and every machine that starts lists it in its `/etc/hosts`, also
 * when it runs in another process (see
 * [ctor@Network.new_for_socket]). Detaching the machine frees the
 * address.
 *
 * Returns: %TRUE on success; %FALSE with
 *   %QLEAN_NETWORK_ERROR_NAME_IN_USE when the name or the address is
 *   taken, %QLEAN_NETWORK_ERROR_INVALID_NAME for a bad name, or
 *   %QLEAN_NETWORK_ERROR_INVALID_SUBNET for an address outside the subnet
 *
 * Since: 0.1
 */
gboolean
qlean_network_add_host (QleanNetwork  *self,
                        const char    *machine_name,
                        const char    *address,
                        GError       **error)
{
  g_autoptr(GMutexLocker) locker = NULL;
  struct in_addr addr;
  GHashTableIter iter;
  Member *member;
  guint32 value;
  guint host;

  g_return_val_if_fail (QLEAN_IS_NETWORK (self), FALSE);
  g_return_val_if_fail (address != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (self->subnet_error != NULL)
    {
      g_propagate_error (error, g_error_copy (self->subnet_error));
      return FALSE;
    }
  if (!qlean_network_check_name (machine_name, error))
    return FALSE;

  if (inet_pton (AF_INET, address, &addr) != 1 ||
      ((value = ntohl (addr.s_addr)) & (0xffffffffu << (32 - self->prefix))) != self->base ||
      (host = value - self->base) < FIRST_MACHINE_HOST || host > self->max_machine_host)
    {
      g_set_error (error, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_INVALID_SUBNET,
                   _("“%s” is not a machine address of network “%s” (%s); machines get "
                     "host 2 and up"), address, self->name, self->subnet);
      return FALSE;
    }

  locker = g_mutex_locker_new (&self->lock);

  g_hash_table_iter_init (&iter, self->members);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &member))
    {
      if (member->host == host)
        {
          g_set_error (error, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_NAME_IN_USE,
                       _("Cannot give %s to “%s” on network “%s”: “%s” already has %s"),
                       address, machine_name, self->name, member->name, address);
          return FALSE;
        }
      if (g_str_equal (member->name, machine_name))
        {
          g_set_error (error, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_NAME_IN_USE,
                       _("Cannot give %s to “%s” on network “%s”: “%s” already has an address"),
                       address, machine_name, self->name, member->name);
          return FALSE;
        }
    }

  member = g_new0 (Member, 1);
  member->name = g_strdup (machine_name);
  member->host = host;
  g_hash_table_insert (self->members, member->name, member);

  return TRUE;
}

/* Members */

void
qlean_network_lease_free (QleanNetworkLease *lease)
{
  if (lease == NULL)
    return;

  g_free (lease->mac_address);
  g_free (lease->address);
  g_free (lease->gateway);
  g_free (lease->socket_path);
  g_free (lease);
}

gboolean
qlean_network_attach (QleanNetwork  *self,
                      const char    *name,
                      gpointer       owner,
                      GError       **error)
{
  g_autoptr(GMutexLocker) locker = NULL;
  gboolean used[MAX_HOSTS + 2] = { FALSE };
  GHashTableIter iter;
  Member *member;
  guint host;

  g_return_val_if_fail (QLEAN_IS_NETWORK (self), FALSE);

  if (self->subnet_error != NULL)
    {
      g_propagate_error (error, g_error_copy (self->subnet_error));
      return FALSE;
    }
  if (!qlean_network_check_name (name, error))
    return FALSE;

  locker = g_mutex_locker_new (&self->lock);

  member = g_hash_table_lookup (self->members, name);
  if (member != NULL)
    {
      /* An address given with qlean_network_add_host() waits for its
       * machine. */
      if (member->owner == NULL)
        member->owner = owner;
      if (member->owner == owner)
        return TRUE;
      g_set_error (error, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_NAME_IN_USE,
                   _("Another machine named “%s” is already on network “%s”; give each "
                     "machine its own name"), name, self->name);
      return FALSE;
    }

  g_hash_table_iter_init (&iter, self->members);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &member))
    used[member->host] = TRUE;
  for (host = FIRST_MACHINE_HOST; host <= self->max_machine_host && used[host]; host++)
    ;
  if (host > self->max_machine_host)
    {
      g_set_error (error, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_FULL,
                   _("Network “%s” has no address left for machine “%s”: all %u of %s are "
                     "taken; use a larger subnet"),
                   self->name, name, self->max_machine_host - FIRST_MACHINE_HOST + 1, self->subnet);
      return FALSE;
    }

  member = g_new0 (Member, 1);
  member->name = g_strdup (name);
  member->owner = owner;
  member->host = host;
  g_hash_table_insert (self->members, member->name, member);

  return TRUE;
}

void
qlean_network_detach (QleanNetwork *self,
                      const char   *name,
                      gpointer      owner)
{
  Member *member;

  g_return_if_fail (QLEAN_IS_NETWORK (self));

  g_mutex_lock (&self->lock);
  member = g_hash_table_lookup (self->members, name);
  if (member != NULL && member->owner == owner)
    g_hash_table_remove (self->members, name);
  g_mutex_unlock (&self->lock);
}

QleanNetworkLease *
qlean_network_lookup (QleanNetwork *self,
                      const char   *name)
{
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);
  QleanNetworkLease *lease;
  Member *member;

  member = g_hash_table_lookup (self->members, name);
  if (member == NULL)
    return NULL;

  lease = g_new0 (QleanNetworkLease, 1);
  lease->port = member->host;
  lease->mac_address = host_mac_address (self, member->host);
  lease->address = qlean_network_host_address (self, member->host);
  lease->prefix = self->prefix;
  lease->gateway = self->nat ? qlean_network_host_address (self, GATEWAY_HOST) : NULL;
  if (self->socket_path != NULL)
    lease->socket_path = g_strdup (self->socket_path);
  else
    {
      /* Only dry runs see this: a start needs a running switch. */
      g_autofree char *base = qlean_host_run_base (NULL);

      lease->socket_path = g_strdup_printf ("%s/net-%s-XXXXXX/switch",
                                            base ? base : g_get_tmp_dir (), self->name);
    }

  return lease;
}

static gint
compare_members (gconstpointer a,
                 gconstpointer b)
{
  const Member *ma = *(const Member * const *) a;
  const Member *mb = *(const Member * const *) b;

  return (gint) ma->host - (gint) mb->host;
}

GPtrArray *
qlean_network_members_by_port (QleanNetwork *self)
{
  GPtrArray *members = g_ptr_array_new ();
  GHashTableIter iter;
  gpointer member;

  g_hash_table_iter_init (&iter, self->members);
  while (g_hash_table_iter_next (&iter, NULL, &member))
    g_ptr_array_add (members, member);
  g_ptr_array_sort (members, compare_members);

  return members;
}

GStrv
qlean_network_dup_hosts (QleanNetwork *self)
{
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->lock);
  g_autoptr(GPtrArray) members = qlean_network_members_by_port (self);
  GStrvBuilder *builder = g_strv_builder_new ();
  GStrv hosts;

  for (guint i = 0; i < members->len; i++)
    {
      Member *member = g_ptr_array_index (members, i);
      g_autofree char *address = qlean_network_host_address (self, member->host);
      g_autofree char *line = g_strdup_printf ("%s %s", address, member->name);

      g_strv_builder_add (builder, line);
    }

  hosts = g_strv_builder_end (builder);
  g_strv_builder_unref (builder);
  return hosts;
}

/**
 * qlean_network_dup_address:
 * @self: a #QleanNetwork
 * @machine_name: the name of a machine on the network
 *
 * The IPv4 address the network gave a machine, whether or not it runs.
 *
 * Returns: (transfer full) (nullable): the address in dotted form, or
 *   %NULL when no machine of that name is on the network
 *
 * Since: 0.1
 */
char *
qlean_network_dup_address (QleanNetwork *self,
                           const char   *machine_name)
{
  g_autoptr(QleanNetworkLease) lease = NULL;

  g_return_val_if_fail (QLEAN_IS_NETWORK (self), NULL);
  g_return_val_if_fail (machine_name != NULL, NULL);

  lease = qlean_network_lookup (self, machine_name);
  return lease ? g_steal_pointer (&lease->address) : NULL;
}

/**
 * qlean_network_dup_mac_address:
 * @self: a #QleanNetwork
 * @machine_name: the name of a machine on the network
 *
 * The MAC address the network gave a machine: locally administered,
 * `02:71:` then two bytes that stand for the network and two for the
 * machine's port on the switch.
 *
 * Returns: (transfer full) (nullable): the MAC address, or %NULL when no
 *   machine of that name is on the network
 *
 * Since: 0.1
 */
char *
qlean_network_dup_mac_address (QleanNetwork *self,
                               const char   *machine_name)
{
  g_autoptr(QleanNetworkLease) lease = NULL;

  g_return_val_if_fail (QLEAN_IS_NETWORK (self), NULL);
  g_return_val_if_fail (machine_name != NULL, NULL);

  lease = qlean_network_lookup (self, machine_name);
  return lease ? g_steal_pointer (&lease->mac_address) : NULL;
}
