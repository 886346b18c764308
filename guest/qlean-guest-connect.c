/* qlean-guest-connect.c: CONNECT, a TCP connection as a stream
 *
 * SPDX-License-Identifier: MIT
 *
 * A non-blocking socket in the same loop, flow controlled both ways:
 * the host's DATA under the usual window, ours under the window the
 * host credits back, so a forwarded port never buffers more than a
 * window per connection on either side.
 */

#include "qlean-guest-private.h"

/* ------------------------------------------------------------------------ */
/* Connections (CONNECT)                                                     */

static void connect_maybe_finish (Stream *s)
{
  if (s->dead || !s->eof_out || !s->eof_in || !s->wr_closed || s->q_head)
    return;
  stream_flush_credit (s);
  send_frame (QLEAN_GUEST_FRAME_DONE, 0, s->id, NULL, 0);
  stream_close (s, false);
}

/* Writes queued DATA fd 0 to the socket; after the host's EOF, shuts
 * down the sending side. A peer that no longer takes data gets the rest
 * credited and dropped, as a process that stops reading its stdin. */
void connect_flush (Stream *s)
{
  if (!s->wr_closed && !stdin_queue_write (s, s->sock, true))
    s->wr_closed = true;
  if (s->wr_closed)
    stdin_queue_free (s);
  else if (!s->q_head && s->eof_in)
    {
      shutdown (s->sock, SHUT_WR);
      s->wr_closed = true;
    }
  connect_maybe_finish (s);
}

void connect_data (Stream *s, const unsigned char *p, uint32_t len)
{
  if (s->eof_in)
    {
      stream_abort (s, EPROTO, "stream %u: DATA after EOF", s->id);
      return;
    }
  if (!window_take (s, len))
    return;
  if (s->wr_closed)
    {
      s->credit_pending += len;
      return;
    }
  stdin_queue_push (s, p, len);
  if (!s->connecting)
    connect_flush (s);
}

/* Reads what the window the host credited allows. */
static void connect_read (Stream *s)
{
  static unsigned char buf[PIPE_CHUNK];
  uint64_t room = QLEAN_GUEST_WINDOW - s->out_unacked;
  ssize_t n;

  if (s->eof_out || s->out_unacked >= QLEAN_GUEST_WINDOW)
    return;
  n = recv (s->sock, buf, room < sizeof buf ? (size_t) room : sizeof buf, 0);
  if (n > 0)
    {
      s->out_unacked += (uint64_t) n;
      send_frame (QLEAN_GUEST_FRAME_DATA, 1, s->id, buf, (size_t) n);
      return;
    }
  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return;
  if (n < 0)
    {
      int err = errno;
      stream_abort (s, err, "connection to port %u: %s", s->port, strerror (err));
      return;
    }
  s->eof_out = true;
  send_frame (QLEAN_GUEST_FRAME_EOF, 1, s->id, NULL, 0);
  connect_maybe_finish (s);
}

/* connect() finished: STARTED, then what the host sent meanwhile. */
static void connect_done (Stream *s)
{
  int err = 0;
  socklen_t len = sizeof err;

  if (getsockopt (s->sock, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
    err = errno;
  if (err)
    {
      stream_abort (s, err, "cannot connect to port %u: %s", s->port, strerror (err));
      return;
    }
  s->connecting = false;
  send_frame (QLEAN_GUEST_FRAME_STARTED, 0, s->id, NULL, 0);
  connect_flush (s);
}

void connect_event (Stream *s, short revents)
{
  if (s->connecting)
    {
      connect_done (s);
      return;
    }
  if (s->q_head && (revents & (POLLOUT | POLLERR | POLLHUP)))
    connect_flush (s);
  if (!s->dead && (revents & (POLLIN | POLLERR | POLLHUP)))
    connect_read (s);
}

/* The host gave up on the connection: the peer sees a reset, not an
 * orderly end, as it would if a client on the host had died. */
void connect_reset (Stream *s)
{
  struct linger lg = { .l_onoff = 1, .l_linger = 0 };

  setsockopt (s->sock, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  stream_abort (s, ECANCELED, "stream %u: cancelled", s->id);
}

void handle_connect (uint32_t id, const unsigned char *payload, uint32_t len)
{
  Req r;
  char *addr = NULL;
  union
  {
    struct sockaddr     sa;
    struct sockaddr_in  in4;
    struct sockaddr_in6 in6;
  } sa;
  socklen_t sa_len;
  int fd, one = 1;
  Stream *s;

  memset (&sa, 0, sizeof sa);
  if (!req_parse_request (id, "CONNECT", payload, len, &r))
    return;
  if (!r.has_port || r.port == 0 || r.port > 65535)
    {
      send_error (id, EINVAL, r.has_port ? "PORT %u is not a TCP port" : "CONNECT request without PORT",
                  r.port);
      goto out;
    }
  if (r.has_addr && !(addr = span_str (r.addr)))
    {
      send_error (id, EINVAL, "ADDR contains a NUL byte");
      goto out;
    }
  if (!addr || inet_pton (AF_INET, addr, &sa.in4.sin_addr) == 1)
    {
      sa.in4.sin_family = AF_INET;
      sa.in4.sin_port = htons ((uint16_t) r.port);
      if (!addr)
        sa.in4.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
      sa_len = sizeof sa.in4;
    }
  else if (inet_pton (AF_INET6, addr, &sa.in6.sin6_addr) == 1)
    {
      sa.in6.sin6_family = AF_INET6;
      sa.in6.sin6_port = htons ((uint16_t) r.port);
      sa_len = sizeof sa.in6;
    }
  else
    {
      send_error (id, EINVAL, "ADDR '%s' is not a numeric IPv4 or IPv6 address", addr);
      goto out;
    }

  fd = socket (sa.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    {
      int err = errno;
      send_error (id, err, "cannot create a socket: %s", strerror (err));
      goto out;
    }
  /* A forwarded connection carries what the host's client wrote, when it
   * wrote it: batching is the client's business, not ours. */
  setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  s = stream_new (id, STREAM_CONNECT);
  s->sock = fd;
  s->port = r.port;
  if (connect (fd, &sa.sa, sa_len) == 0)
    send_frame (QLEAN_GUEST_FRAME_STARTED, 0, id, NULL, 0);
  else if (errno == EINPROGRESS || errno == EINTR)
    s->connecting = true;
  else
    {
      int err = errno;
      stream_abort (s, err, "cannot connect to port %u: %s", r.port, strerror (err));
    }

out:
  free (addr);
  req_free (&r);
}
