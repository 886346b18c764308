/* qlean-machine-fs.c: std::fs in the guest: the request engine
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <glib/gi18n-lib.h>

#include "qlean-enums.h"
#include "qlean-error.h"
#include "qlean-guest-backend-private.h"
#include "qlean-guest-channel-private.h"
#include "qlean-guest-stream-dispatch-private.h"
#include "qlean-json-channel-private.h"
#include "qlean-machine-fs.h"
#include "qlean-machine-fs-private.h"
#include "qlean-machine-private.h"
#include "qlean-sync-private.h"
#include "qlean-task-private.h"
#include "qlean-worker-private.h"

/* The file system calls Qlean's users know from Rust's std::fs, each as
 * an async/finish/blocking trio on QleanMachine. They run in qlean-guest
 * (FS, GET and PUT requests on the data port): paths travel as bytes and
 * never through a shell, so spaces, quotes, newlines, a leading '-' and
 * names that are not UTF-8 all work, and failures come back as the
 * guest's errno, reported as the matching G_IO_ERROR code with the
 * guest path in the message.
 *
 * This file holds what all those calls share: the request (one FS, GET
 * or PUT), its error messages, the choice of backend for the machine's
 * run (qlean-guest's, here, or the agent's in
 * qlean-guest-backend-agent.c) and qlean-guest's side of it. The calls
 * themselves are in qlean-machine-fs-tree.c (changing the tree),
 * qlean-machine-fs-info.c (metadata, links, listings) and
 * qlean-machine-fs-contents.c (whole files). */

static void
fs_request_free (QleanFsRequest *req)
{
  g_assert (req->cancel_source == NULL);
  g_free (req->path);
  g_free (req->path2);
  g_clear_pointer (&req->contents, g_bytes_unref);
  g_clear_pointer (&req->collected, g_byte_array_unref);
  g_clear_pointer (&req->done, g_bytes_unref);
  g_clear_pointer (&req->run, qlean_machine_run_unref);
  g_free (req);
}

QleanFsRequest *
qlean_fs_request_new (guint32        op,
                      const char    *path,
                      const char    *path2,
                      QleanFsAction  action)
{
  QleanFsRequest *req = g_new0 (QleanFsRequest, 1);

  req->request = QLEAN_GUEST_FRAME_FS;
  req->op = op;
  req->path = g_strdup (path);
  req->path2 = g_strdup (path2);
  req->action = action;
  req->collected = g_byte_array_new ();
  return req;
}

static GBytes *
fs_request_encode (QleanFsRequest *req)
{
  QleanGuestTlv *tlv = qlean_guest_tlv_new ();

  if (req->request == QLEAN_GUEST_FRAME_FS)
    qlean_guest_tlv_add_u32 (tlv, QLEAN_GUEST_TAG_OP, req->op);
  qlean_guest_tlv_add_string (tlv, QLEAN_GUEST_TAG_PATH, req->path);
  if (req->path2 != NULL)
    qlean_guest_tlv_add_string (tlv, QLEAN_GUEST_TAG_PATH2, req->path2);
  if (req->has_mode)
    qlean_guest_tlv_add_u32 (tlv, QLEAN_GUEST_TAG_MODE, req->mode);
  if (req->flags != 0)
    qlean_guest_tlv_add_u32 (tlv, QLEAN_GUEST_TAG_FLAGS, req->flags);
  if (req->has_mtime)
    qlean_guest_tlv_add_i64 (tlv, QLEAN_GUEST_TAG_MTIME, req->mtime_ns);

  return qlean_guest_tlv_free_to_bytes (tlv);
}

/* One sentence per action, so that each translates whole. */
char *
qlean_fs_action_failed (QleanFsAction  action,
                        QleanMachine  *machine,
                        const char    *display,
                        const char    *display2)
{
  const char *name = qlean_machine_get_name (machine);

  if (display2 == NULL)
    display2 = "";

  switch (action)
    {
    case QLEAN_FS_ACTION_CREATE_DIR:
      return g_strdup_printf (_("Cannot create directory “%s” in machine “%s”"), display, name);
    case QLEAN_FS_ACTION_REMOVE:
      return g_strdup_printf (_("Cannot remove “%s” in machine “%s”"), display, name);
    case QLEAN_FS_ACTION_REMOVE_DIR:
      return g_strdup_printf (_("Cannot remove the directory “%s” in machine “%s”"), display, name);
    case QLEAN_FS_ACTION_RENAME:
      return g_strdup_printf (_("Cannot rename “%s” to “%s” in machine “%s”"), display, display2, name);
    case QLEAN_FS_ACTION_HARD_LINK:
      return g_strdup_printf (_("Cannot make a hard link to “%s” at “%s” in machine “%s”"),
                              display, display2, name);
    case QLEAN_FS_ACTION_SYMLINK:
      return g_strdup_printf (_("Cannot make a symbolic link to “%s” at “%s” in machine “%s”"),
                              display, display2, name);
    case QLEAN_FS_ACTION_COPY:
      return g_strdup_printf (_("Cannot copy “%s” to “%s” in machine “%s”"), display, display2, name);
    case QLEAN_FS_ACTION_SET_PERMISSIONS:
      return g_strdup_printf (_("Cannot change the permissions of “%s” in machine “%s”"), display, name);
    case QLEAN_FS_ACTION_SET_TIME:
      return g_strdup_printf (_("Cannot set the time of “%s” in machine “%s”"), display, name);
    case QLEAN_FS_ACTION_METADATA:
      return g_strdup_printf (_("Cannot get the metadata of “%s” in machine “%s”"), display, name);
    case QLEAN_FS_ACTION_READ_LINK:
      return g_strdup_printf (_("Cannot read the link “%s” in machine “%s”"), display, name);
    case QLEAN_FS_ACTION_READ_DIR:
      return g_strdup_printf (_("Cannot list the directory “%s” in machine “%s”"), display, name);
    case QLEAN_FS_ACTION_READ:
      return g_strdup_printf (_("Cannot read “%s” in machine “%s”"), display, name);
    case QLEAN_FS_ACTION_WRITE:
      return g_strdup_printf (_("Cannot write “%s” in machine “%s”"), display, name);
    case QLEAN_FS_ACTION_DOWNLOAD:
      return g_strdup_printf (_("Cannot download “%s” from machine “%s”"), display, name);
    default:
      g_assert_not_reached ();
    }
}

/* The message names the call, the guest path (which may not be UTF-8)
 * and the machine, and keeps the guest's errno as the code. */
GError *
qlean_machine_fs_error (QleanMachine  *machine,
                        QleanFsAction  action,
                        const char    *path,
                        const char    *path2,
                        GBytes        *payload)
{
  g_autofree char *display = g_filename_display_name (path);
  g_autofree char *display2 = path2 ? g_filename_display_name (path2) : NULL;
  g_autofree char *what = qlean_fs_action_failed (action, machine, display, display2);

  return qlean_guest_error_from_payload (payload, what);
}

char *
qlean_machine_fs_display_path (const char *path)
{
  g_autofree char *display = g_filename_display_name (path);
  const char *cut;

  /* A path too long to send at all would fill the message. */
  if (g_utf8_strlen (display, -1) <= 256)
    return g_steal_pointer (&display);

  cut = g_utf8_offset_to_pointer (display, 200);
  return g_strdup_printf ("%.*s… (%" G_GSIZE_FORMAT " bytes)", (int) (cut - display), display,
                          strlen (path));
}

GError *
qlean_machine_fs_stream_error (QleanMachine  *machine,
                               QleanFsAction  action,
                               const char    *path,
                               const char    *path2,
                               const GError  *error)
{
  g_autofree char *display = qlean_machine_fs_display_path (path);
  g_autofree char *display2 = path2 ? qlean_machine_fs_display_path (path2) : NULL;
  g_autofree char *what = qlean_fs_action_failed (action, machine, display, display2);
  GQuark domain = QLEAN_MACHINE_ERROR;
  int code = QLEAN_MACHINE_ERROR_CRASHED;

  /* A stream ends early when it waited too long or its request could
   * not be sent; otherwise the guest went away. */
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT) ||
      g_error_matches (error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE))
    {
      domain = error->domain;
      code = error->code;
    }

  return g_error_new (domain, code, "%s: %s", what, error->message);
}

/* "Cannot <action> “PATH” in machine “NAME”" for @req. */
static char *
request_failed (QleanMachine   *self,
                QleanFsRequest *req)
{
  g_autofree char *display = g_filename_display_name (req->path);
  g_autofree char *display2 = req->path2 ? g_filename_display_name (req->path2) : NULL;

  return qlean_fs_action_failed (req->action, self, display, display2);
}

static gsize contents_limit (QleanFsRequest *req);

/* Worker: ends the call, and the stream if it is still open. */
static void
fs_return (GTask  *task,
           GError *error)
{
  QleanFsRequest *req = g_task_get_task_data (task);
  QleanGuestStream *stream = g_steal_pointer (&req->stream);

  g_object_ref (task);
  qlean_clear_source (&req->cancel_source);
  if (stream != NULL)
    qlean_guest_stream_close (stream);
  if (error != NULL)
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

/* Worker: the caller gave up. The guest is told (a GET or PUT stops
 * there) and whatever it still sends is dropped. */
static gboolean
fs_cancelled_cb (GCancellable *cancellable,
                 gpointer      user_data)
{
  GTask *task = user_data;
  QleanFsRequest *req = g_task_get_task_data (task);
  GError *error = NULL;

  if (req->stream != NULL)
    {
      qlean_guest_stream_send_signal (req->stream, SIGTERM);
      g_cancellable_set_error_if_cancelled (cancellable, &error);
      fs_return (task, error);
    }

  return G_SOURCE_REMOVE;
}

/* The channel closed (the guest went away), or it lives on and only
 * this call waited too long or could not be sent. */
static void
fs_stream_closed (QleanGuestStream *stream,
                  const GError     *error,
                  gpointer          user_data)
{
  GTask *task = user_data;
  QleanFsRequest *req = g_task_get_task_data (task);

  fs_return (task, qlean_machine_fs_stream_error (g_task_get_source_object (task), req->action,
                                                  req->path, req->path2, error));
}

static void
fs_stream_error (QleanGuestStream *stream,
                 GBytes           *payload,
                 gpointer          user_data)
{
  GTask *task = user_data;
  QleanFsRequest *req = g_task_get_task_data (task);

  fs_return (task, qlean_machine_fs_error (g_task_get_source_object (task), req->action,
                                           req->path, req->path2, payload));
}

static void
fs_stream_data (QleanGuestStream *stream,
                guint8            fd,
                GBytes           *payload,
                gpointer          user_data)
{
  GTask *task = user_data;
  QleanFsRequest *req = g_task_get_task_data (task);
  QleanMachine *machine = g_task_get_source_object (task);

  if (req->kind == QLEAN_FS_RESULT_CONTENTS &&
      req->collected->len + g_bytes_get_size (payload) > contents_limit (req))
    {
      g_autofree char *display = qlean_machine_fs_display_path (req->path);
      g_autofree char *slack = g_format_size (QLEAN_GUEST_FS_DATA_LIMIT);

      fs_return (task, g_error_new (G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                                    _("Cannot read “%s” in machine “%s”: qlean-guest sent more "
                                      "than the file's size plus %s; use a download for a file "
                                      "that grows while it is read"),
                                    display, qlean_machine_get_name (machine), slack));
      return;
    }
  g_byte_array_append (req->collected, g_bytes_get_data (payload, NULL), g_bytes_get_size (payload));
}

static void
fs_stream_done (QleanGuestStream *stream,
                GBytes           *payload,
                gpointer          user_data)
{
  GTask *task = user_data;
  QleanFsRequest *req = g_task_get_task_data (task);

  req->done = g_bytes_ref (payload);
  if (req->kind == QLEAN_FS_RESULT_LISTING)
    g_byte_array_append (req->collected, g_bytes_get_data (payload, NULL), g_bytes_get_size (payload));
  if (req->kind == QLEAN_FS_RESULT_CONTENTS)
    return;  /* the data follows */
  fs_return (task, NULL);
}

static void
fs_stream_eof (QleanGuestStream *stream,
               guint8            fd,
               gpointer          user_data)
{
  GTask *task = user_data;
  QleanFsRequest *req = g_task_get_task_data (task);

  if (req->kind != QLEAN_FS_RESULT_CONTENTS || req->done == NULL)
    return;
  fs_return (task, NULL);
}

static const QleanGuestStreamHandlers fs_stream_handlers = {
  .closed = fs_stream_closed,
  .error = fs_stream_error,
  .data = fs_stream_data,
  .done = fs_stream_done,
  .eof = fs_stream_eof,
};

static void
fs_stream_cb (QleanGuestStream *stream,
              guint8            type,
              guint8            fd,
              GBytes           *payload,
              const GError     *error,
              gpointer          user_data)
{
  GTask *task = user_data;
  QleanFsRequest *req = g_task_get_task_data (task);

  /* Ended already (fs_return): only a stream opened on a channel that
   * had just closed still reports that. */
  if (req->stream == NULL)
    return;

  qlean_guest_stream_dispatch (&fs_stream_handlers, stream, type, fd, payload, error, task);
}

static void
fs_channel_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  QleanFsRequest *req = g_task_get_task_data (task);
  g_autoptr(QleanGuestChannel) channel = NULL;
  g_autoptr(GBytes) request = NULL;
  g_autoptr(QleanGuestStream) stream = NULL;
  GError *error = NULL;

  channel = qlean_machine_run_get_guest_channel_finish (req->run, result, &error);
  if (channel == NULL && g_error_matches (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED))
    {
      g_autofree char *what = request_failed (g_task_get_source_object (task), req);

      /* The machine's transport is qlean-guest, which does not answer
       * (the message says so): the call fails rather than switching. */
      g_task_return_new_error (task, error->domain, error->code, "%s: %s", what, error->message);
      g_error_free (error);
      return;
    }
  if (channel == NULL)
    {
      g_task_return_error (task, error);
      return;
    }

  request = fs_request_encode (req);
  stream = qlean_guest_channel_open_stream (channel, req->request, request, fs_stream_cb,
                                            g_object_ref (task), g_object_unref);
  req->stream = stream;
  /* qlean-guest copies a file or removes a tree in one go, however long
   * that takes; from protocol version 2 on it sends PROGRESS meanwhile,
   * which keeps the timeout from firing while it works. An older one
   * sends nothing until it is done, so those two calls cannot be bounded. */
  if (req->request != QLEAN_GUEST_FRAME_FS ||
      (req->op != QLEAN_GUEST_FS_COPY && req->op != QLEAN_GUEST_FS_REMOVE_ALL) ||
      qlean_guest_channel_get_guest_version (channel) >= 2)
    qlean_guest_stream_set_timeout (stream, qlean_machine_run_get_guest_timeout (req->run));
  if (g_task_get_cancellable (task) != NULL)
    {
      req->cancel_source = g_cancellable_source_new (g_task_get_cancellable (task));
      g_source_set_callback (req->cancel_source, G_SOURCE_FUNC (fs_cancelled_cb),
                             g_object_ref (task), g_object_unref);
      g_source_set_static_name (req->cancel_source, "[qlean] file call cancelled");
      g_source_attach (req->cancel_source, qlean_worker_get_context ());
    }
  if (req->contents != NULL)
    {
      qlean_guest_stream_send_data (stream, req->contents);
      qlean_guest_stream_send_eof (stream);
    }
}

static gboolean
fs_in_worker (gpointer user_data)
{
  GTask *task = user_data;
  QleanFsRequest *req = g_task_get_task_data (task);

  qlean_machine_run_get_guest_channel_async (req->run, g_task_get_cancellable (task),
                                             fs_channel_cb, g_object_ref (task));
  return G_SOURCE_REMOVE;
}

/* GET and PUT when qlean-guest is not (yet) answering: once a HELLO on
 * its way has had its chance, either the data port after all or the
 * agent's guest-file-* calls. */
static void
fs_agent_thread (GTask        *task,
                 gpointer      source_object,
                 gpointer      task_data,
                 GCancellable *cancellable)
{
  QleanMachine *self = source_object;
  QleanFsRequest *req = task_data;
  g_autoptr(QleanGuestChannel) channel = NULL;
  GError *error = NULL;

  channel = qlean_machine_fs_pick_channel (req->run, cancellable, &error);
  if (channel == NULL && error != NULL)
    {
      g_task_return_error (task, error);
      return;
    }

  if (channel != NULL)
    {
      QleanFsRequest *port = qlean_fs_request_new (req->op, req->path, req->path2, req->action);
      g_autoptr(GTask) done = NULL;

      port->request = req->request;
      port->kind = req->kind;
      port->has_mode = req->has_mode;
      port->mode = req->mode;
      port->flags = req->flags;
      port->contents = req->contents ? g_bytes_ref (req->contents) : NULL;
      port->port_only = TRUE;
      done = qlean_fs_request_run (self, port, cancellable, &error);
      if (done == NULL)
        {
          g_task_return_error (task, error);
          return;
        }
      port = g_task_get_task_data (done);
      g_byte_array_unref (req->collected);
      req->collected = g_steal_pointer (&port->collected);
      req->done = g_steal_pointer (&port->done);
      g_task_return_boolean (task, TRUE);
      return;
    }

  if (qlean_guest_backend_agent_run (self, req, cancellable, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

/* The qlean-guest backend: requests go over the data port from the
 * worker, except GET and PUT while the run's transport is not decided
 * yet (Qlean's own start-up calls) and qlean-guest has not answered:
 * those go to fs_agent_thread(), which waits briefly for its HELLO. */
static void
qlean_guest_fs_start (QleanMachine *self,
                      GTask        *task)
{
  QleanFsRequest *req = g_task_get_task_data (task);

  if ((req->request == QLEAN_GUEST_FRAME_GET || req->request == QLEAN_GUEST_FRAME_PUT) &&
      !req->port_only &&
      qlean_machine_run_get_guest_transport (req->run) != QLEAN_GUEST_TRANSPORT_QLEAN_GUEST)
    {
      g_autoptr(QleanGuestChannel) channel = qlean_machine_run_dup_guest_channel (req->run);

      if (channel != NULL && !qlean_guest_channel_is_ready (channel))
        {
          g_task_run_in_thread (task, fs_agent_thread);
          g_object_unref (task);
          return;
        }
    }

  qlean_task_run_in_worker (task, fs_in_worker);
}

const QleanGuestBackend qlean_guest_backend_qlean_guest = {
  .name = "qlean-guest",
  .any_path = TRUE,
  .fs_start = qlean_guest_fs_start,
};

const QleanGuestBackend *
qlean_guest_backend_get (QleanMachineRun *run)
{
  if (qlean_machine_run_uses_agent_only (run))
    return &qlean_guest_backend_agent;

  return &qlean_guest_backend_qlean_guest;
}

/* Refuses @req on a machine that is not running, saying which call
 * failed. */
static gboolean
fs_request_check_state (QleanMachine    *self,
                        QleanFsRequest  *req,
                        GError         **error)
{
  QleanMachineState state = qlean_machine_get_state (self);

  if (state != QLEAN_MACHINE_STATE_RUNNING)
    {
      g_autofree char *what = request_failed (self, req);
      g_autoptr(GEnumClass) states = g_type_class_ref (QLEAN_TYPE_MACHINE_STATE);
      GEnumValue *value = g_enum_get_value (states, state);

      g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE,
                   _("%s: it is %s, not running"), what, value ? value->value_nick : "?");
      return FALSE;
    }

  return TRUE;
}

/* Refuses a path @backend cannot carry. */
static gboolean
fs_request_check_path (QleanMachine             *self,
                       const QleanGuestBackend  *backend,
                       QleanFsRequest           *req,
                       GError                  **error)
{
  /* The agent speaks JSON, whose strings are UTF-8: another path cannot
   * reach the guest that way. */
  if (!backend->any_path &&
      (!g_utf8_validate (req->path, -1, NULL) ||
       (req->path2 != NULL && !g_utf8_validate (req->path2, -1, NULL))))
    {
      g_autofree char *what = request_failed (self, req);

      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_FILENAME,
                   _("%s: the path is not UTF-8, which the QEMU guest agent cannot carry; use the "
                     "qlean-guest transport for such paths"),
                   what);
      return FALSE;
    }

  return TRUE;
}

void
qlean_fs_request_async (QleanMachine        *self,
                        QleanFsRequest      *req,
                        GCancellable        *cancellable,
                        gpointer             source_tag,
                        GAsyncReadyCallback  callback,
                        gpointer             user_data)
{
  GTask *task = qlean_task_new (self, cancellable, callback, user_data, source_tag,
                                "[qlean] guest file system call");
  const QleanGuestBackend *backend;
  GError *error = NULL;

  g_task_set_task_data (task, req, (GDestroyNotify) fs_request_free);

  if (!fs_request_check_state (self, req, &error))
    {
      g_task_return_error (task, error);
      g_object_unref (task);
      return;
    }

  /* The call goes to the run it began in, whose backend was chosen once
   * (as it became ready), and never to a later run. */
  req->run = qlean_machine_ref_run (self, QLEAN_MACHINE_OP_TRANSFER_FILES, FALSE, &error);
  if (req->run == NULL)
    {
      g_task_return_error (task, error);
      g_object_unref (task);
      return;
    }

  backend = qlean_guest_backend_get (req->run);
  if (!fs_request_check_path (self, backend, req, &error))
    {
      g_task_return_error (task, error);
      g_object_unref (task);
      return;
    }

  /* The transport of the run decides. */
  backend->fs_start (self, task);
}

/* On success, the request with what the guest answered. */
QleanFsRequest *
qlean_fs_request_finish (QleanMachine  *self,
                         GAsyncResult  *result,
                         GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);

  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;

  return g_task_get_task_data (G_TASK (result));
}

/* Runs @req to completion; returns the finished task (holding the
 * request) or NULL with @error set. */
GTask *
qlean_fs_request_run (QleanMachine    *self,
                      QleanFsRequest  *req,
                      GCancellable    *cancellable,
                      GError         **error)
{
  g_auto(QleanSyncCall) call = { 0 };
  GAsyncResult *result;

  if (!qlean_sync_call_begin (&call, error))
    {
      fs_request_free (req);
      return NULL;
    }
  qlean_fs_request_async (self, req, cancellable, qlean_fs_request_run, qlean_sync_call_done, &call);
  result = qlean_sync_call_wait (&call);

  if (qlean_fs_request_finish (self, result, error) == NULL)
    return NULL;

  return g_object_ref (G_TASK (result));
}

gboolean
qlean_fs_find_tag (GBytes        *payload,
                   guint16        wanted,
                   const guint8 **value,
                   gsize         *len)
{
  QleanGuestTlvIter iter;
  guint16 tag;

  qlean_guest_tlv_iter_init (&iter, payload);
  while (qlean_guest_tlv_iter_next (&iter, &tag, value, len, NULL))
    if (tag == wanted)
      return TRUE;

  return FALSE;
}

/* How much a read may collect: the size the guest gave in its DONE, plus
 * QLEAN_GUEST_FS_DATA_LIMIT for files that grow while read or report no
 * size (/proc), so that a guest cannot fill the host's memory through a
 * read of a small file. The guest's claim only ever lowers the bound a
 * little below what it could send anyway. */
static gsize
contents_limit (QleanFsRequest *req)
{
  const guint8 *value;
  gsize len;
  guint64 size = 0;

  if (req->done != NULL && qlean_fs_find_tag (req->done, QLEAN_GUEST_TAG_SIZE, &value, &len) && len >= 8)
    size = qlean_guest_read_u64 (value);

  if (size > G_MAXSIZE - QLEAN_GUEST_FS_DATA_LIMIT)
    return G_MAXSIZE;
  return (gsize) size + QLEAN_GUEST_FS_DATA_LIMIT;
}

/* Boolean calls */

gboolean
qlean_fs_bool_finish (QleanMachine  *self,
                      GAsyncResult  *result,
                      GError       **error)
{
  return qlean_fs_request_finish (self, result, error) != NULL;
}

gboolean
qlean_fs_bool_run (QleanMachine    *self,
                   QleanFsRequest  *req,
                   GCancellable    *cancellable,
                   GError         **error)
{
  g_autoptr(GTask) task = qlean_fs_request_run (self, req, cancellable, error);

  return task != NULL;
}
