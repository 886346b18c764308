/* qlean-guest-stream.c: one stream of qlean-guest's data channel
 *
 * A stream is one request to the guest (EXEC, GET, PUT, FS, CONNECT) and
 * everything that flows on it: stdin queued against the guest's credit,
 * the guest's output counted against what the host may hold, the timeout
 * on a silent guest, and the end of a stream that never started. The
 * channel (qlean-guest-channel.c) reads frames and hands each to its
 * stream; all of this runs on the worker thread, except releasing held
 * output, which may happen on any.
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <signal.h>
#include <string.h>
#include <glib/gi18n-lib.h>

#include "qlean-guest-channel-internal.h"
#include "qlean-json-channel-private.h"
#include "qlean-qga-error.h"
#include "qlean-worker-private.h"

/* Receive side: how much of the guest's output the host holds.
 *
 * The guest may send on a stream faster than the stream's consumer takes
 * it: a process whose pipe nobody reads, a download onto a slow disk, a
 * relay client that stopped reading, or a hostile guest that sends
 * without end. One channel carries every stream, so the host cannot stop
 * reading for one stream without stalling the others; only a CONNECT has
 * a credit window of its own. So each DATA payload is handed on as a
 * GBytes that counts itself in its stream's RxAccount until freed, and:
 *
 * - CONNECT: DATA fd 1 beyond the credit window (what the host has not
 *   credited yet) breaks the protocol; the stream is failed and reset.
 * - GET: above QLEAN_GUEST_RECEIVE_LIMIT held, the channel stops reading
 *   until the consumer is down to half of it. A GET's consumer writes
 *   its data out without waiting on the channel (a transfer's thread), so
 *   that pause cannot deadlock; it only slows the other streams down.
 * - FS: the consumer collects everything into one answer; beyond
 *   QLEAN_GUEST_FS_DATA_LIMIT in all the stream is failed.
 * - EXEC (and anything else): the consumer is the user, who may be
 *   waiting for another stream before reading this one, so pausing could
 *   deadlock; above QLEAN_GUEST_RECEIVE_LIMIT held the stream is failed
 *   (a process is killed) with G_IO_ERROR_NO_SPACE.
 *
 * So whatever the guest does, the host holds at most about one limit per
 * stream, plus one read of the channel. */

static void
rx_account_unref (RxAccount *acc)
{
  if (!g_atomic_ref_count_dec (&acc->ref_count))
    return;

  g_weak_ref_clear (&acc->channel);
  g_free (acc);
}

static RxAccount *
rx_account_new (QleanGuestChannel *channel)
{
  RxAccount *acc = g_new0 (RxAccount, 1);

  g_atomic_ref_count_init (&acc->ref_count);
  g_weak_ref_init (&acc->channel, channel);
  return acc;
}

gssize
qlean_guest_rx_account_get_held (RxAccount *acc)
{
  return g_atomic_pointer_get (&acc->held);
}

/* Any thread: a payload died. Wakes the channel once, when it waits for
 * this stream to drop to half its limit. */
static void
rx_account_release (RxAccount *acc,
                    gsize      len)
{
  gssize held = g_atomic_pointer_add (&acc->held, -(gssize) len) - (gssize) len;
  QleanGuestChannel *channel;

  if (held > QLEAN_GUEST_RECEIVE_LIMIT / 2 ||
      !g_atomic_int_compare_and_exchange (&acc->waiting, TRUE, FALSE))
    return;

  channel = g_weak_ref_get (&acc->channel);
  if (channel != NULL)
    qlean_guest_channel_resume_later (channel);
}

typedef struct
{
  RxAccount *acc;
  gsize      len;
  guint8     data[];
} RxChunk;

static void
rx_chunk_free (gpointer data)
{
  RxChunk *chunk = data;

  rx_account_release (chunk->acc, chunk->len);
  rx_account_unref (chunk->acc);
  g_free (chunk);
}

/* A copy of @payload that counts in @acc while it lives. */
GBytes *
qlean_guest_rx_account_wrap (RxAccount    *acc,
                 const guint8 *payload,
                 gsize         len)
{
  RxChunk *chunk = g_malloc (sizeof (RxChunk) + len);

  g_atomic_ref_count_inc (&acc->ref_count);
  chunk->acc = acc;
  chunk->len = len;
  memcpy (chunk->data, payload, len);
  g_atomic_pointer_add (&acc->held, (gssize) len);

  return g_bytes_new_with_free_func (chunk->data, len, rx_chunk_free, chunk);
}

QleanGuestStream *
qlean_guest_stream_ref (QleanGuestStream *stream)
{
  g_atomic_ref_count_inc (&stream->ref_count);
  return stream;
}

void
qlean_guest_stream_unref (QleanGuestStream *stream)
{
  if (!g_atomic_ref_count_dec (&stream->ref_count))
    return;

  qlean_clear_source (&stream->timer);
  g_queue_clear_full (&stream->pending, (GDestroyNotify) g_bytes_unref);
  g_clear_pointer (&stream->rx, rx_account_unref);
  if (stream->destroy != NULL)
    stream->destroy (stream->user_data);
  g_free (stream);
}

/* Sends what the window allows, then the EOF once all data left. */
void
qlean_guest_stream_flush (QleanGuestStream *stream)
{
  QleanGuestChannel *self = stream->channel;

  if (self == NULL)
    return;

  while (!g_queue_is_empty (&stream->pending))
    {
      GBytes *head = g_queue_peek_head (&stream->pending);
      gsize size = g_bytes_get_size (head);

      if (stream->unacked > 0 && stream->unacked + size > QLEAN_GUEST_WINDOW)
        break;

      g_queue_pop_head (&stream->pending);
      stream->queued -= size;
      stream->unacked += size;
      stream->heard = g_get_monotonic_time ();
      qlean_guest_channel_send_frame (self, QLEAN_GUEST_FRAME_DATA, 0, stream->id,
                                      g_bytes_get_data (head, NULL), size);
      g_bytes_unref (head);
    }

  if (stream->eof_queued && !stream->eof_sent && g_queue_is_empty (&stream->pending))
    {
      stream->eof_sent = TRUE;
      stream->heard = g_get_monotonic_time ();
      qlean_guest_channel_send_frame (self, QLEAN_GUEST_FRAME_EOF, 0, stream->id, NULL, 0);
    }
}

void
qlean_guest_stream_send_data (QleanGuestStream *stream,
                              GBytes           *data)
{
  gsize len = g_bytes_get_size (data);
  gsize offset = 0;

  g_return_if_fail (!stream->eof_queued);

  /* Frames carry at most 256 KiB of stdin so that credits flow back
   * steadily and other streams are not stuck behind one huge frame. */
  while (offset < len)
    {
      gsize chunk = MIN (len - offset, 256 * 1024);

      g_queue_push_tail (&stream->pending, g_bytes_new_from_bytes (data, offset, chunk));
      stream->queued += chunk;
      offset += chunk;
    }

  qlean_guest_stream_flush (stream);
}

void
qlean_guest_stream_send_eof (QleanGuestStream *stream)
{
  stream->eof_queued = TRUE;
  qlean_guest_stream_flush (stream);
}

void
qlean_guest_stream_send_signal (QleanGuestStream *stream,
                                int               signum)
{
  guint8 payload[4];

  if (stream->channel == NULL)
    return;

  put_u32 (payload, (guint32) signum);
  if (!stream->signalled)
    stream->heard = g_get_monotonic_time ();
  stream->signalled = TRUE;
  qlean_guest_channel_send_frame (stream->channel, QLEAN_GUEST_FRAME_SIGNAL, 0, stream->id,
                                  payload, sizeof payload);
}

void
qlean_guest_stream_send_window_size (QleanGuestStream *stream,
                                     guint16           rows,
                                     guint16           cols)
{
  guint8 payload[4] = { rows & 0xff, rows >> 8, cols & 0xff, cols >> 8 };

  if (stream->channel == NULL)
    return;

  qlean_guest_channel_send_frame (stream->channel, QLEAN_GUEST_FRAME_WINSIZE, 0, stream->id,
                                  payload, sizeof payload);
}

void
qlean_guest_stream_send_credit (QleanGuestStream *stream,
                                guint32           bytes)
{
  guint8 payload[4];

  if (stream->channel == NULL || bytes == 0)
    return;

  stream->rx_window -= MIN (stream->rx_window, bytes);
  put_u32 (payload, bytes);
  qlean_guest_channel_send_frame (stream->channel, QLEAN_GUEST_FRAME_CREDIT, 1, stream->id,
                                  payload, sizeof payload);
}

gsize
qlean_guest_stream_get_held (QleanGuestStream *stream)
{
  switch (stream->request_type)
    {
    case QLEAN_GUEST_FRAME_CONNECT:
      return stream->rx_window;
    case QLEAN_GUEST_FRAME_FS:
      return stream->rx_total;
    default:
      return stream->rx ? (gsize) MAX (qlean_guest_rx_account_get_held (stream->rx), 0) : 0;
    }
}

gsize
qlean_guest_stream_get_unacked (QleanGuestStream *stream)
{
  return stream->unacked + stream->queued;
}

void
qlean_guest_stream_set_writable_func (QleanGuestStream *stream,
                                      GSourceFunc       func,
                                      gpointer          user_data)
{
  stream->writable_func = func;
  stream->writable_data = user_data;
}

void
qlean_guest_stream_close (QleanGuestStream *stream)
{
  QleanGuestChannel *self = stream->channel;

  if (self == NULL)
    return;

  stream->channel = NULL;
  qlean_clear_source (&stream->timer);
  /* Nothing more comes for it: reading need not wait for it any longer. */
  if (self->paused_on == stream)
    qlean_guest_channel_resume_later (g_object_ref (self));
  g_hash_table_remove (self->streams, GUINT_TO_POINTER (stream->id));
}

/* Whether the guest owes the stream a frame: always, except on a PUT
 * while the host is the one to send (nothing unacknowledged, no EOF, no
 * SIGNAL asking to cancel). */
static gboolean
qlean_guest_stream_awaits_guest (QleanGuestStream *stream)
{
  return stream->request_type != QLEAN_GUEST_FRAME_PUT || stream->eof_sent ||
         stream->signalled || qlean_guest_stream_get_unacked (stream) > 0;
}

static void qlean_guest_stream_arm (QleanGuestStream *stream,
                                    guint             delay_ms);

static gboolean
qlean_guest_stream_timeout_cb (gpointer user_data)
{
  QleanGuestStream *stream = user_data;
  gint64 silent_ms = (g_get_monotonic_time () - stream->heard) / G_TIME_SPAN_MILLISECOND;
  g_autoptr(GError) error = NULL;

  g_clear_pointer (&stream->timer, g_source_unref);

  if (stream->channel == NULL)
    return G_SOURCE_REMOVE;

  /* While reading waits for a GET's consumer, the guest cannot be heard:
   * its silence is ours. */
  if (!qlean_guest_stream_awaits_guest (stream) || stream->channel->paused_on != NULL)
    {
      stream->heard = g_get_monotonic_time ();
      silent_ms = 0;
    }
  if (silent_ms < stream->timeout_ms)
    {
      qlean_guest_stream_arm (stream, stream->timeout_ms - (guint) silent_ms);
      return G_SOURCE_REMOVE;
    }

  /* Ask the guest to drop the request should it wake up: a GET or PUT
   * stops (though one whose data all arrived may still complete), a
   * command not yet started is killed. Whatever it sends on the stream
   * after that is ignored. */
  error = g_error_new (G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                       _("qlean-guest sent nothing for %u ms (stopped, or too busy?); the wait "
                         "is the guest agent client's timeout (QleanQgaClient:timeout)"),
                       stream->timeout_ms);
  qlean_guest_stream_ref (stream);
  qlean_guest_stream_send_signal (stream, stream->request_type == QLEAN_GUEST_FRAME_EXEC ? SIGKILL : SIGTERM);
  qlean_guest_stream_close (stream);
  stream->func (stream, QLEAN_GUEST_STREAM_CLOSED, 0, NULL, error, stream->user_data);
  qlean_guest_stream_unref (stream);

  return G_SOURCE_REMOVE;
}

static void
qlean_guest_stream_arm (QleanGuestStream *stream,
                        guint             delay_ms)
{
  qlean_clear_source (&stream->timer);
  stream->timer = qlean_add_timeout (qlean_worker_get_context (), delay_ms,
                                     qlean_guest_stream_timeout_cb, stream);
}

void
qlean_guest_stream_set_timeout (QleanGuestStream *stream,
                                guint             timeout_ms)
{
  g_assert (qlean_worker_is_current ());

  stream->timeout_ms = timeout_ms;
  stream->heard = g_get_monotonic_time ();
  qlean_clear_source (&stream->timer);
  if (timeout_ms > 0 && stream->channel != NULL)
    qlean_guest_stream_arm (stream, timeout_ms);
}

/* A stream that ends before anything was sent: opened on a closed
 * channel (it ends as if the channel closed under it), or with a request
 * the guest could not take. It ends with @error once its opener had the
 * chance to keep it. */
typedef struct
{
  QleanGuestStream *stream;
  GError           *error;
} EarlyEnd;

static void
early_end_free (EarlyEnd *end)
{
  qlean_guest_stream_unref (end->stream);
  g_error_free (end->error);
  g_free (end);
}

static gboolean
qlean_guest_stream_early_end_cb (gpointer user_data)
{
  EarlyEnd *end = user_data;

  end->stream->func (end->stream, QLEAN_GUEST_STREAM_CLOSED, 0, NULL, end->error,
                     end->stream->user_data);
  return G_SOURCE_REMOVE;
}

static QleanGuestStream *
qlean_guest_stream_end_early (QleanGuestStream *stream,
                              GError           *error)
{
  GSource *source = g_idle_source_new ();
  EarlyEnd *end = g_new0 (EarlyEnd, 1);

  stream->channel = NULL;
  end->stream = qlean_guest_stream_ref (stream);
  end->error = error;
  g_source_set_callback (source, qlean_guest_stream_early_end_cb, end, (GDestroyNotify) early_end_free);
  g_source_set_static_name (source, "[qlean] stream ends before it starts");
  g_source_attach (source, qlean_worker_get_context ());
  g_source_unref (source);
  return stream;
}

QleanGuestStream *
qlean_guest_channel_open_stream (QleanGuestChannel    *self,
                                 guint8                request_type,
                                 GBytes               *request,
                                 QleanGuestStreamFunc  func,
                                 gpointer              user_data,
                                 GDestroyNotify        destroy)
{
  QleanGuestStream *stream = g_new0 (QleanGuestStream, 1);
  gsize len;
  gconstpointer data = g_bytes_get_data (request, &len);

  g_assert (qlean_worker_is_current ());

  g_atomic_ref_count_init (&stream->ref_count);
  stream->channel = self;
  stream->request_type = request_type;
  stream->func = func;
  stream->user_data = user_data;
  stream->destroy = destroy;
  g_queue_init (&stream->pending);
  stream->rx = rx_account_new (self);

  if (self->state == CHANNEL_CLOSED)
    return qlean_guest_stream_end_early (stream, qlean_guest_channel_closed_error ());

  /* qlean-guest skips a frame longer than the cap as debris, and would
   * then read the request's own bytes (a path, an argument) as frames. */
  if (len > QLEAN_GUEST_MAX_PAYLOAD)
    return qlean_guest_stream_end_early (stream,
                                         g_error_new (G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE,
                                                      _("the request takes %" G_GSIZE_FORMAT " bytes, "
                                                        "more than the %u bytes qlean-guest reads "
                                                        "in one frame; use shorter paths, arguments "
                                                        "or environment"),
                                                      len, QLEAN_GUEST_MAX_PAYLOAD));

  do
    stream->id = self->next_id++;
  while (stream->id == 0 || g_hash_table_contains (self->streams, GUINT_TO_POINTER (stream->id)));

  g_hash_table_insert (self->streams, GUINT_TO_POINTER (stream->id), qlean_guest_stream_ref (stream));
  qlean_guest_channel_send_frame (self, request_type, 0, stream->id, data, len);

  return stream;
}

/* The guest sent more on @stream than the host may hold: the guest is
 * told to stop (a process is killed, a connection reset, a transfer
 * cancelled), what it still sends on the stream is dropped, and the
 * consumer learns why. The channel and its other streams carry on. */
static void
qlean_guest_stream_overflow (QleanGuestStream *stream,
                             GError           *error)
{
  qlean_guest_stream_ref (stream);
  qlean_guest_stream_send_signal (stream, stream->request_type == QLEAN_GUEST_FRAME_EXEC ? SIGKILL : SIGTERM);
  qlean_guest_stream_close (stream);
  stream->func (stream, QLEAN_GUEST_STREAM_CLOSED, 0, NULL, error, stream->user_data);
  qlean_guest_stream_unref (stream);
  g_error_free (error);
}

/* Whether @stream may take @len more bytes of DATA (see "Receive side"
 * above); if not, the stream is failed. */
gboolean
qlean_guest_stream_take_data (QleanGuestStream *stream,
                              guint8            fd,
                              gsize             len)
{
  g_autofree char *limit = NULL;

  switch (stream->request_type)
    {
    case QLEAN_GUEST_FRAME_CONNECT:
      if (fd != 1)
        return TRUE;
      if (stream->rx_window + len <= QLEAN_GUEST_WINDOW)
        {
          stream->rx_window += len;
          return TRUE;
        }
      limit = g_format_size (QLEAN_GUEST_WINDOW);
      qlean_guest_stream_overflow (stream,
          g_error_new (QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_PROTOCOL,
                       _("qlean-guest broke the protocol: it sent more on a connection than its "
                         "credit window of %s allows, so the connection was reset"), limit));
      return FALSE;

    case QLEAN_GUEST_FRAME_FS:
      if (stream->rx_total + len <= QLEAN_GUEST_FS_DATA_LIMIT)
        {
          stream->rx_total += len;
          return TRUE;
        }
      limit = g_format_size (QLEAN_GUEST_FS_DATA_LIMIT);
      qlean_guest_stream_overflow (stream,
          g_error_new (G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                       _("qlean-guest sent more than %s for one file system call, more than any "
                         "answer may take; the call was stopped"), limit));
      return FALSE;

    case QLEAN_GUEST_FRAME_GET:
      /* Bounded by pausing the channel instead (see maybe_pause()). */
      return TRUE;

    default:
      if ((gsize) MAX (qlean_guest_rx_account_get_held (stream->rx), 0) + len <= QLEAN_GUEST_RECEIVE_LIMIT)
        return TRUE;
      limit = g_format_size (QLEAN_GUEST_RECEIVE_LIMIT);
      qlean_guest_stream_overflow (stream,
          g_error_new (G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                       _("qlean-guest sent more than the host took: %s of its output waited "
                         "unread, the most one stream may hold, so it was stopped"), limit));
      return FALSE;
    }
}

