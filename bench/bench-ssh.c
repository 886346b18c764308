/* bench-ssh.c: the minimal image with dropbear, for benchmarks that
 * compare Qlean with SSH into the same guest
 *
 * SPDX-License-Identifier: MIT
 *
 * The guest is the minimal image plus dropbear, its libraries (and, for
 * transfers, the host's scp: dropbear has none), a host key and an
 * authorized key, built with tools/qlean-build-initramfs.sh. Booted with
 * qlean.ssh=1 (see data/minimal/init) and QEMU's user network forwarding
 * a local port to its port 22, it runs qlean-guest, qemu-ga and dropbear
 * side by side.
 */

#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "qlean-image-private.h"

#include "bench-common.h"
#include "bench-ssh.h"

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

/* Adds "host:guest" pairs for the libraries @program loads to @adds. */
static void
add_libraries (GPtrArray  *adds,
               const char *program)
{
  const char *argv[] = { "ldd", program, NULL };
  g_autoptr(GError) error = NULL;
  g_autofree char *out = bench_run_capture (argv, &error);
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

/* Builds the SSH image into @workdir, or a new temporary directory when
 * it is NULL; keys already in @workdir are kept, so a rebuilt image
 * still accepts the same client. @with_scp adds the host's scp. */
void
bench_ssh_image_build (BenchSshImage *image,
                       const char    *workdir,
                       gboolean       with_scp)
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
  const char *source_root = QLEAN_SOURCE_DATADIR "/..";

  if (!qlean_minimal_find_inputs (&inputs, &error))
    g_error ("%s", error->message);
  if (!g_file_test ("/usr/sbin/dropbear", G_FILE_TEST_IS_EXECUTABLE) ||
      (with_scp && !g_file_test ("/usr/bin/scp", G_FILE_TEST_IS_EXECUTABLE)))
    g_error ("the SSH comparison needs dropbear and scp: apt-get install dropbear-bin openssh-client");

  image->dir = workdir ? g_strdup (workdir) : g_dir_make_tmp ("qlean-bench-ssh-XXXXXX", &error);
  if (image->dir == NULL)
    g_error ("%s", error->message);
  g_mkdir_with_parents (image->dir, 0700);

  host_key = g_build_filename (image->dir, "dropbear_ed25519_host_key", NULL);
  image->key = g_build_filename (image->dir, "id_ed25519", NULL);
  public_key = g_strconcat (image->key, ".pub", NULL);
  authorized = g_build_filename (image->dir, "authorized_keys", NULL);
  image->initrd = g_build_filename (image->dir, "initramfs-ssh.img", NULL);
  vmlinux = g_build_filename (image->dir, "vmlinux", NULL);

  if (!g_file_test (host_key, G_FILE_TEST_EXISTS))
    {
      const char *keygen[] = { "dropbearkey", "-t", "ed25519", "-f", host_key, NULL };

      if (!bench_run_quiet (keygen))
        g_error ("dropbearkey failed");
    }
  if (!g_file_test (image->key, G_FILE_TEST_EXISTS))
    {
      const char *keygen[] = { "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", image->key, NULL };

      if (!bench_run_quiet (keygen))
        g_error ("ssh-keygen failed");
    }
  {
    g_autofree char *contents = NULL;

    if (!g_file_get_contents (public_key, &contents, NULL, &error) ||
        !g_file_set_contents_full (authorized, contents, -1, G_FILE_SET_CONTENTS_NONE, 0600, &error))
      g_error ("%s", error->message);
  }

  if (inputs.guest != NULL)
    g_ptr_array_add (adds, g_strdup_printf ("%s:/usr/lib/qlean/qlean-guest", inputs.guest));
  g_ptr_array_add (adds, g_strdup ("/usr/sbin/dropbear:/usr/sbin/dropbear"));
  if (with_scp)
    g_ptr_array_add (adds, g_strdup ("/usr/bin/scp:/usr/bin/scp"));
  add_libraries (adds, "/usr/sbin/dropbear");
  if (with_scp)
    add_libraries (adds, "/usr/bin/scp");
  g_ptr_array_add (adds, g_strdup_printf ("%s:/etc/dropbear/dropbear_ed25519_host_key", host_key));
  g_ptr_array_add (adds, g_strdup_printf ("%s:/root/.ssh/authorized_keys", authorized));

  /* The image's init from the source tree: it has the qlean.ssh=1 block. */
  g_ptr_array_add (argv, g_strdup ("bash"));
  g_ptr_array_add (argv, g_build_filename (source_root, "tools", "qlean-build-initramfs.sh", NULL));
  g_ptr_array_add (argv, g_strdup ("--kernel-release"));
  g_ptr_array_add (argv, g_strdup (inputs.kernel_release));
  g_ptr_array_add (argv, g_strdup ("--modules-dir"));
  g_ptr_array_add (argv, g_strdup (inputs.modules_dir));
  g_ptr_array_add (argv, g_strdup ("--init"));
  g_ptr_array_add (argv, g_build_filename (QLEAN_SOURCE_DATADIR, "minimal", "init", NULL));
  g_ptr_array_add (argv, g_strdup ("--output"));
  g_ptr_array_add (argv, g_strdup (image->initrd));
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

  image->kernel = g_strdup (g_file_test (vmlinux, G_FILE_TEST_IS_REGULAR) ? vmlinux : inputs.kernel);
}

/* Removes @image's directory, keys and all, if it has one. */
void
bench_ssh_image_remove_dir (BenchSshImage *image)
{
  if (image->dir != NULL)
    {
      const char *rm[] = { "rm", "-rf", image->dir, NULL };

      bench_run_quiet (rm);
    }
}

/* A machine of @image whose port 22 a free local port forwards to; that
 * port is bench_ssh_machine_get_port()'s. */
QleanMachine *
bench_ssh_machine_new (const BenchSshImage *image,
                       guint                memory_mib)
{
  return bench_ssh_machine_new_full (image, memory_mib, QLEAN_GUEST_TRANSPORT_AUTO);
}

/* The same, reaching its guest through @transport; with the agent,
 * qlean-guest is not even started in the guest. */
QleanMachine *
bench_ssh_machine_new_full (const BenchSshImage *image,
                            guint                memory_mib,
                            QleanGuestTransport  transport)
{
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  guint port = free_port ();
  g_autofree char *netdev = g_strdup_printf ("user,id=n0,hostfwd=tcp:127.0.0.1:%u-:22", port);
  const char *extra[] = { "-netdev", netdev, "-device", "virtio-net-pci,netdev=n0,romfile=", NULL };
  QleanMachine *machine;

  qlean_machine_config_set_kernel (config, image->kernel);
  qlean_machine_config_set_initrd (config, image->initrd);
  qlean_machine_config_set_cmdline (config, transport == QLEAN_GUEST_TRANSPORT_AGENT
                                             ? "qlean.ssh=1 qlean.noguest=1" : "qlean.ssh=1");
  qlean_machine_config_set_guest_transport (config, transport);
  qlean_machine_config_set_memory_mib (config, memory_mib);
  qlean_machine_config_set_extra_args (config, extra);
  machine = qlean_machine_new (NULL, config);
  g_object_set_data (G_OBJECT (machine), "ssh-port", GUINT_TO_POINTER (port));

  return machine;
}

/* The local port that reaches the SSH server of a machine from
 * bench_ssh_machine_new(). */
guint
bench_ssh_machine_get_port (QleanMachine *machine)
{
  return GPOINTER_TO_UINT (g_object_get_data (G_OBJECT (machine), "ssh-port"));
}

/* The start of an ssh (or, with @scp, scp -O) command line to local
 * @port with @image's key and no host key checks or prompts; callers add
 * their options and the destination, then a NULL. */
GPtrArray *
bench_ssh_argv (const BenchSshImage *image,
                guint                port,
                gboolean             scp)
{
  GPtrArray *argv = g_ptr_array_new_with_free_func (g_free);
  const char *options[] = {
    "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
    "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10",
  };

  g_ptr_array_add (argv, g_strdup (scp ? "scp" : "ssh"));
  if (scp)
    g_ptr_array_add (argv, g_strdup ("-O"));  /* dropbear has no SFTP server */
  g_ptr_array_add (argv, g_strdup (scp ? "-P" : "-p"));
  g_ptr_array_add (argv, g_strdup_printf ("%u", port));
  g_ptr_array_add (argv, g_strdup ("-i"));
  g_ptr_array_add (argv, g_strdup (image->key));
  for (guint i = 0; i < G_N_ELEMENTS (options); i++)
    g_ptr_array_add (argv, g_strdup (options[i]));

  return argv;
}

/* ssh -p @port ... root@127.0.0.1 [@command], with @control for a
 * multiplexed connection and @extra (NULL-terminated) before the host;
 * TRUE if it succeeded. */
gboolean
bench_ssh_run (const BenchSshImage *image,
               guint                port,
               const char          *control,
               const char * const  *extra,
               const char          *command)
{
  g_autoptr(GPtrArray) argv = bench_ssh_argv (image, port, FALSE);

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

  return bench_run_quiet ((const char * const *) argv->pdata);
}
