/* qlean-qga-reply.c: what the guest agent's replies may be
 *
 * The agent is a program in the guest, so its replies are checked like
 * any input from outside: their size before json-glib parses them (a
 * hostile agent must not make a line cost gigabytes), and their shape
 * after, against the agent's schema (a reply of the wrong shape must be
 * an error and never a crash). Apart from the client, which moves lines,
 * and the typed calls, which pick replies apart.
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>
#include <glib/gi18n-lib.h>

#include "qlean-json-framer-private.h"
#include "qlean-qga-client.h"
#include "qlean-qga-error.h"
#include "qlean-qga-reply-private.h"

/* How long a reply may be. json-glib needs about 1.5 times a line for a
 * long string but 40 times for a line of small values (a node each), so
 * a hostile agent could make a 48 MiB line cost 2 GB. Hence: each command
 * gets a cap on its reply, REPLY_MAX unless it carries data (a
 * guest-file-read chunk: the base64 of what it asked for, plus
 * REPLY_SLACK; guest-exec-status: the agent's captured output, up to
 * QLEAN_QGA_MAX_MESSAGE); and a reply longer than REPLY_MAX must hold its
 * bulk in strings, with at most REPLY_MAX_TOKENS JSON values and
 * separators outside them. Over either, the call fails with
 * QLEAN_QGA_ERROR_PROTOCOL before json-glib sees the line, and the next
 * call resyncs. */
#define REPLY_MAX        (1024 * 1024)
#define REPLY_SLACK      (4 * 1024)
#define REPLY_MAX_TOKENS 4096
/* What the agent reads when guest-file-read names no count. */
#define FILE_READ_DEFAULT_COUNT 4096

/* Sizes */

/* The longest reply @command with @arguments can need (see REPLY_MAX). */
gsize
qlean_qga_reply_max_for (const char *command,
                         JsonObject *arguments)
{
  if (g_strcmp0 (command, "guest-exec-status") == 0)
    return QLEAN_QGA_MAX_MESSAGE;

  if (g_strcmp0 (command, "guest-file-read") == 0)
    {
      JsonNode *node = arguments ? json_object_get_member (arguments, "count") : NULL;
      gint64 count = FILE_READ_DEFAULT_COUNT;

      if (node != NULL && JSON_NODE_HOLDS_VALUE (node) &&
          json_node_get_value_type (node) == G_TYPE_INT64)
        count = json_node_get_int (node);
      if (count < 0 || count > QLEAN_QGA_MAX_MESSAGE)
        return QLEAN_QGA_MAX_MESSAGE;
      /* base64: 4 characters for every 3 bytes or part of them */
      return MAX (REPLY_MAX, (gsize) (count + 2) / 3 * 4 + REPLY_SLACK);
    }

  return REPLY_MAX;
}

/* Counts what json-glib would make a node of, or separate nodes with,
 * outside strings; stops counting past @max. */
static guint
count_json_tokens (const char *data,
                   gsize       len,
                   guint       max)
{
  gboolean in_string = FALSE;
  guint tokens = 0;

  for (gsize i = 0; i < len && tokens <= max; i++)
    {
      char c = data[i];

      if (in_string)
        {
          if (c == '\\')
            i++;
          else if (c == '"')
            in_string = FALSE;
          continue;
        }

      switch (c)
        {
        case '"':
          in_string = TRUE;
          tokens++;
          break;
        case '{':
        case '[':
        case ',':
        case ':':
          tokens++;
          break;
        default:
          break;
        }
    }

  return tokens;
}

/* Whether a reply of @len bytes is one that @command, whose replies may
 * be @reply_max long, may get. */
gboolean
qlean_qga_reply_size_ok (const char  *command,
                         gsize        reply_max,
                         const char  *data,
                         gsize        len,
                         GError     **error)
{
  g_autofree char *size = NULL;
  g_autofree char *max = NULL;

  if (len > reply_max)
    {
      size = g_format_size (len);
      max = g_format_size (reply_max);
      g_set_error (error, QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_PROTOCOL,
                   _("Guest agent command “%s” failed: the agent broke the protocol: its reply "
                     "is %s long, more than the %s an answer to this command can need"),
                   command, size, max);
      return FALSE;
    }

  if (len > REPLY_MAX && count_json_tokens (data, len, REPLY_MAX_TOKENS) > REPLY_MAX_TOKENS)
    {
      size = g_format_size (len);
      g_set_error (error, QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_PROTOCOL,
                   _("Guest agent command “%s” failed: the agent broke the protocol: its reply "
                     "is %s of many small values, where only a long data string can make an "
                     "answer that long"),
                   command, size);
      return FALSE;
    }

  return TRUE;
}

/* Shapes */

/* @format is a whole translatable sentence; its first %s is the command. */
GError *
qlean_qga_reply_shape_error (const char *format,
                             ...)
{
  GError *error;
  va_list args;

  va_start (args, format);
  error = g_error_new_valist (QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_PROTOCOL, format, args);
  va_end (args);

  return error;
}

JsonObject *
qlean_qga_reply_object (JsonNode    *reply,
                        const char  *command,
                        GError     **error)
{
  if (reply == NULL || !JSON_NODE_HOLDS_OBJECT (reply))
    {
      g_propagate_error (error,
                         qlean_qga_reply_shape_error (_("Guest agent command “%s” returned a "
                                                        "reply without an object"),
                                                      command));
      return NULL;
    }

  return json_node_get_object (reply);
}

gboolean
qlean_qga_reply_int_member (JsonNode    *reply,
                            const char  *command,
                            const char  *member,
                            gint64      *value,
                            GError     **error)
{
  JsonObject *object = qlean_qga_reply_object (reply, command, error);

  if (object == NULL)
    return FALSE;

  if (!qlean_json_get_int (object, member, value))
    {
      g_propagate_error (error,
                         qlean_qga_reply_shape_error (_("Guest agent command “%s” returned a "
                                                        "reply without an integer “%s”"),
                                                      command, member));
      return FALSE;
    }

  return TRUE;
}

gboolean
qlean_qga_reply_bool_member (JsonObject *object,
                             const char *member)
{
  gboolean value = FALSE;

  return qlean_json_get_boolean (object, member, &value) && value;
}

GBytes *
qlean_qga_reply_base64_member (JsonObject *object,
                               const char *member)
{
  const char *encoded = qlean_json_get_string (object, member);
  guchar *data;
  gsize len;

  if (encoded == NULL)
    return NULL;

  data = g_base64_decode (encoded, &len);
  return g_bytes_new_take (data, len);
}

static gboolean
node_has_type (JsonNode *node,
               QleanQgaSpecType  type)
{
  switch (type)
    {
    case QLEAN_QGA_SPEC_STRING:
      return json_node_get_value_type (node) == G_TYPE_STRING;
    case QLEAN_QGA_SPEC_INT:
      return json_node_get_value_type (node) == G_TYPE_INT64;
    case QLEAN_QGA_SPEC_BOOLEAN:
      return json_node_get_value_type (node) == G_TYPE_BOOLEAN;
    case QLEAN_QGA_SPEC_OBJECT:
      return JSON_NODE_HOLDS_OBJECT (node);
    case QLEAN_QGA_SPEC_ARRAY:
      return JSON_NODE_HOLDS_ARRAY (node);
    default:
      g_assert_not_reached ();
    }
}

/* Checks the members of @object that the agent's schema names, so that
 * Qlean and callers of the typed calls may read them with json-glib's
 * getters without a warning. @where says where @object is in the reply:
 * "" at the top, or the array it is an element of, as `name[].`. */
gboolean
qlean_qga_reply_members_ok (JsonObject        *object,
                            const char        *command,
                            const char        *where,
                            const QleanQgaMemberSpec  *specs,
                            gsize              n_specs,
                            GError           **error)
{
  /* One whole sentence per type: the member's path is a name, no word. */
  static const char * const formats[] = {
    [QLEAN_QGA_SPEC_STRING] =
      N_("Guest agent command “%s” returned a reply without “%s” as a string"),
    [QLEAN_QGA_SPEC_INT] =
      N_("Guest agent command “%s” returned a reply without “%s” as an integer"),
    [QLEAN_QGA_SPEC_BOOLEAN] =
      N_("Guest agent command “%s” returned a reply without “%s” as a boolean"),
    [QLEAN_QGA_SPEC_OBJECT] =
      N_("Guest agent command “%s” returned a reply without “%s” as an object"),
    [QLEAN_QGA_SPEC_ARRAY] =
      N_("Guest agent command “%s” returned a reply without “%s” as an array"),
  };

  for (gsize i = 0; i < n_specs; i++)
    {
      JsonNode *node = json_object_get_member (object, specs[i].member);
      g_autofree char *path = NULL;

      if (node == NULL && !specs[i].required)
        continue;
      if (node != NULL && node_has_type (node, specs[i].type))
        continue;

      path = g_strconcat (where, specs[i].member, NULL);
      g_propagate_error (error, qlean_qga_reply_shape_error (_(formats[specs[i].type]),
                                                             command, path));
      return FALSE;
    }

  return TRUE;
}

/* Every member of guest-get-osinfo's reply is an optional string. */
gboolean
qlean_qga_reply_osinfo_ok (JsonObject  *object,
                           GError     **error)
{
  JsonObjectIter iter;
  const char *member;
  JsonNode *node;

  json_object_iter_init (&iter, object);
  while (json_object_iter_next (&iter, &member, &node))
    {
      QleanQgaMemberSpec spec = { member, QLEAN_QGA_SPEC_STRING, FALSE };

      if (!qlean_qga_reply_members_ok (object, "guest-get-osinfo", "", &spec, 1, error))
        return FALSE;
    }

  return TRUE;
}

gboolean
qlean_qga_reply_info_ok (JsonObject  *object,
                         GError     **error)
{
  static const QleanQgaMemberSpec info[] = {
    { "version", QLEAN_QGA_SPEC_STRING, TRUE },
    { "supported_commands", QLEAN_QGA_SPEC_ARRAY, TRUE },
  };
  static const QleanQgaMemberSpec command[] = {
    { "name", QLEAN_QGA_SPEC_STRING, TRUE },
    { "enabled", QLEAN_QGA_SPEC_BOOLEAN, TRUE },
    { "success-response", QLEAN_QGA_SPEC_BOOLEAN, FALSE },
  };
  JsonArray *commands;

  if (!qlean_qga_reply_members_ok (object, "guest-info", "", info, G_N_ELEMENTS (info), error))
    return FALSE;

  commands = json_object_get_array_member (object, "supported_commands");
  for (guint i = 0; i < json_array_get_length (commands); i++)
    {
      JsonObject *element = qlean_json_array_get_object (commands, i);

      if (element == NULL)
        {
          g_propagate_error (error,
                             qlean_qga_reply_shape_error (_("Guest agent command “%s” returned a "
                                                            "reply without objects in "
                                                            "“supported_commands”"),
                                                          "guest-info"));
          return FALSE;
        }
      if (!qlean_qga_reply_members_ok (element, "guest-info", "supported_commands[].", command,
                                       G_N_ELEMENTS (command), error))
        return FALSE;
    }

  return TRUE;
}

gboolean
qlean_qga_reply_interfaces_ok (JsonArray  *interfaces,
                               GError    **error)
{
  static const QleanQgaMemberSpec interface[] = {
    { "name", QLEAN_QGA_SPEC_STRING, TRUE },
    { "hardware-address", QLEAN_QGA_SPEC_STRING, FALSE },
    { "ip-addresses", QLEAN_QGA_SPEC_ARRAY, FALSE },
    { "statistics", QLEAN_QGA_SPEC_OBJECT, FALSE },
  };
  static const QleanQgaMemberSpec address[] = {
    { "ip-address", QLEAN_QGA_SPEC_STRING, TRUE },
    { "ip-address-type", QLEAN_QGA_SPEC_STRING, TRUE },
    { "prefix", QLEAN_QGA_SPEC_INT, TRUE },
  };

  for (guint i = 0; i < json_array_get_length (interfaces); i++)
    {
      JsonObject *element = qlean_json_array_get_object (interfaces, i);
      JsonArray *addresses;

      if (element == NULL)
        {
          g_propagate_error (error,
                             qlean_qga_reply_shape_error (_("Guest agent command “%s” returned a "
                                                            "reply without an array of objects"),
                                                          "guest-network-get-interfaces"));
          return FALSE;
        }
      if (!qlean_qga_reply_members_ok (element, "guest-network-get-interfaces", "", interface,
                                       G_N_ELEMENTS (interface), error))
        return FALSE;

      addresses = qlean_json_get_array (element, "ip-addresses");
      for (guint j = 0; addresses != NULL && j < json_array_get_length (addresses); j++)
        {
          JsonObject *entry = qlean_json_array_get_object (addresses, j);

          if (entry == NULL)
            {
              g_propagate_error (error,
                                 qlean_qga_reply_shape_error (_("Guest agent command “%s” "
                                                                "returned a reply without "
                                                                "objects in “ip-addresses”"),
                                                              "guest-network-get-interfaces"));
              return FALSE;
            }
          if (!qlean_qga_reply_members_ok (entry, "guest-network-get-interfaces", "ip-addresses[].",
                                           address, G_N_ELEMENTS (address), error))
            return FALSE;
        }
    }

  return TRUE;
}

static int
error_code_from_class (const char *klass,
                       const char *desc)
{
  if (g_strcmp0 (klass, "CommandNotFound") == 0)
    {
      /* The agent reports a command it knows but was told not to run
       * (--block-rpcs, --allow-rpcs) with this same class. */
      if (strstr (desc, "disabled") != NULL)
        return QLEAN_QGA_ERROR_COMMAND_DISABLED;
      return QLEAN_QGA_ERROR_COMMAND_NOT_FOUND;
    }

  return QLEAN_QGA_ERROR_FAILED;
}

GError *
qlean_qga_reply_error (const char *command,
                       JsonObject *message)
{
  /* Never trust the shape: an "error" that is no object, or a class
   * or description that is no string, reads as a GenericError. */
  JsonObject *err = qlean_json_get_object (message, "error");
  const char *klass = qlean_json_get_string (err, "class");
  const char *desc = qlean_json_get_string (err, "desc");

  if (klass == NULL)
    klass = "GenericError";
  if (desc == NULL)
    desc = "";

  return g_error_new (QLEAN_QGA_ERROR, error_code_from_class (klass, desc),
                      _("Guest agent command “%s” failed: %s"), command, desc);
}
