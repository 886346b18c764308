/* fake-agent.c: a scripted QEMU guest agent for the QleanQgaClient tests
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>

#include "qlean-json-framer-private.h"

#include "fake-agent.h"

/* The agent's side of a resync: reads the client's 0xFF and
 * guest-sync-delimited, checks them, and returns the sync id. */
gint64
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

void
agent_answer_sync (FakePeer *peer,
                   gint64    sync_id)
{
  fake_peer_writef (peer, "\xff{\"return\": %" G_GINT64_FORMAT "}\n", sync_id);
}

/* Reads one command, which must not be a sync, and returns its id. */
char *
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

void
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
char *
agent_sync_then_command (FakePeer    *peer,
                         const char  *command,
                         JsonObject **arguments)
{
  agent_answer_sync (peer, agent_expect_sync (peer));
  return agent_expect_command (peer, command, arguments);
}

/* Like agent_sync_then_command(), where the client may or may not sync. */
char *
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

void
fixture_setup (Fixture       *fixture,
               gconstpointer  data)
{
  g_autoptr(GIOStream) stream = NULL;

  fixture->peer = fake_peer_new (&stream);
  fixture->client = qlean_qga_client_new (stream);
  g_signal_connect (fixture->client, "closed", G_CALLBACK (closed_cb), fixture);
}

void
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

AsyncCapture *
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
GAsyncResult *
wait_result (AsyncCapture *capture)
{
  GAsyncResult *result;

  WAIT_UNTIL (capture->result != NULL);
  g_assert_cmpuint (capture->count, ==, 1);
  result = g_steal_pointer (&capture->result);
  g_free (capture);

  return result;
}

JsonNode *
execute_finish (Fixture       *fixture,
                AsyncCapture  *capture,
                GError       **error)
{
  g_autoptr(GAsyncResult) result = wait_result (capture);

  return qlean_qga_client_execute_finish (fixture->client, result, error);
}

void
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
