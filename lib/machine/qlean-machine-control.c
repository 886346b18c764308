/* qlean-machine-control.c: running commands, stopping and pausing a running machine
 *
 * What a caller does with a machine once it runs: exec, shutdown and
 * kill (the shutdown's escalating stages), pause and resume, and what
 * happens when QEMU exits, asked or not.
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include <glib/gi18n-lib.h>

#include "qlean-enums.h"
#include "qlean-error.h"
#include "qlean-machine-object-private.h"
#include "qlean-guest-launcher.h"
#include "qlean-guest-process-private.h"
#include "qlean-qga-error.h"
#include "qlean-sync-private.h"
#include "qlean-task-private.h"
#include "qlean-worker-private.h"

static char *
describe_wait_status (GSubprocess *process)
{
  if (g_subprocess_get_if_signaled (process))
    return g_strdup_printf (_("was killed by signal %d"), g_subprocess_get_term_sig (process));

  return g_strdup_printf (_("exited with status %d"), g_subprocess_get_exit_status (process));
}

static void
qlean_machine_complete_exit_waiters (QleanMachine *self)
{
  g_autoptr(GPtrArray) waiters = g_steal_pointer (&self->exit_waiters);

  self->exit_waiters = g_ptr_array_new_with_free_func (g_object_unref);
  for (guint i = 0; i < waiters->len; i++)
    g_task_return_boolean (g_ptr_array_index (waiters, i), TRUE);
}

void
qlean_machine_qemu_exited_cb (GObject      *source,
                              GAsyncResult *result,
                              gpointer      user_data)
{
  QleanLink *link = user_data;
  g_autoptr(QleanMachine) self = qlean_link_get (link);
  g_autofree char *status = NULL;
  GSubprocess *process = G_SUBPROCESS (source);

  g_subprocess_wait_finish (process, result, NULL);
  qlean_link_unref (link);

  if (self == NULL || self->run->qemu != process)
    return;

  status = describe_wait_status (process);
  g_debug ("machine %s: QEMU %s", self->name, status);

  g_mutex_lock (&self->lock);
  self->run->qemu_exited = TRUE;
  g_mutex_unlock (&self->lock);
  /* All QEMU wrote is in the pipe: into the file before anyone quotes it. */
  if (self->run->console != NULL)
    qlean_console_log_close (self->run->console);

  if (self->run->spawn_task != NULL)
    {
      g_autoptr(GTask) task = g_steal_pointer (&self->run->spawn_task);
      g_autoptr(GError) error = g_steal_pointer (&self->run->spawn_error);

      if (error == NULL)
        {
          g_autofree char *log = qlean_machine_run_file_tail (self, QLEAN_QEMU_LOG, TAIL_LINES);

          error = g_error_new (QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_QEMU_EXITED,
                               _("QEMU %s while machine “%s” was starting%s%s"),
                               status, self->name, *log ? ":\n" : "", log);
        }

      qlean_machine_release_run (self);
      qlean_machine_set_state (self, QLEAN_MACHINE_STATE_STOPPED);
      g_task_return_error (task, g_steal_pointer (&error));
    }
  else if (self->run->stop_requested)
    {
      qlean_machine_release_run (self);
      qlean_machine_set_state (self, QLEAN_MACHINE_STATE_STOPPED);
      qlean_machine_emit_signal (self, SIGNAL_STOPPED);
    }
  else
    {
      g_autofree char *log = qlean_machine_run_file_tail (self, QLEAN_QEMU_LOG, TAIL_LINES);

      g_autofree char *reason = NULL;

      if (self->run->panicked)
        {
          g_autofree char *panic = qlean_machine_panic_text (self);

          reason = panic ? g_strdup_printf (_("the guest kernel panicked: %s"), panic)
                         : g_strdup (_("the guest kernel panicked"));
        }
      else
        reason = g_strdup_printf (_("QEMU %s%s%s"), status, *log ? ": " : "", log);
      g_message ("Machine “%s” crashed: %s", self->name, reason);
      g_mutex_lock (&self->lock);
      g_free (self->crash_reason);
      self->crash_reason = g_steal_pointer (&reason);
      g_mutex_unlock (&self->lock);
      qlean_machine_release_run (self);
      qlean_machine_set_state (self, QLEAN_MACHINE_STATE_CRASHED);
      qlean_machine_emit_signal (self, SIGNAL_CRASHED);
    }

  self->run->stop_requested = FALSE;
  qlean_machine_complete_exit_waiters (self);
}

/* Running commands */

typedef struct
{
  QleanQgaClient *qga;
  GStrv           argv;         /* argv[0] is an absolute path */
  GBytes         *stdin_bytes;  /* or NULL */
  gboolean        starting;     /* Qlean's own command before the machine is ready */
  gint64          pid;          /* through the agent: its guest-exec, once it runs */
  gboolean        wrapped;      /* through the agent: started by the shell wrapper */
} ExecData;

static void
exec_data_free (ExecData *data)
{
  g_clear_object (&data->qga);
  g_strfreev (data->argv);
  g_clear_pointer (&data->stdin_bytes, g_bytes_unref);
  g_free (data);
}

/* An agent error while the machine went down is the machine's failure,
 * not the agent's: say so. */
static GError *
qlean_machine_translate_agent_error (QleanMachine *self,
                                     GError       *error)
{
  if (g_error_matches (error, QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_DISCONNECTED) &&
      !self->run->stop_requested)
    {
      GError *translated = g_error_new (QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_CRASHED,
                                        _("Machine “%s” went away while the command ran: %s"),
                                        self->name, error->message);
      g_error_free (error);
      return translated;
    }

  return error;
}

static void
qlean_machine_exec_wait_cb (GObject      *source,
                            GAsyncResult *result,
                            gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  QleanMachine *self = g_task_get_source_object (task);
  g_autoptr(QleanQgaExecStatus) status = NULL;
  GError *error = NULL;

  status = qlean_qga_client_exec_wait_finish (QLEAN_QGA_CLIENT (source), result, &error);
  if (status == NULL)
    {
      ExecData *data = g_task_get_task_data (task);

      /* A cancelled command goes, with what it started (it leads its
       * own process group), as it does through qlean-guest. */
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) && data->pid > 0)
        qlean_guest_agent_kill (data->qga, data->pid, SIGKILL);
      g_task_return_error (task, qlean_machine_translate_agent_error (self, error));
      return;
    }

  g_task_return_pointer (task,
                         qlean_exec_result_new (status->exit_code, status->signal,
                                                status->out_data, status->err_data,
                                                status->out_truncated, status->err_truncated),
                         g_object_unref);
}

static void qlean_machine_exec_started_cb (GObject      *source,
                                           GAsyncResult *result,
                                           gpointer      user_data);

/* Through the agent alone: guest-exec with capture-output, measured
 * faster for a short command than a QleanGuestLauncher there (20 ms
 * against 46 for `true`, bench-exec), whose output files cost more
 * agent calls. The command leads a process group of its own, so that a
 * cancel kills what it started: guest-exec runs `setsid -- ARGV...`
 * (one exec less than a shell that runs setsid: 30.6 against 23.5 ms
 * for `true`, median of 3 alternating runs under load), and, @wrapped,
 * a shell that runs setsid where the guest has it and the argv alone
 * otherwise. The argv stays positional either way. Takes @task. */
static void
qlean_machine_exec_agent_start (GTask    *task,
                                gboolean  wrapped)
{
  ExecData *data = g_task_get_task_data (task);
  g_autoptr(GPtrArray) args = g_ptr_array_new ();

  data->wrapped = wrapped;
  if (wrapped)
    {
      g_ptr_array_add (args, (char *) "-c");
      g_ptr_array_add (args, (char *) "command -v setsid >/dev/null 2>&1 && exec setsid -- \"$@\"; "
                                      "exec \"$@\"");
      g_ptr_array_add (args, (char *) "sh");
    }
  else
    g_ptr_array_add (args, (char *) "--");
  for (guint i = 0; data->argv[i] != NULL; i++)
    g_ptr_array_add (args, data->argv[i]);
  g_ptr_array_add (args, NULL);
  qlean_qga_client_exec_async (data->qga, wrapped ? "/bin/sh" : "setsid",
                               (const char * const *) args->pdata, NULL, data->stdin_bytes, TRUE,
                               g_task_get_cancellable (task), qlean_machine_exec_started_cb, task);
}

static void
qlean_machine_exec_started_cb (GObject      *source,
                               GAsyncResult *result,
                               gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  QleanMachine *self = g_task_get_source_object (task);
  ExecData *data = g_task_get_task_data (task);
  GCancellable *cancellable;
  GError *error = NULL;
  gint64 pid;

  pid = qlean_qga_client_exec_finish (QLEAN_QGA_CLIENT (source), result, &error);
  if (pid < 0 && !data->wrapped && !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      /* No setsid in the guest's PATH (or the agent could not start
       * it): the shell wrapper finds out which, and runs the command
       * either way. */
      g_debug ("machine %s: guest-exec of setsid failed (%s); through the shell", self->name,
               error->message);
      g_clear_error (&error);
      qlean_machine_exec_agent_start (g_steal_pointer (&task), TRUE);
      return;
    }
  if (pid < 0)
    {
      g_task_return_error (task, qlean_machine_translate_agent_error (self, error));
      return;
    }

  data->pid = pid;
  cancellable = g_task_get_cancellable (task);
  qlean_qga_client_exec_wait_async (QLEAN_QGA_CLIENT (source), pid, cancellable,
                                    qlean_machine_exec_wait_cb, g_steal_pointer (&task));
}

static void
qlean_machine_exec_run_cb (GObject      *source,
                           GAsyncResult *result,
                           gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  GError *error = NULL;
  QleanExecResult *exec_result;

  exec_result = qlean_guest_launcher_run_finish (QLEAN_GUEST_LAUNCHER (source), result, &error);
  if (exec_result == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, exec_result, g_object_unref);
}

static gboolean
qlean_machine_exec_in_worker (gpointer user_data)
{
  GTask *task = user_data;
  QleanMachine *self = g_task_get_source_object (task);
  ExecData *data = g_task_get_task_data (task);

  /* qlean-guest streams output with a higher cap than the agent's 16 MiB and
   * reports the exit at once; the agent alone is the fallback for guests
   * without it. */
  if (qlean_machine_get_guest_transport (self) == QLEAN_GUEST_TRANSPORT_QLEAN_GUEST ||
      (!qlean_machine_run_uses_agent_only (self->run) &&
       self->run->guest != NULL && qlean_guest_channel_is_ready (self->run->guest)))
    {
      g_autoptr(QleanGuestLauncher) launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_NONE);

      if (data->stdin_bytes != NULL)
        qlean_guest_launcher_set_stdin (launcher, data->stdin_bytes);
      if (data->starting)
        qlean_guest_launcher_set_starting (launcher);
      qlean_guest_launcher_run_async (launcher, self, (const char * const *) data->argv,
                                      g_task_get_cancellable (task),
                                      qlean_machine_exec_run_cb, g_object_ref (task));
      return G_SOURCE_REMOVE;
    }

  if (data->qga == NULL)
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE,
                               _("Cannot run a command on machine “%s”: it has no agent connection"),
                               self->name);
      return G_SOURCE_REMOVE;
    }

  qlean_machine_exec_agent_start (g_object_ref (task), FALSE);
  return G_SOURCE_REMOVE;
}

/**
 * qlean_machine_exec_async:
 * @self: a #QleanMachine
 * @command: a shell command, run by `/bin/sh -c` in the guest as root
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the result
 * @user_data: data for @callback
 *
 * Runs @command in the guest through the agent and collects its exit
 * status, terminating signal and output. A command that fails is not an
 * error: look at the [class@ExecResult]. Each output stream is kept up to
 * a cap, 64 MiB through qlean-guest and the agent's 16 MiB through the
 * agent; what comes beyond is dropped and
 * [property@ExecResult:stdout-truncated] (or stderr-truncated) is set.
 * For more, read a [class@GuestProcess]'s pipes. Errors are for a
 * machine that is not running (%QLEAN_MACHINE_ERROR_INVALID_STATE), or that died
 * meanwhile (%QLEAN_MACHINE_ERROR_CRASHED).
 *
 * Since: 0.1
 */
void
qlean_machine_exec_async (QleanMachine        *self,
                          const char          *command,
                          GCancellable        *cancellable,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  const char * const argv[] = { "/bin/sh", "-c", command, NULL };

  g_return_if_fail (QLEAN_IS_MACHINE (self));
  g_return_if_fail (command != NULL);

  qlean_machine_exec_argv_async (self, argv, cancellable, callback, user_data);
}

/* Behind qlean_machine_exec_async(), qlean_machine_exec_argv_async() and
 * qlean_machine_exec_starting_async(): @argv (argv[0] an absolute path,
 * so that no path goes through a shell string), with @stdin_bytes as its
 * input; @starting lets it run before the machine is ready. Finish with
 * qlean_machine_exec_finish(). */
static void
qlean_machine_exec_full_async (QleanMachine        *self,
                               const char * const  *argv,
                               GBytes              *stdin_bytes,
                               gboolean             starting,
                               GCancellable        *cancellable,
                               GAsyncReadyCallback  callback,
                               gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autoptr(GError) error = NULL;
  ExecData *data;

  g_return_if_fail (QLEAN_IS_MACHINE (self));
  g_return_if_fail (argv != NULL && argv[0] != NULL && argv[0][0] == '/');

  task = qlean_task_new (self, cancellable, callback, user_data, qlean_machine_exec_async,
                         "[qlean] exec");

  if (!starting && !qlean_machine_check_running (self, QLEAN_MACHINE_OP_RUN_COMMAND, &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  data = g_new0 (ExecData, 1);
  data->qga = qlean_machine_dup_qga (self);
  data->argv = g_strdupv ((char **) argv);
  data->stdin_bytes = stdin_bytes ? g_bytes_ref (stdin_bytes) : NULL;
  data->starting = starting;
  g_task_set_task_data (task, data, (GDestroyNotify) exec_data_free);

  /* An attached machine shared through qlean-guest has no agent of its
   * own: the worker sees which way the command goes. */
  qlean_worker_invoke (qlean_machine_exec_in_worker, g_steal_pointer (&task), g_object_unref);
}

void
qlean_machine_exec_argv_async (QleanMachine        *self,
                               const char * const  *argv,
                               GCancellable        *cancellable,
                               GAsyncReadyCallback  callback,
                               gpointer             user_data)
{
  qlean_machine_exec_full_async (self, argv, NULL, FALSE, cancellable, callback, user_data);
}

void
qlean_machine_exec_starting_async (QleanMachine        *self,
                                   const char * const  *argv,
                                   GBytes              *stdin_bytes,
                                   GCancellable        *cancellable,
                                   GAsyncReadyCallback  callback,
                                   gpointer             user_data)
{
  qlean_machine_exec_full_async (self, argv, stdin_bytes, TRUE, cancellable, callback, user_data);
}

/**
 * qlean_machine_exec_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_machine_exec_async().
 *
 * Returns: (transfer full): the command's result, or %NULL with @error set
 *
 * Since: 0.1
 */
QleanExecResult *
qlean_machine_exec_finish (QleanMachine  *self,
                           GAsyncResult  *result,
                           GError       **error)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_exec_async), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * qlean_machine_exec:
 * @self: a #QleanMachine
 * @command: a shell command, run by `/bin/sh -c` in the guest as root
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_exec_async().
 *
 * Returns: (transfer full): the command's result, or %NULL with @error set
 *
 * Since: 0.1
 */
QleanExecResult *
qlean_machine_exec (QleanMachine  *self,
                    const char    *command,
                    GCancellable  *cancellable,
                    GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), NULL);
  g_return_val_if_fail (command != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!qlean_sync_call_begin (&call, error))
    return NULL;
  qlean_machine_exec_async (self, command, cancellable, qlean_sync_call_done, &call);

  return qlean_machine_exec_finish (self, qlean_sync_call_wait (&call), error);
}

/* Stopping */

static void qlean_machine_shutdown_stage (QleanMachine *self);

static gboolean
qlean_machine_shutdown_timer_cb (gpointer user_data)
{
  QleanMachine *self = user_data;

  g_clear_pointer (&self->run->shutdown_timer, g_source_unref);
  qlean_machine_shutdown_stage (self);

  return G_SOURCE_REMOVE;
}

static void
qlean_machine_ignore_result_cb (GObject      *source,
                                GAsyncResult *result,
                                gpointer      user_data)
{
  g_autoptr(GError) error = NULL;

  if (QLEAN_IS_QMP_CLIENT (source))
    {
      g_autoptr(JsonNode) node = qlean_qmp_client_execute_finish (QLEAN_QMP_CLIENT (source), result, &error);
    }
  else
    qlean_qga_client_shutdown_finish (QLEAN_QGA_CLIENT (source), result, &error);

  if (error != NULL)
    g_debug ("shutdown step failed: %s", error->message);
}

/* Each stage asks harder than the last and arms the next one: the agent
 * (or ACPI) powers the guest off; QMP quit stops QEMU; then signals. */
static void
qlean_machine_shutdown_stage (QleanMachine *self)
{
  guint delay_ms = ESCALATION_STEP_MS;

  if (self->run->qemu == NULL || self->run->qemu_exited)
    return;

  switch (self->run->shutdown_stage++)
    {
    case 0:
      delay_ms = qlean_machine_get_shutdown_timeout (self);
      /* A paused guest can do nothing, not even power off: let it run. */
      if (qlean_machine_get_state (self) == QLEAN_MACHINE_STATE_PAUSED && self->run->qmp != NULL)
        {
          qlean_qmp_client_execute_async (self->run->qmp, "cont", NULL, NULL,
                                          qlean_machine_ignore_result_cb, NULL);
          qlean_machine_set_state (self, QLEAN_MACHINE_STATE_RUNNING);
        }
      if (self->run->qga != NULL && qlean_machine_get_state (self) == QLEAN_MACHINE_STATE_RUNNING)
        qlean_qga_client_shutdown_async (self->run->qga, "powerdown", NULL,
                                         qlean_machine_ignore_result_cb, NULL);
      else if (self->run->qmp != NULL)
        qlean_qmp_client_execute_async (self->run->qmp, "system_powerdown", NULL, NULL,
                                        qlean_machine_ignore_result_cb, NULL);
      else
        delay_ms = 0;
      break;
    case 1:
      if (self->run->qmp != NULL)
        qlean_qmp_client_execute_async (self->run->qmp, "quit", NULL, NULL,
                                        qlean_machine_ignore_result_cb, NULL);
      else
        delay_ms = 0;
      break;
    case 2:
      qlean_machine_signal_qemu (self, SIGTERM);
      break;
    default:
      qlean_machine_signal_qemu (self, SIGKILL);
      return;
    }

  qlean_clear_source (&self->run->shutdown_timer);
  self->run->shutdown_timer = qlean_add_timeout (qlean_worker_get_context (), delay_ms,
                                            qlean_machine_shutdown_timer_cb, self);
}

typedef enum
{
  STOP_GRACEFUL,
  STOP_KILL,
} StopMode;

static gboolean
qlean_machine_stop_in_worker (gpointer user_data)
{
  GTask *task = user_data;
  QleanMachine *self = g_task_get_source_object (task);
  StopMode mode = GPOINTER_TO_INT (g_task_get_task_data (task));

  if (self->attached)
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE,
                               _("Machine “%s” belongs to another process; stop it there "
                                 "(for machines started with “qlean start”: qlean stop %s)"),
                               self->name, self->name);
      return G_SOURCE_REMOVE;
    }

  if (self->run->qemu == NULL || self->run->qemu_exited)
    {
      g_task_return_boolean (task, TRUE);
      return G_SOURCE_REMOVE;
    }

  g_ptr_array_add (self->exit_waiters, g_object_ref (task));
  self->run->stop_requested = TRUE;

  if (self->run->spawn_task != NULL)
    {
      /* Stopping a machine that is still starting ends the start. */
      qlean_machine_spawn_fail (self,
          g_error_new (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                       _("Machine “%s” was stopped while starting"), self->name));
      return G_SOURCE_REMOVE;
    }

  if (mode == STOP_KILL)
    qlean_machine_signal_qemu (self, SIGKILL);
  else if (self->run->shutdown_stage == 0)
    qlean_machine_shutdown_stage (self);

  return G_SOURCE_REMOVE;
}

static void
qlean_machine_stop_async (QleanMachine        *self,
                          StopMode             mode,
                          GCancellable        *cancellable,
                          gpointer             source_tag,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (QLEAN_IS_MACHINE (self));

  task = qlean_task_new (self, cancellable, callback, user_data, source_tag,
                         mode == STOP_KILL ? "[qlean] kill machine" : "[qlean] shut down machine");
  g_task_set_task_data (task, GINT_TO_POINTER (mode), NULL);

  qlean_worker_invoke (qlean_machine_stop_in_worker, task, g_object_unref);
}

/**
 * qlean_machine_shutdown_async:
 * @self: a #QleanMachine
 * @cancellable: (nullable): a #GCancellable
 * @callback: called once QEMU has exited
 * @user_data: data for @callback
 *
 * Powers the machine off: `guest-shutdown` through the agent (or ACPI
 * power-down when there is no agent), then, each after a bounded wait,
 * QMP `quit`, SIGTERM and SIGKILL. Completes when QEMU has exited and the
 * run directory is gone; the machine is then STOPPED. Shutting down a
 * machine that does not run succeeds at once.
 *
 * Since: 0.1
 */
void
qlean_machine_shutdown_async (QleanMachine        *self,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data)
{
  qlean_machine_stop_async (self, STOP_GRACEFUL, cancellable, qlean_machine_shutdown_async,
                            callback, user_data);
}

/**
 * qlean_machine_shutdown_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_machine_shutdown_async().
 *
 * Returns: %TRUE once QEMU has exited
 *
 * Since: 0.1
 */
gboolean
qlean_machine_shutdown_finish (QleanMachine  *self,
                               GAsyncResult  *result,
                               GError       **error)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_shutdown_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_machine_shutdown:
 * @self: a #QleanMachine
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_shutdown_async().
 *
 * Returns: %TRUE once QEMU has exited
 *
 * Since: 0.1
 */
gboolean
qlean_machine_shutdown (QleanMachine  *self,
                        GCancellable  *cancellable,
                        GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!qlean_sync_call_begin (&call, error))
    return FALSE;
  qlean_machine_shutdown_async (self, cancellable, qlean_sync_call_done, &call);

  return qlean_machine_shutdown_finish (self, qlean_sync_call_wait (&call), error);
}

/**
 * qlean_machine_kill_async:
 * @self: a #QleanMachine
 * @cancellable: (nullable): a #GCancellable
 * @callback: called once QEMU has exited
 * @user_data: data for @callback
 *
 * Kills QEMU with SIGKILL, without asking the guest. Completes when QEMU
 * has exited and the run directory is gone; the machine is then STOPPED.
 *
 * Since: 0.1
 */
void
qlean_machine_kill_async (QleanMachine        *self,
                          GCancellable        *cancellable,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  qlean_machine_stop_async (self, STOP_KILL, cancellable, qlean_machine_kill_async,
                            callback, user_data);
}

/**
 * qlean_machine_kill_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_machine_kill_async().
 *
 * Returns: %TRUE once QEMU has exited
 *
 * Since: 0.1
 */
gboolean
qlean_machine_kill_finish (QleanMachine  *self,
                           GAsyncResult  *result,
                           GError       **error)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_kill_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_machine_kill:
 * @self: a #QleanMachine
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_kill_async().
 *
 * Returns: %TRUE once QEMU has exited
 *
 * Since: 0.1
 */
gboolean
qlean_machine_kill (QleanMachine  *self,
                    GCancellable  *cancellable,
                    GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!qlean_sync_call_begin (&call, error))
    return FALSE;
  qlean_machine_kill_async (self, cancellable, qlean_sync_call_done, &call);

  return qlean_machine_kill_finish (self, qlean_sync_call_wait (&call), error);
}

/* Pausing */

typedef struct
{
  gboolean pause;
} PauseData;

static void
qlean_machine_pause_cb (GObject      *source,
                        GAsyncResult *result,
                        gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  QleanMachine *self = g_task_get_source_object (task);
  gboolean pause = GPOINTER_TO_INT (g_task_get_task_data (task));
  g_autoptr(JsonNode) reply = NULL;
  GError *error = NULL;

  reply = qlean_qmp_client_execute_finish (QLEAN_QMP_CLIENT (source), result, &error);
  if (reply == NULL)
    {
      g_task_return_error (task, error);
      return;
    }

  qlean_machine_set_state (self, pause ? QLEAN_MACHINE_STATE_PAUSED : QLEAN_MACHINE_STATE_RUNNING);
  if (!pause)
    qlean_machine_run_fix_clock (self->run);
  g_task_return_boolean (task, TRUE);
}

static gboolean
qlean_machine_pause_in_worker (gpointer user_data)
{
  GTask *task = user_data;
  QleanMachine *self = g_task_get_source_object (task);
  gboolean pause = GPOINTER_TO_INT (g_task_get_task_data (task));
  QleanMachineState state = qlean_machine_get_state (self);
  QleanMachineState wanted = pause ? QLEAN_MACHINE_STATE_RUNNING : QLEAN_MACHINE_STATE_PAUSED;

  if (state != wanted || self->run->qmp == NULL)
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE,
                               pause ? _("Cannot pause machine “%s”: it is %s, not running")
                                     : _("Cannot resume machine “%s”: it is %s, not paused"),
                               self->name, qlean_machine_state_to_string (state));
      return G_SOURCE_REMOVE;
    }

  qlean_qmp_client_execute_async (self->run->qmp, pause ? "stop" : "cont", NULL,
                                  g_task_get_cancellable (task),
                                  qlean_machine_pause_cb, g_object_ref (task));
  return G_SOURCE_REMOVE;
}

static void
qlean_machine_pause_resume_async (QleanMachine        *self,
                                  gboolean             pause,
                                  GCancellable        *cancellable,
                                  gpointer             source_tag,
                                  GAsyncReadyCallback  callback,
                                  gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (QLEAN_IS_MACHINE (self));

  task = qlean_task_new (self, cancellable, callback, user_data, source_tag,
                         pause ? "[qlean] pause machine" : "[qlean] resume machine");
  g_task_set_task_data (task, GINT_TO_POINTER (pause), NULL);
  qlean_worker_invoke (qlean_machine_pause_in_worker, task, g_object_unref);
}

/**
 * qlean_machine_pause_async:
 * @self: a running #QleanMachine
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when paused
 * @user_data: data for @callback
 *
 * Stops the guest's CPUs (QMP `stop`); the machine is then PAUSED and
 * refuses commands until [method@Machine.resume].
 *
 * Since: 0.1
 */
void
qlean_machine_pause_async (QleanMachine        *self,
                           GCancellable        *cancellable,
                           GAsyncReadyCallback  callback,
                           gpointer             user_data)
{
  qlean_machine_pause_resume_async (self, TRUE, cancellable, qlean_machine_pause_async,
                                    callback, user_data);
}

/**
 * qlean_machine_pause_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when paused
 *
 * Since: 0.1
 */
gboolean
qlean_machine_pause_finish (QleanMachine  *self,
                            GAsyncResult  *result,
                            GError       **error)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_pause_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_machine_pause:
 * @self: a running #QleanMachine
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_pause_async().
 *
 * Returns: %TRUE when paused
 *
 * Since: 0.1
 */
gboolean
qlean_machine_pause (QleanMachine  *self,
                     GCancellable  *cancellable,
                     GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!qlean_sync_call_begin (&call, error))
    return FALSE;
  qlean_machine_pause_async (self, cancellable, qlean_sync_call_done, &call);

  return qlean_machine_pause_finish (self, qlean_sync_call_wait (&call), error);
}

/**
 * qlean_machine_resume_async:
 * @self: a paused #QleanMachine
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when running again
 * @user_data: data for @callback
 *
 * Lets the guest's CPUs run again (QMP `cont`) and sets its clock, which
 * stood still while paused.
 *
 * Since: 0.1
 */
void
qlean_machine_resume_async (QleanMachine        *self,
                            GCancellable        *cancellable,
                            GAsyncReadyCallback  callback,
                            gpointer             user_data)
{
  qlean_machine_pause_resume_async (self, FALSE, cancellable, qlean_machine_resume_async,
                                    callback, user_data);
}

/**
 * qlean_machine_resume_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when running again
 *
 * Since: 0.1
 */
gboolean
qlean_machine_resume_finish (QleanMachine  *self,
                             GAsyncResult  *result,
                             GError       **error)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_resume_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_machine_resume:
 * @self: a paused #QleanMachine
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_resume_async().
 *
 * Returns: %TRUE when running again
 *
 * Since: 0.1
 */
gboolean
qlean_machine_resume (QleanMachine  *self,
                      GCancellable  *cancellable,
                      GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!qlean_sync_call_begin (&call, error))
    return FALSE;
  qlean_machine_resume_async (self, cancellable, qlean_sync_call_done, &call);

  return qlean_machine_resume_finish (self, qlean_sync_call_wait (&call), error);
}
