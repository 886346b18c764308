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
 *     qlean_machine_forward_port() to the guest's port 22.
 *
 * Without dropbear, ssh or a qlean.ssh-aware init it measures Qlean alone
 * and says why. The SSH image is built as bench/bench-compare.c builds
 * it (the same keys and files), in a temporary directory.
 *
 *   bench-exec [--execs N] [--ssh-execs N] [--no-ssh]
 */

#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/utsname.h>

#include <qlean/qlean.h>

#include "qlean-image-private.h"

#define SSH_MEMORY_MIB 256

static int opt_execs = 200;
static int opt_ssh_execs = 50;
static gboolean opt_no_ssh;

static const GOptionEntry entries[] = {
  { "execs", 0, 0, G_OPTION_ARG_INT, &opt_execs, "Qlean round trips (default 200)", "N" },
  { "ssh-execs", 0, 0, G_OPTION_ARG_INT, &opt_ssh_execs, "SSH round trips per way (default 50)", "N" },
  { "no-ssh", 0, 0, G_OPTION_ARG_NONE, &opt_no_ssh, "Measure Qlean only", NULL },
  { NULL }
};

/* Statistics */

static int
compare_doubles (const void *a,
                 const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return (x > y) - (x < y);
}

static double
percentile (GArray *values,
            double  p)
{
  guint index;

  qsort (values->data, values->len, sizeof (double), compare_doubles);
  index = (guint) (p * (values->len - 1) + 0.5);
  return g_array_index (values, double, index);
}

static char *
load_average (void)
{
  g_autofree char *text = NULL;

  if (!g_file_get_contents ("/proc/loadavg", &text, NULL, NULL))
    return g_strdup ("unknown");
  text[strcspn (text, " ")] = '\0';
  return g_steal_pointer (&text);
}

static double
now_ms (void)
{
  return g_get_monotonic_time () / 1000.0;
}

/* Host helpers */

static char *
run_capture (const char * const  *argv,
             GError             **error)
{
  g_autoptr(GSubprocess) process = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  process = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE,
                               error);
  if (process == NULL || !g_subprocess_communicate_utf8 (process, NULL, NULL, &out, &err, error))
    return NULL;
  if (!g_subprocess_get_successful (process))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s failed: %s", argv[0],
                   err && *err ? g_strstrip (err) : "no message");
      return NULL;
    }
  return g_steal_pointer (&out);
}

static gboolean
run_quiet (const char * const *argv)
{
  g_autoptr(GSubprocess) process = NULL;

  process = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_STDOUT_SILENCE | G_SUBPROCESS_FLAGS_STDERR_SILENCE,
                               NULL);
  return process != NULL && g_subprocess_wait_check (process, NULL, NULL);
}

static guint
free_port (void)
{
  struct sockaddr_in address = { .sin_family = AF_INET };
  socklen_t len = sizeof address;
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  guint port;

  address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  if (fd < 0 || bind (fd, (struct sockaddr *) &address, sizeof address) != 0 ||
      getsockname (fd, (struct sockaddr *) &address, &len) != 0)
    g_error ("no free local port");
  port = ntohs (address.sin_port);
  close (fd);
  return port;
}

/* The SSH image (as bench-compare.c builds it) */

typedef struct
{
  char *dir;
  char *kernel;
  char *initrd;
  char *key;
} SshImage;

static SshImage ssh_image;

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

static void
add_libraries (GPtrArray  *adds,
               const char *program)
{
  const char *argv[] = { "ldd", program, NULL };
  g_autoptr(GError) error = NULL;
  g_autofree char *out = run_capture (argv, &error);
  g_auto(GStrv) lines = NULL;

  if (out == NULL)
    g_error ("ldd %s: %s", program, error->message);

  lines = g_strsplit (out, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      const char *path = strstr (lines[i], "=> /");
      g_autofree char *lib = NULL;

      if (path != NULL)
        path += 3;
      else if (g_str_has_prefix (g_strstrip (lines[i]), "/"))
        path = lines[i];
      else
        continue;

      lib = g_strndup (path, strcspn (path, " "));
      /* The builder copies with cp -a: a library path that is a symlink
       * (libz.so.1, /lib64/ld-linux-x86-64.so.2) must bring its target,
       * or it dangles in the image and nothing dynamic runs. */
      {
        g_autofree char *real = realpath (lib, NULL);

        g_ptr_array_add (adds, g_strdup_printf ("%s:%s", real ? real : lib, lib));
      }
    }
}

static void
build_ssh_image (void)
{
  g_auto(QleanMinimalInputs) inputs = { 0 };
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) adds = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) process = NULL;
  g_autofree char *log = NULL;
  g_autofree char *host_key = NULL;
  g_autofree char *authorized = NULL;
  g_autofree char *public_key = NULL;
  g_autofree char *vmlinux = NULL;
  g_autofree char *contents = NULL;
  const char *source_root = QLEAN_SOURCE_DATADIR "/..";

  if (!qlean_minimal_find_inputs (&inputs, &error))
    g_error ("%s", error->message);

  ssh_image.dir = g_dir_make_tmp ("qlean-bench-exec-XXXXXX", &error);
  if (ssh_image.dir == NULL)
    g_error ("%s", error->message);
  host_key = g_build_filename (ssh_image.dir, "dropbear_ed25519_host_key", NULL);
  ssh_image.key = g_build_filename (ssh_image.dir, "id_ed25519", NULL);
  public_key = g_strconcat (ssh_image.key, ".pub", NULL);
  authorized = g_build_filename (ssh_image.dir, "authorized_keys", NULL);
  ssh_image.initrd = g_build_filename (ssh_image.dir, "initramfs-ssh.img", NULL);
  vmlinux = g_build_filename (ssh_image.dir, "vmlinux", NULL);

  {
    const char *dropbearkey[] = { "dropbearkey", "-t", "ed25519", "-f", host_key, NULL };
    const char *keygen[] = { "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", ssh_image.key, NULL };

    if (!run_quiet (dropbearkey) || !run_quiet (keygen))
      g_error ("making the SSH keys failed");
  }
  if (!g_file_get_contents (public_key, &contents, NULL, &error) ||
      !g_file_set_contents_full (authorized, contents, -1, G_FILE_SET_CONTENTS_NONE, 0600, &error))
    g_error ("%s", error->message);

  if (inputs.guest != NULL)
    g_ptr_array_add (adds, g_strdup_printf ("%s:/usr/lib/qlean/qlean-guest", inputs.guest));
  g_ptr_array_add (adds, g_strdup ("/usr/sbin/dropbear:/usr/sbin/dropbear"));
  add_libraries (adds, "/usr/sbin/dropbear");
  g_ptr_array_add (adds, g_strdup_printf ("%s:/etc/dropbear/dropbear_ed25519_host_key", host_key));
  g_ptr_array_add (adds, g_strdup_printf ("%s:/root/.ssh/authorized_keys", authorized));

  g_ptr_array_add (argv, g_strdup ("bash"));
  g_ptr_array_add (argv, g_build_filename (source_root, "tools", "qlean-build-initramfs.sh", NULL));
  g_ptr_array_add (argv, g_strdup ("--kernel-release"));
  g_ptr_array_add (argv, g_strdup (inputs.kernel_release));
  g_ptr_array_add (argv, g_strdup ("--modules-dir"));
  g_ptr_array_add (argv, g_strdup (inputs.modules_dir));
  g_ptr_array_add (argv, g_strdup ("--init"));
  g_ptr_array_add (argv, g_build_filename (QLEAN_SOURCE_DATADIR, "minimal", "init", NULL));
  g_ptr_array_add (argv, g_strdup ("--output"));
  g_ptr_array_add (argv, g_strdup (ssh_image.initrd));
  g_ptr_array_add (argv, g_strdup ("--kernel"));
  g_ptr_array_add (argv, g_strdup (inputs.kernel));
  g_ptr_array_add (argv, g_strdup ("--vmlinux-output"));
  g_ptr_array_add (argv, g_strdup (vmlinux));
  for (guint i = 0; i < adds->len; i++)
    {
      g_ptr_array_add (argv, g_strdup ("--add"));
      g_ptr_array_add (argv, g_strdup (g_ptr_array_index (adds, i)));
    }
  g_ptr_array_add (argv, NULL);

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_MERGE);
  g_subprocess_launcher_setenv (launcher, "QLEAN_BUSYBOX", inputs.busybox, TRUE);
  g_subprocess_launcher_setenv (launcher, "QLEAN_QEMU_GA", inputs.qemu_ga, TRUE);
  process = g_subprocess_launcher_spawnv (launcher, (const char * const *) argv->pdata, &error);
  if (process == NULL || !g_subprocess_communicate_utf8 (process, NULL, NULL, &log, NULL, &error))
    g_error ("%s", error->message);
  if (!g_subprocess_get_successful (process))
    g_error ("building the SSH image failed: %s", log);

  ssh_image.kernel = g_strdup (g_file_test (vmlinux, G_FILE_TEST_IS_REGULAR) ? vmlinux : inputs.kernel);
}

static QleanMachine *
new_ssh_machine (guint *port)
{
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autofree char *netdev = NULL;

  *port = free_port ();
  netdev = g_strdup_printf ("user,id=n0,hostfwd=tcp:127.0.0.1:%u-:22", *port);
  {
    const char *extra[] = { "-netdev", netdev, "-device", "virtio-net-pci,netdev=n0,romfile=", NULL };

    qlean_machine_config_set_kernel (config, ssh_image.kernel);
    qlean_machine_config_set_initrd (config, ssh_image.initrd);
    qlean_machine_config_set_cmdline (config, "qlean.ssh=1");
    qlean_machine_config_set_memory_mib (config, SSH_MEMORY_MIB);
    qlean_machine_config_set_extra_args (config, extra);
  }
  return qlean_machine_new (NULL, config);
}

/* ssh -p @port ... root@127.0.0.1 [@command], with @control for a
 * multiplexed connection and @extra (NULL-terminated) before the host. */
static gboolean
ssh_run (guint               port,
         const char         *control,
         const char * const *extra,
         const char         *command)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  const char *options[] = {
    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
    "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10",
  };

  g_ptr_array_add (argv, g_strdup ("ssh"));
  g_ptr_array_add (argv, g_strdup ("-p"));
  g_ptr_array_add (argv, g_strdup_printf ("%u", port));
  g_ptr_array_add (argv, g_strdup ("-i"));
  g_ptr_array_add (argv, g_strdup (ssh_image.key));
  for (guint i = 0; i < G_N_ELEMENTS (options); i++)
    g_ptr_array_add (argv, g_strdup (options[i]));
  if (control != NULL)
    {
      g_ptr_array_add (argv, g_strdup ("-S"));
      g_ptr_array_add (argv, g_strdup (control));
    }
  for (guint i = 0; extra != NULL && extra[i] != NULL; i++)
    g_ptr_array_add (argv, g_strdup (extra[i]));
  g_ptr_array_add (argv, g_strdup ("root@127.0.0.1"));
  if (command != NULL)
    g_ptr_array_add (argv, g_strdup (command));
  g_ptr_array_add (argv, NULL);

  return run_quiet ((const char * const *) argv->pdata);
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
  f.median = percentile (times, 0.5);
  f.p99 = percentile (times, 0.99);
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
  g_autofree char *missing = NULL;
  g_autofree char *control = NULL;
  g_autofree char *accel = NULL;
  g_autofree char *load = load_average ();
  struct utsname uts;
  Figure q, a;
  guint ssh_port = 0, fwd_port = 0;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    g_error ("%s", error->message);

  uname (&uts);
  missing = ssh_missing ();
  if (!qlean_image_prepare (image, NULL, &error))
    g_error ("%s", error->message);
  if (missing == NULL)
    {
      build_ssh_image ();
      machine = new_ssh_machine (&ssh_port);
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
  for (int i = 0; i < opt_execs; i++)
    {
      double start = now_ms (), ms;

      exec_true (machine);
      ms = now_ms () - start;
      g_array_append_val (qlean_times, ms);
    }
  for (int i = 0; i < opt_execs; i++)
    {
      double start = now_ms (), ms;

      launch_true (machine, launcher);
      ms = now_ms () - start;
      g_array_append_val (argv_times, ms);
    }

  if (missing == NULL)
    {
      const char *master[] = { "-fNM", NULL };
      const char *stop[] = { "-O", "exit", NULL };

      control = g_build_filename (ssh_image.dir, "control.sock", NULL);
      /* dropbear starts after the agent answers: wait for it. */
      for (int i = 0; i < 500 && !ssh_run (ssh_port, NULL, NULL, "true"); i++)
        g_usleep (20 * 1000);

      for (int i = 0; i < opt_ssh_execs; i++)
        {
          double start = now_ms (), ms;

          if (!ssh_run (ssh_port, NULL, NULL, "true"))
            g_error ("ssh true failed");
          ms = now_ms () - start;
          g_array_append_val (ssh_times, ms);
        }

      if (!ssh_run (ssh_port, control, master, NULL))
        g_error ("ssh -M failed");
      for (int i = 0; i < 3; i++)
        ssh_run (ssh_port, control, NULL, "true");
      for (int i = 0; i < opt_ssh_execs; i++)
        {
          double start = now_ms (), ms;

          if (!ssh_run (ssh_port, control, NULL, "true"))
            g_error ("ssh -S true failed");
          ms = now_ms () - start;
          g_array_append_val (mux_times, ms);
        }
      ssh_run (ssh_port, control, stop, NULL);

      /* The same SSH, with its TCP carried by a Qlean forward instead of
       * QEMU's user network. */
      fwd_port = qlean_machine_forward_port (machine, 0, 22, &error);
      if (fwd_port == 0)
        g_error ("%s", error->message);
      for (int i = 0; i < opt_ssh_execs; i++)
        {
          double start = now_ms (), ms;

          if (!ssh_run (fwd_port, NULL, NULL, "true"))
            g_error ("ssh through the forward failed");
          ms = now_ms () - start;
          g_array_append_val (fwd_times, ms);
        }
    }

  q = figure ("qlean_machine_exec (\"true\") [sh -c]", qlean_times);
  a = figure ("QleanGuestLauncher argv {\"true\"}", argv_times);
  g_print ("\n%-52s %5s %9s %9s %9s  %s\n", "round trip of `true`, ms", "n", "median", "p99", "mean",
           "median / Qlean's");
  print_figure (&q, &q);
  print_figure (&a, &q);
  if (missing == NULL)
    {
      Figure s = figure ("ssh, a new connection per command", ssh_times);
      Figure m = figure ("ssh, one multiplexed connection (ControlMaster)", mux_times);
      Figure f = figure ("ssh, new connection, over a Qlean port forward", fwd_times);

      print_figure (&s, &q);
      print_figure (&m, &q);
      print_figure (&f, &q);
      g_print ("\nQlean exec is %.0fx faster than ssh with a new connection per command "
               "(target >= 20x: %s), %.1fx than a multiplexed ssh connection\n",
               s.median / q.median, s.median / q.median >= 20 ? "met" : "MISSED", m.median / q.median);
    }
  else
    g_print ("\nSSH not measured: %s\n", missing);
  g_print ("Qlean median %.2f ms (target <= 5 ms: %s)\n", q.median, q.median <= 5 ? "met" : "MISSED");

  qlean_machine_kill (machine, NULL, NULL);
  if (ssh_image.dir != NULL)
    {
      const char *rm[] = { "rm", "-rf", ssh_image.dir, NULL };

      run_quiet (rm);
    }
  return 0;
}
