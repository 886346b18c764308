/* fake-peer.h: the far end of a socketpair, scripted by a unit test
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* A fake QEMU monitor or guest agent. The client under test gets one end
 * of a socketpair as a GSocketConnection; the test holds the other end as
 * a plain blocking descriptor and reads what the client wrote, then
 * answers as its script says. Clients do their I/O on Qlean's worker
 * thread, so a test may drive the peer from its own thread while it waits
 * for async callbacks, or from a second thread while it blocks in a sync
 * call. Every read is bounded by a watchdog, so a client that never
 * writes fails the test instead of hanging it. */
typedef struct _FakePeer FakePeer;

typedef void (*FakePeerScript) (FakePeer *peer,
                                gpointer  user_data);

FakePeer   *fake_peer_new             (GIOStream  **client_stream);
void        fake_peer_free            (FakePeer    *peer);

char       *fake_peer_read_line       (FakePeer    *peer,
                                       gsize       *len);
JsonObject *fake_peer_read_message    (FakePeer    *peer);
GBytes     *fake_peer_read_bytes      (FakePeer    *peer,
                                       gsize        len);
void        fake_peer_write           (FakePeer    *peer,
                                       const char  *data,
                                       gssize       len);
void        fake_peer_writef          (FakePeer    *peer,
                                       const char  *format,
                                       ...) G_GNUC_PRINTF (2, 3);
gboolean    fake_peer_try_write       (FakePeer    *peer,
                                       const char  *data,
                                       gsize        len);
void        fake_peer_assert_quiet    (FakePeer    *peer,
                                       guint        ms);
void        fake_peer_assert_eof      (FakePeer    *peer);
void        fake_peer_close           (FakePeer    *peer);

/* @head, then @depth arrays nested in each other, then @tail: the shape
 * that would overflow a recursive JSON parser's stack. */
char       *deep_json                 (const char  *head,
                                       guint        depth,
                                       const char  *tail);

GThread    *fake_peer_run_in_thread   (FakePeer      *peer,
                                       FakePeerScript script,
                                       gpointer       user_data);

/* Helpers for the test's own (default) main context, where async
 * callbacks and the clients' signals arrive. */
void        test_iterate              (void);
void        test_spin                 (guint        ms);
void        test_watchdog_expired     (gint64       deadline,
                                       const char  *what);

#define TEST_WAIT_SECONDS 20

#define WAIT_UNTIL(cond)                                                     \
  G_STMT_START {                                                             \
    gint64 wait_deadline_ = g_get_monotonic_time () +                        \
                            TEST_WAIT_SECONDS * G_USEC_PER_SEC;              \
    while (!(cond))                                                          \
      {                                                                      \
        test_watchdog_expired (wait_deadline_, #cond);                       \
        test_iterate ();                                                     \
      }                                                                      \
  } G_STMT_END

/* Collects what an async call hands its callback, and how often. */
typedef struct
{
  GAsyncResult *result;
  guint         count;
} AsyncCapture;

void        async_capture_cb          (GObject      *source,
                                       GAsyncResult *result,
                                       gpointer      user_data);
void        async_capture_clear       (AsyncCapture *capture);

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (AsyncCapture, async_capture_clear)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (FakePeer, fake_peer_free)

/* Waits until @object is finalized: proves the client did not keep
 * itself alive once closed, and that no worker-side reference outlives
 * the test. Drops the caller's reference. */
void        assert_finalized          (gpointer     object);

G_END_DECLS
