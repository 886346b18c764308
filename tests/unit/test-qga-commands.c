/* test-qga-commands.c: QleanQgaClient's typed calls against a scripted fake guest agent
 *
 * guest-exec and its wait, the guest-file-* calls, the other typed calls
 * with replies of the wrong shape, and guest-shutdown.
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>

#include "qlean-json-framer-private.h"
#include "qlean-machine-network-private.h"
#include "qlean-qga-client-private.h"
#include "qlean-qga-error.h"

#include "fake-agent.h"

static void
test_exec_wait (Fixture       *fixture,
                gconstpointer  data)
{
  const char * const args[] = { "-c", "echo hello; echo oops >&2; exit 3", NULL };
  const char * const env[] = { "LANG=C", NULL };
  g_autoptr(GBytes) input = g_bytes_new_static ("abc", 3);
  g_autoptr(JsonObject) arguments = NULL;
  g_autoptr(QleanQgaExecStatus) status = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *id = NULL;
  AsyncCapture *capture = g_new0 (AsyncCapture, 1);
  JsonArray *arg;
  gint64 pid;

  qlean_qga_client_exec_async (fixture->client, "/bin/sh", args, env, input, TRUE, NULL,
                               async_capture_cb, capture);
  id = agent_sync_then_command (fixture->peer, "guest-exec", &arguments);
  g_assert_cmpstr (json_object_get_string_member (arguments, "path"), ==, "/bin/sh");
  arg = json_object_get_array_member (arguments, "arg");
  g_assert_cmpuint (json_array_get_length (arg), ==, 2);
  g_assert_cmpstr (json_array_get_string_element (arg, 0), ==, "-c");
  g_assert_cmpstr (json_array_get_string_element (arg, 1), ==, args[1]);
  g_assert_cmpstr (json_array_get_string_element (json_object_get_array_member (arguments, "env"), 0),
                   ==, "LANG=C");
  g_assert_cmpstr (json_object_get_string_member (arguments, "input-data"), ==, "YWJj");
  g_assert_true (json_object_get_boolean_member (arguments, "capture-output"));
  agent_reply (fixture->peer, id, "{\"pid\": 4242}");

  result = wait_result (capture);
  pid = qlean_qga_client_exec_finish (fixture->client, result, &error);
  g_assert_no_error (error);
  g_assert_cmpint (pid, ==, 4242);
  g_clear_object (&result);

  capture = g_new0 (AsyncCapture, 1);
  qlean_qga_client_exec_wait_async (fixture->client, pid, NULL, async_capture_cb, capture);

  for (guint i = 0; i < 3; i++)
    {
      g_autoptr(JsonObject) status_args = NULL;
      g_autofree char *status_id = NULL;

      status_id = agent_expect_command (fixture->peer, "guest-exec-status", &status_args);
      g_assert_cmpint (json_object_get_int_member (status_args, "pid"), ==, 4242);

      if (i < 2)
        {
          agent_reply (fixture->peer, status_id, "{\"exited\": false}");
          g_assert_null (capture->result);
        }
      else
        {
          /* "hello\n" and "oops\n" */
          agent_reply (fixture->peer, status_id,
                       "{\"exited\": true, \"exitcode\": 3, \"out-data\": \"aGVsbG8K\", "
                       "\"err-data\": \"b29wcwo=\", \"out-truncated\": false}");
        }
    }

  result = wait_result (capture);
  status = qlean_qga_client_exec_wait_finish (fixture->client, result, &error);
  g_assert_no_error (error);
  g_assert_true (status->exited);
  g_assert_cmpint (status->exit_code, ==, 3);
  g_assert_cmpint (status->signal, ==, 0);
  g_assert_cmpmem (g_bytes_get_data (status->out_data, NULL), g_bytes_get_size (status->out_data),
                   "hello\n", 6);
  g_assert_cmpmem (g_bytes_get_data (status->err_data, NULL), g_bytes_get_size (status->err_data),
                   "oops\n", 5);
  g_assert_false (status->out_truncated);
  g_assert_false (status->err_truncated);

  /* It stopped polling once the process exited. */
  fake_peer_assert_quiet (fixture->peer, 60);
}

static void
exec_status_script (FakePeer *peer,
                    gpointer  user_data)
{
  g_autofree char *id = agent_sync_then_command (peer, "guest-exec-status", NULL);

  agent_reply (peer, id, "{\"exited\": true, \"signal\": 9, \"err-truncated\": true, \"err-data\": \"\"}");
}

/* The blocking twin, and a process killed by a signal. */
static void
test_exec_status_signal (Fixture       *fixture,
                         gconstpointer  data)
{
  g_autoptr(QleanQgaExecStatus) status = NULL;
  g_autoptr(QleanQgaExecStatus) copy = NULL;
  g_autoptr(GError) error = NULL;
  GThread *thread;

  thread = fake_peer_run_in_thread (fixture->peer, exec_status_script, NULL);
  status = qlean_qga_client_exec_status (fixture->client, 17, NULL, &error);
  g_thread_join (thread);

  g_assert_no_error (error);
  g_assert_true (status->exited);
  g_assert_cmpint (status->signal, ==, 9);
  g_assert_cmpint (status->exit_code, ==, -1);
  g_assert_null (status->out_data);
  g_assert_nonnull (status->err_data);
  g_assert_cmpuint (g_bytes_get_size (status->err_data), ==, 0);
  g_assert_true (status->err_truncated);

  copy = qlean_qga_exec_status_copy (status);
  g_assert_true (copy->err_data == status->err_data);
  g_assert_cmpint (copy->signal, ==, 9);
}

static void
test_file_read (Fixture       *fixture,
                gconstpointer  data)
{
  g_autoptr(JsonObject) arguments = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *id = NULL;
  AsyncCapture *capture = g_new0 (AsyncCapture, 1);
  gboolean eof = TRUE;
  gint64 handle;

  qlean_qga_client_file_open_async (fixture->client, "/etc/hostname", NULL, NULL,
                                    async_capture_cb, capture);
  id = agent_sync_then_command (fixture->peer, "guest-file-open", &arguments);
  g_assert_cmpstr (json_object_get_string_member (arguments, "path"), ==, "/etc/hostname");
  g_assert_false (json_object_has_member (arguments, "mode"));
  agent_reply (fixture->peer, id, "1000");
  result = wait_result (capture);
  handle = qlean_qga_client_file_open_finish (fixture->client, result, &error);
  g_assert_no_error (error);
  g_assert_cmpint (handle, ==, 1000);
  g_clear_object (&result);
  g_clear_pointer (&arguments, json_object_unref);
  g_clear_pointer (&id, g_free);

  /* A chunk... */
  capture = g_new0 (AsyncCapture, 1);
  qlean_qga_client_file_read_async (fixture->client, handle, 4096, NULL, async_capture_cb, capture);
  id = agent_expect_command (fixture->peer, "guest-file-read", &arguments);
  g_assert_cmpint (json_object_get_int_member (arguments, "handle"), ==, 1000);
  g_assert_cmpint (json_object_get_int_member (arguments, "count"), ==, 4096);
  /* "vm0\n\0\xff" */
  agent_reply (fixture->peer, id, "{\"count\": 6, \"buf-b64\": \"dm0wCgD/\", \"eof\": false}");
  result = wait_result (capture);
  bytes = qlean_qga_client_file_read_finish (fixture->client, result, &eof, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes), "vm0\n\0\xff", 6);
  g_assert_false (eof);
  g_clear_object (&result);
  g_clear_pointer (&bytes, g_bytes_unref);
  g_clear_pointer (&arguments, json_object_unref);
  g_clear_pointer (&id, g_free);

  /* ...then the end. */
  capture = g_new0 (AsyncCapture, 1);
  qlean_qga_client_file_read_async (fixture->client, handle, 4096, NULL, async_capture_cb, capture);
  id = agent_expect_command (fixture->peer, "guest-file-read", NULL);
  agent_reply (fixture->peer, id, "{\"count\": 0, \"buf-b64\": \"\", \"eof\": true}");
  result = wait_result (capture);
  bytes = qlean_qga_client_file_read_finish (fixture->client, result, &eof, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_bytes_get_size (bytes), ==, 0);
  g_assert_true (eof);
  g_clear_object (&result);
  g_clear_pointer (&bytes, g_bytes_unref);
  g_clear_pointer (&id, g_free);

  /* A reply without data is an error, not an empty read. */
  capture = g_new0 (AsyncCapture, 1);
  qlean_qga_client_file_read_async (fixture->client, handle, 4096, NULL, async_capture_cb, capture);
  id = agent_expect_command (fixture->peer, "guest-file-read", NULL);
  agent_reply (fixture->peer, id, "{\"count\": 0, \"eof\": true}");
  result = wait_result (capture);
  bytes = qlean_qga_client_file_read_finish (fixture->client, result, NULL, &error);
  g_assert_null (bytes);
  g_assert_error (error, QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_PROTOCOL);
  g_assert_nonnull (strstr (error->message, "buf-b64"));
  g_clear_error (&error);
  g_clear_object (&result);
  g_clear_pointer (&id, g_free);

  capture = g_new0 (AsyncCapture, 1);
  qlean_qga_client_file_close_async (fixture->client, handle, NULL, async_capture_cb, capture);
  id = agent_expect_command (fixture->peer, "guest-file-close", &arguments);
  g_assert_cmpint (json_object_get_int_member (arguments, "handle"), ==, 1000);
  agent_reply (fixture->peer, id, "{}");
  result = wait_result (capture);
  g_assert_true (qlean_qga_client_file_close_finish (fixture->client, result, &error));
  g_assert_no_error (error);
}

static void
file_write_script (FakePeer *peer,
                   gpointer  user_data)
{
  g_autoptr(JsonObject) arguments = NULL;
  g_autofree char *id = NULL;

  id = agent_sync_then_command (peer, "guest-file-open", &arguments);
  g_assert_cmpstr (json_object_get_string_member (arguments, "mode"), ==, "w");
  agent_reply (peer, id, "5");
  g_clear_pointer (&arguments, json_object_unref);
  g_clear_pointer (&id, g_free);

  id = agent_expect_command (peer, "guest-file-write", &arguments);
  g_assert_cmpint (json_object_get_int_member (arguments, "handle"), ==, 5);
  g_assert_cmpstr (json_object_get_string_member (arguments, "buf-b64"), ==, "aGk=");
  g_assert_cmpint (json_object_get_int_member (arguments, "count"), ==, 2);
  agent_reply (peer, id, "{\"count\": 2, \"eof\": false}");
  g_clear_pointer (&id, g_free);

  /* A handle that is not a number is a broken reply. */
  id = agent_expect_command (peer, "guest-file-open", NULL);
  agent_reply (peer, id, "\"five\"");
}

static void
test_file_write_blocking (Fixture       *fixture,
                          gconstpointer  data)
{
  g_autoptr(GBytes) bytes = g_bytes_new_static ("hi", 2);
  g_autoptr(GError) error = NULL;
  GThread *thread;
  gint64 handle;

  thread = fake_peer_run_in_thread (fixture->peer, file_write_script, NULL);
  handle = qlean_qga_client_file_open (fixture->client, "/tmp/x", "w", NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (handle, ==, 5);
  g_assert_cmpint (qlean_qga_client_file_write (fixture->client, handle, bytes, NULL, &error), ==, 2);
  g_assert_no_error (error);
  g_assert_cmpint (qlean_qga_client_file_open (fixture->client, "/tmp/y", "w", NULL, &error), ==, -1);
  g_assert_error (error, QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_PROTOCOL);
  g_thread_join (thread);
}

static void
typed_calls_script (FakePeer *peer,
                    gpointer  user_data)
{
  g_autoptr(JsonObject) arguments = NULL;
  char *id;

  id = agent_sync_then_command (peer, "guest-info", NULL);
  agent_reply (peer, id, "{\"version\": \"8.2.0\", \"supported_commands\": []}");
  g_free (id);

  id = agent_expect_command (peer, "guest-get-osinfo", NULL);
  agent_reply (peer, id, "{\"id\": \"debian\", \"kernel-release\": \"6.1.0\"}");
  g_free (id);

  id = agent_expect_command (peer, "guest-network-get-interfaces", NULL);
  agent_reply (peer, id, "[{\"name\": \"lo\"}, {\"name\": \"eth0\"}]");
  g_free (id);

  id = agent_expect_command (peer, "guest-set-time", &arguments);
  g_assert_cmpint (json_object_get_int_member (arguments, "time"), ==, 1234567890);
  agent_reply (peer, id, "{}");
  g_free (id);
  g_clear_pointer (&arguments, json_object_unref);

  id = agent_expect_command (peer, "guest-set-time", &arguments);
  g_assert_false (arguments != NULL && json_object_has_member (arguments, "time"));
  agent_reply (peer, id, "{}");
  g_free (id);

  /* A reply of the wrong shape for a typed call. */
  id = agent_expect_command (peer, "guest-network-get-interfaces", NULL);
  agent_reply (peer, id, "{\"name\": \"lo\"}");
  g_free (id);

  id = agent_expect_command (peer, "guest-ping", NULL);
  agent_reply (peer, id, "{}");
  g_free (id);
}

/* The typed blocking calls, with no main loop. */
static void
test_typed_calls (Fixture       *fixture,
                  gconstpointer  data)
{
  g_autoptr(JsonObject) info = NULL;
  g_autoptr(JsonObject) osinfo = NULL;
  g_autoptr(JsonArray) interfaces = NULL;
  g_autoptr(JsonArray) broken = NULL;
  g_autoptr(GError) error = NULL;
  GThread *thread;

  thread = fake_peer_run_in_thread (fixture->peer, typed_calls_script, NULL);

  info = qlean_qga_client_info (fixture->client, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (json_object_get_string_member (info, "version"), ==, "8.2.0");

  osinfo = qlean_qga_client_get_osinfo (fixture->client, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (json_object_get_string_member (osinfo, "id"), ==, "debian");

  interfaces = qlean_qga_client_network_get_interfaces (fixture->client, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (json_array_get_length (interfaces), ==, 2);

  g_assert_true (qlean_qga_client_set_time (fixture->client, 1234567890, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_qga_client_set_time (fixture->client, -1, NULL, &error));
  g_assert_no_error (error);

  broken = qlean_qga_client_network_get_interfaces (fixture->client, NULL, &error);
  g_assert_null (broken);
  g_assert_error (error, QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_PROTOCOL);
  g_clear_error (&error);

  g_assert_true (qlean_qga_client_ping (fixture->client, NULL, &error));
  g_assert_no_error (error);

  g_thread_join (thread);
}

/* Replies of the right kind whose members have the wrong types: each
 * typed call fails with a protocol error, never a warning (which tests
 * make fatal) or a crash. */
static const struct
{
  const char *command;
  const char *reply;
} wrong_types[] = {
  { "guest-network-get-interfaces", "[{\"name\": 5}]" },
  { "guest-network-get-interfaces", "[{\"name\": \"eth0\", \"hardware-address\": {}}]" },
  { "guest-network-get-interfaces", "[7]" },
  { "guest-network-get-interfaces", "[{\"name\": \"eth0\", \"ip-addresses\": {}}]" },
  { "guest-network-get-interfaces", "[{\"name\": \"eth0\", \"ip-addresses\": [[]]}]" },
  { "guest-network-get-interfaces", "[{\"name\": \"eth0\", \"ip-addresses\": "
                                    "[{\"ip-address\": [], \"ip-address-type\": \"ipv4\", \"prefix\": 24}]}]" },
  { "guest-network-get-interfaces", "[{\"name\": \"eth0\", \"ip-addresses\": "
                                    "[{\"ip-address\": \"10.0.0.2\", \"ip-address-type\": \"ipv4\", \"prefix\": \"24\"}]}]" },
  { "guest-get-osinfo", "{\"id\": {}}" },
  { "guest-get-osinfo", "{\"id\": \"debian\", \"kernel-release\": [\"6.1\"]}" },
  { "guest-info", "{\"version\": 8, \"supported_commands\": []}" },
  { "guest-info", "{\"version\": \"8.2.0\"}" },
  { "guest-info", "{\"version\": \"8.2.0\", \"supported_commands\": [\"guest-ping\"]}" },
  { "guest-info", "{\"version\": \"8.2.0\", \"supported_commands\": [{\"name\": \"guest-ping\", \"enabled\": \"yes\"}]}" },
  { "guest-exec-status", "{\"exited\": \"yes\"}" },
  { "guest-exec-status", "{\"exited\": true, \"exitcode\": {}}" },
  { "guest-exec-status", "{\"exited\": true, \"exitcode\": \"0\"}" },
  { "guest-exec-status", "{\"exited\": true, \"signal\": []}" },
  { "guest-exec-status", "{\"exited\": true, \"exitcode\": -2}" },
  { "guest-exec-status", "{\"exited\": true, \"exitcode\": 4294967296}" },
  { "guest-exec-status", "{\"exited\": true, \"signal\": -9}" },
  { "guest-exec-status", "{\"exited\": true, \"out-data\": {}}" },
  { "guest-exec-status", "{\"exited\": true, \"err-data\": 3}" },
  { "guest-exec-status", "{\"exited\": true, \"out-truncated\": {}}" },
  { "guest-file-read", "{\"count\": 2, \"buf-b64\": {}, \"eof\": true}" },
  { "guest-file-read", "{\"count\": 2, \"buf-b64\": \"aGk=\", \"eof\": []}" },
  { "guest-file-write", "{\"count\": 3, \"eof\": false}" },
  { "guest-file-write", "{\"count\": -1, \"eof\": false}" },
  { "guest-file-write", "{\"count\": \"2\", \"eof\": false}" },
  { "guest-file-write", "{\"count\": {}, \"eof\": false}" },
  { "guest-exec", "{\"pid\": {}}" },
  { "guest-file-open", "{}" },
};

static void
wrong_types_script (FakePeer *peer,
                    gpointer  user_data)
{
  for (guint i = 0; i < G_N_ELEMENTS (wrong_types); i++)
    {
      g_autofree char *id = NULL;

      if (i == 0)
        id = agent_sync_then_command (peer, wrong_types[i].command, NULL);
      else
        id = agent_expect_command (peer, wrong_types[i].command, NULL);
      agent_reply (peer, id, wrong_types[i].reply);
    }
}

static void
test_typed_wrong_types (Fixture       *fixture,
                        gconstpointer  data)
{
  g_autoptr(GBytes) two = g_bytes_new_static ("hi", 2);
  GThread *thread;

  thread = fake_peer_run_in_thread (fixture->peer, wrong_types_script, NULL);

  for (guint i = 0; i < G_N_ELEMENTS (wrong_types); i++)
    {
      const char *command = wrong_types[i].command;
      g_autoptr(GError) error = NULL;
      gboolean failed;

      if (g_str_equal (command, "guest-network-get-interfaces"))
        {
          g_autoptr(JsonArray) got = qlean_qga_client_network_get_interfaces (fixture->client, NULL, &error);

          failed = got == NULL;
        }
      else if (g_str_equal (command, "guest-get-osinfo"))
        {
          g_autoptr(JsonObject) got = qlean_qga_client_get_osinfo (fixture->client, NULL, &error);

          failed = got == NULL;
        }
      else if (g_str_equal (command, "guest-info"))
        {
          g_autoptr(JsonObject) got = qlean_qga_client_info (fixture->client, NULL, &error);

          failed = got == NULL;
        }
      else if (g_str_equal (command, "guest-exec-status"))
        {
          g_autoptr(QleanQgaExecStatus) got = qlean_qga_client_exec_status (fixture->client, 7, NULL, &error);

          failed = got == NULL;
        }
      else if (g_str_equal (command, "guest-file-read"))
        {
          g_autoptr(GBytes) got = qlean_qga_client_file_read (fixture->client, 5, 2, NULL, NULL, &error);

          failed = got == NULL;
        }
      else if (g_str_equal (command, "guest-file-write"))
        failed = qlean_qga_client_file_write (fixture->client, 5, two, NULL, &error) == -1;
      else if (g_str_equal (command, "guest-exec"))
        failed = qlean_qga_client_exec (fixture->client, "/bin/true", NULL, NULL, NULL, FALSE,
                                        NULL, &error) == -1;
      else
        failed = qlean_qga_client_file_open (fixture->client, "/x", NULL, NULL, &error) == -1;

      if (!failed || !g_error_matches (error, QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_PROTOCOL))
        g_error ("%s answered with %s did not fail with a protocol error: %s", command,
                 wrong_types[i].reply, error ? error->message : "no error");
      g_assert_nonnull (strstr (error->message, command));
    }

  g_thread_join (thread);
  g_assert_false (qlean_qga_client_is_closed (fixture->client));
}

/* The async write checks the count against what it sent, too. */
static void
test_file_write_count_async (Fixture       *fixture,
                             gconstpointer  data)
{
  g_autoptr(GBytes) bytes = g_bytes_new_static ("hi", 2);
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *id = NULL;
  AsyncCapture *capture = g_new0 (AsyncCapture, 1);

  qlean_qga_client_file_write_async (fixture->client, 5, bytes, NULL, async_capture_cb, capture);
  id = agent_sync_then_command (fixture->peer, "guest-file-write", NULL);
  agent_reply (fixture->peer, id, "{\"count\": 2, \"eof\": false}");
  result = wait_result (capture);
  g_assert_cmpint (qlean_qga_client_file_write_finish (fixture->client, result, &error), ==, 2);
  g_assert_no_error (error);
  g_clear_object (&result);
  g_clear_pointer (&id, g_free);

  capture = g_new0 (AsyncCapture, 1);
  qlean_qga_client_file_write_async (fixture->client, 5, bytes, NULL, async_capture_cb, capture);
  id = agent_expect_command (fixture->peer, "guest-file-write", NULL);
  agent_reply (fixture->peer, id, "{\"count\": 1000000, \"eof\": false}");
  result = wait_result (capture);
  g_assert_cmpint (qlean_qga_client_file_write_finish (fixture->client, result, &error), ==, -1);
  g_assert_error (error, QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_PROTOCOL);
  g_assert_nonnull (strstr (error->message, "2 bytes sent"));
}


/* The machine's wait for its network card reads the same reply through
 * qlean_machine_network_match_interface(): members of the wrong type
 * read as missing (a name that was no string was dereferenced as NULL). */
static void
test_network_match_wrong_types (void)
{
  const char *data =
    "{\"return\": [{\"name\": 5, \"hardware-address\": {}}, 7, null, [],"
    " {\"hardware-address\": \"52:54:00:00:00:01\"},"
    " {\"name\": \"lo\", \"hardware-address\": 1, \"ip-addresses\": \"x\"},"
    " {\"name\": \"eth0\", \"hardware-address\": \"52:54:00:12:34:56\","
    "  \"ip-addresses\": [3, {\"ip-address\": {}, \"ip-address-type\": \"ipv4\"},"
    "                   {\"ip-address\": \"1.2.3.4\", \"ip-address-type\": []},"
    "                   {\"ip-address\": \"10.0.0.2\", \"ip-address-type\": \"ipv4\"}]}]}";
  g_autoptr(JsonObject) message = NULL;
  g_autoptr(GError) error = NULL;
  JsonArray *interfaces;
  g_autofree char *name = NULL;
  g_autofree char *ipv4 = NULL;
  g_autofree char *seen = NULL;

  message = qlean_json_parse_object (data, strlen (data), &error);
  g_assert_no_error (error);
  interfaces = json_object_get_array_member (message, "return");

  g_assert_true (qlean_machine_network_match_interface (interfaces, "52:54:00:12:34:56", TRUE,
                                                        &name, &ipv4, &seen));
  g_assert_cmpstr (name, ==, "eth0");
  g_assert_cmpstr (ipv4, ==, "10.0.0.2");
  g_assert_nonnull (strstr (seen, "? (no MAC, no IPv4)"));
  g_clear_pointer (&name, g_free);
  g_clear_pointer (&ipv4, g_free);
  g_clear_pointer (&seen, g_free);

  /* Any card but loopback: the nameless ones cannot be it. */
  g_assert_true (qlean_machine_network_match_interface (interfaces, NULL, FALSE, &name, &ipv4, &seen));
  g_assert_cmpstr (name, ==, "eth0");
  g_clear_pointer (&name, g_free);
  g_clear_pointer (&ipv4, g_free);
  g_clear_pointer (&seen, g_free);

  /* A MAC address nobody has, a nameless card's included. */
  g_assert_false (qlean_machine_network_match_interface (interfaces, "52:54:00:00:00:01", FALSE,
                                                         &name, &ipv4, &seen));
  g_assert_null (name);
  g_assert_null (ipv4);
  g_assert_nonnull (strstr (seen, "eth0 (52:54:00:12:34:56, 10.0.0.2)"));
  g_clear_pointer (&seen, g_free);

  g_assert_false (qlean_machine_network_match_interface (NULL, NULL, FALSE, &name, &ipv4, &seen));
  g_assert_cmpstr (seen, ==, "");
}

/* guest-shutdown never answers; notify_shutdown completes it. */
static void
test_shutdown_notify (Fixture       *fixture,
                      gconstpointer  data)
{
  g_autoptr(JsonObject) arguments = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *id = NULL;
  g_autofree char *next_id = NULL;
  AsyncCapture *capture = g_new0 (AsyncCapture, 1);

  /* Early notifications, with nothing in flight, change nothing. */
  qlean_qga_client_notify_shutdown (fixture->client);

  qlean_qga_client_shutdown_async (fixture->client, NULL, NULL, async_capture_cb, capture);
  id = agent_sync_then_command (fixture->peer, "guest-shutdown", &arguments);
  g_assert_cmpstr (json_object_get_string_member (arguments, "mode"), ==, "powerdown");

  test_spin (30);
  g_assert_null (capture->result);

  qlean_qga_client_notify_shutdown (fixture->client);
  result = wait_result (capture);
  g_assert_true (qlean_qga_client_shutdown_finish (fixture->client, result, &error));
  g_assert_no_error (error);

  /* A reboot keeps the channel; the next command goes out, after a
   * resync or not (the agent restarted with the guest, so one would be
   * fair). */
  capture = execute_async (fixture, "guest-get-time", NULL, NULL);
  next_id = agent_maybe_sync_then_command (fixture->peer, "guest-get-time");
  agent_reply (fixture->peer, next_id, "8");
  assert_int_reply (fixture, capture, 8);
}

/* ...and the channel closing as the guest goes away completes it too,
 * while the command queued behind it fails. */
static void
test_shutdown_channel_closes (Fixture       *fixture,
                              gconstpointer  data)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply = NULL;
  g_autofree char *id = NULL;
  AsyncCapture *capture = g_new0 (AsyncCapture, 1);
  AsyncCapture *queued;

  qlean_qga_client_shutdown_async (fixture->client, "reboot", NULL, async_capture_cb, capture);
  queued = execute_async (fixture, "guest-ping", NULL, NULL);
  id = agent_sync_then_command (fixture->peer, "guest-shutdown", NULL);
  fake_peer_close (fixture->peer);

  result = wait_result (capture);
  g_assert_true (qlean_qga_client_shutdown_finish (fixture->client, result, &error));
  g_assert_no_error (error);

  reply = execute_finish (fixture, queued, &error);
  g_assert_null (reply);
  g_assert_error (error, QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_DISCONNECTED);

  WAIT_UNTIL (fixture->closed_count > 0);
  g_assert_error (fixture->closed_error, QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_DISCONNECTED);
}


#define ADD_FIXTURE_TEST(path, func) \
  g_test_add (path, Fixture, NULL, fixture_setup, func, fixture_teardown)

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  ADD_FIXTURE_TEST ("/qga/exec/wait", test_exec_wait);
  ADD_FIXTURE_TEST ("/qga/exec/status-signal", test_exec_status_signal);
  ADD_FIXTURE_TEST ("/qga/file/read", test_file_read);
  ADD_FIXTURE_TEST ("/qga/file/write-blocking", test_file_write_blocking);
  ADD_FIXTURE_TEST ("/qga/typed-calls", test_typed_calls);
  ADD_FIXTURE_TEST ("/qga/typed-calls/wrong-types", test_typed_wrong_types);
  ADD_FIXTURE_TEST ("/qga/file/write-count-async", test_file_write_count_async);
  g_test_add_func ("/qga/network/match-wrong-types", test_network_match_wrong_types);
  ADD_FIXTURE_TEST ("/qga/shutdown/notify", test_shutdown_notify);
  ADD_FIXTURE_TEST ("/qga/shutdown/channel-closes", test_shutdown_channel_closes);

  return g_test_run ();
}
