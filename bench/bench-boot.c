/* bench-boot.c: cold start to first exec, and exec round trip
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <stdlib.h>

#include <qlean/qlean.h>

static int
compare_doubles (const void *a,
                 const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return (x > y) - (x < y);
}

static double
percentile (GArray *values,
            double  p)
{
  guint index;

  qsort (values->data, values->len, sizeof (double), compare_doubles);
  index = (guint) (p * (values->len - 1) + 0.5);
  return g_array_index (values, double, index);
}

static void
run_or_die (QleanMachine *machine,
            const char   *command)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanExecResult) result = qlean_machine_exec (machine, command, NULL, &error);

  if (result == NULL || !qlean_exec_result_success (result))
    g_error ("exec %s failed: %s", command, error ? error->message : "non-zero exit");
}

int
main (int    argc,
      char **argv)
{
  int boots = argc > 1 ? atoi (argv[1]) : 5;
  int execs = argc > 2 ? atoi (argv[2]) : 200;
  g_autoptr(GArray) boot_times = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GArray) exec_times = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(QleanImage) image = qlean_image_new_minimal ();
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanMachine) machine = NULL;

  /* Build (or find) the image first: a one-time cost, not a boot's. */
  if (!qlean_image_prepare (image, NULL, &error))
    g_error ("%s", error->message);

  for (int i = 0; i < boots; i++)
    {
      g_autoptr(QleanMachine) m = qlean_machine_new (image, NULL);
      gint64 start = g_get_monotonic_time ();
      double seconds;

      if (!qlean_machine_spawn (m, NULL, &error))
        g_error ("%s", error->message);
      run_or_die (m, "true");
      seconds = (g_get_monotonic_time () - start) / 1e6;
      g_array_append_val (boot_times, seconds);
      qlean_machine_kill (m, NULL, NULL);
    }

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

  {
    double median = percentile (boot_times, 0.5);

    g_print ("cold start -> first exec done (minimal image, median of %d): %.2f s (min %.2f, max %.2f)\n",
             boots, median,
             g_array_index (boot_times, double, 0),
             g_array_index (boot_times, double, boot_times->len - 1));
  }
  g_print ("exec round trip of `true` (%d runs): median %.2f ms, p99 %.2f ms\n",
           execs, percentile (exec_times, 0.5), percentile (exec_times, 0.99));

  qlean_machine_shutdown (machine, NULL, NULL);
  return 0;
}
