/* qlean-guest-channel-internal.h: what the files of the data channel share
 *
 * The host end of qlean-guest's channel lives in three files: the wire
 * format (qlean-guest-frames.c), one stream's life (qlean-guest-stream.c)
 * and the channel that reads, writes and routes frames to its streams
 * (qlean-guest-channel.c). A stream and its channel reach into each
 * other's state on the worker thread, so their structs are here, seen by
 * those three files only; the rest of Qlean uses
 * qlean-guest-channel-private.h.
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-guest-channel-internal.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include "qlean-guest-channel-private.h"

G_BEGIN_DECLS

/* Little-endian stores, the frame format's byte order. */
static inline void
put_u16 (guint8  *p,
         guint16  value)
{
  p[0] = value & 0xff;
  p[1] = value >> 8;
}

static inline void
put_u32 (guint8  *p,
         guint32  value)
{
  for (int i = 0; i < 4; i++)
    p[i] = (value >> (8 * i)) & 0xff;
}

static inline void
put_u64 (guint8  *p,
         guint64  value)
{
  for (int i = 0; i < 8; i++)
    p[i] = (value >> (8 * i)) & 0xff;
}

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
  guint         read_offset;    /* where the read under way puts its bytes in @in */
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

/* qlean-guest-channel.c, for the streams. */
void     qlean_guest_channel_send_frame   (QleanGuestChannel *self,
                                           guint8             type,
                                           guint8             fd,
                                           guint32            stream,
                                           gconstpointer      payload,
                                           gsize              len);
void     qlean_guest_channel_resume_later (QleanGuestChannel *self);
GError  *qlean_guest_channel_closed_error (void);

/* qlean-guest-stream.c, for the channel. */
gssize   qlean_guest_rx_account_get_held  (RxAccount         *acc);
GBytes  *qlean_guest_rx_account_wrap      (RxAccount         *acc,
                                           const guint8      *payload,
                                           gsize              len);
void     qlean_guest_stream_flush         (QleanGuestStream  *stream);
gboolean qlean_guest_stream_take_data     (QleanGuestStream  *stream,
                                           guint8             fd,
                                           gsize              len);

G_END_DECLS
