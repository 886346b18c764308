/* bench-image.c: a distribution image from download to first exec
 *
 * SPDX-License-Identifier: MIT
 *
 * For the offline Debian fixture (tests/images/build-debian-fixture.sh),
 * served on 127.0.0.1: time to pull it (download + SHA-512 while
 * streaming), to prepare it (qcow2 copy, agent injection and kernel
 * extraction with libguestfs), to find it prepared again, and, once the
 * machine side exists, first boot (cloud-init) and second boot to first
 * exec. Run it through bench/image, which builds the fixture and gives
 * this program an empty cache.
 */

#include "config.h"

#include <stdlib.h>

#include <qlean/qlean.h>

#include "images/fixture-server.h"

#define FIXTURE_NAME "debian-12-generic-amd64"

static double
seconds_since (gint64 start)
{
  return (g_get_monotonic_time () - start) / (double) G_USEC_PER_SEC;
}

static void
store_result (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(FixtureServer) server = NULL;
  g_autoptr(QleanImage) image = NULL;
  g_autoptr(QleanImage) again = NULL;
  g_autoptr(GError) error = NULL;
  gint64 start;

  if (argc != 2)
    {
      g_printerr ("usage: bench-image FIXTURE_DIR (see bench/image)\n");
      return 2;
    }

  server = fixture_server_new (argv[1], &error);
  if (server == NULL)
    g_error ("%s", error->message);

  image = qlean_image_new_from_distro (QLEAN_DISTRO_DEBIAN, FIXTURE_NAME);
  qlean_image_set_mirror (image, fixture_server_get_url (server));

  start = g_get_monotonic_time ();
  if (!qlean_image_pull (image, NULL, &error))
    g_error ("pull: %s", error->message);
  g_print ("pull (local HTTP, %s): %.2f s\n", FIXTURE_NAME, seconds_since (start));

  start = g_get_monotonic_time ();
  if (!qlean_image_verify (image, NULL, &error))
    g_error ("verify: %s", error->message);
  g_print ("verify (full SHA-512): %.2f s\n", seconds_since (start));

  start = g_get_monotonic_time ();
  if (!qlean_image_prepare (image, NULL, &error))
    g_error ("prepare: %s", error->message);
  g_print ("prepare (libguestfs): %.2f s\n", seconds_since (start));

  again = qlean_image_new_from_distro (QLEAN_DISTRO_DEBIAN, FIXTURE_NAME);
  qlean_image_set_mirror (again, fixture_server_get_url (server));
  start = g_get_monotonic_time ();
  if (!qlean_image_prepare (again, NULL, &error))
    g_error ("prepare again: %s", error->message);
  g_print ("prepare, cached (pull check + lookup): %.2f s\n", seconds_since (start));

  {
    g_autoptr(QleanMachine) machine = qlean_machine_new_with_name ("bench", image, NULL);
    g_autoptr(QleanExecResult) result = NULL;
    g_autoptr(GAsyncResult) init_result = NULL;
    double running_at = -1;

    /* The agent answers (the machine is RUNNING, a command could run)
     * long before cloud-init is done, which initialize also waits for:
     * report both. */
    start = g_get_monotonic_time ();
    qlean_machine_initialize_async (machine, NULL, store_result, &init_result);
    while (init_result == NULL)
      {
        g_main_context_iteration (NULL, FALSE);
        if (running_at < 0 && qlean_machine_get_state (machine) == QLEAN_MACHINE_STATE_RUNNING)
          running_at = seconds_since (start);
        g_usleep (10 * 1000);
      }
    if (!qlean_machine_initialize_finish (machine, init_result, &error) ||
        (result = qlean_machine_exec (machine, "true", NULL, &error)) == NULL)
      g_error ("first boot: %s", error->message);
    g_print ("first boot to the agent answering (first exec possible): %.2f s\n", running_at);
    g_print ("first boot to cloud-init done and first exec: %.2f s\n", seconds_since (start));
    g_clear_object (&result);
    if (!qlean_machine_shutdown (machine, NULL, &error))
      g_error ("shutdown: %s", error->message);

    start = g_get_monotonic_time ();
    if (!qlean_machine_spawn (machine, NULL, &error) ||
        (result = qlean_machine_exec (machine, "true", NULL, &error)) == NULL)
      g_error ("second boot: %s", error->message);
    g_print ("second boot (spawn) to first exec: %.2f s\n", seconds_since (start));
    if (!qlean_machine_shutdown (machine, NULL, &error))
      g_error ("shutdown: %s", error->message);
  }

  return 0;
}
