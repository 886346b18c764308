/* bench-shares.c: shared host folders (virtio-9p, virtiofs) against uploads
 *
 * SPDX-License-Identifier: MIT
 *
 * A host folder holding a 64 MiB file and a tree of 1,000 small files
 * (4 KiB each, in 10 directories), shared read-only at /mnt/s with two
 * minimal machines at once: one over 9p, one over virtiofs. In the same
 * run, each measured --rounds times:
 *
 *   - reading them in the guest (cat to /dev/null), cold (the guest's
 *     caches dropped first: what a first read costs) and warm (read
 *     again at once), over 9p as Qlean mounts it, over 9p remounted
 *     with cache=mmap and with cache=loose, and over virtiofs;
 *   - qlean_machine_upload() of the same file and tree into the guest's
 *     tmpfs (what a test does without shares), removed after each round.
 *
 * Times are host wall clock around the call, so each includes one
 * command's round trip (a `true` is measured too, for scale). The
 * virtiofs rows are left out, saying why, where virtiofsd cannot run.
 *
 *   bench-shares [--rounds N]
 */

#include "config.h"

#include <stdio.h>
#include <string.h>

#include <qlean/qlean.h>

#include "bench-common.h"

#define BIG_MIB 64
#define TREE_DIRS 10
#define TREE_FILES 1000
#define SMALL_SIZE 4096

static int opt_rounds = 5;

static const GOptionEntry entries[] = {
  { "rounds", 0, 0, G_OPTION_ARG_INT, &opt_rounds, "Rounds of each measurement (default 5)", "N" },
  { NULL }
};

static void
make_data (const char *dir)
{
  g_autofree char *big = g_build_filename (dir, "big", NULL);
  g_autofree char *data = g_malloc (BIG_MIB * 1024 * 1024);
  g_autofree char *small = g_malloc (SMALL_SIZE);
  g_autoptr(GError) error = NULL;

  for (gsize i = 0; i < (gsize) BIG_MIB * 1024 * 1024; i++)
    data[i] = (char) (i * 7 + (i >> 13));
  if (!g_file_set_contents (big, data, (gssize) BIG_MIB * 1024 * 1024, &error))
    g_error ("%s", error->message);
  memset (small, 'x', SMALL_SIZE);
  for (guint d = 0; d < TREE_DIRS; d++)
    {
      g_autofree char *sub = g_strdup_printf ("%s/tree/d%02u", dir, d);

      g_mkdir_with_parents (sub, 0755);
      for (guint f = 0; f < TREE_FILES / TREE_DIRS; f++)
        {
          g_autofree char *path = g_strdup_printf ("%s/f%03u", sub, f);

          if (!g_file_set_contents (path, small, SMALL_SIZE, &error))
            g_error ("%s", error->message);
        }
    }
}

static double
timed_exec (QleanMachine *machine,
            const char   *command)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanExecResult) result = NULL;
  double start = bench_now ();

  result = qlean_machine_exec (machine, command, NULL, &error);
  if (result == NULL)
    g_error ("%s: %s", command, error->message);
  if (!qlean_exec_result_success (result))
    g_error ("%s failed: %.*s", command, (int) g_bytes_get_size (qlean_exec_result_get_stderr (result)),
             (const char *) g_bytes_get_data (qlean_exec_result_get_stderr (result), NULL));
  return bench_now () - start;
}

static double
timed_upload (QleanMachine *machine,
              const char   *host_path,
              const char   *guest_path)
{
  g_autoptr(GFile) file = g_file_new_for_path (host_path);
  g_autoptr(GError) error = NULL;
  double start = bench_now ();

  if (!qlean_machine_upload (machine, file, guest_path, NULL, &error))
    g_error ("upload %s: %s", host_path, error->message);
  return bench_now () - start;
}

static void
report (const char *what,
        GArray     *seconds,
        double      mib)
{
  double median = bench_percentile (seconds, 0.5);

  if (mib > 0)
    g_print ("| %-44s | %8.1f ms | %7.1f MB/s |\n", what, median * 1000,
             mib * 1024 * 1024 / 1e6 / median);
  else
    g_print ("| %-44s | %8.1f ms | %12s |\n", what, median * 1000, "");
}

/* Starts a machine sharing @dir read-only at /mnt/s over @kind; NULL,
 * saying why, when it cannot. */
static QleanMachine *
start_machine (const char     *name,
               const char     *dir,
               QleanShareKind  kind)
{
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GError) error = NULL;
  double start;

  if (!qlean_machine_config_add_share (config, dir, "/mnt/s", TRUE, &error))
    g_error ("%s", error->message);
  qlean_machine_config_set_share_kind (config, kind);
  /* Room for the uploads in the guest's tmpfs. */
  qlean_machine_config_set_memory_mib (config, 512);
  machine = qlean_machine_new_with_name (name, NULL, config);
  start = bench_now ();
  if (!qlean_machine_spawn (machine, NULL, &error))
    {
      g_print ("no %s machine: %s\n", name, error->message);
      return NULL;
    }
  g_print ("%s machine ready in %.2f s\n", name, bench_now () - start);
  return g_steal_pointer (&machine);
}

/* One way of reading the share: a machine, and the 9p mount options
 * it is remounted with first (NULL: as Qlean mounted it). */
typedef struct
{
  const char   *label;
  QleanMachine *machine;
  const char   *mount_options;
  GArray       *times[4];  /* big cold, big warm, tree cold, tree warm */
} ReadMode;

static const char drop_caches[] = "sync; echo 3 > /proc/sys/vm/drop_caches";

static void
measure_reads (ReadMode *mode)
{
  const char *reads[] = { "cat /mnt/s/big > /dev/null", "cat /mnt/s/tree/*/* > /dev/null" };

  if (mode->mount_options != NULL)
    {
      g_autofree char *remount = g_strdup_printf ("umount /mnt/s && mount -t 9p -o %s qlean0 /mnt/s",
                                                  mode->mount_options);

      timed_exec (mode->machine, remount);
    }
  for (guint i = 0; i < G_N_ELEMENTS (mode->times); i++)
    mode->times[i] = g_array_new (FALSE, FALSE, sizeof (double));

  /* One round first, unmeasured: the guest's and QEMU's first runs of
   * each path cost TCG translations. */
  for (int round = -1; round < opt_rounds; round++)
    for (guint r = 0; r < G_N_ELEMENTS (reads); r++)
      {
        double cold, warm;

        timed_exec (mode->machine, drop_caches);
        cold = timed_exec (mode->machine, reads[r]);
        warm = timed_exec (mode->machine, reads[r]);
        if (round >= 0)
          {
            g_array_append_val (mode->times[2 * r], cold);
            g_array_append_val (mode->times[2 * r + 1], warm);
          }
      }
}

static void
report_reads (const ReadMode *mode)
{
  const double tree_mib = TREE_FILES * (double) SMALL_SIZE / (1024 * 1024);
  const char *what[] = { "64 MiB file, cold", "64 MiB file, warm",
                         "1,000 x 4 KiB, cold", "1,000 x 4 KiB, warm" };

  for (guint i = 0; i < G_N_ELEMENTS (mode->times); i++)
    {
      g_autofree char *label = g_strdup_printf ("%s: %s", mode->label, what[i]);

      report (label, mode->times[i], i < 2 ? BIG_MIB : tree_mib);
      g_array_unref (mode->times[i]);
    }
}

int
main (int argc, char **argv)
{
  g_autoptr(GOptionContext) context = g_option_context_new ("- shared folders against uploads");
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanMachine) nine = NULL;
  g_autoptr(QleanMachine) vfs = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *big = NULL;
  g_autofree char *tree = NULL;
  g_autofree char *rm = NULL;
  const char *opts = "trans=virtio,version=9p2000.L,msize=512000,ro";
  g_autofree char *mmap_opts = g_strconcat (opts, ",cache=mmap", NULL);
  g_autofree char *loose_opts = g_strconcat (opts, ",cache=loose", NULL);
  ReadMode modes[4] = {
    { "9p, no cache (Qlean's mount)", NULL, NULL, { NULL } },
    { "9p, cache=mmap", NULL, mmap_opts, { NULL } },
    { "9p, cache=loose", NULL, loose_opts, { NULL } },
    { "virtiofs, cache=auto", NULL, NULL, { NULL } },
  };
  GArray *trips[2];
  GArray *uploads[2];

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error) || opt_rounds < 1)
    {
      g_printerr ("bench-shares: %s\n", error ? error->message : "--rounds must be positive");
      return 2;
    }

  dir = g_dir_make_tmp ("qlean-bench-shares-XXXXXX", &error);
  g_assert_no_error (error);
  make_data (dir);
  big = g_build_filename (dir, "big", NULL);
  tree = g_build_filename (dir, "tree", NULL);

  nine = start_machine ("bench-shares-9p", dir, QLEAN_SHARE_KIND_9P);
  if (nine == NULL)
    return 1;
  vfs = start_machine ("bench-shares-virtiofs", dir, QLEAN_SHARE_KIND_VIRTIOFS);
  g_print ("\n");

  /* The 9p modes remount the same machine, Qlean's own mount first. */
  for (guint i = 0; i < 3; i++)
    modes[i].machine = nine;
  modes[3].machine = vfs;
  for (guint i = 0; i < G_N_ELEMENTS (modes); i++)
    if (modes[i].machine != NULL)
      measure_reads (&modes[i]);

  for (guint i = 0; i < 2; i++)
    {
      trips[i] = g_array_new (FALSE, FALSE, sizeof (double));
      uploads[i] = g_array_new (FALSE, FALSE, sizeof (double));
    }
  for (int round = -1; round < opt_rounds; round++)
    {
      double t[3];

      t[0] = timed_exec (nine, "true");
      t[1] = timed_upload (nine, big, "/tmp/big");
      t[2] = timed_upload (nine, tree, "/tmp/tree");
      timed_exec (nine, "rm -rf /tmp/big /tmp/tree");
      if (round >= 0)
        {
          g_array_append_val (trips[0], t[0]);
          g_array_append_val (uploads[0], t[1]);
          g_array_append_val (uploads[1], t[2]);
        }
    }

  g_print ("| what (median of %d) | time | rate |\n|---|---|---|\n", opt_rounds);
  report ("`true` (one round trip)", trips[0], 0);
  for (guint i = 0; i < G_N_ELEMENTS (modes); i++)
    if (modes[i].machine != NULL)
      report_reads (&modes[i]);
  report ("upload: 64 MiB file", uploads[0], BIG_MIB);
  report ("upload: 1,000 x 4 KiB (directory)", uploads[1],
          TREE_FILES * (double) SMALL_SIZE / (1024 * 1024));

  qlean_machine_kill (nine, NULL, NULL);
  if (vfs != NULL)
    qlean_machine_kill (vfs, NULL, NULL);
  for (guint i = 0; i < 2; i++)
    {
      g_array_unref (trips[i]);
      g_array_unref (uploads[i]);
    }
  rm = g_strdup_printf ("rm -rf '%s'", dir);
  g_spawn_command_line_sync (rm, NULL, NULL, NULL, NULL);

  return 0;
}
