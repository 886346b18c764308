/* qlean-network.c: a rootless virtual switch that machines plug into
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <glib/gi18n-lib.h>

#include "qlean-host-private.h"
#include "qlean-json-channel-private.h"
#include "qlean-network-private.h"
#include "qlean-sync-private.h"
#include "qlean-util-private.h"
#include "qlean-worker-private.h"

/**
 * QleanNetwork:
 *
 * A virtual Ethernet switch that needs no root: a `vde_switch` process
 * listening on a unix socket in a private (mode 0700) run directory.
 * Machines given the network (see [property@Machine:network]) plug into
 * it with QEMU's `-netdev vde`; each gets its own port, a locally
 * administered MAC address derived from the network and the port, and a
 * fixed IPv4 address from the network's subnet, which Qlean sets in the
 * guest through the agent once it answers. A [class@Pool] makes one
 * private network for its machines.
 *
 * By default the switch has no uplink: frames go from machine to machine
 * and nowhere else, so what a test sends can reach neither the host nor
 * the LAN, and test traffic never leaks out (nor does anything get in).
 * Addresses are handed out by Qlean, not by DHCP, which also saves the
 * guests a DHCP exchange on every boot. With [property@Network:nat], a
 * `vde_plug` to libslirp joins the switch as the gateway (host 1 of the
 * subnet) and gives the machines NAT to the outside world, for guests
 * that must download something. Slirp then runs with
 * `disable_host_loopback`, so the host's loopback services stay out of
 * reach, but the machines can reach whatever the host itself can,
 * including the LAN: only turn it on when a test needs it. No ports are
 * ever forwarded from the host into the network.
 *
 * [method@Network.partition] splits the switch into VLANs for split-brain
 * tests, and [method@Network.heal] joins them again.
 *
 * The switch dies with the process that started it (`PR_SET_PDEATHSIG`,
 * and it exits when its console pipe closes), and dropping the last
 * reference to a network kills it and removes its run directory.
 */

#define START_TIMEOUT_MS 10000
#define STOP_GRACE_MS 2000
#define PLUG_POLL_MS 20
#define OUTPUT_LINES 20
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

G_DEFINE_FINAL_TYPE (QleanNetwork, qlean_network, G_TYPE_OBJECT)

G_DEFINE_QUARK (qlean-network-error-quark, qlean_network_error)

enum {
  PROP_0,
  PROP_NAME,
  PROP_SUBNET,
  PROP_NAT,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void qlean_network_teardown     (QleanNetwork *self);
static void qlean_network_start_fail   (QleanNetwork *self,
                                        GError       *error);
static void qlean_network_console_pump (QleanNetwork *self);

/* Links */

/* A worker timer that, like every other worker callback, reaches the
 * network only through its link. */
static GSource *
network_add_timeout (QleanNetwork *self,
                     guint         timeout_ms,
                     GSourceFunc   func)
{
  GSource *source = g_timeout_source_new (timeout_ms);

  g_source_set_callback (source, func, qlean_link_ref (self->link), qlean_link_unref);
  g_source_set_static_name (source, "[qlean] network timer");
  g_source_attach (source, qlean_worker_get_context ());

  return source;
}

/* Subnets and addresses */

static gboolean
parse_subnet (const char  *subnet,
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

static char *
host_address (QleanNetwork *self,
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

/* GObject */

static void
member_free (gpointer data)
{
  Member *member = data;

  g_free (member->name);
  g_free (member);
}

static void
command_free (Command *command)
{
  g_free (command->line);
  g_free (command);
}

static void
qlean_network_get_property (GObject    *object,
                            guint       prop_id,
                            GValue     *value,
                            GParamSpec *pspec)
{
  QleanNetwork *self = QLEAN_NETWORK (object);

  switch (prop_id)
    {
    case PROP_NAME: g_value_set_string (value, self->name); break;
    case PROP_SUBNET: g_value_set_string (value, self->subnet); break;
    case PROP_NAT: g_value_set_boolean (value, self->nat); break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
qlean_network_set_property (GObject      *object,
                            guint         prop_id,
                            const GValue *value,
                            GParamSpec   *pspec)
{
  QleanNetwork *self = QLEAN_NETWORK (object);

  switch (prop_id)
    {
    case PROP_NAME: self->name = g_value_dup_string (value); break;
    case PROP_SUBNET: self->subnet = g_value_dup_string (value); break;
    case PROP_NAT: self->nat = g_value_get_boolean (value); break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
qlean_network_constructed (GObject *object)
{
  QleanNetwork *self = QLEAN_NETWORK (object);
  static gint next_subnet = 0;

  G_OBJECT_CLASS (qlean_network_parent_class)->constructed (object);

  if (self->name == NULL)
    self->name = g_strdup_printf ("qlean-net-%06x", g_random_int () & 0xffffff);
  /* Networks never see each other, so equal subnets would work; distinct
   * ones make a capture or a log line tell which network it came from. */
  if (self->subnet == NULL)
    self->subnet = g_strdup_printf ("10.87.%d.0/24", g_atomic_int_add (&next_subnet, 1) & 0xff);

  if (parse_subnet (self->subnet, self->nat, &self->base, &self->prefix, &self->subnet_error))
    {
      self->n_hosts = MIN ((1u << (32 - self->prefix)) - 2, MAX_HOSTS);
      self->max_machine_host = self->nat ? self->n_hosts - NAT_DHCP_CLIENTS : self->n_hosts;
    }
  self->tag = g_str_hash (self->name) & 0xffff;
  self->link = qlean_link_new (self);
}


static void
qlean_network_dispose (GObject *object)
{
  QleanNetwork *self = QLEAN_NETWORK (object);
  g_autofree char *run_dir = NULL;
  GPid switch_pid, plug_pid;

  /* No worker callback can reach us any more (the link's weak ref is
   * cleared), so the fields are ours. */
  g_mutex_lock (&self->lock);
  switch_pid = self->switch_pid;
  plug_pid = self->plug_pid;
  self->switch_pid = self->plug_pid = 0;
  run_dir = g_steal_pointer (&self->run_dir);
  g_clear_pointer (&self->socket_path, g_free);
  g_mutex_unlock (&self->lock);

  if (plug_pid > 0)
    kill (plug_pid, SIGKILL);
  if (switch_pid > 0)
    kill (switch_pid, SIGKILL);
  if (plug_pid > 0)
    qlean_host_wait_for_death (plug_pid);
  if (switch_pid > 0)
    qlean_host_wait_for_death (switch_pid);
  if (run_dir != NULL)
    qlean_rm_rf (run_dir, NULL);

  qlean_clear_source (&self->start_timer);
  qlean_clear_source (&self->poll_timer);
  qlean_clear_source (&self->stop_timer);
  g_clear_object (&self->console_in);
  g_clear_object (&self->console_out);
  g_clear_object (&self->vswitch);
  g_clear_object (&self->plug);

  G_OBJECT_CLASS (qlean_network_parent_class)->dispose (object);
}

static void
qlean_network_finalize (GObject *object)
{
  QleanNetwork *self = QLEAN_NETWORK (object);

  g_assert (self->in_flight == NULL);
  g_queue_clear_full (&self->commands, (GDestroyNotify) command_free);
  g_queue_clear_full (&self->output_tail, g_free);
  g_clear_pointer (&self->start_waiters, g_ptr_array_unref);
  g_clear_pointer (&self->stop_waiters, g_ptr_array_unref);
  g_clear_pointer (&self->members, g_hash_table_unref);
  g_string_free (self->data, TRUE);
  g_clear_error (&self->start_error);
  g_clear_error (&self->subnet_error);
  g_clear_pointer (&self->link, qlean_link_unref);
  g_free (self->name);
  g_free (self->subnet);
  g_mutex_clear (&self->lock);

  G_OBJECT_CLASS (qlean_network_parent_class)->finalize (object);
}

static void
qlean_network_class_init (QleanNetworkClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->constructed = qlean_network_constructed;
  object_class->dispose = qlean_network_dispose;
  object_class->finalize = qlean_network_finalize;
  object_class->get_property = qlean_network_get_property;
  object_class->set_property = qlean_network_set_property;

  /**
   * QleanNetwork:name:
   *
   * The network's name, used for its run directory and its MAC
   * addresses. A random `qlean-net-XXXXXX` when not given.
   */
  properties[PROP_NAME] =
    g_param_spec_string ("name", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * QleanNetwork:subnet:
   *
   * The IPv4 subnet machines get their addresses from, as a CIDR
   * (`10.87.3.0/24`). Host 1 is the gateway (with NAT); machines get
   * hosts 2, 3 and so on, at most 254 of them. A fresh `10.87.N.0/24`
   * for each network when not given. An invalid subnet makes
   * [method@Network.start] fail with
   * %QLEAN_NETWORK_ERROR_INVALID_SUBNET; [ctor@Network.new_full] checks it
   * at once.
   */
  properties[PROP_SUBNET] =
    g_param_spec_string ("subnet", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * QleanNetwork:nat:
   *
   * Whether a slirp plug gives the machines a default route and DNS to
   * the outside world, through NAT in this process's name. Off by
   * default, so that nothing a test sends leaves the switch. With NAT,
   * the host's loopback stays out of reach but its other addresses and
   * the LAN do not, and the last 16 hosts of the subnet are left to
   * slirp's DHCP server.
   */
  properties[PROP_NAT] =
    g_param_spec_boolean ("nat", NULL, NULL, FALSE,
                          G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
qlean_network_init (QleanNetwork *self)
{
  g_mutex_init (&self->lock);
  self->members = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, member_free);
  self->data = g_string_new (NULL);
  self->start_waiters = g_ptr_array_new_with_free_func (g_object_unref);
  self->stop_waiters = g_ptr_array_new_with_free_func (g_object_unref);
  self->state = NET_STOPPED;
}

/**
 * qlean_network_new:
 *
 * Creates a network with a random name, a fresh subnet and no NAT.
 * Nothing runs until [method@Network.start].
 *
 * Returns: (transfer full): a new #QleanNetwork
 */
QleanNetwork *
qlean_network_new (void)
{
  return g_object_new (QLEAN_TYPE_NETWORK, NULL);
}

/**
 * qlean_network_new_full:
 * @name: (nullable): the network's name; %NULL for a random one
 * @subnet: (nullable): an IPv4 CIDR such as `10.87.3.0/24`; %NULL for a
 *   fresh one
 * @nat: whether machines get NAT to the outside world (see
 *   [property@Network:nat])
 * @error: return location for a #GError
 *
 * Creates a network, checking @subnet. Nothing runs until
 * [method@Network.start].
 *
 * Returns: (transfer full): a new #QleanNetwork, or %NULL with @error set
 */
QleanNetwork *
qlean_network_new_full (const char  *name,
                        const char  *subnet,
                        gboolean     nat,
                        GError     **error)
{
  g_autoptr(QleanNetwork) self = g_object_new (QLEAN_TYPE_NETWORK,
                                               "name", name,
                                               "subnet", subnet,
                                               "nat", nat,
                                               NULL);

  if (self->subnet_error != NULL)
    {
      g_propagate_error (error, g_error_copy (self->subnet_error));
      return NULL;
    }

  return g_steal_pointer (&self);
}

/**
 * qlean_network_new_for_socket:
 * @name: the name of the network that runs the switch
 * @subnet: the subnet of that network, as a CIDR such as `10.87.3.0/24`
 * @socket_path: the switch's control directory, as
 *   [method@Network.dup_socket_path] gives it in the process that runs it
 * @error: return location for a #GError
 *
 * Creates a network for a switch that another process runs, so that
 * machines of several processes can share one network (the `qlean`
 * command does this for `qlean start --network`). The network runs from
 * the start; [method@Network.start] does nothing,
 * [method@Network.stop] only forgets the switch, and partitions need the
 * process that runs it.
 *
 * Each process knows only its own machines, so the processes must agree
 * on the addresses: give every machine, of this process or another,
 * its address with [method@Network.add_host] before it starts. The MAC
 * addresses and switch ports follow from @name and the addresses, and
 * agree between the processes.
 *
 * Returns: (transfer full): a new #QleanNetwork, or %NULL with @error set
 *   when @subnet is invalid or @socket_path does not exist
 */
QleanNetwork *
qlean_network_new_for_socket (const char  *name,
                              const char  *subnet,
                              const char  *socket_path,
                              GError     **error)
{
  g_autoptr(QleanNetwork) self = NULL;

  g_return_val_if_fail (name != NULL, NULL);
  g_return_val_if_fail (subnet != NULL, NULL);
  g_return_val_if_fail (socket_path != NULL, NULL);

  self = qlean_network_new_full (name, subnet, FALSE, error);
  if (self == NULL)
    return NULL;

  if (!g_file_test (socket_path, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_NOT_RUNNING,
                   _("The switch of network “%s” is not at %s; is the process that runs "
                     "it gone?"), name, socket_path);
      return NULL;
    }

  self->shared = TRUE;
  self->socket_path = g_strdup (socket_path);
  g_atomic_int_set (&self->state, NET_RUNNING);

  return g_steal_pointer (&self);
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
    if (member->host == host || g_str_equal (member->name, machine_name))
      {
        g_set_error (error, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_NAME_IN_USE,
                     _("Cannot give %s to “%s” on network “%s”: “%s” already has %s"),
                     address, machine_name, self->name, member->name,
                     member->host == host ? address : _("an address"));
        return FALSE;
      }

  member = g_new0 (Member, 1);
  member->name = g_strdup (machine_name);
  member->host = host;
  g_hash_table_insert (self->members, member->name, member);

  return TRUE;
}

/**
 * qlean_network_get_name:
 * @self: a #QleanNetwork
 *
 * Returns: the network's name
 */
const char *
qlean_network_get_name (QleanNetwork *self)
{
  g_return_val_if_fail (QLEAN_IS_NETWORK (self), NULL);

  return self->name;
}

/**
 * qlean_network_get_subnet:
 * @self: a #QleanNetwork
 *
 * Returns: the subnet machines get their addresses from, as a CIDR
 */
const char *
qlean_network_get_subnet (QleanNetwork *self)
{
  g_return_val_if_fail (QLEAN_IS_NETWORK (self), NULL);

  return self->subnet;
}

/**
 * qlean_network_get_nat:
 * @self: a #QleanNetwork
 *
 * Returns: whether machines get NAT to the outside world
 */
gboolean
qlean_network_get_nat (QleanNetwork *self)
{
  g_return_val_if_fail (QLEAN_IS_NETWORK (self), FALSE);

  return self->nat;
}

/**
 * qlean_network_is_running:
 * @self: a #QleanNetwork
 *
 * Returns: whether the switch runs and machines can plug in
 */
gboolean
qlean_network_is_running (QleanNetwork *self)
{
  g_return_val_if_fail (QLEAN_IS_NETWORK (self), FALSE);

  return g_atomic_int_get (&self->state) == NET_RUNNING;
}

/**
 * qlean_network_dup_socket_path:
 * @self: a #QleanNetwork
 *
 * The switch's control directory, what QEMU's `-netdev vde,sock=` and
 * `vde_plug vde://` take.
 *
 * Returns: (transfer full) (nullable): the path, or %NULL when the switch
 *   does not run
 */
char *
qlean_network_dup_socket_path (QleanNetwork *self)
{
  char *path;

  g_return_val_if_fail (QLEAN_IS_NETWORK (self), NULL);

  g_mutex_lock (&self->lock);
  path = g_strdup (self->socket_path);
  g_mutex_unlock (&self->lock);

  return path;
}

/**
 * qlean_network_get_switch_pid:
 * @self: a #QleanNetwork
 *
 * Returns: the process id of `vde_switch`, or 0 when it does not run
 */
GPid
qlean_network_get_switch_pid (QleanNetwork *self)
{
  GPid pid;

  g_return_val_if_fail (QLEAN_IS_NETWORK (self), 0);

  g_mutex_lock (&self->lock);
  pid = self->switch_pid;
  g_mutex_unlock (&self->lock);

  return pid;
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
  lease->address = host_address (self, member->host);
  lease->prefix = self->prefix;
  lease->gateway = self->nat ? host_address (self, GATEWAY_HOST) : NULL;
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

/* Under the lock: the members, by port. */
static GPtrArray *
members_by_port (QleanNetwork *self)
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
  g_autoptr(GPtrArray) members = members_by_port (self);
  GStrvBuilder *builder = g_strv_builder_new ();
  GStrv hosts;

  for (guint i = 0; i < members->len; i++)
    {
      Member *member = g_ptr_array_index (members, i);
      g_autofree char *address = host_address (self, member->host);
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

/* The switch's console. vde_switch reads management commands on its
 * standard input and answers each with "NNNN message" (1000 is success),
 * preceded by "0000 DATA END WITH '.'" and data lines when it has some.
 * Using the console rather than a management socket means that the
 * switch also exits when our end of the pipe closes. Commands go one at
 * a time. Everything below runs on the worker thread. */

static void
remember_output (QleanNetwork *self,
                 const char   *line)
{
  g_debug ("network %s: vde_switch: %s", self->name, line);
  g_queue_push_tail (&self->output_tail, g_strdup (line));
  while (self->output_tail.length > OUTPUT_LINES)
    g_free (g_queue_pop_head (&self->output_tail));
}

static char *
output_tail (QleanNetwork *self)
{
  GString *text = g_string_new (NULL);

  for (GList *l = self->output_tail.head; l != NULL; l = l->next)
    g_string_append_printf (text, "%s%s", text->len ? "\n" : "", (char *) l->data);

  return g_string_free (text, FALSE);
}

static void
qlean_network_console_reply (QleanNetwork *self,
                             const char   *data,
                             GError       *error)
{
  Command *command = g_steal_pointer (&self->in_flight);

  if (command == NULL)
    {
      g_clear_error (&error);
      return;
    }

  command->func (self, data, error, command->user_data);
  g_clear_error (&error);
  command_free (command);
}

static void
qlean_network_console_line (QleanNetwork *self,
                            const char   *line)
{
  if (self->in_data)
    {
      if (g_str_equal (line, "."))
        self->in_data = FALSE;
      else
        g_string_append_printf (self->data, "%s\n", line);
      return;
    }

  if (strlen (line) >= 4 && g_ascii_isdigit (line[0]) && g_ascii_isdigit (line[1]) &&
      g_ascii_isdigit (line[2]) && g_ascii_isdigit (line[3]) &&
      (line[4] == ' ' || line[4] == '\0'))
    {
      if (strncmp (line, "0000", 4) == 0)
        {
          self->in_data = TRUE;
          g_string_truncate (self->data, 0);
        }
      else if (strncmp (line, "1000", 4) == 0)
        {
          qlean_network_console_reply (self, self->data->str, NULL);
          g_string_truncate (self->data, 0);
          qlean_network_console_pump (self);
        }
      else
        {
          qlean_network_console_reply (self, NULL,
              g_error_new (QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_FAILED,
                           _("vde_switch answered “%s”"), line));
          g_string_truncate (self->data, 0);
          qlean_network_console_pump (self);
        }
      return;
    }

  if (*line != '\0')
    remember_output (self, line);
}

static void
qlean_network_console_fail_all (QleanNetwork *self,
                                const GError *error)
{
  Command *command;

  qlean_network_console_reply (self, NULL, g_error_copy (error));
  while ((command = g_queue_pop_head (&self->commands)) != NULL)
    {
      command->func (self, NULL, error, command->user_data);
      command_free (command);
    }
}

static void
qlean_network_console_read_cb (GObject      *source,
                               GAsyncResult *result,
                               gpointer      user_data)
{
  QleanLink *link = user_data;
  g_autoptr(QleanNetwork) self = qlean_link_get (link);
  g_autofree char *line = NULL;

  line = g_data_input_stream_read_line_finish_utf8 (G_DATA_INPUT_STREAM (source), result, NULL, NULL);

  if (self == NULL || line == NULL || G_INPUT_STREAM (source) != G_INPUT_STREAM (self->console_out))
    {
      qlean_link_unref (link);
      return;
    }

  qlean_network_console_line (self, line);
  g_data_input_stream_read_line_async (G_DATA_INPUT_STREAM (source), G_PRIORITY_DEFAULT, NULL,
                                       qlean_network_console_read_cb, link);
}

static void
qlean_network_console_write_cb (GObject      *source,
                                GAsyncResult *result,
                                gpointer      user_data)
{
  QleanLink *link = user_data;
  g_autoptr(QleanNetwork) self = qlean_link_get (link);
  g_autoptr(GError) error = NULL;

  qlean_link_unref (link);
  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, &error))
    {
      /* The switch is going away; its exit watch says why. */
      if (self != NULL)
        g_debug ("network %s: writing to vde_switch failed: %s", self->name, error->message);
    }

  if (self == NULL || G_OUTPUT_STREAM (source) != self->console_in)
    return;

  self->writing = FALSE;
  qlean_network_console_pump (self);
}

static void
qlean_network_console_pump (QleanNetwork *self)
{
  Command *command;

  /* One command at a time, and one write: the answer to a command can
   * arrive before its write has completed. */
  if (self->in_flight != NULL || self->writing || self->console_in == NULL)
    return;

  command = g_queue_pop_head (&self->commands);
  if (command == NULL)
    return;

  self->in_flight = command;
  self->writing = TRUE;
  g_debug ("network %s: console: %s", self->name, command->line);
  g_output_stream_write_all_async (self->console_in, command->line, strlen (command->line),
                                   G_PRIORITY_DEFAULT, NULL, qlean_network_console_write_cb,
                                   qlean_link_ref (self->link));
}

static void
qlean_network_console_send (QleanNetwork *self,
                            ReplyFunc     func,
                            gpointer      user_data,
                            const char   *format,
                            ...) G_GNUC_PRINTF (4, 5);

static void
qlean_network_console_send (QleanNetwork *self,
                            ReplyFunc     func,
                            gpointer      user_data,
                            const char   *format,
                            ...)
{
  Command *command = g_new0 (Command, 1);
  va_list args;

  va_start (args, format);
  command->line = g_strdup_vprintf (format, args);
  va_end (args);
  command->line = g_realloc (command->line, strlen (command->line) + 2);
  strcat (command->line, "\n");
  command->func = func;
  command->user_data = user_data;

  if (self->console_in == NULL)
    {
      g_autoptr(GError) error = g_error_new (QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_NOT_RUNNING,
                                             _("The switch of network “%s” does not run"),
                                             self->name);

      func (self, NULL, error, user_data);
      command_free (command);
      return;
    }

  g_queue_push_tail (&self->commands, command);
  qlean_network_console_pump (self);
}

static void
ignore_reply (QleanNetwork *self,
              const char   *data,
              const GError *error,
              gpointer      user_data)
{
}

/* Starting and stopping */

/* The switch and its plug die with the process, as QEMU does. */
static GSubprocessLauncher *
child_launcher (GSubprocessFlags flags)
{
  return qlean_host_child_launcher (flags);
}

static char *
describe_wait_status (GSubprocess *process)
{
  if (g_subprocess_get_if_signaled (process))
    return g_strdup_printf (_("was killed by signal %d"), g_subprocess_get_term_sig (process));

  return g_strdup_printf (_("exited with status %d"), g_subprocess_get_exit_status (process));
}

static void
complete_waiters (GPtrArray    **waiters,
                  const GError  *error)
{
  g_autoptr(GPtrArray) tasks = g_steal_pointer (waiters);

  *waiters = g_ptr_array_new_with_free_func (g_object_unref);
  for (guint i = 0; i < tasks->len; i++)
    {
      GTask *task = g_ptr_array_index (tasks, i);

      if (error != NULL)
        g_task_return_error (task, g_error_copy (error));
      else
        g_task_return_boolean (task, TRUE);
    }
}

static void
qlean_network_set_state (QleanNetwork *self,
                         NetState      state)
{
  g_atomic_int_set (&self->state, state);
}

static void
qlean_network_maybe_stopped (QleanNetwork *self)
{
  g_autofree char *run_dir = NULL;
  g_autoptr(GError) start_error = NULL;

  if (g_atomic_int_get (&self->state) != NET_STOPPING || self->vswitch != NULL || self->plug != NULL)
    return;

  qlean_clear_source (&self->stop_timer);
  g_clear_object (&self->console_in);
  g_clear_object (&self->console_out);
  self->in_data = FALSE;

  g_mutex_lock (&self->lock);
  run_dir = g_steal_pointer (&self->run_dir);
  g_clear_pointer (&self->socket_path, g_free);
  g_mutex_unlock (&self->lock);

  if (run_dir != NULL)
    {
      g_autoptr(GError) error = NULL;

      if (!qlean_rm_rf (run_dir, &error))
        g_warning ("Could not remove the run directory %s of network “%s”: %s",
                   run_dir, self->name, error->message);
    }

  qlean_network_set_state (self, NET_STOPPED);
  g_debug ("network %s: stopped", self->name);

  start_error = g_steal_pointer (&self->start_error);
  if (start_error == NULL)
    start_error = g_error_new (QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_NOT_RUNNING,
                               _("Network “%s” was stopped while it was starting"), self->name);
  complete_waiters (&self->start_waiters, start_error);
  complete_waiters (&self->stop_waiters, NULL);
}

static gboolean
qlean_network_stop_timeout_cb (gpointer user_data)
{
  g_autoptr(QleanNetwork) self = qlean_link_get (user_data);

  if (self == NULL)
    return G_SOURCE_REMOVE;

  g_clear_pointer (&self->stop_timer, g_source_unref);
  if (self->vswitch != NULL)
    g_subprocess_force_exit (self->vswitch);
  if (self->plug != NULL)
    g_subprocess_force_exit (self->plug);

  return G_SOURCE_REMOVE;
}

/* Asks both children to go: the switch by closing its console (it then
 * removes its socket directory), the plug by SIGTERM; SIGKILL follows if
 * they take too long. Completes in qlean_network_maybe_stopped(). */
static void
qlean_network_teardown (QleanNetwork *self)
{
  g_autoptr(GError) error = NULL;

  qlean_network_set_state (self, NET_STOPPING);
  qlean_clear_source (&self->start_timer);
  qlean_clear_source (&self->poll_timer);

  error = g_error_new (QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_NOT_RUNNING,
                       _("Network “%s” is stopping"), self->name);
  qlean_network_console_fail_all (self, error);

  if (self->console_in != NULL)
    g_output_stream_close (self->console_in, NULL, NULL);
  g_clear_object (&self->console_in);
  if (self->plug != NULL)
    g_subprocess_send_signal (self->plug, SIGTERM);

  if (self->vswitch != NULL || self->plug != NULL)
    {
      if (self->stop_timer == NULL)
        self->stop_timer = network_add_timeout (self, STOP_GRACE_MS, qlean_network_stop_timeout_cb);
    }
  else
    qlean_network_maybe_stopped (self);
}

static void
qlean_network_start_fail (QleanNetwork *self,
                          GError       *error)
{
  if (g_atomic_int_get (&self->state) != NET_STARTING)
    {
      g_error_free (error);
      return;
    }

  g_clear_error (&self->start_error);
  self->start_error = error;
  qlean_network_teardown (self);
}

static void
qlean_network_start_done (QleanNetwork *self)
{
  qlean_clear_source (&self->start_timer);
  qlean_clear_source (&self->poll_timer);
  qlean_network_set_state (self, NET_RUNNING);
  g_debug ("network %s: running on %s", self->name, self->socket_path);
  complete_waiters (&self->start_waiters, NULL);
}

static void
qlean_network_switch_exited_cb (GObject      *source,
                                GAsyncResult *result,
                                gpointer      user_data)
{
  QleanLink *link = user_data;
  g_autoptr(QleanNetwork) self = qlean_link_get (link);
  GSubprocess *process = G_SUBPROCESS (source);
  g_autofree char *status = NULL;
  g_autofree char *output = NULL;
  g_autoptr(GError) error = NULL;

  g_subprocess_wait_finish (process, result, NULL);
  qlean_link_unref (link);

  if (self == NULL || self->vswitch != process)
    return;

  status = describe_wait_status (process);
  output = output_tail (self);
  g_debug ("network %s: vde_switch %s", self->name, status);

  g_mutex_lock (&self->lock);
  self->switch_pid = 0;
  g_mutex_unlock (&self->lock);
  g_clear_object (&self->vswitch);
  g_clear_object (&self->console_in);

  error = g_error_new (QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_SWITCH_FAILED,
                       _("The switch of network “%s” (vde_switch) %s%s%s"),
                       self->name, status, *output ? ":\n" : "", output);
  qlean_network_console_fail_all (self, error);

  switch (g_atomic_int_get (&self->state))
    {
    case NET_STARTING:
      qlean_network_start_fail (self, g_steal_pointer (&error));
      break;
    case NET_RUNNING:
      g_message ("%s", error->message);
      qlean_network_teardown (self);
      break;
    case NET_STOPPING:
    default:
      qlean_network_maybe_stopped (self);
      break;
    }
}

static char *
plug_log_tail (QleanNetwork *self)
{
  g_autofree char *path = NULL;
  char *tail;

  if (self->run_dir == NULL)
    return g_strdup ("");

  path = g_build_filename (self->run_dir, "nat.log", NULL);
  tail = qlean_file_tail (path, OUTPUT_LINES);
  return tail ? tail : g_strdup ("");
}

static void
qlean_network_plug_exited_cb (GObject      *source,
                              GAsyncResult *result,
                              gpointer      user_data)
{
  QleanLink *link = user_data;
  g_autoptr(QleanNetwork) self = qlean_link_get (link);
  GSubprocess *process = G_SUBPROCESS (source);
  g_autofree char *status = NULL;
  g_autofree char *output = NULL;

  g_subprocess_wait_finish (process, result, NULL);
  qlean_link_unref (link);

  if (self == NULL || self->plug != process)
    return;

  status = describe_wait_status (process);
  output = plug_log_tail (self);
  g_mutex_lock (&self->lock);
  self->plug_pid = 0;
  g_mutex_unlock (&self->lock);
  g_clear_object (&self->plug);

  switch (g_atomic_int_get (&self->state))
    {
    case NET_STARTING:
      qlean_network_start_fail (self,
          g_error_new (QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_SWITCH_FAILED,
                       _("The NAT plug of network “%s” (vde_plug with libvdeplug-slirp) %s%s%s"),
                       self->name, status, *output ? ":\n" : "", output));
      break;
    case NET_RUNNING:
      /* The machines still reach each other; only the way out is gone. */
      g_message ("The NAT plug of network “%s” %s%s%s", self->name, status,
                 *output ? ": " : "", output);
      break;
    case NET_STOPPING:
    default:
      qlean_network_maybe_stopped (self);
      break;
    }
}

static gboolean
qlean_network_start_timeout_cb (gpointer user_data)
{
  g_autoptr(QleanNetwork) self = qlean_link_get (user_data);
  g_autofree char *output = NULL;

  if (self == NULL)
    return G_SOURCE_REMOVE;

  g_clear_pointer (&self->start_timer, g_source_unref);
  output = self->nat ? plug_log_tail (self) : output_tail (self);
  qlean_network_start_fail (self,
      g_error_new (QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_SWITCH_FAILED,
                   _("The switch of network “%s” was not ready within %u ms%s%s"),
                   self->name, START_TIMEOUT_MS, *output ? ":\n" : "", output));

  return G_SOURCE_REMOVE;
}

static void qlean_network_poll_plug (QleanNetwork *self);

static gboolean
qlean_network_poll_timeout_cb (gpointer user_data)
{
  g_autoptr(QleanNetwork) self = qlean_link_get (user_data);

  if (self == NULL)
    return G_SOURCE_REMOVE;

  g_clear_pointer (&self->poll_timer, g_source_unref);
  qlean_network_poll_plug (self);

  return G_SOURCE_REMOVE;
}

static void
qlean_network_plug_port_cb (QleanNetwork *self,
                            const char   *data,
                            const GError *error,
                            gpointer      user_data)
{
  if (g_atomic_int_get (&self->state) != NET_STARTING)
    return;

  /* `port/print N` fails until something is plugged into port N. */
  if (error == NULL && data != NULL && strstr (data, " ACTIVE") != NULL)
    qlean_network_start_done (self);
  else if (self->poll_timer == NULL)
    self->poll_timer = network_add_timeout (self, PLUG_POLL_MS, qlean_network_poll_timeout_cb);
}

static void
qlean_network_poll_plug (QleanNetwork *self)
{
  qlean_network_console_send (self, qlean_network_plug_port_cb, NULL,
                              "port/print %u", GATEWAY_HOST);
}

static gboolean
qlean_network_spawn_plug (QleanNetwork  *self,
                          GError       **error)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autofree char *vde_plug = g_find_program_in_path ("vde_plug");
  g_autofree char *log_path = NULL;
  g_autofree char *switch_url = NULL;
  g_autofree char *slirp_url = NULL;
  g_autofree char *gateway = host_address (self, GATEWAY_HOST);
  g_autofree char *dhcp_start = host_address (self, self->n_hosts - NAT_DHCP_CLIENTS + 1);
  const char *argv[4];

  if (vde_plug == NULL)
    {
      g_autofree char *hint = qlean_host_install_hint ("vdeplug");

      g_set_error (error, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_SWITCH_NOT_FOUND,
                   _("vde_plug is not installed, and network “%s” needs it for NAT; install it "
                     "and its slirp module: %s libvdeplug-slirp"), self->name, hint);
      return FALSE;
    }

  log_path = g_build_filename (self->run_dir, "nat.log", NULL);
  switch_url = g_strdup_printf ("vde://%s[%u]", self->socket_path, GATEWAY_HOST);
  /* Options are separated by '/', so the prefix's slash is escaped.
   * disable_host_loopback keeps the host's 127.0.0.1 out of reach; no
   * tcpfwd/udpfwd: nothing of the host is forwarded in. The DNS proxy
   * sits on the gateway, so that it takes no machine's address. */
  slirp_url = g_strdup_printf ("slirp:///v4/addr=%s\\/%u/dhcp=%s/vnameserver=%s/disable_host_loopback",
                               gateway, self->prefix, dhcp_start, gateway);

  argv[0] = vde_plug;
  argv[1] = switch_url;
  argv[2] = slirp_url;
  argv[3] = NULL;

  launcher = child_launcher (G_SUBPROCESS_FLAGS_STDERR_MERGE);
  g_subprocess_launcher_set_stdout_file_path (launcher, log_path);
  self->plug = g_subprocess_launcher_spawnv (launcher, argv, error);
  if (self->plug == NULL)
    {
      g_prefix_error (error, _("Could not start the NAT plug of network “%s”: "), self->name);
      return FALSE;
    }

  g_mutex_lock (&self->lock);
  self->plug_pid = qlean_subprocess_get_pid (self->plug);
  g_mutex_unlock (&self->lock);
  g_subprocess_wait_async (self->plug, NULL, qlean_network_plug_exited_cb,
                           qlean_link_ref (self->link));

  return TRUE;
}

static void
qlean_network_hello_cb (QleanNetwork *self,
                        const char   *data,
                        const GError *error,
                        gpointer      user_data)
{
  GError *local_error = NULL;

  if (g_atomic_int_get (&self->state) != NET_STARTING)
    return;

  if (error != NULL)
    {
      qlean_network_start_fail (self, g_error_copy (error));
      return;
    }

  /* The VLANs partitions use; ports come into being as machines plug in. */
  qlean_network_console_send (self, ignore_reply, NULL, "vlan/create %d", PARTITION_VLAN_A);
  qlean_network_console_send (self, ignore_reply, NULL, "vlan/create %d", PARTITION_VLAN_B);

  if (!self->nat)
    {
      qlean_network_start_done (self);
      return;
    }

  if (!qlean_network_spawn_plug (self, &local_error))
    {
      qlean_network_start_fail (self, local_error);
      return;
    }
  qlean_network_poll_plug (self);
}

static gboolean
qlean_network_launch (QleanNetwork  *self,
                      GError       **error)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autofree char *vde_switch = g_find_program_in_path ("vde_switch");
  g_autofree char *dir_name = NULL;
  g_autofree char *run_dir = NULL;
  g_autofree char *socket_path = NULL;
  g_autofree char *numports = NULL;
  GSubprocess *vswitch;
  GPid pid;

  if (self->subnet_error != NULL)
    {
      g_propagate_error (error, g_error_copy (self->subnet_error));
      return FALSE;
    }

  if (vde_switch == NULL)
    {
      g_autofree char *hint = qlean_host_install_hint ("vde2");

      g_set_error (error, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_SWITCH_NOT_FOUND,
                   _("vde_switch is not installed, and network “%s” needs it; install it: %s"),
                   self->name, hint);
      return FALSE;
    }

  dir_name = g_strdup_printf ("net-%s", self->name);
  run_dir = qlean_host_make_run_dir (dir_name, error);
  if (run_dir == NULL)
    return FALSE;
  socket_path = g_build_filename (run_dir, "switch", NULL);
  numports = g_strdup_printf ("%u", self->n_hosts + 1);

  {
    const char *argv[] = {
      vde_switch,
      "--sock", socket_path,
      /* Only this user may plug in, and only into the ports it names. */
      "--mode", "0600",
      "--dirmode", "0700",
      "--numports", numports,
      NULL
    };

    launcher = child_launcher (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                               G_SUBPROCESS_FLAGS_STDERR_MERGE);
    vswitch = g_subprocess_launcher_spawnv (launcher, argv, error);
  }

  if (vswitch == NULL)
    {
      g_prefix_error (error, _("Could not start the switch of network “%s”: "), self->name);
      qlean_rm_rf (run_dir, NULL);
      return FALSE;
    }

  pid = qlean_subprocess_get_pid (vswitch);
  g_mutex_lock (&self->lock);
  self->run_dir = g_steal_pointer (&run_dir);
  self->socket_path = g_steal_pointer (&socket_path);
  self->switch_pid = pid;
  g_mutex_unlock (&self->lock);

  self->vswitch = vswitch;
  self->console_in = g_object_ref (g_subprocess_get_stdin_pipe (vswitch));
  self->console_out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (vswitch));
  g_queue_clear_full (&self->output_tail, g_free);
  g_string_truncate (self->data, 0);
  self->in_data = FALSE;
  self->writing = FALSE;

  qlean_network_set_state (self, NET_STARTING);
  g_subprocess_wait_async (vswitch, NULL, qlean_network_switch_exited_cb,
                           qlean_link_ref (self->link));
  g_data_input_stream_read_line_async (self->console_out, G_PRIORITY_DEFAULT, NULL,
                                       qlean_network_console_read_cb,
                                       qlean_link_ref (self->link));
  self->start_timer = network_add_timeout (self, START_TIMEOUT_MS, qlean_network_start_timeout_cb);

  /* The first answer on the console means the switch has made its
   * socket and runs its main loop. */
  qlean_network_console_send (self, qlean_network_hello_cb, NULL, "showinfo");

  return TRUE;
}

static gboolean
qlean_network_start_in_worker (gpointer user_data)
{
  GTask *task = user_data;
  QleanNetwork *self = g_task_get_source_object (task);
  GError *error = NULL;

  if (g_task_return_error_if_cancelled (task))
    return G_SOURCE_REMOVE;

  switch (g_atomic_int_get (&self->state))
    {
    case NET_RUNNING:
      g_task_return_boolean (task, TRUE);
      break;
    case NET_STARTING:
      g_ptr_array_add (self->start_waiters, g_object_ref (task));
      break;
    case NET_STOPPING:
      g_task_return_new_error (task, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_NOT_RUNNING,
                               _("Network “%s” is stopping; start it again once the stop "
                                 "has completed"), self->name);
      break;
    case NET_STOPPED:
    default:
      if (!qlean_network_launch (self, &error))
        g_task_return_error (task, error);
      else
        g_ptr_array_add (self->start_waiters, g_object_ref (task));
      break;
    }

  return G_SOURCE_REMOVE;
}

/**
 * qlean_network_start_async:
 * @self: a #QleanNetwork
 * @cancellable: (nullable): a #GCancellable, looked at before the start
 * @callback: called when the switch runs, or failed to start
 * @user_data: data for @callback
 *
 * Starts the switch (and the NAT plug, with [property@Network:nat]) and
 * completes once machines can plug in; at most ten seconds. Starting a
 * running network succeeds at once. A failure leaves no process and no
 * run directory behind.
 */
void
qlean_network_start_async (QleanNetwork        *self,
                           GCancellable        *cancellable,
                           GAsyncReadyCallback  callback,
                           gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (QLEAN_IS_NETWORK (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, qlean_network_start_async);
  g_task_set_name (task, "[qlean] start network");

  qlean_worker_invoke (qlean_network_start_in_worker, task, g_object_unref);
}

/**
 * qlean_network_start_finish:
 * @self: a #QleanNetwork
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_network_start_async().
 *
 * Returns: %TRUE when the switch runs
 */
gboolean
qlean_network_start_finish (QleanNetwork  *self,
                            GAsyncResult  *result,
                            GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_network_start:
 * @self: a #QleanNetwork
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_network_start_async().
 *
 * Returns: %TRUE when the switch runs
 */
gboolean
qlean_network_start (QleanNetwork  *self,
                     GCancellable  *cancellable,
                     GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  qlean_sync_call_init (&call);
  qlean_network_start_async (self, cancellable, qlean_sync_call_done, &call);

  return qlean_network_start_finish (self, qlean_sync_call_wait (&call), error);
}

static gboolean
qlean_network_stop_in_worker (gpointer user_data)
{
  GTask *task = user_data;
  QleanNetwork *self = g_task_get_source_object (task);

  switch (g_atomic_int_get (&self->state))
    {
    case NET_STOPPED:
      g_task_return_boolean (task, TRUE);
      break;
    case NET_STOPPING:
      g_ptr_array_add (self->stop_waiters, g_object_ref (task));
      break;
    case NET_STARTING:
      g_ptr_array_add (self->stop_waiters, g_object_ref (task));
      qlean_network_start_fail (self,
          g_error_new (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                       _("Network “%s” was stopped while it was starting"), self->name));
      break;
    case NET_RUNNING:
    default:
      g_ptr_array_add (self->stop_waiters, g_object_ref (task));
      qlean_network_teardown (self);
      break;
    }

  return G_SOURCE_REMOVE;
}

/**
 * qlean_network_stop_async:
 * @self: a #QleanNetwork
 * @cancellable: (nullable): a #GCancellable (unused: stopping is bounded)
 * @callback: called once the switch has exited
 * @user_data: data for @callback
 *
 * Stops the switch and the NAT plug, within a few seconds, and removes
 * the run directory. Machines still plugged in lose their network; stop
 * them first. Stopping a network that does not run succeeds at once.
 */
void
qlean_network_stop_async (QleanNetwork        *self,
                          GCancellable        *cancellable,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (QLEAN_IS_NETWORK (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, qlean_network_stop_async);
  g_task_set_name (task, "[qlean] stop network");

  qlean_worker_invoke (qlean_network_stop_in_worker, task, g_object_unref);
}

/**
 * qlean_network_stop_finish:
 * @self: a #QleanNetwork
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_network_stop_async().
 *
 * Returns: %TRUE once the switch has exited
 */
gboolean
qlean_network_stop_finish (QleanNetwork  *self,
                           GAsyncResult  *result,
                           GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_network_stop:
 * @self: a #QleanNetwork
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_network_stop_async().
 *
 * Returns: %TRUE once the switch has exited
 */
gboolean
qlean_network_stop (QleanNetwork  *self,
                    GCancellable  *cancellable,
                    GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  qlean_sync_call_init (&call);
  qlean_network_stop_async (self, cancellable, qlean_sync_call_done, &call);

  return qlean_network_stop_finish (self, qlean_sync_call_wait (&call), error);
}

/* Partitions */

typedef struct
{
  GTask  *task;
  guint   pending;
  GError *error;
} Batch;

static void
batch_reply (QleanNetwork *self,
             const char   *data,
             const GError *error,
             gpointer      user_data)
{
  Batch *batch = user_data;

  if (error != NULL && batch->error == NULL)
    batch->error = g_error_new (QLEAN_NETWORK_ERROR,
                                error->domain == QLEAN_NETWORK_ERROR ? error->code
                                                                      : QLEAN_NETWORK_ERROR_FAILED,
                                _("Could not change the VLANs of network “%s”: %s"),
                                self->name, error->message);

  if (--batch->pending > 0)
    return;

  if (batch->error != NULL)
    g_task_return_error (batch->task, batch->error);
  else
    g_task_return_boolean (batch->task, TRUE);
  g_object_unref (batch->task);
  g_free (batch);
}

typedef struct
{
  GStrv side_a;
  GStrv side_b;     /* NULL: everyone else */
} PartitionData;

static void
partition_data_free (PartitionData *data)
{
  g_strfreev (data->side_a);
  g_strfreev (data->side_b);
  g_free (data);
}

static gboolean
qlean_network_partition_in_worker (gpointer user_data)
{
  GTask *task = user_data;
  QleanNetwork *self = g_task_get_source_object (task);
  PartitionData *data = g_task_get_task_data (task);
  g_autoptr(GHashTable) vlans = g_hash_table_new (NULL, NULL);
  g_autoptr(GPtrArray) members = NULL;
  GHashTableIter iter;
  gpointer port, vlan;
  Batch *batch;

  if (g_atomic_int_get (&self->state) != NET_RUNNING)
    {
      g_task_return_new_error (task, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_NOT_RUNNING,
                               _("Cannot change the partitions of network “%s”: it does not run"),
                               self->name);
      return G_SOURCE_REMOVE;
    }
  if (self->shared)
    {
      g_task_return_new_error (task, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_NOT_RUNNING,
                               _("Cannot change the partitions of network “%s”: another "
                                 "process runs its switch"), self->name);
      return G_SOURCE_REMOVE;
    }

  g_mutex_lock (&self->lock);
  members = members_by_port (self);
  for (guint i = 0; i < members->len; i++)
    {
      Member *member = g_ptr_array_index (members, i);
      guint side = 0;

      if (data->side_a != NULL && g_strv_contains ((const char * const *) data->side_a, member->name))
        side = PARTITION_VLAN_A;
      else if (data->side_a != NULL && (data->side_b == NULL ||
               g_strv_contains ((const char * const *) data->side_b, member->name)))
        side = PARTITION_VLAN_B;
      g_hash_table_insert (vlans, GUINT_TO_POINTER (member->host), GUINT_TO_POINTER (side));
    }
  g_mutex_unlock (&self->lock);

  batch = g_new0 (Batch, 1);
  batch->task = g_object_ref (task);
  batch->pending = 1;

  /* A port exists once something plugged into it; creating it first
   * makes the VLAN stick for a machine that is not running yet. The
   * NAT plug (port 1) stays on the default VLAN, with the machines on
   * neither side. */
  g_hash_table_iter_init (&iter, vlans);
  while (g_hash_table_iter_next (&iter, &port, &vlan))
    {
      qlean_network_console_send (self, ignore_reply, NULL, "port/create %u",
                                  GPOINTER_TO_UINT (port));
      batch->pending++;
      qlean_network_console_send (self, batch_reply, batch, "port/setvlan %u %u",
                                  GPOINTER_TO_UINT (port), GPOINTER_TO_UINT (vlan));
    }

  /* Completes the batch once every command above has answered. */
  qlean_network_console_send (self, batch_reply, batch, "showinfo");

  return G_SOURCE_REMOVE;
}

static void
qlean_network_set_partition_async (QleanNetwork        *self,
                                   const char * const  *side_a,
                                   const char * const  *side_b,
                                   GCancellable        *cancellable,
                                   gpointer             source_tag,
                                   GAsyncReadyCallback  callback,
                                   gpointer             user_data)
{
  g_autoptr(GTask) task = g_task_new (self, cancellable, callback, user_data);
  PartitionData *data;

  g_task_set_source_tag (task, source_tag);
  g_task_set_name (task, "[qlean] network partition");

  for (guint side = 0; side < 2; side++)
    {
      const char * const *names = side == 0 ? side_a : side_b;

      for (guint i = 0; names != NULL && names[i] != NULL; i++)
        {
          g_autofree char *address = qlean_network_dup_address (self, names[i]);

          if (address == NULL)
            {
              g_task_return_new_error (task, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_UNKNOWN_MACHINE,
                                       _("Cannot partition network “%s”: no machine named “%s” is on it"),
                                       self->name, names[i]);
              return;
            }
          if (side == 1 && side_a != NULL && g_strv_contains (side_a, names[i]))
            {
              g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                                       _("Cannot partition network “%s”: machine “%s” is on both sides"),
                                       self->name, names[i]);
              return;
            }
        }
    }

  data = g_new0 (PartitionData, 1);
  data->side_a = g_strdupv ((char **) side_a);
  data->side_b = g_strdupv ((char **) side_b);
  g_task_set_task_data (task, data, (GDestroyNotify) partition_data_free);

  qlean_worker_invoke (qlean_network_partition_in_worker, g_steal_pointer (&task), g_object_unref);
}

/**
 * qlean_network_partition_async:
 * @self: a running #QleanNetwork
 * @side_a: (array zero-terminated=1): names of machines on one side
 * @side_b: (array zero-terminated=1) (nullable): names of machines on the
 *   other side; %NULL for every machine not in @side_a
 * @cancellable: (nullable): a #GCancellable
 * @callback: called once the switch has been split
 * @user_data: data for @callback
 *
 * Splits the switch, for split-brain tests: the machines of @side_a then
 * reach only each other, and so do those of @side_b; frames between the
 * sides are dropped silently, as by a broken link, in both directions.
 * Machines named on neither side (when @side_b is given) stay together
 * on the original segment, with the NAT gateway. The guests see no
 * change on their interfaces: to take one machine's link down for
 * everyone, and let its guest see it, use [method@Machine.set_link].
 *
 * The split is made of VLANs of the switch (each port untagged in the
 * VLAN of its side), so it needs no root and no help from the guests. A
 * new partition replaces the previous one; [method@Network.heal] undoes
 * it; it also ends when the switch stops.
 */
void
qlean_network_partition_async (QleanNetwork        *self,
                               const char * const  *side_a,
                               const char * const  *side_b,
                               GCancellable        *cancellable,
                               GAsyncReadyCallback  callback,
                               gpointer             user_data)
{
  g_return_if_fail (QLEAN_IS_NETWORK (self));
  g_return_if_fail (side_a != NULL);

  qlean_network_set_partition_async (self, side_a, side_b, cancellable,
                                     qlean_network_partition_async, callback, user_data);
}

/**
 * qlean_network_partition_finish:
 * @self: a #QleanNetwork
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_network_partition_async().
 *
 * Returns: %TRUE once the switch is split
 */
gboolean
qlean_network_partition_finish (QleanNetwork  *self,
                                GAsyncResult  *result,
                                GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_network_partition:
 * @self: a running #QleanNetwork
 * @side_a: (array zero-terminated=1): names of machines on one side
 * @side_b: (array zero-terminated=1) (nullable): names of machines on the
 *   other side; %NULL for every machine not in @side_a
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_network_partition_async().
 *
 * Returns: %TRUE once the switch is split
 */
gboolean
qlean_network_partition (QleanNetwork        *self,
                         const char * const  *side_a,
                         const char * const  *side_b,
                         GCancellable        *cancellable,
                         GError             **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  qlean_sync_call_init (&call);
  qlean_network_partition_async (self, side_a, side_b, cancellable, qlean_sync_call_done, &call);

  return qlean_network_partition_finish (self, qlean_sync_call_wait (&call), error);
}

/**
 * qlean_network_heal_async:
 * @self: a running #QleanNetwork
 * @cancellable: (nullable): a #GCancellable
 * @callback: called once the switch is whole again
 * @user_data: data for @callback
 *
 * Undoes [method@Network.partition]: every machine reaches every other
 * again. Healing a network that is not split succeeds.
 */
void
qlean_network_heal_async (QleanNetwork        *self,
                          GCancellable        *cancellable,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  g_return_if_fail (QLEAN_IS_NETWORK (self));

  qlean_network_set_partition_async (self, NULL, NULL, cancellable,
                                     qlean_network_heal_async, callback, user_data);
}

/**
 * qlean_network_heal_finish:
 * @self: a #QleanNetwork
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_network_heal_async().
 *
 * Returns: %TRUE once the switch is whole again
 */
gboolean
qlean_network_heal_finish (QleanNetwork  *self,
                           GAsyncResult  *result,
                           GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_network_heal:
 * @self: a running #QleanNetwork
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_network_heal_async().
 *
 * Returns: %TRUE once the switch is whole again
 */
gboolean
qlean_network_heal (QleanNetwork  *self,
                    GCancellable  *cancellable,
                    GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  qlean_sync_call_init (&call);
  qlean_network_heal_async (self, cancellable, qlean_sync_call_done, &call);

  return qlean_network_heal_finish (self, qlean_sync_call_wait (&call), error);
}
