/* qlean-image-prepare.c: making a cloud image ready for Qlean
 *
 * SPDX-License-Identifier: MIT
 *
 * A downloaded image is copied to a qcow2 file and changed offline with
 * libguestfs, on the calling (worker) thread, which alone ever touches
 * the handle: the guest agent and qlean-guest are made to start as soon
 * as their virtio-serial ports show up, cloud-init is told to look only
 * for a NoCloud seed, and the kernel and initrd are copied out so that
 * QEMU boots them directly (no boot loader, no firmware menu). The
 * download itself is never changed; machines run on overlays of the
 * prepared copy, which is cached by the download's digest and
 * PREPARE_VERSION.
 */

#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include <glib/gi18n-lib.h>
#include <json-glib/json-glib.h>
#include <guestfs.h>

#include "qlean-image-prepare-private.h"
#include "qlean-error.h"
#include "qlean-host-private.h"
#include "qlean-image-download-private.h"
#include "qlean-image-private.h"
#include "qlean-resources.h"
#include "qlean-util-private.h"
#include "qlean-errno-private.h"

/* Bump whenever what preparation does changes, so that images prepared
 * by an older Qlean are prepared again. */
#define PREPARE_VERSION 1
#define RESOURCE_DIR "/org/qlean/distro/"

#define AGENT_DEVICE_UNIT "dev-virtio\\x2dports-org.qemu.guest_agent.0.device"
#define DATA_DEVICE_UNIT "dev-virtio\\x2dports-org.qlean.data.0.device"

/* Kernel parameters that shorten a boot without KVM (see MEASUREMENTS.md
 * and qlean-image-minimal.c); the same for every distribution. */
static const char boot_tuning[] =
  "quiet mitigations=off tsc=reliable no_timer_check random.trust_cpu=on "
  "cryptomgr.notests i8042.noaux i8042.nokbd i8042.nopnp 8250.nr_uarts=1";

void
qlean_prepared_clear (QleanPrepared *prepared)
{
  g_clear_pointer (&prepared->kernel, g_free);
  g_clear_pointer (&prepared->initrd, g_free);
  g_clear_pointer (&prepared->disk, g_free);
  g_clear_pointer (&prepared->cmdline, g_free);
}

/* Host programs */

char *
qlean_find_guest_binary (GError **error)
{
  const char *env = g_getenv ("QLEAN_GUEST_BINARY");
  const char *candidates[] = {
    QLEAN_LIBEXECDIR "/qlean/qlean-guest",
#ifdef QLEAN_BUILD_GUEST_BINARY
    QLEAN_BUILD_GUEST_BINARY,
#endif
  };

  if (env != NULL && *env != '\0')
    {
      if (g_file_test (env, G_FILE_TEST_IS_EXECUTABLE) && g_file_test (env, G_FILE_TEST_IS_REGULAR))
        return g_strdup (env);
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
                   _("QLEAN_GUEST_BINARY is %s, which is not an executable file"), env);
      return NULL;
    }

  for (guint i = 0; i < G_N_ELEMENTS (candidates); i++)
    if (g_file_test (candidates[i], G_FILE_TEST_IS_EXECUTABLE))
      return g_strdup (candidates[i]);

  g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
               _("Qlean's guest program qlean-guest is missing (looked for %s); reinstall "
                 "Qlean, or set QLEAN_GUEST_BINARY to it (guest/qlean-guest in a build tree)"),
               candidates[0]);
  return NULL;
}

typedef struct
{
  char      *qemu_ga;
  char      *loader;
  GPtrArray *libs;     /* host paths; copied under their soname */
  GPtrArray *sonames;
} HostAgent;

static void
host_agent_clear (HostAgent *agent)
{
  g_clear_pointer (&agent->qemu_ga, g_free);
  g_clear_pointer (&agent->loader, g_free);
  g_clear_pointer (&agent->libs, g_ptr_array_unref);
  g_clear_pointer (&agent->sonames, g_ptr_array_unref);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (HostAgent, host_agent_clear)

static char *
find_host_qemu_ga (void)
{
  const char *env = g_getenv ("QLEAN_QEMU_GA");
  static const char * const candidates[] = { "/usr/sbin/qemu-ga", "/usr/bin/qemu-ga", "/usr/libexec/qemu-ga" };

  if (env != NULL && *env != '\0')
    return g_strdup (env);

  for (guint i = 0; i < G_N_ELEMENTS (candidates); i++)
    if (g_file_test (candidates[i], G_FILE_TEST_IS_EXECUTABLE))
      return g_strdup (candidates[i]);

  return g_find_program_in_path ("qemu-ga");
}

/* The host's qemu-ga and what `ldd` says it loads: copied into a guest
 * under /opt/qlean and started through the copied loader, it runs
 * whatever the guest's own libc is. */
static gboolean
find_host_agent (HostAgent  *agent,
                 GError    **error)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_auto(GStrv) lines = NULL;
  g_auto(GStrv) envp = g_environ_setenv (g_get_environ (), "LC_ALL", "C", TRUE);
  const char *argv[] = { "ldd", NULL, NULL };
  int status;

  agent->qemu_ga = find_host_qemu_ga ();
  if (agent->qemu_ga == NULL)
    {
      g_autofree char *hint = qlean_host_install_hint ("qemu-guest-agent");

      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
                   _("The image has no QEMU guest agent, and the host has none to give it; "
                     "install it on the host: %s"), hint);
      return FALSE;
    }

  argv[1] = agent->qemu_ga;
  if (!g_spawn_sync (NULL, (char **) argv, envp, G_SPAWN_SEARCH_PATH, NULL, NULL,
                     &out, &err, &status, error))
    return FALSE;
  if (!g_spawn_check_wait_status (status, NULL))
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
                   _("Cannot list the libraries of %s (ldd: %s)"), agent->qemu_ga, g_strstrip (err));
      return FALSE;
    }

  agent->libs = g_ptr_array_new_with_free_func (g_free);
  agent->sonames = g_ptr_array_new_with_free_func (g_free);
  lines = g_strsplit (out, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      char *line = g_strstrip (lines[i]);
      char *arrow = strstr (line, " => ");
      char *paren;

      if (*line == '\0')
        continue;
      if (arrow != NULL)
        {
          char *path = arrow + 4;

          if (g_str_has_prefix (path, "not found"))
            {
              g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
                           _("%s needs %s, which is missing on the host"), agent->qemu_ga, line);
              return FALSE;
            }
          paren = strstr (path, " (");
          if (paren != NULL)
            *paren = '\0';
          *arrow = '\0';
          if (*path != '/')
            continue;
          g_ptr_array_add (agent->sonames, g_strdup (line));
          g_ptr_array_add (agent->libs, g_strdup (path));
        }
      else if (*line == '/')
        {
          paren = strstr (line, " (");
          if (paren != NULL)
            *paren = '\0';
          agent->loader = g_strdup (line);
        }
    }

  if (agent->loader == NULL)
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
                   _("ldd names no dynamic loader for %s; Qlean needs a dynamically "
                     "linked qemu-ga"), agent->qemu_ga);
      return FALSE;
    }

  return TRUE;
}

static gboolean
checksum_file_contents (GChecksum   *checksum,
                        const char  *path,
                        GError     **error)
{
  g_autofree char *hex = qlean_hash_file (path, G_CHECKSUM_SHA256, NULL, NULL, NULL, error);

  if (hex == NULL)
    return FALSE;

  g_checksum_update (checksum, (const guchar *) hex, -1);
  return TRUE;
}

/* The prepared image depends on the download, on what is injected and
 * on how; all of it goes into the cache key. */
static char *
prepare_key (const char  *input_digest,
             const char  *guest_binary,
             const char  *qemu_ga,
             GError     **error)
{
  g_autoptr(GChecksum) checksum = g_checksum_new (G_CHECKSUM_SHA256);
  g_auto(GStrv) resources = NULL;
  g_autofree char *version = g_strdup_printf ("qlean-prepare %d\n", PREPARE_VERSION);

  g_checksum_update (checksum, (const guchar *) version, -1);
  g_checksum_update (checksum, (const guchar *) input_digest, -1);
  if (!checksum_file_contents (checksum, guest_binary, error))
    return NULL;
  if (qemu_ga != NULL && !checksum_file_contents (checksum, qemu_ga, error))
    return NULL;

  resources = g_resource_enumerate_children (qlean_resources (), RESOURCE_DIR, 0, NULL);
  for (guint i = 0; resources != NULL && resources[i] != NULL; i++)
    {
      g_autofree char *path = g_strconcat (RESOURCE_DIR, resources[i], NULL);
      g_autoptr(GBytes) bytes = g_resource_lookup_data (qlean_resources (), path, 0, NULL);

      if (bytes != NULL)
        g_checksum_update (checksum, g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes));
    }

  return g_strndup (g_checksum_get_string (checksum), 16);
}

/* qemu-img */

static gboolean
is_qcow2 (const char *path)
{
  char magic[4] = { 0 };
  FILE *f = g_fopen (path, "rb");
  gboolean qcow2;

  if (f == NULL)
    return FALSE;
  qcow2 = fread (magic, 1, 4, f) == 4 && memcmp (magic, "QFI\xfb", 4) == 0;
  fclose (f);

  return qcow2;
}

static gboolean
run_tool (const char * const  *argv,
          GCancellable        *cancellable,
          GError             **error)
{
  g_autoptr(GSubprocess) process = NULL;
  g_autofree char *output = NULL;
  g_autoptr(GError) local_error = NULL;

  process = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_MERGE,
                               &local_error);
  if (process == NULL)
    {
      g_autofree char *hint = qlean_host_install_hint ("qemu-utils");

      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
                   _("Cannot run %s: %s; install it: %s"), argv[0], local_error->message, hint);
      return FALSE;
    }

  if (!g_subprocess_communicate_utf8 (process, NULL, cancellable, &output, NULL, error))
    {
      g_subprocess_force_exit (process);
      g_subprocess_wait (process, NULL, NULL);
      return FALSE;
    }

  if (!g_subprocess_get_successful (process))
    {
      gboolean full = output != NULL && strstr (output, "No space left") != NULL;

      g_set_error (error, QLEAN_IMAGE_ERROR,
                   full ? QLEAN_IMAGE_ERROR_NO_SPACE : QLEAN_IMAGE_ERROR_PREPARE_FAILED,
                   _("%s failed: %s"), argv[0], output ? g_strstrip (output) : "");
      return FALSE;
    }

  return TRUE;
}

/* libguestfs */

static gboolean
guestfs_failed (guestfs_h   *g,
                GError     **error,
                const char  *what)
{
  const char *message = guestfs_last_error (g);

  g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_PREPARE_FAILED,
               _("libguestfs could not %s: %s"), what, message ? message : _("unknown error"));
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
  g_autofree char *what = g_strdup_printf (_("write %s in the image"), path);

  if (guestfs_mkdir_p (g, dir) == -1 ||
      guestfs_write (g, path, content, len) == -1 ||
      guestfs_chmod (g, mode, path) == -1)
    return guestfs_failed (g, error, what);

  return TRUE;
}

static gboolean
guest_write_resource (guestfs_h   *g,
                      const char  *resource,
                      const char  *path,
                      int          mode,
                      GError     **error)
{
  g_autofree char *full = g_strconcat (RESOURCE_DIR, resource, NULL);
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
  g_autofree char *what = g_strdup_printf (_("copy %s to %s in the image"), host_path, path);

  if (guestfs_mkdir_p (g, dir) == -1 ||
      guestfs_upload (g, host_path, path) == -1 ||
      guestfs_chmod (g, mode, path) == -1)
    return guestfs_failed (g, error, what);

  return TRUE;
}

static gboolean
guest_symlink (guestfs_h   *g,
               const char  *target,
               const char  *link,
               GError     **error)
{
  g_autofree char *dir = g_path_get_dirname (link);
  g_autofree char *what = g_strdup_printf (_("make the link %s in the image"), link);

  if (guestfs_mkdir_p (g, dir) == -1 || guestfs_ln_sf (g, target, link) == -1)
    return guestfs_failed (g, error, what);

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
    return guestfs_failed (g, error, path);

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
    return guestfs_failed (g, error, _("read the image's file systems"));

  /* Pairs of (mount point, device), mounted parents first. */
  n = g_strv_length (mountpoints) / 2;
  qsort (mountpoints, n, 2 * sizeof (char *), compare_mountpoints);
  for (guint i = 0; i < n; i++)
    if (guestfs_mount (g, mountpoints[2 * i + 1], mountpoints[2 * i]) == -1)
      {
        if (g_str_equal (mountpoints[2 * i], "/"))
          {
            g_autofree char *what = g_strdup_printf (_("mount the root file system of %s"), input);

            return guestfs_failed (g, error, what);
          }
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
            return guestfs_failed (g, error, _("resolve the kernel's path"));
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
      guestfs_failed (g, error, _("find the root device"));
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

static gboolean
inject_host_agent (guestfs_h        *g,
                   const HostAgent  *agent,
                   GError          **error)
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
                                                        RESOURCE_DIR "qemu-guest-agent-override.conf",
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
            return guestfs_failed (g, error, _("unmask qemu-guest-agent.service"));
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
    return guestfs_failed (g, error, _("disable the image's qemu-guest-agent service"));

  return TRUE;
}

static gboolean
setup_sysvinit (guestfs_h  *g,
                GError    **error)
{
  static const char lines[] =
    "# Added by Qlean: its guest programs, restarted when they exit.\n"
    "qa:2345:respawn:/opt/qlean/qlean-run qemu-ga\n"
    "qg:2345:respawn:/opt/qlean/qlean-run qlean-guest\n";
  g_autofree char *inittab = NULL;
  g_autofree char *text = NULL;
  size_t size;

  inittab = guestfs_read_file (g, "/etc/inittab", &size);
  if (inittab == NULL)
    return guestfs_failed (g, error, _("read /etc/inittab"));
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

typedef struct
{
  char     *cmdline;
  gboolean  cloud_init;
  gboolean  injected_agent;
  char     *os;
} PrepareResult;

static void
prepare_result_clear (PrepareResult *result)
{
  g_clear_pointer (&result->cmdline, g_free);
  g_clear_pointer (&result->os, g_free);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (PrepareResult, prepare_result_clear)

static gboolean
prepare_in_guestfs (guestfs_h      *g,
                    const char     *disk,
                    const char     *input,
                    const char     *dir,
                    const char     *guest_binary,
                    HostAgent      *agent,
                    PrepareResult  *result,
                    GCancellable   *cancellable,
                    GError        **error)
{
  g_auto(GStrv) roots = NULL;
  g_autofree char *type = NULL;
  g_autofree char *distro = NULL;
  g_autofree char *image_agent = NULL;
  g_autofree char *kernel = NULL;
  g_autofree char *initrd = NULL;
  g_autofree char *root_params = NULL;
  g_autofree char *kernel_dest = g_build_filename (dir, "vmlinuz", NULL);
  g_autofree char *initrd_dest = g_build_filename (dir, "initrd.img", NULL);
  const char *backend = g_getenv ("LIBGUESTFS_BACKEND");
  InitSystem init;
  gboolean labelled;
  const char *root;

  guestfs_set_error_handler (g, NULL, NULL);
  /* The direct backend runs the appliance as this user; the libvirt one
   * needs a daemon and permissions a test runner seldom has. */
  if (backend == NULL || *backend == '\0')
    guestfs_set_backend (g, "direct");
  /* libguestfs takes /dev/kvm at its word; where it exists but cannot
   * run guests (nested setups), its QEMU aborts. */
  {
    g_autofree char *qemu = qlean_host_find_qemu (NULL, NULL);
    g_autofree char *reason = NULL;

    if (qemu == NULL || !qlean_host_kvm_usable (qemu, &reason))
      {
        g_debug ("libguestfs without KVM: %s", reason ? reason : "no QEMU found");
        guestfs_set_backend_setting (g, "force_tcg", "1");
      }
  }

  if (guestfs_add_drive_opts (g, disk, GUESTFS_ADD_DRIVE_OPTS_FORMAT, "qcow2", -1) == -1 ||
      guestfs_launch (g) == -1)
    return guestfs_failed (g, error, _("start its appliance (run libguestfs-test-tool to see why)"));

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;

  roots = guestfs_inspect_os (g);
  if (roots == NULL)
    return guestfs_failed (g, error, _("inspect the image"));
  if (roots[0] == NULL)
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_PREPARE_FAILED,
                   _("libguestfs found no operating system in %s: it is not a Linux disk "
                     "image, or its root file system is encrypted or of a kind libguestfs "
                     "cannot read (virt-inspector %s tells more)"),
                   input, input);
      return FALSE;
    }
  root = roots[0];

  type = guestfs_inspect_get_type (g, root);
  if (g_strcmp0 (type, "linux") != 0)
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_PREPARE_FAILED,
                   _("%s holds a %s system; Qlean prepares Linux images only"),
                   input, type ? type : _("unknown"));
      return FALSE;
    }

  distro = guestfs_inspect_get_distro (g, root);
  {
    int major = guestfs_inspect_get_major_version (g, root);
    int minor = guestfs_inspect_get_minor_version (g, root);

    result->os = g_strdup_printf ("%s %d.%d", distro ? distro : "linux", major, minor);
  }

  if (!mount_guest (g, root, input, error) ||
      !find_init_system (g, &init, error))
    return FALSE;

  image_agent = find_image_agent (g, init);
  result->injected_agent = image_agent == NULL;

  /* qlean-guest always, the agent when the image has none to use. */
  if (!guest_upload (g, guest_binary, "/opt/qlean/qlean-guest", 0755, error) ||
      !guest_write (g, "/opt/qlean/qemu-ga.conf", "[general]\n", strlen ("[general]\n"), 0644, error))
    return FALSE;
  if (image_agent == NULL)
    {
      if (agent->qemu_ga == NULL && !find_host_agent (agent, error))
        return FALSE;
      if (!inject_host_agent (g, agent, error))
        return FALSE;
    }

  switch (init)
    {
    case INIT_SYSTEMD:
      if (!setup_systemd (g, image_agent, error))
        return FALSE;
      break;
    case INIT_OPENRC:
      if (!guest_write_resource (g, "qlean-run", "/opt/qlean/qlean-run", 0755, error) ||
          !setup_openrc (g, error))
        return FALSE;
      break;
    case INIT_SYSVINIT:
    default:
      if (!guest_write_resource (g, "qlean-run", "/opt/qlean/qlean-run", 0755, error) ||
          !setup_sysvinit (g, error))
        return FALSE;
      break;
    }

  result->cloud_init = guestfs_is_dir (g, "/etc/cloud") == 1;
  if (result->cloud_init &&
      !guest_write_resource (g, "90-qlean.cfg", "/etc/cloud/cloud.cfg.d/90-qlean.cfg", 0644, error))
    return FALSE;

  labelled = relabel_if_selinux (g);

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;

  if (!find_boot_files (g, &kernel, &initrd, error))
    return FALSE;
  if (guestfs_download (g, kernel, kernel_dest) == -1 ||
      guestfs_download (g, initrd, initrd_dest) == -1)
    return guestfs_failed (g, error, _("copy the kernel and initrd out of the image"));

  root_params = root_parameters (g, root, error);
  if (root_params == NULL)
    return FALSE;

  result->cmdline = g_strdup_printf ("console=ttyS0 %s rw %s%s", root_params, boot_tuning,
                                     labelled ? "" : " enforcing=0");

  /* Everything must be on the disk before the copy counts as prepared. */
  if (guestfs_shutdown (g) == -1)
    return guestfs_failed (g, error, _("write the prepared image"));

  return TRUE;
}

static gboolean
write_prepared_info (const char     *dir,
                     const char     *input_digest,
                     PrepareResult  *result,
                     GError        **error)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  g_autoptr(JsonNode) root = NULL;
  g_autofree char *path = g_build_filename (dir, "prepared.json", NULL);
  g_autofree char *text = NULL;

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "version");
  json_builder_add_int_value (builder, PREPARE_VERSION);
  json_builder_set_member_name (builder, "input");
  json_builder_add_string_value (builder, input_digest);
  json_builder_set_member_name (builder, "os");
  json_builder_add_string_value (builder, result->os);
  json_builder_set_member_name (builder, "cmdline");
  json_builder_add_string_value (builder, result->cmdline);
  json_builder_set_member_name (builder, "cloud-init");
  json_builder_add_boolean_value (builder, result->cloud_init);
  json_builder_set_member_name (builder, "agent");
  json_builder_add_string_value (builder, result->injected_agent ? "injected" : "image");
  json_builder_end_object (builder);

  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  json_generator_set_pretty (generator, TRUE);
  text = json_generator_to_data (generator, NULL);

  return g_file_set_contents_full (path, text, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0644, error);
}

static gboolean
load_prepared (const char    *dir,
               QleanPrepared *prepared)
{
  g_autofree char *info = g_build_filename (dir, "prepared.json", NULL);
  g_autoptr(JsonParser) parser = json_parser_new ();
  JsonObject *object;
  JsonNode *root;
  const char *cmdline;

  if (!json_parser_load_from_file (parser, info, NULL))
    return FALSE;

  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    return FALSE;
  object = json_node_get_object (root);
  cmdline = json_object_get_string_member_with_default (object, "cmdline", NULL);
  if (cmdline == NULL)
    return FALSE;

  prepared->kernel = g_build_filename (dir, "vmlinuz", NULL);
  prepared->initrd = g_build_filename (dir, "initrd.img", NULL);
  prepared->disk = g_build_filename (dir, "disk.qcow2", NULL);
  prepared->cmdline = g_strdup (cmdline);
  prepared->cloud_init = json_object_get_boolean_member_with_default (object, "cloud-init", FALSE);

  if (!g_file_test (prepared->kernel, G_FILE_TEST_IS_REGULAR) ||
      !g_file_test (prepared->initrd, G_FILE_TEST_IS_REGULAR) ||
      !g_file_test (prepared->disk, G_FILE_TEST_IS_REGULAR))
    {
      qlean_prepared_clear (prepared);
      return FALSE;
    }

  return TRUE;
}

static gboolean
build_prepared (const char     *input,
                const char     *input_format,
                const char     *input_digest,
                const char     *tmp,
                const char     *guest_binary,
                HostAgent      *agent,
                GCancellable   *cancellable,
                GError        **error)
{
  g_autofree char *disk = g_build_filename (tmp, "disk.qcow2", NULL);
  g_auto(PrepareResult) result = { 0 };
  const char *format = input_format ? input_format : is_qcow2 (input) ? "qcow2" : "raw";
  const char *convert[] = { "qemu-img", "convert", "-q", "-f", format, "-O", "qcow2", input, disk, NULL };
  guestfs_h *g;
  gboolean ok;

  /* The download's header is the stranger's: one that names a backing
   * or data file would have the convert copy that file of this host
   * into the image. */
  {
    g_autofree char *checked = qlean_image_check_disk_file (input, format, cancellable, error);

    if (checked == NULL)
      return FALSE;
  }

  /* A full copy, not an overlay: the download may be replaced by a
   * newer one while machines still run on this. */
  if (!run_tool (convert, cancellable, error))
    return FALSE;

  g = guestfs_create ();
  if (g == NULL)
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_PREPARE_FAILED,
                   _("Cannot create a libguestfs handle (%s)"), g_strerror (errno));
      return FALSE;
    }

  ok = prepare_in_guestfs (g, disk, input, tmp, guest_binary, agent, &result, cancellable, error);
  guestfs_close (g);

  return ok && write_prepared_info (tmp, input_digest, &result, error);
}

gboolean
qlean_image_prepare_disk (const char     *input,
                          const char     *input_format,
                          const char     *input_digest,
                          const char     *name,
                          const char     *arch,
                          const char     *cache_root,
                          QleanPrepared  *prepared,
                          GCancellable   *cancellable,
                          GError        **error)
{
  g_auto(HostAgent) agent = { 0 };
  g_autofree char *guest_binary = NULL;
  g_autofree char *key = NULL;
  g_autofree char *parent = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *lock_path = NULL;
  g_autofree char *tmp = NULL;
  g_autoptr(GError) cleanup_error = NULL;
  gboolean ok;
  int lock_fd;

  guest_binary = qlean_find_guest_binary (error);
  if (guest_binary == NULL)
    return FALSE;
  agent.qemu_ga = find_host_qemu_ga ();

  key = prepare_key (input_digest, guest_binary, agent.qemu_ga, error);
  if (key == NULL)
    return FALSE;
  g_clear_pointer (&agent.qemu_ga, g_free);

  parent = g_build_filename (cache_root, "prepared", arch, name, NULL);
  dir = g_build_filename (parent, key, NULL);
  if (load_prepared (dir, prepared))
    return TRUE;

  if (!qlean_cache_mkdir (parent, error))
    return FALSE;

  lock_path = g_build_filename (parent, ".lock", NULL);
  lock_fd = qlean_cache_lock (lock_path, cancellable, error);
  if (lock_fd < 0)
    return FALSE;

  if (load_prepared (dir, prepared))
    {
      qlean_cache_unlock (lock_fd);
      return TRUE;
    }

  /* Built aside and renamed into place, so that nobody ever sees half a
   * prepared image, and a failure leaves nothing behind. */
  tmp = g_build_filename (parent, ".tmp-XXXXXX", NULL);
  if (g_mkdtemp (tmp) == NULL)
    {
      int saved_errno = errno;

      qlean_cache_unlock (lock_fd);
      g_set_error (error, QLEAN_IMAGE_ERROR,
                   saved_errno == ENOSPC ? QLEAN_IMAGE_ERROR_NO_SPACE : QLEAN_IMAGE_ERROR_FAILED,
                   _("Cannot create %s: %s"), tmp, g_strerror (saved_errno));
      return FALSE;
    }

  ok = build_prepared (input, input_format, input_digest, tmp, guest_binary, &agent, cancellable, error);
  if (ok && g_rename (tmp, dir) != 0)
    {
      int saved_errno = errno;

      qlean_set_error_from_errno (error, saved_errno,
                                  _("Cannot rename %s to %s"), tmp, dir);
      ok = FALSE;
    }
  if (!ok && !qlean_rm_rf (tmp, &cleanup_error))
    g_warning ("Could not remove %s: %s", tmp, cleanup_error->message);

  qlean_cache_unlock (lock_fd);

  return ok && load_prepared (dir, prepared);
}
