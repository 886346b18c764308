/* qlean-machine.h: a throwaway virtual machine
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#if !defined(QLEAN_INSIDE) && !defined(QLEAN_COMPILATION)
# error "Only <qlean/qlean.h> can be included directly."
#endif

#include <gio/gio.h>

#include "qlean-exec-result.h"
#include "qlean-image.h"
#include "qlean-machine-config.h"
#include "qlean-network.h"
#include "qlean-qga-client.h"
#include "qlean-qmp-client.h"
#include "qlean-version-macros.h"

G_BEGIN_DECLS

/**
 * QleanMachineState:
 * @QLEAN_MACHINE_STATE_CREATED: made, never started.
 * @QLEAN_MACHINE_STATE_STARTING: QEMU is running and the guest is booting;
 *   the agent has not answered yet.
 * @QLEAN_MACHINE_STATE_RUNNING: the guest agent answers.
 * @QLEAN_MACHINE_STATE_PAUSED: QEMU stopped the guest's CPUs.
 * @QLEAN_MACHINE_STATE_STOPPED: QEMU has exited because it was asked to
 *   (shutdown, kill), or a start failed; the machine can be started again.
 * @QLEAN_MACHINE_STATE_CRASHED: QEMU died unasked, or the guest panicked.
 *
 * The life of a [class@Machine]: CREATED → STARTING → RUNNING ⇄ PAUSED →
 * STOPPED, and CRASHED from any state in which QEMU runs.
 *
 * Since: 0.1
 */
typedef enum
{
  QLEAN_MACHINE_STATE_CREATED,
  QLEAN_MACHINE_STATE_STARTING,
  QLEAN_MACHINE_STATE_RUNNING,
  QLEAN_MACHINE_STATE_PAUSED,
  QLEAN_MACHINE_STATE_STOPPED,
  QLEAN_MACHINE_STATE_CRASHED,
} QleanMachineState;

#define QLEAN_TYPE_MACHINE (qlean_machine_get_type ())

QLEAN_AVAILABLE_IN_0_1
G_DECLARE_FINAL_TYPE (QleanMachine, qlean_machine, QLEAN, MACHINE, GObject)

QLEAN_AVAILABLE_IN_0_1
QleanMachine       *qlean_machine_new                  (QleanImage          *image,
                                                        QleanMachineConfig  *config);
QLEAN_AVAILABLE_IN_0_1
QleanMachine       *qlean_machine_new_with_name        (const char          *name,
                                                        QleanImage          *image,
                                                        QleanMachineConfig  *config);

QLEAN_AVAILABLE_IN_0_1
const char         *qlean_machine_get_name             (QleanMachine        *self);
QLEAN_AVAILABLE_IN_0_1
QleanImage         *qlean_machine_get_image            (QleanMachine        *self);
QLEAN_AVAILABLE_IN_0_1
QleanMachineConfig *qlean_machine_get_config           (QleanMachine        *self);
QLEAN_AVAILABLE_IN_0_1
QleanMachineState   qlean_machine_get_state            (QleanMachine        *self);
QLEAN_AVAILABLE_IN_0_1
QleanGuestTransport qlean_machine_get_guest_transport  (QleanMachine        *self);
QLEAN_AVAILABLE_IN_0_1
const char         *qlean_machine_get_run_dir          (QleanMachine        *self);
QLEAN_AVAILABLE_IN_0_1
GPid                qlean_machine_get_pid              (QleanMachine        *self);
QLEAN_AVAILABLE_IN_0_1
QleanQmpClient     *qlean_machine_dup_qmp              (QleanMachine        *self);
QLEAN_AVAILABLE_IN_0_1
QleanQgaClient     *qlean_machine_dup_qga              (QleanMachine        *self);
QLEAN_AVAILABLE_IN_0_1
char               *qlean_machine_get_console_path     (QleanMachine        *self);
QLEAN_AVAILABLE_IN_0_1
char               *qlean_machine_dup_crash_reason     (QleanMachine        *self);
QLEAN_AVAILABLE_IN_0_1
gboolean            qlean_machine_save_logs            (QleanMachine        *self,
                                                        const char          *directory,
                                                        GError             **error);

QLEAN_AVAILABLE_IN_0_1
guint               qlean_machine_get_boot_timeout     (QleanMachine        *self);
QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_set_boot_timeout     (QleanMachine        *self,
                                                        guint                timeout_ms);
QLEAN_AVAILABLE_IN_0_1
guint               qlean_machine_get_shutdown_timeout (QleanMachine        *self);
QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_set_shutdown_timeout (QleanMachine        *self,
                                                        guint                timeout_ms);

QLEAN_AVAILABLE_IN_0_1
char              **qlean_machine_dry_run              (QleanMachine        *self,
                                                        GError             **error);

QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_spawn_async          (QleanMachine        *self,
                                                        GCancellable        *cancellable,
                                                        GAsyncReadyCallback  callback,
                                                        gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean            qlean_machine_spawn_finish         (QleanMachine        *self,
                                                        GAsyncResult        *result,
                                                        GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean            qlean_machine_spawn                (QleanMachine        *self,
                                                        GCancellable        *cancellable,
                                                        GError             **error);

QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_prepare_spares_async  (QleanImage          *image,
                                                         QleanMachineConfig  *config,
                                                         GCancellable        *cancellable,
                                                         GAsyncReadyCallback  callback,
                                                         gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean            qlean_machine_prepare_spares_finish (GAsyncResult        *result,
                                                         GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean            qlean_machine_prepare_spares        (QleanImage          *image,
                                                         QleanMachineConfig  *config,
                                                         GCancellable        *cancellable,
                                                         GError             **error);
QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_stop_spares           (void);

QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_initialize_async     (QleanMachine        *self,
                                                        GCancellable        *cancellable,
                                                        GAsyncReadyCallback  callback,
                                                        gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean            qlean_machine_initialize_finish    (QleanMachine        *self,
                                                        GAsyncResult        *result,
                                                        GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean            qlean_machine_initialize           (QleanMachine        *self,
                                                        GCancellable        *cancellable,
                                                        GError             **error);

QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_exec_async           (QleanMachine        *self,
                                                        const char          *command,
                                                        GCancellable        *cancellable,
                                                        GAsyncReadyCallback  callback,
                                                        gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
QleanExecResult    *qlean_machine_exec_finish          (QleanMachine        *self,
                                                        GAsyncResult        *result,
                                                        GError             **error);
QLEAN_AVAILABLE_IN_0_1
QleanExecResult    *qlean_machine_exec                 (QleanMachine        *self,
                                                        const char          *command,
                                                        GCancellable        *cancellable,
                                                        GError             **error);

QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_shutdown_async       (QleanMachine        *self,
                                                        GCancellable        *cancellable,
                                                        GAsyncReadyCallback  callback,
                                                        gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean            qlean_machine_shutdown_finish      (QleanMachine        *self,
                                                        GAsyncResult        *result,
                                                        GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean            qlean_machine_shutdown             (QleanMachine        *self,
                                                        GCancellable        *cancellable,
                                                        GError             **error);

QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_kill_async           (QleanMachine        *self,
                                                        GCancellable        *cancellable,
                                                        GAsyncReadyCallback  callback,
                                                        gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean            qlean_machine_kill_finish          (QleanMachine        *self,
                                                        GAsyncResult        *result,
                                                        GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean            qlean_machine_kill                 (QleanMachine        *self,
                                                        GCancellable        *cancellable,
                                                        GError             **error);

QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_pause_async          (QleanMachine        *self,
                                                        GCancellable        *cancellable,
                                                        GAsyncReadyCallback  callback,
                                                        gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean            qlean_machine_pause_finish         (QleanMachine        *self,
                                                        GAsyncResult        *result,
                                                        GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean            qlean_machine_pause                (QleanMachine        *self,
                                                        GCancellable        *cancellable,
                                                        GError             **error);
QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_resume_async         (QleanMachine        *self,
                                                        GCancellable        *cancellable,
                                                        GAsyncReadyCallback  callback,
                                                        gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean            qlean_machine_resume_finish        (QleanMachine        *self,
                                                        GAsyncResult        *result,
                                                        GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean            qlean_machine_resume               (QleanMachine        *self,
                                                        GCancellable        *cancellable,
                                                        GError             **error);

QLEAN_AVAILABLE_IN_0_1
gboolean            qlean_machine_share                (QleanMachine        *self,
                                                        const char          *socket_path,
                                                        GError             **error);
QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_attach_async         (const char          *name,
                                                        const char          *socket_path,
                                                        GCancellable        *cancellable,
                                                        GAsyncReadyCallback  callback,
                                                        gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
QleanMachine       *qlean_machine_attach_finish        (GAsyncResult        *result,
                                                        GError             **error);
QLEAN_AVAILABLE_IN_0_1
QleanMachine       *qlean_machine_attach               (const char          *name,
                                                        const char          *socket_path,
                                                        GCancellable        *cancellable,
                                                        GError             **error);

/* Networking: qlean-machine-network.c */

QLEAN_AVAILABLE_IN_0_1
QleanNetwork       *qlean_machine_get_network          (QleanMachine        *self);
QLEAN_AVAILABLE_IN_0_1
char               *qlean_machine_dup_mac_address      (QleanMachine        *self);

QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_get_ip_async         (QleanMachine        *self,
                                                        GCancellable        *cancellable,
                                                        GAsyncReadyCallback  callback,
                                                        gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
char               *qlean_machine_get_ip_finish        (QleanMachine        *self,
                                                        GAsyncResult        *result,
                                                        GError             **error);
QLEAN_AVAILABLE_IN_0_1
char               *qlean_machine_get_ip               (QleanMachine        *self,
                                                        GCancellable        *cancellable,
                                                        GError             **error);

QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_set_link_async       (QleanMachine        *self,
                                                        gboolean             up,
                                                        GCancellable        *cancellable,
                                                        GAsyncReadyCallback  callback,
                                                        gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean            qlean_machine_set_link_finish      (QleanMachine        *self,
                                                        GAsyncResult        *result,
                                                        GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean            qlean_machine_set_link             (QleanMachine        *self,
                                                        gboolean             up,
                                                        GCancellable        *cancellable,
                                                        GError             **error);

/* Port forwarding: qlean-machine-forward.c */

QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_forward_port_async   (QleanMachine        *self,
                                                        guint16              host_port,
                                                        guint16              guest_port,
                                                        GCancellable        *cancellable,
                                                        GAsyncReadyCallback  callback,
                                                        gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
guint16             qlean_machine_forward_port_finish  (QleanMachine        *self,
                                                        GAsyncResult        *result,
                                                        GError             **error);
QLEAN_AVAILABLE_IN_0_1
guint16             qlean_machine_forward_port         (QleanMachine        *self,
                                                        guint16              host_port,
                                                        guint16              guest_port,
                                                        GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean            qlean_machine_unforward_port       (QleanMachine        *self,
                                                        guint16              host_port,
                                                        GError             **error);
QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_forward_unix_async   (QleanMachine        *self,
                                                        const char          *socket_path,
                                                        guint16              guest_port,
                                                        GCancellable        *cancellable,
                                                        GAsyncReadyCallback  callback,
                                                        gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
char               *qlean_machine_forward_unix_finish  (QleanMachine        *self,
                                                        GAsyncResult        *result,
                                                        GError             **error);
QLEAN_AVAILABLE_IN_0_1
char               *qlean_machine_forward_unix         (QleanMachine        *self,
                                                        const char          *socket_path,
                                                        guint16              guest_port,
                                                        GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean            qlean_machine_unforward_unix       (QleanMachine        *self,
                                                        const char          *socket_path,
                                                        GError             **error);

G_END_DECLS
