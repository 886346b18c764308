/* qlean-cli-machines.c: where machines that outlive one command are kept
 *
 * SPDX-License-Identifier: MIT
 *
 * Each machine of `qlean start` has a directory RUNBASE/machines/NAME
 * holding state.json, ctl.sock and owner.log, made and written by its
 * owner process (qlean-cli-start.c). This file reads them for every
 * other command: it finds a machine by name, tells why one cannot be
 * reached, attaches to it, and holds the two commands that only read and
 * clear the directory, `qlean ls` and `qlean stop`.
 */

#include "config.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>

#include "qlean-cli-private.h"
#include "qlean-errno-private.h"

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

char *
cli_machine_dir (const char  *name,
                 GError     **error)
{
  g_autofree char *dir = NULL;

  if (!valid_name (name, error) || (dir = machines_dir (error)) == NULL)
    return NULL;

  return g_build_filename (dir, name, NULL);
}

void
cli_machine_state_free (MachineState *state)
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

/* A string member of @object that may be missing or null. */
static char *
dup_optional_string (JsonObject *object,
                     const char *member)
{
  if (json_object_has_member (object, member) &&
      JSON_NODE_HOLDS_VALUE (json_object_get_member (object, member)))
    return g_strdup (json_object_get_string_member (object, member));
  return NULL;
}

/* The ports the owner forwards, as cli_json_add_forwards() wrote them. */
static GArray *
read_forwards (JsonObject *object)
{
  GArray *pairs = g_array_new (FALSE, FALSE, sizeof (guint32));
  JsonArray *forwards;

  if (!json_object_has_member (object, "forwards") ||
      !JSON_NODE_HOLDS_ARRAY (json_object_get_member (object, "forwards")))
    return pairs;

  forwards = json_object_get_array_member (object, "forwards");
  for (guint i = 0; i < json_array_get_length (forwards); i++)
    {
      JsonNode *node = json_array_get_element (forwards, i);
      JsonObject *forward = JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
      guint32 pair;

      if (forward == NULL)
        continue;
      pair = (guint32) (json_object_get_int_member_with_default (forward, "host-port", 0) & 0xffff) << 16 |
             (guint32) (json_object_get_int_member_with_default (forward, "guest-port", 0) & 0xffff);
      g_array_append_val (pairs, pair);
    }

  return pairs;
}

/* What state.json says is not all true when its writer is gone: the
 * state, the forwards and the address are checked against what runs. */
static void
check_state_against_processes (MachineState *state)
{
  /* A state file nobody updates any more tells of an owner that died. */
  if ((g_str_equal (state->state, "running") || g_str_equal (state->state, "paused")) &&
      !cli_process_alive (state->owner))
    {
      g_free (state->state);
      state->state = g_strdup ("owner-died");
    }

  /* Port forwards live in the owner, on the running machine: a crashed
   * machine or a dead owner has none. */
  if (!g_str_equal (state->state, "running") && !g_str_equal (state->state, "paused"))
    g_array_set_size (state->forwards, 0);

  /* A network whose owner died (its switch with it) no longer carries
   * the machine's address. */
  if (state->network != NULL && !g_str_equal (state->state, "stopped") &&
      !cli_network_has_member (state->network, state->name, state->owner))
    {
      state->network_down = TRUE;
      g_clear_pointer (&state->ip, g_free);
    }
}

MachineState *
cli_machine_state_read (const char *dir)
{
  g_autofree char *path = g_build_filename (dir, MACHINE_STATE_FILE, NULL);
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
  state->forwards = read_forwards (object);
  state->ip = dup_optional_string (object, "ip");
  state->network = dup_optional_string (object, "network");
  state->reason = dup_optional_string (object, "reason");
  state->kept_by = dup_optional_string (object, "kept-by");

  check_state_against_processes (state);

  return state;
}

/* The forwards of state.json: host port << 16 | guest port each, as
 * objects with host-port and guest-port. @forwards may be NULL (none). */
void
cli_json_add_forwards (JsonBuilder *builder,
                       GArray      *forwards)
{
  json_builder_begin_array (builder);
  for (guint i = 0; forwards != NULL && i < forwards->len; i++)
    {
      guint32 pair = g_array_index (forwards, guint32, i);

      json_builder_begin_object (builder);
      json_builder_set_member_name (builder, "host-port");
      json_builder_add_int_value (builder, pair >> 16);
      json_builder_set_member_name (builder, "guest-port");
      json_builder_add_int_value (builder, pair & 0xffff);
      json_builder_end_object (builder);
    }
  json_builder_end_array (builder);
}

/* Removes the files a machine's owner makes in @dir, then @dir: nothing
 * else, as anything else there is not ours. Returns whether @dir is
 * gone, with errno set when not. */
gboolean
cli_machine_dir_remove (const char *dir)
{
  static const char * const files[] = {
    MACHINE_STATE_FILE, MACHINE_SOCKET_FILE, MACHINE_LOG_FILE, ADMIN_SOCKET_FILE
  };

  for (guint i = 0; i < G_N_ELEMENTS (files); i++)
    {
      g_autofree char *path = g_build_filename (dir, files[i], NULL);

      g_unlink (path);
    }
  return g_rmdir (dir) == 0;
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
  g_autofree char *dir = cli_machine_dir (name, NULL);
  gint64 deadline = g_get_monotonic_time () + LOST_WAIT_MS * G_TIME_SPAN_MILLISECOND;

  if (dir == NULL)
    return FALSE;

  for (;;)
    {
      g_autoptr(MachineState) state = cli_machine_state_read (dir);
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
gboolean
cli_is_lost_machine (const GError *error)
{
  return g_error_matches (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_CRASHED);
}

/* Why machine @name, as @state has it, cannot be attached to: FALSE
 * and @error, or TRUE when it runs. */
static gboolean
check_attachable (const char    *name,
                  MachineState  *state,
                  GError       **error)
{
  /* qlean pause (qlean-cli-lifecycle.c) */
  if (g_str_equal (state->state, "paused"))
    {
      g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE,
                   _("Machine %s is paused; “qlean resume %s” lets it run"), name, name);
      return FALSE;
    }
  if (g_str_equal (state->state, "crashed") || g_str_equal (state->state, "owner-died"))
    {
      g_propagate_error (error, machine_gone_error (name, state));
      return FALSE;
    }
  if (!g_str_equal (state->state, "running"))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   _("Machine %s is %s; “qlean stop %s” clears it"), name, state->state, name);
      return FALSE;
    }

  return TRUE;
}

QleanMachine *
cli_machine_attach_by_name (const char  *name,
                            GError     **error)
{
  g_autofree char *dir = cli_machine_dir (name, error);
  g_autofree char *socket_path = NULL;
  g_autoptr(MachineState) state = NULL;

  if (dir == NULL)
    return NULL;

  state = cli_machine_state_read (dir);
  if (state == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   _("No machine named %s; start one with “qlean start %s”"), name, name);
      return NULL;
    }
  if (!check_attachable (name, state, error))
    return NULL;

  socket_path = g_build_filename (dir, MACHINE_SOCKET_FILE, NULL);
  return qlean_machine_attach (name, socket_path, NULL, error);
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
      g_autofree char *dir = cli_machine_dir (argv[i], &error);
      g_autoptr(MachineState) state = NULL;
      gint64 deadline;

      if (dir == NULL)
        {
          print_error ("stop", error);
          g_clear_error (&error);
          result = EXIT_USAGE;
          continue;
        }

      state = cli_machine_state_read (dir);
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

      cli_machine_dir_remove (dir);
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

/* Every machine of RUNBASE/machines, by name. */
static GPtrArray *
read_all_states (const char *dir)
{
  GPtrArray *states = g_ptr_array_new_with_free_func ((GDestroyNotify) cli_machine_state_free);
  g_autoptr(GDir) listing = g_dir_open (dir, 0, NULL);
  const char *entry;

  while (listing != NULL && (entry = g_dir_read_name (listing)) != NULL)
    {
      g_autofree char *path = g_build_filename (dir, entry, NULL);
      MachineState *state = cli_machine_state_read (path);

      if (state != NULL)
        g_ptr_array_add (states, state);
    }
  g_ptr_array_sort (states, compare_states);

  return states;
}

/* One machine of qlean ls --json. */
static void
add_state_json (JsonBuilder  *builder,
                MachineState *state,
                gint64        now)
{
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
  json_builder_set_member_name (builder, "ip");
  cli_json_add_string_or_null (builder, state->ip);
  json_builder_set_member_name (builder, "network");
  cli_json_add_string_or_null (builder, state->network);
  json_builder_set_member_name (builder, "network-down");
  json_builder_add_boolean_value (builder, state->network_down);
  json_builder_set_member_name (builder, "kept-by");
  cli_json_add_string_or_null (builder, state->kept_by);
  json_builder_set_member_name (builder, "forwards");
  cli_json_add_forwards (builder, state->forwards);
  json_builder_end_object (builder);
}

static void
print_states_json (GPtrArray *states,
                   gint64     now)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(JsonNode) root = NULL;

  json_builder_begin_array (builder);
  for (guint i = 0; i < states->len; i++)
    add_state_json (builder, g_ptr_array_index (states, i), now);
  json_builder_end_array (builder);
  root = json_builder_get_root (builder);
  print_json (root);
}

/* The PORTS column: 127.0.0.1:HOST->GUEST,... or "-". */
static char *
format_ports (MachineState *state)
{
  GString *ports = g_string_new (NULL);

  for (guint j = 0; j < state->forwards->len; j++)
    {
      guint32 pair = g_array_index (state->forwards, guint32, j);

      g_string_append_printf (ports, "%s127.0.0.1:%u->%u", j ? "," : "", pair >> 16, pair & 0xffff);
    }
  if (ports->len == 0)
    g_string_append (ports, "-");

  return g_string_free (ports, FALSE);
}

static void
print_states_table (GPtrArray *states,
                    gint64     now)
{
  g_print ("%-20s %-11s %8s %-12s %-7s %-15s %-12s %s\n", _("NAME"), _("STATE"), _("PID"), _("IMAGE"),
           _("UPTIME"), _("IP"), _("NETWORK"), _("PORTS"));
  for (guint i = 0; i < states->len; i++)
    {
      MachineState *state = g_ptr_array_index (states, i);
      g_autofree char *uptime = format_uptime (state->started ? now - state->started : 0);
      g_autofree char *ports = format_ports (state);
      g_autofree char *network = state->network_down ? g_strdup_printf (_("%s(down)"), state->network)
                                                     : g_strdup (state->network ? state->network : "-");

      g_print ("%-20s %-11s %8" G_GINT64_FORMAT " %-12s %-7s %-15s %-12s %s\n", state->name, state->state,
               state->owner, state->image, uptime, state->ip ? state->ip : "-", network, ports);
      if (state->kept_by != NULL)
        g_print (_("  kept by %s; “qlean stop %s” or “qlean gc --kept” ends it\n"), state->kept_by,
                 state->name);
    }
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
  g_autoptr(GPtrArray) states = NULL;
  g_autofree char *dir = NULL;
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
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

  states = read_all_states (dir);
  if (json)
    print_states_json (states, now);
  else
    print_states_table (states, now);

  return 0;
}
