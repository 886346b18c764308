/* qlean-machine-manifest.c: the checks of an imported archive's manifest
 *
 * SPDX-License-Identifier: MIT
 *
 * What qlean-machine-import.c asks of a manifest before it makes
 * anything: plain JSON of a format this Qlean reads, members of the right
 * types, no host paths, no extra QEMU arguments nobody trusted, and the
 * machine configuration it describes. Apart from the import's extraction
 * and start, because this is the part that reads what a stranger wrote:
 * every refusal is QLEAN_MACHINE_ERROR_BAD_ARCHIVE with a whole sentence.
 */

#include "config.h"

#include <string.h>
#include <glib/gi18n-lib.h>
#include <json-glib/json-glib.h>

#include "qlean-archive-private.h"
#include "qlean-enums.h"
#include "qlean-error.h"
#include "qlean-json-framer-private.h"
#include "qlean-machine-archive.h"
#include "qlean-machine-manifest-private.h"
#include "qlean-machine-private.h"

gboolean
qlean_manifest_enum_from_nick (GType       type,
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

/* Sets @error to QLEAN_MACHINE_ERROR_BAD_ARCHIVE with the message
 * @format (a whole sentence) and returns FALSE. */

gboolean
qlean_manifest_bad (GError     **error,
                    const char  *format,
                    ...)
{
  va_list args;

  va_start (args, format);
  g_propagate_error (error, g_error_new_valist (QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_BAD_ARCHIVE,
                                                format, args));
  va_end (args);
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
      return qlean_manifest_bad (error, _("Not a valid machine archive: its manifest has no valid “%s” "
                                          "(0 to %u)"), member, max);
    }

  *value = (guint) v;
  return TRUE;
}

gboolean
qlean_manifest_get_optional_string (JsonObject   *object,
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
      return qlean_manifest_bad (error, _("Not a valid machine archive: its manifest has a “%s” that "
                                          "is not a string"), member);
    }

  *value = json_node_get_string (node);
  return TRUE;
}

gboolean
qlean_manifest_get_bool (JsonObject  *object,
                         const char  *member,
                         gboolean    *value,
                         GError     **error)
{
  JsonNode *node = json_object_get_member (object, member);

  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_BOOLEAN)
    {
      return qlean_manifest_bad (error, _("Not a valid machine archive: its manifest has no valid “%s”"),
                                 member);
    }

  *value = json_node_get_boolean (node);
  return TRUE;
}

gboolean
qlean_manifest_get_optional_bool (JsonObject  *object,
                                  const char  *member,
                                  gboolean    *value,
                                  GError     **error)
{
  *value = FALSE;
  return !json_object_has_member (object, member) || qlean_manifest_get_bool (object, member, value, error);
}

/* Format 1 named the kernel and initrd by their paths on the exporting
 * host. An import never opens a host file that an archive names (it
 * could be anyone's: ~/.ssh/id_rsa as an "initrd" is in the guest's
 * memory at boot), so a manifest that names one is refused whole rather
 * than half-used. */
gboolean
qlean_manifest_refuse_host_paths (JsonObject  *object,
                                  gboolean     in_image,
                                  GError     **error)
{
  /* One whole sentence per member and place, for translators. */
  static const struct { const char *member; const char *in_image; const char *in_config; } refusals[] = {
    { "kernel",
      N_("The machine archive names a file of the host it was made on as the kernel of its image "
         "(%s); an import only boots what the archive holds. Export the machine again with this "
         "Qlean (%s), which puts the kernel into the archive"),
      N_("The machine archive names a file of the host it was made on as the kernel of its "
         "configuration (%s); an import only boots what the archive holds. Export the machine "
         "again with this Qlean (%s), which puts the kernel into the archive") },
    { "initrd",
      N_("The machine archive names a file of the host it was made on as the initrd of its image "
         "(%s); an import only boots what the archive holds. Export the machine again with this "
         "Qlean (%s), which puts the initrd into the archive"),
      N_("The machine archive names a file of the host it was made on as the initrd of its "
         "configuration (%s); an import only boots what the archive holds. Export the machine "
         "again with this Qlean (%s), which puts the initrd into the archive") },
  };

  for (guint i = 0; i < G_N_ELEMENTS (refusals); i++)
    {
      JsonNode *node = json_object_get_member (object, refusals[i].member);

      if (node != NULL && !JSON_NODE_HOLDS_NULL (node) &&
          !(JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_BOOLEAN))
        {
          g_autofree char *shown = NULL;

          if (JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING)
            shown = g_strescape (json_node_get_string (node), NULL);
          g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_BAD_ARCHIVE,
                       _(in_image ? refusals[i].in_image : refusals[i].in_config),
                       shown ? shown : "?", PACKAGE_VERSION);
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

QleanMachineConfig *
qlean_manifest_to_config (JsonObject        *object,
                          QleanImportFlags   flags,
                          GError           **error)
{
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(GPtrArray) extra = g_ptr_array_new ();
  const char *cmdline, *accel_nick, *bridge, *firmware_nick;
  JsonNode *node;
  guint cores, memory, disk;
  int accel, firmware = QLEAN_FIRMWARE_AUTO;

  if (!get_uint_member (object, "cores", 255, &cores, error) ||
      !get_uint_member (object, "memory-mib", 16 * 1024 * 1024, &memory, error) ||
      !get_uint_member (object, "disk-gib", 64 * 1024, &disk, error) ||
      !qlean_manifest_get_optional_string (object, "accel", &accel_nick, error) ||
      !qlean_manifest_refuse_host_paths (object, FALSE, error) ||
      !qlean_manifest_get_optional_string (object, "cmdline", &cmdline, error) ||
      !qlean_manifest_get_optional_string (object, "bridge", &bridge, error) ||
      !qlean_manifest_get_optional_string (object, "firmware", &firmware_nick, error))
    return NULL;

  if (cores == 0)
    {
      qlean_manifest_bad (error, _("Not a valid machine archive: its manifest asks for 0 cores"));
      return NULL;
    }
  if (!qlean_manifest_enum_from_nick (QLEAN_TYPE_ACCEL, accel_nick, &accel))
    {
      qlean_manifest_bad (error, _("Not a valid machine archive: its manifest "
                                   "names an unknown accelerator"));
      return NULL;
    }
  /* Optional: archives made before it boot as "auto" did then. A saved
   * state of a UEFI machine loads only into one with its flash chips. */
  if (firmware_nick != NULL && !qlean_manifest_enum_from_nick (QLEAN_TYPE_FIRMWARE, firmware_nick, &firmware))
    {
      qlean_manifest_bad (error, _("Not a valid machine archive: its manifest "
                                   "names an unknown firmware"));
      return NULL;
    }

  node = json_object_get_member (object, "extra-args");
  if (node != NULL && !JSON_NODE_HOLDS_NULL (node))
    {
      JsonArray *array = JSON_NODE_HOLDS_ARRAY (node) ? json_node_get_array (node) : NULL;

      if (array == NULL || json_array_get_length (array) > 256)
        {
          qlean_manifest_bad (error, _("Not a valid machine archive: its manifest "
                                       "has invalid “extra-args”"));
          return NULL;
        }
      for (guint i = 0; i < json_array_get_length (array); i++)
        {
          JsonNode *element = json_array_get_element (array, i);

          if (!JSON_NODE_HOLDS_VALUE (element) || json_node_get_value_type (element) != G_TYPE_STRING)
            {
              qlean_manifest_bad (error, _("Not a valid machine archive: its manifest "
                                           "has invalid “extra-args”"));
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
  qlean_machine_config_set_firmware (config, firmware);
  qlean_machine_config_set_cmdline (config, cmdline);
  qlean_machine_config_set_bridge (config, bridge);
  qlean_machine_config_set_extra_args (config, (const char * const *) extra->pdata);
  /* Optional: archives of format 1 may predate it. */
  node = json_object_get_member (object, "fast-start");
  if (node != NULL && JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_BOOLEAN)
    qlean_machine_config_set_fast_start (config, json_node_get_boolean (node));
  node = json_object_get_member (object, "cloneable");
  if (node != NULL && JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_BOOLEAN)
    qlean_machine_config_set_cloneable (config, json_node_get_boolean (node));

  return g_steal_pointer (&config);
}

/* The manifest's root object, after the checks that come before any
 * member is read: plain JSON, an object, a format this Qlean reads, and
 * an image and a configuration, given back in @image_object and
 * @config_object. All are owned by @parser. */
JsonObject *
qlean_manifest_root (JsonParser  *parser,
                     GBytes      *manifest,
                     JsonObject **image_object,
                     JsonObject **config_object,
                     GError     **error)
{
  JsonObject *root;
  JsonNode *node;
  gsize len;
  const char *data = g_bytes_get_data (manifest, &len);

  /* json-glib recurses: a deep manifest would overflow the stack. */
  if (!qlean_json_check_depth (data, len, NULL))
    {
      qlean_manifest_bad (error, _("Not a valid machine archive: its manifest "
                                   "is not plain JSON, or nests deeper than 64 levels"));
      return NULL;
    }
  if (!json_parser_load_from_data (parser, data, len, NULL) ||
      !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    {
      qlean_manifest_bad (error, _("Not a valid machine archive: its manifest "
                                   "is not a JSON object"));
      return NULL;
    }
  root = json_node_get_object (json_parser_get_root (parser));

  node = json_object_get_member (root, "format");
  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
    {
      qlean_manifest_bad (error, _("Not a valid machine archive: its manifest "
                                   "has no format version"));
      return NULL;
    }
  /* Format 1 differs only in naming the kernel and initrd by host
   * paths, which qlean_manifest_refuse_host_paths() refuses: one without is read. */
  if (json_node_get_int (node) < 1 || json_node_get_int (node) > QLEAN_ARCHIVE_FORMAT_VERSION)
    {
      g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_BAD_ARCHIVE,
                   _("The machine archive has format %" G_GINT64_FORMAT "; this Qlean (%s) reads "
                     "formats 1 to %d: import it with the Qlean that made it, or a newer one"),
                   json_node_get_int (node), PACKAGE_VERSION, QLEAN_ARCHIVE_FORMAT_VERSION);
      return NULL;
    }

  node = json_object_get_member (root, "image");
  *image_object = node && JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
  node = json_object_get_member (root, "config");
  *config_object = node && JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
  if (*image_object == NULL || *config_object == NULL)
    {
      qlean_manifest_bad (error, _("Not a valid machine archive: its manifest "
                                   "has no image or configuration"));
      return NULL;
    }

  return root;
}
