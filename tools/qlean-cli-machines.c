/* qlean-cli-machines.c: machines that outlive one command
 *
 * SPDX-License-Identifier: MIT
 *
 * `qlean start NAME` runs a small owner process (this same program with
 * --foreground) that boots the machine, shares it on a socket and stays
 * until `qlean stop NAME` (SIGTERM) or the machine dies. `qlean exec` and
 * `qlean cp` attach to that socket. Each started machine has a directory
 * RUNBASE/machines/NAME holding state.json, ctl.sock and owner.log.
 * Machines started with --network share a switch that has an owner of
 * its own (qlean-cli-network.c).
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <glib-unix.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <gio/gunixinputstream.h>
#include <gio/gunixoutputstream.h>

#include "qlean-cli-private.h"
#include "qlean-errno-private.h"

#define STATE_FILE "state.json"
#define SOCKET_FILE "ctl.sock"
#define LOG_FILE "owner.log"
/* Where qemu-bridge-helper looks for the bridges users may use. */
#define QLEAN_BRIDGE_CONF "/etc/qemu/bridge.conf"

static char *
machines_dir (GError **error)
{
  g_autofree char *base = qlean_get_run_base_dir (error);
  char *dir;

  if (base == NULL)
    return NULL;

  dir = g_build_filename (base, "machines", NULL);
  if (g_mkdir_with_parents (dir, 0700) != 0)
    {
      int saved_errno = errno;

      qlean_set_error_from_errno (error, saved_errno,
                                  _("Cannot create %s"), dir);
      g_free (dir);
      return NULL;
    }

  return dir;
}

static gboolean
valid_name (const char  *name,
            GError     **error)
{
  if (name == NULL || *name == '\0' || strlen (name) > 63 || *name == '-' || *name == '.')
    goto bad;

  for (const char *p = name; *p; p++)
    if (!g_ascii_isalnum (*p) && *p != '-' && *p != '_' && *p != '.')
      goto bad;

  return TRUE;

bad:
  g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
               _("“%s” is not a valid machine name: use 1 to 63 letters, digits, “-”, “_” or “.”, "
                 "not starting with “-” or “.”"), name ? name : "");
  return FALSE;
}

static char *
machine_dir (const char  *name,
             GError     **error)
{
  g_autofree char *dir = NULL;

  if (!valid_name (name, error) || (dir = machines_dir (error)) == NULL)
    return NULL;

  return g_build_filename (dir, name, NULL);
}

/* --- lifecycle: qlean-cli-lifecycle.c finds machines the same way --- */
char *
cli_machine_dir (const char  *name,
                 GError     **error)
{
  return machine_dir (name, error);
}
/* --- */

typedef struct
{
  char    *name;
  char    *state;
  gint64   owner;
  gint64   qemu;
  char    *image;
  gint64   started;
  char    *run_dir;
  /* Port forwards (qlean start -p): host port << 16 | guest port */
  GArray  *forwards;
  char    *ip;
  char    *network;   /* qlean start --network */
  gboolean network_down;
  char    *reason;    /* why a crashed machine crashed, when known */
  char    *kept_by;   /* who kept it (qlean import --kept-by), or NULL */
} MachineState;

static void
machine_state_free (MachineState *state)
{
  g_free (state->name);
  g_free (state->state);
  g_free (state->image);
  g_free (state->run_dir);
  g_clear_pointer (&state->forwards, g_array_unref);
  g_free (state->ip);
  g_free (state->network);
  g_free (state->reason);
  g_free (state->kept_by);
  g_free (state);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (MachineState, machine_state_free)

static MachineState *
read_state (const char *dir)
{
  g_autofree char *path = g_build_filename (dir, STATE_FILE, NULL);
  g_autoptr(JsonParser) parser = json_parser_new ();
  MachineState *state;
  JsonObject *object;

  if (!json_parser_load_from_file (parser, path, NULL) ||
      !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    return NULL;

  object = json_node_get_object (json_parser_get_root (parser));
  state = g_new0 (MachineState, 1);
  state->name = g_strdup (json_object_get_string_member_with_default (object, "name", ""));
  state->state = g_strdup (json_object_get_string_member_with_default (object, "state", "unknown"));
  state->owner = json_object_get_int_member_with_default (object, "owner-pid", 0);
  state->qemu = json_object_get_int_member_with_default (object, "qemu-pid", 0);
  state->image = g_strdup (json_object_get_string_member_with_default (object, "image", ""));
  state->started = json_object_get_int_member_with_default (object, "started", 0);
  state->run_dir = g_strdup (json_object_get_string_member_with_default (object, "run-dir", ""));
  /* --- port forwards and address (qlean start -p) --- */
  state->forwards = g_array_new (FALSE, FALSE, sizeof (guint32));
  if (json_object_has_member (object, "forwards") &&
      JSON_NODE_HOLDS_ARRAY (json_object_get_member (object, "forwards")))
    {
      JsonArray *forwards = json_object_get_array_member (object, "forwards");

      for (guint i = 0; i < json_array_get_length (forwards); i++)
        {
          JsonNode *node = json_array_get_element (forwards, i);
          JsonObject *forward = JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
          guint32 pair;

          if (forward == NULL)
            continue;
          pair = (guint32) (json_object_get_int_member_with_default (forward, "host-port", 0) & 0xffff) << 16 |
                 (guint32) (json_object_get_int_member_with_default (forward, "guest-port", 0) & 0xffff);
          g_array_append_val (state->forwards, pair);
        }
    }
  if (json_object_has_member (object, "ip") &&
      JSON_NODE_HOLDS_VALUE (json_object_get_member (object, "ip")))
    state->ip = g_strdup (json_object_get_string_member (object, "ip"));
  if (json_object_has_member (object, "network") &&
      JSON_NODE_HOLDS_VALUE (json_object_get_member (object, "network")))
    state->network = g_strdup (json_object_get_string_member (object, "network"));
  /* --- */
  if (json_object_has_member (object, "reason") &&
      JSON_NODE_HOLDS_VALUE (json_object_get_member (object, "reason")))
    state->reason = g_strdup (json_object_get_string_member (object, "reason"));
  if (json_object_has_member (object, "kept-by") &&
      JSON_NODE_HOLDS_VALUE (json_object_get_member (object, "kept-by")))
    state->kept_by = g_strdup (json_object_get_string_member (object, "kept-by"));

  /* A state file nobody updates any more tells of an owner that died. */
  if ((g_str_equal (state->state, "running") || g_str_equal (state->state, "paused")) &&
      !cli_process_alive (state->owner))
    {
      g_free (state->state);
      state->state = g_strdup ("owner-died");
    }
  /* --- port forwards live in the owner, on the running machine: a
   * crashed machine or a dead owner has none --- */
  if (!g_str_equal (state->state, "running") && !g_str_equal (state->state, "paused"))
    g_array_set_size (state->forwards, 0);
  /* --- */

  /* --- networks: a network whose owner died (its switch with it) no
   * longer carries the machine's address --- */
  if (state->network != NULL && !g_str_equal (state->state, "stopped") &&
      !cli_network_has_member (state->network, state->name, state->owner))
    {
      state->network_down = TRUE;
      g_clear_pointer (&state->ip, g_free);
    }
  /* --- */

  return state;
}

/* What the owner forwards (host port << 16 | guest port), and the
 * machine's address on its network, for `qlean ls`. */
static GArray *owner_forwards;
static char *owner_ip;
/* qlean start --network NAME, --bridge BRIDGE */
static char *opt_network;
static char *opt_kept_by;        /* qlean import --kept-by: who kept the machine */

static gboolean
write_state (const char    *dir,
             QleanMachine  *machine,
             const char    *state,
             GError       **error)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  g_autoptr(JsonNode) root = NULL;
  g_autofree char *path = g_build_filename (dir, STATE_FILE, NULL);
  g_autofree char *data = NULL;
  static gint64 started;

  if (started == 0)
    started = g_get_real_time () / G_USEC_PER_SEC;

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "name");
  json_builder_add_string_value (builder, qlean_machine_get_name (machine));
  json_builder_set_member_name (builder, "state");
  json_builder_add_string_value (builder, state);
  json_builder_set_member_name (builder, "owner-pid");
  json_builder_add_int_value (builder, getpid ());
  json_builder_set_member_name (builder, "qemu-pid");
  json_builder_add_int_value (builder, qlean_machine_get_pid (machine));
  json_builder_set_member_name (builder, "image");
  json_builder_add_string_value (builder, qlean_image_get_name (qlean_machine_get_image (machine)));
  json_builder_set_member_name (builder, "started");
  json_builder_add_int_value (builder, started);
  json_builder_set_member_name (builder, "run-dir");
  json_builder_add_string_value (builder, qlean_machine_get_run_dir (machine)
                                          ? qlean_machine_get_run_dir (machine) : "");
  if (opt_kept_by != NULL)
    {
      json_builder_set_member_name (builder, "kept-by");
      json_builder_add_string_value (builder, opt_kept_by);
    }
  /* --- port forwards and address (qlean start -p) --- */
  json_builder_set_member_name (builder, "forwards");
  json_builder_begin_array (builder);
  for (guint i = 0; owner_forwards != NULL && i < owner_forwards->len; i++)
    {
      guint32 pair = g_array_index (owner_forwards, guint32, i);

      json_builder_begin_object (builder);
      json_builder_set_member_name (builder, "host-port");
      json_builder_add_int_value (builder, pair >> 16);
      json_builder_set_member_name (builder, "guest-port");
      json_builder_add_int_value (builder, pair & 0xffff);
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
  json_builder_set_member_name (builder, "ip");
  if (owner_ip != NULL)
    json_builder_add_string_value (builder, owner_ip);
  else
    json_builder_add_null_value (builder);
  json_builder_set_member_name (builder, "network");
  if (opt_network != NULL)
    json_builder_add_string_value (builder, opt_network);
  else
    json_builder_add_null_value (builder);
  /* --- */
  /* What `qlean exec` and `qlean cp` tell when they lose the machine. */
  if (g_str_equal (state, "crashed"))
    {
      g_autofree char *reason = qlean_machine_dup_crash_reason (machine);

      if (reason != NULL)
        {
          json_builder_set_member_name (builder, "reason");
          json_builder_add_string_value (builder, reason);
        }
    }
  json_builder_end_object (builder);

  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  data = json_generator_to_data (generator, NULL);

  return g_file_set_contents_full (path, data, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0600, error);
}

static void
remove_machine_dir (const char *dir)
{
  static const char * const files[] = { STATE_FILE, SOCKET_FILE, LOG_FILE, ADMIN_SOCKET_FILE };

  for (guint i = 0; i < G_N_ELEMENTS (files); i++)
    {
      g_autofree char *path = g_build_filename (dir, files[i], NULL);

      g_unlink (path);
    }
  g_rmdir (dir);
}

/* qlean start */

static int opt_ready_fd = -1;
static gboolean opt_foreground;
static char *opt_from_archive;   /* lifecycle: qlean import, qlean clone */
static gboolean opt_trust_extra_args;  /* lifecycle: qlean import --trust-extra-args */
static char *opt_network_owner;  /* networks: the owner of a network's switch */

/* --- port forwards (qlean start -p HOST:GUEST) --- */
static char **opt_forward;

/* Parses every -p into owner_forwards (host 0 = any free port). */
static gboolean
parse_forwards (GError **error)
{
  g_clear_pointer (&owner_forwards, g_array_unref);
  owner_forwards = g_array_new (FALSE, FALSE, sizeof (guint32));

  for (guint i = 0; opt_forward != NULL && opt_forward[i] != NULL; i++)
    {
      const char *spec = opt_forward[i];
      const char *colon = strchr (spec, ':');
      g_autofree char *host_text = colon ? g_strndup (spec, colon - spec) : NULL;
      guint64 host = 0, guest = 0;
      guint32 pair;

      if (colon == NULL ||
          !g_ascii_string_to_unsigned (host_text, 10, 0, 65535, &host, NULL) ||
          !g_ascii_string_to_unsigned (colon + 1, 10, 1, 65535, &guest, NULL))
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       _("--forward takes HOST:GUEST, two port numbers (HOST 0 picks a free "
                         "port), not “%s”"), spec);
          return FALSE;
        }
      pair = (guint32) host << 16 | (guint32) guest;
      g_array_append_val (owner_forwards, pair);
    }

  return TRUE;
}

/* In the owner: listens on the ports, noting the ones picked for 0. */
static gboolean
owner_forward_ports (QleanMachine  *machine,
                     GError       **error)
{
  if (qlean_machine_get_network (machine) != NULL ||
      qlean_machine_config_get_bridge (qlean_machine_get_config (machine)) != NULL)
    owner_ip = qlean_machine_get_ip (machine, NULL, NULL);

  for (guint i = 0; owner_forwards != NULL && i < owner_forwards->len; i++)
    {
      guint32 *pair = &g_array_index (owner_forwards, guint32, i);
      guint16 port = qlean_machine_forward_port (machine, *pair >> 16, *pair & 0xffff, error);

      if (port == 0)
        return FALSE;
      *pair = (guint32) port << 16 | (*pair & 0xffff);
    }

  return TRUE;
}
/* --- */

typedef struct
{
  GMainLoop    *loop;
  QleanMachine *machine;
  char         *dir;
  gboolean      stopping;
  int           status;
} Owner;

static void
owner_shutdown_cb (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  Owner *owner = user_data;
  g_autoptr(GError) error = NULL;

  if (!qlean_machine_shutdown_finish (QLEAN_MACHINE (source), result, &error))
    {
      g_printerr ("qlean: shutting down %s: %s\n", qlean_machine_get_name (owner->machine),
                  error->message);
      owner->status = EXIT_FAILED;
    }
  g_main_loop_quit (owner->loop);
}

static gboolean
owner_signal_cb (gpointer user_data)
{
  Owner *owner = user_data;

  if (!owner->stopping)
    {
      owner->stopping = TRUE;
      /* --- lifecycle: a paused guest cannot hear the power button; the
       * shutdown would wait out its whole timeout --- */
      if (qlean_machine_get_state (owner->machine) == QLEAN_MACHINE_STATE_PAUSED)
        qlean_machine_resume (owner->machine, NULL, NULL);
      /* --- */
      qlean_machine_shutdown_async (owner->machine, NULL, owner_shutdown_cb, owner);
    }

  return G_SOURCE_CONTINUE;
}

static void
owner_state_cb (QleanMachine *machine,
                GParamSpec   *pspec,
                gpointer      user_data)
{
  Owner *owner = user_data;

  if (qlean_machine_get_state (machine) == QLEAN_MACHINE_STATE_CRASHED && !owner->stopping)
    {
      g_printerr ("qlean: machine %s crashed\n", qlean_machine_get_name (machine));
      write_state (owner->dir, machine, "crashed", NULL);
      owner->status = EXIT_FAILED;
      g_main_loop_quit (owner->loop);
    }
}

/* --- lifecycle: the admin socket tells of state changes it made --- */
static void
owner_admin_update (gpointer    user_data,
                    const char *state)
{
  Owner *owner = user_data;

  write_state (owner->dir, owner->machine, state, NULL);
  /* A restore that failed left no machine to own. */
  if (g_str_equal (state, "crashed") && !owner->stopping)
    {
      owner->status = EXIT_FAILED;
      g_main_loop_quit (owner->loop);
    }
}
/* --- */

static void
report_ready (const char *message)
{
  if (opt_ready_fd < 0)
    return;

  if (write (opt_ready_fd, message, strlen (message)) < 0)
    g_printerr ("qlean: cannot report to the starting process: %s\n", g_strerror (errno));
  close (opt_ready_fd);
  opt_ready_fd = -1;
}

/* The owner: this process holds the machine until told to stop. */
static int
run_owner (const char *name,
           const char *dir)
{
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GMainLoop) loop = NULL;
  g_autofree char *socket_path = g_build_filename (dir, SOCKET_FILE, NULL);
  Owner owner = { 0 };
  guint signal_ids[3];
  OwnerAdmin *admin = NULL;
  const char *network_name = opt_network;

  /* --- lifecycle: qlean import and qlean clone start from an archive,
   * which gives a running machine when it holds a state --- */
  if (opt_from_archive != NULL)
    machine = owner_import_machine (name, opt_from_archive,
                                    opt_trust_extra_args ? QLEAN_IMPORT_FLAGS_TRUST_EXTRA_ARGS
                                                         : QLEAN_IMPORT_FLAGS_NONE,
                                    &error);
  else
  /* --- */
    machine = machine_from_options (name, &error);
  if (machine == NULL)
    network_name = NULL;
  /* --- networks: the machine takes its address on the shared switch
   * before it boots, and gives it back whenever this owner ends --- */
  if (machine != NULL && opt_network != NULL && opt_from_archive == NULL)
    {
      g_autoptr(QleanNetwork) network = cli_network_join (opt_network, name, NULL, &error);
      QleanMachine *plain = machine;

      machine = NULL;
      if (network != NULL)
        machine = g_object_new (QLEAN_TYPE_MACHINE,
                                "name", name,
                                "image", qlean_machine_get_image (plain),
                                "config", qlean_machine_get_config (plain),
                                "network", network,
                                NULL);
      g_object_unref (plain);
      if (machine == NULL)
        network_name = NULL;
    }
  /* --- */
  if (machine == NULL ||
      /* Its first boot (cloud-init, where the image has it); an imported
       * machine runs already. */
      (qlean_machine_get_state (machine) != QLEAN_MACHINE_STATE_RUNNING &&
       !qlean_machine_initialize (machine, NULL, &error)) ||
      !qlean_machine_share (machine, socket_path, &error) ||
      !owner_forward_ports (machine, &error) ||
      !write_state (dir, machine, "running", &error))
    {
      g_autofree char *message = g_strdup_printf ("%s\n", error->message);

      /* --- networks: gone before `qlean start` returns --- */
      if (network_name != NULL)
        {
          if (machine != NULL)
            qlean_machine_kill (machine, NULL, NULL);
          cli_network_leave (network_name, name);
        }
      /* --- */
      report_ready (message);
      g_printerr ("qlean: %s", message);
      if (machine != NULL)
        qlean_machine_kill (machine, NULL, NULL);
      remove_machine_dir (dir);
      return EXIT_FAILED;
    }

  if (network_name != NULL)
    cli_network_update_hosts (network_name, machine);

  loop = g_main_loop_new (NULL, FALSE);
  owner.loop = loop;
  owner.machine = machine;
  owner.dir = (char *) dir;
  g_signal_connect (machine, "notify::state", G_CALLBACK (owner_state_cb), &owner);
  signal_ids[0] = g_unix_signal_add (SIGTERM, owner_signal_cb, &owner);
  signal_ids[1] = g_unix_signal_add (SIGINT, owner_signal_cb, &owner);
  signal_ids[2] = g_unix_signal_add (SIGHUP, owner_signal_cb, &owner);
  /* --- lifecycle: pause, resume, snapshot, restore, export --- */
  admin = owner_admin_start (machine, dir, socket_path, owner_admin_update, &owner, &error);
  if (admin == NULL)
    g_printerr ("qlean: %s; pause, snapshot, clone and export will not work\n", error->message);
  /* --- */

  report_ready ("ok\n");
  g_main_loop_run (loop);
  owner_admin_stop (admin);

  for (guint i = 0; i < G_N_ELEMENTS (signal_ids); i++)
    g_source_remove (signal_ids[i]);
  g_signal_handlers_disconnect_by_data (machine, &owner);

  /* The machine is gone: its address is free, and it may have been the
   * network's last. */
  if (network_name != NULL)
    {
      qlean_machine_kill (machine, NULL, NULL);
      cli_network_leave (network_name, name);
    }

  /* A crashed machine's entry stays for `qlean ls` to show; a stopped
   * one goes. */
  if (owner.status == 0 || owner.stopping)
    remove_machine_dir (dir);

  return owner.status;
}

/* Starts the owner in its own session, with its output in the machine's
 * directory, and waits for its word that the machine runs. */
static int
start_owner (int          argc,
             char       **argv,
             const char  *name,
             const char  *dir)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) owner = NULL;
  g_autoptr(GPtrArray) args = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *log = g_build_filename (dir, LOG_FILE, NULL);
  g_autofree char *self_path = g_file_read_link ("/proc/self/exe", NULL);
  GString *answer = g_string_new (NULL);
  int fds[2];
  char buf[512];
  ssize_t n;

  if (!g_unix_open_pipe (fds, FD_CLOEXEC, &error))
    {
      print_error ("start", error);
      return EXIT_FAILED;
    }

  g_ptr_array_add (args, self_path);
  g_ptr_array_add (args, (char *) "start");
  g_ptr_array_add (args, (char *) "--foreground");
  g_ptr_array_add (args, (char *) "--ready-fd=3");
  for (int i = 1; i < argc; i++)
    g_ptr_array_add (args, argv[i]);
  g_ptr_array_add (args, NULL);

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_INHERIT);
  g_subprocess_launcher_set_stdout_file_path (launcher, log);
  g_subprocess_launcher_set_stderr_file_path (launcher, log);
  g_subprocess_launcher_take_fd (launcher, fds[1], 3);
  g_subprocess_launcher_set_child_setup (launcher, (GSpawnChildSetupFunc) (void (*) (void)) setsid,
                                         NULL, NULL);
  owner = g_subprocess_launcher_spawnv (launcher, (const char * const *) args->pdata, &error);
  if (owner == NULL)
    {
      close (fds[0]);
      print_error ("start", error);
      remove_machine_dir (dir);
      return EXIT_FAILED;
    }

  /* The launcher holds the pipe's write end until freed: without this the
   * read below would never see end-of-file. */
  g_clear_object (&launcher);

  while ((n = read (fds[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
    if (n > 0)
      g_string_append_len (answer, buf, n);
  close (fds[0]);

  if (!g_str_equal (answer->str, "ok\n"))
    {
      g_printerr ("qlean start: %s%s", answer->len ? answer->str : _("the owner process died\n"),
                  answer->len && answer->str[answer->len - 1] != '\n' ? "\n" : "");
      g_string_free (answer, TRUE);
      return EXIT_FAILED;
    }

  g_string_free (answer, TRUE);
  if (!cli_is_quiet ())
    g_print (_("%s is running; use “qlean exec %s -- COMMAND”, stop it with “qlean stop %s”\n"),
             name, name, name);
  /* --- port forwards: the ports picked for HOST 0 are news even with --quiet --- */
  {
    g_autoptr(MachineState) state = read_state (dir);

    for (guint i = 0; state != NULL && i < state->forwards->len; i++)
      {
        guint32 pair = g_array_index (state->forwards, guint32, i);

        g_print (_("127.0.0.1:%u forwards to port %u of %s\n"), pair >> 16, pair & 0xffff, name);
      }
  }
  /* --- */
  return 0;
}

/* --- networks --- */
static gboolean
check_network_options (const char  *name,
                       GError     **error)
{
  const char *bridge = cli_get_bridge_option ();

  if (opt_network != NULL && bridge != NULL)
    {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                           _("--network and --bridge exclude each other: a machine has one network card"));
      return FALSE;
    }
  /* An imported machine keeps the network card its archive describes. */
  if (opt_network != NULL && opt_from_archive != NULL)
    {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                           _("--network does not apply to an imported or cloned machine"));
      return FALSE;
    }

  if (opt_network != NULL)
    {
      if (!cli_network_check_name (opt_network, error))
        return FALSE;
      /* Other machines of the network find it by name in /etc/hosts. */
      for (const char *p = name; *p; p++)
        if (!g_ascii_isalnum (*p) && *p != '-')
          {
            g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                         _("“%s” cannot be a host name on network %s: name machines on a network "
                           "with letters, digits and “-” only"), name, opt_network);
            return FALSE;
          }
    }

  /* QEMU's bridge helper reads which bridges users may use from here,
   * and refuses all without it; saying so beats its own message. */
  if (bridge != NULL && !g_file_test (QLEAN_BRIDGE_CONF, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   _("Bridge %s needs %s with the line “allow %s” (as root), and a setuid "
                     "qemu-bridge-helper; see qemu-bridge-helper(8)"),
                   bridge, QLEAN_BRIDGE_CONF, bridge);
      return FALSE;
    }

  return TRUE;
}
/* --- */

int
cmd_start (int    argc,
           char **argv)
{
  static GOptionEntry extra[] = {
    { "foreground", 0, 0, G_OPTION_ARG_NONE, &opt_foreground,
      N_("Stay in the foreground and own the machine until SIGTERM"), NULL },
    { "ready-fd", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_INT, &opt_ready_fd, NULL, NULL },
    /* --- lifecycle: qlean import FILE NAME is start --from-archive=FILE NAME --- */
    { "from-archive", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_FILENAME, &opt_from_archive, NULL, NULL },
    { "trust-extra-args", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_NONE, &opt_trust_extra_args, NULL, NULL },
    { "kept-by", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_STRING, &opt_kept_by, NULL, NULL },
    { "forward", 'p', 0, G_OPTION_ARG_STRING_ARRAY, &opt_forward,
      N_("Forward port HOST of 127.0.0.1 to port GUEST of the machine (repeatable; HOST 0 picks a free port)"),
      N_("HOST:GUEST") },
    /* --- networks --- */
    { "network", 'n', 0, G_OPTION_ARG_STRING, &opt_network,
      N_("Join the machine to network NAME, shared with the other machines started with it"),
      N_("NAME") },
    { "network-owner", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_STRING, &opt_network_owner, NULL, NULL },
    /* --- */
    { NULL }
  };
  g_autofree GOptionEntry *all = cli_machine_entries_with (extra);
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = NULL;
  g_autoptr(MachineState) old = NULL;
  int original_argc = argc;
  char **original_argv = g_strdupv (argv);
  int status;

  if (!parse_options ("start", _("NAME"),
                      _("Boot a machine that stays up after this command returns. It returns once\n"
                        "the guest agent answers; “qlean exec NAME -- CMD” runs commands in it and\n"
                        "“qlean stop NAME” shuts it down."),
                      all, &argc, &argv, &status))
    {
      g_strfreev (original_argv);
      return status;
    }

  /* --- networks: the hidden owner of a network, and what --network and
   * --bridge need, checked before anything is made --- */
  if (opt_network_owner != NULL)
    {
      g_strfreev (original_argv);
      return cli_network_owner_run (opt_network_owner, opt_ready_fd);
    }
  /* --- */

  if (argc != 2)
    {
      g_printerr (_("qlean start: give exactly one machine name\nTry “qlean start --help”.\n"));
      g_strfreev (original_argv);
      return EXIT_USAGE;
    }

  /* --- networks --- */
  if (!check_network_options (argv[1], &error))
    {
      print_error ("start", error);
      g_strfreev (original_argv);
      return g_error_matches (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE) ? EXIT_USAGE : EXIT_FAILED;
    }
  /* --- */

  /* --- port forwards --- */
  if (!parse_forwards (&error))
    {
      print_error ("start", error);
      g_strfreev (original_argv);
      return EXIT_USAGE;
    }
  /* --- */

  dir = machine_dir (argv[1], &error);
  if (dir == NULL)
    {
      print_error ("start", error);
      g_strfreev (original_argv);
      return EXIT_USAGE;
    }

  /* A catalog or URL image is downloaded here, where its progress shows;
   * the owner finds it in the cache. */
  if (!opt_foreground && opt_from_archive == NULL && !cli_pull_image_option (&error))
    {
      print_error ("start", error);
      g_strfreev (original_argv);
      return EXIT_FAILED;
    }

  if (opt_foreground)
    {
      /* The starting process made the directory; a user running
       * --foreground by hand may not have. */
      g_mkdir (dir, 0700);
      status = run_owner (argv[1], dir);
      g_strfreev (original_argv);
      return status;
    }

  if (g_mkdir (dir, 0700) != 0)
    {
      old = read_state (dir);
      if (old != NULL && g_str_equal (old->state, "running"))
        {
          g_printerr (_("qlean start: a machine named %s is already running (owner pid %" G_GINT64_FORMAT ")\n"),
                      argv[1], old->owner);
          g_strfreev (original_argv);
          return EXIT_FAILED;
        }
      /* What a dead owner left behind is ours to reuse. */
      remove_machine_dir (dir);
      if (g_mkdir (dir, 0700) != 0)
        {
          g_printerr (_("qlean start: cannot create %s: %s\n"), dir, g_strerror (errno));
          g_strfreev (original_argv);
          return EXIT_FAILED;
        }
    }

  status = start_owner (original_argc, original_argv, argv[1], dir);
  g_strfreev (original_argv);
  return status;
}

/* A call that lost its machine */

/* Why machine @name, as @state has it, cannot be used: it crashed (and
 * why, when its owner noted it) or its owner died. NULL otherwise. */
static GError *
machine_gone_error (const char   *name,
                    MachineState *state)
{
  if (g_str_equal (state->state, "crashed") && state->reason != NULL)
    return g_error_new (QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_CRASHED,
                        _("Machine “%s” crashed: %s; “qlean stop %s” clears it"),
                        name, state->reason, name);
  if (g_str_equal (state->state, "crashed"))
    return g_error_new (QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_CRASHED,
                        _("Machine %s crashed; “qlean stop %s” clears it"), name, name);
  if (g_str_equal (state->state, "owner-died"))
    return g_error_new (QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_CRASHED,
                        _("The owner process of machine %s (pid %" G_GINT64_FORMAT ") died, "
                          "and the machine with it; “qlean stop %s” clears what is left"),
                        name, state->owner, name);
  return NULL;
}

/* How long a call that lost its machine waits for the machine's owner to
 * record why. An owner notes a crash right after it noticed it, and a
 * dead owner shows at once: the wait only covers the moment between the
 * connection's end and that note, and keeps the call well within a
 * second. */
#define LOST_WAIT_MS 500

gboolean
cli_explain_lost_machine (const char  *name,
                          GError     **error)
{
  g_autofree char *dir = machine_dir (name, NULL);
  gint64 deadline = g_get_monotonic_time () + LOST_WAIT_MS * G_TIME_SPAN_MILLISECOND;

  if (dir == NULL)
    return FALSE;

  for (;;)
    {
      g_autoptr(MachineState) state = read_state (dir);
      GError *why;

      /* A stopped machine's owner removes its directory on the way out. */
      if (state == NULL)
        why = g_error_new (QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_CRASHED,
                           _("Machine %s was stopped"), name);
      else
        why = machine_gone_error (name, state);

      if (why != NULL)
        {
          g_clear_error (error);
          g_propagate_error (error, why);
          return TRUE;
        }
      if (g_get_monotonic_time () >= deadline)
        return FALSE;
      g_usleep (10 * G_TIME_SPAN_MILLISECOND);
    }
}

/* Whether @error tells that the connection to the machine's owner ended
 * under a request: the library fails whatever was under way as lost. */
static gboolean
is_lost_machine (const GError *error)
{
  return g_error_matches (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_CRASHED);
}

/* qlean exec */

static char **opt_env;
static char *opt_cwd;
static char *opt_user;
static gboolean opt_interactive;
static gboolean opt_tty;
static double opt_timeout;

static QleanMachine *
attach_by_name (const char  *command,
                const char  *name,
                GError     **error)
{
  g_autofree char *dir = machine_dir (name, error);
  g_autofree char *socket_path = NULL;
  g_autoptr(MachineState) state = NULL;

  if (dir == NULL)
    return NULL;

  state = read_state (dir);
  if (state == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   _("No machine named %s; start one with “qlean start %s”"), name, name);
      return NULL;
    }
  /* --- lifecycle --- */
  if (g_str_equal (state->state, "paused"))
    {
      g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE,
                   _("Machine %s is paused; “qlean resume %s” lets it run"), name, name);
      return NULL;
    }
  /* --- */
  if (g_str_equal (state->state, "crashed") || g_str_equal (state->state, "owner-died"))
    {
      g_propagate_error (error, machine_gone_error (name, state));
      return NULL;
    }
  if (!g_str_equal (state->state, "running"))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   _("Machine %s is %s; “qlean stop %s” clears it"), name, state->state, name);
      return NULL;
    }

  socket_path = g_build_filename (dir, SOCKET_FILE, NULL);
  return qlean_machine_attach (name, socket_path, NULL, error);
}

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
  g_autoptr(GMainLoop) loop = NULL;
  g_autoptr(GOutputStream) out = NULL;
  g_autoptr(GOutputStream) err = NULL;
  g_autoptr(GInputStream) in = NULL;
  g_autoptr(GError) error = NULL;
  QleanGuestProcessFlags flags = QLEAN_GUEST_PROCESS_FLAGS_STDOUT_PIPE | QLEAN_GUEST_PROCESS_FLAGS_STDERR_PIPE;
  ExecState state = { 0 };
  guint sigint = 0;
  guint winch = 0;
  guint rows, cols;
  int status;

  machine = attach_by_name (cmd, name, &error);
  if (machine == NULL)
    {
      print_error (cmd, error);
      return EXIT_MACHINE;
    }

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
          return EXIT_USAGE;
        }
      qlean_guest_launcher_setenv (launcher, pair[0], pair[1], TRUE);
    }
  if (opt_cwd != NULL)
    qlean_guest_launcher_set_cwd (launcher, opt_cwd);
  if (opt_user != NULL)
    qlean_guest_launcher_set_user (launcher, opt_user);
  if (opt_timeout > 0)
    qlean_guest_launcher_set_timeout (launcher, (guint) (opt_timeout * 1000));

  process = qlean_guest_launcher_spawnv (launcher, machine, (const char * const *) command, &error);
  if (process == NULL)
    {
      if (is_lost_machine (error))
        cli_explain_lost_machine (name, &error);
      print_error (cmd, error);
      return g_error_matches (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_COMMAND_NOT_FOUND)
             ? 127 : EXIT_MACHINE;
    }

  loop = g_main_loop_new (NULL, FALSE);
  state.loop = loop;
  state.process = process;
  out = g_unix_output_stream_new (STDOUT_FILENO, FALSE);
  err = g_unix_output_stream_new (STDERR_FILENO, FALSE);

  /* A terminal has one output, the stdout pipe. */
  state.pending = terminal ? 2 : 3;
  g_output_stream_splice_async (out, qlean_guest_process_get_stdout_pipe (process),
                                G_OUTPUT_STREAM_SPLICE_CLOSE_SOURCE, G_PRIORITY_DEFAULT, NULL,
                                exec_splice_cb, &state);
  if (!terminal)
    g_output_stream_splice_async (err, qlean_guest_process_get_stderr_pipe (process),
                                  G_OUTPUT_STREAM_SPLICE_CLOSE_SOURCE, G_PRIORITY_DEFAULT, NULL,
                                  exec_splice_cb, &state);
  if (opt_interactive || terminal)
    {
      /* Not counted: the command may end before its input does. */
      in = g_unix_input_stream_new (STDIN_FILENO, FALSE);
      g_output_stream_splice_async (qlean_guest_process_get_stdin_pipe (process), in,
                                    G_OUTPUT_STREAM_SPLICE_CLOSE_TARGET, G_PRIORITY_DEFAULT, NULL,
                                    NULL, NULL);
    }
  qlean_guest_process_wait_async (process, NULL, exec_wait_cb, &state);

  if (terminal)
    {
      /* ^C and ^D are bytes for the guest's terminal from now on. */
      terminal_make_raw ();
      winch = terminal_watch_size (process);
    }
  else
    sigint = g_unix_signal_add (SIGINT, exec_forward_signal_cb, &state);
  g_main_loop_run (loop);
  if (sigint != 0)
    g_source_remove (sigint);
  if (winch != 0)
    g_source_remove (winch);
  if (state.grace != 0)
    g_source_remove (state.grace);
  terminal_restore ();

  if (state.error != NULL)
    {
      if (is_lost_machine (state.error))
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

  if (argc > 2 && g_str_equal (argv[2], "--"))
    {
      memmove (&argv[2], &argv[3], (argc - 2) * sizeof (char *));
      argc--;
    }
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

  if (argc > 2 && g_str_equal (argv[2], "--"))
    {
      memmove (&argv[2], &argv[3], (argc - 2) * sizeof (char *));
      argc--;
    }
  if (argc < 2)
    {
      g_printerr (_("qlean shell: give a machine name\nTry “qlean shell --help”.\n"));
      return EXIT_USAGE;
    }

  return exec_in_machine ("shell", argv[1], argc > 2 ? &argv[2] : (char **) login_shell, TRUE);
}

/* qlean stop */

int
cmd_stop (int    argc,
          char **argv)
{
  g_autoptr(GError) error = NULL;
  int status;
  int result = 0;

  if (!parse_options ("stop", _("NAME..."),
                      _("Shut down machines started with “qlean start”, and forget machines whose\n"
                        "owner died or that crashed."),
                      NULL, &argc, &argv, &status))
    return status;

  if (argc < 2)
    {
      g_printerr (_("qlean stop: give a machine name\nTry “qlean stop --help”.\n"));
      return EXIT_USAGE;
    }

  for (int i = 1; i < argc; i++)
    {
      g_autofree char *dir = machine_dir (argv[i], &error);
      g_autoptr(MachineState) state = NULL;
      gint64 deadline;

      if (dir == NULL)
        {
          print_error ("stop", error);
          g_clear_error (&error);
          result = EXIT_USAGE;
          continue;
        }

      state = read_state (dir);
      if (state == NULL)
        {
          g_printerr (_("qlean stop: no machine named %s\n"), argv[i]);
          result = EXIT_FAILED;
          continue;
        }

      if (cli_process_alive (state->owner))
        {
          kill ((pid_t) state->owner, SIGTERM);
          /* The owner shuts the guest down (bounded, with escalation). */
          deadline = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;
          while (cli_process_alive (state->owner) && g_get_monotonic_time () < deadline)
            g_usleep (20 * 1000);
          if (cli_process_alive (state->owner))
            {
              g_printerr (_("qlean stop: the owner of %s (pid %" G_GINT64_FORMAT ") did not exit; killing it\n"),
                          argv[i], state->owner);
              kill ((pid_t) state->owner, SIGKILL);
            }
        }

      /* QEMU dies with its owner (PR_SET_PDEATHSIG); make sure. */
      if (cli_process_alive (state->qemu))
        {
          g_autofree char *comm_path = g_strdup_printf ("/proc/%" G_GINT64_FORMAT "/comm", state->qemu);
          g_autofree char *comm = NULL;

          if (g_file_get_contents (comm_path, &comm, NULL, NULL) && g_str_has_prefix (comm, "qemu"))
            kill ((pid_t) state->qemu, SIGKILL);
        }

      remove_machine_dir (dir);
      if (!cli_is_quiet ())
        g_print (_("%s stopped\n"), argv[i]);
    }

  return result;
}

/* qlean ls */

static char *
format_uptime (gint64 seconds)
{
  if (seconds < 60)
    return g_strdup_printf ("%" G_GINT64_FORMAT "s", seconds);
  if (seconds < 3600)
    return g_strdup_printf ("%" G_GINT64_FORMAT "m", seconds / 60);
  if (seconds < 86400)
    return g_strdup_printf ("%" G_GINT64_FORMAT "h%02" G_GINT64_FORMAT "m", seconds / 3600, (seconds / 60) % 60);
  return g_strdup_printf ("%" G_GINT64_FORMAT "d", seconds / 86400);
}

static int
compare_states (gconstpointer a,
                gconstpointer b)
{
  const MachineState *x = *(const MachineState * const *) a;
  const MachineState *y = *(const MachineState * const *) b;

  return g_strcmp0 (x->name, y->name);
}

int
cmd_ls (int    argc,
        char **argv)
{
  static gboolean json;
  static GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, N_("Print the list as JSON"), NULL },
    { NULL }
  };
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) states = g_ptr_array_new_with_free_func ((GDestroyNotify) machine_state_free);
  g_autofree char *dir = NULL;
  g_autoptr(GDir) listing = NULL;
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  const char *entry;
  int status;

  if (!parse_options ("ls", "", _("List machines started with “qlean start”: name, state (running,\n"
                                  "crashed, or owner-died when its owner process is gone), owner pid,\n"
                                  "image, uptime, address, network (of “qlean start --network”) and\n"
                                  "forwarded ports, and who kept a machine that a failed test kept.\n"
                                  "Nothing is asked of the machines: the address is the one their\n"
                                  "owner noted when they started."),
                      entries, &argc, &argv, &status))
    return status;

  dir = machines_dir (&error);
  if (dir == NULL)
    {
      print_error ("ls", error);
      return EXIT_FAILED;
    }

  listing = g_dir_open (dir, 0, NULL);
  while (listing != NULL && (entry = g_dir_read_name (listing)) != NULL)
    {
      g_autofree char *path = g_build_filename (dir, entry, NULL);
      MachineState *state = read_state (path);

      if (state != NULL)
        g_ptr_array_add (states, state);
    }
  g_ptr_array_sort (states, compare_states);

  if (json)
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();
      g_autoptr(JsonNode) root = NULL;

      json_builder_begin_array (builder);
      for (guint i = 0; i < states->len; i++)
        {
          MachineState *state = g_ptr_array_index (states, i);

          json_builder_begin_object (builder);
          json_builder_set_member_name (builder, "name");
          json_builder_add_string_value (builder, state->name);
          json_builder_set_member_name (builder, "state");
          json_builder_add_string_value (builder, state->state);
          json_builder_set_member_name (builder, "pid");
          json_builder_add_int_value (builder, state->owner);
          json_builder_set_member_name (builder, "qemu-pid");
          json_builder_add_int_value (builder, state->qemu);
          json_builder_set_member_name (builder, "image");
          json_builder_add_string_value (builder, state->image);
          json_builder_set_member_name (builder, "uptime");
          json_builder_add_int_value (builder, state->started ? now - state->started : 0);
          /* --- port forwards and address --- */
          json_builder_set_member_name (builder, "ip");
          if (state->ip != NULL)
            json_builder_add_string_value (builder, state->ip);
          else
            json_builder_add_null_value (builder);
          json_builder_set_member_name (builder, "network");
          if (state->network != NULL)
            json_builder_add_string_value (builder, state->network);
          else
            json_builder_add_null_value (builder);
          json_builder_set_member_name (builder, "network-down");
          json_builder_add_boolean_value (builder, state->network_down);
          json_builder_set_member_name (builder, "kept-by");
          if (state->kept_by != NULL)
            json_builder_add_string_value (builder, state->kept_by);
          else
            json_builder_add_null_value (builder);
          json_builder_set_member_name (builder, "forwards");
          json_builder_begin_array (builder);
          for (guint j = 0; j < state->forwards->len; j++)
            {
              guint32 pair = g_array_index (state->forwards, guint32, j);

              json_builder_begin_object (builder);
              json_builder_set_member_name (builder, "host-port");
              json_builder_add_int_value (builder, pair >> 16);
              json_builder_set_member_name (builder, "guest-port");
              json_builder_add_int_value (builder, pair & 0xffff);
              json_builder_end_object (builder);
            }
          json_builder_end_array (builder);
          /* --- */
          json_builder_end_object (builder);
        }
      json_builder_end_array (builder);
      root = json_builder_get_root (builder);
      print_json (root);
      return 0;
    }

  g_print ("%-20s %-11s %8s %-12s %-7s %-15s %-12s %s\n", _("NAME"), _("STATE"), _("PID"), _("IMAGE"),
           _("UPTIME"), _("IP"), _("NETWORK"), _("PORTS"));
  for (guint i = 0; i < states->len; i++)
    {
      MachineState *state = g_ptr_array_index (states, i);
      g_autofree char *uptime = format_uptime (state->started ? now - state->started : 0);

      /* --- port forwards and address: 127.0.0.1:HOST->GUEST,... --- */
      GString *ports = g_string_new (NULL);
      g_autofree char *network = state->network_down ? g_strdup_printf (_("%s(down)"), state->network)
                                                     : g_strdup (state->network ? state->network : "-");

      for (guint j = 0; j < state->forwards->len; j++)
        {
          guint32 pair = g_array_index (state->forwards, guint32, j);

          g_string_append_printf (ports, "%s127.0.0.1:%u->%u", j ? "," : "", pair >> 16, pair & 0xffff);
        }
      g_print ("%-20s %-11s %8" G_GINT64_FORMAT " %-12s %-7s %-15s %-12s %s\n", state->name, state->state,
               state->owner, state->image, uptime, state->ip ? state->ip : "-",
               network, ports->len ? ports->str : "-");
      g_string_free (ports, TRUE);
      /* --- */
      if (state->kept_by != NULL)
        g_print (_("  kept by %s; “qlean stop %s” or “qlean gc --kept” ends it\n"), state->kept_by,
                 state->name);
    }

  return 0;
}

/* qlean cp */

/* NAME:/path is a path in a started machine; anything else is local. A
 * local path with a colon can be written ./a:b. */
static gboolean
split_remote (const char  *arg,
              char       **name,
              char       **path)
{
  const char *colon = strchr (arg, ':');

  if (colon == NULL || colon == arg || strchr (arg, '/') < colon)
    return FALSE;

  *name = g_strndup (arg, colon - arg);
  *path = g_strdup (colon + 1);
  return TRUE;
}

int
cmd_cp (int    argc,
        char **argv)
{
  static gboolean recursive;
  static gboolean preserve_modes;
  static GOptionEntry entries[] = {
    { "recursive", 'r', 0, G_OPTION_ARG_NONE, &recursive, N_("Copy directories and their contents"), NULL },
    { "preserve-modes", 0, 0, G_OPTION_ARG_NONE, &preserve_modes,
      N_("From a machine, keep the guest's exact modes, setuid and group/world write bits included"),
      NULL },
    { NULL }
  };
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanMachine) machine = NULL;
  g_autofree char *src_name = NULL, *src_path = NULL;
  g_autofree char *dst_name = NULL, *dst_path = NULL;
  gboolean src_remote, dst_remote, is_dir;
  int status;

  if (!parse_options ("cp", _("SRC DST"),
                      _("Copy files and directories between this host and machines started with\n"
                        "“qlean start”. Either SRC or DST is NAME:/path in a machine. Modes,\n"
                        "times and symbolic links are kept, except that files from a machine lose\n"
                        "setuid, setgid, sticky and group/world write bits (a guest is not trusted\n"
                        "with them; --preserve-modes keeps them); onto an existing directory, SRC\n"
                        "lands inside it, as with cp and scp. Exits with 125 when the machine\n"
                        "dies under the copy."),
                      entries, &argc, &argv, &status))
    return status;

  if (argc != 3)
    {
      g_printerr (_("qlean cp: give a source and a destination\nTry “qlean cp --help”.\n"));
      return EXIT_USAGE;
    }

  src_remote = split_remote (argv[1], &src_name, &src_path);
  dst_remote = split_remote (argv[2], &dst_name, &dst_path);
  if (src_remote == dst_remote)
    {
      g_printerr (_("qlean cp: exactly one of SRC and DST must be NAME:/path in a machine\n"));
      return EXIT_USAGE;
    }

  machine = attach_by_name ("cp", src_remote ? src_name : dst_name, &error);
  if (machine == NULL)
    {
      print_error ("cp", error);
      return EXIT_FAILED;
    }

  if (src_remote)
    {
      g_autoptr(GFileInfo) info = qlean_machine_metadata (machine, src_path, NULL, &error);
      g_autoptr(GFile) dst = g_file_new_for_commandline_arg (argv[2]);

      if (info == NULL)
        goto failed;
      is_dir = g_file_info_get_file_type (info) == G_FILE_TYPE_DIRECTORY;
      if (is_dir && !recursive)
        {
          g_printerr (_("qlean cp: %s is a directory; use -r to copy it\n"), argv[1]);
          return EXIT_FAILED;
        }
      if (!qlean_machine_download_full (machine, src_path, dst,
                                        preserve_modes ? QLEAN_TRANSFER_FLAGS_PRESERVE_MODES
                                                       : QLEAN_TRANSFER_FLAGS_NONE,
                                        NULL, &error))
        goto failed;
    }
  else
    {
      g_autoptr(GFile) src = g_file_new_for_commandline_arg (argv[1]);

      is_dir = g_file_test (argv[1], G_FILE_TEST_IS_DIR);
      if (is_dir && !recursive)
        {
          g_printerr (_("qlean cp: %s is a directory; use -r to copy it\n"), argv[1]);
          return EXIT_FAILED;
        }
      if (!qlean_machine_upload (machine, src, dst_path, NULL, &error))
        goto failed;
    }

  return 0;

failed:
  /* A copy that lost its machine fails as exec does: 125, and why. */
  if (is_lost_machine (error))
    {
      cli_explain_lost_machine (src_remote ? src_name : dst_name, &error);
      print_error ("cp", error);
      return EXIT_MACHINE;
    }
  print_error ("cp", error);
  return EXIT_FAILED;
}
