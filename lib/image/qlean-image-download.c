/* qlean-image-download.c: downloads, with libcurl
 *
 * SPDX-License-Identifier: MIT
 *
 * Everything here blocks: it runs on a GTask worker thread, never on a
 * caller's main loop. libcurl's easy interface on that thread is the
 * simplest correct way to stream a multi-gigabyte file to disk while
 * hashing it; progress goes out through a callback that only records
 * numbers. What a download brings is checked in qlean-image-digest.c and
 * kept in the cache of qlean-image-cache.c.
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <curl/curl.h>
#include <glib/gstdio.h>
#include <glib/gi18n-lib.h>

#include "qlean-error.h"
#include "qlean-image-download-private.h"
#include "qlean-util-private.h"
#include "qlean-errno-private.h"

#define USER_AGENT "qlean/" PACKAGE_VERSION
/* A connection that drops mid-file is retried (with a Range request)
 * this many times, as long as each attempt got some data. */
#define MAX_ATTEMPTS 5
#define HASH_BUFFER_SIZE (1024 * 1024)
/* Distributions' servers redirect once or twice (to a mirror, to a
 * CDN); a longer chain is a misconfigured or hostile server. */
#define MAX_REDIRECTS 5


/* libcurl */

/* Set by tests only: a CA certificate to trust for a local HTTPS server. */
static char *test_ca_file;

void
qlean_download_set_test_ca_file (const char *path)
{
  g_free (test_ca_file);
  test_ca_file = g_strdup (path);
}

const char *
qlean_download_redirect_protocols (const char *url)
{
  /* HTTPS is what makes a checksum file (and the image it names) come
   * from the distribution: a redirect to plain HTTP would hand both to
   * whoever sits on the path. Redirects never go to file:// (a server
   * could make Qlean read host files) nor to any other protocol. */
  if (url != NULL && g_ascii_strncasecmp (url, "https://", strlen ("https://")) == 0)
    return "https";

  return "http,https";
}

/* Whether a transfer of @url is still on a scheme @url allows: one that
 * started over HTTPS must never go on over anything else. The redirect
 * policy above already stops that; this is checked again before any
 * byte is kept, so that no libcurl option or version can undo it. */
static gboolean
transfer_is_secure (CURL       *curl,
                    const char *url)
{
  const char *scheme = NULL;

  if (g_ascii_strncasecmp (url, "https://", strlen ("https://")) != 0)
    return TRUE;

  return curl_easy_getinfo (curl, CURLINFO_SCHEME, &scheme) == CURLE_OK && scheme != NULL &&
         g_ascii_strcasecmp (scheme, "https") == 0;
}

static void
qlean_curl_global_init (void)
{
  static gsize initialized = 0;

  /* curl_global_init() is not thread-safe in the libcurl versions we
   * support, and this may first run on any worker thread. */
  if (g_once_init_enter (&initialized))
    {
      curl_global_init (CURL_GLOBAL_DEFAULT);
      g_once_init_leave (&initialized, 1);
    }
}

static CURL *
make_easy (const char *url,
           char       *errbuf)
{
  CURL *curl;

  qlean_curl_global_init ();
  curl = curl_easy_init ();
  if (curl == NULL)
    return NULL;

  errbuf[0] = '\0';
  curl_easy_setopt (curl, CURLOPT_URL, url);
  curl_easy_setopt (curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt (curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt (curl, CURLOPT_MAXREDIRS, (long) MAX_REDIRECTS);
  /* An error page must never be taken for the file. */
  curl_easy_setopt (curl, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt (curl, CURLOPT_USERAGENT, USER_AGENT);
  curl_easy_setopt (curl, CURLOPT_CONNECTTIMEOUT, 30L);
  /* A stalled transfer is a dropped one: fail it, so that it resumes. */
  curl_easy_setopt (curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt (curl, CURLOPT_LOW_SPEED_TIME, 60L);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt (curl, CURLOPT_PROTOCOLS_STR, "http,https,file");
  curl_easy_setopt (curl, CURLOPT_REDIR_PROTOCOLS_STR, qlean_download_redirect_protocols (url));
#else
  curl_easy_setopt (curl, CURLOPT_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS | CURLPROTO_FILE));
  curl_easy_setopt (curl, CURLOPT_REDIR_PROTOCOLS,
                    g_str_equal (qlean_download_redirect_protocols (url), "https")
                    ? (long) CURLPROTO_HTTPS : (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  if (test_ca_file != NULL)
    curl_easy_setopt (curl, CURLOPT_CAINFO, test_ca_file);

  return curl;
}

static const char *
http_reason (long status)
{
  switch (status)
    {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 410: return "Gone";
    case 416: return "Range Not Satisfiable";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status >= 500 ? "Server Error" : "Client Error";
    }
}

static gboolean
is_transient (CURLcode code)
{
  switch (code)
    {
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return TRUE;
    default:
      return FALSE;
    }
}

static gboolean
is_network (CURLcode code)
{
  switch (code)
    {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
      return TRUE;
    default:
      return is_transient (code);
    }
}

/* Turns a failed transfer into an error in Qlean's domain: one code per
 * thing a user does something different about. */
static void
set_transfer_error (GError       **error,
                    CURL          *curl,
                    CURLcode       code,
                    const char    *url,
                    const char    *errbuf,
                    int            write_errno,
                    const char    *dest,
                    GCancellable  *cancellable)
{
  const char *detail = errbuf[0] != '\0' ? errbuf : curl_easy_strerror (code);
  const char *redirect = NULL;
  long redirects = 0;

  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return;

  /* A redirect that libcurl refuses to follow leaves its target as the
   * effective URL. */
  curl_easy_getinfo (curl, CURLINFO_REDIRECT_COUNT, &redirects);
  if (redirects > 0)
    curl_easy_getinfo (curl, CURLINFO_EFFECTIVE_URL, &redirect);

  if (code == CURLE_TOO_MANY_REDIRECTS)
    g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_HTTP,
                 _("%s redirects more than %d times; Qlean gives up there. The server or "
                   "mirror is misconfigured: try again later, or use another mirror"),
                 url, MAX_REDIRECTS);
  else if (code == CURLE_UNSUPPORTED_PROTOCOL && redirect != NULL)
    g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_HTTP,
                 _("%s redirects to %s, which Qlean refuses to follow: a download may only "
                   "be redirected to %s URLs. Use another mirror, or give the final URL "
                   "if you trust it"),
                 url, redirect,
                 g_str_equal (qlean_download_redirect_protocols (url), "https")
                 ? "https" : "http and https");
  else if (code == CURLE_WRITE_ERROR && write_errno == EPROTO)
    g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_HTTP,
                 _("The download of %s started over HTTPS but went on over another "
                   "protocol after %ld redirects; Qlean refuses it"),
                 url, redirects);
  else if (code == CURLE_HTTP_RETURNED_ERROR)
    {
      long status = 0;

      curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &status);
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_HTTP,
                   _("HTTP %ld %s from %s"), status, http_reason (status), url);
    }
  else if (code == CURLE_WRITE_ERROR && (write_errno == ENOSPC || write_errno == EDQUOT))
    {
      g_autofree char *dir = dest ? g_path_get_dirname (dest) : g_strdup ("?");

      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_NO_SPACE,
                   _("No space left in %s to download %s; free some space (or remove "
                     "old images from the cache) and try again"),
                   dir, url);
    }
  else if (code == CURLE_WRITE_ERROR && write_errno != 0)
    g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_FAILED,
                 _("Cannot write %s while downloading %s: %s"),
                 dest ? dest : "?", url, g_strerror (write_errno));
  else if (code == CURLE_FILE_COULDNT_READ_FILE)
    g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_NOT_FOUND,
                 _("Cannot read %s: %s"), url, detail);
  else if (code == CURLE_UNSUPPORTED_PROTOCOL || code == CURLE_URL_MALFORMAT)
    g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_INVALID_SOURCE,
                 _("Cannot download %s: %s (Qlean downloads http, https and file URLs)"),
                 url, detail);
  else if (is_network (code))
    g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_NETWORK,
                 _("Cannot download %s: %s; check the network, or point "
                   "QLEAN_IMAGE_MIRROR at a mirror that can be reached"),
                 url, detail);
  else
    g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_FAILED,
                 _("Cannot download %s: %s"), url, detail);
}

typedef struct
{
  GByteArray *data;
  gsize       max_size;
  gboolean    too_big;
  CURL       *curl;
  const char *url;
  int         write_errno;
} MemorySink;

static size_t
memory_write (char   *ptr,
              size_t  size,
              size_t  nmemb,
              void   *user_data)
{
  MemorySink *sink = user_data;
  size_t n = size * nmemb;

  if (!transfer_is_secure (sink->curl, sink->url))
    {
      sink->write_errno = EPROTO;
      return 0;
    }

  if (sink->data->len + n > sink->max_size)
    {
      sink->too_big = TRUE;
      return 0;
    }

  g_byte_array_append (sink->data, (const guint8 *) ptr, n);
  return n;
}

static int
cancel_check (void       *user_data,
              curl_off_t  dltotal,
              curl_off_t  dlnow,
              curl_off_t  ultotal,
              curl_off_t  ulnow)
{
  return g_cancellable_is_cancelled (user_data) ? 1 : 0;
}

GBytes *
qlean_download_bytes (const char    *url,
                      gsize          max_size,
                      GCancellable  *cancellable,
                      GError       **error)
{
  char errbuf[CURL_ERROR_SIZE];
  g_autoptr(GByteArray) data = g_byte_array_new ();
  CURL *curl = make_easy (url, errbuf);
  MemorySink sink = { data, max_size, FALSE, curl, url, 0 };
  CURLcode code;

  if (curl == NULL)
    {
      g_set_error_literal (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_FAILED,
                           _("Cannot start libcurl"));
      return NULL;
    }

  curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, memory_write);
  curl_easy_setopt (curl, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt (curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt (curl, CURLOPT_XFERINFOFUNCTION, cancel_check);
  curl_easy_setopt (curl, CURLOPT_XFERINFODATA, cancellable);

  /* A dropped connection is retried: the file is small, start over. */
  for (guint attempt = 1; ; attempt++)
    {
      code = curl_easy_perform (curl);
      if (code == CURLE_OK || !is_transient (code) || sink.too_big || attempt == MAX_ATTEMPTS ||
          g_cancellable_is_cancelled (cancellable))
        break;
      g_byte_array_set_size (data, 0);
      g_usleep (G_USEC_PER_SEC / 4 * attempt);
    }
  if (code != CURLE_OK)
    {
      if (sink.too_big)
        g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_NO_CHECKSUM,
                     _("%s is larger than %" G_GSIZE_FORMAT " bytes: not a checksum file"),
                     url, max_size);
      else
        set_transfer_error (error, curl, code, url, errbuf, sink.write_errno, NULL, cancellable);
      curl_easy_cleanup (curl);
      return NULL;
    }

  curl_easy_cleanup (curl);
  return g_byte_array_free_to_bytes (g_steal_pointer (&data));
}


/* Files */

typedef struct
{
  int                        fd;
  const char                *path;
  const char                *url;
  CURL                      *curl;
  gboolean                   is_http;
  gboolean                   checked_status;
  GChecksum                 *checksum;
  guint64                    offset;
  guint64                    received;
  int                        write_errno;
  GCancellable              *cancellable;
  QleanDownloadProgressFunc  progress;
  gpointer                   progress_data;
} Transfer;

static size_t
transfer_write (char   *ptr,
                size_t  size,
                size_t  nmemb,
                void   *user_data)
{
  Transfer *t = user_data;
  size_t n = size * nmemb;
  size_t done = 0;

  if (!transfer_is_secure (t->curl, t->url))
    {
      t->write_errno = EPROTO;
      return 0;
    }

  if (!t->checked_status)
    {
      long status = 0;

      t->checked_status = TRUE;
      curl_easy_getinfo (t->curl, CURLINFO_RESPONSE_CODE, &status);
      /* A server that ignores Range sends the whole file: start over. */
      if (t->is_http && t->offset > 0 && status != 206)
        {
          if (ftruncate (t->fd, 0) != 0 || lseek (t->fd, 0, SEEK_SET) < 0)
            {
              t->write_errno = errno;
              return 0;
            }
          g_checksum_reset (t->checksum);
          t->offset = 0;
        }
    }

  while (done < n)
    {
      ssize_t w = write (t->fd, ptr + done, n - done);

      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0)
        {
          t->write_errno = w < 0 ? errno : EIO;
          return 0;
        }
      done += w;
    }

  g_checksum_update (t->checksum, (const guchar *) ptr, n);
  t->received += n;
  return n;
}

static int
transfer_progress (void       *user_data,
                   curl_off_t  dltotal,
                   curl_off_t  dlnow,
                   curl_off_t  ultotal,
                   curl_off_t  ulnow)
{
  Transfer *t = user_data;

  if (g_cancellable_is_cancelled (t->cancellable))
    return 1;

  if (t->progress != NULL)
    t->progress (t->offset + dlnow, dltotal > 0 ? t->offset + dltotal : 0, t->progress_data);

  return 0;
}

/* Feeds what an earlier attempt left in @fd to @checksum, so that the
 * digest of a resumed download still covers every byte. */
static gboolean
hash_fd (int            fd,
         GChecksum     *checksum,
         guint64       *size,
         GCancellable  *cancellable,
         GError       **error)
{
  g_autofree guchar *buffer = g_malloc (HASH_BUFFER_SIZE);
  guint64 total = 0;
  struct stat st;

  /* Up to the size fstat() gives, not to EOF: only a regular file has
   * an end (the part may be a device, as /dev/full in the tests). */
  if (fstat (fd, &st) != 0 || lseek (fd, 0, SEEK_SET) < 0)
    {
      qlean_set_error_from_errno (error, errno, "lseek");
      return FALSE;
    }

  while (total < (guint64) st.st_size)
    {
      ssize_t n = read (fd, buffer, MIN ((guint64) HASH_BUFFER_SIZE, st.st_size - total));

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          int saved_errno = errno;

          qlean_set_error_from_errno (error, saved_errno,
                                      "read");
          return FALSE;
        }
      if (n == 0)
        break;
      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        return FALSE;
      g_checksum_update (checksum, buffer, n);
      total += n;
    }

  *size = total;
  return TRUE;
}

/* One transfer attempt into @part, resuming it. Returns the curl code;
 * *hard_error is set for failures that are not the transfer's. */
static CURLcode
download_attempt (const char                 *url,
                  const char                 *part,
                  GChecksum                  *checksum,
                  guint64                    *received,
                  long                       *status,
                  int                        *write_errno,
                  char                       *errbuf,
                  CURL                      **curl_out,
                  QleanDownloadProgressFunc   progress,
                  gpointer                    progress_data,
                  GCancellable               *cancellable,
                  GError                    **hard_error)
{
  Transfer t = { -1 };
  CURLcode code;

  t.fd = g_open (part, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (t.fd < 0)
    {
      qlean_cache_set_error (hard_error, errno, QLEAN_CACHE_OP_CREATE, part);
      return CURLE_WRITE_ERROR;
    }

  g_checksum_reset (checksum);
  if (!hash_fd (t.fd, checksum, &t.offset, cancellable, hard_error) ||
      lseek (t.fd, 0, SEEK_END) < 0)
    {
      if (hard_error != NULL && *hard_error == NULL)
        qlean_cache_set_error (hard_error, errno, QLEAN_CACHE_OP_READ, part);
      close (t.fd);
      return CURLE_READ_ERROR;
    }

  t.path = part;
  t.url = url;
  t.curl = make_easy (url, errbuf);
  if (t.curl == NULL)
    {
      g_set_error_literal (hard_error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_FAILED,
                           _("Cannot start libcurl"));
      close (t.fd);
      return CURLE_FAILED_INIT;
    }
  t.is_http = g_str_has_prefix (url, "http://") || g_str_has_prefix (url, "https://");
  t.checksum = checksum;
  t.cancellable = cancellable;
  t.progress = progress;
  t.progress_data = progress_data;

  curl_easy_setopt (t.curl, CURLOPT_WRITEFUNCTION, transfer_write);
  curl_easy_setopt (t.curl, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt (t.curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt (t.curl, CURLOPT_XFERINFOFUNCTION, transfer_progress);
  curl_easy_setopt (t.curl, CURLOPT_XFERINFODATA, &t);
  if (t.offset > 0)
    curl_easy_setopt (t.curl, CURLOPT_RESUME_FROM_LARGE, (curl_off_t) t.offset);

  code = curl_easy_perform (t.curl);
  curl_easy_getinfo (t.curl, CURLINFO_RESPONSE_CODE, status);

  /* What was written must be on disk before the file can be called
   * verified and renamed into the cache. */
  if (code == CURLE_OK && fsync (t.fd) != 0)
    {
      t.write_errno = errno;
      code = CURLE_WRITE_ERROR;
    }
  close (t.fd);

  *received = t.received;
  *write_errno = t.write_errno;
  *curl_out = t.curl;
  return code;
}

gboolean
qlean_download_file (const char                 *url,
                     const char                 *dest,
                     GChecksumType               type,
                     const char                 *expected_hex,
                     QleanCacheInfo             *info,
                     QleanDownloadProgressFunc   progress,
                     gpointer                    progress_data,
                     GCancellable               *cancellable,
                     GError                    **error)
{
  g_autofree char *part = g_strconcat (dest, ".part", NULL);
  g_autoptr(GChecksum) checksum = g_checksum_new (type);
  gboolean restarted_after_mismatch = FALSE;
  const char *actual;
  struct stat st;

  for (guint attempt = 1; ; attempt++)
    {
      char errbuf[CURL_ERROR_SIZE] = "";
      guint64 received = 0;
      long status = 0;
      int write_errno = 0;
      CURL *curl = NULL;
      GError *hard_error = NULL;
      gboolean resumed = g_stat (part, &st) == 0 && st.st_size > 0;
      CURLcode code;

      code = download_attempt (url, part, checksum, &received, &status, &write_errno, errbuf,
                               &curl, progress, progress_data, cancellable, &hard_error);
      if (hard_error != NULL)
        {
          if (g_error_matches (hard_error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_NO_SPACE))
            g_unlink (part);
          g_propagate_error (error, hard_error);
          if (curl != NULL)
            curl_easy_cleanup (curl);
          return FALSE;
        }

      /* 416 on a resumed download: the part already holds it all. */
      if (code == CURLE_HTTP_RETURNED_ERROR && status == 416)
        code = CURLE_OK;

      if (code == CURLE_OK)
        {
          curl_easy_cleanup (curl);
          actual = g_checksum_get_string (checksum);
          if (expected_hex == NULL || g_ascii_strcasecmp (actual, expected_hex) == 0)
            break;

          g_unlink (part);
          /* A stale part from another version of a "latest" image makes
           * a resumed download fail verification: fetch it whole once. */
          if (!restarted_after_mismatch && resumed)
            {
              restarted_after_mismatch = TRUE;
              continue;
            }
          g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_CHECKSUM_MISMATCH,
                       _("The file downloaded from %s has the %s checksum %s, but %s was "
                         "expected; it has been removed. The server or mirror holds a "
                         "corrupt or replaced file: try again later, or use another mirror"),
                       url, qlean_checksum_type_to_name (type), actual, expected_hex);
          return FALSE;
        }

      if (is_transient (code) && received > 0 && attempt < MAX_ATTEMPTS &&
          !g_cancellable_is_cancelled (cancellable))
        {
          g_debug ("Download of %s interrupted after %" G_GUINT64_FORMAT " bytes (%s); resuming",
                   url, received, errbuf[0] ? errbuf : curl_easy_strerror (code));
          curl_easy_cleanup (curl);
          g_usleep (G_USEC_PER_SEC / 4 * attempt);
          continue;
        }

      set_transfer_error (error, curl, code, url, errbuf, write_errno, dest, cancellable);
      curl_easy_cleanup (curl);
      /* Keep the part for a later resume unless it is the problem. */
      if (code == CURLE_WRITE_ERROR || code == CURLE_HTTP_RETURNED_ERROR)
        g_unlink (part);
      else if (g_stat (part, &st) == 0 && st.st_size == 0)
        g_unlink (part);
      return FALSE;
    }

  g_free (info->hex);
  info->hex = g_strdup (actual);
  info->type = type;
  if (!qlean_cache_write_sidecar (dest, part, info, error))
    {
      g_unlink (part);
      return FALSE;
    }

  if (g_rename (part, dest) != 0)
    {
      int saved_errno = errno;
      g_autofree char *sidecar = qlean_cache_sidecar_path (dest);

      qlean_cache_set_error (error, saved_errno, QLEAN_CACHE_OP_RENAME, dest);
      g_unlink (part);
      g_unlink (sidecar);
      return FALSE;
    }

  return TRUE;
}
