/* qlean-machine-archive.c: machines exported to, and imported from, one file
 *
 * SPDX-License-Identifier: MIT
 *
 * An export is a ustar archive (qlean-archive.c): a manifest saying what
 * the machine is (image, configuration), its disk when it has one, the
 * saved state of a running machine, and SHA256SUMS. Importing it makes a
 * new machine, which runs from that state when there is one: the same
 * mechanism as a clone (qlean-machine-snapshot.c), but across hosts and
 * time, so the import is careful: it extracts into a fresh private
 * directory of its own, checks everything, and leaves nothing behind
 * when any check fails.
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
#include "qlean-machine-private.h"
#include "qlean-sync-private.h"
#include "qlean-util-private.h"
#include "qlean-worker-private.h"
#include "qlean-errno-private.h"

/* A machine's own disk is the qcow2 overlay it keeps in its state
 * directory from its first start on (qlean_machine_ensure_overlay); a
 * machine that never started has only its image's. */
#define OWN_DISK "disks/disk.qcow2"

static const char *
enum_nick (GType type,
           int   value)
{
  g_autoptr(GEnumClass) klass = g_type_class_ref (type);
  GEnumValue *found = g_enum_get_value (klass, value);

  return found ? found->value_nick : NULL;
}

static gboolean
enum_from_nick (GType       type,
                const char *nick,
                int        *value)
{
  g_autoptr(GEnumClass) klass = g_type_class_ref (type);
  GEnumValue *found = nick ? g_enum_get_value_by_nick (klass, nick) : NULL;

  if (found == NULL)
    return FALSE;

  *value = found->value;
  return TRUE;
}

static void
add_string_or_null (JsonBuilder *builder,
                    const char  *member,
                    const char  *value)
{
  json_builder_set_member_name (builder, member);
  if (value != NULL)
    json_builder_add_string_value (builder, value);
  else
    json_builder_add_null_value (builder);
}

static GBytes *
build_manifest (QleanMachine *self,
                gboolean      with_state,
                gboolean      with_disk,
                gboolean      with_kernel,
                gboolean      with_initrd)
{
  QleanImage *image = qlean_machine_get_image (self);
  QleanMachineConfig *config = qlean_machine_get_config (self);
  const char * const *extra_args = qlean_machine_config_get_extra_args (config);
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  g_autoptr(JsonNode) root = NULL;
  g_autofree char *mac = qlean_machine_dup_mac_address (self);
  char *text;
  gsize len;

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "format");
  json_builder_add_int_value (builder, QLEAN_ARCHIVE_FORMAT_VERSION);
  json_builder_set_member_name (builder, "qlean-version");
  json_builder_add_string_value (builder, PACKAGE_VERSION);
  json_builder_set_member_name (builder, "name");
  json_builder_add_string_value (builder, qlean_machine_get_name (self));
  json_builder_set_member_name (builder, "created");
  json_builder_add_int_value (builder, g_get_real_time () / G_USEC_PER_SEC);

  json_builder_set_member_name (builder, "image");
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "kind");
  json_builder_add_string_value (builder, enum_nick (QLEAN_TYPE_IMAGE_KIND, qlean_image_get_kind (image)));
  add_string_or_null (builder, "name", qlean_image_get_name (image));
  /* The command line that goes with the kernel a distribution image
   * boots; the kernel and initrd themselves are members of the archive
   * (see export_boot_files). */
  if (qlean_image_get_kind (image) == QLEAN_IMAGE_KIND_DISTRO)
    add_string_or_null (builder, "cmdline", qlean_image_get_cmdline (image));
  json_builder_end_object (builder);

  json_builder_set_member_name (builder, "config");
  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "cores");
  json_builder_add_int_value (builder, qlean_machine_config_get_cores (config));
  json_builder_set_member_name (builder, "memory-mib");
  json_builder_add_int_value (builder, qlean_machine_config_get_memory_mib (config));
  json_builder_set_member_name (builder, "disk-gib");
  json_builder_add_int_value (builder, qlean_machine_config_get_disk_gib (config));
  json_builder_set_member_name (builder, "accel");
  json_builder_add_string_value (builder, enum_nick (QLEAN_TYPE_ACCEL, qlean_machine_config_get_accel (config)));
  add_string_or_null (builder, "cmdline", qlean_machine_config_get_cmdline (config));
  add_string_or_null (builder, "bridge", qlean_machine_config_get_bridge (config));
  json_builder_set_member_name (builder, "fast-start");
  json_builder_add_boolean_value (builder, qlean_machine_config_get_fast_start (config));
  json_builder_set_member_name (builder, "extra-args");
  json_builder_begin_array (builder);
  for (guint i = 0; extra_args != NULL && extra_args[i] != NULL; i++)
    json_builder_add_string_value (builder, extra_args[i]);
  json_builder_end_array (builder);
  json_builder_end_object (builder);

  json_builder_set_member_name (builder, "state");
  json_builder_add_boolean_value (builder, with_state);
  json_builder_set_member_name (builder, "disk");
  json_builder_add_boolean_value (builder, with_disk);
  json_builder_set_member_name (builder, "kernel");
  json_builder_add_boolean_value (builder, with_kernel);
  json_builder_set_member_name (builder, "initrd");
  json_builder_add_boolean_value (builder, with_initrd);
  /* A saved state holds the network card, if any: the importing machine
   * needs one too, and the guest's card keeps this address until the
   * new machine's identity replaces it. */
  json_builder_set_member_name (builder, "network");
  json_builder_add_boolean_value (builder, qlean_machine_get_network (self) != NULL);
  add_string_or_null (builder, "mac-address", mac);
  json_builder_end_object (builder);

  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  json_generator_set_pretty (generator, TRUE);
  text = json_generator_to_data (generator, &len);

  return g_bytes_new_take (text, len);
}

static gboolean
convert_disk (const char    *source,
              const char    *format,
              const char    *destination,
              GCancellable  *cancellable,
              GError       **error)
{
  g_autofree char *qemu_img = g_find_program_in_path ("qemu-img");
  g_autoptr(GSubprocess) process = NULL;

  if (qemu_img == NULL)
    {
      g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_QEMU_NOT_FOUND,
                   _("Cannot archive the machine's disk: qemu-img is not installed "
                     "(Debian package qemu-utils)"));
      return FALSE;
    }

  /* One self-contained qcow2, whatever backing chain the disk has; -U
   * because QEMU may still hold the image (its guest is stopped). The
   * format is the one Qlean made or checked the disk in, never probed. */
  process = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_PIPE,
                              error, qemu_img, "convert", "-U", "-f", format, "-O", "qcow2",
                              source, destination, NULL);
  if (process == NULL)
    return FALSE;

  {
    g_autofree char *err = NULL;

    if (!g_subprocess_communicate_utf8 (process, NULL, cancellable, NULL, &err, error))
      return FALSE;
    if (!g_subprocess_get_successful (process))
      {
        g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
                     _("Cannot archive the machine's disk %s: qemu-img failed: %s"),
                     source, err ? g_strstrip (err) : "");
        return FALSE;
      }
  }

  return TRUE;
}

/* Export */

typedef struct
{
  GFile           *archive;
  GBytes          *manifest;
  char            *work_dir;      /* private, in the machine's state dir */
  char            *state_path;    /* NULL for a machine that does not run */
  char            *disk_source;   /* NULL for none */
  const char      *disk_format;   /* of disk_source */
  char            *disk_path;
  char            *kernel_path;   /* the kernel and initrd the machine boots, or NULL */
  char            *initrd_path;
  gboolean         was_running;
  gboolean         frozen;
  QleanQgaClient  *qga;
  QleanQmpClient  *qmp;
} Export;

static void
export_free (Export *export)
{
  if (export->work_dir != NULL)
    qlean_rm_rf (export->work_dir, NULL);
  g_free (export->work_dir);
  g_free (export->state_path);
  g_free (export->disk_source);
  g_free (export->disk_path);
  g_free (export->kernel_path);
  g_free (export->initrd_path);
  g_clear_pointer (&export->manifest, g_bytes_unref);
  g_clear_object (&export->archive);
  g_clear_object (&export->qga);
  g_clear_object (&export->qmp);
  g_free (export);
}

static gboolean
write_archive (Export        *export,
               GCancellable  *cancellable,
               GError       **error)
{
  g_autoptr(GFile) parent = g_file_get_parent (export->archive);
  g_autofree char *basename = g_file_get_basename (export->archive);
  g_autofree char *tmp_name = NULL;
  g_autoptr(GFile) tmp = NULL;
  g_autoptr(GFileOutputStream) output = NULL;
  g_autoptr(QleanArchiveWriter) writer = NULL;
  GOutputStream *stream;
  gboolean ok;

  if (parent == NULL || basename == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_FILENAME,
                   _("Cannot export a machine to %s: give a file name"),
                   g_file_peek_path (export->archive));
      return FALSE;
    }

  /* Beside the target, so that the final move is a rename and a reader
   * never sees half an archive. */
  tmp_name = g_strdup_printf (".%s.%08x.part", basename, g_random_int ());
  tmp = g_file_get_child (parent, tmp_name);
  output = g_file_create (tmp, G_FILE_CREATE_PRIVATE, cancellable, error);
  if (output == NULL)
    return FALSE;
  stream = G_OUTPUT_STREAM (output);
  writer = qlean_archive_writer_new (stream);

  ok = qlean_archive_writer_add_bytes (writer, QLEAN_ARCHIVE_MANIFEST, export->manifest, cancellable, error) &&
       (export->disk_path == NULL ||
        qlean_archive_writer_add_file (writer, QLEAN_ARCHIVE_DISK, export->disk_path, cancellable, error)) &&
       (export->kernel_path == NULL ||
        qlean_archive_writer_add_file (writer, QLEAN_ARCHIVE_KERNEL, export->kernel_path, cancellable, error)) &&
       (export->initrd_path == NULL ||
        qlean_archive_writer_add_file (writer, QLEAN_ARCHIVE_INITRD, export->initrd_path, cancellable, error)) &&
       (export->state_path == NULL ||
        qlean_archive_writer_add_file (writer, QLEAN_ARCHIVE_STATE, export->state_path, cancellable, error)) &&
       qlean_archive_writer_finish (writer, cancellable, error) &&
       g_output_stream_close (stream, cancellable, error) &&
       g_file_move (tmp, export->archive, G_FILE_COPY_OVERWRITE, cancellable, NULL, NULL, error);

  if (!ok)
    {
      g_output_stream_close (stream, NULL, NULL);
      g_file_delete (tmp, NULL, NULL);
    }

  return ok;
}

/* Worker thread. After a save with a disk the guest was left stopped
 * (and its file systems frozen) for the disk copy: let it run on. */
static void
export_resume (GTask *task)
{
  QleanMachine *self = g_task_get_source_object (task);
  Export *export = g_task_get_task_data (task);

  if (export->disk_source != NULL && export->was_running && export->qmp != NULL)
    {
      qlean_qmp_client_execute_async (export->qmp, "cont", NULL, NULL, NULL, NULL);
      qlean_machine_fix_clock (self);
    }
  if (export->frozen && export->qga != NULL)
    {
      export->frozen = FALSE;
      qlean_qga_client_execute_async (export->qga, "guest-fsfreeze-thaw", NULL, NULL, NULL, NULL);
    }
}

static gboolean
export_resume_in_worker (gpointer user_data)
{
  export_resume (user_data);
  return G_SOURCE_REMOVE;
}

static void
export_write_thread (GTask        *task,
                     gpointer      source_object,
                     gpointer      task_data,
                     GCancellable *cancellable)
{
  Export *export = task_data;
  GError *error = NULL;
  gboolean ok = TRUE;

  /* Copied while the guest stands still (a running machine's, which
   * waits here for it) or does not run at all, the disk matches the
   * saved memory. */
  if (export->disk_path != NULL)
    {
      ok = convert_disk (export->disk_source, export->disk_format, export->disk_path, cancellable, &error);
      if (export->state_path != NULL)
        qlean_worker_invoke (export_resume_in_worker, g_object_ref (task), g_object_unref);
    }

  if (ok && !write_archive (export, cancellable, &error))
    g_prefix_error (&error, _("Cannot export machine “%s” to %s: "),
                    qlean_machine_get_name (QLEAN_MACHINE (source_object)),
                    g_file_peek_path (export->archive));

  if (error != NULL)
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
}

static void
export_saved_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  GError *error = NULL;

  if (!qlean_machine_save_state_finish (QLEAN_MACHINE (source), result, &error))
    {
      export_resume (task);
      g_task_return_error (task, error);
      return;
    }

  g_task_run_in_thread (task, export_write_thread);
}

static void
export_save (GTask *task)
{
  QleanMachine *self = g_task_get_source_object (task);
  Export *export = g_task_get_task_data (task);

  qlean_machine_save_state_async (self, export->state_path, export->disk_source != NULL,
                                  g_task_get_cancellable (task), export_saved_cb,
                                  g_object_ref (task));
}

static void
export_frozen_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  Export *export = g_task_get_task_data (task);
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;

  /* Best effort: a guest without fsfreeze still gets a consistent
   * disk, as the copy happens while it is stopped; freezing only also
   * flushes what its file systems cached. */
  reply = qlean_qga_client_execute_finish (QLEAN_QGA_CLIENT (source), result, &error);
  if (reply != NULL)
    export->frozen = TRUE;
  else
    g_debug ("export: no fsfreeze in the guest: %s", error->message);

  export_save (task);
}

static gboolean
export_in_worker (gpointer user_data)
{
  GTask *task = user_data;
  Export *export = g_task_get_task_data (task);

  if (export->disk_source != NULL && export->was_running && export->qga != NULL)
    {
      qlean_qga_client_execute_async (export->qga, "guest-fsfreeze-freeze", NULL, NULL,
                                      export_frozen_cb, g_object_ref (task));
      return G_SOURCE_REMOVE;
    }

  export_save (task);
  return G_SOURCE_REMOVE;
}

/* The kernel and initrd the machine boots, as QEMU is given them
 * (qlean_machine_resolve_spec): the configuration's, else a
 * distribution image's. They go into the archive, so that the import
 * never opens a path on its host that the archive names. The minimal
 * image's are left out: the importing host builds its own. */
static void
export_boot_files (QleanMachine *self,
                   Export       *export)
{
  QleanMachineConfig *config = qlean_machine_get_config (self);
  QleanImage *image = qlean_machine_get_image (self);
  gboolean image_files = qlean_image_get_kind (image) != QLEAN_IMAGE_KIND_MINIMAL;
  const char *kernel = qlean_machine_config_get_kernel (config);
  const char *initrd = qlean_machine_config_get_initrd (config);

  if (kernel == NULL && image_files)
    kernel = qlean_image_get_kernel (image);
  if (initrd == NULL && image_files)
    initrd = qlean_image_get_initrd (image);

  export->kernel_path = g_strdup (kernel);
  export->initrd_path = g_strdup (initrd);
}

/**
 * qlean_machine_export_async:
 * @self: a #QleanMachine
 * @archive: the file to write; replaced if it exists
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when the archive is written
 * @user_data: data for @callback
 *
 * Writes the machine into one portable file that
 * [func@Machine.import] turns back into a machine: a tar archive holding
 * `manifest.json` (the image and the configuration), the machine's disk
 * when it has one, and `SHA256SUMS`. A running (or paused) machine's
 * memory and device state go in too, saved while its guest stands still
 * for a moment (and, with a disk, with its file systems frozen through
 * the agent while the disk is copied), so the archive is one consistent
 * instant; the machine then runs on. Without a disk the archive of the
 * minimal image is about as large as the memory the guest uses.
 *
 * The archive is written beside @archive and renamed into place, mode
 * 0600: it holds the guest's memory. A machine that is starting cannot
 * be exported (%QLEAN_MACHINE_ERROR_INVALID_STATE), nor one that is only
 * attached ([func@Machine.attach]).
 */
void
qlean_machine_export_async (QleanMachine        *self,
                            GFile               *archive,
                            GCancellable        *cancellable,
                            GAsyncReadyCallback  callback,
                            gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  QleanMachineState state;
  Export *export;
  GError *error = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *template = NULL;

  g_return_if_fail (QLEAN_IS_MACHINE (self));
  g_return_if_fail (G_IS_FILE (archive));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, qlean_machine_export_async);
  g_task_set_name (task, "[qlean] export machine");
  export = g_new0 (Export, 1);
  export->archive = g_object_ref (archive);
  g_task_set_task_data (task, export, (GDestroyNotify) export_free);

  state = qlean_machine_get_state (self);
  export->qmp = qlean_machine_dup_qmp (self);
  export->qga = qlean_machine_dup_qga (self);
  if (state == QLEAN_MACHINE_STATE_STARTING ||
      ((state == QLEAN_MACHINE_STATE_RUNNING || state == QLEAN_MACHINE_STATE_PAUSED) &&
       export->qmp == NULL))
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE,
                               export->qmp == NULL && state != QLEAN_MACHINE_STATE_STARTING
                               ? _("Cannot export machine “%s”: it is owned by another process; "
                                   "export it there")
                               : _("Cannot export machine “%s”: it is %s; wait until it runs"),
                               qlean_machine_get_name (self), qlean_machine_state_to_string (state));
      return;
    }

  /* Its state would hold a card whose address and lease belong to
   * the host bridge's DHCP server: export it stopped instead. */
  if ((state == QLEAN_MACHINE_STATE_RUNNING || state == QLEAN_MACHINE_STATE_PAUSED) &&
      qlean_machine_config_get_bridge (qlean_machine_get_config (self)) != NULL)
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE,
                               _("Cannot export machine “%s” while it runs on host bridge %s: "
                                 "shut it down first (the archive then holds its disks and "
                                 "configuration, bridge included)"),
                               qlean_machine_get_name (self),
                               qlean_machine_config_get_bridge (qlean_machine_get_config (self)));
      return;
    }

  dir = qlean_machine_ensure_state_dir (self, "export", &error);
  if (dir != NULL)
    {
      template = g_build_filename (dir, "XXXXXX", NULL);
      if (g_mkdtemp_full (template, 0700) != NULL)
        export->work_dir = g_steal_pointer (&template);
      else
        error = qlean_error_new_from_errno (errno,
                                            _("Cannot create a directory in %s"), dir);
    }
  if (error != NULL)
    {
      g_task_return_error (task, error);
      return;
    }

  {
    g_autofree char *state_root = g_path_get_dirname (dir);
    g_autofree char *own_disk = g_build_filename (state_root, OWN_DISK, NULL);

    if (g_file_test (own_disk, G_FILE_TEST_IS_REGULAR))
      {
        export->disk_source = g_steal_pointer (&own_disk);
        export->disk_format = "qcow2";
      }
    else if (qlean_image_get_disk (qlean_machine_get_image (self)) != NULL)
      {
        export->disk_source = g_strdup (qlean_image_get_disk (qlean_machine_get_image (self)));
        export->disk_format = qlean_image_get_disk_format (qlean_machine_get_image (self));
      }
  }
  if (state == QLEAN_MACHINE_STATE_RUNNING || state == QLEAN_MACHINE_STATE_PAUSED)
    {
      export->was_running = state == QLEAN_MACHINE_STATE_RUNNING;
      export->state_path = g_build_filename (export->work_dir, QLEAN_ARCHIVE_STATE, NULL);
    }

  if (export->disk_source != NULL)
    export->disk_path = g_build_filename (export->work_dir, QLEAN_ARCHIVE_DISK, NULL);
  else if (qlean_image_get_kind (qlean_machine_get_image (self)) != QLEAN_IMAGE_KIND_MINIMAL)
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE,
                               _("Cannot export machine “%s”: its image has no disk yet; "
                                 "start the machine or prepare its image first"),
                               qlean_machine_get_name (self));
      return;
    }
  export_boot_files (self, export);
  export->manifest = build_manifest (self, export->state_path != NULL, export->disk_source != NULL,
                                     export->kernel_path != NULL, export->initrd_path != NULL);

  if (export->state_path != NULL)
    qlean_worker_invoke (export_in_worker, g_steal_pointer (&task), g_object_unref);
  else
    g_task_run_in_thread (task, export_write_thread);
}

/**
 * qlean_machine_export_finish:
 * @self: a #QleanMachine
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: %TRUE when the archive is written
 */
gboolean
qlean_machine_export_finish (QleanMachine  *self,
                             GAsyncResult  *result,
                             GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_machine_export:
 * @self: a #QleanMachine
 * @archive: the file to write; replaced if it exists
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_machine_export_async().
 *
 * Returns: %TRUE when the archive is written
 */
gboolean
qlean_machine_export (QleanMachine  *self,
                      GFile         *archive,
                      GCancellable  *cancellable,
                      GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  qlean_sync_call_init (&call);
  qlean_machine_export_async (self, archive, cancellable, qlean_sync_call_done, &call);

  return qlean_machine_export_finish (self, qlean_sync_call_wait (&call), error);
}

/* Import */

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

static gboolean
bad_manifest (GError     **error,
              const char  *what)
{
  g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_BAD_ARCHIVE,
               _("Not a valid machine archive: its manifest %s"), what);
  return FALSE;
}

static gboolean
get_uint_member (JsonObject  *object,
                 const char  *member,
                 guint        max,
                 guint       *value,
                 GError     **error)
{
  JsonNode *node = json_object_get_member (object, member);
  gint64 v;

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64 ||
      (v = json_node_get_int (node)) < 0 || v > max)
    {
      g_autofree char *what = g_strdup_printf (_("has no valid “%s” (0 to %u)"), member, max);

      return bad_manifest (error, what);
    }

  *value = (guint) v;
  return TRUE;
}

static gboolean
get_optional_string (JsonObject   *object,
                     const char   *member,
                     const char  **value,
                     GError      **error)
{
  JsonNode *node = json_object_get_member (object, member);

  *value = NULL;
  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    {
      g_autofree char *what = g_strdup_printf (_("has a “%s” that is not a string"), member);

      return bad_manifest (error, what);
    }

  *value = json_node_get_string (node);
  return TRUE;
}

static gboolean
get_bool_member (JsonObject  *object,
                 const char  *member,
                 gboolean    *value,
                 GError     **error)
{
  JsonNode *node = json_object_get_member (object, member);

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_BOOLEAN)
    {
      g_autofree char *what = g_strdup_printf (_("has no valid “%s”"), member);

      return bad_manifest (error, what);
    }

  *value = json_node_get_boolean (node);
  return TRUE;
}

static gboolean
get_optional_bool (JsonObject  *object,
                   const char  *member,
                   gboolean    *value,
                   GError     **error)
{
  *value = FALSE;
  return !json_object_has_member (object, member) || get_bool_member (object, member, value, error);
}

/* Format 1 named the kernel and initrd by their paths on the exporting
 * host. An import never opens a host file that an archive names (it
 * could be anyone's: ~/.ssh/id_rsa as an "initrd" is in the guest's
 * memory at boot), so a manifest that names one is refused whole rather
 * than half-used. */
static gboolean
refuse_host_paths (JsonObject  *object,
                   const char  *where,
                   GError     **error)
{
  static const char * const members[] = { "kernel", "initrd" };

  for (guint i = 0; i < G_N_ELEMENTS (members); i++)
    {
      JsonNode *node = json_object_get_member (object, members[i]);

      if (node != NULL && !JSON_NODE_HOLDS_NULL (node) &&
          !(JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_BOOLEAN))
        {
          g_autofree char *shown = NULL;

          if (JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING)
            shown = g_strescape (json_node_get_string (node), NULL);
          g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_BAD_ARCHIVE,
                       _("The machine archive names a file of the host it was made on as the "
                         "%s of its %s (%s); an import only boots what the archive holds. "
                         "Export the machine again with this Qlean (%s), which puts the %s "
                         "into the archive"),
                       members[i], where, shown ? shown : "?", PACKAGE_VERSION, members[i]);
          return FALSE;
        }
    }

  return TRUE;
}

/* The extra QEMU arguments are a command line: -drive file=~/.ssh/id_rsa
 * gives the guest a host file, -chardev file,path=... writes one. The
 * checksums of an archive prove it whole, not who made it, so an
 * archive's arguments are used only when the caller says it trusts the
 * archive. */
static gboolean
check_extra_args (GPtrArray         *extra,
                  QleanImportFlags   flags,
                  GError           **error)
{
  g_autoptr(GString) shown = NULL;

  if (extra->len == 0 || (flags & QLEAN_IMPORT_FLAGS_TRUST_EXTRA_ARGS) != 0)
    return TRUE;

  shown = g_string_new (NULL);
  for (guint i = 0; i < extra->len && shown->len < 200; i++)
    {
      g_autofree char *escaped = g_strescape (g_ptr_array_index (extra, i), NULL);

      g_string_append_printf (shown, "%s%s", i > 0 ? " " : "", escaped);
    }
  if (shown->len > 200)
    {
      g_string_truncate (shown, 200);
      g_string_append (shown, "…");
    }

  g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_BAD_ARCHIVE,
               _("The machine archive asks for extra QEMU arguments (%s), which can give the "
                 "guest any file of this host. Import it with QLEAN_IMPORT_FLAGS_TRUST_EXTRA_ARGS "
                 "(qlean import --trust-extra-args) only if you trust whoever made it"),
               shown->str);
  return FALSE;
}

static QleanMachineConfig *
config_from_manifest (JsonObject        *object,
                      QleanImportFlags   flags,
                      GError           **error)
{
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(GPtrArray) extra = g_ptr_array_new ();
  const char *cmdline, *accel_nick, *bridge;
  JsonNode *node;
  guint cores, memory, disk;
  int accel;

  if (!get_uint_member (object, "cores", 255, &cores, error) ||
      !get_uint_member (object, "memory-mib", 16 * 1024 * 1024, &memory, error) ||
      !get_uint_member (object, "disk-gib", 64 * 1024, &disk, error) ||
      !get_optional_string (object, "accel", &accel_nick, error) ||
      !refuse_host_paths (object, _("configuration"), error) ||
      !get_optional_string (object, "cmdline", &cmdline, error) ||
      !get_optional_string (object, "bridge", &bridge, error))
    return NULL;

  if (cores == 0)
    {
      bad_manifest (error, _("asks for 0 cores"));
      return NULL;
    }
  if (!enum_from_nick (QLEAN_TYPE_ACCEL, accel_nick, &accel))
    {
      bad_manifest (error, _("names an unknown accelerator"));
      return NULL;
    }

  node = json_object_get_member (object, "extra-args");
  if (node != NULL && !JSON_NODE_HOLDS_NULL (node))
    {
      JsonArray *array = JSON_NODE_HOLDS_ARRAY (node) ? json_node_get_array (node) : NULL;

      if (array == NULL || json_array_get_length (array) > 256)
        {
          bad_manifest (error, _("has invalid “extra-args”"));
          return NULL;
        }
      for (guint i = 0; i < json_array_get_length (array); i++)
        {
          JsonNode *element = json_array_get_element (array, i);

          if (!JSON_NODE_HOLDS_VALUE (element) || json_node_get_value_type (element) != G_TYPE_STRING)
            {
              bad_manifest (error, _("has invalid “extra-args”"));
              return NULL;
            }
          g_ptr_array_add (extra, (gpointer) json_node_get_string (element));
        }
    }
  if (!check_extra_args (extra, flags, error))
    return NULL;
  g_ptr_array_add (extra, NULL);

  qlean_machine_config_set_cores (config, cores);
  qlean_machine_config_set_memory_mib (config, memory);
  qlean_machine_config_set_disk_gib (config, disk);
  qlean_machine_config_set_accel (config, accel);
  qlean_machine_config_set_cmdline (config, cmdline);
  qlean_machine_config_set_bridge (config, bridge);
  qlean_machine_config_set_extra_args (config, (const char * const *) extra->pdata);
  /* Optional: archives of format 1 may predate it. */
  node = json_object_get_member (object, "fast-start");
  if (node != NULL && JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_BOOLEAN)
    qlean_machine_config_set_fast_start (config, json_node_get_boolean (node));

  return g_steal_pointer (&config);
}

static void
remove_import_dir (gpointer data)
{
  char *dir = data;

  qlean_rm_rf (dir, NULL);
  g_free (dir);
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
  JsonNode *node;
  const char *kind_nick, *mac, *image_cmdline;
  gboolean had_network;
  int kind;
  gsize len;
  const char *data = g_bytes_get_data (import->manifest, &len);

  /* json-glib recurses: a deep manifest would overflow the stack. */
  if (!qlean_json_check_depth (data, len, NULL))
    return bad_manifest (error, _("is not plain JSON, or nests deeper than 64 levels"));
  if (!json_parser_load_from_data (parser, data, len, NULL) ||
      !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    return bad_manifest (error, _("is not a JSON object"));
  root = json_node_get_object (json_parser_get_root (parser));

  node = json_object_get_member (root, "format");
  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
    return bad_manifest (error, _("has no format version"));
  /* Format 1 differs only in naming the kernel and initrd by host
   * paths, which refuse_host_paths() refuses: one without is read. */
  if (json_node_get_int (node) < 1 || json_node_get_int (node) > QLEAN_ARCHIVE_FORMAT_VERSION)
    {
      g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_BAD_ARCHIVE,
                   _("The machine archive has format %" G_GINT64_FORMAT "; this Qlean (%s) reads "
                     "formats 1 to %d: import it with the Qlean that made it, or a newer one"),
                   json_node_get_int (node), PACKAGE_VERSION, QLEAN_ARCHIVE_FORMAT_VERSION);
      return FALSE;
    }

  node = json_object_get_member (root, "image");
  image_object = node && JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
  node = json_object_get_member (root, "config");
  config_object = node && JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
  if (image_object == NULL || config_object == NULL)
    return bad_manifest (error, _("has no image or configuration"));

  if (!get_optional_string (image_object, "kind", &kind_nick, error) ||
      !get_bool_member (root, "state", &import->has_state, error) ||
      !get_bool_member (root, "disk", &import->has_disk, error) ||
      !get_optional_bool (root, "kernel", &import->has_kernel, error) ||
      !get_optional_bool (root, "initrd", &import->has_initrd, error) ||
      !refuse_host_paths (image_object, _("image"), error) ||
      !get_optional_string (image_object, "cmdline", &image_cmdline, error) ||
      !get_bool_member (root, "network", &had_network, error) ||
      !get_optional_string (root, "mac-address", &mac, error))
    return FALSE;
  if (!enum_from_nick (QLEAN_TYPE_IMAGE_KIND, kind_nick, &kind))
    return bad_manifest (error, _("names an unknown kind of image"));
  if ((kind == QLEAN_IMAGE_KIND_MINIMAL) == import->has_disk)
    return bad_manifest (error, kind == QLEAN_IMAGE_KIND_MINIMAL
                                ? _("gives a disk to the minimal image, which has none")
                                : _("has no disk for an image that needs one"));

  config = config_from_manifest (config_object, import->flags, error);
  if (config == NULL)
    return FALSE;

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

  /* Ours alone, 0700, and known to `qlean gc` should this process die. */
  {
    g_autofree char *prefix = g_strconcat (import->name, ".import", NULL);

    import->dir = qlean_host_make_run_dir (prefix, error);
    if (import->dir == NULL)
      return FALSE;
  }
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

  /* The kernel and initrd the machine booted, from the archive, where
   * the extraction puts them before anything starts. A distribution
   * image's disk comes back as a file image: it keeps the kernel
   * parameters that went with its kernel. */
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

static gboolean
extract_all (Import        *import,
             GCancellable  *cancellable,
             GError       **error)
{
  static const QleanArchiveReaderFuncs funcs = { extract_begin, extract_data, extract_end };
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
    return bad_manifest (error, _("does not match the members of the archive"));

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

  {
    g_autofree char *state = g_build_filename (import->target, QLEAN_ARCHIVE_STATE, NULL);

    qlean_machine_set_incoming (import->machine, state, TRUE, import->old_mac);
  }
  qlean_machine_spawn_async (import->machine, g_task_get_cancellable (outer), import_spawned_cb, outer);
}

/* Extracts and starts into the machine made from the manifest; @outer's
 * task data is the Import. */
static void
import_extract (GTask *outer)
{
  GTask *task = g_task_new (NULL, g_task_get_cancellable (outer), import_extracted_cb, outer);

  g_task_set_name (task, "[qlean] extract machine archive");
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

  task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (task, qlean_machine_import_full_async);
  g_task_set_name (task, "[qlean] import machine");
  g_task_set_task_data (task, import_new (archive, name, network, flags), (GDestroyNotify) import_free);

  if (!check_import_name (name, &error))
    {
      g_task_return_error (task, error);
      g_object_unref (task);
      return;
    }

  read_task = g_task_new (NULL, cancellable, manifest_read_cb, task);
  g_task_set_name (read_task, "[qlean] read machine manifest");
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
 */
QleanMachine *
qlean_machine_import_full_finish (GAsyncResult  *result,
                                  GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);

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

  qlean_sync_call_init (&call);
  task = g_task_new (NULL, cancellable, qlean_sync_call_done, &call);
  g_task_set_source_tag (task, qlean_machine_import_full_async);
  g_task_set_name (task, "[qlean] import machine");
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
