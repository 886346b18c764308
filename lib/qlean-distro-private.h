/* qlean-distro-private.h: distribution images inside the library
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <gio/gio.h>

#include "qlean-distro.h"

G_BEGIN_DECLS

/* Only amd64 guests run for now; other catalog entries fail to pull with
 * QLEAN_IMAGE_ERROR_UNSUPPORTED_ARCH. */
#define QLEAN_DISTRO_SUPPORTED_ARCH "amd64"

/* The catalog (data/images.json) */
typedef struct
{
  char          *name;
  char         **aliases;
  QleanDistro    distro;
  char          *release;
  char          *arch;
  char          *url;
  char          *checksum_url;
  GChecksumType  checksum_type;
  char          *format;
} QleanCatalogEntry;

void               qlean_catalog_entry_free   (QleanCatalogEntry *entry);
/* Parses a catalog; an array of QleanCatalogEntry. */
GPtrArray         *qlean_catalog_parse        (const char        *json,
                                               gssize             len,
                                               const char        *source,
                                               GError           **error);
/* The catalog in use: $QLEAN_IMAGE_CATALOG, else the installed one, else
 * the one in the source tree, else the one compiled in. Loaded once. */
GPtrArray         *qlean_catalog_get          (void);
/* By name or alias; @distro may be -1 for any. */
const QleanCatalogEntry *qlean_catalog_lookup (GPtrArray         *catalog,
                                               int                distro,
                                               const char        *name,
                                               GError           **error);

/* The distribution side of a QleanImage, owned by it (see qlean-image.c,
 * which forwards its extra properties and the DISTRO kind's preparation
 * here). */
typedef struct _QleanImageSource QleanImageSource;

QleanImageSource  *qlean_image_source_new     (GObject           *owner);
void               qlean_image_source_free    (QleanImageSource  *source);
void               qlean_image_source_class_init (GObjectClass   *object_class,
                                               guint              first_prop_id);
void               qlean_image_source_get_property (QleanImageSource *source,
                                               guint              prop_id,
                                               GValue            *value,
                                               GParamSpec        *pspec);
void               qlean_image_source_set_property (QleanImageSource *source,
                                               guint              prop_id,
                                               const GValue      *value,
                                               GParamSpec        *pspec);
/* Pull (download and verify, or find in the cache), then prepare. Runs
 * on a worker thread. */
gboolean           qlean_image_source_prepare (QleanImageSource  *source,
                                               char             **kernel,
                                               char             **initrd,
                                               char             **disk,
                                               char             **cmdline,
                                               GCancellable      *cancellable,
                                               GError           **error);

/* Preparation (qlean-image-prepare.c), on a worker thread. */
typedef struct
{
  char     *kernel;
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
