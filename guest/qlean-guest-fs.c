/* qlean-guest-fs.c: FS requests
 *
 * SPDX-License-Identifier: MIT
 *
 * One-shot file system operations: each answers DONE (with its TLVs) or
 * ERROR and ends its stream at once. COPY and REMOVE_ALL run in one go
 * and say now and then that they are still going (PROGRESS).
 */

#include "qlean-guest-private.h"

/* ------------------------------------------------------------------------ */
/* File system operations                                                    */

static void put_stat (unsigned char *p, const struct stat *st)
{
  put_u64 (p, (uint64_t) st->st_ino);
  put_u64 (p + 8, (uint64_t) st->st_size);
  put_u32 (p + 16, (uint32_t) st->st_mode);
  put_u32 (p + 20, (uint32_t) st->st_uid);
  put_u32 (p + 24, (uint32_t) st->st_gid);
  put_u32 (p + 28, (uint32_t) st->st_nlink);
  put_u64 (p + 32, (uint64_t) ts_ns (&st->st_atim));
  put_u64 (p + 40, (uint64_t) ts_ns (&st->st_mtim));
  put_u64 (p + 48, (uint64_t) ts_ns (&st->st_ctim));
}

/* A symlink's target, malloc'd (not NUL-terminated in *len), or NULL. */
static char *read_link (int dfd, const char *path, size_t *len)
{
  size_t cap = 256;
  for (;;)
    {
      char *buf = xmalloc (cap);
      ssize_t n = readlinkat (dfd, path, buf, cap);
      if (n < 0)
        {
          int err = errno;
          free (buf);
          errno = err;
          return NULL;
        }
      if ((size_t) n < cap)
        {
          *len = (size_t) n;
          return buf;
        }
      free (buf);
      cap *= 2;
    }
}

/* The FS request that runs in one go (COPY, REMOVE_ALL): the loop sees
 * nothing else until it ends, so it says now and then that it is still
 * going (PROGRESS), which the host takes as a sign of life. */
static struct
{
  uint32_t id;        /* 0: none */
  int64_t  next_ms;   /* when the next PROGRESS is due */
} busy;

static void busy_start (uint32_t id)
{
  busy.id = id;
  busy.next_ms = now_ms () + KEEPALIVE_MS;
}

static void busy_end (void)
{
  busy.id = 0;
}

/* Called often during the work: sends PROGRESS once it is due, and
 * writes out what the port takes now (it never blocks). */
static void busy_tick (void)
{
  int64_t now;

  if (!busy.id)
    return;
  now = now_ms ();
  if (now < busy.next_ms)
    return;
  busy.next_ms = now + KEEPALIVE_MS;
  send_frame (QLEAN_GUEST_FRAME_PROGRESS, 0, busy.id, NULL, 0);
  out_flush ();
}

/* Removes a tree below dfd/name without following symlinks. Entries
 * that vanish meanwhile are fine. Returns 0 or an errno. */
static int remove_tree_at (int dfd, const char *name, bool is_dir_hint)
{
  int fd, err = 0;
  DIR *d;
  struct dirent *e;

  busy_tick ();
  if (!is_dir_hint)
    {
      if (unlinkat (dfd, name, 0) == 0 || errno == ENOENT)
        return 0;
      if (errno != EISDIR && errno != EPERM)
        return errno;
    }
  fd = openat (dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    {
      err = errno;
      if (err == ENOENT)
        return 0;
      if (err == ENOTDIR || err == ELOOP)
        /* Not a directory after all (or replaced meanwhile). */
        return unlinkat (dfd, name, 0) == 0 || errno == ENOENT ? 0 : errno;
      return err;
    }
  d = fdopendir (fd);
  if (!d)
    {
      err = errno;
      close (fd);
      return err;
    }
  for (;;)
    {
      errno = 0;
      e = readdir (d);
      if (!e)
        {
          err = errno;
          break;
        }
      if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
        continue;
      err = remove_tree_at (dirfd (d), e->d_name, e->d_type == DT_DIR);
      if (err)
        break;
    }
  closedir (d);
  if (err)
    return err;
  if (unlinkat (dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
    return errno;
  return 0;
}

/* std::fs::copy: contents and permission bits, over an existing file. */
static int copy_file (const char *from, const char *to, uint64_t *size)
{
  struct stat st, dst;
  int in, out, err = 0;
  bool fallback = false;
  uint64_t total = 0;

  in = open (from, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (in < 0)
    return errno;
  if (fstat (in, &st) < 0)
    err = errno;
  else if (S_ISDIR (st.st_mode))
    err = EISDIR;
  else if (!S_ISREG (st.st_mode))
    err = EINVAL;
  else if (stat (to, &dst) == 0 && dst.st_dev == st.st_dev && dst.st_ino == st.st_ino)
    err = EINVAL;   /* copying a file onto itself would truncate it */
  if (err)
    {
      close (in);
      return err;
    }
  out = open (to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, st.st_mode & 07777);
  if (out < 0)
    {
      err = errno;
      close (in);
      return err;
    }
  if (fchmod (out, st.st_mode & 07777) < 0)
    err = errno;
  while (!err && !fallback)
    {
      /* In steps short enough for a PROGRESS between them. */
      ssize_t n;
      busy_tick ();
      n = copy_file_range (in, NULL, out, NULL, COPY_STEP, 0);
      if (n > 0)
        total += (uint64_t) n;
      else if (n == 0)
        break;
      else if (errno == EINTR)
        continue;
      else if (total == 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL
                              || errno == EOPNOTSUPP || errno == EPERM || errno == EBADF))
        fallback = true;
      else
        err = errno;
    }
  if (fallback)
    {
      size_t cap = 1u << 20;
      char *buf = xmalloc (cap);
      for (;;)
        {
          ssize_t n;
          char *p = buf;
          busy_tick ();
          n = read (in, buf, cap);
          if (n < 0 && errno == EINTR)
            continue;
          if (n < 0)
            err = errno;
          if (n <= 0)
            break;
          while (n > 0)
            {
              ssize_t w = write (out, p, (size_t) n);
              if (w < 0 && errno == EINTR)
                continue;
              if (w <= 0)
                {
                  err = w < 0 ? errno : ENOSPC;
                  break;
                }
              p += w;
              n -= w;
              total += (uint64_t) w;
            }
          if (err)
            break;
        }
      free (buf);
    }
  close (in);
  if (close (out) < 0 && !err)
    err = errno;
  *size = total;
  return err;
}

/* READDIR: one DIRENT per entry. Entries that do not fit in one frame
 * go first in DATA fd 1 frames (whole DIRENT TLVs each); DONE, with the
 * rest, always ends the stream. */
static int fs_readdir (uint32_t id, const char *path)
{
  DIR *d = opendir (path);
  struct dirent *e;
  OutBuf *ob;
  int err = 0;

  if (!d)
    return errno;
  ob = ob_new (4096);
  for (;;)
    {
      struct stat st;
      size_t nl;
      unsigned char *p;

      errno = 0;
      e = readdir (d);
      if (!e)
        {
          err = errno;
          break;
        }
      if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
        continue;
      if (fstatat (dirfd (d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        {
          if (errno == ENOENT)
            continue;   /* gone meanwhile */
          err = errno;
          break;
        }
      nl = strlen (e->d_name);
      if (ob_payload (ob) + 6 + QLEAN_GUEST_STAT_SIZE + nl > QLEAN_GUEST_MAX_PAYLOAD)
        {
          ob_send (ob, QLEAN_GUEST_FRAME_DATA, 1, id);
          ob = ob_new (4096);
        }
      p = ob_grow (&ob, 6 + QLEAN_GUEST_STAT_SIZE + nl);
      put_u16 (p, QLEAN_GUEST_TAG_DIRENT);
      put_u32 (p + 2, (uint32_t) (QLEAN_GUEST_STAT_SIZE + nl));
      put_stat (p + 6, &st);
      memcpy (p + 6 + QLEAN_GUEST_STAT_SIZE, e->d_name, nl);
    }
  closedir (d);
  if (err)
    {
      free (ob);
      return err;
    }
  ob_send (ob, QLEAN_GUEST_FRAME_DONE, 0, id);
  return 0;
}

static const char *fs_op_verb (uint32_t op)
{
  switch (op)
    {
    case QLEAN_GUEST_FS_STAT: return "cannot stat";
    case QLEAN_GUEST_FS_READDIR: return "cannot list directory";
    case QLEAN_GUEST_FS_MKDIR: return "cannot create directory";
    case QLEAN_GUEST_FS_UNLINK: return "cannot remove";
    case QLEAN_GUEST_FS_RMDIR: return "cannot remove directory";
    case QLEAN_GUEST_FS_REMOVE_ALL: return "cannot remove";
    case QLEAN_GUEST_FS_RENAME: return "cannot rename";
    case QLEAN_GUEST_FS_LINK: return "cannot link to";
    case QLEAN_GUEST_FS_SYMLINK: return "cannot create symbolic link to";
    case QLEAN_GUEST_FS_READLINK: return "cannot read symbolic link";
    case QLEAN_GUEST_FS_CHMOD: return "cannot change permissions of";
    case QLEAN_GUEST_FS_COPY: return "cannot copy";
    case QLEAN_GUEST_FS_UTIME: return "cannot set the time of";
    case QLEAN_GUEST_FS_SET_CLOCK: return "cannot set the clock, at";
    default: return "cannot handle";
    }
}

void handle_fs (uint32_t id, const unsigned char *payload, uint32_t len)
{
  Req r;
  const char *why = NULL;
  char *path = NULL, *path2 = NULL;
  int err = 0;
  struct stat st;
  OutBuf *ob = NULL;
  bool need2;

  if (!req_parse (payload, len, &r, &why))
    {
      send_error (id, EPROTO, "malformed FS request: %s", why);
      req_free (&r);
      return;
    }
  if (!r.has_op)
    {
      send_error (id, EINVAL, "FS request without OP");
      goto out;
    }
  if (r.op < QLEAN_GUEST_FS_STAT || r.op > QLEAN_GUEST_FS_SET_CLOCK)
    {
      send_error (id, EINVAL, "unknown FS operation %u", r.op);
      goto out;
    }
  need2 = r.op == QLEAN_GUEST_FS_RENAME || r.op == QLEAN_GUEST_FS_LINK
          || r.op == QLEAN_GUEST_FS_SYMLINK || r.op == QLEAN_GUEST_FS_COPY;
  if (!r.has_path || (need2 && !r.has_path2))
    {
      send_error (id, EINVAL, "FS request without %s", r.has_path ? "PATH2" : "PATH");
      goto out;
    }
  if (!(path = span_str (r.path)) || (need2 && !(path2 = span_str (r.path2))))
    {
      send_error (id, EINVAL, "FS request: a path contains a NUL byte");
      goto out;
    }
  if ((r.op == QLEAN_GUEST_FS_CHMOD && !r.has_mode)
      || ((r.op == QLEAN_GUEST_FS_UTIME || r.op == QLEAN_GUEST_FS_SET_CLOCK) && !r.has_mtime))
    {
      send_error (id, EINVAL, "FS request without %s", r.op == QLEAN_GUEST_FS_CHMOD ? "MODE" : "MTIME");
      goto out;
    }

  switch (r.op)
    {
    case QLEAN_GUEST_FS_STAT:
      {
        bool nofollow = (r.flags & QLEAN_GUEST_FLAG_NOFOLLOW) != 0;
        struct stat lst;
        if ((nofollow ? lstat (path, &st) : stat (path, &st)) < 0)
          {
            err = errno;
            break;
          }
        ob = ob_new (6 + QLEAN_GUEST_STAT_SIZE);
        put_u16 (ob_grow (&ob, 2), QLEAN_GUEST_TAG_STAT);
        put_u32 (ob_grow (&ob, 4), QLEAN_GUEST_STAT_SIZE);
        put_stat (ob_grow (&ob, QLEAN_GUEST_STAT_SIZE), &st);
        /* Following a link, the answer still says it was one (GIO's
         * standard::is-symlink), with its target. */
        if (S_ISLNK (st.st_mode) || (!nofollow && lstat (path, &lst) == 0 && S_ISLNK (lst.st_mode)))
          {
            size_t tl;
            char *t = read_link (AT_FDCWD, path, &tl);
            if (t)
              {
                ob_tlv (&ob, QLEAN_GUEST_TAG_TARGET, t, tl);
                free (t);
              }
          }
        break;
      }
    case QLEAN_GUEST_FS_READDIR:
      err = fs_readdir (id, path);
      goto done_sent;
    case QLEAN_GUEST_FS_MKDIR:
      {
        mode_t mode = r.has_mode ? (r.mode & 07777) : DEFAULT_DIR_MODE;
        if (r.flags & QLEAN_GUEST_FLAG_PARENTS)
          err = mkdir_p (path, mode, (r.flags & QLEAN_GUEST_FLAG_EXCLUSIVE) != 0);
        else if (mkdir (path, mode) < 0)
          err = errno;
        break;
      }
    case QLEAN_GUEST_FS_UNLINK:
      if (unlink (path) < 0)
        err = errno;
      break;
    case QLEAN_GUEST_FS_RMDIR:
      if (rmdir (path) < 0)
        err = errno;
      break;
    case QLEAN_GUEST_FS_REMOVE_ALL:
      if (lstat (path, &st) < 0)
        err = errno;
      else
        {
          busy_start (id);
          err = remove_tree_at (AT_FDCWD, path, S_ISDIR (st.st_mode));
          busy_end ();
        }
      break;
    case QLEAN_GUEST_FS_RENAME:
      if (rename (path, path2) < 0)
        err = errno;
      break;
    case QLEAN_GUEST_FS_LINK:
      if (link (path, path2) < 0)
        err = errno;
      break;
    case QLEAN_GUEST_FS_SYMLINK:
      if (symlink (path, path2) < 0)
        err = errno;
      break;
    case QLEAN_GUEST_FS_READLINK:
      {
        size_t tl;
        char *t = read_link (AT_FDCWD, path, &tl);
        if (!t)
          {
            err = errno;
            break;
          }
        ob = ob_new (6 + tl);
        ob_tlv (&ob, QLEAN_GUEST_TAG_TARGET, t, tl);
        free (t);
        break;
      }
    case QLEAN_GUEST_FS_CHMOD:
      if (chmod (path, r.mode & 07777) < 0)
        err = errno;
      break;
    case QLEAN_GUEST_FS_COPY:
      {
        uint64_t size = 0;
        busy_start (id);
        err = copy_file (path, path2, &size);
        busy_end ();
        if (!err)
          {
            ob = ob_new (14);
            ob_tlv_u64 (&ob, QLEAN_GUEST_TAG_SIZE, size);
          }
        break;
      }
    case QLEAN_GUEST_FS_UTIME:
      {
        struct timespec t[2];
        t[0].tv_sec = 0;
        t[0].tv_nsec = UTIME_OMIT;
        t[1] = ns_ts (r.mtime);
        if (utimensat (AT_FDCWD, path, t, AT_SYMLINK_NOFOLLOW) < 0)
          err = errno;
        break;
      }
    case QLEAN_GUEST_FS_SET_CLOCK:
      {
        /* After a restore: one system call, where the agent's
         * guest-set-time also runs hwclock, a process that competes
         * with the first commands for the guest's CPU. */
        struct timespec t = ns_ts (r.mtime);
        if (clock_settime (CLOCK_REALTIME, &t) < 0)
          err = errno;
        break;
      }
    default:
      break;
    }

  if (err)
    {
      free (ob);
      ob = NULL;
    }
  else
    {
      if (!ob)
        ob = ob_new (0);
      ob_send (ob, QLEAN_GUEST_FRAME_DONE, 0, id);
      goto out;
    }

done_sent:
  if (err)
    {
      if (need2)
        send_error (id, err, "%s '%s' (to '%s'): %s", fs_op_verb (r.op), path, path2, strerror (err));
      else
        send_error (id, err, "%s '%s': %s", fs_op_verb (r.op), path, strerror (err));
    }

out:
  free (path);
  free (path2);
  req_free (&r);
}
