/* fuzz-qga-client.c: libFuzzer target for the guest agent client
 *
 * SPDX-License-Identifier: MIT
 *
 * The first input byte picks two typed calls; the rest is what the agent
 * writes, in "@NEXT@"-separated segments (see fuzz-peer.h), "@ID@" standing
 * for the id of the client's last line: the guest-sync-delimited id while
 * it syncs, the command's id after. So the fuzzer reaches the sync-line
 * logic (debris, 0xFF markers, stale ids), the reply checks (foreign
 * ids, "error" of any shape, neither "return" nor "error") and the typed
 * calls' reply parsing (exec-status, base64 file data, handles, pids).
 * Whatever it holds, the client must not crash, hit a critical, leak or
 * hang, and each call ends with a result or an error.
 */

#include "config.h"

#include <stdint.h>

#include "fuzz-peer.h"
#include "qlean-qga-client.h"
#include "qlean-qga-error.h"

/* A call may time out while the peer waits for the client (3 ms per
 * segment): that exercises the resync after a timeout, and keeps inputs
 * the client never gets an answer to from costing much. */
#define CALL_TIMEOUT_MS 50
#define N_CALLS 11

int LLVMFuzzerInitialize   (int            *argc,
                            char         ***argv);
int LLVMFuzzerTestOneInput (const uint8_t  *data,
                            size_t          size);

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  fuzz_init_glib ();
  return 0;
}

static void
check_error (GError *error)
{
  g_assert_nonnull (error);
  g_assert_true (error->domain == QLEAN_QGA_ERROR || error->domain == G_IO_ERROR);
  g_assert_nonnull (error->message);
}

static void
call (QleanQgaClient *client,
      guint           which)
{
  g_autoptr(GError) error = NULL;

  switch (which % N_CALLS)
    {
    case 0:
      if (!qlean_qga_client_ping (client, NULL, &error))
        check_error (error);
      break;
    case 1:
      {
        g_autoptr(JsonObject) info = qlean_qga_client_info (client, NULL, &error);

        if (info == NULL)
          check_error (error);
      }
      break;
    case 2:
      {
        g_autoptr(JsonObject) info = qlean_qga_client_get_osinfo (client, NULL, &error);

        if (info == NULL)
          check_error (error);
      }
      break;
    case 3:
      {
        g_autoptr(JsonArray) interfaces = qlean_qga_client_network_get_interfaces (client, NULL, &error);

        if (interfaces == NULL)
          check_error (error);
      }
      break;
    case 4:
      if (!qlean_qga_client_set_time (client, 1700000000000000000, NULL, &error))
        check_error (error);
      break;
    case 5:
      {
        const char * const args[] = { "-c", "true", NULL };
        g_autoptr(GBytes) input = g_bytes_new_static ("in", 2);

        if (qlean_qga_client_exec (client, "/bin/sh", args, NULL, input, TRUE, NULL, &error) < 0)
          check_error (error);
      }
      break;
    case 6:
      {
        g_autoptr(QleanQgaExecStatus) status = qlean_qga_client_exec_status (client, 42, NULL, &error);

        if (status == NULL)
          check_error (error);
        else if (status->exited)
          g_assert_true (status->signal > 0 || status->exit_code >= 0 || status->exit_code == -1);
      }
      break;
    case 7:
      if (qlean_qga_client_file_open (client, "/etc/hostname", "r", NULL, &error) < 0)
        check_error (error);
      break;
    case 8:
      {
        gboolean eof = FALSE;
        g_autoptr(GBytes) bytes = qlean_qga_client_file_read (client, 7, 4096, &eof, NULL, &error);

        if (bytes == NULL)
          check_error (error);
      }
      break;
    case 9:
      {
        g_autoptr(GBytes) bytes = g_bytes_new_static ("hello", 5);
        gssize written = qlean_qga_client_file_write (client, 7, bytes, NULL, &error);

        if (written < 0)
          check_error (error);
      }
      break;
    case 10:
      if (!qlean_qga_client_file_close (client, 7, NULL, &error))
        check_error (error);
      break;
    default:
      g_assert_not_reached ();
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autoptr(GIOStream) stream = NULL;
  g_autoptr(QleanQgaClient) client = NULL;
  FuzzPeer *peer;
  guint selector;

  if (size < 1)
    return 0;

  selector = data[0];
  peer = fuzz_peer_start (data + 1, size - 1, TRUE, &stream);

  client = qlean_qga_client_new (stream);
  qlean_qga_client_set_timeout (client, CALL_TIMEOUT_MS);
  call (client, selector % 16);
  call (client, selector / 16);
  qlean_qga_client_close (client);

  fuzz_peer_finish (peer);
  while (g_main_context_iteration (NULL, FALSE))
    ;

  return 0;
}
