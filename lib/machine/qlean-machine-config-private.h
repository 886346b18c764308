/* qlean-machine-config-private.h: what the config's two files share
 *
 * QleanMachineConfig is one object in two files: its properties
 * (qlean-machine-config.c) and the host folders it shares
 * (qlean-machine-config-shares.c).
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-machine-config-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include "qlean-machine-config.h"

G_BEGIN_DECLS

/* One host folder shared with the config's machines. */
typedef struct
{
  char            *host_path;   /* canonical, an existing directory */
  char            *guest_path;
  QleanShareFlags  flags;
} QleanShare;

/* qlean-machine-config-shares.c: an empty list of QleanShare, which
 * frees them; and copies of @from's shares appended to @to. */
GPtrArray *qlean_share_list_new           (void);
void       qlean_share_list_append_copies (GPtrArray *to,
                                           GPtrArray *from);

/* qlean-machine-config.c: the config's list of QleanShare, in the order
 * they were added. */
GPtrArray *qlean_machine_config_peek_shares (QleanMachineConfig *self);

G_END_DECLS
