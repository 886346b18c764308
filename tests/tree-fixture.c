/* tree-fixture.c: a local tree and tar members by hand, for the tree tests
 *
 * SPDX-License-Identifier: MIT
 *
 * Shared by the tree tar's unit test (tests/unit/test-tree-tar.c) and the
 * transfers' tests on real QEMU (tests/test-files-tree.c): the same tree
 * with everything a transfer must keep, the same comparison, and the
 * same hand-built tar members for hostile streams.
 */

#include "config.h"

#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <glib/gstdio.h>
#include <gio/gio.h>

#include "tree-fixture.h"

char *
tree_fixture_run (const char *command)
{
  g_autoptr(GError) error = NULL;
  char *out = NULL;
  int status;

  g_assert_true (g_spawn_command_line_sync (command, &out, NULL, &status, &error));
  g_assert_no_error (error);
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  return out;
}

void
tree_fixture_rm_rf (const char *path)
{
  const char *argv[] = { "rm", "-rf", "--", path, NULL };

  g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL,
                               NULL, NULL, NULL));
}

static void
set_mtime (const char *path,
           gint64      seconds)
{
  g_autoptr(GFile) file = g_file_new_for_path (path);

  g_assert_true (g_file_set_attribute_uint64 (file, G_FILE_ATTRIBUTE_TIME_MODIFIED, seconds,
                                              G_FILE_QUERY_INFO_NOFOLLOW_SYMLINKS, NULL, NULL));
}

/* A tree with what transfers must keep: nested and empty directories,
 * modes, a link, awkward and long names, set times (directories last). */
char *
tree_fixture_make (void)
{
  char *dir = g_dir_make_tmp ("qlean-tt-src-XXXXXX", NULL);
  g_autofree char *a = g_build_filename (dir, "a", NULL);
  g_autofree char *ab = g_build_filename (dir, "a", "b", NULL);
  g_autofree char *empty = g_build_filename (dir, "empty", NULL);
  g_autofree char *file = g_build_filename (dir, "a", "b", "run.sh", NULL);
  g_autofree char *odd = g_build_filename (dir, "a", "-dash name\nnewline", NULL);
  g_autofree char *long_name = g_strnfill (150, 'n');
  g_autofree char *long_path = g_build_filename (dir, "a", long_name, NULL);
  g_autofree char *link = g_build_filename (dir, "link", NULL);
  g_autofree char *long_link = NULL;
  g_autofree char *long_target = NULL;

  g_assert_nonnull (dir);
  g_assert_cmpint (g_mkdir (a, 0755), ==, 0);
  g_assert_cmpint (g_mkdir (ab, 0750), ==, 0);
  g_assert_cmpint (g_mkdir (empty, 0700), ==, 0);
  g_assert_true (g_file_set_contents (file, "#!/bin/sh\necho tree\n", -1, NULL));
  g_assert_cmpint (g_chmod (file, 0750), ==, 0);
  g_assert_true (g_file_set_contents (odd, "odd\n", -1, NULL));
  g_assert_cmpint (g_chmod (odd, 0604), ==, 0);
  g_assert_true (g_file_set_contents (long_path, "long", -1, NULL));
  g_assert_cmpint (symlink ("a/b/run.sh", link), ==, 0);
  /* A link whose name and target are both too long for the header. */
  long_target = g_strdup_printf ("a/%s", long_name);
  long_link = g_build_filename (dir, "a", "b", long_name, NULL);
  g_assert_cmpint (symlink (long_target, long_link), ==, 0);
  set_mtime (file, 1000000000);
  set_mtime (odd, 1000000001);
  set_mtime (ab, 1000000002);
  set_mtime (a, 1000000003);
  set_mtime (empty, 1000000004);
  g_assert_cmpint (g_chmod (dir, 0751), ==, 0);
  set_mtime (dir, 1000000005);

  return dir;
}

/* Same names, contents and link targets, and the modes and whole-second
 * times of all but links. */
void
tree_fixture_assert_same (const char *a,
                          const char *b)
{
  static const char list[] = "sh -c 'cd \"$0\" && find . ! -type l -exec stat -c \"%%n %%a %%Y\" {} + "
                             "| sort && find . -type l | sort' %s";
  g_autofree char *diff = g_strdup_printf ("diff -r --no-dereference %s %s", a, b);
  g_autofree char *list_a = g_strdup_printf (list, a);
  g_autofree char *list_b = g_strdup_printf (list, b);
  g_autofree char *stats_a = tree_fixture_run (list_a);
  g_autofree char *stats_b = tree_fixture_run (list_b);

  g_free (tree_fixture_run (diff));
  g_assert_cmpstr (stats_a, ==, stats_b);
}

static void
octal (guint8  *field,
       gsize    len,
       guint64  value)
{
  g_autofree char *text = g_strdup_printf ("%0*" G_GINT64_MODIFIER "o", (int) len - 1, value);

  memcpy (field, text, len - 1);
}

void
tree_fixture_add_member (GByteArray *tar,
            const char *name,
            char        type,
            const char *linkname,
            const char *data)
{
  static const guint8 zeros[512];
  guint8 header[512] = { 0 };
  gsize len = data ? strlen (data) : 0;
  guint sum = 0;

  memcpy (header, name, MIN (strlen (name), 100));
  octal (header + 100, 8, 0644);
  octal (header + 108, 8, 0);
  octal (header + 116, 8, 0);
  octal (header + 124, 12, len);
  octal (header + 136, 12, 0);
  header[156] = type;
  if (linkname != NULL)
    memcpy (header + 157, linkname, MIN (strlen (linkname), 100));
  memcpy (header + 257, "ustar\0" "00", 8);
  memset (header + 148, ' ', 8);
  for (gsize i = 0; i < 512; i++)
    sum += header[i];
  octal (header + 148, 7, sum);
  g_byte_array_append (tar, header, 512);
  if (len > 0)
    {
      g_byte_array_append (tar, (const guint8 *) data, len);
      g_byte_array_append (tar, zeros, (512 - len % 512) % 512);
    }
}

void
tree_fixture_end (GByteArray *tar)
{
  static const guint8 zeros[1024];

  g_byte_array_append (tar, zeros, sizeof zeros);
}
