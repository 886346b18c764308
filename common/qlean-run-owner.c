/* qlean-run-owner.c: who owns a run directory, and whether it runs
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

#include "qlean-run-owner-private.h"

/* With the pid, the start time names one process for the life of the
 * system, which a pid alone does not. */
char *
qlean_process_start_time (gint64 pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%" G_GINT64_FORMAT "/stat", pid);
  g_autofree char *stat = NULL;
  g_auto(GStrv) fields = NULL;
  const char *after_comm;

  if (!g_file_get_contents (path, &stat, NULL, NULL))
    return NULL;

  after_comm = strrchr (stat, ')');
  if (after_comm == NULL || after_comm[1] == '\0')
    return NULL;

  /* fields[0] is field 3 (state); field 22 (starttime) is fields[19]. */
  fields = g_strsplit (after_comm + 2, " ", 0);
  if (g_strv_length (fields) < 20)
    return NULL;
  /* A zombie is dead, only not reaped yet (an owner killed after `qlean
   * start` exited waits for whichever process it was reparented to). */
  if (g_str_equal (fields[0], "Z"))
    return NULL;

  return g_strdup (fields[19]);
}

QleanRunOwner
qlean_run_owner_check (const char *dir,
                       gint64     *pid_out)
{
  g_autofree char *path = g_build_filename (dir, QLEAN_RUN_OWNER_FILE, NULL);
  g_autofree char *contents = NULL;
  g_autofree char *start = NULL;
  g_auto(GStrv) fields = NULL;
  gint64 pid;

  if (!g_file_get_contents (path, &contents, NULL, NULL))
    return QLEAN_RUN_OWNER_UNKNOWN;

  fields = g_strsplit (g_strstrip (contents), " ", 2);
  if (fields[0] == NULL || fields[1] == NULL)
    return QLEAN_RUN_OWNER_UNKNOWN;

  pid = g_ascii_strtoll (fields[0], NULL, 10);
  if (pid <= 0)
    return QLEAN_RUN_OWNER_UNKNOWN;
  if (pid_out != NULL)
    *pid_out = pid;

  if (kill ((pid_t) pid, 0) != 0 && errno == ESRCH)
    return QLEAN_RUN_OWNER_DEAD;

  start = qlean_process_start_time (pid);
  if (start == NULL || !g_str_equal (start, fields[1]))
    return QLEAN_RUN_OWNER_DEAD;

  return QLEAN_RUN_OWNER_ALIVE;
}
