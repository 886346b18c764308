/* test-tree-tar.c: the tree tar of agent transfers, on local files (no QEMU)
 *
 * SPDX-License-Identifier: MIT
 *
 * What qlean_tree_tar_write() packs must unpack the same with the tars
 * guests have (GNU tar, busybox's), what they pack must unpack the same
 * with qlean_tree_tar_extract(), and a hostile stream, built byte by
 * byte, must not create or change anything outside the destination.
 * The transfers themselves, over a real guest agent, are in
 * tests/test-files.c (the files-agent test).
 */

#include "config.h"

#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <glib/gstdio.h>

#include "qlean-tree-tar-private.h"

static char *
run (const char *command)
{
  g_autoptr(GError) error = NULL;
  char *out = NULL;
  int status;

  g_assert_true (g_spawn_command_line_sync (command, &out, NULL, &status, &error));
  g_assert_no_error (error);
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  return out;
}

static void
rm_rf (const char *path)
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
static char *
make_tree (void)
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
  g_assert_true (g_file_set_contents (odd, "odd", -1, NULL));
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

/* Same names, contents, links, modes and times (links' own excepted). */
static void
assert_same_tree (const char *a,
                  const char *b)
{
  g_autofree char *cmd = g_strdup_printf ("diff -r --no-dereference %s %s", a, b);
  g_autofree char *stats_a = NULL;
  g_autofree char *stats_b = NULL;
  g_autofree char *list_a = NULL;
  g_autofree char *list_b = NULL;

  g_free (run (cmd));
  g_free (cmd);
  cmd = g_strdup_printf ("sh -c 'cd %s && find . ! -type l -exec stat -c \"%%n %%a %%Y\" {} + | sort'", a);
  stats_a = run (cmd);
  g_free (cmd);
  cmd = g_strdup_printf ("sh -c 'cd %s && find . ! -type l -exec stat -c \"%%n %%a %%Y\" {} + | sort'", b);
  stats_b = run (cmd);
  g_assert_cmpstr (stats_a, ==, stats_b);
  g_free (cmd);
  cmd = g_strdup_printf ("sh -c 'cd %s && find . | sort'", a);
  list_a = run (cmd);
  g_free (cmd);
  cmd = g_strdup_printf ("sh -c 'cd %s && find . | sort'", b);
  list_b = run (cmd);
  g_assert_cmpstr (list_a, ==, list_b);
}

static char *
write_to_file (const char *tree)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GFile) root = g_file_new_for_path (tree);
  g_autoptr(GFileIOStream) io = NULL;
  g_autoptr(GFile) tar = g_file_new_tmp ("qlean-tt-XXXXXX.tar", &io, &error);

  g_assert_no_error (error);
  g_assert_true (qlean_tree_tar_write (root, g_io_stream_get_output_stream (G_IO_STREAM (io)), NULL, &error));
  g_assert_no_error (error);
  g_assert_true (g_io_stream_close (G_IO_STREAM (io), NULL, NULL));
  return g_file_get_path (tar);
}

static gboolean
extract_file (const char  *tar,
              const char  *dest,
              GError     **error)
{
  g_autoptr(GFile) file = g_file_new_for_path (tar);
  g_autoptr(GFileInputStream) in = g_file_read (file, NULL, NULL);

  g_assert_nonnull (in);
  return qlean_tree_tar_extract (G_INPUT_STREAM (in), dest, 07777, NULL, error);
}

static void
test_round_trip (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *tree = make_tree ();
  g_autofree char *tar = write_to_file (tree);
  g_autofree char *out = g_dir_make_tmp ("qlean-tt-out-XXXXXX", NULL);
  g_autofree char *dest = g_build_filename (out, "copy", NULL);

  g_assert_true (extract_file (tar, dest, &error));
  g_assert_no_error (error);
  assert_same_tree (tree, dest);

  /* Again onto the copy: files and links are replaced, not refused. */
  g_assert_true (extract_file (tar, dest, &error));
  g_assert_no_error (error);
  assert_same_tree (tree, dest);

  rm_rf (tree);
  rm_rf (out);
  g_unlink (tar);
}

/* What the writer packs, the guests' tars unpack the same; what they
 * pack, the reader unpacks the same. */
static void
check_tar (const char *tar_program,
           const char *binary)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *tree = NULL;
  g_autofree char *tar = NULL;
  g_autofree char *out = NULL;
  g_autofree char *theirs = NULL;
  g_autofree char *packed = NULL;
  g_autofree char *ours = NULL;
  g_autofree char *cmd = NULL;
  g_autofree char *found = g_find_program_in_path (binary);

  if (found == NULL)
    {
      g_test_skip ("this tar is not installed on the host");
      return;
    }

  tree = make_tree ();
  tar = write_to_file (tree);
  out = g_dir_make_tmp ("qlean-tt-out-XXXXXX", NULL);
  theirs = g_build_filename (out, "theirs", NULL);
  packed = g_build_filename (out, "packed.tar", NULL);
  ours = g_build_filename (out, "ours", NULL);

  g_assert_cmpint (g_mkdir (theirs, 0700), ==, 0);
  cmd = g_strdup_printf ("%s -x -f %s -C %s", tar_program, tar, theirs);
  g_free (run (cmd));
  assert_same_tree (tree, theirs);

  g_free (cmd);
  cmd = g_strdup_printf ("sh -c 'cd %s && %s -c -f %s .'", tree, tar_program, packed);
  g_free (run (cmd));
  g_assert_true (extract_file (packed, ours, &error));
  g_assert_no_error (error);
  assert_same_tree (tree, ours);

  rm_rf (tree);
  rm_rf (out);
  g_unlink (tar);
}

static void
test_gnu_tar (void)
{
  check_tar ("tar", "tar");
}

static void
test_busybox_tar (void)
{
  check_tar ("busybox tar", "busybox");
}

/* Hostile streams, built byte by byte. */

static void
octal (guint8  *field,
       gsize    len,
       guint64  value)
{
  g_autofree char *text = g_strdup_printf ("%0*" G_GINT64_MODIFIER "o", (int) len - 1, value);

  memcpy (field, text, len - 1);
}

static void
add_member (GByteArray *tar,
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

static void
end_tar (GByteArray *tar)
{
  static const guint8 zeros[1024];

  g_byte_array_append (tar, zeros, sizeof zeros);
}

typedef struct
{
  char *top;        /* holds dest, outside/ and the sentinel */
  char *dest;
  char *outside;
  char *sentinel;
} Hostile;

static void
hostile_setup (Hostile *h)
{
  h->top = g_dir_make_tmp ("qlean-tt-hostile-XXXXXX", NULL);
  h->dest = g_build_filename (h->top, "dest", NULL);
  h->outside = g_build_filename (h->top, "outside", NULL);
  h->sentinel = g_build_filename (h->outside, "sentinel", NULL);
  g_assert_cmpint (g_mkdir (h->outside, 0755), ==, 0);
  g_assert_true (g_file_set_contents (h->sentinel, "untouched", -1, NULL));
}

/* Extracts @tar, which must be refused with @code; then nothing outside
 * the destination has changed. */
static void
hostile_check (Hostile    *h,
               GByteArray *tar,
               int         code)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GInputStream) in = g_memory_input_stream_new_from_data (g_memdup2 (tar->data, tar->len),
                                                                    tar->len, g_free);
  g_autofree char *contents = NULL;
  g_autofree char *listing = NULL;
  g_autofree char *cmd = g_strdup_printf ("sh -c 'cd %s && ls -A'", h->top);
  g_autofree char *outside = g_strdup_printf ("sh -c 'cd %s && ls -A'", h->outside);

  g_assert_false (qlean_tree_tar_extract (in, h->dest, 07777, NULL, &error));
  g_assert_error (error, G_IO_ERROR, code);
  g_test_message ("refused: %s", error->message);

  g_assert_true (g_file_get_contents (h->sentinel, &contents, NULL, NULL));
  g_assert_cmpstr (contents, ==, "untouched");
  listing = run (cmd);
  g_assert_cmpstr (listing, ==, "dest\noutside\n");
  g_free (listing);
  listing = run (outside);
  g_assert_cmpstr (listing, ==, "sentinel\n");
  rm_rf (h->dest);
}

static void
test_hostile (void)
{
  Hostile h;
  g_autofree char *abs_sentinel = NULL;

  hostile_setup (&h);
  abs_sentinel = g_strdup (h.sentinel);

  {
    g_autoptr(GByteArray) tar = g_byte_array_new ();

    add_member (tar, "../outside/sentinel", '0', NULL, "pwned");
    end_tar (tar);
    hostile_check (&h, tar, G_IO_ERROR_INVALID_DATA);
  }
  {
    g_autoptr(GByteArray) tar = g_byte_array_new ();

    add_member (tar, "./a/../../outside/new", '0', NULL, "pwned");
    end_tar (tar);
    hostile_check (&h, tar, G_IO_ERROR_INVALID_DATA);
  }
  {
    g_autoptr(GByteArray) tar = g_byte_array_new ();

    add_member (tar, abs_sentinel, '0', NULL, "pwned");
    end_tar (tar);
    hostile_check (&h, tar, G_IO_ERROR_INVALID_DATA);
  }
  /* A link the stream planted, then a file and a directory through it. */
  {
    g_autoptr(GByteArray) tar = g_byte_array_new ();

    add_member (tar, "./l", '2', h.outside, NULL);
    add_member (tar, "./l/sentinel", '0', NULL, "pwned");
    end_tar (tar);
    hostile_check (&h, tar, G_IO_ERROR_EXISTS);
  }
  {
    g_autoptr(GByteArray) tar = g_byte_array_new ();

    add_member (tar, "./l", '2', h.outside, NULL);
    add_member (tar, "./l/sub/", '5', NULL, NULL);
    end_tar (tar);
    hostile_check (&h, tar, G_IO_ERROR_EXISTS);
  }
  /* A link to a file outside, then a file of the same name: never
   * written through. */
  {
    g_autoptr(GByteArray) tar = g_byte_array_new ();

    add_member (tar, "./f", '2', abs_sentinel, NULL);
    add_member (tar, "./f", '0', NULL, "pwned");
    end_tar (tar);
    hostile_check (&h, tar, G_IO_ERROR_EXISTS);
  }
  /* Hard links only to the stream's own files. */
  {
    g_autoptr(GByteArray) tar = g_byte_array_new ();

    add_member (tar, "./h", '1', abs_sentinel, NULL);
    end_tar (tar);
    hostile_check (&h, tar, G_IO_ERROR_INVALID_DATA);
  }
  {
    g_autoptr(GByteArray) tar = g_byte_array_new ();

    add_member (tar, "./h", '1', "../outside/sentinel", NULL);
    end_tar (tar);
    hostile_check (&h, tar, G_IO_ERROR_INVALID_DATA);
  }
  /* Truncated: no end marker, or data cut short. */
  {
    g_autoptr(GByteArray) tar = g_byte_array_new ();

    add_member (tar, "./f", '0', NULL, "data");
    hostile_check (&h, tar, G_IO_ERROR_INVALID_DATA);
  }
  {
    g_autoptr(GByteArray) tar = g_byte_array_new ();

    add_member (tar, "./f", '0', NULL, "data");
    g_byte_array_set_size (tar, 514);
    hostile_check (&h, tar, G_IO_ERROR_INVALID_DATA);
  }
  /* A long name larger than any path. */
  {
    g_autoptr(GByteArray) tar = g_byte_array_new ();
    g_autofree char *huge = g_strnfill (QLEAN_TREE_TAR_MAX_NAME + 1, 'x');

    add_member (tar, "././@LongLink", 'L', NULL, huge);
    add_member (tar, "./f", '0', NULL, "data");
    end_tar (tar);
    hostile_check (&h, tar, G_IO_ERROR_INVALID_DATA);
  }
  /* A sparse file (GNU 'S'): a type a download does not take. */
  {
    g_autoptr(GByteArray) tar = g_byte_array_new ();

    add_member (tar, "./s", 'S', NULL, NULL);
    end_tar (tar);
    hostile_check (&h, tar, G_IO_ERROR_INVALID_DATA);
  }

  rm_rf (h.top);
  g_free (h.top);
  g_free (h.dest);
  g_free (h.outside);
  g_free (h.sentinel);
}

/* Device nodes and FIFOs are left out, never made on the host. */
static void
test_no_devices (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GByteArray) tar = g_byte_array_new ();
  g_autoptr(GInputStream) in = NULL;
  g_autofree char *top = g_dir_make_tmp ("qlean-tt-dev-XXXXXX", NULL);
  g_autofree char *dest = g_build_filename (top, "dest", NULL);
  g_autofree char *listing = NULL;
  g_autofree char *cmd = g_strdup_printf ("sh -c 'cd %s && ls -A'", dest);

  add_member (tar, "./null", '3', NULL, NULL);
  add_member (tar, "./disk", '4', NULL, NULL);
  add_member (tar, "./fifo", '6', NULL, NULL);
  add_member (tar, "./kept", '0', NULL, "kept");
  end_tar (tar);
  in = g_memory_input_stream_new_from_data (g_memdup2 (tar->data, tar->len), tar->len, g_free);

  g_assert_true (qlean_tree_tar_extract (in, dest, 07777, NULL, &error));
  g_assert_no_error (error);
  listing = run (cmd);
  g_assert_cmpstr (listing, ==, "kept\n");
  rm_rf (top);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/tree-tar/round-trip", test_round_trip);
  g_test_add_func ("/tree-tar/gnu-tar", test_gnu_tar);
  g_test_add_func ("/tree-tar/busybox-tar", test_busybox_tar);
  g_test_add_func ("/tree-tar/hostile", test_hostile);
  g_test_add_func ("/tree-tar/no-devices", test_no_devices);

  return g_test_run ();
}
