/* qlean-tree-tar-private.h: directory trees as tar streams, for agent transfers
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-tree-tar-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include <gio/gio.h>

G_BEGIN_DECLS

/* The most a GNU long name, long link or pax header may hold, and the
 * most directories one stream may make: what a guest sends is bounded. */
#define QLEAN_TREE_TAR_MAX_NAME  (64 * 1024)
#define QLEAN_TREE_TAR_MAX_DIRS  (1024 * 1024)

/* Writes the local directory @root as a tar stream to @output, for a
 * guest's tar to unpack (GNU tar or busybox's): "./" and the names below
 * it, owned by root, modes and whole-second times, symbolic links as
 * links, special files left out. Each directory comes after its
 * contents, so that unpacking it last sets its mode and time, even with
 * busybox's tar, which sets them as it meets them. */
gboolean qlean_tree_tar_write   (GFile          *root,
                                 GOutputStream  *output,
                                 GCancellable   *cancellable,
                                 GError        **error);

/* Unpacks the tar stream @input, made by a guest and untrusted, into the
 * local directory @dest (made when missing; never a symbolic link).
 * Nothing is created or written outside @dest: absolute names and ".."
 * are refused, every directory is opened without following links (a
 * link the stream planted is never written through), files are written
 * to new files renamed into place, device nodes and FIFOs are skipped,
 * and hard links must name a file of the same stream. Modes are ANDed
 * with @mode_mask; directories get theirs and their times at the end.
 * Errors: G_IO_ERROR_INVALID_DATA for a stream refused, or the host's. */
gboolean qlean_tree_tar_extract (GInputStream   *input,
                                 const char     *dest,
                                 guint32         mode_mask,
                                 GCancellable   *cancellable,
                                 GError        **error);

G_END_DECLS
