/* qlean-image-prepare-private.h: a distribution image made ready to boot
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-image-prepare-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include <gio/gio.h>

G_BEGIN_DECLS

/* Preparation (qlean-image-prepare.c), on a worker thread. */
typedef struct
{
  char     *kernel;      /* NULL: the disk boots its own loader through UEFI */
  char     *initrd;
  char     *disk;        /* qcow2, never written by machines */
  char     *cmdline;
  gboolean  cloud_init;  /* the image has cloud-init */
} QleanPrepared;

void      qlean_prepared_clear            (QleanPrepared *prepared);
/* Makes (or finds in the cache under @cache_root/prepared/@arch/@name)
 * a copy of @input ready to boot: agent and qlean-guest injected, kernel
 * and initrd extracted, root device found. @input_digest
 * ("sha512:<hex>") keys it with the preparation version and the
 * injected programs. */
gboolean  qlean_image_prepare_disk        (const char     *input,
                                           const char     *input_format,
                                           const char     *input_digest,
                                           const char     *name,
                                           const char     *arch,
                                           const char     *cache_root,
                                           QleanPrepared  *prepared,
                                           GCancellable   *cancellable,
                                           GError        **error);
/* The static qlean-guest program to inject: $QLEAN_GUEST_BINARY, the
 * installed one, or the one in the build tree. */
char     *qlean_find_guest_binary         (GError        **error);

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (QleanPrepared, qlean_prepared_clear)

G_END_DECLS
