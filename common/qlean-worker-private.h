/* qlean-worker-private.h: the thread all of Qlean's socket I/O runs on
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-worker-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include <glib.h>

G_BEGIN_DECLS

/* One process-wide thread running its own GMainContext, as
 * GDBusConnection's shared worker does. QMP and agent I/O, QEMU child
 * watches and protocol timeouts live there, so they make progress whether
 * or not the application iterates its own main context, and a blocking
 * call on any thread can wait on a private context without deadlock. The
 * thread starts on first use and lives until the process exits, which is
 * also what keeps PR_SET_PDEATHSIG children (bound to the thread that
 * forked them) alive exactly as long as the process. */
GMainContext *qlean_worker_get_context (void);
gboolean      qlean_worker_is_current  (void);
void          qlean_worker_invoke      (GSourceFunc    func,
                                        gpointer       data,
                                        GDestroyNotify destroy);

G_END_DECLS
