/* fake-guest.h: a scripted qlean-guest for the data channel tests
 *
 * The test plays qlean-guest on a socketpair: the fixture's channel has
 * said HELLO and heard it back, and frames are read and written by hand.
 * A Watched stream is opened and driven on the worker, and what its
 * callback saw is read by the test thread. Shared by
 * test-guest-channel.c and test-guest-channel-receive.c.
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include "fake-peer.h"
#include "qlean-guest-channel-private.h"
#include "qlean-guest-protocol.h"

G_BEGIN_DECLS

typedef struct
{
  guint8  type;
  guint8  fd;
  guint32 stream;
  GBytes *payload;
} Frame;

void     frame_clear               (Frame         *frame);

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Frame, frame_clear)

/* The next frame the host wrote, and one the guest writes. */
void     read_frame                (FakePeer      *peer,
                                    Frame         *frame);
void     write_frame               (FakePeer      *peer,
                                    guint8         type,
                                    guint8         fd,
                                    guint32        stream,
                                    gconstpointer  payload,
                                    gsize          len);

typedef struct
{
  FakePeer          *peer;
  GIOStream         *stream;
  QleanGuestChannel *channel;
  gint               ready;   /* atomic */
} Fixture;

void     fixture_set_up            (Fixture       *fixture,
                                    gconstpointer  data);
void     fixture_set_up_version    (Fixture       *fixture,
                                    guint8         version);
void     fixture_tear_down         (Fixture       *fixture,
                                    gconstpointer  data);

/* One stream, opened and driven on the worker; what its callback saw is
 * read by the test thread. */
typedef struct
{
  QleanGuestChannel *channel;
  guint8             request;
  guint              timeout_ms;
  gsize              request_size;  /* 0: an empty request */
  QleanGuestStream  *stream;     /* worker */
  gint               calls;      /* atomic */
  guint8             last_type;
  GError            *error;
  gint64             opened;
  gint64             ended;      /* when type 0 came */
  guint              progress;   /* PROGRESS frames seen */
} Watched;

gboolean watched_open_in_worker    (gpointer       user_data);
gboolean watched_eof_in_worker     (gpointer       user_data);
gboolean watched_release_in_worker (gpointer       user_data);
gboolean set_flag_in_worker        (gpointer       user_data);
void     in_worker                 (GSourceFunc    func,
                                    Watched       *w);
void     watched_clear             (Watched       *w);
double   watched_ms                (Watched       *w);

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Watched, watched_clear)

G_END_DECLS
