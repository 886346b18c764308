/* qlean-cli-exec.c: qlean exec and qlean shell
 *
 * SPDX-License-Identifier: MIT
 *
 * Both run a command in a machine started with `qlean start`, attached
 * through its owner's socket, with the command's output live on this
 * terminal. qlean shell gives the command a terminal in the guest, which
 * takes over this one (raw, following its size) until the command ends:
 * that terminal handling is here and nowhere else.
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <glib-unix.h>
#include <glib/gi18n.h>
#include <gio/gunixinputstream.h>
#include <gio/gunixoutputstream.h>

#include "qlean-cli-private.h"

/* qlean exec */

static char **opt_env;
static char *opt_cwd;
static char *opt_user;
static gboolean opt_interactive;
static gboolean opt_tty;
static double opt_timeout;

typedef struct
{
  GMainLoop         *loop;
  QleanGuestProcess *process;
  guint              pending;
  GError            *error;
  guint              grace;    /* after a failed wait: EXEC_OUTPUT_GRACE_MS */
} ExecState;

/* How long a failed command's output may take to come out (it is on
 * this host already, in pipes). */
#define EXEC_OUTPUT_GRACE_MS 100

static gboolean
exec_grace_cb (gpointer user_data)
{
  ExecState *state = user_data;

  state->grace = 0;
  g_main_loop_quit (state->loop);
  return G_SOURCE_REMOVE;
}

static void
exec_step_done (ExecState *state)
{
  if (--state->pending == 0)
    g_main_loop_quit (state->loop);
}

static void
exec_splice_cb (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  ExecState *state = user_data;

  g_output_stream_splice_finish (G_OUTPUT_STREAM (source), result, NULL);
  exec_step_done (state);
}

static void
exec_wait_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  ExecState *state = user_data;

  /* A command that failed, above all one that was lost with its machine
   * or the machine's owner, may leave its output pipes open for good:
   * what they hold gets a moment to come out, no more. */
  if (!qlean_guest_process_wait_finish (QLEAN_GUEST_PROCESS (source), result, &state->error))
    state->grace = g_timeout_add (EXEC_OUTPUT_GRACE_MS, exec_grace_cb, state);
  exec_step_done (state);
}

static gboolean
exec_forward_signal_cb (gpointer user_data)
{
  ExecState *state = user_data;

  /* ^C in the terminal reaches the guest command, as it would locally. */
  qlean_guest_process_send_signal (state->process, SIGINT);
  return G_SOURCE_CONTINUE;
}

/* The local terminal while a guest command has it (qlean exec -t, qlean
 * shell): raw, so that every key, ^C and ^D included, reaches the guest's
 * terminal, and restored on every way out (return, exit(), a fatal
 * signal), or the user's shell is left unusable. */
static struct termios saved_termios;
static volatile sig_atomic_t termios_saved;
static int winch_pipe[2] = { -1, -1 };

static void
terminal_restore (void)
{
  if (termios_saved)
    {
      tcsetattr (STDIN_FILENO, TCSAFLUSH, &saved_termios);
      termios_saved = 0;
    }
}

static void
terminal_fatal_signal (int signum)
{
  /* Async-signal-safe only: restore, then die of the same signal. */
  terminal_restore ();
  signal (signum, SIG_DFL);
  raise (signum);
}

static void
terminal_winch (int signum)
{
  int saved_errno = errno;
  char c = 0;

  if (write (winch_pipe[1], &c, 1) < 0)
    {
      /* Full: a resize is pending already. */
    }
  errno = saved_errno;
}

/* The size of the local terminal (stdin's, else stdout's). */
static gboolean
terminal_get_size (guint *rows,
                   guint *cols)
{
  struct winsize ws = { 0 };

  if ((ioctl (STDIN_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) ||
      (ioctl (STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0))
    {
      *rows = ws.ws_row;
      *cols = ws.ws_col;
      return TRUE;
    }
  return FALSE;
}

static void
terminal_make_raw (void)
{
  static const int fatal[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
  struct sigaction sa = { 0 };
  struct termios raw;

  if (!isatty (STDIN_FILENO) || tcgetattr (STDIN_FILENO, &saved_termios) < 0)
    return;
  termios_saved = 1;
  atexit (terminal_restore);
  sa.sa_handler = terminal_fatal_signal;
  sigemptyset (&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND;
  for (guint i = 0; i < G_N_ELEMENTS (fatal); i++)
    sigaction (fatal[i], &sa, NULL);
  raw = saved_termios;
  cfmakeraw (&raw);
  tcsetattr (STDIN_FILENO, TCSANOW, &raw);
}

static gboolean
terminal_winch_cb (gint         fd,
                   GIOCondition condition,
                   gpointer     user_data)
{
  QleanGuestProcess *process = user_data;
  char buffer[64];
  guint rows, cols;

  while (read (fd, buffer, sizeof buffer) > 0)
    ;
  if (terminal_get_size (&rows, &cols))
    qlean_guest_process_set_window_size (process, rows, cols);
  return G_SOURCE_CONTINUE;
}

/* Follows the local terminal's size: SIGWINCH (which g_unix_signal_add()
 * does not take) wakes the main loop through a pipe. */
static guint
terminal_watch_size (QleanGuestProcess *process)
{
  struct sigaction sa = { 0 };

  if (winch_pipe[0] < 0 && pipe2 (winch_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
    return 0;
  sa.sa_handler = terminal_winch;
  sigemptyset (&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction (SIGWINCH, &sa, NULL);
  return g_unix_fd_add (winch_pipe[0], G_IO_IN, terminal_winch_cb, process);
}

/* The launcher for a command of qlean exec or qlean shell: its pipes,
 * its terminal (with TERM and this terminal's size), and --env,
 * --workdir, --user and --timeout. NULL after a bad --env, told. */
static QleanGuestLauncher *
exec_launcher_new (const char *cmd,
                   gboolean    terminal)
{
  g_autoptr(QleanGuestLauncher) launcher = NULL;
  QleanGuestProcessFlags flags = QLEAN_GUEST_PROCESS_FLAGS_STDOUT_PIPE | QLEAN_GUEST_PROCESS_FLAGS_STDERR_PIPE;
  guint rows, cols;

  if (opt_interactive || terminal)
    flags |= QLEAN_GUEST_PROCESS_FLAGS_STDIN_PIPE;
  if (terminal)
    flags |= QLEAN_GUEST_PROCESS_FLAGS_TERMINAL;
  launcher = qlean_guest_launcher_new (flags);
  if (terminal)
    {
      const char *term = g_getenv ("TERM");

      if (terminal_get_size (&rows, &cols))
        qlean_guest_launcher_set_window_size (launcher, rows, cols);
      qlean_guest_launcher_setenv (launcher, "TERM", term != NULL && *term != '\0' ? term : "xterm", TRUE);
    }
  for (guint i = 0; opt_env != NULL && opt_env[i] != NULL; i++)
    {
      g_auto(GStrv) pair = g_strsplit (opt_env[i], "=", 2);

      if (pair[0] == NULL || pair[1] == NULL || *pair[0] == '\0')
        {
          g_printerr (_("qlean %s: --env takes NAME=VALUE, not “%s”\n"), cmd, opt_env[i]);
          return NULL;
        }
      qlean_guest_launcher_setenv (launcher, pair[0], pair[1], TRUE);
    }
  if (opt_cwd != NULL)
    qlean_guest_launcher_set_cwd (launcher, opt_cwd);
  if (opt_user != NULL)
    qlean_guest_launcher_set_user (launcher, opt_user);
  if (opt_timeout > 0)
    qlean_guest_launcher_set_timeout (launcher, (guint) (opt_timeout * 1000));

  return g_steal_pointer (&launcher);
}

/* Follows the command in @state to its end: its output on ours, our
 * input on its (with --interactive or a terminal), and ^C forwarded, or
 * this terminal raw for the guest's. */
static void
exec_follow (ExecState *state,
             gboolean   terminal)
{
  QleanGuestProcess *process = state->process;
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  g_autoptr(GOutputStream) out = NULL;
  g_autoptr(GOutputStream) err = NULL;
  g_autoptr(GInputStream) in = NULL;
  guint sigint = 0;
  guint winch = 0;

  state->loop = loop;
  out = g_unix_output_stream_new (STDOUT_FILENO, FALSE);
  err = g_unix_output_stream_new (STDERR_FILENO, FALSE);

  /* A terminal has one output, the stdout pipe. */
  state->pending = terminal ? 2 : 3;
  g_output_stream_splice_async (out, qlean_guest_process_get_stdout_pipe (process),
                                G_OUTPUT_STREAM_SPLICE_CLOSE_SOURCE, G_PRIORITY_DEFAULT, NULL,
                                exec_splice_cb, state);
  if (!terminal)
    g_output_stream_splice_async (err, qlean_guest_process_get_stderr_pipe (process),
                                  G_OUTPUT_STREAM_SPLICE_CLOSE_SOURCE, G_PRIORITY_DEFAULT, NULL,
                                  exec_splice_cb, state);
  if (opt_interactive || terminal)
    {
      /* Not counted: the command may end before its input does. */
      in = g_unix_input_stream_new (STDIN_FILENO, FALSE);
      g_output_stream_splice_async (qlean_guest_process_get_stdin_pipe (process), in,
                                    G_OUTPUT_STREAM_SPLICE_CLOSE_TARGET, G_PRIORITY_DEFAULT, NULL,
                                    NULL, NULL);
    }
  qlean_guest_process_wait_async (process, NULL, exec_wait_cb, state);

  if (terminal)
    {
      /* ^C and ^D are bytes for the guest's terminal from now on. */
      terminal_make_raw ();
      winch = terminal_watch_size (process);
    }
  else
    sigint = g_unix_signal_add (SIGINT, exec_forward_signal_cb, state);
  g_main_loop_run (loop);
  if (sigint != 0)
    g_source_remove (sigint);
  if (winch != 0)
    g_source_remove (winch);
  if (state->grace != 0)
    g_source_remove (state->grace);
  terminal_restore ();
}

/* qlean exec and qlean shell: runs @command in machine @name; returns
 * the exit status to exit with. */
static int
exec_in_machine (const char  *cmd,
                 const char  *name,
                 char       **command,
                 gboolean     terminal)
{
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(QleanGuestLauncher) launcher = NULL;
  g_autoptr(QleanGuestProcess) process = NULL;
  g_autoptr(GError) error = NULL;
  ExecState state = { 0 };
  int status;

  machine = cli_machine_attach_by_name (name, &error);
  if (machine == NULL)
    {
      print_error (cmd, error);
      return EXIT_MACHINE;
    }

  launcher = exec_launcher_new (cmd, terminal);
  if (launcher == NULL)
    return EXIT_USAGE;

  process = qlean_guest_launcher_spawnv (launcher, machine, (const char * const *) command, &error);
  if (process == NULL)
    {
      if (cli_is_lost_machine (error))
        cli_explain_lost_machine (name, &error);
      print_error (cmd, error);
      return g_error_matches (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_COMMAND_NOT_FOUND)
             ? 127 : EXIT_MACHINE;
    }

  state.process = process;
  exec_follow (&state, terminal);

  if (state.error != NULL)
    {
      if (cli_is_lost_machine (state.error))
        cli_explain_lost_machine (name, &state.error);
      print_error (cmd, state.error);
      status = g_error_matches (state.error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT) ? 124 : EXIT_MACHINE;
      g_clear_error (&state.error);
      return status;
    }

  if (qlean_guest_process_get_if_signaled (process))
    return 128 + qlean_guest_process_get_term_sig (process);

  return qlean_guest_process_get_exit_status (process);
}

/* The “--” between NAME and COMMAND ends qlean's options: it is no part
 * of the command. */
static void
drop_double_dash (int   *argc,
                  char **argv)
{
  if (*argc > 2 && g_str_equal (argv[2], "--"))
    {
      memmove (&argv[2], &argv[3], (*argc - 2) * sizeof (char *));
      (*argc)--;
    }
}

int
cmd_exec (int    argc,
          char **argv)
{
  static GOptionEntry entries[] = {
    { "interactive", 'i', 0, G_OPTION_ARG_NONE, &opt_interactive, N_("Forward standard input to the command"), NULL },
    { "tty", 't', 0, G_OPTION_ARG_NONE, &opt_tty, N_("Run the command on a terminal in the guest (implies --interactive)"), NULL },
    { "env", 'e', 0, G_OPTION_ARG_STRING_ARRAY, &opt_env, N_("Set an environment variable (repeatable)"), N_("NAME=VALUE") },
    { "workdir", 'w', 0, G_OPTION_ARG_FILENAME, &opt_cwd, N_("Working directory in the guest"), N_("DIR") },
    { "user", 'u', 0, G_OPTION_ARG_STRING, &opt_user, N_("Run as this user (name or uid)"), N_("USER") },
    { "timeout", 0, 0, G_OPTION_ARG_DOUBLE, &opt_timeout, N_("Kill the command after this many seconds"), N_("S") },
    { NULL }
  };
  int status;

  if (!parse_options ("exec", _("NAME [--] COMMAND [ARG...]"),
                      _("Run COMMAND in a machine started with “qlean start”, with its output\n"
                        "live on this terminal, and exit with its exit status (128+N for signal N,\n"
                        "125 when the machine cannot be reached or dies under it)."),
                      entries, &argc, &argv, &status))
    return status;

  drop_double_dash (&argc, argv);
  if (argc < 3)
    {
      g_printerr (_("qlean exec: give a machine name and a command\nTry “qlean exec --help”.\n"));
      return EXIT_USAGE;
    }

  return exec_in_machine ("exec", argv[1], &argv[2], opt_tty);
}

/* qlean shell */

int
cmd_shell (int    argc,
           char **argv)
{
  static GOptionEntry entries[] = {
    { "env", 'e', 0, G_OPTION_ARG_STRING_ARRAY, &opt_env, N_("Set an environment variable (repeatable)"), N_("NAME=VALUE") },
    { "workdir", 'w', 0, G_OPTION_ARG_FILENAME, &opt_cwd, N_("Working directory in the guest"), N_("DIR") },
    { "user", 'u', 0, G_OPTION_ARG_STRING, &opt_user, N_("Run as this user (name or uid)"), N_("USER") },
    { NULL }
  };
  /* The user's login shell from the guest's passwd, else sh: a guest
   * need not have getent, and $SHELL is not set where qlean-guest runs.
   * It starts in HOME unless --workdir chose another directory. */
  static const char *login_shell[] = {
    "/bin/sh", "-c",
    "u=$(id -un 2>/dev/null) && s=$(sed -n \"s|^$u:[^:]*:[^:]*:[^:]*:[^:]*:[^:]*:||p\" /etc/passwd 2>/dev/null); "
    "[ -x \"$s\" ] || s=/bin/sh; SHELL=$s; export SHELL; "
    "[ \"$(pwd)\" != / ] || cd \"${HOME:-/}\" 2>/dev/null; exec \"$s\" -l",
    NULL
  };
  int status;

  if (!parse_options ("shell", _("NAME [-- COMMAND [ARG...]]"),
                      _("Open an interactive terminal in a machine started with “qlean start”, like\n"
                        "“docker exec -it”: the user’s login shell, or COMMAND, on a terminal in the\n"
                        "guest that follows this one’s size. ^C and ^D go to the guest; the exit\n"
                        "status is the shell’s (128+N for signal N, 125 when the machine cannot be\n"
                        "reached)."),
                      entries, &argc, &argv, &status))
    return status;

  drop_double_dash (&argc, argv);
  if (argc < 2)
    {
      g_printerr (_("qlean shell: give a machine name\nTry “qlean shell --help”.\n"));
      return EXIT_USAGE;
    }

  return exec_in_machine ("shell", argv[1], argc > 2 ? &argv[2] : (char **) login_shell, TRUE);
}
