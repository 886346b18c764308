/* qlean-machine-import.c: machines made from an exported archive
 *
 * SPDX-License-Identifier: MIT
 *
 * The import side of qlean-machine-archive.c: reading the manifest
 * first (it says what machine to make, on the caller's thread), having
 * qlean-machine-manifest.c check it and refuse what an archive must not
 * ask for (host files, extra QEMU arguments nobody trusted), then
 * extracting every member into a fresh private directory, checking the
 * checksums, and starting the new machine from the saved state when
 * there is one. It is apart from the export because the two share only
 * the archive format, and the import, which reads what anyone may have
 * written, is where the care is.
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include <glib/gi18n-lib.h>
#include <json-glib/json-glib.h>

#include "qlean-archive-private.h"
#include "qlean-enums.h"
#include "qlean-error.h"
#include "qlean-host-private.h"
#include "qlean-image-private.h"
#include "qlean-json-framer-private.h"
#include "qlean-machine-archive.h"
#include "qlean-machine-manifest-private.h"
#include "qlean-machine-private.h"
#include "qlean-machine-state-template-private.h"
#include "qlean-sync-private.h"
#include "qlean-task-private.h"
#include "qlean-util-private.h"
#include "qlean-worker-private.h"
#include "qlean-errno-private.h"

typedef struct
{
  GFile        *archive;
  char         *name;
  QleanNetwork *network;
  QleanImportFlags flags;
  QleanMachine *machine;
  GBytes       *manifest;     /* as read first, to compare with the checked one */
  gboolean      has_state;
  gboolean      has_disk;
  gboolean      has_kernel;
  gboolean      has_initrd;
  char         *old_mac;
  char         *dir;          /* ours, tied to the machine */
  char         *target;       /* dir/archive: where the members go */

  /* Extraction, in a thread */
  int           target_fd;
  int           member_fd;
  char         *member;
  GByteArray   *manifest_copy;
  gboolean      seen_state;
  gboolean      seen_disk;
  gboolean      seen_kernel;
  gboolean      seen_initrd;
  char         *state_sha256; /* as read; checked once the whole archive is */
} Import;

static void
import_free (Import *import)
{
  if (import->member_fd >= 0)
    close (import->member_fd);
  if (import->target_fd >= 0)
    close (import->target_fd);
  g_clear_object (&import->archive);
  g_free (import->name);
  g_clear_object (&import->network);
  g_clear_object (&import->machine);
  g_clear_pointer (&import->manifest, g_bytes_unref);
  g_free (import->old_mac);
  g_free (import->dir);
  g_free (import->target);
  g_free (import->member);
  g_free (import->state_sha256);
  g_clear_pointer (&import->manifest_copy, g_byte_array_unref);
  g_free (import);
}

static Import *
import_new (GFile            *archive,
            const char       *name,
            QleanNetwork     *network,
            QleanImportFlags  flags)
{
  Import *import = g_new0 (Import, 1);

  import->archive = g_object_ref (archive);
  import->name = g_strdup (name);
  import->network = network ? g_object_ref (network) : NULL;
  import->flags = flags;
  import->target_fd = -1;
  import->member_fd = -1;
  return import;
}

/* Reading the manifest alone, first: it says what machine to make, and
 * the machine must be made on the caller's thread (its signals go to
 * that thread's context). */

static GQuark
stop_quark (void)
{
  return g_quark_from_static_string ("qlean-archive-stop");
}

static gboolean
manifest_begin (const char  *name,
                guint64      size,
                gpointer     user_data,
                GError     **error)
{
  GByteArray **bytes = user_data;

  *bytes = g_byte_array_sized_new (size);
  return TRUE;
}

static gboolean
manifest_data (const guint8  *data,
               gsize          len,
               gpointer       user_data,
               GError       **error)
{
  GByteArray **bytes = user_data;

  g_byte_array_append (*bytes, data, len);
  return TRUE;
}

static gboolean
manifest_end (const char  *name,
              gpointer     user_data,
              GError     **error)
{
  g_set_error_literal (error, stop_quark (), 0, "");
  return FALSE;
}

static GBytes *
read_manifest (GFile         *archive,
               GCancellable  *cancellable,
               GError       **error)
{
  static const QleanArchiveReaderFuncs funcs = { manifest_begin, manifest_data, manifest_end };
  g_autoptr(GFileInputStream) input = NULL;
  g_autoptr(GByteArray) bytes = NULL;
  GError *local_error = NULL;

  input = g_file_read (archive, cancellable, error);
  if (input == NULL)
    return NULL;

  if (qlean_archive_read (G_INPUT_STREAM (input), &funcs, &bytes, cancellable, &local_error) ||
      !g_error_matches (local_error, stop_quark (), 0))
    {
      /* A reader that returns TRUE saw no manifest: it would have
       * refused the archive first. */
      if (local_error == NULL)
        g_set_error (&local_error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_BAD_ARCHIVE,
                     _("Not a valid machine archive: it has no manifest"));
      g_propagate_error (error, local_error);
      return NULL;
    }

  g_error_free (local_error);
  return g_byte_array_free_to_bytes (g_steal_pointer (&bytes));
}


static void
remove_import_dir (gpointer data)
{
  char *dir = data;

  qlean_rm_rf (dir, NULL);
  g_free (dir);
}


/* Ours alone, 0700, and known to `qlean gc` should this process die:
 * the directory the members go into (import->target) and its parent,
 * which lives as long as the machine. */
static gboolean
import_make_dir (Import  *import,
                 GError **error)
{
  g_autofree char *prefix = g_strconcat (import->name, ".import", NULL);

  import->dir = qlean_host_make_run_dir (prefix, error);
  if (import->dir == NULL)
    return FALSE;

  import->target = g_build_filename (import->dir, "archive", NULL);
  if (g_mkdir (import->target, 0700) != 0)
    {
      int saved_errno = errno;

      qlean_set_error_from_errno (error, saved_errno,
                                  _("Cannot create %s"), import->target);
      qlean_rm_rf (import->dir, NULL);
      g_clear_pointer (&import->dir, g_free);
      return FALSE;
    }

  return TRUE;
}

/* The kernel and initrd the machine booted, from the archive, where
 * the extraction puts them before anything starts. A distribution
 * image's disk comes back as a file image: it keeps the kernel
 * parameters that went with its kernel. */
static void
import_set_boot_files (Import             *import,
                       QleanMachineConfig *config,
                       int                 kind,
                       const char         *image_cmdline)
{
  if (import->has_kernel)
    {
      g_autofree char *kernel = g_build_filename (import->target, QLEAN_ARCHIVE_KERNEL, NULL);

      qlean_machine_config_set_kernel (config, kernel);
      if (kind == QLEAN_IMAGE_KIND_DISTRO && qlean_machine_config_get_cmdline (config) == NULL)
        qlean_machine_config_set_cmdline (config, image_cmdline);
    }
  if (import->has_initrd)
    {
      g_autofree char *initrd = g_build_filename (import->target, QLEAN_ARCHIVE_INITRD, NULL);

      qlean_machine_config_set_initrd (config, initrd);
    }
}

/* Makes the machine the manifest describes, on the caller's thread. */
static gboolean
import_make_machine (Import  *import,
                     GError **error)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(QleanMachineConfig) config = NULL;
  g_autoptr(QleanImage) image = NULL;
  JsonObject *root, *image_object, *config_object;
  const char *kind_nick, *mac, *image_cmdline;
  gboolean had_network;
  int kind;

  root = qlean_manifest_root (parser, import->manifest, &image_object, &config_object, error);
  if (root == NULL)
    return FALSE;

  if (!qlean_manifest_get_optional_string (image_object, "kind", &kind_nick, error) ||
      !qlean_manifest_get_bool (root, "state", &import->has_state, error) ||
      !qlean_manifest_get_bool (root, "disk", &import->has_disk, error) ||
      !qlean_manifest_get_optional_bool (root, "kernel", &import->has_kernel, error) ||
      !qlean_manifest_get_optional_bool (root, "initrd", &import->has_initrd, error) ||
      !qlean_manifest_refuse_host_paths (image_object, TRUE, error) ||
      !qlean_manifest_get_optional_string (image_object, "cmdline", &image_cmdline, error) ||
      !qlean_manifest_get_bool (root, "network", &had_network, error) ||
      !qlean_manifest_get_optional_string (root, "mac-address", &mac, error))
    return FALSE;
  if (!qlean_manifest_enum_from_nick (QLEAN_TYPE_IMAGE_KIND, kind_nick, &kind))
    return qlean_manifest_bad (error, _("Not a valid machine archive: its manifest "
                                        "names an unknown kind of image"));
  if ((kind == QLEAN_IMAGE_KIND_MINIMAL) == import->has_disk)
    {
      if (kind == QLEAN_IMAGE_KIND_MINIMAL)
        return qlean_manifest_bad (error, _("Not a valid machine archive: its manifest gives a disk to "
                                            "the minimal image, which has none"));
      return qlean_manifest_bad (error, _("Not a valid machine archive: its manifest has no disk for an "
                                          "image that needs one"));
    }

  config = qlean_manifest_to_config (config_object, import->flags, error);
  if (config == NULL)
    return FALSE;
  if ((import->flags & QLEAN_IMPORT_FLAGS_NO_MEMORY_TEMPLATE) != 0)
    qlean_machine_config_set_memory_template (config, FALSE);

  /* The saved state holds the devices of the machine it came from: a
   * network card exactly when that machine was on a network. */
  if (import->has_state && had_network != (import->network != NULL))
    {
      g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG,
                   had_network ? _("The machine in the archive ran on a network: import it onto a "
                                   "network (a QleanNetwork), which gives it its own address")
                               : _("The machine in the archive ran without a network: import it "
                                   "without one"));
      return FALSE;
    }
  import->old_mac = g_strdup (mac);

  if (!import_make_dir (import, error))
    return FALSE;
  import_set_boot_files (import, config, kind, image_cmdline);

  /* The disk comes as a file image, self-contained (its backing chain
   * was flattened at the export). */
  if (import->has_disk)
    {
      g_autofree char *disk = g_build_filename (import->target, QLEAN_ARCHIVE_DISK, NULL);

      image = qlean_image_new_from_file (disk);
    }
  else
    image = qlean_image_new_minimal ();

  import->machine = g_object_new (QLEAN_TYPE_MACHINE,
                                  "name", import->name,
                                  "image", image,
                                  "config", config,
                                  "network", import->network,
                                  NULL);
  /* The disk lives as long as the machine. */
  g_object_set_data_full (G_OBJECT (import->machine), "qlean-import-dir",
                          g_strdup (import->dir), remove_import_dir);
  return TRUE;
}

/* Extracting: every member straight into the target directory, by a
 * name the reader has checked to be one of ours, never following or
 * replacing anything. */

static gboolean
extract_begin (const char  *name,
               guint64      size,
               gpointer     user_data,
               GError     **error)
{
  Import *import = user_data;

  g_free (import->member);
  import->member = g_strdup (name);

  if (g_str_equal (name, QLEAN_ARCHIVE_MANIFEST))
    {
      import->manifest_copy = g_byte_array_sized_new (size);
      return TRUE;
    }

  if (g_str_equal (name, QLEAN_ARCHIVE_STATE))
    import->seen_state = TRUE;
  else if (g_str_equal (name, QLEAN_ARCHIVE_DISK))
    import->seen_disk = TRUE;
  else if (g_str_equal (name, QLEAN_ARCHIVE_KERNEL))
    import->seen_kernel = TRUE;
  else if (g_str_equal (name, QLEAN_ARCHIVE_INITRD))
    import->seen_initrd = TRUE;

  import->member_fd = openat (import->target_fd, name,
                              O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (import->member_fd < 0)
    {
      int saved_errno = errno;

      qlean_set_error_from_errno (error, saved_errno,
                                  _("Cannot extract %s into %s"), name, import->target);
      return FALSE;
    }

  return TRUE;
}

static gboolean
extract_data (const guint8  *data,
              gsize          len,
              gpointer       user_data,
              GError       **error)
{
  Import *import = user_data;

  if (import->member_fd < 0)
    {
      g_byte_array_append (import->manifest_copy, data, len);
      return TRUE;
    }

  while (len > 0)
    {
      ssize_t n = write (import->member_fd, data, len);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          int saved_errno = errno;

          qlean_set_error_from_errno (error, saved_errno,
                                      _("Cannot extract %s into %s"), import->member, import->target);
          return FALSE;
        }
      data += n;
      len -= n;
    }

  return TRUE;
}

static gboolean
extract_end (const char  *name,
             gpointer     user_data,
             GError     **error)
{
  Import *import = user_data;

  if (import->member_fd >= 0)
    {
      int fd = import->member_fd;

      import->member_fd = -1;
      if (close (fd) != 0)
        {
          int saved_errno = errno;

          qlean_set_error_from_errno (error, saved_errno,
                                      _("Cannot extract %s into %s"), name, import->target);
          return FALSE;
        }
    }

  return TRUE;
}

static void
extract_digest (const char *name,
                const char *sha256,
                gpointer    user_data)
{
  Import *import = user_data;

  if (g_str_equal (name, QLEAN_ARCHIVE_STATE))
    {
      g_free (import->state_sha256);
      import->state_sha256 = g_strdup (sha256);
    }
}

static gboolean
extract_all (Import        *import,
             GCancellable  *cancellable,
             GError       **error)
{
  static const QleanArchiveReaderFuncs funcs = { extract_begin, extract_data, extract_end,
                                                  extract_digest };
  g_autoptr(GFileInputStream) input = NULL;
  g_autoptr(GDir) listing = NULL;

  import->target_fd = open (import->target, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (import->target_fd < 0)
    {
      int saved_errno = errno;

      qlean_set_error_from_errno (error, saved_errno,
                                  _("Cannot open %s"), import->target);
      return FALSE;
    }
  listing = g_dir_open (import->target, 0, error);
  if (listing == NULL)
    return FALSE;
  if (g_dir_read_name (listing) != NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                   _("Cannot import into %s: it is not empty"), import->target);
      return FALSE;
    }

  input = g_file_read (import->archive, cancellable, error);
  if (input == NULL ||
      !qlean_archive_read (G_INPUT_STREAM (input), &funcs, import, cancellable, error))
    return FALSE;

  /* What was checked must be what the machine was made from. */
  if (import->manifest_copy == NULL ||
      import->manifest_copy->len != g_bytes_get_size (import->manifest) ||
      memcmp (import->manifest_copy->data, g_bytes_get_data (import->manifest, NULL),
              import->manifest_copy->len) != 0)
    {
      g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_BAD_ARCHIVE,
                   _("The machine archive %s changed while it was being imported"),
                   g_file_peek_path (import->archive));
      return FALSE;
    }

  if (import->seen_state != import->has_state || import->seen_disk != import->has_disk ||
      import->seen_kernel != import->has_kernel || import->seen_initrd != import->has_initrd)
    return qlean_manifest_bad (error, _("Not a valid machine archive: its manifest "
                                        "does not match the members of the archive"));

  /* The export wrote a self-contained qcow2; a disk that names a backing
   * or data file would have QEMU read (or write) that file of this host
   * as the guest's disk. */
  if (import->has_disk)
    {
      g_autofree char *disk = g_build_filename (import->target, QLEAN_ARCHIVE_DISK, NULL);
      g_autofree char *format = NULL;
      GError *local_error = NULL;

      format = qlean_image_check_disk_file (disk, "qcow2", cancellable, &local_error);
      if (format == NULL &&
          (g_error_matches (local_error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_INVALID_SOURCE) ||
           g_error_matches (local_error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_PREPARE_FAILED)))
        {
          g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_BAD_ARCHIVE,
                       _("Not a valid machine archive: its disk is not the self-contained one "
                         "an export writes: %s"),
                       local_error->message);
          g_error_free (local_error);
          return FALSE;
        }
      if (format == NULL)
        {
          g_propagate_error (error, local_error);
          return FALSE;
        }
    }

  return TRUE;
}

static void
import_extract_thread (GTask        *task,
                       gpointer      source_object,
                       gpointer      task_data,
                       GCancellable *cancellable)
{
  Import *import = task_data;
  GError *error = NULL;

  if (!extract_all (import, cancellable, &error))
    {
      if (import->member_fd >= 0)
        {
          close (import->member_fd);
          import->member_fd = -1;
        }
      /* Nothing of a refused archive stays. */
      qlean_rm_rf (import->target, NULL);
      g_prefix_error (&error, _("Cannot import %s: "), g_file_peek_path (import->archive));
      g_task_return_error (task, error);
      return;
    }

  g_task_return_boolean (task, TRUE);
}

static void
import_spawned_cb (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  Import *import = g_task_get_task_data (task);
  g_autofree char *state = g_build_filename (import->target, QLEAN_ARCHIVE_STATE, NULL);
  GError *error = NULL;
  gboolean ok = qlean_machine_spawn_finish (QLEAN_MACHINE (source), result, &error);

  /* Loaded, or of no use: either way the disk space goes back. */
  g_unlink (state);
  if (!ok)
    {
      g_prefix_error (&error, _("Cannot start the machine imported from %s: "),
                      g_file_peek_path (import->archive));
      g_task_return_error (task, error);
      return;
    }

  g_task_return_pointer (task, g_steal_pointer (&import->machine), g_object_unref);
}

/* The machine starts from the extracted state, through the memory
 * template that every import of this archive shares (the first one
 * makes it, qlean-machine-state-template.c): its key is the digests of
 * the state and of the manifest that made the machine, both checked, so
 * that two archives share a template only when their machines are the
 * same machine at the same instant. */
static void
import_set_incoming (Import *import)
{
  g_autofree char *state = g_build_filename (import->target, QLEAN_ARCHIVE_STATE, NULL);
  g_autofree char *manifest_sha256 = NULL;
  g_autofree char *key = NULL;

  qlean_machine_set_incoming (import->machine, state, TRUE, import->old_mac);
  if ((import->flags & QLEAN_IMPORT_FLAGS_NO_MEMORY_TEMPLATE) != 0 || import->state_sha256 == NULL)
    return;
  manifest_sha256 = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, import->manifest);
  key = g_strdup_printf ("import %s %s", import->state_sha256, manifest_sha256);
  qlean_machine_set_incoming_shared_template (import->machine, key);
}

static void
import_extracted_cb (GObject      *source,
                     GAsyncResult *result,
                     gpointer      user_data)
{
  GTask *task = G_TASK (result);
  Import *import = g_task_get_task_data (task);
  GError *error = NULL;
  GTask *outer = user_data;

  if (!g_task_propagate_boolean (task, &error))
    {
      g_task_return_error (outer, error);
      g_object_unref (outer);
      return;
    }

  if (!import->has_state)
    {
      g_task_return_pointer (outer, g_steal_pointer (&import->machine), g_object_unref);
      g_object_unref (outer);
      return;
    }

  import_set_incoming (import);
  qlean_machine_spawn_async (import->machine, g_task_get_cancellable (outer), import_spawned_cb, outer);
}

/* Extracts and starts into the machine made from the manifest; @outer's
 * task data is the Import. */
static void
import_extract (GTask *outer)
{
  GTask *task = qlean_task_new (NULL, g_task_get_cancellable (outer), import_extracted_cb, outer,
                                import_extract, "[qlean] extract machine archive");

  g_task_set_task_data (task, g_task_get_task_data (outer), NULL);
  g_task_run_in_thread (task, import_extract_thread);
  g_object_unref (task);
}

static void
manifest_read_thread (GTask        *task,
                      gpointer      source_object,
                      gpointer      task_data,
                      GCancellable *cancellable)
{
  Import *import = task_data;
  GError *error = NULL;
  GBytes *manifest = read_manifest (import->archive, cancellable, &error);

  if (manifest == NULL)
    {
      g_prefix_error (&error, _("Cannot import %s: "), g_file_peek_path (import->archive));
      g_task_return_error (task, error);
      return;
    }

  import->manifest = manifest;
  g_task_return_boolean (task, TRUE);
}

static void
manifest_read_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  GTask *outer = user_data;
  Import *import = g_task_get_task_data (outer);
  GError *error = NULL;

  if (!g_task_propagate_boolean (G_TASK (result), &error))
    {
      g_task_return_error (outer, error);
      g_object_unref (outer);
      return;
    }
  if (!import_make_machine (import, &error))
    {
      g_prefix_error (&error, _("Cannot import %s: "), g_file_peek_path (import->archive));
      g_task_return_error (outer, error);
      g_object_unref (outer);
      return;
    }

  import_extract (outer);
}

static gboolean
check_import_name (const char  *name,
                   GError     **error)
{
  if (name == NULL || *name == '\0' || strlen (name) > 63 || strchr (name, '/') != NULL ||
      *name == '.' || *name == '-')
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   _("“%s” is not a valid machine name"), name ? name : "");
      return FALSE;
    }

  return TRUE;
}

/**
 * qlean_machine_import_full_async:
 * @archive: a file written by [method@Machine.export]
 * @name: the new machine's name, also its hostname
 * @network: (nullable): the network to put the machine on; needed exactly
 *   when the exported machine ran on one and its state is in the archive
 * @flags: what to take from the archive beyond what is always safe
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the machine
 * @user_data: data for @callback
 *
 * Makes a new machine from an archive. When the archive holds a running
 * machine's state, the new machine runs from it, with its programs and
 * files as they were at the export, and with an identity of its own: its
 * name as hostname, a new machine-id and fresh randomness, the guest
 * clock set from the host's, and on @network its own address. Otherwise
 * the machine is made but not started.
 *
 * The archive is checked before anything of it is used: it must be an
 * archive made by Qlean, whole, with every SHA-256 in its `SHA256SUMS`
 * matching, and with nothing but its own regular files: absolute paths,
 * `..`, links, devices, directories and unknown members are refused, as
 * are oversized members. It is extracted into a fresh private directory
 * that lives as long as the machine; on any failure
 * (%QLEAN_MACHINE_ERROR_BAD_ARCHIVE for a bad archive) that directory is
 * removed and nothing is written anywhere else.
 *
 * The checksums prove an archive whole, not who made it, so the import
 * takes from its manifest only what cannot reach the host: the machine's
 * size, kernel parameters and network. The kernel, initrd and disk it
 * boots are those inside the archive; a manifest that names a file of
 * the host instead (as archives of format 1 did) is refused. Extra QEMU
 * arguments ([property@MachineConfig:extra-args]) are a command line
 * that can give the guest any host file: an archive that has some is
 * refused unless @flags has %QLEAN_IMPORT_FLAGS_TRUST_EXTRA_ARGS.
 *
 * The machines imported from one archive on this host share the memory
 * of its saved state until they write to it: the first import stores a
 * memory template of the state in the user's cache (see
 * [property@MachineConfig:memory-template]; made only from the checked
 * state, and named by its digest), which the next imports map instead
 * of loading the whole state into memory of their own. The cache keeps
 * the templates of the last few archives. %QLEAN_IMPORT_FLAGS_NO_MEMORY_TEMPLATE
 * loads the state the old way.
 *
 * Since: 0.1
 */
void
qlean_machine_import_full_async (GFile               *archive,
                                 const char          *name,
                                 QleanNetwork        *network,
                                 QleanImportFlags     flags,
                                 GCancellable        *cancellable,
                                 GAsyncReadyCallback  callback,
                                 gpointer             user_data)
{
  GTask *task;
  GTask *read_task;
  GError *error = NULL;

  g_return_if_fail (G_IS_FILE (archive));
  g_return_if_fail (network == NULL || QLEAN_IS_NETWORK (network));

  task = qlean_task_new (NULL, cancellable, callback, user_data, qlean_machine_import_full_async,
                         "[qlean] import machine");
  g_task_set_task_data (task, import_new (archive, name, network, flags), (GDestroyNotify) import_free);

  if (!check_import_name (name, &error))
    {
      g_task_return_error (task, error);
      g_object_unref (task);
      return;
    }

  read_task = qlean_task_new (NULL, cancellable, manifest_read_cb, task, manifest_read_thread,
                              "[qlean] read machine manifest");
  g_task_set_task_data (read_task, g_task_get_task_data (task), NULL);
  g_task_run_in_thread (read_task, manifest_read_thread);
  g_object_unref (read_task);
}

/**
 * qlean_machine_import_full_finish:
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the new machine, or %NULL with @error set
 *
 * Since: 0.1
 */
QleanMachine *
qlean_machine_import_full_finish (GAsyncResult  *result,
                                  GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_import_full_async), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * qlean_machine_import_full:
 * @archive: a file written by [method@Machine.export]
 * @name: the new machine's name, also its hostname
 * @network: (nullable): the network to put the machine on
 * @flags: what to take from the archive beyond what is always safe
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_import_full_async().
 *
 * Returns: (transfer full): the new machine, or %NULL with @error set
 *
 * Since: 0.1
 */
QleanMachine *
qlean_machine_import_full (GFile             *archive,
                           const char        *name,
                           QleanNetwork      *network,
                           QleanImportFlags   flags,
                           GCancellable      *cancellable,
                           GError           **error)
{
  g_auto(QleanSyncCall) call = { 0 };
  GTask *task;
  Import *import;

  g_return_val_if_fail (G_IS_FILE (archive), NULL);
  g_return_val_if_fail (network == NULL || QLEAN_IS_NETWORK (network), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!check_import_name (name, error))
    return NULL;

  /* The machine is made here, before the private context of the wait is
   * pushed, so that its signals go to the caller's context. */
  import = import_new (archive, name, network, flags);
  import->manifest = read_manifest (archive, cancellable, error);
  if (import->manifest == NULL || !import_make_machine (import, error))
    {
      g_prefix_error (error, _("Cannot import %s: "), g_file_peek_path (archive));
      import_free (import);
      return NULL;
    }

  if (!qlean_sync_call_begin (&call, error))
    {
      import_free (import);
      return NULL;
    }
  task = qlean_task_new (NULL, cancellable, qlean_sync_call_done, &call,
                         qlean_machine_import_full_async, "[qlean] import machine");
  g_task_set_task_data (task, import, (GDestroyNotify) import_free);
  import_extract (task);

  return qlean_machine_import_full_finish (qlean_sync_call_wait (&call), error);
}

/**
 * qlean_machine_import_async:
 * @archive: a file written by [method@Machine.export]
 * @name: the new machine's name, also its hostname
 * @network: (nullable): the network to put the machine on; needed exactly
 *   when the exported machine ran on one and its state is in the archive
 * @cancellable: (nullable): a #GCancellable
 * @callback: called with the machine
 * @user_data: data for @callback
 *
 * qlean_machine_import_full_async() with %QLEAN_IMPORT_FLAGS_NONE: an
 * archive that asks for extra QEMU arguments is refused.
 *
 * Since: 0.1
 */
void
qlean_machine_import_async (GFile               *archive,
                            const char          *name,
                            QleanNetwork        *network,
                            GCancellable        *cancellable,
                            GAsyncReadyCallback  callback,
                            gpointer             user_data)
{
  qlean_machine_import_full_async (archive, name, network, QLEAN_IMPORT_FLAGS_NONE,
                                   cancellable, callback, user_data);
}

/**
 * qlean_machine_import_finish:
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the new machine, or %NULL with @error set
 *
 * Since: 0.1
 */
QleanMachine *
qlean_machine_import_finish (GAsyncResult  *result,
                             GError       **error)
{
  return qlean_machine_import_full_finish (result, error);
}

/**
 * qlean_machine_import:
 * @archive: a file written by [method@Machine.export]
 * @name: the new machine's name, also its hostname
 * @network: (nullable): the network to put the machine on
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_import_async():
 * qlean_machine_import_full() with %QLEAN_IMPORT_FLAGS_NONE.
 *
 * Returns: (transfer full): the new machine, or %NULL with @error set
 *
 * Since: 0.1
 */
QleanMachine *
qlean_machine_import (GFile         *archive,
                      const char    *name,
                      QleanNetwork  *network,
                      GCancellable  *cancellable,
                      GError       **error)
{
  return qlean_machine_import_full (archive, name, network, QLEAN_IMPORT_FLAGS_NONE,
                                    cancellable, error);
}
