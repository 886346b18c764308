/* ping.c: two machines on one private network, alice and bob, ping each
 * other. The C port of the second example of the Rust Qlean.
 *
 *   cc ping.c $(pkg-config --cflags --libs qlean-1) -o ping
 *
 * SPDX-License-Identifier: MIT
 */

#include <qlean/qlean.h>

static gboolean
ping (QleanMachine *from,
      QleanMachine *to,
      GError      **error)
{
  g_autofree char *ip = qlean_machine_get_ip (to, NULL, error);
  g_autofree char *command = NULL;
  g_autoptr(QleanExecResult) result = NULL;

  if (ip == NULL)
    return FALSE;

  command = g_strdup_printf ("ping -c 4 %s", ip);
  result = qlean_machine_exec (from, command, NULL, error);
  if (result == NULL)
    return FALSE;

  g_print ("%s → %s (%s): %s\n", qlean_machine_get_name (from), qlean_machine_get_name (to), ip,
           qlean_exec_result_success (result) ? "ok" : "no answer");
  return qlean_exec_result_check (result, error);
}

int
main (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanPool) pool = qlean_pool_new ();
  g_autoptr(QleanMachine) alice = NULL;
  g_autoptr(QleanMachine) bob = NULL;
  gboolean ok;

  /* NULL image and config: the minimal image with the defaults. */
  if (!qlean_pool_add (pool, "alice", NULL, NULL, &error) ||
      !qlean_pool_add (pool, "bob", NULL, NULL, &error) ||
      !qlean_pool_spawn_all (pool, NULL, &error))
    {
      g_printerr ("The pool did not start: %s\n", error->message);
      return 1;
    }

  alice = qlean_pool_get (pool, "alice", NULL);
  bob = qlean_pool_get (pool, "bob", NULL);

  ok = ping (bob, alice, &error) && ping (alice, bob, &error);
  if (!ok)
    g_printerr ("%s\n", error->message);

  qlean_pool_shutdown_all (pool, NULL, NULL);
  return ok ? 0 : 1;
}
