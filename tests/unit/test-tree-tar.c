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
#include "../tree-fixture.h"

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
  g_autofree char *tree = tree_fixture_make ();
  g_autofree char *tar = write_to_file (tree);
  g_autofree char *out = g_dir_make_tmp ("qlean-tt-out-XXXXXX", NULL);
  g_autofree char *dest = g_build_filename (out, "copy", NULL);

  g_assert_true (extract_file (tar, dest, &error));
  g_assert_no_error (error);
  tree_fixture_assert_same (tree, dest);

  /* Again onto the copy: files and links are replaced, not refused. */
  g_assert_true (extract_file (tar, dest, &error));
  g_assert_no_error (error);
  tree_fixture_assert_same (tree, dest);

  tree_fixture_rm_rf (tree);
  tree_fixture_rm_rf (out);
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

  tree = tree_fixture_make ();
  tar = write_to_file (tree);
  out = g_dir_make_tmp ("qlean-tt-out-XXXXXX", NULL);
  theirs = g_build_filename (out, "theirs", NULL);
  packed = g_build_filename (out, "packed.tar", NULL);
  ours = g_build_filename (out, "ours", NULL);

  g_assert_cmpint (g_mkdir (theirs, 0700), ==, 0);
  cmd = g_strdup_printf ("%s -x -f %s -C %s", tar_program, tar, theirs);
  g_free (tree_fixture_run (cmd));
  tree_fixture_assert_same (tree, theirs);

  g_free (cmd);
  cmd = g_strdup_printf ("sh -c 'cd %s && %s -c -f %s .'", tree, tar_program, packed);
  g_free (tree_fixture_run (cmd));
  g_assert_true (extract_file (packed, ours, &error));
  g_assert_no_error (error);
  tree_fixture_assert_same (tree, ours);

  tree_fixture_rm_rf (tree);
  tree_fixture_rm_rf (out);
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
  listing = tree_fixture_run (cmd);
  g_assert_cmpstr (listing, ==, "dest\noutside\n");
  g_free (listing);
  listing = tree_fixture_run (outside);
  g_assert_cmpstr (listing, ==, "sentinel\n");
  tree_fixture_rm_rf (h->dest);
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

    tree_fixture_add_member (tar, "../outside/sentinel", '0', NULL, "pwned");
    tree_fixture_end (tar);
    hostile_check (&h, tar, G_IO_ERROR_INVALID_DATA);
  }
  {
    g_autoptr(GByteArray) tar = g_byte_array_new ();

    tree_fixture_add_member (tar, "./a/../../outside/new", '0', NULL, "pwned");
    tree_fixture_end (tar);
    hostile_check (&h, tar, G_IO_ERROR_INVALID_DATA);
  }
  {
    g_autoptr(GByteArray) tar = g_byte_array_new ();

    tree_fixture_add_member (tar, abs_sentinel, '0', NULL, "pwned");
    tree_fixture_end (tar);
    hostile_check (&h, tar, G_IO_ERROR_INVALID_DATA);
  }
  /* A link the stream planted, then a file and a directory through it. */
  {
    g_autoptr(GByteArray) tar = g_byte_array_new ();

    tree_fixture_add_member (tar, "./l", '2', h.outside, NULL);
    tree_fixture_add_member (tar, "./l/sentinel", '0', NULL, "pwned");
    tree_fixture_end (tar);
    hostile_check (&h, tar, G_IO_ERROR_EXISTS);
  }
  {
    g_autoptr(GByteArray) tar = g_byte_array_new ();

    tree_fixture_add_member (tar, "./l", '2', h.outside, NULL);
    tree_fixture_add_member (tar, "./l/sub/", '5', NULL, NULL);
    tree_fixture_end (tar);
    hostile_check (&h, tar, G_IO_ERROR_EXISTS);
  }
  /* A link to a file outside, then a file of the same name: never
   * written through. */
  {
    g_autoptr(GByteArray) tar = g_byte_array_new ();

    tree_fixture_add_member (tar, "./f", '2', abs_sentinel, NULL);
    tree_fixture_add_member (tar, "./f", '0', NULL, "pwned");
    tree_fixture_end (tar);
    hostile_check (&h, tar, G_IO_ERROR_EXISTS);
  }
  /* Hard links only to the stream's own files. */
  {
    g_autoptr(GByteArray) tar = g_byte_array_new ();

    tree_fixture_add_member (tar, "./h", '1', abs_sentinel, NULL);
    tree_fixture_end (tar);
    hostile_check (&h, tar, G_IO_ERROR_INVALID_DATA);
  }
  {
    g_autoptr(GByteArray) tar = g_byte_array_new ();

    tree_fixture_add_member (tar, "./h", '1', "../outside/sentinel", NULL);
    tree_fixture_end (tar);
    hostile_check (&h, tar, G_IO_ERROR_INVALID_DATA);
  }
  /* Truncated: no end marker, or data cut short. */
  {
    g_autoptr(GByteArray) tar = g_byte_array_new ();

    tree_fixture_add_member (tar, "./f", '0', NULL, "data");
    hostile_check (&h, tar, G_IO_ERROR_INVALID_DATA);
  }
  {
    g_autoptr(GByteArray) tar = g_byte_array_new ();

    tree_fixture_add_member (tar, "./f", '0', NULL, "data");
    g_byte_array_set_size (tar, 514);
    hostile_check (&h, tar, G_IO_ERROR_INVALID_DATA);
  }
  /* A long name larger than any path. */
  {
    g_autoptr(GByteArray) tar = g_byte_array_new ();
    g_autofree char *huge = g_strnfill (QLEAN_TREE_TAR_MAX_NAME + 1, 'x');

    tree_fixture_add_member (tar, "././@LongLink", 'L', NULL, huge);
    tree_fixture_add_member (tar, "./f", '0', NULL, "data");
    tree_fixture_end (tar);
    hostile_check (&h, tar, G_IO_ERROR_INVALID_DATA);
  }
  /* A sparse file (GNU 'S'): a type a download does not take. */
  {
    g_autoptr(GByteArray) tar = g_byte_array_new ();

    tree_fixture_add_member (tar, "./s", 'S', NULL, NULL);
    tree_fixture_end (tar);
    hostile_check (&h, tar, G_IO_ERROR_INVALID_DATA);
  }

  tree_fixture_rm_rf (h.top);
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

  tree_fixture_add_member (tar, "./null", '3', NULL, NULL);
  tree_fixture_add_member (tar, "./disk", '4', NULL, NULL);
  tree_fixture_add_member (tar, "./fifo", '6', NULL, NULL);
  tree_fixture_add_member (tar, "./kept", '0', NULL, "kept");
  tree_fixture_end (tar);
  in = g_memory_input_stream_new_from_data (g_memdup2 (tar->data, tar->len), tar->len, g_free);

  g_assert_true (qlean_tree_tar_extract (in, dest, 07777, NULL, &error));
  g_assert_no_error (error);
  listing = tree_fixture_run (cmd);
  g_assert_cmpstr (listing, ==, "kept\n");
  tree_fixture_rm_rf (top);
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
