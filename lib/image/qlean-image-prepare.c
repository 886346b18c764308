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

#include "qlean-image-prepare-private.h"
#include "qlean-arch-private.h"
#include "qlean-error.h"
#include "qlean-host-private.h"
#include "qlean-image-download-private.h"
#include "qlean-image-guestfs-private.h"
#include "qlean-image-private.h"
#include "qlean-resources.h"
#include "qlean-util-private.h"
#include "qlean-errno-private.h"

/* Bump whenever what preparation does changes, so that images prepared
 * by an older Qlean are prepared again. */
#define PREPARE_VERSION 1

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

/* qlean-guest for a guest of @arch: the host's own build, or the one
 * cross-compiled for @arch (qlean-guest-aarch64). */
static char *
find_guest_binary_for_arch (QleanArch   arch,
                            GError    **error)
{
  const QleanArchInfo *info = qlean_arch_get_info (arch);
  g_autofree char *env_name = NULL;
  char *path;

  if (qlean_arch_is_host (arch))
    return qlean_find_guest_binary (error);

  path = qlean_find_guest_program_for_arch (arch);
  if (path != NULL)
    return path;

  env_name = g_ascii_strup (info->name, -1);
  g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
               _("Qlean's guest program for %s guests, qlean-guest-%s, is missing; build Qlean "
                 "with the cross compiler installed (Debian: %s), or set "
                 "QLEAN_GUEST_BINARY_%s to a static %s build of guest/qlean-guest.c"),
               info->name, info->name, info->cross_compiler_package, env_name, info->name);
  return NULL;
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
 * on how; all of it goes into the cache key. The architecture is in the
 * directory above the key (prepared/<arch>/<name>/<key>). */
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

  resources = g_resource_enumerate_children (qlean_resources (), QLEAN_PREPARE_RESOURCE_DIR, 0, NULL);
  for (guint i = 0; resources != NULL && resources[i] != NULL; i++)
    {
      g_autofree char *path = g_strconcat (QLEAN_PREPARE_RESOURCE_DIR, resources[i], NULL);
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

static gboolean
write_prepared_info (const char          *dir,
                     const char          *input_digest,
                     QleanPrepareResult  *result,
                     GError             **error)
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
  json_builder_set_member_name (builder, "boot");
  json_builder_add_string_value (builder, result->uefi_boot ? "uefi" : "kernel");
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

  /* "uefi": no kernel was taken out, the image boots its own loader. */
  if (g_strcmp0 (json_object_get_string_member_with_default (object, "boot", "kernel"), "uefi") != 0)
    {
      prepared->kernel = g_build_filename (dir, "vmlinuz", NULL);
      prepared->initrd = g_build_filename (dir, "initrd.img", NULL);
    }
  prepared->disk = g_build_filename (dir, "disk.qcow2", NULL);
  prepared->cmdline = g_strdup (cmdline);
  prepared->cloud_init = json_object_get_boolean_member_with_default (object, "cloud-init", FALSE);

  if ((prepared->kernel != NULL && !g_file_test (prepared->kernel, G_FILE_TEST_IS_REGULAR)) ||
      (prepared->initrd != NULL && !g_file_test (prepared->initrd, G_FILE_TEST_IS_REGULAR)) ||
      !g_file_test (prepared->disk, G_FILE_TEST_IS_REGULAR))
    {
      qlean_prepared_clear (prepared);
      return FALSE;
    }

  return TRUE;
}

static gboolean
build_prepared (QleanArch        arch,
                const char      *input,
                const char      *input_format,
                const char      *input_digest,
                const char      *tmp,
                const char      *guest_binary,
                QleanHostAgent  *agent,
                GCancellable    *cancellable,
                GError         **error)
{
  g_autofree char *disk = g_build_filename (tmp, "disk.qcow2", NULL);
  g_auto(QleanPrepareResult) result = { 0 };
  const char *format = input_format ? input_format : is_qcow2 (input) ? "qcow2" : "raw";
  const char *convert[] = { "qemu-img", "convert", "-q", "-f", format, "-O", "qcow2", input, disk, NULL };

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

  return qlean_image_prepare_in_guestfs (arch, disk, input, tmp, guest_binary, agent, &result,
                                         cancellable, error) &&
         write_prepared_info (tmp, input_digest, &result, error);
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
  g_auto(QleanHostAgent) agent = { 0 };
  g_autofree char *guest_binary = NULL;
  g_autofree char *key = NULL;
  g_autofree char *parent = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *lock_path = NULL;
  g_autofree char *tmp = NULL;
  g_autoptr(GError) cleanup_error = NULL;
  QleanArch guest_arch;
  gboolean ok;
  int lock_fd;

  /* The catalog and custom sources only ever hold known names. */
  if (!qlean_arch_from_string (arch, &guest_arch))
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_UNSUPPORTED_ARCH,
                   _("The image %s is for the architecture “%s”, which Qlean does not know"),
                   name, arch);
      return FALSE;
    }

  guest_binary = find_guest_binary_for_arch (guest_arch, error);
  if (guest_binary == NULL)
    return FALSE;
  agent.qemu_ga = qlean_find_agent_program (guest_arch);

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

  ok = build_prepared (guest_arch, input, input_format, input_digest, tmp, guest_binary, &agent, cancellable, error);
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
