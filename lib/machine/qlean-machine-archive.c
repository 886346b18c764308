/* qlean-machine-archive.c: machines exported to one file
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
 *
 * This file holds the manifest's writing and the export; the import is
 * in qlean-machine-import.c.
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
#include "qlean-task-private.h"
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
  json_builder_set_member_name (builder, "firmware");
  json_builder_add_string_value (builder, enum_nick (QLEAN_TYPE_FIRMWARE, qlean_machine_config_get_firmware (config)));
  add_string_or_null (builder, "cmdline", qlean_machine_config_get_cmdline (config));
  add_string_or_null (builder, "bridge", qlean_machine_config_get_bridge (config));
  json_builder_set_member_name (builder, "fast-start");
  json_builder_add_boolean_value (builder, qlean_machine_config_get_fast_start (config));
  json_builder_set_member_name (builder, "cloneable");
  json_builder_add_boolean_value (builder, qlean_machine_config_get_cloneable (config));
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
  /* A paused machine stays paused, and can be saved again. */
  else if (export->disk_source != NULL && export->qmp != NULL)
    qlean_machine_repause_after_save (export->qmp, NULL, NULL);
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
 *
 * Since: 0.1
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

  task = qlean_task_new (self, cancellable, callback, user_data, qlean_machine_export_async,
                         "[qlean] export machine");
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
 *
 * Since: 0.1
 */
gboolean
qlean_machine_export_finish (QleanMachine  *self,
                             GAsyncResult  *result,
                             GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_machine_export_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

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
 *
 * Since: 0.1
 */
gboolean
qlean_machine_export (QleanMachine  *self,
                      GFile         *archive,
                      GCancellable  *cancellable,
                      GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_MACHINE (self), FALSE);
  g_return_val_if_fail (G_IS_FILE (archive), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!qlean_sync_call_begin (&call, error))
    return FALSE;
  qlean_machine_export_async (self, archive, cancellable, qlean_sync_call_done, &call);

  return qlean_machine_export_finish (self, qlean_sync_call_wait (&call), error);
}
