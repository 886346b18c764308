/* test-forward.c: local ports forwarded to servers in machines, on real
 * QEMU with the minimal image, without a network and with a pool's
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <grp.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <glib/gstdio.h>

#include <qlean/qlean.h>
#include "test-common.h"

/* A machine with no network card at all: forwards go over qlean-guest. */
/* busybox httpd in the foreground, serving /www, as a process we own. */
static QleanGuestProcess *
start_httpd (QleanMachine *machine,
             guint16       port,
             const char   *index)
{
  g_autofree char *setup = g_strdup_printf ("mkdir -p /www && printf '%%s' '%s' > /www/index.html && "
                                            "head -c 6291456 /dev/urandom > /www/blob", index);
  g_autofree char *port_text = g_strdup_printf ("%u", port);
  const char * const argv[] = { "busybox", "httpd", "-f", "-p", port_text, "-h", "/www", NULL };
  g_autoptr(QleanGuestLauncher) launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_NONE);
  g_autoptr(GError) error = NULL;
  QleanGuestProcess *httpd;

  g_free (test_run_out (machine, setup));
  httpd = qlean_guest_launcher_spawnv (launcher, machine, argv, &error);
  g_assert_no_error (error);
  qlean_machine_wait_for_port (machine, port, 10000, NULL, &error);
  g_assert_no_error (error);
  return httpd;
}

static void
stop_process (QleanGuestProcess *process)
{
  qlean_guest_process_force_exit (process);
  qlean_guest_process_wait (process, NULL, NULL);
}

/* A blocking TCP connection to 127.0.0.1:@port, or -1 with errno. */
static int
connect_local (const char *address,
               guint16     port)
{
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons (port) };
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct timeval tv = { .tv_sec = 20 };

  g_assert_cmpint (fd, >=, 0);
  inet_pton (AF_INET, address, &sa.sin_addr);
  setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect (fd, (struct sockaddr *) &sa, sizeof sa) != 0)
    {
      int saved = errno;

      close (fd);
      errno = saved;
      return -1;
    }
  return fd;
}

/* GET @path over 127.0.0.1:@port: the body, or NULL. */
static GBytes *
http_get (guint16     port,
          const char *path)
{
  g_autofree char *request = g_strdup_printf ("GET %s HTTP/1.0\r\nHost: test\r\n\r\n", path);
  g_autoptr(GByteArray) response = g_byte_array_new ();
  int fd = connect_local ("127.0.0.1", port);
  guint8 buffer[65536];
  ssize_t n;
  guint8 *end;

  if (fd < 0)
    return NULL;
  if (write (fd, request, strlen (request)) != (ssize_t) strlen (request))
    {
      close (fd);
      return NULL;
    }
  while ((n = read (fd, buffer, sizeof buffer)) > 0)
    g_byte_array_append (response, buffer, n);
  close (fd);

  if (n < 0 || response->len < 12 || memcmp (response->data, "HTTP/1.", 7) != 0 ||
      memcmp (response->data + 8, " 200", 4) != 0 ||
      (end = memmem (response->data, response->len, "\r\n\r\n", 4)) == NULL)
    return NULL;
  return g_bytes_new (end + 4, response->data + response->len - (end + 4));
}

static void
assert_body (GBytes     *body,
             const char *expected)
{
  g_assert_nonnull (body);
  g_assert_cmpmem (g_bytes_get_data (body, NULL), g_bytes_get_size (body), expected, strlen (expected));
}

/* The listening socket's address, from /proc/net/tcp: LISTEN entries
 * for @port, as "ADDR" hex strings (0100007F is 127.0.0.1). */
static char *
listen_addresses (guint16 port)
{
  g_autofree char *tcp = NULL;
  g_auto(GStrv) lines = NULL;
  g_autofree char *suffix = g_strdup_printf (":%04X", port);
  GString *found = g_string_new (NULL);

  g_assert_true (g_file_get_contents ("/proc/net/tcp", &tcp, NULL, NULL));
  lines = g_strsplit (tcp, "\n", -1);
  for (guint i = 1; lines[i] != NULL; i++)
    {
      g_auto(GStrv) fields = g_strsplit_set (g_strstrip (lines[i]), " ", -1);
      g_autoptr(GPtrArray) words = g_ptr_array_new ();

      for (guint j = 0; fields[j] != NULL; j++)
        if (*fields[j] != '\0')
          g_ptr_array_add (words, fields[j]);
      /* sl local_address rem_address st ... ; st 0A is LISTEN */
      if (words->len > 3 && g_str_has_suffix (g_ptr_array_index (words, 1), suffix) &&
          g_str_equal (g_ptr_array_index (words, 3), "0A"))
        g_string_append_printf (found, "%s%.8s", found->len ? "," : "",
                                (char *) g_ptr_array_index (words, 1));
    }

  return g_string_free (found, FALSE);
}

static void
test_forward_plain (void)
{
  QleanMachine *machine = test_shared_machine ();
  g_autoptr(QleanGuestProcess) httpd = NULL;
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *listening = NULL;
  g_autofree char *guest_sum = NULL;
  g_autofree char *host_sum = NULL;
  guint16 port, again;
  int fd;

  if (machine == NULL)
    return;

  g_assert_null (qlean_machine_get_network (machine));
  httpd = start_httpd (machine, 8080, "hello from the guest");
  port = qlean_machine_forward_port (machine, 0, 8080, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (port, >, 0);

  /* 127.0.0.1 only: the kernel lists exactly that, and 127.0.0.2 (also
   * this host) is refused. */
  listening = listen_addresses (port);
  g_assert_cmpstr (listening, ==, "0100007F");
  fd = connect_local ("127.0.0.2", port);
  g_assert_cmpint (fd, ==, -1);
  g_assert_cmpint (errno, ==, ECONNREFUSED);

  body = http_get (port, "/");
  assert_body (body, "hello from the guest");
  g_clear_pointer (&body, g_bytes_unref);

  /* Bigger than a credit window, checksummed on both sides. */
  guest_sum = test_run_out (machine, "sha256sum /www/blob");
  guest_sum[strcspn (guest_sum, " ")] = '\0';
  body = http_get (port, "/blob");
  g_assert_nonnull (body);
  g_assert_cmpuint (g_bytes_get_size (body), ==, 6291456);
  host_sum = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, body);
  g_assert_cmpstr (host_sum, ==, guest_sum);
  g_clear_pointer (&body, g_bytes_unref);

  /* A port in use is a clear error; a chosen free one works. */
  g_assert_cmpuint (qlean_machine_forward_port (machine, port, 8080, &error), ==, 0);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE);
  g_clear_error (&error);
  g_assert_cmpuint (qlean_machine_forward_port (machine, 0, 0, &error), ==, 0);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  /* Removed: refused at once, and the port can be forwarded again. */
  g_assert_true (qlean_machine_unforward_port (machine, port, &error));
  g_assert_no_error (error);
  g_assert_cmpint (connect_local ("127.0.0.1", port), ==, -1);
  g_assert_cmpint (errno, ==, ECONNREFUSED);
  g_assert_false (qlean_machine_unforward_port (machine, port, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_clear_error (&error);
  again = qlean_machine_forward_port (machine, port, 8080, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (again, ==, port);
  body = http_get (port, "/");
  assert_body (body, "hello from the guest");
  g_assert_true (qlean_machine_unforward_port (machine, port, &error));

  stop_process (httpd);
}

/* Both ways at once through `nc`, and what a client sees when nothing
 * listens in the guest. */
static void
test_forward_nc (void)
{
  QleanMachine *machine = test_shared_machine ();
  const char * const argv[] = { "sh", "-c", "nc -l -p 9000 | sha256sum", NULL };
  g_autoptr(QleanGuestLauncher) launcher = NULL;
  g_autoptr(QleanGuestProcess) nc = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GRand) rand = g_rand_new_with_seed (9);
  g_autofree char *out = NULL;
  g_autofree guint8 *data = NULL;
  g_autofree char *expected = NULL;
  gsize size = 8 * 1024 * 1024, sent = 0;
  guint16 port, dead_port;
  guint8 byte;
  int fd;

  if (machine == NULL)
    return;

  data = g_malloc (size);
  for (gsize i = 0; i < size; i++)
    data[i] = (guint8) g_rand_int (rand);
  expected = g_compute_checksum_for_data (G_CHECKSUM_SHA256, data, size);

  launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_STDOUT_PIPE);
  nc = qlean_guest_launcher_spawnv (launcher, machine, argv, &error);
  g_assert_no_error (error);
  qlean_machine_wait_for_port (machine, 9000, 10000, NULL, &error);
  g_assert_no_error (error);
  port = qlean_machine_forward_port (machine, 0, 9000, &error);
  g_assert_no_error (error);

  fd = connect_local ("127.0.0.1", port);
  g_assert_cmpint (fd, >=, 0);
  while (sent < size)
    {
      ssize_t n = write (fd, data + sent, size - sent);

      g_assert_cmpint (n, >, 0);
      sent += n;
    }
  /* Our half-close is the guest's EOF: nc ends, sha256sum prints. */
  shutdown (fd, SHUT_WR);
  qlean_guest_process_communicate_utf8 (nc, NULL, NULL, &out, NULL, &error);
  g_assert_no_error (error);
  out[strcspn (out, " ")] = '\0';
  g_assert_cmpstr (out, ==, expected);
  g_assert_cmpint (read (fd, &byte, 1), ==, 0);
  close (fd);
  g_assert_true (qlean_machine_unforward_port (machine, port, &error));

  /* Nobody listens on the guest's port: accepted here, then reset. */
  dead_port = qlean_machine_forward_port (machine, 0, 9999, &error);
  g_assert_no_error (error);
  fd = connect_local ("127.0.0.1", dead_port);
  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (read (fd, &byte, 1), <=, 0);
  close (fd);
}

typedef struct
{
  guint16 port;
  guint   index;
} GetJob;

static gpointer
get_in_thread (gpointer data)
{
  GetJob *job = data;
  g_autofree char *path = g_strdup_printf ("/n%u.txt", job->index);

  return http_get (job->port, path);
}

/* Connections in parallel, each to its own answer. */
static void
test_forward_parallel (void)
{
  QleanMachine *machine = test_shared_machine ();
  g_autoptr(QleanGuestProcess) httpd = NULL;
  g_autoptr(GError) error = NULL;
  GThread *threads[8];
  GetJob jobs[8];
  guint16 port;

  if (machine == NULL)
    return;

  g_free (test_run_out (machine, "mkdir -p /www && for i in 0 1 2 3 4 5 6 7; do echo \"file $i\" > /www/n$i.txt; done"));
  httpd = start_httpd (machine, 8081, "index");
  port = qlean_machine_forward_port (machine, 0, 8081, &error);
  g_assert_no_error (error);

  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    {
      jobs[i].port = port;
      jobs[i].index = i;
      threads[i] = g_thread_new ("get", get_in_thread, &jobs[i]);
    }
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    {
      g_autoptr(GBytes) body = g_thread_join (threads[i]);
      g_autofree char *expected = g_strdup_printf ("file %u\n", i);

      assert_body (body, expected);
    }

  g_assert_true (qlean_machine_unforward_port (machine, port, &error));
  stop_process (httpd);
}

/* Through a machine attached to another process's (here: our own)
 * shared machine, as `qlean exec` attaches to `qlean start`'s: CONNECT
 * and its credits pass the relay. */
static void
test_forward_attached (void)
{
  QleanMachine *machine = test_shared_machine ();
  g_autoptr(QleanGuestProcess) httpd = NULL;
  g_autoptr(QleanMachine) attached = NULL;
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *socket_path = NULL;
  g_autofree char *guest_sum = NULL;
  g_autofree char *host_sum = NULL;
  guint16 port;

  if (machine == NULL)
    return;

  dir = g_dir_make_tmp ("qlean-test-forward-XXXXXX", &error);
  g_assert_no_error (error);
  socket_path = g_build_filename (dir, "ctl.sock", NULL);
  qlean_machine_share (machine, socket_path, &error);
  g_assert_no_error (error);
  attached = qlean_machine_attach ("attached", socket_path, NULL, &error);
  g_assert_no_error (error);

  httpd = start_httpd (machine, 8082, "hello through the relay");
  port = qlean_machine_forward_port (attached, 0, 8082, &error);
  g_assert_no_error (error);
  body = http_get (port, "/");
  assert_body (body, "hello through the relay");
  g_clear_pointer (&body, g_bytes_unref);

  /* More than a credit window: the client's CREDIT fd 1 reaches the guest. */
  guest_sum = test_run_out (machine, "sha256sum /www/blob");
  guest_sum[strcspn (guest_sum, " ")] = '\0';
  body = http_get (port, "/blob");
  g_assert_nonnull (body);
  host_sum = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, body);
  g_assert_cmpstr (host_sum, ==, guest_sum);

  g_assert_true (qlean_machine_unforward_port (attached, port, &error));
  g_clear_object (&attached);
  stop_process (httpd);
  g_unlink (socket_path);
  g_rmdir (dir);
}

/* A blocking connection to the unix socket at @path, or -1 with errno. */
static int
connect_unix (const char *path)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct timeval tv = { .tv_sec = 20 };

  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpuint (strlen (path), <, sizeof sa.sun_path);
  strcpy (sa.sun_path, path);
  setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect (fd, (struct sockaddr *) &sa, sizeof sa) != 0)
    {
      int saved = errno;

      close (fd);
      errno = saved;
      return -1;
    }
  return fd;
}

/* GET / through the unix socket at @path: the body, or NULL. */
static GBytes *
http_get_unix (const char *path)
{
  const char *request = "GET / HTTP/1.0\r\nHost: test\r\n\r\n";
  g_autoptr(GByteArray) response = g_byte_array_new ();
  int fd = connect_unix (path);
  guint8 buffer[65536];
  ssize_t n;
  guint8 *end;

  if (fd < 0)
    return NULL;
  if (write (fd, request, strlen (request)) != (ssize_t) strlen (request))
    {
      close (fd);
      return NULL;
    }
  while ((n = read (fd, buffer, sizeof buffer)) > 0)
    g_byte_array_append (response, buffer, n);
  close (fd);

  if (n < 0 || response->len < 12 || memcmp (response->data + 8, " 200", 4) != 0 ||
      (end = memmem (response->data, response->len, "\r\n\r\n", 4)) == NULL)
    return NULL;
  return g_bytes_new (end + 4, response->data + response->len - (end + 4));
}

/* The errno another user (nobody, 65534) gets connecting to @path, or
 * to 127.0.0.1:@port when @path is NULL: 0 when it connects. Needs root
 * to become that user. */
static int
other_user_connect_errno (const char *path,
                          guint16     port)
{
  int status;
  pid_t pid = fork ();

  g_assert_cmpint (pid, >=, 0);
  if (pid == 0)
    {
      int fd;

      if (setgroups (0, NULL) != 0 || setgid (65534) != 0 || setuid (65534) != 0)
        _exit (255);
      fd = path ? connect_unix (path) : connect_local ("127.0.0.1", port);
      _exit (fd >= 0 ? 0 : errno);
    }
  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), !=, 255);
  return WEXITSTATUS (status);
}

/* A unix socket forward: only its owner can reach the guest through it
 * (mode 0600, in a directory of mode 0700), where a TCP forward on
 * 127.0.0.1 is open to every local user. */
static void
test_forward_unix (void)
{
  QleanMachine *machine = test_shared_machine ();
  g_autoptr(QleanGuestProcess) httpd = NULL;
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *path = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *mine = NULL;
  g_autofree char *given = NULL;
  g_autofree char *again = NULL;
  struct stat st;
  guint16 port;

  if (machine == NULL)
    return;

  httpd = start_httpd (machine, 8084, "hello through a unix socket");
  path = qlean_machine_forward_unix (machine, NULL, 8084, &error);
  g_assert_no_error (error);
  g_assert_nonnull (path);
  g_assert_true (g_path_is_absolute (path));
  g_test_message ("forwarded through %s", path);

  g_assert_no_errno (lstat (path, &st));
  g_assert_true (S_ISSOCK (st.st_mode));
  g_assert_cmpint (st.st_mode & 07777, ==, 0600);
  g_assert_cmpint (st.st_uid, ==, getuid ());
  dir = g_path_get_dirname (path);
  g_assert_no_errno (lstat (dir, &st));
  g_assert_true (S_ISDIR (st.st_mode));
  g_assert_cmpint (st.st_mode & 07777, ==, 0700);

  body = http_get_unix (path);
  assert_body (body, "hello through a unix socket");
  g_clear_pointer (&body, g_bytes_unref);

  /* Another user is kept out of the socket, not out of a TCP port. */
  if (getuid () == 0)
    {
      port = qlean_machine_forward_port (machine, 0, 8084, &error);
      g_assert_no_error (error);
      g_assert_cmpint (other_user_connect_errno (path, 0), ==, EACCES);
      g_assert_cmpint (other_user_connect_errno (NULL, port), ==, 0);
      g_assert_true (qlean_machine_unforward_port (machine, port, &error));
    }
  else
    g_test_message ("not root: cannot try the socket as another user");

  /* Gone with its directory once unforwarded; a second time is an error. */
  g_assert_true (qlean_machine_unforward_unix (machine, path, &error));
  g_assert_no_error (error);
  g_assert_cmpint (lstat (path, &st), ==, -1);
  g_assert_cmpint (lstat (dir, &st), ==, -1);
  g_assert_false (qlean_machine_unforward_unix (machine, path, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* A path of the caller's; one taken already is refused, untouched. */
  mine = g_dir_make_tmp ("qlean-test-unix-forward-XXXXXX", &error);
  g_assert_no_error (error);
  given = g_build_filename (mine, "web.sock", NULL);
  again = qlean_machine_forward_unix (machine, given, 8084, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (again, ==, given);
  g_assert_no_errno (lstat (given, &st));
  g_assert_cmpint (st.st_mode & 07777, ==, 0600);
  body = http_get_unix (given);
  assert_body (body, "hello through a unix socket");
  g_clear_pointer (&again, g_free);
  again = qlean_machine_forward_unix (machine, given, 8084, &error);
  g_assert_null (again);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE);
  g_clear_error (&error);
  g_assert_no_errno (lstat (given, &st));

  /* The machine's end takes the rest along; here, unforward. */
  g_assert_true (qlean_machine_unforward_unix (machine, given, &error));
  g_assert_cmpint (lstat (given, &st), ==, -1);
  g_assert_no_errno (g_rmdir (mine));

  stop_process (httpd);
}

/* With a pool network, too; and a machine that stops takes its forward
 * along (refused, not hanging). */
static void
test_forward_pool (void)
{
  g_autofree char *vde_switch = g_find_program_in_path ("vde_switch");
  g_autoptr(QleanPool) pool = NULL;
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(QleanGuestProcess) httpd = NULL;
  g_autoptr(GBytes) body = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *ip = NULL;
  guint16 port;

  if (!test_have_qemu ())
    return;
  if (vde_switch == NULL)
    {
      g_test_skip ("vde_switch is not installed (apt-get install vde2)");
      return;
    }

  pool = qlean_pool_new ();
  qlean_pool_add (pool, "web", NULL, NULL, &error);
  g_assert_no_error (error);
  qlean_pool_spawn_all (pool, NULL, &error);
  g_assert_no_error (error);
  machine = qlean_pool_get (pool, "web", &error);
  g_assert_no_error (error);
  g_assert_nonnull (qlean_machine_get_network (machine));
  ip = qlean_machine_get_ip (machine, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (ip);

  httpd = start_httpd (machine, 80, "hello from the pool");
  port = qlean_machine_forward_port (machine, 0, 80, &error);
  g_assert_no_error (error);
  body = http_get (port, "/");
  assert_body (body, "hello from the pool");
  g_clear_pointer (&body, g_bytes_unref);

  qlean_pool_shutdown_all (pool, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (connect_local ("127.0.0.1", port), ==, -1);
  g_assert_cmpint (errno, ==, ECONNREFUSED);
  g_clear_pointer (&ip, g_free);
  ip = listen_addresses (port);
  g_assert_cmpstr (ip, ==, "");

  /* No forward on a machine that does not run. */
  g_assert_cmpuint (qlean_machine_forward_port (machine, 0, 80, &error), ==, 0);
  g_assert_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_STATE);
}

int
main (int    argc,
      char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/forward/no-network/http", test_forward_plain);
  g_test_add_func ("/forward/no-network/both-ways", test_forward_nc);
  g_test_add_func ("/forward/no-network/parallel", test_forward_parallel);
  g_test_add_func ("/forward/attached/http", test_forward_attached);
  g_test_add_func ("/forward/no-network/unix-socket", test_forward_unix);
  g_test_add_func ("/forward/pool-network/http-and-shutdown", test_forward_pool);

  status = g_test_run ();

  test_shared_machine_end ();

  return status;
}
