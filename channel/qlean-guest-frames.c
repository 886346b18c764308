/* qlean-guest-frames.c: the wire format of qlean-guest's data channel
 *
 * TLV payloads, frames and the errors the guest sends, as pure functions
 * of bytes: no channel, no stream, no thread. Apart from the channel so
 * that the format (see qlean-guest-protocol.h) reads in one place, and so
 * that the frame fuzzer exercises exactly this.
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>
#include <glib/gi18n-lib.h>

#include "qlean-guest-channel-internal.h"

/* TLV */

struct _QleanGuestTlv
{
  GByteArray *bytes;
};

QleanGuestTlv *
qlean_guest_tlv_new (void)
{
  QleanGuestTlv *tlv = g_new0 (QleanGuestTlv, 1);

  tlv->bytes = g_byte_array_new ();
  return tlv;
}

void
qlean_guest_tlv_free (QleanGuestTlv *tlv)
{
  if (tlv == NULL)
    return;

  g_byte_array_unref (tlv->bytes);
  g_free (tlv);
}

guint32
qlean_guest_read_u32 (const guint8 *p)
{
  return (guint32) p[0] | ((guint32) p[1] << 8) | ((guint32) p[2] << 16) | ((guint32) p[3] << 24);
}

guint64
qlean_guest_read_u64 (const guint8 *p)
{
  return (guint64) qlean_guest_read_u32 (p) | ((guint64) qlean_guest_read_u32 (p + 4) << 32);
}

void
qlean_guest_tlv_add (QleanGuestTlv *tlv,
                     guint16        tag,
                     gconstpointer  data,
                     gsize          len)
{
  guint8 head[6];

  g_return_if_fail (len <= G_MAXUINT32);

  put_u16 (head, tag);
  put_u32 (head + 2, (guint32) len);
  g_byte_array_append (tlv->bytes, head, sizeof head);
  g_byte_array_append (tlv->bytes, data, len);
}

void
qlean_guest_tlv_add_string (QleanGuestTlv *tlv,
                            guint16        tag,
                            const char    *value)
{
  qlean_guest_tlv_add (tlv, tag, value, strlen (value));
}

void
qlean_guest_tlv_add_u32 (QleanGuestTlv *tlv,
                         guint16        tag,
                         guint32        value)
{
  guint8 bytes[4];

  put_u32 (bytes, value);
  qlean_guest_tlv_add (tlv, tag, bytes, sizeof bytes);
}

void
qlean_guest_tlv_add_i64 (QleanGuestTlv *tlv,
                         guint16        tag,
                         gint64         value)
{
  guint8 bytes[8];

  put_u64 (bytes, (guint64) value);
  qlean_guest_tlv_add (tlv, tag, bytes, sizeof bytes);
}

GBytes *
qlean_guest_tlv_free_to_bytes (QleanGuestTlv *tlv)
{
  GBytes *bytes = g_byte_array_free_to_bytes (g_steal_pointer (&tlv->bytes));

  g_free (tlv);
  return bytes;
}

void
qlean_guest_tlv_iter_init (QleanGuestTlvIter *iter,
                           GBytes            *payload)
{
  iter->data = payload ? g_bytes_get_data (payload, &iter->len) : NULL;
  if (iter->data == NULL)
    iter->len = 0;
  iter->offset = 0;
}

gboolean
qlean_guest_tlv_iter_next (QleanGuestTlvIter  *iter,
                           guint16            *tag,
                           const guint8      **value,
                           gsize              *len,
                           gboolean           *malformed)
{
  guint32 entry_len;

  if (malformed != NULL)
    *malformed = FALSE;

  if (iter->offset == iter->len)
    return FALSE;

  if (iter->len - iter->offset < 6)
    goto bad;

  *tag = (guint16) (iter->data[iter->offset] | (iter->data[iter->offset + 1] << 8));
  entry_len = qlean_guest_read_u32 (iter->data + iter->offset + 2);
  if (entry_len > iter->len - iter->offset - 6)
    goto bad;

  *value = iter->data + iter->offset + 6;
  *len = entry_len;
  iter->offset += 6 + entry_len;
  return TRUE;

bad:
  if (malformed != NULL)
    *malformed = TRUE;
  iter->offset = iter->len;
  return FALSE;
}

gboolean
qlean_guest_decode_stat (const guint8   *value,
                         gsize           len,
                         QleanGuestStat *stat)
{
  if (len < QLEAN_GUEST_STAT_SIZE)
    return FALSE;

  stat->ino = qlean_guest_read_u64 (value);
  stat->size = qlean_guest_read_u64 (value + 8);
  stat->mode = qlean_guest_read_u32 (value + 16);
  stat->uid = qlean_guest_read_u32 (value + 20);
  stat->gid = qlean_guest_read_u32 (value + 24);
  stat->nlink = qlean_guest_read_u32 (value + 28);
  stat->atime_ns = (gint64) qlean_guest_read_u64 (value + 32);
  stat->mtime_ns = (gint64) qlean_guest_read_u64 (value + 40);
  stat->ctime_ns = (gint64) qlean_guest_read_u64 (value + 48);

  return TRUE;
}

GError *
qlean_guest_error_from_payload (GBytes     *payload,
                                const char *what)
{
  gsize len = 0;
  const guint8 *data = payload ? g_bytes_get_data (payload, &len) : NULL;
  g_autofree char *message = NULL;
  int err = 0;

  if (data != NULL && len >= 4)
    {
      err = (int) qlean_guest_read_u32 (data);
      message = g_utf8_make_valid ((const char *) data + 4, len - 4);
    }

  if (message == NULL || *message == '\0')
    {
      g_free (message);
      message = g_strdup (err ? g_strerror (err) : _("unknown error"));
    }

  return g_error_new (G_IO_ERROR, err ? g_io_error_from_errno (err) : G_IO_ERROR_FAILED,
                      "%s: %s", what, message);
}

/* Frames */

GBytes *
qlean_guest_frame_new (guint8        type,
                       guint8        fd,
                       guint32       stream,
                       gconstpointer payload,
                       gsize         len)
{
  guint8 *frame = g_malloc (QLEAN_GUEST_HEADER_SIZE + len);

  put_u32 (frame, QLEAN_GUEST_MAGIC);
  frame[4] = type;
  frame[5] = fd;
  put_u16 (frame + 6, 0);
  put_u32 (frame + 8, stream);
  put_u32 (frame + 12, (guint32) len);
  if (len > 0)
    memcpy (frame + QLEAN_GUEST_HEADER_SIZE, payload, len);

  return g_bytes_new_take (frame, QLEAN_GUEST_HEADER_SIZE + len);
}

GBytes *
qlean_guest_frame_header_new (guint8  type,
                              guint8  fd,
                              guint32 stream,
                              gsize   len)
{
  guint8 header[QLEAN_GUEST_HEADER_SIZE];

  put_u32 (header, QLEAN_GUEST_MAGIC);
  header[4] = type;
  header[5] = fd;
  put_u16 (header + 6, 0);
  put_u32 (header + 8, stream);
  put_u32 (header + 12, (guint32) len);

  return g_bytes_new (header, sizeof header);
}

gsize
qlean_guest_frames_parse (const guint8          *data,
                          gsize                  len,
                          QleanGuestFrameFunc    func,
                          gpointer               user_data)
{
  gsize offset = 0;

  while (len - offset >= QLEAN_GUEST_HEADER_SIZE)
    {
      const guint8 *p = data + offset;
      guint32 payload_len;

      /* A bad header is debris from an earlier peer (or a bug): skip
       * ahead to the next magic. */
      if (qlean_guest_read_u32 (p) != QLEAN_GUEST_MAGIC ||
          (payload_len = qlean_guest_read_u32 (p + 12)) > QLEAN_GUEST_MAX_PAYLOAD)
        {
          offset++;
          continue;
        }

      if (len - offset - QLEAN_GUEST_HEADER_SIZE < payload_len)
        break;

      offset += QLEAN_GUEST_HEADER_SIZE + payload_len;
      if (!func (p[4], p[5], qlean_guest_read_u32 (p + 8), p + QLEAN_GUEST_HEADER_SIZE,
                 payload_len, user_data))
        break;
    }

  return offset;
}
