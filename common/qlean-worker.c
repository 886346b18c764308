/* qlean-worker.c: the thread all of Qlean's socket I/O runs on
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include "qlean-worker-private.h"

static GMainContext *worker_context;
static GThread *worker_thread;

static gpointer
qlean_worker_thread_func (gpointer data)
{
  GMainLoop *loop = data;

  g_main_context_push_thread_default (g_main_loop_get_context (loop));
  g_main_loop_run (loop);

  return NULL;
}

static gboolean
qlean_worker_started_cb (gpointer data)
{
  GMutex *mutex = ((gpointer *) data)[0];
  GCond *cond = ((gpointer *) data)[1];
  gboolean *started = ((gpointer *) data)[2];

  g_mutex_lock (mutex);
  *started = TRUE;
  g_cond_signal (cond);
  g_mutex_unlock (mutex);

  return G_SOURCE_REMOVE;
}

GMainContext *
qlean_worker_get_context (void)
{
  static gsize initialized = 0;

  if (g_once_init_enter (&initialized))
    {
      GMainContext *context = g_main_context_new ();
      GMainLoop *loop = g_main_loop_new (context, FALSE);
      GMutex mutex;
      GCond cond;
      gboolean started = FALSE;
      gpointer data[] = { &mutex, &cond, &started };
      GSource *source;

      g_mutex_init (&mutex);
      g_cond_init (&cond);

      /* Wait until the loop owns the context: from then on
       * g_main_context_invoke() from other threads always queues. */
      source = g_idle_source_new ();
      g_source_set_callback (source, qlean_worker_started_cb, data, NULL);
      g_source_attach (source, context);
      g_source_unref (source);

      worker_context = context;
      worker_thread = g_thread_new ("qlean-worker", qlean_worker_thread_func, loop);

      g_mutex_lock (&mutex);
      while (!started)
        g_cond_wait (&cond, &mutex);
      g_mutex_unlock (&mutex);

      g_mutex_clear (&mutex);
      g_cond_clear (&cond);

      g_once_init_leave (&initialized, 1);
    }

  return worker_context;
}

gboolean
qlean_worker_is_current (void)
{
  return worker_thread != NULL && g_thread_self () == worker_thread;
}

void
qlean_worker_invoke (GSourceFunc    func,
                     gpointer       data,
                     GDestroyNotify destroy)
{
  g_main_context_invoke_full (qlean_worker_get_context (), G_PRIORITY_DEFAULT,
                              func, data, destroy);
}
