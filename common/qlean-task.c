/* qlean-task.c: the opening every _async function shares
 *
 * Most of Qlean's _async functions begin alike: a GTask with the
 * function as its source tag and a name, then a hop to the worker thread
 * where the I/O lives. Written once here, so that no _async function
 * forgets the tag its _finish checks.
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include "qlean-task-private.h"
#include "qlean-worker-private.h"

GTask *
qlean_task_new (gpointer             source_object,
                GCancellable        *cancellable,
                GAsyncReadyCallback  callback,
                gpointer             user_data,
                gpointer             source_tag,
                const char          *name)
{
  GTask *task = g_task_new (source_object, cancellable, callback, user_data);

  g_task_set_source_tag (task, source_tag);
  g_task_set_name (task, name);

  return task;
}

void
qlean_task_run_in_worker (GTask       *task,
                          GSourceFunc  func)
{
  qlean_worker_invoke (func, task, g_object_unref);
}
