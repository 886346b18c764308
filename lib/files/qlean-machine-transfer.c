/* qlean-machine-transfer.c: one file's stream in or out of a machine
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <glib/gstdio.h>
#include <glib/gi18n-lib.h>
#include <gio/gunixoutputstream.h>

#include "qlean-error.h"
#include "qlean-guest-channel-private.h"
#include "qlean-guest-stream-dispatch-private.h"
#include "qlean-json-channel-private.h"
#include "qlean-machine-fs.h"
#include "qlean-machine-fs-private.h"
#include "qlean-machine-private.h"
#include "qlean-machine-transfer-private.h"
#include "qlean-sync-private.h"
#include "qlean-task-private.h"
#include "qlean-worker-private.h"
#include "qlean-errno-private.h"

/* Transfers run on a thread of their own (GTask's pool) and use blocking
 * calls: walking a tree and streaming files is sequential work, and the
 * blocking API works from any thread. Each file moves as one PUT or GET
 * stream on the data port, in 256 KiB chunks under the protocol's credit
 * window, so host memory stays bounded whatever the file's size.
 *
 * This file holds what both directions share: those streams, driven
 * from the transfer's thread through calls queued to the worker, and
 * the task that runs a transfer. The walks over a tree are apart, one
 * per direction: qlean-machine-upload.c and qlean-machine-download.c. */

#define CHUNK (256 * 1024)

/* One PUT or GET, shared by the transfer thread and the worker. */
typedef struct
{
  gatomicrefcount   ref_count;
  GMutex            lock;
  GCond             cond;
  QleanMachine     *machine;
  guint             timeout_ms;   /* per frame of qlean-guest (the run's) */
  char             *path;
  QleanFsAction     action;
  gboolean          is_get;
  QleanGuestStream *stream;       /* worker */
  gsize             outstanding;  /* PUT: bytes the guest has not credited */
  gboolean          done;
  GBytes           *done_payload;
  GError           *error;
  GAsyncQueue      *chunks;       /* GET: data, then the end marker */
} Transfer;

/* Queued after a GET's last chunk: any address that no GBytes has. */
static const char end_marker_storage;
#define END_MARKER ((gpointer) &end_marker_storage)

static Transfer *
transfer_ref (Transfer *t)
{
  g_atomic_ref_count_inc (&t->ref_count);
  return t;
}

static void
transfer_unref (Transfer *t)
{
  gpointer item;

  if (!g_atomic_ref_count_dec (&t->ref_count))
    return;

  g_assert (t->stream == NULL);
  while ((item = g_async_queue_try_pop (t->chunks)) != NULL)
    if (item != END_MARKER)
      g_bytes_unref (item);
  g_async_queue_unref (t->chunks);
  g_clear_pointer (&t->done_payload, g_bytes_unref);
  g_clear_error (&t->error);
  g_object_unref (t->machine);
  g_free (t->path);
  g_mutex_clear (&t->lock);
  g_cond_clear (&t->cond);
  g_free (t);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Transfer, transfer_unref)

static Transfer *
transfer_new (QleanMachine     *machine,
              QleanMachineRun  *run,
              const char       *path,
              QleanFsAction     action)
{
  Transfer *t = g_new0 (Transfer, 1);

  g_atomic_ref_count_init (&t->ref_count);
  g_mutex_init (&t->lock);
  g_cond_init (&t->cond);
  t->machine = g_object_ref (machine);
  t->timeout_ms = qlean_machine_run_get_guest_timeout (run);
  t->path = g_strdup (path);
  t->action = action;
  t->chunks = g_async_queue_new ();
  return t;
}

/* Worker: the end of the stream, whatever it was. */
static void
transfer_end (Transfer *t,
              GError   *error)
{
  if (t->stream != NULL)
    {
      qlean_guest_stream_close (t->stream);
      g_clear_pointer (&t->stream, qlean_guest_stream_unref);
    }

  g_mutex_lock (&t->lock);
  if (!t->done)
    {
      t->done = TRUE;
      t->error = error;
      error = NULL;
    }
  g_cond_broadcast (&t->cond);
  g_mutex_unlock (&t->lock);
  g_async_queue_push (t->chunks, END_MARKER);
  g_clear_error (&error);
}

/* The channel closed (the guest went away), or it lives on and only
 * this stream waited too long or could not be sent. */
static void
transfer_stream_closed (QleanGuestStream *stream,
                        const GError     *error,
                        gpointer          user_data)
{
  Transfer *t = user_data;

  g_clear_pointer (&t->stream, qlean_guest_stream_unref);
  transfer_end (t, qlean_machine_fs_stream_error (t->machine, t->action, t->path, NULL, error));
}

static void
transfer_stream_error (QleanGuestStream *stream,
                       GBytes           *payload,
                       gpointer          user_data)
{
  Transfer *t = user_data;

  transfer_end (t, qlean_machine_fs_error (t->machine, t->action, t->path, NULL, payload));
}

static void
transfer_stream_done (QleanGuestStream *stream,
                      GBytes           *payload,
                      gpointer          user_data)
{
  Transfer *t = user_data;

  g_mutex_lock (&t->lock);
  t->done_payload = g_bytes_ref (payload);
  g_cond_broadcast (&t->cond);
  g_mutex_unlock (&t->lock);
  /* A PUT ends here; a GET's data follows. */
  if (!t->is_get)
    transfer_end (t, NULL);
}

static void
transfer_stream_data (QleanGuestStream *stream,
                      guint8            fd,
                      GBytes           *payload,
                      gpointer          user_data)
{
  Transfer *t = user_data;

  g_async_queue_push (t->chunks, g_bytes_ref (payload));
}

static void
transfer_stream_eof (QleanGuestStream *stream,
                     guint8            fd,
                     gpointer          user_data)
{
  Transfer *t = user_data;

  if (fd == 1)
    transfer_end (t, NULL);
}

static const QleanGuestStreamHandlers transfer_stream_handlers = {
  .closed = transfer_stream_closed,
  .error = transfer_stream_error,
  .done = transfer_stream_done,
  .data = transfer_stream_data,
  .eof = transfer_stream_eof,
};

static void
transfer_stream_cb (QleanGuestStream *stream,
                    guint8            type,
                    guint8            fd,
                    GBytes           *payload,
                    const GError     *error,
                    gpointer          user_data)
{
  qlean_guest_stream_dispatch (&transfer_stream_handlers, stream, type, fd, payload, error,
                               user_data);
}

static gboolean
transfer_writable_cb (gpointer user_data)
{
  Transfer *t = user_data;

  g_mutex_lock (&t->lock);
  t->outstanding = t->stream ? qlean_guest_stream_get_unacked (t->stream) : 0;
  g_cond_broadcast (&t->cond);
  g_mutex_unlock (&t->lock);

  return G_SOURCE_REMOVE;
}

typedef struct
{
  Transfer          *transfer;
  QleanGuestChannel *channel;
  guint8             request;
  GBytes            *payload;   /* request TLV, or data */
  int                action;
} WorkerCall;

enum { OPEN, SEND, SEND_EOF, CANCEL, REFRESH };

static void
worker_call_free (WorkerCall *call)
{
  transfer_unref (call->transfer);
  g_clear_object (&call->channel);
  g_clear_pointer (&call->payload, g_bytes_unref);
  g_free (call);
}

static gboolean
worker_call_cb (gpointer user_data)
{
  WorkerCall *call = user_data;
  Transfer *t = call->transfer;

  switch (call->action)
    {
    case OPEN:
      t->stream = qlean_guest_channel_open_stream (call->channel, call->request, call->payload,
                                                   transfer_stream_cb, transfer_ref (t),
                                                   (GDestroyNotify) transfer_unref);
      qlean_guest_stream_set_writable_func (t->stream, transfer_writable_cb, t);
      qlean_guest_stream_set_timeout (t->stream, t->timeout_ms);
      break;
    case SEND:
      if (t->stream != NULL)
        qlean_guest_stream_send_data (t->stream, call->payload);
      break;
    case SEND_EOF:
      if (t->stream != NULL)
        qlean_guest_stream_send_eof (t->stream);
      break;
    case CANCEL:
      /* The guest answers ECANCELED and removes what it wrote. */
      if (t->stream != NULL)
        qlean_guest_stream_send_signal (t->stream, SIGTERM);
      break;
    case REFRESH:
      /* The writable callback comes only when the stream's own count
       * drops below half the window from above. A guest that credits
       * as fast as chunks arrive keeps it below half all along, while
       * the sending thread's count, which lags, reached the window: so
       * the sender asks here, after its chunks, before it waits. */
      if (t->stream != NULL && qlean_guest_stream_get_unacked (t->stream) < QLEAN_GUEST_WINDOW / 2)
        transfer_writable_cb (t);
      break;
    default:
      g_assert_not_reached ();
    }

  return G_SOURCE_REMOVE;
}

static void
worker_call (Transfer          *t,
             int                action,
             QleanGuestChannel *channel,
             guint8             request,
             GBytes            *payload)
{
  WorkerCall *call = g_new0 (WorkerCall, 1);

  call->transfer = transfer_ref (t);
  call->action = action;
  call->channel = channel ? g_object_ref (channel) : NULL;
  call->request = request;
  call->payload = payload ? g_bytes_ref (payload) : NULL;
  qlean_worker_invoke (worker_call_cb, call, (GDestroyNotify) worker_call_free);
}

static gboolean
transfer_wait_done (Transfer  *t,
                    GError   **error)
{
  gboolean ok;

  g_mutex_lock (&t->lock);
  while (!t->done)
    g_cond_wait (&t->cond, &t->lock);
  ok = t->error == NULL;
  if (!ok)
    g_propagate_error (error, g_error_copy (t->error));
  g_mutex_unlock (&t->lock);

  return ok;
}

/* Streams @in into the guest file @guest_path. */
gboolean
qlean_transfer_put_stream (QleanMachine       *machine,
                           QleanMachineRun    *run,
                           QleanGuestChannel  *channel,
                           const char         *guest_path,
                           GInputStream       *in,
                           guint32             mode,
                           gint64              mtime_ns,
                           guint32             flags,
                           GCancellable       *cancellable,
                           GError            **error)
{
  g_autoptr(Transfer) t = transfer_new (machine, run, guest_path, QLEAN_FS_ACTION_WRITE);
  QleanGuestTlv *tlv = qlean_guest_tlv_new ();
  g_autoptr(GBytes) request = NULL;
  g_autoptr(GError) read_error = NULL;

  qlean_guest_tlv_add_string (tlv, QLEAN_GUEST_TAG_PATH, guest_path);
  qlean_guest_tlv_add_u32 (tlv, QLEAN_GUEST_TAG_MODE, mode & 07777);
  qlean_guest_tlv_add_i64 (tlv, QLEAN_GUEST_TAG_MTIME, mtime_ns);
  if (flags != 0)
    qlean_guest_tlv_add_u32 (tlv, QLEAN_GUEST_TAG_FLAGS, flags);
  request = qlean_guest_tlv_free_to_bytes (tlv);
  worker_call (t, OPEN, channel, QLEAN_GUEST_FRAME_PUT, request);

  for (;;)
    {
      g_autoptr(GBytes) chunk = NULL;
      gboolean stop;
      gboolean full;

      g_mutex_lock (&t->lock);
      full = !t->done && t->outstanding >= QLEAN_GUEST_WINDOW;
      g_mutex_unlock (&t->lock);
      if (full)
        worker_call (t, REFRESH, NULL, 0, NULL);

      g_mutex_lock (&t->lock);
      while (!t->done && t->outstanding >= QLEAN_GUEST_WINDOW)
        g_cond_wait (&t->cond, &t->lock);
      stop = t->done;
      g_mutex_unlock (&t->lock);
      if (stop)
        break;

      if (g_cancellable_is_cancelled (cancellable))
        {
          worker_call (t, CANCEL, NULL, 0, NULL);
          break;
        }

      chunk = g_input_stream_read_bytes (in, CHUNK, cancellable, &read_error);
      if (chunk == NULL)
        {
          worker_call (t, CANCEL, NULL, 0, NULL);
          break;
        }

      if (g_bytes_get_size (chunk) == 0)
        {
          worker_call (t, SEND_EOF, NULL, 0, NULL);
          break;
        }

      g_mutex_lock (&t->lock);
      t->outstanding += g_bytes_get_size (chunk);
      g_mutex_unlock (&t->lock);
      worker_call (t, SEND, NULL, 0, chunk);
    }

  if (!transfer_wait_done (t, error))
    return FALSE;

  if (read_error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&read_error));
      return FALSE;
    }

  return g_cancellable_set_error_if_cancelled (cancellable, error) == FALSE;
}

/* Streams the guest file @guest_path into @out. */
gboolean
qlean_transfer_get_stream (QleanMachine          *machine,
                           QleanMachineRun       *run,
                           QleanGuestChannel     *channel,
                           const char            *guest_path,
                           GOutputStream         *out,
                           QleanTransferGetInfo  *info,
                           GCancellable          *cancellable,
                           GError               **error)
{
  g_autoptr(Transfer) t = transfer_new (machine, run, guest_path, QLEAN_FS_ACTION_READ);
  QleanGuestTlv *tlv = qlean_guest_tlv_new ();
  g_autoptr(GBytes) request = NULL;
  g_autoptr(GError) write_error = NULL;
  QleanGuestTlvIter iter;
  const guint8 *value;
  guint16 tag;
  gsize len;

  t->is_get = TRUE;
  qlean_guest_tlv_add_string (tlv, QLEAN_GUEST_TAG_PATH, guest_path);
  request = qlean_guest_tlv_free_to_bytes (tlv);
  worker_call (t, OPEN, channel, QLEAN_GUEST_FRAME_GET, request);

  for (;;)
    {
      /* Wake now and then to notice a cancellation. */
      gpointer item = g_async_queue_timeout_pop (t->chunks, 100 * 1000);
      g_autoptr(GBytes) chunk = NULL;

      if (item == END_MARKER)
        break;
      if (item == NULL)
        {
          if (g_cancellable_is_cancelled (cancellable) && write_error == NULL)
            {
              g_cancellable_set_error_if_cancelled (cancellable, &write_error);
              worker_call (t, CANCEL, NULL, 0, NULL);
            }
          continue;
        }

      chunk = item;
      /* After a write error, drain the rest until the guest stops. */
      if (write_error == NULL &&
          !g_output_stream_write_all (out, g_bytes_get_data (chunk, NULL), g_bytes_get_size (chunk),
                                      NULL, cancellable, &write_error))
        worker_call (t, CANCEL, NULL, 0, NULL);
    }

  if (write_error != NULL)
    {
      transfer_wait_done (t, NULL);
      g_propagate_error (error, g_steal_pointer (&write_error));
      return FALSE;
    }

  if (!transfer_wait_done (t, error))
    return FALSE;

  info->mode = 0644;
  info->mtime_ns = -1;
  qlean_guest_tlv_iter_init (&iter, t->done_payload);
  while (qlean_guest_tlv_iter_next (&iter, &tag, &value, &len, NULL))
    {
      if (tag == QLEAN_GUEST_TAG_MODE && len >= 4)
        info->mode = qlean_guest_read_u32 (value);
      else if (tag == QLEAN_GUEST_TAG_MTIME && len >= 8)
        info->mtime_ns = (gint64) qlean_guest_read_u64 (value);
    }

  return TRUE;
}

/* Whether @name is one entry of a directory: never "", ".", ".." nor
 * anything with a slash, which would lead elsewhere once joined to a
 * directory's path. */
gboolean
qlean_transfer_is_plain_name (const char *name)
{
  return name != NULL && *name != '\0' && strchr (name, '/') == NULL &&
         !g_str_equal (name, ".") && !g_str_equal (name, "..");
}

gint64
qlean_transfer_info_mtime_ns (GFileInfo *info)
{
  return (gint64) g_file_info_get_attribute_uint64 (info, G_FILE_ATTRIBUTE_TIME_MODIFIED) * G_GINT64_CONSTANT (1000000000) +
         (gint64) g_file_info_get_attribute_uint32 (info, G_FILE_ATTRIBUTE_TIME_MODIFIED_USEC) * 1000;
}

gboolean
qlean_transfer_needs_guest_program (QleanMachine  *machine,
                                    gboolean       upload,
                                    const char    *path,
                                    GError       **error)
{
  g_autofree char *display = g_filename_display_name (path);

  if (upload)
    g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
                 _("Cannot upload the directory “%s” with machine “%s”: directories need "
                   "qlean-guest in the guest, and it does not answer there (the guest agent "
                   "alone moves single files only)"),
                 display, qlean_machine_get_name (machine));
  else
    g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
                 _("Cannot download the directory “%s” with machine “%s”: directories need "
                   "qlean-guest in the guest, and it does not answer there (the guest agent "
                   "alone moves single files only)"),
                 display, qlean_machine_get_name (machine));
  return FALSE;
}

/* The tasks behind the public trios (qlean-machine-upload.c,
 * qlean-machine-download.c) */

static void
transfer_args_free (QleanTransferArgs *args)
{
  g_clear_object (&args->file);
  g_free (args->guest_path);
  g_free (args);
}

void
qlean_transfer_run (QleanMachine        *self,
                    GFile               *file,
                    const char          *guest_path,
                    QleanTransferFlags   flags,
                    GTaskThreadFunc      func,
                    GCancellable        *cancellable,
                    gpointer             source_tag,
                    GAsyncReadyCallback  callback,
                    gpointer             user_data)
{
  g_autoptr(GTask) task = qlean_task_new (self, cancellable, callback, user_data, source_tag,
                                          "[qlean] transfer");
  g_autoptr(GError) error = NULL;
  QleanTransferArgs *args;

  if (!qlean_machine_check_running (self, QLEAN_MACHINE_OP_TRANSFER_FILES, &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  args = g_new0 (QleanTransferArgs, 1);
  args->file = g_object_ref (file);
  args->guest_path = g_strdup (guest_path);
  args->flags = flags;
  g_task_set_task_data (task, args, (GDestroyNotify) transfer_args_free);
  g_task_run_in_thread (task, func);
}
