/* qlean-tree-tar.c: directory trees as tar streams, for agent transfers
 *
 * SPDX-License-Identifier: MIT
 *
 * Over the stock guest agent alone, each guest call costs a guest-exec
 * or a guest-file-* round trip (about 50 ms under TCG), so a tree moved
 * file by file costs that per file. A tree instead moves as one tar
 * stream, packed or unpacked by the guest's own tar
 * (lib/files/qlean-agent-tar.c). This file holds the host's two ends:
 * a writer of what GNU tar and busybox's tar unpack, and a reader for
 * what a guest's tar packs, written, like the machine archive's reader
 * (qlean-archive.c, whose header helpers it shares), for a sender that
 * may be hostile. It is apart from that reader because it must take what
 * that one refuses (directories, links, long names) and make it safe.
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <glib/gi18n-lib.h>
#include <glib/gstdio.h>

#include "qlean-errno-private.h"
#include "qlean-tree-tar-private.h"
#include "qlean-ustar-private.h"
#include "qlean-util-private.h"

#define CHUNK (256 * 1024)
#define MAX_MEMBER ((guint64) 1 << 40)   /* 1 TiB */

/* Writing */

typedef struct
{
  GOutputStream *output;
  GCancellable  *cancellable;
  guint8        *buffer;
} Writer;

static gboolean
write_padding (Writer   *w,
               guint64   size,
               GError  **error)
{
  static const guint8 zeros[BLOCK];
  gsize pad = (BLOCK - size % BLOCK) % BLOCK;

  return pad == 0 || g_output_stream_write_all (w->output, zeros, pad, NULL, w->cancellable, error);
}

/* A header in GNU tar's own form ("ustar  " magic): both tars read its
 * long names, and no prefix field can join a directory to a name. */
static void
fill_header (guint8     *header,
             const char *name,
             char        type,
             guint32     mode,
             guint64     size,
             gint64      mtime,
             const char *linkname)
{
  memset (header, 0, BLOCK);
  memcpy (header + H_NAME, name, MIN (strlen (name), H_NAME_LEN - 1));
  qlean_ustar_put_octal (header + H_MODE, 8, mode & 07777);
  qlean_ustar_put_octal (header + H_UID, 8, 0);
  qlean_ustar_put_octal (header + H_GID, 8, 0);
  qlean_ustar_put_size (header + H_SIZE, size);
  qlean_ustar_put_octal (header + H_MTIME, 12, (guint64) CLAMP (mtime, 0, G_GINT64_CONSTANT (077777777777)));
  header[H_TYPEFLAG] = type;
  if (linkname != NULL)
    memcpy (header + H_LINKNAME, linkname, MIN (strlen (linkname), H_NAME_LEN - 1));
  memcpy (header + H_MAGIC, "ustar  ", 8);
  qlean_ustar_put_octal (header + H_CHKSUM, 7, qlean_ustar_checksum (header, FALSE));
  header[H_CHKSUM + 7] = ' ';
}

/* A GNU long name ('L') or long link ('K'): a member whose data is
 * @text, for the header that follows. */
static gboolean
write_long (Writer      *w,
            char         type,
            const char  *text,
            GError     **error)
{
  guint8 header[BLOCK];
  gsize len = strlen (text) + 1;

  fill_header (header, "././@LongLink", type, 0, len, 0, NULL);
  return g_output_stream_write_all (w->output, header, BLOCK, NULL, w->cancellable, error) &&
         g_output_stream_write_all (w->output, text, len, NULL, w->cancellable, error) &&
         write_padding (w, len, error);
}

static gboolean
write_header (Writer      *w,
              const char  *name,
              char         type,
              guint32      mode,
              guint64      size,
              gint64       mtime,
              const char  *linkname,
              GError     **error)
{
  guint8 header[BLOCK];

  if (strlen (name) >= H_NAME_LEN && !write_long (w, 'L', name, error))
    return FALSE;
  if (linkname != NULL && strlen (linkname) >= H_NAME_LEN && !write_long (w, 'K', linkname, error))
    return FALSE;

  fill_header (header, name, type, mode, size, mtime, linkname);
  return g_output_stream_write_all (w->output, header, BLOCK, NULL, w->cancellable, error);
}

static guint32
info_mode (GFileInfo *info)
{
  return g_file_info_get_attribute_uint32 (info, G_FILE_ATTRIBUTE_UNIX_MODE) & 07777;
}

static gint64
info_mtime (GFileInfo *info)
{
  return (gint64) g_file_info_get_attribute_uint64 (info, G_FILE_ATTRIBUTE_TIME_MODIFIED);
}

static gboolean
write_file (Writer      *w,
            GFile       *file,
            const char  *name,
            GFileInfo   *info,
            GError     **error)
{
  g_autoptr(GFileInputStream) input = g_file_read (file, w->cancellable, error);
  g_autoptr(GFileInfo) now = NULL;
  guint64 size;
  guint64 copied = 0;

  if (input == NULL)
    return FALSE;
  /* The size of the file opened, not of the one listed. */
  now = g_file_input_stream_query_info (input, G_FILE_ATTRIBUTE_STANDARD_SIZE, w->cancellable, error);
  if (now == NULL)
    return FALSE;
  size = g_file_info_get_size (now);

  if (!write_header (w, name, '0', info_mode (info), size, info_mtime (info), NULL, error))
    return FALSE;

  /* A file that grows meanwhile is cut at the size in its header. */
  while (copied < size)
    {
      gssize n = g_input_stream_read (G_INPUT_STREAM (input), w->buffer,
                                      MIN ((guint64) CHUNK, size - copied), w->cancellable, error);

      if (n < 0)
        return FALSE;
      if (n == 0)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                       _("%s shrank while it was being archived"), g_file_peek_path (file));
          return FALSE;
        }
      if (!g_output_stream_write_all (w->output, w->buffer, n, NULL, w->cancellable, error))
        return FALSE;
      copied += n;
    }

  return write_padding (w, size, error);
}

#define QUERY_ATTRIBUTES \
  G_FILE_ATTRIBUTE_STANDARD_NAME "," G_FILE_ATTRIBUTE_STANDARD_TYPE "," \
  G_FILE_ATTRIBUTE_STANDARD_SYMLINK_TARGET "," G_FILE_ATTRIBUTE_UNIX_MODE "," \
  G_FILE_ATTRIBUTE_TIME_MODIFIED

/* @dir as @name (ending with "/"): its entries, then itself. */
static gboolean
write_tree (Writer      *w,
            GFile       *dir,
            GFileInfo   *dir_info,
            const char  *name,
            GError     **error)
{
  g_autoptr(GFileEnumerator) children = NULL;

  children = g_file_enumerate_children (dir, QUERY_ATTRIBUTES, G_FILE_QUERY_INFO_NOFOLLOW_SYMLINKS,
                                        w->cancellable, error);
  if (children == NULL)
    return FALSE;

  for (;;)
    {
      GFileInfo *info;
      GFile *child;
      g_autofree char *child_name = NULL;
      gboolean ok = TRUE;

      if (!g_file_enumerator_iterate (children, &info, &child, w->cancellable, error))
        return FALSE;
      if (info == NULL)
        break;

      child_name = g_strconcat (name, g_file_info_get_name (info), NULL);
      switch (g_file_info_get_file_type (info))
        {
        case G_FILE_TYPE_DIRECTORY:
          {
            g_autofree char *sub = g_strconcat (child_name, "/", NULL);

            ok = write_tree (w, child, info, sub, error);
            break;
          }
        case G_FILE_TYPE_REGULAR:
          ok = write_file (w, child, child_name, info, error);
          break;
        case G_FILE_TYPE_SYMBOLIC_LINK:
          ok = write_header (w, child_name, '2', 0777, 0, info_mtime (info),
                             g_file_info_get_symlink_target (info), error);
          break;
        default:
          /* Sockets, FIFOs and devices have no contents to send. */
          g_debug ("upload: skipping special file %s", g_file_peek_path (child));
          break;
        }
      if (!ok)
        return FALSE;
    }

  return write_header (w, name, '5', info_mode (dir_info), 0, info_mtime (dir_info), NULL, error);
}

gboolean
qlean_tree_tar_write (GFile          *root,
                      GOutputStream  *output,
                      GCancellable   *cancellable,
                      GError        **error)
{
  static const guint8 zeros[2 * BLOCK];
  g_autofree guint8 *buffer = g_malloc (CHUNK);
  g_autoptr(GFileInfo) info = NULL;
  Writer w = { output, cancellable, buffer };

  info = g_file_query_info (root, QUERY_ATTRIBUTES, G_FILE_QUERY_INFO_NONE, cancellable, error);
  if (info == NULL)
    return FALSE;

  return write_tree (&w, root, info, "./", error) &&
         g_output_stream_write_all (output, zeros, sizeof zeros, NULL, cancellable, error) &&
         g_output_stream_flush (output, cancellable, error);
}

/* Reading */

/* A directory met in the stream: its mode and time are set at the end,
 * once nothing more is written into it. */
typedef struct
{
  char    *path;     /* below the destination; "" for itself */
  guint32  mode;
  gint64   mtime;
} DirStamp;

static void
dir_stamp_free (gpointer data)
{
  DirStamp *stamp = data;

  g_free (stamp->path);
  g_free (stamp);
}

typedef struct
{
  GInputStream *input;
  GCancellable *cancellable;
  const char   *dest;
  int           root_fd;
  guint32       mode_mask;
  guint8       *buffer;
  GPtrArray    *dirs;        /* DirStamp, in the stream's order */
  GHashTable   *files;       /* paths of the regular files made, for hard links */
  char         *long_name;   /* from a GNU 'L' or a pax "path" */
  char         *long_link;   /* from a GNU 'K' or a pax "linkpath" */
  guint         n_members;
} Extractor;

static gboolean
refuse (GError     **error,
        const char  *format,
        ...) G_GNUC_PRINTF (2, 3);

static gboolean
refuse (GError     **error,
        const char  *format,
        ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);

  g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
               _("The tar stream from the guest is refused: %s"), message);
  return FALSE;
}

static gboolean
read_exact (Extractor  *x,
            guint8     *buffer,
            gsize       len,
            GError    **error)
{
  gsize n = 0;

  if (!g_input_stream_read_all (x->input, buffer, len, &n, x->cancellable, error))
    return FALSE;
  if (n < len)
    return refuse (error, _("it is truncated"));
  return TRUE;
}

/* Reads past @len bytes. */
static gboolean
skip_bytes (Extractor  *x,
            guint64     len,
            GError    **error)
{
  while (len > 0)
    {
      gsize n = MIN ((guint64) CHUNK, len);

      if (!read_exact (x, x->buffer, n, error))
        return FALSE;
      len -= n;
    }

  return TRUE;
}

/* Reads past the padding after @size bytes of data. */
static gboolean
skip_padding (Extractor  *x,
              guint64     size,
              GError    **error)
{
  return skip_bytes (x, (BLOCK - size % BLOCK) % BLOCK, error);
}

/* Reads past @size bytes of data and their padding. */
static gboolean
skip_data (Extractor  *x,
           guint64     size,
           GError    **error)
{
  return skip_bytes (x, size, error) && skip_padding (x, size, error);
}

/* A member's data of at most QLEAN_TREE_TAR_MAX_NAME bytes, as a string
 * cut at its first NUL. */
static char *
read_text (Extractor  *x,
           guint64     size,
           GError    **error)
{
  g_autofree char *text = NULL;

  if (size > QLEAN_TREE_TAR_MAX_NAME)
    {
      refuse (error, _("a long name or extended header of %" G_GUINT64_FORMAT " bytes is too large"), size);
      return NULL;
    }
  text = g_malloc0 (size + 1);
  if (!read_exact (x, (guint8 *) text, size, error) || !skip_padding (x, size, error))
    return NULL;
  return g_steal_pointer (&text);
}

/* A pax extended header: "LEN key=value\n" records; only the names are
 * taken, and a size of its own (which would change where the data
 * ends) is refused. */
static gboolean
take_pax (Extractor   *x,
          const char  *text,
          gsize        len,
          GError     **error)
{
  gsize at = 0;

  while (at < len && text[at] != '\0')
    {
      char *end;
      guint64 rec = g_ascii_strtoull (text + at, &end, 10);
      const char *key = end + 1;
      const char *eq;

      if (end == text + at || *end != ' ' || rec == 0 || rec > len - at || text[at + rec - 1] != '\n')
        return refuse (error, _("an extended header is malformed"));
      eq = memchr (key, '=', text + at + rec - 1 - key);
      if (eq == NULL)
        return refuse (error, _("an extended header is malformed"));
      if (eq - key == 4 && memcmp (key, "path", 4) == 0)
        {
          g_free (x->long_name);
          x->long_name = g_strndup (eq + 1, text + at + rec - 1 - (eq + 1));
        }
      else if (eq - key == 8 && memcmp (key, "linkpath", 8) == 0)
        {
          g_free (x->long_link);
          x->long_link = g_strndup (eq + 1, text + at + rec - 1 - (eq + 1));
        }
      else if (eq - key == 4 && memcmp (key, "size", 4) == 0)
        return refuse (error, _("an extended header sets a size"));
      at += rec;
    }

  return TRUE;
}

/* @name's parts below the destination, "" and "." left out; NULL, with
 * @error set, for a name that is absolute or has "..". An empty vector
 * is the destination itself. */
static char **
split_name (const char  *name,
            GError     **error)
{
  g_auto(GStrv) parts = NULL;
  g_autoptr(GPtrArray) kept = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *shown = g_strescape (name, NULL);

  if (*name == '\0')
    {
      refuse (error, _("a member has no name"));
      return NULL;
    }
  if (*name == '/')
    {
      refuse (error, _("member “%s” has an absolute path"), shown);
      return NULL;
    }

  parts = g_strsplit (name, "/", -1);
  for (guint i = 0; parts[i] != NULL; i++)
    {
      if (*parts[i] == '\0' || g_str_equal (parts[i], "."))
        continue;
      if (g_str_equal (parts[i], ".."))
        {
          refuse (error, _("member “%s” points outside the destination (“..”)"), shown);
          return NULL;
        }
      g_ptr_array_add (kept, g_strdup (parts[i]));
    }
  g_ptr_array_add (kept, NULL);

  return (char **) g_ptr_array_free (g_steal_pointer (&kept), FALSE);
}

/* The local path of the first @n of @parts (all of them for -1), for
 * messages. */
static char *
local_path (Extractor  *x,
            char      **parts,
            int         n)
{
  g_autoptr(GString) path = g_string_new (x->dest);

  for (int i = 0; parts[i] != NULL && (n < 0 || i < n); i++)
    {
      g_string_append_c (path, '/');
      g_string_append (path, parts[i]);
    }

  return g_string_free (g_steal_pointer (&path), FALSE);
}

/* An fd on the directory made of the first @n of @parts, opened part by
 * part from the destination without following any link; missing parts
 * are made (0700) when @create. -1 with @error set otherwise. */
static int
open_dir (Extractor  *x,
          char      **parts,
          guint       n,
          gboolean    create,
          GError    **error)
{
  int fd = dup (x->root_fd);

  if (fd < 0)
    {
      qlean_set_error_from_errno (error, errno, _("Cannot open %s"), x->dest);
      return -1;
    }

  for (guint i = 0; i < n; i++)
    {
      int next = openat (fd, parts[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

      if (next < 0 && errno == ENOENT && create)
        {
          if (mkdirat (fd, parts[i], 0700) != 0 && errno != EEXIST)
            {
              int saved_errno = errno;
              g_autofree char *path = local_path (x, parts, i + 1);

              qlean_set_error_from_errno (error, saved_errno, _("Cannot create %s"), path);
              close (fd);
              return -1;
            }
          next = openat (fd, parts[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
      if (next < 0)
        {
          g_autofree char *path = local_path (x, parts, i + 1);

          close (fd);
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                       _("%s is a symbolic link or not a directory; a download does not write "
                         "through links"), path);
          return -1;
        }
      close (fd);
      fd = next;
    }

  return fd;
}

/* The leaf's own type, not followed; 0 when there is none. */
static mode_t
leaf_type (int         dir_fd,
           const char *leaf)
{
  struct stat st;

  if (fstatat (dir_fd, leaf, &st, AT_SYMLINK_NOFOLLOW) != 0)
    return 0;
  return st.st_mode & S_IFMT;
}

/* A regular file: into a new file beside it, renamed over it once
 * complete, as downloads of single files do. */
static gboolean
extract_file (Extractor   *x,
              int          dir_fd,
              const char  *leaf,
              const char  *path,
              guint32      mode,
              gint64       mtime,
              guint64      size,
              GError     **error)
{
  char tmp[32];
  guint64 left = size;
  int fd = -1;
  gboolean ok = TRUE;
  int saved_errno = 0;

  if (leaf_type (dir_fd, leaf) == S_IFLNK)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                   _("%s is a symbolic link; a download does not write through links"), path);
      return FALSE;
    }

  for (guint tries = 0; fd < 0 && tries < 16; tries++)
    {
      g_snprintf (tmp, sizeof tmp, ".qlean-%08x", g_random_int ());
      fd = openat (dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (fd < 0 && errno != EEXIST)
        break;
    }
  if (fd < 0)
    {
      qlean_set_error_from_errno (error, errno, _("Cannot create a file beside %s"), path);
      return FALSE;
    }

  while (ok && left > 0)
    {
      gsize n = MIN ((guint64) CHUNK, left);

      ok = read_exact (x, x->buffer, n, error);
      if (ok && !qlean_write_all (fd, x->buffer, n))
        {
          saved_errno = errno;
          qlean_set_error_from_errno (error, saved_errno, _("Cannot write %s"), path);
          ok = FALSE;
        }
      left -= n;
    }
  ok = ok && skip_padding (x, size, error);

  if (ok)
    {
      struct timespec times[2] = { { 0, UTIME_OMIT }, { mtime, 0 } };

      if (fchmod (fd, mode & x->mode_mask) != 0 ||
          (mtime >= 0 && futimens (fd, times) != 0) || close (fd) != 0)
        {
          saved_errno = errno;
          qlean_set_error_from_errno (error, saved_errno, _("Cannot write %s"), path);
          ok = FALSE;
        }
      fd = -1;
    }

  if (ok && renameat (dir_fd, tmp, dir_fd, leaf) != 0)
    {
      saved_errno = errno;
      qlean_set_error_from_errno (error, saved_errno, _("Cannot create %s"), path);
      ok = FALSE;
    }

  if (fd >= 0)
    close (fd);
  if (!ok)
    unlinkat (dir_fd, tmp, 0);
  return ok;
}

/* A directory: made (0700 until the end), or one already there, which
 * must be a directory of its own and not a link to one. */
static gboolean
extract_dir (Extractor   *x,
             int          dir_fd,
             const char  *leaf,
             char       **parts,
             guint32      mode,
             gint64       mtime,
             GError     **error)
{
  g_autofree char *path = local_path (x, parts, -1);
  DirStamp *stamp;

  if (leaf != NULL && mkdirat (dir_fd, leaf, 0700) != 0)
    {
      int saved_errno = errno;

      if (saved_errno != EEXIST)
        {
          qlean_set_error_from_errno (error, saved_errno, _("Cannot create %s"), path);
          return FALSE;
        }
      if (leaf_type (dir_fd, leaf) != S_IFDIR)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                       _("%s is a symbolic link or not a directory; a download does not write "
                         "through links"), path);
          return FALSE;
        }
    }

  if (x->dirs->len >= QLEAN_TREE_TAR_MAX_DIRS)
    return refuse (error, _("it has more than %u directories"), QLEAN_TREE_TAR_MAX_DIRS);

  stamp = g_new0 (DirStamp, 1);
  stamp->path = g_strjoinv ("/", parts);
  stamp->mode = mode;
  stamp->mtime = mtime;
  g_ptr_array_add (x->dirs, stamp);
  return TRUE;
}

/* A symbolic link: made as a link, whatever it points to, and never
 * followed; it replaces a file or link of its name, not a directory. */
static gboolean
extract_symlink (int          dir_fd,
                 const char  *leaf,
                 const char  *path,
                 const char  *target,
                 GError     **error)
{
  mode_t type = leaf_type (dir_fd, leaf);

  if (*target == '\0')
    return refuse (error, _("the link %s has no target"), path);

  if (type != 0 && type != S_IFDIR)
    unlinkat (dir_fd, leaf, 0);
  if (symlinkat (target, dir_fd, leaf) != 0)
    {
      int saved_errno = errno;

      qlean_set_error_from_errno (error, saved_errno, _("Cannot create the link %s"), path);
      return FALSE;
    }

  return TRUE;
}

/* A hard link: only to a regular file this stream made, linked without
 * following links (linkat without AT_SYMLINK_FOLLOW). */
static gboolean
extract_hardlink (Extractor   *x,
                  int          dir_fd,
                  const char  *leaf,
                  const char  *path,
                  const char  *target,
                  GError     **error)
{
  g_auto(GStrv) target_parts = split_name (target, error);
  g_autofree char *key = NULL;
  guint n;
  int target_fd;
  mode_t type;
  gboolean ok;

  if (target_parts == NULL)
    return FALSE;
  key = g_strjoinv ("/", target_parts);
  n = g_strv_length (target_parts);
  if (n == 0 || !g_hash_table_contains (x->files, key))
    {
      g_autofree char *shown = g_strescape (target, NULL);

      return refuse (error, _("the hard link %s names “%s”, which is no file of the stream"), path,
                     shown);
    }

  type = leaf_type (dir_fd, leaf);
  if (type == S_IFLNK)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                   _("%s is a symbolic link; a download does not write through links"), path);
      return FALSE;
    }
  if (type != 0 && type != S_IFDIR)
    unlinkat (dir_fd, leaf, 0);

  target_fd = open_dir (x, target_parts, n - 1, FALSE, error);
  if (target_fd < 0)
    return FALSE;
  ok = linkat (target_fd, target_parts[n - 1], dir_fd, leaf, 0) == 0;
  if (!ok)
    {
      int saved_errno = errno;

      qlean_set_error_from_errno (error, saved_errno, _("Cannot create %s"), path);
    }
  close (target_fd);
  return ok;
}

/* What one header says, once checked. */
typedef struct
{
  char    *name;
  char    *link;
  char     type;
  guint32  mode;
  gint64   mtime;
  guint64  size;
} Member;

static void
member_clear (Member *m)
{
  g_clear_pointer (&m->name, g_free);
  g_clear_pointer (&m->link, g_free);
}

static gboolean
parse_header (Extractor     *x,
              const guint8  *header,
              Member        *m,
              GError       **error)
{
  guint64 stored, mode, mtime;
  gboolean meta;
  gsize len;

  if (memcmp (header + H_MAGIC, "ustar", 5) != 0)
    return refuse (error, _("member %u has no ustar header"), x->n_members + 1);
  if (!qlean_ustar_parse_octal (header + H_CHKSUM, 8, G_MAXUINT, &stored) ||
      (stored != qlean_ustar_checksum (header, FALSE) && stored != qlean_ustar_checksum (header, TRUE)))
    return refuse (error, _("the header of member %u is damaged (checksum)"), x->n_members + 1);
  if (!qlean_ustar_parse_size (header + H_SIZE, MAX_MEMBER, &m->size))
    return refuse (error, _("member %u has an invalid or oversized size"), x->n_members + 1);

  m->type = header[H_TYPEFLAG];
  m->mode = qlean_ustar_parse_octal (header + H_MODE, 8, 07777777, &mode) ? mode & 07777 : 0644;
  /* A time tar wrote in base-256 (before 1970, or far ahead) is left
   * unset rather than guessed. */
  m->mtime = qlean_ustar_parse_octal (header + H_MTIME, 12, G_MAXINT64, &mtime) ? (gint64) mtime : -1;

  /* A long name or link is for the next real member: GNU tar writes a
   * link's ('K') before its name's ('L'), Qlean's writer the other way. */
  meta = m->type == 'L' || m->type == 'K' || m->type == 'x' || m->type == 'g';
  if (x->long_name != NULL && !meta)
    m->name = g_steal_pointer (&x->long_name);
  else
    {
      len = strnlen ((const char *) header + H_NAME, H_NAME_LEN);
      m->name = g_strndup ((const char *) header + H_NAME, len);
      /* POSIX ustar (not GNU's "ustar  ") may put the directory in the prefix. */
      if (memcmp (header + H_MAGIC, "ustar\0", 6) == 0 && header[H_PREFIX] != '\0')
        {
          g_autofree char *prefix = g_strndup ((const char *) header + H_PREFIX, H_PREFIX_LEN);
          g_autofree char *name = m->name;

          m->name = g_strconcat (prefix, "/", name, NULL);
        }
    }

  if (x->long_link != NULL && !meta)
    m->link = g_steal_pointer (&x->long_link);
  else
    m->link = g_strndup ((const char *) header + H_LINKNAME,
                         strnlen ((const char *) header + H_LINKNAME, H_NAME_LEN));
  return TRUE;
}

/* Makes @m in the destination; its data follows in the stream. */
static gboolean
extract_member (Extractor  *x,
                Member     *m,
                GError    **error)
{
  g_auto(GStrv) parts = split_name (m->name, error);
  g_autofree char *path = NULL;
  const char *leaf;
  guint n;
  int dir_fd;
  gboolean ok;

  if (parts == NULL)
    return FALSE;
  n = g_strv_length (parts);
  path = local_path (x, parts, -1);

  /* The destination itself may only be a directory. */
  if (n == 0)
    {
      if (m->type != '5')
        return refuse (error, _("a member that is not a directory names the destination"));
      return extract_dir (x, x->root_fd, NULL, parts, m->mode, m->mtime, error) &&
             skip_data (x, m->size, error);
    }

  dir_fd = open_dir (x, parts, n - 1, TRUE, error);
  if (dir_fd < 0)
    return FALSE;
  leaf = parts[n - 1];

  switch (m->type)
    {
    case '0':
    case '\0':
    case '7':
      ok = extract_file (x, dir_fd, leaf, path, m->mode, m->mtime, m->size, error);
      if (ok)
        g_hash_table_add (x->files, g_strjoinv ("/", parts));
      break;
    case '5':
      ok = extract_dir (x, dir_fd, leaf, parts, m->mode, m->mtime, error) && skip_data (x, m->size, error);
      break;
    case '2':
      ok = extract_symlink (dir_fd, leaf, path, m->link, error) && skip_data (x, m->size, error);
      break;
    case '1':
      ok = extract_hardlink (x, dir_fd, leaf, path, m->link, error) && skip_data (x, m->size, error);
      break;
    case '3':
    case '4':
    case '6':
      /* Never a device node or a FIFO on the host. */
      g_debug ("download: skipping special file %s", path);
      ok = skip_data (x, m->size, error);
      break;
    default:
      {
        g_autofree char *shown = g_strescape (m->name, NULL);

        ok = refuse (error, _("member “%s” is of a type a download does not take (“%c”)"), shown,
                     g_ascii_isprint (m->type) ? m->type : '?');
        break;
      }
    }

  close (dir_fd);
  return ok;
}

/* The modes and times of the directories, deepest first (the stream
 * lists a directory before its contents). */
static gboolean
stamp_dirs (Extractor  *x,
            GError    **error)
{
  for (guint i = x->dirs->len; i-- > 0;)
    {
      DirStamp *stamp = g_ptr_array_index (x->dirs, i);
      g_auto(GStrv) parts = *stamp->path ? g_strsplit (stamp->path, "/", -1) : g_new0 (char *, 1);
      struct timespec times[2] = { { 0, UTIME_OMIT }, { stamp->mtime, 0 } };
      int fd = open_dir (x, parts, g_strv_length (parts), FALSE, error);
      gboolean ok;

      if (fd < 0)
        return FALSE;
      ok = fchmod (fd, stamp->mode & x->mode_mask) == 0 &&
           (stamp->mtime < 0 || futimens (fd, times) == 0);
      if (!ok)
        {
          int saved_errno = errno;
          g_autofree char *path = local_path (x, parts, -1);

          qlean_set_error_from_errno (error, saved_errno, _("Cannot set the mode or time of %s"), path);
        }
      close (fd);
      if (!ok)
        return FALSE;
    }

  return TRUE;
}

/* One header block: a member made, a long name or pax header kept for
 * the next, or (*@end) the end of the stream. */
static gboolean
extract_next (Extractor  *x,
              gboolean   *end,
              GError    **error)
{
  guint8 header[BLOCK];
  gsize n = 0;
  Member m = { 0 };
  gboolean ok;

  if (!g_input_stream_read_all (x->input, header, BLOCK, &n, x->cancellable, error))
    return FALSE;
  if (n < BLOCK)
    return refuse (error, _("it is truncated (no end marker)"));
  /* A zero block ends it; what tar pads after it is not read. */
  if (qlean_ustar_is_zero_block (header))
    {
      *end = TRUE;
      return TRUE;
    }

  if (!parse_header (x, header, &m, error))
    {
      member_clear (&m);
      return FALSE;
    }
  x->n_members++;

  switch (m.type)
    {
    case 'L':
      g_free (x->long_name);
      ok = (x->long_name = read_text (x, m.size, error)) != NULL;
      break;
    case 'K':
      g_free (x->long_link);
      ok = (x->long_link = read_text (x, m.size, error)) != NULL;
      break;
    case 'x':
      {
        g_autofree char *text = read_text (x, m.size, error);

        ok = text != NULL && take_pax (x, text, m.size, error);
        break;
      }
    case 'g':
      ok = skip_data (x, m.size, error);
      break;
    default:
      ok = extract_member (x, &m, error);
      break;
    }

  member_clear (&m);
  return ok;
}

/* The destination: made when missing, and never a link. */
static int
open_dest (const char  *dest,
           GError     **error)
{
  int fd;

  if (g_mkdir (dest, 0700) != 0 && errno != EEXIST)
    {
      int saved_errno = errno;

      qlean_set_error_from_errno (error, saved_errno, _("Cannot create %s"), dest);
      return -1;
    }

  fd = open (dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                 _("%s is a symbolic link or not a directory; a download does not write "
                   "through links"), dest);
  return fd;
}

gboolean
qlean_tree_tar_extract (GInputStream   *input,
                        const char     *dest,
                        guint32         mode_mask,
                        GCancellable   *cancellable,
                        GError        **error)
{
  g_autoptr(GPtrArray) dirs = g_ptr_array_new_with_free_func (dir_stamp_free);
  g_autoptr(GHashTable) files = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autofree guint8 *buffer = g_malloc (CHUNK);
  Extractor x = { input, cancellable, dest, -1, mode_mask, buffer, dirs, files, NULL, NULL, 0 };
  gboolean end = FALSE;
  gboolean ok = TRUE;

  x.root_fd = open_dest (dest, error);
  if (x.root_fd < 0)
    return FALSE;

  while (ok && !end)
    ok = !g_cancellable_set_error_if_cancelled (cancellable, error) && extract_next (&x, &end, error);
  if (ok && (x.long_name != NULL || x.long_link != NULL))
    ok = refuse (error, _("it ends with a long name for no member"));
  ok = ok && stamp_dirs (&x, error);

  g_free (x.long_name);
  g_free (x.long_link);
  close (x.root_fd);
  return ok;
}
