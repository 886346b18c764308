/* qlean-machine-run.c: what a run of QEMU leaves behind and how it goes
 *
 * A run is what exists only while QEMU runs: its run directory, its
 * process, the QMP, agent and qlean-guest clients, its timers. Here:
 * reading the run's files, releasing the run once QEMU is gone, and the
 * few things every other part asks of a live run (its qlean-guest
 * channel, a signal to QEMU, setting the guest's clock). Apart from the
 * boot and the controls, which both end a run the same way.
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <glib/gstdio.h>
#include <glib/gi18n-lib.h>

#include "qlean-enums.h"
#include "qlean-error.h"
#include "qlean-machine-firmware-private.h"
#include "qlean-machine-object-private.h"
#include "qlean-guest-process-private.h"
#include "qlean-guest-stream-dispatch-private.h"
#include "qlean-task-private.h"
#include "qlean-worker-private.h"

/* The run object */

static void
qlean_machine_run_clear (gpointer data)
{
  QleanMachineRun *run = data;

  /* A start holds the machine: a run is never dropped while starting. */
  g_assert (run->spawn_task == NULL);
  g_datalist_clear (&run->data);
  g_ptr_array_unref (run->boot_stages);
  g_clear_error (&run->spawn_error);
  qlean_clear_source (&run->incoming_poll);
  qlean_clear_source (&run->boot_timer);
  qlean_clear_source (&run->hello_timer);
  qlean_clear_source (&run->agent_lazy_timer);
  qlean_clear_source (&run->spawn_cancel);
  qlean_clear_source (&run->qmp_grace_timer);
  qlean_clear_source (&run->shutdown_timer);
  g_free (run->boot_state_save);
  g_free (run->boot_state_used);
  if (run->mem_template_work != NULL)
    g_unlink (run->mem_template_work);
  g_free (run->mem_template_work);
  g_free (run->mem_template_ram);
  /* A machine dropped while it ran: its RAM file goes all the same. */
  if (run->ram_file != NULL)
    g_unlink (run->ram_file);
  g_free (run->ram_file);
  if (run->boot_state_lock >= 0)
    close (run->boot_state_lock);
  /* Closed by now (released, or the machine disposed): only dropped. */
  g_clear_object (&run->qemu);
  g_clear_object (&run->qmp);
  g_clear_object (&run->qga);
  g_clear_object (&run->guest);
  g_clear_object (&run->relay);
  g_clear_pointer (&run->console, qlean_console_log_unref);
  g_clear_pointer (&run->transcript, qlean_transcript_unref);
  g_free (run->run_dir);
  g_free (run->name);
  g_mutex_clear (&run->lock);
}

QleanMachineRun *
qlean_machine_run_new (const char          *name,
                       QleanGuestTransport  wanted_transport)
{
  QleanMachineRun *run = g_atomic_rc_box_new0 (QleanMachineRun);

  run->name = g_strdup (name);
  run->wanted_transport = wanted_transport;
  run->guest_transport = QLEAN_GUEST_TRANSPORT_AUTO;
  g_mutex_init (&run->lock);
  run->boot_state_lock = -1;
  run->boot_stages = g_ptr_array_new ();
  g_datalist_init (&run->data);
  return run;
}

QleanMachineRun *
qlean_machine_run_ref (QleanMachineRun *run)
{
  return g_atomic_rc_box_acquire (run);
}

void
qlean_machine_run_unref (QleanMachineRun *run)
{
  g_atomic_rc_box_release_full (run, qlean_machine_run_clear);
}

void
qlean_machine_run_add_boot_stage (QleanMachineRun      *run,
                                  const QleanBootStage *stage)
{
  guint i = 0;

  while (i < run->boot_stages->len &&
         ((const QleanBootStage *) g_ptr_array_index (run->boot_stages, i))->order <= stage->order)
    i++;
  g_ptr_array_insert (run->boot_stages, i, (gpointer) stage);
}

gpointer
qlean_machine_run_get_data (QleanMachineRun *run,
                            const char      *key)
{
  return g_datalist_get_data (&run->data, key);
}

void
qlean_machine_run_set_data (QleanMachineRun *run,
                            const char      *key,
                            gpointer         data,
                            GDestroyNotify   destroy)
{
  g_datalist_set_data_full (&run->data, key, data, destroy);
}

/* Everything below runs on the worker thread, which owns the machine's
 * QEMU process, clients and timers. */

char *
qlean_machine_run_file_tail (QleanMachine *self,
                             const char   *file,
                             guint         n_lines)
{
  g_autofree char *path = NULL;
  char *tail;

  if (self->run->run_dir == NULL)
    return g_strdup ("");

  path = g_build_filename (self->run->run_dir, file, NULL);
  tail = qlean_file_tail (path, n_lines);

  return tail ? tail : g_strdup ("");
}

/* Drops what a run leaves behind: clients, timers, the run directory. */
void
qlean_machine_release_run (QleanMachine *self)
{
  g_autoptr(QleanQmpClient) qmp = NULL;
  g_autoptr(QleanQgaClient) qga = NULL;
  g_autoptr(QleanGuestChannel) guest = NULL;
  g_autoptr(QleanGuestRelay) relay = NULL;
  g_autoptr(QleanConsoleLog) console = NULL;
  g_autofree char *run_dir = NULL;

  qlean_clear_source (&self->run->boot_timer);
  qlean_clear_source (&self->run->hello_timer);
  qlean_clear_source (&self->run->agent_lazy_timer);
  qlean_clear_source (&self->run->spawn_cancel);
  qlean_clear_source (&self->run->qmp_grace_timer);
  qlean_clear_source (&self->run->shutdown_timer);
  qlean_clear_source (&self->run->incoming_poll);
  g_clear_pointer (&self->incoming, g_free);
  g_clear_pointer (&self->run->boot_state_save, g_free);
  qlean_machine_unlock_boot_state (self);
  if (self->run->mem_template_work != NULL)
    {
      g_unlink (self->run->mem_template_work);
      g_clear_pointer (&self->run->mem_template_work, g_free);
    }
  self->run->mem_template_load = FALSE;
  g_clear_pointer (&self->run->mem_template_ram, g_free);
  if (self->run->ram_file != NULL)
    {
      g_unlink (self->run->ram_file);
      g_clear_pointer (&self->run->ram_file, g_free);
    }
  /* A saved boot that failed to load (QEMU or its machine changed in a
   * way the key misses) must not fail the next start too. */
  if (self->run->boot_state_used != NULL)
    {
      g_autofree char *ram = g_strconcat (self->run->boot_state_used, ".ram", NULL);

      g_unlink (self->run->boot_state_used);
      g_unlink (ram);
      g_clear_pointer (&self->run->boot_state_used, g_free);
    }
  self->run->restoring = FALSE;

  /* What other parts kept for the run ends with it: port forwards
   * (qlean-machine-forward.c), whose ports are free again once this
   * returns. */
  g_datalist_clear (&self->run->data);

  g_mutex_lock (&self->lock);
  g_mutex_lock (&self->run->lock);
  qmp = g_steal_pointer (&self->run->qmp);
  qga = g_steal_pointer (&self->run->qga);
  guest = g_steal_pointer (&self->run->guest);
  relay = g_steal_pointer (&self->run->relay);
  run_dir = g_steal_pointer (&self->run->run_dir);
  console = g_steal_pointer (&self->run->console);
  self->run->pid = 0;
  g_mutex_unlock (&self->run->lock);
  /* Its file is in the run directory, which may go below. */
  g_clear_pointer (&self->run->transcript, qlean_transcript_unref);
  g_mutex_unlock (&self->lock);

  if (console != NULL)
    qlean_console_log_close (console);

  if (relay != NULL)
    qlean_guest_relay_close (relay);
  if (qmp != NULL)
    qlean_qmp_client_close (qmp);
  if (qga != NULL)
    qlean_qga_client_close (qga);
  if (guest != NULL)
    qlean_guest_channel_close (guest);

  /* Logs: keep the last run's in memory (see qlean_machine_save_logs). */
  if (run_dir != NULL)
    {
      QleanRunLogs *logs = qlean_run_logs_capture (run_dir);

      g_mutex_lock (&self->lock);
      g_clear_pointer (&self->last_logs, qlean_run_logs_free);
      self->last_logs = logs;
      g_mutex_unlock (&self->lock);
    }

  /* UEFI's variables go with every run, even one whose directory is
   * kept to be looked at: they are the firmware's state, not a log. */
  qlean_machine_firmware_remove_vars (run_dir);
  if (run_dir != NULL && qlean_machine_config_get_clear (self->config))
    {
      g_autoptr(GError) error = NULL;

      if (!qlean_rm_rf (run_dir, &error))
        g_warning ("Could not remove run directory %s: %s", run_dir, error->message);
    }

  g_clear_object (&self->run->qemu);
  self->run->shutdown_stage = 0;
  self->run->qmp_ready = FALSE;
  self->run->agent_ready = FALSE;
  g_atomic_int_set (&self->run->guest_transport, QLEAN_GUEST_TRANSPORT_AUTO);
}

void
qlean_machine_signal_qemu (QleanMachine *self,
                           int           signum)
{
  if (self->run->qemu != NULL && !self->run->qemu_exited)
    g_subprocess_send_signal (self->run->qemu, signum);
}

/* The kernel's panic line at the end of the console log ("Kernel panic -
 * not syncing: …"), or NULL when it printed none. */
char *
qlean_machine_panic_text (QleanMachine *self)
{
  g_autofree char *tail = NULL;
  const char *line, *end;

  if (self->run->console != NULL)
    qlean_console_log_flush (self->run->console);
  tail = qlean_machine_run_file_tail (self, QLEAN_CONSOLE_LOG, PANIC_TAIL_LINES);
  line = g_strrstr (tail, "Kernel panic - not syncing");
  if (line == NULL)
    return NULL;

  /* The last one may be the "---[ end Kernel panic - …: why ]---" line. */
  end = strchr (line, '\n');
  if (end == NULL)
    end = line + strlen (line);
  while (end > line && g_ascii_isspace (end[-1]))
    end--;
  if (end - line > 5 && strncmp (end - 5, " ]---", 5) == 0)
    end -= 5;

  return g_strndup (line, end - line);
}

/* The agent's way: guest-set-time, which also runs `hwclock -w` in the
 * guest (about 0.1 s of the guest's CPU under TCG). */
static void
fix_clock_by_agent (QleanMachineRun *run)
{
  g_autoptr(JsonObject) arguments = json_object_new ();
  g_autoptr(QleanQgaClient) qga = qlean_machine_run_dup_qga (run);

  if (qga == NULL)
    return;

  json_object_set_int_member (arguments, "time", g_get_real_time () * 1000);
  qlean_qga_client_execute_async (qga, "guest-set-time", arguments, NULL, NULL, NULL);
}

/* One request to qlean-guest */

typedef struct
{
  QleanGuestRequestFunc func;
  gpointer              user_data;
  GDestroyNotify        destroy;
  const char           *what;
} GuestRequest;

static void
guest_request_free (GuestRequest *req)
{
  if (req->destroy != NULL)
    req->destroy (req->user_data);
  g_free (req);
}

static void
guest_request_done (QleanGuestStream *stream,
                    GBytes           *payload,
                    gpointer          user_data)
{
  GuestRequest *req = user_data;

  qlean_guest_stream_close (stream);
  req->func (NULL, req->user_data);
}

static void
guest_request_error (QleanGuestStream *stream,
                     GBytes           *payload,
                     gpointer          user_data)
{
  GuestRequest *req = user_data;
  g_autoptr(GError) error = qlean_guest_error_from_payload (payload, req->what);

  qlean_guest_stream_close (stream);
  req->func (error, req->user_data);
}

static void
guest_request_closed (QleanGuestStream *stream,
                      const GError     *error,
                      gpointer          user_data)
{
  GuestRequest *req = user_data;

  qlean_guest_stream_close (stream);
  req->func (error, req->user_data);
}

static const QleanGuestStreamHandlers guest_request_handlers = {
  .closed = guest_request_closed,
  .done = guest_request_done,
  .error = guest_request_error,
};

static void
guest_request_cb (QleanGuestStream *stream,
                  guint8            type,
                  guint8            fd,
                  GBytes           *payload,
                  const GError     *error,
                  gpointer          user_data)
{
  qlean_guest_stream_dispatch (&guest_request_handlers, stream, type, fd, payload, error,
                               user_data);
}

/* Worker thread only. */
void
qlean_machine_run_send_guest_request (QleanMachineRun       *run,
                                      guint                  min_version,
                                      GBytes                *request,
                                      const char            *what,
                                      QleanGuestRequestFunc  func,
                                      gpointer               user_data,
                                      GDestroyNotify         destroy)
{
  g_autoptr(QleanGuestChannel) channel = qlean_machine_run_dup_guest_channel (run);
  g_autoptr(QleanGuestStream) stream = NULL;
  GuestRequest *req;

  if (channel == NULL || !qlean_guest_channel_is_ready (channel) ||
      qlean_guest_channel_get_guest_version (channel) < min_version)
    {
      g_autoptr(GError) error = g_error_new (G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                                             "qlean-guest does not answer %s (version %u needed)",
                                             what, min_version);

      func (error, user_data);
      if (destroy != NULL)
        destroy (user_data);
      return;
    }

  req = g_new0 (GuestRequest, 1);
  req->func = func;
  req->user_data = user_data;
  req->destroy = destroy;
  req->what = what;
  stream = qlean_guest_channel_open_stream (channel, QLEAN_GUEST_FRAME_FS, request,
                                            guest_request_cb, req,
                                            (GDestroyNotify) guest_request_free);
  qlean_guest_stream_set_timeout (stream, qlean_machine_run_get_guest_timeout (run));
}

/* SET_CLOCK's answer: over either way, but an older qlean-guest (in an
 * image prepared before it learnt SET_CLOCK) says it does not know the
 * operation, and a guest without one says nothing: use the agent. */
static void
clock_set_cb (const GError *error,
              gpointer      user_data)
{
  if (error != NULL)
    fix_clock_by_agent (user_data);
}

static gboolean
fix_clock_in_worker (gpointer user_data)
{
  QleanMachineRun *run = user_data;
  QleanGuestTlv *tlv = qlean_guest_tlv_new ();
  g_autoptr(GBytes) request = NULL;

  qlean_guest_tlv_add_u32 (tlv, QLEAN_GUEST_TAG_OP, QLEAN_GUEST_FS_SET_CLOCK);
  qlean_guest_tlv_add_string (tlv, QLEAN_GUEST_TAG_PATH, "/");
  qlean_guest_tlv_add_i64 (tlv, QLEAN_GUEST_TAG_MTIME, g_get_real_time () * 1000);
  request = qlean_guest_tlv_free_to_bytes (tlv);
  qlean_machine_run_send_guest_request (run, 1, request, "FS SET_CLOCK", clock_set_cb,
                                        qlean_machine_run_ref (run),
                                        (GDestroyNotify) qlean_machine_run_unref);
  return G_SOURCE_REMOVE;
}

/* The guest's clock stands still while QEMU is stopped (paused, being
 * snapshotted, restored): set it from the host's, through qlean-guest
 * when it answers, else through the agent. Fire and forget: a guest that
 * refuses just keeps its clock. Any thread. */
void
qlean_machine_run_fix_clock (QleanMachineRun *run)
{
  qlean_worker_invoke (fix_clock_in_worker, qlean_machine_run_ref (run),
                       (GDestroyNotify) qlean_machine_run_unref);
}

/* What the parts working in the guest ask of a run (any thread) */

const char *
qlean_machine_run_get_name (QleanMachineRun *run)
{
  return run->name;
}

QleanGuestTransport
qlean_machine_run_get_guest_transport (QleanMachineRun *run)
{
  return g_atomic_int_get (&run->guest_transport);
}

gboolean
qlean_machine_run_uses_agent_only (QleanMachineRun *run)
{
  return run->wanted_transport == QLEAN_GUEST_TRANSPORT_AGENT ||
         g_atomic_int_get (&run->guest_transport) == QLEAN_GUEST_TRANSPORT_AGENT;
}

QleanQgaClient *
qlean_machine_run_dup_qga (QleanMachineRun *run)
{
  QleanQgaClient *qga;

  g_mutex_lock (&run->lock);
  qga = run->qga ? g_object_ref (run->qga) : NULL;
  g_mutex_unlock (&run->lock);

  return qga;
}

QleanGuestChannel *
qlean_machine_run_dup_guest_channel (QleanMachineRun *run)
{
  QleanGuestChannel *channel;

  g_mutex_lock (&run->lock);
  channel = run->guest ? g_object_ref (run->guest) : NULL;
  g_mutex_unlock (&run->lock);

  return channel;
}

guint
qlean_machine_run_get_guest_timeout (QleanMachineRun *run)
{
  g_autoptr(QleanQgaClient) qga = qlean_machine_run_dup_qga (run);

  return qga != NULL ? qlean_qga_client_get_timeout (qga) : 0;
}

/* The channel to qlean-guest */

static void
guest_ready_cb (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  QleanMachineRun *run = g_task_get_task_data (task);
  GError *error = NULL;

  if (!qlean_guest_channel_hello_finish (QLEAN_GUEST_CHANNEL (source), result, &error))
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
                               _("qlean-guest does not answer in machine “%s”: %s"),
                               run->name, error->message);
      g_error_free (error);
      return;
    }

  g_task_return_pointer (task, g_object_ref (source), g_object_unref);
}

static gboolean
get_guest_channel_in_worker (gpointer user_data)
{
  GTask *task = user_data;
  QleanMachineRun *run = g_task_get_task_data (task);

  /* The run's fields are the worker's: no lock to read them here. */
  if (run->guest == NULL)
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE,
                               _("Machine “%s” stopped running"), run->name);
      return G_SOURCE_REMOVE;
    }

  if (qlean_machine_run_uses_agent_only (run))
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
                               _("machine “%s” reaches its guest through the QEMU guest agent "
                                 "alone (guest-transport “agent”), and this needs qlean-guest "
                                 "(a process's stdin pipe or terminal, port forwarding); "
                                 "use transport “auto” or "
                                 "“qlean-guest” for it"),
                               run->name);
      return G_SOURCE_REMOVE;
    }

  if (qlean_guest_channel_is_ready (run->guest))
    {
      g_task_return_pointer (task, g_object_ref (run->guest), g_object_unref);
      return G_SOURCE_REMOVE;
    }

  qlean_guest_channel_hello_async (run->guest, 5000, g_task_get_cancellable (task),
                                   guest_ready_cb, g_object_ref (task));
  return G_SOURCE_REMOVE;
}

void
qlean_machine_run_get_guest_channel_async (QleanMachineRun     *run,
                                           GCancellable        *cancellable,
                                           GAsyncReadyCallback  callback,
                                           gpointer             user_data)
{
  GTask *task = qlean_task_new (NULL, cancellable, callback, user_data,
                                qlean_machine_run_get_guest_channel_async,
                                "qlean_machine_run_get_guest_channel_async");

  g_task_set_task_data (task, qlean_machine_run_ref (run),
                        (GDestroyNotify) qlean_machine_run_unref);
  qlean_task_run_in_worker (task, get_guest_channel_in_worker);
}

QleanGuestChannel *
qlean_machine_run_get_guest_channel_finish (QleanMachineRun  *run,
                                            GAsyncResult     *result,
                                            GError          **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_run_get_guest_channel_async), NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

gboolean
qlean_machine_qemu_runs (QleanMachine *self)
{
  GPid pid = qlean_machine_get_pid (self);
  siginfo_t info = { 0 };

  if (qlean_machine_get_state (self) != QLEAN_MACHINE_STATE_RUNNING || pid <= 0)
    return FALSE;
  /* WNOWAIT: the exit watch still reaps it. ECHILD: reaped already. */
  if (waitid (P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0)
    return FALSE;
  return info.si_pid == 0;
}
