/* bench-exec.c: the round trip of `true`, Qlean against SSH in one guest
 *
 * SPDX-License-Identifier: MIT
 *
 * One minimal machine, booted with dropbear beside qlean-guest and
 * qemu-ga (the image's init starts it with qlean.ssh=1; see
 * data/minimal/init), reached over QEMU's user network. In the same run:
 *
 *   - qlean_machine_exec ("true"): `/bin/sh -c true` through qlean-guest;
 *   - a QleanGuestLauncher running argv { "true" } (no shell);
 *   - `ssh root@guest true` on a new connection each time (what a test
 *     runner that shells out to ssh per command pays);
 *   - the same on one multiplexed connection (ssh -o ControlMaster);
 *   - and, for what a forward costs, ssh on a new connection through
 *     qlean_machine_forward_port() to the guest's port 22;
 *   - and the same two Qlean calls on a second machine that uses the
 *     stock QEMU guest agent alone (guest-transport "agent", its guest
 *     without qlean-guest: qlean.noguest=1), measured while the first
 *     one idles.
 *
 * Without dropbear, ssh or a qlean.ssh-aware init it measures Qlean alone
 * and says why. The SSH image is bench/bench-ssh.c's, as bench-compare
 * uses it (without scp), in a temporary directory.
 *
 * Then bench-exec-steps.c's breakdown of one round trip on a machine of
 * its own (--steps 0 leaves it out).
 *
 *   bench-exec [--execs N] [--ssh-execs N] [--no-ssh] [--steps N]
 */

#include "config.h"

#include <string.h>
#include <unistd.h>
#include <sys/utsname.h>

#include <qlean/qlean.h>

#include "bench-common.h"
#include "bench-exec-steps.h"
#include "bench-ssh.h"

#define SSH_MEMORY_MIB 256

static int opt_execs = 200;
static int opt_ssh_execs = 50;
static gboolean opt_no_ssh;
static int opt_steps = 100;

static const GOptionEntry entries[] = {
  { "execs", 0, 0, G_OPTION_ARG_INT, &opt_execs, "Qlean round trips (default 200)", "N" },
  { "ssh-execs", 0, 0, G_OPTION_ARG_INT, &opt_ssh_execs, "SSH round trips per way (default 50)", "N" },
  { "no-ssh", 0, 0, G_OPTION_ARG_NONE, &opt_no_ssh, "Measure Qlean only", NULL },
  { "steps", 0, 0, G_OPTION_ARG_INT, &opt_steps, "Round trips per way of the breakdown (default 100; 0 skips it)", "N" },
  { NULL }
};

/* The SSH image */

static BenchSshImage ssh_image;

/* Why SSH cannot be measured here, or NULL. */
static char *
ssh_missing (void)
{
  g_autofree char *init = NULL;
  const char *tools[] = { "dropbearkey", "ssh", "ssh-keygen", NULL };

  if (opt_no_ssh)
    return g_strdup ("--no-ssh");
  if (!g_file_test ("/usr/sbin/dropbear", G_FILE_TEST_IS_EXECUTABLE))
    return g_strdup ("dropbear is not installed (apt-get install dropbear-bin)");
  for (guint i = 0; tools[i] != NULL; i++)
    {
      g_autofree char *path = g_find_program_in_path (tools[i]);
      g_autofree char *sbin = g_build_filename ("/usr/sbin", tools[i], NULL);

      if (path == NULL && !g_file_test (sbin, G_FILE_TEST_IS_EXECUTABLE))
        return g_strdup_printf ("%s is missing (apt-get install dropbear-bin openssh-client)", tools[i]);
    }
  if (!g_file_get_contents (QLEAN_SOURCE_DATADIR "/minimal/init", &init, NULL, NULL) ||
      strstr (init, "qlean.ssh") == NULL)
    return g_strdup ("the minimal image's init has no SSH variant (qlean.ssh=1)");

  return NULL;
}

/* The accelerator the machine really gets ("kvm", "tcg,..."), from its
 * QEMU command line. */
static char *
machine_accel (QleanMachine *machine)
{
  g_auto(GStrv) argv = qlean_machine_dry_run (machine, NULL);

  for (guint i = 0; argv != NULL && argv[i] != NULL && argv[i + 1] != NULL; i++)
    if (g_str_equal (argv[i], "-accel"))
      return g_strdup (argv[i + 1]);
  return g_strdup ("unknown");
}

/* Measures */

static void
exec_true (QleanMachine *machine)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanExecResult) result = qlean_machine_exec (machine, "true", NULL, &error);

  if (result == NULL || !qlean_exec_result_success (result))
    g_error ("exec true failed: %s", error ? error->message : "non-zero exit");
}

static void
launch_true (QleanMachine       *machine,
             QleanGuestLauncher *launcher)
{
  const char * const argv[] = { "true", NULL };
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanExecResult) result = qlean_guest_launcher_run (launcher, machine, argv, NULL, &error);

  if (result == NULL || !qlean_exec_result_success (result))
    g_error ("true failed: %s", error ? error->message : "non-zero exit");
}

/* @n round trips of exec_true(), or of launch_true() when @launcher is
 * given, each appended to @times in ms. */
static void
time_round_trips (QleanMachine       *machine,
                  QleanGuestLauncher *launcher,
                  int                 n,
                  GArray             *times)
{
  for (int i = 0; i < n; i++)
    {
      double start = bench_now (), ms;

      if (launcher != NULL)
        launch_true (machine, launcher);
      else
        exec_true (machine);
      ms = (bench_now () - start) * 1000;
      g_array_append_val (times, ms);
    }
}

/* The same two Qlean calls on a machine of @image that uses the guest
 * agent alone, its guest without qlean-guest. */
static void
time_agent_alone (QleanImage         *image,
                  QleanGuestLauncher *launcher,
                  GArray             *exec_times,
                  GArray             *argv_times)
{
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GError) error = NULL;

  qlean_machine_config_set_guest_transport (config, QLEAN_GUEST_TRANSPORT_AGENT);
  qlean_machine_config_set_cmdline (config, "qlean.noguest=1");
  machine = qlean_machine_new_with_name ("bench-exec-agent", image, config);
  if (!qlean_machine_spawn (machine, NULL, &error))
    g_error ("%s", error->message);
  for (int i = 0; i < 10; i++)
    {
      exec_true (machine);
      launch_true (machine, launcher);
    }
  time_round_trips (machine, NULL, opt_execs, exec_times);
  time_round_trips (machine, launcher, opt_execs, argv_times);
  qlean_machine_kill (machine, NULL, NULL);
}

/* @n round trips of `ssh true` to @port, through the master of
 * @control when given, each appended to @times in ms. */
static void
time_ssh (guint       port,
          const char *control,
          GArray     *times)
{
  for (int i = 0; i < opt_ssh_execs; i++)
    {
      double start = bench_now (), ms;

      if (!bench_ssh_run (&ssh_image, port, control, NULL, "true"))
        g_error ("ssh true to port %u%s failed", port, control ? " (multiplexed)" : "");
      ms = (bench_now () - start) * 1000;
      g_array_append_val (times, ms);
    }
}

/* The three SSH ways into @machine's guest: a new connection per command,
 * one multiplexed connection, and a new connection over a Qlean forward
 * (its TCP carried by qlean-guest instead of QEMU's user network). */
static void
time_ssh_ways (QleanMachine *machine,
               guint         ssh_port,
               GArray       *ssh_times,
               GArray       *mux_times,
               GArray       *fwd_times)
{
  const char *master[] = { "-fNM", NULL };
  const char *stop[] = { "-O", "exit", NULL };
  g_autofree char *control = g_build_filename (ssh_image.dir, "control.sock", NULL);
  g_autoptr(GError) error = NULL;
  guint fwd_port;

  /* dropbear starts after the agent answers: wait for it. */
  for (int i = 0; i < 500 && !bench_ssh_run (&ssh_image, ssh_port, NULL, NULL, "true"); i++)
    g_usleep (20 * 1000);
  time_ssh (ssh_port, NULL, ssh_times);

  if (!bench_ssh_run (&ssh_image, ssh_port, control, master, NULL))
    g_error ("ssh -M failed");
  for (int i = 0; i < 3; i++)
    bench_ssh_run (&ssh_image, ssh_port, control, NULL, "true");
  time_ssh (ssh_port, control, mux_times);
  bench_ssh_run (&ssh_image, ssh_port, control, stop, NULL);

  fwd_port = qlean_machine_forward_port (machine, 0, 22, &error);
  if (fwd_port == 0)
    g_error ("%s", error->message);
  time_ssh (fwd_port, NULL, fwd_times);
}

typedef struct
{
  const char *what;
  double      median;
  double      p99;
  double      mean;
  guint       n;
} Figure;

static Figure
figure (const char *what,
        GArray     *times)
{
  Figure f = { what, 0, 0, 0, times->len };

  for (guint i = 0; i < times->len; i++)
    f.mean += g_array_index (times, double, i) / times->len;
  f.median = bench_percentile (times, 0.5);
  f.p99 = bench_percentile (times, 0.99);
  return f;
}

static void
print_figure (const Figure *f,
              const Figure *qlean)
{
  g_autofree char *ratio = qlean != NULL && qlean != f
                           ? g_strdup_printf ("%.1fx", f->median / qlean->median) : g_strdup ("");

  g_print ("%-52s %5u %9.2f %9.2f %9.2f  %s\n", f->what, f->n, f->median, f->p99, f->mean, ratio);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GOptionContext) context = g_option_context_new ("- exec round trip, Qlean against SSH");
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanImage) image = qlean_image_new_minimal ();
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(QleanGuestLauncher) launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_NONE);
  g_autoptr(GArray) qlean_times = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GArray) argv_times = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GArray) ssh_times = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GArray) mux_times = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GArray) fwd_times = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GArray) agent_exec_times = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GArray) agent_argv_times = g_array_new (FALSE, FALSE, sizeof (double));
  g_autofree char *missing = NULL;
  g_autofree char *accel = NULL;
  g_autofree char *load = bench_load_average ();
  struct utsname uts;
  Figure q, a;
  guint ssh_port = 0;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    g_error ("%s", error->message);

  uname (&uts);
  missing = ssh_missing ();
  if (!qlean_image_prepare (image, NULL, &error))
    g_error ("%s", error->message);
  if (missing == NULL)
    {
      bench_ssh_image_build (&ssh_image, NULL, FALSE);
      machine = bench_ssh_machine_new (&ssh_image, SSH_MEMORY_MIB);
      ssh_port = bench_ssh_machine_get_port (machine);
    }
  else
    machine = qlean_machine_new (image, NULL);
  accel = machine_accel (machine);
  if (!qlean_machine_spawn (machine, NULL, &error))
    g_error ("%s", error->message);
  g_print ("%s %s, %ld CPUs, -accel %s, load %s; %d Qlean and %d SSH round trips per way\n",
           uts.sysname, uts.release, sysconf (_SC_NPROCESSORS_ONLN), accel,
           load, opt_execs, missing ? 0 : opt_ssh_execs);

  /* Warm up both paths, then alternate nothing: each way gets the
   * machine to itself. */
  for (int i = 0; i < 10; i++)
    {
      exec_true (machine);
      launch_true (machine, launcher);
    }
  time_round_trips (machine, NULL, opt_execs, qlean_times);
  time_round_trips (machine, launcher, opt_execs, argv_times);

  time_agent_alone (image, launcher, agent_exec_times, agent_argv_times);

  if (missing == NULL)
    time_ssh_ways (machine, ssh_port, ssh_times, mux_times, fwd_times);

  q = figure ("qlean_machine_exec (\"true\") [sh -c]", qlean_times);
  a = figure ("QleanGuestLauncher argv {\"true\"}", argv_times);
  g_print ("\n%-52s %5s %9s %9s %9s  %s\n", "round trip of `true`, ms", "n", "median", "p99", "mean",
           "median / Qlean's");
  print_figure (&q, &q);
  print_figure (&a, &q);
  {
    Figure ae = figure ("agent alone: qlean_machine_exec (\"true\") [sh -c]", agent_exec_times);
    Figure aa = figure ("agent alone: QleanGuestLauncher argv {\"true\"}", agent_argv_times);

    print_figure (&ae, &q);
    print_figure (&aa, &q);
  }
  if (missing == NULL)
    {
      Figure s = figure ("ssh, a new connection per command", ssh_times);
      Figure m = figure ("ssh, one multiplexed connection (ControlMaster)", mux_times);
      Figure f = figure ("ssh, new connection, over a Qlean port forward", fwd_times);

      print_figure (&s, &q);
      print_figure (&m, &q);
      print_figure (&f, &q);
      g_print ("\nQlean exec is %.0fx faster than ssh with a new connection per command "
               "(target >= 30x: %s), %.1fx than a multiplexed ssh connection (target >= 5x: %s)\n",
               s.median / q.median, s.median / q.median >= 30 ? "met" : "MISSED",
               m.median / q.median, m.median / q.median >= 5 ? "met" : "MISSED");
    }
  else
    g_print ("\nSSH not measured: %s\n", missing);
  g_print ("Qlean median %.2f ms (target <= 5 ms: %s)\n", q.median, q.median <= 5 ? "met" : "MISSED");

  qlean_machine_kill (machine, NULL, NULL);
  bench_ssh_image_remove_dir (&ssh_image);
  if (opt_steps > 0)
    bench_exec_steps (image, opt_steps);
  g_free (load);
  load = bench_load_average ();
  g_print ("\nload %s at the end\n", load);
  return 0;
}
