/* qlean-guest-process-agent-stdin.c: a stdin pipe through the stock QEMU guest agent
 *
 * SPDX-License-Identifier: MIT
 *
 * The stock agent can give a process input only at its start
 * (guest-exec's input-data). For a stdin pipe, the agent driver's start
 * script puts a pump between the process and its directory DIR in the
 * guest (qlean-guest-process-agent.c): it cats the chunk files DIR/in.0,
 * DIR/in.1, ... into the process's stdin, in order, each once its
 * marker DIR/ok.N says it is complete, removes both, and ends (the
 * process sees end-of-file) once DIR/end is there and no ok.N is left.
 *
 * This file is the host's half: it reads what the user writes into the
 * process's stdin pipe and ships it as those files, with guest-file-open,
 * guest-file-write and guest-file-close only (no shell, no string of the
 * user's anywhere but in a file's contents). At most AGENT_STDIN_AHEAD
 * chunks (of 1 MiB) wait in the guest for the pump, and two more on the
 * host (one in flight, one read from the pipe): past
 * that, the pipe is no longer read and the user's writes block, as a
 * full pipe blocks them. A chunk the pump took is gone from DIR: opening
 * it fails, which is how the host knows.
 *
 * It is apart from the driver because it has a life of its own: it
 * outlives the process while an agent call is in flight, and its state
 * is a second sequence of calls beside the driver's polling.
 */

#include "config.h"

#include <errno.h>
#include <unistd.h>
#include <glib-unix.h>
#include <glib/gi18n-lib.h>

#include "qlean-guest-process-private.h"
#include "qlean-json-channel-private.h"
#include "qlean-qga-error.h"
#include "qlean-worker-private.h"

/* One chunk file, written in pieces: the most one guest-file-write
 * carries (the agent's JSON parsing, not the size, limits the rate past
 * about 256 KiB). 10 MiB through `cat` took 4.4-4.6 s with 1 MiB chunks
 * against 5.9-7.0 s with 256 KiB ones (fewer opens, closes and markers),
 * about what guest-exec's input-data takes for the same bytes. */
#define AGENT_STDIN_CHUNK (1024 * 1024)
#define AGENT_STDIN_WRITE (256 * 1024)
/* Chunks shipped but not yet taken by the pump. */
#define AGENT_STDIN_AHEAD 4
/* Looks at whether the pump took the oldest chunk back off between. */
#define AGENT_STDIN_PROBE_FIRST_MS 2
#define AGENT_STDIN_PROBE_MAX_MS 100

struct _QleanGuestAgentStdin
{
  QleanQgaClient           *qga;
  char                     *dir;
  int                       fd;          /* the host's end of the pipe, or -1 */
  GSource                  *fd_source;
  GByteArray               *buffer;      /* read, not yet a chunk */
  gboolean                  eof;         /* the user closed the pipe */
  GBytes                   *chunk;       /* being shipped */
  gsize                     written;     /* of chunk */
  gint64                    handle;      /* of the file being written, or -1 */
  guint64                   next;        /* the chunk's number */
  guint64                   taken;       /* chunks below it are gone from DIR */
  gboolean                  ended;       /* DIR/end is there */
  gboolean                  busy;        /* an agent call is in flight */
  GSource                  *timer;
  guint                     delay_ms;
  gboolean                  stopped;
  QleanGuestAgentStdinFailed failed;
  gpointer                  user_data;
};

static void stdin_step (QleanGuestAgentStdin *self);
static void stdin_watch (QleanGuestAgentStdin *self);

static void
stdin_free (QleanGuestAgentStdin *self)
{
  g_assert (self->fd < 0 && self->fd_source == NULL && self->timer == NULL);

  g_clear_pointer (&self->buffer, g_byte_array_unref);
  g_clear_pointer (&self->chunk, g_bytes_unref);
  g_object_unref (self->qga);
  g_free (self->dir);
  g_free (self);
}

static void
stdin_close_fd (QleanGuestAgentStdin *self)
{
  qlean_clear_source (&self->fd_source);
  if (self->fd >= 0)
    close (self->fd);
  self->fd = -1;
}

static void
stdin_orphan_closed_cb (GObject      *source,
                        GAsyncResult *result,
                        gpointer      user_data)
{
  qlean_qga_client_file_close_finish (QLEAN_QGA_CLIENT (source), result, NULL);
  stdin_free (user_data);
}

/* Stopped while a call was in flight: closes the file it may have left
 * open in the agent, then goes. */
static void
stdin_finish_stopped (QleanGuestAgentStdin *self)
{
  gint64 handle = self->handle;

  self->handle = -1;
  if (handle >= 0 && !qlean_qga_client_is_closed (self->qga))
    qlean_qga_client_file_close_async (self->qga, handle, NULL, stdin_orphan_closed_cb, self);
  else
    stdin_free (self);
}

/* An agent call answered: FALSE when the feeder is over (stopped, or the
 * call failed and the driver was told). */
static gboolean
stdin_call_done (QleanGuestAgentStdin *self,
                 GError               *error)
{
  self->busy = FALSE;
  if (self->stopped)
    {
      g_clear_error (&error);
      stdin_finish_stopped (self);
      return FALSE;
    }
  if (error != NULL)
    {
      QleanGuestAgentStdinFailed failed = self->failed;

      /* The driver stops this feeder (qlean_guest_agent_stdin_stop())
       * from its handler. */
      self->failed = NULL;
      failed (error, self->user_data);
      return FALSE;
    }

  return TRUE;
}

static char *
stdin_path (QleanGuestAgentStdin *self,
            const char           *kind,
            guint64               number)
{
  g_autofree char *name = g_strdup_printf ("%s.%" G_GUINT64_FORMAT, kind, number);

  return g_build_filename (self->dir, name, NULL);
}

static void stdin_make_marker (QleanGuestAgentStdin *self,
                               char                 *path);

/* A file closed: a chunk's, all written (its marker comes next), or a
 * marker's or a probe's (the next step). */
static void
stdin_closed_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  QleanGuestAgentStdin *self = user_data;
  GError *error = NULL;

  self->handle = -1;
  qlean_qga_client_file_close_finish (QLEAN_QGA_CLIENT (source), result, &error);
  if (!stdin_call_done (self, error))
    return;

  if (self->chunk != NULL && self->written == g_bytes_get_size (self->chunk))
    stdin_make_marker (self, stdin_path (self, "ok", self->next));
  else
    stdin_step (self);
}

/* Making DIR/ok.N or DIR/end: an empty file, opened and closed. */
static void
stdin_marker_opened_cb (GObject      *source,
                        GAsyncResult *result,
                        gpointer      user_data)
{
  QleanGuestAgentStdin *self = user_data;
  GError *error = NULL;

  self->handle = qlean_qga_client_file_open_finish (QLEAN_QGA_CLIENT (source), result, &error);
  if (!stdin_call_done (self, error))
    return;

  if (self->chunk != NULL)
    {
      /* ok.N: the chunk is the pump's now. */
      g_clear_pointer (&self->chunk, g_bytes_unref);
      self->next++;
      stdin_watch (self);
    }
  else
    self->ended = TRUE;
  self->busy = TRUE;
  qlean_qga_client_file_close_async (self->qga, self->handle, NULL, stdin_closed_cb, self);
}

static void
stdin_make_marker (QleanGuestAgentStdin *self,
                   char                 *path)
{
  self->busy = TRUE;
  qlean_qga_client_file_open_async (self->qga, path, "w", NULL, stdin_marker_opened_cb, self);
  g_free (path);
}

static void stdin_write (QleanGuestAgentStdin *self);

static void
stdin_written_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  QleanGuestAgentStdin *self = user_data;
  GError *error = NULL;
  gssize count = qlean_qga_client_file_write_finish (QLEAN_QGA_CLIENT (source), result, &error);

  /* qemu-ga writes all or fails: a count of nothing would loop. */
  if (error == NULL && count == 0)
    error = g_error_new_literal (QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_PROTOCOL,
                                 _("The guest agent wrote nothing of a process's input"));
  if (!stdin_call_done (self, error))
    return;

  self->written += count;
  stdin_write (self);
}

/* Writes what is left of the chunk, then closes its file. */
static void
stdin_write (QleanGuestAgentStdin *self)
{
  gsize size = g_bytes_get_size (self->chunk);

  self->busy = TRUE;
  if (self->written < size)
    {
      g_autoptr(GBytes) rest = g_bytes_new_from_bytes (self->chunk, self->written,
                                                      MIN (size - self->written,
                                                           AGENT_STDIN_WRITE));

      qlean_qga_client_file_write_async (self->qga, self->handle, rest, NULL, stdin_written_cb,
                                         self);
      return;
    }

  qlean_qga_client_file_close_async (self->qga, self->handle, NULL, stdin_closed_cb, self);
}

static void
stdin_chunk_opened_cb (GObject      *source,
                       GAsyncResult *result,
                       gpointer      user_data)
{
  QleanGuestAgentStdin *self = user_data;
  GError *error = NULL;

  self->handle = qlean_qga_client_file_open_finish (QLEAN_QGA_CLIENT (source), result, &error);
  if (!stdin_call_done (self, error))
    return;

  stdin_write (self);
}

static gboolean
stdin_timer_cb (gpointer user_data)
{
  QleanGuestAgentStdin *self = user_data;

  g_clear_pointer (&self->timer, g_source_unref);
  /* The probe's close may still be in flight: then its answer steps. */
  stdin_step (self);
  return G_SOURCE_REMOVE;
}

/* Whether the pump took the oldest chunk still counted: its file is
 * gone once it did. */
static void
stdin_probe_cb (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  QleanGuestAgentStdin *self = user_data;
  GError *error = NULL;

  self->handle = qlean_qga_client_file_open_finish (QLEAN_QGA_CLIENT (source), result, &error);
  if (self->handle < 0 && g_error_matches (error, QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_FAILED))
    {
      /* Gone: taken. */
      g_clear_error (&error);
      if (!stdin_call_done (self, NULL))
        return;
      self->taken++;
      self->delay_ms = AGENT_STDIN_PROBE_FIRST_MS;
      stdin_step (self);
      return;
    }
  if (!stdin_call_done (self, error))
    return;

  /* Still there: close it, and look again a little later. */
  self->busy = TRUE;
  qlean_qga_client_file_close_async (self->qga, self->handle, NULL, stdin_closed_cb, self);
  self->timer = qlean_add_timeout (qlean_worker_get_context (), self->delay_ms, stdin_timer_cb,
                                   self);
  self->delay_ms = MIN (self->delay_ms * 2, AGENT_STDIN_PROBE_MAX_MS);
}

/* The next thing to do, unless a call or a wait is under way: wait for
 * the pump while too much waits for it, else ship a chunk of what was
 * read, else make DIR/end once the user closed the pipe. */
static void
stdin_step (QleanGuestAgentStdin *self)
{
  if (self->busy || self->timer != NULL || self->stopped || self->ended)
    return;

  if (self->chunk == NULL && self->buffer->len > 0)
    {
      self->chunk = g_byte_array_free_to_bytes (g_steal_pointer (&self->buffer));
      self->written = 0;
      self->buffer = g_byte_array_sized_new (AGENT_STDIN_CHUNK);
      stdin_watch (self);
    }

  if (self->chunk != NULL)
    {
      self->busy = TRUE;
      if (self->next - self->taken >= AGENT_STDIN_AHEAD)
        {
          g_autofree char *path = stdin_path (self, "in", self->taken);

          qlean_qga_client_file_open_async (self->qga, path, "r", NULL, stdin_probe_cb, self);
        }
      else
        {
          g_autofree char *path = stdin_path (self, "in", self->next);

          qlean_qga_client_file_open_async (self->qga, path, "w", NULL, stdin_chunk_opened_cb,
                                            self);
        }
      return;
    }

  if (self->eof)
    stdin_make_marker (self, g_build_filename (self->dir, "end", NULL));
}

/* Reads what the user wrote, up to a chunk's worth held on the host. */
static gboolean
stdin_readable_cb (gint         fd,
                   GIOCondition condition,
                   gpointer     user_data)
{
  QleanGuestAgentStdin *self = user_data;

  while (self->buffer->len < AGENT_STDIN_CHUNK)
    {
      guint old_len = self->buffer->len;
      ssize_t n;

      g_byte_array_set_size (self->buffer, AGENT_STDIN_CHUNK);
      do
        n = read (fd, self->buffer->data + old_len, AGENT_STDIN_CHUNK - old_len);
      while (n < 0 && errno == EINTR);
      g_byte_array_set_size (self->buffer, old_len + MAX (n, 0));

      if (n < 0 && errno == EAGAIN)
        break;
      if (n <= 0)
        {
          /* The user closed the pipe (or it broke): the process gets
           * end-of-file after what came before. */
          self->eof = TRUE;
          stdin_close_fd (self);
          stdin_step (self);
          return G_SOURCE_REMOVE;
        }
    }

  stdin_step (self);
  if (self->buffer->len >= AGENT_STDIN_CHUNK)
    {
      /* Full: the pipe waits until the chunk in flight is the pump's. */
      g_clear_pointer (&self->fd_source, g_source_unref);
      return G_SOURCE_REMOVE;
    }
  return G_SOURCE_CONTINUE;
}

static void
stdin_watch (QleanGuestAgentStdin *self)
{
  if (self->fd < 0 || self->fd_source != NULL || self->buffer->len >= AGENT_STDIN_CHUNK)
    return;

  self->fd_source = g_unix_fd_source_new (self->fd, G_IO_IN | G_IO_HUP | G_IO_ERR);
  g_source_set_callback (self->fd_source, (GSourceFunc) (void (*) (void)) stdin_readable_cb, self,
                         NULL);
  g_source_set_static_name (self->fd_source, "[qlean] guest agent stdin pipe");
  g_source_attach (self->fd_source, qlean_worker_get_context ());
}

QleanGuestAgentStdin *
qlean_guest_agent_stdin_new (QleanQgaClient             *qga,
                             const char                 *dir,
                             int                         fd,
                             QleanGuestAgentStdinFailed  failed,
                             gpointer                    user_data)
{
  QleanGuestAgentStdin *self = g_new0 (QleanGuestAgentStdin, 1);

  self->qga = g_object_ref (qga);
  self->dir = g_strdup (dir);
  self->fd = fd;
  self->handle = -1;
  self->buffer = g_byte_array_sized_new (AGENT_STDIN_CHUNK);
  self->delay_ms = AGENT_STDIN_PROBE_FIRST_MS;
  self->failed = failed;
  self->user_data = user_data;
  stdin_watch (self);

  return self;
}

void
qlean_guest_agent_stdin_stop (QleanGuestAgentStdin *self)
{
  self->stopped = TRUE;
  self->failed = NULL;
  /* The user's writes from now on fail (a broken pipe), as they would
   * into an ended local process's stdin. */
  stdin_close_fd (self);
  qlean_clear_source (&self->timer);

  /* A call in flight frees it when it answers. A probe's close is in
   * flight while its timer runs. */
  if (self->busy)
    return;
  stdin_finish_stopped (self);
}
