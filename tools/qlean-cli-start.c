/* qlean-cli-start.c: qlean start, and the owner process it leaves behind
 *
 * SPDX-License-Identifier: MIT
 *
 * `qlean start NAME` runs a small owner process (this same program with
 * --foreground) that boots the machine, shares it on a socket and stays
 * until `qlean stop NAME` (SIGTERM) or the machine dies. The owner is
 * the only writer of the machine's state.json; everything else reads it
 * through qlean-cli-machines.c. Machines started with --network share a
 * switch that has an owner of its own (qlean-cli-network.c).
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <glib-unix.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>

#include "qlean-cli-private.h"

/* Where qemu-bridge-helper looks for the bridges users may use. */
#define QLEAN_BRIDGE_CONF "/etc/qemu/bridge.conf"

/* What the owner forwards (host port << 16 | guest port), and the
 * machine's address on its network, for `qlean ls`. */
static GArray *owner_forwards;
static char *owner_ip;
/* qlean start --network NAME, --bridge BRIDGE */
static char *opt_network;
static char *opt_kept_by;        /* qlean import --kept-by: who kept the machine */
static int opt_ready_fd = -1;
static gboolean opt_foreground;
static char *opt_from_archive;   /* lifecycle: qlean import, qlean clone */
static gboolean opt_trust_extra_args;  /* lifecycle: qlean import --trust-extra-args */
static char *opt_network_owner;  /* networks: the owner of a network's switch */
static char **opt_forward;       /* qlean start -p HOST:GUEST */

/* What the owner's machine is reached by, for `qlean ls`: its ports
 * forwarded, its address, and the network it joined. */
static void
write_state_network (JsonBuilder *builder)
{
  json_builder_set_member_name (builder, "forwards");
  cli_json_add_forwards (builder, owner_forwards);
  json_builder_set_member_name (builder, "ip");
  cli_json_add_string_or_null (builder, owner_ip);
  json_builder_set_member_name (builder, "network");
  cli_json_add_string_or_null (builder, opt_network);
}

/* The owner's record of its machine in state.json, which `qlean ls`,
 * `qlean exec` and the other commands read (cli_machine_state_read). */
static gboolean
write_state (const char    *dir,
             QleanMachine  *machine,
             const char    *state,
             GError       **error)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  g_autoptr(JsonNode) root = NULL;
  g_autofree char *path = g_build_filename (dir, MACHINE_STATE_FILE, NULL);
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
  write_state_network (builder);
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

/* Port forwards */

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

/* A paused guest cannot hear the power button: the shutdown would wait
 * out its whole timeout. */
static void
resume_if_paused (QleanMachine *machine)
{
  if (qlean_machine_get_state (machine) == QLEAN_MACHINE_STATE_PAUSED)
    qlean_machine_resume (machine, NULL, NULL);
}

static gboolean
owner_signal_cb (gpointer user_data)
{
  Owner *owner = user_data;

  if (!owner->stopping)
    {
      owner->stopping = TRUE;
      resume_if_paused (owner->machine);
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

/* The admin socket (qlean-cli-lifecycle.c) tells of state changes it
 * made: pause, resume, restore. */
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

/* The machine the owner is to hold: qlean import and qlean clone start
 * from an archive, which gives a running machine when it holds a state;
 * qlean start makes the one its options describe. */
static QleanMachine *
owner_make_machine (const char  *name,
                    GError     **error)
{
  if (opt_from_archive != NULL)
    return owner_import_machine (name, opt_from_archive,
                                 opt_trust_extra_args ? QLEAN_IMPORT_FLAGS_TRUST_EXTRA_ARGS
                                                      : QLEAN_IMPORT_FLAGS_NONE,
                                 error);
  return machine_from_options (name, error);
}

/* qlean start --network: the machine takes its address on the shared
 * switch before it boots, and gives it back whenever this owner ends
 * (owner_leave_network). Takes @plain; returns the same machine on the
 * network, or NULL. */
static QleanMachine *
owner_join_network (QleanMachine  *plain,
                    const char    *name,
                    GError       **error)
{
  g_autoptr(QleanNetwork) network = cli_network_join (opt_network, name, NULL, error);
  QleanMachine *machine = NULL;

  if (network != NULL)
    machine = g_object_new (QLEAN_TYPE_MACHINE,
                            "name", name,
                            "image", qlean_machine_get_image (plain),
                            "config", qlean_machine_get_config (plain),
                            "network", network,
                            NULL);
  g_object_unref (plain);
  return machine;
}

/* The machine is gone, or never came to run: its address is free, and
 * it may have been the network's last. */
static void
owner_leave_network (QleanMachine *machine,
                     const char   *network_name,
                     const char   *name)
{
  if (machine != NULL)
    qlean_machine_kill (machine, NULL, NULL);
  cli_network_leave (network_name, name);
}

/* Brings the owner's machine to where `qlean start` may return: booted
 * for the first time (cloud-init, where the image has it; an imported
 * machine runs already), shared on @socket_path, its ports forwarded,
 * and noted running in @dir. */
static gboolean
owner_bring_up (QleanMachine  *machine,
                const char    *dir,
                const char    *socket_path,
                GError       **error)
{
  return (qlean_machine_get_state (machine) == QLEAN_MACHINE_STATE_RUNNING ||
          qlean_machine_initialize (machine, NULL, error)) &&
         qlean_machine_share (machine, socket_path, error) &&
         owner_forward_ports (machine, error) &&
         write_state (dir, machine, "running", error);
}

/* The admin socket of qlean pause, resume, snapshot, restore and export;
 * without it the machine still runs, and qlean exec still reaches it. */
static OwnerAdmin *
owner_start_admin (Owner      *owner,
                   const char *socket_path)
{
  g_autoptr(GError) error = NULL;
  OwnerAdmin *admin;

  admin = owner_admin_start (owner->machine, owner->dir, socket_path, owner_admin_update, owner, &error);
  if (admin == NULL)
    g_printerr ("qlean: %s; pause, snapshot, clone and export will not work\n", error->message);
  return admin;
}

/* The owner: this process holds the machine until told to stop. */
static int
run_owner (const char *name,
           const char *dir)
{
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GMainLoop) loop = NULL;
  g_autofree char *socket_path = g_build_filename (dir, MACHINE_SOCKET_FILE, NULL);
  Owner owner = { 0 };
  guint signal_ids[3];
  OwnerAdmin *admin = NULL;
  const char *network_name = opt_network;

  machine = owner_make_machine (name, &error);
  if (machine == NULL)
    network_name = NULL;
  if (machine != NULL && opt_network != NULL && opt_from_archive == NULL)
    {
      machine = owner_join_network (g_steal_pointer (&machine), name, &error);
      if (machine == NULL)
        network_name = NULL;
    }
  if (machine == NULL || !owner_bring_up (machine, dir, socket_path, &error))
    {
      g_autofree char *message = g_strdup_printf ("%s\n", error->message);

      /* Gone before `qlean start` returns. */
      if (network_name != NULL)
        owner_leave_network (machine, network_name, name);
      report_ready (message);
      g_printerr ("qlean: %s", message);
      if (machine != NULL)
        qlean_machine_kill (machine, NULL, NULL);
      cli_machine_dir_remove (dir);
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
  admin = owner_start_admin (&owner, socket_path);

  report_ready ("ok\n");
  g_main_loop_run (loop);
  owner_admin_stop (admin);

  for (guint i = 0; i < G_N_ELEMENTS (signal_ids); i++)
    g_source_remove (signal_ids[i]);
  g_signal_handlers_disconnect_by_data (machine, &owner);

  if (network_name != NULL)
    owner_leave_network (machine, network_name, name);

  /* A crashed machine's entry stays for `qlean ls` to show; a stopped
   * one goes. */
  if (owner.status == 0 || owner.stopping)
    cli_machine_dir_remove (dir);

  return owner.status;
}

/* The ports the owner picked for HOST 0 are news even with --quiet. */
static void
print_forwards (const char *dir,
                const char *name)
{
  g_autoptr(MachineState) state = cli_machine_state_read (dir);

  for (guint i = 0; state != NULL && i < state->forwards->len; i++)
    {
      guint32 pair = g_array_index (state->forwards, guint32, i);

      g_print (_("127.0.0.1:%u forwards to port %u of %s\n"), pair >> 16, pair & 0xffff, name);
    }
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
  g_autofree char *log = g_build_filename (dir, MACHINE_LOG_FILE, NULL);
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
      cli_machine_dir_remove (dir);
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
  print_forwards (dir, name);
  return 0;
}

/* What --network and --bridge need. */
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

/* What --network, --bridge and --forward ask for, checked before
 * anything is made: 0, or the exit status once told why not. */
static int
check_start_options (const char *name)
{
  g_autoptr(GError) error = NULL;

  if (!check_network_options (name, &error))
    {
      print_error ("start", error);
      return g_error_matches (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE) ? EXIT_USAGE : EXIT_FAILED;
    }
  if (!parse_forwards (&error))
    {
      print_error ("start", error);
      return EXIT_USAGE;
    }

  return 0;
}

/* Makes machine @name's directory @dir, taking over what a dead owner
 * left there: 0, or the exit status when a machine of that name runs or
 * the directory cannot be made. */
static int
claim_machine_dir (const char *name,
                   const char *dir)
{
  g_autoptr(MachineState) old = NULL;

  if (g_mkdir (dir, 0700) == 0)
    return 0;

  old = cli_machine_state_read (dir);
  if (old != NULL && g_str_equal (old->state, "running"))
    {
      g_printerr (_("qlean start: a machine named %s is already running (owner pid %" G_GINT64_FORMAT ")\n"),
                  name, old->owner);
      return EXIT_FAILED;
    }
  /* What a dead owner left behind is ours to reuse. */
  cli_machine_dir_remove (dir);
  if (g_mkdir (dir, 0700) != 0)
    {
      g_printerr (_("qlean start: cannot create %s: %s\n"), dir, g_strerror (errno));
      return EXIT_FAILED;
    }

  return 0;
}

int
cmd_start (int    argc,
           char **argv)
{
  static GOptionEntry extra[] = {
    { "foreground", 0, 0, G_OPTION_ARG_NONE, &opt_foreground,
      N_("Stay in the foreground and own the machine until SIGTERM"), NULL },
    { "ready-fd", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_INT, &opt_ready_fd, NULL, NULL },
    /* qlean import FILE NAME is start --from-archive=FILE NAME (qlean-cli-lifecycle.c) */
    { "from-archive", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_FILENAME, &opt_from_archive, NULL, NULL },
    { "trust-extra-args", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_NONE, &opt_trust_extra_args, NULL, NULL },
    { "kept-by", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_STRING, &opt_kept_by, NULL, NULL },
    { "forward", 'p', 0, G_OPTION_ARG_STRING_ARRAY, &opt_forward,
      N_("Forward port HOST of 127.0.0.1 to port GUEST of the machine (repeatable; HOST 0 picks a free port)"),
      N_("HOST:GUEST") },
    /* Networks (qlean-cli-network.c) */
    { "network", 'n', 0, G_OPTION_ARG_STRING, &opt_network,
      N_("Join the machine to network NAME, shared with the other machines started with it"),
      N_("NAME") },
    { "network-owner", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_STRING, &opt_network_owner, NULL, NULL },
    { NULL }
  };
  g_autofree GOptionEntry *all = cli_machine_entries_with (extra);
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = NULL;
  int original_argc = argc;
  g_auto(GStrv) original_argv = g_strdupv (argv);
  int status;

  if (!parse_options ("start", _("NAME"),
                      _("Boot a machine that stays up after this command returns. It returns once\n"
                        "the guest agent answers; “qlean exec NAME -- CMD” runs commands in it and\n"
                        "“qlean stop NAME” shuts it down."),
                      all, &argc, &argv, &status))
    return status;

  /* The hidden owner of a network (qlean-cli-network.c). */
  if (opt_network_owner != NULL)
    return cli_network_owner_run (opt_network_owner, opt_ready_fd);

  if (argc != 2)
    {
      g_printerr (_("qlean start: give exactly one machine name\nTry “qlean start --help”.\n"));
      return EXIT_USAGE;
    }

  status = check_start_options (argv[1]);
  if (status != 0)
    return status;

  dir = cli_machine_dir (argv[1], &error);
  if (dir == NULL)
    {
      print_error ("start", error);
      return EXIT_USAGE;
    }

  /* A catalog or URL image is downloaded here, where its progress shows;
   * the owner finds it in the cache. */
  if (!opt_foreground && opt_from_archive == NULL && !cli_pull_image_option (&error))
    {
      print_error ("start", error);
      return EXIT_FAILED;
    }

  if (opt_foreground)
    {
      /* The starting process made the directory; a user running
       * --foreground by hand may not have. */
      g_mkdir (dir, 0700);
      return run_owner (argv[1], dir);
    }

  status = claim_machine_dir (argv[1], dir);
  if (status != 0)
    return status;

  return start_owner (original_argc, original_argv, argv[1], dir);
}
