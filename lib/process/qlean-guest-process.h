/* qlean-guest-process.h: a process running in a machine
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

/**
 * QleanGuestProcessFlags:
 * @QLEAN_GUEST_PROCESS_FLAGS_NONE: no pipes: stdin is /dev/null and
 *   output is discarded.
 * @QLEAN_GUEST_PROCESS_FLAGS_STDIN_PIPE: give the process a stdin pipe,
 *   written through [method@GuestProcess.get_stdin_pipe].
 * @QLEAN_GUEST_PROCESS_FLAGS_STDOUT_PIPE: read its stdout, live, from
 *   [method@GuestProcess.get_stdout_pipe].
 * @QLEAN_GUEST_PROCESS_FLAGS_STDERR_PIPE: read its stderr, live, from
 *   [method@GuestProcess.get_stderr_pipe].
 * @QLEAN_GUEST_PROCESS_FLAGS_STDERR_MERGE: send stderr to the same pipe
 *   as stdout, in the order the process wrote them.
 * @QLEAN_GUEST_PROCESS_FLAGS_TERMINAL: run the process on a new
 *   pseudo-terminal in the guest, as its controlling terminal and its
 *   stdin, stdout and stderr, like `docker exec -t`. What it writes comes
 *   from the stdout pipe (there is no stderr pipe), and what is written
 *   to the stdin pipe (add %QLEAN_GUEST_PROCESS_FLAGS_STDIN_PIPE) goes
 *   through the terminal's line discipline: a 0x03 byte interrupts the
 *   process, 0x04 is end-of-file. Its size is set with
 *   [method@GuestLauncher.set_window_size] and
 *   [method@GuestProcess.set_window_size]. Needs qlean-guest (protocol
 *   version 3): in a machine using the agent transport, or with an older
 *   qlean-guest, the start fails with %G_IO_ERROR_NOT_SUPPORTED.
 *
 * How a guest process's standard streams are connected, as
 * #GSubprocessFlags does for local processes.
 *
 * Since: 0.1
 */
typedef enum /*< flags >*/
{
  QLEAN_GUEST_PROCESS_FLAGS_NONE         = 0,
  QLEAN_GUEST_PROCESS_FLAGS_STDIN_PIPE   = 1 << 0,
  QLEAN_GUEST_PROCESS_FLAGS_STDOUT_PIPE  = 1 << 1,
  QLEAN_GUEST_PROCESS_FLAGS_STDERR_PIPE  = 1 << 2,
  QLEAN_GUEST_PROCESS_FLAGS_STDERR_MERGE = 1 << 3,
  QLEAN_GUEST_PROCESS_FLAGS_TERMINAL     = 1 << 4,
} QleanGuestProcessFlags;

#define QLEAN_TYPE_GUEST_PROCESS (qlean_guest_process_get_type ())

QLEAN_AVAILABLE_IN_0_1
G_DECLARE_FINAL_TYPE (QleanGuestProcess, qlean_guest_process, QLEAN, GUEST_PROCESS, GObject)

QLEAN_AVAILABLE_IN_0_1
GOutputStream *qlean_guest_process_get_stdin_pipe    (QleanGuestProcess   *self);
QLEAN_AVAILABLE_IN_0_1
GInputStream  *qlean_guest_process_get_stdout_pipe   (QleanGuestProcess   *self);
QLEAN_AVAILABLE_IN_0_1
GInputStream  *qlean_guest_process_get_stderr_pipe   (QleanGuestProcess   *self);
QLEAN_AVAILABLE_IN_0_1
const char    *qlean_guest_process_get_identifier    (QleanGuestProcess   *self);

QLEAN_AVAILABLE_IN_0_1
void           qlean_guest_process_send_signal       (QleanGuestProcess   *self,
                                                      gint                 signal_num);
QLEAN_AVAILABLE_IN_0_1
void           qlean_guest_process_force_exit        (QleanGuestProcess   *self);
QLEAN_AVAILABLE_IN_0_1
void           qlean_guest_process_set_window_size   (QleanGuestProcess   *self,
                                                      guint                rows,
                                                      guint                cols);

QLEAN_AVAILABLE_IN_0_1
void           qlean_guest_process_wait_async        (QleanGuestProcess   *self,
                                                      GCancellable        *cancellable,
                                                      GAsyncReadyCallback  callback,
                                                      gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean       qlean_guest_process_wait_finish       (QleanGuestProcess   *self,
                                                      GAsyncResult        *result,
                                                      GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean       qlean_guest_process_wait              (QleanGuestProcess   *self,
                                                      GCancellable        *cancellable,
                                                      GError             **error);
QLEAN_AVAILABLE_IN_0_1
void           qlean_guest_process_wait_check_async  (QleanGuestProcess   *self,
                                                      GCancellable        *cancellable,
                                                      GAsyncReadyCallback  callback,
                                                      gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean       qlean_guest_process_wait_check_finish (QleanGuestProcess   *self,
                                                      GAsyncResult        *result,
                                                      GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean       qlean_guest_process_wait_check        (QleanGuestProcess   *self,
                                                      GCancellable        *cancellable,
                                                      GError             **error);

QLEAN_AVAILABLE_IN_0_1
void           qlean_guest_process_communicate_async (QleanGuestProcess   *self,
                                                      GBytes              *stdin_buf,
                                                      GCancellable        *cancellable,
                                                      GAsyncReadyCallback  callback,
                                                      gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean       qlean_guest_process_communicate_finish (QleanGuestProcess  *self,
                                                      GAsyncResult        *result,
                                                      GBytes             **stdout_buf,
                                                      GBytes             **stderr_buf,
                                                      GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean       qlean_guest_process_communicate       (QleanGuestProcess   *self,
                                                      GBytes              *stdin_buf,
                                                      GCancellable        *cancellable,
                                                      GBytes             **stdout_buf,
                                                      GBytes             **stderr_buf,
                                                      GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean       qlean_guest_process_communicate_utf8  (QleanGuestProcess   *self,
                                                      const char          *stdin_buf,
                                                      GCancellable        *cancellable,
                                                      char               **stdout_buf,
                                                      char               **stderr_buf,
                                                      GError             **error);
QLEAN_AVAILABLE_IN_0_1
GBytes        *qlean_guest_process_get_stdout_bytes  (QleanGuestProcess   *self);
QLEAN_AVAILABLE_IN_0_1
GBytes        *qlean_guest_process_get_stderr_bytes  (QleanGuestProcess   *self);

QLEAN_AVAILABLE_IN_0_1
gboolean       qlean_guest_process_get_if_exited     (QleanGuestProcess   *self);
QLEAN_AVAILABLE_IN_0_1
gint           qlean_guest_process_get_exit_status   (QleanGuestProcess   *self);
QLEAN_AVAILABLE_IN_0_1
gboolean       qlean_guest_process_get_if_signaled   (QleanGuestProcess   *self);
QLEAN_AVAILABLE_IN_0_1
gint           qlean_guest_process_get_term_sig      (QleanGuestProcess   *self);
QLEAN_AVAILABLE_IN_0_1
gboolean       qlean_guest_process_get_successful    (QleanGuestProcess   *self);
QLEAN_AVAILABLE_IN_0_1
gboolean       qlean_guest_process_get_timed_out     (QleanGuestProcess   *self);

G_END_DECLS
