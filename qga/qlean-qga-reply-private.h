/* qlean-qga-reply-private.h: what the guest agent's replies may be
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-qga-reply-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* Sizes: checked on the raw line, before json-glib sees it. */
gsize       qlean_qga_reply_max_for       (const char         *command,
                                           JsonObject         *arguments);
gboolean    qlean_qga_reply_size_ok       (const char         *command,
                                           gsize               reply_max,
                                           const char         *data,
                                           gsize               len,
                                           GError            **error);

/* Shapes: checked on the parsed `return` member. */
typedef enum
{
  QLEAN_QGA_SPEC_STRING,
  QLEAN_QGA_SPEC_INT,
  QLEAN_QGA_SPEC_BOOLEAN,
  QLEAN_QGA_SPEC_OBJECT,
  QLEAN_QGA_SPEC_ARRAY,
} QleanQgaSpecType;

typedef struct
{
  const char       *member;
  QleanQgaSpecType  type;
  gboolean          required;
} QleanQgaMemberSpec;

/* The error an agent reply that has an "error" member says, for
 * @command: its class gives the QleanQgaError code, its description the
 * message. */
GError     *qlean_qga_reply_error         (const char         *command,
                                           JsonObject         *message);
GError     *qlean_qga_reply_shape_error   (const char         *format,
                                           ...) G_GNUC_PRINTF (1, 2);
JsonObject *qlean_qga_reply_object        (JsonNode           *reply,
                                           const char         *command,
                                           GError            **error);
gboolean    qlean_qga_reply_int_member    (JsonNode           *reply,
                                           const char         *command,
                                           const char         *member,
                                           gint64             *value,
                                           GError            **error);
gboolean    qlean_qga_reply_bool_member   (JsonObject         *object,
                                           const char         *member);
GBytes     *qlean_qga_reply_base64_member (JsonObject         *object,
                                           const char         *member);
gboolean    qlean_qga_reply_members_ok    (JsonObject         *object,
                                           const char         *command,
                                           const char         *where,
                                           const QleanQgaMemberSpec *specs,
                                           gsize               n_specs,
                                           GError            **error);
gboolean    qlean_qga_reply_osinfo_ok     (JsonObject         *object,
                                           GError            **error);
gboolean    qlean_qga_reply_info_ok       (JsonObject         *object,
                                           GError            **error);
gboolean    qlean_qga_reply_interfaces_ok (JsonArray          *interfaces,
                                           GError            **error);

G_END_DECLS
