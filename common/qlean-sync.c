/* qlean-sync.c: blocking twins of async calls
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include "qlean-sync-private.h"

void
qlean_sync_call_init (QleanSyncCall *call)
{
  call->context = g_main_context_new ();
  call->result = NULL;
  g_main_context_push_thread_default (call->context);
}

void
qlean_sync_call_done (GObject      *source,
                      GAsyncResult *result,
                      gpointer      user_data)
{
  QleanSyncCall *call = user_data;

  call->result = g_object_ref (result);
  g_main_context_wakeup (call->context);
}

GAsyncResult *
qlean_sync_call_wait (QleanSyncCall *call)
{
  while (call->result == NULL)
    g_main_context_iteration (call->context, TRUE);

  return call->result;
}

void
qlean_sync_call_clear (QleanSyncCall *call)
{
  if (call->context == NULL)
    return;

  g_main_context_pop_thread_default (call->context);
  /* Callbacks queued by the call itself (GTask returns idle) may still sit
   * on the context; let them run so that nothing they own leaks. */
  while (g_main_context_pending (call->context))
    g_main_context_iteration (call->context, FALSE);
  g_clear_object (&call->result);
  g_clear_pointer (&call->context, g_main_context_unref);
}
