/* qlean-json-channel-private.h: a JSON-lines connection bound to one context
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-json-channel-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include <gio/gio.h>

G_BEGIN_DECLS

/* The transport both protocol clients share: it reads a GIOStream on one
 * GMainContext, frames what it reads into lines, queues writes so that
 * they never interleave, and reports a close exactly once. Everything
 * except new/ref/unref must run on the channel's context.
 *
 * While open, the channel holds a reference on its owner, so an owner
 * lives until the peer closes or the owner calls close: the way
 * jsonrpc-glib and GDBusConnection keep a connection alive while I/O is
 * pending. */
typedef struct _QleanJsonChannel QleanJsonChannel;

/* @line is NULL and @error set when a line broke the size cap; the
 * channel stays open and goes on with the next line. */
typedef void (*QleanJsonChannelLineFunc)   (GObject      *owner,
                                            GBytes       *line,
                                            const GError *error);
typedef void (*QleanJsonChannelClosedFunc) (GObject      *owner,
                                            const GError *error);
/* Called with every line read or written, for transcripts. */
typedef void (*QleanJsonChannelTraceFunc)  (gpointer      user_data,
                                            gboolean      outgoing,
                                            const char   *data,
                                            gsize         len);

QleanJsonChannel *qlean_json_channel_new          (GIOStream                 *stream,
                                                   GMainContext              *context,
                                                   gsize                      max_line,
                                                   GObject                   *owner,
                                                   QleanJsonChannelLineFunc   line_func,
                                                   QleanJsonChannelClosedFunc closed_func);
QleanJsonChannel *qlean_json_channel_ref          (QleanJsonChannel          *channel);
void              qlean_json_channel_unref        (QleanJsonChannel          *channel);
GMainContext     *qlean_json_channel_get_context  (QleanJsonChannel          *channel);
void              qlean_json_channel_start        (QleanJsonChannel          *channel);
void              qlean_json_channel_send         (QleanJsonChannel          *channel,
                                                   const char                *data,
                                                   gsize                      len);
void              qlean_json_channel_close        (QleanJsonChannel          *channel,
                                                   const GError              *reason);
gboolean          qlean_json_channel_is_closed    (QleanJsonChannel          *channel);
void              qlean_json_channel_set_trace    (QleanJsonChannel          *channel,
                                                   QleanJsonChannelTraceFunc  trace_func,
                                                   gpointer                   user_data,
                                                   GDestroyNotify             destroy);
void              qlean_json_channel_invoke       (QleanJsonChannel          *channel,
                                                   GSourceFunc                func,
                                                   gpointer                   data,
                                                   GDestroyNotify             destroy);
GSource          *qlean_json_channel_add_timeout  (QleanJsonChannel          *channel,
                                                   guint                      timeout_ms,
                                                   GSourceFunc                func,
                                                   gpointer                   data);
GSource          *qlean_json_channel_add_cancel   (QleanJsonChannel          *channel,
                                                   GCancellable              *cancellable,
                                                   GSourceFunc                func,
                                                   gpointer                   data);

/* A timeout on @context; the caller owns the returned reference. */
GSource          *qlean_add_timeout (GMainContext          *context,
                                                   guint                  timeout_ms,
                                                   GSourceFunc            func,
                                                   gpointer               data);
/* Calls @func once @cancellable is cancelled, on @context; NULL when
 * @cancellable is NULL. The caller owns the returned reference. */
GSource          *qlean_add_cancel  (GMainContext          *context,
                                     GCancellable          *cancellable,
                                     GSourceFunc            func,
                                     gpointer               data);
/* Destroys @source and drops a reference: a GDestroyNotify. */
void              qlean_destroy_source (gpointer               source);
/* Destroys *source, if set, and drops our reference to it. */
void              qlean_clear_source              (GSource                  **source);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (QleanJsonChannel, qlean_json_channel_unref)

G_END_DECLS
