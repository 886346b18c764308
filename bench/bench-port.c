/* bench-port.c: transfers against the raw virtio-serial port, same run
 *
 * SPDX-License-Identifier: MIT
 *
 * The ceiling a transfer protocol on qlean-guest's port can reach, beside
 * what qlean_machine_download() and qlean_machine_upload() reach, on one
 * machine, alternating, median of a few rounds. The raw figure moves the
 * same file with no protocol at all through a port of its own on the
 * same virtio-serial device as qlean-guest's (org.qlean.bench.raw, added
 * with extra QEMU arguments, so qlean-guest keeps its port):
 *
 *   download: the guest runs `cat FILE > PORT`; the host reads the
 *             port's socket and writes what comes to a file, as the
 *             library must;
 *   upload:   the guest opens the port, says it is ready (one byte),
 *             then `head -c SIZE < PORT > FILE`; the host writes the file
 *             into the socket.
 *
 * Each is timed on the host from the call to the last byte on the host
 * (download) or the guest command's end (upload), so both ways pay one
 * command round trip, as the library's calls pay one request's.
 * The library's files are checked with sha256sum on the other side once
 * (not timed). bench/transfer runs this before bench-compare's
 * comparison with scp.
 *
 *   bench-port [--size MIB] [--rounds N]
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <poll.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <glib/gstdio.h>

#include <qlean/qlean.h>

#include "bench-common.h"

#define RAW_PORT "org.qlean.bench.raw"
#define GUEST_PORT "/run/qlean/ports/" RAW_PORT
#define CHUNK (1024 * 1024)

static int opt_size = 64;
static int opt_rounds = 5;

static const GOptionEntry entries[] = {
  { "size", 0, 0, G_OPTION_ARG_INT, &opt_size, "File size in MiB (default 64)", "MIB" },
  { "rounds", 0, 0, G_OPTION_ARG_INT, &opt_rounds, "Rounds of each way (median; default 5)", "N" },
  { NULL }
};

static QleanExecResult *
exec_or_die (QleanMachine *machine,
             const char   *command)
{
  g_autoptr(GError) error = NULL;
  QleanExecResult *result = qlean_machine_exec (machine, command, NULL, &error);

  if (result == NULL)
    g_error ("%s: %s", command, error->message);
  if (!qlean_exec_result_success (result))
    g_error ("%s failed: %s", command, qlean_exec_result_get_stderr_text (result));
  return result;
}

static char *
guest_sha256 (QleanMachine *machine,
              const char   *path)
{
  g_autofree char *command = g_strdup_printf ("sha256sum %s", path);
  g_autoptr(QleanExecResult) result = exec_or_die (machine, command);

  return g_strndup (qlean_exec_result_get_stdout_text (result), 64);
}

static char *
host_sha256 (const char *path)
{
  g_autofree char *contents = NULL;
  gsize len;

  if (!g_file_get_contents (path, &contents, &len, NULL))
    g_error ("cannot read %s", path);
  return g_compute_checksum_for_data (G_CHECKSUM_SHA256, (const guchar *) contents, len);
}

/* The raw port's socket */

static int
connect_raw (const char *path)
{
  struct sockaddr_un address = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  g_strlcpy (address.sun_path, path, sizeof address.sun_path);
  if (fd < 0 || connect (fd, (struct sockaddr *) &address, sizeof address) != 0)
    g_error ("cannot connect to %s: %s", path, g_strerror (errno));
  return fd;
}

static void
exec_done_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  QleanExecResult **out = user_data;
  g_autoptr(GError) error = NULL;

  *out = qlean_machine_exec_finish (QLEAN_MACHINE (source), result, &error);
  if (*out == NULL)
    g_error ("%s", error->message);
}

/* Iterates the main context until the command started with
 * exec_done_cb() has ended, and checks it succeeded. */
static void
wait_exec (QleanExecResult **result)
{
  while (*result == NULL)
    g_main_context_iteration (NULL, TRUE);
  if (!qlean_exec_result_success (*result))
    g_error ("the guest's side failed: %s", qlean_exec_result_get_stderr_text (*result));
  g_clear_object (result);
}

/* Blocks until @fd has data, turning the main context meanwhile (the
 * command's result arrives there). */
static void
wait_readable (int fd)
{
  struct pollfd pfd = { .fd = fd, .events = POLLIN };

  while (poll (&pfd, 1, 5) <= 0)
    g_main_context_iteration (NULL, FALSE);
}

/* Seconds from asking the guest to `cat` @guest_path into the port
 * until @size bytes have arrived and been written to @host_path. */
static double
raw_download (QleanMachine *machine,
              int           fd,
              const char   *guest_path,
              const char   *host_path,
              gsize         size)
{
  g_autofree char *command = g_strdup_printf ("cat %s > " GUEST_PORT, guest_path);
  g_autofree guint8 *buffer = g_malloc (CHUNK);
  QleanExecResult *result = NULL;
  int out = open (host_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  double start = bench_now (), seconds;
  gsize got = 0;

  if (out < 0)
    g_error ("cannot create %s: %s", host_path, g_strerror (errno));
  qlean_machine_exec_async (machine, command, NULL, exec_done_cb, &result);
  while (got < size)
    {
      ssize_t n;

      wait_readable (fd);
      n = read (fd, buffer, MIN (CHUNK, size - got));
      if (n <= 0)
        g_error ("reading the raw port: %s", n < 0 ? g_strerror (errno) : "end of stream");
      if (write (out, buffer, n) != n)
        g_error ("writing %s failed", host_path);
      got += n;
    }
  seconds = bench_now () - start;
  close (out);
  wait_exec (&result);
  return seconds;
}

/* Seconds from asking the guest to read @size bytes from the port into
 * @guest_path until it has, the host writing @host_path into it. */
static double
raw_upload (QleanMachine *machine,
            int           fd,
            const char   *host_path,
            const char   *guest_path,
            gsize         size)
{
  g_autofree char *command = g_strdup_printf ("exec 3<>" GUEST_PORT "; printf R >&3; "
                                              "head -c %" G_GSIZE_FORMAT " <&3 > %s",
                                              size, guest_path);
  g_autofree guint8 *buffer = g_malloc (CHUNK);
  QleanExecResult *result = NULL;
  int in = open (host_path, O_RDONLY | O_CLOEXEC);
  double start = bench_now ();
  gsize sent = 0;
  char ready;

  if (in < 0)
    g_error ("cannot open %s: %s", host_path, g_strerror (errno));
  qlean_machine_exec_async (machine, command, NULL, exec_done_cb, &result);
  /* Bytes written before the guest opened its end would be dropped. */
  wait_readable (fd);
  if (read (fd, &ready, 1) != 1 || ready != 'R')
    g_error ("the guest did not open the raw port");
  while (sent < size)
    {
      ssize_t n = read (in, buffer, MIN (CHUNK, size - sent));

      if (n <= 0)
        g_error ("reading %s failed", host_path);
      for (ssize_t off = 0; off < n;)
        {
          ssize_t w = write (fd, buffer + off, n - off);

          if (w < 0 && errno == EINTR)
            continue;
          if (w < 0)
            g_error ("writing the raw port: %s", g_strerror (errno));
          off += w;
        }
      sent += n;
    }
  close (in);
  wait_exec (&result);
  return bench_now () - start;
}

/* The library */

static double
library_download (QleanMachine *machine,
                  int           fd,
                  const char   *guest_path,
                  const char   *host_path,
                  gsize         size)
{
  g_autoptr(GFile) file = g_file_new_for_path (host_path);
  g_autoptr(GError) error = NULL;
  double start = bench_now ();

  g_unlink (host_path);
  if (!qlean_machine_download (machine, guest_path, file, NULL, &error))
    g_error ("download: %s", error->message);
  return bench_now () - start;
}

static double
library_upload (QleanMachine *machine,
                int           fd,
                const char   *host_path,
                const char   *guest_path,
                gsize         size)
{
  g_autoptr(GFile) file = g_file_new_for_path (host_path);
  g_autoptr(GError) error = NULL;
  double start = bench_now ();

  if (!qlean_machine_upload (machine, file, guest_path, NULL, &error))
    g_error ("upload: %s", error->message);
  return bench_now () - start;
}

/* One way of moving the file: its times, and the CPU QEMU (the guest,
 * under TCG) and this process (the host's side) spent on it. */
typedef struct
{
  const char *what;
  GArray     *seconds;
  double      qemu_cpu;
  double      host_cpu;
} Way;

typedef double (*WayFunc) (QleanMachine *machine,
                           int           fd,
                           const char   *from,
                           const char   *to,
                           gsize         size);

static void
way_run (Way          *way,
         WayFunc       func,
         QleanMachine *machine,
         int           fd,
         const char   *from,
         const char   *to,
         gsize         size)
{
  GPid qemu = qlean_machine_get_pid (machine);
  double qemu_cpu = bench_proc_cpu_seconds (qemu);
  double host_cpu = bench_proc_cpu_seconds (getpid ());
  double s;

  if (way->seconds == NULL)
    way->seconds = g_array_new (FALSE, FALSE, sizeof (double));
  s = func (machine, fd, from, to, size);
  g_array_append_val (way->seconds, s);
  way->qemu_cpu += bench_proc_cpu_seconds (qemu) - qemu_cpu;
  way->host_cpu += bench_proc_cpu_seconds (getpid ()) - host_cpu;
}

static double
median_rate (const Way *way,
             gsize      size)
{
  return size / 1e6 / bench_percentile (way->seconds, 0.5);
}

static void
print_way (const Way  *way,
           gsize       size,
           const Way  *ceiling,
           double      target)
{
  double rate = median_rate (way, size);
  double lo = size / 1e6 / bench_percentile (way->seconds, 1.0);
  double hi = size / 1e6 / bench_percentile (way->seconds, 0.0);
  double mib = (double) size / (1024 * 1024) * way->seconds->len;
  g_autoptr(GArray) shares = g_array_new (FALSE, FALSE, sizeof (double));
  g_autofree char *share = NULL, *verdict = NULL;
  double median_share;

  /* Each round's own share of its raw figure, then their median: the
   * load of a shared host drifts more between rounds than within one. */
  for (guint i = 0; ceiling != NULL && i < way->seconds->len; i++)
    {
      double r = g_array_index (ceiling->seconds, double, i) / g_array_index (way->seconds, double, i);

      g_array_append_val (shares, r);
    }
  median_share = ceiling ? bench_percentile (shares, 0.5) : 0;
  share = ceiling ? g_strdup_printf ("%.0f%%", 100 * median_share) : g_strdup ("");
  verdict = ceiling ? g_strdup_printf ("target >= %.0f%%: %s", 100 * target,
                                       median_share >= target ? "met" : "MISSED")
                    : g_strdup ("");

  g_print ("%-46s %7.1f %7.1f %7.1f %7s %7.2f %7.2f  %s\n", way->what, rate, lo, hi, share,
           1000 * way->qemu_cpu / mib, 1000 * way->host_cpu / mib, verdict);
}

/* What each way costs whatever the size: a 4 KiB download, median of
 * @rounds (the raw one's command round trip against the library's
 * requests: metadata, GET, the local file's mode and rename). Part of
 * the large transfers' difference. */
static void
print_fixed_costs (QleanMachine *machine,
                   int           fd,
                   const char   *host_path,
                   int           rounds)
{
  Way raw = { "4 KiB download: raw port" };
  Way lib = { "4 KiB download: qlean_machine_download" };

  exec_or_die (machine, "head -c 4096 /dev/urandom > /root/small");
  for (int i = 0; i < rounds; i++)
    {
      way_run (&raw, raw_download, machine, fd, "/root/small", host_path, 4096);
      way_run (&lib, library_download, machine, fd, "/root/small", host_path, 4096);
    }
  g_print ("%-46s %7.1f ms\n%-46s %7.1f ms\n", raw.what, 1000 * bench_percentile (raw.seconds, 0.5),
           lib.what, 1000 * bench_percentile (lib.seconds, 0.5));
  g_array_unref (raw.seconds);
  g_array_unref (lib.seconds);
}

int
main (int    argc,
      char **argv)
{
  g_autoptr(GOptionContext) context = g_option_context_new ("- transfers against the raw port");
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanImage) image = qlean_image_new_minimal ();
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  g_autoptr(QleanMachine) machine = NULL;
  Way raw_down = { "download: raw port (guest cat, host read)" };
  Way lib_down = { "download: qlean_machine_download" };
  Way raw_up = { "upload: raw port (host write, guest head -c)" };
  Way lib_up = { "upload: qlean_machine_upload" };
  g_autoptr(QleanExecResult) made = NULL;
  g_autofree char *dir = NULL, *sock = NULL, *chardev = NULL, *src = NULL, *dst = NULL;
  g_autofree char *make = NULL, *load = bench_load_average (), *load_end = NULL;
  g_autofree char *want = NULL, *got_down = NULL, *got_up = NULL;
  const char *extra[] = { "-chardev", NULL, "-device",
                          "virtserialport,bus=vser0.0,chardev=benchraw,name=" RAW_PORT, NULL };
  gsize size;
  int fd;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    g_error ("%s", error->message);
  size = (gsize) opt_size * 1024 * 1024;

  dir = g_dir_make_tmp ("bench-port-XXXXXX", &error);
  if (dir == NULL)
    g_error ("%s", error->message);
  sock = g_build_filename (dir, "raw.sock", NULL);
  src = g_build_filename (dir, "from-guest", NULL);
  dst = g_build_filename (dir, "to-guest", NULL);
  chardev = g_strdup_printf ("socket,id=benchraw,path=%s,server=on,wait=off", sock);
  extra[1] = chardev;

  if (!qlean_image_prepare (image, NULL, &error))
    g_error ("%s", error->message);
  /* Files live in the guest's RAM-backed root: room for three. */
  qlean_machine_config_set_memory_mib (config, 256 + 4 * opt_size);
  qlean_machine_config_set_extra_args (config, extra);
  machine = qlean_machine_new_with_name ("bench-port", image, config);
  if (!qlean_machine_spawn (machine, NULL, &error))
    g_error ("%s", error->message);
  fd = connect_raw (sock);

  g_print ("transfers of %d MiB: the raw port against the library, one minimal machine, "
           "%d rounds; load average before: %s\n", opt_size, opt_rounds, load);
  make = g_strdup_printf ("head -c %" G_GSIZE_FORMAT " /dev/urandom > /root/src", size);
  made = exec_or_die (machine, make);
  /* The upload's source: the same bytes, from the guest once. */
  library_download (machine, -1, "/root/src", dst, size);
  want = host_sha256 (dst);

  for (int round = 0; round < opt_rounds; round++)
    {
      way_run (&raw_down, raw_download, machine, fd, "/root/src", src, size);
      way_run (&lib_down, library_download, machine, fd, "/root/src", src, size);
      way_run (&raw_up, raw_upload, machine, fd, dst, "/root/raw-up", size);
      exec_or_die (machine, "rm -f /root/raw-up");
      way_run (&lib_up, library_upload, machine, fd, dst, "/root/lib-up", size);
      if (round == 0)
        {
          got_down = host_sha256 (src);
          got_up = guest_sha256 (machine, "/root/lib-up");
        }
      exec_or_die (machine, "rm -f /root/lib-up");
    }
  if (g_strcmp0 (want, got_down) != 0 || g_strcmp0 (want, got_up) != 0)
    g_error ("checksums differ: source %s, downloaded %s, uploaded %s", want, got_down, got_up);

  load_end = bench_load_average ();
  g_print ("\n%-46s %7s %7s %7s %7s %7s %7s\n%-46s %7s %7s %7s %7s %7s %7s\n",
           "", "MB/s", "", "", "share", "CPU ms", "per MiB",
           "(share: median of each round's own share)", "median", "min", "max", "of raw", "QEMU",
           "host");
  print_way (&raw_down, size, NULL, 0);
  print_way (&lib_down, size, &raw_down, 0.8);
  print_way (&raw_up, size, NULL, 0);
  print_way (&lib_up, size, &raw_up, 0.5);
  print_fixed_costs (machine, fd, src, opt_rounds);
  g_print ("load average after: %s\n", load_end);
  g_array_unref (raw_down.seconds);
  g_array_unref (lib_down.seconds);
  g_array_unref (raw_up.seconds);
  g_array_unref (lib_up.seconds);

  close (fd);
  qlean_machine_kill (machine, NULL, NULL);
  g_unlink (src);
  g_unlink (dst);
  g_unlink (sock);
  g_rmdir (dir);
  return 0;
}
