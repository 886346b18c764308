/* qlean-network-switch.c: the processes behind a network, and their lifetime
 *
 * SPDX-License-Identifier: MIT
 *
 * The running half of QleanNetwork: the vde_switch process and its
 * console, the NAT plug, and starting and stopping them. Everything here
 * runs on the worker thread and reaches the network through its link,
 * so that a network can be dropped while its switch still answers.
 */

#include "config.h"

#include <signal.h>
#include <string.h>
#include <glib/gi18n-lib.h>

#include "qlean-host-private.h"
#include "qlean-json-channel-private.h"
#include "qlean-network-state-private.h"
#include "qlean-sync-private.h"
#include "qlean-task-private.h"
#include "qlean-worker-private.h"

#define START_TIMEOUT_MS 10000
#define STOP_GRACE_MS 2000
#define PLUG_POLL_MS 20
#define OUTPUT_LINES 20

static void qlean_network_teardown     (QleanNetwork *self);
static void qlean_network_start_fail   (QleanNetwork *self,
                                        GError       *error);
static void qlean_network_console_pump (QleanNetwork *self);

/* Links */

/* A worker timer that, like every other worker callback, reaches the
 * network only through its link. */
static GSource *
network_add_timeout (QleanNetwork *self,
                     guint         timeout_ms,
                     GSourceFunc   func)
{
  GSource *source = g_timeout_source_new (timeout_ms);

  g_source_set_callback (source, func, qlean_link_ref (self->link), qlean_link_unref);
  g_source_set_static_name (source, "[qlean] network timer");
  g_source_attach (source, qlean_worker_get_context ());

  return source;
}

void
qlean_network_command_free (Command *command)
{
  g_free (command->line);
  g_free (command);
}

/* The switch's console. vde_switch reads management commands on its
 * standard input and answers each with "NNNN message" (1000 is success),
 * preceded by "0000 DATA END WITH '.'" and data lines when it has some.
 * Using the console rather than a management socket means that the
 * switch also exits when our end of the pipe closes. Commands go one at
 * a time. Everything below runs on the worker thread. */

static void
remember_output (QleanNetwork *self,
                 const char   *line)
{
  g_debug ("network %s: vde_switch: %s", self->name, line);
  g_queue_push_tail (&self->output_tail, g_strdup (line));
  while (self->output_tail.length > OUTPUT_LINES)
    g_free (g_queue_pop_head (&self->output_tail));
}

static char *
output_tail (QleanNetwork *self)
{
  GString *text = g_string_new (NULL);

  for (GList *l = self->output_tail.head; l != NULL; l = l->next)
    g_string_append_printf (text, "%s%s", text->len ? "\n" : "", (char *) l->data);

  return g_string_free (text, FALSE);
}

static void
qlean_network_console_reply (QleanNetwork *self,
                             const char   *data,
                             GError       *error)
{
  Command *command = g_steal_pointer (&self->in_flight);

  if (command == NULL)
    {
      g_clear_error (&error);
      return;
    }

  command->func (self, data, error, command->user_data);
  g_clear_error (&error);
  qlean_network_command_free (command);
}

static void
qlean_network_console_line (QleanNetwork *self,
                            const char   *line)
{
  if (self->in_data)
    {
      if (g_str_equal (line, "."))
        self->in_data = FALSE;
      else
        g_string_append_printf (self->data, "%s\n", line);
      return;
    }

  if (strlen (line) >= 4 && g_ascii_isdigit (line[0]) && g_ascii_isdigit (line[1]) &&
      g_ascii_isdigit (line[2]) && g_ascii_isdigit (line[3]) &&
      (line[4] == ' ' || line[4] == '\0'))
    {
      if (strncmp (line, "0000", 4) == 0)
        {
          self->in_data = TRUE;
          g_string_truncate (self->data, 0);
        }
      else if (strncmp (line, "1000", 4) == 0)
        {
          qlean_network_console_reply (self, self->data->str, NULL);
          g_string_truncate (self->data, 0);
          qlean_network_console_pump (self);
        }
      else
        {
          qlean_network_console_reply (self, NULL,
              g_error_new (QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_FAILED,
                           _("vde_switch answered “%s”"), line));
          g_string_truncate (self->data, 0);
          qlean_network_console_pump (self);
        }
      return;
    }

  if (*line != '\0')
    remember_output (self, line);
}

static void
qlean_network_console_fail_all (QleanNetwork *self,
                                const GError *error)
{
  Command *command;

  qlean_network_console_reply (self, NULL, g_error_copy (error));
  while ((command = g_queue_pop_head (&self->commands)) != NULL)
    {
      command->func (self, NULL, error, command->user_data);
      qlean_network_command_free (command);
    }
}

static void
qlean_network_console_read_cb (GObject      *source,
                               GAsyncResult *result,
                               gpointer      user_data)
{
  QleanLink *link = user_data;
  g_autoptr(QleanNetwork) self = qlean_link_get (link);
  g_autofree char *line = NULL;

  line = g_data_input_stream_read_line_finish_utf8 (G_DATA_INPUT_STREAM (source), result, NULL, NULL);

  if (self == NULL || line == NULL || G_INPUT_STREAM (source) != G_INPUT_STREAM (self->console_out))
    {
      qlean_link_unref (link);
      return;
    }

  qlean_network_console_line (self, line);
  g_data_input_stream_read_line_async (G_DATA_INPUT_STREAM (source), G_PRIORITY_DEFAULT, NULL,
                                       qlean_network_console_read_cb, link);
}

static void
qlean_network_console_write_cb (GObject      *source,
                                GAsyncResult *result,
                                gpointer      user_data)
{
  QleanLink *link = user_data;
  g_autoptr(QleanNetwork) self = qlean_link_get (link);
  g_autoptr(GError) error = NULL;

  qlean_link_unref (link);
  if (!g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, &error))
    {
      /* The switch is going away; its exit watch says why. */
      if (self != NULL)
        g_debug ("network %s: writing to vde_switch failed: %s", self->name, error->message);
    }

  if (self == NULL || G_OUTPUT_STREAM (source) != self->console_in)
    return;

  self->writing = FALSE;
  qlean_network_console_pump (self);
}

static void
qlean_network_console_pump (QleanNetwork *self)
{
  Command *command;

  /* One command at a time, and one write: the answer to a command can
   * arrive before its write has completed. */
  if (self->in_flight != NULL || self->writing || self->console_in == NULL)
    return;

  command = g_queue_pop_head (&self->commands);
  if (command == NULL)
    return;

  self->in_flight = command;
  self->writing = TRUE;
  g_debug ("network %s: console: %s", self->name, command->line);
  g_output_stream_write_all_async (self->console_in, command->line, strlen (command->line),
                                   G_PRIORITY_DEFAULT, NULL, qlean_network_console_write_cb,
                                   qlean_link_ref (self->link));
}

void
qlean_network_console_send (QleanNetwork *self,
                            ReplyFunc     func,
                            gpointer      user_data,
                            const char   *format,
                            ...)
{
  Command *command = g_new0 (Command, 1);
  va_list args;

  va_start (args, format);
  command->line = g_strdup_vprintf (format, args);
  va_end (args);
  command->line = g_realloc (command->line, strlen (command->line) + 2);
  strcat (command->line, "\n");
  command->func = func;
  command->user_data = user_data;

  if (self->console_in == NULL)
    {
      g_autoptr(GError) error = g_error_new (QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_NOT_RUNNING,
                                             _("The switch of network “%s” does not run"),
                                             self->name);

      func (self, NULL, error, user_data);
      qlean_network_command_free (command);
      return;
    }

  g_queue_push_tail (&self->commands, command);
  qlean_network_console_pump (self);
}

void
qlean_network_ignore_reply (QleanNetwork *self,
                            const char   *data,
                            const GError *error,
                            gpointer      user_data)
{
}

/* Starting and stopping */

/* The switch and its plug die with the process, as QEMU does. */
static GSubprocessLauncher *
child_launcher (GSubprocessFlags flags)
{
  return qlean_host_child_launcher (flags);
}

/* For the log only: errors say it in whole sentences (exit_error()). */
static char *
describe_wait_status (GSubprocess *process)
{
  if (g_subprocess_get_if_signaled (process))
    return g_strdup_printf ("was killed by signal %d", g_subprocess_get_term_sig (process));

  return g_strdup_printf ("exited with status %d", g_subprocess_get_exit_status (process));
}

/* Why the switch (@is_plug FALSE) or the NAT plug ended, with the tail
 * of what it wrote: one translatable sentence for each way of ending. */
static GError *
exit_error (QleanNetwork *self,
            GSubprocess  *process,
            gboolean      is_plug,
            const char   *output)
{
  const char *separator = *output ? ":\n" : "";
  gboolean signaled = g_subprocess_get_if_signaled (process);
  int code = signaled ? g_subprocess_get_term_sig (process)
                      : g_subprocess_get_exit_status (process);

  if (is_plug && signaled)
    return g_error_new (QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_SWITCH_FAILED,
                        _("The NAT plug of network “%s” (vde_plug with libvdeplug-slirp) was "
                          "killed by signal %d%s%s"), self->name, code, separator, output);
  if (is_plug)
    return g_error_new (QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_SWITCH_FAILED,
                        _("The NAT plug of network “%s” (vde_plug with libvdeplug-slirp) "
                          "exited with status %d%s%s"), self->name, code, separator, output);
  if (signaled)
    return g_error_new (QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_SWITCH_FAILED,
                        _("The switch of network “%s” (vde_switch) was killed by signal %d%s%s"),
                        self->name, code, separator, output);
  return g_error_new (QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_SWITCH_FAILED,
                      _("The switch of network “%s” (vde_switch) exited with status %d%s%s"),
                      self->name, code, separator, output);
}

static void
complete_waiters (GPtrArray    **waiters,
                  const GError  *error)
{
  g_autoptr(GPtrArray) tasks = g_steal_pointer (waiters);

  *waiters = g_ptr_array_new_with_free_func (g_object_unref);
  for (guint i = 0; i < tasks->len; i++)
    {
      GTask *task = g_ptr_array_index (tasks, i);

      if (error != NULL)
        g_task_return_error (task, g_error_copy (error));
      else
        g_task_return_boolean (task, TRUE);
    }
}

static void
qlean_network_set_state (QleanNetwork *self,
                         NetState      state)
{
  g_atomic_int_set (&self->state, state);
}

static void
qlean_network_maybe_stopped (QleanNetwork *self)
{
  g_autofree char *run_dir = NULL;
  g_autoptr(GError) start_error = NULL;

  if (g_atomic_int_get (&self->state) != NET_STOPPING || self->vswitch != NULL || self->plug != NULL)
    return;

  qlean_clear_source (&self->stop_timer);
  g_clear_object (&self->console_in);
  g_clear_object (&self->console_out);
  self->in_data = FALSE;

  g_mutex_lock (&self->lock);
  run_dir = g_steal_pointer (&self->run_dir);
  g_clear_pointer (&self->socket_path, g_free);
  g_mutex_unlock (&self->lock);

  if (run_dir != NULL)
    {
      g_autoptr(GError) error = NULL;

      if (!qlean_rm_rf (run_dir, &error))
        g_warning ("Could not remove the run directory %s of network “%s”: %s",
                   run_dir, self->name, error->message);
    }

  qlean_network_set_state (self, NET_STOPPED);
  g_debug ("network %s: stopped", self->name);

  start_error = g_steal_pointer (&self->start_error);
  if (start_error == NULL)
    start_error = g_error_new (QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_NOT_RUNNING,
                               _("Network “%s” was stopped while it was starting"), self->name);
  complete_waiters (&self->start_waiters, start_error);
  complete_waiters (&self->stop_waiters, NULL);
}

static gboolean
qlean_network_stop_timeout_cb (gpointer user_data)
{
  g_autoptr(QleanNetwork) self = qlean_link_get (user_data);

  if (self == NULL)
    return G_SOURCE_REMOVE;

  g_clear_pointer (&self->stop_timer, g_source_unref);
  if (self->vswitch != NULL)
    g_subprocess_force_exit (self->vswitch);
  if (self->plug != NULL)
    g_subprocess_force_exit (self->plug);

  return G_SOURCE_REMOVE;
}

/* Asks both children to go: the switch by closing its console (it then
 * removes its socket directory), the plug by SIGTERM; SIGKILL follows if
 * they take too long. Completes in qlean_network_maybe_stopped(). */
static void
qlean_network_teardown (QleanNetwork *self)
{
  g_autoptr(GError) error = NULL;

  qlean_network_set_state (self, NET_STOPPING);
  qlean_clear_source (&self->start_timer);
  qlean_clear_source (&self->poll_timer);

  error = g_error_new (QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_NOT_RUNNING,
                       _("Network “%s” is stopping"), self->name);
  qlean_network_console_fail_all (self, error);

  if (self->console_in != NULL)
    g_output_stream_close (self->console_in, NULL, NULL);
  g_clear_object (&self->console_in);
  if (self->plug != NULL)
    g_subprocess_send_signal (self->plug, SIGTERM);

  if (self->vswitch != NULL || self->plug != NULL)
    {
      if (self->stop_timer == NULL)
        self->stop_timer = network_add_timeout (self, STOP_GRACE_MS, qlean_network_stop_timeout_cb);
    }
  else
    qlean_network_maybe_stopped (self);
}

static void
qlean_network_start_fail (QleanNetwork *self,
                          GError       *error)
{
  if (g_atomic_int_get (&self->state) != NET_STARTING)
    {
      g_error_free (error);
      return;
    }

  g_clear_error (&self->start_error);
  self->start_error = error;
  qlean_network_teardown (self);
}

static void
qlean_network_start_done (QleanNetwork *self)
{
  qlean_clear_source (&self->start_timer);
  qlean_clear_source (&self->poll_timer);
  qlean_network_set_state (self, NET_RUNNING);
  g_debug ("network %s: running on %s", self->name, self->socket_path);
  complete_waiters (&self->start_waiters, NULL);
}

static void
qlean_network_switch_exited_cb (GObject      *source,
                                GAsyncResult *result,
                                gpointer      user_data)
{
  QleanLink *link = user_data;
  g_autoptr(QleanNetwork) self = qlean_link_get (link);
  GSubprocess *process = G_SUBPROCESS (source);
  g_autofree char *status = NULL;
  g_autofree char *output = NULL;
  g_autoptr(GError) error = NULL;

  g_subprocess_wait_finish (process, result, NULL);
  qlean_link_unref (link);

  if (self == NULL || self->vswitch != process)
    return;

  status = describe_wait_status (process);
  output = output_tail (self);
  g_debug ("network %s: vde_switch %s", self->name, status);

  g_mutex_lock (&self->lock);
  self->switch_pid = 0;
  g_mutex_unlock (&self->lock);
  g_clear_object (&self->vswitch);
  g_clear_object (&self->console_in);

  error = exit_error (self, process, FALSE, output);
  qlean_network_console_fail_all (self, error);

  switch (g_atomic_int_get (&self->state))
    {
    case NET_STARTING:
      qlean_network_start_fail (self, g_steal_pointer (&error));
      break;
    case NET_RUNNING:
      g_message ("%s", error->message);
      qlean_network_teardown (self);
      break;
    case NET_STOPPING:
    default:
      qlean_network_maybe_stopped (self);
      break;
    }
}

static char *
plug_log_tail (QleanNetwork *self)
{
  g_autofree char *path = NULL;
  char *tail;

  if (self->run_dir == NULL)
    return g_strdup ("");

  path = g_build_filename (self->run_dir, "nat.log", NULL);
  tail = qlean_file_tail (path, OUTPUT_LINES);
  return tail ? tail : g_strdup ("");
}

static void
qlean_network_plug_exited_cb (GObject      *source,
                              GAsyncResult *result,
                              gpointer      user_data)
{
  QleanLink *link = user_data;
  g_autoptr(QleanNetwork) self = qlean_link_get (link);
  GSubprocess *process = G_SUBPROCESS (source);
  g_autofree char *status = NULL;
  g_autofree char *output = NULL;

  g_subprocess_wait_finish (process, result, NULL);
  qlean_link_unref (link);

  if (self == NULL || self->plug != process)
    return;

  status = describe_wait_status (process);
  output = plug_log_tail (self);
  g_mutex_lock (&self->lock);
  self->plug_pid = 0;
  g_mutex_unlock (&self->lock);
  g_clear_object (&self->plug);

  switch (g_atomic_int_get (&self->state))
    {
    case NET_STARTING:
      qlean_network_start_fail (self, exit_error (self, process, TRUE, output));
      break;
    case NET_RUNNING:
      /* The machines still reach each other; only the way out is gone. */
      g_message ("The NAT plug of network “%s” %s%s%s", self->name, status,
                 *output ? ": " : "", output);
      break;
    case NET_STOPPING:
    default:
      qlean_network_maybe_stopped (self);
      break;
    }
}

static gboolean
qlean_network_start_timeout_cb (gpointer user_data)
{
  g_autoptr(QleanNetwork) self = qlean_link_get (user_data);
  g_autofree char *output = NULL;

  if (self == NULL)
    return G_SOURCE_REMOVE;

  g_clear_pointer (&self->start_timer, g_source_unref);
  output = self->nat ? plug_log_tail (self) : output_tail (self);
  qlean_network_start_fail (self,
      g_error_new (QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_SWITCH_FAILED,
                   _("The switch of network “%s” was not ready within %u ms%s%s"),
                   self->name, START_TIMEOUT_MS, *output ? ":\n" : "", output));

  return G_SOURCE_REMOVE;
}

static void qlean_network_poll_plug (QleanNetwork *self);

static gboolean
qlean_network_poll_timeout_cb (gpointer user_data)
{
  g_autoptr(QleanNetwork) self = qlean_link_get (user_data);

  if (self == NULL)
    return G_SOURCE_REMOVE;

  g_clear_pointer (&self->poll_timer, g_source_unref);
  qlean_network_poll_plug (self);

  return G_SOURCE_REMOVE;
}

static void
qlean_network_plug_port_cb (QleanNetwork *self,
                            const char   *data,
                            const GError *error,
                            gpointer      user_data)
{
  if (g_atomic_int_get (&self->state) != NET_STARTING)
    return;

  /* `port/print N` fails until something is plugged into port N. */
  if (error == NULL && data != NULL && strstr (data, " ACTIVE") != NULL)
    qlean_network_start_done (self);
  else if (self->poll_timer == NULL)
    self->poll_timer = network_add_timeout (self, PLUG_POLL_MS, qlean_network_poll_timeout_cb);
}

static void
qlean_network_poll_plug (QleanNetwork *self)
{
  qlean_network_console_send (self, qlean_network_plug_port_cb, NULL,
                              "port/print %u", GATEWAY_HOST);
}

static gboolean
qlean_network_spawn_plug (QleanNetwork  *self,
                          GError       **error)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autofree char *vde_plug = g_find_program_in_path ("vde_plug");
  g_autofree char *log_path = NULL;
  g_autofree char *switch_url = NULL;
  g_autofree char *slirp_url = NULL;
  g_autofree char *gateway = qlean_network_host_address (self, GATEWAY_HOST);
  g_autofree char *dhcp_start = qlean_network_host_address (self, self->n_hosts - NAT_DHCP_CLIENTS + 1);
  const char *argv[4];

  if (vde_plug == NULL)
    {
      g_autofree char *hint = qlean_host_install_hint ("vdeplug");

      g_set_error (error, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_SWITCH_NOT_FOUND,
                   _("vde_plug is not installed, and network “%s” needs it for NAT; install it "
                     "and its slirp module: %s libvdeplug-slirp"), self->name, hint);
      return FALSE;
    }

  log_path = g_build_filename (self->run_dir, "nat.log", NULL);
  switch_url = g_strdup_printf ("vde://%s[%u]", self->socket_path, GATEWAY_HOST);
  /* Options are separated by '/', so the prefix's slash is escaped.
   * disable_host_loopback keeps the host's 127.0.0.1 out of reach; no
   * tcpfwd/udpfwd: nothing of the host is forwarded in. The DNS proxy
   * sits on the gateway, so that it takes no machine's address. */
  slirp_url = g_strdup_printf ("slirp:///v4/addr=%s\\/%u/dhcp=%s/vnameserver=%s/disable_host_loopback",
                               gateway, self->prefix, dhcp_start, gateway);

  argv[0] = vde_plug;
  argv[1] = switch_url;
  argv[2] = slirp_url;
  argv[3] = NULL;

  launcher = child_launcher (G_SUBPROCESS_FLAGS_STDERR_MERGE);
  g_subprocess_launcher_set_stdout_file_path (launcher, log_path);
  self->plug = g_subprocess_launcher_spawnv (launcher, argv, error);
  if (self->plug == NULL)
    {
      g_prefix_error (error, _("Could not start the NAT plug of network “%s”: "), self->name);
      return FALSE;
    }

  g_mutex_lock (&self->lock);
  self->plug_pid = qlean_subprocess_get_pid (self->plug);
  g_mutex_unlock (&self->lock);
  g_subprocess_wait_async (self->plug, NULL, qlean_network_plug_exited_cb,
                           qlean_link_ref (self->link));

  return TRUE;
}

static void
qlean_network_hello_cb (QleanNetwork *self,
                        const char   *data,
                        const GError *error,
                        gpointer      user_data)
{
  GError *local_error = NULL;

  if (g_atomic_int_get (&self->state) != NET_STARTING)
    return;

  if (error != NULL)
    {
      qlean_network_start_fail (self, g_error_copy (error));
      return;
    }

  /* The VLANs partitions use; ports come into being as machines plug in. */
  qlean_network_console_send (self, qlean_network_ignore_reply, NULL, "vlan/create %d", PARTITION_VLAN_A);
  qlean_network_console_send (self, qlean_network_ignore_reply, NULL, "vlan/create %d", PARTITION_VLAN_B);

  if (!self->nat)
    {
      qlean_network_start_done (self);
      return;
    }

  if (!qlean_network_spawn_plug (self, &local_error))
    {
      qlean_network_start_fail (self, local_error);
      return;
    }
  qlean_network_poll_plug (self);
}

static gboolean
qlean_network_launch (QleanNetwork  *self,
                      GError       **error)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autofree char *vde_switch = g_find_program_in_path ("vde_switch");
  g_autofree char *dir_name = NULL;
  g_autofree char *run_dir = NULL;
  g_autofree char *socket_path = NULL;
  g_autofree char *numports = NULL;
  GSubprocess *vswitch;
  GPid pid;

  if (self->subnet_error != NULL)
    {
      g_propagate_error (error, g_error_copy (self->subnet_error));
      return FALSE;
    }

  if (vde_switch == NULL)
    {
      g_autofree char *hint = qlean_host_install_hint ("vde2");

      g_set_error (error, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_SWITCH_NOT_FOUND,
                   _("vde_switch is not installed, and network “%s” needs it; install it: %s"),
                   self->name, hint);
      return FALSE;
    }

  dir_name = g_strdup_printf ("net-%s", self->name);
  run_dir = qlean_host_make_run_dir (dir_name, error);
  if (run_dir == NULL)
    return FALSE;
  socket_path = g_build_filename (run_dir, "switch", NULL);
  numports = g_strdup_printf ("%u", self->n_hosts + 1);

  {
    const char *argv[] = {
      vde_switch,
      "--sock", socket_path,
      /* Only this user may plug in, and only into the ports it names. */
      "--mode", "0600",
      "--dirmode", "0700",
      "--numports", numports,
      NULL
    };

    launcher = child_launcher (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                               G_SUBPROCESS_FLAGS_STDERR_MERGE);
    vswitch = g_subprocess_launcher_spawnv (launcher, argv, error);
  }

  if (vswitch == NULL)
    {
      g_prefix_error (error, _("Could not start the switch of network “%s”: "), self->name);
      qlean_rm_rf (run_dir, NULL);
      return FALSE;
    }

  pid = qlean_subprocess_get_pid (vswitch);
  g_mutex_lock (&self->lock);
  self->run_dir = g_steal_pointer (&run_dir);
  self->socket_path = g_steal_pointer (&socket_path);
  self->switch_pid = pid;
  g_mutex_unlock (&self->lock);

  self->vswitch = vswitch;
  self->console_in = g_object_ref (g_subprocess_get_stdin_pipe (vswitch));
  self->console_out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (vswitch));
  g_queue_clear_full (&self->output_tail, g_free);
  g_string_truncate (self->data, 0);
  self->in_data = FALSE;
  self->writing = FALSE;

  qlean_network_set_state (self, NET_STARTING);
  g_subprocess_wait_async (vswitch, NULL, qlean_network_switch_exited_cb,
                           qlean_link_ref (self->link));
  g_data_input_stream_read_line_async (self->console_out, G_PRIORITY_DEFAULT, NULL,
                                       qlean_network_console_read_cb,
                                       qlean_link_ref (self->link));
  self->start_timer = network_add_timeout (self, START_TIMEOUT_MS, qlean_network_start_timeout_cb);

  /* The first answer on the console means the switch has made its
   * socket and runs its main loop. */
  qlean_network_console_send (self, qlean_network_hello_cb, NULL, "showinfo");

  return TRUE;
}

static gboolean
qlean_network_start_in_worker (gpointer user_data)
{
  GTask *task = user_data;
  QleanNetwork *self = g_task_get_source_object (task);
  GError *error = NULL;

  if (g_task_return_error_if_cancelled (task))
    return G_SOURCE_REMOVE;

  switch (g_atomic_int_get (&self->state))
    {
    case NET_RUNNING:
      g_task_return_boolean (task, TRUE);
      break;
    case NET_STARTING:
      g_ptr_array_add (self->start_waiters, g_object_ref (task));
      break;
    case NET_STOPPING:
      g_task_return_new_error (task, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_NOT_RUNNING,
                               _("Network “%s” is stopping; start it again once the stop "
                                 "has completed"), self->name);
      break;
    case NET_STOPPED:
    default:
      if (!qlean_network_launch (self, &error))
        g_task_return_error (task, error);
      else
        g_ptr_array_add (self->start_waiters, g_object_ref (task));
      break;
    }

  return G_SOURCE_REMOVE;
}

/**
 * qlean_network_start_async:
 * @self: a #QleanNetwork
 * @cancellable: (nullable): a #GCancellable, looked at before the start
 * @callback: called when the switch runs, or failed to start
 * @user_data: data for @callback
 *
 * Starts the switch (and the NAT plug, with [property@Network:nat]) and
 * completes once machines can plug in; at most ten seconds. Starting a
 * running network succeeds at once. A failure leaves no process and no
 * run directory behind.
 *
 * Since: 0.1
 */
void
qlean_network_start_async (QleanNetwork        *self,
                           GCancellable        *cancellable,
                           GAsyncReadyCallback  callback,
                           gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (QLEAN_IS_NETWORK (self));

  task = qlean_task_new (self, cancellable, callback, user_data,
                         qlean_network_start_async, "[qlean] start network");

  qlean_task_run_in_worker (task, qlean_network_start_in_worker);
}

/**
 * qlean_network_start_finish:
 * @self: a #QleanNetwork
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_network_start_async().
 *
 * Returns: %TRUE when the switch runs
 *
 * Since: 0.1
 */
gboolean
qlean_network_start_finish (QleanNetwork  *self,
                            GAsyncResult  *result,
                            GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_network_start_async), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_network_start:
 * @self: a #QleanNetwork
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_network_start_async().
 *
 * Returns: %TRUE when the switch runs
 *
 * Since: 0.1
 */
gboolean
qlean_network_start (QleanNetwork  *self,
                     GCancellable  *cancellable,
                     GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_NETWORK (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!qlean_sync_call_begin (&call, error))
    return FALSE;
  qlean_network_start_async (self, cancellable, qlean_sync_call_done, &call);

  return qlean_network_start_finish (self, qlean_sync_call_wait (&call), error);
}

static gboolean
qlean_network_stop_in_worker (gpointer user_data)
{
  GTask *task = user_data;
  QleanNetwork *self = g_task_get_source_object (task);

  switch (g_atomic_int_get (&self->state))
    {
    case NET_STOPPED:
      g_task_return_boolean (task, TRUE);
      break;
    case NET_STOPPING:
      g_ptr_array_add (self->stop_waiters, g_object_ref (task));
      break;
    case NET_STARTING:
      g_ptr_array_add (self->stop_waiters, g_object_ref (task));
      qlean_network_start_fail (self,
          g_error_new (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                       _("Network “%s” was stopped while it was starting"), self->name));
      break;
    case NET_RUNNING:
    default:
      g_ptr_array_add (self->stop_waiters, g_object_ref (task));
      qlean_network_teardown (self);
      break;
    }

  return G_SOURCE_REMOVE;
}

/**
 * qlean_network_stop_async:
 * @self: a #QleanNetwork
 * @cancellable: (nullable): a #GCancellable (unused: stopping is bounded)
 * @callback: called once the switch has exited
 * @user_data: data for @callback
 *
 * Stops the switch and the NAT plug, within a few seconds, and removes
 * the run directory. Machines still plugged in lose their network; stop
 * them first. Stopping a network that does not run succeeds at once.
 *
 * Since: 0.1
 */
void
qlean_network_stop_async (QleanNetwork        *self,
                          GCancellable        *cancellable,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  GTask *task;

  g_return_if_fail (QLEAN_IS_NETWORK (self));

  task = qlean_task_new (self, cancellable, callback, user_data,
                         qlean_network_stop_async, "[qlean] stop network");

  qlean_task_run_in_worker (task, qlean_network_stop_in_worker);
}

/**
 * qlean_network_stop_finish:
 * @self: a #QleanNetwork
 * @result: the result passed to the callback
 * @error: return location for a #GError
 *
 * Finishes qlean_network_stop_async().
 *
 * Returns: %TRUE once the switch has exited
 *
 * Since: 0.1
 */
gboolean
qlean_network_stop_finish (QleanNetwork  *self,
                           GAsyncResult  *result,
                           GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_async_result_is_tagged (result, qlean_network_stop_async), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * qlean_network_stop:
 * @self: a #QleanNetwork
 * @cancellable: (nullable): a #GCancellable
 * @error: return location for a #GError
 *
 * Blocking twin of qlean_network_stop_async().
 *
 * Returns: %TRUE once the switch has exited
 *
 * Since: 0.1
 */
gboolean
qlean_network_stop (QleanNetwork  *self,
                    GCancellable  *cancellable,
                    GError       **error)
{
  g_auto(QleanSyncCall) call = { 0 };

  g_return_val_if_fail (QLEAN_IS_NETWORK (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!qlean_sync_call_begin (&call, error))
    return FALSE;
  qlean_network_stop_async (self, cancellable, qlean_sync_call_done, &call);

  return qlean_network_stop_finish (self, qlean_sync_call_wait (&call), error);
}
