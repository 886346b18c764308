/* qlean-run-owner-private.h: who owns a run directory, and whether it runs
 *
 * SPDX-License-Identifier: MIT
 *
 * Compiled into the library, which writes the owner file of each run
 * directory it makes, and into the `qlean` program, whose `gc` reads
 * them; the program links only the library's public API.
 */

#pragma once

/* Private to the library, and to the CLI, which shares this file. */
#if !defined (QLEAN_COMPILATION) && !defined (QLEAN_TOOL_COMPILATION)
#error "qlean-run-owner-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include <glib.h>

G_BEGIN_DECLS

/* In each run directory: "PID STARTTIME\n". */
#define QLEAN_RUN_OWNER_FILE "owner"

typedef enum
{
  QLEAN_RUN_OWNER_UNKNOWN,  /* no readable owner file: not ours to judge */
  QLEAN_RUN_OWNER_ALIVE,
  QLEAN_RUN_OWNER_DEAD,
} QleanRunOwner;

/* Field 22 of /proc/PID/stat, when the process started (clock ticks
 * since boot); NULL when it does not run or is a zombie. */
char          *qlean_process_start_time (gint64      pid);
/* Whether the process named by @dir's owner file still runs: its pid,
 * with the same start time (so that a recycled pid does not count). */
QleanRunOwner  qlean_run_owner_check    (const char *dir,
                                         gint64     *pid_out);

G_END_DECLS
