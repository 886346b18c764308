/* qlean-guest-process-agent.c: a guest process driven through the stock QEMU guest agent
 *
 * SPDX-License-Identifier: MIT
 *
 * A run that uses the guest agent alone has no qlean-guest to stream a
 * process's output, report its start or carry its signals. This is the
 * second driver of the same QleanGuestProcess (same pipes, same waits,
 * same errors), made of stock commands only: one guest-exec starts a
 * fixed shell script that prepares the process and execs it with its
 * stdout and stderr in files of a fresh guest directory; the host reads
 * what those files gain with guest-file-read while it polls
 * guest-exec-status, and writes it into the process's output pipes as
 * the qlean-guest driver writes its DATA frames. It is apart from
 * qlean-guest-process.c because it shares nothing of the stream's
 * events: only the process's state, through qlean-guest-process-private.h.
 *
 * No string of the caller is ever parsed by a shell: the two scripts
 * below are constants, and the argv, environment, directory and user
 * reach them as positional arguments, which they only quote ("$1").
 * Every tool in the chain gets `--` before them: busybox's su, for one,
 * would otherwise take a `-c` among the program's arguments as its own.
 *
 * The chain, every step an exec in the same process (so the pid that
 * guest-exec returns stays the process's, and its process group):
 *
 *   sh STAGE1 DIR USER CLEAR  [setsid] [setpriv|su]  [env -u N.. -- N=V..]
 *       sh STAGE2 DIR CWD STDIN OUT ERR  PROGRAM ARGS...
 *
 * STAGE1 (as the agent's user, root) makes DIR (mode 0700, mkdir fails
 * on anything already there), looks the user up and picks a way to
 * switch to it (util-linux setpriv, else su, which busybox execs without
 * a fork; neither: an error saying so), gives DIR to the user and sets
 * HOME, USER and LOGNAME. `env` then applies the launcher's changes (or
 * guest-exec's own env replaces the whole environment, for a cleared
 * one). STAGE2 (as the user) enters the directory, looks the program up
 * in PATH, then redirects and execs it. A failure before the exec is a
 * line on the script's own stdout (which guest-exec captures) and status
 * 125, and becomes the same error the qlean-guest driver gives. DIR/out
 * appears only once every check passed: the host takes it as "started".
 *
 * Stdin is guest-exec's input-data for fixed input. For a stdin pipe
 * (the stock agent has no way to feed a running process more), STAGE2
 * makes the fifo DIR/in, starts its pump() in the background on the
 * fifo's writing end and takes the reading end as the program's stdin
 * before the exec: the pid and process group stay the program's, so a
 * signal to the group reaches the pump too. The pump starts from a
 * subshell that ends at once, so that it is not the program's child: a
 * program that waits for any child of its own never gets the pump. The pump cats the chunk
 * files DIR/in.N in order, each once the host made DIR/ok.N, removes
 * both, and returns (the program sees end-of-file) once DIR/end is
 * there and no ok.N is left; the host writes those files
 * (qlean-guest-process-agent-stdin.c). It also returns once the program
 * is gone (its cat breaks the pipe, or `kill -0` fails) or DIR was
 * removed. Its waits back off from 10 to 200 ms (busybox's and
 * coreutils' sleep take fractions; a sleep that does not, whole
 * seconds).
 *
 * Terminals are refused before this driver runs (qlean-guest-launcher.c):
 * the agent runs commands on pipes only.
 */

#include "config.h"

#include <signal.h>
#include <string.h>
#include <glib/gi18n-lib.h>

#include "qlean-error.h"
#include "qlean-guest-process-private.h"
#include "qlean-json-channel-private.h"
#include "qlean-qga-error.h"
#include "qlean-worker-private.h"

/* The most one guest-file-read asks for: what the host holds of a read
 * at once. The agent's base64 in JSON, not the size, limits the rate. */
#define AGENT_READ_CHUNK (1024 * 1024)
/* Polls back off from the first to the last while nothing comes. */
#define AGENT_POLL_FIRST_MS 2
/* The scripts take a few execs to reach the program: the first look
 * for its start waits that long. */
#define AGENT_START_FIRST_MS 8
#define AGENT_POLL_MAX_MS 50
/* Output queued for a pipe nobody reads: at this, the process is
 * killed, as the qlean-guest driver does (QLEAN_GUEST_RECEIVE_LIMIT).
 * Exactly: no read asks for more than the room left under it
 * (agent_driver_read_size()), so the host never holds more. */
#define AGENT_UNREAD_LIMIT (16u * 1024u * 1024u)
#define AGENT_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
/* How the scripts say why they did not exec, on their captured stdout. */
#define AGENT_DIAG "qlean-agent-exec: "

static const char agent_stage1[] =
  "d=$1 u=$2 c=$3\n"
  "shift 3\n"
  "mkdir -m 700 -- \"$d\" || { echo '" AGENT_DIAG "mkdir'; exit 125; }\n"
  "if [ -n \"$u\" ]; then\n"
  "  e=\n"
  "  if command -v getent >/dev/null 2>&1; then e=$(getent passwd \"$u\" 2>/dev/null) || e=; fi\n"
  "  if [ -z \"$e\" ] && [ -r /etc/passwd ]; then\n"
  "    while IFS=: read -r n x i g x h x; do\n"
  "      case $u in\n"
  "      *[!0-9]*) [ \"$n\" = \"$u\" ] ;;\n"
  "      *) [ \"$i\" = \"$u\" ] ;;\n"
  "      esac && { e=$n:x:$i:$g::$h:; break; }\n"
  "    done </etc/passwd\n"
  "  fi\n"
  "  if [ -n \"$e\" ]; then\n"
  "    IFS=: read -r n x i g x h x <<EOF\n"
  "$e\n"
  "EOF\n"
  "  else\n"
  "    case $u in *[!0-9]*) echo '" AGENT_DIAG "user'; exit 125 ;; esac\n"
  "    n=$u i=$u g=$u h=/\n"
  "  fi\n"
  "  if [ \"$i\" != 0 ]; then\n"
  "    chown \"$i:$g\" \"$d\" || { echo '" AGENT_DIAG "chown'; exit 125; }\n"
  "    if setpriv --reuid=0 --regid=0 --clear-groups true >/dev/null 2>&1; then\n"
  "      if [ -n \"$e\" ]; then s=--init-groups; else s=--clear-groups; fi\n"
  "      set -- setpriv --reuid=\"$i\" --regid=\"$g\" \"$s\" -- \"$@\"\n"
  "    elif [ -n \"$e\" ] && command -v su >/dev/null 2>&1; then\n"
  "      set -- su -m -s /bin/sh -c 'exec \"$0\" \"$@\"' -- \"$n\" \"$@\"\n"
  "    else\n"
  "      echo '" AGENT_DIAG "switch'; exit 125\n"
  "    fi\n"
  "  fi\n"
  "  if [ \"$c\" = 1 ]; then\n"
  "    [ -n \"${HOME+x}\" ] || export HOME=\"$h\"\n"
  "    [ -n \"${USER+x}\" ] || export USER=\"$n\"\n"
  "    [ -n \"${LOGNAME+x}\" ] || export LOGNAME=\"$n\"\n"
  "  else\n"
  "    export HOME=\"$h\" USER=\"$n\" LOGNAME=\"$n\"\n"
  "  fi\n"
  "fi\n"
  "if command -v setsid >/dev/null 2>&1; then set -- setsid -- \"$@\"; fi\n"
  "exec \"$@\"\n";

static const char agent_stage2[] =
  "pump() {\n"
  "  PATH=" AGENT_DEFAULT_PATH " n=0 t=0.01\n"
  "  while :; do\n"
  "    if [ -e \"$d/ok.$n\" ]; then\n"
  "      cat -- \"$d/in.$n\" || return\n"
  "      rm -f -- \"$d/in.$n\" \"$d/ok.$n\"\n"
  "      n=$((n + 1)) t=0.01\n"
  "    elif [ -e \"$d/end\" ]; then\n"
  "      [ -e \"$d/ok.$n\" ] || return\n"
  "    elif [ -d \"$d\" ] && kill -0 $$ 2>/dev/null; then\n"
  "      sleep $t 2>/dev/null || sleep 1\n"
  "      case $t in 0.01) t=0.02 ;; 0.02) t=0.05 ;; 0.05) t=0.1 ;; *) t=0.2 ;; esac\n"
  "    else\n"
  "      return\n"
  "    fi\n"
  "  done\n"
  "}\n"
  "d=$1 w=$2 i=$3 o=$4 e=$5\n"
  "shift 5\n"
  "[ -n \"${PATH+x}\" ] || export PATH=" AGENT_DEFAULT_PATH "\n"
  "if ! cd -- \"$w\" 2>/dev/null; then\n"
  "  if [ ! -e \"$w\" ]; then r=ENOENT; elif [ ! -d \"$w\" ]; then r=ENOTDIR; else r=EACCES; fi\n"
  "  echo \"" AGENT_DIAG "cwd $r\"; exit 125\n"
  "fi\n"
  "p=$1 f=\n"
  "case $p in\n"
  "*/*) f=$p ;;\n"
  "*) set -f; IFS=:\n"
  "   for x in $PATH; do\n"
  "     if [ -f \"${x:-.}/$p\" ] && [ -x \"${x:-.}/$p\" ]; then f=${x:-.}/$p; break; fi\n"
  "   done\n"
  "   unset IFS; set +f ;;\n"
  "esac\n"
  "if [ -z \"$p\" ] || [ -z \"$f\" ] || [ ! -e \"$f\" ]; then echo '" AGENT_DIAG "exec ENOENT'; exit 125; fi\n"
  "if [ -d \"$f\" ] || [ ! -x \"$f\" ]; then echo '" AGENT_DIAG "exec EACCES'; exit 125; fi\n"
  "case $i in\n"
  "p) (PATH=" AGENT_DEFAULT_PATH "; exec mkfifo -m 600 -- \"$d/in\") || { echo '" AGENT_DIAG "mkfifo'; exit 125; }\n"
  "   (pump >\"$d/in\" 2>/dev/null </dev/null &)\n"
  "   exec <\"$d/in\" ;;\n"
  "1) ;;\n"
  "*) exec </dev/null ;;\n"
  "esac\n"
  "case $e in e) exec 2>\"$d/err\" ;; n) exec 2>/dev/null ;; esac\n"
  "if [ \"$o\" = o ]; then exec >\"$d/out\"; else : >\"$d/out\"; exec >/dev/null; fi\n"
  "[ \"$e\" != m ] || exec 2>&1\n"
  "exec \"$@\"\n";

/* Kills a process group, or the process alone when it has none of its
 * own (a guest without setsid). Both numbers are the host's. */
static const char agent_kill_script[] =
  "kill -\"$1\" -\"$2\" 2>/dev/null || kill -\"$1\" \"$2\" 2>/dev/null\n";

struct _QleanGuestAgentDriver
{
  QleanGuestProcess *process;     /* a reference while live, else NULL */
  QleanQgaClient    *qga;
  char              *dir;         /* the guest's directory for this process */
  gint64             pid;         /* guest-exec's, 0 before it answers */
  gint64             handle[3];   /* 1 out, 2 err: guest-file handles, or -1 */
  gboolean           done[3];     /* all of that file reached its pipe */
  gboolean           read_out;    /* whether stdout's file is read */
  gboolean           read_err;    /* whether stderr has a file of its own */
  char              *user;        /* for the start's errors */
  char              *cwd;
  gboolean           exit_seen;
  int                wait_status;
  gboolean           got_data;    /* in the last round of reads */
  guint              reading;     /* the file whose read is in flight */
  guint              delay_ms;
  gint64             start_deadline;
  QleanQgaExecStatus *start_status; /* ended before its DIR/out was seen */
  GSource           *timer;
  QleanGuestAgentStdin *stdin_feeder; /* a stdin pipe's, once started */
};

/* Cleaning up after the process, by itself: it outlives the process
 * object, which may be gone before the agent answers. */
typedef struct
{
  QleanQgaClient *qga;
  char           *dir;
  gint64          handle[3];
  guint           next;
} AgentCleanup;

static void agent_cleanup_step (AgentCleanup *cleanup);

static void
agent_cleanup_free (AgentCleanup *cleanup)
{
  g_object_unref (cleanup->qga);
  g_free (cleanup->dir);
  g_free (cleanup);
}

static void
agent_cleanup_reaped_cb (GObject      *source,
                         GAsyncResult *result,
                         gpointer      user_data)
{
  g_autoptr(QleanQgaExecStatus) status = NULL;

  status = qlean_qga_client_exec_wait_finish (QLEAN_QGA_CLIENT (source), result, NULL);
  agent_cleanup_free (user_data);
}

static void
agent_cleanup_rm_cb (GObject      *source,
                     GAsyncResult *result,
                     gpointer      user_data)
{
  AgentCleanup *cleanup = user_data;
  gint64 pid = qlean_qga_client_exec_finish (QLEAN_QGA_CLIENT (source), result, NULL);

  /* Waited for, so that the agent forgets the command. */
  if (pid > 0)
    qlean_qga_client_exec_wait_async (cleanup->qga, pid, NULL, agent_cleanup_reaped_cb, cleanup);
  else
    agent_cleanup_free (cleanup);
}

static void
agent_cleanup_closed_cb (GObject      *source,
                         GAsyncResult *result,
                         gpointer      user_data)
{
  qlean_qga_client_file_close_finish (QLEAN_QGA_CLIENT (source), result, NULL);
  agent_cleanup_step (user_data);
}

static void
agent_cleanup_step (AgentCleanup *cleanup)
{
  while (cleanup->next < G_N_ELEMENTS (cleanup->handle))
    {
      gint64 handle = cleanup->handle[cleanup->next++];

      if (handle >= 0)
        {
          qlean_qga_client_file_close_async (cleanup->qga, handle, NULL, agent_cleanup_closed_cb,
                                             cleanup);
          return;
        }
    }

  if (qlean_qga_client_is_closed (cleanup->qga))
    {
      agent_cleanup_free (cleanup);
      return;
    }

  {
    const char * const args[] = { "-rf", "--", cleanup->dir, NULL };

    qlean_qga_client_exec_async (cleanup->qga, "/bin/rm", args, NULL, NULL, FALSE, NULL,
                                 agent_cleanup_rm_cb, cleanup);
  }
}

/* Closes the driver's files and removes its directory, best effort (a
 * stopped machine answers nothing, and has nothing left to clean). */
static void
agent_driver_clean_up (QleanGuestAgentDriver *self)
{
  AgentCleanup *cleanup;

  if (self->dir == NULL)
    return;

  cleanup = g_new0 (AgentCleanup, 1);
  cleanup->qga = g_object_ref (self->qga);
  cleanup->dir = g_steal_pointer (&self->dir);
  for (guint i = 0; i < G_N_ELEMENTS (self->handle); i++)
    {
      cleanup->handle[i] = self->handle[i];
      self->handle[i] = -1;
    }
  agent_cleanup_step (cleanup);
}

void
qlean_guest_agent_driver_free (QleanGuestAgentDriver *self)
{
  g_assert (self->process == NULL);

  qlean_clear_source (&self->timer);
  agent_driver_clean_up (self);
  g_clear_object (&self->qga);
  g_free (self->user);
  g_free (self->cwd);
  g_clear_pointer (&self->start_status, qlean_qga_exec_status_free);
  g_free (self);
}

gboolean
qlean_guest_agent_driver_is_live (QleanGuestAgentDriver *self)
{
  return self->process != NULL;
}

static void
agent_kill_reaped_cb (GObject      *source,
                      GAsyncResult *result,
                      gpointer      user_data)
{
  g_autoptr(QleanQgaExecStatus) status = NULL;

  status = qlean_qga_client_exec_wait_finish (QLEAN_QGA_CLIENT (source), result, NULL);
}

static void
agent_kill_started_cb (GObject      *source,
                       GAsyncResult *result,
                       gpointer      user_data)
{
  gint64 pid = qlean_qga_client_exec_finish (QLEAN_QGA_CLIENT (source), result, NULL);

  if (pid > 0)
    qlean_qga_client_exec_wait_async (QLEAN_QGA_CLIENT (source), pid, NULL, agent_kill_reaped_cb,
                                      NULL);
}

void
qlean_guest_agent_kill (QleanQgaClient *qga,
                        gint64          pid,
                        int             signum)
{
  g_autofree char *signal_text = g_strdup_printf ("%d", signum);
  g_autofree char *pid_text = g_strdup_printf ("%" G_GINT64_FORMAT, pid);
  const char * const args[] = { "-c", agent_kill_script, "sh", signal_text, pid_text, NULL };

  qlean_qga_client_exec_async (qga, "/bin/sh", args, NULL, NULL, FALSE, NULL,
                               agent_kill_started_cb, NULL);
}

void
qlean_guest_agent_driver_signal (QleanGuestAgentDriver *self,
                                 int                    signum)
{
  /* Once the agent reported the exit, the pid may be another's. */
  if (self->process == NULL || self->exit_seen || self->pid <= 0)
    return;

  qlean_guest_agent_kill (self->qga, self->pid, signum);
}

/* The end of the driver: it lets go of the process, which may be the
 * last reference. */
static void
agent_driver_release (QleanGuestAgentDriver *self)
{
  g_autoptr(QleanGuestProcess) process = g_steal_pointer (&self->process);

  qlean_clear_source (&self->timer);
  g_clear_pointer (&self->stdin_feeder, qlean_guest_agent_stdin_stop);
  agent_driver_clean_up (self);
}

/* The process could not run, or was lost: @error (taken) goes to the
 * spawn, or to its waits. */
static void
agent_driver_fail (QleanGuestAgentDriver *self,
                   GError                *error)
{
  QleanGuestProcess *process = self->process;

  if (self->pid > 0 && !self->exit_seen && !qlean_qga_client_is_closed (self->qga))
    qlean_guest_agent_kill (self->qga, self->pid, SIGKILL);

  qlean_guest_process_end_output (process);
  if (process->spawn_task != NULL)
    {
      g_autoptr(GTask) task = g_steal_pointer (&process->spawn_task);

      g_task_return_error (task, error);
    }
  else
    qlean_guest_process_fail (process, error);
  qlean_guest_process_complete_waiters (process);
  agent_driver_release (self);
}

/* An agent call's @error (taken), as the process's. */
static GError *
agent_driver_lost_error (QleanGuestAgentDriver *self,
                         GError                *error)
{
  QleanGuestProcess *process = self->process;
  gboolean timed_out = g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  GError *lost;

  lost = g_error_new (timed_out ? G_IO_ERROR : QLEAN_MACHINE_ERROR,
                      timed_out ? G_IO_ERROR_TIMED_OUT : QLEAN_MACHINE_ERROR_CRASHED,
                      _("Lost “%s” in machine “%s”: %s"), process->program,
                      qlean_machine_get_name (process->machine), error->message);
  g_error_free (error);
  return lost;
}

/* An agent call failed: the machine stopped or went away, or the agent
 * broke down. */
static void
agent_driver_lost (QleanGuestAgentDriver *self,
                   GError                *error)
{
  agent_driver_fail (self, agent_driver_lost_error (self, error));
}

/* The process ended and all its output reached the pipes. */
static void
agent_driver_exit (QleanGuestAgentDriver *self)
{
  QleanGuestProcess *process = self->process;

  g_mutex_lock (&process->lock);
  process->exited = TRUE;
  process->wait_status = self->wait_status;
  g_mutex_unlock (&process->lock);

  qlean_guest_process_end_output (process);
  qlean_guest_process_complete_waiters (process);
  agent_driver_release (self);
}

/* Polling: the status, then both files (so that the round that sees
 * the exit reads all the process wrote), then again after a delay that
 * backs off while nothing comes; after the exit, the files alone until
 * both are read out. */

static void agent_driver_read (QleanGuestAgentDriver *self,
                               guint                  fd);
static void agent_driver_probe (QleanGuestAgentDriver *self);
static void agent_driver_status_cb (GObject      *source,
                                    GAsyncResult *result,
                                    gpointer      user_data);

static void
agent_driver_poll (QleanGuestAgentDriver *self)
{
  self->got_data = FALSE;
  if (self->exit_seen)
    agent_driver_read (self, 1);
  else
    qlean_qga_client_exec_status_async (self->qga, self->pid, NULL, agent_driver_status_cb, self);
}

static gboolean
agent_driver_poll_cb (gpointer user_data)
{
  QleanGuestAgentDriver *self = user_data;

  g_clear_pointer (&self->timer, g_source_unref);
  agent_driver_poll (self);
  return G_SOURCE_REMOVE;
}

static void
agent_driver_schedule (QleanGuestAgentDriver *self)
{
  guint delay = self->got_data ? 0 : self->delay_ms;

  self->delay_ms = self->got_data ? AGENT_POLL_FIRST_MS : MIN (self->delay_ms * 2, AGENT_POLL_MAX_MS);
  self->timer = qlean_add_timeout (qlean_worker_get_context (), delay, agent_driver_poll_cb, self);
}

static void
agent_driver_take_exit (QleanGuestAgentDriver *self,
                        QleanQgaExecStatus    *status)
{
  self->exit_seen = TRUE;
  /* A raw wait status, as qlean-guest reports it. */
  self->wait_status = status->signal > 0 ? (status->signal & 0x7f)
                                         : (status->exit_code & 0xff) << 8;
}

/* guest-exec-status's answer, or NULL once the driver gave up on the
 * process for the error. One call of the driver is in flight at a time,
 * so the driver is still there when it answers. */
static QleanQgaExecStatus *
agent_driver_status_finish (QleanGuestAgentDriver *self,
                            GAsyncResult          *result)
{
  GError *error = NULL;
  QleanQgaExecStatus *status = qlean_qga_client_exec_status_finish (self->qga, result, &error);

  if (status == NULL)
    agent_driver_lost (self, error);
  return status;
}

static void
agent_driver_status_cb (GObject      *source,
                        GAsyncResult *result,
                        gpointer      user_data)
{
  QleanGuestAgentDriver *self = user_data;
  g_autoptr(QleanQgaExecStatus) status = agent_driver_status_finish (self, result);

  if (status == NULL)
    return;

  /* Once it ended, what it wrote is all in the files: this round's
   * reads see it. */
  if (status->exited)
    agent_driver_take_exit (self, status);
  agent_driver_read (self, 1);
}

/* A round of reads is over: the end once the process ended and both
 * files are read out; else the next round. */
static void
agent_driver_round_done (QleanGuestAgentDriver *self)
{
  if (self->exit_seen &&
      (!self->read_out || self->done[1]) && (!self->read_err || self->done[2]))
    agent_driver_exit (self);
  else
    agent_driver_schedule (self);
}

/* How much the next read of @fd may ask for: a chunk, but never more
 * than the room left under AGENT_UNREAD_LIMIT in its pipe's queue, so
 * that a process whose output nobody reads is stopped with exactly the
 * limit held on the host, not a chunk more. 0 once the limit is held. */
static gsize
agent_driver_read_size (QleanGuestAgentDriver *self,
                        guint                  fd)
{
  QleanGuestOutputPipe *pipe = &self->process->out[fd];
  gsize queued;

  /* No pipe (its reader went away): what comes is dropped. */
  if (pipe->fd < 0)
    return AGENT_READ_CHUNK;

  queued = qlean_guest_output_pipe_get_queued (pipe);
  if (queued >= AGENT_UNREAD_LIMIT)
    return 0;
  return MIN (AGENT_READ_CHUNK, AGENT_UNREAD_LIMIT - queued);
}

/* The limit is held: the process is killed, and what waited still
 * reaches its pipe. */
static void
agent_driver_fail_unread (QleanGuestAgentDriver *self)
{
  g_autofree char *limit = g_format_size (AGENT_UNREAD_LIMIT);
  QleanGuestProcess *process = self->process;

  agent_driver_fail (self,
                     g_error_new (G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                                  _("“%s” in machine “%s” was killed: %s of its output waited "
                                    "unread on the host, the most a process may leave there; "
                                    "read its pipes while it runs"),
                                  process->program, qlean_machine_get_name (process->machine),
                                  limit));
}

static void
agent_driver_read_cb (GObject      *source,
                      GAsyncResult *result,
                      gpointer      user_data)
{
  QleanGuestAgentDriver *self = user_data;
  guint fd = self->reading;
  g_autoptr(GBytes) bytes = NULL;
  GError *error = NULL;
  gboolean eof = FALSE;
  QleanGuestOutputPipe *pipe;

  bytes = qlean_qga_client_file_read_finish (QLEAN_QGA_CLIENT (source), result, &eof, &error);
  if (bytes == NULL)
    {
      agent_driver_lost (self, error);
      return;
    }

  pipe = &self->process->out[fd];
  if (g_bytes_get_size (bytes) > 0)
    {
      self->got_data = TRUE;
      if (pipe->fd >= 0)
        {
          g_queue_push_tail (&pipe->chunks, g_bytes_ref (bytes));
          qlean_guest_output_pipe_flush (pipe);
        }
    }
  if (self->exit_seen && (eof || g_bytes_get_size (bytes) == 0))
    self->done[fd] = TRUE;

  /* Nobody reads: stop where the qlean-guest driver stops. */
  if (agent_driver_read_size (self, fd) == 0)
    {
      agent_driver_fail_unread (self);
      return;
    }

  agent_driver_read (self, fd + 1);
}

/* Reads the next file from @fd on that has more to give. */
static void
agent_driver_read (QleanGuestAgentDriver *self,
                   guint                  fd)
{
  for (; fd < G_N_ELEMENTS (self->handle); fd++)
    {
      gboolean wanted = fd == 1 ? self->read_out : self->read_err;

      if (self->handle[fd] >= 0 && wanted && !self->done[fd])
        {
          gsize size = agent_driver_read_size (self, fd);

          /* A pipe's queue only shrinks between reads, and each read
           * stops the process at the limit: never 0 here, but a read of
           * 0 bytes would pass for the end of the file. */
          if (size == 0)
            {
              agent_driver_fail_unread (self);
              return;
            }
          self->reading = fd;
          qlean_qga_client_file_read_async (self->qga, self->handle[fd], size, NULL,
                                            agent_driver_read_cb, self);
          return;
        }
    }

  agent_driver_round_done (self);
}

/* Starting: the script is running; its DIR/out says it exec'd the
 * program, its end before that says why not. */

static gboolean
agent_driver_probe_cb (gpointer user_data)
{
  QleanGuestAgentDriver *self = user_data;

  g_clear_pointer (&self->timer, g_source_unref);
  agent_driver_probe (self);
  return G_SOURCE_REMOVE;
}

/* Shipping the stdin pipe's input failed: the process is lost as when
 * a poll fails, but its end comes through the poll (whose call may be
 * in flight): the process is killed with the error kept for its waits. */
static void
agent_driver_stdin_failed (GError   *error,
                           gpointer  user_data)
{
  QleanGuestAgentDriver *self = user_data;

  g_clear_pointer (&self->stdin_feeder, qlean_guest_agent_stdin_stop);
  qlean_guest_process_fail (self->process, agent_driver_lost_error (self, error));
  qlean_guest_agent_driver_signal (self, SIGKILL);
}

static void
agent_driver_started (QleanGuestAgentDriver *self)
{
  QleanGuestProcess *process = self->process;
  g_autoptr(GTask) task = g_steal_pointer (&process->spawn_task);

  process->identifier = g_strdup_printf ("%" G_GINT64_FORMAT, self->pid);
  qlean_guest_process_arm_timeout (process);
  if (process->stdin_fd >= 0)
    {
      /* The pump waits in the guest: the pipe's host end is the
       * feeder's from now on. */
      self->stdin_feeder = qlean_guest_agent_stdin_new (self->qga, self->dir, process->stdin_fd,
                                                        agent_driver_stdin_failed, self);
      process->stdin_fd = -1;
    }
  self->delay_ms = AGENT_POLL_FIRST_MS;
  agent_driver_poll (self);
  g_task_return_pointer (task, g_object_ref (process), g_object_unref);
}

static void
agent_driver_open_err_cb (GObject      *source,
                          GAsyncResult *result,
                          gpointer      user_data)
{
  QleanGuestAgentDriver *self = user_data;
  GError *error = NULL;
  gint64 handle = qlean_qga_client_file_open_finish (QLEAN_QGA_CLIENT (source), result, &error);

  if (handle < 0)
    {
      agent_driver_lost (self, error);
      return;
    }

  self->handle[2] = handle;
  agent_driver_started (self);
}

static GError *agent_start_error (QleanGuestProcess  *process,
                                  QleanQgaExecStatus *status,
                                  const char         *user,
                                  const char         *cwd);

static void
agent_driver_start_status_cb (GObject      *source,
                              GAsyncResult *result,
                              gpointer      user_data)
{
  QleanGuestAgentDriver *self = user_data;
  g_autoptr(QleanQgaExecStatus) status = agent_driver_status_finish (self, result);

  if (status == NULL)
    return;

  if (status->exited)
    {
      /* It may have exec'd and ended between the probe and now: one
       * more look at DIR/out tells. */
      agent_driver_take_exit (self, status);
      self->start_status = g_steal_pointer (&status);
      agent_driver_probe (self);
      return;
    }

  if (self->start_deadline > 0 && g_get_monotonic_time () > self->start_deadline)
    {
      QleanGuestProcess *process = self->process;

      agent_driver_fail (self, g_error_new (G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                                            _("Cannot run “%s” in machine “%s”: the guest agent "
                                              "did not start it in time"),
                                            process->program,
                                            qlean_machine_get_name (process->machine)));
      return;
    }

  self->timer = qlean_add_timeout (qlean_worker_get_context (), self->delay_ms,
                                   agent_driver_probe_cb, self);
  self->delay_ms = MIN (self->delay_ms * 2, AGENT_POLL_MAX_MS);
}

static void
agent_driver_open_out_cb (GObject      *source,
                          GAsyncResult *result,
                          gpointer      user_data)
{
  QleanGuestAgentDriver *self = user_data;
  g_autoptr(GError) error = NULL;
  gint64 handle = qlean_qga_client_file_open_finish (QLEAN_QGA_CLIENT (source), result, &error);

  if (handle < 0)
    {
      if (g_error_matches (error, QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_DISCONNECTED) ||
          g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
        {
          agent_driver_lost (self, g_steal_pointer (&error));
          return;
        }
      if (self->start_status != NULL)
        {
          agent_driver_fail (self, agent_start_error (self->process, self->start_status,
                                                      self->user, self->cwd));
          return;
        }
      /* Not there yet: still starting, or it ended. */
      qlean_qga_client_exec_status_async (self->qga, self->pid, NULL,
                                          agent_driver_start_status_cb, self);
      return;
    }

  self->handle[1] = handle;
  if (self->read_err)
    {
      g_autofree char *err_path = g_build_filename (self->dir, "err", NULL);

      qlean_qga_client_file_open_async (self->qga, err_path, "r", NULL,
                                        agent_driver_open_err_cb, self);
      return;
    }

  agent_driver_started (self);
}

static void
agent_driver_probe (QleanGuestAgentDriver *self)
{
  g_autofree char *out_path = g_build_filename (self->dir, "out", NULL);

  qlean_qga_client_file_open_async (self->qga, out_path, "r", NULL, agent_driver_open_out_cb, self);
}

static void
agent_driver_exec_cb (GObject      *source,
                      GAsyncResult *result,
                      gpointer      user_data)
{
  QleanGuestAgentDriver *self = user_data;
  GError *error = NULL;
  gint64 pid = qlean_qga_client_exec_finish (QLEAN_QGA_CLIENT (source), result, &error);

  if (pid < 0)
    {
      /* Nothing ran: nothing to clean. */
      g_clear_pointer (&self->dir, g_free);
      agent_driver_lost (self, error);
      return;
    }

  self->pid = pid;
  self->delay_ms = AGENT_START_FIRST_MS;
  self->timer = qlean_add_timeout (qlean_worker_get_context (), self->delay_ms,
                                   agent_driver_probe_cb, self);
}

/* The script's reason for not exec'ing, as the qlean-guest driver
 * reports the same failure. */
static GError *
agent_start_error (QleanGuestProcess  *process,
                   QleanQgaExecStatus *status,
                   const char         *user,
                   const char         *cwd)
{
  const char *name = qlean_machine_get_name (process->machine);
  g_autofree char *out = NULL;
  const char *diag = NULL;

  if (status->out_data != NULL)
    out = g_strndup (g_bytes_get_data (status->out_data, NULL), g_bytes_get_size (status->out_data));
  if (status->exit_code == 125 && out != NULL && g_str_has_prefix (out, AGENT_DIAG))
    {
      diag = out + strlen (AGENT_DIAG);
      out[strcspn (out, "\n")] = '\0';
    }

  if (g_strcmp0 (diag, "exec ENOENT") == 0)
    return g_error_new (QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_COMMAND_NOT_FOUND,
                        _("Cannot run “%s” in machine “%s”: no such program"), process->program, name);
  if (g_strcmp0 (diag, "exec EACCES") == 0)
    return g_error_new (QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_COMMAND_NOT_FOUND,
                        _("Cannot run “%s” in machine “%s”: it is not an executable file"),
                        process->program, name);
  if (g_strcmp0 (diag, "cwd ENOENT") == 0)
    return g_error_new (QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_COMMAND_NOT_FOUND,
                        _("Cannot run “%s” in machine “%s”: its working directory “%s” does not exist"),
                        process->program, name, cwd);
  if (g_strcmp0 (diag, "cwd ENOTDIR") == 0)
    return g_error_new (G_IO_ERROR, G_IO_ERROR_NOT_DIRECTORY,
                        _("Cannot run “%s” in machine “%s”: its working directory “%s” is not a directory"),
                        process->program, name, cwd);
  if (g_strcmp0 (diag, "cwd EACCES") == 0)
    return g_error_new (QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_COMMAND_NOT_FOUND,
                        _("Cannot run “%s” in machine “%s”: its user may not enter its working directory “%s”"),
                        process->program, name, cwd);
  if (g_strcmp0 (diag, "user") == 0)
    return g_error_new (QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_COMMAND_NOT_FOUND,
                        _("Cannot run “%s” in machine “%s”: unknown user “%s”"),
                        process->program, name, user);
  if (g_strcmp0 (diag, "switch") == 0)
    return g_error_new (G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                        _("Cannot run “%s” as user “%s” in machine “%s”: through the guest agent "
                          "alone this needs setpriv (util-linux) or su in the guest, and it has "
                          "neither"),
                        process->program, user, name);

  return g_error_new (G_IO_ERROR, G_IO_ERROR_FAILED,
                      _("Cannot run “%s” in machine “%s”: the guest agent's start script ended "
                        "with status %d (%s)"),
                      process->program, name, status->exit_code,
                      diag != NULL ? diag : (out != NULL ? g_strstrip (out) : ""));
}

/* Starting */

/* guest-exec's argv after /bin/sh: both scripts and their arguments. */
static GPtrArray *
agent_exec_args (const char                   *dir,
                 QleanGuestProcessFlags        flags,
                 const QleanGuestAgentCommand *command,
                 const char                   *stdin_mode)
{
  GPtrArray *args = g_ptr_array_new_with_free_func (g_free);
  gboolean has_changes = FALSE;
  const char *err_mode;

  g_ptr_array_add (args, g_strdup ("-c"));
  g_ptr_array_add (args, g_strdup (agent_stage1));
  g_ptr_array_add (args, g_strdup ("sh"));
  g_ptr_array_add (args, g_strdup (dir));
  g_ptr_array_add (args, g_strdup (command->user ? command->user : ""));
  g_ptr_array_add (args, g_strdup (command->clear_env ? "1" : "0"));

  /* A cleared environment travels as guest-exec's own env. */
  if (!command->clear_env && command->env->len > 0)
    {
      g_ptr_array_add (args, g_strdup ("env"));
      for (guint i = 0; i < command->env->len; i++)
        {
          const char *entry = g_ptr_array_index (command->env, i);

          if (strchr (entry, '=') == NULL)
            {
              g_ptr_array_add (args, g_strdup ("-u"));
              g_ptr_array_add (args, g_strdup (entry));
            }
          else
            has_changes = TRUE;
        }
      g_ptr_array_add (args, g_strdup ("--"));
      for (guint i = 0; has_changes && i < command->env->len; i++)
        {
          const char *entry = g_ptr_array_index (command->env, i);

          if (strchr (entry, '=') != NULL)
            g_ptr_array_add (args, g_strdup (entry));
        }
    }

  if (flags & QLEAN_GUEST_PROCESS_FLAGS_STDERR_MERGE)
    err_mode = "m";
  else if (flags & QLEAN_GUEST_PROCESS_FLAGS_STDERR_PIPE)
    err_mode = "e";
  else
    err_mode = "n";

  g_ptr_array_add (args, g_strdup ("/bin/sh"));
  g_ptr_array_add (args, g_strdup ("-c"));
  g_ptr_array_add (args, g_strdup (agent_stage2));
  g_ptr_array_add (args, g_strdup ("sh"));
  g_ptr_array_add (args, g_strdup (dir));
  /* Relative to "/", as qlean-guest takes it; never "-" or a CDPATH
   * search. */
  if (command->cwd == NULL)
    g_ptr_array_add (args, g_strdup ("/"));
  else if (command->cwd[0] == '/')
    g_ptr_array_add (args, g_strdup (command->cwd));
  else
    g_ptr_array_add (args, g_strconcat ("/", command->cwd, NULL));
  g_ptr_array_add (args, g_strdup (stdin_mode));
  g_ptr_array_add (args, g_strdup ((flags & QLEAN_GUEST_PROCESS_FLAGS_STDOUT_PIPE) ? "o" : "n"));
  g_ptr_array_add (args, g_strdup (err_mode));
  for (guint i = 0; command->argv[i] != NULL; i++)
    g_ptr_array_add (args, g_strdup (command->argv[i]));
  g_ptr_array_add (args, NULL);

  return args;
}

/* A cleared environment: exactly the launcher's, with a PATH. */
static GPtrArray *
agent_exec_env (const QleanGuestAgentCommand *command)
{
  GPtrArray *env = g_ptr_array_new_with_free_func (g_free);
  gboolean has_path = FALSE;

  for (guint i = 0; i < command->env->len; i++)
    {
      const char *entry = g_ptr_array_index (command->env, i);

      if (strchr (entry, '=') == NULL)
        continue;
      has_path |= g_str_has_prefix (entry, "PATH=");
      g_ptr_array_add (env, g_strdup (entry));
    }
  if (!has_path)
    g_ptr_array_add (env, g_strdup ("PATH=" AGENT_DEFAULT_PATH));
  g_ptr_array_add (env, NULL);

  return env;
}

/* JSON carries UTF-8 only, and a user name that starts with '-' would
 * be an option to the tools that switch to it. */
static gboolean
agent_check_command (const QleanGuestAgentCommand  *command,
                     const char                    *machine_name,
                     GError                       **error)
{
  gboolean valid = TRUE;

  for (guint i = 0; command->argv[i] != NULL; i++)
    valid &= g_utf8_validate (command->argv[i], -1, NULL);
  for (guint i = 0; i < command->env->len; i++)
    valid &= g_utf8_validate (g_ptr_array_index (command->env, i), -1, NULL);
  valid &= command->cwd == NULL || g_utf8_validate (command->cwd, -1, NULL);
  valid &= command->user == NULL || g_utf8_validate (command->user, -1, NULL);
  if (!valid)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   _("Cannot run “%s” in machine “%s”: its arguments, environment, directory or "
                     "user are not UTF-8, which the guest agent transport cannot carry"),
                   command->argv[0], machine_name);
      return FALSE;
    }

  if (command->user != NULL && (command->user[0] == '-' || command->user[0] == '\0'))
    {
      g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_COMMAND_NOT_FOUND,
                   _("Cannot run “%s” in machine “%s”: unknown user “%s”"),
                   command->argv[0], machine_name, command->user);
      return FALSE;
    }

  return TRUE;
}

void
qlean_guest_process_agent_start (QleanMachine                 *machine,
                                 QleanQgaClient               *qga,
                                 guint                         guest_timeout_ms,
                                 QleanGuestProcessFlags        flags,
                                 const QleanGuestAgentCommand *command,
                                 GBytes                       *stdin_bytes,
                                 guint                         timeout_ms,
                                 GTask                        *task)
{
  g_autoptr(QleanGuestProcess) process = NULL;
  g_autoptr(GPtrArray) args = NULL;
  g_autoptr(GPtrArray) env = NULL;
  g_autofree char *random = NULL;
  const char *stdin_mode;
  QleanGuestAgentDriver *self;
  GError *error = NULL;

  /* No terminal here: the launcher refused it. */
  flags &= ~QLEAN_GUEST_PROCESS_FLAGS_TERMINAL;

  if (!agent_check_command (command, qlean_machine_get_name (machine), &error))
    {
      g_task_return_error (task, error);
      return;
    }

  process = qlean_guest_process_new_for_start (machine, guest_timeout_ms, flags, command->argv[0],
                                               timeout_ms, &error);
  if (process == NULL)
    {
      g_task_return_error (task, error);
      return;
    }
  self = g_new0 (QleanGuestAgentDriver, 1);
  self->process = g_object_ref (process);
  self->qga = g_object_ref (qga);
  /* A fresh name the guest cannot have guessed; mkdir refuses anything
   * already there, a link included. */
  random = g_strdup_printf ("%08x%08x%08x%08x", g_random_int (), g_random_int (), g_random_int (),
                            g_random_int ());
  self->dir = g_strconcat ("/tmp/qlean-exec-", random, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (self->handle); i++)
    self->handle[i] = -1;
  self->user = g_strdup (command->user);
  self->cwd = g_strdup (command->cwd);
  self->read_out = (flags & QLEAN_GUEST_PROCESS_FLAGS_STDOUT_PIPE) != 0;
  self->read_err = (flags & QLEAN_GUEST_PROCESS_FLAGS_STDERR_PIPE) &&
                   !(flags & QLEAN_GUEST_PROCESS_FLAGS_STDERR_MERGE);
  if (guest_timeout_ms > 0)
    self->start_deadline = g_get_monotonic_time () + guest_timeout_ms * (gint64) 1000;
  process->agent = self;
  process->spawn_task = g_object_ref (task);

  /* Stdin: a pipe through the pump ("p"), guest-exec's input-data
   * ("1"), or nothing. */
  if (flags & QLEAN_GUEST_PROCESS_FLAGS_STDIN_PIPE)
    stdin_mode = "p";
  else
    stdin_mode = stdin_bytes != NULL ? "1" : "0";
  args = agent_exec_args (self->dir, flags, command, stdin_mode);
  if (command->clear_env)
    env = agent_exec_env (command);
  qlean_qga_client_exec_async (qga, "/bin/sh", (const char * const *) args->pdata,
                               env ? (const char * const *) env->pdata : NULL, stdin_bytes, TRUE,
                               NULL, agent_driver_exec_cb, self);
}
