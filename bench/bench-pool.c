/* bench-pool.c: time for pools of minimal machines to be ready, and
 * QEMU's memory per machine; with --templates, fast starts without and
 * with a shared memory template (QleanMachineConfig:memory-template) in
 * the same run; with --spares, plain machines that take warmed spares
 * (QleanMachineConfig:spares) made ready before each run
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <qlean/qlean.h>

#include "bench-common.h"

static int opt_memory = 0;
static int opt_repeat = 1;
static gboolean opt_no_network = FALSE;
static gboolean opt_templates = FALSE;
static gboolean opt_spares = FALSE;

static const GOptionEntry entries[] = {
  { "memory", 'm', 0, G_OPTION_ARG_INT, &opt_memory, "Guest memory in MiB (default: the image's)", "MIB" },
  { "repeat", 'r', 0, G_OPTION_ARG_INT, &opt_repeat, "Runs per pool size; the median is shown (default 1)", "N" },
  { "no-network", 0, 0, G_OPTION_ARG_NONE, &opt_no_network, "Plain machines started together, no pool network, for comparison", NULL },
  { "templates", 't', 0, G_OPTION_ARG_NONE, &opt_templates, "Each size twice: fast starts without, then with, a shared memory template", NULL },
  { "spares", 's', 0, G_OPTION_ARG_NONE, &opt_spares, "Each size twice, from the template, then taking as many warmed spares (made ready before, not timed; a pool's machines get their network card as they take one)", NULL },
  { NULL }
};

static guint64
rss_kib (GPid pid)
{
  return bench_proc_kib (pid, "status", "VmRSS");
}

typedef struct
{
  double  seconds;
  guint64 rss_min, rss_max, rss_sum;    /* KiB, QEMU only */
  guint64 anon_sum, pss_sum;
  guint64 dirty_sum;                    /* Private_Dirty, KiB */
  gint64  available_drop;               /* MemAvailable, KiB, before - after */
  double  exec_seconds;                 /* start until all ran a command */
  guint64 switch_rss;
  double  qemu_cpu;                     /* seconds, all machines at ready */
  double  qemu_cpu_own;                 /* seconds, each machine at its own ready */
  double  host_cpu;                     /* seconds, this process meanwhile */
} Run;

static void
note_rss (Run  *run,
          GPid  pid)
{
  guint64 rss = rss_kib (pid);

  run->rss_min = run->rss_min ? MIN (run->rss_min, rss) : rss;
  run->rss_max = MAX (run->rss_max, rss);
  run->rss_sum += rss;
  /* VmRSS counts the kernel and initramfs pages QEMU maps from the page
   * cache, which all machines share; these say what one really costs. */
  run->anon_sum += bench_proc_kib (pid, "status", "RssAnon");
  run->pss_sum += bench_proc_kib (pid, "smaps_rollup", "Pss");
  run->dirty_sum += bench_proc_kib (pid, "smaps_rollup", "Private_Dirty");
}

/* Each machine runs `true`, one after the other. */
static void
run_command (QleanMachine *machine)
{
  g_autoptr(QleanExecResult) result = NULL;
  g_autoptr(GError) error = NULL;

  result = qlean_machine_exec (machine, "true", NULL, &error);
  if (result == NULL)
    g_error ("%s", error->message);
}

/* This process's CPU time so far (the library's threads included). */
static double
self_cpu_seconds (void)
{
  return bench_proc_cpu_seconds (getpid ());
}

/* The CPU each QEMU this process started (by pid) used until now: the
 * spares, made ready before the clock starts, whose CPU until then each
 * run subtracts from the machine that takes one. */
static GHashTable *
spares_cpu (QleanMachineConfig *config)
{
  GHashTable *spare_cpu = g_hash_table_new_full (NULL, NULL, NULL, g_free);
  g_autoptr(GArray) pids = NULL;

  if (qlean_machine_config_get_spares (config) == 0)
    return spare_cpu;
  g_usleep (200 * 1000);
  pids = bench_qemu_children ();
  for (guint i = 0; i < pids->len; i++)
    {
      GPid pid = g_array_index (pids, GPid, i);

      g_hash_table_insert (spare_cpu, GINT_TO_POINTER (pid),
                           g_memdup2 (&(double) { bench_proc_cpu_seconds (pid) }, sizeof (double)));
    }

  return spare_cpu;
}

/* The CPU @machine's QEMU used, less what it used as a spare. */
static double
qemu_cpu_since (QleanMachine *machine,
                GHashTable   *spare_cpu)
{
  GPid pid = qlean_machine_get_pid (machine);
  double *before = g_hash_table_lookup (spare_cpu, GINT_TO_POINTER (pid));

  return bench_proc_cpu_seconds (pid) - (before ? *before : 0);
}

/* The CPU each machine's QEMU had used when it became ready. spawn_all
 * returns when the last one is: read then, the machines ready earlier
 * count what they did while waiting for the others (their guests' idle
 * work and the competition for two cores). A thread looks every 2 ms. */
typedef struct
{
  GPtrArray  *machines;
  GHashTable *spare_cpu;
  double     *at_ready;    /* per machine; < 0 until it is ready */
  gint        stop;
} ReadyWatch;

static gpointer
ready_watch_thread (gpointer user_data)
{
  ReadyWatch *watch = user_data;

  while (!g_atomic_int_get (&watch->stop))
    {
      for (guint i = 0; i < watch->machines->len; i++)
        {
          QleanMachine *machine = g_ptr_array_index (watch->machines, i);

          if (watch->at_ready[i] < 0 &&
              qlean_machine_get_state (machine) == QLEAN_MACHINE_STATE_RUNNING)
            watch->at_ready[i] = qemu_cpu_since (machine, watch->spare_cpu);
        }
      g_usleep (2000);
    }
  return NULL;
}

static GThread *
ready_watch_start (ReadyWatch *watch,
                   GPtrArray  *machines,
                   GHashTable *spare_cpu)
{
  watch->machines = machines;
  watch->spare_cpu = spare_cpu;
  watch->at_ready = g_new (double, machines->len);
  for (guint i = 0; i < machines->len; i++)
    watch->at_ready[i] = -1;
  watch->stop = 0;
  return g_thread_new ("ready-watch", ready_watch_thread, watch);
}

/* The sum over the machines; one not seen ready counts as read now. */
static double
ready_watch_finish (ReadyWatch *watch,
                    GThread    *thread)
{
  double sum = 0;

  g_atomic_int_set (&watch->stop, 1);
  g_thread_join (thread);
  for (guint i = 0; i < watch->machines->len; i++)
    sum += watch->at_ready[i] >= 0 ? watch->at_ready[i]
                                   : qemu_cpu_since (g_ptr_array_index (watch->machines, i),
                                                     watch->spare_cpu);
  g_free (watch->at_ready);
  return sum;
}

static Run
run_pool (QleanImage         *image,
          QleanMachineConfig *config,
          guint               n)
{
  g_autoptr(QleanPool) pool = qlean_pool_new ();
  g_autoptr(GPtrArray) machines = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GError) error = NULL;
  g_autoptr(GHashTable) spare_cpu = NULL;
  ReadyWatch watch;
  GThread *watcher;
  Run run = { 0 };
  gint64 start;

  for (guint i = 0; i < n; i++)
    {
      g_autofree char *name = g_strdup_printf ("m%u", i);

      if (!qlean_pool_add (pool, name, image, config, &error))
        g_error ("%s", error->message);
    }
  /* With spares: those of the pool's machines, which have their card. */
  if (qlean_machine_config_get_spares (config) > 0 &&
      !qlean_pool_prepare_spares (pool, NULL, &error))
    g_error ("%s", error->message);
  spare_cpu = spares_cpu (config);
  for (guint i = 0; i < n; i++)
    g_ptr_array_add (machines, g_list_model_get_item (G_LIST_MODEL (pool), i));

  run.available_drop = bench_mem_available_kib ();
  watcher = ready_watch_start (&watch, machines, spare_cpu);
  start = g_get_monotonic_time ();
  run.host_cpu = -self_cpu_seconds ();
  if (!qlean_pool_spawn_all (pool, NULL, &error))
    g_error ("%s", error->message);
  run.seconds = (g_get_monotonic_time () - start) / 1e6;
  run.host_cpu += self_cpu_seconds ();
  run.qemu_cpu_own = ready_watch_finish (&watch, watcher);
  for (guint i = 0; i < n; i++)
    {
      QleanMachine *machine = g_ptr_array_index (machines, i);

      run.qemu_cpu += qemu_cpu_since (machine, spare_cpu);
      run_command (machine);
    }
  run.exec_seconds = (g_get_monotonic_time () - start) / 1e6;
  run.available_drop -= bench_mem_available_kib ();

  for (guint i = 0; i < n; i++)
    note_rss (&run, qlean_machine_get_pid (g_ptr_array_index (machines, i)));
  run.switch_rss = rss_kib (qlean_network_get_switch_pid (qlean_pool_get_network (pool)));

  if (!qlean_pool_shutdown_all (pool, NULL, &error))
    g_error ("%s", error->message);
  /* The spares each start started behind it. */
  qlean_machine_stop_spares ();

  return run;
}

typedef struct
{
  guint      pending;
  GPtrArray *errors;
} Together;

static void
spawned_cb (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  Together *together = user_data;
  GError *error = NULL;

  if (!qlean_machine_spawn_finish (QLEAN_MACHINE (source), result, &error))
    g_ptr_array_add (together->errors, error);
  together->pending--;
}

static Run
run_plain (QleanImage         *image,
           QleanMachineConfig *config,
           guint               n)
{
  g_autoptr(GPtrArray) machines = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GPtrArray) errors = g_ptr_array_new_with_free_func ((GDestroyNotify) g_error_free);
  g_autoptr(GError) error = NULL;
  Together together = { n, errors };
  Run run = { 0 };
  gint64 start;

  g_autoptr(GHashTable) spare_cpu = NULL;
  ReadyWatch watch;
  GThread *watcher;

  if (qlean_machine_config_get_spares (config) > 0 &&
      !qlean_machine_prepare_spares (image, config, NULL, &error))
    g_error ("%s", error->message);
  spare_cpu = spares_cpu (config);

  for (guint i = 0; i < n; i++)
    g_ptr_array_add (machines, qlean_machine_new (image, config));

  run.available_drop = bench_mem_available_kib ();
  watcher = ready_watch_start (&watch, machines, spare_cpu);
  start = g_get_monotonic_time ();
  run.host_cpu = -self_cpu_seconds ();
  for (guint i = 0; i < n; i++)
    qlean_machine_spawn_async (g_ptr_array_index (machines, i), NULL, spawned_cb, &together);
  while (together.pending > 0)
    g_main_context_iteration (NULL, TRUE);
  run.seconds = (g_get_monotonic_time () - start) / 1e6;
  run.host_cpu += self_cpu_seconds ();
  run.qemu_cpu_own = ready_watch_finish (&watch, watcher);
  if (errors->len > 0)
    g_error ("%s", ((GError *) g_ptr_array_index (errors, 0))->message);
  for (guint i = 0; i < n; i++)
    {
      QleanMachine *machine = g_ptr_array_index (machines, i);

      run.qemu_cpu += qemu_cpu_since (machine, spare_cpu);
      run_command (machine);
    }
  run.exec_seconds = (g_get_monotonic_time () - start) / 1e6;
  run.available_drop -= bench_mem_available_kib ();

  for (guint i = 0; i < n; i++)
    {
      QleanMachine *machine = g_ptr_array_index (machines, i);

      note_rss (&run, qlean_machine_get_pid (machine));
      qlean_machine_kill (machine, NULL, NULL);
    }
  /* The spares each start started behind it. */
  qlean_machine_stop_spares ();

  return run;
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GOptionContext) context = g_option_context_new ("[SIZE...] - time pools of minimal machines");
  g_autoptr(QleanImage) image = qlean_image_new_minimal ();
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) sizes = g_array_new (FALSE, FALSE, sizeof (guint));
  g_autofree char *loadavg = NULL;
  double one = 0;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    g_error ("%s", error->message);
  for (int i = 1; i < argc; i++)
    {
      guint n = atoi (argv[i]);

      g_array_append_val (sizes, n);
    }
  if (sizes->len == 0)
    {
      const guint defaults[] = { 1, 2, 4, 8 };

      g_array_append_vals (sizes, defaults, G_N_ELEMENTS (defaults));
    }
  if (opt_memory > 0)
    qlean_machine_config_set_memory_mib (config, opt_memory);

  /* Build (or find) the image first: a one-time cost, not a boot's. */
  if (!qlean_image_prepare (image, NULL, &error))
    g_error ("%s", error->message);

  g_file_get_contents ("/proc/loadavg", &loadavg, NULL, NULL);
  g_print ("%s, %u host CPUs, load average before: %s",
           opt_no_network ? "plain machines, no network" : "pools with their network",
           g_get_num_processors (), loadavg ? loadavg : "?\n");
  /* CPU: what each QEMU used until ready, and what this process (the
   * library) used meanwhile; with the host's CPUs, a floor for the wall
   * time of a pool. */
  g_print ("%8s  %8s  %9s  %7s  %9s  %26s  %9s  %9s  %9s  %9s  %10s  %12s  %12s  %8s\n", "machines",
           "template", "ready (s)", "vs one", "exec (s)", "VmRSS MiB min/avg/max", "RssAnon", "Pss",
           "PrivDirty", "MemAv-/m", "switch KiB", "QEMU CPU (s)", "at own ready", "host CPU");

  /* With --templates: each path makes its saved boot first, so that no
   * run of either pays a boot. */
  for (guint t = 0; opt_templates && t < 2; t++)
    {
      qlean_machine_config_set_memory_template (config, t == 1);
      if (opt_no_network)
        run_plain (image, config, 1);
      else
        run_pool (image, config, 1);
    }

  if (opt_spares && opt_templates)
    g_error ("--spares goes without --templates");
  /* With --spares: the template's saved boot exists before any run. */
  if (opt_spares && opt_no_network)
    run_plain (image, config, 1);
  else if (opt_spares)
    run_pool (image, config, 1);

  for (guint s = 0; s < sizes->len * (opt_templates || opt_spares ? 2 : 1); s++)
    {
      gboolean doubled = opt_templates || opt_spares;
      guint n = g_array_index (sizes, guint, doubled ? s / 2 : s);
      gboolean template = opt_templates ? s % 2 == 1 : qlean_machine_config_get_memory_template (config);
      gboolean spares = opt_spares && s % 2 == 1;
      static double ones[4];
      g_autoptr(GArray) times = g_array_new (FALSE, FALSE, sizeof (double));
      g_autofree char *ratio = NULL;
      Run last = { 0 };
      double median;

      qlean_machine_config_set_memory_template (config, template);
      qlean_machine_config_set_spares (config, spares ? n : 0);
      for (int r = 0; r < MAX (opt_repeat, 1); r++)
        {
          last = opt_no_network ? run_plain (image, config, n) : run_pool (image, config, n);
          g_array_append_val (times, last.seconds);
        }
      median = bench_percentile (times, 0.5);
      if (n == 1)
        ones[template + 2 * spares] = median;
      one = ones[template + 2 * spares];
      ratio = one > 0 ? g_strdup_printf ("%.2fx", median / one) : g_strdup ("-");

      g_print ("%8u  %8s  %9.2f  %7s  %9.2f  %8.0f / %6.0f / %6.0f  %9.0f  %9.0f  %9.0f  %9.0f  %10"
               G_GUINT64_FORMAT "  %12.2f  %12.2f  %8.2f\n",
               n, spares ? "spares" : template ? "yes" : "no", median, ratio, last.exec_seconds,
               last.rss_min / 1024.0, last.rss_sum / 1024.0 / n, last.rss_max / 1024.0,
               last.anon_sum / 1024.0 / n, last.pss_sum / 1024.0 / n, last.dirty_sum / 1024.0 / n,
               last.available_drop / 1024.0 / n, last.switch_rss, last.qemu_cpu / n,
               last.qemu_cpu_own / n, last.host_cpu);
    }

  return 0;
}
