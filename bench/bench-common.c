/* bench-common.c: statistics and host helpers the benchmarks share
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gio/gio.h>

#include "bench-common.h"

/* qsort() comparator for an array of doubles, ascending. */
int
bench_compare_doubles (const void *a,
                       const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return (x > y) - (x < y);
}

/* The value at fraction @p (0.5 is the median) of @values, nearest rank.
 * Sorts @values in place, so its first and last elements are then the
 * minimum and maximum, which callers print beside the median. */
double
bench_percentile (GArray *values,
                  double  p)
{
  guint index;

  g_assert (values->len > 0);
  qsort (values->data, values->len, sizeof (double), bench_compare_doubles);
  index = (guint) (p * (values->len - 1) + 0.5);
  return g_array_index (values, double, index);
}

/* Monotonic time in seconds, for intervals. */
double
bench_now (void)
{
  return g_get_monotonic_time () / 1e6;
}

/* /proc/loadavg as it reads, without its newline, or "unknown": the
 * load the figures of a run on a shared host were taken under. */
char *
bench_load_average (void)
{
  g_autofree char *text = NULL;

  if (!g_file_get_contents ("/proc/loadavg", &text, NULL, NULL))
    return g_strdup ("unknown");
  return g_strdup (g_strstrip (text));
}

/* A "Name:  N kB" field of a /proc file of a process, in KiB, or 0. */
guint64
bench_proc_kib (GPid        pid,
                const char *file,
                const char *field)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/%s", (int) pid, file);
  g_autofree char *contents = NULL;
  g_autofree char *key = g_strdup_printf ("\n%s:", field);
  const char *line;

  if (pid <= 0 || !g_file_get_contents (path, &contents, NULL, NULL))
    return 0;
  line = strstr (contents, key);
  return line ? g_ascii_strtoull (line + strlen (key), NULL, 10) : 0;
}

gint64
bench_mem_available_kib (void)
{
  g_autofree char *meminfo = NULL;
  const char *line;

  if (!g_file_get_contents ("/proc/meminfo", &meminfo, NULL, NULL) ||
      (line = strstr (meminfo, "MemAvailable:")) == NULL)
    return 0;
  return g_ascii_strtoll (line + strlen ("MemAvailable:"), NULL, 10);
}

/* The fields of /proc/@pid/stat from field 3 on (after "pid (comm)"),
 * or NULL when the process is gone. */
static GStrv
proc_stat_fields (GPid pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/stat", (int) pid);
  g_autofree char *contents = NULL;
  const char *after_comm;

  if (pid <= 0 || !g_file_get_contents (path, &contents, NULL, NULL) ||
      (after_comm = strrchr (contents, ')')) == NULL || after_comm[1] == '\0')
    return NULL;
  return g_strsplit (after_comm + 2, " ", 0);
}

double
bench_proc_cpu_seconds (GPid pid)
{
  g_auto(GStrv) fields = proc_stat_fields (pid);

  /* fields[0] is field 3; utime and stime are fields 14 and 15. */
  if (fields == NULL || g_strv_length (fields) < 13)
    return 0;
  return (g_ascii_strtoull (fields[11], NULL, 10) + g_ascii_strtoull (fields[12], NULL, 10)) /
         (double) sysconf (_SC_CLK_TCK);
}

double
bench_proc_minor_faults (GPid pid)
{
  g_auto(GStrv) fields = proc_stat_fields (pid);

  /* minflt is field 10. */
  return fields != NULL && g_strv_length (fields) > 7 ? g_ascii_strtod (fields[7], NULL) : 0;
}

const char *
bench_log_message (GLogLevelFlags   level,
                   const GLogField *fields,
                   gsize            n_fields)
{
  const char *message = NULL;

  if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING))
    {
      g_log_writer_standard_streams (level, fields, n_fields, NULL);
      return NULL;
    }
  for (gsize i = 0; i < n_fields; i++)
    if (g_str_equal (fields[i].key, "MESSAGE"))
      message = fields[i].value;
  return message;
}

gboolean
bench_log_is_qemu_argv (const char *message)
{
  return strstr (message, "qemu-system") != NULL && strstr (message, " -machine ") != NULL;
}

GArray *
bench_qemu_children (void)
{
  g_autoptr(GDir) tasks = g_dir_open ("/proc/self/task", 0, NULL);
  GArray *found = g_array_new (FALSE, FALSE, sizeof (GPid));
  const char *tid;

  /* A child is listed under the thread that started it: Qlean's worker. */
  while (tasks != NULL && (tid = g_dir_read_name (tasks)) != NULL)
    {
      g_autofree char *path = g_strdup_printf ("/proc/self/task/%s/children", tid);
      g_autofree char *text = NULL;
      g_auto(GStrv) pids = NULL;

      if (!g_file_get_contents (path, &text, NULL, NULL))
        continue;
      pids = g_strsplit (g_strstrip (text), " ", 0);
      for (guint i = 0; pids[i] != NULL; i++)
        {
          g_autofree char *comm_path = g_strdup_printf ("/proc/%s/comm", pids[i]);
          g_autofree char *comm = NULL;
          GPid pid = atoi (pids[i]);

          if (*pids[i] && g_file_get_contents (comm_path, &comm, NULL, NULL) &&
              g_str_has_prefix (comm, "qemu-system"))
            g_array_append_val (found, pid);
        }
    }
  return found;
}

/* Runs @argv and returns its standard output; a failed run's error
 * carries its standard error, so that the caller can say why. */
char *
bench_run_capture (const char * const  *argv,
                   GError             **error)
{
  g_autoptr(GSubprocess) process = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  process = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE,
                               error);
  if (process == NULL ||
      !g_subprocess_communicate_utf8 (process, NULL, NULL, &out, &err, error))
    return NULL;

  if (!g_subprocess_get_successful (process))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s failed: %s", argv[0],
                   err && *err ? g_strstrip (err) : "no message");
      return NULL;
    }

  return g_steal_pointer (&out);
}

/* Runs @argv with its output dropped: whether it succeeded is all the
 * benchmarks need (ssh probes, key generation, rm -rf). */
gboolean
bench_run_quiet (const char * const *argv)
{
  g_autoptr(GSubprocess) process = NULL;

  process = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_SILENCE,
                               NULL);
  return process != NULL && g_subprocess_wait_check (process, NULL, NULL);
}
