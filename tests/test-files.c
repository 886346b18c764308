/* test-files.c: the std::fs calls, upload and download, on real QEMU
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>
#include <sys/stat.h>
#include <glib/gstdio.h>

#include <qlean/qlean.h>
#include "test-common.h"
#include "test-files.h"

static QleanMachine *machine;

static gboolean
get_machine (void)
{
  g_autoptr(GError) error = NULL;

  if (!test_have_qemu ())
    return FALSE;

  if (machine == NULL)
    {
      g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();

      /* Room for the 256 MiB file in the guest's tmpfs (half of memory). */
      qlean_machine_config_set_memory_mib (config, 1024);
      /* tests/meson.build runs these tests once more over the agent. */
      /* Without qlean-guest in the guest at all: the agent needs none. */
      if (g_strcmp0 (g_getenv ("QLEAN_TEST_TRANSPORT"), "agent") == 0)
        {
          qlean_machine_config_set_guest_transport (config, QLEAN_GUEST_TRANSPORT_AGENT);
          qlean_machine_config_set_cmdline (config, "qlean.noguest=1");
        }
      machine = qlean_machine_new_with_name ("files", NULL, config);
      qlean_machine_spawn (machine, NULL, &error);
      g_assert_no_error (error);
    }

  return TRUE;
}

QleanMachine *
test_files_machine (void)
{
  return get_machine () ? machine : NULL;
}

gboolean
test_files_on_agent (void)
{
  return g_strcmp0 (g_getenv ("QLEAN_TEST_TRANSPORT"), "agent") == 0;
}

/* Whether this run is over the agent, where the test cannot work (for
 * @reason): then it is skipped, saying why. */
static gboolean
skip_on_agent (const char *reason)
{
  if (!test_files_on_agent ())
    return FALSE;

  g_test_skip (reason);
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

      /* The agent's JSON carries UTF-8 only, and says so. */
      if (qlean_machine_get_guest_transport (machine) == QLEAN_GUEST_TRANSPORT_AGENT &&
          !g_utf8_validate (names[i], -1, NULL))
        {
          g_assert_false (qlean_machine_write (machine, names[i], contents, NULL, &error));
          g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_FILENAME);
          g_clear_error (&error);
          sh ("printf '%s' \"$(printf '/w/\\377\\376-not-utf8')\" > \"$(printf '/w/\\377\\376-not-utf8')\"");
          continue;
        }

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

/* Peak resident memory of this process, in KiB. */
static guint64
vm_hwm_kib (void)
{
  g_autofree char *status = NULL;
  const char *line;

  g_assert_true (g_file_get_contents ("/proc/self/status", &status, NULL, NULL));
  line = strstr (status, "VmHWM:");
  g_assert_nonnull (line);
  return g_ascii_strtoull (line + strlen ("VmHWM:"), NULL, 10);
}

/* Starts VmHWM afresh from the current resident size (Linux >= 4.0);
 * where that is refused, the old peak stays, which only makes the
 * measure stricter. */
static void
reset_vm_hwm (void)
{
  FILE *f = fopen ("/proc/self/clear_refs", "w");

  if (f == NULL)
    return;
  fputs ("5", f);
  fclose (f);
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
  guint64 hwm_before, hwm_after;

  if (skip_on_agent ("256 MiB through the agent take minutes (guest-file-write runs at about 2 MiB/s)") || !get_machine ())
    return;

  dir = g_dir_make_tmp ("qlean-big-XXXXXX", &error);
  src = g_build_filename (dir, "big", NULL);
  back = g_build_filename (dir, "big.back", NULL);
  {
    /* Made by head itself: the file never passes through this process,
     * whose peak memory is measured below. */
    g_autofree char *script = g_strdup_printf ("head -c %" G_GSIZE_FORMAT " /dev/urandom > '%s'",
                                               size, src);
    const char *argv[] = { "/bin/sh", "-c", script, NULL };
    int status;

    g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, NULL,
                                 NULL, &status, &error));
    g_assert_no_error (error);
    g_assert_true (g_spawn_check_wait_status (status, NULL));
  }

  src_file = g_file_new_for_path (src);
  back_file = g_file_new_for_path (back);
  sh ("rm -f /tmp/big");
  reset_vm_hwm ();
  hwm_before = vm_hwm_kib ();
  t0 = g_get_monotonic_time ();
  g_assert_true (qlean_machine_upload (machine, src_file, "/tmp/big", NULL, &error));
  g_assert_no_error (error);
  t1 = g_get_monotonic_time ();
  g_assert_true (qlean_machine_download (machine, "/tmp/big", back_file, NULL, &error));
  g_assert_no_error (error);
  t2 = g_get_monotonic_time ();
  hwm_after = vm_hwm_kib ();
  g_test_message ("%" G_GSIZE_FORMAT " MiB: upload %.1f MB/s, download %.1f MB/s", size >> 20,
                  size / ((t1 - t0) / 1e6) / 1e6, size / ((t2 - t1) / 1e6) / 1e6);
  /* Streamed in chunks: the file's size never shows in host memory. */
  g_test_message ("peak resident memory: %" G_GUINT64_FORMAT " KiB before, %" G_GUINT64_FORMAT
                  " KiB after", hwm_before, hwm_after);
#ifndef __SANITIZE_ADDRESS__
  g_assert_cmpuint (hwm_after, <=, hwm_before + 64 * 1024);
#else
  /* ASan keeps freed memory in quarantine (256 MiB by default): the
   * peak says nothing about our buffers there. */
#endif

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

static guint
local_mode (const char *path)
{
  GStatBuf st;

  g_assert_cmpint (g_lstat (path, &st), ==, 0);
  return st.st_mode & 07777;
}

/* A guest decides the modes it reports, and downloads become the host
 * user's files: setuid, setgid, sticky and group/world write bits are
 * dropped unless asked for. */
static void
test_download_modes (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *safe = NULL;
  g_autofree char *exact = NULL;
  g_autofree char *single = NULL;
  g_autoptr(GFile) safe_file = NULL;
  g_autoptr(GFile) exact_file = NULL;
  g_autoptr(GFile) single_file = NULL;

  if (!get_machine ())
    return;

  sh ("rm -rf /sm && mkdir -p /sm/tree/ww && printf '#!/bin/sh\\nid\\n' > /sm/tree/suid && "
      "chmod 6777 /sm/tree/suid && chmod 1777 /sm/tree/ww && chmod 3777 /sm/tree");
  dir = g_dir_make_tmp ("qlean-modes-XXXXXX", &error);
  g_assert_no_error (error);
  safe = g_build_filename (dir, "safe", NULL);
  exact = g_build_filename (dir, "exact", NULL);
  single = g_build_filename (dir, "single", NULL);
  safe_file = g_file_new_for_path (safe);
  exact_file = g_file_new_for_path (exact);
  single_file = g_file_new_for_path (single);

  g_assert_true (qlean_machine_download (machine, "/sm/tree", safe_file, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_machine_download (machine, "/sm/tree/suid", single_file, NULL, &error));
  g_assert_no_error (error);
  {
    g_autofree char *suid = g_build_filename (safe, "suid", NULL);
    g_autofree char *ww = g_build_filename (safe, "ww", NULL);

    g_assert_cmpuint (local_mode (safe), ==, 0755);
    g_assert_cmpuint (local_mode (suid), ==, 0755);
    g_assert_cmpuint (local_mode (ww), ==, 0755);
    g_assert_cmpuint (local_mode (single), ==, 0755);
  }

  /* Asked for: the exact modes. */
  g_assert_true (qlean_machine_download_full (machine, "/sm/tree", exact_file,
                                              QLEAN_TRANSFER_FLAGS_PRESERVE_MODES, NULL, &error));
  g_assert_no_error (error);
  {
    g_autofree char *suid = g_build_filename (exact, "suid", NULL);
    g_autofree char *ww = g_build_filename (exact, "ww", NULL);

    g_assert_cmpuint (local_mode (exact), ==, 03777);
    g_assert_cmpuint (local_mode (suid), ==, 06777);
    g_assert_cmpuint (local_mode (ww), ==, 01777);
  }

  {
    g_autofree char *cmd = g_strdup_printf ("rm -rf %s", dir);

    g_spawn_command_line_sync (cmd, NULL, NULL, NULL, NULL);
  }
}

static int
compare_names (gconstpointer a,
               gconstpointer b)
{
  return strcmp (*(const char * const *) a, *(const char * const *) b);
}

/* The names of a directory's entries, sorted, joined with spaces. */
static char *
local_listing (const char *path)
{
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  g_autoptr(GPtrArray) names = g_ptr_array_new ();
  const char *name;

  g_assert_nonnull (dir);
  while ((name = g_dir_read_name (dir)) != NULL)
    g_ptr_array_add (names, (gpointer) name);
  g_ptr_array_sort (names, compare_names);
  g_ptr_array_add (names, NULL);
  return g_strjoinv (" ", (char **) names->pdata);
}

/* "." and ".." at the end of a guest path: the download takes the name
 * of the directory they mean, inside the destination, never beside it. */
static void
test_download_dot_dot (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *dest = NULL;
  g_autofree char *listing = NULL;
  g_autoptr(GFile) dest_file = NULL;

  if (!get_machine ())
    return;

  sh ("rm -rf /dd && mkdir -p /dd/x/y && echo f > /dd/x/f");
  dir = g_dir_make_tmp ("qlean-dotdot-XXXXXX", &error);
  g_assert_no_error (error);
  dest = g_build_filename (dir, "dest", NULL);
  g_assert_cmpint (g_mkdir (dest, 0755), ==, 0);
  dest_file = g_file_new_for_path (dest);

  g_assert_true (qlean_machine_download (machine, "/dd/x/y/..", dest_file, NULL, &error));
  g_assert_no_error (error);
  listing = local_listing (dir);
  g_assert_cmpstr (listing, ==, "dest");
  g_clear_pointer (&listing, g_free);
  listing = local_listing (dest);
  g_assert_cmpstr (listing, ==, "x");
  g_clear_pointer (&listing, g_free);
  {
    g_autofree char *x = g_build_filename (dest, "x", NULL);

    listing = local_listing (x);
    g_assert_cmpstr (listing, ==, "f y");
    g_clear_pointer (&listing, g_free);
  }

  /* "." means the directory itself, as ".." its parent. */
  g_assert_true (qlean_machine_download (machine, "/dd/x/y/.", dest_file, NULL, &error));
  g_assert_no_error (error);
  listing = local_listing (dest);
  g_assert_cmpstr (listing, ==, "x y");
  g_clear_pointer (&listing, g_free);

  /* "/" has no name to take inside a directory. */
  g_assert_false (qlean_machine_download (machine, "/..", dest_file, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_FILENAME);
  g_clear_error (&error);
  listing = local_listing (dir);
  g_assert_cmpstr (listing, ==, "dest");

  {
    g_autofree char *cmd = g_strdup_printf ("rm -rf %s", dir);

    g_spawn_command_line_sync (cmd, NULL, NULL, NULL, NULL);
  }
}

static void
async_done_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

/* Waits at most 20 s for an async call: one that never ends fails the
 * test instead of hanging it. */
static GAsyncResult *
wait_async (GAsyncResult **result)
{
  gint64 deadline = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;

  while (*result == NULL && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, FALSE) || (g_usleep (10 * 1000), TRUE);
  g_assert_nonnull (*result);
  return *result;
}

/* Runs @script through the guest agent alone, to its end: for what
 * qlean-guest cannot do to itself. */
static void
agent_sh (const char *script)
{
  g_autoptr(QleanQgaClient) qga = qlean_machine_dup_qga (machine);
  const char *args[] = { "-c", script, NULL };
  g_autoptr(GError) error = NULL;
  gint64 pid;

  pid = qlean_qga_client_exec (qga, "/bin/sh", args, NULL, NULL, FALSE, NULL, &error);
  g_assert_no_error (error);
  for (;;)
    {
      g_autoptr(QleanQgaExecStatus) status = qlean_qga_client_exec_status (qga, pid, NULL, &error);

      g_assert_no_error (error);
      if (status->exited)
        {
          g_assert_cmpint (status->exit_code, ==, 0);
          return;
        }
      g_usleep (10000);
    }
}

/* copy and remove_dir_all run in qlean-guest in one go: it says it is
 * still at work meanwhile, so a long one outlives the agent client's
 * timeout, and one whose qlean-guest stopped ends after that timeout. */
static void
test_copy_bounded (void)
{
  g_autoptr(QleanQgaClient) qga = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GAsyncResult) copy_result = NULL;
  g_autoptr(GAsyncResult) remove_result = NULL;
  g_autofree char *pid = NULL;
  g_autofree char *stop = NULL;
  g_autofree char *cont = NULL;
  guint saved_timeout;
  gint64 start, copied;
  double copy_ms;

  if (skip_on_agent ("it stops qlean-guest to bound its copies") || !get_machine ())
    return;

  qga = qlean_machine_dup_qga (machine);
  saved_timeout = qlean_qga_client_get_timeout (qga);
  sh ("rm -rf /tmp/cb* && dd if=/dev/zero of=/tmp/cb bs=1M count=240 2>/dev/null && mkdir -p /tmp/cbdir/a/b");
  {
    g_autoptr(QleanExecResult) result = qlean_machine_exec (machine, "echo $PPID", NULL, &error);
    const char *out;
    gsize len;

    g_assert_no_error (error);
    out = g_bytes_get_data (qlean_exec_result_get_stdout (result), &len);
    pid = g_strchomp (g_strndup (out, len));
  }

  qlean_qga_client_set_timeout (qga, 1000);
  start = g_get_monotonic_time ();
  copied = qlean_machine_copy (machine, "/tmp/cb", "/tmp/cb2", NULL, &error);
  copy_ms = (g_get_monotonic_time () - start) / 1000.0;
  g_test_message ("copied 240 MiB in %.0f ms with a 1000 ms timeout", copy_ms);
  g_assert_no_error (error);
  g_assert_cmpint (copied, ==, 240 * 1024 * 1024);

  /* qlean-guest stopped (through the agent): both calls time out. */
  stop = g_strdup_printf ("kill -STOP %s", pid);
  agent_sh (stop);
  start = g_get_monotonic_time ();
  qlean_machine_copy_async (machine, "/tmp/cb", "/tmp/cb3", NULL, async_done_cb, &copy_result);
  qlean_machine_remove_dir_all_async (machine, "/tmp/cbdir", NULL, async_done_cb, &remove_result);
  g_assert_cmpint (qlean_machine_copy_finish (machine, wait_async (&copy_result), &error), ==, -1);
  g_test_message ("copy with qlean-guest stopped: %s after %.0f ms", error->message,
                  (g_get_monotonic_time () - start) / 1000.0);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_clear_error (&error);
  g_assert_false (qlean_machine_remove_dir_all_finish (machine, wait_async (&remove_result), &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_clear_error (&error);

  cont = g_strdup_printf ("kill -CONT %s", pid);
  agent_sh (cont);
  qlean_qga_client_set_timeout (qga, saved_timeout);
  sh ("rm -rf /tmp/cb*");
}

static char *
guest_sha256 (const char *path)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *cmd = g_strdup_printf ("sha256sum '%s'", path);
  g_autoptr(QleanExecResult) result = qlean_machine_exec (machine, cmd, NULL, &error);

  g_assert_no_error (error);
  g_assert_true (qlean_exec_result_success (result));
  return g_strndup (g_bytes_get_data (qlean_exec_result_get_stdout (result), NULL), 64);
}

static char *
host_sha256 (const char *path)
{
  g_autofree char *contents = NULL;
  gsize len;

  g_assert_true (g_file_get_contents (path, &contents, &len, NULL));
  return g_compute_checksum_for_data (G_CHECKSUM_SHA256, (const guchar *) contents, len);
}

/* Median time of 10 write + read round trips of 4 KiB, in ms. */
static double
small_round_trip_ms (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) data = g_bytes_new_take (g_malloc0 (4096), 4096);
  double times[10];

  for (guint i = 0; i < G_N_ELEMENTS (times); i++)
    {
      gint64 start = g_get_monotonic_time ();
      g_autoptr(GBytes) back = NULL;

      g_assert_true (qlean_machine_write (machine, "/tmp/small", data, NULL, &error));
      g_assert_no_error (error);
      back = qlean_machine_read (machine, "/tmp/small", NULL, &error);
      g_assert_no_error (error);
      g_assert_true (g_bytes_equal (back, data));
      times[i] = (g_get_monotonic_time () - start) / 1000.0;
    }

  for (guint i = 1; i < G_N_ELEMENTS (times); i++)
    for (guint j = i; j > 0 && times[j - 1] > times[j]; j--)
      {
        double t = times[j];

        times[j] = times[j - 1];
        times[j - 1] = t;
      }
  return times[G_N_ELEMENTS (times) / 2];
}

/* With qlean-guest gone (killed, with the loop that restarts it, through
 * the agent's own guest-exec), single files move through the agent's
 * guest-file-* calls; directories and the other calls say they need
 * qlean-guest. Last: the machine is dropped afterwards. */
static void
test_agent_fallback (void)
{
  const char *kill_args[] = {
    "-c", "for p in $(pidof qlean-guest); do kill -9 $(cut -d' ' -f4 /proc/$p/stat) $p; done", NULL
  };
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanQgaClient) qga = NULL;
  g_autoptr(GBytes) data = NULL;
  g_autoptr(GBytes) back = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *src = NULL;
  g_autofree char *out = NULL;
  g_autofree char *sum = NULL;
  g_autofree char *guest_sum = NULL;
  g_autofree char *host_sum = NULL;
  g_autofree char *base = NULL;
  g_autofree char *inside = NULL;
  g_autoptr(GFile) src_file = NULL;
  g_autoptr(GFile) out_file = NULL;
  g_autoptr(GFile) dir_file = NULL;
  gsize size = 3 * 1024 * 1024 + 12345;
  guint8 *random;
  double port_ms, agent_ms;
  gint64 t0, t1, t2, t3;
  GStatBuf st;
  gboolean gone = FALSE;

  if (skip_on_agent ("it kills qlean-guest under the auto transport, and starts its own agent machine in the other run") || !get_machine ())
    return;

  port_ms = small_round_trip_ms ();

  /* The transport is decided once: a machine that chose qlean-guest
   * fails its calls, naming it, when qlean-guest dies; it never
   * switches to the agent behind the caller's back. Once qlean-guest is
   * gone, its HELLO is retried for the boot timeout: keep that short. */
  g_assert_cmpint (qlean_machine_get_guest_transport (machine), ==, QLEAN_GUEST_TRANSPORT_QLEAN_GUEST);
  qlean_machine_set_boot_timeout (machine, 1000);
  qga = qlean_machine_dup_qga (machine);
  qlean_qga_client_exec (qga, "/bin/sh", kill_args, NULL, NULL, FALSE, NULL, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < 100 && !gone; i++)
    {
      g_autoptr(GBytes) small = qlean_machine_read (machine, "/etc/hostname", NULL, &error);

      gone = small == NULL;
      if (!gone)
        g_usleep (100 * 1000);
    }
  g_assert_true (gone);
  g_assert_nonnull (strstr (error->message, "qlean-guest"));
  g_clear_error (&error);
  {
    g_autoptr(QleanExecResult) result = qlean_machine_exec (machine, "true", NULL, &error);

    g_assert_null (result);
    g_assert_nonnull (strstr (error->message, "qlean-guest"));
    g_clear_error (&error);
  }
  g_assert_cmpint (qlean_machine_get_guest_transport (machine), ==, QLEAN_GUEST_TRANSPORT_QLEAN_GUEST);
  qlean_machine_shutdown (machine, NULL, NULL);
  g_clear_object (&machine);
  g_clear_object (&qga);

  /* A machine whose config asks for the agent never uses qlean-guest:
   * killing it changes nothing. */
  {
    g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
    QleanGuestTransport transport;

    qlean_machine_config_set_guest_transport (config, QLEAN_GUEST_TRANSPORT_AGENT);
    machine = qlean_machine_new_with_name ("files-agent", NULL, config);
    qlean_machine_spawn (machine, NULL, &error);
    g_assert_no_error (error);
    g_object_get (machine, "guest-transport", &transport, NULL);
    g_assert_cmpint (transport, ==, QLEAN_GUEST_TRANSPORT_AGENT);
  }
  qga = qlean_machine_dup_qga (machine);
  qlean_qga_client_exec (qga, "/bin/sh", kill_args, NULL, NULL, FALSE, NULL, &error);
  g_assert_no_error (error);
  gone = FALSE;
  for (guint i = 0; i < 100 && !gone; i++)
    {
      g_autoptr(QleanExecResult) result = qlean_machine_exec (machine, "pidof qlean-guest", NULL, NULL);

      gone = result != NULL && qlean_exec_result_get_exit_status (result) == 1;
      if (!gone)
        g_usleep (100 * 1000);
    }
  g_assert_true (gone);

  agent_ms = small_round_trip_ms ();
  g_test_message ("4 KiB write + read: %.1f ms through qlean-guest, %.1f ms through the agent",
                  port_ms, agent_ms);

  /* write and read */
  sh ("rm -rf /fb && mkdir /fb");
  random = g_malloc (size);
  for (gsize i = 0; i < size; i++)
    random[i] = g_random_int_range (0, 256);
  data = g_bytes_new_take (random, size);
  sum = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, data);
  g_assert_true (qlean_machine_write (machine, "/fb/w", data, NULL, &error));
  g_assert_no_error (error);
  guest_sum = guest_sha256 ("/fb/w");
  g_assert_cmpstr (guest_sum, ==, sum);
  back = qlean_machine_read (machine, "/fb/w", NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (back, data));

  /* upload and download, keeping the mode */
  dir = g_dir_make_tmp ("qlean-fallback-XXXXXX", &error);
  src = g_build_filename (dir, "source.bin", NULL);
  out = g_build_filename (dir, "down", NULL);
  g_assert_true (g_file_set_contents (src, g_bytes_get_data (data, NULL), size, &error));
  g_assert_cmpint (g_chmod (src, 0750), ==, 0);
  src_file = g_file_new_for_path (src);
  out_file = g_file_new_for_path (out);
  t0 = g_get_monotonic_time ();
  g_assert_true (qlean_machine_upload (machine, src_file, "/fb/up", NULL, &error));
  g_assert_no_error (error);
  t1 = g_get_monotonic_time ();
  g_clear_pointer (&guest_sum, g_free);
  guest_sum = guest_sha256 ("/fb/up");
  g_assert_cmpstr (guest_sum, ==, sum);
  sh ("test \"$(stat -c %a /fb/up)\" = 750");
  /* Onto a directory: inside it, under its own name. */
  g_assert_true (qlean_machine_upload (machine, src_file, "/fb", NULL, &error));
  g_assert_no_error (error);
  t2 = g_get_monotonic_time ();
  g_assert_true (qlean_machine_download (machine, "/fb/up", out_file, NULL, &error));
  g_assert_no_error (error);
  t3 = g_get_monotonic_time ();
  g_test_message ("%.1f MiB through the agent: upload %.1f MB/s, download %.1f MB/s", size / 1048576.0,
                  size / ((t1 - t0) / 1e6) / 1e6, size / ((t3 - t2) / 1e6) / 1e6);
  host_sum = host_sha256 (out);
  g_assert_cmpstr (host_sum, ==, sum);
  g_assert_cmpint (g_stat (out, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 07777, ==, 0750);

  /* The agent's modes are the guest's too: the same bits are dropped,
   * unless asked for. */
  sh ("echo x > /fb/suid && chmod 4777 /fb/suid");
  {
    g_autofree char *suid = g_build_filename (dir, "suid", NULL);
    g_autofree char *exact = g_build_filename (dir, "suid-exact", NULL);
    g_autoptr(GFile) suid_file = g_file_new_for_path (suid);
    g_autoptr(GFile) exact_file = g_file_new_for_path (exact);

    g_assert_true (qlean_machine_download (machine, "/fb/suid", suid_file, NULL, &error));
    g_assert_no_error (error);
    g_assert_cmpuint (local_mode (suid), ==, 0755);
    g_assert_true (qlean_machine_download_full (machine, "/fb/suid", exact_file,
                                                QLEAN_TRANSFER_FLAGS_PRESERVE_MODES, NULL, &error));
    g_assert_no_error (error);
    g_assert_cmpuint (local_mode (exact), ==, 04777);
  }

  /* Errors keep their codes and name the guest path. */
  g_assert_null (qlean_machine_read (machine, "/fb/missing", NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "/fb/missing"));
  g_clear_error (&error);
  g_assert_false (qlean_machine_download (machine, "/fb/missing", out_file, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "/fb/missing"));
  g_clear_error (&error);
  /* ... and before it made any local directory. */
  {
    g_autofree char *fresh = g_build_filename (dir, "fresh", "sub", "x", NULL);
    g_autofree char *fresh_top = g_build_filename (dir, "fresh", NULL);
    g_autoptr(GFile) fresh_file = g_file_new_for_path (fresh);

    g_assert_false (qlean_machine_download (machine, "/fb/missing", fresh_file, NULL, &error));
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
    g_clear_error (&error);
    g_assert_false (g_file_test (fresh_top, G_FILE_TEST_EXISTS));
  }
  g_assert_false (qlean_machine_write (machine, "/fb/no/such/dir/f", data, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "/fb/no/such/dir/f"));
  g_clear_error (&error);
  /* Onto a directory: refused as rename(2) would, nothing left inside. */
  sh ("mkdir /fb/adir");
  g_assert_false (qlean_machine_write (machine, "/fb/adir", data, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_IS_DIRECTORY);
  g_assert_nonnull (strstr (error->message, "/fb/adir"));
  g_clear_error (&error);
  sh ("test -z \"$(ls -A /fb/adir)\" && ! ls -A /fb | grep -q qlean");
  /* A failed download leaves the old local file alone. */
  {
    g_autofree char *again = host_sha256 (out);

    g_assert_cmpstr (again, ==, host_sum);
  }

  /* The other calls and directories work too (files-agent runs all the
   * file tests over the agent). */
  dir_file = g_file_new_for_path (dir);
  g_assert_true (qlean_machine_upload (machine, dir_file, "/fb", NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_machine_exists (machine, "/fb", NULL, &error));
  g_assert_no_error (error);

  base = g_path_get_basename (src);
  inside = g_strdup_printf ("cmp /fb/up /fb/%s", base);
  sh (inside);

  {
    g_autofree char *cmd = g_strdup_printf ("rm -rf %s", dir);

    g_spawn_command_line_sync (cmd, NULL, NULL, NULL, NULL);
  }
  g_clear_object (&machine);
}

/* A guest without qlean-guest (the minimal image's init leaves it out
 * with qlean.noguest=1): the qlean-guest transport fails the start and
 * says why; auto settles on the agent, once, and every call works. */
static void
test_without_qlean_guest (void)
{
  g_autoptr(QleanMachineConfig) config = NULL;
  g_autoptr(QleanMachine) strict = NULL;
  g_autoptr(QleanMachine) plain = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) data = bytes_from_string ("no qlean-guest here");
  g_autoptr(GBytes) back = NULL;
  g_autoptr(GPtrArray) entries = NULL;
  g_autoptr(QleanExecResult) result = NULL;

  if (skip_on_agent ("it checks the other transports on a guest without qlean-guest") ||
      !test_have_qemu ())
    return;

  config = qlean_machine_config_new ();
  qlean_machine_config_set_cmdline (config, "qlean.noguest=1");
  qlean_machine_config_set_guest_transport (config, QLEAN_GUEST_TRANSPORT_QLEAN_GUEST);
  strict = qlean_machine_new_with_name ("files-strict", NULL, config);
  g_assert_false (qlean_machine_spawn (strict, NULL, &error));
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "qlean-guest does not answer"));
  g_assert_cmpint (qlean_machine_get_state (strict), !=, QLEAN_MACHINE_STATE_RUNNING);
  g_clear_error (&error);

  qlean_machine_config_set_guest_transport (config, QLEAN_GUEST_TRANSPORT_AUTO);
  plain = qlean_machine_new_with_name ("files-plain", NULL, config);
  qlean_machine_spawn (plain, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (qlean_machine_get_guest_transport (plain), ==, QLEAN_GUEST_TRANSPORT_AGENT);
  result = qlean_machine_exec (plain, "! pidof qlean-guest", NULL, &error);
  g_assert_no_error (error);
  g_assert_true (qlean_exec_result_success (result));
  g_assert_true (qlean_machine_create_dir_all (plain, "/np/a b/-c", NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_machine_write (plain, "/np/a b/-c/f", data, NULL, &error));
  g_assert_no_error (error);
  back = qlean_machine_read (plain, "/np/a b/-c/f", NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (back, data));
  entries = qlean_machine_read_dir (plain, "/np/a b/-c", NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (entries->len, ==, 1);
  g_assert_false (qlean_machine_create_dir (plain, "/np/a b", NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS);
  g_clear_error (&error);
  g_assert_true (qlean_machine_remove_dir_all (plain, "/np", NULL, &error));
  g_assert_no_error (error);
  g_assert_false (qlean_machine_exists (plain, "/np", NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (qlean_machine_get_guest_transport (plain), ==, QLEAN_GUEST_TRANSPORT_AGENT);
  g_assert_true (qlean_machine_shutdown (plain, NULL, &error));
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
  g_test_add_func ("/files/download-modes", test_download_modes);
  g_test_add_func ("/files/download-dot-dot", test_download_dot_dot);
  g_test_add_func ("/files/copy-bounded", test_copy_bounded);
  g_test_add_func ("/files/without-qlean-guest", test_without_qlean_guest);
  test_files_tree_add_tests ();
  /* Last: it leaves the machine without qlean-guest, and drops it. */
  g_test_add_func ("/files/agent-transport", test_agent_fallback);

  ret = g_test_run ();
  g_clear_object (&machine);
  return ret;
}
