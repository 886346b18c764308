/* fuzz-peer.h: a scripted peer for fuzzing the protocol clients
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <stdint.h>
#include <gio/gio.h>

G_BEGIN_DECLS

/* The far end of a socketpair, on its own thread, that plays a fuzz
 * input to a client as if QEMU or the agent wrote it. The input is cut
 * at each "@NEXT@" into segments; the peer writes the next segment after the
 * client wrote a line (a command), or after a short wait if it writes
 * none, so that replies can meet the commands they answer. In each
 * segment "@ID@" becomes the raw "id" of the client's last line (a
 * number for QMP and guest-sync-delimited, a string for agent commands),
 * which the fuzzer could not guess. After the last segment the peer
 * shuts its side down, so the client sees EOF and nothing can hang. */
typedef struct _FuzzPeer FuzzPeer;

FuzzPeer *fuzz_peer_start  (const uint8_t  *data,
                            size_t          size,
                            gboolean        client_speaks_first,
                            GIOStream     **client_stream);
/* Waits for the peer to finish, after the client was closed. */
void      fuzz_peer_finish (FuzzPeer       *peer);

/* Makes GLib criticals fatal: a g_return_if_fail() that a peer's bytes
 * can reach is a bug. Call from LLVMFuzzerInitialize. */
void      fuzz_init_glib   (void);

G_END_DECLS
