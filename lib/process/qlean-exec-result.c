/* qlean-exec-result.c: how a command in the guest ended, and what it printed
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <glib/gi18n-lib.h>

#include "qlean-error.h"
#include "qlean-exec-result.h"
#include "qlean-util-private.h"

/**
 * QleanExecResult:
 *
 * The outcome of [method@Machine.exec]: the exit status and the signal
 * that ended the process, kept apart (a process killed by signal 9 has no
 * exit status, and is not the same as one that called `exit(137)`), and
 * everything it wrote to standard output and standard error.
 *
 * Since: 0.1
 */

struct _QleanExecResult
{
  GObject   parent_instance;

  gint      exit_status;
  gint      term_signal;
  GBytes   *stdout_bytes;
  GBytes   *stderr_bytes;
  gboolean  stdout_truncated;
  gboolean  stderr_truncated;
};

G_DEFINE_FINAL_TYPE (QleanExecResult, qlean_exec_result, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_EXIT_STATUS,
  PROP_SIGNAL,
  PROP_STDOUT,
  PROP_STDERR,
  PROP_STDOUT_TRUNCATED,
  PROP_STDERR_TRUNCATED,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void
qlean_exec_result_finalize (GObject *object)
{
  QleanExecResult *self = QLEAN_EXEC_RESULT (object);

  g_clear_pointer (&self->stdout_bytes, g_bytes_unref);
  g_clear_pointer (&self->stderr_bytes, g_bytes_unref);

  G_OBJECT_CLASS (qlean_exec_result_parent_class)->finalize (object);
}

static void
qlean_exec_result_get_property (GObject    *object,
                                guint       prop_id,
                                GValue     *value,
                                GParamSpec *pspec)
{
  QleanExecResult *self = QLEAN_EXEC_RESULT (object);

  switch (prop_id)
    {
    case PROP_EXIT_STATUS: g_value_set_int (value, self->exit_status); break;
    case PROP_SIGNAL: g_value_set_int (value, self->term_signal); break;
    case PROP_STDOUT: g_value_set_boxed (value, self->stdout_bytes); break;
    case PROP_STDERR: g_value_set_boxed (value, self->stderr_bytes); break;
    case PROP_STDOUT_TRUNCATED: g_value_set_boolean (value, self->stdout_truncated); break;
    case PROP_STDERR_TRUNCATED: g_value_set_boolean (value, self->stderr_truncated); break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
qlean_exec_result_class_init (QleanExecResultClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GParamFlags flags = G_PARAM_READABLE | G_PARAM_STATIC_STRINGS;

  object_class->finalize = qlean_exec_result_finalize;
  object_class->get_property = qlean_exec_result_get_property;

  /**
   * QleanExecResult:exit-status:
   *
   * The exit status, or -1 when a signal ended the process.
   *
   * Since: 0.1
   */
  properties[PROP_EXIT_STATUS] =
    g_param_spec_int ("exit-status", NULL, NULL, -1, 255, -1, flags);

  /**
   * QleanExecResult:signal:
   *
   * The signal that ended the process, or 0.
   *
   * Since: 0.1
   */
  properties[PROP_SIGNAL] =
    g_param_spec_int ("signal", NULL, NULL, 0, 128, 0, flags);

  /**
   * QleanExecResult:stdout:
   *
   * Everything the process wrote to standard output.
   *
   * Since: 0.1
   */
  properties[PROP_STDOUT] =
    g_param_spec_boxed ("stdout", NULL, NULL, G_TYPE_BYTES, flags);

  /**
   * QleanExecResult:stderr:
   *
   * Everything the process wrote to standard error.
   *
   * Since: 0.1
   */
  properties[PROP_STDERR] =
    g_param_spec_boxed ("stderr", NULL, NULL, G_TYPE_BYTES, flags);

  /**
   * QleanExecResult:stdout-truncated:
   *
   * Whether standard output was cut short by the cap on captured output
   * (64 MiB through qlean-guest, 16 MiB through the guest agent).
   *
   * Since: 0.1
   */
  properties[PROP_STDOUT_TRUNCATED] =
    g_param_spec_boolean ("stdout-truncated", NULL, NULL, FALSE, flags);

  /**
   * QleanExecResult:stderr-truncated:
   *
   * Whether standard error was cut short by the cap on captured output
   * (64 MiB through qlean-guest, 16 MiB through the guest agent).
   *
   * Since: 0.1
   */
  properties[PROP_STDERR_TRUNCATED] =
    g_param_spec_boolean ("stderr-truncated", NULL, NULL, FALSE, flags);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
qlean_exec_result_init (QleanExecResult *self)
{
}

/**
 * qlean_exec_result_new:
 * @exit_status: the exit status, or -1 when a signal ended the process
 * @term_signal: the terminating signal, or 0
 * @stdout_bytes: (nullable): standard output
 * @stderr_bytes: (nullable): standard error
 * @stdout_truncated: whether standard output was cut short
 * @stderr_truncated: whether standard error was cut short
 *
 * Creates a result; useful for tests and for wrappers.
 *
 * Returns: (transfer full): a new #QleanExecResult
 *
 * Since: 0.1
 */
QleanExecResult *
qlean_exec_result_new (gint      exit_status,
                       gint      term_signal,
                       GBytes   *stdout_bytes,
                       GBytes   *stderr_bytes,
                       gboolean  stdout_truncated,
                       gboolean  stderr_truncated)
{
  QleanExecResult *self = g_object_new (QLEAN_TYPE_EXEC_RESULT, NULL);

  self->exit_status = term_signal != 0 ? -1 : exit_status;
  self->term_signal = term_signal;
  self->stdout_bytes = stdout_bytes ? g_bytes_ref (stdout_bytes) : g_bytes_new (NULL, 0);
  self->stderr_bytes = stderr_bytes ? g_bytes_ref (stderr_bytes) : g_bytes_new (NULL, 0);
  self->stdout_truncated = stdout_truncated;
  self->stderr_truncated = stderr_truncated;

  return self;
}

/**
 * qlean_exec_result_get_exit_status:
 * @self: a #QleanExecResult
 *
 * Returns: the exit status, or -1 when a signal ended the process
 *
 * Since: 0.1
 */
gint
qlean_exec_result_get_exit_status (QleanExecResult *self)
{
  g_return_val_if_fail (QLEAN_IS_EXEC_RESULT (self), -1);

  return self->exit_status;
}

/**
 * qlean_exec_result_get_signal:
 * @self: a #QleanExecResult
 *
 * Returns: the signal that ended the process, or 0 if it exited
 *
 * Since: 0.1
 */
gint
qlean_exec_result_get_signal (QleanExecResult *self)
{
  g_return_val_if_fail (QLEAN_IS_EXEC_RESULT (self), 0);

  return self->term_signal;
}

/**
 * qlean_exec_result_get_if_signaled:
 * @self: a #QleanExecResult
 *
 * Returns: whether a signal ended the process
 *
 * Since: 0.1
 */
gboolean
qlean_exec_result_get_if_signaled (QleanExecResult *self)
{
  g_return_val_if_fail (QLEAN_IS_EXEC_RESULT (self), FALSE);

  return self->term_signal != 0;
}

/**
 * qlean_exec_result_success:
 * @self: a #QleanExecResult
 *
 * Returns: whether the process exited with status 0
 *
 * Since: 0.1
 */
gboolean
qlean_exec_result_success (QleanExecResult *self)
{
  g_return_val_if_fail (QLEAN_IS_EXEC_RESULT (self), FALSE);

  return self->term_signal == 0 && self->exit_status == 0;
}

/**
 * qlean_exec_result_get_stdout:
 * @self: a #QleanExecResult
 *
 * Returns: (transfer none): standard output
 *
 * Since: 0.1
 */
GBytes *
qlean_exec_result_get_stdout (QleanExecResult *self)
{
  g_return_val_if_fail (QLEAN_IS_EXEC_RESULT (self), NULL);

  return self->stdout_bytes;
}

/**
 * qlean_exec_result_get_stderr:
 * @self: a #QleanExecResult
 *
 * Returns: (transfer none): standard error
 *
 * Since: 0.1
 */
GBytes *
qlean_exec_result_get_stderr (QleanExecResult *self)
{
  g_return_val_if_fail (QLEAN_IS_EXEC_RESULT (self), NULL);

  return self->stderr_bytes;
}

static char *
bytes_to_text (GBytes *bytes)
{
  gsize len;
  const char *data = g_bytes_get_data (bytes, &len);

  return g_utf8_make_valid (data ? data : "", len);
}

/**
 * qlean_exec_result_get_stdout_text:
 * @self: a #QleanExecResult
 *
 * Standard output as text; bytes that are not UTF-8 become U+FFFD.
 *
 * Returns: (transfer full): standard output as a string
 *
 * Since: 0.1
 */
char *
qlean_exec_result_get_stdout_text (QleanExecResult *self)
{
  g_return_val_if_fail (QLEAN_IS_EXEC_RESULT (self), NULL);

  return bytes_to_text (self->stdout_bytes);
}

/**
 * qlean_exec_result_get_stderr_text:
 * @self: a #QleanExecResult
 *
 * Standard error as text; bytes that are not UTF-8 become U+FFFD.
 *
 * Returns: (transfer full): standard error as a string
 *
 * Since: 0.1
 */
char *
qlean_exec_result_get_stderr_text (QleanExecResult *self)
{
  g_return_val_if_fail (QLEAN_IS_EXEC_RESULT (self), NULL);

  return bytes_to_text (self->stderr_bytes);
}

/**
 * qlean_exec_result_get_stdout_truncated:
 * @self: a #QleanExecResult
 *
 * Returns: whether standard output was cut short by the agent's cap
 *
 * Since: 0.1
 */
gboolean
qlean_exec_result_get_stdout_truncated (QleanExecResult *self)
{
  g_return_val_if_fail (QLEAN_IS_EXEC_RESULT (self), FALSE);

  return self->stdout_truncated;
}

/**
 * qlean_exec_result_get_stderr_truncated:
 * @self: a #QleanExecResult
 *
 * Returns: whether standard error was cut short by the agent's cap
 *
 * Since: 0.1
 */
gboolean
qlean_exec_result_get_stderr_truncated (QleanExecResult *self)
{
  g_return_val_if_fail (QLEAN_IS_EXEC_RESULT (self), FALSE);

  return self->stderr_truncated;
}

/**
 * qlean_exec_result_check:
 * @self: a #QleanExecResult
 * @error: return location for a #GError
 *
 * Turns a failed command into an error, like g_subprocess_wait_check():
 * a non-zero exit status or a signal gives %G_SPAWN_EXIT_ERROR or
 * %G_IO_ERROR_FAILED, with standard error in the message.
 *
 * Returns: %TRUE if the process exited with status 0
 *
 * Since: 0.1
 */
gboolean
qlean_exec_result_check (QleanExecResult  *self,
                         GError          **error)
{
  g_autofree char *err = NULL;

  g_return_val_if_fail (QLEAN_IS_EXEC_RESULT (self), FALSE);

  if (qlean_exec_result_success (self))
    return TRUE;

  err = qlean_bytes_to_message (self->stderr_bytes);
  if (self->term_signal != 0)
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                 _("The command was killed by signal %d%s%s"),
                 self->term_signal, *err ? ": " : "", err);
  else
    g_set_error (error, G_SPAWN_EXIT_ERROR, self->exit_status,
                 _("The command exited with status %d%s%s"),
                 self->exit_status, *err ? ": " : "", err);

  return FALSE;
}
