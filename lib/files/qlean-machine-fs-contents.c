/* qlean-machine-fs-contents.c: whole files read and written
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>
#include <sys/stat.h>
#include <glib/gi18n-lib.h>

#include "qlean-machine-fs.h"
#include "qlean-machine-fs-private.h"

/* read, read_to_string and write: a GET or PUT stream instead of an FS
 * request, which moves a file's bytes rather than a yes or no. Where
 * qlean-guest does not answer, the request engine hands these (and only
 * these) to the guest agent's file calls. Big files stream with the
 * transfers (qlean-machine-upload.c, qlean-machine-download.c) instead. */

/* read, read_to_string */

static QleanFsRequest *
get_request (const char *path)
{
  QleanFsRequest *req = qlean_fs_request_new (0, path, NULL, QLEAN_FS_ACTION_READ);

  req->request = QLEAN_GUEST_FRAME_GET;
  req->kind = QLEAN_FS_RESULT_CONTENTS;
  return req;
}

static GBytes *
contents_from (QleanFsRequest *req)
{
  return g_byte_array_free_to_bytes (g_steal_pointer (&req->collected));
}

static char *
text_from (QleanMachine    *self,
           QleanFsRequest  *req,
           GError         **error)
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
 *
 * Since: 0.1
 */
void
qlean_machine_read_async (QleanMachine        *self,
                          const char          *path,
                          GCancellable        *cancellable,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  g_return_if_fail (QLEAN_IS_MACHINE (self));
  g_return_if_fail (path != NULL);

  qlean_fs_request_async (self, get_request (path), cancellable, qlean_machine_read_async,
                          callback, user_data);
}

/**
 * qlean_machine_read_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the contents, or %NULL with @error set
 *
 * Since: 0.1
 */
GBytes *
qlean_machine_read_finish (QleanMachine  *self,
                           GAsyncResult  *result,
                           GError       **error)
{
  QleanFsRequest *req;

  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_read_async), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  req = qlean_fs_request_finish (self, result, error);
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
 *
 * Since: 0.1
 */
GBytes *
qlean_machine_read (QleanMachine  *self,
                    const char    *path,
                    GCancellable  *cancellable,
                    GError       **error)
{
  g_autoptr(GTask) task = NULL;

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), NULL);
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  task = qlean_fs_request_run (self, get_request (path), cancellable, error);
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
 *
 * Since: 0.1
 */
void
qlean_machine_read_to_string_async (QleanMachine        *self,
                                    const char          *path,
                                    GCancellable        *cancellable,
                                    GAsyncReadyCallback  callback,
                                    gpointer             user_data)
{
  g_return_if_fail (QLEAN_IS_MACHINE (self));
  g_return_if_fail (path != NULL);

  qlean_fs_request_async (self, get_request (path), cancellable, qlean_machine_read_to_string_async,
                          callback, user_data);
}

/**
 * qlean_machine_read_to_string_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the text, or %NULL with @error set
 *
 * Since: 0.1
 */
char *
qlean_machine_read_to_string_finish (QleanMachine  *self,
                                     GAsyncResult  *result,
                                     GError       **error)
{
  QleanFsRequest *req;

  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_read_to_string_async), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  req = qlean_fs_request_finish (self, result, error);
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
 *
 * Since: 0.1
 */
char *
qlean_machine_read_to_string (QleanMachine  *self,
                              const char    *path,
                              GCancellable  *cancellable,
                              GError       **error)
{
  g_autoptr(GTask) task = NULL;

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), NULL);
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  task = qlean_fs_request_run (self, get_request (path), cancellable, error);
  return task ? text_from (self, g_task_get_task_data (task), error) : NULL;
}

/* write */

static QleanFsRequest *
put_request (const char *path,
             GBytes     *contents)
{
  QleanFsRequest *req = qlean_fs_request_new (0, path, NULL, QLEAN_FS_ACTION_WRITE);

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
 *
 * Since: 0.1
 */
void
qlean_machine_write_async (QleanMachine        *self,
                           const char          *path,
                           GBytes              *contents,
                           GCancellable        *cancellable,
                           GAsyncReadyCallback  callback,
                           gpointer             user_data)
{
  g_return_if_fail (QLEAN_IS_MACHINE (self));
  g_return_if_fail (path != NULL);
  g_return_if_fail (contents != NULL);

  qlean_fs_request_async (self, put_request (path, contents), cancellable, qlean_machine_write_async,
                          callback, user_data);
}

/**
 * qlean_machine_write_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when written
 *
 * Since: 0.1
 */
gboolean
qlean_machine_write_finish (QleanMachine  *self,
                            GAsyncResult  *result,
                            GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_write_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return qlean_fs_bool_finish (self, result, error);
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
 *
 * Since: 0.1
 */
gboolean
qlean_machine_write (QleanMachine  *self,
                     const char    *path,
                     GBytes        *contents,
                     GCancellable  *cancellable,
                     GError       **error)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE (self), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (contents != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return qlean_fs_bool_run (self, put_request (path, contents), cancellable, error);
}
