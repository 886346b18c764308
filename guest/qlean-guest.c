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
 * This file holds the loop, setup, HELLO and the dispatch of the host's
 * frames to the files that serve each request; qlean-guest-private.h
 * lists them.
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

#include "qlean-guest-private.h"

GuestState G;

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

/* A request: a new stream, on an id that is free. */
static void handle_request (uint8_t type, uint32_t id, Stream *s, const unsigned char *p, uint32_t len)
{
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
}

/* DATA or EOF fd 0: a process's stdin, a connection's sending side, or
 * a PUT's file. */
static void handle_data_eof (uint8_t type, uint8_t fd, uint32_t id, Stream *s,
                             const unsigned char *p, uint32_t len)
{
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
}

static void handle_signal (uint32_t id, Stream *s, const unsigned char *p, uint32_t len)
{
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
}

static void handle_winsize (uint32_t id, Stream *s, const unsigned char *p, uint32_t len)
{
  struct winsize ws;

  /* The kernel sends SIGWINCH to the terminal's foreground group. A
   * stream without a terminal ignores it: the host may resize while
   * a process ends. */
  if (!s || s->kind != STREAM_EXEC || !s->terminal || s->fd_out < 0)
    return;
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

void handle_frame (const unsigned char *h, const unsigned char *p, uint32_t len)
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
      handle_request (type, id, s, p, len);
      return;

    case QLEAN_GUEST_FRAME_DATA:
    case QLEAN_GUEST_FRAME_EOF:
      handle_data_eof (type, fd, id, s, p, len);
      return;

    case QLEAN_GUEST_FRAME_SIGNAL:
      handle_signal (id, s, p, len);
      return;

    case QLEAN_GUEST_FRAME_WINSIZE:
      handle_winsize (id, s, p, len);
      return;

    case QLEAN_GUEST_FRAME_CREDIT:
      /* Guest-to-host data is flow controlled only on connections. */
      if (s && s->kind == STREAM_CONNECT && fd == 1 && len == 4)
        {
          uint32_t n = get_u32 (p);
          s->out_unacked -= n < s->out_unacked ? n : s->out_unacked;
        }
      return;

    case QLEAN_GUEST_FRAME_NONE:   /* never a frame: see the protocol header */
    default:
      if (s)
        stream_abort (s, EPROTO, "stream %u: unexpected frame type %u", id, type);
      else
        send_error (id, EPROTO, "unexpected frame type %u", type);
      return;
    }
}

void shutdown_and_exit (int status)
{
  kill_everything ();
  exit (status);
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
      exec_trace_mark (s->id, TRACE_REAPED);
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
  exec_trace_open ();
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

/* What the loop polls: pfd[i] is for stream evs[i] (NULL for the port
 * and the signalfd), as event kind evk[i]. */
typedef struct
{
  struct pollfd *pfd;
  Stream       **evs;
  EvKind        *evk;
  size_t         n, cap;
} PollSet;

static void poll_add (PollSet *ps, int fd, short events, Stream *s, EvKind k)
{
  ps->pfd[ps->n].fd = fd;
  ps->pfd[ps->n].events = events;
  ps->pfd[ps->n].revents = 0;
  ps->evs[ps->n] = s;
  ps->evk[ps->n] = k;
  ps->n++;
}

/* A stream's fds, for what it can do now: output is read only while the
 * queue is below its high-water mark, a GET's file only below GET_LOW
 * and not while it waits for its frames to go out. */
static void poll_add_stream (PollSet *ps, Stream *s)
{
  if (s->kind == STREAM_EXEC)
    {
      if (G.out_bytes < OUT_HIGH)
        {
          if (s->fd_out >= 0)
            poll_add (ps, s->fd_out, POLLIN, s, EV_OUT);
          if (s->fd_err >= 0)
            poll_add (ps, s->fd_err, POLLIN, s, EV_ERR);
        }
      if (s->fd_in >= 0 && s->q_head)
        poll_add (ps, s->fd_in, POLLOUT, s, EV_IN);
    }
  else if (s->kind == STREAM_GET && !s->wait_sent && G.out_bytes < GET_LOW)
    poll_add (ps, s->file_fd, POLLIN, s, EV_FILE);
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
        poll_add (ps, s->sock, events, s, EV_SOCK);
    }
}

/* Fills the poll set; returns poll()'s timeout: the next port retry, or
 * when a stalled frame is due for its check (see process_input()). */
static int poll_set_build (PollSet *ps)
{
  size_t need = 2 + 3 * G.n_streams;
  int timeout = -1;

  if (need > ps->cap)
    {
      ps->cap = need * 2;
      ps->pfd = xrealloc (ps->pfd, ps->cap * sizeof *ps->pfd);
      ps->evs = xrealloc (ps->evs, ps->cap * sizeof *ps->evs);
      ps->evk = xrealloc (ps->evk, ps->cap * sizeof *ps->evk);
    }
  ps->n = 0;
  if (G.port_fd >= 0 && G.connected)
    poll_add (ps, G.port_fd, POLLIN | (G.out_head ? POLLOUT : 0), NULL, EV_PORT);
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
  poll_add (ps, G.sigfd, POLLIN, NULL, EV_SIG);
  for (size_t i = 0; i < G.n_streams; i++)
    if (!G.streams[i]->dead)
      poll_add_stream (ps, G.streams[i]);
  return timeout;
}

/* What poll() said of pfd[i]. */
static void poll_dispatch (PollSet *ps, size_t i)
{
  Stream *s = ps->evs[i];
  short revents = ps->pfd[i].revents;

  if (!revents || (s && s->dead))
    return;
  switch (ps->evk[i])
    {
    case EV_PORT:
      if (G.port_fd == ps->pfd[i].fd && G.connected && (revents & ~POLLOUT))
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
      if (revents & (POLLERR | POLLHUP))
        exec_stdin_broken (s);
      else
        exec_stdin_flush (s);
      break;
    case EV_FILE:
      get_read (s);
      break;
    case EV_SOCK:
      if (s->sock >= 0)
        connect_event (s, revents);
      break;
    }
}

static void run (void)
{
  PollSet ps;

  memset (&ps, 0, sizeof ps);
  for (;;)
    {
      int timeout = poll_set_build (&ps);
      int r = poll (ps.pfd, ps.n, timeout);

      if (r < 0 && errno != EINTR)
        {
          logmsg ("poll: %s", strerror (errno));
          exit (1);
        }
      if ((G.port_fd < 0 || !G.connected) && now_ms () >= G.retry_at)
        port_retry ();
      if (r == 0 && G.synced && G.stall_since && !G.stall_checked)
        process_input ();
      for (size_t i = 0; r > 0 && i < ps.n; i++)
        poll_dispatch (&ps, i);
      flush_credits ();
      /* Until no GET moves on: a flush that writes the last frame of a
       * GET's file, with nothing checked after it, would leave the GET
       * (which polls nothing while it waits) and its EOF to whatever
       * wakes the loop next; with the host waiting for that EOF, nothing
       * did. Each GET waits for its frames once, so this ends. */
      do
        out_flush ();
      while (get_check_sent ());
      exec_trace_flush ();
      stream_free_dead ();
    }
}

static void usage (FILE *f)
{
  fprintf (f,
           "usage: qlean-guest serve [--port PATH | --fd N]\n"
           "       qlean-guest reseed\n"
           "       qlean-guest --version\n"
           "\n"
           "Serves Qlean's data channel: by default the virtio-serial port named\n"
           QLEAN_GUEST_PORT_NAME ", or PATH, or the already open fd N.\n"
           "reseed: makes the kernel reseed its random generator now (a copy\n"
           "of a saved machine runs it after the host's bytes were written to\n"
           "/dev/urandom).\n");
}

/* qlean-guest reseed: what FS IDENTITY does at its end, for the host's
 * script (a stock agent's path) on a guest that has qlean-guest. */
static int reseed (void)
{
  int err = reseed_random (-1);

  if (err)
    {
      fprintf (stderr, "qlean-guest: cannot reseed the random generator: %s\n", strerror (err));
      return 1;
    }
  return 0;
}

int main (int argc, char **argv)
{
  int fd_arg = -1;

  if (argc == 2 && strcmp (argv[1], "--version") == 0)
    {
      printf ("qlean-guest %s (protocol %u)\n", PACKAGE_VERSION, QLEAN_GUEST_VERSION);
      return 0;
    }
  if (argc == 2 && strcmp (argv[1], "reseed") == 0)
    return reseed ();
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
