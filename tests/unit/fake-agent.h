/* fake-agent.h: a scripted QEMU guest agent for the QleanQgaClient tests
 *
 * The agent's side of the protocol (syncs, commands, replies) on a
 * FakePeer, and the fixture test-qga-client.c and test-qga-commands.c share.
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include "qlean-qga-client.h"

#include "fake-peer.h"

G_BEGIN_DECLS

typedef struct
{
  FakePeer       *peer;
  QleanQgaClient *client;
  guint           closed_count;
  GError         *closed_error;
} Fixture;

/* The agent's side: a sync, a command, a reply. */
gint64        agent_expect_sync             (FakePeer      *peer);
void          agent_answer_sync             (FakePeer      *peer,
                                             gint64         sync_id);
char         *agent_expect_command          (FakePeer      *peer,
                                             const char    *command,
                                             JsonObject   **arguments);
void          agent_reply                   (FakePeer      *peer,
                                             const char    *id,
                                             const char    *return_json);
char         *agent_sync_then_command       (FakePeer      *peer,
                                             const char    *command,
                                             JsonObject   **arguments);
char         *agent_maybe_sync_then_command (FakePeer      *peer,
                                             const char    *command);

/* A client on a fake agent, closed and finalized at the end. */
void          fixture_setup                 (Fixture       *fixture,
                                             gconstpointer  data);
void          fixture_teardown              (Fixture       *fixture,
                                             gconstpointer  data);

/* The client's side: a command and its result. */
AsyncCapture *execute_async                 (Fixture       *fixture,
                                             const char    *command,
                                             JsonObject    *arguments,
                                             GCancellable  *cancellable);
GAsyncResult *wait_result                   (AsyncCapture  *capture);
JsonNode     *execute_finish                (Fixture       *fixture,
                                             AsyncCapture  *capture,
                                             GError       **error);
void          assert_int_reply              (Fixture       *fixture,
                                             AsyncCapture  *capture,
                                             gint64         expected);

G_END_DECLS
