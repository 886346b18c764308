/* test-identity.c: a copy's own identity, by either way
 *
 * SPDX-License-Identifier: MIT
 *
 * A clone of a running machine gets its own hostname, /etc/hostname,
 * "127.0.1.1" line of /etc/hosts, machine-id and random state
 * (qlean-machine-identity.c): inside qlean-guest where it answers, by
 * a shell script through the stock agent elsewhere. Each way is checked
 * here by its outcome in the guest, and by the library's debug message
 * that says which way it went (test_log_capture_debug()), so that a
 * broken FS IDENTITY falling back to the script cannot pass as the fast
 * way.
 */

#include "config.h"

#include <string.h>

#include "qlean.h"
#include "test-common.h"

static QleanMachine *
start_source (const char *name,
              gboolean    agent_only)
{
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GError) error = NULL;

  if (agent_only)
    {
      /* Without qlean-guest in the guest at all, as test-files's agent
       * run: the script is the only way. */
      qlean_machine_config_set_guest_transport (config, QLEAN_GUEST_TRANSPORT_AGENT);
      qlean_machine_config_set_cmdline (config, "qlean.noguest=1");
    }
  machine = qlean_machine_new_with_name (name, NULL, config);
  g_assert_true (qlean_machine_spawn (machine, NULL, &error));
  g_assert_no_error (error);

  /* The minimal image has no machine-id (a distro image would); its
   * init wrote /etc/hostname and a 127.0.1.1 line. */
  g_free (test_run_text (machine, "echo 0123456789abcdef0123456789abcdef > /etc/machine-id; "
                                  "echo '10.9.8.7 other' >> /etc/hosts"));
  return g_steal_pointer (&machine);
}

/* @clone has its own name everywhere the script puts it, a machine-id
 * of its own (not @source_id), and kept the rest of /etc/hosts. */
static char *
check_identity (QleanMachine *clone,
                const char   *source_id)
{
  const char *name = qlean_machine_get_name (clone);
  g_autofree char *expected_hosts = g_strdup_printf ("127.0.1.1 %s", name);
  g_autofree char *out = NULL;
  char *id;

  out = test_run_text (clone, "hostname");
  g_assert_cmpstr (out, ==, name);
  g_clear_pointer (&out, g_free);
  out = test_run_text (clone, "cat /etc/hostname");
  g_assert_cmpstr (out, ==, name);
  g_clear_pointer (&out, g_free);
  out = test_run_text (clone, "grep '^127\\.0\\.1\\.1' /etc/hosts");
  g_assert_cmpstr (out, ==, expected_hosts);
  g_clear_pointer (&out, g_free);
  out = test_run_text (clone, "grep -c -e '^127\\.0\\.0\\.1' -e '^10\\.9\\.8\\.7 other$' /etc/hosts");
  g_assert_cmpstr (out, ==, "2");

  id = test_run_text (clone, "cat /etc/machine-id");
  g_assert_cmpuint (strlen (id), ==, 32);
  g_assert_cmpstr (id, !=, source_id);

  return id;
}

/* Through qlean-guest: two clones of one source, each its own, and
 * each reading its own random bytes; FS IDENTITY did it, no script. */
static void
test_qlean_guest (void)
{
  g_autoptr(QleanMachine) source = NULL;
  g_autoptr(QleanMachine) a = NULL;
  g_autoptr(QleanMachine) b = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *source_id = NULL, *id_a = NULL, *id_b = NULL;
  g_autofree char *random_a = NULL, *random_b = NULL;
  g_autofree char *out = NULL;

  if (!test_have_qemu ())
    return;

  source = start_source ("id-source", FALSE);
  source_id = test_run_text (source, "cat /etc/machine-id");
  /* Forgets the messages so far. */
  test_logged ("");

  a = qlean_machine_clone (source, "id-copy-a", NULL, &error);
  g_assert_no_error (error);
  g_assert_true (test_logged ("machine id-copy-a: identity set by qlean-guest"));
  b = qlean_machine_clone (source, "id-copy-b", NULL, &error);
  g_assert_no_error (error);
  g_assert_true (test_logged ("machine id-copy-b: identity set by qlean-guest"));

  id_a = check_identity (a, source_id);
  id_b = check_identity (b, source_id);
  g_assert_cmpstr (id_a, !=, id_b);

  /* Both woke from the same state: without the seed and the reseed
   * they would read the same bytes. */
  random_a = test_run_text (a, "head -c 16 /dev/urandom | od -An -tx1");
  random_b = test_run_text (b, "head -c 16 /dev/urandom | od -An -tx1");
  g_assert_cmpstr (random_a, !=, random_b);

  out = test_run_text (source, "hostname; cat /etc/machine-id");
  g_assert_cmpstr (out, ==, "id-source\n0123456789abcdef0123456789abcdef");

  g_assert_true (qlean_machine_shutdown (a, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_machine_shutdown (b, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_machine_shutdown (source, NULL, &error));
  g_assert_no_error (error);
}

/* Through the stock agent alone: the script does the same. */
static void
test_agent (void)
{
  g_autoptr(QleanMachine) source = NULL;
  g_autoptr(QleanMachine) clone = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *source_id = NULL, *id = NULL;

  if (!test_have_qemu ())
    return;

  source = start_source ("id-agent-source", TRUE);
  source_id = test_run_text (source, "cat /etc/machine-id");
  /* Forgets the messages so far. */
  test_logged ("");

  clone = qlean_machine_clone (source, "id-agent-copy", NULL, &error);
  g_assert_no_error (error);
  g_assert_true (test_logged ("machine id-agent-copy: identity set by the script"));
  id = check_identity (clone, source_id);

  g_assert_true (qlean_machine_shutdown (clone, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_machine_shutdown (source, NULL, &error));
  g_assert_no_error (error);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);
  test_log_capture_debug ();

  g_test_add_func ("/identity/qlean-guest", test_qlean_guest);
  g_test_add_func ("/identity/agent", test_agent);

  return g_test_run ();
}
