/* qlean-qga-client-private.h: what the rest of Qlean may use of the agent client
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-qga-client-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include "qlean-json-channel-private.h"
#include "qlean-qga-client.h"

G_BEGIN_DECLS

void qlean_qga_client_set_trace (QleanQgaClient            *self,
                                 QleanJsonChannelTraceFunc  trace_func,
                                 gpointer                   user_data,
                                 GDestroyNotify             destroy);

/* The typed calls' way in: qlean_qga_client_execute_async(), but the
 * task carries @source_tag, the typed call's own _async, which its
 * _finish checks before it calls qlean_qga_client_command_finish(). */
void      qlean_qga_client_command_async          (QleanQgaClient      *self,
                                                   gpointer             source_tag,
                                                   const char          *command,
                                                   JsonObject          *arguments,
                                                   GCancellable        *cancellable,
                                                   GAsyncReadyCallback  callback,
                                                   gpointer             user_data);
/* For commands that never answer (guest-shutdown): the call completes on
 * qlean_qga_client_notify_shutdown(), or when the channel closes. */
void      qlean_qga_client_command_no_reply_async (QleanQgaClient      *self,
                                                   gpointer             source_tag,
                                                   const char          *command,
                                                   JsonObject          *arguments,
                                                   GCancellable        *cancellable,
                                                   GAsyncReadyCallback  callback,
                                                   gpointer             user_data);
/* The `return` member of the reply (the caller checked the task). */
JsonNode *qlean_qga_client_command_finish         (QleanQgaClient      *self,
                                                   GAsyncResult        *result,
                                                   GError             **error);

/* @command as it is, for the agent proxy: completes with the agent's
 * whole reply object (`return` or `error`, the id taken out); fails only
 * when no reply came (closed, timed out, a garbled line). */
void        qlean_qga_client_execute_raw_async  (QleanQgaClient      *self,
                                                 const char          *command,
                                                 JsonObject          *arguments,
                                                 GAsyncReadyCallback  callback,
                                                 gpointer             user_data);
JsonObject *qlean_qga_client_execute_raw_finish (QleanQgaClient      *self,
                                                 GAsyncResult        *result,
                                                 GError             **error);

/* The guest was reset (QMP RESET): the call in flight fails now (a
 * pending guest-shutdown succeeds), and the next one resyncs first. */
void qlean_qga_client_notify_reset (QleanQgaClient *self);

G_END_DECLS
