/* bench-compare.c: Qlean against SSH, in the same guest, in the same run
 *
 * SPDX-License-Identifier: MIT
 *
 * The guest is the minimal image plus dropbear, its libraries, the host's
 * scp (dropbear has none, and no SFTP server: scp runs with -O), a host
 * key and an authorized key, built with tools/qlean-build-initramfs.sh
 * (bench/bench-ssh.c).
 * Booted with qlean.ssh=1 and QEMU's user network forwarding a local
 * port to its port 22, it runs qlean-guest, qemu-ga and dropbear side by
 * side, so every figure compares two ways into one and the same machine.
 * bench/run runs this and writes bench/RESULTS.md.
 */

#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <glib/gstdio.h>

#include <qlean/qlean.h>

#include "bench-common.h"
#include "bench-ssh.h"

#define MIB (1024.0 * 1024.0)
#define SSH_MEMORY_MIB 256
#define TRANSFER_MEMORY_MIB 1536
#define QGA_CHUNK (256 * 1024)

static int opt_boots = 5;
static int opt_execs = 200;
static int opt_ssh_execs = 30;
static int opt_pool = 8;
static char *opt_sizes = NULL;
static char *opt_results = NULL;
static char *opt_pool_bench = NULL;
static char *opt_shares_bench = NULL;
static char *opt_workdir = NULL;
static char *opt_only = NULL;

static const GOptionEntry entries[] = {
  { "boots", 0, 0, G_OPTION_ARG_INT, &opt_boots, "Cold boots per way (median; default 5)", "N" },
  { "execs", 0, 0, G_OPTION_ARG_INT, &opt_execs, "Qlean exec round trips (default 200)", "N" },
  { "ssh-execs", 0, 0, G_OPTION_ARG_INT, &opt_ssh_execs, "SSH commands (default 30)", "N" },
  { "sizes", 0, 0, G_OPTION_ARG_STRING, &opt_sizes, "Transfer sizes in MiB (default 1,64,512)", "LIST" },
  { "pool", 0, 0, G_OPTION_ARG_INT, &opt_pool, "Machines started together (default 8; 0 skips)", "N" },
  { "pool-bench", 0, 0, G_OPTION_ARG_FILENAME, &opt_pool_bench, "bench-pool program to run for QleanPool's figure", "PATH" },
  { "shares-bench", 0, 0, G_OPTION_ARG_FILENAME, &opt_shares_bench, "bench-shares program to run for shared folders (9p, virtiofs) against uploads", "PATH" },
  { "results", 0, 0, G_OPTION_ARG_FILENAME, &opt_results, "Also write the results as Markdown here", "FILE" },
  { "workdir", 0, 0, G_OPTION_ARG_FILENAME, &opt_workdir, "Where the SSH image and keys go (default: a temporary directory)", "DIR" },
  { "only", 0, 0, G_OPTION_ARG_STRING, &opt_only, "Run only these parts: boot,exec,transfers,trees,memory,many,shares (default all)", "LIST" },
  { NULL }
};

/* Results */

typedef struct
{
  char *what;
  char *qlean;
  char *ssh;
  char *ratio;
  char *target;
  char *verdict;
} Row;

static GPtrArray *rows;
static GString *notes;

static void
row_free (Row *row)
{
  g_free (row->what);
  g_free (row->qlean);
  g_free (row->ssh);
  g_free (row->ratio);
  g_free (row->target);
  g_free (row->verdict);
  g_free (row);
}

static void
add_row (const char *what,
         const char *qlean,
         const char *ssh,
         const char *ratio,
         const char *target,
         int         met)  /* 1 met, 0 missed, -1 no target */
{
  Row *row = g_new0 (Row, 1);

  row->what = g_strdup (what);
  row->qlean = g_strdup (qlean ? qlean : "");
  row->ssh = g_strdup (ssh ? ssh : "");
  row->ratio = g_strdup (ratio ? ratio : "");
  row->target = g_strdup (target ? target : "");
  row->verdict = g_strdup (met < 0 ? "" : met ? "met" : "MISSED");
  g_ptr_array_add (rows, row);

  g_printerr ("  %-44s %-22s %-22s %-9s %s %s\n", what, row->qlean, row->ssh, row->ratio,
              row->target, row->verdict);
}

static void
note (const char *format,
      ...) G_GNUC_PRINTF (1, 2);

static void
note (const char *format,
      ...)
{
  va_list args;

  va_start (args, format);
  g_string_append_vprintf (notes, format, args);
  va_end (args);
  g_string_append_c (notes, '\n');
}

/* Host helpers */

static char *
sha256_file (const char *path)
{
  g_autoptr(GError) error = NULL;
  const char *argv[] = { "sha256sum", path, NULL };
  g_autofree char *out = bench_run_capture (argv, &error);

  if (out == NULL)
    g_error ("%s", error->message);
  out[strcspn (out, " ")] = '\0';
  return g_steal_pointer (&out);
}

/* The SSH image */

static BenchSshImage ssh_image;

static gboolean
ssh_run (QleanMachine *machine,
         const char   *command,
         const char   *control)
{
  return bench_ssh_run (&ssh_image, bench_ssh_machine_get_port (machine), control, NULL, command);
}

static gboolean
scp_run (QleanMachine *machine,
         const char   *from,
         const char   *to)
{
  g_autoptr(GPtrArray) argv = bench_ssh_argv (&ssh_image, bench_ssh_machine_get_port (machine), TRUE);

  g_ptr_array_add (argv, g_strdup (from));
  g_ptr_array_add (argv, g_strdup (to));
  g_ptr_array_add (argv, NULL);

  return bench_run_quiet ((const char * const *) argv->pdata);
}

/* Qlean helpers */

static void
spawn_or_die (QleanMachine *machine)
{
  g_autoptr(GError) error = NULL;

  if (!qlean_machine_spawn (machine, NULL, &error))
    g_error ("%s", error->message);
}

static char *
exec_or_die (QleanMachine *machine,
             const char   *command)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanExecResult) result = qlean_machine_exec (machine, command, NULL, &error);

  if (result == NULL || !qlean_exec_result_success (result))
    g_error ("exec %s failed: %s", command, error ? error->message : "non-zero exit");
  return g_strstrip (qlean_exec_result_get_stdout_text (result));
}

static void
kill_machine (QleanMachine *machine)
{
  qlean_machine_kill (machine, NULL, NULL);
}

typedef struct
{
  guint pending;
  guint failed;
} Spawns;

static void
spawned_cb (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  Spawns *spawns = user_data;
  g_autoptr(GError) error = NULL;

  if (!qlean_machine_spawn_finish (QLEAN_MACHINE (source), result, &error))
    {
      g_printerr ("spawn failed: %s\n", error->message);
      spawns->failed++;
    }
  spawns->pending--;
}

static void
wait_spawns (Spawns *spawns)
{
  while (spawns->pending > 0)
    g_main_context_iteration (NULL, TRUE);
  if (spawns->failed > 0)
    g_error ("%u machines failed to start", spawns->failed);
}

/* 1. Cold boot to the first command */

static double
boot_to_first_exec (QleanMachine *machine)
{
  double start = bench_now (), seconds;
  g_autofree char *out = NULL;

  spawn_or_die (machine);
  out = exec_or_die (machine, "true");
  seconds = bench_now () - start;
  kill_machine (machine);
  return seconds;
}

static double
boot_to_first_ssh (QleanMachine *machine)
{
  Spawns spawns = { 1, 0 };
  double start = bench_now (), seconds = -1;

  qlean_machine_spawn_async (machine, NULL, spawned_cb, &spawns);
  while (bench_now () - start < 120)
    {
      if (ssh_run (machine, "true", NULL))
        {
          seconds = bench_now () - start;
          break;
        }
      g_usleep (20000);
    }
  wait_spawns (&spawns);
  kill_machine (machine);
  if (seconds < 0)
    g_error ("SSH never answered within 120 s");
  return seconds;
}

static void
bench_boot (void)
{
  g_autoptr(GArray) plain = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GArray) exec = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GArray) ssh = g_array_new (FALSE, FALSE, sizeof (double));
  g_autofree char *q = NULL, *s = NULL, *r = NULL, *p = NULL;
  double exec_median, ssh_median;

  g_printerr ("cold boots (%d each)...\n", opt_boots);
  /* Interleaved, so that a change in host load hits all three alike. */
  for (int i = 0; i < opt_boots; i++)
    {
      g_autoptr(QleanMachine) a = qlean_machine_new (NULL, NULL);
      g_autoptr(QleanMachine) b = bench_ssh_machine_new (&ssh_image, SSH_MEMORY_MIB);
      g_autoptr(QleanMachine) c = bench_ssh_machine_new (&ssh_image, SSH_MEMORY_MIB);
      double t;

      t = boot_to_first_exec (a);
      g_array_append_val (plain, t);
      t = boot_to_first_exec (b);
      g_array_append_val (exec, t);
      t = boot_to_first_ssh (c);
      g_array_append_val (ssh, t);
    }

  exec_median = bench_percentile (exec, 0.5);
  ssh_median = bench_percentile (ssh, 0.5);
  p = g_strdup_printf ("%.2f s", bench_percentile (plain, 0.5));
  add_row ("cold boot -> first exec, minimal image (median)", p, "", "", "<= 1.0 s",
           bench_percentile (plain, 0.5) <= 1.0);
  q = g_strdup_printf ("%.2f s", exec_median);
  s = g_strdup_printf ("%.2f s", ssh_median);
  r = g_strdup_printf ("%.1fx", ssh_median / exec_median);
  add_row ("cold boot -> first command, SSH image (median)", q, s, r, "<= 1.0 s, >= 3x",
           exec_median <= 1.0 && ssh_median / exec_median >= 3);
  note ("Cold boots: %d of each, interleaved; from spawn to the first `true` returning. "
        "Minimal image: min %.2f, max %.2f s. SSH image via Qlean: min %.2f, max %.2f s; "
        "via SSH (new connection every 20 ms until one succeeds): min %.2f, max %.2f s.",
        opt_boots, g_array_index (plain, double, 0), g_array_index (plain, double, plain->len - 1),
        g_array_index (exec, double, 0), g_array_index (exec, double, exec->len - 1),
        g_array_index (ssh, double, 0), g_array_index (ssh, double, ssh->len - 1));
}

/* 2. Command round trip */

/* The same over the stock agent alone (guest-exec with captured output),
 * against @ssh_ms, SSH's median on a new connection in this run. */
static void
bench_exec_agent (double ssh_ms)
{
  g_autoptr(QleanMachine) agent = bench_ssh_machine_new_full (&ssh_image, SSH_MEMORY_MIB,
                                                              QLEAN_GUEST_TRANSPORT_AGENT);
  g_autoptr(GArray) exec = g_array_new (FALSE, FALSE, sizeof (double));
  g_autofree char *q = NULL, *s = NULL, *r = NULL;
  int n = MAX (opt_execs / 4, 10);
  double am;

  g_printerr ("exec round trips over the agent alone (%d)...\n", n);
  spawn_or_die (agent);
  for (int i = 0; i < 5; i++)
    g_free (exec_or_die (agent, "true"));
  for (int i = 0; i < n; i++)
    {
      double start = bench_now (), ms;

      g_free (exec_or_die (agent, "true"));
      ms = (bench_now () - start) * 1000;
      g_array_append_val (exec, ms);
    }
  kill_machine (agent);

  am = bench_percentile (exec, 0.5);
  q = g_strdup_printf ("%.1f ms (p99 %.1f)", am, bench_percentile (exec, 0.99));
  s = g_strdup_printf ("%.0f ms", ssh_ms);
  r = g_strdup_printf ("%.1fx", ssh_ms / am);
  add_row ("exec `true` over the agent alone vs ssh, new conn.", q, s, r, ">= 10x",
           ssh_ms / am >= 10);
}

static void
bench_exec (QleanMachine *machine)
{
  g_autoptr(GArray) exec = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GArray) ssh = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GArray) mux = g_array_new (FALSE, FALSE, sizeof (double));
  g_autofree char *control = g_build_filename (ssh_image.dir, "control.sock", NULL);
  g_autofree char *q = NULL, *s = NULL, *r = NULL, *m = NULL, *mr = NULL;
  const char *master[] = { "-fNM", NULL };
  const char *stop[] = { "-O", "exit", NULL };
  double em, sm, mm;

  g_printerr ("exec round trips (%d Qlean, %d SSH)...\n", opt_execs, opt_ssh_execs);
  for (int i = 0; i < 10; i++)
    g_free (exec_or_die (machine, "true"));
  for (int i = 0; i < opt_execs; i++)
    {
      double start = bench_now (), ms;

      g_free (exec_or_die (machine, "true"));
      ms = (bench_now () - start) * 1000;
      g_array_append_val (exec, ms);
    }

  ssh_run (machine, "true", NULL);
  for (int i = 0; i < opt_ssh_execs; i++)
    {
      double start = bench_now (), ms;

      if (!ssh_run (machine, "true", NULL))
        g_error ("ssh true failed");
      ms = (bench_now () - start) * 1000;
      g_array_append_val (ssh, ms);
    }

  /* The fairest SSH can be: one connection, reused (ControlMaster). */
  if (!bench_ssh_run (&ssh_image, bench_ssh_machine_get_port (machine), control, master, NULL))
    g_error ("ssh -M failed");
  for (int i = 0; i < opt_ssh_execs; i++)
    {
      double start = bench_now (), ms;

      if (!ssh_run (machine, "true", control))
        g_error ("ssh -S true failed");
      ms = (bench_now () - start) * 1000;
      g_array_append_val (mux, ms);
    }
  bench_ssh_run (&ssh_image, bench_ssh_machine_get_port (machine), control, stop, NULL);

  em = bench_percentile (exec, 0.5);
  sm = bench_percentile (ssh, 0.5);
  mm = bench_percentile (mux, 0.5);
  q = g_strdup_printf ("%.1f ms (p99 %.1f)", em, bench_percentile (exec, 0.99));
  s = g_strdup_printf ("%.0f ms (p99 %.0f)", sm, bench_percentile (ssh, 0.99));
  r = g_strdup_printf ("%.0fx", sm / em);
  add_row ("exec `true` vs ssh on a new connection (median)", q, s, r, ">= 20x", sm / em >= 20);
  m = g_strdup_printf ("%.0f ms (p99 %.0f)", mm, bench_percentile (mux, 0.99));
  mr = g_strdup_printf ("%.1fx", mm / em);
  add_row ("exec `true` vs ssh on a reused connection", q, m, mr, "", -1);

  bench_exec_agent (sm);
}

/* 3. Transfers */

static double
qga_upload (QleanMachine *machine,
            GBytes       *data,
            const char   *guest_path)
{
  g_autoptr(QleanQgaClient) qga = qlean_machine_dup_qga (machine);
  g_autoptr(GError) error = NULL;
  gsize size = g_bytes_get_size (data);
  double start = bench_now ();
  gint64 handle;

  handle = qlean_qga_client_file_open (qga, guest_path, "w", NULL, &error);
  if (handle < 0)
    g_error ("%s", error->message);
  for (gsize offset = 0; offset < size; offset += QGA_CHUNK)
    {
      g_autoptr(GBytes) chunk = g_bytes_new_from_bytes (data, offset, MIN (QGA_CHUNK, size - offset));

      if (qlean_qga_client_file_write (qga, handle, chunk, NULL, &error) < 0)
        g_error ("%s", error->message);
    }
  if (!qlean_qga_client_file_close (qga, handle, NULL, &error))
    g_error ("%s", error->message);

  return bench_now () - start;
}

static double
qga_download (QleanMachine *machine,
              const char   *guest_path,
              gsize         expected)
{
  g_autoptr(QleanQgaClient) qga = qlean_machine_dup_qga (machine);
  g_autoptr(GError) error = NULL;
  gsize got = 0;
  gboolean eof = FALSE;
  double start = bench_now ();
  gint64 handle;

  handle = qlean_qga_client_file_open (qga, guest_path, "r", NULL, &error);
  if (handle < 0)
    g_error ("%s", error->message);
  while (!eof)
    {
      g_autoptr(GBytes) chunk = qlean_qga_client_file_read (qga, handle, QGA_CHUNK, &eof, NULL, &error);

      if (chunk == NULL)
        g_error ("%s", error->message);
      got += g_bytes_get_size (chunk);
    }
  if (!qlean_qga_client_file_close (qga, handle, NULL, &error))
    g_error ("%s", error->message);
  if (got != expected)
    g_error ("guest-file-read got %zu bytes, expected %zu", got, expected);

  return bench_now () - start;
}

static void
check_guest_sha (QleanMachine *machine,
                 const char   *guest_path,
                 const char   *sha)
{
  g_autofree char *command = g_strdup_printf ("sha256sum %s", guest_path);
  g_autofree char *out = exec_or_die (machine, command);

  if (!g_str_has_prefix (out, sha))
    g_error ("%s in the guest does not match what was sent", guest_path);
}

static void
check_host_sha (const char *path,
                const char *sha)
{
  g_autofree char *got = sha256_file (path);

  if (!g_str_equal (got, sha))
    g_error ("%s does not match what the guest holds", path);
  g_unlink (path);
}

static char *
rate (gsize  bytes,
      double seconds)
{
  return g_strdup_printf ("%.1f MB/s", bytes / seconds / 1e6);
}

/* Seconds for @file up to @guest_path through the library and back to
 * @back (over whichever transport @machine has), each side checked
 * against @sha, then the guest's copy removed. */
static void
time_file (QleanMachine *machine,
           const char   *file,
           const char   *guest_path,
           const char   *back,
           const char   *sha,
           double       *up,
           double       *down)
{
  g_autoptr(GFile) source = g_file_new_for_path (file);
  g_autoptr(GFile) destination = g_file_new_for_path (back);
  g_autoptr(GError) error = NULL;
  g_autofree char *rm = g_strdup_printf ("rm -f %s", guest_path);
  double start;

  start = bench_now ();
  if (!qlean_machine_upload (machine, source, guest_path, NULL, &error))
    g_error ("%s", error->message);
  *up = bench_now () - start;
  check_guest_sha (machine, guest_path, sha);

  start = bench_now ();
  if (!qlean_machine_download (machine, guest_path, destination, NULL, &error))
    g_error ("%s", error->message);
  *down = bench_now () - start;
  check_host_sha (back, sha);
  g_free (exec_or_die (machine, rm));
}

static void
bench_transfers (void)
{
  g_autoptr(QleanMachine) machine = bench_ssh_machine_new (&ssh_image, TRANSFER_MEMORY_MIB);
  g_autoptr(QleanMachine) agent = bench_ssh_machine_new_full (&ssh_image, TRANSFER_MEMORY_MIB,
                                                              QLEAN_GUEST_TRANSPORT_AGENT);
  g_autofree char *dir = NULL;
  g_auto(GStrv) sizes = g_strsplit (opt_sizes ? opt_sizes : "1,64,512", ",", -1);
  g_autoptr(GError) error = NULL;

  g_printerr ("transfers...\n");
  spawn_or_die (machine);
  spawn_or_die (agent);
  dir = g_dir_make_tmp ("qlean-bench-files-XXXXXX", &error);
  if (dir == NULL)
    g_error ("%s", error->message);
  /* Wait for dropbear: the first command can come before it listens. */
  for (int i = 0; i < 500 && !ssh_run (machine, "true", NULL); i++)
    g_usleep (20000);

  for (guint i = 0; sizes[i] != NULL; i++)
    {
      guint mib = atoi (sizes[i]);
      gsize bytes = (gsize) mib * 1024 * 1024;
      g_autofree char *file = g_strdup_printf ("%s/data-%u", dir, mib);
      g_autofree char *back = g_strdup_printf ("%s/back-%u", dir, mib);
      g_autofree char *count = g_strdup_printf ("count=%u", mib);
      g_autofree char *of = g_strdup_printf ("of=%s", file);
      const char *dd[] = { "dd", "if=/dev/urandom", of, "bs=1M", count, "status=none", NULL };
      g_autofree char *qpath = g_strdup_printf ("/root/qlean-%u", mib);
      g_autofree char *spath = g_strdup_printf ("/root/scp-%u", mib);
      g_autofree char *sremote = g_strdup_printf ("root@127.0.0.1:%s", spath);
      g_autofree char *sha = NULL;
      g_autofree char *what = NULL, *q = NULL, *s = NULL, *r = NULL;
      g_autofree char *rm = NULL;
      double qup, qdown, sup, sdown, start;

      if (!bench_run_quiet (dd))
        g_error ("making %s failed", file);
      sha = sha256_file (file);

      time_file (machine, file, qpath, back, sha, &qup, &qdown);

      start = bench_now ();
      if (!scp_run (machine, file, sremote))
        g_error ("scp upload failed");
      sup = bench_now () - start;
      check_guest_sha (machine, spath, sha);

      start = bench_now ();
      if (!scp_run (machine, sremote, back))
        g_error ("scp download failed");
      sdown = bench_now () - start;
      check_host_sha (back, sha);
      g_free (rm);
      rm = g_strdup_printf ("rm -f %s", spath);
      g_free (exec_or_die (machine, rm));

      what = g_strdup_printf ("upload %u MiB (qlean_machine_upload vs scp)", mib);
      q = rate (bytes, qup);
      s = rate (bytes, sup);
      r = g_strdup_printf ("%.1fx", sup / qup);
      add_row (what, q, s, r, ">= 2x", sup / qup >= 2);
      g_free (what); g_free (q); g_free (s); g_free (r);
      what = g_strdup_printf ("download %u MiB (qlean_machine_download vs scp)", mib);
      q = rate (bytes, qdown);
      s = rate (bytes, sdown);
      r = g_strdup_printf ("%.1fx", sdown / qdown);
      add_row (what, q, s, r, ">= 2x", sdown / qdown >= 2);

      /* The agent's own file calls with no library (its ceiling) and
       * the library over the agent alone, on the same agent-only
       * machine, alternating, median of a few rounds: a small
       * transfer's time moves by half from one try to the next. Up to
       * 64 MiB: they move base64 in JSON at a few MB/s. */
      if (mib <= 64)
        {
          g_autofree char *contents = NULL;
          g_autoptr(GBytes) data = NULL;
          g_autoptr(GArray) gups = g_array_new (FALSE, FALSE, sizeof (double));
          g_autoptr(GArray) gdowns = g_array_new (FALSE, FALSE, sizeof (double));
          g_autoptr(GArray) aups = g_array_new (FALSE, FALSE, sizeof (double));
          g_autoptr(GArray) adowns = g_array_new (FALSE, FALSE, sizeof (double));
          guint rounds = mib <= 1 ? 5 : 1;
          double gup, gdown, aup, adown;
          gsize len;

          if (!g_file_get_contents (file, &contents, &len, &error))
            g_error ("%s", error->message);
          data = g_bytes_new_take (g_steal_pointer (&contents), len);
          for (guint round = 0; round < rounds; round++)
            {
              double t;

              t = qga_upload (agent, data, "/root/qga-file");
              g_array_append_val (gups, t);
              check_guest_sha (agent, "/root/qga-file", sha);
              t = qga_download (agent, "/root/qga-file", len);
              g_array_append_val (gdowns, t);
              g_free (exec_or_die (agent, "rm -f /root/qga-file"));

              time_file (agent, file, "/root/agent-file", back, sha, &aup, &adown);
              g_array_append_val (aups, aup);
              g_array_append_val (adowns, adown);
            }
          gup = bench_percentile (gups, 0.5);
          gdown = bench_percentile (gdowns, 0.5);
          aup = bench_percentile (aups, 0.5);
          adown = bench_percentile (adowns, 0.5);

          g_free (what); g_free (q); g_free (s); g_free (r);
          what = g_strdup_printf ("upload %u MiB, raw agent guest-file-write", mib);
          q = rate (bytes, gup);
          s = rate (bytes, sup);
          r = g_strdup_printf ("%.1fx", sup / gup);
          add_row (what, q, s, r, "", -1);
          g_free (what); g_free (q); g_free (s); g_free (r);
          what = g_strdup_printf ("download %u MiB, raw agent guest-file-read", mib);
          q = rate (bytes, gdown);
          s = rate (bytes, sdown);
          r = g_strdup_printf ("%.1fx", sdown / gdown);
          add_row (what, q, s, r, "", -1);

          /* Up against the raw agent's own ceiling, down against scp. */
          g_free (what); g_free (q); g_free (s); g_free (r);
          what = g_strdup_printf ("upload %u MiB over the agent alone (vs scp; raw agent %.2fx)",
                                  mib, gup / aup);
          q = rate (bytes, aup);
          s = rate (bytes, sup);
          r = g_strdup_printf ("%.1fx", sup / aup);
          add_row (what, q, s, r, ">= 0.9x raw agent", gup / aup >= 0.9);
          g_free (what); g_free (q); g_free (s); g_free (r);
          what = g_strdup_printf ("download %u MiB over the agent alone (vs scp)", mib);
          q = rate (bytes, adown);
          s = rate (bytes, sdown);
          r = g_strdup_printf ("%.1fx", sdown / adown);
          add_row (what, q, s, r, ">= 1x", sdown / adown >= 1);
        }
      g_unlink (file);
    }

  note ("Transfers: one machine with %u MiB (files live in its RAM-backed root), random data, "
        "each checked with sha256sum on the other side (not timed). scp runs with -O (the SCP "
        "protocol: dropbear has no SFTP server) and opens a new connection each time, as scp does. "
        "The raw agent rows move %u KiB per guest-file-read/write call, with no library, and the "
        "\"over the agent alone\" rows are qlean_machine_upload/download, both in a second machine "
        "whose transport is the agent (up to 64 MiB: a few MB/s), alternating, median of 5 rounds "
        "for 1 MiB.",
        TRANSFER_MEMORY_MIB, QGA_CHUNK / 1024);
  g_rmdir (dir);
  kill_machine (machine);
  kill_machine (agent);
}

/* 3b. A tree of 1,000 small files, over qlean-guest and over the agent
 * alone (one tar stream, lib/files/qlean-agent-tar.c), against scp -r in
 * the same run. */

#define TREE_DIRS 10
#define TREE_FILES_PER_DIR 100

/* TREE_DIRS directories of TREE_FILES_PER_DIR files of 1 KiB. */
static char *
make_bench_tree (const char *dir)
{
  char *tree = g_build_filename (dir, "tree", NULL);
  g_autofree char *data = g_malloc (1024);

  for (guint i = 0; i < 1024; i++)
    data[i] = 'a' + g_random_int_range (0, 26);
  for (guint d = 0; d < TREE_DIRS; d++)
    {
      g_autofree char *sub = g_strdup_printf ("%s/d%02u", tree, d);

      if (g_mkdir_with_parents (sub, 0755) != 0)
        g_error ("cannot make %s", sub);
      for (guint f = 0; f < TREE_FILES_PER_DIR; f++)
        {
          g_autofree char *path = g_strdup_printf ("%s/f%03u", sub, f);
          g_autoptr(GError) error = NULL;

          data[0] = 'a' + f % 26;
          if (!g_file_set_contents (path, data, 1024, &error))
            g_error ("%s", error->message);
        }
    }

  return tree;
}

static void
check_guest_tree (QleanMachine *machine,
                  const char   *guest_path)
{
  g_autofree char *command = g_strdup_printf ("find %s -type f | wc -l", guest_path);
  g_autofree char *count = exec_or_die (machine, command);

  if (atoi (count) != TREE_DIRS * TREE_FILES_PER_DIR)
    g_error ("%s holds %s files, not %d", guest_path, count, TREE_DIRS * TREE_FILES_PER_DIR);
}

static void
check_host_tree (const char *tree,
                 const char *back)
{
  const char *diff[] = { "diff", "-r", tree, back, NULL };
  const char *rm[] = { "rm", "-rf", back, NULL };

  if (!bench_run_quiet (diff))
    g_error ("%s differs from %s", back, tree);
  bench_run_quiet (rm);
}

/* Seconds for the tree @tree up to @guest_path and back to @back. */
static void
time_tree (QleanMachine *machine,
           const char   *tree,
           const char   *guest_path,
           const char   *back,
           double       *up,
           double       *down)
{
  g_autoptr(GFile) source = g_file_new_for_path (tree);
  g_autoptr(GFile) destination = g_file_new_for_path (back);
  g_autoptr(GError) error = NULL;
  g_autofree char *rm = g_strdup_printf ("rm -rf %s", guest_path);
  double start;

  start = bench_now ();
  if (!qlean_machine_upload (machine, source, guest_path, NULL, &error))
    g_error ("%s", error->message);
  *up = bench_now () - start;
  check_guest_tree (machine, guest_path);

  start = bench_now ();
  if (!qlean_machine_download (machine, guest_path, destination, NULL, &error))
    g_error ("%s", error->message);
  *down = bench_now () - start;
  check_host_tree (tree, back);
  g_free (exec_or_die (machine, rm));
}

static gboolean
scp_tree_run (QleanMachine *machine,
              const char   *from,
              const char   *to)
{
  g_autoptr(GPtrArray) argv = bench_ssh_argv (&ssh_image, bench_ssh_machine_get_port (machine), TRUE);

  g_ptr_array_add (argv, g_strdup ("-r"));
  g_ptr_array_add (argv, g_strdup (from));
  g_ptr_array_add (argv, g_strdup (to));
  g_ptr_array_add (argv, NULL);

  return bench_run_quiet ((const char * const *) argv->pdata);
}

static void
add_tree_row (const char *what,
              double      qlean,
              double      scp)
{
  g_autofree char *q = g_strdup_printf ("%.2f s", qlean);
  g_autofree char *s = g_strdup_printf ("%.2f s", scp);
  g_autofree char *r = g_strdup_printf ("%.1fx", scp / qlean);

  add_row (what, q, s, r, ">= 1x", scp / qlean >= 1);
}

static void
bench_trees (void)
{
  g_autoptr(QleanMachine) machine = bench_ssh_machine_new (&ssh_image, TRANSFER_MEMORY_MIB);
  g_autoptr(QleanMachine) agent = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("qlean-bench-tree-XXXXXX", &error);
  g_autofree char *tree = NULL;
  g_autofree char *back = NULL;
  g_autofree char *remote = NULL;
  const char *rm[] = { "rm", "-rf", dir, NULL };
  double gup, gdown, aup, adown, sup, sdown, start;

  if (dir == NULL)
    g_error ("%s", error->message);
  g_printerr ("trees...\n");
  tree = make_bench_tree (dir);
  back = g_build_filename (dir, "back", NULL);

  /* qlean-guest, then scp -r, into one machine. */
  spawn_or_die (machine);
  for (int i = 0; i < 500 && !ssh_run (machine, "true", NULL); i++)
    g_usleep (20000);
  time_tree (machine, tree, "/root/qlean-tree", back, &gup, &gdown);

  remote = g_strdup_printf ("root@127.0.0.1:%s", "/root/scp-tree");
  start = bench_now ();
  if (!scp_tree_run (machine, tree, remote))
    g_error ("scp -r upload failed");
  sup = bench_now () - start;
  check_guest_tree (machine, "/root/scp-tree");
  start = bench_now ();
  if (!scp_tree_run (machine, remote, back))
    g_error ("scp -r download failed");
  sdown = bench_now () - start;
  check_host_tree (tree, back);
  kill_machine (machine);

  /* The agent alone, in a machine where qlean-guest never starts. */
  agent = bench_ssh_machine_new_full (&ssh_image, TRANSFER_MEMORY_MIB, QLEAN_GUEST_TRANSPORT_AGENT);
  spawn_or_die (agent);
  time_tree (agent, tree, "/root/agent-tree", back, &aup, &adown);
  kill_machine (agent);

  add_tree_row ("upload 1,000-file tree, qlean-guest (vs scp -r)", gup, sup);
  add_tree_row ("upload 1,000-file tree, agent tar (vs scp -r)", aup, sup);
  add_tree_row ("download 1,000-file tree, qlean-guest (vs scp -r)", gdown, sdown);
  add_tree_row ("download 1,000-file tree, agent tar (vs scp -r)", adown, sdown);
  note ("Trees: %d directories of %d files of 1 KiB, checked by count in the guest and by diff -r "
        "on the host (not timed). The agent rows use a machine whose transport is the agent "
        "alone (qlean-guest not started): one tar stream each way through guest-file-* and the "
        "guest's busybox tar. Agent time / qlean-guest time: upload %.2f, download %.2f.",
        TREE_DIRS, TREE_FILES_PER_DIR, aup / gup, adown / gdown);
  bench_run_quiet (rm);
}

/* 4. Memory, 5. many machines */

static void
rss_of (QleanMachine *machine,
        double       *rss,
        double       *anon,
        double       *pss)
{
  GPid pid = qlean_machine_get_pid (machine);

  *rss = bench_proc_kib (pid, "status", "VmRSS") / 1024.0;
  *anon = bench_proc_kib (pid, "status", "RssAnon") / 1024.0;
  *pss = bench_proc_kib (pid, "smaps_rollup", "Pss") / 1024.0;
}

static void
bench_memory (void)
{
  g_autoptr(QleanMachine) plain = qlean_machine_new (NULL, NULL);
  g_autoptr(QleanMachine) ssh = bench_ssh_machine_new (&ssh_image, SSH_MEMORY_MIB);
  g_autofree char *q = NULL, *s = NULL, *r = NULL;
  double prss, panon, ppss, srss, sanon, spss;

  g_printerr ("memory...\n");
  spawn_or_die (plain);
  g_free (exec_or_die (plain, "true"));
  spawn_or_die (ssh);
  g_free (exec_or_die (ssh, "true"));
  for (int i = 0; i < 500 && !ssh_run (ssh, "true", NULL); i++)
    g_usleep (20000);
  rss_of (plain, &prss, &panon, &ppss);
  rss_of (ssh, &srss, &sanon, &spss);

  q = g_strdup_printf ("%.0f MiB", prss);
  s = g_strdup_printf ("%.0f MiB", srss);
  r = g_strdup_printf ("%.2fx", srss / prss);
  add_row ("QEMU VmRSS per machine, booted and idle", q, s, r, "<= 100 MiB", prss <= 100);
  note ("Memory: QEMU's VmRSS after boot and one command. Qlean column: the default minimal "
        "machine (256 MiB guest, no network; RssAnon %.0f, Pss %.0f MiB). SSH column: the same "
        "guest with dropbear and a user-mode network card (RssAnon %.0f, Pss %.0f MiB).",
        panon, ppss, sanon, spss);
  kill_machine (plain);
  kill_machine (ssh);
}

static double
many_ready (guint    n,
            gboolean by_ssh,
            double  *rss_avg)
{
  g_autoptr(GPtrArray) machines = g_ptr_array_new_with_free_func (g_object_unref);
  Spawns spawns = { n, 0 };
  g_autofree gboolean *answered = g_new0 (gboolean, n);
  guint left = n;
  double start, seconds;

  for (guint i = 0; i < n; i++)
    g_ptr_array_add (machines, bench_ssh_machine_new (&ssh_image, SSH_MEMORY_MIB));

  start = bench_now ();
  for (guint i = 0; i < n; i++)
    qlean_machine_spawn_async (g_ptr_array_index (machines, i), NULL, spawned_cb, &spawns);

  if (by_ssh)
    {
      while (left > 0 && bench_now () - start < 300)
        {
          for (guint i = 0; i < n; i++)
            if (!answered[i] && ssh_run (g_ptr_array_index (machines, i), "true", NULL))
              {
                answered[i] = TRUE;
                left--;
              }
          g_main_context_iteration (NULL, FALSE);
        }
      if (left > 0)
        g_error ("%u machines never answered SSH", left);
      seconds = bench_now () - start;
      wait_spawns (&spawns);
    }
  else
    {
      wait_spawns (&spawns);
      for (guint i = 0; i < n; i++)
        g_free (exec_or_die (g_ptr_array_index (machines, i), "true"));
      seconds = bench_now () - start;
    }

  *rss_avg = 0;
  for (guint i = 0; i < n; i++)
    {
      double rss, anon, pss;

      rss_of (g_ptr_array_index (machines, i), &rss, &anon, &pss);
      *rss_avg += rss / n;
      kill_machine (g_ptr_array_index (machines, i));
    }

  return seconds;
}

static void
bench_many (void)
{
  g_autofree char *q = NULL, *s = NULL, *r = NULL, *what = NULL;
  double qt, st, qrss, srss;

  if (opt_pool <= 0)
    return;

  g_printerr ("%d machines at once...\n", opt_pool);
  qt = many_ready (opt_pool, FALSE, &qrss);
  st = many_ready (opt_pool, TRUE, &srss);
  what = g_strdup_printf ("%d machines started together -> all ran a command", opt_pool);
  q = g_strdup_printf ("%.1f s", qt);
  s = g_strdup_printf ("%.1f s", st);
  r = g_strdup_printf ("%.1fx", st / qt);
  add_row (what, q, s, r, "", -1);
  note ("%d machines at once: the SSH image (%d MiB each), all spawned together; Qlean: until "
        "every spawn completed and each ran `true`; SSH: until each answered `ssh true` (tried in "
        "turn, a new connection each time). QEMU VmRSS per machine with all %d running: "
        "%.0f MiB (Qlean round), %.0f MiB (SSH round).",
        opt_pool, SSH_MEMORY_MIB, opt_pool, qrss, srss);

  if (opt_pool_bench != NULL && g_file_test (opt_pool_bench, G_FILE_TEST_IS_EXECUTABLE))
    {
      g_autofree char *n = g_strdup_printf ("%d", opt_pool);
      const char *argv[] = { opt_pool_bench, n, NULL };
      g_autoptr(GError) error = NULL;
      g_autofree char *out = NULL;

      g_printerr ("QleanPool of %d (bench/pool)...\n", opt_pool);
      out = bench_run_capture (argv, &error);
      if (out == NULL)
        note ("bench/pool %d failed: %s", opt_pool, error->message);
      else
        {
          g_auto(GStrv) lines = g_strsplit (g_strstrip (out), "\n", -1);
          guint last = g_strv_length (lines) - 1;
          g_auto(GStrv) fields = g_strsplit_set (g_strstrip (lines[last]), " ", -1);
          g_autoptr(GPtrArray) words = g_ptr_array_new ();
          guint ready = 1;

          for (guint i = 0; fields[i] != NULL; i++)
            if (*fields[i] != '\0')
              g_ptr_array_add (words, fields[i]);
          /* Its last line: machines, then (since memory templates) a
           * yes/no template column, then the time to ready. */
          if (words->len >= 2 && (g_str_equal (g_ptr_array_index (words, 1), "yes") ||
                                  g_str_equal (g_ptr_array_index (words, 1), "no")))
            ready = 2;

          if (words->len > ready)
            {
              g_autofree char *w = g_strdup_printf ("QleanPool of %d with its network -> spawn_all done "
                                                    "(bench/pool)", opt_pool);
              g_autofree char *t = g_strdup_printf ("%s s", (char *) g_ptr_array_index (words, ready));

              add_row (w, t, "", "", "", -1);
            }
          note ("bench/pool %d said:\n\n```\n%s\n```\n", opt_pool, out);
        }
    }
}

/* Shared folders: bench-shares measures 9p and virtiofs against
 * uploads in a run of its own; its table goes into the notes whole. */
static void
bench_shares (void)
{
  const char *argv[] = { opt_shares_bench, "--rounds", "3", NULL };
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;

  if (opt_shares_bench == NULL || !g_file_test (opt_shares_bench, G_FILE_TEST_IS_EXECUTABLE))
    return;

  g_printerr ("Shared folders (bench/shares)...\n");
  out = bench_run_capture (argv, &error);
  if (out == NULL)
    note ("bench/shares failed: %s", error->message);
  else
    note ("bench/shares --rounds 3 said:\n\n```\n%s\n```\n", g_strstrip (out));
}

/* Output */

static char *
machine_description (void)
{
  g_autofree char *cpuinfo = NULL;
  g_autofree char *model = g_strdup ("unknown CPU");
  g_autofree char *qemu = NULL;
  g_autofree char *loadavg = NULL;
  g_autoptr(GDateTime) date = g_date_time_new_now_local ();
  g_autofree char *when = g_date_time_format (date, "%F %T %Z");
  const char *qemu_argv[] = { "qemu-system-x86_64", "--version", NULL };
  struct utsname uts;
  const char *line;

  if (g_file_get_contents ("/proc/cpuinfo", &cpuinfo, NULL, NULL) &&
      (line = strstr (cpuinfo, "model name")) != NULL)
    {
      line = strchr (line, ':');
      if (line != NULL)
        {
          g_free (model);
          model = g_strndup (line + 2, strcspn (line + 2, "\n"));
        }
    }
  qemu = bench_run_capture (qemu_argv, NULL);
  if (qemu != NULL)
    qemu[strcspn (qemu, "\n")] = '\0';
  g_file_get_contents ("/proc/loadavg", &loadavg, NULL, NULL);
  uname (&uts);

  return g_strdup_printf ("- CPU: %s, %u cores (TCG%s)\n- Kernel: %s %s\n- QEMU: %s\n"
                          "- Date: %s\n- Load average at the start: %s",
                          model, g_get_num_processors (),
                          g_file_test ("/dev/kvm", G_FILE_TEST_EXISTS) ? " unless KVM works" : ", no /dev/kvm",
                          uts.sysname, uts.release, qemu ? qemu : "unknown",
                          when, loadavg ? g_strstrip (loadavg) : "?");
}

static void
write_results (const char *machine)
{
  GString *md = g_string_new (NULL);
  g_autoptr(GError) error = NULL;

  g_string_append (md, "# Benchmark results\n\n"
                       "Written by `bench/run` (bench/bench-compare.c): Qlean against SSH into the "
                       "same guest in the same run. Regenerate with `bench/run`.\n\n## Machine\n\n");
  g_string_append_printf (md, "%s\n\n## Results\n\n", machine);
  g_string_append (md, "| Measure | Qlean | SSH | SSH / Qlean | Target | |\n|---|---|---|---|---|---|\n");
  for (guint i = 0; i < rows->len; i++)
    {
      Row *row = g_ptr_array_index (rows, i);

      g_string_append_printf (md, "| %s | %s | %s | %s | %s | %s |\n", row->what, row->qlean,
                              row->ssh, row->ratio, row->target, row->verdict);
    }
  g_string_append_printf (md, "\n## Notes\n\n%s", notes->str);

  if (!g_file_set_contents (opt_results, md->str, md->len, &error))
    g_error ("%s", error->message);
  g_string_free (md, TRUE);
}

static gboolean
wanted (const char *part)
{
  g_auto(GStrv) parts = NULL;

  if (opt_only == NULL)
    return TRUE;
  parts = g_strsplit (opt_only, ",", -1);
  return g_strv_contains ((const char * const *) parts, part);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GOptionContext) context = g_option_context_new ("- Qlean against SSH in the same guest");
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanImage) image = qlean_image_new_minimal ();
  g_autoptr(QleanMachine) machine = NULL;
  g_autofree char *description = NULL;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    g_error ("%s", error->message);

  rows = g_ptr_array_new_with_free_func ((GDestroyNotify) row_free);
  notes = g_string_new (NULL);
  description = machine_description ();
  g_printerr ("%s\n\n", description);

  /* One-time costs first: building the images is no boot's. */
  if (!qlean_image_prepare (image, NULL, &error))
    g_error ("%s", error->message);
  bench_ssh_image_build (&ssh_image, opt_workdir, TRUE);

  if (opt_only != NULL)
    {
      const char *known[] = { "boot", "exec", "transfers", "trees", "memory", "many", "shares",
                              NULL };
      g_auto(GStrv) parts = g_strsplit (opt_only, ",", -1);

      for (guint i = 0; parts[i] != NULL; i++)
        if (!g_strv_contains (known, parts[i]))
          g_error ("--only: unknown part “%s” (boot, exec, transfers, trees, memory, many, shares)",
                   parts[i]);
    }

  if (wanted ("boot"))
    bench_boot ();

  if (wanted ("exec"))
    {
      machine = bench_ssh_machine_new (&ssh_image, SSH_MEMORY_MIB);
      spawn_or_die (machine);
      for (int i = 0; i < 500 && !ssh_run (machine, "true", NULL); i++)
        g_usleep (20000);
      bench_exec (machine);
      kill_machine (machine);
    }

  if (wanted ("transfers"))
    bench_transfers ();
  if (wanted ("trees"))
    bench_trees ();
  if (wanted ("memory"))
    bench_memory ();
  if (wanted ("many"))
    bench_many ();
  if (wanted ("shares"))
    bench_shares ();

  g_print ("\n%-52s | %-22s | %-22s | %-11s | %-16s |\n", "Measure", "Qlean", "SSH", "SSH / Qlean", "Target");
  for (guint i = 0; i < rows->len; i++)
    {
      Row *row = g_ptr_array_index (rows, i);

      g_print ("%-52s | %-22s | %-22s | %-11s | %-16s | %s\n", row->what, row->qlean, row->ssh,
               row->ratio, row->target, row->verdict);
    }
  g_print ("\n%s", notes->str);

  if (opt_results != NULL)
    write_results (description);

  if (opt_workdir == NULL)
    bench_ssh_image_remove_dir (&ssh_image);

  return 0;
}
