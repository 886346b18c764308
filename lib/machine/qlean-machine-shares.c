/* qlean-machine-shares.c: host folders in the guest, and a machine shared with other processes
 *
 * Two kinds of sharing: the host folders a machine's config mounts in
 * its guest (9p or virtiofs, once per start), and share()/attach(), which let other
 * processes reach a running machine through qlean-guest's relay.
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
#include "qlean-machine-virtiofs-private.h"
#include "qlean-qga-proxy-private.h"
#include "qlean-image-private.h"
#include "qlean-sync-private.h"
#include "qlean-task-private.h"
#include "qlean-worker-private.h"

/* Mounts each shared folder at its guest path: $1 the minimal image's
 * module directory for the file system, $2 the file system (9p or
 * virtiofs), then tag, path and options for each. The minimal image's
 * init loads neither at boot (it costs boot time for every machine);
 * other guests load them on demand. */
static const char mount_shares_script[] =
  "for m in \"$1\"/*.ko; do\n"
  "  [ -e \"$m\" ] || continue\n"
  "  n=${m##*/}; n=${n#*-}; n=${n%.ko}\n"
  "  [ -d \"/sys/module/$n\" ] || insmod \"$m\" || exit 1\n"
  "done\n"
  "t=$2\n"
  "shift 2\n"
  "while [ $# -ge 3 ]; do\n"
  "  mkdir -p -- \"$2\" && mount -t \"$t\" -o \"$3\" \"$1\" \"$2\" || exit 1\n"
  "  shift 3\n"
  "done\n";

static void
qlean_machine_shares_ran_cb (GObject      *source,
                             GAsyncResult *result,
                             gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  g_autoptr(QleanExecResult) ran = NULL;
  GError *error = NULL;

  ran = qlean_machine_exec_finish (QLEAN_MACHINE (source), result, &error);
  if (ran == NULL)
    {
      g_task_return_error (task, error);
      return;
    }

  if (!qlean_exec_result_success (ran))
    {
      g_autofree char *err = qlean_exec_result_get_stderr_text (ran);

      if (qlean_machine_run_get_share_kind (QLEAN_MACHINE (source)->run) == QLEAN_SHARE_KIND_VIRTIOFS)
        g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
                                 _("Could not mount the shared folders in machine “%s” (does its "
                                   "kernel have virtiofs?): %s"),
                                 QLEAN_MACHINE (source)->name, err ? g_strstrip (err) : "");
      else
        g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
                                 _("Could not mount the shared folders in machine “%s” (does its "
                                   "kernel have 9p?): %s"),
                                 QLEAN_MACHINE (source)->name, err ? g_strstrip (err) : "");
      return;
    }

  g_task_return_boolean (task, TRUE);
}

static void
qlean_machine_mount_shares_async (QleanMachine        *self,
                                  GAsyncReadyCallback  callback,
                                  gpointer             user_data)
{
  g_autoptr(GTask) task = qlean_task_new (self, NULL, callback, user_data,
                                          qlean_machine_mount_shares_async,
                                          "[qlean] mount shared folders");
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  guint n = qlean_machine_config_get_n_shares (self->config);
  gboolean virtiofs = qlean_machine_run_get_share_kind (self->run) == QLEAN_SHARE_KIND_VIRTIOFS;

  g_ptr_array_add (argv, g_strdup ("/bin/sh"));
  g_ptr_array_add (argv, g_strdup ("-c"));
  g_ptr_array_add (argv, g_strdup (mount_shares_script));
  g_ptr_array_add (argv, g_strdup ("sh"));
  g_ptr_array_add (argv, g_strdup (virtiofs ? "/lib/modules/qlean/virtiofs" : "/lib/modules/qlean/9p"));
  g_ptr_array_add (argv, g_strdup (virtiofs ? "virtiofs" : "9p"));
  for (guint i = 0; i < n; i++)
    {
      const char *guest_path;
      QleanShareFlags flags;

      qlean_machine_config_get_share (self->config, i, &guest_path, &flags);
      g_ptr_array_add (argv, g_strdup_printf (QLEAN_SHARE_TAG_PREFIX "%u", i));
      g_ptr_array_add (argv, g_strdup (guest_path));
      /* virtiofs: ro is a courtesy (the guest's writes fail at once);
       * the host's read-only bind mount is what refuses them. Caching
       * is virtiofsd's option (qlean-machine-virtiofs.c). */
      if (virtiofs)
        g_ptr_array_add (argv, g_strdup ((flags & QLEAN_SHARE_READONLY) ? "ro" : "rw"));
      /* msize: 9p's 8 KiB default makes every read a round trip per
       * 8 KiB; 512000 is the most virtio takes. No cache by default, so
       * that the host's changes show at once; cache=loose where asked
       * (read-only shares only), 4 times faster on 1,000 small files
       * (bench/bench-shares); cache=mmap gained nothing there. */
      else
        g_ptr_array_add (argv, g_strdup_printf ("trans=virtio,version=9p2000.L,msize=512000%s%s",
                                                (flags & QLEAN_SHARE_READONLY) ? ",ro" : "",
                                                (flags & QLEAN_SHARE_CACHED) ? ",cache=loose" : ""));
    }
  g_ptr_array_add (argv, NULL);

  qlean_machine_exec_starting_async (self, (const char * const *) argv->pdata, NULL, NULL,
                                     qlean_machine_shares_ran_cb, g_steal_pointer (&task));
}

/* Whether the machine cannot be saved for its shares: a mounted 9p
 * export, or a virtiofs device, which QEMU never migrates. */
gboolean
qlean_machine_shares_mounted (QleanMachine *self)
{
  return self->run->shares_mounted || qlean_machine_run_has_virtiofs (self->run);
}

static void
qlean_machine_shares_mounted_cb (GObject      *source,
                                 GAsyncResult *result,
                                 gpointer      user_data)
{
  QleanMachine *self = QLEAN_MACHINE (source);
  g_autoptr(GTask) spawn_task = user_data;
  GError *error = NULL;

  if (g_task_propagate_boolean (G_TASK (result), &error) && self->run->spawn_task == spawn_task)
    self->run->shares_mounted = TRUE;
  qlean_machine_boot_stage_done (self, spawn_task, error);
}

/* Shared folders are mounted last: after the boot is saved for fast
 * starts (a mounted 9p export blocks migration), before anything of
 * the caller's runs. */
static gboolean
qlean_machine_shares_stage_start (QleanMachine    *self,
                                  QleanMachineRun *run,
                                  GTask           *spawn_task)
{
  qlean_machine_mount_shares_async (self, qlean_machine_shares_mounted_cb,
                                    g_object_ref (spawn_task));
  return TRUE;
}

static const QleanBootStage shares_stage = {
  "shares", QLEAN_BOOT_STAGE_SHARES, qlean_machine_shares_stage_start
};

/* A start of a machine with shared folders decides how they reach the
 * guest (qlean-machine-virtiofs.c), boots a kernel with 9p when that is
 * how (Debian's cloud kernel has virtiofs, not 9p), and mounts them as
 * its last stage. */
void
qlean_machine_prepare_shares (QleanMachine *self)
{
  QleanShareKind kind;

  if (qlean_machine_config_get_n_shares (self->config) == 0)
    return;

  kind = qlean_machine_pick_share_kind (self, self->incoming != NULL);
  qlean_machine_run_set_share_kind (self->run, kind);
  if (kind == QLEAN_SHARE_KIND_9P)
    qlean_image_want_share_boot (self->image);
  qlean_machine_run_add_boot_stage (self->run, &shares_stage);
}

/* Sharing a running machine with other processes */

/* A machine that reaches its guest through the stock agent alone is
 * shared through a proxy of its agent (qlean-qga-proxy.c) instead of a
 * relay of qlean-guest's channel; a file beside the socket, named after
 * it with this suffix, tells qlean_machine_attach() which of the two
 * answers there. */
#define AGENT_SHARE_SUFFIX ".agent"
#define AGENT_SHARE_KEY "qlean-agent-share"

typedef struct
{
  QleanQgaProxy *proxy;
  char          *marker;
} AgentShare;

static gboolean
agent_share_free_in_worker (gpointer user_data)
{
  AgentShare *share = user_data;

  qlean_qga_proxy_free (share->proxy);
  g_unlink (share->marker);
  g_free (share->marker);
  g_free (share);
  return G_SOURCE_REMOVE;
}

/* The run's data ends on the worker when the run is released, or
 * wherever its last reference goes: the proxy lives on the worker. */
static void
agent_share_free (gpointer data)
{
  if (qlean_worker_is_current ())
    agent_share_free_in_worker (data);
  else
    qlean_worker_invoke (agent_share_free_in_worker, data, NULL);
}

/* Worker thread: shares @self, whose run uses the agent alone, on
 * @path. */
static gboolean
qlean_machine_share_agent (QleanMachine  *self,
                           const char    *path,
                           GError       **error)
{
  g_autofree char *marker = g_strconcat (path, AGENT_SHARE_SUFFIX, NULL);
  g_autoptr(QleanQgaProxy) proxy = NULL;
  AgentShare *share;

  if (qlean_machine_run_get_data (self->run, AGENT_SHARE_KEY) != NULL)
    {
      g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE,
                   _("Machine “%s” is already shared"), self->name);
      return FALSE;
    }

  proxy = qlean_qga_proxy_new (self->run->qga, path, error);
  if (proxy == NULL || !g_file_set_contents (marker, "", 0, error))
    {
      g_prefix_error (error, _("Cannot share machine “%s” on %s: "), self->name, path);
      return FALSE;
    }

  share = g_new0 (AgentShare, 1);
  share->proxy = g_steal_pointer (&proxy);
  share->marker = g_steal_pointer (&marker);
  qlean_machine_run_set_data (self->run, AGENT_SHARE_KEY, share, agent_share_free);
  return TRUE;
}

typedef struct
{
  char   *path;
  GError *error;
  gint    done;
} ShareData;

static void
qlean_machine_share_channel_cb (GObject      *source,
                                GAsyncResult *result,
                                gpointer      user_data)
{
  GTask *task = user_data;
  QleanMachine *self = g_task_get_source_object (task);
  const char *path = g_task_get_task_data (task);
  g_autoptr(QleanGuestChannel) channel = NULL;
  GError *error = NULL;
  QleanGuestRelay *relay;

  channel = qlean_machine_run_get_guest_channel_finish (self->run, result, &error);
  if (channel == NULL)
    {
      g_task_return_error (task, error);
      g_object_unref (task);
      return;
    }

  if (self->run->relay != NULL)
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE,
                               _("Machine “%s” is already shared"), self->name);
      g_object_unref (task);
      return;
    }

  relay = qlean_guest_relay_new (channel, path, &error);
  if (relay == NULL)
    {
      g_prefix_error (&error, _("Cannot share machine “%s” on %s: "), self->name, path);
      g_task_return_error (task, error);
      g_object_unref (task);
      return;
    }

  g_mutex_lock (&self->lock);
  g_mutex_lock (&self->run->lock);
  self->run->relay = relay;
  g_mutex_unlock (&self->run->lock);
  g_mutex_unlock (&self->lock);
  g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

static gboolean
qlean_machine_share_in_worker (gpointer user_data)
{
  GTask *task = user_data;
  QleanMachine *self = g_task_get_source_object (task);
  GError *error = NULL;

  if (qlean_machine_run_uses_agent_only (self->run))
    {
      if (qlean_machine_share_agent (self, g_task_get_task_data (task), &error))
        g_task_return_boolean (task, TRUE);
      else
        g_task_return_error (task, error);
      g_object_unref (task);
      return G_SOURCE_REMOVE;
    }

  qlean_machine_run_get_guest_channel_async (self->run, NULL, qlean_machine_share_channel_cb, task);
  return G_SOURCE_REMOVE;
}

/**
 * qlean_machine_share:
 * @self: a running #QleanMachine
 * @socket_path: (type filename): where to listen, a unix socket path that
 *   does not exist yet
 * @error: return location for a #GError
 *
 * Lets other processes use the running machine: each connection to
 * @socket_path may run processes and move files in it, as
 * [func@Machine.attach] does, while this process keeps owning QEMU. This
 * is how `qlean start` serves `qlean exec`. The socket is mode 0600 and
 * goes away when the machine stops.
 *
 * A machine on the stock guest agent alone
 * ([property@Machine:guest-transport] “agent”) is shared as its agent:
 * what is attached to it has the agent transport too. A file named after
 * the socket with “.agent” appended marks such a share.
 *
 * Returns: %TRUE when the machine is shared
 *
 * Since: 0.1
 */
gboolean
qlean_machine_share (QleanMachine  *self,
                     const char    *socket_path,
                     GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };
  GTask *task;

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), FALSE);
  g_return_val_if_fail (socket_path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!qlean_machine_check_running (self, QLEAN_MACHINE_OP_SHARE, error))
    return FALSE;

  if (!qlean_sync_call_begin (&call, error))
    return FALSE;
  task = qlean_task_new (self, NULL, qlean_sync_call_done, &call, qlean_machine_share,
                         "[qlean] share machine");
  g_task_set_task_data (task, g_strdup (socket_path), g_free);
  qlean_worker_invoke (qlean_machine_share_in_worker, task, NULL);

  return g_task_propagate_boolean (G_TASK (qlean_sync_call_wait (&call)), error);
}

static void
qlean_machine_attach_hello_cb (GObject      *source,
                               GAsyncResult *result,
                               gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  QleanMachine *self = g_task_get_task_data (task);
  GError *error = NULL;

  if (!qlean_guest_channel_hello_finish (QLEAN_GUEST_CHANNEL (source), result, &error))
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
                               _("Machine “%s” does not answer: %s"), self->name, error->message);
      g_error_free (error);
      return;
    }

  /* An attached machine has nothing but the shared qlean-guest channel. */
  g_atomic_int_set (&self->run->guest_transport, QLEAN_GUEST_TRANSPORT_QLEAN_GUEST);
  qlean_machine_set_state (self, QLEAN_MACHINE_STATE_RUNNING);
  g_task_return_pointer (task, g_object_ref (self), g_object_unref);
}

static void
qlean_machine_attach_synced_cb (GObject      *source,
                                GAsyncResult *result,
                                gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  QleanMachine *self = g_task_get_task_data (task);
  GError *error = NULL;

  if (!qlean_qga_client_sync_finish (QLEAN_QGA_CLIENT (source), result, &error))
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
                               _("Machine “%s” does not answer: %s"), self->name, error->message);
      g_error_free (error);
      return;
    }

  /* A machine shared as its agent has nothing but the agent. */
  g_atomic_int_set (&self->run->guest_transport, QLEAN_GUEST_TRANSPORT_AGENT);
  qlean_machine_set_state (self, QLEAN_MACHINE_STATE_RUNNING);
  g_task_return_pointer (task, g_object_ref (self), g_object_unref);
}

/* Worker thread: @stream leads to a proxy of the machine's agent. */
static void
qlean_machine_attach_agent (QleanMachine *self,
                            GIOStream    *stream,
                            GTask        *task)
{
  g_mutex_lock (&self->lock);
  g_mutex_lock (&self->run->lock);
  self->run->qga = qlean_qga_client_new (stream);
  g_mutex_unlock (&self->run->lock);
  g_mutex_unlock (&self->lock);

  qlean_qga_client_sync_async (self->run->qga, 5000, g_task_get_cancellable (task),
                               qlean_machine_attach_synced_cb, g_object_ref (task));
}

static gboolean
qlean_machine_attach_in_worker (gpointer user_data)
{
  GTask *task = user_data;
  QleanMachine *self = g_task_get_task_data (task);
  const char *path = g_object_get_data (G_OBJECT (task), "qlean-path");
  g_autofree char *marker = g_strconcat (path, AGENT_SHARE_SUFFIX, NULL);
  g_autoptr(GIOStream) stream = NULL;
  GError *error = NULL;

  stream = qlean_machine_connect_unix (path, &error);
  if (stream == NULL)
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
                               _("Cannot reach machine “%s” at %s: %s"), self->name, path,
                               error->message);
      g_error_free (error);
      return G_SOURCE_REMOVE;
    }

  if (g_file_test (marker, G_FILE_TEST_EXISTS))
    {
      qlean_machine_attach_agent (self, stream, task);
      return G_SOURCE_REMOVE;
    }

  g_mutex_lock (&self->lock);
  g_mutex_lock (&self->run->lock);
  self->run->guest = qlean_guest_channel_new (stream);
  g_mutex_unlock (&self->run->lock);
  g_mutex_unlock (&self->lock);

  qlean_guest_channel_hello_async (self->run->guest, 5000, g_task_get_cancellable (task),
                                   qlean_machine_attach_hello_cb, g_object_ref (task));
  return G_SOURCE_REMOVE;
}

static void
qlean_machine_attach_start (QleanMachine        *self,
                            const char          *socket_path,
                            GCancellable        *cancellable,
                            GAsyncReadyCallback  callback,
                            gpointer             user_data)
{
  GTask *task;

  self->attached = TRUE;
  task = qlean_task_new (NULL, cancellable, callback, user_data, qlean_machine_attach_async,
                         "[qlean] attach to machine");
  g_task_set_task_data (task, self, g_object_unref);
  g_object_set_data_full (G_OBJECT (task), "qlean-path", g_strdup (socket_path), g_free);
  qlean_worker_invoke (qlean_machine_attach_in_worker, task, g_object_unref);
}

/**
 * qlean_machine_attach_async:
 * @name: the machine's name, for messages
 * @socket_path: (type filename): a socket made by [method@Machine.share]
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when attached
 * @user_data: data for @callback
 *
 * Reaches a machine that another process owns and shares. The result
 * runs processes ([class@GuestLauncher], [method@Machine.exec]) and moves
 * files like any running machine, but cannot be shut down or killed from
 * here; dropping it only disconnects.
 *
 * Since: 0.1
 */
void
qlean_machine_attach_async (const char          *name,
                            const char          *socket_path,
                            GCancellable        *cancellable,
                            GAsyncReadyCallback  callback,
                            gpointer             user_data)
{
  g_return_if_fail (name != NULL);
  g_return_if_fail (socket_path != NULL);

  qlean_machine_attach_start (qlean_machine_new_with_name (name, NULL, NULL), socket_path,
                              cancellable, callback, user_data);
}

/**
 * qlean_machine_attach_finish:
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_machine_attach_async().
 *
 * Returns: (transfer full): the attached machine, or %NULL with @error set
 *
 * Since: 0.1
 */
QleanMachine *
qlean_machine_attach_finish (GAsyncResult  *result,
                             GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_attach_async), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * qlean_machine_attach:
 * @name: the machine's name, for messages
 * @socket_path: (type filename): a socket made by [method@Machine.share]
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_attach_async().
 *
 * Returns: (transfer full): the attached machine, or %NULL with @error set
 *
 * Since: 0.1
 */
QleanMachine *
qlean_machine_attach (const char    *name,
                      const char    *socket_path,
                      GCancellable  *cancellable,
                      GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };
  QleanMachine *self;

  g_return_val_if_fail (name != NULL, NULL);
  g_return_val_if_fail (socket_path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  /* Made before the private context is pushed, so that its signals go to
   * the caller's context. */
  self = qlean_machine_new_with_name (name, NULL, NULL);
  if (!qlean_sync_call_begin (&call, error))
    {
      g_object_unref (self);
      return NULL;
    }
  qlean_machine_attach_start (self, socket_path, cancellable, qlean_sync_call_done, &call);

  return qlean_machine_attach_finish (qlean_sync_call_wait (&call), error);
}
