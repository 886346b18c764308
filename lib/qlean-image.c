/* qlean-image.c: what a machine boots
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <glib/gi18n-lib.h>

#include "qlean-distro-private.h"
#include "qlean-enums.h"
#include "qlean-error.h"
#include "qlean-image-private.h"
#include "qlean-sync-private.h"

/**
 * QleanImage:
 *
 * What a [class@Machine] boots: a kernel, an initrd, a disk, and the
 * kernel command line that goes with them.
 *
 * [ctor@Image.new_minimal] is the embedded default. It needs no download:
 * it is built once, in about a second, from the host's kernel (Debian's
 * `linux-image-cloud-amd64` when installed), busybox and the host's
 * `qemu-ga`, and cached under `$XDG_CACHE_HOME/qlean/minimal/`, keyed by
 * every input, so that a kernel or agent update builds a new one. It
 * boots to an answering agent in about two seconds without KVM.
 *
 * An image is prepared (built, downloaded, checked) by
 * [method@Image.prepare]; starting a machine prepares its image first, so
 * calling it yourself is only useful to do the work ahead of time.
 */

struct _QleanImage
{
  GObject         parent_instance;

  QleanImageKind  kind;
  char           *name;
  char           *source_path;
  QleanImageSource *source;      /* distribution images (qlean-distro.c) */

  /* Held for the whole preparation, which can take minutes for a
   * distribution image; `lock` only guards the fields, so that readers
   * such as is_prepared() never wait for a download. */
  GMutex          prepare_lock;
  GMutex          lock;
  gboolean        prepared;
  char           *kernel;
  char           *initrd;
  char           *disk;
  char           *cmdline;
  guint           default_memory_mib;
};

G_DEFINE_FINAL_TYPE (QleanImage, qlean_image, G_TYPE_OBJECT)

G_DEFINE_QUARK (qlean-image-error-quark, qlean_image_error)

enum {
  PROP_0,
  PROP_KIND,
  PROP_NAME,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void
qlean_image_finalize (GObject *object)
{
  QleanImage *self = QLEAN_IMAGE (object);

  g_free (self->name);
  g_free (self->source_path);
  g_free (self->kernel);
  g_free (self->initrd);
  g_free (self->disk);
  g_free (self->cmdline);
  g_clear_pointer (&self->source, qlean_image_source_free);
  g_mutex_clear (&self->prepare_lock);
  g_mutex_clear (&self->lock);

  G_OBJECT_CLASS (qlean_image_parent_class)->finalize (object);
}

static void
qlean_image_get_property (GObject    *object,
                          guint       prop_id,
                          GValue     *value,
                          GParamSpec *pspec)
{
  QleanImage *self = QLEAN_IMAGE (object);

  switch (prop_id)
    {
    case PROP_KIND: g_value_set_enum (value, self->kind); break;
    case PROP_NAME: g_value_set_string (value, self->name); break;
    default:
      if (prop_id >= N_PROPS)
        qlean_image_source_get_property (self->source, prop_id - N_PROPS, value, pspec);
      else
        G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
qlean_image_set_property (GObject      *object,
                          guint         prop_id,
                          const GValue *value,
                          GParamSpec   *pspec)
{
  QleanImage *self = QLEAN_IMAGE (object);

  if (prop_id >= N_PROPS)
    qlean_image_source_set_property (self->source, prop_id - N_PROPS, value, pspec);
  else
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
}

static void
qlean_image_class_init (QleanImageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = qlean_image_finalize;
  object_class->get_property = qlean_image_get_property;
  object_class->set_property = qlean_image_set_property;

  /**
   * QleanImage:kind:
   *
   * Where the image comes from.
   */
  properties[PROP_KIND] =
    g_param_spec_enum ("kind", NULL, NULL, QLEAN_TYPE_IMAGE_KIND, QLEAN_IMAGE_KIND_MINIMAL,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * QleanImage:name:
   *
   * A short name for listings: `minimal`, a file's basename, or a
   * distribution image's catalog name.
   */
  properties[PROP_NAME] =
    g_param_spec_string ("name", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
  /* The properties of distribution images: mirror, download-progress... */
  qlean_image_source_class_init (object_class, N_PROPS);
}

static void
qlean_image_init (QleanImage *self)
{
  g_mutex_init (&self->lock);
  g_mutex_init (&self->prepare_lock);
  self->source = qlean_image_source_new (G_OBJECT (self));
}

/* A distribution or custom image; qlean-distro.c fills in its source. */
QleanImage *
qlean_image_new_distro (const char *name)
{
  QleanImage *self = g_object_new (QLEAN_TYPE_IMAGE, NULL);

  self->kind = QLEAN_IMAGE_KIND_DISTRO;
  self->name = g_strdup (name);
  self->default_memory_mib = 1024;

  return self;
}

QleanImageSource *
qlean_image_get_source (QleanImage *self)
{
  return self->source;
}

/**
 * qlean_image_new_minimal:
 *
 * The embedded default image: the host's kernel, busybox and qemu-ga in
 * an initramfs, with the root filesystem in memory. Nothing is built
 * until the image is prepared.
 *
 * Returns: (transfer full): a new #QleanImage
 */
QleanImage *
qlean_image_new_minimal (void)
{
  QleanImage *self = g_object_new (QLEAN_TYPE_IMAGE, NULL);

  self->kind = QLEAN_IMAGE_KIND_MINIMAL;
  self->name = g_strdup ("minimal");
  self->default_memory_mib = 256;

  return self;
}

/**
 * qlean_image_new_from_file:
 * @path: a disk image (qcow2 or raw) with a bootloader, or with the
 *   kernel and initrd given in the machine's configuration
 *
 * An image from a disk file. Machines run on a qcow2 overlay; the file
 * itself is never written.
 *
 * Returns: (transfer full): a new #QleanImage
 */
QleanImage *
qlean_image_new_from_file (const char *path)
{
  QleanImage *self;

  g_return_val_if_fail (path != NULL, NULL);

  self = g_object_new (QLEAN_TYPE_IMAGE, NULL);
  self->kind = QLEAN_IMAGE_KIND_FILE;
  self->name = g_path_get_basename (path);
  self->source_path = g_canonicalize_filename (path, NULL);
  self->default_memory_mib = 1024;

  return self;
}

/**
 * qlean_image_get_kind:
 * @self: a #QleanImage
 *
 * Returns: where the image comes from
 */
QleanImageKind
qlean_image_get_kind (QleanImage *self)
{
  g_return_val_if_fail (QLEAN_IS_IMAGE (self), QLEAN_IMAGE_KIND_MINIMAL);

  return self->kind;
}

/**
 * qlean_image_get_name:
 * @self: a #QleanImage
 *
 * Returns: the image's short name
 */
const char *
qlean_image_get_name (QleanImage *self)
{
  g_return_val_if_fail (QLEAN_IS_IMAGE (self), NULL);

  return self->name;
}

/* The fields below are written once, under the lock, by prepare, and
 * never change afterwards; readers check is_prepared() first. */

/**
 * qlean_image_get_kernel:
 * @self: a #QleanImage
 *
 * Returns: (nullable): the kernel to boot directly, once prepared
 */
const char *
qlean_image_get_kernel (QleanImage *self)
{
  g_return_val_if_fail (QLEAN_IS_IMAGE (self), NULL);

  return qlean_image_is_prepared (self) ? self->kernel : NULL;
}

/**
 * qlean_image_get_initrd:
 * @self: a #QleanImage
 *
 * Returns: (nullable): the initrd, once prepared
 */
const char *
qlean_image_get_initrd (QleanImage *self)
{
  g_return_val_if_fail (QLEAN_IS_IMAGE (self), NULL);

  return qlean_image_is_prepared (self) ? self->initrd : NULL;
}

/**
 * qlean_image_get_disk:
 * @self: a #QleanImage
 *
 * Returns: (nullable): the base disk image, once prepared; the minimal
 *   image has none
 */
const char *
qlean_image_get_disk (QleanImage *self)
{
  g_return_val_if_fail (QLEAN_IS_IMAGE (self), NULL);

  return qlean_image_is_prepared (self) ? self->disk : NULL;
}

/**
 * qlean_image_get_cmdline:
 * @self: a #QleanImage
 *
 * Returns: (nullable): the kernel command line, once prepared
 */
const char *
qlean_image_get_cmdline (QleanImage *self)
{
  g_return_val_if_fail (QLEAN_IS_IMAGE (self), NULL);

  return qlean_image_is_prepared (self) ? self->cmdline : NULL;
}

/**
 * qlean_image_get_default_memory_mib:
 * @self: a #QleanImage
 *
 * Returns: the memory a machine gets when its configuration leaves
 *   [property@MachineConfig:memory-mib] at 0
 */
guint
qlean_image_get_default_memory_mib (QleanImage *self)
{
  g_return_val_if_fail (QLEAN_IS_IMAGE (self), 0);

  return self->default_memory_mib;
}

/**
 * qlean_image_is_prepared:
 * @self: a #QleanImage
 *
 * Returns: whether [method@Image.prepare] has succeeded
 */
gboolean
qlean_image_is_prepared (QleanImage *self)
{
  gboolean prepared;

  g_return_val_if_fail (QLEAN_IS_IMAGE (self), FALSE);

  g_mutex_lock (&self->lock);
  prepared = self->prepared;
  g_mutex_unlock (&self->lock);

  return prepared;
}

static gboolean
qlean_image_prepare_minimal (QleanImage    *self,
                             GCancellable  *cancellable,
                             GError       **error)
{
  g_auto(QleanMinimalInputs) inputs = { 0 };
  g_autofree char *initramfs = NULL;

  if (!qlean_minimal_find_inputs (&inputs, error))
    return FALSE;

  initramfs = qlean_minimal_build (&inputs, &self->kernel, cancellable, error);
  if (initramfs == NULL)
    return FALSE;

  self->initrd = g_steal_pointer (&initramfs);
  self->cmdline = g_strdup (qlean_minimal_cmdline ());

  return TRUE;
}

static gboolean
qlean_image_prepare_file (QleanImage  *self,
                          GError     **error)
{
  if (!g_file_test (self->source_path, G_FILE_TEST_IS_REGULAR))
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_NOT_FOUND,
                   _("Image file %s does not exist or is not a regular file"),
                   self->source_path);
      return FALSE;
    }

  self->disk = g_strdup (self->source_path);
  self->cmdline = g_strdup ("console=ttyS0");

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
          ok = qlean_image_prepare_file (self, &error);
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
 */
void
qlean_image_prepare_async (QleanImage          *self,
                           GCancellable        *cancellable,
                           GAsyncReadyCallback  callback,
                           gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;

  g_return_if_fail (QLEAN_IS_IMAGE (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, qlean_image_prepare_async);
  g_task_set_name (task, "[qlean] prepare image");

  if (qlean_image_is_prepared (self))
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
 */
gboolean
qlean_image_prepare_finish (QleanImage    *self,
                            GAsyncResult  *result,
                            GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

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
 */
gboolean
qlean_image_prepare (QleanImage    *self,
                     GCancellable  *cancellable,
                     GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  qlean_sync_call_init (&call);
  qlean_image_prepare_async (self, cancellable, qlean_sync_call_done, &call);

  return qlean_image_prepare_finish (self, qlean_sync_call_wait (&call), error);
}
