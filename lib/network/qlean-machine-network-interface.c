/* qlean-machine-network-interface.c: waiting for a guest's network card
 *
 * The agent's view of the guest's interfaces (guest-network-get-interfaces),
 * polled until the card a machine was given shows, with an address when
 * asked: what the network stage's script way waits for before it runs,
 * and what qlean_machine_get_ip() reads.
 *
 * Apart from qlean-machine-network.c because it only reads the guest's
 * side and knows nothing of networks or boot stages.
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>

#include "qlean-json-framer-private.h"
#include "qlean-machine-network-private.h"
#include "qlean-qga-client.h"
#include "qlean-task-private.h"
#include "qlean-worker-private.h"

/* Between two looks at the guest's interfaces. */
#define INTERFACE_POLL_MS 50

typedef struct
{
  QleanQgaClient *qga;
  char           *mac_address;   /* NULL: any interface but loopback */
  char           *or_mac_address; /* NULL, or another MAC that will do */
  gboolean        need_ipv4;
  gint64          deadline;
  char           *seen;          /* what the guest showed last, for errors */
} InterfaceWait;

static void
interface_wait_free (InterfaceWait *wait)
{
  g_clear_object (&wait->qga);
  g_free (wait->mac_address);
  g_free (wait->or_mac_address);
  g_free (wait->seen);
  g_free (wait);
}

void
qlean_interface_found_free (QleanInterfaceFound *found)
{
  g_free (found->name);
  g_free (found->ipv4);
  g_free (found);
}

/* The guest writes the reply: every member may be missing or of another
 * type, which the typed getters read as missing. */
static const char *
first_ipv4 (JsonObject *interface)
{
  JsonArray *addresses = qlean_json_get_array (interface, "ip-addresses");

  for (guint i = 0; addresses != NULL && i < json_array_get_length (addresses); i++)
    {
      JsonObject *address = qlean_json_array_get_object (addresses, i);
      const char *ip = qlean_json_get_string (address, "ip-address");

      if (ip != NULL && g_strcmp0 (qlean_json_get_string (address, "ip-address-type"), "ipv4") == 0)
        return ip;
    }

  return NULL;
}

/*
 * qlean_machine_network_match_interface:
 * @interfaces: (nullable): the reply to `guest-network-get-interfaces`
 * @mac_address: (nullable): the MAC address to look for; %NULL for any
 *   interface but loopback
 * @need_ipv4: whether the interface must have an IPv4 address
 * @name: (out): the interface's name
 * @ipv4: (out) (nullable): its first IPv4 address
 * @seen: (out): what the guest showed, for an error message
 *
 * Returns: whether the interface is there
 */
gboolean
qlean_machine_network_match_interface (JsonArray   *interfaces,
                                       const char  *mac_address,
                                       gboolean     need_ipv4,
                                       char       **name,
                                       char       **ipv4,
                                       char       **seen)
{
  GString *shown = g_string_new (NULL);
  gboolean found = FALSE;

  *name = NULL;
  *ipv4 = NULL;

  for (guint i = 0; interfaces != NULL && i < json_array_get_length (interfaces); i++)
    {
      JsonObject *interface = qlean_json_array_get_object (interfaces, i);
      const char *if_name, *mac, *address;

      if (interface == NULL)
        continue;

      if_name = qlean_json_get_string (interface, "name");
      mac = qlean_json_get_string (interface, "hardware-address");
      address = first_ipv4 (interface);
      g_string_append_printf (shown, "%s%s (%s, %s)", shown->len ? ", " : "",
                              if_name ? if_name : "?", mac && *mac ? mac : "no MAC",
                              address ? address : "no IPv4");

      /* An interface without a name cannot be configured. */
      if (found || if_name == NULL)
        continue;
      if (mac_address != NULL ? g_ascii_strcasecmp (mac ? mac : "", mac_address) != 0
                              : (g_str_equal (if_name, "lo") || g_str_has_prefix (address ? address : "", "127.")))
        continue;
      if (need_ipv4 && address == NULL)
        continue;

      found = TRUE;
      *name = g_strdup (if_name);
      *ipv4 = g_strdup (address);
    }

  *seen = g_string_free (shown, FALSE);
  return found;
}

/* The interface with @mac_address in @interfaces, or NULL; notes what
 * the guest showed. */
static QleanInterfaceFound *
match_one (InterfaceWait *wait,
           JsonArray     *interfaces,
           const char    *mac_address)
{
  g_autofree char *name = NULL;
  g_autofree char *ipv4 = NULL;
  QleanInterfaceFound *found;

  g_free (wait->seen);
  if (!qlean_machine_network_match_interface (interfaces, mac_address, wait->need_ipv4,
                                              &name, &ipv4, &wait->seen))
    return NULL;

  found = g_new0 (QleanInterfaceFound, 1);
  found->name = g_steal_pointer (&name);
  found->ipv4 = g_steal_pointer (&ipv4);
  return found;
}

/* The interface the wait is for, or NULL. */
static QleanInterfaceFound *
match_interface (InterfaceWait *wait,
                 JsonArray     *interfaces)
{
  QleanInterfaceFound *found = match_one (wait, interfaces, wait->mac_address);

  if (found == NULL && wait->or_mac_address != NULL)
    found = match_one (wait, interfaces, wait->or_mac_address);
  return found;
}

static void interface_wait_step (GTask *task);

static gboolean
interface_wait_timer_cb (gpointer user_data)
{
  interface_wait_step (G_TASK (user_data));
  return G_SOURCE_REMOVE;
}

static void
interface_wait_reply_cb (GObject      *source,
                         GAsyncResult *result,
                         gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  InterfaceWait *wait = g_task_get_task_data (task);
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;
  QleanInterfaceFound *found;
  GSource *timer;

  reply = qlean_qga_client_execute_finish (QLEAN_QGA_CLIENT (source), result, &error);
  if (reply == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  found = match_interface (wait, JSON_NODE_HOLDS_ARRAY (reply) ? json_node_get_array (reply) : NULL);
  if (found != NULL)
    {
      g_task_return_pointer (task, found, (GDestroyNotify) qlean_interface_found_free);
      return;
    }

  if (g_get_monotonic_time () >= wait->deadline)
    {
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                               "%s", wait->seen ? wait->seen : "");
      return;
    }

  timer = g_timeout_source_new (INTERFACE_POLL_MS);
  g_source_set_callback (timer, interface_wait_timer_cb, g_steal_pointer (&task), g_object_unref);
  g_source_set_static_name (timer, "[qlean] interface poll");
  g_source_attach (timer, qlean_worker_get_context ());
  g_source_unref (timer);
}

static void
interface_wait_step (GTask *task)
{
  InterfaceWait *wait = g_task_get_task_data (task);

  if (g_task_return_error_if_cancelled (task))
    return;

  qlean_qga_client_execute_async (wait->qga, "guest-network-get-interfaces", NULL,
                                  g_task_get_cancellable (task), interface_wait_reply_cb,
                                  g_object_ref (task));
}

/* On the worker: polls guest-network-get-interfaces until the interface
 * with @mac_address (any but loopback when NULL), or @or_mac_address,
 * shows, with an IPv4 address when @need_ipv4. Fails with G_IO_ERROR_TIMED_OUT and what the
 * guest showed as its message: empty when it showed no interface, so
 * that callers say so in a sentence of their own. */
void
qlean_machine_wait_interface_async (gpointer             source_object,
                      QleanQgaClient      *qga,
                      const char          *mac_address,
                      const char          *or_mac_address,
                      gboolean             need_ipv4,
                      GCancellable        *cancellable,
                      GAsyncReadyCallback  callback,
                      gpointer             user_data)
{
  g_autoptr(GTask) task = qlean_task_new (source_object, cancellable, callback, user_data,
                                          qlean_machine_wait_interface_async,
                                          "[qlean] wait for the guest's interface");
  InterfaceWait *wait = g_new0 (InterfaceWait, 1);

  wait->qga = g_object_ref (qga);
  wait->mac_address = g_strdup (mac_address);
  wait->or_mac_address = g_strdup (or_mac_address);
  wait->need_ipv4 = need_ipv4;
  wait->deadline = g_get_monotonic_time () + QLEAN_INTERFACE_WAIT_MS * G_TIME_SPAN_MILLISECOND;
  g_task_set_task_data (task, wait, (GDestroyNotify) interface_wait_free);

  interface_wait_step (task);
}

QleanInterfaceFound *
qlean_machine_wait_interface_finish (GAsyncResult  *result,
                       GError       **error)
{
  return g_task_propagate_pointer (G_TASK (result), error);
}
