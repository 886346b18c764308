/* qlean-image-source-private.h: the distribution side of an image
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-image-source-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include <gio/gio.h>

#include "qlean-distro-private.h"
#include "qlean-image.h"

G_BEGIN_DECLS

/* What a distribution or custom image adds to a QleanImage, owned by it.
 * Its fields are here, not hidden in qlean-image-source.c, because the
 * image's constructors and property getters (qlean-image.c) fill and
 * read them, and the pull (qlean-image-source.c) uses them: the fields
 * "set once by a constructor" are never written afterwards, the others
 * only under the lock. */
typedef struct _QleanImageSource QleanImageSource;

struct _QleanImageSource
{
  GObject       *owner;         /* not a reference: the source lives in it */
  GMainContext  *context;       /* where progress is reported */

  /* Set once by a constructor. */
  QleanDistro    distro;
  char          *catalog_name;  /* NULL for custom images */
  char          *release;
  char         **aliases;
  char          *arch;
  char          *url;           /* before the mirror */
  char          *checksum_url;
  GChecksumType  checksum_type;
  char          *digest_hex;    /* custom images with a digest */
  char          *local_path;    /* custom images from a file */
  char          *format;        /* NULL: look at the file */
  char          *file_name;
  char          *cache_name;
  char          *eol;
  QleanSignatureKind signature;
  char          *signature_url;
  char          *keyring;
  GError        *deferred_error;

  GMutex         lock;          /* guards what follows */
  char          *mirror;
  char          *cache_dir;
  guint64        done;
  guint64        total;
  gint64         last_report;
  gboolean       cloud_init;
  gint           emit_pending;  /* atomic */
  gint           eol_warned;    /* atomic */
};

QleanImageSource  *qlean_image_source_new     (GObject           *owner);
void               qlean_image_source_free    (QleanImageSource  *source);
/* The guest architecture of a minimal, file or custom image, in Debian's
 * words (amd64, arm64, riscv64); before it is prepared. */
void               qlean_image_source_set_arch (QleanImageSource *source,
                                                const char       *arch);
/* @upstream (the source's url or checksum_url) with the mirror applied:
 * mirrors hold each image's files under a directory named after it. */
char              *qlean_image_source_dup_url (QleanImageSource  *source,
                                               const char        *upstream);
/* Where the verified download is (or will be) in the cache. */
char              *qlean_image_source_dup_cache_file (QleanImageSource *source);
/* Pull (download and verify, or find in the cache), then prepare. Runs
 * on a worker thread. */
gboolean           qlean_image_source_prepare (QleanImageSource  *source,
                                               char             **kernel,
                                               char             **initrd,
                                               char             **disk,
                                               char             **cmdline,
                                               GCancellable      *cancellable,
                                               GError           **error);

/* The source of @self (qlean-image.c). */
QleanImageSource  *qlean_image_get_source     (QleanImage        *self);
/* Notifies QleanImage:download-progress and emits QleanImage::progress;
 * the source calls it on the creator's context (qlean-image.c, where
 * the property and the signal are). */
void               qlean_image_emit_progress  (QleanImage        *self,
                                               guint64            done,
                                               guint64            total);

G_END_DECLS
