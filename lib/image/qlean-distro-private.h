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

/* The architecture of file and custom images until they are told theirs
 * (qlean_image_set_guest_arch()); catalog entries name their own. */
#define QLEAN_DISTRO_DEFAULT_ARCH "amd64"

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

/* A catalog image, as qlean_image_new_from_catalog() makes it (see
 * qlean-image.c, with the other constructors). */
QleanImage        *qlean_image_new_from_catalog_entry (const QleanCatalogEntry *entry);
/* The distribution's short name, "debian", for messages. */
const char        *qlean_distro_nick          (QleanDistro        distro);
/* Where the keyring @name of a catalog entry is: an absolute path as it
 * is, a file name in the installed data/keyrings, else in the source
 * tree's. NULL with QLEAN_IMAGE_ERROR_MISSING_INPUT when there is none. */
char              *qlean_keyring_find         (const char        *name,
                                               GError           **error);
/* Whether @eol ("YYYY-MM-DD") is today or before, in UTC. */
gboolean           qlean_eol_reached          (const char        *eol);

G_END_DECLS
