/* qlean-machine-manifest-private.h: the checks of an imported manifest
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-machine-manifest-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include <json-glib/json-glib.h>

#include "qlean-machine-archive.h"
#include "qlean-machine-config.h"

G_BEGIN_DECLS

/* Sets @error to QLEAN_MACHINE_ERROR_BAD_ARCHIVE with the message
 * @format (a whole sentence) and returns FALSE. */
gboolean            qlean_manifest_bad                 (GError      **error,
                                                        const char   *format,
                                                        ...) G_GNUC_PRINTF (2, 3);
/* The value of enum @type whose nick is @nick; FALSE when none is. */
gboolean            qlean_manifest_enum_from_nick      (GType         type,
                                                        const char   *nick,
                                                        int          *value);
/* Members of the manifest, type-checked: a member of the wrong type is
 * a bad archive; an optional one that is absent leaves the value. */
gboolean            qlean_manifest_get_optional_string (JsonObject   *object,
                                                        const char   *member,
                                                        const char  **value,
                                                        GError      **error);
gboolean            qlean_manifest_get_bool            (JsonObject   *object,
                                                        const char   *member,
                                                        gboolean     *value,
                                                        GError      **error);
gboolean            qlean_manifest_get_optional_bool   (JsonObject   *object,
                                                        const char   *member,
                                                        gboolean     *value,
                                                        GError      **error);
/* Refuses an object that names files on the exporting host. */
gboolean            qlean_manifest_refuse_host_paths   (JsonObject   *object,
                                                        gboolean      image,
                                                        GError      **error);
/* The machine configuration @object describes, checked. */
QleanMachineConfig *qlean_manifest_to_config           (JsonObject   *object,
                                                        QleanImportFlags flags,
                                                        GError      **error);
/* The manifest's root object after the checks that come before any
 * member is read; see qlean-machine-manifest.c. */
JsonObject         *qlean_manifest_root                (JsonParser   *parser,
                                                        GBytes       *manifest,
                                                        JsonObject  **image_object,
                                                        JsonObject  **config_object,
                                                        GError      **error);

G_END_DECLS
