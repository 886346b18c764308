/* qlean-errno-private.h: a failed system call as a GError
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

/* Private to the library, and to the CLI, which shares common/'s
 * run-owner records with it. */
#if !defined (QLEAN_COMPILATION) && !defined (QLEAN_TOOL_COMPILATION)
#error "qlean-errno-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include <gio/gio.h>

G_BEGIN_DECLS

/* The one place where an errno becomes a G_IO_ERROR: the code is
 * g_io_error_from_errno()'s, the message is @format's text followed by
 * ": " and g_strerror(). Pass errno saved right after the failing call
 * (anything in between, even g_strdup_printf(), may change it). */
GError   *qlean_error_new_from_errno (int          saved_errno,
                                      const char  *format,
                                      ...) G_GNUC_PRINTF (2, 3);

/* Like qlean_error_new_from_errno() into @error (which may be NULL);
 * returns FALSE, so that a failing branch can end with
 * `return qlean_set_error_from_errno (error, saved_errno, …);`. */
gboolean  qlean_set_error_from_errno (GError     **error,
                                      int          saved_errno,
                                      const char  *format,
                                      ...) G_GNUC_PRINTF (3, 4);

G_END_DECLS
