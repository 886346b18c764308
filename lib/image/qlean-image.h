/* qlean-image.h: what a machine boots
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#if !defined(QLEAN_INSIDE) && !defined(QLEAN_COMPILATION)
# error "Only <qlean/qlean.h> can be included directly."
#endif

#include <gio/gio.h>

#include "qlean-arch.h"
#include "qlean-version-macros.h"

G_BEGIN_DECLS

/**
 * QleanImageKind:
 * @QLEAN_IMAGE_KIND_MINIMAL: the embedded default: the host's kernel,
 *   busybox and the host's qemu-ga in an initramfs.
 * @QLEAN_IMAGE_KIND_FILE: a disk image file given by the caller.
 * @QLEAN_IMAGE_KIND_DISTRO: a distribution's cloud image.
 *
 * Where an image comes from.
 *
 * Since: 0.1
 */
typedef enum
{
  QLEAN_IMAGE_KIND_MINIMAL,
  QLEAN_IMAGE_KIND_FILE,
  QLEAN_IMAGE_KIND_DISTRO,
} QleanImageKind;

#define QLEAN_TYPE_IMAGE (qlean_image_get_type ())

QLEAN_AVAILABLE_IN_0_1
G_DECLARE_FINAL_TYPE (QleanImage, qlean_image, QLEAN, IMAGE, GObject)

QLEAN_AVAILABLE_IN_0_1
QleanImage     *qlean_image_new_minimal      (void);
QLEAN_AVAILABLE_IN_0_1
QleanImage     *qlean_image_new_minimal_for_arch (QleanArch      arch);
QLEAN_AVAILABLE_IN_0_1
QleanImage     *qlean_image_new_from_file    (const char          *path);

QLEAN_AVAILABLE_IN_0_1
QleanImageKind  qlean_image_get_kind         (QleanImage          *self);
QLEAN_AVAILABLE_IN_0_1
const char     *qlean_image_get_name         (QleanImage          *self);
QLEAN_AVAILABLE_IN_0_1
QleanArch       qlean_image_get_guest_arch   (QleanImage          *self);
QLEAN_AVAILABLE_IN_0_1
void            qlean_image_set_guest_arch   (QleanImage          *self,
                                              QleanArch            arch);
QLEAN_AVAILABLE_IN_0_1
const char     *qlean_image_get_kernel       (QleanImage          *self);
QLEAN_AVAILABLE_IN_0_1
const char     *qlean_image_get_initrd       (QleanImage          *self);
QLEAN_AVAILABLE_IN_0_1
const char     *qlean_image_get_disk         (QleanImage          *self);
QLEAN_AVAILABLE_IN_0_1
const char     *qlean_image_get_cmdline      (QleanImage          *self);
QLEAN_AVAILABLE_IN_0_1
guint           qlean_image_get_default_memory_mib (QleanImage    *self);
QLEAN_AVAILABLE_IN_0_1
gboolean        qlean_image_is_prepared      (QleanImage          *self);

QLEAN_AVAILABLE_IN_0_1
void            qlean_image_prepare_async    (QleanImage          *self,
                                              GCancellable        *cancellable,
                                              GAsyncReadyCallback  callback,
                                              gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean        qlean_image_prepare_finish   (QleanImage          *self,
                                              GAsyncResult        *result,
                                              GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean        qlean_image_prepare          (QleanImage          *self,
                                              GCancellable        *cancellable,
                                              GError             **error);

G_END_DECLS
