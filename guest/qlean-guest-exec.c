/* qlean-guest-exec.c: EXEC, processes and their terminals
 *
 * SPDX-License-Identifier: MIT
 *
 * Starting a process (vfork() and a child that only makes system calls
 * on memory the parent prepared, see the design notes in qlean-guest.c),
 * its environment, its pipes or pseudo-terminal, and the life of an EXEC
 * stream afterwards: output read into DATA, stdin queued and written,
 * EXIT once the process and both pipes are done.
 */

#include "qlean-guest-private.h"

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

/* After a restore every new process runs on a cold TCG translation
 * cache: the guest's first command paid tens of milliseconds for process
 * creation and the shell's start-up. FS IDENTITY with FLAG_WARM runs
 * `/bin/sh -c :` the way EXEC runs a command, and waits for it, so that
 * this is paid before the machine is ready (a warmed spare pays it
 * before anyone takes it). Run in the background instead, it competed
 * with the first command for the guest's one CPU, and that command came
 * later than without it. A guest without /bin/sh has nothing to warm. */
void exec_warm_up (void)
{
  static char *argv_store[] = { NULL, (char *) "/bin/sh", (char *) "-c", (char *) ":", NULL };
  Spawn sp;
  pid_t pid;

  if (access ("/bin/sh", X_OK) != 0)
    return;
  memset (&sp, 0, sizeof sp);
  sp.argv = argv_store + 1;
  sp.envp = environ;
  sp.search = "";
  sp.fd0 = sp.fd1 = sp.fd2 = G.devnull;
  sp.umask = G.child_umask;
  pid = spawn (&sp);
  while (pid > 0 && waitpid (pid, NULL, 0) < 0 && errno == EINTR)
    ;
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

/* An EXEC request on its way to a process: what handle_exec()'s steps
 * build, and free at the end whatever happened. */
typedef struct
{
  uint32_t  id;
  Req       r;
  char    **argv_store;
  char     *arg_bytes;
  char     *cwd;
  char     *user;
  Env       env;
  UserInfo  ui;
  Spawn     sp;
  int       outp[2], errp[2], inp[2];
  bool      merge, want_stdin, terminal;
} ExecPlan;

static void exec_plan_clear (ExecPlan *x)
{
  free (x->sp.pathbuf);
  env_free (&x->env);
  user_info_clear (&x->ui);
  free (x->argv_store);
  free (x->arg_bytes);
  free (x->cwd);
  free (x->user);
  req_free (&x->r);
}

/* The flags: what we do not know is refused. */
static bool exec_check_flags (ExecPlan *x)
{
  uint32_t id = x->id;

  if (x->r.n_args == 0)
    {
      send_error (id, EINVAL, "EXEC request without ARG");
      return false;
    }
  /* Refused, not ignored: a flag we do not know may change what the
   * process is (FLAG_TERMINAL did), and a host must learn that we
   * cannot do it rather than get something else. */
  if (x->r.flags & ~(uint32_t) (QLEAN_GUEST_FLAG_CLEAR_ENV | QLEAN_GUEST_FLAG_MERGE_STDERR
                                | QLEAN_GUEST_FLAG_STDIN | QLEAN_GUEST_FLAG_TERMINAL))
    {
      send_error (id, EINVAL, "EXEC request with unknown flags 0x%x (qlean-guest %s, protocol version %u)",
                  (unsigned) x->r.flags, PACKAGE_VERSION, (unsigned) QLEAN_GUEST_VERSION);
      return false;
    }
  x->terminal = (x->r.flags & QLEAN_GUEST_FLAG_TERMINAL) != 0;
  x->merge = x->terminal || (x->r.flags & QLEAN_GUEST_FLAG_MERGE_STDERR) != 0;
  x->want_stdin = x->terminal || (x->r.flags & QLEAN_GUEST_FLAG_STDIN) != 0;
  return true;
}

/* argv, in one block, with a spare slot in front; and CWD. */
static bool exec_build_argv (ExecPlan *x)
{
  const Req *r = &x->r;
  size_t total = 0;

  for (size_t i = 0; i < r->n_args; i++)
    {
      if (memchr (r->args[i].p, 0, r->args[i].len))
        {
          send_error (x->id, EINVAL, "ARG %zu contains a NUL byte", i);
          return false;
        }
      total += r->args[i].len + 1;
    }
  x->argv_store = xmalloc ((r->n_args + 2) * sizeof *x->argv_store);
  x->arg_bytes = xmalloc (total);
  total = 0;
  for (size_t i = 0; i < r->n_args; i++)
    {
      x->argv_store[i + 1] = x->arg_bytes + total;
      memcpy (x->arg_bytes + total, r->args[i].p, r->args[i].len);
      x->arg_bytes[total + r->args[i].len] = 0;
      total += r->args[i].len + 1;
    }
  x->argv_store[0] = NULL;
  x->argv_store[r->n_args + 1] = NULL;
  x->sp.argv = x->argv_store + 1;

  if (r->has_cwd && !(x->cwd = span_str (r->cwd)))
    {
      send_error (x->id, EINVAL, "CWD contains a NUL byte");
      return false;
    }
  return true;
}

/* USER, when there is one. */
static bool exec_resolve_user (ExecPlan *x)
{
  int err;

  if (!x->r.has_user)
    return true;
  if (!(x->user = span_str (x->r.user)))
    {
      send_error (x->id, EINVAL, "USER contains a NUL byte");
      return false;
    }
  err = lookup_user (x->user, &x->ui);
  if (err)
    {
      send_error (x->id, err, "unknown user '%s'", x->user);
      return false;
    }
  x->sp.uid = x->ui.uid;
  x->sp.gid = x->ui.gid;
  x->sp.groups = x->ui.groups;
  x->sp.n_groups = x->ui.n_groups;
  /* Only root can switch; anyone may "switch" to themselves. */
  x->sp.set_user = G.euid == 0 || x->ui.uid != G.euid;
  return true;
}

/* The environment, and the PATH search it implies. */
static bool exec_build_env (ExecPlan *x)
{
  const Req *r = &x->r;
  Env *env = &x->env;
  Spawn *sp = &x->sp;
  size_t longest = 0;

  if (r->n_envs == 0 && !r->has_user && !(r->flags & QLEAN_GUEST_FLAG_CLEAR_ENV))
    sp->envp = environ;      /* the common case: nothing to build */
  else
    {
      bool has_path = false;

      if (!(r->flags & QLEAN_GUEST_FLAG_CLEAR_ENV))
        for (char **e = environ; *e; e++)
          env_set (env, *e);
      if (r->has_user)
        {
          env_set (env, env_own_printf (env, "HOME", x->ui.home));
          env_set (env, env_own_printf (env, "USER", x->ui.name));
          env_set (env, env_own_printf (env, "LOGNAME", x->ui.name));
        }
      for (size_t i = 0; i < r->n_envs; i++)
        {
          char *e = span_str (r->envs[i]);
          if (!e)
            {
              send_error (x->id, EINVAL, "ENV %zu contains a NUL byte", i);
              return false;
            }
          env_set (env, env_own (env, e));
        }
      for (size_t i = 0; i < env->n; i++)
        if (strncmp (env->v[i], "PATH=", 5) == 0)
          has_path = true;
      if (!has_path)
        env_set (env, (char *) "PATH=" DEFAULT_PATH);
      /* env_set() always leaves room for the terminator. */
      env->v[env->n] = NULL;
      sp->envp = env->v;
    }
  sp->search = env_get (sp->envp, "PATH");
  if (!sp->search)
    sp->search = DEFAULT_PATH;
  /* The longest candidate of the PATH search. */
  for (const char *p = sp->search;;)
    {
      const char *end = strchrnul (p, ':');
      if ((size_t) (end - p) > longest)
        longest = (size_t) (end - p);
      if (!*end)
        break;
      p = end + 1;
    }
  sp->pathbuf = xmalloc (longest + r->args[0].len + 2);
  sp->cwd = x->cwd;
  sp->umask = G.child_umask;
  return true;
}

/* The child's stdin, stdout and stderr: a pseudo-terminal, or pipes
 * (and /dev/null for stdin without FLAG_STDIN). */
static bool exec_open_stdio (ExecPlan *x)
{
  uint32_t id = x->id;
  int *outp = x->outp, *errp = x->errp, *inp = x->inp;
  Spawn *sp = &x->sp;

  if (x->terminal)
    {
      int err = open_terminal (outp, x->r.has_winsize ? x->r.rows : 24, x->r.has_winsize ? x->r.cols : 80);
      if (err)
        {
          send_error (id, err, "cannot create a pseudo-terminal: %s", strerror (err));
          return false;
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
          return false;
        }
      sp->ctty = true;
    }
  else if (pipe2 (outp, O_CLOEXEC) < 0
           || (!x->merge && pipe2 (errp, O_CLOEXEC) < 0)
           || (x->want_stdin && pipe2 (inp, O_CLOEXEC) < 0))
    {
      int err = errno;
      send_error (id, err, "cannot create pipes: %s", strerror (err));
      for (int i = 0; i < 2; i++)
        {
          close_fd (&outp[i]);
          close_fd (&errp[i]);
          close_fd (&inp[i]);
        }
      return false;
    }
  if (x->want_stdin)
    fcntl (inp[1], F_SETFL, O_NONBLOCK);
  sp->fd0 = x->want_stdin ? inp[0] : G.devnull;
  sp->fd1 = outp[1];
  sp->fd2 = x->merge ? outp[1] : errp[1];
  return true;
}

/* Starts the process: STARTED and a stream, or ERROR saying which step
 * of the child failed. */
static void exec_start (ExecPlan *x)
{
  uint32_t id = x->id;
  pid_t pid;
  Stream *s;

  pid = spawn (&x->sp);
  exec_trace_mark (id, TRACE_SPAWNED);
  close_fd (&x->outp[1]);
  close_fd (&x->errp[1]);
  close_fd (&x->inp[0]);
  if (pid < 0)
    {
      int err = x->sp.err;
      switch (x->sp.stage)
        {
        case STAGE_EXEC:
          send_error (id, err, "cannot execute '%s': %s", x->arg_bytes, strerror (err));
          break;
        case STAGE_CHDIR:
          send_error (id, err, "cannot change directory to '%s': %s", x->cwd, strerror (err));
          break;
        case STAGE_USER:
          send_error (id, err, "cannot switch to user '%s': %s", x->user, strerror (err));
          break;
        default:
          send_error (id, err, "cannot start '%s': %s", x->arg_bytes, strerror (err));
          break;
        }
      close_fd (&x->outp[0]);
      close_fd (&x->errp[0]);
      close_fd (&x->inp[1]);
      return;
    }

  s = stream_new (id, STREAM_EXEC);
  s->pid = pid;
  s->want_stdin = x->want_stdin;
  s->terminal = x->terminal;
  s->fd_out = x->outp[0];
  s->fd_err = x->errp[0];
  s->fd_in = x->inp[1];
  send_u32 (QLEAN_GUEST_FRAME_STARTED, 0, id, (uint32_t) pid);
}

/* EXEC, in steps: each one that fails has sent ERROR. */
void handle_exec (uint32_t id, const unsigned char *payload, uint32_t len)
{
  ExecPlan x;

  memset (&x, 0, sizeof x);
  x.id = id;
  for (int i = 0; i < 2; i++)
    x.outp[i] = x.errp[i] = x.inp[i] = -1;
  exec_trace_mark (id, TRACE_RECEIVED);
  if (!req_parse_request (id, "EXEC", payload, len, &x.r))
    return;
  if (exec_check_flags (&x) && exec_build_argv (&x) && exec_resolve_user (&x) && exec_build_env (&x)
      && exec_open_stdio (&x))
    exec_start (&x);
  exec_plan_clear (&x);
}

/* The process and both pipes are done: EXIT ends the stream. */
void exec_maybe_finish (Stream *s)
{
  if (s->dead || !s->exited || s->fd_out >= 0 || s->fd_err >= 0)
    return;
  stream_flush_credit (s);
  send_u32 (QLEAN_GUEST_FRAME_EXIT, 0, s->id, (uint32_t) s->status);
  exec_trace_mark (s->id, TRACE_QUEUED);
  stream_close (s, false);
}

void exec_read (Stream *s, int which)
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
void exec_stdin_broken (Stream *s)
{
  stdin_queue_free (s);
  close_fd (&s->fd_in);
}

void exec_stdin_flush (Stream *s)
{
  if (s->fd_in >= 0 && !stdin_queue_write (s, s->fd_in, false))
    {
      exec_stdin_broken (s);
      return;
    }
  if (!s->q_head && s->eof_in)
    close_fd (&s->fd_in);
}

void exec_data (Stream *s, const unsigned char *p, uint32_t len)
{
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
  stdin_queue_push (s, p, len);
}

/* ------------------------------------------------------------------------ */
/* EXEC timings                                                              */

/* With QLEAN_GUEST_TRACE=PATH in our environment (a kernel command line
 * word reaches init's, and so ours), each EXEC appends one line to PATH
 * once its EXIT has been written to the port: its stream id and the
 * CLOCK_MONOTONIC nanoseconds of each TraceStep. bench/exec reads them
 * to tell where a round trip's time goes inside the guest. Off, each
 * mark costs one test; on, one write() per EXEC, after its EXIT left. */

#define TRACE_SLOTS 8

typedef struct
{
  uint32_t id;      /* 0: free */
  int64_t  ns[N_TRACE_STEPS];
} TraceSlot;

static TraceSlot trace_slots[TRACE_SLOTS];

void exec_trace_open (void)
{
  const char *path = getenv ("QLEAN_GUEST_TRACE");

  G.trace_fd = -1;
  if (!path || !*path)
    return;
  G.trace_fd = open (path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (G.trace_fd < 0)
    logmsg ("QLEAN_GUEST_TRACE %s: %s", path, strerror (errno));
}

void exec_trace_mark (uint32_t id, TraceStep step)
{
  struct timespec ts;
  TraceSlot *slot = NULL;

  if (G.trace_fd < 0)
    return;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  for (size_t i = 0; i < TRACE_SLOTS && !slot; i++)
    if (trace_slots[i].id == id)
      slot = &trace_slots[i];
  if (!slot && step == TRACE_RECEIVED)
    for (size_t i = 0; i < TRACE_SLOTS && !slot; i++)
      if (trace_slots[i].id == 0)
        slot = &trace_slots[i];
  /* More EXECs at once than slots: the extra ones go untimed. */
  if (!slot)
    return;
  if (step == TRACE_RECEIVED)
    memset (slot, 0, sizeof *slot);
  slot->id = id;
  slot->ns[step] = ts_ns (&ts);
}

/* After out_flush(): an EXIT queued is written once the queue is empty. */
void exec_trace_flush (void)
{
  char line[256];

  if (G.trace_fd < 0 || G.out_head)
    return;
  for (size_t i = 0; i < TRACE_SLOTS; i++)
    {
      TraceSlot *slot = &trace_slots[i];
      int n;

      if (slot->id == 0 || slot->ns[TRACE_QUEUED] == 0)
        continue;
      exec_trace_mark (slot->id, TRACE_SENT);
      n = snprintf (line, sizeof line, "%u %lld %lld %lld %lld %lld\n", (unsigned) slot->id,
                    (long long) slot->ns[TRACE_RECEIVED], (long long) slot->ns[TRACE_SPAWNED],
                    (long long) slot->ns[TRACE_REAPED], (long long) slot->ns[TRACE_QUEUED],
                    (long long) slot->ns[TRACE_SENT]);
      if (write (G.trace_fd, line, (size_t) n) < 0)
        logmsg ("QLEAN_GUEST_TRACE: %s", strerror (errno));
      slot->id = 0;
    }
}
