/* test-spares.c: warmed spare machines (real QEMU, TCG, the minimal image)
 *
 * SPDX-License-Identifier: MIT
 *
 * A config that keeps spares has machines of its shape started ahead;
 * a start takes one: the machine runs in the spare's QEMU, under its
 * own name, identity and run directory. These tests find the spares'
 * QEMU processes among this process's children, since a spare is not
 * a machine anybody holds.
 */

#include "config.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>

#include <qlean/qlean.h>
#include "test-common.h"

/* The QEMU processes this process started, as a set of pids. */
static GHashTable *
qemu_children (void)
{
  GHashTable *pids = g_hash_table_new (NULL, NULL);
  g_autoptr(GDir) proc = g_dir_open ("/proc", 0, NULL);
  const char *name;

  g_assert_nonnull (proc);
  while ((name = g_dir_read_name (proc)) != NULL)
    {
      g_autofree char *path = g_strdup_printf ("/proc/%s/stat", name);
      g_autofree char *stat = NULL;
      char comm[64];
      int pid, ppid;
      char state;

      if (!g_ascii_isdigit (*name) || !g_file_get_contents (path, &stat, NULL, NULL))
        continue;
      /* pid (comm) state ppid: comm has no blank for QEMU. */
      if (sscanf (stat, "%d (%63[^)]) %c %d", &pid, comm, &state, &ppid) == 4 &&
          ppid == getpid () && g_str_has_prefix (comm, "qemu-system") && state != 'Z')
        g_hash_table_add (pids, GINT_TO_POINTER (pid));
    }

  return pids;
}

/* The one QEMU in @after that is not in @before. */
static GPid
new_qemu (GHashTable *before,
          GHashTable *after)
{
  GHashTableIter iter;
  gpointer pid;
  GPid found = 0;

  g_hash_table_iter_init (&iter, after);
  while (g_hash_table_iter_next (&iter, &pid, NULL))
    if (!g_hash_table_contains (before, pid))
      {
        g_assert_cmpint (found, ==, 0);
        found = GPOINTER_TO_INT (pid);
      }

  return found;
}

/* How many run directories of this process's spares @base holds (their
 * owner file names this process). */
static guint
spare_run_dirs (const char *base)
{
  g_autoptr(GDir) dir = g_dir_open (base, 0, NULL);
  g_autofree char *me = g_strdup_printf ("%d ", (int) getpid ());
  const char *name;
  guint n = 0;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *owner_path = g_build_filename (base, name, "owner", NULL);
      g_autofree char *owner = NULL;

      if (g_str_has_prefix (name, "qlean-spare-") &&
          g_file_get_contents (owner_path, &owner, NULL, NULL) && g_str_has_prefix (owner, me))
        n++;
    }

  return n;
}

static gint
compare_names (gconstpointer a,
               gconstpointer b)
{
  return strcmp (*(const char * const *) a, *(const char * const *) b);
}

/* The saved boots and their templates in the cache, sorted. */
static char **
saved_boots (void)
{
  g_autofree char *path = g_build_filename (g_get_user_cache_dir (), "qlean", "boot-states", NULL);
  g_autoptr(GDir) dir = g_dir_open (path, 0, NULL);
  g_autoptr(GPtrArray) names = g_ptr_array_new ();
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    if (g_str_has_suffix (name, ".state") || g_str_has_suffix (name, ".state.ram"))
      g_ptr_array_add (names, g_strdup (name));
  g_ptr_array_sort (names, compare_names);
  g_ptr_array_add (names, NULL);

  return (char **) g_ptr_array_free (g_steal_pointer (&names), FALSE);
}

static QleanMachineConfig *
spare_config (void)
{
  QleanMachineConfig *config = qlean_machine_config_new ();

  qlean_machine_config_set_spares (config, 1);
  return config;
}

/* Prepares @config's one spare: the pid of the QEMU that started. */
static GPid
prepare_one_spare (QleanMachineConfig *config)
{
  g_autoptr(GHashTable) before = qemu_children ();
  g_autoptr(GHashTable) after = NULL;
  g_autoptr(GError) error = NULL;
  GPid pid;

  g_assert_true (qlean_machine_prepare_spares (NULL, config, NULL, &error));
  g_assert_no_error (error);
  after = qemu_children ();
  pid = new_qemu (before, after);
  g_assert_cmpint (pid, >, 0);

  return pid;
}

/* Starts @name, which must take the spare whose QEMU is @spare_pid. */
static QleanMachine *
take (QleanMachineConfig *config,
      const char         *name,
      GPid                spare_pid)
{
  g_autoptr(QleanMachine) machine = qlean_machine_new_with_name (name, NULL, config);
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = NULL;

  g_assert_true (qlean_machine_spawn (machine, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (qlean_machine_get_pid (machine), ==, spare_pid);
  /* The run directory is the machine's, under its name. */
  dir = g_path_get_basename (qlean_machine_get_run_dir (machine));
  g_assert_true (g_str_has_prefix (dir, name));
  g_assert_true (g_file_test (qlean_machine_get_run_dir (machine), G_FILE_TEST_IS_DIR));

  return g_steal_pointer (&machine);
}

/* A started machine takes the ready spare: its QEMU, under its own
 * name, run directory and random state (two copies of one template
 * would otherwise read the same bytes from /dev/urandom); another
 * spare starts behind it; machines of spares are independent; and
 * stop_spares() leaves no QEMU and no run directory of a spare. */
static void
test_take (void)
{
  g_autoptr(QleanMachineConfig) config = spare_config ();
  g_autoptr(QleanMachine) first = NULL;
  g_autoptr(QleanMachine) second = NULL;
  g_autoptr(GHashTable) after = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *base = NULL;
  g_autofree char *first_dir = NULL;
  g_autofree char *out = NULL;
  g_autofree char *first_random = NULL;
  g_autofree char *second_random = NULL;
  g_auto(GStrv) saved = NULL;
  g_auto(GStrv) saved_after = NULL;
  GPid spare_pid;

  if (!test_have_qemu ())
    return;

  spare_pid = prepare_one_spare (config);
  first = take (config, "spare-a", spare_pid);
  base = g_path_get_dirname (qlean_machine_get_run_dir (first));
  first_dir = g_strdup (qlean_machine_get_run_dir (first));
  out = test_run_text (first, "hostname");
  g_assert_cmpstr (out, ==, "spare-a");
  g_clear_pointer (&out, g_free);
  /* Its transcript says from where on the spare's traffic is its own. */
  {
    g_autofree char *path = g_build_filename (first_dir, "transcript.log", NULL);
    g_autofree char *transcript = NULL;

    g_assert_true (g_file_get_contents (path, &transcript, NULL, NULL));
    g_assert_nonnull (strstr (transcript, "the traffic of machine spare-a (which took this spare)"));
  }

  /* The next spare, ready once prepare says so. */
  spare_pid = prepare_one_spare (config);
  g_assert_cmpint (spare_pid, !=, qlean_machine_get_pid (first));

  second = take (config, "spare-b", spare_pid);
  out = test_run_text (second, "hostname");
  g_assert_cmpstr (out, ==, "spare-b");
  g_clear_pointer (&out, g_free);

  /* Independent: a file of one is not in the other; each has its own
   * random state. */
  out = test_run_text (first, "echo first > /tmp/mark && cat /tmp/mark");
  g_assert_cmpstr (out, ==, "first");
  g_clear_pointer (&out, g_free);
  out = test_run_text (second, "cat /tmp/mark 2>/dev/null || echo none");
  g_assert_cmpstr (out, ==, "none");
  g_clear_pointer (&out, g_free);
  first_random = test_run_text (first, "head -c 16 /dev/urandom | od -An -tx1");
  second_random = test_run_text (second, "head -c 16 /dev/urandom | od -An -tx1");
  g_assert_cmpstr (first_random, !=, second_random);

  /* A killed machine of a spare leaves nothing, as any machine. */
  g_assert_true (qlean_machine_kill (first, NULL, &error));
  g_assert_no_error (error);
  g_assert_false (g_file_test (first_dir, G_FILE_TEST_EXISTS));

  /* The second start starts a third spare behind it; stopping the
   * spares stops it (started or starting), not the machines, nor the
   * saved boot a spare stopped as it started was loading. */
  saved = saved_boots ();
  g_assert_cmpuint (g_strv_length (saved), >, 0);
  /* The third starts half a second after the second start: stopped
   * about as it loads its state (either way, nothing may be lost). */
  g_usleep (600 * 1000);
  qlean_machine_stop_spares ();
  saved_after = saved_boots ();
  g_assert_true (g_strv_equal ((const char * const *) saved, (const char * const *) saved_after));
  g_clear_pointer (&after, g_hash_table_unref);
  after = qemu_children ();
  g_assert_cmpuint (g_hash_table_size (after), ==, 1);
  g_assert_true (g_hash_table_contains (after, GINT_TO_POINTER (qlean_machine_get_pid (second))));
  g_assert_cmpuint (spare_run_dirs (base), ==, 0);
  out = test_run_text (second, "hostname");
  g_assert_cmpstr (out, ==, "spare-b");

  g_assert_true (qlean_machine_kill (second, NULL, &error));
  g_assert_no_error (error);
}

/* A shape that cannot start from a memory template keeps no spares:
 * preparing them says so, and its machines start as before. */
static void
test_not_for_this_shape (void)
{
  g_autoptr(QleanMachineConfig) config = spare_config ();
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GHashTable) before = NULL;
  g_autoptr(GHashTable) after = NULL;
  g_autoptr(GError) error = NULL;

  if (!test_have_qemu ())
    return;

  /* A scratch disk: such a machine always boots. */
  qlean_machine_config_set_disk_gib (config, 1);
  g_assert_false (qlean_machine_prepare_spares (NULL, config, NULL, &error));
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG);
  g_assert_nonnull (strstr (error->message, "cannot have spares"));
  g_clear_error (&error);

  before = qemu_children ();
  machine = qlean_machine_new_with_name ("spare-none", NULL, config);
  g_assert_true (qlean_machine_spawn (machine, NULL, &error));
  g_assert_no_error (error);
  /* Its own QEMU, and none started behind it. */
  after = qemu_children ();
  g_assert_cmpint (new_qemu (before, after), ==, qlean_machine_get_pid (machine));
  g_assert_true (qlean_machine_kill (machine, NULL, &error));
  g_assert_no_error (error);
}

/* A spare whose QEMU died while it waited is not taken: the start
 * starts a QEMU of its own and works. */
static void
test_dead_spare (void)
{
  g_autoptr(QleanMachineConfig) config = spare_config ();
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GHashTable) after = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;
  g_autofree char *base = NULL;
  GPid spare_pid;

  if (!test_have_qemu ())
    return;

  spare_pid = prepare_one_spare (config);
  g_assert_cmpint (kill (spare_pid, SIGKILL), ==, 0);
  /* Until Qlean reaped it (its exit watch runs then). */
  {
    g_autofree char *proc = g_strdup_printf ("/proc/%d", (int) spare_pid);

    for (guint i = 0; i < 500 && g_file_test (proc, G_FILE_TEST_EXISTS); i++)
      g_usleep (10 * 1000);
    g_assert_false (g_file_test (proc, G_FILE_TEST_EXISTS));
    g_usleep (200 * 1000);
  }

  machine = qlean_machine_new_with_name ("spare-c", NULL, config);
  g_assert_true (qlean_machine_spawn (machine, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (qlean_machine_get_pid (machine), !=, spare_pid);
  base = g_path_get_dirname (qlean_machine_get_run_dir (machine));
  out = test_run_text (machine, "hostname");
  g_assert_cmpstr (out, ==, "spare-c");

  g_assert_true (qlean_machine_kill (machine, NULL, &error));
  g_assert_no_error (error);
  qlean_machine_stop_spares ();
  g_clear_pointer (&after, g_hash_table_unref);
  after = qemu_children ();
  g_assert_cmpuint (g_hash_table_size (after), ==, 0);
  /* The dead spare's run directory went with it. */
  g_assert_cmpuint (spare_run_dirs (base), ==, 0);
}

/* @machine, of a pool, took one of @spare_pids; its card has its own
 * MAC, and its guest the network's address on it. */
static void
assert_took_spare_on_network (QleanMachine *machine,
                              GHashTable   *spare_pids)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *mac = NULL;
  g_autofree char *shown = NULL;
  g_autofree char *ip = NULL;

  g_assert_true (g_hash_table_contains (spare_pids,
                                        GINT_TO_POINTER (qlean_machine_get_pid (machine))));
  mac = qlean_machine_dup_mac_address (machine);
  shown = test_run_text (machine, "cat /sys/class/net/eth0/address");
  g_assert_cmpstr (shown, ==, mac);
  ip = qlean_machine_get_ip (machine, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (ip, "10."));
}

/* A pool's machines take spares that have their card, on a hub of
 * QEMU's own, which joins the pool's switch as they take them: they
 * then talk to each other under their own names and MACs. Such a
 * machine's state loads into a QEMU whose card was on the switch from
 * the start: its clone runs, on the same network. */
static void
test_pool (void)
{
  g_autoptr(QleanMachineConfig) config = spare_config ();
  g_autoptr(QleanPool) pool = NULL;
  g_autoptr(QleanMachine) alice = NULL;
  g_autoptr(QleanMachine) bob = NULL;
  g_autoptr(QleanMachine) clone = NULL;
  g_autoptr(GHashTable) before = NULL;
  g_autoptr(GHashTable) spare_pids = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *vde_switch = g_find_program_in_path ("vde_switch");
  g_autofree char *alice_ip = NULL;
  g_autofree char *ping = NULL;
  g_autofree char *out = NULL;

  if (!test_have_qemu ())
    return;
  if (vde_switch == NULL)
    {
      g_test_skip ("vde_switch is not installed (apt-get install vde2)");
      return;
    }

  qlean_machine_config_set_spares (config, 2);
  pool = qlean_pool_new ();
  g_assert_true (qlean_pool_add (pool, "spare-alice", NULL, config, &error));
  g_assert_true (qlean_pool_add (pool, "spare-bob", NULL, config, &error));
  g_assert_no_error (error);

  before = qemu_children ();
  g_assert_true (qlean_pool_prepare_spares (pool, NULL, &error));
  g_assert_no_error (error);
  spare_pids = qemu_children ();
  {
    GHashTableIter iter;
    gpointer pid;

    g_hash_table_iter_init (&iter, before);
    while (g_hash_table_iter_next (&iter, &pid, NULL))
      g_hash_table_remove (spare_pids, pid);
  }
  g_assert_cmpuint (g_hash_table_size (spare_pids), ==, 2);

  g_assert_true (qlean_pool_spawn_all (pool, NULL, &error));
  g_assert_no_error (error);
  alice = qlean_pool_get (pool, "spare-alice", &error);
  bob = qlean_pool_get (pool, "spare-bob", &error);
  g_assert_no_error (error);
  assert_took_spare_on_network (alice, spare_pids);
  assert_took_spare_on_network (bob, spare_pids);

  out = test_run_text (bob, "ping -c 1 -W 5 spare-alice >/dev/null && echo reached");
  g_assert_cmpstr (out, ==, "reached");
  g_clear_pointer (&out, g_free);

  /* The clone's QEMU has its card on the switch from the start. */
  clone = qlean_machine_clone (bob, "spare-carol", NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (clone);
  g_assert_true (qlean_machine_get_network (clone) == qlean_pool_get_network (pool));
  out = test_run_text (clone, "hostname");
  g_assert_cmpstr (out, ==, "spare-carol");
  g_clear_pointer (&out, g_free);
  alice_ip = qlean_machine_get_ip (alice, NULL, &error);
  g_assert_no_error (error);
  ping = g_strdup_printf ("ping -c 1 -W 5 %s >/dev/null && echo reached", alice_ip);
  out = test_run_text (clone, ping);
  g_assert_cmpstr (out, ==, "reached");

  qlean_machine_stop_spares ();
  g_assert_true (qlean_machine_kill (clone, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_pool_shutdown_all (pool, NULL, &error));
  g_assert_no_error (error);
}

static void
prepared_cb (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  GError **error = user_data;

  g_assert_false (qlean_machine_prepare_spares_finish (result, error));
}

/* Cancelling prepare_spares() stops the wait, not the start of the
 * spare, which stop_spares() then stops. */
static void
test_prepare_cancelled (void)
{
  g_autoptr(QleanMachineConfig) config = spare_config ();
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GHashTable) after = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanMachine) warm = NULL;

  if (!test_have_qemu ())
    return;

  /* The image prepared, so that the cancel meets the wait. */
  warm = qlean_machine_new_with_name ("spare-warm", NULL, NULL);
  g_assert_true (qlean_machine_spawn (warm, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_machine_kill (warm, NULL, &error));

  qlean_machine_prepare_spares_async (NULL, config, cancellable, prepared_cb, &error);
  g_usleep (100 * 1000);
  g_cancellable_cancel (cancellable);
  while (error == NULL)
    g_main_context_iteration (NULL, TRUE);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);

  qlean_machine_stop_spares ();
  after = qemu_children ();
  g_assert_cmpuint (g_hash_table_size (after), ==, 0);
}

/* A process that exits with spares leaves no QEMU and no run
 * directory: the child prepares one, notes its base and pid, exits. */
static void
test_exit (void)
{
  g_autofree char *note = NULL;
  g_autofree char *text = NULL;
  g_auto(GStrv) lines = NULL;
  g_autofree char *proc = NULL;
  g_autofree char *me = NULL;
  g_autoptr(GDir) dir = NULL;
  const char *name;

  if (!test_have_qemu ())
    return;

  if (g_test_subprocess ())
    {
      g_autoptr(QleanMachineConfig) config = spare_config ();
      g_autoptr(QleanMachine) machine = qlean_machine_new_with_name ("spare-exit", NULL, config);
      g_autoptr(GError) error = NULL;
      GPid spare_pid;
      g_autofree char *base = NULL;
      g_autofree char *line = NULL;

      /* The run base, from a machine's run directory. */
      g_assert_true (qlean_machine_spawn (machine, NULL, &error));
      g_assert_no_error (error);
      base = g_path_get_dirname (qlean_machine_get_run_dir (machine));
      g_assert_true (qlean_machine_kill (machine, NULL, &error));
      spare_pid = prepare_one_spare (config);
      line = g_strdup_printf ("%s\n%d\n%d\n", base, (int) getpid (), (int) spare_pid);
      g_assert_true (g_file_set_contents (g_getenv ("QLEAN_TEST_EXIT_NOTE"), line, -1, NULL));
      return;  /* g_test_run() returns, main returns, exit() runs the handler */
    }

  note = g_build_filename (g_get_tmp_dir (), "qlean-spares-exit-XXXXXX", NULL);
  g_close (g_mkstemp (note), NULL);
  g_setenv ("QLEAN_TEST_EXIT_NOTE", note, TRUE);
  g_test_trap_subprocess (NULL, 120 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_INHERIT_STDERR);
  g_test_trap_assert_passed ();
  g_assert_true (g_file_get_contents (note, &text, NULL, NULL));
  g_unlink (note);
  lines = g_strsplit (text, "\n", -1);
  g_assert_cmpuint (g_strv_length (lines), >=, 3);

  /* The spare's QEMU is gone, and no run directory names the child. */
  proc = g_strdup_printf ("/proc/%s", lines[2]);
  g_assert_false (g_file_test (proc, G_FILE_TEST_EXISTS));
  me = g_strdup_printf ("%s ", lines[1]);
  dir = g_dir_open (lines[0], 0, NULL);
  g_assert_nonnull (dir);
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *owner_path = g_build_filename (lines[0], name, "owner", NULL);
      g_autofree char *owner = NULL;

      if (g_file_get_contents (owner_path, &owner, NULL, NULL))
        g_assert_false (g_str_has_prefix (owner, me));
    }
}

int
main (int    argc,
      char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/spares/take", test_take);
  g_test_add_func ("/spares/not-for-this-shape", test_not_for_this_shape);
  g_test_add_func ("/spares/dead-spare", test_dead_spare);
  g_test_add_func ("/spares/pool", test_pool);
  g_test_add_func ("/spares/prepare-cancelled", test_prepare_cancelled);
  g_test_add_func ("/spares/exit", test_exit);

  status = g_test_run ();
  /* (/spares/exit's child leaves its spare to the library's own exit.) */
  if (!g_test_subprocess ())
    qlean_machine_stop_spares ();
  return status;
}
