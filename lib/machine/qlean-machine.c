/* qlean-machine.c: a throwaway virtual machine
 *
 * The object itself: its GObject plumbing and properties, its state and
 * signals, and the getters. A machine's other concerns each have a file
 * of their own (qlean-machine-launch.c, -boot.c, -boot-state.c, -run.c,
 * -control.c, -shares.c); qlean-machine-object-private.h is what they
 * share.
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <glib/gi18n-lib.h>

#include "qlean-enums.h"
#include "qlean-error.h"
#include "qlean-image-private.h"
#include "qlean-machine-firmware-private.h"
#include "qlean-machine-object-private.h"
#include "qlean-machine-network-private.h"
#include "qlean-worker-private.h"
#include "qlean-errno-private.h"

/**
 * QleanMachine:
 *
 * A throwaway virtual machine: one QEMU process, driven only through its
 * QMP monitor and the QEMU guest agent on a virtio-serial port. No SSH,
 * no network and no root are needed to control it.
 *
 * [method@Machine.spawn] boots it and returns once the agent answers;
 * [method@Machine.exec] runs a shell command and returns its exit status,
 * signal and output; [method@Machine.shutdown] powers it off, escalating
 * from the agent to QMP `quit`, SIGTERM and SIGKILL, each step bounded.
 * Dropping the last reference kills QEMU and removes the machine's run
 * directory: a machine never outlives the objects that own it, and with
 * `PR_SET_PDEATHSIG` QEMU never outlives the process either. (Right after
 * an operation completes, Qlean's worker thread may hold the machine for
 * a few more microseconds; then the cleanup happens there, just after.)
 *
 * Every operation comes as `_async`/`_finish` plus a blocking twin. The
 * blocking calls work from any thread with or without a main loop: the
 * machine's I/O runs on Qlean's worker thread. Callbacks run on the
 * thread-default main context of the calling thread, and the machine's
 * signals and property notifications on the thread-default context of
 * the thread that created it.
 *
 * Since: 0.1
 */

G_DEFINE_FINAL_TYPE (QleanMachine, qlean_machine, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_NAME,
  PROP_IMAGE,
  PROP_CONFIG,
  PROP_STATE,
  PROP_BOOT_TIMEOUT,
  PROP_SHUTDOWN_TIMEOUT,
  PROP_NETWORK,
  PROP_MAC_ADDRESS,
  PROP_GUEST_TRANSPORT,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];
static guint signals[N_SIGNALS];

/* States and signals */

/* The state's nick in QleanMachineState's GEnumClass ("running"), for
 * messages and the log. */
const char *
qlean_machine_state_to_string (QleanMachineState state)
{
  static gsize klass = 0;
  GEnumValue *value;

  /* Referenced once and kept: the nicks it gives out live with it. */
  if (g_once_init_enter (&klass))
    g_once_init_leave (&klass, (gsize) g_type_class_ref (QLEAN_TYPE_MACHINE_STATE));

  value = g_enum_get_value ((GEnumClass *) klass, state);
  return value != NULL ? value->value_nick : "unknown";
}

typedef struct
{
  QleanLink *link;
  guint        signal_id;   /* 0 for notify::state */
} Emission;

static gboolean
emission_dispatch (gpointer user_data)
{
  Emission *emission = user_data;
  g_autoptr(QleanMachine) self = qlean_link_get (emission->link);

  if (self == NULL)
    return G_SOURCE_REMOVE;

  if (emission->signal_id == 0)
    {
      g_atomic_int_set (&self->notify_pending, FALSE);
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATE]);
      /* The transport changes only with the state (decided as the
       * machine becomes running, forgotten as it stops). */
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_GUEST_TRANSPORT]);
    }
  else
    g_signal_emit (self, emission->signal_id, 0);

  return G_SOURCE_REMOVE;
}

static void
emission_free (gpointer user_data)
{
  Emission *emission = user_data;

  qlean_link_unref (emission->link);
  g_free (emission);
}

/* Signals go to the creator's context by an idle holding only a weak
 * reference: a context nobody iterates must not keep a machine alive. */
static void
qlean_machine_emit (QleanMachine *self,
                    guint         signal_id)
{
  Emission *emission = g_new0 (Emission, 1);
  GSource *source;

  emission->link = qlean_link_ref (self->link);
  emission->signal_id = signal_id;

  source = g_idle_source_new ();
  g_source_set_priority (source, G_PRIORITY_DEFAULT);
  g_source_set_callback (source, emission_dispatch, emission, emission_free);
  g_source_set_static_name (source, "[qlean] machine signal");
  g_source_attach (source, self->owner_context);
  g_source_unref (source);
}

/* The machine's signals, for its other files; emitted like the others. */
void
qlean_machine_emit_signal (QleanMachine       *self,
                           QleanMachineSignal  which)
{
  qlean_machine_emit (self, signals[which]);
}

void
qlean_machine_set_state (QleanMachine      *self,
                         QleanMachineState  state)
{
  if (g_atomic_int_exchange (&self->state, state) == (gint) state)
    return;

  g_debug ("machine %s: %s", self->name, qlean_machine_state_to_string (state));

  /* Coalesced: listeners read the current state anyway. */
  if (g_atomic_int_compare_and_exchange (&self->notify_pending, FALSE, TRUE))
    qlean_machine_emit (self, 0);
}

/* The message of a call made while the machine is not running: one
 * whole sentence per kind of call. */
static void
set_not_running_error (QleanMachine       *self,
                       QleanMachineOp      op,
                       QleanMachineState   state,
                       GError            **error)
{
  const char *format = NULL;

  switch (op)
    {
    case QLEAN_MACHINE_OP_RUN_COMMAND:
      format = _("Cannot run a command on machine “%s”: it is %s, not running");
      break;
    case QLEAN_MACHINE_OP_START_PROCESS:
      format = _("Cannot start a process on machine “%s”: it is %s, not running");
      break;
    case QLEAN_MACHINE_OP_SHARE:
      format = _("Cannot share machine “%s”: it is %s, not running");
      break;
    case QLEAN_MACHINE_OP_READ_IP:
      format = _("Cannot read the IP address of machine “%s”: it is %s, not running");
      break;
    case QLEAN_MACHINE_OP_FORWARD_PORT:
      format = _("Cannot forward a port on machine “%s”: it is %s, not running");
      break;
    case QLEAN_MACHINE_OP_TRANSFER_FILES:
      format = _("Cannot transfer files on machine “%s”: it is %s, not running");
      break;
    default:
      g_assert_not_reached ();
    }

  g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE, format,
               self->name, qlean_machine_state_to_string (state));
}

gboolean
qlean_machine_check_running (QleanMachine    *self,
                             QleanMachineOp   op,
                             GError         **error)
{
  QleanMachineState state = qlean_machine_get_state (self);

  if (state == QLEAN_MACHINE_STATE_RUNNING)
    return TRUE;

  set_not_running_error (self, op, state, error);
  return FALSE;
}

void
qlean_machine_fix_clock (QleanMachine *self)
{
  g_autoptr(QleanMachineRun) run = NULL;

  g_mutex_lock (&self->lock);
  run = qlean_machine_run_ref (self->run);
  g_mutex_unlock (&self->lock);

  qlean_machine_run_fix_clock (run);
}

QleanMachineRun *
qlean_machine_ref_run (QleanMachine    *self,
                       QleanMachineOp   op,
                       gboolean         starting,
                       GError         **error)
{
  QleanMachineState state;
  QleanMachineRun *run;

  /* Only a start replaces the run, and a start begins from a state
   * that is neither RUNNING nor STARTING: the run read after the state
   * is that state's run, or a newer one that the call then finds over. */
  g_mutex_lock (&self->lock);
  state = qlean_machine_get_state (self);
  run = qlean_machine_run_ref (self->run);
  g_mutex_unlock (&self->lock);

  if (state == QLEAN_MACHINE_STATE_RUNNING ||
      (starting && state == QLEAN_MACHINE_STATE_STARTING))
    return run;

  qlean_machine_run_unref (run);
  set_not_running_error (self, op, state, error);
  return NULL;
}

/* GObject */

static void
qlean_machine_get_property (GObject    *object,
                            guint       prop_id,
                            GValue     *value,
                            GParamSpec *pspec)
{
  QleanMachine *self = QLEAN_MACHINE (object);

  switch (prop_id)
    {
    case PROP_NAME: g_value_set_string (value, self->name); break;
    case PROP_IMAGE: g_value_set_object (value, self->image); break;
    case PROP_CONFIG: g_value_set_object (value, self->config); break;
    case PROP_STATE: g_value_set_enum (value, qlean_machine_get_state (self)); break;
    case PROP_BOOT_TIMEOUT: g_value_set_uint (value, qlean_machine_get_boot_timeout (self)); break;
    case PROP_SHUTDOWN_TIMEOUT: g_value_set_uint (value, qlean_machine_get_shutdown_timeout (self)); break;
    case PROP_NETWORK: g_value_set_object (value, self->network); break;
    case PROP_MAC_ADDRESS: g_value_take_string (value, qlean_machine_dup_mac_address (self)); break;
    case PROP_GUEST_TRANSPORT: g_value_set_enum (value, qlean_machine_get_guest_transport (self)); break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
qlean_machine_set_property (GObject      *object,
                            guint         prop_id,
                            const GValue *value,
                            GParamSpec   *pspec)
{
  QleanMachine *self = QLEAN_MACHINE (object);

  switch (prop_id)
    {
    case PROP_NAME:
      self->name = g_value_dup_string (value);
      break;
    case PROP_IMAGE:
      self->image = g_value_dup_object (value);
      break;
    case PROP_CONFIG:
      {
        QleanMachineConfig *config = g_value_get_object (value);

        self->config = config ? qlean_machine_config_copy (config) : qlean_machine_config_new ();
      }
      break;
    case PROP_BOOT_TIMEOUT:
      qlean_machine_set_boot_timeout (self, g_value_get_uint (value));
      break;
    case PROP_SHUTDOWN_TIMEOUT:
      qlean_machine_set_shutdown_timeout (self, g_value_get_uint (value));
      break;
    case PROP_NETWORK:
      self->network = g_value_dup_object (value);
      break;
    case PROP_MAC_ADDRESS:
      self->mac_address = g_value_dup_string (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
qlean_machine_constructed (GObject *object)
{
  QleanMachine *self = QLEAN_MACHINE (object);

  G_OBJECT_CLASS (qlean_machine_parent_class)->constructed (object);

  if (self->name == NULL)
    self->name = g_strdup_printf ("qlean-%06x", g_random_int () & 0xffffff);
  if (self->image == NULL)
    self->image = qlean_image_new_minimal ();
  if (self->config == NULL)
    self->config = qlean_machine_config_new ();
  /* QEMU's own prefix, as libvirt uses on its bridges; the rest random,
   * since other hosts' machines may share the bridge. */
  if (self->mac_address == NULL && self->network == NULL &&
      qlean_machine_config_get_bridge (self->config) != NULL)
    self->mac_address = g_strdup_printf ("52:54:00:%02x:%02x:%02x", g_random_int_range (0, 256),
                                         g_random_int_range (0, 256), g_random_int_range (0, 256));

  self->owner_context = g_main_context_ref_thread_default ();
  self->link = qlean_link_new (self);
  /* A run that never runs until the first start makes its own (an
   * attached machine keeps this one). */
  self->run = qlean_machine_run_new (self->name,
                                     qlean_machine_config_get_guest_transport (self->config));
}

static gboolean
qlean_machine_close_relay_cb (gpointer user_data)
{
  qlean_guest_relay_close (user_data);
  return G_SOURCE_REMOVE;
}

static void
qlean_machine_dispose (GObject *object)
{
  QleanMachine *self = QLEAN_MACHINE (object);
  GPid pid;

  /* No worker callback can reach us any more (the link's weak ref is
   * cleared), so the fields are ours. */
  g_mutex_lock (&self->lock);
  g_mutex_lock (&self->run->lock);
  pid = self->run->qemu_exited ? 0 : self->run->pid;
  self->run->pid = 0;
  g_mutex_unlock (&self->run->lock);
  g_mutex_unlock (&self->lock);

  if (pid > 0)
    {
      /* Through GSubprocess, which knows whether QEMU was reaped: by
       * now the pid alone may name another process. */
      g_subprocess_force_exit (self->run->qemu);
      qlean_host_wait_for_death (pid);
    }
  g_clear_pointer (&self->run->console, qlean_console_log_unref);

  if (self->run->qmp != NULL)
    qlean_qmp_client_close (self->run->qmp);
  if (self->run->qga != NULL)
    qlean_qga_client_close (self->run->qga);
  if (self->run->relay != NULL)
    qlean_worker_invoke (qlean_machine_close_relay_cb, g_steal_pointer (&self->run->relay), g_object_unref);
  if (self->run->guest != NULL)
    qlean_guest_channel_close (self->run->guest);
  g_clear_object (&self->run->qmp);
  g_clear_object (&self->run->qga);
  g_clear_object (&self->run->guest);

  qlean_machine_firmware_remove_vars (self->run->run_dir);
  if (self->run->run_dir != NULL && qlean_machine_config_get_clear (self->config))
    qlean_rm_rf (self->run->run_dir, NULL);
  g_clear_pointer (&self->run->run_dir, g_free);
  if (self->state_dir != NULL && qlean_machine_config_get_clear (self->config))
    qlean_rm_rf (self->state_dir, NULL);
  g_clear_pointer (&self->state_dir, g_free);
  qlean_clear_source (&self->run->incoming_poll);

  qlean_clear_source (&self->run->boot_timer);
  qlean_clear_source (&self->run->hello_timer);
  qlean_clear_source (&self->run->spawn_cancel);
  qlean_clear_source (&self->run->qmp_grace_timer);
  qlean_clear_source (&self->run->shutdown_timer);
  g_clear_object (&self->run->qemu);

  /* QEMU is gone: the machine's address and port are free again. */
  if (self->network != NULL)
    qlean_network_detach (self->network, self->name, self);
  g_clear_object (&self->network);

  G_OBJECT_CLASS (qlean_machine_parent_class)->dispose (object);
}

static void
qlean_machine_finalize (GObject *object)
{
  QleanMachine *self = QLEAN_MACHINE (object);

  g_clear_pointer (&self->run, qlean_machine_run_unref);
  g_clear_pointer (&self->exit_waiters, g_ptr_array_unref);
  g_clear_pointer (&self->last_logs, qlean_run_logs_free);
  g_clear_object (&self->image);
  g_clear_object (&self->config);
  g_clear_pointer (&self->owner_context, g_main_context_unref);
  g_clear_pointer (&self->link, qlean_link_unref);
  g_free (self->name);
  g_free (self->mac_address);
  g_free (self->crash_reason);
  g_free (self->incoming);
  g_free (self->incoming_old_mac);
  g_mutex_clear (&self->lock);

  G_OBJECT_CLASS (qlean_machine_parent_class)->finalize (object);
}

/* Long, as class_init functions are: one documented property or signal
 * after the other. */
static void
qlean_machine_class_init (QleanMachineClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->constructed = qlean_machine_constructed;
  object_class->dispose = qlean_machine_dispose;
  object_class->finalize = qlean_machine_finalize;
  object_class->get_property = qlean_machine_get_property;
  object_class->set_property = qlean_machine_set_property;

  /**
   * QleanMachine:name:
   *
   * The machine's name, also its guest hostname. A random `qlean-XXXXXX`
   * when not given.
   *
   * Since: 0.1
   */
  properties[PROP_NAME] =
    g_param_spec_string ("name", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * QleanMachine:image:
   *
   * What the machine boots; the minimal image when not given.
   *
   * Since: 0.1
   */
  properties[PROP_IMAGE] =
    g_param_spec_object ("image", NULL, NULL, QLEAN_TYPE_IMAGE,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * QleanMachine:config:
   *
   * A copy of the configuration the machine was made with.
   *
   * Since: 0.1
   */
  properties[PROP_CONFIG] =
    g_param_spec_object ("config", NULL, NULL, QLEAN_TYPE_MACHINE_CONFIG,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * QleanMachine:state:
   *
   * Where the machine is in its life. The getter always returns the
   * current state; notifications arrive on the creator's main context.
   *
   * Since: 0.1
   */
  properties[PROP_STATE] =
    g_param_spec_enum ("state", NULL, NULL, QLEAN_TYPE_MACHINE_STATE,
                       QLEAN_MACHINE_STATE_CREATED,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * QleanMachine:guest-transport:
   *
   * The channel this run of the machine uses to run processes and move
   * files in the guest: %QLEAN_GUEST_TRANSPORT_QLEAN_GUEST or
   * %QLEAN_GUEST_TRANSPORT_AGENT, decided once as the machine becomes
   * running from [property@MachineConfig:guest-transport] and whether
   * qlean-guest answered; %QLEAN_GUEST_TRANSPORT_AUTO while nothing is
   * decided (the machine is not running). A channel that dies later
   * fails the calls with an error that names it; they never switch to
   * the other one. Notifications arrive with those of
   * [property@Machine:state].
   *
   * Since: 0.1
   */
  properties[PROP_GUEST_TRANSPORT] =
    g_param_spec_enum ("guest-transport", NULL, NULL, QLEAN_TYPE_GUEST_TRANSPORT,
                       QLEAN_GUEST_TRANSPORT_AUTO,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * QleanMachine:boot-timeout:
   *
   * How long, in milliseconds, [method@Machine.spawn] waits for the guest
   * agent to answer before it fails with
   * %QLEAN_MACHINE_ERROR_AGENT_TIMEOUT.
   *
   * Since: 0.1
   */
  properties[PROP_BOOT_TIMEOUT] =
    g_param_spec_uint ("boot-timeout", NULL, NULL, 1, G_MAXUINT, DEFAULT_BOOT_TIMEOUT_MS,
                       G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * QleanMachine:shutdown-timeout:
   *
   * How long, in milliseconds, [method@Machine.shutdown] gives the guest
   * to power off before it asks QEMU to quit, then sends SIGTERM, then
   * SIGKILL (three seconds apart).
   *
   * Since: 0.1
   */
  properties[PROP_SHUTDOWN_TIMEOUT] =
    g_param_spec_uint ("shutdown-timeout", NULL, NULL, 0, G_MAXUINT, DEFAULT_SHUTDOWN_TIMEOUT_MS,
                       G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * QleanMachine:network:
   *
   * The [class@Network] the machine plugs into, or %NULL for a machine
   * without a network card (the agent needs none). The machine takes an
   * address on it when it first starts (a [class@Pool] reserves it when
   * the machine is added), and the network must run by then. Once the
   * agent answers, Qlean sets the address in the guest and lists every
   * machine of the network in its `/etc/hosts` before the start completes.
   *
   * Since: 0.1
   */
  properties[PROP_NETWORK] =
    g_param_spec_object ("network", NULL, NULL, QLEAN_TYPE_NETWORK,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * QleanMachine:mac-address:
   *
   * The MAC address of the machine's network card. Set it to override
   * the one its [property@Machine:network] derives from the network and
   * the machine's port; reading it gives the one in use, or %NULL for a
   * machine without a network.
   *
   * Since: 0.1
   */
  properties[PROP_MAC_ADDRESS] =
    g_param_spec_string ("mac-address", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * QleanMachine::ready:
   * @self: the machine
   *
   * Emitted when the guest agent first answers after a start.
   *
   * Since: 0.1
   */
  signals[SIGNAL_READY] =
    g_signal_new ("ready", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 0);

  /**
   * QleanMachine::stopped:
   * @self: the machine
   *
   * Emitted when QEMU has exited because it was asked to.
   *
   * Since: 0.1
   */
  signals[SIGNAL_STOPPED] =
    g_signal_new ("stopped", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 0);

  /**
   * QleanMachine::crashed:
   * @self: the machine
   *
   * Emitted when QEMU died unasked or the guest kernel panicked;
   * qlean_machine_dup_crash_reason() says which, and how.
   *
   * Since: 0.1
   */
  signals[SIGNAL_CRASHED] =
    g_signal_new ("crashed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 0);
}

static void
qlean_machine_init (QleanMachine *self)
{
  g_mutex_init (&self->lock);
  self->state = QLEAN_MACHINE_STATE_CREATED;
  self->boot_timeout_ms = DEFAULT_BOOT_TIMEOUT_MS;
  self->shutdown_timeout_ms = DEFAULT_SHUTDOWN_TIMEOUT_MS;
  self->exit_waiters = g_ptr_array_new_with_free_func (g_object_unref);

}

/**
 * qlean_machine_new:
 * @image: (nullable): what to boot; %NULL for the minimal image
 * @config: (nullable): resources and settings; %NULL for the defaults
 *
 * Creates a machine with a random name. Nothing runs until
 * [method@Machine.spawn].
 *
 * Returns: (transfer full): a new #QleanMachine
 *
 * Since: 0.1
 */
QleanMachine *
qlean_machine_new (QleanImage         *image,
                   QleanMachineConfig *config)
{
  return qlean_machine_new_with_name (NULL, image, config);
}

/**
 * qlean_machine_new_with_name:
 * @name: (nullable): the machine's name and guest hostname
 * @image: (nullable): what to boot; %NULL for the minimal image
 * @config: (nullable): resources and settings; %NULL for the defaults
 *
 * Creates a machine. Nothing runs until [method@Machine.spawn].
 *
 * Returns: (transfer full): a new #QleanMachine
 *
 * Since: 0.1
 */
QleanMachine *
qlean_machine_new_with_name (const char         *name,
                             QleanImage         *image,
                             QleanMachineConfig *config)
{
  g_return_val_if_fail (image == NULL || QLEAN_IS_IMAGE (image), NULL);
  g_return_val_if_fail (config == NULL || QLEAN_IS_MACHINE_CONFIG (config), NULL);

  return g_object_new (QLEAN_TYPE_MACHINE,
                       "name", name,
                       "image", image,
                       "config", config,
                       NULL);
}

/**
 * qlean_machine_get_name:
 * @self: a #QleanMachine
 *
 * Returns: the machine's name
 *
 * Since: 0.1
 */
const char *
qlean_machine_get_name (QleanMachine *self)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE (self), NULL);

  return self->name;
}

/**
 * qlean_machine_get_image:
 * @self: a #QleanMachine
 *
 * Returns: (transfer none): the machine's image
 *
 * Since: 0.1
 */
QleanImage *
qlean_machine_get_image (QleanMachine *self)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE (self), NULL);

  return self->image;
}

/**
 * qlean_machine_get_config:
 * @self: a #QleanMachine
 *
 * Returns: (transfer none): the machine's configuration; changing it has
 *   no effect on the machine
 *
 * Since: 0.1
 */
QleanMachineConfig *
qlean_machine_get_config (QleanMachine *self)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE (self), NULL);

  return self->config;
}

/**
 * qlean_machine_get_state:
 * @self: a #QleanMachine
 *
 * Returns: the machine's current state
 *
 * Since: 0.1
 */
QleanMachineState
qlean_machine_get_state (QleanMachine *self)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE (self), QLEAN_MACHINE_STATE_CREATED);

  return g_atomic_int_get (&self->state);
}

/**
 * qlean_machine_get_guest_transport:
 * @self: a #QleanMachine
 *
 * Gets [property@Machine:guest-transport]. Safe to call from any thread.
 *
 * Returns: the transport of the current run, or
 *   %QLEAN_GUEST_TRANSPORT_AUTO when none is decided
 *
 * Since: 0.1
 */
QleanGuestTransport
qlean_machine_get_guest_transport (QleanMachine *self)
{
  QleanGuestTransport transport;

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), QLEAN_GUEST_TRANSPORT_AUTO);

  g_mutex_lock (&self->lock);
  transport = qlean_machine_run_get_guest_transport (self->run);
  g_mutex_unlock (&self->lock);

  return transport;
}

/**
 * qlean_machine_get_run_dir:
 * @self: a #QleanMachine
 *
 * The private directory (mode 0700) holding the machine's sockets, serial
 * console log, QEMU log and disks while it runs.
 *
 * Returns: (nullable): the run directory, or %NULL when not running
 *
 * Since: 0.1
 */
const char *
qlean_machine_get_run_dir (QleanMachine *self)
{
  const char *run_dir;

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), NULL);

  g_mutex_lock (&self->lock);
  run_dir = self->run->run_dir;
  g_mutex_unlock (&self->lock);

  return run_dir;
}

/**
 * qlean_machine_get_console_path:
 * @self: a #QleanMachine
 *
 * The serial console log of the running machine. It keeps the first MiB
 * of the console's output and its last 2 to 4 MiB: when a guest writes
 * more, the output between is dropped, a line in the file says where,
 * and the file is replaced by its shorter copy (a reader that holds it
 * open keeps reading the old copy; `tail -F` follows). Output reaches
 * the file a few milliseconds after the guest wrote it.
 *
 * Returns: (transfer full) (nullable): the serial console log of the
 *   running machine
 *
 * Since: 0.1
 */
char *
qlean_machine_get_console_path (QleanMachine *self)
{
  char *path = NULL;

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), NULL);

  g_mutex_lock (&self->lock);
  if (self->run->run_dir != NULL)
    path = g_build_filename (self->run->run_dir, QLEAN_CONSOLE_LOG, NULL);
  g_mutex_unlock (&self->lock);

  return path;
}

/* The console log of the current run, or NULL when not running. */
QleanConsoleLog *
qlean_machine_ref_console_log (QleanMachine *self)
{
  QleanConsoleLog *console = NULL;

  g_mutex_lock (&self->lock);
  if (self->run->console != NULL)
    console = qlean_console_log_ref (self->run->console);
  g_mutex_unlock (&self->lock);

  return console;
}

/**
 * qlean_machine_save_logs:
 * @self: a #QleanMachine
 * @directory: (type filename): where to put the logs; made if missing
 * @error: return location for a #GError
 *
 * Copies what the machine's current run has logged so far into the
 * directory: `console.log` (the serial console), `transcript.log`
 * (every QMP and guest agent message, timed, with its direction) and
 * `qemu.log` (QEMU's own output). When the machine is not running, the
 * logs of its last run are saved: they are kept in memory (the last MiB
 * of each) when the run ends, since its run directory is removed.
 *
 * Test helpers call this when a test fails, so that a failure can be
 * understood after the machine is gone.
 *
 * Returns: %TRUE when the logs were saved; %FALSE with
 *   %QLEAN_MACHINE_ERROR_INVALID_STATE when the machine never ran, or an
 *   I/O error
 *
 * Since: 0.1
 */
gboolean
qlean_machine_save_logs (QleanMachine  *self,
                         const char    *directory,
                         GError       **error)
{
  g_autoptr(QleanConsoleLog) console = NULL;
  g_autofree char *run_dir = NULL;

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), FALSE);
  g_return_val_if_fail (directory != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  g_mutex_lock (&self->lock);
  run_dir = g_strdup (self->run->run_dir);
  if (run_dir == NULL && self->last_logs != NULL)
    {
      gboolean saved = qlean_run_logs_save (self->last_logs, directory, error);

      g_mutex_unlock (&self->lock);
      return saved;
    }
  g_mutex_unlock (&self->lock);

  if (run_dir == NULL)
    {
      g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE,
                   _("Machine “%s” has no logs to save: it has never run"), self->name);
      return FALSE;
    }

  /* What the guest wrote last may still be in the console's pipe. */
  console = qlean_machine_ref_console_log (self);
  if (console != NULL)
    qlean_console_log_flush (console);

  return qlean_run_logs_save_dir (run_dir, directory, error);
}

/**
 * qlean_machine_get_pid:
 * @self: a #QleanMachine
 *
 * Returns: the QEMU process id, or 0 when QEMU is not running
 *
 * Since: 0.1
 */
GPid
qlean_machine_get_pid (QleanMachine *self)
{
  GPid pid;

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), 0);

  g_mutex_lock (&self->lock);
  pid = self->run->pid;
  g_mutex_unlock (&self->lock);

  return pid;
}

/**
 * qlean_machine_get_network:
 * @self: a #QleanMachine
 *
 * Returns: (transfer none) (nullable): the network the machine plugs
 *   into, or %NULL
 *
 * Since: 0.1
 */
QleanNetwork *
qlean_machine_get_network (QleanMachine *self)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE (self), NULL);

  return self->network;
}

/**
 * qlean_machine_dup_mac_address:
 * @self: a #QleanMachine
 *
 * The MAC address of the machine's network card: the one set in
 * [property@Machine:mac-address], or the one its network gives it, or,
 * on a [property@MachineConfig:bridge], a random one picked when the
 * machine was created.
 *
 * Returns: (transfer full) (nullable): the MAC address, or %NULL for a
 *   machine without a network card
 *
 * Since: 0.1
 */
char *
qlean_machine_dup_mac_address (QleanMachine *self)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE (self), NULL);

  if (self->network == NULL && qlean_machine_config_get_bridge (self->config) == NULL)
    return NULL;
  if (self->mac_address != NULL)
    return g_ascii_strdown (self->mac_address, -1);

  return qlean_network_dup_mac_address (self->network, self->name);
}

/**
 * qlean_machine_dup_qmp:
 * @self: a #QleanMachine
 *
 * The machine's QMP connection, for commands Qlean has no call for.
 *
 * Returns: (transfer full) (nullable): the QMP client while QEMU runs
 *
 * Since: 0.1
 */
QleanQmpClient *
qlean_machine_dup_qmp (QleanMachine *self)
{
  QleanQmpClient *qmp;

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), NULL);

  g_mutex_lock (&self->lock);
  qmp = self->run->qmp ? g_object_ref (self->run->qmp) : NULL;
  g_mutex_unlock (&self->lock);

  return qmp;
}

/**
 * qlean_machine_dup_qga:
 * @self: a #QleanMachine
 *
 * The machine's guest agent connection, for commands Qlean has no call
 * for.
 *
 * Returns: (transfer full) (nullable): the agent client while QEMU runs
 *
 * Since: 0.1
 */
QleanQgaClient *
qlean_machine_dup_qga (QleanMachine *self)
{
  QleanQgaClient *qga;

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), NULL);

  g_mutex_lock (&self->lock);
  qga = self->run->qga ? g_object_ref (self->run->qga) : NULL;
  g_mutex_unlock (&self->lock);

  return qga;
}

/**
 * qlean_machine_dup_crash_reason:
 * @self: a #QleanMachine
 *
 * Why the machine last crashed: the guest kernel panicked (with the
 * kernel's panic line from the console, when it printed one), or how
 * QEMU ended with the end of its output.
 *
 * Returns: (transfer full) (nullable): the reason, or %NULL if the
 *   machine never crashed
 *
 * Since: 0.1
 */
char *
qlean_machine_dup_crash_reason (QleanMachine *self)
{
  char *reason;

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), NULL);

  g_mutex_lock (&self->lock);
  reason = g_strdup (self->crash_reason);
  g_mutex_unlock (&self->lock);

  return reason;
}

/**
 * qlean_machine_get_boot_timeout:
 * @self: a #QleanMachine
 *
 * Returns: the boot timeout in milliseconds
 *
 * Since: 0.1
 */
guint
qlean_machine_get_boot_timeout (QleanMachine *self)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE (self), 0);

  return g_atomic_int_get (&self->boot_timeout_ms);
}

/**
 * qlean_machine_set_boot_timeout:
 * @self: a #QleanMachine
 * @timeout_ms: milliseconds
 *
 * Sets [property@Machine:boot-timeout].
 *
 * Since: 0.1
 */
void
qlean_machine_set_boot_timeout (QleanMachine *self,
                                guint         timeout_ms)
{
  g_return_if_fail (QLEAN_IS_MACHINE (self));

  if ((guint) g_atomic_int_exchange (&self->boot_timeout_ms, timeout_ms) != timeout_ms)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_BOOT_TIMEOUT]);
}

/**
 * qlean_machine_get_shutdown_timeout:
 * @self: a #QleanMachine
 *
 * Returns: the shutdown timeout in milliseconds
 *
 * Since: 0.1
 */
guint
qlean_machine_get_shutdown_timeout (QleanMachine *self)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE (self), 0);

  return g_atomic_int_get (&self->shutdown_timeout_ms);
}

/**
 * qlean_machine_set_shutdown_timeout:
 * @self: a #QleanMachine
 * @timeout_ms: milliseconds
 *
 * Sets [property@Machine:shutdown-timeout].
 *
 * Since: 0.1
 */
void
qlean_machine_set_shutdown_timeout (QleanMachine *self,
                                    guint         timeout_ms)
{
  g_return_if_fail (QLEAN_IS_MACHINE (self));

  if ((guint) g_atomic_int_exchange (&self->shutdown_timeout_ms, timeout_ms) != timeout_ms)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_SHUTDOWN_TIMEOUT]);
}

/* State kept beyond one run */

void
qlean_machine_set_incoming (QleanMachine *self,
                            const char   *state_path,
                            gboolean      new_identity,
                            const char   *old_mac)
{
  g_free (self->incoming);
  self->incoming = g_strdup (state_path);
  self->incoming_new_identity = new_identity;
  g_free (self->incoming_old_mac);
  self->incoming_old_mac = g_strdup (old_mac);
}

char *
qlean_machine_ensure_state_dir (QleanMachine  *self,
                                const char    *subdir,
                                GError       **error)
{
  g_autofree char *name = NULL;
  char *path;

  g_mutex_lock (&self->lock);
  if (self->state_dir == NULL)
    {
      name = g_strconcat (self->name, ".state", NULL);
      self->state_dir = qlean_host_make_run_dir (name, error);
    }
  path = self->state_dir ? g_build_filename (self->state_dir, subdir, NULL) : NULL;
  g_mutex_unlock (&self->lock);

  if (path != NULL && g_mkdir_with_parents (path, 0700) != 0)
    {
      int saved_errno = errno;

      qlean_set_error_from_errno (error, saved_errno,
                                  _("Cannot create %s"), path);
      g_clear_pointer (&path, g_free);
    }

  return path;
}
