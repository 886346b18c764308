/* qlean-machine.c: a throwaway virtual machine
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <utime.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <glib/gstdio.h>
#include <glib/gi18n-lib.h>
#include <gio/gunixsocketaddress.h>

#include "qlean-enums.h"
#include "qlean-error.h"
#include "qlean-guest-launcher.h"
#include "qlean-guest-process-private.h"
#include "qlean-guest-relay-private.h"
#include "qlean-host-private.h"
#include "qlean-image-private.h"
#include "qlean-machine-forward-private.h"
#include "qlean-machine-network-private.h"
#include "qlean-machine-private.h"
#include "qlean-qemu-argv-private.h"
#include "qlean-qga-client-private.h"
#include "qlean-qga-error.h"
#include "qlean-qmp-client-private.h"
#include "qlean-run-logs-private.h"
#include "qlean-sync-private.h"
#include "qlean-util-private.h"
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
 */

#define DEFAULT_BOOT_TIMEOUT_MS 60000
#define DEFAULT_SHUTDOWN_TIMEOUT_MS 20000
#define ESCALATION_STEP_MS 3000
#define SYNC_ATTEMPT_MS 3000
#define QMP_FAILURE_GRACE_MS 1000
#define TAIL_LINES 20
/* Where the kernel's panic line is looked for: it prints a stack trace
 * and more after it. */
#define PANIC_TAIL_LINES 80
/* The descriptor QEMU inherits the saved state it loads on. */
#define QLEAN_STATE_FD 6
/* The descriptor QEMU writes the serial console to (a pipe). */
#define QLEAN_CONSOLE_FD 7

struct _QleanMachine
{
  GObject             parent_instance;

  char               *name;
  QleanImage         *image;
  QleanMachineConfig *config;
  GMainContext       *owner_context;
  QleanLink          *link;
  gint                state;
  guint               boot_timeout_ms;
  guint               shutdown_timeout_ms;
  gint                notify_pending;
  /* The transport of this run (QleanGuestTransport): AUTO until it is
   * decided, once per run, as the machine becomes ready. */
  gint                guest_transport;
  /* Pool network (qlean-machine-network.c); fixed at construction. */
  QleanNetwork       *network;
  char               *mac_address;

  /* Written on the worker, read anywhere: under the lock. */
  GMutex              lock;
  char               *run_dir;
  GPid                pid;
  QleanQmpClient     *qmp;
  QleanQgaClient     *qga;
  QleanGuestChannel  *guest;
  char               *crash_reason;
  QleanRunLogs       *last_logs;   /* of the last run, for save_logs */
  QleanGuestRelay    *relay;
  gboolean            attached;
  QleanConsoleLog    *console;     /* of the current run */

  /* Worker only. */
  GSubprocess        *qemu;
  gboolean            qemu_exited;
  gboolean            stop_requested;
  gboolean            panicked;
  gboolean            first_boot;       /* initialize(): boot with the cloud-init seed */
  /* Restoring a saved state (qlean-machine-snapshot.c) */
  char               *incoming;         /* state file the next start loads */
  gboolean            incoming_new_identity;
  char               *incoming_old_mac; /* the saved card's MAC, to replace */
  gboolean            restoring;        /* this start loads a state */
  gboolean            restore_fixing;
  gboolean            restore_fixed;
  GSource            *incoming_poll;
  char               *state_dir;        /* snapshots; lives as long as the machine */
  char               *boot_state_save;  /* fast start: save the boot here once ready */
  int                 boot_state_lock;  /* fast start: flock held while saving or loading */
  char               *boot_state_used;  /* fast start: the state this start loads */
  /* Memory templates: the RAM file a saving machine runs on (shared;
   * copied to the template when saved, removed with the run), and
   * whether this start maps a template privately. */
  char               *mem_template_work;
  gboolean            mem_template_load;
  char               *mem_template_ram;   /* the template this start maps */
  GTask              *spawn_task;
  GError             *spawn_error;
  GSource            *boot_timer;
  GSource            *spawn_cancel;
  GSource            *qmp_grace_timer;
  gboolean            qmp_ready;
  gboolean            agent_ready;
  gint64              hello_deadline;   /* auto transport: how long HELLO may take */
  GSource            *hello_timer;
  gboolean            network_configuring;
  gboolean            network_ready;
  /* Shared folders: mounted in the guest once per start. */
  gboolean            shares_mounting;
  gboolean            shares_mounted;
  GPtrArray          *exit_waiters;
  GSource            *shutdown_timer;
  guint               shutdown_stage;
};

G_DEFINE_FINAL_TYPE (QleanMachine, qlean_machine, G_TYPE_OBJECT)

G_DEFINE_QUARK (qlean-machine-error-quark, qlean_machine_error)

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

enum {
  SIGNAL_READY,
  SIGNAL_STOPPED,
  SIGNAL_CRASHED,
  N_SIGNALS
};

static GParamSpec *properties[N_PROPS];
static guint signals[N_SIGNALS];

static void qlean_machine_spawn_fail     (QleanMachine *self,
                                          GError       *error);
static void qlean_machine_spawn_maybe_done (QleanMachine *self);
static char *qlean_machine_panic_text (QleanMachine *self);
static void qlean_machine_guest_panicked (QleanMachine *self);
static void qlean_machine_guest_hello_cb (GObject      *source,
                                          GAsyncResult *result,
                                          gpointer      user_data);

/* Machine link */

static void
machine_link_closure_notify (gpointer  data,
                             GClosure *closure)
{
  qlean_link_unref (data);
}

/* States and signals */

const char *
qlean_machine_state_to_string (QleanMachineState state)
{
  switch (state)
    {
    case QLEAN_MACHINE_STATE_CREATED: return "created";
    case QLEAN_MACHINE_STATE_STARTING: return "starting";
    case QLEAN_MACHINE_STATE_RUNNING: return "running";
    case QLEAN_MACHINE_STATE_PAUSED: return "paused";
    case QLEAN_MACHINE_STATE_STOPPED: return "stopped";
    case QLEAN_MACHINE_STATE_CRASHED: return "crashed";
    default: return "unknown";
    }
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

static void
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

gboolean
qlean_machine_check_running (QleanMachine  *self,
                             const char    *what,
                             GError       **error)
{
  QleanMachineState state = qlean_machine_get_state (self);

  if (state == QLEAN_MACHINE_STATE_RUNNING)
    return TRUE;

  g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE,
               _("Cannot %s on machine “%s”: it is %s, not running"),
               what, self->name, qlean_machine_state_to_string (state));
  return FALSE;
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
  pid = self->qemu_exited ? 0 : self->pid;
  self->pid = 0;
  g_mutex_unlock (&self->lock);

  if (pid > 0)
    {
      /* Through GSubprocess, which knows whether QEMU was reaped: by
       * now the pid alone may name another process. */
      g_subprocess_force_exit (self->qemu);
      qlean_host_wait_for_death (pid);
    }
  g_clear_pointer (&self->console, qlean_console_log_unref);

  if (self->qmp != NULL)
    qlean_qmp_client_close (self->qmp);
  if (self->qga != NULL)
    qlean_qga_client_close (self->qga);
  if (self->relay != NULL)
    qlean_worker_invoke (qlean_machine_close_relay_cb, g_steal_pointer (&self->relay), g_object_unref);
  if (self->guest != NULL)
    qlean_guest_channel_close (self->guest);
  g_clear_object (&self->qmp);
  g_clear_object (&self->qga);
  g_clear_object (&self->guest);

  if (self->run_dir != NULL && qlean_machine_config_get_clear (self->config))
    qlean_rm_rf (self->run_dir, NULL);
  g_clear_pointer (&self->run_dir, g_free);
  if (self->state_dir != NULL && qlean_machine_config_get_clear (self->config))
    qlean_rm_rf (self->state_dir, NULL);
  g_clear_pointer (&self->state_dir, g_free);
  qlean_clear_source (&self->incoming_poll);

  qlean_clear_source (&self->boot_timer);
  qlean_clear_source (&self->hello_timer);
  qlean_clear_source (&self->spawn_cancel);
  qlean_clear_source (&self->qmp_grace_timer);
  qlean_clear_source (&self->shutdown_timer);
  g_clear_object (&self->qemu);

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

  g_assert (self->spawn_task == NULL);
  g_clear_pointer (&self->exit_waiters, g_ptr_array_unref);
  g_clear_error (&self->spawn_error);
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
  g_free (self->boot_state_save);
  g_free (self->boot_state_used);
  if (self->mem_template_work != NULL)
    g_unlink (self->mem_template_work);
  g_free (self->mem_template_work);
  g_free (self->mem_template_ram);
  if (self->boot_state_lock >= 0)
    close (self->boot_state_lock);
  g_mutex_clear (&self->lock);

  G_OBJECT_CLASS (qlean_machine_parent_class)->finalize (object);
}

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
   */
  properties[PROP_NAME] =
    g_param_spec_string ("name", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * QleanMachine:image:
   *
   * What the machine boots; the minimal image when not given.
   */
  properties[PROP_IMAGE] =
    g_param_spec_object ("image", NULL, NULL, QLEAN_TYPE_IMAGE,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * QleanMachine:config:
   *
   * A copy of the configuration the machine was made with.
   */
  properties[PROP_CONFIG] =
    g_param_spec_object ("config", NULL, NULL, QLEAN_TYPE_MACHINE_CONFIG,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * QleanMachine:state:
   *
   * Where the machine is in its life. The getter always returns the
   * current state; notifications arrive on the creator's main context.
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
   */
  signals[SIGNAL_READY] =
    g_signal_new ("ready", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 0);

  /**
   * QleanMachine::stopped:
   * @self: the machine
   *
   * Emitted when QEMU has exited because it was asked to.
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
  self->boot_state_lock = -1;
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
 */
QleanGuestTransport
qlean_machine_get_guest_transport (QleanMachine *self)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE (self), QLEAN_GUEST_TRANSPORT_AUTO);

  return g_atomic_int_get (&self->guest_transport);
}

gboolean
qlean_machine_uses_agent_only (QleanMachine *self)
{
  return g_atomic_int_get (&self->guest_transport) == QLEAN_GUEST_TRANSPORT_AGENT ||
         qlean_machine_config_get_guest_transport (self->config) == QLEAN_GUEST_TRANSPORT_AGENT;
}

/**
 * qlean_machine_get_run_dir:
 * @self: a #QleanMachine
 *
 * The private directory (mode 0700) holding the machine's sockets, serial
 * console log, QEMU log and disks while it runs.
 *
 * Returns: (nullable): the run directory, or %NULL when not running
 */
const char *
qlean_machine_get_run_dir (QleanMachine *self)
{
  const char *run_dir;

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), NULL);

  g_mutex_lock (&self->lock);
  run_dir = self->run_dir;
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
 */
char *
qlean_machine_get_console_path (QleanMachine *self)
{
  char *path = NULL;

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), NULL);

  g_mutex_lock (&self->lock);
  if (self->run_dir != NULL)
    path = g_build_filename (self->run_dir, QLEAN_CONSOLE_LOG, NULL);
  g_mutex_unlock (&self->lock);

  return path;
}

/* The console log of the current run, or NULL when not running. */
QleanConsoleLog *
qlean_machine_ref_console_log (QleanMachine *self)
{
  QleanConsoleLog *console = NULL;

  g_mutex_lock (&self->lock);
  if (self->console != NULL)
    console = qlean_console_log_ref (self->console);
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
  run_dir = g_strdup (self->run_dir);
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
 */
GPid
qlean_machine_get_pid (QleanMachine *self)
{
  GPid pid;

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), 0);

  g_mutex_lock (&self->lock);
  pid = self->pid;
  g_mutex_unlock (&self->lock);

  return pid;
}

/**
 * qlean_machine_get_network:
 * @self: a #QleanMachine
 *
 * Returns: (transfer none) (nullable): the network the machine plugs
 *   into, or %NULL
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
 * qlean_machine_get_qmp:
 * @self: a #QleanMachine
 *
 * The machine's QMP connection, for commands Qlean has no call for.
 *
 * Returns: (transfer full) (nullable): the QMP client while QEMU runs
 */
QleanQmpClient *
qlean_machine_get_qmp (QleanMachine *self)
{
  QleanQmpClient *qmp;

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), NULL);

  g_mutex_lock (&self->lock);
  qmp = self->qmp ? g_object_ref (self->qmp) : NULL;
  g_mutex_unlock (&self->lock);

  return qmp;
}

/**
 * qlean_machine_get_qga:
 * @self: a #QleanMachine
 *
 * The machine's guest agent connection, for commands Qlean has no call
 * for.
 *
 * Returns: (transfer full) (nullable): the agent client while QEMU runs
 */
QleanQgaClient *
qlean_machine_get_qga (QleanMachine *self)
{
  QleanQgaClient *qga;

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), NULL);

  g_mutex_lock (&self->lock);
  qga = self->qga ? g_object_ref (self->qga) : NULL;
  g_mutex_unlock (&self->lock);

  return qga;
}

/* One setting, QleanQgaClient:timeout, bounds every wait on the guest's
 * programs: the agent's answers and qlean-guest's frames alike. */
guint
qlean_machine_get_guest_timeout (QleanMachine *self)
{
  g_autoptr(QleanQgaClient) qga = qlean_machine_get_qga (self);

  return qga != NULL ? qlean_qga_client_get_timeout (qga) : 0;
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
 */
void
qlean_machine_set_shutdown_timeout (QleanMachine *self,
                                    guint         timeout_ms)
{
  g_return_if_fail (QLEAN_IS_MACHINE (self));

  if ((guint) g_atomic_int_exchange (&self->shutdown_timeout_ms, timeout_ms) != timeout_ms)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_SHUTDOWN_TIMEOUT]);
}

/* The QEMU command line */

typedef struct
{
  QleanQemuSpec      spec;
  char              *qemu_binary;
  char              *cmdline;
  QleanNetworkLease *net_lease;
  QleanQemuShare    *shares;
} ResolvedSpec;

static void
resolved_spec_clear (ResolvedSpec *resolved)
{
  g_clear_pointer (&resolved->qemu_binary, g_free);
  g_clear_pointer (&resolved->cmdline, g_free);
  g_clear_pointer (&resolved->net_lease, qlean_network_lease_free);
  g_clear_pointer (&resolved->shares, g_free);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (ResolvedSpec, resolved_spec_clear)

static gboolean
check_readable (const char  *what,
                const char  *path,
                GError     **error)
{
  if (path == NULL || g_access (path, R_OK) == 0)
    return TRUE;

  g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG,
               _("The %s %s does not exist or cannot be read (%s); fix the machine "
                 "configuration or the image"),
               what, path, g_strerror (errno));
  return FALSE;
}

/* Everything QEMU's argv depends on, from the config and the prepared
 * image. Checks the inputs a user can get wrong, so that the error names
 * the path instead of leaving QEMU to fail later. */
/* Where the kernel at @path ends in guest memory, in bytes: an x86 ELF
 * (the minimal image's vmlinux) is loaded at its physical addresses, a
 * bzImage decompresses from its preferred address over init_size bytes;
 * any other kernel takes at least its file's size. 0 when unreadable. */
static guint64
kernel_memory_end (const char *path)
{
  g_autoptr(GMappedFile) file = g_mapped_file_new (path, FALSE, NULL);
  const guchar *data;
  gsize len;

  if (file == NULL)
    return 0;
  data = (const guchar *) g_mapped_file_get_contents (file);
  len = g_mapped_file_get_length (file);

  if (len >= sizeof (Elf64_Ehdr) && memcmp (data, ELFMAG, SELFMAG) == 0 &&
      data[EI_CLASS] == ELFCLASS64 && data[EI_DATA] == ELFDATA2LSB)
    {
      Elf64_Ehdr ehdr;
      guint64 end = 0;

      memcpy (&ehdr, data, sizeof ehdr);
      if (ehdr.e_machine != EM_X86_64 || ehdr.e_phentsize != sizeof (Elf64_Phdr) ||
          ehdr.e_phoff > len || ehdr.e_phnum > (len - ehdr.e_phoff) / sizeof (Elf64_Phdr))
        return 0;
      for (guint i = 0; i < ehdr.e_phnum; i++)
        {
          Elf64_Phdr phdr;

          memcpy (&phdr, data + ehdr.e_phoff + i * sizeof phdr, sizeof phdr);
          if (phdr.p_type == PT_LOAD && phdr.p_paddr < G_MAXUINT32 && phdr.p_memsz < G_MAXUINT32)
            end = MAX (end, phdr.p_paddr + phdr.p_memsz);
        }
      return end;
    }

  /* The x86 boot protocol's setup header: "HdrS", version 2.10 or later
   * for pref_address and init_size. */
  if (len >= 0x264 && memcmp (data + 0x202, "HdrS", 4) == 0)
    {
      guint64 pref_address;
      guint32 init_size;
      guint16 version;

      memcpy (&version, data + 0x206, sizeof version);
      if (GUINT16_FROM_LE (version) < 0x20a)
        return len;
      memcpy (&pref_address, data + 0x258, sizeof pref_address);
      memcpy (&init_size, data + 0x260, sizeof init_size);
      pref_address = GUINT64_FROM_LE (pref_address);
      if (pref_address >= G_MAXUINT32)
        return 0;
      return pref_address + GUINT32_FROM_LE (init_size);
    }

  return len;
}

/* Refuses, before QEMU starts, memory that cannot even hold the kernel
 * and unpack the initramfs: such a guest dies before it prints a word,
 * and would be seen only as a boot timeout. This is a floor, not what a
 * workload needs (the minimal image needs about 90 MiB to boot). */
static gboolean
qlean_machine_check_memory (QleanMachine   *self,
                            QleanQemuSpec  *spec,
                            GError        **error)
{
  guint64 need = 0;
  guint need_mib;
  GStatBuf st;

  if (spec->kernel == NULL)
    return TRUE;

  need = kernel_memory_end (spec->kernel);
  /* The initramfs is loaded whole, then unpacked into memory beside it
   * (to at least its size when it is compressed). */
  if (spec->initrd != NULL && g_stat (spec->initrd, &st) == 0)
    need += 2 * (guint64) st.st_size;
  need_mib = (need + 1024 * 1024 - 1) / (1024 * 1024);

  if (spec->memory_mib < need_mib)
    {
      g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG,
                   _("Machine “%s” has %u MiB of memory, but its kernel and initramfs need "
                     "at least %u MiB to start; give it more (the memory-mib setting, "
                     "or qlean run -m)"),
                   self->name, spec->memory_mib, need_mib);
      return FALSE;
    }

  return TRUE;
}

static gboolean
qlean_machine_resolve_spec (QleanMachine  *self,
                            const char    *run_dir,
                            ResolvedSpec  *resolved,
                            GError       **error)
{
  QleanMachineConfig *config = self->config;
  QleanQemuSpec *spec = &resolved->spec;
  const char *extra_cmdline = qlean_machine_config_get_cmdline (config);
  const char *image_cmdline = qlean_image_get_cmdline (self->image);
  QleanAccel accel = qlean_machine_config_get_accel (config);
  QleanArch arch = qlean_image_get_guest_arch (self->image);
  g_autofree char *kvm_reason = NULL;
  GString *cmdline;

  memset (resolved, 0, sizeof *resolved);

  resolved->qemu_binary = qlean_host_find_qemu_for_arch (qlean_machine_config_get_qemu_binary (config),
                                                         arch, error);
  if (resolved->qemu_binary == NULL)
    return FALSE;

  spec->qemu_binary = resolved->qemu_binary;
  spec->arch = qlean_arch_get_info (arch);
  spec->name = self->name;
  spec->run_dir = run_dir;
  spec->cores = qlean_machine_config_get_cores (config);
  spec->memory_mib = qlean_machine_config_get_memory_mib (config);
  if (spec->memory_mib == 0)
    spec->memory_mib = qlean_image_get_default_memory_mib (self->image);
  spec->kernel = qlean_machine_config_get_kernel (config);
  if (spec->kernel == NULL)
    spec->kernel = qlean_image_get_kernel (self->image);
  spec->initrd = qlean_machine_config_get_initrd (config);
  if (spec->initrd == NULL)
    spec->initrd = qlean_image_get_initrd (self->image);
  if (!qlean_machine_check_memory (self, spec, error))
    return FALSE;
  spec->extra_args = qlean_machine_config_get_extra_args (config);
  spec->qmp_fd = spec->qga_fd = spec->data_fd = spec->console_fd = -1;

  spec->n_shares = qlean_machine_config_get_n_shares (config);
  if (spec->n_shares > 0)
    {
      resolved->shares = g_new0 (QleanQemuShare, spec->n_shares);
      for (guint i = 0; i < spec->n_shares; i++)
        {
          QleanShareFlags flags;

          resolved->shares[i].host_path = qlean_machine_config_get_share (config, i, NULL, &flags);
          resolved->shares[i].readonly = (flags & QLEAN_SHARE_READONLY) != 0;
          resolved->shares[i].mapped_xattr = (flags & QLEAN_SHARE_MAPPED_XATTR) != 0;
        }
      spec->shares = resolved->shares;
      /* The minimal image's own kernel has no 9p: such a machine boots
       * the image's share boot (see qlean_image_want_share_boot()). */
      if (qlean_machine_config_get_kernel (config) == NULL &&
          qlean_machine_config_get_initrd (config) == NULL)
        qlean_image_get_share_boot (self->image, &spec->kernel, &spec->initrd);
    }

  if (self->network != NULL)
    {
      resolved->net_lease = qlean_machine_network_resolve (self, self->network, self->mac_address, error);
      if (resolved->net_lease == NULL)
        return FALSE;
      spec->net_socket = resolved->net_lease->socket_path;
      spec->net_port = resolved->net_lease->port;
      spec->net_mac = resolved->net_lease->mac_address;
    }

  if (qlean_machine_config_get_bridge (config) != NULL)
    {
      if (self->network != NULL)
        {
          g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG,
                       _("Machine “%s” has both a network (“%s”) and a bridge (“%s”); "
                         "give it only one of them"), self->name,
                       qlean_network_get_name (self->network),
                       qlean_machine_config_get_bridge (config));
          return FALSE;
        }
      if (!g_file_test (QLEAN_BRIDGE_HELPER, G_FILE_TEST_IS_EXECUTABLE))
        {
          g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG,
                       _("Machine “%s” is to use bridge “%s”, but QEMU's bridge helper %s "
                         "is missing; install qemu-system-common"), self->name,
                       qlean_machine_config_get_bridge (config), QLEAN_BRIDGE_HELPER);
          return FALSE;
        }
      spec->net_bridge = qlean_machine_config_get_bridge (config);
      spec->net_bridge_helper = QLEAN_BRIDGE_HELPER;
      spec->net_mac = self->mac_address;
    }

  if (!check_readable ("kernel", spec->kernel, error) ||
      !check_readable ("initrd", spec->initrd, error))
    return FALSE;

  /* KVM runs guests of the host's own architecture only; any other is
   * emulated by TCG. */
  if (!qlean_arch_is_host (arch) && accel == QLEAN_ACCEL_KVM)
    {
      g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG,
                   _("KVM was asked for, but machine “%s” is an %s guest on an %s host, which "
                     "only TCG can run; use accel “auto” or “tcg”"), self->name,
                   qlean_arch_to_string (arch), qlean_arch_to_string (qlean_arch_get_host ()));
      return FALSE;
    }
  if (!qlean_arch_is_host (arch))
    accel = QLEAN_ACCEL_TCG;

  switch (accel)
    {
    case QLEAN_ACCEL_KVM:
      if (!qlean_host_kvm_usable (resolved->qemu_binary, &kvm_reason))
        {
          g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG,
                       _("KVM was asked for but is not usable: %s; use accel “auto” or “tcg”"),
                       kvm_reason);
          return FALSE;
        }
      spec->kvm = TRUE;
      break;
    case QLEAN_ACCEL_TCG:
      spec->kvm = FALSE;
      break;
    case QLEAN_ACCEL_AUTO:
    default:
      spec->kvm = qlean_host_kvm_usable (resolved->qemu_binary, NULL);
      break;
    }

  cmdline = g_string_new (image_cmdline);
  /* Kernel warnings and worse go to the console log (never to the
   * caller's terminal), so that a boot that fails says why, a panic
   * above all; before the caller's parameters, which may change it. */
  g_string_append (cmdline, " loglevel=5");
  if (extra_cmdline != NULL && *extra_cmdline != '\0')
    g_string_append_printf (cmdline, " %s", extra_cmdline);
  /* Calibrating the APIC timer costs ~0.1 s under TCG; with one CPU the
   * kernel does without it. */
  if (spec->cores == 1 && qlean_image_get_kind (self->image) == QLEAN_IMAGE_KIND_MINIMAL &&
      spec->arch->one_core_cmdline != NULL)
    g_string_append_printf (cmdline, " %s", spec->arch->one_core_cmdline);
  /* The minimal image's init then asks the bridge for an address. */
  if (spec->net_bridge != NULL)
    g_string_append (cmdline, " qlean.dhcp=1");
  g_string_append_printf (cmdline, " qlean.hostname=%s", self->name);
  resolved->cmdline = g_string_free (cmdline, FALSE);
  spec->cmdline = resolved->cmdline;

  return TRUE;
}

/**
 * qlean_machine_dry_run:
 * @self: a #QleanMachine
 * @error: return location for a #GError
 *
 * The QEMU command line [method@Machine.spawn] would run, one argument per
 * string, with sockets given by path in a run directory that does not
 * exist yet. Prepares the image (which may build the minimal image once)
 * but starts nothing.
 *
 * Returns: (transfer full) (array zero-terminated=1): the argv, or %NULL
 *   with @error set
 */
char **
qlean_machine_dry_run (QleanMachine  *self,
                       GError       **error)
{
  g_auto(ResolvedSpec) resolved = { { 0 } };
  g_autofree char *base = NULL;
  g_autofree char *run_dir = NULL;

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), NULL);

  if (qlean_machine_config_get_n_shares (self->config) > 0)
    qlean_image_want_share_boot (self->image);
  if (!qlean_image_prepare (self->image, NULL, error))
    return NULL;

  base = qlean_host_run_base (error);
  if (base == NULL)
    return NULL;
  run_dir = g_strdup_printf ("%s/%s-XXXXXX", base, self->name);

  if (!qlean_machine_resolve_spec (self, run_dir, &resolved, error))
    return NULL;

  if (qlean_image_get_disk (self->image) != NULL)
    {
      g_autofree char *disk = g_build_filename (run_dir, "disk.qcow2", NULL);

      resolved.spec.disk = disk;
      resolved.spec.disk_base = qlean_image_get_disk (self->image);
      resolved.spec.disk_base_format = qlean_image_get_disk_format (self->image);
      return qlean_qemu_argv_build (&resolved.spec);
    }

  return qlean_qemu_argv_build (&resolved.spec);
}

/* Disks */

/* The machine's own disk: a qcow2 overlay on the image's, made at the
 * first start and kept, like the rest of the machine's state, until the
 * machine goes; so what the first boot wrote is there at the next. The
 * image's disk is never written. */
static char *
qlean_machine_ensure_overlay (QleanMachine  *self,
                              const char    *base,
                              GError       **error)
{
  g_autofree char *dir = qlean_machine_ensure_state_dir (self, "disks", error);
  g_autofree char *path = NULL;
  g_autofree char *format = NULL;
  g_autofree char *err = NULL;
  g_autofree char *size = NULL;
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  guint disk_gib = qlean_machine_config_get_disk_gib (self->config);
  int status;

  if (dir == NULL)
    return NULL;

  path = g_build_filename (dir, "disk.qcow2", NULL);
  if (g_file_test (path, G_FILE_TEST_IS_REGULAR))
    return g_steal_pointer (&path);

  /* As the image's preparation found it (qlean_image_check_disk_file),
   * never probed again: named here, QEMU does not guess it either. */
  format = g_strdup (qlean_image_get_disk_format (self->image));
  if (format == NULL)
    {
      g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG,
                   _("Cannot make the disk of machine “%s”: its image is not prepared"), self->name);
      return NULL;
    }

  g_ptr_array_add (argv, (char *) "qemu-img");
  g_ptr_array_add (argv, (char *) "create");
  g_ptr_array_add (argv, (char *) "-q");
  g_ptr_array_add (argv, (char *) "-f");
  g_ptr_array_add (argv, (char *) "qcow2");
  g_ptr_array_add (argv, (char *) "-F");
  g_ptr_array_add (argv, format);
  g_ptr_array_add (argv, (char *) "-b");
  g_ptr_array_add (argv, (char *) base);
  g_ptr_array_add (argv, path);
  if (disk_gib > 0)
    {
      size = g_strdup_printf ("%uG", disk_gib);
      g_ptr_array_add (argv, size);
    }
  g_ptr_array_add (argv, NULL);

  if (!g_spawn_sync (NULL, (char **) argv->pdata, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL,
                     NULL, NULL, NULL, &err, &status, error))
    return NULL;

  if (!g_spawn_check_wait_status (status, NULL))
    {
      g_unlink (path);
      g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG,
                   _("Cannot make the disk of machine “%s” on %s: %s"), self->name, base,
                   err ? g_strstrip (err) : "");
      return NULL;
    }

  return g_steal_pointer (&path);
}

/* The disk, the cloud-init seed of a first boot, and the kernel
 * parameter that keeps cloud-init out of later boots. */
static gboolean
qlean_machine_prepare_disks (QleanMachine  *self,
                             ResolvedSpec  *resolved,
                             char         **disk,
                             char         **seed,
                             GError       **error)
{
  const char *base = qlean_image_get_disk (self->image);
  g_autofree char *seed_dir = NULL;

  if (base == NULL)
    return TRUE;

  *disk = qlean_machine_ensure_overlay (self, base, error);
  if (*disk == NULL)
    return FALSE;
  resolved->spec.disk = *disk;
  resolved->spec.disk_base = base;
  resolved->spec.disk_base_format = qlean_image_get_disk_format (self->image);

  if (!qlean_image_has_cloud_init (self->image))
    return TRUE;

  if (!self->first_boot)
    {
      char *cmdline = g_strconcat (resolved->cmdline, " " QLEAN_IMAGE_NORMAL_BOOT_CMDLINE, NULL);

      g_free (resolved->cmdline);
      resolved->cmdline = cmdline;
      resolved->spec.cmdline = cmdline;
      return TRUE;
    }

  seed_dir = qlean_machine_ensure_state_dir (self, "disks", error);
  if (seed_dir == NULL)
    return FALSE;
  *seed = g_build_filename (seed_dir, "seed.iso", NULL);
  if (!qlean_image_write_seed (self->image, self->name, *seed, error))
    return FALSE;
  resolved->spec.seed = *seed;

  return TRUE;
}

/* Fast start */

/* Bump when anything changes what a saved boot depends on outside the
 * command line (the guest's init, the post-restore repairs). */
#define BOOT_STATE_VERSION "1"

static void
checksum_identity (GChecksum  *checksum,
                   const char *path)
{
  g_autofree char *line = NULL;
  GStatBuf st;

  if (path == NULL || g_stat (path, &st) != 0)
    memset (&st, 0, sizeof st);
  line = g_strdup_printf ("%s %llu %llu %lld\n", path ? path : "",
                          (unsigned long long) st.st_ino, (unsigned long long) st.st_size,
                          (long long) st.st_mtime);
  g_checksum_update (checksum, (const guchar *) line, -1);
}

/* Where a saved boot of a machine with this command line lives, or NULL
 * when the machine must boot: only the minimal image qualifies (its
 * whole state is in memory), without disk or extra arguments, whose
 * effects a restored state could not match. The key is the whole
 * command line with the per-run parts made constant, and the identity
 * of QEMU, kernel and initrd: anything else gets its own saved boot. */
/* Whether a start of @self would map a memory template (the conditions
 * of qlean_machine_boot_state_path() and of the launch), the template
 * permitting. */
gboolean
qlean_machine_would_use_memory_template (QleanMachine *self)
{
  QleanMachineConfig *config = self->config;
  const char * const *extra = qlean_machine_config_get_extra_args (config);

  return qlean_machine_config_get_fast_start (config) &&
         qlean_machine_config_get_memory_template (config) &&
         qlean_image_get_kind (self->image) == QLEAN_IMAGE_KIND_MINIMAL &&
         qlean_image_get_guest_arch (self->image) == QLEAN_ARCH_X86_64 &&
         (extra == NULL || extra[0] == NULL) &&
         qlean_machine_config_get_disk_gib (config) == 0 && !self->attached &&
         qlean_machine_config_get_bridge (config) == NULL &&
         qlean_image_get_disk (self->image) == NULL;
}

static char *
qlean_machine_boot_state_path (QleanMachine       *self,
                               const ResolvedSpec *resolved,
                               gboolean            mem_template)
{
  QleanMachineConfig *config = self->config;
  const char * const *extra = qlean_machine_config_get_extra_args (config);
  g_autoptr(GChecksum) checksum = NULL;
  g_autofree char *cmdline = NULL;
  g_autofree char *file = NULL;
  g_autofree QleanQemuShare *shares = NULL;
  g_auto(GStrv) argv = NULL;
  QleanQemuSpec spec;
  const char *hostname;

  if (!qlean_machine_config_get_fast_start (config) ||
      qlean_image_get_kind (self->image) != QLEAN_IMAGE_KIND_MINIMAL ||
      (extra != NULL && extra[0] != NULL) ||
      qlean_machine_config_get_disk_gib (config) > 0 || self->attached ||
      qlean_machine_config_get_bridge (config) != NULL ||
      qlean_image_get_disk (self->image) != NULL)
    return NULL;

  spec = resolved->spec;
  spec.name = "template";
  /* Which folders a machine shares is not part of its saved boot: the
   * shares are mounted only after it is saved (QEMU cannot migrate a
   * mounted 9p export), and a restore opens its own. How many, and how,
   * is: they are devices. */
  if (spec.n_shares > 0)
    {
      shares = g_new0 (QleanQemuShare, spec.n_shares);
      for (guint i = 0; i < spec.n_shares; i++)
        {
          shares[i] = spec.shares[i];
          shares[i].host_path = "/share";
        }
      spec.shares = shares;
    }
  spec.run_dir = "/run";
  spec.qmp_fd = 3;
  spec.qga_fd = 4;
  spec.data_fd = 5;
  spec.incoming = FALSE;
  /* A saved boot whose RAM is in a template holds device state only: it
   * gets its own key, and the old path's saved boot stays usable. */
  spec.mem_path = mem_template ? "/template.ram" : NULL;
  spec.mem_share = FALSE;
  /* A network card is part of the machine; which switch, port and MAC
   * it has is not (the restore gives it its own). */
  if (spec.net_socket != NULL)
    {
      spec.net_socket = "/net";
      spec.net_port = 1;
      spec.net_mac = "02:00:00:00:00:01";
    }
  hostname = strstr (resolved->cmdline, " qlean.hostname=");
  cmdline = hostname ? g_strndup (resolved->cmdline, hostname - resolved->cmdline)
                     : g_strdup (resolved->cmdline);
  spec.cmdline = cmdline;
  argv = qlean_qemu_argv_build (&spec);

  checksum = g_checksum_new (G_CHECKSUM_SHA256);
  g_checksum_update (checksum, (const guchar *) BOOT_STATE_VERSION PACKAGE_VERSION, -1);
  /* The argv names QEMU's machine and CPU already; the architecture is
   * said outright so that no two guests of different ones ever share a
   * saved boot. */
  g_checksum_update (checksum, (const guchar *) spec.arch->name, strlen (spec.arch->name) + 1);
  for (guint i = 0; argv[i] != NULL; i++)
    g_checksum_update (checksum, (const guchar *) argv[i], strlen (argv[i]) + 1);
  checksum_identity (checksum, spec.qemu_binary);
  checksum_identity (checksum, spec.kernel);
  checksum_identity (checksum, spec.initrd);

  file = g_strdup_printf ("%.16s.state", g_checksum_get_string (checksum));
  return g_build_filename (g_get_user_cache_dir (), "qlean", "boot-states", file, NULL);
}

/* How many saved boots (about 80 MB each) the cache keeps: one per
 * machine shape, QEMU, kernel and initramfs; an upgrade makes new ones. */
#define BOOT_STATES_KEPT 6

typedef struct
{
  char   *path;
  gint64  mtime;
} SavedBoot;

static void
saved_boot_free (SavedBoot *saved)
{
  g_free (saved->path);
  g_free (saved);
}

static gint
saved_boot_newer_first (gconstpointer a,
                        gconstpointer b)
{
  const SavedBoot *sa = *(SavedBoot * const *) a;
  const SavedBoot *sb = *(SavedBoot * const *) b;

  return (sb->mtime > sa->mtime) - (sb->mtime < sa->mtime);
}

/* Keeps the BOOT_STATES_KEPT saved boots used last (a start touches
 * the one it loads) and removes the others, except those being saved or
 * loaded right now (their lock is held). Best effort. */
static void
qlean_machine_prune_boot_states (const char *dir)
{
  g_autoptr(GPtrArray) saved = g_ptr_array_new_with_free_func ((GDestroyNotify) saved_boot_free);
  g_autoptr(GDir) listing = g_dir_open (dir, 0, NULL);
  const char *name;

  if (listing == NULL)
    return;

  while ((name = g_dir_read_name (listing)) != NULL)
    {
      SavedBoot *entry;
      GStatBuf st;
      g_autofree char *path = g_build_filename (dir, name, NULL);

      /* The RAM file of a template machine whose process died without
       * removing it (the work file is named after the pid). */
      if (strstr (name, ".state.ram.work-") != NULL)
        {
          const char *pid = strstr (name, ".state.ram.work-") + strlen (".state.ram.work-");
          g_autofree char *proc = g_strdup_printf ("/proc/%d", atoi (pid));

          if (atoi (pid) > 0 && !g_file_test (proc, G_FILE_TEST_EXISTS))
            g_unlink (path);
          continue;
        }
      /* The lock of a save that never finished, if nobody holds it. */
      if (g_str_has_suffix (name, ".state.lock"))
        {
          g_autofree char *state = g_strndup (path, strlen (path) - strlen (".lock"));
          int fd;

          if (!g_file_test (state, G_FILE_TEST_EXISTS) &&
              (fd = g_open (path, O_RDWR | O_CLOEXEC, 0)) >= 0)
            {
              if (flock (fd, LOCK_EX | LOCK_NB) == 0)
                g_unlink (path);
              close (fd);
            }
          continue;
        }
      if (!g_str_has_suffix (name, ".state") || g_stat (path, &st) != 0 || !S_ISREG (st.st_mode))
        continue;
      entry = g_new0 (SavedBoot, 1);
      entry->path = g_steal_pointer (&path);
      entry->mtime = st.st_mtime;
      g_ptr_array_add (saved, entry);
    }

  g_ptr_array_sort (saved, saved_boot_newer_first);
  for (guint i = BOOT_STATES_KEPT; i < saved->len; i++)
    {
      SavedBoot *entry = g_ptr_array_index (saved, i);
      g_autofree char *lock = g_strconcat (entry->path, ".lock", NULL);
      g_autofree char *mac = g_strconcat (entry->path, ".mac", NULL);
      g_autofree char *ram = g_strconcat (entry->path, ".ram", NULL);
      int fd = g_open (lock, O_RDWR | O_CLOEXEC, 0);

      if (fd >= 0 && flock (fd, LOCK_EX | LOCK_NB) != 0)
        {
          close (fd);
          continue;
        }
      g_debug ("Removing the saved boot %s, unused since %" G_GINT64_FORMAT, entry->path, entry->mtime);
      g_unlink (entry->path);
      g_unlink (mac);
      g_unlink (ram);
      g_unlink (lock);
      if (fd >= 0)
        close (fd);
    }
}

/* The lock of a saved boot: exclusive to save it (of the machines that
 * boot at once with no saved boot yet, one saves it), shared to load it
 * (so that pruning, which needs it exclusive, leaves it alone). It goes
 * with its holder, however that ends. Never waits: a machine that cannot
 * have it boots the slow way. */
static gboolean
qlean_machine_lock_boot_state (QleanMachine *self,
                               const char   *path,
                               gboolean      exclusive)
{
  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *lock = g_strconcat (path, ".lock", NULL);
  struct stat held, named;
  int fd;

  if (g_mkdir_with_parents (dir, 0700) != 0)
    return FALSE;

  fd = g_open (lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    return FALSE;

  /* Pruning unlinks lock files it holds: one opened just before is no
   * longer the lock, whatever flock() says. */
  if (flock (fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0 ||
      fstat (fd, &held) != 0 || stat (lock, &named) != 0 ||
      held.st_dev != named.st_dev || held.st_ino != named.st_ino ||
      (!exclusive && !g_file_test (path, G_FILE_TEST_IS_REGULAR)))
    {
      close (fd);
      return FALSE;
    }

  self->boot_state_lock = fd;
  return TRUE;
}

static void
qlean_machine_unlock_boot_state (QleanMachine *self)
{
  if (self->boot_state_lock < 0)
    return;

  close (self->boot_state_lock);
  self->boot_state_lock = -1;
}

/* Memory templates (QleanMachineConfig:memory-template). The machine
 * that saves a boot runs on a RAM file of its own, shared (share=on);
 * its saved state then leaves that RAM out (x-ignore-shared) and, while
 * it is still stopped, the file is copied to `<state>.ram`, which is
 * never written again: it is replaced by rename or removed, never
 * rewritten. Later machines map it privately (share=off): they read its
 * pages from the page cache, all of them the same pages, and copy only
 * those their guest writes. QEMU 7.2 opens the file for writing even to
 * map it privately, so its mode cannot protect it; nothing else opens it. */

/* Whether the template of @state can be mapped by a machine of
 * @memory_mib; if not, why, for the log. */
static gboolean
qlean_machine_template_usable (const char  *state,
                               guint        memory_mib,
                               char       **reason)
{
  g_autofree char *ram = g_strconcat (state, ".ram", NULL);
  GStatBuf st;

  if (g_stat (ram, &st) != 0)
    {
      *reason = g_strdup_printf ("%s: %s", ram, g_strerror (errno));
      return FALSE;
    }
  if (!S_ISREG (st.st_mode) || (guint64) st.st_size != (guint64) memory_mib * 1024 * 1024)
    {
      *reason = g_strdup_printf ("%s is not a %u MiB file", ram, memory_mib);
      return FALSE;
    }
  /* QEMU opens it read-write, even to map it privately. */
  if (access (ram, R_OK | W_OK) != 0)
    {
      *reason = g_strdup_printf ("%s: %s", ram, g_strerror (errno));
      return FALSE;
    }
  return TRUE;
}

/* Makes the RAM file the machine saving @state runs on: sparse, the
 * size of its memory, removed with the run. */
static char *
qlean_machine_template_make_work (const char  *state,
                                  guint        memory_mib,
                                  char       **reason)
{
  g_autofree char *dir = g_path_get_dirname (state);
  g_autofree char *work = g_strdup_printf ("%s.ram.work-%d-%u", state, (int) getpid (),
                                           g_random_int ());
  guint64 size = (guint64) memory_mib * 1024 * 1024;
  struct statvfs fs;
  int fd;

  /* Room for the machine's file and the template, were all written. */
  if (statvfs (dir, &fs) == 0 && (guint64) fs.f_bavail * fs.f_frsize < 2 * size)
    {
      *reason = g_strdup_printf ("%s has less than %" G_GUINT64_FORMAT " MiB free", dir,
                                 2 * size / (1024 * 1024));
      return NULL;
    }
  fd = g_open (work, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 || ftruncate (fd, size) != 0)
    {
      *reason = g_strdup_printf ("%s: %s", work, g_strerror (errno));
      if (fd >= 0)
        {
          close (fd);
          g_unlink (work);
        }
      return NULL;
    }
  close (fd);
  return g_steal_pointer (&work);
}

/* Copies the template machine's RAM file (its guest stopped) to the
 * template of @state: the data only, holes stay holes, flushed before
 * it is renamed into place. */
static gboolean
qlean_machine_template_store (const char  *work,
                              const char  *state,
                              GError     **error)
{
  g_autofree char *ram = g_strconcat (state, ".ram", NULL);
  g_autofree char *part = g_strconcat (ram, ".part", NULL);
  g_autofree char *buffer = g_malloc (1024 * 1024);
  int in = -1, out = -1;
  off_t size, offset = 0;
  gboolean ok = FALSE;

  in = g_open (work, O_RDONLY | O_CLOEXEC, 0);
  if (in < 0)
    goto out;
  out = g_open (part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (out < 0)
    goto out;
  size = lseek (in, 0, SEEK_END);
  if (size < 0 || ftruncate (out, size) != 0)
    goto out;

  while (offset < size)
    {
      off_t data = lseek (in, offset, SEEK_DATA);
      off_t hole;

      if (data < 0 && errno == ENXIO)
        break;
      if (data < 0)
        goto out;
      hole = lseek (in, data, SEEK_HOLE);
      if (hole < 0)
        goto out;
      for (offset = data; offset < hole;)
        {
          ssize_t n = pread (in, buffer, MIN ((off_t) 1024 * 1024, hole - offset), offset);

          if (n <= 0 || pwrite (out, buffer, n, offset) != n)
            {
              if (n == 0)
                errno = EIO;
              goto out;
            }
          offset += n;
        }
    }
  if (fdatasync (out) != 0 || close (out) != 0)
    {
      out = -1;
      goto out;
    }
  out = -1;
  if (g_rename (part, ram) != 0)
    goto out;
  ok = TRUE;

out:
  if (!ok)
    {
      int saved_errno = errno;

      qlean_set_error_from_errno (error, saved_errno,
                                  "Cannot store the memory template %s", ram);
      g_unlink (part);
    }
  if (in >= 0)
    close (in);
  if (out >= 0)
    close (out);
  return ok;
}

static void
set_ignore_shared (QleanQmpClient      *qmp,
                   gboolean             on,
                   GAsyncReadyCallback  callback,
                   gpointer             user_data)
{
  g_autoptr(JsonObject) arguments = json_object_new ();
  g_autoptr(JsonArray) capabilities = json_array_new ();
  JsonObject *capability = json_object_new ();

  json_object_set_string_member (capability, "capability", "x-ignore-shared");
  json_object_set_boolean_member (capability, "state", on);
  json_array_add_object_element (capabilities, capability);
  json_object_set_array_member (arguments, "capabilities", json_array_ref (capabilities));
  qlean_qmp_client_execute_async (qmp, "migrate-set-capabilities", arguments, NULL,
                                  callback, user_data);
}

static void
qlean_machine_boot_state_saved_cb (GObject      *source,
                                   GAsyncResult *result,
                                   gpointer      user_data)
{
  QleanMachine *self = QLEAN_MACHINE (source);
  g_autoptr(GTask) spawn_task = user_data;
  g_autoptr(GError) error = NULL;

  /* Without a saved boot, the next start boots: not worth failing for. */
  if (!qlean_machine_save_state_finish (self, result, &error))
    g_debug ("machine %s: could not save its boot for fast starts: %s", self->name, error->message);
  else if (self->boot_state_save != NULL)
    {
      g_autofree char *dir = g_path_get_dirname (self->boot_state_save);

      qlean_machine_prune_boot_states (dir);
    }

  qlean_machine_unlock_boot_state (self);
  if (self->spawn_task != spawn_task)
    return;

  g_clear_pointer (&self->boot_state_save, g_free);
  qlean_machine_spawn_maybe_done (self);
}

static void
qlean_machine_template_cont_cb (GObject      *source,
                                GAsyncResult *result,
                                gpointer      user_data)
{
  g_autoptr(GTask) spawn_task = user_data;
  QleanMachine *self = g_task_get_source_object (spawn_task);
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;

  reply = qlean_qmp_client_execute_finish (QLEAN_QMP_CLIENT (source), result, &error);
  qlean_machine_unlock_boot_state (self);
  if (self->spawn_task != spawn_task)
    return;
  if (reply == NULL)
    {
      qlean_machine_spawn_fail (self, g_steal_pointer (&error));
      return;
    }
  qlean_machine_fix_clock (self);
  g_clear_pointer (&self->boot_state_save, g_free);
  qlean_machine_spawn_maybe_done (self);
}

/* The state is saved and the guest still stopped: its RAM file is the
 * template's content. */
static void
qlean_machine_template_saved_cb (GObject      *source,
                                 GAsyncResult *result,
                                 gpointer      user_data)
{
  QleanMachine *self = QLEAN_MACHINE (source);
  g_autoptr(GTask) spawn_task = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanQmpClient) qmp = qlean_machine_get_qmp (self);

  if (!qlean_machine_save_state_finish (self, result, &error))
    g_message ("machine %s: could not save its boot for fast starts: %s", self->name, error->message);
  else if (self->boot_state_save != NULL && self->mem_template_work != NULL &&
           !qlean_machine_template_store (self->mem_template_work, self->boot_state_save, &error))
    {
      g_message ("machine %s: %s; the next machine boots", self->name, error->message);
      g_unlink (self->boot_state_save);
    }
  else if (self->boot_state_save != NULL)
    {
      g_autofree char *dir = g_path_get_dirname (self->boot_state_save);

      qlean_machine_prune_boot_states (dir);
    }
  /* The machine keeps its RAM file (unlinked: nothing else needs its
   * name) and from now on saves its RAM into states like any other. */
  if (self->mem_template_work != NULL)
    {
      g_unlink (self->mem_template_work);
      g_clear_pointer (&self->mem_template_work, g_free);
    }

  if (qmp == NULL)
    {
      qlean_machine_unlock_boot_state (self);
      return;
    }
  set_ignore_shared (qmp, FALSE, NULL, NULL);
  qlean_qmp_client_execute_async (qmp, "cont", NULL, NULL, qlean_machine_template_cont_cb,
                                  g_steal_pointer (&spawn_task));
}

static void
qlean_machine_template_capability_cb (GObject      *source,
                                      GAsyncResult *result,
                                      gpointer      user_data)
{
  g_autoptr(GTask) spawn_task = user_data;
  QleanMachine *self = g_task_get_source_object (spawn_task);
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;

  reply = qlean_qmp_client_execute_finish (QLEAN_QMP_CLIENT (source), result, &error);
  if (self->spawn_task != spawn_task)
    return;
  if (reply == NULL || self->boot_state_save == NULL)
    {
      g_message ("machine %s: no memory template (%s); the next machine boots", self->name,
                 error ? error->message : "cancelled");
      qlean_machine_unlock_boot_state (self);
      g_clear_pointer (&self->boot_state_save, g_free);
      qlean_machine_spawn_maybe_done (self);
      return;
    }
  /* Stopped after saving until the template is copied: its RAM and
   * the saved devices must be the same instant. */
  qlean_machine_save_state_async (self, self->boot_state_save, TRUE, NULL,
                                  qlean_machine_template_saved_cb, g_steal_pointer (&spawn_task));
}

/* Before a template is saved: the guest's caches go and its free
 * memory is compacted, so that what machines of the template find free
 * is free, and what they write stays small. */
static const char template_clean_script[] =
  "echo 3 > /proc/sys/vm/drop_caches\n"
  "echo 1 > /proc/sys/vm/compact_memory 2>/dev/null\n"
  "exit 0\n";

static void
qlean_machine_template_cleaned_cb (GObject      *source,
                                   GAsyncResult *result,
                                   gpointer      user_data)
{
  g_autoptr(GTask) spawn_task = user_data;
  QleanMachine *self = QLEAN_MACHINE (source);
  g_autoptr(QleanExecResult) ran = NULL;
  g_autoptr(GError) error = NULL;

  /* Not worth failing for: the template is only larger. */
  ran = qlean_machine_exec_finish (self, result, &error);
  if (ran == NULL)
    g_debug ("machine %s: could not drop its caches before saving: %s", self->name,
             error->message);
  if (self->spawn_task != spawn_task || self->qmp == NULL)
    return;
  /* The state leaves out the RAM that is in the file. */
  set_ignore_shared (self->qmp, TRUE, qlean_machine_template_capability_cb,
                     g_steal_pointer (&spawn_task));
}

/* Everything below runs on the worker thread, which owns the machine's
 * QEMU process, clients and timers. */

static char *
qlean_machine_run_file_tail (QleanMachine *self,
                             const char   *file,
                             guint         n_lines)
{
  g_autofree char *path = NULL;
  char *tail;

  if (self->run_dir == NULL)
    return g_strdup ("");

  path = g_build_filename (self->run_dir, file, NULL);
  tail = qlean_file_tail (path, n_lines);

  return tail ? tail : g_strdup ("");
}

static char *
describe_wait_status (GSubprocess *process)
{
  if (g_subprocess_get_if_signaled (process))
    return g_strdup_printf (_("was killed by signal %d"), g_subprocess_get_term_sig (process));

  return g_strdup_printf (_("exited with status %d"), g_subprocess_get_exit_status (process));
}

/* Drops what a run leaves behind: clients, timers, the run directory. */
static void
qlean_machine_release_run (QleanMachine *self)
{
  g_autoptr(QleanQmpClient) qmp = NULL;
  g_autoptr(QleanQgaClient) qga = NULL;
  g_autoptr(QleanGuestChannel) guest = NULL;
  g_autoptr(QleanGuestRelay) relay = NULL;
  g_autoptr(QleanConsoleLog) console = NULL;
  g_autofree char *run_dir = NULL;

  qlean_clear_source (&self->boot_timer);
  qlean_clear_source (&self->hello_timer);
  qlean_clear_source (&self->spawn_cancel);
  qlean_clear_source (&self->qmp_grace_timer);
  qlean_clear_source (&self->shutdown_timer);
  qlean_clear_source (&self->incoming_poll);
  g_clear_pointer (&self->incoming, g_free);
  g_clear_pointer (&self->boot_state_save, g_free);
  qlean_machine_unlock_boot_state (self);
  if (self->mem_template_work != NULL)
    {
      g_unlink (self->mem_template_work);
      g_clear_pointer (&self->mem_template_work, g_free);
    }
  self->mem_template_load = FALSE;
  g_clear_pointer (&self->mem_template_ram, g_free);
  /* A saved boot that failed to load (QEMU or its machine changed in a
   * way the key misses) must not fail the next start too. */
  if (self->boot_state_used != NULL)
    {
      g_autofree char *ram = g_strconcat (self->boot_state_used, ".ram", NULL);

      g_unlink (self->boot_state_used);
      g_unlink (ram);
      g_clear_pointer (&self->boot_state_used, g_free);
    }
  self->restoring = FALSE;
  self->restore_fixing = FALSE;
  self->restore_fixed = FALSE;

  /* Port forwards (qlean-machine-forward.c) end with the run: their
   * ports are free again once this returns. */
  qlean_machine_forward_release (self);

  g_mutex_lock (&self->lock);
  qmp = g_steal_pointer (&self->qmp);
  qga = g_steal_pointer (&self->qga);
  guest = g_steal_pointer (&self->guest);
  relay = g_steal_pointer (&self->relay);
  run_dir = g_steal_pointer (&self->run_dir);
  console = g_steal_pointer (&self->console);
  self->pid = 0;
  g_mutex_unlock (&self->lock);

  if (console != NULL)
    qlean_console_log_close (console);

  if (relay != NULL)
    qlean_guest_relay_close (relay);
  if (qmp != NULL)
    qlean_qmp_client_close (qmp);
  if (qga != NULL)
    qlean_qga_client_close (qga);
  if (guest != NULL)
    qlean_guest_channel_close (guest);

  /* Logs: keep the last run's in memory (see qlean_machine_save_logs). */
  if (run_dir != NULL)
    {
      QleanRunLogs *logs = qlean_run_logs_capture (run_dir);

      g_mutex_lock (&self->lock);
      g_clear_pointer (&self->last_logs, qlean_run_logs_free);
      self->last_logs = logs;
      g_mutex_unlock (&self->lock);
    }

  if (run_dir != NULL && qlean_machine_config_get_clear (self->config))
    {
      g_autoptr(GError) error = NULL;

      if (!qlean_rm_rf (run_dir, &error))
        g_warning ("Could not remove run directory %s: %s", run_dir, error->message);
    }

  g_clear_object (&self->qemu);
  self->shutdown_stage = 0;
  self->qmp_ready = FALSE;
  self->agent_ready = FALSE;
  g_atomic_int_set (&self->guest_transport, QLEAN_GUEST_TRANSPORT_AUTO);
}

static void
qlean_machine_complete_exit_waiters (QleanMachine *self)
{
  g_autoptr(GPtrArray) waiters = g_steal_pointer (&self->exit_waiters);

  self->exit_waiters = g_ptr_array_new_with_free_func (g_object_unref);
  for (guint i = 0; i < waiters->len; i++)
    g_task_return_boolean (g_ptr_array_index (waiters, i), TRUE);
}

static void
qlean_machine_qemu_exited_cb (GObject      *source,
                              GAsyncResult *result,
                              gpointer      user_data)
{
  QleanLink *link = user_data;
  g_autoptr(QleanMachine) self = qlean_link_get (link);
  g_autofree char *status = NULL;
  GSubprocess *process = G_SUBPROCESS (source);

  g_subprocess_wait_finish (process, result, NULL);
  qlean_link_unref (link);

  if (self == NULL || self->qemu != process)
    return;

  status = describe_wait_status (process);
  g_debug ("machine %s: QEMU %s", self->name, status);

  g_mutex_lock (&self->lock);
  self->qemu_exited = TRUE;
  g_mutex_unlock (&self->lock);
  /* All QEMU wrote is in the pipe: into the file before anyone quotes it. */
  if (self->console != NULL)
    qlean_console_log_close (self->console);

  if (self->spawn_task != NULL)
    {
      g_autoptr(GTask) task = g_steal_pointer (&self->spawn_task);
      g_autoptr(GError) error = g_steal_pointer (&self->spawn_error);

      if (error == NULL)
        {
          g_autofree char *log = qlean_machine_run_file_tail (self, QLEAN_QEMU_LOG, TAIL_LINES);

          error = g_error_new (QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_QEMU_EXITED,
                               _("QEMU %s while machine “%s” was starting%s%s"),
                               status, self->name, *log ? ":\n" : "", log);
        }

      qlean_machine_release_run (self);
      qlean_machine_set_state (self, QLEAN_MACHINE_STATE_STOPPED);
      g_task_return_error (task, g_steal_pointer (&error));
    }
  else if (self->stop_requested)
    {
      qlean_machine_release_run (self);
      qlean_machine_set_state (self, QLEAN_MACHINE_STATE_STOPPED);
      qlean_machine_emit (self, signals[SIGNAL_STOPPED]);
    }
  else
    {
      g_autofree char *log = qlean_machine_run_file_tail (self, QLEAN_QEMU_LOG, TAIL_LINES);

      g_autofree char *reason = NULL;

      if (self->panicked)
        {
          g_autofree char *panic = qlean_machine_panic_text (self);

          reason = panic ? g_strdup_printf (_("the guest kernel panicked: %s"), panic)
                         : g_strdup (_("the guest kernel panicked"));
        }
      else
        reason = g_strdup_printf (_("QEMU %s%s%s"), status, *log ? ": " : "", log);
      g_message ("Machine “%s” crashed: %s", self->name, reason);
      g_mutex_lock (&self->lock);
      g_free (self->crash_reason);
      self->crash_reason = g_steal_pointer (&reason);
      g_mutex_unlock (&self->lock);
      qlean_machine_release_run (self);
      qlean_machine_set_state (self, QLEAN_MACHINE_STATE_CRASHED);
      qlean_machine_emit (self, signals[SIGNAL_CRASHED]);
    }

  self->stop_requested = FALSE;
  qlean_machine_complete_exit_waiters (self);
}

static void
qlean_machine_signal_qemu (QleanMachine *self,
                           int           signum)
{
  if (self->qemu != NULL && !self->qemu_exited)
    g_subprocess_send_signal (self->qemu, signum);
}

/* The kernel's panic line at the end of the console log ("Kernel panic -
 * not syncing: …"), or NULL when it printed none. */
static char *
qlean_machine_panic_text (QleanMachine *self)
{
  g_autofree char *tail = NULL;
  const char *line, *end;

  if (self->console != NULL)
    qlean_console_log_flush (self->console);
  tail = qlean_machine_run_file_tail (self, QLEAN_CONSOLE_LOG, PANIC_TAIL_LINES);
  line = g_strrstr (tail, "Kernel panic - not syncing");
  if (line == NULL)
    return NULL;

  /* The last one may be the "---[ end Kernel panic - …: why ]---" line. */
  end = strchr (line, '\n');
  if (end == NULL)
    end = line + strlen (line);
  while (end > line && g_ascii_isspace (end[-1]))
    end--;
  if (end - line > 5 && strncmp (end - 5, " ]---", 5) == 0)
    end -= 5;

  return g_strndup (line, end - line);
}

/* Ends a start that cannot complete. The error is returned once QEMU is
 * gone, so that a caller who sees it finds no process left behind. */
static void
qlean_machine_spawn_fail (QleanMachine *self,
                          GError       *error)
{
  if (self->spawn_task == NULL)
    {
      g_error_free (error);
      return;
    }

  if (self->qemu != NULL && !self->qemu_exited)
    {
      if (self->spawn_error == NULL)
        self->spawn_error = error;
      else
        g_error_free (error);
      self->stop_requested = TRUE;
      qlean_machine_signal_qemu (self, SIGKILL);
      return;
    }

  {
    g_autoptr(GTask) task = g_steal_pointer (&self->spawn_task);

    g_clear_error (&self->spawn_error);
    qlean_machine_release_run (self);
    qlean_machine_set_state (self, QLEAN_MACHINE_STATE_STOPPED);
    g_task_return_error (task, error);
  }
}

static void qlean_machine_spawn_maybe_done (QleanMachine *self);

static void
qlean_machine_network_configured_cb (GObject      *source,
                                     GAsyncResult *result,
                                     gpointer      user_data)
{
  QleanMachine *self = QLEAN_MACHINE (source);
  g_autoptr(GTask) spawn_task = user_data;
  GError *error = NULL;

  if (self->spawn_task != spawn_task)
    {
      /* That start is over; its outcome no longer matters. */
      qlean_machine_network_configure_finish (self, result, NULL);
      return;
    }

  self->network_configuring = FALSE;
  if (!qlean_machine_network_configure_finish (self, result, &error))
    {
      qlean_machine_spawn_fail (self, error);
      return;
    }

  self->network_ready = TRUE;
  qlean_machine_spawn_maybe_done (self);
}

/* A clone or a member of a golden-snapshot pool starts as a copy of
 * another machine: give it its own hostname, machine-id (when the guest
 * has one) and random state. Through the agent, which answers first;
 * values travel as arguments and stdin, never inside the script. */
static const char identity_script[] =
  "printf %s \"$1\" > /proc/sys/kernel/hostname\n"
  "if [ -f /etc/hostname ]; then printf '%s\\n' \"$1\" > /etc/hostname; fi\n"
  /* Debian's (and our init's) line for the own name: left as it was,
   * the copy would resolve its source's name to itself. Shell builtins
   * only: right after a restore every new process runs on a cold TCG
   * translation cache and costs tens of milliseconds. */
  "if [ -f /etc/hosts ]; then\n"
  "  h= own=\n"
  "  while IFS= read -r l || [ -n \"$l\" ]; do\n"
  "    case $l in\n"
  "      '127.0.1.1 '* | '127.0.1.1\t'*) own=1 ;;\n"
  "      *) h=\"$h$l\n\" ;;\n"
  "    esac\n"
  "  done < /etc/hosts\n"
  "  [ -z \"$own\" ] || printf '%s127.0.1.1 %s\\n' \"$h\" \"$1\" > /etc/hosts\n"
  "fi\n"
  "if [ -s /etc/machine-id ]; then printf '%s\\n' \"$2\" > /etc/machine-id; fi\n"
  /* The saved network card keeps the MAC of the machine it came from. */
  "if [ -n \"$3\" ]; then\n"
  "  for i in /sys/class/net/*; do\n"
  "    read -r a < \"$i/address\" && [ \"$a\" = \"$3\" ] || continue\n"
  "    n=${i##*/}\n"
  "    ip link set dev \"$n\" address \"$4\"\n"
  /* On a bridge, a new MAC needs a lease of its own: release the old
   * one (udhcpc drops the address) before asking anew, so that nobody
   * reads the source machine's address from the clone meanwhile. */
  "    [ -s /run/qlean/udhcpc.pid ] && read -r p < /run/qlean/udhcpc.pid || continue\n"
  "    kill -USR2 \"$p\"\n"
  "    j=0\n"
  "    while [ -n \"$(ip -4 -o addr show dev \"$n\")\" ] && [ $j -lt 200 ]; do sleep 0.01; j=$((j + 1)); done\n"
  "    kill -USR1 \"$p\"\n"
  "  done\n"
  "fi\n"
  /* The host's random bytes come on stdin as printf's octal escapes
   * (private, unlike arguments), so that builtins can pass them on. */
  "IFS= read -r seed && printf \"$seed\" > /dev/urandom\n";

static void
qlean_machine_identity_ran_cb (GObject      *source,
                               GAsyncResult *result,
                               gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  g_autoptr(QleanExecResult) ran = NULL;
  GError *error = NULL;

  ran = qlean_machine_exec_finish (QLEAN_MACHINE (source), result, &error);
  if (ran == NULL)
    {
      g_task_return_error (task, error);
      return;
    }

  if (!qlean_exec_result_success (ran))
    {
      g_autofree char *err = qlean_exec_result_get_stderr_text (ran);

      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
                               _("Could not give the restored machine its own identity: %s"),
                               err ? g_strstrip (err) : "");
      return;
    }

  g_task_return_boolean (task, TRUE);
}

static void
qlean_machine_fix_identity_async (QleanMachine        *self,
                                  gboolean             new_identity,
                                  GAsyncReadyCallback  callback,
                                  gpointer             user_data)
{
  g_autoptr(GTask) task = g_task_new (self, NULL, callback, user_data);
  g_autofree char *machine_id = NULL;
  g_autoptr(GBytes) entropy = NULL;
  GString *escaped;
  guint32 random[16];

  if (!new_identity)
    {
      g_task_return_boolean (task, TRUE);
      return;
    }

  for (guint i = 0; i < G_N_ELEMENTS (random); i++)
    random[i] = g_random_int ();
  escaped = g_string_new (NULL);
  for (guint i = 0; i < sizeof random; i++)
    g_string_append_printf (escaped, "\\%03o", ((const guint8 *) random)[i]);
  g_string_append_c (escaped, '\n');
  entropy = g_string_free_to_bytes (escaped);
  machine_id = g_strdup_printf ("%08x%08x%08x%08x", random[0] ^ random[4], random[1] ^ random[5],
                                random[2] ^ random[6], random[3] ^ random[7]);

  {
    g_autofree char *new_mac = qlean_machine_dup_mac_address (self);
    const char *old_mac = self->incoming_old_mac ? self->incoming_old_mac : "";
    const char *argv[] = { "/bin/sh", "-c", identity_script, "sh", self->name, machine_id, old_mac,
                           new_mac ? new_mac : "", NULL };

    qlean_machine_run_starting_async (self, argv, entropy, NULL,
                                      qlean_machine_identity_ran_cb, g_steal_pointer (&task));
  }
}

static void
qlean_machine_identity_fixed_cb (GObject      *source,
                                 GAsyncResult *result,
                                 gpointer      user_data)
{
  QleanMachine *self = QLEAN_MACHINE (source);
  g_autoptr(GTask) spawn_task = user_data;
  GError *error = NULL;

  if (!g_task_propagate_boolean (G_TASK (result), &error))
    {
      if (self->spawn_task == spawn_task)
        qlean_machine_spawn_fail (self, error);
      else
        g_error_free (error);
      return;
    }

  if (self->spawn_task != spawn_task)
    return;

  self->restore_fixing = FALSE;
  self->restore_fixed = TRUE;
  qlean_machine_spawn_maybe_done (self);
}

/* Mounts each shared folder at its guest path: $1 the 9p module
 * directory of the minimal image, then tag, path and options for each.
 * The minimal image's init does not load 9p at boot (it costs boot time
 * for every machine); other guests load it on demand. */
static const char mount_shares_script[] =
  "for m in \"$1\"/*.ko; do\n"
  "  [ -e \"$m\" ] || continue\n"
  "  n=${m##*/}; n=${n#*-}; n=${n%.ko}\n"
  "  [ -d \"/sys/module/$n\" ] || insmod \"$m\" || exit 1\n"
  "done\n"
  "shift\n"
  "while [ $# -ge 3 ]; do\n"
  "  mkdir -p -- \"$2\" && mount -t 9p -o \"$3\" \"$1\" \"$2\" || exit 1\n"
  "  shift 3\n"
  "done\n";

static void
qlean_machine_shares_ran_cb (GObject      *source,
                             GAsyncResult *result,
                             gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  g_autoptr(QleanExecResult) ran = NULL;
  GError *error = NULL;

  ran = qlean_machine_exec_finish (QLEAN_MACHINE (source), result, &error);
  if (ran == NULL)
    {
      g_task_return_error (task, error);
      return;
    }

  if (!qlean_exec_result_success (ran))
    {
      g_autofree char *err = qlean_exec_result_get_stderr_text (ran);

      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
                               _("Could not mount the shared folders in machine “%s” (does its "
                                 "kernel have 9p?): %s"),
                               QLEAN_MACHINE (source)->name, err ? g_strstrip (err) : "");
      return;
    }

  g_task_return_boolean (task, TRUE);
}

static void
qlean_machine_mount_shares_async (QleanMachine        *self,
                                  GAsyncReadyCallback  callback,
                                  gpointer             user_data)
{
  g_autoptr(GTask) task = g_task_new (self, NULL, callback, user_data);
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  guint n = qlean_machine_config_get_n_shares (self->config);

  g_ptr_array_add (argv, g_strdup ("/bin/sh"));
  g_ptr_array_add (argv, g_strdup ("-c"));
  g_ptr_array_add (argv, g_strdup (mount_shares_script));
  g_ptr_array_add (argv, g_strdup ("sh"));
  g_ptr_array_add (argv, g_strdup ("/lib/modules/qlean/9p"));
  for (guint i = 0; i < n; i++)
    {
      const char *guest_path;
      QleanShareFlags flags;

      qlean_machine_config_get_share (self->config, i, &guest_path, &flags);
      g_ptr_array_add (argv, g_strdup_printf (QLEAN_SHARE_TAG_PREFIX "%u", i));
      g_ptr_array_add (argv, g_strdup (guest_path));
      /* msize: 9p's 8 KiB default makes every read a round trip per
       * 8 KiB; 512000 is the most virtio takes. */
      g_ptr_array_add (argv, g_strdup_printf ("trans=virtio,version=9p2000.L,msize=512000%s",
                                              (flags & QLEAN_SHARE_READONLY) ? ",ro" : ""));
    }
  g_ptr_array_add (argv, NULL);

  qlean_machine_run_starting_async (self, (const char * const *) argv->pdata, NULL, NULL,
                                    qlean_machine_shares_ran_cb, g_steal_pointer (&task));
}

gboolean
qlean_machine_shares_mounted (QleanMachine *self)
{
  return self->shares_mounted;
}

static void
qlean_machine_shares_mounted_cb (GObject      *source,
                                 GAsyncResult *result,
                                 gpointer      user_data)
{
  QleanMachine *self = QLEAN_MACHINE (source);
  g_autoptr(GTask) spawn_task = user_data;
  GError *error = NULL;

  if (!g_task_propagate_boolean (G_TASK (result), &error))
    {
      if (self->spawn_task == spawn_task)
        qlean_machine_spawn_fail (self, error);
      else
        g_error_free (error);
      return;
    }

  if (self->spawn_task != spawn_task)
    return;

  self->shares_mounting = FALSE;
  self->shares_mounted = TRUE;
  qlean_machine_spawn_maybe_done (self);
}

/* Grace for qlean-guest's HELLO once the agent answers: both start at
 * the same time in the guest, so with transport auto a second tells a
 * guest without it; transport qlean-guest waits longer before it fails
 * the start. */
#define HELLO_GRACE_MS 1000
#define HELLO_GRACE_REQUIRED_MS 5000

static gboolean
qlean_machine_hello_grace_cb (gpointer user_data)
{
  QleanMachine *self = user_data;

  g_clear_pointer (&self->hello_timer, g_source_unref);
  qlean_machine_spawn_maybe_done (self);
  return G_SOURCE_REMOVE;
}

/* Decides the transport of this run, once: TRUE when decided, FALSE
 * while it waits for qlean-guest's HELLO (or after failing the start). */
static gboolean
qlean_machine_decide_transport (QleanMachine *self)
{
  QleanGuestTransport wanted = qlean_machine_config_get_guest_transport (self->config);
  QleanGuestTransport decided;
  gboolean syncing;

  if (g_atomic_int_get (&self->guest_transport) != QLEAN_GUEST_TRANSPORT_AUTO)
    return TRUE;

  syncing = self->guest != NULL && qlean_guest_channel_is_syncing (self->guest);
  if (wanted == QLEAN_GUEST_TRANSPORT_AGENT)
    decided = QLEAN_GUEST_TRANSPORT_AGENT;
  else if (self->guest != NULL && qlean_guest_channel_is_ready (self->guest))
    decided = QLEAN_GUEST_TRANSPORT_QLEAN_GUEST;
  else if (wanted == QLEAN_GUEST_TRANSPORT_QLEAN_GUEST)
    {
      gint64 now = g_get_monotonic_time ();

      if (self->hello_deadline == 0)
        self->hello_deadline = now + HELLO_GRACE_REQUIRED_MS * G_TIME_SPAN_MILLISECOND;
      if (syncing && now < self->hello_deadline)
        {
          if (self->hello_timer == NULL)
            self->hello_timer = qlean_add_timeout (qlean_worker_get_context (),
                                                   (self->hello_deadline - now) / 1000 + 1,
                                                   qlean_machine_hello_grace_cb, self);
          return FALSE;
        }
      qlean_machine_spawn_fail (self, g_error_new (QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
                                                   _("qlean-guest does not answer in machine “%s”, "
                                                     "and its guest-transport is “qlean-guest”: "
                                                     "put qlean-guest in the image, or use "
                                                     "transport “auto” or “agent”"),
                                                   self->name));
      return FALSE;
    }
  else
    {
      gint64 now = g_get_monotonic_time ();

      if (self->hello_deadline == 0)
        self->hello_deadline = now + HELLO_GRACE_MS * G_TIME_SPAN_MILLISECOND;
      if (syncing && now < self->hello_deadline)
        {
          if (self->hello_timer == NULL)
            self->hello_timer = qlean_add_timeout (qlean_worker_get_context (),
                                                   (self->hello_deadline - now) / 1000 + 1,
                                                   qlean_machine_hello_grace_cb, self);
          return FALSE;
        }
      decided = QLEAN_GUEST_TRANSPORT_AGENT;
    }

  qlean_clear_source (&self->hello_timer);
  g_debug ("machine %s: guest transport %s", self->name,
           decided == QLEAN_GUEST_TRANSPORT_AGENT ? "agent" : "qlean-guest");
  g_atomic_int_set (&self->guest_transport, decided);
  return TRUE;
}

static void
qlean_machine_spawn_maybe_done (QleanMachine *self)
{
  g_autoptr(GTask) task = NULL;

  if (self->spawn_task == NULL || self->spawn_error != NULL ||
      !self->qmp_ready || !self->agent_ready)
    return;

  /* Decided before anything runs in the guest, so that even Qlean's own
   * start-up commands use the transport of the run. */
  if (!qlean_machine_decide_transport (self))
    return;

  /* A restored guest wakes up with the clock, and the name, of the
   * moment it was saved. */
  if (self->restoring && !self->restore_fixed)
    {
      if (!self->restore_fixing)
        {
          self->restore_fixing = TRUE;
          qlean_machine_fix_clock (self);
          qlean_machine_fix_identity_async (self, self->incoming_new_identity,
                                            qlean_machine_identity_fixed_cb,
                                            g_object_ref (self->spawn_task));
        }
      return;
    }

  /* A machine on a network is running once its guest has its address
   * and knows the other machines' names (qlean-machine-network.c). */
  if (self->network != NULL && !self->network_ready)
    {
      if (!self->network_configuring)
        {
          self->network_configuring = TRUE;
          qlean_machine_network_configure_async (self, self->qga,
                                                 g_task_get_cancellable (self->spawn_task),
                                                 qlean_machine_network_configured_cb,
                                                 g_object_ref (self->spawn_task));
        }
      return;
    }

  /* The first machine of its kind saves its fresh boot for the next. */
  if (self->boot_state_save != NULL)
    {
      g_autofree char *dir = g_path_get_dirname (self->boot_state_save);

      if (g_mkdir_with_parents (dir, 0700) == 0)
        {
          g_autofree char *mac = qlean_machine_dup_mac_address (self);
          g_autofree char *mac_file = g_strconcat (self->boot_state_save, ".mac", NULL);

          /* Written first: a state without it must not be loaded with a
           * stale one (the save renames its file into place last). */
          if (mac != NULL)
            g_file_set_contents (mac_file, mac, -1, NULL);
          else
            g_unlink (mac_file);
          if (self->mem_template_work != NULL)
            {
              const char *argv[] = { "/bin/sh", "-c", template_clean_script, NULL };

              qlean_machine_run_starting_async (self, argv, NULL, NULL,
                                                qlean_machine_template_cleaned_cb,
                                                g_object_ref (self->spawn_task));
              return;
            }
          qlean_machine_save_state_async (self, self->boot_state_save, FALSE, NULL,
                                          qlean_machine_boot_state_saved_cb,
                                          g_object_ref (self->spawn_task));
          return;
        }
      g_clear_pointer (&self->boot_state_save, g_free);
    }

  /* Shared folders are mounted last: after the boot is saved for fast
   * starts (a mounted 9p export blocks migration), before anything of
   * the caller's runs. */
  if (qlean_machine_config_get_n_shares (self->config) > 0 && !self->shares_mounted)
    {
      if (!self->shares_mounting)
        {
          self->shares_mounting = TRUE;
          qlean_machine_mount_shares_async (self, qlean_machine_shares_mounted_cb,
                                            g_object_ref (self->spawn_task));
        }
      return;
    }

  task = g_steal_pointer (&self->spawn_task);
  qlean_clear_source (&self->boot_timer);
  qlean_clear_source (&self->spawn_cancel);
  g_clear_pointer (&self->incoming, g_free);
  g_clear_pointer (&self->boot_state_used, g_free);
  qlean_machine_unlock_boot_state (self);
  qlean_machine_set_state (self, QLEAN_MACHINE_STATE_RUNNING);
  qlean_machine_emit (self, signals[SIGNAL_READY]);
  g_task_return_boolean (task, TRUE);
}

static void qlean_machine_try_agent (QleanMachine *self);

static void
qlean_machine_agent_sync_cb (GObject      *source,
                             GAsyncResult *result,
                             gpointer      user_data)
{
  g_autoptr(QleanMachine) self = user_data;
  g_autoptr(GError) error = NULL;

  if (qlean_qga_client_sync_finish (QLEAN_QGA_CLIENT (source), result, &error))
    {
      self->agent_ready = TRUE;
      qlean_machine_spawn_maybe_done (self);
      return;
    }

  if (self->spawn_task == NULL || self->spawn_error != NULL)
    return;

  /* An agent that is not up yet times out; keep asking until the boot
   * timer gives up. A closed channel means QEMU is going away: its exit
   * watch reports that better than we can. */
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
    qlean_machine_try_agent (self);
}

static void
qlean_machine_try_agent (QleanMachine *self)
{
  qlean_qga_client_sync_async (self->qga, SYNC_ATTEMPT_MS, NULL,
                               qlean_machine_agent_sync_cb, g_object_ref (self));
}

static void
qlean_machine_qmp_event_cb (QleanQmpClient *qmp,
                            const char     *name,
                            JsonObject     *data,
                            gpointer        user_data)
{
  QleanLink *link = user_data;
  g_autoptr(QleanMachine) self = qlean_link_get (link);

  if (self == NULL)
    return;

  g_debug ("machine %s: QMP event %s", self->name, name);

  if (g_str_equal (name, "GUEST_PANICKED"))
    qlean_machine_guest_panicked (self);

  if (g_str_equal (name, "SHUTDOWN"))
    {
      g_autoptr(QleanQgaClient) qga = qlean_machine_get_qga (self);

      if (qga != NULL)
        qlean_qga_client_notify_shutdown (qga);
    }

  /* The guest rebooted (or QMP system_reset): the agent and qlean-guest
   * start afresh and will never answer what was sent before. Fail those
   * calls now, resync the agent before its next command, and say HELLO
   * to the next qlean-guest; until it answers, exec falls back to the
   * agent. */
  if (g_str_equal (name, "RESET"))
    {
      g_autoptr(GError) reason = g_error_new_literal (QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_DISCONNECTED,
                                                      _("the guest was reset"));

      if (self->qga != NULL)
        qlean_qga_client_notify_reset (self->qga);
      if (self->guest != NULL && !qlean_machine_uses_agent_only (self))
        qlean_guest_channel_reset (self->guest, reason, qlean_machine_get_boot_timeout (self));
    }

  /* --- qlean-guest exited (the guest closed the data port): its streams
   * will never end, so end them now and say HELLO to the next one (the
   * minimal image's init restarts it); until one answers, exec falls
   * back to the agent. --- */
  if (g_str_equal (name, "VSERPORT_CHANGE") && data != NULL &&
      g_strcmp0 (json_object_get_string_member_with_default (data, "id", NULL), "data0") == 0 &&
      !json_object_get_boolean_member_with_default (data, "open", TRUE) &&
      self->guest != NULL && !qlean_machine_uses_agent_only (self))
    {
      g_autoptr(GError) reason = g_error_new_literal (QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_DISCONNECTED,
                                                      _("qlean-guest exited in the guest"));

      qlean_guest_channel_reset (self->guest, reason, qlean_machine_get_boot_timeout (self));
    }
  /* --- */
}

static gboolean
qlean_machine_qmp_grace_cb (gpointer user_data)
{
  QleanMachine *self = user_data;
  GError *error = g_object_steal_data (G_OBJECT (self), "qlean-qmp-error");

  g_clear_pointer (&self->qmp_grace_timer, g_source_unref);
  qlean_machine_spawn_fail (self, error);

  return G_SOURCE_REMOVE;
}

/* Loading a saved state: QEMU waits (-incoming defer) until told where
 * the stream is, loads it, and runs the guest on when told to. */

static void
qlean_machine_incoming_cont_cb (GObject      *source,
                                GAsyncResult *result,
                                gpointer      user_data)
{
  g_autoptr(QleanMachine) self = user_data;
  g_autoptr(JsonNode) reply = NULL;
  GError *error = NULL;

  reply = qlean_qmp_client_execute_finish (QLEAN_QMP_CLIENT (source), result, &error);
  if (reply == NULL)
    {
      qlean_machine_spawn_fail (self, error);
      return;
    }

  self->qmp_ready = TRUE;
  qlean_machine_spawn_maybe_done (self);
}

static void qlean_machine_incoming_poll (QleanMachine *self);

static void
qlean_machine_incoming_query_cb (GObject      *source,
                                 GAsyncResult *result,
                                 gpointer      user_data)
{
  g_autoptr(QleanMachine) self = user_data;
  g_autoptr(JsonNode) reply = NULL;
  GError *error = NULL;
  JsonObject *object;
  const char *status;

  reply = qlean_qmp_client_execute_finish (QLEAN_QMP_CLIENT (source), result, &error);
  if (reply == NULL)
    {
      qlean_machine_spawn_fail (self, error);
      return;
    }
  if (self->spawn_task == NULL || self->spawn_error != NULL)
    return;

  object = JSON_NODE_HOLDS_OBJECT (reply) ? json_node_get_object (reply) : NULL;
  status = object ? json_object_get_string_member_with_default (object, "status", "") : "";

  if (g_str_equal (status, "completed"))
    {
      /* Off again: this machine's own snapshots carry its RAM. */
      if (self->mem_template_load)
        set_ignore_shared (self->qmp, FALSE, NULL, NULL);
      qlean_qmp_client_execute_async (self->qmp, "cont", NULL, NULL,
                                      qlean_machine_incoming_cont_cb, g_object_ref (self));
      return;
    }

  if (g_str_equal (status, "failed") || g_str_equal (status, "cancelled"))
    {
      qlean_machine_spawn_fail (self,
          g_error_new (QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
                       _("QEMU could not load the saved state of machine “%s”: %s"), self->name,
                       object ? json_object_get_string_member_with_default (object, "error-desc", status)
                              : status));
      return;
    }

  qlean_machine_incoming_poll (self);
}

static gboolean
qlean_machine_incoming_poll_cb (gpointer user_data)
{
  QleanMachine *self = user_data;

  g_clear_pointer (&self->incoming_poll, g_source_unref);
  qlean_qmp_client_execute_async (self->qmp, "query-migrate", NULL, NULL,
                                  qlean_machine_incoming_query_cb, g_object_ref (self));
  return G_SOURCE_REMOVE;
}

static void
qlean_machine_incoming_poll (QleanMachine *self)
{
  self->incoming_poll = qlean_add_timeout (qlean_worker_get_context (), 5,
                                           qlean_machine_incoming_poll_cb, self);
}

static void
qlean_machine_incoming_started_cb (GObject      *source,
                                   GAsyncResult *result,
                                   gpointer      user_data)
{
  g_autoptr(QleanMachine) self = user_data;
  g_autoptr(JsonNode) reply = NULL;
  GError *error = NULL;

  reply = qlean_qmp_client_execute_finish (QLEAN_QMP_CLIENT (source), result, &error);
  if (reply == NULL)
    {
      qlean_machine_spawn_fail (self, error);
      return;
    }

  qlean_machine_incoming_poll (self);
}

static void
qlean_machine_load_incoming (QleanMachine *self)
{
  g_autoptr(JsonObject) arguments = json_object_new ();
  /* The file itself, opened before QEMU started: no `cat` copying it
   * through a pipe (a load took 72-76 ms that way, 33-64 ms from the
   * descriptor), and nothing to quote. */
  g_autofree char *uri = g_strdup_printf ("fd:%d", QLEAN_STATE_FD);

  json_object_set_string_member (arguments, "uri", uri);
  /* A state saved from a template has no RAM: the capability on both
   * sides says so (QMP runs the commands in order). */
  if (self->mem_template_load)
    set_ignore_shared (self->qmp, TRUE, NULL, NULL);
  qlean_qmp_client_execute_async (self->qmp, "migrate-incoming", arguments, NULL,
                                  qlean_machine_incoming_started_cb, g_object_ref (self));
}

static void
qlean_machine_qmp_ready_cb (GObject      *source,
                            GAsyncResult *result,
                            gpointer      user_data)
{
  g_autoptr(QleanMachine) self = user_data;
  g_autoptr(QleanQmpClient) qmp = NULL;
  GError *error = NULL;

  qmp = qlean_qmp_client_new_finish (result, &error);

  if (self->spawn_task == NULL || self->spawn_error != NULL)
    {
      g_clear_error (&error);
      if (qmp != NULL)
        qlean_qmp_client_close (qmp);
      return;
    }

  if (qmp == NULL)
    {

      /* Most likely QEMU is dying; give its exit watch a moment to say
       * why, and report the QMP failure only if it does not. */
      g_object_set_data_full (G_OBJECT (self), "qlean-qmp-error", error,
                              (GDestroyNotify) g_error_free);
      self->qmp_grace_timer = qlean_add_timeout (qlean_worker_get_context (), QMP_FAILURE_GRACE_MS,
                                                 qlean_machine_qmp_grace_cb, self);
      return;
    }

  g_signal_connect_data (qmp, "event", G_CALLBACK (qlean_machine_qmp_event_cb),
                         qlean_link_ref (self->link), machine_link_closure_notify, 0);

  g_mutex_lock (&self->lock);
  self->qmp = g_steal_pointer (&qmp);
  g_mutex_unlock (&self->lock);

  if (self->restoring)
    {
      qlean_machine_load_incoming (self);
      return;
    }

  self->qmp_ready = TRUE;
  qlean_machine_spawn_maybe_done (self);
}

/* The guest kernel panicked (pvpanic's GUEST_PANICKED, or its panic line
 * on the console while starting, before pvpanic's driver is loaded; the
 * kernel then reboots at once, and would again and again until the boot
 * timeout): a start fails now, with the panic; a running machine is
 * CRASHED at once, whatever QEMU's panic action. */
static void
qlean_machine_guest_panicked (QleanMachine *self)
{
  self->panicked = TRUE;

  if (self->spawn_task != NULL)
    {
      g_autofree char *panic = qlean_machine_panic_text (self);
      g_autofree char *console = qlean_machine_run_file_tail (self, QLEAN_CONSOLE_LOG, TAIL_LINES);

      qlean_machine_spawn_fail (self,
          g_error_new (QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_CRASHED,
                       _("The guest kernel of machine “%s” panicked while starting: %s. "
                         "Last lines of the serial console:\n%s"),
                       self->name, panic ? panic : _("it printed no panic message"), console));
      return;
    }

  qlean_machine_signal_qemu (self, SIGKILL);
}

typedef struct
{
  QleanLink       *link;
  QleanConsoleLog *console;     /* to tell its run; not a reference */
} ConsolePanic;

static void
console_panic_free (gpointer data)
{
  ConsolePanic *panic = data;

  qlean_link_unref (panic->link);
  g_free (panic);
}

static gboolean
qlean_machine_console_panic_cb (gpointer user_data)
{
  ConsolePanic *panic = user_data;
  g_autoptr(QleanMachine) self = qlean_link_get (panic->link);

  /* Only a start believes the console: later, anything in the guest may
   * print that line, and pvpanic reports real panics. */
  if (self != NULL && self->console == panic->console && self->spawn_task != NULL &&
      !self->panicked)
    qlean_machine_guest_panicked (self);

  return G_SOURCE_REMOVE;
}

/* The console's thread saw the kernel's panic line. */
static void
qlean_machine_console_panic_func (gpointer user_data)
{
  ConsolePanic *panic = user_data;
  ConsolePanic *copy = g_new0 (ConsolePanic, 1);

  copy->link = qlean_link_ref (panic->link);
  copy->console = panic->console;
  qlean_worker_invoke (qlean_machine_console_panic_cb, copy, console_panic_free);
}

static gboolean
qlean_machine_boot_timeout_cb (gpointer user_data)
{
  QleanMachine *self = user_data;
  g_autofree char *console = NULL;
  guint timeout_ms = qlean_machine_get_boot_timeout (self);

  if (self->console != NULL)
    qlean_console_log_flush (self->console);
  console = qlean_machine_run_file_tail (self, QLEAN_CONSOLE_LOG, TAIL_LINES);

  g_clear_pointer (&self->boot_timer, g_source_unref);

  if (!self->qmp_ready)
    qlean_machine_spawn_fail (self,
        g_error_new (QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_AGENT_TIMEOUT,
                     _("QEMU did not answer on its QMP socket within %u ms"), timeout_ms));
  else
    qlean_machine_spawn_fail (self,
        g_error_new (QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_AGENT_TIMEOUT,
                     _("The guest agent of machine “%s” did not answer within %u ms. "
                       "Last lines of the serial console:\n%s"),
                     self->name, timeout_ms, *console ? console : _("(empty)")));

  return G_SOURCE_REMOVE;
}

static gboolean
qlean_machine_spawn_cancelled_cb (gpointer user_data)
{
  QleanMachine *self = user_data;

  g_clear_pointer (&self->spawn_cancel, g_source_unref);
  qlean_machine_spawn_fail (self,
      g_error_new (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                   _("Starting machine “%s” was cancelled"), self->name));

  return G_SOURCE_REMOVE;
}

static GSocket *
listen_unix (const char  *path,
             GError     **error)
{
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketAddress) address = NULL;

  socket = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, 0, error);
  if (socket == NULL)
    return NULL;

  address = g_unix_socket_address_new (path);
  if (!g_socket_bind (socket, address, FALSE, error) ||
      !g_socket_listen (socket, error))
    return NULL;

  return g_steal_pointer (&socket);
}

static GIOStream *
connect_unix (const char  *path,
              GError     **error)
{
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GSocketAddress) address = NULL;

  socket = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, 0, error);
  if (socket == NULL)
    return NULL;

  /* The listening socket is already bound, and QEMU holds it: the
   * connection waits in its backlog until QEMU accepts it. */
  address = g_unix_socket_address_new (path);
  if (!g_socket_connect (socket, address, NULL, error))
    return NULL;

  return G_IO_STREAM (g_socket_connection_factory_create_connection (socket));
}

static gboolean
qlean_machine_launch (QleanMachine  *self,
                      GError       **error)
{
  g_auto(ResolvedSpec) resolved = { { 0 } };
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSocket) qmp_listener = NULL;
  g_autoptr(GSocket) qga_listener = NULL;
  g_autoptr(GSocket) data_listener = NULL;
  g_autoptr(GIOStream) qmp_stream = NULL;
  g_autoptr(GIOStream) qga_stream = NULL;
  g_autoptr(GIOStream) data_stream = NULL;
  g_autoptr(GSubprocess) qemu = NULL;
  g_auto(GStrv) argv = NULL;
  g_autofree char *run_dir = NULL;
  g_autofree char *qmp_path = NULL;
  g_autofree char *qga_path = NULL;
  g_autofree char *data_path = NULL;
  g_autofree char *log_path = NULL;
  g_autofree char *disk = NULL;
  g_autofree char *seed = NULL;

  run_dir = qlean_host_make_run_dir (self->name, error);
  if (run_dir == NULL)
    return FALSE;

  g_mutex_lock (&self->lock);
  self->run_dir = g_strdup (run_dir);
  g_mutex_unlock (&self->lock);

  if (!qlean_machine_resolve_spec (self, run_dir, &resolved, error))
    return FALSE;
  if (self->network != NULL && !qlean_machine_network_check_running (self, self->network, error))
    return FALSE;
  if (!qlean_machine_prepare_disks (self, &resolved, &disk, &seed, error))
    return FALSE;

  qmp_path = g_build_filename (run_dir, QLEAN_QMP_SOCKET, NULL);
  qga_path = g_build_filename (run_dir, QLEAN_QGA_SOCKET, NULL);
  data_path = g_build_filename (run_dir, QLEAN_DATA_SOCKET, NULL);
  log_path = g_build_filename (run_dir, QLEAN_QEMU_LOG, NULL);

  /* We make the listening sockets and QEMU inherits them: no polling for
   * a socket file to appear, and a connect that cannot race QEMU. */
  if ((qmp_listener = listen_unix (qmp_path, error)) == NULL ||
      (qga_listener = listen_unix (qga_path, error)) == NULL ||
      (data_listener = listen_unix (data_path, error)) == NULL)
    return FALSE;

  resolved.spec.qmp_fd = 3;
  resolved.spec.qga_fd = 4;
  resolved.spec.data_fd = 5;
  resolved.spec.console_fd = QLEAN_CONSOLE_FD;

  if (self->incoming == NULL)
    {
      gboolean mem_template = qlean_machine_config_get_memory_template (self->config);
      g_autofree char *boot_state = NULL;
      g_autofree char *reason = NULL;

      /* Memory templates only where the RAM's id is q35's (see
       * qlean_qemu_argv_build()). */
      if (mem_template && resolved.spec.arch != NULL &&
          resolved.spec.arch->arch != QLEAN_ARCH_X86_64)
        mem_template = FALSE;
      boot_state = qlean_machine_boot_state_path (self, &resolved, mem_template);
      if (boot_state != NULL && mem_template)
        {
          if (g_file_test (boot_state, G_FILE_TEST_EXISTS))
            {
              if (!qlean_machine_template_usable (boot_state, resolved.spec.memory_mib, &reason))
                {
                  /* Useless without its template: made anew by a
                   * later machine, unless one is loading it now. */
                  if (qlean_machine_lock_boot_state (self, boot_state, TRUE))
                    {
                      g_unlink (boot_state);
                      qlean_machine_unlock_boot_state (self);
                    }
                }
            }
          else if (qlean_machine_lock_boot_state (self, boot_state, TRUE))
            {
              self->mem_template_work =
                qlean_machine_template_make_work (boot_state, resolved.spec.memory_mib, &reason);
              qlean_machine_unlock_boot_state (self);
            }
          if (reason != NULL)
            {
              g_message ("machine %s: no memory template, starting the old way: %s", self->name,
                         reason);
              g_free (boot_state);
              boot_state = qlean_machine_boot_state_path (self, &resolved, FALSE);
            }
        }

      if (boot_state != NULL && g_file_test (boot_state, G_FILE_TEST_IS_REGULAR) &&
          qlean_machine_lock_boot_state (self, boot_state, FALSE))
        {
          g_autofree char *mac_file = g_strconcat (boot_state, ".mac", NULL);
          g_autofree char *saved_mac = NULL;

          /* The card in the saved state has its template's MAC. */
          if (g_file_get_contents (mac_file, &saved_mac, NULL, NULL))
            g_strstrip (saved_mac);
          qlean_machine_set_incoming (self, boot_state, TRUE, saved_mac);
          self->boot_state_used = g_strdup (boot_state);
          /* Its mtime says when it was last used: pruning keeps the newest. */
          g_utime (boot_state, NULL);
          if (mem_template && reason == NULL)
            {
              self->mem_template_load = TRUE;
              self->mem_template_ram = g_strconcat (boot_state, ".ram", NULL);
            }
        }
      else if (boot_state != NULL && !g_file_test (boot_state, G_FILE_TEST_EXISTS) &&
               qlean_machine_lock_boot_state (self, boot_state, TRUE))
        self->boot_state_save = g_steal_pointer (&boot_state);

      if (self->boot_state_save == NULL && self->mem_template_work != NULL)
        {
          g_unlink (self->mem_template_work);
          g_clear_pointer (&self->mem_template_work, g_free);
        }
      if (self->mem_template_work != NULL)
        {
          resolved.spec.mem_path = self->mem_template_work;
          resolved.spec.mem_share = TRUE;
        }
      else if (self->mem_template_load)
        {
          resolved.spec.mem_path = self->mem_template_ram;
          resolved.spec.mem_share = FALSE;
        }
    }

  /* One start loads a saved state; the next boots afresh. QEMU reads it
   * from an inherited descriptor (see qlean_machine_load_incoming()). */
  if (self->incoming != NULL)
    {
      self->restoring = TRUE;
      resolved.spec.incoming = TRUE;
    }
  argv = qlean_qemu_argv_build (&resolved.spec);

  /* stdin is /dev/null; QEMU's own messages go to qemu.log. QEMU dies
   * with this process, so a runner killed with SIGKILL leaks no VM. */
  launcher = qlean_host_child_launcher (G_SUBPROCESS_FLAGS_STDERR_MERGE);
  qlean_host_tune_qemu_launcher (launcher);
  g_subprocess_launcher_set_stdout_file_path (launcher, log_path);
  {
    g_autofree char *console_path = g_build_filename (run_dir, QLEAN_CONSOLE_LOG, NULL);
    QleanConsoleLog *console;
    int console_fd;

    console = qlean_console_log_new (console_path, &console_fd, error);
    if (console == NULL)
      return FALSE;
    {
      ConsolePanic *panic = g_new0 (ConsolePanic, 1);

      panic->link = qlean_link_ref (self->link);
      panic->console = console;
      qlean_console_log_set_panic_func (console, qlean_machine_console_panic_func, panic,
                                        console_panic_free);
    }
    g_mutex_lock (&self->lock);
    self->console = console;
    g_mutex_unlock (&self->lock);
    g_subprocess_launcher_take_fd (launcher, console_fd, QLEAN_CONSOLE_FD);
  }
  g_subprocess_launcher_take_fd (launcher, dup (g_socket_get_fd (qmp_listener)), 3);
  g_subprocess_launcher_take_fd (launcher, dup (g_socket_get_fd (qga_listener)), 4);
  g_subprocess_launcher_take_fd (launcher, dup (g_socket_get_fd (data_listener)), 5);
  if (self->incoming != NULL)
    {
      int state_fd = g_open (self->incoming, O_RDONLY | O_CLOEXEC, 0);

      if (state_fd < 0)
        {
          int saved_errno = errno;

          qlean_set_error_from_errno (error, saved_errno,
                                      _("Cannot read the saved state %s of machine “%s”"), self->incoming,
                                      self->name);
          return FALSE;
        }
      g_subprocess_launcher_take_fd (launcher, state_fd, QLEAN_STATE_FD);
    }

  if (g_getenv ("QLEAN_DEBUG_ARGV") != NULL)
    {
      g_autofree char *joined = g_strjoinv (" ", argv);

      g_message ("machine %s: %s", self->name, joined);
    }

  qemu = g_subprocess_launcher_spawnv (launcher, (const char * const *) argv, error);
  if (qemu == NULL)
    {
      g_prefix_error (error, _("Could not start QEMU (%s): "), resolved.qemu_binary);
      return FALSE;
    }

  self->qemu = g_object_ref (qemu);
  self->qemu_exited = FALSE;
  g_mutex_lock (&self->lock);
  self->pid = qlean_subprocess_get_pid (qemu);
  g_mutex_unlock (&self->lock);

  g_subprocess_wait_async (qemu, NULL, qlean_machine_qemu_exited_cb,
                           qlean_link_ref (self->link));

  self->boot_timer = qlean_add_timeout (qlean_worker_get_context (),
                                        qlean_machine_get_boot_timeout (self),
                                        qlean_machine_boot_timeout_cb, self);

  if ((qmp_stream = connect_unix (qmp_path, error)) == NULL ||
      (qga_stream = connect_unix (qga_path, error)) == NULL ||
      (data_stream = connect_unix (data_path, error)) == NULL)
    return FALSE;

  g_mutex_lock (&self->lock);
  self->qga = qlean_qga_client_new (qga_stream);
  self->guest = qlean_guest_channel_new (data_stream);
  g_mutex_unlock (&self->lock);

  /* Logs: every QMP and agent line goes to transcript.log; the QMP
   * client is made by hand so that the trace sees its handshake. */
  {
    g_autofree char *transcript_path = g_build_filename (run_dir, QLEAN_TRANSCRIPT_LOG, NULL);
    g_autoptr(QleanTranscript) transcript = NULL;
    g_autoptr(QleanQmpClient) qmp = g_object_new (QLEAN_TYPE_QMP_CLIENT, "stream", qmp_stream, NULL);
    g_autoptr(GError) transcript_error = NULL;

    transcript = qlean_transcript_new (transcript_path, self->name, &transcript_error);
    if (transcript == NULL)
      g_debug ("No transcript for machine %s: %s", self->name, transcript_error->message);
    else
      {
        qlean_transcript_attach_qmp (transcript, qmp);
        qlean_transcript_attach_qga (transcript, self->qga);
      }
    /* qlean_qmp_client_new_finish() takes this result as it takes
     * qlean_qmp_client_new_async()'s. */
    g_async_initable_init_async (G_ASYNC_INITABLE (qmp), G_PRIORITY_DEFAULT, NULL,
                                 qlean_machine_qmp_ready_cb, g_object_ref (self));
  }
  qlean_machine_try_agent (self);
  /* Say hello to qlean-guest now, so that it is known to answer by the
   * first command; a guest without it just never answers this one. The
   * agent transport never speaks to qlean-guest at all. */
  if (qlean_machine_config_get_guest_transport (self->config) != QLEAN_GUEST_TRANSPORT_AGENT)
    qlean_guest_channel_hello_async (self->guest, qlean_machine_get_boot_timeout (self), NULL,
                                     qlean_machine_guest_hello_cb, qlean_link_ref (self->link));

  return TRUE;
}

static void
qlean_machine_guest_hello_cb (GObject      *source,
                              GAsyncResult *result,
                              gpointer      user_data)
{
  QleanLink *link = user_data;
  g_autoptr(QleanMachine) self = qlean_link_get (link);
  g_autoptr(GError) error = NULL;

  if (!qlean_guest_channel_hello_finish (QLEAN_GUEST_CHANNEL (source), result, &error))
    g_debug ("qlean-guest did not answer: %s", error->message);
  qlean_link_unref (link);

  /* A start may be waiting for this answer to pick its transport. */
  if (self != NULL && self->guest == QLEAN_GUEST_CHANNEL (source))
    qlean_machine_spawn_maybe_done (self);
}

static void
qlean_machine_image_prepared_cb (GObject      *source,
                                 GAsyncResult *result,
                                 gpointer      user_data)
{
  g_autoptr(QleanMachine) self = user_data;
  GError *error = NULL;

  if (!qlean_image_prepare_finish (QLEAN_IMAGE (source), result, &error))
    {
      qlean_machine_spawn_fail (self, error);
      return;
    }

  if (self->spawn_task == NULL)
    return;

  if (!qlean_machine_launch (self, &error))
    qlean_machine_spawn_fail (self, error);
}

static gboolean
qlean_machine_spawn_in_worker (gpointer user_data)
{
  GTask *task = user_data;
  QleanMachine *self = g_task_get_source_object (task);
  QleanMachineState state = qlean_machine_get_state (self);
  GCancellable *cancellable = g_task_get_cancellable (task);

  if (state != QLEAN_MACHINE_STATE_CREATED &&
      state != QLEAN_MACHINE_STATE_STOPPED &&
      state != QLEAN_MACHINE_STATE_CRASHED)
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE,
                               _("Cannot start machine “%s”: it is already %s"),
                               self->name, qlean_machine_state_to_string (state));
      return G_SOURCE_REMOVE;
    }

  if (g_task_return_error_if_cancelled (task))
    return G_SOURCE_REMOVE;

  self->spawn_task = g_object_ref (task);
  self->stop_requested = FALSE;
  self->panicked = FALSE;
  self->qmp_ready = FALSE;
  self->agent_ready = FALSE;
  self->hello_deadline = 0;
  g_atomic_int_set (&self->guest_transport, QLEAN_GUEST_TRANSPORT_AUTO);
  self->network_configuring = FALSE;
  self->network_ready = FALSE;
  self->shares_mounting = FALSE;
  self->shares_mounted = FALSE;
  if (qlean_machine_config_get_n_shares (self->config) > 0)
    qlean_image_want_share_boot (self->image);
  qlean_machine_set_state (self, QLEAN_MACHINE_STATE_STARTING);

  self->spawn_cancel = qlean_add_cancel (qlean_worker_get_context (), cancellable,
                                         qlean_machine_spawn_cancelled_cb, self);

  qlean_image_prepare_async (self->image, cancellable,
                             qlean_machine_image_prepared_cb, g_object_ref (self));

  return G_SOURCE_REMOVE;
}

/**
 * qlean_machine_spawn_async:
 * @self: a #QleanMachine
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when the machine runs, or failed to start
 * @user_data: data for @callback
 *
 * Boots the machine: prepares its image if needed, starts QEMU in a
 * private run directory, and completes once the guest agent answers.
 *
 * A failure says why: %QLEAN_MACHINE_ERROR_QEMU_EXITED with QEMU's exit
 * status and the end of its output, %QLEAN_MACHINE_ERROR_AGENT_TIMEOUT
 * with the last lines of the serial console,
 * %QLEAN_MACHINE_ERROR_QEMU_NOT_FOUND with the package to install. After
 * a failure no QEMU process and no run directory are left.
 */
void
qlean_machine_spawn_async (QleanMachine        *self,
                           GCancellable        *cancellable,
                           GAsyncReadyCallback  callback,
                           gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (QLEAN_IS_MACHINE (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, qlean_machine_spawn_async);
  g_task_set_name (task, "[qlean] spawn machine");

  qlean_worker_invoke (qlean_machine_spawn_in_worker, task, g_object_unref);
}

/**
 * qlean_machine_spawn_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_machine_spawn_async().
 *
 * Returns: %TRUE when the machine runs
 */
gboolean
qlean_machine_spawn_finish (QleanMachine  *self,
                            GAsyncResult  *result,
                            GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_machine_spawn:
 * @self: a #QleanMachine
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_spawn_async().
 *
 * Returns: %TRUE when the machine runs
 */
gboolean
qlean_machine_spawn (QleanMachine  *self,
                     GCancellable  *cancellable,
                     GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  qlean_sync_call_init (&call);
  qlean_machine_spawn_async (self, cancellable, qlean_sync_call_done, &call);

  return qlean_machine_spawn_finish (self, qlean_sync_call_wait (&call), error);
}

/* Running commands */

typedef struct
{
  QleanQgaClient *qga;
  GStrv           argv;         /* argv[0] is an absolute path */
  GBytes         *stdin_bytes;  /* or NULL */
  gboolean        starting;     /* Qlean's own command before the machine is ready */
} ExecData;

static void
exec_data_free (ExecData *data)
{
  g_clear_object (&data->qga);
  g_strfreev (data->argv);
  g_clear_pointer (&data->stdin_bytes, g_bytes_unref);
  g_free (data);
}

/* An agent error while the machine went down is the machine's failure,
 * not the agent's: say so. */
static GError *
qlean_machine_translate_agent_error (QleanMachine *self,
                                     GError       *error)
{
  if (g_error_matches (error, QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_DISCONNECTED) &&
      !self->stop_requested)
    {
      GError *translated = g_error_new (QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_CRASHED,
                                        _("Machine “%s” went away while the command ran: %s"),
                                        self->name, error->message);
      g_error_free (error);
      return translated;
    }

  return error;
}

static void
qlean_machine_exec_wait_cb (GObject      *source,
                            GAsyncResult *result,
                            gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  QleanMachine *self = g_task_get_source_object (task);
  g_autoptr(QleanQgaExecStatus) status = NULL;
  GError *error = NULL;

  status = qlean_qga_client_exec_wait_finish (QLEAN_QGA_CLIENT (source), result, &error);
  if (status == NULL)
    {
      g_task_return_error (task, qlean_machine_translate_agent_error (self, error));
      return;
    }

  g_task_return_pointer (task,
                         qlean_exec_result_new (status->exit_code, status->signal,
                                                status->out_data, status->err_data,
                                                status->out_truncated, status->err_truncated),
                         g_object_unref);
}

static void
qlean_machine_exec_started_cb (GObject      *source,
                               GAsyncResult *result,
                               gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  QleanMachine *self = g_task_get_source_object (task);
  GCancellable *cancellable;
  GError *error = NULL;
  gint64 pid;

  pid = qlean_qga_client_exec_finish (QLEAN_QGA_CLIENT (source), result, &error);
  if (pid < 0)
    {
      g_task_return_error (task, qlean_machine_translate_agent_error (self, error));
      return;
    }

  cancellable = g_task_get_cancellable (task);
  qlean_qga_client_exec_wait_async (QLEAN_QGA_CLIENT (source), pid, cancellable,
                                    qlean_machine_exec_wait_cb, g_steal_pointer (&task));
}

static void
qlean_machine_exec_run_cb (GObject      *source,
                           GAsyncResult *result,
                           gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  GError *error = NULL;
  QleanExecResult *exec_result;

  exec_result = qlean_guest_launcher_run_finish (QLEAN_GUEST_LAUNCHER (source), result, &error);
  if (exec_result == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, exec_result, g_object_unref);
}

static gboolean
qlean_machine_exec_in_worker (gpointer user_data)
{
  GTask *task = user_data;
  QleanMachine *self = g_task_get_source_object (task);
  ExecData *data = g_task_get_task_data (task);

  /* qlean-guest streams output with a higher cap than the agent's 16 MiB and
   * reports the exit at once; the agent alone is the fallback for guests
   * without it. */
  if (qlean_machine_get_guest_transport (self) == QLEAN_GUEST_TRANSPORT_QLEAN_GUEST ||
      (!qlean_machine_uses_agent_only (self) &&
       self->guest != NULL && qlean_guest_channel_is_ready (self->guest)))
    {
      g_autoptr(QleanGuestLauncher) launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_NONE);

      if (data->stdin_bytes != NULL)
        qlean_guest_launcher_set_stdin (launcher, data->stdin_bytes);
      if (data->starting)
        qlean_guest_launcher_set_starting (launcher);
      qlean_guest_launcher_run_async (launcher, self, (const char * const *) data->argv,
                                      g_task_get_cancellable (task),
                                      qlean_machine_exec_run_cb, g_object_ref (task));
      return G_SOURCE_REMOVE;
    }

  qlean_qga_client_exec_async (data->qga, data->argv[0], (const char * const *) data->argv + 1,
                               NULL, data->stdin_bytes, TRUE,
                               g_task_get_cancellable (task),
                               qlean_machine_exec_started_cb, g_object_ref (task));

  return G_SOURCE_REMOVE;
}

/**
 * qlean_machine_exec_async:
 * @self: a #QleanMachine
 * @command: a shell command, run by `/bin/sh -c` in the guest as root
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the result
 * @user_data: data for @callback
 *
 * Runs @command in the guest through the agent and collects its exit
 * status, terminating signal and output. A command that fails is not an
 * error: look at the [class@ExecResult]. Each output stream is kept up to
 * a cap, 64 MiB through qlean-guest and the agent's 16 MiB through the
 * agent; what comes beyond is dropped and
 * [property@ExecResult:stdout-truncated] (or stderr-truncated) is set.
 * For more, read a [class@GuestProcess]'s pipes. Errors are for a
 * machine that is not running (%QLEAN_MACHINE_ERROR_INVALID_STATE), or that died
 * meanwhile (%QLEAN_MACHINE_ERROR_CRASHED).
 */
void
qlean_machine_exec_async (QleanMachine        *self,
                          const char          *command,
                          GCancellable        *cancellable,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  const char * const argv[] = { "/bin/sh", "-c", command, NULL };

  g_return_if_fail (QLEAN_IS_MACHINE (self));
  g_return_if_fail (command != NULL);

  qlean_machine_exec_argv_async (self, argv, cancellable, callback, user_data);
}

/* Behind qlean_machine_exec_async(), qlean_machine_exec_argv_async() and
 * qlean_machine_run_starting_async(): @argv (argv[0] an absolute path,
 * so that no path goes through a shell string), with @stdin_bytes as its
 * input; @starting lets it run before the machine is ready. Finish with
 * qlean_machine_exec_finish(). */
static void
qlean_machine_exec_full_async (QleanMachine        *self,
                               const char * const  *argv,
                               GBytes              *stdin_bytes,
                               gboolean             starting,
                               GCancellable        *cancellable,
                               GAsyncReadyCallback  callback,
                               gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autoptr(GError) error = NULL;
  ExecData *data;

  g_return_if_fail (QLEAN_IS_MACHINE (self));
  g_return_if_fail (argv != NULL && argv[0] != NULL && argv[0][0] == '/');

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, qlean_machine_exec_async);
  g_task_set_name (task, "[qlean] exec");

  if (!starting && !qlean_machine_check_running (self, "run a command", &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  data = g_new0 (ExecData, 1);
  data->qga = qlean_machine_get_qga (self);
  data->argv = g_strdupv ((char **) argv);
  data->stdin_bytes = stdin_bytes ? g_bytes_ref (stdin_bytes) : NULL;
  data->starting = starting;
  g_task_set_task_data (task, data, (GDestroyNotify) exec_data_free);

  if (data->qga == NULL)
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE,
                               _("Cannot run a command on machine “%s”: it has no agent connection"),
                               self->name);
      return;
    }

  qlean_worker_invoke (qlean_machine_exec_in_worker, g_steal_pointer (&task), g_object_unref);
}

void
qlean_machine_exec_argv_async (QleanMachine        *self,
                               const char * const  *argv,
                               GCancellable        *cancellable,
                               GAsyncReadyCallback  callback,
                               gpointer             user_data)
{
  qlean_machine_exec_full_async (self, argv, NULL, FALSE, cancellable, callback, user_data);
}

void
qlean_machine_run_starting_async (QleanMachine        *self,
                                  const char * const  *argv,
                                  GBytes              *stdin_bytes,
                                  GCancellable        *cancellable,
                                  GAsyncReadyCallback  callback,
                                  gpointer             user_data)
{
  qlean_machine_exec_full_async (self, argv, stdin_bytes, TRUE, cancellable, callback, user_data);
}

/**
 * qlean_machine_exec_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_machine_exec_async().
 *
 * Returns: (transfer full): the command's result, or %NULL with @error set
 */
QleanExecResult *
qlean_machine_exec_finish (QleanMachine  *self,
                           GAsyncResult  *result,
                           GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * qlean_machine_exec:
 * @self: a #QleanMachine
 * @command: a shell command, run by `/bin/sh -c` in the guest as root
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_exec_async().
 *
 * Returns: (transfer full): the command's result, or %NULL with @error set
 */
QleanExecResult *
qlean_machine_exec (QleanMachine  *self,
                    const char    *command,
                    GCancellable  *cancellable,
                    GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  qlean_sync_call_init (&call);
  qlean_machine_exec_async (self, command, cancellable, qlean_sync_call_done, &call);

  return qlean_machine_exec_finish (self, qlean_sync_call_wait (&call), error);
}

/* Stopping */

static void qlean_machine_shutdown_stage (QleanMachine *self);

static gboolean
qlean_machine_shutdown_timer_cb (gpointer user_data)
{
  QleanMachine *self = user_data;

  g_clear_pointer (&self->shutdown_timer, g_source_unref);
  qlean_machine_shutdown_stage (self);

  return G_SOURCE_REMOVE;
}

static void
qlean_machine_ignore_result_cb (GObject      *source,
                                GAsyncResult *result,
                                gpointer      user_data)
{
  g_autoptr(GError) error = NULL;

  if (QLEAN_IS_QMP_CLIENT (source))
    {
      g_autoptr(JsonNode) node = qlean_qmp_client_execute_finish (QLEAN_QMP_CLIENT (source), result, &error);
    }
  else
    qlean_qga_client_shutdown_finish (QLEAN_QGA_CLIENT (source), result, &error);

  if (error != NULL)
    g_debug ("shutdown step failed: %s", error->message);
}

/* Each stage asks harder than the last and arms the next one: the agent
 * (or ACPI) powers the guest off; QMP quit stops QEMU; then signals. */
static void
qlean_machine_shutdown_stage (QleanMachine *self)
{
  guint delay_ms = ESCALATION_STEP_MS;

  if (self->qemu == NULL || self->qemu_exited)
    return;

  switch (self->shutdown_stage++)
    {
    case 0:
      delay_ms = qlean_machine_get_shutdown_timeout (self);
      /* A paused guest can do nothing, not even power off: let it run. */
      if (qlean_machine_get_state (self) == QLEAN_MACHINE_STATE_PAUSED && self->qmp != NULL)
        {
          qlean_qmp_client_execute_async (self->qmp, "cont", NULL, NULL,
                                          qlean_machine_ignore_result_cb, NULL);
          qlean_machine_set_state (self, QLEAN_MACHINE_STATE_RUNNING);
        }
      if (self->qga != NULL && qlean_machine_get_state (self) == QLEAN_MACHINE_STATE_RUNNING)
        qlean_qga_client_shutdown_async (self->qga, "powerdown", NULL,
                                         qlean_machine_ignore_result_cb, NULL);
      else if (self->qmp != NULL)
        qlean_qmp_client_execute_async (self->qmp, "system_powerdown", NULL, NULL,
                                        qlean_machine_ignore_result_cb, NULL);
      else
        delay_ms = 0;
      break;
    case 1:
      if (self->qmp != NULL)
        qlean_qmp_client_execute_async (self->qmp, "quit", NULL, NULL,
                                        qlean_machine_ignore_result_cb, NULL);
      else
        delay_ms = 0;
      break;
    case 2:
      qlean_machine_signal_qemu (self, SIGTERM);
      break;
    default:
      qlean_machine_signal_qemu (self, SIGKILL);
      return;
    }

  qlean_clear_source (&self->shutdown_timer);
  self->shutdown_timer = qlean_add_timeout (qlean_worker_get_context (), delay_ms,
                                            qlean_machine_shutdown_timer_cb, self);
}

typedef enum
{
  STOP_GRACEFUL,
  STOP_KILL,
} StopMode;

static gboolean
qlean_machine_stop_in_worker (gpointer user_data)
{
  GTask *task = user_data;
  QleanMachine *self = g_task_get_source_object (task);
  StopMode mode = GPOINTER_TO_INT (g_task_get_task_data (task));

  if (self->attached)
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE,
                               _("Machine “%s” belongs to another process; stop it there "
                                 "(for machines started with “qlean start”: qlean stop %s)"),
                               self->name, self->name);
      return G_SOURCE_REMOVE;
    }

  if (self->qemu == NULL || self->qemu_exited)
    {
      g_task_return_boolean (task, TRUE);
      return G_SOURCE_REMOVE;
    }

  g_ptr_array_add (self->exit_waiters, g_object_ref (task));
  self->stop_requested = TRUE;

  if (self->spawn_task != NULL)
    {
      /* Stopping a machine that is still starting ends the start. */
      qlean_machine_spawn_fail (self,
          g_error_new (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                       _("Machine “%s” was stopped while starting"), self->name));
      return G_SOURCE_REMOVE;
    }

  if (mode == STOP_KILL)
    qlean_machine_signal_qemu (self, SIGKILL);
  else if (self->shutdown_stage == 0)
    qlean_machine_shutdown_stage (self);

  return G_SOURCE_REMOVE;
}

static void
qlean_machine_stop_async (QleanMachine        *self,
                          StopMode             mode,
                          GCancellable        *cancellable,
                          gpointer             source_tag,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (QLEAN_IS_MACHINE (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, source_tag);
  g_task_set_name (task, mode == STOP_KILL ? "[qlean] kill machine" : "[qlean] shut down machine");
  g_task_set_task_data (task, GINT_TO_POINTER (mode), NULL);

  qlean_worker_invoke (qlean_machine_stop_in_worker, task, g_object_unref);
}

/**
 * qlean_machine_shutdown_async:
 * @self: a #QleanMachine
 * @cancellable: (nullable): a #GCancellable
 * @callback: called once QEMU has exited
 * @user_data: data for @callback
 *
 * Powers the machine off: `guest-shutdown` through the agent (or ACPI
 * power-down when there is no agent), then, each after a bounded wait,
 * QMP `quit`, SIGTERM and SIGKILL. Completes when QEMU has exited and the
 * run directory is gone; the machine is then STOPPED. Shutting down a
 * machine that does not run succeeds at once.
 */
void
qlean_machine_shutdown_async (QleanMachine        *self,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data)
{
  qlean_machine_stop_async (self, STOP_GRACEFUL, cancellable, qlean_machine_shutdown_async,
                            callback, user_data);
}

/**
 * qlean_machine_shutdown_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_machine_shutdown_async().
 *
 * Returns: %TRUE once QEMU has exited
 */
gboolean
qlean_machine_shutdown_finish (QleanMachine  *self,
                               GAsyncResult  *result,
                               GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_machine_shutdown:
 * @self: a #QleanMachine
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_shutdown_async().
 *
 * Returns: %TRUE once QEMU has exited
 */
gboolean
qlean_machine_shutdown (QleanMachine  *self,
                        GCancellable  *cancellable,
                        GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  qlean_sync_call_init (&call);
  qlean_machine_shutdown_async (self, cancellable, qlean_sync_call_done, &call);

  return qlean_machine_shutdown_finish (self, qlean_sync_call_wait (&call), error);
}

/**
 * qlean_machine_kill_async:
 * @self: a #QleanMachine
 * @cancellable: (nullable): a #GCancellable
 * @callback: called once QEMU has exited
 * @user_data: data for @callback
 *
 * Kills QEMU with SIGKILL, without asking the guest. Completes when QEMU
 * has exited and the run directory is gone; the machine is then STOPPED.
 */
void
qlean_machine_kill_async (QleanMachine        *self,
                          GCancellable        *cancellable,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  qlean_machine_stop_async (self, STOP_KILL, cancellable, qlean_machine_kill_async,
                            callback, user_data);
}

/**
 * qlean_machine_kill_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_machine_kill_async().
 *
 * Returns: %TRUE once QEMU has exited
 */
gboolean
qlean_machine_kill_finish (QleanMachine  *self,
                           GAsyncResult  *result,
                           GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_machine_kill:
 * @self: a #QleanMachine
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_kill_async().
 *
 * Returns: %TRUE once QEMU has exited
 */
gboolean
qlean_machine_kill (QleanMachine  *self,
                    GCancellable  *cancellable,
                    GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  qlean_sync_call_init (&call);
  qlean_machine_kill_async (self, cancellable, qlean_sync_call_done, &call);

  return qlean_machine_kill_finish (self, qlean_sync_call_wait (&call), error);
}

/* The agent's way: guest-set-time, which also runs `hwclock -w` in the
 * guest (about 0.1 s of the guest's CPU under TCG). */
static void
qlean_machine_fix_clock_by_agent (QleanMachine *self)
{
  g_autoptr(JsonObject) arguments = json_object_new ();
  g_autoptr(QleanQgaClient) qga = qlean_machine_get_qga (self);

  if (qga == NULL)
    return;

  json_object_set_int_member (arguments, "time", g_get_real_time () * 1000);
  qlean_qga_client_execute_async (qga, "guest-set-time", arguments, NULL, NULL, NULL);
}

static void
qlean_machine_clock_set_cb (QleanGuestStream *stream,
                            guint8            type,
                            guint8            fd,
                            GBytes           *payload,
                            const GError     *error,
                            gpointer          user_data)
{
  QleanLink *link = user_data;
  g_autoptr(QleanMachine) self = NULL;

  if (type != QLEAN_GUEST_FRAME_DONE && type != QLEAN_GUEST_FRAME_ERROR && type != 0)
    return;

  qlean_guest_stream_close (stream);
  /* An older qlean-guest (in an image prepared before it learnt
   * SET_CLOCK) says it does not know the operation: use the agent. */
  if (type == QLEAN_GUEST_FRAME_ERROR && (self = qlean_link_get (link)) != NULL)
    qlean_machine_fix_clock_by_agent (self);
}

static gboolean
qlean_machine_fix_clock_in_worker (gpointer user_data)
{
  QleanLink *link = user_data;
  g_autoptr(QleanMachine) self = qlean_link_get (link);
  g_autoptr(QleanGuestChannel) channel = NULL;
  g_autoptr(QleanGuestStream) stream = NULL;
  QleanGuestTlv *tlv;

  if (self == NULL)
    return G_SOURCE_REMOVE;

  channel = qlean_machine_peek_guest_channel (self);
  if (channel == NULL || !qlean_guest_channel_is_ready (channel))
    {
      qlean_machine_fix_clock_by_agent (self);
      return G_SOURCE_REMOVE;
    }

  tlv = qlean_guest_tlv_new ();
  qlean_guest_tlv_add_u32 (tlv, QLEAN_GUEST_TAG_OP, QLEAN_GUEST_FS_SET_CLOCK);
  qlean_guest_tlv_add_string (tlv, QLEAN_GUEST_TAG_PATH, "/");
  qlean_guest_tlv_add_i64 (tlv, QLEAN_GUEST_TAG_MTIME, g_get_real_time () * 1000);
  {
    g_autoptr(GBytes) request = qlean_guest_tlv_free_to_bytes (tlv);

    stream = qlean_guest_channel_open_stream (channel, QLEAN_GUEST_FRAME_FS, request,
                                              qlean_machine_clock_set_cb,
                                              qlean_link_ref (self->link), qlean_link_unref);
    qlean_guest_stream_set_timeout (stream, qlean_machine_get_guest_timeout (self));
  }

  return G_SOURCE_REMOVE;
}

/* The guest's clock stands still while QEMU is stopped (paused, being
 * snapshotted, restored): set it from the host's, through qlean-guest
 * when it answers, else through the agent. Fire and forget: a guest that
 * refuses just keeps its clock. Any thread. */
void
qlean_machine_fix_clock (QleanMachine *self)
{
  qlean_worker_invoke (qlean_machine_fix_clock_in_worker, qlean_link_ref (self->link),
                       qlean_link_unref);
}

/* First boot */

static void
qlean_machine_cloud_init_cb (GObject      *source,
                             GAsyncResult *result,
                             gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  QleanMachine *self = QLEAN_MACHINE (source);
  g_autoptr(QleanExecResult) exec_result = NULL;
  GError *error = NULL;

  self->first_boot = FALSE;
  exec_result = qlean_machine_exec_finish (self, result, &error);
  if (exec_result == NULL)
    {
      g_task_return_error (task, error);
      return;
    }

  /* 0: done; 2: done with recoverable errors (newer cloud-init), which a
   * test machine can live with; anything else is a failed first boot. */
  if (qlean_exec_result_get_exit_status (exec_result) != 0 &&
      qlean_exec_result_get_exit_status (exec_result) != 2)
    {
      g_autofree char *out = qlean_exec_result_get_stdout_text (exec_result);
      g_autofree char *err = qlean_exec_result_get_stderr_text (exec_result);

      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
                               _("cloud-init failed in machine “%s” (status %d): %s%s"),
                               self->name, qlean_exec_result_get_exit_status (exec_result),
                               g_strstrip (out), g_strstrip (err));
      return;
    }

  g_task_return_boolean (task, TRUE);
}

static void
qlean_machine_first_spawn_cb (GObject      *source,
                              GAsyncResult *result,
                              gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  QleanMachine *self = QLEAN_MACHINE (source);
  GError *error = NULL;

  if (!qlean_machine_spawn_finish (self, result, &error))
    {
      self->first_boot = FALSE;
      g_task_return_error (task, error);
      return;
    }

  if (!qlean_image_has_cloud_init (self->image))
    {
      self->first_boot = FALSE;
      g_task_return_boolean (task, TRUE);
      return;
    }

  qlean_machine_exec_async (self, "cloud-init status --wait --long", g_task_get_cancellable (task),
                            qlean_machine_cloud_init_cb, g_object_ref (task));
}

/**
 * qlean_machine_initialize_async:
 * @self: a #QleanMachine that has not run yet
 * @cancellable: (nullable): a #GCancellable
 * @callback: called once the first boot is complete
 * @user_data: data for @callback
 *
 * The machine's first boot, the seed's `init()`. For images with
 * cloud-init it attaches a NoCloud seed (hostname = the machine's name,
 * a fresh instance id, no SSH setup needed) and completes only once
 * `cloud-init status --wait` reports cloud-init done, failing with its
 * report when it did not succeed. Later boots ([method@Machine.spawn])
 * keep what the first one did and skip cloud-init. For images without
 * cloud-init, the same as [method@Machine.spawn].
 */
void
qlean_machine_initialize_async (QleanMachine        *self,
                                GCancellable        *cancellable,
                                GAsyncReadyCallback  callback,
                                gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (QLEAN_IS_MACHINE (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, qlean_machine_initialize_async);
  g_task_set_name (task, "[qlean] first boot");
  self->first_boot = TRUE;
  qlean_machine_spawn_async (self, cancellable, qlean_machine_first_spawn_cb, task);
}

/**
 * qlean_machine_initialize_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE once the first boot is complete
 */
gboolean
qlean_machine_initialize_finish (QleanMachine  *self,
                                 GAsyncResult  *result,
                                 GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_machine_initialize:
 * @self: a #QleanMachine that has not run yet
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_initialize_async().
 *
 * Returns: %TRUE once the first boot is complete
 */
gboolean
qlean_machine_initialize (QleanMachine  *self,
                          GCancellable  *cancellable,
                          GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  qlean_sync_call_init (&call);
  qlean_machine_initialize_async (self, cancellable, qlean_sync_call_done, &call);

  return qlean_machine_initialize_finish (self, qlean_sync_call_wait (&call), error);
}

/* Pausing */

typedef struct
{
  gboolean pause;
} PauseData;

static void
qlean_machine_pause_cb (GObject      *source,
                        GAsyncResult *result,
                        gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  QleanMachine *self = g_task_get_source_object (task);
  gboolean pause = GPOINTER_TO_INT (g_task_get_task_data (task));
  g_autoptr(JsonNode) reply = NULL;
  GError *error = NULL;

  reply = qlean_qmp_client_execute_finish (QLEAN_QMP_CLIENT (source), result, &error);
  if (reply == NULL)
    {
      g_task_return_error (task, error);
      return;
    }

  qlean_machine_set_state (self, pause ? QLEAN_MACHINE_STATE_PAUSED : QLEAN_MACHINE_STATE_RUNNING);
  if (!pause)
    qlean_machine_fix_clock (self);
  g_task_return_boolean (task, TRUE);
}

static gboolean
qlean_machine_pause_in_worker (gpointer user_data)
{
  GTask *task = user_data;
  QleanMachine *self = g_task_get_source_object (task);
  gboolean pause = GPOINTER_TO_INT (g_task_get_task_data (task));
  QleanMachineState state = qlean_machine_get_state (self);
  QleanMachineState wanted = pause ? QLEAN_MACHINE_STATE_RUNNING : QLEAN_MACHINE_STATE_PAUSED;

  if (state != wanted || self->qmp == NULL)
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE,
                               pause ? _("Cannot pause machine “%s”: it is %s, not running")
                                     : _("Cannot resume machine “%s”: it is %s, not paused"),
                               self->name, qlean_machine_state_to_string (state));
      return G_SOURCE_REMOVE;
    }

  qlean_qmp_client_execute_async (self->qmp, pause ? "stop" : "cont", NULL,
                                  g_task_get_cancellable (task),
                                  qlean_machine_pause_cb, g_object_ref (task));
  return G_SOURCE_REMOVE;
}

static void
qlean_machine_pause_resume_async (QleanMachine        *self,
                                  gboolean             pause,
                                  GCancellable        *cancellable,
                                  gpointer             source_tag,
                                  GAsyncReadyCallback  callback,
                                  gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (QLEAN_IS_MACHINE (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, source_tag);
  g_task_set_name (task, pause ? "[qlean] pause machine" : "[qlean] resume machine");
  g_task_set_task_data (task, GINT_TO_POINTER (pause), NULL);
  qlean_worker_invoke (qlean_machine_pause_in_worker, task, g_object_unref);
}

/**
 * qlean_machine_pause_async:
 * @self: a running #QleanMachine
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when paused
 * @user_data: data for @callback
 *
 * Stops the guest's CPUs (QMP `stop`); the machine is then PAUSED and
 * refuses commands until [method@Machine.resume].
 */
void
qlean_machine_pause_async (QleanMachine        *self,
                           GCancellable        *cancellable,
                           GAsyncReadyCallback  callback,
                           gpointer             user_data)
{
  qlean_machine_pause_resume_async (self, TRUE, cancellable, qlean_machine_pause_async,
                                    callback, user_data);
}

/**
 * qlean_machine_pause_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when paused
 */
gboolean
qlean_machine_pause_finish (QleanMachine  *self,
                            GAsyncResult  *result,
                            GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_machine_pause:
 * @self: a running #QleanMachine
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_pause_async().
 *
 * Returns: %TRUE when paused
 */
gboolean
qlean_machine_pause (QleanMachine  *self,
                     GCancellable  *cancellable,
                     GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  qlean_sync_call_init (&call);
  qlean_machine_pause_async (self, cancellable, qlean_sync_call_done, &call);

  return qlean_machine_pause_finish (self, qlean_sync_call_wait (&call), error);
}

/**
 * qlean_machine_resume_async:
 * @self: a paused #QleanMachine
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when running again
 * @user_data: data for @callback
 *
 * Lets the guest's CPUs run again (QMP `cont`) and sets its clock, which
 * stood still while paused.
 */
void
qlean_machine_resume_async (QleanMachine        *self,
                            GCancellable        *cancellable,
                            GAsyncReadyCallback  callback,
                            gpointer             user_data)
{
  qlean_machine_pause_resume_async (self, FALSE, cancellable, qlean_machine_resume_async,
                                    callback, user_data);
}

/**
 * qlean_machine_resume_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when running again
 */
gboolean
qlean_machine_resume_finish (QleanMachine  *self,
                             GAsyncResult  *result,
                             GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_machine_resume:
 * @self: a paused #QleanMachine
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_resume_async().
 *
 * Returns: %TRUE when running again
 */
gboolean
qlean_machine_resume (QleanMachine  *self,
                      GCancellable  *cancellable,
                      GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  qlean_sync_call_init (&call);
  qlean_machine_resume_async (self, cancellable, qlean_sync_call_done, &call);

  return qlean_machine_resume_finish (self, qlean_sync_call_wait (&call), error);
}

/* The channel to qlean-guest */

static void
qlean_machine_guest_ready_cb (GObject      *source,
                              GAsyncResult *result,
                              gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  QleanMachine *self = g_task_get_source_object (task);
  GError *error = NULL;

  if (!qlean_guest_channel_hello_finish (QLEAN_GUEST_CHANNEL (source), result, &error))
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
                               _("qlean-guest does not answer in machine “%s”: %s"),
                               self->name, error->message);
      g_error_free (error);
      return;
    }

  g_task_return_pointer (task, g_object_ref (source), g_object_unref);
}

static gboolean
qlean_machine_get_guest_channel_in_worker (gpointer user_data)
{
  GTask *task = user_data;
  QleanMachine *self = g_task_get_source_object (task);

  if (self->guest == NULL)
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE,
                               _("Machine “%s” is %s, not running"), self->name,
                               qlean_machine_state_to_string (qlean_machine_get_state (self)));
      return G_SOURCE_REMOVE;
    }

  if (qlean_machine_uses_agent_only (self))
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
                               _("machine “%s” reaches its guest through the QEMU guest agent "
                                 "alone (guest-transport “agent”), and this needs qlean-guest "
                                 "(sharing the machine, processes with live output or a "
                                 "terminal, port forwarding); use transport “auto” or "
                                 "“qlean-guest” for it"),
                               self->name);
      return G_SOURCE_REMOVE;
    }

  if (qlean_guest_channel_is_ready (self->guest))
    {
      g_task_return_pointer (task, g_object_ref (self->guest), g_object_unref);
      return G_SOURCE_REMOVE;
    }

  qlean_guest_channel_hello_async (self->guest, 5000, g_task_get_cancellable (task),
                                   qlean_machine_guest_ready_cb, g_object_ref (task));
  return G_SOURCE_REMOVE;
}

void
qlean_machine_get_guest_channel_async (QleanMachine        *self,
                                       GCancellable        *cancellable,
                                       GAsyncReadyCallback  callback,
                                       gpointer             user_data)
{
  GTask *task = g_task_new (self, cancellable, callback, user_data);

  g_task_set_source_tag (task, qlean_machine_get_guest_channel_async);
  qlean_worker_invoke (qlean_machine_get_guest_channel_in_worker, task, g_object_unref);
}

QleanGuestChannel *
qlean_machine_get_guest_channel_finish (QleanMachine  *self,
                                        GAsyncResult  *result,
                                        GError       **error)
{
  return g_task_propagate_pointer (G_TASK (result), error);
}

QleanGuestChannel *
qlean_machine_peek_guest_channel (QleanMachine *self)
{
  QleanGuestChannel *channel;

  g_mutex_lock (&self->lock);
  channel = self->guest ? g_object_ref (self->guest) : NULL;
  g_mutex_unlock (&self->lock);

  return channel;
}

/* Sharing a running machine with other processes */

typedef struct
{
  char   *path;
  GError *error;
  gint    done;
} ShareData;

static void
qlean_machine_share_channel_cb (GObject      *source,
                                GAsyncResult *result,
                                gpointer      user_data)
{
  GTask *task = user_data;
  QleanMachine *self = g_task_get_source_object (task);
  const char *path = g_task_get_task_data (task);
  g_autoptr(QleanGuestChannel) channel = NULL;
  GError *error = NULL;
  QleanGuestRelay *relay;

  channel = qlean_machine_get_guest_channel_finish (self, result, &error);
  if (channel == NULL)
    {
      g_task_return_error (task, error);
      g_object_unref (task);
      return;
    }

  if (self->relay != NULL)
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE,
                               _("Machine “%s” is already shared"), self->name);
      g_object_unref (task);
      return;
    }

  relay = qlean_guest_relay_new (channel, path, &error);
  if (relay == NULL)
    {
      g_prefix_error (&error, _("Cannot share machine “%s” on %s: "), self->name, path);
      g_task_return_error (task, error);
      g_object_unref (task);
      return;
    }

  g_mutex_lock (&self->lock);
  self->relay = relay;
  g_mutex_unlock (&self->lock);
  g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

static gboolean
qlean_machine_share_in_worker (gpointer user_data)
{
  GTask *task = user_data;
  QleanMachine *self = g_task_get_source_object (task);

  qlean_machine_get_guest_channel_async (self, NULL, qlean_machine_share_channel_cb, task);
  return G_SOURCE_REMOVE;
}

/**
 * qlean_machine_share:
 * @self: a running #QleanMachine
 * @socket_path: (type filename): where to listen, a unix socket path that
 *   does not exist yet
 * @error: return location for a #GError
 *
 * Lets other processes use the running machine: each connection to
 * @socket_path may run processes and move files in it, as
 * [ctor@Machine.attach] does, while this process keeps owning QEMU. This
 * is how `qlean start` serves `qlean exec`. The socket is mode 0600 and
 * goes away when the machine stops.
 *
 * Returns: %TRUE when the machine is shared
 */
gboolean
qlean_machine_share (QleanMachine  *self,
                     const char    *socket_path,
                     GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };
  GTask *task;

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), FALSE);
  g_return_val_if_fail (socket_path != NULL, FALSE);

  if (!qlean_machine_check_running (self, "share the machine", error))
    return FALSE;

  qlean_sync_call_init (&call);
  task = g_task_new (self, NULL, qlean_sync_call_done, &call);
  g_task_set_source_tag (task, qlean_machine_share);
  g_task_set_task_data (task, g_strdup (socket_path), g_free);
  qlean_worker_invoke (qlean_machine_share_in_worker, task, NULL);

  return g_task_propagate_boolean (G_TASK (qlean_sync_call_wait (&call)), error);
}

static void
qlean_machine_attach_hello_cb (GObject      *source,
                               GAsyncResult *result,
                               gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  QleanMachine *self = g_task_get_task_data (task);
  GError *error = NULL;

  if (!qlean_guest_channel_hello_finish (QLEAN_GUEST_CHANNEL (source), result, &error))
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
                               _("Machine “%s” does not answer: %s"), self->name, error->message);
      g_error_free (error);
      return;
    }

  /* An attached machine has nothing but the shared qlean-guest channel. */
  g_atomic_int_set (&self->guest_transport, QLEAN_GUEST_TRANSPORT_QLEAN_GUEST);
  qlean_machine_set_state (self, QLEAN_MACHINE_STATE_RUNNING);
  g_task_return_pointer (task, g_object_ref (self), g_object_unref);
}

static gboolean
qlean_machine_attach_in_worker (gpointer user_data)
{
  GTask *task = user_data;
  QleanMachine *self = g_task_get_task_data (task);
  const char *path = g_object_get_data (G_OBJECT (task), "qlean-path");
  g_autoptr(GIOStream) stream = NULL;
  GError *error = NULL;

  stream = connect_unix (path, &error);
  if (stream == NULL)
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
                               _("Cannot reach machine “%s” at %s: %s"), self->name, path,
                               error->message);
      g_error_free (error);
      return G_SOURCE_REMOVE;
    }

  g_mutex_lock (&self->lock);
  self->guest = qlean_guest_channel_new (stream);
  g_mutex_unlock (&self->lock);

  qlean_guest_channel_hello_async (self->guest, 5000, g_task_get_cancellable (task),
                                   qlean_machine_attach_hello_cb, g_object_ref (task));
  return G_SOURCE_REMOVE;
}

static void
qlean_machine_attach_start (QleanMachine        *self,
                            const char          *socket_path,
                            GCancellable        *cancellable,
                            GAsyncReadyCallback  callback,
                            gpointer             user_data)
{
  GTask *task;

  self->attached = TRUE;
  task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (task, qlean_machine_attach_async);
  g_task_set_task_data (task, self, g_object_unref);
  g_object_set_data_full (G_OBJECT (task), "qlean-path", g_strdup (socket_path), g_free);
  qlean_worker_invoke (qlean_machine_attach_in_worker, task, g_object_unref);
}

/**
 * qlean_machine_attach_async:
 * @name: the machine's name, for messages
 * @socket_path: (type filename): a socket made by [method@Machine.share]
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when attached
 * @user_data: data for @callback
 *
 * Reaches a machine that another process owns and shares. The result
 * runs processes ([class@GuestLauncher], [method@Machine.exec]) and moves
 * files like any running machine, but cannot be shut down or killed from
 * here; dropping it only disconnects.
 */
void
qlean_machine_attach_async (const char          *name,
                            const char          *socket_path,
                            GCancellable        *cancellable,
                            GAsyncReadyCallback  callback,
                            gpointer             user_data)
{
  g_return_if_fail (name != NULL);
  g_return_if_fail (socket_path != NULL);

  qlean_machine_attach_start (qlean_machine_new_with_name (name, NULL, NULL), socket_path,
                              cancellable, callback, user_data);
}

/**
 * qlean_machine_attach_finish:
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_machine_attach_async().
 *
 * Returns: (transfer full): the attached machine, or %NULL with @error set
 */
QleanMachine *
qlean_machine_attach_finish (GAsyncResult  *result,
                             GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * qlean_machine_attach:
 * @name: the machine's name, for messages
 * @socket_path: (type filename): a socket made by [method@Machine.share]
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_attach_async().
 *
 * Returns: (transfer full): the attached machine, or %NULL with @error set
 */
QleanMachine *
qlean_machine_attach (const char    *name,
                      const char    *socket_path,
                      GCancellable  *cancellable,
                      GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };
  QleanMachine *self;

  g_return_val_if_fail (name != NULL, NULL);
  g_return_val_if_fail (socket_path != NULL, NULL);

  /* Made before the private context is pushed, so that its signals go to
   * the caller's context. */
  self = qlean_machine_new_with_name (name, NULL, NULL);
  qlean_sync_call_init (&call);
  qlean_machine_attach_start (self, socket_path, cancellable, qlean_sync_call_done, &call);

  return qlean_machine_attach_finish (qlean_sync_call_wait (&call), error);
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
