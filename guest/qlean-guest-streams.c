/* qlean-guest-streams.c: the stream table and its flow control
 *
 * SPDX-License-Identifier: MIT
 *
 * Every request (EXEC, PUT, GET, CONNECT) runs as a stream: an entry in
 * G.streams found by its id, closed (and freed at the end of the loop's
 * iteration) when it ends. This file holds what all kinds share: finding,
 * creating, closing and aborting streams, and the host-to-guest window
 * (CREDIT) that every kind taking DATA fd 0 obeys.
 */

#include "qlean-guest-private.h"

/* ------------------------------------------------------------------------ */
/* Streams                                                                   */

Stream *stream_find (uint32_t id)
{
  for (size_t i = 0; i < G.n_streams; i++)
    if (!G.streams[i]->dead && G.streams[i]->id == id)
      return G.streams[i];
  return NULL;
}

Stream *stream_find_pid (pid_t pid)
{
  for (size_t i = 0; i < G.n_streams; i++)
    {
      Stream *s = G.streams[i];
      if (!s->dead && s->kind == STREAM_EXEC && s->pid == pid && !s->exited)
        return s;
    }
  return NULL;
}

Stream *stream_new (uint32_t id, StreamKind kind)
{
  Stream *s = xmalloc (sizeof *s);

  memset (s, 0, sizeof *s);
  s->id = id;
  s->kind = kind;
  s->fd_in = s->fd_out = s->fd_err = s->file_fd = s->sock = -1;
  if (G.n_streams == G.cap_streams)
    {
      G.cap_streams = G.cap_streams ? G.cap_streams * 2 : 16;
      G.streams = xrealloc (G.streams, G.cap_streams * sizeof *G.streams);
    }
  G.streams[G.n_streams++] = s;
  return s;
}

void close_fd (int *fd)
{
  if (*fd >= 0)
    close (*fd);
  *fd = -1;
}

void stdin_queue_free (Stream *s)
{
  Chunk *c = s->q_head;
  while (c)
    {
      Chunk *next = c->next;
      s->credit_pending += c->len - c->off;
      free (c);
      c = next;
    }
  s->q_head = s->q_tail = NULL;
}

/* Queues DATA fd 0 that its destination cannot take now. */
void stdin_queue_push (Stream *s, const unsigned char *p, uint32_t len)
{
  Chunk *c;

  c = xmalloc (sizeof *c + len);
  c->next = NULL;
  c->len = len;
  c->off = 0;
  memcpy (c->data, p, len);
  if (s->q_tail)
    s->q_tail->next = c;
  else
    s->q_head = c;
  s->q_tail = c;
}

/* Writes the queue to `fd` (with send() for a socket, which must not
 * raise SIGPIPE) until it is empty or `fd` would block, crediting what
 * it takes. False when `fd` failed; what it did not take stays queued. */
bool stdin_queue_write (Stream *s, int fd, bool sock)
{
  while (s->q_head)
    {
      Chunk *c = s->q_head;
      ssize_t n = sock ? send (fd, c->data + c->off, c->len - c->off, MSG_NOSIGNAL)
                       : write (fd, c->data + c->off, c->len - c->off);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          return errno == EAGAIN;
        }
      c->off += (size_t) n;
      s->credit_pending += (uint64_t) n;
      if (c->off == c->len)
        {
          s->q_head = c->next;
          if (!s->q_head)
            s->q_tail = NULL;
          free (c);
        }
    }
  return true;
}

/* Ends a stream. With `kill_it`, a running process group gets SIGKILL
 * (its zombie is reaped later like any other) and a PUT's temporary
 * file is removed. Nothing is sent. */
void stream_close (Stream *s, bool kill_it)
{
  if (s->dead)
    return;
  s->dead = true;
  if (s->kind == STREAM_EXEC && kill_it && s->pid > 0)
    kill (-s->pid, SIGKILL);
  close_fd (&s->fd_in);
  close_fd (&s->fd_out);
  close_fd (&s->fd_err);
  close_fd (&s->file_fd);
  close_fd (&s->sock);
  fileref_unref (s->fref);
  s->fref = NULL;
  stdin_queue_free (s);
  if (s->tmp_path)
    {
      unlink (s->tmp_path);
      free (s->tmp_path);
      s->tmp_path = NULL;
    }
}

/* Ends a stream with ERROR, killing what it runs. */
void stream_abort (Stream *s, int err, const char *fmt, ...)
{
  char msg[4096];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  send_error (s->id, err, "%s", msg);
  stream_close (s, true);
}

void stream_free_dead (void)
{
  size_t j = 0;
  for (size_t i = 0; i < G.n_streams; i++)
    {
      Stream *s = G.streams[i];
      if (s->dead)
        {
          free (s->path);
          free (s);
        }
      else
        G.streams[j++] = s;
    }
  G.n_streams = j;
}

void stream_close_all (void)
{
  for (size_t i = 0; i < G.n_streams; i++)
    stream_close (G.streams[i], true);
}

/* CREDIT for everything consumed since the last one. Sent once per loop
 * iteration (so many small writes make one frame), and before a stream's
 * last frame. */
void stream_flush_credit (Stream *s)
{
  if (s->dead || s->credit_pending == 0)
    return;
  send_u32 (QLEAN_GUEST_FRAME_CREDIT, 0, s->id, (uint32_t) s->credit_pending);
  s->unacked -= s->credit_pending < s->unacked ? s->credit_pending : s->unacked;
  s->credit_pending = 0;
}

void flush_credits (void)
{
  for (size_t i = 0; i < G.n_streams; i++)
    stream_flush_credit (G.streams[i]);
}

/* Checks DATA fd 0 against the window; false (and the stream aborted)
 * when the host overran it. */
bool window_take (Stream *s, uint32_t n)
{
  if (s->unacked + n > QLEAN_GUEST_WINDOW)
    {
      stream_abort (s, EPROTO, "stream %u: DATA beyond the credit window", s->id);
      return false;
    }
  s->unacked += n;
  return true;
}
