/* qlean-util-private.h: small helpers shared by the library
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* g_set_str() arrived in GLib 2.76; we support 2.74. */
gboolean  qlean_set_str            (char       **str_pointer,
                                    const char  *new_str);
/* The last @n_lines lines of a text file, or NULL if unreadable. */
char     *qlean_file_tail          (const char  *path,
                                    guint        n_lines);
/* Bytes as text fit for an error message: lossy UTF-8, trimmed. */
char     *qlean_bytes_to_message   (GBytes      *bytes);
/* Removes a directory tree without following symlinks. */
gboolean  qlean_rm_rf              (const char  *path,
                                    GError     **error);

G_END_DECLS
