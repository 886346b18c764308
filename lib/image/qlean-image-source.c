/* qlean-image-source.c: the distribution side of an image
 *
 * SPDX-License-Identifier: MIT
 *
 * What a distribution or custom image adds to a QleanImage: where it is
 * downloaded from (the mirror applied), where it is cached, the
 * download's progress, the pull (checksum fetched, signature checked,
 * file downloaded or found in the cache) and the verification of a
 * cached file, then the preparation of what was pulled. The image's
 * properties and constructors, which read and fill this source, are in
 * qlean-image.c; the catalog the constructors look names up in is in
 * qlean-distro.c.
 */

#include "config.h"

#include <string.h>
#include <sys/stat.h>
#include <glib/gstdio.h>
#include <glib/gi18n-lib.h>

#include "qlean-distro-private.h"
#include "qlean-error.h"
#include "qlean-image-download-private.h"
#include "qlean-image-prepare-private.h"
#include "qlean-image-private.h"
#include "qlean-image-source-private.h"
#include "qlean-sync-private.h"
#include "qlean-task-private.h"
#include "qlean-util-private.h"

/* A checksum file is a few kilobytes; anything far larger is not one. */
#define MAX_CHECKSUM_FILE_SIZE (16 * 1024 * 1024)
/* A detached signature is a few hundred bytes. */
#define MAX_SIGNATURE_FILE_SIZE (1024 * 1024)
/* Progress is reported to the creator's context at most this often. */
#define PROGRESS_INTERVAL_USEC (G_USEC_PER_SEC / 10)

QleanImageSource *
qlean_image_source_new (GObject *owner)
{
  QleanImageSource *source = g_new0 (QleanImageSource, 1);
  const char *mirror = g_getenv ("QLEAN_IMAGE_MIRROR");

  source->owner = owner;
  source->context = g_main_context_ref_thread_default ();
  source->distro = QLEAN_DISTRO_CUSTOM;
  source->arch = g_strdup (QLEAN_DISTRO_DEFAULT_ARCH);
  source->checksum_type = G_CHECKSUM_SHA256;
  if (mirror != NULL && *mirror != '\0')
    source->mirror = g_strdup (mirror);
  g_mutex_init (&source->lock);

  return source;
}

void
qlean_image_source_free (QleanImageSource *source)
{
  g_main_context_unref (source->context);
  g_free (source->catalog_name);
  g_free (source->release);
  g_strfreev (source->aliases);
  g_free (source->arch);
  g_free (source->url);
  g_free (source->checksum_url);
  g_free (source->digest_hex);
  g_free (source->local_path);
  g_free (source->format);
  g_free (source->file_name);
  g_free (source->cache_name);
  g_free (source->eol);
  g_free (source->signature_url);
  g_free (source->keyring);
  g_clear_error (&source->deferred_error);
  g_free (source->mirror);
  g_free (source->cache_dir);
  g_mutex_clear (&source->lock);
  g_free (source);
}

void
qlean_image_source_set_arch (QleanImageSource *source,
                             const char       *arch)
{
  qlean_set_str (&source->arch, arch);
}

/* Mirrors hold each image's files under a directory named after it. A
 * plain directory works as a mirror too. */
char *
qlean_image_source_dup_url (QleanImageSource *source,
                            const char       *upstream)
{
  g_autofree char *mirror = NULL;
  g_autofree char *base = NULL;
  g_autofree char *file = NULL;

  if (upstream == NULL)
    return NULL;

  g_mutex_lock (&source->lock);
  mirror = g_strdup (source->mirror);
  g_mutex_unlock (&source->lock);

  if (mirror == NULL || source->catalog_name == NULL)
    return g_strdup (upstream);

  if (g_path_is_absolute (mirror))
    {
      g_autofree char *uri = g_filename_to_uri (mirror, NULL, NULL);

      if (uri != NULL)
        qlean_set_str (&mirror, uri);
    }

  base = g_strdup (mirror);
  while (g_str_has_suffix (base, "/"))
    base[strlen (base) - 1] = '\0';
  file = g_path_get_basename (upstream);

  return g_strdup_printf ("%s/%s/%s", base, source->catalog_name, file);
}

static char *
source_cache_root (QleanImageSource *source)
{
  char *dir;

  g_mutex_lock (&source->lock);
  dir = g_strdup (source->cache_dir);
  g_mutex_unlock (&source->lock);

  return dir ? dir : g_build_filename (g_get_user_cache_dir (), "qlean", NULL);
}

/* images/<arch>/<name>/<file> for catalog images, and
 * images/<arch>/custom/<name>-<key>/<file> for custom ones. */
char *
qlean_image_source_dup_cache_file (QleanImageSource *source)
{
  g_autofree char *root = source_cache_root (source);

  if (source->catalog_name != NULL)
    return g_build_filename (root, "images", source->arch, source->cache_name, source->file_name, NULL);

  return g_build_filename (root, "images", source->arch, "custom", source->cache_name,
                           source->file_name, NULL);
}

static gboolean
emit_progress_cb (gpointer user_data)
{
  g_autoptr(GObject) owner = g_weak_ref_get (user_data);
  QleanImageSource *source;
  guint64 done, total;

  if (owner == NULL)
    return G_SOURCE_REMOVE;

  source = qlean_image_get_source (QLEAN_IMAGE (owner));
  g_atomic_int_set (&source->emit_pending, 0);
  g_mutex_lock (&source->lock);
  done = source->done;
  total = source->total;
  g_mutex_unlock (&source->lock);

  qlean_image_emit_progress (QLEAN_IMAGE (owner), done, total);

  return G_SOURCE_REMOVE;
}

static void
weak_ref_free (gpointer data)
{
  g_weak_ref_clear (data);
  g_free (data);
}

/* From the downloading thread: record the numbers, and let the creator's
 * context know, at most once per interval and with at most one report
 * queued, so that a fast download cannot flood a main loop. */
static void
source_set_progress (QleanImageSource *source,
                     guint64           done,
                     guint64           total,
                     gboolean          force)
{
  gint64 now = g_get_monotonic_time ();
  GWeakRef *ref;
  GSource *idle;

  g_mutex_lock (&source->lock);
  source->done = done;
  source->total = total;
  if (!force && now - source->last_report < PROGRESS_INTERVAL_USEC)
    {
      g_mutex_unlock (&source->lock);
      return;
    }
  source->last_report = now;
  g_mutex_unlock (&source->lock);

  if (!g_atomic_int_compare_and_exchange (&source->emit_pending, 0, 1))
    return;

  ref = g_new0 (GWeakRef, 1);
  g_weak_ref_init (ref, source->owner);
  idle = g_idle_source_new ();
  g_source_set_priority (idle, G_PRIORITY_DEFAULT);
  g_source_set_callback (idle, emit_progress_cb, ref, weak_ref_free);
  g_source_set_static_name (idle, "[qlean] image progress");
  g_source_attach (idle, source->context);
  g_source_unref (idle);
}

/* Downloads and hashes report here, from their thread. */
static void
progress_cb (guint64  done,
             guint64  total,
             gpointer user_data)
{
  source_set_progress (user_data, done, total, FALSE);
}

/* Fetches the distribution's checksum for the image. */
static char *
source_expected_digest (QleanImageSource  *source,
                        GCancellable      *cancellable,
                        GError           **error)
{
  g_autofree char *checksum_url = qlean_image_source_dup_url (source, source->checksum_url);
  g_autoptr(GBytes) bytes = NULL;
  gsize len;
  const char *data;

  bytes = qlean_download_bytes (checksum_url, MAX_CHECKSUM_FILE_SIZE, cancellable, error);
  if (bytes == NULL)
    return NULL;

  /* A signed list is read only for what its signature covers, and only
   * once the distribution's key says it is theirs: HTTPS says where it
   * came from, the signature says who wrote it (a mirror cannot). */
  if (source->signature != QLEAN_SIGNATURE_NONE)
    {
      g_autofree char *keyring = qlean_keyring_find (source->keyring, error);
      g_autofree char *signature_url = NULL;
      g_autoptr(GBytes) signature = NULL;
      GBytes *payload;

      if (keyring == NULL)
        return NULL;
      if (source->signature == QLEAN_SIGNATURE_DETACHED)
        {
          signature_url = qlean_image_source_dup_url (source, source->signature_url);
          signature = qlean_download_bytes (signature_url, MAX_SIGNATURE_FILE_SIZE, cancellable, error);
          if (signature == NULL)
            return NULL;
        }
      payload = qlean_signature_verify (keyring, bytes, signature, checksum_url, cancellable, error);
      if (payload == NULL)
        return NULL;
      g_bytes_unref (bytes);
      bytes = payload;
    }

  data = g_bytes_get_data (bytes, &len);
  return qlean_checksum_file_lookup (data, len, source->file_name, source->checksum_type, NULL,
                                     checksum_url, error);
}

/* Download (or find in the cache) and verify; returns the cached file
 * and what its sidecar says. */
static char *
source_pull (QleanImageSource  *source,
             QleanCacheInfo    *info,
             GCancellable      *cancellable,
             GError           **error)
{
  g_autofree char *dest = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *lock_path = NULL;
  g_autofree char *url = NULL;
  g_autofree char *expected = NULL;
  g_autoptr(GError) checksum_error = NULL;
  struct stat local_st = { 0 };
  gboolean ok;
  int lock_fd;

  if (source->deferred_error != NULL)
    {
      g_propagate_error (error, g_error_copy (source->deferred_error));
      return NULL;
    }

  /* Once per image: it is pulled each time a machine is made from it. */
  if (qlean_eol_reached (source->eol) && g_atomic_int_compare_and_exchange (&source->eol_warned, 0, 1))
    g_message (_("The image %s reached its end of life on %s: it gets no security updates "
                 "any more. Choose a supported release (see “qlean image ls”)"),
               source->catalog_name, source->eol);

  dest = qlean_image_source_dup_cache_file (source);
  url = qlean_image_source_dup_url (source, source->url);

  if (source->local_path != NULL)
    {
      if (g_stat (source->local_path, &local_st) != 0 || !S_ISREG (local_st.st_mode))
        {
          g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_NOT_FOUND,
                       _("The image file %s does not exist or is not a regular file"),
                       source->local_path);
          return NULL;
        }
    }

  if (source->digest_hex != NULL)
    expected = g_strdup (source->digest_hex);
  else if (source->checksum_url != NULL)
    {
      expected = source_expected_digest (source, cancellable, &checksum_error);
      if (expected == NULL)
        {
          /* Offline: what is already in the cache was verified when it
           * was downloaded, so it is good to use. */
          if (g_error_matches (checksum_error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_NETWORK) &&
              qlean_cache_lookup (dest, info))
            {
              g_debug ("Using the cached %s: %s", dest, checksum_error->message);
              return g_steal_pointer (&dest);
            }
          g_propagate_error (error, g_steal_pointer (&checksum_error));
          return NULL;
        }
    }

  dir = g_path_get_dirname (dest);
  if (!qlean_cache_mkdir (dir, error))
    return NULL;

  lock_path = g_build_filename (dir, ".lock", NULL);
  lock_fd = qlean_cache_lock (lock_path, cancellable, error);
  if (lock_fd < 0)
    return NULL;

  /* Whoever held the lock before may have downloaded it already. */
  if (qlean_cache_lookup (dest, info) &&
      (expected != NULL
       ? info->type == source->checksum_type && g_str_equal (info->hex, expected)
       : info->source_size == (guint64) local_st.st_size &&
         info->source_mtime == (gint64) local_st.st_mtim.tv_sec))
    {
      qlean_cache_unlock (lock_fd);
      return g_steal_pointer (&dest);
    }

  qlean_cache_info_clear (info);
  info->name = g_strdup (source->catalog_name ? source->catalog_name : source->file_name);
  info->source = g_strdup (source->local_path ? source->local_path : url);
  info->source_size = local_st.st_size;
  info->source_mtime = local_st.st_mtim.tv_sec;

  source_set_progress (source, 0, 0, TRUE);
  ok = qlean_download_file (url, dest, source->checksum_type, expected, info,
                            progress_cb, source, cancellable, error);
  if (ok)
    {
      struct stat st;

      if (g_stat (dest, &st) == 0)
        source_set_progress (source, st.st_size, st.st_size, TRUE);
    }
  qlean_cache_unlock (lock_fd);

  return ok ? g_steal_pointer (&dest) : NULL;
}

gboolean
qlean_image_source_prepare (QleanImageSource  *source,
                            char             **kernel,
                            char             **initrd,
                            char             **disk,
                            char             **cmdline,
                            GCancellable      *cancellable,
                            GError           **error)
{
  g_auto(QleanCacheInfo) info = { 0 };
  g_auto(QleanPrepared) prepared = { 0 };
  g_autofree char *path = NULL;
  g_autofree char *digest = NULL;
  g_autofree char *root = NULL;

  path = source_pull (source, &info, cancellable, error);
  if (path == NULL)
    return FALSE;

  digest = g_strdup_printf ("%s:%s", qlean_checksum_type_to_name (info.type), info.hex);
  root = source_cache_root (source);
  if (!qlean_image_prepare_disk (path, source->format, digest, source->cache_name, source->arch,
                                 root, &prepared, cancellable, error))
    return FALSE;

  g_mutex_lock (&source->lock);
  source->cloud_init = prepared.cloud_init;
  g_mutex_unlock (&source->lock);

  *kernel = g_steal_pointer (&prepared.kernel);
  *initrd = g_steal_pointer (&prepared.initrd);
  *disk = g_steal_pointer (&prepared.disk);
  *cmdline = g_steal_pointer (&prepared.cmdline);
  return TRUE;
}

/* Accessors of distribution and custom images */

/**
 * qlean_image_get_distro:
 * @self: a #QleanImage
 *
 * Returns: the image's distribution; %QLEAN_DISTRO_CUSTOM for custom,
 *   minimal and file images
 *
 * Since: 0.1
 */
QleanDistro
qlean_image_get_distro (QleanImage *self)
{
  g_return_val_if_fail (QLEAN_IS_IMAGE (self), QLEAN_DISTRO_CUSTOM);

  return qlean_image_get_source (self)->distro;
}

/**
 * qlean_image_get_arch:
 * @self: a #QleanImage
 *
 * Returns: the guest architecture, in Debian's words (`amd64`)
 *
 * Since: 0.1
 */
const char *
qlean_image_get_arch (QleanImage *self)
{
  g_return_val_if_fail (QLEAN_IS_IMAGE (self), NULL);

  return qlean_image_get_source (self)->arch;
}

/**
 * qlean_image_dup_url:
 * @self: a #QleanImage
 *
 * Returns: (transfer full) (nullable): where the image is downloaded
 *   from, with the mirror applied; %NULL for minimal and file images
 *
 * Since: 0.1
 */
char *
qlean_image_dup_url (QleanImage *self)
{
  QleanImageSource *source;

  g_return_val_if_fail (QLEAN_IS_IMAGE (self), NULL);

  source = qlean_image_get_source (self);
  return qlean_image_source_dup_url (source, source->url);
}

/**
 * qlean_image_get_download_progress:
 * @self: a #QleanImage
 *
 * Returns: the value of [property@Image:download-progress]
 *
 * Since: 0.1
 */
double
qlean_image_get_download_progress (QleanImage *self)
{
  QleanImageSource *source;
  double progress;

  g_return_val_if_fail (QLEAN_IS_IMAGE (self), 0.0);

  source = qlean_image_get_source (self);
  g_mutex_lock (&source->lock);
  progress = source->total > 0 ? MIN (1.0, (double) source->done / source->total) : 0.0;
  g_mutex_unlock (&source->lock);

  return progress;
}

/**
 * qlean_image_get_cached_path:
 * @self: a #QleanImage
 *
 * Where the verified download of the image is in the cache. This costs
 * a stat(), not a hash: see [method@Image.verify].
 *
 * Returns: (transfer full) (nullable) (type filename): the cached file,
 *   or %NULL when the image is not downloaded (or not a downloadable
 *   image)
 *
 * Since: 0.1
 */
char *
qlean_image_get_cached_path (QleanImage *self)
{
  QleanImageSource *source;
  g_autofree char *path = NULL;

  g_return_val_if_fail (QLEAN_IS_IMAGE (self), NULL);

  source = qlean_image_get_source (self);
  if (qlean_image_get_kind (self) != QLEAN_IMAGE_KIND_DISTRO || source->url == NULL)
    return NULL;

  path = qlean_image_source_dup_cache_file (source);
  return qlean_cache_lookup (path, NULL) ? g_steal_pointer (&path) : NULL;
}

void
qlean_image_set_cache_dir (QleanImage *self,
                           const char *dir)
{
  QleanImageSource *source = qlean_image_get_source (self);

  g_mutex_lock (&source->lock);
  qlean_set_str (&source->cache_dir, dir);
  g_mutex_unlock (&source->lock);
}

gboolean
qlean_image_has_cloud_init (QleanImage *self)
{
  QleanImageSource *source = qlean_image_get_source (self);
  gboolean cloud_init;

  if (!qlean_image_is_prepared (self))
    return FALSE;

  g_mutex_lock (&source->lock);
  cloud_init = source->cloud_init;
  g_mutex_unlock (&source->lock);

  return cloud_init;
}

/* Pull and verify */

/* Runs @thread_func for a pull or a verification on a worker thread; a
 * minimal or file image has nothing to pull or verify, and succeeds at
 * once. */
static void
run_source_task (QleanImage          *self,
                 GCancellable        *cancellable,
                 GAsyncReadyCallback  callback,
                 gpointer             user_data,
                 gpointer             source_tag,
                 const char          *name,
                 GTaskThreadFunc      thread_func)
{
  g_autoptr(GTask) task = qlean_task_new (self, cancellable, callback, user_data, source_tag, name);

  if (qlean_image_get_kind (self) != QLEAN_IMAGE_KIND_DISTRO)
    {
      g_task_return_boolean (task, TRUE);
      return;
    }

  g_task_run_in_thread (task, thread_func);
}

static void
pull_thread (GTask        *task,
             gpointer      source_object,
             gpointer      task_data,
             GCancellable *cancellable)
{
  QleanImage *self = source_object;
  g_auto(QleanCacheInfo) info = { 0 };
  g_autofree char *path = NULL;
  GError *error = NULL;

  path = source_pull (qlean_image_get_source (self), &info, cancellable, &error);
  if (path == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
}

/**
 * qlean_image_pull_async:
 * @self: a #QleanImage
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when the image is in the cache
 * @user_data: data for @callback
 *
 * Downloads the image into the cache and verifies it, on a worker
 * thread; or, when it is cached already, checks that the cached file is
 * still the one that was verified (by size, inode and modification time,
 * without hashing it) and that the distribution still publishes the same
 * checksum. Without a network, a cached image is used as it is.
 *
 * Concurrent pulls of one image, in threads or processes, download it
 * once. An interrupted download (cancelled, or a dropped connection that
 * could not be resumed at once) resumes on the next pull with an HTTP
 * Range request. Progress is reported through [property@Image:download-progress]
 * and [signal@Image::progress].
 *
 * Minimal and file images have nothing to pull: it succeeds at once.
 *
 * Since: 0.1
 */
void
qlean_image_pull_async (QleanImage          *self,
                        GCancellable        *cancellable,
                        GAsyncReadyCallback  callback,
                        gpointer             user_data)
{
  g_return_if_fail (QLEAN_IS_IMAGE (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  run_source_task (self, cancellable, callback, user_data, qlean_image_pull_async,
                   "[qlean] pull image", pull_thread);
}

/**
 * qlean_image_pull_finish:
 * @self: a #QleanImage
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_image_pull_async().
 *
 * Returns: %TRUE when the image is in the cache, verified
 *
 * Since: 0.1
 */
gboolean
qlean_image_pull_finish (QleanImage    *self,
                         GAsyncResult  *result,
                         GError       **error)
{
  g_return_val_if_fail (QLEAN_IS_IMAGE (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_image_pull_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_image_pull:
 * @self: a #QleanImage
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_image_pull_async().
 *
 * Returns: %TRUE when the image is in the cache, verified
 *
 * Since: 0.1
 */
gboolean
qlean_image_pull (QleanImage    *self,
                  GCancellable  *cancellable,
                  GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_IMAGE (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!qlean_sync_call_begin (&call, error))
    return FALSE;
  qlean_image_pull_async (self, cancellable, qlean_sync_call_done, &call);

  return qlean_image_pull_finish (self, qlean_sync_call_wait (&call), error);
}

static void
verify_thread (GTask        *task,
               gpointer      source_object,
               gpointer      task_data,
               GCancellable *cancellable)
{
  QleanImage *self = source_object;
  QleanImageSource *source = qlean_image_get_source (self);
  g_auto(QleanCacheInfo) info = { 0 };
  g_autofree char *path = qlean_image_source_dup_cache_file (source);
  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *lock_path = g_build_filename (dir, ".lock", NULL);
  g_autofree char *sidecar = qlean_cache_sidecar_path (path);
  g_autofree char *hex = NULL;
  GError *error = NULL;
  int lock_fd;

  if (!g_file_test (path, G_FILE_TEST_IS_REGULAR) || !qlean_cache_read_sidecar (path, &info))
    {
      g_task_return_new_error (task, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_NOT_FOUND,
                               _("The image %s is not in the cache (%s); pull it first: "
                                 "qlean image pull %s"),
                               qlean_image_get_name (self), path, qlean_image_get_name (self));
      return;
    }

  lock_fd = qlean_cache_lock (lock_path, cancellable, &error);
  if (lock_fd < 0)
    {
      g_task_return_error (task, error);
      return;
    }

  source_set_progress (source, 0, 0, TRUE);
  hex = qlean_hash_file (path, info.type, progress_cb, source, cancellable, &error);
  if (hex == NULL)
    {
      qlean_cache_unlock (lock_fd);
      g_task_return_error (task, error);
      return;
    }

  if (!g_str_equal (hex, info.hex))
    {
      g_unlink (path);
      g_unlink (sidecar);
      qlean_cache_unlock (lock_fd);
      g_task_return_new_error (task, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_CHECKSUM_MISMATCH,
                               _("The cached image %s (%s) has the %s checksum %s, but %s was "
                                 "verified when it was downloaded; it has been removed: pull it "
                                 "again"),
                               qlean_image_get_name (self), path,
                               qlean_checksum_type_to_name (info.type), hex, info.hex);
      return;
    }

  /* Same content, maybe touched: make the quick check pass again. */
  if (!qlean_cache_lookup (path, NULL) && !qlean_cache_write_sidecar (path, path, &info, &error))
    {
      qlean_cache_unlock (lock_fd);
      g_task_return_error (task, error);
      return;
    }

  source_set_progress (source, info.size, info.size, TRUE);
  qlean_cache_unlock (lock_fd);
  g_task_return_boolean (task, TRUE);
}

/**
 * qlean_image_verify_async:
 * @self: a #QleanImage
 * @cancellable: (nullable): a #GCancellable
 * @callback: called when the image is verified
 * @user_data: data for @callback
 *
 * Hashes the cached download of the image in full, on a worker thread,
 * and compares it with the digest it was verified against when it was
 * downloaded. A file that does not match is removed, and the call fails
 * with %QLEAN_IMAGE_ERROR_CHECKSUM_MISMATCH. Fails with
 * %QLEAN_IMAGE_ERROR_NOT_FOUND when the image is not cached. This is
 * `qlean image verify`; using an image never hashes it again.
 *
 * Since: 0.1
 */
void
qlean_image_verify_async (QleanImage          *self,
                          GCancellable        *cancellable,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  g_return_if_fail (QLEAN_IS_IMAGE (self));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  run_source_task (self, cancellable, callback, user_data, qlean_image_verify_async,
                   "[qlean] verify image", verify_thread);
}

/**
 * qlean_image_verify_finish:
 * @self: a #QleanImage
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_image_verify_async().
 *
 * Returns: %TRUE when the cached image has the right digest
 *
 * Since: 0.1
 */
gboolean
qlean_image_verify_finish (QleanImage    *self,
                           GAsyncResult  *result,
                           GError       **error)
{
  g_return_val_if_fail (QLEAN_IS_IMAGE (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_image_verify_async), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_image_verify:
 * @self: a #QleanImage
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_image_verify_async().
 *
 * Returns: %TRUE when the cached image has the right digest
 *
 * Since: 0.1
 */
gboolean
qlean_image_verify (QleanImage    *self,
                    GCancellable  *cancellable,
                    GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_IMAGE (self), FALSE);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!qlean_sync_call_begin (&call, error))
    return FALSE;
  qlean_image_verify_async (self, cancellable, qlean_sync_call_done, &call);

  return qlean_image_verify_finish (self, qlean_sync_call_wait (&call), error);
}
