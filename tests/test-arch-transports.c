/* test-arch-transports.c: an aarch64 guest on the stock agent alone, and
 * its ports forwarded
 *
 * SPDX-License-Identifier: MIT
 *
 * Part of test-arch. The rest of the library must work unchanged on an
 * aarch64 guest: besides what test-arch.c runs over qlean-guest (exec,
 * file calls, transfers, fast start, a pool), this runs a machine whose
 * transport is the stock agent (its aarch64 build from the sysroot):
 * processes, a user switch, files and trees; and a port forward into
 * the shared aarch64 machine.
 */

#include "config.h"

#include <string.h>
#include <glib/gstdio.h>

#include <qlean/qlean.h>
#include "test-arch.h"
#include "test-common.h"

static void
test_arm_agent_transport (void)
{
  const char * const id[] = { "sh", "-c", "echo $(uname -m):$(id -u):$USER", NULL };
  g_autoptr(QleanImage) image = NULL;
  g_autoptr(QleanMachineConfig) config = NULL;
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(QleanGuestLauncher) launcher = NULL;
  g_autoptr(QleanExecResult) result = NULL;
  g_autoptr(GBytes) data = g_bytes_new_static ("on aarch64\n", 11);
  g_autoptr(GBytes) back = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *file = NULL;
  g_autofree char *back_file = NULL;
  g_autofree char *contents = NULL;
  g_autofree char *text = NULL;
  g_autoptr(GFile) tree = NULL;
  g_autoptr(GFile) tree_back = NULL;

  if (!test_arch_available (QLEAN_ARCH_AARCH64))
    return;

  image = qlean_image_new_minimal_for_arch (QLEAN_ARCH_AARCH64);
  config = qlean_machine_config_new ();
  qlean_machine_config_set_guest_transport (config, QLEAN_GUEST_TRANSPORT_AGENT);
  machine = qlean_machine_new_with_name ("arm-agent", image, config);
  qlean_machine_spawn (machine, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (qlean_machine_get_guest_transport (machine), ==, QLEAN_GUEST_TRANSPORT_AGENT);

  /* A process as another user, through the agent's guest-exec. */
  launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_NONE);
  qlean_guest_launcher_set_user (launcher, "nobody");
  result = qlean_guest_launcher_run (launcher, machine, id, NULL, &error);
  g_assert_no_error (error);
  text = qlean_exec_result_get_stdout_text (result);
  g_assert_cmpstr (text, ==, "aarch64:65534:nobody\n");

  /* File calls and a tree both ways (one tar stream each way). */
  g_assert_true (qlean_machine_write (machine, "/root/f", data, NULL, &error));
  g_assert_no_error (error);
  back = qlean_machine_read (machine, "/root/f", NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (back, data));

  dir = g_dir_make_tmp ("qlean-arm-agent-XXXXXX", &error);
  g_assert_no_error (error);
  file = g_build_filename (dir, "tree", "sub", "file", NULL);
  back_file = g_build_filename (dir, "back", "sub", "file", NULL);
  {
    g_autofree char *sub = g_path_get_dirname (file);

    g_assert_cmpint (g_mkdir_with_parents (sub, 0755), ==, 0);
  }
  g_assert_true (g_file_set_contents (file, "in a tree\n", -1, &error));
  tree = g_file_new_build_filename (dir, "tree", NULL);
  tree_back = g_file_new_build_filename (dir, "back", NULL);
  g_assert_true (qlean_machine_upload (machine, tree, "/root/tree", NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_machine_download (machine, "/root/tree", tree_back, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (g_file_get_contents (back_file, &contents, NULL, &error));
  g_assert_cmpstr (contents, ==, "in a tree\n");

  g_assert_true (qlean_machine_kill (machine, NULL, &error));
  g_assert_no_error (error);
  {
    const char *rm[] = { "rm", "-rf", dir, NULL };

    g_assert_true (g_spawn_sync (NULL, (char **) rm, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                                 NULL, NULL, NULL, &error));
  }
}

/* One HTTP GET of / on 127.0.0.1:@port; the whole response. */
static char *
http_get (guint16 port)
{
  g_autoptr(GSocketClient) client = g_socket_client_new ();
  g_autoptr(GSocketConnection) connection = NULL;
  g_autoptr(GError) error = NULL;
  GOutputStream *out;
  GInputStream *in;
  GString *response = g_string_new (NULL);
  const char request[] = "GET / HTTP/1.0\r\nHost: guest\r\n\r\n";
  char buffer[4096];
  gssize n;

  connection = g_socket_client_connect_to_host (client, "127.0.0.1", port, NULL, &error);
  g_assert_no_error (error);
  out = g_io_stream_get_output_stream (G_IO_STREAM (connection));
  in = g_io_stream_get_input_stream (G_IO_STREAM (connection));
  g_assert_true (g_output_stream_write_all (out, request, strlen (request), NULL, NULL, &error));
  g_assert_no_error (error);
  while ((n = g_input_stream_read (in, buffer, sizeof buffer, NULL, &error)) > 0)
    g_string_append_len (response, buffer, n);
  g_assert_no_error (error);

  return g_string_free (response, FALSE);
}

static void
test_arm_forward (void)
{
  QleanMachine *machine = test_arch_arm_machine ();
  const char * const httpd_argv[] = { "busybox", "httpd", "-f", "-p", "8080", "-h", "/www", NULL };
  g_autoptr(QleanGuestLauncher) launcher = NULL;
  g_autoptr(QleanGuestProcess) httpd = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *response = NULL;
  guint16 port;

  if (machine == NULL)
    return;

  g_free (test_run_out (machine, "mkdir -p /www && echo 'from aarch64' > /www/index.html"));
  launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_NONE);
  httpd = qlean_guest_launcher_spawnv (launcher, machine, httpd_argv, &error);
  g_assert_no_error (error);
  qlean_machine_wait_for_port (machine, 8080, 10000, NULL, &error);
  g_assert_no_error (error);

  port = qlean_machine_forward_port (machine, 0, 8080, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (port, >, 0);
  response = http_get (port);
  g_assert_true (g_str_has_prefix (response, "HTTP/1.0 200") || g_str_has_prefix (response, "HTTP/1.1 200"));
  g_assert_true (g_str_has_suffix (response, "\r\n\r\nfrom aarch64\n"));
  g_assert_true (qlean_machine_unforward_port (machine, port, &error));
  g_assert_no_error (error);

  qlean_guest_process_force_exit (httpd);
  qlean_guest_process_wait (httpd, NULL, NULL);
}

void
test_arch_transports_add_tests (void)
{
  g_test_add_func ("/arch/aarch64/agent-transport", test_arm_agent_transport);
  g_test_add_func ("/arch/aarch64/forward", test_arm_forward);
}
