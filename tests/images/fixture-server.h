/* fixture-server.h: a small HTTP server for image tests, on 127.0.0.1
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* Serves the files under a directory over HTTP/1.1 (GET and HEAD, one
 * request per connection, Range requests) on 127.0.0.1, from its own
 * threads, so that it answers while the test thread blocks. The first
 * path component can ask for a fault:
 *
 *   /drop-once/PATH     the first GET of PATH (not of a checksum list) is
 *                       cut off halfway through the body (the connection
 *                       is closed), later ones are whole
 *   /slow/PATH          the body comes at about 40 MB/s
 *   /bad-checksum/PATH  checksum lists (SHA*SUMS, *CHECKSUM, *.SHA256)
 *                       come with every digest changed
 *   /redirect/PATH      302 to http://127.0.0.1:PORT/PATH
 *   /redirect-loop/PATH 302 to itself, for ever
 *   /redirect-file/PATH 302 to file://ROOT/PATH
 *   /redirect-ftp/PATH  302 to ftp://127.0.0.1:9/PATH
 *
 * It counts requests by the path after the prefix. */
typedef struct _FixtureServer FixtureServer;

FixtureServer *fixture_server_new          (const char    *root,
                                            GError       **error);
/* "http://127.0.0.1:PORT", no trailing slash. */
const char    *fixture_server_get_url      (FixtureServer *server);
/* GETs of @path (e.g. "/debian-12-generic-amd64/SHA512SUMS"). */
guint          fixture_server_count        (FixtureServer *server,
                                            const char    *path);
/* GETs of @path that carried a Range header. */
guint          fixture_server_count_ranged (FixtureServer *server,
                                            const char    *path);
void           fixture_server_reset_counts (FixtureServer *server);
/* Stops listening and waits for the connections in progress. */
void           fixture_server_free         (FixtureServer *server);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (FixtureServer, fixture_server_free)

G_END_DECLS
