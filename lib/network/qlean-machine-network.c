/* qlean-machine-network.c: a machine's side of a QleanNetwork
 *
 * It plugs a starting machine into its network and configures the
 * guest's side as a boot stage of its own, through the hooks the
 * machine calls at each start (QleanMachineNetworkHooks): the machine's
 * files never name this one, which calls them, so that the two do not
 * call each other. It also reads a running guest's address and sets
 * its link.
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>
#include <glib/gi18n-lib.h>

#include "qlean-error.h"
#include "qlean-hosts-script-private.h"
#include "qlean-json-framer-private.h"
#include "qlean-machine-network-private.h"
#include "qlean-machine-private.h"
#include "qlean-machine-run-private.h"
#include "qlean-qga-client.h"
#include "qlean-qmp-client.h"
#include "qlean-sync-private.h"
#include "qlean-task-private.h"
#include "qlean-worker-private.h"

/* The guest side of the configuration: a fixed script, with every value
 * passed as an argument, never pasted into shell text. IPv4 addresses are
 * flushed first, so that a guest restored from a saved state, or with a
 * DHCP lease, ends up with exactly the network's address. Then Qlean's
 * lines of /etc/hosts are replaced (qlean-hosts-script-private.h), in
 * place: nothing in the starting guest reads them yet, and a rename
 * would cost a process. */
static const char configure_script[] =
  "addr=$1 dev=$2 gw=$3 mac=$4\n"
  "shift 4\n"
  /* A taken spare's card gets the machine's MAC ($mac) as it comes up
   * again: down, it drops its IPv6 link-local address, made from the
   * MAC every spare has, and up, it makes its own. */
  "if [ -n \"$mac\" ]; then ip link set dev \"$dev\" down || exit; fi\n"
  "ip link set dev \"$dev\" ${mac:+address \"$mac\"} up || exit\n"
  "ip -f inet addr flush dev \"$dev\" || exit\n"
  "ip addr add \"$addr\" dev \"$dev\" || exit\n"
  "if [ -n \"$gw\" ]; then\n"
  "  ip route replace default via \"$gw\" dev \"$dev\" || exit\n"
  "  [ -L /etc/resolv.conf ] || echo \"nameserver $gw\" > /etc/resolv.conf\n"
  "fi\n"
  QLEAN_HOSTS_KEEP_OTHERS
  QLEAN_HOSTS_PRINT " > /etc/hosts\n";

/* QleanMachineNetworkHooks.plug */
static QleanNetworkLease *
qlean_machine_network_resolve (QleanMachine  *self,
                               QleanNetwork  *network,
                               const char    *mac_address,
                               GError       **error)
{
  const char *name = qlean_machine_get_name (self);
  QleanNetworkLease *lease;

  if (!qlean_network_attach (network, name, self, error))
    return NULL;

  lease = qlean_network_lookup (network, name);
  g_assert (lease != NULL);

  if (mac_address != NULL)
    {
      g_free (lease->mac_address);
      lease->mac_address = g_ascii_strdown (mac_address, -1);
    }

  return lease;
}

/* For a machine detached from @network while it started. */
static GError *
no_longer_on_network_error (QleanMachine *self,
                            QleanNetwork *network)
{
  return g_error_new (QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_UNKNOWN_MACHINE,
                      _("Machine “%s” is no longer on network “%s”"),
                      qlean_machine_get_name (self), qlean_network_get_name (network));
}

/* Fails unless @network runs, naming what to do. */
static gboolean
qlean_machine_network_check_running (QleanMachine  *self,
                                     QleanNetwork  *network,
                                     GError       **error)
{
  if (qlean_network_is_running (network))
    return TRUE;

  g_set_error (error, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_NOT_RUNNING,
               _("Cannot start machine “%s”: its network “%s” does not run; start it first "
                 "with qlean_network_start() (a pool starts its own)"),
               qlean_machine_get_name (self), qlean_network_get_name (network));
  return FALSE;
}

/* Configuring the guest */

/* What the guest's card gets: the same either way. */
typedef struct
{
  QleanMachineRun *run;
  char            *card_mac;   /* the MAC the guest shows the card under now */
  char            *new_mac;    /* NULL: the card keeps card_mac */
  char            *address;    /* IPv4 */
  guint            prefix;
  char            *gateway;    /* NULL without NAT */
  GStrv            hosts;      /* "ADDRESS NAME" */
  char            *guest_error; /* why qlean-guest's way failed, if it did */
} ConfigureData;

static void
configure_data_free (ConfigureData *data)
{
  g_clear_pointer (&data->run, qlean_machine_run_unref);
  g_free (data->card_mac);
  g_free (data->new_mac);
  g_free (data->address);
  g_free (data->gateway);
  g_strfreev (data->hosts);
  g_free (data->guest_error);
  g_free (data);
}

/* Fails the configuration with @error (taken), adding what qlean-guest
 * said when its way was tried first and failed. */
static void
configure_fail (GTask  *task,
                GError *error)
{
  ConfigureData *data = g_task_get_task_data (task);

  if (data->guest_error != NULL && !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      GError *full = g_error_new (error->domain, error->code,
                                  _("%s (qlean-guest, asked first, said: %s)"),
                                  error->message, data->guest_error);

      g_error_free (error);
      error = full;
    }
  g_task_return_error (task, error);
}

static void
configure_ran_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  QleanMachine *self = QLEAN_MACHINE (source);
  g_autoptr(QleanExecResult) ran = NULL;
  g_autofree char *err = NULL;
  GError *error = NULL;

  ran = qlean_machine_exec_finish (self, result, &error);
  if (ran == NULL)
    {
      configure_fail (task, error);
      return;
    }

  if (qlean_exec_result_success (ran))
    {
      g_task_return_boolean (task, TRUE);
      return;
    }

  err = qlean_exec_result_get_stderr_text (ran);
  configure_fail (task, g_error_new (QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
                                     _("Could not set up the network of machine “%s” (the guest "
                                       "needs `ip` from iproute2 or busybox): exit status %d%s%s"),
                                     qlean_machine_get_name (self),
                                     qlean_exec_result_get_exit_status (ran),
                                     err && *g_strstrip (err) ? ": " : "", err ? err : ""));
}

static void
configure_interface_cb (GObject      *source,
                        GAsyncResult *result,
                        gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  QleanMachine *self = g_task_get_source_object (task);
  ConfigureData *data = g_task_get_task_data (task);
  GCancellable *cancellable = g_task_get_cancellable (task);
  g_autoptr(GPtrArray) args = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GError) error = NULL;
  QleanInterfaceFound *found;

  found = qlean_machine_wait_interface_finish (result, &error);
  if (found == NULL)
    {
      /* The timeout's message lists the interfaces the guest showed. */
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT) && *error->message != '\0')
        configure_fail (task, g_error_new (QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
                                           _("Machine “%s” shows no network interface with MAC "
                                             "address %s after %u ms (its kernel needs the "
                                             "virtio_net driver); it has: %s"),
                                           qlean_machine_get_name (self), data->card_mac,
                                           QLEAN_INTERFACE_WAIT_MS, error->message));
      else if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
        configure_fail (task, g_error_new (QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
                                           _("Machine “%s” shows no network interface with MAC "
                                             "address %s after %u ms (its kernel needs the "
                                             "virtio_net driver); it has no interfaces at all"),
                                           qlean_machine_get_name (self), data->card_mac,
                                           QLEAN_INTERFACE_WAIT_MS));
      else
        configure_fail (task, g_steal_pointer (&error));
      return;
    }

  g_ptr_array_add (args, g_strdup ("/bin/sh"));
  g_ptr_array_add (args, g_strdup ("-c"));
  g_ptr_array_add (args, g_strdup (configure_script));
  g_ptr_array_add (args, g_strdup ("qlean-network"));
  g_ptr_array_add (args, g_strdup_printf ("%s/%u", data->address, data->prefix));
  g_ptr_array_add (args, g_strdup (found->name));
  g_ptr_array_add (args, g_strdup (data->gateway ? data->gateway : ""));
  g_ptr_array_add (args, g_strdup (data->new_mac ? data->new_mac : ""));
  for (guint i = 0; data->hosts[i] != NULL; i++)
    g_ptr_array_add (args, g_strdup (data->hosts[i]));
  g_ptr_array_add (args, NULL);
  qlean_interface_found_free (found);

  qlean_machine_exec_starting_async (self, (const char * const *) args->pdata, NULL, cancellable,
                                     configure_ran_cb, g_steal_pointer (&task));
}

/* The agent's way (and the way after qlean-guest refused): wait for the
 * card to show, then the script. Task context. */
static void
configure_by_script (GTask *task)
{
  ConfigureData *data = g_task_get_task_data (task);
  g_autoptr(QleanQgaClient) qga = qlean_machine_run_dup_qga (data->run);

  if (qga == NULL)
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE,
                               _("Could not set up the network of machine “%s”: it has stopped"),
                               qlean_machine_get_name (g_task_get_source_object (task)));
      return;
    }
  /* After qlean-guest's way failed midway, the card may show its new
   * MAC already: the script sets it again. */
  qlean_machine_wait_interface_async (g_task_get_source_object (task), qga, data->card_mac,
                                      data->new_mac, FALSE, g_task_get_cancellable (task),
                                      configure_interface_cb, g_object_ref (task));
}

/* qlean-guest's way: one FS NET CONFIGURE does what the script does,
 * without its four or five processes. Its answer comes in the worker
 * thread. A card that is not there yet (a cold boot), an older
 * qlean-guest, or any failure: the script's way, whose wait and
 * messages are the ones the caller sees. */

static gboolean
configured_in_context (gpointer user_data)
{
  g_debug ("machine %s: network configured by qlean-guest",
           qlean_machine_get_name (g_task_get_source_object (user_data)));
  g_task_return_boolean (user_data, TRUE);
  return G_SOURCE_REMOVE;
}

static gboolean
configure_by_script_in_context (gpointer user_data)
{
  configure_by_script (user_data);
  return G_SOURCE_REMOVE;
}

static void
configure_sent_cb (const GError *error,
                   gpointer      user_data)
{
  GTask *task = user_data;
  ConfigureData *data = g_task_get_task_data (task);

  /* Unknown to an older qlean-guest, or none answers: nothing to add
   * to a failure of the script. */
  if (error != NULL && !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED))
    data->guest_error = g_strdup (error->message);
  if (error != NULL)
    g_debug ("machine %s: qlean-guest did not configure its network (%s); the script does",
             qlean_machine_get_name (g_task_get_source_object (task)), error->message);
  g_main_context_invoke_full (g_task_get_context (task), G_PRIORITY_DEFAULT,
                              error ? configure_by_script_in_context : configured_in_context,
                              g_object_ref (task), g_object_unref);
}

static gboolean
configure_in_worker (gpointer user_data)
{
  GTask *task = user_data;
  ConfigureData *data = g_task_get_task_data (task);
  QleanGuestTlv *tlv = qlean_guest_tlv_new ();
  g_autoptr(GBytes) request = NULL;
  g_autoptr(GString) hosts = g_string_new (NULL);

  for (guint i = 0; data->hosts[i] != NULL; i++)
    g_string_append_printf (hosts, "%s%s", i > 0 ? "\n" : "", data->hosts[i]);

  qlean_guest_tlv_add_u32 (tlv, QLEAN_GUEST_TAG_OP, QLEAN_GUEST_FS_NET_CONFIGURE);
  qlean_guest_tlv_add_string (tlv, QLEAN_GUEST_TAG_PATH, "/");
  qlean_guest_tlv_add_string (tlv, QLEAN_GUEST_TAG_OLD_MAC, data->card_mac);
  if (data->new_mac != NULL)
    qlean_guest_tlv_add_string (tlv, QLEAN_GUEST_TAG_NEW_MAC, data->new_mac);
  qlean_guest_tlv_add_string (tlv, QLEAN_GUEST_TAG_ADDR, data->address);
  qlean_guest_tlv_add_u32 (tlv, QLEAN_GUEST_TAG_PREFIX, data->prefix);
  if (data->gateway != NULL)
    qlean_guest_tlv_add_string (tlv, QLEAN_GUEST_TAG_GATEWAY, data->gateway);
  qlean_guest_tlv_add_string (tlv, QLEAN_GUEST_TAG_HOSTS, hosts->str);
  request = qlean_guest_tlv_free_to_bytes (tlv);
  qlean_machine_run_send_guest_request (data->run, 5, request, "FS NET CONFIGURE",
                                        configure_sent_cb, g_object_ref (task), g_object_unref);
  return G_SOURCE_REMOVE;
}

/* Gives the guest's card (@data) its address, default route, name
 * server and /etc/hosts lines; takes @data. Completes with a boolean. */
static void
configure_card_async (QleanMachine        *self,
                      ConfigureData       *data,
                      GCancellable        *cancellable,
                      GAsyncReadyCallback  callback,
                      gpointer             user_data)
{
  g_autoptr(GTask) task = qlean_task_new (self, cancellable, callback, user_data,
                                          configure_card_async,
                                          "[qlean] configure guest network");

  g_task_set_task_data (task, data, (GDestroyNotify) configure_data_free);
  if (qlean_machine_run_uses_agent_only (data->run))
    configure_by_script (task);
  else
    qlean_worker_invoke (configure_in_worker, g_steal_pointer (&task), g_object_unref);
}

static gboolean
configure_card_finish (GAsyncResult  *result,
                       GError       **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}

/* On the worker, while the machine starts and once its agent answers:
 * gives the guest's interface its address (and default route with NAT),
 * and lists every machine of the network in its /etc/hosts. A taken
 * spare's card (@card_on_spare_hub) is still under the MAC every spare
 * has, and gets the machine's. */
static void
qlean_machine_network_configure_async (QleanMachine        *self,
                                       QleanMachineRun     *run,
                                       gboolean             card_on_spare_hub,
                                       GCancellable        *cancellable,
                                       GAsyncReadyCallback  callback,
                                       gpointer             user_data)
{
  QleanNetwork *network = qlean_machine_get_network (self);
  g_autoptr(QleanNetworkLease) lease = NULL;
  g_autofree char *mac = NULL;
  ConfigureData *data;

  lease = qlean_network_lookup (network, qlean_machine_get_name (self));
  if (lease == NULL)
    {
      g_task_report_error (self, callback, user_data, qlean_machine_network_configure_async,
                           no_longer_on_network_error (self, network));
      return;
    }

  mac = qlean_machine_dup_mac_address (self);
  data = g_new0 (ConfigureData, 1);
  data->run = qlean_machine_run_ref (run);
  data->card_mac = g_strdup (card_on_spare_hub ? QLEAN_NETWORK_SPARE_MAC : mac);
  data->new_mac = card_on_spare_hub ? g_strdup (mac) : NULL;
  data->address = g_strdup (lease->address);
  data->prefix = lease->prefix;
  data->gateway = g_strdup (lease->gateway);
  data->hosts = qlean_network_dup_hosts (network);
  configure_card_async (self, data, cancellable, callback, user_data);
}

/* The network's part in a start */

static void
qlean_machine_network_configured_cb (GObject      *source,
                                     GAsyncResult *result,
                                     gpointer      user_data)
{
  QleanMachine *self = QLEAN_MACHINE (source);
  g_autoptr(GTask) spawn_task = user_data;
  GError *error = NULL;

  configure_card_finish (result, &error);
  qlean_machine_boot_stage_done (self, spawn_task, error);
}

/* A machine on a network is running once its guest has its address
 * and knows the other machines' names. */
static gboolean
qlean_machine_network_stage_start (QleanMachine    *self,
                                   QleanMachineRun *run,
                                   GTask           *spawn_task)
{
  qlean_machine_network_configure_async (self, run, run->card_on_spare_hub,
                                         g_task_get_cancellable (spawn_task),
                                         qlean_machine_network_configured_cb,
                                         g_object_ref (spawn_task));
  return TRUE;
}

static const QleanBootStage network_stage = {
  "network", QLEAN_BOOT_STAGE_NETWORK, qlean_machine_network_stage_start
};

/* QleanMachineNetworkHooks.prepare */
static gboolean
qlean_machine_network_prepare (QleanMachine     *self,
                               QleanMachineRun  *run,
                               QleanNetwork     *network,
                               GError          **error)
{
  if (!qlean_machine_network_check_running (self, network, error))
    return FALSE;
  qlean_machine_run_add_boot_stage (run, &network_stage);
  return TRUE;
}

/* Joining a taken spare's card to the switch */

typedef struct
{
  QleanMachine *machine;
  GTask        *spawn_task;
} UplinkData;

static void
uplink_data_free (UplinkData *data)
{
  g_object_unref (data->machine);
  g_object_unref (data->spawn_task);
  g_free (data);
}

/* Ends the uplink stage, naming the network in a failure. */
static void
uplink_done (UplinkData *data,
             GError     *error)
{
  if (error != NULL && !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      GError *named = g_error_new (QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
                                   _("Could not join machine “%s”, which took a warmed spare, "
                                     "to the switch of network “%s”: %s"),
                                   qlean_machine_get_name (data->machine),
                                   qlean_network_get_name (qlean_machine_get_network (data->machine)),
                                   error->message);

      g_error_free (error);
      error = named;
    }
  qlean_machine_boot_stage_done (data->machine, data->spawn_task, error);
  uplink_data_free (data);
}

static void
hub_joined_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  g_autoptr(JsonNode) reply = NULL;
  GError *error = NULL;

  reply = qlean_qmp_client_execute_finish (QLEAN_QMP_CLIENT (source), result, &error);
  uplink_done (user_data, reply == NULL ? error : NULL);
}

static void
switch_port_added_cb (GObject      *source,
                      GAsyncResult *result,
                      gpointer      user_data)
{
  UplinkData *data = user_data;
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(JsonObject) arguments = NULL;
  GError *error = NULL;

  reply = qlean_qmp_client_execute_finish (QLEAN_QMP_CLIENT (source), result, &error);
  if (reply == NULL)
    {
      uplink_done (data, error);
      return;
    }

  arguments = json_object_new ();
  json_object_set_string_member (arguments, "type", "hubport");
  json_object_set_string_member (arguments, "id", QLEAN_NETWORK_NETDEV_ID "-uplink");
  json_object_set_int_member (arguments, "hubid", QLEAN_NETWORK_SPARE_HUB);
  json_object_set_string_member (arguments, "netdev", QLEAN_NETWORK_NETDEV_ID "-switch");
  qlean_qmp_client_execute_async (QLEAN_QMP_CLIENT (source), "netdev_add", arguments,
                                  g_task_get_cancellable (data->spawn_task), hub_joined_cb, data);
}

/* The machine took a spare, whose card is alone on QEMU's hub: now that
 * the guest gave it the machine's MAC, the machine's port of the switch
 * joins the hub. Until then, nothing the guest sent with the MAC every
 * spare has could reach the switch (which would send other machines'
 * frames for that MAC to this port). */
static gboolean
qlean_machine_network_uplink_stage_start (QleanMachine    *self,
                                          QleanMachineRun *run,
                                          GTask           *spawn_task)
{
  QleanNetwork *network = qlean_machine_get_network (self);
  g_autoptr(QleanNetworkLease) lease = qlean_network_lookup (network, qlean_machine_get_name (self));
  g_autoptr(JsonObject) arguments = NULL;
  UplinkData *data;

  if (lease == NULL)
    {
      qlean_machine_boot_stage_done (self, spawn_task, no_longer_on_network_error (self, network));
      return TRUE;
    }

  data = g_new0 (UplinkData, 1);
  data->machine = g_object_ref (self);
  data->spawn_task = g_object_ref (spawn_task);
  arguments = json_object_new ();
  json_object_set_string_member (arguments, "type", "vde");
  json_object_set_string_member (arguments, "id", QLEAN_NETWORK_NETDEV_ID "-switch");
  json_object_set_string_member (arguments, "sock", lease->socket_path);
  json_object_set_int_member (arguments, "port", lease->port);
  qlean_qmp_client_execute_async (run->qmp, "netdev_add", arguments,
                                  g_task_get_cancellable (spawn_task), switch_port_added_cb, data);
  return TRUE;
}

static const QleanBootStage uplink_stage = {
  "uplink", QLEAN_BOOT_STAGE_UPLINK, qlean_machine_network_uplink_stage_start
};

/* QleanMachineNetworkHooks.join_from_spare */
static gboolean
qlean_machine_network_join_from_spare (QleanMachine     *self,
                                       QleanMachineRun  *run,
                                       QleanNetwork     *network,
                                       const char       *mac_address,
                                       GError          **error)
{
  g_autoptr(QleanNetworkLease) lease = NULL;

  if (!qlean_machine_network_check_running (self, network, error))
    return FALSE;
  lease = qlean_machine_network_resolve (self, network, mac_address, error);
  if (lease == NULL)
    return FALSE;
  run->card_on_spare_hub = TRUE;
  qlean_machine_run_add_boot_stage (run, &network_stage);
  qlean_machine_run_add_boot_stage (run, &uplink_stage);
  return TRUE;
}

/* Warming a spare's card */

/* QleanMachineNetworkHooks.warm_spare_card: a spare's card is configured
 * once, alone on its hub, the way the machine that takes it will be
 * (qlean-guest's request, or the agent's interface query and the
 * script). Under TCG, their first run in a QEMU costs about 0.3 s of
 * translation for the script, which the spare then pays ahead. Its
 * address is of TEST-NET-1 (RFC 5737), which the taking machine's
 * configuration flushes. */
static void
qlean_machine_network_warm_spare_card (QleanMachine        *spare,
                                       GCancellable        *cancellable,
                                       GAsyncReadyCallback  callback,
                                       gpointer             user_data)
{
  g_autoptr(GError) error = NULL;
  QleanMachineRun *run;
  ConfigureData *data;

  run = qlean_machine_ref_run (spare, QLEAN_MACHINE_OP_RUN_COMMAND, TRUE, &error);
  if (run == NULL)
    {
      g_task_report_new_error (spare, callback, user_data, qlean_machine_network_warm_spare_card,
                               QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE,
                               _("Could not configure the network card of a spare machine: %s"),
                               error->message);
      return;
    }

  data = g_new0 (ConfigureData, 1);
  data->run = run;
  data->card_mac = g_strdup (QLEAN_NETWORK_SPARE_MAC);
  data->new_mac = g_strdup (QLEAN_NETWORK_SPARE_MAC);
  data->address = g_strdup ("192.0.2.1");
  data->prefix = 24;
  data->hosts = g_new0 (char *, 1);
  configure_card_async (spare, data, cancellable, callback, user_data);
}

static const QleanMachineNetworkHooks network_hooks = {
  .plug = qlean_machine_network_resolve,
  .prepare = qlean_machine_network_prepare,
  .join_from_spare = qlean_machine_network_join_from_spare,
  .warm_spare_card = qlean_machine_network_warm_spare_card,
};

void
qlean_machine_network_register (void)
{
  qlean_machine_set_network_hooks (&network_hooks);
}

/* Addresses */

static void
get_ip_interface_cb (GObject      *source,
                     GAsyncResult *result,
                     gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  QleanMachine *self = g_task_get_source_object (task);
  g_autoptr(GError) error = NULL;
  QleanInterfaceFound *found;
  char *ipv4;

  found = qlean_machine_wait_interface_finish (result, &error);
  if (found == NULL)
    {
      /* The timeout's message lists the interfaces the guest showed. */
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT) && *error->message != '\0')
        g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                                 _("Machine “%s” has no IPv4 address after %u ms; its "
                                   "interfaces: %s"),
                                 qlean_machine_get_name (self), QLEAN_INTERFACE_WAIT_MS, error->message);
      else if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
        g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                                 _("Machine “%s” has no IPv4 address after %u ms; it shows no "
                                   "network interfaces at all"),
                                 qlean_machine_get_name (self), QLEAN_INTERFACE_WAIT_MS);
      else
        g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  ipv4 = g_steal_pointer (&found->ipv4);
  qlean_interface_found_free (found);
  g_task_return_pointer (task, ipv4, g_free);
}

static gboolean
qlean_machine_get_ip_in_worker (gpointer user_data)
{
  GTask *task = user_data;
  QleanMachine *self = g_task_get_source_object (task);
  g_autoptr(QleanQgaClient) qga = NULL;
  g_autofree char *mac_address = NULL;
  GError *error = NULL;

  if (!qlean_machine_check_running (self, QLEAN_MACHINE_OP_READ_IP, &error))
    {
      g_task_return_error (task, error);
      return G_SOURCE_REMOVE;
    }

  qga = qlean_machine_dup_qga (self);
  if (qga == NULL)
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE,
                               _("Cannot read the IP address of machine “%s”: it has no agent "
                                 "connection"), qlean_machine_get_name (self));
      return G_SOURCE_REMOVE;
    }

  mac_address = qlean_machine_dup_mac_address (self);
  qlean_machine_wait_interface_async (self, qga, mac_address, NULL, TRUE,
                                      g_task_get_cancellable (task), get_ip_interface_cb,
                                      g_object_ref (task));

  return G_SOURCE_REMOVE;
}

/**
 * qlean_machine_get_ip_async:
 * @self: a running #QleanMachine
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the address
 * @user_data: data for @callback
 *
 * Reads the guest's IPv4 address through the agent
 * (`guest-network-get-interfaces`): the address of the interface plugged
 * into the machine's [property@Machine:network], or of the first
 * interface other than loopback for a machine without one. Waits up to
 * ten seconds for an address to show, for guests that get theirs from a
 * DHCP client; fails with %G_IO_ERROR_TIMED_OUT, listing the guest's
 * interfaces, if none does.
 *
 * Machines on a network have their address from the start: this reads
 * what the guest really has, as a test would want to check.
 *
 * Since: 0.1
 */
void
qlean_machine_get_ip_async (QleanMachine        *self,
                            GCancellable        *cancellable,
                            GAsyncReadyCallback  callback,
                            gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (QLEAN_IS_MACHINE (self));

  task = qlean_task_new (self, cancellable, callback, user_data,
                         qlean_machine_get_ip_async, "[qlean] get IP address");

  qlean_task_run_in_worker (task, qlean_machine_get_ip_in_worker);
}

/**
 * qlean_machine_get_ip_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_machine_get_ip_async().
 *
 * Returns: (transfer full): the IPv4 address in dotted form, or %NULL
 *   with @error set
 *
 * Since: 0.1
 */
char *
qlean_machine_get_ip_finish (QleanMachine  *self,
                             GAsyncResult  *result,
                             GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_get_ip_async), NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * qlean_machine_get_ip:
 * @self: a running #QleanMachine
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_get_ip_async().
 *
 * Returns: (transfer full): the IPv4 address in dotted form, or %NULL
 *   with @error set
 *
 * Since: 0.1
 */
char *
qlean_machine_get_ip (QleanMachine  *self,
                      GCancellable  *cancellable,
                      GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!qlean_sync_call_begin (&call, error))
    return NULL;
  qlean_machine_get_ip_async (self, cancellable, qlean_sync_call_done, &call);

  return qlean_machine_get_ip_finish (self, qlean_sync_call_wait (&call), error);
}

/* Links */

static void
set_link_done_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  QleanMachine *self = g_task_get_source_object (task);
  g_autoptr(JsonNode) reply = NULL;
  GError *error = NULL;

  reply = qlean_qmp_client_execute_finish (QLEAN_QMP_CLIENT (source), result, &error);
  if (reply == NULL)
    {
      g_prefix_error (&error, _("Could not change the network link of machine “%s”: "),
                      qlean_machine_get_name (self));
      g_task_return_error (task, error);
      return;
    }

  g_task_return_boolean (task, TRUE);
}

static gboolean
qlean_machine_set_link_in_worker (gpointer user_data)
{
  GTask *task = user_data;
  QleanMachine *self = g_task_get_source_object (task);
  gboolean up = GPOINTER_TO_INT (g_task_get_task_data (task));
  QleanMachineState state = qlean_machine_get_state (self);
  g_autoptr(QleanQmpClient) qmp = NULL;
  g_autoptr(JsonObject) arguments = NULL;

  if (qlean_machine_get_network (self) == NULL)
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG,
                               _("Machine “%s” has no network card: give it a network (a pool "
                                 "does) to cut its link"), qlean_machine_get_name (self));
      return G_SOURCE_REMOVE;
    }

  qmp = qlean_machine_dup_qmp (self);
  if ((state != QLEAN_MACHINE_STATE_RUNNING && state != QLEAN_MACHINE_STATE_PAUSED) || qmp == NULL)
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE,
                               _("Cannot change the network link of machine “%s”: it is %s, "
                                 "not running"),
                               qlean_machine_get_name (self), qlean_machine_state_to_string (state));
      return G_SOURCE_REMOVE;
    }

  arguments = json_object_new ();
  json_object_set_string_member (arguments, "name", QLEAN_NETWORK_NIC_ID);
  json_object_set_boolean_member (arguments, "up", up);
  qlean_qmp_client_execute_async (qmp, "set_link", arguments, g_task_get_cancellable (task),
                                  set_link_done_cb, g_object_ref (task));

  return G_SOURCE_REMOVE;
}

/* A restored copy's link. A copy's card wakes up with the MAC of the
 * machine it was saved from, until the identity fix gives it its own:
 * what the guest sends meanwhile (the announcements QEMU asks for after
 * a load) carries the other machine's MAC, and a learning switch then
 * sends that machine's frames to the copy; vde_switch even keeps a MAC
 * on the port it last saw it on for seconds, so the other machine's
 * first pings were lost. The link of the card's backend stays down from
 * the load until then: QEMU drops every frame, both ways. The
 * backend's, not the card's: loading the state sets the card's link as
 * it was saved, and a memory template made from this load must save it
 * up. The guest sees no change. */

static void
set_backend_link (QleanMachineRun     *run,
                  gboolean             up,
                  GAsyncReadyCallback  callback,
                  gpointer             user_data)
{
  g_autoptr(JsonObject) arguments = json_object_new ();

  json_object_set_string_member (arguments, "name", QLEAN_NETWORK_NETDEV_ID);
  json_object_set_boolean_member (arguments, "up", up);
  qlean_qmp_client_execute_async (run->qmp, "set_link", arguments, NULL, callback, user_data);
}

static void
link_held_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(QleanMachineRun) run = user_data;
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;

  /* Without it the copy only starts as it did before: not fatal. */
  reply = qlean_qmp_client_execute_finish (QLEAN_QMP_CLIENT (source), result, &error);
  if (reply == NULL)
    {
      g_message ("machine %s: cannot keep the link down until it has its own MAC: %s",
                 qlean_machine_run_get_name (run), error->message);
      run->link_held_down = FALSE;
    }
}

void
qlean_machine_network_hold_link (QleanMachineRun *run)
{
  run->link_held_down = TRUE;
  set_backend_link (run, FALSE, link_held_cb, qlean_machine_run_ref (run));
}

void
qlean_machine_network_release_link (QleanMachineRun *run,
                                    GTask           *task)
{
  if (!run->link_held_down)
    {
      g_task_return_boolean (task, TRUE);
      return;
    }

  run->link_held_down = FALSE;
  /* Its error and result are those of qlean_machine_set_link(). */
  set_backend_link (run, TRUE, set_link_done_cb, g_object_ref (task));
}

/**
 * qlean_machine_set_link_async:
 * @self: a running #QleanMachine on a network
 * @up: %FALSE to unplug the machine's network cable, %TRUE to plug it back
 * @cancellable: (nullable): a #GCancellable
 * @callback: called once QEMU has changed the link
 * @user_data: data for @callback
 *
 * Cuts or restores the machine's link to its network, through QMP
 * `set_link` on its network card: while down, nothing goes in or out,
 * towards any machine, and the guest sees its interface lose carrier.
 * The guest keeps its address, so traffic resumes once the link is up.
 * To split a network into groups that still reach each other, use
 * [method@Pool.partition].
 *
 * Since: 0.1
 */
void
qlean_machine_set_link_async (QleanMachine        *self,
                              gboolean             up,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (QLEAN_IS_MACHINE (self));

  task = qlean_task_new (self, cancellable, callback, user_data,
                         qlean_machine_set_link_async, "[qlean] set link");
  g_task_set_task_data (task, GINT_TO_POINTER (!!up), NULL);

  qlean_task_run_in_worker (task, qlean_machine_set_link_in_worker);
}

/**
 * qlean_machine_set_link_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_machine_set_link_async().
 *
 * Returns: %TRUE once the link is changed
 *
 * Since: 0.1
 */
gboolean
qlean_machine_set_link_finish (QleanMachine  *self,
                               GAsyncResult  *result,
                               GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_set_link_async), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_machine_set_link:
 * @self: a running #QleanMachine on a network
 * @up: %FALSE to unplug the machine's network cable, %TRUE to plug it back
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_set_link_async().
 *
 * Returns: %TRUE once the link is changed
 *
 * Since: 0.1
 */
gboolean
qlean_machine_set_link (QleanMachine  *self,
                        gboolean       up,
                        GCancellable  *cancellable,
                        GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!qlean_sync_call_begin (&call, error))
    return FALSE;
  qlean_machine_set_link_async (self, up, cancellable, qlean_sync_call_done, &call);

  return qlean_machine_set_link_finish (self, qlean_sync_call_wait (&call), error);
}

/* Port forwarding (qlean_machine_forward_port) belongs here too: the lead
 * builds it over the qlean-guest data port, so that it works with and
 * without a network. */
