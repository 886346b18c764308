/* test-cloneable.c: cloneable machines, whose memory is a file of their
 * own (real QEMU, TCG, the minimal image)
 *
 * SPDX-License-Identifier: MIT
 *
 * A cloneable machine (QleanMachineConfig:cloneable) runs on a RAM file
 * on tmpfs; a clone of it while it runs copies that file and takes only
 * its devices through QEMU. These tests look at the files (where they
 * are, that they go with their machines and after a failure) and at
 * what the clones are: copies of the running guest, independent of
 * each other, with identities of their own. Each test uses a RAM folder
 * of its own (QLEAN_RAM_DIR), so that what is in it is theirs.
 */

#include "config.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>

#include <qlean/qlean.h>
#include "test-common.h"

/* A new RAM folder on tmpfs, set as QLEAN_RAM_DIR (set while no
 * machine runs: the library reads it as machines start). */
static char *
ram_dir_on_tmpfs (void)
{
  char *dir = g_strdup ("/dev/shm/qlean-test-ram-XXXXXX");

  g_assert_nonnull (g_mkdtemp_full (dir, 0700));
  g_setenv ("QLEAN_RAM_DIR", dir, TRUE);
  return dir;
}

static gint
sort_names (gconstpointer a,
            gconstpointer b,
            gpointer      user_data)
{
  return g_strcmp0 (*(char * const *) a, *(char * const *) b);
}

/* The names in @dir, sorted, one string. */
static char *
dir_listing (const char *dir)
{
  g_autoptr(GDir) listing = g_dir_open (dir, 0, NULL);
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *name;

  while (listing != NULL && (name = g_dir_read_name (listing)) != NULL)
    g_ptr_array_add (names, g_strdup (name));
  g_ptr_array_add (names, NULL);
  g_qsort_with_data (names->pdata, names->len - 1, sizeof (char *), sort_names, NULL);
  return g_strjoinv (" ", (char **) names->pdata);
}

/* The RAM file @machine's QEMU runs on, which must be a shared file in
 * @dir. */
static char *
ram_file_in (QleanMachine *machine,
             const char   *dir)
{
  g_autofree char *cmdline = test_qemu_cmdline (machine);
  g_autofree char *prefix = g_strconcat ("mem-path=", dir, "/", NULL);
  const char *start = strstr (cmdline, prefix);
  const char *end;

  g_assert_nonnull (start);
  start += strlen ("mem-path=");
  end = strstr (start, ",share=on");
  g_assert_nonnull (end);
  return g_strndup (start, end - start);
}

static QleanMachine *
cloneable_machine (const char *name)
{
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GError) error = NULL;

  qlean_machine_config_set_cloneable (config, TRUE);
  machine = qlean_machine_new_with_name (name, NULL, config);
  g_assert_true (qlean_machine_spawn (machine, NULL, &error));
  g_assert_no_error (error);
  return g_steal_pointer (&machine);
}

static QleanMachine *
clone_of (QleanMachine *machine,
          const char   *name)
{
  g_autoptr(GError) error = NULL;
  QleanMachine *clone = qlean_machine_clone (machine, name, NULL, &error);

  g_assert_no_error (error);
  g_assert_nonnull (clone);
  g_assert_cmpint (qlean_machine_get_state (clone), ==, QLEAN_MACHINE_STATE_RUNNING);
  return clone;
}

/* The QEMU processes that run for machine @name. */
static GArray *
qemu_pids (const char *name)
{
  g_autofree char *pattern = g_strdup_printf ("guest=%s,", name);
  g_autoptr(GDir) proc = g_dir_open ("/proc", 0, NULL);
  GArray *pids = g_array_new (FALSE, FALSE, sizeof (GPid));
  const char *pid;

  while ((pid = g_dir_read_name (proc)) != NULL)
    {
      g_autofree char *path = g_build_filename ("/proc", pid, "cmdline", NULL);
      g_autofree char *cmdline = NULL;
      gsize length = 0;

      if (!g_ascii_isdigit (pid[0]) || !g_file_get_contents (path, &cmdline, &length, NULL))
        continue;
      for (gsize i = 0; i + 1 < length; i++)
        if (cmdline[i] == '\0')
          cmdline[i] = ' ';
      if (strstr (cmdline, pattern) != NULL)
        {
          GPid n = (GPid) g_ascii_strtoll (pid, NULL, 10);

          g_array_append_val (pids, n);
        }
    }
  return pids;
}

/* How many QEMU processes run for machine @name. */
static guint
qemu_count (const char *name)
{
  g_autoptr(GArray) pids = qemu_pids (name);

  return pids->len;
}

/* Waits up to 10 s for a QEMU for machine @name that is none of the
 * @n_known in @known, looking every millisecond: one that starts. */
static GPid
catch_new_qemu (const char *name,
                const GPid *known,
                guint       n_known)
{
  for (guint i = 0; i < 10000; i++)
    {
      g_autoptr(GArray) pids = qemu_pids (name);

      for (guint j = 0; j < pids->len; j++)
        {
          GPid pid = g_array_index (pids, GPid, j);
          gboolean old = FALSE;

          for (guint k = 0; k < n_known; k++)
            old = old || pid == known[k];
          if (!old)
            return pid;
        }
      g_usleep (G_USEC_PER_SEC / 1000);
    }
  g_assert_not_reached ();
}

/* Waits up to 10 s for @name to have @n QEMU processes. */
static void
wait_qemu_count (const char *name,
                 guint       n)
{
  for (guint i = 0; i < 200 && qemu_count (name) != n; i++)
    g_usleep (G_USEC_PER_SEC / 20);
  g_assert_cmpuint (qemu_count (name), ==, n);
}

/* Waits up to 5 s for @dir to be empty: a parked QEMU's RAM file goes
 * as its kill ends, after its machine's. */
static void
wait_dir_empty (const char *dir)
{
  g_autofree char *listing = NULL;

  for (guint i = 0; i < 100; i++)
    {
      g_free (listing);
      listing = dir_listing (dir);
      if (*listing == '\0')
        break;
      g_usleep (G_USEC_PER_SEC / 20);
    }
  g_assert_cmpstr (listing, ==, "");
}

/* Waits up to 10 s for a log message matching @pattern (since the last
 * test_logged()). */
static void
wait_logged (const char *pattern)
{
  gboolean seen = FALSE;

  for (guint i = 0; i < 200 && !(seen = test_logged (pattern)); i++)
    g_usleep (G_USEC_PER_SEC / 20);
  g_assert_true (seen);
}

/* The end of a test's RAM folder: empty (once the kills are done), and
 * no longer QLEAN_RAM_DIR. */
static void
ram_dir_done (const char *dir)
{
  wait_dir_empty (dir);
  g_unsetenv ("QLEAN_RAM_DIR");
  g_assert_cmpint (g_rmdir (dir), ==, 0);
}

/* A clone of a running cloneable machine: it runs on a copy of the
 * machine's RAM file (the copy's way, said in the log), with the
 * machine's processes and files as they were, its own name and random
 * state; what one writes after shows in no other; its clone is made
 * the same way; and each RAM file goes with its machine. */
static void
test_clone (void)
{
  g_autofree char *dir = NULL, *ram = NULL, *clone_ram = NULL, *again_ram = NULL;
  g_autofree char *out = NULL, *listing = NULL;
  g_autoptr(QleanMachine) source = NULL, clone = NULL, again = NULL;
  g_autoptr(QleanExecResult) result = NULL;
  g_autofree char *uuid = NULL, *clone_uuid = NULL;
  g_autoptr(QleanQgaClient) qga = NULL;
  g_autoptr(GError) error = NULL;

  if (!test_have_qemu ())
    return;

  dir = ram_dir_on_tmpfs ();
  source = cloneable_machine ("cl-source");
  ram = ram_file_in (source, dir);
  g_free (test_run_text (source, "echo source > /root/mark"));
  test_start_counter (source);

  test_logged ("");
  clone = clone_of (source, "cl-clone");
  g_assert_true (test_logged ("*RAM file copied to*"));
  clone_ram = ram_file_in (clone, dir);
  g_assert_cmpstr (clone_ram, !=, ram);
  out = test_run_text (clone, "cat /root/mark; hostname");
  g_assert_cmpstr (out, ==, "source\ncl-clone");
  g_clear_pointer (&out, g_free);
  test_wait_counter_moves (clone);
  test_wait_counter_moves (source);
  /* Its stock agent was not greeted as it started (qlean-guest was):
   * its client syncs at its first call. */
  qga = qlean_machine_dup_qga (clone);
  g_assert_true (qlean_qga_client_ping (qga, NULL, &error));
  g_assert_no_error (error);
  uuid = test_run_text (source, "cat /proc/sys/kernel/random/uuid");
  clone_uuid = test_run_text (clone, "cat /proc/sys/kernel/random/uuid");
  g_assert_cmpstr (uuid, !=, clone_uuid);

  /* Written after the clone: in one only. 16 MiB in the clone's guest
   * memory too, which its file holds and the machine's does not. */
  g_free (test_run_out (source, "echo later > /root/source-only"));
  g_free (test_run_out (clone, "echo clone > /root/clone-only && "
                               "dd if=/dev/urandom of=/tmp/fill bs=1M count=16 2>/dev/null"));
  result = test_run (clone, "test -e /root/source-only");
  g_assert_false (qlean_exec_result_success (result));
  g_clear_object (&result);
  result = test_run (source, "test -e /root/clone-only || test -e /tmp/fill");
  g_assert_false (qlean_exec_result_success (result));
  g_clear_object (&result);

  /* A clone of the clone, the same way. */
  test_logged ("");
  again = clone_of (clone, "cl-again");
  g_assert_true (test_logged ("*RAM file copied to*"));
  again_ram = ram_file_in (again, dir);
  out = test_run_text (again, "cat /root/mark /root/clone-only; hostname; wc -c < /tmp/fill");
  g_assert_cmpstr (out, ==, "source\nclone\ncl-again\n16777216");
  g_clear_pointer (&out, g_free);
  test_wait_counter_moves (again);

  /* Each file goes with its machine. */
  listing = dir_listing (dir);
  g_assert_nonnull (strstr (listing, strrchr (again_ram, '/') + 1));
  g_clear_pointer (&listing, g_free);
  g_assert_true (qlean_machine_kill (clone, NULL, NULL));
  g_assert_false (g_file_test (clone_ram, G_FILE_TEST_EXISTS));
  g_assert_true (g_file_test (ram, G_FILE_TEST_EXISTS));
  out = test_run_text (again, "cat /root/clone-only");
  g_assert_cmpstr (out, ==, "clone");
  g_assert_true (qlean_machine_kill (again, NULL, NULL));
  g_assert_true (qlean_machine_kill (source, NULL, NULL));
  wait_qemu_count ("cl-source-next-clone", 0);
  ram_dir_done (dir);
}

/* A cloneable machine @name, once the QEMU for its next clone is
 * parked; the log is read from its start on. */
static QleanMachine *
parked_source (const char *name)
{
  g_autofree char *parked = g_strdup_printf ("*%s-next-clone: parked for a clone*", name);
  QleanMachine *source;

  test_logged ("");
  source = cloneable_machine (name);
  wait_logged (parked);
  return source;
}

/* A cloneable machine keeps a QEMU parked for its next clone from its
 * start, which the clone takes (and runs on its RAM file), and another
 * is parked once that clone has run a while; a clone parks none until
 * it is cloned; the parked QEMU goes with its machine, its RAM file
 * too. */
static void
test_parked (void)
{
  g_autofree char *dir = NULL, *out = NULL, *first_ram = NULL, *second_ram = NULL;
  g_autoptr(QleanMachine) source = NULL, first = NULL, second = NULL, third = NULL;

  if (!test_have_qemu ())
    return;

  dir = ram_dir_on_tmpfs ();
  source = parked_source ("cl-park");
  g_assert_cmpuint (qemu_count ("cl-park-next-clone"), ==, 1);

  /* The clone runs in the parked QEMU, whose name it keeps; another
   * is parked once the clone has run a while; the clone parks none. */
  first = clone_of (source, "cl-park-1");
  g_assert_cmpuint (qemu_count ("cl-park-1"), ==, 0);
  first_ram = ram_file_in (first, dir);
  wait_logged ("*cl-park-next-clone: parked for a clone*");
  g_assert_cmpuint (qemu_count ("cl-park-1-next-clone"), ==, 0);

  second = clone_of (source, "cl-park-2");
  g_assert_true (test_logged ("*cl-park-2: takes the QEMU parked for it*"));
  /* A clone that follows at once finds none parked, starts a QEMU of
   * its own, and stops the parking that the last one asked for: none
   * starts during a clone's start. */
  third = clone_of (source, "cl-park-3");
  g_assert_cmpuint (qemu_count ("cl-park-3"), ==, 1);
  g_assert_false (test_logged ("*cl-park-next-clone: starting*"));
  out = test_run_text (second, "hostname; cat /proc/sys/kernel/random/boot_id >/dev/null && echo ok");
  g_assert_cmpstr (out, ==, "cl-park-2\nok");
  second_ram = ram_file_in (second, dir);
  g_assert_cmpstr (first_ram, !=, second_ram);
  /* The taken ones are the clones' (QEMU keeps the name it started
   * with), and the next one is parked already. */
  g_assert_cmpuint (qemu_count ("cl-park-2"), ==, 0);
  wait_qemu_count ("cl-park-next-clone", 3);

  g_assert_true (qlean_machine_kill (first, NULL, NULL));
  g_assert_true (qlean_machine_kill (second, NULL, NULL));
  g_assert_true (qlean_machine_kill (third, NULL, NULL));
  g_assert_false (g_file_test (first_ram, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (second_ram, G_FILE_TEST_EXISTS));
  wait_qemu_count ("cl-park-next-clone", 1);
  g_assert_true (qlean_machine_kill (source, NULL, NULL));
  wait_qemu_count ("cl-park-next-clone", 0);
  ram_dir_done (dir);
}

static void
store_result_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
}

/* Clones @source as @name while the QEMU parked for it is held as it
 * starts (SIGSTOP): once the clone waits for that start, the QEMU gets
 * @signal, and the clone's result is returned. */
static QleanMachine *
clone_while_parking (QleanMachine *source,
                     const char   *name,
                     GPid          parked,
                     int           signal,
                     GError      **error)
{
  g_autofree char *waits = g_strdup_printf ("*%s: waits for the QEMU being parked for it*", name);
  g_autoptr(GAsyncResult) result = NULL;

  qlean_machine_clone_async (source, name, NULL, store_result_cb, &result);
  wait_logged (waits);
  g_assert_cmpint (kill (parked, signal), ==, 0);
  while (result == NULL)
    g_main_context_iteration (NULL, TRUE);
  return qlean_machine_clone_finish (source, result, error);
}

/* A clone that comes while the QEMU parked for it is still starting
 * takes it and waits for the rest of its start (here held until the
 * clone waits). Should that start fail, the clone fails with the
 * reason, nothing of it or of that QEMU stays, and the machine runs on
 * and parks anew. */
static void
test_parked_starting (void)
{
  g_autofree char *dir = NULL, *out = NULL;
  g_autoptr(QleanMachine) source = NULL, first = NULL, second = NULL, third = NULL;
  g_autoptr(GError) error = NULL;
  GPid known[2], parked;

  if (!test_have_qemu ())
    return;

  dir = ram_dir_on_tmpfs ();
  source = parked_source ("cl-wait");
  first = clone_of (source, "cl-wait-1");

  /* The next one starts a little after the clone: caught as it does. */
  known[0] = qlean_machine_get_pid (first);
  parked = catch_new_qemu ("cl-wait-next-clone", known, 1);
  g_assert_cmpint (kill (parked, SIGSTOP), ==, 0);
  g_assert_false (test_logged ("*cl-wait-next-clone: parked for a clone*"));
  second = clone_while_parking (source, "cl-wait-2", parked, SIGCONT, &error);
  g_assert_no_error (error);
  g_assert_true (test_logged ("*cl-wait-2: takes the QEMU parked for it*"));
  g_assert_cmpint (qlean_machine_get_pid (second), ==, parked);
  out = test_run_text (second, "hostname");
  g_assert_cmpstr (out, ==, "cl-wait-2");

  /* Its start fails: QEMU killed as the clone waits. */
  known[1] = parked;
  parked = catch_new_qemu ("cl-wait-next-clone", known, 2);
  g_assert_cmpint (kill (parked, SIGSTOP), ==, 0);
  third = clone_while_parking (source, "cl-wait-3", parked, SIGKILL, &error);
  g_assert_null (third);
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED);
  g_test_message ("clone failed: %s", error->message);
  g_assert_nonnull (strstr (error->message, "cl-wait-3"));
  g_assert_nonnull (strstr (error->message, "clone again"));
  g_assert_cmpuint (qemu_count ("cl-wait-3"), ==, 0);
  wait_qemu_count ("cl-wait-next-clone", 2);
  g_clear_pointer (&out, g_free);
  out = test_run_text (source, "echo runs on");
  g_assert_cmpstr (out, ==, "runs on");

  /* A clone after that parks anew once it ran a while. */
  g_clear_object (&third);
  third = clone_of (source, "cl-wait-4");
  wait_qemu_count ("cl-wait-next-clone", 3);

  g_assert_true (qlean_machine_kill (first, NULL, NULL));
  g_assert_true (qlean_machine_kill (second, NULL, NULL));
  g_assert_true (qlean_machine_kill (third, NULL, NULL));
  g_assert_true (qlean_machine_kill (source, NULL, NULL));
  wait_qemu_count ("cl-wait-next-clone", 0);
  ram_dir_done (dir);
}

static void
clone_done_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  GPtrArray *clones = user_data;
  g_autoptr(GError) error = NULL;
  QleanMachine *clone = qlean_machine_clone_finish (QLEAN_MACHINE (source), result, &error);

  g_assert_no_error (error);
  g_ptr_array_add (clones, clone);
}

/* Clones asked for at once take their turns: each is the machine of one
 * instant (its memory file and its devices saved while it stood still),
 * runs its processes on and has its own name. */
static void
test_concurrent (void)
{
  g_autofree char *dir = NULL;
  g_autoptr(QleanMachine) source = NULL;
  g_autoptr(GPtrArray) clones = g_ptr_array_new_with_free_func (g_object_unref);

  if (!test_have_qemu ())
    return;

  dir = ram_dir_on_tmpfs ();
  source = cloneable_machine ("cl-many");
  g_free (test_run_text (source, "echo many > /root/mark"));
  test_start_counter (source);
  for (guint i = 0; i < 3; i++)
    {
      g_autofree char *name = g_strdup_printf ("cl-many-%u", i);

      qlean_machine_clone_async (source, name, NULL, clone_done_cb, clones);
    }
  while (clones->len < 3)
    g_main_context_iteration (NULL, TRUE);

  for (guint i = 0; i < clones->len; i++)
    {
      QleanMachine *clone = g_ptr_array_index (clones, i);
      g_autofree char *out = test_run_text (clone, "cat /root/mark; hostname");
      g_autofree char *expected = g_strdup_printf ("many\n%s", qlean_machine_get_name (clone));

      g_assert_cmpstr (out, ==, expected);
      test_wait_counter_moves (clone);
      g_assert_true (qlean_machine_kill (clone, NULL, NULL));
    }
  test_wait_counter_moves (source);
  g_assert_true (qlean_machine_kill (source, NULL, NULL));
  ram_dir_done (dir);
}

/* A clone greets its qlean-guest alone, and the stock agent only if
 * qlean-guest is silent: here it is stopped in the machine before the
 * clone, so the clone's start greets the agent after 5 s and runs on
 * it, with its own name. */
static void
test_clone_guest_silent (void)
{
  g_autoptr(QleanMachine) source = NULL, clone = NULL;
  g_autofree char *out = NULL;
  g_autoptr(GError) error = NULL;
  gint64 start;

  if (!test_have_qemu ())
    return;

  source = qlean_machine_new_with_name ("cl-silent", NULL, NULL);
  g_assert_true (qlean_machine_spawn (source, NULL, &error));
  g_assert_no_error (error);
  g_free (test_run_out (source, "sh -c 'sleep 0.3; kill -STOP $(pidof qlean-guest)' "
                                "</dev/null >/dev/null 2>&1 &"));
  g_usleep (G_USEC_PER_SEC);

  test_logged ("");
  start = g_get_monotonic_time ();
  clone = clone_of (source, "cl-silent-clone");
  g_test_message ("clone took %.1f s", (g_get_monotonic_time () - start) / 1e6);
  g_assert_true (test_logged ("*cl-silent-clone: guest transport agent*"));
  out = test_run_text (clone, "hostname");
  g_assert_cmpstr (out, ==, "cl-silent-clone");

  g_assert_true (qlean_machine_kill (clone, NULL, NULL));
  g_assert_true (qlean_machine_kill (source, NULL, NULL));
}

/* Bytes of @path that hold pages (not holes). */
static gint64
allocated (const char *path)
{
  GStatBuf st;

  g_assert_cmpint (g_stat (path, &st), ==, 0);
  return (gint64) st.st_blocks * 512;
}

/* A snapshot and a restore read or write every page of the guest's
 * memory through QEMU; on tmpfs a page read is a page kept, so each
 * turns the pages of zeros back into holes: the RAM files hold what
 * the guest holds, not its whole memory. */
static void
test_snapshot (void)
{
  g_autofree char *dir = NULL, *ram = NULL, *restored_ram = NULL, *out = NULL;
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(QleanExecResult) result = NULL;
  g_autoptr(GError) error = NULL;
  gint64 before, size;
  GStatBuf st;

  if (!test_have_qemu ())
    return;

  dir = ram_dir_on_tmpfs ();
  machine = cloneable_machine ("cl-snap");
  ram = ram_file_in (machine, dir);
  g_assert_cmpint (g_stat (ram, &st), ==, 0);
  size = st.st_size;
  g_free (test_run_out (machine, "echo before > /root/mark"));
  before = allocated (ram);
  g_test_message ("RAM file: %" G_GINT64_FORMAT " of %" G_GINT64_FORMAT " bytes", before, size);
  g_assert_cmpint (before, <, size / 2);

  g_assert_true (qlean_machine_snapshot (machine, "s", NULL, &error));
  g_assert_no_error (error);
  g_test_message ("after the snapshot: %" G_GINT64_FORMAT " bytes", allocated (ram));
  g_assert_cmpint (allocated (ram), <, before + 16 * 1024 * 1024);

  g_free (test_run_out (machine, "echo after > /root/mark"));
  g_assert_true (qlean_machine_restore (machine, "s", NULL, &error));
  g_assert_no_error (error);
  out = test_run_text (machine, "cat /root/mark");
  g_assert_cmpstr (out, ==, "before");
  restored_ram = ram_file_in (machine, dir);
  g_test_message ("after the restore: %" G_GINT64_FORMAT " bytes", allocated (restored_ram));
  g_assert_cmpint (allocated (restored_ram), <, before + 16 * 1024 * 1024);

  g_assert_true (qlean_machine_kill (machine, NULL, NULL));
  ram_dir_done (dir);
}

/* A clone that fails (here the machine's RAM file is not a file any
 * more, so it cannot be copied) says what failed, leaves no file and
 * no QEMU behind (neither its own nor the one it took), and the
 * machine runs on. */
static void
test_clone_fails (void)
{
  g_autofree char *dir = NULL, *ram = NULL, *listing = NULL, *out = NULL;
  g_autoptr(QleanMachine) source = NULL, clone = NULL;
  g_autoptr(GError) error = NULL;

  if (!test_have_qemu ())
    return;

  dir = ram_dir_on_tmpfs ();
  test_logged ("");
  source = cloneable_machine ("cl-fails");
  ram = ram_file_in (source, dir);
  /* The clone takes the QEMU parked for it, which must go too. */
  wait_logged ("*cl-fails-next-clone: parked for a clone*");
  /* QEMU keeps its mapping; the name is now a folder. */
  g_assert_cmpint (g_unlink (ram), ==, 0);
  g_assert_cmpint (g_mkdir (ram, 0700), ==, 0);

  clone = qlean_machine_clone (source, "cl-fails-clone", NULL, &error);
  g_assert_null (clone);
  g_assert_nonnull (error);
  g_test_message ("clone failed: %s", error->message);
  g_assert_nonnull (strstr (error->message, "Could not copy the memory file"));
  g_assert_nonnull (strstr (error->message, ram));

  g_assert_true (test_logged ("*cl-fails-clone: takes the QEMU parked for it*"));
  listing = dir_listing (dir);
  g_assert_cmpstr (listing, ==, strrchr (ram, '/') + 1);
  g_assert_cmpuint (qemu_count ("cl-fails-next-clone"), ==, 0);
  g_assert_cmpuint (qemu_count ("cl-fails-clone"), ==, 0);
  out = test_run_text (source, "echo runs on");
  g_assert_cmpstr (out, ==, "runs on");

  g_assert_cmpint (g_rmdir (ram), ==, 0);
  g_assert_true (qlean_machine_kill (source, NULL, NULL));
  ram_dir_done (dir);
}

/* Where the RAM folder is not on tmpfs, a cloneable machine starts as
 * any other, with the reason in the log; its clone takes its memory
 * through QEMU, and is a true clone all the same. */
static void
test_fallback (void)
{
  g_autofree char *dir = g_dir_make_tmp ("qlean-ram-disk-XXXXXX", NULL);
  g_autoptr(QleanMachine) source = NULL, clone = NULL;
  g_autofree char *cmdline = NULL, *out = NULL, *listing = NULL;

  if (!test_have_qemu ())
    return;

  g_assert_nonnull (dir);
  g_setenv ("QLEAN_RAM_DIR", dir, TRUE);
  test_logged ("");
  source = cloneable_machine ("cl-disk");
  g_assert_true (test_logged ("*no RAM file of its own*is not on tmpfs*"));
  cmdline = test_qemu_cmdline (source);
  g_assert_null (strstr (cmdline, dir));
  g_free (test_run_out (source, "echo source > /root/mark"));

  test_logged ("");
  clone = clone_of (source, "cl-disk-clone");
  g_assert_false (test_logged ("*RAM file copied to*"));
  out = test_run_text (clone, "cat /root/mark; hostname");
  g_assert_cmpstr (out, ==, "source\ncl-disk-clone");
  listing = dir_listing (dir);
  g_assert_cmpstr (listing, ==, "");

  g_assert_true (qlean_machine_kill (clone, NULL, NULL));
  g_assert_true (qlean_machine_kill (source, NULL, NULL));
  ram_dir_done (dir);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);
  test_log_capture_debug ();

  g_test_add_func ("/cloneable/clone", test_clone);
  g_test_add_func ("/cloneable/clone-fails", test_clone_fails);
  g_test_add_func ("/cloneable/parked", test_parked);
  g_test_add_func ("/cloneable/parked-starting", test_parked_starting);
  g_test_add_func ("/cloneable/snapshot", test_snapshot);
  g_test_add_func ("/cloneable/concurrent", test_concurrent);
  g_test_add_func ("/cloneable/clone-guest-silent", test_clone_guest_silent);
  g_test_add_func ("/cloneable/fallback", test_fallback);

  return g_test_run ();
}
