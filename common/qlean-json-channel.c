/* qlean-json-channel.c: a JSON-lines connection bound to one context
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include "qlean-json-channel-private.h"
#include "qlean-json-framer-private.h"
#include "qlean-qmp-error.h"

#define READ_CHUNK (64 * 1024)

struct _QleanJsonChannel
{
  gatomicrefcount            ref_count;
  GMainContext              *context;
  GIOStream                 *stream;
  GCancellable              *cancellable;
  QleanJsonFramer           *framer;
  guint8                    *read_buffer;
  GQueue                     write_queue;
  gboolean                   writing;
  gint                       closed;
  gboolean                   started;
  GObject                   *owner;
  QleanJsonChannelLineFunc   line_func;
  QleanJsonChannelClosedFunc closed_func;
  QleanJsonChannelTraceFunc  trace_func;
  gpointer                   trace_data;
  GDestroyNotify             trace_destroy;
};

QleanJsonChannel *
qlean_json_channel_new (GIOStream                 *stream,
                        GMainContext              *context,
                        gsize                      max_line,
                        GObject                   *owner,
                        QleanJsonChannelLineFunc   line_func,
                        QleanJsonChannelClosedFunc closed_func)
{
  QleanJsonChannel *channel = g_new0 (QleanJsonChannel, 1);

  g_atomic_ref_count_init (&channel->ref_count);
  channel->context = g_main_context_ref (context);
  channel->stream = g_object_ref (stream);
  channel->cancellable = g_cancellable_new ();
  channel->framer = qlean_json_framer_new (max_line);
  channel->read_buffer = g_malloc (READ_CHUNK);
  g_queue_init (&channel->write_queue);
  /* Not a reference yet: taken in start(), dropped at close. */
  channel->owner = owner;
  channel->line_func = line_func;
  channel->closed_func = closed_func;

  return channel;
}

QleanJsonChannel *
qlean_json_channel_ref (QleanJsonChannel *channel)
{
  g_atomic_ref_count_inc (&channel->ref_count);
  return channel;
}

void
qlean_json_channel_unref (QleanJsonChannel *channel)
{
  if (!g_atomic_ref_count_dec (&channel->ref_count))
    return;

  g_queue_clear_full (&channel->write_queue, (GDestroyNotify) g_bytes_unref);
  if (channel->trace_destroy != NULL)
    channel->trace_destroy (channel->trace_data);
  g_clear_pointer (&channel->framer, qlean_json_framer_free);
  g_clear_pointer (&channel->read_buffer, g_free);
  g_clear_object (&channel->cancellable);
  g_clear_object (&channel->stream);
  g_clear_pointer (&channel->context, g_main_context_unref);
  g_free (channel);
}

GMainContext *
qlean_json_channel_get_context (QleanJsonChannel *channel)
{
  return channel->context;
}

gboolean
qlean_json_channel_is_closed (QleanJsonChannel *channel)
{
  return g_atomic_int_get (&channel->closed);
}

void
qlean_json_channel_set_trace (QleanJsonChannel          *channel,
                              QleanJsonChannelTraceFunc  trace_func,
                              gpointer                   user_data,
                              GDestroyNotify             destroy)
{
  if (channel->trace_destroy != NULL)
    channel->trace_destroy (channel->trace_data);
  channel->trace_func = trace_func;
  channel->trace_data = user_data;
  channel->trace_destroy = destroy;
}

static void qlean_json_channel_read (QleanJsonChannel *channel);

static void
qlean_json_channel_dispatch_lines (QleanJsonChannel *channel)
{
  /* A line handler completes tasks whose callbacks may run right here and
   * drop every other reference to the owner. */
  g_autoptr(GObject) owner = g_object_ref (channel->owner);

  while (!g_atomic_int_get (&channel->closed))
    {
      g_autoptr(GBytes) line = NULL;
      g_autoptr(GError) error = NULL;

      if (!qlean_json_framer_pop_line (channel->framer, &line, &error))
        {
          channel->line_func (channel->owner, NULL, error);
          continue;
        }
      if (line == NULL)
        break;

      if (channel->trace_func != NULL)
        channel->trace_func (channel->trace_data, FALSE,
                             g_bytes_get_data (line, NULL),
                             g_bytes_get_size (line));
      channel->line_func (channel->owner, line, NULL);
    }
}

static void
qlean_json_channel_read_cb (GObject      *source,
                            GAsyncResult *result,
                            gpointer      user_data)
{
  g_autoptr(QleanJsonChannel) channel = user_data;
  g_autoptr(GError) error = NULL;
  gssize n;

  n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &error);
  if (g_atomic_int_get (&channel->closed))
    return;

  if (n < 0)
    {
      g_autoptr(GError) reason = NULL;

      reason = g_error_new (QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_DISCONNECTED,
                            "Connection failed: %s", error->message);
      qlean_json_channel_close (channel, reason);
      return;
    }

  if (n == 0)
    {
      g_autoptr(GError) reason = NULL;

      reason = g_error_new_literal (QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_DISCONNECTED,
                                    "Connection closed by the peer");
      qlean_json_channel_close (channel, reason);
      return;
    }

  qlean_json_framer_push (channel->framer, channel->read_buffer, n);
  qlean_json_channel_dispatch_lines (channel);
  qlean_json_channel_read (channel);
}

static void
qlean_json_channel_read (QleanJsonChannel *channel)
{
  if (g_atomic_int_get (&channel->closed))
    return;

  g_input_stream_read_async (g_io_stream_get_input_stream (channel->stream),
                             channel->read_buffer, READ_CHUNK,
                             G_PRIORITY_DEFAULT, channel->cancellable,
                             qlean_json_channel_read_cb,
                             qlean_json_channel_ref (channel));
}

void
qlean_json_channel_start (QleanJsonChannel *channel)
{
  g_assert (g_main_context_is_owner (channel->context));

  g_object_ref (channel->owner);
  channel->started = TRUE;
  qlean_json_channel_read (channel);
}

static void qlean_json_channel_write_next (QleanJsonChannel *channel);

static void
qlean_json_channel_write_cb (GObject      *source,
                             GAsyncResult *result,
                             gpointer      user_data)
{
  g_autoptr(QleanJsonChannel) channel = user_data;
  g_autoptr(GError) error = NULL;

  channel->writing = FALSE;

  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, &error))
    {
      g_autoptr(GError) reason = NULL;

      if (g_atomic_int_get (&channel->closed))
        return;

      reason = g_error_new (QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_DISCONNECTED,
                            "Writing to the connection failed: %s", error->message);
      qlean_json_channel_close (channel, reason);
      return;
    }

  g_bytes_unref (g_queue_pop_head (&channel->write_queue));
  qlean_json_channel_write_next (channel);
}

static void
qlean_json_channel_write_next (QleanJsonChannel *channel)
{
  GBytes *head;
  gconstpointer data;
  gsize len;

  if (channel->writing || g_atomic_int_get (&channel->closed))
    return;

  head = g_queue_peek_head (&channel->write_queue);
  if (head == NULL)
    return;

  data = g_bytes_get_data (head, &len);
  channel->writing = TRUE;
  g_output_stream_write_all_async (g_io_stream_get_output_stream (channel->stream),
                                   data, len, G_PRIORITY_DEFAULT,
                                   channel->cancellable,
                                   qlean_json_channel_write_cb,
                                   qlean_json_channel_ref (channel));
}

void
qlean_json_channel_send (QleanJsonChannel *channel,
                         const char       *data,
                         gsize             len)
{
  g_assert (g_main_context_is_owner (channel->context));

  if (g_atomic_int_get (&channel->closed))
    return;

  if (channel->trace_func != NULL)
    channel->trace_func (channel->trace_data, TRUE, data, len);

  g_queue_push_tail (&channel->write_queue, g_bytes_new (data, len));
  qlean_json_channel_write_next (channel);
}

void
qlean_json_channel_close (QleanJsonChannel *channel,
                          const GError     *reason)
{
  g_autoptr(QleanJsonChannel) self = NULL;
  g_autoptr(GError) default_reason = NULL;

  g_assert (g_main_context_is_owner (channel->context));

  if (!g_atomic_int_compare_and_exchange (&channel->closed, FALSE, TRUE))
    return;

  /* The owner may drop the last reference to us from its closed handler. */
  self = qlean_json_channel_ref (channel);

  if (reason == NULL)
    {
      default_reason = g_error_new_literal (QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_DISCONNECTED,
                                            "Connection closed");
      reason = default_reason;
    }

  g_cancellable_cancel (channel->cancellable);
  g_io_stream_close (channel->stream, NULL, NULL);

  channel->closed_func (channel->owner, reason);
  if (channel->started)
    g_object_unref (channel->owner);
}

void
qlean_json_channel_invoke (QleanJsonChannel *channel,
                           GSourceFunc       func,
                           gpointer          data,
                           GDestroyNotify    destroy)
{
  g_main_context_invoke_full (channel->context, G_PRIORITY_DEFAULT, func, data, destroy);
}

GSource *
qlean_add_timeout (GMainContext *context,
                   guint         timeout_ms,
                   GSourceFunc   func,
                   gpointer      data)
{
  GSource *source = g_timeout_source_new (timeout_ms);

  g_source_set_callback (source, func, data, NULL);
  g_source_set_static_name (source, "[qlean] timeout");
  g_source_attach (source, context);

  return source;
}

GSource *
qlean_json_channel_add_timeout (QleanJsonChannel *channel,
                                guint             timeout_ms,
                                GSourceFunc       func,
                                gpointer          data)
{
  return qlean_add_timeout (channel->context, timeout_ms, func, data);
}

/* A cancellable source calls a GCancellableSourceFunc, which takes the
 * cancellable first; callers give a GSourceFunc. */
typedef struct
{
  GSourceFunc func;
  gpointer    data;
} CancelClosure;

static gboolean
qlean_json_channel_cancelled_cb (GCancellable *cancellable,
                                 gpointer      user_data)
{
  CancelClosure *closure = user_data;

  return closure->func (closure->data);
}

GSource *
qlean_json_channel_add_cancel (QleanJsonChannel *channel,
                               GCancellable     *cancellable,
                               GSourceFunc       func,
                               gpointer          data)
{
  return qlean_add_cancel (channel->context, cancellable, func, data);
}

GSource *
qlean_add_cancel (GMainContext *context,
                  GCancellable *cancellable,
                  GSourceFunc   func,
                  gpointer      data)
{
  CancelClosure *closure;
  GSource *source;

  if (cancellable == NULL)
    return NULL;

  closure = g_new (CancelClosure, 1);
  closure->func = func;
  closure->data = data;

  source = g_cancellable_source_new (cancellable);
  g_source_set_callback (source, G_SOURCE_FUNC (qlean_json_channel_cancelled_cb),
                         closure, g_free);
  g_source_set_static_name (source, "[qlean] cancelled");
  g_source_attach (source, context);

  return source;
}

void
qlean_clear_source (GSource **source)
{
  if (*source == NULL)
    return;

  g_source_destroy (*source);
  g_clear_pointer (source, g_source_unref);
}

void
qlean_destroy_source (gpointer source)
{
  g_source_destroy (source);
  g_source_unref (source);
}
