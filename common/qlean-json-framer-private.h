/* qlean-json-framer-private.h: newline framing of a JSON message stream
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-json-framer-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* QMP and the guest agent both write one compact JSON object per line.
 * The framer turns arbitrary chunks read from a socket into whole lines,
 * with a cap on a line's length so that a peer cannot make us buffer
 * without bound. It does no I/O, which keeps it testable and fuzzable. */
typedef struct _QleanJsonFramer QleanJsonFramer;

QleanJsonFramer *qlean_json_framer_new       (gsize            max_line);
void             qlean_json_framer_free      (QleanJsonFramer *framer);
void             qlean_json_framer_push      (QleanJsonFramer *framer,
                                              const guint8    *data,
                                              gsize            len);
gboolean         qlean_json_framer_pop_line  (QleanJsonFramer *framer,
                                              GBytes         **line,
                                              GError         **error);
void             qlean_json_framer_reset     (QleanJsonFramer *framer);
gsize            qlean_json_framer_get_pending (QleanJsonFramer *framer);

/* json-glib parses recursively, so a message nested deep enough (a few
 * hundred KB of brackets) overflows the stack. No message Qlean reads
 * nests beyond a handful of levels; anything deeper than this is refused
 * before json-glib sees it. */
#define QLEAN_JSON_MAX_DEPTH 64

gboolean         qlean_json_check_depth      (const char      *data,
                                              gsize            len,
                                              GError         **error);
JsonObject      *qlean_json_parse_object     (const char      *data,
                                              gsize            len,
                                              GError         **error);
char            *qlean_json_object_to_line   (JsonObject      *object,
                                              gsize           *len);
/* json-glib counts references to objects, arrays and values without
 * atomics, so nothing parsed or built on one thread may be shared with
 * another: what a caller hands the worker is copied with this (a copy
 * that shares nothing), and what the worker hands a caller is released
 * by the worker first. */
JsonObject      *qlean_json_object_copy      (JsonObject      *object);

/* Typed reads of what a peer sent. json-glib's own getters warn (a
 * critical, fatal in tests) on a member of another type, and return NULL
 * or 0 for a value of another type; these return NULL or FALSE, without
 * a warning, when the member is missing, null or of another type, so
 * that a caller turns a wrong shape into an error of its own. */
const char      *qlean_json_get_string       (JsonObject      *object,
                                              const char      *member);
gboolean         qlean_json_get_int          (JsonObject      *object,
                                              const char      *member,
                                              gint64          *value);
gboolean         qlean_json_get_boolean      (JsonObject      *object,
                                              const char      *member,
                                              gboolean        *value);
JsonObject      *qlean_json_get_object       (JsonObject      *object,
                                              const char      *member);
JsonArray       *qlean_json_get_array        (JsonObject      *object,
                                              const char      *member);
JsonObject      *qlean_json_array_get_object (JsonArray       *array,
                                              guint            index);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (QleanJsonFramer, qlean_json_framer_free)

G_END_DECLS
