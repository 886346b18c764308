/* test-archives.c: export and import of machines, and archives that
 * must be refused (real QEMU, TCG, the minimal image)
 *
 * SPDX-License-Identifier: MIT
 *
 * Apart from test-lifecycle.c because an archive is a file format with
 * its own trust boundary: these tests write archives, take them apart,
 * rebuild them with hostile members and check what an import refuses
 * and leaves behind. Archive parsing on its own (every malformed
 * header) is in tests/unit/test-archive.c. Each test runs at most two
 * machines at once and drops them before it returns.
 */

#include "config.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include <qlean/qlean.h>
#include "test-common.h"

static char *fixture_dir;      /* per run, removed at the end */
static char *running_archive;  /* written by /archives/export-import */

/* Export while a guest loop writes files, import, compare: the imported
 * machine runs on from the moment of the export, with every file the
 * loop wrote before it. */
static void
test_export_import (void)
{
  g_autoptr(QleanMachine) machine = qlean_machine_new_with_name ("exporter", NULL, NULL);
  g_autoptr(QleanMachine) imported = NULL;
  g_autoptr(GFile) archive = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *before = NULL, *after = NULL, *count = NULL;
  g_autofree char *mine = NULL, *theirs = NULL, *missing = NULL, *host = NULL;
  g_autofree char *command = NULL;
  gint64 n_before, n_after, n_imported;
  GStatBuf st;

  if (!test_have_qemu ())
    return;

  g_assert_true (qlean_machine_spawn (machine, NULL, &error));
  g_assert_no_error (error);

  /* /root/n is replaced by rename, never truncated in place: a reader
   * (here, or the imported machine after the kill) must never see it
   * empty. */
  g_free (test_run_text (machine,
                    "setsid sh -c 'echo $$ > /root/loop.pid; i=0; "
                    "while :; do i=$((i+1)); date > /root/f.$i; "
                    "echo $i > /root/n.new; mv -f /root/n.new /root/n; done' "
                    "</dev/null >/dev/null 2>&1 & sleep 1; cat /root/n"));
  before = test_run_text (machine, "cat /root/n");

  running_archive = g_build_filename (fixture_dir, "running.qlean", NULL);
  archive = g_file_new_for_path (running_archive);
  g_assert_true (qlean_machine_export (machine, archive, NULL, &error));
  g_assert_no_error (error);
  after = test_run_text (machine, "cat /root/n");
  n_before = g_ascii_strtoll (before, NULL, 10);
  n_after = g_ascii_strtoll (after, NULL, 10);
  g_test_message ("loop at %" G_GINT64_FORMAT " before the export, %" G_GINT64_FORMAT " after",
                  n_before, n_after);
  g_assert_cmpint (n_before, >, 0);
  g_assert_cmpint (n_after, >, n_before);
  g_assert_cmpint (g_stat (running_archive, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);
  g_test_message ("archive: %.1f MiB", st.st_size / 1048576.0);

  command = g_strdup_printf ("cat /root/f.%" G_GINT64_FORMAT, n_before);
  mine = test_run_text (machine, command);
  g_assert_true (qlean_machine_shutdown (machine, NULL, &error));
  g_assert_no_error (error);

  imported = qlean_machine_import (archive, "importer", NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (imported);
  g_assert_cmpint (qlean_machine_get_state (imported), ==, QLEAN_MACHINE_STATE_RUNNING);

  /* The loop runs on in the imported machine: stop it, then look. */
  count = test_run_text (imported, "kill $(cat /root/loop.pid) && sleep 0.2 && cat /root/n");
  n_imported = g_ascii_strtoll (count, NULL, 10);
  g_test_message ("imported machine's loop at %" G_GINT64_FORMAT, n_imported);
  g_assert_cmpint (n_imported, >=, n_before);

  theirs = test_run_text (imported, command);
  g_assert_cmpstr (theirs, ==, mine);
  g_free (command);
  command = g_strdup_printf ("i=1; while [ $i -le %" G_GINT64_FORMAT " ]; do "
                             "[ -s /root/f.$i ] || echo $i; i=$((i+1)); done", n_before);
  missing = test_run_text (imported, command);
  g_assert_cmpstr (missing, ==, "");
  host = test_run_text (imported, "hostname");
  g_assert_cmpstr (host, ==, "importer");

  g_assert_true (qlean_machine_shutdown (imported, NULL, &error));
  g_assert_no_error (error);
}

static int
compare_names (gconstpointer a,
               gconstpointer b)
{
  return g_strcmp0 (*(const char * const *) a, *(const char * const *) b);
}

/* A machine with a disk (a file image, booted with the minimal image's
 * kernel and initramfs): the export carries a self-contained copy of
 * the disk as it was at the export, and the import runs on it. */
static void
test_export_import_disk (void)
{
  g_autoptr(QleanImage) minimal = qlean_image_new_minimal ();
  g_autoptr(QleanImage) image = NULL;
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(QleanMachine) imported = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *disk = g_build_filename (fixture_dir, "blank.qcow2", NULL);
  g_autofree char *archive_path = g_build_filename (fixture_dir, "disk.qlean", NULL);
  g_autoptr(GFile) archive = g_file_new_for_path (archive_path);
  g_autofree char *qemu_img = g_find_program_in_path ("qemu-img");
  g_autofree char *listing = NULL;
  g_autofree char *out = NULL;
  const char *create[] = { "qemu-img", "create", "-q", "-f", "qcow2", disk, "64M", NULL };
  const char *list[] = { "tar", "-tf", archive_path, NULL };
  int status;

  if (!test_have_qemu ())
    return;
  if (qemu_img == NULL)
    {
      g_test_skip ("qemu-img is not installed (apt-get install qemu-utils)");
      return;
    }

  g_assert_true (qlean_image_prepare (minimal, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (g_spawn_sync (NULL, (char **) create, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                               NULL, NULL, &status, &error));
  g_assert_true (g_spawn_check_wait_status (status, &error));

  image = qlean_image_new_from_file (disk);
  qlean_machine_config_set_kernel (config, qlean_image_get_kernel (minimal));
  qlean_machine_config_set_initrd (config, qlean_image_get_initrd (minimal));
  qlean_machine_config_set_memory_mib (config, 256);
  machine = qlean_machine_new_with_name ("disky", image, config);
  g_assert_true (qlean_machine_spawn (machine, NULL, &error));
  g_assert_no_error (error);

  g_free (test_run_text (machine, "echo before-export | dd of=/dev/vda bs=512 count=1 conv=sync 2>/dev/null; sync"));
  g_assert_true (qlean_machine_export (machine, archive, NULL, &error));
  g_assert_no_error (error);
  g_free (test_run_text (machine, "echo after-export | dd of=/dev/vda bs=512 seek=1 count=1 conv=sync 2>/dev/null; sync"));
  g_assert_true (qlean_machine_shutdown (machine, NULL, &error));
  g_assert_no_error (error);
  g_clear_object (&machine);

  g_assert_true (g_spawn_sync (NULL, (char **) list, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                               &listing, NULL, &status, &error));
  /* The kernel and initramfs it boots go with it. */
  g_assert_cmpstr (listing, ==, "manifest.json\ndisk.qcow2\nkernel\ninitrd\nstate\nSHA256SUMS\n");

  /* The archive needs nothing of the original disk, and boots its own
   * copies of the kernel and initramfs. */
  g_assert_no_errno (g_unlink (disk));
  imported = qlean_machine_import (archive, "disky-again", NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (qlean_machine_get_state (imported), ==, QLEAN_MACHINE_STATE_RUNNING);
  {
    QleanMachineConfig *imported_config = qlean_machine_get_config (imported);

    g_assert_true (g_str_has_suffix (qlean_machine_config_get_kernel (imported_config), "/archive/kernel"));
    g_assert_true (g_str_has_suffix (qlean_machine_config_get_initrd (imported_config), "/archive/initrd"));
    g_assert_cmpstr (qlean_machine_config_get_kernel (imported_config), !=, qlean_image_get_kernel (minimal));
  }
  out = test_run_text (imported, "dd if=/dev/vda bs=512 count=2 2>/dev/null | tr -d '\\000'");
  g_assert_cmpstr (out, ==, "before-export");

  g_assert_true (qlean_machine_shutdown (imported, NULL, &error));
  g_assert_no_error (error);
  g_unlink (archive_path);
}

/* The entries of a directory, sorted, as one string. */
static char *
list_dir (const char *path)
{
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    g_ptr_array_add (names, g_strdup (name));
  g_ptr_array_sort (names, compare_names);
  g_ptr_array_add (names, NULL);

  return g_strjoinv (" ", (char **) names->pdata);
}

/* A tar member as bytes: header, data, padding. */
static void
add_member (GByteArray *tar,
            const char *name,
            char        type,
            const char *linkname,
            const void *data,
            gsize       len)
{
  static const guint8 zeros[512];
  guint8 header[512] = { 0 };
  guint sum = 0;
  char field[13];

  g_assert_cmpuint (strlen (name), <, 100);
  memcpy (header, name, strlen (name));
  memcpy (header + 100, "0000600", 7);
  memcpy (header + 108, "0000000", 7);
  memcpy (header + 116, "0000000", 7);
  g_snprintf (field, sizeof field, "%011" G_GINT64_MODIFIER "o", (guint64) len);
  memcpy (header + 124, field, 11);
  memcpy (header + 136, "00000000000", 11);
  header[156] = type;
  if (linkname != NULL)
    memcpy (header + 157, linkname, strlen (linkname));
  memcpy (header + 257, "ustar\0" "00", 8);
  memset (header + 148, ' ', 8);
  for (gsize i = 0; i < 512; i++)
    sum += header[i];
  g_snprintf (field, sizeof field, "%06o", sum);
  memcpy (header + 148, field, 7);

  g_byte_array_append (tar, header, 512);
  g_byte_array_append (tar, data, len);
  g_byte_array_append (tar, zeros, (512 - len % 512) % 512);
}

static void
add_sums_and_end (GByteArray *tar,
                  GString    *sums)
{
  static const guint8 zeros[1024];

  add_member (tar, "SHA256SUMS", '0', NULL, sums->str, sums->len);
  g_byte_array_append (tar, zeros, sizeof zeros);
}

static void
add_summed (GByteArray *tar,
            GString    *sums,
            const char *name,
            const void *data,
            gsize       len)
{
  g_autofree char *digest = g_compute_checksum_for_data (G_CHECKSUM_SHA256, data, len);

  add_member (tar, name, '0', NULL, data, len);
  g_string_append_printf (sums, "%s  %s\n", digest, name);
}

static void
assert_import_refused (const char   *what,
                       GByteArray   *tar,
                       const char   *sentinel,
                       const char   *run_base)
{
  g_autofree char *path = g_build_filename (fixture_dir, "evil.qlean", NULL);
  g_autoptr(GFile) file = g_file_new_for_path (path);
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *base_before = list_dir (run_base);
  g_autofree char *base_after = NULL;
  g_autofree char *sentinel_after = NULL;
  g_autofree char *fixture_after = NULL;

  g_assert_true (g_file_set_contents (path, (const char *) tar->data, tar->len, &error));
  machine = qlean_machine_import (file, "evil", NULL, NULL, &error);
  g_test_message ("%s: %s", what, error ? error->message : "(accepted)");
  g_assert_null (machine);
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_BAD_ARCHIVE);
  g_unlink (path);

  /* Nothing written outside, nothing of the import left inside. */
  sentinel_after = list_dir (sentinel);
  g_assert_cmpstr (sentinel_after, ==, "");
  base_after = list_dir (run_base);
  g_assert_cmpstr (base_after, ==, base_before);
  fixture_after = list_dir (fixture_dir);
  g_assert_null (strstr (fixture_after, "evil"));
  g_assert_false (g_file_test ("x", G_FILE_TEST_EXISTS));
}

/* Archives from a stranger: refused, with nothing written outside the
 * importer's own directory, and that directory gone. */
static void
test_malicious_archives (void)
{
  g_autofree char *sentinel = g_build_filename (fixture_dir, "sentinel", NULL);
  g_autofree char *run_base = NULL;
  g_autofree char *valid_path = g_build_filename (fixture_dir, "stopped.qlean", NULL);
  g_autofree char *target = NULL;
  g_autofree char *absolute = NULL;
  g_autoptr(QleanMachine) stopped = qlean_machine_new_with_name ("stopped", NULL, NULL);
  g_autoptr(QleanMachine) back = NULL;
  g_autoptr(GFile) valid = g_file_new_for_path (valid_path);
  g_autoptr(GError) error = NULL;
  g_autofree char *contents = NULL;
  g_autofree char *manifest = NULL;
  gsize len;
  guint64 manifest_len;
  const char *run_dir_env = g_getenv ("QLEAN_RUN_DIR");

  if (!test_have_qemu ())
    return;

  g_assert_no_errno (g_mkdir (sentinel, 0700));
  run_base = run_dir_env ? g_strdup (run_dir_env) : NULL;
  if (run_base == NULL)
    {
      g_test_skip ("QLEAN_RUN_DIR is not set: run this under meson test");
      return;
    }
  g_mkdir_with_parents (run_base, 0700);

  /* A real archive, of a machine that never ran: manifest and sums. */
  g_assert_true (qlean_machine_export (stopped, valid, NULL, &error));
  g_assert_no_error (error);
  back = qlean_machine_import (valid, "stopped-again", NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (qlean_machine_get_state (back), ==, QLEAN_MACHINE_STATE_CREATED);
  g_clear_object (&back);

  g_assert_true (g_file_get_contents (valid_path, &contents, &len, &error));
  manifest_len = g_ascii_strtoull (contents + 124, NULL, 8);
  manifest = g_strndup (contents + 512, manifest_len);

  target = g_build_filename (sentinel, "owned", NULL);
  absolute = g_build_filename (sentinel, "abs", NULL);

  {
    g_autoptr(GByteArray) tar = g_byte_array_new ();
    g_autoptr(GString) sums = g_string_new (NULL);

    add_summed (tar, sums, "manifest.json", manifest, manifest_len);
    add_summed (tar, sums, "../x", "evil", 4);
    add_sums_and_end (tar, sums);
    assert_import_refused ("traversal", tar, sentinel, run_base);
  }
  {
    g_autoptr(GByteArray) tar = g_byte_array_new ();
    g_autoptr(GString) sums = g_string_new (NULL);
    g_autofree char *sentinel_relative = g_strconcat ("../../../../../../../../../..", sentinel, "/rel", NULL);

    add_summed (tar, sums, "manifest.json", manifest, manifest_len);
    if (strlen (sentinel_relative) < 100)
      add_summed (tar, sums, sentinel_relative, "evil", 4);
    else
      add_summed (tar, sums, "../../../x", "evil", 4);
    add_sums_and_end (tar, sums);
    assert_import_refused ("deep traversal", tar, sentinel, run_base);
  }
  if (strlen (absolute) < 100)
    {
      g_autoptr(GByteArray) tar = g_byte_array_new ();
      g_autoptr(GString) sums = g_string_new (NULL);

      add_summed (tar, sums, "manifest.json", manifest, manifest_len);
      add_summed (tar, sums, absolute, "evil", 4);
      add_sums_and_end (tar, sums);
      assert_import_refused ("absolute", tar, sentinel, run_base);
    }
  if (strlen (target) < 100)
    {
      /* The classic: a link named like a member, then the member. */
      g_autoptr(GByteArray) tar = g_byte_array_new ();
      g_autoptr(GString) sums = g_string_new (NULL);

      add_summed (tar, sums, "manifest.json", manifest, manifest_len);
      add_member (tar, "state", '2', target, NULL, 0);
      add_summed (tar, sums, "state", "evil", 4);
      add_sums_and_end (tar, sums);
      assert_import_refused ("symlink out", tar, sentinel, run_base);
    }
  {
    g_autoptr(GByteArray) tar = g_byte_array_new ();

    g_byte_array_append (tar, (const guint8 *) contents, len - 700);
    assert_import_refused ("truncated", tar, sentinel, run_base);
  }
  {
    g_autoptr(GByteArray) tar = g_byte_array_new ();
    g_autoptr(GString) sums = g_string_new (NULL);

    add_summed (tar, sums, "manifest.json", manifest, manifest_len);
    add_summed (tar, sums, "state", "the memory of a machine", 23);
    /* Damaged in transit, after the sums were made. */
    tar->data[tar->len - 512 + 4] ^= 0x01;
    add_sums_and_end (tar, sums);
    assert_import_refused ("checksum mismatch", tar, sentinel, run_base);
  }

  /* A real export of a running machine, truncated in its state and
   * damaged in its state: extraction has begun when these are found. */
  if (running_archive != NULL && g_file_test (running_archive, G_FILE_TEST_IS_REGULAR))
    {
      g_autofree char *big = NULL;
      gsize big_len;

      g_assert_true (g_file_get_contents (running_archive, &big, &big_len, &error));
      {
        g_autoptr(GByteArray) tar = g_byte_array_new ();

        g_byte_array_append (tar, (const guint8 *) big, big_len / 2);
        assert_import_refused ("running, truncated", tar, sentinel, run_base);
      }
      {
        g_autoptr(GByteArray) tar = g_byte_array_new ();

        g_byte_array_append (tar, (const guint8 *) big, big_len);
        tar->data[big_len / 2] ^= 0x40;
        assert_import_refused ("running, damaged", tar, sentinel, run_base);
      }
    }
  else
    g_test_message ("no archive of a running machine (its test did not run): skipped those checks");

  g_unlink (valid_path);
  g_rmdir (sentinel);
}

/* An archive's members as (name, contents) pairs, SHA256SUMS left out,
 * and the manifest parsed: what a test rewrites before it sums the
 * archive again. */
typedef struct
{
  GBytes    *whole;
  GPtrArray *names;
  GPtrArray *contents;
  JsonNode  *manifest;
} Members;

static void
members_free (Members *members)
{
  g_ptr_array_unref (members->names);
  g_ptr_array_unref (members->contents);
  json_node_unref (members->manifest);
  g_bytes_unref (members->whole);
  g_free (members);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Members, members_free)

static Members *
read_members (const char *path)
{
  Members *members = g_new0 (Members, 1);
  g_autoptr(GError) error = NULL;
  g_autoptr(GMappedFile) mapped = g_mapped_file_new (path, FALSE, &error);
  const char *data;
  gsize len, offset = 0;

  g_assert_no_error (error);
  members->whole = g_mapped_file_get_bytes (mapped);
  data = g_bytes_get_data (members->whole, &len);
  members->names = g_ptr_array_new_with_free_func (g_free);
  members->contents = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);

  while (offset + 512 <= len && data[offset] != '\0')
    {
      g_autofree char *name = g_strndup (data + offset, 100);
      guint64 size = g_ascii_strtoull (data + offset + 124, NULL, 8);

      g_assert_cmpuint (offset + 512 + size, <=, len);
      if (!g_str_equal (name, "SHA256SUMS"))
        {
          g_ptr_array_add (members->contents, g_bytes_new_from_bytes (members->whole, offset + 512, size));
          g_ptr_array_add (members->names, g_steal_pointer (&name));
        }
      offset += 512 + (size + 511) / 512 * 512;
    }

  g_assert_cmpstr (g_ptr_array_index (members->names, 0), ==, "manifest.json");
  {
    gsize manifest_len;
    const char *manifest = g_bytes_get_data (g_ptr_array_index (members->contents, 0), &manifest_len);
    g_autofree char *text = g_strndup (manifest, manifest_len);

    members->manifest = json_from_string (text, &error);
    g_assert_no_error (error);
  }

  return members;
}

static JsonObject *
members_config (Members *members)
{
  return json_object_get_object_member (json_node_get_object (members->manifest), "config");
}

/* The archive again, with the (edited) manifest and checksums that match. */
static GByteArray *
members_to_tar (Members *members)
{
  GByteArray *tar = g_byte_array_new ();
  g_autoptr(GString) sums = g_string_new (NULL);
  g_autofree char *manifest = json_to_string (members->manifest, TRUE);

  add_summed (tar, sums, "manifest.json", manifest, strlen (manifest));
  for (guint i = 1; i < members->names->len; i++)
    {
      gsize len;
      const void *data = g_bytes_get_data (g_ptr_array_index (members->contents, i), &len);

      add_summed (tar, sums, g_ptr_array_index (members->names, i), data, len);
    }
  add_sums_and_end (tar, sums);

  return tar;
}

static void
set_extra_args (JsonObject  *config,
                const char  *sentinel)
{
  JsonArray *args = json_array_new ();
  g_autofree char *chardev = g_strdup_printf ("file,id=evil,path=%s/owned", sentinel);

  json_array_add_string_element (args, "-chardev");
  json_array_add_string_element (args, chardev);
  json_object_set_array_member (config, "extra-args", args);
}

/* An archive decides nothing of QEMU's command line unless the caller
 * trusts it: extra arguments (here a -chardev that would write a host
 * file as soon as QEMU starts) are refused, before any QEMU runs, and
 * taken only with QLEAN_IMPORT_FLAGS_TRUST_EXTRA_ARGS. */
static void
test_archive_extra_args (void)
{
  g_autofree char *sentinel = g_build_filename (fixture_dir, "sentinel-args", NULL);
  g_autofree char *owned = g_build_filename (sentinel, "owned", NULL);
  g_autofree char *valid_path = g_build_filename (fixture_dir, "argsy.qlean", NULL);
  g_autofree char *chardev = g_strdup_printf ("file,id=evil,path=%s/owned", sentinel);
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(QleanMachine) argsy = NULL;
  g_autoptr(QleanMachine) back = NULL;
  g_autoptr(GFile) valid = g_file_new_for_path (valid_path);
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) argv = NULL;
  const char *extra[] = { "-chardev", chardev, NULL };
  const char *run_base = g_getenv ("QLEAN_RUN_DIR");

  if (!test_have_qemu ())
    return;
  if (run_base == NULL)
    {
      g_test_skip ("QLEAN_RUN_DIR is not set: run this under meson test");
      return;
    }
  g_mkdir_with_parents (run_base, 0700);
  g_assert_no_errno (g_mkdir (sentinel, 0700));

  /* A real export of a machine with such arguments, which never ran;
   * kept until the end, so that its state directory stays put while
   * the run directory is compared. */
  qlean_machine_config_set_extra_args (config, extra);
  argsy = qlean_machine_new_with_name ("argsy", NULL, config);
  g_assert_true (qlean_machine_export (argsy, valid, NULL, &error));
  g_assert_no_error (error);

  {
    g_autoptr(Members) members = read_members (valid_path);
    g_autoptr(GByteArray) tar = members_to_tar (members);

    assert_import_refused ("extra arguments", tar, sentinel, run_base);
  }

  /* The archive of a running machine with them: the import would start
   * QEMU at once, and that QEMU would create the file. */
  if (running_archive != NULL && g_file_test (running_archive, G_FILE_TEST_IS_REGULAR))
    {
      g_autoptr(Members) members = read_members (running_archive);
      g_autoptr(GByteArray) tar = NULL;

      set_extra_args (members_config (members), sentinel);
      tar = members_to_tar (members);
      assert_import_refused ("running, extra arguments", tar, sentinel, run_base);
    }
  else
    g_test_message ("no archive of a running machine (its test did not run): skipped that check");
  g_assert_false (g_file_test (owned, G_FILE_TEST_EXISTS));

  /* Trusted, they are the machine's, on QEMU's command line. */
  back = qlean_machine_import_full (valid, "argsy-again", NULL, QLEAN_IMPORT_FLAGS_TRUST_EXTRA_ARGS,
                                    NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (back);
  g_assert_cmpstrv (qlean_machine_config_get_extra_args (qlean_machine_get_config (back)), extra);
  argv = qlean_machine_dry_run (back, &error);
  g_assert_no_error (error);
  g_assert_true (g_strv_contains ((const char * const *) argv, chardev));
  g_clear_object (&back);

  g_unlink (valid_path);
  g_assert_no_errno (g_rmdir (sentinel));
}

static void
set_string (JsonObject *object,
            const char *member,
            const char *value)
{
  json_object_set_string_member (object, member, value);
}

/* The kernel, initrd and disk come from inside the archive: a manifest
 * that names a file of the host (a format 1 archive's way, or a forged
 * one) is refused, whatever the file. */
static void
test_archive_host_paths (void)
{
  g_autofree char *sentinel = g_build_filename (fixture_dir, "sentinel-paths", NULL);
  g_autofree char *secret = g_build_filename (fixture_dir, "secret", NULL);
  g_autofree char *valid_path = g_build_filename (fixture_dir, "pathy.qlean", NULL);
  g_autoptr(QleanMachine) pathy = qlean_machine_new_with_name ("pathy", NULL, NULL);
  g_autoptr(GFile) valid = g_file_new_for_path (valid_path);
  g_autoptr(GError) error = NULL;
  const char *run_base = g_getenv ("QLEAN_RUN_DIR");
  struct { const char *what; const char *object; const char *member; int format; } cases[] = {
    { "config kernel", "config", "kernel", 2 },
    { "config initrd", "config", "initrd", 2 },
    { "image kernel", "image", "kernel", 2 },
    { "image initrd", "image", "initrd", 2 },
    { "format 1 config kernel", "config", "kernel", 1 },
    { "format 1 image initrd", "image", "initrd", 1 },
  };

  if (!test_have_qemu ())
    return;
  if (run_base == NULL)
    {
      g_test_skip ("QLEAN_RUN_DIR is not set: run this under meson test");
      return;
    }
  g_mkdir_with_parents (run_base, 0700);
  g_assert_no_errno (g_mkdir (sentinel, 0700));
  g_assert_true (g_file_set_contents (secret, "host secret\n", -1, &error));

  g_assert_true (qlean_machine_export (pathy, valid, NULL, &error));
  g_assert_no_error (error);

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(Members) members = read_members (valid_path);
      JsonObject *root = json_node_get_object (members->manifest);
      g_autoptr(GByteArray) tar = NULL;

      json_object_set_int_member (root, "format", cases[i].format);
      set_string (json_object_get_object_member (root, cases[i].object), cases[i].member, secret);
      tar = members_to_tar (members);
      assert_import_refused (cases[i].what, tar, sentinel, run_base);
    }

  /* Promised as a member, but not there. */
  {
    g_autoptr(Members) members = read_members (valid_path);
    g_autoptr(GByteArray) tar = NULL;

    json_object_set_boolean_member (json_node_get_object (members->manifest), "kernel", TRUE);
    tar = members_to_tar (members);
    assert_import_refused ("kernel promised", tar, sentinel, run_base);
  }

  /* A format 1 archive that names no host file still imports. */
  {
    g_autoptr(Members) members = read_members (valid_path);
    g_autoptr(GByteArray) tar = NULL;
    g_autoptr(QleanMachine) back = NULL;
    g_autoptr(GFile) file = NULL;
    g_autofree char *path = g_build_filename (fixture_dir, "old.qlean", NULL);
    JsonObject *root = json_node_get_object (members->manifest);

    json_object_set_int_member (root, "format", 1);
    json_object_remove_member (root, "kernel");
    json_object_remove_member (root, "initrd");
    json_object_set_null_member (members_config (members), "kernel");
    tar = members_to_tar (members);
    g_assert_true (g_file_set_contents (path, (const char *) tar->data, tar->len, &error));
    file = g_file_new_for_path (path);
    back = qlean_machine_import (file, "pathy-old", NULL, NULL, &error);
    g_assert_no_error (error);
    g_assert_null (qlean_machine_config_get_kernel (qlean_machine_get_config (back)));
    g_unlink (path);
  }

  g_unlink (secret);
  g_unlink (valid_path);
  g_assert_no_errno (g_rmdir (sentinel));
}

/* An archived disk is the export's self-contained qcow2: one whose
 * header names a backing or data file (of the importing host) is
 * refused at the import, with nothing left. */
static void
test_archive_disk_backing (void)
{
  g_autofree char *sentinel = g_build_filename (fixture_dir, "sentinel-disk", NULL);
  g_autofree char *secret = g_build_filename (fixture_dir, "secret.raw", NULL);
  g_autofree char *data = g_build_filename (fixture_dir, "data.raw", NULL);
  g_autofree char *data_option = g_strdup_printf ("data_file=%s", data);
  g_autofree char *blank = g_build_filename (fixture_dir, "blank-disko.qcow2", NULL);
  g_autofree char *backed = g_build_filename (fixture_dir, "backed.qcow2", NULL);
  g_autofree char *data_filed = g_build_filename (fixture_dir, "data-filed.qcow2", NULL);
  g_autofree char *valid_path = g_build_filename (fixture_dir, "disko.qlean", NULL);
  g_autofree char *qemu_img = g_find_program_in_path ("qemu-img");
  g_autoptr(GFile) valid = g_file_new_for_path (valid_path);
  g_autoptr(GError) error = NULL;
  const char *run_base = g_getenv ("QLEAN_RUN_DIR");
  const char *create_blank[] = { "qemu-img", "create", "-q", "-f", "qcow2", blank, "1M", NULL };
  const char *create_backed[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", secret,
                                  backed, "1M", NULL };
  const char *create_data[] = { "qemu-img", "create", "-q", "-f", "qcow2", "-o", data_option,
                                data_filed, "1M", NULL };
  const char * const *creates[] = { create_blank, create_backed, create_data };
  const char *evil[] = { backed, data_filed };
  const char *what[] = { "disk with a backing file", "disk with a data file" };
  g_autoptr(QleanImage) image = NULL;
  g_autoptr(QleanMachine) disko = NULL;

  if (!test_have_qemu ())
    return;
  if (qemu_img == NULL)
    {
      g_test_skip ("qemu-img is not installed (apt-get install qemu-utils)");
      return;
    }
  if (run_base == NULL)
    {
      g_test_skip ("QLEAN_RUN_DIR is not set: run this under meson test");
      return;
    }
  g_mkdir_with_parents (run_base, 0700);
  g_assert_no_errno (g_mkdir (sentinel, 0700));
  g_assert_true (g_file_set_contents (secret, "a file of the host\n", -1, &error));
  for (guint i = 0; i < G_N_ELEMENTS (creates); i++)
    {
      int status;

      g_assert_true (g_spawn_sync (NULL, (char **) creates[i], NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                                   NULL, NULL, &status, &error));
      g_assert_true (g_spawn_check_wait_status (status, &error));
    }

  /* A real archive of a machine with a disk, which never ran; kept
   * until the end, so that its state directory stays put while the run
   * directory is compared. */
  image = qlean_image_new_from_file (blank);
  g_assert_true (qlean_image_prepare (image, NULL, &error));
  g_assert_no_error (error);
  disko = qlean_machine_new_with_name ("disko", image, NULL);
  g_assert_true (qlean_machine_export (disko, valid, NULL, &error));
  g_assert_no_error (error);

  for (guint i = 0; i < G_N_ELEMENTS (evil); i++)
    {
      g_autoptr(Members) members = read_members (valid_path);
      g_autoptr(GByteArray) tar = NULL;
      g_autofree char *contents = NULL;
      gsize len;

      g_assert_cmpstr (g_ptr_array_index (members->names, 1), ==, "disk.qcow2");
      g_assert_true (g_file_get_contents (evil[i], &contents, &len, &error));
      g_bytes_unref (g_ptr_array_index (members->contents, 1));
      g_ptr_array_index (members->contents, 1) = g_bytes_new (contents, len);
      tar = members_to_tar (members);
      assert_import_refused (what[i], tar, sentinel, run_base);
    }

  /* The export itself imports. */
  {
    g_autoptr(QleanMachine) back = qlean_machine_import (valid, "disko-again", NULL, NULL, &error);

    g_assert_no_error (error);
    g_assert_nonnull (back);
  }

  g_unlink (valid_path);
  g_unlink (blank);
  g_unlink (backed);
  g_unlink (data_filed);
  g_unlink (data);
  g_unlink (secret);
  g_assert_no_errno (g_rmdir (sentinel));
}

int
main (int    argc,
      char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  test_log_capture ();
  fixture_dir = g_dir_make_tmp ("qlean-archives-XXXXXX", NULL);
  g_assert_nonnull (fixture_dir);

  g_test_add_func ("/archives/export-import", test_export_import);
  g_test_add_func ("/archives/export-import-disk", test_export_import_disk);
  g_test_add_func ("/archives/malicious-archives", test_malicious_archives);
  g_test_add_func ("/archives/extra-args", test_archive_extra_args);
  g_test_add_func ("/archives/host-paths", test_archive_host_paths);
  g_test_add_func ("/archives/disk-backing", test_archive_disk_backing);

  status = g_test_run ();

  if (running_archive != NULL)
    g_unlink (running_archive);
  g_rmdir (fixture_dir);
  g_free (running_archive);
  g_free (fixture_dir);
  return status;
}
