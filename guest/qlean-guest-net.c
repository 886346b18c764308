/* qlean-guest-net.c: a machine's place on its network (FS NET CONFIGURE)
 *
 * SPDX-License-Identifier: MIT
 *
 * When a machine on a Qlean network starts, the host gives its card
 * the network's address, default route and name server, and lists the
 * network's machines in /etc/hosts. It used to do so with a shell
 * script that ran `ip` four or five times: on a machine that took a
 * warmed spare that was about 60 ms of a 90 ms start, and with 8 such
 * starts at once, most of the QEMU CPU they cost. Here the running
 * qlean-guest does the same steps with netlink and ioctl requests. The
 * steps, and their order, are the script's (configure_script in
 * lib/network/qlean-machine-network.c), which stays the way for the
 * stock agent, for an older qlean-guest and for a card not there yet.
 *
 * Apart from qlean-guest-identity.c, which uses its card helpers,
 * because it speaks rtnetlink.
 */

#include "qlean-guest-private.h"

#include <net/if.h>
#include <net/if_arp.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

/* ------------------------------------------------------------------------ */
/* rtnetlink                                                                 */

/* One request, built in place: the header, the family's message, then
 * attributes. 256 bytes hold the largest here (a route: a 12-byte
 * rtmsg and two 8-byte attributes after the 16-byte header). */
typedef struct
{
  struct nlmsghdr h;
  unsigned char   body[256];
} NlRequest;

static void nl_init (NlRequest *req, uint16_t type, uint16_t flags, const void *msg, size_t len)
{
  memset (req, 0, sizeof *req);
  req->h.nlmsg_len = (uint32_t) NLMSG_LENGTH (len);
  req->h.nlmsg_type = type;
  req->h.nlmsg_flags = (uint16_t) (NLM_F_REQUEST | flags);
  memcpy (NLMSG_DATA (&req->h), msg, len);
}

static void nl_add_attr (NlRequest *req, uint16_t type, const void *data, size_t len)
{
  struct rtattr *rta = (struct rtattr *) ((unsigned char *) &req->h + NLMSG_ALIGN (req->h.nlmsg_len));

  rta->rta_type = type;
  rta->rta_len = (unsigned short) RTA_LENGTH (len);
  memcpy (RTA_DATA (rta), data, len);
  req->h.nlmsg_len = (uint32_t) (NLMSG_ALIGN (req->h.nlmsg_len) + RTA_ALIGN (rta->rta_len));
}

/* Sends @req and reads the kernel's answer to it. With @each (a dump),
 * calls it on every message until NLMSG_DONE; otherwise waits for the
 * acknowledgement. 0 or an errno (EAGAIN when the kernel said nothing
 * within the socket's receive timeout). */
static int nl_talk (int sock, NlRequest *req, void (*each) (const struct nlmsghdr *, void *),
                    void *data)
{
  static uint32_t seq;
  unsigned char buf[8192] __attribute__ ((aligned (NLMSG_ALIGNTO)));

  req->h.nlmsg_seq = ++seq;
  if (!each)
    req->h.nlmsg_flags |= NLM_F_ACK;
  if (send (sock, req, req->h.nlmsg_len, 0) < 0)
    return errno;

  for (;;)
    {
      ssize_t n = recv (sock, buf, sizeof buf, 0);
      int left;

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return errno;
      if (n == 0)
        return EPROTO;
      left = (int) n;
      for (struct nlmsghdr *h = (struct nlmsghdr *) buf; NLMSG_OK (h, left);
           h = NLMSG_NEXT (h, left))
        {
          if (h->nlmsg_seq != req->h.nlmsg_seq)
            continue;
          /* A dump's end carries its own error, when it failed. */
          if (h->nlmsg_type == NLMSG_DONE)
            return h->nlmsg_len >= NLMSG_LENGTH (sizeof (int)) ? -*(const int *) NLMSG_DATA (h) : 0;
          if (h->nlmsg_type == NLMSG_ERROR)
            {
              const struct nlmsgerr *e = NLMSG_DATA (h);
              return -e->error;   /* 0: the acknowledgement */
            }
          if (each)
            each (h, data);
        }
    }
}

/* `ip -f inet addr flush dev DEV`: what the dump finds is kept here,
 * then deleted, as the kernel may drop the dump if it changes. */
typedef struct
{
  int                     ifindex;
  struct ifaddrmsg       *addrs;
  uint32_t               *locals;
  size_t                  n, cap;
} AddrList;

static void collect_addr (const struct nlmsghdr *h, void *data)
{
  AddrList *list = data;
  const struct ifaddrmsg *ifa = NLMSG_DATA (h);
  size_t left = IFA_PAYLOAD (h);
  uint32_t local = 0;
  bool has_local = false;

  if (h->nlmsg_type != RTM_NEWADDR || ifa->ifa_family != AF_INET ||
      (int) ifa->ifa_index != list->ifindex)
    return;
  for (const struct rtattr *rta = IFA_RTA (ifa); RTA_OK (rta, left); rta = RTA_NEXT (rta, left))
    if (rta->rta_type == IFA_LOCAL && RTA_PAYLOAD (rta) == 4)
      memcpy (&local, RTA_DATA (rta), 4), has_local = true;
  if (!has_local)
    return;
  if (list->n == list->cap)
    {
      list->cap = list->cap ? 2 * list->cap : 4;
      list->addrs = xrealloc (list->addrs, list->cap * sizeof *list->addrs);
      list->locals = xrealloc (list->locals, list->cap * sizeof *list->locals);
    }
  list->addrs[list->n] = *ifa;
  list->locals[list->n++] = local;
}

/* As iproute2 does, dumps again until a round finds nothing: an address
 * added meanwhile (by a DHCP client, say) goes too. */
static int flush_ipv4 (int sock, int ifindex)
{
  struct ifaddrmsg all = { .ifa_family = AF_INET };
  NlRequest req;
  int err = 0;

  for (int round = 0; round < 10; round++)
    {
      AddrList list = { .ifindex = ifindex };
      size_t found;

      nl_init (&req, RTM_GETADDR, NLM_F_DUMP, &all, sizeof all);
      err = nl_talk (sock, &req, collect_addr, &list);
      for (size_t i = 0; !err && i < list.n; i++)
        {
          nl_init (&req, RTM_DELADDR, 0, &list.addrs[i], sizeof list.addrs[i]);
          nl_add_attr (&req, IFA_LOCAL, &list.locals[i], 4);
          err = nl_talk (sock, &req, NULL, NULL);
          /* Deleting a primary address may take its secondaries with it. */
          if (err == EADDRNOTAVAIL)
            err = 0;
        }
      found = list.n;
      free (list.addrs);
      free (list.locals);
      if (err || found == 0)
        return err;
    }
  return EBUSY;
}

/* `ip addr add ADDR/PREFIX dev DEV` */
static int add_ipv4 (int sock, int ifindex, struct in_addr addr, unsigned prefix)
{
  struct ifaddrmsg ifa = {
    .ifa_family = AF_INET,
    .ifa_prefixlen = (unsigned char) prefix,
    .ifa_scope = RT_SCOPE_UNIVERSE,
    .ifa_index = (unsigned) ifindex,
  };
  NlRequest req;

  nl_init (&req, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &ifa, sizeof ifa);
  nl_add_attr (&req, IFA_LOCAL, &addr, 4);
  nl_add_attr (&req, IFA_ADDRESS, &addr, 4);
  return nl_talk (sock, &req, NULL, NULL);
}

/* `ip route replace default via GW dev DEV` */
static int replace_default_route (int sock, int ifindex, struct in_addr gateway)
{
  struct rtmsg rt = {
    .rtm_family = AF_INET,
    .rtm_table = RT_TABLE_MAIN,
    .rtm_protocol = RTPROT_BOOT,
    .rtm_scope = RT_SCOPE_UNIVERSE,
    .rtm_type = RTN_UNICAST,
  };
  NlRequest req;

  nl_init (&req, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, &rt, sizeof rt);
  nl_add_attr (&req, RTA_GATEWAY, &gateway, 4);
  nl_add_attr (&req, RTA_OIF, &ifindex, sizeof ifindex);
  return nl_talk (sock, &req, NULL, NULL);
}

/* ------------------------------------------------------------------------ */
/* The card                                                                  */

/* `ip link set dev DEV down`, or up. */
static int set_link_up (int sock, const char *ifname, bool up)
{
  struct ifreq ifr;

  memset (&ifr, 0, sizeof ifr);
  snprintf (ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
  if (ioctl (sock, SIOCGIFFLAGS, &ifr) < 0)
    return errno;
  if (up)
    ifr.ifr_flags |= IFF_UP;
  else
    ifr.ifr_flags &= ~IFF_UP;
  return ioctl (sock, SIOCSIFFLAGS, &ifr) < 0 ? errno : 0;
}

bool parse_mac (const char *text, unsigned char mac[6])
{
  unsigned v[6];
  char end;

  if (sscanf (text, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
              &end) != 6)
    return false;
  for (int i = 0; i < 6; i++)
    mac[i] = (unsigned char) v[i];
  return true;
}

/* The name of the network card whose address is @mac (as sysfs writes
 * it), into @ifname: 0, ENODEV when there is none, or an errno. A
 * bridge, VLAN or bond may show its card's MAC too: a device's own card
 * (with a `device` link) wins over them. */
int find_card (const char *mac, char *ifname)
{
  struct dirent *e;
  DIR *d;
  int err = ENODEV;
  bool own_device = false;

  if (!(d = opendir ("/sys/class/net")))
    return errno == ENOENT ? ENODEV : errno;
  while (!own_device && (e = readdir (d)))
    {
      char path[64 + sizeof e->d_name];
      char *address;
      bool same;

      if (e->d_name[0] == '.' || strlen (e->d_name) >= IFNAMSIZ)
        continue;
      snprintf (path, sizeof path, "/sys/class/net/%s/address", e->d_name);
      if (!(address = read_small_file (path, NULL)))
        continue;
      address[strcspn (address, "\n")] = 0;
      same = strcmp (address, mac) == 0;
      free (address);
      if (!same)
        continue;
      snprintf (path, sizeof path, "/sys/class/net/%s/device", e->d_name);
      own_device = access (path, F_OK) == 0;
      if (err == ENODEV || own_device)
        snprintf (ifname, IFNAMSIZ, "%s", e->d_name);
      err = 0;
    }
  closedir (d);
  return err;
}

/* `ip link set dev DEV address MAC`; @sock: any AF_INET socket. */
int set_card_mac (int sock, const char *ifname, const unsigned char mac[6])
{
  struct ifreq ifr;

  memset (&ifr, 0, sizeof ifr);
  snprintf (ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
  ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
  memcpy (ifr.ifr_hwaddr.sa_data, mac, 6);
  return ioctl (sock, SIOCSIFHWADDR, &ifr) < 0 ? errno : 0;
}

/* ------------------------------------------------------------------------ */
/* Files                                                                     */

/* Unless /etc/resolv.conf is a link (systemd-resolved's, say): the
 * gateway is the network's name server. */
static int write_resolv_conf (const char *gateway)
{
  struct stat st;
  char line[64];
  int n;

  if (lstat ("/etc/resolv.conf", &st) == 0 && S_ISLNK (st.st_mode))
    return 0;
  n = snprintf (line, sizeof line, "nameserver %s\n", gateway);
  return write_whole_file ("/etc/resolv.conf", line, (size_t) n, true);
}

static bool ends_with_qlean_mark (const char *l, size_t n)
{
  static const char mark[] = " # qlean";

  return n >= sizeof mark - 1 && memcmp (l + n - (sizeof mark - 1), mark, sizeof mark - 1) == 0;
}

/* Qlean's lines of /etc/hosts (those that end in " # qlean") become
 * @hosts, one "ADDRESS NAME" line each, after the file's other lines,
 * each of which keeps a newline (qlean-hosts-script-private.h). */
static int write_hosts (Span hosts)
{
  static const char mark[] = " # qlean\n";
  size_t len = 0, out_len = 0, n_hosts = 0;
  char *text = NULL, *out;
  int err;

  if (access ("/etc/hosts", F_OK) == 0 && !(text = read_small_file ("/etc/hosts", &len)))
    return errno;
  for (size_t i = 0; i < hosts.len; i++)
    n_hosts += hosts.p[i] == '\n';
  n_hosts += hosts.len > 0;
  /* The file's last line may lack its newline; each host line gets the
   * mark. */
  out = xmalloc (len + 1 + hosts.len + n_hosts * (sizeof mark - 1));
  for (size_t start = 0; start < len;)
    {
      const char *nl = memchr (text + start, '\n', len - start);
      size_t n = nl ? (size_t) (nl - (text + start)) : len - start;

      if (!ends_with_qlean_mark (text + start, n))
        {
          memcpy (out + out_len, text + start, n);
          out_len += n;
          out[out_len++] = '\n';
        }
      start += n + 1;
    }
  for (size_t start = 0; start < hosts.len;)
    {
      const unsigned char *nl = memchr (hosts.p + start, '\n', hosts.len - start);
      size_t n = nl ? (size_t) (nl - (hosts.p + start)) : hosts.len - start;

      memcpy (out + out_len, hosts.p + start, n);
      out_len += n;
      memcpy (out + out_len, mark, sizeof mark - 1);
      out_len += sizeof mark - 1;
      start += n + 1;
    }
  err = write_whole_file ("/etc/hosts", out, out_len, true);
  free (out);
  free (text);
  return err;
}

/* ------------------------------------------------------------------------ */
/* The request                                                               */

/* Does what FS NET CONFIGURE asks (see qlean-guest-protocol.h): 0, or
 * the errno of the first step that failed, with `*failed` saying which. */
int configure_network (const Req *r, const char **failed)
{
  char *card_mac = NULL, *new_mac = NULL, *addr = NULL, *gateway = NULL;
  char ifname[IFNAMSIZ] = "";
  unsigned char mac[6];
  struct in_addr local, gw;
  int sock = -1, nl = -1, ifindex = 0, err = 0;

  if (!r->has_old_mac || !r->has_addr || !r->has_prefix || !r->has_hosts)
    {
      *failed = "OLD_MAC, ADDR, PREFIX and HOSTS are required";
      return EINVAL;
    }
  card_mac = span_str (r->old_mac);
  addr = span_str (r->addr);
  new_mac = r->has_new_mac ? span_str (r->new_mac) : NULL;
  gateway = r->has_gateway ? span_str (r->gateway) : NULL;
  if (!card_mac || !addr || (r->has_new_mac && !new_mac) || (r->has_gateway && !gateway) ||
      inet_pton (AF_INET, addr, &local) != 1 || r->prefix > 32 ||
      (gateway && inet_pton (AF_INET, gateway, &gw) != 1) || (new_mac && !parse_mac (new_mac, mac)))
    {
      *failed = "a malformed address";
      err = EINVAL;
      goto out;
    }

  if ((err = find_card (card_mac, ifname)))
    {
      *failed = err == ENODEV ? "no network card has that MAC address" : "cannot list cards";
      goto out;
    }
  if ((ifindex = (int) if_nametoindex (ifname)) == 0 ||
      (sock = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
      (nl = socket (AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE)) < 0)
    {
      err = errno ? errno : ENODEV;
      *failed = "cannot reach the network card";
      goto out;
    }
  /* The kernel answers at once; should it not, the host still gets an
   * answer (and goes the script's way) instead of a stuck qlean-guest. */
  setsockopt (nl, SOL_SOCKET, SO_RCVTIMEO, &(struct timeval) { .tv_sec = 5 }, sizeof (struct timeval));

  /* A taken spare's card gets the machine's MAC as it comes up again:
   * down, it drops its IPv6 link-local address, made from the MAC every
   * spare has, and up, it makes its own. */
  if (new_mac && ((err = set_link_up (sock, ifname, false)) || (err = set_card_mac (sock, ifname, mac))))
    *failed = "cannot give the network card its MAC address";
  else if ((err = set_link_up (sock, ifname, true)))
    *failed = "cannot bring the network card up";
  else if ((err = flush_ipv4 (nl, ifindex)))
    *failed = "cannot remove the card's IPv4 addresses";
  else if ((err = add_ipv4 (nl, ifindex, local, r->prefix)))
    *failed = "cannot add the card's address";
  else if (gateway && (err = replace_default_route (nl, ifindex, gw)))
    *failed = "cannot set the default route";
  else
    {
      /* The script goes on when it cannot write /etc/resolv.conf (a
       * read-only one, say), and so does this. */
      if (gateway && (err = write_resolv_conf (gateway)))
        logmsg ("cannot write /etc/resolv.conf: %s", strerror (err));
      if ((err = write_hosts (r->hosts)))
        *failed = "cannot write /etc/hosts";
    }

out:
  if (sock >= 0)
    close (sock);
  if (nl >= 0)
    close (nl);
  free (card_mac);
  free (new_mac);
  free (addr);
  free (gateway);
  return err;
}
