/* qlean-qga-proxy-private.h: one guest agent, served to other processes
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-qga-proxy-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include "qlean-qga-client.h"

G_BEGIN_DECLS

/* A machine whose guest has only the stock QEMU guest agent is shared
 * (qlean_machine_share()) through this: a unix socket where each client
 * speaks the agent's own protocol, as if it had the agent's port to
 * itself. The guest has one agent port, which the machine's own
 * QleanQgaClient holds, so the proxy answers guest-sync and
 * guest-sync-delimited itself (they only align one client's stream) and
 * passes every other command to that client, one at a time per client,
 * sending the agent's reply back unchanged. Worker thread only. */
typedef struct _QleanQgaProxy QleanQgaProxy;

/* Listens on @socket_path (mode 0600: it gives root in the guest). */
QleanQgaProxy *qlean_qga_proxy_new   (QleanQgaClient  *qga,
                                      const char      *socket_path,
                                      GError         **error);
/* Closes every client and the socket, and removes it. */
void           qlean_qga_proxy_free  (QleanQgaProxy   *self);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (QleanQgaProxy, qlean_qga_proxy_free)

G_END_DECLS
