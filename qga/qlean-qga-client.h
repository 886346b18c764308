/* qlean-qga-client.h: a client for the QEMU guest agent
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
 * QLEAN_QGA_MAX_MESSAGE:
 *
 * The longest reply, in bytes, a #QleanQgaClient accepts from the agent.
 * The agent's own cap on captured output (16 MiB per stream, base64
 * encoded) fits. Only `guest-exec-status` may get that much: a
 * `guest-file-read` reply may be as long as the base64 of the count it
 * asked for plus 4 KiB, any other reply 1 MiB, and a reply over 1 MiB
 * must carry its bulk in strings. A longer one fails its call with
 * %QLEAN_QGA_ERROR_PROTOCOL, and the client resyncs with the agent.
 *
 * Since: 0.1
 */
#define QLEAN_QGA_MAX_MESSAGE (48 * 1024 * 1024)

/**
 * QleanQgaExecStatus:
 * @exited: whether the process has ended
 * @exit_code: the exit status if it exited normally, else -1
 * @signal: the signal that ended it, else 0
 * @out_data: (nullable): captured standard output
 * @err_data: (nullable): captured standard error
 * @out_truncated: whether the agent dropped standard output past its cap
 * @err_truncated: whether the agent dropped standard error past its cap
 *
 * The reply to `guest-exec-status`.
 *
 * Since: 0.1
 */
typedef struct
{
  gboolean  exited;
  gint      exit_code;
  gint      signal;
  GBytes   *out_data;
  GBytes   *err_data;
  gboolean  out_truncated;
  gboolean  err_truncated;
} QleanQgaExecStatus;

#define QLEAN_TYPE_QGA_EXEC_STATUS (qlean_qga_exec_status_get_type ())

QLEAN_AVAILABLE_IN_0_1
GType               qlean_qga_exec_status_get_type (void) G_GNUC_CONST;
QLEAN_AVAILABLE_IN_0_1
QleanQgaExecStatus *qlean_qga_exec_status_copy     (const QleanQgaExecStatus *status);
QLEAN_AVAILABLE_IN_0_1
void                qlean_qga_exec_status_free     (QleanQgaExecStatus       *status);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (QleanQgaExecStatus, qlean_qga_exec_status_free)

#define QLEAN_TYPE_QGA_CLIENT (qlean_qga_client_get_type ())

QLEAN_AVAILABLE_IN_0_1
G_DECLARE_FINAL_TYPE (QleanQgaClient, qlean_qga_client, QLEAN, QGA_CLIENT, GObject)

QLEAN_AVAILABLE_IN_0_1
QleanQgaClient *qlean_qga_client_new             (GIOStream           *stream);

QLEAN_AVAILABLE_IN_0_1
guint           qlean_qga_client_get_timeout     (QleanQgaClient      *self);
QLEAN_AVAILABLE_IN_0_1
void            qlean_qga_client_set_timeout     (QleanQgaClient      *self,
                                                  guint                timeout_ms);
QLEAN_AVAILABLE_IN_0_1
void            qlean_qga_client_close           (QleanQgaClient      *self);
QLEAN_AVAILABLE_IN_0_1
gboolean        qlean_qga_client_is_closed       (QleanQgaClient      *self);
QLEAN_AVAILABLE_IN_0_1
void            qlean_qga_client_notify_shutdown (QleanQgaClient      *self);

QLEAN_AVAILABLE_IN_0_1
void            qlean_qga_client_sync_async      (QleanQgaClient      *self,
                                                  guint                timeout_ms,
                                                  GCancellable        *cancellable,
                                                  GAsyncReadyCallback  callback,
                                                  gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean        qlean_qga_client_sync_finish     (QleanQgaClient      *self,
                                                  GAsyncResult        *result,
                                                  GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean        qlean_qga_client_sync            (QleanQgaClient      *self,
                                                  guint                timeout_ms,
                                                  GCancellable        *cancellable,
                                                  GError             **error);

QLEAN_AVAILABLE_IN_0_1
void            qlean_qga_client_execute_async   (QleanQgaClient      *self,
                                                  const char          *command,
                                                  JsonObject          *arguments,
                                                  GCancellable        *cancellable,
                                                  GAsyncReadyCallback  callback,
                                                  gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
JsonNode       *qlean_qga_client_execute_finish  (QleanQgaClient      *self,
                                                  GAsyncResult        *result,
                                                  GError             **error);
QLEAN_AVAILABLE_IN_0_1
JsonNode       *qlean_qga_client_execute         (QleanQgaClient      *self,
                                                  const char          *command,
                                                  JsonObject          *arguments,
                                                  GCancellable        *cancellable,
                                                  GError             **error);

/* Typed calls. Each _async is finished by its own _finish. */

QLEAN_AVAILABLE_IN_0_1
void            qlean_qga_client_ping_async      (QleanQgaClient      *self,
                                                  GCancellable        *cancellable,
                                                  GAsyncReadyCallback  callback,
                                                  gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean        qlean_qga_client_ping_finish     (QleanQgaClient      *self,
                                                  GAsyncResult        *result,
                                                  GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean        qlean_qga_client_ping            (QleanQgaClient      *self,
                                                  GCancellable        *cancellable,
                                                  GError             **error);

QLEAN_AVAILABLE_IN_0_1
JsonObject     *qlean_qga_client_info            (QleanQgaClient      *self,
                                                  GCancellable        *cancellable,
                                                  GError             **error);
QLEAN_AVAILABLE_IN_0_1
JsonObject     *qlean_qga_client_get_osinfo      (QleanQgaClient      *self,
                                                  GCancellable        *cancellable,
                                                  GError             **error);
QLEAN_AVAILABLE_IN_0_1
JsonArray      *qlean_qga_client_network_get_interfaces (QleanQgaClient *self,
                                                  GCancellable        *cancellable,
                                                  GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean        qlean_qga_client_set_time        (QleanQgaClient      *self,
                                                  gint64               time_ns,
                                                  GCancellable        *cancellable,
                                                  GError             **error);

QLEAN_AVAILABLE_IN_0_1
void            qlean_qga_client_exec_async      (QleanQgaClient      *self,
                                                  const char          *path,
                                                  const char * const  *args,
                                                  const char * const  *env,
                                                  GBytes              *input,
                                                  gboolean             capture_output,
                                                  GCancellable        *cancellable,
                                                  GAsyncReadyCallback  callback,
                                                  gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gint64          qlean_qga_client_exec_finish     (QleanQgaClient      *self,
                                                  GAsyncResult        *result,
                                                  GError             **error);
QLEAN_AVAILABLE_IN_0_1
gint64          qlean_qga_client_exec            (QleanQgaClient      *self,
                                                  const char          *path,
                                                  const char * const  *args,
                                                  const char * const  *env,
                                                  GBytes              *input,
                                                  gboolean             capture_output,
                                                  GCancellable        *cancellable,
                                                  GError             **error);

QLEAN_AVAILABLE_IN_0_1
void            qlean_qga_client_exec_status_async (QleanQgaClient    *self,
                                                  gint64               pid,
                                                  GCancellable        *cancellable,
                                                  GAsyncReadyCallback  callback,
                                                  gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
QleanQgaExecStatus *qlean_qga_client_exec_status_finish (QleanQgaClient *self,
                                                  GAsyncResult        *result,
                                                  GError             **error);
QLEAN_AVAILABLE_IN_0_1
QleanQgaExecStatus *qlean_qga_client_exec_status (QleanQgaClient      *self,
                                                  gint64               pid,
                                                  GCancellable        *cancellable,
                                                  GError             **error);

QLEAN_AVAILABLE_IN_0_1
void            qlean_qga_client_exec_wait_async (QleanQgaClient      *self,
                                                  gint64               pid,
                                                  GCancellable        *cancellable,
                                                  GAsyncReadyCallback  callback,
                                                  gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
QleanQgaExecStatus *qlean_qga_client_exec_wait_finish (QleanQgaClient  *self,
                                                  GAsyncResult        *result,
                                                  GError             **error);

QLEAN_AVAILABLE_IN_0_1
void            qlean_qga_client_file_open_async (QleanQgaClient      *self,
                                                  const char          *path,
                                                  const char          *mode,
                                                  GCancellable        *cancellable,
                                                  GAsyncReadyCallback  callback,
                                                  gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gint64          qlean_qga_client_file_open_finish (QleanQgaClient     *self,
                                                  GAsyncResult        *result,
                                                  GError             **error);
QLEAN_AVAILABLE_IN_0_1
gint64          qlean_qga_client_file_open       (QleanQgaClient      *self,
                                                  const char          *path,
                                                  const char          *mode,
                                                  GCancellable        *cancellable,
                                                  GError             **error);

QLEAN_AVAILABLE_IN_0_1
void            qlean_qga_client_file_read_async (QleanQgaClient      *self,
                                                  gint64               handle,
                                                  gsize                count,
                                                  GCancellable        *cancellable,
                                                  GAsyncReadyCallback  callback,
                                                  gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
GBytes         *qlean_qga_client_file_read_finish (QleanQgaClient     *self,
                                                  GAsyncResult        *result,
                                                  gboolean            *eof,
                                                  GError             **error);
QLEAN_AVAILABLE_IN_0_1
GBytes         *qlean_qga_client_file_read       (QleanQgaClient      *self,
                                                  gint64               handle,
                                                  gsize                count,
                                                  gboolean            *eof,
                                                  GCancellable        *cancellable,
                                                  GError             **error);

QLEAN_AVAILABLE_IN_0_1
void            qlean_qga_client_file_write_async (QleanQgaClient     *self,
                                                  gint64               handle,
                                                  GBytes              *data,
                                                  GCancellable        *cancellable,
                                                  GAsyncReadyCallback  callback,
                                                  gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gssize          qlean_qga_client_file_write_finish (QleanQgaClient    *self,
                                                  GAsyncResult        *result,
                                                  GError             **error);
QLEAN_AVAILABLE_IN_0_1
gssize          qlean_qga_client_file_write      (QleanQgaClient      *self,
                                                  gint64               handle,
                                                  GBytes              *data,
                                                  GCancellable        *cancellable,
                                                  GError             **error);

QLEAN_AVAILABLE_IN_0_1
void            qlean_qga_client_file_close_async (QleanQgaClient     *self,
                                                  gint64               handle,
                                                  GCancellable        *cancellable,
                                                  GAsyncReadyCallback  callback,
                                                  gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean        qlean_qga_client_file_close_finish (QleanQgaClient    *self,
                                                  GAsyncResult        *result,
                                                  GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean        qlean_qga_client_file_close      (QleanQgaClient      *self,
                                                  gint64               handle,
                                                  GCancellable        *cancellable,
                                                  GError             **error);

QLEAN_AVAILABLE_IN_0_1
void            qlean_qga_client_shutdown_async  (QleanQgaClient      *self,
                                                  const char          *mode,
                                                  GCancellable        *cancellable,
                                                  GAsyncReadyCallback  callback,
                                                  gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean        qlean_qga_client_shutdown_finish (QleanQgaClient      *self,
                                                  GAsyncResult        *result,
                                                  GError             **error);

G_END_DECLS
