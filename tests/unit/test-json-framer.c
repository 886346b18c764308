/* test-json-framer.c: newline framing and JSON object parsing
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>

#include "qlean-json-framer-private.h"
#include "qlean-qmp-error.h"

static void
push_str (QleanJsonFramer *framer,
          const char      *str)
{
  qlean_json_framer_push (framer, (const guint8 *) str, strlen (str));
}

/* Pops the next line, which must be complete and equal @expected. */
static void
assert_line (QleanJsonFramer *framer,
             const char      *expected)
{
  g_autoptr(GBytes) line = NULL;
  g_autoptr(GError) error = NULL;
  gsize len;
  const char *data;

  g_assert_true (qlean_json_framer_pop_line (framer, &line, &error));
  g_assert_no_error (error);
  g_assert_nonnull (line);

  data = g_bytes_get_data (line, &len);
  g_assert_cmpmem (data, len, expected, strlen (expected));
}

/* Asserts the framer needs more input before it has a line. */
static void
assert_no_line (QleanJsonFramer *framer)
{
  g_autoptr(GBytes) line = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_true (qlean_json_framer_pop_line (framer, &line, &error));
  g_assert_no_error (error);
  g_assert_null (line);
}

static void
assert_too_long (QleanJsonFramer *framer)
{
  g_autoptr(GBytes) line = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_false (qlean_json_framer_pop_line (framer, &line, &error));
  g_assert_error (error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_PROTOCOL);
  g_assert_nonnull (strstr (error->message, "longer than"));
  g_assert_null (line);
}

static void
test_framer_single_line (void)
{
  g_autoptr(QleanJsonFramer) framer = qlean_json_framer_new (1024);

  assert_no_line (framer);
  push_str (framer, "{\"return\": {}}\n");
  assert_line (framer, "{\"return\": {}}");
  assert_no_line (framer);
  g_assert_cmpuint (qlean_json_framer_get_pending (framer), ==, 0);
}

static void
test_framer_across_chunks (void)
{
  g_autoptr(QleanJsonFramer) framer = qlean_json_framer_new (1024);

  push_str (framer, "{\"a\":");
  assert_no_line (framer);
  g_assert_cmpuint (qlean_json_framer_get_pending (framer), ==, 5);

  /* The end of one line and the start of the next in one chunk. */
  push_str (framer, "1}\n{\"b\"");
  assert_line (framer, "{\"a\":1}");
  assert_no_line (framer);
  g_assert_cmpuint (qlean_json_framer_get_pending (framer), ==, 4);

  push_str (framer, ":2}");
  assert_no_line (framer);
  push_str (framer, "\n{\"c\":3}\n{\"d\":4}\n");
  assert_line (framer, "{\"b\":2}");
  assert_line (framer, "{\"c\":3}");
  assert_line (framer, "{\"d\":4}");
  assert_no_line (framer);
}

static void
test_framer_byte_by_byte (void)
{
  g_autoptr(QleanJsonFramer) framer = qlean_json_framer_new (64);
  const char *input = "{\"return\": 1, \"id\": 7}\n{\"event\": \"STOP\"}\n";
  guint lines = 0;

  for (gsize i = 0; input[i] != '\0'; i++)
    {
      g_autoptr(GBytes) line = NULL;
      g_autoptr(GError) error = NULL;

      qlean_json_framer_push (framer, (const guint8 *) input + i, 1);
      g_assert_true (qlean_json_framer_pop_line (framer, &line, &error));
      g_assert_no_error (error);

      /* A line appears exactly when its newline arrives. */
      g_assert_true ((line != NULL) == (input[i] == '\n'));
      if (line != NULL)
        lines++;
    }

  g_assert_cmpuint (lines, ==, 2);
}

static void
test_framer_crlf (void)
{
  g_autoptr(QleanJsonFramer) framer = qlean_json_framer_new (1024);

  push_str (framer, "{\"a\":1}\r\n{\"b\":2}\n{\"c\":3}\r");
  assert_line (framer, "{\"a\":1}");
  assert_line (framer, "{\"b\":2}");
  /* A CR is not an end of line by itself. */
  assert_no_line (framer);
  push_str (framer, "\n");
  assert_line (framer, "{\"c\":3}");
  assert_no_line (framer);
}

static void
test_framer_blank_lines (void)
{
  g_autoptr(QleanJsonFramer) framer = qlean_json_framer_new (1024);

  push_str (framer, "\n\r\n\n{\"a\":1}\n\n\r\n");
  assert_line (framer, "{\"a\":1}");
  assert_no_line (framer);

  push_str (framer, "\n\n{\"b\":2}\n");
  assert_line (framer, "{\"b\":2}");
  assert_no_line (framer);
}

static void
test_framer_cap_exact (void)
{
  g_autoptr(QleanJsonFramer) framer = qlean_json_framer_new (8);

  /* A line of exactly the cap is fine, whether its newline is in the
   * same chunk or comes later. */
  push_str (framer, "12345678\n");
  assert_line (framer, "12345678");

  push_str (framer, "abcdefgh");
  assert_no_line (framer);
  push_str (framer, "\n");
  assert_line (framer, "abcdefgh");
}

/* The long line arrives whole, newline included: an error, then the
 * lines after it as usual. */
static void
test_framer_cap_whole_line (void)
{
  g_autoptr(QleanJsonFramer) framer = qlean_json_framer_new (8);

  push_str (framer, "{\"a\":1}\n123456789\n{\"b\":2}\n");
  assert_line (framer, "{\"a\":1}");
  assert_too_long (framer);
  assert_line (framer, "{\"b\":2}");
  assert_no_line (framer);
}

/* The long line arrives in pieces, without its end: the framer reports
 * it once as soon as it passes the cap, then drops the rest of it without
 * buffering it, and delivers the next line. */
static void
test_framer_cap_skip_rest (void)
{
  g_autoptr(QleanJsonFramer) framer = qlean_json_framer_new (8);

  push_str (framer, "123456");
  assert_no_line (framer);
  push_str (framer, "789");
  assert_too_long (framer);
  g_assert_cmpuint (qlean_json_framer_get_pending (framer), ==, 0);

  for (guint i = 0; i < 100; i++)
    {
      push_str (framer, "0123456789abcdef");
      assert_no_line (framer);
      g_assert_cmpuint (qlean_json_framer_get_pending (framer), ==, 0);
    }

  push_str (framer, "end of the long line\n{\"ok\":1}");
  assert_no_line (framer);
  push_str (framer, "\n");
  assert_line (framer, "{\"ok\":1}");
  assert_no_line (framer);

  /* And the cap still holds for the next long line. */
  push_str (framer, "abcdefghij\n{\"x\":2}\n");
  assert_too_long (framer);
  assert_line (framer, "{\"x\":2}");
}

static void
test_framer_cap_newline_in_next_chunk (void)
{
  g_autoptr(QleanJsonFramer) framer = qlean_json_framer_new (8);

  push_str (framer, "12345");
  assert_no_line (framer);
  /* Past the cap and ended within the same chunk. */
  push_str (framer, "6789\n{\"y\":3}\n");
  assert_too_long (framer);
  assert_line (framer, "{\"y\":3}");
  assert_no_line (framer);
}

static void
test_framer_reset (void)
{
  g_autoptr(QleanJsonFramer) framer = qlean_json_framer_new (8);

  push_str (framer, "partial");
  qlean_json_framer_reset (framer);
  g_assert_cmpuint (qlean_json_framer_get_pending (framer), ==, 0);
  push_str (framer, "{}\n");
  assert_line (framer, "{}");

  /* A reset also ends the skipping of a long line. */
  push_str (framer, "0123456789");
  assert_too_long (framer);
  qlean_json_framer_reset (framer);
  push_str (framer, "{}\n");
  assert_line (framer, "{}");
}

/* Many small lines from one big push: all come out, in order. */
static void
test_framer_many_lines (void)
{
  g_autoptr(QleanJsonFramer) framer = qlean_json_framer_new (64);
  g_autoptr(GString) input = g_string_new (NULL);

  for (guint i = 0; i < 10000; i++)
    g_string_append_printf (input, "{\"n\":%u}\n", i);
  qlean_json_framer_push (framer, (const guint8 *) input->str, input->len);

  for (guint i = 0; i < 10000; i++)
    {
      g_autofree char *expected = g_strdup_printf ("{\"n\":%u}", i);

      assert_line (framer, expected);
      /* Interleave pushes with pops, as a socket reader does. */
      if (i % 100 == 0)
        push_str (framer, "\n");
    }
  assert_no_line (framer);
}

static void
test_parse_object (void)
{
  g_autoptr(JsonObject) object = NULL;
  g_autoptr(GError) error = NULL;
  const char *data = "{\"return\": {\"status\": \"running\"}, \"id\": 3}";

  object = qlean_json_parse_object (data, strlen (data), &error);
  g_assert_no_error (error);
  g_assert_nonnull (object);
  g_assert_cmpint (json_object_get_int_member (object, "id"), ==, 3);
  g_assert_cmpstr (json_object_get_string_member (json_object_get_object_member (object, "return"),
                                                  "status"), ==, "running");

  /* Only the given length counts, not what follows in the buffer. */
  g_clear_pointer (&object, json_object_unref);
  object = qlean_json_parse_object ("{}garbage", 2, &error);
  g_assert_no_error (error);
  g_assert_nonnull (object);
  g_assert_cmpuint (json_object_get_size (object), ==, 0);
}

static void
assert_parse_fails (const char *data,
                    gssize      len,
                    const char *message_part)
{
  g_autoptr(JsonObject) object = NULL;
  g_autoptr(GError) error = NULL;

  object = qlean_json_parse_object (data, len < 0 ? strlen (data) : (gsize) len, &error);
  g_assert_null (object);
  g_assert_error (error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_PROTOCOL);
  g_assert_nonnull (strstr (error->message, message_part));
}

static void
test_parse_object_errors (void)
{
  assert_parse_fails ("this is not json", -1, "Malformed");
  assert_parse_fails ("{\"return\": ", -1, "Malformed");
  assert_parse_fails ("[1, 2, 3]", -1, "not a JSON object");
  assert_parse_fails ("42", -1, "not a JSON object");
  assert_parse_fails ("\"QMP\"", -1, "not a JSON object");
  assert_parse_fails ("", 0, "");
  assert_parse_fails ("{\"a\": \"\xff\xfe\"}", -1, "UTF-8");
  /* An embedded NUL must not cut the message short into valid JSON. */
  assert_parse_fails ("{}\0{", 4, "");
}

/* @head, @depth arrays and objects in turn nested in each other, @tail */
static char *
nested (const char *head,
        guint       depth,
        const char *tail)
{
  GString *str = g_string_new (head);

  for (guint i = 0; i < depth; i++)
    g_string_append (str, i % 2 ? "{\"k\": " : "[");
  g_string_append (str, "0");
  for (guint i = depth; i > 0; i--)
    g_string_append_c (str, (i - 1) % 2 ? '}' : ']');
  g_string_append (str, tail);

  return g_string_free (str, FALSE);
}

/* json-glib recurses once per level, so a deep message would overflow
 * the stack; qlean_json_check_depth() refuses it first, and anything
 * json-glib could read differently than the check and so hide brackets
 * in. */
static void
test_parse_object_depth (void)
{
  g_autofree char *at_bound = nested ("{\"a\": ", QLEAN_JSON_MAX_DEPTH - 1, "}");
  g_autofree char *over_bound = nested ("{\"a\": ", QLEAN_JSON_MAX_DEPTH, "}");
  g_autofree char *deep = nested ("{\"a\": ", 100000, "}");
  g_autoptr(JsonObject) object = NULL;
  g_autoptr(GError) error = NULL;
  static const char *hiding[] = {
    /* json-glib 1.6 reads \u12 and the quote after it as the escape... */
    "{\"a\": \"\\u12\", \"",
    /* ...and the two characters after a lone surrogate, quote included. */
    "{\"a\": [\"\\ud800\", \",",
    "{\"a\": [\"\\udc00x\", \",",
    /* It skips comments from one / to the next, and takes 'strings'. */
    "{\"a\": / \" /",
    "{\"a\": [\'\"\', ",
  };

  object = qlean_json_parse_object (at_bound, strlen (at_bound), &error);
  g_assert_no_error (error);
  g_assert_nonnull (object);
  g_clear_pointer (&object, json_object_unref);

  assert_parse_fails (over_bound, -1, "deeper than 64 levels");
  assert_parse_fails (deep, -1, "deeper than 64 levels");

  for (guint i = 0; i < G_N_ELEMENTS (hiding); i++)
    {
      g_autofree char *hidden = nested (hiding[i], 100000, "\"]}");

      g_assert_false (qlean_json_check_depth (hidden, strlen (hidden), &error));
      g_assert_error (error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_PROTOCOL);
      g_clear_error (&error);
      assert_parse_fails (hidden, -1, "");
    }

  /* A NUL, where json-glib 1.6 stops reading. */
  g_assert_false (qlean_json_check_depth ("{\"a\": \"\0\"}", 9, &error));
  g_assert_error (error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_PROTOCOL);
  g_clear_error (&error);

  /* Brackets in strings are no nesting, behind escaped quotes and
   * backslashes too; a surrogate pair is a proper escape. */
  {
    g_autoptr(GString) in_string = g_string_new ("{\"a\": \"\\\\\\\"\\ud83d\\ude00");
    const char *value;

    for (guint i = 0; i < 1000; i++)
      g_string_append (in_string, "[{");
    g_string_append (in_string, "\"}");

    object = qlean_json_parse_object (in_string->str, in_string->len, &error);
    g_assert_no_error (error);
    value = json_object_get_string_member (object, "a");
    g_assert_true (g_str_has_prefix (value, "\\\"\xf0\x9f\x98\x80[{[{"));
    g_assert_cmpuint (strlen (value), ==, 2 + 4 + 2000);
  }
}

/* The typed getters never warn: a wrong type reads as missing. */
static void
test_typed_getters (void)
{
  g_autoptr(JsonObject) object = NULL;
  g_autoptr(GError) error = NULL;
  const char *data = "{\"s\": \"x\", \"i\": 7, \"b\": true, \"o\": {\"k\": 1}, "
                     "\"a\": [{\"k\": 2}, 3, null, [], \"s\"], \"n\": null, \"d\": 1.5}";
  const char *members[] = { "s", "i", "b", "o", "a", "n", "d", "missing" };
  gint64 value = -1;
  gboolean flag = FALSE;
  JsonArray *array;

  object = qlean_json_parse_object (data, strlen (data), &error);
  g_assert_no_error (error);

  g_assert_cmpstr (qlean_json_get_string (object, "s"), ==, "x");
  g_assert_true (qlean_json_get_int (object, "i", &value));
  g_assert_cmpint (value, ==, 7);
  g_assert_true (qlean_json_get_boolean (object, "b", &flag));
  g_assert_true (flag);
  g_assert_nonnull (qlean_json_get_object (object, "o"));
  array = qlean_json_get_array (object, "a");
  g_assert_nonnull (array);

  for (guint i = 0; i < G_N_ELEMENTS (members); i++)
    {
      const char *member = members[i];

      if (!g_str_equal (member, "s"))
        g_assert_null (qlean_json_get_string (object, member));
      if (!g_str_equal (member, "i"))
        g_assert_false (qlean_json_get_int (object, member, &value));
      if (!g_str_equal (member, "b"))
        g_assert_false (qlean_json_get_boolean (object, member, &flag));
      if (!g_str_equal (member, "o"))
        g_assert_null (qlean_json_get_object (object, member));
      if (!g_str_equal (member, "a"))
        g_assert_null (qlean_json_get_array (object, member));
    }
  g_assert_cmpint (value, ==, 7);

  g_assert_nonnull (qlean_json_array_get_object (array, 0));
  for (guint i = 1; i < 6; i++)
    g_assert_null (qlean_json_array_get_object (array, i));

  /* A missing parent reads as missing, so lookups chain. */
  g_assert_null (qlean_json_get_string (qlean_json_get_object (object, "s"), "k"));
  g_assert_null (qlean_json_array_get_object (NULL, 0));
}

static void
test_object_to_line (void)
{
  g_autoptr(JsonObject) object = json_object_new ();
  g_autoptr(JsonObject) parsed = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;
  gsize len;

  json_object_set_string_member (object, "execute", "query-status");
  json_object_set_string_member (object, "text", "line\nbreak");
  json_object_set_int_member (object, "id", 12);
  line = qlean_json_object_to_line (object, &len);

  g_assert_cmpuint (len, ==, strlen (line));
  g_assert_cmpint (line[len - 1], ==, '\n');
  /* One line: a newline in a value is escaped. */
  g_assert_null (memchr (line, '\n', len - 1));

  parsed = qlean_json_parse_object (line, len - 1, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (json_object_get_string_member (parsed, "execute"), ==, "query-status");
  g_assert_cmpstr (json_object_get_string_member (parsed, "text"), ==, "line\nbreak");
  g_assert_cmpint (json_object_get_int_member (parsed, "id"), ==, 12);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/framer/single-line", test_framer_single_line);
  g_test_add_func ("/framer/across-chunks", test_framer_across_chunks);
  g_test_add_func ("/framer/byte-by-byte", test_framer_byte_by_byte);
  g_test_add_func ("/framer/crlf", test_framer_crlf);
  g_test_add_func ("/framer/blank-lines", test_framer_blank_lines);
  g_test_add_func ("/framer/cap/exact", test_framer_cap_exact);
  g_test_add_func ("/framer/cap/whole-line", test_framer_cap_whole_line);
  g_test_add_func ("/framer/cap/skip-rest", test_framer_cap_skip_rest);
  g_test_add_func ("/framer/cap/newline-in-next-chunk", test_framer_cap_newline_in_next_chunk);
  g_test_add_func ("/framer/reset", test_framer_reset);
  g_test_add_func ("/framer/many-lines", test_framer_many_lines);
  g_test_add_func ("/json/parse-object", test_parse_object);
  g_test_add_func ("/json/parse-object/errors", test_parse_object_errors);
  g_test_add_func ("/json/parse-object/depth", test_parse_object_depth);
  g_test_add_func ("/json/typed-getters", test_typed_getters);
  g_test_add_func ("/json/object-to-line", test_object_to_line);

  return g_test_run ();
}
