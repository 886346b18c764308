/* qlean-pool.c: machines that live, and talk, together
 *
 * SPDX-License-Identifier: MIT
 *
 * The QleanPool object: its machines by name, as a list model, and its
 * network's partitions. Starting and stopping the machines together is
 * in qlean-pool-start.c.
 */

#include "config.h"

#include <glib/gi18n-lib.h>

#include "qlean-machine-private.h"
#include "qlean-network-private.h"
#include "qlean-pool-private.h"
#include "qlean-task-private.h"
#include "qlean-worker-private.h"

/**
 * QleanPool:
 *
 * Named machines started, stopped and networked together, for tests
 * that need more than one machine: the seed's `with_pool`.
 *
 * Machines are added by name with [method@Pool.add] and found again with
 * [method@Pool.get]; the pool is a [iface@Gio.ListModel] of them, in the
 * order they were added, and emits [signal@Gio.ListModel::items-changed]
 * on every add and remove. [method@Pool.spawn_all] starts them all at
 * once and completes when every one runs; if any fails, the ones that did
 * start are killed again and the error names each machine that failed
 * and why, so a pool is never left half started.
 * [method@Pool.shutdown_all] stops them all at once.
 *
 * The machines share a private [class@Network], made by the pool: each
 * has its own address on it, the pool lists every machine's name in
 * every guest's `/etc/hosts`, so `ping bob` works in alice, and nothing
 * they send leaves the network. [method@Pool.partition] and
 * [method@Pool.heal] split and join it for split-brain tests;
 * [method@Machine.set_link] unplugs one machine.
 *
 * Dropping the last reference to a pool kills its machines and stops its
 * network. A pool is used from one thread.
 *
 * Since: 0.1
 */


static void qlean_pool_list_model_init (GListModelInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (QleanPool, qlean_pool, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_LIST_MODEL, qlean_pool_list_model_init))

G_DEFINE_QUARK (qlean-pool-error-quark, qlean_pool_error)

enum {
  PROP_0,
  PROP_NETWORK,
  PROP_N_ITEMS,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

/* GListModel */

static GType
qlean_pool_get_item_type (GListModel *model)
{
  return QLEAN_TYPE_MACHINE;
}

static guint
qlean_pool_get_n_items (GListModel *model)
{
  return QLEAN_POOL (model)->machines->len;
}

static gpointer
qlean_pool_get_item (GListModel *model,
                     guint       position)
{
  QleanPool *self = QLEAN_POOL (model);

  if (position >= self->machines->len)
    return NULL;

  return g_object_ref (g_ptr_array_index (self->machines, position));
}

static void
qlean_pool_list_model_init (GListModelInterface *iface)
{
  iface->get_item_type = qlean_pool_get_item_type;
  iface->get_n_items = qlean_pool_get_n_items;
  iface->get_item = qlean_pool_get_item;
}

/* GObject */

static gboolean
machine_has_qemu (QleanMachine *machine)
{
  return qlean_machine_get_pid (machine) != 0;
}

static void
qlean_pool_dispose (GObject *object)
{
  QleanPool *self = QLEAN_POOL (object);
  /* The worker must never wait for itself; there, kills are only asked. */
  gboolean may_block = !qlean_worker_is_current ();

  for (guint i = 0; self->machines != NULL && i < self->machines->len; i++)
    {
      QleanMachine *machine = g_ptr_array_index (self->machines, i);

      /* A machine only the pool holds dies in its own dispose; one the
       * caller still holds must not outlive the pool's network. */
      if (G_OBJECT (machine)->ref_count > 1 && machine_has_qemu (machine))
        {
          if (may_block)
            qlean_machine_kill (machine, NULL, NULL);
          else
            qlean_machine_kill_async (machine, NULL, NULL, NULL);
        }
    }
  g_clear_pointer (&self->machines, g_ptr_array_unref);

  if (self->network != NULL && self->owns_network && qlean_network_is_running (self->network))
    {
      if (may_block)
        qlean_network_stop (self->network, NULL, NULL);
      else
        qlean_network_stop_async (self->network, NULL, NULL, NULL);
    }
  g_clear_object (&self->network);

  G_OBJECT_CLASS (qlean_pool_parent_class)->dispose (object);
}

static void
qlean_pool_get_property (GObject    *object,
                         guint       prop_id,
                         GValue     *value,
                         GParamSpec *pspec)
{
  QleanPool *self = QLEAN_POOL (object);

  switch (prop_id)
    {
    case PROP_NETWORK: g_value_set_object (value, self->network); break;
    case PROP_N_ITEMS: g_value_set_uint (value, self->machines->len); break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
qlean_pool_set_property (GObject      *object,
                         guint         prop_id,
                         const GValue *value,
                         GParamSpec   *pspec)
{
  QleanPool *self = QLEAN_POOL (object);

  switch (prop_id)
    {
    case PROP_NETWORK: self->network = g_value_dup_object (value); break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
qlean_pool_constructed (GObject *object)
{
  QleanPool *self = QLEAN_POOL (object);

  G_OBJECT_CLASS (qlean_pool_parent_class)->constructed (object);

  if (self->network == NULL)
    {
      self->network = qlean_network_new ();
      self->owns_network = TRUE;
    }
}

static void
qlean_pool_class_init (QleanPoolClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->constructed = qlean_pool_constructed;
  object_class->dispose = qlean_pool_dispose;
  object_class->get_property = qlean_pool_get_property;
  object_class->set_property = qlean_pool_set_property;

  /**
   * QleanPool:network:
   *
   * The network the pool's machines plug into. When not given, the pool
   * makes a private one and starts and stops it with its machines; a
   * network given by the caller is started when needed but never
   * stopped by the pool.
   *
   * Since: 0.1
   */
  properties[PROP_NETWORK] =
    g_param_spec_object ("network", NULL, NULL, QLEAN_TYPE_NETWORK,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * QleanPool:n-items:
   *
   * The number of machines in the pool.
   *
   * Since: 0.1
   */
  properties[PROP_N_ITEMS] =
    g_param_spec_uint ("n-items", NULL, NULL, 0, G_MAXUINT, 0,
                       G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
qlean_pool_init (QleanPool *self)
{
  self->machines = g_ptr_array_new_with_free_func (g_object_unref);
}

/**
 * qlean_pool_new:
 *
 * Creates an empty pool with a private network.
 *
 * Returns: (transfer full): a new #QleanPool
 *
 * Since: 0.1
 */
QleanPool *
qlean_pool_new (void)
{
  return g_object_new (QLEAN_TYPE_POOL, NULL);
}

/**
 * qlean_pool_new_with_network:
 * @network: the network the machines plug into
 *
 * Creates an empty pool whose machines plug into @network, which the
 * pool starts when needed and never stops. Two pools on one network
 * reach each other's machines; their names must differ.
 *
 * Returns: (transfer full): a new #QleanPool
 *
 * Since: 0.1
 */
QleanPool *
qlean_pool_new_with_network (QleanNetwork *network)
{
  g_return_val_if_fail (QLEAN_IS_NETWORK (network), NULL);

  return g_object_new (QLEAN_TYPE_POOL, "network", network, NULL);
}

/**
 * qlean_pool_set_golden:
 * @self: a #QleanPool
 * @golden: whether to start machines from a golden snapshot
 *
 * With @golden, [method@Pool.spawn_all] boots only the first machine,
 * saves its running state once, and starts every other machine with the
 * same image and configuration from that state: each then gets its own
 * hostname, machine-id, random state, MAC and address, and the pool is
 * ready much sooner than with every machine booting.
 *
 * Since: 0.1
 */
void
qlean_pool_set_golden (QleanPool *self,
                       gboolean   golden)
{
  g_return_if_fail (QLEAN_IS_POOL (self));

  self->golden = !!golden;
}

/**
 * qlean_pool_get_golden:
 * @self: a #QleanPool
 *
 * Returns: whether the pool starts machines from a golden snapshot
 *
 * Since: 0.1
 */
gboolean
qlean_pool_get_golden (QleanPool *self)
{
  g_return_val_if_fail (QLEAN_IS_POOL (self), FALSE);

  return self->golden;
}

/**
 * qlean_pool_get_network:
 * @self: a #QleanPool
 *
 * Returns: (transfer none): the network the pool's machines plug into
 *
 * Since: 0.1
 */
QleanNetwork *
qlean_pool_get_network (QleanPool *self)
{
  g_return_val_if_fail (QLEAN_IS_POOL (self), NULL);

  return self->network;
}

static gboolean
find_machine (QleanPool  *self,
              const char *name,
              guint      *position)
{
  for (guint i = 0; i < self->machines->len; i++)
    if (g_str_equal (qlean_machine_get_name (g_ptr_array_index (self->machines, i)), name))
      {
        if (position != NULL)
          *position = i;
        return TRUE;
      }

  return FALSE;
}

/* The machines' names for an error message, or %NULL for an empty pool,
 * which the message then says in a sentence of its own. */
static char *
list_names (QleanPool *self)
{
  GString *names;

  if (self->machines->len == 0)
    return NULL;

  names = g_string_new (NULL);
  for (guint i = 0; i < self->machines->len; i++)
    g_string_append_printf (names, "%s“%s”", i ? ", " : "",
                            qlean_machine_get_name (g_ptr_array_index (self->machines, i)));

  return g_string_free (names, FALSE);
}

/**
 * qlean_pool_add:
 * @self: a #QleanPool
 * @name: the machine's name, unique in the pool; also its host name,
 *   so letters, digits and inner hyphens only
 * @image: (nullable): what the machine boots; %NULL for the minimal image
 * @config: (nullable): its resources; %NULL for the defaults. The machine
 *   takes a copy, so one config can serve many machines.
 * @error: return location for a #GError
 *
 * Adds a machine to the pool and reserves its address on the pool's
 * network. It starts with the next [method@Pool.spawn_all]. Machines
 * already running learn its name (in `/etc/hosts`) only when they start
 * again, so add every machine before the first start.
 *
 * Returns: %TRUE on success; %FALSE with %QLEAN_POOL_ERROR_DUPLICATE_NAME
 *   when the name is taken, or a %QLEAN_NETWORK_ERROR when the name
 *   cannot be a host name or the network is full
 *
 * Since: 0.1
 */
gboolean
qlean_pool_add (QleanPool           *self,
                const char          *name,
                QleanImage          *image,
                QleanMachineConfig  *config,
                GError             **error)
{
  g_autoptr(QleanMachine) machine = NULL;

  g_return_val_if_fail (QLEAN_IS_POOL (self), FALSE);
  g_return_val_if_fail (name != NULL, FALSE);
  g_return_val_if_fail (image == NULL || QLEAN_IS_IMAGE (image), FALSE);
  g_return_val_if_fail (config == NULL || QLEAN_IS_MACHINE_CONFIG (config), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (find_machine (self, name, NULL))
    {
      g_set_error (error, QLEAN_POOL_ERROR, QLEAN_POOL_ERROR_DUPLICATE_NAME,
                   _("The pool already has a machine named “%s”; give each machine its own name"),
                   name);
      return FALSE;
    }

  if (!qlean_network_check_name (name, error))
    return FALSE;

  machine = g_object_new (QLEAN_TYPE_MACHINE,
                          "name", name,
                          "image", image,
                          "config", config,
                          "network", self->network,
                          NULL);

  /* Now, so that every machine knows every other's address when the
   * first one starts, and a full network fails here, not at start. */
  if (!qlean_network_attach (self->network, name, machine, error))
    return FALSE;

  g_ptr_array_add (self->machines, g_steal_pointer (&machine));
  g_list_model_items_changed (G_LIST_MODEL (self), self->machines->len - 1, 0, 1);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_N_ITEMS]);

  return TRUE;
}

/**
 * qlean_pool_get:
 * @self: a #QleanPool
 * @name: a machine's name
 * @error: return location for a #GError
 *
 * Finds a machine of the pool by name.
 *
 * Returns: (transfer full): the machine, or %NULL with
 *   %QLEAN_POOL_ERROR_NOT_FOUND
 *
 * Since: 0.1
 */
QleanMachine *
qlean_pool_get (QleanPool   *self,
                const char  *name,
                GError     **error)
{
  g_autofree char *names = NULL;
  guint position;

  g_return_val_if_fail (QLEAN_IS_POOL (self), NULL);
  g_return_val_if_fail (name != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (find_machine (self, name, &position))
    return g_object_ref (g_ptr_array_index (self->machines, position));

  names = list_names (self);
  if (names == NULL)
    g_set_error (error, QLEAN_POOL_ERROR, QLEAN_POOL_ERROR_NOT_FOUND,
                 _("The pool has no machine named “%s”; it has no machines at all"), name);
  else
    g_set_error (error, QLEAN_POOL_ERROR, QLEAN_POOL_ERROR_NOT_FOUND,
                 _("The pool has no machine named “%s”; it has: %s"), name, names);
  return NULL;
}

/**
 * qlean_pool_remove:
 * @self: a #QleanPool
 * @name: a machine's name
 * @error: return location for a #GError
 *
 * Removes a machine from the pool. Unless the caller holds a reference
 * to it, the machine is dropped: killed if it runs, and its name and
 * address on the network are free again.
 *
 * Returns: %TRUE on success; %FALSE with %QLEAN_POOL_ERROR_NOT_FOUND
 *
 * Since: 0.1
 */
gboolean
qlean_pool_remove (QleanPool   *self,
                   const char  *name,
                   GError     **error)
{
  g_autofree char *names = NULL;
  guint position;

  g_return_val_if_fail (QLEAN_IS_POOL (self), FALSE);
  g_return_val_if_fail (name != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!find_machine (self, name, &position))
    {
      names = list_names (self);
      if (names == NULL)
        g_set_error (error, QLEAN_POOL_ERROR, QLEAN_POOL_ERROR_NOT_FOUND,
                     _("Cannot remove machine “%s”: the pool has no machines at all"), name);
      else
        g_set_error (error, QLEAN_POOL_ERROR, QLEAN_POOL_ERROR_NOT_FOUND,
                     _("Cannot remove machine “%s”: the pool has no machine of that name; it "
                       "has: %s"), name, names);
      return FALSE;
    }

  g_ptr_array_remove_index (self->machines, position);
  g_list_model_items_changed (G_LIST_MODEL (self), position, 1, 0);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_N_ITEMS]);

  return TRUE;
}

/* Partitions: the pool's network makes them (see
 * qlean-network-partition.c). The pool's own calls only hand its network
 * the request: the async ones wrap the network's task in one whose
 * source is the pool, the blocking ones call the network's twin. */

static void
network_done_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  GError *error = NULL;

  /* Partition and heal both finish as a boolean task of the network. */
  if (!g_task_propagate_boolean (G_TASK (result), &error))
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
}

/**
 * qlean_pool_partition_async:
 * @self: a running #QleanPool
 * @side_a: (array zero-terminated=1): names of machines on one side
 * @side_b: (array zero-terminated=1) (nullable): names of machines on the
 *   other side; %NULL for every machine not in @side_a
 * @cancellable: (nullable): a #GCancellable
 * @callback: called once the pool's network is split
 * @user_data: data for @callback
 *
 * Splits the pool's network for split-brain tests: afterwards the
 * machines of @side_a reach only each other, and so do those of
 * @side_b; what one side sends the other is lost, silently, both ways.
 * Machines named on neither side keep reaching each other, but neither
 * side. The guests' interfaces stay up and keep their addresses; to
 * unplug one machine from everyone, as a pulled cable, use
 * [method@Machine.set_link]. See [method@Network.partition].
 *
 * For two machines: `qlean_pool_partition (pool, (const char *[]) {
 * "alice", NULL }, (const char *[]) { "bob", NULL }, NULL, &error)`.
 *
 * Since: 0.1
 */
void
qlean_pool_partition_async (QleanPool           *self,
                            const char * const  *side_a,
                            const char * const  *side_b,
                            GCancellable        *cancellable,
                            GAsyncReadyCallback  callback,
                            gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (QLEAN_IS_POOL (self));
  g_return_if_fail (side_a != NULL);

  task = qlean_task_new (self, cancellable, callback, user_data,
                         qlean_pool_partition_async, "[qlean] partition pool");

  qlean_network_partition_async (self->network, side_a, side_b, cancellable,
                                 network_done_cb, task);
}

/**
 * qlean_pool_partition_finish:
 * @self: a #QleanPool
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_pool_partition_async().
 *
 * Returns: %TRUE once the network is split
 *
 * Since: 0.1
 */
gboolean
qlean_pool_partition_finish (QleanPool     *self,
                             GAsyncResult  *result,
                             GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_pool_partition_async), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_pool_partition:
 * @self: a running #QleanPool
 * @side_a: (array zero-terminated=1): names of machines on one side
 * @side_b: (array zero-terminated=1) (nullable): names of machines on the
 *   other side; %NULL for every machine not in @side_a
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_pool_partition_async().
 *
 * Returns: %TRUE once the network is split
 *
 * Since: 0.1
 */
gboolean
qlean_pool_partition (QleanPool           *self,
                      const char * const  *side_a,
                      const char * const  *side_b,
                      GCancellable        *cancellable,
                      GError             **error)
{
  g_return_val_if_fail (QLEAN_IS_POOL (self), FALSE);
  g_return_val_if_fail (side_a != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return qlean_network_partition (self->network, side_a, side_b, cancellable, error);
}

/**
 * qlean_pool_heal_async:
 * @self: a running #QleanPool
 * @cancellable: (nullable): a #GCancellable
 * @callback: called once the pool's network is whole again
 * @user_data: data for @callback
 *
 * Undoes [method@Pool.partition]: every machine reaches every other
 * again. Links taken down with [method@Machine.set_link] stay down.
 *
 * Since: 0.1
 */
void
qlean_pool_heal_async (QleanPool           *self,
                       GCancellable        *cancellable,
                       GAsyncReadyCallback  callback,
                       gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (QLEAN_IS_POOL (self));

  task = qlean_task_new (self, cancellable, callback, user_data,
                         qlean_pool_heal_async, "[qlean] heal pool");

  qlean_network_heal_async (self->network, cancellable, network_done_cb, task);
}

/**
 * qlean_pool_heal_finish:
 * @self: a #QleanPool
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_pool_heal_async().
 *
 * Returns: %TRUE once the network is whole again
 *
 * Since: 0.1
 */
gboolean
qlean_pool_heal_finish (QleanPool     *self,
                        GAsyncResult  *result,
                        GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_pool_heal_async), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_pool_heal:
 * @self: a running #QleanPool
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_pool_heal_async().
 *
 * Returns: %TRUE once the network is whole again
 *
 * Since: 0.1
 */
gboolean
qlean_pool_heal (QleanPool     *self,
                 GCancellable  *cancellable,
                 GError       **error)
{
  g_return_val_if_fail (QLEAN_IS_POOL (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return qlean_network_heal (self->network, cancellable, error);
}
