/* qlean-guest-output-pipe.c: a guest's output on its way to a host pipe
 *
 * SPDX-License-Identifier: MIT
 *
 * A guest process's stdout and stderr reach the user as real pipes on
 * the host, written by the worker thread as DATA frames arrive. The
 * worker serves every stream of the machine's channel, so it must never
 * block on a pipe whose reader is slow: what the pipe does not take now
 * waits here for POLLOUT. Apart from QleanGuestProcess because it knows
 * nothing of processes or frames.
 */

#include "config.h"

#include <errno.h>
#include <unistd.h>
#include <glib-unix.h>

#include "qlean-guest-output-pipe-private.h"
#include "qlean-json-channel-private.h"
#include "qlean-worker-private.h"

void
qlean_guest_output_pipe_init (QleanGuestOutputPipe *pipe)
{
  pipe->fd = -1;
  g_queue_init (&pipe->chunks);
  pipe->offset = 0;
  pipe->source = NULL;
  pipe->eof = FALSE;
}

void
qlean_guest_output_pipe_close (QleanGuestOutputPipe *pipe)
{
  qlean_clear_source (&pipe->source);
  g_queue_clear_full (&pipe->chunks, (GDestroyNotify) g_bytes_unref);
  pipe->offset = 0;
  if (pipe->fd >= 0)
    {
      close (pipe->fd);
      pipe->fd = -1;
    }
}

gsize
qlean_guest_output_pipe_get_queued (QleanGuestOutputPipe *pipe)
{
  gsize queued = 0;

  for (GList *l = pipe->chunks.head; l != NULL; l = l->next)
    queued += g_bytes_get_size (l->data);

  return queued - pipe->offset;
}

static gboolean
qlean_guest_output_pipe_writable_cb (gint         fd,
                                     GIOCondition condition,
                                     gpointer     user_data)
{
  QleanGuestOutputPipe *pipe = user_data;

  g_clear_pointer (&pipe->source, g_source_unref);
  qlean_guest_output_pipe_flush (pipe);

  return G_SOURCE_REMOVE;
}

void
qlean_guest_output_pipe_flush (QleanGuestOutputPipe *pipe)
{
  while (pipe->fd >= 0 && !g_queue_is_empty (&pipe->chunks))
    {
      GBytes *head = g_queue_peek_head (&pipe->chunks);
      gsize len;
      const guint8 *data = g_bytes_get_data (head, &len);
      ssize_t n = write (pipe->fd, data + pipe->offset, len - pipe->offset);

      if (n < 0 && errno == EINTR)
        continue;

      if (n < 0 && errno == EAGAIN)
        {
          if (pipe->source == NULL)
            {
              pipe->source = g_unix_fd_source_new (pipe->fd, G_IO_OUT | G_IO_ERR);
              g_source_set_callback (pipe->source,
                                     (GSourceFunc) (void (*) (void)) qlean_guest_output_pipe_writable_cb,
                                     pipe, NULL);
              g_source_set_static_name (pipe->source, "[qlean] guest output pipe");
              g_source_attach (pipe->source, qlean_worker_get_context ());
            }
          return;
        }

      if (n < 0)
        {
          /* The reader went away (EPIPE): drop the rest, like a pipe. */
          qlean_guest_output_pipe_close (pipe);
          return;
        }

      pipe->offset += n;
      if (pipe->offset == len)
        {
          g_bytes_unref (g_queue_pop_head (&pipe->chunks));
          pipe->offset = 0;
        }
    }

  qlean_clear_source (&pipe->source);
  if (pipe->eof && pipe->fd >= 0)
    qlean_guest_output_pipe_close (pipe);
}
