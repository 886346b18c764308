/* qlean-guest-stream-dispatch-private.h: a stream's frames as events
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-guest-stream-dispatch-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include "qlean-guest-channel-private.h"

G_BEGIN_DECLS

/* What a stream's consumer does with each event of the stream, one
 * handler per event; a handler left NULL ignores its event (or passes
 * it to @frame). qlean_guest_stream_dispatch() decodes each frame into
 * the arguments its handler takes, so that no consumer parses payloads
 * or recognises the end of a stream by a magic type of its own.
 *
 * @closed: the stream ended without the guest's last frame, for
 *   @error: the channel closed (QLEAN_QGA_ERROR_DISCONNECTED), the
 *   guest owed a frame past the stream's timeout (G_IO_ERROR_TIMED_OUT),
 *   the host would not hold more of its output (G_IO_ERROR_NO_SPACE),
 *   or the request could not be sent. Nothing follows it.
 * @started: STARTED, with the process's pid in the guest (0 when the
 *   payload has none, as a CONNECT's).
 * @data: DATA on @fd (1 stdout or the socket, 2 stderr).
 * @eof: EOF on @fd.
 * @exit: EXIT, with the process's wait status as waitpid(2) gives it.
 * @done: DONE, with its TLV payload.
 * @error: ERROR, with its payload (errno, message): see
 *   qlean_guest_error_from_payload().
 * @frame: any frame whose own handler is NULL, or that has none
 *   (PROGRESS): a relay passes them all on as they came. */
typedef struct
{
  void (*closed)  (QleanGuestStream *stream,
                   const GError     *error,
                   gpointer          user_data);
  void (*started) (QleanGuestStream *stream,
                   guint32           pid,
                   gpointer          user_data);
  void (*data)    (QleanGuestStream *stream,
                   guint8            fd,
                   GBytes           *payload,
                   gpointer          user_data);
  void (*eof)     (QleanGuestStream *stream,
                   guint8            fd,
                   gpointer          user_data);
  void (*exit)    (QleanGuestStream *stream,
                   int               wait_status,
                   gpointer          user_data);
  void (*done)    (QleanGuestStream *stream,
                   GBytes           *payload,
                   gpointer          user_data);
  void (*error)   (QleanGuestStream *stream,
                   GBytes           *payload,
                   gpointer          user_data);
  void (*frame)   (QleanGuestStream *stream,
                   guint8            type,
                   guint8            fd,
                   GBytes           *payload,
                   gpointer          user_data);
} QleanGuestStreamHandlers;

/* Calls the handler of @handlers that the event (@type, @fd, @payload,
 * or @error when @type is QLEAN_GUEST_STREAM_CLOSED) is for: what a
 * QleanGuestStreamFunc does with its arguments. */
void qlean_guest_stream_dispatch (const QleanGuestStreamHandlers *handlers,
                                  QleanGuestStream               *stream,
                                  guint8                          type,
                                  guint8                          fd,
                                  GBytes                         *payload,
                                  const GError                   *error,
                                  gpointer                        user_data);

G_END_DECLS
