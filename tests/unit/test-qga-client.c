/* test-qga-client.c: QleanQgaClient against a scripted fake guest agent
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>

#include "qlean-json-framer-private.h"
#include "qlean-machine-network-private.h"
#include "qlean-qga-client-private.h"
#include "qlean-qga-error.h"

#include "fake-peer.h"

/* The agent's side of a resync: reads the client's 0xFF and
 * guest-sync-delimited, checks them, and returns the sync id. */
static gint64
agent_expect_sync (FakePeer *peer)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;
  JsonObject *message;
  JsonObject *arguments;
  JsonNode *id;
  gsize len;

  line = fake_peer_read_line (peer, &len);
  g_assert_nonnull (line);
  /* The 0xFF that resets the agent's parser comes first, alone. */
  g_assert_cmpuint (len, >, 1);
  g_assert_cmpint ((guchar) line[0], ==, 0xFF);
  g_assert_null (memchr (line + 1, 0xFF, len - 1));

  json_parser_load_from_data (parser, line + 1, len - 1, &error);
  g_assert_no_error (error);
  message = json_node_get_object (json_parser_get_root (parser));
  g_assert_cmpstr (json_object_get_string_member (message, "execute"), ==, "guest-sync-delimited");
  arguments = json_object_get_object_member (message, "arguments");
  g_assert_nonnull (arguments);
  id = json_object_get_member (arguments, "id");
  g_assert_nonnull (id);
  g_assert_cmpint (json_node_get_value_type (id), ==, G_TYPE_INT64);
  g_assert_cmpint (json_node_get_int (id), >, 0);

  return json_node_get_int (id);
}

static void
agent_answer_sync (FakePeer *peer,
                   gint64    sync_id)
{
  fake_peer_writef (peer, "\xff{\"return\": %" G_GINT64_FORMAT "}\n", sync_id);
}

/* Reads one command, which must not be a sync, and returns its id. */
static char *
agent_expect_command (FakePeer    *peer,
                      const char  *command,
                      JsonObject **arguments)
{
  g_autoptr(JsonObject) message = fake_peer_read_message (peer);
  const char *id;

  g_assert_cmpstr (json_object_get_string_member (message, "execute"), ==, command);
  id = json_object_get_string_member (message, "id");
  g_assert_nonnull (id);
  g_assert_true (g_str_has_prefix (id, "qlean-"));

  if (arguments != NULL)
    {
      JsonNode *node = json_object_get_member (message, "arguments");

      *arguments = node ? json_object_ref (json_node_get_object (node)) : NULL;
    }

  return g_strdup (id);
}

static void
agent_reply (FakePeer   *peer,
             const char *id,
             const char *return_json)
{
  if (id != NULL)
    fake_peer_writef (peer, "{\"return\": %s, \"id\": \"%s\"}\n", return_json, id);
  else
    fake_peer_writef (peer, "{\"return\": %s}\n", return_json);
}

/* The usual start: sync, then the command. */
static char *
agent_sync_then_command (FakePeer    *peer,
                         const char  *command,
                         JsonObject **arguments)
{
  agent_answer_sync (peer, agent_expect_sync (peer));
  return agent_expect_command (peer, command, arguments);
}

/* Like agent_sync_then_command(), where the client may or may not sync. */
static char *
agent_maybe_sync_then_command (FakePeer   *peer,
                               const char *command)
{
  g_autoptr(JsonObject) message = NULL;
  g_autofree char *line = NULL;
  const char *id;
  gsize len;

  line = fake_peer_read_line (peer, &len);
  g_assert_nonnull (line);
  if (len > 0 && (guchar) line[0] == 0xFF)
    {
      g_autoptr(JsonObject) sync = NULL;

      sync = qlean_json_parse_object (line + 1, len - 1, NULL);
      g_assert_nonnull (sync);
      agent_answer_sync (peer, json_object_get_int_member (json_object_get_object_member (sync, "arguments"),
                                                           "id"));
      return agent_expect_command (peer, command, NULL);
    }

  message = qlean_json_parse_object (line, len, NULL);
  g_assert_nonnull (message);
  g_assert_cmpstr (json_object_get_string_member (message, "execute"), ==, command);
  id = json_object_get_string_member (message, "id");
  g_assert_nonnull (id);

  return g_strdup (id);
}

typedef struct
{
  FakePeer       *peer;
  QleanQgaClient *client;
  guint           closed_count;
  GError         *closed_error;
} Fixture;

static void
closed_cb (QleanQgaClient *client,
           const GError   *error,
           Fixture        *fixture)
{
  g_assert_nonnull (error);
  fixture->closed_count++;
  g_clear_error (&fixture->closed_error);
  fixture->closed_error = g_error_copy (error);
}

static void
fixture_setup (Fixture       *fixture,
               gconstpointer  data)
{
  g_autoptr(GIOStream) stream = NULL;

  fixture->peer = fake_peer_new (&stream);
  fixture->client = qlean_qga_client_new (stream);
  g_signal_connect (fixture->client, "closed", G_CALLBACK (closed_cb), fixture);
}

static void
fixture_teardown (Fixture       *fixture,
                  gconstpointer  data)
{
  qlean_qga_client_close (fixture->client);
  WAIT_UNTIL (fixture->closed_count > 0);
  test_spin (10);
  g_assert_cmpuint (fixture->closed_count, ==, 1);
  g_assert_true (qlean_qga_client_is_closed (fixture->client));

  g_signal_handlers_disconnect_by_data (fixture->client, fixture);
  assert_finalized (g_steal_pointer (&fixture->client));
  g_clear_error (&fixture->closed_error);
  g_clear_pointer (&fixture->peer, fake_peer_free);
}

static AsyncCapture *
execute_async (Fixture      *fixture,
               const char   *command,
               JsonObject   *arguments,
               GCancellable *cancellable)
{
  AsyncCapture *capture = g_new0 (AsyncCapture, 1);

  qlean_qga_client_execute_async (fixture->client, command, arguments, cancellable,
                                  async_capture_cb, capture);
  return capture;
}

/* Waits for a call started with a capture and hands its result over,
 * once its callback ran exactly once. */
static GAsyncResult *
wait_result (AsyncCapture *capture)
{
  GAsyncResult *result;

  WAIT_UNTIL (capture->result != NULL);
  g_assert_cmpuint (capture->count, ==, 1);
  result = g_steal_pointer (&capture->result);
  g_free (capture);

  return result;
}

static JsonNode *
execute_finish (Fixture       *fixture,
                AsyncCapture  *capture,
                GError       **error)
{
  g_autoptr(GAsyncResult) result = wait_result (capture);

  return qlean_qga_client_execute_finish (fixture->client, result, error);
}

static void
assert_int_reply (Fixture      *fixture,
                  AsyncCapture *capture,
                  gint64        expected)
{
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;

  reply = execute_finish (fixture, capture, &error);
  g_assert_no_error (error);
  g_assert_nonnull (reply);
  g_assert_cmpint (json_node_get_value_type (reply), ==, G_TYPE_INT64);
  g_assert_cmpint (json_node_get_int (reply), ==, expected);
}

/* The first command is preceded by 0xFF and guest-sync-delimited, and
 * held back until the agent echoed the sync id. */
static void
test_first_command_syncs (Fixture       *fixture,
                          gconstpointer  data)
{
  g_auto(AsyncCapture) ping = { 0 };
  g_autoptr(GError) error = NULL;
  g_autofree char *id = NULL;
  g_autofree char *next_id = NULL;
  AsyncCapture *capture;
  gint64 sync_id;

  /* Nothing is written before there is a command. */
  fake_peer_assert_quiet (fixture->peer, 20);

  qlean_qga_client_ping_async (fixture->client, NULL, async_capture_cb, &ping);
  sync_id = agent_expect_sync (fixture->peer);

  /* The command waits for the sync reply. */
  fake_peer_assert_quiet (fixture->peer, 20);
  g_assert_null (ping.result);

  agent_answer_sync (fixture->peer, sync_id);
  id = agent_expect_command (fixture->peer, "guest-ping", NULL);
  test_spin (10);
  g_assert_null (ping.result);
  agent_reply (fixture->peer, id, "{}");

  WAIT_UNTIL (ping.result != NULL);
  g_assert_true (qlean_qga_client_ping_finish (fixture->client, ping.result, &error));
  g_assert_no_error (error);

  /* In step now: the next command goes out without a sync, and with a
   * fresh id. */
  capture = execute_async (fixture, "guest-get-time", NULL, NULL);
  next_id = agent_expect_command (fixture->peer, "guest-get-time", NULL);
  g_assert_cmpstr (next_id, !=, id);
  agent_reply (fixture->peer, next_id, "1700000000000000000");
  assert_int_reply (fixture, capture, G_GINT64_CONSTANT (1700000000000000000));
}

/* Whatever the agent wrote before echoing the sync id is dropped. */
static void
test_stale_lines_before_sync (Fixture       *fixture,
                              gconstpointer  data)
{
  g_autofree char *id = NULL;
  AsyncCapture *capture;
  gint64 sync_id;

  capture = execute_async (fixture, "guest-get-time", NULL, NULL);
  sync_id = agent_expect_sync (fixture->peer);

  fake_peer_write (fixture->peer, "junk that is not json\n", -1);
  /* An old reply, with and without an id, and an old error. */
  fake_peer_write (fixture->peer, "{\"return\": 999}\n", -1);
  fake_peer_write (fixture->peer, "{\"return\": 998, \"id\": \"qlean-0\"}\n", -1);
  fake_peer_write (fixture->peer, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"old\"}}\n", -1);
  /* A sync reply to someone else's sync, and ones of the wrong shape. */
  fake_peer_writef (fixture->peer, "\xff{\"return\": %" G_GINT64_FORMAT "}\n", sync_id + 1);
  fake_peer_writef (fixture->peer, "\xff{\"return\": \"%" G_GINT64_FORMAT "\"}\n", sync_id);
  fake_peer_writef (fixture->peer, "\xff{\"return\": {\"id\": %" G_GINT64_FORMAT "}}\n", sync_id);
  fake_peer_writef (fixture->peer, "\xff{\"error\": %" G_GINT64_FORMAT "}\n", sync_id);
  fake_peer_write (fixture->peer, "\xff{garbled\n", -1);
  /* The right id, but not behind a 0xFF. */
  fake_peer_writef (fixture->peer, "{\"return\": %" G_GINT64_FORMAT "}\n", sync_id);

  /* None of that is taken for the sync: the command is not sent yet. */
  fake_peer_assert_quiet (fixture->peer, 30);
  g_assert_null (capture->result);

  /* Debris before the agent's 0xFF on the same line is fine. */
  fake_peer_writef (fixture->peer, "{\"retu\xff{\"return\": %" G_GINT64_FORMAT "}\n", sync_id);
  id = agent_expect_command (fixture->peer, "guest-get-time", NULL);
  agent_reply (fixture->peer, id, "12345");
  assert_int_reply (fixture, capture, 12345);
}

/* A timeout, then a working resync: the late reply to the timed-out
 * command arrives before the new sync reply and is not taken for the
 * next command's. */
static void
test_timeout_then_resync (Fixture       *fixture,
                          gconstpointer  data)
{
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *slow_id = NULL;
  g_autofree char *next_id = NULL;
  AsyncCapture *capture;
  gint64 first_sync;
  gint64 second_sync;

  qlean_qga_client_set_timeout (fixture->client, 50);
  g_assert_cmpuint (qlean_qga_client_get_timeout (fixture->client), ==, 50);

  capture = execute_async (fixture, "guest-get-time", NULL, NULL);
  first_sync = agent_expect_sync (fixture->peer);
  agent_answer_sync (fixture->peer, first_sync);
  slow_id = agent_expect_command (fixture->peer, "guest-get-time", NULL);
  /* The agent sits on it. */

  reply = execute_finish (fixture, capture, &error);
  g_assert_null (reply);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_assert_nonnull (strstr (error->message, "guest-get-time"));
  g_clear_error (&error);

  g_object_set (fixture->client, "timeout", 5000, NULL);

  capture = execute_async (fixture, "guest-get-time", NULL, NULL);
  second_sync = agent_expect_sync (fixture->peer);
  g_assert_cmpint (second_sync, !=, first_sync);

  /* The late reply, echoed id and all, then an old sync echo. */
  agent_reply (fixture->peer, slow_id, "111");
  agent_reply (fixture->peer, NULL, "111");
  agent_answer_sync (fixture->peer, first_sync);
  fake_peer_assert_quiet (fixture->peer, 20);

  agent_answer_sync (fixture->peer, second_sync);
  next_id = agent_expect_command (fixture->peer, "guest-get-time", NULL);
  g_assert_cmpstr (next_id, !=, slow_id);
  agent_reply (fixture->peer, next_id, "222");
  assert_int_reply (fixture, capture, 222);
}

/* A timeout while the agent does not even answer the sync. */
static void
test_sync_timeout (Fixture       *fixture,
                   gconstpointer  data)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *id = NULL;
  AsyncCapture *capture;
  gint64 first_sync;
  gint64 second_sync;

  qlean_qga_client_set_timeout (fixture->client, 30);
  capture = execute_async (fixture, "guest-info", NULL, NULL);
  first_sync = agent_expect_sync (fixture->peer);
  g_assert_null (execute_finish (fixture, capture, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_assert_nonnull (strstr (error->message, "guest-sync-delimited"));
  g_clear_error (&error);

  /* The explicit sync resyncs with a new id. */
  qlean_qga_client_set_timeout (fixture->client, 0);
  capture = g_new0 (AsyncCapture, 1);
  qlean_qga_client_sync_async (fixture->client, 0, NULL, async_capture_cb, capture);
  second_sync = agent_expect_sync (fixture->peer);
  g_assert_cmpint (second_sync, !=, first_sync);
  /* The echo of the sync that timed out is not this one's. */
  agent_answer_sync (fixture->peer, first_sync);
  test_spin (20);
  g_assert_null (capture->result);
  agent_answer_sync (fixture->peer, second_sync);
  result = wait_result (capture);
  g_assert_true (qlean_qga_client_sync_finish (fixture->client, result, &error));
  g_assert_no_error (error);

  /* And after an explicit sync, the next command needs none. */
  capture = execute_async (fixture, "guest-get-time", NULL, NULL);
  id = agent_expect_command (fixture->peer, "guest-get-time", NULL);
  agent_reply (fixture->peer, id, "5");
  assert_int_reply (fixture, capture, 5);
}

/* A reply that echoes another command's id is not ours. */
static void
test_foreign_id (Fixture       *fixture,
                 gconstpointer  data)
{
  g_autofree char *id = NULL;
  g_autofree char *next_id = NULL;
  AsyncCapture *capture;

  capture = execute_async (fixture, "guest-get-time", NULL, NULL);
  id = agent_sync_then_command (fixture->peer, "guest-get-time", NULL);

  agent_reply (fixture->peer, "qlean-999", "1");
  fake_peer_write (fixture->peer, "{\"return\": 2, \"id\": 7}\n", -1);
  fake_peer_write (fixture->peer, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"x\"}, "
                                  "\"id\": \"someone-else\"}\n", -1);
  test_spin (20);
  g_assert_null (capture->result);

  agent_reply (fixture->peer, id, "3");
  assert_int_reply (fixture, capture, 3);

  /* An agent that does not echo ids is believed. */
  capture = execute_async (fixture, "guest-get-time", NULL, NULL);
  next_id = agent_expect_command (fixture->peer, "guest-get-time", NULL);
  agent_reply (fixture->peer, NULL, "4");
  assert_int_reply (fixture, capture, 4);
}

static void
assert_protocol_error_then_resync (Fixture    *fixture,
                                   const char *bad_reply)
{
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *id = NULL;
  g_autofree char *next_id = NULL;
  AsyncCapture *capture;

  capture = execute_async (fixture, "guest-get-time", NULL, NULL);
  id = agent_expect_command (fixture->peer, "guest-get-time", NULL);
  fake_peer_write (fixture->peer, bad_reply, -1);

  reply = execute_finish (fixture, capture, &error);
  g_assert_null (reply);
  g_assert_error (error, QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_PROTOCOL);
  g_assert_nonnull (strstr (error->message, "guest-get-time"));
  g_assert_false (qlean_qga_client_is_closed (fixture->client));

  /* Still usable, after a resync. */
  capture = execute_async (fixture, "guest-get-time", NULL, NULL);
  next_id = agent_sync_then_command (fixture->peer, "guest-get-time", NULL);
  agent_reply (fixture->peer, next_id, "77");
  assert_int_reply (fixture, capture, 77);
}

static void
test_malformed_reply (Fixture       *fixture,
                      gconstpointer  data)
{
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *id = NULL;
  AsyncCapture *capture;

  /* In step with the agent first; each case leaves it in step again. */
  capture = execute_async (fixture, "guest-ping", NULL, NULL);
  id = agent_sync_then_command (fixture->peer, "guest-ping", NULL);
  agent_reply (fixture->peer, id, "{}");
  reply = execute_finish (fixture, capture, &error);
  g_assert_no_error (error);

  assert_protocol_error_then_resync (fixture, "{\"return\": 1, \"id\n");
  assert_protocol_error_then_resync (fixture, "[\"not\", \"an\", \"object\"]\n");
  assert_protocol_error_then_resync (fixture, "{\"neither\": \"return nor error\"}\n");
  g_assert_cmpuint (fixture->closed_count, ==, 0);
}

/* json-glib parses recursively: a reply nested 100,000 deep, about
 * 200 KB and far below the line cap, would overflow the worker's stack.
 * It fails the call like any other broken reply, and a resync brings the
 * client back in step. Nesting up to the bound still works. */
static void
test_deep_reply (Fixture       *fixture,
                 gconstpointer  data)
{
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *deep = deep_json ("{\"return\": ", 100000, "}\n");
  g_autofree char *deep_object = NULL;
  g_autofree char *at_bound = NULL;
  g_autofree char *over_bound = NULL;
  g_autofree char *in_strings = NULL;
  g_autofree char *id = NULL;
  AsyncCapture *capture;

  capture = execute_async (fixture, "guest-ping", NULL, NULL);
  id = agent_sync_then_command (fixture->peer, "guest-ping", NULL);
  agent_reply (fixture->peer, id, "{}");
  reply = execute_finish (fixture, capture, &error);
  g_assert_no_error (error);
  g_clear_pointer (&reply, json_node_unref);
  g_clear_pointer (&id, g_free);

  assert_protocol_error_then_resync (fixture, deep);

  /* Objects count as much as arrays. */
  {
    GString *str = g_string_new ("{\"return\": ");

    for (guint i = 0; i < 100000; i++)
      g_string_append (str, "{\"a\":");
    g_string_append (str, "1");
    for (guint i = 0; i < 100000; i++)
      g_string_append_c (str, '}');
    g_string_append (str, "}\n");
    deep_object = g_string_free (str, FALSE);
  }
  assert_protocol_error_then_resync (fixture, deep_object);

  /* The reply object and 63 arrays in it: 64 levels, the most allowed. */
  at_bound = deep_json ("{\"return\": ", QLEAN_JSON_MAX_DEPTH - 1, "}\n");
  capture = execute_async (fixture, "guest-get-time", NULL, NULL);
  id = agent_expect_command (fixture->peer, "guest-get-time", NULL);
  fake_peer_write (fixture->peer, at_bound, -1);
  reply = execute_finish (fixture, capture, &error);
  g_assert_no_error (error);
  g_assert_true (JSON_NODE_HOLDS_ARRAY (reply));

  over_bound = deep_json ("{\"return\": ", QLEAN_JSON_MAX_DEPTH, "}\n");
  assert_protocol_error_then_resync (fixture, over_bound);

  /* Brackets in strings, escaped quotes included, are no nesting. */
  g_clear_pointer (&reply, json_node_unref);
  g_clear_pointer (&id, g_free);
  capture = execute_async (fixture, "guest-get-time", NULL, NULL);
  id = agent_expect_command (fixture->peer, "guest-get-time", NULL);
  in_strings = deep_json ("{\"return\": [\"\\\"", 100, "\", \"{{{{\\\\\", \"\\u005b\"]}\n");
  fake_peer_write (fixture->peer, in_strings, -1);
  reply = execute_finish (fixture, capture, &error);
  g_assert_no_error (error);
  g_assert_true (JSON_NODE_HOLDS_ARRAY (reply));
  g_assert_cmpuint (json_array_get_length (json_node_get_array (reply)), ==, 3);
  g_assert_cmpuint (strlen (json_array_get_string_element (json_node_get_array (reply), 0)), ==, 201);

  g_assert_cmpuint (fixture->closed_count, ==, 0);
}

/* A deep line while the client waits for its sync reply is debris like
 * any other: dropped, and the real sync reply still counts. */
static void
test_deep_sync_line (Fixture       *fixture,
                     gconstpointer  data)
{
  g_autofree char *deep = deep_json ("\xff{\"return\": ", 100000, "}\n");
  g_autofree char *id = NULL;
  AsyncCapture *capture;
  gint64 sync_id;

  capture = execute_async (fixture, "guest-get-time", NULL, NULL);
  sync_id = agent_expect_sync (fixture->peer);
  fake_peer_write (fixture->peer, deep, -1);
  fake_peer_assert_quiet (fixture->peer, 30);
  g_assert_null (capture->result);

  agent_answer_sync (fixture->peer, sync_id);
  id = agent_expect_command (fixture->peer, "guest-get-time", NULL);
  agent_reply (fixture->peer, id, "5");
  assert_int_reply (fixture, capture, 5);
  g_assert_cmpuint (fixture->closed_count, ==, 0);
}

/* A reply one byte over the cap fails the call, but unlike QMP the
 * channel stays open: the rest of the line is skipped and a resync
 * brings the client back in step. */
static void
test_over_long_reply (Fixture       *fixture,
                      gconstpointer  data)
{
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GString) line = NULL;
  g_autofree char *id = NULL;
  g_autofree char *next_id = NULL;
  const char *tail = "\"}\n";
  AsyncCapture *capture;
  gsize fill;

  capture = execute_async (fixture, "guest-file-read", NULL, NULL);
  id = agent_sync_then_command (fixture->peer, "guest-file-read", NULL);

  /* A well-formed reply to this very call, QLEAN_QGA_MAX_MESSAGE + 1
   * bytes long without its newline. */
  line = g_string_sized_new (QLEAN_QGA_MAX_MESSAGE + 2);
  g_string_append_printf (line, "{\"id\": \"%s\", \"return\": \"", id);
  fill = QLEAN_QGA_MAX_MESSAGE + 1 - line->len - (strlen (tail) - 1);
  memset (line->str + line->len, 'A', fill);
  g_string_set_size (line, line->len + fill);
  g_string_append (line, tail);
  g_assert_cmpuint (line->len, ==, QLEAN_QGA_MAX_MESSAGE + 2);
  fake_peer_write (fixture->peer, line->str, line->len);

  reply = execute_finish (fixture, capture, &error);
  g_assert_null (reply);
  g_assert_error (error, QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_PROTOCOL);
  g_assert_false (qlean_qga_client_is_closed (fixture->client));

  capture = execute_async (fixture, "guest-get-time", NULL, NULL);
  next_id = agent_sync_then_command (fixture->peer, "guest-get-time", NULL);
  agent_reply (fixture->peer, next_id, "9");
  assert_int_reply (fixture, capture, 9);
  g_assert_cmpuint (fixture->closed_count, ==, 0);
}

static void
assert_error_reply (Fixture    *fixture,
                    const char *error_json,
                    int         code,
                    const char *message_part)
{
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *id = NULL;
  AsyncCapture *capture;

  capture = execute_async (fixture, "guest-exec", NULL, NULL);
  id = agent_expect_command (fixture->peer, "guest-exec", NULL);
  fake_peer_writef (fixture->peer, "{\"error\": %s, \"id\": \"%s\"}\n", error_json, id);

  reply = execute_finish (fixture, capture, &error);
  g_assert_null (reply);
  g_assert_error (error, QLEAN_QGA_ERROR, code);
  g_assert_nonnull (strstr (error->message, message_part));
}

static void
test_error_replies (Fixture       *fixture,
                    gconstpointer  data)
{
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *id = NULL;
  AsyncCapture *capture;

  capture = execute_async (fixture, "guest-ping", NULL, NULL);
  id = agent_sync_then_command (fixture->peer, "guest-ping", NULL);
  agent_reply (fixture->peer, id, "{}");
  reply = execute_finish (fixture, capture, &error);
  g_assert_no_error (error);
  g_assert_nonnull (reply);

  /* Each error goes straight to the agent: an error reply is a proper
   * reply and needs no resync. */
  assert_error_reply (fixture,
                      "{\"class\": \"CommandNotFound\", \"desc\": \"Command guest-exec has been disabled\"}",
                      QLEAN_QGA_ERROR_COMMAND_DISABLED, "has been disabled");
  assert_error_reply (fixture,
                      "{\"class\": \"CommandNotFound\", \"desc\": \"The command guest-exec has not been found\"}",
                      QLEAN_QGA_ERROR_COMMAND_NOT_FOUND, "has not been found");
  assert_error_reply (fixture,
                      "{\"class\": \"GenericError\", \"desc\": \"Guest agent command failed, error was 'No such file'\"}",
                      QLEAN_QGA_ERROR_FAILED, "No such file");
  assert_error_reply (fixture, "{\"desc\": \"no class at all\"}",
                      QLEAN_QGA_ERROR_FAILED, "no class at all");
  /* Not even an object: still an error reply, and no crash. */
  assert_error_reply (fixture, "\"bare string\"", QLEAN_QGA_ERROR_FAILED, "guest-exec");
}

typedef struct
{
  guint  order[8];
  guint  n_done;
} DoneOrder;

typedef struct
{
  DoneOrder    *done;
  guint         index;
  AsyncCapture  capture;
} OrderedCall;

static void
ordered_call_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  OrderedCall *call = user_data;

  call->done->order[call->done->n_done++] = call->index;
  async_capture_cb (source, result, &call->capture);
}

/* One command at a time: the agent never sees the next command before
 * it answered the one in flight. */
static void
test_one_in_flight (Fixture       *fixture,
                    gconstpointer  data)
{
  const char *commands[] = { "guest-get-time", "guest-get-host-name", "guest-get-timezone" };
  OrderedCall calls[G_N_ELEMENTS (commands)] = { 0 };
  DoneOrder done = { { 0 }, 0 };

  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    {
      calls[i].done = &done;
      calls[i].index = i;
      qlean_qga_client_execute_async (fixture->client, commands[i], NULL, NULL,
                                      ordered_call_cb, &calls[i]);
    }

  agent_answer_sync (fixture->peer, agent_expect_sync (fixture->peer));
  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    {
      g_autofree char *id = agent_expect_command (fixture->peer, commands[i], NULL);
      g_autofree char *value = g_strdup_printf ("%u", i + 100);

      fake_peer_assert_quiet (fixture->peer, 30);
      agent_reply (fixture->peer, id, value);
    }

  WAIT_UNTIL (done.n_done == G_N_ELEMENTS (commands));
  test_spin (10);
  g_assert_cmpuint (done.n_done, ==, G_N_ELEMENTS (commands));
  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    {
      g_autoptr(JsonNode) reply = NULL;
      g_autoptr(GError) error = NULL;

      g_assert_cmpuint (done.order[i], ==, i);
      g_assert_cmpuint (calls[i].capture.count, ==, 1);
      reply = qlean_qga_client_execute_finish (fixture->client, calls[i].capture.result, &error);
      g_assert_no_error (error);
      g_assert_cmpint (json_node_get_int (reply), ==, i + 100);
      async_capture_clear (&calls[i].capture);
    }
}

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

/* An error reply whose class and description are no strings is a
 * plain failure, with no warning. */
static void
test_error_wrong_types (Fixture       *fixture,
                        gconstpointer  data)
{
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *id = NULL;
  AsyncCapture *capture;

  capture = execute_async (fixture, "guest-exec", NULL, NULL);
  id = agent_sync_then_command (fixture->peer, "guest-exec", NULL);
  fake_peer_writef (fixture->peer, "{\"error\": {\"class\": {}, \"desc\": [1]}, \"id\": \"%s\"}\n", id);
  reply = execute_finish (fixture, capture, &error);
  g_assert_null (reply);
  g_assert_error (error, QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_FAILED);
  g_assert_false (qlean_qga_client_is_closed (fixture->client));
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

/* The peer closing fails the command in flight and the queued ones once
 * each, with DISCONNECTED, and closed comes once. */
static void
test_peer_closed (Fixture       *fixture,
                  gconstpointer  data)
{
  AsyncCapture *captures[3];
  g_autofree char *id = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply = NULL;

  for (guint i = 0; i < G_N_ELEMENTS (captures); i++)
    captures[i] = execute_async (fixture, "guest-get-time", NULL, NULL);

  id = agent_sync_then_command (fixture->peer, "guest-get-time", NULL);
  fake_peer_writef (fixture->peer, "{\"return\": 1, \"id\": \"%s", id);
  fake_peer_close (fixture->peer);

  WAIT_UNTIL (fixture->closed_count > 0);
  for (guint i = 0; i < G_N_ELEMENTS (captures); i++)
    WAIT_UNTIL (captures[i]->result != NULL);
  test_spin (20);
  g_assert_cmpuint (fixture->closed_count, ==, 1);
  g_assert_error (fixture->closed_error, QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_DISCONNECTED);

  for (guint i = 0; i < G_N_ELEMENTS (captures); i++)
    {
      g_autoptr(JsonNode) failed = NULL;
      g_autoptr(GError) call_error = NULL;

      failed = execute_finish (fixture, captures[i], &call_error);
      g_assert_null (failed);
      g_assert_error (call_error, QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_DISCONNECTED);
    }

  g_assert_true (qlean_qga_client_is_closed (fixture->client));

  reply = execute_finish (fixture, execute_async (fixture, "guest-ping", NULL, NULL), &error);
  g_assert_null (reply);
  g_assert_error (error, QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_DISCONNECTED);
}

/* close() on a client that never sent anything. */
static void
test_close_unused (Fixture       *fixture,
                   gconstpointer  data)
{
  qlean_qga_client_close (fixture->client);
  WAIT_UNTIL (fixture->closed_count > 0);
  g_assert_error (fixture->closed_error, QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_DISCONNECTED);
  fake_peer_assert_eof (fixture->peer);
}

static void
test_cancel (Fixture       *fixture,
             gconstpointer  data)
{
  g_autoptr(GCancellable) in_flight = g_cancellable_new ();
  g_autoptr(GCancellable) queued = g_cancellable_new ();
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *id = NULL;
  g_autofree char *next_id = NULL;
  AsyncCapture *first;
  AsyncCapture *second;
  AsyncCapture *third;
  gint64 first_sync;
  gint64 second_sync;

  first = execute_async (fixture, "guest-get-time", NULL, in_flight);
  second = execute_async (fixture, "guest-get-users", NULL, queued);
  third = execute_async (fixture, "guest-get-time", NULL, NULL);

  first_sync = agent_expect_sync (fixture->peer);
  agent_answer_sync (fixture->peer, first_sync);
  id = agent_expect_command (fixture->peer, "guest-get-time", NULL);

  /* Cancel the queued one, then the one in flight. */
  g_cancellable_cancel (queued);
  reply = execute_finish (fixture, second, &error);
  g_assert_null (reply);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);

  g_cancellable_cancel (in_flight);
  reply = execute_finish (fixture, first, &error);
  g_assert_null (reply);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);

  /* The third resyncs; the cancelled one's late reply is skipped and
   * the queued one never reaches the agent. */
  second_sync = agent_expect_sync (fixture->peer);
  g_assert_cmpint (second_sync, !=, first_sync);
  agent_reply (fixture->peer, id, "1");
  agent_answer_sync (fixture->peer, second_sync);
  next_id = agent_expect_command (fixture->peer, "guest-get-time", NULL);
  agent_reply (fixture->peer, next_id, "3");
  assert_int_reply (fixture, third, 3);
}

/* A reply of @len bytes: {"return": "<@fill x len>", "id": ...}. */
static void
agent_reply_string (FakePeer   *peer,
                    const char *id,
                    char        fill,
                    gsize       len)
{
  g_autoptr(GString) line = g_string_sized_new (len + 64);

  g_string_append (line, "{\"return\": \"");
  g_string_set_size (line, line->len + len);
  memset (line->str + line->len - len, fill, len);
  g_string_append_printf (line, "\", \"id\": \"%s\"}\n", id);
  fake_peer_write (peer, line->str, line->len);
}

static void
assert_protocol_error (Fixture      *fixture,
                       AsyncCapture *capture,
                       const char   *message_part)
{
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;

  reply = execute_finish (fixture, capture, &error);
  g_assert_null (reply);
  g_assert_error (error, QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_PROTOCOL);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, message_part));
  g_assert_false (qlean_qga_client_is_closed (fixture->client));
}

/* The client is in step with the agent again: the next call resyncs. */
static void
assert_recovers (Fixture *fixture)
{
  g_autofree char *id = NULL;
  AsyncCapture *capture;

  capture = execute_async (fixture, "guest-get-time", NULL, NULL);
  id = agent_sync_then_command (fixture->peer, "guest-get-time", NULL);
  agent_reply (fixture->peer, id, "7");
  assert_int_reply (fixture, capture, 7);
}

/* Each command's reply is capped at what its answer can need, far below
 * QLEAN_QGA_MAX_MESSAGE (which json-glib would need 40 times over for a
 * line of small values): over it, the call fails with a protocol error
 * before the line is parsed, and the client resyncs. */
static void
test_reply_caps (Fixture       *fixture,
                 gconstpointer  data)
{
  g_autoptr(JsonObject) arguments = json_object_new ();
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GString) tokens = NULL;
  g_autofree char *id = NULL;
  AsyncCapture *capture;
  gsize chunk_b64 = (256 * 1024 + 2) / 3 * 4;

  /* A command without data: 2 MiB of answer is no answer. */
  capture = execute_async (fixture, "guest-get-osinfo", NULL, NULL);
  id = agent_sync_then_command (fixture->peer, "guest-get-osinfo", NULL);
  agent_reply_string (fixture->peer, id, 'x', 2 * 1024 * 1024);
  assert_protocol_error (fixture, capture, "an answer to this command can need");
  assert_recovers (fixture);
  g_clear_pointer (&id, g_free);

  /* guest-file-read gets the base64 of the chunk it asked for... */
  json_object_set_int_member (arguments, "handle", 1);
  json_object_set_int_member (arguments, "count", 256 * 1024);
  capture = execute_async (fixture, "guest-file-read", arguments, NULL);
  id = agent_expect_command (fixture->peer, "guest-file-read", NULL);
  agent_reply_string (fixture->peer, id, 'A', chunk_b64);
  reply = execute_finish (fixture, capture, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (strlen (json_node_get_string (reply)), ==, chunk_b64);
  g_clear_pointer (&reply, json_node_unref);
  g_clear_pointer (&id, g_free);

  /* ...and not four times that. */
  capture = execute_async (fixture, "guest-file-read", arguments, NULL);
  id = agent_expect_command (fixture->peer, "guest-file-read", NULL);
  agent_reply_string (fixture->peer, id, 'A', 4 * chunk_b64);
  assert_protocol_error (fixture, capture, "guest-file-read");
  assert_recovers (fixture);
  g_clear_pointer (&id, g_free);

  /* guest-exec-status may carry the agent's captured output, but as
   * strings: 2 MiB of small values is refused unparsed. */
  capture = execute_async (fixture, "guest-exec-status", NULL, NULL);
  id = agent_expect_command (fixture->peer, "guest-exec-status", NULL);
  tokens = g_string_new ("{\"return\": {\"out-data\": [");
  while (tokens->len < 2 * 1024 * 1024)
    g_string_append (tokens, "0,");
  g_string_append_printf (tokens, "0]}, \"id\": \"%s\"}\n", id);
  fake_peer_write (fixture->peer, tokens->str, tokens->len);
  assert_protocol_error (fixture, capture, "many small values");
  assert_recovers (fixture);
  g_clear_pointer (&id, g_free);

  capture = execute_async (fixture, "guest-exec-status", NULL, NULL);
  id = agent_expect_command (fixture->peer, "guest-exec-status", NULL);
  agent_reply_string (fixture->peer, id, 'A', 4 * 1024 * 1024);
  reply = execute_finish (fixture, capture, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (strlen (json_node_get_string (reply)), ==, 4 * 1024 * 1024);
}

/* A sync echo longer than any echo (here padded with 1 MiB of blanks)
 * is not parsed, so it cannot cost what parsing would: the sync waits on
 * for the real one. */
static void
test_long_sync_line (Fixture       *fixture,
                     gconstpointer  data)
{
  g_autoptr(GString) line = NULL;
  g_autofree char *id = NULL;
  AsyncCapture *capture;
  gint64 sync_id;

  capture = execute_async (fixture, "guest-get-time", NULL, NULL);
  sync_id = agent_expect_sync (fixture->peer);
  line = g_string_new (NULL);
  g_string_printf (line, "\xff{\"return\": %" G_GINT64_FORMAT, sync_id);
  while (line->len < 1024 * 1024)
    g_string_append_c (line, ' ');
  g_string_append (line, "}\n");
  fake_peer_write (fixture->peer, line->str, line->len);
  fake_peer_assert_quiet (fixture->peer, 200);
  agent_answer_sync (fixture->peer, sync_id);
  id = agent_expect_command (fixture->peer, "guest-get-time", NULL);
  agent_reply (fixture->peer, id, "5");
  assert_int_reply (fixture, capture, 5);
}

#define ADD_FIXTURE_TEST(path, func) \
  g_test_add (path, Fixture, NULL, fixture_setup, func, fixture_teardown)

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  ADD_FIXTURE_TEST ("/qga/sync/first-command", test_first_command_syncs);
  ADD_FIXTURE_TEST ("/qga/sync/stale-lines", test_stale_lines_before_sync);
  ADD_FIXTURE_TEST ("/qga/sync/timeout-then-resync", test_timeout_then_resync);
  ADD_FIXTURE_TEST ("/qga/sync/sync-timeout", test_sync_timeout);
  ADD_FIXTURE_TEST ("/qga/reply/foreign-id", test_foreign_id);
  ADD_FIXTURE_TEST ("/qga/reply/malformed", test_malformed_reply);
  ADD_FIXTURE_TEST ("/qga/reply/errors", test_error_replies);
  ADD_FIXTURE_TEST ("/qga/reply/over-long", test_over_long_reply);
  ADD_FIXTURE_TEST ("/qga/reply/caps", test_reply_caps);
  ADD_FIXTURE_TEST ("/qga/sync/long-line", test_long_sync_line);
  ADD_FIXTURE_TEST ("/qga/reply/deep", test_deep_reply);
  ADD_FIXTURE_TEST ("/qga/sync/deep-line", test_deep_sync_line);
  ADD_FIXTURE_TEST ("/qga/one-in-flight", test_one_in_flight);
  ADD_FIXTURE_TEST ("/qga/cancel", test_cancel);
  ADD_FIXTURE_TEST ("/qga/exec/wait", test_exec_wait);
  ADD_FIXTURE_TEST ("/qga/exec/status-signal", test_exec_status_signal);
  ADD_FIXTURE_TEST ("/qga/file/read", test_file_read);
  ADD_FIXTURE_TEST ("/qga/file/write-blocking", test_file_write_blocking);
  ADD_FIXTURE_TEST ("/qga/typed-calls", test_typed_calls);
  ADD_FIXTURE_TEST ("/qga/typed-calls/wrong-types", test_typed_wrong_types);
  ADD_FIXTURE_TEST ("/qga/file/write-count-async", test_file_write_count_async);
  ADD_FIXTURE_TEST ("/qga/reply/error-wrong-types", test_error_wrong_types);
  g_test_add_func ("/qga/network/match-wrong-types", test_network_match_wrong_types);
  ADD_FIXTURE_TEST ("/qga/shutdown/notify", test_shutdown_notify);
  ADD_FIXTURE_TEST ("/qga/shutdown/channel-closes", test_shutdown_channel_closes);
  ADD_FIXTURE_TEST ("/qga/peer-closed", test_peer_closed);
  ADD_FIXTURE_TEST ("/qga/close-unused", test_close_unused);

  return g_test_run ();
}
