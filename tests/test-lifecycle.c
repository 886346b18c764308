/* test-lifecycle.c: states and signals, crashes, pause, snapshots,
 * clones and the CLI's machine cycle (real QEMU, TCG, the minimal image)
 *
 * SPDX-License-Identifier: MIT
 *
 * The machine has two cores and other sessions boot VMs too: each test
 * runs at most two machines at once, and drops them before it returns.
 * Export and import, and hostile archives, are in test-archives.c.
 */

#include "config.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include <qlean/qlean.h>
#include "test-common.h"

static char *fixture_dir;      /* per run, removed at the end */

static void
iterate_default (void)
{
  while (g_main_context_iteration (NULL, FALSE))
    ;
}

/* What a machine told its creator, on the creator's context. */
typedef struct
{
  GArray *states;
  guint   ready;
  guint   stopped;
  guint   crashed;
  gint64  crashed_at;
} Events;

static void
on_state (QleanMachine *machine,
          GParamSpec   *pspec,
          Events       *events)
{
  QleanMachineState state = qlean_machine_get_state (machine);

  g_array_append_val (events->states, state);
}

static void
on_ready (QleanMachine *machine,
          Events       *events)
{
  events->ready++;
}

static void
on_stopped (QleanMachine *machine,
            Events       *events)
{
  events->stopped++;
}

static void
on_crashed (QleanMachine *machine,
            Events       *events)
{
  events->crashed++;
  events->crashed_at = g_get_monotonic_time ();
}

static void
events_watch (Events       *events,
              QleanMachine *machine)
{
  memset (events, 0, sizeof *events);
  events->states = g_array_new (FALSE, FALSE, sizeof (QleanMachineState));
  g_signal_connect (machine, "notify::state", G_CALLBACK (on_state), events);
  g_signal_connect (machine, "ready", G_CALLBACK (on_ready), events);
  g_signal_connect (machine, "stopped", G_CALLBACK (on_stopped), events);
  g_signal_connect (machine, "crashed", G_CALLBACK (on_crashed), events);
}

static void
events_unwatch (Events       *events,
                QleanMachine *machine)
{
  g_signal_handlers_disconnect_by_data (machine, events);
  g_array_unref (events->states);
}

static gboolean
events_saw (Events            *events,
            QleanMachineState  state)
{
  for (guint i = 0; i < events->states->len; i++)
    if (g_array_index (events->states, QleanMachineState, i) == state)
      return TRUE;

  return FALSE;
}

static void
async_done_cb (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  GAsyncResult **out = user_data;

  *out = g_object_ref (result);
  g_main_context_wakeup (NULL);
}

/* Iterates the default context until *@result is set. */
static void
wait_result (GAsyncResult **result,
             guint          timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + timeout_ms * G_TIME_SPAN_MILLISECOND;

  while (*result == NULL)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (NULL, TRUE);
    }
}

/* Iterates the default context until the machine is in @state. */
static void
wait_state (QleanMachine      *machine,
            QleanMachineState  state,
            guint              timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + timeout_ms * G_TIME_SPAN_MILLISECOND;

  while (qlean_machine_get_state (machine) != state)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (2000);
    }
  iterate_default ();
}

/* CREATED → STARTING → RUNNING ⇄ PAUSED → STOPPED, each change told by
 * notify::state, and ready / stopped once each, all on the creator's
 * context. While paused, commands fail with the state named. */
static void
test_states_and_signals (void)
{
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GAsyncResult) spawned = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanExecResult) result = NULL;
  g_autofree char *out = NULL;
  Events events;

  if (!test_have_qemu ())
    return;

  machine = qlean_machine_new_with_name ("states", NULL, NULL);
  g_assert_cmpint (qlean_machine_get_state (machine), ==, QLEAN_MACHINE_STATE_CREATED);
  events_watch (&events, machine);

  /* Illegal before it runs. */
  g_assert_false (qlean_machine_pause (machine, NULL, &error));
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE);
  g_assert_nonnull (strstr (error->message, "created"));
  g_clear_error (&error);

  qlean_machine_spawn_async (machine, NULL, async_done_cb, &spawned);
  wait_result (&spawned, 120000);
  g_assert_true (qlean_machine_spawn_finish (machine, spawned, &error));
  g_assert_no_error (error);
  iterate_default ();
  g_assert_true (events_saw (&events, QLEAN_MACHINE_STATE_STARTING));
  g_assert_cmpint (g_array_index (events.states, QleanMachineState, events.states->len - 1), ==,
                   QLEAN_MACHINE_STATE_RUNNING);
  g_assert_cmpuint (events.ready, ==, 1);

  g_assert_true (qlean_machine_pause (machine, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (qlean_machine_get_state (machine), ==, QLEAN_MACHINE_STATE_PAUSED);
  iterate_default ();
  g_assert_cmpint (g_array_index (events.states, QleanMachineState, events.states->len - 1), ==,
                   QLEAN_MACHINE_STATE_PAUSED);

  result = qlean_machine_exec (machine, "echo hi", NULL, &error);
  g_assert_null (result);
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE);
  g_test_message ("exec while paused: %s", error->message);
  g_assert_nonnull (strstr (error->message, "paused"));
  g_clear_error (&error);
  g_assert_false (qlean_machine_pause (machine, NULL, &error));
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE);
  g_clear_error (&error);

  g_assert_true (qlean_machine_resume (machine, NULL, &error));
  g_assert_no_error (error);
  out = test_run_text (machine, "echo hi");
  g_assert_cmpstr (out, ==, "hi");

  g_assert_true (qlean_machine_shutdown (machine, NULL, &error));
  g_assert_no_error (error);
  iterate_default ();
  g_assert_cmpint (qlean_machine_get_state (machine), ==, QLEAN_MACHINE_STATE_STOPPED);
  g_assert_cmpint (g_array_index (events.states, QleanMachineState, events.states->len - 1), ==,
                   QLEAN_MACHINE_STATE_STOPPED);
  g_assert_cmpuint (events.stopped, ==, 1);
  g_assert_cmpuint (events.crashed, ==, 0);
  g_assert_cmpuint (events.ready, ==, 1);

  result = qlean_machine_exec (machine, "echo hi", NULL, &error);
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE);
  g_assert_nonnull (strstr (error->message, "stopped"));

  events_unwatch (&events, machine);
}

/* QEMU killed from outside: CRASHED within a second, the crashed
 * signal (and no stopped), and a call that was waiting fails. */
static void
test_sigkill (void)
{
  g_autoptr(QleanMachine) machine = qlean_machine_new_with_name ("killed", NULL, NULL);
  g_autoptr(GAsyncResult) pending = NULL;
  g_autoptr(QleanExecResult) result = NULL;
  g_autoptr(GError) error = NULL;
  Events events;
  gint64 killed;

  if (!test_have_qemu ())
    return;

  events_watch (&events, machine);
  g_assert_true (qlean_machine_spawn (machine, NULL, &error));
  g_assert_no_error (error);

  qlean_machine_exec_async (machine, "sleep 60", NULL, async_done_cb, &pending);
  g_usleep (300 * 1000);
  iterate_default ();
  g_assert_null (pending);

  test_logged ("");
  killed = g_get_monotonic_time ();
  g_assert_no_errno (kill (qlean_machine_get_pid (machine), SIGKILL));
  wait_state (machine, QLEAN_MACHINE_STATE_CRASHED, 5000);
  g_test_message ("CRASHED %.0f ms after SIGKILL", (g_get_monotonic_time () - killed) / 1000.0);
  g_assert_cmpint (g_get_monotonic_time () - killed, <, G_USEC_PER_SEC);
  /* The crash is told with QEMU's exit status. */
  g_assert_true (test_logged ("*killed*crashed: QEMU was killed by signal 9*"));
  {
    g_autofree char *reason = qlean_machine_dup_crash_reason (machine);

    g_assert_nonnull (reason);
    g_assert_nonnull (strstr (reason, "killed by signal 9"));
  }

  wait_result (&pending, 5000);
  result = qlean_machine_exec_finish (machine, pending, &error);
  g_assert_null (result);
  g_assert_nonnull (error);
  g_test_message ("the pending exec: %s", error->message);
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_CRASHED);
  g_clear_error (&error);

  g_assert_cmpuint (events.crashed, ==, 1);
  g_assert_cmpint (events.crashed_at - killed, <, G_USEC_PER_SEC);
  g_assert_cmpuint (events.stopped, ==, 0);
  g_assert_cmpint (qlean_machine_get_pid (machine), ==, 0);

  /* And new calls are refused with the state. */
  result = qlean_machine_exec (machine, "true", NULL, &error);
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE);
  g_assert_nonnull (strstr (error->message, "crashed"));

  events_unwatch (&events, machine);
}

/* A kernel panic in the guest reaches QEMU through pvpanic: CRASHED,
 * and reported as a panic rather than as QEMU dying. */
static void
test_guest_panic (void)
{
  g_autoptr(QleanMachine) machine = qlean_machine_new_with_name ("panics", NULL, NULL);
  g_autoptr(GAsyncResult) pending = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;
  Events events;

  if (!test_have_qemu ())
    return;

  events_watch (&events, machine);
  g_assert_true (qlean_machine_spawn (machine, NULL, &error));
  g_assert_no_error (error);

  /* The device is there and its driver bound, or no panic is reported. */
  out = test_run_text (machine, "ls /sys/bus/pci/drivers/ | grep -c pvpanic || true");
  g_assert_cmpstr (out, ==, "1");

  test_logged ("");
  qlean_machine_exec_async (machine, "echo c > /proc/sysrq-trigger", NULL, async_done_cb, &pending);
  wait_state (machine, QLEAN_MACHINE_STATE_CRASHED, 30000);
  g_assert_true (test_logged ("*panics*crashed: the guest kernel panicked*"));
  {
    g_autofree char *reason = qlean_machine_dup_crash_reason (machine);

    g_assert_true (g_str_has_prefix (reason, "the guest kernel panicked: Kernel panic - not syncing: "));
  }
  /* The signal follows the state, from the worker: it may not be queued
   * yet when the state is seen. */
  for (gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
       events.crashed == 0 && g_get_monotonic_time () < deadline;)
    if (!g_main_context_iteration (NULL, FALSE))
      g_usleep (2000);
  g_assert_cmpuint (events.crashed, ==, 1);
  g_assert_cmpuint (events.stopped, ==, 0);

  wait_result (&pending, 5000);
  g_assert_null (qlean_machine_exec_finish (machine, pending, &error));
  g_assert_nonnull (error);

  events_unwatch (&events, machine);
}

static gint64
guest_clock_skew (QleanMachine *machine)
{
  g_autofree char *out = test_run_text (machine, "date +%s");
  gint64 host = g_get_real_time () / G_USEC_PER_SEC;

  return g_ascii_strtoll (out, NULL, 10) - host;
}

/* snapshot → write → restore: the write is gone, what came before stays,
 * and the clock is the host's although the snapshot is seconds old. */
static void
test_snapshot_restore (void)
{
  g_autoptr(QleanMachine) machine = qlean_machine_new_with_name ("snapper", NULL, NULL);
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) names = NULL;
  g_autofree char *out = NULL;
  gint64 skew;

  if (!test_have_qemu ())
    return;

  g_assert_true (qlean_machine_spawn (machine, NULL, &error));
  g_assert_no_error (error);

  g_free (test_run_text (machine, "echo before > /root/before"));
  g_assert_true (qlean_machine_snapshot (machine, "clean", NULL, &error));
  g_assert_no_error (error);
  names = qlean_machine_list_snapshots (machine);
  g_assert_cmpstrv (names, ((const char * const[]) { "clean", NULL }));

  g_free (test_run_text (machine, "echo after > /root/after"));
  /* Long enough for a clock nobody sets to be visibly wrong. */
  g_usleep (3 * G_USEC_PER_SEC);

  g_assert_true (qlean_machine_restore (machine, "clean", NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (qlean_machine_get_state (machine), ==, QLEAN_MACHINE_STATE_RUNNING);

  out = test_run_text (machine, "cat /root/before; test -e /root/after && echo after-is-there || echo after-is-gone");
  g_assert_cmpstr (out, ==, "before\nafter-is-gone");

  skew = guest_clock_skew (machine);
  g_test_message ("guest clock after restore: %+" G_GINT64_FORMAT " s from the host's", skew);
  g_assert_cmpint (ABS (skew), <=, 2);

  /* Finer: a new file's mtime is the guest's clock, to the tick. */
  {
    g_autoptr(GBytes) nothing = g_bytes_new_static ("", 0);
    g_autoptr(GFileInfo) info = NULL;
    gint64 before = g_get_real_time ();
    gint64 after, mtime;

    g_assert_true (qlean_machine_write (machine, "/root/now", nothing, NULL, &error));
    g_assert_no_error (error);
    after = g_get_real_time ();
    info = qlean_machine_metadata (machine, "/root/now", NULL, &error);
    g_assert_no_error (error);
    mtime = g_file_info_get_attribute_uint64 (info, G_FILE_ATTRIBUTE_TIME_MODIFIED) * G_USEC_PER_SEC +
            g_file_info_get_attribute_uint32 (info, G_FILE_ATTRIBUTE_TIME_MODIFIED_USEC);
    g_test_message ("guest clock after restore, by a file's mtime: %+.3f s (the write took %.3f s)",
                    (mtime - before) / (double) G_USEC_PER_SEC, (after - before) / (double) G_USEC_PER_SEC);
    g_assert_cmpint (mtime, >=, before - G_USEC_PER_SEC / 2);
    g_assert_cmpint (mtime, <=, after + G_USEC_PER_SEC / 2);
  }

  g_assert_true (qlean_machine_delete_snapshot (machine, "clean", &error));
  g_assert_no_error (error);
  g_assert_false (qlean_machine_restore (machine, "clean", NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_clear_error (&error);

  g_assert_true (qlean_machine_shutdown (machine, NULL, &error));
  g_assert_no_error (error);
}

/* A clone of a running machine on a network: its own MAC (the card it
 * inherited is renamed), machine-id and hostname, and writes in either
 * never show in the other. */
static void
test_clone_isolation (void)
{
  g_autoptr(QleanNetwork) network = NULL;
  g_autoptr(QleanMachine) original = NULL;
  g_autoptr(QleanMachine) clone = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *mac_a = NULL, *mac_b = NULL;
  g_autofree char *id_a = NULL, *id_b = NULL;
  g_autofree char *host_b = NULL;
  g_autofree char *out = NULL;

  if (!test_have_qemu ())
    return;

  network = qlean_network_new ();
  if (!qlean_network_start (network, NULL, &error))
    {
      g_autofree char *reason = g_strdup_printf ("no network: %s", error->message);

      g_test_skip (reason);
      return;
    }

  original = g_object_new (QLEAN_TYPE_MACHINE, "name", "original", "network", network, NULL);
  g_assert_true (qlean_machine_spawn (original, NULL, &error));
  g_assert_no_error (error);

  /* The minimal image has no machine-id; a distro image would. */
  g_free (test_run_text (original, "echo 0123456789abcdef0123456789abcdef > /etc/machine-id; "
                              "echo shared > /root/shared"));
  mac_a = test_run_text (original, "cat /sys/class/net/eth0/address");
  id_a = test_run_text (original, "cat /etc/machine-id");

  clone = qlean_machine_clone (original, "copy", NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (clone);
  g_assert_cmpint (qlean_machine_get_state (clone), ==, QLEAN_MACHINE_STATE_RUNNING);
  g_assert_cmpint (qlean_machine_get_state (original), ==, QLEAN_MACHINE_STATE_RUNNING);

  mac_b = test_run_text (clone, "cat /sys/class/net/eth0/address");
  id_b = test_run_text (clone, "cat /etc/machine-id");
  host_b = test_run_text (clone, "hostname");
  g_test_message ("original %s %s, clone %s %s", mac_a, id_a, mac_b, id_b);
  g_assert_cmpstr (mac_a, !=, mac_b);
  g_assert_cmpstr (id_a, !=, id_b);
  g_assert_cmpuint (strlen (id_b), ==, 32);
  g_assert_cmpstr (host_b, ==, "copy");
  out = test_run_text (original, "hostname");
  g_assert_cmpstr (out, ==, "original");
  g_clear_pointer (&out, g_free);
  out = qlean_machine_dup_mac_address (clone);
  g_assert_cmpstr (mac_b, ==, out);
  g_clear_pointer (&out, g_free);

  out = test_run_text (clone, "cat /root/shared");
  g_assert_cmpstr (out, ==, "shared");
  g_clear_pointer (&out, g_free);

  g_free (test_run_text (original, "echo a > /root/only-original"));
  g_free (test_run_text (clone, "echo b > /root/only-clone"));
  out = test_run_text (original, "ls /root/only-clone 2>/dev/null || echo none");
  g_assert_cmpstr (out, ==, "none");
  g_clear_pointer (&out, g_free);
  out = test_run_text (clone, "ls /root/only-original 2>/dev/null || echo none");
  g_assert_cmpstr (out, ==, "none");

  g_assert_true (qlean_machine_shutdown (clone, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_machine_shutdown (original, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_network_stop (network, NULL, &error));
  g_assert_no_error (error);
}

/* A clone of a paused machine: the state streams into the clone's QEMU,
 * which runs with its own name and what the machine had, and the
 * machine stays paused, and runs on when resumed. (One clone: QEMU
 * refuses a second migration of a guest that has not run since the
 * first, "paused due to previous migration".) */
static void
test_clone_paused (void)
{
  g_autoptr(QleanMachine) original = qlean_machine_new_with_name ("paused-original", NULL, NULL);
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;

  if (!test_have_qemu ())
    return;

  g_assert_true (qlean_machine_spawn (original, NULL, &error));
  g_assert_no_error (error);
  g_free (test_run_text (original, "echo before > /root/mark"));
  g_assert_true (qlean_machine_pause (original, NULL, &error));
  g_assert_no_error (error);

  {
    g_autoptr(QleanMachine) clone = qlean_machine_clone (original, "paused-copy", NULL, &error);
    g_autofree char *host = NULL, *mark = NULL;

    g_assert_no_error (error);
    g_assert_nonnull (clone);
    g_assert_cmpint (qlean_machine_get_state (clone), ==, QLEAN_MACHINE_STATE_RUNNING);
    g_assert_cmpint (qlean_machine_get_state (original), ==, QLEAN_MACHINE_STATE_PAUSED);
    host = test_run_text (clone, "hostname");
    g_assert_cmpstr (host, ==, "paused-copy");
    mark = test_run_text (clone, "cat /root/mark; echo clone > /root/mark");
    g_assert_cmpstr (mark, ==, "before");
    g_assert_true (qlean_machine_kill (clone, NULL, &error));
    g_assert_no_error (error);
  }

  /* Saved once while paused, it saves again while still paused (QEMU
   * refuses to migrate a machine it left "postmigrate"), and a clone of
   * that second save has the same guest. */
  g_assert_true (qlean_machine_snapshot (original, "paused-again", NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (qlean_machine_get_state (original), ==, QLEAN_MACHINE_STATE_PAUSED);
  {
    g_autoptr(QleanMachine) clone = qlean_machine_clone (original, "paused-copy2", NULL, &error);
    g_autofree char *mark = NULL;

    g_assert_no_error (error);
    mark = test_run_text (clone, "cat /root/mark");
    g_assert_cmpstr (mark, ==, "before");
    g_assert_true (qlean_machine_kill (clone, NULL, &error));
    g_assert_no_error (error);
  }

  g_assert_true (qlean_machine_resume (original, NULL, &error));
  g_assert_no_error (error);
  out = test_run_text (original, "hostname; cat /root/mark");
  g_assert_cmpstr (out, ==, "paused-original\nbefore");

  g_assert_true (qlean_machine_shutdown (original, NULL, &error));
  g_assert_no_error (error);
}

/* Runs the built qlean with @args (shell-quoted); returns
 * its exit status and, in @out, its standard output and error. */
static int
qlean_cli (char       **out,
           const char  *args)
{
  g_autofree char *qlean = g_test_build_filename (G_TEST_BUILT, "..", "tools", "qlean", NULL);
  g_auto(GStrv) split = NULL;
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *std_out = NULL, *std_err = NULL;
  int status;

  g_assert_true (g_shell_parse_argv (args, NULL, &split, &error));
  g_ptr_array_add (argv, qlean);
  for (guint i = 0; split[i] != NULL; i++)
    g_ptr_array_add (argv, split[i]);
  g_ptr_array_add (argv, NULL);

  g_assert_true (g_spawn_sync (NULL, (char **) argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                               &std_out, &std_err, &status, &error));
  g_assert_no_error (error);
  g_test_message ("qlean %s: %s%s", args, std_out, std_err);
  /* In a subprocess test only stderr reaches the parent's report. */
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
    g_printerr ("qlean %s: status %d: %s%s\n", args, status, std_out, std_err);
  if (out != NULL)
    *out = g_strstrip (g_strconcat (std_out, std_err, NULL));

  return WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
}

/* The command line on machines of `qlean start`, which belong to
 * another process: every command once, two machines at most. */
static void
test_cli_body (void)
{
  g_autofree char *qlean = g_test_build_filename (G_TEST_BUILT, "..", "tools", "qlean", NULL);
  g_autofree char *archive = g_build_filename (fixture_dir, "cli.qlean", NULL);
  g_autofree char *export_args = g_strdup_printf ("-q export lc-one %s", archive);
  g_autofree char *import_args = g_strdup_printf ("-q import %s lc-three", archive);
  g_autofree char *args_archive = g_build_filename (fixture_dir, "cli-args.qlean", NULL);
  g_autofree char *args_refused = g_strdup_printf ("-q import %s lc-four", args_archive);
  g_autofree char *args_trusted = g_strdup_printf ("-q import --trust-extra-args %s lc-four", args_archive);
  g_autofree char *ls = NULL;
  char *out = NULL;

  if (!test_have_qemu ())
    return;
  if (!g_file_test (qlean, G_FILE_TEST_IS_EXECUTABLE) || g_getenv ("QLEAN_RUN_DIR") == NULL)
    {
      g_test_skip ("needs the built qlean and QLEAN_RUN_DIR: run this under meson test");
      return;
    }

  g_assert_cmpint (qlean_cli (NULL, "-q start lc-one"), ==, 0);
  g_assert_cmpint (qlean_cli (NULL, "exec lc-one -- sh -c 'echo > /root/kept'"), ==, 0);

  g_assert_cmpint (qlean_cli (NULL, "-q pause lc-one"), ==, 0);
  g_assert_cmpint (qlean_cli (&out, "ls"), ==, 0);
  g_assert_nonnull (strstr (out, "paused"));
  g_clear_pointer (&out, g_free);
  g_assert_cmpint (qlean_cli (&out, "exec lc-one -- true"), ==, 125);
  g_assert_nonnull (strstr (out, "paused"));
  g_clear_pointer (&out, g_free);
  g_assert_cmpint (qlean_cli (&out, "-q pause lc-one"), ==, 1);
  g_clear_pointer (&out, g_free);
  g_assert_cmpint (qlean_cli (NULL, "-q resume lc-one"), ==, 0);

  g_assert_cmpint (qlean_cli (NULL, "-q snapshot lc-one clean"), ==, 0);
  g_assert_cmpint (qlean_cli (NULL, "exec lc-one -- sh -c 'echo > /root/later'"), ==, 0);
  g_assert_cmpint (qlean_cli (NULL, "-q restore lc-one clean"), ==, 0);
  g_assert_cmpint (qlean_cli (&out, "exec lc-one -- ls /root"), ==, 0);
  g_assert_cmpstr (out, ==, "kept");
  g_clear_pointer (&out, g_free);
  g_assert_cmpint (qlean_cli (&out, "-q restore lc-one nonesuch"), ==, 1);
  g_clear_pointer (&out, g_free);

  g_assert_cmpint (qlean_cli (NULL, "-q clone lc-one lc-two"), ==, 0);
  g_assert_cmpint (qlean_cli (&out, "exec lc-two -- sh -c 'echo > /root/two'"), ==, 0);
  g_clear_pointer (&out, g_free);
  g_assert_cmpint (qlean_cli (&out, "exec lc-two -- hostname"), ==, 0);
  g_assert_cmpstr (out, ==, "lc-two");
  g_clear_pointer (&out, g_free);
  g_assert_cmpint (qlean_cli (&out, "exec lc-one -- ls /root"), ==, 0);
  g_assert_cmpstr (out, ==, "kept");
  g_clear_pointer (&out, g_free);
  g_assert_cmpint (qlean_cli (NULL, "-q stop lc-two"), ==, 0);

  g_assert_cmpint (qlean_cli (NULL, export_args), ==, 0);
  g_assert_cmpint (qlean_cli (NULL, "-q stop lc-one"), ==, 0);
  g_assert_cmpint (qlean_cli (NULL, import_args), ==, 0);
  g_assert_cmpint (qlean_cli (&out, "exec lc-three -- sh -c 'hostname; ls /root'"), ==, 0);
  g_assert_cmpstr (out, ==, "lc-three\nkept");
  g_clear_pointer (&out, g_free);
  g_assert_cmpint (qlean_cli (NULL, "-q stop lc-three"), ==, 0);
  g_unlink (archive);

  /* Extra QEMU arguments in an archive: refused, unless trusted. */
  {
    g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
    g_autoptr(QleanMachine) argsy = NULL;
    g_autoptr(GFile) file = g_file_new_for_path (args_archive);
    g_autoptr(GError) error = NULL;
    const char *extra[] = { "-device", "virtio-rng-pci,id=lc-rng", NULL };

    qlean_machine_config_set_extra_args (config, extra);
    argsy = qlean_machine_new_with_name ("lc-four", NULL, config);
    g_assert_true (qlean_machine_export (argsy, file, NULL, &error));
    g_assert_no_error (error);
  }
  g_assert_cmpint (qlean_cli (&out, args_refused), !=, 0);
  g_assert_nonnull (strstr (out, "--trust-extra-args"));
  g_clear_pointer (&out, g_free);
  g_assert_cmpint (qlean_cli (&out, "ls --json"), ==, 0);
  g_assert_cmpstr (out, ==, "[]");
  g_clear_pointer (&out, g_free);
  g_assert_cmpint (qlean_cli (NULL, args_trusted), ==, 0);
  /* The card the arguments asked for (virtio-rng, PCI device 0x1005). */
  g_assert_cmpint (qlean_cli (&out, "exec lc-four -- sh -c 'cat /sys/bus/pci/devices/*/device'"), ==, 0);
  g_assert_nonnull (strstr (out, "0x1005"));
  g_clear_pointer (&out, g_free);
  g_assert_cmpint (qlean_cli (NULL, "-q stop lc-four"), ==, 0);
  g_unlink (args_archive);

  /* Nothing left: no machines, no stray archives of clones. */
  g_assert_cmpint (qlean_cli (&ls, "ls --json"), ==, 0);
  g_assert_cmpstr (ls, ==, "[]");
}

/* In a subprocess, so that the machines, which outlive it by design,
 * are stopped whatever failed. */
static void
test_cli (void)
{
  if (!test_have_qemu ())
    return;

  g_test_trap_subprocess ("/lifecycle/cli/subprocess", 300 * G_USEC_PER_SEC,
                          G_TEST_SUBPROCESS_INHERIT_STDOUT | G_TEST_SUBPROCESS_INHERIT_STDERR);
  qlean_cli (NULL, "-q stop lc-one lc-two lc-three lc-four");
  g_test_trap_assert_passed ();
}

int
main (int    argc,
      char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  test_log_capture ();
  fixture_dir = g_dir_make_tmp ("qlean-lifecycle-XXXXXX", NULL);
  g_assert_nonnull (fixture_dir);

  g_test_add_func ("/lifecycle/states-and-signals", test_states_and_signals);
  g_test_add_func ("/lifecycle/sigkill", test_sigkill);
  g_test_add_func ("/lifecycle/guest-panic", test_guest_panic);
  g_test_add_func ("/lifecycle/snapshot-restore", test_snapshot_restore);
  g_test_add_func ("/lifecycle/clone-isolation", test_clone_isolation);
  g_test_add_func ("/lifecycle/clone-paused", test_clone_paused);
  g_test_add_func ("/lifecycle/cli", test_cli);
  g_test_add_func ("/lifecycle/cli/subprocess", test_cli_body);

  status = g_test_run ();

  g_rmdir (fixture_dir);
  g_free (fixture_dir);
  return status;
}
