/* fuzz-qmp-client.c: libFuzzer target for the QMP client's line handling
 *
 * SPDX-License-Identifier: MIT
 *
 * The input is what QEMU's monitor writes, in "@NEXT@"-separated segments
 * (see fuzz-peer.h): a greeting, the answer to qmp_capabilities, then
 * replies and events while three commands are in flight. Whatever it
 * holds, the client must not crash, hit a critical, leak or hang, and
 * each call must end exactly once with a result or an error.
 */

#include "config.h"

#include <stdint.h>

#include "fuzz-peer.h"
#include "qlean-qmp-client.h"
#include "qlean-qmp-error.h"

#define COMMANDS 3

int LLVMFuzzerInitialize   (int            *argc,
                            char         ***argv);
int LLVMFuzzerTestOneInput (const uint8_t  *data,
                            size_t          size);

typedef struct
{
  guint done;
} Calls;

static void
execute_cb (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  Calls *calls = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(JsonNode) reply = qlean_qmp_client_execute_finish (QLEAN_QMP_CLIENT (source), result, &error);

  g_assert_true ((reply == NULL) != (error == NULL));
  calls->done++;
}

static void
event_cb (QleanQmpClient *client,
          const char     *name,
          JsonObject     *data,
          gpointer        user_data)
{
  g_assert_nonnull (name);
  g_assert_nonnull (data);
}

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  fuzz_init_glib ();
  return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autoptr(GIOStream) stream = NULL;
  g_autoptr(QleanQmpClient) client = NULL;
  g_autoptr(GError) error = NULL;
  Calls calls = { 0 };
  FuzzPeer *peer;

  peer = fuzz_peer_start (data, size, FALSE, &stream);

  client = qlean_qmp_client_new (stream, NULL, &error);
  g_assert_true ((client == NULL) != (error == NULL));

  if (client != NULL)
    {
      const char *commands[COMMANDS] = { "query-status", "stop", "query-version" };

      g_signal_connect (client, "event", G_CALLBACK (event_cb), NULL);
      /* The peer ends with EOF, which fails whatever is still pending:
       * no call can outlive this loop. */
      for (guint i = 0; i < COMMANDS; i++)
        qlean_qmp_client_execute_async (client, commands[i], NULL, NULL, execute_cb, &calls);
      while (calls.done < COMMANDS)
        g_main_context_iteration (NULL, TRUE);

      qlean_qmp_client_close (client);
    }
  else
    {
      g_assert_true (error->domain == QLEAN_QMP_ERROR || error->domain == G_IO_ERROR);
      /* A failed handshake leaves the stream to us. */
      g_io_stream_close (stream, NULL, NULL);
    }

  fuzz_peer_finish (peer);
  /* Deliver what the client queued for this context (events). */
  while (g_main_context_iteration (NULL, FALSE))
    ;
  if (client != NULL)
    g_signal_handlers_disconnect_by_func (client, event_cb, NULL);

  return 0;
}
