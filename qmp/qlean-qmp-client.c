/* qlean-qmp-client.c: a client for the QEMU Machine Protocol
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <glib/gi18n-lib.h>

#include "qlean-json-channel-private.h"
#include "qlean-json-framer-private.h"
#include "qlean-qmp-client-private.h"
#include "qlean-qmp-error.h"
#include "qlean-sync-private.h"
#include "qlean-task-private.h"
#include "qlean-worker-private.h"

/**
 * QleanQmpClient:
 *
 * A connection to a QEMU monitor speaking QMP.
 *
 * The client reads QEMU's greeting, negotiates capabilities, then runs
 * commands with [method@QmpClient.execute_async]: each carries an id and
 * replies are matched by it, so any number of commands may be in flight.
 * Asynchronous events are re-emitted as the detailed
 * [signal@QmpClient::event] signal, e.g. `event::SHUTDOWN`.
 *
 * All socket I/O runs on Qlean's worker thread; completion callbacks run
 * on the thread-default main context of the thread that started the call,
 * and signals on the thread-default context of the thread that created
 * the client. When the connection closes or the peer breaks the protocol,
 * every pending call fails once with %QLEAN_QMP_ERROR_DISCONNECTED or
 * %QLEAN_QMP_ERROR_PROTOCOL and [signal@QmpClient::closed] is emitted
 * once. The connection stays open until the peer closes it or
 * [method@QmpClient.close] is called, and it keeps the client alive
 * until then.
 *
 * Since: 0.1
 */

#define DEFAULT_TIMEOUT_MS 30000

typedef enum
{
  STATE_AWAIT_GREETING,
  STATE_AWAIT_CAPABILITIES,
  STATE_READY,
  STATE_CLOSED,
} ClientState;

typedef struct
{
  QleanQmpClient *self;
  guint64         id;
  char           *command;
  GTask          *task;
  GSource        *timeout_source;
  GSource        *cancel_source;
} PendingCall;

struct _QleanQmpClient
{
  GObject           parent_instance;

  GIOStream        *stream;
  GMainContext     *signal_context;
  QleanJsonChannel *channel;
  guint             timeout_ms;

  /* Only touched on the channel's context. */
  ClientState       state;
  GTask            *init_task;
  GSource          *init_timeout;
  GSource          *init_cancel;
  JsonObject       *greeting;
  GHashTable       *pending;
  guint64           next_id;
};

static void qlean_qmp_client_async_initable_iface_init (GAsyncInitableIface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (QleanQmpClient, qlean_qmp_client, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_ASYNC_INITABLE,
                                                      qlean_qmp_client_async_initable_iface_init))

enum {
  PROP_0,
  PROP_STREAM,
  PROP_TIMEOUT,
  N_PROPS
};

enum {
  SIGNAL_EVENT,
  SIGNAL_CLOSED,
  N_SIGNALS
};

static GParamSpec *properties[N_PROPS];
static guint signals[N_SIGNALS];

static void
pending_call_disarm (PendingCall *call)
{
  qlean_clear_source (&call->timeout_source);
  qlean_clear_source (&call->cancel_source);
}

static void
pending_call_free (PendingCall *call)
{
  pending_call_disarm (call);
  g_clear_object (&call->task);
  g_free (call->command);
  g_free (call);
}

/* Removes the call from the table and hands its task back. */
static GTask *
qlean_qmp_client_take_call (QleanQmpClient *self,
                            guint64         id)
{
  PendingCall *call = g_hash_table_lookup (self->pending, &id);
  GTask *task;

  if (call == NULL)
    return NULL;

  task = g_steal_pointer (&call->task);
  g_hash_table_remove (self->pending, &id);

  return task;
}

/* Signals go to the context that was thread-default when the client was
 * made, which may not be the worker's. An idle source, never
 * g_main_context_invoke(), which would run the handler right here on the
 * worker thread whenever that context happens to be free. */
typedef struct
{
  QleanQmpClient *self;
  char           *name;
  JsonObject     *data;
  GError         *error;
  gboolean        closed;
} Emission;

static void
emission_free (Emission *emission)
{
  g_object_unref (emission->self);
  g_free (emission->name);
  g_clear_pointer (&emission->data, json_object_unref);
  g_clear_error (&emission->error);
  g_free (emission);
}

static gboolean
emission_dispatch (gpointer user_data)
{
  Emission *emission = user_data;

  if (emission->closed)
    g_signal_emit (emission->self, signals[SIGNAL_CLOSED], 0, emission->error);
  else
    g_signal_emit (emission->self, signals[SIGNAL_EVENT],
                   g_quark_from_string (emission->name),
                   emission->name, emission->data);

  return G_SOURCE_REMOVE;
}

static void
qlean_qmp_client_emit (QleanQmpClient *self,
                       Emission       *emission)
{
  GSource *source;

  emission->self = g_object_ref (self);

  if (self->signal_context == qlean_json_channel_get_context (self->channel))
    {
      emission_dispatch (emission);
      emission_free (emission);
      return;
    }

  source = g_idle_source_new ();
  g_source_set_priority (source, G_PRIORITY_DEFAULT);
  g_source_set_callback (source, emission_dispatch, emission, (GDestroyNotify) emission_free);
  g_source_set_static_name (source, "[qlean] QMP signal");
  g_source_attach (source, self->signal_context);
  g_source_unref (source);
}

/* Ends the handshake; hands back its task, if it is still pending. */
static GTask *
qlean_qmp_client_end_init (QleanQmpClient *self)
{
  qlean_clear_source (&self->init_timeout);
  qlean_clear_source (&self->init_cancel);

  return g_steal_pointer (&self->init_task);
}

static void
qlean_qmp_client_fail_init (QleanQmpClient *self,
                            const GError   *error)
{
  g_autoptr(GTask) task = qlean_qmp_client_end_init (self);

  if (task != NULL)
    g_task_return_error (task, g_error_copy (error));
}

static void
qlean_qmp_client_closed_cb (GObject      *owner,
                            const GError *error)
{
  QleanQmpClient *self = QLEAN_QMP_CLIENT (owner);
  g_autoptr(GHashTable) pending = NULL;
  GHashTableIter iter;
  PendingCall *call;
  Emission *emission;

  self->state = STATE_CLOSED;
  qlean_qmp_client_fail_init (self, error);

  /* Swap the table first: a completion callback may start a new call. */
  pending = g_steal_pointer (&self->pending);
  self->pending = g_hash_table_new_full (g_int64_hash, g_int64_equal, NULL,
                                         (GDestroyNotify) pending_call_free);

  g_hash_table_iter_init (&iter, pending);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *) &call))
    {
      g_autoptr(GTask) task = g_steal_pointer (&call->task);

      pending_call_disarm (call);
      g_task_return_new_error (task, error->domain, error->code,
                               _("QMP command “%s” failed: %s"),
                               call->command, error->message);
    }

  emission = g_new0 (Emission, 1);
  emission->closed = TRUE;
  emission->error = g_error_copy (error);
  qlean_qmp_client_emit (self, emission);
}

static void
qlean_qmp_client_protocol_error (QleanQmpClient *self,
                                 const GError   *error)
{
  g_autoptr(GError) reason = NULL;

  reason = g_error_new (QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_PROTOCOL,
                        _("QEMU broke the QMP protocol: %s"), error->message);
  qlean_json_channel_close (self->channel, reason);
}

static int
qlean_qmp_error_code_from_class (const char *klass)
{
  static const struct { const char *name; int code; } classes[] = {
    { "CommandNotFound", QLEAN_QMP_ERROR_COMMAND_NOT_FOUND },
    { "DeviceNotActive", QLEAN_QMP_ERROR_DEVICE_NOT_ACTIVE },
    { "DeviceNotFound", QLEAN_QMP_ERROR_DEVICE_NOT_FOUND },
    { "KVMMissingCap", QLEAN_QMP_ERROR_KVM_MISSING_CAP },
  };

  for (guint i = 0; i < G_N_ELEMENTS (classes); i++)
    if (g_strcmp0 (klass, classes[i].name) == 0)
      return classes[i].code;

  return QLEAN_QMP_ERROR_GENERIC;
}

static void
qlean_qmp_client_send_command (QleanQmpClient *self,
                               guint64         id,
                               const char     *command,
                               JsonObject     *arguments)
{
  g_autoptr(JsonObject) message = json_object_new ();
  g_autofree char *line = NULL;
  gsize len;

  json_object_set_string_member (message, "execute", command);
  if (arguments != NULL)
    json_object_set_object_member (message, "arguments", json_object_ref (arguments));
  json_object_set_int_member (message, "id", (gint64) id);

  line = qlean_json_object_to_line (message, &len);
  qlean_json_channel_send (self->channel, line, len);
}

/* Takes @message: its parse must be gone before the reply reaches the
 * caller's thread (see qlean_json_object_copy()). */
static void
qlean_qmp_client_handle_reply (QleanQmpClient *self,
                               JsonObject     *owned_message)
{
  g_autoptr(JsonObject) message = owned_message;
  g_autoptr(GTask) task = NULL;
  JsonNode *id_node = json_object_get_member (message, "id");
  guint64 id;

  if (id_node == NULL || json_node_get_value_type (id_node) != G_TYPE_INT64)
    {
      /* QEMU answers without an id only when it could not parse the
       * command at all; with our generated commands that means the
       * streams are out of step. */
      g_debug ("QMP reply without a usable id ignored");
      return;
    }
  id = (guint64) json_node_get_int (id_node);

  if (self->state == STATE_AWAIT_CAPABILITIES && id == 0)
    {
      g_autoptr(GTask) init_task = qlean_qmp_client_end_init (self);

      if (json_object_has_member (message, "error"))
        {
          g_autoptr(GError) error = NULL;

          error = g_error_new_literal (QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_PROTOCOL,
                                       _("QEMU refused QMP capabilities negotiation"));
          /* The close below no longer finds the task we just took. */
          if (init_task != NULL)
            g_task_return_error (init_task, g_error_copy (error));
          qlean_json_channel_close (self->channel, error);
          return;
        }

      self->state = STATE_READY;
      if (init_task != NULL)
        g_task_return_boolean (init_task, TRUE);
      return;
    }

  task = qlean_qmp_client_take_call (self, id);
  if (task == NULL)
    {
      /* A late reply to a call that already timed out or was cancelled. */
      g_debug ("QMP reply to unknown id %" G_GUINT64_FORMAT " ignored", id);
      return;
    }

  if (json_object_has_member (message, "error"))
    {
      /* Never trust the shape: an "error" that is no object, or a class
       * or description that is no string, reads as a GenericError. */
      JsonObject *err = qlean_json_get_object (message, "error");
      const char *klass = qlean_json_get_string (err, "class");
      const char *desc = qlean_json_get_string (err, "desc");
      const char *command = g_task_get_task_data (task);

      if (klass == NULL)
        klass = "GenericError";
      if (desc == NULL)
        desc = "";

      g_task_return_new_error (task, QLEAN_QMP_ERROR,
                               qlean_qmp_error_code_from_class (klass),
                               _("QMP command “%s” failed: %s (%s)"),
                               command, desc, klass);
      return;
    }

  {
    JsonNode *ret = json_node_copy (json_object_get_member (message, "return"));

    /* Drop the parse here, on the worker, so that the reply's objects
     * have a single owner when the caller's thread gets them. */
    g_clear_pointer (&message, json_object_unref);
    g_task_return_pointer (task, ret, (GDestroyNotify) json_node_unref);
  }
}

static void
qlean_qmp_client_line_cb (GObject      *owner,
                          GBytes       *line,
                          const GError *line_error)
{
  QleanQmpClient *self = QLEAN_QMP_CLIENT (owner);
  g_autoptr(JsonObject) message = NULL;
  g_autoptr(GError) error = NULL;
  gsize len;
  const char *data;

  if (line_error != NULL)
    {
      qlean_qmp_client_protocol_error (self, line_error);
      return;
    }

  data = g_bytes_get_data (line, &len);
  message = qlean_json_parse_object (data, len, &error);
  if (message == NULL)
    {
      qlean_qmp_client_protocol_error (self, error);
      return;
    }

  if (json_object_has_member (message, "QMP"))
    {
      JsonObject *greeting;

      if (self->state != STATE_AWAIT_GREETING)
        {
          error = g_error_new_literal (QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_PROTOCOL,
                                       "unexpected second greeting");
          qlean_qmp_client_protocol_error (self, error);
          return;
        }

      /* Never trust the shape (found by tests/fuzz/fuzz-qmp-client.c):
       * json-glib's typed getters warn on a member of another type. */
      greeting = qlean_json_get_object (message, "QMP");
      if (greeting == NULL)
        {
          error = g_error_new_literal (QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_PROTOCOL,
                                       "the QMP greeting is not an object");
          qlean_qmp_client_protocol_error (self, error);
          return;
        }

      self->greeting = json_object_ref (greeting);
      self->state = STATE_AWAIT_CAPABILITIES;
      /* Id 0 is reserved for the negotiation; commands count from 1. */
      qlean_qmp_client_send_command (self, 0, "qmp_capabilities", NULL);
      return;
    }

  if (self->state == STATE_AWAIT_GREETING)
    {
      error = g_error_new_literal (QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_PROTOCOL,
                                   "the first message was not a QMP greeting");
      qlean_qmp_client_protocol_error (self, error);
      return;
    }

  if (json_object_has_member (message, "event"))
    {
      const char *name = qlean_json_get_string (message, "event");
      /* Data that is no object reads as none. */
      JsonObject *event_data = qlean_json_get_object (message, "data");
      Emission *emission;

      /* An event without a name string would reach handlers as NULL
       * (found by tests/fuzz/fuzz-qmp-client.c). */
      if (name == NULL)
        {
          g_debug ("QMP event without a name ignored");
          return;
        }

      emission = g_new0 (Emission, 1);
      emission->name = g_strdup (name);
      emission->data = event_data ? json_object_ref (event_data) : json_object_new ();
      /* The event may be handled on another thread: drop the rest of the
       * parse first, so that its data has a single owner there. */
      g_clear_pointer (&message, json_object_unref);
      qlean_qmp_client_emit (self, emission);
      return;
    }

  if (json_object_has_member (message, "return") || json_object_has_member (message, "error"))
    {
      qlean_qmp_client_handle_reply (self, g_steal_pointer (&message));
      return;
    }

  g_debug ("QMP message of unknown shape ignored");
}

static void
qlean_qmp_client_dispose (GObject *object)
{
  G_OBJECT_CLASS (qlean_qmp_client_parent_class)->dispose (object);
}

static void
qlean_qmp_client_finalize (GObject *object)
{
  QleanQmpClient *self = QLEAN_QMP_CLIENT (object);

  g_clear_pointer (&self->pending, g_hash_table_unref);
  g_clear_pointer (&self->greeting, json_object_unref);
  g_clear_pointer (&self->channel, qlean_json_channel_unref);
  g_clear_pointer (&self->signal_context, g_main_context_unref);
  g_clear_object (&self->stream);

  G_OBJECT_CLASS (qlean_qmp_client_parent_class)->finalize (object);
}

static void
qlean_qmp_client_get_property (GObject    *object,
                               guint       prop_id,
                               GValue     *value,
                               GParamSpec *pspec)
{
  QleanQmpClient *self = QLEAN_QMP_CLIENT (object);

  switch (prop_id)
    {
    case PROP_STREAM:
      g_value_set_object (value, self->stream);
      break;
    case PROP_TIMEOUT:
      g_value_set_uint (value, qlean_qmp_client_get_timeout (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
qlean_qmp_client_set_property (GObject      *object,
                               guint         prop_id,
                               const GValue *value,
                               GParamSpec   *pspec)
{
  QleanQmpClient *self = QLEAN_QMP_CLIENT (object);

  switch (prop_id)
    {
    case PROP_STREAM:
      self->stream = g_value_dup_object (value);
      break;
    case PROP_TIMEOUT:
      qlean_qmp_client_set_timeout (self, g_value_get_uint (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
qlean_qmp_client_constructed (GObject *object)
{
  QleanQmpClient *self = QLEAN_QMP_CLIENT (object);

  G_OBJECT_CLASS (qlean_qmp_client_parent_class)->constructed (object);

  self->signal_context = g_main_context_ref_thread_default ();
  self->channel = qlean_json_channel_new (self->stream,
                                          qlean_worker_get_context (),
                                          QLEAN_QMP_MAX_MESSAGE,
                                          object,
                                          qlean_qmp_client_line_cb,
                                          qlean_qmp_client_closed_cb);
}

static void
qlean_qmp_client_class_init (QleanQmpClientClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->constructed = qlean_qmp_client_constructed;
  object_class->dispose = qlean_qmp_client_dispose;
  object_class->finalize = qlean_qmp_client_finalize;
  object_class->get_property = qlean_qmp_client_get_property;
  object_class->set_property = qlean_qmp_client_set_property;

  /**
   * QleanQmpClient:stream:
   *
   * The connection to QEMU's monitor, usually a #GSocketConnection on
   * its QMP unix socket.
   *
   * Since: 0.1
   */
  properties[PROP_STREAM] =
    g_param_spec_object ("stream", NULL, NULL,
                         G_TYPE_IO_STREAM,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * QleanQmpClient:timeout:
   *
   * How long, in milliseconds, a command may wait for its reply before it
   * fails with %G_IO_ERROR_TIMED_OUT; 0 waits forever. It also bounds the
   * wait for the greeting.
   *
   * Since: 0.1
   */
  properties[PROP_TIMEOUT] =
    g_param_spec_uint ("timeout", NULL, NULL,
                       0, G_MAXUINT, DEFAULT_TIMEOUT_MS,
                       G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * QleanQmpClient::event:
   * @self: the client
   * @name: the event's name, e.g. `SHUTDOWN`
   * @data: the event's `data` member (empty when QEMU sent none)
   *
   * Emitted for every asynchronous event QEMU sends. The signal is
   * detailed by the event name, so `event::STOP` connects to one event.
   *
   * Since: 0.1
   */
  signals[SIGNAL_EVENT] =
    g_signal_new ("event",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST | G_SIGNAL_DETAILED,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 2,
                  G_TYPE_STRING,
                  JSON_TYPE_OBJECT);

  /**
   * QleanQmpClient::closed:
   * @self: the client
   * @error: why the connection closed
   *
   * Emitted once, when the connection closes for any reason.
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
qlean_qmp_client_init (QleanQmpClient *self)
{
  self->timeout_ms = DEFAULT_TIMEOUT_MS;
  self->next_id = 1;
  self->pending = g_hash_table_new_full (g_int64_hash, g_int64_equal, NULL,
                                         (GDestroyNotify) pending_call_free);
}

static gboolean
qlean_qmp_client_init_timeout_cb (gpointer user_data)
{
  QleanQmpClient *self = user_data;
  g_autoptr(GError) error = NULL;

  error = g_error_new (G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                       _("QEMU did not complete the QMP handshake within %u ms"),
                       self->timeout_ms);
  qlean_json_channel_close (self->channel, error);

  return G_SOURCE_REMOVE;
}

static gboolean
qlean_qmp_client_init_cancelled_cb (gpointer user_data)
{
  QleanQmpClient *self = user_data;
  g_autoptr(GError) error = NULL;

  error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                               _("The QMP handshake was cancelled"));
  qlean_json_channel_close (self->channel, error);

  return G_SOURCE_REMOVE;
}

static gboolean
qlean_qmp_client_start_in_context (gpointer user_data)
{
  QleanQmpClient *self = user_data;
  guint timeout_ms = qlean_qmp_client_get_timeout (self);
  GCancellable *cancellable = NULL;

  if (self->init_task != NULL)
    cancellable = g_task_get_cancellable (self->init_task);

  if (timeout_ms > 0)
    self->init_timeout = qlean_json_channel_add_timeout (self->channel, timeout_ms,
                                                         qlean_qmp_client_init_timeout_cb,
                                                         self);
  self->init_cancel = qlean_json_channel_add_cancel (self->channel, cancellable,
                                                     qlean_qmp_client_init_cancelled_cb,
                                                     self);
  qlean_json_channel_start (self->channel);

  return G_SOURCE_REMOVE;
}

static void
qlean_qmp_client_init_async (GAsyncInitable      *initable,
                             int                  io_priority,
                             GCancellable        *cancellable,
                             GAsyncReadyCallback  callback,
                             gpointer             user_data)
{
  QleanQmpClient *self = QLEAN_QMP_CLIENT (initable);
  GTask *task;

  task = qlean_task_new (self, cancellable, callback, user_data,
                         qlean_qmp_client_init_async, "[qlean] QMP handshake");
  self->init_task = task;

  qlean_json_channel_invoke (self->channel, qlean_qmp_client_start_in_context,
                             g_object_ref (self), g_object_unref);
}

static gboolean
qlean_qmp_client_init_finish (GAsyncInitable  *initable,
                              GAsyncResult    *result,
                              GError         **error)
{
  g_return_val_if_fail (g_task_is_valid (result, initable), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_qmp_client_init_async), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

static void
qlean_qmp_client_async_initable_iface_init (GAsyncInitableIface *iface)
{
  iface->init_async = qlean_qmp_client_init_async;
  iface->init_finish = qlean_qmp_client_init_finish;
}

/**
 * qlean_qmp_client_new_async:
 * @stream: a connection to QEMU's QMP socket
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when the client is ready or failed
 * @user_data: data for @callback
 *
 * Reads QEMU's greeting from @stream and negotiates capabilities. Finish
 * with qlean_qmp_client_new_finish().
 *
 * Since: 0.1
 */
void
qlean_qmp_client_new_async (GIOStream           *stream,
                            GCancellable        *cancellable,
                            GAsyncReadyCallback  callback,
                            gpointer             user_data)
{
  g_return_if_fail (G_IS_IO_STREAM (stream));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  g_async_initable_new_async (QLEAN_TYPE_QMP_CLIENT, G_PRIORITY_DEFAULT,
                              cancellable, callback, user_data,
                              "stream", stream,
                              NULL);
}

/**
 * qlean_qmp_client_new_finish:
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_qmp_client_new_async().
 *
 * Returns: (transfer full): a ready client, or %NULL with @error set
 *
 * Since: 0.1
 */
QleanQmpClient *
qlean_qmp_client_new_finish (GAsyncResult  *result,
                             GError       **error)
{
  g_autoptr(GObject) source = NULL;
  GObject *object;

  g_return_val_if_fail (G_IS_ASYNC_RESULT (result), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  source = g_async_result_get_source_object (result);
  g_return_val_if_fail (QLEAN_IS_QMP_CLIENT (source), NULL);

  object = g_async_initable_new_finish (G_ASYNC_INITABLE (source), result, error);
  if (object == NULL)
    {
      /* The half-made client still holds its socket open. */
      qlean_qmp_client_close (QLEAN_QMP_CLIENT (source));
      return NULL;
    }

  return QLEAN_QMP_CLIENT (object);
}

/**
 * qlean_qmp_client_new:
 * @stream: a connection to QEMU's QMP socket
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_qmp_client_new_async().
 *
 * Returns: (transfer full): a ready client, or %NULL with @error set
 *
 * Since: 0.1
 */
QleanQmpClient *
qlean_qmp_client_new (GIOStream     *stream,
                      GCancellable  *cancellable,
                      GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };
  g_autoptr(QleanQmpClient) self = NULL;

  g_return_val_if_fail (G_IS_IO_STREAM (stream), NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  /* Made before the private context is pushed, so that signals go to
   * the caller's thread-default context and not to that one. */
  self = g_object_new (QLEAN_TYPE_QMP_CLIENT, "stream", stream, NULL);

  if (!qlean_sync_call_begin (&call, error))
    {
      qlean_qmp_client_close (self);
      return NULL;
    }
  g_async_initable_init_async (G_ASYNC_INITABLE (self), G_PRIORITY_DEFAULT, cancellable,
                               qlean_sync_call_done, &call);
  if (!g_async_initable_init_finish (G_ASYNC_INITABLE (self), qlean_sync_call_wait (&call), error))
    {
      /* The half-made client still holds its socket open. */
      qlean_qmp_client_close (self);
      return NULL;
    }

  return g_steal_pointer (&self);
}

/**
 * qlean_qmp_client_get_greeting:
 * @self: a #QleanQmpClient
 *
 * Returns QEMU's greeting: the `QMP` member, with `version` and
 * `capabilities`.
 *
 * Returns: (transfer none) (nullable): the greeting
 *
 * Since: 0.1
 */
JsonObject *
qlean_qmp_client_get_greeting (QleanQmpClient *self)
{
  g_return_val_if_fail (QLEAN_IS_QMP_CLIENT (self), NULL);

  return self->greeting;
}

/**
 * qlean_qmp_client_get_timeout:
 * @self: a #QleanQmpClient
 *
 * Returns: the per-command timeout in milliseconds, 0 for none
 *
 * Since: 0.1
 */
guint
qlean_qmp_client_get_timeout (QleanQmpClient *self)
{
  g_return_val_if_fail (QLEAN_IS_QMP_CLIENT (self), 0);

  return g_atomic_int_get (&self->timeout_ms);
}

/**
 * qlean_qmp_client_set_timeout:
 * @self: a #QleanQmpClient
 * @timeout_ms: milliseconds, or 0 to wait forever
 *
 * Sets how long later commands wait for their reply.
 *
 * Since: 0.1
 */
void
qlean_qmp_client_set_timeout (QleanQmpClient *self,
                              guint           timeout_ms)
{
  g_return_if_fail (QLEAN_IS_QMP_CLIENT (self));

  if ((guint) g_atomic_int_exchange (&self->timeout_ms, timeout_ms) != timeout_ms)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_TIMEOUT]);
}

typedef struct
{
  QleanQmpClient *self;
  char           *command;
  JsonObject     *arguments;
  GTask          *task;
} SubmitData;

static void
submit_data_free (SubmitData *data)
{
  g_object_unref (data->self);
  g_free (data->command);
  g_clear_pointer (&data->arguments, json_object_unref);
  g_clear_object (&data->task);
  g_free (data);
}

static gboolean
qlean_qmp_client_call_timeout_cb (gpointer user_data)
{
  PendingCall *call = user_data;
  QleanQmpClient *self = call->self;
  g_autoptr(GTask) task = NULL;
  g_autofree char *command = g_strdup (call->command);
  guint timeout_ms = qlean_qmp_client_get_timeout (self);

  g_clear_pointer (&call->timeout_source, g_source_unref);
  task = qlean_qmp_client_take_call (self, call->id);
  if (task != NULL)
    g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                             _("QMP command “%s” got no reply within %u ms"),
                             command, timeout_ms);

  return G_SOURCE_REMOVE;
}

static gboolean
qlean_qmp_client_call_cancelled_cb (gpointer user_data)
{
  PendingCall *call = user_data;
  g_autoptr(GTask) task = NULL;

  g_clear_pointer (&call->cancel_source, g_source_unref);
  task = qlean_qmp_client_take_call (call->self, call->id);
  if (task != NULL)
    g_task_return_error_if_cancelled (task);

  return G_SOURCE_REMOVE;
}

static gboolean
qlean_qmp_client_submit_in_context (gpointer user_data)
{
  SubmitData *data = user_data;
  QleanQmpClient *self = data->self;
  PendingCall *call;
  guint timeout_ms;

  if (self->state != STATE_READY)
    {
      g_task_return_new_error (data->task, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_DISCONNECTED,
                               _("QMP command “%s” failed: the connection is closed"),
                               data->command);
      return G_SOURCE_REMOVE;
    }

  if (g_task_return_error_if_cancelled (data->task))
    return G_SOURCE_REMOVE;

  call = g_new0 (PendingCall, 1);
  call->self = self;
  call->id = self->next_id++;
  call->command = g_strdup (data->command);
  call->task = g_steal_pointer (&data->task);

  timeout_ms = qlean_qmp_client_get_timeout (self);
  if (timeout_ms > 0)
    call->timeout_source = qlean_json_channel_add_timeout (self->channel, timeout_ms,
                                                           qlean_qmp_client_call_timeout_cb,
                                                           call);
  call->cancel_source = qlean_json_channel_add_cancel (self->channel,
                                                       g_task_get_cancellable (call->task),
                                                       qlean_qmp_client_call_cancelled_cb,
                                                       call);
  g_hash_table_insert (self->pending, &call->id, call);

  qlean_qmp_client_send_command (self, call->id, data->command, data->arguments);

  return G_SOURCE_REMOVE;
}

/**
 * qlean_qmp_client_execute_async:
 * @self: a #QleanQmpClient
 * @command: the QMP command, e.g. `query-status`
 * @arguments: (nullable): the command's arguments
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the reply
 * @user_data: data for @callback
 *
 * Sends @command. May be called from any thread; @callback runs on the
 * calling thread's thread-default main context.
 *
 * Since: 0.1
 */
void
qlean_qmp_client_execute_async (QleanQmpClient      *self,
                                const char          *command,
                                JsonObject          *arguments,
                                GCancellable        *cancellable,
                                GAsyncReadyCallback  callback,
                                gpointer             user_data)
{
  SubmitData *data;

  g_return_if_fail (QLEAN_IS_QMP_CLIENT (self));
  g_return_if_fail (command != NULL);
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  data = g_new0 (SubmitData, 1);
  data->self = g_object_ref (self);
  data->command = g_strdup (command);
  /* A copy: the worker must not share the caller's objects (see
   * qlean_json_object_copy()). */
  data->arguments = arguments ? qlean_json_object_copy (arguments) : NULL;
  data->task = qlean_task_new (self, cancellable, callback, user_data,
                               qlean_qmp_client_execute_async, "[qlean] QMP execute");
  g_task_set_task_data (data->task, g_strdup (command), g_free);

  qlean_json_channel_invoke (self->channel, qlean_qmp_client_submit_in_context,
                             data, (GDestroyNotify) submit_data_free);
}

/**
 * qlean_qmp_client_execute_finish:
 * @self: a #QleanQmpClient
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_qmp_client_execute_async(). QEMU's error replies come
 * back as #QLEAN_QMP_ERROR errors whose code follows the error class.
 *
 * Returns: (transfer full): the `return` member of the reply, or %NULL
 *   with @error set
 *
 * Since: 0.1
 */
JsonNode *
qlean_qmp_client_execute_finish (QleanQmpClient  *self,
                                 GAsyncResult    *result,
                                 GError         **error)
{
  g_return_val_if_fail (QLEAN_IS_QMP_CLIENT (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_qmp_client_execute_async), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * qlean_qmp_client_execute:
 * @self: a #QleanQmpClient
 * @command: the QMP command
 * @arguments: (nullable): the command's arguments
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_qmp_client_execute_async(). Works from any
 * thread, with or without a running main loop.
 *
 * Returns: (transfer full): the `return` member of the reply, or %NULL
 *   with @error set
 *
 * Since: 0.1
 */
JsonNode *
qlean_qmp_client_execute (QleanQmpClient  *self,
                          const char      *command,
                          JsonObject      *arguments,
                          GCancellable    *cancellable,
                          GError         **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_QMP_CLIENT (self), NULL);
  g_return_val_if_fail (command != NULL, NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!qlean_sync_call_begin (&call, error))
    return NULL;
  qlean_qmp_client_execute_async (self, command, arguments, cancellable,
                                  qlean_sync_call_done, &call);

  return qlean_qmp_client_execute_finish (self, qlean_sync_call_wait (&call), error);
}

static gboolean
qlean_qmp_client_close_in_context (gpointer user_data)
{
  QleanQmpClient *self = user_data;
  g_autoptr(GError) error = NULL;

  error = g_error_new_literal (QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_DISCONNECTED,
                               _("the QMP connection was closed"));
  qlean_json_channel_close (self->channel, error);

  return G_SOURCE_REMOVE;
}

/**
 * qlean_qmp_client_close:
 * @self: a #QleanQmpClient
 *
 * Closes the connection. Pending calls fail with
 * %QLEAN_QMP_ERROR_DISCONNECTED and [signal@QmpClient::closed] is emitted,
 * once, however often this is called.
 *
 * Since: 0.1
 */
void
qlean_qmp_client_close (QleanQmpClient *self)
{
  g_return_if_fail (QLEAN_IS_QMP_CLIENT (self));

  qlean_json_channel_invoke (self->channel, qlean_qmp_client_close_in_context,
                             g_object_ref (self), g_object_unref);
}

/**
 * qlean_qmp_client_is_closed:
 * @self: a #QleanQmpClient
 *
 * Returns: whether the connection is closed
 *
 * Since: 0.1
 */
gboolean
qlean_qmp_client_is_closed (QleanQmpClient *self)
{
  g_return_val_if_fail (QLEAN_IS_QMP_CLIENT (self), TRUE);

  return qlean_json_channel_is_closed (self->channel);
}

void
qlean_qmp_client_set_trace (QleanQmpClient            *self,
                            QleanJsonChannelTraceFunc  trace_func,
                            gpointer                   user_data,
                            GDestroyNotify             destroy)
{
  qlean_json_channel_set_trace (self->channel, trace_func, user_data, destroy);
}
