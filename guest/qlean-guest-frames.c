/* qlean-guest-frames.c: frames to the host, requests from it
 *
 * SPDX-License-Identifier: MIT
 *
 * What every other file of the guest program builds on: allocation that
 * cannot fail (a guest out of memory has nothing better to do than
 * abort), logging, and the two ends of a frame's life that do not care
 * about the port: building a frame and putting it on the output queue
 * (qlean-guest-port.c writes the queue out), and parsing a request's TLV
 * list into a Req.
 */

#include "qlean-guest-private.h"

/* ------------------------------------------------------------------------ */
/* Little helpers                                                            */

void logmsg (const char *fmt, ...)
{
  char buf[1024];
  va_list ap;
  int n;

  va_start (ap, fmt);
  n = vsnprintf (buf, sizeof buf - 1, fmt, ap);
  va_end (ap);
  if (n < 0)
    return;
  if ((size_t) n > sizeof buf - 2)
    n = sizeof buf - 2;
  buf[n++] = '\n';
  (void) !write (2, "qlean-guest: ", 13);
  (void) !write (2, buf, (size_t) n);
}

static void __attribute__ ((noreturn)) die_oom (void)
{
  static const char msg[] = "qlean-guest: out of memory\n";
  (void) !write (2, msg, sizeof msg - 1);
  abort ();
}

void *xmalloc (size_t n)
{
  void *p = malloc (n ? n : 1);
  if (!p)
    die_oom ();
  return p;
}

void *xrealloc (void *p, size_t n)
{
  p = realloc (p, n ? n : 1);
  if (!p)
    die_oom ();
  return p;
}

char *xstrdup (const char *s)
{
  size_t n = strlen (s) + 1;
  return memcpy (xmalloc (n), s, n);
}

/* A whole small file, NUL-terminated (its length in *len), or NULL
 * with errno set: a failed read is not taken for its end, so that a
 * caller that rewrites the file never writes a truncated copy. */
char *read_small_file (const char *path, size_t *len)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  size_t cap = 4096, n = 0;
  char *buf;

  if (fd < 0)
    return NULL;
  buf = xmalloc (cap + 1);
  for (;;)
    {
      ssize_t r;
      if (n == cap)
        {
          cap *= 2;
          buf = xrealloc (buf, cap + 1);
        }
      r = read (fd, buf + n, cap - n);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        {
          int err = errno;
          free (buf);
          close (fd);
          errno = err;
          return NULL;
        }
      if (r == 0)
        break;
      n += (size_t) r;
    }
  close (fd);
  buf[n] = 0;
  if (len)
    *len = n;
  return buf;
}

/* Appends `s` to `out` (of `cap` bytes, at `*len`) with every byte that
 * is not part of valid UTF-8 written as \xNN, so that messages naming
 * arbitrary paths stay valid UTF-8. */
static void utf8_sanitize (const unsigned char *s, size_t n, char *out, size_t cap, size_t *len)
{
  size_t i = 0;
  while (i < n && *len + 4 < cap)
    {
      unsigned char c = s[i];
      size_t need = 0;
      uint32_t cp = 0, min = 0;
      bool ok = true;

      if (c < 0x80)
        {
          out[(*len)++] = (char) c;
          i++;
          continue;
        }
      if ((c & 0xE0) == 0xC0)
        need = 1, cp = c & 0x1F, min = 0x80;
      else if ((c & 0xF0) == 0xE0)
        need = 2, cp = c & 0x0F, min = 0x800;
      else if ((c & 0xF8) == 0xF0)
        need = 3, cp = c & 0x07, min = 0x10000;
      else
        ok = false;
      for (size_t k = 1; ok && k <= need; k++)
        {
          if (i + k >= n || (s[i + k] & 0xC0) != 0x80)
            ok = false;
          else
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
      if (ok && (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)))
        ok = false;
      if (ok)
        {
          if (*len + need + 1 >= cap)
            break;
          memcpy (out + *len, s + i, need + 1);
          *len += need + 1;
          i += need + 1;
        }
      else
        {
          static const char hex[] = "0123456789abcdef";
          out[(*len)++] = '\\';
          out[(*len)++] = 'x';
          out[(*len)++] = hex[c >> 4];
          out[(*len)++] = hex[c & 15];
          i++;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Output frames                                                             */

OutBuf *ob_new (size_t payload_hint)
{
  OutBuf *ob = xmalloc (sizeof *ob + HDR + payload_hint);
  ob->next = NULL;
  ob->len = HDR;
  ob->off = 0;
  ob->cap = HDR + payload_hint;
  ob->src = NULL;
  ob->src_off = 0;
  ob->src_left = 0;
  ob->src_copy = ob->src_zero = false;
  return ob;
}

FileRef *fileref_new (int fd)
{
  FileRef *fr = xmalloc (sizeof *fr);
  memset (fr, 0, sizeof *fr);
  fr->fd = fd;
  fr->refs = 1;
  return fr;
}

void fileref_unref (FileRef *fr)
{
  if (fr && --fr->refs == 0)
    {
      close (fr->fd);
      free (fr);
    }
}

/* Frees a frame; what it still owed from its file counts as sent. */
void ob_free (OutBuf *ob)
{
  if (ob->src)
    {
      ob->src->sent += ob->src_left;
      fileref_unref (ob->src);
    }
  free (ob);
}

/* Makes room for `n` more bytes and returns where they go. */
unsigned char *ob_grow (OutBuf **obp, size_t n)
{
  OutBuf *ob = *obp;
  unsigned char *p;

  if (ob->len + n > ob->cap)
    {
      size_t cap = ob->cap * 2;
      if (cap < ob->len + n)
        cap = ob->len + n;
      ob = xrealloc (ob, sizeof *ob + cap);
      ob->cap = cap;
      *obp = ob;
    }
  p = ob->data + ob->len;
  ob->len += n;
  return p;
}

void ob_tlv (OutBuf **obp, uint16_t tag, const void *v, size_t n)
{
  unsigned char *p = ob_grow (obp, 6 + n);
  put_u16 (p, tag);
  put_u32 (p + 2, (uint32_t) n);
  if (n)
    memcpy (p + 6, v, n);
}

void ob_tlv_u32 (OutBuf **obp, uint16_t tag, uint32_t v)
{
  unsigned char b[4];
  put_u32 (b, v);
  ob_tlv (obp, tag, b, 4);
}

void ob_tlv_u64 (OutBuf **obp, uint16_t tag, uint64_t v)
{
  unsigned char b[8];
  put_u64 (b, v);
  ob_tlv (obp, tag, b, 8);
}

size_t ob_payload (const OutBuf *ob)
{
  return ob->len - HDR;
}

/* Fills in the header and queues the frame; while no host is synced to
 * us, drops it. Takes `ob`. */
void ob_send (OutBuf *ob, uint8_t type, uint8_t fd, uint32_t stream)
{
  unsigned char *h = ob->data;

  put_u32 (h, QLEAN_GUEST_MAGIC);
  h[4] = type;
  h[5] = fd;
  put_u16 (h + 6, 0);
  put_u32 (h + 8, stream);
  put_u32 (h + 12, (uint32_t) (ob->len - HDR + ob->src_left));
  if (!G.synced || G.port_fd < 0)
    {
      ob_free (ob);
      return;
    }
  ob->next = NULL;
  if (G.out_tail)
    G.out_tail->next = ob;
  else
    G.out_head = ob;
  G.out_tail = ob;
  G.out_bytes += ob->len + ob->src_left;
}

void send_frame (uint8_t type, uint8_t fd, uint32_t stream, const void *payload, size_t n)
{
  OutBuf *ob;

  if (!G.synced)
    return;
  ob = ob_new (n);
  if (n)
    memcpy (ob_grow (&ob, n), payload, n);
  ob_send (ob, type, fd, stream);
}

void send_u32 (uint8_t type, uint8_t fd, uint32_t stream, uint32_t v)
{
  unsigned char b[4];
  put_u32 (b, v);
  send_frame (type, fd, stream, b, 4);
}

/* ERROR: i32 errno, then a UTF-8 message. */
void send_error (uint32_t stream, int err, const char *fmt, ...)
{
  char raw[8192], clean[8192 + 4];
  size_t n = 0;
  va_list ap;
  int r;
  unsigned char b[4];
  OutBuf *ob;

  if (!G.synced)
    return;
  va_start (ap, fmt);
  r = vsnprintf (raw, sizeof raw, fmt, ap);
  va_end (ap);
  if (r < 0)
    r = 0;
  if ((size_t) r >= sizeof raw)
    r = sizeof raw - 1;
  utf8_sanitize ((const unsigned char *) raw, (size_t) r, clean, sizeof clean, &n);
  ob = ob_new (4 + n);
  put_u32 (b, (uint32_t) err);
  memcpy (ob_grow (&ob, 4), b, 4);
  memcpy (ob_grow (&ob, n), clean, n);
  ob_send (ob, QLEAN_GUEST_FRAME_ERROR, 0, stream);
}

/* Drops queued output; a partly written head frame is kept (and
 * finished) unless `all`. */
void out_drop (bool all)
{
  OutBuf *ob = G.out_head, *keep = NULL;

  if (!all && ob && ob->off > 0)
    {
      keep = ob;
      ob = ob->next;
      keep->next = NULL;
    }
  while (ob)
    {
      OutBuf *next = ob->next;
      ob_free (ob);
      ob = next;
    }
  G.out_head = G.out_tail = keep;
  G.out_bytes = keep ? keep->len - keep->off + keep->src_left : 0;
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                  */

static void span_push (Span **v, size_t *n, size_t *cap, Span sp)
{
  if (*n == *cap)
    {
      *cap = *cap ? *cap * 2 : 8;
      *v = xrealloc (*v, *cap * sizeof **v);
    }
  (*v)[(*n)++] = sp;
}

void req_free (Req *r)
{
  free (r->args);
  free (r->envs);
}

/* Parses a TLV list. Unknown tags are skipped; a single-valued tag that
 * repeats keeps its last value. Returns false with `*why` on a truncated
 * entry or a number of the wrong size. */
static bool req_parse (const unsigned char *p, uint32_t len, Req *r, const char **why)
{
  size_t off = 0;

  memset (r, 0, sizeof *r);
  while (off < len)
    {
      uint16_t tag;
      uint32_t n;
      Span sp;

      if (len - off < 6)
        {
          *why = "truncated TLV header";
          return false;
        }
      tag = get_u16 (p + off);
      n = get_u32 (p + off + 2);
      off += 6;
      if (n > len - off)
        {
          *why = "TLV longer than its frame";
          return false;
        }
      sp.p = p + off;
      sp.len = n;
      off += n;
      switch (tag)
        {
        case QLEAN_GUEST_TAG_ARG:
          span_push (&r->args, &r->n_args, &r->cap_args, sp);
          break;
        case QLEAN_GUEST_TAG_ENV:
          span_push (&r->envs, &r->n_envs, &r->cap_envs, sp);
          break;
        case QLEAN_GUEST_TAG_CWD:
          r->cwd = sp, r->has_cwd = true;
          break;
        case QLEAN_GUEST_TAG_USER:
          r->user = sp, r->has_user = true;
          break;
        case QLEAN_GUEST_TAG_PATH:
          r->path = sp, r->has_path = true;
          break;
        case QLEAN_GUEST_TAG_PATH2:
          r->path2 = sp, r->has_path2 = true;
          break;
        case QLEAN_GUEST_TAG_ADDR:
          r->addr = sp, r->has_addr = true;
          break;
        case QLEAN_GUEST_TAG_HOSTNAME:
          r->hostname = sp, r->has_hostname = true;
          break;
        case QLEAN_GUEST_TAG_MACHINE_ID:
          r->machine_id = sp, r->has_machine_id = true;
          break;
        case QLEAN_GUEST_TAG_SEED:
          r->seed = sp, r->has_seed = true;
          break;
        case QLEAN_GUEST_TAG_OLD_MAC:
          r->old_mac = sp, r->has_old_mac = true;
          break;
        case QLEAN_GUEST_TAG_NEW_MAC:
          r->new_mac = sp, r->has_new_mac = true;
          break;
        case QLEAN_GUEST_TAG_GATEWAY:
          r->gateway = sp, r->has_gateway = true;
          break;
        case QLEAN_GUEST_TAG_HOSTS:
          r->hosts = sp, r->has_hosts = true;
          break;
        case QLEAN_GUEST_TAG_FLAGS:
        case QLEAN_GUEST_TAG_MODE:
        case QLEAN_GUEST_TAG_OP:
        case QLEAN_GUEST_TAG_PORT:
        case QLEAN_GUEST_TAG_PREFIX:
          if (n != 4)
            {
              *why = "FLAGS, MODE, OP, PORT and PREFIX must be 4 bytes";
              return false;
            }
          if (tag == QLEAN_GUEST_TAG_FLAGS)
            r->flags = get_u32 (sp.p);
          else if (tag == QLEAN_GUEST_TAG_MODE)
            r->mode = get_u32 (sp.p), r->has_mode = true;
          else if (tag == QLEAN_GUEST_TAG_PORT)
            r->port = get_u32 (sp.p), r->has_port = true;
          else if (tag == QLEAN_GUEST_TAG_PREFIX)
            r->prefix = get_u32 (sp.p), r->has_prefix = true;
          else
            r->op = get_u32 (sp.p), r->has_op = true;
          break;
        case QLEAN_GUEST_TAG_WINSIZE:
          if (n != 4)
            {
              *why = "WINSIZE must be 4 bytes";
              return false;
            }
          r->rows = get_u16 (sp.p);
          r->cols = get_u16 (sp.p + 2);
          r->has_winsize = true;
          break;
        case QLEAN_GUEST_TAG_MTIME:
          if (n != 8)
            {
              *why = "MTIME must be 8 bytes";
              return false;
            }
          r->mtime = (int64_t) get_u64 (sp.p);
          r->has_mtime = true;
          break;
        default:
          break;
        }
    }
  return true;
}

/* A NUL-terminated copy, or NULL if the bytes contain a NUL. */
char *span_str (Span sp)
{
  char *s;
  if (memchr (sp.p, 0, sp.len))
    return NULL;
  s = xmalloc (sp.len + 1);
  memcpy (s, sp.p, sp.len);
  s[sp.len] = 0;
  return s;
}

/* Parses the TLVs of a `what` request (EXEC, PUT...): false, with
 * ERROR EPROTO sent, when they are malformed. */
bool req_parse_request (uint32_t id, const char *what, const unsigned char *payload, uint32_t len, Req *r)
{
  const char *why = NULL;

  if (req_parse (payload, len, r, &why))
    return true;
  send_error (id, EPROTO, "malformed %s request: %s", what, why);
  req_free (r);
  return false;
}

/* The request's PATH as a string, or NULL with ERROR EINVAL sent when
 * it has none or it holds a NUL byte. */
char *req_path (uint32_t id, const char *what, const Req *r)
{
  char *path = NULL;

  if (!r->has_path || !(path = span_str (r->path)))
    {
      if (r->has_path)
        send_error (id, EINVAL, "PATH contains a NUL byte");
      else
        send_error (id, EINVAL, "%s request without PATH", what);
    }
  return path;
}
