/* qlean-image-object-private.h: what the image's own files share
 *
 * QleanImage is one object in two files: qlean-image.c holds its
 * properties, signal, constructors and accessors; qlean-image-prepare-kind.c
 * what preparing it does for each kind of image. This header holds its
 * instance struct, which both read and write. Nothing outside
 * lib/image/qlean-image*.c includes it: the rest of Qlean uses
 * qlean-image-private.h and qlean-image-source-private.h.
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-image-object-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include "qlean-image.h"
#include "qlean-image-source-private.h"

G_BEGIN_DECLS

struct _QleanImage
{
  GObject         parent_instance;

  QleanImageKind  kind;
  char           *name;
  char           *source_path;
  QleanImageSource *source;      /* distribution images (qlean-image-source.c) */

  /* Held for the whole preparation, which can take minutes for a
   * distribution image; `lock` only guards the fields, so that readers
   * such as is_prepared() never wait for a download. */
  GMutex          prepare_lock;
  GMutex          lock;
  gboolean        prepared;
  char           *kernel;
  char           *initrd;
  char           *disk;
  char           *disk_format;   /* of a file image's disk, as checked */
  /* The minimal image's boot for machines with shared folders: another
   * kernel (one with 9p), built only once such a machine asks. */
  gboolean        want_share_boot;
  char           *share_kernel;
  char           *share_initrd;
  char           *cmdline;
  guint           default_memory_mib;
};

G_END_DECLS
