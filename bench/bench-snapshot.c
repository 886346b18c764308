/* bench-snapshot.c: restore → first exec, and pools of four from a golden
 * snapshot against four cold boots, in the same run
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <glib/gstdio.h>

#include <qlean/qlean.h>

#include "bench-common.h"

static int opt_restores = 5;
static int opt_pool = 4;
static int opt_repeat = 1;

static const GOptionEntry entries[] = {
  { "restores", 'r', 0, G_OPTION_ARG_INT, &opt_restores, "Restores to time (default 5); the median is shown", "N" },
  { "pool", 'n', 0, G_OPTION_ARG_INT, &opt_pool, "Machines per pool (default 4)", "N" },
  { "repeat", 0, 0, G_OPTION_ARG_INT, &opt_repeat, "Runs of each pool; the median is shown (default 1)", "N" },
  { NULL }
};

static char *
list_times (GArray *times)
{
  GString *text = g_string_new (NULL);

  for (guint i = 0; i < times->len; i++)
    g_string_append_printf (text, "%s%.3f", i ? " " : "", g_array_index (times, double, i));
  return g_string_free (text, FALSE);
}

static void
exec_true (QleanMachine *machine)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanExecResult) result = qlean_machine_exec (machine, "true", NULL, &error);

  if (result == NULL)
    g_error ("exec: %s", error->message);
}

/* One machine: snapshot once, then restore → first exec, N times;
 * clone, export and import once each for scale. */
static void
bench_restore (QleanImage         *image,
               QleanMachineConfig *config)
{
  g_autoptr(QleanMachine) machine = qlean_machine_new_with_name ("bench-snap", image, config);
  g_autoptr(GArray) restores = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GArray) restore_only = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("qlean-bench-XXXXXX", NULL);
  g_autofree char *archive_path = g_build_filename (dir, "bench.qlean", NULL);
  g_autoptr(GFile) archive = g_file_new_for_path (archive_path);
  g_autofree char *all = NULL, *all_restore = NULL;
  double t0, t1, t2, snapshot_s, clone_s, export_s, import_s;
  GStatBuf st;

  if (!qlean_machine_spawn (machine, NULL, &error))
    g_error ("spawn: %s", error->message);
  exec_true (machine);

  t0 = bench_now ();
  if (!qlean_machine_snapshot (machine, "bench", NULL, &error))
    g_error ("snapshot: %s", error->message);
  snapshot_s = bench_now () - t0;

  for (int i = 0; i < MAX (opt_restores, 1); i++)
    {
      double restored, first_exec;

      t0 = bench_now ();
      if (!qlean_machine_restore (machine, "bench", NULL, &error))
        g_error ("restore: %s", error->message);
      t1 = bench_now ();
      exec_true (machine);
      t2 = bench_now ();
      restored = t1 - t0;
      first_exec = t2 - t0;
      g_array_append_val (restore_only, restored);
      g_array_append_val (restores, first_exec);
    }

  {
    g_autoptr(QleanMachine) clone = NULL;

    t0 = bench_now ();
    clone = qlean_machine_clone (machine, "bench-clone", NULL, &error);
    if (clone == NULL)
      g_error ("clone: %s", error->message);
    exec_true (clone);
    clone_s = bench_now () - t0;
    qlean_machine_kill (clone, NULL, NULL);
  }

  t0 = bench_now ();
  if (!qlean_machine_export (machine, archive, NULL, &error))
    g_error ("export: %s", error->message);
  export_s = bench_now () - t0;
  qlean_machine_kill (machine, NULL, NULL);
  g_stat (archive_path, &st);

  {
    g_autoptr(QleanMachine) imported = NULL;

    t0 = bench_now ();
    imported = qlean_machine_import (archive, "bench-import", NULL, NULL, &error);
    if (imported == NULL)
      g_error ("import: %s", error->message);
    exec_true (imported);
    import_s = bench_now () - t0;
    qlean_machine_kill (imported, NULL, NULL);
  }
  g_unlink (archive_path);
  g_rmdir (dir);

  all = list_times (restores);
  all_restore = list_times (restore_only);
  g_print ("snapshot (guest stopped, state written)   %6.3f s\n", snapshot_s);
  g_print ("restore -> first exec, median of %d       %6.3f s   (%s)\n",
           restores->len, bench_percentile (restores, 0.5), all);
  g_print ("  of which restore (agent answers again)  %6.3f s   (%s)\n",
           bench_percentile (restore_only, 0.5), all_restore);
  g_print ("clone of a running machine -> first exec %6.3f s\n", clone_s);
  g_print ("export of a running machine              %6.3f s   (%.1f MiB)\n", export_s, st.st_size / 1048576.0);
  g_print ("import -> first exec                     %6.3f s\n", import_s);
}

/* A pool of @n, all ready (spawn_all) and answering a first exec. */
static double
run_pool (QleanImage         *image,
          QleanMachineConfig *config,
          gboolean            golden,
          guint               n)
{
  g_autoptr(QleanPool) pool = qlean_pool_new ();
  g_autoptr(GError) error = NULL;
  double start, seconds;

  qlean_pool_set_golden (pool, golden);
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *name = g_strdup_printf ("p%u", i);

      if (!qlean_pool_add (pool, name, image, config, &error))
        g_error ("%s", error->message);
    }

  start = bench_now ();
  if (!qlean_pool_spawn_all (pool, NULL, &error))
    g_error ("spawn_all: %s", error->message);
  for (guint i = 0; i < n; i++)
    {
      g_autoptr(QleanMachine) machine = g_list_model_get_item (G_LIST_MODEL (pool), i);

      exec_true (machine);
    }
  seconds = bench_now () - start;

  if (!qlean_pool_shutdown_all (pool, NULL, &error))
    g_error ("shutdown_all: %s", error->message);

  return seconds;
}

static double
pool_median (QleanImage         *image,
             QleanMachineConfig *config,
             gboolean            golden)
{
  g_autoptr(GArray) times = g_array_new (FALSE, FALSE, sizeof (double));

  for (int r = 0; r < MAX (opt_repeat, 1); r++)
    {
      double seconds = run_pool (image, config, golden, opt_pool);

      g_array_append_val (times, seconds);
    }

  return bench_percentile (times, 0.5);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GOptionContext) context = g_option_context_new ("- time restores and golden-snapshot pools");
  g_autoptr(QleanImage) image = qlean_image_new_minimal ();
  g_autoptr(QleanMachineConfig) cold = qlean_machine_config_new ();
  g_autoptr(QleanMachineConfig) fast = qlean_machine_config_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *loadavg = NULL;
  double cold_s, golden_s, fast_s;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    g_error ("%s", error->message);

  /* Build (or find) the image first: a one-time cost, not a boot's. */
  if (!qlean_image_prepare (image, NULL, &error))
    g_error ("%s", error->message);
  /* Cold means booted: no cached boot state (fast start). The golden
   * pool gets the same configuration, so its first machine boots too. */
  qlean_machine_config_set_fast_start (cold, FALSE);

  g_file_get_contents ("/proc/loadavg", &loadavg, NULL, NULL);
  g_print ("minimal image, %u host CPUs, KVM %s, load average before: %s",
           g_get_num_processors (), g_file_test ("/dev/kvm", G_FILE_TEST_EXISTS) ? "present" : "absent",
           loadavg ? loadavg : "?\n");

  bench_restore (image, cold);

  g_print ("\npools of %d, ready and answering a first exec (median of %d):\n", opt_pool, MAX (opt_repeat, 1));
  cold_s = pool_median (image, cold, FALSE);
  g_print ("  %d cold boots                           %6.2f s\n", opt_pool, cold_s);
  golden_s = pool_median (image, cold, TRUE);
  g_print ("  golden snapshot (1 boot + %d restores)   %6.2f s   %.1fx faster\n",
           opt_pool - 1, golden_s, cold_s / golden_s);
  fast_s = pool_median (image, fast, FALSE);
  g_print ("  fast start (cached boot state, default) %6.2f s   %.1fx faster\n", fast_s, cold_s / fast_s);
  golden_s = pool_median (image, fast, TRUE);
  g_print ("  golden snapshot, first from the cache   %6.2f s   %.1fx faster\n", golden_s, cold_s / golden_s);

  return 0;
}
