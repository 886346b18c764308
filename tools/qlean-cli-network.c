/* qlean-cli-network.c: named networks of `qlean start --network NAME`
 *
 * SPDX-License-Identifier: MIT
 *
 * Every started machine has an owner process of its own, and any of them
 * may stop first, so a named network cannot live in one of them. It has
 * an owner process of its own too (this program, `start
 * --network-owner=NAME`), which runs the network's vde_switch through a
 * QleanNetwork and nothing else. Its directory RUNBASE/networks/NAME
 * holds:
 *
 *   lock          flock(2)ed by whoever reads or changes the rest
 *   network.json  {"name", "subnet", "socket", "owner-pid", "owner-start",
 *                  "switch-pid"}
 *   members/M     {"address", "owner-pid"}: machine M holds that address
 *   owner.log     what the network owner printed
 *
 * A machine owner joins under the lock: it starts the network owner if
 * none runs (and waits until its switch runs), takes the lowest free
 * address, writes members/M, and only then lets go of the lock, so two
 * `qlean start`s never get the same address and the network owner never
 * sees an empty network that a machine is joining. The machine plugs into
 * the switch through qlean_network_new_for_socket(), with every member's
 * address given by qlean_network_add_host(), so that the library sets
 * its address and lists all the others in its /etc/hosts.
 *
 * A machine owner leaves when its machine stops: it removes members/M
 * and, when that was the last one, wakes the network owner with SIGTERM
 * and waits for it. The network owner also looks every half second,
 * under the lock, for members whose owner died (SIGKILL) and drops them.
 * Whenever it finds no members it removes the directory, still under the
 * lock, and exits, which stops the switch; a start that waited for the
 * lock meanwhile sees that the lock file it holds is no longer the one in
 * the directory, and starts over with a new network owner. A network
 * owner killed with SIGKILL takes its switch with it (PR_SET_PDEATHSIG);
 * `qlean gc` then removes its directory. Its machines run on, on no
 * switch: `qlean ls` shows their network down (cli_network_has_member()),
 * and the next start on that name makes a new network without them.
 *
 * Names: once a machine runs, it rewrites the Qlean lines of /etc/hosts
 * in every running member (itself included) with all members' addresses,
 * so machines that joined earlier learn its name too. A machine that
 * stops stays listed in the others until the next one joins.
 */

#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <glib-unix.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>

#include "qlean-cli-private.h"
#include "qlean-hosts-script-private.h"
#include "qlean-run-owner-private.h"
#include "qlean-errno-private.h"

#define NETWORK_FILE "network.json"
#define MEMBERS_DIR "members"
#define LOCK_FILE "lock"
#define LOG_FILE "owner.log"
#define CHECK_INTERVAL_MS 500
#define OWNER_START_TIMEOUT_S 30
#define OWNER_EXIT_WAIT_S 5
#define HOSTS_UPDATE_TIMEOUT_MS 10000
/* How long a start or stop waits for the network's lock (lock_network),
 * and how often it looks. */
#define LOCK_WAIT_S 120
#define LOCK_POLL_MS 20

/* Qlean's lines of /etc/hosts (lib/network/qlean-hosts-script-private.h), in
 * machines that run: written beside and renamed over, so that no reader
 * ever sees half a file. */
static const char hosts_script[] =
  QLEAN_HOSTS_KEEP_OTHERS
  QLEAN_HOSTS_PRINT " > /etc/hosts.qlean-new &&\n"
  "  mv -f /etc/hosts.qlean-new /etc/hosts\n";

gboolean
cli_network_check_name (const char  *name,
                        GError     **error)
{
  gsize len = name ? strlen (name) : 0;
  gboolean ok = len > 0 && len <= 32 && g_ascii_isalnum (name[0]);

  for (gsize i = 0; ok && i < len; i++)
    ok = g_ascii_isalnum (name[i]) || name[i] == '-' || name[i] == '_';

  if (!ok)
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                 _("“%s” is not a valid network name: use 1 to 32 letters, digits, “-” or “_”, "
                   "starting with a letter or digit"), name ? name : "");
  return ok;
}

char *
cli_network_dir (const char  *name,
                 GError     **error)
{
  g_autofree char *base = NULL;

  if (!cli_network_check_name (name, error) || (base = qlean_get_run_base_dir (error)) == NULL)
    return NULL;

  return g_build_filename (base, "networks", name, NULL);
}

/* Networks never see each other, so equal subnets would work; one per
 * name keeps the addresses of different networks apart in `qlean ls`. */
static char *
subnet_for (const char *name)
{
  return g_strdup_printf ("10.88.%u.0/24", g_str_hash (name) & 0xff);
}

static char *
host_address (const char *subnet,
              guint       host)
{
  g_auto(GStrv) parts = g_strsplit (subnet, "/", 2);
  struct in_addr addr;
  char buffer[INET_ADDRSTRLEN];

  if (parts[0] == NULL || inet_pton (AF_INET, parts[0], &addr) != 1)
    return NULL;
  addr.s_addr = htonl (ntohl (addr.s_addr) + host);
  return g_strdup (inet_ntop (AF_INET, &addr, buffer, sizeof buffer));
}

static guint
address_host (const char *subnet,
              const char *address)
{
  g_auto(GStrv) parts = g_strsplit (subnet, "/", 2);
  struct in_addr base, addr;

  if (parts[0] == NULL || inet_pton (AF_INET, parts[0], &base) != 1 ||
      address == NULL || inet_pton (AF_INET, address, &addr) != 1)
    return 0;
  return ntohl (addr.s_addr) - ntohl (base.s_addr);
}

static JsonObject *
read_object (const char *path)
{
  g_autoptr(JsonParser) parser = json_parser_new ();

  if (!json_parser_load_from_file (parser, path, NULL) ||
      !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    return NULL;

  return json_object_ref (json_node_get_object (json_parser_get_root (parser)));
}

static gboolean
write_object (const char  *path,
              JsonObject  *object,
              GError     **error)
{
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  g_autoptr(JsonNode) root = json_node_new (JSON_NODE_OBJECT);
  g_autofree char *data = NULL;

  json_node_set_object (root, object);
  json_generator_set_root (generator, root);
  data = json_generator_to_data (generator, NULL);

  return g_file_set_contents_full (path, data, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0600, error);
}

/* Locks the network's directory, making it when needed. The lock file is
 * removed with the directory when a network ends, so a lock is only good
 * on the file that is still there. With @wait, waits for it, but not
 * forever: every holder's work is bounded (a join starts the network
 * owner within OWNER_START_TIMEOUT_S, a hosts update gives each member
 * HOSTS_UPDATE_TIMEOUT_MS), so a lock held past LOCK_WAIT_S has a stuck
 * holder, and `qlean start` or `qlean stop` had better say so than hang
 * with it. Returns the fd, or -1. */
static int
lock_network (const char  *dir,
              gboolean     wait,
              GError     **error)
{
  g_autofree char *path = g_build_filename (dir, LOCK_FILE, NULL);
  gint64 deadline = g_get_monotonic_time () + LOCK_WAIT_S * G_USEC_PER_SEC;
  int saved_errno = 0;

  for (;;)
    {
      gboolean waiting = wait && g_get_monotonic_time () < deadline;
      struct stat held, there;
      int fd;

      if (wait && g_mkdir_with_parents (dir, 0700) != 0)
        {
          saved_errno = errno;
          break;
        }
      fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
      if (fd < 0)
        {
          saved_errno = errno;
          /* Removed between the mkdir and the open: make it again. */
          if (saved_errno == ENOENT && waiting)
            continue;
          break;
        }
      if (flock (fd, LOCK_EX | LOCK_NB) != 0)
        {
          saved_errno = errno;
          close (fd);
          if (saved_errno == EINTR)
            continue;
          if (saved_errno == EWOULDBLOCK && waiting)
            {
              g_usleep (LOCK_POLL_MS * 1000);
              continue;
            }
          break;
        }
      if (fstat (fd, &held) == 0 && stat (path, &there) == 0 &&
          held.st_dev == there.st_dev && held.st_ino == there.st_ino)
        return fd;
      /* The file we locked is gone: the network ended meanwhile. */
      saved_errno = ENOENT;
      close (fd);
      if (!waiting)
        break;
    }

  if (saved_errno == EWOULDBLOCK && wait)
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                 _("Cannot lock %s: another qlean process has held it for over %d s"),
                 path, LOCK_WAIT_S);
  else if (saved_errno == EWOULDBLOCK)
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_BUSY, _("%s is locked"), path);
  else
    qlean_set_error_from_errno (error, saved_errno,
                                _("Cannot lock %s"), path);
  return -1;
}

typedef struct
{
  char   *name;
  char   *address;
  gint64  owner;
} Member;

static void
member_free (Member *member)
{
  g_free (member->name);
  g_free (member->address);
  g_free (member);
}

static int
compare_members (gconstpointer a,
                 gconstpointer b)
{
  const Member *x = *(const Member * const *) a;
  const Member *y = *(const Member * const *) b;

  return g_strcmp0 (x->name, y->name);
}

/* The pid of the network's owner process if it still runs, else 0. With
 * its start time (written by owners since it was added), a recycled pid
 * does not pass for it. */
static gint64
network_owner (JsonObject *state)
{
  gint64 pid = state ? json_object_get_int_member_with_default (state, "owner-pid", 0) : 0;
  const char *start = state ? json_object_get_string_member_with_default (state, "owner-start", NULL) : NULL;
  g_autofree char *running_since = NULL;

  if (!cli_process_alive (pid))
    return 0;
  if (start == NULL)
    return pid;
  running_since = qlean_process_start_time (pid);
  return g_strcmp0 (running_since, start) == 0 ? pid : 0;
}

/* Under the lock: the members whose owner runs; the others' files go. */
static GPtrArray *
live_members (const char *dir)
{
  g_autofree char *members_dir = g_build_filename (dir, MEMBERS_DIR, NULL);
  g_autoptr(GDir) listing = g_dir_open (members_dir, 0, NULL);
  GPtrArray *members = g_ptr_array_new_with_free_func ((GDestroyNotify) member_free);
  const char *entry;

  while (listing != NULL && (entry = g_dir_read_name (listing)) != NULL)
    {
      g_autofree char *path = g_build_filename (members_dir, entry, NULL);
      g_autoptr(JsonObject) object = read_object (path);
      Member *member;

      if (object == NULL ||
          !cli_process_alive (json_object_get_int_member_with_default (object, "owner-pid", 0)))
        {
          g_unlink (path);
          continue;
        }

      member = g_new0 (Member, 1);
      member->name = g_strdup (entry);
      member->address = g_strdup (json_object_get_string_member_with_default (object, "address", ""));
      member->owner = json_object_get_int_member_with_default (object, "owner-pid", 0);
      g_ptr_array_add (members, member);
    }
  g_ptr_array_sort (members, compare_members);

  return members;
}

/* Under the lock: forgets every member, live or not. */
static void
remove_members (const char *dir)
{
  g_autofree char *members_dir = g_build_filename (dir, MEMBERS_DIR, NULL);
  g_autoptr(GDir) listing = g_dir_open (members_dir, 0, NULL);
  const char *entry;

  while (listing != NULL && (entry = g_dir_read_name (listing)) != NULL)
    {
      g_autofree char *path = g_build_filename (members_dir, entry, NULL);

      g_unlink (path);
    }
}

/* Under the lock: everything of the network but the lock, then it. */
static void
remove_network_dir (const char *dir)
{
  g_autofree char *members_dir = g_build_filename (dir, MEMBERS_DIR, NULL);
  static const char * const files[] = { NETWORK_FILE, LOG_FILE, LOCK_FILE };

  remove_members (dir);
  g_rmdir (members_dir);
  for (guint i = 0; i < G_N_ELEMENTS (files); i++)
    {
      g_autofree char *path = g_build_filename (dir, files[i], NULL);

      g_unlink (path);
    }
  g_rmdir (dir);
}

/* The network owner */

typedef struct
{
  GMainLoop    *loop;
  char         *dir;
  QleanNetwork *network;
} NetworkOwner;

/* Ends the network when it has no members left. */
static gboolean
network_owner_check_cb (gpointer user_data)
{
  NetworkOwner *owner = user_data;
  g_autoptr(GPtrArray) members = NULL;
  int fd;

  /* Removed under us (`qlean gc`): nobody can join any more. */
  if (!g_file_test (owner->dir, G_FILE_TEST_IS_DIR))
    {
      g_main_loop_quit (owner->loop);
      return G_SOURCE_CONTINUE;
    }

  /* Someone is joining or leaving: look again next time. */
  fd = lock_network (owner->dir, FALSE, NULL);
  if (fd < 0)
    return G_SOURCE_CONTINUE;

  members = live_members (owner->dir);
  /* A switch that died is no network to join: the next start makes a
   * new one. */
  if (members->len == 0 || !qlean_network_is_running (owner->network))
    {
      if (members->len > 0)
        g_printerr ("qlean: the switch of network %s exited\n", qlean_network_get_name (owner->network));
      remove_network_dir (owner->dir);
      g_main_loop_quit (owner->loop);
    }
  close (fd);

  return G_SOURCE_CONTINUE;
}

int
cli_network_owner_run (const char *name,
                       int         ready_fd)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanNetwork) network = NULL;
  g_autoptr(JsonObject) state = json_object_new ();
  g_autoptr(GMainLoop) loop = NULL;
  g_autofree char *dir = cli_network_dir (name, &error);
  g_autofree char *subnet = NULL;
  g_autofree char *socket_path = NULL;
  g_autofree char *state_path = NULL;
  NetworkOwner owner = { 0 };
  guint sources[4];
  const char *answer;

  if (dir != NULL)
    {
      subnet = subnet_for (name);
      state_path = g_build_filename (dir, NETWORK_FILE, NULL);
      network = qlean_network_new_full (name, subnet, FALSE, &error);
    }
  if (network == NULL || !qlean_network_start (network, NULL, &error))
    goto failed;

  /* The machine owner that started us holds the lock. */
  socket_path = qlean_network_dup_socket_path (network);
  json_object_set_string_member (state, "name", name);
  json_object_set_string_member (state, "subnet", subnet);
  json_object_set_string_member (state, "socket", socket_path);
  json_object_set_int_member (state, "owner-pid", getpid ());
  {
    g_autofree char *start = qlean_process_start_time (getpid ());

    json_object_set_string_member (state, "owner-start", start ? start : "");
  }
  json_object_set_int_member (state, "switch-pid", qlean_network_get_switch_pid (network));
  if (!write_object (state_path, state, &error))
    goto failed;

  /* Signals are ours before anyone learns we run: a joiner that fails
   * at once sends SIGTERM, which must stop the switch, not just us. */
  loop = g_main_loop_new (NULL, FALSE);
  owner.loop = loop;
  owner.dir = dir;
  owner.network = network;
  sources[0] = g_timeout_add (CHECK_INTERVAL_MS, network_owner_check_cb, &owner);
  sources[1] = g_unix_signal_add (SIGTERM, network_owner_check_cb, &owner);
  sources[2] = g_unix_signal_add (SIGINT, network_owner_check_cb, &owner);
  sources[3] = g_unix_signal_add (SIGHUP, network_owner_check_cb, &owner);

  answer = "ok\n";
  if (ready_fd >= 0 && write (ready_fd, answer, strlen (answer)) < 0)
    g_printerr ("qlean: cannot report to the starting process: %s\n", g_strerror (errno));
  if (ready_fd >= 0)
    close (ready_fd);

  g_main_loop_run (loop);
  for (guint i = 0; i < G_N_ELEMENTS (sources); i++)
    g_source_remove (sources[i]);

  if (!qlean_network_stop (network, NULL, &error))
    g_printerr ("qlean: stopping network %s: %s\n", name, error->message);
  return 0;

failed:
  {
    g_autofree char *message = g_strdup_printf ("%s\n", error->message);

    if (ready_fd >= 0)
      {
        if (write (ready_fd, message, strlen (message)) < 0)
          g_printerr ("qlean: cannot report to the starting process: %s\n", g_strerror (errno));
        close (ready_fd);
      }
    g_printerr ("qlean: network %s: %s", name, message);
    return EXIT_FAILED;
  }
}

/* In a machine owner, under the lock: starts the network owner, in its
 * own session so that it outlives us, and waits until its switch runs. */
static gboolean
spawn_network_owner (const char  *name,
                     const char  *dir,
                     GError     **error)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) process = NULL;
  g_autofree char *self_path = g_file_read_link ("/proc/self/exe", NULL);
  g_autofree char *option = g_strconcat ("--network-owner=", name, NULL);
  g_autofree char *log = g_build_filename (dir, LOG_FILE, NULL);
  g_autoptr(GString) answer = g_string_new (NULL);
  const char *argv[] = { self_path, "start", option, "--ready-fd=3", NULL };
  gboolean timed_out = FALSE;
  gint64 deadline;
  int fds[2];
  char buf[512];
  ssize_t n;

  if (self_path == NULL)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                           _("Cannot find this program to start the network's owner"));
      return FALSE;
    }
  if (!g_unix_open_pipe (fds, FD_CLOEXEC, error))
    return FALSE;

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDERR_MERGE);
  g_subprocess_launcher_set_stdout_file_path (launcher, log);
  g_subprocess_launcher_take_fd (launcher, fds[1], 3);
  g_subprocess_launcher_set_child_setup (launcher, (GSpawnChildSetupFunc) (void (*) (void)) setsid,
                                         NULL, NULL);
  process = g_subprocess_launcher_spawnv (launcher, argv, error);
  /* The launcher holds the write end until freed. */
  g_clear_object (&launcher);
  if (process == NULL)
    {
      close (fds[0]);
      return FALSE;
    }

  /* Bounded: we hold the network's lock, which every start and stop
   * of its machines waits for. */
  deadline = g_get_monotonic_time () + OWNER_START_TIMEOUT_S * G_USEC_PER_SEC;
  for (;;)
    {
      struct pollfd pfd = { fds[0], POLLIN, 0 };
      gint64 left = (deadline - g_get_monotonic_time ()) / 1000;
      int ready = left > 0 ? poll (&pfd, 1, (int) left) : 0;

      if (ready < 0 && errno == EINTR)
        continue;
      if (ready <= 0)
        {
          timed_out = ready == 0;
          break;
        }
      n = read (fds[0], buf, sizeof buf);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      g_string_append_len (answer, buf, n);
    }
  close (fds[0]);

  if (timed_out)
    {
      g_subprocess_force_exit (process);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                   _("Cannot start network %s: its owner process did not report within %d s (see %s)"),
                   name, OWNER_START_TIMEOUT_S, log);
      return FALSE;
    }

  if (!g_str_equal (answer->str, "ok\n"))
    {
      g_strchomp (answer->str);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, _("Cannot start network %s: %s"),
                   name, answer->len ? answer->str : _("its owner process died"));
      return FALSE;
    }

  return TRUE;
}

QleanNetwork *
cli_network_join (const char  *name,
                  const char  *machine,
                  char       **address,
                  GError     **error)
{
  g_autofree char *dir = cli_network_dir (name, error);
  g_autofree char *state_path = NULL;
  g_autofree char *member_path = NULL;
  g_autofree char *my_address = NULL;
  g_autoptr(JsonObject) state = NULL;
  g_autoptr(JsonObject) member = NULL;
  g_autoptr(GPtrArray) members = NULL;
  g_autoptr(QleanNetwork) network = NULL;
  gboolean used[256] = { FALSE };
  const char *subnet;
  guint host;
  int fd;

  if (dir == NULL || (fd = lock_network (dir, TRUE, error)) < 0)
    return NULL;

  state_path = g_build_filename (dir, NETWORK_FILE, NULL);
  state = read_object (state_path);
  if (network_owner (state) == 0)
    {
      g_autofree char *members_dir = g_build_filename (dir, MEMBERS_DIR, NULL);

      /* What a dead network owner left is no network any more: its
       * switch died with it, so even machines that still run are on no
       * switch, and none of them is on the new one. */
      g_clear_pointer (&state, json_object_unref);
      g_unlink (state_path);
      remove_members (dir);
      if (g_mkdir_with_parents (members_dir, 0700) != 0 ||
          !spawn_network_owner (name, dir, error) ||
          (state = read_object (state_path)) == NULL)
        {
          if (error != NULL && *error == NULL)
            g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                         _("Cannot start network %s: see %s/%s"), name, dir, LOG_FILE);
          close (fd);
          return NULL;
        }
    }

  subnet = json_object_get_string_member_with_default (state, "subnet", "");
  network = qlean_network_new_for_socket (name, subnet,
                                          json_object_get_string_member_with_default (state, "socket", ""),
                                          error);
  if (network == NULL)
    {
      close (fd);
      return NULL;
    }

  members = live_members (dir);
  for (guint i = 0; i < members->len; i++)
    {
      Member *other = g_ptr_array_index (members, i);
      guint other_host = address_host (subnet, other->address);
      g_autoptr(GError) local_error = NULL;

      if (g_str_equal (other->name, machine))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                       _("A machine named %s is already on network %s"), machine, name);
          close (fd);
          return NULL;
        }
      if (other_host < G_N_ELEMENTS (used))
        used[other_host] = TRUE;
      if (!qlean_network_add_host (network, other->name, other->address, &local_error))
        g_printerr ("qlean: network %s: %s\n", name, local_error->message);
    }

  for (host = 2; host < 255 && used[host]; host++)
    ;
  if (host >= 255)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                   _("Network %s has no address left: all of %s are taken"), name, subnet);
      close (fd);
      return NULL;
    }

  my_address = host_address (subnet, host);
  member = json_object_new ();
  json_object_set_string_member (member, "address", my_address);
  json_object_set_int_member (member, "owner-pid", getpid ());
  member_path = g_build_filename (dir, MEMBERS_DIR, machine, NULL);
  if (!qlean_network_add_host (network, machine, my_address, error) ||
      !write_object (member_path, member, error))
    {
      g_unlink (member_path);
      close (fd);
      return NULL;
    }

  close (fd);
  if (address != NULL)
    *address = g_steal_pointer (&my_address);
  return g_steal_pointer (&network);
}

gboolean
cli_network_has_member (const char *name,
                        const char *machine,
                        gint64      owner_pid)
{
  g_autofree char *dir = cli_network_dir (name, NULL);
  g_autofree char *state_path = NULL;
  g_autofree char *member_path = NULL;
  g_autoptr(JsonObject) state = NULL;
  g_autoptr(JsonObject) member = NULL;

  if (dir == NULL)
    return FALSE;

  /* Both files are replaced whole (write_object), so no lock is needed
   * to read them. */
  state_path = g_build_filename (dir, NETWORK_FILE, NULL);
  member_path = g_build_filename (dir, MEMBERS_DIR, machine, NULL);
  state = read_object (state_path);
  member = read_object (member_path);

  return state != NULL && member != NULL &&
         network_owner (state) != 0 &&
         json_object_get_int_member_with_default (member, "owner-pid", 0) == owner_pid;
}

void
cli_network_leave (const char *name,
                   const char *machine)
{
  g_autofree char *dir = cli_network_dir (name, NULL);
  g_autofree char *member_path = NULL;
  g_autofree char *state_path = NULL;
  g_autoptr(JsonObject) state = NULL;
  g_autoptr(GPtrArray) members = NULL;
  g_autoptr(GError) error = NULL;
  gint64 owner = 0;
  gint64 deadline;
  int fd;

  if (dir == NULL || !g_file_test (dir, G_FILE_TEST_IS_DIR))
    return;
  /* Not leaving is no harm: the network drops members whose owner is
   * gone, and this owner is on its way out. */
  if ((fd = lock_network (dir, TRUE, &error)) < 0)
    {
      g_printerr ("qlean: cannot leave network %s: %s\n", name, error->message);
      return;
    }

  member_path = g_build_filename (dir, MEMBERS_DIR, machine, NULL);
  g_unlink (member_path);
  members = live_members (dir);
  state_path = g_build_filename (dir, NETWORK_FILE, NULL);
  state = read_object (state_path);
  if (members->len == 0)
    owner = network_owner (state);
  /* Nobody left to end it (its owner was killed). */
  if (members->len == 0 && owner == 0)
    remove_network_dir (dir);
  close (fd);

  /* The last one out wakes the network owner, which ends the network if
   * it still has no members (it looks under the lock), and waits for
   * the switch to go, so that `qlean stop` leaves nothing running;
   * unless someone joined meanwhile. */
  if (owner > 0 && cli_process_alive (owner))
    {
      kill ((pid_t) owner, SIGTERM);
      deadline = g_get_monotonic_time () + OWNER_EXIT_WAIT_S * G_USEC_PER_SEC;
      while (cli_process_alive (owner) && g_get_monotonic_time () < deadline)
        g_usleep (20 * 1000);
    }
}

void
cli_network_update_hosts (const char   *name,
                          QleanMachine *self)
{
  g_autofree char *dir = cli_network_dir (name, NULL);
  g_autoptr(GPtrArray) members = NULL;
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(QleanGuestLauncher) launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_NONE);
  g_autoptr(GError) lock_error = NULL;
  int fd;

  /* Under the lock throughout: two starts at once update in turn, and
   * the later one writes the longer list. */
  if (dir == NULL)
    return;
  if ((fd = lock_network (dir, TRUE, &lock_error)) < 0)
    {
      g_printerr ("qlean: cannot list the machines of network %s in /etc/hosts: %s\n",
                  name, lock_error->message);
      return;
    }
  members = live_members (dir);

  g_ptr_array_add (argv, g_strdup ("/bin/sh"));
  g_ptr_array_add (argv, g_strdup ("-c"));
  g_ptr_array_add (argv, g_strdup (hosts_script));
  g_ptr_array_add (argv, g_strdup ("sh"));
  for (guint i = 0; i < members->len; i++)
    {
      Member *member = g_ptr_array_index (members, i);

      g_ptr_array_add (argv, g_strdup_printf ("%s %s", member->address, member->name));
    }
  g_ptr_array_add (argv, NULL);
  qlean_guest_launcher_set_timeout (launcher, HOSTS_UPDATE_TIMEOUT_MS);

  for (guint i = 0; i < members->len; i++)
    {
      Member *member = g_ptr_array_index (members, i);
      g_autoptr(QleanMachine) peer = NULL;
      g_autoptr(QleanExecResult) result = NULL;
      g_autoptr(GError) error = NULL;
      QleanMachine *target = self;

      if (!g_str_equal (member->name, qlean_machine_get_name (self)))
        {
          g_autofree char *machine_dir = cli_machine_dir (member->name, NULL);
          g_autofree char *socket_path = machine_dir ? g_build_filename (machine_dir, MACHINE_SOCKET_FILE, NULL) : NULL;

          /* One that still starts lists everybody itself once it runs. */
          if (socket_path == NULL || !g_file_test (socket_path, G_FILE_TEST_EXISTS))
            continue;
          peer = qlean_machine_attach (member->name, socket_path, NULL, &error);
          target = peer;
        }

      if (target != NULL)
        result = qlean_guest_launcher_run (launcher, target, (const char * const *) argv->pdata, NULL, &error);
      if (result == NULL)
        g_printerr ("qlean: cannot list the machines of network %s in /etc/hosts of %s: %s\n",
                    name, member->name, error->message);
    }
  close (fd);
}

gboolean
cli_network_collect (const char *base,
                     gboolean    dry_run,
                     guint      *removed,
                     guint      *kept)
{
  g_autofree char *networks = g_build_filename (base, "networks", NULL);
  g_autoptr(GDir) listing = g_dir_open (networks, 0, NULL);
  const char *name;

  while (listing != NULL && (name = g_dir_read_name (listing)) != NULL)
    {
      g_autofree char *dir = g_build_filename (networks, name, NULL);
      g_autofree char *state_path = g_build_filename (dir, NETWORK_FILE, NULL);
      g_autoptr(JsonObject) state = NULL;
      gint64 owner;
      int fd;

      if (!cli_network_check_name (name, NULL))
        continue;
      /* Busy means someone joins or leaves it: alive. */
      fd = lock_network (dir, FALSE, NULL);
      if (fd < 0)
        {
          (*kept)++;
          continue;
        }

      state = read_object (state_path);
      if (network_owner (state) != 0)
        (*kept)++;
      else
        {
          owner = state ? json_object_get_int_member_with_default (state, "owner-pid", 0) : 0;
          if (!cli_is_quiet ())
            g_print (dry_run ? _("would forget network %s (owner pid %d is gone)\n")
                             : _("forgetting network %s (owner pid %d is gone)\n"),
                     name, (int) owner);
          (*removed)++;
          if (!dry_run)
            remove_network_dir (dir);
        }
      close (fd);
    }

  return TRUE;
}
