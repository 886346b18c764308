/* test-guest-channel.c: the host side of the data channel against a fake guest
 *
 * SPDX-License-Identifier: MIT
 *
 * The test plays qlean-guest on a socketpair: it answers the channel's
 * HELLO, then reads the frames the host sends and answers only what the
 * case needs, so that a stream's inactivity timeout can be watched:
 * when it fires, what resets it, when it stays quiet, and what the guest
 * is told. No QEMU involved. The fake guest and the fixture are in
 * fake-guest.c; the receive side (what the guest sends faster than the
 * host takes it) is tested in test-guest-channel-receive.c.
 */

#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <glib/gstdio.h>
#include <gio/gunixinputstream.h>

#include <qlean/qlean.h>
#include "fake-guest.h"
#include "qlean-guest-channel-private.h"
#include "qlean-guest-relay-private.h"
#include "qlean-guest-protocol.h"
#include "qlean-machine-fs-private.h"
#include "qlean-qga-error.h"
#include "qlean-worker-private.h"

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

/* A request over the frame cap never leaves the host: qlean-guest would
 * skip its header as debris and read its bytes as frames. The stream
 * ends with G_IO_ERROR_MESSAGE_TOO_LARGE and the channel serves on; a
 * request of exactly the cap goes out. */
static void
test_oversized_request (Fixture       *fixture,
                        gconstpointer  data)
{
  g_auto(Watched) big = { .channel = fixture->channel, .request = QLEAN_GUEST_FRAME_FS,
                          .request_size = QLEAN_GUEST_MAX_PAYLOAD + 1 };
  g_auto(Watched) most = { .channel = fixture->channel, .request = QLEAN_GUEST_FRAME_FS,
                           .request_size = QLEAN_GUEST_MAX_PAYLOAD };
  g_auto(Frame) request = { 0 };

  in_worker (watched_open_in_worker, &big);
  WAIT_UNTIL (g_atomic_int_get (&big.calls) == 1);
  g_assert_cmpuint (big.last_type, ==, 0);
  g_assert_error (big.error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE);
  g_test_message ("%s", big.error->message);
  fake_peer_assert_quiet (fixture->peer, 200);
  g_assert_true (qlean_guest_channel_is_ready (fixture->channel));

  in_worker (watched_open_in_worker, &most);
  read_frame (fixture->peer, &request);
  g_assert_cmpuint (request.type, ==, QLEAN_GUEST_FRAME_FS);
  g_assert_cmpuint (g_bytes_get_size (request.payload), ==, QLEAN_GUEST_MAX_PAYLOAD);
}

/* PROGRESS, which qlean-guest sends while it copies a file or removes a
 * tree in one go, keeps such a call alive well past its timeout. */
static void
test_progress_keeps_alive (Fixture       *fixture,
                           gconstpointer  data)
{
  g_auto(Watched) w = { .channel = fixture->channel, .request = QLEAN_GUEST_FRAME_FS, .timeout_ms = 300 };
  g_auto(Frame) request = { 0 };
  guint8 done[14] = { QLEAN_GUEST_TAG_SIZE, 0, 8, 0, 0, 0, 42 };

  in_worker (watched_open_in_worker, &w);
  read_frame (fixture->peer, &request);
  for (guint i = 0; i < 6; i++)
    {
      g_usleep (150 * 1000);
      write_frame (fixture->peer, QLEAN_GUEST_FRAME_PROGRESS, 0, request.stream, NULL, 0);
    }
  write_frame (fixture->peer, QLEAN_GUEST_FRAME_DONE, 0, request.stream, done, sizeof done);

  WAIT_UNTIL (g_atomic_int_get (&w.calls) == 7);
  g_assert_cmpuint (w.progress, ==, 6);
  g_assert_cmpuint (w.last_type, ==, QLEAN_GUEST_FRAME_DONE);
  g_assert_no_error (w.error);
}

/* A fake qlean-guest behind a unix socket, as `qlean start` shares a
 * machine, so that the machine's own calls can be tried against answers
 * no real guest gives. */
typedef struct
{
  char    *dir;
  char    *path;
  int      listen_fd;
  int      fd;
  GThread *thread;
  GBytes  *done;        /* what every FS request is answered with */
  gint     requests;    /* atomic: FS requests seen */
  gsize    largest;     /* the largest request payload seen */
  gsize    get_flood;   /* bytes sent for every GET, whose DONE says 4 */
  guint8   version;     /* of the HELLO answer; 0 for QLEAN_GUEST_VERSION */
  gint     execs;       /* atomic: EXEC requests seen */
} FakeGuest;

static void
raw_read (int     fd,
          guint8 *buf,
          gsize   len)
{
  while (len > 0)
    {
      struct pollfd pfd = { .fd = fd, .events = POLLIN };
      ssize_t n;

      g_assert_cmpint (poll (&pfd, 1, TEST_WAIT_SECONDS * 1000), ==, 1);
      n = read (fd, buf, len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return;   /* the host went away: the loop below sees type 0 */
      buf += n;
      len -= n;
    }
}

static void
raw_write_frame (int           fd,
                 guint8        type,
                 guint32       stream,
                 gconstpointer payload,
                 gsize         len)
{
  g_autoptr(GBytes) frame = qlean_guest_frame_new (type, 0, stream, payload, len);
  gsize size;
  const guint8 *p = g_bytes_get_data (frame, &size);

  g_assert_cmpint (write (fd, p, size), ==, (gssize) size);
}

static gpointer
fake_guest_thread (gpointer user_data)
{
  FakeGuest *guest = user_data;

  guest->fd = accept (guest->listen_fd, NULL, NULL);
  g_assert_cmpint (guest->fd, >=, 0);

  for (;;)
    {
      guint8 header[QLEAN_GUEST_HEADER_SIZE] = { 0 };
      g_autofree guint8 *payload = NULL;
      guint32 len, stream;

      raw_read (guest->fd, header, sizeof header);
      if (header[4] == 0)
        break;
      len = qlean_guest_read_u32 (header + 12);
      stream = qlean_guest_read_u32 (header + 8);
      g_assert_cmpuint (len, <=, QLEAN_GUEST_MAX_PAYLOAD);
      payload = g_malloc0 (len + 16);
      raw_read (guest->fd, payload, len);
      guest->largest = MAX (guest->largest, len);

      if (header[4] == QLEAN_GUEST_FRAME_HELLO)
        {
          guint8 answer[16] = { 0 };

          memcpy (answer, payload, 8);
          answer[8] = guest->version ? guest->version : QLEAN_GUEST_VERSION;
          raw_write_frame (guest->fd, QLEAN_GUEST_FRAME_HELLO, 0, answer, sizeof answer);
        }
      else if (header[4] == QLEAN_GUEST_FRAME_EXEC)
        {
          /* Started, then lost: an ERROR on a running process's stream,
           * as a relay sends when it cannot serve it any more. */
          guint8 pid[4] = { 42, 0, 0, 0 };
          guint8 out[6] = { 'p', 'a', 'r', 't', 'i', 'a' };
          g_autoptr(GBytes) data = qlean_guest_frame_new (QLEAN_GUEST_FRAME_DATA, 1, stream, out, sizeof out);

          g_atomic_int_inc (&guest->execs);
          raw_write_frame (guest->fd, QLEAN_GUEST_FRAME_STARTED, stream, pid, sizeof pid);
          g_assert_cmpint (write (guest->fd, g_bytes_get_data (data, NULL), g_bytes_get_size (data)), >, 0);
          raw_write_frame (guest->fd, QLEAN_GUEST_FRAME_ERROR, stream, NULL, 0);
        }
      else if (header[4] == QLEAN_GUEST_FRAME_GET)
        {
          /* A file of 4 bytes, says the guest, and then sends on. */
          guint8 size[14] = { QLEAN_GUEST_TAG_SIZE, 0, 8, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0 };
          g_autofree guint8 *chunk = g_malloc0 (1024 * 1024);
          g_autoptr(GBytes) eof = qlean_guest_frame_new (QLEAN_GUEST_FRAME_EOF, 1, stream, NULL, 0);

          raw_write_frame (guest->fd, QLEAN_GUEST_FRAME_DONE, stream, size, sizeof size);
          for (gsize sent = 0; sent < guest->get_flood; sent += 1024 * 1024)
            {
              g_autoptr(GBytes) data = qlean_guest_frame_new (QLEAN_GUEST_FRAME_DATA, 1, stream,
                                                              chunk, 1024 * 1024);

              if (write (guest->fd, g_bytes_get_data (data, NULL), g_bytes_get_size (data)) < 0)
                break;
            }
          g_assert_cmpint (write (guest->fd, g_bytes_get_data (eof, NULL), g_bytes_get_size (eof)), >, 0);
        }
      else if (header[4] == QLEAN_GUEST_FRAME_FS)
        {
          g_atomic_int_inc (&guest->requests);
          raw_write_frame (guest->fd, QLEAN_GUEST_FRAME_DONE, stream,
                           g_bytes_get_data (guest->done, NULL), g_bytes_get_size (guest->done));
        }
    }

  return NULL;
}

static void
fake_guest_start (FakeGuest *guest)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  g_autoptr(GError) error = NULL;

  guest->dir = g_dir_make_tmp ("qlean-fake-guest-XXXXXX", &error);
  g_assert_no_error (error);
  guest->path = g_build_filename (guest->dir, "guest.sock", NULL);
  g_assert_cmpuint (strlen (guest->path), <, sizeof addr.sun_path);
  strcpy (addr.sun_path, guest->path);
  guest->listen_fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  g_assert_no_errno (bind (guest->listen_fd, (struct sockaddr *) &addr, sizeof addr));
  g_assert_no_errno (listen (guest->listen_fd, 1));
  guest->fd = -1;
  guest->thread = g_thread_new ("fake-guest", fake_guest_thread, guest);
}

static void
fake_guest_stop (FakeGuest *guest)
{
  g_thread_join (guest->thread);
  close (guest->fd);
  close (guest->listen_fd);
  g_unlink (guest->path);
  g_rmdir (guest->dir);
  g_free (guest->path);
  g_free (guest->dir);
  g_clear_pointer (&guest->done, g_bytes_unref);
}

/* A guest's COPY answer is any 64 bits: a size beyond G_MAXINT64, or
 * none, fails with an error, never -1 without one. */
static void
test_copy_absurd_size (void)
{
  FakeGuest guest = { 0 };
  guint8 huge[14] = { QLEAN_GUEST_TAG_SIZE, 0, 8, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GError) error = NULL;

  guest.done = g_bytes_new (huge, sizeof huge);
  fake_guest_start (&guest);
  machine = qlean_machine_attach ("fake", guest.path, NULL, &error);
  g_assert_no_error (error);

  g_assert_cmpint (qlean_machine_copy (machine, "/a", "/b", NULL, &error), ==, -1);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
  g_test_message ("%s", error->message);
  g_clear_error (&error);

  g_clear_pointer (&guest.done, g_bytes_unref);
  guest.done = g_bytes_new (NULL, 0);
  g_assert_cmpint (qlean_machine_copy (machine, "/a", "/b", NULL, &error), ==, -1);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
  g_clear_error (&error);

  g_clear_object (&machine);
  fake_guest_stop (&guest);
}

/* A read collects at most the size the guest gave plus a slack for
 * files that grow: a guest that says "4 bytes" and sends 66 MiB fails the
 * read instead of filling the host's memory, and the channel serves on. */
static void
test_machine_read_beyond_size (void)
{
  FakeGuest guest = { 0 };
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) contents = NULL;

  guest.done = g_bytes_new (NULL, 0);
  guest.get_flood = QLEAN_GUEST_FS_DATA_LIMIT + 2 * 1024 * 1024;
  fake_guest_start (&guest);
  machine = qlean_machine_attach ("fake", guest.path, NULL, &error);
  g_assert_no_error (error);

  contents = qlean_machine_read (machine, "/small", NULL, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE);
  g_assert_null (contents);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "/small"));
  g_clear_error (&error);

  /* Within the slack, a file that grew is read whole. */
  guest.get_flood = 2 * 1024 * 1024;
  contents = qlean_machine_read (machine, "/growing", NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_bytes_get_size (contents), ==, 2 * 1024 * 1024);

  g_assert_true (qlean_machine_create_dir (machine, "/ok", NULL, &error));
  g_assert_no_error (error);

  g_clear_object (&machine);
  fake_guest_stop (&guest);
}

/* A qlean-guest before protocol version 3 ignores FLAG_TERMINAL and would
 * run the command without a terminal: the start fails before the request
 * leaves, and says why. */
static void
test_terminal_old_guest (void)
{
  FakeGuest guest = { 0 };
  const char * const sh[] = { "sh", NULL };
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(QleanGuestLauncher) launcher = NULL;
  g_autoptr(QleanGuestProcess) process = NULL;
  g_autoptr(GError) error = NULL;

  guest.version = 2;
  fake_guest_start (&guest);
  machine = qlean_machine_attach ("fake", guest.path, NULL, &error);
  g_assert_no_error (error);

  launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_TERMINAL |
                                       QLEAN_GUEST_PROCESS_FLAGS_STDOUT_PIPE);
  process = qlean_guest_launcher_spawnv (launcher, machine, sh, &error);
  g_assert_null (process);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "too old for terminals"));
  g_assert_cmpint (g_atomic_int_get (&guest.execs), ==, 0);

  g_clear_object (&machine);
  fake_guest_stop (&guest);
}

/* The owner's relay, as `qlean start` serves `qlean exec`. */
typedef struct
{
  QleanGuestChannel *channel;
  char              *path;
  QleanGuestRelay   *relay;
  gint               done;   /* atomic */
} RelayCall;

static gboolean
relay_new_in_worker (gpointer user_data)
{
  RelayCall *call = user_data;
  g_autoptr(GError) error = NULL;

  call->relay = qlean_guest_relay_new (call->channel, call->path, &error);
  g_assert_no_error (error);
  g_atomic_int_set (&call->done, TRUE);
  return G_SOURCE_REMOVE;
}

static gboolean
relay_close_in_worker (gpointer user_data)
{
  RelayCall *call = user_data;

  qlean_guest_relay_close (call->relay);
  g_clear_object (&call->relay);
  g_atomic_int_set (&call->done, TRUE);
  return G_SOURCE_REMOVE;
}

static gpointer
spawn_terminal_thread (gpointer user_data)
{
  QleanMachine *machine = user_data;
  g_autoptr(QleanGuestLauncher) launcher = NULL;
  const char * const sh[] = { "sh", NULL };
  g_autoptr(GError) error = NULL;
  QleanGuestProcess *process;

  launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_TERMINAL |
                                       QLEAN_GUEST_PROCESS_FLAGS_STDOUT_PIPE);
  qlean_guest_launcher_set_window_size (launcher, 33, 77);
  process = qlean_guest_launcher_spawnv (launcher, machine, sh, &error);
  g_assert_no_error (error);
  return process;
}

/* Through the relay: the flag, the first size and a resize reach the
 * guest; and a guest too old for a terminal gets no EXEC, while the
 * client, which sees only the relay's version, hears why. */
static void
test_relay_terminal (void)
{
  for (guint8 version = 2; version <= 3; version++)
    {
      Fixture fixture = { 0 };
      RelayCall call = { 0 };
      g_autofree char *dir = g_dir_make_tmp ("qlean-relay-XXXXXX", NULL);
      g_autoptr(QleanMachine) machine = NULL;
      g_autoptr(QleanGuestProcess) process = NULL;
      g_autoptr(GError) error = NULL;

      fixture_set_up_version (&fixture, version);
      call.channel = fixture.channel;
      call.path = g_build_filename (dir, "relay.sock", NULL);
      qlean_worker_invoke (relay_new_in_worker, &call, NULL);
      WAIT_UNTIL (g_atomic_int_get (&call.done));
      machine = qlean_machine_attach ("fake", call.path, NULL, &error);
      g_assert_no_error (error);

      if (version == 2)
        {
          g_autoptr(QleanGuestLauncher) launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_TERMINAL);
          const char * const sh[] = { "sh", NULL };

          process = qlean_guest_launcher_spawnv (launcher, machine, sh, &error);
          g_assert_null (process);
          g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
          g_test_message ("%s", error->message);
          g_assert_nonnull (strstr (error->message, "too old for a terminal"));
          fake_peer_assert_quiet (fixture.peer, 200);
        }
      else
        {
          g_auto(Frame) exec = { 0 };
          g_auto(Frame) winsize = { 0 };
          GThread *thread = g_thread_new ("spawn", spawn_terminal_thread, machine);
          guint8 pid[4] = { 42, 0, 0, 0 };
          guint8 status[4] = { 0 };
          QleanGuestTlvIter iter;
          guint16 tag;
          const guint8 *value;
          gsize len;
          gboolean malformed = FALSE, terminal = FALSE, sized = FALSE;
          const guint8 *w;

          read_frame (fixture.peer, &exec);
          g_assert_cmpuint (exec.type, ==, QLEAN_GUEST_FRAME_EXEC);
          qlean_guest_tlv_iter_init (&iter, exec.payload);
          while (qlean_guest_tlv_iter_next (&iter, &tag, &value, &len, &malformed))
            {
              if (tag == QLEAN_GUEST_TAG_FLAGS && len == 4)
                terminal = (qlean_guest_read_u32 (value) & QLEAN_GUEST_FLAG_TERMINAL) != 0;
              if (tag == QLEAN_GUEST_TAG_WINSIZE && len == 4)
                sized = value[0] == 33 && value[1] == 0 && value[2] == 77 && value[3] == 0;
            }
          g_assert_true (terminal);
          g_assert_true (sized);
          write_frame (fixture.peer, QLEAN_GUEST_FRAME_STARTED, 0, exec.stream, pid, sizeof pid);
          process = g_thread_join (thread);
          g_assert_nonnull (process);

          qlean_guest_process_set_window_size (process, 40, 100);
          read_frame (fixture.peer, &winsize);
          g_assert_cmpuint (winsize.type, ==, QLEAN_GUEST_FRAME_WINSIZE);
          g_assert_cmpuint (winsize.stream, ==, exec.stream);
          g_assert_cmpuint (g_bytes_get_size (winsize.payload), ==, 4);
          w = g_bytes_get_data (winsize.payload, NULL);
          g_assert_cmpuint (w[0] | (w[1] << 8), ==, 40);
          g_assert_cmpuint (w[2] | (w[3] << 8), ==, 100);

          write_frame (fixture.peer, QLEAN_GUEST_FRAME_EOF, 1, exec.stream, NULL, 0);
          write_frame (fixture.peer, QLEAN_GUEST_FRAME_EXIT, 0, exec.stream, status, sizeof status);
          g_assert_true (qlean_guest_process_wait (process, NULL, &error));
          g_assert_no_error (error);
        }

      g_clear_object (&process);
      g_clear_object (&machine);
      g_atomic_int_set (&call.done, FALSE);
      qlean_worker_invoke (relay_close_in_worker, &call, NULL);
      WAIT_UNTIL (g_atomic_int_get (&call.done));
      g_unlink (call.path);
      g_rmdir (dir);
      g_free (call.path);
      fixture_tear_down (&fixture, NULL);
    }
}

/* A process that started and then failed (an ERROR frame on its stream)
 * ends its output pipes too: what came still arrives, then end of file,
 * so a reader never waits for ever. */
static void
test_machine_started_then_error (void)
{
  FakeGuest guest = { 0 };
  const char *argv[] = { "cat", NULL };
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(QleanGuestLauncher) launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_STDOUT_PIPE);
  g_autoptr(QleanGuestProcess) process = NULL;
  g_autoptr(GError) error = NULL;
  GString *got = g_string_new (NULL);
  int fd;

  guest.done = g_bytes_new (NULL, 0);
  fake_guest_start (&guest);
  machine = qlean_machine_attach ("fake", guest.path, NULL, &error);
  g_assert_no_error (error);

  process = qlean_guest_launcher_spawnv (launcher, machine, argv, &error);
  g_assert_no_error (error);
  fd = g_unix_input_stream_get_fd (G_UNIX_INPUT_STREAM (qlean_guest_process_get_stdout_pipe (process)));
  for (;;)
    {
      struct pollfd pfd = { .fd = fd, .events = POLLIN };
      char buf[64];
      ssize_t n;

      g_assert_cmpint (poll (&pfd, 1, TEST_WAIT_SECONDS * 1000), ==, 1);
      n = read (fd, buf, sizeof buf);
      if (n < 0 && (errno == EINTR || errno == EAGAIN))
        continue;
      g_assert_cmpint (n, >=, 0);
      if (n == 0)
        break;
      g_string_append_len (got, buf, n);
    }
  g_assert_cmpstr (got->str, ==, "partia");
  g_string_free (got, TRUE);

  g_assert_false (qlean_guest_process_wait (process, NULL, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);

  g_clear_object (&process);
  g_clear_object (&machine);
  fake_guest_stop (&guest);
}

/* Through the machine's file calls: a path longer than a frame can
 * carry fails at once, with the call and a shortened path in the
 * message, and never reaches the guest. */
static void
test_machine_oversized_path (void)
{
  FakeGuest guest = { 0 };
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *path = g_malloc (QLEAN_GUEST_MAX_PAYLOAD + 2);

  memset (path, 'a', QLEAN_GUEST_MAX_PAYLOAD + 1);
  path[0] = '/';
  path[QLEAN_GUEST_MAX_PAYLOAD + 1] = '\0';
  guest.done = g_bytes_new (NULL, 0);
  fake_guest_start (&guest);
  machine = qlean_machine_attach ("fake", guest.path, NULL, &error);
  g_assert_no_error (error);

  g_assert_false (qlean_machine_create_dir (machine, path, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE);
  g_test_message ("%s", error->message);
  g_assert_cmpuint (strlen (error->message), <, 1024);
  g_assert_nonnull (strstr (error->message, "create directory"));
  g_clear_error (&error);
  g_assert_cmpint (g_atomic_int_get (&guest.requests), ==, 0);

  /* The channel still serves. */
  g_assert_true (qlean_machine_create_dir (machine, "/ok", NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (g_atomic_int_get (&guest.requests), ==, 1);

  g_clear_object (&machine);
  fake_guest_stop (&guest);
}

/* The agent fallback's read loop against an agent that keeps answering
 * "no data, no end of file": it gives up, by count or by time. */
typedef struct
{
  guint delay_ms;   /* before each answer */
  guint answered;
} EmptyReads;

static void
empty_reads_script (FakePeer *peer,
                    gpointer  user_data)
{
  EmptyReads *script = user_data;
  g_autofree char *line = NULL;
  gsize len;

  while ((line = fake_peer_read_line (peer, &len)) != NULL)
    {
      g_autoptr(JsonParser) parser = json_parser_new ();
      JsonObject *message;

      if (len > 0 && (guchar) line[0] == 0xFF)
        {
          g_assert_true (json_parser_load_from_data (parser, line + 1, len - 1, NULL));
          message = json_node_get_object (json_parser_get_root (parser));
          fake_peer_writef (peer, "\xff{\"return\": %" G_GINT64_FORMAT "}\n",
                            json_object_get_int_member (json_object_get_object_member (message, "arguments"), "id"));
        }
      else
        {
          g_assert_true (json_parser_load_from_data (parser, line, len, NULL));
          message = json_node_get_object (json_parser_get_root (parser));
          g_assert_cmpstr (json_object_get_string_member (message, "execute"), ==, "guest-file-read");
          g_usleep (script->delay_ms * 1000);
          script->answered++;
          fake_peer_writef (peer, "{\"return\": {\"count\": 0, \"buf-b64\": \"\", \"eof\": false}, \"id\": \"%s\"}\n",
                            json_object_get_string_member (message, "id"));
        }
      g_clear_pointer (&line, g_free);
    }
}

static void
run_empty_reads (guint      timeout_ms,
                 EmptyReads *script,
                 GError    **error)
{
  g_autoptr(GIOStream) stream = NULL;
  g_autoptr(FakePeer) peer = fake_peer_new (&stream);
  g_autoptr(QleanQgaClient) qga = qlean_qga_client_new (stream);
  g_autoptr(GByteArray) collected = g_byte_array_new ();
  GThread *thread = fake_peer_run_in_thread (peer, empty_reads_script, script);

  qlean_qga_client_set_timeout (qga, timeout_ms);
  g_assert_false (qlean_agent_read_to_end (qga, 7, NULL, collected, NULL, error));
  qlean_qga_client_close (qga);
  g_thread_join (thread);
}

static void
test_agent_empty_reads (void)
{
  EmptyReads by_count = { 0 };
  EmptyReads by_time = { .delay_ms = 100 };
  g_autoptr(GError) error = NULL;
  gint64 start;

  run_empty_reads (0, &by_count, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_test_message ("no timeout: %s", error->message);
  g_assert_cmpuint (by_count.answered, ==, 64);
  g_clear_error (&error);

  start = g_get_monotonic_time ();
  run_empty_reads (500, &by_time, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_test_message ("500 ms timeout: %s", error->message);
  g_assert_cmpuint (by_time.answered, <, 20);
  g_assert_cmpint (g_get_monotonic_time () - start, <, 5 * G_USEC_PER_SEC);
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
  g_test_add ("/guest-channel/oversized-request", Fixture, NULL,
              fixture_set_up, test_oversized_request, fixture_tear_down);
  g_test_add ("/guest-channel/timeout/progress-keeps-alive", Fixture, NULL,
              fixture_set_up, test_progress_keeps_alive, fixture_tear_down);
  g_test_add_func ("/guest-channel/machine/copy-absurd-size", test_copy_absurd_size);
  g_test_add_func ("/guest-channel/machine/read-beyond-size", test_machine_read_beyond_size);
  g_test_add_func ("/guest-channel/machine/started-then-error", test_machine_started_then_error);
  g_test_add_func ("/guest-channel/machine/terminal-old-guest", test_terminal_old_guest);
  g_test_add_func ("/guest-channel/relay/terminal", test_relay_terminal);
  g_test_add_func ("/guest-channel/machine/oversized-path", test_machine_oversized_path);
  g_test_add_func ("/guest-channel/agent/empty-reads", test_agent_empty_reads);

  return g_test_run ();
}
