/* qlean-test.c: helpers for g_test suites that use machines
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib/gstdio.h>
#include <glib/gi18n-lib.h>

#include "qlean-test.h"
#include "qlean-machine-private.h"
#include "qlean-util-private.h"

/* The g_test helpers (documented for users in docs/testing.md).
 *
 * A failure is seen in three places, since GLib offers no hook for it:
 * - a failed g_assert*() prints "**\n...ERROR:..." with g_printerr()
 *   just before it aborts (or _exit()s, in a test subprocess): the
 *   printerr hook;
 * - a test of qlean_test_add_func() (or of the fixture functions) that
 *   failed without an assertion (g_test_fail()): g_test_failed() at
 *   teardown;
 * - a plain g_test_add_func() test that called g_test_fail(): under
 *   --tap, GLib prints "Bail out!" with g_print() before it aborts the
 *   run: the print hook.
 * Each keeps the logs of the test's machines, then kills them, since
 * the process is about to end (or, with --keep-going, the next test
 * gets a fresh machine), so that no QEMU and no run directory is left.
 */

#define ARTIFACTS_ENV "QLEAN_TEST_ARTIFACTS"
#define ARTIFACTS_DEFAULT "qlean-artifacts"
#define RESET_ENV "QLEAN_TEST_RESET"
/* Snapshot names may not contain "/"; this one cannot clash with a
 * test's own snapshots, which restores would otherwise overwrite. */
#define RESET_SNAPSHOT "qlean-test-ready"

G_LOCK_DEFINE_STATIC (state);

/* Everything below is under the state lock. */
static QleanMachine *shared_machine;
static GError *shared_error;          /* why the shared machine did not boot */
static gboolean shared_snapshot;      /* it has RESET_SNAPSHOT, taken once it was ready */
static gboolean shared_snapshot_failed;
static gboolean shared_used;          /* handed to a test since it was ready or reset */
static char *shared_user;             /* that test's path */
static int reset_wanted = -1;         /* qlean_test_set_reset(); -1: not called */
static int reset_env = -2;            /* RESET_ENV: -2 not read yet, -1 unset or invalid */
static int available = -1;            /* -1: not checked yet */
static char *unavailable_reason;
static char *current_path;            /* the test the state was reset for */
static GPtrArray *watched;            /* GWeakRef *, of the current test */
static char *saved_path;              /* the test whose artifacts were printed */
static GPrintFunc previous_printerr;
static GPrintFunc previous_print;
static gboolean in_hook;

static void
weak_ref_free (gpointer data)
{
  g_weak_ref_clear (data);
  g_free (data);
}

static const char *
test_path (void)
{
  const char *path = g_test_get_path ();

  return path != NULL && path[0] != '\0' ? path : NULL;
}

/* The machines whose logs a failure of the current test keeps. */
static GPtrArray *
collect_machines_locked (void)
{
  GPtrArray *machines = g_ptr_array_new_with_free_func (g_object_unref);

  if (shared_machine != NULL)
    g_ptr_array_add (machines, g_object_ref (shared_machine));
  for (guint i = 0; watched != NULL && i < watched->len; i++)
    {
      QleanMachine *machine = g_weak_ref_get (g_ptr_array_index (watched, i));

      if (machine != NULL && !g_ptr_array_find (machines, machine, NULL))
        g_ptr_array_add (machines, machine);
      else
        g_clear_object (&machine);
    }

  return machines;
}

/* A path that cannot leave the artifacts root: test paths are
 * "/suite/case", but they are the test author's text. */
static char *
sanitize_test_path (const char *path)
{
  g_auto(GStrv) parts = g_strsplit (path, "/", -1);
  g_autoptr(GPtrArray) kept = g_ptr_array_new ();

  for (guint i = 0; parts[i] != NULL; i++)
    {
      char *part = parts[i];

      if (part[0] == '\0' || g_str_equal (part, ".") || g_str_equal (part, ".."))
        continue;
      for (char *c = part; *c != '\0'; c++)
        if (!g_ascii_isalnum (*c) && *c != '-' && *c != '_' && *c != '.')
          *c = '_';
      g_ptr_array_add (kept, part);
    }
  g_ptr_array_add (kept, NULL);

  return g_build_filenamev ((char **) kept->pdata);
}

/**
 * qlean_test_get_artifacts_dir:
 *
 * Where a failure of the running test keeps its machines' logs:
 * `$QLEAN_TEST_ARTIFACTS/<test path>`, by default
 * `$G_TEST_BUILDDIR/qlean-artifacts/<test path>`. Outside a test, the
 * root of the artifacts.
 *
 * Returns: (transfer full) (type filename): the directory, which may not
 *   exist yet
 *
 * Since: 0.1
 */
char *
qlean_test_get_artifacts_dir (void)
{
  const char *root_env = g_getenv (ARTIFACTS_ENV);
  g_autofree char *root = NULL;
  g_autofree char *relative = NULL;
  const char *path = test_path ();

  if (root_env != NULL && root_env[0] != '\0')
    root = g_strdup (root_env);
  else if (g_test_initialized ())
    root = g_test_build_filename (G_TEST_BUILT, ARTIFACTS_DEFAULT, NULL);
  else   /* not a g_test program: g_test_build_filename() would abort */
    root = g_build_filename (g_getenv ("G_TEST_BUILDDIR") ? g_getenv ("G_TEST_BUILDDIR") : ".",
                             ARTIFACTS_DEFAULT, NULL);

  if (path == NULL)
    return g_steal_pointer (&root);

  relative = sanitize_test_path (path);
  return g_build_filename (root, relative, NULL);
}

static char *save_artifacts_of (GPtrArray  *machines,
                                const char *reason);

/**
 * qlean_test_save_artifacts:
 * @reason: (nullable): why, written to `failure.txt` beside the logs
 *
 * Copies the logs of the machines the running test used (the shared
 * machine and those given to [func@test_watch_machine]) into
 * [func@test_get_artifacts_dir], one directory per machine name, and
 * prints that directory on standard error. The helpers call this when a
 * test fails; call it to keep the logs of a test that did not.
 *
 * Returns: (transfer full) (nullable) (type filename): the directory, or
 *   %NULL when no machine was used or nothing could be saved
 *
 * Since: 0.1
 */
char *
qlean_test_save_artifacts (const char *reason)
{
  g_autoptr(GPtrArray) machines = NULL;

  G_LOCK (state);
  machines = collect_machines_locked ();
  G_UNLOCK (state);

  return save_artifacts_of (machines, reason);
}

static char *
save_artifacts_of (GPtrArray  *machines,
                   const char *reason)
{
  g_autofree char *dir = qlean_test_get_artifacts_dir ();
  gboolean print;
  guint saved = 0;

  G_LOCK (state);
  print = g_strcmp0 (saved_path, test_path ()) != 0;
  G_UNLOCK (state);

  for (guint i = 0; i < machines->len; i++)
    {
      QleanMachine *machine = g_ptr_array_index (machines, i);
      g_autofree char *machine_dir = g_build_filename (dir, qlean_machine_get_name (machine), NULL);
      g_autoptr(GError) error = NULL;

      if (qlean_machine_save_logs (machine, machine_dir, &error))
        saved++;
      else if (!g_error_matches (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE))
        fprintf (stderr, "# qlean: could not keep the logs of %s: %s\n",
                 qlean_machine_get_name (machine), error->message);
    }

  if (saved == 0)
    return NULL;

  if (reason != NULL)
    {
      g_autofree char *file = g_build_filename (dir, "failure.txt", NULL);
      g_autofree char *text = g_strdup_printf ("%s\n%s\n", test_path () ? test_path () : "", reason);

      g_file_set_contents (file, text, -1, NULL);
    }

  if (print)
    {
      /* Straight to stderr: this may run inside our own printerr hook. */
      fprintf (stderr, "# qlean: console logs and QMP/QGA transcripts of %s are in %s\n",
               test_path () ? test_path () : "this test", dir);
      fflush (stderr);
      G_LOCK (state);
      g_free (saved_path);
      saved_path = g_strdup (test_path ());
      G_UNLOCK (state);
    }

  return g_steal_pointer (&dir);
}

/* Kills the shared @machine and, when @had_snapshot, removes its state
 * directory with the reset snapshot. The machine removes it itself only
 * when its last reference goes, which a worker callback may still hold
 * when a dying test process exits: the directory would be left behind. */
static void
kill_shared_machine (QleanMachine *machine,
                     gboolean      had_snapshot)
{
  g_autofree char *snapshots = NULL;
  g_autofree char *state_dir = NULL;

  qlean_machine_kill (machine, NULL, NULL);
  if (!had_snapshot)
    return;

  snapshots = qlean_machine_ensure_state_dir (machine, "snapshots", NULL);
  state_dir = snapshots ? g_path_get_dirname (snapshots) : NULL;
  if (state_dir != NULL)
    qlean_rm_rf (state_dir, NULL);
}

/* Its snapshot lives in its state directory, which goes with it (see
 * kill_shared_machine). */
static void
drop_shared_machine_locked (void)
{
  g_clear_object (&shared_machine);
  shared_snapshot = FALSE;
  shared_snapshot_failed = FALSE;
  shared_used = FALSE;
  g_clear_pointer (&shared_user, g_free);
}

/* Ends the machines of a test that is about to die: the process exits
 * right after a fatal assertion, and no run directory may be left. */
static void
end_machines (void)
{
  g_autoptr(GPtrArray) machines = NULL;
  g_autoptr(QleanMachine) shared = NULL;
  gboolean had_snapshot;

  G_LOCK (state);
  machines = collect_machines_locked ();
  shared = shared_machine ? g_object_ref (shared_machine) : NULL;
  had_snapshot = shared_snapshot;
  drop_shared_machine_locked ();
  g_clear_pointer (&watched, g_ptr_array_unref);
  G_UNLOCK (state);

  for (guint i = 0; i < machines->len; i++)
    {
      QleanMachine *machine = g_ptr_array_index (machines, i);

      if (machine == shared)
        kill_shared_machine (machine, had_snapshot);
      else
        qlean_machine_kill (machine, NULL, NULL);
    }
}

/* QLEAN_TEST_KEEP: set and not "0". */
static gboolean
keep_wanted (void)
{
  const char *value = g_getenv ("QLEAN_TEST_KEEP");

  return value != NULL && *value != '\0' && !g_str_equal (value, "0");
}

static char *
find_cli (void)
{
  const char *candidates[] = {
    g_getenv ("QLEAN_CLI"),
    QLEAN_BUILD_CLI,
    QLEAN_BINDIR "/qlean",
  };

  for (guint i = 0; i < G_N_ELEMENTS (candidates); i++)
    if (candidates[i] != NULL && *candidates[i] != '\0' &&
        g_file_test (candidates[i], G_FILE_TEST_IS_EXECUTABLE))
      return g_strdup (candidates[i]);

  return g_find_program_in_path ("qlean");
}

/* A machine name for the kept copy of @machine: "kept-", the test's
 * path and the machine's name, in the characters machine names allow. */
static char *
kept_name (QleanMachine *machine)
{
  g_autofree char *raw = g_strdup_printf ("kept-%s-%s", test_path () ? test_path () : "",
                                          qlean_machine_get_name (machine));
  GString *name = g_string_new (NULL);

  for (const char *c = raw; *c != '\0' && name->len < 60; c++)
    {
      if (g_ascii_isalnum (*c))
        g_string_append_c (name, *c);
      else if (name->len > 0 && name->str[name->len - 1] != '-')
        g_string_append_c (name, '-');
    }
  while (name->len > 0 && name->str[name->len - 1] == '-')
    g_string_truncate (name, name->len - 1);

  return g_string_free (name, FALSE);
}

/* Hands a copy of @machine, memory and all, to a `qlean` owner process
 * that keeps it running after this process ends: an export, then
 * `qlean import`. The kept machine is thus one the command line lists,
 * steps into and stops, and this process kills its own as usual. */
static void
keep_machine (QleanMachine *machine,
              const char   *cli)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *name = kept_name (machine);
  g_autofree char *dir = g_dir_make_tmp ("qlean-keep-XXXXXX", &error);
  g_autofree char *archive = dir ? g_build_filename (dir, "machine.qlean", NULL) : NULL;
  g_autoptr(GFile) file = archive ? g_file_new_for_path (archive) : NULL;
  g_autofree char *output = NULL;
  int status = -1;

  g_autofree char *kept_by = g_strdup_printf ("%s (pid %d)", test_path () ? test_path () : g_get_prgname (),
                                              (int) getpid ());

  if (dir != NULL && qlean_machine_export (machine, file, NULL, &error))
    {
      const char *argv[] = { cli, "import", "--kept-by", kept_by, archive, name, NULL };

      if (g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL,
                        NULL, &output, &status, &error))
        g_spawn_check_wait_status (status, &error);
    }
  if (archive != NULL)
    g_unlink (archive);
  if (dir != NULL)
    g_rmdir (dir);

  if (error != NULL)
    fprintf (stderr, "# qlean: could not keep %s: %s%s%s\n", qlean_machine_get_name (machine),
             error->message, output && *output ? ": " : "", output ? g_strstrip (output) : "");
  else
    fprintf (stderr, "# qlean: kept %s as “%s”: `qlean exec %s -- sh` to look around, "
             "`qlean stop %s` when done\n", qlean_machine_get_name (machine), name, name, name);
  fflush (stderr);
}

/* With QLEAN_TEST_KEEP, the running machines of the failed test go on
 * living as machines of the command line. */
static void
keep_failed_machines (void)
{
  g_autoptr(GPtrArray) machines = NULL;
  g_autofree char *cli = NULL;

  if (!keep_wanted ())
    return;

  G_LOCK (state);
  machines = collect_machines_locked ();
  G_UNLOCK (state);

  cli = find_cli ();
  for (guint i = 0; i < machines->len; i++)
    {
      QleanMachine *machine = g_ptr_array_index (machines, i);

      if (qlean_machine_get_state (machine) != QLEAN_MACHINE_STATE_RUNNING)
        continue;
      if (cli == NULL)
        {
          fprintf (stderr, "# qlean: could not keep %s: no `qlean` command found "
                   "(set QLEAN_CLI)\n", qlean_machine_get_name (machine));
          continue;
        }
      keep_machine (machine, cli);
    }
}

/* The end of a failed test, in whichever way GLib let us see it: keep
 * the logs, keep the machines where asked, then kill them. */
static void
end_failed_test (const char *reason)
{
  g_free (qlean_test_save_artifacts (reason));
  keep_failed_machines ();
  end_machines ();
}

/* g_assertion_message() prints "**\n<domain>:ERROR:<file>:<line>:..."
 * with g_printerr() before it aborts or, in a test subprocess, exits:
 * the last moment a failed g_assert() lets us keep the logs. */
static void
printerr_hook (const char *string)
{
  gboolean assertion;

  if (previous_printerr != NULL)
    previous_printerr (string);
  else
    {
      fputs (string, stderr);
      fflush (stderr);
    }

  assertion = g_str_has_prefix (string, "**\n") && strstr (string, "ERROR:") != NULL;
  if (!assertion || test_path () == NULL)
    return;

  G_LOCK (state);
  if (in_hook)
    {
      G_UNLOCK (state);
      return;
    }
  in_hook = TRUE;
  G_UNLOCK (state);

  {
    g_autofree char *reason = g_strstrip (g_strdup (string + 3));

    end_failed_test (reason);
  }

  G_LOCK (state);
  in_hook = FALSE;
  G_UNLOCK (state);
}

/* With --tap, GLib prints "Bail out!" with g_print() before it aborts a
 * failed test run: the end of a test added with g_test_add_func() that
 * failed without an assertion (g_test_fail()), which has no teardown. */
static void
print_hook (const char *string)
{
  if (previous_print != NULL)
    previous_print (string);
  else
    {
      fputs (string, stdout);
      fflush (stdout);
    }

  if (!g_str_has_prefix (string, "Bail out!") || test_path () == NULL)
    return;

  G_LOCK (state);
  if (in_hook)
    {
      G_UNLOCK (state);
      return;
    }
  in_hook = TRUE;
  G_UNLOCK (state);

  end_failed_test (_("The test failed"));

  G_LOCK (state);
  in_hook = FALSE;
  G_UNLOCK (state);
}

static void
cleanup_at_exit (void)
{
  g_autoptr(QleanMachine) machine = NULL;
  gboolean had_snapshot;

  G_LOCK (state);
  machine = shared_machine ? g_object_ref (shared_machine) : NULL;
  had_snapshot = shared_snapshot;
  drop_shared_machine_locked ();
  g_clear_pointer (&watched, g_ptr_array_unref);
  G_UNLOCK (state);

  if (machine != NULL)
    kill_shared_machine (machine, had_snapshot);
}

static void
install_hooks (void)
{
  static gsize installed = 0;

  if (g_once_init_enter (&installed))
    {
      previous_printerr = g_set_printerr_handler (printerr_hook);
      previous_print = g_set_print_handler (print_hook);
      atexit (cleanup_at_exit);
      g_once_init_leave (&installed, 1);
    }
}

/**
 * qlean_test_skip_unless_available:
 *
 * Checks, once per process, that this host can run machines (QEMU, a
 * kernel, busybox and the guest agent for the minimal image; see
 * qlean_check_requirements()). When it cannot, the running test is
 * skipped with g_test_skip() and a message that says what is missing
 * and which package provides it.
 *
 * Returns: %TRUE when machines can run; %FALSE when the test was skipped
 *   and should return
 *
 * Since: 0.1
 */
gboolean
qlean_test_skip_unless_available (void)
{
  gboolean ok;

  G_LOCK (state);
  if (available < 0)
    {
      g_autoptr(GPtrArray) report = qlean_check_requirements (NULL);
      g_autoptr(GString) reason = g_string_new (NULL);

      for (guint i = 0; i < report->len; i++)
        {
          QleanRequirement *r = g_ptr_array_index (report, i);

          if (r->ok || !r->required)
            continue;
          g_string_append_printf (reason, "%s%s: %s", reason->len ? "; " : "", r->name, r->detail);
          if (r->hint != NULL)
            g_string_append_printf (reason, _(" (install %s)"), r->hint);
        }
      available = qlean_requirements_met (report);
      if (!available)
        unavailable_reason = g_strdup_printf (_("This host cannot run Qlean machines: %s"),
                                              reason->str);
    }
  ok = available;
  G_UNLOCK (state);

  if (!ok)
    g_test_skip (unavailable_reason);

  return ok;
}

/* Whether the shared machine is reset between tests: RESET_ENV when set,
 * else what qlean_test_set_reset() chose, else yes. */
static gboolean
reset_enabled_locked (void)
{
  if (reset_env == -2)
    {
      static const char * const off[] = { "0", "no", "false", "off", NULL };
      static const char * const on[] = { "1", "yes", "true", "on", NULL };
      const char *value = g_getenv (RESET_ENV);

      reset_env = -1;
      for (guint i = 0; value != NULL && off[i] != NULL; i++)
        {
          if (g_ascii_strcasecmp (value, off[i]) == 0)
            reset_env = 0;
          else if (g_ascii_strcasecmp (value, on[i]) == 0)
            reset_env = 1;
        }
      if (value != NULL && *value != '\0' && reset_env < 0)
        fprintf (stderr, "# qlean: ignoring %s=%s: use 1 to reset the shared machine "
                 "between tests, 0 not to\n", RESET_ENV, value);
    }

  if (reset_env >= 0)
    return reset_env;
  if (reset_wanted >= 0)
    return reset_wanted;
  return TRUE;
}

/* Makes the shared @machine fit for the running test: when another test
 * had it since it was ready (or it no longer runs), it goes back to the
 * snapshot taken once it was first ready, so that no file or process of
 * one test is seen by the next. A new QEMU continues from the snapshot,
 * in about a third of a second, where a fresh boot of the minimal image
 * takes about twice that and of a distribution image far more.
 *
 * Runs without the state lock: a restore takes that fraction of a
 * second, and a failed assertion's hook needs the lock meanwhile.
 *
 * Returns: %FALSE when @machine was dropped and the caller must boot a
 *   new one */
static gboolean
reset_shared_machine (QleanMachine *machine)
{
  g_autoptr(GError) error = NULL;
  gboolean running = qlean_machine_get_state (machine) == QLEAN_MACHINE_STATE_RUNNING;
  gboolean used_by_other;
  gboolean reset;
  gboolean have_snapshot;
  gboolean snapshot_failed;
  gint64 start;

  G_LOCK (state);
  used_by_other = shared_used && g_strcmp0 (shared_user, test_path ()) != 0;
  reset = reset_enabled_locked ();
  have_snapshot = shared_snapshot;
  snapshot_failed = shared_snapshot_failed;
  G_UNLOCK (state);

  if (running && (!reset || !used_by_other))
    return TRUE;

  /* It was said once, at boot, that this machine cannot be reset. */
  if (running && !have_snapshot && snapshot_failed)
    return TRUE;

  /* Stopped and nothing to go back to, or reset turned on after a boot
   * without a snapshot: a new boot is the clean state. */
  if (!have_snapshot)
    {
      G_LOCK (state);
      if (shared_machine == machine)
        drop_shared_machine_locked ();
      G_UNLOCK (state);
      qlean_machine_kill (machine, NULL, NULL);
      return FALSE;
    }

  start = g_get_monotonic_time ();
  if (!qlean_machine_restore (machine, RESET_SNAPSHOT, NULL, &error))
    {
      fprintf (stderr, "# qlean: could not reset the shared test machine, booting a new one: %s\n",
               error->message);
      G_LOCK (state);
      if (shared_machine == machine)
        drop_shared_machine_locked ();
      G_UNLOCK (state);
      kill_shared_machine (machine, TRUE);
      return FALSE;
    }
  g_debug ("Reset the shared test machine for %s in %.3f s", test_path () ? test_path () : "a test",
           (g_get_monotonic_time () - start) / (double) G_USEC_PER_SEC);

  G_LOCK (state);
  shared_used = FALSE;
  g_clear_pointer (&shared_user, g_free);
  G_UNLOCK (state);

  return TRUE;
}

/* Called at the start of every test that uses the helpers. */
static void
begin_test_locked (void)
{
  const char *path = test_path ();
  g_autofree char *dir = NULL;

  if (g_strcmp0 (path, current_path) == 0)
    return;

  g_free (current_path);
  current_path = g_strdup (path);
  g_clear_pointer (&watched, g_ptr_array_unref);

  /* Artifacts of an earlier run of this test would mislead. */
  dir = qlean_test_get_artifacts_dir ();
  if (path != NULL && g_file_test (dir, G_FILE_TEST_IS_DIR))
    qlean_rm_rf (dir, NULL);
}

/* Boots the shared machine and, when tests are reset, snapshots it
 * while it is fresh. Returns a reference, or %NULL with the test failed. */
static QleanMachine *
boot_shared_machine (void)
{
  g_autoptr(QleanMachine) machine = qlean_machine_new_with_name ("qlean-test", NULL, NULL);
  g_autoptr(GError) error = NULL;
  gboolean reset;
  gboolean snapshot = FALSE;

  if (!qlean_machine_spawn (machine, NULL, &error))
    {
      g_autoptr(GPtrArray) machines = g_ptr_array_new_with_free_func (g_object_unref);

      G_LOCK (state);
      g_clear_error (&shared_error);
      shared_error = g_error_copy (error);
      G_UNLOCK (state);

      /* The boot's console log says why the agent never answered. */
      g_ptr_array_add (machines, g_object_ref (machine));
      g_free (save_artifacts_of (machines, error->message));
      g_test_fail_printf (_("The shared test machine did not boot: %s"), error->message);
      return NULL;
    }

  G_LOCK (state);
  reset = reset_enabled_locked ();
  G_UNLOCK (state);

  if (reset)
    {
      snapshot = qlean_machine_snapshot (machine, RESET_SNAPSHOT, NULL, &error);
      if (!snapshot)
        fprintf (stderr, "# qlean: cannot snapshot the shared test machine, so tests will see "
                 "each other's files and processes in it: %s\n", error->message);
    }

  G_LOCK (state);
  drop_shared_machine_locked ();
  shared_machine = g_object_ref (machine);
  shared_snapshot = snapshot;
  shared_snapshot_failed = reset && !snapshot;
  G_UNLOCK (state);

  return g_steal_pointer (&machine);
}

/**
 * qlean_test_get_machine:
 *
 * The test binary's shared machine: the minimal image with the default
 * configuration, booted on the first call, reset before each test that
 * calls this, and killed when the process exits.
 *
 * The reset restores a snapshot taken once the machine was first ready
 * (see [method@Machine.restore]): files, processes and everything else
 * an earlier test left in the guest are gone, in about a third of a
 * second. It happens only when another test used the machine since, and
 * can be turned off for speed with [func@test_set_reset] or
 * `QLEAN_TEST_RESET=0`; a machine that a test left not running is
 * replaced either way.
 *
 * When the host cannot run machines the test is skipped (see
 * [func@test_skip_unless_available]); when the machine does not boot
 * the test fails with the reason (once, and every later test fails
 * fast with it). Either way %NULL is returned and the test should
 * return.
 *
 * Returns: (transfer none) (nullable): the running machine, or %NULL
 *
 * Since: 0.1
 */
QleanMachine *
qlean_test_get_machine (void)
{
  g_autoptr(QleanMachine) machine = NULL;
  QleanMachine *ready = NULL;

  install_hooks ();

  if (!qlean_test_skip_unless_available ())
    return NULL;

  G_LOCK (state);
  begin_test_locked ();
  if (shared_machine != NULL)
    machine = g_object_ref (shared_machine);
  else if (shared_error != NULL)
    {
      g_autofree char *message = g_strdup (shared_error->message);

      G_UNLOCK (state);
      g_test_fail_printf (_("The shared test machine did not boot: %s"), message);
      return NULL;
    }
  G_UNLOCK (state);

  /* Reset and boot outside the lock: a failed assertion elsewhere may
   * need it. */
  if (machine != NULL && !reset_shared_machine (machine))
    g_clear_object (&machine);
  if (machine == NULL)
    machine = boot_shared_machine ();
  if (machine == NULL)
    return NULL;

  G_LOCK (state);
  if (shared_machine == machine)
    {
      ready = shared_machine;   /* the state keeps the reference */
      shared_used = TRUE;
      g_free (shared_user);
      shared_user = g_strdup (test_path ());
    }
  G_UNLOCK (state);

  if (ready == NULL)
    g_test_fail_printf (_("The shared test machine was killed while this test was getting it"));

  return ready;
}

/**
 * qlean_test_set_reset:
 * @reset: %TRUE to reset the shared machine between tests (the
 *   default), %FALSE to hand each test the machine as the last one left
 *   it
 *
 * Chooses whether [func@test_get_machine] restores the shared machine's
 * snapshot before a test when an earlier test used it. Resetting keeps
 * tests apart at about a third of a second per test; a suite whose
 * tests clean up after themselves may prefer the speed. Without reset
 * no snapshot is taken either. Call it before the first test that uses
 * the machine; a change takes effect at the next test.
 *
 * The environment variable `QLEAN_TEST_RESET`, when set to `1` or `0`
 * (also `yes`/`no`, `true`/`false`, `on`/`off`), overrides this choice,
 * so that one run can trade isolation for speed, or check a suite that
 * turned reset off, without a rebuild.
 *
 * Since: 0.1
 */
void
qlean_test_set_reset (gboolean reset)
{
  G_LOCK (state);
  reset_wanted = !!reset;
  G_UNLOCK (state);
}

/**
 * qlean_test_get_reset:
 *
 * Whether [func@test_get_machine] resets the shared machine between
 * tests: `QLEAN_TEST_RESET` when set, else the choice of
 * [func@test_set_reset], else %TRUE.
 *
 * Returns: %TRUE when tests get the machine reset
 *
 * Since: 0.1
 */
gboolean
qlean_test_get_reset (void)
{
  gboolean reset;

  G_LOCK (state);
  reset = reset_enabled_locked ();
  G_UNLOCK (state);

  return reset;
}

/**
 * qlean_test_watch_machine:
 * @machine: a machine the running test made itself
 *
 * Keeps @machine's logs, beside the shared machine's, if the running
 * test fails, and kills it when a failed assertion ends the process.
 * The watch holds no reference and ends with the test.
 *
 * Since: 0.1
 */
void
qlean_test_watch_machine (QleanMachine *machine)
{
  GWeakRef *ref;

  g_return_if_fail (QLEAN_IS_MACHINE (machine));

  install_hooks ();

  ref = g_new0 (GWeakRef, 1);
  g_weak_ref_init (ref, machine);

  G_LOCK (state);
  begin_test_locked ();
  if (watched == NULL)
    watched = g_ptr_array_new_with_free_func (weak_ref_free);
  g_ptr_array_add (watched, ref);
  G_UNLOCK (state);
}

/**
 * qlean_test_fixture_setup: (skip)
 * @fixture: the test's fixture
 * @user_data: the test's data (unused)
 *
 * Set-up for g_test_add() with #QleanTestFixture: fills
 * @fixture->machine with [func@test_get_machine], which may skip or fail
 * the test and leave it %NULL.
 *
 * Since: 0.1
 */
void
qlean_test_fixture_setup (QleanTestFixture *fixture,
                          gconstpointer     user_data)
{
  fixture->machine = qlean_test_get_machine ();
  if (fixture->machine != NULL)
    g_object_ref (fixture->machine);
}

/**
 * qlean_test_fixture_teardown: (skip)
 * @fixture: the test's fixture
 * @user_data: the test's data (unused)
 *
 * Tear-down for g_test_add() with #QleanTestFixture: when the test has
 * failed (g_test_failed()), keeps its machines' logs with
 * [func@test_save_artifacts] and kills the machines (the next test gets
 * a fresh shared machine).
 *
 * Since: 0.1
 */
void
qlean_test_fixture_teardown (QleanTestFixture *fixture,
                             gconstpointer     user_data)
{
  g_clear_object (&fixture->machine);

  if (!g_test_failed ())
    return;

  /* GLib aborts a failed run right after this, unless it runs with
   * --keep-going; either way the next test gets a fresh machine. */
  end_failed_test (_("The test failed (g_test_failed() at teardown)"));
}

static void
run_test_func (QleanTestFixture *fixture,
               gconstpointer     user_data)
{
  GTestFunc test_func = (GTestFunc) (void (*) (void)) user_data;

  /* Set-up skipped or failed the test. */
  if (fixture->machine == NULL)
    return;

  test_func ();
}

/**
 * qlean_test_add_func: (skip)
 * @testpath: the test's path, as for g_test_add_func()
 * @test_func: the test; it gets the machine from
 *   [func@test_get_machine]
 *
 * Adds a test, as g_test_add_func() does, that uses the shared machine:
 * the machine is booted or reset before @test_func runs (which is not
 * called when that skips or fails the test), and the logs are kept when
 * the test fails.
 *
 * Since: 0.1
 */
void
qlean_test_add_func (const char *testpath,
                     GTestFunc   test_func)
{
  g_return_if_fail (testpath != NULL);
  g_return_if_fail (test_func != NULL);

  install_hooks ();

  g_test_add_vtable (testpath, sizeof (QleanTestFixture),
                     (gconstpointer) (void (*) (void)) test_func,
                     (GTestFixtureFunc) qlean_test_fixture_setup,
                     (GTestFixtureFunc) run_test_func,
                     (GTestFixtureFunc) qlean_test_fixture_teardown);
}
