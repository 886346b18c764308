/* qlean-archive.c: the machine archive format (a small ustar)
 *
 * SPDX-License-Identifier: MIT
 *
 * Our own few hundred lines rather than libarchive: the format is fixed
 * (a few regular files with short names), and the reader's job is mostly
 * to refuse, which is easier to get right, and to fuzz, when it knows
 * nothing else.
 */

#include "config.h"

#include <string.h>
#include <glib/gi18n-lib.h>

#include "qlean-archive-private.h"
#include "qlean-ustar-private.h"
#include "qlean-error.h"

#define CHUNK (256 * 1024)

static const char * const member_names[] = {
  QLEAN_ARCHIVE_MANIFEST, QLEAN_ARCHIVE_DISK, QLEAN_ARCHIVE_KERNEL, QLEAN_ARCHIVE_INITRD,
  QLEAN_ARCHIVE_STATE, QLEAN_ARCHIVE_SUMS,
};

gboolean
qlean_archive_member_name_allowed (const char *name)
{
  for (guint i = 0; i < G_N_ELEMENTS (member_names); i++)
    if (g_strcmp0 (name, member_names[i]) == 0)
      return TRUE;

  return FALSE;
}

static gboolean
bad_archive (GError     **error,
             const char  *format,
             ...) G_GNUC_PRINTF (2, 3);

static gboolean
bad_archive (GError     **error,
             const char  *format,
             ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);

  g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_BAD_ARCHIVE,
               _("Not a valid machine archive: %s"), message);
  return FALSE;
}

/* Writing */

struct _QleanArchiveWriter
{
  GOutputStream *output;
  GString       *sums;
  gboolean       finished;
};

QleanArchiveWriter *
qlean_archive_writer_new (GOutputStream *output)
{
  QleanArchiveWriter *writer = g_new0 (QleanArchiveWriter, 1);

  writer->output = g_object_ref (output);
  writer->sums = g_string_new (NULL);
  return writer;
}

void
qlean_archive_writer_free (QleanArchiveWriter *writer)
{
  g_clear_object (&writer->output);
  g_string_free (writer->sums, TRUE);
  g_free (writer);
}

void
qlean_ustar_put_octal (guint8  *field,
           gsize    len,
           guint64  value)
{
  /* len - 1 digits and a NUL; callers keep values in range. */
  for (gsize i = len - 1; i-- > 0;)
    {
      field[i] = '0' + (value & 7);
      value >>= 3;
    }
  field[len - 1] = '\0';
}

void
qlean_ustar_put_size (guint8  *field,
          guint64  size)
{
  /* Eleven octal digits reach 8 GiB; beyond, the GNU/star base-256 form
   * that every current tar reads. */
  if (size < ((guint64) 1 << 33))
    {
      qlean_ustar_put_octal (field, 12, size);
      return;
    }

  memset (field, 0, 12);
  field[0] = 0x80;
  for (int i = 11; i > 0 && size > 0; i--)
    {
      field[i] = size & 0xff;
      size >>= 8;
    }
}

guint
qlean_ustar_checksum (const guint8 *header,
                 gboolean      is_signed)
{
  guint sum = 0;

  for (gsize i = 0; i < BLOCK; i++)
    {
      int byte = (i >= H_CHKSUM && i < H_CHKSUM + 8) ? ' '
                 : is_signed ? (int) (gint8) header[i] : (int) header[i];

      sum += byte;
    }

  return sum;
}

static void
make_header (guint8     *header,
             const char *name,
             guint64     size)
{
  memset (header, 0, BLOCK);
  g_assert (strlen (name) < H_NAME_LEN);
  memcpy (header + H_NAME, name, strlen (name));
  qlean_ustar_put_octal (header + H_MODE, 8, 0600);
  qlean_ustar_put_octal (header + H_UID, 8, 0);
  qlean_ustar_put_octal (header + H_GID, 8, 0);
  qlean_ustar_put_size (header + H_SIZE, size);
  qlean_ustar_put_octal (header + H_MTIME, 12, (guint64) (g_get_real_time () / G_USEC_PER_SEC));
  header[H_TYPEFLAG] = '0';
  memcpy (header + H_MAGIC, "ustar", 6);
  memcpy (header + H_VERSION, "00", 2);
  qlean_ustar_put_octal (header + H_DEVMAJOR, 8, 0);
  qlean_ustar_put_octal (header + H_DEVMINOR, 8, 0);
  /* Six digits, NUL, space: what POSIX tar writes. */
  qlean_ustar_put_octal (header + H_CHKSUM, 7, qlean_ustar_checksum (header, FALSE));
  header[H_CHKSUM + 7] = ' ';
}

static gboolean
write_padding (QleanArchiveWriter  *writer,
               guint64              size,
               GCancellable        *cancellable,
               GError             **error)
{
  static const guint8 zeros[BLOCK];
  gsize pad = (BLOCK - size % BLOCK) % BLOCK;

  return pad == 0 ||
         g_output_stream_write_all (writer->output, zeros, pad, NULL, cancellable, error);
}

static void
note_sum (QleanArchiveWriter *writer,
          const char         *name,
          GChecksum          *checksum)
{
  g_string_append_printf (writer->sums, "%s  %s\n", g_checksum_get_string (checksum), name);
}

gboolean
qlean_archive_writer_add_bytes (QleanArchiveWriter  *writer,
                                const char          *name,
                                GBytes              *contents,
                                GCancellable        *cancellable,
                                GError             **error)
{
  g_autoptr(GChecksum) checksum = g_checksum_new (G_CHECKSUM_SHA256);
  guint8 header[BLOCK];
  gsize len;
  const guint8 *data = g_bytes_get_data (contents, &len);

  g_return_val_if_fail (!writer->finished, FALSE);

  make_header (header, name, len);
  if (!g_output_stream_write_all (writer->output, header, BLOCK, NULL, cancellable, error) ||
      !g_output_stream_write_all (writer->output, data, len, NULL, cancellable, error) ||
      !write_padding (writer, len, cancellable, error))
    return FALSE;

  if (!g_str_equal (name, QLEAN_ARCHIVE_SUMS))
    {
      g_checksum_update (checksum, data, len);
      note_sum (writer, name, checksum);
    }

  return TRUE;
}

gboolean
qlean_archive_writer_add_file (QleanArchiveWriter  *writer,
                               const char          *name,
                               const char          *path,
                               GCancellable        *cancellable,
                               GError             **error)
{
  g_autoptr(GChecksum) checksum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autoptr(GFile) file = g_file_new_for_path (path);
  g_autoptr(GFileInputStream) input = NULL;
  g_autoptr(GFileInfo) info = NULL;
  g_autofree guint8 *buffer = NULL;
  guint8 header[BLOCK];
  guint64 size;
  guint64 copied = 0;

  g_return_val_if_fail (!writer->finished, FALSE);

  input = g_file_read (file, cancellable, error);
  if (input == NULL)
    return FALSE;
  info = g_file_input_stream_query_info (input, G_FILE_ATTRIBUTE_STANDARD_SIZE, cancellable, error);
  if (info == NULL)
    return FALSE;
  size = g_file_info_get_size (info);

  make_header (header, name, size);
  if (!g_output_stream_write_all (writer->output, header, BLOCK, NULL, cancellable, error))
    return FALSE;

  buffer = g_malloc (CHUNK);
  while (copied < size)
    {
      gssize n = g_input_stream_read (G_INPUT_STREAM (input), buffer,
                                      MIN ((guint64) CHUNK, size - copied), cancellable, error);

      if (n < 0)
        return FALSE;
      if (n == 0)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                       _("%s shrank while it was being archived"), path);
          return FALSE;
        }
      g_checksum_update (checksum, buffer, n);
      if (!g_output_stream_write_all (writer->output, buffer, n, NULL, cancellable, error))
        return FALSE;
      copied += n;
    }

  if (!write_padding (writer, size, cancellable, error))
    return FALSE;

  note_sum (writer, name, checksum);
  return TRUE;
}

gboolean
qlean_archive_writer_finish (QleanArchiveWriter  *writer,
                             GCancellable        *cancellable,
                             GError             **error)
{
  static const guint8 zeros[2 * BLOCK];
  g_autoptr(GBytes) sums = g_bytes_new (writer->sums->str, writer->sums->len);

  g_return_val_if_fail (!writer->finished, FALSE);

  if (!qlean_archive_writer_add_bytes (writer, QLEAN_ARCHIVE_SUMS, sums, cancellable, error) ||
      !g_output_stream_write_all (writer->output, zeros, sizeof zeros, NULL, cancellable, error) ||
      !g_output_stream_flush (writer->output, cancellable, error))
    return FALSE;

  writer->finished = TRUE;
  return TRUE;
}

/* Reading */

typedef struct
{
  GInputStream                  *input;
  const QleanArchiveReaderFuncs *funcs;
  gpointer                       user_data;
  GCancellable                  *cancellable;
  GHashTable                    *digests;    /* name -> hex SHA-256 */
  GString                       *sums;
  guint                          n_members;
  gboolean                       sums_seen;
} Reader;

/* Reads exactly @len bytes. *@eof is set, and TRUE returned, when the
 * stream ends before the first byte; ending after it is truncation. */
static gboolean
read_exact (Reader      *reader,
            guint8      *buffer,
            gsize        len,
            gboolean    *eof,
            const char  *what,
            GError     **error)
{
  gsize n = 0;

  if (eof != NULL)
    *eof = FALSE;

  if (!g_input_stream_read_all (reader->input, buffer, len, &n, reader->cancellable, error))
    return FALSE;

  if (n == 0 && len > 0 && eof != NULL)
    {
      *eof = TRUE;
      return TRUE;
    }

  if (n < len)
    return bad_archive (error, _("it is truncated (in %s)"), what);

  return TRUE;
}

gboolean
qlean_ustar_is_zero_block (const guint8 *block)
{
  for (gsize i = 0; i < BLOCK; i++)
    if (block[i] != 0)
      return FALSE;

  return TRUE;
}

/* An octal field: optional leading spaces, digits, then NULs or spaces
 * to its end. */
gboolean
qlean_ustar_parse_octal (const guint8 *field,
             gsize         len,
             guint64       max,
             guint64      *value)
{
  gsize i = 0;
  guint64 v = 0;
  gboolean digits = FALSE;

  while (i < len && field[i] == ' ')
    i++;
  for (; i < len && field[i] >= '0' && field[i] <= '7'; i++)
    {
      v = v * 8 + (field[i] - '0');
      if (v > max)
        return FALSE;
      digits = TRUE;
    }
  for (; i < len; i++)
    if (field[i] != '\0' && field[i] != ' ')
      return FALSE;

  *value = v;
  return digits;
}

gboolean
qlean_ustar_parse_size (const guint8 *field,
                        guint64       max,
                        guint64      *size)
{
  if ((field[0] & 0x80) == 0)
    return qlean_ustar_parse_octal (field, 12, max, size);

  /* Base-256: only positive values, and no more than we accept anyway. */
  if (field[0] != 0x80)
    return FALSE;

  *size = 0;
  for (gsize i = 1; i < 12; i++)
    {
      if (*size > (max >> 8))
        return FALSE;
      *size = (*size << 8) | field[i];
    }

  return *size <= max;
}

/* Refuses the member @shown, whose type is not a regular file's: one
 * whole sentence per type, for translators. */
static gboolean
refuse_type (GError     **error,
             const char  *shown,
             char         type)
{
  switch (type)
    {
    case '1':
      return bad_archive (error, _("member “%s” is a hard link; only regular files are allowed"),
                          shown);
    case '2':
      return bad_archive (error, _("member “%s” is a symbolic link; only regular files are "
                                   "allowed"), shown);
    case '3':
      return bad_archive (error, _("member “%s” is a character device; only regular files are "
                                   "allowed"), shown);
    case '4':
      return bad_archive (error, _("member “%s” is a block device; only regular files are "
                                   "allowed"), shown);
    case '5':
      return bad_archive (error, _("member “%s” is a directory; only regular files are allowed"),
                          shown);
    case '6':
      return bad_archive (error, _("member “%s” is a FIFO; only regular files are allowed"), shown);
    case '7':
      return bad_archive (error, _("member “%s” is a contiguous file; only regular files are "
                                   "allowed"), shown);
    case 'x':
    case 'g':
      return bad_archive (error, _("member “%s” is a pax extended header; only regular files are "
                                   "allowed"), shown);
    case 'L':
    case 'K':
      return bad_archive (error, _("member “%s” is a GNU long-name header; only regular files "
                                   "are allowed"), shown);
    default:
      return bad_archive (error, _("member “%s” is of an unknown type; only regular files are "
                                   "allowed"), shown);
    }
}

/* What a header may name: one of our few files, nothing with a path. */
static gboolean
check_name (const char  *name,
            GError     **error)
{
  g_autofree char *shown = g_strescape (name, NULL);

  if (*name == '\0')
    return bad_archive (error, _("a member has no name"));
  if (*name == '/')
    return bad_archive (error, _("member “%s” has an absolute path"), shown);
  if (strstr (name, "..") != NULL)
    return bad_archive (error, _("member “%s” points outside the archive (“..”)"), shown);
  if (strchr (name, '/') != NULL)
    return bad_archive (error, _("member “%s” is in a directory; machine archives have none"), shown);
  if (!qlean_archive_member_name_allowed (name))
    return bad_archive (error, _("unknown member “%s”"), shown);

  return TRUE;
}

static gboolean
check_header (Reader        *reader,
              const guint8  *header,
              char         **name_out,
              guint64       *size_out,
              GError       **error)
{
  guint64 stored;
  g_autofree char *name = NULL;
  char type = header[H_TYPEFLAG];
  gsize name_len;
  guint64 max;

  if (memcmp (header + H_MAGIC, "ustar\0" "00", 8) != 0 &&
      memcmp (header + H_MAGIC, "ustar  \0", 8) != 0)
    return bad_archive (error, _("member %u has no ustar header"), reader->n_members + 1);

  if (!qlean_ustar_parse_octal (header + H_CHKSUM, 8, G_MAXUINT, &stored) ||
      (stored != qlean_ustar_checksum (header, FALSE) && stored != qlean_ustar_checksum (header, TRUE)))
    return bad_archive (error, _("the header of member %u is damaged (checksum)"), reader->n_members + 1);

  /* The name must end within its field: then it is exactly what
   * we compare, and a prefix field could only add a directory. */
  name_len = strnlen ((const char *) header + H_NAME, H_NAME_LEN);
  if (name_len == H_NAME_LEN || header[H_PREFIX] != '\0')
    return bad_archive (error, _("member %u has an overlong name"), reader->n_members + 1);
  name = g_strndup ((const char *) header + H_NAME, name_len);

  if (type != '0' && type != '\0')
    {
      g_autofree char *shown = g_strescape (name, NULL);

      return refuse_type (error, shown, type);
    }
  if (header[H_LINKNAME] != '\0')
    return bad_archive (error, _("member %u has a link target"), reader->n_members + 1);

  if (!check_name (name, error))
    return FALSE;

  if (g_hash_table_contains (reader->digests, name) ||
      (reader->sums_seen && g_str_equal (name, QLEAN_ARCHIVE_SUMS)))
    return bad_archive (error, _("member “%s” appears twice"), name);
  if (reader->sums_seen)
    return bad_archive (error, _("member “%s” follows %s, which must come last"), name, QLEAN_ARCHIVE_SUMS);
  if (reader->n_members == 0 && !g_str_equal (name, QLEAN_ARCHIVE_MANIFEST))
    return bad_archive (error, _("it does not start with %s"), QLEAN_ARCHIVE_MANIFEST);

  if (!qlean_ustar_parse_size (header + H_SIZE, QLEAN_ARCHIVE_MAX_MEMBER, size_out))
    return bad_archive (error, _("member “%s” has an invalid or oversized size"), name);
  max = g_str_equal (name, QLEAN_ARCHIVE_MANIFEST) ? QLEAN_ARCHIVE_MAX_MANIFEST
        : g_str_equal (name, QLEAN_ARCHIVE_SUMS) ? QLEAN_ARCHIVE_MAX_SUMS
        : QLEAN_ARCHIVE_MAX_MEMBER;
  if (*size_out > max)
    return bad_archive (error, _("member “%s” is too large (%" G_GUINT64_FORMAT " bytes)"),
                        name, *size_out);

  *name_out = g_steal_pointer (&name);
  return TRUE;
}

static gboolean
is_hex_digest (const char *text)
{
  for (gsize i = 0; i < 64; i++)
    if (!g_ascii_isxdigit (text[i]))
      return FALSE;

  return TRUE;
}

/* SHA256SUMS must list every other member exactly once, with its digest. */
static gboolean
check_sums (Reader  *reader,
            GError **error)
{
  g_auto(GStrv) lines = NULL;
  g_autoptr(GHashTable) listed = g_hash_table_new (g_str_hash, g_str_equal);
  GHashTableIter iter;
  gpointer key;

  if (memchr (reader->sums->str, '\0', reader->sums->len) != NULL)
    return bad_archive (error, _("%s is not text"), QLEAN_ARCHIVE_SUMS);

  lines = g_strsplit (reader->sums->str, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      const char *line = lines[i];
      const char *name;
      const char *digest;

      if (*line == '\0')
        continue;
      /* "<64 hex>  name" (text mode) or "<64 hex> *name" (binary). */
      if (strlen (line) < 67 || !is_hex_digest (line) || line[64] != ' ' ||
          (line[65] != ' ' && line[65] != '*'))
        return bad_archive (error, _("line %u of %s is malformed"), i + 1, QLEAN_ARCHIVE_SUMS);
      name = line + 66;
      digest = g_hash_table_lookup (reader->digests, name);
      if (digest == NULL)
        {
          g_autofree char *shown = g_strescape (name, NULL);

          return bad_archive (error, _("%s lists “%s”, which the archive does not hold"),
                              QLEAN_ARCHIVE_SUMS, shown);
        }
      if (!g_hash_table_add (listed, (gpointer) name))
        return bad_archive (error, _("%s lists “%s” twice"), QLEAN_ARCHIVE_SUMS, name);
      if (g_ascii_strncasecmp (line, digest, 64) != 0)
        {
          g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_BAD_ARCHIVE,
                       _("Checksum mismatch in the machine archive: “%s” is damaged "
                         "(SHA-256 %s, expected %.64s)"), name, digest, line);
          return FALSE;
        }
    }

  g_hash_table_iter_init (&iter, reader->digests);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    if (!g_hash_table_contains (listed, key))
      return bad_archive (error, _("“%s” has no checksum in %s"), (const char *) key,
                          QLEAN_ARCHIVE_SUMS);

  return TRUE;
}

static gboolean
read_member (Reader      *reader,
             const char  *name,
             guint64      size,
             GError     **error)
{
  g_autoptr(GChecksum) checksum = g_checksum_new (G_CHECKSUM_SHA256);
  gboolean is_sums = g_str_equal (name, QLEAN_ARCHIVE_SUMS);
  g_autofree guint8 *buffer = g_malloc (CHUNK);
  guint8 padding[BLOCK];
  guint64 left = size;
  gsize pad = (BLOCK - size % BLOCK) % BLOCK;

  if (!is_sums && reader->funcs->begin != NULL &&
      !reader->funcs->begin (name, size, reader->user_data, error))
    return FALSE;

  while (left > 0)
    {
      gsize n = MIN ((guint64) CHUNK, left);

      if (!read_exact (reader, buffer, n, NULL, name, error))
        return FALSE;
      if (is_sums)
        g_string_append_len (reader->sums, (const char *) buffer, n);
      else
        {
          g_checksum_update (checksum, buffer, n);
          if (reader->funcs->data != NULL &&
              !reader->funcs->data (buffer, n, reader->user_data, error))
            return FALSE;
        }
      left -= n;
    }

  if (pad > 0 && !read_exact (reader, padding, pad, NULL, name, error))
    return FALSE;

  reader->n_members++;
  if (is_sums)
    {
      reader->sums_seen = TRUE;
      return check_sums (reader, error);
    }

  g_hash_table_insert (reader->digests, g_strdup (name), g_strdup (g_checksum_get_string (checksum)));
  if (reader->funcs->digest != NULL)
    reader->funcs->digest (name, g_checksum_get_string (checksum), reader->user_data);
  return reader->funcs->end == NULL || reader->funcs->end (name, reader->user_data, error);
}

gboolean
qlean_archive_read (GInputStream                  *input,
                    const QleanArchiveReaderFuncs *funcs,
                    gpointer                       user_data,
                    GCancellable                  *cancellable,
                    GError                       **error)
{
  g_autoptr(GHashTable) digests = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_autoptr(GString) sums = g_string_new (NULL);
  Reader reader = { input, funcs, user_data, cancellable, digests, sums, 0, FALSE };
  guint8 header[BLOCK];

  for (;;)
    {
      g_autofree char *name = NULL;
      guint64 size = 0;
      gboolean eof;

      if (!read_exact (&reader, header, BLOCK, &eof, _("a header"), error))
        return FALSE;
      if (eof)
        return bad_archive (error, reader.n_members == 0 ? _("it is empty")
                                                         : _("it is truncated (no end marker)"));

      if (qlean_ustar_is_zero_block (header))
        {
          /* The end: a second zero block, then whatever padding the
           * writer's tar added, which we do not read. */
          if (!read_exact (&reader, header, BLOCK, &eof, _("the end marker"), error))
            return FALSE;
          if (eof || !qlean_ustar_is_zero_block (header))
            return bad_archive (error, _("it is truncated (incomplete end marker)"));
          if (!reader.sums_seen)
            return bad_archive (error, _("it has no %s"), QLEAN_ARCHIVE_SUMS);
          return TRUE;
        }

      if (!check_header (&reader, header, &name, &size, error) ||
          !read_member (&reader, name, size, error))
        return FALSE;
    }
}
