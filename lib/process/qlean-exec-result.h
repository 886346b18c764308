/* qlean-exec-result.h: how a command in the guest ended, and what it printed
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#if !defined(QLEAN_INSIDE) && !defined(QLEAN_COMPILATION)
# error "Only <qlean/qlean.h> can be included directly."
#endif

#include <gio/gio.h>

#include "qlean-version-macros.h"

G_BEGIN_DECLS

#define QLEAN_TYPE_EXEC_RESULT (qlean_exec_result_get_type ())

QLEAN_AVAILABLE_IN_0_1
G_DECLARE_FINAL_TYPE (QleanExecResult, qlean_exec_result, QLEAN, EXEC_RESULT, GObject)

QLEAN_AVAILABLE_IN_0_1
QleanExecResult *qlean_exec_result_new                   (gint      exit_status,
                                                          gint      term_signal,
                                                          GBytes   *stdout_bytes,
                                                          GBytes   *stderr_bytes,
                                                          gboolean  stdout_truncated,
                                                          gboolean  stderr_truncated);
QLEAN_AVAILABLE_IN_0_1
gint             qlean_exec_result_get_exit_status       (QleanExecResult *self);
QLEAN_AVAILABLE_IN_0_1
gint             qlean_exec_result_get_signal            (QleanExecResult *self);
QLEAN_AVAILABLE_IN_0_1
gboolean         qlean_exec_result_get_if_signaled       (QleanExecResult *self);
QLEAN_AVAILABLE_IN_0_1
gboolean         qlean_exec_result_success               (QleanExecResult *self);
QLEAN_AVAILABLE_IN_0_1
GBytes          *qlean_exec_result_get_stdout            (QleanExecResult *self);
QLEAN_AVAILABLE_IN_0_1
GBytes          *qlean_exec_result_get_stderr            (QleanExecResult *self);
QLEAN_AVAILABLE_IN_0_1
char            *qlean_exec_result_get_stdout_text       (QleanExecResult *self);
QLEAN_AVAILABLE_IN_0_1
char            *qlean_exec_result_get_stderr_text       (QleanExecResult *self);
QLEAN_AVAILABLE_IN_0_1
gboolean         qlean_exec_result_get_stdout_truncated  (QleanExecResult *self);
QLEAN_AVAILABLE_IN_0_1
gboolean         qlean_exec_result_get_stderr_truncated  (QleanExecResult *self);
QLEAN_AVAILABLE_IN_0_1
gboolean         qlean_exec_result_check                 (QleanExecResult *self,
                                                          GError         **error);

G_END_DECLS
