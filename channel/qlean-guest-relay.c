/* qlean-guest-relay.c: serving a machine's qlean-guest to other processes
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include <gio/gunixsocketaddress.h>

#include "qlean-guest-relay-private.h"
#include "qlean-guest-stream-dispatch-private.h"
#include "qlean-json-channel-private.h"
#include "qlean-qga-error.h"
#include "qlean-worker-private.h"

#define READ_CHUNK (256 * 1024)

typedef struct _RelayClient RelayClient;

/* One client request, relayed as one stream of the machine's channel. */
typedef struct
{
  RelayClient      *client;     /* unowned: the client outlives its streams */
  guint32           id;         /* the client's id */
  guint8            request;
  gboolean          seen_done;
  gsize             owed_credit;
  QleanGuestStream *stream;
} RelayStream;

struct _RelayClient
{
  QleanGuestRelay *relay;
  GIOStream       *stream;
  GCancellable    *cancellable;
  GByteArray      *in;
  guint8          *read_buffer;
  GQueue           out;
  gboolean         writing;
  gboolean         greeted;
  gboolean         closed;
  gboolean         closing;     /* relay_client_close_later() is due */
  GHashTable      *streams;     /* client id -> RelayStream */
};

struct _QleanGuestRelay
{
  GObject            parent_instance;

  QleanGuestChannel *channel;
  GSocket           *socket;
  GSource           *accept_source;
  char              *path;
  GPtrArray         *clients;
};

G_DEFINE_FINAL_TYPE (QleanGuestRelay, qlean_guest_relay, G_TYPE_OBJECT)

static void relay_client_write_next (RelayClient *client);
static void relay_client_read (RelayClient *client);
static void relay_client_close_later (RelayClient *client);

static void
relay_client_send (RelayClient   *client,
                   guint8         type,
                   guint8         fd,
                   guint32        id,
                   gconstpointer  payload,
                   gsize          len)
{
  if (client->closed)
    return;

  g_queue_push_tail (&client->out, qlean_guest_frame_new (type, fd, id, payload, len));
  relay_client_write_next (client);
}

/* The guest's frame as the machine's channel handed it over: the payload
 * is queued itself, not copied, so that it counts against its stream on
 * that channel until the client took it. A client that stops reading
 * thus gets its process killed, or pauses a GET, like a local consumer
 * would (see "Receive side" in qlean-guest-channel.c), instead of
 * growing this queue. */
static void
relay_client_send_bytes (RelayClient *client,
                         guint8       type,
                         guint8       fd,
                         guint32      id,
                         GBytes      *payload)
{
  gsize len = g_bytes_get_size (payload);

  if (client->closed)
    return;

  g_queue_push_tail (&client->out, qlean_guest_frame_header_new (type, fd, id, len));
  if (len > 0)
    g_queue_push_tail (&client->out, g_bytes_ref (payload));
  relay_client_write_next (client);
}

static void
relay_stream_free (RelayStream *rs)
{
  if (rs->stream != NULL)
    {
      qlean_guest_stream_close (rs->stream);
      g_clear_pointer (&rs->stream, qlean_guest_stream_unref);
    }
  g_free (rs);
}

/* Which frame of the guest's ends the request (see the protocol header):
 * EXIT or ERROR for EXEC, DONE or ERROR for the others (a CONNECT's DONE
 * comes once both directions are closed), except GET. */
static gboolean
ends_stream (RelayStream *rs,
             guint8       type,
             guint8       fd)
{
  switch (type)
    {
    case QLEAN_GUEST_FRAME_EXIT:
    case QLEAN_GUEST_FRAME_ERROR:
      return TRUE;
    case QLEAN_GUEST_FRAME_DONE:
      /* GET's DONE carries the file's size; its data follows. */
      if (rs->request == QLEAN_GUEST_FRAME_GET)
        {
          rs->seen_done = TRUE;
          return FALSE;
        }
      return TRUE;
    case QLEAN_GUEST_FRAME_EOF:
      return rs->request == QLEAN_GUEST_FRAME_GET && rs->seen_done && fd == 1;
    default:
      return FALSE;
    }
}

static void
relay_stream_grant (RelayStream *rs)
{
  guint8 payload[4];

  if (rs->owed_credit == 0 || rs->stream == NULL ||
      qlean_guest_stream_get_unacked (rs->stream) >= QLEAN_GUEST_WINDOW)
    return;

  /* Credit the client for what the machine's channel took: its own
   * window with the guest keeps what is buffered here bounded. */
  payload[0] = rs->owed_credit & 0xff;
  payload[1] = (rs->owed_credit >> 8) & 0xff;
  payload[2] = (rs->owed_credit >> 16) & 0xff;
  payload[3] = (rs->owed_credit >> 24) & 0xff;
  relay_client_send (rs->client, QLEAN_GUEST_FRAME_CREDIT, 0, rs->id, payload, sizeof payload);
  rs->owed_credit = 0;
}

static gboolean
relay_stream_writable_cb (gpointer user_data)
{
  relay_stream_grant (user_data);
  return G_SOURCE_REMOVE;
}

static void
relay_stream_closed (QleanGuestStream *stream,
                     const GError     *error,
                     gpointer          user_data)
{
  RelayStream *rs = user_data;
  RelayClient *client = rs->client;
  guint32 id = rs->id;
  g_autoptr(GByteArray) bytes = NULL;
  guint8 err[4] = { 0, 0, 0, 0 };

  if (g_error_matches (error, QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_DISCONNECTED))
    {
      /* The machine's channel closed: the machine is gone (or going),
       * and this relay can do nothing more for the client. Its
       * connection ends, as when the owner dies, so that its library
       * fails every request as lost: an ERROR frame would read as the
       * guest's own failure of one request, and a process that already
       * started would leave its output pipes open. */
      g_clear_pointer (&rs->stream, qlean_guest_stream_unref);
      g_hash_table_remove (client->streams, GUINT_TO_POINTER (id));
      relay_client_close_later (client);
      return;
    }

  /* The machine's channel closed, or failed the stream (the client
   * left too much of the guest's output unread): end the request with
   * an error. */
  bytes = g_byte_array_new ();
  err[0] = g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE) ? ENOSPC : EIO;
  g_byte_array_append (bytes, err, sizeof err);
  g_byte_array_append (bytes, (const guint8 *) error->message, strlen (error->message));
  g_clear_pointer (&rs->stream, qlean_guest_stream_unref);
  relay_client_send (client, QLEAN_GUEST_FRAME_ERROR, 0, id, bytes->data, bytes->len);
  g_hash_table_remove (client->streams, GUINT_TO_POINTER (id));
}

/* Every frame of the guest goes to the client as it came. */
static void
relay_stream_frame (QleanGuestStream *stream,
                    guint8            type,
                    guint8            fd,
                    GBytes           *payload,
                    gpointer          user_data)
{
  RelayStream *rs = user_data;
  RelayClient *client = rs->client;
  guint32 id = rs->id;

  relay_client_send_bytes (client, type, fd, id, payload);
  if (ends_stream (rs, type, fd))
    g_hash_table_remove (client->streams, GUINT_TO_POINTER (id));
}

static const QleanGuestStreamHandlers relay_stream_handlers = {
  .closed = relay_stream_closed,
  .frame = relay_stream_frame,
};

static void
relay_stream_cb (QleanGuestStream *stream,
                 guint8            type,
                 guint8            fd,
                 GBytes           *payload,
                 const GError     *error,
                 gpointer          user_data)
{
  qlean_guest_stream_dispatch (&relay_stream_handlers, stream, type, fd, payload, error, user_data);
}

/* Whether an EXEC request asks for a terminal (FLAG_TERMINAL). */
static gboolean
exec_wants_terminal (GBytes *request)
{
  QleanGuestTlvIter iter;
  guint16 tag;
  const guint8 *value;
  gsize len;
  gboolean malformed = FALSE;
  gboolean terminal = FALSE;

  qlean_guest_tlv_iter_init (&iter, request);
  while (qlean_guest_tlv_iter_next (&iter, &tag, &value, &len, &malformed))
    if (tag == QLEAN_GUEST_TAG_FLAGS && len == 4)
      terminal = (qlean_guest_read_u32 (value) & QLEAN_GUEST_FLAG_TERMINAL) != 0;
  return terminal;
}

static void
relay_client_reset (RelayClient *client)
{
  GHashTableIter iter;
  RelayStream *rs;

  /* As the guest does on a new HELLO: what the old session started goes
   * (a signal resets a CONNECT's socket). */
  g_hash_table_iter_init (&iter, client->streams);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &rs))
    if (rs->stream != NULL &&
        (rs->request == QLEAN_GUEST_FRAME_EXEC || rs->request == QLEAN_GUEST_FRAME_CONNECT))
      qlean_guest_stream_send_signal (rs->stream, SIGKILL);
  g_hash_table_remove_all (client->streams);
}

static gboolean
relay_client_frame_cb (guint8        type,
                       guint8        fd,
                       guint32       id,
                       const guint8 *payload,
                       gsize         len,
                       gpointer      user_data)
{
  RelayClient *client = user_data;
  RelayStream *rs;

  if (id == 0)
    {
      if (type == QLEAN_GUEST_FRAME_HELLO && len >= 8)
        {
          guint8 answer[16];
          guint32 version = QLEAN_GUEST_VERSION;
          guint32 pid = (guint32) getpid ();

          relay_client_reset (client);
          memcpy (answer, payload, 8);
          for (int i = 0; i < 4; i++)
            {
              answer[8 + i] = (version >> (8 * i)) & 0xff;
              answer[12 + i] = (pid >> (8 * i)) & 0xff;
            }
          client->greeted = TRUE;
          relay_client_send (client, QLEAN_GUEST_FRAME_HELLO, 0, 0, answer, sizeof answer);
        }
      return !client->closed;
    }

  if (!client->greeted)
    return TRUE;

  rs = g_hash_table_lookup (client->streams, GUINT_TO_POINTER (id));
  if (rs == NULL)
    {
      g_autoptr(GBytes) request = NULL;

      switch (type)
        {
        case QLEAN_GUEST_FRAME_EXEC:
        case QLEAN_GUEST_FRAME_PUT:
        case QLEAN_GUEST_FRAME_GET:
        case QLEAN_GUEST_FRAME_FS:
        case QLEAN_GUEST_FRAME_CONNECT:
          break;
        default:
          return TRUE;  /* late frames of a finished request */
        }

      request = g_bytes_new (payload, len);
      /* The relay answers HELLO with its own version, so its clients
       * cannot see that the guest behind it is too old for a terminal,
       * which would run the command without one: refuse here. */
      if (type == QLEAN_GUEST_FRAME_EXEC && exec_wants_terminal (request) &&
          qlean_guest_channel_get_guest_version (client->relay->channel) < 3)
        {
          g_autofree char *message =
            g_strdup_printf ("qlean-guest in the machine speaks protocol version %u, too old "
                             "for a terminal (version 3); restart the machine with this Qlean",
                             qlean_guest_channel_get_guest_version (client->relay->channel));
          g_autoptr(GByteArray) bytes = g_byte_array_new ();
          guint8 err[4] = { ENOTSUP & 0xff, (ENOTSUP >> 8) & 0xff, 0, 0 };

          g_byte_array_append (bytes, err, sizeof err);
          g_byte_array_append (bytes, (const guint8 *) message, strlen (message));
          relay_client_send (client, QLEAN_GUEST_FRAME_ERROR, 0, id, bytes->data, bytes->len);
          return !client->closed;
        }

      rs = g_new0 (RelayStream, 1);
      rs->client = client;
      rs->id = id;
      rs->request = type;
      g_hash_table_insert (client->streams, GUINT_TO_POINTER (id), rs);
      rs->stream = qlean_guest_channel_open_stream (client->relay->channel, type, request,
                                                    relay_stream_cb, rs, NULL);
      qlean_guest_stream_set_writable_func (rs->stream, relay_stream_writable_cb, rs);
      return TRUE;
    }

  if (rs->stream == NULL)
    return TRUE;

  switch (type)
    {
    case QLEAN_GUEST_FRAME_DATA:
      {
        g_autoptr(GBytes) data = g_bytes_new (payload, len);

        qlean_guest_stream_send_data (rs->stream, data);
        rs->owed_credit += len;
        relay_stream_grant (rs);
        break;
      }
    case QLEAN_GUEST_FRAME_EOF:
      qlean_guest_stream_send_eof (rs->stream);
      break;
    case QLEAN_GUEST_FRAME_SIGNAL:
      if (len >= 4)
        qlean_guest_stream_send_signal (rs->stream, (int) qlean_guest_read_u32 (payload));
      break;
    case QLEAN_GUEST_FRAME_WINSIZE:
      if (len >= 4 && rs->request == QLEAN_GUEST_FRAME_EXEC)
        qlean_guest_stream_send_window_size (rs->stream, payload[0] | (payload[1] << 8),
                                             payload[2] | (payload[3] << 8));
      break;
    case QLEAN_GUEST_FRAME_CREDIT:
      /* A CONNECT's client acknowledges its DATA fd 1: passed on, so the
       * guest's window, not this relay, bounds what is buffered here. */
      if (fd == 1 && len >= 4 && rs->request == QLEAN_GUEST_FRAME_CONNECT)
        qlean_guest_stream_send_credit (rs->stream, qlean_guest_read_u32 (payload));
      break;
    default:
      break;
    }

  return TRUE;
}

static void
relay_client_close (RelayClient *client)
{
  QleanGuestRelay *relay = client->relay;

  if (client->closed)
    return;

  client->closed = TRUE;
  g_cancellable_cancel (client->cancellable);
  g_io_stream_close (client->stream, NULL, NULL);
  /* A client that went away leaves no process behind. */
  relay_client_reset (client);
  g_ptr_array_remove (relay->clients, client);
}

static void
relay_client_free (RelayClient *client)
{
  g_clear_pointer (&client->streams, g_hash_table_unref);
  g_queue_clear_full (&client->out, (GDestroyNotify) g_bytes_unref);
  g_clear_pointer (&client->in, g_byte_array_unref);
  g_clear_pointer (&client->read_buffer, g_free);
  g_clear_object (&client->cancellable);
  g_clear_object (&client->stream);
  g_clear_object (&client->relay);
  g_free (client);
}

/* Pending reads and writes each hold the client; they finish after a
 * close (cancelled), and the last one frees it. */
static void
relay_client_unref_io (RelayClient *client)
{
  gint *pending = g_object_get_data (G_OBJECT (client->cancellable), "qlean-io");

  if (--(*pending) == 0 && client->closed)
    relay_client_free (client);
}

static void
relay_client_ref_io (RelayClient *client)
{
  gint *pending = g_object_get_data (G_OBJECT (client->cancellable), "qlean-io");

  (*pending)++;
}

static gboolean
relay_client_close_cb (gpointer user_data)
{
  RelayClient *client = user_data;

  client->closing = FALSE;
  relay_client_close (client);
  relay_client_unref_io (client);
  return G_SOURCE_REMOVE;
}

/* Closes @client from an idle: the machine's channel calls every stream
 * back as it closes, and closing at once would free the client's other
 * streams before their turn. */
static void
relay_client_close_later (RelayClient *client)
{
  GSource *source;

  if (client->closed || client->closing)
    return;

  client->closing = TRUE;
  relay_client_ref_io (client);
  source = g_idle_source_new ();
  g_source_set_callback (source, relay_client_close_cb, client, NULL);
  g_source_set_static_name (source, "[qlean] relay client of a closed channel");
  g_source_attach (source, qlean_worker_get_context ());
  g_source_unref (source);
}

static void
relay_client_read_cb (GObject      *source,
                      GAsyncResult *result,
                      gpointer      user_data)
{
  RelayClient *client = user_data;
  gssize n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, NULL);

  if (!client->closed)
    {
      if (n <= 0)
        relay_client_close (client);
      else
        {
          gsize consumed;

          g_byte_array_append (client->in, client->read_buffer, n);
          consumed = qlean_guest_frames_parse (client->in->data, client->in->len,
                                               relay_client_frame_cb, client);
          g_byte_array_remove_range (client->in, 0, consumed);
          relay_client_read (client);
        }
    }

  relay_client_unref_io (client);
}

static void
relay_client_read (RelayClient *client)
{
  if (client->closed)
    return;

  relay_client_ref_io (client);
  g_input_stream_read_async (g_io_stream_get_input_stream (client->stream),
                             client->read_buffer, READ_CHUNK, G_PRIORITY_DEFAULT,
                             client->cancellable, relay_client_read_cb, client);
}

static void
relay_client_write_cb (GObject      *source,
                       GAsyncResult *result,
                       gpointer      user_data)
{
  RelayClient *client = user_data;

  client->writing = FALSE;
  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, NULL))
    relay_client_close (client);
  else if (!client->closed)
    {
      g_bytes_unref (g_queue_pop_head (&client->out));
      relay_client_write_next (client);
    }

  relay_client_unref_io (client);
}

static void
relay_client_write_next (RelayClient *client)
{
  GBytes *head;
  gsize len;
  gconstpointer data;

  if (client->writing || client->closed)
    return;

  head = g_queue_peek_head (&client->out);
  if (head == NULL)
    return;

  data = g_bytes_get_data (head, &len);
  client->writing = TRUE;
  relay_client_ref_io (client);
  g_output_stream_write_all_async (g_io_stream_get_output_stream (client->stream), data, len,
                                   G_PRIORITY_DEFAULT, client->cancellable,
                                   relay_client_write_cb, client);
}

static gboolean
qlean_guest_relay_accept_cb (GSocket      *socket,
                             GIOCondition  condition,
                             gpointer      user_data)
{
  QleanGuestRelay *self = user_data;
  g_autoptr(GSocket) accepted = NULL;
  RelayClient *client;

  accepted = g_socket_accept (socket, NULL, NULL);
  if (accepted == NULL)
    return G_SOURCE_CONTINUE;

  client = g_new0 (RelayClient, 1);
  client->relay = g_object_ref (self);
  client->stream = G_IO_STREAM (g_socket_connection_factory_create_connection (accepted));
  client->cancellable = g_cancellable_new ();
  g_object_set_data_full (G_OBJECT (client->cancellable), "qlean-io", g_new0 (gint, 1), g_free);
  client->in = g_byte_array_new ();
  client->read_buffer = g_malloc (READ_CHUNK);
  g_queue_init (&client->out);
  client->streams = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify) relay_stream_free);
  g_ptr_array_add (self->clients, client);

  relay_client_read (client);
  return G_SOURCE_CONTINUE;
}

static void
qlean_guest_relay_finalize (GObject *object)
{
  QleanGuestRelay *self = QLEAN_GUEST_RELAY (object);

  g_assert (self->clients->len == 0);
  g_ptr_array_unref (self->clients);
  qlean_clear_source (&self->accept_source);
  g_clear_object (&self->socket);
  g_clear_object (&self->channel);
  g_free (self->path);

  G_OBJECT_CLASS (qlean_guest_relay_parent_class)->finalize (object);
}

static void
qlean_guest_relay_class_init (QleanGuestRelayClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = qlean_guest_relay_finalize;
}

static void
qlean_guest_relay_init (QleanGuestRelay *self)
{
  self->clients = g_ptr_array_new ();
}

QleanGuestRelay *
qlean_guest_relay_new (QleanGuestChannel  *channel,
                       const char         *socket_path,
                       GError            **error)
{
  g_autoptr(QleanGuestRelay) self = g_object_new (QLEAN_TYPE_GUEST_RELAY, NULL);
  g_autoptr(GSocketAddress) address = NULL;

  g_assert (qlean_worker_is_current ());

  self->channel = g_object_ref (channel);
  self->path = g_strdup (socket_path);
  self->socket = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, 0, error);
  if (self->socket == NULL)
    return NULL;

  address = g_unix_socket_address_new (socket_path);
  if (!g_socket_bind (self->socket, address, FALSE, error) ||
      !g_socket_listen (self->socket, error))
    return NULL;
  /* The socket gives root in the guest: only its owner may connect. */
  g_chmod (socket_path, 0600);

  g_socket_set_blocking (self->socket, FALSE);
  self->accept_source = g_socket_create_source (self->socket, G_IO_IN, NULL);
  g_source_set_callback (self->accept_source,
                         (GSourceFunc) (void (*) (void)) qlean_guest_relay_accept_cb,
                         self, NULL);
  g_source_attach (self->accept_source, qlean_worker_get_context ());

  return g_steal_pointer (&self);
}

void
qlean_guest_relay_close (QleanGuestRelay *self)
{
  g_assert (qlean_worker_is_current ());

  qlean_clear_source (&self->accept_source);
  while (self->clients->len > 0)
    relay_client_close (g_ptr_array_index (self->clients, 0));
  if (self->socket != NULL)
    g_socket_close (self->socket, NULL);
  if (self->path != NULL)
    g_unlink (self->path);
}
