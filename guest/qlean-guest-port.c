/* qlean-guest-port.c: the port, both ways
 *
 * SPDX-License-Identifier: MIT
 *
 * The only file that knows the transport: finding and (re)opening the
 * virtio-serial port (or serving an inherited fd), reading it and
 * splitting the bytes into frames (with the resync rules of
 * process_input()), and writing the output queue, with sendfile() for
 * the parts of GET frames that come from a file. Everything else queues
 * frames and reads Req structures.
 */

#include "qlean-guest-private.h"

/* ------------------------------------------------------------------------ */
/* The port                                                                  */

static int open_port_file (const char *path)
{
  int fd = open (path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  struct stat st;
  if (fd >= 0)
    G.vport = fstat (fd, &st) == 0 && S_ISCHR (st.st_mode);
  return fd;
}

/* Finds the virtio port named QLEAN_GUEST_PORT_NAME; creates its device
 * node if nothing (udev, devtmpfs) did. */
static int find_port (void)
{
  DIR *d = opendir (VIRTIO_PORTS_DIR);
  struct dirent *e;
  int fd = -1;

  if (!d)
    return -1;
  while ((e = readdir (d)))
    {
      char path[512], *name;
      size_t n;

      if (e->d_name[0] == '.')
        continue;
      snprintf (path, sizeof path, VIRTIO_PORTS_DIR "/%s/name", e->d_name);
      name = read_small_file (path, &n);
      if (!name)
        continue;
      while (n > 0 && (name[n - 1] == '\n' || name[n - 1] == ' '))
        name[--n] = 0;
      if (strcmp (name, QLEAN_GUEST_PORT_NAME) != 0)
        {
          free (name);
          continue;
        }
      free (name);
      snprintf (path, sizeof path, "/dev/%s", e->d_name);
      fd = open_port_file (path);
      if (fd < 0 && errno == ENOENT)
        {
          char devpath[512], *dev;
          unsigned int maj, min;
          snprintf (devpath, sizeof devpath, VIRTIO_PORTS_DIR "/%s/dev", e->d_name);
          dev = read_small_file (devpath, NULL);
          if (dev && sscanf (dev, "%u:%u", &maj, &min) == 2
              && mknod (path, S_IFCHR | 0600, makedev (maj, min)) == 0)
            fd = open_port_file (path);
          free (dev);
        }
      break;
    }
  closedir (d);
  return fd;
}

int port_open_once (void)
{
  return G.port_path ? open_port_file (G.port_path) : find_port ();
}

/* The host went away (EOF) or the port broke (an error): forget the
 * connection. Processes keep running (their output is dropped) until a
 * new HELLO kills them; transfers end now. */
static void port_lost (bool broken)
{
  if (G.fd_mode)
    shutdown_and_exit (0);
  G.synced = false;
  out_drop (true);
  G.in_start = G.in_end = 0;
  G.stall_since = 0;
  for (size_t i = 0; i < G.n_streams; i++)
    if (G.streams[i]->kind != STREAM_EXEC)
      stream_close (G.streams[i], true);
  if (broken)
    close_fd (&G.port_fd);
  G.connected = false;
  G.retry_at = now_ms () + RETRY_MS;
}

void port_retry (void)
{
  if (G.port_fd < 0)
    {
      G.port_fd = port_open_once ();
      if (G.port_fd < 0)
        {
          G.retry_at = now_ms () + RETRY_MS * 4;
          return;
        }
    }
  G.connected = true;   /* the next read tells */
}

void port_read (void)
{
  ssize_t n;

  if (G.in_end == IN_CAP || IN_CAP - G.in_end < 64 * 1024)
    {
      memmove (G.in, G.in + G.in_start, G.in_end - G.in_start);
      G.in_end -= G.in_start;
      G.in_start = 0;
    }
  if (G.vport)
    {
      /* virtio_console hands out one (page-sized) buffer per read();
       * readv() with page-sized pieces collects many in one call. */
      struct iovec iov[IOV_BATCH];
      int k = 0;
      for (size_t off = G.in_end; off < IN_CAP && k < IOV_BATCH; off += VPORT_READ_SEG, k++)
        {
          iov[k].iov_base = G.in + off;
          iov[k].iov_len = IN_CAP - off < VPORT_READ_SEG ? IN_CAP - off : VPORT_READ_SEG;
        }
      n = readv (G.port_fd, iov, k);
    }
  else
    n = read (G.port_fd, G.in + G.in_end, IN_CAP - G.in_end);
  if (n > 0)
    {
      G.in_end += (size_t) n;
      G.stall_checked = false;
      process_input ();
      return;
    }
  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return;
  if (n < 0 && !G.fd_mode)
    logmsg ("reading the port: %s", strerror (errno));
  port_lost (n < 0);
}

static const unsigned char magic_bytes[4] = {
  QLEAN_GUEST_MAGIC & 0xFF, (QLEAN_GUEST_MAGIC >> 8) & 0xFF,
  (QLEAN_GUEST_MAGIC >> 16) & 0xFF, (QLEAN_GUEST_MAGIC >> 24) & 0xFF,
};

/* A HELLO header exactly as the host sends it. */
static bool is_hello_header (const unsigned char *p)
{
  uint32_t len = get_u32 (p + 12);
  return memcmp (p, magic_bytes, 4) == 0 && p[4] == QLEAN_GUEST_FRAME_HELLO && p[5] == 0
         && get_u16 (p + 6) == 0 && get_u32 (p + 8) == 0 && len >= 8 && len <= HELLO_MAX;
}

/* The first HELLO header in [from, G.in_end), or NULL. */
static unsigned char *find_hello (unsigned char *from)
{
  unsigned char *end = G.in + G.in_end;
  while (end - from >= (ptrdiff_t) HDR)
    {
      unsigned char *m = memmem (from, (size_t) (end - from), magic_bytes, 4);
      if (!m || end - m < (ptrdiff_t) HDR)
        return NULL;
      if (is_hello_header (m))
        return m;
      from = m + 1;
    }
  return NULL;
}

/* Splits the input into frames.
 *
 * Unsynced (before the first HELLO, or after the host went away) only a
 * HELLO matters, so we look for exactly that pattern and skip everything
 * else, whatever lengths the debris claims.
 *
 * Synced, a bad magic or an over-long length skips ahead to the next
 * magic. A header that claims more than ever arrives would swallow
 * everything after it, HELLOs included: so when a frame has been
 * incomplete for STALL_MS and a HELLO header came after its header, we
 * drop the frame and resync on that HELLO. The host writes whole frames,
 * so a real frame does not stall that long, and a false match would also
 * need the exact HELLO header inside its payload. This happens when a
 * host went away in the middle of a frame and the next one connected
 * before we saw the port close; the host's first HELLO then resyncs
 * after STALL_MS (the loop wakes up for it). */
void process_input (void)
{
  for (;;)
    {
      unsigned char *p = G.in + G.in_start;
      size_t avail = G.in_end - G.in_start;
      uint32_t len;

      if (!G.synced)
        {
          unsigned char *h = find_hello (p);
          if (!h)
            {
              if (avail >= HDR)
                G.in_start = G.in_end - (HDR - 1);
              break;
            }
          G.in_start = (size_t) (h - G.in);
          len = get_u32 (h + 12);
          if (G.in_end - G.in_start < HDR + len)
            break;
          G.in_start += HDR + len;
          handle_frame (h, h + HDR, len);
          continue;
        }

      if (avail < 4)
        break;
      if (memcmp (p, magic_bytes, 4) != 0)
        {
          /* Debris: skip to the next magic. */
          unsigned char *m = memmem (p + 1, avail - 1, magic_bytes, 4);
          G.in_start = m ? (size_t) (m - G.in) : G.in_end - 3;
          continue;
        }
      if (avail < HDR)
        break;
      len = get_u32 (p + 12);
      if (len > QLEAN_GUEST_MAX_PAYLOAD)
        {
          G.in_start += 1;
          continue;
        }
      if (avail < HDR + len)
        {
          int64_t now = now_ms ();
          unsigned char *h;
          if (!G.stall_since)
            G.stall_since = now;
          else if (now - G.stall_since >= STALL_MS)
            {
              if ((h = find_hello (p + 1)))
                {
                  G.stall_since = 0;
                  G.in_start = (size_t) (h - G.in);
                  continue;
                }
              G.stall_checked = true;   /* wait for more input */
            }
          break;
        }
      G.stall_since = 0;
      G.in_start += HDR + len;
      handle_frame (p, p + HDR, len);
    }
  if (G.in_start == G.in_end)
    G.in_start = G.in_end = 0;
}

static void out_pop (void)
{
  OutBuf *ob = G.out_head;
  G.out_head = ob->next;
  if (!G.out_head)
    G.out_tail = NULL;
  ob_free (ob);
}

/* The file part of the head frame. Returns false when the port cannot
 * take more now (or broke). */
static bool out_flush_src (OutBuf *ob)
{
  static const unsigned char zeros[64 * 1024];
  static unsigned char copybuf[64 * 1024];
  ssize_t n;

  if (ob->src_zero)
    {
      size_t c = ob->src_left < sizeof zeros ? ob->src_left : sizeof zeros;
      n = write (G.port_fd, zeros, c);
    }
  else if (!ob->src_copy)
    {
      n = sendfile (G.port_fd, ob->src->fd, &ob->src_off, ob->src_left);
      if (n == 0)
        {
          ob->src->short_read = true;
          ob->src_zero = true;
          return true;
        }
      if (n < 0 && errno != EAGAIN && errno != EINTR)
        {
          /* Not for this pair of files (or a read error): the slow way,
           * which tells the two sides apart. */
          ob->src_copy = true;
          return true;
        }
    }
  else
    {
      size_t c = ob->src_left < sizeof copybuf ? ob->src_left : sizeof copybuf;
      ssize_t r = pread (ob->src->fd, copybuf, c, ob->src_off);
      if (r <= 0)
        {
          if (r < 0 && errno == EINTR)
            return true;
          ob->src->short_read = true;
          ob->src_zero = true;
          return true;
        }
      n = write (G.port_fd, copybuf, (size_t) r);
      if (n > 0)
        ob->src_off += n;
    }
  if (n < 0)
    {
      if (errno == EINTR)
        return true;
      if (errno == EAGAIN)
        return false;
      if (!G.fd_mode)
        logmsg ("writing the port: %s", strerror (errno));
      port_lost (errno != EPIPE && errno != ECONNRESET);
      return false;
    }
  ob->src_left -= (size_t) n;
  ob->src->sent += (uint64_t) n;
  G.out_bytes -= (size_t) n;
  if (ob->src_left == 0)
    out_pop ();
  return true;
}

void out_flush (void)
{
  struct iovec iov[IOV_BATCH];

  while (G.out_head && G.port_fd >= 0 && G.connected)
    {
      int k = 0;
      size_t total = 0;
      ssize_t n;

      if (G.out_head->off == G.out_head->len)
        {
          if (!out_flush_src (G.out_head))
            return;
          continue;
        }
      /* The memory parts of the frames ahead, up to the first file part. */
      for (OutBuf *ob = G.out_head; ob && k < IOV_BATCH; ob = ob->next)
        {
          for (size_t off = ob->off; off < ob->len && k < IOV_BATCH;)
            {
              size_t seg = ob->len - off;
              if (G.vport && seg > VPORT_WRITE_MAX)
                seg = VPORT_WRITE_MAX;
              iov[k].iov_base = ob->data + off;
              iov[k].iov_len = seg;
              k++;
              off += seg;
              total += seg;
            }
          if (ob->src_left)
            break;
        }
      n = writev (G.port_fd, iov, k);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          if (errno == EAGAIN)
            return;
          if (!G.fd_mode)
            logmsg ("writing the port: %s", strerror (errno));
          port_lost (errno != EPIPE && errno != ECONNRESET);
          return;
        }
      G.out_bytes -= (size_t) n;
      for (size_t left = (size_t) n; left > 0 && G.out_head;)
        {
          OutBuf *ob = G.out_head;
          size_t rest = ob->len - ob->off;
          if (left < rest)
            {
              ob->off += left;
              break;
            }
          left -= rest;
          ob->off = ob->len;
          if (ob->src_left)
            break;
          out_pop ();
        }
      if ((size_t) n < total)
        return;
    }
}
