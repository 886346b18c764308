/* qlean-distro.c: distributions' cloud images and custom images
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>
#include <sys/stat.h>
#include <glib/gstdio.h>
#include <glib/gi18n-lib.h>
#include <json-glib/json-glib.h>

#include "qlean-distro-private.h"
#include "qlean-enums.h"
#include "qlean-error.h"
#include "qlean-image-download-private.h"
#include "qlean-image-private.h"
#include "qlean-resources.h"
#include "qlean-sync-private.h"
#include "qlean-util-private.h"

#define CATALOG_RESOURCE "/org/qlean/images/images.json"
/* A checksum file is a few kilobytes; anything far larger is not one. */
#define MAX_CHECKSUM_FILE_SIZE (16 * 1024 * 1024)
/* A detached signature is a few hundred bytes. */
#define MAX_SIGNATURE_FILE_SIZE (1024 * 1024)
#define KEYRING_DIR "keyrings"
/* Progress is reported to the creator's context at most this often. */
#define PROGRESS_INTERVAL_USEC (G_USEC_PER_SEC / 10)

/* The catalog */

void
qlean_catalog_entry_free (QleanCatalogEntry *entry)
{
  g_free (entry->name);
  g_strfreev (entry->aliases);
  g_free (entry->release);
  g_free (entry->arch);
  g_free (entry->url);
  g_free (entry->checksum_url);
  g_free (entry->format);
  g_free (entry->eol);
  g_free (entry->signature_url);
  g_free (entry->keyring);
  g_free (entry);
}

/* The catalog names architectures as Debian does; the kernel's and
 * QEMU's names are taken too. */
static const char *
normalize_arch (const char *arch)
{
  static const char * const names[][2] = {
    { "amd64", "amd64" }, { "x86_64", "amd64" },
    { "arm64", "arm64" }, { "aarch64", "arm64" },
    { "riscv64", "riscv64" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    if (g_str_equal (arch, names[i][0]))
      return names[i][1];

  return NULL;
}

static gboolean
parse_date (const char *text)
{
  g_autoptr(GDateTime) date = NULL;
  int y, m, d;
  char end;

  if (strlen (text) != 10 || sscanf (text, "%4d-%2d-%2d%c", &y, &m, &d, &end) != 3)
    return FALSE;
  date = g_date_time_new_utc (y, m, d, 0, 0, 0);
  return date != NULL;
}

gboolean
qlean_eol_reached (const char *eol)
{
  g_autoptr(GDateTime) now = g_date_time_new_now_utc ();
  g_autofree char *today = g_date_time_format (now, "%Y-%m-%d");

  /* ISO dates compare as strings. */
  return eol != NULL && strcmp (eol, today) <= 0;
}

char *
qlean_keyring_find (const char  *name,
                    GError     **error)
{
  const char * const dirs[] = { QLEAN_PKGDATADIR, QLEAN_SOURCE_DATADIR };

  if (g_path_is_absolute (name))
    {
      if (g_file_test (name, G_FILE_TEST_IS_REGULAR))
        return g_strdup (name);
    }
  else if (strchr (name, '/') == NULL)
    for (guint i = 0; i < G_N_ELEMENTS (dirs); i++)
      {
        g_autofree char *path = g_build_filename (dirs[i], KEYRING_DIR, name, NULL);

        if (g_file_test (path, G_FILE_TEST_IS_REGULAR))
          return g_steal_pointer (&path);
      }

  g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
               _("The keyring %s that checks this image's checksums is not installed "
                 "(looked in %s/%s and %s/%s); reinstall Qlean"),
               name, QLEAN_PKGDATADIR, KEYRING_DIR, QLEAN_SOURCE_DATADIR, KEYRING_DIR);
  return NULL;
}

static const char *
distro_nick (QleanDistro distro)
{
  g_autoptr(GEnumClass) klass = g_type_class_ref (QLEAN_TYPE_DISTRO);
  GEnumValue *value = g_enum_get_value (klass, distro);

  return value ? value->value_nick : "unknown";
}

static const char *
string_member (JsonObject *object,
               const char *member)
{
  JsonNode *node = json_object_get_member (object, member);

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    return NULL;

  return json_node_get_string (node);
}

GPtrArray *
qlean_catalog_parse (const char  *json,
                     gssize       len,
                     const char  *source,
                     GError     **error)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GPtrArray) entries = g_ptr_array_new_with_free_func ((GDestroyNotify) qlean_catalog_entry_free);
  g_autoptr(GEnumClass) distros = g_type_class_ref (QLEAN_TYPE_DISTRO);
  g_autoptr(GError) local_error = NULL;
  JsonNode *root;
  JsonNode *images;

  if (!json_parser_load_from_data (parser, json, len, &local_error))
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_FAILED,
                   _("The image catalog %s is not valid JSON: %s"), source, local_error->message);
      return NULL;
    }

  root = json_parser_get_root (parser);
  images = root && JSON_NODE_HOLDS_OBJECT (root)
           ? json_object_get_member (json_node_get_object (root), "images") : NULL;
  if (images == NULL || !JSON_NODE_HOLDS_ARRAY (images))
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_FAILED,
                   _("The image catalog %s has no “images” array"), source);
      return NULL;
    }

  for (guint i = 0; i < json_array_get_length (json_node_get_array (images)); i++)
    {
      JsonNode *node = json_array_get_element (json_node_get_array (images), i);
      static const char * const required[] = { "name", "distro", "url", "checksum-url", "checksum" };
      const char *arch, *eol, *signature;
      QleanCatalogEntry *entry;
      JsonObject *object;
      JsonNode *aliases;
      GEnumValue *distro;

      if (!JSON_NODE_HOLDS_OBJECT (node))
        {
          g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_FAILED,
                       _("The image catalog %s is invalid: image %u is not an object"), source, i);
          return NULL;
        }
      object = json_node_get_object (node);

      for (guint r = 0; r < G_N_ELEMENTS (required); r++)
        if (string_member (object, required[r]) == NULL)
          {
            g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_FAILED,
                         _("The image catalog %s is invalid: image %u has no “%s”"),
                         source, i, required[r]);
            return NULL;
          }

      distro = g_enum_get_value_by_nick (distros, string_member (object, "distro"));
      if (distro == NULL || distro->value == QLEAN_DISTRO_CUSTOM)
        {
          g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_FAILED,
                       _("The image catalog %s is invalid: image %u has unknown distro “%s”"),
                       source, i, string_member (object, "distro"));
          return NULL;
        }

      entry = g_new0 (QleanCatalogEntry, 1);
      g_ptr_array_add (entries, entry);
      entry->name = g_strdup (string_member (object, "name"));
      entry->distro = distro->value;
      entry->release = g_strdup (string_member (object, "release"));
      arch = string_member (object, "arch") ?: "amd64";
      entry->arch = g_strdup (normalize_arch (arch));
      if (entry->arch == NULL)
        {
          g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_FAILED,
                       _("The image catalog %s is invalid: %s has arch “%s”, not amd64 "
                         "(x86_64), arm64 (aarch64) or riscv64"),
                       source, entry->name, arch);
          return NULL;
        }
      eol = string_member (object, "eol");
      if (eol != NULL && !parse_date (eol))
        {
          g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_FAILED,
                       _("The image catalog %s is invalid: %s has eol “%s”, not a date "
                         "(YYYY-MM-DD)"),
                       source, entry->name, eol);
          return NULL;
        }
      entry->eol = g_strdup (eol);
      signature = string_member (object, "signature") ?: "none";
      if (g_str_equal (signature, "detached"))
        entry->signature = QLEAN_SIGNATURE_DETACHED;
      else if (g_str_equal (signature, "clearsigned"))
        entry->signature = QLEAN_SIGNATURE_CLEARSIGNED;
      else if (g_str_equal (signature, "none"))
        entry->signature = QLEAN_SIGNATURE_NONE;
      else
        {
          g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_FAILED,
                       _("The image catalog %s is invalid: %s has signature “%s”, not "
                         "none, detached or clearsigned"),
                       source, entry->name, signature);
          return NULL;
        }
      entry->signature_url = g_strdup (string_member (object, "signature-url"));
      entry->keyring = g_strdup (string_member (object, "keyring"));
      if ((entry->signature != QLEAN_SIGNATURE_NONE && entry->keyring == NULL) ||
          (entry->signature == QLEAN_SIGNATURE_DETACHED && entry->signature_url == NULL))
        {
          g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_FAILED,
                       _("The image catalog %s is invalid: %s is signed but has no “%s”"),
                       source, entry->name, entry->keyring == NULL ? "keyring" : "signature-url");
          return NULL;
        }
      entry->url = g_strdup (string_member (object, "url"));
      entry->checksum_url = g_strdup (string_member (object, "checksum-url"));
      entry->format = g_strdup (string_member (object, "format") ?: "qcow2");
      entry->checksum_type = qlean_checksum_type_from_name (string_member (object, "checksum"));
      if ((int) entry->checksum_type == -1)
        {
          g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_FAILED,
                       _("The image catalog %s is invalid: %s has checksum “%s”, not sha256 or sha512"),
                       source, entry->name, string_member (object, "checksum"));
          return NULL;
        }

      aliases = json_object_get_member (object, "aliases");
      if (aliases != NULL && JSON_NODE_HOLDS_ARRAY (aliases))
        {
          JsonArray *array = json_node_get_array (aliases);
          GStrvBuilder *builder = g_strv_builder_new ();

          for (guint a = 0; a < json_array_get_length (array); a++)
            {
              const char *alias = json_array_get_string_element (array, a);

              if (alias != NULL)
                g_strv_builder_add (builder, alias);
            }
          entry->aliases = g_strv_builder_end (builder);
          g_strv_builder_unref (builder);
        }
      else
        entry->aliases = g_new0 (char *, 1);
    }

  return g_steal_pointer (&entries);
}

static GPtrArray *
catalog_load_file (const char *path)
{
  g_autofree char *text = NULL;
  g_autoptr(GError) error = NULL;
  gsize len;
  GPtrArray *catalog;

  if (!g_file_get_contents (path, &text, &len, NULL))
    return NULL;

  catalog = qlean_catalog_parse (text, len, path, &error);
  if (catalog == NULL)
    g_warning ("Ignoring the image catalog %s: %s", path, error->message);

  return catalog;
}

static GPtrArray *
catalog_load (void)
{
  const char *env = g_getenv ("QLEAN_IMAGE_CATALOG");
  const char * const files[] = { QLEAN_PKGDATADIR "/images.json", QLEAN_SOURCE_DATADIR "/images.json" };
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(GError) error = NULL;
  GPtrArray *catalog;
  gsize len;
  const char *data;

  /* A file on disk wins so that an administrator (or a developer in the
   * source tree) can pin or add images without rebuilding Qlean. */
  if (env != NULL && *env != '\0' && (catalog = catalog_load_file (env)) != NULL)
    return catalog;
  for (guint i = 0; i < G_N_ELEMENTS (files); i++)
    if ((catalog = catalog_load_file (files[i])) != NULL)
      return catalog;

  bytes = g_resource_lookup_data (qlean_resources (), CATALOG_RESOURCE, 0, &error);
  g_assert_no_error (error);
  data = g_bytes_get_data (bytes, &len);
  catalog = qlean_catalog_parse (data, len, "resource://" CATALOG_RESOURCE, &error);
  g_assert_no_error (error);

  return catalog;
}

GPtrArray *
qlean_catalog_get (void)
{
  static GPtrArray *catalog;

  if (g_once_init_enter (&catalog))
    g_once_init_leave (&catalog, catalog_load ());

  return catalog;
}

static gboolean
entry_has_name (const QleanCatalogEntry *entry,
                const char              *name)
{
  return g_str_equal (entry->name, name) || g_strv_contains ((const char * const *) entry->aliases, name);
}

const QleanCatalogEntry *
qlean_catalog_lookup (GPtrArray   *catalog,
                      int          distro,
                      const char  *name,
                      GError     **error)
{
  g_autoptr(GString) known = g_string_new (NULL);

  for (guint i = 0; i < catalog->len; i++)
    {
      const QleanCatalogEntry *entry = g_ptr_array_index (catalog, i);

      if (name == NULL)
        {
          if ((int) entry->distro == distro)
            return entry;
          continue;
        }

      if (!entry_has_name (entry, name))
        continue;

      if (distro != -1 && entry->distro != (QleanDistro) distro)
        {
          g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_NOT_FOUND,
                       _("The image “%s” is a %s image, not a %s one"),
                       name, distro_nick (entry->distro), distro_nick (distro));
          return NULL;
        }

      return entry;
    }

  for (guint i = 0; i < catalog->len; i++)
    {
      const QleanCatalogEntry *entry = g_ptr_array_index (catalog, i);

      if (distro == -1 || entry->distro == (QleanDistro) distro)
        g_string_append_printf (known, "%s%s", known->len ? ", " : "", entry->name);
    }

  if (name == NULL)
    g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_NOT_FOUND,
                 _("The image catalog has no %s image"), distro_nick (distro));
  else
    g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_NOT_FOUND,
                 _("No image “%s” in the catalog; known images: %s (see “qlean image ls”)"),
                 name, known->str);
  return NULL;
}

/* The source of an image */

struct _QleanImageSource
{
  GObject       *owner;         /* not a reference: the source lives in it */
  GMainContext  *context;       /* where progress is reported */

  /* Set once by a constructor. */
  QleanDistro    distro;
  char          *catalog_name;  /* NULL for custom images */
  char          *release;
  char         **aliases;
  char          *arch;
  char          *url;           /* before the mirror */
  char          *checksum_url;
  GChecksumType  checksum_type;
  char          *digest_hex;    /* custom images with a digest */
  char          *local_path;    /* custom images from a file */
  char          *format;        /* NULL: look at the file */
  char          *file_name;
  char          *cache_name;
  char          *eol;
  QleanSignatureKind signature;
  char          *signature_url;
  char          *keyring;
  GError        *deferred_error;

  GMutex         lock;          /* guards what follows */
  char          *mirror;
  char          *cache_dir;
  guint64        done;
  guint64        total;
  gint64         last_report;
  gboolean       cloud_init;
  gint           emit_pending;  /* atomic */
  gint           eol_warned;    /* atomic */
};

enum {
  SOURCE_PROP_DISTRO,
  SOURCE_PROP_ARCH,
  SOURCE_PROP_RELEASE,
  SOURCE_PROP_ALIASES,
  SOURCE_PROP_URL,
  SOURCE_PROP_CHECKSUM_URL,
  SOURCE_PROP_FORMAT,
  SOURCE_PROP_MIRROR,
  SOURCE_PROP_DOWNLOAD_PROGRESS,
  SOURCE_PROP_EOL,
  SOURCE_PROP_SIGNED,
  N_SOURCE_PROPS
};

static GParamSpec *source_properties[N_SOURCE_PROPS];
static guint first_source_prop_id;
static guint progress_signal;

QleanImageSource *
qlean_image_source_new (GObject *owner)
{
  QleanImageSource *source = g_new0 (QleanImageSource, 1);
  const char *mirror = g_getenv ("QLEAN_IMAGE_MIRROR");

  source->owner = owner;
  source->context = g_main_context_ref_thread_default ();
  source->distro = QLEAN_DISTRO_CUSTOM;
  source->arch = g_strdup (QLEAN_DISTRO_SUPPORTED_ARCH);
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
static char *
mirrored_url (QleanImageSource *source,
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
static char *
source_cache_file (QleanImageSource *source)
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

  g_object_notify_by_pspec (owner, source_properties[SOURCE_PROP_DOWNLOAD_PROGRESS]);
  g_signal_emit (owner, progress_signal, 0, done, total);

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

static void
download_progress_cb (guint64  done,
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
  g_autofree char *checksum_url = mirrored_url (source, source->checksum_url);
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
          signature_url = mirrored_url (source, source->signature_url);
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

  if (!g_str_equal (source->arch, QLEAN_DISTRO_SUPPORTED_ARCH))
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_UNSUPPORTED_ARCH,
                   _("The image %s is for %s guests; Qlean runs only %s guests for now: "
                     "choose an %s image"),
                   source->cache_name, source->arch, QLEAN_DISTRO_SUPPORTED_ARCH,
                   QLEAN_DISTRO_SUPPORTED_ARCH);
      return NULL;
    }

  /* Once per image: it is pulled each time a machine is made from it. */
  if (qlean_eol_reached (source->eol) && g_atomic_int_compare_and_exchange (&source->eol_warned, 0, 1))
    g_message (_("The image %s reached its end of life on %s: it gets no security updates "
                 "any more. Choose a supported release (see “qlean image ls”)"),
               source->catalog_name, source->eol);

  dest = source_cache_file (source);
  url = mirrored_url (source, source->url);

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
                            download_progress_cb, source, cancellable, error);
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

/* Properties */

void
qlean_image_source_class_init (GObjectClass *object_class,
                               guint         first_prop_id)
{
  /**
   * QleanImage:distro:
   *
   * The distribution of a catalog image, %QLEAN_DISTRO_CUSTOM for
   * images from a URL or file (and for the minimal and file images).
   */
  source_properties[SOURCE_PROP_DISTRO] =
    g_param_spec_enum ("distro", NULL, NULL, QLEAN_TYPE_DISTRO, QLEAN_DISTRO_CUSTOM,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * QleanImage:arch:
   *
   * The guest architecture, in Debian's words (`amd64`, `arm64`). It is
   * part of the cache key. Only `amd64` images can be pulled for now.
   */
  source_properties[SOURCE_PROP_ARCH] =
    g_param_spec_string ("arch", NULL, NULL, QLEAN_DISTRO_SUPPORTED_ARCH,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * QleanImage:release:
   *
   * The distribution release of a catalog image (`13`, `24.04`).
   */
  source_properties[SOURCE_PROP_RELEASE] =
    g_param_spec_string ("release", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * QleanImage:aliases:
   *
   * The other names of a catalog image (`debian-13` for
   * `debian-13-generic-amd64`).
   */
  source_properties[SOURCE_PROP_ALIASES] =
    g_param_spec_boxed ("aliases", NULL, NULL, G_TYPE_STRV,
                        G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * QleanImage:url:
   *
   * Where the image is downloaded from, with [property@Image:mirror]
   * applied; a `file://` URL for custom images from a file.
   */
  source_properties[SOURCE_PROP_URL] =
    g_param_spec_string ("url", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * QleanImage:checksum-url:
   *
   * The checksum file a catalog image is verified against, with
   * [property@Image:mirror] applied.
   */
  source_properties[SOURCE_PROP_CHECKSUM_URL] =
    g_param_spec_string ("checksum-url", NULL, NULL, NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * QleanImage:format:
   *
   * The disk format of the download, `qcow2` or `raw`; %NULL when it is
   * found out from the file.
   */
  source_properties[SOURCE_PROP_FORMAT] =
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
   */
  source_properties[SOURCE_PROP_MIRROR] =
    g_param_spec_string ("mirror", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * QleanImage:download-progress:
   *
   * How much of the running download (or verification) is done, from 0
   * to 1; 0 while the size is unknown. Notified on the thread-default
   * main context of the thread that created the image, at most ten times
   * a second; the download itself never waits for that context.
   */
  source_properties[SOURCE_PROP_DOWNLOAD_PROGRESS] =
    g_param_spec_double ("download-progress", NULL, NULL, 0.0, 1.0, 0.0,
                         G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);

  /**
   * QleanImage:eol:
   *
   * The day a catalog image's release reaches its end of life (its
   * distribution stops publishing security updates for it), as
   * `YYYY-MM-DD`; %NULL for rolling releases and custom images. Pulling
   * an image past that day logs a message saying so.
   */
  source_properties[SOURCE_PROP_EOL] =
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
   */
  source_properties[SOURCE_PROP_SIGNED] =
    g_param_spec_boolean ("signed", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  first_source_prop_id = first_prop_id;
  for (guint i = 0; i < N_SOURCE_PROPS; i++)
    g_object_class_install_property (object_class, first_prop_id + i, source_properties[i]);

  /**
   * QleanImage::progress:
   * @image: the #QleanImage
   * @done: bytes downloaded (or verified) so far
   * @total: the size of the file, or 0 while unknown
   *
   * Emitted as a download or a verification goes on, on the
   * thread-default main context of the thread that created the image,
   * at most ten times a second and once at the end.
   */
  progress_signal =
    g_signal_new ("progress", G_OBJECT_CLASS_TYPE (object_class), G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_UINT64, G_TYPE_UINT64);
}

void
qlean_image_source_get_property (QleanImageSource *source,
                                 guint             prop_id,
                                 GValue           *value,
                                 GParamSpec       *pspec)
{
  switch (prop_id)
    {
    case SOURCE_PROP_DISTRO:
      g_value_set_enum (value, source->distro);
      break;
    case SOURCE_PROP_ARCH:
      g_value_set_string (value, source->arch);
      break;
    case SOURCE_PROP_RELEASE:
      g_value_set_string (value, source->release);
      break;
    case SOURCE_PROP_ALIASES:
      g_value_set_boxed (value, source->aliases);
      break;
    case SOURCE_PROP_URL:
      g_value_take_string (value, mirrored_url (source, source->url));
      break;
    case SOURCE_PROP_CHECKSUM_URL:
      g_value_take_string (value, mirrored_url (source, source->checksum_url));
      break;
    case SOURCE_PROP_FORMAT:
      g_value_set_string (value, source->format);
      break;
    case SOURCE_PROP_MIRROR:
      g_mutex_lock (&source->lock);
      g_value_set_string (value, source->mirror);
      g_mutex_unlock (&source->lock);
      break;
    case SOURCE_PROP_DOWNLOAD_PROGRESS:
      g_mutex_lock (&source->lock);
      g_value_set_double (value, source->total > 0 ? MIN (1.0, (double) source->done / source->total) : 0.0);
      g_mutex_unlock (&source->lock);
      break;
    case SOURCE_PROP_EOL:
      g_value_set_string (value, source->eol);
      break;
    case SOURCE_PROP_SIGNED:
      g_value_set_boolean (value, source->signature != QLEAN_SIGNATURE_NONE);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (source->owner, prop_id + first_source_prop_id, pspec);
    }
}

void
qlean_image_source_set_property (QleanImageSource *source,
                                 guint             prop_id,
                                 const GValue     *value,
                                 GParamSpec       *pspec)
{
  switch (prop_id)
    {
    case SOURCE_PROP_MIRROR:
      qlean_image_set_mirror (QLEAN_IMAGE (source->owner), g_value_get_string (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (source->owner, prop_id + first_source_prop_id, pspec);
    }
}

/* Constructors */

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
 * ([method@Machine.init]) runs cloud-init.
 *
 * An unknown @name, or a @name of another distribution, is reported by
 * [method@Image.pull] and [method@Image.prepare] as
 * %QLEAN_IMAGE_ERROR_NOT_FOUND.
 *
 * Returns: (transfer full): a new #QleanImage
 */
QleanImage *
qlean_image_new_from_distro (QleanDistro  distro,
                             const char  *name)
{
  GError *error = NULL;
  const QleanCatalogEntry *entry;
  QleanImage *image;

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

  image = qlean_image_new_distro (name ? name : distro_nick (distro));
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
 */
QleanImage *
qlean_image_new_from_catalog (const char  *name,
                              GError     **error)
{
  const QleanCatalogEntry *entry;

  g_return_val_if_fail (name != NULL, NULL);

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

static void
add_cached_custom_images (GPtrArray  *images,
                          const char *root)
{
  g_autofree char *images_dir = g_build_filename (root, "images", NULL);
  g_autoptr(GDir) arches = g_dir_open (images_dir, 0, NULL);
  const char *arch;

  if (arches == NULL)
    return;

  while ((arch = g_dir_read_name (arches)) != NULL)
    {
      g_autofree char *custom = g_build_filename (images_dir, arch, "custom", NULL);
      g_autoptr(GDir) entries = g_dir_open (custom, 0, NULL);
      const char *entry;

      while (entries != NULL && (entry = g_dir_read_name (entries)) != NULL)
        {
          g_autofree char *entry_dir = g_build_filename (custom, entry, NULL);
          g_autoptr(GDir) files = g_dir_open (entry_dir, 0, NULL);
          const char *file;

          while (files != NULL && (file = g_dir_read_name (files)) != NULL)
            {
              g_autofree char *path = g_build_filename (entry_dir, file, NULL);
              g_auto(QleanCacheInfo) info = { 0 };
              g_autofree char *digest = NULL;
              QleanImage *image;

              if (!g_str_has_suffix (file, ".qlean.json"))
                continue;
              path[strlen (path) - strlen (".qlean.json")] = '\0';
              if (!qlean_cache_read_sidecar (path, &info) || info.source == NULL)
                continue;
              /* Local files copied without a digest are known by path. */
              if (strstr (entry, "-path-") == NULL)
                digest = g_strdup_printf ("%s:%s", qlean_checksum_type_to_name (info.type), info.hex);
              image = qlean_image_new_from_url (info.source, digest, NULL);
              if (image != NULL)
                g_ptr_array_add (images, image);
            }
        }
    }
}

/**
 * qlean_image_list_available:
 *
 * Every image of the catalog (in catalog order), then every custom
 * image in the cache. Nothing is downloaded: use
 * [method@Image.get_cached_path] to tell which are cached.
 *
 * Returns: (transfer container) (element-type QleanImage): the images;
 *   the array drops its references itself (bindings take their own)
 */
GPtrArray *
qlean_image_list_available (void)
{
  GPtrArray *catalog = qlean_catalog_get ();
  GPtrArray *images = g_ptr_array_new_with_free_func (g_object_unref);
  g_autofree char *root = g_build_filename (g_get_user_cache_dir (), "qlean", NULL);

  for (guint i = 0; i < catalog->len; i++)
    g_ptr_array_add (images, qlean_image_new_from_catalog_entry (g_ptr_array_index (catalog, i)));
  add_cached_custom_images (images, root);

  return images;
}

/* Accessors */

/**
 * qlean_image_get_distro:
 * @self: a #QleanImage
 *
 * Returns: the image's distribution; %QLEAN_DISTRO_CUSTOM for custom,
 *   minimal and file images
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
 */
char *
qlean_image_dup_url (QleanImage *self)
{
  QleanImageSource *source;

  g_return_val_if_fail (QLEAN_IS_IMAGE (self), NULL);

  source = qlean_image_get_source (self);
  return mirrored_url (source, source->url);
}

/**
 * qlean_image_dup_mirror:
 * @self: a #QleanImage
 *
 * Returns: (transfer full) (nullable): the value of [property@Image:mirror]
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
      g_object_notify_by_pspec (G_OBJECT (self), source_properties[SOURCE_PROP_MIRROR]);
      g_object_notify_by_pspec (G_OBJECT (self), source_properties[SOURCE_PROP_URL]);
      g_object_notify_by_pspec (G_OBJECT (self), source_properties[SOURCE_PROP_CHECKSUM_URL]);
    }
}

/**
 * qlean_image_get_download_progress:
 * @self: a #QleanImage
 *
 * Returns: the value of [property@Image:download-progress]
 */
double
qlean_image_get_download_progress (QleanImage *self)
{
  g_auto(GValue) value = G_VALUE_INIT;

  g_return_val_if_fail (QLEAN_IS_IMAGE (self), 0.0);

  g_value_init (&value, G_TYPE_DOUBLE);
  qlean_image_source_get_property (qlean_image_get_source (self), SOURCE_PROP_DOWNLOAD_PROGRESS,
                                   &value, source_properties[SOURCE_PROP_DOWNLOAD_PROGRESS]);
  return g_value_get_double (&value);
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

  path = source_cache_file (source);
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
 */
void
qlean_image_pull_async (QleanImage          *self,
                        GCancellable        *cancellable,
                        GAsyncReadyCallback  callback,
                        gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;

  g_return_if_fail (QLEAN_IS_IMAGE (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, qlean_image_pull_async);
  g_task_set_name (task, "[qlean] pull image");

  if (qlean_image_get_kind (self) != QLEAN_IMAGE_KIND_DISTRO)
    {
      g_task_return_boolean (task, TRUE);
      return;
    }

  g_task_run_in_thread (task, pull_thread);
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
 */
gboolean
qlean_image_pull_finish (QleanImage    *self,
                         GAsyncResult  *result,
                         GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

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
 */
gboolean
qlean_image_pull (QleanImage    *self,
                  GCancellable  *cancellable,
                  GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  qlean_sync_call_init (&call);
  qlean_image_pull_async (self, cancellable, qlean_sync_call_done, &call);

  return qlean_image_pull_finish (self, qlean_sync_call_wait (&call), error);
}

static void
hash_progress_cb (guint64  done,
                  guint64  total,
                  gpointer user_data)
{
  source_set_progress (user_data, done, total, FALSE);
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
  g_autofree char *path = source_cache_file (source);
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
  hex = qlean_hash_file (path, info.type, hash_progress_cb, source, cancellable, &error);
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
 */
void
qlean_image_verify_async (QleanImage          *self,
                          GCancellable        *cancellable,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;

  g_return_if_fail (QLEAN_IS_IMAGE (self));

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, qlean_image_verify_async);
  g_task_set_name (task, "[qlean] verify image");

  if (qlean_image_get_kind (self) != QLEAN_IMAGE_KIND_DISTRO)
    {
      g_task_return_boolean (task, TRUE);
      return;
    }

  g_task_run_in_thread (task, verify_thread);
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
 */
gboolean
qlean_image_verify_finish (QleanImage    *self,
                           GAsyncResult  *result,
                           GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

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
 */
gboolean
qlean_image_verify (QleanImage    *self,
                    GCancellable  *cancellable,
                    GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  qlean_sync_call_init (&call);
  qlean_image_verify_async (self, cancellable, qlean_sync_call_done, &call);

  return qlean_image_verify_finish (self, qlean_sync_call_wait (&call), error);
}
