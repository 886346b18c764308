/* qlean-wait.c: waiting until something is true in a machine
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <glib/gi18n-lib.h>

#include "qlean-error.h"
#include "qlean-json-channel-private.h"
#include "qlean-machine-private.h"
#include "qlean-run-logs-private.h"
#include "qlean-sync-private.h"
#include "qlean-task-private.h"
#include "qlean-util-private.h"
#include "qlean-wait.h"

/* The wait helpers poll, as the NixOS test driver and Testcontainers'
 * wait strategies do: a check every FIRST_INTERVAL_MS, backing off to
 * MAX_INTERVAL_MS, until it holds or the timeout passes. A timeout is
 * %G_IO_ERROR_TIMED_OUT with what the last check saw, since "waited 30 s
 * for port 80" alone never says why. Checks run through
 * qlean_machine_exec_async(), so they work in any guest with an agent,
 * with or without qlean-guest; the console check reads the log on the
 * host. Timers run on the caller's thread-default context. */
#define FIRST_INTERVAL_MS 100
#define MAX_INTERVAL_MS 1000
#define CONSOLE_TAIL_LINES 5
/* The console is scanned as it grows, a chunk at a time, with this much
 * of what came before kept for matches that span chunks: memory stays
 * bounded however much a guest writes, and a match may span up to this
 * much text. */
#define CONSOLE_CHUNK 65536
#define CONSOLE_WINDOW 65536
#define LAST_SEEN_MAX 400

typedef enum
{
  WAIT_FILE,
  WAIT_PORT,
  WAIT_UNIT,
  WAIT_CONSOLE,
  WAIT_SUCCEEDS,
} WaitKind;

typedef enum
{
  CHECK_DONE,
  CHECK_RETRY,
  CHECK_FAILED,
} CheckOutcome;

typedef struct
{
  WaitKind       kind;
  QleanMachine  *machine;
  char          *subject;        /* for messages: the path, port, unit,
                                  * pattern or command waited for */
  char          *command;        /* the shell command of a check */
  guint16        port;
  char          *unit;
  GRegex        *regex;
  QleanConsoleLog *console_log;  /* the run being read */
  guint64        console_offset; /* in its output */
  GString       *console;        /* the last text read (at most
                                  * CONSOLE_WINDOW and a chunk), valid UTF-8 */
  gboolean       console_mid_line; /* console does not start a line */

  guint          timeout_ms;
  gint64         deadline_us;
  guint          interval_ms;
  GCancellable  *attempt;        /* cancelled at the deadline */
  GSource       *deadline_timer;
  GSource       *retry_timer;
  GSource       *cancel_source;
  gboolean       in_flight;
  gboolean       timed_out;
  gboolean       done;
  char          *last_seen;
} Wait;

static void
wait_free (Wait *wait)
{
  qlean_clear_source (&wait->deadline_timer);
  qlean_clear_source (&wait->retry_timer);
  qlean_clear_source (&wait->cancel_source);
  g_clear_object (&wait->attempt);
  g_clear_object (&wait->machine);
  g_free (wait->subject);
  g_free (wait->command);
  g_free (wait->unit);
  g_clear_pointer (&wait->regex, g_regex_unref);
  if (wait->console != NULL)
    g_string_free (wait->console, TRUE);
  g_clear_pointer (&wait->console_log, qlean_console_log_unref);
  g_free (wait->last_seen);
  g_free (wait);
}

static void
set_last_seen (Wait       *wait,
               const char *seen)
{
  g_autofree char *text = g_utf8_make_valid (seen, -1);

  g_strstrip (text);
  if (strlen (text) > LAST_SEEN_MAX)
    {
      const char *cut = g_utf8_find_prev_char (text, text + LAST_SEEN_MAX);

      g_free (wait->last_seen);
      wait->last_seen = g_strdup_printf ("%.*s…", (int) (cut - text), text);
      return;
    }

  g_free (wait->last_seen);
  wait->last_seen = g_steal_pointer (&text);
}

/* Ends the wait; every path goes through here exactly once. */
static void
wait_return (GTask  *task,
             gpointer value,
             GError *error)
{
  Wait *wait = g_task_get_task_data (task);

  if (wait->done)
    {
      g_clear_error (&error);
      return;
    }
  wait->done = TRUE;

  qlean_clear_source (&wait->deadline_timer);
  qlean_clear_source (&wait->retry_timer);
  qlean_clear_source (&wait->cancel_source);

  if (error != NULL)
    g_task_return_error (task, error);
  else if (wait->kind == WAIT_CONSOLE)
    g_task_return_pointer (task, value, g_free);
  else if (wait->kind == WAIT_SUCCEEDS)
    g_task_return_pointer (task, value, g_object_unref);
  else
    g_task_return_boolean (task, TRUE);

  /* The loop's reference, taken in wait_run(). */
  g_object_unref (task);
}

static void
wait_return_timeout (GTask *task)
{
  Wait *wait = g_task_get_task_data (task);

  const char *format;

  /* One whole sentence per kind of wait, so that each translates; all
   * take the timeout, the subject, the machine and what was last seen. */
  switch (wait->kind)
    {
    case WAIT_FILE:
      format = _("Timed out after %u ms waiting for file %s in machine “%s”; last seen: %s");
      break;
    case WAIT_PORT:
      format = _("Timed out after %u ms waiting for TCP port %s to listen in machine “%s”; last seen: %s");
      break;
    case WAIT_UNIT:
      format = _("Timed out after %u ms waiting for unit %s to be active in machine “%s”; last seen: %s");
      break;
    case WAIT_CONSOLE:
      format = _("Timed out after %u ms waiting for console text /%s/ in machine “%s”; last seen: %s");
      break;
    case WAIT_SUCCEEDS:
    default:
      format = _("Timed out after %u ms waiting for “%s” to succeed in machine “%s”; last seen: %s");
      break;
    }
  wait_return (task, NULL,
               g_error_new (G_IO_ERROR, G_IO_ERROR_TIMED_OUT, format,
                            wait->timeout_ms, wait->subject,
                            qlean_machine_get_name (wait->machine),
                            wait->last_seen ? wait->last_seen : _("nothing yet")));
}

/* Checks */

static CheckOutcome
judge_file (Wait             *wait,
            QleanExecResult  *result,
            gpointer         *value,
            GError          **error)
{
  g_autofree char *err = qlean_exec_result_get_stderr_text (result);

  if (qlean_exec_result_success (result))
    return CHECK_DONE;

  set_last_seen (wait, err[0] != '\0' ? err : _("no such file"));
  return CHECK_RETRY;
}

/* /proc/net/tcp{,6}: "sl local_address rem_address st ...", with the
 * local address as HEXIP:HEXPORT and state 0A for LISTEN. */
static CheckOutcome
judge_port (Wait             *wait,
            QleanExecResult  *result,
            gpointer         *value,
            GError          **error)
{
  g_autofree char *text = qlean_exec_result_get_stdout_text (result);
  g_auto(GStrv) lines = g_strsplit (text, "\n", -1);
  g_autoptr(GString) listening = g_string_new (NULL);
  g_autoptr(GHashTable) seen = g_hash_table_new (NULL, NULL);

  for (guint i = 0; lines[i] != NULL; i++)
    {
      g_auto(GStrv) fields = g_strsplit_set (g_strstrip (lines[i]), " \t", -1);
      g_autoptr(GPtrArray) words = g_ptr_array_new ();
      const char *colon;
      guint64 port;

      for (guint j = 0; fields[j] != NULL; j++)
        if (fields[j][0] != '\0')
          g_ptr_array_add (words, fields[j]);

      if (words->len < 4 || !g_str_equal (g_ptr_array_index (words, 3), "0A"))
        continue;
      colon = strrchr (g_ptr_array_index (words, 1), ':');
      if (colon == NULL || !g_ascii_string_to_unsigned (colon + 1, 16, 0, G_MAXUINT16, &port, NULL))
        continue;

      if (port == wait->port)
        return CHECK_DONE;
      if (!g_hash_table_add (seen, GUINT_TO_POINTER ((guint) port)))
        continue;
      g_string_append_printf (listening, "%s%u", listening->len ? ", " : "", (guint) port);
    }

  if (listening->len > 0)
    {
      g_autofree char *seen_text = g_strdup_printf (_("TCP ports listening: %s"), listening->str);

      set_last_seen (wait, seen_text);
    }
  else
    set_last_seen (wait, _("no TCP port listening"));

  return CHECK_RETRY;
}

static CheckOutcome
judge_unit (Wait             *wait,
            QleanExecResult  *result,
            gpointer         *value,
            GError          **error)
{
  g_autofree char *out = g_strstrip (qlean_exec_result_get_stdout_text (result));
  g_autofree char *err = g_strstrip (qlean_exec_result_get_stderr_text (result));

  if (qlean_exec_result_success (result) && g_str_equal (out, "active"))
    return CHECK_DONE;

  /* The shell says 127 when there is no systemctl to run. */
  if (qlean_exec_result_get_exit_status (result) == 127)
    {
      g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_COMMAND_NOT_FOUND,
                   _("Cannot wait for unit %s in machine “%s”: it has no systemctl (%s); "
                     "waiting for units needs an image with systemd"),
                   wait->unit, qlean_machine_get_name (wait->machine), err);
      return CHECK_FAILED;
    }

  if (g_str_equal (out, "failed"))
    {
      g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
                   _("Unit %s failed in machine “%s”; see “systemctl status %s” there"),
                   wait->unit, qlean_machine_get_name (wait->machine), wait->unit);
      return CHECK_FAILED;
    }

  {
    g_autofree char *state = g_strdup_printf (_("unit state “%s”"),
                                              out[0] != '\0' ? out : err);

    set_last_seen (wait, state);
  }
  return CHECK_RETRY;
}

static CheckOutcome
judge_succeeds (Wait             *wait,
                QleanExecResult  *result,
                gpointer         *value,
                GError          **error)
{
  g_autofree char *out = qlean_exec_result_get_stdout_text (result);
  g_autofree char *err = qlean_exec_result_get_stderr_text (result);
  g_autofree char *status = NULL;
  g_autofree char *output = NULL;
  g_autofree char *seen = NULL;

  if (qlean_exec_result_success (result))
    {
      *value = g_object_ref (result);
      return CHECK_DONE;
    }

  if (qlean_exec_result_get_if_signaled (result))
    status = g_strdup_printf (_("killed by signal %d"), qlean_exec_result_get_signal (result));
  else
    status = g_strdup_printf (_("exit status %d"), qlean_exec_result_get_exit_status (result));

  output = g_strstrip (g_strconcat (out, err, NULL));
  seen = output[0] != '\0' ? g_strdup_printf ("%s, %s", status, output) : g_strdup (status);
  set_last_seen (wait, seen);

  return CHECK_RETRY;
}

/* Drops all but the last CONSOLE_WINDOW bytes of the text read, from a
 * line start when there is one in them. */
static void
console_trim (Wait *wait)
{
  GString *console = wait->console;
  const char *keep, *newline;

  if (console->len <= CONSOLE_WINDOW)
    return;

  keep = g_utf8_find_next_char (console->str + console->len - CONSOLE_WINDOW - 1, NULL);
  newline = memchr (keep, '\n', console->str + console->len - keep);
  if (newline != NULL)
    keep = newline + 1;
  wait->console_mid_line = newline == NULL;
  g_string_erase (console, 0, keep - console->str);
}

static gboolean
console_match (Wait     *wait,
               gpointer *value)
{
  g_autoptr(GMatchInfo) match = NULL;
  GRegexMatchFlags flags = wait->console_mid_line ? G_REGEX_MATCH_NOTBOL : 0;

  if (!g_regex_match_full (wait->regex, wait->console->str, wait->console->len, 0, flags,
                           &match, NULL))
    return FALSE;

  *value = g_match_info_fetch (match, 0);
  return TRUE;
}

/* The length of @data without an incomplete UTF-8 character at its end,
 * which the next read completes. */
static gsize
complete_utf8_len (const char *data,
                   gsize       len)
{
  for (gsize back = 1; back <= MIN (len, 4); back++)
    {
      guchar c = data[len - back];
      gsize need;

      if ((c & 0xc0) == 0x80)
        continue;
      need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
      return need > back ? len - back : len;
    }

  return len;
}

/* Scans what the console gained since the last check: only the new
 * bytes, with the window before them. */
static CheckOutcome
check_console (Wait     *wait,
               gpointer *value,
               GError  **error)
{
  g_autoptr(QleanConsoleLog) log = qlean_machine_ref_console_log (wait->machine);
  g_autoptr(GString) tail = g_string_new (NULL);
  g_autofree char *buffer = NULL;
  g_auto(GStrv) lines = NULL;
  gboolean scanned = FALSE;
  guint n_lines, first;

  if (log == NULL)
    {
      g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE,
                   _("Cannot read the console of machine “%s”: it is not running"),
                   qlean_machine_get_name (wait->machine));
      return CHECK_FAILED;
    }

  /* Another log is a new run's. */
  if (log != wait->console_log)
    {
      g_clear_pointer (&wait->console_log, qlean_console_log_unref);
      wait->console_log = qlean_console_log_ref (log);
      wait->console_offset = 0;
      wait->console_mid_line = FALSE;
      g_string_truncate (wait->console, 0);
    }

  /* What the guest wrote just now may still be in the console's pipe. */
  qlean_console_log_flush (log);
  buffer = g_malloc (CONSOLE_CHUNK);
  for (;;)
    {
      guint64 skipped = 0;
      gsize n = qlean_console_log_read (log, &wait->console_offset, buffer, CONSOLE_CHUNK,
                                        &skipped);
      gsize complete = complete_utf8_len (buffer, n);
      g_autofree char *valid = NULL;

      /* What was dropped from the file is gone: start again after it. */
      if (skipped > 0)
        {
          g_string_truncate (wait->console, 0);
          wait->console_mid_line = TRUE;
        }
      wait->console_offset -= n - complete;
      if (complete == 0)
        break;

      /* GRegex needs UTF-8; a console carries whatever the guest wrote. */
      valid = g_utf8_make_valid (buffer, complete);
      g_string_append (wait->console, valid);
      scanned = TRUE;
      if (console_match (wait, value))
        return CHECK_DONE;
      console_trim (wait);
    }

  /* Nothing new: a pattern may still match the text as it is (the first
   * check of an empty console). */
  if (!scanned && console_match (wait, value))
    return CHECK_DONE;

  lines = g_strsplit (wait->console->str, "\n", -1);
  n_lines = g_strv_length (lines);
  while (n_lines > 0 && g_strstrip (lines[n_lines - 1])[0] == '\0')
    n_lines--;
  first = n_lines > CONSOLE_TAIL_LINES ? n_lines - CONSOLE_TAIL_LINES : 0;
  for (guint i = first; i < n_lines; i++)
    g_string_append_printf (tail, "%s%s", tail->len ? " | " : "", g_strstrip (lines[i]));

  set_last_seen (wait, tail->len ? tail->str : _("an empty console"));
  return CHECK_RETRY;
}

/* The loop */

static void wait_attempt (GTask *task);

static gboolean
wait_retry_cb (gpointer user_data)
{
  GTask *task = user_data;
  Wait *wait = g_task_get_task_data (task);

  qlean_clear_source (&wait->retry_timer);
  wait_attempt (task);

  return G_SOURCE_REMOVE;
}

static void
wait_outcome (GTask        *task,
              CheckOutcome  outcome,
              gpointer      value,
              GError       *error)
{
  Wait *wait = g_task_get_task_data (task);
  gint64 remaining_ms;

  switch (outcome)
    {
    case CHECK_DONE:
      wait_return (task, value, NULL);
      return;
    case CHECK_FAILED:
      wait_return (task, NULL, error);
      return;
    case CHECK_RETRY:
      break;
    }

  remaining_ms = (wait->deadline_us - g_get_monotonic_time ()) / 1000;
  if (wait->timed_out || remaining_ms <= 0)
    {
      wait_return_timeout (task);
      return;
    }

  wait->retry_timer = qlean_add_timeout (g_task_get_context (task),
                                         MIN ((gint64) wait->interval_ms, remaining_ms),
                                         wait_retry_cb, task);
  wait->interval_ms = MIN (wait->interval_ms * 2, MAX_INTERVAL_MS);
}

static void
wait_exec_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  Wait *wait = g_task_get_task_data (task);
  g_autoptr(QleanExecResult) exec_result = NULL;
  GError *error = NULL;
  gpointer value = NULL;
  CheckOutcome outcome = CHECK_FAILED;

  wait->in_flight = FALSE;
  exec_result = qlean_machine_exec_finish (QLEAN_MACHINE (source), result, &error);

  if (exec_result == NULL)
    {
      if (wait->timed_out && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        {
          g_clear_error (&error);
          wait_return_timeout (task);
          return;
        }
      wait_outcome (task, CHECK_FAILED, NULL, error);
      return;
    }

  switch (wait->kind)
    {
    case WAIT_FILE:
      outcome = judge_file (wait, exec_result, &value, &error);
      break;
    case WAIT_PORT:
      outcome = judge_port (wait, exec_result, &value, &error);
      break;
    case WAIT_UNIT:
      outcome = judge_unit (wait, exec_result, &value, &error);
      break;
    case WAIT_SUCCEEDS:
      outcome = judge_succeeds (wait, exec_result, &value, &error);
      break;
    case WAIT_CONSOLE:
    default:
      g_assert_not_reached ();
    }

  wait_outcome (task, outcome, value, error);
}

static void
wait_attempt (GTask *task)
{
  Wait *wait = g_task_get_task_data (task);

  if (wait->done)
    return;

  if (wait->kind == WAIT_CONSOLE)
    {
      gpointer value = NULL;
      GError *error = NULL;
      CheckOutcome outcome = check_console (wait, &value, &error);

      wait_outcome (task, outcome, value, error);
      return;
    }

  wait->in_flight = TRUE;
  qlean_machine_exec_async (wait->machine, wait->command, wait->attempt,
                            wait_exec_cb, g_object_ref (task));
}

static gboolean
wait_deadline_cb (gpointer user_data)
{
  GTask *task = user_data;
  Wait *wait = g_task_get_task_data (task);

  qlean_clear_source (&wait->deadline_timer);
  wait->timed_out = TRUE;

  /* A check in flight ends with the cancellation, and reports then. */
  if (wait->in_flight)
    g_cancellable_cancel (wait->attempt);
  else
    wait_return_timeout (task);

  return G_SOURCE_REMOVE;
}

static gboolean
wait_cancelled_cb (gpointer user_data)
{
  GTask *task = user_data;
  Wait *wait = g_task_get_task_data (task);

  qlean_clear_source (&wait->cancel_source);
  if (wait->in_flight)
    g_cancellable_cancel (wait->attempt);
  wait_return (task, NULL, g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                                _("The wait was cancelled")));

  return G_SOURCE_REMOVE;
}

static GTask *
wait_task_new (QleanMachine        *machine,
               WaitKind             kind,
               guint                timeout_ms,
               GCancellable        *cancellable,
               gpointer             source_tag,
               GAsyncReadyCallback  callback,
               gpointer             user_data)
{
  GTask *task = qlean_task_new (machine, cancellable, callback, user_data,
                                source_tag, "[qlean] wait");
  Wait *wait = g_new0 (Wait, 1);


  wait->kind = kind;
  wait->machine = g_object_ref (machine);
  wait->timeout_ms = timeout_ms;
  wait->interval_ms = FIRST_INTERVAL_MS;
  wait->attempt = g_cancellable_new ();
  g_task_set_task_data (task, wait, (GDestroyNotify) wait_free);

  return task;
}

/* Starts the loop, which holds a reference on the task until
 * wait_return(). The loop's sources point at the task without a
 * reference: wait_return() destroys them. */
static void
wait_run (GTask *task)
{
  Wait *wait = g_task_get_task_data (task);
  GMainContext *context = g_task_get_context (task);

  if (qlean_machine_get_state (wait->machine) != QLEAN_MACHINE_STATE_RUNNING &&
      qlean_machine_get_state (wait->machine) != QLEAN_MACHINE_STATE_PAUSED)
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE,
                               _("Cannot wait in machine “%s”: it is not running"),
                               qlean_machine_get_name (wait->machine));
      return;
    }

  g_object_ref (task);
  wait->deadline_us = g_get_monotonic_time () + (gint64) wait->timeout_ms * 1000;
  if (wait->timeout_ms > 0)
    wait->deadline_timer = qlean_add_timeout (context, wait->timeout_ms, wait_deadline_cb, task);
  wait->cancel_source = qlean_add_cancel (context, g_task_get_cancellable (task),
                                          wait_cancelled_cb, task);
  wait_attempt (task);
}

static gpointer
wait_propagate (QleanMachine  *self,
                GAsyncResult  *result,
                gpointer       source_tag,
                GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == source_tag, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/* File */

/**
 * qlean_machine_wait_for_file_async:
 * @self: a running #QleanMachine
 * @path: a path in the guest
 * @timeout_ms: how long to wait; 0 checks once
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when the file exists, or the wait failed
 * @user_data: data for @callback
 *
 * Waits until @path exists in the guest (`test -e`), checking every
 * 100 ms at first and every second later. Fails with
 * %G_IO_ERROR_TIMED_OUT when @timeout_ms passes first; the message says
 * what the last check saw.
 *
 * Since: 0.1
 */
void
qlean_machine_wait_for_file_async (QleanMachine        *self,
                                   const char          *path,
                                   guint                timeout_ms,
                                   GCancellable        *cancellable,
                                   GAsyncReadyCallback  callback,
                                   gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autofree char *quoted = NULL;
  Wait *wait;

  g_return_if_fail (QLEAN_IS_MACHINE (self));
  g_return_if_fail (path != NULL);

  task = wait_task_new (self, WAIT_FILE, timeout_ms, cancellable,
                        qlean_machine_wait_for_file_async, callback, user_data);
  wait = g_task_get_task_data (task);
  quoted = g_shell_quote (path);
  wait->subject = g_strdup (path);
  wait->command = g_strdup_printf ("test -e %s", quoted);
  wait_run (task);
}

/**
 * qlean_machine_wait_for_file_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_machine_wait_for_file_async().
 *
 * Returns: %TRUE when the file exists
 *
 * Since: 0.1
 */
gboolean
qlean_machine_wait_for_file_finish (QleanMachine  *self,
                                    GAsyncResult  *result,
                                    GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_wait_for_file_async), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_machine_wait_for_file:
 * @self: a running #QleanMachine
 * @path: a path in the guest
 * @timeout_ms: how long to wait; 0 checks once
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_wait_for_file_async().
 *
 * Returns: %TRUE when the file exists
 *
 * Since: 0.1
 */
gboolean
qlean_machine_wait_for_file (QleanMachine  *self,
                             const char    *path,
                             guint          timeout_ms,
                             GCancellable  *cancellable,
                             GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!qlean_sync_call_begin (&call, error))
    return FALSE;
  qlean_machine_wait_for_file_async (self, path, timeout_ms, cancellable,
                                     qlean_sync_call_done, &call);

  return qlean_machine_wait_for_file_finish (self, qlean_sync_call_wait (&call), error);
}

/* Port */

/**
 * qlean_machine_wait_for_port_async:
 * @self: a running #QleanMachine
 * @port: a TCP port
 * @timeout_ms: how long to wait; 0 checks once
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when the port listens, or the wait failed
 * @user_data: data for @callback
 *
 * Waits until a TCP socket listens on @port in the guest, on any
 * address, IPv4 or IPv6. The guest's `/proc/net/tcp` and
 * `/proc/net/tcp6` are read (no `ss` or `netstat` needed). A timeout
 * says which ports did listen.
 *
 * Since: 0.1
 */
void
qlean_machine_wait_for_port_async (QleanMachine        *self,
                                   guint16              port,
                                   guint                timeout_ms,
                                   GCancellable        *cancellable,
                                   GAsyncReadyCallback  callback,
                                   gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  Wait *wait;

  g_return_if_fail (QLEAN_IS_MACHINE (self));

  task = wait_task_new (self, WAIT_PORT, timeout_ms, cancellable,
                        qlean_machine_wait_for_port_async, callback, user_data);
  wait = g_task_get_task_data (task);
  wait->port = port;
  wait->subject = g_strdup_printf ("%u", port);
  wait->command = g_strdup ("cat /proc/net/tcp /proc/net/tcp6 2>/dev/null");
  wait_run (task);
}

/**
 * qlean_machine_wait_for_port_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_machine_wait_for_port_async().
 *
 * Returns: %TRUE when the port listens
 *
 * Since: 0.1
 */
gboolean
qlean_machine_wait_for_port_finish (QleanMachine  *self,
                                    GAsyncResult  *result,
                                    GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_wait_for_port_async), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_machine_wait_for_port:
 * @self: a running #QleanMachine
 * @port: a TCP port
 * @timeout_ms: how long to wait; 0 checks once
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_wait_for_port_async().
 *
 * Returns: %TRUE when the port listens
 *
 * Since: 0.1
 */
gboolean
qlean_machine_wait_for_port (QleanMachine  *self,
                             guint16        port,
                             guint          timeout_ms,
                             GCancellable  *cancellable,
                             GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!qlean_sync_call_begin (&call, error))
    return FALSE;
  qlean_machine_wait_for_port_async (self, port, timeout_ms, cancellable,
                                     qlean_sync_call_done, &call);

  return qlean_machine_wait_for_port_finish (self, qlean_sync_call_wait (&call), error);
}

/* Unit */

/**
 * qlean_machine_wait_for_unit_async:
 * @self: a running #QleanMachine
 * @unit: a systemd unit, such as `ssh.service`
 * @timeout_ms: how long to wait; 0 checks once
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when the unit is active, or the wait failed
 * @user_data: data for @callback
 *
 * Waits until `systemctl is-active @unit` says `active`. Fails at once
 * when the unit has failed (%QLEAN_MACHINE_ERROR_FAILED) or the guest
 * has no systemctl (%QLEAN_MACHINE_ERROR_COMMAND_NOT_FOUND); a timeout
 * says the unit's last state.
 *
 * Since: 0.1
 */
void
qlean_machine_wait_for_unit_async (QleanMachine        *self,
                                   const char          *unit,
                                   guint                timeout_ms,
                                   GCancellable        *cancellable,
                                   GAsyncReadyCallback  callback,
                                   gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autofree char *quoted = NULL;
  Wait *wait;

  g_return_if_fail (QLEAN_IS_MACHINE (self));
  g_return_if_fail (unit != NULL);

  task = wait_task_new (self, WAIT_UNIT, timeout_ms, cancellable,
                        qlean_machine_wait_for_unit_async, callback, user_data);
  wait = g_task_get_task_data (task);
  quoted = g_shell_quote (unit);
  wait->unit = g_strdup (unit);
  wait->subject = g_strdup (unit);
  wait->command = g_strdup_printf ("systemctl is-active %s", quoted);
  wait_run (task);
}

/**
 * qlean_machine_wait_for_unit_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_machine_wait_for_unit_async().
 *
 * Returns: %TRUE when the unit is active
 *
 * Since: 0.1
 */
gboolean
qlean_machine_wait_for_unit_finish (QleanMachine  *self,
                                    GAsyncResult  *result,
                                    GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_wait_for_unit_async), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_machine_wait_for_unit:
 * @self: a running #QleanMachine
 * @unit: a systemd unit, such as `ssh.service`
 * @timeout_ms: how long to wait; 0 checks once
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_wait_for_unit_async().
 *
 * Returns: %TRUE when the unit is active
 *
 * Since: 0.1
 */
gboolean
qlean_machine_wait_for_unit (QleanMachine  *self,
                             const char    *unit,
                             guint          timeout_ms,
                             GCancellable  *cancellable,
                             GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!qlean_sync_call_begin (&call, error))
    return FALSE;
  qlean_machine_wait_for_unit_async (self, unit, timeout_ms, cancellable,
                                     qlean_sync_call_done, &call);

  return qlean_machine_wait_for_unit_finish (self, qlean_sync_call_wait (&call), error);
}

/* Console */

/**
 * qlean_machine_wait_for_console_text_async:
 * @self: a running #QleanMachine
 * @regex: a Perl-compatible regular expression (#GRegex syntax,
 *   multi-line: `^` and `$` match at line ends)
 * @timeout_ms: how long to wait; 0 checks once
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when the text appears, or the wait failed
 * @user_data: data for @callback
 *
 * Waits until @regex matches the serial console log of the current run,
 * anywhere from its start: text written before the call counts. The log
 * is scanned as it grows, and a match may span up to 64 KiB of it; what
 * the console file dropped (see qlean_machine_get_console_path()) is
 * never seen. A timeout shows the console's last lines. An invalid
 * @regex fails at once with a #GRegexError.
 *
 * Since: 0.1
 */
void
qlean_machine_wait_for_console_text_async (QleanMachine        *self,
                                           const char          *regex,
                                           guint                timeout_ms,
                                           GCancellable        *cancellable,
                                           GAsyncReadyCallback  callback,
                                           gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  GError *error = NULL;
  Wait *wait;

  g_return_if_fail (QLEAN_IS_MACHINE (self));
  g_return_if_fail (regex != NULL);

  task = wait_task_new (self, WAIT_CONSOLE, timeout_ms, cancellable,
                        qlean_machine_wait_for_console_text_async, callback, user_data);
  wait = g_task_get_task_data (task);
  wait->subject = g_strdup (regex);
  wait->console = g_string_new (NULL);
  wait->regex = g_regex_new (regex, G_REGEX_MULTILINE, 0, &error);
  if (wait->regex == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  wait_run (task);
}

/**
 * qlean_machine_wait_for_console_text_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_machine_wait_for_console_text_async().
 *
 * Returns: (transfer full): the text that matched, or %NULL with @error
 *   set
 *
 * Since: 0.1
 */
char *
qlean_machine_wait_for_console_text_finish (QleanMachine  *self,
                                            GAsyncResult  *result,
                                            GError       **error)
{
  return wait_propagate (self, result, qlean_machine_wait_for_console_text_async, error);
}

/**
 * qlean_machine_wait_for_console_text:
 * @self: a running #QleanMachine
 * @regex: a regular expression, as for
 *   qlean_machine_wait_for_console_text_async()
 * @timeout_ms: how long to wait; 0 checks once
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_wait_for_console_text_async().
 *
 * Returns: (transfer full): the text that matched, or %NULL with @error
 *   set
 *
 * Since: 0.1
 */
char *
qlean_machine_wait_for_console_text (QleanMachine  *self,
                                     const char    *regex,
                                     guint          timeout_ms,
                                     GCancellable  *cancellable,
                                     GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!qlean_sync_call_begin (&call, error))
    return NULL;
  qlean_machine_wait_for_console_text_async (self, regex, timeout_ms, cancellable,
                                             qlean_sync_call_done, &call);

  return qlean_machine_wait_for_console_text_finish (self, qlean_sync_call_wait (&call), error);
}

/* Until succeeds */

/**
 * qlean_machine_wait_until_succeeds_async:
 * @self: a running #QleanMachine
 * @argv: (array zero-terminated=1): the program and its arguments
 * @timeout_ms: how long to wait; 0 runs it once
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when the command succeeded, or the wait failed
 * @user_data: data for @callback
 *
 * Runs @argv in the guest, as root, again and again until it exits with
 * status 0. Each argument reaches the program as it is (they are quoted
 * for the guest's shell). A timeout shows the last run's exit status
 * and output; a run still going at the deadline is cancelled.
 *
 * Since: 0.1
 */
void
qlean_machine_wait_until_succeeds_async (QleanMachine        *self,
                                         const char * const  *argv,
                                         guint                timeout_ms,
                                         GCancellable        *cancellable,
                                         GAsyncReadyCallback  callback,
                                         gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autoptr(GString) command = g_string_new (NULL);
  Wait *wait;

  g_return_if_fail (QLEAN_IS_MACHINE (self));

  task = wait_task_new (self, WAIT_SUCCEEDS, timeout_ms, cancellable,
                        qlean_machine_wait_until_succeeds_async, callback, user_data);
  wait = g_task_get_task_data (task);

  if (argv == NULL || argv[0] == NULL)
    {
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                               _("No program to run: the argument vector is empty"));
      return;
    }

  for (guint i = 0; argv[i] != NULL; i++)
    {
      g_autofree char *quoted = g_shell_quote (argv[i]);

      g_string_append_printf (command, "%s%s", i ? " " : "", quoted);
    }
  wait->subject = g_strdup (command->str);
  wait->command = g_string_free (g_steal_pointer (&command), FALSE);
  wait_run (task);
}

/**
 * qlean_machine_wait_until_succeeds_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_machine_wait_until_succeeds_async().
 *
 * Returns: (transfer full): the successful run's result, or %NULL with
 *   @error set
 *
 * Since: 0.1
 */
QleanExecResult *
qlean_machine_wait_until_succeeds_finish (QleanMachine  *self,
                                          GAsyncResult  *result,
                                          GError       **error)
{
  return wait_propagate (self, result, qlean_machine_wait_until_succeeds_async, error);
}

/**
 * qlean_machine_wait_until_succeeds:
 * @self: a running #QleanMachine
 * @argv: (array zero-terminated=1): the program and its arguments
 * @timeout_ms: how long to wait; 0 runs it once
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_wait_until_succeeds_async().
 *
 * Returns: (transfer full): the successful run's result, or %NULL with
 *   @error set
 *
 * Since: 0.1
 */
QleanExecResult *
qlean_machine_wait_until_succeeds (QleanMachine        *self,
                                   const char * const  *argv,
                                   guint                timeout_ms,
                                   GCancellable        *cancellable,
                                   GError             **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!qlean_sync_call_begin (&call, error))
    return NULL;
  qlean_machine_wait_until_succeeds_async (self, argv, timeout_ms, cancellable,
                                           qlean_sync_call_done, &call);

  return qlean_machine_wait_until_succeeds_finish (self, qlean_sync_call_wait (&call), error);
}
