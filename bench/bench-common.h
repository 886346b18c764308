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
guint64  bench_proc_kib        (GPid                 pid,
                                const char          *file,
                                const char          *field);
char    *bench_run_capture     (const char * const  *argv,
                                GError             **error);
gboolean bench_run_quiet       (const char * const  *argv);

G_END_DECLS
