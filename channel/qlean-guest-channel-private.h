/* qlean-guest-channel-private.h: the host end of the qlean-guest protocol
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-guest-channel-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include <gio/gio.h>

#include "qlean-guest-protocol.h"

G_BEGIN_DECLS

/* TLV payloads (see qlean-guest-protocol.h). */
typedef struct _QleanGuestTlv QleanGuestTlv;

QleanGuestTlv *qlean_guest_tlv_new         (void);
void           qlean_guest_tlv_free        (QleanGuestTlv *tlv);
void           qlean_guest_tlv_add         (QleanGuestTlv *tlv,
                                            guint16        tag,
                                            gconstpointer  data,
                                            gsize          len);
void           qlean_guest_tlv_add_string  (QleanGuestTlv *tlv,
                                            guint16        tag,
                                            const char    *value);
void           qlean_guest_tlv_add_u32     (QleanGuestTlv *tlv,
                                            guint16        tag,
                                            guint32        value);
void           qlean_guest_tlv_add_i64     (QleanGuestTlv *tlv,
                                            guint16        tag,
                                            gint64         value);
GBytes        *qlean_guest_tlv_free_to_bytes (QleanGuestTlv *tlv);

/* Walks a TLV payload: returns FALSE at the end or on a malformed entry
 * (then *malformed is set). */
typedef struct
{
  const guint8 *data;
  gsize         len;
  gsize         offset;
} QleanGuestTlvIter;

void     qlean_guest_tlv_iter_init (QleanGuestTlvIter *iter,
                                    GBytes            *payload);
gboolean qlean_guest_tlv_iter_next (QleanGuestTlvIter *iter,
                                    guint16           *tag,
                                    const guint8     **value,
                                    gsize             *len,
                                    gboolean          *malformed);
gboolean qlean_guest_decode_stat   (const guint8      *value,
                                    gsize              len,
                                    QleanGuestStat    *stat);
guint32  qlean_guest_read_u32      (const guint8      *p);
guint64  qlean_guest_read_u64      (const guint8      *p);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (QleanGuestTlv, qlean_guest_tlv_free)

/* Frames. The parser calls @func for each whole frame in @data, skipping
 * debris up to the next magic, until @func returns FALSE; it returns how
 * many bytes it consumed (the rest is an incomplete frame). */
typedef gboolean (*QleanGuestFrameFunc) (guint8        type,
                                         guint8        fd,
                                         guint32       stream,
                                         const guint8 *payload,
                                         gsize         len,
                                         gpointer      user_data);

gsize    qlean_guest_frames_parse (const guint8        *data,
                                   gsize                len,
                                   QleanGuestFrameFunc  func,
                                   gpointer             user_data);
GBytes  *qlean_guest_frame_new    (guint8               type,
                                   guint8               fd,
                                   guint32              stream,
                                   gconstpointer        payload,
                                   gsize                len);
/* Only the header of a frame whose @len payload bytes follow apart. */
GBytes  *qlean_guest_frame_header_new (guint8           type,
                                       guint8           fd,
                                       guint32          stream,
                                       gsize            len);

/* The most of the guest's output one stream may hold on the host before
 * a GET pauses the channel, or any other stream but a CONNECT (which has
 * its credit window) is failed with G_IO_ERROR_NO_SPACE. */
#define QLEAN_GUEST_RECEIVE_LIMIT (16u * 1024u * 1024u)
/* The most DATA an FS call may get (a READDIR's listing). */
#define QLEAN_GUEST_FS_DATA_LIMIT (64u * 1024u * 1024u)

/* The channel: one per machine, on the worker thread. */
#define QLEAN_TYPE_GUEST_CHANNEL (qlean_guest_channel_get_type ())
G_DECLARE_FINAL_TYPE (QleanGuestChannel, qlean_guest_channel, QLEAN, GUEST_CHANNEL, GObject)

typedef struct _QleanGuestStream QleanGuestStream;

/* What a QleanGuestStreamFunc gets as @type when its stream ends without
 * the guest's last frame (the channel closed, the guest owed a frame too
 * long, the host could not hold its output): no frame has this type. */
#define QLEAN_GUEST_STREAM_CLOSED QLEAN_GUEST_FRAME_NONE

/* Called on the worker for every frame of the stream, and once with
 * @type QLEAN_GUEST_STREAM_CLOSED and @error set when the stream ends
 * under it. Consumers hand their arguments to qlean_guest_stream_dispatch()
 * (qlean-guest-stream-dispatch-private.h). */
typedef void (*QleanGuestStreamFunc) (QleanGuestStream *stream,
                                      guint8            type,
                                      guint8            fd,
                                      GBytes           *payload,
                                      const GError     *error,
                                      gpointer          user_data);

QleanGuestChannel *qlean_guest_channel_new          (GIOStream           *stream);
void               qlean_guest_channel_hello_async  (QleanGuestChannel   *self,
                                                     guint                timeout_ms,
                                                     GCancellable        *cancellable,
                                                     GAsyncReadyCallback  callback,
                                                     gpointer             user_data);
gboolean           qlean_guest_channel_hello_finish (QleanGuestChannel   *self,
                                                     GAsyncResult        *result,
                                                     GError             **error);
gboolean           qlean_guest_channel_is_ready     (QleanGuestChannel   *self);
/* Any thread: a HELLO is on its way and may still be answered (at
 * connect, or after a reset or an exit of qlean-guest). */
gboolean           qlean_guest_channel_is_syncing   (QleanGuestChannel   *self);
/* Any thread: the protocol version of the last qlean-guest that answered
 * a HELLO (0 before any did). */
guint32            qlean_guest_channel_get_guest_version (QleanGuestChannel *self);
/* Worker thread only: after a guest reset, ends all streams with @reason
 * and syncs again (HELLO) for up to @timeout_ms. */
void               qlean_guest_channel_reset        (QleanGuestChannel   *self,
                                                     const GError        *reason,
                                                     guint                timeout_ms);
void               qlean_guest_channel_close        (QleanGuestChannel   *self);

/* Worker thread only. */
QleanGuestStream  *qlean_guest_channel_open_stream  (QleanGuestChannel   *self,
                                                     guint8               request_type,
                                                     GBytes              *request,
                                                     QleanGuestStreamFunc func,
                                                     gpointer             user_data,
                                                     GDestroyNotify       destroy);

QleanGuestStream  *qlean_guest_stream_ref           (QleanGuestStream    *stream);
void               qlean_guest_stream_unref         (QleanGuestStream    *stream);
/* Stops delivering frames and forgets the stream. */
void               qlean_guest_stream_close         (QleanGuestStream    *stream);
/* Queues stdin data; it leaves as the guest's credit allows. */
void               qlean_guest_stream_send_data     (QleanGuestStream    *stream,
                                                     GBytes              *data);
void               qlean_guest_stream_send_eof      (QleanGuestStream    *stream);
void               qlean_guest_stream_send_signal   (QleanGuestStream    *stream,
                                                     int                  signum);
/* EXEC streams with a terminal: resizes it (protocol version 3). */
void               qlean_guest_stream_send_window_size (QleanGuestStream *stream,
                                                        guint16           rows,
                                                        guint16           cols);
/* CONNECT streams: acknowledges @bytes of the guest's DATA fd 1 (see
 * the protocol header's flow control). */
void               qlean_guest_stream_send_credit   (QleanGuestStream    *stream,
                                                     guint32              bytes);
/* Worker thread only. Ends the stream with G_IO_ERROR_TIMED_OUT (closed)
 * when the guest, owing it a frame, sends nothing on it for @timeout_ms
 * (0, the default: wait forever). The guest owes one except on a PUT
 * while the host is the one to send. The guest is asked to cancel
 * (SIGNAL: SIGKILL for a command, SIGTERM otherwise), which it does if
 * it is not too late (a PUT whose data all arrived may still complete),
 * and what it sends on the stream later is dropped; the channel and its
 * other streams carry on, so a guest that was only stopped serves the
 * next call. qlean-guest serves one request at a time, so a long COPY or
 * REMOVE_ALL keeps every stream waiting: give those no timeout. */
void               qlean_guest_stream_set_timeout   (QleanGuestStream    *stream,
                                                     guint                timeout_ms);
/* Bytes queued or in flight that the guest has not acknowledged. */
gsize              qlean_guest_stream_get_unacked   (QleanGuestStream    *stream);
/* What the host holds of the guest's DATA on the stream (see "Receive
 * side" in qlean-guest-channel.c): for a CONNECT the DATA fd 1 not yet
 * credited, for an FS call all of it, for the others the payloads handed
 * to the consumer that are still alive. */
gsize              qlean_guest_stream_get_held      (QleanGuestStream    *stream);
/* Called once the unacknowledged bytes drop below half the window. */
void               qlean_guest_stream_set_writable_func (QleanGuestStream *stream,
                                                     GSourceFunc          func,
                                                     gpointer             user_data);

GError            *qlean_guest_error_from_payload   (GBytes              *payload,
                                                     const char          *what);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (QleanGuestStream, qlean_guest_stream_unref)

G_END_DECLS
