/* test-guest-channel.c: the host side of the data channel against a fake guest
 *
 * SPDX-License-Identifier: MIT
 *
 * The test plays qlean-guest on a socketpair: it answers the channel's
 * HELLO, then reads the frames the host sends and answers only what the
 * case needs, so that a stream's inactivity timeout can be watched:
 * when it fires, what resets it, when it stays quiet, and what the guest
 * is told. No QEMU involved.
 */

#include "config.h"

#include <signal.h>
#include <string.h>

#include "fake-peer.h"
#include "qlean-guest-channel-private.h"
#include "qlean-guest-protocol.h"
#include "qlean-qga-error.h"
#include "qlean-worker-private.h"

typedef struct
{
  guint8  type;
  guint8  fd;
  guint32 stream;
  GBytes *payload;
} Frame;

static void
frame_clear (Frame *frame)
{
  g_clear_pointer (&frame->payload, g_bytes_unref);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Frame, frame_clear)

/* The next frame the host wrote. */
static void
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

static void
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

typedef struct
{
  FakePeer          *peer;
  GIOStream         *stream;
  QleanGuestChannel *channel;
  gint               ready;   /* atomic */
} Fixture;

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
static void
fixture_set_up (Fixture       *fixture,
                gconstpointer  data)
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
  answer[8] = QLEAN_GUEST_VERSION;
  write_frame (fixture->peer, QLEAN_GUEST_FRAME_HELLO, 0, 0, answer, sizeof answer);
  WAIT_UNTIL (g_atomic_int_get (&fixture->ready));
  g_assert_true (qlean_guest_channel_is_ready (fixture->channel));
}

static void
fixture_tear_down (Fixture       *fixture,
                   gconstpointer  data)
{
  qlean_guest_channel_close (fixture->channel);
  g_clear_object (&fixture->channel);
  g_clear_object (&fixture->stream);
  fake_peer_free (fixture->peer);
}

/* One stream, opened and driven on the worker; what its callback saw is
 * read by the test thread. */
typedef struct
{
  QleanGuestChannel *channel;
  guint8             request;
  guint              timeout_ms;
  QleanGuestStream  *stream;     /* worker */
  gint               calls;      /* atomic */
  guint8             last_type;
  GError            *error;
  gint64             opened;
  gint64             ended;      /* when type 0 came */
} Watched;

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
  if (type == 0)
    {
      w->error = g_error_copy (error);
      w->ended = g_get_monotonic_time ();
    }
  g_atomic_int_inc (&w->calls);
}

static gboolean
watched_open_in_worker (gpointer user_data)
{
  Watched *w = user_data;
  g_autoptr(GBytes) request = g_bytes_new_static ("", 0);

  w->opened = g_get_monotonic_time ();
  w->stream = qlean_guest_channel_open_stream (w->channel, w->request, request, watched_cb, w, NULL);
  qlean_guest_stream_set_timeout (w->stream, w->timeout_ms);
  return G_SOURCE_REMOVE;
}

static gboolean
watched_eof_in_worker (gpointer user_data)
{
  Watched *w = user_data;

  qlean_guest_stream_send_eof (w->stream);
  return G_SOURCE_REMOVE;
}

static gboolean
watched_release_in_worker (gpointer user_data)
{
  Watched *w = user_data;

  qlean_guest_stream_close (w->stream);
  g_clear_pointer (&w->stream, qlean_guest_stream_unref);
  return G_SOURCE_REMOVE;
}

static gboolean
set_flag_in_worker (gpointer user_data)
{
  g_atomic_int_set ((gint *) user_data, TRUE);
  return G_SOURCE_REMOVE;
}

/* Runs @func on the worker and waits until it ran. */
static void
in_worker (GSourceFunc func,
           Watched    *w)
{
  gint done = FALSE;

  qlean_worker_invoke (func, w, NULL);
  qlean_worker_invoke (set_flag_in_worker, &done, NULL);
  WAIT_UNTIL (g_atomic_int_get (&done));
}

static void
watched_clear (Watched *w)
{
  if (w->stream != NULL)
    in_worker (watched_release_in_worker, w);
  g_clear_error (&w->error);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Watched, watched_clear)

static double
watched_ms (Watched *w)
{
  return (w->ended - w->opened) / 1000.0;
}

/* A request the guest never answers ends with G_IO_ERROR_TIMED_OUT after
 * the timeout, the guest is told to cancel it, and its late answer goes
 * nowhere. */
static void
test_silent_guest (Fixture       *fixture,
                   gconstpointer  data)
{
  g_auto(Watched) w = { .channel = fixture->channel, .request = QLEAN_GUEST_FRAME_FS, .timeout_ms = 300 };
  g_auto(Frame) request = { 0 };
  g_auto(Frame) signal = { 0 };
  guint8 size[4] = { 0 };

  in_worker (watched_open_in_worker, &w);
  read_frame (fixture->peer, &request);
  g_assert_cmpuint (request.type, ==, QLEAN_GUEST_FRAME_FS);

  WAIT_UNTIL (g_atomic_int_get (&w.calls) == 1);
  g_test_message ("timed out after %.0f ms", watched_ms (&w));
  g_assert_cmpuint (w.last_type, ==, 0);
  g_assert_error (w.error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_assert_cmpfloat (watched_ms (&w), >=, 300);

  read_frame (fixture->peer, &signal);
  g_assert_cmpuint (signal.type, ==, QLEAN_GUEST_FRAME_SIGNAL);
  g_assert_cmpuint (signal.stream, ==, request.stream);
  g_assert_cmpuint (g_bytes_get_size (signal.payload), ==, 4);
  g_assert_cmpuint (qlean_guest_read_u32 (g_bytes_get_data (signal.payload, NULL)), ==, SIGTERM);

  write_frame (fixture->peer, QLEAN_GUEST_FRAME_DONE, 0, request.stream, size, sizeof size);
  test_spin (200);
  g_assert_cmpint (g_atomic_int_get (&w.calls), ==, 1);
  g_assert_true (qlean_guest_channel_is_ready (fixture->channel));
}

/* Every frame on the stream starts the wait anew. */
static void
test_frames_reset_timeout (Fixture       *fixture,
                           gconstpointer  data)
{
  g_auto(Watched) w = { .channel = fixture->channel, .request = QLEAN_GUEST_FRAME_GET, .timeout_ms = 400 };
  g_auto(Frame) request = { 0 };

  in_worker (watched_open_in_worker, &w);
  read_frame (fixture->peer, &request);
  for (guint i = 0; i < 4; i++)
    {
      g_usleep (200 * 1000);
      write_frame (fixture->peer, QLEAN_GUEST_FRAME_DATA, 1, request.stream, "data", 4);
    }

  WAIT_UNTIL (w.error != NULL && g_atomic_int_get (&w.calls) == 5);
  g_test_message ("timed out %.0f ms after the request, 4 frames 200 ms apart", watched_ms (&w));
  g_assert_error (w.error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_assert_cmpfloat (watched_ms (&w), >=, 800 + 400);
}

/* A PUT waits for the host's data without a timeout; once the host has
 * sent its EOF, the guest owes an answer. */
static void
test_put_waits_for_host (Fixture       *fixture,
                         gconstpointer  data)
{
  g_auto(Watched) w = { .channel = fixture->channel, .request = QLEAN_GUEST_FRAME_PUT, .timeout_ms = 200 };
  g_auto(Frame) request = { 0 };
  g_auto(Frame) eof = { 0 };
  gint64 eof_sent;

  in_worker (watched_open_in_worker, &w);
  read_frame (fixture->peer, &request);
  test_spin (700);
  g_assert_cmpint (g_atomic_int_get (&w.calls), ==, 0);

  eof_sent = g_get_monotonic_time ();
  in_worker (watched_eof_in_worker, &w);
  read_frame (fixture->peer, &eof);
  g_assert_cmpuint (eof.type, ==, QLEAN_GUEST_FRAME_EOF);
  WAIT_UNTIL (g_atomic_int_get (&w.calls) == 1);
  g_assert_error (w.error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_assert_cmpint (w.ended - eof_sent, >=, 200 * G_TIME_SPAN_MILLISECOND);
}

/* A command that does not start in time is killed, not asked to stop. */
static void
test_exec_killed (Fixture       *fixture,
                  gconstpointer  data)
{
  g_auto(Watched) w = { .channel = fixture->channel, .request = QLEAN_GUEST_FRAME_EXEC, .timeout_ms = 100 };
  g_auto(Frame) request = { 0 };
  g_auto(Frame) signal = { 0 };

  in_worker (watched_open_in_worker, &w);
  read_frame (fixture->peer, &request);
  WAIT_UNTIL (g_atomic_int_get (&w.calls) == 1);
  read_frame (fixture->peer, &signal);
  g_assert_cmpuint (signal.type, ==, QLEAN_GUEST_FRAME_SIGNAL);
  g_assert_cmpuint (qlean_guest_read_u32 (g_bytes_get_data (signal.payload, NULL)), ==, SIGKILL);
}

/* A stream opened on a channel that closed meanwhile ends at once, with
 * the channel's error, instead of waiting forever. */
static void
test_stream_on_closed_channel (Fixture       *fixture,
                               gconstpointer  data)
{
  g_auto(Watched) w = { .channel = fixture->channel, .request = QLEAN_GUEST_FRAME_FS, .timeout_ms = 0 };

  qlean_guest_channel_close (fixture->channel);
  fake_peer_assert_eof (fixture->peer);

  in_worker (watched_open_in_worker, &w);
  WAIT_UNTIL (g_atomic_int_get (&w.calls) == 1);
  g_assert_cmpuint (w.last_type, ==, 0);
  g_assert_error (w.error, QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_DISCONNECTED);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add ("/guest-channel/timeout/silent-guest", Fixture, NULL,
              fixture_set_up, test_silent_guest, fixture_tear_down);
  g_test_add ("/guest-channel/timeout/frames-reset", Fixture, NULL,
              fixture_set_up, test_frames_reset_timeout, fixture_tear_down);
  g_test_add ("/guest-channel/timeout/put-waits-for-host", Fixture, NULL,
              fixture_set_up, test_put_waits_for_host, fixture_tear_down);
  g_test_add ("/guest-channel/timeout/exec-killed", Fixture, NULL,
              fixture_set_up, test_exec_killed, fixture_tear_down);
  g_test_add ("/guest-channel/closed", Fixture, NULL,
              fixture_set_up, test_stream_on_closed_channel, fixture_tear_down);

  return g_test_run ();
}
