/* qlean-machine-upload.c: files and directory trees into a machine
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <glib/gstdio.h>
#include <glib/gi18n-lib.h>
#include <gio/gunixoutputstream.h>

#include "qlean-errno-private.h"
#include "qlean-machine-fs.h"
#include "qlean-machine-fs-private.h"
#include "qlean-machine-private.h"
#include "qlean-machine-transfer-private.h"

/* The upload trio and the walk behind it: a local file or tree, read
 * on the transfer's thread, made again in the guest with the file calls
 * for directories, links, modes and times, and a PUT stream (or the
 * agent's file calls) per file. Apart from downloads, which walk the
 * guest's tree instead and write the host's. */

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
guest_fs (QleanTransferCtx  *ctx,
          guint32            op,
          const char        *path,
          const char        *path2,
          gint64             number,
          guint32            flags,
          GError           **error)
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
upload_file (QleanTransferCtx  *ctx,
             GFile             *source,
             GFileInfo         *info,
             const char        *guest_path,
             GError           **error)
{
  g_autoptr(GFileInputStream) in = g_file_read (source, ctx->cancellable, error);

  if (in == NULL)
    return FALSE;

  if (ctx->channel == NULL)
    return qlean_machine_agent_put (ctx->machine, guest_path, G_INPUT_STREAM (in), NULL,
                                    info_mode (info), qlean_transfer_info_mtime_ns (info), ctx->cancellable, error);

  return qlean_transfer_put_stream (ctx->machine, ctx->run, ctx->channel, guest_path,
                                    G_INPUT_STREAM (in), info_mode (info),
                                    qlean_transfer_info_mtime_ns (info), QLEAN_GUEST_FLAG_PARENTS,
                                    ctx->cancellable, error);
}

static gboolean
upload_tree (QleanTransferCtx  *ctx,
             GFile             *dir,
             GFileInfo         *dir_info,
             const char        *guest_dir,
             GError           **error)
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
         guest_fs (ctx, QLEAN_GUEST_FS_UTIME, guest_dir, NULL, qlean_transfer_info_mtime_ns (dir_info), 0, error);
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
  g_autoptr(QleanMachineRun) run = NULL;
  QleanTransferCtx ctx = { machine, NULL, cancellable, QLEAN_TRANSFER_FLAGS_NONE };

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
  run = qlean_machine_ref_run (machine, QLEAN_MACHINE_OP_TRANSFER_FILES, FALSE, error);
  if (run == NULL)
    return FALSE;
  ctx.run = run;
  channel = qlean_machine_fs_pick_channel (run, cancellable, &local_error);
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
  agent_only = channel == NULL && qlean_machine_run_uses_agent_only (run);
  if (channel == NULL && !agent_only && g_file_info_get_file_type (info) == G_FILE_TYPE_DIRECTORY)
    return qlean_transfer_needs_guest_program (machine, TRUE, g_file_peek_path (source), error);

  /* Over the agent a file's upload finds out by itself whether the
   * destination is a directory: asking first costs a guest-exec. */
  if (agent_only && g_file_info_get_file_type (info) == G_FILE_TYPE_REGULAR &&
      qlean_transfer_is_plain_name (name))
    {
      g_autoptr(GFileInputStream) in = g_file_read (source, cancellable, error);

      return in != NULL &&
             qlean_machine_agent_upload_file (machine, guest_destination, name, G_INPUT_STREAM (in),
                                              info_mode (info), qlean_transfer_info_mtime_ns (info),
                                              cancellable, error);
    }

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
      if (!qlean_transfer_is_plain_name (name))
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
      /* Over the agent, one tar stream rather than round trips per file. */
      if (agent_only)
        switch (qlean_agent_tar_upload (&ctx, source, target, error))
          {
          case QLEAN_AGENT_TAR_DONE:
            return TRUE;
          case QLEAN_AGENT_TAR_FAILED:
            return FALSE;
          case QLEAN_AGENT_TAR_NO_TAR:
          default:
            g_debug ("upload: the guest has no tar; moving %s file by file", g_file_peek_path (source));
            break;
          }
      return upload_tree (&ctx, source, info, target, error);
    default:
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   _("Cannot upload %s: only files and directories can be uploaded"),
                   g_file_peek_path (source));
      return FALSE;
    }
}

static void
upload_thread (GTask        *task,
               gpointer      source_object,
               gpointer      task_data,
               GCancellable *cancellable)
{
  QleanTransferArgs *args = task_data;
  GError *error = NULL;

  if (upload (source_object, args->file, args->guest_path, cancellable, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
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
 * Files move over qlean-guest's data port. A machine whose guest
 * transport is the stock guest agent alone ([property@MachineConfig:guest-transport])
 * moves a file through the agent's guest-file-* calls, and a directory as
 * one tar stream that the guest's tar unpacks (file by file where the
 * guest has no tar); whole seconds of modification time are kept there.
 * While a machine has not yet settled on a transport and qlean-guest
 * does not answer, a single file still moves through the agent; a
 * directory then fails with %QLEAN_MACHINE_ERROR_FAILED, saying it needs
 * qlean-guest.
 *
 * Since: 0.1
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

  qlean_transfer_run (self, source, guest_destination, QLEAN_TRANSFER_FLAGS_NONE, upload_thread,
                      cancellable, qlean_machine_upload_async, callback, user_data);
}

/**
 * qlean_machine_upload_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when everything arrived
 *
 * Since: 0.1
 */
gboolean
qlean_machine_upload_finish (QleanMachine  *self,
                             GAsyncResult  *result,
                             GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_upload_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

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
 *
 * Since: 0.1
 */
gboolean
qlean_machine_upload (QleanMachine  *self,
                      GFile         *source,
                      const char    *guest_destination,
                      GCancellable  *cancellable,
                      GError       **error)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE (self), FALSE);
  g_return_val_if_fail (G_IS_FILE (source), FALSE);
  g_return_val_if_fail (guest_destination != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!qlean_machine_check_running (self, QLEAN_MACHINE_OP_TRANSFER_FILES, error))
    return FALSE;

  return upload (self, source, guest_destination, cancellable, error);
}
