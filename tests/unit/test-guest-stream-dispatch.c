/* test-guest-stream-dispatch.c: a stream's frames reach the right handler
 *
 * SPDX-License-Identifier: MIT
 *
 * The dispatcher only decodes and routes, so it is tested on its own,
 * without a channel: each event is handed to it as a stream callback
 * gets it, and a recorder says which handler ran with what.
 */

#include "config.h"

#include <glib.h>
#include <gio/gio.h>

#include "qlean-guest-stream-dispatch-private.h"

typedef struct
{
  GString *log;
} Recorder;

static void
record_closed (QleanGuestStream *stream,
               const GError     *error,
               gpointer          user_data)
{
  Recorder *r = user_data;

  g_string_append_printf (r->log, "closed(%s) ", error->message);
}

static void
record_started (QleanGuestStream *stream,
                guint32           pid,
                gpointer          user_data)
{
  Recorder *r = user_data;

  g_string_append_printf (r->log, "started(%u) ", pid);
}

static void
record_data (QleanGuestStream *stream,
             guint8            fd,
             GBytes           *payload,
             gpointer          user_data)
{
  Recorder *r = user_data;

  g_string_append_printf (r->log, "data(%u,%.*s) ", fd, (int) g_bytes_get_size (payload),
                          (const char *) g_bytes_get_data (payload, NULL));
}

static void
record_eof (QleanGuestStream *stream,
            guint8            fd,
            gpointer          user_data)
{
  Recorder *r = user_data;

  g_string_append_printf (r->log, "eof(%u) ", fd);
}

static void
record_exit (QleanGuestStream *stream,
             int               wait_status,
             gpointer          user_data)
{
  Recorder *r = user_data;

  g_string_append_printf (r->log, "exit(%d) ", wait_status);
}

static void
record_done (QleanGuestStream *stream,
             GBytes           *payload,
             gpointer          user_data)
{
  Recorder *r = user_data;

  g_string_append_printf (r->log, "done(%" G_GSIZE_FORMAT ") ", g_bytes_get_size (payload));
}

static void
record_error (QleanGuestStream *stream,
              GBytes           *payload,
              gpointer          user_data)
{
  Recorder *r = user_data;
  g_autoptr(GError) error = qlean_guest_error_from_payload (payload, "op");

  g_string_append_printf (r->log, "error(%s) ", error->message);
}

static void
record_frame (QleanGuestStream *stream,
              guint8            type,
              guint8            fd,
              GBytes           *payload,
              gpointer          user_data)
{
  Recorder *r = user_data;

  g_string_append_printf (r->log, "frame(%u,%u,%" G_GSIZE_FORMAT ") ", type, fd,
                          g_bytes_get_size (payload));
}

static const QleanGuestStreamHandlers all_handlers = {
  .closed = record_closed,
  .started = record_started,
  .data = record_data,
  .eof = record_eof,
  .exit = record_exit,
  .done = record_done,
  .error = record_error,
  .frame = record_frame,
};

/* Hands one frame to the dispatcher as the channel hands it to a
 * stream's callback. */
static void
send_frame (const QleanGuestStreamHandlers *handlers,
            Recorder                       *r,
            guint8                          type,
            guint8                          fd,
            const void                     *data,
            gsize                           len)
{
  g_autoptr(GBytes) payload = g_bytes_new (data, len);

  qlean_guest_stream_dispatch (handlers, NULL, type, fd, payload, NULL, r);
}

static void
send_closed (const QleanGuestStreamHandlers *handlers,
             Recorder                       *r)
{
  g_autoptr(GError) error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "gone");

  qlean_guest_stream_dispatch (handlers, NULL, QLEAN_GUEST_STREAM_CLOSED, 0, NULL, error, r);
}

/* A process's stream, as the guest sends it: every event decoded. */
static void
test_each_event (void)
{
  Recorder r = { g_string_new (NULL) };
  const guint8 pid[4] = { 0x39, 0x30, 0, 0 };            /* 12345 */
  const guint8 status[4] = { 0x00, 0x03, 0, 0 };         /* exit 3 */
  const guint8 enoent[] = { 2, 0, 0, 0, 'n', 'o', 'p', 'e' };
  const guint8 size[12] = { 0 };

  send_frame (&all_handlers, &r, QLEAN_GUEST_FRAME_STARTED, 0, pid, sizeof pid);
  send_frame (&all_handlers, &r, QLEAN_GUEST_FRAME_DATA, 1, "out", 3);
  send_frame (&all_handlers, &r, QLEAN_GUEST_FRAME_DATA, 2, "err", 3);
  send_frame (&all_handlers, &r, QLEAN_GUEST_FRAME_EOF, 1, NULL, 0);
  send_frame (&all_handlers, &r, QLEAN_GUEST_FRAME_EXIT, 0, status, sizeof status);
  send_frame (&all_handlers, &r, QLEAN_GUEST_FRAME_DONE, 0, size, sizeof size);
  send_frame (&all_handlers, &r, QLEAN_GUEST_FRAME_ERROR, 0, enoent, sizeof enoent);
  send_frame (&all_handlers, &r, QLEAN_GUEST_FRAME_PROGRESS, 0, NULL, 0);
  send_closed (&all_handlers, &r);

  g_assert_cmpstr (r.log->str, ==,
                   "started(12345) data(1,out) data(2,err) eof(1) exit(768) done(12) "
                   "error(op: nope) frame(15,0,0) closed(gone) ");
  g_string_free (r.log, TRUE);
}

/* STARTED and EXIT without their u32 (a CONNECT's STARTED is empty)
 * read as 0, as the consumers read them before the dispatcher did. */
static void
test_short_payloads (void)
{
  Recorder r = { g_string_new (NULL) };

  send_frame (&all_handlers, &r, QLEAN_GUEST_FRAME_STARTED, 0, NULL, 0);
  send_frame (&all_handlers, &r, QLEAN_GUEST_FRAME_EXIT, 0, "\1\2", 2);

  g_assert_cmpstr (r.log->str, ==, "started(0) exit(0) ");
  g_string_free (r.log, TRUE);
}

/* A relay names only @closed and @frame: every frame reaches @frame as
 * it came, and the end of the stream still reaches @closed. */
static void
test_fallback (void)
{
  static const QleanGuestStreamHandlers relay = {
    .closed = record_closed,
    .frame = record_frame,
  };
  Recorder r = { g_string_new (NULL) };
  const guint8 status[4] = { 9, 0, 0, 0 };

  send_frame (&relay, &r, QLEAN_GUEST_FRAME_STARTED, 0, "\1\0\0\0", 4);
  send_frame (&relay, &r, QLEAN_GUEST_FRAME_DATA, 1, "abc", 3);
  send_frame (&relay, &r, QLEAN_GUEST_FRAME_EXIT, 0, status, sizeof status);
  send_closed (&relay, &r);

  g_assert_cmpstr (r.log->str, ==, "frame(3,0,4) frame(4,1,3) frame(7,0,4) closed(gone) ");
  g_string_free (r.log, TRUE);
}

/* Events without a handler, and without @frame, are dropped: a
 * transfer ignores PROGRESS and STARTED, a clock call everything but
 * its end. */
static void
test_ignored (void)
{
  static const QleanGuestStreamHandlers only_done = {
    .done = record_done,
  };
  Recorder r = { g_string_new (NULL) };

  send_frame (&only_done, &r, QLEAN_GUEST_FRAME_PROGRESS, 0, NULL, 0);
  send_frame (&only_done, &r, QLEAN_GUEST_FRAME_DATA, 1, "x", 1);
  send_frame (&only_done, &r, QLEAN_GUEST_FRAME_DONE, 0, NULL, 0);
  send_frame (&only_done, &r, 200, 0, NULL, 0);
  send_closed (&only_done, &r);

  g_assert_cmpstr (r.log->str, ==, "done(0) ");
  g_string_free (r.log, TRUE);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/guest-stream-dispatch/each-event", test_each_event);
  g_test_add_func ("/guest-stream-dispatch/short-payloads", test_short_payloads);
  g_test_add_func ("/guest-stream-dispatch/fallback", test_fallback);
  g_test_add_func ("/guest-stream-dispatch/ignored", test_ignored);

  return g_test_run ();
}
