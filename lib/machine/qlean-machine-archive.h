/* qlean-machine-archive.h: machines exported to, and imported from, one file
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#if !defined(QLEAN_INSIDE) && !defined(QLEAN_COMPILATION)
# error "Only <qlean/qlean.h> can be included directly."
#endif

#include <gio/gio.h>

#include "qlean-machine.h"
#include "qlean-network.h"
#include "qlean-version-macros.h"

G_BEGIN_DECLS

/**
 * QleanImportFlags:
 * @QLEAN_IMPORT_FLAGS_NONE: take from the archive only what cannot reach
 *   the host.
 * @QLEAN_IMPORT_FLAGS_TRUST_EXTRA_ARGS: also use the extra QEMU arguments
 *   of the archived machine's configuration. They are a QEMU command line
 *   and can give the guest any file of the host: set this only for
 *   archives whose maker you trust.
 * @QLEAN_IMPORT_FLAGS_NO_MEMORY_TEMPLATE: load the archive's saved state
 *   into the new machine's own memory, as a machine without
 *   [property@MachineConfig:memory-template] does, instead of sharing a
 *   memory template of that state with the other machines imported from
 *   the same archive (the machine's configuration then has the property
 *   off).
 *
 * What [func@Machine.import_full] takes from an archive beyond what is
 * always safe, and how it starts the machine.
 *
 * Since: 0.1
 */
typedef enum /*< flags >*/
{
  QLEAN_IMPORT_FLAGS_NONE = 0,
  QLEAN_IMPORT_FLAGS_TRUST_EXTRA_ARGS = 1 << 0,
  QLEAN_IMPORT_FLAGS_NO_MEMORY_TEMPLATE = 1 << 1,
} QleanImportFlags;

QLEAN_AVAILABLE_IN_0_1
void          qlean_machine_export_async  (QleanMachine        *self,
                                           GFile               *archive,
                                           GCancellable        *cancellable,
                                           GAsyncReadyCallback  callback,
                                           gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_machine_export_finish (QleanMachine        *self,
                                           GAsyncResult        *result,
                                           GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_machine_export        (QleanMachine        *self,
                                           GFile               *archive,
                                           GCancellable        *cancellable,
                                           GError             **error);

QLEAN_AVAILABLE_IN_0_1
void          qlean_machine_import_async  (GFile               *archive,
                                           const char          *name,
                                           QleanNetwork        *network,
                                           GCancellable        *cancellable,
                                           GAsyncReadyCallback  callback,
                                           gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
QleanMachine *qlean_machine_import_finish (GAsyncResult        *result,
                                           GError             **error);
QLEAN_AVAILABLE_IN_0_1
QleanMachine *qlean_machine_import        (GFile               *archive,
                                           const char          *name,
                                           QleanNetwork        *network,
                                           GCancellable        *cancellable,
                                           GError             **error);

QLEAN_AVAILABLE_IN_0_1
void          qlean_machine_import_full_async  (GFile               *archive,
                                                const char          *name,
                                                QleanNetwork        *network,
                                                QleanImportFlags     flags,
                                                GCancellable        *cancellable,
                                                GAsyncReadyCallback  callback,
                                                gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
QleanMachine *qlean_machine_import_full_finish (GAsyncResult        *result,
                                                GError             **error);
QLEAN_AVAILABLE_IN_0_1
QleanMachine *qlean_machine_import_full        (GFile               *archive,
                                                const char          *name,
                                                QleanNetwork        *network,
                                                QleanImportFlags     flags,
                                                GCancellable        *cancellable,
                                                GError             **error);

G_END_DECLS
