/* qlean-machine-fs-tree.c: the std::fs calls that change the guest's tree
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>
#include <sys/stat.h>
#include <glib/gi18n-lib.h>

#include "qlean-machine-fs.h"
#include "qlean-machine-fs-private.h"

/* Making and removing directories, removing files, renaming, linking,
 * copying, and setting permissions and times: each an async/finish/
 * blocking trio that sends one FS request through the engine in
 * qlean-machine-fs.c and answers TRUE (copy: the bytes copied). They
 * are apart from the calls that read metadata or contents because
 * they only ever need the guest's yes or no. */

static QleanFsRequest *
mkdir_request (const char *path,
               gboolean    all)
{
  QleanFsRequest *req = qlean_fs_request_new (QLEAN_GUEST_FS_MKDIR, path, NULL, QLEAN_FS_ACTION_CREATE_DIR);

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
 *
 * Since: 0.1
 */
void
qlean_machine_create_dir_async (QleanMachine        *self,
                                const char          *path,
                                GCancellable        *cancellable,
                                GAsyncReadyCallback  callback,
                                gpointer             user_data)
{
  g_return_if_fail (QLEAN_IS_MACHINE (self));
  g_return_if_fail (path != NULL);

  qlean_fs_request_async (self, mkdir_request (path, FALSE), cancellable,
                          qlean_machine_create_dir_async, callback, user_data);
}

/**
 * qlean_machine_create_dir_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when the directory was made
 *
 * Since: 0.1
 */
gboolean
qlean_machine_create_dir_finish (QleanMachine  *self,
                                 GAsyncResult  *result,
                                 GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_create_dir_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return qlean_fs_bool_finish (self, result, error);
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
 *
 * Since: 0.1
 */
gboolean
qlean_machine_create_dir (QleanMachine  *self,
                          const char    *path,
                          GCancellable  *cancellable,
                          GError       **error)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE (self), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return qlean_fs_bool_run (self, mkdir_request (path, FALSE), cancellable, error);
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
 *
 * Since: 0.1
 */
void
qlean_machine_create_dir_all_async (QleanMachine        *self,
                                    const char          *path,
                                    GCancellable        *cancellable,
                                    GAsyncReadyCallback  callback,
                                    gpointer             user_data)
{
  g_return_if_fail (QLEAN_IS_MACHINE (self));
  g_return_if_fail (path != NULL);

  qlean_fs_request_async (self, mkdir_request (path, TRUE), cancellable,
                          qlean_machine_create_dir_all_async, callback, user_data);
}

/**
 * qlean_machine_create_dir_all_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when the directory exists
 *
 * Since: 0.1
 */
gboolean
qlean_machine_create_dir_all_finish (QleanMachine  *self,
                                     GAsyncResult  *result,
                                     GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_create_dir_all_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return qlean_fs_bool_finish (self, result, error);
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
 *
 * Since: 0.1
 */
gboolean
qlean_machine_create_dir_all (QleanMachine  *self,
                              const char    *path,
                              GCancellable  *cancellable,
                              GError       **error)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE (self), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return qlean_fs_bool_run (self, mkdir_request (path, TRUE), cancellable, error);
}

/* The trios whose whole work is one FS request on one or two paths
 * and whose answer is TRUE. Each public function checks its arguments
 * (the _finish its source tag) before it builds the request. */
#define DEFINE_PATH_CALL(name, OP, action)                                      \
  void                                                                          \
  qlean_machine_##name##_async (QleanMachine        *self,                      \
                                const char          *path,                      \
                                GCancellable        *cancellable,               \
                                GAsyncReadyCallback  callback,                  \
                                gpointer             user_data)                 \
  {                                                                             \
    g_return_if_fail (QLEAN_IS_MACHINE (self));                                 \
    g_return_if_fail (path != NULL);                                            \
                                                                                \
    qlean_fs_request_async (self, qlean_fs_request_new (OP, path, NULL, action),\
                            cancellable, qlean_machine_##name##_async,          \
                            callback, user_data);                               \
  }                                                                             \
  gboolean                                                                      \
  qlean_machine_##name##_finish (QleanMachine  *self,                           \
                                 GAsyncResult  *result,                         \
                                 GError       **error)                          \
  {                                                                             \
    g_return_val_if_fail (g_task_is_valid (result, self), FALSE);               \
    g_return_val_if_fail (g_async_result_is_tagged (result,                     \
                                                    qlean_machine_##name##_async), \
                          FALSE);                                               \
    g_return_val_if_fail (error == NULL || *error == NULL, FALSE);              \
                                                                                \
    return qlean_fs_bool_finish (self, result, error);                          \
  }                                                                             \
  gboolean                                                                      \
  qlean_machine_##name (QleanMachine  *self,                                    \
                        const char    *path,                                    \
                        GCancellable  *cancellable,                             \
                        GError       **error)                                   \
  {                                                                             \
    g_return_val_if_fail (QLEAN_IS_MACHINE (self), FALSE);                      \
    g_return_val_if_fail (path != NULL, FALSE);                                 \
    g_return_val_if_fail (error == NULL || *error == NULL, FALSE);              \
                                                                                \
    return qlean_fs_bool_run (self, qlean_fs_request_new (OP, path, NULL, action), \
                              cancellable, error);                              \
  }

#define DEFINE_TWO_PATH_CALL(name, OP, action, first, second)                   \
  void                                                                          \
  qlean_machine_##name##_async (QleanMachine        *self,                      \
                                const char          *first,                     \
                                const char          *second,                    \
                                GCancellable        *cancellable,               \
                                GAsyncReadyCallback  callback,                  \
                                gpointer             user_data)                 \
  {                                                                             \
    g_return_if_fail (QLEAN_IS_MACHINE (self));                                 \
    g_return_if_fail (first != NULL);                                           \
    g_return_if_fail (second != NULL);                                          \
                                                                                \
    qlean_fs_request_async (self, qlean_fs_request_new (OP, first, second, action), \
                            cancellable, qlean_machine_##name##_async,          \
                            callback, user_data);                               \
  }                                                                             \
  gboolean                                                                      \
  qlean_machine_##name##_finish (QleanMachine  *self,                           \
                                 GAsyncResult  *result,                         \
                                 GError       **error)                          \
  {                                                                             \
    g_return_val_if_fail (g_task_is_valid (result, self), FALSE);               \
    g_return_val_if_fail (g_async_result_is_tagged (result,                     \
                                                    qlean_machine_##name##_async), \
                          FALSE);                                               \
    g_return_val_if_fail (error == NULL || *error == NULL, FALSE);              \
                                                                                \
    return qlean_fs_bool_finish (self, result, error);                          \
  }                                                                             \
  gboolean                                                                      \
  qlean_machine_##name (QleanMachine  *self,                                    \
                        const char    *first,                                   \
                        const char    *second,                                  \
                        GCancellable  *cancellable,                             \
                        GError       **error)                                   \
  {                                                                             \
    g_return_val_if_fail (QLEAN_IS_MACHINE (self), FALSE);                      \
    g_return_val_if_fail (first != NULL, FALSE);                                \
    g_return_val_if_fail (second != NULL, FALSE);                               \
    g_return_val_if_fail (error == NULL || *error == NULL, FALSE);              \
                                                                                \
    return qlean_fs_bool_run (self, qlean_fs_request_new (OP, first, second, action), \
                              cancellable, error);                              \
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
 *
 * Since: 0.1
 */
/**
 * qlean_machine_remove_file_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when the file is gone
 *
 * Since: 0.1
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
 *
 * Since: 0.1
 */
DEFINE_PATH_CALL (remove_file, QLEAN_GUEST_FS_UNLINK, QLEAN_FS_ACTION_REMOVE)

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
 *
 * Since: 0.1
 */
/**
 * qlean_machine_remove_dir_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when the directory is gone
 *
 * Since: 0.1
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
 *
 * Since: 0.1
 */
DEFINE_PATH_CALL (remove_dir, QLEAN_GUEST_FS_RMDIR, QLEAN_FS_ACTION_REMOVE_DIR)

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
 *
 * Since: 0.1
 */
/**
 * qlean_machine_remove_dir_all_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when the tree is gone
 *
 * Since: 0.1
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
 *
 * Since: 0.1
 */
DEFINE_PATH_CALL (remove_dir_all, QLEAN_GUEST_FS_REMOVE_ALL, QLEAN_FS_ACTION_REMOVE)

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
 *
 * Since: 0.1
 */
/**
 * qlean_machine_rename_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when renamed
 *
 * Since: 0.1
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
 *
 * Since: 0.1
 */
DEFINE_TWO_PATH_CALL (rename, QLEAN_GUEST_FS_RENAME, QLEAN_FS_ACTION_RENAME, from, to)

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
 *
 * Since: 0.1
 */
/**
 * qlean_machine_hard_link_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when linked
 *
 * Since: 0.1
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
 *
 * Since: 0.1
 */
DEFINE_TWO_PATH_CALL (hard_link, QLEAN_GUEST_FS_LINK, QLEAN_FS_ACTION_HARD_LINK, original, link)

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
 *
 * Since: 0.1
 */
/**
 * qlean_machine_symlink_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when made
 *
 * Since: 0.1
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
 *
 * Since: 0.1
 */
DEFINE_TWO_PATH_CALL (symlink, QLEAN_GUEST_FS_SYMLINK, QLEAN_FS_ACTION_SYMLINK, target, link)

/* copy */

/* COPY's SIZE, or -1 with @error set: the guest may send any 64 bits,
 * and a size above G_MAXINT64 would come out as a negative count (-1
 * among them, which says "failed" without an error). */
static gint64
copied_size (QleanMachine    *machine,
             QleanFsRequest  *req,
             GError         **error)
{
  g_autofree char *display = g_filename_display_name (req->path);
  const guint8 *value;
  gsize len;
  guint64 size;

  if (req->done == NULL || !qlean_fs_find_tag (req->done, QLEAN_GUEST_TAG_SIZE, &value, &len) || len < 8)
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


static QleanFsRequest *
copy_request (const char *from,
              const char *to)
{
  return qlean_fs_request_new (QLEAN_GUEST_FS_COPY, from, to, QLEAN_FS_ACTION_COPY);
}

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
 *
 * Since: 0.1
 */
void
qlean_machine_copy_async (QleanMachine        *self,
                          const char          *from,
                          const char          *to,
                          GCancellable        *cancellable,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  g_return_if_fail (QLEAN_IS_MACHINE (self));
  g_return_if_fail (from != NULL);
  g_return_if_fail (to != NULL);

  qlean_fs_request_async (self, copy_request (from, to),
                          cancellable, qlean_machine_copy_async, callback, user_data);
}

/**
 * qlean_machine_copy_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: the number of bytes copied, or -1 with @error set
 *
 * Since: 0.1
 */
gint64
qlean_machine_copy_finish (QleanMachine  *self,
                           GAsyncResult  *result,
                           GError       **error)
{
  QleanFsRequest *req;

  g_return_val_if_fail (g_task_is_valid (result, self), -1);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_copy_async), -1);
  g_return_val_if_fail (error == NULL || *error == NULL, -1);

  req = qlean_fs_request_finish (self, result, error);
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
 *
 * Since: 0.1
 */
gint64
qlean_machine_copy (QleanMachine  *self,
                    const char    *from,
                    const char    *to,
                    GCancellable  *cancellable,
                    GError       **error)
{
  g_autoptr(GTask) task = NULL;

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), -1);
  g_return_val_if_fail (from != NULL, -1);
  g_return_val_if_fail (to != NULL, -1);
  g_return_val_if_fail (error == NULL || *error == NULL, -1);

  task = qlean_fs_request_run (self, copy_request (from, to), cancellable, error);
  return task ? copied_size (self, g_task_get_task_data (task), error) : -1;
}

/* set_permissions */

static QleanFsRequest *
chmod_request (const char *path,
               guint       mode)
{
  QleanFsRequest *req = qlean_fs_request_new (QLEAN_GUEST_FS_CHMOD, path, NULL, QLEAN_FS_ACTION_SET_PERMISSIONS);

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
 *
 * Since: 0.1
 */
void
qlean_machine_set_permissions_async (QleanMachine        *self,
                                     const char          *path,
                                     guint                mode,
                                     GCancellable        *cancellable,
                                     GAsyncReadyCallback  callback,
                                     gpointer             user_data)
{
  g_return_if_fail (QLEAN_IS_MACHINE (self));
  g_return_if_fail (path != NULL);

  qlean_fs_request_async (self, chmod_request (path, mode), cancellable,
                          qlean_machine_set_permissions_async, callback, user_data);
}

/**
 * qlean_machine_set_permissions_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when set
 *
 * Since: 0.1
 */
gboolean
qlean_machine_set_permissions_finish (QleanMachine  *self,
                                      GAsyncResult  *result,
                                      GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_set_permissions_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return qlean_fs_bool_finish (self, result, error);
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
 *
 * Since: 0.1
 */
gboolean
qlean_machine_set_permissions (QleanMachine  *self,
                               const char    *path,
                               guint          mode,
                               GCancellable  *cancellable,
                               GError       **error)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE (self), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return qlean_fs_bool_run (self, chmod_request (path, mode), cancellable, error);
}

gboolean
qlean_machine_fs_set_mtime (QleanMachine  *self,
                            const char    *path,
                            gint64         mtime_ns,
                            GCancellable  *cancellable,
                            GError       **error)
{
  QleanFsRequest *req = qlean_fs_request_new (QLEAN_GUEST_FS_UTIME, path, NULL, QLEAN_FS_ACTION_SET_TIME);

  req->has_mtime = TRUE;
  req->mtime_ns = mtime_ns;
  return qlean_fs_bool_run (self, req, cancellable, error);
}
