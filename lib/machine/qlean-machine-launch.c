/* qlean-machine-launch.c: QEMU's command line, the machine's disks and the launch
 *
 * From a machine's definition (its config and image) to a QEMU process
 * with its sockets connected: the spec QEMU's argv is built from, the
 * checks a user can get wrong, the disk overlay and cloud-init seed,
 * and spawn(), which prepares the image and launches. What happens once
 * QEMU runs is in qlean-machine-boot.c.
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <elf.h>
#include <utime.h>
#include <sys/socket.h>
#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>
#include <glib/gi18n-lib.h>

#include "qlean-enums.h"
#include "qlean-error.h"
#include "qlean-machine-firmware-private.h"
#include "qlean-machine-object-private.h"
#include "qlean-machine-ram-file-private.h"
#include "qlean-machine-virtiofs-private.h"
#include "qlean-image-private.h"
#include "qlean-sync-private.h"
#include "qlean-task-private.h"
#include "qlean-worker-private.h"
#include "qlean-errno-private.h"

/* The QEMU command line */

void
resolved_spec_clear (ResolvedSpec *resolved)
{
  g_clear_pointer (&resolved->qemu_binary, g_free);
  g_clear_pointer (&resolved->cmdline, g_free);
  g_clear_pointer (&resolved->net_lease, qlean_network_lease_free);
  g_clear_pointer (&resolved->shares, g_free);
}

/* The kernel and the initramfs: readable, or an error that names them
 * (@is_kernel says which, so that each message is a whole sentence). */
static gboolean
check_readable (gboolean     is_kernel,
                const char  *path,
                GError     **error)
{
  int saved_errno;

  if (path == NULL || g_access (path, R_OK) == 0)
    return TRUE;

  saved_errno = errno;
  if (is_kernel)
    g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG,
                 _("The kernel %s does not exist or cannot be read (%s); fix the machine "
                   "configuration or the image"),
                 path, g_strerror (saved_errno));
  else
    g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG,
                 _("The initrd %s does not exist or cannot be read (%s); fix the machine "
                   "configuration or the image"),
                 path, g_strerror (saved_errno));
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

/* The network's part in each start (qlean-machine-network.c sets it). */
static const QleanMachineNetworkHooks *network_hooks;

void
qlean_machine_set_network_hooks (const QleanMachineNetworkHooks *hooks)
{
  g_atomic_pointer_set (&network_hooks, hooks);
}

/* The hooks of a machine on a network: its QleanNetwork exists, so the
 * network's class has set them. */
static const QleanMachineNetworkHooks *
get_network_hooks (void)
{
  const QleanMachineNetworkHooks *hooks = g_atomic_pointer_get (&network_hooks);

  g_assert (hooks != NULL);
  return hooks;
}

/* The network card: a port on the machine's network, or on a bridge. */
static gboolean
qlean_machine_resolve_network (QleanMachine  *self,
                               ResolvedSpec  *resolved,
                               GError       **error)
{
  QleanMachineConfig *config = self->config;
  QleanQemuSpec *spec = &resolved->spec;

  if (self->network != NULL)
    {
      resolved->net_lease = get_network_hooks ()->plug (self, self->network, self->mac_address,
                                                        error);
      if (resolved->net_lease == NULL)
        return FALSE;
      spec->net_socket = resolved->net_lease->socket_path;
      spec->net_port = resolved->net_lease->port;
      spec->net_mac = resolved->net_lease->mac_address;
    }
  else if (self->spare_card)
    {
      spec->net_hub = TRUE;
      spec->net_mac = QLEAN_NETWORK_SPARE_MAC;
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

  return TRUE;
}

gboolean
qlean_machine_join_network_from_spare (QleanMachine     *self,
                                       QleanMachineRun  *run,
                                       GError          **error)
{
  return get_network_hooks ()->join_from_spare (self, run, self->network, self->mac_address, error);
}

void
qlean_machine_warm_spare_card_async (QleanMachine        *spare,
                                     GCancellable        *cancellable,
                                     GAsyncReadyCallback  callback,
                                     gpointer             user_data)
{
  get_network_hooks ()->warm_spare_card (spare, cancellable, callback, user_data);
}

/* KVM or TCG, as asked and as the host and the guest's architecture
 * allow. */
static gboolean
qlean_machine_resolve_accel (QleanMachine  *self,
                             ResolvedSpec  *resolved,
                             GError       **error)
{
  QleanQemuSpec *spec = &resolved->spec;
  QleanAccel accel = qlean_machine_config_get_accel (self->config);
  QleanArch arch = qlean_image_get_guest_arch (self->image);
  g_autofree char *kvm_reason = NULL;

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

  return TRUE;
}

/* The kernel's command line: the image's, then Qlean's, then the
 * caller's. */
static void
qlean_machine_resolve_cmdline (QleanMachine *self,
                               ResolvedSpec *resolved)
{
  QleanQemuSpec *spec = &resolved->spec;
  const char *extra_cmdline = qlean_machine_config_get_cmdline (self->config);
  const char *image_cmdline = qlean_image_get_cmdline (self->image);
  GString *cmdline;

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
}

gboolean
qlean_machine_resolve_spec (QleanMachine    *self,
                            const char      *run_dir,
                            QleanShareKind   share_kind,
                            ResolvedSpec    *resolved,
                            GError         **error)
{
  QleanMachineConfig *config = self->config;
  QleanQemuSpec *spec = &resolved->spec;
  QleanArch arch = qlean_image_get_guest_arch (self->image);

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
      /* virtiofsd maps the guest's RAM (qlean-machine-virtiofs.c). */
      spec->shares_virtiofs = share_kind == QLEAN_SHARE_KIND_VIRTIOFS;
      spec->mem_memfd = spec->shares_virtiofs;
      /* The minimal image's own kernel has no 9p: such a machine boots
       * the image's share boot (see qlean_image_want_share_boot()). */
      if (!spec->shares_virtiofs && qlean_machine_config_get_kernel (config) == NULL &&
          qlean_machine_config_get_initrd (config) == NULL)
        qlean_image_get_share_boot (self->image, &spec->kernel, &spec->initrd);
    }

  if (!qlean_machine_resolve_network (self, resolved, error))
    return FALSE;

  if (!check_readable (TRUE, spec->kernel, error) ||
      !check_readable (FALSE, spec->initrd, error))
    return FALSE;

  if (!qlean_machine_resolve_firmware (self->name, qlean_machine_config_get_firmware (config), spec,
                                       error))
    return FALSE;

  if (!qlean_machine_resolve_accel (self, resolved, error))
    return FALSE;

  qlean_machine_resolve_cmdline (self, resolved);

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
 *
 * Since: 0.1
 */
char **
qlean_machine_dry_run (QleanMachine  *self,
                       GError       **error)
{
  g_auto(ResolvedSpec) resolved = { { 0 } };
  g_autofree char *base = NULL;
  g_autofree char *run_dir = NULL;
  QleanShareKind share_kind = QLEAN_SHARE_KIND_AUTO;

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (qlean_machine_config_get_n_shares (self->config) > 0)
    share_kind = qlean_machine_pick_share_kind (self, FALSE);
  if (share_kind == QLEAN_SHARE_KIND_9P)
    qlean_image_want_share_boot (self->image);
  if (!qlean_image_prepare (self->image, NULL, error))
    return NULL;

  base = qlean_host_run_base (error);
  if (base == NULL)
    return NULL;
  run_dir = g_strdup_printf ("%s/%s-XXXXXX", base, self->name);

  if (!qlean_machine_resolve_spec (self, run_dir, share_kind, &resolved, error))
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

GSocket *
qlean_machine_listen_unix (const char  *path,
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

GIOStream *
qlean_machine_connect_unix (const char  *path,
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

/* The run directory, and everything QEMU's argv depends on: the spec,
 * the network's lease, the disks. */
static gboolean
qlean_machine_launch_prepare (QleanMachine  *self,
                              ResolvedSpec  *resolved,
                              char         **run_dir_out,
                              char         **disk,
                              char         **seed,
                              GError       **error)
{
  const char *run_dir;

  /* The caller's, for as long as the spec that points at it. */
  *run_dir_out = qlean_host_make_run_dir (self->name, error);
  if (*run_dir_out == NULL)
    return FALSE;
  run_dir = *run_dir_out;

  g_mutex_lock (&self->lock);
  g_mutex_lock (&self->run->lock);
  self->run->run_dir = g_strdup (run_dir);
  g_mutex_unlock (&self->run->lock);
  g_mutex_unlock (&self->lock);

  if (!qlean_machine_resolve_spec (self, run_dir, qlean_machine_run_get_share_kind (self->run),
                                   resolved, error))
    return FALSE;
  if (!qlean_machine_firmware_copy_vars (&resolved->spec, error))
    return FALSE;
  if (self->network != NULL &&
      !get_network_hooks ()->prepare (self, self->run, self->network, error))
    return FALSE;
  if (!qlean_machine_prepare_disks (self, resolved, disk, seed, error))
    return FALSE;

  return TRUE;
}

/* The launcher of QEMU, with what it inherits: the listening sockets,
 * the console's pipe, and a saved state to load. */
static GSubprocessLauncher *
qlean_machine_make_launcher (QleanMachine  *self,
                             const char    *run_dir,
                             const char    *log_path,
                             GSocket      **listeners,
                             GError       **error)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;

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
      return NULL;
    qlean_machine_watch_console_panic (self, console);
    g_mutex_lock (&self->lock);
    g_mutex_lock (&self->run->lock);
    self->run->console = console;
    g_mutex_unlock (&self->run->lock);
    g_mutex_unlock (&self->lock);
    g_subprocess_launcher_take_fd (launcher, console_fd, QLEAN_CONSOLE_FD);
  }
  g_subprocess_launcher_take_fd (launcher, dup (g_socket_get_fd (listeners[0])), QLEAN_QMP_FD);
  g_subprocess_launcher_take_fd (launcher, dup (g_socket_get_fd (listeners[1])), QLEAN_QGA_FD);
  g_subprocess_launcher_take_fd (launcher, dup (g_socket_get_fd (listeners[2])), QLEAN_DATA_FD);
  /* (A state that streams in comes through a socket QEMU opens.) */
  if (self->incoming != NULL && !qlean_machine_incoming_streams (self))
    {
      int state_fd = g_open (self->incoming, O_RDONLY | O_CLOEXEC, 0);

      if (state_fd < 0)
        {
          int saved_errno = errno;

          qlean_set_error_from_errno (error, saved_errno,
                                      _("Cannot read the saved state %s of machine “%s”"), self->incoming,
                                      self->name);
          return NULL;
        }
      g_subprocess_launcher_take_fd (launcher, state_fd, QLEAN_STATE_FD);
    }

  return g_steal_pointer (&launcher);
}

/* QEMU runs: connect to its sockets (it accepts from its backlog), and
 * start talking to QMP, the agent and qlean-guest. */
static gboolean
qlean_machine_connect_clients (QleanMachine  *self,
                               const char    *run_dir,
                               const char    *qmp_path,
                               const char    *qga_path,
                               const char    *data_path,
                               GError       **error)
{
  g_autoptr(GIOStream) qmp_stream = NULL;
  g_autoptr(GIOStream) qga_stream = NULL;
  g_autoptr(GIOStream) data_stream = NULL;

  if ((qmp_stream = qlean_machine_connect_unix (qmp_path, error)) == NULL ||
      (qga_stream = qlean_machine_connect_unix (qga_path, error)) == NULL ||
      (data_stream = qlean_machine_connect_unix (data_path, error)) == NULL)
    return FALSE;

  g_mutex_lock (&self->lock);
  g_mutex_lock (&self->run->lock);
  self->run->qga = qlean_qga_client_new (qga_stream);
  self->run->guest = qlean_guest_channel_new (data_stream);
  g_mutex_unlock (&self->run->lock);
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
        qlean_transcript_attach_qga (transcript, self->run->qga);
        /* A spare's, renamed by the machine that takes it. */
        self->run->transcript = g_steal_pointer (&transcript);
      }
    /* qlean_qmp_client_new_finish() takes this result as it takes
     * qlean_qmp_client_new_async()'s. */
    g_async_initable_init_async (G_ASYNC_INITABLE (qmp), G_PRIORITY_DEFAULT, NULL,
                                 qlean_machine_qmp_ready_cb, g_object_ref (self));
  }
  /* A parked QEMU runs no guest yet: its taker greets. */
  if (!self->parked)
    qlean_machine_greet_guest (self);

  return TRUE;
}

void
qlean_machine_greet_guest (QleanMachine *self)
{
  gboolean guest = qlean_machine_config_get_guest_transport (self->config) !=
                   QLEAN_GUEST_TRANSPORT_AGENT;

  /* A clone of a machine that ran qlean-guest greets it alone: the
   * agent's sync would only compete with it for the guest's CPU, which
   * the clone's first steps are short of under TCG, and the agent's
   * client syncs before its first call anyway. Should qlean-guest not
   * answer soon after the guest runs on, or fail, the agent is greeted
   * after all (qlean_machine_guest_resumed(), the HELLO callback). */
  self->run->agent_lazy = guest && self->incoming_greets_guest;
  self->incoming_greets_guest = FALSE;
  if (!self->run->agent_lazy)
    qlean_machine_try_agent (self);
  /* Say hello to qlean-guest now, so that it is known to answer by the
   * first command; a guest without it just never answers this one. The
   * agent transport never speaks to qlean-guest at all. */
  if (guest)
    qlean_guest_channel_hello_async (self->run->guest, qlean_machine_get_boot_timeout (self), NULL,
                                     qlean_machine_guest_hello_cb, qlean_link_ref (self->link));
}

/* Starts QEMU for this run, in steps: prepare the spec and disks, make
 * the listening sockets, pick a saved boot (fast start), spawn QEMU
 * with what it inherits, then connect its clients. The boot goes on in
 * qlean-machine-boot.c. */
static gboolean
qlean_machine_launch (QleanMachine  *self,
                      GError       **error)
{
  g_auto(ResolvedSpec) resolved = { { 0 } };
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSocket) qmp_listener = NULL;
  g_autoptr(GSocket) qga_listener = NULL;
  g_autoptr(GSocket) data_listener = NULL;
  g_autoptr(GSubprocess) qemu = NULL;
  g_auto(GStrv) argv = NULL;
  g_autofree char *run_dir = NULL;
  g_autofree char *qmp_path = NULL;
  g_autofree char *qga_path = NULL;
  g_autofree char *data_path = NULL;
  g_autofree char *log_path = NULL;
  g_autofree char *disk = NULL;
  g_autofree char *seed = NULL;
  GSocket *listeners[3];

  if (!qlean_machine_launch_prepare (self, &resolved, &run_dir, &disk, &seed, error))
    return FALSE;

  qmp_path = g_build_filename (run_dir, QLEAN_QMP_SOCKET, NULL);
  qga_path = g_build_filename (run_dir, QLEAN_QGA_SOCKET, NULL);
  data_path = g_build_filename (run_dir, QLEAN_DATA_SOCKET, NULL);
  log_path = g_build_filename (run_dir, QLEAN_QEMU_LOG, NULL);

  /* We make the listening sockets and QEMU inherits them: no polling for
   * a socket file to appear, and a connect that cannot race QEMU. */
  if ((qmp_listener = qlean_machine_listen_unix (qmp_path, error)) == NULL ||
      (qga_listener = qlean_machine_listen_unix (qga_path, error)) == NULL ||
      (data_listener = qlean_machine_listen_unix (data_path, error)) == NULL)
    return FALSE;

  resolved.spec.qmp_fd = QLEAN_QMP_FD;
  resolved.spec.qga_fd = QLEAN_QGA_FD;
  resolved.spec.data_fd = QLEAN_DATA_FD;
  resolved.spec.console_fd = QLEAN_CONSOLE_FD;

  /* A machine with virtiofs shares always boots: QEMU cannot save its
   * vhost-user-fs device, nor map a memory template shared. Its
   * virtiofsd processes start first, listening for QEMU. */
  if (resolved.spec.shares_virtiofs &&
      !qlean_machine_virtiofs_start (self, self->run, run_dir, error))
    return FALSE;
  if (self->incoming == NULL && !resolved.spec.shares_virtiofs)
    qlean_machine_pick_boot_state (self, &resolved);

  /* One start loads a saved state; the next boots afresh. QEMU reads it
   * from an inherited descriptor (see qlean_machine_load_incoming()). */
  if (self->incoming != NULL)
    qlean_machine_prepare_incoming (self, &resolved);
  qlean_machine_ram_file_prepare (self, &resolved);
  argv = qlean_qemu_argv_build (&resolved.spec);

  listeners[0] = qmp_listener;
  listeners[1] = qga_listener;
  listeners[2] = data_listener;
  launcher = qlean_machine_make_launcher (self, run_dir, log_path, listeners, error);
  if (launcher == NULL)
    return FALSE;

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

  self->run->qemu = g_object_ref (qemu);
  self->run->qemu_exited = FALSE;
  g_mutex_lock (&self->lock);
  g_mutex_lock (&self->run->lock);
  self->run->pid = qlean_subprocess_get_pid (qemu);
  g_mutex_unlock (&self->run->lock);
  g_mutex_unlock (&self->lock);

  g_subprocess_wait_async (qemu, NULL, qlean_machine_qemu_exited_cb,
                           qlean_link_ref (self->link));

  self->run->boot_timer = qlean_add_timeout (qlean_worker_get_context (),
                                        qlean_machine_get_boot_timeout (self),
                                        qlean_machine_boot_timeout_cb, self);

  return qlean_machine_connect_clients (self, run_dir, qmp_path, qga_path, data_path, error);
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

  if (self->run->spawn_task == NULL)
    return;

  /* A clone's QEMU parked ahead (qlean-machine-parked.c), or a warmed
   * spare of this machine's shape, when its config keeps spares and one
   * is ready (qlean-machine-spares.c). */
  if (qlean_machine_take_parked_run (self) || qlean_machine_take_spare (self))
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

  /* A fresh run; the last one was released as it ended. */
  {
    QleanMachineRun *last;

    g_mutex_lock (&self->lock);
    last = g_steal_pointer (&self->run);
    self->run = qlean_machine_run_new (self->name,
                                       qlean_machine_config_get_guest_transport (self->config));
    g_mutex_unlock (&self->lock);
    qlean_machine_run_unref (last);
  }
  self->run->spawn_task = g_object_ref (task);
  qlean_machine_prepare_shares (self);
  qlean_machine_set_state (self, QLEAN_MACHINE_STATE_STARTING);

  self->run->spawn_cancel = qlean_add_cancel (qlean_worker_get_context (), cancellable,
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
 *
 * Since: 0.1
 */
void
qlean_machine_spawn_async (QleanMachine        *self,
                           GCancellable        *cancellable,
                           GAsyncReadyCallback  callback,
                           gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (QLEAN_IS_MACHINE (self));

  task = qlean_task_new (self, cancellable, callback, user_data, qlean_machine_spawn_async,
                         "[qlean] spawn machine");

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
 *
 * Since: 0.1
 */
gboolean
qlean_machine_spawn_finish (QleanMachine  *self,
                            GAsyncResult  *result,
                            GError       **error)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_spawn_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

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
 *
 * Since: 0.1
 */
gboolean
qlean_machine_spawn (QleanMachine  *self,
                     GCancellable  *cancellable,
                     GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!qlean_sync_call_begin (&call, error))
    return FALSE;
  qlean_machine_spawn_async (self, cancellable, qlean_sync_call_done, &call);

  return qlean_machine_spawn_finish (self, qlean_sync_call_wait (&call), error);
}
