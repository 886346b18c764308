/* fuzz-archive.c: libFuzzer target for the machine archive reader
 *
 * SPDX-License-Identifier: MIT
 *
 * The reader behind qlean_machine_import() (lib/host/qlean-archive.c) on
 * arbitrary bytes. Built by tests/fuzz/build-fuzzers.sh as
 * fuzz-archive-import and run by bench/fuzz, e.g.:
 *   ./fuzz-archive-import -max_len=4096 corpus/ tests/fuzz/corpus/archive-import
 */

#include "config.h"

#include <stdint.h>
#include <string.h>

#include "qlean-archive-private.h"
#include "qlean-error.h"

int LLVMFuzzerTestOneInput (const uint8_t *data,
                            size_t         size);

/* The harness links lib/host/qlean-archive.c alone, not the machine code
 * that defines the domain. */
GQuark
qlean_machine_error_quark (void)
{
  return g_quark_from_static_string ("qlean-machine-error-quark");
}

typedef struct
{
  char    *member;
  guint64  size;
  guint64  received;
  guint    n_members;
  gboolean in_member;
} Check;

static gboolean
check_begin (const char  *name,
             guint64      size,
             gpointer     user_data,
             GError     **error)
{
  Check *check = user_data;

  /* What the reader promises the importer before it writes a byte. */
  g_assert_false (check->in_member);
  g_assert_true (qlean_archive_member_name_allowed (name));
  g_assert_cmpstr (name, !=, QLEAN_ARCHIVE_SUMS);
  g_assert_null (strchr (name, '/'));
  if (check->n_members == 0)
    g_assert_cmpstr (name, ==, QLEAN_ARCHIVE_MANIFEST);
  g_assert_cmpuint (size, <=, QLEAN_ARCHIVE_MAX_MEMBER);
  if (g_str_equal (name, QLEAN_ARCHIVE_MANIFEST))
    g_assert_cmpuint (size, <=, QLEAN_ARCHIVE_MAX_MANIFEST);

  g_free (check->member);
  check->member = g_strdup (name);
  check->size = size;
  check->received = 0;
  check->in_member = TRUE;
  return TRUE;
}

static gboolean
check_data (const guint8  *data,
            gsize          len,
            gpointer       user_data,
            GError       **error)
{
  Check *check = user_data;

  g_assert_true (check->in_member);
  g_assert_cmpuint (len, >, 0);
  check->received += len;
  g_assert_cmpuint (check->received, <=, check->size);
  return TRUE;
}

static gboolean
check_end (const char  *name,
           gpointer     user_data,
           GError     **error)
{
  Check *check = user_data;

  g_assert_true (check->in_member);
  g_assert_cmpstr (name, ==, check->member);
  g_assert_cmpuint (check->received, ==, check->size);
  check->in_member = FALSE;
  check->n_members++;
  return TRUE;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  static const QleanArchiveReaderFuncs funcs = { check_begin, check_data, check_end };
  g_autoptr(GInputStream) input = g_memory_input_stream_new_from_data (data, size, NULL);
  g_autoptr(GError) error = NULL;
  Check check = { 0 };
  gboolean ok;

  ok = qlean_archive_read (input, &funcs, &check, NULL, &error);
  g_assert_true (ok == (error == NULL));
  if (ok)
    {
      /* Accepted: whole members only, starting with the manifest. */
      g_assert_false (check.in_member);
      g_assert_cmpuint (check.n_members, >=, 1);
    }
  else
    g_assert_true (error->domain == QLEAN_MACHINE_ERROR || error->domain == G_IO_ERROR);

  g_free (check.member);
  return 0;
}
