/* test-with-qlean.c: a g_test suite that uses <qlean/qlean-test.h>.
 *
 * Every test gets the binary's shared machine, booted once and reset
 * between tests; on a host without QEMU the tests are skipped with the
 * reason; when one fails, its machine's serial console log and QMP/agent
 * transcript are kept under $QLEAN_TEST_ARTIFACTS (default:
 * qlean-artifacts/ in the build directory) and the path is printed.
 *
 *   cc test-with-qlean.c $(pkg-config --cflags --libs qlean-1) -o test-with-qlean
 *   ./test-with-qlean --tap
 *
 * SPDX-License-Identifier: MIT
 */

#include <qlean/qlean-test.h>

static void
test_whoami (void)
{
  QleanMachine *machine = qlean_test_get_machine ();
  g_autoptr(QleanExecResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *user = NULL;

  result = qlean_machine_exec (machine, "whoami", NULL, &error);
  g_assert_no_error (error);
  g_assert_true (qlean_exec_result_success (result));

  user = g_strstrip (qlean_exec_result_get_stdout_text (result));
  g_assert_cmpstr (user, ==, "root");
}

static void
test_web_server (void)
{
  QleanMachine *machine = qlean_test_get_machine ();
  g_autoptr(QleanExecResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *page = NULL;
  const char * const fetch[] = { "wget", "-q", "-O", "-", "http://127.0.0.1:8080/index.html", NULL };

  result = qlean_machine_exec (machine,
                               "mkdir -p /srv/www && echo hello > /srv/www/index.html && "
                               "httpd -p 8080 -h /srv/www", NULL, &error);
  g_assert_no_error (error);
  g_assert_true (qlean_exec_result_success (result));

  /* Wait for what the test needs, not for a fixed time. */
  qlean_machine_wait_for_port (machine, 8080, 30000, NULL, &error);
  g_assert_no_error (error);

  g_clear_object (&result);
  result = qlean_machine_wait_until_succeeds (machine, fetch, 30000, NULL, &error);
  g_assert_no_error (error);
  page = qlean_exec_result_get_stdout_text (result);
  g_assert_cmpstr (page, ==, "hello\n");

  g_clear_object (&result);
  result = qlean_machine_exec (machine, "killall httpd", NULL, &error);
  g_assert_no_error (error);
}

static void
test_serial_console (void)
{
  QleanMachine *machine = qlean_test_get_machine ();
  g_autoptr(QleanExecResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;

  /* A service that reports on the serial console, a second later. */
  result = qlean_machine_exec (machine,
                               "setsid sh -c 'sleep 1; echo example: ready on port 8080 > /dev/console' "
                               "</dev/null >/dev/null 2>&1 &", NULL, &error);
  g_assert_no_error (error);

  line = qlean_machine_wait_for_console_text (machine, "example: ready on port \\d+", 30000,
                                              NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (line, ==, "example: ready on port 8080");
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  qlean_test_add_func ("/example/whoami", test_whoami);
  qlean_test_add_func ("/example/web-server", test_web_server);
  qlean_test_add_func ("/example/serial-console", test_serial_console);

  return g_test_run ();
}
