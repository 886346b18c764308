/* qlean-machine-save-state.c: saving a running machine's state to a file
 *
 * Stop, migrate to a file, go on: the one mechanism under snapshots,
 * clones, golden pools and the fast start's boot cache. It sits apart
 * from qlean-machine-snapshot.c, below it: the boot-state cache saves
 * boots with it while starting a machine, and snapshots, restores and
 * clones start and kill machines, so with saving inside the snapshot
 * file the start and the snapshots called each other in a loop.
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <glib/gi18n-lib.h>

#include "qlean-error.h"
#include "qlean-json-channel-private.h"
#include "qlean-machine-private.h"
#include "qlean-machine-ram-file-private.h"
#include "qlean-machine-state-template-private.h"
#include "qlean-task-private.h"
#include "qlean-worker-private.h"
#include "qlean-errno-private.h"

/* How often the state of the migration is asked for. */
#define POLL_MS 5

/* QEMU's cap on a migration's bandwidth, bytes per second. Its default
 * (128 MiB/s) is meant for live migrations over a network that the
 * guest shares; a save here goes to a local file or socket while the
 * guest is stopped, so the cap only made it stop longer: 80 MB of the
 * minimal image took 0.6-0.9 s to save, mostly waiting on the limiter
 * (query-migrate showed 1074 Mbps, the cap, and the bytes sent stood
 * still between its 100 ms windows). */
#define SAVE_MAX_BANDWIDTH (G_GINT64_CONSTANT (64) << 30)

/* Saving: stop, migrate to a file, go on. */

typedef struct
{
  QleanQmpClient *qmp;
  char           *path;       /* the file, or NULL when streamed to @uri */
  char           *tmp_path;
  char           *uri;
  gboolean        was_running;
  gboolean        keep_stopped;
  GSource        *poll;
  /* A cloneable machine's RAM file: copied to @ram_to while stopped,
   * and only its devices migrated (x-ignore-shared), for a clone; else
   * its pages of zeros dropped after QEMU read them all. */
  char           *ram_from;
  char           *ram_to;
  QleanStreamGate *gate;
} Save;

struct _QleanStreamGate
{
  gboolean  open;
  GError   *error;
  GTask    *waiting;   /* the save, stopped, waiting for it */
};

static void save_go (GTask *task);

QleanStreamGate *
qlean_stream_gate_new (void)
{
  return g_rc_box_new0 (QleanStreamGate);
}

static void
stream_gate_clear (QleanStreamGate *gate)
{
  g_clear_error (&gate->error);
  g_clear_object (&gate->waiting);
}

void
qlean_stream_gate_unref (QleanStreamGate *gate)
{
  g_rc_box_release_full (gate, (GDestroyNotify) stream_gate_clear);
}

/* Worker thread. */
void
qlean_stream_gate_open (QleanStreamGate *gate,
                        const GError    *error)
{
  if (gate->open)
    return;
  gate->open = TRUE;
  gate->error = error != NULL ? g_error_copy (error) : NULL;
  if (gate->waiting != NULL)
    save_go (g_steal_pointer (&gate->waiting));
}

static void
save_free (Save *save)
{
  qlean_clear_source (&save->poll);
  g_clear_object (&save->qmp);
  if (save->tmp_path != NULL)
    g_unlink (save->tmp_path);
  g_free (save->tmp_path);
  g_free (save->ram_from);
  g_free (save->ram_to);
  g_clear_pointer (&save->gate, qlean_stream_gate_unref);
  g_free (save->path);
  g_free (save->uri);
  g_free (save);
}

static void save_poll (GTask *task);

static void
save_cont_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  QleanMachine *self = g_task_get_source_object (task);
  g_autoptr(JsonNode) reply = NULL;
  GError *error = NULL;

  reply = qlean_qmp_client_execute_finish (QLEAN_QMP_CLIENT (source), result, &error);
  if (reply == NULL)
    {
      g_task_return_error (task, error);
      return;
    }

  qlean_machine_fix_clock (self);
  g_task_return_boolean (task, TRUE);
}

static void
save_restopped_cb (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  g_autoptr(JsonNode) reply = NULL;
  GError *error = NULL;

  reply = qlean_qmp_client_execute_finish (QLEAN_QMP_CLIENT (source), result, &error);
  if (reply == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
}

void
qlean_machine_repause_after_save (QleanQmpClient      *qmp,
                                  GAsyncReadyCallback  callback,
                                  gpointer             user_data)
{
  /* QMP runs them in order, nothing in between. */
  qlean_qmp_client_execute_async (qmp, "cont", NULL, NULL, NULL, NULL);
  qlean_qmp_client_execute_async (qmp, "stop", NULL, NULL, callback, user_data);
}

/* Ends the save: the guest runs again if it ran before, whatever
 * happened; @error (taken) is the result. */
static void
save_finish_with (GTask  *task,
                  GError *error)
{
  Save *save = g_task_get_task_data (task);

  if (error == NULL && save->path != NULL && g_rename (save->tmp_path, save->path) != 0)
    {
      int saved_errno = errno;

      error = qlean_error_new_from_errno (saved_errno,
                                          _("Cannot store the snapshot %s"), save->path);
    }
  if (error == NULL)
    g_clear_pointer (&save->tmp_path, g_free);
  /* Off again before the guest runs: its snapshots carry its RAM. */
  if (save->ram_to != NULL)
    qlean_machine_set_ignore_shared (save->qmp, FALSE, NULL, NULL);

  if (save->was_running && !save->keep_stopped)
    {
      if (error != NULL)
        {
          /* Report the failure, but do not leave the guest stopped. */
          qlean_qmp_client_execute_async (save->qmp, "cont", NULL, NULL, NULL, NULL);
          g_task_return_error (task, error);
          return;
        }
      qlean_qmp_client_execute_async (save->qmp, "cont", NULL, NULL, save_cont_cb, g_object_ref (task));
      return;
    }

  /* A paused machine stays paused, and can be saved again. */
  if (error == NULL && !save->was_running && !save->keep_stopped)
    {
      qlean_machine_repause_after_save (save->qmp, save_restopped_cb, g_object_ref (task));
      return;
    }

  if (error != NULL)
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
}

/* Only memory is at stake: a failure is said, not returned. */
static void
zeros_dropped_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  GTask *task = user_data;
  g_autoptr(GError) error = NULL;

  if (!qlean_ram_file_job_finish (result, &error))
    g_message ("%s", error->message);
  save_finish_with (task, NULL);
  g_object_unref (task);
}

static void
save_query_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  Save *save = g_task_get_task_data (task);
  g_autoptr(JsonNode) reply = NULL;
  GError *error = NULL;
  JsonObject *object;
  const char *status;

  reply = qlean_qmp_client_execute_finish (QLEAN_QMP_CLIENT (source), result, &error);
  if (reply == NULL)
    {
      save_finish_with (task, error);
      return;
    }

  object = JSON_NODE_HOLDS_OBJECT (reply) ? json_node_get_object (reply) : NULL;
  status = object ? json_object_get_string_member_with_default (object, "status", "") : "";

  if (g_str_equal (status, "completed"))
    {
      if (save->ram_from != NULL && save->ram_to == NULL)
        qlean_ram_file_drop_zeros_async (save->ram_from, zeros_dropped_cb, g_object_ref (task));
      else
        save_finish_with (task, NULL);
      return;
    }

  if (g_str_equal (status, "failed") || g_str_equal (status, "cancelled"))
    {
      save_finish_with (task, g_error_new (QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
                                           _("QEMU could not save the machine's state: %s"),
                                           object ? json_object_get_string_member_with_default (object, "error-desc", status)
                                                  : status));
      return;
    }

  save_poll (task);
}

static gboolean
save_poll_cb (gpointer user_data)
{
  GTask *task = user_data;
  Save *save = g_task_get_task_data (task);

  g_clear_pointer (&save->poll, g_source_unref);
  /* The timer's reference on the task passes to the query. */
  qlean_qmp_client_execute_async (save->qmp, "query-migrate", NULL, NULL, save_query_cb, task);
  return G_SOURCE_REMOVE;
}

/* Takes a reference on @task for the timer. */
static void
save_poll (GTask *task)
{
  Save *save = g_task_get_task_data (task);

  save->poll = qlean_add_timeout (qlean_worker_get_context (), POLL_MS, save_poll_cb,
                                  g_object_ref (task));
}

static void
save_migrate_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  g_autoptr(JsonNode) reply = NULL;
  GError *error = NULL;

  reply = qlean_qmp_client_execute_finish (QLEAN_QMP_CLIENT (source), result, &error);
  if (reply == NULL)
    {
      save_finish_with (task, error);
      return;
    }

  save_poll (task);
}

/* Takes @task. */
static void
save_migrate (GTask *task)
{
  Save *save = g_task_get_task_data (task);
  g_autoptr(JsonObject) arguments = json_object_new ();
  g_autoptr(JsonObject) parameters = json_object_new ();
  g_autofree char *uri = NULL;

  if (save->uri != NULL)
    uri = g_strdup (save->uri);
  else
    {
      g_autofree char *quoted = g_shell_quote (save->tmp_path);

      uri = g_strdup_printf ("exec:cat > %s", quoted);
    }
  /* QMP runs commands in order: the migration starts with the cap
   * lifted. A failure shows as the migration's own. */
  json_object_set_int_member (parameters, "max-bandwidth", SAVE_MAX_BANDWIDTH);
  qlean_qmp_client_execute_async (save->qmp, "migrate-set-parameters",
                                  parameters, NULL, NULL, NULL);
  json_object_set_string_member (arguments, "uri", uri);
  if (save->ram_to != NULL)
    qlean_machine_set_ignore_shared (save->qmp, TRUE, NULL, NULL);
  qlean_qmp_client_execute_async (save->qmp, "migrate", arguments, NULL, save_migrate_cb, task);
}

static void
ram_copied_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  GTask *task = user_data;
  Save *save = g_task_get_task_data (task);
  GError *error = NULL;

  if (!qlean_ram_file_job_finish (result, &error))
    {
      save_finish_with (task, error);
      g_object_unref (task);
      return;
    }
  g_debug ("RAM file copied to %s", save->ram_to);
  save_go (task);
}

/* The guest is stopped: a cloneable machine's RAM file is copied (in a
 * thread of its own: 0.03 s for the minimal image, too long for the
 * worker) before QEMU saves its devices. QEMU still runs its devices'
 * I/O while the guest is stopped, and a byte that reaches a channel in
 * between lands in the guest's memory: copied first, the worst a clone
 * gets of it is a receive buffer its device state holds in use, which
 * QEMU loads; copied after, a ring ahead of the device state, which
 * QEMU refuses to load. */
static void
save_copy_ram (GTask *task)
{
  Save *save = g_task_get_task_data (task);

  qlean_ram_file_copy_async (save->ram_from, save->ram_to, ram_copied_cb, task);
}

static void
save_stop_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  GTask *task = user_data;
  Save *save = g_task_get_task_data (task);
  g_autoptr(JsonNode) reply = NULL;
  GError *error = NULL;

  if (source != NULL)
    {
      reply = qlean_qmp_client_execute_finish (QLEAN_QMP_CLIENT (source), result, &error);
      if (reply == NULL)
        {
          save->was_running = FALSE;
          save_finish_with (task, error);
          g_object_unref (task);
          return;
        }
    }

  if (save->ram_to != NULL)
    save_copy_ram (task);
  else
    save_go (task);
}

/* Stopped (and copied): migrates once the gate, if any, opens. Takes
 * @task. */
static void
save_go (GTask *task)
{
  Save *save = g_task_get_task_data (task);

  if (save->gate != NULL && !save->gate->open)
    save->gate->waiting = task;
  else if (save->gate != NULL && save->gate->error != NULL)
    {
      save_finish_with (task, g_error_copy (save->gate->error));
      g_object_unref (task);
    }
  else
    save_migrate (task);
}

/* One machine's saves run one after the other, each from stop to cont:
 * a clone's copy of the RAM file and its device state must be the same
 * instant, and a second save's `cont` could run the guest between the
 * two (QEMU itself refuses a second migration only while one streams). */
#define SAVE_QUEUE_KEY "qlean-save-queue"

typedef struct
{
  gboolean busy;
  GQueue   waiting;   /* of GTask, each holding its machine */
} SaveQueue;

static void
save_queue_free (SaveQueue *queue)
{
  g_queue_clear_full (&queue->waiting, g_object_unref);
  g_free (queue);
}

static void save_begin (GTask *task);

/* A save returned (its callback has run): the next one begins. */
static void
save_completed_cb (GTask        *task,
                   GParamSpec   *pspec,
                   QleanMachine *self)
{
  SaveQueue *queue = g_object_get_data (G_OBJECT (self), SAVE_QUEUE_KEY);
  GTask *next;

  g_signal_handlers_disconnect_by_func (task, save_completed_cb, self);
  next = g_queue_pop_head (&queue->waiting);
  if (next == NULL)
    queue->busy = FALSE;
  else
    save_begin (next);
}

/* Saves @self's state to @path (a file, through `<path>.part`) or
 * @uri (with @ram_to: its devices alone, its RAM file copied to
 * @ram_to); with @keep_stopped the guest stays stopped afterwards. */
static void
save_start (QleanMachine        *self,
            const char          *path,
            const char          *uri,
            const char          *ram_to,
            QleanStreamGate     *gate,
            gboolean             keep_stopped,
            GCancellable        *cancellable,
            GAsyncReadyCallback  callback,
            gpointer             user_data)
{
  GTask *task = qlean_task_new (self, cancellable, callback, user_data,
                                qlean_machine_save_state_async, "[qlean] save machine state");
  Save *save = g_new0 (Save, 1);
  SaveQueue *queue = g_object_get_data (G_OBJECT (self), SAVE_QUEUE_KEY);

  g_task_set_task_data (task, save, (GDestroyNotify) save_free);
  save->path = g_strdup (path);
  save->tmp_path = path != NULL ? g_strconcat (path, ".part", NULL) : NULL;
  save->uri = g_strdup (uri);
  save->keep_stopped = keep_stopped;
  if (gate != NULL)
    save->gate = g_rc_box_acquire (gate);
  save->ram_to = g_strdup (ram_to);

  if (queue == NULL)
    {
      queue = g_new0 (SaveQueue, 1);
      g_object_set_data_full (G_OBJECT (self), SAVE_QUEUE_KEY, queue, (GDestroyNotify) save_queue_free);
    }
  g_signal_connect (task, "notify::completed", G_CALLBACK (save_completed_cb), self);
  if (queue->busy)
    {
      g_queue_push_tail (&queue->waiting, task);
      return;
    }
  queue->busy = TRUE;
  save_begin (task);
}

/* The save's turn came: stop the guest, and go on from there. */
static void
save_begin (GTask *task)
{
  QleanMachine *self = g_task_get_source_object (task);
  Save *save = g_task_get_task_data (task);
  QleanMachineState state = qlean_machine_get_state (self);

  save->qmp = qlean_machine_dup_qmp (self);
  save->ram_from = g_strdup (qlean_machine_get_ram_file (self));

  /* STARTING too: a fast-start machine saves its boot just before it is
   * declared running. */
  if (save->qmp == NULL ||
      (state != QLEAN_MACHINE_STATE_RUNNING && state != QLEAN_MACHINE_STATE_PAUSED &&
       state != QLEAN_MACHINE_STATE_STARTING))
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE,
                               _("Cannot save machine “%s”: it is %s"), qlean_machine_get_name (self),
                               qlean_machine_state_to_string (state));
      g_object_unref (task);
      return;
    }

  /* It was started again meanwhile, and this run has none. */
  if (save->ram_to != NULL && save->ram_from == NULL)
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE,
                               _("Cannot clone machine “%s”: it was started again while its "
                                 "clone started, and no longer runs on a memory file of its "
                                 "own; clone it again"), qlean_machine_get_name (self));
      g_object_unref (task);
      return;
    }

  /* QEMU refuses to migrate a mounted 9p export or a virtiofs device;
   * say so in our words. */
  if (qlean_machine_shares_mounted (self))
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE,
                               _("Cannot save machine “%s”: it has host folders mounted "
                                 "(shares), and QEMU cannot save a machine with a mounted "
                                 "9p share or with virtiofs; snapshots, clones, exports and "
                                 "pools need machines without shares"),
                               qlean_machine_get_name (self));
      g_object_unref (task);
      return;
    }

  /* Stopped first, so that the stream is one consistent instant rather
   * than memory copied while it changes. */
  save->was_running = state != QLEAN_MACHINE_STATE_PAUSED;
  if (save->was_running)
    qlean_qmp_client_execute_async (save->qmp, "stop", NULL, NULL, save_stop_cb, task);
  else
    save_stop_cb (NULL, NULL, task);
}

/* Worker thread. Saves @self's state to @path; with @keep_stopped the
 * guest stays stopped afterwards (QEMU is about to go away). */
void
qlean_machine_save_state_async (QleanMachine        *self,
                                const char          *path,
                                gboolean             keep_stopped,
                                GCancellable        *cancellable,
                                GAsyncReadyCallback  callback,
                                gpointer             user_data)
{
  save_start (self, path, NULL, NULL, NULL, keep_stopped, cancellable, callback, user_data);
}

/* Worker thread. Migrates @self's state to @uri, where another QEMU
 * listens for it (a clone of a running machine); with @ram_to, only
 * its devices, its RAM file copied to @ram_to before (a cloneable
 * machine, see qlean-machine-ram-file.c), and once @gate opens. */
void
qlean_machine_stream_state_async (QleanMachine        *self,
                                  const char          *uri,
                                  const char          *ram_to,
                                  QleanStreamGate     *gate,
                                  gboolean             keep_stopped,
                                  GCancellable        *cancellable,
                                  GAsyncReadyCallback  callback,
                                  gpointer             user_data)
{
  save_start (self, NULL, uri, ram_to, gate, keep_stopped, cancellable, callback, user_data);
}

gboolean
qlean_machine_save_state_finish (QleanMachine  *self,
                                 GAsyncResult  *result,
                                 GError       **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}
