/* qlean-json-framer-private.h: newline framing of a JSON message stream
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

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

G_DEFINE_AUTOPTR_CLEANUP_FUNC (QleanJsonFramer, qlean_json_framer_free)

G_END_DECLS
