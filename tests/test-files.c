/* test-files.c: the std::fs calls, upload and download, on real QEMU
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>
#include <sys/stat.h>
#include <glib/gstdio.h>

#include <qlean/qlean.h>

static QleanMachine *machine;

static gboolean
get_machine (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *qemu = g_find_program_in_path ("qemu-system-x86_64");

  if (qemu == NULL)
    {
      g_test_skip ("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)");
      return FALSE;
    }

  if (machine == NULL)
    {
      g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();

      /* Room for the 256 MiB file in the guest's tmpfs (half of memory). */
      qlean_machine_config_set_memory_mib (config, 1024);
      machine = qlean_machine_new_with_name ("files", NULL, config);
      qlean_machine_spawn (machine, NULL, &error);
      g_assert_no_error (error);
    }

  return TRUE;
}

static void
sh (const char *command)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanExecResult) result = qlean_machine_exec (machine, command, NULL, &error);

  g_assert_no_error (error);
  if (!qlean_exec_result_success (result))
    g_error ("guest command failed: %s: %s", command,
             (char *) g_bytes_get_data (qlean_exec_result_get_stderr (result), NULL));
}

static GBytes *
bytes_from_string (const char *s)
{
  return g_bytes_new (s, strlen (s));
}

static void
test_write_read (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) contents = bytes_from_string ("hello\nworld\n");
  g_autoptr(GBytes) back = NULL;
  g_autofree char *text = NULL;
  guint8 binary[] = { 0xff, 0xfe, 0x00, 0x41 };
  g_autoptr(GBytes) bin = g_bytes_new (binary, sizeof binary);

  if (!get_machine ())
    return;

  sh ("rm -rf /t && mkdir /t");
  g_assert_true (qlean_machine_write (machine, "/t/a.txt", contents, NULL, &error));
  g_assert_no_error (error);
  back = qlean_machine_read (machine, "/t/a.txt", NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (back, contents));
  text = qlean_machine_read_to_string (machine, "/t/a.txt", NULL, &error);
  g_assert_cmpstr (text, ==, "hello\nworld\n");

  /* Truncates: a shorter write leaves nothing of the old contents. */
  g_clear_pointer (&contents, g_bytes_unref);
  contents = bytes_from_string ("x");
  g_assert_true (qlean_machine_write (machine, "/t/a.txt", contents, NULL, &error));
  g_clear_pointer (&text, g_free);
  text = qlean_machine_read_to_string (machine, "/t/a.txt", NULL, &error);
  g_assert_cmpstr (text, ==, "x");

  /* Not UTF-8: bytes yes, string no. */
  g_assert_true (qlean_machine_write (machine, "/t/bin", bin, NULL, &error));
  g_clear_pointer (&text, g_free);
  text = qlean_machine_read_to_string (machine, "/t/bin", NULL, &error);
  g_assert_null (text);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
  g_clear_error (&error);

  g_assert_null (qlean_machine_read (machine, "/t/missing", NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "/t/missing"));
  g_clear_error (&error);

  g_assert_false (qlean_machine_write (machine, "/t/no/such/dir/f", contents, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
}

static void
test_dirs (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) entries = NULL;
  g_autoptr(GBytes) one = bytes_from_string ("1");
  gboolean seen_file = FALSE, seen_dir = FALSE;

  if (!get_machine ())
    return;

  sh ("rm -rf /d");
  g_assert_true (qlean_machine_create_dir (machine, "/d", NULL, &error));
  g_assert_false (qlean_machine_create_dir (machine, "/d", NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS);
  g_clear_error (&error);
  g_assert_false (qlean_machine_create_dir (machine, "/d/x/y", NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_true (qlean_machine_create_dir_all (machine, "/d/x/y", NULL, &error));
  g_assert_true (qlean_machine_create_dir_all (machine, "/d/x/y", NULL, &error));
  g_assert_no_error (error);

  g_assert_true (qlean_machine_write (machine, "/d/f", one, NULL, &error));
  entries = qlean_machine_read_dir (machine, "/d", NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (entries->len, ==, 2);
  for (guint i = 0; i < entries->len; i++)
    {
      GFileInfo *info = g_ptr_array_index (entries, i);

      g_assert_cmpstr (g_file_info_get_name (info), !=, ".");
      g_assert_cmpstr (g_file_info_get_name (info), !=, "..");
      if (g_str_equal (g_file_info_get_name (info), "f"))
        {
          seen_file = TRUE;
          g_assert_cmpint (g_file_info_get_file_type (info), ==, G_FILE_TYPE_REGULAR);
          g_assert_cmpint (g_file_info_get_size (info), ==, 1);
        }
      if (g_str_equal (g_file_info_get_name (info), "x"))
        {
          seen_dir = TRUE;
          g_assert_cmpint (g_file_info_get_file_type (info), ==, G_FILE_TYPE_DIRECTORY);
        }
    }
  g_assert_true (seen_file && seen_dir);

  g_assert_false (qlean_machine_remove_file (machine, "/d/x", NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_IS_DIRECTORY);
  g_clear_error (&error);
  g_assert_false (qlean_machine_remove_dir (machine, "/d/x", NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_EMPTY);
  g_clear_error (&error);
  g_assert_false (qlean_machine_read_dir (machine, "/d/f", NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_DIRECTORY);
  g_clear_error (&error);

  g_assert_true (qlean_machine_remove_file (machine, "/d/f", NULL, &error));
  g_assert_false (qlean_machine_exists (machine, "/d/f", NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_machine_remove_dir_all (machine, "/d", NULL, &error));
  g_assert_false (qlean_machine_exists (machine, "/d", NULL, &error));
  g_assert_no_error (error);
  g_assert_false (qlean_machine_remove_dir_all (machine, "/d", NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
}

static void
test_links_metadata_copy_rename (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) data = bytes_from_string ("0123456789");
  g_autoptr(GFileInfo) info = NULL;
  g_autoptr(GFileInfo) linfo = NULL;
  g_autofree char *target = NULL;
  g_autoptr(GBytes) back = NULL;
  gint64 copied;

  if (!get_machine ())
    return;

  sh ("rm -rf /m && mkdir /m");
  g_assert_true (qlean_machine_write (machine, "/m/f", data, NULL, &error));
  g_assert_true (qlean_machine_set_permissions (machine, "/m/f", 0750, NULL, &error));
  g_assert_no_error (error);

  g_assert_true (qlean_machine_symlink (machine, "f", "/m/l", NULL, &error));
  target = qlean_machine_read_link (machine, "/m/l", NULL, &error);
  g_assert_cmpstr (target, ==, "f");
  g_assert_null (qlean_machine_read_link (machine, "/m/f", NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  info = qlean_machine_metadata (machine, "/m/l", NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (g_file_info_get_file_type (info), ==, G_FILE_TYPE_REGULAR);
  g_assert_true (g_file_info_get_is_symlink (info));
  g_assert_cmpstr (g_file_info_get_symlink_target (info), ==, "f");
  g_assert_cmpint (g_file_info_get_size (info), ==, 10);
  g_assert_cmpuint (g_file_info_get_attribute_uint32 (info, G_FILE_ATTRIBUTE_UNIX_MODE) & 07777, ==, 0750);
  g_assert_cmpuint (g_file_info_get_attribute_uint32 (info, G_FILE_ATTRIBUTE_UNIX_UID), ==, 0);
  g_assert_cmpuint (g_file_info_get_attribute_uint32 (info, G_FILE_ATTRIBUTE_UNIX_NLINK), ==, 1);
  g_assert_cmpuint (g_file_info_get_attribute_uint64 (info, G_FILE_ATTRIBUTE_UNIX_INODE), >, 0);
  g_assert_cmpuint (g_file_info_get_attribute_uint64 (info, G_FILE_ATTRIBUTE_TIME_MODIFIED), >, 0);

  linfo = qlean_machine_symlink_metadata (machine, "/m/l", NULL, &error);
  g_assert_cmpint (g_file_info_get_file_type (linfo), ==, G_FILE_TYPE_SYMBOLIC_LINK);
  g_assert_true (g_file_info_get_is_symlink (linfo));

  g_assert_true (qlean_machine_hard_link (machine, "/m/f", "/m/h", NULL, &error));
  g_clear_object (&info);
  info = qlean_machine_metadata (machine, "/m/f", NULL, &error);
  g_assert_cmpuint (g_file_info_get_attribute_uint32 (info, G_FILE_ATTRIBUTE_UNIX_NLINK), ==, 2);
  g_assert_false (qlean_machine_hard_link (machine, "/m/f", "/m/h", NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS);
  g_clear_error (&error);

  copied = qlean_machine_copy (machine, "/m/f", "/m/c", NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (copied, ==, 10);
  g_clear_object (&info);
  info = qlean_machine_metadata (machine, "/m/c", NULL, &error);
  g_assert_cmpuint (g_file_info_get_attribute_uint32 (info, G_FILE_ATTRIBUTE_UNIX_MODE) & 07777, ==, 0750);

  /* rename replaces an existing file, like rename(2). */
  g_assert_true (qlean_machine_rename (machine, "/m/c", "/m/f", NULL, &error));
  g_assert_false (qlean_machine_exists (machine, "/m/c", NULL, &error));
  back = qlean_machine_read (machine, "/m/f", NULL, &error);
  g_assert_true (g_bytes_equal (back, data));
  g_assert_false (qlean_machine_rename (machine, "/m/none", "/m/x", NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_clear_error (&error);

  g_assert_cmpint (qlean_machine_copy (machine, "/m", "/m2", NULL, &error), ==, -1);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_IS_DIRECTORY);
}

/* Names a shell would mangle: they travel as bytes. */
static void
test_awkward_names (void)
{
  const char *names[] = { "/w/with space", "/w/quote\"'", "/w/new\nline", "/w/-leading",
                          "/w/\xff\xfe-not-utf8", "/w/$(touch pwned)" };
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) entries = NULL;

  if (!get_machine ())
    return;

  sh ("rm -rf /w && mkdir /w");
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autoptr(GBytes) contents = bytes_from_string (names[i]);
      g_autoptr(GBytes) back = NULL;

      g_assert_true (qlean_machine_write (machine, names[i], contents, NULL, &error));
      g_assert_no_error (error);
      back = qlean_machine_read (machine, names[i], NULL, &error);
      g_assert_no_error (error);
      g_assert_true (g_bytes_equal (back, contents));
      g_assert_true (qlean_machine_exists (machine, names[i], NULL, &error));
    }

  entries = qlean_machine_read_dir (machine, "/w", NULL, &error);
  g_assert_cmpuint (entries->len, ==, G_N_ELEMENTS (names));
  g_assert_false (qlean_machine_exists (machine, "/pwned", NULL, &error));
  g_assert_false (qlean_machine_exists (machine, "/w/pwned", NULL, &error));
}

static char *
make_tree (void)
{
  g_autoptr(GError) error = NULL;
  char *dir = g_dir_make_tmp ("qlean-tree-XXXXXX", &error);
  g_autofree char *sub = g_build_filename (dir, "sub", NULL);
  g_autofree char *empty = g_build_filename (dir, "empty", NULL);
  g_autofree char *file = g_build_filename (dir, "sub", "run.sh", NULL);
  g_autofree char *link = g_build_filename (dir, "link", NULL);

  g_assert_no_error (error);
  g_assert_cmpint (g_mkdir (sub, 0755), ==, 0);
  g_assert_cmpint (g_mkdir (empty, 0700), ==, 0);
  g_assert_true (g_file_set_contents (file, "#!/bin/sh\necho tree\n", -1, &error));
  g_assert_cmpint (g_chmod (file, 0750), ==, 0);
  g_assert_cmpint (symlink ("sub/run.sh", link), ==, 0);

  return dir;
}

static void
assert_same_tree (const char *a,
                  const char *b)
{
  g_autofree char *cmd = g_strdup_printf ("diff -r --no-dereference %s %s", a, b);
  g_autofree char *fa = g_build_filename (a, "sub", "run.sh", NULL);
  g_autofree char *fb = g_build_filename (b, "sub", "run.sh", NULL);
  g_autofree char *la = g_build_filename (b, "link", NULL);
  g_autofree char *ea = g_build_filename (b, "empty", NULL);
  g_autofree char *target = NULL;
  GStatBuf sa, sb;
  int status;

  g_assert_true (g_spawn_command_line_sync (cmd, NULL, NULL, &status, NULL));
  g_assert_cmpint (status, ==, 0);
  g_assert_cmpint (g_stat (fa, &sa), ==, 0);
  g_assert_cmpint (g_stat (fb, &sb), ==, 0);
  g_assert_cmpint (sb.st_mode & 07777, ==, 0750);
  g_assert_cmpint (sb.st_mtime, ==, sa.st_mtime);
  target = g_file_read_link (la, NULL);
  g_assert_cmpstr (target, ==, "sub/run.sh");
  g_assert_true (g_file_test (ea, G_FILE_TEST_IS_DIR));
}

static void
test_tree_round_trip (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *tree = NULL;
  g_autofree char *out = NULL;
  g_autofree char *back = NULL;
  g_autoptr(GFile) src = NULL;
  g_autoptr(GFile) dst = NULL;
  g_autoptr(GFileInfo) info = NULL;

  if (!get_machine ())
    return;

  tree = make_tree ();
  src = g_file_new_for_path (tree);
  sh ("rm -rf /up && mkdir /up");

  /* Onto an existing directory: inside it, under its own name. */
  g_assert_true (qlean_machine_upload (machine, src, "/up", NULL, &error));
  g_assert_no_error (error);
  {
    g_autofree char *base = g_path_get_basename (tree);
    g_autofree char *guest_file = g_strdup_printf ("/up/%s/sub/run.sh", base);
    g_autoptr(QleanExecResult) result = NULL;
    g_autofree char *cmd = g_strdup_printf ("%s", guest_file);

    info = qlean_machine_metadata (machine, guest_file, NULL, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (g_file_info_get_attribute_uint32 (info, G_FILE_ATTRIBUTE_UNIX_MODE) & 07777, ==, 0750);
    result = qlean_machine_exec (machine, cmd, NULL, &error);
    g_assert_no_error (error);
    g_assert_cmpstr (g_bytes_get_data (qlean_exec_result_get_stdout (result), NULL), ==, "tree\n");

    /* And back: to a directory that does not exist, which becomes it. */
    out = g_dir_make_tmp ("qlean-out-XXXXXX", &error);
    back = g_build_filename (out, "copy", NULL);
    dst = g_file_new_for_path (back);
    {
      g_autofree char *guest_dir = g_strdup_printf ("/up/%s", base);

      g_assert_true (qlean_machine_download (machine, guest_dir, dst, NULL, &error));
      g_assert_no_error (error);
    }
  }

  assert_same_tree (tree, back);

  {
    g_autofree char *cmd = g_strdup_printf ("rm -rf %s %s", tree, out);

    g_spawn_command_line_sync (cmd, NULL, NULL, NULL, NULL);
  }
}

static void
test_big_file (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *src = NULL;
  g_autofree char *back = NULL;
  g_autofree char *sum_a = NULL;
  g_autofree char *sum_b = NULL;
  g_autoptr(GFile) src_file = NULL;
  g_autoptr(GFile) back_file = NULL;
  gsize size = 256 * 1024 * 1024;
  gint64 t0, t1, t2;

  if (!get_machine ())
    return;

  dir = g_dir_make_tmp ("qlean-big-XXXXXX", &error);
  src = g_build_filename (dir, "big", NULL);
  back = g_build_filename (dir, "big.back", NULL);
  {
    g_autofree char *cmd = g_strdup_printf ("head -c %" G_GSIZE_FORMAT " /dev/urandom", size);
    g_autofree char *data = NULL;
    gsize len;

    g_assert_true (g_spawn_command_line_sync (cmd, &data, NULL, NULL, &error));
    len = size;
    g_assert_true (g_file_set_contents (src, data, len, &error));
  }

  src_file = g_file_new_for_path (src);
  back_file = g_file_new_for_path (back);
  sh ("rm -f /tmp/big");
  t0 = g_get_monotonic_time ();
  g_assert_true (qlean_machine_upload (machine, src_file, "/tmp/big", NULL, &error));
  g_assert_no_error (error);
  t1 = g_get_monotonic_time ();
  g_assert_true (qlean_machine_download (machine, "/tmp/big", back_file, NULL, &error));
  g_assert_no_error (error);
  t2 = g_get_monotonic_time ();
  g_test_message ("%" G_GSIZE_FORMAT " MiB: upload %.1f MB/s, download %.1f MB/s", size >> 20,
                  size / ((t1 - t0) / 1e6) / 1e6, size / ((t2 - t1) / 1e6) / 1e6);

  {
    g_autofree char *cmd = g_strdup_printf ("sha256sum %s %s", src, back);
    g_autofree char *out = NULL;
    g_auto(GStrv) lines = NULL;

    g_assert_true (g_spawn_command_line_sync (cmd, &out, NULL, NULL, &error));
    lines = g_strsplit (out, "\n", -1);
    sum_a = g_strndup (lines[0], 64);
    sum_b = g_strndup (lines[1], 64);
    g_assert_cmpstr (sum_a, ==, sum_b);
  }
  sh ("rm -f /tmp/big");

  {
    g_autofree char *cmd = g_strdup_printf ("rm -rf %s", dir);

    g_spawn_command_line_sync (cmd, NULL, NULL, NULL, NULL);
  }
}

static void
test_no_space (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) big = NULL;
  g_autoptr(GPtrArray) entries = NULL;
  gpointer data = g_malloc0 (2 * 1024 * 1024);

  if (!get_machine ())
    {
      g_free (data);
      return;
    }

  sh ("mkdir -p /small && (umount /small 2>/dev/null; mount -t tmpfs -o size=1m tmpfs /small)");
  big = g_bytes_new_take (data, 2 * 1024 * 1024);
  g_assert_false (qlean_machine_write (machine, "/small/f", big, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE);
  /* No file claims success, not even a partial one. */
  entries = qlean_machine_read_dir (machine, "/small", NULL, NULL);
  g_assert_cmpuint (entries->len, ==, 0);
  sh ("umount /small");
}

static void
test_missing_source (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GFile) missing = g_file_new_for_path ("/nonexistent/qlean-source");

  if (!get_machine ())
    return;

  sh ("rm -rf /never");
  g_assert_false (qlean_machine_upload (machine, missing, "/never", NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "/nonexistent/qlean-source"));
  g_clear_error (&error);
  g_assert_false (qlean_machine_exists (machine, "/never", NULL, &error));
  g_assert_no_error (error);
}

int
main (int    argc,
      char **argv)
{
  int ret;

  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/files/write-read", test_write_read);
  g_test_add_func ("/files/dirs", test_dirs);
  g_test_add_func ("/files/links-metadata-copy-rename", test_links_metadata_copy_rename);
  g_test_add_func ("/files/awkward-names", test_awkward_names);
  g_test_add_func ("/files/tree-round-trip", test_tree_round_trip);
  g_test_add_func ("/files/big-file", test_big_file);
  g_test_add_func ("/files/no-space", test_no_space);
  g_test_add_func ("/files/missing-source", test_missing_source);

  ret = g_test_run ();
  g_clear_object (&machine);
  return ret;
}
