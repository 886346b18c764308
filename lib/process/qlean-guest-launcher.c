/* qlean-guest-launcher.c: how to start a process in a machine
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>
#include <glib/gi18n-lib.h>

#include "qlean-error.h"
#include "qlean-guest-launcher.h"
#include "qlean-guest-process-private.h"
#include "qlean-machine-run-private.h"
#include "qlean-sync-private.h"
#include "qlean-task-private.h"

/**
 * QleanGuestLauncher:
 *
 * Everything about how to start a process in a [class@Machine] except
 * its argv, in the spirit of #GSubprocessLauncher: environment changes,
 * working directory, user, stdin data, pipes and a timeout. One launcher
 * can start any number of processes, on any machines.
 *
 * Arguments always travel as an argv array: no argument or path is ever
 * interpreted by a shell, so spaces, quotes, newlines, a leading `-` and
 * bytes that are not UTF-8 reach the program as they are.
 *
 * The processes run under `qlean-guest`, a small program Qlean runs in
 * the guest beside the QEMU guest agent, on a second virtio-serial port:
 * output streams live and without a size cap, the exit status arrives as
 * soon as the process ends, and many processes run at once without
 * blocking each other.
 *
 * On a machine that uses the QEMU guest agent alone
 * (%QLEAN_GUEST_TRANSPORT_AGENT) the same calls work through stock
 * agent commands: the output goes to temporary files in the guest that
 * Qlean reads while the process runs (live, a poll of a few
 * milliseconds to 50 ms behind), and switching users needs `setpriv`
 * (util-linux) or `su` in the guest. A stdin pipe
 * (%QLEAN_GUEST_PROCESS_FLAGS_STDIN_PIPE) works there too, its input
 * shipped as files that a small shell loop in the guest feeds to the
 * process (a fraction of a second behind, at the agent's write rate);
 * a terminal needs qlean-guest.
 *
 * Since: 0.1
 */

struct _QleanGuestLauncher
{
  GObject                 parent_instance;

  QleanGuestProcessFlags  flags;
  GPtrArray              *env;        /* "NAME=value" or "NAME" (unset) */
  gboolean                clear_env;
  char                   *cwd;
  char                   *user;
  GBytes                 *stdin_bytes;
  guint                   timeout_ms;
  guint16                 rows, cols; /* a terminal's first size; 0 for 24x80 */
  gboolean                starting;   /* Qlean's own, while the machine starts */
};

G_DEFINE_FINAL_TYPE (QleanGuestLauncher, qlean_guest_launcher, G_TYPE_OBJECT)

static void
qlean_guest_launcher_finalize (GObject *object)
{
  QleanGuestLauncher *self = QLEAN_GUEST_LAUNCHER (object);

  g_ptr_array_unref (self->env);
  g_free (self->cwd);
  g_free (self->user);
  g_clear_pointer (&self->stdin_bytes, g_bytes_unref);

  G_OBJECT_CLASS (qlean_guest_launcher_parent_class)->finalize (object);
}

static void
qlean_guest_launcher_class_init (QleanGuestLauncherClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = qlean_guest_launcher_finalize;
}

static void
qlean_guest_launcher_init (QleanGuestLauncher *self)
{
  self->env = g_ptr_array_new_with_free_func (g_free);
}

/**
 * qlean_guest_launcher_new:
 * @flags: which standard streams get pipes
 *
 * Returns: (transfer full): a new #QleanGuestLauncher
 *
 * Since: 0.1
 */
QleanGuestLauncher *
qlean_guest_launcher_new (QleanGuestProcessFlags flags)
{
  QleanGuestLauncher *self = g_object_new (QLEAN_TYPE_GUEST_LAUNCHER, NULL);

  self->flags = flags;
  return self;
}

/**
 * qlean_guest_launcher_set_flags:
 * @self: a #QleanGuestLauncher
 * @flags: which standard streams get pipes
 *
 * Sets the flags for processes started from now on.
 *
 * Since: 0.1
 */
void
qlean_guest_launcher_set_flags (QleanGuestLauncher     *self,
                                QleanGuestProcessFlags  flags)
{
  g_return_if_fail (QLEAN_IS_GUEST_LAUNCHER (self));

  self->flags = flags;
}

static gint
find_variable (QleanGuestLauncher *self,
               const char         *variable)
{
  gsize name_len = strlen (variable);

  for (guint i = 0; i < self->env->len; i++)
    {
      const char *entry = g_ptr_array_index (self->env, i);

      if (strncmp (entry, variable, name_len) == 0 &&
          (entry[name_len] == '=' || entry[name_len] == '\0'))
        return (gint) i;
    }

  return -1;
}

/**
 * qlean_guest_launcher_setenv:
 * @self: a #QleanGuestLauncher
 * @variable: the variable's name, without `=`
 * @value: its value
 * @overwrite: whether to replace a value set earlier on this launcher
 *
 * Sets @variable in the environment of processes started from now on,
 * on top of the guest's default environment.
 *
 * Since: 0.1
 */
void
qlean_guest_launcher_setenv (QleanGuestLauncher *self,
                             const char         *variable,
                             const char         *value,
                             gboolean            overwrite)
{
  gint index;

  g_return_if_fail (QLEAN_IS_GUEST_LAUNCHER (self));
  g_return_if_fail (variable != NULL && strchr (variable, '=') == NULL);
  g_return_if_fail (value != NULL);

  index = find_variable (self, variable);
  if (index >= 0)
    {
      if (!overwrite && strchr (g_ptr_array_index (self->env, index), '=') != NULL)
        return;
      g_ptr_array_remove_index (self->env, index);
    }

  g_ptr_array_add (self->env, g_strconcat (variable, "=", value, NULL));
}

/**
 * qlean_guest_launcher_unsetenv:
 * @self: a #QleanGuestLauncher
 * @variable: the variable's name
 *
 * Removes @variable from the environment of processes started from now
 * on, including from the guest's default environment.
 *
 * Since: 0.1
 */
void
qlean_guest_launcher_unsetenv (QleanGuestLauncher *self,
                               const char         *variable)
{
  gint index;

  g_return_if_fail (QLEAN_IS_GUEST_LAUNCHER (self));
  g_return_if_fail (variable != NULL && strchr (variable, '=') == NULL);

  index = find_variable (self, variable);
  if (index >= 0)
    g_ptr_array_remove_index (self->env, index);
  if (!self->clear_env)
    g_ptr_array_add (self->env, g_strdup (variable));
}

/**
 * qlean_guest_launcher_set_environ:
 * @self: a #QleanGuestLauncher
 * @env: (array zero-terminated=1) (element-type filename) (transfer none):
 *   the whole environment, as `NAME=value` strings
 *
 * Replaces the environment of processes started from now on: they get
 * exactly @env and nothing of the guest's default.
 *
 * Since: 0.1
 */
void
qlean_guest_launcher_set_environ (QleanGuestLauncher  *self,
                                  char               **env)
{
  g_return_if_fail (QLEAN_IS_GUEST_LAUNCHER (self));

  g_ptr_array_set_size (self->env, 0);
  self->clear_env = TRUE;
  for (guint i = 0; env != NULL && env[i] != NULL; i++)
    if (strchr (env[i], '=') != NULL)
      g_ptr_array_add (self->env, g_strdup (env[i]));
}

/**
 * qlean_guest_launcher_set_cwd:
 * @self: a #QleanGuestLauncher
 * @cwd: (type filename) (nullable): a directory in the guest, or %NULL
 *   for `/`
 *
 * Sets the working directory of processes started from now on.
 *
 * Since: 0.1
 */
void
qlean_guest_launcher_set_cwd (QleanGuestLauncher *self,
                              const char         *cwd)
{
  g_return_if_fail (QLEAN_IS_GUEST_LAUNCHER (self));

  g_free (self->cwd);
  self->cwd = g_strdup (cwd);
}

/**
 * qlean_guest_launcher_set_user:
 * @self: a #QleanGuestLauncher
 * @user: (nullable): a user name or a numeric uid in the guest, or %NULL
 *   for root
 *
 * Runs processes started from now on as @user, with its groups, `HOME`,
 * `USER` and `LOGNAME`.
 *
 * Since: 0.1
 */
void
qlean_guest_launcher_set_user (QleanGuestLauncher *self,
                               const char         *user)
{
  g_return_if_fail (QLEAN_IS_GUEST_LAUNCHER (self));

  g_free (self->user);
  self->user = g_strdup (user);
}

/**
 * qlean_guest_launcher_set_stdin:
 * @self: a #QleanGuestLauncher
 * @stdin_bytes: (nullable): what the process reads on stdin, then
 *   end-of-file; %NULL for /dev/null (or the stdin pipe, with
 *   %QLEAN_GUEST_PROCESS_FLAGS_STDIN_PIPE)
 *
 * Gives processes started from now on fixed input.
 *
 * Since: 0.1
 */
void
qlean_guest_launcher_set_stdin (QleanGuestLauncher *self,
                                GBytes             *stdin_bytes)
{
  g_return_if_fail (QLEAN_IS_GUEST_LAUNCHER (self));

  g_clear_pointer (&self->stdin_bytes, g_bytes_unref);
  self->stdin_bytes = stdin_bytes ? g_bytes_ref (stdin_bytes) : NULL;
}

/**
 * qlean_guest_launcher_set_window_size:
 * @self: a #QleanGuestLauncher
 * @rows: lines of the terminal, 1 to 65535
 * @cols: columns of the terminal, 1 to 65535
 *
 * Sets the size of the terminal that processes started from now on with
 * %QLEAN_GUEST_PROCESS_FLAGS_TERMINAL get (24x80 by default), so that
 * what they draw fits from the start. Without that flag it changes
 * nothing. Change it later with [method@GuestProcess.set_window_size].
 *
 * Since: 0.1
 */
void
qlean_guest_launcher_set_window_size (QleanGuestLauncher *self,
                                      guint               rows,
                                      guint               cols)
{
  g_return_if_fail (QLEAN_IS_GUEST_LAUNCHER (self));
  g_return_if_fail (rows > 0 && rows <= G_MAXUINT16);
  g_return_if_fail (cols > 0 && cols <= G_MAXUINT16);

  self->rows = (guint16) rows;
  self->cols = (guint16) cols;
}

/**
 * qlean_guest_launcher_set_timeout:
 * @self: a #QleanGuestLauncher
 * @timeout_ms: milliseconds, or 0 for none
 *
 * Processes started from now on that run longer than @timeout_ms are
 * killed with their process group, and waiting for them fails with
 * %G_IO_ERROR_TIMED_OUT.
 *
 * Since: 0.1
 */
void
qlean_guest_launcher_set_timeout (QleanGuestLauncher *self,
                                  guint               timeout_ms)
{
  g_return_if_fail (QLEAN_IS_GUEST_LAUNCHER (self));

  self->timeout_ms = timeout_ms;
}

/* A snapshot of the launcher for one start, so that changing the
 * launcher afterwards changes nothing in flight. */
typedef struct
{
  QleanMachine           *machine;
  QleanMachineRun        *run;        /* the run the process starts in */
  QleanGuestProcessFlags  flags;
  char                   *program;
  GBytes                 *request;
  GBytes                 *stdin_bytes;
  guint                   timeout_ms;
  /* Through the guest agent alone: what the request holds, as it is. */
  gboolean                agent;
  GStrv                   argv;
  GPtrArray              *env;
  gboolean                clear_env;
  char                   *cwd;
  char                   *user;
} Start;

static void
start_free (Start *start)
{
  g_clear_object (&start->machine);
  g_clear_pointer (&start->run, qlean_machine_run_unref);
  g_free (start->program);
  g_clear_pointer (&start->request, g_bytes_unref);
  g_clear_pointer (&start->stdin_bytes, g_bytes_unref);
  g_strfreev (start->argv);
  g_clear_pointer (&start->env, g_ptr_array_unref);
  g_free (start->cwd);
  g_free (start->user);
  g_free (start);
}

static Start *
start_new (QleanGuestLauncher     *self,
           QleanMachine           *machine,
           QleanMachineRun        *run,
           const char * const     *argv,
           QleanGuestProcessFlags  flags)
{
  QleanGuestTlv *tlv = qlean_guest_tlv_new ();
  Start *start = g_new0 (Start, 1);
  guint32 wire_flags = 0;

  for (guint i = 0; argv[i] != NULL; i++)
    qlean_guest_tlv_add_string (tlv, QLEAN_GUEST_TAG_ARG, argv[i]);
  for (guint i = 0; i < self->env->len; i++)
    qlean_guest_tlv_add_string (tlv, QLEAN_GUEST_TAG_ENV, g_ptr_array_index (self->env, i));
  if (self->cwd != NULL)
    qlean_guest_tlv_add_string (tlv, QLEAN_GUEST_TAG_CWD, self->cwd);
  if (self->user != NULL)
    qlean_guest_tlv_add_string (tlv, QLEAN_GUEST_TAG_USER, self->user);

  if (self->clear_env)
    wire_flags |= QLEAN_GUEST_FLAG_CLEAR_ENV;
  if (flags & QLEAN_GUEST_PROCESS_FLAGS_STDERR_MERGE)
    wire_flags |= QLEAN_GUEST_FLAG_MERGE_STDERR;
  if ((flags & QLEAN_GUEST_PROCESS_FLAGS_STDIN_PIPE) || self->stdin_bytes != NULL)
    wire_flags |= QLEAN_GUEST_FLAG_STDIN;
  if (flags & QLEAN_GUEST_PROCESS_FLAGS_TERMINAL)
    {
      guint16 rows = self->rows ? self->rows : 24;
      guint16 cols = self->cols ? self->cols : 80;
      guint8 size[4] = { rows & 0xff, rows >> 8, cols & 0xff, cols >> 8 };

      wire_flags |= QLEAN_GUEST_FLAG_TERMINAL;
      qlean_guest_tlv_add (tlv, QLEAN_GUEST_TAG_WINSIZE, size, sizeof size);
    }
  qlean_guest_tlv_add_u32 (tlv, QLEAN_GUEST_TAG_FLAGS, wire_flags);

  start->machine = g_object_ref (machine);
  start->run = qlean_machine_run_ref (run);
  start->flags = flags;
  start->program = g_strdup (argv[0]);
  start->request = qlean_guest_tlv_free_to_bytes (tlv);
  /* A stdin pipe wins over fixed input. */
  if (!(flags & QLEAN_GUEST_PROCESS_FLAGS_STDIN_PIPE) && self->stdin_bytes != NULL)
    start->stdin_bytes = g_bytes_ref (self->stdin_bytes);
  start->timeout_ms = self->timeout_ms;

  if (qlean_machine_run_uses_agent_only (run))
    {
      start->agent = TRUE;
      start->argv = g_strdupv ((char **) argv);
      start->env = g_ptr_array_new_with_free_func (g_free);
      for (guint i = 0; i < self->env->len; i++)
        g_ptr_array_add (start->env, g_strdup (g_ptr_array_index (self->env, i)));
      start->clear_env = self->clear_env;
      start->cwd = g_strdup (self->cwd);
      start->user = g_strdup (self->user);
    }

  return start;
}

static void
spawn_channel_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  Start *start = g_task_get_task_data (task);
  g_autoptr(QleanGuestChannel) channel = NULL;
  GError *error = NULL;

  channel = qlean_machine_run_get_guest_channel_finish (start->run, result, &error);
  if (channel == NULL)
    {
      g_task_return_error (task, error);
      return;
    }

  /* A qlean-guest before version 3 would ignore the flag and run the
   * command without a terminal: refuse rather than pretend. A relay
   * answers with its own version and checks the guest behind it. */
  if ((start->flags & QLEAN_GUEST_PROCESS_FLAGS_TERMINAL) &&
      qlean_guest_channel_get_guest_version (channel) < 3)
    {
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                               _("Cannot run “%s” on a terminal in machine “%s”: its qlean-guest "
                                 "(protocol version %u) is too old for terminals; restart the "
                                 "machine with this version of Qlean"),
                               start->program, qlean_machine_run_get_name (start->run),
                               qlean_guest_channel_get_guest_version (channel));
      return;
    }

  qlean_guest_process_start (start->machine, qlean_machine_run_get_guest_timeout (start->run),
                             channel, start->flags, start->program, start->request,
                             start->stdin_bytes, start->timeout_ms, task);
}

/* A run that uses the guest agent alone: the process's agent driver. */
static void
spawn_through_agent (GTask *task)
{
  Start *start = g_task_get_task_data (task);
  g_autoptr(QleanQgaClient) qga = qlean_machine_run_dup_qga (start->run);
  QleanGuestAgentCommand command = {
    .argv = (const char * const *) start->argv,
    .env = start->env,
    .clear_env = start->clear_env,
    .cwd = start->cwd,
    .user = start->user,
  };

  if (qga == NULL)
    {
      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE,
                               _("Machine “%s” stopped running"),
                               qlean_machine_run_get_name (start->run));
      return;
    }

  qlean_guest_process_agent_start (start->machine, qga,
                                   qlean_machine_run_get_guest_timeout (start->run), start->flags,
                                   &command, start->stdin_bytes, start->timeout_ms, task);
}

static gboolean
spawn_in_worker (gpointer user_data)
{
  GTask *task = user_data;
  Start *start = g_task_get_task_data (task);

  if (start->agent)
    {
      spawn_through_agent (task);
      return G_SOURCE_REMOVE;
    }

  qlean_machine_run_get_guest_channel_async (start->run, g_task_get_cancellable (task),
                                             spawn_channel_cb, g_object_ref (task));
  return G_SOURCE_REMOVE;
}

static void
qlean_guest_launcher_spawn_with_flags (QleanGuestLauncher     *self,
                                       QleanMachine           *machine,
                                       const char * const     *argv,
                                       QleanGuestProcessFlags  flags,
                                       GCancellable           *cancellable,
                                       gpointer                source_tag,
                                       GAsyncReadyCallback     callback,
                                       gpointer                user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autoptr(QleanMachineRun) run = NULL;
  g_autoptr(GError) error = NULL;

  task = qlean_task_new (self, cancellable, callback, user_data, source_tag,
                         "[qlean] spawn guest process");

  if (argv == NULL || argv[0] == NULL)
    {
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                               _("No program to run: the argument vector is empty"));
      return;
    }

  run = qlean_machine_ref_run (machine, QLEAN_MACHINE_OP_START_PROCESS, self->starting, &error);
  if (run == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  /* The guest agent runs commands on pipes only. */
  if ((flags & QLEAN_GUEST_PROCESS_FLAGS_TERMINAL) && qlean_machine_run_uses_agent_only (run))
    {
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                               _("Cannot run “%s” on a terminal in machine “%s”: a terminal "
                                 "needs qlean-guest, and this machine uses the guest agent "
                                 "transport only; start it with the qlean-guest transport"),
                               argv[0], qlean_machine_run_get_name (run));
      return;
    }

  g_task_set_task_data (task, start_new (self, machine, run, argv, flags), (GDestroyNotify) start_free);
  qlean_task_run_in_worker (g_steal_pointer (&task), spawn_in_worker);
}

void
qlean_guest_launcher_set_starting (QleanGuestLauncher *self)
{
  g_return_if_fail (QLEAN_IS_GUEST_LAUNCHER (self));

  self->starting = TRUE;
}

/**
 * qlean_guest_launcher_spawnv_async:
 * @self: a #QleanGuestLauncher
 * @machine: a running machine
 * @argv: (array zero-terminated=1) (element-type filename): the program
 *   and its arguments; the program is looked up in the guest's PATH when
 *   it has no slash
 * @cancellable: (nullable): a #GCancellable
 * @callback: called once the process runs, or could not start
 * @user_data: data for @callback
 *
 * Starts a process. A program that does not exist or cannot be run fails
 * here with %QLEAN_MACHINE_ERROR_COMMAND_NOT_FOUND; it never looks like a
 * process that ran.
 *
 * Since: 0.1
 */
void
qlean_guest_launcher_spawnv_async (QleanGuestLauncher  *self,
                                   QleanMachine        *machine,
                                   const char * const  *argv,
                                   GCancellable        *cancellable,
                                   GAsyncReadyCallback  callback,
                                   gpointer             user_data)
{
  g_return_if_fail (QLEAN_IS_GUEST_LAUNCHER (self));
  g_return_if_fail (QLEAN_IS_MACHINE (machine));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  qlean_guest_launcher_spawn_with_flags (self, machine, argv, self->flags, cancellable,
                                         qlean_guest_launcher_spawnv_async, callback, user_data);
}

/**
 * qlean_guest_launcher_spawnv_finish:
 * @self: a #QleanGuestLauncher
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the running process, or %NULL with @error set
 *
 * Since: 0.1
 */
QleanGuestProcess *
qlean_guest_launcher_spawnv_finish (QleanGuestLauncher  *self,
                                    GAsyncResult        *result,
                                    GError             **error)
{
  g_return_val_if_fail (QLEAN_IS_GUEST_LAUNCHER (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_guest_launcher_spawnv_async), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * qlean_guest_launcher_spawnv:
 * @self: a #QleanGuestLauncher
 * @machine: a running machine
 * @argv: (array zero-terminated=1) (element-type filename): the program
 *   and its arguments
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_guest_launcher_spawnv_async().
 *
 * Returns: (transfer full): the running process, or %NULL with @error set
 *
 * Since: 0.1
 */
QleanGuestProcess *
qlean_guest_launcher_spawnv (QleanGuestLauncher  *self,
                             QleanMachine        *machine,
                             const char * const  *argv,
                             GError             **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_GUEST_LAUNCHER (self), NULL);
  g_return_val_if_fail (QLEAN_IS_MACHINE (machine), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  qlean_sync_call_init (&call);
  qlean_guest_launcher_spawnv_async (self, machine, argv, NULL, qlean_sync_call_done, &call);

  return qlean_guest_launcher_spawnv_finish (self, qlean_sync_call_wait (&call), error);
}

/* run: spawn with output pipes, communicate, make a result. */

static void
run_communicate_cb (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  QleanGuestProcess *process = QLEAN_GUEST_PROCESS (source);
  g_autoptr(GBytes) out = NULL;
  g_autoptr(GBytes) err = NULL;
  GError *error = NULL;
  gboolean out_truncated, err_truncated;

  if (!qlean_guest_process_communicate_finish (process, result, &out, &err, &error))
    {
      g_task_return_error (task, error);
      return;
    }

  qlean_guest_process_get_output_truncated (process, &out_truncated, &err_truncated);
  g_task_return_pointer (task,
                         qlean_exec_result_new (qlean_guest_process_get_exit_status (process),
                                                qlean_guest_process_get_term_sig (process),
                                                out, err, out_truncated, err_truncated),
                         g_object_unref);
}

static void
run_spawn_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  g_autoptr(QleanGuestProcess) process = NULL;
  GError *error = NULL;

  process = g_task_propagate_pointer (G_TASK (result), &error);
  if (process == NULL)
    {
      g_task_return_error (task, error);
      return;
    }

  qlean_guest_process_set_output_limit (process, QLEAN_GUEST_RUN_OUTPUT_LIMIT);
  qlean_guest_process_communicate_async (process, NULL, g_task_get_cancellable (task),
                                         run_communicate_cb, g_object_ref (task));
}

/**
 * qlean_guest_launcher_run_async:
 * @self: a #QleanGuestLauncher
 * @machine: a running machine
 * @argv: (array zero-terminated=1) (element-type filename): the program
 *   and its arguments
 * @cancellable: (nullable): cancelling kills the process
 * @callback: called with the result
 * @user_data: data for @callback
 *
 * Runs a process to its end and collects its output: up to 64 MiB of
 * each stream, so that a runaway or hostile guest cannot fill the host's
 * memory. What comes beyond is read and dropped (the process does not
 * block), and [method@ExecResult.get_stdout_truncated] says so; read the
 * pipes of a process spawned with [method@GuestLauncher.spawnv] for more.
 * Stdin comes from [method@GuestLauncher.set_stdin] (a stdin pipe flag
 * is ignored here). When the timeout kills the process the call fails
 * with %G_IO_ERROR_TIMED_OUT; spawn it with
 * [method@GuestLauncher.spawnv] and use
 * [method@GuestProcess.communicate] to keep its partial output.
 *
 * Since: 0.1
 */
void
qlean_guest_launcher_run_async (QleanGuestLauncher  *self,
                                QleanMachine        *machine,
                                const char * const  *argv,
                                GCancellable        *cancellable,
                                GAsyncReadyCallback  callback,
                                gpointer             user_data)
{
  GTask *task;
  QleanGuestProcessFlags flags;

  g_return_if_fail (QLEAN_IS_GUEST_LAUNCHER (self));
  g_return_if_fail (QLEAN_IS_MACHINE (machine));
  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = qlean_task_new (self, cancellable, callback, user_data, qlean_guest_launcher_run_async,
                         "[qlean] run guest process");

  flags = QLEAN_GUEST_PROCESS_FLAGS_STDOUT_PIPE | QLEAN_GUEST_PROCESS_FLAGS_STDERR_PIPE |
          (self->flags & QLEAN_GUEST_PROCESS_FLAGS_STDERR_MERGE);
  qlean_guest_launcher_spawn_with_flags (self, machine, argv, flags, cancellable,
                                         qlean_guest_launcher_run_async, run_spawn_cb, task);
}

/**
 * qlean_guest_launcher_run_finish:
 * @self: a #QleanGuestLauncher
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Returns: (transfer full): the result, or %NULL with @error set
 *
 * Since: 0.1
 */
QleanExecResult *
qlean_guest_launcher_run_finish (QleanGuestLauncher  *self,
                                 GAsyncResult        *result,
                                 GError             **error)
{
  g_return_val_if_fail (QLEAN_IS_GUEST_LAUNCHER (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_guest_launcher_run_async), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * qlean_guest_launcher_run:
 * @self: a #QleanGuestLauncher
 * @machine: a running machine
 * @argv: (array zero-terminated=1) (element-type filename): the program
 *   and its arguments
 * @cancellable: (nullable): cancelling kills the process
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_guest_launcher_run_async().
 *
 * Returns: (transfer full): the result, or %NULL with @error set
 *
 * Since: 0.1
 */
QleanExecResult *
qlean_guest_launcher_run (QleanGuestLauncher  *self,
                          QleanMachine        *machine,
                          const char * const  *argv,
                          GCancellable        *cancellable,
                          GError             **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_GUEST_LAUNCHER (self), NULL);
  g_return_val_if_fail (QLEAN_IS_MACHINE (machine), NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  qlean_sync_call_init (&call);
  qlean_guest_launcher_run_async (self, machine, argv, cancellable, qlean_sync_call_done, &call);

  return qlean_guest_launcher_run_finish (self, qlean_sync_call_wait (&call), error);
}
