/* qlean-machine-forward.c: local TCP ports forwarded to a machine's ports
 *
 * SPDX-License-Identifier: MIT
 *
 * A forward is a listening socket on 127.0.0.1 of the host (or a unix
 * socket, which only its owner may reach), on Qlean's worker thread. Each connection it accepts becomes one CONNECT stream
 * of the machine's data channel (guest/qlean-guest-protocol.h): qlean-guest
 * connects to the port on the guest's own loopback and the two sockets
 * are pumped into each other. So a forward needs no network card, no
 * QEMU user networking and no route from the host to the guest: it works
 * the same with a pool network, without one, and for a machine attached
 * through `qlean start`'s socket, since the relay passes CONNECT on.
 *
 * Buffering is bounded both ways by the protocol's credit window: the
 * local socket is read only while the guest has room, and what the guest
 * sends is acknowledged only once the local socket took it. A guest that
 * sends beyond its window has its connection failed by the channel (see
 * "Receive side" in channel/qlean-guest-channel.c) and the client is reset,
 * so the host never holds more than a window per connection.
 *
 * Who may connect: 127.0.0.1 has no owner, so a TCP forward is open to
 * every user and process of the host, as any local server is. A unix
 * socket forward is made mode 0600 (in a directory of mode 0700 unless
 * the caller names the path), so only our uid (and root) reaches it.
 */

#include "config.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <glib/gstdio.h>
#include <glib/gi18n-lib.h>
#include <gio/gunixsocketaddress.h>

#include "qlean-error.h"
#include "qlean-guest-channel-private.h"
#include "qlean-guest-stream-dispatch-private.h"
#include "qlean-json-channel-private.h"
#include "qlean-machine-private.h"
#include "qlean-machine-run-private.h"
#include "qlean-sync-private.h"
#include "qlean-task-private.h"
#include "qlean-worker-private.h"
#include "qlean-errno-private.h"

#define FORWARDS_KEY "qlean-machine-forwards"
#define READ_CHUNK (64 * 1024)
/* How long a connection waits for qlean-guest to answer again, after a
 * guest reboot made the channel say HELLO anew. */
#define CHANNEL_WAIT_MS 5000

typedef struct _Forward Forward;

/* One accepted connection and its CONNECT stream. */
typedef struct
{
  Forward          *forward;      /* unowned: a forward frees its connections first */
  GSocket          *socket;
  QleanGuestStream *stream;       /* NULL until opened, and once the stream ended */
  gboolean          stream_done;  /* DONE or ERROR came: nothing to reset in the guest */
  GSource          *read_source;
  GSource          *write_source;
  GQueue            out;          /* GBytes from the guest, not yet written here */
  gsize             out_offset;
  gboolean          local_eof;    /* the client finished sending: EOF fd 0 queued */
  gboolean          guest_eof;    /* EOF fd 1 came */
  gboolean          write_shut;
} Conn;

struct _Forward
{
  int                ref_count;   /* worker only */
  char              *machine_name;
  guint16            host_port;   /* 0 for a unix socket */
  char              *socket_path; /* a unix socket's, absolute */
  char              *socket_dir;  /* the directory we made for it, or NULL */
  guint16            guest_port;
  QleanGuestChannel *channel;
  GSocket           *listener;
  GSource           *accept_source;
  GPtrArray         *conns;       /* Conn, freed with the forward */
};

static guint8 read_buffer[READ_CHUNK];   /* worker only */

static void conn_watch_read (Conn *conn);
static void conn_flush      (Conn *conn);

static Forward *
forward_ref (Forward *forward)
{
  forward->ref_count++;
  return forward;
}

static void
forward_unref (Forward *forward)
{
  if (--forward->ref_count > 0)
    return;

  g_assert (forward->listener == NULL && forward->conns == NULL);
  g_clear_object (&forward->channel);
  g_free (forward->machine_name);
  g_free (forward->socket_path);
  g_free (forward->socket_dir);
  g_free (forward);
}

static void
conn_free (Conn *conn)
{
  qlean_clear_source (&conn->read_source);
  qlean_clear_source (&conn->write_source);
  if (conn->stream != NULL)
    {
      /* A connection given up halfway resets the guest's side too, so
       * that the server there sees what a client here would have seen. */
      if (!conn->stream_done)
        qlean_guest_stream_send_signal (conn->stream, SIGKILL);
      qlean_guest_stream_close (conn->stream);
      g_clear_pointer (&conn->stream, qlean_guest_stream_unref);
    }
  g_queue_clear_full (&conn->out, (GDestroyNotify) g_bytes_unref);
  if (conn->socket != NULL)
    g_socket_close (conn->socket, NULL);
  g_clear_object (&conn->socket);
  g_free (conn);
}

/* Ends the connection now; with @reset the client sees a reset rather
 * than an orderly end (the guest's server or connection failed). */
static void
conn_end (Conn     *conn,
          gboolean  reset)
{
  if (reset && conn->socket != NULL)
    {
      struct linger lg = { .l_onoff = 1, .l_linger = 0 };

      setsockopt (g_socket_get_fd (conn->socket), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
  /* Removing it from its forward frees it. */
  g_ptr_array_remove_fast (conn->forward->conns, conn);
}

static void
conn_maybe_done (Conn *conn)
{
  if (conn->stream_done && g_queue_is_empty (&conn->out))
    conn_end (conn, FALSE);
}

static gboolean
conn_write_cb (GSocket      *socket,
               GIOCondition  condition,
               gpointer      user_data)
{
  Conn *conn = user_data;

  g_clear_pointer (&conn->write_source, g_source_unref);
  conn_flush (conn);
  return G_SOURCE_REMOVE;
}

/* Writes what the guest sent to the client, acknowledging each byte the
 * socket takes: the guest sends no more than a window ahead of us. Then,
 * after the guest's EOF, ends our sending side. FALSE when the client
 * went away; never frees @conn. */
static gboolean
conn_write_out (Conn    *conn,
                GError **error)
{
  while (!g_queue_is_empty (&conn->out))
    {
      g_autoptr(GError) local_error = NULL;
      GBytes *head = g_queue_peek_head (&conn->out);
      gsize len;
      const guint8 *data = g_bytes_get_data (head, &len);
      gssize n = g_socket_send (conn->socket, (const char *) data + conn->out_offset,
                                len - conn->out_offset, NULL, &local_error);

      if (n < 0 && g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        {
          if (conn->write_source == NULL)
            {
              conn->write_source = g_socket_create_source (conn->socket, G_IO_OUT, NULL);
              g_source_set_callback (conn->write_source,
                                     (GSourceFunc) (void (*) (void)) conn_write_cb, conn, NULL);
              g_source_set_static_name (conn->write_source, "[qlean] forward write");
              g_source_attach (conn->write_source, qlean_worker_get_context ());
            }
          return TRUE;
        }

      if (n < 0)
        {
          g_propagate_error (error, g_steal_pointer (&local_error));
          return FALSE;
        }

      if (conn->stream != NULL)
        qlean_guest_stream_send_credit (conn->stream, (guint32) n);
      conn->out_offset += n;
      if (conn->out_offset == len)
        {
          g_bytes_unref (g_queue_pop_head (&conn->out));
          conn->out_offset = 0;
        }
    }

  if (conn->guest_eof && !conn->write_shut)
    {
      conn->write_shut = TRUE;
      g_socket_shutdown (conn->socket, FALSE, TRUE, NULL);
    }

  return TRUE;
}

static void
conn_flush (Conn *conn)
{
  g_autoptr(GError) error = NULL;

  if (!conn_write_out (conn, &error))
    {
      /* The client went away while the guest still had things to say. */
      g_debug ("Port %u of machine “%s”: the local client went away: %s",
               conn->forward->host_port, conn->forward->machine_name, error->message);
      conn_end (conn, FALSE);
      return;
    }

  conn_maybe_done (conn);
}

static gboolean
conn_read_cb (GSocket      *socket,
              GIOCondition  condition,
              gpointer      user_data)
{
  Conn *conn = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) bytes = NULL;
  gssize n;

  n = g_socket_receive (socket, (char *) read_buffer, sizeof read_buffer, NULL, &error);
  if (n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
    return G_SOURCE_CONTINUE;

  if (n < 0)
    {
      g_debug ("Port %u of machine “%s”: reading from the local client failed: %s",
               conn->forward->host_port, conn->forward->machine_name, error->message);
      g_clear_pointer (&conn->read_source, g_source_unref);
      conn_end (conn, FALSE);
      return G_SOURCE_REMOVE;
    }

  if (n == 0)
    {
      g_clear_pointer (&conn->read_source, g_source_unref);
      conn->local_eof = TRUE;
      if (conn->stream != NULL)
        qlean_guest_stream_send_eof (conn->stream);
      return G_SOURCE_REMOVE;
    }

  bytes = g_bytes_new (read_buffer, n);
  qlean_guest_stream_send_data (conn->stream, bytes);

  /* The guest's window is full: wait for its credit (see conn_writable_cb). */
  if (qlean_guest_stream_get_unacked (conn->stream) >= QLEAN_GUEST_WINDOW)
    {
      g_clear_pointer (&conn->read_source, g_source_unref);
      return G_SOURCE_REMOVE;
    }

  return G_SOURCE_CONTINUE;
}

static void
conn_watch_read (Conn *conn)
{
  if (conn->read_source != NULL || conn->local_eof || conn->stream == NULL ||
      qlean_guest_stream_get_unacked (conn->stream) >= QLEAN_GUEST_WINDOW)
    return;

  conn->read_source = g_socket_create_source (conn->socket, G_IO_IN | G_IO_HUP | G_IO_ERR, NULL);
  g_source_set_callback (conn->read_source, (GSourceFunc) (void (*) (void)) conn_read_cb, conn, NULL);
  g_source_set_static_name (conn->read_source, "[qlean] forward read");
  g_source_attach (conn->read_source, qlean_worker_get_context ());
}

static gboolean
conn_writable_cb (gpointer user_data)
{
  conn_watch_read (user_data);
  return G_SOURCE_REMOVE;
}

/* The stream failed: the channel closed under it, or the guest's
 * connection did (ERROR). Nothing is left to reset in the guest; the
 * client gets what the guest had sent, then a reset. */
static void
conn_stream_failed (Conn         *conn,
                    const GError *failure)
{
  g_debug ("Port %u of machine “%s” (guest port %u): %s", conn->forward->host_port,
           conn->forward->machine_name, conn->forward->guest_port, failure->message);
  conn->stream_done = TRUE;
  if (conn->write_source == NULL)
    conn_write_out (conn, NULL);
  conn_end (conn, TRUE);
}

static void
conn_stream_closed (QleanGuestStream *stream,
                    const GError     *error,
                    gpointer          user_data)
{
  conn_stream_failed (user_data, error);
}

static void
conn_stream_error (QleanGuestStream *stream,
                   GBytes           *payload,
                   gpointer          user_data)
{
  g_autoptr(GError) failure = qlean_guest_error_from_payload (payload, "CONNECT");

  conn_stream_failed (user_data, failure);
}

static void
conn_stream_data (QleanGuestStream *stream,
                  guint8            fd,
                  GBytes           *payload,
                  gpointer          user_data)
{
  Conn *conn = user_data;

  if (fd == 1 && g_bytes_get_size (payload) > 0)
    {
      g_queue_push_tail (&conn->out, g_bytes_ref (payload));
      if (conn->write_source == NULL)
        conn_flush (conn);
    }
}

static void
conn_stream_eof (QleanGuestStream *stream,
                 guint8            fd,
                 gpointer          user_data)
{
  Conn *conn = user_data;

  if (fd == 1)
    {
      conn->guest_eof = TRUE;
      if (conn->write_source == NULL)
        conn_flush (conn);
    }
}

static void
conn_stream_done (QleanGuestStream *stream,
                  GBytes           *payload,
                  gpointer          user_data)
{
  Conn *conn = user_data;

  conn->stream_done = TRUE;
  conn_maybe_done (conn);
}

static const QleanGuestStreamHandlers conn_stream_handlers = {
  .closed = conn_stream_closed,
  .error = conn_stream_error,
  .data = conn_stream_data,
  .eof = conn_stream_eof,
  .done = conn_stream_done,
};

static void
conn_stream_cb (QleanGuestStream *stream,
                guint8            type,
                guint8            fd,
                GBytes           *payload,
                const GError     *error,
                gpointer          user_data)
{
  qlean_guest_stream_dispatch (&conn_stream_handlers, stream, type, fd, payload, error, user_data);
}

static void
conn_open_stream (Conn *conn)
{
  QleanGuestTlv *tlv = qlean_guest_tlv_new ();
  g_autoptr(GBytes) request = NULL;

  qlean_guest_tlv_add_u32 (tlv, QLEAN_GUEST_TAG_PORT, conn->forward->guest_port);
  request = qlean_guest_tlv_free_to_bytes (tlv);
  conn->stream = qlean_guest_channel_open_stream (conn->forward->channel, QLEAN_GUEST_FRAME_CONNECT,
                                                  request, conn_stream_cb, conn, NULL);
  qlean_guest_stream_set_writable_func (conn->stream, conn_writable_cb, conn);
  conn_watch_read (conn);
}

typedef struct
{
  Forward *forward;
  Conn    *conn;
} PendingConn;

static void
conn_channel_ready_cb (GObject      *source,
                       GAsyncResult *result,
                       gpointer      user_data)
{
  PendingConn *pending = user_data;
  g_autoptr(GError) error = NULL;
  gboolean ready = qlean_guest_channel_hello_finish (QLEAN_GUEST_CHANNEL (source), result, &error);
  Conn *conn = pending->conn;

  /* The forward may have been closed meanwhile, and its connections with it. */
  if (pending->forward->conns != NULL && g_ptr_array_find (pending->forward->conns, conn, NULL))
    {
      if (ready)
        conn_open_stream (conn);
      else
        {
          g_debug ("Port %u of machine “%s”: qlean-guest does not answer: %s",
                   conn->forward->host_port, conn->forward->machine_name, error->message);
          conn->stream_done = TRUE;
          conn_end (conn, TRUE);
        }
    }

  forward_unref (pending->forward);
  g_free (pending);
}

static gboolean
forward_accept_cb (GSocket      *listener,
                   GIOCondition  condition,
                   gpointer      user_data)
{
  Forward *forward = user_data;
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GError) error = NULL;
  Conn *conn;

  socket = g_socket_accept (listener, NULL, &error);
  if (socket == NULL)
    {
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        g_debug ("Port %u of machine “%s”: accept failed: %s", forward->host_port,
                 forward->machine_name, error->message);
      return G_SOURCE_CONTINUE;
    }

  g_socket_set_blocking (socket, FALSE);
  /* Bytes go on as the client wrote them; batching is the client's call. */
  if (forward->socket_path == NULL)
    g_socket_set_option (socket, IPPROTO_TCP, TCP_NODELAY, 1, NULL);

  conn = g_new0 (Conn, 1);
  conn->forward = forward;
  conn->socket = g_steal_pointer (&socket);
  g_queue_init (&conn->out);
  g_ptr_array_add (forward->conns, conn);

  if (qlean_guest_channel_is_ready (forward->channel))
    conn_open_stream (conn);
  else
    {
      PendingConn *pending = g_new0 (PendingConn, 1);

      /* After a guest reboot the channel syncs again: wait for it. */
      pending->forward = forward_ref (forward);
      pending->conn = conn;
      qlean_guest_channel_hello_async (forward->channel, CHANNEL_WAIT_MS, NULL,
                                       conn_channel_ready_cb, pending);
    }

  return G_SOURCE_CONTINUE;
}

/* Stops listening (the port is free at once) and ends every connection. */
static void
forward_close (Forward *forward)
{
  g_assert (qlean_worker_is_current ());

  qlean_clear_source (&forward->accept_source);
  if (forward->listener != NULL)
    g_socket_close (forward->listener, NULL);
  g_clear_object (&forward->listener);
  /* A unix socket's file stays after close: remove it, and the directory
   * made for it. */
  if (forward->socket_path != NULL)
    g_unlink (forward->socket_path);
  if (forward->socket_dir != NULL)
    g_rmdir (forward->socket_dir);
  g_clear_pointer (&forward->conns, g_ptr_array_unref);
  forward_unref (forward);
}

static gboolean
forwards_unref_in_worker (gpointer user_data)
{
  g_ptr_array_unref (user_data);
  return G_SOURCE_REMOVE;
}

/* The run ended (on the worker: its ports are free again at once), or a
 * machine was finalized while it forwarded ports (dropped while
 * running): its sockets belong to the worker. */
static void
forwards_destroy (gpointer data)
{
  if (qlean_worker_is_current ())
    g_ptr_array_unref (data);
  else
    qlean_worker_invoke (forwards_unref_in_worker, data, NULL);
}

/* The forwards of @run, created on first use; they end with the run
 * (qlean_machine_release_run()). Worker only. */
static GPtrArray *
get_forwards (QleanMachineRun *run,
              gboolean         create)
{
  GPtrArray *forwards = qlean_machine_run_get_data (run, FORWARDS_KEY);

  if (forwards == NULL && create)
    {
      forwards = g_ptr_array_new_with_free_func ((GDestroyNotify) forward_close);
      qlean_machine_run_set_data (run, FORWARDS_KEY, forwards, forwards_destroy);
    }

  return forwards;
}

/* Public API */

typedef struct
{
  guint16  host_port;
  guint16  guest_port;
  gboolean is_unix;
  char    *socket_path;   /* unix: the caller's, or NULL for one of ours */
  QleanMachineRun *run;  /* the run the forward belongs to */
} ForwardRequest;

static void
forward_request_free (ForwardRequest *request)
{
  g_free (request->socket_path);
  g_clear_pointer (&request->run, qlean_machine_run_unref);
  g_free (request);
}

/* Listens on 127.0.0.1:@host_port. */
static GSocket *
listen_tcp (guint16   host_port,
            guint16  *bound_port,
            GError  **error)
{
  g_autoptr(GSocket) listener = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GSocketAddress) bound = NULL;

  /* Loopback only: a forward is for tests and tools on this host, and a
   * guest's server must never be reachable from the LAN by accident. */
  listener = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, error);
  if (listener == NULL)
    return NULL;
  address = g_inet_socket_address_new_from_string ("127.0.0.1", host_port);
  if (!g_socket_bind (listener, address, TRUE, error) ||
      !g_socket_listen (listener, error) ||
      (bound = g_socket_get_local_address (listener, error)) == NULL)
    return NULL;

  *bound_port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  return g_steal_pointer (&listener);
}

/* Listens on a unix socket at @path (absolute, not there yet), which
 * only our uid may connect to. */
static GSocket *
listen_unix (const char  *path,
             GError     **error)
{
  g_autoptr(GSocket) listener = NULL;
  g_autoptr(GSocketAddress) address = NULL;

  if (strlen (path) >= sizeof ((struct sockaddr_un *) NULL)->sun_path)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   _("the path is longer than a unix socket's %zu bytes; pick a shorter one"),
                   sizeof ((struct sockaddr_un *) NULL)->sun_path - 1);
      return NULL;
    }

  listener = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT, error);
  if (listener == NULL)
    return NULL;
  address = g_unix_socket_address_new (path);
  /* Never over an existing file: bind() fails with EADDRINUSE. */
  if (!g_socket_bind (listener, address, FALSE, error))
    return NULL;

  /* Made 0600 before it listens: until then nobody can connect, so no
   * other user ever can. */
  if (g_chmod (path, 0600) != 0)
    {
      int saved_errno = errno;

      qlean_set_error_from_errno (error, saved_errno,
                                  "chmod");
      g_unlink (path);
      return NULL;
    }

  if (!g_socket_listen (listener, error))
    {
      g_unlink (path);
      return NULL;
    }

  return g_steal_pointer (&listener);
}

static Forward *
forward_new (QleanMachine      *self,
             QleanGuestChannel *channel,
             GSocket           *listener,
             guint16            guest_port)
{
  Forward *forward = g_new0 (Forward, 1);

  g_socket_set_blocking (listener, FALSE);
  forward->ref_count = 1;
  forward->machine_name = g_strdup (qlean_machine_get_name (self));
  forward->guest_port = guest_port;
  forward->channel = g_object_ref (channel);
  forward->listener = g_object_ref (listener);
  forward->conns = g_ptr_array_new_with_free_func ((GDestroyNotify) conn_free);
  forward->accept_source = g_socket_create_source (forward->listener, G_IO_IN, NULL);
  g_source_set_callback (forward->accept_source,
                         (GSourceFunc) (void (*) (void)) forward_accept_cb, forward, NULL);
  g_source_set_static_name (forward->accept_source, "[qlean] forward accept");
  g_source_attach (forward->accept_source, qlean_worker_get_context ());

  return forward;
}

static void
forward_tcp (GTask             *task,
             QleanMachine      *self,
             QleanGuestChannel *channel,
             ForwardRequest    *request)
{
  g_autoptr(GSocket) listener = NULL;
  g_autoptr(GError) error = NULL;
  guint16 port = 0;
  Forward *forward;

  listener = listen_tcp (request->host_port, &port, &error);
  if (listener == NULL)
    {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE))
        g_prefix_error (&error, _("Cannot forward port %u of 127.0.0.1 (in use: pick another, "
                                  "or 0 for a free one): "), request->host_port);
      else
        g_prefix_error (&error, _("Cannot forward port %u of 127.0.0.1: "), request->host_port);
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  forward = forward_new (self, channel, listener, request->guest_port);
  forward->host_port = port;
  g_ptr_array_add (get_forwards (request->run, TRUE), forward);
  g_debug ("Machine “%s”: 127.0.0.1:%u forwards to guest port %u",
           qlean_machine_get_name (self), forward->host_port, forward->guest_port);
  g_task_return_int (task, forward->host_port);
}

static void
forward_unix (GTask             *task,
              QleanMachine      *self,
              QleanGuestChannel *channel,
              ForwardRequest    *request)
{
  g_autoptr(GSocket) listener = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *path = NULL;
  g_autofree char *display = NULL;
  Forward *forward;

  if (request->socket_path != NULL)
    path = g_canonicalize_filename (request->socket_path, NULL);
  else
    {
      g_autofree char *name = g_strdup_printf ("port-%u.sock", request->guest_port);

      /* mkdtemp(): a fresh directory of mode 0700. */
      dir = g_dir_make_tmp ("qlean-forward-XXXXXX", &error);
      if (dir == NULL)
        {
          g_prefix_error (&error, _("Cannot forward to port %u of machine “%s” through a unix "
                                    "socket: no private directory for it: "),
                          request->guest_port, qlean_machine_get_name (self));
          g_task_return_error (task, g_steal_pointer (&error));
          return;
        }
      path = g_build_filename (dir, name, NULL);
    }

  listener = listen_unix (path, &error);
  if (listener == NULL)
    {
      display = g_filename_display_name (path);
      if (dir != NULL)
        g_rmdir (dir);
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE))
        g_prefix_error (&error, _("Cannot forward through “%s”: something is there already "
                                  "(remove it, or pick another path): "), display);
      else
        g_prefix_error (&error, _("Cannot forward through “%s”: "), display);
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  forward = forward_new (self, channel, listener, request->guest_port);
  forward->socket_path = g_strdup (path);
  forward->socket_dir = g_steal_pointer (&dir);
  g_ptr_array_add (get_forwards (request->run, TRUE), forward);
  g_debug ("Machine “%s”: %s forwards to guest port %u",
           qlean_machine_get_name (self), forward->socket_path, forward->guest_port);
  g_task_return_pointer (task, g_steal_pointer (&path), g_free);
}

static void
forward_channel_cb (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  QleanMachine *self = g_task_get_source_object (task);
  ForwardRequest *request = g_task_get_task_data (task);
  g_autoptr(QleanGuestChannel) channel = NULL;
  g_autoptr(GError) error = NULL;

  channel = qlean_machine_run_get_guest_channel_finish (request->run, result, &error);
  if (channel == NULL)
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
                               _("Cannot forward a port to machine “%s”: forwarding needs "
                                 "qlean-guest in the guest, and %s"),
                               qlean_machine_get_name (self), error->message);
      return;
    }

  /* The run may have ended while we waited; its forwards are gone. */
  if (qlean_machine_get_state (self) != QLEAN_MACHINE_STATE_RUNNING)
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE,
                               _("Cannot forward a port to machine “%s”: it stopped"),
                               qlean_machine_get_name (self));
      return;
    }

  if (request->is_unix)
    forward_unix (task, self, channel, request);
  else
    forward_tcp (task, self, channel, request);
}

static gboolean
forward_in_worker (gpointer user_data)
{
  GTask *task = user_data;
  ForwardRequest *request = g_task_get_task_data (task);

  qlean_machine_run_get_guest_channel_async (request->run, g_task_get_cancellable (task),
                                             forward_channel_cb, g_object_ref (task));
  return G_SOURCE_REMOVE;
}

/* Behind both forwards: checks, then listens on the worker. */
static void
forward_start (QleanMachine        *self,
               ForwardRequest      *request,
               GCancellable        *cancellable,
               gpointer             source_tag,
               GAsyncReadyCallback  callback,
               gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autoptr(GError) error = NULL;

  task = qlean_task_new (self, cancellable, callback, user_data, source_tag,
                         "[qlean] forward port");
  g_task_set_task_data (task, request, (GDestroyNotify) forward_request_free);

  if (request->guest_port == 0)
    {
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                               _("Cannot forward to port 0 of machine “%s”: give the guest's port"),
                               qlean_machine_get_name (self));
      return;
    }

  request->run = qlean_machine_ref_run (self, QLEAN_MACHINE_OP_FORWARD_PORT, FALSE, &error);
  if (request->run == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  qlean_worker_invoke (forward_in_worker, g_steal_pointer (&task), g_object_unref);
}

/**
 * qlean_machine_forward_port_async:
 * @self: a running #QleanMachine
 * @host_port: the port to listen on, on 127.0.0.1 of the host; 0 picks a
 *   free one
 * @guest_port: the TCP port in the guest to forward to
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when the port listens, or could not
 * @user_data: data for @callback
 *
 * Forwards a local TCP port to a port of the machine, so that a test or
 * tool on the host can talk to a server in the guest: each connection to
 * 127.0.0.1:@host_port becomes a connection to 127.0.0.1:@guest_port in
 * the guest. The port is bound to the loopback address only.
 *
 * The loopback address has no owner: every user and process of the host
 * can connect to the port, as to any local server. Where other users
 * share the host and the guest's server must stay yours, forward through
 * a unix socket instead, which only your uid can reach: see
 * [method@Machine.forward_unix_async].
 *
 * Forwarding runs over the machine's data channel (qlean-guest), not
 * over a network, so it works the same with a pool network and without
 * any network card. The server in the guest need not listen yet: a
 * connection made before it does is reset, as a refused connection
 * would be. Forwards end when the machine stops, or with
 * [method@Machine.unforward_port].
 *
 * Since: 0.1
 */
void
qlean_machine_forward_port_async (QleanMachine        *self,
                                  guint16              host_port,
                                  guint16              guest_port,
                                  GCancellable        *cancellable,
                                  GAsyncReadyCallback  callback,
                                  gpointer             user_data)
{
  ForwardRequest *request;

  g_return_if_fail (QLEAN_IS_MACHINE (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  request = g_new0 (ForwardRequest, 1);
  request->host_port = host_port;
  request->guest_port = guest_port;
  forward_start (self, request, cancellable, qlean_machine_forward_port_async, callback, user_data);
}

/**
 * qlean_machine_forward_port_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_machine_forward_port_async().
 *
 * Returns: the port listening on 127.0.0.1 of the host, or 0 with @error
 *   set
 *
 * Since: 0.1
 */
guint16
qlean_machine_forward_port_finish (QleanMachine  *self,
                                   GAsyncResult  *result,
                                   GError       **error)
{
  gssize port;

  g_return_val_if_fail (g_task_is_valid (result, self), 0);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_forward_port_async), 0);

  port = g_task_propagate_int (G_TASK (result), error);
  return port < 0 ? 0 : (guint16) port;
}

/**
 * qlean_machine_forward_port:
 * @self: a running #QleanMachine
 * @host_port: the port to listen on, on 127.0.0.1 of the host; 0 picks a
 *   free one
 * @guest_port: the TCP port in the guest to forward to
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_forward_port_async(). A port in use
 * fails with %G_IO_ERROR_ADDRESS_IN_USE. Every local user can connect to
 * the port; see [method@Machine.forward_unix] for one only you can reach.
 *
 * Returns: the port listening on 127.0.0.1 of the host, or 0 with @error
 *   set
 *
 * Since: 0.1
 */
guint16
qlean_machine_forward_port (QleanMachine  *self,
                            guint16        host_port,
                            guint16        guest_port,
                            GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), 0);
  g_return_val_if_fail (error == NULL || *error == NULL, 0);

  if (!qlean_sync_call_begin (&call, error))
    return 0;
  qlean_machine_forward_port_async (self, host_port, guest_port, NULL, qlean_sync_call_done, &call);

  return qlean_machine_forward_port_finish (self, qlean_sync_call_wait (&call), error);
}

/**
 * qlean_machine_forward_unix_async:
 * @self: a running #QleanMachine
 * @socket_path: (nullable) (type filename): where to make the unix socket,
 *   a path where nothing is yet; %NULL makes one in a new directory of
 *   its own under g_get_tmp_dir()
 * @guest_port: the TCP port in the guest to forward to
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when the socket listens, or could not
 * @user_data: data for @callback
 *
 * Like [method@Machine.forward_port_async], but the host's end is a unix
 * socket that only your uid (and root) can connect to: the socket is
 * made mode 0600 before it listens, and the directory made for it when
 * @socket_path is %NULL has mode 0700. So other users of the host cannot
 * reach the guest's server, as they can a forwarded TCP port. Each
 * connection to the socket becomes a connection to 127.0.0.1:@guest_port
 * in the guest.
 *
 * With @socket_path, its directory is yours to choose and keep private.
 * A path where something exists already fails with
 * %G_IO_ERROR_ADDRESS_IN_USE; nothing is removed to make room. The
 * socket (and the directory made for it) is removed when the forward
 * ends: when the machine stops, or with [method@Machine.unforward_unix].
 *
 * Since: 0.1
 */
void
qlean_machine_forward_unix_async (QleanMachine        *self,
                                  const char          *socket_path,
                                  guint16              guest_port,
                                  GCancellable        *cancellable,
                                  GAsyncReadyCallback  callback,
                                  gpointer             user_data)
{
  ForwardRequest *request;

  g_return_if_fail (QLEAN_IS_MACHINE (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  request = g_new0 (ForwardRequest, 1);
  request->is_unix = TRUE;
  request->socket_path = g_strdup (socket_path);
  request->guest_port = guest_port;
  forward_start (self, request, cancellable, qlean_machine_forward_unix_async, callback, user_data);
}

/**
 * qlean_machine_forward_unix_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_machine_forward_unix_async().
 *
 * Returns: (transfer full) (type filename): the absolute path of the
 *   listening socket, or %NULL with @error set
 *
 * Since: 0.1
 */
char *
qlean_machine_forward_unix_finish (QleanMachine  *self,
                                   GAsyncResult  *result,
                                   GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_forward_unix_async), NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * qlean_machine_forward_unix:
 * @self: a running #QleanMachine
 * @socket_path: (nullable) (type filename): where to make the unix socket,
 *   or %NULL for a new private directory of its own
 * @guest_port: the TCP port in the guest to forward to
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_forward_unix_async().
 *
 * Returns: (transfer full) (type filename): the absolute path of the
 *   listening socket, or %NULL with @error set
 *
 * Since: 0.1
 */
char *
qlean_machine_forward_unix (QleanMachine  *self,
                            const char    *socket_path,
                            guint16        guest_port,
                            GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!qlean_sync_call_begin (&call, error))
    return NULL;
  qlean_machine_forward_unix_async (self, socket_path, guest_port, NULL, qlean_sync_call_done, &call);

  return qlean_machine_forward_unix_finish (self, qlean_sync_call_wait (&call), error);
}

typedef struct
{
  guint16  host_port;
  char    *socket_path;  /* absolute; NULL for a TCP port */
} UnforwardRequest;

static void
unforward_request_free (UnforwardRequest *request)
{
  g_free (request->socket_path);
  g_free (request);
}

static gboolean
unforward_in_worker (gpointer user_data)
{
  GTask *task = user_data;
  QleanMachine *self = g_task_get_source_object (task);
  UnforwardRequest *request = g_task_get_task_data (task);
  /* A machine that does not run has no forwards. */
  g_autoptr(QleanMachineRun) run = qlean_machine_ref_run (self, QLEAN_MACHINE_OP_FORWARD_PORT,
                                                          FALSE, NULL);
  GPtrArray *forwards = run != NULL ? get_forwards (run, FALSE) : NULL;
  g_autofree char *display = NULL;

  for (guint i = 0; forwards != NULL && i < forwards->len; i++)
    {
      Forward *forward = g_ptr_array_index (forwards, i);

      if (request->socket_path != NULL ? g_strcmp0 (forward->socket_path, request->socket_path) == 0
                                       : forward->socket_path == NULL &&
                                         forward->host_port == request->host_port)
        {
          g_ptr_array_remove_index (forwards, i);
          g_task_return_boolean (task, TRUE);
          return G_SOURCE_REMOVE;
        }
    }

  if (request->socket_path == NULL)
    g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                             _("Machine “%s” forwards no port %u"), qlean_machine_get_name (self),
                             request->host_port);
  else
    {
      display = g_filename_display_name (request->socket_path);
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                               _("Machine “%s” forwards nothing through “%s”"),
                               qlean_machine_get_name (self), display);
    }
  return G_SOURCE_REMOVE;
}

static gboolean
unforward (QleanMachine      *self,
           UnforwardRequest  *request,
           gpointer           source_tag,
           GError           **error)
{
  g_auto(QleanSyncCall) call = { 0 };
  GTask *task;

  if (!qlean_sync_call_begin (&call, error))
    {
      unforward_request_free (request);
      return FALSE;
    }
  task = qlean_task_new (self, NULL, qlean_sync_call_done, &call, source_tag,
                         "[qlean] stop forwarding a port");
  g_task_set_task_data (task, request, (GDestroyNotify) unforward_request_free);
  qlean_worker_invoke (unforward_in_worker, task, g_object_unref);

  return g_task_propagate_boolean (G_TASK (qlean_sync_call_wait (&call)), error);
}

/**
 * qlean_machine_unforward_port:
 * @self: a #QleanMachine
 * @host_port: a port that qlean_machine_forward_port() returned
 * @error: return location for a #GError
 *
 * Stops forwarding @host_port: it no longer listens once this returns,
 * and connections made through it are closed. A port this machine does
 * not forward fails with %G_IO_ERROR_NOT_FOUND.
 *
 * Returns: %TRUE when the forward was removed
 *
 * Since: 0.1
 */
gboolean
qlean_machine_unforward_port (QleanMachine  *self,
                              guint16        host_port,
                              GError       **error)
{
  UnforwardRequest *request;

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  request = g_new0 (UnforwardRequest, 1);
  request->host_port = host_port;
  return unforward (self, request, qlean_machine_unforward_port, error);
}

/**
 * qlean_machine_unforward_unix:
 * @self: a #QleanMachine
 * @socket_path: (type filename): a path that qlean_machine_forward_unix()
 *   returned
 * @error: return location for a #GError
 *
 * Stops forwarding through @socket_path: the socket (and the directory
 * made for it) is gone once this returns, and connections made through it
 * are closed. A path this machine does not forward through fails with
 * %G_IO_ERROR_NOT_FOUND.
 *
 * Returns: %TRUE when the forward was removed
 *
 * Since: 0.1
 */
gboolean
qlean_machine_unforward_unix (QleanMachine  *self,
                              const char    *socket_path,
                              GError       **error)
{
  UnforwardRequest *request;

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), FALSE);
  g_return_val_if_fail (socket_path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  request = g_new0 (UnforwardRequest, 1);
  request->socket_path = g_canonicalize_filename (socket_path, NULL);
  return unforward (self, request, qlean_machine_unforward_unix, error);
}
