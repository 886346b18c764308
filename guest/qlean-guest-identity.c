/* qlean-guest-identity.c: a copy's own identity (FS IDENTITY)
 *
 * SPDX-License-Identifier: MIT
 *
 * A clone of a running machine, or a spare a machine takes, wakes up as
 * a copy of the machine it was saved from: its name, machine-id, MAC and
 * random state are the source's. The host used to fix them with a shell
 * script through an exec, but right after a restore the guest's QEMU
 * has a cold TCG translation cache and every new process (the shell, a
 * second program to reseed) costs tens of milliseconds: about 0.12 s of
 * a clone's 0.5 s. Here the running qlean-guest does the same steps with
 * system calls alone. The steps, and their order, are the script's
 * (lib/machine/qlean-machine-boot-state.c), which stays the way for the
 * stock agent and for a qlean-guest older than this request.
 *
 * Apart from qlean-guest-fs.c because it is not a file system operation
 * on PATH but a small procedure of its own, with a network part.
 */

#include "qlean-guest-private.h"

#include <linux/random.h>
#include <net/if.h>
#include <net/if_arp.h>

/* The DHCP client that the minimal image's init (and a prepared
 * image's) starts writes its pid here. */
#define UDHCPC_PID_FILE "/run/qlean/udhcpc.pid"

/* ------------------------------------------------------------------------ */
/* Files                                                                     */

/* Writes @len bytes to @path as a shell's `>` does: links followed, an
 * existing file's inode and mode kept; a missing file is created with
 * @create (0666 less the umask commands get: qlean-guest's own is 0),
 * and is an error (ENOENT) without it. */
int write_whole_file (const char *path, const char *data, size_t len, bool create)
{
  int fd = open (path, O_WRONLY | O_TRUNC | O_CLOEXEC | (create ? O_CREAT : 0),
                 0666 & ~G.child_umask);
  int err = 0;

  if (fd < 0)
    return errno;
  while (len > 0)
    {
      ssize_t n = write (fd, data, len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          err = errno;
          break;
        }
      data += n;
      len -= (size_t) n;
    }
  if (close (fd) < 0 && !err)
    err = errno;
  return err;
}

/* `[ -f PATH ]` (@nonempty false) or `[ -s PATH ]` (true). */
static bool file_exists (const char *path, bool nonempty)
{
  struct stat st;

  if (stat (path, &st) < 0)
    return false;
  return nonempty ? st.st_size > 0 : S_ISREG (st.st_mode);
}

/* `printf '%s\n' VALUE > PATH`, when PATH passes file_exists(). */
static int rewrite_line (const char *path, bool nonempty, const char *value)
{
  size_t n = strlen (value);
  char *line;
  int err;

  if (!file_exists (path, nonempty))
    return 0;
  line = xmalloc (n + 2);
  memcpy (line, value, n);
  line[n] = '\n';
  line[n + 1] = 0;
  err = write_whole_file (path, line, n + 1, false);
  free (line);
  return err;
}

static bool is_own_name_line (const char *l, size_t n)
{
  return n >= 10 && memcmp (l, "127.0.1.1", 9) == 0 && (l[9] == ' ' || l[9] == '\t');
}

/* Debian's (and the minimal image's init's) line for the own name: left
 * as it was, the copy would resolve its source's name to itself. Every
 * "127.0.1.1" line goes and one for @name ends the file, when it had
 * one; each other line is kept, with a newline after the last one. */
static int rewrite_hosts (const char *name)
{
  size_t len, out_len = 0;
  char *text, *out;
  bool own = false;
  int err;

  if (!file_exists ("/etc/hosts", false))
    return 0;
  if (!(text = read_small_file ("/etc/hosts", &len)))
    return errno;
  out = xmalloc (len + strlen (name) + 16);
  for (size_t start = 0; start < len;)
    {
      const char *nl = memchr (text + start, '\n', len - start);
      size_t n = nl ? (size_t) (nl - (text + start)) : len - start;

      if (is_own_name_line (text + start, n))
        own = true;
      else
        {
          memcpy (out + out_len, text + start, n);
          out_len += n;
          out[out_len++] = '\n';
        }
      start += n + 1;
    }
  err = 0;
  if (own)
    {
      out_len += (size_t) sprintf (out + out_len, "127.0.1.1 %s\n", name);
      err = write_whole_file ("/etc/hosts", out, out_len, false);
    }
  free (out);
  free (text);
  return err;
}

/* ------------------------------------------------------------------------ */
/* The network card                                                          */

/* Whether the card has an IPv4 address (its first, which is what a
 * DHCP client gives it). */
static bool has_ipv4 (int sock, const char *ifname)
{
  struct ifreq ifr;

  memset (&ifr, 0, sizeof ifr);
  snprintf (ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
  ifr.ifr_addr.sa_family = AF_INET;
  return ioctl (sock, SIOCGIFADDR, &ifr) == 0;
}

/* On a bridge, a new MAC needs a lease of its own: the DHCP client
 * releases the old one (and drops the address) before it asks anew, so
 * that nobody reads the source machine's address from the copy
 * meanwhile. Without a client (no pid file) there is nothing to do. */
static void renew_lease (int sock, const char *ifname)
{
  char *text = read_small_file (UDHCPC_PID_FILE, NULL);
  long pid = text ? strtol (text, NULL, 10) : 0;

  free (text);
  if (pid <= 0 || kill ((pid_t) pid, SIGUSR2) < 0)
    return;
  for (int i = 0; i < 200 && has_ipv4 (sock, ifname); i++)
    {
      struct timespec ten_ms = { 0, 10 * 1000 * 1000 };
      nanosleep (&ten_ms, NULL);
    }
  kill ((pid_t) pid, SIGUSR1);
}

/* The card whose address is @old_mac gets @new_mac: the saved card
 * keeps the MAC of the machine it came from. No such card: nothing to
 * do. */
static int change_mac (const char *old_mac, const char *new_mac)
{
  char ifname[IFNAMSIZ];
  unsigned char mac[6];
  int sock, err;

  if (!parse_mac (new_mac, mac))
    return EINVAL;
  if ((err = find_card (old_mac, ifname)))
    return err == ENODEV ? 0 : err;
  if ((sock = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
    return errno;
  if (!(err = set_card_mac (sock, ifname, mac)))
    renew_lease (sock, ifname);
  close (sock);
  return err;
}

/* ------------------------------------------------------------------------ */
/* Random state                                                              */

/* Bytes written to /dev/urandom are mixed in, but the generator goes on
 * from its old seed until the kernel reseeds it, up to a minute later:
 * two copies of one saved machine would read the same bytes meanwhile.
 * RNDRESEEDCRNG (Linux 4.17) reseeds it at once, from what was mixed.
 * @urandom_fd: /dev/urandom, or -1 to open it here. 0 or an errno. */
int reseed_random (int urandom_fd)
{
  int fd = urandom_fd >= 0 ? urandom_fd : open ("/dev/urandom", O_WRONLY | O_CLOEXEC);
  int err = 0;

  if (fd < 0 || ioctl (fd, RNDRESEEDCRNG) != 0)
    err = errno;
  if (fd >= 0 && urandom_fd < 0)
    close (fd);
  return err;
}

static int mix_seed (const Span *seed)
{
  int fd = open ("/dev/urandom", O_WRONLY | O_CLOEXEC);
  ssize_t n;

  if (fd < 0)
    return errno;
  n = write (fd, seed->p, seed->len);
  if (n < 0 || (size_t) n != seed->len)
    {
      int err = n < 0 ? errno : EIO;
      close (fd);
      return err;
    }
  /* Its failure (an old kernel, no CAP_SYS_ADMIN) leaves the bytes
   * mixed in for the next reseed, as the script's `|| :` did; a kernel
   * with the VM generation ID driver reseeded as it woke anyway. */
  reseed_random (fd);
  close (fd);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* The request                                                               */

/* Copies of the spans as strings: NULL (with EINVAL) for one holding a
 * NUL byte. */
static char *opt_str (bool has, Span sp, bool *bad)
{
  char *s;

  if (!has)
    return NULL;
  if (!(s = span_str (sp)))
    *bad = true;
  return s;
}

/* Does what FS IDENTITY asks (see qlean-guest-protocol.h): 0, or the
 * errno of the first step that failed, with `*failed` saying which. */
int set_identity (const Req *r, const char **failed)
{
  bool bad = false;
  char *name = opt_str (r->has_hostname, r->hostname, &bad);
  char *machine_id = opt_str (r->has_machine_id, r->machine_id, &bad);
  char *old_mac = opt_str (r->has_old_mac, r->old_mac, &bad);
  char *new_mac = opt_str (r->has_new_mac, r->new_mac, &bad);
  int err = 0;

  if (bad || !name)
    {
      *failed = bad ? "a value contains a NUL byte" : "no HOSTNAME";
      err = EINVAL;
    }
  else if (sethostname (name, strlen (name)) < 0)
    err = errno, *failed = "cannot set the hostname";
  else if ((err = rewrite_line ("/etc/hostname", false, name)))
    *failed = "cannot write /etc/hostname";
  else if ((err = rewrite_hosts (name)))
    *failed = "cannot rewrite /etc/hosts";
  else if (machine_id && (err = rewrite_line ("/etc/machine-id", true, machine_id)))
    *failed = "cannot write /etc/machine-id";
  else if (old_mac && *old_mac && new_mac && (err = change_mac (old_mac, new_mac)))
    *failed = "cannot change the network card's MAC address";
  else if (r->has_seed && (err = mix_seed (&r->seed)))
    *failed = "cannot write to /dev/urandom";

  free (name);
  free (machine_id);
  free (old_mac);
  free (new_mac);
  return err;
}
