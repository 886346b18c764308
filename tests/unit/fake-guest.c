/* fake-guest.c: a scripted qlean-guest for the data channel tests
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>

#include "fake-guest.h"
#include "qlean-worker-private.h"

void
frame_clear (Frame *frame)
{
  g_clear_pointer (&frame->payload, g_bytes_unref);
}

/* The next frame the host wrote. */
void
read_frame (FakePeer *peer,
            Frame    *frame)
{
  g_autoptr(GBytes) header = fake_peer_read_bytes (peer, QLEAN_GUEST_HEADER_SIZE);
  const guint8 *h = g_bytes_get_data (header, NULL);
  guint32 length = qlean_guest_read_u32 (h + 12);

  g_assert_cmphex (qlean_guest_read_u32 (h), ==, QLEAN_GUEST_MAGIC);
  frame->type = h[4];
  frame->fd = h[5];
  frame->stream = qlean_guest_read_u32 (h + 8);
  frame->payload = length > 0 ? fake_peer_read_bytes (peer, length) : g_bytes_new (NULL, 0);
}

void
write_frame (FakePeer     *peer,
             guint8        type,
             guint8        fd,
             guint32       stream,
             gconstpointer payload,
             gsize         len)
{
  g_autoptr(GBytes) frame = qlean_guest_frame_new (type, fd, stream, payload, len);

  fake_peer_write (peer, g_bytes_get_data (frame, NULL), g_bytes_get_size (frame));
}

static void
hello_cb (GObject      *source,
          GAsyncResult *result,
          gpointer      user_data)
{
  Fixture *fixture = user_data;
  g_autoptr(GError) error = NULL;

  g_assert_true (qlean_guest_channel_hello_finish (QLEAN_GUEST_CHANNEL (source), result, &error));
  g_assert_no_error (error);
  g_atomic_int_set (&fixture->ready, TRUE);
}

/* Channels live on the worker, as the machine's does. */
static gboolean
channel_new_in_worker (gpointer user_data)
{
  Fixture *fixture = user_data;

  fixture->channel = qlean_guest_channel_new (fixture->stream);
  qlean_guest_channel_hello_async (fixture->channel, 10000, NULL, hello_cb, fixture);
  return G_SOURCE_REMOVE;
}

/* A channel that has said HELLO to the fake guest and heard it back. */
void
fixture_set_up (Fixture       *fixture,
                gconstpointer  data)
{
  fixture_set_up_version (fixture, QLEAN_GUEST_VERSION);
}

/* The same with a guest that answers protocol @version. */
void
fixture_set_up_version (Fixture *fixture,
                        guint8   version)
{
  g_auto(Frame) hello = { 0 };
  guint8 answer[16];

  fixture->peer = fake_peer_new (&fixture->stream);
  qlean_worker_invoke (channel_new_in_worker, fixture, NULL);

  read_frame (fixture->peer, &hello);
  g_assert_cmpuint (hello.type, ==, QLEAN_GUEST_FRAME_HELLO);
  g_assert_cmpuint (hello.stream, ==, 0);
  g_assert_cmpuint (g_bytes_get_size (hello.payload), >=, 8);
  memcpy (answer, g_bytes_get_data (hello.payload, NULL), 8);
  memset (answer + 8, 0, 8);
  answer[8] = version;
  write_frame (fixture->peer, QLEAN_GUEST_FRAME_HELLO, 0, 0, answer, sizeof answer);
  WAIT_UNTIL (g_atomic_int_get (&fixture->ready));
  g_assert_true (qlean_guest_channel_is_ready (fixture->channel));
}

void
fixture_tear_down (Fixture       *fixture,
                   gconstpointer  data)
{
  qlean_guest_channel_close (fixture->channel);
  g_clear_object (&fixture->channel);
  g_clear_object (&fixture->stream);
  fake_peer_free (fixture->peer);
}

static void
watched_cb (QleanGuestStream *stream,
            guint8            type,
            guint8            fd,
            GBytes           *payload,
            const GError     *error,
            gpointer          user_data)
{
  Watched *w = user_data;

  w->last_type = type;
  if (type == QLEAN_GUEST_FRAME_PROGRESS)
    w->progress++;
  if (type == 0)
    {
      w->error = g_error_copy (error);
      w->ended = g_get_monotonic_time ();
    }
  g_atomic_int_inc (&w->calls);
}

gboolean
watched_open_in_worker (gpointer user_data)
{
  Watched *w = user_data;
  g_autoptr(GBytes) request = g_bytes_new_take (g_malloc0 (w->request_size), w->request_size);

  w->opened = g_get_monotonic_time ();
  w->stream = qlean_guest_channel_open_stream (w->channel, w->request, request, watched_cb, w, NULL);
  qlean_guest_stream_set_timeout (w->stream, w->timeout_ms);
  return G_SOURCE_REMOVE;
}

gboolean
watched_eof_in_worker (gpointer user_data)
{
  Watched *w = user_data;

  qlean_guest_stream_send_eof (w->stream);
  return G_SOURCE_REMOVE;
}

gboolean
watched_release_in_worker (gpointer user_data)
{
  Watched *w = user_data;

  qlean_guest_stream_close (w->stream);
  g_clear_pointer (&w->stream, qlean_guest_stream_unref);
  return G_SOURCE_REMOVE;
}

gboolean
set_flag_in_worker (gpointer user_data)
{
  g_atomic_int_set ((gint *) user_data, TRUE);
  return G_SOURCE_REMOVE;
}

/* Runs @func on the worker and waits until it ran. */
void
in_worker (GSourceFunc func,
           Watched    *w)
{
  gint done = FALSE;

  qlean_worker_invoke (func, w, NULL);
  qlean_worker_invoke (set_flag_in_worker, &done, NULL);
  WAIT_UNTIL (g_atomic_int_get (&done));
}

void
watched_clear (Watched *w)
{
  if (w->stream != NULL)
    in_worker (watched_release_in_worker, w);
  g_clear_error (&w->error);
}

double
watched_ms (Watched *w)
{
  return (w->ended - w->opened) / 1000.0;
}

