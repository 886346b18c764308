/* fuzz-guest-frames.c: libFuzzer target for the qlean-guest frame parser
 *
 * SPDX-License-Identifier: MIT
 *
 * What qlean-guest writes on the data port, cut into reads at every
 * possible place (the first byte picks the cuts): frames are parsed as
 * the channel does, keeping the unconsumed tail, and each payload goes
 * through the TLV iterator, the STAT decoder and the ERROR decoder.
 */

#include "config.h"

#include <stdint.h>
#include <string.h>

#include "fuzz-peer.h"
#include "qlean-guest-channel-private.h"

int LLVMFuzzerInitialize   (int            *argc,
                            char         ***argv);
int LLVMFuzzerTestOneInput (const uint8_t  *data,
                            size_t          size);

typedef struct
{
  const guint8 *start;
  gsize         len;
  guint         frames;
  gboolean      stopped;
} Parse;

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  fuzz_init_glib ();
  return 0;
}

static void
walk_tlvs (GBytes *payload)
{
  QleanGuestTlvIter iter;
  const guint8 *value;
  gboolean malformed;
  guint16 tag;
  gsize len;
  gsize total = g_bytes_get_size (payload);
  gsize seen = 0;

  qlean_guest_tlv_iter_init (&iter, payload);
  while (qlean_guest_tlv_iter_next (&iter, &tag, &value, &len, &malformed))
    {
      QleanGuestStat stat;
      const guint8 *base = g_bytes_get_data (payload, NULL);

      /* Every value lies inside the payload. */
      g_assert_true (value >= base && value + len <= base + total);
      seen += 6 + len;
      g_assert_cmpuint (seen, <=, total);

      if ((tag == QLEAN_GUEST_TAG_STAT || tag == QLEAN_GUEST_TAG_DIRENT) &&
          qlean_guest_decode_stat (value, len, &stat))
        g_assert_cmpuint (len, >=, QLEAN_GUEST_STAT_SIZE);
      if (tag == QLEAN_GUEST_TAG_SIZE && len >= 8)
        (void) qlean_guest_read_u64 (value);
    }
  g_assert_cmpuint (iter.offset, ==, iter.len);
}

static gboolean
frame_cb (guint8        type,
          guint8        fd,
          guint32       stream,
          const guint8 *payload,
          gsize         len,
          gpointer      user_data)
{
  Parse *parse = user_data;
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(GError) error = NULL;

  /* The payload lies inside what was parsed, after a whole header. */
  g_assert_true (payload >= parse->start + QLEAN_GUEST_HEADER_SIZE);
  g_assert_true (payload + len <= parse->start + parse->len);
  g_assert_cmpuint (len, <=, QLEAN_GUEST_MAX_PAYLOAD);
  g_assert_cmpuint (qlean_guest_read_u32 (payload - QLEAN_GUEST_HEADER_SIZE), ==, QLEAN_GUEST_MAGIC);

  bytes = g_bytes_new (payload, len);
  walk_tlvs (bytes);

  error = qlean_guest_error_from_payload (bytes, "fuzz");
  g_assert_true (error->domain == G_IO_ERROR);
  g_assert_true (g_utf8_validate (error->message, -1, NULL));

  parse->frames++;
  /* Stop early now and then, as the channel does once it closes. */
  parse->stopped = (type ^ fd ^ stream) == 0xff;
  return !parse->stopped;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autoptr(GByteArray) in = g_byte_array_new ();
  gboolean stopped = FALSE;
  guint cut_seed;
  size_t offset = 0;

  if (size == 0)
    return 0;

  cut_seed = data[0];
  data++;
  size--;

  while (offset < size)
    {
      size_t chunk = 1 + (cut_seed + offset) % 61;
      Parse parse = { 0 };
      gsize consumed;

      chunk = MIN (chunk, size - offset);
      g_byte_array_append (in, data + offset, chunk);
      offset += chunk;
      cut_seed = cut_seed * 33 + 7;

      parse.start = in->data;
      parse.len = in->len;
      consumed = qlean_guest_frames_parse (in->data, in->len, frame_cb, &parse);
      g_assert_cmpuint (consumed, <=, in->len);
      g_byte_array_remove_range (in, 0, consumed);
      stopped = parse.stopped;
    }

  /* A frame the parser kept waiting for is incomplete, or starts with a
   * header that is not (yet) valid: never a whole, valid frame. */
  if (!stopped && in->len >= QLEAN_GUEST_HEADER_SIZE &&
      qlean_guest_read_u32 (in->data) == QLEAN_GUEST_MAGIC &&
      qlean_guest_read_u32 (in->data + 12) <= QLEAN_GUEST_MAX_PAYLOAD)
    g_assert_cmpuint (in->len, <, QLEAN_GUEST_HEADER_SIZE + qlean_guest_read_u32 (in->data + 12));

  return 0;
}
