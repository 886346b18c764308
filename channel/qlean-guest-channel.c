/* qlean-guest-channel.c: the host end of the qlean-guest protocol
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <signal.h>
#include <string.h>
#include <glib/gi18n-lib.h>

#include "qlean-guest-channel-private.h"
#include "qlean-json-channel-private.h"
#include "qlean-qga-error.h"
#include "qlean-worker-private.h"

#define READ_CHUNK (256 * 1024)
#define HELLO_RESEND_MS 500

/* TLV */

struct _QleanGuestTlv
{
  GByteArray *bytes;
};

QleanGuestTlv *
qlean_guest_tlv_new (void)
{
  QleanGuestTlv *tlv = g_new0 (QleanGuestTlv, 1);

  tlv->bytes = g_byte_array_new ();
  return tlv;
}

void
qlean_guest_tlv_free (QleanGuestTlv *tlv)
{
  if (tlv == NULL)
    return;

  g_byte_array_unref (tlv->bytes);
  g_free (tlv);
}

static void
put_u16 (guint8  *p,
         guint16  value)
{
  p[0] = value & 0xff;
  p[1] = value >> 8;
}

static void
put_u32 (guint8  *p,
         guint32  value)
{
  for (int i = 0; i < 4; i++)
    p[i] = (value >> (8 * i)) & 0xff;
}

static void
put_u64 (guint8  *p,
         guint64  value)
{
  for (int i = 0; i < 8; i++)
    p[i] = (value >> (8 * i)) & 0xff;
}

guint32
qlean_guest_read_u32 (const guint8 *p)
{
  return (guint32) p[0] | ((guint32) p[1] << 8) | ((guint32) p[2] << 16) | ((guint32) p[3] << 24);
}

guint64
qlean_guest_read_u64 (const guint8 *p)
{
  return (guint64) qlean_guest_read_u32 (p) | ((guint64) qlean_guest_read_u32 (p + 4) << 32);
}

void
qlean_guest_tlv_add (QleanGuestTlv *tlv,
                     guint16        tag,
                     gconstpointer  data,
                     gsize          len)
{
  guint8 head[6];

  g_return_if_fail (len <= G_MAXUINT32);

  put_u16 (head, tag);
  put_u32 (head + 2, (guint32) len);
  g_byte_array_append (tlv->bytes, head, sizeof head);
  g_byte_array_append (tlv->bytes, data, len);
}

void
qlean_guest_tlv_add_string (QleanGuestTlv *tlv,
                            guint16        tag,
                            const char    *value)
{
  qlean_guest_tlv_add (tlv, tag, value, strlen (value));
}

void
qlean_guest_tlv_add_u32 (QleanGuestTlv *tlv,
                         guint16        tag,
                         guint32        value)
{
  guint8 bytes[4];

  put_u32 (bytes, value);
  qlean_guest_tlv_add (tlv, tag, bytes, sizeof bytes);
}

void
qlean_guest_tlv_add_i64 (QleanGuestTlv *tlv,
                         guint16        tag,
                         gint64         value)
{
  guint8 bytes[8];

  put_u64 (bytes, (guint64) value);
  qlean_guest_tlv_add (tlv, tag, bytes, sizeof bytes);
}

GBytes *
qlean_guest_tlv_free_to_bytes (QleanGuestTlv *tlv)
{
  GBytes *bytes = g_byte_array_free_to_bytes (g_steal_pointer (&tlv->bytes));

  g_free (tlv);
  return bytes;
}

void
qlean_guest_tlv_iter_init (QleanGuestTlvIter *iter,
                           GBytes            *payload)
{
  iter->data = payload ? g_bytes_get_data (payload, &iter->len) : NULL;
  if (iter->data == NULL)
    iter->len = 0;
  iter->offset = 0;
}

gboolean
qlean_guest_tlv_iter_next (QleanGuestTlvIter  *iter,
                           guint16            *tag,
                           const guint8      **value,
                           gsize              *len,
                           gboolean           *malformed)
{
  guint32 entry_len;

  if (malformed != NULL)
    *malformed = FALSE;

  if (iter->offset == iter->len)
    return FALSE;

  if (iter->len - iter->offset < 6)
    goto bad;

  *tag = (guint16) (iter->data[iter->offset] | (iter->data[iter->offset + 1] << 8));
  entry_len = qlean_guest_read_u32 (iter->data + iter->offset + 2);
  if (entry_len > iter->len - iter->offset - 6)
    goto bad;

  *value = iter->data + iter->offset + 6;
  *len = entry_len;
  iter->offset += 6 + entry_len;
  return TRUE;

bad:
  if (malformed != NULL)
    *malformed = TRUE;
  iter->offset = iter->len;
  return FALSE;
}

gboolean
qlean_guest_decode_stat (const guint8   *value,
                         gsize           len,
                         QleanGuestStat *stat)
{
  if (len < QLEAN_GUEST_STAT_SIZE)
    return FALSE;

  stat->ino = qlean_guest_read_u64 (value);
  stat->size = qlean_guest_read_u64 (value + 8);
  stat->mode = qlean_guest_read_u32 (value + 16);
  stat->uid = qlean_guest_read_u32 (value + 20);
  stat->gid = qlean_guest_read_u32 (value + 24);
  stat->nlink = qlean_guest_read_u32 (value + 28);
  stat->atime_ns = (gint64) qlean_guest_read_u64 (value + 32);
  stat->mtime_ns = (gint64) qlean_guest_read_u64 (value + 40);
  stat->ctime_ns = (gint64) qlean_guest_read_u64 (value + 48);

  return TRUE;
}

GError *
qlean_guest_error_from_payload (GBytes     *payload,
                                const char *what)
{
  gsize len = 0;
  const guint8 *data = payload ? g_bytes_get_data (payload, &len) : NULL;
  g_autofree char *message = NULL;
  int err = 0;

  if (data != NULL && len >= 4)
    {
      err = (int) qlean_guest_read_u32 (data);
      message = g_utf8_make_valid ((const char *) data + 4, len - 4);
    }

  if (message == NULL || *message == '\0')
    {
      g_free (message);
      message = g_strdup (err ? g_strerror (err) : _("unknown error"));
    }

  return g_error_new (G_IO_ERROR, err ? g_io_error_from_errno (err) : G_IO_ERROR_FAILED,
                      "%s: %s", what, message);
}

/* Streams */

/* What the guest's DATA on one stream holds of the host's memory: the
 * payloads handed to the stream's consumer that are still alive. Shared
 * with those payloads, which may die on any thread (a transfer writes its
 * chunks out on a thread of its own). */
typedef struct
{
  gatomicrefcount ref_count;
  gssize          held;      /* atomic */
  gint            waiting;   /* atomic: the channel waits for held to drop */
  GWeakRef        channel;
} RxAccount;

struct _QleanGuestStream
{
  gatomicrefcount       ref_count;
  QleanGuestChannel    *channel;    /* unowned; NULL once closed */
  guint32               id;
  QleanGuestStreamFunc  func;
  gpointer              user_data;
  GDestroyNotify        destroy;
  GQueue                pending;    /* GBytes of stdin not yet sent */
  gboolean              eof_queued;
  gboolean              eof_sent;
  gsize                 unacked;    /* sent, not credited */
  gsize                 queued;     /* in pending */
  GSourceFunc           writable_func;
  gpointer              writable_data;
  guint8                request_type;
  guint                 timeout_ms;  /* 0: wait for the guest forever */
  gint64                heard;       /* last frame from the guest, or since it owes one */
  gboolean              signalled;   /* a SIGNAL went out: an answer is due */
  GSource              *timer;
  RxAccount            *rx;          /* the guest's DATA the consumer still holds */
  gsize                 rx_total;    /* FS: all DATA so far */
  gsize                 rx_window;   /* CONNECT: DATA fd 1 not credited yet */
};

typedef enum
{
  CHANNEL_SYNCING,
  CHANNEL_READY,
  CHANNEL_CLOSED,
} ChannelState;

struct _QleanGuestChannel
{
  GObject       parent_instance;

  GIOStream    *stream;
  GCancellable *cancellable;
  GByteArray   *in;
  guint8       *read_buffer;
  GQueue        out;
  gboolean      writing;
  ChannelState  state;
  gint          ready;          /* atomic mirror of state == READY */
  gint          hello_pending;  /* atomic: a HELLO awaits its answer */
  guint64       nonce;
  GPtrArray    *hello_tasks;
  GSource      *hello_timer;
  GSource      *hello_resend;
  GHashTable   *streams;        /* id -> QleanGuestStream */
  guint32       next_id;
  guint32       guest_version;
  gboolean      reading;        /* a read is under way */
  QleanGuestStream *paused_on;  /* reading waits until this GET's consumer catches up */
};

G_DEFINE_FINAL_TYPE (QleanGuestChannel, qlean_guest_channel, G_TYPE_OBJECT)

static void qlean_guest_channel_write_next (QleanGuestChannel *self);
static void qlean_guest_channel_read (QleanGuestChannel *self);

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

static gssize
rx_account_get_held (RxAccount *acc)
{
  return g_atomic_pointer_get (&acc->held);
}

static gboolean qlean_guest_channel_resume_cb (gpointer user_data);
static void     qlean_guest_channel_unpause   (QleanGuestChannel *self);

/* Any thread, and never at once: the caller may be deep in a parse. */
static void
qlean_guest_channel_resume_later (QleanGuestChannel *self)
{
  GSource *source = g_idle_source_new ();

  g_source_set_callback (source, qlean_guest_channel_resume_cb, self, g_object_unref);
  g_source_set_static_name (source, "[qlean] data channel resumes reading");
  g_source_attach (source, qlean_worker_get_context ());
  g_source_unref (source);
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
static GBytes *
rx_account_wrap (RxAccount    *acc,
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

GBytes *
qlean_guest_frame_new (guint8        type,
                       guint8        fd,
                       guint32       stream,
                       gconstpointer payload,
                       gsize         len)
{
  guint8 *frame = g_malloc (QLEAN_GUEST_HEADER_SIZE + len);

  put_u32 (frame, QLEAN_GUEST_MAGIC);
  frame[4] = type;
  frame[5] = fd;
  put_u16 (frame + 6, 0);
  put_u32 (frame + 8, stream);
  put_u32 (frame + 12, (guint32) len);
  if (len > 0)
    memcpy (frame + QLEAN_GUEST_HEADER_SIZE, payload, len);

  return g_bytes_new_take (frame, QLEAN_GUEST_HEADER_SIZE + len);
}

GBytes *
qlean_guest_frame_header_new (guint8  type,
                              guint8  fd,
                              guint32 stream,
                              gsize   len)
{
  guint8 header[QLEAN_GUEST_HEADER_SIZE];

  put_u32 (header, QLEAN_GUEST_MAGIC);
  header[4] = type;
  header[5] = fd;
  put_u16 (header + 6, 0);
  put_u32 (header + 8, stream);
  put_u32 (header + 12, (guint32) len);

  return g_bytes_new (header, sizeof header);
}

static void
qlean_guest_channel_send_frame (QleanGuestChannel *self,
                                guint8             type,
                                guint8             fd,
                                guint32            stream,
                                gconstpointer      payload,
                                gsize              len)
{
  if (self->state == CHANNEL_CLOSED)
    return;

  g_queue_push_tail (&self->out, qlean_guest_frame_new (type, fd, stream, payload, len));
  qlean_guest_channel_write_next (self);
}

/* Sends what the window allows, then the EOF once all data left. */
static void
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
      return stream->rx ? (gsize) MAX (rx_account_get_held (stream->rx), 0) : 0;
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
  stream->func (stream, 0, 0, NULL, error, stream->user_data);
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

/* What the streams of a channel closed on purpose are told. */
static GError *
qlean_guest_channel_closed_error (void)
{
  return g_error_new_literal (QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_DISCONNECTED,
                              _("The data channel to qlean-guest was closed"));
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

  end->stream->func (end->stream, 0, 0, NULL, end->error, end->stream->user_data);
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

/* The channel */

static void
qlean_guest_channel_finish_hellos (QleanGuestChannel *self,
                                   const GError      *error)
{
  g_autoptr(GPtrArray) tasks = g_steal_pointer (&self->hello_tasks);

  self->hello_tasks = g_ptr_array_new_with_free_func (g_object_unref);
  qlean_clear_source (&self->hello_timer);
  qlean_clear_source (&self->hello_resend);
  g_atomic_int_set (&self->hello_pending, FALSE);

  for (guint i = 0; i < tasks->len; i++)
    {
      GTask *task = g_ptr_array_index (tasks, i);

      if (error != NULL)
        g_task_return_error (task, g_error_copy (error));
      else
        g_task_return_boolean (task, TRUE);
    }
}

/* Every open stream gets @reason (type 0) and is forgotten. */
static void
qlean_guest_channel_end_streams (QleanGuestChannel *self,
                                 const GError      *reason)
{
  g_autoptr(GHashTable) streams = g_steal_pointer (&self->streams);
  g_autoptr(GList) values = NULL;

  self->streams = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify) qlean_guest_stream_unref);
  values = g_hash_table_get_values (streams);
  for (GList *l = values; l != NULL; l = l->next)
    {
      QleanGuestStream *stream = l->data;

      stream->channel = NULL;
      qlean_clear_source (&stream->timer);
      stream->func (stream, 0, 0, NULL, reason, stream->user_data);
    }
}

static void
qlean_guest_channel_close_in_worker (QleanGuestChannel *self,
                                     const GError      *reason)
{

  if (self->state == CHANNEL_CLOSED)
    return;

  self->state = CHANNEL_CLOSED;
  g_atomic_int_set (&self->ready, FALSE);
  g_cancellable_cancel (self->cancellable);
  g_io_stream_close (self->stream, NULL, NULL);
  qlean_guest_channel_finish_hellos (self, reason);
  qlean_guest_channel_unpause (self);

  qlean_guest_channel_end_streams (self, reason);

  /* Drop the reference reading held (see qlean_guest_channel_new). */
  g_object_unref (self);
}

static void
qlean_guest_channel_fail (QleanGuestChannel *self,
                          const char        *why)
{
  g_autoptr(GError) error = g_error_new (QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_DISCONNECTED,
                                         _("The data channel to qlean-guest closed: %s"), why);

  qlean_guest_channel_close_in_worker (self, error);
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
  stream->func (stream, 0, 0, NULL, error, stream->user_data);
  qlean_guest_stream_unref (stream);
  g_error_free (error);
}

/* Whether @stream may take @len more bytes of DATA (see "Receive side"
 * above); if not, the stream is failed. */
static gboolean
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
      if ((gsize) MAX (rx_account_get_held (stream->rx), 0) + len <= QLEAN_GUEST_RECEIVE_LIMIT)
        return TRUE;
      limit = g_format_size (QLEAN_GUEST_RECEIVE_LIMIT);
      qlean_guest_stream_overflow (stream,
          g_error_new (G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                       _("qlean-guest sent more than the host took: %s of its output waited "
                         "unread, the most one stream may hold, so it was stopped"), limit));
      return FALSE;
    }
}

/* After a GET's DATA: while its consumer holds more than the limit, read
 * no further; rx_account_release() calls us back at half of it. */
static void
qlean_guest_channel_maybe_pause (QleanGuestChannel *self,
                                 QleanGuestStream  *stream)
{
  RxAccount *acc = stream->rx;

  if (stream->channel == NULL || self->paused_on != NULL ||
      rx_account_get_held (acc) <= QLEAN_GUEST_RECEIVE_LIMIT)
    return;

  /* Say we wait before looking again, so that a release on another
   * thread either sees it or happened before the look. */
  g_atomic_int_set (&acc->waiting, TRUE);
  if (rx_account_get_held (acc) <= QLEAN_GUEST_RECEIVE_LIMIT / 2 &&
      g_atomic_int_compare_and_exchange (&acc->waiting, TRUE, FALSE))
    return;

  g_debug ("Data channel: stream %u holds %" G_GSSIZE_FORMAT " bytes not yet taken; "
           "reading waits", stream->id, rx_account_get_held (acc));
  self->paused_on = qlean_guest_stream_ref (stream);
}

static void qlean_guest_channel_parse (QleanGuestChannel *self);

/* Worker: the stream reading waited for caught up, or ended. */
static gboolean
qlean_guest_channel_resume_cb (gpointer user_data)
{
  QleanGuestChannel *self = user_data;
  QleanGuestStream *stream = self->paused_on;

  if (stream == NULL || self->state == CHANNEL_CLOSED)
    return G_SOURCE_REMOVE;

  if (stream->channel != NULL && rx_account_get_held (stream->rx) > QLEAN_GUEST_RECEIVE_LIMIT / 2)
    {
      /* An early wake (the stream closed, then this): wait on. */
      g_atomic_int_set (&stream->rx->waiting, TRUE);
      if (rx_account_get_held (stream->rx) > QLEAN_GUEST_RECEIVE_LIMIT / 2 ||
          !g_atomic_int_compare_and_exchange (&stream->rx->waiting, TRUE, FALSE))
        return G_SOURCE_REMOVE;
    }

  g_atomic_int_set (&stream->rx->waiting, FALSE);
  g_clear_pointer (&self->paused_on, qlean_guest_stream_unref);
  qlean_guest_channel_parse (self);
  if (self->paused_on == NULL)
    qlean_guest_channel_read (self);

  return G_SOURCE_REMOVE;
}

/* The channel starts over (reset, close): nothing waits any more. */
static void
qlean_guest_channel_unpause (QleanGuestChannel *self)
{
  if (self->paused_on == NULL)
    return;

  g_atomic_int_set (&self->paused_on->rx->waiting, FALSE);
  g_clear_pointer (&self->paused_on, qlean_guest_stream_unref);
}

static void
qlean_guest_channel_dispatch (QleanGuestChannel *self,
                              guint8             type,
                              guint8             fd,
                              guint32            id,
                              const guint8      *payload,
                              gsize              len)
{
  QleanGuestStream *stream;
  g_autoptr(GBytes) bytes = NULL;

  if (id == 0)
    {
      if (type == QLEAN_GUEST_FRAME_HELLO && len >= 12 &&
          qlean_guest_read_u64 (payload) == self->nonce)
        {
          g_atomic_int_set (&self->guest_version, qlean_guest_read_u32 (payload + 8));
          self->state = CHANNEL_READY;
          g_atomic_int_set (&self->ready, TRUE);
          qlean_guest_channel_finish_hellos (self, NULL);
        }
      return;
    }

  if (self->state != CHANNEL_READY)
    return;

  stream = g_hash_table_lookup (self->streams, GUINT_TO_POINTER (id));
  if (stream == NULL)
    return;

  stream->heard = g_get_monotonic_time ();

  if (type == QLEAN_GUEST_FRAME_CREDIT)
    {
      guint32 credit = len >= 4 ? qlean_guest_read_u32 (payload) : 0;
      gboolean was_full = qlean_guest_stream_get_unacked (stream) >= QLEAN_GUEST_WINDOW / 2;

      stream->unacked -= MIN (stream->unacked, credit);
      qlean_guest_stream_flush (stream);
      if (was_full && stream->writable_func != NULL &&
          qlean_guest_stream_get_unacked (stream) < QLEAN_GUEST_WINDOW / 2)
        stream->writable_func (stream->writable_data);
      return;
    }

  if (type == QLEAN_GUEST_FRAME_DATA)
    {
      if (!qlean_guest_stream_take_data (stream, fd, len))
        return;
      if (stream->request_type == QLEAN_GUEST_FRAME_CONNECT ||
          stream->request_type == QLEAN_GUEST_FRAME_FS)
        bytes = g_bytes_new (payload, len);
      else
        bytes = rx_account_wrap (stream->rx, payload, len);
    }
  else
    bytes = g_bytes_new (payload, len);

  qlean_guest_stream_ref (stream);
  stream->func (stream, type, fd, bytes, NULL, stream->user_data);
  g_clear_pointer (&bytes, g_bytes_unref);
  if (type == QLEAN_GUEST_FRAME_DATA && stream->request_type == QLEAN_GUEST_FRAME_GET)
    qlean_guest_channel_maybe_pause (self, stream);
  qlean_guest_stream_unref (stream);
}

gsize
qlean_guest_frames_parse (const guint8          *data,
                          gsize                  len,
                          QleanGuestFrameFunc    func,
                          gpointer               user_data)
{
  gsize offset = 0;

  while (len - offset >= QLEAN_GUEST_HEADER_SIZE)
    {
      const guint8 *p = data + offset;
      guint32 payload_len;

      /* A bad header is debris from an earlier peer (or a bug): skip
       * ahead to the next magic. */
      if (qlean_guest_read_u32 (p) != QLEAN_GUEST_MAGIC ||
          (payload_len = qlean_guest_read_u32 (p + 12)) > QLEAN_GUEST_MAX_PAYLOAD)
        {
          offset++;
          continue;
        }

      if (len - offset - QLEAN_GUEST_HEADER_SIZE < payload_len)
        break;

      offset += QLEAN_GUEST_HEADER_SIZE + payload_len;
      if (!func (p[4], p[5], qlean_guest_read_u32 (p + 8), p + QLEAN_GUEST_HEADER_SIZE,
                 payload_len, user_data))
        break;
    }

  return offset;
}

static gboolean
qlean_guest_channel_frame_cb (guint8        type,
                              guint8        fd,
                              guint32       stream,
                              const guint8 *payload,
                              gsize         len,
                              gpointer      user_data)
{
  QleanGuestChannel *self = user_data;

  qlean_guest_channel_dispatch (self, type, fd, stream, payload, len);
  /* Paused, the rest of the input waits in self->in. */
  return self->state != CHANNEL_CLOSED && self->paused_on == NULL;
}

/* Until the guest answers our HELLO, the input may hold anything: the
 * tail of an old frame whose length field would swallow the answer. So
 * look for the answer's exact first 24 bytes and drop all before them. */
static void
qlean_guest_channel_skip_to_answer (QleanGuestChannel *self)
{
  guint8 answer[QLEAN_GUEST_HEADER_SIZE + 8];
  const guint8 *found;

  put_u32 (answer, QLEAN_GUEST_MAGIC);
  answer[4] = QLEAN_GUEST_FRAME_HELLO;
  answer[5] = 0;
  put_u16 (answer + 6, 0);
  put_u32 (answer + 8, 0);
  put_u32 (answer + 12, 16);
  put_u64 (answer + 16, self->nonce);

  found = memmem (self->in->data, self->in->len, answer, sizeof answer);
  if (found != NULL)
    g_byte_array_remove_range (self->in, 0, found - self->in->data);
  else if (self->in->len >= sizeof answer)
    g_byte_array_remove_range (self->in, 0, self->in->len - (sizeof answer - 1));
}

static void
qlean_guest_channel_parse (QleanGuestChannel *self)
{
  g_autoptr(QleanGuestChannel) hold = g_object_ref (self);
  gsize consumed;

  if (self->state == CHANNEL_SYNCING)
    qlean_guest_channel_skip_to_answer (self);

  consumed = qlean_guest_frames_parse (self->in->data, self->in->len,
                                       qlean_guest_channel_frame_cb, self);
  if (self->state != CHANNEL_CLOSED)
    g_byte_array_remove_range (self->in, 0, consumed);
}

static void
qlean_guest_channel_read_cb (GObject      *source,
                             GAsyncResult *result,
                             gpointer      user_data)
{
  g_autoptr(QleanGuestChannel) self = user_data;
  g_autoptr(GError) error = NULL;
  gssize n;

  n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &error);
  self->reading = FALSE;
  if (self->state == CHANNEL_CLOSED)
    return;

  if (n <= 0)
    {
      qlean_guest_channel_fail (self, n < 0 ? error->message : _("end of stream"));
      return;
    }

  g_byte_array_append (self->in, self->read_buffer, n);
  qlean_guest_channel_parse (self);
  qlean_guest_channel_read (self);
}

static void
qlean_guest_channel_read (QleanGuestChannel *self)
{
  if (self->state == CHANNEL_CLOSED || self->reading || self->paused_on != NULL)
    return;

  self->reading = TRUE;
  g_input_stream_read_async (g_io_stream_get_input_stream (self->stream),
                             self->read_buffer, READ_CHUNK, G_PRIORITY_DEFAULT,
                             self->cancellable, qlean_guest_channel_read_cb,
                             g_object_ref (self));
}

static void
qlean_guest_channel_write_cb (GObject      *source,
                              GAsyncResult *result,
                              gpointer      user_data)
{
  g_autoptr(QleanGuestChannel) self = user_data;
  g_autoptr(GError) error = NULL;

  self->writing = FALSE;
  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, &error))
    {
      if (self->state != CHANNEL_CLOSED)
        qlean_guest_channel_fail (self, error->message);
      return;
    }

  g_bytes_unref (g_queue_pop_head (&self->out));
  qlean_guest_channel_write_next (self);
}

static void
qlean_guest_channel_write_next (QleanGuestChannel *self)
{
  GBytes *head;
  gsize len;
  gconstpointer data;

  if (self->writing || self->state == CHANNEL_CLOSED)
    return;

  head = g_queue_peek_head (&self->out);
  if (head == NULL)
    return;

  data = g_bytes_get_data (head, &len);
  self->writing = TRUE;
  g_output_stream_write_all_async (g_io_stream_get_output_stream (self->stream),
                                   data, len, G_PRIORITY_DEFAULT, self->cancellable,
                                   qlean_guest_channel_write_cb, g_object_ref (self));
}

static void
qlean_guest_channel_finalize (GObject *object)
{
  QleanGuestChannel *self = QLEAN_GUEST_CHANNEL (object);

  g_queue_clear_full (&self->out, (GDestroyNotify) g_bytes_unref);
  g_clear_pointer (&self->streams, g_hash_table_unref);
  g_clear_pointer (&self->hello_tasks, g_ptr_array_unref);
  g_clear_pointer (&self->in, g_byte_array_unref);
  g_clear_pointer (&self->read_buffer, g_free);
  g_clear_object (&self->cancellable);
  g_clear_object (&self->stream);

  G_OBJECT_CLASS (qlean_guest_channel_parent_class)->finalize (object);
}

static void
qlean_guest_channel_class_init (QleanGuestChannelClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = qlean_guest_channel_finalize;
}

static void
qlean_guest_channel_init (QleanGuestChannel *self)
{
  self->cancellable = g_cancellable_new ();
  self->in = g_byte_array_new ();
  self->read_buffer = g_malloc (READ_CHUNK);
  g_queue_init (&self->out);
  self->hello_tasks = g_ptr_array_new_with_free_func (g_object_unref);
  self->streams = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify) qlean_guest_stream_unref);
  self->next_id = 1;
}

/* Worker thread only. Starts reading at once, to drain what an earlier
 * peer left; until closed, the reading keeps the channel alive. */
QleanGuestChannel *
qlean_guest_channel_new (GIOStream *stream)
{
  QleanGuestChannel *self = g_object_new (QLEAN_TYPE_GUEST_CHANNEL, NULL);

  g_assert (qlean_worker_is_current ());

  self->stream = g_object_ref (stream);
  g_object_ref (self);
  qlean_guest_channel_read (self);

  return self;
}

static gboolean
qlean_guest_channel_hello_timeout_cb (gpointer user_data)
{
  QleanGuestChannel *self = user_data;
  g_autoptr(GError) error = NULL;

  g_clear_pointer (&self->hello_timer, g_source_unref);
  error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                               _("qlean-guest did not answer on the data port"));
  qlean_guest_channel_finish_hellos (self, error);

  return G_SOURCE_REMOVE;
}

static void
qlean_guest_channel_send_hello (QleanGuestChannel *self)
{
  guint8 payload[8];

  put_u64 (payload, self->nonce);
  qlean_guest_channel_send_frame (self, QLEAN_GUEST_FRAME_HELLO, 0, 0, payload, sizeof payload);
}

/* The same HELLO again, until one is answered: the tail of a frame an
 * earlier host left half-written can swallow one whole. Every repeat is
 * in the guest's input before anything we send once it answers, so the
 * answers to the repeats (which reset the guest's streams) can never
 * overtake a request. */
static gboolean
qlean_guest_channel_hello_resend_cb (gpointer user_data)
{
  QleanGuestChannel *self = user_data;

  if (self->state != CHANNEL_SYNCING)
    {
      g_clear_pointer (&self->hello_resend, g_source_unref);
      return G_SOURCE_REMOVE;
    }

  qlean_guest_channel_send_hello (self);
  return G_SOURCE_CONTINUE;
}

/* Sends HELLO and keeps resending it until answered or @timeout_ms
 * passes; any attempt already under way is replaced. */
static void
qlean_guest_channel_start_hello (QleanGuestChannel *self,
                                 guint              timeout_ms)
{
  qlean_clear_source (&self->hello_timer);
  qlean_clear_source (&self->hello_resend);

  /* A fresh nonce for each attempt: an answer to an older one may
   * still be on its way, from a guest program that has since died. */
  self->nonce = ((guint64) g_random_int () << 32) | g_random_int ();
  g_atomic_int_set (&self->hello_pending, TRUE);
  qlean_guest_channel_send_hello (self);
  self->hello_timer = qlean_add_timeout (qlean_worker_get_context (), timeout_ms,
                                         qlean_guest_channel_hello_timeout_cb, self);
  self->hello_resend = qlean_add_timeout (qlean_worker_get_context (), HELLO_RESEND_MS,
                                          qlean_guest_channel_hello_resend_cb, self);
}

typedef struct
{
  QleanGuestChannel *self;
  GTask             *task;
  guint              timeout_ms;
} HelloData;

static gboolean
qlean_guest_channel_hello_in_worker (gpointer user_data)
{
  HelloData *data = user_data;
  QleanGuestChannel *self = data->self;

  if (self->state == CHANNEL_CLOSED)
    {
      g_task_return_new_error (data->task, QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_DISCONNECTED,
                               _("The data channel to qlean-guest is closed"));
      goto out;
    }

  if (self->state == CHANNEL_READY)
    {
      g_task_return_boolean (data->task, TRUE);
      goto out;
    }

  g_ptr_array_add (self->hello_tasks, g_steal_pointer (&data->task));
  if (self->hello_timer == NULL)
    qlean_guest_channel_start_hello (self, data->timeout_ms);

out:
  g_clear_object (&data->task);
  g_object_unref (data->self);
  g_free (data);
  return G_SOURCE_REMOVE;
}

void
qlean_guest_channel_hello_async (QleanGuestChannel   *self,
                                 guint                timeout_ms,
                                 GCancellable        *cancellable,
                                 GAsyncReadyCallback  callback,
                                 gpointer             user_data)
{
  HelloData *data = g_new0 (HelloData, 1);

  data->self = g_object_ref (self);
  data->timeout_ms = timeout_ms;
  data->task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (data->task, qlean_guest_channel_hello_async);
  qlean_worker_invoke (qlean_guest_channel_hello_in_worker, data, NULL);
}

gboolean
qlean_guest_channel_hello_finish (QleanGuestChannel  *self,
                                  GAsyncResult       *result,
                                  GError            **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}

gboolean
qlean_guest_channel_is_ready (QleanGuestChannel *self)
{
  return g_atomic_int_get (&self->ready);
}

gboolean
qlean_guest_channel_is_syncing (QleanGuestChannel *self)
{
  return g_atomic_int_get (&self->hello_pending);
}

guint32
qlean_guest_channel_get_guest_version (QleanGuestChannel *self)
{
  return g_atomic_int_get (&self->guest_version);
}

/* Worker thread only. The guest was reset (rebooted, or QMP
 * system_reset): the qlean-guest that knew our streams is gone, and the
 * one the next boot starts ignores everything until a HELLO. So end
 * every stream now with @reason (their EXIT or DONE is never coming),
 * forget what was read, and say HELLO again until the new guest program
 * answers or @timeout_ms passes. Until then the channel is not ready, and
 * callers fall back to the agent (see qlean_machine_exec_async()). */
void
qlean_guest_channel_reset (QleanGuestChannel *self,
                           const GError      *reason,
                           guint              timeout_ms)
{
  g_autoptr(QleanGuestChannel) hold = g_object_ref (self);

  g_assert (qlean_worker_is_current ());

  if (self->state == CHANNEL_CLOSED)
    return;

  self->state = CHANNEL_SYNCING;
  g_atomic_int_set (&self->ready, FALSE);
  g_byte_array_set_size (self->in, 0);
  qlean_guest_channel_unpause (self);

  qlean_guest_channel_end_streams (self, reason);
  /* A read waiting for a GET's consumer starts again, to find the answer. */
  qlean_guest_channel_read (self);

  /* Frames still queued for the old streams are harmless: the new guest
   * program drops everything it reads before our HELLO. */
  qlean_guest_channel_start_hello (self, timeout_ms);
}

static gboolean
qlean_guest_channel_close_cb (gpointer user_data)
{
  QleanGuestChannel *self = user_data;
  g_autoptr(GError) error = qlean_guest_channel_closed_error ();

  qlean_guest_channel_close_in_worker (self, error);
  return G_SOURCE_REMOVE;
}

void
qlean_guest_channel_close (QleanGuestChannel *self)
{
  qlean_worker_invoke (qlean_guest_channel_close_cb, g_object_ref (self), g_object_unref);
}
