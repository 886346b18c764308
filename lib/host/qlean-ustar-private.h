/* qlean-ustar-private.h: the ustar header, shared by Qlean's two tar codes
 *
 * SPDX-License-Identifier: MIT
 *
 * The header layout and the few field helpers that both the machine
 * archive (qlean-archive.c: a fixed handful of regular files) and the
 * tree tar of agent transfers (qlean-tree-tar.c: whole directory trees
 * to and from a guest) need. Only those two files include it: the short
 * layout names would clash anywhere else.
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-ustar-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include <glib.h>

G_BEGIN_DECLS

#define BLOCK 512

/* ustar header layout (POSIX.1-1988) */
#define H_NAME      0
#define H_NAME_LEN  100
#define H_MODE      100
#define H_UID       108
#define H_GID       116
#define H_SIZE      124
#define H_MTIME     136
#define H_CHKSUM    148
#define H_TYPEFLAG  156
#define H_LINKNAME  157
#define H_MAGIC     257
#define H_VERSION   263
#define H_UNAME     265
#define H_GNAME     297
#define H_DEVMAJOR  329
#define H_DEVMINOR  337
#define H_PREFIX    345
#define H_PREFIX_LEN 155

/* @value in @len - 1 octal digits and a NUL; callers keep it in range. */
void     qlean_ustar_put_octal     (guint8        *field,
                                    gsize          len,
                                    guint64        value);
/* A size field: octal up to 8 GiB, base-256 beyond. */
void     qlean_ustar_put_size      (guint8        *field,
                                    guint64        size);
/* The header's checksum, its own field counted as spaces; old tars
 * summed signed bytes, so readers accept either. */
guint    qlean_ustar_checksum      (const guint8  *header,
                                    gboolean       is_signed);
gboolean qlean_ustar_is_zero_block (const guint8  *block);
/* An octal field no larger than @max; FALSE for anything else. */
gboolean qlean_ustar_parse_octal   (const guint8  *field,
                                    gsize          len,
                                    guint64        max,
                                    guint64       *value);
/* A size field, octal or base-256, no larger than @max. */
gboolean qlean_ustar_parse_size    (const guint8  *field,
                                    guint64        max,
                                    guint64       *size);

G_END_DECLS
