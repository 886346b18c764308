/* qlean-image-prepare-kind.c: preparing an image, by kind
 *
 * SPDX-License-Identifier: MIT
 *
 * What [method@Image.prepare] does, one preparation at a time per
 * image, for each kind: the minimal image is built (or found in the
 * cache) from the host's kernel, busybox and agent, and so is its share
 * boot for machines with shared folders; a file image's disk is
 * checked, once, for a format QEMU is then told; a catalog or custom
 * image is handed to its source (qlean-image-source.c), which downloads
 * it and has qlean-image-prepare.c make a copy ready to boot. Apart from
 * qlean-image.c, which keeps the object's properties, constructors and
 * accessors, because this is what the image does rather than what it
 * is; it writes the fields that those accessors read.
 */

#include "config.h"

#include <glib/gi18n-lib.h>

#include "qlean-arch-private.h"
#include "qlean-error.h"
#include "qlean-image-object-private.h"
#include "qlean-image-private.h"
#include "qlean-image-source-private.h"
#include "qlean-sync-private.h"
#include "qlean-task-private.h"

static gboolean
qlean_image_prepare_minimal (QleanImage    *self,
                             GCancellable  *cancellable,
                             GError       **error)
{
  g_auto(QleanMinimalInputs) inputs = { .arch = qlean_image_get_guest_arch (self) };
  g_autofree char *initramfs = NULL;

  if (!qlean_minimal_find_inputs (&inputs, error))
    return FALSE;

  initramfs = qlean_minimal_build (&inputs, &self->kernel, cancellable, error);
  if (initramfs == NULL)
    return FALSE;

  self->initrd = g_steal_pointer (&initramfs);
  self->cmdline = g_strdup (qlean_minimal_cmdline (inputs.arch));

  return TRUE;
}

/* Builds (or finds in the cache) the minimal image's boot from a kernel
 * with 9p. Called with prepare_lock held. */
static gboolean
qlean_image_prepare_share_boot (QleanImage    *self,
                                GCancellable  *cancellable,
                                GError       **error)
{
  g_auto(QleanMinimalInputs) inputs = { .arch = qlean_image_get_guest_arch (self), .want_9p = TRUE };
  g_autofree char *initramfs = NULL;
  g_autofree char *kernel = NULL;

  if (!qlean_minimal_find_inputs (&inputs, error))
    return FALSE;

  initramfs = qlean_minimal_build (&inputs, &kernel, cancellable, error);
  if (initramfs == NULL)
    return FALSE;

  g_mutex_lock (&self->lock);
  self->share_kernel = g_steal_pointer (&kernel);
  self->share_initrd = g_steal_pointer (&initramfs);
  g_mutex_unlock (&self->lock);

  return TRUE;
}

static gboolean
qlean_image_needs_share_boot (QleanImage *self)
{
  gboolean needs;

  g_mutex_lock (&self->lock);
  needs = self->kind == QLEAN_IMAGE_KIND_MINIMAL && self->want_share_boot &&
          self->share_initrd == NULL;
  g_mutex_unlock (&self->lock);

  return needs;
}

void
qlean_image_want_share_boot (QleanImage *self)
{
  g_mutex_lock (&self->lock);
  self->want_share_boot = TRUE;
  g_mutex_unlock (&self->lock);
}

gboolean
qlean_image_get_share_boot (QleanImage  *self,
                            const char **kernel,
                            const char **initrd)
{
  gboolean ready;

  /* Written once under the lock and never changed afterwards. */
  g_mutex_lock (&self->lock);
  ready = self->share_initrd != NULL;
  if (ready)
    {
      *kernel = self->share_kernel;
      *initrd = self->share_initrd;
    }
  g_mutex_unlock (&self->lock);

  return ready;
}

static gboolean
qlean_image_prepare_file (QleanImage    *self,
                          GCancellable  *cancellable,
                          GError       **error)
{
  g_autofree char *format = NULL;

  if (!g_file_test (self->source_path, G_FILE_TEST_IS_REGULAR))
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_NOT_FOUND,
                   _("Image file %s does not exist or is not a regular file"),
                   self->source_path);
      return FALSE;
    }

  /* Once, here: the machines' overlays name this format, so that QEMU
   * never probes the file again (a raw disk whose guest wrote a qcow2
   * header would otherwise become one). */
  format = qlean_image_check_disk_file (self->source_path, NULL, cancellable, error);
  if (format == NULL)
    {
      if (error != NULL && g_error_matches (*error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_INVALID_SOURCE))
        {
          char *message = g_strdup_printf (_("%s. Qlean runs self-contained qcow2 and raw images "
                                             "only; if what it names is yours, convert it: "
                                             "qemu-img convert -O qcow2 %s NEW.qcow2"),
                                           (*error)->message, self->source_path);

          g_free ((*error)->message);
          (*error)->message = message;
        }
      return FALSE;
    }

  self->disk = g_strdup (self->source_path);
  self->disk_format = g_steal_pointer (&format);
  /* Used where the machine gets a kernel of its own: the guest
   * architecture's serial console (ttyAMA0 on aarch64). */
  self->cmdline = g_strdup_printf ("console=%s",
                                   qlean_arch_get_info (qlean_image_get_guest_arch (self))->console);

  return TRUE;
}

static void
qlean_image_prepare_thread (GTask        *task,
                            gpointer      source_object,
                            gpointer      task_data,
                            GCancellable *cancellable)
{
  QleanImage *self = source_object;
  g_autoptr(GError) error = NULL;
  gboolean ok = TRUE;

  /* One preparation at a time per image; callers that raced in find it
   * done when they get the lock. */
  g_mutex_lock (&self->prepare_lock);
  if (!qlean_image_is_prepared (self))
    {
      switch (self->kind)
        {
        case QLEAN_IMAGE_KIND_MINIMAL:
          ok = qlean_image_prepare_minimal (self, cancellable, &error);
          break;
        case QLEAN_IMAGE_KIND_FILE:
          ok = qlean_image_prepare_file (self, cancellable, &error);
          break;
        case QLEAN_IMAGE_KIND_DISTRO:
        default:
          ok = qlean_image_source_prepare (self->source, &self->kernel, &self->initrd,
                                           &self->disk, &self->cmdline, cancellable, &error);
          break;
        }
      g_mutex_lock (&self->lock);
      self->prepared = ok;
      g_mutex_unlock (&self->lock);
    }
  if (ok && qlean_image_needs_share_boot (self) &&
      !qlean_image_prepare_share_boot (self, cancellable, &error))
    {
      /* Fails the machine that asked; the next one asks again, and
       * machines without shares are not held to it. */
      g_mutex_lock (&self->lock);
      self->want_share_boot = FALSE;
      g_mutex_unlock (&self->lock);
      ok = FALSE;
    }
  g_mutex_unlock (&self->prepare_lock);

  if (!ok)
    g_task_return_error (task, g_steal_pointer (&error));
  else
    g_task_return_boolean (task, TRUE);
}

/**
 * qlean_image_prepare_async:
 * @self: a #QleanImage
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when the image is ready
 * @user_data: data for @callback
 *
 * Builds, downloads or checks the image, on a worker thread. Cheap when
 * it is already prepared or cached.
 *
 * Since: 0.1
 */
void
qlean_image_prepare_async (QleanImage          *self,
                           GCancellable        *cancellable,
                           GAsyncReadyCallback  callback,
                           gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;

  g_return_if_fail (QLEAN_IS_IMAGE (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = qlean_task_new (self, cancellable, callback, user_data, qlean_image_prepare_async,
                         "[qlean] prepare image");

  if (qlean_image_is_prepared (self) && !qlean_image_needs_share_boot (self))
    {
      g_task_return_boolean (task, TRUE);
      return;
    }

  g_task_run_in_thread (task, qlean_image_prepare_thread);
}

/**
 * qlean_image_prepare_finish:
 * @self: a #QleanImage
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_image_prepare_async().
 *
 * Returns: %TRUE when the image is ready to boot
 *
 * Since: 0.1
 */
gboolean
qlean_image_prepare_finish (QleanImage    *self,
                            GAsyncResult  *result,
                            GError       **error)
{
  g_return_val_if_fail (QLEAN_IS_IMAGE (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_image_prepare_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_image_prepare:
 * @self: a #QleanImage
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_image_prepare_async().
 *
 * Returns: %TRUE when the image is ready to boot
 *
 * Since: 0.1
 */
gboolean
qlean_image_prepare (QleanImage    *self,
                     GCancellable  *cancellable,
                     GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_IMAGE (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!qlean_sync_call_begin (&call, error))
    return FALSE;
  qlean_image_prepare_async (self, cancellable, qlean_sync_call_done, &call);

  return qlean_image_prepare_finish (self, qlean_sync_call_wait (&call), error);
}
