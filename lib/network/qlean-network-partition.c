/* qlean-network-partition.c: splitting a network for split-brain tests
 *
 * SPDX-License-Identifier: MIT
 *
 * Partitions are VLANs of the running switch, set one port at a time
 * over its console; they are apart from the switch's lifetime because
 * they only send it commands, and apart from the addresses because they
 * only read who is where.
 */

#include "config.h"

#include <glib/gi18n-lib.h>

#include "qlean-network-state-private.h"
#include "qlean-sync-private.h"
#include "qlean-task-private.h"

typedef struct
{
  GTask  *task;
  guint   pending;
  GError *error;
} Batch;

static void
batch_reply (QleanNetwork *self,
             const char   *data,
             const GError *error,
             gpointer      user_data)
{
  Batch *batch = user_data;

  if (error != NULL && batch->error == NULL)
    batch->error = g_error_new (QLEAN_NETWORK_ERROR,
                                error->domain == QLEAN_NETWORK_ERROR ? error->code
                                                                      : QLEAN_NETWORK_ERROR_FAILED,
                                _("Could not change the VLANs of network “%s”: %s"),
                                self->name, error->message);

  if (--batch->pending > 0)
    return;

  if (batch->error != NULL)
    g_task_return_error (batch->task, batch->error);
  else
    g_task_return_boolean (batch->task, TRUE);
  g_object_unref (batch->task);
  g_free (batch);
}

typedef struct
{
  GStrv side_a;
  GStrv side_b;     /* NULL: everyone else */
} PartitionData;

static void
partition_data_free (PartitionData *data)
{
  g_strfreev (data->side_a);
  g_strfreev (data->side_b);
  g_free (data);
}

static gboolean
qlean_network_partition_in_worker (gpointer user_data)
{
  GTask *task = user_data;
  QleanNetwork *self = g_task_get_source_object (task);
  PartitionData *data = g_task_get_task_data (task);
  g_autoptr(GHashTable) vlans = g_hash_table_new (NULL, NULL);
  g_autoptr(GPtrArray) members = NULL;
  GHashTableIter iter;
  gpointer port, vlan;
  Batch *batch;

  if (g_atomic_int_get (&self->state) != NET_RUNNING)
    {
      g_task_return_new_error (task, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_NOT_RUNNING,
                               _("Cannot change the partitions of network “%s”: it does not run"),
                               self->name);
      return G_SOURCE_REMOVE;
    }
  if (self->shared)
    {
      g_task_return_new_error (task, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_NOT_RUNNING,
                               _("Cannot change the partitions of network “%s”: another "
                                 "process runs its switch"), self->name);
      return G_SOURCE_REMOVE;
    }

  g_mutex_lock (&self->lock);
  members = qlean_network_members_by_port (self);
  for (guint i = 0; i < members->len; i++)
    {
      Member *member = g_ptr_array_index (members, i);
      guint side = 0;

      if (data->side_a != NULL && g_strv_contains ((const char * const *) data->side_a, member->name))
        side = PARTITION_VLAN_A;
      else if (data->side_a != NULL && (data->side_b == NULL ||
               g_strv_contains ((const char * const *) data->side_b, member->name)))
        side = PARTITION_VLAN_B;
      g_hash_table_insert (vlans, GUINT_TO_POINTER (member->host), GUINT_TO_POINTER (side));
    }
  g_mutex_unlock (&self->lock);

  batch = g_new0 (Batch, 1);
  batch->task = g_object_ref (task);
  batch->pending = 1;

  /* A port exists once something plugged into it; creating it first
   * makes the VLAN stick for a machine that is not running yet. The
   * NAT plug (port 1) stays on the default VLAN, with the machines on
   * neither side. */
  g_hash_table_iter_init (&iter, vlans);
  while (g_hash_table_iter_next (&iter, &port, &vlan))
    {
      qlean_network_console_send (self, qlean_network_ignore_reply, NULL, "port/create %u",
                                  GPOINTER_TO_UINT (port));
      batch->pending++;
      qlean_network_console_send (self, batch_reply, batch, "port/setvlan %u %u",
                                  GPOINTER_TO_UINT (port), GPOINTER_TO_UINT (vlan));
    }

  /* Completes the batch once every command above has answered. */
  qlean_network_console_send (self, batch_reply, batch, "showinfo");

  return G_SOURCE_REMOVE;
}

static void
qlean_network_set_partition_async (QleanNetwork        *self,
                                   const char * const  *side_a,
                                   const char * const  *side_b,
                                   GCancellable        *cancellable,
                                   gpointer             source_tag,
                                   GAsyncReadyCallback  callback,
                                   gpointer             user_data)
{
  g_autoptr(GTask) task = qlean_task_new (self, cancellable, callback, user_data,
                                          source_tag, "[qlean] network partition");
  PartitionData *data;

  for (guint side = 0; side < 2; side++)
    {
      const char * const *names = side == 0 ? side_a : side_b;

      for (guint i = 0; names != NULL && names[i] != NULL; i++)
        {
          g_autofree char *address = qlean_network_dup_address (self, names[i]);

          if (address == NULL)
            {
              g_task_return_new_error (task, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_UNKNOWN_MACHINE,
                                       _("Cannot partition network “%s”: no machine named “%s” is on it"),
                                       self->name, names[i]);
              return;
            }
          if (side == 1 && side_a != NULL && g_strv_contains (side_a, names[i]))
            {
              g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                                       _("Cannot partition network “%s”: machine “%s” is on both sides"),
                                       self->name, names[i]);
              return;
            }
        }
    }

  data = g_new0 (PartitionData, 1);
  data->side_a = g_strdupv ((char **) side_a);
  data->side_b = g_strdupv ((char **) side_b);
  g_task_set_task_data (task, data, (GDestroyNotify) partition_data_free);

  qlean_task_run_in_worker (g_steal_pointer (&task), qlean_network_partition_in_worker);
}

/**
 * qlean_network_partition_async:
 * @self: a running #QleanNetwork
 * @side_a: (array zero-terminated=1): names of machines on one side
 * @side_b: (array zero-terminated=1) (nullable): names of machines on the
 *   other side; %NULL for every machine not in @side_a
 * @cancellable: (nullable): a #GCancellable
 * @callback: called once the switch has been split
 * @user_data: data for @callback
 *
 * Splits the switch, for split-brain tests: the machines of @side_a then
 * reach only each other, and so do those of @side_b; frames between the
 * sides are dropped silently, as by a broken link, in both directions.
 * Machines named on neither side (when @side_b is given) stay together
 * on the original segment, with the NAT gateway. The guests see no
 * change on their interfaces: to take one machine's link down for
 * everyone, and let its guest see it, use [method@Machine.set_link].
 *
 * The split is made of VLANs of the switch (each port untagged in the
 * VLAN of its side), so it needs no root and no help from the guests. A
 * new partition replaces the previous one; [method@Network.heal] undoes
 * it; it also ends when the switch stops.
 *
 * Since: 0.1
 */
void
qlean_network_partition_async (QleanNetwork        *self,
                               const char * const  *side_a,
                               const char * const  *side_b,
                               GCancellable        *cancellable,
                               GAsyncReadyCallback  callback,
                               gpointer             user_data)
{
  g_return_if_fail (QLEAN_IS_NETWORK (self));
  g_return_if_fail (side_a != NULL);

  qlean_network_set_partition_async (self, side_a, side_b, cancellable,
                                     qlean_network_partition_async, callback, user_data);
}

/**
 * qlean_network_partition_finish:
 * @self: a #QleanNetwork
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_network_partition_async().
 *
 * Returns: %TRUE once the switch is split
 *
 * Since: 0.1
 */
gboolean
qlean_network_partition_finish (QleanNetwork  *self,
                                GAsyncResult  *result,
                                GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_network_partition_async), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_network_partition:
 * @self: a running #QleanNetwork
 * @side_a: (array zero-terminated=1): names of machines on one side
 * @side_b: (array zero-terminated=1) (nullable): names of machines on the
 *   other side; %NULL for every machine not in @side_a
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_network_partition_async().
 *
 * Returns: %TRUE once the switch is split
 *
 * Since: 0.1
 */
gboolean
qlean_network_partition (QleanNetwork        *self,
                         const char * const  *side_a,
                         const char * const  *side_b,
                         GCancellable        *cancellable,
                         GError             **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_NETWORK (self), FALSE);
  g_return_val_if_fail (side_a != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!qlean_sync_call_begin (&call, error))
    return FALSE;
  qlean_network_partition_async (self, side_a, side_b, cancellable, qlean_sync_call_done, &call);

  return qlean_network_partition_finish (self, qlean_sync_call_wait (&call), error);
}

/**
 * qlean_network_heal_async:
 * @self: a running #QleanNetwork
 * @cancellable: (nullable): a #GCancellable
 * @callback: called once the switch is whole again
 * @user_data: data for @callback
 *
 * Undoes [method@Network.partition]: every machine reaches every other
 * again. Healing a network that is not split succeeds.
 *
 * Since: 0.1
 */
void
qlean_network_heal_async (QleanNetwork        *self,
                          GCancellable        *cancellable,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  g_return_if_fail (QLEAN_IS_NETWORK (self));

  qlean_network_set_partition_async (self, NULL, NULL, cancellable,
                                     qlean_network_heal_async, callback, user_data);
}

/**
 * qlean_network_heal_finish:
 * @self: a #QleanNetwork
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_network_heal_async().
 *
 * Returns: %TRUE once the switch is whole again
 *
 * Since: 0.1
 */
gboolean
qlean_network_heal_finish (QleanNetwork  *self,
                           GAsyncResult  *result,
                           GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_network_heal_async), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_network_heal:
 * @self: a running #QleanNetwork
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_network_heal_async().
 *
 * Returns: %TRUE once the switch is whole again
 *
 * Since: 0.1
 */
gboolean
qlean_network_heal (QleanNetwork  *self,
                    GCancellable  *cancellable,
                    GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_NETWORK (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!qlean_sync_call_begin (&call, error))
    return FALSE;
  qlean_network_heal_async (self, cancellable, qlean_sync_call_done, &call);

  return qlean_network_heal_finish (self, qlean_sync_call_wait (&call), error);
}
