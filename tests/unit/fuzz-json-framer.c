/* fuzz-json-framer.c: libFuzzer target for the framer and the parser
 *
 * SPDX-License-Identifier: MIT
 *
 * Build with clang -fsanitize=fuzzer,address (meson does when the
 * compiler is clang) and run, e.g.:
 *   ./fuzz-json-framer -max_len=4096 -runs=1000000
 */

#include "config.h"

#include <stdint.h>
#include <string.h>

#include "qlean-json-framer-private.h"
#include "qlean-qmp-error.h"

/* Small enough that the cap is hit often. */
#define FUZZ_MAX_LINE 64

int LLVMFuzzerTestOneInput (const uint8_t *data,
                            size_t         size);

static void
drain (QleanJsonFramer *framer)
{
  for (;;)
    {
      g_autoptr(GBytes) line = NULL;
      g_autoptr(GError) error = NULL;
      g_autoptr(JsonObject) object = NULL;
      const char *bytes;
      gsize len;

      if (!qlean_json_framer_pop_line (framer, &line, &error))
        {
          g_assert_error (error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_PROTOCOL);
          g_assert_null (line);
          continue;
        }
      g_assert_no_error (error);
      if (line == NULL)
        break;

      bytes = g_bytes_get_data (line, &len);
      /* What the framer promises its callers. */
      g_assert_cmpuint (len, >, 0);
      g_assert_cmpuint (len, <=, FUZZ_MAX_LINE);
      g_assert_null (memchr (bytes, '\n', len));

      object = qlean_json_parse_object (bytes, len, &error);
      g_assert_true ((object == NULL) == (error != NULL));
      if (error != NULL)
        g_assert_error (error, QLEAN_QMP_ERROR, QLEAN_QMP_ERROR_PROTOCOL);
      else
        g_free (qlean_json_object_to_line (object, NULL));
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autoptr(QleanJsonFramer) framer = qlean_json_framer_new (FUZZ_MAX_LINE);
  g_autoptr(JsonObject) object = NULL;
  g_autoptr(GError) error = NULL;
  size_t offset = 0;
  guint chunk_seed;

  if (size == 0)
    return 0;

  /* The first byte picks how the rest is cut into reads, so that lines
   * get split at every possible place. */
  chunk_seed = data[0];
  data++;
  size--;

  while (offset < size)
    {
      size_t chunk = 1 + (chunk_seed + offset) % 17;

      if (chunk > size - offset)
        chunk = size - offset;
      qlean_json_framer_push (framer, data + offset, chunk);
      drain (framer);
      offset += chunk;
      chunk_seed = chunk_seed * 33 + 7;
    }

  /* The whole input as one message, as the agent's resync parses the
   * bytes after its last 0xFF. */
  object = qlean_json_parse_object ((const char *) data, size, &error);
  g_assert_true ((object == NULL) == (error != NULL));

  return 0;
}
