/* qlean-pool-spares.c: warmed spares for a pool's machines
 *
 * SPDX-License-Identifier: MIT
 *
 * A machine on a network takes a spare that has its network card, on a
 * hub of QEMU's own, and joins that hub to its switch as it takes it
 * (qlean-machine-spares.c, qlean-machine-network.c). Such spares serve
 * machines of one shape on any network, so a pool's are those of its
 * machines' shapes, whatever its network. Apart from qlean-pool.c as an
 * optimisation the pool's object need not know about.
 */

#include "config.h"

#include <gio/gio.h>

#include "qlean-machine-private.h"
#include "qlean-pool-private.h"
#include "qlean-sync-private.h"
#include "qlean-task-private.h"

typedef struct
{
  guint   pending;
  GError *error;    /* the first failure */
} PrepareData;

static void
prepare_data_free (PrepareData *data)
{
  g_clear_error (&data->error);
  g_free (data);
}

static void
machine_spares_prepared_cb (GObject      *source,
                            GAsyncResult *result,
                            gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  PrepareData *data = g_task_get_task_data (task);
  GError *error = NULL;

  if (!qlean_machine_prepare_spares_like_finish (result, &error))
    {
      if (data->error == NULL)
        data->error = error;
      else
        g_error_free (error);
    }
  if (--data->pending > 0)
    return;

  if (data->error != NULL)
    g_task_return_error (task, g_steal_pointer (&data->error));
  else
    g_task_return_boolean (task, TRUE);
}

/**
 * qlean_pool_prepare_spares_async:
 * @self: a #QleanPool
 * @cancellable: (nullable): a #GCancellable
 * @callback: called once the spares run
 * @user_data: data for @callback
 *
 * Starts the warmed spares that the pool's machines keep (see
 * [property@MachineConfig:spares]) and completes once they are ready,
 * so that the next [method@Pool.spawn_all] takes them: with one spare
 * per machine, the whole pool is then running in about the time a
 * single machine takes to start from its memory template. Without this
 * call, the first start of such machines starts spares behind them,
 * for the next pool.
 *
 * A pool's machines take spares that have their network card, which
 * joins the pool's network as they take one; the spares are on no
 * network until then, so that they serve any pool of machines of the
 * same image and configuration. Machines whose configuration keeps no
 * spares are left out.
 *
 * Fails with %QLEAN_MACHINE_ERROR_INVALID_CONFIG when machines of the
 * pool that keep spares cannot have them (see
 * qlean_machine_prepare_spares_async()). Cancelling stops waiting, not
 * the spares.
 *
 * Since: 0.1
 */
void
qlean_pool_prepare_spares_async (QleanPool           *self,
                                 GCancellable        *cancellable,
                                 GAsyncReadyCallback  callback,
                                 gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  PrepareData *data;

  g_return_if_fail (QLEAN_IS_POOL (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = qlean_task_new (self, cancellable, callback, user_data, qlean_pool_prepare_spares_async,
                         "[qlean] prepare a pool's spare machines");
  data = g_new0 (PrepareData, 1);
  g_task_set_task_data (task, data, (GDestroyNotify) prepare_data_free);

  /* Counted as one until every machine is asked, so that none completes
   * the task early. */
  data->pending = 1;
  for (guint i = 0; i < self->machines->len; i++)
    {
      QleanMachine *machine = g_ptr_array_index (self->machines, i);

      if (qlean_machine_config_get_spares (qlean_machine_get_config (machine)) == 0)
        continue;
      data->pending++;
      qlean_machine_prepare_spares_like_async (machine, cancellable, machine_spares_prepared_cb,
                                               g_object_ref (task));
    }
  if (--data->pending == 0)
    g_task_return_boolean (task, TRUE);
}

/**
 * qlean_pool_prepare_spares_finish:
 * @self: a #QleanPool
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_pool_prepare_spares_async().
 *
 * Returns: %TRUE once the spares run
 *
 * Since: 0.1
 */
gboolean
qlean_pool_prepare_spares_finish (QleanPool     *self,
                                  GAsyncResult  *result,
                                  GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_pool_prepare_spares_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_pool_prepare_spares:
 * @self: a #QleanPool
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_pool_prepare_spares_async().
 *
 * Returns: %TRUE once the spares run
 *
 * Since: 0.1
 */
gboolean
qlean_pool_prepare_spares (QleanPool     *self,
                           GCancellable  *cancellable,
                           GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_POOL (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!qlean_sync_call_begin (&call, error))
    return FALSE;
  qlean_pool_prepare_spares_async (self, cancellable, qlean_sync_call_done, &call);

  return qlean_pool_prepare_spares_finish (self, qlean_sync_call_wait (&call), error);
}
