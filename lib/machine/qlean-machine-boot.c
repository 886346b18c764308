/* qlean-machine-boot.c: from QEMU's start to a ready guest
 *
 * A start completes when QMP and the agent answer, the transport is
 * decided, and the stages of this start are done (a restored guest's
 * identity, its network, saving the boot for fast starts, the shared
 * folders). Here: those waits, what can fail a start (panic, timeout,
 * cancel) and the first boot with cloud-init.
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
#include "qlean-image-private.h"
#include "qlean-qga-error.h"
#include "qlean-worker-private.h"
#include "qlean-sync-private.h"
#include "qlean-task-private.h"

/* Machine link */

static void
machine_link_closure_notify (gpointer  data,
                             GClosure *closure)
{
  qlean_link_unref (data);
}

/* Ends a start that cannot complete. The error is returned once QEMU is
 * gone, so that a caller who sees it finds no process left behind. */
void
qlean_machine_spawn_fail (QleanMachine *self,
                          GError       *error)
{
  if (self->run->spawn_task == NULL)
    {
      g_error_free (error);
      return;
    }

  /* A start cancelled or stopped says nothing against the saved boot
   * it loads: that stays for the next (qlean_machine_release_run()
   * removes one that failed to load), unless it failed already. */
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) && self->run->spawn_error == NULL)
    g_clear_pointer (&self->run->boot_state_used, g_free);

  if (self->run->qemu != NULL && !self->run->qemu_exited)
    {
      if (self->run->spawn_error == NULL)
        self->run->spawn_error = error;
      else
        g_error_free (error);
      self->run->stop_requested = TRUE;
      qlean_machine_signal_qemu (self, SIGKILL);
      return;
    }

  {
    g_autoptr(GTask) task = g_steal_pointer (&self->run->spawn_task);

    g_clear_error (&self->run->spawn_error);
    qlean_machine_release_run (self);
    qlean_machine_set_state (self, QLEAN_MACHINE_STATE_STOPPED);
    g_task_return_error (task, error);
  }
}

/* Stages */

/* The stage that ran is over: fail the start with @error, or go on with
 * the next. A stage of a start that is over already changes nothing. */
void
qlean_machine_boot_stage_done (QleanMachine *self,
                               GTask        *spawn_task,
                               GError       *error)
{
  if (self->run->spawn_task != spawn_task)
    {
      /* That start is over; its outcome no longer matters. */
      g_clear_error (&error);
      return;
    }
  if (error != NULL)
    {
      qlean_machine_spawn_fail (self, error);
      return;
    }

  self->run->boot_stage_running = FALSE;
  self->run->boot_stage++;
  qlean_machine_spawn_maybe_done (self);
}

/* The callback of a stage that runs as a GTask of its own returning a
 * boolean (a restored guest's identity, the shared folders); @user_data
 * is the start's task. */
void
qlean_machine_boot_stage_cb (GObject      *source,
                             GAsyncResult *result,
                             gpointer      user_data)
{
  g_autoptr(GTask) spawn_task = user_data;
  GError *error = NULL;

  g_task_propagate_boolean (G_TASK (result), &error);
  qlean_machine_boot_stage_done (QLEAN_MACHINE (source), spawn_task, error);
}

/* Grace for qlean-guest's HELLO once the agent answers: both start at
 * the same time in the guest, so with transport auto a second tells a
 * guest without it; transport qlean-guest waits longer before it fails
 * the start. */
#define HELLO_GRACE_MS 1000
#define HELLO_GRACE_REQUIRED_MS 5000

static gboolean
qlean_machine_hello_grace_cb (gpointer user_data)
{
  QleanMachine *self = user_data;

  g_clear_pointer (&self->run->hello_timer, g_source_unref);
  qlean_machine_spawn_maybe_done (self);
  return G_SOURCE_REMOVE;
}

/* Whether to wait longer for qlean-guest's HELLO, @syncing when it is
 * on its way: the first call of a start sets the deadline @grace_ms from
 * now; until it passes, a timer comes back here. */
static gboolean
qlean_machine_wait_for_hello (QleanMachine *self,
                              guint         grace_ms,
                              gboolean      syncing)
{
  gint64 now = g_get_monotonic_time ();

  if (self->run->hello_deadline == 0)
    self->run->hello_deadline = now + grace_ms * G_TIME_SPAN_MILLISECOND;
  if (!syncing || now >= self->run->hello_deadline)
    return FALSE;

  if (self->run->hello_timer == NULL)
    self->run->hello_timer = qlean_add_timeout (qlean_worker_get_context (),
                                                (self->run->hello_deadline - now) / 1000 + 1,
                                                qlean_machine_hello_grace_cb, self);
  return TRUE;
}

/* Decides the transport of this run, once: TRUE when decided, FALSE
 * while it waits for qlean-guest's HELLO (or after failing the start). */
static gboolean
qlean_machine_decide_transport (QleanMachine *self)
{
  QleanGuestTransport wanted = qlean_machine_config_get_guest_transport (self->config);
  QleanGuestTransport decided;
  gboolean syncing;

  if (g_atomic_int_get (&self->run->guest_transport) != QLEAN_GUEST_TRANSPORT_AUTO)
    return TRUE;

  syncing = self->run->guest != NULL && qlean_guest_channel_is_syncing (self->run->guest);
  if (wanted == QLEAN_GUEST_TRANSPORT_AGENT)
    decided = QLEAN_GUEST_TRANSPORT_AGENT;
  else if (self->run->guest != NULL && qlean_guest_channel_is_ready (self->run->guest))
    decided = QLEAN_GUEST_TRANSPORT_QLEAN_GUEST;
  else if (wanted == QLEAN_GUEST_TRANSPORT_QLEAN_GUEST)
    {
      if (qlean_machine_wait_for_hello (self, HELLO_GRACE_REQUIRED_MS, syncing))
        return FALSE;
      qlean_machine_spawn_fail (self, g_error_new (QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
                                                   _("qlean-guest does not answer in machine “%s”, "
                                                     "and its guest-transport is “qlean-guest”: "
                                                     "put qlean-guest in the image, or use "
                                                     "transport “auto” or “agent”"),
                                                   self->name));
      return FALSE;
    }
  else
    {
      if (qlean_machine_wait_for_hello (self, HELLO_GRACE_MS, syncing))
        return FALSE;
      decided = QLEAN_GUEST_TRANSPORT_AGENT;
    }

  qlean_clear_source (&self->run->hello_timer);
  g_debug ("machine %s: guest transport %s", self->name,
           decided == QLEAN_GUEST_TRANSPORT_AGENT ? "agent" : "qlean-guest");
  g_atomic_int_set (&self->run->guest_transport, decided);
  return TRUE;
}

void
qlean_machine_spawn_maybe_done (QleanMachine *self)
{
  g_autoptr(GTask) task = NULL;

  if (self->run->spawn_task == NULL || self->run->spawn_error != NULL ||
      !self->run->qmp_ready)
    return;
  /* The agent answers first, unless it is not greeted (agent_lazy) and
   * qlean-guest answered. */
  if (!self->run->agent_ready &&
      (!self->run->agent_lazy || self->run->guest == NULL ||
       !qlean_guest_channel_is_ready (self->run->guest)))
    return;

  /* Decided before anything runs in the guest, so that even Qlean's own
   * start-up commands use the transport of the run. */
  if (!qlean_machine_decide_transport (self))
    return;

  /* The stages of this start, registered as it prepared. */
  while (self->run->boot_stage < self->run->boot_stages->len)
    {
      const QleanBootStage *stage = g_ptr_array_index (self->run->boot_stages,
                                                       self->run->boot_stage);

      if (self->run->boot_stage_running)
        return;
      g_debug ("machine %s: boot stage %s", self->name, stage->name);
      self->run->boot_stage_running = TRUE;
      /* A stage that ends at once has gone on with the next already. */
      if (stage->start (self, self->run, self->run->spawn_task))
        return;
      self->run->boot_stage_running = FALSE;
      self->run->boot_stage++;
    }

  task = g_steal_pointer (&self->run->spawn_task);
  qlean_clear_source (&self->run->boot_timer);
  qlean_clear_source (&self->run->spawn_cancel);
  g_clear_pointer (&self->incoming, g_free);
  g_clear_pointer (&self->run->boot_state_used, g_free);
  qlean_machine_unlock_boot_state (self);
  qlean_machine_set_state (self, QLEAN_MACHINE_STATE_RUNNING);
  qlean_machine_emit_signal (self, SIGNAL_READY);
  g_task_return_boolean (task, TRUE);
  /* Spares start behind a start, never slowing it; so does the QEMU a
   * cloneable machine parks for its first clone, unless it is a clone
   * itself (its state streamed in): it parks one once it is cloned. */
  qlean_machine_spares_top_up (self);
  if (qlean_machine_config_get_cloneable (self->config) && !qlean_machine_incoming_streams (self))
    qlean_machine_park_for_clone (self);
}

static void
qlean_machine_agent_sync_cb (GObject      *source,
                             GAsyncResult *result,
                             gpointer      user_data)
{
  g_autoptr(QleanMachine) self = user_data;
  g_autoptr(GError) error = NULL;

  if (qlean_qga_client_sync_finish (QLEAN_QGA_CLIENT (source), result, &error))
    {
      self->run->agent_ready = TRUE;
      qlean_machine_spawn_maybe_done (self);
      return;
    }

  if (self->run->spawn_task == NULL || self->run->spawn_error != NULL)
    return;

  /* An agent that is not up yet times out; keep asking until the boot
   * timer gives up. A closed channel means QEMU is going away: its exit
   * watch reports that better than we can. */
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
    qlean_machine_try_agent (self);
}

void
qlean_machine_try_agent (QleanMachine *self)
{
  qlean_qga_client_sync_async (self->run->qga, SYNC_ATTEMPT_MS, NULL,
                               qlean_machine_agent_sync_cb, g_object_ref (self));
}

static void
qlean_machine_qmp_event_cb (QleanQmpClient *qmp,
                            const char     *name,
                            JsonObject     *data,
                            gpointer        user_data)
{
  QleanLink *link = user_data;
  g_autoptr(QleanMachine) self = qlean_link_get (link);

  if (self == NULL)
    return;

  g_debug ("machine %s: QMP event %s", self->name, name);

  if (g_str_equal (name, "GUEST_PANICKED"))
    qlean_machine_guest_panicked (self);

  if (g_str_equal (name, "SHUTDOWN"))
    {
      g_autoptr(QleanQgaClient) qga = qlean_machine_dup_qga (self);

      if (qga != NULL)
        qlean_qga_client_notify_shutdown (qga);
    }

  /* The guest rebooted (or QMP system_reset): the agent and qlean-guest
   * start afresh and will never answer what was sent before. Fail those
   * calls now, resync the agent before its next command, and say HELLO
   * to the next qlean-guest; until it answers, exec falls back to the
   * agent. */
  if (g_str_equal (name, "RESET"))
    {
      g_autoptr(GError) reason = g_error_new_literal (QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_DISCONNECTED,
                                                      _("the guest was reset"));

      if (self->run->qga != NULL)
        qlean_qga_client_notify_reset (self->run->qga);
      if (self->run->guest != NULL && !qlean_machine_run_uses_agent_only (self->run))
        qlean_guest_channel_reset (self->run->guest, reason, qlean_machine_get_boot_timeout (self));
    }

  /* --- qlean-guest exited (the guest closed the data port): its streams
   * will never end, so end them now and say HELLO to the next one (the
   * minimal image's init restarts it); until one answers, exec falls
   * back to the agent. --- */
  if (g_str_equal (name, "VSERPORT_CHANGE") && data != NULL &&
      g_strcmp0 (json_object_get_string_member_with_default (data, "id", NULL), "data0") == 0 &&
      !json_object_get_boolean_member_with_default (data, "open", TRUE) &&
      self->run->guest != NULL && !qlean_machine_run_uses_agent_only (self->run))
    {
      g_autoptr(GError) reason = g_error_new_literal (QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_DISCONNECTED,
                                                      _("qlean-guest exited in the guest"));

      qlean_guest_channel_reset (self->run->guest, reason, qlean_machine_get_boot_timeout (self));
    }
  /* --- */
}

static gboolean
qlean_machine_qmp_grace_cb (gpointer user_data)
{
  QleanMachine *self = user_data;
  GError *error = g_object_steal_data (G_OBJECT (self), "qlean-qmp-error");

  g_clear_pointer (&self->run->qmp_grace_timer, g_source_unref);
  qlean_machine_spawn_fail (self, error);

  return G_SOURCE_REMOVE;
}

void
qlean_machine_qmp_ready_cb (GObject      *source,
                            GAsyncResult *result,
                            gpointer      user_data)
{
  g_autoptr(QleanMachine) self = user_data;
  g_autoptr(QleanQmpClient) qmp = NULL;
  GError *error = NULL;

  qmp = qlean_qmp_client_new_finish (result, &error);

  if (self->run->spawn_task == NULL || self->run->spawn_error != NULL)
    {
      g_clear_error (&error);
      if (qmp != NULL)
        qlean_qmp_client_close (qmp);
      return;
    }

  if (qmp == NULL)
    {

      /* Most likely QEMU is dying; give its exit watch a moment to say
       * why, and report the QMP failure only if it does not. */
      g_object_set_data_full (G_OBJECT (self), "qlean-qmp-error", error,
                              (GDestroyNotify) g_error_free);
      self->run->qmp_grace_timer = qlean_add_timeout (qlean_worker_get_context (), QMP_FAILURE_GRACE_MS,
                                                 qlean_machine_qmp_grace_cb, self);
      return;
    }

  g_signal_connect_data (qmp, "event", G_CALLBACK (qlean_machine_qmp_event_cb),
                         qlean_link_ref (self->link), machine_link_closure_notify, 0);

  g_mutex_lock (&self->lock);
  g_mutex_lock (&self->run->lock);
  self->run->qmp = g_steal_pointer (&qmp);
  g_mutex_unlock (&self->run->lock);
  g_mutex_unlock (&self->lock);

  if (self->run->restoring && self->parked)
    {
      qlean_machine_park (self);
      return;
    }
  if (self->run->restoring)
    {
      qlean_machine_load_incoming (self);
      return;
    }

  self->run->qmp_ready = TRUE;
  qlean_machine_spawn_maybe_done (self);
}

/* The guest kernel panicked (pvpanic's GUEST_PANICKED, or its panic line
 * on the console while starting, before pvpanic's driver is loaded; the
 * kernel then reboots at once, and would again and again until the boot
 * timeout): a start fails now, with the panic; a running machine is
 * CRASHED at once, whatever QEMU's panic action. */
void
qlean_machine_guest_panicked (QleanMachine *self)
{
  self->run->panicked = TRUE;

  if (self->run->spawn_task != NULL)
    {
      g_autofree char *panic = qlean_machine_panic_text (self);
      g_autofree char *console = qlean_machine_run_file_tail (self, QLEAN_CONSOLE_LOG, TAIL_LINES);

      qlean_machine_spawn_fail (self,
          g_error_new (QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_CRASHED,
                       _("The guest kernel of machine “%s” panicked while starting: %s. "
                         "Last lines of the serial console:\n%s"),
                       self->name, panic ? panic : _("it printed no panic message"), console));
      return;
    }

  qlean_machine_signal_qemu (self, SIGKILL);
}

typedef struct
{
  QleanLink       *link;
  QleanConsoleLog *console;     /* to tell its run; not a reference */
} ConsolePanic;

static void
console_panic_free (gpointer data)
{
  ConsolePanic *panic = data;

  qlean_link_unref (panic->link);
  g_free (panic);
}

static gboolean
qlean_machine_console_panic_cb (gpointer user_data)
{
  ConsolePanic *panic = user_data;
  g_autoptr(QleanMachine) self = qlean_link_get (panic->link);

  /* Only a start believes the console: later, anything in the guest may
   * print that line, and pvpanic reports real panics. */
  if (self != NULL && self->run->console == panic->console && self->run->spawn_task != NULL &&
      !self->run->panicked)
    qlean_machine_guest_panicked (self);

  return G_SOURCE_REMOVE;
}

/* The console's thread saw the kernel's panic line. */
static void
qlean_machine_console_panic_func (gpointer user_data)
{
  ConsolePanic *panic = user_data;
  ConsolePanic *copy = g_new0 (ConsolePanic, 1);

  copy->link = qlean_link_ref (panic->link);
  copy->console = panic->console;
  qlean_worker_invoke (qlean_machine_console_panic_cb, copy, console_panic_free);
}

/* Lets the console's thread tell a start that the guest panicked. */
void
qlean_machine_watch_console_panic (QleanMachine    *self,
                                   QleanConsoleLog *console)
{
  ConsolePanic *panic = g_new0 (ConsolePanic, 1);

  panic->link = qlean_link_ref (self->link);
  panic->console = console;
  qlean_console_log_set_panic_func (console, qlean_machine_console_panic_func, panic,
                                    console_panic_free);
}

gboolean
qlean_machine_boot_timeout_cb (gpointer user_data)
{
  QleanMachine *self = user_data;
  g_autofree char *console = NULL;
  guint timeout_ms = qlean_machine_get_boot_timeout (self);

  if (self->run->console != NULL)
    qlean_console_log_flush (self->run->console);
  console = qlean_machine_run_file_tail (self, QLEAN_CONSOLE_LOG, TAIL_LINES);

  g_clear_pointer (&self->run->boot_timer, g_source_unref);

  if (!self->run->qmp_ready)
    qlean_machine_spawn_fail (self,
        g_error_new (QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_AGENT_TIMEOUT,
                     _("QEMU did not answer on its QMP socket within %u ms"), timeout_ms));
  else
    qlean_machine_spawn_fail (self,
        g_error_new (QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_AGENT_TIMEOUT,
                     _("The guest agent of machine “%s” did not answer within %u ms. "
                       "Last lines of the serial console:\n%s"),
                     self->name, timeout_ms, *console ? console : _("(empty)")));

  return G_SOURCE_REMOVE;
}

gboolean
qlean_machine_spawn_cancelled_cb (gpointer user_data)
{
  QleanMachine *self = user_data;

  g_clear_pointer (&self->run->spawn_cancel, g_source_unref);
  qlean_machine_spawn_fail (self,
      g_error_new (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                   _("Starting machine “%s” was cancelled"), self->name));

  return G_SOURCE_REMOVE;
}

/* Greets the agent after all, in a start that greeted qlean-guest
 * alone (qlean_machine_greet_guest()). */
static void
qlean_machine_greet_agent_late (QleanMachine *self,
                                const char   *why)
{
  qlean_clear_source (&self->run->agent_lazy_timer);
  if (!self->run->agent_lazy || self->run->spawn_task == NULL)
    return;
  g_debug ("machine %s: greets the agent after all: %s", self->name, why);
  self->run->agent_lazy = FALSE;
  qlean_machine_try_agent (self);
}

static gboolean
qlean_machine_agent_lazy_cb (gpointer user_data)
{
  QleanMachine *self = user_data;

  g_clear_pointer (&self->run->agent_lazy_timer, g_source_unref);
  if (self->run->guest == NULL || !qlean_guest_channel_is_ready (self->run->guest))
    qlean_machine_greet_agent_late (self, "qlean-guest has not answered yet");
  return G_SOURCE_REMOVE;
}

void
qlean_machine_guest_resumed (QleanMachine *self)
{
  if (self->run->agent_lazy && self->run->agent_lazy_timer == NULL)
    self->run->agent_lazy_timer = qlean_add_timeout (qlean_worker_get_context (),
                                                     GUEST_ONLY_HELLO_MS,
                                                     qlean_machine_agent_lazy_cb, self);
}

void
qlean_machine_guest_hello_cb (GObject      *source,
                              GAsyncResult *result,
                              gpointer      user_data)
{
  QleanLink *link = user_data;
  g_autoptr(QleanMachine) self = qlean_link_get (link);
  g_autoptr(GError) error = NULL;

  if (!qlean_guest_channel_hello_finish (QLEAN_GUEST_CHANNEL (source), result, &error))
    g_debug ("qlean-guest did not answer: %s", error->message);
  else if (self != NULL)
    g_debug ("machine %s: qlean-guest answered", self->name);
  qlean_link_unref (link);

  /* It was greeted alone, and failed: the agent, after all. */
  if (error != NULL && self != NULL && self->run->guest == QLEAN_GUEST_CHANNEL (source))
    qlean_machine_greet_agent_late (self, error->message);

  /* A start may be waiting for this answer to pick its transport. */
  if (self != NULL && self->run->guest == QLEAN_GUEST_CHANNEL (source))
    qlean_machine_spawn_maybe_done (self);
}

/* First boot */

static void
qlean_machine_cloud_init_cb (GObject      *source,
                             GAsyncResult *result,
                             gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  QleanMachine *self = QLEAN_MACHINE (source);
  g_autoptr(QleanExecResult) exec_result = NULL;
  GError *error = NULL;

  self->first_boot = FALSE;
  exec_result = qlean_machine_exec_finish (self, result, &error);
  if (exec_result == NULL)
    {
      g_task_return_error (task, error);
      return;
    }

  /* 0: done; 2: done with recoverable errors (newer cloud-init), which a
   * test machine can live with; anything else is a failed first boot. */
  if (qlean_exec_result_get_exit_status (exec_result) != 0 &&
      qlean_exec_result_get_exit_status (exec_result) != 2)
    {
      g_autofree char *out = qlean_exec_result_get_stdout_text (exec_result);
      g_autofree char *err = qlean_exec_result_get_stderr_text (exec_result);

      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
                               _("cloud-init failed in machine “%s” (status %d): %s%s"),
                               self->name, qlean_exec_result_get_exit_status (exec_result),
                               g_strstrip (out), g_strstrip (err));
      return;
    }

  g_task_return_boolean (task, TRUE);
}

static void
qlean_machine_first_spawn_cb (GObject      *source,
                              GAsyncResult *result,
                              gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  QleanMachine *self = QLEAN_MACHINE (source);
  GError *error = NULL;

  if (!qlean_machine_spawn_finish (self, result, &error))
    {
      self->first_boot = FALSE;
      g_task_return_error (task, error);
      return;
    }

  if (!qlean_image_has_cloud_init (self->image))
    {
      self->first_boot = FALSE;
      g_task_return_boolean (task, TRUE);
      return;
    }

  qlean_machine_exec_async (self, "cloud-init status --wait --long", g_task_get_cancellable (task),
                            qlean_machine_cloud_init_cb, g_object_ref (task));
}

/**
 * qlean_machine_initialize_async:
 * @self: a #QleanMachine that has not run yet
 * @cancellable: (nullable): a #GCancellable
 * @callback: called once the first boot is complete
 * @user_data: data for @callback
 *
 * The machine's first boot, the seed's `init()`. For images with
 * cloud-init it attaches a NoCloud seed (hostname = the machine's name,
 * a fresh instance id, no SSH setup needed) and completes only once
 * `cloud-init status --wait` reports cloud-init done, failing with its
 * report when it did not succeed. Later boots ([method@Machine.spawn])
 * keep what the first one did and skip cloud-init. For images without
 * cloud-init, the same as [method@Machine.spawn].
 *
 * Since: 0.1
 */
void
qlean_machine_initialize_async (QleanMachine        *self,
                                GCancellable        *cancellable,
                                GAsyncReadyCallback  callback,
                                gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (QLEAN_IS_MACHINE (self));

  task = qlean_task_new (self, cancellable, callback, user_data, qlean_machine_initialize_async,
                         "[qlean] first boot");
  self->first_boot = TRUE;
  qlean_machine_spawn_async (self, cancellable, qlean_machine_first_spawn_cb, task);
}

/**
 * qlean_machine_initialize_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE once the first boot is complete
 *
 * Since: 0.1
 */
gboolean
qlean_machine_initialize_finish (QleanMachine  *self,
                                 GAsyncResult  *result,
                                 GError       **error)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_initialize_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_machine_initialize:
 * @self: a #QleanMachine that has not run yet
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_initialize_async().
 *
 * Returns: %TRUE once the first boot is complete
 *
 * Since: 0.1
 */
gboolean
qlean_machine_initialize (QleanMachine  *self,
                          GCancellable  *cancellable,
                          GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!qlean_sync_call_begin (&call, error))
    return FALSE;
  qlean_machine_initialize_async (self, cancellable, qlean_sync_call_done, &call);

  return qlean_machine_initialize_finish (self, qlean_sync_call_wait (&call), error);
}
