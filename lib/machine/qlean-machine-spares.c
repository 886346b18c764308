/* qlean-machine-spares.c: warmed spare machines, taken by a start
 *
 * A start from a memory template still costs about half a second under
 * TCG: QEMU's own start-up, the restored guest waking, and its first
 * process, which TCG translates afresh in every new QEMU (bench/start).
 * None of that can be made cheaper for one machine; it can be paid
 * ahead. A spare is a machine of some shape (image and config) started
 * before anyone asked for it, restored from the template and warmed by
 * its own identity stage; a start of a machine of that shape takes the
 * spare's run (QEMU, channels, run directory) as its own, gives the
 * guest the new machine's name, machine-id, seed and clock, and is
 * ready in tens of milliseconds. A new spare then starts behind it.
 *
 * Apart because it is an optimisation with its own registry and
 * lifetime: a machine whose config keeps no spares never comes here.
 *
 * Spares belong to this process, not to any machine: the registry is
 * process-wide, under its own lock (stop_spares() may be called from
 * any thread); everything else happens on the worker thread.
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <stdlib.h>
#include <sys/wait.h>
#include <glib/gi18n-lib.h>

#include "qlean-error.h"
#include "qlean-machine-object-private.h"
#include "qlean-image-private.h"
#include "qlean-task-private.h"
#include "qlean-worker-private.h"
#include "qlean-sync-private.h"

/* How long a spare nobody took keeps running. */
#define SPARE_IDLE_MS (60 * 1000)
/* How long after the last start that took or wanted a spare the new
 * spares start: a spare's start costs about 0.3 s of CPU under TCG,
 * which would otherwise compete with the other starts of a burst (a
 * pool of 8 taking 8 spares took 1.7 s against 0.02 s for one) and
 * with the first commands in the machine that just started. */
#define SPARE_TOP_UP_DELAY_MS 500
#define SPARE_TOP_UP_MAX_DELAY_MS 2000
/* The name spares run under until taken (their run directory's). */
#define SPARE_NAME "qlean-spare"

typedef struct
{
  char         *key;        /* the shape: see spare_key() */
  QleanMachine *machine;    /* hidden: its config keeps no spares */
  GCancellable *cancellable; /* of its start */
  gboolean      ready;
  GSource      *idle_timer;
} Spare;

/* Someone waiting in qlean_machine_prepare_spares_async() for the
 * spares of @key to be started. */
typedef struct
{
  char    *key;
  guint    wanted;
  GTask   *task;
  GError  *error;   /* the last start of a spare that failed */
  GSource *cancel;  /* watches the task's cancellable */
} SpareWaiter;

static GMutex     spares_lock;
static GCond      spares_cond;
static GPtrArray *spares;          /* of Spare, under spares_lock */
static GPtrArray *waiters;         /* of SpareWaiter, worker only */
/* Starts that asked for spares, as machines of their shape, until the
 * timer starts them (worker only). */
static GHashTable *top_up_models;  /* key -> QleanMachine */
static GSource    *top_up_timer;
static gint64      top_up_first;   /* when the first waiting start asked */
/* Spares whose start or kill has not ended yet, removed from the
 * registry by stop_spares() or their idle timer: stop_spares() waits
 * for them. Under spares_lock. */
static guint      spares_ending;

static void
spare_free (Spare *spare)
{
  qlean_clear_source (&spare->idle_timer);
  g_clear_object (&spare->cancellable);
  g_clear_object (&spare->machine);
  g_free (spare->key);
  g_free (spare);
}

static void
spare_waiter_free (SpareWaiter *waiter)
{
  qlean_clear_source (&waiter->cancel);
  g_clear_object (&waiter->task);
  g_clear_error (&waiter->error);
  g_free (waiter->key);
  g_free (waiter);
}

static GPtrArray *
get_spares (void)
{
  if (spares == NULL)
    spares = g_ptr_array_new ();
  return spares;
}

/* How many spares of shape @key are ready, and how many are starting. */
static void
count_spares (const char *key,
              guint      *ready,
              guint      *starting)
{
  *ready = *starting = 0;
  g_mutex_lock (&spares_lock);
  for (guint i = 0; i < get_spares ()->len; i++)
    {
      Spare *spare = g_ptr_array_index (spares, i);

      if (!g_str_equal (spare->key, key))
        continue;
      if (spare->ready)
        (*ready)++;
      else
        (*starting)++;
    }
  g_mutex_unlock (&spares_lock);
}

/* The shape of @self for spares: the key of its saved boot (the whole
 * command line with the per-run parts made constant, QEMU, kernel and
 * initrd) and the transport its runs want. NULL when @self cannot take
 * a spare: it would not fast-start from a memory template, or has what
 * a spare cannot have been started with (shares, a state of its own to
 * load, a first boot).
 *
 * Spares are on no network: the spare of a machine on one has its card,
 * on a hub of QEMU's own, which the machine that takes it joins to its
 * network's switch (qlean-machine-network.c), so that one set of spares
 * serves machines of one shape on any network. */
static char *
spare_key (QleanMachine *self)
{
  g_auto(ResolvedSpec) resolved = { { 0 } };
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanMachine) unplugged = NULL;
  g_autofree char *path = NULL;

  /* A cloneable machine's memory is a file of its own: a spare's is the
   * template's, mapped privately. */
  if (!qlean_machine_would_use_memory_template (self) ||
      qlean_machine_config_get_cloneable (self->config) ||
      qlean_machine_config_get_n_shares (self->config) > 0 || self->incoming != NULL ||
      self->first_boot || !qlean_image_is_prepared (self->image))
    return NULL;

  /* Its spare's, which is on no network (resolving the spec of a
   * machine on a network would attach it). */
  if (self->network != NULL)
    {
      unplugged = qlean_machine_new_with_name (self->name, self->image, self->config);
      unplugged->spare_card = TRUE;
      self = unplugged;
    }

  if (!qlean_machine_resolve_spec (self, "/run/spare", QLEAN_SHARE_KIND_AUTO, &resolved, &error))
    {
      g_debug ("machine %s: no spares: %s", self->name, error->message);
      return NULL;
    }
  path = qlean_machine_boot_state_path (self, &resolved, TRUE);
  if (path == NULL)
    return NULL;

  return g_strdup_printf ("%s transport=%d", path,
                          (int) qlean_machine_config_get_guest_transport (self->config));
}

/* Spares: stopping */

static void
spare_ended (void)
{
  g_mutex_lock (&spares_lock);
  spares_ending--;
  g_cond_broadcast (&spares_cond);
  g_mutex_unlock (&spares_lock);
}

static void
spare_killed_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr(GError) error = NULL;

  if (!qlean_machine_kill_finish (QLEAN_MACHINE (source), result, &error))
    g_debug ("Could not stop a spare machine: %s", error->message);
  spare_ended ();
}

/* Worker thread: stops @spare, already out of the registry (and
 * counted in spares_ending), and frees it. One still starting is
 * cancelled: its start's callback ends it (spare_spawned_cb()). */
static void
spare_stop (Spare *spare)
{
  if (spare->ready)
    qlean_machine_kill_async (spare->machine, NULL, spare_killed_cb, NULL);
  else
    g_cancellable_cancel (spare->cancellable);
  spare_free (spare);
}


static gboolean
spare_idle_cb (gpointer user_data)
{
  Spare *spare = user_data;

  g_mutex_lock (&spares_lock);
  /* Still there: taking a spare removes its timer under this lock. */
  g_ptr_array_remove (get_spares (), spare);
  spares_ending++;
  g_mutex_unlock (&spares_lock);

  g_debug ("A spare machine nobody took for %d s stops", SPARE_IDLE_MS / 1000);
  g_clear_pointer (&spare->idle_timer, g_source_unref);
  spare_stop (spare);

  return G_SOURCE_REMOVE;
}

/* Spares: starting */

/* Worker thread: completes the waiters of @key whose spares are all
 * started (or failed to). */
static void
spare_waiters_check (const char   *key,
                     const GError *failure)
{
  guint ready, starting;

  if (waiters == NULL)
    return;

  count_spares (key, &ready, &starting);

  for (guint i = 0; i < waiters->len; )
    {
      SpareWaiter *waiter = g_ptr_array_index (waiters, i);

      if (!g_str_equal (waiter->key, key))
        {
          i++;
          continue;
        }
      if (failure != NULL)
        {
          g_clear_error (&waiter->error);
          waiter->error = g_error_copy (failure);
        }
      if (starting > 0 && ready < waiter->wanted)
        {
          i++;
          continue;
        }
      if (ready >= waiter->wanted || waiter->error == NULL)
        g_task_return_boolean (waiter->task, TRUE);
      else
        g_task_return_error (waiter->task, g_steal_pointer (&waiter->error));
      g_ptr_array_remove_index (waiters, i);
    }
}

/* Worker thread: @machine, a spare, is ready (@ok) or failed to start. */
static void
spare_started (QleanMachine *machine,
               gboolean      ok,
               const GError *error)
{
  g_autofree char *key = NULL;
  Spare *spare = NULL;

  g_mutex_lock (&spares_lock);
  for (guint i = 0; i < get_spares ()->len; i++)
    if (((Spare *) g_ptr_array_index (spares, i))->machine == machine)
      spare = g_ptr_array_index (spares, i);
  if (spare != NULL && ok)
    {
      spare->ready = TRUE;
      spare->idle_timer = qlean_add_timeout (qlean_worker_get_context (), SPARE_IDLE_MS,
                                             spare_idle_cb, spare);
    }
  else if (spare != NULL)
    g_ptr_array_remove (spares, spare);
  if (spare != NULL)
    key = g_strdup (spare->key);
  g_mutex_unlock (&spares_lock);

  if (spare == NULL)
    {
      /* stop_spares() took it out while it started, cancelled it and
       * counted it: a start that got through anyway is killed now. */
      if (qlean_machine_get_state (machine) == QLEAN_MACHINE_STATE_RUNNING)
        qlean_machine_kill_async (machine, NULL, spare_killed_cb, NULL);
      else
        spare_ended ();
      return;
    }

  if (!ok)
    {
      g_message ("Could not start a spare machine: %s", error->message);
      /* One that started, but whose card could not be warmed: stopped
       * as stop_spares() stops one, which waits for it. */
      if (qlean_machine_get_state (machine) == QLEAN_MACHINE_STATE_RUNNING)
        {
          g_mutex_lock (&spares_lock);
          spares_ending++;
          g_mutex_unlock (&spares_lock);
          qlean_machine_kill_async (machine, NULL, spare_killed_cb, NULL);
        }
      spare_free (spare);
    }
  else
    g_debug ("A spare machine is ready");

  spare_waiters_check (key, error);
}

/* A spare's card being warmed: stopped with the spare (its start's
 * cancellable), and bounded as a start is. */
typedef struct
{
  QleanMachine *machine;
  GCancellable *cancellable;
  GSource      *timer;
  gboolean      timed_out;
} SpareWarming;

static gboolean
spare_warming_timeout_cb (gpointer user_data)
{
  SpareWarming *warming = user_data;

  warming->timed_out = TRUE;
  g_clear_pointer (&warming->timer, g_source_unref);
  g_cancellable_cancel (warming->cancellable);
  return G_SOURCE_REMOVE;
}

static void
spare_card_warmed_cb (GObject      *source,
                      GAsyncResult *result,
                      gpointer      user_data)
{
  SpareWarming *warming = user_data;
  g_autoptr(GError) error = NULL;
  gboolean ok;

  ok = g_task_propagate_boolean (G_TASK (result), &error);
  if (warming->timed_out)
    {
      g_clear_error (&error);
      g_set_error (&error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_AGENT_TIMEOUT,
                   _("The network card of a spare machine was not ready within %u ms"),
                   qlean_machine_get_boot_timeout (warming->machine));
    }
  spare_started (warming->machine, ok, error);

  qlean_clear_source (&warming->timer);
  g_object_unref (warming->cancellable);
  g_object_unref (warming->machine);
  g_free (warming);
}

static void
spare_spawned_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  g_autoptr(QleanMachine) machine = user_data;
  g_autoptr(GError) error = NULL;

  if (!qlean_machine_spawn_finish (machine, result, &error))
    {
      spare_started (machine, FALSE, error);
      return;
    }

  /* A spare for machines on a network is ready once it has run what
   * their start will run on its card. */
  if (machine->spare_card)
    {
      GCancellable *cancellable = g_task_get_cancellable (G_TASK (result));
      SpareWarming *warming;

      /* Stopped as its start ended: stop_spares() counted it. */
      if (g_cancellable_set_error_if_cancelled (cancellable, &error))
        {
          spare_started (machine, FALSE, error);
          return;
        }
      warming = g_new0 (SpareWarming, 1);
      warming->machine = g_object_ref (machine);
      warming->cancellable = g_object_ref (cancellable);
      warming->timer = qlean_add_timeout (qlean_worker_get_context (),
                                          qlean_machine_get_boot_timeout (machine),
                                          spare_warming_timeout_cb, warming);
      qlean_machine_warm_spare_card_async (machine, cancellable, spare_card_warmed_cb, warming);
      return;
    }
  spare_started (machine, TRUE, NULL);
}

/* At the process's exit: a spare belongs to no machine that its owner
 * could drop, so without this its QEMU would die with the process (it
 * is bound to the worker thread's life) and leave its run directory for
 * `qlean gc`. Not from the worker thread (stop_spares() waits on it). */
static void
spares_stop_at_exit (void)
{
  if (!qlean_worker_is_current ())
    qlean_machine_stop_spares ();
}

/* Worker thread: starts one spare of @model's shape @key. */
static void
spare_start (QleanMachine *model,
             const char   *key)
{
  static gsize at_exit = 0;

  g_autoptr(QleanMachineConfig) config = qlean_machine_config_copy (model->config);
  Spare *spare = g_new0 (Spare, 1);

  /* A spare never keeps spares of its own, nor its run directory once
   * stopped (the machine that takes it goes by its own config). */
  qlean_machine_config_set_spares (config, 0);
  qlean_machine_config_set_clear (config, TRUE);
  spare->key = g_strdup (key);
  spare->machine = qlean_machine_new_with_name (SPARE_NAME, model->image, config);
  spare->machine->spare_card = model->spare_card || model->network != NULL;
  spare->cancellable = g_cancellable_new ();
  if (g_once_init_enter (&at_exit))
    {
      atexit (spares_stop_at_exit);
      g_once_init_leave (&at_exit, 1);
    }

  g_mutex_lock (&spares_lock);
  g_ptr_array_add (get_spares (), spare);
  g_mutex_unlock (&spares_lock);

  qlean_machine_spawn_async (spare->machine, spare->cancellable, spare_spawned_cb,
                             g_object_ref (spare->machine));
}

/* Starts spares of shape @key, as machines like @model, until there
 * are as many as @model's config asks for (started or starting). */
static void
spares_top_up (QleanMachine *model,
               const char   *key)
{
  guint wanted = qlean_machine_config_get_spares (model->config);
  guint ready, starting, have;

  count_spares (key, &ready, &starting);
  for (have = ready + starting; have < wanted; have++)
    spare_start (model, key);
}

static gboolean
spares_top_up_cb (gpointer user_data)
{
  g_autoptr(GHashTable) models = g_steal_pointer (&top_up_models);
  GHashTableIter iter;
  gpointer key, model;

  g_clear_pointer (&top_up_timer, g_source_unref);
  g_hash_table_iter_init (&iter, models);
  while (g_hash_table_iter_next (&iter, &key, &model))
    spares_top_up (model, key);

  return G_SOURCE_REMOVE;
}

void
qlean_machine_spares_top_up (QleanMachine *self)
{
  g_autoptr(QleanMachineConfig) config = NULL;
  gint64 now = g_get_monotonic_time ();
  QleanMachine *model;
  char *key;
  gint64 delay_ms;

  if (qlean_machine_config_get_spares (self->config) == 0)
    return;
  /* A machine that could not take a spare (restored from a snapshot,
   * with shares, ...) starts none either. */
  key = spare_key (self);
  if (key == NULL)
    {
      g_debug ("machine %s: keeps no spares: it does not start from a memory template",
               self->name);
      return;
    }

  /* A machine of the same shape, not @self, which its owner may drop
   * meanwhile; one per shape. */
  config = qlean_machine_config_copy (self->config);
  if (top_up_models == NULL)
    top_up_models = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_object_unref);
  model = qlean_machine_new_with_name (self->name, self->image, config);
  model->spare_card = self->network != NULL;
  g_hash_table_replace (top_up_models, key, model);

  /* Half a second after the last start, but no later than two seconds
   * after the first of a run of starts, or starts closer together than
   * that would never see a spare again. */
  if (top_up_timer == NULL)
    top_up_first = now;
  delay_ms = MIN ((gint64) SPARE_TOP_UP_DELAY_MS,
                  (top_up_first - now) / 1000 + SPARE_TOP_UP_MAX_DELAY_MS);
  qlean_clear_source (&top_up_timer);
  top_up_timer = qlean_add_timeout (qlean_worker_get_context (), MAX (delay_ms, 0),
                                    spares_top_up_cb, NULL);
}

/* Taking a spare */

void
qlean_machine_adopt_run (QleanMachine *self,
                         QleanMachine *machine)
{
  GTask *task;
  QleanMachineRun *run;
  QleanMachineRun *last;
  QleanLink *link;
  g_autofree char *run_dir = NULL;
  g_autoptr(GError) error = NULL;

  g_mutex_lock (&machine->lock);
  run = g_steal_pointer (&machine->run);
  machine->run = qlean_machine_run_new (machine->name,
                                        qlean_machine_config_get_guest_transport (machine->config));
  g_mutex_unlock (&machine->lock);
  /* Every callback of the run (QEMU's exit, QMP events, the console's
   * panic line) holds the spare's link: they reach @self from now on. */
  link = g_steal_pointer (&machine->link);
  qlean_link_set (link, self);
  qlean_link_unref (link);
  machine->link = qlean_link_new (machine);
  qlean_machine_set_state (machine, QLEAN_MACHINE_STATE_STOPPED);

  /* The run directory takes the machine's name, as its own would. */
  run_dir = qlean_host_rename_run_dir (run->run_dir, self->name, &error);
  if (run_dir == NULL)
    g_debug ("machine %s: keeps the spare's run directory: %s", self->name, error->message);

  g_mutex_lock (&self->lock);
  g_mutex_lock (&run->lock);
  g_free (run->name);
  run->name = g_strdup (self->name);
  if (run_dir != NULL)
    {
      g_autofree char *console = g_build_filename (run_dir, QLEAN_CONSOLE_LOG, NULL);

      /* The console's thread cuts its file by path. */
      if (run->console != NULL)
        qlean_console_log_set_path (run->console, console);
      g_free (run->run_dir);
      run->run_dir = g_steal_pointer (&run_dir);
    }
  if (run->transcript != NULL)
    qlean_transcript_set_machine_name (run->transcript, self->name);
  g_mutex_unlock (&run->lock);
  last = self->run;
  self->run = run;
  g_mutex_unlock (&self->lock);
  /* The start's own run had nothing yet but its task and cancel watch,
   * which go on in the adopted run, with a boot timer of its own. */
  task = g_steal_pointer (&last->spawn_task);
  qlean_clear_source (&last->spawn_cancel);
  qlean_machine_run_unref (last);
  run->spawn_task = task;
  run->spawn_cancel = qlean_add_cancel (qlean_worker_get_context (), g_task_get_cancellable (task),
                                        qlean_machine_spawn_cancelled_cb, self);
  run->boot_timer = qlean_add_timeout (qlean_worker_get_context (),
                                       qlean_machine_get_boot_timeout (self),
                                       qlean_machine_boot_timeout_cb, self);
}

/* Worker thread: @self's start takes @spare's run, in which it goes on
 * with the identity stage (and, on a network, the network's stages). */
static void
spare_adopt (QleanMachine *self,
             Spare        *spare)
{
  QleanMachineRun *run;
  g_autoptr(GError) error = NULL;

  qlean_machine_adopt_run (self, spare->machine);
  run = self->run;

  /* The guest is the spare's: it gets this machine's name, machine-id,
   * seed and clock, in a start whose only stage does that but for a
   * machine on a network, whose card then gets its MAC and address and
   * joins the switch. */
  g_clear_pointer (&self->incoming_old_mac, g_free);
  self->incoming_new_identity = TRUE;
  run->guest_warm = TRUE;
  g_ptr_array_set_size (run->boot_stages, 0);
  run->boot_stage = 0;
  run->boot_stage_running = FALSE;
  qlean_machine_add_identity_stage (run);
  /* A machine on a network joins its switch to the spare's card. */
  if (self->network != NULL && !qlean_machine_join_network_from_spare (self, run, &error))
    {
      /* The spare's QEMU goes with the start (it loaded nothing). */
      qlean_machine_spawn_fail (self, g_steal_pointer (&error));
      return;
    }
  g_debug ("machine %s: takes a warmed spare", self->name);

  qlean_machine_spawn_maybe_done (self);
}

gboolean
qlean_machine_take_spare (QleanMachine *self)
{
  g_autofree char *key = NULL;
  Spare *spare = NULL;

  if (qlean_machine_config_get_spares (self->config) == 0 || (key = spare_key (self)) == NULL)
    return FALSE;
  /* Its start fails without a spare, saying why (its launch checks). */
  if (self->network != NULL && !qlean_network_is_running (self->network))
    return FALSE;

  g_mutex_lock (&spares_lock);
  for (guint i = 0; spare == NULL && i < get_spares ()->len; )
    {
      Spare *candidate = g_ptr_array_index (spares, i);

      if (!candidate->ready || !g_str_equal (candidate->key, key))
        {
          i++;
          continue;
        }
      g_ptr_array_remove_index (spares, i);
      /* One whose QEMU died as it waited is gone already: forget it. */
      if (!qlean_machine_qemu_runs (candidate->machine))
        spare_free (candidate);
      else
        spare = candidate;
    }
  if (spare != NULL)
    qlean_clear_source (&spare->idle_timer);
  g_mutex_unlock (&spares_lock);

  if (spare == NULL)
    return FALSE;

  spare_adopt (self, spare);
  spare_free (spare);
  return TRUE;
}

/* The public calls */

/* Worker thread: the caller of prepare_spares() stops waiting; the
 * spares start all the same. */
static gboolean
spare_waiter_cancelled_cb (gpointer user_data)
{
  SpareWaiter *waiter = user_data;

  g_clear_pointer (&waiter->cancel, g_source_unref);
  g_task_return_error_if_cancelled (waiter->task);
  g_ptr_array_remove (waiters, waiter);

  return G_SOURCE_REMOVE;
}

static void
spares_image_prepared_cb (GObject      *source,
                          GAsyncResult *result,
                          gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  QleanMachine *model = g_task_get_task_data (task);
  GError *error = NULL;
  SpareWaiter *waiter;
  char *key = NULL;

  if (!qlean_image_prepare_finish (QLEAN_IMAGE (source), result, &error))
    {
      g_task_return_error (task, error);
      return;
    }

  key = spare_key (model);
  if (key == NULL)
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG,
                               _("Machines of this image and configuration cannot have spares: "
                                 "only machines that fast-start from a memory template can "
                                 "(the minimal image on x86-64, with “spares” set, and no "
                                 "shares, disk, bridge or extra arguments)"));
      return;
    }

  spares_top_up (model, key);
  waiter = g_new0 (SpareWaiter, 1);
  waiter->key = key;
  waiter->wanted = qlean_machine_config_get_spares (model->config);
  waiter->task = g_steal_pointer (&task);
  waiter->cancel = qlean_add_cancel (qlean_worker_get_context (),
                                     g_task_get_cancellable (waiter->task),
                                     spare_waiter_cancelled_cb, waiter);
  if (waiters == NULL)
    waiters = g_ptr_array_new_with_free_func ((GDestroyNotify) spare_waiter_free);
  g_ptr_array_add (waiters, waiter);
  spare_waiters_check (key, NULL);
}

static gboolean
spares_prepare_in_worker (gpointer user_data)
{
  GTask *task = user_data;
  QleanMachine *model = g_task_get_task_data (task);

  if (g_task_return_error_if_cancelled (task))
    return G_SOURCE_REMOVE;
  qlean_image_prepare_async (model->image, g_task_get_cancellable (task),
                             spares_image_prepared_cb, g_object_ref (task));
  return G_SOURCE_REMOVE;
}

/* Starts the spares @model's starts would take, and completes once they
 * are ready (or failed), from @model's own thread-default context. */
void
qlean_machine_prepare_spares_like_async (QleanMachine        *model,
                                         GCancellable        *cancellable,
                                         GAsyncReadyCallback  callback,
                                         gpointer             user_data)
{
  GTask *task = qlean_task_new (NULL, cancellable, callback, user_data,
                                qlean_machine_prepare_spares_like_async,
                                "[qlean] prepare spare machines");

  g_task_set_task_data (task, g_object_ref (model), g_object_unref);
  qlean_worker_invoke (spares_prepare_in_worker, task, g_object_unref);
}

gboolean
qlean_machine_prepare_spares_like_finish (GAsyncResult  *result,
                                          GError       **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_machine_prepare_spares_async:
 * @image: (nullable): what the machines boot; %NULL for the minimal image
 * @config: the machines' configuration, whose
 *   [property@MachineConfig:spares] says how many spares to keep
 * @cancellable: (nullable): a #GCancellable
 * @callback: called once the spares run
 * @user_data: data for @callback
 *
 * Starts the warmed spares that machines of @image and @config keep
 * (see [property@MachineConfig:spares]) and completes once they are
 * ready, so that the next starts of such machines take them. Without
 * this call, the first start of such a machine starts them behind it.
 * These are the spares of machines on no network; those of a pool's
 * machines are prepared by [method@Pool.prepare_spares]. (Machines on a
 * network of their own, outside a pool, take spares too, but only those
 * their own starts started behind them.)
 *
 * Fails with %QLEAN_MACHINE_ERROR_INVALID_CONFIG when such machines
 * cannot have spares, and with the reason when none could be started.
 * Cancelling stops waiting, not the spares.
 *
 * Since: 0.1
 */
void
qlean_machine_prepare_spares_async (QleanImage          *image,
                                    QleanMachineConfig  *config,
                                    GCancellable        *cancellable,
                                    GAsyncReadyCallback  callback,
                                    gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (image == NULL || QLEAN_IS_IMAGE (image));
  g_return_if_fail (QLEAN_IS_MACHINE_CONFIG (config));

  task = qlean_task_new (NULL, cancellable, callback, user_data,
                         qlean_machine_prepare_spares_async, "[qlean] prepare spare machines");
  g_task_set_task_data (task, qlean_machine_new_with_name (SPARE_NAME, image, config),
                        g_object_unref);
  qlean_worker_invoke (spares_prepare_in_worker, task, g_object_unref);
}

/**
 * qlean_machine_prepare_spares_finish:
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_machine_prepare_spares_async().
 *
 * Returns: %TRUE once the spares run
 *
 * Since: 0.1
 */
gboolean
qlean_machine_prepare_spares_finish (GAsyncResult  *result,
                                     GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_prepare_spares_async),
                        FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_machine_prepare_spares:
 * @image: (nullable): what the machines boot; %NULL for the minimal image
 * @config: the machines' configuration
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_prepare_spares_async().
 *
 * Returns: %TRUE once the spares run
 *
 * Since: 0.1
 */
gboolean
qlean_machine_prepare_spares (QleanImage          *image,
                              QleanMachineConfig  *config,
                              GCancellable        *cancellable,
                              GError             **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (image == NULL || QLEAN_IS_IMAGE (image), FALSE);
  g_return_val_if_fail (QLEAN_IS_MACHINE_CONFIG (config), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!qlean_sync_call_begin (&call, error))
    return FALSE;
  qlean_machine_prepare_spares_async (image, config, cancellable, qlean_sync_call_done, &call);

  return qlean_machine_prepare_spares_finish (qlean_sync_call_wait (&call), error);
}

/* Worker thread: no spare starts any more, those there are stop, and
 * whoever waits for spares in prepare_spares() is told. */
static gboolean
spares_stop_all_in_worker (gpointer user_data)
{
  g_autoptr(GPtrArray) stopping = NULL;
  g_autoptr(GPtrArray) told = g_steal_pointer (&waiters);

  qlean_clear_source (&top_up_timer);
  g_clear_pointer (&top_up_models, g_hash_table_unref);

  g_mutex_lock (&spares_lock);
  stopping = g_steal_pointer (&spares);
  if (stopping != NULL)
    spares_ending += stopping->len;
  g_mutex_unlock (&spares_lock);

  for (guint i = 0; stopping != NULL && i < stopping->len; i++)
    spare_stop (g_ptr_array_index (stopping, i));
  for (guint i = 0; told != NULL && i < told->len; i++)
    {
      SpareWaiter *waiter = g_ptr_array_index (told, i);

      g_task_return_new_error (waiter->task, G_IO_ERROR, G_IO_ERROR_CANCELLED,
                               _("The spare machines were stopped before they were ready"));
    }
  /* This call's own count. */
  spare_ended ();

  return G_SOURCE_REMOVE;
}

/**
 * qlean_machine_stop_spares:
 *
 * Stops every warmed spare machine this process keeps (see
 * [property@MachineConfig:spares]), those still starting too, and
 * waits until their QEMU processes have exited and their run
 * directories are gone. Later starts of machines whose config asks for
 * spares start new ones.
 *
 * Spares left when the process exits are stopped then, as by this call
 * (from an atexit() handler). Must not be called from a callback of
 * Qlean's own worker thread.
 *
 * Since: 0.1
 */
void
qlean_machine_stop_spares (void)
{
  g_return_if_fail (!qlean_worker_is_current ());

  /* Counted until the worker has taken them all out. */
  g_mutex_lock (&spares_lock);
  spares_ending++;
  g_mutex_unlock (&spares_lock);
  qlean_worker_invoke (spares_stop_all_in_worker, NULL, NULL);

  g_mutex_lock (&spares_lock);
  while (spares_ending > 0)
    g_cond_wait (&spares_cond, &spares_lock);
  g_mutex_unlock (&spares_lock);
}
