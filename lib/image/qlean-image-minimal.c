/* qlean-image-minimal.c: building the embedded default image
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <glib/gstdio.h>
#include <glib/gi18n-lib.h>

#include "qlean-arch-private.h"
#include "qlean-error.h"
#include "qlean-image-guestfs-private.h"
#include "qlean-image-private.h"
#include "qlean-resources.h"
#include "qlean-util-private.h"
#include "qlean-errno-private.h"

#define RESOURCE_INIT "/org/qlean/minimal/init"
#define RESOURCE_BUILDER "/org/qlean/minimal/qlean-build-initramfs.sh"

/* Per architecture, in qlean-arch.c. */
const char *
qlean_minimal_cmdline (QleanArch arch)
{
  return qlean_arch_get_info (arch)->minimal_cmdline;
}

void
qlean_minimal_inputs_clear (QleanMinimalInputs *inputs)
{
  g_clear_pointer (&inputs->sysroot, g_free);
  g_clear_pointer (&inputs->kernel, g_free);
  g_clear_pointer (&inputs->kernel_release, g_free);
  g_clear_pointer (&inputs->modules_dir, g_free);
  g_clear_pointer (&inputs->busybox, g_free);
  g_clear_pointer (&inputs->qemu_ga, g_free);
  g_clear_pointer (&inputs->guest, g_free);
}

char *
qlean_find_guest_program (void)
{
  const char *candidates[] = {
    g_getenv ("QLEAN_GUEST_BINARY"),
    QLEAN_LIBEXECDIR "/qlean/qlean-guest",
    QLEAN_BUILD_GUEST,
  };

  for (guint i = 0; i < G_N_ELEMENTS (candidates); i++)
    if (candidates[i] != NULL && *candidates[i] != '\0' &&
        g_file_test (candidates[i], G_FILE_TEST_IS_EXECUTABLE))
      return g_strdup (candidates[i]);

  return NULL;
}

char *
qlean_find_guest_program_for_arch (QleanArch arch)
{
  const QleanArchInfo *info = qlean_arch_get_info (arch);
  g_autofree char *env_name = NULL;
  g_autofree char *installed = NULL;
  g_autofree char *built = NULL;

  if (qlean_arch_is_host (arch))
    return qlean_find_guest_program ();

  /* qlean-guest-aarch64 and so on, cross-compiled beside the host's
   * (tools/meson.build). */
  env_name = g_ascii_strup (info->name, -1);
  qlean_set_str (&env_name, g_strdup_printf ("QLEAN_GUEST_BINARY_%s", env_name));
  installed = g_strdup_printf ("%s/qlean/qlean-guest-%s", QLEAN_LIBEXECDIR, info->name);
  built = g_strdup_printf ("%s-%s", QLEAN_BUILD_GUEST, info->name);

  {
    const char *candidates[] = { g_getenv (env_name), installed, built };

    for (guint i = 0; i < G_N_ELEMENTS (candidates); i++)
      if (candidates[i] != NULL && *candidates[i] != '\0' &&
          g_file_test (candidates[i], G_FILE_TEST_IS_EXECUTABLE))
        return g_strdup (candidates[i]);
  }

  return NULL;
}

static int
compare_versions (gconstpointer a,
                  gconstpointer b)
{
  return strverscmp (*(const char * const *) a, *(const char * const *) b);
}

/* Whether kernel @release under @root has 9p over virtio, as modules
 * or built in: what shared folders need. */
static gboolean
kernel_has_9p (const char *root,
               const char *release)
{
  const char *lists[] = { "modules.dep", "modules.builtin" };
  gboolean fs = FALSE, transport = FALSE;

  for (guint i = 0; i < G_N_ELEMENTS (lists); i++)
    {
      g_autofree char *path = g_build_filename (root, "lib", "modules", release, lists[i], NULL);
      g_autofree char *text = NULL;

      if (!g_file_get_contents (path, &text, NULL, NULL))
        continue;
      fs = fs || strstr (text, "kernel/fs/9p/9p.ko") != NULL;
      transport = transport || strstr (text, "/9pnet_virtio.ko") != NULL;
    }

  return fs && transport;
}

/* Debian's cloud kernel boots fastest (fewer drivers to probe), so it
 * wins when installed; then the running kernel (on the host's own
 * architecture); then the newest. @root is / or a foreign sysroot.
 * With @want_9p, only kernels that have 9p count. */
static char *
find_kernel_release (const char *root,
                     QleanArch   arch,
                     gboolean    want_9p)
{
  g_autofree char *boot = g_build_filename (root, "boot", NULL);
  g_autofree char *cloud_suffix = g_strdup_printf ("-cloud-%s", qlean_arch_get_info (arch)->debian_name);
  g_autoptr(GDir) dir = g_dir_open (boot, 0, NULL);
  g_autoptr(GPtrArray) releases = g_ptr_array_new_with_free_func (g_free);
  struct utsname uts;
  const char *name;

  if (dir != NULL)
    while ((name = g_dir_read_name (dir)) != NULL)
      if (g_str_has_prefix (name, "vmlinuz-"))
        {
          g_autofree char *path = g_build_filename (boot, name, NULL);

          if (g_access (path, R_OK) == 0 &&
              (!want_9p || kernel_has_9p (root, name + strlen ("vmlinuz-"))))
            g_ptr_array_add (releases, g_strdup (name + strlen ("vmlinuz-")));
        }

  g_ptr_array_sort (releases, compare_versions);

  for (guint i = releases->len; i > 0; i--)
    if (g_str_has_suffix (g_ptr_array_index (releases, i - 1), cloud_suffix))
      return g_strdup (g_ptr_array_index (releases, i - 1));

  if (qlean_arch_is_host (arch) && uname (&uts) == 0)
    for (guint i = 0; i < releases->len; i++)
      if (g_strcmp0 (g_ptr_array_index (releases, i), uts.release) == 0)
        return g_strdup (uts.release);

  if (releases->len > 0)
    return g_strdup (g_ptr_array_index (releases, releases->len - 1));

  return NULL;
}

static char *
find_program (const char *env_name,
              const char * const *candidates)
{
  const char *from_env = g_getenv (env_name);

  if (from_env != NULL && *from_env != '\0')
    return g_strdup (from_env);

  for (guint i = 0; candidates[i] != NULL; i++)
    {
      char *found;

      if (g_path_is_absolute (candidates[i]))
        {
          if (g_file_test (candidates[i], G_FILE_TEST_IS_EXECUTABLE))
            return g_strdup (candidates[i]);
          continue;
        }

      found = g_find_program_in_path (candidates[i]);
      if (found != NULL)
        return found;
    }

  return NULL;
}

static char *
sysroot_file (const char *sysroot,
              const char *path,
              gboolean    executable)
{
  g_autofree char *full = g_build_filename (sysroot, path, NULL);

  if (!g_file_test (full, executable ? G_FILE_TEST_IS_EXECUTABLE : G_FILE_TEST_IS_REGULAR))
    return NULL;

  return g_steal_pointer (&full);
}

/* Another architecture's inputs all come from its sysroot: the host's
 * programs and kernel are of no use there. */
static gboolean
find_foreign_inputs (QleanMinimalInputs  *inputs,
                     GError             **error)
{
  const QleanArchInfo *info = qlean_arch_get_info (inputs->arch);
  g_autofree char *tried = NULL;
  g_autofree char *env_name = g_ascii_strup (info->name, -1);

  inputs->sysroot = qlean_arch_find_sysroot (inputs->arch, &tried);
  if (inputs->sysroot != NULL)
    {
      inputs->kernel_release = find_kernel_release (inputs->sysroot, inputs->arch, inputs->want_9p);
      if (inputs->kernel_release != NULL)
        {
          g_autofree char *kernel = g_strdup_printf ("boot/vmlinuz-%s", inputs->kernel_release);

          inputs->kernel = g_build_filename (inputs->sysroot, kernel, NULL);
          inputs->modules_dir = g_build_filename (inputs->sysroot, "lib", "modules",
                                                  inputs->kernel_release, NULL);
        }
      inputs->busybox = sysroot_file (inputs->sysroot, "bin/busybox", TRUE);
      inputs->qemu_ga = sysroot_file (inputs->sysroot, "usr/sbin/qemu-ga", TRUE);
    }
  inputs->guest = qlean_find_guest_program_for_arch (inputs->arch);

  if (inputs->sysroot == NULL && info->sysroot_by_setup)
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
                   _("The minimal %s image is built from %s Debian packages unpacked into a "
                     "sysroot, and there is none (looked in %s); make one with "
                     "“tools/setup.sh deps” as root, or point QLEAN_SYSROOT_%s at one"),
                   info->name, info->debian_name, tried, env_name);
      return FALSE;
    }
  if (inputs->sysroot == NULL)
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
                   _("The minimal %s image is built from %s Debian packages unpacked into a "
                     "sysroot, and there is none (looked in %s); unpack %s, busybox-static and "
                     "qemu-guest-agent with its libraries (dpkg-deb -x), run depmod -b on it, "
                     "and point QLEAN_SYSROOT_%s at it"),
                   info->name, info->debian_name, tried, info->kernel_package, env_name);
      return FALSE;
    }

  if (inputs->kernel == NULL || g_access (inputs->kernel, R_OK) != 0)
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
                   _("The sysroot %s has no readable kernel in boot/; unpack %s:%s into it "
                     "(tools/setup.sh deps does)"),
                   inputs->sysroot, info->kernel_package, info->debian_name);
      g_clear_pointer (&inputs->kernel, g_free);
      return FALSE;
    }

  {
    g_autofree char *modules_dep = g_build_filename (inputs->modules_dir, "modules.dep", NULL);

    if (!g_file_test (modules_dep, G_FILE_TEST_IS_REGULAR))
      {
        g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
                     _("The modules of kernel %s are missing in the sysroot (%s has no "
                       "modules.dep); rerun tools/setup.sh deps, or run depmod -b %s %s"),
                     inputs->kernel_release, inputs->modules_dir, inputs->sysroot,
                     inputs->kernel_release);
        g_clear_pointer (&inputs->modules_dir, g_free);
        return FALSE;
      }
  }

  if (inputs->busybox == NULL || inputs->qemu_ga == NULL)
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
                   _("The sysroot %s has no %s; unpack %s:%s into it (tools/setup.sh deps does)"),
                   inputs->sysroot, inputs->busybox == NULL ? "bin/busybox" : "usr/sbin/qemu-ga",
                   inputs->busybox == NULL ? "busybox-static" : "qemu-guest-agent",
                   info->debian_name);
      return FALSE;
    }

  return TRUE;
}

gboolean
qlean_minimal_find_inputs (QleanMinimalInputs  *inputs,
                           GError             **error)
{
  static const char * const busybox_candidates[] = { "/bin/busybox", "/usr/bin/busybox", "busybox", NULL };
  const char *kernel_env = g_getenv ("QLEAN_MINIMAL_KERNEL");
  const QleanArchInfo *info = qlean_arch_get_info (inputs->arch);

  if (!qlean_arch_is_host (inputs->arch))
    return find_foreign_inputs (inputs, error);

  if (kernel_env != NULL && *kernel_env != '\0')
    {
      g_autofree char *base = g_path_get_basename (kernel_env);

      inputs->kernel = g_strdup (kernel_env);
      inputs->kernel_release = g_strdup (g_getenv ("QLEAN_MINIMAL_KERNEL_RELEASE"));
      if (inputs->kernel_release == NULL && g_str_has_prefix (base, "vmlinuz-"))
        inputs->kernel_release = g_strdup (base + strlen ("vmlinuz-"));
    }
  else
    {
      inputs->kernel_release = find_kernel_release ("/", inputs->arch, inputs->want_9p);
      if (inputs->kernel_release != NULL)
        inputs->kernel = g_strdup_printf ("/boot/vmlinuz-%s", inputs->kernel_release);
      else if (inputs->want_9p)
        {
          g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
                       _("Shared folders need a guest kernel with 9p, and no kernel in /boot "
                         "has it (Debian's cloud kernel does not); install one: "
                         "apt-get install linux-image-%s"), info->debian_name);
          return FALSE;
        }
    }

  /* Look everything up first, so that a report can show all of it. */
  if (inputs->kernel_release != NULL)
    inputs->modules_dir = g_build_filename ("/lib/modules", inputs->kernel_release, NULL);
  inputs->busybox = find_program ("QLEAN_BUSYBOX", busybox_candidates);
  /* The same agent that preparing a distribution image puts in. */
  inputs->qemu_ga = qlean_find_agent_program (inputs->arch);
  inputs->guest = qlean_find_guest_program ();

  if (inputs->kernel == NULL || g_access (inputs->kernel, R_OK) != 0)
    {
      if (inputs->kernel == NULL)
        g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
                     _("The minimal image needs a readable Linux kernel in /boot (none found); "
                       "install one: apt-get install %s"),
                     info->kernel_package);
      else
        g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
                     _("The minimal image needs a readable Linux kernel in /boot (%s); "
                       "install one: apt-get install %s"),
                     inputs->kernel, info->kernel_package);
      g_clear_pointer (&inputs->kernel, g_free);
      return FALSE;
    }

  if (inputs->kernel_release == NULL)
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
                   _("Cannot tell the release of kernel %s; set QLEAN_MINIMAL_KERNEL_RELEASE"),
                   inputs->kernel);
      return FALSE;
    }

  if (!g_file_test (inputs->modules_dir, G_FILE_TEST_IS_DIR))
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
                   _("The modules of kernel %s are missing (%s); reinstall the package "
                     "that ships the kernel, e.g. apt-get install --reinstall linux-image-%s"),
                   inputs->kernel_release, inputs->modules_dir, inputs->kernel_release);
      g_clear_pointer (&inputs->modules_dir, g_free);
      return FALSE;
    }

  if (inputs->busybox == NULL)
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
                   _("The minimal image needs a static busybox; "
                     "install it: apt-get install busybox-static"));
      return FALSE;
    }

  if (inputs->qemu_ga == NULL)
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
                   _("The minimal image needs the QEMU guest agent on the host; "
                     "install it: apt-get install qemu-guest-agent"));
      return FALSE;
    }

  return TRUE;
}

static void
checksum_file_identity (GChecksum  *checksum,
                        const char *path)
{
  g_autofree char *line = NULL;
  struct stat st;

  if (stat (path, &st) != 0)
    memset (&st, 0, sizeof st);

  line = g_strdup_printf ("%s\n%llu %llu %lld.%09ld\n", path,
                          (unsigned long long) st.st_ino,
                          (unsigned long long) st.st_size,
                          (long long) st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  g_checksum_update (checksum, (const guchar *) line, strlen (line));
}

static void
checksum_resource (GChecksum  *checksum,
                   const char *resource)
{
  g_autoptr(GBytes) bytes = g_resource_lookup_data (qlean_resources (), resource, 0, NULL);
  gsize len;
  const guchar *data;

  g_assert (bytes != NULL);
  data = g_bytes_get_data (bytes, &len);
  g_checksum_update (checksum, data, len);
}

/* Everything the image is made of goes into its name in the cache, so a
 * kernel, agent or init update builds a new image and never reuses a
 * stale one. Files are identified by inode, size and mtime: cheap, and
 * any package upgrade changes them. */
static char *
qlean_minimal_cache_key (const QleanMinimalInputs *inputs)
{
  g_autoptr(GChecksum) checksum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autofree char *modules_dep = g_build_filename (inputs->modules_dir, "modules.dep", NULL);
  const char *digest;

  g_checksum_update (checksum, (const guchar *) PACKAGE_VERSION, -1);
  /* The architecture itself too: two sysroots could share file identities
   * only by accident, but the key must never let one stand for another. */
  g_checksum_update (checksum, (const guchar *) qlean_arch_get_info (inputs->arch)->name, -1);
  checksum_resource (checksum, RESOURCE_INIT);
  checksum_resource (checksum, RESOURCE_BUILDER);
  checksum_file_identity (checksum, inputs->kernel);
  checksum_file_identity (checksum, modules_dep);
  checksum_file_identity (checksum, inputs->busybox);
  checksum_file_identity (checksum, inputs->qemu_ga);
  if (inputs->guest != NULL)
    checksum_file_identity (checksum, inputs->guest);

  digest = g_checksum_get_string (checksum);
  return g_strndup (digest, 16);
}

static gboolean
write_resource (const char  *resource,
                const char  *path,
                int          mode,
                GError     **error)
{
  g_autoptr(GBytes) bytes = g_resource_lookup_data (qlean_resources (), resource, 0, error);
  gsize len;
  const char *data;

  if (bytes == NULL)
    return FALSE;

  data = g_bytes_get_data (bytes, &len);
  if (!g_file_set_contents_full (path, data, len, G_FILE_SET_CONTENTS_NONE, mode, error))
    return FALSE;

  return TRUE;
}

static gboolean
run_builder (const QleanMinimalInputs  *inputs,
             const char                *output,
             const char                *vmlinux,
             GCancellable              *cancellable,
             GError                   **error)
{
  g_autofree char *tmpdir = NULL;
  g_autofree char *init = NULL;
  g_autofree char *builder = NULL;
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) process = NULL;
  g_autofree char *log = NULL;
  g_autofree char *add_guest = NULL;
  g_autoptr(GError) local_error = NULL;
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  gboolean ok = FALSE;

  tmpdir = g_dir_make_tmp ("qlean-build-XXXXXX", error);
  if (tmpdir == NULL)
    return FALSE;

  init = g_build_filename (tmpdir, "init", NULL);
  builder = g_build_filename (tmpdir, "qlean-build-initramfs.sh", NULL);
  if (!write_resource (RESOURCE_INIT, init, 0755, error) ||
      !write_resource (RESOURCE_BUILDER, builder, 0755, error))
    goto out;

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                        G_SUBPROCESS_FLAGS_STDERR_MERGE);
  g_subprocess_launcher_setenv (launcher, "QLEAN_BUSYBOX", inputs->busybox, TRUE);
  g_subprocess_launcher_setenv (launcher, "QLEAN_QEMU_GA", inputs->qemu_ga, TRUE);
  g_ptr_array_add (argv, (char *) "bash");
  g_ptr_array_add (argv, builder);
  g_ptr_array_add (argv, (char *) "--arch");
  g_ptr_array_add (argv, (char *) qlean_arch_get_info (inputs->arch)->name);
  if (inputs->sysroot != NULL)
    {
      g_ptr_array_add (argv, (char *) "--sysroot");
      g_ptr_array_add (argv, inputs->sysroot);
    }
  g_ptr_array_add (argv, (char *) "--kernel-release");
  g_ptr_array_add (argv, inputs->kernel_release);
  g_ptr_array_add (argv, (char *) "--modules-dir");
  g_ptr_array_add (argv, inputs->modules_dir);
  g_ptr_array_add (argv, (char *) "--init");
  g_ptr_array_add (argv, init);
  g_ptr_array_add (argv, (char *) "--output");
  g_ptr_array_add (argv, (char *) output);
  if (qlean_arch_get_info (inputs->arch)->boot_vmlinux)
    {
      g_ptr_array_add (argv, (char *) "--kernel");
      g_ptr_array_add (argv, inputs->kernel);
      g_ptr_array_add (argv, (char *) "--vmlinux-output");
      g_ptr_array_add (argv, (char *) vmlinux);
    }
  if (inputs->guest != NULL)
    {
      add_guest = g_strdup_printf ("%s:/usr/lib/qlean/qlean-guest", inputs->guest);
      g_ptr_array_add (argv, (char *) "--add");
      g_ptr_array_add (argv, add_guest);
    }
  else
    /* Not an error (the stock agent serves every call), but slower
     * transfers than a user may expect: once per image built, say why. */
    g_message ("The minimal %s image is built without qlean-guest (not found: build "
               "guest/qlean-guest or set QLEAN_GUEST_BINARY); its machines use the stock "
               "guest agent alone", qlean_arch_get_info (inputs->arch)->name);
  g_ptr_array_add (argv, NULL);

  process = g_subprocess_launcher_spawnv (launcher, (const char * const *) argv->pdata, error);
  if (process == NULL)
    goto out;

  if (!g_subprocess_communicate_utf8 (process, NULL, cancellable, &log, NULL, error))
    {
      g_subprocess_force_exit (process);
      goto out;
    }

  if (!g_subprocess_get_if_exited (process) || g_subprocess_get_exit_status (process) != 0)
    {
      if (log != NULL)
        g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_BUILD_FAILED,
                     _("Building the minimal image failed: %s"), g_strstrip (log));
      else
        g_set_error_literal (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_BUILD_FAILED,
                             _("Building the minimal image failed: no output"));
      goto out;
    }

  ok = TRUE;

out:
  if (!qlean_rm_rf (tmpdir, &local_error))
    g_warning ("Could not remove %s: %s", tmpdir, local_error->message);

  return ok;
}

char *
qlean_minimal_build (const QleanMinimalInputs  *inputs,
                     char                     **kernel,
                     GCancellable              *cancellable,
                     GError                   **error)
{
  g_autofree char *key = qlean_minimal_cache_key (inputs);
  g_autofree char *dir = g_build_filename (g_get_user_cache_dir (), "qlean", "minimal", key, NULL);
  g_autofree char *output = g_build_filename (dir, "initramfs.img", NULL);
  g_autofree char *vmlinux = g_build_filename (dir, "vmlinux", NULL);
  g_autofree char *lock_path = g_build_filename (dir, ".lock", NULL);
  int lock_fd;
  gboolean ok;

  if (g_file_test (output, G_FILE_TEST_IS_REGULAR))
    goto done;

  if (g_mkdir_with_parents (dir, 0700) != 0)
    {
      int saved_errno = errno;

      qlean_set_error_from_errno (error, saved_errno,
                                  _("Could not create the image cache %s"), dir);
      return NULL;
    }

  /* Another process may be building the same image: wait for it rather
   * than build twice. The builder renames into place atomically, so a
   * reader never sees half an image either way. */
  lock_fd = g_open (lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0)
    {
      int saved_errno = errno;

      qlean_set_error_from_errno (error, saved_errno,
                                  _("Could not create %s"), lock_path);
      return NULL;
    }

  while (flock (lock_fd, LOCK_EX) != 0 && errno == EINTR)
    ;

  ok = g_file_test (output, G_FILE_TEST_IS_REGULAR) ||
       run_builder (inputs, output, vmlinux, cancellable, error);

  flock (lock_fd, LOCK_UN);
  close (lock_fd);

  if (!ok)
    return NULL;

done:
  /* The builder leaves out the uncompressed kernel when it cannot make
   * one; the compressed one boots too, a little slower. */
  *kernel = g_strdup (g_file_test (vmlinux, G_FILE_TEST_IS_REGULAR) ? vmlinux : inputs->kernel);
  return g_steal_pointer (&output);
}
