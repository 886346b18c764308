/* qlean-wait.h: waiting until something is true in a machine
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#if !defined(QLEAN_INSIDE) && !defined(QLEAN_COMPILATION)
# error "Only <qlean/qlean.h> can be included directly."
#endif

#include <gio/gio.h>

#include "qlean-exec-result.h"
#include "qlean-machine.h"
#include "qlean-version-macros.h"

G_BEGIN_DECLS

QLEAN_AVAILABLE_IN_0_1
void             qlean_machine_wait_for_file_async           (QleanMachine        *self,
                                                              const char          *path,
                                                              guint                timeout_ms,
                                                              GCancellable        *cancellable,
                                                              GAsyncReadyCallback  callback,
                                                              gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean         qlean_machine_wait_for_file_finish          (QleanMachine        *self,
                                                              GAsyncResult        *result,
                                                              GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean         qlean_machine_wait_for_file                 (QleanMachine        *self,
                                                              const char          *path,
                                                              guint                timeout_ms,
                                                              GCancellable        *cancellable,
                                                              GError             **error);

QLEAN_AVAILABLE_IN_0_1
void             qlean_machine_wait_for_port_async           (QleanMachine        *self,
                                                              guint16              port,
                                                              guint                timeout_ms,
                                                              GCancellable        *cancellable,
                                                              GAsyncReadyCallback  callback,
                                                              gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean         qlean_machine_wait_for_port_finish          (QleanMachine        *self,
                                                              GAsyncResult        *result,
                                                              GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean         qlean_machine_wait_for_port                 (QleanMachine        *self,
                                                              guint16              port,
                                                              guint                timeout_ms,
                                                              GCancellable        *cancellable,
                                                              GError             **error);

QLEAN_AVAILABLE_IN_0_1
void             qlean_machine_wait_for_unit_async           (QleanMachine        *self,
                                                              const char          *unit,
                                                              guint                timeout_ms,
                                                              GCancellable        *cancellable,
                                                              GAsyncReadyCallback  callback,
                                                              gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean         qlean_machine_wait_for_unit_finish          (QleanMachine        *self,
                                                              GAsyncResult        *result,
                                                              GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean         qlean_machine_wait_for_unit                 (QleanMachine        *self,
                                                              const char          *unit,
                                                              guint                timeout_ms,
                                                              GCancellable        *cancellable,
                                                              GError             **error);

QLEAN_AVAILABLE_IN_0_1
void             qlean_machine_wait_for_console_text_async   (QleanMachine        *self,
                                                              const char          *regex,
                                                              guint                timeout_ms,
                                                              GCancellable        *cancellable,
                                                              GAsyncReadyCallback  callback,
                                                              gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
char            *qlean_machine_wait_for_console_text_finish  (QleanMachine        *self,
                                                              GAsyncResult        *result,
                                                              GError             **error);
QLEAN_AVAILABLE_IN_0_1
char            *qlean_machine_wait_for_console_text         (QleanMachine        *self,
                                                              const char          *regex,
                                                              guint                timeout_ms,
                                                              GCancellable        *cancellable,
                                                              GError             **error);

QLEAN_AVAILABLE_IN_0_1
void             qlean_machine_wait_until_succeeds_async     (QleanMachine        *self,
                                                              const char * const  *argv,
                                                              guint                timeout_ms,
                                                              GCancellable        *cancellable,
                                                              GAsyncReadyCallback  callback,
                                                              gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
QleanExecResult *qlean_machine_wait_until_succeeds_finish    (QleanMachine        *self,
                                                              GAsyncResult        *result,
                                                              GError             **error);
QLEAN_AVAILABLE_IN_0_1
QleanExecResult *qlean_machine_wait_until_succeeds           (QleanMachine        *self,
                                                              const char * const  *argv,
                                                              guint                timeout_ms,
                                                              GCancellable        *cancellable,
                                                              GError             **error);

G_END_DECLS
