/* qlean-guest-private.h: what the files of the guest program share
 *
 * SPDX-License-Identifier: MIT
 *
 * qlean-guest is one single-threaded program (see the design notes at
 * the top of qlean-guest.c) split into files by concern; this header
 * holds the state they all touch (the port, the output queue, the
 * stream table: one GuestState, G), the types of a stream, of a queued
 * frame and of a parsed request, and the functions one file offers the
 * others. Like the program, it needs nothing but libc and the protocol
 * header, so the cross compilers build it as it is.
 *
 *   qlean-guest.c          the loop, setup, HELLO and the dispatch of frames
 *   qlean-guest-frames.c   helpers, building and queueing frames, request TLVs
 *   qlean-guest-port.c     the port: opening it, splitting input, writing output
 *   qlean-guest-streams.c  the stream table, credits and the window
 *   qlean-guest-exec.c     EXEC: starting processes, terminals, their pipes
 *   qlean-guest-users.c    USER: /etc/passwd and /etc/group, parsed by hand
 *   qlean-guest-files.c    PUT and GET
 *   qlean-guest-connect.c  CONNECT
 *   qlean-guest-fs.c       FS operations, one function per operation
 *   qlean-guest-identity.c FS IDENTITY: a copy's own name, machine-id, MAC, seed
 *   qlean-guest-net.c      FS NET CONFIGURE, and the card helpers IDENTITY uses
 */

#pragma once

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
#define GET_CHUNK           (256u * 1024u)          /* DATA of a GET read() into memory */
#endif
/* DATA of a GET sent from a regular file with sendfile(): the largest
 * frame, since each frame costs a port buffer of its own for its header
 * and a turn of the loop. With 256 KiB frames QEMU spent 8-18% more CPU
 * per MiB than on a plain `cat` into a port, with 1 MiB 2-3% (bench-port,
 * same runs), and downloads went from 78-90% of that ceiling to 91-95%. */
#ifndef GET_FILE_CHUNK
#define GET_FILE_CHUNK      QLEAN_GUEST_MAX_PAYLOAD
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

static inline void put_u16 (unsigned char *p, uint16_t v)
{
  p[0] = (unsigned char) v;
  p[1] = (unsigned char) (v >> 8);
}

static inline void put_u32 (unsigned char *p, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char) (v >> (8 * i));
}

static inline void put_u64 (unsigned char *p, uint64_t v)
{
  for (int i = 0; i < 8; i++)
    p[i] = (unsigned char) (v >> (8 * i));
}

static inline uint16_t get_u16 (const unsigned char *p)
{
  return (uint16_t) (p[0] | (p[1] << 8));
}

static inline uint32_t get_u32 (const unsigned char *p)
{
  return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
}

static inline uint64_t get_u64 (const unsigned char *p)
{
  return (uint64_t) get_u32 (p) | ((uint64_t) get_u32 (p + 4) << 32);
}

static inline int64_t now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t ts_ns (const struct timespec *ts)
{
  return (int64_t) ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static inline struct timespec ns_ts (int64_t ns)
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


/* ------------------------------------------------------------------------ */
/* Types                                                                     */

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

/* The program's state: one port, one output queue, one stream table. */
typedef struct
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
  int          trace_fd;       /* QLEAN_GUEST_TRACE: EXEC timings, or -1 */
} GuestState;

extern GuestState G;

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

/* A parsed request: spans point into the frame's payload. */
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
  /* FS IDENTITY, FS NET CONFIGURE */
  Span     hostname, machine_id, seed, old_mac, new_mac, gateway, hosts;
  bool     has_hostname, has_machine_id, has_seed, has_old_mac, has_new_mac;
  bool     has_gateway, has_hosts, has_prefix;
  uint16_t rows, cols;
  uint32_t flags, mode, op, port, prefix;
  int64_t  mtime;
} Req;

/* USER, resolved. */
typedef struct
{
  uid_t   uid;
  gid_t   gid;
  char   *name;
  char   *home;
  gid_t  *groups;
  size_t  n_groups;
} UserInfo;

/* ------------------------------------------------------------------------ */
/* Functions                                                                 */

/* qlean-guest.c */
void handle_frame (const unsigned char *h, const unsigned char *p, uint32_t len);
void __attribute__ ((noreturn)) shutdown_and_exit (int status);

/* qlean-guest-frames.c: helpers */
void logmsg (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
void *xmalloc (size_t n) __attribute__ ((malloc, returns_nonnull));
void *xrealloc (void *p, size_t n);
char *xstrdup (const char *s);
char *read_small_file (const char *path, size_t *len);

/* qlean-guest-frames.c: frames to the host */
OutBuf *ob_new (size_t payload_hint);
FileRef *fileref_new (int fd);
void fileref_unref (FileRef *fr);
void ob_free (OutBuf *ob);
unsigned char *ob_grow (OutBuf **obp, size_t n);
void ob_tlv (OutBuf **obp, uint16_t tag, const void *v, size_t n);
void ob_tlv_u32 (OutBuf **obp, uint16_t tag, uint32_t v);
void ob_tlv_u64 (OutBuf **obp, uint16_t tag, uint64_t v);
size_t ob_payload (const OutBuf *ob);
void ob_send (OutBuf *ob, uint8_t type, uint8_t fd, uint32_t stream);
void send_frame (uint8_t type, uint8_t fd, uint32_t stream, const void *payload, size_t n);
void send_u32 (uint8_t type, uint8_t fd, uint32_t stream, uint32_t v);
void send_error (uint32_t stream, int err, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));
void out_drop (bool all);

/* qlean-guest-frames.c: requests */
void req_free (Req *r);
char *span_str (Span sp);
bool req_parse_request (uint32_t id, const char *what, const unsigned char *payload, uint32_t len, Req *r);
char *req_path (uint32_t id, const char *what, const Req *r);

/* qlean-guest-port.c */
int port_open_once (void);
void port_retry (void);
void port_read (void);
void process_input (void);
void out_flush (void);

/* qlean-guest-streams.c */
Stream *stream_find (uint32_t id);
Stream *stream_find_pid (pid_t pid);
Stream *stream_new (uint32_t id, StreamKind kind);
void close_fd (int *fd);
void stdin_queue_free (Stream *s);
void stdin_queue_push (Stream *s, const unsigned char *p, uint32_t len);
bool stdin_queue_write (Stream *s, int fd, bool sock);
void stream_close (Stream *s, bool kill_it);
void stream_abort (Stream *s, int err, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));
void stream_free_dead (void);
void stream_close_all (void);
void stream_flush_credit (Stream *s);
void flush_credits (void);
bool window_take (Stream *s, uint32_t n);

/* qlean-guest-exec.c */
void handle_exec (uint32_t id, const unsigned char *payload, uint32_t len);
void exec_maybe_finish (Stream *s);
void exec_read (Stream *s, int which);
void exec_stdin_broken (Stream *s);
void exec_stdin_flush (Stream *s);
void exec_data (Stream *s, const unsigned char *p, uint32_t len);
void exec_warm_up (void);

/* qlean-guest-exec.c: EXEC timings for bench/exec (QLEAN_GUEST_TRACE) */
typedef enum
{
  TRACE_RECEIVED,   /* the EXEC frame is parsed */
  TRACE_SPAWNED,    /* vfork() returned: the child has exec'd */
  TRACE_REAPED,     /* waitpid() returned its status */
  TRACE_QUEUED,     /* EXIT is queued */
  TRACE_SENT,       /* ...and written to the port */
  N_TRACE_STEPS
} TraceStep;

void exec_trace_open (void);
void exec_trace_mark (uint32_t id, TraceStep step);
void exec_trace_flush (void);

/* qlean-guest-users.c */
bool parse_id (const char *s, unsigned long *out);
int lookup_user (const char *spec, UserInfo *ui);
void user_info_clear (UserInfo *ui);

/* qlean-guest-files.c */
int mkdir_p (const char *path, mode_t mode, bool exclusive);
void handle_put (uint32_t id, const unsigned char *payload, uint32_t len);
void put_data (Stream *s, const unsigned char *p, uint32_t len);
void put_finish (Stream *s);
void handle_get (uint32_t id, const unsigned char *payload, uint32_t len);
void get_read (Stream *s);
bool get_check_sent (void);

/* qlean-guest-connect.c */
void handle_connect (uint32_t id, const unsigned char *payload, uint32_t len);
void connect_data (Stream *s, const unsigned char *p, uint32_t len);
void connect_flush (Stream *s);
void connect_event (Stream *s, short revents);
void connect_reset (Stream *s);

/* qlean-guest-fs.c */
void handle_fs (uint32_t id, const unsigned char *payload, uint32_t len);

/* qlean-guest-identity.c */
int write_whole_file (const char *path, const char *data, size_t len, bool create);
int reseed_random (int urandom_fd);
int set_identity (const Req *r, const char **failed);

/* qlean-guest-net.c (IFNAMSIZ bytes of @ifname, from <net/if.h>) */
bool parse_mac (const char *text, unsigned char mac[6]);
int find_card (const char *mac, char *ifname);
int set_card_mac (int sock, const char *ifname, const unsigned char mac[6]);
int configure_network (const Req *r, const char **failed);
