/* qlean-qga-client.c: a client for the QEMU guest agent
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>
#include <glib/gi18n-lib.h>

#include "qlean-json-channel-private.h"
#include "qlean-json-framer-private.h"
#include "qlean-qga-client-private.h"
#include "qlean-qga-error.h"
#include "qlean-qga-reply-private.h"
#include "qlean-sync-private.h"
#include "qlean-task-private.h"
#include "qlean-worker-private.h"

/**
 * QleanQgaClient:
 *
 * A connection to the QEMU guest agent over its virtio-serial channel.
 *
 * The agent's protocol has no way to tell a fresh reply from one that a
 * timed-out command left behind, so the client follows libvirt: before
 * the first command, and again after any timeout, cancellation or garbled
 * reply, it writes the 0xFF byte (which resets the agent's parser) and
 * `guest-sync-delimited` with a fresh random id, and discards everything
 * it reads until the agent echoes that id behind its own 0xFF marker.
 * Commands go one at a time; others queue behind them.
 *
 * As with [class@QmpClient], socket I/O runs on Qlean's worker thread,
 * callbacks on the caller's thread-default context, and the connection
 * keeps the client alive until it is closed.
 *
 * Since: 0.1
 */

#define DEFAULT_TIMEOUT_MS 30000
#define SENTINEL 0xFF

/* The agent's echo of guest-sync-delimited is a short line. */
#define SYNC_REPLY_MAX   4096

typedef enum
{
  ITEM_COMMAND,
  ITEM_SYNC,      /* an explicit sync_async() */
  ITEM_RAW,       /* the whole reply, error or not (the agent proxy's) */
} ItemKind;

typedef enum
{
  ITEM_QUEUED,
  ITEM_SYNCING,
  ITEM_SENT,
} ItemPhase;

typedef struct
{
  QleanQgaClient *self;
  ItemKind        kind;
  ItemPhase       phase;
  char           *command;
  char           *id;
  JsonObject     *arguments;
  gboolean        no_reply;
  gsize           reply_max;  /* the longest reply line this command can need */
  guint           timeout_ms;
  GTask          *task;
  GSource        *timeout_source;
  GSource        *cancel_source;
} Item;

struct _QleanQgaClient
{
  GObject           parent_instance;

  GIOStream        *stream;
  GMainContext     *signal_context;
  QleanJsonChannel *channel;
  guint             timeout_ms;

  /* Only touched on the channel's context. */
  GQueue            queue;
  Item             *in_flight;
  gboolean          needs_sync;
  gint64            sync_id;
  gint              next_id;
  gboolean          started;
};

G_DEFINE_FINAL_TYPE (QleanQgaClient, qlean_qga_client, G_TYPE_OBJECT)

G_DEFINE_QUARK (qlean-qga-error-quark, qlean_qga_error)

enum {
  PROP_0,
  PROP_STREAM,
  PROP_TIMEOUT,
  N_PROPS
};

enum {
  SIGNAL_CLOSED,
  N_SIGNALS
};

static GParamSpec *properties[N_PROPS];
static guint signals[N_SIGNALS];

static void qlean_qga_client_pump           (QleanQgaClient *self);
static void qlean_qga_client_send_in_flight (QleanQgaClient *self);

static void
item_disarm (Item *item)
{
  qlean_clear_source (&item->timeout_source);
  qlean_clear_source (&item->cancel_source);
}

static void
item_free (Item *item)
{
  item_disarm (item);
  g_clear_object (&item->task);
  g_clear_pointer (&item->arguments, json_object_unref);
  g_free (item->command);
  g_free (item->id);
  g_free (item);
}

static const char *
item_name (Item *item)
{
  return item->kind == ITEM_SYNC ? "guest-sync-delimited" : item->command;
}

/* Completes the item in flight with @error (or @reply), and sends the
 * next one. */
static void
qlean_qga_client_finish_in_flight (QleanQgaClient *self,
                                   JsonNode       *reply,
                                   GError         *error)
{
  /* Completing the task may run its callback here, which may drop the
   * last other reference to us. */
  g_autoptr(QleanQgaClient) hold = g_object_ref (self);
  Item *item = g_steal_pointer (&self->in_flight);

  g_assert (item != NULL);

  item_disarm (item);
  if (error != NULL)
    g_task_return_error (item->task, error);
  else if (item->kind == ITEM_SYNC)
    g_task_return_boolean (item->task, TRUE);
  else
    g_task_return_pointer (item->task,
                           reply ? json_node_ref (reply) : json_node_new (JSON_NODE_NULL),
                           (GDestroyNotify) json_node_unref);
  item_free (item);

  qlean_qga_client_pump (self);
}

typedef struct
{
  QleanQgaClient *self;
  GError         *error;
} ClosedEmission;

static gboolean
qlean_qga_client_emit_closed_idle (gpointer user_data)
{
  ClosedEmission *emission = user_data;

  g_signal_emit (emission->self, signals[SIGNAL_CLOSED], 0, emission->error);

  return G_SOURCE_REMOVE;
}

static void
closed_emission_free (gpointer user_data)
{
  ClosedEmission *emission = user_data;

  g_object_unref (emission->self);
  g_error_free (emission->error);
  g_free (emission);
}

static void
qlean_qga_client_closed_cb (GObject      *owner,
                            const GError *error)
{
  QleanQgaClient *self = QLEAN_QGA_CLIENT (owner);
  g_autoptr(GError) reason = NULL;
  ClosedEmission *emission;
  Item *item;
  GSource *source;

  /* The shared channel reports in QMP's domain; ::closed is documented
   * in ours. */
  if (error->domain == QLEAN_QGA_ERROR)
    reason = g_error_copy (error);
  else
    reason = g_error_new_literal (QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_DISCONNECTED, error->message);

  if ((item = g_steal_pointer (&self->in_flight)) != NULL)
    {
      item_disarm (item);
      /* guest-shutdown never answers: the channel closing as the guest
       * goes away is its success. */
      if (item->no_reply && item->phase == ITEM_SENT)
        g_task_return_pointer (item->task, json_node_new (JSON_NODE_NULL),
                               (GDestroyNotify) json_node_unref);
      else
        g_task_return_new_error (item->task, QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_DISCONNECTED,
                                 _("Guest agent command “%s” failed: %s"),
                                 item_name (item), error->message);
      item_free (item);
    }

  while ((item = g_queue_pop_head (&self->queue)) != NULL)
    {
      item_disarm (item);
      g_task_return_new_error (item->task, QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_DISCONNECTED,
                               _("Guest agent command “%s” failed: %s"),
                               item_name (item), error->message);
      item_free (item);
    }

  if (self->signal_context == qlean_json_channel_get_context (self->channel))
    {
      g_signal_emit (self, signals[SIGNAL_CLOSED], 0, reason);
      return;
    }

  /* Deliver on the creator's context; see QleanQmpClient for why not
   * g_main_context_invoke(). */
  emission = g_new0 (ClosedEmission, 1);
  emission->self = g_object_ref (self);
  emission->error = g_steal_pointer (&reason);
  source = g_idle_source_new ();
  g_source_set_callback (source, qlean_qga_client_emit_closed_idle,
                         emission, closed_emission_free);
  g_source_set_static_name (source, "[qlean] QGA closed");
  g_source_attach (source, self->signal_context);
  g_source_unref (source);
}

/* The in-flight reply is garbled or late: fail the call, and make sure
 * the next one first finds the stream's true position again. */
static void
qlean_qga_client_fail_in_flight_and_resync (QleanQgaClient *self,
                                            GError         *error)
{
  self->needs_sync = TRUE;
  qlean_qga_client_finish_in_flight (self, NULL, error);
}


static void
qlean_qga_client_handle_sync_line (QleanQgaClient *self,
                                   const char     *data,
                                   gsize           len)
{
  g_autoptr(JsonObject) message = NULL;
  const char *marker;
  JsonNode *ret;

  /* Whatever precedes the agent's 0xFF is debris from before the sync. */
  marker = memrchr (data, SENTINEL, len);
  if (marker == NULL)
    return;

  marker++;
  /* Longer than any echo: not ours, and not worth parsing. */
  if (len - (marker - data) > SYNC_REPLY_MAX)
    return;
  message = qlean_json_parse_object (marker, len - (marker - data), NULL);
  if (message == NULL)
    return;

  ret = json_object_get_member (message, "return");
  if (ret == NULL || json_node_get_value_type (ret) != G_TYPE_INT64 ||
      json_node_get_int (ret) != self->sync_id)
    return;

  self->needs_sync = FALSE;

  if (self->in_flight->kind == ITEM_SYNC)
    {
      qlean_qga_client_finish_in_flight (self, NULL, NULL);
      return;
    }

  qlean_qga_client_send_in_flight (self);
}

static void
qlean_qga_client_line_cb (GObject      *owner,
                          GBytes       *line,
                          const GError *line_error)
{
  QleanQgaClient *self = QLEAN_QGA_CLIENT (owner);
  g_autoptr(JsonObject) message = NULL;
  g_autoptr(GError) error = NULL;
  Item *item = self->in_flight;
  const char *data;
  JsonNode *id_node;
  gsize len;

  if (item == NULL)
    {
      /* Nobody asked: a late reply, or noise. The next command syncs. */
      self->needs_sync = TRUE;
      return;
    }

  if (line_error != NULL)
    {
      if (item->phase == ITEM_SENT)
        qlean_qga_client_fail_in_flight_and_resync (self,
            g_error_new (QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_PROTOCOL,
                         _("Guest agent command “%s” failed: the agent broke the protocol: %s"),
                         item_name (item), line_error->message));
      return;
    }

  data = g_bytes_get_data (line, &len);

  if (item->phase == ITEM_SYNCING)
    {
      qlean_qga_client_handle_sync_line (self, data, len);
      return;
    }

  if (item->phase != ITEM_SENT)
    return;

  if (!qlean_qga_reply_size_ok (item_name (item), item->reply_max, data, len, &error))
    {
      qlean_qga_client_fail_in_flight_and_resync (self, g_steal_pointer (&error));
      return;
    }

  message = qlean_json_parse_object (data, len, &error);
  if (message == NULL)
    {
      qlean_qga_client_fail_in_flight_and_resync (self,
          g_error_new (QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_PROTOCOL,
                       _("Guest agent command “%s” failed: the agent broke the protocol: %s"),
                       item_name (item), error->message));
      return;
    }

  /* The agent echoes our id; one that differs belongs to an older call. */
  id_node = json_object_get_member (message, "id");
  if (id_node != NULL &&
      (json_node_get_value_type (id_node) != G_TYPE_STRING ||
       g_strcmp0 (json_node_get_string (id_node), item->id) != 0))
    {
      g_debug ("Guest agent reply with a foreign id ignored");
      return;
    }

  if (item->kind == ITEM_RAW)
    {
      g_autoptr(JsonNode) whole = json_node_new (JSON_NODE_OBJECT);

      /* Without our id: the proxy's client gave none of its own. */
      json_object_remove_member (message, "id");
      json_node_take_object (whole, g_steal_pointer (&message));
      qlean_qga_client_finish_in_flight (self, whole, NULL);
      return;
    }

  if (json_object_has_member (message, "error"))
    {
      qlean_qga_client_finish_in_flight (self, NULL,
                                         qlean_qga_reply_error (item_name (item), message));
      return;
    }

  if (!json_object_has_member (message, "return"))
    {
      qlean_qga_client_fail_in_flight_and_resync (self,
          g_error_new (QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_PROTOCOL,
                       _("Guest agent command “%s” failed: the reply has neither “return” nor “error”"),
                       item_name (item)));
      return;
    }

  {
    g_autoptr(JsonNode) ret = json_node_copy (json_object_get_member (message, "return"));

    /* The reply goes to the caller's thread: drop the rest of the parse
     * here first, so that its objects have a single owner there (see
     * qlean_json_object_copy()). */
    g_clear_pointer (&message, json_object_unref);
    qlean_qga_client_finish_in_flight (self, ret, NULL);
  }
}

static void
qlean_qga_client_send_in_flight (QleanQgaClient *self)
{
  Item *item = self->in_flight;
  g_autoptr(JsonObject) message = json_object_new ();
  g_autofree char *line = NULL;
  gsize len;

  json_object_set_string_member (message, "execute", item->command);
  if (item->arguments != NULL)
    json_object_set_object_member (message, "arguments", json_object_ref (item->arguments));
  json_object_set_string_member (message, "id", item->id);

  item->phase = ITEM_SENT;
  line = qlean_json_object_to_line (message, &len);
  qlean_json_channel_send (self->channel, line, len);
}

static void
qlean_qga_client_send_sync (QleanQgaClient *self)
{
  g_autoptr(JsonObject) message = json_object_new ();
  g_autoptr(JsonObject) arguments = json_object_new ();
  g_autofree char *line = NULL;
  const char sentinel = (char) SENTINEL;
  gsize len;

  /* Random, so that an echo left over from an earlier sync never
   * matches. The agent takes a 64-bit int; stay positive and small
   * enough for any JSON reader. */
  self->sync_id = g_random_int_range (1, G_MAXINT32);
  json_object_set_int_member (arguments, "id", self->sync_id);
  json_object_set_string_member (message, "execute", "guest-sync-delimited");
  json_object_set_object_member (message, "arguments", g_steal_pointer (&arguments));

  self->in_flight->phase = ITEM_SYNCING;
  line = qlean_json_object_to_line (message, &len);
  qlean_json_channel_send (self->channel, &sentinel, 1);
  qlean_json_channel_send (self->channel, line, len);
}

static gboolean
qlean_qga_client_timeout_cb (gpointer user_data)
{
  Item *item = user_data;
  QleanQgaClient *self = item->self;
  GError *error;

  g_clear_pointer (&item->timeout_source, g_source_unref);
  g_assert (self->in_flight == item);

  if (item->phase == ITEM_SYNCING)
    error = g_error_new (G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                         _("The guest agent did not answer guest-sync-delimited within %u ms "
                           "(before “%s”); is qemu-ga running in the guest?"),
                         item->timeout_ms, item_name (item));
  else
    error = g_error_new (G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                         _("Guest agent command “%s” got no reply within %u ms"),
                         item_name (item), item->timeout_ms);

  qlean_qga_client_fail_in_flight_and_resync (self, error);

  return G_SOURCE_REMOVE;
}

static gboolean
qlean_qga_client_cancelled_cb (gpointer user_data)
{
  Item *item = user_data;
  QleanQgaClient *self = item->self;

  g_clear_pointer (&item->cancel_source, g_source_unref);

  if (self->in_flight == item)
    {
      /* Its reply may still come; the resync will skip it. */
      qlean_qga_client_fail_in_flight_and_resync (self,
          g_error_new (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                       _("Guest agent command “%s” was cancelled"), item_name (item)));
      return G_SOURCE_REMOVE;
    }

  g_queue_remove (&self->queue, item);
  item_disarm (item);
  g_task_return_new_error (item->task, G_IO_ERROR, G_IO_ERROR_CANCELLED,
                           _("Guest agent command “%s” was cancelled"), item_name (item));
  item_free (item);

  return G_SOURCE_REMOVE;
}

static void
qlean_qga_client_pump (QleanQgaClient *self)
{
  Item *item;

  if (self->in_flight != NULL || qlean_json_channel_is_closed (self->channel))
    return;

  item = g_queue_pop_head (&self->queue);
  if (item == NULL)
    return;

  self->in_flight = item;
  if (item->timeout_ms > 0)
    {
      /* The timeout runs from the moment the item reaches the agent, not
       * from when it was queued behind others. */
      item->timeout_source = qlean_json_channel_add_timeout (self->channel, item->timeout_ms,
                                                             qlean_qga_client_timeout_cb, item);
    }

  if (self->needs_sync || item->kind == ITEM_SYNC)
    qlean_qga_client_send_sync (self);
  else
    qlean_qga_client_send_in_flight (self);
}

static gboolean
qlean_qga_client_submit_in_context (gpointer user_data)
{
  Item *item = user_data;
  g_autoptr(QleanQgaClient) self = item->self;

  if (!self->started)
    {
      self->started = TRUE;
      qlean_json_channel_start (self->channel);
    }

  if (qlean_json_channel_is_closed (self->channel))
    {
      g_task_return_new_error (item->task, QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_DISCONNECTED,
                               _("Guest agent command “%s” failed: the connection is closed"),
                               item_name (item));
      item_free (item);
      return G_SOURCE_REMOVE;
    }

  if (g_task_return_error_if_cancelled (item->task))
    {
      item_free (item);
      return G_SOURCE_REMOVE;
    }

  item->cancel_source = qlean_json_channel_add_cancel (self->channel,
                                                       g_task_get_cancellable (item->task),
                                                       qlean_qga_client_cancelled_cb, item);
  g_queue_push_tail (&self->queue, item);
  qlean_qga_client_pump (self);

  return G_SOURCE_REMOVE;
}

static void
qlean_qga_client_submit (QleanQgaClient      *self,
                         ItemKind             kind,
                         const char          *command,
                         JsonObject          *arguments,
                         gboolean             no_reply,
                         guint                timeout_ms,
                         GCancellable        *cancellable,
                         gpointer             source_tag,
                         GAsyncReadyCallback  callback,
                         gpointer             user_data)
{
  Item *item = g_new0 (Item, 1);

  item->self = self;
  item->kind = kind;
  item->phase = ITEM_QUEUED;
  item->command = g_strdup (command);
  item->id = g_strdup_printf ("qlean-%d", g_atomic_int_add (&self->next_id, 1));
  /* A copy: the worker must not share the caller's objects (see
   * qlean_json_object_copy()). */
  item->arguments = arguments ? qlean_json_object_copy (arguments) : NULL;
  item->no_reply = no_reply;
  item->reply_max = qlean_qga_reply_max_for (command, arguments);
  item->timeout_ms = timeout_ms ? timeout_ms : qlean_qga_client_get_timeout (self);
  item->task = qlean_task_new (self, cancellable, callback, user_data,
                               source_tag, "[qlean] guest agent command");

  /* Until the channel is started, nothing else keeps the client alive. */
  g_object_ref (self);
  qlean_json_channel_invoke (self->channel, qlean_qga_client_submit_in_context, item, NULL);
}

static void
qlean_qga_client_finalize (GObject *object)
{
  QleanQgaClient *self = QLEAN_QGA_CLIENT (object);

  g_assert (self->in_flight == NULL);
  g_queue_clear_full (&self->queue, (GDestroyNotify) item_free);
  g_clear_pointer (&self->channel, qlean_json_channel_unref);
  g_clear_pointer (&self->signal_context, g_main_context_unref);
  g_clear_object (&self->stream);

  G_OBJECT_CLASS (qlean_qga_client_parent_class)->finalize (object);
}

static void
qlean_qga_client_get_property (GObject    *object,
                               guint       prop_id,
                               GValue     *value,
                               GParamSpec *pspec)
{
  QleanQgaClient *self = QLEAN_QGA_CLIENT (object);

  switch (prop_id)
    {
    case PROP_STREAM:
      g_value_set_object (value, self->stream);
      break;
    case PROP_TIMEOUT:
      g_value_set_uint (value, qlean_qga_client_get_timeout (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
qlean_qga_client_set_property (GObject      *object,
                               guint         prop_id,
                               const GValue *value,
                               GParamSpec   *pspec)
{
  QleanQgaClient *self = QLEAN_QGA_CLIENT (object);

  switch (prop_id)
    {
    case PROP_STREAM:
      self->stream = g_value_dup_object (value);
      break;
    case PROP_TIMEOUT:
      qlean_qga_client_set_timeout (self, g_value_get_uint (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
qlean_qga_client_constructed (GObject *object)
{
  QleanQgaClient *self = QLEAN_QGA_CLIENT (object);

  G_OBJECT_CLASS (qlean_qga_client_parent_class)->constructed (object);

  g_return_if_fail (self->stream != NULL);

  self->signal_context = g_main_context_ref_thread_default ();
  self->channel = qlean_json_channel_new (self->stream,
                                          qlean_worker_get_context (),
                                          QLEAN_QGA_MAX_MESSAGE,
                                          object,
                                          qlean_qga_client_line_cb,
                                          qlean_qga_client_closed_cb);
}

static void
qlean_qga_client_class_init (QleanQgaClientClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->constructed = qlean_qga_client_constructed;
  object_class->finalize = qlean_qga_client_finalize;
  object_class->get_property = qlean_qga_client_get_property;
  object_class->set_property = qlean_qga_client_set_property;

  /**
   * QleanQgaClient:stream:
   *
   * The connection to the agent's virtio-serial chardev, usually a
   * #GSocketConnection on its unix socket.
   *
   * Since: 0.1
   */
  properties[PROP_STREAM] =
    g_param_spec_object ("stream", NULL, NULL,
                         G_TYPE_IO_STREAM,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * QleanQgaClient:timeout:
   *
   * How long, in milliseconds, a command may wait for its reply (counted
   * from when it reaches the head of the queue) before it fails with
   * %G_IO_ERROR_TIMED_OUT; 0 waits forever.
   *
   * On the client of a #QleanMachine (qlean_machine_dup_qga()) it also
   * bounds every wait on qlean-guest, the machine's other program in the
   * guest: a file call (read, write, metadata, uploads, downloads, ...)
   * fails with %G_IO_ERROR_TIMED_OUT when qlean-guest sends nothing for
   * it this long, and so does the start of a command; during
   * qlean_machine_copy() and qlean_machine_remove_dir_all() qlean-guest
   * says several times a second that it is still at work (an older
   * qlean-guest does not, and those two calls then wait until it is
   * done). Not bounded: a running command, which may stay silent as long
   * as it likes (give it its own timeout with
   * qlean_guest_launcher_set_timeout()). A call that timed out may still
   * complete in the guest if it wakes up.
   *
   * Since: 0.1
   */
  properties[PROP_TIMEOUT] =
    g_param_spec_uint ("timeout", NULL, NULL,
                       0, G_MAXUINT, DEFAULT_TIMEOUT_MS,
                       G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * QleanQgaClient::closed:
   * @self: the client
   * @error: why the channel closed
   *
   * Emitted once, when the channel to the agent closes for any reason.
   *
   * Since: 0.1
   */
  signals[SIGNAL_CLOSED] =
    g_signal_new ("closed",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 1,
                  G_TYPE_ERROR);
}

static void
qlean_qga_client_init (QleanQgaClient *self)
{
  self->timeout_ms = DEFAULT_TIMEOUT_MS;
  self->needs_sync = TRUE;
  g_queue_init (&self->queue);
}

/**
 * qlean_qga_client_new:
 * @stream: a connection to the agent's chardev
 *
 * Creates a client on @stream. Nothing is sent until the first command,
 * which is preceded by a sync.
 *
 * Returns: (transfer full): a new #QleanQgaClient
 *
 * Since: 0.1
 */
QleanQgaClient *
qlean_qga_client_new (GIOStream *stream)
{
  g_return_val_if_fail (G_IS_IO_STREAM (stream), NULL);

  return g_object_new (QLEAN_TYPE_QGA_CLIENT, "stream", stream, NULL);
}

/**
 * qlean_qga_client_get_timeout:
 * @self: a #QleanQgaClient
 *
 * Returns: the default per-command timeout in milliseconds, 0 for none
 *
 * Since: 0.1
 */
guint
qlean_qga_client_get_timeout (QleanQgaClient *self)
{
  g_return_val_if_fail (QLEAN_IS_QGA_CLIENT (self), 0);

  return g_atomic_int_get (&self->timeout_ms);
}

/**
 * qlean_qga_client_set_timeout:
 * @self: a #QleanQgaClient
 * @timeout_ms: milliseconds, or 0 to wait forever
 *
 * Sets how long later commands wait for their reply.
 *
 * Since: 0.1
 */
void
qlean_qga_client_set_timeout (QleanQgaClient *self,
                              guint           timeout_ms)
{
  g_return_if_fail (QLEAN_IS_QGA_CLIENT (self));

  if ((guint) g_atomic_int_exchange (&self->timeout_ms, timeout_ms) != timeout_ms)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_TIMEOUT]);
}

static gboolean
qlean_qga_client_close_in_context (gpointer user_data)
{
  QleanQgaClient *self = user_data;
  g_autoptr(GError) error = NULL;

  error = g_error_new_literal (QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_DISCONNECTED,
                               _("the guest agent connection was closed"));
  if (!self->started)
    {
      /* Never read from, so the channel holds no reference to drop. */
      self->started = TRUE;
      qlean_json_channel_start (self->channel);
    }
  qlean_json_channel_close (self->channel, error);

  return G_SOURCE_REMOVE;
}

/**
 * qlean_qga_client_close:
 * @self: a #QleanQgaClient
 *
 * Closes the channel. Queued and pending commands fail with
 * %QLEAN_QGA_ERROR_DISCONNECTED, except a pending `guest-shutdown`, which
 * succeeds; [signal@QgaClient::closed] is emitted once.
 *
 * Since: 0.1
 */
void
qlean_qga_client_close (QleanQgaClient *self)
{
  g_return_if_fail (QLEAN_IS_QGA_CLIENT (self));

  qlean_json_channel_invoke (self->channel, qlean_qga_client_close_in_context,
                             g_object_ref (self), g_object_unref);
}

/**
 * qlean_qga_client_is_closed:
 * @self: a #QleanQgaClient
 *
 * Returns: whether the channel is closed
 *
 * Since: 0.1
 */
gboolean
qlean_qga_client_is_closed (QleanQgaClient *self)
{
  g_return_val_if_fail (QLEAN_IS_QGA_CLIENT (self), TRUE);

  return qlean_json_channel_is_closed (self->channel);
}

static gboolean
qlean_qga_client_notify_shutdown_in_context (gpointer user_data)
{
  QleanQgaClient *self = user_data;
  Item *item = self->in_flight;

  if (item != NULL && item->no_reply && item->phase == ITEM_SENT)
    qlean_qga_client_finish_in_flight (self, NULL, NULL);

  return G_SOURCE_REMOVE;
}

static gboolean
qlean_qga_client_notify_reset_in_context (gpointer user_data)
{
  QleanQgaClient *self = user_data;
  Item *item = self->in_flight;

  /* Whatever the old agent had read is lost, and what it wrote may still
   * come: find the stream's position again before the next command. */
  self->needs_sync = TRUE;

  if (item == NULL || item->phase == ITEM_QUEUED)
    return G_SOURCE_REMOVE;

  if (item->phase == ITEM_SYNCING)
    {
      /* The old agent may have swallowed the sync; a new one with a fresh
       * id reaches the agent the next boot starts. */
      qlean_qga_client_send_sync (self);
    }
  else if (item->no_reply)
    {
      /* guest-shutdown with mode "reboot": the reset is its success. */
      qlean_qga_client_finish_in_flight (self, NULL, NULL);
    }
  else
    {
      /* Its reply is never coming: fail it now, not at its timeout. */
      qlean_qga_client_finish_in_flight (self, NULL,
          g_error_new (QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_FAILED,
                       _("Guest agent command “%s” failed: the guest was reset before the agent answered"),
                       item_name (item)));
    }

  return G_SOURCE_REMOVE;
}

/* Called when QMP reports RESET: the guest rebooted, or was reset, and
 * its agent restarts with no memory of what we sent. */
void
qlean_qga_client_notify_reset (QleanQgaClient *self)
{
  g_return_if_fail (QLEAN_IS_QGA_CLIENT (self));

  qlean_json_channel_invoke (self->channel, qlean_qga_client_notify_reset_in_context,
                             g_object_ref (self), g_object_unref);
}

/**
 * qlean_qga_client_notify_shutdown:
 * @self: a #QleanQgaClient
 *
 * Tells the client the guest has begun to shut down (QMP sent
 * `SHUTDOWN`), which completes a pending `guest-shutdown`: the agent never
 * answers it.
 *
 * Since: 0.1
 */
void
qlean_qga_client_notify_shutdown (QleanQgaClient *self)
{
  g_return_if_fail (QLEAN_IS_QGA_CLIENT (self));

  qlean_json_channel_invoke (self->channel, qlean_qga_client_notify_shutdown_in_context,
                             g_object_ref (self), g_object_unref);
}

/**
 * qlean_qga_client_sync_async:
 * @self: a #QleanQgaClient
 * @timeout_ms: how long to wait for the agent, 0 for the client's timeout
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when the agent answered or the wait failed
 * @user_data: data for @callback
 *
 * Resynchronises with the agent now, whether or not it seems needed:
 * the way to wait until an agent answers.
 *
 * Since: 0.1
 */
void
qlean_qga_client_sync_async (QleanQgaClient      *self,
                             guint                timeout_ms,
                             GCancellable        *cancellable,
                             GAsyncReadyCallback  callback,
                             gpointer             user_data)
{
  g_return_if_fail (QLEAN_IS_QGA_CLIENT (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  qlean_qga_client_submit (self, ITEM_SYNC, "guest-sync-delimited", NULL, FALSE,
                           timeout_ms, cancellable, qlean_qga_client_sync_async,
                           callback, user_data);
}

/**
 * qlean_qga_client_sync_finish:
 * @self: a #QleanQgaClient
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_qga_client_sync_async().
 *
 * Returns: %TRUE when the agent answered
 *
 * Since: 0.1
 */
gboolean
qlean_qga_client_sync_finish (QleanQgaClient  *self,
                              GAsyncResult    *result,
                              GError         **error)
{
  g_return_val_if_fail (QLEAN_IS_QGA_CLIENT (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_qga_client_sync_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_qga_client_sync:
 * @self: a #QleanQgaClient
 * @timeout_ms: how long to wait, 0 for the client's timeout
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_qga_client_sync_async().
 *
 * Returns: %TRUE when the agent answered
 *
 * Since: 0.1
 */
gboolean
qlean_qga_client_sync (QleanQgaClient  *self,
                       guint            timeout_ms,
                       GCancellable    *cancellable,
                       GError         **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_QGA_CLIENT (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!qlean_sync_call_begin (&call, error))
    return FALSE;
  qlean_qga_client_sync_async (self, timeout_ms, cancellable, qlean_sync_call_done, &call);

  return qlean_qga_client_sync_finish (self, qlean_sync_call_wait (&call), error);
}

/**
 * qlean_qga_client_execute_async:
 * @self: a #QleanQgaClient
 * @command: the agent command, e.g. `guest-info`
 * @arguments: (nullable): its arguments
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the reply
 * @user_data: data for @callback
 *
 * Queues @command. May be called from any thread; @callback runs on the
 * calling thread's thread-default main context.
 *
 * Since: 0.1
 */
void
qlean_qga_client_execute_async (QleanQgaClient      *self,
                                const char          *command,
                                JsonObject          *arguments,
                                GCancellable        *cancellable,
                                GAsyncReadyCallback  callback,
                                gpointer             user_data)
{
  g_return_if_fail (QLEAN_IS_QGA_CLIENT (self));
  g_return_if_fail (command != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  qlean_qga_client_submit (self, ITEM_COMMAND, command, arguments, FALSE, 0,
                           cancellable, qlean_qga_client_execute_async,
                           callback, user_data);
}

void
qlean_qga_client_execute_raw_async (QleanQgaClient      *self,
                                    const char          *command,
                                    JsonObject          *arguments,
                                    GAsyncReadyCallback  callback,
                                    gpointer             user_data)
{
  qlean_qga_client_submit (self, ITEM_RAW, command, arguments, FALSE, 0, NULL,
                           qlean_qga_client_execute_raw_async, callback, user_data);
}

JsonObject *
qlean_qga_client_execute_raw_finish (QleanQgaClient  *self,
                                     GAsyncResult    *result,
                                     GError         **error)
{
  g_autoptr(JsonNode) whole = NULL;

  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_qga_client_execute_raw_async), NULL);

  whole = g_task_propagate_pointer (G_TASK (result), error);
  if (whole == NULL)
    return NULL;

  return json_object_ref (json_node_get_object (whole));
}

/**
 * qlean_qga_client_execute_finish:
 * @self: a #QleanQgaClient
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_qga_client_execute_async(). Each typed call has a _finish
 * of its own.
 *
 * Returns: (transfer full): the `return` member of the reply, or %NULL
 *   with @error set
 *
 * Since: 0.1
 */
JsonNode *
qlean_qga_client_execute_finish (QleanQgaClient  *self,
                                 GAsyncResult    *result,
                                 GError         **error)
{
  g_return_val_if_fail (QLEAN_IS_QGA_CLIENT (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_qga_client_execute_async), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return qlean_qga_client_command_finish (self, result, error);
}

/**
 * qlean_qga_client_execute:
 * @self: a #QleanQgaClient
 * @command: the agent command
 * @arguments: (nullable): its arguments
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_qga_client_execute_async().
 *
 * Returns: (transfer full): the `return` member of the reply, or %NULL
 *   with @error set
 *
 * Since: 0.1
 */
JsonNode *
qlean_qga_client_execute (QleanQgaClient  *self,
                          const char      *command,
                          JsonObject      *arguments,
                          GCancellable    *cancellable,
                          GError         **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_QGA_CLIENT (self), NULL);
  g_return_val_if_fail (command != NULL, NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!qlean_sync_call_begin (&call, error))
    return NULL;
  qlean_qga_client_execute_async (self, command, arguments, cancellable,
                                  qlean_sync_call_done, &call);

  return qlean_qga_client_execute_finish (self, qlean_sync_call_wait (&call), error);
}

void
qlean_qga_client_command_async (QleanQgaClient      *self,
                                gpointer             source_tag,
                                const char          *command,
                                JsonObject          *arguments,
                                GCancellable        *cancellable,
                                GAsyncReadyCallback  callback,
                                gpointer             user_data)
{
  qlean_qga_client_submit (self, ITEM_COMMAND, command, arguments, FALSE, 0,
                           cancellable, source_tag, callback, user_data);
}

void
qlean_qga_client_command_no_reply_async (QleanQgaClient      *self,
                                         gpointer             source_tag,
                                         const char          *command,
                                         JsonObject          *arguments,
                                         GCancellable        *cancellable,
                                         GAsyncReadyCallback  callback,
                                         gpointer             user_data)
{
  qlean_qga_client_submit (self, ITEM_COMMAND, command, arguments, TRUE, 0,
                           cancellable, source_tag, callback, user_data);
}

JsonNode *
qlean_qga_client_command_finish (QleanQgaClient  *self,
                                 GAsyncResult    *result,
                                 GError         **error)
{
  return g_task_propagate_pointer (G_TASK (result), error);
}

void
qlean_qga_client_set_trace (QleanQgaClient            *self,
                            QleanJsonChannelTraceFunc  trace_func,
                            gpointer                   user_data,
                            GDestroyNotify             destroy)
{
  g_return_if_fail (QLEAN_IS_QGA_CLIENT (self));

  qlean_json_channel_set_trace (self->channel, trace_func, user_data, destroy);
}
