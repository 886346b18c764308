/* qlean-util.c: small helpers shared by the library
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/stat.h>
#include <glib/gstdio.h>

#include "qlean-util-private.h"
#include "qlean-resources.h"
#include "qlean-errno-private.h"

gboolean
qlean_set_str (char       **str_pointer,
               const char  *new_str)
{
  char *copy;

  if (*str_pointer == new_str || g_strcmp0 (*str_pointer, new_str) == 0)
    return FALSE;

  copy = g_strdup (new_str);
  g_free (*str_pointer);
  *str_pointer = copy;

  return TRUE;
}

/* Lines longer than this are cut in a tail: it is for messages. */
#define TAIL_MAX_BYTES (256 * 1024)

char *
qlean_file_tail (const char *path,
                 guint       n_lines)
{
  g_autofree char *contents = NULL;
  struct stat st;
  gsize want = 4096, len = 0;
  const char *start;
  guint seen = 0;
  int fd;

  fd = g_open (path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0)
    return NULL;
  if (fstat (fd, &st) < 0)
    {
      close (fd);
      return NULL;
    }

  /* From the end, reading more until the file holds n_lines more lines
   * than that or it is read whole: a console log may be megabytes. */
  for (;;)
    {
      gsize newlines = 0;

      want = MIN (want, (gsize) st.st_size);
      g_free (contents);
      contents = g_malloc (want + 1);
      len = 0;
      while (len < want)
        {
          ssize_t n = pread (fd, contents + len, want - len, st.st_size - want + len);

          if (n < 0 && errno == EINTR)
            continue;
          if (n <= 0)
            break;
          len += n;
        }
      for (gsize i = 0; i < len; i++)
        newlines += contents[i] == '\n';
      if (len < want || want == (gsize) st.st_size || want >= TAIL_MAX_BYTES ||
          newlines > n_lines)
        break;
      want *= 4;
    }
  close (fd);

  while (len > 0 && (contents[len - 1] == '\n' || contents[len - 1] == '\r'))
    len--;
  contents[len] = '\0';

  start = contents + len;
  while (start > contents)
    {
      if (start[-1] == '\n' && ++seen == n_lines)
        break;
      start--;
    }

  return g_utf8_make_valid (start, -1);
}

GPid
qlean_subprocess_get_pid (GSubprocess *process)
{
  /* NULL once GLib's child watch has reaped the child, which may happen
   * before the spawner gets here when the child exits at once. */
  const char *identifier = g_subprocess_get_identifier (process);

  return identifier != NULL ? (GPid) g_ascii_strtoll (identifier, NULL, 10) : 0;
}

char *
qlean_bytes_to_message (GBytes *bytes)
{
  gsize len;
  const char *data;
  g_autofree char *valid = NULL;

  if (bytes == NULL)
    return g_strdup ("");

  data = g_bytes_get_data (bytes, &len);
  if (data == NULL)
    return g_strdup ("");
  valid = g_utf8_make_valid (data, len);

  return g_strdup (g_strstrip (valid));
}

static gboolean
qlean_rm_rf_at (int          parent_fd,
                const char  *name,
                GError     **error)
{
  int fd;
  DIR *dir;
  struct dirent *entry;
  gboolean ok = TRUE;

  if (unlinkat (parent_fd, name, 0) == 0 || errno == ENOENT)
    return TRUE;

  if (errno != EISDIR && errno != EPERM)
    {
      int saved_errno = errno;

      qlean_set_error_from_errno (error, saved_errno,
                                  "Could not remove %s", name);
      return FALSE;
    }

  fd = openat (parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    {
      int saved_errno = errno;

      qlean_set_error_from_errno (error, saved_errno,
                                  "Could not open %s", name);
      return FALSE;
    }

  dir = fdopendir (fd);
  if (dir == NULL)
    {
      close (fd);
      return FALSE;
    }

  while (ok && (entry = readdir (dir)) != NULL)
    {
      if (strcmp (entry->d_name, ".") == 0 || strcmp (entry->d_name, "..") == 0)
        continue;
      ok = qlean_rm_rf_at (dirfd (dir), entry->d_name, error);
    }
  closedir (dir);

  if (ok && unlinkat (parent_fd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
    {
      int saved_errno = errno;

      qlean_set_error_from_errno (error, saved_errno,
                                  "Could not remove %s", name);
      return FALSE;
    }

  return ok;
}

gboolean
qlean_rm_rf (const char  *path,
             GError     **error)
{
  /* A process that dies as we clean up (QEMU, killed a moment ago) may
   * still drop a file in: when the directory will not go, look again. */
  for (int attempt = 0; attempt < 5; attempt++)
    {
      g_autoptr(GError) local_error = NULL;

      if (qlean_rm_rf_at (AT_FDCWD, path, &local_error))
        return TRUE;
      if (!g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_NOT_EMPTY) || attempt == 4)
        {
          g_propagate_error (error, g_steal_pointer (&local_error));
          return FALSE;
        }
      g_usleep (20 * 1000);
    }

  return FALSE;
}

GResource *
qlean_resources (void)
{
  static gsize resource;

  if (g_once_init_enter (&resource))
    g_once_init_leave (&resource, (gsize) qlean_get_resource ());
  return (GResource *) resource;
}

struct _QleanLink
{
  gatomicrefcount ref_count;
  GWeakRef        object;
};

QleanLink *
qlean_link_new (gpointer object)
{
  QleanLink *link = g_new0 (QleanLink, 1);

  g_atomic_ref_count_init (&link->ref_count);
  g_weak_ref_init (&link->object, object);

  return link;
}

QleanLink *
qlean_link_ref (QleanLink *link)
{
  g_atomic_ref_count_inc (&link->ref_count);
  return link;
}

void
qlean_link_unref (gpointer data)
{
  QleanLink *link = data;

  if (g_atomic_ref_count_dec (&link->ref_count))
    {
      g_weak_ref_clear (&link->object);
      g_free (link);
    }
}

gpointer
qlean_link_get (QleanLink *link)
{
  return g_weak_ref_get (&link->object);
}

void
qlean_link_set (QleanLink *link,
                gpointer   object)
{
  g_weak_ref_set (&link->object, object);
}

gboolean
qlean_write_all (int         fd,
                 const void *data,
                 gsize       len)
{
  const char *at = data;

  while (len > 0)
    {
      ssize_t n = write (fd, at, len);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return FALSE;
      at += n;
      len -= n;
    }

  return TRUE;
}
