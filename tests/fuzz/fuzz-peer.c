/* fuzz-peer.c: a scripted peer for fuzzing the protocol clients
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "fuzz-peer.h"

/* How long the peer waits for the client to say something before it
 * writes the next segment anyway. Short: most fuzz inputs are garbage
 * the client never answers, and each costs this much per segment. */
#define CLIENT_LINE_WAIT_MS 3
#define MAX_SEGMENTS 8
/* Between segments: rare in mutated bytes, unlike NUL, so that most
 * inputs are one segment and cost no wait. */
#define SEPARATOR "@NEXT@"

struct _FuzzPeer
{
  int        fd;
  GBytes    *data;
  gboolean   client_first;
  GString   *client_line;  /* the client's current, incomplete line */
  char      *last_id;      /* raw "id" token of the client's last line */
  gboolean   client_gone;
  GThread   *thread;
};

/* GLib makes fatal messages a SIGTRAP, which libFuzzer does not catch
 * (so it would keep no reproducer): abort instead. */
static void
fuzz_log_handler (const char     *domain,
                  GLogLevelFlags  level,
                  const char     *message,
                  gpointer        user_data)
{
  g_log_default_handler (domain, level, message, user_data);
  if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR | G_LOG_FLAG_FATAL))
    abort ();
}

static GLogWriterOutput
fuzz_log_writer (GLogLevelFlags   level,
                 const GLogField *fields,
                 gsize            n_fields,
                 gpointer         user_data)
{
  GLogWriterOutput result = g_log_writer_default (level & ~G_LOG_FLAG_FATAL, fields, n_fields, user_data);

  if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR | G_LOG_FLAG_FATAL))
    abort ();
  return result;
}

void
fuzz_init_glib (void)
{
  g_log_set_default_handler (fuzz_log_handler, NULL);
  g_log_set_writer_func (fuzz_log_writer, NULL, NULL);
}

/* The raw value of the last "id" member of @line: digits, or a JSON
 * string with its quotes. */
static char *
find_id (const char *line)
{
  const char *p = NULL;
  const char *at = line;
  const char *end;

  while ((at = strstr (at, "\"id\"")) != NULL)
    p = at++;
  if (p == NULL)
    return NULL;

  p += 4;
  while (*p == ' ' || *p == ':')
    p++;
  if (*p == '"')
    {
      end = strchr (p + 1, '"');
      return end ? g_strndup (p, end + 1 - p) : NULL;
    }

  end = p;
  while (g_ascii_isdigit (*end) || *end == '-')
    end++;
  return end > p ? g_strndup (p, end - p) : NULL;
}

/* Reads what the client wrote until a whole line came, @timeout_ms
 * passed, or the client closed; returns whether a line came. */
static gboolean
wait_for_client_line (FuzzPeer *peer,
                      int       timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + timeout_ms * G_TIME_SPAN_MILLISECOND;

  while (!peer->client_gone)
    {
      struct pollfd pfd = { .fd = peer->fd, .events = POLLIN };
      int left = (int) ((deadline - g_get_monotonic_time ()) / 1000);
      char buf[4096];
      gboolean got_line = FALSE;
      ssize_t n;

      if (left <= 0 || poll (&pfd, 1, left) <= 0)
        return FALSE;

      n = recv (peer->fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EINTR))
        continue;
      if (n <= 0)
        {
          peer->client_gone = TRUE;
          return FALSE;
        }

      for (ssize_t i = 0; i < n; i++)
        {
          if (buf[i] != '\n')
            {
              /* 0xFF and other bytes alike: only "id" matters. */
              if (buf[i] != '\0')
                g_string_append_c (peer->client_line, buf[i]);
              continue;
            }

          {
            char *id = find_id (peer->client_line->str);

            if (id != NULL)
              {
                g_free (peer->last_id);
                peer->last_id = id;
              }
          }
          g_string_truncate (peer->client_line, 0);
          got_line = TRUE;
        }

      if (got_line)
        return TRUE;
    }

  return FALSE;
}

static void
send_segment (FuzzPeer     *peer,
              const guint8 *data,
              gsize         len)
{
  g_autoptr(GString) out = g_string_new_len ((const char *) data, len);
  gsize sent = 0;

  if (peer->last_id != NULL)
    g_string_replace (out, "@ID@", peer->last_id, 0);

  while (sent < out->len && !peer->client_gone)
    {
      ssize_t n = send (peer->fd, out->str + sent, out->len - sent, MSG_NOSIGNAL);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == EAGAIN)
        {
          /* The client does not read while we block on its output. */
          wait_for_client_line (peer, 1);
          continue;
        }
      if (n <= 0)
        {
          peer->client_gone = TRUE;
          return;
        }
      sent += n;
    }
}

static gpointer
fuzz_peer_thread (gpointer user_data)
{
  FuzzPeer *peer = user_data;
  gsize size;
  const guint8 *data = g_bytes_get_data (peer->data, &size);
  static const guint8 empty[1];
  gsize start = 0;
  guint segment = 0;

  if (data == NULL)
    data = empty;

  while (start <= size && !peer->client_gone)
    {
      const guint8 *mark = size > start ? memmem (data + start, size - start,
                                                  SEPARATOR, strlen (SEPARATOR)) : NULL;
      gsize end = mark ? (gsize) (mark - data) : size;

      /* The last segments are sent as one: bound the waits. */
      if (segment == MAX_SEGMENTS - 1)
        end = size;

      if (segment > 0 || peer->client_first)
        wait_for_client_line (peer, CLIENT_LINE_WAIT_MS);
      send_segment (peer, data + start, end - start);

      start = end + strlen (SEPARATOR);
      segment++;
    }

  shutdown (peer->fd, SHUT_WR);

  /* Keep reading until the client closes, so that it never blocks. */
  while (!peer->client_gone)
    wait_for_client_line (peer, 1000);

  return NULL;
}

FuzzPeer *
fuzz_peer_start (const uint8_t  *data,
                 size_t          size,
                 gboolean        client_speaks_first,
                 GIOStream     **client_stream)
{
  FuzzPeer *peer = g_new0 (FuzzPeer, 1);
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GError) error = NULL;
  int fds[2];

  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    g_error ("socketpair: %s", g_strerror (errno));

  socket = g_socket_new_from_fd (fds[0], &error);
  g_assert_no_error (error);
  *client_stream = G_IO_STREAM (g_socket_connection_factory_create_connection (socket));

  peer->fd = fds[1];
  peer->data = g_bytes_new (data, size);
  peer->client_first = client_speaks_first;
  peer->client_line = g_string_new (NULL);
  peer->thread = g_thread_new ("fuzz-peer", fuzz_peer_thread, peer);

  return peer;
}

void
fuzz_peer_finish (FuzzPeer *peer)
{
  g_thread_join (peer->thread);
  close (peer->fd);
  g_bytes_unref (peer->data);
  g_string_free (peer->client_line, TRUE);
  g_free (peer->last_id);
  g_free (peer);
}
