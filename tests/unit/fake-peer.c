/* fake-peer.c: the far end of a socketpair, scripted by a unit test
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "fake-peer.h"

#define READ_CHUNK 65536

struct _FakePeer
{
  int         fd;
  GByteArray *buffer;
};

FakePeer *
fake_peer_new (GIOStream **client_stream)
{
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GError) error = NULL;
  FakePeer *peer;
  int fds[2];

  g_assert_no_errno (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds));

  socket = g_socket_new_from_fd (fds[0], &error);
  g_assert_no_error (error);
  *client_stream = G_IO_STREAM (g_socket_connection_factory_create_connection (socket));

  peer = g_new0 (FakePeer, 1);
  peer->fd = fds[1];
  peer->buffer = g_byte_array_new ();

  return peer;
}

void
fake_peer_close (FakePeer *peer)
{
  if (peer->fd < 0)
    return;

  g_assert_no_errno (close (peer->fd));
  peer->fd = -1;
}

char *
deep_json (const char *head,
           guint       depth,
           const char *tail)
{
  GString *json = g_string_sized_new (strlen (head) + 2 * depth + strlen (tail));

  g_string_append (json, head);
  for (guint i = 0; i < depth; i++)
    g_string_append_c (json, '[');
  for (guint i = 0; i < depth; i++)
    g_string_append_c (json, ']');
  g_string_append (json, tail);

  return g_string_free (json, FALSE);
}

void
fake_peer_free (FakePeer *peer)
{
  if (peer == NULL)
    return;

  fake_peer_close (peer);
  g_byte_array_unref (peer->buffer);
  g_free (peer);
}

void
test_watchdog_expired (gint64      deadline,
                       const char *what)
{
  if (g_get_monotonic_time () > deadline)
    g_error ("Gave up after %d s waiting for %s", TEST_WAIT_SECONDS, what);
}

/* Waits for the descriptor to become readable; FALSE when @timeout_ms
 * passed first. */
static gboolean
fake_peer_poll (FakePeer *peer,
                int       timeout_ms)
{
  struct pollfd pfd = { .fd = peer->fd, .events = POLLIN };
  int r;

  do
    r = poll (&pfd, 1, timeout_ms);
  while (r < 0 && errno == EINTR);
  g_assert_no_errno (r < 0 ? -1 : 0);

  return r > 0;
}

/* Reads once into the buffer; FALSE at end of stream. */
static gboolean
fake_peer_fill (FakePeer   *peer,
                const char *what)
{
  guint8 chunk[READ_CHUNK];
  ssize_t n;

  if (!fake_peer_poll (peer, TEST_WAIT_SECONDS * 1000))
    g_error ("Gave up after %d s waiting for the client to write %s", TEST_WAIT_SECONDS, what);

  do
    n = read (peer->fd, chunk, sizeof chunk);
  while (n < 0 && errno == EINTR);

  /* The client closing its end while we read is an end of stream too. */
  if (n < 0 && errno == ECONNRESET)
    n = 0;
  g_assert_no_errno (n < 0 ? -1 : 0);

  if (n == 0)
    return FALSE;

  g_byte_array_append (peer->buffer, chunk, n);
  return TRUE;
}

/*
 * fake_peer_read_line:
 * @len: (out) (optional): the line's length
 *
 * Returns: the next line the client wrote, without its newline, or %NULL
 *   when the client closed the connection. The line may hold any byte,
 *   the agent's 0xFF included.
 */
char *
fake_peer_read_line (FakePeer *peer,
                     gsize    *len)
{
  for (;;)
    {
      /* An empty GByteArray's data may be NULL, which memchr () must not get. */
      guint8 *nl = peer->buffer->len > 0 ? memchr (peer->buffer->data, '\n', peer->buffer->len) : NULL;

      if (nl != NULL)
        {
          gsize line_len = nl - peer->buffer->data;
          char *line = g_strndup ((const char *) peer->buffer->data, line_len);

          g_byte_array_remove_range (peer->buffer, 0, line_len + 1);
          if (len != NULL)
            *len = line_len;
          return line;
        }

      if (!fake_peer_fill (peer, "a line"))
        {
          g_assert_cmpuint (peer->buffer->len, ==, 0);
          return NULL;
        }
    }
}

/* The next @len bytes the client wrote, whatever they are (binary
 * protocols); fails the test at end of stream. */
GBytes *
fake_peer_read_bytes (FakePeer *peer,
                      gsize     len)
{
  GBytes *bytes;

  while (peer->buffer->len < len)
    if (!fake_peer_fill (peer, "bytes"))
      g_error ("The client closed the connection where %" G_GSIZE_FORMAT " bytes were expected", len);

  bytes = g_bytes_new (peer->buffer->data, len);
  g_byte_array_remove_range (peer->buffer, 0, len);
  return bytes;
}

/* The next line, which must be a JSON object. */
JsonObject *
fake_peer_read_message (FakePeer *peer)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;
  gsize len;
  JsonNode *root;

  line = fake_peer_read_line (peer, &len);
  if (line == NULL)
    g_error ("The client closed the connection where a message was expected");

  json_parser_load_from_data (parser, line, len, &error);
  g_assert_no_error (error);

  root = json_parser_get_root (parser);
  g_assert_nonnull (root);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (root));

  return json_object_ref (json_node_get_object (root));
}

/* Writes everything; FALSE when the client has closed its end. */
gboolean
fake_peer_try_write (FakePeer   *peer,
                     const char *data,
                     gsize       len)
{
  while (len > 0)
    {
      ssize_t n = send (peer->fd, data, len, MSG_NOSIGNAL);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
        return FALSE;
      g_assert_no_errno (n < 0 ? -1 : 0);

      data += n;
      len -= n;
    }

  return TRUE;
}

void
fake_peer_write (FakePeer   *peer,
                 const char *data,
                 gssize      len)
{
  if (len < 0)
    len = strlen (data);

  if (!fake_peer_try_write (peer, data, len))
    g_error ("The client closed the connection while the peer wrote");
}

void
fake_peer_writef (FakePeer   *peer,
                  const char *format,
                  ...)
{
  g_autofree char *data = NULL;
  va_list args;

  va_start (args, format);
  data = g_strdup_vprintf (format, args);
  va_end (args);

  fake_peer_write (peer, data, -1);
}

/* Asserts the client writes nothing (and does not close) for @ms. A slow
 * client can only make this pass wrongly, never fail wrongly. */
void
fake_peer_assert_quiet (FakePeer *peer,
                        guint     ms)
{
  if (peer->buffer->len > 0)
    g_error ("The client wrote %u unexpected bytes: %.*s", peer->buffer->len,
             (int) peer->buffer->len, (const char *) peer->buffer->data);

  if (!fake_peer_poll (peer, ms))
    return;

  if (!fake_peer_fill (peer, "anything"))
    g_error ("The client closed the connection unexpectedly");

  g_error ("The client wrote unexpectedly: %.*s",
           (int) peer->buffer->len, (const char *) peer->buffer->data);
}

/* Asserts the client closes the connection without writing more. */
void
fake_peer_assert_eof (FakePeer *peer)
{
  g_assert_cmpuint (peer->buffer->len, ==, 0);

  if (fake_peer_fill (peer, "the end of the stream"))
    g_error ("The client wrote where it should have closed: %.*s",
             (int) peer->buffer->len, (const char *) peer->buffer->data);
}

typedef struct
{
  FakePeer       *peer;
  FakePeerScript  script;
  gpointer        user_data;
} ScriptRun;

static gpointer
fake_peer_script_thread (gpointer data)
{
  ScriptRun *run = data;

  run->script (run->peer, run->user_data);
  g_free (run);

  return NULL;
}

/* Runs @script against @peer on a new thread; join the thread to wait. */
GThread *
fake_peer_run_in_thread (FakePeer       *peer,
                         FakePeerScript  script,
                         gpointer        user_data)
{
  ScriptRun *run = g_new0 (ScriptRun, 1);

  run->peer = peer;
  run->script = script;
  run->user_data = user_data;

  return g_thread_new ("fake-peer", fake_peer_script_thread, run);
}

static gboolean
wakeup_cb (gpointer user_data)
{
  return G_SOURCE_CONTINUE;
}

/* One blocking iteration of the thread-default context, woken at least
 * every few milliseconds so that WAIT_UNTIL can re-check its condition. */
void
test_iterate (void)
{
  g_autoptr(GMainContext) context = g_main_context_ref_thread_default ();
  GSource *wakeup = g_timeout_source_new (5);

  g_source_set_callback (wakeup, wakeup_cb, NULL, NULL);
  g_source_attach (wakeup, context);
  g_main_context_iteration (context, TRUE);
  g_source_destroy (wakeup);
  g_source_unref (wakeup);
}

/* Iterates the thread-default context for @ms, whatever happens. */
void
test_spin (guint ms)
{
  gint64 end = g_get_monotonic_time () + ms * 1000;

  while (g_get_monotonic_time () < end)
    test_iterate ();
}

void
async_capture_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  AsyncCapture *capture = user_data;

  capture->count++;
  g_clear_object (&capture->result);
  capture->result = g_object_ref (result);
}

void
async_capture_clear (AsyncCapture *capture)
{
  g_clear_object (&capture->result);
  capture->count = 0;
}

void
assert_finalized (gpointer object)
{
  gint64 deadline = g_get_monotonic_time () + TEST_WAIT_SECONDS * G_USEC_PER_SEC;
  GWeakRef weak;

  g_weak_ref_init (&weak, object);
  g_object_unref (object);

  for (;;)
    {
      GObject *alive = g_weak_ref_get (&weak);

      if (alive == NULL)
        break;
      g_object_unref (alive);
      test_watchdog_expired (deadline, "the object to be finalized");
      test_iterate ();
    }

  g_weak_ref_clear (&weak);
}
