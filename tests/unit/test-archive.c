/* test-archive.c: the machine archive format, reader and writer, on
 * memory streams (no QEMU)
 *
 * SPDX-License-Identifier: MIT
 *
 * Every archive a stranger could hand to qlean_machine_import() that the
 * reader must refuse, built byte by byte; the import itself, with real
 * machines and a sentinel directory, is in tests/test-archives.c.
 */

#include "config.h"

#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>

#include "qlean-archive-private.h"
#include "qlean-error.h"
#include "qlean-machine-archive.h"

/* An archive under construction, with the writer's rules or none. */
typedef struct
{
  GByteArray *bytes;
  GString    *sums;
} Raw;

static void
raw_init (Raw *raw)
{
  raw->bytes = g_byte_array_new ();
  raw->sums = g_string_new (NULL);
}

static void
raw_clear (Raw *raw)
{
  g_byte_array_unref (raw->bytes);
  g_string_free (raw->sums, TRUE);
}

static void
octal (guint8  *field,
       gsize    len,
       guint64  value)
{
  g_autofree char *text = g_strdup_printf ("%0*" G_GINT64_MODIFIER "o", (int) len - 1, value);

  memcpy (field, text, len - 1);
  field[len - 1] = '\0';
}

static void
raw_header (Raw        *raw,
            const char *name,
            guint64     size,
            char        type,
            const char *linkname)
{
  guint8 header[512] = { 0 };
  guint sum = 0;

  memcpy (header, name, MIN (strlen (name), 100));
  octal (header + 100, 8, 0600);
  octal (header + 108, 8, 0);
  octal (header + 116, 8, 0);
  octal (header + 124, 12, size);
  octal (header + 136, 12, 0);
  header[156] = type;
  if (linkname != NULL)
    memcpy (header + 157, linkname, strlen (linkname));
  memcpy (header + 257, "ustar\0" "00", 8);
  memset (header + 148, ' ', 8);
  for (gsize i = 0; i < 512; i++)
    sum += header[i];
  octal (header + 148, 7, sum);
  header[155] = ' ';
  g_byte_array_append (raw->bytes, header, 512);
}

static void
raw_data (Raw        *raw,
          const void *data,
          gsize       len)
{
  static const guint8 zeros[512];

  g_byte_array_append (raw->bytes, data, len);
  g_byte_array_append (raw->bytes, zeros, (512 - len % 512) % 512);
}

/* A regular member, with its line in SHA256SUMS. */
static void
raw_member (Raw        *raw,
            const char *name,
            const char *contents)
{
  g_autofree char *digest = g_compute_checksum_for_string (G_CHECKSUM_SHA256, contents, -1);

  raw_header (raw, name, strlen (contents), '0', NULL);
  raw_data (raw, contents, strlen (contents));
  g_string_append_printf (raw->sums, "%s  %s\n", digest, name);
}

static void
raw_sums (Raw *raw)
{
  raw_header (raw, QLEAN_ARCHIVE_SUMS, raw->sums->len, '0', NULL);
  raw_data (raw, raw->sums->str, raw->sums->len);
}

static void
raw_end (Raw *raw)
{
  static const guint8 zeros[1024];

  g_byte_array_append (raw->bytes, zeros, sizeof zeros);
}

typedef struct
{
  GString *log;
  GString *state;
} Seen;

static gboolean
seen_begin (const char  *name,
            guint64      size,
            gpointer     user_data,
            GError     **error)
{
  Seen *seen = user_data;

  g_string_append_printf (seen->log, "%s:%" G_GUINT64_FORMAT " ", name, size);
  return TRUE;
}

static gboolean
seen_data (const guint8  *data,
           gsize          len,
           gpointer       user_data,
           GError       **error)
{
  Seen *seen = user_data;

  g_string_append_len (seen->state, (const char *) data, len);
  return TRUE;
}

static const QleanArchiveReaderFuncs seen_funcs = { seen_begin, seen_data, NULL };

static gboolean
read_bytes (const guint8  *data,
            gsize          len,
            Seen          *seen,
            GError       **error)
{
  g_autoptr(GInputStream) input = g_memory_input_stream_new_from_data (data, len, NULL);

  return qlean_archive_read (input, &seen_funcs, seen, NULL, error);
}

static void
assert_refused (Raw        *raw,
                const char *message_part)
{
  g_autoptr(GError) error = NULL;
  Seen seen = { g_string_new (NULL), g_string_new (NULL) };

  g_assert_false (read_bytes (raw->bytes->data, raw->bytes->len, &seen, &error));
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_BAD_ARCHIVE);
  if (strstr (error->message, message_part) == NULL)
    g_error ("expected “%s” in: %s", message_part, error->message);
  g_string_free (seen.log, TRUE);
  g_string_free (seen.state, TRUE);
}

static void
test_round_trip (void)
{
  g_autoptr(GOutputStream) output = g_memory_output_stream_new_resizable ();
  g_autoptr(QleanArchiveWriter) writer = qlean_archive_writer_new (output);
  g_autoptr(GBytes) manifest = g_bytes_new_static ("{\"format\": 1}", 13);
  g_autoptr(GBytes) archive = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *state_path = NULL;
  g_autofree guint8 *big = g_malloc (700 * 1024 + 3);
  int fd;
  Seen seen = { g_string_new (NULL), g_string_new (NULL) };

  for (gsize i = 0; i < 700 * 1024 + 3; i++)
    big[i] = (guint8) (i * 7);
  fd = g_file_open_tmp ("qlean-archive-XXXXXX", &state_path, &error);
  g_assert_no_error (error);
  close (fd);
  g_assert_true (g_file_set_contents (state_path, (char *) big, 700 * 1024 + 3, &error));

  g_assert_true (qlean_archive_writer_add_bytes (writer, QLEAN_ARCHIVE_MANIFEST, manifest, NULL, &error));
  g_assert_true (qlean_archive_writer_add_file (writer, QLEAN_ARCHIVE_STATE, state_path, NULL, &error));
  g_assert_true (qlean_archive_writer_finish (writer, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (g_output_stream_close (output, NULL, &error));
  archive = g_memory_output_stream_steal_as_bytes (G_MEMORY_OUTPUT_STREAM (output));
  g_unlink (state_path);
  g_assert_cmpuint (g_bytes_get_size (archive) % 512, ==, 0);

  g_assert_true (read_bytes (g_bytes_get_data (archive, NULL), g_bytes_get_size (archive), &seen, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (seen.log->str, ==, "manifest.json:13 state:716803 ");
  g_assert_cmpuint (seen.state->len, ==, 13 + 700 * 1024 + 3);
  g_assert_true (memcmp (seen.state->str + 13, big, 700 * 1024 + 3) == 0);

  /* GNU tar reads it: the format is plain ustar. */
  {
    g_autofree char *tar = g_find_program_in_path ("tar");
    g_autofree char *archive_path = NULL;
    g_autofree char *listing = NULL;
    int status;

    if (tar != NULL)
      {
        fd = g_file_open_tmp ("qlean-archive-XXXXXX.tar", &archive_path, &error);
        g_assert_no_error (error);
        close (fd);
        g_assert_true (g_file_set_contents (archive_path, g_bytes_get_data (archive, NULL),
                                            g_bytes_get_size (archive), &error));
        {
          const char *argv[] = { tar, "-tf", archive_path, NULL };

          g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                                       &listing, NULL, &status, &error));
        }
        g_unlink (archive_path);
        g_assert_cmpstr (listing, ==, "manifest.json\nstate\nSHA256SUMS\n");
      }
  }

  g_string_free (seen.log, TRUE);
  g_string_free (seen.state, TRUE);
}

static void
test_valid_raw (void)
{
  g_autoptr(GError) error = NULL;
  Raw raw;
  Seen seen = { g_string_new (NULL), g_string_new (NULL) };

  raw_init (&raw);
  raw_member (&raw, QLEAN_ARCHIVE_MANIFEST, "{}");
  raw_member (&raw, QLEAN_ARCHIVE_STATE, "memory");
  raw_sums (&raw);
  raw_end (&raw);
  /* A record's worth of zeros after the end, as tar(1) pads. */
  g_byte_array_set_size (raw.bytes, raw.bytes->len + 4096);
  memset (raw.bytes->data + raw.bytes->len - 4096, 0, 4096);

  g_assert_true (read_bytes (raw.bytes->data, raw.bytes->len, &seen, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (seen.log->str, ==, "manifest.json:2 state:6 ");
  raw_clear (&raw);
  g_string_free (seen.log, TRUE);
  g_string_free (seen.state, TRUE);
}

/* One malformed archive per case: what goes after a valid manifest. */
typedef enum
{
  BAD_TRAVERSAL,
  BAD_ABSOLUTE,
  BAD_SUBDIR,
  BAD_SYMLINK,
  BAD_HARDLINK,
  BAD_CHARDEV,
  BAD_BLOCKDEV,
  BAD_DIRECTORY,
  BAD_FIFO,
  BAD_PAX,
  BAD_GNU_LONGNAME,
  BAD_UNKNOWN,
  BAD_DUPLICATE,
  BAD_MISMATCH,
  BAD_UNLISTED,
  BAD_LISTED_MISSING,
  BAD_NO_SUMS,
  BAD_AFTER_SUMS,
  BAD_HEADER_CHECKSUM,
  BAD_OVERSIZED_MANIFEST,
  BAD_SIZE_FIELD,
  BAD_SUMS_LINE,
} Bad;

static void
build_bad (Raw *raw,
           Bad  bad)
{
  raw_init (raw);
  raw_member (raw, QLEAN_ARCHIVE_MANIFEST, "{}");

  switch (bad)
    {
    case BAD_TRAVERSAL: raw_member (raw, "../x", "evil"); break;
    case BAD_ABSOLUTE: raw_member (raw, "/tmp/x", "evil"); break;
    case BAD_SUBDIR: raw_member (raw, "a/state", "evil"); break;
    case BAD_SYMLINK: raw_header (raw, QLEAN_ARCHIVE_STATE, 0, '2', "/etc/passwd"); break;
    case BAD_HARDLINK: raw_header (raw, QLEAN_ARCHIVE_STATE, 0, '1', "manifest.json"); break;
    case BAD_CHARDEV: raw_header (raw, QLEAN_ARCHIVE_STATE, 0, '3', NULL); break;
    case BAD_BLOCKDEV: raw_header (raw, QLEAN_ARCHIVE_STATE, 0, '4', NULL); break;
    case BAD_DIRECTORY: raw_header (raw, "state/", 0, '5', NULL); break;
    case BAD_FIFO: raw_header (raw, QLEAN_ARCHIVE_STATE, 0, '6', NULL); break;
    case BAD_PAX: raw_header (raw, "PaxHeader", 20, 'x', NULL); raw_data (raw, "20 path=../../x\n   ", 20); break;
    case BAD_GNU_LONGNAME: raw_header (raw, "././@LongLink", 5, 'L', NULL); raw_data (raw, "../x", 5); break;
    case BAD_UNKNOWN: raw_member (raw, "notes.txt", "hello"); break;
    case BAD_DUPLICATE: raw_member (raw, QLEAN_ARCHIVE_MANIFEST, "{}"); break;
    case BAD_MISMATCH:
      raw_member (raw, QLEAN_ARCHIVE_STATE, "memory");
      /* Flip a byte of the data after its digest was taken. */
      raw->bytes->data[raw->bytes->len - 512] ^= 1;
      break;
    case BAD_UNLISTED:
      raw_header (raw, QLEAN_ARCHIVE_STATE, 6, '0', NULL);
      raw_data (raw, "memory", 6);
      break;
    case BAD_LISTED_MISSING:
      g_string_append (raw->sums, "0000000000000000000000000000000000000000000000000000000000000000  state\n");
      break;
    case BAD_NO_SUMS: raw_member (raw, QLEAN_ARCHIVE_STATE, "memory"); raw_end (raw); return;
    case BAD_AFTER_SUMS:
      raw_sums (raw);
      raw_member (raw, QLEAN_ARCHIVE_STATE, "memory");
      raw_end (raw);
      return;
    case BAD_HEADER_CHECKSUM:
      raw_member (raw, QLEAN_ARCHIVE_STATE, "memory");
      raw->bytes->data[raw->bytes->len - 1024 + 1] ^= 0x20;   /* the name: "sTate" */
      break;
    case BAD_OVERSIZED_MANIFEST:
      raw_clear (raw);
      raw_init (raw);
      raw_header (raw, QLEAN_ARCHIVE_MANIFEST, 64 * 1024 * 1024, '0', NULL);
      break;
    case BAD_SIZE_FIELD:
      {
        guint8 *header;
        guint sum = 0;

        raw_header (raw, QLEAN_ARCHIVE_STATE, 0, '0', NULL);
        header = raw->bytes->data + raw->bytes->len - 512;
        /* base-256 size of 2^80: far past any cap */
        memset (header + 124, 0, 12);
        header[124] = 0x80;
        header[125] = 0x01;
        memset (header + 148, ' ', 8);
        for (gsize i = 0; i < 512; i++)
          sum += header[i];
        octal (header + 148, 7, sum);
        header[155] = ' ';
      }
      break;
    case BAD_SUMS_LINE:
      g_string_append (raw->sums, "not a checksum line\n");
      break;
    default:
      g_assert_not_reached ();
    }

  raw_sums (raw);
  raw_end (raw);
}

static const struct
{
  Bad         bad;
  const char *path;
  const char *message;
} bad_cases[] = {
  { BAD_TRAVERSAL, "traversal", "points outside" },
  { BAD_ABSOLUTE, "absolute", "absolute path" },
  { BAD_SUBDIR, "subdir", "in a directory" },
  { BAD_SYMLINK, "symlink", "symbolic link" },
  { BAD_HARDLINK, "hardlink", "hard link" },
  { BAD_CHARDEV, "chardev", "character device" },
  { BAD_BLOCKDEV, "blockdev", "block device" },
  { BAD_DIRECTORY, "directory", "a directory" },
  { BAD_FIFO, "fifo", "FIFO" },
  { BAD_PAX, "pax", "pax" },
  { BAD_GNU_LONGNAME, "gnu-longname", "GNU long-name" },
  { BAD_UNKNOWN, "unknown-member", "unknown member" },
  { BAD_DUPLICATE, "duplicate", "twice" },
  { BAD_MISMATCH, "checksum-mismatch", "Checksum mismatch" },
  { BAD_UNLISTED, "unlisted", "has no checksum" },
  { BAD_LISTED_MISSING, "listed-missing", "does not hold" },
  { BAD_NO_SUMS, "no-sums", "has no SHA256SUMS" },
  { BAD_AFTER_SUMS, "after-sums", "must come last" },
  { BAD_HEADER_CHECKSUM, "header-checksum", "damaged" },
  { BAD_OVERSIZED_MANIFEST, "oversized-manifest", "too large" },
  { BAD_SIZE_FIELD, "size-field", "size" },
  { BAD_SUMS_LINE, "sums-line", "malformed" },
};

static void
test_bad (gconstpointer data)
{
  guint i = GPOINTER_TO_UINT (data);
  Raw raw;

  build_bad (&raw, bad_cases[i].bad);
  assert_refused (&raw, bad_cases[i].message);
  raw_clear (&raw);
}

static void
test_not_first (void)
{
  Raw raw;

  raw_init (&raw);
  raw_member (&raw, QLEAN_ARCHIVE_STATE, "memory");
  raw_member (&raw, QLEAN_ARCHIVE_MANIFEST, "{}");
  raw_sums (&raw);
  raw_end (&raw);
  assert_refused (&raw, "does not start with manifest.json");
  raw_clear (&raw);
}

/* Cut anywhere, a valid archive is refused as truncated, never accepted
 * and never read past its end. */
static void
test_truncated (void)
{
  Raw raw;

  raw_init (&raw);
  raw_member (&raw, QLEAN_ARCHIVE_MANIFEST, "{}");
  raw_member (&raw, QLEAN_ARCHIVE_STATE, "some memory");
  raw_sums (&raw);
  raw_end (&raw);

  for (gsize len = 0; len < raw.bytes->len; len += (len < 2048 ? 1 : 7))
    {
      g_autoptr(GError) error = NULL;
      Seen seen = { g_string_new (NULL), g_string_new (NULL) };

      g_assert_false (read_bytes (raw.bytes->data, len, &seen, &error));
      g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_BAD_ARCHIVE);
      g_assert_true (strstr (error->message, "truncated") != NULL ||
                     strstr (error->message, "empty") != NULL);
      g_string_free (seen.log, TRUE);
      g_string_free (seen.state, TRUE);
    }
  raw_clear (&raw);
}

static void
test_garbage (void)
{
  g_autoptr(GError) error = NULL;
  guint8 junk[2048];
  Seen seen = { g_string_new (NULL), g_string_new (NULL) };

  for (gsize i = 0; i < sizeof junk; i++)
    junk[i] = (guint8) g_random_int ();
  g_assert_false (read_bytes (junk, sizeof junk, &seen, &error));
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_BAD_ARCHIVE);
  g_string_free (seen.log, TRUE);
  g_string_free (seen.state, TRUE);
}

/* json-glib parses recursively: a manifest nested 100,000 deep (200 KB,
 * within the manifest's cap) would overflow the stack of whoever
 * imports it. The import refuses it before it makes anything. */
static void
test_import_deep_manifest (void)
{
  g_autoptr(GString) manifest = g_string_new ("{\"format\": 1, \"config\": ");
  g_autoptr(GFile) file = NULL;
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *path = NULL;
  Raw raw;
  int fd;

  for (guint i = 0; i < 100000; i++)
    g_string_append_c (manifest, '[');
  for (guint i = 0; i < 100000; i++)
    g_string_append_c (manifest, ']');
  g_string_append_c (manifest, '}');

  raw_init (&raw);
  raw_member (&raw, QLEAN_ARCHIVE_MANIFEST, manifest->str);
  raw_sums (&raw);
  raw_end (&raw);
  fd = g_file_open_tmp ("qlean-archive-XXXXXX.qlean", &path, &error);
  g_assert_no_error (error);
  close (fd);
  g_assert_true (g_file_set_contents (path, (const char *) raw.bytes->data, raw.bytes->len, &error));
  raw_clear (&raw);

  file = g_file_new_for_path (path);
  machine = qlean_machine_import (file, "deep", NULL, NULL, &error);
  g_unlink (path);
  g_assert_null (machine);
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_BAD_ARCHIVE);
  g_assert_nonnull (strstr (error->message, "manifest"));
  g_assert_nonnull (strstr (error->message, "64"));
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/archive/round-trip", test_round_trip);
  g_test_add_func ("/archive/valid-raw", test_valid_raw);
  g_test_add_func ("/archive/bad/not-first", test_not_first);
  g_test_add_func ("/archive/bad/truncated", test_truncated);
  g_test_add_func ("/archive/bad/garbage", test_garbage);
  g_test_add_func ("/archive/import/deep-manifest", test_import_deep_manifest);
  for (guint i = 0; i < G_N_ELEMENTS (bad_cases); i++)
    {
      g_autofree char *path = g_strdup_printf ("/archive/bad/%s", bad_cases[i].path);

      g_test_add_data_func (path, GUINT_TO_POINTER (i), test_bad);
    }

  return g_test_run ();
}
