/* bench-boot.c: cold start to first exec, and exec round trip, for the
 * host's architecture and aarch64 beside it
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <stdlib.h>

#include <qlean/qlean.h>

#include "bench-common.h"

static void
run_or_die (QleanMachine *machine,
            const char   *command)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanExecResult) result = qlean_machine_exec (machine, command, NULL, &error);

  if (result == NULL || !qlean_exec_result_success (result))
    g_error ("exec %s failed: %s", command, error ? error->message : "non-zero exit");
}

/* QEMU start to the first command's result, appended to @times. */
static void
measure_start (QleanImage *image,
               gboolean    fast_start,
               GArray     *times)
{
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(QleanMachine) m = NULL;
  g_autoptr(GError) error = NULL;
  gint64 start;
  double seconds;

  qlean_machine_config_set_fast_start (config, fast_start);
  m = qlean_machine_new (image, config);
  start = g_get_monotonic_time ();
  if (!qlean_machine_spawn (m, NULL, &error))
    g_error ("%s", error->message);
  run_or_die (m, "true");
  seconds = (g_get_monotonic_time () - start) / 1e6;
  g_array_append_val (times, seconds);
  qlean_machine_kill (m, NULL, NULL);
}

static void
print_starts (const char *what,
              GArray     *times)
{
  /* Sorts @times too, for the minimum and maximum. */
  double median = bench_percentile (times, 0.5);

  g_print ("%s (median of %u): %.2f s (min %.2f, max %.2f)\n", what, times->len, median,
           g_array_index (times, double, 0), g_array_index (times, double, times->len - 1));
}

/* One guest architecture's minimal image and what was measured of it. */
typedef struct
{
  QleanArch   arch;
  QleanImage *image;
  GArray     *cold;
  GArray     *fast;
  GArray     *exec;
} Row;

static void
row_clear (Row *row)
{
  g_clear_object (&row->image);
  g_clear_pointer (&row->cold, g_array_unref);
  g_clear_pointer (&row->fast, g_array_unref);
  g_clear_pointer (&row->exec, g_array_unref);
}

static void
measure_execs (Row *row,
               int  execs)
{
  g_autoptr(QleanMachine) machine = qlean_machine_new (row->image, NULL);
  g_autoptr(GError) error = NULL;

  if (!qlean_machine_spawn (machine, NULL, &error))
    g_error ("%s", error->message);
  for (int i = 0; i < 10; i++)
    run_or_die (machine, "true");

  for (int i = 0; i < execs; i++)
    {
      gint64 start = g_get_monotonic_time ();
      double ms;

      run_or_die (machine, "true");
      ms = (g_get_monotonic_time () - start) / 1e3;
      g_array_append_val (row->exec, ms);
    }

  qlean_machine_shutdown (machine, NULL, NULL);
}

/* The host's architecture, and aarch64 beside it when this host can run
 * it (qemu-system-aarch64 and the arm64 sysroot of tools/setup.sh deps),
 * each start of one followed by the same start of the other, so that
 * what else the host does weighs on both alike. */
int
main (int    argc,
      char **argv)
{
  int boots = argc > 1 ? atoi (argv[1]) : 5;
  int execs = argc > 2 ? atoi (argv[2]) : 200;
  const QleanArch wanted[] = { qlean_arch_get_host (), QLEAN_ARCH_AARCH64 };
  Row rows[G_N_ELEMENTS (wanted)];
  guint n_rows = 0;

  for (guint i = 0; i < G_N_ELEMENTS (wanted); i++)
    {
      g_autoptr(QleanImage) image = qlean_image_new_minimal_for_arch (wanted[i]);
      g_autoptr(GError) error = NULL;

      if (i > 0 && wanted[i] == wanted[0])
        continue;
      /* Build (or find) the image first: a one-time cost, not a boot's. */
      if (!qlean_image_prepare (image, NULL, &error))
        {
          if (i == 0)
            g_error ("%s", error->message);
          g_print ("%s: not measured: %s\n", qlean_arch_to_string (wanted[i]), error->message);
          continue;
        }
      rows[n_rows++] = (Row) {
        .arch = wanted[i],
        .image = g_steal_pointer (&image),
        .cold = g_array_new (FALSE, FALSE, sizeof (double)),
        .fast = g_array_new (FALSE, FALSE, sizeof (double)),
        .exec = g_array_new (FALSE, FALSE, sizeof (double)),
      };
    }

  for (int b = 0; b < boots; b++)
    for (guint r = 0; r < n_rows; r++)
      measure_start (rows[r].image, FALSE, rows[r].cold);
  /* One start each to make sure the saved boot exists, then the
   * measured ones. */
  for (guint r = 0; r < n_rows; r++)
    {
      g_autoptr(GArray) warm = g_array_new (FALSE, FALSE, sizeof (double));

      measure_start (rows[r].image, TRUE, warm);
    }
  for (int b = 0; b < boots; b++)
    for (guint r = 0; r < n_rows; r++)
      measure_start (rows[r].image, TRUE, rows[r].fast);
  for (guint r = 0; r < n_rows; r++)
    measure_execs (&rows[r], execs);

  for (guint r = 0; r < n_rows; r++)
    {
      const char *name = qlean_arch_to_string (rows[r].arch);
      g_autofree char *cold = g_strdup_printf ("%s: cold boot -> first exec done (minimal image, kernel boots)", name);
      g_autofree char *fast = g_strdup_printf ("%s: fast start -> first exec done (minimal image, saved boot)", name);

      print_starts (cold, rows[r].cold);
      print_starts (fast, rows[r].fast);
      g_print ("%s: exec round trip of `true` (%d runs): median %.2f ms, p99 %.2f ms\n",
               name, execs, bench_percentile (rows[r].exec, 0.5), bench_percentile (rows[r].exec, 0.99));
    }
  if (n_rows == 2)
    g_print ("%s / %s, medians: cold %.2fx, fast start %.2fx, exec %.2fx\n",
             qlean_arch_to_string (rows[1].arch), qlean_arch_to_string (rows[0].arch),
             bench_percentile (rows[1].cold, 0.5) / bench_percentile (rows[0].cold, 0.5),
             bench_percentile (rows[1].fast, 0.5) / bench_percentile (rows[0].fast, 0.5),
             bench_percentile (rows[1].exec, 0.5) / bench_percentile (rows[0].exec, 0.5));

  for (guint r = 0; r < n_rows; r++)
    row_clear (&rows[r]);
  return 0;
}
