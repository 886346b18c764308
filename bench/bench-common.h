/* bench-common.h: statistics and host helpers the benchmarks share
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

int      bench_compare_doubles (const void          *a,
                                const void          *b);
double   bench_percentile      (GArray              *values,
                                double               p);
double   bench_now             (void);
char    *bench_load_average    (void);
guint64  bench_proc_kib        (GPid                 pid,
                                const char          *file,
                                const char          *field);
/* The host's MemAvailable, KiB (0 if unknown). */
gint64   bench_mem_available_kib (void);
/* CPU time (user + system) process @pid has used so far; 0 if gone. */
double   bench_proc_cpu_seconds (GPid                pid);
/* Minor page faults process @pid has taken so far (on this nested host
 * each costs QEMU several microseconds); 0 if gone. */
double   bench_proc_minor_faults (GPid               pid);
/* For a bench's GLogWriterFunc: the MESSAGE of a structured log entry
 * to record, or NULL for one that has none and for warnings and worse,
 * which this prints. */
const char *bench_log_message  (GLogLevelFlags       level,
                                const GLogField     *fields,
                                gsize                n_fields);
/* Whether @message is QLEAN_DEBUG_ARGV's command line of a QEMU about to
 * be spawned. */
gboolean bench_log_is_qemu_argv (const char         *message);
/* The QEMU processes this process started and that still run, as GPids. */
GArray  *bench_qemu_children   (void);
char    *bench_run_capture     (const char * const  *argv,
                                GError             **error);
gboolean bench_run_quiet       (const char * const  *argv);

G_END_DECLS
