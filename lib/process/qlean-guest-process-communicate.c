/* qlean-guest-process-communicate.c: a guest process's output read to its end
 *
 * SPDX-License-Identifier: MIT
 *
 * qlean_guest_process_communicate() and its twins, as GSubprocess has
 * them: feed stdin, read each output pipe into memory (bounded, so that
 * a runaway guest cannot fill the host), wait for the end. They use the
 * process only through its pipes and its wait, as any caller could, so
 * they live apart from the process's run (qlean-guest-process.c).
 */

#include "config.h"

#include <string.h>
#include <glib/gi18n-lib.h>

#include "qlean-error.h"
#include "qlean-guest-process-private.h"
#include "qlean-sync-private.h"
#include "qlean-task-private.h"

/* One output pipe read to its end, keeping at most @limit bytes: what
 * comes beyond is read and dropped, so that the process never blocks on
 * a full pipe and memory stays bounded whatever it writes. */
typedef struct
{
  GTask        *task;       /* the communicate; unowned (its pending count) */
  GInputStream *pipe;
  GByteArray   *kept;
  gsize         limit;
  gboolean      truncated;
  guint8        buffer[64 * 1024];
} Collector;

typedef struct
{
  Collector *out;
  Collector *err;
  guint      pending;
  GError    *error;
} Communicate;

static void
collector_free (Collector *collector)
{
  if (collector == NULL)
    return;

  g_clear_object (&collector->pipe);
  g_clear_pointer (&collector->kept, g_byte_array_unref);
  g_free (collector);
}

static void
communicate_free (Communicate *data)
{
  collector_free (data->out);
  collector_free (data->err);
  g_clear_error (&data->error);
  g_free (data);
}

static GBytes *
collector_steal_bytes (Collector *collector)
{
  guint8 nul = 0;
  gsize len;
  guint8 *data;

  if (collector == NULL)
    return NULL;

  /* A NUL after the data, as GMemoryOutputStream left it: output read as
   * a C string stays a string. */
  len = collector->kept->len;
  g_byte_array_append (collector->kept, &nul, 1);
  data = g_byte_array_steal (collector->kept, NULL);
  return g_bytes_new_take (data, len);
}

static void
communicate_step_done (GTask *task)
{
  QleanGuestProcess *self = g_task_get_source_object (task);
  Communicate *data = g_task_get_task_data (task);

  if (--data->pending > 0)
    return;

  qlean_guest_process_take_output (self,
                                   collector_steal_bytes (data->out),
                                   collector_steal_bytes (data->err),
                                   data->out != NULL && data->out->truncated,
                                   data->err != NULL && data->err->truncated);

  if (data->error != NULL)
    g_task_return_error (task, g_steal_pointer (&data->error));
  else
    g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

static void
communicate_keep_error (Communicate *data,
                        GError      *error)
{
  /* The first error wins, but a timeout, a crash or unread output
   * explains a broken pipe better than the pipe does. */
  if (data->error == NULL ||
      (error != NULL && (error->domain == QLEAN_MACHINE_ERROR ||
                         g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT) ||
                         g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE))))
    {
      g_clear_error (&data->error);
      data->error = error;
    }
  else
    g_clear_error (&error);
}

static void collector_read (Collector *collector);

static void
collector_read_cb (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  Collector *collector = user_data;
  GTask *task = collector->task;
  GError *error = NULL;
  gssize n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &error);

  if (n > 0)
    {
      gsize room = collector->limit - collector->kept->len;

      if ((gsize) n > room)
        collector->truncated = TRUE;
      g_byte_array_append (collector->kept, collector->buffer, MIN ((gsize) n, room));
      collector_read (collector);
      return;
    }

  if (n < 0)
    communicate_keep_error (g_task_get_task_data (task), error);
  g_input_stream_close (collector->pipe, NULL, NULL);
  communicate_step_done (task);
}

static void
collector_read (Collector *collector)
{
  g_input_stream_read_async (collector->pipe, collector->buffer, sizeof collector->buffer,
                             G_PRIORITY_DEFAULT, NULL, collector_read_cb, collector);
}

static Collector *
collector_start (GTask        *task,
                 GInputStream *pipe,
                 gsize         limit)
{
  Collector *collector = g_new0 (Collector, 1);

  collector->task = task;
  collector->pipe = g_object_ref (pipe);
  collector->kept = g_byte_array_new ();
  collector->limit = limit;
  collector_read (collector);
  return collector;
}

static void
communicate_write_cb (GObject      *source,
                      GAsyncResult *result,
                      gpointer      user_data)
{
  GTask *task = user_data;
  Communicate *data = g_task_get_task_data (task);
  GError *error = NULL;

  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, &error))
    {
      /* The process may end without reading all of its input. */
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE))
        communicate_keep_error (data, g_error_copy (error));
      g_clear_error (&error);
    }
  g_output_stream_close (G_OUTPUT_STREAM (source), NULL, NULL);
  communicate_step_done (task);
}

static void
communicate_wait_cb (GObject      *source,
                     GAsyncResult *result,
                     gpointer      user_data)
{
  GTask *task = user_data;
  Communicate *data = g_task_get_task_data (task);
  GError *error = NULL;

  if (!qlean_guest_process_wait_finish (QLEAN_GUEST_PROCESS (source), result, &error))
    communicate_keep_error (data, error);
  communicate_step_done (task);
}

/**
 * qlean_guest_process_communicate_async:
 * @self: a #QleanGuestProcess
 * @stdin_buf: (nullable): input for the process; needs
 *   %QLEAN_GUEST_PROCESS_FLAGS_STDIN_PIPE
 * @cancellable: (nullable): cancelling kills the process
 * @callback: called once the process ended and its output is read
 * @user_data: data for @callback
 *
 * Feeds @stdin_buf to the process, closes its stdin, reads all of its
 * piped output and waits for it to end, as g_subprocess_communicate_async()
 * does.
 *
 * Since: 0.1
 */
void
qlean_guest_process_communicate_async (QleanGuestProcess   *self,
                                       GBytes              *stdin_buf,
                                       GCancellable        *cancellable,
                                       GAsyncReadyCallback  callback,
                                       gpointer             user_data)
{
  GTask *task;
  Communicate *data;
  GOutputStream *stdin_pipe;
  GInputStream *stdout_pipe;
  GInputStream *stderr_pipe;
  gsize limit;

  g_return_if_fail (QLEAN_IS_GUEST_PROCESS (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  stdin_pipe = qlean_guest_process_get_stdin_pipe (self);
  stdout_pipe = qlean_guest_process_get_stdout_pipe (self);
  stderr_pipe = qlean_guest_process_get_stderr_pipe (self);
  limit = qlean_guest_process_get_output_limit (self);
  g_return_if_fail (stdin_buf == NULL || stdin_pipe != NULL);

  task = qlean_task_new (self, cancellable, callback, user_data,
                         qlean_guest_process_communicate_async,
                         "[qlean] communicate with guest process");
  g_task_set_check_cancellable (task, FALSE);
  data = g_new0 (Communicate, 1);
  g_task_set_task_data (task, data, (GDestroyNotify) communicate_free);

  /* One reference for the whole operation, dropped by the last step. */
  data->pending = 1;

  if (stdout_pipe != NULL)
    {
      data->pending++;
      data->out = collector_start (task, stdout_pipe, limit);
    }

  if (stderr_pipe != NULL)
    {
      data->pending++;
      data->err = collector_start (task, stderr_pipe, limit);
    }

  if (stdin_pipe != NULL)
    {
      data->pending++;
      if (stdin_buf != NULL)
        {
          gsize len;
          gconstpointer bytes = g_bytes_get_data (stdin_buf, &len);

          g_object_set_data_full (G_OBJECT (task), "qlean-stdin", g_bytes_ref (stdin_buf),
                                  (GDestroyNotify) g_bytes_unref);
          g_output_stream_write_all_async (stdin_pipe, bytes, len, G_PRIORITY_DEFAULT,
                                           NULL, communicate_write_cb, task);
        }
      else
        {
          g_output_stream_close (stdin_pipe, NULL, NULL);
          data->pending--;
        }
    }

  qlean_guest_process_wait_async (self, cancellable, communicate_wait_cb, task);
}

/**
 * qlean_guest_process_communicate_finish:
 * @self: a #QleanGuestProcess
 * @result: the result passed to the callback
 * @stdout_buf: (out) (optional) (transfer full) (nullable): the stdout read
 * @stderr_buf: (out) (optional) (transfer full) (nullable): the stderr read
 * @error: return location for a #GError
 *
 * Finishes qlean_guest_process_communicate_async(). Unlike
 * #GSubprocess, the buffers are filled even when it fails (timeout,
 * cancellation, machine lost), with what was read until then.
 *
 * Returns: %TRUE when the process ended by itself and its output was read
 *
 * Since: 0.1
 */
gboolean
qlean_guest_process_communicate_finish (QleanGuestProcess  *self,
                                        GAsyncResult       *result,
                                        GBytes            **stdout_buf,
                                        GBytes            **stderr_buf,
                                        GError            **error)
{
  gboolean ok;

  g_return_val_if_fail (QLEAN_IS_GUEST_PROCESS (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_guest_process_communicate_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  ok = g_task_propagate_boolean (G_TASK (result), error);
  if (stdout_buf != NULL)
    *stdout_buf = qlean_guest_process_get_stdout_bytes (self);
  if (stderr_buf != NULL)
    *stderr_buf = qlean_guest_process_get_stderr_bytes (self);

  return ok;
}

/**
 * qlean_guest_process_communicate:
 * @self: a #QleanGuestProcess
 * @stdin_buf: (nullable): input for the process
 * @cancellable: (nullable): cancelling kills the process
 * @stdout_buf: (out) (optional) (transfer full) (nullable): the stdout read
 * @stderr_buf: (out) (optional) (transfer full) (nullable): the stderr read
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_guest_process_communicate_async().
 *
 * Returns: %TRUE when the process ended by itself and its output was read
 *
 * Since: 0.1
 */
gboolean
qlean_guest_process_communicate (QleanGuestProcess  *self,
                                 GBytes             *stdin_buf,
                                 GCancellable       *cancellable,
                                 GBytes            **stdout_buf,
                                 GBytes            **stderr_buf,
                                 GError            **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_GUEST_PROCESS (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  qlean_sync_call_init (&call);
  qlean_guest_process_communicate_async (self, stdin_buf, cancellable, qlean_sync_call_done, &call);

  return qlean_guest_process_communicate_finish (self, qlean_sync_call_wait (&call),
                                                 stdout_buf, stderr_buf, error);
}

static char *
bytes_to_utf8 (GBytes  *bytes,
               GError **error)
{
  gsize len;
  const char *data;

  if (bytes == NULL)
    return NULL;

  data = g_bytes_get_data (bytes, &len);
  if (!g_utf8_validate_len (data ? data : "", len, NULL))
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                           _("The guest process's output is not valid UTF-8"));
      return NULL;
    }

  return g_strndup (data ? data : "", len);
}

/**
 * qlean_guest_process_communicate_utf8:
 * @self: a #QleanGuestProcess
 * @stdin_buf: (nullable): input for the process
 * @cancellable: (nullable): cancelling kills the process
 * @stdout_buf: (out) (optional) (transfer full) (nullable): the stdout read
 * @stderr_buf: (out) (optional) (transfer full) (nullable): the stderr read
 * @error: return location for a #GError
 *
 * Like qlean_guest_process_communicate(), with strings; output that is
 * not UTF-8 is %G_IO_ERROR_INVALID_DATA.
 *
 * Returns: %TRUE on success
 *
 * Since: 0.1
 */
gboolean
qlean_guest_process_communicate_utf8 (QleanGuestProcess  *self,
                                      const char         *stdin_buf,
                                      GCancellable       *cancellable,
                                      char              **stdout_buf,
                                      char              **stderr_buf,
                                      GError            **error)
{
  g_autoptr(GBytes) in = stdin_buf ? g_bytes_new (stdin_buf, strlen (stdin_buf)) : NULL;
  g_autoptr(GBytes) out = NULL;
  g_autoptr(GBytes) err = NULL;
  g_autofree char *out_text = NULL;
  g_autofree char *err_text = NULL;

  g_return_val_if_fail (QLEAN_IS_GUEST_PROCESS (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!qlean_guest_process_communicate (self, in, cancellable, &out, &err, error))
    return FALSE;

  if ((out != NULL && (out_text = bytes_to_utf8 (out, error)) == NULL) ||
      (err != NULL && (err_text = bytes_to_utf8 (err, error)) == NULL))
    return FALSE;

  if (stdout_buf != NULL)
    *stdout_buf = g_steal_pointer (&out_text);
  if (stderr_buf != NULL)
    *stderr_buf = g_steal_pointer (&err_text);

  return TRUE;
}
