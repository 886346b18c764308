/* qlean-qga-commands.c: typed guest agent calls
 *
 * Each typed call builds the arguments, queues the command on the
 * client, and its _finish picks the reply apart with the checks of
 * qlean-qga-reply.c. Here: ping, info, time, guest-exec and the wait for
 * a guest process, and shutdown; the guest-file-* calls are in
 * qlean-qga-file.c.
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
#include "qlean-worker-private.h"

#define EXEC_POLL_FIRST_MS 1
#define EXEC_POLL_MAX_MS 25

static JsonArray *
strv_to_json_array (const char * const *strv)
{
  JsonArray *array = json_array_new ();

  for (gsize i = 0; strv != NULL && strv[i] != NULL; i++)
    json_array_add_string_element (array, strv[i]);

  return array;
}

static JsonNode *
run_sync (QleanQgaClient  *self,
          const char      *command,
          JsonObject      *arguments,
          GCancellable    *cancellable,
          GError         **error)
{
  return qlean_qga_client_execute (self, command, arguments, cancellable, error);
}

/* guest-ping */

/**
 * qlean_qga_client_ping_async:
 * @self: a #QleanQgaClient
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the result
 * @user_data: data for @callback
 *
 * Sends `guest-ping`.
 *
 * Since: 0.1
 */
void
qlean_qga_client_ping_async (QleanQgaClient      *self,
                             GCancellable        *cancellable,
                             GAsyncReadyCallback  callback,
                             gpointer             user_data)
{
  g_return_if_fail (QLEAN_IS_QGA_CLIENT (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  qlean_qga_client_command_async (self, qlean_qga_client_ping_async, "guest-ping", NULL,
                                  cancellable, callback, user_data);
}

/**
 * qlean_qga_client_ping_finish:
 * @self: a #QleanQgaClient
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when the agent answered
 *
 * Since: 0.1
 */
gboolean
qlean_qga_client_ping_finish (QleanQgaClient  *self,
                              GAsyncResult    *result,
                              GError         **error)
{
  g_autoptr(JsonNode) reply = NULL;

  g_return_val_if_fail (QLEAN_IS_QGA_CLIENT (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_qga_client_ping_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  reply = qlean_qga_client_command_finish (self, result, error);
  return reply != NULL;
}

/**
 * qlean_qga_client_ping:
 * @self: a #QleanQgaClient
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_qga_client_ping_async().
 *
 * Returns: %TRUE when the agent answered
 *
 * Since: 0.1
 */
gboolean
qlean_qga_client_ping (QleanQgaClient  *self,
                       GCancellable    *cancellable,
                       GError         **error)
{
  g_autoptr(JsonNode) reply = NULL;

  g_return_val_if_fail (QLEAN_IS_QGA_CLIENT (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  reply = run_sync (self, "guest-ping", NULL, cancellable, error);
  return reply != NULL;
}

/* guest-info, guest-get-osinfo, guest-network-get-interfaces */

/* Runs @command, whose reply is an object that @check checks. */
static JsonObject *
run_sync_object (QleanQgaClient  *self,
                 const char      *command,
                 gboolean       (*check) (JsonObject  *object,
                                          GError     **error),
                 GCancellable    *cancellable,
                 GError         **error)
{
  g_autoptr(JsonNode) reply = run_sync (self, command, NULL, cancellable, error);
  JsonObject *object;

  if (reply == NULL)
    return NULL;

  object = qlean_qga_reply_object (reply, command, error);
  if (object == NULL || !check (object, error))
    return NULL;

  return json_object_ref (object);
}

/**
 * qlean_qga_client_info:
 * @self: a #QleanQgaClient
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Runs `guest-info`: the agent's version and the commands it supports
 * (and whether each is enabled). A reply whose `version`, or whose
 * commands' `name`, `enabled` or `success-response`, have other types
 * than the agent's schema says fails with %QLEAN_QGA_ERROR_PROTOCOL.
 *
 * Returns: (transfer full): the reply, or %NULL with @error set
 *
 * Since: 0.1
 */
JsonObject *
qlean_qga_client_info (QleanQgaClient  *self,
                       GCancellable    *cancellable,
                       GError         **error)
{
  g_return_val_if_fail (QLEAN_IS_QGA_CLIENT (self), NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return run_sync_object (self, "guest-info", qlean_qga_reply_info_ok, cancellable, error);
}

/**
 * qlean_qga_client_get_osinfo:
 * @self: a #QleanQgaClient
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Runs `guest-get-osinfo`: kernel release, distribution id, version...
 * Every member of the reply is a string; a reply with a member of
 * another type fails with %QLEAN_QGA_ERROR_PROTOCOL.
 *
 * Returns: (transfer full): the reply, or %NULL with @error set
 *
 * Since: 0.1
 */
JsonObject *
qlean_qga_client_get_osinfo (QleanQgaClient  *self,
                             GCancellable    *cancellable,
                             GError         **error)
{
  g_return_val_if_fail (QLEAN_IS_QGA_CLIENT (self), NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return run_sync_object (self, "guest-get-osinfo", qlean_qga_reply_osinfo_ok, cancellable, error);
}

/**
 * qlean_qga_client_network_get_interfaces:
 * @self: a #QleanQgaClient
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Runs `guest-network-get-interfaces`. Each interface is an object
 * with a string `name`; its `hardware-address` (a string),
 * `ip-addresses` (objects with the strings `ip-address` and
 * `ip-address-type` and the integer `prefix`) and `statistics` (an
 * object) may be missing but have no other type: a reply that breaks
 * this fails with %QLEAN_QGA_ERROR_PROTOCOL.
 *
 * Returns: (transfer full): the interfaces, or %NULL with @error set
 *
 * Since: 0.1
 */
JsonArray *
qlean_qga_client_network_get_interfaces (QleanQgaClient  *self,
                                         GCancellable    *cancellable,
                                         GError         **error)
{
  g_autoptr(JsonNode) reply = NULL;

  g_return_val_if_fail (QLEAN_IS_QGA_CLIENT (self), NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  reply = run_sync (self, "guest-network-get-interfaces", NULL,
                    cancellable, error);
  if (reply == NULL)
    return NULL;

  if (!JSON_NODE_HOLDS_ARRAY (reply))
    {
      g_propagate_error (error,
                         qlean_qga_reply_shape_error (_("Guest agent command “%s” returned a "
                                                        "reply without an array"),
                                                      "guest-network-get-interfaces"));
      return NULL;
    }
  if (!qlean_qga_reply_interfaces_ok (json_node_get_array (reply), error))
    return NULL;

  return json_array_ref (json_node_get_array (reply));
}

/**
 * qlean_qga_client_set_time:
 * @self: a #QleanQgaClient
 * @time_ns: nanoseconds since the epoch, or -1 to have the guest read its
 *   hardware clock
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Runs `guest-set-time`.
 *
 * Returns: %TRUE on success
 *
 * Since: 0.1
 */
gboolean
qlean_qga_client_set_time (QleanQgaClient  *self,
                           gint64           time_ns,
                           GCancellable    *cancellable,
                           GError         **error)
{
  g_autoptr(JsonObject) arguments = json_object_new ();
  g_autoptr(JsonNode) reply = NULL;

  g_return_val_if_fail (QLEAN_IS_QGA_CLIENT (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (time_ns >= 0)
    json_object_set_int_member (arguments, "time", time_ns);

  reply = run_sync (self, "guest-set-time", arguments, cancellable, error);
  return reply != NULL;
}

/* guest-exec */

G_DEFINE_BOXED_TYPE (QleanQgaExecStatus, qlean_qga_exec_status,
                     qlean_qga_exec_status_copy, qlean_qga_exec_status_free)

/**
 * qlean_qga_exec_status_copy:
 * @status: a #QleanQgaExecStatus
 *
 * Returns: (transfer full): a copy of @status
 *
 * Since: 0.1
 */
QleanQgaExecStatus *
qlean_qga_exec_status_copy (const QleanQgaExecStatus *status)
{
  QleanQgaExecStatus *copy = g_new (QleanQgaExecStatus, 1);

  *copy = *status;
  if (copy->out_data != NULL)
    g_bytes_ref (copy->out_data);
  if (copy->err_data != NULL)
    g_bytes_ref (copy->err_data);

  return copy;
}

/**
 * qlean_qga_exec_status_free:
 * @status: (nullable): a #QleanQgaExecStatus
 *
 * Frees @status.
 *
 * Since: 0.1
 */
void
qlean_qga_exec_status_free (QleanQgaExecStatus *status)
{
  if (status == NULL)
    return;

  g_clear_pointer (&status->out_data, g_bytes_unref);
  g_clear_pointer (&status->err_data, g_bytes_unref);
  g_free (status);
}


static JsonObject *
exec_arguments (const char         *path,
                const char * const *args,
                const char * const *env,
                GBytes             *input,
                gboolean            capture_output)
{
  JsonObject *arguments = json_object_new ();

  json_object_set_string_member (arguments, "path", path);
  if (args != NULL && args[0] != NULL)
    json_object_set_array_member (arguments, "arg", strv_to_json_array (args));
  if (env != NULL && env[0] != NULL)
    json_object_set_array_member (arguments, "env", strv_to_json_array (env));
  if (input != NULL)
    {
      gsize len;
      const guchar *data = g_bytes_get_data (input, &len);
      g_autofree char *encoded = g_base64_encode (data, len);

      json_object_set_string_member (arguments, "input-data", encoded);
    }
  json_object_set_boolean_member (arguments, "capture-output", capture_output);

  return arguments;
}

/**
 * qlean_qga_client_exec_async:
 * @self: a #QleanQgaClient
 * @path: the program to run, a path in the guest (the agent searches PATH
 *   when it has no slash)
 * @args: (array zero-terminated=1) (nullable): its arguments, without
 *   argv[0]
 * @env: (array zero-terminated=1) (nullable): `NAME=value` strings; when
 *   given they replace the agent's environment
 * @input: (nullable): data for the process's standard input
 * @capture_output: whether the agent keeps the output for
 *   `guest-exec-status`
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the process id
 * @user_data: data for @callback
 *
 * Runs `guest-exec`. Arguments travel as an array: nothing is ever
 * interpreted by a shell.
 *
 * Since: 0.1
 */
void
qlean_qga_client_exec_async (QleanQgaClient      *self,
                             const char          *path,
                             const char * const  *args,
                             const char * const  *env,
                             GBytes              *input,
                             gboolean             capture_output,
                             GCancellable        *cancellable,
                             GAsyncReadyCallback  callback,
                             gpointer             user_data)
{
  g_autoptr(JsonObject) arguments = NULL;

  g_return_if_fail (QLEAN_IS_QGA_CLIENT (self));
  g_return_if_fail (path != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  arguments = exec_arguments (path, args, env, input, capture_output);
  qlean_qga_client_command_async (self, qlean_qga_client_exec_async, "guest-exec", arguments,
                                  cancellable, callback, user_data);
}

static gint64
pid_from_reply (JsonNode  *reply,
                GError   **error)
{
  gint64 pid;

  if (reply == NULL || !qlean_qga_reply_int_member (reply, "guest-exec", "pid", &pid, error))
    return -1;

  /* -1 means failure to our callers: never pass the agent's on as a pid
   * (found by tests/fuzz/fuzz-qga-client.c). */
  if (pid <= 0)
    {
      g_propagate_error (error,
                         qlean_qga_reply_shape_error (_("Guest agent command “%s” returned a "
                                                        "reply without a positive “pid”"),
                                                      "guest-exec"));
      return -1;
    }

  return pid;
}

/**
 * qlean_qga_client_exec_finish:
 * @self: a #QleanQgaClient
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: the guest process id, or -1 with @error set
 *
 * Since: 0.1
 */
gint64
qlean_qga_client_exec_finish (QleanQgaClient  *self,
                              GAsyncResult    *result,
                              GError         **error)
{
  g_autoptr(JsonNode) reply = NULL;

  g_return_val_if_fail (QLEAN_IS_QGA_CLIENT (self), -1);
  g_return_val_if_fail (g_task_is_valid (result, self), -1);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_qga_client_exec_async), -1);
  g_return_val_if_fail (error == NULL || *error == NULL, -1);

  reply = qlean_qga_client_command_finish (self, result, error);
  return pid_from_reply (reply, error);
}

/**
 * qlean_qga_client_exec:
 * @self: a #QleanQgaClient
 * @path: the program to run
 * @args: (array zero-terminated=1) (nullable): its arguments, without argv[0]
 * @env: (array zero-terminated=1) (nullable): `NAME=value` strings
 * @input: (nullable): data for standard input
 * @capture_output: whether the agent keeps the output
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_qga_client_exec_async().
 *
 * Returns: the guest process id, or -1 with @error set
 *
 * Since: 0.1
 */
gint64
qlean_qga_client_exec (QleanQgaClient      *self,
                       const char          *path,
                       const char * const  *args,
                       const char * const  *env,
                       GBytes              *input,
                       gboolean             capture_output,
                       GCancellable        *cancellable,
                       GError             **error)
{
  g_autoptr(JsonObject) arguments = NULL;
  g_autoptr(JsonNode) reply = NULL;

  g_return_val_if_fail (QLEAN_IS_QGA_CLIENT (self), -1);
  g_return_val_if_fail (path != NULL, -1);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), -1);
  g_return_val_if_fail (error == NULL || *error == NULL, -1);

  arguments = exec_arguments (path, args, env, input, capture_output);
  reply = run_sync (self, "guest-exec", arguments, cancellable, error);
  return pid_from_reply (reply, error);
}

static JsonObject *
pid_arguments (gint64 pid)
{
  JsonObject *arguments = json_object_new ();

  json_object_set_int_member (arguments, "pid", pid);
  return arguments;
}

static QleanQgaExecStatus *
exec_status_from_reply (JsonNode  *reply,
                        GError   **error)
{
  static const QleanQgaMemberSpec members[] = {
    { "exited", QLEAN_QGA_SPEC_BOOLEAN, TRUE },
    { "exitcode", QLEAN_QGA_SPEC_INT, FALSE },
    { "signal", QLEAN_QGA_SPEC_INT, FALSE },
    { "out-data", QLEAN_QGA_SPEC_STRING, FALSE },
    { "err-data", QLEAN_QGA_SPEC_STRING, FALSE },
    { "out-truncated", QLEAN_QGA_SPEC_BOOLEAN, FALSE },
    { "err-truncated", QLEAN_QGA_SPEC_BOOLEAN, FALSE },
  };
  JsonObject *object = qlean_qga_reply_object (reply, "guest-exec-status", error);
  QleanQgaExecStatus *status;
  gint64 exit_code, signal_number;

  if (object == NULL)
    return NULL;

  if (!qlean_qga_reply_members_ok (object, "guest-exec-status", "", members,
                                   G_N_ELEMENTS (members), error))
    return NULL;

  if (!qlean_json_get_int (object, "exitcode", &exit_code))
    exit_code = -1;
  else if (exit_code < 0 || exit_code > G_MAXINT)
    goto out_of_range;
  if (!qlean_json_get_int (object, "signal", &signal_number))
    signal_number = 0;
  else if (signal_number < 0 || signal_number > G_MAXINT)
    goto out_of_range;

  status = g_new0 (QleanQgaExecStatus, 1);
  status->exited = qlean_qga_reply_bool_member (object, "exited");
  status->exit_code = (gint) exit_code;
  status->signal = (gint) signal_number;
  status->out_data = qlean_qga_reply_base64_member (object, "out-data");
  status->err_data = qlean_qga_reply_base64_member (object, "err-data");
  status->out_truncated = qlean_qga_reply_bool_member (object, "out-truncated");
  status->err_truncated = qlean_qga_reply_bool_member (object, "err-truncated");

  if (status->signal != 0)
    status->exit_code = -1;

  return status;

out_of_range:
  g_propagate_error (error,
                     qlean_qga_reply_shape_error (_("Guest agent command “%s” returned a reply "
                                                    "without an “exitcode” and “signal” of 0 or "
                                                    "more"),
                                                  "guest-exec-status"));
  return NULL;
}

/**
 * qlean_qga_client_exec_status_async:
 * @self: a #QleanQgaClient
 * @pid: a process id from qlean_qga_client_exec_async()
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the status
 * @user_data: data for @callback
 *
 * Runs `guest-exec-status` once. Once it reports the process exited, the
 * agent forgets the process and its output.
 *
 * Since: 0.1
 */
void
qlean_qga_client_exec_status_async (QleanQgaClient      *self,
                                    gint64               pid,
                                    GCancellable        *cancellable,
                                    GAsyncReadyCallback  callback,
                                    gpointer             user_data)
{
  g_autoptr(JsonObject) arguments = NULL;

  g_return_if_fail (QLEAN_IS_QGA_CLIENT (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  arguments = pid_arguments (pid);
  qlean_qga_client_command_async (self, qlean_qga_client_exec_status_async, "guest-exec-status",
                                  arguments, cancellable, callback, user_data);
}

/**
 * qlean_qga_client_exec_status_finish:
 * @self: a #QleanQgaClient
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the status, or %NULL with @error set
 *
 * Since: 0.1
 */
QleanQgaExecStatus *
qlean_qga_client_exec_status_finish (QleanQgaClient  *self,
                                     GAsyncResult    *result,
                                     GError         **error)
{
  g_autoptr(JsonNode) reply = NULL;

  g_return_val_if_fail (QLEAN_IS_QGA_CLIENT (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_qga_client_exec_status_async), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  reply = qlean_qga_client_command_finish (self, result, error);
  return reply ? exec_status_from_reply (reply, error) : NULL;
}

/**
 * qlean_qga_client_exec_status:
 * @self: a #QleanQgaClient
 * @pid: a process id
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_qga_client_exec_status_async().
 *
 * Returns: (transfer full): the status, or %NULL with @error set
 *
 * Since: 0.1
 */
QleanQgaExecStatus *
qlean_qga_client_exec_status (QleanQgaClient  *self,
                              gint64           pid,
                              GCancellable    *cancellable,
                              GError         **error)
{
  g_autoptr(JsonObject) arguments = NULL;
  g_autoptr(JsonNode) reply = NULL;

  g_return_val_if_fail (QLEAN_IS_QGA_CLIENT (self), NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  arguments = pid_arguments (pid);
  reply = run_sync (self, "guest-exec-status", arguments, cancellable, error);
  return reply ? exec_status_from_reply (reply, error) : NULL;
}

/* Polling for the end of a process. Runs on the worker so that its timers
 * fire whether or not the caller's context is iterated. */

typedef struct
{
  QleanQgaClient *self;
  gint64          pid;
  guint           delay_ms;
  GTask          *task;
} ExecWait;

static void
exec_wait_free (ExecWait *wait)
{
  g_object_unref (wait->self);
  g_clear_object (&wait->task);
  g_free (wait);
}

static void exec_wait_poll (ExecWait *wait);

static gboolean
exec_wait_timer_cb (gpointer user_data)
{
  exec_wait_poll (user_data);

  return G_SOURCE_REMOVE;
}

static void
exec_wait_status_cb (GObject      *source,
                     GAsyncResult *result,
                     gpointer      user_data)
{
  ExecWait *wait = user_data;
  g_autoptr(GError) error = NULL;
  QleanQgaExecStatus *status;
  GSource *timer;

  status = qlean_qga_client_exec_status_finish (wait->self, result, &error);
  if (status == NULL)
    {
      g_task_return_error (wait->task, g_steal_pointer (&error));
      exec_wait_free (wait);
      return;
    }

  if (status->exited)
    {
      g_task_return_pointer (wait->task, status, (GDestroyNotify) qlean_qga_exec_status_free);
      exec_wait_free (wait);
      return;
    }

  qlean_qga_exec_status_free (status);

  timer = g_timeout_source_new (wait->delay_ms);
  g_source_set_callback (timer, exec_wait_timer_cb, wait, NULL);
  g_source_set_static_name (timer, "[qlean] guest-exec-status poll");
  g_source_attach (timer, qlean_worker_get_context ());
  g_source_unref (timer);
  wait->delay_ms = MIN (wait->delay_ms * 2, EXEC_POLL_MAX_MS);
}

static void
exec_wait_poll (ExecWait *wait)
{
  qlean_qga_client_exec_status_async (wait->self, wait->pid,
                                      g_task_get_cancellable (wait->task),
                                      exec_wait_status_cb, wait);
}

static gboolean
exec_wait_start_cb (gpointer user_data)
{
  exec_wait_poll (user_data);

  return G_SOURCE_REMOVE;
}

/**
 * qlean_qga_client_exec_wait_async:
 * @self: a #QleanQgaClient
 * @pid: a process id from qlean_qga_client_exec_async()
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the final status
 * @user_data: data for @callback
 *
 * Polls `guest-exec-status` until the process has exited, first after
 * 1 ms and then backing off to 25 ms between polls.
 *
 * Since: 0.1
 */
void
qlean_qga_client_exec_wait_async (QleanQgaClient      *self,
                                  gint64               pid,
                                  GCancellable        *cancellable,
                                  GAsyncReadyCallback  callback,
                                  gpointer             user_data)
{
  ExecWait *wait = NULL;

  g_return_if_fail (QLEAN_IS_QGA_CLIENT (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  wait = g_new0 (ExecWait, 1);

  wait->self = g_object_ref (self);
  wait->pid = pid;
  wait->delay_ms = EXEC_POLL_FIRST_MS;
  wait->task = qlean_task_new (self, cancellable, callback, user_data,
                               qlean_qga_client_exec_wait_async, "[qlean] wait for guest process");

  qlean_worker_invoke (exec_wait_start_cb, wait, NULL);
}

/**
 * qlean_qga_client_exec_wait_finish:
 * @self: a #QleanQgaClient
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the final status, or %NULL with @error set
 *
 * Since: 0.1
 */
QleanQgaExecStatus *
qlean_qga_client_exec_wait_finish (QleanQgaClient  *self,
                                   GAsyncResult    *result,
                                   GError         **error)
{
  g_return_val_if_fail (QLEAN_IS_QGA_CLIENT (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_qga_client_exec_wait_async), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/* guest-shutdown */

/**
 * qlean_qga_client_shutdown_async:
 * @self: a #QleanQgaClient
 * @mode: (nullable): `powerdown` (when %NULL), `halt` or `reboot`
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when the guest began to go down
 * @user_data: data for @callback
 *
 * Runs `guest-shutdown`. The agent never answers it: the call completes
 * when qlean_qga_client_notify_shutdown() is called (on QMP's `SHUTDOWN`
 * event) or the channel closes, and fails on the client's timeout.
 *
 * Since: 0.1
 */
void
qlean_qga_client_shutdown_async (QleanQgaClient      *self,
                                 const char          *mode,
                                 GCancellable        *cancellable,
                                 GAsyncReadyCallback  callback,
                                 gpointer             user_data)
{
  g_autoptr(JsonObject) arguments = json_object_new ();

  g_return_if_fail (QLEAN_IS_QGA_CLIENT (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  json_object_set_string_member (arguments, "mode", mode ? mode : "powerdown");
  qlean_qga_client_command_no_reply_async (self, qlean_qga_client_shutdown_async,
                                           "guest-shutdown", arguments, cancellable, callback,
                                           user_data);
}

/**
 * qlean_qga_client_shutdown_finish:
 * @self: a #QleanQgaClient
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when the guest began to shut down
 *
 * Since: 0.1
 */
gboolean
qlean_qga_client_shutdown_finish (QleanQgaClient  *self,
                                  GAsyncResult    *result,
                                  GError         **error)
{
  g_autoptr(JsonNode) reply = NULL;

  g_return_val_if_fail (QLEAN_IS_QGA_CLIENT (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_qga_client_shutdown_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  reply = qlean_qga_client_command_finish (self, result, error);
  return reply != NULL;
}

