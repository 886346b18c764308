/* qlean-image-download-private.h: downloads, checksums and the image cache
 *
 * SPDX-License-Identifier: MIT
 *
 * One header for three files that work together on a worker thread:
 * digests and signatures (qlean-image-digest.c), the transfer
 * (qlean-image-download.c) and the cache (qlean-image-cache.c).
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-image-download-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include <gio/gio.h>

G_BEGIN_DECLS

/* Called on the downloading thread, often: keep it cheap. @total is 0
 * while unknown. */
typedef void (*QleanDownloadProgressFunc) (guint64  done,
                                           guint64  total,
                                           gpointer user_data);

/* "sha256"/"sha512" and back; -1 when unknown. */
GChecksumType  qlean_checksum_type_from_name  (const char     *name);
const char    *qlean_checksum_type_to_name    (GChecksumType   type);

/* Parses "sha256:<hex>" or "sha512:<hex>" (QLEAN_IMAGE_ERROR_INVALID_SOURCE
 * otherwise); @hex comes back in lower case. */
gboolean  qlean_digest_parse              (const char     *digest,
                                           GChecksumType  *type,
                                           char          **hex,
                                           GError        **error);

/* Finds the checksum of @file_name in a checksum file as distributions
 * publish them: "<hex>  name" (also "<hex> *name", "./name"), BSD style
 * "SHA256 (name) = <hex>", and either wrapped in a PGP signed message
 * (Fedora's CHECKSUM). @type says which algorithm to look for, or -1 for
 * any (then @found_type says which). Returns the hex digest in lower
 * case, or NULL with QLEAN_IMAGE_ERROR_NO_CHECKSUM naming @source. */
char     *qlean_checksum_file_lookup      (const char     *text,
                                           gsize           len,
                                           const char     *file_name,
                                           GChecksumType   type,
                                           GChecksumType  *found_type,
                                           const char     *source,
                                           GError        **error);

/* Checks @data with gpgv against @keyring (a binary OpenPGP keyring):
 * against the detached @signature, or, when @signature is NULL, as a
 * clear-signed message (Fedora's CHECKSUM). Returns what the signature
 * covers, the only text to read checksums from: @data itself for a
 * detached signature, the signed text without its armour for a
 * clear-signed one. Fails with QLEAN_IMAGE_ERROR_BAD_SIGNATURE naming
 * @source, or QLEAN_IMAGE_ERROR_MISSING_INPUT without gpgv or the
 * keyring. */
GBytes   *qlean_signature_verify          (const char     *keyring,
                                           GBytes         *data,
                                           GBytes         *signature,
                                           const char     *source,
                                           GCancellable   *cancellable,
                                           GError        **error);

/* The protocols a download of @url may be redirected to, as libcurl's
 * CURLOPT_REDIR_PROTOCOLS_STR takes them: "https" for an https URL
 * (never down to http), "http,https" otherwise; never file or others.
 * Redirects are followed at most five times. */
const char *qlean_download_redirect_protocols (const char *url);

/* Tests only: trust @path's CA certificate (PEM) for HTTPS, so that a
 * local HTTPS server can stand in for a distribution's. */
void      qlean_download_set_test_ca_file (const char     *path);

/* A small file (a checksum list) into memory, at most @max_size bytes. */
GBytes   *qlean_download_bytes            (const char     *url,
                                           gsize           max_size,
                                           GCancellable   *cancellable,
                                           GError        **error);

/* Downloads @url to @dest, resuming @dest.part when a previous attempt
 * left one, retrying a connection that drops mid-file, and hashing while
 * streaming. With @expected_hex, a file with another digest is removed
 * and the call fails with QLEAN_IMAGE_ERROR_CHECKSUM_MISMATCH. Only a
 * verified file is renamed to @dest, and its sidecar (from @info, whose
 * type, hex and size this fills in) is written first. The caller holds
 * the cache entry's lock. */
typedef struct _QleanCacheInfo QleanCacheInfo;

gboolean  qlean_download_file             (const char                 *url,
                                           const char                 *dest,
                                           GChecksumType               type,
                                           const char                 *expected_hex,
                                           QleanCacheInfo             *info,
                                           QleanDownloadProgressFunc   progress,
                                           gpointer                    progress_data,
                                           GCancellable               *cancellable,
                                           GError                    **error);

/* The sidecar next to a cached file (@path.qlean.json) records its size,
 * inode, modification time, digest and source, so that using a cached
 * image costs a stat() instead of hashing gigabytes. */
struct _QleanCacheInfo
{
  GChecksumType  type;
  char          *hex;
  char          *source;        /* URL or path it came from */
  char          *name;          /* the image's name */
  guint64        size;
  guint64        source_size;   /* local sources: to notice a changed file */
  gint64         source_mtime;
};

void      qlean_cache_info_clear          (QleanCacheInfo *info);
char     *qlean_cache_sidecar_path        (const char     *path);
gboolean  qlean_cache_write_sidecar       (const char     *path,
                                           const char     *sidecar_of,
                                           const QleanCacheInfo *info,
                                           GError        **error);
/* Whether @path is a cached file whose sidecar still describes it (same
 * size, inode and mtime); fills @info when it is. No hashing. */
gboolean  qlean_cache_lookup              (const char     *path,
                                           QleanCacheInfo *info);
/* Reads @path's sidecar whatever the file's state. */
gboolean  qlean_cache_read_sidecar        (const char     *path,
                                           QleanCacheInfo *info);
/* Hashes a whole file. */
char     *qlean_hash_file                 (const char     *path,
                                           GChecksumType   type,
                                           QleanDownloadProgressFunc progress,
                                           gpointer        progress_data,
                                           GCancellable   *cancellable,
                                           GError        **error);

/* An exclusive flock on @path (made if missing) that waits for other
 * threads and processes and gives up when @cancellable fires. Returns
 * the fd to pass to qlean_cache_unlock(), or -1. */
int       qlean_cache_lock                (const char     *path,
                                           GCancellable   *cancellable,
                                           GError        **error);
void      qlean_cache_unlock              (int             fd);

/* What failed on a file of the cache, for qlean_cache_set_error(). */
typedef enum
{
  QLEAN_CACHE_OP_MKDIR,
  QLEAN_CACHE_OP_CREATE,
  QLEAN_CACHE_OP_READ,
  QLEAN_CACHE_OP_RENAME,
  QLEAN_CACHE_OP_CREATE_LOCK,
  QLEAN_CACHE_OP_LOCK,
} QleanCacheOp;

/* Sets @error for @op on @path having failed with @saved_errno:
 * QLEAN_IMAGE_ERROR_NO_SPACE for a full disk or quota, saying what to
 * do about it, else the errno's own. */
void      qlean_cache_set_error           (GError        **error,
                                           int             saved_errno,
                                           QleanCacheOp    op,
                                           const char     *path);

/* Makes @dir and its parents, with a message that names it. */
gboolean  qlean_cache_mkdir               (const char     *dir,
                                           GError        **error);

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (QleanCacheInfo, qlean_cache_info_clear)

G_END_DECLS
