/* qlean-network.c: a rootless virtual switch that machines plug into
 *
 * SPDX-License-Identifier: MIT
 *
 * The QleanNetwork object itself: its properties, constructors and
 * getters. Its machines' addresses are in qlean-network-addresses.c, the
 * switch process and its lifetime in qlean-network-switch.c, partitions
 * in qlean-network-partition.c.
 */

#include "config.h"

#include <signal.h>
#include <glib/gi18n-lib.h>

#include "qlean-host-private.h"
#include "qlean-json-channel-private.h"
#include "qlean-machine-network-private.h"
#include "qlean-network-state-private.h"

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
 *
 * Since: 0.1
 */

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

/* GObject */

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

  if (qlean_network_parse_subnet (self->subnet, self->nat, &self->base, &self->prefix, &self->subnet_error))
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
  g_queue_clear_full (&self->commands, (GDestroyNotify) qlean_network_command_free);
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

  /* A machine on a network starts through the network's hooks. */
  qlean_machine_network_register ();

  /**
   * QleanNetwork:name:
   *
   * The network's name, used for its run directory and its MAC
   * addresses. A random `qlean-net-XXXXXX` when not given.
   *
   * Since: 0.1
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
   *
   * Since: 0.1
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
   *
   * Since: 0.1
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
  self->members = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, qlean_network_member_free);
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
 *
 * Since: 0.1
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
 *
 * Since: 0.1
 */
QleanNetwork *
qlean_network_new_full (const char  *name,
                        const char  *subnet,
                        gboolean     nat,
                        GError     **error)
{
  g_autoptr(QleanNetwork) self = NULL;

  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  self = g_object_new (QLEAN_TYPE_NETWORK,
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
 *
 * Since: 0.1
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
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

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
 * qlean_network_get_name:
 * @self: a #QleanNetwork
 *
 * Returns: the network's name
 *
 * Since: 0.1
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
 *
 * Since: 0.1
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
 *
 * Since: 0.1
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
 *
 * Since: 0.1
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
 *
 * Since: 0.1
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
 *
 * Since: 0.1
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
