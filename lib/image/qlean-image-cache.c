/* qlean-image-cache.c: the image cache's files, sidecars and locks
 *
 * SPDX-License-Identifier: MIT
 *
 * What Qlean keeps under $XDG_CACHE_HOME/qlean/images: each verified
 * file with its sidecar (size, inode, mtime, digest, source), so that
 * using a cached image costs a stat() and not a hash; whole-file hashing
 * for `qlean image verify`; and the flock that lets threads and
 * processes share an entry. Apart from the transfer
 * (qlean-image-download.c), which writes into it under its lock.
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include <glib/gi18n-lib.h>
#include <json-glib/json-glib.h>

#include "qlean-error.h"
#include "qlean-image-download-private.h"
#include "qlean-util-private.h"
#include "qlean-errno-private.h"

#define HASH_BUFFER_SIZE (1024 * 1024)
#define SIDECAR_SUFFIX ".qlean.json"

/* Errors */

/* One whole sentence per operation, in both its forms, for translators. */
static const struct
{
  const char *no_space;
  const char *failed;
} cache_errors[] = {
  [QLEAN_CACHE_OP_MKDIR] = {
    N_("No space left to create the cache directory %s; free some space (or remove old "
       "images from the cache) and try again"),
    N_("Cannot create the cache directory %s"),
  },
  [QLEAN_CACHE_OP_CREATE] = {
    N_("No space left to create %s; free some space (or remove old images from the cache) "
       "and try again"),
    N_("Cannot create %s"),
  },
  [QLEAN_CACHE_OP_READ] = {
    N_("No space left to read %s; free some space (or remove old images from the cache) "
       "and try again"),
    N_("Cannot read %s"),
  },
  [QLEAN_CACHE_OP_RENAME] = {
    N_("No space left to rename into %s; free some space (or remove old images from the "
       "cache) and try again"),
    N_("Cannot rename into %s"),
  },
  [QLEAN_CACHE_OP_CREATE_LOCK] = {
    N_("No space left to create the lock file %s; free some space (or remove old images "
       "from the cache) and try again"),
    N_("Cannot create the lock file %s"),
  },
  [QLEAN_CACHE_OP_LOCK] = {
    N_("No space left to lock %s; free some space (or remove old images from the cache) "
       "and try again"),
    N_("Cannot lock %s"),
  },
};

void
qlean_cache_set_error (GError       **error,
                       int            saved_errno,
                       QleanCacheOp   op,
                       const char    *path)
{
  if (saved_errno == ENOSPC || saved_errno == EDQUOT)
    g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_NO_SPACE,
                 _(cache_errors[op].no_space), path);
  else
    qlean_set_error_from_errno (error, saved_errno, _(cache_errors[op].failed), path);
}

gboolean
qlean_cache_mkdir (const char  *dir,
                   GError     **error)
{
  if (g_mkdir_with_parents (dir, 0755) != 0)
    {
      qlean_cache_set_error (error, errno, QLEAN_CACHE_OP_MKDIR, dir);
      return FALSE;
    }

  return TRUE;
}

/* Sidecars */

void
qlean_cache_info_clear (QleanCacheInfo *info)
{
  g_clear_pointer (&info->hex, g_free);
  g_clear_pointer (&info->source, g_free);
  g_clear_pointer (&info->name, g_free);
}

char *
qlean_cache_sidecar_path (const char *path)
{
  return g_strconcat (path, SIDECAR_SUFFIX, NULL);
}

static gint64
mtime_ns (const struct stat *st)
{
  return (gint64) st->st_mtim.tv_sec * G_GINT64_CONSTANT (1000000000) + st->st_mtim.tv_nsec;
}

gboolean
qlean_cache_write_sidecar (const char            *path,
                           const char            *sidecar_of,
                           const QleanCacheInfo  *info,
                           GError               **error)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  g_autoptr(JsonNode) root = NULL;
  g_autofree char *sidecar = qlean_cache_sidecar_path (path);
  g_autofree char *text = NULL;
  struct stat st;

  if (g_stat (sidecar_of, &st) != 0)
    {
      qlean_cache_set_error (error, errno, QLEAN_CACHE_OP_READ, sidecar_of);
      return FALSE;
    }

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "version");
  json_builder_add_int_value (builder, 1);
  json_builder_set_member_name (builder, "name");
  json_builder_add_string_value (builder, info->name);
  json_builder_set_member_name (builder, "source");
  json_builder_add_string_value (builder, info->source);
  json_builder_set_member_name (builder, "checksum");
  json_builder_add_string_value (builder, qlean_checksum_type_to_name (info->type));
  json_builder_set_member_name (builder, "digest");
  json_builder_add_string_value (builder, info->hex);
  json_builder_set_member_name (builder, "size");
  json_builder_add_int_value (builder, st.st_size);
  json_builder_set_member_name (builder, "inode");
  json_builder_add_int_value (builder, st.st_ino);
  json_builder_set_member_name (builder, "mtime-ns");
  json_builder_add_int_value (builder, mtime_ns (&st));
  json_builder_set_member_name (builder, "source-size");
  json_builder_add_int_value (builder, info->source_size);
  json_builder_set_member_name (builder, "source-mtime");
  json_builder_add_int_value (builder, info->source_mtime);
  json_builder_end_object (builder);

  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  json_generator_set_pretty (generator, TRUE);
  text = json_generator_to_data (generator, NULL);

  if (!g_file_set_contents_full (sidecar, text, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0644, error))
    return FALSE;

  return TRUE;
}

typedef struct
{
  QleanCacheInfo info;
  guint64        inode;
  gint64         mtime;
} Sidecar;

static gboolean
read_sidecar (const char *path,
              Sidecar    *out)
{
  g_autofree char *sidecar = qlean_cache_sidecar_path (path);
  g_autoptr(JsonParser) parser = json_parser_new ();
  JsonObject *object;
  JsonNode *root;

  if (!json_parser_load_from_file (parser, sidecar, NULL))
    return FALSE;

  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    return FALSE;
  object = json_node_get_object (root);

  out->info.type = qlean_checksum_type_from_name (json_object_get_string_member_with_default (object, "checksum", NULL));
  out->info.hex = g_strdup (json_object_get_string_member_with_default (object, "digest", NULL));
  out->info.source = g_strdup (json_object_get_string_member_with_default (object, "source", NULL));
  out->info.name = g_strdup (json_object_get_string_member_with_default (object, "name", NULL));
  out->info.size = json_object_get_int_member_with_default (object, "size", -1);
  out->info.source_size = json_object_get_int_member_with_default (object, "source-size", 0);
  out->info.source_mtime = json_object_get_int_member_with_default (object, "source-mtime", 0);
  out->inode = json_object_get_int_member_with_default (object, "inode", 0);
  out->mtime = json_object_get_int_member_with_default (object, "mtime-ns", 0);

  if ((int) out->info.type == -1 || out->info.hex == NULL)
    {
      qlean_cache_info_clear (&out->info);
      return FALSE;
    }

  return TRUE;
}

gboolean
qlean_cache_read_sidecar (const char     *path,
                          QleanCacheInfo *info)
{
  Sidecar sidecar = { { 0 } };

  if (!read_sidecar (path, &sidecar))
    return FALSE;

  qlean_cache_info_clear (info);
  *info = sidecar.info;
  return TRUE;
}

gboolean
qlean_cache_lookup (const char     *path,
                    QleanCacheInfo *info)
{
  Sidecar sidecar = { { 0 } };
  struct stat st;

  if (g_stat (path, &st) != 0 || !S_ISREG (st.st_mode))
    return FALSE;

  if (!read_sidecar (path, &sidecar))
    return FALSE;

  if ((guint64) st.st_size != sidecar.info.size || (guint64) st.st_ino != sidecar.inode ||
      mtime_ns (&st) != sidecar.mtime)
    {
      qlean_cache_info_clear (&sidecar.info);
      return FALSE;
    }

  if (info != NULL)
    {
      qlean_cache_info_clear (info);
      *info = sidecar.info;
    }
  else
    qlean_cache_info_clear (&sidecar.info);

  return TRUE;
}

char *
qlean_hash_file (const char                 *path,
                 GChecksumType               type,
                 QleanDownloadProgressFunc   progress,
                 gpointer                    progress_data,
                 GCancellable               *cancellable,
                 GError                    **error)
{
  g_autoptr(GChecksum) checksum = g_checksum_new (type);
  g_autofree guchar *buffer = NULL;
  guint64 done = 0;
  struct stat st;
  int fd;

  fd = g_open (path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0 || fstat (fd, &st) != 0)
    {
      qlean_cache_set_error (error, errno, QLEAN_CACHE_OP_READ, path);
      if (fd >= 0)
        close (fd);
      return NULL;
    }

  buffer = g_malloc (HASH_BUFFER_SIZE);
  for (;;)
    {
      ssize_t n = read (fd, buffer, HASH_BUFFER_SIZE);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          qlean_cache_set_error (error, errno, QLEAN_CACHE_OP_READ, path);
          close (fd);
          return NULL;
        }
      if (n == 0)
        break;
      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        {
          close (fd);
          return NULL;
        }
      g_checksum_update (checksum, buffer, n);
      done += n;
      if (progress != NULL)
        progress (done, st.st_size, progress_data);
    }

  close (fd);
  return g_strdup (g_checksum_get_string (checksum));
}

/* Locks */

int
qlean_cache_lock (const char    *path,
                  GCancellable  *cancellable,
                  GError       **error)
{
  int fd = g_open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);

  if (fd < 0)
    {
      qlean_cache_set_error (error, errno, QLEAN_CACHE_OP_CREATE_LOCK, path);
      return -1;
    }

  /* flock() locks belong to the open file description, so this excludes
   * other threads of this process (each opens its own) as well as other
   * processes. Polling lets a waiter be cancelled. */
  while (flock (fd, LOCK_EX | LOCK_NB) != 0)
    {
      if (errno == EINTR)
        continue;
      if (errno != EWOULDBLOCK)
        {
          qlean_cache_set_error (error, errno, QLEAN_CACHE_OP_LOCK, path);
          close (fd);
          return -1;
        }
      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        {
          close (fd);
          return -1;
        }
      g_usleep (G_USEC_PER_SEC / 10);
    }

  return fd;
}

void
qlean_cache_unlock (int fd)
{
  if (fd < 0)
    return;

  flock (fd, LOCK_UN);
  close (fd);
}
