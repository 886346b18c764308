/* qlean-cli-lifecycle.c: pause, resume, snapshot, restore, clone, export
 * and import of started machines
 *
 * SPDX-License-Identifier: MIT
 *
 * A started machine belongs to its owner process (qlean-cli-start.c);
 * others reach its guest through ctl.sock but cannot touch QEMU. So the
 * owner also listens on ctl-admin.sock in the machine's directory (mode
 * 0600 in a 0700 directory: this user only) for one request per
 * connection, a line of JSON, and answers with one:
 *
 *   {"op": "pause"}                        {"ok": true}
 *   {"op": "resume"}                       {"ok": false, "error": "message"}
 *   {"op": "snapshot", "name": "SNAP"}
 *   {"op": "restore", "name": "SNAP"}
 *   {"op": "export", "path": "/abs/file"}
 *   {"op": "state"}                        {"ok": true, "state": "paused"}
 *
 * one at a time. A clone is an export to a temporary archive that a new
 * owner imports (`qlean start --from-archive`), so it is a machine of its
 * own with its own owner; `qlean import` is that second half alone.
 */

#include "config.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <gio/gunixsocketaddress.h>

#include "qlean-cli-private.h"
#include "qlean-errno-private.h"

#define MAX_LINE 4096

/* The owner's side */

struct _OwnerAdmin
{
  QleanMachine     *machine;
  char             *share_path;
  char             *path;
  GSocketService   *service;
  OwnerAdminUpdate  update;
  gpointer          update_data;
  gboolean          busy;
};

typedef struct
{
  OwnerAdmin        *admin;
  GSocketConnection *connection;
  char               buffer[MAX_LINE];
  gsize              len;
  char              *reply;
} Request;

static void
request_free (Request *request)
{
  g_clear_object (&request->connection);
  g_free (request->reply);
  g_free (request);
}

static void
request_written_cb (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  Request *request = user_data;

  g_output_stream_write_all_finish (G_OUTPUT_STREAM (source), result, NULL, NULL);
  g_io_stream_close (G_IO_STREAM (request->connection), NULL, NULL);
  request_free (request);
}

static void
request_reply (Request     *request,
               const char  *state,
               GError      *error)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  g_autoptr(JsonNode) root = NULL;
  g_autofree char *text = NULL;
  GOutputStream *output = g_io_stream_get_output_stream (G_IO_STREAM (request->connection));

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "ok");
  json_builder_add_boolean_value (builder, error == NULL);
  if (error != NULL)
    {
      json_builder_set_member_name (builder, "error");
      json_builder_add_string_value (builder, error->message);
    }
  if (state != NULL)
    {
      json_builder_set_member_name (builder, "state");
      json_builder_add_string_value (builder, state);
    }
  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  text = json_generator_to_data (generator, NULL);

  request->reply = g_strconcat (text, "\n", NULL);
  g_output_stream_write_all_async (output, request->reply, strlen (request->reply), G_PRIORITY_DEFAULT,
                                   NULL, request_written_cb, request);
}

static const char *
state_word (QleanMachine *machine)
{
  switch (qlean_machine_get_state (machine))
    {
    case QLEAN_MACHINE_STATE_PAUSED: return "paused";
    case QLEAN_MACHINE_STATE_RUNNING: return "running";
    case QLEAN_MACHINE_STATE_STARTING: return "starting";
    case QLEAN_MACHINE_STATE_CRASHED: return "crashed";
    default: return "stopped";
    }
}

/* Ends an operation: the state file follows the machine, and the
 * client hears how it went. Takes @error. */
static void
request_done (Request *request,
              GError  *error)
{
  OwnerAdmin *admin = request->admin;

  admin->busy = FALSE;
  request_reply (request, NULL, error);
  g_clear_error (&error);
}

static void
pause_resume_done (Request  *request,
                   GError   *error)
{
  OwnerAdmin *admin = request->admin;

  admin->update (admin->update_data, state_word (admin->machine));
  request_done (request, error);
}

static void
pause_cb (GObject      *source,
          GAsyncResult *result,
          gpointer      user_data)
{
  GError *error = NULL;

  qlean_machine_pause_finish (QLEAN_MACHINE (source), result, &error);
  pause_resume_done (user_data, error);
}

static void
resume_cb (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  GError *error = NULL;

  qlean_machine_resume_finish (QLEAN_MACHINE (source), result, &error);
  pause_resume_done (user_data, error);
}

static void
snapshot_cb (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  Request *request = user_data;
  GError *error = NULL;

  qlean_machine_snapshot_finish (QLEAN_MACHINE (source), result, &error);
  request_done (request, error);
}

static void
restore_cb (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  Request *request = user_data;
  OwnerAdmin *admin = request->admin;
  GError *error = NULL;

  /* A new QEMU runs the guest: exec and cp reach it through a new
   * relay on the same socket, and the state file names its pid. */
  if (qlean_machine_restore_finish (admin->machine, result, &error))
    {
      g_unlink (admin->share_path);
      qlean_machine_share (admin->machine, admin->share_path, &error);
    }

  if (qlean_machine_get_state (admin->machine) == QLEAN_MACHINE_STATE_RUNNING)
    admin->update (admin->update_data, "running");
  else
    admin->update (admin->update_data, "crashed");
  request_done (request, error);
}

static void
export_cb (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  Request *request = user_data;
  GError *error = NULL;

  qlean_machine_export_finish (QLEAN_MACHINE (source), result, &error);
  request_done (request, error);
}

static void
request_handle (Request *request)
{
  OwnerAdmin *admin = request->admin;
  g_autoptr(JsonParser) parser = json_parser_new ();
  JsonObject *object;
  const char *op, *name, *path;
  GError *error = NULL;

  if (!json_parser_load_from_data (parser, request->buffer, request->len, &error) ||
      !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    {
      g_clear_error (&error);
      error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_INVALID_DATA, _("The request is not a JSON object"));
      request_reply (request, NULL, error);
      g_error_free (error);
      return;
    }

  object = json_node_get_object (json_parser_get_root (parser));
  op = json_object_get_string_member_with_default (object, "op", "");
  name = json_object_get_string_member_with_default (object, "name", NULL);
  path = json_object_get_string_member_with_default (object, "path", NULL);

  if (g_str_equal (op, "state"))
    {
      request_reply (request, state_word (admin->machine), NULL);
      return;
    }

  if (admin->busy)
    {
      error = g_error_new_literal (G_IO_ERROR, G_IO_ERROR_BUSY,
                                   _("The machine is busy with another request; try again when it is done"));
      request_reply (request, NULL, error);
      g_error_free (error);
      return;
    }

  admin->busy = TRUE;
  if (g_str_equal (op, "pause"))
    qlean_machine_pause_async (admin->machine, NULL, pause_cb, request);
  else if (g_str_equal (op, "resume"))
    qlean_machine_resume_async (admin->machine, NULL, resume_cb, request);
  else if (g_str_equal (op, "snapshot") && name != NULL)
    qlean_machine_snapshot_async (admin->machine, name, NULL, snapshot_cb, request);
  else if (g_str_equal (op, "restore") && name != NULL)
    qlean_machine_restore_async (admin->machine, name, NULL, restore_cb, request);
  else if (g_str_equal (op, "export") && path != NULL && g_path_is_absolute (path))
    {
      g_autoptr(GFile) file = g_file_new_for_path (path);

      qlean_machine_export_async (admin->machine, file, NULL, export_cb, request);
    }
  else
    request_done (request, g_error_new (G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                                        _("Unknown or incomplete request “%s”"), op));
}

static void
request_read_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  Request *request = user_data;
  gssize n = g_input_stream_read_finish (G_INPUT_STREAM (source), result, NULL);
  char *newline;

  if (n <= 0)
    {
      request_free (request);
      return;
    }

  request->len += n;
  newline = memchr (request->buffer, '\n', request->len);
  if (newline != NULL)
    {
      request->len = newline - request->buffer;
      request_handle (request);
      return;
    }
  if (request->len == sizeof request->buffer)
    {
      request_free (request);
      return;
    }

  g_input_stream_read_async (G_INPUT_STREAM (source), request->buffer + request->len,
                             sizeof request->buffer - request->len, G_PRIORITY_DEFAULT, NULL,
                             request_read_cb, request);
}

static gboolean
admin_incoming_cb (GSocketService    *service,
                   GSocketConnection *connection,
                   GObject           *source_object,
                   gpointer           user_data)
{
  Request *request = g_new0 (Request, 1);

  request->admin = user_data;
  request->connection = g_object_ref (connection);
  g_input_stream_read_async (g_io_stream_get_input_stream (G_IO_STREAM (connection)),
                             request->buffer, sizeof request->buffer, G_PRIORITY_DEFAULT, NULL,
                             request_read_cb, request);
  return TRUE;
}

OwnerAdmin *
owner_admin_start (QleanMachine      *machine,
                   const char        *dir,
                   const char        *share_path,
                   OwnerAdminUpdate   update,
                   gpointer           update_data,
                   GError           **error)
{
  g_autoptr(GSocketAddress) address = NULL;
  OwnerAdmin *admin = g_new0 (OwnerAdmin, 1);

  admin->machine = g_object_ref (machine);
  admin->share_path = g_strdup (share_path);
  admin->path = g_build_filename (dir, ADMIN_SOCKET_FILE, NULL);
  admin->update = update;
  admin->update_data = update_data;
  admin->service = g_socket_service_new ();

  g_unlink (admin->path);
  address = g_unix_socket_address_new (admin->path);
  if (!g_socket_listener_add_address (G_SOCKET_LISTENER (admin->service), address,
                                      G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT,
                                      NULL, NULL, error) ||
      g_chmod (admin->path, 0600) != 0)
    {
      if (error != NULL && *error == NULL)
        qlean_set_error_from_errno (error, errno,
                                    _("Cannot listen on %s"), admin->path);
      owner_admin_stop (admin);
      return NULL;
    }

  g_signal_connect (admin->service, "incoming", G_CALLBACK (admin_incoming_cb), admin);
  g_socket_service_start (admin->service);
  return admin;
}

void
owner_admin_stop (OwnerAdmin *admin)
{
  if (admin == NULL)
    return;

  g_socket_service_stop (admin->service);
  g_socket_listener_close (G_SOCKET_LISTENER (admin->service));
  g_signal_handlers_disconnect_by_data (admin->service, admin);
  g_clear_object (&admin->service);
  g_unlink (admin->path);
  g_clear_object (&admin->machine);
  g_free (admin->share_path);
  g_free (admin->path);
  g_free (admin);
}

QleanMachine *
owner_import_machine (const char        *name,
                      const char        *archive_path,
                      QleanImportFlags   flags,
                      GError           **error)
{
  g_autoptr(GFile) archive = g_file_new_for_path (archive_path);

  return qlean_machine_import_full (archive, name, NULL, flags, NULL, error);
}

/* The client's side */

static gboolean
admin_call (const char  *command,
            const char  *machine,
            JsonObject  *request,
            char       **state,
            GError     **error)
{
  g_autofree char *dir = cli_machine_dir (machine, error);
  g_autofree char *path = NULL;
  g_autofree char *state_path = NULL;
  g_autofree char *line = NULL;
  g_autofree char *text = NULL;
  g_autoptr(GSocketClient) client = NULL;
  g_autoptr(GSocketAddress) address = NULL;
  g_autoptr(GSocketConnection) connection = NULL;
  g_autoptr(GDataInputStream) input = NULL;
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  g_autoptr(JsonNode) node = json_node_new (JSON_NODE_OBJECT);
  g_autoptr(JsonParser) parser = json_parser_new ();
  JsonObject *reply;
  gsize len;

  if (dir == NULL)
    return FALSE;

  path = g_build_filename (dir, ADMIN_SOCKET_FILE, NULL);
  state_path = g_build_filename (dir, MACHINE_STATE_FILE, NULL);
  if (!g_file_test (state_path, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   _("No machine named %s; start one with “qlean start %s”"), machine, machine);
      return FALSE;
    }

  client = g_socket_client_new ();
  address = g_unix_socket_address_new (path);
  connection = g_socket_client_connect (client, G_SOCKET_CONNECTABLE (address), NULL, error);
  if (connection == NULL)
    {
      /* A crashed machine's owner is gone, and so is a dead one. */
      if (!cli_explain_lost_machine (machine, error))
        g_prefix_error (error, _("The owner of %s does not answer (see “qlean ls”): "), machine);
      return FALSE;
    }

  json_node_set_object (node, request);
  json_generator_set_root (generator, node);
  text = json_generator_to_data (generator, &len);
  if (!g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (connection)),
                                  text, len, NULL, NULL, error) ||
      !g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (connection)),
                                  "\n", 1, NULL, NULL, error))
    {
      cli_explain_lost_machine (machine, error);
      return FALSE;
    }

  input = g_data_input_stream_new (g_io_stream_get_input_stream (G_IO_STREAM (connection)));
  line = g_data_input_stream_read_line (input, &len, NULL, error);
  if (line == NULL)
    {
      if (error != NULL && *error == NULL)
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_CLOSED,
                     _("The owner of %s closed the connection without an answer"), machine);
      /* It ends when the machine crashes or the owner dies meanwhile. */
      cli_explain_lost_machine (machine, error);
      return FALSE;
    }

  if (!json_parser_load_from_data (parser, line, len, NULL) ||
      !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   _("The owner of %s answered nonsense: %s"), machine, line);
      return FALSE;
    }

  reply = json_node_get_object (json_parser_get_root (parser));
  if (!json_object_get_boolean_member_with_default (reply, "ok", FALSE))
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                           json_object_get_string_member_with_default (reply, "error", _("failed")));
      return FALSE;
    }

  if (state != NULL)
    *state = g_strdup (json_object_get_string_member_with_default (reply, "state", ""));
  return TRUE;
}

static JsonObject *
request_new (const char *op,
             const char *key,
             const char *value)
{
  JsonObject *object = json_object_new ();

  json_object_set_string_member (object, "op", op);
  if (key != NULL)
    json_object_set_string_member (object, key, value);
  return object;
}

/* The exit status of a request that failed with @error: 125 when the
 * machine crashed or its owner died, as for exec and cp. */
static int
failed_status (const GError *error)
{
  return g_error_matches (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_CRASHED)
         ? EXIT_MACHINE : EXIT_FAILED;
}

/* A command NAME [ARG] that sends one request. */
static int
simple_command (const char  *command,
                const char  *parameters,
                const char  *summary,
                int          n_args,
                const char  *key,
                int          argc,
                char       **argv,
                const char  *done_format)
{
  g_autoptr(JsonObject) request = NULL;
  g_autoptr(GError) error = NULL;
  int status;

  if (!parse_options (command, parameters, summary, NULL, &argc, &argv, &status))
    return status;

  if (argc != n_args + 1)
    {
      g_printerr (_("qlean %s: give %s\nTry “qlean %s --help”.\n"), command, parameters, command);
      return EXIT_USAGE;
    }

  request = request_new (command, key, key ? argv[2] : NULL);
  if (!admin_call (command, argv[1], request, NULL, &error))
    {
      print_error (command, error);
      return failed_status (error);
    }

  if (!cli_is_quiet ())
    {
      g_print (done_format, argv[1], n_args > 1 ? argv[2] : "");
      g_print ("\n");
    }
  return 0;
}

int
cmd_pause (int    argc,
           char **argv)
{
  return simple_command ("pause", _("NAME"),
                         _("Stop the CPUs of a machine started with “qlean start”; it uses no CPU\n"
                           "and refuses commands until “qlean resume NAME”."),
                         1, NULL, argc, argv, _("%s paused%s"));
}

int
cmd_resume (int    argc,
            char **argv)
{
  return simple_command ("resume", _("NAME"),
                         _("Let a paused machine run again, with its clock set from the host's."),
                         1, NULL, argc, argv, _("%s resumed%s"));
}

int
cmd_snapshot (int    argc,
              char **argv)
{
  return simple_command ("snapshot", _("NAME SNAPSHOT"),
                         _("Save the whole state of a started machine, memory included, as\n"
                           "SNAPSHOT (replacing one of that name); “qlean restore NAME SNAPSHOT”\n"
                           "brings it back. Snapshots go away with the machine."),
                         2, "name", argc, argv, _("%s: snapshot %s saved"));
}

int
cmd_restore (int    argc,
             char **argv)
{
  return simple_command ("restore", _("NAME SNAPSHOT"),
                         _("Bring a started machine back to SNAPSHOT: everything since is gone,\n"
                           "the guest clock is set from the host's, and the machine runs on."),
                         2, "name", argc, argv, _("%s restored to %s"));
}

static char *
absolute_path (const char *arg)
{
  g_autoptr(GFile) file = g_file_new_for_commandline_arg (arg);

  return g_file_get_path (file);
}

int
cmd_export (int    argc,
            char **argv)
{
  g_autoptr(JsonObject) request = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *path = NULL;
  int status;

  if (!parse_options ("export", _("NAME FILE"),
                      _("Write a started machine into FILE, one archive that “qlean import”\n"
                        "turns back into a running machine, here or on another host. The\n"
                        "guest stands still while its memory is saved, then runs on."),
                      NULL, &argc, &argv, &status))
    return status;

  if (argc != 3)
    {
      g_printerr (_("qlean export: give a machine name and a file\nTry “qlean export --help”.\n"));
      return EXIT_USAGE;
    }

  path = absolute_path (argv[2]);
  request = request_new ("export", "path", path);
  if (!admin_call ("export", argv[1], request, NULL, &error))
    {
      print_error ("export", error);
      return failed_status (error);
    }

  if (!cli_is_quiet ())
    g_print (_("%s exported to %s\n"), argv[1], path);
  return 0;
}

/* Starts NAME from an archive, as `qlean start` starts a new machine. */
static int
start_from_archive (const char *archive,
                    const char *name,
                    gboolean    trust_extra_args,
                    const char *kept_by)
{
  g_autofree char *option = g_strconcat ("--from-archive=", archive, NULL);
  g_autofree char *kept_option = kept_by ? g_strconcat ("--kept-by=", kept_by, NULL) : NULL;
  g_autoptr(GPtrArray) args = g_ptr_array_new ();

  g_ptr_array_add (args, (char *) "start");
  g_ptr_array_add (args, option);
  if (trust_extra_args)
    g_ptr_array_add (args, (char *) "--trust-extra-args");
  if (kept_option != NULL)
    g_ptr_array_add (args, kept_option);
  g_ptr_array_add (args, (char *) name);
  g_ptr_array_add (args, NULL);

  return cmd_start (args->len - 1, (char **) args->pdata);
}

int
cmd_import (int    argc,
            char **argv)
{
  static gboolean trust_extra_args;
  static char *kept_by;
  static GOptionEntry entries[] = {
    { "trust-extra-args", 0, 0, G_OPTION_ARG_NONE, &trust_extra_args,
      N_("Use the archive's extra QEMU arguments, which can give the guest any host file"), NULL },
    { "kept-by", 0, 0, G_OPTION_ARG_STRING, &kept_by,
      N_("Note that WHO kept this machine (a failed test): “qlean ls” shows it and “qlean gc --kept” "
         "stops it"), N_("WHO") },
    { NULL }
  };
  g_autofree char *path = NULL;
  int status;

  if (!parse_options ("import", _("FILE NAME"),
                      _("Start machine NAME from an archive made by “qlean export”. It runs on\n"
                        "from the moment of the export, with its own hostname and machine-id,\n"
                        "owned like a machine of “qlean start”. The archive is checked first\n"
                        "(checksums, nothing but its own files) and refused whole otherwise.\n"
                        "An archive with extra QEMU arguments is refused unless\n"
                        "--trust-extra-args is given."),
                      entries, &argc, &argv, &status))
    return status;

  if (argc != 3)
    {
      g_printerr (_("qlean import: give an archive and a machine name\nTry “qlean import --help”.\n"));
      return EXIT_USAGE;
    }

  path = absolute_path (argv[1]);
  if (!g_file_test (path, G_FILE_TEST_IS_REGULAR))
    {
      g_printerr (_("qlean import: %s is not a file\n"), argv[1]);
      return EXIT_FAILED;
    }

  return start_from_archive (path, argv[2], trust_extra_args, kept_by);
}

int
cmd_clone (int    argc,
           char **argv)
{
  g_autoptr(JsonObject) request = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *new_dir = NULL;
  g_autofree char *parent = NULL;
  g_autofree char *archive = NULL;
  g_autofree char *file = NULL;
  int status;

  if (!parse_options ("clone", _("NAME NEW"),
                      _("Start NEW as a copy of the started machine NAME, running from NAME's\n"
                        "state of this moment, with its own hostname and machine-id and its own\n"
                        "owner. NAME stands still for a moment and runs on; what either writes\n"
                        "afterwards, the other never sees."),
                      NULL, &argc, &argv, &status))
    return status;

  if (argc != 3)
    {
      g_printerr (_("qlean clone: give a machine name and a new name\nTry “qlean clone --help”.\n"));
      return EXIT_USAGE;
    }

  new_dir = cli_machine_dir (argv[2], &error);
  if (new_dir == NULL)
    {
      print_error ("clone", error);
      return EXIT_USAGE;
    }

  /* Beside the machines' directories; machine names cannot start with
   * a dot, so this is nobody's. */
  parent = g_path_get_dirname (new_dir);
  file = g_strdup_printf (".clone-%s-%08x.qlean", argv[2], g_random_int ());
  archive = g_build_filename (parent, file, NULL);

  request = request_new ("export", "path", archive);
  if (!admin_call ("clone", argv[1], request, NULL, &error))
    {
      print_error ("clone", error);
      g_unlink (archive);
      return failed_status (error);
    }

  /* The new owner has imported it by the time it reports ready. The
   * archive is NAME's own, just written: its QEMU arguments are NAME's. */
  status = start_from_archive (archive, argv[2], TRUE, NULL);
  g_unlink (archive);
  return status;
}
