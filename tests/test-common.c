/* test-common.c: what the integration tests on real QEMU share
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include "test-common.h"

static QleanMachine *shared_machine;

/* The messages of the "qlean" domain, for test_logged(). */
static GMutex log_lock;
static GString *log_messages;
static GLogLevelFlags log_levels = G_LOG_LEVEL_MESSAGE;

static GLogWriterOutput
log_writer (GLogLevelFlags   level,
            const GLogField *fields,
            gsize            n_fields,
            gpointer         user_data)
{
  const char *domain = NULL, *message = NULL;

  for (gsize i = 0; i < n_fields; i++)
    {
      if (g_str_equal (fields[i].key, "GLIB_DOMAIN"))
        domain = fields[i].value;
      else if (g_str_equal (fields[i].key, "MESSAGE"))
        message = fields[i].value;
    }

  if ((level & log_levels) && g_strcmp0 (domain, "qlean") == 0 && message != NULL)
    {
      g_mutex_lock (&log_lock);
      g_string_append_printf (log_messages, "%s\n", message);
      g_mutex_unlock (&log_lock);
    }

  return g_log_writer_default (level, fields, n_fields, user_data);
}

gboolean
test_logged (const char *pattern)
{
  g_auto(GStrv) lines = NULL;
  gboolean found = FALSE;

  g_mutex_lock (&log_lock);
  lines = g_strsplit (log_messages->str, "\n", -1);
  g_string_truncate (log_messages, 0);
  g_mutex_unlock (&log_lock);

  for (guint i = 0; lines[i] != NULL && !found; i++)
    found = g_pattern_match_simple (pattern, lines[i]);

  return found;
}

void
test_log_capture (void)
{
  log_messages = g_string_new (NULL);
  g_log_set_writer_func (log_writer, NULL, NULL);
}

void
test_log_capture_debug (void)
{
  log_levels |= G_LOG_LEVEL_DEBUG;
  test_log_capture ();
}

gboolean
test_have_qemu (void)
{
  g_autofree char *qemu = g_find_program_in_path ("qemu-system-x86_64");

  if (qemu == NULL)
    {
      g_test_skip ("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)");
      return FALSE;
    }

  return TRUE;
}

QleanMachine *
test_shared_machine (void)
{
  g_autoptr(GError) error = NULL;

  if (!test_have_qemu ())
    return NULL;

  if (shared_machine == NULL)
    {
      shared_machine = qlean_machine_new (NULL, NULL);
      qlean_machine_spawn (shared_machine, NULL, &error);
      g_assert_no_error (error);
    }

  g_assert_cmpint (qlean_machine_get_state (shared_machine), ==, QLEAN_MACHINE_STATE_RUNNING);
  return shared_machine;
}

void
test_shared_machine_end (void)
{
  if (shared_machine != NULL &&
      qlean_machine_get_state (shared_machine) == QLEAN_MACHINE_STATE_RUNNING)
    qlean_machine_shutdown (shared_machine, NULL, NULL);
  g_clear_object (&shared_machine);
}

QleanExecResult *
test_run (QleanMachine *machine,
          const char   *command)
{
  g_autoptr(GError) error = NULL;
  QleanExecResult *result = qlean_machine_exec (machine, command, NULL, &error);

  g_assert_no_error (error);
  g_assert_nonnull (result);
  return result;
}

char *
test_run_out (QleanMachine *machine,
              const char   *command)
{
  g_autoptr(QleanExecResult) result = test_run (machine, command);

  if (!qlean_exec_result_success (result))
    {
      g_autofree char *err = qlean_exec_result_get_stderr_text (result);

      g_error ("“%s” failed (status %d, signal %d): %s", command,
               qlean_exec_result_get_exit_status (result), qlean_exec_result_get_signal (result),
               err);
    }
  return qlean_exec_result_get_stdout_text (result);
}

char *
test_run_text (QleanMachine *machine,
               const char   *command)
{
  return g_strstrip (test_run_out (machine, command));
}

static gint64
guest_counter (QleanMachine *machine)
{
  g_autofree char *out = test_run_text (machine, "cat /root/counter");

  return g_ascii_strtoll (out, NULL, 10);
}

void
test_wait_counter_moves (QleanMachine *machine)
{
  gint64 first = guest_counter (machine);

  for (guint i = 0; i < 100 && guest_counter (machine) == first; i++)
    g_usleep (G_USEC_PER_SEC / 10);
  g_assert_cmpint (guest_counter (machine), >, first);
}

void
test_start_counter (QleanMachine *machine)
{
  g_free (test_run_text (machine, "sh -c 'i=0; while :; do i=$((i + 1)); echo $i > /root/counter; "
                                  "sleep 0.1; done' </dev/null >/dev/null 2>&1 &"));
  test_wait_counter_moves (machine);
}

char *
test_qemu_cmdline (QleanMachine *machine)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/cmdline", (int) qlean_machine_get_pid (machine));
  char *text = NULL;
  gsize length = 0;

  g_assert_true (g_file_get_contents (path, &text, &length, NULL));
  for (gsize i = 0; i + 1 < length; i++)
    if (text[i] == '\0')
      text[i] = ' ';
  return text;
}
