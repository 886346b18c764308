/* qlean-guest-channel.c: the host end of the qlean-guest protocol
 *
 * The channel: one per machine, on the worker thread. It reads frames
 * from the virtio-serial port and routes each to its stream, writes what
 * the streams queue, pauses reading while a GET's consumer falls behind,
 * and says HELLO until the guest program answers (again after a reset).
 * The frame format is in qlean-guest-frames.c, a stream's own life in
 * qlean-guest-stream.c.
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <signal.h>
#include <string.h>
#include <glib/gi18n-lib.h>

#include "qlean-guest-channel-internal.h"
#include "qlean-json-channel-private.h"
#include "qlean-qga-error.h"
#include "qlean-task-private.h"
#include "qlean-worker-private.h"

#define READ_CHUNK (256 * 1024)
#define HELLO_RESEND_MS 500

G_DEFINE_FINAL_TYPE (QleanGuestChannel, qlean_guest_channel, G_TYPE_OBJECT)

static void qlean_guest_channel_write_next (QleanGuestChannel *self);
static void qlean_guest_channel_read (QleanGuestChannel *self);

static gboolean qlean_guest_channel_resume_cb (gpointer user_data);
static void     qlean_guest_channel_unpause   (QleanGuestChannel *self);

/* Any thread, and never at once: the caller may be deep in a parse. */
void
qlean_guest_channel_resume_later (QleanGuestChannel *self)
{
  GSource *source = g_idle_source_new ();

  g_source_set_callback (source, qlean_guest_channel_resume_cb, self, g_object_unref);
  g_source_set_static_name (source, "[qlean] data channel resumes reading");
  g_source_attach (source, qlean_worker_get_context ());
  g_source_unref (source);
}

void
qlean_guest_channel_send_frame (QleanGuestChannel *self,
                                guint8             type,
                                guint8             fd,
                                guint32            stream,
                                gconstpointer      payload,
                                gsize              len)
{
  if (self->state == CHANNEL_CLOSED)
    return;

  g_queue_push_tail (&self->out, qlean_guest_frame_new (type, fd, stream, payload, len));
  qlean_guest_channel_write_next (self);
}

/* What the streams of a channel closed on purpose are told. */
GError *
qlean_guest_channel_closed_error (void)
{
  return g_error_new_literal (QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_DISCONNECTED,
                              _("The data channel to qlean-guest was closed"));
}

/* The channel */

static void
qlean_guest_channel_finish_hellos (QleanGuestChannel *self,
                                   const GError      *error)
{
  g_autoptr(GPtrArray) tasks = g_steal_pointer (&self->hello_tasks);

  self->hello_tasks = g_ptr_array_new_with_free_func (g_object_unref);
  qlean_clear_source (&self->hello_timer);
  qlean_clear_source (&self->hello_resend);
  g_atomic_int_set (&self->hello_pending, FALSE);

  for (guint i = 0; i < tasks->len; i++)
    {
      GTask *task = g_ptr_array_index (tasks, i);

      if (error != NULL)
        g_task_return_error (task, g_error_copy (error));
      else
        g_task_return_boolean (task, TRUE);
    }
}

/* Every open stream ends (QLEAN_GUEST_STREAM_CLOSED) with @reason and
 * is forgotten. */
static void
qlean_guest_channel_end_streams (QleanGuestChannel *self,
                                 const GError      *reason)
{
  g_autoptr(GHashTable) streams = g_steal_pointer (&self->streams);
  g_autoptr(GList) values = NULL;

  self->streams = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify) qlean_guest_stream_unref);
  values = g_hash_table_get_values (streams);
  for (GList *l = values; l != NULL; l = l->next)
    {
      QleanGuestStream *stream = l->data;

      stream->channel = NULL;
      qlean_clear_source (&stream->timer);
      stream->func (stream, QLEAN_GUEST_STREAM_CLOSED, 0, NULL, reason, stream->user_data);
    }
}

static void
qlean_guest_channel_close_in_worker (QleanGuestChannel *self,
                                     const GError      *reason)
{

  if (self->state == CHANNEL_CLOSED)
    return;

  self->state = CHANNEL_CLOSED;
  g_atomic_int_set (&self->ready, FALSE);
  g_cancellable_cancel (self->cancellable);
  g_io_stream_close (self->stream, NULL, NULL);
  qlean_guest_channel_finish_hellos (self, reason);
  qlean_guest_channel_unpause (self);

  qlean_guest_channel_end_streams (self, reason);

  /* Drop the reference reading held (see qlean_guest_channel_new). */
  g_object_unref (self);
}

static void
qlean_guest_channel_fail (QleanGuestChannel *self,
                          const char        *why)
{
  g_autoptr(GError) error = g_error_new (QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_DISCONNECTED,
                                         _("The data channel to qlean-guest closed: %s"), why);

  qlean_guest_channel_close_in_worker (self, error);
}

/* After a GET's DATA: while its consumer holds more than the limit, read
 * no further; rx_account_release() calls us back at half of it. */
static void
qlean_guest_channel_maybe_pause (QleanGuestChannel *self,
                                 QleanGuestStream  *stream)
{
  RxAccount *acc = stream->rx;

  if (stream->channel == NULL || self->paused_on != NULL ||
      qlean_guest_rx_account_get_held (acc) <= QLEAN_GUEST_RECEIVE_LIMIT)
    return;

  /* Say we wait before looking again, so that a release on another
   * thread either sees it or happened before the look. */
  g_atomic_int_set (&acc->waiting, TRUE);
  if (qlean_guest_rx_account_get_held (acc) <= QLEAN_GUEST_RECEIVE_LIMIT / 2 &&
      g_atomic_int_compare_and_exchange (&acc->waiting, TRUE, FALSE))
    return;

  g_debug ("Data channel: stream %u holds %" G_GSSIZE_FORMAT " bytes not yet taken; "
           "reading waits", stream->id, qlean_guest_rx_account_get_held (acc));
  self->paused_on = qlean_guest_stream_ref (stream);
}

static void qlean_guest_channel_parse (QleanGuestChannel *self);

/* Worker: the stream reading waited for caught up, or ended. */
static gboolean
qlean_guest_channel_resume_cb (gpointer user_data)
{
  QleanGuestChannel *self = user_data;
  QleanGuestStream *stream = self->paused_on;

  if (stream == NULL || self->state == CHANNEL_CLOSED)
    return G_SOURCE_REMOVE;

  if (stream->channel != NULL && qlean_guest_rx_account_get_held (stream->rx) > QLEAN_GUEST_RECEIVE_LIMIT / 2)
    {
      /* An early wake (the stream closed, then this): wait on. */
      g_atomic_int_set (&stream->rx->waiting, TRUE);
      if (qlean_guest_rx_account_get_held (stream->rx) > QLEAN_GUEST_RECEIVE_LIMIT / 2 ||
          !g_atomic_int_compare_and_exchange (&stream->rx->waiting, TRUE, FALSE))
        return G_SOURCE_REMOVE;
    }

  g_atomic_int_set (&stream->rx->waiting, FALSE);
  g_clear_pointer (&self->paused_on, qlean_guest_stream_unref);
  qlean_guest_channel_parse (self);
  if (self->paused_on == NULL)
    qlean_guest_channel_read (self);

  return G_SOURCE_REMOVE;
}

/* The channel starts over (reset, close): nothing waits any more. */
static void
qlean_guest_channel_unpause (QleanGuestChannel *self)
{
  if (self->paused_on == NULL)
    return;

  g_atomic_int_set (&self->paused_on->rx->waiting, FALSE);
  g_clear_pointer (&self->paused_on, qlean_guest_stream_unref);
}

static void
qlean_guest_channel_dispatch (QleanGuestChannel *self,
                              guint8             type,
                              guint8             fd,
                              guint32            id,
                              const guint8      *payload,
                              gsize              len)
{
  QleanGuestStream *stream;
  g_autoptr(GBytes) bytes = NULL;

  if (id == 0)
    {
      if (type == QLEAN_GUEST_FRAME_HELLO && len >= 12 &&
          qlean_guest_read_u64 (payload) == self->nonce)
        {
          g_atomic_int_set (&self->guest_version, qlean_guest_read_u32 (payload + 8));
          self->state = CHANNEL_READY;
          g_atomic_int_set (&self->ready, TRUE);
          qlean_guest_channel_finish_hellos (self, NULL);
        }
      return;
    }

  if (self->state != CHANNEL_READY)
    return;

  stream = g_hash_table_lookup (self->streams, GUINT_TO_POINTER (id));
  if (stream == NULL)
    return;

  stream->heard = g_get_monotonic_time ();

  if (type == QLEAN_GUEST_FRAME_CREDIT)
    {
      guint32 credit = len >= 4 ? qlean_guest_read_u32 (payload) : 0;
      gboolean was_full = qlean_guest_stream_get_unacked (stream) >= QLEAN_GUEST_WINDOW / 2;

      stream->unacked -= MIN (stream->unacked, credit);
      qlean_guest_stream_flush (stream);
      if (was_full && stream->writable_func != NULL &&
          qlean_guest_stream_get_unacked (stream) < QLEAN_GUEST_WINDOW / 2)
        stream->writable_func (stream->writable_data);
      return;
    }

  if (type == QLEAN_GUEST_FRAME_DATA)
    {
      if (!qlean_guest_stream_take_data (stream, fd, len))
        return;
      if (stream->request_type == QLEAN_GUEST_FRAME_CONNECT ||
          stream->request_type == QLEAN_GUEST_FRAME_FS)
        bytes = g_bytes_new (payload, len);
      else
        bytes = qlean_guest_rx_account_wrap (stream->rx, payload, len);
    }
  else
    bytes = g_bytes_new (payload, len);

  qlean_guest_stream_ref (stream);
  stream->func (stream, type, fd, bytes, NULL, stream->user_data);
  g_clear_pointer (&bytes, g_bytes_unref);
  if (type == QLEAN_GUEST_FRAME_DATA && stream->request_type == QLEAN_GUEST_FRAME_GET)
    qlean_guest_channel_maybe_pause (self, stream);
  qlean_guest_stream_unref (stream);
}


static gboolean
qlean_guest_channel_frame_cb (guint8        type,
                              guint8        fd,
                              guint32       stream,
                              const guint8 *payload,
                              gsize         len,
                              gpointer      user_data)
{
  QleanGuestChannel *self = user_data;

  qlean_guest_channel_dispatch (self, type, fd, stream, payload, len);
  /* Paused, the rest of the input waits in self->in. */
  return self->state != CHANNEL_CLOSED && self->paused_on == NULL;
}

/* Until the guest answers our HELLO, the input may hold anything: the
 * tail of an old frame whose length field would swallow the answer. So
 * look for the answer's exact first 24 bytes and drop all before them. */
static void
qlean_guest_channel_skip_to_answer (QleanGuestChannel *self)
{
  guint8 answer[QLEAN_GUEST_HEADER_SIZE + 8];
  const guint8 *found;

  put_u32 (answer, QLEAN_GUEST_MAGIC);
  answer[4] = QLEAN_GUEST_FRAME_HELLO;
  answer[5] = 0;
  put_u16 (answer + 6, 0);
  put_u32 (answer + 8, 0);
  put_u32 (answer + 12, 16);
  put_u64 (answer + 16, self->nonce);

  found = memmem (self->in->data, self->in->len, answer, sizeof answer);
  if (found != NULL)
    g_byte_array_remove_range (self->in, 0, found - self->in->data);
  else if (self->in->len >= sizeof answer)
    g_byte_array_remove_range (self->in, 0, self->in->len - (sizeof answer - 1));
}

static void
qlean_guest_channel_parse (QleanGuestChannel *self)
{
  g_autoptr(QleanGuestChannel) hold = g_object_ref (self);
  gsize consumed;

  if (self->state == CHANNEL_SYNCING)
    qlean_guest_channel_skip_to_answer (self);

  consumed = qlean_guest_frames_parse (self->in->data, self->in->len,
                                       qlean_guest_channel_frame_cb, self);
  if (self->state != CHANNEL_CLOSED)
    g_byte_array_remove_range (self->in, 0, consumed);
}

static void
qlean_guest_channel_read_cb (GObject      *source,
                             GAsyncResult *result,
                             gpointer      user_data)
{
  g_autoptr(QleanGuestChannel) self = user_data;
  g_autoptr(GError) error = NULL;
  gssize n;

  n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, &error);
  self->reading = FALSE;
  if (self->state == CHANNEL_CLOSED)
    return;

  if (n <= 0)
    {
      qlean_guest_channel_fail (self, n < 0 ? error->message : _("end of stream"));
      return;
    }

  /* reset() emptied the input while the read was under way: what came
   * is the start of the new input. */
  if (self->in->len != self->read_offset)
    memmove (self->in->data + self->in->len, self->in->data + self->read_offset, n);
  g_byte_array_set_size (self->in, self->in->len + n);
  qlean_guest_channel_parse (self);
  qlean_guest_channel_read (self);
}

static void
qlean_guest_channel_read (QleanGuestChannel *self)
{
  if (self->state == CHANNEL_CLOSED || self->reading || self->paused_on != NULL)
    return;

  /* Straight into the input's tail, where the frames are parsed: no
   * copy from a read buffer. Nothing grows or moves the input while the
   * read is under way (parsing waits for it), only reset() may empty it,
   * which qlean_guest_channel_read_cb() sees. */
  self->reading = TRUE;
  self->read_offset = self->in->len;
  g_byte_array_set_size (self->in, self->read_offset + READ_CHUNK);
  g_byte_array_set_size (self->in, self->read_offset);
  g_input_stream_read_async (g_io_stream_get_input_stream (self->stream),
                             self->in->data + self->read_offset, READ_CHUNK, G_PRIORITY_DEFAULT,
                             self->cancellable, qlean_guest_channel_read_cb,
                             g_object_ref (self));
}

static void
qlean_guest_channel_write_cb (GObject      *source,
                              GAsyncResult *result,
                              gpointer      user_data)
{
  g_autoptr(QleanGuestChannel) self = user_data;
  g_autoptr(GError) error = NULL;

  self->writing = FALSE;
  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, &error))
    {
      if (self->state != CHANNEL_CLOSED)
        qlean_guest_channel_fail (self, error->message);
      return;
    }

  g_bytes_unref (g_queue_pop_head (&self->out));
  qlean_guest_channel_write_next (self);
}

static void
qlean_guest_channel_write_next (QleanGuestChannel *self)
{
  GBytes *head;
  gsize len;
  gconstpointer data;

  if (self->writing || self->state == CHANNEL_CLOSED)
    return;

  head = g_queue_peek_head (&self->out);
  if (head == NULL)
    return;

  data = g_bytes_get_data (head, &len);
  self->writing = TRUE;
  g_output_stream_write_all_async (g_io_stream_get_output_stream (self->stream),
                                   data, len, G_PRIORITY_DEFAULT, self->cancellable,
                                   qlean_guest_channel_write_cb, g_object_ref (self));
}

static void
qlean_guest_channel_finalize (GObject *object)
{
  QleanGuestChannel *self = QLEAN_GUEST_CHANNEL (object);

  g_queue_clear_full (&self->out, (GDestroyNotify) g_bytes_unref);
  g_clear_pointer (&self->streams, g_hash_table_unref);
  g_clear_pointer (&self->hello_tasks, g_ptr_array_unref);
  g_clear_pointer (&self->in, g_byte_array_unref);
  g_clear_object (&self->cancellable);
  g_clear_object (&self->stream);

  G_OBJECT_CLASS (qlean_guest_channel_parent_class)->finalize (object);
}

static void
qlean_guest_channel_class_init (QleanGuestChannelClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = qlean_guest_channel_finalize;
}

static void
qlean_guest_channel_init (QleanGuestChannel *self)
{
  self->cancellable = g_cancellable_new ();
  self->in = g_byte_array_new ();
  g_queue_init (&self->out);
  self->hello_tasks = g_ptr_array_new_with_free_func (g_object_unref);
  self->streams = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify) qlean_guest_stream_unref);
  self->next_id = 1;
}

/* Worker thread only. Starts reading at once, to drain what an earlier
 * peer left; until closed, the reading keeps the channel alive. */
QleanGuestChannel *
qlean_guest_channel_new (GIOStream *stream)
{
  QleanGuestChannel *self = g_object_new (QLEAN_TYPE_GUEST_CHANNEL, NULL);

  g_assert (qlean_worker_is_current ());

  self->stream = g_object_ref (stream);
  g_object_ref (self);
  qlean_guest_channel_read (self);

  return self;
}

static gboolean
qlean_guest_channel_hello_timeout_cb (gpointer user_data)
{
  QleanGuestChannel *self = user_data;
  g_autoptr(GError) error = NULL;

  g_clear_pointer (&self->hello_timer, g_source_unref);
  error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                               _("qlean-guest did not answer on the data port"));
  qlean_guest_channel_finish_hellos (self, error);

  return G_SOURCE_REMOVE;
}

static void
qlean_guest_channel_send_hello (QleanGuestChannel *self)
{
  guint8 payload[8];

  put_u64 (payload, self->nonce);
  qlean_guest_channel_send_frame (self, QLEAN_GUEST_FRAME_HELLO, 0, 0, payload, sizeof payload);
}

/* The same HELLO again, until one is answered: the tail of a frame an
 * earlier host left half-written can swallow one whole. Every repeat is
 * in the guest's input before anything we send once it answers, so the
 * answers to the repeats (which reset the guest's streams) can never
 * overtake a request. */
static gboolean
qlean_guest_channel_hello_resend_cb (gpointer user_data)
{
  QleanGuestChannel *self = user_data;

  if (self->state != CHANNEL_SYNCING)
    {
      g_clear_pointer (&self->hello_resend, g_source_unref);
      return G_SOURCE_REMOVE;
    }

  qlean_guest_channel_send_hello (self);
  return G_SOURCE_CONTINUE;
}

/* Sends HELLO and keeps resending it until answered or @timeout_ms
 * passes; any attempt already under way is replaced. */
static void
qlean_guest_channel_start_hello (QleanGuestChannel *self,
                                 guint              timeout_ms)
{
  qlean_clear_source (&self->hello_timer);
  qlean_clear_source (&self->hello_resend);

  /* A fresh nonce for each attempt: an answer to an older one may
   * still be on its way, from a guest program that has since died. */
  self->nonce = ((guint64) g_random_int () << 32) | g_random_int ();
  g_atomic_int_set (&self->hello_pending, TRUE);
  qlean_guest_channel_send_hello (self);
  self->hello_timer = qlean_add_timeout (qlean_worker_get_context (), timeout_ms,
                                         qlean_guest_channel_hello_timeout_cb, self);
  self->hello_resend = qlean_add_timeout (qlean_worker_get_context (), HELLO_RESEND_MS,
                                          qlean_guest_channel_hello_resend_cb, self);
}

static gboolean
qlean_guest_channel_hello_in_worker (gpointer user_data)
{
  GTask *task = user_data;
  QleanGuestChannel *self = g_task_get_source_object (task);

  if (self->state == CHANNEL_CLOSED)
    {
      g_task_return_new_error (task, QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_DISCONNECTED,
                               _("The data channel to qlean-guest is closed"));
      return G_SOURCE_REMOVE;
    }

  if (self->state == CHANNEL_READY)
    {
      g_task_return_boolean (task, TRUE);
      return G_SOURCE_REMOVE;
    }

  g_ptr_array_add (self->hello_tasks, g_object_ref (task));
  if (self->hello_timer == NULL)
    qlean_guest_channel_start_hello (self, GPOINTER_TO_UINT (g_task_get_task_data (task)));

  return G_SOURCE_REMOVE;
}

void
qlean_guest_channel_hello_async (QleanGuestChannel   *self,
                                 guint                timeout_ms,
                                 GCancellable        *cancellable,
                                 GAsyncReadyCallback  callback,
                                 gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (QLEAN_IS_GUEST_CHANNEL (self));

  task = qlean_task_new (self, cancellable, callback, user_data,
                         qlean_guest_channel_hello_async, "[qlean] qlean-guest hello");
  g_task_set_task_data (task, GUINT_TO_POINTER (timeout_ms), NULL);
  qlean_task_run_in_worker (task, qlean_guest_channel_hello_in_worker);
}

gboolean
qlean_guest_channel_hello_finish (QleanGuestChannel  *self,
                                  GAsyncResult       *result,
                                  GError            **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_guest_channel_hello_async), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

gboolean
qlean_guest_channel_is_ready (QleanGuestChannel *self)
{
  return g_atomic_int_get (&self->ready);
}

gboolean
qlean_guest_channel_is_syncing (QleanGuestChannel *self)
{
  return g_atomic_int_get (&self->hello_pending);
}

guint32
qlean_guest_channel_get_guest_version (QleanGuestChannel *self)
{
  return g_atomic_int_get (&self->guest_version);
}

/* Worker thread only. The guest was reset (rebooted, or QMP
 * system_reset): the qlean-guest that knew our streams is gone, and the
 * one the next boot starts ignores everything until a HELLO. So end
 * every stream now with @reason (their EXIT or DONE is never coming),
 * forget what was read, and say HELLO again until the new guest program
 * answers or @timeout_ms passes. Until then the channel is not ready, and
 * callers fall back to the agent (see qlean_machine_exec_async()). */
void
qlean_guest_channel_reset (QleanGuestChannel *self,
                           const GError      *reason,
                           guint              timeout_ms)
{
  g_autoptr(QleanGuestChannel) hold = g_object_ref (self);

  g_assert (qlean_worker_is_current ());

  if (self->state == CHANNEL_CLOSED)
    return;

  self->state = CHANNEL_SYNCING;
  g_atomic_int_set (&self->ready, FALSE);
  g_byte_array_set_size (self->in, 0);
  qlean_guest_channel_unpause (self);

  qlean_guest_channel_end_streams (self, reason);
  /* A read waiting for a GET's consumer starts again, to find the answer. */
  qlean_guest_channel_read (self);

  /* Frames still queued for the old streams are harmless: the new guest
   * program drops everything it reads before our HELLO. */
  qlean_guest_channel_start_hello (self, timeout_ms);
}

static gboolean
qlean_guest_channel_close_cb (gpointer user_data)
{
  QleanGuestChannel *self = user_data;
  g_autoptr(GError) error = qlean_guest_channel_closed_error ();

  qlean_guest_channel_close_in_worker (self, error);
  return G_SOURCE_REMOVE;
}

void
qlean_guest_channel_close (QleanGuestChannel *self)
{
  qlean_worker_invoke (qlean_guest_channel_close_cb, g_object_ref (self), g_object_unref);
}
