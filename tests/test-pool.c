/* test-pool.c: pools and their network on real QEMU (TCG), with the
 * minimal image
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <signal.h>
#include <string.h>
#include <glib/gstdio.h>

#include <qlean/qlean.h>
#include "test-common.h"

#include "qlean-network-private.h"

/* The seed's pair: alice and bob, shared by the tests that only send
 * traffic. Every boot costs ~2 s of a core under TCG, so the suite
 * boots seven machines in all. */
static QleanPool *pair_pool;

static gboolean
can_run_machines (void)
{
  g_autofree char *vde_switch = g_find_program_in_path ("vde_switch");

  if (!test_have_qemu ())
    return FALSE;
  if (vde_switch == NULL)
    {
      g_test_skip ("vde_switch is not installed (apt-get install vde2)");
      return FALSE;
    }

  return TRUE;
}

static QleanMachine *
pool_machine (QleanPool  *pool,
              const char *name)
{
  g_autoptr(GError) error = NULL;
  QleanMachine *machine = qlean_pool_get (pool, name, &error);

  g_assert_no_error (error);
  g_assert_nonnull (machine);
  /* The pool holds it as long as the test needs it. */
  g_object_unref (machine);
  return machine;
}

/* A pool of one running machine, @name, on a new network of @cidr
 * (with NAT when @nat); both are the caller's. */
static QleanMachine *
spawn_alone_on_network (const char    *cidr,
                        gboolean       nat,
                        const char    *name,
                        QleanNetwork **network,
                        QleanPool    **pool)
{
  g_autoptr(GError) error = NULL;

  *network = qlean_network_new_full (NULL, cidr, nat, &error);
  g_assert_no_error (error);
  *pool = qlean_pool_new_with_network (*network);
  g_assert_true (qlean_pool_add (*pool, name, NULL, NULL, &error));
  g_assert_true (qlean_pool_spawn_all (*pool, NULL, &error));
  g_assert_no_error (error);
  return pool_machine (*pool, name);
}

static QleanPool *
get_pair_pool (void)
{
  g_autoptr(GError) error = NULL;

  if (!can_run_machines ())
    return NULL;

  if (pair_pool == NULL)
    {
      pair_pool = qlean_pool_new ();
      qlean_pool_add (pair_pool, "alice", NULL, NULL, &error);
      g_assert_no_error (error);
      qlean_pool_add (pair_pool, "bob", NULL, NULL, &error);
      g_assert_no_error (error);
      qlean_pool_init_all (pair_pool, NULL, &error);
      g_assert_no_error (error);
    }

  return pair_pool;
}

/* Runs a command that must not fail to run; returns its exit status. */
static int
run_status (QleanMachine *machine,
            const char   *command,
            char        **out)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanExecResult) result = qlean_machine_exec (machine, command, NULL, &error);

  g_assert_no_error (error);
  g_assert_nonnull (result);
  if (out != NULL)
    *out = qlean_exec_result_get_stdout_text (result);
  if (!qlean_exec_result_success (result))
    {
      g_autofree char *text = qlean_exec_result_get_stdout_text (result);

      g_test_message ("%s: `%s` exited with status %d: %s", qlean_machine_get_name (machine),
                      command, qlean_exec_result_get_exit_status (result), text);
    }
  return qlean_exec_result_get_exit_status (result);
}

static char *
get_ip (QleanMachine *machine)
{
  g_autoptr(GError) error = NULL;
  char *ip = qlean_machine_get_ip (machine, NULL, &error);

  g_assert_no_error (error);
  g_assert_nonnull (ip);
  return ip;
}

static void
assert_pings (QleanMachine *from,
              const char   *to,
              gboolean      expect_reply)
{
  /* Four pings as the seed does when they should arrive; two short ones
   * when they should not, which is enough to tell. */
  g_autofree char *command = expect_reply ? g_strdup_printf ("ping -c 4 -W 2 %s", to)
                                          : g_strdup_printf ("ping -c 2 -W 1 %s", to);
  g_autofree char *out = NULL;
  int status = run_status (from, command, &out);

  if (expect_reply)
    {
      g_assert_cmpint (status, ==, 0);
      g_assert_nonnull (strstr (out, "4 packets received"));
    }
  else
    g_assert_cmpint (status, !=, 0);
}

/* Where @name resolves in @machine: @ip, or a loopback address. */
static void
assert_resolves (QleanMachine *machine,
                 const char   *name,
                 const char   *ip)
{
  g_autofree char *command = g_strdup_printf ("ping -c 1 -W 2 %s", name);
  g_autofree char *out = NULL;
  g_autofree char *want = NULL;
  int status = run_status (machine, command, &out);

  g_assert_cmpint (status, ==, 0);
  want = g_strdup_printf ("PING %s (%s", name, ip != NULL ? ip : "127.");
  g_test_message ("%s in %s: %.*s", name, qlean_machine_get_name (machine),
                  (int) strcspn (out, "\n"), out);
  if (ip != NULL)
    {
      g_autofree char *exact = g_strconcat (want, ")", NULL);

      g_assert_nonnull (strstr (out, exact));
    }
  else
    g_assert_true (g_str_has_prefix (out, want));
}

/* No machine needed */

typedef struct
{
  guint position, removed, added;
} Change;

static void
items_changed_cb (GListModel *model,
                  guint       position,
                  guint       removed,
                  guint       added,
                  gpointer    user_data)
{
  GArray *changes = user_data;
  Change change = { position, removed, added };

  g_array_append_val (changes, change);
}

static void
test_pool_model (void)
{
  g_autoptr(QleanPool) pool = qlean_pool_new ();
  g_autoptr(GArray) changes = g_array_new (FALSE, FALSE, sizeof (Change));
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanMachine) missing = NULL;
  g_autoptr(QleanMachine) second = NULL;
  g_autoptr(QleanMachine) item = NULL;
  g_autofree char *address_a = NULL;
  g_autofree char *address_b = NULL;
  g_autofree char *mac_a = NULL;
  g_autofree char *mac_b = NULL;
  Change *change;

  g_signal_connect (pool, "items-changed", G_CALLBACK (items_changed_cb), changes);
  g_assert_true (g_list_model_get_item_type (G_LIST_MODEL (pool)) == QLEAN_TYPE_MACHINE);

  g_assert_true (qlean_pool_add (pool, "first", NULL, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_pool_add (pool, "second", NULL, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_pool_add (pool, "third", NULL, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (pool)), ==, 3);
  g_assert_cmpuint (changes->len, ==, 3);
  for (guint i = 0; i < 3; i++)
    {
      change = &g_array_index (changes, Change, i);
      g_assert_cmpuint (change->position, ==, i);
      g_assert_cmpuint (change->removed, ==, 0);
      g_assert_cmpuint (change->added, ==, 1);
    }

  /* A duplicate name: a clear error that names it, and no signal. */
  g_assert_false (qlean_pool_add (pool, "second", NULL, NULL, &error));
  g_assert_error (error, QLEAN_POOL_ERROR, QLEAN_POOL_ERROR_DUPLICATE_NAME);
  g_assert_nonnull (strstr (error->message, "“second”"));
  g_clear_error (&error);
  g_assert_cmpuint (changes->len, ==, 3);

  /* A name that cannot be a host name. */
  g_assert_false (qlean_pool_add (pool, "no spaces", NULL, NULL, &error));
  g_assert_error (error, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_INVALID_NAME);
  g_clear_error (&error);

  /* A missing name: NULL and an error that names it and what there is. */
  missing = qlean_pool_get (pool, "nobody", &error);
  g_assert_null (missing);
  g_assert_error (error, QLEAN_POOL_ERROR, QLEAN_POOL_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "“nobody”"));
  g_assert_nonnull (strstr (error->message, "“third”"));
  g_clear_error (&error);
  g_assert_false (qlean_pool_remove (pool, "nobody", &error));
  g_assert_error (error, QLEAN_POOL_ERROR, QLEAN_POOL_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* Distinct addresses and MACs, reserved at add time. */
  address_a = qlean_network_dup_address (qlean_pool_get_network (pool), "first");
  address_b = qlean_network_dup_address (qlean_pool_get_network (pool), "second");
  mac_a = qlean_network_dup_mac_address (qlean_pool_get_network (pool), "first");
  mac_b = qlean_network_dup_mac_address (qlean_pool_get_network (pool), "second");
  g_assert_nonnull (address_a);
  g_assert_cmpstr (address_a, !=, address_b);
  g_assert_cmpstr (mac_a, !=, mac_b);
  g_assert_true (g_str_has_prefix (mac_a, "02:"));

  second = qlean_pool_get (pool, "second", &error);
  g_assert_no_error (error);
  g_assert_true (qlean_machine_get_network (second) == qlean_pool_get_network (pool));
  {
    g_autofree char *machine_mac = qlean_machine_dup_mac_address (second);

    g_assert_cmpstr (machine_mac, ==, mac_b);
  }

  g_assert_true (qlean_pool_remove (pool, "second", &error));
  g_assert_no_error (error);
  g_assert_cmpuint (changes->len, ==, 4);
  change = &g_array_index (changes, Change, 3);
  g_assert_cmpuint (change->position, ==, 1);
  g_assert_cmpuint (change->removed, ==, 1);
  g_assert_cmpuint (change->added, ==, 0);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (pool)), ==, 2);
  item = g_list_model_get_item (G_LIST_MODEL (pool), 1);
  g_assert_cmpstr (qlean_machine_get_name (item), ==, "third");
  g_assert_null (g_list_model_get_item (G_LIST_MODEL (pool), 2));

  /* The caller still holds "second", so its address stays taken; once
   * dropped, a new machine of that name may join. */
  g_clear_object (&second);
  g_assert_true (qlean_pool_add (pool, "second", NULL, NULL, &error));
  g_assert_no_error (error);
}

static void
test_network_config (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanNetwork) network = NULL;
  g_autoptr(QleanNetwork) bad = NULL;
  g_autofree char *address = NULL;
  int owner;

  bad = qlean_network_new_full (NULL, "10.87.0.0/31", FALSE, &error);
  g_assert_null (bad);
  g_assert_error (error, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_INVALID_SUBNET);
  g_clear_error (&error);
  bad = qlean_network_new_full (NULL, "nonsense", FALSE, &error);
  g_assert_error (error, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_INVALID_SUBNET);
  g_clear_error (&error);

  /* A /29 has six hosts: the gateway and five machines. */
  network = qlean_network_new_full ("small", "192.168.77.9/29", FALSE, &error);
  g_assert_no_error (error);
  for (int i = 0; i < 5; i++)
    {
      g_autofree char *name = g_strdup_printf ("m%d", i);

      g_assert_true (qlean_network_attach (network, name, &owner, &error));
      g_assert_no_error (error);
    }
  address = qlean_network_dup_address (network, "m0");
  g_assert_cmpstr (address, ==, "192.168.77.10");
  g_assert_false (qlean_network_attach (network, "m5", &owner, &error));
  g_assert_error (error, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_FULL);
  g_clear_error (&error);
  g_assert_false (qlean_network_attach (network, "m1", &error, &error));
  g_assert_error (error, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_NAME_IN_USE);
  g_clear_error (&error);
  qlean_network_detach (network, "m1", &owner);
  g_assert_true (qlean_network_attach (network, "m5", &owner, &error));
  g_clear_pointer (&address, g_free);
  address = qlean_network_dup_address (network, "m5");
  g_assert_cmpstr (address, ==, "192.168.77.11");

  /* Partitions need a running switch. */
  g_assert_false (qlean_network_heal (network, NULL, &error));
  g_assert_error (error, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_NOT_RUNNING);
}

/* A network on a switch that another process runs (`qlean start
 * --network`): nothing to start or stop, and the addresses it is told. */
static void
test_shared_network (void)
{
  g_autoptr(QleanNetwork) network = NULL;
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) argv = NULL;
  g_autofree char *dir = g_dir_make_tmp ("qlean-shared-net-XXXXXX", NULL);
  g_autofree char *socket_path = g_build_filename (dir, "switch", NULL);
  g_autofree char *joined = NULL;
  g_autofree char *address = NULL;
  g_autofree char *mac = NULL;
  g_autofree char *expected = NULL;

  network = qlean_network_new_for_socket ("shared", "10.89.1.0/24", socket_path, &error);
  g_assert_null (network);
  g_assert_error (error, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_NOT_RUNNING);
  g_clear_error (&error);

  g_assert_cmpint (g_mkdir (socket_path, 0700), ==, 0);
  network = qlean_network_new_for_socket ("shared", "10.89.1.0/24", socket_path, &error);
  g_assert_no_error (error);
  g_assert_true (qlean_network_is_running (network));
  g_assert_true (qlean_network_start (network, NULL, &error));

  /* Machine addresses of the subnet only, each once. */
  g_assert_false (qlean_network_add_host (network, "x", "10.89.2.5", &error));
  g_assert_error (error, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_INVALID_SUBNET);
  g_clear_error (&error);
  g_assert_false (qlean_network_add_host (network, "x", "10.89.1.1", &error));
  g_assert_error (error, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_INVALID_SUBNET);
  g_clear_error (&error);
  g_assert_false (qlean_network_add_host (network, "x_y", "10.89.1.5", &error));
  g_assert_error (error, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_INVALID_NAME);
  g_clear_error (&error);
  g_assert_true (qlean_network_add_host (network, "other", "10.89.1.2", &error));
  g_assert_true (qlean_network_add_host (network, "mine", "10.89.1.5", &error));
  g_assert_false (qlean_network_add_host (network, "third", "10.89.1.5", &error));
  g_assert_error (error, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_NAME_IN_USE);
  g_clear_error (&error);
  address = qlean_network_dup_address (network, "mine");
  g_assert_cmpstr (address, ==, "10.89.1.5");

  /* The machine of that name takes that address, on that switch. */
  if (can_run_machines ())
    {
      machine = g_object_new (QLEAN_TYPE_MACHINE, "name", "mine", "network", network, NULL);
      argv = qlean_machine_dry_run (machine, &error);
      g_assert_no_error (error);
      joined = g_strjoinv (" ", argv);
      mac = qlean_machine_dup_mac_address (machine);
      g_assert_true (g_str_has_suffix (mac, ":00:05"));
      expected = g_strdup_printf ("-netdev vde,id=net0,sock=%s,port=5 ", socket_path);
      g_assert_nonnull (strstr (joined, expected));
    }

  /* Partitions are the switch owner's; stopping only lets go of it. */
  g_assert_false (qlean_network_heal (network, NULL, &error));
  g_assert_error (error, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_NOT_RUNNING);
  g_clear_error (&error);
  g_clear_object (&machine);
  g_assert_true (qlean_network_stop (network, NULL, &error));
  g_assert_false (qlean_network_is_running (network));
  g_clear_object (&network);
  g_assert_true (g_file_test (socket_path, G_FILE_TEST_IS_DIR));
  g_rmdir (socket_path);
  g_rmdir (dir);
}

static void
test_dry_run_has_nic (void)
{
  g_autoptr(QleanNetwork) network = qlean_network_new ();
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) argv = NULL;
  g_autofree char *joined = NULL;
  g_autofree char *mac = NULL;
  g_autofree char *expected = NULL;

  if (!can_run_machines ())
    return;

  machine = g_object_new (QLEAN_TYPE_MACHINE, "name", "dry", "network", network, NULL);
  argv = qlean_machine_dry_run (machine, &error);
  g_assert_no_error (error);
  joined = g_strjoinv (" ", argv);
  mac = qlean_machine_dup_mac_address (machine);
  expected = g_strdup_printf ("virtio-net-pci,netdev=net0,id=nic0,mac=%s,romfile=", mac);
  g_assert_nonnull (strstr (joined, "-netdev vde,id=net0,sock="));
  g_assert_nonnull (strstr (joined, expected));

  /* Starting needs the switch running: say so, start nothing. */
  g_assert_false (qlean_machine_spawn (machine, NULL, &error));
  g_assert_error (error, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_NOT_RUNNING);
  g_assert_cmpint (qlean_machine_get_pid (machine), ==, 0);
}

/* Bridge mode: the seed's libvirt qlbr0 through qemu-bridge-helper.
 * Running it needs root, a bridge and a DHCP server on it, none of which
 * a test may set up on its host; the command line is what Qlean owns. */
/* An archive keeps the bridge: the imported machine goes back on it. */
static void
test_bridge_archive (void)
{
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(QleanMachine) imported = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("qlean-bridge-archive-XXXXXX", &error);
  g_autofree char *path = NULL;
  g_autoptr(GFile) archive = NULL;

  g_assert_no_error (error);
  path = g_build_filename (dir, "bridged.qlean", NULL);
  archive = g_file_new_for_path (path);

  qlean_machine_config_set_bridge (config, "qltest0");
  machine = qlean_machine_new_with_name ("bridged", NULL, config);
  g_assert_true (qlean_machine_export (machine, archive, NULL, &error));
  g_assert_no_error (error);
  imported = qlean_machine_import (archive, "bridged-too", NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (qlean_machine_config_get_bridge (qlean_machine_get_config (imported)), ==, "qltest0");

  g_clear_object (&imported);
  g_unlink (path);
  g_rmdir (dir);
}

static void
test_dry_run_bridge (void)
{
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(QleanNetwork) network = qlean_network_new ();
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(QleanMachine) other = NULL;
  g_autoptr(QleanMachine) both = NULL;
  g_autoptr(QleanMachine) fixed = NULL;
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) argv = NULL;
  g_autofree char *joined = NULL;
  g_autofree char *mac = NULL;
  g_autofree char *other_mac = NULL;
  g_autofree char *fixed_mac = NULL;
  g_autofree char *expected = NULL;

  if (!can_run_machines ())
    return;

  qlean_machine_config_set_bridge (config, "qlbr0");
  machine = g_object_new (QLEAN_TYPE_MACHINE, "name", "bridged", "config", config, NULL);
  argv = qlean_machine_dry_run (machine, &error);
  g_assert_no_error (error);
  joined = g_strjoinv (" ", argv);
  g_assert_nonnull (strstr (joined, "-netdev bridge,id=net0,br=qlbr0,helper=/usr/lib/qemu/qemu-bridge-helper "));
  mac = qlean_machine_dup_mac_address (machine);
  g_assert_nonnull (mac);
  g_assert_true (g_str_has_prefix (mac, "52:54:00:"));
  g_assert_cmpuint (strlen (mac), ==, 17);
  expected = g_strdup_printf ("-device virtio-net-pci,netdev=net0,id=nic0,mac=%s,romfile=", mac);
  g_assert_nonnull (strstr (joined, expected));
  /* The guest asks the bridge's DHCP server for its address. */
  g_assert_nonnull (strstr (joined, " qlean.dhcp=1"));
  g_assert_null (strstr (joined, "vde"));
  g_assert_null (strstr (joined, "-incoming"));

  /* Every machine gets its own MAC unless given one. */
  other = g_object_new (QLEAN_TYPE_MACHINE, "name", "bridged2", "config", config, NULL);
  other_mac = qlean_machine_dup_mac_address (other);
  g_assert_cmpstr (other_mac, !=, mac);
  fixed = g_object_new (QLEAN_TYPE_MACHINE, "name", "bridged3", "config", config,
                        "mac-address", "52:54:00:AB:CD:EF", NULL);
  fixed_mac = qlean_machine_dup_mac_address (fixed);
  g_assert_cmpstr (fixed_mac, ==, "52:54:00:ab:cd:ef");

  /* A bridge and a network at once is a mistake, named as such. */
  both = g_object_new (QLEAN_TYPE_MACHINE, "name", "both", "config", config, "network", network, NULL);
  g_clear_pointer (&argv, g_strfreev);
  argv = qlean_machine_dry_run (both, &error);
  g_assert_null (argv);
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG);
  g_assert_nonnull (strstr (error->message, "qlbr0"));
  g_assert_nonnull (strstr (error->message, "only one"));
}

/* The same on a real bridge, for those who have one: QLEAN_TEST_BRIDGE
 * names a bridge that qemu-bridge-helper may use (`allow NAME` in
 * /etc/qemu/bridge.conf) with a DHCP server on it. A clone must get its
 * own MAC and its own lease. */
static void
test_bridge_live (void)
{
  const char *bridge = g_getenv ("QLEAN_TEST_BRIDGE");
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(QleanMachine) clone = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *ip = NULL;
  g_autofree char *clone_ip = NULL;
  g_autofree char *mac = NULL;
  g_autofree char *clone_mac = NULL;

  if (bridge == NULL)
    {
      g_test_skip ("set QLEAN_TEST_BRIDGE to a bridge with a DHCP server that "
                   "/etc/qemu/bridge.conf allows, to run machines on it");
      return;
    }
  if (!can_run_machines ())
    return;

  qlean_machine_config_set_bridge (config, bridge);
  machine = g_object_new (QLEAN_TYPE_MACHINE, "name", "bridged", "config", config, NULL);
  g_assert_true (qlean_machine_spawn (machine, NULL, &error));
  g_assert_no_error (error);
  ip = get_ip (machine);

  clone = qlean_machine_clone (machine, "bridged-clone", NULL, &error);
  g_assert_no_error (error);
  mac = qlean_machine_dup_mac_address (machine);
  clone_mac = qlean_machine_dup_mac_address (clone);
  g_assert_cmpstr (mac, !=, clone_mac);
  clone_ip = get_ip (clone);
  g_assert_cmpstr (ip, !=, clone_ip);

  g_assert_true (qlean_machine_shutdown (clone, NULL, &error));
  g_assert_true (qlean_machine_shutdown (machine, NULL, &error));
  g_assert_no_error (error);
}

/* The seed's example, and faults */

static void
test_ping (void)
{
  QleanPool *pool = get_pair_pool ();
  QleanMachine *alice, *bob;
  g_autofree char *alice_ip = NULL;
  g_autofree char *bob_ip = NULL;
  g_autofree char *expected = NULL;

  if (pool == NULL)
    return;

  alice = pool_machine (pool, "alice");
  bob = pool_machine (pool, "bob");

  alice_ip = get_ip (alice);
  bob_ip = get_ip (bob);
  expected = qlean_network_dup_address (qlean_pool_get_network (pool), "alice");
  g_assert_cmpstr (alice_ip, ==, expected);
  g_assert_cmpstr (alice_ip, !=, bob_ip);

  assert_pings (bob, alice_ip, TRUE);
  assert_pings (alice, bob_ip, TRUE);
  assert_pings (bob, "alice", TRUE);
  assert_pings (alice, "bob", TRUE);

  /* By name means the other machine, not a loopback left from the
   * machine whose saved state a fast start began from. */
  assert_resolves (alice, "bob", bob_ip);
  assert_resolves (bob, "alice", alice_ip);
  assert_resolves (alice, "alice", NULL);
  assert_resolves (bob, "bob", NULL);
}

static void
test_set_link (void)
{
  QleanPool *pool = get_pair_pool ();
  g_autoptr(GError) error = NULL;
  QleanMachine *alice, *bob;

  if (pool == NULL)
    return;

  alice = pool_machine (pool, "alice");
  bob = pool_machine (pool, "bob");

  g_assert_true (qlean_machine_set_link (alice, FALSE, NULL, &error));
  g_assert_no_error (error);
  assert_pings (bob, "alice", FALSE);

  g_assert_true (qlean_machine_set_link (alice, TRUE, NULL, &error));
  g_assert_no_error (error);
  assert_pings (bob, "alice", TRUE);
}

static void
test_partition (void)
{
  QleanPool *pool = get_pair_pool ();
  const char *side_a[] = { "alice", NULL };
  const char *side_b[] = { "bob", NULL };
  const char *unknown[] = { "mallory", NULL };
  g_autoptr(GError) error = NULL;
  QleanMachine *alice, *bob;

  if (pool == NULL)
    return;

  alice = pool_machine (pool, "alice");
  bob = pool_machine (pool, "bob");

  g_assert_false (qlean_pool_partition (pool, unknown, NULL, NULL, &error));
  g_assert_error (error, QLEAN_NETWORK_ERROR, QLEAN_NETWORK_ERROR_UNKNOWN_MACHINE);
  g_assert_nonnull (strstr (error->message, "“mallory”"));
  g_clear_error (&error);

  g_assert_true (qlean_pool_partition (pool, side_a, side_b, NULL, &error));
  g_assert_no_error (error);
  assert_pings (bob, "alice", FALSE);
  assert_pings (alice, "bob", FALSE);

  g_assert_true (qlean_pool_heal (pool, NULL, &error));
  g_assert_no_error (error);
  assert_pings (bob, "alice", TRUE);
}

/* A second pool on the same subnet, so that only the switches keep the
 * two apart: carol gets the address after alice's, as bob did in the
 * first pool, and asks for alice's. */
static void
test_pools_isolated (void)
{
  QleanPool *pool = get_pair_pool ();
  g_autoptr(QleanNetwork) network = NULL;
  g_autoptr(QleanPool) other = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *alice_ip = NULL;
  g_autofree char *carol_ip = NULL;
  g_autofree char *bob_ip = NULL;
  QleanMachine *carol;
  int placeholder;

  if (pool == NULL)
    return;

  alice_ip = get_ip (pool_machine (pool, "alice"));
  bob_ip = get_ip (pool_machine (pool, "bob"));

  network = qlean_network_new_full (NULL, qlean_network_get_subnet (qlean_pool_get_network (pool)),
                                    FALSE, &error);
  g_assert_no_error (error);
  g_assert_true (qlean_network_attach (network, "placeholder", &placeholder, &error));
  other = qlean_pool_new_with_network (network);
  g_assert_true (qlean_pool_add (other, "carol", NULL, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_pool_spawn_all (other, NULL, &error));
  g_assert_no_error (error);

  carol = pool_machine (other, "carol");
  carol_ip = get_ip (carol);
  g_assert_cmpstr (carol_ip, ==, bob_ip);
  assert_pings (carol, alice_ip, FALSE);

  g_assert_true (qlean_pool_shutdown_all (other, NULL, &error));
  g_assert_no_error (error);
  /* The pool does not stop a network it was given. */
  g_assert_true (qlean_network_is_running (network));
  g_assert_true (qlean_network_stop (network, NULL, &error));
  g_assert_no_error (error);
}

/* With NAT, machines get a gateway and DNS from slirp, but the host's
 * loopback stays out of reach. */
static void
test_nat (void)
{
  g_autoptr(QleanNetwork) network = NULL;
  g_autoptr(QleanPool) pool = NULL;
  g_autoptr(GSocketListener) listener = NULL;
  g_autoptr(GInetAddress) loopback = NULL;
  g_autoptr(GSocketAddress) bind_address = NULL;
  g_autoptr(GSocketAddress) bound = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *vde_plug = g_find_program_in_path ("vde_plug");
  g_autofree char *gateway = NULL;
  g_autofree char *command = NULL;
  g_autofree char *out = NULL;
  gboolean have_slirp = FALSE;
  QleanMachine *machine;
  const char * const plugin_dirs[] = {
    "/usr/lib/x86_64-linux-gnu/vdeplug", "/usr/lib64/vdeplug", "/usr/lib/vdeplug", NULL
  };

  if (!can_run_machines ())
    return;
  for (guint i = 0; plugin_dirs[i] != NULL && !have_slirp; i++)
    {
      g_autofree char *path = g_build_filename (plugin_dirs[i], "libvdeplug_slirp.so", NULL);

      have_slirp = g_file_test (path, G_FILE_TEST_EXISTS);
    }
  if (vde_plug == NULL || !have_slirp)
    {
      g_test_skip ("vde_plug with its slirp module is not installed (apt-get install vdeplug libvdeplug-slirp)");
      return;
    }

  machine = spawn_alone_on_network ("10.87.250.0/24", TRUE, "natty", &network, &pool);

  gateway = g_strdup ("10.87.250.1");
  command = g_strdup_printf ("ip route | grep -q '^default via %s ' && grep -q '^nameserver %s$' "
                             "/etc/resolv.conf", gateway, gateway);
  g_assert_cmpint (run_status (machine, command, NULL), ==, 0);
  assert_pings (machine, gateway, TRUE);
  /* Written, or created, as a shell would: nobody else may write them. */
  g_assert_cmpint (run_status (machine, "test -z \"$(find /etc/resolv.conf /etc/hosts -perm -0002)\"",
                               NULL), ==, 0);

  /* A server on the host's loopback: slirp must not take the guest
   * there (disable_host_loopback). */
  listener = g_socket_listener_new ();
  loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  bind_address = g_inet_socket_address_new (loopback, 0);
  g_assert_true (g_socket_listener_add_address (listener, bind_address, G_SOCKET_TYPE_STREAM,
                                                G_SOCKET_PROTOCOL_TCP, NULL, &bound, &error));
  g_assert_no_error (error);
  g_clear_pointer (&command, g_free);
  command = g_strdup_printf ("nc -w 2 %s %u </dev/null", gateway,
                             g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound)));
  g_assert_cmpint (run_status (machine, command, &out), !=, 0);

  g_assert_true (qlean_pool_shutdown_all (pool, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_network_stop (network, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (qlean_network_get_switch_pid (network), ==, 0);
}

/* Both ways of giving a machine its place on the network
 * (qlean-machine-network.c): FS NET CONFIGURE inside qlean-guest, and
 * the agent's interface query and script for a guest without it. Each
 * is checked by its outcome in the guest, the same for both, and the
 * fast one by the debug message that says it went that way, so that a
 * broken request that fell back to the script cannot pass for it. */

/* @machine's /etc/hosts without its own 127.0.1.1 line. */
static char *
hosts_but_own_line (QleanMachine *machine)
{
  g_autofree char *hosts = NULL;
  g_auto(GStrv) lines = NULL;
  GString *kept = g_string_new (NULL);

  g_assert_cmpint (run_status (machine, "cat /etc/hosts", &hosts), ==, 0);
  lines = g_strsplit (hosts, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    if (*lines[i] != '\0' && !g_str_has_prefix (lines[i], "127.0.1.1"))
      g_string_append_printf (kept, "%s\n", lines[i]);
  return g_string_free (kept, FALSE);
}

static void
assert_configured (QleanMachine *machine,
                   QleanNetwork *network)
{
  g_autofree char *address = qlean_network_dup_address (network, qlean_machine_get_name (machine));
  g_autofree char *ip = get_ip (machine);
  g_autofree char *addrs = NULL;
  g_autofree char *want = g_strdup_printf (" inet %s/24 ", address);
  g_autofree char *routes = NULL;

  g_assert_cmpstr (ip, ==, address);
  /* Its one IPv4 address besides loopback, and no default route (no
   * NAT on this network). */
  g_assert_cmpint (run_status (machine, "ip -4 -o addr show | grep -v ' lo '", &addrs), ==, 0);
  g_assert_nonnull (strstr (addrs, want));
  g_assert_cmpint (strchr (addrs, '\n') - addrs + 1, ==, strlen (addrs));
  g_assert_cmpint (run_status (machine, "ip route", &routes), ==, 0);
  g_assert_null (strstr (routes, "default"));
}

static void
test_configure_ways (void)
{
  g_autoptr(QleanNetwork) network = NULL;
  g_autoptr(QleanPool) pool = NULL;
  g_autoptr(QleanMachineConfig) agent_only = qlean_machine_config_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *fast_hosts = NULL;
  g_autofree char *slow_hosts = NULL;
  g_autofree char *fast_ip = NULL;
  g_autofree char *slow_ip = NULL;
  g_autofree char *line = NULL;
  QleanMachine *fast, *slow;

  if (!can_run_machines ())
    return;

  /* Without qlean-guest in the guest at all: the script is the only way. */
  qlean_machine_config_set_guest_transport (agent_only, QLEAN_GUEST_TRANSPORT_AGENT);
  qlean_machine_config_set_cmdline (agent_only, "qlean.noguest=1");
  network = qlean_network_new_full (NULL, "10.87.251.0/24", FALSE, &error);
  g_assert_no_error (error);
  pool = qlean_pool_new_with_network (network);
  g_assert_true (qlean_pool_add (pool, "fast", NULL, NULL, &error));
  g_assert_true (qlean_pool_add (pool, "slow", NULL, agent_only, &error));
  g_assert_no_error (error);

  test_logged ("");
  g_assert_true (qlean_pool_spawn_all (pool, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (test_logged ("machine fast: network configured by qlean-guest"));
  fast = pool_machine (pool, "fast");
  slow = pool_machine (pool, "slow");

  assert_configured (fast, network);
  assert_configured (slow, network);

  /* The same /etc/hosts but for the own name: the image's lines kept,
   * then both machines, marked as Qlean's. */
  fast_hosts = hosts_but_own_line (fast);
  slow_hosts = hosts_but_own_line (slow);
  g_assert_cmpstr (fast_hosts, ==, slow_hosts);
  fast_ip = qlean_network_dup_address (network, "fast");
  slow_ip = qlean_network_dup_address (network, "slow");
  line = g_strdup_printf ("%s fast # qlean\n%s slow # qlean\n", fast_ip, slow_ip);
  g_test_message ("/etc/hosts but the own line:\n%s", fast_hosts);
  g_assert_nonnull (strstr (fast_hosts, line));
  g_assert_null (strstr (strstr (fast_hosts, line) + strlen (line), "# qlean"));
  g_assert_nonnull (strstr (fast_hosts, "localhost"));

  assert_resolves (fast, "slow", slow_ip);
  assert_resolves (slow, "fast", fast_ip);
  assert_pings (fast, "slow", TRUE);

  g_assert_true (qlean_pool_shutdown_all (pool, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_network_stop (network, NULL, &error));
  g_assert_no_error (error);
}

/* Many at once, and nothing left behind */

static gboolean
process_alive (GPid pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/stat", (int) pid);
  g_autofree char *stat = NULL;
  const char *state;

  if (!g_file_get_contents (path, &stat, NULL, NULL))
    return FALSE;
  state = strrchr (stat, ')');
  return state != NULL && state[1] != '\0' && state[2] != 'Z' && state[2] != 'X';
}

/* Processes whose command line mentions @needle. */
static guint
count_processes_mentioning (const char *needle)
{
  g_autoptr(GDir) proc = g_dir_open ("/proc", 0, NULL);
  const char *entry;
  guint count = 0;

  while (proc != NULL && (entry = g_dir_read_name (proc)) != NULL)
    {
      g_autofree char *path = NULL;
      g_autofree char *cmdline = NULL;
      gsize len;

      if (!g_ascii_isdigit (entry[0]))
        continue;
      path = g_build_filename ("/proc", entry, "cmdline", NULL);
      if (!g_file_get_contents (path, &cmdline, &len, NULL) || len == 0)
        continue;
      for (gsize i = 0; i + 1 < len; i++)
        if (cmdline[i] == '\0')
          cmdline[i] = ' ';
      if (strstr (cmdline, needle) != NULL && process_alive (atoi (entry)))
        count++;
    }

  return count;
}

/* When both ways fail (a guest whose /etc/hosts is a directory): the
 * start fails saying what the script said and what qlean-guest said
 * first, and leaves nothing behind; the machine it was cloned from runs
 * on. */
static void
test_configure_fails (void)
{
  g_autoptr(QleanNetwork) network = NULL;
  g_autoptr(QleanPool) pool = NULL;
  g_autoptr(QleanMachine) clone = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *address = NULL;
  QleanMachine *source;

  if (!can_run_machines ())
    return;

  source = spawn_alone_on_network ("10.87.252.0/24", FALSE, "unhosted", &network, &pool);
  g_assert_cmpint (run_status (source, "mv /etc/hosts /etc/hosts.kept && mkdir /etc/hosts", NULL),
                   ==, 0);

  /* The clone joins the network and is configured as a start is. */
  clone = qlean_machine_clone (source, "unhosted-copy", NULL, &error);
  g_assert_null (clone);
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "Could not set up the network of machine “unhosted-copy”"));
  g_assert_nonnull (strstr (error->message, "(qlean-guest, asked first, said: FS NET CONFIGURE: "
                                            "cannot write /etc/hosts: Is a directory)"));
  g_clear_error (&error);
  address = qlean_network_dup_address (network, "unhosted-copy");
  g_assert_null (address);
  g_assert_cmpuint (count_processes_mentioning ("guest=unhosted-copy"), ==, 0);

  g_assert_cmpint (run_status (source, "rmdir /etc/hosts && mv /etc/hosts.kept /etc/hosts", NULL),
                   ==, 0);
  g_assert_true (qlean_pool_shutdown_all (pool, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_network_stop (network, NULL, &error));
  g_assert_no_error (error);
}

/* A golden pool of minimal machines: with memory templates, its members
 * start from the template (sharing its pages) rather than each loading
 * a golden state into memory of its own; each has its own name. */
static void
test_golden_maps_template (void)
{
  g_autoptr(QleanPool) pool = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *first_name = NULL;

  if (!can_run_machines ())
    return;

  pool = qlean_pool_new ();
  qlean_pool_set_golden (pool, TRUE);
  for (guint i = 0; i < 3; i++)
    {
      g_autofree char *name = g_strdup_printf ("gold%u", i);

      g_assert_true (qlean_pool_add (pool, name, NULL, NULL, &error));
      g_assert_no_error (error);
    }
  g_assert_true (qlean_pool_spawn_all (pool, NULL, &error));
  g_assert_no_error (error);

  for (guint i = 1; i < 3; i++)
    {
      g_autoptr(QleanMachine) machine = g_list_model_get_item (G_LIST_MODEL (pool), i);
      g_autofree char *path = g_strdup_printf ("/proc/%d/cmdline", (int) qlean_machine_get_pid (machine));
      g_autofree char *cmdline = NULL;
      g_autofree char *host = NULL;
      gsize length = 0;

      g_assert_true (g_file_get_contents (path, &cmdline, &length, NULL));
      for (gsize j = 0; j + 1 < length; j++)
        if (cmdline[j] == '\0')
          cmdline[j] = ' ';
      g_assert_nonnull (strstr (cmdline, "share=off"));
      host = test_run_text (machine, "hostname");
      g_assert_cmpstr (host, ==, qlean_machine_get_name (machine));
    }

  g_assert_true (qlean_pool_shutdown_all (pool, NULL, &error));
  g_assert_no_error (error);
}

static void
test_four_concurrently (void)
{
  g_autoptr(QleanPool) pool = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *socket_path = NULL;
  GPid pids[4];
  GPid switch_pid;
  gint64 start;
  guint n;

  if (!can_run_machines ())
    return;

  pool = qlean_pool_new ();
  for (guint i = 0; i < 4; i++)
    {
      g_autofree char *name = g_strdup_printf ("node%u", i);

      g_assert_true (qlean_pool_add (pool, name, NULL, NULL, &error));
      g_assert_no_error (error);
    }

  start = g_get_monotonic_time ();
  g_assert_true (qlean_pool_spawn_all (pool, NULL, &error));
  g_assert_no_error (error);
  g_test_message ("4 machines ready in %.2f s",
                  (g_get_monotonic_time () - start) / (double) G_USEC_PER_SEC);

  socket_path = qlean_network_dup_socket_path (qlean_pool_get_network (pool));
  g_assert_nonnull (socket_path);
  switch_pid = qlean_network_get_switch_pid (qlean_pool_get_network (pool));
  g_assert_true (process_alive (switch_pid));
  /* Each QEMU names the switch in its -netdev, and the switch its socket. */
  g_assert_cmpuint (count_processes_mentioning (socket_path), ==, 5);

  n = g_list_model_get_n_items (G_LIST_MODEL (pool));
  g_assert_cmpuint (n, ==, 4);
  for (guint i = 0; i < n; i++)
    {
      g_autoptr(QleanMachine) machine = g_list_model_get_item (G_LIST_MODEL (pool), i);

      g_assert_cmpint (qlean_machine_get_state (machine), ==, QLEAN_MACHINE_STATE_RUNNING);
      pids[i] = qlean_machine_get_pid (machine);
      g_assert_true (process_alive (pids[i]));
    }

  /* The last one reaches the first by name: every guest knows them all. */
  {
    g_autoptr(QleanMachine) last = g_list_model_get_item (G_LIST_MODEL (pool), 3);

    assert_pings (last, "node0", TRUE);
  }

  g_assert_true (qlean_pool_shutdown_all (pool, NULL, &error));
  g_assert_no_error (error);

  for (guint i = 0; i < 4; i++)
    g_assert_false (process_alive (pids[i]));
  g_assert_false (process_alive (switch_pid));
  g_assert_cmpuint (count_processes_mentioning (socket_path), ==, 0);
  g_assert_false (g_file_test (socket_path, G_FILE_TEST_EXISTS));
  g_assert_false (qlean_network_is_running (qlean_pool_get_network (pool)));
}

/* One machine cannot start: the call names it and why, and the other
 * is not left running. Without it the pool starts; dropping the pool
 * then stops its machine and its network. */
static void
test_spawn_failure_rolls_back (void)
{
  g_autoptr(QleanPool) pool = NULL;
  g_autoptr(QleanMachineConfig) broken = qlean_machine_config_new ();
  g_autoptr(GError) error = NULL;
  g_autofree char *socket_path = NULL;
  QleanMachine *good;
  GPid qemu_pid, switch_pid;

  if (!can_run_machines ())
    return;

  qlean_machine_config_set_kernel (broken, "/nonexistent/vmlinuz");
  pool = qlean_pool_new ();
  g_assert_true (qlean_pool_add (pool, "good", NULL, NULL, &error));
  g_assert_true (qlean_pool_add (pool, "broken", NULL, broken, &error));
  g_assert_no_error (error);

  g_assert_false (qlean_pool_spawn_all (pool, NULL, &error));
  g_assert_error (error, QLEAN_POOL_ERROR, QLEAN_POOL_ERROR_MACHINES_FAILED);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "broken: "));
  g_assert_nonnull (strstr (error->message, "/nonexistent/vmlinuz"));
  g_assert_null (strstr (error->message, "good: "));

  good = pool_machine (pool, "good");
  g_assert_cmpint (qlean_machine_get_state (good), ==, QLEAN_MACHINE_STATE_STOPPED);
  g_assert_cmpint (qlean_machine_get_pid (good), ==, 0);
  g_assert_false (qlean_network_is_running (qlean_pool_get_network (pool)));
  g_clear_error (&error);

  g_assert_true (qlean_pool_remove (pool, "broken", &error));
  g_assert_true (qlean_pool_spawn_all (pool, NULL, &error));
  g_assert_no_error (error);
  qemu_pid = qlean_machine_get_pid (good);
  switch_pid = qlean_network_get_switch_pid (qlean_pool_get_network (pool));
  socket_path = qlean_network_dup_socket_path (qlean_pool_get_network (pool));
  g_assert_true (process_alive (qemu_pid));
  g_assert_true (process_alive (switch_pid));

  g_clear_object (&pool);
  g_assert_false (process_alive (qemu_pid));
  g_assert_false (process_alive (switch_pid));
  g_assert_cmpuint (count_processes_mentioning (socket_path), ==, 0);
  g_assert_false (g_file_test (socket_path, G_FILE_TEST_EXISTS));
}

int
main (int   argc,
      char *argv[])
{
  int status;

  g_test_init (&argc, &argv, NULL);
  test_log_capture_debug ();

  g_test_add_func ("/pool/model", test_pool_model);
  g_test_add_func ("/pool/network-config", test_network_config);
  g_test_add_func ("/pool/shared-network", test_shared_network);
  g_test_add_func ("/pool/dry-run-has-nic", test_dry_run_has_nic);
  g_test_add_func ("/pool/dry-run-bridge", test_dry_run_bridge);
  g_test_add_func ("/pool/bridge-archive", test_bridge_archive);
  g_test_add_func ("/pool/bridge-live", test_bridge_live);
  g_test_add_func ("/pool/ping", test_ping);
  g_test_add_func ("/pool/set-link", test_set_link);
  g_test_add_func ("/pool/partition", test_partition);
  g_test_add_func ("/pool/isolated", test_pools_isolated);
  g_test_add_func ("/pool/nat", test_nat);
  g_test_add_func ("/pool/configure-ways", test_configure_ways);
  g_test_add_func ("/pool/configure-fails", test_configure_fails);
  g_test_add_func ("/pool/four-concurrently", test_four_concurrently);
  g_test_add_func ("/pool/golden-maps-template", test_golden_maps_template);
  g_test_add_func ("/pool/spawn-failure-rolls-back", test_spawn_failure_rolls_back);

  status = g_test_run ();

  if (pair_pool != NULL)
    {
      g_autoptr(GError) error = NULL;

      qlean_pool_shutdown_all (pair_pool, NULL, &error);
      g_assert_no_error (error);
      g_clear_object (&pair_pool);
    }

  return status;
}
