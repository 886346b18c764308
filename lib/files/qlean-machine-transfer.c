/* qlean-machine-transfer.c: files and directory trees in and out of a machine
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
#include "qlean-json-channel-private.h"
#include "qlean-machine-fs.h"
#include "qlean-machine-fs-private.h"
#include "qlean-machine-private.h"
#include "qlean-sync-private.h"
#include "qlean-worker-private.h"
#include "qlean-errno-private.h"

/* Transfers run on a thread of their own (GTask's pool) and use blocking
 * calls: walking a tree and streaming files is sequential work, and the
 * blocking API works from any thread. Each file moves as one PUT or GET
 * stream on the data port, in 256 KiB chunks under the protocol's credit
 * window, so host memory stays bounded whatever the file's size. */

#define CHUNK (256 * 1024)

/* One PUT or GET, shared by the transfer thread and the worker. */
typedef struct
{
  gatomicrefcount   ref_count;
  GMutex            lock;
  GCond             cond;
  QleanMachine     *machine;
  char             *path;
  const char       *verb;
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
transfer_new (QleanMachine *machine,
              const char   *path,
              const char   *verb)
{
  Transfer *t = g_new0 (Transfer, 1);

  g_atomic_ref_count_init (&t->ref_count);
  g_mutex_init (&t->lock);
  g_cond_init (&t->cond);
  t->machine = g_object_ref (machine);
  t->path = g_strdup (path);
  t->verb = verb;
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

static void
transfer_stream_cb (QleanGuestStream *stream,
                    guint8            type,
                    guint8            fd,
                    GBytes           *payload,
                    const GError     *error,
                    gpointer          user_data)
{
  Transfer *t = user_data;

  switch (type)
    {
    case 0:
      {
        /* The channel closed (the guest went away), or it lives on and
         * only this stream waited too long or could not be sent. */
        g_autofree char *display = qlean_machine_fs_display_path (t->path);

        g_clear_pointer (&t->stream, qlean_guest_stream_unref);
        transfer_end (t, qlean_machine_fs_stream_error (t->machine, t->verb, display, error));
        break;
      }

    case QLEAN_GUEST_FRAME_ERROR:
      transfer_end (t, qlean_machine_fs_error (t->machine, t->verb, t->path, NULL, payload));
      break;

    case QLEAN_GUEST_FRAME_DONE:
      g_mutex_lock (&t->lock);
      t->done_payload = g_bytes_ref (payload);
      g_cond_broadcast (&t->cond);
      g_mutex_unlock (&t->lock);
      /* A PUT ends here; a GET's data follows. */
      if (!t->is_get)
        transfer_end (t, NULL);
      break;

    case QLEAN_GUEST_FRAME_DATA:
      g_async_queue_push (t->chunks, g_bytes_ref (payload));
      break;

    case QLEAN_GUEST_FRAME_EOF:
      if (fd == 1)
        transfer_end (t, NULL);
      break;

    default:
      break;
    }
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
      qlean_guest_stream_set_timeout (t->stream, qlean_machine_get_guest_timeout (t->machine));
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
transfer_wait_done (Transfer      *t,
                    GError       **error)
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
static gboolean
put_stream (QleanMachine       *machine,
            QleanGuestChannel  *channel,
            const char         *guest_path,
            GInputStream       *in,
            guint32             mode,
            gint64              mtime_ns,
            guint32             flags,
            GCancellable       *cancellable,
            GError            **error)
{
  g_autoptr(Transfer) t = transfer_new (machine, guest_path, N_("write"));
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

typedef struct
{
  guint32 mode;
  gint64  mtime_ns;
} GetInfo;

/* Streams the guest file @guest_path into @out. */
static gboolean
get_stream (QleanMachine       *machine,
            QleanGuestChannel  *channel,
            const char         *guest_path,
            GOutputStream      *out,
            GetInfo            *info,
            GCancellable       *cancellable,
            GError            **error)
{
  g_autoptr(Transfer) t = transfer_new (machine, guest_path, N_("read"));
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
static gboolean
is_plain_name (const char *name)
{
  return name != NULL && *name != '\0' && strchr (name, '/') == NULL &&
         !g_str_equal (name, ".") && !g_str_equal (name, "..");
}

/* Upload */

typedef struct
{
  QleanMachine       *machine;
  QleanGuestChannel  *channel;
  GCancellable       *cancellable;
  QleanTransferFlags  flags;
} Ctx;

static gint64
info_mtime_ns (GFileInfo *info)
{
  return (gint64) g_file_info_get_attribute_uint64 (info, G_FILE_ATTRIBUTE_TIME_MODIFIED) * G_GINT64_CONSTANT (1000000000) +
         (gint64) g_file_info_get_attribute_uint32 (info, G_FILE_ATTRIBUTE_TIME_MODIFIED_USEC) * 1000;
}

static guint32
info_mode (GFileInfo *info)
{
  return g_file_info_get_attribute_uint32 (info, G_FILE_ATTRIBUTE_UNIX_MODE) & 07777;
}

#define QUERY_ATTRIBUTES \
  G_FILE_ATTRIBUTE_STANDARD_NAME "," G_FILE_ATTRIBUTE_STANDARD_TYPE "," \
  G_FILE_ATTRIBUTE_STANDARD_SYMLINK_TARGET "," G_FILE_ATTRIBUTE_UNIX_MODE "," \
  G_FILE_ATTRIBUTE_TIME_MODIFIED "," G_FILE_ATTRIBUTE_TIME_MODIFIED_USEC

static gboolean
guest_fs (Ctx           *ctx,
          guint32        op,
          const char    *path,
          const char    *path2,
          gint64         number,
          guint32        flags,
          GError       **error)
{
  /* The few tree operations a transfer needs beyond the public calls. */
  switch (op)
    {
    case QLEAN_GUEST_FS_MKDIR:
      return qlean_machine_create_dir_all (ctx->machine, path, ctx->cancellable, error);
    case QLEAN_GUEST_FS_CHMOD:
      return qlean_machine_set_permissions (ctx->machine, path, (guint) number, ctx->cancellable, error);
    case QLEAN_GUEST_FS_SYMLINK:
      return qlean_machine_symlink (ctx->machine, path, path2, ctx->cancellable, error);
    case QLEAN_GUEST_FS_UTIME:
      return qlean_machine_fs_set_mtime (ctx->machine, path, number, ctx->cancellable, error);
    default:
      g_assert_not_reached ();
    }
}

static gboolean
upload_file (Ctx         *ctx,
             GFile       *source,
             GFileInfo   *info,
             const char  *guest_path,
             GError     **error)
{
  g_autoptr(GFileInputStream) in = g_file_read (source, ctx->cancellable, error);

  if (in == NULL)
    return FALSE;

  if (ctx->channel == NULL)
    return qlean_machine_agent_put (ctx->machine, guest_path, G_INPUT_STREAM (in), NULL,
                                    info_mode (info), info_mtime_ns (info), ctx->cancellable, error);

  return put_stream (ctx->machine, ctx->channel, guest_path, G_INPUT_STREAM (in),
                     info_mode (info), info_mtime_ns (info), QLEAN_GUEST_FLAG_PARENTS,
                     ctx->cancellable, error);
}

static gboolean
upload_tree (Ctx         *ctx,
             GFile       *dir,
             GFileInfo   *dir_info,
             const char  *guest_dir,
             GError     **error)
{
  g_autoptr(GFileEnumerator) children = NULL;

  if (!guest_fs (ctx, QLEAN_GUEST_FS_MKDIR, guest_dir, NULL, 0, 0, error))
    return FALSE;

  children = g_file_enumerate_children (dir, QUERY_ATTRIBUTES, G_FILE_QUERY_INFO_NOFOLLOW_SYMLINKS,
                                        ctx->cancellable, error);
  if (children == NULL)
    return FALSE;

  for (;;)
    {
      GFileInfo *info;
      GFile *child;
      g_autofree char *guest_child = NULL;

      if (!g_file_enumerator_iterate (children, &info, &child, ctx->cancellable, error))
        return FALSE;
      if (info == NULL)
        break;

      guest_child = g_build_filename (guest_dir, g_file_info_get_name (info), NULL);
      switch (g_file_info_get_file_type (info))
        {
        case G_FILE_TYPE_DIRECTORY:
          if (!upload_tree (ctx, child, info, guest_child, error))
            return FALSE;
          break;
        case G_FILE_TYPE_REGULAR:
          if (!upload_file (ctx, child, info, guest_child, error))
            return FALSE;
          break;
        case G_FILE_TYPE_SYMBOLIC_LINK:
          /* As a link, never followed; a re-upload replaces it. */
          qlean_machine_remove_file (ctx->machine, guest_child, ctx->cancellable, NULL);
          if (!guest_fs (ctx, QLEAN_GUEST_FS_SYMLINK, g_file_info_get_symlink_target (info),
                         guest_child, 0, 0, error))
            return FALSE;
          break;
        default:
          /* Sockets, FIFOs and devices have no contents to send. */
          g_debug ("upload: skipping special file %s", g_file_peek_path (child));
          break;
        }
    }

  /* After the children, whose creation touches the directory's time. */
  return guest_fs (ctx, QLEAN_GUEST_FS_CHMOD, guest_dir, NULL, info_mode (dir_info), 0, error) &&
         guest_fs (ctx, QLEAN_GUEST_FS_UTIME, guest_dir, NULL, info_mtime_ns (dir_info), 0, error);
}

static gboolean
needs_guest_program (QleanMachine  *machine,
                     const char    *verb,
                     const char    *path,
                     GError       **error)
{
  g_autofree char *display = g_filename_display_name (path);

  g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
               _("Cannot %s “%s” with machine “%s”: directories need qlean-guest in the guest, "
                 "and it does not answer there (the guest agent alone moves single files only)"),
               _(verb), display, qlean_machine_get_name (machine));
  return FALSE;
}

static gboolean
upload (QleanMachine  *machine,
        GFile         *source,
        const char    *guest_destination,
        GCancellable  *cancellable,
        GError       **error)
{
  g_autoptr(QleanGuestChannel) channel = NULL;
  g_autoptr(GFileInfo) info = NULL;
  g_autoptr(GFileInfo) dest_info = NULL;
  g_autoptr(GError) local_error = NULL;
  g_autofree char *name = g_file_get_basename (source);
  g_autofree char *target = NULL;
  gboolean into_dir;
  gboolean agent_only;
  Ctx ctx = { machine, NULL, cancellable, QLEAN_TRANSFER_FLAGS_NONE };

  /* Check the source before anything reaches the guest. */
  info = g_file_query_info (source, QUERY_ATTRIBUTES, G_FILE_QUERY_INFO_NONE, cancellable, &local_error);
  if (info == NULL)
    {
      g_set_error (error, local_error->domain, local_error->code,
                   _("Cannot upload %s to machine “%s”: %s"), g_file_peek_path (source),
                   qlean_machine_get_name (machine), local_error->message);
      return FALSE;
    }

  /* Without qlean-guest, the agent moves single files (see
   * qlean-machine-agent-files.c). */
  channel = qlean_machine_fs_pick_channel (machine, cancellable, &local_error);
  if (channel == NULL && local_error != NULL)
    {
      g_propagate_prefixed_error (error, g_steal_pointer (&local_error),
                                  _("Cannot upload %s to machine “%s”: "), g_file_peek_path (source),
                                  qlean_machine_get_name (machine));
      return FALSE;
    }
  ctx.channel = channel;
  /* The agent transport has the tree calls too (its own backend); only
   * a machine still deciding has nothing but the agent's file calls. */
  agent_only = channel == NULL && qlean_machine_uses_agent_only (machine);
  if (channel == NULL && !agent_only && g_file_info_get_file_type (info) == G_FILE_TYPE_DIRECTORY)
    return needs_guest_program (machine, N_("upload the directory"), g_file_peek_path (source), error);

  /* Like cp -r and scp -r: onto an existing directory, inside it under
   * the source's name; otherwise the destination is the new name. */
  if (channel == NULL && !agent_only)
    into_dir = qlean_machine_agent_is_dir (machine, guest_destination, cancellable);
  else
    {
      dest_info = qlean_machine_metadata (machine, guest_destination, cancellable, NULL);
      into_dir = dest_info != NULL && g_file_info_get_file_type (dest_info) == G_FILE_TYPE_DIRECTORY;
    }

  if (into_dir)
    {
      /* GFile resolves "." and "..": only "/" is left without a name. */
      if (!is_plain_name (name))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_FILENAME,
                       _("Cannot upload %s into the directory “%s” of machine “%s”: it has no "
                         "name to take there; give the new directory's path instead"),
                       g_file_peek_path (source), guest_destination, qlean_machine_get_name (machine));
          return FALSE;
        }
      target = g_build_filename (guest_destination, name, NULL);
    }
  else
    target = g_strdup (guest_destination);

  switch (g_file_info_get_file_type (info))
    {
    case G_FILE_TYPE_REGULAR:
      return upload_file (&ctx, source, info, target, error);
    case G_FILE_TYPE_DIRECTORY:
      return upload_tree (&ctx, source, info, target, error);
    default:
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   _("Cannot upload %s: only files and directories can be uploaded"),
                   g_file_peek_path (source));
      return FALSE;
    }
}

/* Download */

/* Refuses a local path that is a symbolic link where a directory or a
 * file is to be written: a download never writes through a link. */
static gboolean
check_not_link (const char  *path,
                GError     **error)
{
  GStatBuf st;

  if (g_lstat (path, &st) == 0 && S_ISLNK (st.st_mode))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                   _("%s is a symbolic link; a download does not write through links"), path);
      return FALSE;
    }

  return TRUE;
}

/* The mode a downloaded file or directory gets on the host. The guest
 * decides the mode it reports, and the file becomes the host user's: a
 * setuid bit would make it a setuid program of that user (root in many
 * CI jobs), a group or world write bit would let other local users
 * change what a test then runs. So by default only what tar keeps for a
 * user with the usual umask 022 stays; PRESERVE_MODES asks for all. */
static guint32
local_mode (guint32            guest_mode,
            QleanTransferFlags flags)
{
  if (flags & QLEAN_TRANSFER_FLAGS_PRESERVE_MODES)
    return guest_mode & 07777;

  return guest_mode & 0755;
}

static gboolean
set_local_mode_and_time (Ctx         *ctx,
                         const char  *path,
                         guint32      mode,
                         gint64       mtime_ns,
                         GError     **error)
{
  g_autoptr(GFile) file = g_file_new_for_path (path);

  if (!g_file_set_attribute_uint32 (file, G_FILE_ATTRIBUTE_UNIX_MODE, local_mode (mode, ctx->flags),
                                    G_FILE_QUERY_INFO_NOFOLLOW_SYMLINKS, NULL, error))
    return FALSE;

  if (mtime_ns < 0)
    return TRUE;

  return g_file_set_attribute_uint64 (file, G_FILE_ATTRIBUTE_TIME_MODIFIED,
                                      (guint64) (mtime_ns / G_GINT64_CONSTANT (1000000000)),
                                      G_FILE_QUERY_INFO_NOFOLLOW_SYMLINKS, NULL, error) &&
         g_file_set_attribute_uint32 (file, G_FILE_ATTRIBUTE_TIME_MODIFIED_USEC,
                                      (guint32) ((mtime_ns % G_GINT64_CONSTANT (1000000000)) / 1000),
                                      G_FILE_QUERY_INFO_NOFOLLOW_SYMLINKS, NULL, error);
}

/* @known: the file's metadata when the caller has it (a listing), which
 * spares the agent a command per file. */
static gboolean
download_file (Ctx         *ctx,
               const char  *guest_path,
               GFileInfo   *known,
               const char  *local_path,
               GError     **error)
{
  g_autofree char *dir = g_path_get_dirname (local_path);
  g_autofree char *tmp_name = NULL;
  GetInfo info;
  gboolean ok;

  if (!check_not_link (local_path, error))
    return FALSE;

  /* Into a new file beside the target, renamed over it at the end: a
   * failure leaves no file that looks complete. */
  {
    g_autofree char *base = g_path_get_basename (local_path);
    int fd;

    tmp_name = g_strdup_printf ("%s/.%s.qlean-XXXXXX", dir, base);
    fd = g_mkstemp_full (tmp_name, O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0)
      {
        int saved_errno = errno;

        qlean_set_error_from_errno (error, saved_errno,
                                    _("Cannot create a file in %s"), dir);
        return FALSE;
      }
    {
      g_autoptr(GOutputStream) out = g_unix_output_stream_new (fd, TRUE);

      if (ctx->channel != NULL)
        ok = get_stream (ctx->machine, ctx->channel, guest_path, out, &info, ctx->cancellable, error);
      else
        {
          ok = qlean_machine_agent_get (ctx->machine, guest_path, out, NULL, ctx->cancellable, error);
          if (!ok && g_error_matches (*error, G_IO_ERROR, G_IO_ERROR_IS_DIRECTORY))
            {
              g_clear_error (error);
              needs_guest_program (ctx->machine, N_("download the directory"), guest_path, error);
            }
          if (ok && known != NULL)
            {
              info.mode = g_file_info_get_attribute_uint32 (known, G_FILE_ATTRIBUTE_UNIX_MODE);
              info.mtime_ns = info_mtime_ns (known);
            }
          else if (ok && !qlean_machine_agent_get_mode (ctx->machine, guest_path, &info.mode,
                                                        &info.mtime_ns, ctx->cancellable))
            {
              info.mode = 0644;
              info.mtime_ns = -1;
            }
        }
      ok = ok && g_output_stream_close (out, ctx->cancellable, error);
    }
  }

  if (ok)
    ok = set_local_mode_and_time (ctx, tmp_name, info.mode, info.mtime_ns, error);

  if (ok && g_rename (tmp_name, local_path) != 0)
    {
      int saved_errno = errno;

      qlean_set_error_from_errno (error, saved_errno,
                                  _("Cannot rename %s to %s"), tmp_name, local_path);
      ok = FALSE;
    }

  if (!ok)
    g_unlink (tmp_name);

  return ok;
}

static gboolean
download_tree (Ctx         *ctx,
               const char  *guest_dir,
               GFileInfo   *guest_info,
               const char  *local_dir,
               GError     **error)
{
  g_autoptr(GPtrArray) entries = NULL;

  if (!check_not_link (local_dir, error))
    return FALSE;
  if (g_mkdir (local_dir, 0700) != 0 && !g_file_test (local_dir, G_FILE_TEST_IS_DIR))
    {
      int saved_errno = errno;

      qlean_set_error_from_errno (error, saved_errno,
                                  _("Cannot create %s"), local_dir);
      return FALSE;
    }

  entries = qlean_machine_read_dir (ctx->machine, guest_dir, ctx->cancellable, error);
  if (entries == NULL)
    return FALSE;

  for (guint i = 0; i < entries->len; i++)
    {
      GFileInfo *info = g_ptr_array_index (entries, i);
      const char *name = g_file_info_get_name (info);
      g_autofree char *guest_child = NULL;
      g_autofree char *local_child = NULL;

      /* Names come from the guest: nothing in one may lead outside. */
      if (!is_plain_name (name))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       _("Refusing the entry “%s” listed in %s: not a plain name"),
                       name ? name : "", guest_dir);
          return FALSE;
        }

      guest_child = g_build_filename (guest_dir, name, NULL);
      local_child = g_build_filename (local_dir, name, NULL);

      switch (g_file_info_get_file_type (info))
        {
        case G_FILE_TYPE_DIRECTORY:
          if (!download_tree (ctx, guest_child, info, local_child, error))
            return FALSE;
          break;
        case G_FILE_TYPE_REGULAR:
          if (!download_file (ctx, guest_child, info, local_child, error))
            return FALSE;
          break;
        case G_FILE_TYPE_SYMBOLIC_LINK:
          {
            g_autofree char *target = qlean_machine_read_link (ctx->machine, guest_child,
                                                               ctx->cancellable, error);
            GStatBuf st;

            if (target == NULL)
              return FALSE;
            /* Written as a link, never followed, whatever it points to. */
            if (g_lstat (local_child, &st) == 0 && !S_ISDIR (st.st_mode))
              g_unlink (local_child);
            if (symlink (target, local_child) != 0)
              {
                int saved_errno = errno;

                qlean_set_error_from_errno (error, saved_errno,
                                            _("Cannot create the link %s"), local_child);
                return FALSE;
              }
            break;
          }
        default:
          g_debug ("download: skipping special file %s", guest_child);
          break;
        }
    }

  return set_local_mode_and_time (ctx, local_dir,
                                  g_file_info_get_attribute_uint32 (guest_info, G_FILE_ATTRIBUTE_UNIX_MODE),
                                  info_mtime_ns (guest_info), error);
}

static gboolean
download (QleanMachine        *machine,
          const char          *guest_path,
          GFile               *destination,
          QleanTransferFlags   flags,
          GCancellable        *cancellable,
          GError             **error)
{
  g_autoptr(QleanGuestChannel) channel = NULL;
  g_autoptr(GFileInfo) info = NULL;
  /* Resolved first, as GFile resolves local paths: the name a download
   * takes inside an existing directory is the last part of the path, and
   * from "/x/y/.." that would be "..", the directory's parent. Every
   * request below uses the resolved path, so that the name and the
   * contents always agree. */
  g_autofree char *guest_source = g_canonicalize_filename (guest_path, "/");
  g_autofree char *name = g_path_get_basename (guest_source);
  g_autofree char *target = NULL;
  g_autofree char *parent = NULL;
  const char *dest = g_file_peek_path (destination);
  g_autoptr(GError) pick_error = NULL;
  Ctx ctx = { machine, NULL, cancellable, flags };

  if (dest == NULL)
    {
      g_autofree char *uri = g_file_get_uri (destination);

      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   _("Downloads go to local files; %s is not one"), uri);
      return FALSE;
    }

  /* Without qlean-guest, the agent moves a single file; what is not one
   * shows when reading it fails. */
  channel = qlean_machine_fs_pick_channel (machine, cancellable, &pick_error);
  if (channel == NULL && pick_error != NULL)
    {
      g_propagate_prefixed_error (error, g_steal_pointer (&pick_error),
                                  _("Cannot download “%s” from machine “%s”: "), guest_source,
                                  qlean_machine_get_name (machine));
      return FALSE;
    }
  ctx.channel = channel;
  if (channel != NULL || qlean_machine_uses_agent_only (machine))
    {
      info = qlean_machine_metadata (machine, guest_source, cancellable, error);
      if (info == NULL)
        return FALSE;
    }
  else if (!qlean_machine_agent_check (machine, guest_source, cancellable, error))
    return FALSE;   /* before any local directory is made */

  if (g_file_test (dest, G_FILE_TEST_IS_DIR) && !g_file_test (dest, G_FILE_TEST_IS_SYMLINK))
    {
      /* Only "/" is left without a name of its own. */
      if (!is_plain_name (name))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_FILENAME,
                       _("Cannot download “%s” into the directory %s: it has no name to take "
                         "there; give the new directory's path instead (e.g. %s/root)"),
                       guest_source, dest, dest);
          return FALSE;
        }
      target = g_build_filename (dest, name, NULL);
    }
  else
    target = g_strdup (dest);

  parent = g_path_get_dirname (target);
  if (g_mkdir_with_parents (parent, 0755) != 0)
    {
      int saved_errno = errno;

      qlean_set_error_from_errno (error, saved_errno,
                                  _("Cannot create %s"), parent);
      return FALSE;
    }

  switch (info ? g_file_info_get_file_type (info) : G_FILE_TYPE_REGULAR)
    {
    case G_FILE_TYPE_REGULAR:
      return download_file (&ctx, guest_source, info, target, error);
    case G_FILE_TYPE_DIRECTORY:
      return download_tree (&ctx, guest_source, info, target, error);
    default:
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   _("Cannot download %s: only files and directories can be downloaded"),
                   guest_source);
      return FALSE;
    }
}

/* The public trios */

typedef struct
{
  GFile              *file;
  char               *guest_path;
  QleanTransferFlags  flags;
} TransferArgs;

static void
transfer_args_free (TransferArgs *args)
{
  g_clear_object (&args->file);
  g_free (args->guest_path);
  g_free (args);
}

static void
upload_thread (GTask        *task,
               gpointer      source_object,
               gpointer      task_data,
               GCancellable *cancellable)
{
  TransferArgs *args = task_data;
  GError *error = NULL;

  if (upload (source_object, args->file, args->guest_path, cancellable, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

static void
download_thread (GTask        *task,
                 gpointer      source_object,
                 gpointer      task_data,
                 GCancellable *cancellable)
{
  TransferArgs *args = task_data;
  GError *error = NULL;

  if (download (source_object, args->guest_path, args->file, args->flags, cancellable, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

static void
run_transfer (QleanMachine        *self,
              GFile               *file,
              const char          *guest_path,
              QleanTransferFlags   flags,
              GTaskThreadFunc      func,
              GCancellable        *cancellable,
              gpointer             source_tag,
              GAsyncReadyCallback  callback,
              gpointer             user_data)
{
  g_autoptr(GTask) task = g_task_new (self, cancellable, callback, user_data);
  g_autoptr(GError) error = NULL;
  TransferArgs *args;

  g_task_set_source_tag (task, source_tag);
  g_task_set_name (task, "[qlean] transfer");

  if (!qlean_machine_check_running (self, "transfer files", &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  args = g_new0 (TransferArgs, 1);
  args->file = g_object_ref (file);
  args->guest_path = g_strdup (guest_path);
  args->flags = flags;
  g_task_set_task_data (task, args, (GDestroyNotify) transfer_args_free);
  g_task_run_in_thread (task, func);
}

/**
 * qlean_machine_upload_async:
 * @self: a running #QleanMachine
 * @source: a local file or directory
 * @guest_destination: (type filename): where it goes in the guest
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when done
 * @user_data: data for @callback
 *
 * Copies @source into the guest, a file or a whole directory tree,
 * keeping permission bits, modification times and symbolic links (as
 * links). The destination works as with `cp -r` and `scp -r`: onto an
 * existing directory, @source lands inside it under its own name;
 * otherwise @guest_destination is its new name, and missing parent
 * directories are made. Files stream in chunks, so host memory stays
 * bounded whatever their size; each file appears complete or not at all.
 * A @source that does not exist fails before anything is sent.
 *
 * Files move over qlean-guest's data port. In a guest where qlean-guest
 * does not answer, a single file still moves, through the guest agent's
 * guest-file-* calls (several times slower); a directory then fails with
 * %QLEAN_MACHINE_ERROR_FAILED, saying it needs qlean-guest.
 */
void
qlean_machine_upload_async (QleanMachine        *self,
                            GFile               *source,
                            const char          *guest_destination,
                            GCancellable        *cancellable,
                            GAsyncReadyCallback  callback,
                            gpointer             user_data)
{
  g_return_if_fail (QLEAN_IS_MACHINE (self));
  g_return_if_fail (G_IS_FILE (source));
  g_return_if_fail (guest_destination != NULL);

  run_transfer (self, source, guest_destination, QLEAN_TRANSFER_FLAGS_NONE, upload_thread, cancellable,
                qlean_machine_upload_async, callback, user_data);
}

/**
 * qlean_machine_upload_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when everything arrived
 */
gboolean
qlean_machine_upload_finish (QleanMachine  *self,
                             GAsyncResult  *result,
                             GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_machine_upload:
 * @self: a running #QleanMachine
 * @source: a local file or directory
 * @guest_destination: (type filename): where it goes in the guest
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_upload_async().
 *
 * Returns: %TRUE when everything arrived
 */
gboolean
qlean_machine_upload (QleanMachine  *self,
                      GFile         *source,
                      const char    *guest_destination,
                      GCancellable  *cancellable,
                      GError       **error)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE (self), FALSE);

  if (!qlean_machine_check_running (self, "transfer files", error))
    return FALSE;

  return upload (self, source, guest_destination, cancellable, error);
}

/**
 * qlean_machine_download_async:
 * @self: a running #QleanMachine
 * @guest_source: (type filename): a file or directory in the guest
 * @destination: where it goes on the host
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when done
 * @user_data: data for @callback
 *
 * Copies @guest_source out of the guest, a file or a whole tree, keeping
 * modification times, symbolic links and the permission bits that are
 * safe on the host, with the same destination rules as
 * qlean_machine_upload_async().
 *
 * What comes out of a guest is untrusted, and the files become the host
 * user's. So, as tar does for a user whose umask is 022, the setuid,
 * setgid and sticky bits and the group and world write bits are dropped:
 * a guest's mode 04777 arrives as 0755. Use
 * qlean_machine_download_full_async() with
 * %QLEAN_TRANSFER_FLAGS_PRESERVE_MODES for the exact modes.
 *
 * Nothing is ever written outside @destination: entries are plain
 * names, links from the guest are created as links and never followed,
 * and a link already in the way of a file or directory is refused.
 * @guest_source is resolved as #GFile resolves local paths, by its text:
 * `/x/y/..` is `/x`, and lands in an existing @destination as
 * `destination/x`; `/` has no name to take there and is refused with
 * %G_IO_ERROR_INVALID_FILENAME. Without qlean-guest in the guest, a
 * single file still comes through the guest agent, as with
 * qlean_machine_upload_async().
 */
void
qlean_machine_download_async (QleanMachine        *self,
                              const char          *guest_source,
                              GFile               *destination,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data)
{
  g_return_if_fail (QLEAN_IS_MACHINE (self));
  g_return_if_fail (guest_source != NULL);
  g_return_if_fail (G_IS_FILE (destination));

  run_transfer (self, destination, guest_source, QLEAN_TRANSFER_FLAGS_NONE, download_thread,
                cancellable, qlean_machine_download_async, callback, user_data);
}

/**
 * qlean_machine_download_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when everything arrived
 */
gboolean
qlean_machine_download_finish (QleanMachine  *self,
                               GAsyncResult  *result,
                               GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_machine_download:
 * @self: a running #QleanMachine
 * @guest_source: (type filename): a file or directory in the guest
 * @destination: where it goes on the host
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_download_async().
 *
 * Returns: %TRUE when everything arrived
 */
gboolean
qlean_machine_download (QleanMachine  *self,
                        const char    *guest_source,
                        GFile         *destination,
                        GCancellable  *cancellable,
                        GError       **error)
{
  return qlean_machine_download_full (self, guest_source, destination, QLEAN_TRANSFER_FLAGS_NONE,
                                      cancellable, error);
}

/**
 * qlean_machine_download_full_async:
 * @self: a running #QleanMachine
 * @guest_source: (type filename): a file or directory in the guest
 * @destination: where it goes on the host
 * @flags: how to download
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when done
 * @user_data: data for @callback
 *
 * Does what qlean_machine_download_async() does, as @flags say. With
 * %QLEAN_TRANSFER_FLAGS_PRESERVE_MODES, files and directories get the
 * guest's exact permission bits, setuid, setgid and sticky bits and
 * group and world write bits included: only for a guest and files that
 * you trust, since a setuid program from the guest would then run with
 * the host user's rights.
 */
void
qlean_machine_download_full_async (QleanMachine        *self,
                                   const char          *guest_source,
                                   GFile               *destination,
                                   QleanTransferFlags   flags,
                                   GCancellable        *cancellable,
                                   GAsyncReadyCallback  callback,
                                   gpointer             user_data)
{
  g_return_if_fail (QLEAN_IS_MACHINE (self));
  g_return_if_fail (guest_source != NULL);
  g_return_if_fail (G_IS_FILE (destination));

  run_transfer (self, destination, guest_source, flags, download_thread, cancellable,
                qlean_machine_download_full_async, callback, user_data);
}

/**
 * qlean_machine_download_full_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when everything arrived
 */
gboolean
qlean_machine_download_full_finish (QleanMachine  *self,
                                    GAsyncResult  *result,
                                    GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_machine_download_full:
 * @self: a running #QleanMachine
 * @guest_source: (type filename): a file or directory in the guest
 * @destination: where it goes on the host
 * @flags: how to download
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_download_full_async().
 *
 * Returns: %TRUE when everything arrived
 */
gboolean
qlean_machine_download_full (QleanMachine        *self,
                             const char          *guest_source,
                             GFile               *destination,
                             QleanTransferFlags   flags,
                             GCancellable        *cancellable,
                             GError             **error)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE (self), FALSE);
  g_return_val_if_fail (guest_source != NULL, FALSE);
  g_return_val_if_fail (G_IS_FILE (destination), FALSE);

  if (!qlean_machine_check_running (self, "transfer files", error))
    return FALSE;

  return download (self, guest_source, destination, flags, cancellable, error);
}
