/* qlean-json-framer.c: newline framing of a JSON message stream
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>

#include "qlean-json-framer-private.h"
#include "qlean-qmp-error.h"

/* The QMP error domain is every JSON-lines channel's protocol error
 * domain (the agent's and qlean-guest's channels report framing errors
 * in it too), so its quark lives here, at the bottom, with the framer
 * that raises most of them; qmp/qlean-qmp-error.h documents it. */
G_DEFINE_QUARK (qlean-qmp-error-quark, qlean_qmp_error)

struct _QleanJsonFramer
{
  GByteArray *buffer;
  /* Bytes before this offset are consumed lines; they are dropped lazily
   * so that popping many small lines from one big read stays linear. */
  gsize       start;
  /* Bytes between start and scanned are known to hold no newline. */
  gsize       scanned;
  gsize       max_line;
  gboolean    discarding;
};

QleanJsonFramer *
qlean_json_framer_new (gsize max_line)
{
  QleanJsonFramer *framer = g_new0 (QleanJsonFramer, 1);

  framer->buffer = g_byte_array_new ();
  framer->max_line = max_line;

  return framer;
}

void
qlean_json_framer_free (QleanJsonFramer *framer)
{
  if (framer == NULL)
    return;

  g_byte_array_unref (framer->buffer);
  g_free (framer);
}

static void
qlean_json_framer_compact (QleanJsonFramer *framer)
{
  if (framer->start == 0)
    return;

  g_byte_array_remove_range (framer->buffer, 0, framer->start);
  framer->scanned -= framer->start;
  framer->start = 0;
}

void
qlean_json_framer_push (QleanJsonFramer *framer,
                        const guint8    *data,
                        gsize            len)
{
  g_return_if_fail (framer != NULL);

  if (framer->start > 0 && framer->start >= framer->buffer->len / 2)
    qlean_json_framer_compact (framer);

  g_byte_array_append (framer->buffer, data, len);
}

/*
 * qlean_json_framer_pop_line:
 * @line: (out): the next complete line without its line ending
 *
 * Returns: %TRUE with @line set when a line was complete, %TRUE with @line
 *   %NULL when more input is needed, %FALSE with @error set when a line
 *   grew past the cap. After the error the framer skips the rest of that
 *   line, so a caller that can go on (the agent, after a resync) may.
 */
gboolean
qlean_json_framer_pop_line (QleanJsonFramer  *framer,
                            GBytes          **line,
                            GError          **error)
{
  const guint8 *base;
  const guint8 *nl;
  gsize avail;

  g_return_val_if_fail (framer != NULL, FALSE);
  g_return_val_if_fail (line != NULL, FALSE);

  *line = NULL;

  for (;;)
    {
      gsize line_len;
      gsize end;

      base = framer->buffer->data + framer->start;
      avail = framer->buffer->len - framer->start;

      nl = NULL;
      if (framer->scanned < framer->buffer->len)
        nl = memchr (framer->buffer->data + framer->scanned, '\n',
                     framer->buffer->len - framer->scanned);

      if (nl == NULL)
        {
          framer->scanned = framer->buffer->len;

          if (framer->discarding)
            {
              framer->start = framer->buffer->len;
              qlean_json_framer_compact (framer);
              return TRUE;
            }

          if (avail > framer->max_line)
            {
              framer->discarding = TRUE;
              framer->start = framer->buffer->len;
              qlean_json_framer_compact (framer);
              g_set_error (error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_PROTOCOL,
                           "Message longer than %" G_GSIZE_FORMAT " bytes",
                           framer->max_line);
              return FALSE;
            }

          return TRUE;
        }

      end = (gsize) (nl - framer->buffer->data);
      line_len = end - framer->start;
      framer->start = end + 1;
      framer->scanned = framer->start;

      if (framer->discarding)
        {
          framer->discarding = FALSE;
          continue;
        }

      if (line_len > framer->max_line)
        {
          g_set_error (error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_PROTOCOL,
                       "Message longer than %" G_GSIZE_FORMAT " bytes",
                       framer->max_line);
          return FALSE;
        }

      if (line_len > 0 && base[line_len - 1] == '\r')
        line_len--;

      /* Blank lines carry nothing; skip them rather than report them. */
      if (line_len == 0)
        continue;

      *line = g_bytes_new (base, line_len);
      return TRUE;
    }
}

void
qlean_json_framer_reset (QleanJsonFramer *framer)
{
  g_byte_array_set_size (framer->buffer, 0);
  framer->start = 0;
  framer->scanned = 0;
  framer->discarding = FALSE;
}

gsize
qlean_json_framer_get_pending (QleanJsonFramer *framer)
{
  return framer->buffer->len - framer->start;
}

static gboolean
read_hex4 (const char *p,
           const char *end,
           gunichar   *value)
{
  if (end - p < 4)
    return FALSE;

  *value = 0;
  for (guint i = 0; i < 4; i++)
    {
      if (!g_ascii_isxdigit (p[i]))
        return FALSE;
      *value = (*value << 4) | (gunichar) g_ascii_xdigit_value (p[i]);
    }

  return TRUE;
}

/* Skips a string whose opening quote *p just passed. What ends a string
 * must be what ends it for json-glib, or brackets it parses would go
 * uncounted: so a \u escape needs its four hex digits (json-glib 1.6
 * reads up to four characters, a quote included), and a surrogate its
 * partner (json-glib 1.6 reads the two characters after it, whatever
 * they are). JSON allows nothing else there anyway. */
static gboolean
skip_string (const char **pp,
             const char  *end,
             GError     **error)
{
  const char *p = *pp;

  while (p < end)
    {
      char c = *p++;

      if (c == '"')
        break;

      if (c == '\\' && p < end)
        {
          char escaped = *p++;
          gunichar unit;

          if (escaped == 'u')
            {
              if (!read_hex4 (p, end, &unit))
                goto malformed;
              p += 4;

              if (unit >= 0xD800 && unit <= 0xDFFF)
                {
                  if (end - p < 2 || p[0] != '\\' || p[1] != 'u' || !read_hex4 (p + 2, end, &unit))
                    goto malformed;
                  p += 6;
                }
            }
          else if (escaped == '\0')
            goto nul;
        }
      else if (c == '\0')
        goto nul;
    }

  *pp = p;
  return TRUE;

malformed:
  g_set_error_literal (error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_PROTOCOL,
                       "Message has a malformed \\u escape");
  return FALSE;

nul:
  g_set_error_literal (error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_PROTOCOL,
                       "Message has a NUL byte");
  return FALSE;
}

/*
 * qlean_json_check_depth:
 * @data: JSON text, not necessarily terminated
 * @len: its length
 * @error: return location for a #GError
 *
 * Checks, without recursion, that @data nests arrays and objects no
 * deeper than %QLEAN_JSON_MAX_DEPTH, before json-glib, which recurses,
 * parses it. Brackets in strings do not count. Refuses what json-glib
 * would read differently than JSON does and could hide brackets in: a
 * comment or single-quoted string (json-glib 1.6 takes both), a NUL byte
 * (where json-glib 1.6 stops reading), a malformed \u escape. Call it on
 * anything a guest, QEMU or a file Qlean did not write hands json-glib.
 *
 * Returns: %TRUE when @data may go to json-glib; %FALSE with
 *   %QLEAN_QMP_ERROR_PROTOCOL set otherwise
 */
gboolean
qlean_json_check_depth (const char  *data,
                        gsize        len,
                        GError     **error)
{
  const char *p = data;
  const char *end = data + len;
  guint depth = 0;

  while (p < end)
    {
      switch (*p++)
        {
        case '[':
        case '{':
          if (++depth > QLEAN_JSON_MAX_DEPTH)
            {
              g_set_error (error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_PROTOCOL,
                           "Message nests arrays and objects deeper than %d levels",
                           QLEAN_JSON_MAX_DEPTH);
              return FALSE;
            }
          break;

        case ']':
        case '}':
          /* A closer too many is a syntax error json-glib stops at. */
          if (depth > 0)
            depth--;
          break;

        case '"':
          if (!skip_string (&p, end, error))
            return FALSE;
          break;

        case '\'':
        case '/':
          g_set_error_literal (error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_PROTOCOL,
                               "Message has a comment or a single-quoted string");
          return FALSE;

        case '\0':
          g_set_error_literal (error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_PROTOCOL,
                               "Message has a NUL byte");
          return FALSE;

        default:
          break;
        }
    }

  return TRUE;
}

JsonObject *
qlean_json_parse_object (const char  *data,
                         gsize        len,
                         GError     **error)
{
  g_autoptr(JsonParser) parser = json_parser_new_immutable ();
  g_autoptr(GError) local_error = NULL;
  JsonNode *root;

  if (!g_utf8_validate (data, len, NULL))
    {
      g_set_error_literal (error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_PROTOCOL,
                           "Message is not valid UTF-8");
      return NULL;
    }

  if (!qlean_json_check_depth (data, len, error))
    return NULL;

  if (!json_parser_load_from_data (parser, data, len, &local_error))
    {
      g_set_error (error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_PROTOCOL,
                   "Malformed JSON message: %s", local_error->message);
      return NULL;
    }

  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error_literal (error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_PROTOCOL,
                           "Message is not a JSON object");
      return NULL;
    }

  return json_object_ref (json_node_get_object (root));
}

JsonObject *
qlean_json_object_copy (JsonObject *object)
{
  g_autofree char *line = NULL;
  gsize len;
  JsonObject *copy;

  /* Through text: every object, array and value of the copy is new. */
  line = qlean_json_object_to_line (object, &len);
  copy = qlean_json_parse_object (line, len, NULL);
  g_assert (copy != NULL);

  return copy;
}

char *
qlean_json_object_to_line (JsonObject *object,
                           gsize      *len)
{
  g_autoptr(JsonNode) node = json_node_init_object (json_node_alloc (), object);
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  GString *str;

  json_generator_set_root (generator, node);
  str = g_string_new (NULL);
  json_generator_to_gstring (generator, str);
  g_string_append_c (str, '\n');
  if (len != NULL)
    *len = str->len;

  return g_string_free (str, FALSE);
}

static JsonNode *
get_member (JsonObject *object,
            const char *member)
{
  return object != NULL ? json_object_get_member (object, member) : NULL;
}

/* Returns: (nullable): the string @member of @object (which may be
 *   %NULL), or %NULL when it is missing or no string */
const char *
qlean_json_get_string (JsonObject *object,
                       const char *member)
{
  JsonNode *node = get_member (object, member);

  if (node == NULL || json_node_get_value_type (node) != G_TYPE_STRING)
    return NULL;

  return json_node_get_string (node);
}

/* Returns: %TRUE with @value set when @member is an integer */
gboolean
qlean_json_get_int (JsonObject *object,
                    const char *member,
                    gint64     *value)
{
  JsonNode *node = get_member (object, member);

  if (node == NULL || json_node_get_value_type (node) != G_TYPE_INT64)
    return FALSE;

  *value = json_node_get_int (node);
  return TRUE;
}

/* Returns: %TRUE with @value set when @member is a boolean */
gboolean
qlean_json_get_boolean (JsonObject *object,
                        const char *member,
                        gboolean   *value)
{
  JsonNode *node = get_member (object, member);

  if (node == NULL || json_node_get_value_type (node) != G_TYPE_BOOLEAN)
    return FALSE;

  *value = json_node_get_boolean (node);
  return TRUE;
}

/* Returns: (nullable) (transfer none): the object @member, or %NULL */
JsonObject *
qlean_json_get_object (JsonObject *object,
                       const char *member)
{
  JsonNode *node = get_member (object, member);

  return node != NULL && JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
}

/* Returns: (nullable) (transfer none): the array @member, or %NULL */
JsonArray *
qlean_json_get_array (JsonObject *object,
                      const char *member)
{
  JsonNode *node = get_member (object, member);

  return node != NULL && JSON_NODE_HOLDS_ARRAY (node) ? json_node_get_array (node) : NULL;
}

/* Returns: (nullable) (transfer none): element @index of @array when it
 *   is an object, or %NULL */
JsonObject *
qlean_json_array_get_object (JsonArray *array,
                             guint      index)
{
  JsonNode *node;

  if (array == NULL || index >= json_array_get_length (array))
    return NULL;

  node = json_array_get_element (array, index);
  return JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
}
