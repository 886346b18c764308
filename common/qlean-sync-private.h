/* qlean-sync-private.h: blocking twins of async calls
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-sync-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include <gio/gio.h>

G_BEGIN_DECLS

/* Runs an async call to completion on a private main context pushed as
 * the thread-default one, the way GIO's own sync wrappers do. It never
 * iterates the caller's context, so it works with no main loop running
 * and from any thread, provided the I/O behind the call is bound to a
 * context that some other thread runs (Qlean's worker thread). */
typedef struct
{
  GMainContext *context;
  GAsyncResult *result;
} QleanSyncCall;

/* Blocking twins start with this. On Qlean's worker thread a twin would
 * wait for I/O that only that thread can do, and hang forever: there it
 * refuses instead, with a critical (the caller has a bug) and @error set,
 * and returns FALSE; @call is then left empty and must not be waited on. */
gboolean      qlean_sync_call_begin (QleanSyncCall  *call,
                                     GError        **error);
/* The same for twins that cannot fail early: on the worker thread it
 * says so (the same critical), and the call then completes by running
 * the worker's own context re-entrantly rather than deadlocking. */
void          qlean_sync_call_init  (QleanSyncCall *call);
void          qlean_sync_call_done  (GObject       *source,
                                     GAsyncResult  *result,
                                     gpointer       user_data);
GAsyncResult *qlean_sync_call_wait  (QleanSyncCall *call);
void          qlean_sync_call_clear (QleanSyncCall *call);

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (QleanSyncCall, qlean_sync_call_clear)

G_END_DECLS
