/* qlean-image-guestfs.c: the changes made to a cloud image's copy
 *
 * SPDX-License-Identifier: MIT
 *
 * Inside libguestfs's appliance, on the calling (worker) thread, which
 * alone ever touches the handle: the image is inspected and mounted,
 * qlean-guest (and an agent, when the image has none) is put in and
 * made to start, with the image's init system, as soon as its
 * virtio-serial port shows up; cloud-init is told to look only for a
 * NoCloud seed; and the kernel and initrd are copied out, with the
 * kernel command line that boots them. Apart from qlean-image-prepare.c,
 * which decides when to prepare a copy and keeps it in the cache, since
 * all of this is one conversation with the appliance.
 */

#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <glib/gstdio.h>
#include <glib/gi18n-lib.h>
#include <guestfs.h>

#include "qlean-arch-private.h"
#include "qlean-error.h"
#include "qlean-host-private.h"
#include "qlean-image-guestfs-private.h"
#include "qlean-resources.h"
#include "qlean-util-private.h"
#include "qlean-errno-private.h"

#define AGENT_DEVICE_UNIT "dev-virtio\\x2dports-org.qemu.guest_agent.0.device"
#define DATA_DEVICE_UNIT "dev-virtio\\x2dports-org.qlean.data.0.device"

/* Kernel parameters that shorten a boot without KVM (see MEASUREMENTS.md
 * and qlean-image-minimal.c); the same for every distribution. */
static const char boot_tuning[] =
  "quiet mitigations=off random.trust_cpu=on cryptomgr.notests";
/* And those that name x86 hardware (the TSC, the i8042 keyboard
 * controller, 8250 UARTs), which other architectures' kernels do not
 * know and would pass on to init as its arguments. */
static const char boot_tuning_x86[] =
  " tsc=reliable no_timer_check i8042.noaux i8042.nokbd i8042.nopnp 8250.nr_uarts=1";

/* The header of an arm64 (and RISC-V) kernel packed as an EFI zboot
 * image, as Fedora ships them: a PE file ("MZ") whose payload is the
 * compressed kernel, unpacked by its own EFI stub. */
#define ZBOOT_MAGIC_OFFSET 4
#define ZBOOT_MAGIC "zimg"
/* The arm64 boot protocol's Image header: its magic at offset 56. */
#define ARM64_MAGIC_OFFSET 56
#define ARM64_MAGIC "ARM\x64"

/* libguestfs */

/* Fails with @format (a whole sentence saying what libguestfs could not
 * do) and what libguestfs says went wrong. */
static gboolean
guestfs_failed (guestfs_h   *g,
                GError     **error,
                const char  *format,
                ...) G_GNUC_PRINTF (3, 4);

static gboolean
guestfs_failed (guestfs_h   *g,
                GError     **error,
                const char  *format,
                ...)
{
  const char *message = guestfs_last_error (g);
  g_autofree char *what = NULL;
  va_list args;

  va_start (args, format);
  what = g_strdup_vprintf (format, args);
  va_end (args);

  g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_PREPARE_FAILED,
               "%s: %s", what, message ? message : _("unknown error"));
  return FALSE;
}

static gboolean
guest_exists (guestfs_h  *g,
              const char *path)
{
  return guestfs_exists (g, path) == 1;
}

static gboolean
guest_write (guestfs_h   *g,
             const char  *path,
             const char  *content,
             gsize        len,
             int          mode,
             GError     **error)
{
  g_autofree char *dir = g_path_get_dirname (path);
  if (guestfs_mkdir_p (g, dir) == -1 ||
      guestfs_write (g, path, content, len) == -1 ||
      guestfs_chmod (g, mode, path) == -1)
    return guestfs_failed (g, error, _("libguestfs could not write %s in the image"), path);

  return TRUE;
}

static gboolean
guest_write_resource (guestfs_h   *g,
                      const char  *resource,
                      const char  *path,
                      int          mode,
                      GError     **error)
{
  g_autofree char *full = g_strconcat (QLEAN_PREPARE_RESOURCE_DIR, resource, NULL);
  g_autoptr(GBytes) bytes = g_resource_lookup_data (qlean_resources (), full, 0, error);

  if (bytes == NULL)
    return FALSE;

  return guest_write (g, path, g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes), mode, error);
}

static gboolean
guest_upload (guestfs_h   *g,
              const char  *host_path,
              const char  *path,
              int          mode,
              GError     **error)
{
  g_autofree char *dir = g_path_get_dirname (path);
  if (guestfs_mkdir_p (g, dir) == -1 ||
      guestfs_upload (g, host_path, path) == -1 ||
      guestfs_chmod (g, mode, path) == -1)
    return guestfs_failed (g, error, _("libguestfs could not copy %s to %s in the image"),
                           host_path, path);

  return TRUE;
}

static gboolean
guest_symlink (guestfs_h   *g,
               const char  *target,
               const char  *link,
               GError     **error)
{
  g_autofree char *dir = g_path_get_dirname (link);
  if (guestfs_mkdir_p (g, dir) == -1 || guestfs_ln_sf (g, target, link) == -1)
    return guestfs_failed (g, error, _("libguestfs could not make the link %s in the image"), link);

  return TRUE;
}

/* Comments out the lines of a configuration file whose key is one of
 * @keys; the file is left alone when it does not exist. */
static gboolean
guest_disable_keys (guestfs_h          *g,
                    const char         *path,
                    const char * const *keys,
                    GError            **error)
{
  g_autoptr(GString) out = g_string_new (NULL);
  g_auto(GStrv) lines = NULL;
  g_autofree char *content = NULL;
  gboolean changed = FALSE;
  size_t size;

  if (guestfs_is_file (g, path) != 1)
    return TRUE;

  content = guestfs_read_file (g, path, &size);
  if (content == NULL)
    return guestfs_failed (g, error, _("libguestfs could not read %s in the image"), path);

  lines = g_strsplit (content, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      g_autofree char *key = NULL;
      const char *eq = strchr (lines[i], '=');
      gboolean disable = FALSE;

      if (eq != NULL)
        {
          key = g_strstrip (g_strndup (lines[i], eq - lines[i]));
          disable = *key != '#' && g_strv_contains (keys, key);
        }
      if (disable)
        {
          g_string_append (out, "# disabled by Qlean: ");
          changed = TRUE;
        }
      g_string_append (out, lines[i]);
      if (lines[i + 1] != NULL)
        g_string_append_c (out, '\n');
    }

  if (!changed)
    return TRUE;

  return guest_write (g, path, out->str, out->len, 0644, error);
}

/* Distributions restrict their agent: Fedora blocks guest-exec and the
 * guest-file-* commands through /etc/sysconfig/qemu-ga, RHEL allows only
 * a list. Qlean drives machines with exactly those commands. */
static gboolean
lift_agent_restrictions (guestfs_h  *g,
                         GError    **error)
{
  static const char * const sysconfig_keys[] = { "FILTER_RPC_ARGS", "BLACKLIST_RPC", "BLOCK_RPCS", "ALLOW_RPCS", NULL };
  static const char * const conf_keys[] = { "block-rpcs", "allow-rpcs", "blacklist", NULL };

  return guest_disable_keys (g, "/etc/sysconfig/qemu-ga", sysconfig_keys, error) &&
         guest_disable_keys (g, "/etc/qemu/qemu-ga.conf", conf_keys, error) &&
         guest_disable_keys (g, "/etc/qemu-ga/qemu-ga.conf", conf_keys, error);
}

static int
compare_mountpoints (gconstpointer a,
                     gconstpointer b)
{
  const char * const *x = a;
  const char * const *y = b;

  return (int) strlen (x[0]) - (int) strlen (y[0]);
}

static gboolean
mount_guest (guestfs_h   *g,
             const char  *root,
             const char  *input,
             GError     **error)
{
  g_auto(GStrv) mountpoints = guestfs_inspect_get_mountpoints (g, root);
  guint n;

  if (mountpoints == NULL)
    return guestfs_failed (g, error, _("libguestfs could not read the image's file systems"));

  /* Pairs of (mount point, device), mounted parents first. */
  n = g_strv_length (mountpoints) / 2;
  qsort (mountpoints, n, 2 * sizeof (char *), compare_mountpoints);
  for (guint i = 0; i < n; i++)
    if (guestfs_mount (g, mountpoints[2 * i + 1], mountpoints[2 * i]) == -1)
      {
        if (g_str_equal (mountpoints[2 * i], "/"))
          return guestfs_failed (g, error, _("libguestfs could not mount the root file system of %s"),
                                 input);
        g_debug ("Not mounting %s on %s: %s", mountpoints[2 * i + 1], mountpoints[2 * i],
                 guestfs_last_error (g));
      }

  return TRUE;
}

static int
compare_names_descending (gconstpointer a,
                          gconstpointer b)
{
  return strverscmp (*(const char * const *) b, *(const char * const *) a);
}

/* The newest kernel in /boot that has an initrd next to it, with the
 * names Debian/Ubuntu (vmlinuz-V, initrd.img-V), Fedora (vmlinuz-V,
 * initramfs-V.img) and Arch (vmlinuz-linux, initramfs-linux.img) use. */
static gboolean
find_boot_files (guestfs_h   *g,
                 char       **kernel,
                 char       **initrd,
                 GError     **error)
{
  static const char * const initrd_patterns[] = {
    "initrd.img-%s", "initramfs-%s.img", "initrd-%s.img", "initrd-%s", "initramfs-%s",
  };
  g_auto(GStrv) names = guestfs_ls (g, "/boot");
  g_autoptr(GPtrArray) kernels = g_ptr_array_new ();

  if (names == NULL)
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_PREPARE_FAILED,
                   _("The image has no /boot directory, so no kernel to boot directly"));
      return FALSE;
    }

  for (guint i = 0; names[i] != NULL; i++)
    if (g_str_has_prefix (names[i], "vmlinuz-") && strstr (names[i], "rescue") == NULL)
      g_ptr_array_add (kernels, names[i]);
  g_ptr_array_sort (kernels, compare_names_descending);

  for (guint i = 0; i < kernels->len; i++)
    {
      const char *name = g_ptr_array_index (kernels, i);
      const char *version = name + strlen ("vmlinuz-");
      g_autofree char *kernel_path = g_build_filename ("/boot", name, NULL);

      if (guestfs_is_file_opts (g, kernel_path, GUESTFS_IS_FILE_OPTS_FOLLOWSYMLINKS, 1, -1) != 1)
        continue;

      for (guint p = 0; p < G_N_ELEMENTS (initrd_patterns); p++)
        {
          g_autofree char *initrd_name = g_strdup_printf (initrd_patterns[p], version);
          g_autofree char *initrd_path = g_build_filename ("/boot", initrd_name, NULL);

          if (guestfs_is_file_opts (g, initrd_path, GUESTFS_IS_FILE_OPTS_FOLLOWSYMLINKS, 1, -1) != 1)
            continue;

          /* Symlinks are resolved in the guest's tree, not the
           * appliance's. */
          *kernel = guestfs_realpath (g, kernel_path);
          *initrd = guestfs_realpath (g, initrd_path);
          if (*kernel == NULL || *initrd == NULL)
            return guestfs_failed (g, error, _("libguestfs could not resolve the kernel's path"));
          return TRUE;
        }
    }

  g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_PREPARE_FAILED,
               kernels->len == 0
               ? _("The image has no kernel in /boot (no vmlinuz-*), so none to boot directly")
               : _("The image has kernels in /boot but no initrd next to them"));
  return FALSE;
}

/* root= (and rootflags=) for the guest's kernel: by UUID, which does
 * not depend on how QEMU names disks. */
static char *
root_parameters (guestfs_h   *g,
                 const char  *root,
                 GError     **error)
{
  g_autofree char *device = guestfs_mountable_device (g, root);
  g_autofree char *subvolume = NULL;
  g_autofree char *uuid = NULL;
  GString *params = g_string_new (NULL);

  if (device == NULL)
    {
      g_string_free (params, TRUE);
      guestfs_failed (g, error, _("libguestfs could not find the root device"));
      return NULL;
    }

  /* Only btrfs subvolumes have one; the call fails for the rest. */
  guestfs_push_error_handler (g, NULL, NULL);
  subvolume = guestfs_mountable_subvolume (g, root);
  guestfs_pop_error_handler (g);

  uuid = guestfs_vfs_uuid (g, device);
  if (uuid != NULL && *uuid != '\0')
    g_string_append_printf (params, "root=UUID=%s", uuid);
  else if (g_str_has_prefix (device, "/dev/sd"))
    g_string_append_printf (params, "root=/dev/vd%s", device + strlen ("/dev/sd"));
  else
    g_string_append_printf (params, "root=%s", device);

  if (subvolume != NULL && *subvolume != '\0')
    g_string_append_printf (params, " rootflags=subvol=%s", subvolume);

  return g_string_free (params, FALSE);
}

typedef enum
{
  INIT_SYSTEMD,
  INIT_OPENRC,
  INIT_SYSVINIT,
} InitSystem;

static gboolean
find_init_system (guestfs_h   *g,
                  InitSystem  *init,
                  GError     **error)
{
  if (guest_exists (g, "/lib/systemd/systemd") || guest_exists (g, "/usr/lib/systemd/systemd"))
    *init = INIT_SYSTEMD;
  else if (guest_exists (g, "/sbin/openrc") || guest_exists (g, "/sbin/openrc-run"))
    *init = INIT_OPENRC;
  else if (guest_exists (g, "/etc/inittab"))
    *init = INIT_SYSVINIT;
  else
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_PREPARE_FAILED,
                   _("The image has no init system Qlean can start its guest programs "
                     "with (systemd, OpenRC or sysvinit)"));
      return FALSE;
    }

  return TRUE;
}

/* The image's own agent, when it has one systemd can start. */
static char *
find_image_agent (guestfs_h  *g,
                  InitSystem  init)
{
  static const char * const binaries[] = {
    "/usr/bin/qemu-ga", "/usr/sbin/qemu-ga", "/usr/libexec/qemu-ga", "/usr/local/bin/qemu-ga",
  };
  static const char * const units[] = {
    "/lib/systemd/system/qemu-guest-agent.service", "/usr/lib/systemd/system/qemu-guest-agent.service",
  };
  gboolean has_unit = FALSE;

  if (init != INIT_SYSTEMD)
    return NULL;

  for (guint i = 0; i < G_N_ELEMENTS (units); i++)
    has_unit = has_unit || guestfs_is_file (g, units[i]) == 1;
  if (!has_unit)
    return NULL;

  for (guint i = 0; i < G_N_ELEMENTS (binaries); i++)
    if (guestfs_is_file_opts (g, binaries[i], GUESTFS_IS_FILE_OPTS_FOLLOWSYMLINKS, 1, -1) == 1)
      return g_strdup (binaries[i]);

  return NULL;
}

/* Uploads only: none of it runs before the guest boots, so a foreign
 * architecture's agent goes in the same way as the host's. */
static gboolean
inject_agent (guestfs_h             *g,
                   const QleanHostAgent  *agent,
                   GError               **error)
{
  if (!guest_upload (g, agent->qemu_ga, "/opt/qlean/bin/qemu-ga", 0755, error) ||
      !guest_upload (g, agent->loader, "/opt/qlean/lib/ld-linux.so", 0755, error))
    return FALSE;

  for (guint i = 0; i < agent->libs->len; i++)
    {
      g_autofree char *dest = g_build_filename ("/opt/qlean/lib", g_ptr_array_index (agent->sonames, i), NULL);

      if (!guest_upload (g, g_ptr_array_index (agent->libs, i), dest, 0644, error))
        return FALSE;
    }

  return TRUE;
}

static gboolean
setup_systemd (guestfs_h         *g,
               const char        *image_agent,
               GError           **error)
{
  const char *system = "/etc/systemd/system";

  /* Pulled in by the port's device unit: such a unit starts when udev
   * sees the port, before anything else of the boot is done. */
  if (!guest_write_resource (g, "qlean-guest.service", "/etc/systemd/system/qlean-guest.service", 0644, error) ||
      !guest_symlink (g, "/etc/systemd/system/qlean-guest.service",
                      "/etc/systemd/system/" DATA_DEVICE_UNIT ".wants/qlean-guest.service", error))
    return FALSE;

  if (image_agent == NULL)
    {
      if (!guest_write_resource (g, "qlean-qemu-ga.service", "/etc/systemd/system/qlean-qemu-ga.service", 0644, error) ||
          !guest_symlink (g, "/etc/systemd/system/qlean-qemu-ga.service",
                          "/etc/systemd/system/" AGENT_DEVICE_UNIT ".wants/qlean-qemu-ga.service", error))
        return FALSE;

      /* A second agent would race ours for the port. */
      if (guest_exists (g, "/lib/systemd/system/qemu-guest-agent.service") ||
          guest_exists (g, "/usr/lib/systemd/system/qemu-guest-agent.service"))
        return guest_symlink (g, "/dev/null", "/etc/systemd/system/qemu-guest-agent.service", error);

      return TRUE;
    }
  else
    {
      g_autofree char *unit_path = g_build_filename (system, "qemu-guest-agent.service", NULL);
      g_autofree char *override = NULL;
      g_autoptr(GBytes) bytes = g_resource_lookup_data (qlean_resources (),
                                                        QLEAN_PREPARE_RESOURCE_DIR "qemu-guest-agent-override.conf",
                                                        0, error);
      g_autoptr(GString) text = NULL;
      const char *unit = NULL;

      if (bytes == NULL)
        return FALSE;

      /* An image may mask its agent (a symlink to /dev/null in /etc). */
      if (guestfs_is_symlink (g, unit_path) == 1)
        {
          g_autofree char *target = guestfs_readlink (g, unit_path);

          if (g_strcmp0 (target, "/dev/null") == 0 && guestfs_rm (g, unit_path) == -1)
            return guestfs_failed (g, error, _("libguestfs could not unmask qemu-guest-agent.service"));
        }

      text = g_string_new_len (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes));
      g_string_replace (text, "@QEMU_GA@", image_agent, 0);
      override = g_string_free (g_steal_pointer (&text), FALSE);

      unit = guest_exists (g, "/usr/lib/systemd/system/qemu-guest-agent.service")
             ? "/usr/lib/systemd/system/qemu-guest-agent.service"
             : "/lib/systemd/system/qemu-guest-agent.service";

      return guest_write (g, "/opt/qlean/qemu-ga.conf", "[general]\n", strlen ("[general]\n"), 0644, error) &&
             guest_write (g, "/etc/systemd/system/qemu-guest-agent.service.d/90-qlean.conf",
                          override, strlen (override), 0644, error) &&
             guest_symlink (g, unit, "/etc/systemd/system/" AGENT_DEVICE_UNIT ".wants/qemu-guest-agent.service",
                            error) &&
             lift_agent_restrictions (g, error);
    }
}

static gboolean
setup_openrc (guestfs_h  *g,
              GError    **error)
{
  if (!guest_write_resource (g, "qlean.openrc", "/etc/init.d/qlean", 0755, error) ||
      !guest_symlink (g, "/etc/init.d/qlean", "/etc/runlevels/default/qlean", error))
    return FALSE;

  /* The image's own agent would race ours for the port. */
  if (guest_exists (g, "/etc/runlevels/default/qemu-guest-agent") &&
      guestfs_rm (g, "/etc/runlevels/default/qemu-guest-agent") == -1)
    return guestfs_failed (g, error, _("libguestfs could not disable the image's "
                                           "qemu-guest-agent service"));

  return TRUE;
}

/* Whether /sbin/init is BusyBox's, whose inittab reads the first field
 * as the terminal to run a program on, not as an id (sysvinit's). */
static gboolean
init_is_busybox (guestfs_h *g)
{
  g_autofree char *target = NULL;

  if (guestfs_is_symlink (g, "/sbin/init") != 1)
    return FALSE;
  target = guestfs_readlink (g, "/sbin/init");

  return target != NULL && g_str_has_suffix (target, "busybox");
}

static gboolean
setup_sysvinit (guestfs_h  *g,
                GError    **error)
{
  static const char sysvinit_lines[] =
    "# Added by Qlean: its guest programs, restarted when they exit.\n"
    "qa:2345:respawn:/opt/qlean/qlean-run qemu-ga\n"
    "qg:2345:respawn:/opt/qlean/qlean-run qlean-guest\n";
  static const char busybox_lines[] =
    "# Added by Qlean: its guest programs, restarted when they exit.\n"
    "::respawn:/opt/qlean/qlean-run qemu-ga\n"
    "::respawn:/opt/qlean/qlean-run qlean-guest\n";
  const char *lines = init_is_busybox (g) ? busybox_lines : sysvinit_lines;
  g_autofree char *inittab = NULL;
  g_autofree char *text = NULL;
  size_t size;

  inittab = guestfs_read_file (g, "/etc/inittab", &size);
  if (inittab == NULL)
    return guestfs_failed (g, error, _("libguestfs could not read /etc/inittab"));
  if (strstr (inittab, "/opt/qlean/qlean-run") != NULL)
    return TRUE;

  text = g_strconcat (inittab, size > 0 && inittab[size - 1] != '\n' ? "\n" : "", lines, NULL);
  return guest_write (g, "/etc/inittab", text, strlen (text), 0644, error);
}

/* SELinux guests would refuse to run what has no label. */
static gboolean
relabel_if_selinux (guestfs_h *g)
{
  static const char * const paths[] = {
    "/opt/qlean", "/etc/systemd/system", "/etc/cloud/cloud.cfg.d", "/etc/sysconfig", "/etc/qemu", "/etc/qemu-ga",
  };
  g_autofree char *config = NULL;
  g_autofree char *specfile = NULL;
  g_autofree char *type = NULL;
  g_auto(GStrv) lines = NULL;
  size_t size;

  if (guestfs_is_file (g, "/etc/selinux/config") != 1)
    return TRUE;

  config = guestfs_read_file (g, "/etc/selinux/config", &size);
  lines = g_strsplit (config ? config : "", "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    if (g_str_has_prefix (lines[i], "SELINUXTYPE="))
      type = g_strstrip (g_strdup (lines[i] + strlen ("SELINUXTYPE=")));
  if (type == NULL)
    type = g_strdup ("targeted");

  specfile = g_strdup_printf ("/etc/selinux/%s/contexts/files/file_contexts", type);
  if (guestfs_is_file (g, specfile) != 1)
    return FALSE;

  for (guint i = 0; i < G_N_ELEMENTS (paths); i++)
    if (guest_exists (g, paths[i]) &&
        guestfs_selinux_relabel (g, specfile, paths[i], GUESTFS_SELINUX_RELABEL_FORCE, 1, -1) == -1)
      {
        g_debug ("Cannot relabel %s: %s", paths[i], guestfs_last_error (g));
        return FALSE;
      }

  return TRUE;
}

void
qlean_prepare_result_clear (QleanPrepareResult *result)
{
  g_clear_pointer (&result->cmdline, g_free);
  g_clear_pointer (&result->os, g_free);
}


/* The direct backend runs the appliance as this user; the libvirt one
 * needs a daemon and permissions a test runner seldom has. */
static void
choose_backend (guestfs_h *g)
{
  const char *backend = g_getenv ("LIBGUESTFS_BACKEND");
  g_autofree char *qemu = NULL;
  g_autofree char *reason = NULL;

  guestfs_set_error_handler (g, NULL, NULL);
  if (backend == NULL || *backend == '\0')
    guestfs_set_backend (g, "direct");

  /* libguestfs takes /dev/kvm at its word; where it exists but cannot
   * run guests (nested setups), its QEMU aborts. */
  qemu = qlean_host_find_qemu (NULL, NULL);
  if (qemu == NULL || !qlean_host_kvm_usable (qemu, &reason))
    {
      g_debug ("libguestfs without KVM: %s", reason ? reason : "no QEMU found");
      guestfs_set_backend_setting (g, "force_tcg", "1");
    }
}

/* Starts the appliance on @disk and finds the Linux system in it.
 * Returns its root device, and names the system in @result->os. */
static char *
launch_and_inspect (guestfs_h           *g,
                    const char          *disk,
                    const char          *input,
                    QleanPrepareResult  *result,
                    GCancellable        *cancellable,
                    GError             **error)
{
  g_auto(GStrv) roots = NULL;
  g_autofree char *type = NULL;
  g_autofree char *distro = NULL;
  int major, minor;

  if (guestfs_add_drive_opts (g, disk, GUESTFS_ADD_DRIVE_OPTS_FORMAT, "qcow2", -1) == -1 ||
      guestfs_launch (g) == -1)
    {
      guestfs_failed (g, error, _("libguestfs could not start its appliance (run "
                                  "libguestfs-test-tool to see why)"));
      return NULL;
    }

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return NULL;

  roots = guestfs_inspect_os (g);
  if (roots == NULL)
    {
      guestfs_failed (g, error, _("libguestfs could not inspect the image"));
      return NULL;
    }
  if (roots[0] == NULL)
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_PREPARE_FAILED,
                   _("libguestfs found no operating system in %s: it is not a Linux disk "
                     "image, or its root file system is encrypted or of a kind libguestfs "
                     "cannot read (virt-inspector %s tells more)"),
                   input, input);
      return NULL;
    }

  type = guestfs_inspect_get_type (g, roots[0]);
  if (type == NULL)
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_PREPARE_FAILED,
                   _("%s holds a system of unknown type; Qlean prepares Linux images only"),
                   input);
      return NULL;
    }
  if (!g_str_equal (type, "linux"))
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_PREPARE_FAILED,
                   _("%s holds a %s system; Qlean prepares Linux images only"),
                   input, type);
      return NULL;
    }

  distro = guestfs_inspect_get_distro (g, roots[0]);
  major = guestfs_inspect_get_major_version (g, roots[0]);
  minor = guestfs_inspect_get_minor_version (g, roots[0]);
  result->os = g_strdup_printf ("%s %d.%d", distro ? distro : "linux", major, minor);

  return g_strdup (roots[0]);
}

/* Makes @init start the guest programs: the image's own agent, when it
 * has one systemd can start, else the host's that was put in. */
static gboolean
start_guest_programs (guestfs_h    *g,
                      InitSystem    init,
                      const char   *image_agent,
                      GError      **error)
{
  switch (init)
    {
    case INIT_SYSTEMD:
      return setup_systemd (g, image_agent, error);
    case INIT_OPENRC:
      return guest_write_resource (g, "qlean-run", "/opt/qlean/qlean-run", 0755, error) &&
             setup_openrc (g, error);
    case INIT_SYSVINIT:
    default:
      return guest_write_resource (g, "qlean-run", "/opt/qlean/qlean-run", 0755, error) &&
             setup_sysvinit (g, error);
    }
}

/* qlean-guest always, the agent when the image has none to use; then
 * the image's init system is told to start them. */
static gboolean
install_guest_programs (guestfs_h           *g,
                        QleanArch            arch,
                        const char          *guest_binary,
                        QleanHostAgent      *agent,
                        QleanPrepareResult  *result,
                        GError             **error)
{
  g_autofree char *image_agent = NULL;
  InitSystem init;

  if (!find_init_system (g, &init, error))
    return FALSE;

  image_agent = find_image_agent (g, init);
  result->injected_agent = image_agent == NULL;

  if (!guest_upload (g, guest_binary, "/opt/qlean/qlean-guest", 0755, error) ||
      !guest_write (g, "/opt/qlean/qemu-ga.conf", "[general]\n", strlen ("[general]\n"), 0644, error))
    return FALSE;
  if (image_agent == NULL)
    {
      if (agent->qemu_ga == NULL && !qlean_find_agent (agent, arch, error))
        return FALSE;
      if (!inject_agent (g, agent, error))
        return FALSE;
    }

  return start_guest_programs (g, init, image_agent, error);
}

typedef enum
{
  KERNEL_BOOTABLE,
  KERNEL_ZBOOT,
} KernelKind;

/* QEMU 7.2 boots an arm64 kernel that is a raw Image (as Debian's is)
 * or a gzip'd one (as Ubuntu's is), but not an EFI zboot one (Fedora's):
 * it would start the PE stub without firmware and hang with nothing on
 * the console; such a kernel boots only through UEFI. Anything else is
 * no arm64 kernel at all, but an image of another architecture, told to
 * be aarch64: an error. */
static gboolean
check_kernel (QleanArch    arch,
              const char  *kernel,
              const char  *image_path,
              KernelKind  *kind,
              GError     **error)
{
  guint8 header[ARM64_MAGIC_OFFSET + 4] = { 0 };
  FILE *f = g_fopen (kernel, "rb");
  gsize n;

  if (f == NULL)
    {
      qlean_set_error_from_errno (error, errno, _("Could not open %s"), kernel);
      return FALSE;
    }
  n = fread (header, 1, sizeof header, f);
  fclose (f);

  *kind = KERNEL_BOOTABLE;
  if (n >= ZBOOT_MAGIC_OFFSET + 4 && memcmp (header, "MZ", 2) == 0 &&
      memcmp (header + ZBOOT_MAGIC_OFFSET, ZBOOT_MAGIC, strlen (ZBOOT_MAGIC)) == 0)
    *kind = KERNEL_ZBOOT;
  else if (arch == QLEAN_ARCH_AARCH64 &&
           !(n >= 2 && header[0] == 0x1f && header[1] == 0x8b) &&
           !(n == sizeof header && memcmp (header + ARM64_MAGIC_OFFSET, ARM64_MAGIC, 4) == 0))
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_PREPARE_FAILED,
                   _("The kernel of %s is not an arm64 kernel Image; is the image for "
                     "another architecture than aarch64?"),
                   image_path);
      return FALSE;
    }

  return TRUE;
}

/* Whether the image has an EFI boot loader (/boot/efi/EFI/<vendor or
 * BOOT>/<name>.efi, any case), which firmware can start. */
static gboolean
has_efi_loader (guestfs_h *g)
{
  g_auto(GStrv) files = NULL;

  if (guestfs_is_dir (g, "/boot/efi/EFI") != 1)
    return FALSE;

  files = guestfs_glob_expand (g, "/boot/efi/EFI/*/*");
  for (guint i = 0; files != NULL && files[i] != NULL; i++)
    {
      g_autofree char *lower = g_ascii_strdown (files[i], -1);

      if (g_str_has_suffix (lower, ".efi"))
        return TRUE;
    }

  return FALSE;
}

/* A kernel QEMU cannot boot directly: the machines boot the image's own
 * boot loader through UEFI instead (QleanMachineConfig:firmware auto),
 * if it has one. The copies taken out go, so that the prepared image
 * says "no kernel". */
static gboolean
boot_through_uefi (guestfs_h           *g,
                   const char          *input,
                   const char          *kernel_dest,
                   const char          *initrd_dest,
                   QleanPrepareResult  *result,
                   GError             **error)
{
  if (!has_efi_loader (g))
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_PREPARE_FAILED,
                   _("The kernel of %s is an EFI zboot image (as Fedora's aarch64 kernels "
                     "are), which QEMU cannot boot directly, only through UEFI firmware, and "
                     "the image has no EFI boot loader in /boot/efi/EFI for the firmware to "
                     "start; choose an image whose kernel is a plain or gzip-compressed Image, "
                     "such as Debian's or Ubuntu's"),
                   input);
      return FALSE;
    }

  g_debug ("%s: an EFI zboot kernel; its machines boot through UEFI", input);
  g_unlink (kernel_dest);
  g_unlink (initrd_dest);
  result->uefi_boot = TRUE;
  /* Its boot loader has its own command line. */
  result->cmdline = g_strdup ("");
  return TRUE;
}

/* Copies the kernel and initrd out into @dir, and writes the command
 * line that boots them from @root on @arch's serial console; or, for a
 * kernel only UEFI can boot, leaves the boot to the image's loader. */
static gboolean
copy_boot_out (guestfs_h           *g,
               QleanArch            arch,
               const char          *root,
               const char          *input,
               const char          *dir,
               gboolean             labelled,
               QleanPrepareResult  *result,
               GError             **error)
{
  g_autofree char *kernel = NULL;
  g_autofree char *initrd = NULL;
  g_autofree char *root_params = NULL;
  g_autofree char *kernel_dest = g_build_filename (dir, "vmlinuz", NULL);
  g_autofree char *initrd_dest = g_build_filename (dir, "initrd.img", NULL);
  KernelKind kind = KERNEL_BOOTABLE;

  if (!find_boot_files (g, &kernel, &initrd, error))
    return FALSE;
  if (guestfs_download (g, kernel, kernel_dest) == -1 ||
      guestfs_download (g, initrd, initrd_dest) == -1)
    return guestfs_failed (g, error, _("libguestfs could not copy the kernel and initrd out of "
                                       "the image"));
  if (arch != QLEAN_ARCH_X86_64 && !check_kernel (arch, kernel_dest, input, &kind, error))
    return FALSE;
  if (kind == KERNEL_ZBOOT)
    return boot_through_uefi (g, input, kernel_dest, initrd_dest, result, error);

  root_params = root_parameters (g, root, error);
  if (root_params == NULL)
    return FALSE;

  result->cmdline = g_strdup_printf ("console=%s %s rw %s%s%s", qlean_arch_get_info (arch)->console,
                                     root_params, boot_tuning,
                                     arch == QLEAN_ARCH_X86_64 ? boot_tuning_x86 : "",
                                     labelled ? "" : " enforcing=0");
  return TRUE;
}

static gboolean
prepare_in_guestfs (guestfs_h           *g,
                    QleanArch            arch,
                    const char          *disk,
                    const char          *input,
                    const char          *dir,
                    const char          *guest_binary,
                    QleanHostAgent      *agent,
                    QleanPrepareResult  *result,
                    GCancellable        *cancellable,
                    GError             **error)
{
  g_autofree char *root = NULL;
  gboolean labelled;

  choose_backend (g);

  root = launch_and_inspect (g, disk, input, result, cancellable, error);
  if (root == NULL)
    return FALSE;

  if (!mount_guest (g, root, input, error) ||
      !install_guest_programs (g, arch, guest_binary, agent, result, error))
    return FALSE;

  result->cloud_init = guestfs_is_dir (g, "/etc/cloud") == 1;
  if (result->cloud_init &&
      !guest_write_resource (g, "90-qlean.cfg", "/etc/cloud/cloud.cfg.d/90-qlean.cfg", 0644, error))
    return FALSE;

  labelled = relabel_if_selinux (g);

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;

  if (!copy_boot_out (g, arch, root, input, dir, labelled, result, error))
    return FALSE;

  /* Everything must be on the disk before the copy counts as prepared. */
  if (guestfs_shutdown (g) == -1)
    return guestfs_failed (g, error, _("libguestfs could not write the prepared image"));

  return TRUE;
}

gboolean
qlean_image_prepare_in_guestfs (QleanArch            arch,
                                const char          *disk,
                                const char          *input,
                                const char          *dir,
                                const char          *guest_binary,
                                QleanHostAgent      *agent,
                                QleanPrepareResult  *result,
                                GCancellable        *cancellable,
                                GError             **error)
{
  guestfs_h *g = guestfs_create ();
  gboolean ok;

  if (g == NULL)
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_PREPARE_FAILED,
                   _("Cannot create a libguestfs handle (%s)"), g_strerror (errno));
      return FALSE;
    }

  ok = prepare_in_guestfs (g, arch, disk, input, dir, guest_binary, agent, result, cancellable, error);
  guestfs_close (g);

  return ok;
}
