/* qlean-guest-process-private.h: a guest process's state, and how launchers start it
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-guest-process-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include "qlean-guest-channel-private.h"
#include "qlean-guest-output-pipe-private.h"
#include "qlean-guest-launcher.h"
#include "qlean-guest-process.h"
#include "qlean-machine.h"
#include "qlean-qga-client.h"

G_BEGIN_DECLS

/* A process's second driver: the stock QEMU guest agent's, for runs
 * without qlean-guest (qlean-guest-process-agent.c). */
typedef struct _QleanGuestAgentDriver QleanGuestAgentDriver;

/* The process's state, in this header so that its run
 * (qlean-guest-process.c) and its waits (qlean-guest-process-wait.c) can
 * share it. Only those two files may touch its fields; every other file,
 * communicate and the launcher included, goes through the functions
 * below and the public API. */
struct _QleanGuestProcess
{
  GObject                 parent_instance;

  QleanMachine           *machine;
  char                   *program;
  QleanGuestProcessFlags  flags;
  GOutputStream          *stdin_pipe;
  GInputStream           *stdout_pipe;
  GInputStream           *stderr_pipe;
  char                   *identifier;

  GMutex                  lock;
  gboolean                exited;
  int                     wait_status;
  gboolean                timed_out;
  GError                 *failure;
  GBytes                 *stdout_bytes;
  GBytes                 *stderr_bytes;
  gboolean                stdout_truncated;
  gboolean                stderr_truncated;
  gsize                   output_limit;   /* what communicate keeps of each pipe */

  /* Worker only. */
  QleanGuestStream       *stream;
  QleanGuestOutputPipe    out[3];         /* by the guest's fd: 1 stdout, 2 stderr */
  int                     stdin_fd;
  GSource                *stdin_source;
  GPtrArray              *waiters;
  GTask                  *spawn_task;
  GSource                *timeout_source;
  guint                   timeout_ms;
  guint                   guest_timeout_ms; /* per frame of qlean-guest (its run's) */
  /* Instead of a stream, on a run that uses the guest agent alone. */
  QleanGuestAgentDriver  *agent;
};

/* Worker thread only. The end of the process (exit, or the loss of the
 * machine): every pending wait returns, and the timeout is disarmed. */
void qlean_guest_process_complete_waiters (QleanGuestProcess *self);

/* Worker thread only. A new process for a start in @machine, with the
 * host's ends of the pipes @flags asks for. */
QleanGuestProcess *qlean_guest_process_new_for_start (QleanMachine           *machine,
                                                      guint                   guest_timeout_ms,
                                                      QleanGuestProcessFlags  flags,
                                                      const char             *program,
                                                      guint                   timeout_ms,
                                                      GError                **error);

/* Worker thread only, for a driver: the process started (its timeout
 * runs from now on); it failed (@error, taken: the first one wins); its
 * output ended (what came still reaches stdout and stderr, then their
 * readers see their end). */
void qlean_guest_process_arm_timeout  (QleanGuestProcess *self);
void qlean_guest_process_fail         (QleanGuestProcess *self,
                                       GError            *error);
void qlean_guest_process_end_output   (QleanGuestProcess *self);

/* Worker thread only: whether a driver still runs the process, and
 * sending it a signal through whichever does. */
gboolean qlean_guest_process_is_live     (QleanGuestProcess *self);
void     qlean_guest_process_kill_in_worker (QleanGuestProcess *self,
                                             int                signum);

/* Worker thread only. Sends the EXEC request on @channel; @task (whose
 * source object may be anything) completes with the process once the
 * guest reports it started, or with the error that kept it from
 * starting. */
void qlean_guest_process_start (QleanMachine           *machine,
                                guint                   guest_timeout_ms,
                                QleanGuestChannel      *channel,
                                QleanGuestProcessFlags  flags,
                                const char             *program,
                                GBytes                 *request,
                                GBytes                 *stdin_bytes,
                                guint                   timeout_ms,
                                GTask                  *task);

/* What a process started through the guest agent alone runs: its argv,
 * and the launcher's environment, directory and user. */
typedef struct
{
  const char * const *argv;
  GPtrArray          *env;        /* "NAME=value", or "NAME" to unset */
  gboolean            clear_env;
  const char         *cwd;
  const char         *user;
} QleanGuestAgentCommand;

/* Worker thread only. Starts @command through @qga (guest-exec and the
 * guest-file calls only, qlean-guest-process-agent.c); @task completes
 * as with qlean_guest_process_start(). */
void qlean_guest_process_agent_start (QleanMachine                 *machine,
                                      QleanQgaClient               *qga,
                                      guint                         guest_timeout_ms,
                                      QleanGuestProcessFlags        flags,
                                      const QleanGuestAgentCommand *command,
                                      GBytes                       *stdin_bytes,
                                      guint                         timeout_ms,
                                      GTask                        *task);
/* Any thread: sends @signum to the process group that the guest-exec
 * @pid leads (or to @pid alone when it leads none), fire and forget. */
void     qlean_guest_agent_kill           (QleanQgaClient        *qga,
                                           gint64                 pid,
                                           int                    signum);
/* Worker thread only, for the process: sends @signum to the process's
 * group; whether the driver still runs; and its end (finalize). */
void     qlean_guest_agent_driver_signal  (QleanGuestAgentDriver *driver,
                                           int                    signum);
gboolean qlean_guest_agent_driver_is_live (QleanGuestAgentDriver *driver);
void     qlean_guest_agent_driver_free    (QleanGuestAgentDriver *driver);

/* Worker thread only. A stdin pipe through the guest agent alone
 * (qlean-guest-process-agent-stdin.c): ships what the user writes into
 * the pipe whose host end is @fd (taken) as chunk files of the guest
 * directory @dir, for the pump of the driver's start script. @failed
 * gets an agent call's error (taken), once; the driver then stops it.
 * Stopping closes @fd and lets go: the feeder frees itself once its
 * call in flight answered. */
typedef struct _QleanGuestAgentStdin QleanGuestAgentStdin;
typedef void (*QleanGuestAgentStdinFailed) (GError   *error,
                                            gpointer  user_data);

QleanGuestAgentStdin *qlean_guest_agent_stdin_new  (QleanQgaClient             *qga,
                                                    const char                 *dir,
                                                    int                         fd,
                                                    QleanGuestAgentStdinFailed  failed,
                                                    gpointer                    user_data);
void                  qlean_guest_agent_stdin_stop (QleanGuestAgentStdin       *self);

/* What qlean_guest_launcher_run() (and so qlean_machine_exec() through
 * qlean-guest) keeps of each output stream: a hostile or runaway guest
 * cannot make the host hold more. Four times the guest agent's cap. */
#define QLEAN_GUEST_RUN_OUTPUT_LIMIT (64u * 1024u * 1024u)

/* Before communicate: keep at most @limit bytes of each output pipe; the
 * rest is read and dropped, and get_output_truncated() says so. */
void qlean_guest_process_set_output_limit     (QleanGuestProcess *self,
                                               gsize              limit);
gsize qlean_guest_process_get_output_limit    (QleanGuestProcess *self);
/* Communicate's end: keeps what it read of each output (taking
 * @stdout_bytes and @stderr_bytes, either NULL) for the getters. */
void qlean_guest_process_take_output          (QleanGuestProcess *self,
                                               GBytes            *stdout_bytes,
                                               GBytes            *stderr_bytes,
                                               gboolean           stdout_truncated,
                                               gboolean           stderr_truncated);
/* After communicate: whether each output went past the limit. */
void qlean_guest_process_get_output_truncated (QleanGuestProcess *self,
                                               gboolean          *stdout_truncated,
                                               gboolean          *stderr_truncated);

/* Lets @self start processes in a machine that is still starting, for
 * the commands Qlean itself runs before the machine is ready (a restored
 * machine's new identity). */
void qlean_guest_launcher_set_starting (QleanGuestLauncher *self);

G_END_DECLS
