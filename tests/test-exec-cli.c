/* test-exec-cli.c: the `qlean start/exec/ls/stop` cycle, on real QEMU
 *
 * SPDX-License-Identifier: MIT
 *
 * Apart from test-exec.c because it drives the built `qlean` command and
 * boots its own machine through it, where the rest of test-exec uses the
 * library on one shared machine.
 */

#include "config.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <json-glib/json-glib.h>

#include <qlean/qlean.h>
#include "test-common.h"
#include "test-exec.h"
#include "qlean-util-private.h"

/* The command line: qlean start/exec/ls/stop */

static char *
cli_path (void)
{
  return g_test_build_filename (G_TEST_BUILT, "..", "tools", "qlean", NULL);
}

/* Runs the built qlean; returns its exit status. */
static int
cli (GBytes      *input,
     char       **out,
     char       **err,
     const char  *first,
     ...) G_GNUC_NULL_TERMINATED;

static int
cli (GBytes      *input,
     char       **out,
     char       **err,
     const char  *first,
     ...)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GBytes) out_bytes = NULL;
  g_autoptr(GBytes) err_bytes = NULL;
  g_autoptr(GBytes) no_input = g_bytes_new_static ("", 0);
  g_autoptr(GError) error = NULL;
  va_list args;

  g_ptr_array_add (argv, cli_path ());
  va_start (args, first);
  for (const char *arg = first; arg != NULL; arg = va_arg (args, const char *))
    g_ptr_array_add (argv, g_strdup (arg));
  va_end (args);
  g_ptr_array_add (argv, NULL);

  process = g_subprocess_newv ((const char * const *) argv->pdata,
                               G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                               G_SUBPROCESS_FLAGS_STDERR_PIPE, &error);
  g_assert_no_error (error);
  g_subprocess_communicate (process, input ? input : no_input, NULL, &out_bytes, &err_bytes, &error);
  g_assert_no_error (error);

  if (out != NULL)
    *out = g_strndup (g_bytes_get_data (out_bytes, NULL), g_bytes_get_size (out_bytes));
  if (err != NULL)
    *err = g_strndup (g_bytes_get_data (err_bytes, NULL), g_bytes_get_size (err_bytes));
  if (g_subprocess_get_if_signaled (process))
    return 128 + g_subprocess_get_term_sig (process);
  return g_subprocess_get_exit_status (process);
}

/* `qlean ls --json`'s entry for @name, or NULL. */
static JsonObject *
cli_ls_entry (const char *name)
{
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autofree char *out = NULL;
  g_autoptr(GError) error = NULL;
  JsonArray *list;

  g_assert_cmpint (cli (NULL, &out, NULL, "ls", "--json", NULL), ==, 0);
  json_parser_load_from_data (parser, out, -1, &error);
  g_assert_no_error (error);
  g_assert_true (JSON_NODE_HOLDS_ARRAY (json_parser_get_root (parser)));
  list = json_node_get_array (json_parser_get_root (parser));
  for (guint i = 0; i < json_array_get_length (list); i++)
    {
      JsonObject *entry = json_array_get_object_element (list, i);

      if (g_str_equal (json_object_get_string_member (entry, "name"), name))
        return json_object_ref (entry);
    }

  return NULL;
}

/* One HTTP GET on 127.0.0.1:@port; the body, or NULL. */
static char *
http_get (guint16 port)
{
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GSocketConnection) connection = NULL;
  g_autofree char *request = g_strdup ("GET / HTTP/1.0\r\nHost: test\r\n\r\n");
  g_autoptr(GError) error = NULL;
  g_autoptr(GOutputStream) sink = g_memory_output_stream_new_resizable ();
  const char *text, *body;

  g_socket_client_set_timeout (client, 10);
  connection = g_socket_client_connect_to_host (client, "127.0.0.1", port, NULL, &error);
  if (connection == NULL ||
      !g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (connection)), request,
                                  strlen (request), NULL, NULL, &error) ||
      g_output_stream_splice (sink, g_io_stream_get_input_stream (G_IO_STREAM (connection)),
                              G_OUTPUT_STREAM_SPLICE_CLOSE_TARGET, NULL, &error) < 0)
    return NULL;

  g_output_stream_write (sink, "", 1, NULL, NULL);
  text = g_memory_output_stream_get_data (G_MEMORY_OUTPUT_STREAM (sink));
  if (text == NULL || !g_str_has_prefix (text, "HTTP/1.") || strstr (text, " 200 ") == NULL ||
      (body = strstr (text, "\r\n\r\n")) == NULL)
    return NULL;
  return g_strdup (body + 4);
}

static gboolean
process_gone (gint64 pid)
{
  g_autofree char *stat_path = g_strdup_printf ("/proc/%" G_GINT64_FORMAT "/stat", pid);
  g_autofree char *stat = NULL;
  const char *end;

  if (!g_file_get_contents (stat_path, &stat, NULL, NULL))
    return TRUE;
  end = strrchr (stat, ')');
  return end != NULL && end[1] == ' ' && end[2] == 'Z';
}

void
test_cli_cycle (void)
{
  g_autofree char *qlean = cli_path ();
  g_autofree char *name = g_strdup_printf ("test-exec-%d", (int) getpid ());
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autofree char *body = NULL;
  g_autofree char *forwarded = NULL;
  g_autoptr(JsonObject) entry = NULL;
  g_autoptr(GBytes) input = random_bytes (1024 * 1024, 7);
  const char *line;
  JsonArray *forwards;
  guint64 port = 0;
  gint64 owner, start;
  int status;

  if (skip_on_agent ("the CLI boots its own machine, with qlean-guest; the run over qlean-guest covers it"))
    return;
  if (!test_have_qemu ())
    return;
  if (!g_file_test (qlean, G_FILE_TEST_IS_EXECUTABLE))
    {
      g_test_skip ("the qlean command is not built");
      return;
    }

  g_assert_cmpint (cli (NULL, NULL, &err, "start", "-p", "nonsense", name, NULL), ==, 2);
  g_assert_nonnull (strstr (err, "HOST:GUEST"));
  g_clear_pointer (&err, g_free);

  /* Start, with a forward to a port picked for us. */
  status = cli (NULL, &out, &err, "start", "--quiet", "-p", "0:8080", name, NULL);
  g_assert_cmpint (status, ==, 0);
  forwarded = g_strdup_printf (" forwards to port 8080 of %s\n", name);
  line = strstr (out, "127.0.0.1:");
  g_assert_nonnull (line);
  g_assert_nonnull (strstr (line, forwarded));
  port = g_ascii_strtoull (line + strlen ("127.0.0.1:"), NULL, 10);
  g_assert_cmpuint (port, >, 0);
  g_assert_cmpuint (port, <, 65536);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  /* exec: statuses propagate, signals as 128+N. */
  g_assert_cmpint (cli (NULL, NULL, NULL, "exec", name, "--", "sh", "-c", "exit 7", NULL), ==, 7);
  g_assert_cmpint (cli (NULL, NULL, NULL, "exec", name, "--", "true", NULL), ==, 0);
  g_assert_cmpint (cli (NULL, NULL, NULL, "exec", name, "--", "sh", "-c", "kill -TERM $$", NULL), ==,
                   128 + SIGTERM);
  g_assert_cmpint (cli (NULL, NULL, &err, "exec", name, "--", "qlean-no-such-program", NULL), ==, 127);
  g_clear_pointer (&err, g_free);

  /* Options, and live output on the terminal's streams. */
  status = cli (NULL, &out, &err, "exec", "-e", "FOO=b a r", "-w", "/tmp", "-u", "nobody", name, "--",
                "sh", "-c", "echo \"$FOO|$(pwd)|$(id -u)\"; echo to-err >&2", NULL);
  g_assert_cmpint (status, ==, 0);
  g_assert_cmpstr (out, ==, "b a r|/tmp|65534\n");
  g_assert_cmpstr (err, ==, "to-err\n");
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  /* -i forwards stdin: 1 MiB of binary through cat. */
  {
    g_autoptr(GSubprocess) process = NULL;
    g_autoptr(GBytes) echoed = NULL;
    g_autoptr(GError) error = NULL;
    const char *argv[] = { qlean, "exec", "-i", name, "--", "cat", NULL };

    process = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE,
                                 &error);
    g_assert_no_error (error);
    g_subprocess_communicate (process, input, NULL, &echoed, NULL, &error);
    g_assert_no_error (error);
    g_assert_cmpint (g_subprocess_get_exit_status (process), ==, 0);
    g_assert_true (g_bytes_equal (echoed, input));
  }

  /* cp from the machine drops setuid and group/world write bits, unless
   * --preserve-modes. */
  {
    g_autofree char *dir = g_dir_make_tmp ("qlean-cp-XXXXXX", NULL);
    g_autofree char *plain = g_build_filename (dir, "plain", NULL);
    g_autofree char *exact = g_build_filename (dir, "exact", NULL);
    g_autofree char *remote = g_strdup_printf ("%s:/tmp/suid", name);
    struct stat st;

    g_assert_nonnull (dir);
    g_assert_cmpint (cli (NULL, NULL, NULL, "exec", name, "--", "sh", "-c",
                          "echo x > /tmp/suid && chmod 6777 /tmp/suid", NULL), ==, 0);
    g_assert_cmpint (cli (NULL, NULL, NULL, "cp", remote, plain, NULL), ==, 0);
    g_assert_cmpint (cli (NULL, NULL, NULL, "cp", "--preserve-modes", remote, exact, NULL), ==, 0);
    g_assert_no_errno (stat (plain, &st));
    g_assert_cmpint (st.st_mode & 07777, ==, 0755);
    g_assert_no_errno (stat (exact, &st));
    g_assert_cmpint (st.st_mode & 07777, ==, 06777);
    qlean_rm_rf (dir, NULL);
  }

  /* --timeout kills the command: 124, as timeout(1) says. */
  start = g_get_monotonic_time ();
  g_assert_cmpint (cli (NULL, NULL, &err, "exec", "--timeout", "1", name, "--", "sleep", "100", NULL), ==, 124);
  g_assert_cmpfloat (seconds_since (start), <, 15);
  g_clear_pointer (&err, g_free);

  /* The forward reaches a server started in the machine. */
  g_assert_cmpint (cli (NULL, NULL, NULL, "exec", name, "--", "sh", "-c",
                        "mkdir -p /www && echo hello-forward > /www/index.html && "
                        "busybox httpd -p 8080 -h /www", NULL), ==, 0);
  for (int i = 0; i < 50 && body == NULL; i++)
    {
      body = http_get ((guint16) port);
      if (body == NULL)
        g_usleep (100 * 1000);
    }
  g_assert_cmpstr (body, ==, "hello-forward\n");

  /* ls: running, with its owner, image, forwards, and no network address. */
  entry = cli_ls_entry (name);
  g_assert_nonnull (entry);
  g_assert_cmpstr (json_object_get_string_member (entry, "state"), ==, "running");
  g_assert_cmpstr (json_object_get_string_member (entry, "image"), ==, "minimal");
  owner = json_object_get_int_member (entry, "pid");
  g_assert_cmpint (owner, >, 0);
  g_assert_true (json_object_get_null_member (entry, "ip"));
  forwards = json_object_get_array_member (entry, "forwards");
  g_assert_cmpuint (json_array_get_length (forwards), ==, 1);
  g_assert_cmpint (json_object_get_int_member (json_array_get_object_element (forwards, 0), "host-port"), ==, port);
  g_assert_cmpint (json_object_get_int_member (json_array_get_object_element (forwards, 0), "guest-port"), ==, 8080);
  g_clear_pointer (&entry, json_object_unref);
  g_assert_cmpint (cli (NULL, &out, NULL, "ls", NULL), ==, 0);
  {
    g_autofree char *ports = g_strdup_printf ("127.0.0.1:%u->8080", (guint) port);
    g_auto(GStrv) lines = g_strsplit (out, "\n", -1);
    gboolean found = FALSE;

    for (guint i = 0; lines[i] != NULL; i++)
      if (g_str_has_prefix (lines[i], name))
        {
          found = TRUE;
          g_assert_nonnull (strstr (lines[i], "running"));
          g_assert_nonnull (strstr (lines[i], ports));
        }
    g_assert_true (found);
  }
  g_clear_pointer (&out, g_free);

  /* The owner dies unannounced: ls says so, its machine and forward are gone. */
  g_assert_cmpint (kill ((pid_t) owner, SIGKILL), ==, 0);
  start = g_get_monotonic_time ();
  while (!process_gone (owner) && seconds_since (start) < 10)
    g_usleep (50 * 1000);
  g_assert_true (process_gone (owner));
  entry = cli_ls_entry (name);
  g_assert_nonnull (entry);
  g_assert_cmpstr (json_object_get_string_member (entry, "state"), ==, "owner-died");
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (entry, "forwards")), ==, 0);
  g_clear_pointer (&entry, json_object_unref);
  g_assert_cmpint (cli (NULL, NULL, NULL, "exec", name, "--", "true", NULL), ==, 125);
  g_clear_pointer (&body, g_free);
  body = http_get ((guint16) port);
  g_assert_null (body);

  /* stop clears it; gc removes the run directory its owner left. */
  g_assert_cmpint (cli (NULL, NULL, NULL, "stop", name, NULL), ==, 0);
  entry = cli_ls_entry (name);
  g_assert_null (entry);
  g_assert_cmpint (cli (NULL, NULL, NULL, "gc", "--quiet", NULL), ==, 0);
  {
    const char *run_base = g_getenv ("QLEAN_RUN_DIR");
    g_autoptr(GDir) dir = run_base ? g_dir_open (run_base, 0, NULL) : NULL;
    g_autofree char *prefix = g_strconcat (name, "-", NULL);
    const char *entry_name;

    while (dir != NULL && (entry_name = g_dir_read_name (dir)) != NULL)
      g_assert_false (g_str_has_prefix (entry_name, prefix));
  }
}
