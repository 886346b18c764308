/* qlean-image.c: what a machine boots
 *
 * SPDX-License-Identifier: MIT
 *
 * The QleanImage object: all its properties and its signal, all its
 * constructors (minimal, file, catalog and custom images) and its
 * accessors but those of the download. Its instance struct is in
 * qlean-image-object-private.h; its preparation, one at a time, by kind,
 * in qlean-image-prepare-kind.c. What a kind's preparation does lives
 * with the kind: the minimal image's build in qlean-image-minimal.c; a
 * distribution image's download (with its accessors, pull and verify)
 * in qlean-image-source.c and its offline preparation in
 * qlean-image-prepare.c; the check of a disk file from elsewhere in
 * qlean-image-disk-check.c.
 */

#include "config.h"

#include <string.h>
#include <glib/gi18n-lib.h>

#include "qlean-arch-private.h"
#include "qlean-distro-private.h"
#include "qlean-enums.h"
#include "qlean-error.h"
#include "qlean-image-download-private.h"
#include "qlean-image-object-private.h"
#include "qlean-image-private.h"
#include "qlean-image-source-private.h"
#include "qlean-util-private.h"

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
 *
 * Since: 0.1
 */

G_DEFINE_FINAL_TYPE (QleanImage, qlean_image, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_KIND,
  PROP_NAME,
  PROP_GUEST_ARCH,
  /* Those of distribution and custom images, kept in their source. */
  PROP_DISTRO,
  PROP_ARCH,
  PROP_RELEASE,
  PROP_ALIASES,
  PROP_URL,
  PROP_CHECKSUM_URL,
  PROP_FORMAT,
  PROP_MIRROR,
  PROP_DOWNLOAD_PROGRESS,
  PROP_EOL,
  PROP_SIGNED,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];
static guint progress_signal;

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
  QleanImageSource *source = self->source;

  switch (prop_id)
    {
    case PROP_KIND: g_value_set_enum (value, self->kind); break;
    case PROP_NAME: g_value_set_string (value, self->name); break;
    case PROP_GUEST_ARCH: g_value_set_enum (value, qlean_image_get_guest_arch (self)); break;
    case PROP_DISTRO: g_value_set_enum (value, source->distro); break;
    case PROP_ARCH: g_value_set_string (value, source->arch); break;
    case PROP_RELEASE: g_value_set_string (value, source->release); break;
    case PROP_ALIASES: g_value_set_boxed (value, source->aliases); break;
    case PROP_URL:
      g_value_take_string (value, qlean_image_source_dup_url (source, source->url));
      break;
    case PROP_CHECKSUM_URL:
      g_value_take_string (value, qlean_image_source_dup_url (source, source->checksum_url));
      break;
    case PROP_FORMAT: g_value_set_string (value, source->format); break;
    case PROP_MIRROR: g_value_take_string (value, qlean_image_dup_mirror (self)); break;
    case PROP_DOWNLOAD_PROGRESS:
      g_value_set_double (value, qlean_image_get_download_progress (self));
      break;
    case PROP_EOL: g_value_set_string (value, source->eol); break;
    case PROP_SIGNED:
      g_value_set_boolean (value, source->signature != QLEAN_SIGNATURE_NONE);
      break;
    default:
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

  switch (prop_id)
    {
    case PROP_MIRROR:
      qlean_image_set_mirror (self, g_value_get_string (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

/* Long only by its properties' documentation, which gi-docgen reads
 * from here: every property of an image, its own and its source's, and
 * its one signal, in one place. */
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
   *
   * Since: 0.1
   */
  properties[PROP_KIND] =
    g_param_spec_enum ("kind", NULL, NULL, QLEAN_TYPE_IMAGE_KIND, QLEAN_IMAGE_KIND_MINIMAL,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * QleanImage:name:
   *
   * A short name for listings: `minimal`, a file's basename, or a
   * distribution image's catalog name.
   *
   * Since: 0.1
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
   *
   * Since: 0.1
   */
  properties[PROP_GUEST_ARCH] =
    g_param_spec_enum ("guest-arch", NULL, NULL, QLEAN_TYPE_ARCH, QLEAN_ARCH_X86_64,
                       G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * QleanImage:distro:
   *
   * The distribution of a catalog image, %QLEAN_DISTRO_CUSTOM for
   * images from a URL or file (and for the minimal and file images).
   *
   * Since: 0.1
   */
  properties[PROP_DISTRO] =
    g_param_spec_enum ("distro", NULL, NULL, QLEAN_TYPE_DISTRO, QLEAN_DISTRO_CUSTOM,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * QleanImage:arch:
   *
   * The guest architecture, in Debian's words (`amd64`, `arm64`,
   * `riscv64`). Downloads and prepared copies are cached under it, so
   * that images of two architectures never share a cache entry.
   *
   * Since: 0.1
   */
  properties[PROP_ARCH] =
    g_param_spec_string ("arch", NULL, NULL, QLEAN_DISTRO_DEFAULT_ARCH,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * QleanImage:release:
   *
   * The distribution release of a catalog image (`13`, `24.04`).
   *
   * Since: 0.1
   */
  properties[PROP_RELEASE] =
    g_param_spec_string ("release", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * QleanImage:aliases:
   *
   * The other names of a catalog image (`debian-13` for
   * `debian-13-generic-amd64`).
   *
   * Since: 0.1
   */
  properties[PROP_ALIASES] =
    g_param_spec_boxed ("aliases", NULL, NULL, G_TYPE_STRV,
                        G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * QleanImage:url:
   *
   * Where the image is downloaded from, with [property@Image:mirror]
   * applied; a `file://` URL for custom images from a file.
   *
   * Since: 0.1
   */
  properties[PROP_URL] =
    g_param_spec_string ("url", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * QleanImage:checksum-url:
   *
   * The checksum file a catalog image is verified against, with
   * [property@Image:mirror] applied.
   *
   * Since: 0.1
   */
  properties[PROP_CHECKSUM_URL] =
    g_param_spec_string ("checksum-url", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * QleanImage:format:
   *
   * The disk format of the download, `qcow2` or `raw`; %NULL when it is
   * found out from the file.
   *
   * Since: 0.1
   */
  properties[PROP_FORMAT] =
    g_param_spec_string ("format", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * QleanImage:mirror:
   *
   * A base URL (or a directory) to download catalog images from instead
   * of their distribution's servers: an image's files are fetched from
   * `MIRROR/NAME/`, under their own file names (`debian-13-generic-amd64.qcow2`
   * and `SHA512SUMS` for `debian-13-generic-amd64`; `SHA256SUMS.gpg` too
   * for an Ubuntu image, whose signature is checked with Ubuntu's key
   * whatever the mirror). Defaults to `$QLEAN_IMAGE_MIRROR`. Set it
   * before the image is pulled.
   *
   * Since: 0.1
   */
  properties[PROP_MIRROR] =
    g_param_spec_string ("mirror", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * QleanImage:download-progress:
   *
   * How much of the running download (or verification) is done, from 0
   * to 1; 0 while the size is unknown. Notified on the thread-default
   * main context of the thread that created the image, at most ten times
   * a second; the download itself never waits for that context.
   *
   * Since: 0.1
   */
  properties[PROP_DOWNLOAD_PROGRESS] =
    g_param_spec_double ("download-progress", NULL, NULL, 0.0, 1.0, 0.0,
                         G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * QleanImage:eol:
   *
   * The day a catalog image's release reaches its end of life (its
   * distribution stops publishing security updates for it), as
   * `YYYY-MM-DD`; %NULL for rolling releases and custom images. Pulling
   * an image past that day logs a message saying so.
   *
   * Since: 0.1
   */
  properties[PROP_EOL] =
    g_param_spec_string ("eol", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * QleanImage:signed:
   *
   * Whether the distribution signs the checksum file of this catalog
   * image and Qlean checks that signature, with gpgv and the
   * distribution's key that Qlean ships, before it trusts a checksum
   * from it. A signature that does not verify fails the pull with
   * %QLEAN_IMAGE_ERROR_BAD_SIGNATURE. %FALSE for distributions that do
   * not sign their cloud images' checksums (Debian) and custom images.
   *
   * Since: 0.1
   */
  properties[PROP_SIGNED] =
    g_param_spec_boolean ("signed", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * QleanImage::progress:
   * @image: the #QleanImage
   * @done: bytes downloaded (or verified) so far
   * @total: the size of the file, or 0 while unknown
   *
   * Emitted as a download or a verification goes on, on the
   * thread-default main context of the thread that created the image,
   * at most ten times a second and once at the end.
   *
   * Since: 0.1
   */
  progress_signal =
    g_signal_new ("progress", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_UINT64, G_TYPE_UINT64);
}

static void
qlean_image_init (QleanImage *self)
{
  g_mutex_init (&self->lock);
  g_mutex_init (&self->prepare_lock);
  self->source = qlean_image_source_new (G_OBJECT (self));
}
/* From the source's progress report, on the creator's context. */
void
qlean_image_emit_progress (QleanImage *self,
                           guint64     done,
                           guint64     total)
{
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_DOWNLOAD_PROGRESS]);
  g_signal_emit (self, progress_signal, 0, done, total);
}

/* Constructors */

/* A distribution or custom image; its constructor fills in its source. */
static QleanImage *
qlean_image_new_distro (const char *name)
{
  QleanImage *self = g_object_new (QLEAN_TYPE_IMAGE, NULL);

  self->kind = QLEAN_IMAGE_KIND_DISTRO;
  self->name = g_strdup (name);
  self->default_memory_mib = 1024;

  return self;
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
 *
 * Since: 0.1
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
 *
 * Since: 0.1
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
 *
 * Since: 0.1
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

QleanImage *
qlean_image_new_from_catalog_entry (const QleanCatalogEntry *entry)
{
  QleanImage *image = qlean_image_new_distro (entry->name);
  QleanImageSource *source = qlean_image_get_source (image);

  source->distro = entry->distro;
  source->catalog_name = g_strdup (entry->name);
  source->cache_name = g_strdup (entry->name);
  source->release = g_strdup (entry->release);
  source->aliases = g_strdupv (entry->aliases);
  qlean_set_str (&source->arch, entry->arch);
  source->url = g_strdup (entry->url);
  source->checksum_url = g_strdup (entry->checksum_url);
  source->checksum_type = entry->checksum_type;
  source->format = g_strdup (entry->format);
  source->file_name = g_path_get_basename (entry->url);
  source->eol = g_strdup (entry->eol);
  source->signature = entry->signature;
  source->signature_url = g_strdup (entry->signature_url);
  source->keyring = g_strdup (entry->keyring);

  return image;
}

/**
 * qlean_image_new_from_distro:
 * @distro: the distribution
 * @name: (nullable): a catalog name such as `debian-13-generic-amd64`, or
 *   an alias such as `debian-13`; %NULL for the distribution's default
 *
 * A distribution's cloud image from Qlean's catalog (see `qlean image
 * ls`), as the seed's `create_image (Distro::Debian, name)`. Preparing it
 * downloads it once into `$XDG_CACHE_HOME/qlean/images/` (verified
 * against the checksum the distribution publishes, whose signature is
 * checked first where the distribution signs it, see
 * [property@Image:signed]; resuming an interrupted download; never
 * following a redirect from HTTPS to HTTP), then makes a copy ready for Qlean once: the
 * QEMU guest agent and Qlean's data channel are injected when missing,
 * and the kernel and initrd are extracted to boot directly. Machines
 * run on a qcow2 overlay of that copy; their first boot
 * ([method@Machine.initialize]) runs cloud-init.
 *
 * An unknown @name, or a @name of another distribution, is reported by
 * [method@Image.pull] and [method@Image.prepare] as
 * %QLEAN_IMAGE_ERROR_NOT_FOUND.
 *
 * Returns: (transfer full): a new #QleanImage
 *
 * Since: 0.1
 */
QleanImage *
qlean_image_new_from_distro (QleanDistro  distro,
                             const char  *name)
{
  GError *error = NULL;
  const QleanCatalogEntry *entry;
  QleanImage *image;

  g_return_val_if_fail (distro >= QLEAN_DISTRO_DEBIAN && distro <= QLEAN_DISTRO_CUSTOM, NULL);

  if (distro == QLEAN_DISTRO_CUSTOM)
    {
      g_set_error (&error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_NOT_FOUND,
                   _("Custom images have no catalog; use qlean_image_new_from_url()"));
      entry = NULL;
    }
  else
    entry = qlean_catalog_lookup (qlean_catalog_get (), distro, name, &error);

  if (entry != NULL)
    return qlean_image_new_from_catalog_entry (entry);

  image = qlean_image_new_distro (name ? name : qlean_distro_nick (distro));
  qlean_image_get_source (image)->distro = distro;
  qlean_image_get_source (image)->cache_name = g_strdup (qlean_image_get_name (image));
  qlean_image_get_source (image)->deferred_error = error;

  return image;
}

/**
 * qlean_image_new_from_catalog:
 * @name: a catalog name or alias, of any distribution
 * @error: return location for a #GError
 *
 * Like [ctor@Image.new_from_distro], for a name alone (as `qlean image
 * pull NAME` takes it).
 *
 * Returns: (transfer full): a new #QleanImage, or %NULL with
 *   %QLEAN_IMAGE_ERROR_NOT_FOUND naming the known images
 *
 * Since: 0.1
 */
QleanImage *
qlean_image_new_from_catalog (const char  *name,
                              GError     **error)
{
  const QleanCatalogEntry *entry;

  g_return_val_if_fail (name != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  entry = qlean_catalog_lookup (qlean_catalog_get (), -1, name, error);
  return entry ? qlean_image_new_from_catalog_entry (entry) : NULL;
}

static gboolean
has_scheme (const char *s)
{
  const char *colon = strstr (s, "://");

  if (colon == NULL || colon == s)
    return FALSE;

  for (const char *p = s; p < colon; p++)
    if (!g_ascii_isalnum (*p) && *p != '+' && *p != '-' && *p != '.')
      return FALSE;

  return TRUE;
}

static char *
strip_extension (const char *file_name)
{
  const char *dot = strrchr (file_name, '.');

  return dot && dot != file_name ? g_strndup (file_name, dot - file_name) : g_strdup (file_name);
}

/**
 * qlean_image_new_from_url:
 * @url_or_path: an `http://`, `https://` or `file://` URL, or a path, of
 *   a Linux cloud image (qcow2 or raw) that has cloud-init, or at least
 *   a systemd, OpenRC or sysvinit userland
 * @digest: (nullable): the image's digest, `sha256:<hex>` or
 *   `sha512:<hex>`
 * @error: return location for a #GError
 *
 * A custom image. It is pulled (copied into the cache and verified) and
 * prepared like a catalog image.
 *
 * A remote image needs its digest: nothing unverified enters the cache.
 * A local file may go without one; it is then hashed while it is copied,
 * and copied again when it changes. A digest must have both its
 * algorithm and its hexadecimal value.
 *
 * Returns: (transfer full): a new #QleanImage, or %NULL with
 *   %QLEAN_IMAGE_ERROR_INVALID_SOURCE
 *
 * Since: 0.1
 */
QleanImage *
qlean_image_new_from_url (const char  *url_or_path,
                          const char  *digest,
                          GError     **error)
{
  g_autofree char *local_path = NULL;
  g_autofree char *url = NULL;
  g_autofree char *file_name = NULL;
  g_autofree char *stem = NULL;
  g_autofree char *hex = NULL;
  GChecksumType type = G_CHECKSUM_SHA256;
  QleanImageSource *source;
  QleanImage *image;

  g_return_val_if_fail (url_or_path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (*url_or_path == '\0')
    {
      g_set_error_literal (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_INVALID_SOURCE,
                           _("An image source must be a URL or a path, not an empty string"));
      return NULL;
    }

  if (digest != NULL && !qlean_digest_parse (digest, &type, &hex, error))
    return NULL;

  if (g_str_has_prefix (url_or_path, "http://") || g_str_has_prefix (url_or_path, "https://"))
    {
      g_autoptr(GUri) uri = g_uri_parse (url_or_path, G_URI_FLAGS_ENCODED, NULL);
      g_autofree char *decoded = NULL;

      if (uri == NULL || g_uri_get_host (uri) == NULL || *g_uri_get_host (uri) == '\0')
        {
          g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_INVALID_SOURCE,
                       _("“%s” is not a valid URL"), url_or_path);
          return NULL;
        }
      if (hex == NULL)
        {
          g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_INVALID_SOURCE,
                       _("The image %s needs a digest (sha256:<hex> or sha512:<hex>): "
                         "Qlean puts nothing unverified into its cache"),
                       url_or_path);
          return NULL;
        }
      decoded = g_uri_unescape_string (g_uri_get_path (uri), NULL);
      file_name = decoded ? g_path_get_basename (decoded) : NULL;
      url = g_strdup (url_or_path);
    }
  else if (g_str_has_prefix (url_or_path, "file://"))
    {
      local_path = g_filename_from_uri (url_or_path, NULL, NULL);
      if (local_path == NULL)
        {
          g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_INVALID_SOURCE,
                       _("“%s” is not a valid file URL"), url_or_path);
          return NULL;
        }
    }
  else if (has_scheme (url_or_path))
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_INVALID_SOURCE,
                   _("Cannot download %s: Qlean downloads http, https and file URLs"),
                   url_or_path);
      return NULL;
    }
  else
    local_path = g_canonicalize_filename (url_or_path, NULL);

  if (local_path != NULL)
    {
      url = g_filename_to_uri (local_path, NULL, NULL);
      file_name = g_path_get_basename (local_path);
    }
  if (file_name == NULL || g_str_equal (file_name, "/") || g_str_equal (file_name, "."))
    qlean_set_str (&file_name, "image");

  stem = strip_extension (file_name);
  image = qlean_image_new_distro (file_name);
  source = qlean_image_get_source (image);
  source->url = g_steal_pointer (&url);
  source->file_name = g_steal_pointer (&file_name);
  source->checksum_type = type;
  source->local_path = g_steal_pointer (&local_path);
  if (hex != NULL)
    source->cache_name = g_strdup_printf ("%s-%.16s", stem, hex);
  else
    {
      /* Without a digest, the path is the identity. */
      g_autofree char *path_hash = g_compute_checksum_for_string (G_CHECKSUM_SHA256, source->local_path, -1);

      source->cache_name = g_strdup_printf ("%s-path-%.16s", stem, path_hash);
    }
  source->digest_hex = g_steal_pointer (&hex);

  return image;
}

/* Accessors */

QleanImageSource *
qlean_image_get_source (QleanImage *self)
{
  return self->source;
}

/**
 * qlean_image_get_kind:
 * @self: a #QleanImage
 *
 * Returns: where the image comes from
 *
 * Since: 0.1
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
 *
 * Since: 0.1
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
 *
 * Since: 0.1
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
 *
 * Since: 0.1
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
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ARCH]);
}

/* The fields below are written once, under the lock, by prepare, and
 * never change afterwards; readers check is_prepared() first. */

/**
 * qlean_image_get_kernel:
 * @self: a #QleanImage
 *
 * Returns: (nullable): the kernel to boot directly, once prepared;
 *   %NULL before, and for a distribution image whose kernel QEMU cannot
 *   load directly (an EFI zboot one), whose machines boot its own boot
 *   loader through UEFI
 *
 * Since: 0.1
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
 *
 * Since: 0.1
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
 *
 * Since: 0.1
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
 *
 * Since: 0.1
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
 *
 * Since: 0.1
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
 *
 * Since: 0.1
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

/**
 * qlean_image_dup_mirror:
 * @self: a #QleanImage
 *
 * Returns: (transfer full) (nullable): the value of [property@Image:mirror]
 *
 * Since: 0.1
 */
char *
qlean_image_dup_mirror (QleanImage *self)
{
  QleanImageSource *source;
  char *mirror;

  g_return_val_if_fail (QLEAN_IS_IMAGE (self), NULL);

  source = qlean_image_get_source (self);
  g_mutex_lock (&source->lock);
  mirror = g_strdup (source->mirror);
  g_mutex_unlock (&source->lock);

  return mirror;
}

/**
 * qlean_image_set_mirror:
 * @self: a #QleanImage
 * @mirror: (nullable): a base URL or a directory; %NULL or empty for the
 *   distribution's own servers
 *
 * Sets [property@Image:mirror].
 *
 * Since: 0.1
 */
void
qlean_image_set_mirror (QleanImage *self,
                        const char *mirror)
{
  QleanImageSource *source;
  gboolean changed;

  g_return_if_fail (QLEAN_IS_IMAGE (self));

  if (mirror != NULL && *mirror == '\0')
    mirror = NULL;

  source = qlean_image_get_source (self);
  g_mutex_lock (&source->lock);
  changed = qlean_set_str (&source->mirror, mirror);
  g_mutex_unlock (&source->lock);

  if (changed)
    {
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_MIRROR]);
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_URL]);
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CHECKSUM_URL]);
    }
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
