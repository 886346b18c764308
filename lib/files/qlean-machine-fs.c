/* qlean-machine-fs.c: std::fs in the guest
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <glib/gi18n-lib.h>

#include "qlean-error.h"
#include "qlean-guest-backend-private.h"
#include "qlean-guest-channel-private.h"
#include "qlean-json-channel-private.h"
#include "qlean-machine-fs.h"
#include "qlean-machine-fs-private.h"
#include "qlean-machine-private.h"
#include "qlean-sync-private.h"
#include "qlean-worker-private.h"

/* The file system calls Qlean's users know from Rust's std::fs, each as
 * an async/finish/blocking trio on QleanMachine. They run in qlean-guest
 * (FS, GET and PUT requests on the data port): paths travel as bytes and
 * never through a shell, so spaces, quotes, newlines, a leading '-' and
 * names that are not UTF-8 all work, and failures come back as the
 * guest's errno, reported as the matching G_IO_ERROR code with the
 * guest path in the message. */

typedef enum
{
  RESULT_NONE,      /* the DONE payload */
  RESULT_LISTING,   /* DATA fd 1 frames and DONE, concatenated */
  RESULT_CONTENTS,  /* GET: DONE, then the file's bytes */
} ResultKind;

typedef struct
{
  guint8      request;      /* FS, GET or PUT */
  guint32     op;
  char       *path;
  char       *path2;
  gboolean    has_mode;
  guint32     mode;
  guint32     flags;
  gboolean    has_mtime;
  gint64      mtime_ns;
  GBytes     *contents;     /* PUT */
  const char *verb;
  ResultKind  kind;
  gboolean    port_only;    /* GET, PUT: never through the agent */

  /* worker */
  GByteArray       *collected;
  GBytes           *done;
  gboolean          seen_done;
  QleanGuestStream *stream;         /* borrowed; open until the task returns */
  GSource          *cancel_source;  /* holds the task until it returns */
} FsRequest;

static void
fs_request_free (FsRequest *req)
{
  g_assert (req->cancel_source == NULL);
  g_free (req->path);
  g_free (req->path2);
  g_clear_pointer (&req->contents, g_bytes_unref);
  g_clear_pointer (&req->collected, g_byte_array_unref);
  g_clear_pointer (&req->done, g_bytes_unref);
  g_free (req);
}

static FsRequest *
fs_request_new (guint32     op,
                const char *path,
                const char *path2,
                const char *verb)
{
  FsRequest *req = g_new0 (FsRequest, 1);

  req->request = QLEAN_GUEST_FRAME_FS;
  req->op = op;
  req->path = g_strdup (path);
  req->path2 = g_strdup (path2);
  req->verb = verb;
  req->collected = g_byte_array_new ();
  return req;
}

static GBytes *
fs_request_encode (FsRequest *req)
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

/* The message names the call, the guest path (which may not be UTF-8)
 * and the machine, and keeps the guest's errno as the code. */
GError *
qlean_machine_fs_error (QleanMachine *machine,
                        const char   *verb,
                        const char   *path,
                        const char   *path2,
                        GBytes       *payload)
{
  g_autofree char *display = g_filename_display_name (path);
  g_autofree char *display2 = path2 ? g_filename_display_name (path2) : NULL;
  g_autofree char *what = NULL;

  if (display2 != NULL)
    what = g_strdup_printf (_("Cannot %s “%s” and “%s” in machine “%s”"), _(verb), display,
                            display2, qlean_machine_get_name (machine));
  else
    what = g_strdup_printf (_("Cannot %s “%s” in machine “%s”"), _(verb), display,
                            qlean_machine_get_name (machine));

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
qlean_machine_fs_stream_error (QleanMachine *machine,
                               const char   *verb,
                               const char   *display,
                               const GError *error)
{
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

  return g_error_new (domain, code, _("Cannot %s “%s” in machine “%s”: %s"), _(verb), display,
                      qlean_machine_get_name (machine), error->message);
}

static gsize contents_limit (FsRequest *req);

/* Worker: ends the call, and the stream if it is still open. */
static void
fs_return (GTask  *task,
           GError *error)
{
  FsRequest *req = g_task_get_task_data (task);
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
  FsRequest *req = g_task_get_task_data (task);
  GError *error = NULL;

  if (req->stream != NULL)
    {
      qlean_guest_stream_send_signal (req->stream, SIGTERM);
      g_cancellable_set_error_if_cancelled (cancellable, &error);
      fs_return (task, error);
    }

  return G_SOURCE_REMOVE;
}

static void
fs_stream_cb (QleanGuestStream *stream,
              guint8            type,
              guint8            fd,
              GBytes           *payload,
              const GError     *error,
              gpointer          user_data)
{
  GTask *task = user_data;
  FsRequest *req = g_task_get_task_data (task);
  QleanMachine *machine = g_task_get_source_object (task);

  /* Ended already (fs_return): only a stream opened on a channel that
   * had just closed still reports that. */
  if (req->stream == NULL)
    return;

  switch (type)
    {
    case 0:
      {
        g_autofree char *display = qlean_machine_fs_display_path (req->path);

        /* The channel closed (the guest went away), or it lives on and
         * only this call waited too long or could not be sent. */
        fs_return (task, qlean_machine_fs_stream_error (machine, req->verb, display, error));
        return;
      }

    case QLEAN_GUEST_FRAME_ERROR:
      fs_return (task, qlean_machine_fs_error (machine, req->verb, req->path, req->path2, payload));
      return;

    case QLEAN_GUEST_FRAME_DATA:
      if (req->kind == RESULT_CONTENTS &&
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
      return;

    case QLEAN_GUEST_FRAME_DONE:
      req->done = g_bytes_ref (payload);
      if (req->kind == RESULT_LISTING)
        g_byte_array_append (req->collected, g_bytes_get_data (payload, NULL), g_bytes_get_size (payload));
      if (req->kind == RESULT_CONTENTS)
        return;  /* the data follows */
      break;

    case QLEAN_GUEST_FRAME_EOF:
      if (req->kind != RESULT_CONTENTS || req->done == NULL)
        return;
      break;

    default:
      return;
    }

  fs_return (task, NULL);
}

static void
fs_channel_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  FsRequest *req = g_task_get_task_data (task);
  g_autoptr(QleanGuestChannel) channel = NULL;
  g_autoptr(GBytes) request = NULL;
  g_autoptr(QleanGuestStream) stream = NULL;
  GError *error = NULL;

  channel = qlean_machine_get_guest_channel_finish (QLEAN_MACHINE (source), result, &error);
  if (channel == NULL && g_error_matches (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED))
    {
      g_autofree char *display = g_filename_display_name (req->path);

      /* The machine's transport is qlean-guest, which does not answer
       * (the message says so): the call fails rather than switching. */
      g_task_return_new_error (task, error->domain, error->code, _("Cannot %s “%s”: %s"),
                               _(req->verb), display, error->message);
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
    qlean_guest_stream_set_timeout (stream, qlean_machine_get_guest_timeout (QLEAN_MACHINE (source)));
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

  qlean_machine_get_guest_channel_async (g_task_get_source_object (task),
                                         g_task_get_cancellable (task),
                                         fs_channel_cb, g_object_ref (task));
  return G_SOURCE_REMOVE;
}

static GTask *fs_request_run (QleanMachine  *self,
                              FsRequest     *req,
                              GCancellable  *cancellable,
                              GError       **error);

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
  FsRequest *req = task_data;
  g_autoptr(QleanGuestChannel) channel = NULL;
  GError *error = NULL;
  gboolean ok;

  channel = qlean_machine_fs_pick_channel (self, cancellable, &error);
  if (channel == NULL && error != NULL)
    {
      g_task_return_error (task, error);
      return;
    }

  if (channel != NULL)
    {
      FsRequest *port = fs_request_new (req->op, req->path, req->path2, req->verb);
      g_autoptr(GTask) done = NULL;

      port->request = req->request;
      port->kind = req->kind;
      port->has_mode = req->has_mode;
      port->mode = req->mode;
      port->flags = req->flags;
      port->contents = req->contents ? g_bytes_ref (req->contents) : NULL;
      port->port_only = TRUE;
      done = fs_request_run (self, port, cancellable, &error);
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

  if (req->request == QLEAN_GUEST_FRAME_GET)
    ok = qlean_machine_agent_get (self, req->path, NULL, req->collected, cancellable, &error);
  else
    ok = qlean_machine_agent_put (self, req->path, NULL, req->contents, req->mode, -1,
                                  cancellable, &error);

  if (ok)
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

/* The other calls on a machine whose transport is the agent: its own
 * backend, which answers as qlean-guest would. */
static void
fs_agent_backend_thread (GTask        *task,
                         gpointer      source_object,
                         gpointer      task_data,
                         GCancellable *cancellable)
{
  FsRequest *req = task_data;
  GError *error = NULL;

  if (!qlean_guest_backend_agent_fs (source_object, req->op, req->path, req->path2, req->has_mode,
                                     req->mode, req->flags, req->mtime_ns, req->verb, &req->done,
                                     req->collected,
                                     cancellable, &error))
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
}

static void
fs_request_async (QleanMachine        *self,
                  FsRequest           *req,
                  GCancellable        *cancellable,
                  gpointer             source_tag,
                  GAsyncReadyCallback  callback,
                  gpointer             user_data)
{
  GTask *task = g_task_new (self, cancellable, callback, user_data);
  g_autoptr(GError) error = NULL;

  g_task_set_source_tag (task, source_tag);
  g_task_set_name (task, "[qlean] guest file system call");
  g_task_set_task_data (task, req, (GDestroyNotify) fs_request_free);

  if (!qlean_machine_check_running (self, req->verb, &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      g_object_unref (task);
      return;
    }

  /* The agent speaks JSON, whose strings are UTF-8: another path cannot
   * reach the guest that way. */
  if (qlean_machine_uses_agent_only (self) &&
      (!g_utf8_validate (req->path, -1, NULL) ||
       (req->path2 != NULL && !g_utf8_validate (req->path2, -1, NULL))))
    {
      g_autofree char *display = g_filename_display_name (req->path2 != NULL &&
                                                          g_utf8_validate (req->path, -1, NULL) ?
                                                          req->path2 : req->path);

      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_INVALID_FILENAME,
                               _("Cannot %s “%s” in machine “%s”: the path is not UTF-8, which "
                                 "the QEMU guest agent cannot carry; use the qlean-guest transport "
                                 "for such paths"),
                               _(req->verb), display, qlean_machine_get_name (self));
      g_object_unref (task);
      return;
    }

  /* The transport of the run decides; before it is decided (Qlean's own
   * start-up calls), an answering qlean-guest does. */
  if ((req->request == QLEAN_GUEST_FRAME_GET || req->request == QLEAN_GUEST_FRAME_PUT) &&
      !req->port_only &&
      qlean_machine_get_guest_transport (self) != QLEAN_GUEST_TRANSPORT_QLEAN_GUEST)
    {
      g_autoptr(QleanGuestChannel) channel = qlean_machine_dup_guest_channel (self);

      if (qlean_machine_uses_agent_only (self) ||
          (channel != NULL && !qlean_guest_channel_is_ready (channel)))
        {
          g_task_run_in_thread (task, fs_agent_thread);
          g_object_unref (task);
          return;
        }
    }

  if (req->request == QLEAN_GUEST_FRAME_FS && qlean_machine_uses_agent_only (self))
    {
      g_task_run_in_thread (task, fs_agent_backend_thread);
      g_object_unref (task);
      return;
    }

  qlean_worker_invoke (fs_in_worker, task, g_object_unref);
}

/* On success, the request with what the guest answered. */
static FsRequest *
fs_request_finish (QleanMachine  *self,
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
static GTask *
fs_request_run (QleanMachine  *self,
                FsRequest     *req,
                GCancellable  *cancellable,
                GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };
  GAsyncResult *result;

  qlean_sync_call_init (&call);
  fs_request_async (self, req, cancellable, fs_request_run, qlean_sync_call_done, &call);
  result = qlean_sync_call_wait (&call);

  if (fs_request_finish (self, result, error) == NULL)
    return NULL;

  return g_object_ref (G_TASK (result));
}

static gboolean
find_tag (GBytes        *payload,
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
contents_limit (FsRequest *req)
{
  const guint8 *value;
  gsize len;
  guint64 size = 0;

  if (req->done != NULL && find_tag (req->done, QLEAN_GUEST_TAG_SIZE, &value, &len) && len >= 8)
    size = qlean_guest_read_u64 (value);

  if (size > G_MAXSIZE - QLEAN_GUEST_FS_DATA_LIMIT)
    return G_MAXSIZE;
  return (gsize) size + QLEAN_GUEST_FS_DATA_LIMIT;
}

/* COPY's SIZE, or -1 with @error set: the guest may send any 64 bits,
 * and a size above G_MAXINT64 would come out as a negative count (-1
 * among them, which says "failed" without an error). */
static gint64
copied_size (QleanMachine  *machine,
             FsRequest     *req,
             GError       **error)
{
  g_autofree char *display = g_filename_display_name (req->path);
  const guint8 *value;
  gsize len;
  guint64 size;

  if (req->done == NULL || !find_tag (req->done, QLEAN_GUEST_TAG_SIZE, &value, &len) || len < 8)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   _("Cannot copy “%s” in machine “%s”: qlean-guest did not say how many bytes "
                     "it copied"), display, qlean_machine_get_name (machine));
      return -1;
    }

  size = qlean_guest_read_u64 (value);
  if (size > G_MAXINT64)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   _("Cannot copy “%s” in machine “%s”: qlean-guest reported an impossible size "
                     "(%" G_GUINT64_FORMAT " bytes)"), display, qlean_machine_get_name (machine), size);
      return -1;
    }

  return (gint64) size;
}

/* GFileInfo from the guest's stat */

static GFileType
file_type_from_mode (guint32 mode)
{
  switch (mode & S_IFMT)
    {
    case S_IFREG: return G_FILE_TYPE_REGULAR;
    case S_IFDIR: return G_FILE_TYPE_DIRECTORY;
    case S_IFLNK: return G_FILE_TYPE_SYMBOLIC_LINK;
    default: return G_FILE_TYPE_SPECIAL;
    }
}

static void
set_time (GFileInfo  *info,
          const char *seconds_attr,
          const char *usec_attr,
          gint64      ns)
{
  g_file_info_set_attribute_uint64 (info, seconds_attr, (guint64) (ns / G_GINT64_CONSTANT (1000000000)));
  g_file_info_set_attribute_uint32 (info, usec_attr, (guint32) ((ns % G_GINT64_CONSTANT (1000000000)) / 1000));
}

GFileInfo *
qlean_file_info_from_stat (const QleanGuestStat *st,
                           const char           *name,
                           const char           *symlink_target,
                           gboolean              is_symlink)
{
  GFileInfo *info = g_file_info_new ();
  g_autofree char *display = NULL;

  if (name != NULL)
    {
      display = g_filename_display_name (name);
      g_file_info_set_name (info, name);
      g_file_info_set_display_name (info, display);
    }
  g_file_info_set_file_type (info, file_type_from_mode (st->mode));
  g_file_info_set_size (info, (goffset) st->size);
  g_file_info_set_is_symlink (info, is_symlink);
  if (symlink_target != NULL)
    g_file_info_set_symlink_target (info, symlink_target);
  g_file_info_set_attribute_uint32 (info, G_FILE_ATTRIBUTE_UNIX_MODE, st->mode);
  g_file_info_set_attribute_uint32 (info, G_FILE_ATTRIBUTE_UNIX_UID, st->uid);
  g_file_info_set_attribute_uint32 (info, G_FILE_ATTRIBUTE_UNIX_GID, st->gid);
  g_file_info_set_attribute_uint32 (info, G_FILE_ATTRIBUTE_UNIX_NLINK, st->nlink);
  g_file_info_set_attribute_uint64 (info, G_FILE_ATTRIBUTE_UNIX_INODE, st->ino);
  set_time (info, G_FILE_ATTRIBUTE_TIME_MODIFIED, G_FILE_ATTRIBUTE_TIME_MODIFIED_USEC, st->mtime_ns);
  set_time (info, G_FILE_ATTRIBUTE_TIME_ACCESS, G_FILE_ATTRIBUTE_TIME_ACCESS_USEC, st->atime_ns);
  set_time (info, G_FILE_ATTRIBUTE_TIME_CHANGED, G_FILE_ATTRIBUTE_TIME_CHANGED_USEC, st->ctime_ns);

  return info;
}

static GFileInfo *
info_from_done (FsRequest  *req,
                GError    **error)
{
  const guint8 *value;
  gsize len;
  QleanGuestStat st;
  g_autofree char *target = NULL;
  g_autofree char *name = g_path_get_basename (req->path);

  if (req->done == NULL || !find_tag (req->done, QLEAN_GUEST_TAG_STAT, &value, &len) ||
      !qlean_guest_decode_stat (value, len, &st))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   _("qlean-guest answered a stat without the file's status"));
      return NULL;
    }

  /* TARGET comes whenever PATH itself is a link, followed or not. */
  if (find_tag (req->done, QLEAN_GUEST_TAG_TARGET, &value, &len))
    target = g_strndup ((const char *) value, len);

  return qlean_file_info_from_stat (&st, name, target, target != NULL);
}

/* Boolean calls */

static gboolean
fs_bool_finish (QleanMachine  *self,
                GAsyncResult  *result,
                GError       **error)
{
  return fs_request_finish (self, result, error) != NULL;
}

static gboolean
fs_bool_run (QleanMachine  *self,
             FsRequest     *req,
             GCancellable  *cancellable,
             GError       **error)
{
  g_autoptr(GTask) task = fs_request_run (self, req, cancellable, error);

  return task != NULL;
}

static FsRequest *
mkdir_request (const char *path,
               gboolean    all)
{
  FsRequest *req = fs_request_new (QLEAN_GUEST_FS_MKDIR, path, NULL, N_("create directory"));

  req->has_mode = TRUE;
  req->mode = 0755;
  req->flags = all ? QLEAN_GUEST_FLAG_PARENTS : 0;
  return req;
}

/**
 * qlean_machine_create_dir_async:
 * @self: a running #QleanMachine
 * @path: (type filename): a path in the guest
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when done
 * @user_data: data for @callback
 *
 * Creates the directory @path, mode 0755, like Rust's
 * `std::fs::create_dir`: it fails with %G_IO_ERROR_EXISTS when anything
 * exists there, and with %G_IO_ERROR_NOT_FOUND when its parent does not.
 */
void
qlean_machine_create_dir_async (QleanMachine        *self,
                                const char          *path,
                                GCancellable        *cancellable,
                                GAsyncReadyCallback  callback,
                                gpointer             user_data)
{
  fs_request_async (self, mkdir_request (path, FALSE), cancellable,
                    qlean_machine_create_dir_async, callback, user_data);
}

/**
 * qlean_machine_create_dir_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when the directory was made
 */
gboolean
qlean_machine_create_dir_finish (QleanMachine  *self,
                                 GAsyncResult  *result,
                                 GError       **error)
{
  return fs_bool_finish (self, result, error);
}

/**
 * qlean_machine_create_dir:
 * @self: a running #QleanMachine
 * @path: (type filename): a path in the guest
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_create_dir_async().
 *
 * Returns: %TRUE when the directory was made
 */
gboolean
qlean_machine_create_dir (QleanMachine  *self,
                          const char    *path,
                          GCancellable  *cancellable,
                          GError       **error)
{
  return fs_bool_run (self, mkdir_request (path, FALSE), cancellable, error);
}

/**
 * qlean_machine_create_dir_all_async:
 * @self: a running #QleanMachine
 * @path: (type filename): a path in the guest
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when done
 * @user_data: data for @callback
 *
 * Creates the directory @path and any missing parents, mode 0755, like
 * `std::fs::create_dir_all`: succeeds when it already is a directory.
 */
void
qlean_machine_create_dir_all_async (QleanMachine        *self,
                                    const char          *path,
                                    GCancellable        *cancellable,
                                    GAsyncReadyCallback  callback,
                                    gpointer             user_data)
{
  fs_request_async (self, mkdir_request (path, TRUE), cancellable,
                    qlean_machine_create_dir_all_async, callback, user_data);
}

/**
 * qlean_machine_create_dir_all_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when the directory exists
 */
gboolean
qlean_machine_create_dir_all_finish (QleanMachine  *self,
                                     GAsyncResult  *result,
                                     GError       **error)
{
  return fs_bool_finish (self, result, error);
}

/**
 * qlean_machine_create_dir_all:
 * @self: a running #QleanMachine
 * @path: (type filename): a path in the guest
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_create_dir_all_async().
 *
 * Returns: %TRUE when the directory exists
 */
gboolean
qlean_machine_create_dir_all (QleanMachine  *self,
                              const char    *path,
                              GCancellable  *cancellable,
                              GError       **error)
{
  return fs_bool_run (self, mkdir_request (path, TRUE), cancellable, error);
}

#define DEFINE_PATH_CALL(name, OP, verb, doc_summary)                           \
  void                                                                          \
  qlean_machine_##name##_async (QleanMachine        *self,                      \
                                const char          *path,                      \
                                GCancellable        *cancellable,               \
                                GAsyncReadyCallback  callback,                  \
                                gpointer             user_data)                 \
  {                                                                             \
    fs_request_async (self, fs_request_new (OP, path, NULL, verb), cancellable, \
                      qlean_machine_##name##_async, callback, user_data);       \
  }                                                                             \
  gboolean                                                                      \
  qlean_machine_##name##_finish (QleanMachine  *self,                           \
                                 GAsyncResult  *result,                         \
                                 GError       **error)                          \
  {                                                                             \
    return fs_bool_finish (self, result, error);                                \
  }                                                                             \
  gboolean                                                                      \
  qlean_machine_##name (QleanMachine  *self,                                    \
                        const char    *path,                                    \
                        GCancellable  *cancellable,                             \
                        GError       **error)                                   \
  {                                                                             \
    return fs_bool_run (self, fs_request_new (OP, path, NULL, verb),            \
                        cancellable, error);                                    \
  }

#define DEFINE_TWO_PATH_CALL(name, OP, verb, first, second)                     \
  void                                                                          \
  qlean_machine_##name##_async (QleanMachine        *self,                      \
                                const char          *first,                     \
                                const char          *second,                    \
                                GCancellable        *cancellable,               \
                                GAsyncReadyCallback  callback,                  \
                                gpointer             user_data)                 \
  {                                                                             \
    fs_request_async (self, fs_request_new (OP, first, second, verb),           \
                      cancellable, qlean_machine_##name##_async, callback,      \
                      user_data);                                               \
  }                                                                             \
  gboolean                                                                      \
  qlean_machine_##name##_finish (QleanMachine  *self,                           \
                                 GAsyncResult  *result,                         \
                                 GError       **error)                          \
  {                                                                             \
    return fs_bool_finish (self, result, error);                                \
  }                                                                             \
  gboolean                                                                      \
  qlean_machine_##name (QleanMachine  *self,                                    \
                        const char    *first,                                   \
                        const char    *second,                                  \
                        GCancellable  *cancellable,                             \
                        GError       **error)                                   \
  {                                                                             \
    return fs_bool_run (self, fs_request_new (OP, first, second, verb),         \
                        cancellable, error);                                    \
  }

/**
 * qlean_machine_remove_file_async:
 * @self: a running #QleanMachine
 * @path: (type filename): a path in the guest
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when done
 * @user_data: data for @callback
 *
 * Removes the file or symbolic link @path, like `std::fs::remove_file`;
 * on a directory it fails with %G_IO_ERROR_IS_DIRECTORY.
 */
/**
 * qlean_machine_remove_file_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when the file is gone
 */
/**
 * qlean_machine_remove_file:
 * @self: a running #QleanMachine
 * @path: (type filename): a path in the guest
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_remove_file_async().
 *
 * Returns: %TRUE when the file is gone
 */
DEFINE_PATH_CALL (remove_file, QLEAN_GUEST_FS_UNLINK, N_("remove"), "")

/**
 * qlean_machine_remove_dir_async:
 * @self: a running #QleanMachine
 * @path: (type filename): a path in the guest
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when done
 * @user_data: data for @callback
 *
 * Removes the empty directory @path, like `std::fs::remove_dir`; fails
 * with %G_IO_ERROR_NOT_EMPTY when it has entries.
 */
/**
 * qlean_machine_remove_dir_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when the directory is gone
 */
/**
 * qlean_machine_remove_dir:
 * @self: a running #QleanMachine
 * @path: (type filename): a path in the guest
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_remove_dir_async().
 *
 * Returns: %TRUE when the directory is gone
 */
DEFINE_PATH_CALL (remove_dir, QLEAN_GUEST_FS_RMDIR, N_("remove directory"), "")

/**
 * qlean_machine_remove_dir_all_async:
 * @self: a running #QleanMachine
 * @path: (type filename): a path in the guest
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when done
 * @user_data: data for @callback
 *
 * Removes @path and everything below it, like `std::fs::remove_dir_all`.
 * Symbolic links inside are removed, never followed.
 */
/**
 * qlean_machine_remove_dir_all_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when the tree is gone
 */
/**
 * qlean_machine_remove_dir_all:
 * @self: a running #QleanMachine
 * @path: (type filename): a path in the guest
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_remove_dir_all_async().
 *
 * Returns: %TRUE when the tree is gone
 */
DEFINE_PATH_CALL (remove_dir_all, QLEAN_GUEST_FS_REMOVE_ALL, N_("remove"), "")

/**
 * qlean_machine_rename_async:
 * @self: a running #QleanMachine
 * @from: (type filename): a path in the guest
 * @to: (type filename): its new path
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when done
 * @user_data: data for @callback
 *
 * Renames @from to @to, replacing @to when it exists, as rename(2) and
 * `std::fs::rename` do.
 */
/**
 * qlean_machine_rename_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when renamed
 */
/**
 * qlean_machine_rename:
 * @self: a running #QleanMachine
 * @from: (type filename): a path in the guest
 * @to: (type filename): its new path
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_rename_async().
 *
 * Returns: %TRUE when renamed
 */
DEFINE_TWO_PATH_CALL (rename, QLEAN_GUEST_FS_RENAME, N_("rename"), from, to)

/**
 * qlean_machine_hard_link_async:
 * @self: a running #QleanMachine
 * @original: (type filename): an existing file in the guest
 * @link: (type filename): the new name for it
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when done
 * @user_data: data for @callback
 *
 * Makes @link a hard link to @original, like `std::fs::hard_link`.
 */
/**
 * qlean_machine_hard_link_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when linked
 */
/**
 * qlean_machine_hard_link:
 * @self: a running #QleanMachine
 * @original: (type filename): an existing file in the guest
 * @link: (type filename): the new name for it
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_hard_link_async().
 *
 * Returns: %TRUE when linked
 */
DEFINE_TWO_PATH_CALL (hard_link, QLEAN_GUEST_FS_LINK, N_("link"), original, link)

/**
 * qlean_machine_symlink_async:
 * @self: a running #QleanMachine
 * @target: (type filename): what the link points to, stored as given
 * @link: (type filename): the link to make
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when done
 * @user_data: data for @callback
 *
 * Makes @link a symbolic link to @target, like
 * `std::os::unix::fs::symlink`.
 */
/**
 * qlean_machine_symlink_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when made
 */
/**
 * qlean_machine_symlink:
 * @self: a running #QleanMachine
 * @target: (type filename): what the link points to, stored as given
 * @link: (type filename): the link to make
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_symlink_async().
 *
 * Returns: %TRUE when made
 */
DEFINE_TWO_PATH_CALL (symlink, QLEAN_GUEST_FS_SYMLINK, N_("make symbolic link"), target, link)

/* copy */

/**
 * qlean_machine_copy_async:
 * @self: a running #QleanMachine
 * @from: (type filename): a file in the guest
 * @to: (type filename): where to copy it
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when done
 * @user_data: data for @callback
 *
 * Copies the contents and permission bits of @from to @to, replacing
 * @to, like `std::fs::copy`. Directories are refused with
 * %G_IO_ERROR_IS_DIRECTORY.
 */
void
qlean_machine_copy_async (QleanMachine        *self,
                          const char          *from,
                          const char          *to,
                          GCancellable        *cancellable,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  fs_request_async (self, fs_request_new (QLEAN_GUEST_FS_COPY, from, to, N_("copy")),
                    cancellable, qlean_machine_copy_async, callback, user_data);
}

/**
 * qlean_machine_copy_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: the number of bytes copied, or -1 with @error set
 */
gint64
qlean_machine_copy_finish (QleanMachine  *self,
                           GAsyncResult  *result,
                           GError       **error)
{
  FsRequest *req = fs_request_finish (self, result, error);

  return req ? copied_size (self, req, error) : -1;
}

/**
 * qlean_machine_copy:
 * @self: a running #QleanMachine
 * @from: (type filename): a file in the guest
 * @to: (type filename): where to copy it
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_copy_async().
 *
 * Returns: the number of bytes copied, or -1 with @error set
 */
gint64
qlean_machine_copy (QleanMachine  *self,
                    const char    *from,
                    const char    *to,
                    GCancellable  *cancellable,
                    GError       **error)
{
  g_autoptr(GTask) task = fs_request_run (self, fs_request_new (QLEAN_GUEST_FS_COPY, from, to, N_("copy")),
                                          cancellable, error);

  return task ? copied_size (self, g_task_get_task_data (task), error) : -1;
}

/* set_permissions */

static FsRequest *
chmod_request (const char *path,
               guint       mode)
{
  FsRequest *req = fs_request_new (QLEAN_GUEST_FS_CHMOD, path, NULL, N_("change the permissions of"));

  req->has_mode = TRUE;
  req->mode = mode & 07777;
  return req;
}

/**
 * qlean_machine_set_permissions_async:
 * @self: a running #QleanMachine
 * @path: (type filename): a path in the guest
 * @mode: permission bits, e.g. 0750 (set-id and sticky bits included)
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when done
 * @user_data: data for @callback
 *
 * Sets the permission bits of @path, following a symbolic link, like
 * `std::fs::set_permissions`.
 */
void
qlean_machine_set_permissions_async (QleanMachine        *self,
                                     const char          *path,
                                     guint                mode,
                                     GCancellable        *cancellable,
                                     GAsyncReadyCallback  callback,
                                     gpointer             user_data)
{
  fs_request_async (self, chmod_request (path, mode), cancellable,
                    qlean_machine_set_permissions_async, callback, user_data);
}

/**
 * qlean_machine_set_permissions_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when set
 */
gboolean
qlean_machine_set_permissions_finish (QleanMachine  *self,
                                      GAsyncResult  *result,
                                      GError       **error)
{
  return fs_bool_finish (self, result, error);
}

/**
 * qlean_machine_set_permissions:
 * @self: a running #QleanMachine
 * @path: (type filename): a path in the guest
 * @mode: permission bits
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_set_permissions_async().
 *
 * Returns: %TRUE when set
 */
gboolean
qlean_machine_set_permissions (QleanMachine  *self,
                               const char    *path,
                               guint          mode,
                               GCancellable  *cancellable,
                               GError       **error)
{
  return fs_bool_run (self, chmod_request (path, mode), cancellable, error);
}

/* metadata, symlink_metadata, exists */

static FsRequest *
stat_request (const char *path,
              gboolean    follow)
{
  FsRequest *req = fs_request_new (QLEAN_GUEST_FS_STAT, path, NULL, N_("get the metadata of"));

  req->flags = follow ? 0 : QLEAN_GUEST_FLAG_NOFOLLOW;
  return req;
}

static GFileInfo *
stat_finish (QleanMachine  *self,
             GAsyncResult  *result,
             GError       **error)
{
  FsRequest *req = fs_request_finish (self, result, error);

  return req ? info_from_done (req, error) : NULL;
}

static GFileInfo *
stat_run (QleanMachine  *self,
          FsRequest     *req,
          GCancellable  *cancellable,
          GError       **error)
{
  g_autoptr(GTask) task = fs_request_run (self, req, cancellable, error);

  return task ? info_from_done (g_task_get_task_data (task), error) : NULL;
}

/**
 * qlean_machine_metadata_async:
 * @self: a running #QleanMachine
 * @path: (type filename): a path in the guest
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the metadata
 * @user_data: data for @callback
 *
 * The metadata of @path, following symbolic links, like
 * `std::fs::metadata`. The #GFileInfo has `standard::name`,
 * `standard::type`, `standard::size`, `standard::is-symlink` and
 * `standard::symlink-target` (set when @path itself is a link),
 * `unix::mode`, `unix::uid`, `unix::gid`, `unix::nlink`, `unix::inode`,
 * and `time::modified`, `time::access`, `time::changed` with their
 * `-usec` parts.
 */
void
qlean_machine_metadata_async (QleanMachine        *self,
                              const char          *path,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data)
{
  fs_request_async (self, stat_request (path, TRUE), cancellable,
                    qlean_machine_metadata_async, callback, user_data);
}

/**
 * qlean_machine_metadata_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the metadata, or %NULL with @error set
 */
GFileInfo *
qlean_machine_metadata_finish (QleanMachine  *self,
                               GAsyncResult  *result,
                               GError       **error)
{
  return stat_finish (self, result, error);
}

/**
 * qlean_machine_metadata:
 * @self: a running #QleanMachine
 * @path: (type filename): a path in the guest
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_metadata_async().
 *
 * Returns: (transfer full): the metadata, or %NULL with @error set
 */
GFileInfo *
qlean_machine_metadata (QleanMachine  *self,
                        const char    *path,
                        GCancellable  *cancellable,
                        GError       **error)
{
  return stat_run (self, stat_request (path, TRUE), cancellable, error);
}

/**
 * qlean_machine_symlink_metadata_async:
 * @self: a running #QleanMachine
 * @path: (type filename): a path in the guest
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the metadata
 * @user_data: data for @callback
 *
 * Like qlean_machine_metadata_async(), but a symbolic link describes
 * itself (type %G_FILE_TYPE_SYMBOLIC_LINK), like
 * `std::fs::symlink_metadata`.
 */
void
qlean_machine_symlink_metadata_async (QleanMachine        *self,
                                      const char          *path,
                                      GCancellable        *cancellable,
                                      GAsyncReadyCallback  callback,
                                      gpointer             user_data)
{
  fs_request_async (self, stat_request (path, FALSE), cancellable,
                    qlean_machine_symlink_metadata_async, callback, user_data);
}

/**
 * qlean_machine_symlink_metadata_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the metadata, or %NULL with @error set
 */
GFileInfo *
qlean_machine_symlink_metadata_finish (QleanMachine  *self,
                                       GAsyncResult  *result,
                                       GError       **error)
{
  return stat_finish (self, result, error);
}

/**
 * qlean_machine_symlink_metadata:
 * @self: a running #QleanMachine
 * @path: (type filename): a path in the guest
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_symlink_metadata_async().
 *
 * Returns: (transfer full): the metadata, or %NULL with @error set
 */
GFileInfo *
qlean_machine_symlink_metadata (QleanMachine  *self,
                                const char    *path,
                                GCancellable  *cancellable,
                                GError       **error)
{
  return stat_run (self, stat_request (path, FALSE), cancellable, error);
}

static gboolean
exists_from (gboolean   found,
             GError    *local_error,
             GError   **error)
{
  if (found)
    return TRUE;

  /* Missing, or a dangling link: not there. Anything else is an error. */
  if (g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
    {
      g_error_free (local_error);
      return FALSE;
    }

  g_propagate_error (error, local_error);
  return FALSE;
}

/**
 * qlean_machine_exists_async:
 * @self: a running #QleanMachine
 * @path: (type filename): a path in the guest
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the answer
 * @user_data: data for @callback
 *
 * Whether @path exists, following symbolic links (a dangling link does
 * not exist), like `std::path::Path::try_exists`.
 */
void
qlean_machine_exists_async (QleanMachine        *self,
                            const char          *path,
                            GCancellable        *cancellable,
                            GAsyncReadyCallback  callback,
                            gpointer             user_data)
{
  fs_request_async (self, stat_request (path, TRUE), cancellable,
                    qlean_machine_exists_async, callback, user_data);
}

/**
 * qlean_machine_exists_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when the path exists; %FALSE when it does not, or with
 *   @error set when that could not be found out (permissions, machine
 *   not running)
 */
gboolean
qlean_machine_exists_finish (QleanMachine  *self,
                             GAsyncResult  *result,
                             GError       **error)
{
  GError *local_error = NULL;
  gboolean found = fs_request_finish (self, result, &local_error) != NULL;

  return exists_from (found, local_error, error);
}

/**
 * qlean_machine_exists:
 * @self: a running #QleanMachine
 * @path: (type filename): a path in the guest
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_exists_async().
 *
 * Returns: %TRUE when the path exists
 */
gboolean
qlean_machine_exists (QleanMachine  *self,
                      const char    *path,
                      GCancellable  *cancellable,
                      GError       **error)
{
  GError *local_error = NULL;
  g_autoptr(GTask) task = fs_request_run (self, stat_request (path, TRUE), cancellable, &local_error);

  return exists_from (task != NULL, local_error, error);
}

/* read_link */

static char *
target_from (FsRequest  *req,
             GError    **error)
{
  const guint8 *value;
  gsize len;

  if (req->done == NULL || !find_tag (req->done, QLEAN_GUEST_TAG_TARGET, &value, &len))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   _("qlean-guest answered a read-link without the target"));
      return NULL;
    }

  return g_strndup ((const char *) value, len);
}

/**
 * qlean_machine_read_link_async:
 * @self: a running #QleanMachine
 * @path: (type filename): a symbolic link in the guest
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the target
 * @user_data: data for @callback
 *
 * Reads where the symbolic link @path points, like `std::fs::read_link`.
 * Fails with %G_IO_ERROR_INVALID_ARGUMENT when @path is not a link.
 */
void
qlean_machine_read_link_async (QleanMachine        *self,
                               const char          *path,
                               GCancellable        *cancellable,
                               GAsyncReadyCallback  callback,
                               gpointer             user_data)
{
  fs_request_async (self, fs_request_new (QLEAN_GUEST_FS_READLINK, path, NULL, N_("read the link")),
                    cancellable, qlean_machine_read_link_async, callback, user_data);
}

/**
 * qlean_machine_read_link_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: (transfer full) (type filename): the target, or %NULL with
 *   @error set
 */
char *
qlean_machine_read_link_finish (QleanMachine  *self,
                                GAsyncResult  *result,
                                GError       **error)
{
  FsRequest *req = fs_request_finish (self, result, error);

  return req ? target_from (req, error) : NULL;
}

/**
 * qlean_machine_read_link:
 * @self: a running #QleanMachine
 * @path: (type filename): a symbolic link in the guest
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_read_link_async().
 *
 * Returns: (transfer full) (type filename): the target, or %NULL with
 *   @error set
 */
char *
qlean_machine_read_link (QleanMachine  *self,
                         const char    *path,
                         GCancellable  *cancellable,
                         GError       **error)
{
  g_autoptr(GTask) task = fs_request_run (self,
                                          fs_request_new (QLEAN_GUEST_FS_READLINK, path, NULL,
                                                          N_("read the link")),
                                          cancellable, error);

  return task ? target_from (g_task_get_task_data (task), error) : NULL;
}

/* read_dir */

static GPtrArray *
listing_from (FsRequest  *req,
              GError    **error)
{
  g_autoptr(GPtrArray) entries = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GBytes) bytes = g_bytes_new (req->collected->data, req->collected->len);
  QleanGuestTlvIter iter;
  const guint8 *value;
  gboolean malformed = FALSE;
  guint16 tag;
  gsize len;

  qlean_guest_tlv_iter_init (&iter, bytes);
  while (qlean_guest_tlv_iter_next (&iter, &tag, &value, &len, &malformed))
    {
      QleanGuestStat st;
      g_autofree char *name = NULL;

      if (tag != QLEAN_GUEST_TAG_DIRENT)
        continue;
      if (!qlean_guest_decode_stat (value, len, &st))
        {
          malformed = TRUE;
          break;
        }

      name = g_strndup ((const char *) value + QLEAN_GUEST_STAT_SIZE, len - QLEAN_GUEST_STAT_SIZE);
      g_ptr_array_add (entries, qlean_file_info_from_stat (&st, name, NULL, S_ISLNK (st.mode)));
    }

  if (malformed)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   _("qlean-guest sent a malformed directory listing"));
      return NULL;
    }

  return g_steal_pointer (&entries);
}

static FsRequest *
readdir_request (const char *path)
{
  FsRequest *req = fs_request_new (QLEAN_GUEST_FS_READDIR, path, NULL, N_("list the directory"));

  req->kind = RESULT_LISTING;
  return req;
}

/**
 * qlean_machine_read_dir_async:
 * @self: a running #QleanMachine
 * @path: (type filename): a directory in the guest
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the entries
 * @user_data: data for @callback
 *
 * Lists the directory @path, like `std::fs::read_dir`: one #GFileInfo per
 * entry, without `.` and `..`, in no particular order, each describing
 * the entry itself (a symbolic link is not followed), with the same
 * attributes as qlean_machine_symlink_metadata_async() except the link
 * target.
 */
void
qlean_machine_read_dir_async (QleanMachine        *self,
                              const char          *path,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data)
{
  fs_request_async (self, readdir_request (path), cancellable,
                    qlean_machine_read_dir_async, callback, user_data);
}

/**
 * qlean_machine_read_dir_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: (transfer container) (element-type GFileInfo): the entries,
 *   or %NULL with @error set
 */
GPtrArray *
qlean_machine_read_dir_finish (QleanMachine  *self,
                               GAsyncResult  *result,
                               GError       **error)
{
  FsRequest *req = fs_request_finish (self, result, error);

  return req ? listing_from (req, error) : NULL;
}

/**
 * qlean_machine_read_dir:
 * @self: a running #QleanMachine
 * @path: (type filename): a directory in the guest
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_read_dir_async().
 *
 * Returns: (transfer container) (element-type GFileInfo): the entries,
 *   or %NULL with @error set
 */
GPtrArray *
qlean_machine_read_dir (QleanMachine  *self,
                        const char    *path,
                        GCancellable  *cancellable,
                        GError       **error)
{
  g_autoptr(GTask) task = fs_request_run (self, readdir_request (path), cancellable, error);

  return task ? listing_from (g_task_get_task_data (task), error) : NULL;
}

/* read, read_to_string */

static FsRequest *
get_request (const char *path)
{
  FsRequest *req = fs_request_new (0, path, NULL, N_("read"));

  req->request = QLEAN_GUEST_FRAME_GET;
  req->kind = RESULT_CONTENTS;
  return req;
}

static GBytes *
contents_from (FsRequest *req)
{
  return g_byte_array_free_to_bytes (g_steal_pointer (&req->collected));
}

static char *
text_from (QleanMachine  *self,
           FsRequest     *req,
           GError       **error)
{
  g_autoptr(GBytes) bytes = contents_from (req);
  gsize len;
  const char *data = g_bytes_get_data (bytes, &len);
  g_autofree char *display = NULL;

  if (data == NULL)
    return g_strdup ("");

  if (memchr (data, '\0', len) != NULL || !g_utf8_validate_len (data, len, NULL))
    {
      display = g_filename_display_name (req->path);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   _("“%s” in machine “%s” is not valid UTF-8 text; read it as bytes instead"),
                   display, qlean_machine_get_name (self));
      return NULL;
    }

  return g_strndup (data, len);
}

/**
 * qlean_machine_read_async:
 * @self: a running #QleanMachine
 * @path: (type filename): a file in the guest
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the contents
 * @user_data: data for @callback
 *
 * Reads the whole file @path, like `std::fs::read`. For big files,
 * qlean_machine_download_async() streams to disk instead. Where
 * qlean-guest does not answer, the guest agent's guest-file-* calls read
 * the file instead (slower; only this, write and single-file transfers
 * work without qlean-guest).
 */
void
qlean_machine_read_async (QleanMachine        *self,
                          const char          *path,
                          GCancellable        *cancellable,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  fs_request_async (self, get_request (path), cancellable, qlean_machine_read_async,
                    callback, user_data);
}

/**
 * qlean_machine_read_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the contents, or %NULL with @error set
 */
GBytes *
qlean_machine_read_finish (QleanMachine  *self,
                           GAsyncResult  *result,
                           GError       **error)
{
  FsRequest *req = fs_request_finish (self, result, error);

  return req ? contents_from (req) : NULL;
}

/**
 * qlean_machine_read:
 * @self: a running #QleanMachine
 * @path: (type filename): a file in the guest
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_read_async().
 *
 * Returns: (transfer full): the contents, or %NULL with @error set
 */
GBytes *
qlean_machine_read (QleanMachine  *self,
                    const char    *path,
                    GCancellable  *cancellable,
                    GError       **error)
{
  g_autoptr(GTask) task = fs_request_run (self, get_request (path), cancellable, error);

  return task ? contents_from (g_task_get_task_data (task)) : NULL;
}

/**
 * qlean_machine_read_to_string_async:
 * @self: a running #QleanMachine
 * @path: (type filename): a file in the guest
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the contents
 * @user_data: data for @callback
 *
 * Reads the whole file @path as text, like `std::fs::read_to_string`:
 * contents that are not UTF-8 (or hold a NUL byte) fail with
 * %G_IO_ERROR_INVALID_DATA.
 */
void
qlean_machine_read_to_string_async (QleanMachine        *self,
                                    const char          *path,
                                    GCancellable        *cancellable,
                                    GAsyncReadyCallback  callback,
                                    gpointer             user_data)
{
  fs_request_async (self, get_request (path), cancellable, qlean_machine_read_to_string_async,
                    callback, user_data);
}

/**
 * qlean_machine_read_to_string_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the text, or %NULL with @error set
 */
char *
qlean_machine_read_to_string_finish (QleanMachine  *self,
                                     GAsyncResult  *result,
                                     GError       **error)
{
  FsRequest *req = fs_request_finish (self, result, error);

  return req ? text_from (self, req, error) : NULL;
}

/**
 * qlean_machine_read_to_string:
 * @self: a running #QleanMachine
 * @path: (type filename): a file in the guest
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_read_to_string_async().
 *
 * Returns: (transfer full): the text, or %NULL with @error set
 */
char *
qlean_machine_read_to_string (QleanMachine  *self,
                              const char    *path,
                              GCancellable  *cancellable,
                              GError       **error)
{
  g_autoptr(GTask) task = fs_request_run (self, get_request (path), cancellable, error);

  return task ? text_from (self, g_task_get_task_data (task), error) : NULL;
}

/* write */

static FsRequest *
put_request (const char *path,
             GBytes     *contents)
{
  FsRequest *req = fs_request_new (0, path, NULL, N_("write"));

  req->request = QLEAN_GUEST_FRAME_PUT;
  req->contents = g_bytes_ref (contents);
  req->has_mode = TRUE;
  req->mode = 0644;
  return req;
}

/**
 * qlean_machine_write_async:
 * @self: a running #QleanMachine
 * @path: (type filename): a file in the guest
 * @contents: what the file will hold
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when done
 * @user_data: data for @callback
 *
 * Makes @path a file holding exactly @contents, like `std::fs::write`.
 * The new file (mode 0644) replaces any old one atomically: readers see
 * the old contents or the new, never a mix, and a failure (the guest's
 * disk full: %G_IO_ERROR_NO_SPACE) leaves the old file as it was. Missing
 * parent directories are an error (%G_IO_ERROR_NOT_FOUND). Where
 * qlean-guest does not answer, the guest agent writes the file instead.
 */
void
qlean_machine_write_async (QleanMachine        *self,
                           const char          *path,
                           GBytes              *contents,
                           GCancellable        *cancellable,
                           GAsyncReadyCallback  callback,
                           gpointer             user_data)
{
  fs_request_async (self, put_request (path, contents), cancellable, qlean_machine_write_async,
                    callback, user_data);
}

/**
 * qlean_machine_write_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when written
 */
gboolean
qlean_machine_write_finish (QleanMachine  *self,
                            GAsyncResult  *result,
                            GError       **error)
{
  return fs_bool_finish (self, result, error);
}

/**
 * qlean_machine_write:
 * @self: a running #QleanMachine
 * @path: (type filename): a file in the guest
 * @contents: what the file will hold
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_write_async().
 *
 * Returns: %TRUE when written
 */
gboolean
qlean_machine_write (QleanMachine  *self,
                     const char    *path,
                     GBytes        *contents,
                     GCancellable  *cancellable,
                     GError       **error)
{
  return fs_bool_run (self, put_request (path, contents), cancellable, error);
}

gboolean
qlean_machine_fs_set_mtime (QleanMachine  *self,
                            const char    *path,
                            gint64         mtime_ns,
                            GCancellable  *cancellable,
                            GError       **error)
{
  FsRequest *req = fs_request_new (QLEAN_GUEST_FS_UTIME, path, NULL, N_("set the time of"));

  req->has_mtime = TRUE;
  req->mtime_ns = mtime_ns;
  return fs_bool_run (self, req, cancellable, error);
}
