/* qlean-machine-config.c: what a machine is made of
 *
 * The config's properties, their accessors and its copy; the host
 * folders it shares, which are checked as they are added, are in
 * qlean-machine-config-shares.c.
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include "qlean-enums.h"
#include "qlean-machine-config.h"
#include "qlean-machine-config-private.h"
#include "qlean-util-private.h"

/**
 * QleanMachineConfig:
 *
 * The resources and QEMU settings of a [class@Machine]: cores, memory,
 * disk size, acceleration, and overrides for the kernel, initrd, kernel
 * command line and QEMU binary. Every property has a default that works,
 * so `qlean_machine_config_new()` alone is a valid configuration.
 *
 * A machine takes a copy of its configuration when it is created; later
 * changes to the config do not affect it.
 *
 * Since: 0.1
 */

struct _QleanMachineConfig
{
  GObject     parent_instance;

  guint       cores;
  guint       memory_mib;
  guint       disk_gib;
  GPtrArray  *shares;    /* of QleanShare, in the order added */
  gboolean    clear;
  char       *qemu_binary;
  QleanAccel  accel;
  char       *kernel;
  char       *initrd;
  char       *cmdline;
  char      **extra_args;
  gboolean    fast_start;
  gboolean    memory_template;
  gboolean    cloneable;
  guint       spares;
  char       *bridge;
  QleanGuestTransport guest_transport;
  QleanShareKind share_kind;
  QleanFirmware firmware;
};

G_DEFINE_FINAL_TYPE (QleanMachineConfig, qlean_machine_config, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_CORES,
  PROP_MEMORY_MIB,
  PROP_DISK_GIB,
  PROP_CLEAR,
  PROP_QEMU_BINARY,
  PROP_ACCEL,
  PROP_KERNEL,
  PROP_INITRD,
  PROP_CMDLINE,
  PROP_EXTRA_ARGS,
  PROP_FAST_START,
  PROP_MEMORY_TEMPLATE,
  PROP_CLONEABLE,
  PROP_SPARES,
  PROP_BRIDGE,
  PROP_GUEST_TRANSPORT,
  PROP_SHARE_KIND,
  PROP_FIRMWARE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void
qlean_machine_config_finalize (GObject *object)
{
  QleanMachineConfig *self = QLEAN_MACHINE_CONFIG (object);

  g_free (self->qemu_binary);
  g_free (self->kernel);
  g_free (self->initrd);
  g_free (self->cmdline);
  g_strfreev (self->extra_args);
  g_free (self->bridge);
  g_ptr_array_unref (self->shares);

  G_OBJECT_CLASS (qlean_machine_config_parent_class)->finalize (object);
}

static void
qlean_machine_config_get_property (GObject    *object,
                                   guint       prop_id,
                                   GValue     *value,
                                   GParamSpec *pspec)
{
  QleanMachineConfig *self = QLEAN_MACHINE_CONFIG (object);

  switch (prop_id)
    {
    case PROP_CORES: g_value_set_uint (value, self->cores); break;
    case PROP_MEMORY_MIB: g_value_set_uint (value, self->memory_mib); break;
    case PROP_DISK_GIB: g_value_set_uint (value, self->disk_gib); break;
    case PROP_CLEAR: g_value_set_boolean (value, self->clear); break;
    case PROP_QEMU_BINARY: g_value_set_string (value, self->qemu_binary); break;
    case PROP_ACCEL: g_value_set_enum (value, self->accel); break;
    case PROP_KERNEL: g_value_set_string (value, self->kernel); break;
    case PROP_INITRD: g_value_set_string (value, self->initrd); break;
    case PROP_CMDLINE: g_value_set_string (value, self->cmdline); break;
    case PROP_EXTRA_ARGS: g_value_set_boxed (value, self->extra_args); break;
    case PROP_FAST_START: g_value_set_boolean (value, self->fast_start); break;
    case PROP_MEMORY_TEMPLATE: g_value_set_boolean (value, self->memory_template); break;
    case PROP_CLONEABLE: g_value_set_boolean (value, self->cloneable); break;
    case PROP_SPARES: g_value_set_uint (value, self->spares); break;
    case PROP_BRIDGE: g_value_set_string (value, self->bridge); break;
    case PROP_GUEST_TRANSPORT: g_value_set_enum (value, self->guest_transport); break;
    case PROP_SHARE_KIND: g_value_set_enum (value, self->share_kind); break;
    case PROP_FIRMWARE: g_value_set_enum (value, self->firmware); break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
qlean_machine_config_set_property (GObject      *object,
                                   guint         prop_id,
                                   const GValue *value,
                                   GParamSpec   *pspec)
{
  QleanMachineConfig *self = QLEAN_MACHINE_CONFIG (object);

  switch (prop_id)
    {
    case PROP_CORES: qlean_machine_config_set_cores (self, g_value_get_uint (value)); break;
    case PROP_MEMORY_MIB: qlean_machine_config_set_memory_mib (self, g_value_get_uint (value)); break;
    case PROP_DISK_GIB: qlean_machine_config_set_disk_gib (self, g_value_get_uint (value)); break;
    case PROP_CLEAR: qlean_machine_config_set_clear (self, g_value_get_boolean (value)); break;
    case PROP_QEMU_BINARY: qlean_machine_config_set_qemu_binary (self, g_value_get_string (value)); break;
    case PROP_ACCEL: qlean_machine_config_set_accel (self, g_value_get_enum (value)); break;
    case PROP_FIRMWARE: qlean_machine_config_set_firmware (self, g_value_get_enum (value)); break;
    case PROP_KERNEL: qlean_machine_config_set_kernel (self, g_value_get_string (value)); break;
    case PROP_INITRD: qlean_machine_config_set_initrd (self, g_value_get_string (value)); break;
    case PROP_CMDLINE: qlean_machine_config_set_cmdline (self, g_value_get_string (value)); break;
    case PROP_EXTRA_ARGS: qlean_machine_config_set_extra_args (self, g_value_get_boxed (value)); break;
    case PROP_FAST_START: qlean_machine_config_set_fast_start (self, g_value_get_boolean (value)); break;
    case PROP_MEMORY_TEMPLATE:
      qlean_machine_config_set_memory_template (self, g_value_get_boolean (value));
      break;
    case PROP_CLONEABLE:
      qlean_machine_config_set_cloneable (self, g_value_get_boolean (value));
      break;
    case PROP_SPARES:
      qlean_machine_config_set_spares (self, g_value_get_uint (value));
      break;
    case PROP_BRIDGE: qlean_machine_config_set_bridge (self, g_value_get_string (value)); break;
    case PROP_GUEST_TRANSPORT:
      qlean_machine_config_set_guest_transport (self, g_value_get_enum (value));
      break;
    case PROP_SHARE_KIND:
      qlean_machine_config_set_share_kind (self, g_value_get_enum (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

/* Long, as class_init functions are: one documented property after the
 * other (gi-docgen reads their documentation here). */
static void
qlean_machine_config_class_init (QleanMachineConfigClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GParamFlags flags = G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS;

  object_class->finalize = qlean_machine_config_finalize;
  object_class->get_property = qlean_machine_config_get_property;
  object_class->set_property = qlean_machine_config_set_property;

  /**
   * QleanMachineConfig:cores:
   *
   * Number of virtual CPUs.
   *
   * Since: 0.1
   */
  properties[PROP_CORES] =
    g_param_spec_uint ("cores", NULL, NULL, 1, 255, 1, flags);

  /**
   * QleanMachineConfig:memory-mib:
   *
   * Guest memory in MiB; 0 takes the image's default (256 MiB for the
   * minimal image, 1024 MiB for distribution images).
   *
   * Since: 0.1
   */
  properties[PROP_MEMORY_MIB] =
    g_param_spec_uint ("memory-mib", NULL, NULL, 0, 1024 * 1024, 0, flags);

  /**
   * QleanMachineConfig:disk-gib:
   *
   * Size of the machine's disk in GiB; 0 keeps the image's size. The
   * minimal image has no disk unless this is set, in which case it gets
   * an empty scratch disk of this size.
   *
   * Since: 0.1
   */
  properties[PROP_DISK_GIB] =
    g_param_spec_uint ("disk-gib", NULL, NULL, 0, 64 * 1024, 0, flags);

  /**
   * QleanMachineConfig:clear:
   *
   * Whether the machine's run directory (sockets, logs, overlay disks) is
   * removed when the machine stops. Turn it off to inspect a failure.
   *
   * Since: 0.1
   */
  properties[PROP_CLEAR] =
    g_param_spec_boolean ("clear", NULL, NULL, TRUE, flags);

  /**
   * QleanMachineConfig:qemu-binary:
   *
   * The QEMU system emulator to run, a path or a name looked up in PATH;
   * %NULL means `qemu-system-x86_64`.
   *
   * Since: 0.1
   */
  properties[PROP_QEMU_BINARY] =
    g_param_spec_string ("qemu-binary", NULL, NULL, NULL, flags);

  /**
   * QleanMachineConfig:accel:
   *
   * The accelerator: KVM when usable, else TCG, by default.
   *
   * Since: 0.1
   */
  properties[PROP_ACCEL] =
    g_param_spec_enum ("accel", NULL, NULL, QLEAN_TYPE_ACCEL, QLEAN_ACCEL_AUTO, flags);

  /**
   * QleanMachineConfig:kernel:
   *
   * A kernel to boot instead of the image's.
   *
   * Since: 0.1
   */
  properties[PROP_KERNEL] =
    g_param_spec_string ("kernel", NULL, NULL, NULL, flags);

  /**
   * QleanMachineConfig:initrd:
   *
   * An initrd to boot instead of the image's.
   *
   * Since: 0.1
   */
  properties[PROP_INITRD] =
    g_param_spec_string ("initrd", NULL, NULL, NULL, flags);

  /**
   * QleanMachineConfig:cmdline:
   *
   * Extra kernel command line parameters, appended to the image's.
   *
   * Since: 0.1
   */
  properties[PROP_CMDLINE] =
    g_param_spec_string ("cmdline", NULL, NULL, NULL, flags);

  /**
   * QleanMachineConfig:extra-args:
   *
   * Extra arguments appended to QEMU's command line.
   *
   * Since: 0.1
   */
  properties[PROP_EXTRA_ARGS] =
    g_param_spec_boxed ("extra-args", NULL, NULL, G_TYPE_STRV, flags);

  /**
   * QleanMachineConfig:fast-start:
   *
   * Whether a machine of the minimal image starts from a saved boot (a
   * QEMU state file cached under `$XDG_CACHE_HOME/qlean/boot-states/`,
   * made by the first machine with the same command line) instead of
   * booting its kernel: about 0.3 s instead of 1.7 s under TCG. The
   * guest then gets its own hostname, clock, random state and, on a
   * network, MAC and address. Machines with a disk or extra QEMU
   * arguments, and machines whose folders are shared over virtiofs
   * (see [property@MachineConfig:share-kind]), always boot.
   *
   * Since: 0.1
   */
  properties[PROP_FAST_START] =
    g_param_spec_boolean ("fast-start", NULL, NULL, TRUE, flags);

  /**
   * QleanMachineConfig:memory-template:
   *
   * Whether a fast start (see [property@MachineConfig:fast-start]) maps
   * the saved boot's guest memory from a template file, copy-on-write,
   * instead of reading it into the machine's own memory: machines of
   * the same saved boot then share the pages none of them wrote, and a
   * start reads only the device state (KiBs instead of about 80 MB).
   * The template lives beside the saved boot and is never written
   * after it is made. Where a host cannot map it, machines start the
   * old way and the reason is logged (domain `qlean`).
   *
   * Since: 0.1
   */
  properties[PROP_MEMORY_TEMPLATE] =
    g_param_spec_boolean ("memory-template", NULL, NULL, TRUE, flags);

  /**
   * QleanMachineConfig:cloneable:
   *
   * Whether a machine keeps its guest memory in a file of its own on a
   * memory file system (tmpfs), so that a clone of it while it runs
   * ([method@Machine.clone]) copies that file, sparse and in the
   * kernel, and takes only the machine's device state (a few hundred
   * KiB) through QEMU, instead of streaming all of its memory: the
   * clone runs about twice as soon, and the machine stops for a few
   * tens of milliseconds. A machine on no network keeps a QEMU started
   * ahead for its next clone (an idle process): from its start, or, for
   * a clone, once it is cloned itself; then again a little after each
   * clone, so that the start of that QEMU does not slow the clone.
   * The price is memory: such a machine does not share the pages of its
   * memory template with other machines (its file holds all that its
   * guest touched, about 80 MiB for the minimal image against a Pss of
   * 45-48 MiB), its start copies the template first, and each clone
   * holds a copy of its own. Its clones are cloneable too.
   *
   * The file lives in `$QLEAN_RAM_DIR` when set, else in the run
   * directory when that is on tmpfs, else in `/dev/shm/qlean-UID`; it
   * goes when the machine stops. Where there is no such file system, or
   * the machine cannot have one (another architecture than x86-64, or
   * virtiofs shares), the machine starts as if this were off, and the
   * reason is logged (domain `qlean`).
   *
   * Since: 0.1
   */
  properties[PROP_CLONEABLE] =
    g_param_spec_boolean ("cloneable", NULL, NULL, FALSE, flags);

  /**
   * QleanMachineConfig:spares:
   *
   * How many warmed spare machines of this shape (this image and this
   * configuration) the process keeps ready, so that a start takes one
   * instead of starting QEMU: a spare is a machine started from the
   * memory template ahead of time, whose guest already ran a process;
   * a start that takes it only gives it the new machine's name,
   * machine-id, random seed and clock (tens of milliseconds under TCG,
   * against about half a second for a start from the template). New
   * spares start behind the starts that took them, half a second after
   * the last start of the shape (so as not to compete with the other
   * starts of a burst, nor with the first commands in the new machine):
   * starts closer together than that find no spare and start from the
   * template.
   *
   * Spares cost ahead of time what a start costs (about 0.3 s of QEMU's
   * CPU under TCG) and, while they wait, a template machine's memory
   * (its private pages, 35-40 MiB, plus its share of the template).
   * One not taken within a minute stops; [func@Machine.stop_spares]
   * stops them all, [func@Machine.prepare_spares] starts them ahead.
   *
   * Only machines that fast-start from a memory template use spares:
   * the minimal image on x86-64, without shares, disk, bridge or extra
   * arguments. Others start as before. 0 (the default) keeps none.
   *
   * Machines on a network (a [class@Pool]'s) take spares of their own
   * shape, which have their network card, on a hub of QEMU's own; the
   * machine that takes one gives it its MAC and address and joins the
   * hub to its network's switch, so that such spares serve any network.
   * [method@Pool.prepare_spares] starts them ahead.
   *
   * Since: 0.1
   */
  properties[PROP_SPARES] =
    g_param_spec_uint ("spares", NULL, NULL, 0, QLEAN_MACHINE_CONFIG_MAX_SPARES, 0, flags);

  /**
   * QleanMachineConfig:bridge:
   *
   * A host bridge to plug the machine's network card into, for users
   * who have root and a bridge of their own (libvirt's setup: a `qlbr0`
   * bridge with dnsmasq serving DHCP, and `allow qlbr0` in
   * `/etc/qemu/bridge.conf`). QEMU attaches the card with `-netdev
   * bridge` through the setuid `qemu-bridge-helper`, the guest asks the
   * bridge for an address by DHCP, and [method@Machine.get_ip] waits
   * for it. %NULL (the default) means no bridge: use a
   * [class@Network] for rootless networking instead; a machine cannot
   * have both. Machines on a bridge always boot (no fast start).
   *
   * Since: 0.1
   */
  properties[PROP_BRIDGE] =
    g_param_spec_string ("bridge", NULL, NULL, NULL, flags);

  /**
   * QleanMachineConfig:guest-transport:
   *
   * Which channel runs processes and moves files in the guest:
   * qlean-guest (the fast path) when it answers by the time the machine
   * is ready, else the stock QEMU guest agent, by default. `agent` never
   * uses qlean-guest, so a guest without it works the same; `qlean-guest`
   * makes starting fail when qlean-guest does not answer. The machine
   * decides once per run and says which in
   * [property@Machine:guest-transport]; a channel that dies later fails
   * the calls instead of switching to the other.
   *
   * With the agent alone, exec, processes ([class@GuestLauncher]: live
   * output read from guest files while they run, environment, directory,
   * user, fixed stdin, timeouts, signals) and every file call and
   * transfer work, each a few guest agent commands (tens of milliseconds
   * under TCG), with file times in whole seconds and paths that must be
   * UTF-8 (the agent speaks JSON); such a machine is shared
   * ([method@Machine.share], `qlean start`) as its agent. A process's
   * stdin pipe or terminal and port forwarding need qlean-guest: they
   * fail with an error that says so.
   *
   * Since: 0.1
   */
  properties[PROP_GUEST_TRANSPORT] =
    g_param_spec_enum ("guest-transport", NULL, NULL, QLEAN_TYPE_GUEST_TRANSPORT,
                       QLEAN_GUEST_TRANSPORT_AUTO, flags);

  /**
   * QleanMachineConfig:share-kind:
   *
   * How the machine's host folders (see
   * [method@MachineConfig.add_share_full]) reach the guest: `auto` (the
   * default) uses virtiofs where QEMU's `virtiofsd` is installed and can
   * run (as root, or in a user namespace for a normal user) and no share
   * asks for %QLEAN_SHARE_MAPPED_XATTR, else virtio-9p, and logs why
   * (domain `qlean`). virtiofs reads faster; its machines cannot be
   * saved at all (snapshots, clones, exports) and always boot (no fast
   * start), because QEMU cannot migrate its device.
   *
   * Since: 0.1
   */
  properties[PROP_SHARE_KIND] =
    g_param_spec_enum ("share-kind", NULL, NULL, QLEAN_TYPE_SHARE_KIND,
                       QLEAN_SHARE_KIND_AUTO, flags);

  /**
   * QleanMachineConfig:firmware:
   *
   * How the machine boots: `auto` (the default) boots a kernel directly
   * when there is one, and a disk without one through the BIOS (x86-64)
   * or UEFI (aarch64, whose `virt` machine has no BIOS); `uefi` boots
   * through UEFI even with a kernel. See #QleanFirmware. A UEFI machine
   * gets a fresh copy of the firmware's variables at each start, in its
   * run directory, gone when the run ends; snapshots carry them.
   *
   * Since: 0.1
   */
  properties[PROP_FIRMWARE] =
    g_param_spec_enum ("firmware", NULL, NULL, QLEAN_TYPE_FIRMWARE, QLEAN_FIRMWARE_AUTO, flags);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
qlean_machine_config_init (QleanMachineConfig *self)
{
  self->cores = 1;
  self->shares = qlean_share_list_new ();
  self->clear = TRUE;
  self->fast_start = TRUE;
  self->memory_template = TRUE;
  self->accel = QLEAN_ACCEL_AUTO;
}

/**
 * qlean_machine_config_new:
 *
 * Creates a configuration with the defaults: 1 core, the image's memory
 * size, the image's disk size, KVM when usable.
 *
 * Returns: (transfer full): a new #QleanMachineConfig
 *
 * Since: 0.1
 */
QleanMachineConfig *
qlean_machine_config_new (void)
{
  return g_object_new (QLEAN_TYPE_MACHINE_CONFIG, NULL);
}

/**
 * qlean_machine_config_copy:
 * @self: a #QleanMachineConfig
 *
 * Returns: (transfer full): a copy of @self
 *
 * Since: 0.1
 */
QleanMachineConfig *
qlean_machine_config_copy (QleanMachineConfig *self)
{
  QleanMachineConfig *copy;

  g_return_val_if_fail (QLEAN_IS_MACHINE_CONFIG (self), NULL);

  copy = g_object_new (QLEAN_TYPE_MACHINE_CONFIG,
                       "cores", self->cores,
                       "memory-mib", self->memory_mib,
                       "disk-gib", self->disk_gib,
                       "clear", self->clear,
                       "qemu-binary", self->qemu_binary,
                       "accel", self->accel,
                       "kernel", self->kernel,
                       "initrd", self->initrd,
                       "cmdline", self->cmdline,
                       "extra-args", self->extra_args,
                       "fast-start", self->fast_start,
                       "memory-template", self->memory_template,
                       "cloneable", self->cloneable,
                       "spares", self->spares,
                       "bridge", self->bridge,
                       "guest-transport", self->guest_transport,
                       "share-kind", self->share_kind,
                       "firmware", self->firmware,
                       NULL);
  /* Checked when added: copied as they are. */
  qlean_share_list_append_copies (copy->shares, self->shares);

  return copy;
}

#define DEFINE_UINT_ACCESSORS(name, PROP)                                      \
  guint                                                                        \
  qlean_machine_config_get_##name (QleanMachineConfig *self)                   \
  {                                                                            \
    g_return_val_if_fail (QLEAN_IS_MACHINE_CONFIG (self), 0);                  \
    return self->name;                                                         \
  }                                                                            \
  void                                                                         \
  qlean_machine_config_set_##name (QleanMachineConfig *self, guint value)      \
  {                                                                            \
    g_return_if_fail (QLEAN_IS_MACHINE_CONFIG (self));                         \
    if (self->name == value)                                                   \
      return;                                                                  \
    self->name = value;                                                        \
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP]);              \
  }

#define DEFINE_STRING_ACCESSORS(name, PROP)                                    \
  const char *                                                                 \
  qlean_machine_config_get_##name (QleanMachineConfig *self)                   \
  {                                                                            \
    g_return_val_if_fail (QLEAN_IS_MACHINE_CONFIG (self), NULL);               \
    return self->name;                                                         \
  }                                                                            \
  void                                                                         \
  qlean_machine_config_set_##name (QleanMachineConfig *self, const char *value) \
  {                                                                            \
    g_return_if_fail (QLEAN_IS_MACHINE_CONFIG (self));                         \
    if (qlean_set_str (&self->name, value))                                      \
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP]);            \
  }

/**
 * qlean_machine_config_get_cores:
 * @self: a #QleanMachineConfig
 *
 * Returns: the number of virtual CPUs
 *
 * Since: 0.1
 */
/**
 * qlean_machine_config_set_cores:
 * @self: a #QleanMachineConfig
 * @cores: the number of virtual CPUs
 *
 * Sets [property@MachineConfig:cores].
 *
 * Since: 0.1
 */
DEFINE_UINT_ACCESSORS (cores, PROP_CORES)

/**
 * qlean_machine_config_get_memory_mib:
 * @self: a #QleanMachineConfig
 *
 * Returns: the guest memory in MiB, 0 for the image's default
 *
 * Since: 0.1
 */
/**
 * qlean_machine_config_set_memory_mib:
 * @self: a #QleanMachineConfig
 * @memory_mib: guest memory in MiB, 0 for the image's default
 *
 * Sets [property@MachineConfig:memory-mib].
 *
 * Since: 0.1
 */
DEFINE_UINT_ACCESSORS (memory_mib, PROP_MEMORY_MIB)

/**
 * qlean_machine_config_get_disk_gib:
 * @self: a #QleanMachineConfig
 *
 * Returns: the disk size in GiB, 0 for the image's size
 *
 * Since: 0.1
 */
/**
 * qlean_machine_config_set_disk_gib:
 * @self: a #QleanMachineConfig
 * @disk_gib: the disk size in GiB, 0 for the image's size
 *
 * Sets [property@MachineConfig:disk-gib].
 *
 * Since: 0.1
 */
DEFINE_UINT_ACCESSORS (disk_gib, PROP_DISK_GIB)

/**
 * qlean_machine_config_get_spares:
 * @self: a #QleanMachineConfig
 *
 * Returns: how many warmed spare machines of this shape to keep ready
 *
 * Since: 0.1
 */
/**
 * qlean_machine_config_set_spares:
 * @self: a #QleanMachineConfig
 * @spares: how many warmed spares to keep, 0 for none
 *
 * Sets [property@MachineConfig:spares].
 *
 * Since: 0.1
 */
DEFINE_UINT_ACCESSORS (spares, PROP_SPARES)

/**
 * qlean_machine_config_get_qemu_binary:
 * @self: a #QleanMachineConfig
 *
 * Returns: (nullable): the QEMU binary, %NULL for the default
 *
 * Since: 0.1
 */
/**
 * qlean_machine_config_set_qemu_binary:
 * @self: a #QleanMachineConfig
 * @qemu_binary: (nullable): a path or a name in PATH
 *
 * Sets [property@MachineConfig:qemu-binary].
 *
 * Since: 0.1
 */
DEFINE_STRING_ACCESSORS (qemu_binary, PROP_QEMU_BINARY)

/**
 * qlean_machine_config_get_kernel:
 * @self: a #QleanMachineConfig
 *
 * Returns: (nullable): the kernel override
 *
 * Since: 0.1
 */
/**
 * qlean_machine_config_set_kernel:
 * @self: a #QleanMachineConfig
 * @kernel: (nullable): a kernel image path
 *
 * Sets [property@MachineConfig:kernel].
 *
 * Since: 0.1
 */
DEFINE_STRING_ACCESSORS (kernel, PROP_KERNEL)

/**
 * qlean_machine_config_get_initrd:
 * @self: a #QleanMachineConfig
 *
 * Returns: (nullable): the initrd override
 *
 * Since: 0.1
 */
/**
 * qlean_machine_config_set_initrd:
 * @self: a #QleanMachineConfig
 * @initrd: (nullable): an initrd path
 *
 * Sets [property@MachineConfig:initrd].
 *
 * Since: 0.1
 */
DEFINE_STRING_ACCESSORS (initrd, PROP_INITRD)

/**
 * qlean_machine_config_get_cmdline:
 * @self: a #QleanMachineConfig
 *
 * Returns: (nullable): the extra kernel parameters
 *
 * Since: 0.1
 */
/**
 * qlean_machine_config_set_cmdline:
 * @self: a #QleanMachineConfig
 * @cmdline: (nullable): extra kernel parameters
 *
 * Sets [property@MachineConfig:cmdline].
 *
 * Since: 0.1
 */
DEFINE_STRING_ACCESSORS (cmdline, PROP_CMDLINE)

/**
 * qlean_machine_config_get_bridge:
 * @self: a #QleanMachineConfig
 *
 * Returns: (nullable): the host bridge the network card plugs into
 *
 * Since: 0.1
 */
/**
 * qlean_machine_config_set_bridge:
 * @self: a #QleanMachineConfig
 * @bridge: (nullable): a host bridge name such as `qlbr0`, or %NULL
 *
 * Sets [property@MachineConfig:bridge].
 *
 * Since: 0.1
 */
DEFINE_STRING_ACCESSORS (bridge, PROP_BRIDGE)

/**
 * qlean_machine_config_get_clear:
 * @self: a #QleanMachineConfig
 *
 * Returns: whether the run directory is removed when the machine stops
 *
 * Since: 0.1
 */
gboolean
qlean_machine_config_get_clear (QleanMachineConfig *self)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE_CONFIG (self), TRUE);

  return self->clear;
}

/**
 * qlean_machine_config_set_clear:
 * @self: a #QleanMachineConfig
 * @clear: whether to remove the run directory when the machine stops
 *
 * Sets [property@MachineConfig:clear].
 *
 * Since: 0.1
 */
void
qlean_machine_config_set_clear (QleanMachineConfig *self,
                                gboolean            clear)
{
  g_return_if_fail (QLEAN_IS_MACHINE_CONFIG (self));

  clear = !!clear;
  if (self->clear == clear)
    return;

  self->clear = clear;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CLEAR]);
}

/**
 * qlean_machine_config_get_accel:
 * @self: a #QleanMachineConfig
 *
 * Returns: the accelerator
 *
 * Since: 0.1
 */
QleanAccel
qlean_machine_config_get_accel (QleanMachineConfig *self)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE_CONFIG (self), QLEAN_ACCEL_AUTO);

  return self->accel;
}

/**
 * qlean_machine_config_set_accel:
 * @self: a #QleanMachineConfig
 * @accel: the accelerator
 *
 * Sets [property@MachineConfig:accel].
 *
 * Since: 0.1
 */
void
qlean_machine_config_set_accel (QleanMachineConfig *self,
                                QleanAccel          accel)
{
  g_return_if_fail (QLEAN_IS_MACHINE_CONFIG (self));

  if (self->accel == accel)
    return;

  self->accel = accel;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ACCEL]);
}

/**
 * qlean_machine_config_get_firmware:
 * @self: a #QleanMachineConfig
 *
 * Returns: how the machine boots
 *
 * Since: 0.1
 */
QleanFirmware
qlean_machine_config_get_firmware (QleanMachineConfig *self)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE_CONFIG (self), QLEAN_FIRMWARE_AUTO);

  return self->firmware;
}

/**
 * qlean_machine_config_set_firmware:
 * @self: a #QleanMachineConfig
 * @firmware: how the machine boots
 *
 * Sets [property@MachineConfig:firmware].
 *
 * Since: 0.1
 */
void
qlean_machine_config_set_firmware (QleanMachineConfig *self,
                                   QleanFirmware       firmware)
{
  g_return_if_fail (QLEAN_IS_MACHINE_CONFIG (self));

  if (self->firmware == firmware)
    return;

  self->firmware = firmware;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_FIRMWARE]);
}

/**
 * qlean_machine_config_get_extra_args:
 * @self: a #QleanMachineConfig
 *
 * Returns: (transfer none) (nullable) (array zero-terminated=1): extra
 *   QEMU arguments
 *
 * Since: 0.1
 */
const char * const *
qlean_machine_config_get_extra_args (QleanMachineConfig *self)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE_CONFIG (self), NULL);

  return (const char * const *) self->extra_args;
}

/**
 * qlean_machine_config_set_extra_args:
 * @self: a #QleanMachineConfig
 * @extra_args: (nullable) (array zero-terminated=1): extra QEMU arguments
 *
 * Sets [property@MachineConfig:extra-args].
 *
 * Since: 0.1
 */
void
qlean_machine_config_set_extra_args (QleanMachineConfig *self,
                                     const char * const *extra_args)
{
  g_return_if_fail (QLEAN_IS_MACHINE_CONFIG (self));

  g_strfreev (self->extra_args);
  self->extra_args = g_strdupv ((char **) extra_args);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_EXTRA_ARGS]);
}

/**
 * qlean_machine_config_get_fast_start:
 * @self: a #QleanMachineConfig
 *
 * Returns: whether minimal-image machines start from a saved boot
 *
 * Since: 0.1
 */
gboolean
qlean_machine_config_get_fast_start (QleanMachineConfig *self)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE_CONFIG (self), TRUE);

  return self->fast_start;
}

/**
 * qlean_machine_config_set_fast_start:
 * @self: a #QleanMachineConfig
 * @fast_start: whether to start from a saved boot when possible
 *
 * Sets [property@MachineConfig:fast-start].
 *
 * Since: 0.1
 */
void
qlean_machine_config_set_fast_start (QleanMachineConfig *self,
                                     gboolean            fast_start)
{
  g_return_if_fail (QLEAN_IS_MACHINE_CONFIG (self));

  fast_start = !!fast_start;
  if (self->fast_start == fast_start)
    return;

  self->fast_start = fast_start;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_FAST_START]);
}

/**
 * qlean_machine_config_get_memory_template:
 * @self: a #QleanMachineConfig
 *
 * Returns: whether fast starts map their guest memory from a shared,
 *   copy-on-write template
 *
 * Since: 0.1
 */
gboolean
qlean_machine_config_get_memory_template (QleanMachineConfig *self)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE_CONFIG (self), TRUE);

  return self->memory_template;
}

/**
 * qlean_machine_config_set_memory_template:
 * @self: a #QleanMachineConfig
 * @memory_template: whether fast starts share a memory template
 *
 * Sets [property@MachineConfig:memory-template].
 *
 * Since: 0.1
 */
void
qlean_machine_config_set_memory_template (QleanMachineConfig *self,
                                          gboolean            memory_template)
{
  g_return_if_fail (QLEAN_IS_MACHINE_CONFIG (self));

  memory_template = !!memory_template;
  if (self->memory_template == memory_template)
    return;

  self->memory_template = memory_template;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_MEMORY_TEMPLATE]);
}

/**
 * qlean_machine_config_get_cloneable:
 * @self: a #QleanMachineConfig
 *
 * Returns: whether machines keep their guest memory in a file of their
 *   own, for fast clones (see [property@MachineConfig:cloneable])
 *
 * Since: 0.1
 */
gboolean
qlean_machine_config_get_cloneable (QleanMachineConfig *self)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE_CONFIG (self), FALSE);

  return self->cloneable;
}

/**
 * qlean_machine_config_set_cloneable:
 * @self: a #QleanMachineConfig
 * @cloneable: whether machines keep their memory in a file for fast clones
 *
 * Sets [property@MachineConfig:cloneable].
 *
 * Since: 0.1
 */
void
qlean_machine_config_set_cloneable (QleanMachineConfig *self,
                                    gboolean            cloneable)
{
  g_return_if_fail (QLEAN_IS_MACHINE_CONFIG (self));

  cloneable = !!cloneable;
  if (self->cloneable == cloneable)
    return;

  self->cloneable = cloneable;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CLONEABLE]);
}

/**
 * qlean_machine_config_get_guest_transport:
 * @self: a #QleanMachineConfig
 *
 * Returns: the transport a machine of this configuration uses to reach
 *   its guest
 *
 * Since: 0.1
 */
QleanGuestTransport
qlean_machine_config_get_guest_transport (QleanMachineConfig *self)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE_CONFIG (self), QLEAN_GUEST_TRANSPORT_AUTO);

  return self->guest_transport;
}

/**
 * qlean_machine_config_set_guest_transport:
 * @self: a #QleanMachineConfig
 * @guest_transport: the transport to use
 *
 * Sets [property@MachineConfig:guest-transport].
 *
 * Since: 0.1
 */
void
qlean_machine_config_set_guest_transport (QleanMachineConfig  *self,
                                          QleanGuestTransport  guest_transport)
{
  g_return_if_fail (QLEAN_IS_MACHINE_CONFIG (self));
  g_return_if_fail (guest_transport <= QLEAN_GUEST_TRANSPORT_QLEAN_GUEST);

  if (self->guest_transport == guest_transport)
    return;

  self->guest_transport = guest_transport;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_GUEST_TRANSPORT]);
}

/**
 * qlean_machine_config_get_share_kind:
 * @self: a #QleanMachineConfig
 *
 * Gets [property@MachineConfig:share-kind].
 *
 * Returns: how host folders are shared with the guest
 *
 * Since: 0.1
 */
QleanShareKind
qlean_machine_config_get_share_kind (QleanMachineConfig *self)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE_CONFIG (self), QLEAN_SHARE_KIND_AUTO);

  return self->share_kind;
}

/**
 * qlean_machine_config_set_share_kind:
 * @self: a #QleanMachineConfig
 * @share_kind: how host folders are shared with the guest
 *
 * Sets [property@MachineConfig:share-kind].
 *
 * Since: 0.1
 */
void
qlean_machine_config_set_share_kind (QleanMachineConfig *self,
                                     QleanShareKind      share_kind)
{
  g_return_if_fail (QLEAN_IS_MACHINE_CONFIG (self));
  g_return_if_fail (share_kind <= QLEAN_SHARE_KIND_VIRTIOFS);

  if (self->share_kind == share_kind)
    return;

  self->share_kind = share_kind;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_SHARE_KIND]);
}

GPtrArray *
qlean_machine_config_peek_shares (QleanMachineConfig *self)
{
  return self->shares;
}
