/* qlean-guest-process-wait.c: waiting for a guest process's end
 *
 * SPDX-License-Identifier: MIT
 *
 * qlean_guest_process_wait() and its twins, force_exit, and the waiters'
 * list they share: how a caller waits for the end of a process, how
 * cancelling a wait kills it, and how that end becomes a result or an
 * error. The process's run (qlean-guest-process.c) only calls
 * qlean_guest_process_complete_waiters() when the process ends; the rest
 * reads the state the run leaves behind, so it lives apart from the run.
 */

#include "config.h"

#include <signal.h>
#include <glib/gi18n-lib.h>

#include "qlean-guest-process-private.h"
#include "qlean-json-channel-private.h"
#include "qlean-sync-private.h"
#include "qlean-task-private.h"
#include "qlean-worker-private.h"

/* The end of the process: exit, or the loss of the machine. */
void
qlean_guest_process_complete_waiters (QleanGuestProcess *self)
{
  g_autoptr(GPtrArray) waiters = g_steal_pointer (&self->waiters);

  self->waiters = g_ptr_array_new_with_free_func (g_object_unref);
  qlean_clear_source (&self->timeout_source);

  for (guint i = 0; i < waiters->len; i++)
    g_task_return_boolean (g_ptr_array_index (waiters, i), TRUE);
}

/**
 * qlean_guest_process_force_exit:
 * @self: a #QleanGuestProcess
 *
 * Kills the process and its process group with SIGKILL.
 *
 * Since: 0.1
 */
void
qlean_guest_process_force_exit (QleanGuestProcess *self)
{
  g_return_if_fail (QLEAN_IS_GUEST_PROCESS (self));

  qlean_guest_process_send_signal (self, SIGKILL);
}

static gboolean
qlean_guest_process_wait_cancelled_cb (gpointer user_data)
{
  GTask *task = user_data;
  QleanGuestProcess *self = g_task_get_source_object (task);

  guint index;

  /* A cancelled wait does what a timeout does: the process goes. The
   * waiter returns now; its finish reports the cancellation. */
  qlean_guest_process_kill_in_worker (self, SIGKILL);
  if (g_ptr_array_find (self->waiters, task, &index))
    {
      g_autoptr(GTask) waiter = g_ptr_array_steal_index (self->waiters, index);

      g_task_return_boolean (waiter, TRUE);
    }

  return G_SOURCE_REMOVE;
}

static gboolean
qlean_guest_process_wait_in_worker (gpointer user_data)
{
  GTask *task = user_data;
  QleanGuestProcess *self = g_task_get_source_object (task);
  GCancellable *cancellable = g_task_get_cancellable (task);
  gboolean done;

  g_mutex_lock (&self->lock);
  done = self->exited || self->failure != NULL;
  g_mutex_unlock (&self->lock);

  if (done || !qlean_guest_process_is_live (self))
    {
      g_task_return_boolean (task, TRUE);
      return G_SOURCE_REMOVE;
    }

  if (cancellable != NULL)
    {
      GSource *source = qlean_add_cancel (qlean_worker_get_context (), cancellable,
                                          qlean_guest_process_wait_cancelled_cb, task);

      g_task_set_task_data (task, source, (GDestroyNotify) qlean_destroy_source);
    }

  g_ptr_array_add (self->waiters, g_object_ref (task));
  return G_SOURCE_REMOVE;
}

/**
 * qlean_guest_process_wait_async:
 * @self: a #QleanGuestProcess
 * @cancellable: (nullable): cancelling kills the process
 * @callback: called when the process has ended
 * @user_data: data for @callback
 *
 * Waits for the process to end. Finish with
 * qlean_guest_process_wait_finish().
 *
 * Since: 0.1
 */
void
qlean_guest_process_wait_async (QleanGuestProcess   *self,
                                GCancellable        *cancellable,
                                GAsyncReadyCallback  callback,
                                gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (QLEAN_IS_GUEST_PROCESS (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = qlean_task_new (self, cancellable, callback, user_data, qlean_guest_process_wait_async,
                         "[qlean] wait for guest process");
  g_task_set_check_cancellable (task, FALSE);
  qlean_task_run_in_worker (task, qlean_guest_process_wait_in_worker);
}

/* How a wait ends: success once the process exited, or why not. */
static gboolean
qlean_guest_process_check_end (QleanGuestProcess  *self,
                               GCancellable       *cancellable,
                               GError            **error)
{
  gboolean ok = TRUE;

  g_mutex_lock (&self->lock);
  if (self->timed_out)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                   _("“%s” in machine “%s” outlived its timeout of %u ms and was killed"),
                   self->program, qlean_machine_get_name (self->machine), self->timeout_ms);
      ok = FALSE;
    }
  else if (self->failure != NULL)
    {
      g_propagate_error (error, g_error_copy (self->failure));
      ok = FALSE;
    }
  else if (g_cancellable_set_error_if_cancelled (cancellable, error))
    ok = FALSE;
  else if (!self->exited)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   _("“%s” in machine “%s” has not ended"), self->program,
                   qlean_machine_get_name (self->machine));
      ok = FALSE;
    }
  g_mutex_unlock (&self->lock);

  return ok;
}

/**
 * qlean_guest_process_wait_finish:
 * @self: a #QleanGuestProcess
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when the process ended by itself (whatever its status);
 *   %FALSE with %G_IO_ERROR_TIMED_OUT when its timeout killed it,
 *   %G_IO_ERROR_CANCELLED, %G_IO_ERROR_NO_SPACE when it was killed
 *   because its piped output was not read, or
 *   %QLEAN_MACHINE_ERROR_CRASHED when the machine went away
 *
 * Since: 0.1
 */
gboolean
qlean_guest_process_wait_finish (QleanGuestProcess  *self,
                                 GAsyncResult       *result,
                                 GError            **error)
{
  g_return_val_if_fail (QLEAN_IS_GUEST_PROCESS (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_guest_process_wait_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  g_task_propagate_boolean (G_TASK (result), NULL);
  return qlean_guest_process_check_end (self, g_task_get_cancellable (G_TASK (result)), error);
}

/**
 * qlean_guest_process_wait:
 * @self: a #QleanGuestProcess
 * @cancellable: (nullable): cancelling kills the process
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_guest_process_wait_async().
 *
 * Returns: %TRUE when the process ended by itself
 *
 * Since: 0.1
 */
gboolean
qlean_guest_process_wait (QleanGuestProcess  *self,
                          GCancellable       *cancellable,
                          GError            **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_GUEST_PROCESS (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  qlean_sync_call_init (&call);
  qlean_guest_process_wait_async (self, cancellable, qlean_sync_call_done, &call);

  return qlean_guest_process_wait_finish (self, qlean_sync_call_wait (&call), error);
}

static gboolean
qlean_guest_process_check_status (QleanGuestProcess  *self,
                                  GError            **error)
{
  if (qlean_guest_process_get_if_signaled (self))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   _("“%s” in machine “%s” was killed by signal %d"), self->program,
                   qlean_machine_get_name (self->machine), qlean_guest_process_get_term_sig (self));
      return FALSE;
    }

  if (qlean_guest_process_get_exit_status (self) != 0)
    {
      g_set_error (error, G_SPAWN_EXIT_ERROR, qlean_guest_process_get_exit_status (self),
                   _("“%s” in machine “%s” exited with status %d"), self->program,
                   qlean_machine_get_name (self->machine), qlean_guest_process_get_exit_status (self));
      return FALSE;
    }

  return TRUE;
}

/**
 * qlean_guest_process_wait_check_async:
 * @self: a #QleanGuestProcess
 * @cancellable: (nullable): cancelling kills the process
 * @callback: called when the process has ended
 * @user_data: data for @callback
 *
 * Like qlean_guest_process_wait_async(), and then a status other than
 * exit 0 is an error (%G_SPAWN_EXIT_ERROR, or %G_IO_ERROR_FAILED for a
 * signal), as g_subprocess_wait_check_async() does.
 *
 * Since: 0.1
 */
void
qlean_guest_process_wait_check_async (QleanGuestProcess   *self,
                                      GCancellable        *cancellable,
                                      GAsyncReadyCallback  callback,
                                      gpointer             user_data)
{
  g_return_if_fail (QLEAN_IS_GUEST_PROCESS (self));

  qlean_guest_process_wait_async (self, cancellable, callback, user_data);
}

/**
 * qlean_guest_process_wait_check_finish:
 * @self: a #QleanGuestProcess
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when the process exited with status 0
 *
 * Since: 0.1
 */
gboolean
qlean_guest_process_wait_check_finish (QleanGuestProcess  *self,
                                       GAsyncResult       *result,
                                       GError            **error)
{
  g_return_val_if_fail (QLEAN_IS_GUEST_PROCESS (self), FALSE);

  return qlean_guest_process_wait_finish (self, result, error) &&
         qlean_guest_process_check_status (self, error);
}

/**
 * qlean_guest_process_wait_check:
 * @self: a #QleanGuestProcess
 * @cancellable: (nullable): cancelling kills the process
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_guest_process_wait_check_async().
 *
 * Returns: %TRUE when the process exited with status 0
 *
 * Since: 0.1
 */
gboolean
qlean_guest_process_wait_check (QleanGuestProcess  *self,
                                GCancellable       *cancellable,
                                GError            **error)
{
  g_return_val_if_fail (QLEAN_IS_GUEST_PROCESS (self), FALSE);

  return qlean_guest_process_wait (self, cancellable, error) &&
         qlean_guest_process_check_status (self, error);
}
