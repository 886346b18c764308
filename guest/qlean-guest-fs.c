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

/* The next entry of `d` but "." and "..", or NULL at the end (*err 0)
 * or on an error (*err its errno). */
static struct dirent *next_entry (DIR *d, int *err)
{
  struct dirent *e;

  do
    {
      errno = 0;
      e = readdir (d);
      if (!e)
        {
          *err = errno;
          return NULL;
        }
    }
  while (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])));
  return e;
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
      if (!(e = next_entry (d, &err)))
        break;
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

/* ------------------------------------------------------------------------ */
/* The operations                                                            */

/* One FS request, checked: `path2` is set for the operations that take
 * one. */
typedef struct
{
  uint32_t    id;
  const Req  *r;
  const char *path;
  const char *path2;
} FsCall;

/* An operation: 0, with the DONE payload in *reply (NULL for an empty
 * one), or an errno (what is in *reply is dropped). */
typedef int (*FsOpFunc) (const FsCall *c, OutBuf **reply);

static int fs_stat (const FsCall *c, OutBuf **reply)
{
  bool nofollow = (c->r->flags & QLEAN_GUEST_FLAG_NOFOLLOW) != 0;
  struct stat st, lst;
  OutBuf *ob;

  if ((nofollow ? lstat (c->path, &st) : stat (c->path, &st)) < 0)
    return errno;
  ob = ob_new (6 + QLEAN_GUEST_STAT_SIZE);
  put_u16 (ob_grow (&ob, 2), QLEAN_GUEST_TAG_STAT);
  put_u32 (ob_grow (&ob, 4), QLEAN_GUEST_STAT_SIZE);
  put_stat (ob_grow (&ob, QLEAN_GUEST_STAT_SIZE), &st);
  /* Following a link, the answer still says it was one (GIO's
   * standard::is-symlink), with its target. */
  if (S_ISLNK (st.st_mode) || (!nofollow && lstat (c->path, &lst) == 0 && S_ISLNK (lst.st_mode)))
    {
      size_t tl;
      char *t = read_link (AT_FDCWD, c->path, &tl);
      if (t)
        {
          ob_tlv (&ob, QLEAN_GUEST_TAG_TARGET, t, tl);
          free (t);
        }
    }
  *reply = ob;
  return 0;
}

/* READDIR: one DIRENT per entry. Entries that do not fit in one frame
 * go first in DATA fd 1 frames (whole DIRENT TLVs each); DONE, with the
 * rest, always ends the stream. */
static int fs_readdir (const FsCall *c, OutBuf **reply)
{
  uint32_t id = c->id;
  DIR *d = opendir (c->path);
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

      if (!(e = next_entry (d, &err)))
        break;
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

static int fs_mkdir (const FsCall *c, OutBuf **reply)
{
  mode_t mode = c->r->has_mode ? (c->r->mode & 07777) : DEFAULT_DIR_MODE;

  if (c->r->flags & QLEAN_GUEST_FLAG_PARENTS)
    return mkdir_p (c->path, mode, (c->r->flags & QLEAN_GUEST_FLAG_EXCLUSIVE) != 0);
  return mkdir (c->path, mode) < 0 ? errno : 0;
}

static int fs_unlink (const FsCall *c, OutBuf **reply)
{
  return unlink (c->path) < 0 ? errno : 0;
}

static int fs_rmdir (const FsCall *c, OutBuf **reply)
{
  return rmdir (c->path) < 0 ? errno : 0;
}

static int fs_remove_all (const FsCall *c, OutBuf **reply)
{
  struct stat st;
  int err;

  if (lstat (c->path, &st) < 0)
    return errno;
  busy_start (c->id);
  err = remove_tree_at (AT_FDCWD, c->path, S_ISDIR (st.st_mode));
  busy_end ();
  return err;
}

static int fs_rename (const FsCall *c, OutBuf **reply)
{
  return rename (c->path, c->path2) < 0 ? errno : 0;
}

static int fs_link (const FsCall *c, OutBuf **reply)
{
  return link (c->path, c->path2) < 0 ? errno : 0;
}

static int fs_symlink (const FsCall *c, OutBuf **reply)
{
  return symlink (c->path, c->path2) < 0 ? errno : 0;
}

static int fs_readlink (const FsCall *c, OutBuf **reply)
{
  size_t tl;
  char *t = read_link (AT_FDCWD, c->path, &tl);

  if (!t)
    return errno;
  *reply = ob_new (6 + tl);
  ob_tlv (reply, QLEAN_GUEST_TAG_TARGET, t, tl);
  free (t);
  return 0;
}

static int fs_chmod (const FsCall *c, OutBuf **reply)
{
  return chmod (c->path, c->r->mode & 07777) < 0 ? errno : 0;
}

static int fs_copy (const FsCall *c, OutBuf **reply)
{
  uint64_t size = 0;
  int err;

  busy_start (c->id);
  err = copy_file (c->path, c->path2, &size);
  busy_end ();
  if (err)
    return err;
  *reply = ob_new (14);
  ob_tlv_u64 (reply, QLEAN_GUEST_TAG_SIZE, size);
  return 0;
}

static int fs_utime (const FsCall *c, OutBuf **reply)
{
  struct timespec t[2];

  t[0].tv_sec = 0;
  t[0].tv_nsec = UTIME_OMIT;
  t[1] = ns_ts (c->r->mtime);
  return utimensat (AT_FDCWD, c->path, t, AT_SYMLINK_NOFOLLOW) < 0 ? errno : 0;
}

static int fs_set_clock (const FsCall *c, OutBuf **reply)
{
  /* After a restore: one system call, where the agent's
   * guest-set-time also runs hwclock, a process that competes
   * with the first commands for the guest's CPU. */
  struct timespec t = ns_ts (c->r->mtime);

  return clock_settime (CLOCK_REALTIME, &t) < 0 ? errno : 0;
}

/* The answer of a procedure of several steps (IDENTITY, NET
 * CONFIGURE): DONE, or its own ERROR, where the step that failed, not
 * PATH, says what. */
static int answer_steps (const FsCall *c, int err, const char *failed)
{
  if (err)
    send_error (c->id, err, "%s: %s", failed, strerror (err));
  else
    ob_send (ob_new (0), QLEAN_GUEST_FRAME_DONE, 0, c->id);
  return 0;
}

static int fs_identity (const FsCall *c, OutBuf **reply)
{
  const char *failed = NULL;
  int err = set_identity (c->r, &failed);

  if (!err && (c->r->flags & QLEAN_GUEST_FLAG_WARM))
    exec_warm_up ();
  return answer_steps (c, err, failed);
}

static int fs_net_configure (const FsCall *c, OutBuf **reply)
{
  const char *failed = NULL;
  int err = configure_network (c->r, &failed);

  return answer_steps (c, err, failed);
}

/* What each operation needs beyond PATH. */
enum
{
  FS_NEEDS_PATH2 = 1 << 0,
  FS_NEEDS_MODE  = 1 << 1,
  FS_NEEDS_MTIME = 1 << 2,
  FS_ANSWERS     = 1 << 3,   /* sends its own DONE (READDIR's may follow DATA) */
};

/* The operations by QleanGuestFsOp; `verb` starts their error message. */
static const struct
{
  FsOpFunc    func;
  unsigned    needs;
  const char *verb;
} fs_ops[] = {
  [QLEAN_GUEST_FS_STAT]       = { fs_stat, 0, "cannot stat" },
  [QLEAN_GUEST_FS_READDIR]    = { fs_readdir, FS_ANSWERS, "cannot list directory" },
  [QLEAN_GUEST_FS_MKDIR]      = { fs_mkdir, 0, "cannot create directory" },
  [QLEAN_GUEST_FS_UNLINK]     = { fs_unlink, 0, "cannot remove" },
  [QLEAN_GUEST_FS_RMDIR]      = { fs_rmdir, 0, "cannot remove directory" },
  [QLEAN_GUEST_FS_REMOVE_ALL] = { fs_remove_all, 0, "cannot remove" },
  [QLEAN_GUEST_FS_RENAME]     = { fs_rename, FS_NEEDS_PATH2, "cannot rename" },
  [QLEAN_GUEST_FS_LINK]       = { fs_link, FS_NEEDS_PATH2, "cannot link to" },
  [QLEAN_GUEST_FS_SYMLINK]    = { fs_symlink, FS_NEEDS_PATH2, "cannot create symbolic link to" },
  [QLEAN_GUEST_FS_READLINK]   = { fs_readlink, 0, "cannot read symbolic link" },
  [QLEAN_GUEST_FS_CHMOD]      = { fs_chmod, FS_NEEDS_MODE, "cannot change permissions of" },
  [QLEAN_GUEST_FS_COPY]       = { fs_copy, FS_NEEDS_PATH2, "cannot copy" },
  [QLEAN_GUEST_FS_UTIME]      = { fs_utime, FS_NEEDS_MTIME, "cannot set the time of" },
  [QLEAN_GUEST_FS_SET_CLOCK]  = { fs_set_clock, FS_NEEDS_MTIME, "cannot set the clock, at" },
  [QLEAN_GUEST_FS_IDENTITY]   = { fs_identity, FS_ANSWERS, "cannot set the identity" },
  [QLEAN_GUEST_FS_NET_CONFIGURE] = { fs_net_configure, FS_ANSWERS, "cannot configure the network" },
};

/* ------------------------------------------------------------------------ */
/* The request                                                               */

void handle_fs (uint32_t id, const unsigned char *payload, uint32_t len)
{
  Req r;
  char *path = NULL, *path2 = NULL;
  OutBuf *ob = NULL;
  unsigned needs;
  bool need2;
  FsCall c;
  int err;

  if (!req_parse_request (id, "FS", payload, len, &r))
    return;
  if (!r.has_op)
    {
      send_error (id, EINVAL, "FS request without OP");
      goto out;
    }
  if (r.op >= sizeof fs_ops / sizeof fs_ops[0] || !fs_ops[r.op].func)
    {
      send_error (id, EINVAL, "unknown FS operation %u", r.op);
      goto out;
    }
  needs = fs_ops[r.op].needs;
  need2 = (needs & FS_NEEDS_PATH2) != 0;
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
  if (((needs & FS_NEEDS_MODE) && !r.has_mode) || ((needs & FS_NEEDS_MTIME) && !r.has_mtime))
    {
      send_error (id, EINVAL, "FS request without %s", (needs & FS_NEEDS_MODE) ? "MODE" : "MTIME");
      goto out;
    }

  c.id = id;
  c.r = &r;
  c.path = path;
  c.path2 = path2;
  err = fs_ops[r.op].func (&c, &ob);
  if (err)
    {
      free (ob);
      if (need2)
        send_error (id, err, "%s '%s' (to '%s'): %s", fs_ops[r.op].verb, path, path2, strerror (err));
      else
        send_error (id, err, "%s '%s': %s", fs_ops[r.op].verb, path, strerror (err));
    }
  else if (!(needs & FS_ANSWERS))
    ob_send (ob ? ob : ob_new (0), QLEAN_GUEST_FRAME_DONE, 0, id);

out:
  free (path);
  free (path2);
  req_free (&r);
}
