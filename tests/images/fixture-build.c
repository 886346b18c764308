/* fixture-build.c: building the image tests' fixtures, and their caches
 *
 * SPDX-License-Identifier: MIT
 *
 * Shared by test-image.c (the amd64 Debian fixture) and
 * test-image-arm64.c (the arm64 one), which build theirs with scripts
 * of their own but run them, and keep per-test caches, the same way.
 */

#include "config.h"

#include <string.h>
#include <glib/gstdio.h>

#include "fixture-build.h"
#include "qlean-util-private.h"

char *
fixture_build (const char  *script,
               const char  *what,
               char       **skip_reason)
{
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "images", script, NULL);
  const char *cache = g_getenv ("QLEAN_FIXTURE_CACHE");
  g_autofree char *default_cache = g_build_filename (g_get_home_dir (), ".cache", "qlean-test-fixtures", NULL);
  const char *argv[] = { "bash", path, cache && *cache ? cache : default_cache, NULL };
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autoptr(GError) error = NULL;
  gint64 start = g_get_monotonic_time ();
  int status = 0;

  if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                     &out, &err, &status, &error) ||
      !g_spawn_check_wait_status (status, &error))
    {
      g_autofree char *tail = err ? g_strdup (g_strstrip (err)) : g_strdup ("");
      gsize len = strlen (tail);

      *skip_reason = g_strdup_printf ("%s could not be built (%s): %s", what,
                                      error->message, len > 600 ? tail + len - 600 : tail);
      return NULL;
    }

  g_strstrip (out);
  g_test_message ("%s %s ready in %.1f s", what, out, (g_get_monotonic_time () - start) / 1e6);
  return g_steal_pointer (&out);
}

gboolean
fixture_need (const char      *script,
              const char      *what,
              char           **dir,
              char           **skip_reason,
              FixtureServer  **server)
{
  if (*dir == NULL && *skip_reason == NULL)
    *dir = fixture_build (script, what, skip_reason);

  if (*dir == NULL)
    {
      g_test_skip (*skip_reason);
      return FALSE;
    }

  if (*server == NULL)
    {
      g_autoptr(GError) error = NULL;

      *server = fixture_server_new (*dir, &error);
      g_assert_no_error (error);
    }

  return TRUE;
}

char *
fixture_make_cache (const char *group,
                    const char *name)
{
  char *dir = g_build_filename (g_get_user_cache_dir (), group, name, NULL);

  qlean_rm_rf (dir, NULL);
  g_assert_cmpint (g_mkdir_with_parents (dir, 0755), ==, 0);
  return dir;
}

void
fixture_remove_cache (const char *dir)
{
  g_autoptr(GError) error = NULL;

  qlean_rm_rf (dir, &error);
  g_assert_no_error (error);
}
