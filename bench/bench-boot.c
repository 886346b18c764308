/* bench-boot.c: cold start to first exec, and exec round trip
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

/* QEMU start to the first command's result, median of @boots runs. */
static GArray *
measure_starts (QleanImage *image,
                gboolean    fast_start,
                int         boots)
{
  GArray *times = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(GError) error = NULL;

  qlean_machine_config_set_fast_start (config, fast_start);
  for (int i = 0; i < boots; i++)
    {
      g_autoptr(QleanMachine) m = qlean_machine_new (image, config);
      gint64 start = g_get_monotonic_time ();
      double seconds;

      if (!qlean_machine_spawn (m, NULL, &error))
        g_error ("%s", error->message);
      run_or_die (m, "true");
      seconds = (g_get_monotonic_time () - start) / 1e6;
      g_array_append_val (times, seconds);
      qlean_machine_kill (m, NULL, NULL);
    }

  return times;
}

static void
print_starts (const char *what,
              GArray     *times)
{
  double median = bench_percentile (times, 0.5);

  g_print ("%s (median of %u): %.2f s (min %.2f, max %.2f)\n", what, times->len, median,
           g_array_index (times, double, 0), g_array_index (times, double, times->len - 1));
}

int
main (int    argc,
      char **argv)
{
  int boots = argc > 1 ? atoi (argv[1]) : 5;
  int execs = argc > 2 ? atoi (argv[2]) : 200;
  g_autoptr(GArray) cold = NULL;
  g_autoptr(GArray) fast = NULL;
  g_autoptr(GArray) exec_times = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(QleanImage) image = qlean_image_new_minimal ();
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanMachine) machine = NULL;

  /* Build (or find) the image first: a one-time cost, not a boot's. */
  if (!qlean_image_prepare (image, NULL, &error))
    g_error ("%s", error->message);

  cold = measure_starts (image, FALSE, boots);
  /* One start to make sure the saved boot exists, then the measured ones. */
  g_array_unref (measure_starts (image, TRUE, 1));
  fast = measure_starts (image, TRUE, boots);

  machine = qlean_machine_new (image, NULL);
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
      g_array_append_val (exec_times, ms);
    }

  print_starts ("cold boot -> first exec done (minimal image, kernel boots)", cold);
  print_starts ("fast start -> first exec done (minimal image, saved boot)", fast);
  g_print ("exec round trip of `true` (%d runs): median %.2f ms, p99 %.2f ms\n",
           execs, bench_percentile (exec_times, 0.5), bench_percentile (exec_times, 0.99));

  qlean_machine_shutdown (machine, NULL, NULL);
  return 0;
}
