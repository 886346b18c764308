/* qlean-pool-start.c: starting and stopping a pool's machines together
 *
 * SPDX-License-Identifier: MIT
 *
 * spawn_all, init_all and shutdown_all act on every machine at once and
 * keep a pool all or nothing: a failed start kills what did start. A
 * golden start boots one machine and starts the others from its saved
 * state. Apart from qlean-pool.c because it is one concern of its own,
 * the group's life, with its own bookkeeping (GroupData).
 */

#include "config.h"

#include <glib/gi18n-lib.h>
#include <glib/gstdio.h>

#include "qlean-machine-private.h"
#include "qlean-network-private.h"
#include "qlean-pool-private.h"
#include "qlean-sync-private.h"
#include "qlean-task-private.h"

typedef struct
{
  GPtrArray *machines;      /* the machines this call acts on */
  GPtrArray *succeeded;     /* those that started (spawn) */
  GString   *failures;
  guint      n_failed;
  guint      n_cancelled;
  guint      pending;
  gboolean   started_network;
  GError    *error;         /* the final error, while rolling back */
  /* Cancelled on the first failure, so that the rest stop booting; and
   * when the caller cancels. */
  GCancellable *abort;
  GCancellable *caller_cancellable;
  gulong        caller_handler;
  /* Golden start: the first machine boots, the rest start from its state. */
  char         *golden_state;
  gboolean      first_boot;    /* init_all: qlean_machine_initialize */
} GroupData;

static void
group_data_free (GroupData *data)
{
  if (data->caller_handler != 0)
    g_cancellable_disconnect (data->caller_cancellable, data->caller_handler);
  g_clear_object (&data->caller_cancellable);
  g_clear_object (&data->abort);
  g_ptr_array_unref (data->machines);
  g_ptr_array_unref (data->succeeded);
  g_string_free (data->failures, TRUE);
  g_clear_error (&data->error);
  if (data->golden_state != NULL)
    g_unlink (data->golden_state);
  g_free (data->golden_state);
  g_free (data);
}

static GroupData *
group_data_new (void)
{
  GroupData *data = g_new0 (GroupData, 1);

  data->machines = g_ptr_array_new_with_free_func (g_object_unref);
  data->succeeded = g_ptr_array_new_with_free_func (g_object_unref);
  data->failures = g_string_new (NULL);
  return data;
}

static void
group_note_failure (GroupData    *data,
                    QleanMachine *machine,
                    const GError *error)
{
  data->n_failed++;
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      data->n_cancelled++;
      /* Stopped because another failed: that one says why. */
      if (data->abort != NULL && g_cancellable_is_cancelled (data->abort) &&
          !g_cancellable_is_cancelled (data->caller_cancellable))
        return;
    }
  g_string_append_printf (data->failures, "\n- %s: %s", qlean_machine_get_name (machine),
                          error->message);
}

static void
forward_cancel_cb (GCancellable *cancellable,
                   gpointer      user_data)
{
  g_cancellable_cancel (G_CANCELLABLE (user_data));
}

static void
rollback_network_stopped_cb (GObject      *source,
                             GAsyncResult *result,
                             gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  GroupData *data = g_task_get_task_data (task);
  g_autoptr(GError) error = NULL;

  if (!qlean_network_stop_finish (QLEAN_NETWORK (source), result, &error))
    g_debug ("Stopping the pool's network after a failed start: %s", error->message);

  g_task_return_error (task, g_steal_pointer (&data->error));
}

static void
rollback_finish (GTask *task)
{
  QleanPool *self = g_task_get_source_object (task);
  GroupData *data = g_task_get_task_data (task);

  if (data->started_network)
    qlean_network_stop_async (self->network, NULL, rollback_network_stopped_cb, g_object_ref (task));
  else
    g_task_return_error (task, g_steal_pointer (&data->error));
}

static void
rollback_killed_cb (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  GroupData *data = g_task_get_task_data (task);
  g_autoptr(GError) error = NULL;

  if (!qlean_machine_kill_finish (QLEAN_MACHINE (source), result, &error))
    g_debug ("Killing machine “%s” after a failed start: %s",
             qlean_machine_get_name (QLEAN_MACHINE (source)), error->message);

  if (--data->pending == 0)
    rollback_finish (task);
}

static void spawn_one_cb_finish (GTask *task);

static void
spawn_one_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  GroupData *data = g_task_get_task_data (task);
  QleanMachine *machine = QLEAN_MACHINE (source);
  g_autoptr(GError) error = NULL;

  /* A spawn or a first boot (initialize): both are boolean tasks. */
  if (g_task_propagate_boolean (G_TASK (result), &error))
    g_ptr_array_add (data->succeeded, g_object_ref (machine));
  else
    {
      group_note_failure (data, machine, error);
      g_cancellable_cancel (data->abort);
    }

  spawn_one_cb_finish (task);
}

/* One machine's start is over: when it was the last, the group's is. */
static void
spawn_one_cb_finish (GTask *task)
{
  GroupData *data = g_task_get_task_data (task);

  if (--data->pending > 0)
    return;

  if (data->n_failed == 0)
    {
      g_task_return_boolean (task, TRUE);
      return;
    }

  /* All or nothing: what did start is killed (there is nothing in them
   * worth a clean shutdown yet), so that the caller can fix the cause and
   * start the pool again from scratch. */
  if (g_cancellable_is_cancelled (data->caller_cancellable))
    data->error = g_error_new (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                               _("Starting the pool was cancelled"));
  else
    data->error = g_error_new (QLEAN_POOL_ERROR, QLEAN_POOL_ERROR_MACHINES_FAILED,
                               _("Machines of the pool failed to start, and the others "
                                 "were stopped again:%s"),
                               data->failures->str);

  data->pending = data->succeeded->len;
  for (guint i = 0; i < data->succeeded->len; i++)
    qlean_machine_kill_async (g_ptr_array_index (data->succeeded, i), NULL,
                              rollback_killed_cb, g_object_ref (task));
  if (data->pending == 0)
    rollback_finish (task);
}

/* A spawn, or a first boot for init_all: both complete as boolean tasks
 * of the machine. */
static void
start_one (GTask               *task,
           QleanMachine        *machine,
           GAsyncReadyCallback  callback)
{
  GroupData *data = g_task_get_task_data (task);

  if (data->first_boot)
    qlean_machine_initialize_async (machine, data->abort, callback, g_object_ref (task));
  else
    qlean_machine_spawn_async (machine, data->abort, callback, g_object_ref (task));
}

/* Starts the group's machines from @first on, all at once: under TCG
 * each boot is mostly one busy vCPU thread, so machines boot in parallel
 * on as many host cores as there are. */
static void
spawn_machines (GTask *task,
                guint  first)
{
  GroupData *data = g_task_get_task_data (task);

  for (guint i = first; i < data->machines->len; i++)
    start_one (task, g_ptr_array_index (data->machines, i), spawn_one_cb);
}

/* Whether the others can start from @first's state: same image and the
 * same machine (a saved state only fits a QEMU like the one it left). */
static gboolean
same_machine (QleanMachine *first,
              QleanMachine *other)
{
  QleanMachineConfig *a = qlean_machine_get_config (first);
  QleanMachineConfig *b = qlean_machine_get_config (other);

  return qlean_machine_get_image (first) == qlean_machine_get_image (other) &&
         qlean_image_get_disk (qlean_machine_get_image (first)) == NULL &&
         qlean_machine_config_get_cores (a) == qlean_machine_config_get_cores (b) &&
         qlean_machine_config_get_memory_mib (a) == qlean_machine_config_get_memory_mib (b) &&
         qlean_machine_config_get_disk_gib (a) == 0 && qlean_machine_config_get_disk_gib (b) == 0 &&
         qlean_machine_config_get_accel (a) == qlean_machine_config_get_accel (b) &&
         qlean_machine_config_get_firmware (a) == qlean_machine_config_get_firmware (b) &&
         g_strcmp0 (qlean_machine_config_get_qemu_binary (a), qlean_machine_config_get_qemu_binary (b)) == 0 &&
         g_strcmp0 (qlean_machine_config_get_kernel (a), qlean_machine_config_get_kernel (b)) == 0 &&
         g_strcmp0 (qlean_machine_config_get_initrd (a), qlean_machine_config_get_initrd (b)) == 0 &&
         g_strcmp0 (qlean_machine_config_get_cmdline (a), qlean_machine_config_get_cmdline (b)) == 0 &&
         g_strv_equal ((const char * const *) (qlean_machine_config_get_extra_args (a) ? qlean_machine_config_get_extra_args (a) : (const char * const []) { NULL }),
                       (const char * const *) (qlean_machine_config_get_extra_args (b) ? qlean_machine_config_get_extra_args (b) : (const char * const []) { NULL }));
}

static void
golden_saved_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  GroupData *data = g_task_get_task_data (task);
  QleanMachine *first = QLEAN_MACHINE (source);
  g_autofree char *mac = qlean_machine_dup_mac_address (first);
  g_autoptr(GError) error = NULL;
  guint start_at = 1;

  if (!qlean_machine_save_state_finish (first, result, &error))
    {
      /* Boot the rest instead: slower, still correct. */
      g_debug ("golden pool: saving %s failed, booting the others: %s",
               qlean_machine_get_name (first), error->message);
      g_clear_pointer (&data->golden_state, g_free);
    }
  else
    for (guint i = 1; i < data->machines->len; i++)
      {
        QleanMachine *machine = g_ptr_array_index (data->machines, i);

        if (same_machine (first, machine))
          qlean_machine_set_incoming (machine, data->golden_state, TRUE, mac);
      }

  spawn_machines (task, start_at);
}

static void
golden_first_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  GroupData *data = g_task_get_task_data (task);
  QleanMachine *first = QLEAN_MACHINE (source);
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = NULL;

  if (!g_task_propagate_boolean (G_TASK (result), &error))
    {
      /* The others would fail alike: report this one, start none. */
      group_note_failure (data, first, error);
      data->pending = 1;
      spawn_one_cb_finish (task);
      return;
    }

  g_ptr_array_add (data->succeeded, g_object_ref (first));
  data->pending--;

  /* Machines that start from a memory template (which the first made,
   * if there was none) share its pages, and have the state a golden one
   * would have (no disk, nothing run yet); a golden state would give
   * each its own copy of all of it. */
  if (!data->first_boot && qlean_machine_would_use_memory_template (first))
    {
      spawn_machines (task, 1);
      return;
    }

  dir = qlean_machine_ensure_state_dir (first, "golden", NULL);
  if (dir == NULL)
    {
      spawn_machines (task, 1);
      return;
    }

  data->golden_state = g_build_filename (dir, "golden.state", NULL);
  qlean_machine_save_state_async (first, data->golden_state, FALSE, data->abort,
                                  golden_saved_cb, g_object_ref (task));
}

/* With golden set and several alike machines to start: the first boots,
 * its running state is saved once, and the rest start from that state
 * with their own identities (qlean_machine_set_incoming). */
static gboolean
qlean_pool_golden_start (GTask *task)
{
  QleanPool *self = g_task_get_source_object (task);
  GroupData *data = g_task_get_task_data (task);

  if (!self->golden || data->machines->len < 2)
    return FALSE;

  start_one (task, g_ptr_array_index (data->machines, 0), golden_first_cb);
  return TRUE;
}

static void
spawn_network_started_cb (GObject      *source,
                          GAsyncResult *result,
                          gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  GroupData *data = g_task_get_task_data (task);
  GError *error = NULL;

  if (!qlean_network_start_finish (QLEAN_NETWORK (source), result, &error))
    {
      g_prefix_error (&error, _("Could not start the pool's network: "));
      g_task_return_error (task, error);
      return;
    }

  data->pending = data->machines->len;
  if (data->pending == 0)
    {
      g_task_return_boolean (task, TRUE);
      return;
    }

  if (qlean_pool_golden_start (task))
    return;

  spawn_machines (task, 0);
}

static void
qlean_pool_start_all_async (QleanPool           *self,
                            GCancellable        *cancellable,
                            gpointer             source_tag,
                            GAsyncReadyCallback  callback,
                            gpointer             user_data)
{
  g_autoptr(GTask) task = qlean_task_new (self, cancellable, callback, user_data,
                                          source_tag, "[qlean] start pool");
  GroupData *data = group_data_new ();

  g_task_set_task_data (task, data, (GDestroyNotify) group_data_free);
  data->first_boot = source_tag == (gpointer) qlean_pool_init_all_async;

  /* Machines that already run (or are starting) are left as they are. */
  for (guint i = 0; i < self->machines->len; i++)
    {
      QleanMachine *machine = g_ptr_array_index (self->machines, i);
      QleanMachineState state = qlean_machine_get_state (machine);

      if (state == QLEAN_MACHINE_STATE_CREATED || state == QLEAN_MACHINE_STATE_STOPPED ||
          state == QLEAN_MACHINE_STATE_CRASHED)
        g_ptr_array_add (data->machines, g_object_ref (machine));
    }

  data->abort = g_cancellable_new ();
  if (cancellable != NULL)
    {
      data->caller_cancellable = g_object_ref (cancellable);
      data->caller_handler = g_cancellable_connect (cancellable, G_CALLBACK (forward_cancel_cb),
                                                    g_object_ref (data->abort), g_object_unref);
    }

  data->started_network = self->owns_network && !qlean_network_is_running (self->network);
  qlean_network_start_async (self->network, cancellable, spawn_network_started_cb,
                             g_steal_pointer (&task));
}

/**
 * qlean_pool_spawn_all_async:
 * @self: a #QleanPool
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when every machine runs, or the pool failed to start
 * @user_data: data for @callback
 *
 * Starts the pool's network, then boots every machine that does not run
 * yet, all at once, and completes when every one runs and has its
 * address. If any machine fails, the ones that started are killed again
 * (and the pool's own network stopped, if this call started it) before
 * the call fails with %QLEAN_POOL_ERROR_MACHINES_FAILED, naming each
 * machine that failed and why.
 *
 * Since: 0.1
 */
void
qlean_pool_spawn_all_async (QleanPool           *self,
                            GCancellable        *cancellable,
                            GAsyncReadyCallback  callback,
                            gpointer             user_data)
{
  g_return_if_fail (QLEAN_IS_POOL (self));

  qlean_pool_start_all_async (self, cancellable, qlean_pool_spawn_all_async, callback, user_data);
}

/**
 * qlean_pool_spawn_all_finish:
 * @self: a #QleanPool
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_pool_spawn_all_async().
 *
 * Returns: %TRUE when every machine runs
 *
 * Since: 0.1
 */
gboolean
qlean_pool_spawn_all_finish (QleanPool     *self,
                             GAsyncResult  *result,
                             GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_pool_spawn_all_async), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_pool_spawn_all:
 * @self: a #QleanPool
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_pool_spawn_all_async().
 *
 * Returns: %TRUE when every machine runs
 *
 * Since: 0.1
 */
gboolean
qlean_pool_spawn_all (QleanPool     *self,
                      GCancellable  *cancellable,
                      GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_POOL (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!qlean_sync_call_begin (&call, error))
    return FALSE;
  qlean_pool_spawn_all_async (self, cancellable, qlean_sync_call_done, &call);

  return qlean_pool_spawn_all_finish (self, qlean_sync_call_wait (&call), error);
}

/**
 * qlean_pool_init_all_async:
 * @self: a #QleanPool
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when every machine runs, or the pool failed to start
 * @user_data: data for @callback
 *
 * The first boot of every machine, all at once, as the seed's
 * `init_all`: each runs [method@Machine.initialize] (cloud-init for
 * distribution images); otherwise as [method@Pool.spawn_all].
 *
 * Since: 0.1
 */
void
qlean_pool_init_all_async (QleanPool           *self,
                           GCancellable        *cancellable,
                           GAsyncReadyCallback  callback,
                           gpointer             user_data)
{
  g_return_if_fail (QLEAN_IS_POOL (self));

  qlean_pool_start_all_async (self, cancellable, qlean_pool_init_all_async, callback, user_data);
}

/**
 * qlean_pool_init_all_finish:
 * @self: a #QleanPool
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_pool_init_all_async().
 *
 * Returns: %TRUE when every machine runs
 *
 * Since: 0.1
 */
gboolean
qlean_pool_init_all_finish (QleanPool     *self,
                            GAsyncResult  *result,
                            GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_pool_init_all_async), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_pool_init_all:
 * @self: a #QleanPool
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_pool_init_all_async().
 *
 * Returns: %TRUE when every machine runs
 *
 * Since: 0.1
 */
gboolean
qlean_pool_init_all (QleanPool     *self,
                     GCancellable  *cancellable,
                     GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_POOL (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!qlean_sync_call_begin (&call, error))
    return FALSE;
  qlean_pool_init_all_async (self, cancellable, qlean_sync_call_done, &call);

  return qlean_pool_init_all_finish (self, qlean_sync_call_wait (&call), error);
}

static void
shutdown_network_stopped_cb (GObject      *source,
                             GAsyncResult *result,
                             gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  GError *error = NULL;

  if (!qlean_network_stop_finish (QLEAN_NETWORK (source), result, &error))
    {
      g_prefix_error (&error, _("Could not stop the pool's network: "));
      g_task_return_error (task, error);
      return;
    }

  g_task_return_boolean (task, TRUE);
}

/* The machines are down: the pool's own network follows them. */
static void
shutdown_stop_network (GTask *task)
{
  QleanPool *self = g_task_get_source_object (task);

  if (self->owns_network)
    qlean_network_stop_async (self->network, NULL, shutdown_network_stopped_cb, task);
  else
    {
      g_task_return_boolean (task, TRUE);
      g_object_unref (task);
    }
}

static void
shutdown_one_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  GroupData *data = g_task_get_task_data (task);
  QleanMachine *machine = QLEAN_MACHINE (source);
  g_autoptr(GError) error = NULL;

  if (!qlean_machine_shutdown_finish (machine, result, &error))
    group_note_failure (data, machine, error);

  if (--data->pending > 0)
    return;

  if (data->n_failed > 0)
    {
      g_task_return_new_error (task, QLEAN_POOL_ERROR, QLEAN_POOL_ERROR_MACHINES_FAILED,
                               _("Machines of the pool failed to shut down (%u of %u):%s"),
                               data->n_failed, data->machines->len, data->failures->str);
      return;
    }

  shutdown_stop_network (g_steal_pointer (&task));
}

/**
 * qlean_pool_shutdown_all_async:
 * @self: a #QleanPool
 * @cancellable: (nullable): a #GCancellable
 * @callback: called once every machine has stopped
 * @user_data: data for @callback
 *
 * Shuts every machine down, all at once, each as
 * [method@Machine.shutdown] does (bounded, escalating to SIGKILL), then
 * stops the pool's own network. The pool can be started again.
 *
 * Since: 0.1
 */
void
qlean_pool_shutdown_all_async (QleanPool           *self,
                               GCancellable        *cancellable,
                               GAsyncReadyCallback  callback,
                               gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  GroupData *data;

  g_return_if_fail (QLEAN_IS_POOL (self));

  task = qlean_task_new (self, cancellable, callback, user_data,
                         qlean_pool_shutdown_all_async, "[qlean] shut down pool");
  data = group_data_new ();
  g_task_set_task_data (task, data, (GDestroyNotify) group_data_free);

  for (guint i = 0; i < self->machines->len; i++)
    g_ptr_array_add (data->machines, g_object_ref (g_ptr_array_index (self->machines, i)));

  if (data->machines->len == 0)
    {
      shutdown_stop_network (g_steal_pointer (&task));
      return;
    }

  data->pending = data->machines->len;
  for (guint i = 0; i < data->machines->len; i++)
    qlean_machine_shutdown_async (g_ptr_array_index (data->machines, i), cancellable,
                                  shutdown_one_cb, g_object_ref (task));
}

/**
 * qlean_pool_shutdown_all_finish:
 * @self: a #QleanPool
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_pool_shutdown_all_async().
 *
 * Returns: %TRUE once every machine has stopped
 *
 * Since: 0.1
 */
gboolean
qlean_pool_shutdown_all_finish (QleanPool     *self,
                                GAsyncResult  *result,
                                GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_pool_shutdown_all_async), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_pool_shutdown_all:
 * @self: a #QleanPool
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_pool_shutdown_all_async().
 *
 * Returns: %TRUE once every machine has stopped
 *
 * Since: 0.1
 */
gboolean
qlean_pool_shutdown_all (QleanPool     *self,
                         GCancellable  *cancellable,
                         GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_POOL (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!qlean_sync_call_begin (&call, error))
    return FALSE;
  qlean_pool_shutdown_all_async (self, cancellable, qlean_sync_call_done, &call);

  return qlean_pool_shutdown_all_finish (self, qlean_sync_call_wait (&call), error);
}
