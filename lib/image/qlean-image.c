/* qlean-image.c: what a machine boots
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <poll.h>
#include <sys/resource.h>
#include <glib/gi18n-lib.h>
#include <gio/gunixinputstream.h>
#include <json-glib/json-glib.h>

#include "qlean-arch-private.h"
#include "qlean-distro-private.h"
#include "qlean-enums.h"
#include "qlean-error.h"
#include "qlean-host-private.h"
#include "qlean-image-private.h"
#include "qlean-sync-private.h"
#include "qlean-errno-private.h"

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
  char           *disk_format;   /* of a file image's disk, as checked */
  /* The minimal image's boot for machines with shared folders: another
   * kernel (one with 9p), built only once such a machine asks. */
  gboolean        want_share_boot;
  char           *share_kernel;
  char           *share_initrd;
  char           *cmdline;
  guint           default_memory_mib;
};

G_DEFINE_FINAL_TYPE (QleanImage, qlean_image, G_TYPE_OBJECT)

G_DEFINE_QUARK (qlean-image-error-quark, qlean_image_error)

enum {
  PROP_0,
  PROP_KIND,
  PROP_NAME,
  PROP_GUEST_ARCH,
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
  g_free (self->disk_format);
  g_free (self->share_kernel);
  g_free (self->share_initrd);
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
    case PROP_GUEST_ARCH: g_value_set_enum (value, qlean_image_get_guest_arch (self)); break;
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

  /**
   * QleanImage:guest-arch:
   *
   * The guest architecture, which picks the QEMU binary, machine type
   * and CPU of the image's machines; [property@Image:arch] names it in
   * Debian's words. Catalog images have the architecture of their
   * catalog entry; a minimal image the one it was made for; file and
   * custom images x86-64 unless set with
   * [method@Image.set_guest_arch].
   */
  properties[PROP_GUEST_ARCH] =
    g_param_spec_enum ("guest-arch", NULL, NULL, QLEAN_TYPE_ARCH, QLEAN_ARCH_X86_64,
                       G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

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
 * qlean_image_new_minimal_for_arch:
 * @arch: the guest architecture
 *
 * The minimal image for @arch. For the host's architecture it is
 * [ctor@Image.new_minimal]. For another one it is built the same way
 * from that architecture's Debian packages (the cloud kernel and its
 * modules, `busybox-static`, `qemu-guest-agent` and its libraries),
 * which `tools/setup.sh deps` unpacks, without installing them, into
 * `/var/cache/qlean/sysroots/arm64` (or `$QLEAN_SYSROOT_AARCH64`, and
 * so on), with `qlean-guest` cross-compiled for it when Qlean was built
 * with that architecture's cross compiler. Its machines run
 * `qemu-system-aarch64` (or the architecture's QEMU) under TCG.
 *
 * Returns: (transfer full): a new #QleanImage
 */
QleanImage *
qlean_image_new_minimal_for_arch (QleanArch arch)
{
  QleanImage *self = g_object_new (QLEAN_TYPE_IMAGE, NULL);

  self->kind = QLEAN_IMAGE_KIND_MINIMAL;
  self->name = g_strdup ("minimal");
  self->default_memory_mib = 256;
  qlean_image_source_set_arch (self->source, qlean_arch_get_info (arch)->debian_name);

  return self;
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
  return qlean_image_new_minimal_for_arch (qlean_arch_get_host ());
}

/**
 * qlean_image_new_from_file:
 * @path: a disk image (qcow2 or raw) with a bootloader, or with the
 *   kernel and initrd given in the machine's configuration
 *
 * An image from a disk file. Machines run on a qcow2 overlay; the file
 * itself is never written.
 *
 * The file must be self-contained: preparing the image refuses
 * (%QLEAN_IMAGE_ERROR_INVALID_SOURCE) a qcow2 that names a backing file
 * or an external data file, and any format but qcow2 and raw, since QEMU
 * would read (or write) those other files of the host as the guest's
 * disk. The format found then is the one QEMU is told, never probed
 * again.
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

/**
 * qlean_image_get_guest_arch:
 * @self: a #QleanImage
 *
 * Returns: the guest architecture (see [property@Image:guest-arch])
 */
QleanArch
qlean_image_get_guest_arch (QleanImage *self)
{
  QleanArch arch = QLEAN_ARCH_X86_64;

  g_return_val_if_fail (QLEAN_IS_IMAGE (self), arch);

  qlean_arch_from_string (qlean_image_get_arch (self), &arch);
  return arch;
}

/**
 * qlean_image_set_guest_arch:
 * @self: a #QleanImage made by [ctor@Image.new_from_file] or
 *   [ctor@Image.new_from_url], not yet prepared
 * @arch: the architecture of the image's system
 *
 * Says which architecture a file or custom image is for; Qlean cannot
 * tell from the disk alone before preparing it. Catalog and minimal
 * images have theirs from where they come from.
 */
void
qlean_image_set_guest_arch (QleanImage *self,
                            QleanArch   arch)
{
  g_return_if_fail (QLEAN_IS_IMAGE (self));
  g_return_if_fail (self->kind == QLEAN_IMAGE_KIND_FILE ||
                    (self->kind == QLEAN_IMAGE_KIND_DISTRO &&
                     qlean_image_get_distro (self) == QLEAN_DISTRO_CUSTOM));
  g_return_if_fail (!qlean_image_is_prepared (self));

  if (qlean_image_get_guest_arch (self) == arch)
    return;

  qlean_image_source_set_arch (self->source, qlean_arch_get_info (arch)->debian_name);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_GUEST_ARCH]);
  g_object_notify (G_OBJECT (self), "arch");
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

/* Disk files from elsewhere */

/* Bounds on one `qemu-img info`: it reads only an image's header, in
 * milliseconds, but the header is the stranger's. */
#define DISK_INFO_TIMEOUT_S   30
#define DISK_INFO_MAX_OUTPUT  (1024 * 1024)
#define DISK_INFO_MAX_STDERR  (64 * 1024)
#define DISK_INFO_MAX_MEMORY  ((rlim_t) 1 << 30)

static void
disk_info_limits (gpointer user_data)
{
  struct rlimit memory = { DISK_INFO_MAX_MEMORY, DISK_INFO_MAX_MEMORY };
  struct rlimit cpu = { DISK_INFO_TIMEOUT_S, DISK_INFO_TIMEOUT_S };

  /* In the child, between fork and exec: async-signal-safe calls only. */
  setrlimit (RLIMIT_AS, &memory);
  setrlimit (RLIMIT_CPU, &cpu);
}

/* Reads @process's stdout (at most DISK_INFO_MAX_OUTPUT) and stderr (its
 * first DISK_INFO_MAX_STDERR bytes) to their ends, within the deadline;
 * the process is killed otherwise. */
static gboolean
read_disk_info (GSubprocess   *process,
                const char    *path,
                GByteArray    *out,
                GByteArray    *err,
                GCancellable  *cancellable,
                GError       **error)
{
  int fds[2] = {
    g_unix_input_stream_get_fd (G_UNIX_INPUT_STREAM (g_subprocess_get_stdout_pipe (process))),
    g_unix_input_stream_get_fd (G_UNIX_INPUT_STREAM (g_subprocess_get_stderr_pipe (process))),
  };
  gboolean open[2] = { TRUE, TRUE };
  gint64 deadline = g_get_monotonic_time () + DISK_INFO_TIMEOUT_S * G_USEC_PER_SEC;
  GPollFD cancel_fd = { -1, 0, 0 };
  gboolean has_cancel = cancellable != NULL && g_cancellable_make_pollfd (cancellable, &cancel_fd);
  gboolean ok = TRUE;

  while (ok && (open[0] || open[1]))
    {
      struct pollfd pfds[3];
      nfds_t n = 0;
      int slots[3];
      gint64 left = (deadline - g_get_monotonic_time ()) / 1000;
      int ready;

      for (int i = 0; i < 2; i++)
        if (open[i])
          {
            pfds[n] = (struct pollfd) { fds[i], POLLIN, 0 };
            slots[n++] = i;
          }
      if (has_cancel)
        {
          pfds[n] = (struct pollfd) { cancel_fd.fd, POLLIN, 0 };
          slots[n++] = 2;
        }

      if (left <= 0)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                       _("qemu-img did not read the header of %s within %d s"), path,
                       DISK_INFO_TIMEOUT_S);
          ok = FALSE;
          break;
        }
      ready = poll (pfds, n, (int) MIN (left, G_MAXINT));
      if (ready < 0 && errno == EINTR)
        continue;
      if (ready < 0)
        {
          int saved_errno = errno;

          qlean_set_error_from_errno (error, saved_errno,
                                      _("Cannot wait for qemu-img"));
          ok = FALSE;
          break;
        }

      for (nfds_t j = 0; ok && j < n; j++)
        {
          guint8 buffer[16384];
          GByteArray *into;
          gssize got;

          if (pfds[j].revents == 0)
            continue;
          if (slots[j] == 2)
            {
              ok = !g_cancellable_set_error_if_cancelled (cancellable, error);
              continue;
            }

          got = read (pfds[j].fd, buffer, sizeof buffer);
          if (got < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
          if (got <= 0)
            {
              open[slots[j]] = FALSE;
              continue;
            }
          into = slots[j] == 0 ? out : err;
          if (slots[j] == 0 && into->len + got > DISK_INFO_MAX_OUTPUT)
            {
              g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_INVALID_SOURCE,
                           _("qemu-img describes %s in more than %d bytes; Qlean does not "
                             "use an image with a header that large"), path, DISK_INFO_MAX_OUTPUT);
              ok = FALSE;
              break;
            }
          if (slots[j] == 1)
            got = MIN ((gsize) got, DISK_INFO_MAX_STDERR - MIN (into->len, DISK_INFO_MAX_STDERR));
          g_byte_array_append (into, buffer, got);
        }
    }

  if (has_cancel)
    g_cancellable_release_fd (cancellable);
  if (!ok)
    g_subprocess_force_exit (process);
  /* Killed, or with both pipes at their ends: it is gone or going. */
  g_subprocess_wait (process, NULL, NULL);

  return ok;
}

static gboolean
refuse_disk (GError     **error,
             const char  *format,
             ...) G_GNUC_PRINTF (2, 3);

static gboolean
refuse_disk (GError     **error,
             const char  *format,
             ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);

  g_set_error_literal (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_INVALID_SOURCE, message);
  return FALSE;
}

static const char *
string_member (JsonObject *object,
               const char *member)
{
  JsonNode *node = object ? json_object_get_member (object, member) : NULL;

  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return NULL;
  if (JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING)
    return json_node_get_string (node);
  /* There, but not a string: still there. */
  return "?";
}

/* See qlean-image-private.h. */
char *
qlean_image_check_disk_file (const char    *path,
                             const char    *format,
                             GCancellable  *cancellable,
                             GError       **error)
{
  g_autofree char *qemu_img = g_find_program_in_path ("qemu-img");
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GByteArray) out = g_byte_array_new ();
  g_autoptr(GByteArray) err = g_byte_array_new ();
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autofree char *absolute = NULL;
  JsonObject *info, *specific_data = NULL;
  JsonNode *node;
  const char *found, *backing, *data_file;

  g_return_val_if_fail (path != NULL, NULL);

  if (qemu_img == NULL)
    {
      g_autofree char *hint = qlean_host_install_hint ("qemu-utils");

      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
                   _("Cannot check the disk image %s: qemu-img is not installed; install it: %s"),
                   path, hint);
      return NULL;
    }

  /* The header alone: without --backing-chain, qemu-img opens no backing
   * file, and (with -U) takes no lock, so an image that is refused below
   * has not made it open the files it names either. An absolute path
   * never reads as a protocol prefix ("json:", "nbd:"). */
  absolute = g_canonicalize_filename (path, NULL);
  g_ptr_array_add (argv, qemu_img);
  g_ptr_array_add (argv, (char *) "info");
  g_ptr_array_add (argv, (char *) "-U");
  g_ptr_array_add (argv, (char *) "--output=json");
  if (format != NULL)
    {
      g_ptr_array_add (argv, (char *) "-f");
      g_ptr_array_add (argv, (char *) format);
    }
  g_ptr_array_add (argv, absolute);
  g_ptr_array_add (argv, NULL);

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_subprocess_launcher_set_child_setup (launcher, disk_info_limits, NULL, NULL);
  process = g_subprocess_launcher_spawnv (launcher, (const char * const *) argv->pdata, error);
  if (process == NULL)
    return NULL;

  if (!read_disk_info (process, path, out, err, cancellable, error))
    return NULL;

  if (!g_subprocess_get_successful (process) ||
      !json_parser_load_from_data (parser, (const char *) out->data, out->len, NULL) ||
      !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    {
      g_autofree char *message = g_strndup ((const char *) err->data, err->len);

      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_PREPARE_FAILED,
                   _("%s is not a disk image that qemu-img can read%s%s"), path,
                   *g_strstrip (message) != '\0' ? ": " : "", message);
      return NULL;
    }
  info = json_node_get_object (json_parser_get_root (parser));

  found = string_member (info, "format");
  if (g_strcmp0 (found, "qcow2") != 0 && g_strcmp0 (found, "raw") != 0)
    {
      refuse_disk (error, _("%s is a %s image, not qcow2 or raw: other formats can name further "
                            "files of this host, as vmdk's extents do"),
                   path, found ? found : "?");
      return NULL;
    }

  backing = string_member (info, "full-backing-filename");
  if (backing == NULL)
    backing = string_member (info, "backing-filename");
  if (backing == NULL && json_object_has_member (info, "backing-filename-format"))
    backing = "?";
  if (backing != NULL)
    {
      refuse_disk (error, _("%s names a backing file (%s): QEMU would read that file of this "
                            "host into the guest's disk"),
                   path, backing);
      return NULL;
    }

  node = json_object_get_member (info, "format-specific");
  if (node != NULL && JSON_NODE_HOLDS_OBJECT (node))
    {
      JsonNode *data = json_object_get_member (json_node_get_object (node), "data");

      if (data != NULL && JSON_NODE_HOLDS_OBJECT (data))
        specific_data = json_node_get_object (data);
    }
  data_file = string_member (specific_data, "data-file");
  if (data_file == NULL && specific_data != NULL && json_object_has_member (specific_data, "data-file-raw"))
    data_file = "?";
  if (data_file != NULL)
    {
      refuse_disk (error, _("%s keeps its data in another file (%s): QEMU would read and write "
                            "that file of this host as the guest's disk"),
                   path, data_file);
      return NULL;
    }

  return g_strdup (found);
}

/* See qlean-image-private.h. */
const char *
qlean_image_get_disk_format (QleanImage *self)
{
  if (!qlean_image_is_prepared (self) || self->disk == NULL)
    return NULL;

  /* A distribution image's disk is the qcow2 its preparation wrote. */
  return self->disk_format != NULL ? self->disk_format : "qcow2";
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
