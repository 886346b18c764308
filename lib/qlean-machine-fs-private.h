/* qlean-machine-fs-private.h: shared by the file calls and the transfers
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include "qlean-guest-channel-private.h"
#include "qlean-machine.h"

G_BEGIN_DECLS

GError    *qlean_machine_fs_error    (QleanMachine         *machine,
                                      const char           *verb,
                                      const char           *path,
                                      const char           *path2,
                                      GBytes               *payload);
GFileInfo *qlean_file_info_from_stat (const QleanGuestStat *st,
                                      const char           *name,
                                      const char           *symlink_target,
                                      gboolean              is_symlink);

/* Sets a guest path's modification time, never following a link. */
gboolean   qlean_machine_fs_set_mtime (QleanMachine        *machine,
                                       const char          *path,
                                       gint64               mtime_ns,
                                       GCancellable        *cancellable,
                                       GError             **error);

G_END_DECLS
