/* test-qga-client.c: QleanQgaClient's protocol against a scripted fake guest agent
 *
 * Syncs, replies, queueing, cancellation and closing; the typed calls are
 * tested in test-qga-commands.c.
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>

#include "qlean-json-framer-private.h"
#include "qlean-qga-client-private.h"
#include "qlean-qga-error.h"

#include "fake-agent.h"

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
  ADD_FIXTURE_TEST ("/qga/reply/error-wrong-types", test_error_wrong_types);
  ADD_FIXTURE_TEST ("/qga/peer-closed", test_peer_closed);
  ADD_FIXTURE_TEST ("/qga/close-unused", test_close_unused);

  return g_test_run ();
}
