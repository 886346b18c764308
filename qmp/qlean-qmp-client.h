/* qlean-qmp-client.h: a client for the QEMU Machine Protocol
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#if !defined(QLEAN_INSIDE) && !defined(QLEAN_COMPILATION)
# error "Only <qlean/qlean.h> can be included directly."
#endif

#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "qlean-version-macros.h"

G_BEGIN_DECLS

/**
 * QLEAN_QMP_MAX_MESSAGE:
 *
 * The longest message, in bytes, a #QleanQmpClient accepts from QEMU.
 *
 * Since: 0.1
 */
#define QLEAN_QMP_MAX_MESSAGE (16 * 1024 * 1024)

#define QLEAN_TYPE_QMP_CLIENT (qlean_qmp_client_get_type ())

QLEAN_AVAILABLE_IN_0_1
G_DECLARE_FINAL_TYPE (QleanQmpClient, qlean_qmp_client, QLEAN, QMP_CLIENT, GObject)

QLEAN_AVAILABLE_IN_0_1
void            qlean_qmp_client_new_async     (GIOStream           *stream,
                                                GCancellable        *cancellable,
                                                GAsyncReadyCallback  callback,
                                                gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
QleanQmpClient *qlean_qmp_client_new_finish    (GAsyncResult        *result,
                                                GError             **error);
QLEAN_AVAILABLE_IN_0_1
QleanQmpClient *qlean_qmp_client_new           (GIOStream           *stream,
                                                GCancellable        *cancellable,
                                                GError             **error);

QLEAN_AVAILABLE_IN_0_1
JsonObject     *qlean_qmp_client_get_greeting  (QleanQmpClient      *self);
QLEAN_AVAILABLE_IN_0_1
guint           qlean_qmp_client_get_timeout   (QleanQmpClient      *self);
QLEAN_AVAILABLE_IN_0_1
void            qlean_qmp_client_set_timeout   (QleanQmpClient      *self,
                                                guint                timeout_ms);

QLEAN_AVAILABLE_IN_0_1
void            qlean_qmp_client_execute_async (QleanQmpClient      *self,
                                                const char          *command,
                                                JsonObject          *arguments,
                                                GCancellable        *cancellable,
                                                GAsyncReadyCallback  callback,
                                                gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
JsonNode       *qlean_qmp_client_execute_finish (QleanQmpClient     *self,
                                                 GAsyncResult       *result,
                                                 GError            **error);
QLEAN_AVAILABLE_IN_0_1
JsonNode       *qlean_qmp_client_execute       (QleanQmpClient      *self,
                                                const char          *command,
                                                JsonObject          *arguments,
                                                GCancellable        *cancellable,
                                                GError             **error);

QLEAN_AVAILABLE_IN_0_1
void            qlean_qmp_client_close         (QleanQmpClient      *self);
QLEAN_AVAILABLE_IN_0_1
gboolean        qlean_qmp_client_is_closed     (QleanQmpClient      *self);

G_END_DECLS
