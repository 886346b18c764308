/* qlean-guest-launcher.h: how to start a process in a machine
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#if !defined(QLEAN_INSIDE) && !defined(QLEAN_COMPILATION)
# error "Only <qlean/qlean.h> can be included directly."
#endif

#include <gio/gio.h>

#include "qlean-exec-result.h"
#include "qlean-guest-process.h"
#include "qlean-machine.h"
#include "qlean-version-macros.h"

G_BEGIN_DECLS

#define QLEAN_TYPE_GUEST_LAUNCHER (qlean_guest_launcher_get_type ())

QLEAN_AVAILABLE_IN_0_1
G_DECLARE_FINAL_TYPE (QleanGuestLauncher, qlean_guest_launcher, QLEAN, GUEST_LAUNCHER, GObject)

QLEAN_AVAILABLE_IN_0_1
QleanGuestLauncher *qlean_guest_launcher_new          (QleanGuestProcessFlags  flags);
QLEAN_AVAILABLE_IN_0_1
void                qlean_guest_launcher_set_flags    (QleanGuestLauncher     *self,
                                                       QleanGuestProcessFlags  flags);
QLEAN_AVAILABLE_IN_0_1
void                qlean_guest_launcher_setenv       (QleanGuestLauncher     *self,
                                                       const char             *variable,
                                                       const char             *value,
                                                       gboolean                overwrite);
QLEAN_AVAILABLE_IN_0_1
void                qlean_guest_launcher_unsetenv     (QleanGuestLauncher     *self,
                                                       const char             *variable);
QLEAN_AVAILABLE_IN_0_1
void                qlean_guest_launcher_set_environ  (QleanGuestLauncher     *self,
                                                       char                  **env);
QLEAN_AVAILABLE_IN_0_1
void                qlean_guest_launcher_set_cwd      (QleanGuestLauncher     *self,
                                                       const char             *cwd);
QLEAN_AVAILABLE_IN_0_1
void                qlean_guest_launcher_set_user     (QleanGuestLauncher     *self,
                                                       const char             *user);
QLEAN_AVAILABLE_IN_0_1
void                qlean_guest_launcher_set_stdin    (QleanGuestLauncher     *self,
                                                       GBytes                 *stdin_bytes);
QLEAN_AVAILABLE_IN_0_1
void                qlean_guest_launcher_set_timeout  (QleanGuestLauncher     *self,
                                                       guint                   timeout_ms);
QLEAN_AVAILABLE_IN_0_1
void                qlean_guest_launcher_set_window_size (QleanGuestLauncher  *self,
                                                       guint                   rows,
                                                       guint                   cols);

QLEAN_AVAILABLE_IN_0_1
void                qlean_guest_launcher_spawnv_async (QleanGuestLauncher     *self,
                                                       QleanMachine           *machine,
                                                       const char * const     *argv,
                                                       GCancellable           *cancellable,
                                                       GAsyncReadyCallback     callback,
                                                       gpointer                user_data);
QLEAN_AVAILABLE_IN_0_1
QleanGuestProcess  *qlean_guest_launcher_spawnv_finish (QleanGuestLauncher    *self,
                                                       GAsyncResult           *result,
                                                       GError                **error);
QLEAN_AVAILABLE_IN_0_1
QleanGuestProcess  *qlean_guest_launcher_spawnv       (QleanGuestLauncher     *self,
                                                       QleanMachine           *machine,
                                                       const char * const     *argv,
                                                       GError                **error);

QLEAN_AVAILABLE_IN_0_1
void                qlean_guest_launcher_run_async    (QleanGuestLauncher     *self,
                                                       QleanMachine           *machine,
                                                       const char * const     *argv,
                                                       GCancellable           *cancellable,
                                                       GAsyncReadyCallback     callback,
                                                       gpointer                user_data);
QLEAN_AVAILABLE_IN_0_1
QleanExecResult    *qlean_guest_launcher_run_finish   (QleanGuestLauncher     *self,
                                                       GAsyncResult           *result,
                                                       GError                **error);
QLEAN_AVAILABLE_IN_0_1
QleanExecResult    *qlean_guest_launcher_run          (QleanGuestLauncher     *self,
                                                       QleanMachine           *machine,
                                                       const char * const     *argv,
                                                       GCancellable           *cancellable,
                                                       GError                **error);

G_END_DECLS
