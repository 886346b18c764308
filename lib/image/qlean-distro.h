/* qlean-distro.h: distributions' cloud images and custom images
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#if !defined(QLEAN_INSIDE) && !defined(QLEAN_COMPILATION)
# error "Only <qlean/qlean.h> can be included directly."
#endif

#include <gio/gio.h>

#include "qlean-image.h"
#include "qlean-version-macros.h"

G_BEGIN_DECLS

/**
 * QleanDistro:
 * @QLEAN_DISTRO_DEBIAN: Debian's cloud images.
 * @QLEAN_DISTRO_UBUNTU: Ubuntu's cloud images.
 * @QLEAN_DISTRO_FEDORA: Fedora Cloud Base.
 * @QLEAN_DISTRO_ARCH: Arch Linux's cloud image.
 * @QLEAN_DISTRO_CUSTOM: an image from a URL or a file, made with
 *   [ctor@Image.new_from_url].
 *
 * Which distribution an image comes from.
 *
 * Since: 0.1
 */
typedef enum
{
  QLEAN_DISTRO_DEBIAN,
  QLEAN_DISTRO_UBUNTU,
  QLEAN_DISTRO_FEDORA,
  QLEAN_DISTRO_ARCH,
  QLEAN_DISTRO_CUSTOM,
} QleanDistro;

QLEAN_AVAILABLE_IN_0_1
QleanImage  *qlean_image_new_from_distro        (QleanDistro          distro,
                                                 const char          *name);
QLEAN_AVAILABLE_IN_0_1
QleanImage  *qlean_image_new_from_catalog       (const char          *name,
                                                 GError             **error);
QLEAN_AVAILABLE_IN_0_1
QleanImage  *qlean_image_new_from_url           (const char          *url_or_path,
                                                 const char          *digest,
                                                 GError             **error);
QLEAN_AVAILABLE_IN_0_1
GPtrArray   *qlean_image_list_available         (void);

QLEAN_AVAILABLE_IN_0_1
QleanDistro  qlean_image_get_distro             (QleanImage          *self);
QLEAN_AVAILABLE_IN_0_1
const char  *qlean_image_get_arch               (QleanImage          *self);
QLEAN_AVAILABLE_IN_0_1
char        *qlean_image_dup_url                (QleanImage          *self);
QLEAN_AVAILABLE_IN_0_1
char        *qlean_image_dup_mirror             (QleanImage          *self);
QLEAN_AVAILABLE_IN_0_1
void         qlean_image_set_mirror             (QleanImage          *self,
                                                 const char          *mirror);
QLEAN_AVAILABLE_IN_0_1
double       qlean_image_get_download_progress  (QleanImage          *self);
QLEAN_AVAILABLE_IN_0_1
char        *qlean_image_get_cached_path        (QleanImage          *self);

QLEAN_AVAILABLE_IN_0_1
void         qlean_image_pull_async             (QleanImage          *self,
                                                 GCancellable        *cancellable,
                                                 GAsyncReadyCallback  callback,
                                                 gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean     qlean_image_pull_finish            (QleanImage          *self,
                                                 GAsyncResult        *result,
                                                 GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean     qlean_image_pull                   (QleanImage          *self,
                                                 GCancellable        *cancellable,
                                                 GError             **error);

QLEAN_AVAILABLE_IN_0_1
void         qlean_image_verify_async           (QleanImage          *self,
                                                 GCancellable        *cancellable,
                                                 GAsyncReadyCallback  callback,
                                                 gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean     qlean_image_verify_finish          (QleanImage          *self,
                                                 GAsyncResult        *result,
                                                 GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean     qlean_image_verify                 (QleanImage          *self,
                                                 GCancellable        *cancellable,
                                                 GError             **error);

G_END_DECLS
