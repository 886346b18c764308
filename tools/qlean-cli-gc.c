/* qlean-cli-gc.c: qlean gc, the reaper for killed runners
 *
 * SPDX-License-Identifier: MIT
 *
 * A process that owns machines and is killed with SIGKILL takes its QEMU
 * and vde processes with it (PR_SET_PDEATHSIG), but cannot remove their
 * run directories. Each run directory holds an `owner` file, "PID
 * STARTTIME" (common/qlean-run-owner-private.h), so a directory whose owner no
 * longer runs, or whose pid now belongs to another process, is garbage.
 * `qlean gc` removes exactly those, and the `qlean start` entries under
 * machines/ and networks/ whose owner died; it leaves everything else alone.
 */

#include "config.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>

#include "qlean-cli-private.h"
#include "qlean-run-owner-private.h"
#include "qlean-errno-private.h"

#define MACHINES_DIR "machines"

static gboolean opt_dry_run;
static gboolean opt_kept;

/* Processes of this user whose command line names a file in @dir: what
 * a dead owner's machines and networks left running, should
 * PR_SET_PDEATHSIG not have reached them (a runner in another pid
 * namespace, a QEMU that was stopped). */
static void
kill_orphans (const char *dir)
{
  g_autoptr(GDir) proc = g_dir_open ("/proc", 0, NULL);
  g_autofree char *prefix = g_strconcat (dir, "/", NULL);
  const char *name;

  if (proc == NULL)
    return;

  while ((name = g_dir_read_name (proc)) != NULL)
    {
      g_autofree char *path = NULL;
      g_autofree char *cmdline = NULL;
      gint64 pid = g_ascii_strtoll (name, NULL, 10);
      gboolean mentions = FALSE;
      struct stat st;
      gsize len;

      if (pid <= 0 || pid == getpid ())
        continue;

      path = g_strdup_printf ("/proc/%s", name);
      if (stat (path, &st) != 0 || st.st_uid != getuid ())
        continue;

      g_free (path);
      path = g_strdup_printf ("/proc/%s/cmdline", name);
      if (!g_file_get_contents (path, &cmdline, &len, NULL))
        continue;

      /* Arguments are NUL-separated; look at each, and at each
       * "key=value,..." inside QEMU's options. A QEMU that only plugs
       * into a switch in @dir (-netdev vde,sock=…) is another owner's
       * machine on a network whose owner died: it lives on. */
      for (gsize i = 0; i < len && !mentions; i += strlen (cmdline + i) + 1)
        mentions = !g_str_has_prefix (cmdline + i, "vde,") && strstr (cmdline + i, prefix) != NULL;

      if (!mentions)
        continue;

      if (!cli_is_quiet ())
        g_print (opt_dry_run ? _("would kill %s (pid %d), left running in %s\n")
                             : _("killing %s (pid %d), left running in %s\n"),
                 cmdline, (int) pid, dir);
      if (!opt_dry_run)
        kill ((pid_t) pid, SIGKILL);
    }
}

/* rm -rf that never follows a symbolic link out of @path. */
static gboolean
remove_tree (const char  *path,
             GError     **error)
{
  struct stat st;

  if (lstat (path, &st) != 0)
    {
      if (errno == ENOENT)
        return TRUE;
      goto failed;
    }

  if (S_ISDIR (st.st_mode))
    {
      g_autoptr(GDir) dir = g_dir_open (path, 0, error);
      const char *name;

      if (dir == NULL)
        return FALSE;

      while ((name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);

          if (!remove_tree (child, error))
            return FALSE;
        }

      if (g_rmdir (path) != 0)
        goto failed;
      return TRUE;
    }

  if (g_unlink (path) != 0 && errno != ENOENT)
    goto failed;
  return TRUE;

failed:
  {
    int saved_errno = errno;

    qlean_set_error_from_errno (error, saved_errno,
                                _("Cannot remove %s"), path);
    return FALSE;
  }
}

static gboolean
collect_run_dir (const char *dir,
                 guint      *removed,
                 guint      *kept)
{
  g_autoptr(GError) error = NULL;
  gint64 pid = 0;

  switch (qlean_run_owner_check (dir, &pid))
    {
    case QLEAN_RUN_OWNER_UNKNOWN:
      /* Being made right now, or not Qlean's. */
      g_debug ("%s has no owner file; left alone", dir);
      return TRUE;

    case QLEAN_RUN_OWNER_ALIVE:
      g_debug ("%s belongs to pid %" G_GINT64_FORMAT ", which runs", dir, pid);
      (*kept)++;
      return TRUE;

    case QLEAN_RUN_OWNER_DEAD:
    default:
      break;
    }

  kill_orphans (dir);

  if (!cli_is_quiet ())
    g_print (opt_dry_run ? _("would remove %s (owner pid %d is gone)\n")
                         : _("removing %s (owner pid %d is gone)\n"),
             dir, (int) pid);
  if (opt_dry_run)
    {
      (*removed)++;
      return TRUE;
    }

  /* Give what was just killed a moment to let go of its files. */
  for (int attempt = 0; ; attempt++)
    {
      g_clear_error (&error);
      if (remove_tree (dir, &error))
        break;
      if (attempt == 10)
        {
          print_error ("gc", error);
          return FALSE;
        }
      g_usleep (50 * 1000);
    }

  (*removed)++;
  return TRUE;
}

/* gc --kept: stops machine @dir, which a failed test kept. */
static gboolean
stop_kept_machine (const char *dir,
                   guint      *removed)
{
  g_autofree char *name = g_path_get_basename (dir);
  char *args[] = { (char *) "stop", name, NULL };

  if (!cli_is_quiet ())
    g_print (opt_dry_run ? _("would stop kept machine %s\n") : _("stopping kept machine %s\n"), name);
  (*removed)++;
  if (opt_dry_run)
    return TRUE;

  return cmd_stop (2, args) == 0;
}

/* machines/NAME of `qlean start`: state.json names the owner's pid. */
static gboolean
collect_machine_entry (const char *dir,
                       guint      *removed,
                       guint      *kept)
{
  g_autofree char *state_path = g_build_filename (dir, MACHINE_STATE_FILE, NULL);
  g_autoptr(JsonParser) parser = json_parser_new ();
  JsonObject *object;
  gint64 pid;

  if (!json_parser_load_from_file (parser, state_path, NULL) ||
      !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    return TRUE;  /* being made, or not ours */

  object = json_node_get_object (json_parser_get_root (parser));
  pid = json_object_get_int_member_with_default (object, "owner-pid", 0);
  if (pid <= 0)
    return TRUE;

  if (cli_process_alive (pid))
    {
      /* --kept: a machine kept for a failed test is stopped, as asked. */
      if (opt_kept && json_object_has_member (object, "kept-by"))
        return stop_kept_machine (dir, removed);
      (*kept)++;
      return TRUE;
    }

  if (!cli_is_quiet ())
    g_print (opt_dry_run ? _("would forget started machine %s (owner pid %d is gone)\n")
                         : _("forgetting started machine %s (owner pid %d is gone)\n"),
             dir, (int) pid);
  (*removed)++;
  if (opt_dry_run)
    return TRUE;

  /* The files `qlean start` makes, its admin socket included (an owner
   * killed with SIGKILL leaves it): the same list as `qlean stop`. */
  if (!cli_machine_dir_remove (dir))
    {
      int saved_errno = errno;

      g_printerr (_("qlean gc: cannot remove %s: %s\n"), dir, g_strerror (saved_errno));
      return FALSE;
    }

  return TRUE;
}

int
cmd_gc (int    argc,
        char **argv)
{
  static GOptionEntry entries[] = {
    { "dry-run", 'n', 0, G_OPTION_ARG_NONE, &opt_dry_run, N_("Say what would be removed, remove nothing"), NULL },
    { "kept", 0, 0, G_OPTION_ARG_NONE, &opt_kept,
      N_("Also stop the machines kept for failed tests (QLEAN_TEST_KEEP, --qlean-keep)"), NULL },
    { NULL }
  };
  g_autoptr(GError) error = NULL;
  g_autoptr(GDir) dir = NULL;
  g_autofree char *base = NULL;
  g_autofree char *machines = NULL;
  const char *name;
  guint removed = 0, kept = 0;
  gboolean ok = TRUE;
  int status;

  if (!parse_options ("gc", NULL,
                      _("Remove the run directories of processes that died without cleaning up\n"
                        "(a test runner killed with SIGKILL), and kill what they left running.\n"
                        "Directories of running processes are never touched."),
                      entries, &argc, &argv, &status))
    return status;

  if (argc > 1)
    {
      g_printerr (_("qlean gc: takes no arguments\nTry “qlean gc --help”.\n"));
      return EXIT_USAGE;
    }

  base = qlean_get_run_base_dir (&error);
  if (base == NULL)
    {
      print_error ("gc", error);
      return EXIT_FAILED;
    }

  dir = g_dir_open (base, 0, &error);
  if (dir == NULL)
    {
      print_error ("gc", error);
      return EXIT_FAILED;
    }

  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename (base, name, NULL);
      struct stat st;

      if (g_str_equal (name, MACHINES_DIR) || g_str_equal (name, "networks"))
        continue;
      /* Only our own directories, never through a link. */
      if (lstat (path, &st) != 0 || !S_ISDIR (st.st_mode) || st.st_uid != getuid ())
        continue;

      ok &= collect_run_dir (path, &removed, &kept);
    }

  machines = g_build_filename (base, MACHINES_DIR, NULL);
  if (g_file_test (machines, G_FILE_TEST_IS_DIR))
    {
      g_autoptr(GDir) entries_dir = g_dir_open (machines, 0, NULL);

      while (entries_dir != NULL && (name = g_dir_read_name (entries_dir)) != NULL)
        {
          g_autofree char *path = g_build_filename (machines, name, NULL);
          struct stat st;

          if (lstat (path, &st) != 0 || !S_ISDIR (st.st_mode) || st.st_uid != getuid ())
            continue;

          ok &= collect_machine_entry (path, &removed, &kept);
        }
    }

  /* networks/NAME of `qlean start --network` (qlean-cli-network.c). */
  ok &= cli_network_collect (base, opt_dry_run, &removed, &kept);

  if (!cli_is_quiet ())
    g_print (opt_dry_run ? _("%u would be removed, %u in use\n") : _("%u removed, %u in use\n"),
             removed, kept);

  return ok ? 0 : EXIT_FAILED;
}
