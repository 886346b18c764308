/* qlean-machine-fs-info.c: metadata, links and directory listings from the guest
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>
#include <sys/stat.h>
#include <glib/gi18n-lib.h>

#include "qlean-machine-fs.h"
#include "qlean-machine-fs-private.h"

/* The std::fs calls that describe rather than change: metadata,
 * symlink_metadata, exists, read_link and read_dir, and the GFileInfo
 * they build from the guest's stat (transfers use that too). They are
 * apart from the tree calls because their answers need decoding: a
 * STAT or TARGET in the DONE payload, or a listing of DIRENT entries. */

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
info_from_done (QleanFsRequest  *req,
                GError         **error)
{
  const guint8 *value;
  gsize len;
  QleanGuestStat st;
  g_autofree char *target = NULL;
  g_autofree char *name = g_path_get_basename (req->path);

  if (req->done == NULL || !qlean_fs_find_tag (req->done, QLEAN_GUEST_TAG_STAT, &value, &len) ||
      !qlean_guest_decode_stat (value, len, &st))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   _("qlean-guest answered a stat without the file's status"));
      return NULL;
    }

  /* TARGET comes whenever PATH itself is a link, followed or not. */
  if (qlean_fs_find_tag (req->done, QLEAN_GUEST_TAG_TARGET, &value, &len))
    target = g_strndup ((const char *) value, len);

  return qlean_file_info_from_stat (&st, name, target, target != NULL);
}

/* metadata, symlink_metadata, exists */

static QleanFsRequest *
stat_request (const char *path,
              gboolean    follow)
{
  QleanFsRequest *req = qlean_fs_request_new (QLEAN_GUEST_FS_STAT, path, NULL, QLEAN_FS_ACTION_METADATA);

  req->flags = follow ? 0 : QLEAN_GUEST_FLAG_NOFOLLOW;
  return req;
}

static GFileInfo *
stat_finish (QleanMachine  *self,
             GAsyncResult  *result,
             GError       **error)
{
  QleanFsRequest *req = qlean_fs_request_finish (self, result, error);

  return req ? info_from_done (req, error) : NULL;
}

static GFileInfo *
stat_run (QleanMachine    *self,
          QleanFsRequest  *req,
          GCancellable    *cancellable,
          GError         **error)
{
  g_autoptr(GTask) task = qlean_fs_request_run (self, req, cancellable, error);

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
 *
 * Since: 0.1
 */
void
qlean_machine_metadata_async (QleanMachine        *self,
                              const char          *path,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data)
{
  g_return_if_fail (QLEAN_IS_MACHINE (self));
  g_return_if_fail (path != NULL);

  qlean_fs_request_async (self, stat_request (path, TRUE), cancellable,
                          qlean_machine_metadata_async, callback, user_data);
}

/**
 * qlean_machine_metadata_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the metadata, or %NULL with @error set
 *
 * Since: 0.1
 */
GFileInfo *
qlean_machine_metadata_finish (QleanMachine  *self,
                               GAsyncResult  *result,
                               GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_metadata_async), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

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
 *
 * Since: 0.1
 */
GFileInfo *
qlean_machine_metadata (QleanMachine  *self,
                        const char    *path,
                        GCancellable  *cancellable,
                        GError       **error)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE (self), NULL);
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

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
 *
 * Since: 0.1
 */
void
qlean_machine_symlink_metadata_async (QleanMachine        *self,
                                      const char          *path,
                                      GCancellable        *cancellable,
                                      GAsyncReadyCallback  callback,
                                      gpointer             user_data)
{
  g_return_if_fail (QLEAN_IS_MACHINE (self));
  g_return_if_fail (path != NULL);

  qlean_fs_request_async (self, stat_request (path, FALSE), cancellable,
                          qlean_machine_symlink_metadata_async, callback, user_data);
}

/**
 * qlean_machine_symlink_metadata_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the metadata, or %NULL with @error set
 *
 * Since: 0.1
 */
GFileInfo *
qlean_machine_symlink_metadata_finish (QleanMachine  *self,
                                       GAsyncResult  *result,
                                       GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_symlink_metadata_async), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

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
 *
 * Since: 0.1
 */
GFileInfo *
qlean_machine_symlink_metadata (QleanMachine  *self,
                                const char    *path,
                                GCancellable  *cancellable,
                                GError       **error)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE (self), NULL);
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

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
 *
 * Since: 0.1
 */
void
qlean_machine_exists_async (QleanMachine        *self,
                            const char          *path,
                            GCancellable        *cancellable,
                            GAsyncReadyCallback  callback,
                            gpointer             user_data)
{
  g_return_if_fail (QLEAN_IS_MACHINE (self));
  g_return_if_fail (path != NULL);

  qlean_fs_request_async (self, stat_request (path, TRUE), cancellable,
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
 *
 * Since: 0.1
 */
gboolean
qlean_machine_exists_finish (QleanMachine  *self,
                             GAsyncResult  *result,
                             GError       **error)
{
  GError *local_error = NULL;
  gboolean found;

  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_exists_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  found = qlean_fs_request_finish (self, result, &local_error) != NULL;
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
 *
 * Since: 0.1
 */
gboolean
qlean_machine_exists (QleanMachine  *self,
                      const char    *path,
                      GCancellable  *cancellable,
                      GError       **error)
{
  GError *local_error = NULL;
  g_autoptr(GTask) task = NULL;

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  task = qlean_fs_request_run (self, stat_request (path, TRUE), cancellable, &local_error);
  return exists_from (task != NULL, local_error, error);
}

/* read_link */

static char *
target_from (QleanFsRequest  *req,
             GError         **error)
{
  const guint8 *value;
  gsize len;

  if (req->done == NULL || !qlean_fs_find_tag (req->done, QLEAN_GUEST_TAG_TARGET, &value, &len))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   _("qlean-guest answered a read-link without the target"));
      return NULL;
    }

  return g_strndup ((const char *) value, len);
}

static QleanFsRequest *
readlink_request (const char *path)
{
  return qlean_fs_request_new (QLEAN_GUEST_FS_READLINK, path, NULL, QLEAN_FS_ACTION_READ_LINK);
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
 *
 * Since: 0.1
 */
void
qlean_machine_read_link_async (QleanMachine        *self,
                               const char          *path,
                               GCancellable        *cancellable,
                               GAsyncReadyCallback  callback,
                               gpointer             user_data)
{
  g_return_if_fail (QLEAN_IS_MACHINE (self));
  g_return_if_fail (path != NULL);

  qlean_fs_request_async (self, readlink_request (path),
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
 *
 * Since: 0.1
 */
char *
qlean_machine_read_link_finish (QleanMachine  *self,
                                GAsyncResult  *result,
                                GError       **error)
{
  QleanFsRequest *req;

  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_read_link_async), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  req = qlean_fs_request_finish (self, result, error);
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
 *
 * Since: 0.1
 */
char *
qlean_machine_read_link (QleanMachine  *self,
                         const char    *path,
                         GCancellable  *cancellable,
                         GError       **error)
{
  g_autoptr(GTask) task = NULL;

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), NULL);
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  task = qlean_fs_request_run (self, readlink_request (path), cancellable, error);
  return task ? target_from (g_task_get_task_data (task), error) : NULL;
}

/* read_dir */

static GPtrArray *
listing_from (QleanFsRequest  *req,
              GError         **error)
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

static QleanFsRequest *
readdir_request (const char *path)
{
  QleanFsRequest *req = qlean_fs_request_new (QLEAN_GUEST_FS_READDIR, path, NULL, QLEAN_FS_ACTION_READ_DIR);

  req->kind = QLEAN_FS_RESULT_LISTING;
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
 *
 * Since: 0.1
 */
void
qlean_machine_read_dir_async (QleanMachine        *self,
                              const char          *path,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data)
{
  g_return_if_fail (QLEAN_IS_MACHINE (self));
  g_return_if_fail (path != NULL);

  qlean_fs_request_async (self, readdir_request (path), cancellable,
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
 *
 * Since: 0.1
 */
GPtrArray *
qlean_machine_read_dir_finish (QleanMachine  *self,
                               GAsyncResult  *result,
                               GError       **error)
{
  QleanFsRequest *req;

  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_read_dir_async), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  req = qlean_fs_request_finish (self, result, error);
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
 *
 * Since: 0.1
 */
GPtrArray *
qlean_machine_read_dir (QleanMachine  *self,
                        const char    *path,
                        GCancellable  *cancellable,
                        GError       **error)
{
  g_autoptr(GTask) task = NULL;

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), NULL);
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  task = qlean_fs_request_run (self, readdir_request (path), cancellable, error);
  return task ? listing_from (g_task_get_task_data (task), error) : NULL;
}
