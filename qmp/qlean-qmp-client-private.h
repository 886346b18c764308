/* qlean-qmp-client-private.h: what the rest of Qlean may use of the QMP client
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-qmp-client-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include "qlean-json-channel-private.h"
#include "qlean-qmp-client.h"

G_BEGIN_DECLS

/* Called on the worker thread; must only be set before the first call. */
void qlean_qmp_client_set_trace (QleanQmpClient            *self,
                                 QleanJsonChannelTraceFunc  trace_func,
                                 gpointer                   user_data,
                                 GDestroyNotify             destroy);

G_END_DECLS
