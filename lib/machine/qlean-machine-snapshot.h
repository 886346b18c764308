/* qlean-machine-snapshot.h: snapshots, restores and clones of machines
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#if !defined(QLEAN_INSIDE) && !defined(QLEAN_COMPILATION)
# error "Only <qlean/qlean.h> can be included directly."
#endif

#include <gio/gio.h>

#include "qlean-machine.h"
#include "qlean-version-macros.h"

G_BEGIN_DECLS

QLEAN_AVAILABLE_IN_0_1
void          qlean_machine_snapshot_async        (QleanMachine        *self,
                                                   const char          *name,
                                                   GCancellable        *cancellable,
                                                   GAsyncReadyCallback  callback,
                                                   gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_machine_snapshot_finish       (QleanMachine        *self,
                                                   GAsyncResult        *result,
                                                   GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_machine_snapshot              (QleanMachine        *self,
                                                   const char          *name,
                                                   GCancellable        *cancellable,
                                                   GError             **error);

QLEAN_AVAILABLE_IN_0_1
void          qlean_machine_restore_async         (QleanMachine        *self,
                                                   const char          *name,
                                                   GCancellable        *cancellable,
                                                   GAsyncReadyCallback  callback,
                                                   gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_machine_restore_finish        (QleanMachine        *self,
                                                   GAsyncResult        *result,
                                                   GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_machine_restore               (QleanMachine        *self,
                                                   const char          *name,
                                                   GCancellable        *cancellable,
                                                   GError             **error);

QLEAN_AVAILABLE_IN_0_1
char        **qlean_machine_list_snapshots        (QleanMachine        *self);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_machine_delete_snapshot       (QleanMachine        *self,
                                                   const char          *name,
                                                   GError             **error);

QLEAN_AVAILABLE_IN_0_1
void          qlean_machine_clone_async           (QleanMachine        *self,
                                                   const char          *new_name,
                                                   GCancellable        *cancellable,
                                                   GAsyncReadyCallback  callback,
                                                   gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
QleanMachine *qlean_machine_clone_finish          (QleanMachine        *self,
                                                   GAsyncResult        *result,
                                                   GError             **error);
QLEAN_AVAILABLE_IN_0_1
QleanMachine *qlean_machine_clone                 (QleanMachine        *self,
                                                   const char          *new_name,
                                                   GCancellable        *cancellable,
                                                   GError             **error);

QLEAN_AVAILABLE_IN_0_1
void          qlean_machine_clone_snapshot_async  (QleanMachine        *self,
                                                   const char          *name,
                                                   const char          *new_name,
                                                   GCancellable        *cancellable,
                                                   GAsyncReadyCallback  callback,
                                                   gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
QleanMachine *qlean_machine_clone_snapshot_finish (QleanMachine        *self,
                                                   GAsyncResult        *result,
                                                   GError             **error);
QLEAN_AVAILABLE_IN_0_1
QleanMachine *qlean_machine_clone_snapshot        (QleanMachine        *self,
                                                   const char          *name,
                                                   const char          *new_name,
                                                   GCancellable        *cancellable,
                                                   GError             **error);

G_END_DECLS
