/* qlean-qga-file.c: the guest agent's file calls
 *
 * guest-file-open, -read, -write and -close: a file in the guest through
 * a handle the agent keeps. Apart from the other typed calls
 * (qlean-qga-commands.c) because they are a family of their own, with
 * data both ways (base64 in the JSON) and counts that callers slice by.
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <glib/gi18n-lib.h>

#include "qlean-json-framer-private.h"
#include "qlean-qga-client-private.h"
#include "qlean-qga-error.h"
#include "qlean-qga-reply-private.h"
#include "qlean-task-private.h"

/* guest-file-* */

static JsonObject *
file_open_arguments (const char *path,
                     const char *mode)
{
  JsonObject *arguments = json_object_new ();

  json_object_set_string_member (arguments, "path", path);
  if (mode != NULL)
    json_object_set_string_member (arguments, "mode", mode);
  return arguments;
}

/**
 * qlean_qga_client_file_open_async:
 * @self: a #QleanQgaClient
 * @path: a path in the guest
 * @mode: (nullable): an fopen() mode, `r` when %NULL
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the handle
 * @user_data: data for @callback
 *
 * Runs `guest-file-open`.
 *
 * Since: 0.1
 */
void
qlean_qga_client_file_open_async (QleanQgaClient      *self,
                                  const char          *path,
                                  const char          *mode,
                                  GCancellable        *cancellable,
                                  GAsyncReadyCallback  callback,
                                  gpointer             user_data)
{
  g_autoptr(JsonObject) arguments = NULL;

  g_return_if_fail (QLEAN_IS_QGA_CLIENT (self));
  g_return_if_fail (path != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  arguments = file_open_arguments (path, mode);
  qlean_qga_client_command_async (self, qlean_qga_client_file_open_async, "guest-file-open",
                                  arguments, cancellable, callback, user_data);
}

static gint64
file_handle_from_reply (JsonNode  *reply,
                        GError   **error)
{
  if (reply == NULL)
    return -1;

  if (json_node_get_value_type (reply) != G_TYPE_INT64 || json_node_get_int (reply) < 0)
    {
      g_propagate_error (error,
                         qlean_qga_reply_shape_error (_("Guest agent command “%s” returned a "
                                                        "reply without a handle"),
                                                      "guest-file-open"));
      return -1;
    }

  return json_node_get_int (reply);
}

/**
 * qlean_qga_client_file_open_finish:
 * @self: a #QleanQgaClient
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: the file handle, or -1 with @error set
 *
 * Since: 0.1
 */
gint64
qlean_qga_client_file_open_finish (QleanQgaClient  *self,
                                   GAsyncResult    *result,
                                   GError         **error)
{
  g_autoptr(JsonNode) reply = NULL;

  g_return_val_if_fail (QLEAN_IS_QGA_CLIENT (self), -1);
  g_return_val_if_fail (g_task_is_valid (result, self), -1);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_qga_client_file_open_async), -1);
  g_return_val_if_fail (error == NULL || *error == NULL, -1);

  reply = qlean_qga_client_command_finish (self, result, error);
  return file_handle_from_reply (reply, error);
}

/**
 * qlean_qga_client_file_open:
 * @self: a #QleanQgaClient
 * @path: a path in the guest
 * @mode: (nullable): an fopen() mode, `r` when %NULL
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_qga_client_file_open_async().
 *
 * Returns: the file handle, or -1 with @error set
 *
 * Since: 0.1
 */
gint64
qlean_qga_client_file_open (QleanQgaClient  *self,
                            const char      *path,
                            const char      *mode,
                            GCancellable    *cancellable,
                            GError         **error)
{
  g_autoptr(JsonObject) arguments = NULL;
  g_autoptr(JsonNode) reply = NULL;

  g_return_val_if_fail (QLEAN_IS_QGA_CLIENT (self), -1);
  g_return_val_if_fail (path != NULL, -1);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), -1);
  g_return_val_if_fail (error == NULL || *error == NULL, -1);

  arguments = file_open_arguments (path, mode);
  reply = qlean_qga_client_execute (self, "guest-file-open", arguments, cancellable, error);
  return file_handle_from_reply (reply, error);
}

static JsonObject *
file_read_arguments (gint64 handle,
                     gsize  count)
{
  JsonObject *arguments = json_object_new ();

  json_object_set_int_member (arguments, "handle", handle);
  json_object_set_int_member (arguments, "count", (gint64) count);
  return arguments;
}

static GBytes *
file_read_from_reply (JsonNode  *reply,
                      gboolean  *eof,
                      GError   **error)
{
  static const QleanQgaMemberSpec members[] = {
    { "buf-b64", QLEAN_QGA_SPEC_STRING, TRUE },
    { "eof", QLEAN_QGA_SPEC_BOOLEAN, FALSE },
  };
  JsonObject *object;
  GBytes *data;

  if (reply == NULL)
    return NULL;

  object = qlean_qga_reply_object (reply, "guest-file-read", error);
  if (object == NULL)
    return NULL;

  if (!qlean_qga_reply_members_ok (object, "guest-file-read", "", members,
                                   G_N_ELEMENTS (members), error))
    return NULL;

  data = qlean_qga_reply_base64_member (object, "buf-b64");

  if (eof != NULL)
    *eof = qlean_qga_reply_bool_member (object, "eof");
  return data;
}

/**
 * qlean_qga_client_file_read_async:
 * @self: a #QleanQgaClient
 * @handle: a handle from qlean_qga_client_file_open_async()
 * @count: how many bytes to read at most
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the data
 * @user_data: data for @callback
 *
 * Runs `guest-file-read`.
 *
 * Since: 0.1
 */
void
qlean_qga_client_file_read_async (QleanQgaClient      *self,
                                  gint64               handle,
                                  gsize                count,
                                  GCancellable        *cancellable,
                                  GAsyncReadyCallback  callback,
                                  gpointer             user_data)
{
  g_autoptr(JsonObject) arguments = NULL;

  g_return_if_fail (QLEAN_IS_QGA_CLIENT (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  arguments = file_read_arguments (handle, count);
  qlean_qga_client_command_async (self, qlean_qga_client_file_read_async, "guest-file-read",
                                  arguments, cancellable, callback, user_data);
}

/**
 * qlean_qga_client_file_read_finish:
 * @self: a #QleanQgaClient
 * @result: the result passed to the callback
 * @eof: (out) (optional): whether the end of the file was reached
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the data read, or %NULL with @error set
 *
 * Since: 0.1
 */
GBytes *
qlean_qga_client_file_read_finish (QleanQgaClient  *self,
                                   GAsyncResult    *result,
                                   gboolean        *eof,
                                   GError         **error)
{
  g_autoptr(JsonNode) reply = NULL;

  g_return_val_if_fail (QLEAN_IS_QGA_CLIENT (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_qga_client_file_read_async), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  reply = qlean_qga_client_command_finish (self, result, error);
  return file_read_from_reply (reply, eof, error);
}

/**
 * qlean_qga_client_file_read:
 * @self: a #QleanQgaClient
 * @handle: a file handle
 * @count: how many bytes to read at most
 * @eof: (out) (optional): whether the end of the file was reached
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_qga_client_file_read_async().
 *
 * Returns: (transfer full): the data read, or %NULL with @error set
 *
 * Since: 0.1
 */
GBytes *
qlean_qga_client_file_read (QleanQgaClient  *self,
                            gint64           handle,
                            gsize            count,
                            gboolean        *eof,
                            GCancellable    *cancellable,
                            GError         **error)
{
  g_autoptr(JsonObject) arguments = NULL;
  g_autoptr(JsonNode) reply = NULL;

  g_return_val_if_fail (QLEAN_IS_QGA_CLIENT (self), NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  arguments = file_read_arguments (handle, count);
  reply = qlean_qga_client_execute (self, "guest-file-read", arguments, cancellable, error);
  return file_read_from_reply (reply, eof, error);
}

static JsonObject *
file_write_arguments (gint64  handle,
                      GBytes *data)
{
  JsonObject *arguments = json_object_new ();
  gsize len;
  const guchar *bytes = g_bytes_get_data (data, &len);
  g_autofree char *encoded = g_base64_encode (bytes, len);

  json_object_set_int_member (arguments, "handle", handle);
  json_object_set_string_member (arguments, "buf-b64", encoded);
  json_object_set_int_member (arguments, "count", (gint64) len);
  return arguments;
}

/* The count is the agent's word, and callers slice what is left to
 * write by it: more than was sent must not get through. */
static gssize
file_write_from_reply (JsonNode  *reply,
                       gsize      sent,
                       GError   **error)
{
  gint64 count;

  if (reply == NULL ||
      !qlean_qga_reply_int_member (reply, "guest-file-write", "count", &count, error))
    return -1;
  if (count < 0 || (guint64) count > sent)
    {
      g_propagate_error (error,
                         qlean_qga_reply_shape_error (_("Guest agent command “%s” returned a reply "
                                                        "without a count between 0 and the %"
                                                        G_GSIZE_FORMAT " bytes sent"),
                                                      "guest-file-write", sent));
      return -1;
    }

  return (gssize) count;
}

static void
file_write_done_cb (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  g_autoptr(JsonNode) reply = NULL;
  GError *error = NULL;
  gssize count;

  reply = qlean_qga_client_command_finish (QLEAN_QGA_CLIENT (source), result, &error);
  count = file_write_from_reply (reply, GPOINTER_TO_SIZE (g_task_get_task_data (task)), &error);
  if (count < 0)
    g_task_return_error (task, error);
  else
    g_task_return_int (task, count);
}

/**
 * qlean_qga_client_file_write_async:
 * @self: a #QleanQgaClient
 * @handle: a file handle
 * @data: the bytes to write
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the count written
 * @user_data: data for @callback
 *
 * Runs `guest-file-write`. A count from the agent that is negative or
 * larger than @data fails with %QLEAN_QGA_ERROR_PROTOCOL.
 *
 * Since: 0.1
 */
void
qlean_qga_client_file_write_async (QleanQgaClient      *self,
                                   gint64               handle,
                                   GBytes              *data,
                                   GCancellable        *cancellable,
                                   GAsyncReadyCallback  callback,
                                   gpointer             user_data)
{
  g_autoptr(JsonObject) arguments = NULL;
  GTask *task = NULL;

  g_return_if_fail (QLEAN_IS_QGA_CLIENT (self));
  g_return_if_fail (data != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  arguments = file_write_arguments (handle, data);
  task = qlean_task_new (self, cancellable, callback, user_data,
                         qlean_qga_client_file_write_async, "[qlean] guest-file-write");
  g_task_set_task_data (task, GSIZE_TO_POINTER (g_bytes_get_size (data)), NULL);
  qlean_qga_client_command_async (self, qlean_qga_client_file_write_async, "guest-file-write",
                                  arguments, cancellable, file_write_done_cb, task);
}

/**
 * qlean_qga_client_file_write_finish:
 * @self: a #QleanQgaClient
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: the number of bytes written, or -1 with @error set
 *
 * Since: 0.1
 */
gssize
qlean_qga_client_file_write_finish (QleanQgaClient  *self,
                                    GAsyncResult    *result,
                                    GError         **error)
{
  g_return_val_if_fail (QLEAN_IS_QGA_CLIENT (self), -1);
  g_return_val_if_fail (g_task_is_valid (result, self), -1);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_qga_client_file_write_async), -1);
  g_return_val_if_fail (error == NULL || *error == NULL, -1);

  return g_task_propagate_int (G_TASK (result), error);
}

/**
 * qlean_qga_client_file_write:
 * @self: a #QleanQgaClient
 * @handle: a file handle
 * @data: the bytes to write
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_qga_client_file_write_async().
 *
 * Returns: the number of bytes written, or -1 with @error set
 *
 * Since: 0.1
 */
gssize
qlean_qga_client_file_write (QleanQgaClient  *self,
                             gint64           handle,
                             GBytes          *data,
                             GCancellable    *cancellable,
                             GError         **error)
{
  g_autoptr(JsonObject) arguments = NULL;
  g_autoptr(JsonNode) reply = NULL;

  g_return_val_if_fail (QLEAN_IS_QGA_CLIENT (self), -1);
  g_return_val_if_fail (data != NULL, -1);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), -1);
  g_return_val_if_fail (error == NULL || *error == NULL, -1);

  arguments = file_write_arguments (handle, data);
  reply = qlean_qga_client_execute (self, "guest-file-write", arguments, cancellable, error);
  return file_write_from_reply (reply, g_bytes_get_size (data), error);
}

static JsonObject *
handle_arguments (gint64 handle)
{
  JsonObject *arguments = json_object_new ();

  json_object_set_int_member (arguments, "handle", handle);
  return arguments;
}

/**
 * qlean_qga_client_file_close_async:
 * @self: a #QleanQgaClient
 * @handle: a file handle
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when done
 * @user_data: data for @callback
 *
 * Runs `guest-file-close`.
 *
 * Since: 0.1
 */
void
qlean_qga_client_file_close_async (QleanQgaClient      *self,
                                   gint64               handle,
                                   GCancellable        *cancellable,
                                   GAsyncReadyCallback  callback,
                                   gpointer             user_data)
{
  g_autoptr(JsonObject) arguments = NULL;

  g_return_if_fail (QLEAN_IS_QGA_CLIENT (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  arguments = handle_arguments (handle);
  qlean_qga_client_command_async (self, qlean_qga_client_file_close_async, "guest-file-close",
                                  arguments, cancellable, callback, user_data);
}

/**
 * qlean_qga_client_file_close_finish:
 * @self: a #QleanQgaClient
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE on success
 *
 * Since: 0.1
 */
gboolean
qlean_qga_client_file_close_finish (QleanQgaClient  *self,
                                    GAsyncResult    *result,
                                    GError         **error)
{
  g_autoptr(JsonNode) reply = NULL;

  g_return_val_if_fail (QLEAN_IS_QGA_CLIENT (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_qga_client_file_close_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  reply = qlean_qga_client_command_finish (self, result, error);
  return reply != NULL;
}

/**
 * qlean_qga_client_file_close:
 * @self: a #QleanQgaClient
 * @handle: a file handle
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_qga_client_file_close_async().
 *
 * Returns: %TRUE on success
 *
 * Since: 0.1
 */
gboolean
qlean_qga_client_file_close (QleanQgaClient  *self,
                             gint64           handle,
                             GCancellable    *cancellable,
                             GError         **error)
{
  g_autoptr(JsonObject) arguments = NULL;
  g_autoptr(JsonNode) reply = NULL;

  g_return_val_if_fail (QLEAN_IS_QGA_CLIENT (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  arguments = handle_arguments (handle);
  reply = qlean_qga_client_execute (self, "guest-file-close", arguments, cancellable, error);
  return reply != NULL;
}

