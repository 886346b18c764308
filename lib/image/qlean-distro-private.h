/* qlean-distro-private.h: distribution images inside the library
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-distro-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include <gio/gio.h>

#include "qlean-distro.h"

G_BEGIN_DECLS

/* Only amd64 guests run for now; other catalog entries fail to pull with
 * QLEAN_IMAGE_ERROR_UNSUPPORTED_ARCH. */
#define QLEAN_DISTRO_SUPPORTED_ARCH "amd64"

/* How a distribution signs the checksum file of an image. */
typedef enum
{
  QLEAN_SIGNATURE_NONE,         /* not signed (Debian's cloud images) */
  QLEAN_SIGNATURE_DETACHED,     /* a separate signature file (Ubuntu's SHA256SUMS.gpg) */
  QLEAN_SIGNATURE_CLEARSIGNED,  /* a clear-signed checksum file (Fedora's CHECKSUM) */
} QleanSignatureKind;

/* The catalog (data/images.json) */
typedef struct
{
  char               *name;
  char              **aliases;
  QleanDistro         distro;
  char               *release;
  char               *arch;           /* Debian's name: amd64, arm64, riscv64 */
  char               *url;
  char               *checksum_url;
  GChecksumType       checksum_type;
  char               *format;
  char               *eol;            /* "YYYY-MM-DD", or NULL (rolling) */
  QleanSignatureKind  signature;
  char               *signature_url;  /* detached signatures */
  char               *keyring;        /* a file name in data/keyrings, or a path */
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

/* A catalog image, as qlean_image_new_from_catalog() makes it. */
QleanImage        *qlean_image_new_from_catalog_entry (const QleanCatalogEntry *entry);
/* Where the keyring @name of a catalog entry is: an absolute path as it
 * is, a file name in the installed data/keyrings, else in the source
 * tree's. NULL with QLEAN_IMAGE_ERROR_MISSING_INPUT when there is none. */
char              *qlean_keyring_find         (const char        *name,
                                               GError           **error);
/* Whether @eol ("YYYY-MM-DD") is today or before, in UTC. */
gboolean           qlean_eol_reached          (const char        *eol);

/* The distribution side of a QleanImage, owned by it (see qlean-image.c,
 * which forwards its extra properties and the DISTRO kind's preparation
 * here). */
typedef struct _QleanImageSource QleanImageSource;

QleanImageSource  *qlean_image_source_new     (GObject           *owner);
void               qlean_image_source_free    (QleanImageSource  *source);
/* The guest architecture of a minimal, file or custom image, in Debian's
 * words (amd64, arm64, riscv64); before it is prepared. */
void               qlean_image_source_set_arch (QleanImageSource *source,
                                                const char       *arch);
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
