/* qlean-task-private.h: the opening every _async function shares
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-task-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include <gio/gio.h>

G_BEGIN_DECLS

/* A GTask for @source_object, tagged with @source_tag (the _async
 * function, which its _finish checks) and named @name (a static string,
 * shown by sysprof and GLib's debug output). */
GTask *qlean_task_new           (gpointer             source_object,
                                 GCancellable        *cancellable,
                                 GAsyncReadyCallback  callback,
                                 gpointer             user_data,
                                 gpointer             source_tag,
                                 const char          *name);

/* Hops to Qlean's worker thread, where @func runs with @task as its data
 * (at once when called there). Takes the caller's reference to @task and
 * drops it after @func returns: @func keeps one if it completes the task
 * later. */
void   qlean_task_run_in_worker (GTask               *task,
                                 GSourceFunc          func);

G_END_DECLS
