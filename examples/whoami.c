/* whoami.c: boot a throwaway machine, run `whoami` in it, check that it
 * says root. The C port of the first example of the Rust Qlean.
 *
 *   cc whoami.c $(pkg-config --cflags --libs qlean-1) -o whoami
 *
 * SPDX-License-Identifier: MIT
 */

#include <qlean/qlean.h>

int
main (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanMachine) machine = qlean_machine_new (NULL, NULL);   /* minimal image, defaults */
  g_autoptr(QleanExecResult) result = NULL;
  g_autofree char *user = NULL;

  if (!qlean_machine_spawn (machine, NULL, &error))
    {
      g_printerr ("The machine did not start: %s\n", error->message);
      return 1;
    }

  result = qlean_machine_exec (machine, "whoami", NULL, &error);
  if (result == NULL)
    {
      g_printerr ("whoami did not run: %s\n", error->message);
      return 1;
    }

  user = g_strstrip (qlean_exec_result_get_stdout_text (result));
  g_print ("%s (exit status %d)\n", user, qlean_exec_result_get_exit_status (result));

  if (!qlean_machine_shutdown (machine, NULL, &error))
    g_printerr ("Shutdown: %s\n", error->message);

  return qlean_exec_result_success (result) && g_str_equal (user, "root") ? 0 : 1;
}  /* dropping the last reference kills QEMU and removes the run directory anyway */
