/* qlean-machine-download.c: files and directory trees out of a machine
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

/* The download trios and the walk behind them: a guest file or tree,
 * listed with the file calls and read with a GET stream (or the
 * agent's file calls) per file, written on the host through temporary
 * files renamed into place, never through a symbolic link, with modes
 * the host user can trust. Apart from uploads, whose walk is the
 * host's tree. */

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
guint32
qlean_transfer_local_mode (guint32            guest_mode,
                           QleanTransferFlags flags)
{
  if (flags & QLEAN_TRANSFER_FLAGS_PRESERVE_MODES)
    return guest_mode & 07777;

  return guest_mode & 0755;
}

static gboolean
set_local_mode_and_time (QleanTransferCtx  *ctx,
                         const char        *path,
                         guint32            mode,
                         gint64             mtime_ns,
                         GError           **error)
{
  g_autoptr(GFile) file = g_file_new_for_path (path);

  if (!g_file_set_attribute_uint32 (file, G_FILE_ATTRIBUTE_UNIX_MODE, qlean_transfer_local_mode (mode, ctx->flags),
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
download_file (QleanTransferCtx  *ctx,
               const char        *guest_path,
               GFileInfo         *known,
               const char        *local_path,
               GError           **error)
{
  g_autofree char *dir = g_path_get_dirname (local_path);
  g_autofree char *tmp_name = NULL;
  QleanTransferGetInfo info;
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
        ok = qlean_transfer_get_stream (ctx->machine, ctx->run, ctx->channel, guest_path, out,
                                        &info, ctx->cancellable, error);
      else
        {
          ok = qlean_machine_agent_get (ctx->machine, guest_path, out, NULL, ctx->cancellable, error);
          if (!ok && g_error_matches (*error, G_IO_ERROR, G_IO_ERROR_IS_DIRECTORY))
            {
              g_clear_error (error);
              qlean_transfer_needs_guest_program (ctx->machine, FALSE, guest_path, error);
            }
          if (ok && known != NULL)
            {
              info.mode = g_file_info_get_attribute_uint32 (known, G_FILE_ATTRIBUTE_UNIX_MODE);
              info.mtime_ns = qlean_transfer_info_mtime_ns (known);
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
download_tree (QleanTransferCtx  *ctx,
               const char        *guest_dir,
               GFileInfo         *guest_info,
               const char        *local_dir,
               GError           **error)
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
      if (!qlean_transfer_is_plain_name (name))
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
                                  qlean_transfer_info_mtime_ns (guest_info), error);
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
  g_autoptr(QleanMachineRun) run = NULL;
  QleanTransferCtx ctx = { machine, NULL, cancellable, flags };

  if (dest == NULL)
    {
      g_autofree char *uri = g_file_get_uri (destination);

      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   _("Downloads go to local files; %s is not one"), uri);
      return FALSE;
    }

  /* Without qlean-guest, the agent moves a single file; what is not one
   * shows when reading it fails. */
  run = qlean_machine_ref_run (machine, QLEAN_MACHINE_OP_TRANSFER_FILES, FALSE, error);
  if (run == NULL)
    return FALSE;
  ctx.run = run;
  channel = qlean_machine_fs_pick_channel (run, cancellable, &pick_error);
  if (channel == NULL && pick_error != NULL)
    {
      g_propagate_prefixed_error (error, g_steal_pointer (&pick_error),
                                  _("Cannot download “%s” from machine “%s”: "), guest_source,
                                  qlean_machine_get_name (machine));
      return FALSE;
    }
  ctx.channel = channel;
  if (channel != NULL || qlean_machine_run_uses_agent_only (run))
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
      if (!qlean_transfer_is_plain_name (name))
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
      /* Over the agent, one tar stream rather than round trips per file. */
      if (channel == NULL)
        switch (qlean_agent_tar_download (&ctx, guest_source, target, error))
          {
          case QLEAN_AGENT_TAR_DONE:
            return TRUE;
          case QLEAN_AGENT_TAR_FAILED:
            return FALSE;
          case QLEAN_AGENT_TAR_NO_TAR:
          default:
            g_debug ("download: the guest has no tar; moving %s file by file", guest_source);
            break;
          }
      return download_tree (&ctx, guest_source, info, target, error);
    default:
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   _("Cannot download %s: only files and directories can be downloaded"),
                   guest_source);
      return FALSE;
    }
}

static void
download_thread (GTask        *task,
                 gpointer      source_object,
                 gpointer      task_data,
                 GCancellable *cancellable)
{
  QleanTransferArgs *args = task_data;
  GError *error = NULL;

  if (download (source_object, args->guest_path, args->file, args->flags, cancellable, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
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
 * %G_IO_ERROR_INVALID_FILENAME. Without qlean-guest in the guest, files
 * and trees come through the guest agent, as with
 * qlean_machine_upload_async(): a tree as one tar stream that the guest's
 * tar packs and Qlean unpacks under the same rules.
 *
 * Since: 0.1
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

  qlean_transfer_run (self, destination, guest_source, QLEAN_TRANSFER_FLAGS_NONE, download_thread,
                      cancellable, qlean_machine_download_async, callback, user_data);
}

/**
 * qlean_machine_download_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when everything arrived
 *
 * Since: 0.1
 */
gboolean
qlean_machine_download_finish (QleanMachine  *self,
                               GAsyncResult  *result,
                               GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_download_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

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
 *
 * Since: 0.1
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
 *
 * Since: 0.1
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

  qlean_transfer_run (self, destination, guest_source, flags, download_thread, cancellable,
                      qlean_machine_download_full_async, callback, user_data);
}

/**
 * qlean_machine_download_full_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when everything arrived
 *
 * Since: 0.1
 */
gboolean
qlean_machine_download_full_finish (QleanMachine  *self,
                                    GAsyncResult  *result,
                                    GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_download_full_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

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
 *
 * Since: 0.1
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
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!qlean_machine_check_running (self, QLEAN_MACHINE_OP_TRANSFER_FILES, error))
    return FALSE;

  return download (self, guest_source, destination, flags, cancellable, error);
}
