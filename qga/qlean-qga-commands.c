/* qlean-qga-commands.c: typed guest agent calls
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <glib/gi18n-lib.h>

#include "qlean-json-channel-private.h"
#include "qlean-json-framer-private.h"
#include "qlean-qga-client-private.h"
#include "qlean-qga-error.h"
#include "qlean-worker-private.h"

#define EXEC_POLL_FIRST_MS 1
#define EXEC_POLL_MAX_MS 25

/* Each typed call builds the arguments, runs the generic execute, and
 * its _finish picks the reply apart. Shapes are checked, since a reply
 * of the wrong shape must be an error and never a crash. */

static GError *
reply_shape_error (const char *command,
                   const char *what)
{
  return g_error_new (QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_PROTOCOL,
                      _("Guest agent command “%s” returned a reply without %s"),
                      command, what);
}

static JsonObject *
reply_object (JsonNode    *reply,
              const char  *command,
              GError     **error)
{
  if (reply == NULL || !JSON_NODE_HOLDS_OBJECT (reply))
    {
      g_propagate_error (error, reply_shape_error (command, "an object"));
      return NULL;
    }

  return json_node_get_object (reply);
}

static gboolean
reply_int_member (JsonNode    *reply,
                  const char  *command,
                  const char  *member,
                  gint64      *value,
                  GError     **error)
{
  JsonObject *object = reply_object (reply, command, error);

  if (object == NULL)
    return FALSE;

  if (!qlean_json_get_int (object, member, value))
    {
      g_autofree char *what = g_strdup_printf ("an integer “%s”", member);

      g_propagate_error (error, reply_shape_error (command, what));
      return FALSE;
    }

  return TRUE;
}

static gboolean
reply_bool_member (JsonObject *object,
                   const char *member)
{
  gboolean value = FALSE;

  return qlean_json_get_boolean (object, member, &value) && value;
}

static GBytes *
reply_base64_member (JsonObject *object,
                     const char *member)
{
  const char *encoded = qlean_json_get_string (object, member);
  guchar *data;
  gsize len;

  if (encoded == NULL)
    return NULL;

  data = g_base64_decode (encoded, &len);
  return g_bytes_new_take (data, len);
}

typedef enum
{
  SPEC_STRING,
  SPEC_INT,
  SPEC_BOOLEAN,
  SPEC_OBJECT,
  SPEC_ARRAY,
} SpecType;

typedef struct
{
  const char *member;
  SpecType    type;
  gboolean    required;
} MemberSpec;

static gboolean
node_has_type (JsonNode *node,
               SpecType  type)
{
  switch (type)
    {
    case SPEC_STRING:
      return json_node_get_value_type (node) == G_TYPE_STRING;
    case SPEC_INT:
      return json_node_get_value_type (node) == G_TYPE_INT64;
    case SPEC_BOOLEAN:
      return json_node_get_value_type (node) == G_TYPE_BOOLEAN;
    case SPEC_OBJECT:
      return JSON_NODE_HOLDS_OBJECT (node);
    case SPEC_ARRAY:
      return JSON_NODE_HOLDS_ARRAY (node);
    default:
      g_assert_not_reached ();
    }
}

/* Checks the members of @object that the agent's schema names, so that
 * Qlean and callers of the typed calls may read them with json-glib's
 * getters without a warning. @where says where @object is in the reply. */
static gboolean
reply_members_ok (JsonObject        *object,
                  const char        *command,
                  const char        *where,
                  const MemberSpec  *specs,
                  gsize              n_specs,
                  GError           **error)
{
  static const char * const type_names[] = {
    [SPEC_STRING] = "a string",
    [SPEC_INT] = "an integer",
    [SPEC_BOOLEAN] = "a boolean",
    [SPEC_OBJECT] = "an object",
    [SPEC_ARRAY] = "an array",
  };

  for (gsize i = 0; i < n_specs; i++)
    {
      JsonNode *node = json_object_get_member (object, specs[i].member);
      g_autofree char *what = NULL;

      if (node == NULL && !specs[i].required)
        continue;
      if (node != NULL && node_has_type (node, specs[i].type))
        continue;

      what = g_strdup_printf ("“%s”%s as %s", specs[i].member, where, type_names[specs[i].type]);
      g_propagate_error (error, reply_shape_error (command, what));
      return FALSE;
    }

  return TRUE;
}

/* Every member of guest-get-osinfo's reply is an optional string. */
static gboolean
osinfo_ok (JsonObject  *object,
           GError     **error)
{
  JsonObjectIter iter;
  const char *member;
  JsonNode *node;

  json_object_iter_init (&iter, object);
  while (json_object_iter_next (&iter, &member, &node))
    {
      MemberSpec spec = { member, SPEC_STRING, FALSE };

      if (!reply_members_ok (object, "guest-get-osinfo", "", &spec, 1, error))
        return FALSE;
    }

  return TRUE;
}

static gboolean
info_ok (JsonObject  *object,
         GError     **error)
{
  static const MemberSpec info[] = {
    { "version", SPEC_STRING, TRUE },
    { "supported_commands", SPEC_ARRAY, TRUE },
  };
  static const MemberSpec command[] = {
    { "name", SPEC_STRING, TRUE },
    { "enabled", SPEC_BOOLEAN, TRUE },
    { "success-response", SPEC_BOOLEAN, FALSE },
  };
  JsonArray *commands;

  if (!reply_members_ok (object, "guest-info", "", info, G_N_ELEMENTS (info), error))
    return FALSE;

  commands = json_object_get_array_member (object, "supported_commands");
  for (guint i = 0; i < json_array_get_length (commands); i++)
    {
      JsonObject *element = qlean_json_array_get_object (commands, i);

      if (element == NULL)
        {
          g_propagate_error (error, reply_shape_error ("guest-info", "objects in “supported_commands”"));
          return FALSE;
        }
      if (!reply_members_ok (element, "guest-info", " in “supported_commands”", command,
                             G_N_ELEMENTS (command), error))
        return FALSE;
    }

  return TRUE;
}

static gboolean
interfaces_ok (JsonArray  *interfaces,
               GError    **error)
{
  static const MemberSpec interface[] = {
    { "name", SPEC_STRING, TRUE },
    { "hardware-address", SPEC_STRING, FALSE },
    { "ip-addresses", SPEC_ARRAY, FALSE },
    { "statistics", SPEC_OBJECT, FALSE },
  };
  static const MemberSpec address[] = {
    { "ip-address", SPEC_STRING, TRUE },
    { "ip-address-type", SPEC_STRING, TRUE },
    { "prefix", SPEC_INT, TRUE },
  };

  for (guint i = 0; i < json_array_get_length (interfaces); i++)
    {
      JsonObject *element = qlean_json_array_get_object (interfaces, i);
      JsonArray *addresses;

      if (element == NULL)
        {
          g_propagate_error (error, reply_shape_error ("guest-network-get-interfaces",
                                                       "an array of objects"));
          return FALSE;
        }
      if (!reply_members_ok (element, "guest-network-get-interfaces", "", interface,
                             G_N_ELEMENTS (interface), error))
        return FALSE;

      addresses = qlean_json_get_array (element, "ip-addresses");
      for (guint j = 0; addresses != NULL && j < json_array_get_length (addresses); j++)
        {
          JsonObject *entry = qlean_json_array_get_object (addresses, j);

          if (entry == NULL)
            {
              g_propagate_error (error, reply_shape_error ("guest-network-get-interfaces",
                                                           "objects in “ip-addresses”"));
              return FALSE;
            }
          if (!reply_members_ok (entry, "guest-network-get-interfaces", " in “ip-addresses”",
                                 address, G_N_ELEMENTS (address), error))
            return FALSE;
        }
    }

  return TRUE;
}

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
 */
void
qlean_qga_client_ping_async (QleanQgaClient      *self,
                             GCancellable        *cancellable,
                             GAsyncReadyCallback  callback,
                             gpointer             user_data)
{
  qlean_qga_client_execute_async (self, "guest-ping", NULL, cancellable, callback, user_data);
}

/**
 * qlean_qga_client_ping_finish:
 * @self: a #QleanQgaClient
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when the agent answered
 */
gboolean
qlean_qga_client_ping_finish (QleanQgaClient  *self,
                              GAsyncResult    *result,
                              GError         **error)
{
  g_autoptr(JsonNode) reply = qlean_qga_client_execute_finish (self, result, error);

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
 */
gboolean
qlean_qga_client_ping (QleanQgaClient  *self,
                       GCancellable    *cancellable,
                       GError         **error)
{
  g_autoptr(JsonNode) reply = run_sync (self, "guest-ping", NULL, cancellable, error);

  return reply != NULL;
}

/* guest-info, guest-get-osinfo, guest-network-get-interfaces */

static JsonObject *
run_sync_object (QleanQgaClient  *self,
                 const char      *command,
                 GCancellable    *cancellable,
                 GError         **error)
{
  g_autoptr(JsonNode) reply = run_sync (self, command, NULL, cancellable, error);
  JsonObject *object;

  if (reply == NULL)
    return NULL;

  object = reply_object (reply, command, error);
  return object ? json_object_ref (object) : NULL;
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
 */
JsonObject *
qlean_qga_client_info (QleanQgaClient  *self,
                       GCancellable    *cancellable,
                       GError         **error)
{
  g_autoptr(JsonObject) info = run_sync_object (self, "guest-info", cancellable, error);

  if (info == NULL || !info_ok (info, error))
    return NULL;

  return g_steal_pointer (&info);
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
 */
JsonObject *
qlean_qga_client_get_osinfo (QleanQgaClient  *self,
                             GCancellable    *cancellable,
                             GError         **error)
{
  g_autoptr(JsonObject) osinfo = run_sync_object (self, "guest-get-osinfo", cancellable, error);

  if (osinfo == NULL || !osinfo_ok (osinfo, error))
    return NULL;

  return g_steal_pointer (&osinfo);
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
 */
JsonArray *
qlean_qga_client_network_get_interfaces (QleanQgaClient  *self,
                                         GCancellable    *cancellable,
                                         GError         **error)
{
  g_autoptr(JsonNode) reply = run_sync (self, "guest-network-get-interfaces", NULL,
                                        cancellable, error);

  if (reply == NULL)
    return NULL;

  if (!JSON_NODE_HOLDS_ARRAY (reply))
    {
      g_propagate_error (error, reply_shape_error ("guest-network-get-interfaces", "an array"));
      return NULL;
    }
  if (!interfaces_ok (json_node_get_array (reply), error))
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
 */
gboolean
qlean_qga_client_set_time (QleanQgaClient  *self,
                           gint64           time_ns,
                           GCancellable    *cancellable,
                           GError         **error)
{
  g_autoptr(JsonObject) arguments = json_object_new ();
  g_autoptr(JsonNode) reply = NULL;

  if (time_ns >= 0)
    json_object_set_int_member (arguments, "time", time_ns);

  reply = run_sync (self, "guest-set-time", arguments, cancellable, error);
  return reply != NULL;
}

/* guest-exec */

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
  g_autoptr(JsonObject) arguments = exec_arguments (path, args, env, input, capture_output);

  qlean_qga_client_execute_async (self, "guest-exec", arguments, cancellable, callback, user_data);
}

static gint64
pid_from_reply (JsonNode  *reply,
                GError   **error)
{
  gint64 pid;

  if (reply == NULL || !reply_int_member (reply, "guest-exec", "pid", &pid, error))
    return -1;

  /* -1 means failure to our callers: never pass the agent's on as a pid
   * (found by tests/fuzz/fuzz-qga-client.c). */
  if (pid <= 0)
    {
      g_propagate_error (error, reply_shape_error ("guest-exec", "a positive “pid”"));
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
 */
gint64
qlean_qga_client_exec_finish (QleanQgaClient  *self,
                              GAsyncResult    *result,
                              GError         **error)
{
  g_autoptr(JsonNode) reply = qlean_qga_client_execute_finish (self, result, error);

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
  g_autoptr(JsonObject) arguments = exec_arguments (path, args, env, input, capture_output);
  g_autoptr(JsonNode) reply = run_sync (self, "guest-exec", arguments, cancellable, error);

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
  static const MemberSpec members[] = {
    { "exited", SPEC_BOOLEAN, TRUE },
    { "exitcode", SPEC_INT, FALSE },
    { "signal", SPEC_INT, FALSE },
    { "out-data", SPEC_STRING, FALSE },
    { "err-data", SPEC_STRING, FALSE },
    { "out-truncated", SPEC_BOOLEAN, FALSE },
    { "err-truncated", SPEC_BOOLEAN, FALSE },
  };
  JsonObject *object = reply_object (reply, "guest-exec-status", error);
  QleanQgaExecStatus *status;
  gint64 exit_code, signal_number;

  if (object == NULL)
    return NULL;

  if (!reply_members_ok (object, "guest-exec-status", "", members, G_N_ELEMENTS (members), error))
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
  status->exited = reply_bool_member (object, "exited");
  status->exit_code = (gint) exit_code;
  status->signal = (gint) signal_number;
  status->out_data = reply_base64_member (object, "out-data");
  status->err_data = reply_base64_member (object, "err-data");
  status->out_truncated = reply_bool_member (object, "out-truncated");
  status->err_truncated = reply_bool_member (object, "err-truncated");

  if (status->signal != 0)
    status->exit_code = -1;

  return status;

out_of_range:
  g_propagate_error (error, reply_shape_error ("guest-exec-status",
                                               "an “exitcode” and “signal” of 0 or more"));
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
 */
void
qlean_qga_client_exec_status_async (QleanQgaClient      *self,
                                    gint64               pid,
                                    GCancellable        *cancellable,
                                    GAsyncReadyCallback  callback,
                                    gpointer             user_data)
{
  g_autoptr(JsonObject) arguments = pid_arguments (pid);

  qlean_qga_client_execute_async (self, "guest-exec-status", arguments, cancellable,
                                  callback, user_data);
}

/**
 * qlean_qga_client_exec_status_finish:
 * @self: a #QleanQgaClient
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the status, or %NULL with @error set
 */
QleanQgaExecStatus *
qlean_qga_client_exec_status_finish (QleanQgaClient  *self,
                                     GAsyncResult    *result,
                                     GError         **error)
{
  g_autoptr(JsonNode) reply = qlean_qga_client_execute_finish (self, result, error);

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
 */
QleanQgaExecStatus *
qlean_qga_client_exec_status (QleanQgaClient  *self,
                              gint64           pid,
                              GCancellable    *cancellable,
                              GError         **error)
{
  g_autoptr(JsonObject) arguments = pid_arguments (pid);
  g_autoptr(JsonNode) reply = run_sync (self, "guest-exec-status", arguments, cancellable, error);

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
 */
void
qlean_qga_client_exec_wait_async (QleanQgaClient      *self,
                                  gint64               pid,
                                  GCancellable        *cancellable,
                                  GAsyncReadyCallback  callback,
                                  gpointer             user_data)
{
  ExecWait *wait = g_new0 (ExecWait, 1);

  wait->self = g_object_ref (self);
  wait->pid = pid;
  wait->delay_ms = EXEC_POLL_FIRST_MS;
  wait->task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (wait->task, qlean_qga_client_exec_wait_async);
  g_task_set_name (wait->task, "[qlean] wait for guest process");

  qlean_worker_invoke (exec_wait_start_cb, wait, NULL);
}

/**
 * qlean_qga_client_exec_wait_finish:
 * @self: a #QleanQgaClient
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the final status, or %NULL with @error set
 */
QleanQgaExecStatus *
qlean_qga_client_exec_wait_finish (QleanQgaClient  *self,
                                   GAsyncResult    *result,
                                   GError         **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/* guest-file-* */

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
 */
void
qlean_qga_client_file_open_async (QleanQgaClient      *self,
                                  const char          *path,
                                  const char          *mode,
                                  GCancellable        *cancellable,
                                  GAsyncReadyCallback  callback,
                                  gpointer             user_data)
{
  g_autoptr(JsonObject) arguments = json_object_new ();

  json_object_set_string_member (arguments, "path", path);
  if (mode != NULL)
    json_object_set_string_member (arguments, "mode", mode);

  qlean_qga_client_execute_async (self, "guest-file-open", arguments, cancellable,
                                  callback, user_data);
}

static gint64
file_handle_from_reply (JsonNode  *reply,
                        GError   **error)
{
  if (reply == NULL)
    return -1;

  if (json_node_get_value_type (reply) != G_TYPE_INT64 || json_node_get_int (reply) < 0)
    {
      g_propagate_error (error, reply_shape_error ("guest-file-open", "a handle"));
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
 */
gint64
qlean_qga_client_file_open_finish (QleanQgaClient  *self,
                                   GAsyncResult    *result,
                                   GError         **error)
{
  g_autoptr(JsonNode) reply = qlean_qga_client_execute_finish (self, result, error);

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
 */
gint64
qlean_qga_client_file_open (QleanQgaClient  *self,
                            const char      *path,
                            const char      *mode,
                            GCancellable    *cancellable,
                            GError         **error)
{
  g_autoptr(JsonObject) arguments = json_object_new ();
  g_autoptr(JsonNode) reply = NULL;

  json_object_set_string_member (arguments, "path", path);
  if (mode != NULL)
    json_object_set_string_member (arguments, "mode", mode);

  reply = run_sync (self, "guest-file-open", arguments, cancellable, error);
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
  static const MemberSpec members[] = {
    { "buf-b64", SPEC_STRING, TRUE },
    { "eof", SPEC_BOOLEAN, FALSE },
  };
  JsonObject *object;
  GBytes *data;

  if (reply == NULL)
    return NULL;

  object = reply_object (reply, "guest-file-read", error);
  if (object == NULL)
    return NULL;

  if (!reply_members_ok (object, "guest-file-read", "", members, G_N_ELEMENTS (members), error))
    return NULL;

  data = reply_base64_member (object, "buf-b64");

  if (eof != NULL)
    *eof = reply_bool_member (object, "eof");
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
 */
void
qlean_qga_client_file_read_async (QleanQgaClient      *self,
                                  gint64               handle,
                                  gsize                count,
                                  GCancellable        *cancellable,
                                  GAsyncReadyCallback  callback,
                                  gpointer             user_data)
{
  g_autoptr(JsonObject) arguments = file_read_arguments (handle, count);

  qlean_qga_client_execute_async (self, "guest-file-read", arguments, cancellable,
                                  callback, user_data);
}

/**
 * qlean_qga_client_file_read_finish:
 * @self: a #QleanQgaClient
 * @result: the result passed to the callback
 * @eof: (out) (optional): whether the end of the file was reached
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the data read, or %NULL with @error set
 */
GBytes *
qlean_qga_client_file_read_finish (QleanQgaClient  *self,
                                   GAsyncResult    *result,
                                   gboolean        *eof,
                                   GError         **error)
{
  g_autoptr(JsonNode) reply = qlean_qga_client_execute_finish (self, result, error);

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
 */
GBytes *
qlean_qga_client_file_read (QleanQgaClient  *self,
                            gint64           handle,
                            gsize            count,
                            gboolean        *eof,
                            GCancellable    *cancellable,
                            GError         **error)
{
  g_autoptr(JsonObject) arguments = file_read_arguments (handle, count);
  g_autoptr(JsonNode) reply = run_sync (self, "guest-file-read", arguments, cancellable, error);

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

  if (reply == NULL || !reply_int_member (reply, "guest-file-write", "count", &count, error))
    return -1;
  if (count < 0 || (guint64) count > sent)
    {
      g_autofree char *what = g_strdup_printf ("a count between 0 and the %" G_GSIZE_FORMAT
                                               " bytes sent", sent);

      g_propagate_error (error, reply_shape_error ("guest-file-write", what));
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

  reply = qlean_qga_client_execute_finish (QLEAN_QGA_CLIENT (source), result, &error);
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
 */
void
qlean_qga_client_file_write_async (QleanQgaClient      *self,
                                   gint64               handle,
                                   GBytes              *data,
                                   GCancellable        *cancellable,
                                   GAsyncReadyCallback  callback,
                                   gpointer             user_data)
{
  g_autoptr(JsonObject) arguments = file_write_arguments (handle, data);
  GTask *task = g_task_new (self, cancellable, callback, user_data);

  g_task_set_source_tag (task, qlean_qga_client_file_write_async);
  g_task_set_task_data (task, GSIZE_TO_POINTER (g_bytes_get_size (data)), NULL);
  qlean_qga_client_execute_async (self, "guest-file-write", arguments, cancellable,
                                  file_write_done_cb, task);
}

/**
 * qlean_qga_client_file_write_finish:
 * @self: a #QleanQgaClient
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: the number of bytes written, or -1 with @error set
 */
gssize
qlean_qga_client_file_write_finish (QleanQgaClient  *self,
                                    GAsyncResult    *result,
                                    GError         **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), -1);

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
 */
gssize
qlean_qga_client_file_write (QleanQgaClient  *self,
                             gint64           handle,
                             GBytes          *data,
                             GCancellable    *cancellable,
                             GError         **error)
{
  g_autoptr(JsonObject) arguments = file_write_arguments (handle, data);
  g_autoptr(JsonNode) reply = run_sync (self, "guest-file-write", arguments, cancellable, error);

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
 */
void
qlean_qga_client_file_close_async (QleanQgaClient      *self,
                                   gint64               handle,
                                   GCancellable        *cancellable,
                                   GAsyncReadyCallback  callback,
                                   gpointer             user_data)
{
  g_autoptr(JsonObject) arguments = handle_arguments (handle);

  qlean_qga_client_execute_async (self, "guest-file-close", arguments, cancellable,
                                  callback, user_data);
}

/**
 * qlean_qga_client_file_close_finish:
 * @self: a #QleanQgaClient
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE on success
 */
gboolean
qlean_qga_client_file_close_finish (QleanQgaClient  *self,
                                    GAsyncResult    *result,
                                    GError         **error)
{
  g_autoptr(JsonNode) reply = qlean_qga_client_execute_finish (self, result, error);

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
 */
gboolean
qlean_qga_client_file_close (QleanQgaClient  *self,
                             gint64           handle,
                             GCancellable    *cancellable,
                             GError         **error)
{
  g_autoptr(JsonObject) arguments = handle_arguments (handle);
  g_autoptr(JsonNode) reply = run_sync (self, "guest-file-close", arguments, cancellable, error);

  return reply != NULL;
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
 */
void
qlean_qga_client_shutdown_async (QleanQgaClient      *self,
                                 const char          *mode,
                                 GCancellable        *cancellable,
                                 GAsyncReadyCallback  callback,
                                 gpointer             user_data)
{
  g_autoptr(JsonObject) arguments = json_object_new ();

  json_object_set_string_member (arguments, "mode", mode ? mode : "powerdown");
  qlean_qga_client_execute_no_reply_async (self, "guest-shutdown", arguments, cancellable,
                                           callback, user_data);
}

/**
 * qlean_qga_client_shutdown_finish:
 * @self: a #QleanQgaClient
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when the guest began to shut down
 */
gboolean
qlean_qga_client_shutdown_finish (QleanQgaClient  *self,
                                  GAsyncResult    *result,
                                  GError         **error)
{
  g_autoptr(JsonNode) reply = qlean_qga_client_execute_finish (self, result, error);

  return reply != NULL;
}
