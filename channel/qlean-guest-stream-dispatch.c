/* qlean-guest-stream-dispatch.c: a stream's frames as events
 *
 * SPDX-License-Identifier: MIT
 *
 * Every consumer of a qlean-guest stream (a guest process, a forwarded
 * connection, a file transfer, a file-system call, the relay) used to
 * switch on frame types in its own callback, decode STARTED's and
 * EXIT's payloads itself, and recognise the end of its stream by the
 * type 0 the channel gives it. Here that is done once: a consumer names
 * a handler per event and its callback hands its arguments to
 * qlean_guest_stream_dispatch(). The channel itself stays with one
 * callback per stream, which is all that it needs to know.
 */

#include "config.h"

#include "qlean-guest-stream-dispatch-private.h"

/* A u32 at the start of @payload, or 0 when the payload is shorter (a
 * guest may send STARTED without a pid: a CONNECT does). */
static guint32
payload_u32 (GBytes *payload)
{
  gsize len;
  const guint8 *data = g_bytes_get_data (payload, &len);

  return len >= 4 ? qlean_guest_read_u32 (data) : 0;
}

void
qlean_guest_stream_dispatch (const QleanGuestStreamHandlers *handlers,
                             QleanGuestStream               *stream,
                             guint8                          type,
                             guint8                          fd,
                             GBytes                         *payload,
                             const GError                   *error,
                             gpointer                        user_data)
{
  g_return_if_fail (handlers != NULL);

  if (type == QLEAN_GUEST_STREAM_CLOSED)
    {
      g_return_if_fail (error != NULL);

      if (handlers->closed != NULL)
        handlers->closed (stream, error, user_data);
      return;
    }

  g_return_if_fail (payload != NULL);

  switch (type)
    {
    case QLEAN_GUEST_FRAME_STARTED:
      if (handlers->started != NULL)
        {
          handlers->started (stream, payload_u32 (payload), user_data);
          return;
        }
      break;

    case QLEAN_GUEST_FRAME_DATA:
      if (handlers->data != NULL)
        {
          handlers->data (stream, fd, payload, user_data);
          return;
        }
      break;

    case QLEAN_GUEST_FRAME_EOF:
      if (handlers->eof != NULL)
        {
          handlers->eof (stream, fd, user_data);
          return;
        }
      break;

    case QLEAN_GUEST_FRAME_EXIT:
      if (handlers->exit != NULL)
        {
          handlers->exit (stream, (int) payload_u32 (payload), user_data);
          return;
        }
      break;

    case QLEAN_GUEST_FRAME_DONE:
      if (handlers->done != NULL)
        {
          handlers->done (stream, payload, user_data);
          return;
        }
      break;

    case QLEAN_GUEST_FRAME_ERROR:
      if (handlers->error != NULL)
        {
          handlers->error (stream, payload, user_data);
          return;
        }
      break;

    default:
      break;
    }

  if (handlers->frame != NULL)
    handlers->frame (stream, type, fd, payload, user_data);
}
