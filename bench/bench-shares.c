/* bench-shares.c: a shared host folder (virtio-9p) against uploads
 *
 * SPDX-License-Identifier: MIT
 *
 * One minimal machine with a host folder shared read-only at /mnt/s
 * holding a 64 MiB file and a tree of 1,000 small files (4 KiB each, in
 * 10 directories). In the same run, each measured --rounds times:
 *
 *   - reading them in the guest from the share (cat to /dev/null);
 *   - qlean_machine_upload() of the same file and tree into the guest's
 *     tmpfs (what a test does without shares), removed after each round.
 *
 * Times are host wall clock around the call, so each includes one
 * command's round trip (a `true` is measured too, for scale). virtiofs
 * is not measured: Debian 12 has no virtiofsd.
 *
 *   bench-shares [--rounds N]
 */

#include "config.h"

#include <stdio.h>
#include <string.h>

#include <qlean/qlean.h>

#include "bench-common.h"

#define BIG_MIB 64
#define TREE_DIRS 10
#define TREE_FILES 1000
#define SMALL_SIZE 4096

static int opt_rounds = 5;

static const GOptionEntry entries[] = {
  { "rounds", 0, 0, G_OPTION_ARG_INT, &opt_rounds, "Rounds of each measurement (default 5)", "N" },
  { NULL }
};

static void
make_data (const char *dir)
{
  g_autofree char *big = g_build_filename (dir, "big", NULL);
  g_autofree char *data = g_malloc (BIG_MIB * 1024 * 1024);
  g_autofree char *small = g_malloc (SMALL_SIZE);
  g_autoptr(GError) error = NULL;

  for (gsize i = 0; i < (gsize) BIG_MIB * 1024 * 1024; i++)
    data[i] = (char) (i * 7 + (i >> 13));
  if (!g_file_set_contents (big, data, (gssize) BIG_MIB * 1024 * 1024, &error))
    g_error ("%s", error->message);
  memset (small, 'x', SMALL_SIZE);
  for (guint d = 0; d < TREE_DIRS; d++)
    {
      g_autofree char *sub = g_strdup_printf ("%s/tree/d%02u", dir, d);

      g_mkdir_with_parents (sub, 0755);
      for (guint f = 0; f < TREE_FILES / TREE_DIRS; f++)
        {
          g_autofree char *path = g_strdup_printf ("%s/f%03u", sub, f);

          if (!g_file_set_contents (path, small, SMALL_SIZE, &error))
            g_error ("%s", error->message);
        }
    }
}

static double
timed_exec (QleanMachine *machine,
            const char   *command)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanExecResult) result = NULL;
  double start = bench_now ();

  result = qlean_machine_exec (machine, command, NULL, &error);
  if (result == NULL)
    g_error ("%s: %s", command, error->message);
  if (!qlean_exec_result_success (result))
    g_error ("%s failed: %.*s", command, (int) g_bytes_get_size (qlean_exec_result_get_stderr (result)),
             (const char *) g_bytes_get_data (qlean_exec_result_get_stderr (result), NULL));
  return bench_now () - start;
}

static double
timed_upload (QleanMachine *machine,
              const char   *host_path,
              const char   *guest_path)
{
  g_autoptr(GFile) file = g_file_new_for_path (host_path);
  g_autoptr(GError) error = NULL;
  double start = bench_now ();

  if (!qlean_machine_upload (machine, file, guest_path, NULL, &error))
    g_error ("upload %s: %s", host_path, error->message);
  return bench_now () - start;
}

static void
report (const char *what,
        GArray     *seconds,
        double      mib)
{
  double median = bench_percentile (seconds, 0.5);

  if (mib > 0)
    g_print ("| %-34s | %8.1f ms | %7.1f MB/s |\n", what, median * 1000,
             mib * 1024 * 1024 / 1e6 / median);
  else
    g_print ("| %-34s | %8.1f ms | %12s |\n", what, median * 1000, "");
}

int
main (int argc, char **argv)
{
  g_autoptr(GOptionContext) context = g_option_context_new ("- shared folders against uploads");
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(QleanMachine) machine = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *big = NULL;
  g_autofree char *tree = NULL;
  g_autofree char *rm = NULL;
  GArray *times[5];
  const char *names[] = {
    "`true` (one round trip)",
    "64 MiB file: read from the share",
    "64 MiB file: upload",
    "1,000 x 4 KiB: read from the share",
    "1,000 x 4 KiB: upload (directory)",
  };
  double start;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error) || opt_rounds < 1)
    {
      g_printerr ("bench-shares: %s\n", error ? error->message : "--rounds must be positive");
      return 2;
    }

  dir = g_dir_make_tmp ("qlean-bench-shares-XXXXXX", &error);
  g_assert_no_error (error);
  make_data (dir);
  big = g_build_filename (dir, "big", NULL);
  tree = g_build_filename (dir, "tree", NULL);

  if (!qlean_machine_config_add_share (config, dir, "/mnt/s", TRUE, &error))
    g_error ("%s", error->message);
  /* Room for the uploads in the guest's tmpfs. */
  qlean_machine_config_set_memory_mib (config, 512);
  machine = qlean_machine_new_with_name ("bench-shares", NULL, config);
  start = bench_now ();
  if (!qlean_machine_spawn (machine, NULL, &error))
    {
      g_printerr ("bench-shares: cannot start a machine with a share: %s\n", error->message);
      return 1;
    }
  g_print ("machine with a share ready in %.2f s\n\n", bench_now () - start);

  for (guint i = 0; i < G_N_ELEMENTS (times); i++)
    times[i] = g_array_new (FALSE, FALSE, sizeof (double));

  /* One round first, unmeasured: the guest's and QEMU's first runs of
   * each path cost TCG translations. */
  for (int round = -1; round < opt_rounds; round++)
    {
      double t[5];

      t[0] = timed_exec (machine, "true");
      t[1] = timed_exec (machine, "cat /mnt/s/big > /dev/null");
      t[2] = timed_upload (machine, big, "/tmp/big");
      t[3] = timed_exec (machine, "cat /mnt/s/tree/*/* > /dev/null");
      t[4] = timed_upload (machine, tree, "/tmp/tree");
      timed_exec (machine, "rm -rf /tmp/big /tmp/tree");
      if (round >= 0)
        for (guint i = 0; i < G_N_ELEMENTS (times); i++)
          g_array_append_val (times[i], t[i]);
    }

  g_print ("| what (median of %d) | time | rate |\n|---|---|---|\n", opt_rounds);
  report (names[0], times[0], 0);
  report (names[1], times[1], BIG_MIB);
  report (names[2], times[2], BIG_MIB);
  report (names[3], times[3], TREE_FILES * (double) SMALL_SIZE / (1024 * 1024));
  report (names[4], times[4], TREE_FILES * (double) SMALL_SIZE / (1024 * 1024));

  qlean_machine_kill (machine, NULL, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (times); i++)
    g_array_unref (times[i]);
  rm = g_strdup_printf ("rm -rf '%s'", dir);
  g_spawn_command_line_sync (rm, NULL, NULL, NULL, NULL);

  return 0;
}
