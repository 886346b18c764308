/* fixture-build.h: building the image tests' fixtures, and their caches
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <glib.h>

#include "fixture-server.h"

G_BEGIN_DECLS

/* Runs tests/images/@script, which builds a fixture (or finds it built)
 * under $QLEAN_FIXTURE_CACHE, else ~/.cache/qlean-test-fixtures, and
 * prints its directory. Returns that directory, or NULL with
 * @skip_reason saying why, for g_test_skip(): the end of what the
 * script wrote to stderr, and @what (“the Debian fixture”). */
char *fixture_build        (const char  *script,
                            const char  *what,
                            char       **skip_reason);

/* For a test that needs a fixture: builds it with fixture_build() on the
 * first call, skips the test (and returns FALSE) when it cannot be built,
 * and serves it with a FixtureServer started on the first call. @dir,
 * @skip_reason and @server are the test file's, kept across calls. */
gboolean fixture_need      (const char      *script,
                            const char      *what,
                            char           **dir,
                            char           **skip_reason,
                            FixtureServer  **server);

/* A fresh, empty cache directory for one test, under
 * $XDG_CACHE_HOME/@group/@name. */
char *fixture_make_cache   (const char  *group,
                            const char  *name);

/* Removes what fixture_make_cache() made; it must go. */
void  fixture_remove_cache (const char  *dir);

G_END_DECLS
