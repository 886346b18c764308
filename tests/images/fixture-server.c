/* fixture-server.c: a small HTTP server for image tests, on 127.0.0.1
 *
 * SPDX-License-Identifier: MIT
 *
 * Plain threads and blocking sockets: one thread accepts, one thread per
 * connection answers. No main context is involved, so the server works
 * while the test thread blocks in a synchronous call.
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib/gstdio.h>

#include "fixture-server.h"

#define CHUNK_SIZE (64 * 1024)

struct _FixtureServer
{
  char         *root;
  char         *url;
  GSocket      *listener;
  GCancellable *cancellable;
  GThread      *accept_thread;

  GMutex        lock;
  GCond         cond;
  guint         active;
  GHashTable   *counts;       /* path -> count */
  GHashTable   *ranged;       /* path -> count */
  GHashTable   *dropped;      /* paths already cut off once */
};

typedef struct
{
  FixtureServer *server;
  GSocket       *socket;
} Connection;

static void
bump (GHashTable *table,
      const char *path)
{
  guint n = GPOINTER_TO_UINT (g_hash_table_lookup (table, path));

  g_hash_table_insert (table, g_strdup (path), GUINT_TO_POINTER (n + 1));
}

static gboolean
send_all (GSocket    *socket,
          const void *data,
          gsize       len)
{
  const char *p = data;

  while (len > 0)
    {
      gssize n = g_socket_send (socket, p, len, NULL, NULL);

      if (n <= 0)
        return FALSE;
      p += n;
      len -= n;
    }

  return TRUE;
}

static void
send_status (GSocket    *socket,
             int         status,
             const char *reason)
{
  g_autofree char *body = g_strdup_printf ("%d %s\n", status, reason);
  g_autofree char *head = g_strdup_printf ("HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
                                           "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                                           status, reason, strlen (body));

  if (send_all (socket, head, strlen (head)))
    send_all (socket, body, strlen (body));
}

/* Reads the request head, at most 16 KiB. */
static char *
read_head (GSocket *socket)
{
  GString *head = g_string_new (NULL);
  char buffer[1024];

  while (strstr (head->str, "\r\n\r\n") == NULL && head->len < 16384)
    {
      gssize n = g_socket_receive (socket, buffer, sizeof buffer, NULL, NULL);

      if (n <= 0)
        break;
      g_string_append_len (head, buffer, n);
    }

  return g_string_free (head, FALSE);
}

static gboolean
is_checksum_list (const char *path)
{
  g_autofree char *base = g_path_get_basename (path);

  return g_str_has_suffix (base, "SUMS") || g_str_has_suffix (base, "CHECKSUM") ||
         g_str_has_suffix (base, ".SHA256") || g_str_has_suffix (base, ".SHA512");
}

/* Changes the first digit of every digest in a checksum list. */
static void
corrupt_checksums (GString *text)
{
  gboolean line_start = TRUE;

  for (gsize i = 0; i < text->len; i++)
    {
      char c = text->str[i];

      if (line_start && g_ascii_isxdigit (c))
        text->str[i] = c == '0' ? '1' : '0';
      if (c == '=' && i + 2 < text->len && text->str[i + 1] == ' ')
        text->str[i + 2] = text->str[i + 2] == '0' ? '1' : '0';
      line_start = c == '\n';
    }
}

static void
serve (FixtureServer *server,
       GSocket       *socket)
{
  g_autofree char *head = read_head (socket);
  g_auto(GStrv) lines = g_strsplit (head, "\r\n", -1);
  g_auto(GStrv) request = NULL;
  g_autofree char *file = NULL;
  g_autoptr(GString) body = NULL;
  const char *path;
  gboolean drop = FALSE, slow = FALSE, bad = FALSE, is_head;
  gint64 range_start = -1;
  guint64 size, start, limit;
  struct stat st;
  int fd = -1;

  request = g_strsplit (lines[0] ? lines[0] : "", " ", 3);
  if (g_strv_length (request) < 2 ||
      !(g_str_equal (request[0], "GET") || g_str_equal (request[0], "HEAD")))
    {
      send_status (socket, 405, "Method Not Allowed");
      return;
    }
  is_head = g_str_equal (request[0], "HEAD");
  path = request[1];

  /* Redirects, answered before anything else: where they point is the
   * test's business, not the file tree's. */
  {
    static const struct { const char *prefix; const char *target; } redirects[] = {
      { "/redirect/", "%s%s" },                   /* http to http: allowed */
      { "/redirect-loop/", "%s/redirect-loop%s" },
      { "/redirect-file/", "file://%s%s" },
      { "/redirect-ftp/", "ftp://127.0.0.1:9%s%s" },
    };

    for (guint i = 0; i < G_N_ELEMENTS (redirects); i++)
      if (g_str_has_prefix (path, redirects[i].prefix))
        {
          const char *rest = path + strlen (redirects[i].prefix) - 1;
          const char *base = g_str_has_prefix (redirects[i].target, "file:") ? server->root
                             : g_str_has_prefix (redirects[i].target, "ftp:") ? "" : server->url;
          g_autofree char *location = g_strdup_printf (redirects[i].target, base, rest);
          g_autofree char *reply = g_strdup_printf ("HTTP/1.1 302 Found\r\nLocation: %s\r\n"
                                                    "Content-Length: 0\r\nConnection: close\r\n\r\n",
                                                    location);

          g_mutex_lock (&server->lock);
          bump (server->counts, path);
          g_mutex_unlock (&server->lock);
          send_all (socket, reply, strlen (reply));
          return;
        }
  }

  if (g_str_has_prefix (path, "/drop-once/"))
    drop = TRUE, path += strlen ("/drop-once");
  else if (g_str_has_prefix (path, "/slow/"))
    slow = TRUE, path += strlen ("/slow");
  else if (g_str_has_prefix (path, "/bad-checksum/"))
    bad = TRUE, path += strlen ("/bad-checksum");

  for (guint i = 1; lines[i] != NULL && *lines[i] != '\0'; i++)
    if (g_ascii_strncasecmp (lines[i], "Range: bytes=", strlen ("Range: bytes=")) == 0)
      range_start = g_ascii_strtoll (lines[i] + strlen ("Range: bytes="), NULL, 10);

  g_mutex_lock (&server->lock);
  if (!is_head)
    {
      bump (server->counts, path);
      if (range_start >= 0)
        bump (server->ranged, path);
    }
  /* Only images are cut off: checksum lists are a few hundred bytes. */
  if (drop && is_checksum_list (path))
    drop = FALSE;
  if (drop && !is_head && g_hash_table_contains (server->dropped, path))
    drop = FALSE;
  else if (drop && !is_head)
    g_hash_table_add (server->dropped, g_strdup (path));
  g_mutex_unlock (&server->lock);

  if (strstr (path, "..") != NULL)
    {
      send_status (socket, 403, "Forbidden");
      return;
    }

  file = g_build_filename (server->root, path, NULL);
  if (g_stat (file, &st) != 0 || !S_ISREG (st.st_mode))
    {
      send_status (socket, 404, "Not Found");
      return;
    }

  if (bad && is_checksum_list (path))
    {
      g_autofree char *text = NULL;
      gsize len;

      if (!g_file_get_contents (file, &text, &len, NULL))
        {
          send_status (socket, 500, "Internal Server Error");
          return;
        }
      body = g_string_new_len (text, len);
      corrupt_checksums (body);
      size = body->len;
    }
  else
    {
      fd = g_open (file, O_RDONLY | O_CLOEXEC, 0);
      if (fd < 0)
        {
          send_status (socket, 500, "Internal Server Error");
          return;
        }
      size = st.st_size;
    }

  if (range_start >= 0 && (guint64) range_start >= size)
    {
      g_autofree char *reply = g_strdup_printf ("HTTP/1.1 416 Range Not Satisfiable\r\n"
                                                "Content-Range: bytes */%" G_GUINT64_FORMAT "\r\n"
                                                "Content-Length: 0\r\nConnection: close\r\n\r\n",
                                                size);
      send_all (socket, reply, strlen (reply));
      if (fd >= 0)
        close (fd);
      return;
    }

  start = range_start >= 0 ? (guint64) range_start : 0;
  {
    g_autofree char *reply = NULL;

    if (range_start >= 0)
      reply = g_strdup_printf ("HTTP/1.1 206 Partial Content\r\n"
                               "Content-Range: bytes %" G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT "\r\n"
                               "Content-Length: %" G_GUINT64_FORMAT "\r\n"
                               "Accept-Ranges: bytes\r\nConnection: close\r\n\r\n",
                               start, size - 1, size, size - start);
    else
      reply = g_strdup_printf ("HTTP/1.1 200 OK\r\nContent-Length: %" G_GUINT64_FORMAT "\r\n"
                               "Accept-Ranges: bytes\r\nConnection: close\r\n\r\n", size);
    if (!send_all (socket, reply, strlen (reply)) || is_head)
      {
        if (fd >= 0)
          close (fd);
        return;
      }
  }

  /* A dropped transfer ends halfway, as a connection that breaks. */
  limit = drop ? start + (size - start) / 2 : size;

  if (body != NULL)
    send_all (socket, body->str + start, limit - start);
  else
    {
      g_autofree char *buffer = g_malloc (CHUNK_SIZE);
      guint64 offset = start;

      if (lseek (fd, start, SEEK_SET) < 0)
        offset = limit;
      while (offset < limit)
        {
          ssize_t n = read (fd, buffer, MIN ((guint64) CHUNK_SIZE, limit - offset));

          if (n <= 0 || !send_all (socket, buffer, n))
            break;
          offset += n;
          if (slow)
            g_usleep (1500);
        }
      close (fd);
    }
}

static gpointer
connection_thread (gpointer data)
{
  Connection *connection = data;
  FixtureServer *server = connection->server;

  serve (server, connection->socket);
  g_socket_close (connection->socket, NULL);
  g_object_unref (connection->socket);
  g_free (connection);

  g_mutex_lock (&server->lock);
  server->active--;
  g_cond_broadcast (&server->cond);
  g_mutex_unlock (&server->lock);

  return NULL;
}

static gpointer
accept_thread (gpointer data)
{
  FixtureServer *server = data;

  for (;;)
    {
      GSocket *socket = g_socket_accept (server->listener, server->cancellable, NULL);
      Connection *connection;

      if (socket == NULL)
        {
          if (g_cancellable_is_cancelled (server->cancellable))
            break;
          continue;
        }

      g_socket_set_blocking (socket, TRUE);
      connection = g_new0 (Connection, 1);
      connection->server = server;
      connection->socket = socket;

      g_mutex_lock (&server->lock);
      server->active++;
      g_mutex_unlock (&server->lock);
      g_thread_unref (g_thread_new ("fixture-connection", connection_thread, connection));
    }

  return NULL;
}

FixtureServer *
fixture_server_new (const char  *root,
                    GError     **error)
{
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new (loopback, 0);
  g_autoptr(GSocketAddress) bound = NULL;
  FixtureServer *server;

  server = g_new0 (FixtureServer, 1);
  server->root = g_strdup (root);
  server->cancellable = g_cancellable_new ();
  server->counts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  server->ranged = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  server->dropped = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_mutex_init (&server->lock);
  g_cond_init (&server->cond);

  server->listener = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, error);
  if (server->listener == NULL ||
      !g_socket_bind (server->listener, address, TRUE, error) ||
      !g_socket_listen (server->listener, error) ||
      (bound = g_socket_get_local_address (server->listener, error)) == NULL)
    {
      fixture_server_free (server);
      return NULL;
    }

  server->url = g_strdup_printf ("http://127.0.0.1:%u",
                                 g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound)));
  server->accept_thread = g_thread_new ("fixture-accept", accept_thread, server);

  return server;
}

const char *
fixture_server_get_url (FixtureServer *server)
{
  return server->url;
}

static guint
count_in (FixtureServer *server,
          GHashTable    *table,
          const char    *path)
{
  guint n;

  g_mutex_lock (&server->lock);
  n = GPOINTER_TO_UINT (g_hash_table_lookup (table, path));
  g_mutex_unlock (&server->lock);

  return n;
}

guint
fixture_server_count (FixtureServer *server,
                      const char    *path)
{
  return count_in (server, server->counts, path);
}

guint
fixture_server_count_ranged (FixtureServer *server,
                             const char    *path)
{
  return count_in (server, server->ranged, path);
}

void
fixture_server_reset_counts (FixtureServer *server)
{
  g_mutex_lock (&server->lock);
  g_hash_table_remove_all (server->counts);
  g_hash_table_remove_all (server->ranged);
  g_hash_table_remove_all (server->dropped);
  g_mutex_unlock (&server->lock);
}

void
fixture_server_free (FixtureServer *server)
{
  if (server == NULL)
    return;

  g_cancellable_cancel (server->cancellable);
  if (server->accept_thread != NULL)
    g_thread_join (server->accept_thread);
  if (server->listener != NULL)
    {
      g_socket_close (server->listener, NULL);
      g_object_unref (server->listener);
    }

  g_mutex_lock (&server->lock);
  while (server->active > 0)
    g_cond_wait (&server->cond, &server->lock);
  g_mutex_unlock (&server->lock);

  g_hash_table_unref (server->counts);
  g_hash_table_unref (server->ranged);
  g_hash_table_unref (server->dropped);
  g_mutex_clear (&server->lock);
  g_cond_clear (&server->cond);
  g_object_unref (server->cancellable);
  g_free (server->root);
  g_free (server->url);
  g_free (server);
}
