/* qlean-sync.c: blocking twins of async calls
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <glib/gi18n-lib.h>

#include "qlean-sync-private.h"
#include "qlean-worker-private.h"

/* Whether a blocking call may start on this thread; says why not. */
static gboolean
qlean_sync_call_allowed (void)
{
  if (!qlean_worker_is_current ())
    return TRUE;

  g_critical ("A blocking Qlean call was made on Qlean's worker thread, from a callback "
              "that runs there; it would wait forever for I/O that only that thread does. "
              "Use the call's _async variant instead.");
  return FALSE;
}

gboolean
qlean_sync_call_begin (QleanSyncCall  *call,
                       GError        **error)
{
  call->context = NULL;
  call->result = NULL;

  if (!qlean_sync_call_allowed ())
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK,
                           _("A blocking call was made on Qlean's worker thread, where it "
                             "would wait forever; the program must use the asynchronous call."));
      return FALSE;
    }

  qlean_sync_call_init (call);
  return TRUE;
}

void
qlean_sync_call_init (QleanSyncCall *call)
{
  call->result = NULL;

  if (!qlean_sync_call_allowed ())
    {
      /* No private context: the call's callback comes back on the
       * worker's, which qlean_sync_call_wait() then runs itself. */
      call->context = NULL;
      return;
    }

  call->context = g_main_context_new ();
  g_main_context_push_thread_default (call->context);
}

void
qlean_sync_call_done (GObject      *source,
                      GAsyncResult *result,
                      gpointer      user_data)
{
  QleanSyncCall *call = user_data;

  call->result = g_object_ref (result);
  if (call->context != NULL)
    g_main_context_wakeup (call->context);
}

GAsyncResult *
qlean_sync_call_wait (QleanSyncCall *call)
{
  /* On the worker (see qlean_sync_call_init()) this thread owns the
   * worker's context, so it may run it, re-entrantly. */
  GMainContext *context = call->context ? call->context : qlean_worker_get_context ();

  while (call->result == NULL)
    g_main_context_iteration (context, TRUE);

  return call->result;
}

void
qlean_sync_call_clear (QleanSyncCall *call)
{
  if (call->context == NULL)
    {
      g_clear_object (&call->result);
      return;
    }

  g_main_context_pop_thread_default (call->context);
  /* Callbacks queued by the call itself (GTask returns idle) may still sit
   * on the context; let them run so that nothing they own leaks. */
  while (g_main_context_pending (call->context))
    g_main_context_iteration (call->context, FALSE);
  g_clear_object (&call->result);
  g_clear_pointer (&call->context, g_main_context_unref);
}
