/* test-qmp-client.c: QleanQmpClient against a scripted fake QEMU monitor
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>

#include "qlean-json-framer-private.h"
#include "qlean-qmp-client.h"
#include "qlean-qmp-error.h"
#include "qlean-worker-private.h"

#include "fake-peer.h"

#define GREETING \
  "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 8}, " \
  "\"package\": \"Debian 1:8.2.0\"}, \"capabilities\": [\"oob\"]}}\n"

/* The peer side of QMP: reads one command and checks its name. */
static JsonObject *
peer_expect_command (FakePeer   *peer,
                     const char *command,
                     gint64     *id)
{
  JsonObject *message = fake_peer_read_message (peer);
  JsonNode *id_node = json_object_get_member (message, "id");

  g_assert_cmpstr (json_object_get_string_member (message, "execute"), ==, command);
  g_assert_nonnull (id_node);
  g_assert_cmpint (json_node_get_value_type (id_node), ==, G_TYPE_INT64);
  if (id != NULL)
    *id = json_node_get_int (id_node);

  return message;
}

static void
peer_reply (FakePeer   *peer,
            gint64      id,
            const char *return_json)
{
  fake_peer_writef (peer, "{\"return\": %s, \"id\": %" G_GINT64_FORMAT "}\n", return_json, id);
}

/* The monitor's half of the handshake. */
static void
peer_handshake (FakePeer *peer)
{
  g_autoptr(JsonObject) caps = NULL;
  gint64 id;

  fake_peer_write (peer, GREETING, -1);
  caps = peer_expect_command (peer, "qmp_capabilities", &id);
  g_assert_cmpint (id, ==, 0);
  g_assert_false (json_object_has_member (caps, "arguments"));
  peer_reply (peer, id, "{}");
}

typedef struct
{
  FakePeer       *peer;
  QleanQmpClient *client;
  guint           closed_count;
  GError         *closed_error;
} Fixture;

static void
closed_cb (QleanQmpClient *client,
           const GError   *error,
           Fixture        *fixture)
{
  g_assert_nonnull (error);
  fixture->closed_count++;
  g_clear_error (&fixture->closed_error);
  fixture->closed_error = g_error_copy (error);
}

static QleanQmpClient *
connect_client (FakePeer *peer,
                GIOStream *stream)
{
  g_auto(AsyncCapture) capture = { 0 };
  g_autoptr(GError) error = NULL;
  QleanQmpClient *client;

  qlean_qmp_client_new_async (stream, NULL, async_capture_cb, &capture);
  peer_handshake (peer);
  WAIT_UNTIL (capture.result != NULL);

  client = qlean_qmp_client_new_finish (capture.result, &error);
  g_assert_no_error (error);
  g_assert_true (QLEAN_IS_QMP_CLIENT (client));

  return client;
}

static void
fixture_setup (Fixture       *fixture,
               gconstpointer  data)
{
  g_autoptr(GIOStream) stream = NULL;

  fixture->peer = fake_peer_new (&stream);
  fixture->client = connect_client (fixture->peer, stream);
  g_signal_connect (fixture->client, "closed", G_CALLBACK (closed_cb), fixture);
}

static void
fixture_teardown (Fixture       *fixture,
                  gconstpointer  data)
{
  qlean_qmp_client_close (fixture->client);
  WAIT_UNTIL (fixture->closed_count > 0);
  /* Let a second emission show up, if there were one. */
  test_spin (10);
  g_assert_cmpuint (fixture->closed_count, ==, 1);
  g_assert_true (qlean_qmp_client_is_closed (fixture->client));

  g_signal_handlers_disconnect_by_data (fixture->client, fixture);
  assert_finalized (g_steal_pointer (&fixture->client));
  g_clear_error (&fixture->closed_error);
  g_clear_pointer (&fixture->peer, fake_peer_free);
}

/* Starts a command and returns the capture its callback fills. */
static AsyncCapture *
execute_async (Fixture      *fixture,
               const char   *command,
               JsonObject   *arguments,
               GCancellable *cancellable)
{
  AsyncCapture *capture = g_new0 (AsyncCapture, 1);

  qlean_qmp_client_execute_async (fixture->client, command, arguments, cancellable,
                                  async_capture_cb, capture);
  return capture;
}

/* Waits for the call, checks its callback ran once, and finishes it. */
static JsonNode *
execute_finish (Fixture       *fixture,
                AsyncCapture  *capture,
                GError       **error)
{
  JsonNode *reply;

  WAIT_UNTIL (capture->result != NULL);
  g_assert_cmpuint (capture->count, ==, 1);
  reply = qlean_qmp_client_execute_finish (fixture->client, capture->result, error);
  async_capture_clear (capture);
  g_free (capture);

  return reply;
}

typedef struct
{
  GPtrArray *names;
  GPtrArray *data;
} EventLog;

static void
event_log_init (EventLog *log)
{
  log->names = g_ptr_array_new_with_free_func (g_free);
  log->data = g_ptr_array_new_with_free_func ((GDestroyNotify) json_object_unref);
}

static void
event_log_clear (EventLog *log)
{
  g_clear_pointer (&log->names, g_ptr_array_unref);
  g_clear_pointer (&log->data, g_ptr_array_unref);
}

static void
event_cb (QleanQmpClient *client,
          const char     *name,
          JsonObject     *data,
          EventLog       *log)
{
  g_assert_nonnull (data);
  g_ptr_array_add (log->names, g_strdup (name));
  g_ptr_array_add (log->data, json_object_ref (data));
}

static void
test_handshake (void)
{
  g_autoptr(GIOStream) stream = NULL;
  g_autoptr(FakePeer) peer = fake_peer_new (&stream);
  g_auto(AsyncCapture) capture = { 0 };
  g_autoptr(JsonObject) caps = NULL;
  g_autoptr(GError) error = NULL;
  QleanQmpClient *client;
  JsonObject *greeting;
  JsonObject *qemu;
  gint64 id;

  qlean_qmp_client_new_async (stream, NULL, async_capture_cb, &capture);

  /* QEMU speaks first: the client waits for the greeting. */
  fake_peer_assert_quiet (peer, 20);
  fake_peer_write (peer, GREETING, -1);

  caps = peer_expect_command (peer, "qmp_capabilities", &id);
  g_assert_cmpint (id, ==, 0);
  g_assert_false (json_object_has_member (caps, "arguments"));

  /* Not ready until QEMU accepted the capabilities. */
  test_spin (20);
  g_assert_null (capture.result);

  peer_reply (peer, id, "{}");
  WAIT_UNTIL (capture.result != NULL);
  client = qlean_qmp_client_new_finish (capture.result, &error);
  g_assert_no_error (error);
  g_assert_nonnull (client);
  /* The result holds the client too. */
  async_capture_clear (&capture);
  g_assert_false (qlean_qmp_client_is_closed (client));

  greeting = qlean_qmp_client_get_greeting (client);
  g_assert_nonnull (greeting);
  qemu = json_object_get_object_member (json_object_get_object_member (greeting, "version"), "qemu");
  g_assert_cmpint (json_object_get_int_member (qemu, "major"), ==, 8);
  g_assert_cmpint (json_object_get_int_member (qemu, "minor"), ==, 2);
  g_assert_cmpstr (json_array_get_string_element (json_object_get_array_member (greeting, "capabilities"), 0),
                   ==, "oob");

  qlean_qmp_client_close (client);
  fake_peer_assert_eof (peer);
  assert_finalized (client);
}

static QleanQmpClient *
handshake_expect_failure (FakePeer   *peer,
                          GIOStream  *stream,
                          GError    **error)
{
  g_auto(AsyncCapture) capture = { 0 };

  qlean_qmp_client_new_async (stream, NULL, async_capture_cb, &capture);
  WAIT_UNTIL (capture.result != NULL);
  test_spin (10);
  g_assert_cmpuint (capture.count, ==, 1);

  return qlean_qmp_client_new_finish (capture.result, error);
}

static void
test_handshake_not_greeting (void)
{
  g_autoptr(GIOStream) stream = NULL;
  g_autoptr(FakePeer) peer = fake_peer_new (&stream);
  g_autoptr(QleanQmpClient) client = NULL;
  g_autoptr(GError) error = NULL;

  fake_peer_write (peer, "{\"return\": {}, \"id\": 0}\n", -1);
  client = handshake_expect_failure (peer, stream, &error);
  g_assert_null (client);
  g_assert_error (error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_PROTOCOL);
  g_assert_nonnull (strstr (error->message, "greeting"));
  fake_peer_assert_eof (peer);
}

static void
test_handshake_refused (void)
{
  g_autoptr(GIOStream) stream = NULL;
  g_autoptr(FakePeer) peer = fake_peer_new (&stream);
  g_autoptr(QleanQmpClient) client = NULL;
  g_autoptr(JsonObject) caps = NULL;
  g_autoptr(GError) error = NULL;
  g_auto(AsyncCapture) capture = { 0 };
  gint64 id;

  qlean_qmp_client_new_async (stream, NULL, async_capture_cb, &capture);
  fake_peer_write (peer, GREETING, -1);
  caps = peer_expect_command (peer, "qmp_capabilities", &id);
  fake_peer_writef (peer, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}, "
                    "\"id\": %" G_GINT64_FORMAT "}\n", id);
  WAIT_UNTIL (capture.result != NULL);

  client = qlean_qmp_client_new_finish (capture.result, &error);
  g_assert_null (client);
  g_assert_error (error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_PROTOCOL);
  fake_peer_assert_eof (peer);
}

static void
test_handshake_peer_closed (void)
{
  g_autoptr(GIOStream) stream = NULL;
  g_autoptr(FakePeer) peer = fake_peer_new (&stream);
  g_autoptr(QleanQmpClient) client = NULL;
  g_autoptr(GError) error = NULL;

  /* Half a greeting, then QEMU dies. */
  fake_peer_write (peer, "{\"QMP\": {\"version\"", -1);
  fake_peer_close (peer);
  client = handshake_expect_failure (peer, stream, &error);
  g_assert_null (client);
  g_assert_error (error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_DISCONNECTED);
}

static void
handshake_script (FakePeer *peer,
                  gpointer  user_data)
{
  g_autoptr(JsonObject) command = NULL;
  gint64 id;

  peer_handshake (peer);
  command = peer_expect_command (peer, "query-version", &id);
  g_assert_cmpint (id, ==, 1);
  peer_reply (peer, id, "{\"qemu\": {\"major\": 8}}");
  fake_peer_write (peer, "{\"event\": \"POWERDOWN\"}\n", -1);
}

/* The blocking constructor and call, with no main loop anywhere on this
 * thread: the peer answers from another thread. */
static void
test_handshake_blocking (void)
{
  g_autoptr(GIOStream) stream = NULL;
  g_autoptr(FakePeer) peer = fake_peer_new (&stream);
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply = NULL;
  QleanQmpClient *client;
  GThread *thread;
  EventLog log;

  thread = fake_peer_run_in_thread (peer, handshake_script, NULL);

  client = qlean_qmp_client_new (stream, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (qlean_qmp_client_get_greeting (client));
  event_log_init (&log);
  g_signal_connect (client, "event", G_CALLBACK (event_cb), &log);

  reply = qlean_qmp_client_execute (client, "query-version", NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (json_object_get_int_member (json_object_get_object_member (json_node_get_object (reply),
                                                                              "qemu"),
                                               "major"), ==, 8);
  g_thread_join (thread);

  /* Events come on this thread's context, not the blocking call's. */
  WAIT_UNTIL (log.names->len == 1);
  g_assert_cmpstr (log.names->pdata[0], ==, "POWERDOWN");
  g_signal_handlers_disconnect_by_data (client, &log);
  event_log_clear (&log);

  qlean_qmp_client_close (client);
  fake_peer_assert_eof (peer);
  assert_finalized (client);
}

static void
test_execute_success (Fixture       *fixture,
                      gconstpointer  data)
{
  g_autoptr(JsonObject) arguments = json_object_new ();
  g_autoptr(JsonObject) command = NULL;
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;
  AsyncCapture *capture;
  JsonObject *sent_arguments;
  JsonObject *result;
  gint64 id;

  json_object_set_string_member (arguments, "device", "virtio-disk0");
  json_object_set_boolean_member (arguments, "force", TRUE);

  capture = execute_async (fixture, "eject", arguments, NULL);
  command = peer_expect_command (fixture->peer, "eject", &id);
  /* Commands count from 1; 0 was the negotiation. */
  g_assert_cmpint (id, ==, 1);
  sent_arguments = json_object_get_object_member (command, "arguments");
  g_assert_nonnull (sent_arguments);
  g_assert_cmpstr (json_object_get_string_member (sent_arguments, "device"), ==, "virtio-disk0");
  g_assert_true (json_object_get_boolean_member (sent_arguments, "force"));

  peer_reply (fixture->peer, id, "{\"status\": \"running\", \"running\": true}");
  reply = execute_finish (fixture, capture, &error);
  g_assert_no_error (error);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (reply));
  result = json_node_get_object (reply);
  g_assert_cmpstr (json_object_get_string_member (result, "status"), ==, "running");
  g_assert_true (json_object_get_boolean_member (result, "running"));

  /* The next call gets the next id and no arguments member. */
  g_clear_pointer (&command, json_object_unref);
  g_clear_pointer (&reply, json_node_unref);
  capture = execute_async (fixture, "stop", NULL, NULL);
  command = peer_expect_command (fixture->peer, "stop", &id);
  g_assert_cmpint (id, ==, 2);
  g_assert_false (json_object_has_member (command, "arguments"));
  peer_reply (fixture->peer, id, "{}");
  reply = execute_finish (fixture, capture, &error);
  g_assert_no_error (error);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (reply));
  g_assert_cmpuint (json_object_get_size (json_node_get_object (reply)), ==, 0);
}

static void
test_execute_error (Fixture       *fixture,
                    gconstpointer  data)
{
  static const struct
  {
    const char *klass;
    int         code;
  } cases[] = {
    { "GenericError", QLEAN_QMP_ERROR_GENERIC },
    { "CommandNotFound", QLEAN_QMP_ERROR_COMMAND_NOT_FOUND },
    { "DeviceNotActive", QLEAN_QMP_ERROR_DEVICE_NOT_ACTIVE },
    { "DeviceNotFound", QLEAN_QMP_ERROR_DEVICE_NOT_FOUND },
    { "KVMMissingCap", QLEAN_QMP_ERROR_KVM_MISSING_CAP },
    /* A class this QEMU invented after us. */
    { "SomethingNew", QLEAN_QMP_ERROR_GENERIC },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(JsonObject) command = NULL;
      g_autoptr(JsonNode) reply = NULL;
      g_autoptr(GError) error = NULL;
      g_autofree char *desc = g_strdup_printf ("Device 'nope%u' not found", i);
      AsyncCapture *capture;
      gint64 id;

      capture = execute_async (fixture, "device_del", NULL, NULL);
      command = peer_expect_command (fixture->peer, "device_del", &id);
      fake_peer_writef (fixture->peer,
                        "{\"error\": {\"class\": \"%s\", \"desc\": \"%s\"}, \"id\": %" G_GINT64_FORMAT "}\n",
                        cases[i].klass, desc, id);

      reply = execute_finish (fixture, capture, &error);
      g_assert_null (reply);
      g_assert_error (error, QLEAN_QMP_ERROR, cases[i].code);
      g_assert_nonnull (strstr (error->message, desc));
      g_assert_nonnull (strstr (error->message, "device_del"));
    }

  /* An error of the wrong shape is still an error, and no crash. */
  {
    g_autoptr(JsonObject) command = NULL;
    g_autoptr(JsonNode) reply = NULL;
    g_autoptr(GError) error = NULL;
    AsyncCapture *capture;
    gint64 id;

    capture = execute_async (fixture, "device_del", NULL, NULL);
    command = peer_expect_command (fixture->peer, "device_del", &id);
    fake_peer_writef (fixture->peer, "{\"error\": \"bare\", \"id\": %" G_GINT64_FORMAT "}\n", id);
    reply = execute_finish (fixture, capture, &error);
    g_assert_null (reply);
    g_assert_error (error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_GENERIC);
  }

  /* Nor is a class or description that is no string: no warning. */
  {
    g_autoptr(JsonObject) command = NULL;
    g_autoptr(JsonNode) reply = NULL;
    g_autoptr(GError) error = NULL;
    AsyncCapture *capture;
    gint64 id;

    capture = execute_async (fixture, "device_del", NULL, NULL);
    command = peer_expect_command (fixture->peer, "device_del", &id);
    fake_peer_writef (fixture->peer, "{\"error\": {\"class\": {}, \"desc\": [\"x\"]}, "
                                     "\"id\": %" G_GINT64_FORMAT "}\n", id);
    reply = execute_finish (fixture, capture, &error);
    g_assert_null (reply);
    g_assert_error (error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_GENERIC);
  }

  /* An error reply leaves the connection usable. */
  g_assert_false (qlean_qmp_client_is_closed (fixture->client));
  g_assert_cmpuint (fixture->closed_count, ==, 0);
}

static void
test_event (Fixture       *fixture,
            gconstpointer  data)
{
  g_autoptr(JsonObject) command = NULL;
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;
  EventLog all;
  EventLog stops;
  AsyncCapture *capture;
  gint64 id;

  event_log_init (&all);
  event_log_init (&stops);
  g_signal_connect (fixture->client, "event", G_CALLBACK (event_cb), &all);
  g_signal_connect (fixture->client, "event::STOP", G_CALLBACK (event_cb), &stops);

  capture = execute_async (fixture, "stop", NULL, NULL);
  command = peer_expect_command (fixture->peer, "stop", &id);

  /* Events between the command and its reply, as QEMU sends them. */
  fake_peer_write (fixture->peer,
                   "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"STOP\"}\n"
                   "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 3}, \"event\": \"BLOCK_JOB_READY\", "
                   "\"data\": {\"device\": \"job0\", \"len\": 42}}\n", -1);
  peer_reply (fixture->peer, id, "{}");

  reply = execute_finish (fixture, capture, &error);
  g_assert_no_error (error);
  g_assert_nonnull (reply);

  WAIT_UNTIL (all.names->len == 2);
  g_assert_cmpstr (all.names->pdata[0], ==, "STOP");
  g_assert_cmpuint (json_object_get_size (all.data->pdata[0]), ==, 0);
  g_assert_cmpstr (all.names->pdata[1], ==, "BLOCK_JOB_READY");
  g_assert_cmpstr (json_object_get_string_member (all.data->pdata[1], "device"), ==, "job0");
  g_assert_cmpint (json_object_get_int_member (all.data->pdata[1], "len"), ==, 42);

  /* The detailed handler saw STOP only. */
  g_assert_cmpuint (stops.names->len, ==, 1);
  g_assert_cmpstr (stops.names->pdata[0], ==, "STOP");

  /* Events with no command pending arrive too. */
  fake_peer_write (fixture->peer, "{\"event\": \"RESUME\", \"timestamp\": {}}\n"
                                  "{\"event\": \"STOP\", \"data\": {\"reason\": 1}}\n", -1);
  WAIT_UNTIL (all.names->len == 4);
  g_assert_cmpstr (all.names->pdata[2], ==, "RESUME");
  g_assert_cmpstr (all.names->pdata[3], ==, "STOP");
  WAIT_UNTIL (stops.names->len == 2);
  g_assert_cmpint (json_object_get_int_member (stops.data->pdata[1], "reason"), ==, 1);

  /* A name that is no string is no event; data that is no object is none. */
  fake_peer_write (fixture->peer, "{\"event\": {\"name\": \"STOP\"}}\n"
                                  "{\"event\": [\"STOP\"], \"data\": {}}\n"
                                  "{\"event\": \"RESUME\", \"data\": [1, 2]}\n", -1);
  WAIT_UNTIL (all.names->len == 5);
  test_spin (10);
  g_assert_cmpuint (all.names->len, ==, 5);
  g_assert_cmpstr (all.names->pdata[4], ==, "RESUME");
  g_assert_cmpuint (json_object_get_size (all.data->pdata[4]), ==, 0);

  g_signal_handlers_disconnect_by_data (fixture->client, &all);
  g_signal_handlers_disconnect_by_data (fixture->client, &stops);
  event_log_clear (&all);
  event_log_clear (&stops);
}

typedef struct
{
  GThread  *thread;
  gboolean  in_thread;
  guint     count;
} ContextCheck;

static void
event_context_cb (QleanQmpClient *client,
                  const char     *name,
                  JsonObject     *data,
                  ContextCheck   *check)
{
  check->in_thread = g_thread_self () == check->thread;
  check->count++;
}

/* Signals come on the context that was thread-default when the client
 * was made, not on whichever context happens to be iterated. */
static void
test_event_context (void)
{
  g_autoptr(GIOStream) stream = NULL;
  g_autoptr(FakePeer) peer = fake_peer_new (&stream);
  g_autoptr(GMainContext) context = g_main_context_new ();
  ContextCheck check = { g_thread_self (), FALSE, 0 };
  QleanQmpClient *client;

  g_main_context_push_thread_default (context);
  client = connect_client (peer, stream);
  g_signal_connect (client, "event", G_CALLBACK (event_context_cb), &check);
  g_main_context_pop_thread_default (context);

  fake_peer_write (peer, "{\"event\": \"STOP\"}\n", -1);

  /* Iterating the default context does not deliver it... */
  test_spin (30);
  g_assert_cmpuint (check.count, ==, 0);

  /* ...its own context does. */
  g_main_context_push_thread_default (context);
  WAIT_UNTIL (check.count == 1);
  g_assert_true (check.in_thread);

  qlean_qmp_client_close (client);
  g_signal_handlers_disconnect_by_data (client, &check);
  assert_finalized (client);
  g_main_context_pop_thread_default (context);
}

/* A reply split across reads completes only when its last byte arrives. */
static void
test_split_line (Fixture       *fixture,
                 gconstpointer  data)
{
  g_autoptr(JsonObject) command = NULL;
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;
  AsyncCapture *capture;
  gint64 id;
  gsize len;

  capture = execute_async (fixture, "query-status", NULL, NULL);
  command = peer_expect_command (fixture->peer, "query-status", &id);

  line = g_strdup_printf ("{\"return\": {\"status\": \"paused\"}, \"id\": %" G_GINT64_FORMAT "}\n", id);
  len = strlen (line);
  for (gsize i = 0; i + 1 < len; i++)
    {
      fake_peer_write (fixture->peer, line + i, 1);
      /* Long enough for the worker to read most bytes on their own. */
      g_usleep (500);
    }

  test_spin (20);
  g_assert_null (capture->result);

  fake_peer_write (fixture->peer, line + len - 1, 1);
  reply = execute_finish (fixture, capture, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (json_object_get_string_member (json_node_get_object (reply), "status"), ==, "paused");

  /* Two chunks, the second holding the end of one reply and a whole
   * other one. */
  g_clear_pointer (&command, json_object_unref);
  g_clear_pointer (&reply, json_node_unref);
  capture = execute_async (fixture, "query-name", NULL, NULL);
  command = peer_expect_command (fixture->peer, "query-name", &id);
  fake_peer_writef (fixture->peer, "{\"timestamp\": {}, \"ev");
  test_spin (10);
  g_assert_null (capture->result);
  fake_peer_writef (fixture->peer, "ent\": \"RESUME\"}\n{\"return\": {\"name\": \"vm0\"}, "
                    "\"id\": %" G_GINT64_FORMAT "}\n", id);
  reply = execute_finish (fixture, capture, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (json_object_get_string_member (json_node_get_object (reply), "name"), ==, "vm0");
}

/* Several commands in flight; the monitor answers out of order. */
static void
test_out_of_order (Fixture       *fixture,
                   gconstpointer  data)
{
  const char *commands[] = { "query-a", "query-b", "query-c", "query-d" };
  AsyncCapture *captures[G_N_ELEMENTS (commands)];
  gint64 ids[G_N_ELEMENTS (commands)];

  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    captures[i] = execute_async (fixture, commands[i], NULL, NULL);

  /* The calls went out in the order they were made. */
  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    {
      json_object_unref (peer_expect_command (fixture->peer, commands[i], &ids[i]));
      if (i > 0)
        g_assert_cmpint (ids[i], >, ids[i - 1]);
    }

  /* Answer c, a, d, b: each reply names its command. */
  for (guint k = 0; k < G_N_ELEMENTS (commands); k++)
    {
      static const guint order[] = { 2, 0, 3, 1 };
      guint i = order[k];
      g_autofree char *value = g_strdup_printf ("\"answer to %s\"", commands[i]);

      peer_reply (fixture->peer, ids[i], value);
    }

  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    {
      g_autoptr(JsonNode) reply = NULL;
      g_autoptr(GError) error = NULL;
      g_autofree char *expected = g_strdup_printf ("answer to %s", commands[i]);

      reply = execute_finish (fixture, captures[i], &error);
      g_assert_no_error (error);
      g_assert_cmpstr (json_node_get_string (reply), ==, expected);
    }
}

/* A non-JSON line: every pending call fails once, closed once. */
static void
test_garbage (Fixture       *fixture,
              gconstpointer  data)
{
  AsyncCapture *captures[3];
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply = NULL;

  for (guint i = 0; i < G_N_ELEMENTS (captures); i++)
    {
      g_autoptr(JsonObject) command = NULL;

      captures[i] = execute_async (fixture, "query-status", NULL, NULL);
      command = peer_expect_command (fixture->peer, "query-status", NULL);
    }

  fake_peer_write (fixture->peer, "this is not JSON at all\n", -1);

  WAIT_UNTIL (fixture->closed_count > 0);
  for (guint i = 0; i < G_N_ELEMENTS (captures); i++)
    WAIT_UNTIL (captures[i]->result != NULL);
  test_spin (20);
  g_assert_cmpuint (fixture->closed_count, ==, 1);
  g_assert_error (fixture->closed_error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_PROTOCOL);

  for (guint i = 0; i < G_N_ELEMENTS (captures); i++)
    {
      g_autoptr(JsonNode) failed = NULL;
      g_autoptr(GError) call_error = NULL;

      failed = execute_finish (fixture, captures[i], &call_error);
      g_assert_null (failed);
      g_assert_error (call_error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_PROTOCOL);
    }

  g_assert_true (qlean_qmp_client_is_closed (fixture->client));
  fake_peer_assert_eof (fixture->peer);

  /* A call after the close fails at once. */
  reply = execute_finish (fixture, execute_async (fixture, "query-status", NULL, NULL), &error);
  g_assert_null (reply);
  g_assert_error (error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_DISCONNECTED);
}

static void
test_not_an_object (Fixture       *fixture,
                    gconstpointer  data)
{
  g_autoptr(JsonObject) command = NULL;
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;
  AsyncCapture *capture;

  capture = execute_async (fixture, "query-status", NULL, NULL);
  command = peer_expect_command (fixture->peer, "query-status", NULL);
  /* Valid JSON, but no QMP message. */
  fake_peer_write (fixture->peer, "[1, 2, 3]\n", -1);

  reply = execute_finish (fixture, capture, &error);
  g_assert_error (error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_PROTOCOL);
  WAIT_UNTIL (fixture->closed_count == 1);
  g_assert_error (fixture->closed_error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_PROTOCOL);
}

/* json-glib parses recursively: a reply nested 100,000 deep, about
 * 200 KB and far below the line cap, would overflow the worker's stack.
 * It is a protocol error like garbage: the call fails, the client closes
 * once. */
static void
test_deep_reply (Fixture       *fixture,
                 gconstpointer  data)
{
  g_autoptr(JsonObject) command = NULL;
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *head = NULL;
  g_autofree char *deep = NULL;
  g_autofree char *at_bound = NULL;
  AsyncCapture *capture;
  gint64 id;

  /* The reply object and 63 arrays in it: 64 levels, the most allowed. */
  capture = execute_async (fixture, "query-deep", NULL, NULL);
  command = peer_expect_command (fixture->peer, "query-deep", &id);
  head = g_strdup_printf ("{\"id\": %" G_GINT64_FORMAT ", \"return\": ", id);
  at_bound = deep_json (head, QLEAN_JSON_MAX_DEPTH - 1, "}\n");
  fake_peer_write (fixture->peer, at_bound, -1);
  reply = execute_finish (fixture, capture, &error);
  g_assert_no_error (error);
  g_assert_true (JSON_NODE_HOLDS_ARRAY (reply));
  g_clear_pointer (&reply, json_node_unref);
  g_clear_pointer (&command, json_object_unref);
  g_clear_pointer (&head, g_free);

  capture = execute_async (fixture, "query-deep", NULL, NULL);
  command = peer_expect_command (fixture->peer, "query-deep", &id);
  head = g_strdup_printf ("{\"id\": %" G_GINT64_FORMAT ", \"return\": ", id);
  deep = deep_json (head, 100000, "}\n");
  /* The client may close before it read all of it. */
  fake_peer_try_write (fixture->peer, deep, strlen (deep));

  reply = execute_finish (fixture, capture, &error);
  g_assert_null (reply);
  g_assert_error (error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_PROTOCOL);
  g_assert_nonnull (strstr (error->message, "64"));

  WAIT_UNTIL (fixture->closed_count > 0);
  test_spin (10);
  g_assert_cmpuint (fixture->closed_count, ==, 1);
  g_assert_error (fixture->closed_error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_PROTOCOL);
  g_assert_true (qlean_qmp_client_is_closed (fixture->client));
}

/* The same, as an event with no call pending. */
static void
test_deep_event (Fixture       *fixture,
                 gconstpointer  data)
{
  g_autofree char *deep = deep_json ("{\"event\": \"STOP\", \"data\": {\"x\": ", 100000, "}}\n");

  fake_peer_try_write (fixture->peer, deep, strlen (deep));
  WAIT_UNTIL (fixture->closed_count > 0);
  g_assert_error (fixture->closed_error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_PROTOCOL);
}

/* A reply one byte longer than the cap is a protocol error even though
 * it is a perfectly good reply to the pending call. */
static void
test_over_long_line (Fixture       *fixture,
                     gconstpointer  data)
{
  g_autoptr(JsonObject) command = NULL;
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GString) line = NULL;
  g_autofree char *head = NULL;
  AsyncCapture *capture;
  gint64 id;
  const char *tail = "\"}\n";
  gsize fill;

  capture = execute_async (fixture, "human-monitor-command", NULL, NULL);
  command = peer_expect_command (fixture->peer, "human-monitor-command", &id);

  head = g_strdup_printf ("{\"id\": %" G_GINT64_FORMAT ", \"return\": \"", id);
  /* The line without its newline is QLEAN_QMP_MAX_MESSAGE + 1 bytes. */
  fill = QLEAN_QMP_MAX_MESSAGE + 1 - strlen (head) - (strlen (tail) - 1);
  line = g_string_sized_new (QLEAN_QMP_MAX_MESSAGE + 2);
  g_string_append (line, head);
  memset (line->str + line->len, 'x', fill);
  g_string_set_size (line, line->len + fill);
  g_string_append (line, tail);
  g_assert_cmpuint (line->len, ==, QLEAN_QMP_MAX_MESSAGE + 2);

  /* The client may close before it read the newline. */
  fake_peer_try_write (fixture->peer, line->str, line->len);

  reply = execute_finish (fixture, capture, &error);
  g_assert_null (reply);
  g_assert_error (error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_PROTOCOL);

  WAIT_UNTIL (fixture->closed_count > 0);
  test_spin (10);
  g_assert_cmpuint (fixture->closed_count, ==, 1);
  g_assert_error (fixture->closed_error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_PROTOCOL);
  g_assert_true (qlean_qmp_client_is_closed (fixture->client));
}

/* Just under the cap is still a reply. */
static void
test_long_line_within_cap (Fixture       *fixture,
                           gconstpointer  data)
{
  g_autoptr(JsonObject) command = NULL;
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GString) line = NULL;
  AsyncCapture *capture;
  gint64 id;

  capture = execute_async (fixture, "human-monitor-command", NULL, NULL);
  command = peer_expect_command (fixture->peer, "human-monitor-command", &id);

  line = g_string_new (NULL);
  g_string_append_printf (line, "{\"id\": %" G_GINT64_FORMAT ", \"return\": \"", id);
  while (line->len < 1024 * 1024)
    g_string_append (line, "0123456789abcdef");
  g_string_append (line, "\"}\n");
  fake_peer_write (fixture->peer, line->str, line->len);

  reply = execute_finish (fixture, capture, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (strlen (json_node_get_string (reply)), >=, 1024 * 1024 - 32);
}

/* The peer closing in the middle of a reply: every pending call fails
 * once with DISCONNECTED, closed once. */
static void
test_peer_closed_mid_reply (Fixture       *fixture,
                            gconstpointer  data)
{
  AsyncCapture *captures[3];
  gint64 ids[G_N_ELEMENTS (captures)];

  for (guint i = 0; i < G_N_ELEMENTS (captures); i++)
    {
      g_autoptr(JsonObject) command = NULL;

      captures[i] = execute_async (fixture, "query-cpus-fast", NULL, NULL);
      command = peer_expect_command (fixture->peer, "query-cpus-fast", &ids[i]);
    }

  fake_peer_writef (fixture->peer, "{\"return\": [{\"cpu-index\": 0}], \"id\": %" G_GINT64_FORMAT, ids[0]);
  fake_peer_close (fixture->peer);

  WAIT_UNTIL (fixture->closed_count > 0);
  for (guint i = 0; i < G_N_ELEMENTS (captures); i++)
    WAIT_UNTIL (captures[i]->result != NULL);
  test_spin (20);
  g_assert_cmpuint (fixture->closed_count, ==, 1);
  g_assert_error (fixture->closed_error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_DISCONNECTED);

  for (guint i = 0; i < G_N_ELEMENTS (captures); i++)
    {
      g_autoptr(JsonNode) reply = NULL;
      g_autoptr(GError) error = NULL;

      reply = execute_finish (fixture, captures[i], &error);
      g_assert_null (reply);
      g_assert_error (error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_DISCONNECTED);
      g_assert_nonnull (strstr (error->message, "query-cpus-fast"));
    }

  g_assert_true (qlean_qmp_client_is_closed (fixture->client));
}

/* close() fails what is pending and emits closed once, however often it
 * is called. */
static void
test_close (Fixture       *fixture,
            gconstpointer  data)
{
  g_autoptr(JsonObject) command = NULL;
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;
  AsyncCapture *capture;

  capture = execute_async (fixture, "query-status", NULL, NULL);
  command = peer_expect_command (fixture->peer, "query-status", NULL);

  qlean_qmp_client_close (fixture->client);
  qlean_qmp_client_close (fixture->client);

  reply = execute_finish (fixture, capture, &error);
  g_assert_null (reply);
  g_assert_error (error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_DISCONNECTED);
  WAIT_UNTIL (fixture->closed_count > 0);
  g_assert_error (fixture->closed_error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_DISCONNECTED);
  fake_peer_assert_eof (fixture->peer);
  /* The teardown closes once more and checks closed came once. */
}

/* A timeout fails the call; a late reply to it is ignored and the next
 * call works. */
static void
test_timeout (Fixture       *fixture,
              gconstpointer  data)
{
  g_autoptr(JsonObject) command = NULL;
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;
  AsyncCapture *capture;
  AsyncCapture *next;
  gint64 slow_id;
  gint64 next_id;

  qlean_qmp_client_set_timeout (fixture->client, 50);
  g_assert_cmpuint (qlean_qmp_client_get_timeout (fixture->client), ==, 50);

  capture = execute_async (fixture, "query-slow", NULL, NULL);
  command = peer_expect_command (fixture->peer, "query-slow", &slow_id);

  WAIT_UNTIL (capture->result != NULL);
  g_assert_cmpuint (capture->count, ==, 1);
  reply = qlean_qmp_client_execute_finish (fixture->client, capture->result, &error);
  g_assert_null (reply);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_assert_nonnull (strstr (error->message, "query-slow"));
  g_clear_error (&error);

  g_object_set (fixture->client, "timeout", 0, NULL);
  g_assert_cmpuint (qlean_qmp_client_get_timeout (fixture->client), ==, 0);

  /* The late reply comes in just before the next call's. */
  next = execute_async (fixture, "query-fast", NULL, NULL);
  g_clear_pointer (&command, json_object_unref);
  command = peer_expect_command (fixture->peer, "query-fast", &next_id);
  g_assert_cmpint (next_id, !=, slow_id);
  peer_reply (fixture->peer, slow_id, "\"late\"");
  peer_reply (fixture->peer, next_id, "\"fresh\"");

  reply = execute_finish (fixture, next, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (json_node_get_string (reply), ==, "fresh");

  /* The late reply completed nothing a second time. */
  g_assert_cmpuint (capture->count, ==, 1);
  async_capture_clear (capture);
  g_free (capture);

  g_assert_false (qlean_qmp_client_is_closed (fixture->client));
  g_assert_cmpuint (fixture->closed_count, ==, 0);
}

static void
test_cancel (Fixture       *fixture,
             gconstpointer  data)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GCancellable) cancelled = g_cancellable_new ();
  g_autoptr(JsonObject) command = NULL;
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;
  AsyncCapture *capture;
  AsyncCapture *next;
  gint64 id;
  gint64 next_id;

  capture = execute_async (fixture, "query-block", NULL, cancellable);
  command = peer_expect_command (fixture->peer, "query-block", &id);

  g_cancellable_cancel (cancellable);
  WAIT_UNTIL (capture->result != NULL);
  g_assert_cmpuint (capture->count, ==, 1);
  reply = qlean_qmp_client_execute_finish (fixture->client, capture->result, &error);
  g_assert_null (reply);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);

  /* A call whose cancellable is already cancelled never goes out. */
  g_cancellable_cancel (cancelled);
  reply = execute_finish (fixture, execute_async (fixture, "query-never", NULL, cancelled), &error);
  g_assert_null (reply);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);

  next = execute_async (fixture, "query-next", NULL, NULL);
  g_clear_pointer (&command, json_object_unref);
  command = peer_expect_command (fixture->peer, "query-next", &next_id);
  peer_reply (fixture->peer, id, "\"late\"");
  peer_reply (fixture->peer, next_id, "\"next\"");
  reply = execute_finish (fixture, next, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (json_node_get_string (reply), ==, "next");

  g_assert_cmpuint (capture->count, ==, 1);
  async_capture_clear (capture);
  g_free (capture);
}

/* Replies the monitor sends to calls it never got are dropped. */
static void
test_unknown_id (Fixture       *fixture,
                 gconstpointer  data)
{
  g_autoptr(JsonObject) command = NULL;
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;
  AsyncCapture *capture;
  gint64 id;

  capture = execute_async (fixture, "query-kvm", NULL, NULL);
  command = peer_expect_command (fixture->peer, "query-kvm", &id);
  fake_peer_writef (fixture->peer,
                    "{\"return\": \"stray\", \"id\": %" G_GINT64_FORMAT "}\n"
                    "{\"return\": \"no id\"}\n"
                    "{\"return\": \"string id\", \"id\": \"%" G_GINT64_FORMAT "\"}\n"
                    "{\"something\": \"else\"}\n",
                    id + 100, id);
  test_spin (20);
  g_assert_null (capture->result);

  peer_reply (fixture->peer, id, "{\"enabled\": true, \"present\": true}");
  reply = execute_finish (fixture, capture, &error);
  g_assert_no_error (error);
  g_assert_true (json_object_get_boolean_member (json_node_get_object (reply), "enabled"));
}

typedef struct
{
  QleanQmpClient *client;
  JsonNode       *reply;
  GError         *error;
} ThreadCall;

static gpointer
blocking_call_thread (gpointer user_data)
{
  ThreadCall *call = user_data;

  call->reply = qlean_qmp_client_execute (call->client, "query-thread", NULL, NULL, &call->error);
  return NULL;
}

/* Reads both commands before it answers either, so both calls must be
 * in flight at once. */
static void
two_callers_script (FakePeer *peer,
                    gpointer  user_data)
{
  g_autoptr(JsonObject) first = fake_peer_read_message (peer);
  g_autoptr(JsonObject) second = fake_peer_read_message (peer);
  JsonObject *messages[] = { second, first };

  for (guint i = 0; i < G_N_ELEMENTS (messages); i++)
    {
      const char *command = json_object_get_string_member (messages[i], "execute");

      g_assert_true (g_str_equal (command, "query-main") || g_str_equal (command, "query-thread"));
      fake_peer_writef (peer, "{\"return\": \"from %s\", \"id\": %" G_GINT64_FORMAT "}\n",
                        command, json_object_get_int_member (messages[i], "id"));
    }
}

/* Blocking calls with no main loop running, from two threads at once. */
static void
test_blocking_two_threads (Fixture       *fixture,
                           gconstpointer  data)
{
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;
  ThreadCall call = { fixture->client, NULL, NULL };
  GThread *peer_thread;
  GThread *caller;

  peer_thread = fake_peer_run_in_thread (fixture->peer, two_callers_script, NULL);
  caller = g_thread_new ("caller", blocking_call_thread, &call);

  reply = qlean_qmp_client_execute (fixture->client, "query-main", NULL, NULL, &error);
  g_thread_join (caller);
  g_thread_join (peer_thread);

  g_assert_no_error (error);
  g_assert_cmpstr (json_node_get_string (reply), ==, "from query-main");
  g_assert_no_error (call.error);
  g_assert_cmpstr (json_node_get_string (call.reply), ==, "from query-thread");
  json_node_unref (call.reply);
}

static void
blocking_error_script (FakePeer *peer,
                       gpointer  user_data)
{
  g_autoptr(JsonObject) command = NULL;
  gint64 id;

  command = peer_expect_command (peer, "cont", &id);
  fake_peer_writef (peer, "{\"event\": \"RESUME\"}\n"
                    "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Resetting the "
                    "Virtual Machine is required\"}, \"id\": %" G_GINT64_FORMAT "}\n", id);
}

static void
test_blocking_error (Fixture       *fixture,
                     gconstpointer  data)
{
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;
  GThread *peer_thread;

  peer_thread = fake_peer_run_in_thread (fixture->peer, blocking_error_script, NULL);
  reply = qlean_qmp_client_execute (fixture->client, "cont", NULL, NULL, &error);
  g_thread_join (peer_thread);

  g_assert_null (reply);
  g_assert_error (error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_GENERIC);
  g_assert_nonnull (strstr (error->message, "Resetting the Virtual Machine is required"));
}

static void
test_blocking_timeout (Fixture       *fixture,
                       gconstpointer  data)
{
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonObject) command = NULL;

  qlean_qmp_client_set_timeout (fixture->client, 30);
  /* Nobody answers; the socket buffer holds the command. */
  reply = qlean_qmp_client_execute (fixture->client, "query-never", NULL, NULL, &error);
  g_assert_null (reply);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  command = peer_expect_command (fixture->peer, "query-never", NULL);
}

typedef struct
{
  QleanQmpClient *client;
  JsonNode       *reply;
  GError         *error;
  gint            done;
} WorkerCall;

static gboolean
blocking_on_worker_cb (gpointer user_data)
{
  WorkerCall *call = user_data;

  call->reply = qlean_qmp_client_execute (call->client, "query-worker", NULL, NULL, &call->error);
  g_atomic_int_set (&call->done, TRUE);
  return G_SOURCE_REMOVE;
}

/* A blocking twin called from a callback on Qlean's worker thread would
 * wait for replies that only that thread reads: it refuses, with a
 * critical, and fails at once instead of hanging. In a subprocess, where
 * the critical may be printed without aborting the test. */
static void
test_blocking_on_worker (Fixture       *fixture,
                         gconstpointer  data)
{
  if (g_test_subprocess ())
    {
      WorkerCall call = { fixture->client, NULL, NULL, FALSE };

      g_log_set_always_fatal (G_LOG_FATAL_MASK);
      qlean_worker_invoke (blocking_on_worker_cb, &call, NULL);
      WAIT_UNTIL (g_atomic_int_get (&call.done));

      g_assert_null (call.reply);
      g_assert_error (call.error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
      g_clear_error (&call.error);
      return;
    }

  g_test_trap_subprocess (NULL, TEST_WAIT_SECONDS * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr ("*CRITICAL*blocking Qlean call*worker thread*");
}

#define ADD_FIXTURE_TEST(path, func) \
  g_test_add (path, Fixture, NULL, fixture_setup, func, fixture_teardown)

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/qmp/handshake", test_handshake);
  g_test_add_func ("/qmp/handshake/not-greeting", test_handshake_not_greeting);
  g_test_add_func ("/qmp/handshake/refused", test_handshake_refused);
  g_test_add_func ("/qmp/handshake/peer-closed", test_handshake_peer_closed);
  g_test_add_func ("/qmp/handshake/blocking", test_handshake_blocking);
  ADD_FIXTURE_TEST ("/qmp/execute/success", test_execute_success);
  ADD_FIXTURE_TEST ("/qmp/execute/error", test_execute_error);
  ADD_FIXTURE_TEST ("/qmp/execute/unknown-id", test_unknown_id);
  ADD_FIXTURE_TEST ("/qmp/event", test_event);
  g_test_add_func ("/qmp/event/context", test_event_context);
  ADD_FIXTURE_TEST ("/qmp/split-line", test_split_line);
  ADD_FIXTURE_TEST ("/qmp/out-of-order", test_out_of_order);
  ADD_FIXTURE_TEST ("/qmp/fault/garbage", test_garbage);
  ADD_FIXTURE_TEST ("/qmp/fault/not-an-object", test_not_an_object);
  ADD_FIXTURE_TEST ("/qmp/fault/over-long-line", test_over_long_line);
  ADD_FIXTURE_TEST ("/qmp/fault/deep-reply", test_deep_reply);
  ADD_FIXTURE_TEST ("/qmp/fault/deep-event", test_deep_event);
  ADD_FIXTURE_TEST ("/qmp/fault/long-line-within-cap", test_long_line_within_cap);
  ADD_FIXTURE_TEST ("/qmp/fault/peer-closed-mid-reply", test_peer_closed_mid_reply);
  ADD_FIXTURE_TEST ("/qmp/close", test_close);
  ADD_FIXTURE_TEST ("/qmp/timeout", test_timeout);
  ADD_FIXTURE_TEST ("/qmp/cancel", test_cancel);
  ADD_FIXTURE_TEST ("/qmp/blocking/two-threads", test_blocking_two_threads);
  ADD_FIXTURE_TEST ("/qmp/blocking/error", test_blocking_error);
  ADD_FIXTURE_TEST ("/qmp/blocking/timeout", test_blocking_timeout);
  ADD_FIXTURE_TEST ("/qmp/blocking/on-worker", test_blocking_on_worker);

  return g_test_run ();
}
