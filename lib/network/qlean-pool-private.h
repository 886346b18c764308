/* qlean-pool-private.h: QleanPool's fields, for its own files
 *
 * SPDX-License-Identifier: MIT
 *
 * A pool is qlean-pool.c (the object, its machines by name, and
 * partitions, which it leaves to its network) and qlean-pool-start.c
 * (starting and stopping its machines together); this is what they
 * share.
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-pool-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include "qlean-pool.h"

G_BEGIN_DECLS

struct _QleanPool
{
  GObject       parent_instance;

  GPtrArray    *machines;
  QleanNetwork *network;
  gboolean      owns_network;
  gboolean      golden;
};

G_END_DECLS
