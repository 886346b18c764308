/* qlean-guest-files.c: PUT and GET
 *
 * SPDX-License-Identifier: MIT
 *
 * The two transfer streams. PUT writes DATA fd 0 to a temporary file
 * beside the target and renames it at EOF; GET answers DONE, then sends
 * the file as DATA fd 1, from the file itself (sendfile() in
 * qlean-guest-port.c) up to its size at open and by read() beyond it.
 */

#include "qlean-guest-private.h"

/* ------------------------------------------------------------------------ */
/* Files                                                                     */

/* mkdir -p: the last component gets `mode`, missing parents
 * DEFAULT_DIR_MODE. An existing directory (or link to one) is fine
 * unless `exclusive`; anything else existing there is EEXIST. Returns 0
 * or an errno. */
int mkdir_p (const char *path, mode_t mode, bool exclusive)
{
  struct stat st;
  char *parent;
  size_t n;
  int err;

  if (mkdir (path, mode) == 0)
    return 0;
  err = errno;
  if (err == EEXIST)
    {
      if (!exclusive && stat (path, &st) == 0 && S_ISDIR (st.st_mode))
        return 0;
      return EEXIST;
    }
  if (err != ENOENT)
    return err;
  /* The parent: strip trailing slashes, then the last component. */
  n = strlen (path);
  while (n > 1 && path[n - 1] == '/')
    n--;
  while (n > 0 && path[n - 1] != '/')
    n--;
  while (n > 1 && path[n - 1] == '/')
    n--;
  if (n == 0)
    return ENOENT;
  parent = xmalloc (n + 1);
  memcpy (parent, path, n);
  parent[n] = 0;
  err = strcmp (parent, path) == 0 ? ENOENT : mkdir_p (parent, DEFAULT_DIR_MODE, false);
  free (parent);
  if (err)
    return err;
  if (mkdir (path, mode) == 0)
    return 0;
  err = errno;
  if (err == EEXIST && !exclusive && stat (path, &st) == 0 && S_ISDIR (st.st_mode))
    return 0;
  return err;
}

void handle_put (uint32_t id, const unsigned char *payload, uint32_t len)
{
  Req r;
  char *path = NULL, *dir = NULL, *tmp = NULL, *slash;
  struct stat st;
  int fd, err;
  Stream *s;

  if (!req_parse_request (id, "PUT", payload, len, &r))
    return;
  if (!(path = req_path (id, "PUT", &r)))
    goto out;
  if (!*path)
    {
      send_error (id, ENOENT, "cannot write '': %s", strerror (ENOENT));
      goto out;
    }
  if (path[strlen (path) - 1] == '/' || (stat (path, &st) == 0 && S_ISDIR (st.st_mode)))
    {
      send_error (id, EISDIR, "cannot write '%s': %s", path, strerror (EISDIR));
      goto out;
    }
  slash = strrchr (path, '/');
  if (!slash)
    dir = xstrdup (".");
  else if (slash == path)
    dir = xstrdup ("/");
  else
    {
      dir = xmalloc ((size_t) (slash - path) + 1);
      memcpy (dir, path, (size_t) (slash - path));
      dir[slash - path] = 0;
    }
  if (r.flags & QLEAN_GUEST_FLAG_PARENTS)
    {
      err = mkdir_p (dir, DEFAULT_DIR_MODE, false);
      if (err)
        {
          send_error (id, err, "cannot create directory '%s': %s", dir, strerror (err));
          goto out;
        }
    }
  tmp = xmalloc (strlen (dir) + 32);
  snprintf (tmp, strlen (dir) + 32, "%s/.qlean-put-XXXXXX", strcmp (dir, "/") == 0 ? "" : dir);
  fd = mkostemp (tmp, O_CLOEXEC);
  if (fd < 0)
    {
      err = errno;
      send_error (id, err, "cannot write '%s': %s", path, strerror (err));
      goto out;
    }
  s = stream_new (id, STREAM_PUT);
  s->file_fd = fd;
  s->path = path;
  s->tmp_path = tmp;
  s->mode = r.has_mode ? (r.mode & 07777) : DEFAULT_FILE_MODE;
  s->has_mtime = r.has_mtime;
  s->mtime_ns = r.mtime;
  path = tmp = NULL;

out:
  free (path);
  free (dir);
  free (tmp);
  req_free (&r);
}

void put_data (Stream *s, const unsigned char *p, uint32_t len)
{
  if (!window_take (s, len))
    return;
  s->credit_pending += len;
  while (len > 0)
    {
      ssize_t n = write (s->file_fd, p, len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          int err = n < 0 ? errno : ENOSPC;
          stream_abort (s, err, "cannot write '%s': %s", s->path, strerror (err));
          return;
        }
      p += n;
      len -= (uint32_t) n;
      s->size += (uint64_t) n;
    }
}

void put_finish (Stream *s)
{
  OutBuf *ob;
  int err = 0;

  if (fchmod (s->file_fd, s->mode) < 0)
    err = errno;
  if (!err && s->has_mtime)
    {
      struct timespec t[2];
      t[0].tv_sec = 0;
      t[0].tv_nsec = UTIME_OMIT;
      t[1] = ns_ts (s->mtime_ns);
      if (futimens (s->file_fd, t) < 0)
        err = errno;
    }
  if (close (s->file_fd) < 0 && !err)
    err = errno;
  s->file_fd = -1;
  if (!err && rename (s->tmp_path, s->path) < 0)
    err = errno;
  if (err)
    {
      stream_abort (s, err, "cannot write '%s': %s", s->path, strerror (err));
      return;
    }
  free (s->tmp_path);
  s->tmp_path = NULL;
  stream_flush_credit (s);
  ob = ob_new (14);
  ob_tlv_u64 (&ob, QLEAN_GUEST_TAG_SIZE, s->size);
  ob_send (ob, QLEAN_GUEST_FRAME_DONE, 0, s->id);
  stream_close (s, false);
}

void handle_get (uint32_t id, const unsigned char *payload, uint32_t len)
{
  Req r;
  char *path = NULL;
  struct stat st;
  int fd, err;
  Stream *s;
  OutBuf *ob;

  if (!req_parse_request (id, "GET", payload, len, &r))
    return;
  if (!(path = req_path (id, "GET", &r)))
    goto out;
  /* O_NONBLOCK: a FIFO or a device must not stall the loop; we poll it. */
  fd = open (path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0)
    {
      err = errno;
      send_error (id, err, "cannot read '%s': %s", path, strerror (err));
      goto out;
    }
  if (fstat (fd, &st) < 0 || S_ISDIR (st.st_mode))
    {
      err = errno;
      if (err == 0 || S_ISDIR (st.st_mode))
        err = EISDIR;
      close (fd);
      send_error (id, err, "cannot read '%s': %s", path, strerror (err));
      goto out;
    }
  s = stream_new (id, STREAM_GET);
  if (S_ISREG (st.st_mode))
    {
      posix_fadvise (fd, 0, 0, POSIX_FADV_SEQUENTIAL);
      s->fref = fileref_new (fd);
      s->end = (uint64_t) st.st_size;
      s->file_fd = dup (fd);     /* for the poll set and the tail */
      if (s->file_fd < 0)
        s->file_fd = fd, s->fref->fd = -1, s->end = 0;   /* no fds left: read() it all */
      else
        fcntl (s->file_fd, F_SETFD, FD_CLOEXEC);
    }
  else
    s->file_fd = fd;
  s->path = path;
  path = NULL;
  ob = ob_new (3 * 6 + 8 + 4 + 8);
  ob_tlv_u64 (&ob, QLEAN_GUEST_TAG_SIZE, (uint64_t) st.st_size);
  ob_tlv_u32 (&ob, QLEAN_GUEST_TAG_MODE, st.st_mode & 07777);
  ob_tlv_u64 (&ob, QLEAN_GUEST_TAG_MTIME, (uint64_t) ts_ns (&st.st_mtim));
  ob_send (ob, QLEAN_GUEST_FRAME_DONE, 0, id);

out:
  free (path);
  req_free (&r);
}

/* Queues the next DATA frames of a GET: for a regular file up to its
 * size at open, frames that send from the file itself; beyond that (a
 * file that grew) and for anything else, frames read into memory. EOF
 * goes out once the file frames have been written, or ERROR if the file
 * shrank meanwhile (the frames were completed with zeros). */
void get_read (Stream *s)
{
  while (!s->dead && !s->wait_sent && G.out_bytes < GET_LOW)
    {
      OutBuf *ob;
      ssize_t n;

      if (s->fref && s->fref->fd >= 0 && s->pos < s->end)
        {
          size_t chunk = s->end - s->pos < GET_FILE_CHUNK ? (size_t) (s->end - s->pos) : GET_FILE_CHUNK;
          ob = ob_new (0);
          ob->src = s->fref;
          s->fref->refs++;
          ob->src_off = (off_t) s->pos;
          ob->src_left = chunk;
          s->fref->queued += chunk;
          s->pos += chunk;
          ob_send (ob, QLEAN_GUEST_FRAME_DATA, 1, s->id);
          if (s->pos == s->end)
            {
              s->wait_sent = true;
              return;
            }
          continue;
        }
      ob = ob_new (GET_CHUNK);
      n = s->fref ? pread (s->file_fd, ob->data + HDR, GET_CHUNK, (off_t) s->pos)
                  : read (s->file_fd, ob->data + HDR, GET_CHUNK);
      if (n > 0)
        {
          ob->len += (size_t) n;
          s->pos += (uint64_t) n;
          ob_send (ob, QLEAN_GUEST_FRAME_DATA, 1, s->id);
          continue;
        }
      free (ob);
      if (n == 0)
        {
          send_frame (QLEAN_GUEST_FRAME_EOF, 1, s->id, NULL, 0);
          stream_close (s, false);
        }
      else if (errno != EAGAIN && errno != EINTR)
        {
          int err = errno;
          stream_abort (s, err, "cannot read '%s': %s", s->path, strerror (err));
        }
      return;
    }
}

/* After the port took some output: GETs whose file frames are all out
 * go on (to the tail, EOF or ERROR). Returns whether one did, so that
 * what it queued gets written too. A GET waiting for its frames polls
 * nothing, so this check is the only thing that moves it on: it must
 * follow every out_flush() of the loop (see run()). */
bool get_check_sent (void)
{
  bool moved = false;

  for (size_t i = 0; i < G.n_streams; i++)
    {
      Stream *s = G.streams[i];
      if (s->dead || s->kind != STREAM_GET || !s->wait_sent || s->fref->sent < s->fref->queued)
        continue;
      s->wait_sent = false;
      moved = true;
      if (s->fref->short_read)
        stream_abort (s, EIO, "cannot read '%s': it shrank while being read", s->path);
      else
        get_read (s);
    }
  return moved;
}
