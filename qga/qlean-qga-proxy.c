/* qlean-qga-proxy.c: one guest agent, served to other processes
 *
 * What `qlean start` does for a machine that only has the stock guest
 * agent: the relay (channel/qlean-guest-relay.c) shares qlean-guest's
 * channel, and this shares the agent. See the header for the protocol.
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <string.h>
#include <glib/gstdio.h>
#include <gio/gunixsocketaddress.h>
#include <json-glib/json-glib.h>

#include "qlean-json-channel-private.h"
#include "qlean-json-framer-private.h"
#include "qlean-qga-client-private.h"
#include "qlean-qga-proxy-private.h"
#include "qlean-worker-private.h"

/* The longest request line a client may send: a guest-file-write of the
 * largest chunk Qlean writes, in base64, with room to spare. */
#define MAX_REQUEST_LINE (32 * 1024 * 1024)
#define SENTINEL 0xFF

struct _QleanQgaProxy
{
  QleanQgaClient *qga;
  GSocket        *socket;
  GSource        *accept_source;
  char           *path;
  GPtrArray      *clients;   /* of ProxyClient, owned */
};

/* One connected process. A GObject because the JSON channel holds its
 * owner while it is open. */
#define PROXY_TYPE_CLIENT (proxy_client_get_type ())
G_DECLARE_FINAL_TYPE (ProxyClient, proxy_client, PROXY, CLIENT, GObject)

struct _ProxyClient
{
  GObject           parent_instance;

  QleanQgaProxy    *proxy;      /* unowned; NULL once the proxy is gone */
  QleanJsonChannel *channel;
  GQueue            pending;    /* request lines (GBytes) not yet passed on */
  gboolean          busy;       /* one of its requests is at the agent */
};

G_DEFINE_FINAL_TYPE (ProxyClient, proxy_client, G_TYPE_OBJECT)

static void proxy_client_next (ProxyClient *client);

static void
proxy_client_finalize (GObject *object)
{
  ProxyClient *client = PROXY_CLIENT (object);

  g_queue_clear_full (&client->pending, (GDestroyNotify) g_bytes_unref);
  g_clear_pointer (&client->channel, qlean_json_channel_unref);

  G_OBJECT_CLASS (proxy_client_parent_class)->finalize (object);
}

static void
proxy_client_class_init (ProxyClientClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = proxy_client_finalize;
}

static void
proxy_client_init (ProxyClient *client)
{
  g_queue_init (&client->pending);
}

static void
proxy_client_send (ProxyClient *client,
                   gboolean     delimited,
                   JsonObject  *reply)
{
  g_autofree char *line = NULL;
  const char sentinel = (char) SENTINEL;
  gsize len;

  if (qlean_json_channel_is_closed (client->channel))
    return;

  line = qlean_json_object_to_line (reply, &len);
  if (delimited)
    qlean_json_channel_send (client->channel, &sentinel, 1);
  qlean_json_channel_send (client->channel, line, len);
}

static void
proxy_client_send_error (ProxyClient *client,
                         const char  *desc)
{
  g_autoptr(JsonObject) reply = json_object_new ();
  g_autoptr(JsonObject) error = json_object_new ();

  json_object_set_string_member (error, "class", "GenericError");
  json_object_set_string_member (error, "desc", desc);
  json_object_set_object_member (reply, "error", g_steal_pointer (&error));
  proxy_client_send (client, FALSE, reply);
}

static void
proxy_client_raw_cb (GObject      *source,
                     GAsyncResult *result,
                     gpointer      user_data)
{
  g_autoptr(ProxyClient) client = user_data;
  g_autoptr(JsonObject) reply = NULL;
  g_autoptr(GError) error = NULL;

  reply = qlean_qga_client_execute_raw_finish (QLEAN_QGA_CLIENT (source), result, &error);
  if (reply != NULL)
    proxy_client_send (client, FALSE, reply);
  else
    proxy_client_send_error (client, error->message);

  client->busy = FALSE;
  proxy_client_next (client);
}

/* guest-sync and guest-sync-delimited align the client's stream with
 * ours, not the agent's: they are answered here, with the client's id. */
static gboolean
proxy_client_answer_sync (ProxyClient *client,
                          const char  *command,
                          JsonObject  *arguments)
{
  g_autoptr(JsonObject) reply = NULL;
  gboolean delimited = g_strcmp0 (command, "guest-sync-delimited") == 0;
  JsonNode *id;

  if (!delimited && g_strcmp0 (command, "guest-sync") != 0)
    return FALSE;

  id = arguments != NULL ? json_object_get_member (arguments, "id") : NULL;
  reply = json_object_new ();
  json_object_set_member (reply, "return", id != NULL ? json_node_copy (id) : json_node_new (JSON_NODE_NULL));
  proxy_client_send (client, delimited, reply);
  return TRUE;
}

/* Passes the client's next request on, unless one is at the agent. */
static void
proxy_client_next (ProxyClient *client)
{
  while (!client->busy && client->proxy != NULL && !g_queue_is_empty (&client->pending))
    {
      g_autoptr(GBytes) line = g_queue_pop_head (&client->pending);
      g_autoptr(JsonObject) request = NULL;
      g_autoptr(GError) error = NULL;
      const char *data;
      const char *command;
      JsonObject *arguments;
      gsize len;

      /* The 0xFF a client sends before guest-sync-delimited resets the
       * agent's parser; it reaches us at the head of the next line. */
      data = g_bytes_get_data (line, &len);
      while (len > 0 && (guchar) data[0] == SENTINEL)
        {
          data++;
          len--;
        }
      if (len == 0)
        continue;

      request = qlean_json_parse_object (data, len, &error);
      command = request != NULL ? qlean_json_get_string (request, "execute") : NULL;
      if (command == NULL)
        {
          proxy_client_send_error (client, "Invalid JSON syntax: an object with \"execute\" was expected");
          continue;
        }
      arguments = qlean_json_get_object (request, "arguments");

      if (proxy_client_answer_sync (client, command, arguments))
        continue;

      client->busy = TRUE;
      qlean_qga_client_execute_raw_async (client->proxy->qga, command, arguments,
                                          proxy_client_raw_cb, g_object_ref (client));
    }
}

static void
proxy_client_line_cb (GObject      *owner,
                      GBytes       *line,
                      const GError *error)
{
  ProxyClient *client = PROXY_CLIENT (owner);

  if (line == NULL)
    {
      proxy_client_send_error (client, error->message);
      return;
    }

  g_queue_push_tail (&client->pending, g_bytes_ref (line));
  proxy_client_next (client);
}

static void
proxy_client_closed_cb (GObject      *owner,
                        const GError *error)
{
  ProxyClient *client = PROXY_CLIENT (owner);
  QleanQgaProxy *proxy = g_steal_pointer (&client->proxy);

  /* A request still at the agent comes back to a client that passes
   * nothing more on, whether or not the proxy is still there. */
  g_queue_clear_full (&client->pending, (GDestroyNotify) g_bytes_unref);
  if (proxy != NULL)
    g_ptr_array_remove (proxy->clients, client);
}

static gboolean
proxy_accept_cb (GSocket      *socket,
                 GIOCondition  condition,
                 gpointer      user_data)
{
  QleanQgaProxy *self = user_data;
  g_autoptr(GSocket) accepted = NULL;
  g_autoptr(GIOStream) stream = NULL;
  ProxyClient *client;

  accepted = g_socket_accept (socket, NULL, NULL);
  if (accepted == NULL)
    return G_SOURCE_CONTINUE;

  stream = G_IO_STREAM (g_socket_connection_factory_create_connection (accepted));
  client = g_object_new (PROXY_TYPE_CLIENT, NULL);
  client->proxy = self;
  client->channel = qlean_json_channel_new (stream, qlean_worker_get_context (), MAX_REQUEST_LINE,
                                            G_OBJECT (client), proxy_client_line_cb,
                                            proxy_client_closed_cb);
  g_ptr_array_add (self->clients, client);
  qlean_json_channel_start (client->channel);

  return G_SOURCE_CONTINUE;
}

QleanQgaProxy *
qlean_qga_proxy_new (QleanQgaClient  *qga,
                     const char      *socket_path,
                     GError         **error)
{
  g_autoptr(QleanQgaProxy) self = g_new0 (QleanQgaProxy, 1);
  g_autoptr(GSocketAddress) address = NULL;

  g_assert (qlean_worker_is_current ());

  self->qga = g_object_ref (qga);
  self->path = g_strdup (socket_path);
  self->clients = g_ptr_array_new_with_free_func (g_object_unref);
  self->socket = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, 0, error);
  if (self->socket == NULL)
    return NULL;

  address = g_unix_socket_address_new (socket_path);
  if (!g_socket_bind (self->socket, address, FALSE, error))
    {
      /* Whatever is at the path is not ours to remove. */
      g_clear_pointer (&self->path, g_free);
      return NULL;
    }
  if (!g_socket_listen (self->socket, error))
    return NULL;
  /* The socket gives root in the guest: only its owner may connect. */
  g_chmod (socket_path, 0600);

  g_socket_set_blocking (self->socket, FALSE);
  self->accept_source = g_socket_create_source (self->socket, G_IO_IN, NULL);
  g_source_set_callback (self->accept_source, (GSourceFunc) (void (*) (void)) proxy_accept_cb,
                         self, NULL);
  g_source_set_static_name (self->accept_source, "[qlean] guest agent proxy");
  g_source_attach (self->accept_source, qlean_worker_get_context ());

  return g_steal_pointer (&self);
}

void
qlean_qga_proxy_free (QleanQgaProxy *self)
{
  g_assert (qlean_worker_is_current ());

  qlean_clear_source (&self->accept_source);
  /* Clients whose request is at the agent finish it unanswered. */
  for (guint i = 0; i < self->clients->len; i++)
    {
      ProxyClient *client = g_ptr_array_index (self->clients, i);

      client->proxy = NULL;
      qlean_json_channel_close (client->channel, NULL);
    }
  g_ptr_array_unref (self->clients);
  if (self->socket != NULL)
    {
      g_socket_close (self->socket, NULL);
      g_object_unref (self->socket);
    }
  if (self->path != NULL)
    g_unlink (self->path);
  g_free (self->path);
  g_clear_object (&self->qga);
  g_free (self);
}
