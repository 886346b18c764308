/* qlean-guest.c: the guest side of Qlean's data channel
 *
 * SPDX-License-Identifier: MIT
 *
 * A small single-threaded program that serves one byte stream (the
 * virtio-serial port org.qlean.data.0, or an inherited fd) with the
 * protocol of guest/qlean-guest-protocol.h: it runs processes with live
 * stdin/stdout/stderr, moves files both ways and does file system
 * operations. It uses nothing but libc and is linked statically, so it
 * runs in any Linux guest without installing anything.
 *
 *   qlean-guest serve [--port PATH | --fd N]
 *   qlean-guest --version
 *
 * Design notes
 *
 * - One poll(2) loop watches the port, a signalfd (SIGCHLD, SIGTERM,
 *   SIGINT) and every stream's pipes or file. Nothing ever blocks on a
 *   write to the port or to a child's stdin: output is queued as frames
 *   and written when the port is writable; stdin data is queued per
 *   stream (at most one credit window, which the host respects).
 *   Children's pipes and GET files are only read while the output queue
 *   is below a high-water mark, so a fast producer cannot make the queue
 *   grow without bound.
 * - Processes are started with vfork(): the child only makes system
 *   calls on data prepared by the parent (argv, envp, the user's groups,
 *   a buffer for the PATH search), then reports a failure through memory
 *   it shares with the suspended parent. So a failed exec becomes an
 *   ERROR frame, never STARTED + EXIT 127, and starting a process costs
 *   no page-table copy (which matters under TCG).
 * - Before the first HELLO, and again after the host disconnects, only
 *   an exact HELLO header is looked for and nothing is sent: anything
 *   read then is debris from an earlier peer, and the host discards
 *   everything before our HELLO answer anyway. A HELLO kills every
 *   running process group and forgets every stream. See process_input()
 *   for a frame that never completes.
 * - The port: EOF means the host side is not connected (virtio_console
 *   reports that, and POLLHUP, until a host connects), so we stop polling
 *   it and look again every RETRY_MS; a read or write error closes it and
 *   we reopen it. With --fd, either ends the program.
 * - GET of a regular file sends with sendfile() (virtio_console splices
 *   from the page cache: one copy instead of two under TCG); writes to a
 *   virtio port take at most 32 KiB each and reads give one 4 KiB buffer
 *   each, so writev() and readv() batch them.
 * - The program keeps umask 0 for itself so that MKDIR and PUT modes are
 *   exact; children get the umask the program was started with. Its
 *   working directory is "/", so relative paths are relative to "/".
 * - CONNECT streams are non-blocking TCP sockets in the same loop, flow
 *   controlled both ways: the host's DATA under the usual window, our
 *   DATA fd 1 under the window the host credits back, so a forwarded port
 *   never buffers more than a window per connection on either side.
 */

#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <termios.h>

#include "qlean-guest-protocol.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1u << 2)
#endif

#define HDR                 QLEAN_GUEST_HEADER_SIZE
#define DEFAULT_PATH        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define VIRTIO_PORTS_DIR    "/sys/class/virtio-ports"
#define PIPE_CHUNK          (64u * 1024u)           /* DATA from a child's pipe */
#ifndef GET_CHUNK
#define GET_CHUNK           (256u * 1024u)          /* DATA of a GET */
#endif
#ifndef VPORT_WRITE_MAX
#define VPORT_WRITE_MAX     (32u * 1024u)           /* virtio_console takes at most this per write() */
#endif
#define VPORT_READ_SEG      4096u                   /* ...and gives one page-sized buffer per read() */
#define IN_CAP              (HDR + QLEAN_GUEST_MAX_PAYLOAD + 1024u * 1024u)
#define OUT_HIGH            (8u * 1024u * 1024u)    /* stop reading children's pipes above this */
#define GET_LOW             (2u * 1024u * 1024u)    /* read GET files only below this */
#define IOV_BATCH           256
#define RETRY_MS            50                      /* port reconnect polling */
#define STALL_MS            500                     /* see process_input() */
#define HELLO_MAX           4096u                   /* the longest HELLO we recognise */
#define PORT_WAIT_MS        10000
#define DEFAULT_DIR_MODE    0755u
#define DEFAULT_FILE_MODE   0644u
#define KEEPALIVE_MS        250                     /* PROGRESS during a long COPY or REMOVE_ALL */
#define COPY_STEP           (16u * 1024u * 1024u)   /* bytes per copy_file_range() */

extern char **environ;

/* ------------------------------------------------------------------------ */
/* Little helpers                                                            */

static void put_u16 (unsigned char *p, uint16_t v)
{
  p[0] = (unsigned char) v;
  p[1] = (unsigned char) (v >> 8);
}

static void put_u32 (unsigned char *p, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char) (v >> (8 * i));
}

static void put_u64 (unsigned char *p, uint64_t v)
{
  for (int i = 0; i < 8; i++)
    p[i] = (unsigned char) (v >> (8 * i));
}

static uint16_t get_u16 (const unsigned char *p)
{
  return (uint16_t) (p[0] | (p[1] << 8));
}

static uint32_t get_u32 (const unsigned char *p)
{
  return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
}

static uint64_t get_u64 (const unsigned char *p)
{
  return (uint64_t) get_u32 (p) | ((uint64_t) get_u32 (p + 4) << 32);
}

static void logmsg (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

static void logmsg (const char *fmt, ...)
{
  char buf[1024];
  va_list ap;
  int n;

  va_start (ap, fmt);
  n = vsnprintf (buf, sizeof buf - 1, fmt, ap);
  va_end (ap);
  if (n < 0)
    return;
  if ((size_t) n > sizeof buf - 2)
    n = sizeof buf - 2;
  buf[n++] = '\n';
  (void) !write (2, "qlean-guest: ", 13);
  (void) !write (2, buf, (size_t) n);
}

static void __attribute__ ((noreturn)) die_oom (void)
{
  static const char msg[] = "qlean-guest: out of memory\n";
  (void) !write (2, msg, sizeof msg - 1);
  abort ();
}

static void *xmalloc (size_t n) __attribute__ ((malloc, returns_nonnull));
static void *xmalloc (size_t n)
{
  void *p = malloc (n ? n : 1);
  if (!p)
    die_oom ();
  return p;
}

static void *xrealloc (void *p, size_t n)
{
  p = realloc (p, n ? n : 1);
  if (!p)
    die_oom ();
  return p;
}

static char *xstrdup (const char *s)
{
  size_t n = strlen (s) + 1;
  return memcpy (xmalloc (n), s, n);
}

static int64_t now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t ts_ns (const struct timespec *ts)
{
  return (int64_t) ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static struct timespec ns_ts (int64_t ns)
{
  struct timespec ts;
  ts.tv_sec = (time_t) (ns / 1000000000);
  ts.tv_nsec = (long) (ns % 1000000000);
  if (ts.tv_nsec < 0)
    {
      ts.tv_nsec += 1000000000;
      ts.tv_sec -= 1;
    }
  return ts;
}

/* Appends `s` to `out` (of `cap` bytes, at `*len`) with every byte that
 * is not part of valid UTF-8 written as \xNN, so that messages naming
 * arbitrary paths stay valid UTF-8. */
static void utf8_sanitize (const unsigned char *s, size_t n, char *out, size_t cap, size_t *len)
{
  size_t i = 0;
  while (i < n && *len + 4 < cap)
    {
      unsigned char c = s[i];
      size_t need = 0;
      uint32_t cp = 0, min = 0;
      bool ok = true;

      if (c < 0x80)
        {
          out[(*len)++] = (char) c;
          i++;
          continue;
        }
      if ((c & 0xE0) == 0xC0)
        need = 1, cp = c & 0x1F, min = 0x80;
      else if ((c & 0xF0) == 0xE0)
        need = 2, cp = c & 0x0F, min = 0x800;
      else if ((c & 0xF8) == 0xF0)
        need = 3, cp = c & 0x07, min = 0x10000;
      else
        ok = false;
      for (size_t k = 1; ok && k <= need; k++)
        {
          if (i + k >= n || (s[i + k] & 0xC0) != 0x80)
            ok = false;
          else
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
      if (ok && (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)))
        ok = false;
      if (ok)
        {
          if (*len + need + 1 >= cap)
            break;
          memcpy (out + *len, s + i, need + 1);
          *len += need + 1;
          i += need + 1;
        }
      else
        {
          static const char hex[] = "0123456789abcdef";
          out[(*len)++] = '\\';
          out[(*len)++] = 'x';
          out[(*len)++] = hex[c >> 4];
          out[(*len)++] = hex[c & 15];
          i++;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Output frames                                                             */

/* An open file that queued frames send from (GET of a regular file):
 * its bytes go to the port with sendfile(), so they are copied once in
 * the kernel instead of being read into and written out of our memory. */
typedef struct
{
  int       fd;
  int       refs;
  uint64_t  queued;   /* bytes promised in queued frames */
  uint64_t  sent;     /* ... of which written (or dropped) */
  bool      short_read;  /* the file ended early: zeros were sent instead */
} FileRef;

typedef struct OutBuf OutBuf;
struct OutBuf
{
  OutBuf        *next;
  size_t         len;   /* header + payload bytes in data[] */
  size_t         off;   /* bytes of data[] already written to the port */
  size_t         cap;
  /* After data[], src_left more payload bytes from src at src_off. */
  FileRef       *src;
  off_t          src_off;
  size_t         src_left;
  bool           src_copy;   /* sendfile() failed: pread() + write() */
  bool           src_zero;   /* the file ended early: send zeros */
  unsigned char  data[];
};

typedef struct Stream Stream;

static struct
{
  int          port_fd;        /* -1 while closed */
  const char  *port_path;      /* --port, or NULL to look the port up by name */
  bool         fd_mode;        /* --fd: exit when the peer goes away */
  bool         vport;          /* a character device (virtio-serial) */
  bool         connected;      /* false after EOF: reads paused until retry_at */
  int64_t      retry_at;
  bool         synced;         /* a HELLO was answered on this connection */
  int64_t      stall_since;    /* when the frame at in_start was first seen incomplete */
  bool         stall_checked;  /* ... and checked since the last read */

  unsigned char *in;
  size_t       in_start, in_end;

  OutBuf      *out_head, *out_tail;
  size_t       out_bytes;

  Stream     **streams;
  size_t       n_streams, cap_streams;

  int          sigfd;
  int          devnull;
  mode_t       child_umask;
  uid_t        euid;
} G;

static OutBuf *ob_new (size_t payload_hint)
{
  OutBuf *ob = xmalloc (sizeof *ob + HDR + payload_hint);
  ob->next = NULL;
  ob->len = HDR;
  ob->off = 0;
  ob->cap = HDR + payload_hint;
  ob->src = NULL;
  ob->src_off = 0;
  ob->src_left = 0;
  ob->src_copy = ob->src_zero = false;
  return ob;
}

static FileRef *fileref_new (int fd)
{
  FileRef *fr = xmalloc (sizeof *fr);
  memset (fr, 0, sizeof *fr);
  fr->fd = fd;
  fr->refs = 1;
  return fr;
}

static void fileref_unref (FileRef *fr)
{
  if (fr && --fr->refs == 0)
    {
      close (fr->fd);
      free (fr);
    }
}

/* Frees a frame; what it still owed from its file counts as sent. */
static void ob_free (OutBuf *ob)
{
  if (ob->src)
    {
      ob->src->sent += ob->src_left;
      fileref_unref (ob->src);
    }
  free (ob);
}

/* Makes room for `n` more bytes and returns where they go. */
static unsigned char *ob_grow (OutBuf **obp, size_t n)
{
  OutBuf *ob = *obp;
  unsigned char *p;

  if (ob->len + n > ob->cap)
    {
      size_t cap = ob->cap * 2;
      if (cap < ob->len + n)
        cap = ob->len + n;
      ob = xrealloc (ob, sizeof *ob + cap);
      ob->cap = cap;
      *obp = ob;
    }
  p = ob->data + ob->len;
  ob->len += n;
  return p;
}

static void ob_tlv (OutBuf **obp, uint16_t tag, const void *v, size_t n)
{
  unsigned char *p = ob_grow (obp, 6 + n);
  put_u16 (p, tag);
  put_u32 (p + 2, (uint32_t) n);
  if (n)
    memcpy (p + 6, v, n);
}

static void ob_tlv_u32 (OutBuf **obp, uint16_t tag, uint32_t v)
{
  unsigned char b[4];
  put_u32 (b, v);
  ob_tlv (obp, tag, b, 4);
}

static void ob_tlv_u64 (OutBuf **obp, uint16_t tag, uint64_t v)
{
  unsigned char b[8];
  put_u64 (b, v);
  ob_tlv (obp, tag, b, 8);
}

static size_t ob_payload (const OutBuf *ob)
{
  return ob->len - HDR;
}

/* Fills in the header and queues the frame; while no host is synced to
 * us, drops it. Takes `ob`. */
static void ob_send (OutBuf *ob, uint8_t type, uint8_t fd, uint32_t stream)
{
  unsigned char *h = ob->data;

  put_u32 (h, QLEAN_GUEST_MAGIC);
  h[4] = type;
  h[5] = fd;
  put_u16 (h + 6, 0);
  put_u32 (h + 8, stream);
  put_u32 (h + 12, (uint32_t) (ob->len - HDR + ob->src_left));
  if (!G.synced || G.port_fd < 0)
    {
      ob_free (ob);
      return;
    }
  ob->next = NULL;
  if (G.out_tail)
    G.out_tail->next = ob;
  else
    G.out_head = ob;
  G.out_tail = ob;
  G.out_bytes += ob->len + ob->src_left;
}

static void send_frame (uint8_t type, uint8_t fd, uint32_t stream, const void *payload, size_t n)
{
  OutBuf *ob;

  if (!G.synced)
    return;
  ob = ob_new (n);
  if (n)
    memcpy (ob_grow (&ob, n), payload, n);
  ob_send (ob, type, fd, stream);
}

static void send_u32 (uint8_t type, uint8_t fd, uint32_t stream, uint32_t v)
{
  unsigned char b[4];
  put_u32 (b, v);
  send_frame (type, fd, stream, b, 4);
}

static void send_error (uint32_t stream, int err, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));

/* ERROR: i32 errno, then a UTF-8 message. */
static void send_error (uint32_t stream, int err, const char *fmt, ...)
{
  char raw[8192], clean[8192 + 4];
  size_t n = 0;
  va_list ap;
  int r;
  unsigned char b[4];
  OutBuf *ob;

  if (!G.synced)
    return;
  va_start (ap, fmt);
  r = vsnprintf (raw, sizeof raw, fmt, ap);
  va_end (ap);
  if (r < 0)
    r = 0;
  if ((size_t) r >= sizeof raw)
    r = sizeof raw - 1;
  utf8_sanitize ((const unsigned char *) raw, (size_t) r, clean, sizeof clean, &n);
  ob = ob_new (4 + n);
  put_u32 (b, (uint32_t) err);
  memcpy (ob_grow (&ob, 4), b, 4);
  memcpy (ob_grow (&ob, n), clean, n);
  ob_send (ob, QLEAN_GUEST_FRAME_ERROR, 0, stream);
}

/* Drops queued output; a partly written head frame is kept (and
 * finished) unless `all`. */
static void out_drop (bool all)
{
  OutBuf *ob = G.out_head, *keep = NULL;

  if (!all && ob && ob->off > 0)
    {
      keep = ob;
      ob = ob->next;
      keep->next = NULL;
    }
  while (ob)
    {
      OutBuf *next = ob->next;
      ob_free (ob);
      ob = next;
    }
  G.out_head = G.out_tail = keep;
  G.out_bytes = keep ? keep->len - keep->off + keep->src_left : 0;
}

/* ------------------------------------------------------------------------ */
/* Streams                                                                   */

typedef enum
{
  STREAM_EXEC,
  STREAM_PUT,
  STREAM_GET,
  STREAM_CONNECT,
} StreamKind;

typedef struct Chunk Chunk;
struct Chunk
{
  Chunk         *next;
  size_t         len, off;
  unsigned char  data[];
};

struct Stream
{
  uint32_t    id;
  StreamKind  kind;
  bool        dead;           /* closed; freed at the end of the loop iteration */

  /* Host-to-guest DATA fd 0 (EXEC with FLAG_STDIN, PUT). */
  uint64_t    unacked;        /* received minus credited */
  uint64_t    credit_pending; /* consumed, CREDIT not sent yet */
  bool        eof_in;         /* EOF fd 0 received */

  /* EXEC */
  pid_t       pid;
  bool        exited;
  int         status;
  bool        want_stdin;
  int         fd_in;          /* our end of the child's stdin, -1 when closed */
  int         fd_out, fd_err; /* our ends of its stdout and stderr, -1 after EOF */
  bool        terminal;       /* FLAG_TERMINAL: fd_out is the pty master, fd_in a dup of it */
  Chunk      *q_head, *q_tail;

  /* PUT, GET */
  int         file_fd;
  FileRef    *fref;           /* GET of a regular file: frames send from it */
  uint64_t    pos;            /* GET: bytes queued so far */
  uint64_t    end;            /* GET: st_size; past it (or for other files) we read() */
  bool        wait_sent;      /* GET: all of [0, end) queued, waiting for the port */
  char       *path;
  char       *tmp_path;       /* PUT: the temporary file, until renamed */
  uint32_t    mode;
  bool        has_mtime;
  int64_t     mtime_ns;
  uint64_t    size;

  /* CONNECT (stdin's queue and credit carry DATA fd 0 to the socket) */
  int         sock;
  bool        connecting;     /* connect() in progress: no STARTED yet */
  bool        wr_closed;      /* shut down for writing, or the peer stopped taking data */
  bool        eof_out;        /* EOF fd 1 sent */
  uint64_t    out_unacked;    /* DATA fd 1 sent, not credited by the host */
  uint32_t    port;
};

static Stream *stream_find (uint32_t id)
{
  for (size_t i = 0; i < G.n_streams; i++)
    if (!G.streams[i]->dead && G.streams[i]->id == id)
      return G.streams[i];
  return NULL;
}

static Stream *stream_find_pid (pid_t pid)
{
  for (size_t i = 0; i < G.n_streams; i++)
    {
      Stream *s = G.streams[i];
      if (!s->dead && s->kind == STREAM_EXEC && s->pid == pid && !s->exited)
        return s;
    }
  return NULL;
}

static Stream *stream_new (uint32_t id, StreamKind kind)
{
  Stream *s = xmalloc (sizeof *s);

  memset (s, 0, sizeof *s);
  s->id = id;
  s->kind = kind;
  s->fd_in = s->fd_out = s->fd_err = s->file_fd = s->sock = -1;
  if (G.n_streams == G.cap_streams)
    {
      G.cap_streams = G.cap_streams ? G.cap_streams * 2 : 16;
      G.streams = xrealloc (G.streams, G.cap_streams * sizeof *G.streams);
    }
  G.streams[G.n_streams++] = s;
  return s;
}

static void close_fd (int *fd)
{
  if (*fd >= 0)
    close (*fd);
  *fd = -1;
}

static void stdin_queue_free (Stream *s)
{
  Chunk *c = s->q_head;
  while (c)
    {
      Chunk *next = c->next;
      s->credit_pending += c->len - c->off;
      free (c);
      c = next;
    }
  s->q_head = s->q_tail = NULL;
}

/* Ends a stream. With `kill_it`, a running process group gets SIGKILL
 * (its zombie is reaped later like any other) and a PUT's temporary
 * file is removed. Nothing is sent. */
static void stream_close (Stream *s, bool kill_it)
{
  if (s->dead)
    return;
  s->dead = true;
  if (s->kind == STREAM_EXEC && kill_it && s->pid > 0)
    kill (-s->pid, SIGKILL);
  close_fd (&s->fd_in);
  close_fd (&s->fd_out);
  close_fd (&s->fd_err);
  close_fd (&s->file_fd);
  close_fd (&s->sock);
  fileref_unref (s->fref);
  s->fref = NULL;
  stdin_queue_free (s);
  if (s->tmp_path)
    {
      unlink (s->tmp_path);
      free (s->tmp_path);
      s->tmp_path = NULL;
    }
}

static void stream_abort (Stream *s, int err, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));

/* Ends a stream with ERROR, killing what it runs. */
static void stream_abort (Stream *s, int err, const char *fmt, ...)
{
  char msg[4096];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  send_error (s->id, err, "%s", msg);
  stream_close (s, true);
}

static void stream_free_dead (void)
{
  size_t j = 0;
  for (size_t i = 0; i < G.n_streams; i++)
    {
      Stream *s = G.streams[i];
      if (s->dead)
        {
          free (s->path);
          free (s);
        }
      else
        G.streams[j++] = s;
    }
  G.n_streams = j;
}

static void stream_close_all (void)
{
  for (size_t i = 0; i < G.n_streams; i++)
    stream_close (G.streams[i], true);
}

/* CREDIT for everything consumed since the last one. Sent once per loop
 * iteration (so many small writes make one frame), and before a stream's
 * last frame. */
static void stream_flush_credit (Stream *s)
{
  if (s->dead || s->credit_pending == 0)
    return;
  send_u32 (QLEAN_GUEST_FRAME_CREDIT, 0, s->id, (uint32_t) s->credit_pending);
  s->unacked -= s->credit_pending < s->unacked ? s->credit_pending : s->unacked;
  s->credit_pending = 0;
}

static void flush_credits (void)
{
  for (size_t i = 0; i < G.n_streams; i++)
    stream_flush_credit (G.streams[i]);
}

/* Checks DATA fd 0 against the window; false (and the stream aborted)
 * when the host overran it. */
static bool window_take (Stream *s, uint32_t n)
{
  if (s->unacked + n > QLEAN_GUEST_WINDOW)
    {
      stream_abort (s, EPROTO, "stream %u: DATA beyond the credit window", s->id);
      return false;
    }
  s->unacked += n;
  return true;
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                  */

typedef struct
{
  const unsigned char *p;
  uint32_t             len;
} Span;

typedef struct
{
  Span    *args;
  size_t   n_args, cap_args;
  Span    *envs;
  size_t   n_envs, cap_envs;
  Span     path, path2, cwd, user, addr;
  bool     has_path, has_path2, has_cwd, has_user, has_mode, has_mtime, has_op, has_port, has_addr;
  bool     has_winsize;
  uint16_t rows, cols;
  uint32_t flags, mode, op, port;
  int64_t  mtime;
} Req;

static void span_push (Span **v, size_t *n, size_t *cap, Span sp)
{
  if (*n == *cap)
    {
      *cap = *cap ? *cap * 2 : 8;
      *v = xrealloc (*v, *cap * sizeof **v);
    }
  (*v)[(*n)++] = sp;
}

static void req_free (Req *r)
{
  free (r->args);
  free (r->envs);
}

/* Parses a TLV list. Unknown tags are skipped; a single-valued tag that
 * repeats keeps its last value. Returns false with `*why` on a truncated
 * entry or a number of the wrong size. */
static bool req_parse (const unsigned char *p, uint32_t len, Req *r, const char **why)
{
  size_t off = 0;

  memset (r, 0, sizeof *r);
  while (off < len)
    {
      uint16_t tag;
      uint32_t n;
      Span sp;

      if (len - off < 6)
        {
          *why = "truncated TLV header";
          return false;
        }
      tag = get_u16 (p + off);
      n = get_u32 (p + off + 2);
      off += 6;
      if (n > len - off)
        {
          *why = "TLV longer than its frame";
          return false;
        }
      sp.p = p + off;
      sp.len = n;
      off += n;
      switch (tag)
        {
        case QLEAN_GUEST_TAG_ARG:
          span_push (&r->args, &r->n_args, &r->cap_args, sp);
          break;
        case QLEAN_GUEST_TAG_ENV:
          span_push (&r->envs, &r->n_envs, &r->cap_envs, sp);
          break;
        case QLEAN_GUEST_TAG_CWD:
          r->cwd = sp, r->has_cwd = true;
          break;
        case QLEAN_GUEST_TAG_USER:
          r->user = sp, r->has_user = true;
          break;
        case QLEAN_GUEST_TAG_PATH:
          r->path = sp, r->has_path = true;
          break;
        case QLEAN_GUEST_TAG_PATH2:
          r->path2 = sp, r->has_path2 = true;
          break;
        case QLEAN_GUEST_TAG_ADDR:
          r->addr = sp, r->has_addr = true;
          break;
        case QLEAN_GUEST_TAG_FLAGS:
        case QLEAN_GUEST_TAG_MODE:
        case QLEAN_GUEST_TAG_OP:
        case QLEAN_GUEST_TAG_PORT:
          if (n != 4)
            {
              *why = "FLAGS, MODE, OP and PORT must be 4 bytes";
              return false;
            }
          if (tag == QLEAN_GUEST_TAG_FLAGS)
            r->flags = get_u32 (sp.p);
          else if (tag == QLEAN_GUEST_TAG_MODE)
            r->mode = get_u32 (sp.p), r->has_mode = true;
          else if (tag == QLEAN_GUEST_TAG_PORT)
            r->port = get_u32 (sp.p), r->has_port = true;
          else
            r->op = get_u32 (sp.p), r->has_op = true;
          break;
        case QLEAN_GUEST_TAG_WINSIZE:
          if (n != 4)
            {
              *why = "WINSIZE must be 4 bytes";
              return false;
            }
          r->rows = get_u16 (sp.p);
          r->cols = get_u16 (sp.p + 2);
          r->has_winsize = true;
          break;
        case QLEAN_GUEST_TAG_MTIME:
          if (n != 8)
            {
              *why = "MTIME must be 8 bytes";
              return false;
            }
          r->mtime = (int64_t) get_u64 (sp.p);
          r->has_mtime = true;
          break;
        default:
          break;
        }
    }
  return true;
}

/* A NUL-terminated copy, or NULL if the bytes contain a NUL. */
static char *span_str (Span sp)
{
  char *s;
  if (memchr (sp.p, 0, sp.len))
    return NULL;
  s = xmalloc (sp.len + 1);
  memcpy (s, sp.p, sp.len);
  s[sp.len] = 0;
  return s;
}

/* ------------------------------------------------------------------------ */
/* Users                                                                     */

typedef struct
{
  uid_t   uid;
  gid_t   gid;
  char   *name;
  char   *home;
  gid_t  *groups;
  size_t  n_groups;
} UserInfo;

static void user_info_clear (UserInfo *ui)
{
  free (ui->name);
  free (ui->home);
  free (ui->groups);
  memset (ui, 0, sizeof *ui);
}

static char *read_small_file (const char *path, size_t *len)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  size_t cap = 4096, n = 0;
  char *buf;

  if (fd < 0)
    return NULL;
  buf = xmalloc (cap + 1);
  for (;;)
    {
      ssize_t r;
      if (n == cap)
        {
          cap *= 2;
          buf = xrealloc (buf, cap + 1);
        }
      r = read (fd, buf + n, cap - n);
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        break;
      n += (size_t) r;
    }
  close (fd);
  buf[n] = 0;
  if (len)
    *len = n;
  return buf;
}

/* Splits `line` at ':' into at most `max` fields; returns how many. */
static int split_fields (char *line, char **f, int max)
{
  int n = 0;
  f[n++] = line;
  for (char *p = line; *p && n < max; p++)
    if (*p == ':')
      {
        *p = 0;
        f[n++] = p + 1;
      }
  return n;
}

static bool parse_id (const char *s, unsigned long *out)
{
  char *end;
  unsigned long v;

  if (!*s || *s < '0' || *s > '9')
    return false;
  errno = 0;
  v = strtoul (s, &end, 10);
  if (errno || *end || v >= 0xFFFFFFFFul)
    return false;
  *out = v;
  return true;
}

static void add_group (UserInfo *ui, size_t *cap, gid_t g)
{
  for (size_t i = 0; i < ui->n_groups; i++)
    if (ui->groups[i] == g)
      return;
  if (ui->n_groups == *cap)
    {
      *cap = *cap ? *cap * 2 : 16;
      ui->groups = xrealloc (ui->groups, *cap * sizeof *ui->groups);
    }
  ui->groups[ui->n_groups++] = g;
}

/* Resolves USER (a name, or a decimal uid) from /etc/passwd and
 * /etc/group, parsed by hand: NSS does not work in a static program. A
 * uid that has no passwd entry runs with gid = uid, no supplementary
 * groups and HOME=/. Returns 0 or an errno (ENOENT: no such user). */
static int lookup_user (const char *spec, UserInfo *ui)
{
  unsigned long want = 0;
  bool numeric = parse_id (spec, &want);
  bool found = false;
  size_t cap = 0;
  char *pw, *gr, *line, *save = NULL;

  memset (ui, 0, sizeof *ui);
  pw = read_small_file ("/etc/passwd", NULL);
  for (line = pw ? strtok_r (pw, "\n", &save) : NULL; line; line = strtok_r (NULL, "\n", &save))
    {
      char *f[7];
      unsigned long uid, gid;
      if (split_fields (line, f, 7) < 7)
        continue;
      if (!parse_id (f[2], &uid) || !parse_id (f[3], &gid))
        continue;
      if (numeric ? uid != want : strcmp (f[0], spec) != 0)
        continue;
      ui->uid = (uid_t) uid;
      ui->gid = (gid_t) gid;
      ui->name = xstrdup (f[0]);
      ui->home = xstrdup (*f[5] ? f[5] : "/");
      found = true;
      break;
    }
  free (pw);
  if (!found)
    {
      if (!numeric)
        return ENOENT;
      ui->uid = (uid_t) want;
      ui->gid = (gid_t) want;
      ui->name = xstrdup (spec);
      ui->home = xstrdup ("/");
      add_group (ui, &cap, ui->gid);
      return 0;
    }

  add_group (ui, &cap, ui->gid);
  gr = read_small_file ("/etc/group", NULL);
  save = NULL;
  for (line = gr ? strtok_r (gr, "\n", &save) : NULL; line; line = strtok_r (NULL, "\n", &save))
    {
      char *f[4], *m, *msave = NULL;
      unsigned long gid;
      if (split_fields (line, f, 4) < 4 || !parse_id (f[2], &gid))
        continue;
      for (m = strtok_r (f[3], ",", &msave); m; m = strtok_r (NULL, ",", &msave))
        if (strcmp (m, ui->name) == 0)
          {
            add_group (ui, &cap, (gid_t) gid);
            break;
          }
    }
  free (gr);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Starting processes                                                        */

enum
{
  STAGE_NONE,
  STAGE_SETUP,
  STAGE_USER,
  STAGE_CHDIR,
  STAGE_EXEC,
};

typedef struct
{
  char         **argv;       /* argv[-1] is a spare slot for the /bin/sh fallback */
  char         **envp;
  const char    *search;     /* PATH to search when argv[0] has no slash */
  const char    *cwd;        /* or NULL */
  int            fd0, fd1, fd2;
  bool           ctty;       /* fd0 is a terminal to make the controlling one */
  bool           set_user;
  uid_t          uid;
  gid_t          gid;
  const gid_t   *groups;
  size_t         n_groups;
  mode_t         umask;
  char          *pathbuf;    /* room for the longest "dir/argv0" */
  volatile int   stage;      /* written by the vfork child on failure */
  volatile int   err;
} Spawn;

/* The vfork child: system calls only, on memory prepared by the parent. */
static void __attribute__ ((noreturn)) child_fail (Spawn *sp, int stage, int err)
{
  sp->err = err ? err : EINVAL;
  sp->stage = stage;
  _exit (127);
}

static void child_exec (Spawn *sp, const char *file)
{
  execve (file, sp->argv, sp->envp);
  if (errno == ENOEXEC)
    {
      /* Like execvp: a file without a known binary format is a script. */
      char **sh = sp->argv - 1;
      sh[0] = (char *) "/bin/sh";
      sh[1] = (char *) file;
      execve ("/bin/sh", sh, sp->envp);
      errno = ENOEXEC;
    }
}

static void __attribute__ ((noreturn)) spawn_child (Spawn *sp)
{
  struct sigaction dfl;
  sigset_t none;
  const char *file = sp->argv[0];
  const char *p;
  bool eacces = false;

  if (setsid () < 0)
    child_fail (sp, STAGE_SETUP, errno);
  /* A new session has no controlling terminal; the pty's slave becomes
   * it, so that its line discipline signals the foreground group. */
  if (sp->ctty && ioctl (sp->fd0, TIOCSCTTY, 0) < 0)
    child_fail (sp, STAGE_SETUP, errno);
  if (dup2 (sp->fd0, 0) < 0 || dup2 (sp->fd1, 1) < 0 || dup2 (sp->fd2, 2) < 0)
    child_fail (sp, STAGE_SETUP, errno);
  /* Everything else is close-on-exec (see mark_cloexec()); the two
   * dispositions we changed go back to default, and the mask to empty. */
  memset (&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigaction (SIGPIPE, &dfl, NULL);
  sigaction (SIGHUP, &dfl, NULL);
  sigemptyset (&none);
  sigprocmask (SIG_SETMASK, &none, NULL);
  umask (sp->umask);
  if (sp->set_user)
    {
      if (syscall (SYS_setgroups, sp->n_groups, sp->groups) < 0
          || syscall (SYS_setresgid, sp->gid, sp->gid, sp->gid) < 0
          || syscall (SYS_setresuid, sp->uid, sp->uid, sp->uid) < 0)
        child_fail (sp, STAGE_USER, errno);
    }
  if (sp->cwd && chdir (sp->cwd) < 0)
    child_fail (sp, STAGE_CHDIR, errno);

  if (strchr (file, '/'))
    {
      child_exec (sp, file);
      child_fail (sp, STAGE_EXEC, errno);
    }
  if (!*file)
    child_fail (sp, STAGE_EXEC, ENOENT);
  /* The PATH search of execvp, on the child's own PATH. */
  for (p = sp->search;;)
    {
      const char *end = strchrnul (p, ':');
      size_t dl = (size_t) (end - p);
      char *b = sp->pathbuf;

      if (dl)
        {
          memcpy (b, p, dl);
          b[dl++] = '/';
        }
      strcpy (b + dl, file);
      child_exec (sp, b);
      switch (errno)
        {
        case EACCES:
          eacces = true;
          break;
        case ENOENT:
        case ENOTDIR:
        case ESTALE:
        case ENODEV:
        case ETIMEDOUT:
        case ELOOP:
        case ENAMETOOLONG:
          break;
        default:
          child_fail (sp, STAGE_EXEC, errno);
        }
      if (!*end)
        break;
      p = end + 1;
    }
  child_fail (sp, STAGE_EXEC, eacces ? EACCES : ENOENT);
}

/* Returns the pid, or -1 with sp->stage and sp->err set. */
static pid_t spawn (Spawn *sp)
{
  pid_t pid;

  sp->stage = STAGE_NONE;
  sp->err = 0;
  pid = vfork ();
  if (pid == 0)
    spawn_child (sp);
  if (pid < 0)
    {
      sp->stage = STAGE_SETUP;
      sp->err = errno;
      return -1;
    }
  if (sp->err)
    {
      while (waitpid (pid, NULL, 0) < 0 && errno == EINTR)
        ;
      return -1;
    }
  return pid;
}

/* The environment of a process: ours or none (FLAG_CLEAR_ENV), then
 * HOME/USER/LOGNAME for USER, then ENV entries in order. An entry
 * replaces any earlier one of the same name; an ENV entry without '='
 * removes the name. PATH defaults to DEFAULT_PATH. */
typedef struct
{
  char  **v;
  size_t  n, cap;
  char  **owned;
  size_t  n_owned, cap_owned;
} Env;

static void env_unset (Env *e, const char *name, size_t nl)
{
  size_t j = 0;
  for (size_t i = 0; i < e->n; i++)
    if (!(strncmp (e->v[i], name, nl) == 0 && e->v[i][nl] == '='))
      e->v[j++] = e->v[i];
  e->n = j;
}

static void env_set (Env *e, char *entry)
{
  const char *eq = strchr (entry, '=');
  env_unset (e, entry, eq ? (size_t) (eq - entry) : strlen (entry));
  if (!eq)
    return;
  if (e->n + 1 >= e->cap)
    {
      e->cap = e->cap ? e->cap * 2 : 64;
      e->v = xrealloc (e->v, e->cap * sizeof *e->v);
    }
  e->v[e->n++] = entry;
}

static char *env_own (Env *e, char *s)
{
  if (e->n_owned == e->cap_owned)
    {
      e->cap_owned = e->cap_owned ? e->cap_owned * 2 : 8;
      e->owned = xrealloc (e->owned, e->cap_owned * sizeof *e->owned);
    }
  e->owned[e->n_owned++] = s;
  return s;
}

static char *env_own_printf (Env *e, const char *name, const char *value)
{
  size_t nl = strlen (name), vl = strlen (value);
  char *s = xmalloc (nl + vl + 2);
  memcpy (s, name, nl);
  s[nl] = '=';
  memcpy (s + nl + 1, value, vl + 1);
  return env_own (e, s);
}

static void env_free (Env *e)
{
  for (size_t i = 0; i < e->n_owned; i++)
    free (e->owned[i]);
  free (e->owned);
  free (e->v);
}

static const char *env_get (char **v, const char *name)
{
  size_t nl = strlen (name);
  for (; v && *v; v++)
    if (strncmp (*v, name, nl) == 0 && (*v)[nl] == '=')
      return *v + nl + 1;
  return NULL;
}

/* A new pseudo-terminal of rows x cols: fds[0] the master (non-blocking,
 * like our pipe ends), fds[1] the slave, both close-on-exec. Returns 0
 * or an errno. */
static int open_terminal (int fds[2], uint16_t rows, uint16_t cols)
{
  struct winsize ws;
  unsigned int n;
  char name[64];
  int err;

  fds[0] = fds[1] = -1;
  fds[0] = open ("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
  if (fds[0] < 0)
    return errno;
  n = 0;
  if (ioctl (fds[0], TIOCSPTLCK, &n) < 0 || ioctl (fds[0], TIOCGPTN, &n) < 0)
    goto fail;
  snprintf (name, sizeof name, "/dev/pts/%u", n);
  fds[1] = open (name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fds[1] < 0)
    goto fail;
  memset (&ws, 0, sizeof ws);
  ws.ws_row = rows;
  ws.ws_col = cols;
  if (ioctl (fds[0], TIOCSWINSZ, &ws) < 0)
    goto fail;
  return 0;

fail:
  err = errno;
  close_fd (&fds[0]);
  close_fd (&fds[1]);
  return err;
}

static void handle_exec (uint32_t id, const unsigned char *payload, uint32_t len)
{
  Req r;
  const char *why = NULL;
  char **argv_store = NULL;
  char *arg_bytes = NULL, *cwd = NULL, *user = NULL;
  Env env;
  UserInfo ui;
  Spawn sp;
  int outp[2] = { -1, -1 }, errp[2] = { -1, -1 }, inp[2] = { -1, -1 };
  size_t total = 0, longest = 0;
  bool merge, want_stdin, has_path, terminal;
  pid_t pid;
  Stream *s;

  memset (&env, 0, sizeof env);
  memset (&ui, 0, sizeof ui);
  memset (&sp, 0, sizeof sp);
  if (!req_parse (payload, len, &r, &why))
    {
      send_error (id, EPROTO, "malformed EXEC request: %s", why);
      req_free (&r);
      return;
    }
  if (r.n_args == 0)
    {
      send_error (id, EINVAL, "EXEC request without ARG");
      goto out;
    }
  /* Refused, not ignored: a flag we do not know may change what the
   * process is (FLAG_TERMINAL did), and a host must learn that we
   * cannot do it rather than get something else. */
  if (r.flags & ~(uint32_t) (QLEAN_GUEST_FLAG_CLEAR_ENV | QLEAN_GUEST_FLAG_MERGE_STDERR
                             | QLEAN_GUEST_FLAG_STDIN | QLEAN_GUEST_FLAG_TERMINAL))
    {
      send_error (id, EINVAL, "EXEC request with unknown flags 0x%x (qlean-guest %s, protocol version %u)",
                  (unsigned) r.flags, PACKAGE_VERSION, (unsigned) QLEAN_GUEST_VERSION);
      goto out;
    }
  terminal = (r.flags & QLEAN_GUEST_FLAG_TERMINAL) != 0;
  merge = terminal || (r.flags & QLEAN_GUEST_FLAG_MERGE_STDERR) != 0;
  want_stdin = terminal || (r.flags & QLEAN_GUEST_FLAG_STDIN) != 0;

  /* argv, in one block, with a spare slot in front. */
  for (size_t i = 0; i < r.n_args; i++)
    {
      if (memchr (r.args[i].p, 0, r.args[i].len))
        {
          send_error (id, EINVAL, "ARG %zu contains a NUL byte", i);
          goto out;
        }
      total += r.args[i].len + 1;
    }
  argv_store = xmalloc ((r.n_args + 2) * sizeof *argv_store);
  arg_bytes = xmalloc (total);
  total = 0;
  for (size_t i = 0; i < r.n_args; i++)
    {
      argv_store[i + 1] = arg_bytes + total;
      memcpy (arg_bytes + total, r.args[i].p, r.args[i].len);
      arg_bytes[total + r.args[i].len] = 0;
      total += r.args[i].len + 1;
    }
  argv_store[0] = NULL;
  argv_store[r.n_args + 1] = NULL;
  sp.argv = argv_store + 1;

  if (r.has_cwd && !(cwd = span_str (r.cwd)))
    {
      send_error (id, EINVAL, "CWD contains a NUL byte");
      goto out;
    }
  if (r.has_user)
    {
      int err;
      if (!(user = span_str (r.user)))
        {
          send_error (id, EINVAL, "USER contains a NUL byte");
          goto out;
        }
      err = lookup_user (user, &ui);
      if (err)
        {
          send_error (id, err, "unknown user '%s'", user);
          goto out;
        }
      sp.uid = ui.uid;
      sp.gid = ui.gid;
      sp.groups = ui.groups;
      sp.n_groups = ui.n_groups;
      /* Only root can switch; anyone may "switch" to themselves. */
      sp.set_user = G.euid == 0 || ui.uid != G.euid;
    }

  if (r.n_envs == 0 && !r.has_user && !(r.flags & QLEAN_GUEST_FLAG_CLEAR_ENV))
    sp.envp = environ;      /* the common case: nothing to build */
  else
    {
      if (!(r.flags & QLEAN_GUEST_FLAG_CLEAR_ENV))
        for (char **e = environ; *e; e++)
          env_set (&env, *e);
      if (r.has_user)
        {
          env_set (&env, env_own_printf (&env, "HOME", ui.home));
          env_set (&env, env_own_printf (&env, "USER", ui.name));
          env_set (&env, env_own_printf (&env, "LOGNAME", ui.name));
        }
      for (size_t i = 0; i < r.n_envs; i++)
        {
          char *e = span_str (r.envs[i]);
          if (!e)
            {
              send_error (id, EINVAL, "ENV %zu contains a NUL byte", i);
              goto out;
            }
          env_set (&env, env_own (&env, e));
        }
      has_path = false;
      for (size_t i = 0; i < env.n; i++)
        if (strncmp (env.v[i], "PATH=", 5) == 0)
          has_path = true;
      if (!has_path)
        env_set (&env, (char *) "PATH=" DEFAULT_PATH);
      /* env_set() always leaves room for the terminator. */
      env.v[env.n] = NULL;
      sp.envp = env.v;
    }
  sp.search = env_get (sp.envp, "PATH");
  if (!sp.search)
    sp.search = DEFAULT_PATH;
  /* The longest candidate of the PATH search. */
  for (const char *p = sp.search;;)
    {
      const char *end = strchrnul (p, ':');
      if ((size_t) (end - p) > longest)
        longest = (size_t) (end - p);
      if (!*end)
        break;
      p = end + 1;
    }
  sp.pathbuf = xmalloc (longest + r.args[0].len + 2);
  sp.cwd = cwd;
  sp.umask = G.child_umask;

  if (terminal)
    {
      int err = open_terminal (outp, r.has_winsize ? r.rows : 24, r.has_winsize ? r.cols : 80);
      if (err)
        {
          send_error (id, err, "cannot create a pseudo-terminal: %s", strerror (err));
          goto out;
        }
      /* outp[0] is the master, outp[1] the slave: the child's stdin is
       * the slave too, and our stdin end a second descriptor of the
       * master, so that closing one of them leaves the other. */
      inp[0] = fcntl (outp[1], F_DUPFD_CLOEXEC, 3);
      inp[1] = fcntl (outp[0], F_DUPFD_CLOEXEC, 3);
      if (inp[0] < 0 || inp[1] < 0)
        {
          int err2 = errno;
          send_error (id, err2, "cannot create a pseudo-terminal: %s", strerror (err2));
          for (int i = 0; i < 2; i++)
            {
              close_fd (&outp[i]);
              close_fd (&inp[i]);
            }
          goto out;
        }
      sp.ctty = true;
    }
  else if (pipe2 (outp, O_CLOEXEC) < 0
           || (!merge && pipe2 (errp, O_CLOEXEC) < 0)
           || (want_stdin && pipe2 (inp, O_CLOEXEC) < 0))
    {
      int err = errno;
      send_error (id, err, "cannot create pipes: %s", strerror (err));
      for (int i = 0; i < 2; i++)
        {
          close_fd (&outp[i]);
          close_fd (&errp[i]);
          close_fd (&inp[i]);
        }
      goto out;
    }
  if (want_stdin)
    fcntl (inp[1], F_SETFL, O_NONBLOCK);
  sp.fd0 = want_stdin ? inp[0] : G.devnull;
  sp.fd1 = outp[1];
  sp.fd2 = merge ? outp[1] : errp[1];

  pid = spawn (&sp);
  close_fd (&outp[1]);
  close_fd (&errp[1]);
  close_fd (&inp[0]);
  if (pid < 0)
    {
      int err = sp.err;
      switch (sp.stage)
        {
        case STAGE_EXEC:
          send_error (id, err, "cannot execute '%s': %s", arg_bytes, strerror (err));
          break;
        case STAGE_CHDIR:
          send_error (id, err, "cannot change directory to '%s': %s", cwd, strerror (err));
          break;
        case STAGE_USER:
          send_error (id, err, "cannot switch to user '%s': %s", user, strerror (err));
          break;
        default:
          send_error (id, err, "cannot start '%s': %s", arg_bytes, strerror (err));
          break;
        }
      close_fd (&outp[0]);
      close_fd (&errp[0]);
      close_fd (&inp[1]);
      goto out;
    }

  s = stream_new (id, STREAM_EXEC);
  s->pid = pid;
  s->want_stdin = want_stdin;
  s->terminal = terminal;
  s->fd_out = outp[0];
  s->fd_err = errp[0];
  s->fd_in = inp[1];
  send_u32 (QLEAN_GUEST_FRAME_STARTED, 0, id, (uint32_t) pid);

out:
  free (sp.pathbuf);
  env_free (&env);
  user_info_clear (&ui);
  free (argv_store);
  free (arg_bytes);
  free (cwd);
  free (user);
  req_free (&r);
}

/* The process and both pipes are done: EXIT ends the stream. */
static void exec_maybe_finish (Stream *s)
{
  if (s->dead || !s->exited || s->fd_out >= 0 || s->fd_err >= 0)
    return;
  stream_flush_credit (s);
  send_u32 (QLEAN_GUEST_FRAME_EXIT, 0, s->id, (uint32_t) s->status);
  stream_close (s, false);
}

static void exec_read (Stream *s, int which)
{
  static unsigned char buf[PIPE_CHUNK];
  int *fdp = which == 1 ? &s->fd_out : &s->fd_err;
  ssize_t n = read (*fdp, buf, sizeof buf);

  if (n > 0)
    {
      send_frame (QLEAN_GUEST_FRAME_DATA, (uint8_t) which, s->id, buf, (size_t) n);
      return;
    }
  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return;
  close_fd (fdp);
  send_frame (QLEAN_GUEST_FRAME_EOF, (uint8_t) which, s->id, NULL, 0);
  exec_maybe_finish (s);
}

/* The child no longer reads its stdin: what is queued, and what still
 * comes, is credited and dropped, so the host never stalls. */
static void exec_stdin_broken (Stream *s)
{
  stdin_queue_free (s);
  close_fd (&s->fd_in);
}

static void exec_stdin_flush (Stream *s)
{
  while (s->q_head && s->fd_in >= 0)
    {
      Chunk *c = s->q_head;
      ssize_t n = write (s->fd_in, c->data + c->off, c->len - c->off);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          if (errno == EAGAIN)
            return;
          exec_stdin_broken (s);
          return;
        }
      c->off += (size_t) n;
      s->credit_pending += (uint64_t) n;
      if (c->off == c->len)
        {
          s->q_head = c->next;
          if (!s->q_head)
            s->q_tail = NULL;
          free (c);
        }
    }
  if (!s->q_head && s->eof_in)
    close_fd (&s->fd_in);
}

static void exec_data (Stream *s, const unsigned char *p, uint32_t len)
{
  Chunk *c;

  if (!s->want_stdin)
    {
      stream_abort (s, EPROTO, "stream %u: DATA for a process started without FLAG_STDIN", s->id);
      return;
    }
  if (s->eof_in)
    {
      stream_abort (s, EPROTO, "stream %u: DATA after EOF", s->id);
      return;
    }
  if (!window_take (s, len))
    return;
  if (s->fd_in < 0)
    {
      s->credit_pending += len;
      return;
    }
  while (!s->q_head && len > 0)
    {
      ssize_t n = write (s->fd_in, p, len);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          if (errno == EAGAIN)
            break;
          s->credit_pending += len;
          exec_stdin_broken (s);
          return;
        }
      p += n;
      len -= (uint32_t) n;
      s->credit_pending += (uint64_t) n;
    }
  if (len == 0)
    return;
  c = xmalloc (sizeof *c + len);
  c->next = NULL;
  c->len = len;
  c->off = 0;
  memcpy (c->data, p, len);
  if (s->q_tail)
    s->q_tail->next = c;
  else
    s->q_head = c;
  s->q_tail = c;
}

/* ------------------------------------------------------------------------ */
/* Files                                                                     */

/* mkdir -p: the last component gets `mode`, missing parents
 * DEFAULT_DIR_MODE. An existing directory (or link to one) is fine
 * unless `exclusive`; anything else existing there is EEXIST. Returns 0
 * or an errno. */
static int mkdir_p (const char *path, mode_t mode, bool exclusive)
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

static void handle_put (uint32_t id, const unsigned char *payload, uint32_t len)
{
  Req r;
  const char *why = NULL;
  char *path = NULL, *dir = NULL, *tmp = NULL, *slash;
  struct stat st;
  int fd, err;
  Stream *s;

  if (!req_parse (payload, len, &r, &why))
    {
      send_error (id, EPROTO, "malformed PUT request: %s", why);
      req_free (&r);
      return;
    }
  if (!r.has_path || !(path = span_str (r.path)))
    {
      send_error (id, EINVAL, r.has_path ? "PATH contains a NUL byte" : "PUT request without PATH");
      goto out;
    }
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

static void put_data (Stream *s, const unsigned char *p, uint32_t len)
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

static void put_finish (Stream *s)
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

static void handle_get (uint32_t id, const unsigned char *payload, uint32_t len)
{
  Req r;
  const char *why = NULL;
  char *path = NULL;
  struct stat st;
  int fd, err;
  Stream *s;
  OutBuf *ob;

  if (!req_parse (payload, len, &r, &why))
    {
      send_error (id, EPROTO, "malformed GET request: %s", why);
      req_free (&r);
      return;
    }
  if (!r.has_path || !(path = span_str (r.path)))
    {
      send_error (id, EINVAL, r.has_path ? "PATH contains a NUL byte" : "GET request without PATH");
      goto out;
    }
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
static void get_read (Stream *s)
{
  while (!s->dead && !s->wait_sent && G.out_bytes < GET_LOW)
    {
      OutBuf *ob;
      ssize_t n;

      if (s->fref && s->fref->fd >= 0 && s->pos < s->end)
        {
          size_t chunk = s->end - s->pos < GET_CHUNK ? (size_t) (s->end - s->pos) : GET_CHUNK;
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
static bool get_check_sent (void)
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

/* ------------------------------------------------------------------------ */
/* Connections (CONNECT)                                                     */

static void connect_maybe_finish (Stream *s)
{
  if (s->dead || !s->eof_out || !s->eof_in || !s->wr_closed || s->q_head)
    return;
  stream_flush_credit (s);
  send_frame (QLEAN_GUEST_FRAME_DONE, 0, s->id, NULL, 0);
  stream_close (s, false);
}

/* Writes queued DATA fd 0 to the socket; after the host's EOF, shuts
 * down the sending side. A peer that no longer takes data gets the rest
 * credited and dropped, as a process that stops reading its stdin. */
static void connect_flush (Stream *s)
{
  while (s->q_head && !s->wr_closed)
    {
      Chunk *c = s->q_head;
      ssize_t n = send (s->sock, c->data + c->off, c->len - c->off, MSG_NOSIGNAL);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          if (errno == EAGAIN)
            return;
          stdin_queue_free (s);
          s->wr_closed = true;
          break;
        }
      c->off += (size_t) n;
      s->credit_pending += (uint64_t) n;
      if (c->off == c->len)
        {
          s->q_head = c->next;
          if (!s->q_head)
            s->q_tail = NULL;
          free (c);
        }
    }
  if (s->wr_closed)
    stdin_queue_free (s);
  else if (!s->q_head && s->eof_in)
    {
      shutdown (s->sock, SHUT_WR);
      s->wr_closed = true;
    }
  connect_maybe_finish (s);
}

static void connect_data (Stream *s, const unsigned char *p, uint32_t len)
{
  Chunk *c;

  if (s->eof_in)
    {
      stream_abort (s, EPROTO, "stream %u: DATA after EOF", s->id);
      return;
    }
  if (!window_take (s, len))
    return;
  if (s->wr_closed)
    {
      s->credit_pending += len;
      return;
    }
  c = xmalloc (sizeof *c + len);
  c->next = NULL;
  c->len = len;
  c->off = 0;
  memcpy (c->data, p, len);
  if (s->q_tail)
    s->q_tail->next = c;
  else
    s->q_head = c;
  s->q_tail = c;
  if (!s->connecting)
    connect_flush (s);
}

/* Reads what the window the host credited allows. */
static void connect_read (Stream *s)
{
  static unsigned char buf[PIPE_CHUNK];
  uint64_t room = QLEAN_GUEST_WINDOW - s->out_unacked;
  ssize_t n;

  if (s->eof_out || s->out_unacked >= QLEAN_GUEST_WINDOW)
    return;
  n = recv (s->sock, buf, room < sizeof buf ? (size_t) room : sizeof buf, 0);
  if (n > 0)
    {
      s->out_unacked += (uint64_t) n;
      send_frame (QLEAN_GUEST_FRAME_DATA, 1, s->id, buf, (size_t) n);
      return;
    }
  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return;
  if (n < 0)
    {
      int err = errno;
      stream_abort (s, err, "connection to port %u: %s", s->port, strerror (err));
      return;
    }
  s->eof_out = true;
  send_frame (QLEAN_GUEST_FRAME_EOF, 1, s->id, NULL, 0);
  connect_maybe_finish (s);
}

/* connect() finished: STARTED, then what the host sent meanwhile. */
static void connect_done (Stream *s)
{
  int err = 0;
  socklen_t len = sizeof err;

  if (getsockopt (s->sock, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
    err = errno;
  if (err)
    {
      stream_abort (s, err, "cannot connect to port %u: %s", s->port, strerror (err));
      return;
    }
  s->connecting = false;
  send_frame (QLEAN_GUEST_FRAME_STARTED, 0, s->id, NULL, 0);
  connect_flush (s);
}

static void connect_event (Stream *s, short revents)
{
  if (s->connecting)
    {
      connect_done (s);
      return;
    }
  if (s->q_head && (revents & (POLLOUT | POLLERR | POLLHUP)))
    connect_flush (s);
  if (!s->dead && (revents & (POLLIN | POLLERR | POLLHUP)))
    connect_read (s);
}

/* The host gave up on the connection: the peer sees a reset, not an
 * orderly end, as it would if a client on the host had died. */
static void connect_reset (Stream *s)
{
  struct linger lg = { .l_onoff = 1, .l_linger = 0 };

  setsockopt (s->sock, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  stream_abort (s, ECANCELED, "stream %u: cancelled", s->id);
}

static void handle_connect (uint32_t id, const unsigned char *payload, uint32_t len)
{
  Req r;
  const char *why = NULL;
  char *addr = NULL;
  union
  {
    struct sockaddr     sa;
    struct sockaddr_in  in4;
    struct sockaddr_in6 in6;
  } sa;
  socklen_t sa_len;
  int fd, one = 1;
  Stream *s;

  memset (&sa, 0, sizeof sa);
  if (!req_parse (payload, len, &r, &why))
    {
      send_error (id, EPROTO, "malformed CONNECT request: %s", why);
      req_free (&r);
      return;
    }
  if (!r.has_port || r.port == 0 || r.port > 65535)
    {
      send_error (id, EINVAL, r.has_port ? "PORT %u is not a TCP port" : "CONNECT request without PORT",
                  r.port);
      goto out;
    }
  if (r.has_addr && !(addr = span_str (r.addr)))
    {
      send_error (id, EINVAL, "ADDR contains a NUL byte");
      goto out;
    }
  if (!addr || inet_pton (AF_INET, addr, &sa.in4.sin_addr) == 1)
    {
      sa.in4.sin_family = AF_INET;
      sa.in4.sin_port = htons ((uint16_t) r.port);
      if (!addr)
        sa.in4.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
      sa_len = sizeof sa.in4;
    }
  else if (inet_pton (AF_INET6, addr, &sa.in6.sin6_addr) == 1)
    {
      sa.in6.sin6_family = AF_INET6;
      sa.in6.sin6_port = htons ((uint16_t) r.port);
      sa_len = sizeof sa.in6;
    }
  else
    {
      send_error (id, EINVAL, "ADDR '%s' is not a numeric IPv4 or IPv6 address", addr);
      goto out;
    }

  fd = socket (sa.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    {
      int err = errno;
      send_error (id, err, "cannot create a socket: %s", strerror (err));
      goto out;
    }
  /* A forwarded connection carries what the host's client wrote, when it
   * wrote it: batching is the client's business, not ours. */
  setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  s = stream_new (id, STREAM_CONNECT);
  s->sock = fd;
  s->port = r.port;
  if (connect (fd, &sa.sa, sa_len) == 0)
    send_frame (QLEAN_GUEST_FRAME_STARTED, 0, id, NULL, 0);
  else if (errno == EINPROGRESS || errno == EINTR)
    s->connecting = true;
  else
    {
      int err = errno;
      stream_abort (s, err, "cannot connect to port %u: %s", r.port, strerror (err));
    }

out:
  free (addr);
  req_free (&r);
}

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

static void out_flush (void);

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

static void handle_fs (uint32_t id, const unsigned char *payload, uint32_t len)
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

/* ------------------------------------------------------------------------ */
/* Frames from the host                                                      */

static void kill_everything (void)
{
  stream_close_all ();
}

/* HELLO: u64 nonce from the host; we answer u64 nonce, u32 version,
 * u32 pid. A new host means the old one is gone: kill what it ran. */
static void handle_hello (const unsigned char *p, uint32_t len)
{
  unsigned char b[16];

  if (len < 8)
    return;
  kill_everything ();
  out_drop (false);
  G.synced = true;
  memcpy (b, p, 8);
  put_u32 (b + 8, QLEAN_GUEST_VERSION);
  put_u32 (b + 12, (uint32_t) getpid ());
  send_frame (QLEAN_GUEST_FRAME_HELLO, 0, 0, b, sizeof b);
}

static void handle_frame (const unsigned char *h, const unsigned char *p, uint32_t len)
{
  uint8_t type = h[4], fd = h[5];
  uint32_t id = get_u32 (h + 8);
  Stream *s;

  if (type == QLEAN_GUEST_FRAME_HELLO && id == 0)
    {
      handle_hello (p, len);
      return;
    }
  if (!G.synced || id == 0)
    return;
  s = stream_find (id);
  switch (type)
    {
    case QLEAN_GUEST_FRAME_EXEC:
    case QLEAN_GUEST_FRAME_PUT:
    case QLEAN_GUEST_FRAME_GET:
    case QLEAN_GUEST_FRAME_FS:
    case QLEAN_GUEST_FRAME_CONNECT:
      if (s)
        {
          send_error (id, EBUSY, "stream %u is already in use", id);
          return;
        }
      if (type == QLEAN_GUEST_FRAME_EXEC)
        handle_exec (id, p, len);
      else if (type == QLEAN_GUEST_FRAME_PUT)
        handle_put (id, p, len);
      else if (type == QLEAN_GUEST_FRAME_GET)
        handle_get (id, p, len);
      else if (type == QLEAN_GUEST_FRAME_CONNECT)
        handle_connect (id, p, len);
      else
        handle_fs (id, p, len);
      return;

    case QLEAN_GUEST_FRAME_DATA:
    case QLEAN_GUEST_FRAME_EOF:
      /* For a stream that ended meanwhile: the host had not seen the end. */
      if (!s)
        return;
      if (fd != 0 || s->kind == STREAM_GET)
        {
          stream_abort (s, EPROTO, "stream %u: %s for fd %u", id,
                        type == QLEAN_GUEST_FRAME_DATA ? "DATA" : "EOF", fd);
          return;
        }
      if (type == QLEAN_GUEST_FRAME_DATA)
        {
          if (s->kind == STREAM_EXEC)
            exec_data (s, p, len);
          else if (s->kind == STREAM_CONNECT)
            connect_data (s, p, len);
          else
            put_data (s, p, len);
          return;
        }
      if (s->eof_in)
        return;
      s->eof_in = true;
      if (s->kind == STREAM_EXEC)
        exec_stdin_flush (s);
      else if (s->kind == STREAM_CONNECT)
        {
          if (!s->connecting)
            connect_flush (s);
        }
      else
        put_finish (s);
      return;

    case QLEAN_GUEST_FRAME_SIGNAL:
      if (!s)
        return;
      if (len != 4)
        {
          stream_abort (s, EPROTO, "stream %u: SIGNAL needs a u32", id);
          return;
        }
      if (s->kind == STREAM_EXEC)
        {
          /* Errors (ESRCH: the group is gone; EINVAL) are not reported:
           * ERROR would end a stream whose EXIT is still to come. */
          kill (-s->pid, (int) get_u32 (p));
          return;
        }
      if (s->kind == STREAM_CONNECT)
        {
          connect_reset (s);
          return;
        }
      /* A transfer is cancelled: a PUT leaves nothing behind. */
      stream_abort (s, ECANCELED, "stream %u: cancelled", id);
      return;

    case QLEAN_GUEST_FRAME_WINSIZE:
      /* The kernel sends SIGWINCH to the terminal's foreground group. A
       * stream without a terminal ignores it: the host may resize while
       * a process ends. */
      if (s && s->kind == STREAM_EXEC && s->terminal && s->fd_out >= 0)
        {
          struct winsize ws;

          if (len != 4)
            {
              stream_abort (s, EPROTO, "stream %u: WINSIZE needs u16 rows and u16 cols", id);
              return;
            }
          memset (&ws, 0, sizeof ws);
          ws.ws_row = get_u16 (p);
          ws.ws_col = get_u16 (p + 2);
          ioctl (s->fd_out, TIOCSWINSZ, &ws);
        }
      return;

    case QLEAN_GUEST_FRAME_CREDIT:
      /* Guest-to-host data is flow controlled only on connections. */
      if (s && s->kind == STREAM_CONNECT && fd == 1 && len == 4)
        {
          uint32_t n = get_u32 (p);
          s->out_unacked -= n < s->out_unacked ? n : s->out_unacked;
        }
      return;

    default:
      if (s)
        stream_abort (s, EPROTO, "stream %u: unexpected frame type %u", id, type);
      else
        send_error (id, EPROTO, "unexpected frame type %u", type);
      return;
    }
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
static void process_input (void)
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

/* ------------------------------------------------------------------------ */
/* The port                                                                  */

static void shutdown_and_exit (int status)
{
  kill_everything ();
  exit (status);
}

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

static int port_open_once (void)
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

static void port_retry (void)
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

static void port_read (void)
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

static void out_flush (void)
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

/* ------------------------------------------------------------------------ */
/* Children                                                                  */

static void handle_signals (void)
{
  struct signalfd_siginfo si[16];
  bool child = false;
  pid_t pid;
  int status;

  for (;;)
    {
      ssize_t n = read (G.sigfd, si, sizeof si);
      if (n <= 0)
        break;
      for (size_t i = 0; i < (size_t) n / sizeof si[0]; i++)
        {
          if (si[i].ssi_signo == SIGCHLD)
            child = true;
          else
            shutdown_and_exit (0);
        }
      if ((size_t) n < sizeof si)
        break;    /* that was all */
    }
  if (!child)
    return;
  while ((pid = waitpid (-1, &status, WNOHANG)) > 0)
    {
      Stream *s = stream_find_pid (pid);
      if (!s)
        continue;   /* an aborted stream's process, or an orphan we inherited */
      s->exited = true;
      s->status = status;
      exec_maybe_finish (s);
    }
}

/* ------------------------------------------------------------------------ */
/* Setup and the loop                                                        */

/* Marks every inherited fd close-on-exec, so children get only 0, 1, 2. */
static void mark_cloexec (void)
{
  DIR *d;
  struct dirent *e;

  if (syscall (SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) == 0)
    return;
  d = opendir ("/proc/self/fd");
  if (!d)
    {
      for (int fd = 3; fd < 4096; fd++)
        fcntl (fd, F_SETFD, FD_CLOEXEC);
      return;
    }
  while ((e = readdir (d)))
    {
      int fd = atoi (e->d_name);
      if (fd > 2 && fd != dirfd (d))
        fcntl (fd, F_SETFD, FD_CLOEXEC);
    }
  closedir (d);
}

static void setup (void)
{
  struct sigaction sa;
  sigset_t set;
  int fd;

  /* 0, 1 and 2 are open, so our own fds are all above 2 and the dup2()
   * calls in the child never clobber each other. */
  while ((fd = open ("/dev/null", O_RDWR)) >= 0 && fd <= 2)
    ;
  if (fd > 2)
    close (fd);
  mark_cloexec ();
  G.devnull = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  if (G.devnull < 0)
    {
      /* No /dev yet: a pipe without a writer reads as empty just the same. */
      int p[2];
      if (pipe2 (p, O_CLOEXEC) == 0)
        {
          close (p[1]);
          G.devnull = p[0];
        }
    }
  if (chdir ("/") < 0)
    logmsg ("chdir /: %s", strerror (errno));
  G.child_umask = umask (0);
  G.euid = geteuid ();
  if (!getenv ("PATH"))
    setenv ("PATH", DEFAULT_PATH, 1);

  /* Known dispositions: everything default but SIGPIPE and SIGHUP, which
   * the children get back as default. */
  memset (&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP)
      sigaction (sig, &sa, NULL);
  sa.sa_handler = SIG_IGN;
  sigaction (SIGPIPE, &sa, NULL);
  sigaction (SIGHUP, &sa, NULL);
  sigemptyset (&set);
  sigaddset (&set, SIGCHLD);
  sigaddset (&set, SIGTERM);
  sigaddset (&set, SIGINT);
  sigprocmask (SIG_SETMASK, &set, NULL);
  G.sigfd = signalfd (-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (G.sigfd < 0)
    {
      logmsg ("signalfd: %s", strerror (errno));
      exit (1);
    }

  /* Big buffers come and go with every GET chunk; keep them in the heap
   * rather than mapping fresh (zeroed) pages each time. */
  mallopt (M_MMAP_THRESHOLD, 4 * 1024 * 1024);
  mallopt (M_TRIM_THRESHOLD, 16 * 1024 * 1024);
  G.in = xmalloc (IN_CAP);
}

typedef enum
{
  EV_PORT,
  EV_SIG,
  EV_OUT,
  EV_ERR,
  EV_IN,
  EV_FILE,
  EV_SOCK,
} EvKind;

static void run (void)
{
  struct pollfd *pfd = NULL;
  Stream **evs = NULL;
  EvKind *evk = NULL;
  size_t cap = 0;

  for (;;)
    {
      size_t n = 0, need = 2 + 3 * G.n_streams;
      int timeout = -1, r;

      if (need > cap)
        {
          cap = need * 2;
          pfd = xrealloc (pfd, cap * sizeof *pfd);
          evs = xrealloc (evs, cap * sizeof *evs);
          evk = xrealloc (evk, cap * sizeof *evk);
        }
#define ADD(fd_, events_, s_, k_) \
      do { pfd[n].fd = (fd_); pfd[n].events = (events_); pfd[n].revents = 0; \
           evs[n] = (s_); evk[n] = (k_); n++; } while (0)

      if (G.port_fd >= 0 && G.connected)
        ADD (G.port_fd, POLLIN | (G.out_head ? POLLOUT : 0), NULL, EV_PORT);
      else
        {
          int64_t wait = G.retry_at - now_ms ();
          timeout = wait < 0 ? 0 : (int) wait;
        }
      if (G.synced && G.stall_since && !G.stall_checked)
        {
          int64_t wait = G.stall_since + STALL_MS - now_ms ();
          if (wait < 0)
            wait = 0;
          if (timeout < 0 || wait < timeout)
            timeout = (int) wait;
        }
      ADD (G.sigfd, POLLIN, NULL, EV_SIG);
      for (size_t i = 0; i < G.n_streams; i++)
        {
          Stream *s = G.streams[i];
          if (s->dead)
            continue;
          if (s->kind == STREAM_EXEC)
            {
              if (G.out_bytes < OUT_HIGH)
                {
                  if (s->fd_out >= 0)
                    ADD (s->fd_out, POLLIN, s, EV_OUT);
                  if (s->fd_err >= 0)
                    ADD (s->fd_err, POLLIN, s, EV_ERR);
                }
              if (s->fd_in >= 0 && s->q_head)
                ADD (s->fd_in, POLLOUT, s, EV_IN);
            }
          else if (s->kind == STREAM_GET && !s->wait_sent && G.out_bytes < GET_LOW)
            ADD (s->file_fd, POLLIN, s, EV_FILE);
          else if (s->kind == STREAM_CONNECT)
            {
              short events = 0;
              if (s->connecting)
                events = POLLOUT;
              else
                {
                  if (!s->eof_out && s->out_unacked < QLEAN_GUEST_WINDOW && G.out_bytes < OUT_HIGH)
                    events |= POLLIN;
                  if (s->q_head && !s->wr_closed)
                    events |= POLLOUT;
                }
              if (events)
                ADD (s->sock, events, s, EV_SOCK);
            }
        }
#undef ADD

      r = poll (pfd, n, timeout);
      if (r < 0 && errno != EINTR)
        {
          logmsg ("poll: %s", strerror (errno));
          exit (1);
        }
      if ((G.port_fd < 0 || !G.connected) && now_ms () >= G.retry_at)
        port_retry ();
      if (r == 0 && G.synced && G.stall_since && !G.stall_checked)
        process_input ();
      for (size_t i = 0; r > 0 && i < n; i++)
        {
          Stream *s = evs[i];
          if (!pfd[i].revents || (s && s->dead))
            continue;
          switch (evk[i])
            {
            case EV_PORT:
              if (G.port_fd == pfd[i].fd && G.connected && (pfd[i].revents & ~POLLOUT))
                port_read ();
              break;
            case EV_SIG:
              handle_signals ();
              break;
            case EV_OUT:
              if (s->fd_out >= 0)
                exec_read (s, 1);
              break;
            case EV_ERR:
              if (s->fd_err >= 0)
                exec_read (s, 2);
              break;
            case EV_IN:
              if (s->fd_in < 0)
                break;
              if (pfd[i].revents & (POLLERR | POLLHUP))
                exec_stdin_broken (s);
              else
                exec_stdin_flush (s);
              break;
            case EV_FILE:
              get_read (s);
              break;
            case EV_SOCK:
              if (s->sock >= 0)
                connect_event (s, pfd[i].revents);
              break;
            }
        }
      flush_credits ();
      /* Until no GET moves on: a flush that writes the last frame of a
       * GET's file, with nothing checked after it, would leave the GET
       * (which polls nothing while it waits) and its EOF to whatever
       * wakes the loop next; with the host waiting for that EOF, nothing
       * did. Each GET waits for its frames once, so this ends. */
      do
        out_flush ();
      while (get_check_sent ());
      stream_free_dead ();
    }
}

static void usage (FILE *f)
{
  fprintf (f,
           "usage: qlean-guest serve [--port PATH | --fd N]\n"
           "       qlean-guest --version\n"
           "\n"
           "Serves Qlean's data channel: by default the virtio-serial port named\n"
           QLEAN_GUEST_PORT_NAME ", or PATH, or the already open fd N.\n");
}

int main (int argc, char **argv)
{
  int fd_arg = -1;

  if (argc == 2 && strcmp (argv[1], "--version") == 0)
    {
      printf ("qlean-guest %s (protocol %u)\n", PACKAGE_VERSION, QLEAN_GUEST_VERSION);
      return 0;
    }
  if (argc == 2 && (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0))
    {
      usage (stdout);
      return 0;
    }
  if (argc < 2 || strcmp (argv[1], "serve") != 0)
    {
      usage (stderr);
      return 2;
    }
  for (int i = 2; i < argc; i++)
    {
      const char *a = argv[i], *v = NULL;
      if (strcmp (a, "--port") == 0 || strcmp (a, "--fd") == 0)
        {
          if (i + 1 >= argc)
            {
              usage (stderr);
              return 2;
            }
          v = argv[++i];
        }
      else if (strncmp (a, "--port=", 7) == 0)
        a = "--port", v = argv[i] + 7;
      else if (strncmp (a, "--fd=", 5) == 0)
        a = "--fd", v = argv[i] + 5;
      else
        {
          usage (stderr);
          return 2;
        }
      if (strcmp (a, "--port") == 0)
        G.port_path = v;
      else
        {
          unsigned long n;
          if (!parse_id (v, &n) || n > INT_MAX)
            {
              fprintf (stderr, "qlean-guest: bad --fd '%s'\n", v);
              return 2;
            }
          fd_arg = (int) n;
        }
    }
  if (fd_arg >= 0 && G.port_path)
    {
      usage (stderr);
      return 2;
    }

  G.port_fd = -1;
  setup ();
  if (fd_arg >= 0)
    {
      int fl = fcntl (fd_arg, F_GETFL);
      if (fl < 0)
        {
          fprintf (stderr, "qlean-guest: --fd %d: %s\n", fd_arg, strerror (errno));
          return 1;
        }
      fcntl (fd_arg, F_SETFL, fl | O_NONBLOCK);
      fcntl (fd_arg, F_SETFD, FD_CLOEXEC);
      G.port_fd = fd_arg;
      G.fd_mode = true;
    }
  else
    {
      int64_t deadline = now_ms () + PORT_WAIT_MS;
      while ((G.port_fd = port_open_once ()) < 0)
        {
          if (now_ms () >= deadline)
            {
              fprintf (stderr, "qlean-guest: cannot open %s: %s\n",
                       G.port_path ? G.port_path : "the port " QLEAN_GUEST_PORT_NAME,
                       errno ? strerror (errno) : "not found");
              return 1;
            }
          usleep (RETRY_MS * 1000);
        }
    }
  G.connected = true;
  run ();
  return 0;
}
