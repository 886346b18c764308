/* qlean-host.c: what the host offers: QEMU, KVM, run directories
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <glib/gstdio.h>
#include <glib/gi18n-lib.h>

#include "qlean-arch-private.h"
#include "qlean-error.h"
#include "qlean-host-private.h"
#include "qlean-run-owner-private.h"
#include "qlean-errno-private.h"
#include "qlean-util-private.h"

char *
qlean_host_install_hint (const char *debian_package)
{
  static const struct { const char *tool; const char *format; } managers[] = {
    { "/usr/bin/apt-get", "apt-get install %s" },
    { "/usr/bin/dnf", "dnf install %s" },
    { "/usr/bin/pacman", "pacman -S %s" },
    { "/sbin/apk", "apk add %s" },
  };
  /* Names differ across distributions; map the few we mention. */
  static const struct { const char *debian; const char *rpm; const char *arch; const char *alpine; } names[] = {
    { "qemu-system-x86", "qemu-system-x86", "qemu-system-x86", "qemu-system-x86_64" },
    { "qemu-system-arm", "qemu-system-aarch64", "qemu-system-aarch64", "qemu-system-aarch64" },
    { "qemu-system-misc", "qemu-system-riscv", "qemu-system-riscv", "qemu-system-riscv64" },
    { "qemu-guest-agent", "qemu-guest-agent", "qemu-guest-agent", "qemu-guest-agent" },
    { "busybox-static", "busybox", "busybox", "busybox-static" },
    { "linux-image-cloud-amd64", "kernel-core", "linux", "linux-virt" },
    { "qemu-utils", "qemu-img", "qemu-img", "qemu-img" },
  };
  const char *package = debian_package;

  for (guint i = 0; i < G_N_ELEMENTS (managers); i++)
    {
      if (!g_file_test (managers[i].tool, G_FILE_TEST_IS_EXECUTABLE))
        continue;

      for (guint j = 0; j < G_N_ELEMENTS (names); j++)
        if (g_strcmp0 (names[j].debian, debian_package) == 0)
          package = i == 0 ? names[j].debian : i == 1 ? names[j].rpm : i == 2 ? names[j].arch : names[j].alpine;

      return g_strdup_printf (managers[i].format, package);
    }

  return g_strdup_printf (_("install the package %s (Debian's name)"), debian_package);
}

char *
qlean_host_find_qemu (const char  *name,
                      GError     **error)
{
  return qlean_host_find_qemu_for_arch (name, qlean_arch_get_host (), error);
}

char *
qlean_host_find_qemu_for_arch (const char  *name,
                               QleanArch    arch,
                               GError     **error)
{
  const QleanArchInfo *info = qlean_arch_get_info (arch);
  g_autofree char *hint = NULL;
  char *path;

  if (name == NULL)
    name = info->qemu_binary;

  if (strchr (name, '/') != NULL)
    path = g_file_test (name, G_FILE_TEST_IS_EXECUTABLE) ? g_strdup (name) : NULL;
  else
    path = g_find_program_in_path (name);

  if (path != NULL)
    return path;

  hint = qlean_host_install_hint (info->qemu_package);
  g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_QEMU_NOT_FOUND,
               _("QEMU binary “%s” not found or not executable; install QEMU: %s"),
               name, hint);
  return NULL;
}

/* The aarch64 probe's firmware, loaded at address 0 of the virt machine:
 * it writes "Qlean KVM probe" to the PL011 UART at 0x09000000 and waits.
 *     movz x0, #0x0900, lsl #16; adr x1, msg
 *  1: ldrb w2, [x1], #1; cbz w2, 2f; str w2, [x0]; b 1b
 *  2: wfi; b 2b
 *     msg: .asciz "Qlean KVM probe\n" */
static const guint8 aarch64_probe_firmware[] = {
  0x00, 0x20, 0xa1, 0xd2, 0xe1, 0x00, 0x00, 0x10, 0x22, 0x14, 0x40, 0x38,
  0x62, 0x00, 0x00, 0x34, 0x02, 0x00, 0x00, 0xb9, 0xfd, 0xff, 0xff, 0x17,
  0x7f, 0x20, 0x03, 0xd5, 0xff, 0xff, 0xff, 0x17,
  'Q', 'l', 'e', 'a', 'n', ' ', 'K', 'V', 'M', ' ', 'p', 'r', 'o', 'b', 'e', '\n', 0,
};

/* The guest code that shows KVM runs: firmware that prints first thing,
 * on the host architecture's machine type (qlean-arch.c). Fills @argv
 * after "-machine M"; returns the words to wait for, or NULL with
 * @reason set where this architecture has no probe. @firmware is a
 * temporary file to remove afterwards. */
static const char *
kvm_probe_args (const QleanArchInfo  *info,
                GPtrArray            *argv,
                char                **firmware,
                char                **reason)
{
  g_autoptr(GError) error = NULL;

  switch (info->arch)
    {
    case QLEAN_ARCH_X86_64:
      /* SeaBIOS prints its banner on the debug port. */
      g_ptr_array_add (argv, g_strdup ("-device"));
      g_ptr_array_add (argv, g_strdup ("isa-debugcon,chardev=probe,iobase=0x402"));
      return "SeaBIOS";
    case QLEAN_ARCH_RISCV64:
      /* OpenSBI prints its banner on the UART. */
      g_ptr_array_add (argv, g_strdup ("-serial"));
      g_ptr_array_add (argv, g_strdup ("chardev:probe"));
      return "OpenSBI";
    case QLEAN_ARCH_AARCH64:
    default:
      {
        int fd = g_file_open_tmp ("qlean-kvm-probe-XXXXXX.bin", firmware, &error);

        if (fd < 0)
          {
            *reason = g_strdup (error->message);
            return NULL;
          }
        /* Written through the descriptor the file was made with; a
         * failed write leaves no file behind. */
        if (!qlean_write_all (fd, aarch64_probe_firmware, sizeof aarch64_probe_firmware))
          {
            int saved_errno = errno;

            close (fd);
            g_unlink (*firmware);
            g_clear_pointer (firmware, g_free);
            *reason = g_strdup_printf (_("Cannot write the KVM probe's firmware: %s"),
                                       g_strerror (saved_errno));
            return NULL;
          }
        close (fd);
        g_ptr_array_add (argv, g_strdup ("-serial"));
        g_ptr_array_add (argv, g_strdup ("chardev:probe"));
        g_ptr_array_add (argv, g_strdup ("-bios"));
        g_ptr_array_add (argv, g_strdup (*firmware));
        return "Qlean KVM probe";
      }
    }
}

/* Whether @qemu_binary is the QEMU of a guest architecture other than
 * the host's (qemu-system-aarch64 on x86-64), which KVM cannot run. */
static gboolean
is_foreign_qemu (const char *qemu_binary)
{
  g_autofree char *base = g_path_get_basename (qemu_binary);

  for (guint a = QLEAN_ARCH_X86_64; a <= QLEAN_ARCH_RISCV64; a++)
    if (g_str_equal (base, qlean_arch_get_info (a)->qemu_binary))
      return !qlean_arch_is_host (a);

  return FALSE;
}

static gboolean
probe_kvm (const char  *qemu_binary,
           char       **reason)
{
  const QleanArchInfo *host = qlean_arch_get_info (qlean_arch_get_host ());
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GInputStream) out = NULL;
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *firmware = NULL;
  const char *marker;
  GString *seen;
  gint64 deadline;
  gboolean ok = FALSE;
  int fd;

  if (is_foreign_qemu (qemu_binary))
    {
      *reason = g_strdup_printf (_("KVM runs only %s guests on this host, and %s emulates another "
                                   "architecture"), host->name, qemu_binary);
      return FALSE;
    }

  fd = g_open ("/dev/kvm", O_RDWR | O_CLOEXEC, 0);
  if (fd < 0)
    {
      *reason = g_strdup_printf (_("/dev/kvm: %s"), g_strerror (errno));
      return FALSE;
    }
  close (fd);

  {
    const char * const common[] = {
      qemu_binary, "-accel", "kvm", "-cpu", "host", "-nodefaults", "-no-user-config",
      "-display", "none", "-no-reboot", "-m", "32", "-chardev", "stdio,id=probe",
      "-machine", host->machine,
    };

    for (guint i = 0; i < G_N_ELEMENTS (common); i++)
      g_ptr_array_add (argv, g_strdup (common[i]));
  }
  marker = kvm_probe_args (host, argv, &firmware, reason);
  if (marker == NULL)
    return FALSE;
  g_ptr_array_add (argv, NULL);

  process = g_subprocess_newv ((const char * const *) argv->pdata,
                               G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_MERGE |
                               G_SUBPROCESS_FLAGS_STDIN_PIPE,
                               &error);
  if (process == NULL)
    {
      *reason = g_strdup (error->message);
      if (firmware != NULL)
        g_unlink (firmware);
      return FALSE;
    }

  seen = g_string_new (NULL);

  out = g_object_ref (g_subprocess_get_stdout_pipe (process));
  deadline = g_get_monotonic_time () + 2 * G_USEC_PER_SEC;

  /* Poll the pipe until the firmware speaks, QEMU dies, or time runs out. */
  while (g_get_monotonic_time () < deadline)
    {
      char buf[512];
      gssize n;

      if (!g_pollable_input_stream_is_readable (G_POLLABLE_INPUT_STREAM (out)))
        {
          g_usleep (5000);
          continue;
        }

      n = g_pollable_input_stream_read_nonblocking (G_POLLABLE_INPUT_STREAM (out),
                                                    buf, sizeof buf, NULL, NULL);
      if (n <= 0)
        break;

      g_string_append_len (seen, buf, n);
      if (strstr (seen->str, marker) != NULL)
        {
          ok = TRUE;
          break;
        }
    }

  g_subprocess_force_exit (process);
  g_subprocess_wait (process, NULL, NULL);
  if (firmware != NULL)
    g_unlink (firmware);

  if (!ok)
    {
      g_strstrip (seen->str);
      *reason = seen->len > 0 ? g_strdup_printf (_("QEMU could not run a guest under KVM: %s"), seen->str)
                              : g_strdup (_("QEMU ran no guest code under KVM within 2 s"));
    }

  g_string_free (seen, TRUE);
  return ok;
}

gboolean
qlean_host_kvm_usable (const char  *qemu_binary,
                       char       **reason)
{
  static GMutex lock;
  static GHashTable *results;  /* binary -> reason, "" when usable */
  const char *cached;
  g_autofree char *why = NULL;
  gboolean ok;

  g_mutex_lock (&lock);
  if (results == NULL)
    results = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);

  cached = g_hash_table_lookup (results, qemu_binary);
  if (cached == NULL)
    {
      ok = probe_kvm (qemu_binary, &why);
      g_hash_table_insert (results, g_strdup (qemu_binary), g_strdup (ok ? "" : why));
      cached = g_hash_table_lookup (results, qemu_binary);
    }
  ok = *cached == '\0';
  if (!ok && reason != NULL)
    *reason = g_strdup (cached);
  g_mutex_unlock (&lock);

  return ok;
}

char *
qlean_host_run_base (GError **error)
{
  const char *runtime = g_getenv ("XDG_RUNTIME_DIR");
  g_autofree char *base = NULL;
  struct stat st;

  if (g_getenv ("QLEAN_RUN_DIR") != NULL)
    base = g_strdup (g_getenv ("QLEAN_RUN_DIR"));
  else if (runtime != NULL && g_file_test (runtime, G_FILE_TEST_IS_DIR))
    base = g_build_filename (runtime, "qlean", NULL);
  else
    {
      g_autofree char *name = g_strdup_printf ("qlean-%u", (guint) getuid ());

      base = g_build_filename (g_get_tmp_dir (), name, NULL);
    }

  if (g_mkdir_with_parents (base, 0700) != 0 && errno != EEXIST)
    {
      int saved_errno = errno;

      qlean_set_error_from_errno (error, saved_errno,
                                  _("Could not create the run directory %s"), base);
      return NULL;
    }

  /* In a shared /tmp, someone else may have made it first: refuse a
   * directory we do not own or others can enter. */
  if (lstat (base, &st) != 0 || !S_ISDIR (st.st_mode) || st.st_uid != getuid ())
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
                   _("The run directory %s is not a directory owned by you; remove it or set QLEAN_RUN_DIR"),
                   base);
      return NULL;
    }
  if ((st.st_mode & 0077) != 0 && g_chmod (base, 0700) != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
                   _("The run directory %s is open to other users; make it mode 0700"), base);
      return NULL;
    }

  return g_steal_pointer (&base);
}

/* The mkdtemp() template of a run directory of machine @name in @base:
 * named after the machine, so that a person can tell them apart. */
static char *
run_dir_template (const char *base,
                  const char *name)
{
  return g_strdup_printf ("%s/%.32s-XXXXXX", base, name);
}

char *
qlean_host_make_run_dir (const char  *name,
                         GError     **error)
{
  g_autofree char *base = qlean_host_run_base (error);
  g_autofree char *template = NULL;
  g_autofree char *owner_path = NULL;
  g_autofree char *owner = NULL;
  g_autofree char *start = NULL;
  char *dir;

  if (base == NULL)
    return NULL;

  template = run_dir_template (base, name);
  dir = g_mkdtemp_full (template, 0700);
  if (dir == NULL)
    {
      int saved_errno = errno;

      qlean_set_error_from_errno (error, saved_errno,
                                  _("Could not create a run directory in %s"), base);
      return NULL;
    }
  dir = g_steal_pointer (&template);

  /* The owner's pid and start time: `qlean gc` removes the directory
   * once that process is gone (qlean-run-owner-private.h). */
  start = qlean_process_start_time (getpid ());
  owner = g_strdup_printf ("%d %s\n", (int) getpid (), start ? start : "0");
  owner_path = g_build_filename (dir, QLEAN_RUN_OWNER_FILE, NULL);
  if (!g_file_set_contents_full (owner_path, owner, -1, G_FILE_SET_CONTENTS_NONE, 0600, error))
    {
      g_rmdir (dir);
      g_free (dir);
      return NULL;
    }

  return dir;
}

char *
qlean_host_rename_run_dir (const char  *dir,
                           const char  *name,
                           GError     **error)
{
  g_autofree char *base = g_path_get_dirname (dir);
  g_autofree char *template = run_dir_template (base, name);

  /* A fresh name, taken by an empty directory that the rename replaces
   * (rename(2) may replace an empty directory): no other run can get
   * it meanwhile. */
  if (g_mkdtemp_full (template, 0700) == NULL)
    {
      int saved_errno = errno;

      qlean_set_error_from_errno (error, saved_errno,
                                  _("Could not create a run directory in %s"), base);
      return NULL;
    }
  if (g_rename (dir, template) != 0)
    {
      int saved_errno = errno;

      g_rmdir (template);
      qlean_set_error_from_errno (error, saved_errno, _("Could not rename %s"), dir);
      return NULL;
    }

  return g_steal_pointer (&template);
}

typedef struct
{
  pid_t parent;
} ChildSetup;

/* Runs in the child between fork and exec: async-signal-safe calls only. */
static void
child_setup (gpointer user_data)
{
  ChildSetup *setup = user_data;

  prctl (PR_SET_PDEATHSIG, SIGKILL);
  /* The parent died before prctl took effect: nobody will kill us. */
  if (getppid () != setup->parent)
    _exit (127);
  setpgid (0, 0);
}

GSubprocessLauncher *
qlean_host_child_launcher (GSubprocessFlags flags)
{
  GSubprocessLauncher *launcher = g_subprocess_launcher_new (flags);
  ChildSetup *setup = g_new0 (ChildSetup, 1);

  setup->parent = getpid ();
  g_subprocess_launcher_set_child_setup (launcher, child_setup, setup, g_free);

  return launcher;
}

void
qlean_host_tune_qemu_launcher (GSubprocessLauncher *launcher)
{
  const char *tunables = g_getenv ("GLIBC_TUNABLES");
  g_autofree char *value = NULL;

  /* The user's own choice stands. */
  if (tunables != NULL && strstr (tunables, "glibc.malloc.hugetlb") != NULL)
    return;

  value = tunables != NULL && *tunables != '\0'
            ? g_strconcat (tunables, ":glibc.malloc.hugetlb=1", NULL)
            : g_strdup ("glibc.malloc.hugetlb=1");
  g_subprocess_launcher_setenv (launcher, "GLIBC_TUNABLES", value, TRUE);
}

void
qlean_host_wait_for_death (GPid pid)
{
  for (int i = 0; i < 200; i++)
    {
      g_autofree char *path = g_strdup_printf ("/proc/%d/stat", (int) pid);
      g_autofree char *stat = NULL;
      const char *state;

      if (!g_file_get_contents (path, &stat, NULL, NULL))
        return;
      state = strrchr (stat, ')');
      if (state == NULL || state[1] == '\0' || state[2] == 'Z' || state[2] == 'X')
        return;
      g_usleep (5000);
    }
}
