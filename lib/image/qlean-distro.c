/* qlean-distro.c: the catalog of distributions' cloud images
 *
 * SPDX-License-Identifier: MIT
 *
 * data/images.json: its parsing, where it is loaded from, lookups by
 * name and alias, the keyrings its entries name, and the list of the
 * images there are (the catalog's, then the custom ones in the cache).
 * The images themselves are QleanImage objects: their constructors and
 * properties are in qlean-image.c, their download in
 * qlean-image-source.c.
 */

#include "config.h"

#include <stdio.h>
#include <string.h>
#include <glib/gi18n-lib.h>
#include <json-glib/json-glib.h>

#include "qlean-distro-private.h"
#include "qlean-enums.h"
#include "qlean-error.h"
#include "qlean-image-download-private.h"
#include "qlean-resources.h"
#include "qlean-util-private.h"

#define CATALOG_RESOURCE "/org/qlean/images/images.json"
#define KEYRING_DIR "keyrings"

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

const char *
qlean_distro_nick (QleanDistro distro)
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

G_DEFINE_AUTOPTR_CLEANUP_FUNC (QleanCatalogEntry, qlean_catalog_entry_free)

static GStrv
parse_aliases (JsonObject *object)
{
  JsonNode *aliases = json_object_get_member (object, "aliases");
  JsonArray *array;
  g_autoptr(GStrvBuilder) builder = NULL;

  if (aliases == NULL || !JSON_NODE_HOLDS_ARRAY (aliases))
    return g_new0 (char *, 1);

  array = json_node_get_array (aliases);
  builder = g_strv_builder_new ();
  for (guint a = 0; a < json_array_get_length (array); a++)
    {
      const char *alias = json_array_get_string_element (array, a);

      if (alias != NULL)
        g_strv_builder_add (builder, alias);
    }

  return g_strv_builder_end (builder);
}

/* How the entry's checksum file is signed, and with what; FALSE when the
 * entry says it otherwise than the catalog allows. */
static gboolean
parse_signature (QleanCatalogEntry  *entry,
                 JsonObject         *object,
                 const char         *source,
                 GError            **error)
{
  const char *signature = string_member (object, "signature") ?: "none";

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
      return FALSE;
    }
  entry->signature_url = g_strdup (string_member (object, "signature-url"));
  entry->keyring = g_strdup (string_member (object, "keyring"));
  if ((entry->signature != QLEAN_SIGNATURE_NONE && entry->keyring == NULL) ||
      (entry->signature == QLEAN_SIGNATURE_DETACHED && entry->signature_url == NULL))
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_FAILED,
                   _("The image catalog %s is invalid: %s is signed but has no “%s”"),
                   source, entry->name, entry->keyring == NULL ? "keyring" : "signature-url");
      return FALSE;
    }

  return TRUE;
}

/* Image @i of the catalog @source. */
static QleanCatalogEntry *
parse_entry (JsonNode    *node,
             guint        i,
             GEnumClass  *distros,
             const char  *source,
             GError     **error)
{
  static const char * const required[] = { "name", "distro", "url", "checksum-url", "checksum" };
  g_autoptr(QleanCatalogEntry) entry = NULL;
  const char *arch, *eol;
  JsonObject *object;
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
  if (!parse_signature (entry, object, source, error))
    return NULL;
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
  entry->aliases = parse_aliases (object);

  return g_steal_pointer (&entry);
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
      QleanCatalogEntry *entry = parse_entry (json_array_get_element (json_node_get_array (images), i),
                                              i, distros, source, error);

      if (entry == NULL)
        return NULL;
      g_ptr_array_add (entries, entry);
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
                       name, qlean_distro_nick (entry->distro), qlean_distro_nick (distro));
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
                 _("The image catalog has no %s image"), qlean_distro_nick (distro));
  else
    g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_NOT_FOUND,
                 _("No image “%s” in the catalog; known images: %s (see “qlean image ls”)"),
                 name, known->str);
  return NULL;
}

/* The images there are */

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
 *
 * Since: 0.1
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
