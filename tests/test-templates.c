/* test-templates.c: saved boots and memory templates (real QEMU, TCG,
 * the minimal image)
 *
 * SPDX-License-Identifier: MIT
 *
 * Machines that start from a saved state share its memory: the fast
 * start's saved boots and their templates, and the templates of
 * snapshots (clones, restores) and of imported archives. Apart from
 * test-lifecycle.c because these tests look at the files of the caches
 * and at what each QEMU maps, not at a machine's life. Each test runs at
 * most a few machines at once and kills them before it returns.
 */

#include "config.h"

#include <string.h>
#include <unistd.h>
#include <utime.h>
#include <glib/gstdio.h>

#include <qlean/qlean.h>
#include "test-common.h"

static char *fixture_dir;      /* per run, removed at the end */

/* Saving a new boot (a machine shape nobody started before) keeps the
 * cache to the saved boots used last: stale ones go, with their MAC
 * files, and so do locks of saves that never finished. */
static void
test_saved_boots_pruned (void)
{
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_build_filename (g_get_user_cache_dir (), "qlean", "boot-states", NULL);
  g_autofree char *orphan_lock = g_build_filename (dir, "0000orphan.state.lock", NULL);
  g_autoptr(GHashTable) before = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(GDir) listing = NULL;
  g_autofree char *saved = NULL;
  const char *name;
  guint states = 0, stale_left = 0;

  if (!test_have_qemu ())
    return;

  /* What was saved before: what this start saves is the one new name. */
  listing = g_dir_open (dir, 0, NULL);
  while (listing != NULL && (name = g_dir_read_name (listing)) != NULL)
    g_hash_table_add (before, g_strdup (name));
  g_clear_pointer (&listing, g_dir_close);

  /* Stale saved boots, older than anything real. */
  g_assert_cmpint (g_mkdir_with_parents (dir, 0700), ==, 0);
  for (guint i = 0; i < 8; i++)
    {
      g_autofree char *path = g_strdup_printf ("%s/00000000stale%02u.state", dir, i);
      g_autofree char *mac = g_strconcat (path, ".mac", NULL);
      struct utimbuf old = { 1000000000 + i, 1000000000 + i };

      g_assert_true (g_file_set_contents (path, "stale", -1, NULL));
      g_assert_true (g_file_set_contents (mac, "02:00:00:00:00:01", -1, NULL));
      g_assert_cmpint (utime (path, &old), ==, 0);
    }
  g_assert_true (g_file_set_contents (orphan_lock, "", -1, NULL));

  /* A shape of its own, so that this start saves a new boot (random,
   * so that one left by a run that failed half-way is not reused). */
  qlean_machine_config_set_memory_mib (config, 260 + 4 * g_random_int_range (0, 32));
  machine = qlean_machine_new_with_name ("pruner", NULL, config);
  g_assert_true (qlean_machine_spawn (machine, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_machine_kill (machine, NULL, &error));

  listing = g_dir_open (dir, 0, &error);
  g_assert_no_error (error);
  while ((name = g_dir_read_name (listing)) != NULL)
    {
      g_autofree char *mac = g_strdup_printf ("%s/%s.mac", dir, name);

      if (!g_str_has_suffix (name, ".state"))
        continue;
      states++;
      if (!g_hash_table_contains (before, name))
        saved = g_build_filename (dir, name, NULL);
      if (g_str_has_prefix (name, "00000000stale"))
        {
          stale_left++;
          g_assert_true (g_file_test (mac, G_FILE_TEST_EXISTS));
        }
    }
  g_test_message ("%u saved boots left, %u of them stale", states, stale_left);
  g_assert_cmpuint (states, <=, 6);
  g_assert_cmpuint (stale_left, <, 8);
  g_assert_false (g_file_test (orphan_lock, G_FILE_TEST_EXISTS));
  g_assert_nonnull (saved);

  /* This shape's saved boot goes too, so that the next run saves one
   * again; and the stale ones the cache had room for. */
  {
    g_autofree char *lock = g_strconcat (saved, ".lock", NULL);
    g_autofree char *ram = g_strconcat (saved, ".ram", NULL);

    g_unlink (saved);
    g_unlink (lock);
    g_unlink (ram);
  }
  for (guint i = 0; i < 8; i++)
    {
      g_autofree char *path = g_strdup_printf ("%s/00000000stale%02u.state", dir, i);
      g_autofree char *mac = g_strconcat (path, ".mac", NULL);

      g_unlink (path);
      g_unlink (mac);
    }
}

static char *
file_sha256 (const char *path)
{
  g_autoptr(GMappedFile) mapped = g_mapped_file_new (path, FALSE, NULL);

  g_assert_nonnull (mapped);
  return g_compute_checksum_for_data (G_CHECKSUM_SHA256,
                                      (const guchar *) g_mapped_file_get_contents (mapped),
                                      g_mapped_file_get_length (mapped));
}

static QleanMachine *
template_machine (QleanMachineConfig *config,
                  const char         *name)
{
  g_autoptr(QleanMachine) machine = qlean_machine_new_with_name (name, NULL, config);
  g_autoptr(GError) error = NULL;

  g_assert_true (qlean_machine_spawn (machine, NULL, &error));
  g_assert_no_error (error);
  return g_steal_pointer (&machine);
}

static void
remove_saved_boot (const char *state)
{
  const char *suffixes[] = { "", ".ram", ".mac", ".lock" };

  for (guint i = 0; i < G_N_ELEMENTS (suffixes); i++)
    {
      g_autofree char *path = g_strconcat (state, suffixes[i], NULL);

      g_unlink (path);
    }
}

/* Machines started from one template share its file, copy-on-write:
 * what one writes shows neither in another nor in the template, each
 * has its own identity, and a template that is gone makes the next
 * start fall back to the old way, saying why. */
static void
test_memory_template (void)
{
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autofree char *dir = g_build_filename (g_get_user_cache_dir (), "qlean", "boot-states", NULL);
  g_autoptr(GHashTable) before = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(QleanMachine) first = NULL, second = NULL, third = NULL, later = NULL, fallback = NULL;
  g_autoptr(GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GDir) listing = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *state = NULL, *ram = NULL, *cmdline = NULL, *sum = NULL, *sum_after = NULL;
  g_autofree char *out = NULL;
  QleanMachine *machines[3];
  const char *name;

  if (!test_have_qemu ())
    return;

  listing = g_dir_open (dir, 0, NULL);
  while (listing != NULL && (name = g_dir_read_name (listing)) != NULL)
    g_hash_table_add (before, g_strdup (name));
  g_clear_pointer (&listing, g_dir_close);

  /* A shape of its own, so that its first machine makes the template. */
  qlean_machine_config_set_memory_mib (config, 262 + 4 * g_random_int_range (0, 32));
  first = template_machine (config, "tmpl-first");
  listing = g_dir_open (dir, 0, &error);
  g_assert_no_error (error);
  while ((name = g_dir_read_name (listing)) != NULL)
    if (g_str_has_suffix (name, ".state.ram") && !g_hash_table_contains (before, name))
      {
        ram = g_build_filename (dir, name, NULL);
        state = g_strndup (ram, strlen (ram) - strlen (".ram"));
      }
  g_assert_nonnull (ram);
  g_assert_true (g_file_test (state, G_FILE_TEST_IS_REGULAR));
  {
    GStatBuf st;

    /* Device state only: the RAM is in the template. */
    g_assert_cmpint (g_stat (state, &st), ==, 0);
    g_test_message ("saved state %" G_GINT64_FORMAT " bytes", (gint64) st.st_size);
    g_assert_cmpint (st.st_size, <, 8 * 1024 * 1024);
    g_assert_cmpint (g_stat (ram, &st), ==, 0);
    g_assert_cmpint (st.st_size, ==, (gint64) qlean_machine_config_get_memory_mib (config) << 20);
  }
  sum = file_sha256 (ram);

  second = template_machine (config, "tmpl-second");
  third = template_machine (config, "tmpl-third");
  cmdline = test_qemu_cmdline (second);
  g_assert_nonnull (strstr (cmdline, "share=off"));
  g_assert_nonnull (strstr (cmdline, ram));

  /* Writes to the guest's RAM: a file in the initramfs root and 16 MiB
   * of data in /tmp. */
  g_free (test_run_out (second, "echo second > /template-mark && "
                                "dd if=/dev/urandom of=/tmp/fill bs=1M count=16 2>/dev/null"));
  g_free (test_run_out (third, "dd if=/dev/zero of=/tmp/fill bs=1M count=8 2>/dev/null"));
  later = template_machine (config, "tmpl-later");
  machines[0] = second;
  machines[1] = third;
  machines[2] = later;
  out = test_run_text (second, "cat /template-mark");
  g_assert_cmpstr (out, ==, "second");
  for (guint i = 1; i < 3; i++)
    {
      g_autoptr(QleanExecResult) result = test_run (machines[i], "test -e /template-mark");

      g_assert_false (qlean_exec_result_success (result));
    }
  for (guint i = 0; i < 3; i++)
    {
      /* The minimal image has no machine-id: its random state then,
       * which the identity fix reseeds. */
      char *id = test_run_text (machines[i], "cat /etc/machine-id 2>/dev/null || "
                                             "cat /proc/sys/kernel/random/uuid");
      char *host = test_run_text (machines[i], "hostname");

      for (guint j = 0; j < ids->len; j++)
        {
          g_assert_cmpstr (id, !=, g_ptr_array_index (ids, j));
          g_assert_cmpstr (host, !=, g_ptr_array_index (names, j));
        }
      g_ptr_array_add (ids, id);
      g_ptr_array_add (names, host);
    }
  sum_after = file_sha256 (ram);
  g_assert_cmpstr (sum, ==, sum_after);

  /* A template that is gone: the next start says why and boots. */
  g_assert_cmpint (g_unlink (ram), ==, 0);
  test_logged ("");
  fallback = template_machine (config, "tmpl-fallback");
  g_assert_true (test_logged ("*no memory template, starting the old way*"));
  g_free (cmdline);
  cmdline = test_qemu_cmdline (fallback);
  g_assert_null (strstr (cmdline, "memory-backend-file"));
  g_free (out);
  out = test_run_text (fallback, "echo ok");
  g_assert_cmpstr (out, ==, "ok");
  /* The template machines run on after their template is gone. */
  g_free (out);
  out = test_run_text (third, "echo ok");
  g_assert_cmpstr (out, ==, "ok");

  g_assert_true (qlean_machine_kill (first, NULL, NULL));
  g_assert_true (qlean_machine_kill (second, NULL, NULL));
  g_assert_true (qlean_machine_kill (third, NULL, NULL));
  g_assert_true (qlean_machine_kill (later, NULL, NULL));
  g_assert_true (qlean_machine_kill (fallback, NULL, NULL));

  /* This shape's saved boots go, template or not. */
  remove_saved_boot (state);
  g_clear_pointer (&listing, g_dir_close);
  listing = g_dir_open (dir, 0, NULL);
  while (listing != NULL && (name = g_dir_read_name (listing)) != NULL)
    if (g_str_has_suffix (name, ".state") && !g_hash_table_contains (before, name))
      {
        g_autofree char *path = g_build_filename (dir, name, NULL);

        remove_saved_boot (path);
      }
}

/* The RAM file a machine's QEMU was given (mem-path=), or NULL. */
static char *
qemu_mem_path (QleanMachine *machine)
{
  g_autofree char *cmdline = test_qemu_cmdline (machine);
  const char *start = strstr (cmdline, "mem-path=");
  const char *end;

  if (start == NULL)
    return NULL;
  start += strlen ("mem-path=");
  end = strstr (start, ",share=");
  g_assert_nonnull (end);
  return g_strndup (start, end - start);
}

/* Whether @path is among the files mapped by @machine's QEMU. */
static gboolean
qemu_maps (QleanMachine *machine,
           const char   *path)
{
  g_autofree char *maps_path = g_strdup_printf ("/proc/%d/maps", (int) qlean_machine_get_pid (machine));
  g_autofree char *maps = NULL;

  g_assert_true (g_file_get_contents (maps_path, &maps, NULL, NULL));
  return strstr (maps, path) != NULL;
}

/* The template that @maker made as it started (its QEMU runs on the
 * template's work file, `<base>.ram.work-…`): returns @base, whose
 * `.ram` and `.tmpl` are there, the device state small and private. */
static char *
made_template_base (QleanMachine *maker)
{
  g_autofree char *work = qemu_mem_path (maker);
  g_autofree char *ram = NULL, *devices = NULL;
  char *base;
  GStatBuf st;

  g_assert_nonnull (work);
  g_assert_nonnull (strstr (work, ".ram.work-"));
  base = g_strndup (work, strstr (work, ".ram.work-") - work);
  ram = g_strconcat (base, ".ram", NULL);
  devices = g_strconcat (base, ".tmpl", NULL);
  g_assert_true (g_file_test (ram, G_FILE_TEST_IS_REGULAR));
  g_assert_cmpint (g_stat (devices, &st), ==, 0);
  g_test_message ("device state %" G_GINT64_FORMAT " bytes", (gint64) st.st_size);
  g_assert_cmpint (st.st_size, <, 8 * 1024 * 1024);
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);
  return base;
}

/* Clones of one snapshot, and restores of it, share its memory template:
 * the first makes it, the next map the same file privately; each writes
 * only to its own copy (the template's checksum does not change), has
 * its own name, and runs on the processes of the snapshot. A template
 * that is gone is said so in the log and made anew; deleting the
 * snapshot deletes it. Long: one story whose steps build on each other
 * (what the first clone makes, the others, the restore and the fallback
 * use), and each machine costs seconds to start. */
static void
test_snapshot_template (void)
{
  g_autoptr(QleanMachine) source = qlean_machine_new_with_name ("tsnap", NULL, NULL);
  g_autoptr(QleanMachine) maker = NULL, again = NULL;
  g_autoptr(GPtrArray) clones = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GError) error = NULL;
  g_autofree char *ram = NULL, *devices = NULL, *path = NULL;
  g_autofree char *sum = NULL, *sum_after = NULL, *out = NULL;

  if (!test_have_qemu ())
    return;

  g_assert_true (qlean_machine_spawn (source, NULL, &error));
  g_assert_no_error (error);
  g_free (test_run_text (source, "echo snap > /root/mark"));
  test_start_counter (source);
  g_assert_true (qlean_machine_snapshot (source, "base", NULL, &error));
  g_assert_no_error (error);

  /* The first clone makes the template, on a RAM file of its own. */
  maker = qlean_machine_clone_snapshot (source, "tmaker", "tmaker", NULL, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_assert_null (maker);
  g_clear_error (&error);
  maker = qlean_machine_clone_snapshot (source, "base", "tmaker", NULL, &error);
  g_assert_no_error (error);
  path = made_template_base (maker);
  g_assert_true (g_str_has_suffix (path, ".state"));
  ram = g_strconcat (path, ".ram", NULL);
  devices = g_strconcat (path, ".tmpl", NULL);
  sum = file_sha256 (ram);
  out = test_run_text (maker, "cat /root/mark; hostname");
  g_assert_cmpstr (out, ==, "snap\ntmaker");
  g_clear_pointer (&out, g_free);
  test_wait_counter_moves (maker);

  for (guint i = 0; i < 3; i++)
    {
      g_autofree char *name = g_strdup_printf ("tclone%u", i);
      QleanMachine *clone = qlean_machine_clone_snapshot (source, "base", name, NULL, &error);
      g_autofree char *mem = NULL;

      g_assert_no_error (error);
      g_ptr_array_add (clones, clone);
      mem = qemu_mem_path (clone);
      g_assert_cmpstr (mem, ==, ram);
      g_assert_true (qemu_maps (clone, ram));
      out = test_run_text (clone, "hostname");
      g_assert_cmpstr (out, ==, name);
      g_clear_pointer (&out, g_free);
      test_wait_counter_moves (clone);
    }
  {
    g_autofree char *cmdline = test_qemu_cmdline (g_ptr_array_index (clones, 0));

    g_assert_nonnull (strstr (cmdline, "share=off"));
  }

  /* Writes in one clone show in no other, nor in the template. */
  g_free (test_run_text (g_ptr_array_index (clones, 0),
                         "echo clone0 > /root/mark && "
                         "dd if=/dev/urandom of=/tmp/fill bs=1M count=16 2>/dev/null"));
  g_free (test_run_text (g_ptr_array_index (clones, 1),
                         "dd if=/dev/zero of=/tmp/fill bs=1M count=8 2>/dev/null"));
  out = test_run_text (g_ptr_array_index (clones, 0), "cat /root/mark");
  g_assert_cmpstr (out, ==, "clone0");
  g_clear_pointer (&out, g_free);
  for (guint i = 1; i < 3; i++)
    {
      out = test_run_text (g_ptr_array_index (clones, i), "cat /root/mark");
      g_assert_cmpstr (out, ==, "snap");
      g_clear_pointer (&out, g_free);
    }

  /* A restore maps it too, and runs on the snapshot's processes. */
  g_free (test_run_text (source, "echo after > /root/mark"));
  g_assert_true (qlean_machine_restore (source, "base", NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qemu_maps (source, ram));
  out = test_run_text (source, "cat /root/mark; hostname");
  g_assert_cmpstr (out, ==, "snap\ntsnap");
  g_clear_pointer (&out, g_free);
  test_wait_counter_moves (source);

  sum_after = file_sha256 (ram);
  g_assert_cmpstr (sum, ==, sum_after);

  /* Gone: the next clone says so, loads the whole snapshot and makes
   * the template anew. */
  g_assert_cmpint (g_unlink (ram), ==, 0);
  test_logged ("");
  again = qlean_machine_clone_snapshot (source, "base", "tagain", NULL, &error);
  g_assert_no_error (error);
  g_assert_true (test_logged ("*memory template of*unusable*"));
  out = test_run_text (again, "cat /root/mark; hostname");
  g_assert_cmpstr (out, ==, "snap\ntagain");
  g_clear_pointer (&out, g_free);
  g_assert_true (g_file_test (ram, G_FILE_TEST_IS_REGULAR));

  /* Restores make no template of their own (they map one made by clones). */
  {
    g_autofree char *snapshots = g_path_get_dirname (path);
    g_autofree char *undo = g_build_filename (snapshots, "undo.state", NULL);
    g_autofree char *undo_ram = g_strconcat (undo, ".ram", NULL);
    g_autofree char *mem = NULL;

    g_assert_true (qlean_machine_snapshot (source, "undo", NULL, &error));
    g_assert_no_error (error);
    g_assert_true (g_file_test (undo, G_FILE_TEST_IS_REGULAR));
    g_assert_true (qlean_machine_restore (source, "undo", NULL, &error));
    g_assert_no_error (error);
    g_assert_false (g_file_test (undo_ram, G_FILE_TEST_EXISTS));
    g_assert_true (qlean_machine_restore (source, "undo", NULL, &error));
    g_assert_no_error (error);
    g_assert_false (g_file_test (undo_ram, G_FILE_TEST_EXISTS));
    mem = qemu_mem_path (source);
    g_assert_null (mem);
    g_free (out);
    out = test_run_text (source, "cat /root/mark");
    g_assert_cmpstr (out, ==, "snap");
    g_clear_pointer (&out, g_free);
  }

  /* The running machines keep their mappings; the template goes with
   * its snapshot. */
  g_assert_true (qlean_machine_delete_snapshot (source, "base", &error));
  g_assert_no_error (error);
  g_assert_false (g_file_test (ram, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (devices, G_FILE_TEST_EXISTS));
  out = test_run_text (g_ptr_array_index (clones, 2), "cat /root/mark");
  g_assert_cmpstr (out, ==, "snap");

  for (guint i = 0; i < clones->len; i++)
    g_assert_true (qlean_machine_kill (g_ptr_array_index (clones, i), NULL, NULL));
  g_assert_true (qlean_machine_kill (maker, NULL, NULL));
  g_assert_true (qlean_machine_kill (again, NULL, NULL));
  g_assert_true (qlean_machine_kill (source, NULL, NULL));
}

/* Imports one at a time, each machine its own: imported from @archive
 * as @name, running. */
static QleanMachine *
import_running (GFile            *archive,
                const char       *name,
                QleanImportFlags  flags)
{
  g_autoptr(GError) error = NULL;
  QleanMachine *machine = qlean_machine_import_full (archive, name, NULL, flags, NULL, &error);

  g_assert_no_error (error);
  g_assert_nonnull (machine);
  g_assert_cmpint (qlean_machine_get_state (machine), ==, QLEAN_MACHINE_STATE_RUNNING);
  return machine;
}

/* The machines imported from one archive share a memory template of its
 * state, in the user's cache: the first import makes it, the next map
 * the same file privately, each writes only to its own copy (the
 * template's checksum does not change), has its own name and runs on
 * the exported processes. A template that is gone or unusable is said
 * so, the whole state loaded, and the template made anew; the
 * NO_MEMORY_TEMPLATE flag loads the whole state. */
static void
test_import_template (void)
{
  g_autoptr(QleanMachine) source = qlean_machine_new_with_name ("tisrc", NULL, NULL);
  g_autoptr(QleanMachine) maker = NULL, first = NULL, second = NULL, again = NULL, old = NULL;
  g_autofree char *path = g_build_filename (fixture_dir, "template.qlean", NULL);
  g_autoptr(GFile) archive = g_file_new_for_path (path);
  g_autoptr(GError) error = NULL;
  g_autofree char *ram = NULL, *base = NULL, *devices = NULL, *cache = NULL;
  g_autofree char *sum = NULL, *sum_after = NULL, *out = NULL, *mem = NULL, *cmdline = NULL;

  if (!test_have_qemu ())
    return;

  g_assert_true (qlean_machine_spawn (source, NULL, &error));
  g_assert_no_error (error);
  g_free (test_run_text (source, "echo exported > /root/mark"));
  test_start_counter (source);
  g_assert_true (qlean_machine_export (source, archive, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_machine_kill (source, NULL, &error));
  g_assert_no_error (error);

  /* The first import makes the template, in the cache, on a RAM file of
   * its own; nothing of it is in the machine's import directory. */
  maker = import_running (archive, "timaker", QLEAN_IMPORT_FLAGS_NONE);
  base = made_template_base (maker);
  cache = g_build_filename (g_get_user_cache_dir (), "qlean", "state-templates", "", NULL);
  g_assert_true (g_str_has_prefix (base, cache));
  ram = g_strconcat (base, ".ram", NULL);
  devices = g_strconcat (base, ".tmpl", NULL);
  sum = file_sha256 (ram);
  out = test_run_text (maker, "cat /root/mark; hostname");
  g_assert_cmpstr (out, ==, "exported\ntimaker");
  g_clear_pointer (&out, g_free);
  g_assert_true (qlean_machine_kill (maker, NULL, NULL));

  /* The next two map it, privately, and load only its devices. */
  first = import_running (archive, "tifirst", QLEAN_IMPORT_FLAGS_NONE);
  second = import_running (archive, "tisecond", QLEAN_IMPORT_FLAGS_NONE);
  mem = qemu_mem_path (first);
  g_assert_cmpstr (mem, ==, ram);
  g_clear_pointer (&mem, g_free);
  mem = qemu_mem_path (second);
  g_assert_cmpstr (mem, ==, ram);
  g_assert_true (qemu_maps (first, ram));
  g_assert_true (qemu_maps (second, ram));
  cmdline = test_qemu_cmdline (second);
  g_assert_nonnull (strstr (cmdline, "share=off"));
  test_wait_counter_moves (first);
  test_wait_counter_moves (second);

  /* Each its own: names, and what they write. */
  g_free (test_run_text (first, "echo first > /root/mark && "
                                "dd if=/dev/urandom of=/tmp/fill bs=1M count=16 2>/dev/null"));
  g_free (test_run_text (second, "dd if=/dev/zero of=/tmp/fill bs=1M count=8 2>/dev/null"));
  out = test_run_text (first, "cat /root/mark; hostname");
  g_assert_cmpstr (out, ==, "first\ntifirst");
  g_clear_pointer (&out, g_free);
  out = test_run_text (second, "cat /root/mark; hostname");
  g_assert_cmpstr (out, ==, "exported\ntisecond");
  g_clear_pointer (&out, g_free);
  sum_after = file_sha256 (ram);
  g_assert_cmpstr (sum, ==, sum_after);
  g_assert_true (qlean_machine_kill (second, NULL, NULL));

  /* Gone: the next import says so, loads the whole state and makes the
   * template anew; the machine that maps the old one runs on. */
  g_assert_cmpint (g_unlink (ram), ==, 0);
  test_logged ("");
  again = import_running (archive, "tiagain", QLEAN_IMPORT_FLAGS_NONE);
  g_assert_true (test_logged ("*memory template of*unusable*"));
  out = test_run_text (again, "cat /root/mark; hostname");
  g_assert_cmpstr (out, ==, "exported\ntiagain");
  g_clear_pointer (&out, g_free);
  g_assert_true (g_file_test (ram, G_FILE_TEST_IS_REGULAR));
  g_assert_true (g_file_test (devices, G_FILE_TEST_IS_REGULAR));
  out = test_run_text (first, "cat /root/mark");
  g_assert_cmpstr (out, ==, "first");
  g_clear_pointer (&out, g_free);
  g_assert_true (qlean_machine_kill (again, NULL, NULL));
  g_assert_true (qlean_machine_kill (first, NULL, NULL));

  /* Unusable (not the machine's size): the same. */
  g_assert_true (truncate (ram, 4096) == 0);
  test_logged ("");
  g_clear_object (&again);
  again = import_running (archive, "tiagain", QLEAN_IMPORT_FLAGS_NONE);
  g_assert_true (test_logged ("*memory template of*unusable*"));
  g_assert_cmpint (qlean_machine_get_pid (again), >, 0);
  test_wait_counter_moves (again);
  g_assert_true (qlean_machine_kill (again, NULL, NULL));

  /* Asked not to: the whole state, in the machine's own memory. */
  old = import_running (archive, "tiold", QLEAN_IMPORT_FLAGS_NO_MEMORY_TEMPLATE);
  g_clear_pointer (&mem, g_free);
  mem = qemu_mem_path (old);
  g_assert_null (mem);
  g_assert_false (qemu_maps (old, ram));
  g_assert_false (qlean_machine_config_get_memory_template (qlean_machine_get_config (old)));
  out = test_run_text (old, "cat /root/mark; hostname");
  g_assert_cmpstr (out, ==, "exported\ntiold");
  g_assert_true (qlean_machine_kill (old, NULL, NULL));

  {
    const char *suffixes[] = { ".tmpl", ".ram", ".tmpl.lock" };

    for (guint i = 0; i < G_N_ELEMENTS (suffixes); i++)
      {
        g_autofree char *file = g_strconcat (base, suffixes[i], NULL);

        g_unlink (file);
      }
  }
  g_unlink (path);
}

int
main (int    argc,
      char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  test_log_capture ();
  fixture_dir = g_dir_make_tmp ("qlean-templates-XXXXXX", NULL);
  g_assert_nonnull (fixture_dir);

  g_test_add_func ("/templates/saved-boots-pruned", test_saved_boots_pruned);
  g_test_add_func ("/templates/memory-template", test_memory_template);
  g_test_add_func ("/templates/snapshot-template", test_snapshot_template);
  g_test_add_func ("/templates/import-template", test_import_template);

  status = g_test_run ();

  g_rmdir (fixture_dir);
  g_free (fixture_dir);
  return status;
}
