/* qlean-archive-private.h: the machine archive format (a small ustar)
 *
 * SPDX-License-Identifier: MIT
 *
 * An exported machine is a POSIX ustar archive of regular files with
 * fixed short names, in this order:
 *
 *   manifest.json   always, first
 *   disk.qcow2      when the machine has a disk
 *   kernel          when the machine boots a kernel of its own (format 2)
 *   initrd          with that kernel's initrd, when it has one (format 2)
 *   state           when the machine was running (a QEMU migration stream)
 *   SHA256SUMS      always, last: `sha256sum` lines over every other member
 *
 * The reader is written for archives from strangers: it accepts nothing
 * else (no directories, links, devices, pax or GNU headers, no path with a
 * "/" or "..", no unknown or repeated member, nothing after SHA256SUMS),
 * caps every size, checks every header checksum and every member's
 * SHA-256, and reports a truncated archive. It only parses: what to do
 * with a member's bytes is up to the caller's callbacks, so it can be
 * fuzzed on a memory stream (tests/unit/fuzz-archive.c).
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-archive-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include <gio/gio.h>

G_BEGIN_DECLS

/* Format 2 carries the kernel and initrd a machine boots as members;
 * format 1 named them as paths on the exporting host, which an import
 * must not open (see qlean_machine_import_full_async). */
#define QLEAN_ARCHIVE_FORMAT_VERSION 2

#define QLEAN_ARCHIVE_MANIFEST "manifest.json"
#define QLEAN_ARCHIVE_DISK     "disk.qcow2"
#define QLEAN_ARCHIVE_STATE    "state"
#define QLEAN_ARCHIVE_KERNEL   "kernel"
#define QLEAN_ARCHIVE_INITRD   "initrd"
#define QLEAN_ARCHIVE_SUMS     "SHA256SUMS"

/* Caps on what the reader accepts. */
#define QLEAN_ARCHIVE_MAX_MANIFEST (1024 * 1024)
#define QLEAN_ARCHIVE_MAX_SUMS     (64 * 1024)
#define QLEAN_ARCHIVE_MAX_MEMBER   ((guint64) 1 << 40)   /* 1 TiB */

/* Writing */

typedef struct _QleanArchiveWriter QleanArchiveWriter;

QleanArchiveWriter *qlean_archive_writer_new        (GOutputStream       *output);
/* Adds @name with the contents of the local file @path. */
gboolean            qlean_archive_writer_add_file   (QleanArchiveWriter  *writer,
                                                     const char          *name,
                                                     const char          *path,
                                                     GCancellable        *cancellable,
                                                     GError             **error);
gboolean            qlean_archive_writer_add_bytes  (QleanArchiveWriter  *writer,
                                                     const char          *name,
                                                     GBytes              *contents,
                                                     GCancellable        *cancellable,
                                                     GError             **error);
/* Adds SHA256SUMS over everything added so far, and the end marker. */
gboolean            qlean_archive_writer_finish     (QleanArchiveWriter  *writer,
                                                     GCancellable        *cancellable,
                                                     GError             **error);
void                qlean_archive_writer_free       (QleanArchiveWriter  *writer);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (QleanArchiveWriter, qlean_archive_writer_free)

/* Reading */

typedef struct
{
  /* A member starts; SHA256SUMS is checked by the reader and never
   * passed on. */
  gboolean (*begin) (const char    *name,
                     guint64        size,
                     gpointer       user_data,
                     GError       **error);
  gboolean (*data)  (const guint8  *data,
                     gsize          len,
                     gpointer       user_data,
                     GError       **error);
  gboolean (*end)   (const char    *name,
                     gpointer       user_data,
                     GError       **error);
  /* Optional, before end(): the SHA-256 (hex) of the bytes passed to
   * data(). It matches SHA256SUMS only once qlean_archive_read()
   * returned TRUE; before that, it says nothing about the archive. */
  void     (*digest) (const char    *name,
                      const char    *sha256,
                      gpointer       user_data);
} QleanArchiveReaderFuncs;

/* Reads a whole archive from @input, calling @funcs for each member.
 * Returns TRUE only when every check passed, every checksum matched and
 * the archive ended properly; a caller that wrote members out must then
 * throw them away on FALSE. Errors are QLEAN_MACHINE_ERROR_BAD_ARCHIVE,
 * or the stream's and the callbacks' own. */
gboolean qlean_archive_read (GInputStream                  *input,
                             const QleanArchiveReaderFuncs *funcs,
                             gpointer                       user_data,
                             GCancellable                  *cancellable,
                             GError                       **error);

/* Whether @name may be a member of an archive (one of the names above). */
gboolean qlean_archive_member_name_allowed (const char *name);

G_END_DECLS
