/* qlean-guest-backend-private.h: the guest I/O done over the stock agent
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-guest-backend-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include <gio/gio.h>

#include "qlean-machine.h"

G_BEGIN_DECLS

/* Blocking (a worker or task thread): runs the qlean-guest file system
 * operation @op (a QleanGuestFsOp, with its PATH, PATH2, MODE, FLAGS and
 * MTIME)
 * through the QEMU guest agent alone, and answers as qlean-guest would:
 * *@done gets the DONE payload, @listing the DIRENT entries of a
 * READDIR, and a failure the same G_IO_ERROR code and message form. */
gboolean qlean_guest_backend_agent_fs (QleanMachine  *machine,
                                       guint32        op,
                                       const char    *path,
                                       const char    *path2,
                                       gboolean       has_mode,
                                       guint32        mode,
                                       guint32        flags,
                                       gint64         mtime_ns,
                                       const char    *verb,
                                       GBytes       **done,
                                       GByteArray    *listing,
                                       GCancellable  *cancellable,
                                       GError       **error);

G_END_DECLS
