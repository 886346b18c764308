/* qlean-machine-virtiofs.c: host folders over virtiofs, one virtiofsd per share
 *
 * virtiofs reads host folders faster than 9p (the guest's page cache
 * and FUSE's larger requests), but it is served by a process of its
 * own, QEMU's virtiofsd, over a vhost-user socket, and it needs guest
 * RAM that virtiofsd can map (a shared memory backend). This file
 * decides whether a start can use it, and starts and stops the
 * virtiofsd processes, which belong to the run: they are kept in the
 * run's data, whose destroy notify kills them and removes their
 * sockets, so that no daemon outlives a stop, a kill, a failed start or
 * a crash. Apart from qlean-machine-shares.c, which mounts the folders
 * in the guest, because this is host processes and their life.
 *
 * QEMU 7.2's C virtiofsd has no read-only option: a read-only share is
 * served from a read-only bind mount of the folder in a mount namespace
 * of its own, made between fork and exec, so the host refuses writes
 * (EROFS) whatever the guest mounts or remounts. A normal user runs it
 * in a user namespace of its own (mapped to itself), where it has the
 * capabilities its sandbox needs.
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <glib/gstdio.h>
#include <glib/gi18n-lib.h>

#include "qlean-error.h"
#include "qlean-machine-object-private.h"
#include "qlean-machine-virtiofs-private.h"

#define VIRTIOFS_KEY "qlean-virtiofs"
#define SHARE_KIND_KEY "qlean-share-kind"
/* The descriptor virtiofsd inherits its listening socket at. */
#define VIRTIOFSD_FD 3

/* Where Debian (qemu-system-common), Fedora and the Rust virtiofsd put
 * it; QLEAN_VIRTIOFSD names another, or (a path that does not exist)
 * none, to test the 9p fallback. */
static char *
find_virtiofsd (void)
{
  static const char * const candidates[] = {
    "/usr/lib/qemu/virtiofsd",
    "/usr/libexec/virtiofsd",
    "/usr/libexec/qemu/virtiofsd",
  };
  const char *env = g_getenv ("QLEAN_VIRTIOFSD");

  if (env != NULL)
    return g_file_test (env, G_FILE_TEST_IS_EXECUTABLE) ? g_strdup (env) : NULL;
  for (guint i = 0; i < G_N_ELEMENTS (candidates); i++)
    if (g_file_test (candidates[i], G_FILE_TEST_IS_EXECUTABLE))
      return g_strdup (candidates[i]);
  return NULL;
}

/* Whether this process may make a user and mount namespace, which a
 * normal user's virtiofsd runs in: tried in a child that only does
 * that (distributions can turn unprivileged user namespaces off). */
static gboolean
can_make_user_namespace (void)
{
  int status;
  pid_t pid = fork ();

  if (pid < 0)
    return FALSE;
  if (pid == 0)
    _exit (unshare (CLONE_NEWUSER | CLONE_NEWNS) == 0 ? 0 : 1);
  while (waitpid (pid, &status, 0) < 0)
    if (errno != EINTR)
      return FALSE;
  return WIFEXITED (status) && WEXITSTATUS (status) == 0;
}

/* Why virtiofs cannot run on this host, or NULL when it can: the same
 * answer for the whole process, found once. */
static const char *
virtiofs_unavailable_reason (void)
{
  static char *reason;
  static gsize done;

  if (g_once_init_enter (&done))
    {
      g_autofree char *daemon = find_virtiofsd ();

      if (daemon == NULL)
        reason = g_strdup (_("virtiofsd is not installed (Debian package: qemu-system-common)"));
      else if (geteuid () != 0 && !can_make_user_namespace ())
        reason = g_strdup (_("virtiofsd needs root or a user namespace, and this user cannot "
                             "make one"));
      g_once_init_leave (&done, 1);
    }

  return reason;
}

QleanShareKind
qlean_machine_pick_share_kind (QleanMachine *self,
                               gboolean      restoring)
{
  QleanShareKind kind = qlean_machine_config_get_share_kind (self->config);
  guint n = qlean_machine_config_get_n_shares (self->config);
  const char *reason = NULL;

  if (kind != QLEAN_SHARE_KIND_AUTO)
    return kind;

  for (guint i = 0; i < n && reason == NULL; i++)
    {
      QleanShareFlags flags;

      qlean_machine_config_get_share (self->config, i, NULL, &flags);
      if (flags & QLEAN_SHARE_MAPPED_XATTR)
        reason = "a share keeps owners in extended attributes, which only 9p does";
    }
  if (reason == NULL && restoring)
    reason = "the machine loads a saved state, whose devices are 9p's";
  if (reason == NULL)
    reason = virtiofs_unavailable_reason ();
  if (reason == NULL)
    return QLEAN_SHARE_KIND_VIRTIOFS;

  g_info ("machine %s: shares over 9p rather than virtiofs: %s", self->name, reason);
  return QLEAN_SHARE_KIND_9P;
}

QleanShareKind
qlean_machine_run_get_share_kind (QleanMachineRun *run)
{
  return GPOINTER_TO_INT (qlean_machine_run_get_data (run, SHARE_KIND_KEY));
}

void
qlean_machine_run_set_share_kind (QleanMachineRun *run,
                                  QleanShareKind   kind)
{
  qlean_machine_run_set_data (run, SHARE_KIND_KEY, GINT_TO_POINTER (kind), NULL);
}

/* The daemons of one run */

typedef struct
{
  GPtrArray *processes;  /* of GSubprocess */
  GPtrArray *sockets;    /* of char *, their listening sockets' paths */
} VirtiofsDaemons;

/* The run's destroy notify: kills each daemon's process group (the
 * namespace sandbox forks a child that does the serving) and waits
 * until it is gone, then removes the sockets. */
static void
virtiofs_daemons_free (VirtiofsDaemons *daemons)
{
  for (guint i = 0; i < daemons->processes->len; i++)
    {
      GSubprocess *process = g_ptr_array_index (daemons->processes, i);
      GPid pid = qlean_subprocess_get_pid (process);

      /* Not yet reaped, so the group cannot be another's. */
      if (pid > 0)
        {
          kill (-pid, SIGKILL);
          qlean_host_wait_for_death (pid);
        }
    }
  for (guint i = 0; i < daemons->sockets->len; i++)
    g_unlink (g_ptr_array_index (daemons->sockets, i));
  g_ptr_array_unref (daemons->processes);
  g_ptr_array_unref (daemons->sockets);
  g_free (daemons);
}

gboolean
qlean_machine_run_has_virtiofs (QleanMachineRun *run)
{
  return run != NULL && qlean_machine_run_get_data (run, VIRTIOFS_KEY) != NULL;
}

/* What virtiofsd's child does between fork and exec, prepared in the
 * parent: async-signal-safe calls only in the child. */
typedef struct
{
  pid_t          parent;
  gboolean       user_namespace;
  char           uid_map[64];
  char           gid_map[64];
  const char    *readonly_source;  /* bind it read-only; NULL: read-write */
  unsigned long  remount_flags;    /* the flags its mount has and keeps */
} VirtiofsdSetup;

static void G_GNUC_NORETURN
child_fail (const char *message)
{
  int saved_errno = errno;
  const char *reason = strerror (saved_errno);

  /* stderr is the daemon's log in the run directory. */
  if (write (STDERR_FILENO, message, strlen (message)) < 0 ||
      write (STDERR_FILENO, ": ", 2) < 0 ||
      write (STDERR_FILENO, reason, strlen (reason)) < 0 ||
      write (STDERR_FILENO, "\n", 1) < 0)
    _exit (126);
  _exit (126);
}

static void
child_write_file (const char *path,
                  const char *text)
{
  int fd = open (path, O_WRONLY | O_CLOEXEC);

  if (fd < 0 || write (fd, text, strlen (text)) != (ssize_t) strlen (text))
    child_fail (path);
  close (fd);
}

static void
virtiofsd_child_setup (gpointer user_data)
{
  VirtiofsdSetup *setup = user_data;
  struct rlimit files;

  /* As qlean_host_child_launcher(): dies with us, its own group. */
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  if (getppid () != setup->parent)
    _exit (127);
  setpgid (0, 0);

  if (setup->user_namespace)
    {
      if (unshare (CLONE_NEWUSER | CLONE_NEWNS) != 0)
        child_fail ("Could not make a user namespace for virtiofsd");
      child_write_file ("/proc/self/setgroups", "deny");
      child_write_file ("/proc/self/uid_map", setup->uid_map);
      child_write_file ("/proc/self/gid_map", setup->gid_map);
      /* It keeps a descriptor per file the guest looked up; it cannot
       * raise the hard limit here, so it is told not to try. */
      if (getrlimit (RLIMIT_NOFILE, &files) == 0)
        {
          files.rlim_cur = files.rlim_max;
          setrlimit (RLIMIT_NOFILE, &files);
        }
    }
  else if (setup->readonly_source != NULL && unshare (CLONE_NEWNS) != 0)
    child_fail ("Could not make a mount namespace for virtiofsd");

  if (setup->readonly_source != NULL)
    {
      const char *source = setup->readonly_source;

      if (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
          mount (source, source, NULL, MS_BIND | MS_REC, NULL) != 0 ||
          mount (NULL, source, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | setup->remount_flags,
                 NULL) != 0)
        child_fail ("Could not bind the shared folder read-only for virtiofsd");
    }
}

/* The flags of the mount @path is on that a remount in a user
 * namespace must keep (the kernel locks them there). */
static unsigned long
locked_mount_flags (const char *path)
{
  struct statvfs st;
  unsigned long flags = 0;

  if (statvfs (path, &st) != 0)
    return 0;
  if (st.f_flag & ST_NOSUID)
    flags |= MS_NOSUID;
  if (st.f_flag & ST_NODEV)
    flags |= MS_NODEV;
  if (st.f_flag & ST_NOEXEC)
    flags |= MS_NOEXEC;
  if (st.f_flag & ST_NOATIME)
    flags |= MS_NOATIME;
  if (st.f_flag & ST_NODIRATIME)
    flags |= MS_NODIRATIME;
  if (st.f_flag & ST_RELATIME)
    flags |= MS_RELATIME;
  return flags;
}

/* Starts the daemon of share @index: it inherits a socket we listen on
 * (--fd: no socket file to wait for, and no pid file in /run, which a
 * normal user cannot write), and logs into the run directory. */
static GSubprocess *
virtiofs_spawn_one (QleanMachine  *self,
                    const char    *daemon,
                    const char    *run_dir,
                    guint          index,
                    const char    *socket_path,
                    GError       **error)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSocket) listener = NULL;
  g_autofree char *log_name = g_strdup_printf ("virtiofsd-%u.log", index);
  g_autofree char *log_path = g_build_filename (run_dir, log_name, NULL);
  g_autofree char *source_opt = NULL;
  g_autofree char *fd_opt = g_strdup_printf ("--fd=%d", VIRTIOFSD_FD);
  VirtiofsdSetup *setup = g_new0 (VirtiofsdSetup, 1);
  gboolean rootless = geteuid () != 0;
  QleanShareFlags flags;
  const char *host_path;
  const char *argv[12];
  guint n = 0;
  int listen_fd;

  host_path = qlean_machine_config_get_share (self->config, index, NULL, &flags);
  source_opt = g_strdup_printf ("source=%s", host_path);

  setup->parent = getpid ();
  setup->user_namespace = rootless;
  g_snprintf (setup->uid_map, sizeof setup->uid_map, "0 %u 1", (guint) geteuid ());
  g_snprintf (setup->gid_map, sizeof setup->gid_map, "0 %u 1", (guint) getegid ());
  if (flags & QLEAN_SHARE_READONLY)
    {
      /* The config's copy lives as long as the machine, beyond the spawn. */
      setup->readonly_source = host_path;
      setup->remount_flags = rootless ? locked_mount_flags (host_path) : 0;
    }

  listener = qlean_machine_listen_unix (socket_path, error);
  if (listener == NULL)
    {
      g_free (setup);
      return NULL;
    }

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDERR_MERGE);
  g_subprocess_launcher_set_child_setup (launcher, virtiofsd_child_setup, setup, g_free);
  g_subprocess_launcher_set_stdout_file_path (launcher, log_path);
  /* GSocket made it non-blocking; virtiofsd waits in accept(). */
  listen_fd = dup (g_socket_get_fd (listener));
  if (listen_fd >= 0)
    fcntl (listen_fd, F_SETFL, fcntl (listen_fd, F_GETFL) & ~O_NONBLOCK);
  g_subprocess_launcher_take_fd (launcher, listen_fd, VIRTIOFSD_FD);

  argv[n++] = daemon;
  argv[n++] = fd_opt;
  argv[n++] = "-o";
  argv[n++] = source_opt;
  /* In a user namespace the mount, pid and net namespaces of its
   * default sandbox need a proc mount a container may refuse; chroot
   * confines it to the folder as well. */
  argv[n++] = "-o";
  argv[n++] = rootless ? "sandbox=chroot" : "sandbox=namespace";
  /* auto: FUSE's one-second timeouts, so host changes show soon;
   * always: the guest keeps what it read (QLEAN_SHARE_CACHED). */
  argv[n++] = "-o";
  argv[n++] = (flags & QLEAN_SHARE_CACHED) ? "cache=always" : "cache=auto";
  if (rootless)
    argv[n++] = "--rlimit-nofile=0";
  argv[n++] = NULL;

  return g_subprocess_launcher_spawnv (launcher, argv, error);
}

gboolean
qlean_machine_virtiofs_start (QleanMachine     *self,
                              QleanMachineRun  *run,
                              const char       *run_dir,
                              GError          **error)
{
  guint n = qlean_machine_config_get_n_shares (self->config);
  g_autofree char *daemon = NULL;
  VirtiofsDaemons *daemons;
  const char *reason = virtiofs_unavailable_reason ();

  if (reason != NULL)
    {
      g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG,
                   _("Cannot share folders with machine “%s” over virtiofs: %s; use share kind "
                     "“auto” or “9p”"),
                   self->name, reason);
      return FALSE;
    }
  for (guint i = 0; i < n; i++)
    {
      QleanShareFlags flags;

      qlean_machine_config_get_share (self->config, i, NULL, &flags);
      if (flags & QLEAN_SHARE_MAPPED_XATTR)
        {
          g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG,
                       _("Cannot share folders with machine “%s” over virtiofs: a share keeps "
                         "owners in extended attributes, which only 9p does"),
                       self->name);
          return FALSE;
        }
    }

  daemon = find_virtiofsd ();
  /* In the run's data from the first, so that a failure halfway still
   * stops those already started. */
  daemons = g_new0 (VirtiofsDaemons, 1);
  daemons->processes = g_ptr_array_new_with_free_func (g_object_unref);
  daemons->sockets = g_ptr_array_new_with_free_func (g_free);
  qlean_machine_run_set_data (run, VIRTIOFS_KEY, daemons, (GDestroyNotify) virtiofs_daemons_free);

  for (guint i = 0; i < n; i++)
    {
      g_autofree char *name = g_strdup_printf (QLEAN_VIRTIOFS_SOCKET_FORMAT, i);
      char *socket_path = g_build_filename (run_dir, name, NULL);
      GSubprocess *process;

      g_ptr_array_add (daemons->sockets, socket_path);
      process = virtiofs_spawn_one (self, daemon, run_dir, i, socket_path, error);
      if (process == NULL)
        {
          g_prefix_error (error, _("Could not start virtiofsd for machine “%s”: "), self->name);
          return FALSE;
        }
      g_ptr_array_add (daemons->processes, process);
    }

  return TRUE;
}
