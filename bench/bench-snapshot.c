/* bench-snapshot.c: restore → first exec, clones of one snapshot and
 * imports of one archive with and without their memory template, and
 * pools of four from a golden snapshot against four cold boots, in the
 * same run
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
static int opt_clones = 4;
static gboolean opt_clones_only = FALSE;
static int opt_imports = 4;
static gboolean opt_imports_only = FALSE;
static int opt_running_clones = 0;
static gboolean opt_verbose = FALSE;
static gboolean opt_booted_source = FALSE;
static gboolean opt_cloneable = FALSE;
static int opt_clone_gap = 0;

static const GOptionEntry entries[] = {
  { "restores", 'r', 0, G_OPTION_ARG_INT, &opt_restores, "Restores to time (default 5); the median is shown", "N" },
  { "pool", 'n', 0, G_OPTION_ARG_INT, &opt_pool, "Machines per pool (default 4)", "N" },
  { "clones", 'c', 0, G_OPTION_ARG_INT, &opt_clones, "Clones of one snapshot, running together (default 4)", "N" },
  { "clones-only", 0, 0, G_OPTION_ARG_NONE, &opt_clones_only, "Only the clones and restores of one snapshot", NULL },
  { "imports", 'i', 0, G_OPTION_ARG_INT, &opt_imports, "Imports of one archive, running together (default 4)", "N" },
  { "imports-only", 0, 0, G_OPTION_ARG_NONE, &opt_imports_only, "Only the imports of one archive", NULL },
  { "repeat", 0, 0, G_OPTION_ARG_INT, &opt_repeat, "Runs of each pool; the median is shown (default 1)", "N" },
  { "running-clones", 0, 0, G_OPTION_ARG_INT, &opt_running_clones, "Only N clones of one running machine (clone -> first exec), with the steps of each", "N" },
  { "verbose", 'v', 0, G_OPTION_ARG_NONE, &opt_verbose, "With --running-clones: print each clone's stamped log", NULL },
  { "clone-gap", 0, 0, G_OPTION_ARG_INT, &opt_clone_gap, "With --running-clones: wait MS milliseconds before each clone, as a clone that does not follow the last one at once (default 0)", "MS" },
  { "cloneable", 0, 0, G_OPTION_ARG_NONE, &opt_cloneable, "With --running-clones: clone a cloneable source too (RAM file copied, devices streamed) and give its ratio to the streamed source's", NULL },
  { "booted-source", 0, 0, G_OPTION_ARG_NONE, &opt_booted_source, "With --running-clones: the source boots (anonymous RAM) instead of starting from the saved boot's memory template", NULL },
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

/* Pss and Private_Dirty (MiB) of the QEMUs of @machines but the first
 * (which makes the template, if any), averaged; then kills them all. */
static void
others_memory_then_kill (GPtrArray *machines,
                         double    *pss_mib,
                         double    *dirty_mib)
{
  guint n = machines->len;

  for (guint i = 1; i < n; i++)
    {
      GPid pid = qlean_machine_get_pid (g_ptr_array_index (machines, i));

      *pss_mib += bench_proc_kib (pid, "smaps_rollup", "Pss") / 1024.0 / (n - 1);
      *dirty_mib += bench_proc_kib (pid, "smaps_rollup", "Private_Dirty") / 1024.0 / (n - 1);
    }
  for (guint i = 0; i < n; i++)
    qlean_machine_kill (g_ptr_array_index (machines, i), NULL, NULL);
}

typedef struct
{
  double first_s;     /* the first clone (makes the template, if any) */
  double median_s;    /* the others: start -> first exec */
  double pss_mib;     /* per QEMU of the others, all running, averaged */
  double dirty_mib;   /* Private_Dirty, the same */
  double first_pss_mib;
} CloneRun;

/* @n clones of one snapshot, running together: start -> first exec of
 * each, then Pss and Private_Dirty per QEMU. With @template the clones
 * map the snapshot's memory template (the first makes it); without,
 * each reads the whole stream, as before templates. */
static CloneRun
bench_clones (QleanImage *image,
              gboolean    template,
              guint       n)
{
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(QleanMachine) source = NULL;
  g_autoptr(GPtrArray) clones = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GArray) times = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GError) error = NULL;
  CloneRun run = { 0 };

  qlean_machine_config_set_memory_template (config, template);
  source = qlean_machine_new_with_name (template ? "bench-tsrc" : "bench-fsrc", image, config);
  if (!qlean_machine_spawn (source, NULL, &error))
    g_error ("spawn: %s", error->message);
  exec_true (source);
  if (!qlean_machine_snapshot (source, "base", NULL, &error))
    g_error ("snapshot: %s", error->message);

  for (guint i = 0; i < n; i++)
    {
      g_autofree char *name = g_strdup_printf ("bench-c%u", i);
      QleanMachine *clone;
      double t0 = bench_now (), seconds;

      clone = qlean_machine_clone_snapshot (source, "base", name, NULL, &error);
      if (clone == NULL)
        g_error ("clone: %s", error->message);
      exec_true (clone);
      seconds = bench_now () - t0;
      g_ptr_array_add (clones, clone);
      if (i == 0)
        run.first_s = seconds;
      else
        g_array_append_val (times, seconds);
    }
  run.median_s = times->len ? bench_percentile (times, 0.5) : run.first_s;

  /* The first apart: with a template it runs on the RAM file it made
   * the template from, all of it its own. */
  run.first_pss_mib = bench_proc_kib (qlean_machine_get_pid (g_ptr_array_index (clones, 0)),
                                      "smaps_rollup", "Pss") / 1024.0;
  others_memory_then_kill (clones, &run.pss_mib, &run.dirty_mib);
  qlean_machine_kill (source, NULL, NULL);
  return run;
}

/* Restores of one snapshot, @n of them, each -> first exec; with
 * @template they map the template a clone made first (restores make
 * none). Returns the median; @all gets them all. */
static double
bench_restores (QleanImage  *image,
                gboolean     template,
                guint        n,
                char       **all)
{
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GArray) times = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GError) error = NULL;

  qlean_machine_config_set_memory_template (config, template);
  machine = qlean_machine_new_with_name (template ? "bench-trst" : "bench-frst", image, config);
  if (!qlean_machine_spawn (machine, NULL, &error))
    g_error ("spawn: %s", error->message);
  exec_true (machine);
  if (!qlean_machine_snapshot (machine, "base", NULL, &error))
    g_error ("snapshot: %s", error->message);
  if (template)
    {
      g_autoptr(QleanMachine) clone = qlean_machine_clone_snapshot (machine, "base", "bench-tmk",
                                                                    NULL, &error);

      if (clone == NULL)
        g_error ("clone: %s", error->message);
      qlean_machine_kill (clone, NULL, NULL);
    }
  for (guint i = 0; i < n; i++)
    {
      double t0 = bench_now (), seconds;

      if (!qlean_machine_restore (machine, "base", NULL, &error))
        g_error ("restore: %s", error->message);
      exec_true (machine);
      seconds = bench_now () - t0;
      g_array_append_val (times, seconds);
    }
  qlean_machine_kill (machine, NULL, NULL);
  *all = list_times (times);
  return bench_percentile (times, 0.5);
}

static void
print_restores (QleanImage *image)
{
  guint n = MAX (opt_restores, 1);
  g_autofree char *full_all = NULL, *tmpl_all = NULL;
  double full = bench_restores (image, FALSE, n, &full_all);
  double tmpl = bench_restores (image, TRUE, n, &tmpl_all);

  g_print ("\n%u restores of one snapshot -> first exec (median):\n", n);
  g_print ("  whole stream (no template)  %6.3f s   (%s)\n", full, full_all);
  g_print ("  memory template             %6.3f s   (%s)   %.2fx as fast\n", tmpl, tmpl_all,
           full / tmpl);
}

static void
print_clones (QleanImage *image)
{
  guint n = MAX (opt_clones, 2);
  CloneRun full = bench_clones (image, FALSE, n);
  CloneRun tmpl = bench_clones (image, TRUE, n);

  g_print ("\n%u clones of one snapshot, running together (start -> first exec; per QEMU):\n", n);
  g_print ("  %-26s %9s %9s %12s %9s %9s\n", "", "first (s)", "Pss MiB", "others (s)",
           "Pss MiB", "PrivDirty");
  g_print ("  %-26s %9.3f %9.1f %12.3f %9.1f %9.1f\n", "whole stream (no template)",
           full.first_s, full.first_pss_mib, full.median_s, full.pss_mib, full.dirty_mib);
  g_print ("  %-26s %9.3f %9.1f %12.3f %9.1f %9.1f\n", "memory template",
           tmpl.first_s, tmpl.first_pss_mib, tmpl.median_s, tmpl.pss_mib, tmpl.dirty_mib);
  g_print ("  template vs whole stream: others %.2fx as fast, Pss %.2fx as large "
           "(the first clone makes the template: %.2fx the time)\n",
           full.median_s / tmpl.median_s, tmpl.pss_mib / full.pss_mib, tmpl.first_s / full.first_s);
}

typedef struct
{
  double first_s;     /* the first import (makes the template, if any) */
  double median_s;    /* the others: import -> first exec */
  double cpu_s;       /* QEMU CPU time until that exec, the others' median */
  double pss_mib;     /* per QEMU of the others, all running, averaged */
  double dirty_mib;   /* Private_Dirty, the same */
  double avail_mib;   /* MemAvailable drop per machine after the first */
} ImportRun;

/* @n imports of @archive, one after the other, running together: import
 * -> first exec of each, QEMU's CPU time by then, then Pss and
 * Private_Dirty per QEMU. With @template the machines map the memory
 * template of the archive's state (the first import makes it); without,
 * each loads the whole state into memory of its own. */
static ImportRun
bench_imports (GFile    *archive,
               gboolean  template,
               guint     n)
{
  g_autoptr(GPtrArray) machines = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GArray) times = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GArray) cpu = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GError) error = NULL;
  QleanImportFlags flags = template ? QLEAN_IMPORT_FLAGS_NONE : QLEAN_IMPORT_FLAGS_NO_MEMORY_TEMPLATE;
  ImportRun run = { 0 };
  double avail_first = 0;

  for (guint i = 0; i < n; i++)
    {
      g_autofree char *name = g_strdup_printf ("bench-i%u", i);
      QleanMachine *machine;
      double t0 = bench_now (), seconds, cpu_s;

      machine = qlean_machine_import_full (archive, name, NULL, flags, NULL, &error);
      if (machine == NULL)
        g_error ("import: %s", error->message);
      exec_true (machine);
      seconds = bench_now () - t0;
      cpu_s = bench_proc_cpu_seconds (qlean_machine_get_pid (machine));
      g_ptr_array_add (machines, machine);
      if (i == 0)
        {
          run.first_s = seconds;
          avail_first = (bench_mem_available_kib () / 1024.0);
          continue;
        }
      g_array_append_val (times, seconds);
      g_array_append_val (cpu, cpu_s);
    }
  run.median_s = times->len ? bench_percentile (times, 0.5) : run.first_s;
  run.cpu_s = cpu->len ? bench_percentile (cpu, 0.5) : 0;
  if (n > 1)
    run.avail_mib = (avail_first - (bench_mem_available_kib () / 1024.0)) / (n - 1);
  others_memory_then_kill (machines, &run.pss_mib, &run.dirty_mib);
  return run;
}

/* One archive of a running machine, imported @opt_imports times the old
 * way and as many times through its template, in the same run. */
static void
print_imports (QleanImage *image)
{
  guint n = MAX (opt_imports, 2);
  g_autoptr(QleanMachine) source = qlean_machine_new_with_name ("bench-isrc", image, NULL);
  g_autofree char *dir = g_dir_make_tmp ("qlean-bench-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "bench.qlean", NULL);
  g_autoptr(GFile) archive = g_file_new_for_path (path);
  g_autoptr(GError) error = NULL;
  ImportRun full, tmpl;

  if (!qlean_machine_spawn (source, NULL, &error))
    g_error ("spawn: %s", error->message);
  exec_true (source);
  if (!qlean_machine_export (source, archive, NULL, &error))
    g_error ("export: %s", error->message);
  qlean_machine_kill (source, NULL, NULL);

  full = bench_imports (archive, FALSE, n);
  tmpl = bench_imports (archive, TRUE, n);
  g_unlink (path);
  g_rmdir (dir);

  g_print ("\n%u imports of one archive, running together (import -> first exec; per QEMU):\n", n);
  g_print ("  %-26s %9s %10s %9s %9s %9s %9s\n", "", "first (s)", "others (s)", "CPU (s)",
           "Pss MiB", "PrivDirty", "Avail MiB");
  g_print ("  %-26s %9.3f %10.3f %9.3f %9.1f %9.1f %9.1f\n", "whole stream (no template)",
           full.first_s, full.median_s, full.cpu_s, full.pss_mib, full.dirty_mib, full.avail_mib);
  g_print ("  %-26s %9.3f %10.3f %9.3f %9.1f %9.1f %9.1f\n", "memory template",
           tmpl.first_s, tmpl.median_s, tmpl.cpu_s, tmpl.pss_mib, tmpl.dirty_mib, tmpl.avail_mib);
  g_print ("  template vs whole stream: others %.2fx as fast, Pss %.2fx as large "
           "(the first import makes the template: %.2fx the time)\n",
           full.median_s / tmpl.median_s, tmpl.pss_mib / full.pss_mib, tmpl.first_s / full.first_s);
}

/* Clones of a running machine, with the library's steps read off its
 * log: the writer stamps each debug line with the time since the clone
 * was asked for (G_MESSAGES_DEBUG=all and QLEAN_DEBUG_ARGV, set in
 * main() for this mode). */

typedef struct
{
  double  t;
  char   *text;
} Stamp;

static GMutex log_lock;
static GArray *stamps;  /* Stamp, of the clone being measured */
static double stamps_t0;

static void
stamp_clear (gpointer data)
{
  g_free (((Stamp *) data)->text);
}

static GLogWriterOutput
stamp_writer (GLogLevelFlags   level,
              const GLogField *fields,
              gsize            n_fields,
              gpointer         user_data)
{
  const char *message = bench_log_message (level, fields, n_fields);
  Stamp stamp = { bench_now (), NULL };

  if (message == NULL)
    return G_LOG_WRITER_HANDLED;

  g_mutex_lock (&log_lock);
  if (stamps != NULL)
    {
      stamp.t -= stamps_t0;
      /* QLEAN_DEBUG_ARGV's command line: QEMU is about to be spawned. */
      if (bench_log_is_qemu_argv (message))
        stamp.text = g_strdup ("spawn QEMU");
      else
        stamp.text = g_strdup (message);
      g_array_append_val (stamps, stamp);
    }
  g_mutex_unlock (&log_lock);

  return G_LOG_WRITER_HANDLED;
}

/* The time of the last stamp holding @needle and @needle2 (if not
 * NULL), or of the first with @first; -1 if none. */
static double
stamp_time (GArray     *log,
            const char *needle,
            const char *needle2,
            gboolean    first)
{
  double t = -1;

  for (guint i = 0; i < log->len; i++)
    {
      const Stamp *s = &g_array_index (log, Stamp, i);

      if (strstr (s->text, needle) != NULL && (needle2 == NULL || strstr (s->text, needle2) != NULL))
        {
          t = s->t;
          if (first)
            break;
        }
    }
  return t;
}

enum
{
  CSTEP_STOP,       /* the source's stop sent */
  CSTEP_SPAWN,      /* the clone's QEMU spawned */
  CSTEP_RAM,        /* a cloneable source's RAM file copied */
  CSTEP_INCOMING,   /* migrate-incoming sent */
  CSTEP_SAVED,      /* the source's migration completed */
  CSTEP_LOADED,     /* the clone's load completed */
  CSTEP_CONT,       /* the clone's cont sent */
  CSTEP_HELLO,      /* the clone's qlean-guest answered HELLO */
  CSTEP_IDENTITY,   /* identity stage begins */
  CSTEP_RETURNED,   /* clone returned */
  CSTEP_EXEC,       /* the first `true` returned */
  CSTEP_EXEC2,      /* the second `true` returned */
  N_CSTEPS
};

static const char *cstep_names[N_CSTEPS] = {
  "source stop sent",
  "clone QEMU spawned",
  "source's RAM file copied",
  "migrate-incoming sent",
  "source's save completed (first)",
  "clone's load completed (last)",
  "clone's cont sent (last)",
  "qlean-guest HELLO answered",
  "identity stage begins",
  "clone returned",
  "first `true` returned",
  "second `true` returned",
};

/* Clones of one running machine, cloneable or not: the median from the
 * clone call to the clone's first `true`. */
static double
running_clones (QleanImage *image,
                int         n,
                gboolean    cloneable)
{
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GError) error = NULL;
  GArray *steps[N_CSTEPS];
  GArray *cpus[2] = { g_array_new (FALSE, FALSE, sizeof (double)),
                                g_array_new (FALSE, FALSE, sizeof (double)) };
  /* The clone QEMU's minor faults: until it returned, until its first
   * `true` returned. */
  GArray *faults[3] = { g_array_new (FALSE, FALSE, sizeof (double)),
                        g_array_new (FALSE, FALSE, sizeof (double)),
                        g_array_new (FALSE, FALSE, sizeof (double)) };
  /* Per clone, from the identity stage's start to the first `true`
   * returned: what the identity fix and a cold first process cost, less
   * sensitive to the host's load than the steps before it. */
  GArray *identity_to_exec = g_array_new (FALSE, FALSE, sizeof (double));

  /* A source started from the memory template has its RAM mapped
   * privately from the template file, in 4 KiB pages: the migration
   * reads every page of it, which costs more here than anonymous RAM
   * in huge pages. */
  double first_true;

  if (opt_booted_source)
    qlean_machine_config_set_fast_start (config, FALSE);
  qlean_machine_config_set_cloneable (config, cloneable);
  machine = qlean_machine_new_with_name ("bench-src", image, config);
  if (!qlean_machine_spawn (machine, NULL, &error))
    g_error ("spawn: %s", error->message);
  exec_true (machine);
  for (guint s = 0; s < N_CSTEPS; s++)
    steps[s] = g_array_new (FALSE, FALSE, sizeof (double));

  for (int i = 0; i < n; i++)
    {
      g_autoptr(QleanMachine) clone = NULL;
      g_autoptr(GArray) log = g_array_new (FALSE, TRUE, sizeof (Stamp));
      double t0, t[N_CSTEPS], source_cpu, clone_cpu, fault[3];

      g_array_set_clear_func (log, stamp_clear);
      g_usleep (opt_clone_gap * (G_USEC_PER_SEC / 1000));
      source_cpu = bench_proc_cpu_seconds (qlean_machine_get_pid (machine));
      fault[2] = bench_proc_minor_faults (qlean_machine_get_pid (machine));
      t0 = bench_now ();
      g_mutex_lock (&log_lock);
      stamps = log;
      stamps_t0 = t0;
      g_mutex_unlock (&log_lock);
      clone = qlean_machine_clone (machine, "bench-clone", NULL, &error);
      if (clone == NULL)
        g_error ("clone: %s", error->message);
      t[CSTEP_RETURNED] = bench_now () - t0;
      fault[0] = bench_proc_minor_faults (qlean_machine_get_pid (clone));
      fault[2] = bench_proc_minor_faults (qlean_machine_get_pid (machine)) - fault[2];
      exec_true (clone);
      t[CSTEP_EXEC] = bench_now () - t0;
      fault[1] = bench_proc_minor_faults (qlean_machine_get_pid (clone));
      exec_true (clone);
      t[CSTEP_EXEC2] = bench_now () - t0;
      g_array_append_val (faults[0], fault[0]);
      g_array_append_val (faults[1], fault[1]);
      g_array_append_val (faults[2], fault[2]);
      clone_cpu = bench_proc_cpu_seconds (qlean_machine_get_pid (clone));
      source_cpu = bench_proc_cpu_seconds (qlean_machine_get_pid (machine)) - source_cpu;
      g_array_append_val (cpus[0], clone_cpu);
      g_array_append_val (cpus[1], source_cpu);
      g_mutex_lock (&log_lock);
      stamps = NULL;
      g_mutex_unlock (&log_lock);
      qlean_machine_kill (clone, NULL, NULL);

      t[CSTEP_STOP] = stamp_time (log, "qmp ->", "\"stop\"", TRUE);
      t[CSTEP_SPAWN] = stamp_time (log, "spawn QEMU", NULL, TRUE);
      t[CSTEP_RAM] = stamp_time (log, "RAM file copied", NULL, TRUE);
      t[CSTEP_INCOMING] = stamp_time (log, "qmp ->", "migrate-incoming", TRUE);
      t[CSTEP_SAVED] = stamp_time (log, "qmp <-", "\"completed\"", TRUE);
      t[CSTEP_LOADED] = stamp_time (log, "qmp <-", "\"completed\"", FALSE);
      t[CSTEP_CONT] = stamp_time (log, "qmp ->", "\"cont\"", FALSE);
      t[CSTEP_HELLO] = stamp_time (log, "qlean-guest answered", NULL, TRUE);
      t[CSTEP_IDENTITY] = stamp_time (log, "boot stage identity", NULL, TRUE);
      for (guint s = 0; s < N_CSTEPS; s++)
        g_array_append_val (steps[s], t[s]);
      t0 = t[CSTEP_EXEC] - t[CSTEP_IDENTITY];
      g_array_append_val (identity_to_exec, t0);
      g_print ("  clone %d: returned %.3f  first true %.3f  QEMU CPU: clone's %.3f, "
               "source's meanwhile %.3f\n", i, t[CSTEP_RETURNED], t[CSTEP_EXEC], clone_cpu,
               source_cpu);
      if (opt_verbose)
        for (guint j = 0; j < log->len; j++)
          {
            const Stamp *s = &g_array_index (log, Stamp, j);

            g_print ("    %7.3f %.1500s\n", s->t, s->text);
          }
    }

  g_print ("\nclone of a running %s machine (%d clones; step: median s since the clone call):\n",
           cloneable ? "cloneable" : "streamed", n);
  first_true = bench_percentile (steps[CSTEP_EXEC], 0.5);
  for (guint s = 0; s < N_CSTEPS; s++)
    {
      g_print ("  %-34s %7.3f\n", cstep_names[s], bench_percentile (steps[s], 0.5));
      g_array_unref (steps[s]);
    }
  g_print ("  %-34s %7.3f\n", "identity stage -> first `true`", bench_percentile (identity_to_exec, 0.5));
  g_array_unref (identity_to_exec);
  g_print ("  %-34s %7.3f\n", "QEMU CPU until then: the clone's", bench_percentile (cpus[0], 0.5));
  g_print ("  %-34s %7.3f\n", "  the source's during the clone", bench_percentile (cpus[1], 0.5));
  g_print ("  %-34s %7.0f\n", "clone QEMU's minor faults: returned", bench_percentile (faults[0], 0.5));
  g_print ("  %-34s %7.0f\n", "  after the first `true`", bench_percentile (faults[1], 0.5));
  g_array_unref (cpus[0]);
  g_array_unref (cpus[1]);
  g_print ("  %-34s %7.0f\n", "source QEMU's, during the clone", bench_percentile (faults[2], 0.5));
  g_array_unref (faults[0]);
  g_array_unref (faults[1]);
  g_array_unref (faults[2]);
  qlean_machine_kill (machine, NULL, NULL);
  return first_true;
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
  if (opt_running_clones > 0)
    {
      /* Every debug line, the traffic's included, comes to the writer. */
      g_setenv ("G_MESSAGES_DEBUG", "all", TRUE);
      g_setenv ("QLEAN_DEBUG_ARGV", "1", TRUE);
      g_log_set_writer_func (stamp_writer, NULL, NULL);
    }

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

  if (opt_running_clones > 0)
    {
      double streamed = running_clones (image, opt_running_clones, FALSE);

      if (opt_cloneable)
        {
          double cloneable = running_clones (image, opt_running_clones, TRUE);

          g_print ("\nclone -> first `true`: cloneable %.3f s, streamed %.3f s "
                   "(cloneable/streamed %.2f)\n", cloneable, streamed, cloneable / streamed);
        }
      return 0;
    }
  if (opt_imports_only)
    {
      print_imports (image);
      return 0;
    }
  if (opt_clones_only)
    {
      print_clones (image);
      print_restores (image);
      return 0;
    }
  bench_restore (image, cold);
  print_clones (image);
  print_restores (image);
  print_imports (image);

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
