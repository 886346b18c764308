/* bench-agent.c: the stock guest agent's file calls against chunk size
 *
 * SPDX-License-Identifier: MIT
 *
 * Without qlean-guest, files move through qemu-ga's guest-file-write and
 * guest-file-read, base64 in JSON, one call at a time. How much each call
 * carries is the one knob the host has: this measures both ways for a
 * range of chunk sizes on one machine whose transport is the agent,
 * alternating the sizes, median of a few rounds, so that the library's
 * AGENT_CHUNK (lib/files/qlean-machine-agent-files.c) is the best one
 * measured rather than a guess. A flat row across sizes also says that a
 * call's own round trip is not what limits: pipelining calls (the agent
 * runs them one after the other anyway) could not gain more than the
 * difference between the smallest and the largest chunk.
 *
 *   bench-agent [--size MIB] [--rounds N]
 */

#include "config.h"

#include <glib/gstdio.h>

#include <qlean/qlean.h>

#include "bench-common.h"
#include "qlean-qga-client.h"

static int opt_size = 16;
static int opt_rounds = 3;

static const GOptionEntry entries[] = {
  { "size", 0, 0, G_OPTION_ARG_INT, &opt_size, "Bytes moved each way per try, MiB (default 16)", "MIB" },
  { "rounds", 0, 0, G_OPTION_ARG_INT, &opt_rounds, "Rounds of each size (median; default 3)", "N" },
  { NULL }
};

static const gsize chunks[] = {
  64 * 1024, 256 * 1024, 1024 * 1024, 4 * 1024 * 1024, 16 * 1024 * 1024,
};

#define GUEST_FILE "/root/bench-agent"

static double
write_all (QleanQgaClient *qga,
           GBytes         *data,
           gsize           chunk_size)
{
  g_autoptr(GError) error = NULL;
  gsize size = g_bytes_get_size (data);
  double start = bench_now ();
  gint64 handle = qlean_qga_client_file_open (qga, GUEST_FILE, "w", NULL, &error);

  if (handle < 0)
    g_error ("guest-file-open: %s", error->message);
  for (gsize offset = 0; offset < size;)
    {
      g_autoptr(GBytes) chunk = g_bytes_new_from_bytes (data, offset, MIN (chunk_size, size - offset));
      gssize written = qlean_qga_client_file_write (qga, handle, chunk, NULL, &error);

      if (written <= 0)
        g_error ("guest-file-write: %s", error ? error->message : "nothing written");
      offset += written;
    }
  if (!qlean_qga_client_file_close (qga, handle, NULL, &error))
    g_error ("guest-file-close: %s", error->message);

  return bench_now () - start;
}

static double
read_all (QleanQgaClient *qga,
          gsize           expected,
          gsize           chunk_size)
{
  g_autoptr(GError) error = NULL;
  gboolean eof = FALSE;
  gsize got = 0;
  double start = bench_now ();
  gint64 handle = qlean_qga_client_file_open (qga, GUEST_FILE, "r", NULL, &error);

  if (handle < 0)
    g_error ("guest-file-open: %s", error->message);
  while (!eof)
    {
      g_autoptr(GBytes) chunk = qlean_qga_client_file_read (qga, handle, chunk_size, &eof, NULL, &error);

      if (chunk == NULL)
        g_error ("guest-file-read: %s", error->message);
      got += g_bytes_get_size (chunk);
    }
  if (!qlean_qga_client_file_close (qga, handle, NULL, &error))
    g_error ("guest-file-close: %s", error->message);
  if (got != expected)
    g_error ("guest-file-read got %zu bytes, expected %zu", got, expected);

  return bench_now () - start;
}

static GBytes *
random_data (gsize size)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (42);
  guint32 *words = g_malloc (size);

  for (gsize i = 0; i < size / 4; i++)
    words[i] = g_rand_int (rand);
  return g_bytes_new_take (words, size);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GOptionContext) context = g_option_context_new ("- the guest agent's file calls against chunk size");
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanImage) image = qlean_image_new_minimal ();
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(QleanQgaClient) qga = NULL;
  g_autoptr(GBytes) data = NULL;
  g_autoptr(GPtrArray) writes = g_ptr_array_new_with_free_func ((GDestroyNotify) g_array_unref);
  g_autoptr(GPtrArray) reads = g_ptr_array_new_with_free_func ((GDestroyNotify) g_array_unref);
  g_autofree char *loadavg = NULL;
  gsize size;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    g_error ("%s", error->message);
  if (opt_size < 1 || opt_rounds < 1)
    g_error ("--size and --rounds must be at least 1");
  size = (gsize) opt_size * 1024 * 1024;

  /* Room for the file in the guest's RAM-backed root. */
  qlean_machine_config_set_memory_mib (config, 256 + 2 * (guint) opt_size);
  qlean_machine_config_set_guest_transport (config, QLEAN_GUEST_TRANSPORT_AGENT);
  machine = qlean_machine_new (image, config);
  if (!qlean_machine_spawn (machine, NULL, &error))
    g_error ("%s", error->message);
  qga = qlean_machine_dup_qga (machine);
  data = random_data (size);
  g_file_get_contents ("/proc/loadavg", &loadavg, NULL, NULL);

  for (guint i = 0; i < G_N_ELEMENTS (chunks); i++)
    {
      g_ptr_array_add (writes, g_array_new (FALSE, FALSE, sizeof (double)));
      g_ptr_array_add (reads, g_array_new (FALSE, FALSE, sizeof (double)));
    }
  /* Sizes alternate within a round, so a slow spell of the host falls on
   * all of them alike. */
  for (int round = 0; round < opt_rounds; round++)
    for (guint i = 0; i < G_N_ELEMENTS (chunks); i++)
      {
        double t = write_all (qga, data, chunks[i]);

        g_array_append_val (g_ptr_array_index (writes, i), t);
        t = read_all (qga, size, chunks[i]);
        g_array_append_val (g_ptr_array_index (reads, i), t);
      }

  g_print ("guest agent file calls, %d MiB each way, median of %d, load average before: %s",
           opt_size, opt_rounds, loadavg ? loadavg : "?\n");
  g_print ("%10s  %18s  %18s\n", "chunk KiB", "guest-file-write", "guest-file-read");
  for (guint i = 0; i < G_N_ELEMENTS (chunks); i++)
    {
      double w = bench_percentile (g_ptr_array_index (writes, i), 0.5);
      double r = bench_percentile (g_ptr_array_index (reads, i), 0.5);

      g_print ("%10zu  %13.1f MB/s  %13.1f MB/s\n", chunks[i] / 1024, size / w / 1e6, size / r / 1e6);
    }

  qlean_machine_kill (machine, NULL, NULL);
  return 0;
}
