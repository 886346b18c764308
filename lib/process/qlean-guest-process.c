/* qlean-guest-process.c: a process running in a machine
 *
 * SPDX-License-Identifier: MIT
 *
 * One run of a command a QleanGuestLauncher started: the events of its
 * EXEC stream, its stdin fed from a host pipe, signals, and its end's
 * status. The way its output takes to the host pipes is in
 * qlean-guest-output-pipe.c; waiting for its end (and the waiters it
 * completes when it ends) is in qlean-guest-process-wait.c; communicate,
 * which uses a process only through its pipes and its wait, is in
 * qlean-guest-process-communicate.c. A run without qlean-guest drives the
 * same process through the guest agent instead of a stream
 * (qlean-guest-process-agent.c).
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <glib-unix.h>
#include <glib/gi18n-lib.h>
#include <gio/gunixinputstream.h>
#include <gio/gunixoutputstream.h>

#include "qlean-error.h"
#include "qlean-guest-output-pipe-private.h"
#include "qlean-guest-process-private.h"
#include "qlean-guest-stream-dispatch-private.h"
#include "qlean-json-channel-private.h"
#include "qlean-sync-private.h"
#include "qlean-task-private.h"
#include "qlean-worker-private.h"

/**
 * QleanGuestProcess:
 *
 * A process in a [class@Machine], made by [class@GuestLauncher], used as
 * one uses a #GSubprocess: its stdout and stderr pipes deliver output
 * while it runs, its stdin pipe takes input, and it can be waited for,
 * signalled, or communicated with.
 *
 * The pipes are real pipes on the host, fed from the machine's data port
 * by Qlean's worker thread: they are pollable, work with any GIO stream
 * API, and the process's output reaches them as the guest writes it.
 * Its size is not capped (output beyond the guest agent's 16 MiB limit
 * flows like any other), but it must be read as it comes: the machine's
 * one data channel carries every process's output, so the host cannot
 * make one process wait for its reader without stalling the others.
 * Once 16 MiB of a process's output wait unread on the host, the process
 * is killed and waiting for it fails with %G_IO_ERROR_NO_SPACE; what
 * waited still reaches its pipe. A pipe you do not mean to read is best
 * not asked for.
 *
 * On a machine that uses the QEMU guest agent alone, the process writes
 * its output to temporary files in the guest, which Qlean reads with
 * guest-file-read while it runs, every few milliseconds while output
 * comes and backing off to 50 ms while none does, and removes once it
 * ended; the 16 MiB rule above holds there too. Its end is known within
 * that poll.
 *
 * With a timeout (see [method@GuestLauncher.set_timeout]), a process that
 * outlives it is killed with its whole process group, and waiting for it
 * fails with %G_IO_ERROR_TIMED_OUT. Cancelling a wait or a communicate
 * kills it the same way. After such a failure, what
 * [method@GuestProcess.communicate] had read so far is available from
 * [method@GuestProcess.get_stdout_bytes] and
 * [method@GuestProcess.get_stderr_bytes].
 *
 * Since: 0.1
 */

G_DEFINE_FINAL_TYPE (QleanGuestProcess, qlean_guest_process, G_TYPE_OBJECT)

/* The stream ended without the guest's EOFs: what came still reaches
 * stdout and stderr, then readers see their end. */
void
qlean_guest_process_end_output (QleanGuestProcess *self)
{
  for (guint i = 1; i < G_N_ELEMENTS (self->out); i++)
    {
      self->out[i].eof = TRUE;
      qlean_guest_output_pipe_flush (&self->out[i]);
    }
}

static void
qlean_guest_process_finalize (GObject *object)
{
  QleanGuestProcess *self = QLEAN_GUEST_PROCESS (object);

  g_assert (self->spawn_task == NULL);

  for (guint i = 1; i < G_N_ELEMENTS (self->out); i++)
    qlean_guest_output_pipe_close (&self->out[i]);
  qlean_clear_source (&self->stdin_source);
  qlean_clear_source (&self->timeout_source);
  if (self->stdin_fd >= 0)
    close (self->stdin_fd);
  g_clear_pointer (&self->stream, qlean_guest_stream_unref);
  g_clear_pointer (&self->agent, qlean_guest_agent_driver_free);
  g_clear_pointer (&self->waiters, g_ptr_array_unref);
  g_clear_object (&self->stdin_pipe);
  g_clear_object (&self->stdout_pipe);
  g_clear_object (&self->stderr_pipe);
  g_clear_pointer (&self->stdout_bytes, g_bytes_unref);
  g_clear_pointer (&self->stderr_bytes, g_bytes_unref);
  g_clear_error (&self->failure);
  g_clear_object (&self->machine);
  g_free (self->identifier);
  g_free (self->program);
  g_mutex_clear (&self->lock);

  G_OBJECT_CLASS (qlean_guest_process_parent_class)->finalize (object);
}

static void
qlean_guest_process_class_init (QleanGuestProcessClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = qlean_guest_process_finalize;
}

static void
qlean_guest_process_init (QleanGuestProcess *self)
{
  g_mutex_init (&self->lock);
  self->stdin_fd = -1;
  self->output_limit = G_MAXSIZE;
  for (guint i = 0; i < G_N_ELEMENTS (self->out); i++)
    qlean_guest_output_pipe_init (&self->out[i]);
  self->waiters = g_ptr_array_new_with_free_func (g_object_unref);
}

/* Makes a pipe whose far end, blocking, goes to the user as a GIO
 * stream and whose near end, non-blocking, stays with the worker. */
static gboolean
make_pipe (int       fds[2],
           GError  **error)
{
  /* GLib before 2.78 takes FD_CLOEXEC here, and rejects O_CLOEXEC. */
  if (!g_unix_open_pipe (fds, FD_CLOEXEC, error))
    return FALSE;

  return TRUE;
}

static gboolean
qlean_guest_process_timeout_cb (gpointer user_data)
{
  QleanGuestProcess *self = user_data;

  g_clear_pointer (&self->timeout_source, g_source_unref);

  g_mutex_lock (&self->lock);
  self->timed_out = TRUE;
  g_mutex_unlock (&self->lock);

  /* The EXIT that follows the kill is due at once; a stopped qlean-guest
   * never sends it, so that wait is bounded too. */
  if (self->stream != NULL)
    {
      qlean_guest_stream_send_signal (self->stream, SIGKILL);
      qlean_guest_stream_set_timeout (self->stream, self->guest_timeout_ms);
    }
  else if (self->agent != NULL)
    qlean_guest_agent_driver_signal (self->agent, SIGKILL);

  return G_SOURCE_REMOVE;
}

void
qlean_guest_process_arm_timeout (QleanGuestProcess *self)
{
  if (self->timeout_ms > 0 && self->timeout_source == NULL)
    self->timeout_source = qlean_add_timeout (qlean_worker_get_context (), self->timeout_ms,
                                              qlean_guest_process_timeout_cb, self);
}

gboolean
qlean_guest_process_is_live (QleanGuestProcess *self)
{
  return self->stream != NULL ||
         (self->agent != NULL && qlean_guest_agent_driver_is_live (self->agent));
}

void
qlean_guest_process_kill_in_worker (QleanGuestProcess *self,
                                    int                signum)
{
  if (self->stream != NULL)
    qlean_guest_stream_send_signal (self->stream, signum);
  else if (self->agent != NULL)
    qlean_guest_agent_driver_signal (self->agent, signum);
}

static void qlean_guest_process_watch_stdin (QleanGuestProcess *self);

/* The process ended (or was lost): what the user still writes into its
 * stdin pipe fails as a broken pipe, as into an ended local process's,
 * instead of blocking for ever once the pipe is full. */
static void
qlean_guest_process_end_stdin (QleanGuestProcess *self)
{
  qlean_clear_source (&self->stdin_source);
  if (self->stdin_fd >= 0)
    close (self->stdin_fd);
  self->stdin_fd = -1;
}

static gboolean
qlean_guest_process_stdin_writable (gpointer user_data)
{
  qlean_guest_process_watch_stdin (user_data);
  return G_SOURCE_REMOVE;
}

static gboolean
qlean_guest_process_stdin_readable_cb (gint         fd,
                                       GIOCondition condition,
                                       gpointer     user_data)
{
  QleanGuestProcess *self = user_data;
  guint8 buffer[256 * 1024];
  ssize_t n;

  do
    n = read (fd, buffer, sizeof buffer);
  while (n < 0 && errno == EINTR);

  if (n < 0 && errno == EAGAIN)
    return G_SOURCE_CONTINUE;

  if (n <= 0)
    {
      /* The user closed the pipe: the guest sees EOF. */
      g_clear_pointer (&self->stdin_source, g_source_unref);
      close (self->stdin_fd);
      self->stdin_fd = -1;
      if (self->stream != NULL)
        qlean_guest_stream_send_eof (self->stream);
      return G_SOURCE_REMOVE;
    }

  if (self->stream != NULL)
    {
      g_autoptr(GBytes) bytes = g_bytes_new (buffer, n);

      qlean_guest_stream_send_data (self->stream, bytes);

      /* Stop reading while the guest's window is full; the stream calls
       * us back when credit returns. */
      if (qlean_guest_stream_get_unacked (self->stream) >= QLEAN_GUEST_WINDOW)
        {
          g_clear_pointer (&self->stdin_source, g_source_unref);
          return G_SOURCE_REMOVE;
        }
    }

  return G_SOURCE_CONTINUE;
}

static void
qlean_guest_process_watch_stdin (QleanGuestProcess *self)
{
  if (self->stdin_fd < 0 || self->stdin_source != NULL || self->stream == NULL)
    return;

  self->stdin_source = g_unix_fd_source_new (self->stdin_fd, G_IO_IN | G_IO_HUP | G_IO_ERR);
  g_source_set_callback (self->stdin_source,
                         (GSourceFunc) (void (*) (void)) qlean_guest_process_stdin_readable_cb,
                         self, NULL);
  g_source_set_static_name (self->stdin_source, "[qlean] guest stdin pipe");
  g_source_attach (self->stdin_source, qlean_worker_get_context ());
}

void
qlean_guest_process_fail (QleanGuestProcess *self,
                          GError            *error)
{
  g_mutex_lock (&self->lock);
  if (self->failure == NULL)
    self->failure = error;
  else
    g_error_free (error);
  g_mutex_unlock (&self->lock);
}

/* The stream's events (see qlean-guest-stream-dispatch-private.h). */

/* The channel closed (the machine went down or was stopped), qlean-guest
 * let a start or a kill go unanswered, or the process's output waited
 * unread until the channel killed it. */
static void
qlean_guest_process_stream_closed (QleanGuestStream *stream,
                                   const GError     *error,
                                   gpointer          user_data)
{
  QleanGuestProcess *self = user_data;
  gboolean timed_out = g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  GError *failure;

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE))
    {
      g_autofree char *limit = g_format_size (QLEAN_GUEST_RECEIVE_LIMIT);

      failure = g_error_new (G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                             _("“%s” in machine “%s” was killed: %s of its output waited "
                               "unread on the host, the most a process may leave there; "
                               "read its pipes while it runs"),
                             self->program, qlean_machine_get_name (self->machine), limit);
    }
  else
    failure = g_error_new (timed_out ? G_IO_ERROR : QLEAN_MACHINE_ERROR,
                           timed_out ? G_IO_ERROR_TIMED_OUT : QLEAN_MACHINE_ERROR_CRASHED,
                           _("Lost “%s” in machine “%s”: %s"), self->program,
                           qlean_machine_get_name (self->machine), error->message);

  g_clear_pointer (&self->stream, qlean_guest_stream_unref);
  qlean_guest_process_end_stdin (self);
  qlean_guest_process_end_output (self);
  if (self->spawn_task != NULL)
    {
      g_autoptr(GTask) task = g_steal_pointer (&self->spawn_task);

      g_task_return_error (task, failure);
    }
  else
    qlean_guest_process_fail (self, failure);
  qlean_guest_process_complete_waiters (self);
}

static void
qlean_guest_process_stream_started (QleanGuestStream *stream,
                                    guint32           pid,
                                    gpointer          user_data)
{
  QleanGuestProcess *self = user_data;
  g_autoptr(GTask) task = g_steal_pointer (&self->spawn_task);

  if (task == NULL)
    return;

  self->identifier = g_strdup_printf ("%u", pid);
  /* Started: from now on the process may stay silent as long as it
   * likes. */
  qlean_guest_stream_set_timeout (stream, 0);
  qlean_guest_process_arm_timeout (self);
  qlean_guest_process_watch_stdin (self);
  g_task_return_pointer (task, g_object_ref (self), g_object_unref);
}

static void
qlean_guest_process_stream_error (QleanGuestStream *stream,
                                  GBytes           *payload,
                                  gpointer          user_data)
{
  QleanGuestProcess *self = user_data;
  g_autofree char *what = g_strdup_printf (_("Cannot run “%s” in machine “%s”"), self->program,
                                           qlean_machine_get_name (self->machine));
  GError *failure = qlean_guest_error_from_payload (payload, what);

  qlean_guest_stream_close (stream);
  g_clear_pointer (&self->stream, qlean_guest_stream_unref);
  if (self->spawn_task != NULL)
    {
      g_autoptr(GTask) task = g_steal_pointer (&self->spawn_task);

      /* A missing or unrunnable program is its own error: a test must
       * never mistake it for a command that ran. */
      if (g_error_matches (failure, G_IO_ERROR, G_IO_ERROR_NOT_FOUND) ||
          g_error_matches (failure, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED))
        {
          GError *not_found = g_error_new_literal (QLEAN_MACHINE_ERROR,
                                                   QLEAN_MACHINE_ERROR_COMMAND_NOT_FOUND,
                                                   failure->message);
          g_error_free (failure);
          failure = not_found;
        }
      g_task_return_error (task, failure);
    }
  else
    {
      /* The process had started: its output ends here too, or a reader
       * of its pipes would wait for ever. */
      qlean_guest_process_end_stdin (self);
      qlean_guest_process_end_output (self);
      qlean_guest_process_fail (self, failure);
      qlean_guest_process_complete_waiters (self);
    }
}

static void
qlean_guest_process_stream_data (QleanGuestStream *stream,
                                 guint8            fd,
                                 GBytes           *payload,
                                 gpointer          user_data)
{
  QleanGuestProcess *self = user_data;

  if (fd < G_N_ELEMENTS (self->out) && self->out[fd].fd >= 0)
    {
      g_queue_push_tail (&self->out[fd].chunks, g_bytes_ref (payload));
      qlean_guest_output_pipe_flush (&self->out[fd]);
    }
}

static void
qlean_guest_process_stream_eof (QleanGuestStream *stream,
                                guint8            fd,
                                gpointer          user_data)
{
  QleanGuestProcess *self = user_data;

  if (fd < G_N_ELEMENTS (self->out))
    {
      self->out[fd].eof = TRUE;
      qlean_guest_output_pipe_flush (&self->out[fd]);
    }
}

static void
qlean_guest_process_stream_exit (QleanGuestStream *stream,
                                 int               wait_status,
                                 gpointer          user_data)
{
  QleanGuestProcess *self = user_data;

  g_mutex_lock (&self->lock);
  self->exited = TRUE;
  self->wait_status = wait_status;
  g_mutex_unlock (&self->lock);

  qlean_guest_stream_close (stream);
  g_clear_pointer (&self->stream, qlean_guest_stream_unref);
  qlean_guest_process_end_stdin (self);
  qlean_guest_process_end_output (self);
  qlean_guest_process_complete_waiters (self);
}

static const QleanGuestStreamHandlers qlean_guest_process_stream_handlers = {
  .closed = qlean_guest_process_stream_closed,
  .started = qlean_guest_process_stream_started,
  .error = qlean_guest_process_stream_error,
  .data = qlean_guest_process_stream_data,
  .eof = qlean_guest_process_stream_eof,
  .exit = qlean_guest_process_stream_exit,
};

static void
qlean_guest_process_stream_cb (QleanGuestStream *stream,
                               guint8            type,
                               guint8            fd,
                               GBytes           *payload,
                               const GError     *error,
                               gpointer          user_data)
{
  /* Dropping the stream (at its end) drops the reference it holds on
   * the process, which may be the last one: the handler still needs it. */
  g_autoptr(QleanGuestProcess) hold = g_object_ref (user_data);

  qlean_guest_stream_dispatch (&qlean_guest_process_stream_handlers, stream, type, fd, payload,
                               error, user_data);
}

void
qlean_guest_process_start (QleanMachine           *machine,
                           guint                   guest_timeout_ms,
                           QleanGuestChannel      *channel,
                           QleanGuestProcessFlags  flags,
                           const char             *program,
                           GBytes                 *request,
                           GBytes                 *stdin_bytes,
                           guint                   timeout_ms,
                           GTask                  *task)
{
  g_autoptr(QleanGuestProcess) self = NULL;
  GError *error = NULL;

  self = qlean_guest_process_new_for_start (machine, guest_timeout_ms, flags, program, timeout_ms,
                                            &error);
  if (self == NULL)
    {
      g_task_return_error (task, error);
      return;
    }

  self->spawn_task = g_object_ref (task);
  self->stream = qlean_guest_channel_open_stream (channel, QLEAN_GUEST_FRAME_EXEC, request,
                                                  qlean_guest_process_stream_cb,
                                                  g_object_ref (self), g_object_unref);
  qlean_guest_stream_set_writable_func (self->stream, qlean_guest_process_stdin_writable, self);
  /* STARTED (or ERROR) is due at once. */
  qlean_guest_stream_set_timeout (self->stream, self->guest_timeout_ms);

  if (stdin_bytes != NULL)
    {
      qlean_guest_stream_send_data (self->stream, stdin_bytes);
      qlean_guest_stream_send_eof (self->stream);
    }
}

QleanGuestProcess *
qlean_guest_process_new_for_start (QleanMachine           *machine,
                                   guint                   guest_timeout_ms,
                                   QleanGuestProcessFlags  flags,
                                   const char             *program,
                                   guint                   timeout_ms,
                                   GError                **error)
{
  g_autoptr(QleanGuestProcess) self = g_object_new (QLEAN_TYPE_GUEST_PROCESS, NULL);
  int fds[2];

  self->machine = g_object_ref (machine);
  self->guest_timeout_ms = guest_timeout_ms;
  self->program = g_strdup (program);
  self->flags = flags;
  self->timeout_ms = timeout_ms;

  if (flags & QLEAN_GUEST_PROCESS_FLAGS_STDOUT_PIPE)
    {
      if (!make_pipe (fds, error))
        return NULL;
      self->stdout_pipe = g_unix_input_stream_new (fds[0], TRUE);
      self->out[1].fd = fds[1];
      g_unix_set_fd_nonblocking (fds[1], TRUE, NULL);
    }

  /* A terminal has one output: no stderr pipe. */
  if ((flags & QLEAN_GUEST_PROCESS_FLAGS_STDERR_PIPE) &&
      !(flags & (QLEAN_GUEST_PROCESS_FLAGS_STDERR_MERGE | QLEAN_GUEST_PROCESS_FLAGS_TERMINAL)))
    {
      if (!make_pipe (fds, error))
        return NULL;
      self->stderr_pipe = g_unix_input_stream_new (fds[0], TRUE);
      self->out[2].fd = fds[1];
      g_unix_set_fd_nonblocking (fds[1], TRUE, NULL);
    }

  if (flags & QLEAN_GUEST_PROCESS_FLAGS_STDIN_PIPE)
    {
      if (!make_pipe (fds, error))
        return NULL;
      self->stdin_pipe = g_unix_output_stream_new (fds[1], TRUE);
      self->stdin_fd = fds[0];
      g_unix_set_fd_nonblocking (fds[0], TRUE, NULL);
    }

  return g_steal_pointer (&self);
}

/**
 * qlean_guest_process_get_stdin_pipe:
 * @self: a #QleanGuestProcess
 *
 * Returns: (transfer none) (nullable): the process's stdin, with
 *   %QLEAN_GUEST_PROCESS_FLAGS_STDIN_PIPE; closing it gives the process
 *   end-of-file
 *
 * Since: 0.1
 */
GOutputStream *
qlean_guest_process_get_stdin_pipe (QleanGuestProcess *self)
{
  g_return_val_if_fail (QLEAN_IS_GUEST_PROCESS (self), NULL);

  return self->stdin_pipe;
}

/**
 * qlean_guest_process_get_stdout_pipe:
 * @self: a #QleanGuestProcess
 *
 * Returns: (transfer none) (nullable): the process's stdout, live, with
 *   %QLEAN_GUEST_PROCESS_FLAGS_STDOUT_PIPE
 *
 * Since: 0.1
 */
GInputStream *
qlean_guest_process_get_stdout_pipe (QleanGuestProcess *self)
{
  g_return_val_if_fail (QLEAN_IS_GUEST_PROCESS (self), NULL);

  return self->stdout_pipe;
}

/**
 * qlean_guest_process_get_stderr_pipe:
 * @self: a #QleanGuestProcess
 *
 * Returns: (transfer none) (nullable): the process's stderr, live, with
 *   %QLEAN_GUEST_PROCESS_FLAGS_STDERR_PIPE
 *
 * Since: 0.1
 */
GInputStream *
qlean_guest_process_get_stderr_pipe (QleanGuestProcess *self)
{
  g_return_val_if_fail (QLEAN_IS_GUEST_PROCESS (self), NULL);

  return self->stderr_pipe;
}

/**
 * qlean_guest_process_get_identifier:
 * @self: a #QleanGuestProcess
 *
 * Returns: the process id in the guest, as a string
 *
 * Since: 0.1
 */
const char *
qlean_guest_process_get_identifier (QleanGuestProcess *self)
{
  g_return_val_if_fail (QLEAN_IS_GUEST_PROCESS (self), NULL);

  return self->identifier;
}

typedef struct
{
  QleanGuestProcess *self;
  int                signum;
} SignalData;

static gboolean
qlean_guest_process_signal_in_worker (gpointer user_data)
{
  SignalData *data = user_data;

  qlean_guest_process_kill_in_worker (data->self, data->signum);

  g_object_unref (data->self);
  g_free (data);
  return G_SOURCE_REMOVE;
}

/**
 * qlean_guest_process_send_signal:
 * @self: a #QleanGuestProcess
 * @signal_num: a signal number, as in the guest
 *
 * Sends @signal_num to the process's process group (it leads its own),
 * so that what it started goes too. Does nothing once it has exited.
 *
 * Since: 0.1
 */
void
qlean_guest_process_send_signal (QleanGuestProcess *self,
                                 gint               signal_num)
{
  SignalData *data;

  g_return_if_fail (QLEAN_IS_GUEST_PROCESS (self));

  data = g_new0 (SignalData, 1);
  data->self = g_object_ref (self);
  data->signum = signal_num;
  qlean_worker_invoke (qlean_guest_process_signal_in_worker, data, NULL);
}

typedef struct
{
  QleanGuestProcess *self;
  guint16            rows, cols;
} WindowSizeData;

static gboolean
qlean_guest_process_window_size_in_worker (gpointer user_data)
{
  WindowSizeData *data = user_data;

  if (data->self->stream != NULL)
    qlean_guest_stream_send_window_size (data->self->stream, data->rows, data->cols);

  g_object_unref (data->self);
  g_free (data);
  return G_SOURCE_REMOVE;
}

/**
 * qlean_guest_process_set_window_size:
 * @self: a #QleanGuestProcess
 * @rows: lines of the terminal, 1 to 65535
 * @cols: columns of the terminal, 1 to 65535
 *
 * Resizes the terminal of a process started with
 * %QLEAN_GUEST_PROCESS_FLAGS_TERMINAL; the guest's kernel sends
 * `SIGWINCH` to its foreground process group, as a terminal emulator's
 * resize does. Call it when the local terminal changes size (on
 * `SIGWINCH`). Does nothing without a terminal or once the process has
 * exited.
 *
 * Since: 0.1
 */
void
qlean_guest_process_set_window_size (QleanGuestProcess *self,
                                     guint              rows,
                                     guint              cols)
{
  WindowSizeData *data;

  g_return_if_fail (QLEAN_IS_GUEST_PROCESS (self));
  g_return_if_fail (rows > 0 && rows <= G_MAXUINT16);
  g_return_if_fail (cols > 0 && cols <= G_MAXUINT16);

  if (!(self->flags & QLEAN_GUEST_PROCESS_FLAGS_TERMINAL))
    return;

  data = g_new0 (WindowSizeData, 1);
  data->self = g_object_ref (self);
  data->rows = (guint16) rows;
  data->cols = (guint16) cols;
  qlean_worker_invoke (qlean_guest_process_window_size_in_worker, data, NULL);
}

/* @field (stdout_bytes or stderr_bytes of @self), as the getters give it. */
static GBytes *
qlean_guest_process_dup_output (QleanGuestProcess  *self,
                                GBytes            **field)
{
  GBytes *bytes;

  g_mutex_lock (&self->lock);
  bytes = *field ? g_bytes_ref (*field) : NULL;
  g_mutex_unlock (&self->lock);

  return bytes;
}

/**
 * qlean_guest_process_get_stdout_bytes:
 * @self: a #QleanGuestProcess
 *
 * What the last communicate read from stdout, also after it failed.
 *
 * Returns: (transfer full) (nullable): the output, or %NULL
 *
 * Since: 0.1
 */
GBytes *
qlean_guest_process_get_stdout_bytes (QleanGuestProcess *self)
{
  g_return_val_if_fail (QLEAN_IS_GUEST_PROCESS (self), NULL);

  return qlean_guest_process_dup_output (self, &self->stdout_bytes);
}

/**
 * qlean_guest_process_get_stderr_bytes:
 * @self: a #QleanGuestProcess
 *
 * What the last communicate read from stderr, also after it failed.
 *
 * Returns: (transfer full) (nullable): the output, or %NULL
 *
 * Since: 0.1
 */
GBytes *
qlean_guest_process_get_stderr_bytes (QleanGuestProcess *self)
{
  g_return_val_if_fail (QLEAN_IS_GUEST_PROCESS (self), NULL);

  return qlean_guest_process_dup_output (self, &self->stderr_bytes);
}

void
qlean_guest_process_set_output_limit (QleanGuestProcess *self,
                                      gsize              limit)
{
  g_return_if_fail (QLEAN_IS_GUEST_PROCESS (self));

  self->output_limit = limit;
}

gsize
qlean_guest_process_get_output_limit (QleanGuestProcess *self)
{
  g_return_val_if_fail (QLEAN_IS_GUEST_PROCESS (self), 0);

  return self->output_limit;
}

void
qlean_guest_process_take_output (QleanGuestProcess *self,
                                 GBytes            *stdout_bytes,
                                 GBytes            *stderr_bytes,
                                 gboolean           stdout_truncated,
                                 gboolean           stderr_truncated)
{
  g_return_if_fail (QLEAN_IS_GUEST_PROCESS (self));

  g_mutex_lock (&self->lock);
  g_clear_pointer (&self->stdout_bytes, g_bytes_unref);
  g_clear_pointer (&self->stderr_bytes, g_bytes_unref);
  self->stdout_bytes = stdout_bytes;
  self->stderr_bytes = stderr_bytes;
  self->stdout_truncated = stdout_truncated;
  self->stderr_truncated = stderr_truncated;
  g_mutex_unlock (&self->lock);
}

void
qlean_guest_process_get_output_truncated (QleanGuestProcess *self,
                                          gboolean          *stdout_truncated,
                                          gboolean          *stderr_truncated)
{
  g_return_if_fail (QLEAN_IS_GUEST_PROCESS (self));

  g_mutex_lock (&self->lock);
  *stdout_truncated = self->stdout_truncated;
  *stderr_truncated = self->stderr_truncated;
  g_mutex_unlock (&self->lock);
}

static int
qlean_guest_process_status (QleanGuestProcess *self,
                            gboolean          *exited)
{
  int status;

  g_mutex_lock (&self->lock);
  *exited = self->exited;
  status = self->wait_status;
  g_mutex_unlock (&self->lock);

  return status;
}

/**
 * qlean_guest_process_get_if_exited:
 * @self: a #QleanGuestProcess
 *
 * Returns: whether the process ended by calling exit
 *
 * Since: 0.1
 */
gboolean
qlean_guest_process_get_if_exited (QleanGuestProcess *self)
{
  gboolean exited;
  int status;

  g_return_val_if_fail (QLEAN_IS_GUEST_PROCESS (self), FALSE);

  status = qlean_guest_process_status (self, &exited);

  return exited && WIFEXITED (status);
}

/**
 * qlean_guest_process_get_exit_status:
 * @self: a #QleanGuestProcess
 *
 * Returns: the exit status, or -1 if the process did not exit normally
 *
 * Since: 0.1
 */
gint
qlean_guest_process_get_exit_status (QleanGuestProcess *self)
{
  gboolean exited;
  int status;

  g_return_val_if_fail (QLEAN_IS_GUEST_PROCESS (self), -1);

  status = qlean_guest_process_status (self, &exited);

  return exited && WIFEXITED (status) ? WEXITSTATUS (status) : -1;
}

/**
 * qlean_guest_process_get_if_signaled:
 * @self: a #QleanGuestProcess
 *
 * Returns: whether a signal ended the process
 *
 * Since: 0.1
 */
gboolean
qlean_guest_process_get_if_signaled (QleanGuestProcess *self)
{
  gboolean exited;
  int status;

  g_return_val_if_fail (QLEAN_IS_GUEST_PROCESS (self), FALSE);

  status = qlean_guest_process_status (self, &exited);

  return exited && WIFSIGNALED (status);
}

/**
 * qlean_guest_process_get_term_sig:
 * @self: a #QleanGuestProcess
 *
 * Returns: the signal that ended the process, or 0
 *
 * Since: 0.1
 */
gint
qlean_guest_process_get_term_sig (QleanGuestProcess *self)
{
  gboolean exited;
  int status;

  g_return_val_if_fail (QLEAN_IS_GUEST_PROCESS (self), 0);

  status = qlean_guest_process_status (self, &exited);

  return exited && WIFSIGNALED (status) ? WTERMSIG (status) : 0;
}

/**
 * qlean_guest_process_get_successful:
 * @self: a #QleanGuestProcess
 *
 * Returns: whether the process exited with status 0
 *
 * Since: 0.1
 */
gboolean
qlean_guest_process_get_successful (QleanGuestProcess *self)
{
  g_return_val_if_fail (QLEAN_IS_GUEST_PROCESS (self), FALSE);

  return qlean_guest_process_get_exit_status (self) == 0;
}

/**
 * qlean_guest_process_get_timed_out:
 * @self: a #QleanGuestProcess
 *
 * Returns: whether the launcher's timeout killed the process
 *
 * Since: 0.1
 */
gboolean
qlean_guest_process_get_timed_out (QleanGuestProcess *self)
{
  gboolean timed_out;

  g_return_val_if_fail (QLEAN_IS_GUEST_PROCESS (self), FALSE);

  g_mutex_lock (&self->lock);
  timed_out = self->timed_out;
  g_mutex_unlock (&self->lock);

  return timed_out;
}
