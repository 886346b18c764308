/* test-guest-program.c: guest/qlean-guest.c against a scripted host
 *
 * SPDX-License-Identifier: MIT
 *
 * Starts `qlean-guest serve --fd N` (the program named by $QLEAN_GUEST)
 * on one end of a socketpair and speaks guest/qlean-guest-protocol.h on
 * the other, checking the answers frame by frame. Plain POSIX, TAP
 * output.
 *
 *   test-guest-program [--tap] [--bench [N]]
 *
 * --bench runs N (default 1000) exec round trips of /bin/true and GET/PUT
 * throughput, and prints the figures.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "qlean-guest-protocol.h"

#define HDR       QLEAN_GUEST_HEADER_SIZE
#define WINDOW    QLEAN_GUEST_WINDOW
#define TIMEOUT   20000  /* ms for any single expected frame */

/* ------------------------------------------------------------------------ */
/* TAP                                                                       */

static int n_tests, n_failed;
static bool cur_failed, cur_skipped;
static char skip_reason[256];

#define CHECK(cond) \
  do { if (!(cond)) { \
    printf ("# %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    cur_failed = true; return; } } while (0)

#define CHECKF(cond, ...) \
  do { if (!(cond)) { \
    printf ("# %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
    printf (__VA_ARGS__); printf ("\n"); \
    cur_failed = true; return; } } while (0)

#define SKIP(...) \
  do { snprintf (skip_reason, sizeof skip_reason, __VA_ARGS__); cur_skipped = true; return; } while (0)

static void run_test (const char *name, void (*fn) (void))
{
  const char *only = getenv ("QLEAN_GUEST_TEST_ONLY");

  cur_failed = cur_skipped = false;
  if (only && *only && !strstr (name, only))
    SKIP ("not selected by QLEAN_GUEST_TEST_ONLY");
  else
    fn ();
  n_tests++;
  if (cur_failed)
    {
      n_failed++;
      printf ("not ok %d - %s\n", n_tests, name);
    }
  else if (cur_skipped)
    printf ("ok %d - %s # SKIP %s\n", n_tests, name, skip_reason);
  else
    printf ("ok %d - %s\n", n_tests, name);
  fflush (stdout);
}

/* ------------------------------------------------------------------------ */
/* Bytes                                                                     */

static void put_u16 (unsigned char *p, uint16_t v) { p[0] = v; p[1] = v >> 8; }
static void put_u32 (unsigned char *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = v >> (8 * i); }
static void put_u64 (unsigned char *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = v >> (8 * i); }
static uint16_t get_u16 (const unsigned char *p) { return p[0] | (p[1] << 8); }
static uint32_t get_u32 (const unsigned char *p)
{
  return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
}
static uint64_t get_u64 (const unsigned char *p) { return get_u32 (p) | ((uint64_t) get_u32 (p + 4) << 32); }

typedef struct
{
  unsigned char *p;
  size_t         len, cap;
} Buf;

static void buf_add (Buf *b, const void *d, size_t n)
{
  if (b->len + n > b->cap)
    {
      b->cap = (b->len + n) * 2 + 64;
      b->p = realloc (b->p, b->cap);
    }
  if (n)
    memcpy (b->p + b->len, d, n);
  b->len += n;
}

static void buf_free (Buf *b)
{
  free (b->p);
  memset (b, 0, sizeof *b);
}

static void tlv (Buf *b, uint16_t tag, const void *d, size_t n)
{
  unsigned char h[6];
  put_u16 (h, tag);
  put_u32 (h + 2, (uint32_t) n);
  buf_add (b, h, 6);
  buf_add (b, d, n);
}

static void tlv_str (Buf *b, uint16_t tag, const char *s) { tlv (b, tag, s, strlen (s)); }
static void tlv_u32 (Buf *b, uint16_t tag, uint32_t v) { unsigned char x[4]; put_u32 (x, v); tlv (b, tag, x, 4); }
static void tlv_u64 (Buf *b, uint16_t tag, uint64_t v) { unsigned char x[8]; put_u64 (x, v); tlv (b, tag, x, 8); }

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd (void)
{
  uint64_t x = rng_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return rng_state = x;
}

static void rnd_fill (unsigned char *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    p[i] = (unsigned char) (rnd () >> 24);
}

static int64_t now_us (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ------------------------------------------------------------------------ */
/* The guest and its frames                                                  */

static int g_fd = -1;
static pid_t g_pid;
static uint32_t g_next = 1;
static char g_dir[PATH_MAX / 2];

typedef struct Frame Frame;
struct Frame
{
  Frame         *next;
  uint8_t        type, fd;
  uint32_t       stream, len;
  int64_t        at_us;
  unsigned char  payload[];
};

static Frame *q_head, *q_tail;
static unsigned char rbuf[4 * 1024 * 1024];
static size_t r_start, r_end;
static bool g_broken;   /* the guest sent something unparsable, or went away */
static bool g_syncing;  /* in hello(): discard all but the answer */
static unsigned char g_sync_pattern[HDR + 8];

static void write_all (const void *d, size_t n)
{
  const unsigned char *p = d;
  while (n > 0)
    {
      ssize_t w = write (g_fd, p, n);
      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0)
        {
          g_broken = true;
          return;
        }
      p += w;
      n -= (size_t) w;
    }
}

static void send_frame (uint8_t type, uint8_t fd, uint32_t stream, const void *payload, size_t n)
{
  unsigned char h[HDR];
  put_u32 (h, QLEAN_GUEST_MAGIC);
  h[4] = type;
  h[5] = fd;
  put_u16 (h + 6, 0);
  put_u32 (h + 8, stream);
  put_u32 (h + 12, (uint32_t) n);
  write_all (h, HDR);
  write_all (payload, n);
}

/* Reads what the socket has (waiting up to timeout_ms for something),
 * splitting it into queued frames. False on timeout. */
static bool pump (int timeout_ms)
{
  struct pollfd p = { .fd = g_fd, .events = POLLIN };
  ssize_t n;
  int r;

  if (g_broken)
    return false;
  r = poll (&p, 1, timeout_ms);
  if (r <= 0)
    return false;
  if (r_start > 0)
    {
      memmove (rbuf, rbuf + r_start, r_end - r_start);
      r_end -= r_start;
      r_start = 0;
    }
  n = read (g_fd, rbuf + r_end, sizeof rbuf - r_end);
  if (n <= 0)
    {
      printf ("# the guest closed the connection\n");
      g_broken = true;
      return false;
    }
  r_end += (size_t) n;
  if (g_syncing)
    {
      /* Like the host must: everything before the exact HELLO answer is
       * debris (the tail of a frame meant for an earlier peer, say), and
       * its lengths are not to be trusted. */
      unsigned char *m = memmem (rbuf + r_start, r_end - r_start, g_sync_pattern, sizeof g_sync_pattern);
      if (!m)
        {
          if (r_end - r_start >= sizeof g_sync_pattern)
            r_start = r_end - (sizeof g_sync_pattern - 1);
          return true;
        }
      r_start = (size_t) (m - rbuf);
      g_syncing = false;
    }
  while (r_end - r_start >= HDR)
    {
      unsigned char *h = rbuf + r_start;
      uint32_t len = get_u32 (h + 12);
      Frame *f;
      if (get_u32 (h) != QLEAN_GUEST_MAGIC || get_u16 (h + 6) != 0 || len > QLEAN_GUEST_MAX_PAYLOAD)
        {
          printf ("# bad frame header from the guest\n");
          g_broken = true;
          return false;
        }
      if (r_end - r_start < HDR + len)
        break;
      f = malloc (sizeof *f + len + 1);
      f->next = NULL;
      f->type = h[4];
      f->fd = h[5];
      f->stream = get_u32 (h + 8);
      f->len = len;
      f->at_us = now_us ();
      memcpy (f->payload, h + HDR, len);
      f->payload[len] = 0;
      r_start += HDR + len;
      if (q_tail)
        q_tail->next = f;
      else
        q_head = f;
      q_tail = f;
    }
  return true;
}

/* The next frame of `stream`, or NULL after timeout_ms. */
static Frame *next_frame (uint32_t stream, int timeout_ms)
{
  int64_t deadline = now_us () + (int64_t) timeout_ms * 1000;
  for (;;)
    {
      Frame *prev = NULL;
      int64_t left;
      for (Frame *f = q_head; f; prev = f, f = f->next)
        if (f->stream == stream)
          {
            if (prev)
              prev->next = f->next;
            else
              q_head = f->next;
            if (q_tail == f)
              q_tail = prev;
            return f;
          }
      left = deadline - now_us ();
      if (left <= 0 || g_broken)
        return NULL;
      pump ((int) ((left + 999) / 1000));
    }
}

/* Drops queued frames (of earlier, failed tests). */
static void drop_frames (void)
{
  while (pump (0))
    ;
  while (q_head)
    {
      Frame *f = q_head;
      q_head = f->next;
      free (f);
    }
  q_tail = NULL;
}

static bool guest_alive (void)
{
  int st;
  return waitpid (g_pid, &st, WNOHANG) == 0;
}

/* $QLEAN_GUEST, or the one built beside this test. */
static const char *guest_path (void)
{
  static char buf[PATH_MAX];
  const char *p = getenv ("QLEAN_GUEST");
  ssize_t n;
  char *slash;

  if (p && *p)
    return p;
  n = readlink ("/proc/self/exe", buf, sizeof buf - 64);
  if (n <= 0)
    return "qlean-guest";
  buf[n] = 0;
  slash = strrchr (buf, '/');
  strcpy (slash ? slash + 1 : buf, "../../guest/qlean-guest");
  return buf;
}

static void start_guest (void)
{
  int sv[2];
  if (socketpair (AF_UNIX, SOCK_STREAM, 0, sv) < 0)
    {
      perror ("socketpair");
      exit (1);
    }
  fcntl (sv[0], F_SETFD, FD_CLOEXEC);
  g_pid = fork ();
  if (g_pid == 0)
    {
      char fdarg[16];
      snprintf (fdarg, sizeof fdarg, "%d", sv[1]);
      setenv ("QLEAN_TEST_MARK", "inherited-from-guest", 1);
      execl (guest_path (), "qlean-guest", "serve", "--fd", fdarg, (char *) NULL);
      perror ("exec qlean-guest");
      _exit (127);
    }
  close (sv[1]);
  g_fd = sv[0];
}

/* Syncs like the host should: HELLO, resent every second until the
 * answer with our nonce comes (debris may swallow the first ones). */
static bool hello (uint64_t nonce)
{
  unsigned char n[8];
  Frame *f;
  int64_t deadline = now_us () + (int64_t) TIMEOUT * 1000, next_send = 0;

  put_u64 (n, nonce);
  put_u32 (g_sync_pattern, QLEAN_GUEST_MAGIC);
  g_sync_pattern[4] = QLEAN_GUEST_FRAME_HELLO;
  g_sync_pattern[5] = 0;
  put_u16 (g_sync_pattern + 6, 0);
  put_u32 (g_sync_pattern + 8, 0);
  put_u32 (g_sync_pattern + 12, 16);
  memcpy (g_sync_pattern + HDR, n, 8);
  g_syncing = true;
  /* What came before is void. */
  while (q_head)
    {
      f = q_head;
      q_head = f->next;
      free (f);
    }
  q_tail = NULL;
  for (;;)
    {
      if (now_us () >= next_send)
        {
          send_frame (QLEAN_GUEST_FRAME_HELLO, 0, 0, n, 8);
          next_send = now_us () + 1000000;
        }
      if (now_us () >= deadline)
        {
          g_syncing = false;
          return false;
        }
      f = next_frame (0, 100);
      if (!f)
        continue;
      if (f->type == QLEAN_GUEST_FRAME_HELLO && f->len == 16 && get_u64 (f->payload) == nonce)
        break;
      free (f);
    }
  free (f);
  return true;
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                  */

typedef struct
{
  const char *const *argv;
  const char *const *env;
  const char *cwd;
  const char *user;
  uint32_t    flags;
} ExecOpts;

static uint32_t send_exec (const ExecOpts *o)
{
  Buf b = { 0 };
  uint32_t id = g_next++;
  for (const char *const *a = o->argv; *a; a++)
    tlv_str (&b, QLEAN_GUEST_TAG_ARG, *a);
  for (const char *const *e = o->env; e && *e; e++)
    tlv_str (&b, QLEAN_GUEST_TAG_ENV, *e);
  if (o->cwd)
    tlv_str (&b, QLEAN_GUEST_TAG_CWD, o->cwd);
  if (o->user)
    tlv_str (&b, QLEAN_GUEST_TAG_USER, o->user);
  if (o->flags)
    tlv_u32 (&b, QLEAN_GUEST_TAG_FLAGS, o->flags);
  send_frame (QLEAN_GUEST_FRAME_EXEC, 0, id, b.p, b.len);
  buf_free (&b);
  return id;
}

typedef struct
{
  bool     started, exited, error;
  uint32_t pid;
  int      status;
  int      err;
  char     msg[4096];
  Buf      out, errb;
  bool     eof1, eof2;
  bool     order_ok;        /* STARTED first, EOFs before EXIT, nothing after data EOF */
  uint64_t credit;
  int64_t  first_data_us[3];
  int64_t  last_data_us[3];
  int      n_data[3];
} ExecResult;

static void result_free (ExecResult *r)
{
  buf_free (&r->out);
  buf_free (&r->errb);
}

/* Handles one frame of an exec stream; true when the stream ended. */
static bool exec_frame (ExecResult *r, Frame *f)
{
  bool end = false;
  switch (f->type)
    {
    case QLEAN_GUEST_FRAME_STARTED:
      if (r->started || f->len != 4)
        r->order_ok = false;
      r->started = true;
      r->pid = get_u32 (f->payload);
      break;
    case QLEAN_GUEST_FRAME_DATA:
      if (!r->started || f->fd < 1 || f->fd > 2 || (f->fd == 1 ? r->eof1 : r->eof2))
        r->order_ok = false;
      else
        {
          if (!r->n_data[f->fd]++)
            r->first_data_us[f->fd] = f->at_us;
          r->last_data_us[f->fd] = f->at_us;
        }
      buf_add (f->fd == 2 ? &r->errb : &r->out, f->payload, f->len);
      break;
    case QLEAN_GUEST_FRAME_EOF:
      if (f->fd == 1)
        r->eof1 = true;
      else if (f->fd == 2)
        r->eof2 = true;
      else
        r->order_ok = false;
      break;
    case QLEAN_GUEST_FRAME_CREDIT:
      if (f->fd != 0 || f->len != 4)
        r->order_ok = false;
      else
        r->credit += get_u32 (f->payload);
      break;
    case QLEAN_GUEST_FRAME_EXIT:
      r->exited = true;
      r->status = (int) get_u32 (f->payload);
      end = true;
      break;
    case QLEAN_GUEST_FRAME_ERROR:
      r->error = true;
      r->err = (int) get_u32 (f->payload);
      snprintf (r->msg, sizeof r->msg, "%.*s", (int) f->len - 4, f->payload + 4);
      end = true;
      break;
    default:
      r->order_ok = false;
      break;
    }
  free (f);
  return end;
}

/* Collects an exec stream up to EXIT or ERROR. False on timeout. */
static bool collect (uint32_t id, ExecResult *r, int timeout_ms)
{
  for (;;)
    {
      Frame *f = next_frame (id, timeout_ms);
      if (!f)
        return false;
      if (exec_frame (r, f))
        return true;
    }
}

static bool run_exec (const ExecOpts *o, ExecResult *r)
{
  memset (r, 0, sizeof *r);
  r->order_ok = true;
  return collect (send_exec (o), r, TIMEOUT);
}

static bool exited_with (const ExecResult *r, int code)
{
  return r->exited && WIFEXITED (r->status) && WEXITSTATUS (r->status) == code;
}

/* A reply to a one-frame request: DONE (payload kept) or ERROR. */
typedef struct
{
  bool           done, error;
  int            err;
  char           msg[4096];
  Buf            payload;     /* DONE's, after any DATA fd 1 before it */
  int            n_data;
} Reply;

static bool wait_reply (uint32_t id, Reply *rep)
{
  memset (rep, 0, sizeof *rep);
  for (;;)
    {
      Frame *f = next_frame (id, TIMEOUT);
      if (!f)
        return false;
      if (f->type == QLEAN_GUEST_FRAME_DATA && f->fd == 1)
        {
          rep->n_data++;
          buf_add (&rep->payload, f->payload, f->len);
          free (f);
          continue;
        }
      if (f->type == QLEAN_GUEST_FRAME_DONE)
        {
          rep->done = true;
          buf_add (&rep->payload, f->payload, f->len);
        }
      else if (f->type == QLEAN_GUEST_FRAME_ERROR)
        {
          rep->error = true;
          rep->err = (int) get_u32 (f->payload);
          snprintf (rep->msg, sizeof rep->msg, "%.*s", (int) f->len - 4, f->payload + 4);
        }
      else if (f->type == QLEAN_GUEST_FRAME_CREDIT)
        {
          free (f);
          continue;
        }
      free (f);
      return true;
    }
}

/* Finds the first TLV `tag` in a payload. */
static bool find_tlv (const Buf *b, uint16_t tag, const unsigned char **v, uint32_t *len)
{
  size_t off = 0;
  while (off + 6 <= b->len)
    {
      uint16_t t = get_u16 (b->p + off);
      uint32_t n = get_u32 (b->p + off + 2);
      if (off + 6 + n > b->len)
        return false;
      if (t == tag)
        {
          *v = b->p + off + 6;
          *len = n;
          return true;
        }
      off += 6 + n;
    }
  return false;
}

static uint32_t send_fs (uint32_t op, const char *path, const char *path2, int64_t mode, uint32_t flags,
                         const int64_t *mtime)
{
  Buf b = { 0 };
  uint32_t id = g_next++;
  tlv_u32 (&b, QLEAN_GUEST_TAG_OP, op);
  if (path)
    tlv_str (&b, QLEAN_GUEST_TAG_PATH, path);
  if (path2)
    tlv_str (&b, QLEAN_GUEST_TAG_PATH2, path2);
  if (mode >= 0)
    tlv_u32 (&b, QLEAN_GUEST_TAG_MODE, (uint32_t) mode);
  if (flags)
    tlv_u32 (&b, QLEAN_GUEST_TAG_FLAGS, flags);
  if (mtime)
    tlv_u64 (&b, QLEAN_GUEST_TAG_MTIME, (uint64_t) *mtime);
  send_frame (QLEAN_GUEST_FRAME_FS, 0, id, b.p, b.len);
  buf_free (&b);
  return id;
}

static bool fs (uint32_t op, const char *path, const char *path2, int64_t mode, uint32_t flags,
                const int64_t *mtime, Reply *rep)
{
  return wait_reply (send_fs (op, path, path2, mode, flags, mtime), rep);
}

/* FS NET CONFIGURE of the card @card_mac, with no gateway and no hosts. */
static bool net_configure (const char *card_mac, const char *addr, uint32_t prefix, Reply *rep)
{
  Buf b = { 0 };
  uint32_t id = g_next++;

  tlv_u32 (&b, QLEAN_GUEST_TAG_OP, QLEAN_GUEST_FS_NET_CONFIGURE);
  tlv_str (&b, QLEAN_GUEST_TAG_PATH, "/");
  tlv_str (&b, QLEAN_GUEST_TAG_OLD_MAC, card_mac);
  tlv_str (&b, QLEAN_GUEST_TAG_ADDR, addr);
  tlv_u32 (&b, QLEAN_GUEST_TAG_PREFIX, prefix);
  tlv_str (&b, QLEAN_GUEST_TAG_HOSTS, "");
  send_frame (QLEAN_GUEST_FRAME_FS, 0, id, b.p, b.len);
  buf_free (&b);
  return wait_reply (id, rep);
}

static bool fs_ok (const Reply *r) { return r->done && !r->error; }
static bool fs_err (const Reply *r, int err) { return r->error && r->err == err; }

static char *tpath (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
static char *tpath (const char *fmt, ...)
{
  static char bufs[8][PATH_MAX];
  static int k;
  char rel[PATH_MAX / 2];
  va_list ap;
  char *b = bufs[k++ % 8];
  va_start (ap, fmt);
  vsnprintf (rel, sizeof rel, fmt, ap);
  va_end (ap);
  snprintf (b, PATH_MAX, "%s/%s", g_dir, rel);
  return b;
}

/* PUT `data` to `path`; returns the reply. */
static bool put_file (const char *path, const unsigned char *data, size_t n, int64_t mode,
                      const int64_t *mtime, uint32_t flags, Reply *rep, uint64_t *credit_out)
{
  Buf b = { 0 };
  uint32_t id = g_next++;
  size_t sent = 0;
  uint64_t avail = WINDOW, credit = 0;

  tlv_str (&b, QLEAN_GUEST_TAG_PATH, path);
  if (mode >= 0)
    tlv_u32 (&b, QLEAN_GUEST_TAG_MODE, (uint32_t) mode);
  if (mtime)
    tlv_u64 (&b, QLEAN_GUEST_TAG_MTIME, (uint64_t) *mtime);
  if (flags)
    tlv_u32 (&b, QLEAN_GUEST_TAG_FLAGS, flags);
  send_frame (QLEAN_GUEST_FRAME_PUT, 0, id, b.p, b.len);
  buf_free (&b);
  memset (rep, 0, sizeof *rep);
  for (;;)
    {
      Frame *f;
      if (sent < n && avail > 0)
        {
          size_t c = n - sent;
          if (c > QLEAN_GUEST_MAX_PAYLOAD)
            c = QLEAN_GUEST_MAX_PAYLOAD;
          if (c > avail)
            c = (size_t) avail;
          send_frame (QLEAN_GUEST_FRAME_DATA, 0, id, data + sent, c);
          sent += c;
          avail -= c;
          if (sent == n)
            send_frame (QLEAN_GUEST_FRAME_EOF, 0, id, NULL, 0);
          f = next_frame (id, 0);
          if (!f)
            continue;
        }
      else if (n == 0 && sent == 0)
        {
          send_frame (QLEAN_GUEST_FRAME_EOF, 0, id, NULL, 0);
          sent = 1;   /* EOF sent */
          continue;
        }
      else if (!(f = next_frame (id, TIMEOUT)))
        return false;
      if (f->type == QLEAN_GUEST_FRAME_CREDIT)
        {
          avail += get_u32 (f->payload);
          credit += get_u32 (f->payload);
          free (f);
          continue;
        }
      if (f->type == QLEAN_GUEST_FRAME_DONE)
        {
          rep->done = true;
          buf_add (&rep->payload, f->payload, f->len);
        }
      else if (f->type == QLEAN_GUEST_FRAME_ERROR)
        {
          rep->error = true;
          rep->err = (int) get_u32 (f->payload);
          snprintf (rep->msg, sizeof rep->msg, "%.*s", (int) f->len - 4, f->payload + 4);
        }
      free (f);
      if (credit_out)
        *credit_out = credit;
      return true;
    }
}

typedef struct
{
  Reply  done;
  Buf    data;
  bool   eof;
  bool   order_ok;
} GetResult;

static bool get_file (const char *path, GetResult *g)
{
  Buf b = { 0 };
  uint32_t id = g_next++;

  memset (g, 0, sizeof *g);
  g->order_ok = true;
  tlv_str (&b, QLEAN_GUEST_TAG_PATH, path);
  send_frame (QLEAN_GUEST_FRAME_GET, 0, id, b.p, b.len);
  buf_free (&b);
  for (;;)
    {
      Frame *f = next_frame (id, TIMEOUT);
      if (!f)
        return false;
      switch (f->type)
        {
        case QLEAN_GUEST_FRAME_DONE:
          if (g->done.done)
            g->order_ok = false;
          g->done.done = true;
          buf_add (&g->done.payload, f->payload, f->len);
          break;
        case QLEAN_GUEST_FRAME_DATA:
          if (!g->done.done || f->fd != 1)
            g->order_ok = false;
          buf_add (&g->data, f->payload, f->len);
          break;
        case QLEAN_GUEST_FRAME_EOF:
          g->eof = true;
          free (f);
          return true;
        case QLEAN_GUEST_FRAME_ERROR:
          g->done.error = true;
          g->done.err = (int) get_u32 (f->payload);
          snprintf (g->done.msg, sizeof g->done.msg, "%.*s", (int) f->len - 4, f->payload + 4);
          free (f);
          return true;
        default:
          g->order_ok = false;
        }
      free (f);
    }
}

static bool read_local (const char *path, Buf *b)
{
  int fd = open (path, O_RDONLY);
  unsigned char tmp[65536];
  ssize_t n;
  if (fd < 0)
    return false;
  while ((n = read (fd, tmp, sizeof tmp)) > 0)
    buf_add (b, tmp, (size_t) n);
  close (fd);
  return n == 0;
}

static bool write_local (const char *path, const char *s)
{
  FILE *f = fopen (path, "w");
  if (!f)
    return false;
  fputs (s, f);
  return fclose (f) == 0;
}

static int count_entries (const char *dir, const char *prefix)
{
  DIR *d = opendir (dir);
  struct dirent *e;
  int n = 0;
  if (!d)
    return -1;
  while ((e = readdir (d)))
    if (strncmp (e->d_name, prefix, strlen (prefix)) == 0)
      n++;
  closedir (d);
  return n;
}

static int g_base_fds = -1;

static int count_fds (pid_t pid)
{
  char p[64];
  snprintf (p, sizeof p, "/proc/%d/fd", (int) pid);
  return count_entries (p, "") - 2;
}

static bool group_gone (pid_t pgid)
{
  for (int i = 0; i < 200; i++)
    {
      if (kill (-pgid, 0) < 0 && errno == ESRCH)
        return true;
      usleep (10000);
    }
  return false;
}

/* Whether process @pid, or one of its children, runs @comm now. */
static bool runs_program (pid_t pid, const char *comm)
{
  char path[64], text[4096];
  FILE *f;
  bool found = false;

  snprintf (path, sizeof path, "/proc/%d/comm", (int) pid);
  if ((f = fopen (path, "r")) != NULL)
    {
      found = fgets (text, sizeof text, f) && strncmp (text, comm, strlen (comm)) == 0;
      fclose (f);
    }
  snprintf (path, sizeof path, "/proc/%d/task/%d/children", (int) pid, (int) pid);
  if (!found && (f = fopen (path, "r")) != NULL)
    {
      if (fgets (text, sizeof text, f))
        for (char *tok = strtok (text, " \n"); tok && !found; tok = strtok (NULL, " \n"))
          found = runs_program ((pid_t) atoi (tok), comm);
      fclose (f);
    }
  return found;
}

/* Waits up to 5 s for runs_program (). */
static bool wait_runs_program (pid_t pid, const char *comm)
{
  for (int i = 0; i < 500; i++)
    {
      if (runs_program (pid, comm))
        return true;
      usleep (10000);
    }
  return false;
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                     */

static void test_hello (void)
{
  unsigned char junk[5000];
  unsigned char fake[HDR];
  Buf b = { 0 };
  Frame *f;

  /* Debris: random bytes, a bare magic, a header that claims too much,
   * and an EXEC from "an earlier host" that must not run. */
  rnd_fill (junk, sizeof junk);
  write_all (junk, sizeof junk);
  write_all ("QLN1", 4);
  put_u32 (fake, QLEAN_GUEST_MAGIC);
  fake[4] = QLEAN_GUEST_FRAME_DATA;
  fake[5] = 0;
  put_u16 (fake + 6, 0);
  put_u32 (fake + 8, 7);
  put_u32 (fake + 12, QLEAN_GUEST_MAX_PAYLOAD + 1);
  write_all (fake, HDR);
  tlv_str (&b, QLEAN_GUEST_TAG_ARG, "touch");
  tlv_str (&b, QLEAN_GUEST_TAG_ARG, tpath ("pre-hello"));
  send_frame (QLEAN_GUEST_FRAME_EXEC, 0, 999, b.p, b.len);
  buf_free (&b);
  write_all (junk, 3);  /* a partial frame's worth of trailing junk */

  {
    unsigned char n[8];
    put_u64 (n, 0x1122334455667788ull);
    send_frame (QLEAN_GUEST_FRAME_HELLO, 0, 0, n, 8);
  }
  f = next_frame (0, TIMEOUT);
  CHECK (f);
  CHECK (f->type == QLEAN_GUEST_FRAME_HELLO);
  CHECKF (f->len == 16, "len %u", f->len);
  CHECK (get_u64 (f->payload) == 0x1122334455667788ull);
  CHECK (get_u32 (f->payload + 8) == QLEAN_GUEST_VERSION);
  CHECKF (get_u32 (f->payload + 12) == (uint32_t) g_pid, "pid %u", get_u32 (f->payload + 12));
  free (f);
  /* A second HELLO works the same. */
  CHECK (hello (42));
  g_base_fds = count_fds (g_pid);
  /* Nothing came for the pre-HELLO EXEC, and it did not run. */
  pump (100);
  CHECK (next_frame (999, 0) == NULL);
  CHECK (access (tpath ("pre-hello"), F_OK) < 0);
}

static void test_exec_basic (void)
{
  const char *argv[] = { "sh", "-c", "echo hi; echo err >&2; exit 3", NULL };
  ExecOpts o = { .argv = argv };
  ExecResult r;

  CHECK (run_exec (&o, &r));
  CHECKF (!r.error, "%s", r.msg);
  CHECK (r.started && r.pid > 0);
  CHECK (r.order_ok);
  CHECK (r.eof1 && r.eof2);
  CHECKF (r.out.len == 3 && memcmp (r.out.p, "hi\n", 3) == 0, "stdout %.*s", (int) r.out.len, r.out.p);
  CHECKF (r.errb.len == 4 && memcmp (r.errb.p, "err\n", 4) == 0, "stderr %.*s", (int) r.errb.len, r.errb.p);
  CHECKF (r.status == (3 << 8), "status %#x", r.status);
  /* Reaped before EXIT: the pid is gone. */
  CHECK (kill ((pid_t) r.pid, 0) < 0 && errno == ESRCH);
  result_free (&r);
}

static void test_exec_merge (void)
{
  const char *argv[] = { "sh", "-c", "echo one; echo two >&2; echo three", NULL };
  ExecOpts o = { .argv = argv, .flags = QLEAN_GUEST_FLAG_MERGE_STDERR };
  ExecResult r;

  CHECK (run_exec (&o, &r));
  CHECK (r.order_ok && r.eof1 && !r.eof2 && r.errb.len == 0);
  CHECKF (r.out.len == 14 && memcmp (r.out.p, "one\ntwo\nthree\n", 14) == 0, "%.*s", (int) r.out.len, r.out.p);
  CHECK (exited_with (&r, 0));
  result_free (&r);
}

static void test_exec_live (void)
{
  const char *argv[] = { "sh", "-c", "echo a; sleep 1; echo b", NULL };
  ExecOpts o = { .argv = argv };
  ExecResult r;

  CHECK (run_exec (&o, &r));
  CHECK (exited_with (&r, 0));
  CHECK (r.out.len == 4 && memcmp (r.out.p, "a\nb\n", 4) == 0);
  CHECKF (r.n_data[1] == 2, "%d DATA frames", r.n_data[1]);
  CHECKF (r.last_data_us[1] - r.first_data_us[1] > 700000, "gap %lld us",
          (long long) (r.last_data_us[1] - r.first_data_us[1]));
  result_free (&r);
}

static void test_exec_signal (void)
{
  const char *argv[] = { "sleep", "100", NULL };
  const char *argv2[] = { "sh", "-c", "sleep 100 & sleep 100; echo never", NULL };
  ExecOpts o = { .argv = argv };
  ExecResult r;
  uint32_t id;
  Frame *f;
  unsigned char sig[4];
  int64_t t0;

  memset (&r, 0, sizeof r);
  r.order_ok = true;
  id = send_exec (&o);
  f = next_frame (id, TIMEOUT);
  CHECK (f);
  exec_frame (&r, f);
  CHECK (r.started);
  /* It leads its own process group. */
  CHECK (getpgid ((pid_t) r.pid) == (pid_t) r.pid);
  t0 = now_us ();
  put_u32 (sig, SIGKILL);
  send_frame (QLEAN_GUEST_FRAME_SIGNAL, 0, id, sig, 4);
  CHECK (collect (id, &r, TIMEOUT));
  CHECK (r.exited && WIFSIGNALED (r.status) && WTERMSIG (r.status) == SIGKILL);
  CHECK (r.eof1 && r.eof2 && r.order_ok);
  CHECK (now_us () - t0 < 5000000);
  CHECK (group_gone ((pid_t) r.pid));
  result_free (&r);

  /* The whole group gets it: a background child holding stdout too. */
  o.argv = argv2;
  memset (&r, 0, sizeof r);
  r.order_ok = true;
  id = send_exec (&o);
  f = next_frame (id, TIMEOUT);
  CHECK (f);
  exec_frame (&r, f);
  CHECK (r.started);
  usleep (200000);
  put_u32 (sig, SIGTERM);
  send_frame (QLEAN_GUEST_FRAME_SIGNAL, 0, id, sig, 4);
  CHECK (collect (id, &r, TIMEOUT));
  CHECKF (r.exited && WIFSIGNALED (r.status) && WTERMSIG (r.status) == SIGTERM, "status %#x", r.status);
  CHECK (r.out.len == 0);
  CHECK (group_gone ((pid_t) r.pid));
  result_free (&r);
}

/* Sends `n` bytes of stdin to stream `id`, respecting the window, while
 * collecting the stream into `r`. */
static bool feed_stdin (uint32_t id, const unsigned char *data, size_t n, ExecResult *r, uint64_t *max_unacked)
{
  size_t sent = 0;
  uint64_t avail = WINDOW, credited_before;
  bool eof_sent = false;

  *max_unacked = 0;
  for (;;)
    {
      Frame *f;
      if (!eof_sent && !r->exited && avail > 0)
        {
          size_t c = n - sent;
          if (c > 256 * 1024)
            c = 256 * 1024;
          if (c > avail)
            c = (size_t) avail;
          if (c)
            send_frame (QLEAN_GUEST_FRAME_DATA, 0, id, data + sent, c);
          sent += c;
          avail -= c;
          if (WINDOW - avail > *max_unacked)
            *max_unacked = WINDOW - avail;
          if (sent == n)
            {
              send_frame (QLEAN_GUEST_FRAME_EOF, 0, id, NULL, 0);
              eof_sent = true;
            }
          f = next_frame (id, 0);
        }
      else
        f = next_frame (id, TIMEOUT);
      if (!f && !eof_sent && !r->exited && avail > 0)
        continue;
      if (!f && !(f = next_frame (id, TIMEOUT)))
        return false;
      credited_before = r->credit;
      if (exec_frame (r, f))
        return true;
      avail += r->credit - credited_before;
    }
}

static void test_exec_stdin (void)
{
  const char *argv[] = { "cat", NULL };
  ExecOpts o = { .argv = argv, .flags = QLEAN_GUEST_FLAG_STDIN };
  size_t n = 10 * 1024 * 1024;
  unsigned char *data = malloc (n);
  ExecResult r;
  uint64_t max_unacked;
  uint32_t id;

  rnd_fill (data, n);
  memset (&r, 0, sizeof r);
  r.order_ok = true;
  id = send_exec (&o);
  CHECK (feed_stdin (id, data, n, &r, &max_unacked));
  CHECKF (!r.error, "%s", r.msg);
  CHECK (exited_with (&r, 0) && r.order_ok);
  CHECKF (r.out.len == n, "got %zu bytes", r.out.len);
  CHECK (memcmp (r.out.p, data, n) == 0);
  CHECKF (r.credit == n, "credited %llu", (unsigned long long) r.credit);
  CHECK (max_unacked <= WINDOW);
  result_free (&r);
  free (data);
}

static void test_exec_stdin_unread (void)
{
  /* head stops reading early: the rest is credited (and dropped), so
   * the host can finish sending without stalling. */
  const char *argv[] = { "head", "-c", "10", NULL };
  const char *argv2[] = { "true", NULL };
  ExecOpts o = { .argv = argv, .flags = QLEAN_GUEST_FLAG_STDIN };
  size_t n = 12 * 1024 * 1024;
  unsigned char *data = malloc (n);
  ExecResult r;
  uint64_t max_unacked;
  uint32_t id;

  rnd_fill (data, n);
  memset (&r, 0, sizeof r);
  r.order_ok = true;
  id = send_exec (&o);
  CHECK (feed_stdin (id, data, n, &r, &max_unacked));
  CHECK (exited_with (&r, 0) && r.order_ok);
  CHECK (r.out.len == 10 && memcmp (r.out.p, data, 10) == 0);
  result_free (&r);

  /* A process that never reads stdin at all, and no stdin data: EOF only. */
  o.argv = argv2;
  memset (&r, 0, sizeof r);
  r.order_ok = true;
  id = send_exec (&o);
  send_frame (QLEAN_GUEST_FRAME_EOF, 0, id, NULL, 0);
  CHECK (collect (id, &r, TIMEOUT));
  CHECK (exited_with (&r, 0));
  result_free (&r);

  /* Without FLAG_STDIN, stdin is /dev/null. */
  {
    const char *argv3[] = { "wc", "-c", NULL };
    ExecOpts o3 = { .argv = argv3 };
    CHECK (run_exec (&o3, &r));
    CHECK (exited_with (&r, 0) && r.out.len >= 2 && r.out.p[r.out.len - 2] == '0');
    result_free (&r);
  }
  free (data);
}

static void test_exec_errors (void)
{
  const char *argv[] = { "qlean-no-such-program", "x", NULL };
  const char *argv2[] = { "/nonexistent/bin/thing", NULL };
  const char *argv3[] = { tpath ("not-executable"), NULL };
  const char *argv4[] = { "pwd", NULL };
  ExecOpts o = { .argv = argv };
  ExecResult r;

  CHECK (run_exec (&o, &r));
  CHECK (!r.started && r.error);
  CHECKF (r.err == ENOENT, "errno %d", r.err);
  CHECKF (strstr (r.msg, "qlean-no-such-program"), "%s", r.msg);
  result_free (&r);

  o.argv = argv2;
  CHECK (run_exec (&o, &r));
  CHECK (!r.started && r.error && r.err == ENOENT);
  CHECK (strstr (r.msg, "/nonexistent/bin/thing"));
  result_free (&r);

  CHECK (write_local (argv3[0], "#!/bin/sh\necho no\n"));
  chmod (argv3[0], 0644);
  o.argv = argv3;
  CHECK (run_exec (&o, &r));
  CHECKF (!r.started && r.error && r.err == EACCES, "errno %d %s", r.err, r.msg);
  result_free (&r);

  o.argv = argv4;
  o.cwd = tpath ("no-such-dir");
  CHECK (run_exec (&o, &r));
  CHECK (!r.started && r.error && r.err == ENOENT);
  CHECKF (strstr (r.msg, "no-such-dir") && strstr (r.msg, "directory"), "%s", r.msg);
  result_free (&r);
}

/* QLEAN_GUEST_TRACE (set for the whole run, see main()): each EXEC
 * appends "id received spawned reaped queued sent", in nanoseconds of
 * the guest's CLOCK_MONOTONIC, once its EXIT is out. */
static void test_exec_trace (void)
{
  const char *argv[] = { "/bin/true", NULL };
  ExecOpts o = { .argv = argv };
  ExecResult r;
  char path[PATH_MAX];
  Buf b = { 0 };
  unsigned id = 0;
  long long t[5];
  const char *line;
  int64_t deadline;

  snprintf (path, sizeof path, "%s/trace", g_dir);
  CHECK (run_exec (&o, &r) && exited_with (&r, 0));
  result_free (&r);
  /* The line is written right after EXIT left: it may trail our read. */
  for (deadline = now_us () + 2000000;; usleep (10000))
    {
      buf_free (&b);
      memset (&b, 0, sizeof b);
      CHECK (read_local (path, &b));
      buf_add (&b, "", 1);
      /* The last line, without its newline. */
      if (b.len > 1 && b.p[b.len - 2] == '\n')
        b.p[b.len - 2] = 0;
      line = strrchr ((const char *) b.p, '\n');
      line = line ? line + 1 : (const char *) b.p;
      if (sscanf (line, "%u", &id) == 1 && id == g_next - 1)
        break;
      if (now_us () >= deadline)
        break;
    }
  CHECKF (sscanf (line, "%u %lld %lld %lld %lld %lld", &id, &t[0], &t[1], &t[2], &t[3], &t[4]) == 6,
          "last trace line: %s", line);
  CHECKF (id == g_next - 1, "trace line for stream %u, the EXEC was %u", id, g_next - 1);
  for (int i = 0; i < 5; i++)
    CHECKF (t[i] > 0 && (i == 0 || t[i] >= t[i - 1]), "step %d: %s", i, line);
  buf_free (&b);
}

static void test_exec_env (void)
{
  const char *argv_env[] = { "env", NULL };
  const char *env1[] = { "A=1", "B=two words", NULL };
  const char *argv_sh[] = { "sh", "-c", "printf '%s|%s|%s' \"$FOO\" \"$QLEAN_TEST_MARK\" \"$(pwd)\"", NULL };
  const char *env2[] = { "FOO=bar", "FOO=baz", NULL };
  const char *env3[] = { "QLEAN_TEST_MARK", NULL };   /* no '=': unset */
  ExecOpts o = { .argv = argv_env, .env = env1, .flags = QLEAN_GUEST_FLAG_CLEAR_ENV };
  ExecResult r;
  char expect[512];

  /* FLAG_CLEAR_ENV: exactly ENV, plus the default PATH. */
  CHECK (run_exec (&o, &r));
  CHECK (exited_with (&r, 0));
  snprintf (expect, sizeof expect,
            "A=1\nB=two words\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n");
  CHECKF (r.out.len == strlen (expect) && memcmp (r.out.p, expect, r.out.len) == 0, "%.*s",
          (int) r.out.len, r.out.p);
  result_free (&r);

  /* Our environment plus ENV (the last one wins), in CWD. */
  mkdir (tpath ("cwd"), 0755);
  o.argv = argv_sh;
  o.env = env2;
  o.flags = 0;
  o.cwd = tpath ("cwd");
  CHECK (run_exec (&o, &r));
  CHECK (exited_with (&r, 0));
  snprintf (expect, sizeof expect, "baz|inherited-from-guest|%s", tpath ("cwd"));
  CHECKF (r.out.len == strlen (expect) && memcmp (r.out.p, expect, r.out.len) == 0, "%.*s",
          (int) r.out.len, r.out.p);
  result_free (&r);

  /* Without CWD the process runs in "/"; ENV without '=' unsets. */
  o.env = env3;
  o.cwd = NULL;
  CHECK (run_exec (&o, &r));
  CHECKF (r.out.len == 3 && memcmp (r.out.p, "||/", 3) == 0, "%.*s", (int) r.out.len, r.out.p);
  result_free (&r);

  /* The PATH search uses the process's own PATH, and a file without a
   * #! line runs through /bin/sh (like execvp). */
  {
    char penv[PATH_MAX + 8];
    const char *env4[] = { penv, NULL };
    const char *argv4[] = { "qlean-test-script", "arg1", NULL };
    mkdir (tpath ("bin"), 0755);
    CHECK (write_local (tpath ("bin/qlean-test-script"), "echo \"script $1\"\n"));
    chmod (tpath ("bin/qlean-test-script"), 0755);
    snprintf (penv, sizeof penv, "PATH=/nonexistent:%s:/usr/bin:/bin", tpath ("bin"));
    o.argv = argv4;
    o.env = env4;
    CHECK (run_exec (&o, &r));
    CHECKF (!r.error, "%s", r.msg);
    CHECK (exited_with (&r, 0));
    CHECKF (r.out.len == 12 && memcmp (r.out.p, "script arg1\n", 12) == 0, "%.*s", (int) r.out.len, r.out.p);
    result_free (&r);
  }
}

static void test_exec_user (void)
{
  const char *argv[] = { "sh", "-c", "id -u; id -g; echo \"$HOME|$USER|$LOGNAME\"", NULL };
  ExecOpts o = { .argv = argv, .user = "nobody" };
  ExecResult r;
  char expect[256];

  if (geteuid () != 0)
    SKIP ("not root");
  {
    /* The program parses /etc/passwd itself; check there is a nobody. */
    Buf pw = { 0 };
    bool ok = read_local ("/etc/passwd", &pw) && pw.len > 0
              && (memcmp (pw.p, "nobody:x:65534:", 15) == 0 || memmem (pw.p, pw.len, "\nnobody:x:65534:", 16));
    buf_free (&pw);
    if (!ok)
      SKIP ("no nobody:x:65534 in /etc/passwd");
  }
  CHECK (run_exec (&o, &r));
  CHECKF (!r.error, "%s", r.msg);
  CHECK (exited_with (&r, 0));
  CHECKF (r.out.len > 6 && memcmp (r.out.p, "65534\n", 6) == 0, "%.*s", (int) r.out.len, r.out.p);
  CHECKF (memmem (r.out.p, r.out.len, "|nobody|nobody", 14), "%.*s", (int) r.out.len, r.out.p);
  result_free (&r);

  /* A numeric uid without a passwd entry: gid = uid. */
  o.user = "12345";
  CHECK (run_exec (&o, &r));
  CHECK (exited_with (&r, 0));
  snprintf (expect, sizeof expect, "12345\n12345\n/|12345|12345\n");
  CHECKF (r.out.len == strlen (expect) && memcmp (r.out.p, expect, r.out.len) == 0, "%.*s",
          (int) r.out.len, r.out.p);
  result_free (&r);

  /* "0" is root, by number. */
  o.user = "0";
  CHECK (run_exec (&o, &r));
  CHECK (exited_with (&r, 0) && r.out.len > 2 && memcmp (r.out.p, "0\n0\n", 4) == 0);
  result_free (&r);

  o.user = "qlean-no-such-user";
  CHECK (run_exec (&o, &r));
  CHECK (!r.started && r.error && r.err == ENOENT && strstr (r.msg, "qlean-no-such-user"));
  result_free (&r);
}

static void test_put_get (void)
{
  size_t n = 3 * 1024 * 1024 + 12345;
  unsigned char *data = malloc (n);
  int64_t mtime = 1234567890123456789ll;
  Reply rep;
  GetResult g;
  struct stat st;
  Buf local = { 0 };
  const unsigned char *v;
  uint32_t vl;
  uint64_t credit = 0;
  const char *path = tpath ("put-get.bin");

  rnd_fill (data, n);
  CHECK (put_file (path, data, n, 0640, &mtime, 0, &rep, &credit));
  CHECKF (fs_ok (&rep), "%d %s", rep.err, rep.msg);
  CHECK (find_tlv (&rep.payload, QLEAN_GUEST_TAG_SIZE, &v, &vl) && vl == 8 && get_u64 (v) == n);
  CHECK (credit == n);
  buf_free (&rep.payload);
  CHECK (stat (path, &st) == 0);
  CHECKF ((st.st_mode & 07777) == 0640, "mode %o", st.st_mode & 07777);
  CHECK ((int64_t) st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec == mtime);
  CHECK ((size_t) st.st_size == n);
  CHECK (read_local (path, &local) && local.len == n && memcmp (local.p, data, n) == 0);
  buf_free (&local);
  CHECK (count_entries (g_dir, ".qlean-put-") == 0);

  CHECK (get_file (path, &g));
  CHECKF (!g.done.error, "%s", g.done.msg);
  CHECK (g.done.done && g.eof && g.order_ok);
  CHECK (find_tlv (&g.done.payload, QLEAN_GUEST_TAG_SIZE, &v, &vl) && vl == 8 && get_u64 (v) == n);
  CHECK (find_tlv (&g.done.payload, QLEAN_GUEST_TAG_MODE, &v, &vl) && vl == 4 && get_u32 (v) == 0640);
  CHECK (find_tlv (&g.done.payload, QLEAN_GUEST_TAG_MTIME, &v, &vl) && vl == 8 && (int64_t) get_u64 (v) == mtime);
  CHECK (g.data.len == n && memcmp (g.data.p, data, n) == 0);
  buf_free (&g.data);
  buf_free (&g.done.payload);

  /* Over an existing file, default mode 0644, an empty file. */
  CHECK (put_file (path, data, 0, -1, NULL, 0, &rep, NULL));
  CHECKF (fs_ok (&rep), "%s", rep.msg);
  buf_free (&rep.payload);
  CHECK (stat (path, &st) == 0 && st.st_size == 0 && (st.st_mode & 07777) == 0644);
  CHECK (get_file (path, &g));
  CHECK (g.done.done && g.eof && g.data.len == 0);
  buf_free (&g.done.payload);

  /* GET follows symlinks. */
  CHECK (write_local (tpath ("get-target"), "via link\n"));
  CHECK (symlink (tpath ("get-target"), tpath ("get-link")) == 0);
  CHECK (get_file (tpath ("get-link"), &g));
  CHECK (g.eof && g.data.len == 9 && memcmp (g.data.p, "via link\n", 9) == 0);
  buf_free (&g.data);
  buf_free (&g.done.payload);
  free (data);
}

static void test_put_errors (void)
{
  unsigned char data[100] = "hello";
  Reply rep;
  GetResult g;
  struct stat st;
  uint32_t id;
  Buf b = { 0 };
  Frame *f;

  /* A missing parent: ENOENT, unless FLAG_PARENTS. */
  CHECK (put_file (tpath ("a/b/c/file"), data, 5, -1, NULL, 0, &rep, NULL));
  CHECKF (fs_err (&rep, ENOENT), "%d %s", rep.err, rep.msg);
  CHECK (put_file (tpath ("a/b/c/file"), data, 5, -1, NULL, QLEAN_GUEST_FLAG_PARENTS, &rep, NULL));
  CHECKF (fs_ok (&rep), "%s", rep.msg);
  buf_free (&rep.payload);
  CHECK (stat (tpath ("a/b/c/file"), &st) == 0 && st.st_size == 5);
  CHECK (stat (tpath ("a/b"), &st) == 0 && (st.st_mode & 07777) == 0755);
  /* A parent that is a file: ENOTDIR. */
  CHECK (put_file (tpath ("a/b/c/file/x"), data, 5, -1, NULL, QLEAN_GUEST_FLAG_PARENTS, &rep, NULL));
  CHECKF (rep.error && (rep.err == ENOTDIR || rep.err == EEXIST), "%d %s", rep.err, rep.msg);
  /* Onto a directory: EISDIR, before any data. */
  CHECK (put_file (tpath ("a/b"), data, 5, -1, NULL, 0, &rep, NULL));
  CHECKF (fs_err (&rep, EISDIR), "%d %s", rep.err, rep.msg);
  CHECK (count_entries (tpath ("a"), ".qlean-put-") == 0);

  /* SIGNAL cancels a PUT: ERROR ECANCELED, no temporary file left, the
   * old contents stay. */
  id = g_next++;
  tlv_str (&b, QLEAN_GUEST_TAG_PATH, tpath ("a/b/c/file"));
  send_frame (QLEAN_GUEST_FRAME_PUT, 0, id, b.p, b.len);
  buf_free (&b);
  send_frame (QLEAN_GUEST_FRAME_DATA, 0, id, "partial", 7);
  pump (200);
  CHECK (count_entries (tpath ("a/b/c"), ".qlean-put-") == 1);
  {
    unsigned char sig[4];
    put_u32 (sig, SIGTERM);
    send_frame (QLEAN_GUEST_FRAME_SIGNAL, 0, id, sig, 4);
  }
  for (;;)
    {
      f = next_frame (id, TIMEOUT);
      CHECK (f);
      if (f->type != QLEAN_GUEST_FRAME_CREDIT)
        break;
      free (f);
    }
  CHECKF (f->type == QLEAN_GUEST_FRAME_ERROR && get_u32 (f->payload) == ECANCELED, "type %u", f->type);
  free (f);
  CHECK (count_entries (tpath ("a/b/c"), ".qlean-put-") == 0);
  CHECK (stat (tpath ("a/b/c/file"), &st) == 0 && st.st_size == 5);

  /* GET errors. */
  CHECK (get_file (tpath ("a/b"), &g));
  CHECKF (g.done.error && g.done.err == EISDIR && !g.done.done, "%d", g.done.err);
  CHECK (get_file (tpath ("missing"), &g));
  CHECK (g.done.error && g.done.err == ENOENT && strstr (g.done.msg, "missing"));
}

static bool stat_matches (const unsigned char *v, const struct stat *st)
{
  return get_u64 (v) == (uint64_t) st->st_ino
         && get_u64 (v + 8) == (uint64_t) st->st_size
         && get_u32 (v + 16) == (uint32_t) st->st_mode
         && get_u32 (v + 20) == (uint32_t) st->st_uid
         && get_u32 (v + 24) == (uint32_t) st->st_gid
         && get_u32 (v + 28) == (uint32_t) st->st_nlink
         && (int64_t) get_u64 (v + 40) == (int64_t) st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec
         && (int64_t) get_u64 (v + 48) == (int64_t) st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
}

static void test_fs_stat (void)
{
  Reply rep;
  struct stat st;
  const unsigned char *v;
  uint32_t vl;

  CHECK (write_local (tpath ("st-file"), "12345"));
  CHECK (symlink ("st-file", tpath ("st-link")) == 0);

  CHECK (fs (QLEAN_GUEST_FS_STAT, tpath ("st-file"), NULL, -1, 0, NULL, &rep));
  CHECK (fs_ok (&rep));
  CHECK (lstat (tpath ("st-file"), &st) == 0);
  CHECK (find_tlv (&rep.payload, QLEAN_GUEST_TAG_STAT, &v, &vl) && vl == QLEAN_GUEST_STAT_SIZE);
  CHECK (stat_matches (v, &st));
  CHECK (!find_tlv (&rep.payload, QLEAN_GUEST_TAG_TARGET, &v, &vl));
  buf_free (&rep.payload);

  /* Following the link: the file's stat. */
  CHECK (fs (QLEAN_GUEST_FS_STAT, tpath ("st-link"), NULL, -1, 0, NULL, &rep));
  CHECK (fs_ok (&rep) && find_tlv (&rep.payload, QLEAN_GUEST_TAG_STAT, &v, &vl) && stat_matches (v, &st));
  buf_free (&rep.payload);

  /* NOFOLLOW: the link's, with its target. */
  CHECK (fs (QLEAN_GUEST_FS_STAT, tpath ("st-link"), NULL, -1, QLEAN_GUEST_FLAG_NOFOLLOW, NULL, &rep));
  CHECK (lstat (tpath ("st-link"), &st) == 0);
  CHECK (fs_ok (&rep) && find_tlv (&rep.payload, QLEAN_GUEST_TAG_STAT, &v, &vl) && stat_matches (v, &st));
  CHECK (S_ISLNK (get_u32 (v + 16)));
  CHECK (find_tlv (&rep.payload, QLEAN_GUEST_TAG_TARGET, &v, &vl) && vl == 7 && memcmp (v, "st-file", 7) == 0);
  buf_free (&rep.payload);

  CHECK (fs (QLEAN_GUEST_FS_STAT, tpath ("nope"), NULL, -1, 0, NULL, &rep));
  CHECKF (fs_err (&rep, ENOENT) && strstr (rep.msg, "nope"), "%d %s", rep.err, rep.msg);
  /* A dangling link: ENOENT when following, fine when not. */
  CHECK (symlink ("nowhere", tpath ("dangling")) == 0);
  CHECK (fs (QLEAN_GUEST_FS_STAT, tpath ("dangling"), NULL, -1, 0, NULL, &rep));
  CHECK (fs_err (&rep, ENOENT));
  CHECK (fs (QLEAN_GUEST_FS_STAT, tpath ("dangling"), NULL, -1, QLEAN_GUEST_FLAG_NOFOLLOW, NULL, &rep));
  CHECK (fs_ok (&rep));
  buf_free (&rep.payload);
  /* Relative paths are relative to "/". */
  CHECK (fs (QLEAN_GUEST_FS_STAT, g_dir + 1, NULL, -1, 0, NULL, &rep));
  CHECK (fs_ok (&rep));
  buf_free (&rep.payload);
}

static void test_fs_readdir (void)
{
  Reply rep;
  const char *weird[] = { "plain", "-leading-dash", "new\nline", "\xff\xfe-not-utf8", "sp ace", NULL };
  bool seen[5] = { false };
  size_t off = 0;
  int n = 0;

  CHECK (mkdir (tpath ("rd"), 0755) == 0);
  for (int i = 0; weird[i]; i++)
    CHECK (write_local (tpath ("rd/%s", weird[i]), "x"));
  CHECK (mkdir (tpath ("rd/sub"), 0755) == 0);
  CHECK (symlink ("sub", tpath ("rd/link")) == 0);

  CHECK (fs (QLEAN_GUEST_FS_READDIR, tpath ("rd"), NULL, -1, 0, NULL, &rep));
  CHECK (fs_ok (&rep));
  while (off + 6 <= rep.payload.len)
    {
      uint16_t tag = get_u16 (rep.payload.p + off);
      uint32_t len = get_u32 (rep.payload.p + off + 2);
      const unsigned char *v = rep.payload.p + off + 6;
      char name[512];
      CHECK (tag == QLEAN_GUEST_TAG_DIRENT && len > QLEAN_GUEST_STAT_SIZE && off + 6 + len <= rep.payload.len);
      snprintf (name, sizeof name, "%.*s", (int) (len - QLEAN_GUEST_STAT_SIZE), v + QLEAN_GUEST_STAT_SIZE);
      CHECK (strcmp (name, ".") != 0 && strcmp (name, "..") != 0);
      for (int i = 0; weird[i]; i++)
        if (strcmp (name, weird[i]) == 0)
          seen[i] = true;
      if (strcmp (name, "link") == 0)
        CHECK (S_ISLNK (get_u32 (v + 16)));   /* lstat, not stat */
      if (strcmp (name, "sub") == 0)
        CHECK (S_ISDIR (get_u32 (v + 16)));
      n++;
      off += 6 + len;
    }
  CHECK (off == rep.payload.len);
  CHECKF (n == 7, "%d entries", n);
  for (int i = 0; weird[i]; i++)
    CHECKF (seen[i], "missing entry %d", i);
  buf_free (&rep.payload);

  CHECK (fs (QLEAN_GUEST_FS_READDIR, tpath ("rd/nope"), NULL, -1, 0, NULL, &rep));
  CHECK (fs_err (&rep, ENOENT));
  CHECK (fs (QLEAN_GUEST_FS_READDIR, tpath ("rd/plain"), NULL, -1, 0, NULL, &rep));
  CHECK (fs_err (&rep, ENOTDIR));
}

static void test_fs_readdir_big (void)
{
  /* More entries than fit in one frame: DATA fd 1 frames, then DONE. */
  Reply rep;
  int want = 16000, n = 0;
  size_t off = 0;
  char name[300];
  char *seen;

  CHECK (mkdir (tpath ("big"), 0755) == 0);
  for (int i = 0; i < want; i++)
    {
      int fd;
      snprintf (name, sizeof name, "%s/entry-%06d-%s", tpath ("big"), i,
                "padding-padding-padding-padding-padding-padding");
      fd = open (name, O_CREAT | O_WRONLY, 0644);
      CHECK (fd >= 0);
      close (fd);
    }
  CHECK (fs (QLEAN_GUEST_FS_READDIR, tpath ("big"), NULL, -1, 0, NULL, &rep));
  CHECK (fs_ok (&rep));
  CHECKF (rep.n_data >= 1, "%d DATA frames", rep.n_data);
  seen = calloc ((size_t) want, 1);
  while (off + 6 <= rep.payload.len)
    {
      uint32_t len = get_u32 (rep.payload.p + off + 2);
      char entry[64];
      int i;
      CHECK (get_u16 (rep.payload.p + off) == QLEAN_GUEST_TAG_DIRENT);
      /* The name is not NUL-terminated: sscanf must not read past it. */
      CHECK (len >= QLEAN_GUEST_STAT_SIZE && len - QLEAN_GUEST_STAT_SIZE < sizeof entry);
      memcpy (entry, rep.payload.p + off + 6 + QLEAN_GUEST_STAT_SIZE, len - QLEAN_GUEST_STAT_SIZE);
      entry[len - QLEAN_GUEST_STAT_SIZE] = '\0';
      CHECK (sscanf (entry, "entry-%d", &i) == 1);
      CHECK (i >= 0 && i < want && !seen[i]);
      seen[i] = 1;
      n++;
      off += 6 + len;
    }
  CHECK (off == rep.payload.len);
  CHECKF (n == want, "%d entries", n);
  free (seen);
  buf_free (&rep.payload);
}

static void test_fs_mkdir (void)
{
  Reply rep;
  struct stat st;

  CHECK (fs (QLEAN_GUEST_FS_MKDIR, tpath ("md"), NULL, 0700, 0, NULL, &rep));
  CHECK (fs_ok (&rep));
  CHECK (stat (tpath ("md"), &st) == 0 && S_ISDIR (st.st_mode) && (st.st_mode & 07777) == 0700);
  /* Exists: EEXIST without PARENTS, fine with, EEXIST with EXCLUSIVE. */
  CHECK (fs (QLEAN_GUEST_FS_MKDIR, tpath ("md"), NULL, -1, 0, NULL, &rep));
  CHECK (fs_err (&rep, EEXIST));
  CHECK (fs (QLEAN_GUEST_FS_MKDIR, tpath ("md"), NULL, -1, QLEAN_GUEST_FLAG_PARENTS, NULL, &rep));
  CHECK (fs_ok (&rep));
  CHECK (fs (QLEAN_GUEST_FS_MKDIR, tpath ("md"), NULL, -1, QLEAN_GUEST_FLAG_PARENTS | QLEAN_GUEST_FLAG_EXCLUSIVE,
             NULL, &rep));
  CHECK (fs_err (&rep, EEXIST));
  /* A file there is EEXIST even with PARENTS. */
  CHECK (write_local (tpath ("md-file"), "x"));
  CHECK (fs (QLEAN_GUEST_FS_MKDIR, tpath ("md-file"), NULL, -1, QLEAN_GUEST_FLAG_PARENTS, NULL, &rep));
  CHECK (fs_err (&rep, EEXIST));
  /* Missing parents. */
  CHECK (fs (QLEAN_GUEST_FS_MKDIR, tpath ("md/x/y/z"), NULL, -1, 0, NULL, &rep));
  CHECK (fs_err (&rep, ENOENT));
  CHECK (fs (QLEAN_GUEST_FS_MKDIR, tpath ("md/x/y/z/"), NULL, 0750, QLEAN_GUEST_FLAG_PARENTS, NULL, &rep));
  CHECKF (fs_ok (&rep), "%s", rep.msg);
  CHECK (stat (tpath ("md/x/y/z"), &st) == 0 && (st.st_mode & 07777) == 0750);
  CHECK (stat (tpath ("md/x"), &st) == 0 && (st.st_mode & 07777) == 0755);
  /* Default mode 0755, exact (no umask). */
  CHECK (fs (QLEAN_GUEST_FS_MKDIR, tpath ("md/default"), NULL, -1, 0, NULL, &rep));
  CHECK (stat (tpath ("md/default"), &st) == 0 && (st.st_mode & 07777) == 0755);
  CHECK (fs (QLEAN_GUEST_FS_MKDIR, tpath ("md/open"), NULL, 0777, 0, NULL, &rep));
  CHECK (stat (tpath ("md/open"), &st) == 0 && (st.st_mode & 07777) == 0777);
  /* Below a file: ENOTDIR. */
  CHECK (fs (QLEAN_GUEST_FS_MKDIR, tpath ("md-file/sub"), NULL, -1, QLEAN_GUEST_FLAG_PARENTS, NULL, &rep));
  CHECK (fs_err (&rep, ENOTDIR));
}

static void test_fs_remove (void)
{
  Reply rep;
  struct stat st;

  /* UNLINK */
  CHECK (write_local (tpath ("rm-file"), "x"));
  CHECK (fs (QLEAN_GUEST_FS_UNLINK, tpath ("rm-file"), NULL, -1, 0, NULL, &rep));
  CHECK (fs_ok (&rep) && access (tpath ("rm-file"), F_OK) < 0);
  CHECK (fs (QLEAN_GUEST_FS_UNLINK, tpath ("rm-file"), NULL, -1, 0, NULL, &rep));
  CHECK (fs_err (&rep, ENOENT));
  CHECK (mkdir (tpath ("rm-dir"), 0755) == 0);
  CHECK (fs (QLEAN_GUEST_FS_UNLINK, tpath ("rm-dir"), NULL, -1, 0, NULL, &rep));
  CHECKF (fs_err (&rep, EISDIR), "%d", rep.err);

  /* RMDIR */
  CHECK (write_local (tpath ("rm-dir/f"), "x"));
  CHECK (fs (QLEAN_GUEST_FS_RMDIR, tpath ("rm-dir"), NULL, -1, 0, NULL, &rep));
  CHECK (fs_err (&rep, ENOTEMPTY));
  CHECK (unlink (tpath ("rm-dir/f")) == 0);
  CHECK (fs (QLEAN_GUEST_FS_RMDIR, tpath ("rm-dir"), NULL, -1, 0, NULL, &rep));
  CHECK (fs_ok (&rep) && access (tpath ("rm-dir"), F_OK) < 0);

  /* REMOVE_ALL: a tree with links out of it, which must not be followed. */
  CHECK (mkdir (tpath ("outside"), 0755) == 0);
  CHECK (write_local (tpath ("outside/keep"), "keep"));
  CHECK (mkdir (tpath ("tree"), 0755) == 0);
  CHECK (mkdir (tpath ("tree/d1"), 0755) == 0);
  CHECK (mkdir (tpath ("tree/d1/d2"), 0700) == 0);
  CHECK (write_local (tpath ("tree/d1/d2/f"), "x"));
  CHECK (write_local (tpath ("tree/f"), "x"));
  CHECK (symlink (tpath ("outside"), tpath ("tree/link-to-dir")) == 0);
  CHECK (symlink (tpath ("outside"), tpath ("tree/d1/d2/link2")) == 0);
  CHECK (mkfifo (tpath ("tree/fifo"), 0644) == 0);
  CHECK (chmod (tpath ("tree/d1"), 0500) == 0);   /* root can still remove from it */
  CHECK (fs (QLEAN_GUEST_FS_REMOVE_ALL, tpath ("tree"), NULL, -1, 0, NULL, &rep));
  CHECKF (fs_ok (&rep), "%d %s", rep.err, rep.msg);
  CHECK (lstat (tpath ("tree"), &st) < 0 && errno == ENOENT);
  CHECK (stat (tpath ("outside/keep"), &st) == 0);
  CHECK (fs (QLEAN_GUEST_FS_REMOVE_ALL, tpath ("tree"), NULL, -1, 0, NULL, &rep));
  CHECK (fs_err (&rep, ENOENT));
  /* A symlink to a directory goes as a link. */
  CHECK (symlink (tpath ("outside"), tpath ("top-link")) == 0);
  CHECK (fs (QLEAN_GUEST_FS_REMOVE_ALL, tpath ("top-link"), NULL, -1, 0, NULL, &rep));
  CHECK (fs_ok (&rep));
  CHECK (lstat (tpath ("top-link"), &st) < 0 && stat (tpath ("outside/keep"), &st) == 0);
  /* A plain file. */
  CHECK (fs (QLEAN_GUEST_FS_REMOVE_ALL, tpath ("outside/keep"), NULL, -1, 0, NULL, &rep));
  CHECK (fs_ok (&rep) && access (tpath ("outside/keep"), F_OK) < 0);
}

static void test_fs_links (void)
{
  Reply rep;
  struct stat st;
  const unsigned char *v;
  uint32_t vl;

  /* RENAME */
  CHECK (write_local (tpath ("ren-a"), "abc"));
  CHECK (fs (QLEAN_GUEST_FS_RENAME, tpath ("ren-a"), tpath ("ren-b"), -1, 0, NULL, &rep));
  CHECK (fs_ok (&rep) && access (tpath ("ren-a"), F_OK) < 0 && access (tpath ("ren-b"), F_OK) == 0);
  CHECK (fs (QLEAN_GUEST_FS_RENAME, tpath ("ren-a"), tpath ("ren-c"), -1, 0, NULL, &rep));
  CHECKF (fs_err (&rep, ENOENT) && strstr (rep.msg, "ren-a") && strstr (rep.msg, "ren-c"), "%s", rep.msg);

  /* LINK: PATH2 becomes a hard link to PATH. */
  CHECK (fs (QLEAN_GUEST_FS_LINK, tpath ("ren-b"), tpath ("hard"), -1, 0, NULL, &rep));
  CHECK (fs_ok (&rep));
  CHECK (stat (tpath ("hard"), &st) == 0 && st.st_nlink == 2);
  CHECK (fs (QLEAN_GUEST_FS_LINK, tpath ("ren-b"), tpath ("hard"), -1, 0, NULL, &rep));
  CHECK (fs_err (&rep, EEXIST));

  /* SYMLINK: PATH2 becomes a symlink whose target is PATH (verbatim). */
  CHECK (fs (QLEAN_GUEST_FS_SYMLINK, "../some/where", tpath ("soft"), -1, 0, NULL, &rep));
  CHECK (fs_ok (&rep));
  {
    char t[64];
    ssize_t n = readlink (tpath ("soft"), t, sizeof t);
    CHECK (n == 13 && memcmp (t, "../some/where", 13) == 0);
  }
  CHECK (fs (QLEAN_GUEST_FS_SYMLINK, "x", tpath ("soft"), -1, 0, NULL, &rep));
  CHECK (fs_err (&rep, EEXIST));

  /* READLINK */
  CHECK (fs (QLEAN_GUEST_FS_READLINK, tpath ("soft"), NULL, -1, 0, NULL, &rep));
  CHECK (fs_ok (&rep) && find_tlv (&rep.payload, QLEAN_GUEST_TAG_TARGET, &v, &vl) && vl == 13
         && memcmp (v, "../some/where", 13) == 0);
  buf_free (&rep.payload);
  CHECK (fs (QLEAN_GUEST_FS_READLINK, tpath ("hard"), NULL, -1, 0, NULL, &rep));
  CHECK (fs_err (&rep, EINVAL));
  {
    /* A long target. */
    char longt[3000];
    memset (longt, 'a', sizeof longt - 1);
    longt[sizeof longt - 1] = 0;
    CHECK (symlink (longt, tpath ("long-link")) == 0);
    CHECK (fs (QLEAN_GUEST_FS_READLINK, tpath ("long-link"), NULL, -1, 0, NULL, &rep));
    CHECK (fs_ok (&rep) && find_tlv (&rep.payload, QLEAN_GUEST_TAG_TARGET, &v, &vl) && vl == sizeof longt - 1);
    buf_free (&rep.payload);
  }

  /* CHMOD */
  CHECK (fs (QLEAN_GUEST_FS_CHMOD, tpath ("ren-b"), NULL, 04751, 0, NULL, &rep));
  CHECK (fs_ok (&rep));
  CHECK (stat (tpath ("ren-b"), &st) == 0 && (st.st_mode & 07777) == 04751);
  CHECK (fs (QLEAN_GUEST_FS_CHMOD, tpath ("nope"), NULL, 0644, 0, NULL, &rep));
  CHECK (fs_err (&rep, ENOENT));
  CHECK (fs (QLEAN_GUEST_FS_CHMOD, tpath ("ren-b"), NULL, -1, 0, NULL, &rep));
  CHECK (fs_err (&rep, EINVAL));
}

static void test_fs_copy_utime (void)
{
  Reply rep;
  struct stat st, st2;
  const unsigned char *v;
  uint32_t vl;
  size_t n = 2 * 1024 * 1024 + 7;
  unsigned char *data = malloc (n);
  Buf local = { 0 };
  int64_t mt = 1000000000ll * 1500000000 + 123;
  int fd;

  rnd_fill (data, n);
  fd = open (tpath ("cp-src"), O_CREAT | O_WRONLY | O_TRUNC, 0600);
  CHECK (fd >= 0 && write (fd, data, n) == (ssize_t) n);
  close (fd);
  CHECK (chmod (tpath ("cp-src"), 0751) == 0);

  CHECK (fs (QLEAN_GUEST_FS_COPY, tpath ("cp-src"), tpath ("cp-dst"), -1, 0, NULL, &rep));
  CHECKF (fs_ok (&rep), "%s", rep.msg);
  CHECK (find_tlv (&rep.payload, QLEAN_GUEST_TAG_SIZE, &v, &vl) && vl == 8 && get_u64 (v) == n);
  buf_free (&rep.payload);
  CHECK (stat (tpath ("cp-dst"), &st) == 0 && (st.st_mode & 07777) == 0751 && (size_t) st.st_size == n);
  CHECK (read_local (tpath ("cp-dst"), &local) && local.len == n && memcmp (local.p, data, n) == 0);
  buf_free (&local);
  /* Over an existing, longer file: truncated; onto itself: refused. */
  CHECK (write_local (tpath ("cp-small"), "small"));
  CHECK (fs (QLEAN_GUEST_FS_COPY, tpath ("cp-small"), tpath ("cp-dst"), -1, 0, NULL, &rep));
  CHECK (fs_ok (&rep));
  buf_free (&rep.payload);
  CHECK (stat (tpath ("cp-dst"), &st) == 0 && st.st_size == 5);
  CHECK (fs (QLEAN_GUEST_FS_COPY, tpath ("cp-src"), tpath ("cp-src"), -1, 0, NULL, &rep));
  CHECK (rep.error);
  CHECK (stat (tpath ("cp-src"), &st) == 0 && (size_t) st.st_size == n);
  CHECK (fs (QLEAN_GUEST_FS_COPY, tpath ("nope"), tpath ("cp-x"), -1, 0, NULL, &rep));
  CHECK (fs_err (&rep, ENOENT));
  CHECK (mkdir (tpath ("cp-dir"), 0755) == 0);
  CHECK (fs (QLEAN_GUEST_FS_COPY, tpath ("cp-dir"), tpath ("cp-x"), -1, 0, NULL, &rep));
  CHECK (fs_err (&rep, EISDIR));
  CHECK (fs (QLEAN_GUEST_FS_COPY, tpath ("cp-src"), tpath ("cp-dir"), -1, 0, NULL, &rep));
  CHECK (fs_err (&rep, EISDIR));

  /* UTIME sets mtime, never following a link. */
  CHECK (fs (QLEAN_GUEST_FS_UTIME, tpath ("cp-src"), NULL, -1, 0, &mt, &rep));
  CHECK (fs_ok (&rep));
  CHECK (stat (tpath ("cp-src"), &st) == 0 && st.st_mtim.tv_sec == 1500000000 && st.st_mtim.tv_nsec == 123);
  CHECK (symlink ("cp-src", tpath ("cp-link")) == 0);
  mt = -1000000000ll * 3600;   /* before the epoch */
  CHECK (fs (QLEAN_GUEST_FS_UTIME, tpath ("cp-link"), NULL, -1, 0, &mt, &rep));
  CHECK (fs_ok (&rep));
  CHECK (lstat (tpath ("cp-link"), &st2) == 0 && st2.st_mtim.tv_sec == -3600);
  CHECK (stat (tpath ("cp-src"), &st) == 0 && st.st_mtim.tv_sec == 1500000000);
  CHECK (fs (QLEAN_GUEST_FS_UTIME, tpath ("nope"), NULL, -1, 0, &mt, &rep));
  CHECK (fs_err (&rep, ENOENT));
  CHECK (fs (QLEAN_GUEST_FS_UTIME, tpath ("cp-src"), NULL, -1, 0, NULL, &rep));
  CHECK (fs_err (&rep, EINVAL));

  /* SET_CLOCK needs the time; it is not set here, where the program
   * runs on the host (the restore tests see it set in a guest). */
  CHECK (fs (QLEAN_GUEST_FS_SET_CLOCK, "/", NULL, -1, 0, NULL, &rep));
  CHECK (fs_err (&rep, EINVAL));
  /* IDENTITY knows the operation but needs HOSTNAME; it is not run
   * here, where it would rename the host (test-identity runs it in
   * guests). */
  CHECK (fs (QLEAN_GUEST_FS_IDENTITY, "/", NULL, -1, 0, NULL, &rep));
  CHECK (fs_err (&rep, EINVAL) && strstr (rep.msg, "no HOSTNAME") != NULL);
  /* NET CONFIGURE, likewise, is run in guests (test-pool); here: what
   * it refuses before it touches anything. */
  CHECK (fs (QLEAN_GUEST_FS_NET_CONFIGURE, "/", NULL, -1, 0, NULL, &rep));
  CHECK (fs_err (&rep, EINVAL) && strstr (rep.msg, "are required") != NULL);
  CHECK (net_configure ("02:00:00:00:00:01", "10.1.2.300", 24, &rep));
  CHECK (fs_err (&rep, EINVAL) && strstr (rep.msg, "malformed") != NULL);
  CHECK (net_configure ("02:00:00:00:00:01", "10.1.2.3", 33, &rep));
  CHECK (fs_err (&rep, EINVAL));
  /* A MAC no card of this host has (locally administered, made up):
   * ENODEV, so that the host falls back to waiting for the card. */
  CHECK (net_configure ("0a:51:7e:57:00:01", "10.1.2.3", 24, &rep));
  CHECK (fs_err (&rep, ENODEV) && strstr (rep.msg, "no network card") != NULL);
  free (data);
}

/* ------------------------------------------------------------------------ */
/* CONNECT: a listener in this process stands in for a server in the guest */

static int tcp_listener (int family, uint16_t *port)
{
  struct sockaddr_storage ss;
  socklen_t len;
  int fd = socket (family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

  if (fd < 0)
    return -1;
  memset (&ss, 0, sizeof ss);
  if (family == AF_INET)
    {
      struct sockaddr_in *in = (struct sockaddr_in *) &ss;
      in->sin_family = AF_INET;
      in->sin_addr.s_addr = htonl (INADDR_LOOPBACK);
      len = sizeof *in;
    }
  else
    {
      struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &ss;
      in6->sin6_family = AF_INET6;
      in6->sin6_addr = in6addr_loopback;
      len = sizeof *in6;
    }
  setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind (fd, (struct sockaddr *) &ss, len) < 0 || listen (fd, 8) < 0
      || getsockname (fd, (struct sockaddr *) &ss, &len) < 0)
    {
      close (fd);
      return -1;
    }
  *port = ntohs (family == AF_INET ? ((struct sockaddr_in *) &ss)->sin_port
                                   : ((struct sockaddr_in6 *) &ss)->sin6_port);
  return fd;
}

static int accept_within (int lfd, int timeout_ms)
{
  struct pollfd p = { .fd = lfd, .events = POLLIN };
  if (poll (&p, 1, timeout_ms) <= 0)
    return -1;
  return accept4 (lfd, NULL, NULL, SOCK_CLOEXEC);
}

static uint32_t send_connect (int64_t port, const char *addr)
{
  Buf b = { 0 };
  uint32_t id = g_next++;
  if (port >= 0)
    tlv_u32 (&b, QLEAN_GUEST_TAG_PORT, (uint32_t) port);
  if (addr)
    tlv_str (&b, QLEAN_GUEST_TAG_ADDR, addr);
  send_frame (QLEAN_GUEST_FRAME_CONNECT, 0, id, b.p, b.len);
  buf_free (&b);
  return id;
}

/* The next frame of `id` that is not a CREDIT fd 0 (added to *credit). */
static Frame *next_conn_frame (uint32_t id, uint64_t *credit, int timeout_ms)
{
  for (;;)
    {
      Frame *f = next_frame (id, timeout_ms);
      if (!f || f->type != QLEAN_GUEST_FRAME_CREDIT || f->fd != 0)
        return f;
      if (credit)
        *credit += get_u32 (f->payload);
      free (f);
    }
}

static bool read_exact (int fd, void *d, size_t n, int timeout_ms)
{
  unsigned char *p = d;
  while (n > 0)
    {
      struct pollfd pf = { .fd = fd, .events = POLLIN };
      ssize_t r;
      if (poll (&pf, 1, timeout_ms) <= 0)
        return false;
      r = read (fd, p, n);
      if (r <= 0)
        return false;
      p += r;
      n -= (size_t) r;
    }
  return true;
}

static void send_credit1 (uint32_t id, uint32_t n)
{
  unsigned char c[4];
  put_u32 (c, n);
  send_frame (QLEAN_GUEST_FRAME_CREDIT, 1, id, c, 4);
}

static void test_connect_pipe (void)
{
  size_t n = 10 * 1024 * 1024, m = 6 * 1024 * 1024;
  unsigned char *up = malloc (n), *down = malloc (m), *got = malloc (n);
  size_t sent = 0, received = 0, written = 0, back = 0, held;
  uint64_t avail = WINDOW, credit = 0, max_unacked = 0;
  uint16_t port;
  int lfd = tcp_listener (AF_INET, &port), cfd;
  uint32_t id;
  Frame *f;
  Buf out = { 0 };
  bool eof1 = false;
  int64_t idle_since;
  char c;

  CHECK (lfd >= 0);
  rnd_fill (up, n);
  rnd_fill (down, m);
  /* DATA right behind the request waits for the connection. */
  id = send_connect (port, "127.0.0.1");
  send_frame (QLEAN_GUEST_FRAME_DATA, 0, id, "ping", 4);
  cfd = accept_within (lfd, TIMEOUT);
  close (lfd);
  CHECK (cfd >= 0);
  f = next_conn_frame (id, &credit, TIMEOUT);
  CHECK (f);
  CHECKF (f->type == QLEAN_GUEST_FRAME_STARTED && f->len == 0, "type %u len %u: %s", f->type, f->len,
          f->type == QLEAN_GUEST_FRAME_ERROR ? (char *) f->payload + 4 : "");
  free (f);
  CHECK (read_exact (cfd, got, 4, TIMEOUT) && memcmp (got, "ping", 4) == 0);
  CHECK (write (cfd, "pong", 4) == 4);
  f = next_conn_frame (id, &credit, TIMEOUT);
  CHECK (f && f->type == QLEAN_GUEST_FRAME_DATA && f->fd == 1 && f->len == 4 && memcmp (f->payload, "pong", 4) == 0);
  free (f);
  send_credit1 (id, 4);
  avail -= 4;

  /* 10 MiB host to guest, under the window, read by the server as it comes. */
  fcntl (cfd, F_SETFL, O_NONBLOCK);
  while (received < n)
    {
      struct pollfd pf[2] = { { .fd = g_fd, .events = POLLIN }, { .fd = cfd, .events = POLLIN } };
      avail += credit;
      credit = 0;
      if (sent < n && avail > 0)
        {
          size_t chunk = n - sent < 256 * 1024 ? n - sent : 256 * 1024;
          if (chunk > avail)
            chunk = (size_t) avail;
          send_frame (QLEAN_GUEST_FRAME_DATA, 0, id, up + sent, chunk);
          sent += chunk;
          avail -= chunk;
          if (WINDOW - avail > max_unacked)
            max_unacked = WINDOW - avail;
        }
      CHECK (poll (pf, 2, TIMEOUT) > 0);
      if (pf[1].revents)
        {
          ssize_t r = read (cfd, got + received, n - received);
          CHECK (r > 0 || (r < 0 && errno == EAGAIN));
          if (r > 0)
            received += (size_t) r;
        }
      if (pf[0].revents)
        pump (0);
      while ((f = next_conn_frame (id, &credit, 0)))
        {
          CHECKF (false, "unexpected frame type %u", f->type);
        }
    }
  CHECK (memcmp (got, up, n) == 0);
  CHECK (max_unacked <= WINDOW);
  while (avail + credit < WINDOW && (f = next_conn_frame (id, &credit, TIMEOUT)))
    free (f);
  CHECKF (avail + credit == WINDOW, "%llu of the window credited back",
          (unsigned long long) (avail + credit));

  /* 6 MiB guest to host, no credit: the guest stops at the window. */
  idle_since = now_us ();
  while (now_us () - idle_since < 500000)
    {
      ssize_t w = written < m ? write (cfd, down + written, m - written) : 0;
      if (w > 0)
        {
          written += (size_t) w;
          idle_since = now_us ();
        }
      while ((f = next_conn_frame (id, NULL, 10)))
        {
          CHECKF (f->type == QLEAN_GUEST_FRAME_DATA && f->fd == 1, "type %u fd %u", f->type, f->fd);
          buf_add (&out, f->payload, f->len);
          idle_since = now_us ();
          free (f);
        }
    }
  held = out.len;
  CHECKF (held == WINDOW, "%zu bytes without credit (window %u), %zu written", held, WINDOW, written);
  /* Credit flows: the rest comes, then EOF fd 1 once the server half-closes. */
  send_credit1 (id, (uint32_t) held);
  back = held;
  while (!eof1)
    {
      ssize_t w = written < m ? write (cfd, down + written, m - written) : 0;
      if (w > 0)
        written += (size_t) w;
      if (written == m)
        {
          shutdown (cfd, SHUT_WR);
          written++;
        }
      f = next_conn_frame (id, NULL, written > m ? TIMEOUT : 10);
      if (!f)
        {
          CHECK (written <= m);
          continue;
        }
      if (f->type == QLEAN_GUEST_FRAME_EOF && f->fd == 1)
        eof1 = true;
      else
        {
          CHECKF (f->type == QLEAN_GUEST_FRAME_DATA && f->fd == 1, "type %u fd %u", f->type, f->fd);
          buf_add (&out, f->payload, f->len);
          CHECK (out.len - back <= WINDOW);
          send_credit1 (id, f->len);
          back += f->len;
        }
      free (f);
    }
  CHECK (out.len == m && memcmp (out.p, down, m) == 0);
  /* Our EOF half-closes the guest's socket; then both ways are done. */
  send_frame (QLEAN_GUEST_FRAME_EOF, 0, id, NULL, 0);
  fcntl (cfd, F_SETFL, 0);
  CHECK (read_exact (cfd, &c, 1, TIMEOUT) == false);
  f = next_conn_frame (id, NULL, TIMEOUT);
  CHECK (f);
  CHECKF (f->type == QLEAN_GUEST_FRAME_DONE && f->len == 0, "type %u", f->type);
  free (f);
  close (cfd);
  buf_free (&out);
  free (up);
  free (down);
  free (got);
}

static void test_connect_errors (void)
{
  uint16_t port;
  int lfd = tcp_listener (AF_INET, &port), cfd;
  Reply rep;
  uint32_t id;
  Frame *f;
  Buf b = { 0 };
  char buf[8];
  struct linger lg = { .l_onoff = 1, .l_linger = 0 };

  CHECK (lfd >= 0);
  /* Nobody listens: ECONNREFUSED, and no STARTED. */
  close (lfd);
  id = send_connect (port, NULL);
  CHECK (wait_reply (id, &rep));
  CHECKF (fs_err (&rep, ECONNREFUSED), "errno %d %s", rep.err, rep.msg);
  CHECKF (strstr (rep.msg, "connect"), "%s", rep.msg);
  /* Bad requests. */
  id = send_connect (-1, NULL);
  CHECK (wait_reply (id, &rep) && fs_err (&rep, EINVAL));
  id = send_connect (0, NULL);
  CHECK (wait_reply (id, &rep) && fs_err (&rep, EINVAL));
  id = send_connect (70000, NULL);
  CHECK (wait_reply (id, &rep) && fs_err (&rep, EINVAL));
  id = send_connect (port, "localhost");
  CHECK (wait_reply (id, &rep) && fs_err (&rep, EINVAL));
  CHECKF (strstr (rep.msg, "localhost"), "%s", rep.msg);
  tlv (&b, QLEAN_GUEST_TAG_PORT, "ab", 2);
  id = g_next++;
  send_frame (QLEAN_GUEST_FRAME_CONNECT, 0, id, b.p, b.len);
  buf_free (&b);
  CHECK (wait_reply (id, &rep) && fs_err (&rep, EPROTO));

  /* SIGNAL resets the connection: the server sees a reset. */
  lfd = tcp_listener (AF_INET, &port);
  CHECK (lfd >= 0);
  id = send_connect (port, NULL);
  cfd = accept_within (lfd, TIMEOUT);
  CHECK (cfd >= 0);
  f = next_conn_frame (id, NULL, TIMEOUT);
  CHECK (f && f->type == QLEAN_GUEST_FRAME_STARTED);
  free (f);
  {
    unsigned char sig[4];
    put_u32 (sig, SIGKILL);
    send_frame (QLEAN_GUEST_FRAME_SIGNAL, 0, id, sig, 4);
  }
  CHECK (wait_reply (id, &rep) && fs_err (&rep, ECANCELED));
  {
    struct pollfd pf = { .fd = cfd, .events = POLLIN };
    ssize_t r;
    CHECK (poll (&pf, 1, TIMEOUT) == 1);
    r = read (cfd, buf, sizeof buf);
    CHECKF (r < 0 && errno == ECONNRESET, "read %zd: %s", r, strerror (errno));
  }
  close (cfd);

  /* The server resets: ERROR ECONNRESET ends the stream. */
  id = send_connect (port, NULL);
  cfd = accept_within (lfd, TIMEOUT);
  CHECK (cfd >= 0);
  f = next_conn_frame (id, NULL, TIMEOUT);
  CHECK (f && f->type == QLEAN_GUEST_FRAME_STARTED);
  free (f);
  setsockopt (cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close (cfd);
  CHECK (wait_reply (id, &rep));
  CHECKF (fs_err (&rep, ECONNRESET), "done %d errno %d %s", rep.done, rep.err, rep.msg);

  /* The server closes first: EOF fd 1; data sent after that is credited
   * and dropped; our EOF then ends the stream with DONE. */
  id = send_connect (port, NULL);
  cfd = accept_within (lfd, TIMEOUT);
  CHECK (cfd >= 0);
  close (cfd);
  f = next_conn_frame (id, NULL, TIMEOUT);
  CHECK (f && f->type == QLEAN_GUEST_FRAME_STARTED);
  free (f);
  f = next_conn_frame (id, NULL, TIMEOUT);
  CHECKF (f && f->type == QLEAN_GUEST_FRAME_EOF && f->fd == 1, "type %u", f ? f->type : 0);
  free (f);
  {
    uint64_t credit = 0;
    static unsigned char junk[64 * 1024];
    for (int i = 0; i < 8; i++)
      send_frame (QLEAN_GUEST_FRAME_DATA, 0, id, junk, sizeof junk);
    send_frame (QLEAN_GUEST_FRAME_EOF, 0, id, NULL, 0);
    f = next_conn_frame (id, &credit, TIMEOUT);
    CHECKF (f && f->type == QLEAN_GUEST_FRAME_DONE, "type %u", f ? f->type : 0);
    free (f);
    CHECKF (credit == 8 * sizeof junk, "credited %llu", (unsigned long long) credit);
  }
  close (lfd);

  /* IPv6, where the host has it. */
  lfd = tcp_listener (AF_INET6, &port);
  if (lfd < 0)
    SKIP ("no IPv6 loopback here; the rest passed");
  id = send_connect (port, "::1");
  cfd = accept_within (lfd, TIMEOUT);
  close (lfd);
  CHECK (cfd >= 0);
  f = next_conn_frame (id, NULL, TIMEOUT);
  CHECK (f && f->type == QLEAN_GUEST_FRAME_STARTED);
  free (f);
  send_frame (QLEAN_GUEST_FRAME_EOF, 0, id, NULL, 0);
  close (cfd);
  f = next_conn_frame (id, NULL, TIMEOUT);
  CHECK (f && f->type == QLEAN_GUEST_FRAME_EOF && f->fd == 1);
  free (f);
  f = next_conn_frame (id, NULL, TIMEOUT);
  CHECK (f && f->type == QLEAN_GUEST_FRAME_DONE);
  free (f);
}

static void test_malformed (void)
{
  Buf b = { 0 };
  Reply rep;
  uint32_t id;
  unsigned char junk[3] = { 1, 0, 9 };
  ExecResult r;
  Frame *f;

  /* A truncated TLV. */
  id = g_next++;
  send_frame (QLEAN_GUEST_FRAME_EXEC, 0, id, junk, sizeof junk);
  CHECK (wait_reply (id, &rep) && fs_err (&rep, EPROTO));
  /* A TLV longer than its frame. */
  tlv_str (&b, QLEAN_GUEST_TAG_ARG, "true");
  put_u32 (b.p + 2, 1000);
  id = g_next++;
  send_frame (QLEAN_GUEST_FRAME_EXEC, 0, id, b.p, b.len);
  buf_free (&b);
  CHECK (wait_reply (id, &rep) && fs_err (&rep, EPROTO));
  /* FLAGS of the wrong size. */
  tlv_str (&b, QLEAN_GUEST_TAG_ARG, "true");
  tlv (&b, QLEAN_GUEST_TAG_FLAGS, "ab", 2);
  id = g_next++;
  send_frame (QLEAN_GUEST_FRAME_EXEC, 0, id, b.p, b.len);
  buf_free (&b);
  CHECK (wait_reply (id, &rep) && fs_err (&rep, EPROTO));
  /* No ARG; an ARG with a NUL; unknown tags are skipped. */
  id = g_next++;
  send_frame (QLEAN_GUEST_FRAME_EXEC, 0, id, NULL, 0);
  CHECK (wait_reply (id, &rep) && fs_err (&rep, EINVAL));
  tlv (&b, QLEAN_GUEST_TAG_ARG, "tr\0ue", 5);
  id = g_next++;
  send_frame (QLEAN_GUEST_FRAME_EXEC, 0, id, b.p, b.len);
  buf_free (&b);
  CHECK (wait_reply (id, &rep) && fs_err (&rep, EINVAL));
  tlv (&b, 999, "whatever", 8);
  tlv_str (&b, QLEAN_GUEST_TAG_ARG, "true");
  id = g_next++;
  send_frame (QLEAN_GUEST_FRAME_EXEC, 0, id, b.p, b.len);
  buf_free (&b);
  memset (&r, 0, sizeof r);
  CHECK (collect (id, &r, TIMEOUT) && exited_with (&r, 0));
  result_free (&r);
  /* FS: no OP, an unknown OP, no PATH, no PATH2. */
  tlv_str (&b, QLEAN_GUEST_TAG_PATH, "/");
  id = g_next++;
  send_frame (QLEAN_GUEST_FRAME_FS, 0, id, b.p, b.len);
  buf_free (&b);
  CHECK (wait_reply (id, &rep) && fs_err (&rep, EINVAL));
  CHECK (fs (77, "/", NULL, -1, 0, NULL, &rep) && fs_err (&rep, EINVAL));
  CHECK (fs (QLEAN_GUEST_FS_STAT, NULL, NULL, -1, 0, NULL, &rep) && fs_err (&rep, EINVAL));
  CHECK (fs (QLEAN_GUEST_FS_RENAME, tpath ("x"), NULL, -1, 0, NULL, &rep) && fs_err (&rep, EINVAL));
  /* PUT and GET without PATH. */
  id = g_next++;
  send_frame (QLEAN_GUEST_FRAME_PUT, 0, id, NULL, 0);
  CHECK (wait_reply (id, &rep) && fs_err (&rep, EINVAL));
  id = g_next++;
  send_frame (QLEAN_GUEST_FRAME_GET, 0, id, NULL, 0);
  CHECK (wait_reply (id, &rep) && fs_err (&rep, EINVAL));
  /* An unknown frame type; the type no frame has; a guest-only type. */
  id = g_next++;
  send_frame (200, 0, id, "x", 1);
  CHECK (wait_reply (id, &rep) && fs_err (&rep, EPROTO));
  id = g_next++;
  send_frame (QLEAN_GUEST_FRAME_NONE, 0, id, NULL, 0);
  CHECK (wait_reply (id, &rep) && fs_err (&rep, EPROTO));
  id = g_next++;
  send_frame (QLEAN_GUEST_FRAME_EXIT, 0, id, "xxxx", 4);
  CHECK (wait_reply (id, &rep) && fs_err (&rep, EPROTO));
  /* DATA, EOF, SIGNAL, CREDIT for unknown streams: ignored, silently. */
  send_frame (QLEAN_GUEST_FRAME_DATA, 0, 77777, "x", 1);
  send_frame (QLEAN_GUEST_FRAME_EOF, 0, 77777, NULL, 0);
  send_frame (QLEAN_GUEST_FRAME_SIGNAL, 0, 77777, "\x09\0\0\0", 4);
  send_frame (QLEAN_GUEST_FRAME_CREDIT, 0, 77777, "\x09\0\0\0", 4);
  pump (100);
  CHECK (next_frame (77777, 0) == NULL);

  /* On a running process: DATA without FLAG_STDIN, a reused stream id,
   * a short SIGNAL. */
  {
    const char *argv[] = { "sleep", "100", NULL };
    ExecOpts o = { .argv = argv };
    memset (&r, 0, sizeof r);
    r.order_ok = true;
    id = send_exec (&o);
    f = next_frame (id, TIMEOUT);
    CHECK (f);
    exec_frame (&r, f);
    CHECK (r.started);
    tlv_str (&b, QLEAN_GUEST_TAG_ARG, "true");
    send_frame (QLEAN_GUEST_FRAME_EXEC, 0, id, b.p, b.len);
    buf_free (&b);
    f = next_frame (id, TIMEOUT);
    CHECK (f && f->type == QLEAN_GUEST_FRAME_ERROR && get_u32 (f->payload) == EBUSY);
    free (f);
    CHECK (kill ((pid_t) r.pid, 0) == 0);   /* the first one is unharmed */
    send_frame (QLEAN_GUEST_FRAME_DATA, 0, id, "x", 1);
    f = next_frame (id, TIMEOUT);
    CHECK (f && f->type == QLEAN_GUEST_FRAME_ERROR && get_u32 (f->payload) == EPROTO);
    free (f);
    /* The stream was aborted: its process group is killed. */
    CHECK (group_gone ((pid_t) r.pid));
    pump (100);
    CHECK (next_frame (id, 0) == NULL);   /* nothing after ERROR */
  }
  CHECK (guest_alive ());
}

static void test_garbage (void)
{
  /* Random bytes, then random frames of harmless types, then bit-flipped
   * valid frames. The program must survive and resync. */
  size_t n = 4 * 1024 * 1024;
  unsigned char *junk = malloc (n);
  static const uint8_t types[] = {
    0, QLEAN_GUEST_FRAME_DATA, QLEAN_GUEST_FRAME_EOF, QLEAN_GUEST_FRAME_SIGNAL,
    QLEAN_GUEST_FRAME_STARTED, QLEAN_GUEST_FRAME_EXIT, QLEAN_GUEST_FRAME_ERROR,
    QLEAN_GUEST_FRAME_DONE, QLEAN_GUEST_FRAME_CREDIT, QLEAN_GUEST_FRAME_GET,
    QLEAN_GUEST_FRAME_EXEC, 77, 99, 255,   /* not CONNECT: it would reach real local ports */
  };
  ExecResult r;
  const char *argv[] = { "echo", "alive", NULL };
  ExecOpts o = { .argv = argv };

  /* Synced: requests are parsed (test_hello covers debris before sync). */
  CHECK (hello (0x5eed));
  rnd_fill (junk, n);
  write_all (junk, n);
  drop_frames ();
  for (int i = 0; i < 20000 && !g_broken; i++)
    {
      unsigned char payload[2048];
      uint8_t type = types[rnd () % sizeof types];
      size_t len = rnd () % 64 == 0 ? sizeof payload : rnd () % 40;
      uint32_t stream = (uint32_t) (rnd () % 8);
      unsigned char h[HDR];
      Buf b = { 0 };

      rnd_fill (payload, len);
      if (type == QLEAN_GUEST_FRAME_EXEC)
        {
          /* Whatever else parses, this program does not exist. */
          tlv_str (&b, QLEAN_GUEST_TAG_ARG, "/nonexistent/qlean-fuzz");
          buf_add (&b, payload, len);
          send_frame (type, (uint8_t) rnd (), 1000 + stream, b.p, b.len);
          buf_free (&b);
          continue;
        }
      put_u32 (h, QLEAN_GUEST_MAGIC);
      h[4] = type;
      h[5] = (uint8_t) rnd ();
      put_u16 (h + 6, (uint16_t) rnd ());
      put_u32 (h + 8, 1000 + stream);
      put_u32 (h + 12, rnd () % 16 == 0 ? (uint32_t) rnd () : (uint32_t) len);  /* lies sometimes */
      write_all (h, HDR);
      write_all (payload, len);
      if (i % 500 == 0)
        drop_frames ();
    }
  drop_frames ();
  /* Flipped bits in a valid request stream. */
  for (int i = 0; i < 2000 && !g_broken; i++)
    {
      Buf b = { 0 };
      unsigned char h[HDR];
      tlv_str (&b, QLEAN_GUEST_TAG_ARG, "/nonexistent/qlean-fuzz");
      tlv_u32 (&b, QLEAN_GUEST_TAG_FLAGS, QLEAN_GUEST_FLAG_STDIN);
      put_u32 (h, QLEAN_GUEST_MAGIC);
      h[4] = QLEAN_GUEST_FRAME_EXEC;
      h[5] = 0;
      put_u16 (h + 6, 0);
      put_u32 (h + 8, 2000 + (uint32_t) (rnd () % 4));
      put_u32 (h + 12, (uint32_t) b.len);
      {
        size_t bit = rnd () % ((HDR + b.len) * 8);
        if (bit / 8 < HDR)
          h[bit / 8] ^= (unsigned char) (1 << (bit % 8));
        else
          b.p[bit / 8 - HDR] ^= (unsigned char) (1 << (bit % 8));
      }
      if (h[4] == QLEAN_GUEST_FRAME_HELLO || h[4] == QLEAN_GUEST_FRAME_FS || h[4] == QLEAN_GUEST_FRAME_PUT)
        h[4] = 99;   /* keep it harmless */
      write_all (h, HDR);
      write_all (b.p, b.len);
      buf_free (&b);
      if (i % 200 == 0)
        drop_frames ();
    }
  /* A partial header, then resync. */
  write_all ("QLN1\x02", 5);
  free (junk);
  CHECK (guest_alive ());
  CHECK (hello (0xdeadbeefcafef00dull));
  drop_frames ();
  CHECK (run_exec (&o, &r));
  CHECK (exited_with (&r, 0) && r.out.len == 6 && memcmp (r.out.p, "alive\n", 6) == 0);
  result_free (&r);
  CHECK (guest_alive ());
}

static void test_resync_kills (void)
{
  const char *argv[] = { "sh", "-c", "sleep 100 & sleep 100", NULL };
  ExecOpts o = { .argv = argv };
  ExecResult r;
  uint32_t id;
  Frame *f;

  memset (&r, 0, sizeof r);
  id = send_exec (&o);
  f = next_frame (id, TIMEOUT);
  CHECK (f);
  exec_frame (&r, f);
  CHECK (r.started);
  usleep (100000);
  CHECK (hello (777));
  CHECK (group_gone ((pid_t) r.pid));
  pump (200);
  CHECK (next_frame (id, 0) == NULL);
  /* ... and the program reaped them. */
  {
    bool zombie = false;
    DIR *d = opendir ("/proc");
    struct dirent *e;
    for (int tries = 0; tries < 50; tries++)
      {
        zombie = false;
        rewinddir (d);
        while ((e = readdir (d)))
          {
            char p[300], buf[512], state;
            int ppid;
            FILE *fp;
            snprintf (p, sizeof p, "/proc/%s/stat", e->d_name);
            if (!(fp = fopen (p, "r")))
              continue;
            if (fgets (buf, sizeof buf, fp))
              {
                char *c = strrchr (buf, ')');
                if (c && sscanf (c + 2, "%c %d", &state, &ppid) == 2 && ppid == g_pid && state == 'Z')
                  zombie = true;
              }
            fclose (fp);
          }
        if (!zombie)
          break;
        usleep (20000);
      }
    closedir (d);
    CHECK (!zombie);
  }
}

static void test_resync_stalled (void)
{
  /* A host vanished in the middle of a frame and the next one came
   * before the program saw the port close: the half frame would swallow
   * the new HELLO. The program resyncs on it after the frame stalls. */
  unsigned char h[HDR];
  int64_t t0;
  const char *argv[] = { "echo", "still here", NULL };
  ExecOpts o = { .argv = argv };
  ExecResult r;

  put_u32 (h, QLEAN_GUEST_MAGIC);
  h[4] = QLEAN_GUEST_FRAME_DATA;
  h[5] = 0;
  put_u16 (h + 6, 0);
  put_u32 (h + 8, 4242);
  put_u32 (h + 12, QLEAN_GUEST_MAX_PAYLOAD);
  write_all (h, HDR);
  write_all ("some payload", 12);
  t0 = now_us ();
  CHECK (hello (0xabcdef));
  printf ("# resynced after %lld ms\n", (long long) ((now_us () - t0) / 1000));
  CHECK (now_us () - t0 < 3000000);
  CHECK (run_exec (&o, &r) && exited_with (&r, 0) && r.out.len == 11);
  result_free (&r);
}


/* Collects stream `id` into `r` until its output contains `want` (true)
 * or the stream ends or times out (false). */
static bool collect_until (uint32_t id, ExecResult *r, const char *want)
{
  for (;;)
    {
      Frame *f;

      if (r->out.len && memmem (r->out.p, r->out.len, want, strlen (want)))
        return true;
      f = next_frame (id, TIMEOUT);
      if (!f || exec_frame (r, f))
        return r->out.len && memmem (r->out.p, r->out.len, want, strlen (want));
    }
}

static uint32_t send_terminal_exec (const char *const *argv, uint16_t rows, uint16_t cols, uint32_t flags)
{
  Buf b = { 0 };
  unsigned char ws[4];
  uint32_t id = g_next++;

  for (const char *const *a = argv; *a; a++)
    tlv_str (&b, QLEAN_GUEST_TAG_ARG, *a);
  tlv_u32 (&b, QLEAN_GUEST_TAG_FLAGS, flags);
  put_u16 (ws, rows);
  put_u16 (ws + 2, cols);
  tlv (&b, QLEAN_GUEST_TAG_WINSIZE, ws, 4);
  send_frame (QLEAN_GUEST_FRAME_EXEC, 0, id, b.p, b.len);
  buf_free (&b);
  return id;
}

static void test_exec_terminal (void)
{
  const char *argv1[] = { "sh", "-c", "stty size; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-ttys; "
                          "echo err >&2; exit 5", NULL };
  const char *argv2[] = { "sh", "-c", "echo ready; read x; stty size; echo got-$x; cat", NULL };
  const char *argv3[] = { "true", NULL };
  unsigned char ws[4];
  ExecResult r;
  uint32_t id;

  /* Size, terminals on all three, stderr in the same stream. */
  memset (&r, 0, sizeof r);
  r.order_ok = true;
  id = send_terminal_exec (argv1, 33, 77, QLEAN_GUEST_FLAG_TERMINAL);
  CHECK (collect (id, &r, TIMEOUT));
  CHECKF (!r.error, "%s", r.msg);
  CHECK (r.order_ok && r.eof1 && !r.eof2 && r.errb.len == 0);
  CHECKF (r.out.len && memmem (r.out.p, r.out.len, "33 77\r\nall-ttys\r\nerr\r\n", 22),
          "output %.*s", (int) r.out.len, r.out.p);
  CHECKF (exited_with (&r, 5), "status %#x", r.status);
  result_free (&r);

  /* Input through the line discipline, a resize, then Ctrl-C kills the
   * foreground group as a terminal's interrupt character does. */
  memset (&r, 0, sizeof r);
  r.order_ok = true;
  id = send_terminal_exec (argv2, 24, 80, QLEAN_GUEST_FLAG_TERMINAL);
  CHECK (collect_until (id, &r, "ready"));
  put_u16 (ws, 40);
  put_u16 (ws + 2, 100);
  send_frame (QLEAN_GUEST_FRAME_WINSIZE, 0, id, ws, 4);
  send_frame (QLEAN_GUEST_FRAME_DATA, 0, id, "abc\r", 4);
  CHECKF (collect_until (id, &r, "40 100\r\ngot-abc"), "output %.*s", (int) r.out.len, r.out.p);
  /* A ^C in the instant between the shell's last echo and its exec of
   * cat was seen lost (about 1 run in 5, never with cat running): the
   * interrupt character is for what runs on the terminal, so wait for it. */
  CHECK (wait_runs_program ((pid_t) r.pid, "cat"));
  send_frame (QLEAN_GUEST_FRAME_DATA, 0, id, "\x03", 1);
  CHECK (collect (id, &r, TIMEOUT));
  CHECKF (r.exited && WIFSIGNALED (r.status) && WTERMSIG (r.status) == SIGINT, "status %#x", r.status);
  CHECK (group_gone ((pid_t) r.pid));
  result_free (&r);

  /* Flags this guest does not know are refused, not ignored. */
  memset (&r, 0, sizeof r);
  r.order_ok = true;
  id = send_terminal_exec (argv3, 24, 80, QLEAN_GUEST_FLAG_TERMINAL | (1u << 30));
  CHECK (collect (id, &r, TIMEOUT));
  CHECKF (r.error && r.err == EINVAL && !r.started, "%s", r.msg);
  result_free (&r);
}

static void test_no_leaks (void)
{
  /* After everything above (streams ended every way there is), the
   * program holds what it held after the first HELLO: 0-2, the socket,
   * its signalfd, /dev/null and whatever it inherited. Its children get
   * none of them but 0-2. */
  const char *argv[] = { "sh", "-c", "ls /proc/self/fd | wc -l", NULL };
  ExecOpts o = { .argv = argv };
  ExecResult r;
  int n = count_fds (g_pid);

  if (g_base_fds < 0)
    SKIP ("no baseline (the hello test did not run)");
  if (n != g_base_fds)
    {
      char cmd[128];
      snprintf (cmd, sizeof cmd, "ls -l /proc/%d/fd | sed 's/^/# /'", (int) g_pid);
      if (system (cmd) < 0)
        perror ("system");
    }
  CHECKF (n == g_base_fds, "%d fds, %d after HELLO", n, g_base_fds);
  CHECK (run_exec (&o, &r) && exited_with (&r, 0));
  /* 0, 1, 2 and the one ls opens for the listing. */
  CHECKF (r.out.len == 2 && r.out.p[0] == '4', "%.*s", (int) r.out.len, r.out.p);
  result_free (&r);
}

static int cmp_i64 (const void *a, const void *b)
{
  int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
  return x < y ? -1 : x > y;
}

static int64_t g_bench_median = -1;
static int g_bench_n = 100;

static void test_exec_round_trip (void)
{
  const char *argv[] = { "/bin/true", NULL };
  ExecOpts o = { .argv = argv };
  int n = g_bench_n;
  int64_t *t = malloc (sizeof *t * (size_t) n);
  ExecResult r;

  for (int i = 0; i < n; i++)
    {
      int64_t t0 = now_us ();
      bool ok = run_exec (&o, &r);
      t[i] = now_us () - t0;
      CHECK (ok && exited_with (&r, 0));
      result_free (&r);
    }
  qsort (t, (size_t) n, sizeof *t, cmp_i64);
  g_bench_median = t[n / 2];
  printf ("# exec round trip of /bin/true, %d runs: min %lld us, median %lld us, p90 %lld us, max %lld us\n", n,
          (long long) t[0], (long long) t[n / 2], (long long) t[n * 9 / 10], (long long) t[n - 1]);
  free (t);
}

static void bench_transfer (void)
{
  size_t n = 256 * 1024 * 1024;
  unsigned char *data = malloc (n);
  Reply rep;
  GetResult g;
  int64_t t0;
  double put_s, get_s;

  rnd_fill (data, 1 << 20);
  for (size_t i = 1; i < 256; i++)
    memcpy (data + i * (1 << 20), data, 1 << 20);
  t0 = now_us ();
  CHECK (put_file (tpath ("bench.bin"), data, n, -1, NULL, 0, &rep, NULL) && fs_ok (&rep));
  put_s = (now_us () - t0) / 1e6;
  buf_free (&rep.payload);
  t0 = now_us ();
  CHECK (get_file (tpath ("bench.bin"), &g) && g.eof && g.data.len == n);
  get_s = (now_us () - t0) / 1e6;
  printf ("# PUT 256 MiB: %.0f MB/s; GET 256 MiB: %.0f MB/s (host, socketpair)\n", n / put_s / 1e6,
          n / get_s / 1e6);
  buf_free (&g.data);
  buf_free (&g.done.payload);
  unlink (tpath ("bench.bin"));
  free (data);
}

/* ------------------------------------------------------------------------ */

static int rm_one (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void) st;
  (void) ftw;
  if (flag == FTW_DP)
    chmod (path, 0700);
  remove (path);
  return 0;
}

int main (int argc, char **argv)
{
  bool bench = false;

  for (int i = 1; i < argc; i++)
    if (strcmp (argv[i], "--bench") == 0)
      {
        bench = true;
        if (i + 1 < argc && atoi (argv[i + 1]) > 0)
          g_bench_n = atoi (argv[++i]);
        else
          g_bench_n = 1000;
      }
  if (getenv ("QLEAN_GUEST_TEST_SEED"))
    rng_state = strtoull (getenv ("QLEAN_GUEST_TEST_SEED"), NULL, 0) | 1;
  signal (SIGPIPE, SIG_IGN);
  setvbuf (stdout, NULL, _IOLBF, 0);
  snprintf (g_dir, sizeof g_dir, "%s", "/tmp/qlean-guest-test-XXXXXX");
  if (!mkdtemp (g_dir))
    {
      perror ("mkdtemp");
      return 1;
    }
  if (access (guest_path (), X_OK) < 0)
    {
      printf ("Bail out! cannot run %s: %s\n", guest_path (), strerror (errno));
      return 1;
    }
  {
    char trace[PATH_MAX];
    snprintf (trace, sizeof trace, "%s/trace", g_dir);
    setenv ("QLEAN_GUEST_TRACE", trace, 1);
  }
  start_guest ();

  /* A run of selected tests (not the hello one) starts synced. */
  if (getenv ("QLEAN_GUEST_TEST_ONLY") && *getenv ("QLEAN_GUEST_TEST_ONLY")
      && !strstr ("hello and debris", getenv ("QLEAN_GUEST_TEST_ONLY")) && !hello (7))
    {
      printf ("Bail out! no HELLO answer\n");
      return 1;
    }
  if (bench)
    {
      printf ("1..3\n");
      run_test ("hello", test_hello);
      run_test ("exec round trip", test_exec_round_trip);
      run_test ("transfer throughput", bench_transfer);
    }
  else
    {
      printf ("1..28\n");
      run_test ("hello and debris", test_hello);
      run_test ("exec: output, status", test_exec_basic);
      run_test ("exec: merged stderr", test_exec_merge);
      run_test ("exec: live output", test_exec_live);
      run_test ("exec: signals", test_exec_signal);
      run_test ("exec: 10 MiB through cat", test_exec_stdin);
      run_test ("exec: unread stdin", test_exec_stdin_unread);
      run_test ("exec: errors", test_exec_errors);
      run_test ("exec: timings (QLEAN_GUEST_TRACE)", test_exec_trace);
      run_test ("exec: environment, cwd, PATH", test_exec_env);
      run_test ("exec: user", test_exec_user);
      run_test ("exec: terminal", test_exec_terminal);
      run_test ("put and get", test_put_get);
      run_test ("put and get errors", test_put_errors);
      run_test ("fs: stat", test_fs_stat);
      run_test ("fs: readdir", test_fs_readdir);
      run_test ("fs: readdir beyond one frame", test_fs_readdir_big);
      run_test ("fs: mkdir", test_fs_mkdir);
      run_test ("fs: unlink, rmdir, remove_all", test_fs_remove);
      run_test ("fs: rename, links, chmod", test_fs_links);
      run_test ("fs: copy, utime", test_fs_copy_utime);
      run_test ("connect: both ways, flow control, half close", test_connect_pipe);
      run_test ("connect: refused, bad requests, resets", test_connect_errors);
      run_test ("malformed requests", test_malformed);
      run_test ("garbage", test_garbage);
      run_test ("resync kills", test_resync_kills);
      run_test ("resync after a stalled frame", test_resync_stalled);
      run_test ("no leaked fds", test_no_leaks);
      if (!g_broken && !getenv ("QLEAN_GUEST_TEST_ONLY"))
        test_exec_round_trip ();   /* a sanity figure, as a comment */
    }

  close (g_fd);
  {
    int st;
    int64_t deadline = now_us () + 5000000;
    while (waitpid (g_pid, &st, WNOHANG) == 0 && now_us () < deadline)
      usleep (10000);
    if (now_us () >= deadline)
      {
        printf ("# the guest did not exit when its peer went away\n");
        kill (g_pid, SIGKILL);
        n_failed++;
      }
  }
  nftw (g_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  return n_failed ? 1 : 0;
}
