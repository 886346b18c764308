/* test-guest-channel-receive.c: the data channel's receive side against a fake guest
 *
 * What the guest sends faster than the host takes it: output nobody
 * reads, a download whose consumer falls behind, a connection past its
 * credit window and a file system call past its limit must each stay
 * bounded, while the channel and its other streams carry on.
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "fake-guest.h"
#include "qlean-qga-error.h"
#include "qlean-worker-private.h"

/* A stream's consumer that keeps the guest's DATA (output nobody reads
 * yet), or drops it at once. Worker and test thread share it under the
 * lock. */
typedef struct
{
  QleanGuestChannel *channel;
  guint8             request;
  QleanGuestStream  *stream;     /* worker */
  GMutex             lock;
  GPtrArray         *kept;
  gboolean           keep;
  gsize              kept_bytes;
  gsize              received;
  GError            *error;      /* type 0 */
  gint               ended;      /* atomic */
} Sink;

static void
sink_cb (QleanGuestStream *stream,
         guint8            type,
         guint8            fd,
         GBytes           *payload,
         const GError     *error,
         gpointer          user_data)
{
  Sink *sink = user_data;

  g_mutex_lock (&sink->lock);
  if (type == QLEAN_GUEST_FRAME_DATA)
    {
      sink->received += g_bytes_get_size (payload);
      if (sink->keep)
        {
          g_ptr_array_add (sink->kept, g_bytes_ref (payload));
          sink->kept_bytes += g_bytes_get_size (payload);
        }
    }
  if (type == 0)
    {
      sink->error = g_error_copy (error);
      g_atomic_int_set (&sink->ended, TRUE);
    }
  g_mutex_unlock (&sink->lock);
}

static gboolean
sink_open_in_worker (gpointer user_data)
{
  Sink *sink = user_data;
  g_autoptr(GBytes) request = g_bytes_new_static ("", 0);

  sink->stream = qlean_guest_channel_open_stream (sink->channel, sink->request, request,
                                                  sink_cb, sink, NULL);
  return G_SOURCE_REMOVE;
}

static gboolean
sink_close_in_worker (gpointer user_data)
{
  Sink *sink = user_data;

  if (sink->stream != NULL)
    {
      qlean_guest_stream_close (sink->stream);
      g_clear_pointer (&sink->stream, qlean_guest_stream_unref);
    }
  return G_SOURCE_REMOVE;
}

static void
run_in_worker (GSourceFunc func,
               gpointer    data)
{
  gint done = FALSE;

  qlean_worker_invoke (func, data, NULL);
  qlean_worker_invoke (set_flag_in_worker, &done, NULL);
  WAIT_UNTIL (g_atomic_int_get (&done));
}

static void
sink_init (Sink              *sink,
           QleanGuestChannel *channel,
           guint8             request)
{
  sink->channel = channel;
  sink->request = request;
  sink->keep = TRUE;
  sink->kept = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_mutex_init (&sink->lock);
  run_in_worker (sink_open_in_worker, sink);
}

static void
sink_clear (Sink *sink)
{
  run_in_worker (sink_close_in_worker, sink);
  g_clear_pointer (&sink->kept, g_ptr_array_unref);
  g_clear_error (&sink->error);
  g_mutex_clear (&sink->lock);
}

static gsize
sink_get (Sink  *sink,
          gsize *field)
{
  gsize value;

  g_mutex_lock (&sink->lock);
  value = *field;
  g_mutex_unlock (&sink->lock);
  return value;
}

/* The guest: DATA on one stream, 1 MiB a frame, from one buffer (so
 * nothing the size of the budget is ever allocated), until the budget
 * is spent, the test says stop, or the host closed the channel. */
typedef struct
{
  FakePeer *peer;
  guint32   stream;
  guint8    fd;
  guint64   budget;
  gint      stop;   /* atomic */
  gssize    sent;   /* atomic */
} Flood;

static gpointer
flood_thread (gpointer data)
{
  static guint8 payload[QLEAN_GUEST_MAX_PAYLOAD];
  Flood *flood = data;
  g_autoptr(GBytes) header = qlean_guest_frame_header_new (QLEAN_GUEST_FRAME_DATA, flood->fd,
                                                           flood->stream, sizeof payload);

  while ((guint64) g_atomic_pointer_get (&flood->sent) < flood->budget &&
         !g_atomic_int_get (&flood->stop))
    {
      if (!fake_peer_try_write (flood->peer, g_bytes_get_data (header, NULL), g_bytes_get_size (header)) ||
          !fake_peer_try_write (flood->peer, (const char *) payload, sizeof payload))
        break;
      g_atomic_pointer_add (&flood->sent, (gssize) sizeof payload);
    }

  return NULL;
}

static gsize
flood_sent (Flood *flood)
{
  return (gsize) g_atomic_pointer_get (&flood->sent);
}

/* Waits until the guest's writes have been stuck for @ms. */
static void
flood_wait_stalled (Flood *flood,
                    guint  ms)
{
  gint64 deadline = g_get_monotonic_time () + TEST_WAIT_SECONDS * G_USEC_PER_SEC;
  gsize last = flood_sent (flood);
  gint64 since = g_get_monotonic_time ();

  while (g_get_monotonic_time () - since < ms * 1000)
    {
      test_watchdog_expired (deadline, "the guest's writes to stall");
      g_usleep (20 * 1000);
      if (flood_sent (flood) != last)
        {
          last = flood_sent (flood);
          since = g_get_monotonic_time ();
        }
    }
}

static gsize
rss_kib (void)
{
  g_autofree char *status = NULL;
  const char *line;

  g_assert_true (g_file_get_contents ("/proc/self/status", &status, NULL, NULL));
  line = strstr (status, "VmRSS:");
  g_assert_nonnull (line);
  return (gsize) g_ascii_strtoull (line + strlen ("VmRSS:"), NULL, 10);
}

typedef struct
{
  Sink  *sink;
  gsize  held;
} HeldQuery;

static gboolean
held_in_worker (gpointer user_data)
{
  HeldQuery *query = user_data;

  query->held = query->sink->stream ? qlean_guest_stream_get_held (query->sink->stream) : 0;
  return G_SOURCE_REMOVE;
}

static gsize
sink_held (Sink *sink)
{
  HeldQuery query = { .sink = sink };

  run_in_worker (held_in_worker, &query);
  return query.held;
}

/* A process whose output nobody reads, and a guest that sends 4 GiB of
 * it: the host keeps at most its limit, kills the process with a clear
 * error, and the channel serves the next request. */
static void
test_unread_output_bounded (Fixture       *fixture,
                            gconstpointer  data)
{
  Sink sink = { 0 };
  Flood flood = { .peer = fixture->peer, .fd = 1, .budget = G_GUINT64_CONSTANT (4) << 30 };
  g_auto(Frame) request = { 0 };
  g_auto(Frame) signal = { 0 };
  g_auto(Watched) next = { .channel = fixture->channel, .request = QLEAN_GUEST_FRAME_FS };
  g_auto(Frame) next_request = { 0 };
  guint8 pid[4] = { 42, 0, 0, 0 };
  gsize rss_before = rss_kib ();
  gsize rss_grew;
  GThread *thread;

  sink_init (&sink, fixture->channel, QLEAN_GUEST_FRAME_EXEC);
  read_frame (fixture->peer, &request);
  g_assert_cmpuint (request.type, ==, QLEAN_GUEST_FRAME_EXEC);
  write_frame (fixture->peer, QLEAN_GUEST_FRAME_STARTED, 0, request.stream, pid, sizeof pid);

  flood.stream = request.stream;
  thread = g_thread_new ("guest", flood_thread, &flood);
  WAIT_UNTIL (g_atomic_int_get (&sink.ended));
  rss_grew = rss_kib () - MIN (rss_kib (), rss_before);

  /* The process is killed; the guest's output goes nowhere from now on. */
  read_frame (fixture->peer, &signal);
  g_assert_cmpuint (signal.type, ==, QLEAN_GUEST_FRAME_SIGNAL);
  g_assert_cmpuint (signal.stream, ==, request.stream);
  g_assert_cmpuint (qlean_guest_read_u32 (g_bytes_get_data (signal.payload, NULL)), ==, SIGKILL);
  g_atomic_int_set (&flood.stop, TRUE);
  g_thread_join (thread);

  g_test_message ("the guest sent %" G_GSIZE_FORMAT " MiB; the host kept %" G_GSIZE_FORMAT
                  " MiB; RSS grew by %" G_GSIZE_FORMAT " MiB",
                  flood_sent (&flood) >> 20, sink.kept_bytes >> 20, rss_grew >> 10);
  g_assert_error (sink.error, G_IO_ERROR, G_IO_ERROR_NO_SPACE);
  g_assert_cmpuint (sink.kept_bytes, <=, QLEAN_GUEST_RECEIVE_LIMIT);
  g_assert_cmpuint (sink.kept_bytes, >=, QLEAN_GUEST_RECEIVE_LIMIT - QLEAN_GUEST_MAX_PAYLOAD);
  g_assert_cmpuint (rss_grew, <, (QLEAN_GUEST_RECEIVE_LIMIT + 32 * 1024 * 1024) / 1024);

  /* The channel and its other streams carry on. */
  in_worker (watched_open_in_worker, &next);
  do
    {
      frame_clear (&next_request);
      read_frame (fixture->peer, &next_request);
    }
  while (next_request.type != QLEAN_GUEST_FRAME_FS);
  write_frame (fixture->peer, QLEAN_GUEST_FRAME_DONE, 0, next_request.stream, NULL, 0);
  WAIT_UNTIL (g_atomic_int_get (&next.calls) == 1);
  g_assert_cmpuint (next.last_type, ==, QLEAN_GUEST_FRAME_DONE);
  g_assert_true (qlean_guest_channel_is_ready (fixture->channel));

  sink_clear (&sink);
}

/* A download whose consumer falls behind: the channel stops reading at
 * the limit (the guest's writes stall) instead of buffering, and goes on
 * once the consumer has caught up, from whichever thread it frees the
 * data on. */
static void
test_slow_get_pauses (Fixture       *fixture,
                      gconstpointer  data)
{
  Sink sink = { 0 };
  Flood flood = { .peer = fixture->peer, .fd = 1, .budget = G_GUINT64_CONSTANT (4) << 30 };
  g_auto(Frame) request = { 0 };
  gsize held, sent;
  GThread *thread;

  sink_init (&sink, fixture->channel, QLEAN_GUEST_FRAME_GET);
  read_frame (fixture->peer, &request);
  g_assert_cmpuint (request.type, ==, QLEAN_GUEST_FRAME_GET);
  flood.stream = request.stream;
  thread = g_thread_new ("guest", flood_thread, &flood);

  flood_wait_stalled (&flood, 500);
  held = sink_held (&sink);
  sent = flood_sent (&flood);
  g_test_message ("stalled: the guest sent %" G_GSIZE_FORMAT " MiB, the consumer holds %"
                  G_GSIZE_FORMAT " MiB", sent >> 20, held >> 20);
  g_assert_false (g_atomic_int_get (&sink.ended));
  g_assert_cmpuint (held, >, QLEAN_GUEST_RECEIVE_LIMIT);
  g_assert_cmpuint (held, <=, QLEAN_GUEST_RECEIVE_LIMIT + QLEAN_GUEST_MAX_PAYLOAD);
  g_assert_cmpuint (sink_get (&sink, &sink.kept_bytes), ==, held);
  /* What is not held is in the socket and one read: a few MiB at most. */
  g_assert_cmpuint (sent, <, QLEAN_GUEST_RECEIVE_LIMIT + 8 * 1024 * 1024);

  /* The consumer catches up here, on the test thread. */
  g_mutex_lock (&sink.lock);
  sink.keep = FALSE;
  g_ptr_array_set_size (sink.kept, 0);
  sink.kept_bytes = 0;
  g_mutex_unlock (&sink.lock);

  WAIT_UNTIL (flood_sent (&flood) >= sent + 3 * QLEAN_GUEST_RECEIVE_LIMIT);
  g_atomic_int_set (&flood.stop, TRUE);
  g_thread_join (thread);
  g_assert_false (g_atomic_int_get (&sink.ended));
  g_assert_cmpuint (sink_get (&sink, &sink.received), >=, sent + 2 * QLEAN_GUEST_RECEIVE_LIMIT);

  sink_clear (&sink);
}

/* A file system call gets at most QLEAN_GUEST_FS_DATA_LIMIT in all (its
 * consumer collects one answer): a guest that sends more has it failed. */
static void
test_fs_data_bounded (Fixture       *fixture,
                      gconstpointer  data)
{
  Sink sink = { 0 };
  Flood flood = { .peer = fixture->peer, .fd = 1, .budget = G_GUINT64_CONSTANT (4) << 30 };
  g_auto(Frame) request = { 0 };
  g_auto(Frame) signal = { 0 };
  GThread *thread;

  sink_init (&sink, fixture->channel, QLEAN_GUEST_FRAME_FS);
  sink.keep = FALSE;
  read_frame (fixture->peer, &request);
  flood.stream = request.stream;
  thread = g_thread_new ("guest", flood_thread, &flood);
  WAIT_UNTIL (g_atomic_int_get (&sink.ended));
  read_frame (fixture->peer, &signal);
  g_atomic_int_set (&flood.stop, TRUE);
  g_thread_join (thread);

  g_assert_error (sink.error, G_IO_ERROR, G_IO_ERROR_NO_SPACE);
  g_assert_cmpuint (sink_get (&sink, &sink.received), ==, QLEAN_GUEST_FS_DATA_LIMIT);
  g_assert_cmpuint (signal.type, ==, QLEAN_GUEST_FRAME_SIGNAL);
  g_assert_cmpuint (signal.stream, ==, request.stream);
  g_assert_true (qlean_guest_channel_is_ready (fixture->channel));

  sink_clear (&sink);
}

static gboolean
sink_credit_in_worker (gpointer user_data)
{
  Sink *sink = user_data;

  qlean_guest_stream_send_credit (sink->stream, 1024 * 1024);
  return G_SOURCE_REMOVE;
}

/* A connection's DATA is bounded by the credit window: a guest that
 * keeps to it is served, one that sends beyond it has the connection
 * failed as a protocol error and reset. */
static void
test_connect_window (Fixture       *fixture,
                     gconstpointer  data)
{
  static guint8 payload[QLEAN_GUEST_MAX_PAYLOAD];
  Sink sink = { 0 };
  g_auto(Frame) request = { 0 };
  g_auto(Frame) credit = { 0 };
  g_auto(Frame) signal = { 0 };

  sink_init (&sink, fixture->channel, QLEAN_GUEST_FRAME_CONNECT);
  read_frame (fixture->peer, &request);
  g_assert_cmpuint (request.type, ==, QLEAN_GUEST_FRAME_CONNECT);
  write_frame (fixture->peer, QLEAN_GUEST_FRAME_STARTED, 0, request.stream, NULL, 0);

  /* The whole window, then 1 MiB more once the host credited it. */
  for (guint i = 0; i < QLEAN_GUEST_WINDOW / sizeof payload; i++)
    write_frame (fixture->peer, QLEAN_GUEST_FRAME_DATA, 1, request.stream, payload, sizeof payload);
  WAIT_UNTIL (sink_get (&sink, &sink.received) == QLEAN_GUEST_WINDOW);
  run_in_worker (sink_credit_in_worker, &sink);
  read_frame (fixture->peer, &credit);
  g_assert_cmpuint (credit.type, ==, QLEAN_GUEST_FRAME_CREDIT);
  g_assert_cmpuint (credit.fd, ==, 1);
  write_frame (fixture->peer, QLEAN_GUEST_FRAME_DATA, 1, request.stream, payload, sizeof payload);
  WAIT_UNTIL (sink_get (&sink, &sink.received) == QLEAN_GUEST_WINDOW + sizeof payload);
  g_assert_false (g_atomic_int_get (&sink.ended));

  /* One byte beyond. */
  write_frame (fixture->peer, QLEAN_GUEST_FRAME_DATA, 1, request.stream, payload, 1);
  WAIT_UNTIL (g_atomic_int_get (&sink.ended));
  g_assert_error (sink.error, QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_PROTOCOL);
  g_assert_nonnull (strstr (sink.error->message, "credit window"));
  g_assert_cmpuint (sink_get (&sink, &sink.received), ==, QLEAN_GUEST_WINDOW + sizeof payload);
  read_frame (fixture->peer, &signal);
  g_assert_cmpuint (signal.type, ==, QLEAN_GUEST_FRAME_SIGNAL);
  g_assert_cmpuint (signal.stream, ==, request.stream);
  g_assert_true (qlean_guest_channel_is_ready (fixture->channel));

  sink_clear (&sink);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add ("/guest-channel/receive/unread-output-bounded", Fixture, NULL,
              fixture_set_up, test_unread_output_bounded, fixture_tear_down);
  g_test_add ("/guest-channel/receive/slow-get-pauses", Fixture, NULL,
              fixture_set_up, test_slow_get_pauses, fixture_tear_down);
  g_test_add ("/guest-channel/receive/connect-window", Fixture, NULL,
              fixture_set_up, test_connect_window, fixture_tear_down);
  g_test_add ("/guest-channel/receive/fs-data-bounded", Fixture, NULL,
              fixture_set_up, test_fs_data_bounded, fixture_tear_down);

  return g_test_run ();
}
