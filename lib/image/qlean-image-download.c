/* qlean-image-download.c: downloads, checksums and the image cache
 *
 * SPDX-License-Identifier: MIT
 *
 * Everything here blocks: it runs on a GTask worker thread, never on a
 * caller's main loop. libcurl's easy interface on that thread is the
 * simplest correct way to stream a multi-gigabyte file to disk while
 * hashing it; progress goes out through a callback that only records
 * numbers.
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
#include <json-glib/json-glib.h>

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
#define SIDECAR_SUFFIX ".qlean.json"

GChecksumType
qlean_checksum_type_from_name (const char *name)
{
  if (name == NULL)
    return -1;
  if (g_ascii_strcasecmp (name, "sha256") == 0 || g_ascii_strcasecmp (name, "sha-256") == 0 ||
      g_ascii_strcasecmp (name, "sha2-256") == 0)
    return G_CHECKSUM_SHA256;
  if (g_ascii_strcasecmp (name, "sha512") == 0 || g_ascii_strcasecmp (name, "sha-512") == 0 ||
      g_ascii_strcasecmp (name, "sha2-512") == 0)
    return G_CHECKSUM_SHA512;
  return -1;
}

const char *
qlean_checksum_type_to_name (GChecksumType type)
{
  switch ((int) type)
    {
    case G_CHECKSUM_SHA256: return "sha256";
    case G_CHECKSUM_SHA512: return "sha512";
    default: return "unknown";
    }
}

static gboolean
is_hex (const char *s,
        gsize       len)
{
  for (gsize i = 0; i < len; i++)
    if (!g_ascii_isxdigit (s[i]))
      return FALSE;

  return s[len] == '\0';
}

gboolean
qlean_digest_parse (const char     *digest,
                    GChecksumType  *type,
                    char          **hex,
                    GError        **error)
{
  const char *colon = digest ? strchr (digest, ':') : NULL;
  g_autofree char *algo = NULL;
  GChecksumType t;
  gsize len;

  if (colon == NULL || colon == digest || colon[1] == '\0')
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_INVALID_SOURCE,
                   _("The digest “%s” is not of the form sha256:<hex> or sha512:<hex>: "
                     "give both the algorithm and the hexadecimal digest"),
                   digest ? digest : "");
      return FALSE;
    }

  algo = g_strndup (digest, colon - digest);
  t = qlean_checksum_type_from_name (algo);
  if ((int) t == -1)
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_INVALID_SOURCE,
                   _("Unknown digest algorithm “%s” in “%s”; use sha256 or sha512"),
                   algo, digest);
      return FALSE;
    }

  len = g_checksum_type_get_length (t) * 2;
  if (strlen (colon + 1) != len || !is_hex (colon + 1, len))
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_INVALID_SOURCE,
                   _("The %s digest in “%s” must be %u hexadecimal digits"),
                   qlean_checksum_type_to_name (t), digest, (guint) len);
      return FALSE;
    }

  *type = t;
  *hex = g_ascii_strdown (colon + 1, -1);
  return TRUE;
}

/* Checksum files */

static const char *
normalize_entry_name (const char *name)
{
  while (*name == '*')
    name++;
  while (g_str_has_prefix (name, "./"))
    name += 2;
  return name;
}

static gboolean
entry_name_matches (const char *entry,
                    const char *wanted)
{
  const char *slash;

  entry = normalize_entry_name (entry);
  wanted = normalize_entry_name (wanted);

  if (strcmp (entry, wanted) == 0)
    return TRUE;

  /* Some lists name files by a path below the list's directory. */
  slash = strrchr (entry, '/');
  return strchr (wanted, '/') == NULL && slash != NULL && strcmp (slash + 1, wanted) == 0;
}

static GChecksumType
type_of_hex (const char *hex,
             gsize       len)
{
  if (len == 64)
    return G_CHECKSUM_SHA256;
  if (len == 128)
    return G_CHECKSUM_SHA512;
  return -1;
}

/* GNU coreutils escapes names holding a backslash or newline, and marks
 * the line with a leading backslash. */
static char *
unescape_gnu_name (const char *name)
{
  GString *out = g_string_new (NULL);

  for (const char *p = name; *p != '\0'; p++)
    {
      if (p[0] == '\\' && p[1] == 'n')
        g_string_append_c (out, '\n'), p++;
      else if (p[0] == '\\' && p[1] == '\\')
        g_string_append_c (out, '\\'), p++;
      else
        g_string_append_c (out, *p);
    }

  return g_string_free (out, FALSE);
}

/* One line of a checksum list; returns the digest when it is for
 * @file_name and of @type (or of any type when @type is -1). */
static char *
parse_checksum_line (char          *line,
                     const char    *file_name,
                     GChecksumType  type,
                     GChecksumType *found_type)
{
  const char *open, *close;
  GChecksumType line_type;
  gboolean escaped = FALSE;

  g_strstrip (line);
  if (*line == '\0' || *line == '#')
    return NULL;

  /* BSD style, as in Fedora's CHECKSUM: "SHA256 (name) = hex". */
  open = strstr (line, " (");
  close = g_strrstr (line, ") = ");
  if (open != NULL && close != NULL && close > open)
    {
      g_autofree char *algo = g_strndup (line, open - line);
      g_autofree char *name = g_strndup (open + 2, close - open - 2);
      const char *hex = close + 4;
      gsize len = strlen (hex);

      line_type = qlean_checksum_type_from_name (algo);
      if ((int) line_type == -1 || !is_hex (hex, len) ||
          (gsize) g_checksum_type_get_length (line_type) * 2 != len)
        return NULL;
      if ((int) type != -1 && line_type != type)
        return NULL;
      if (!entry_name_matches (name, file_name))
        return NULL;

      *found_type = line_type;
      return g_ascii_strdown (hex, -1);
    }

  /* GNU style: "hex  name" (text mode), "hex *name" (binary mode). */
  if (*line == '\\')
    {
      escaped = TRUE;
      line++;
    }

  {
    char *space = strchr (line, ' ');
    const char *name;
    g_autofree char *unescaped = NULL;

    if (space == NULL)
      return NULL;
    *space = '\0';
    line_type = type_of_hex (line, space - line);
    if ((int) line_type == -1 || !is_hex (line, space - line))
      return NULL;
    if ((int) type != -1 && line_type != type)
      return NULL;

    name = space + 1;
    if (*name == ' ' || *name == '*')
      name++;
    if (escaped)
      name = unescaped = unescape_gnu_name (name);
    if (!entry_name_matches (name, file_name))
      return NULL;

    *found_type = line_type;
    return g_ascii_strdown (line, -1);
  }
}

char *
qlean_checksum_file_lookup (const char     *text,
                            gsize           len,
                            const char     *file_name,
                            GChecksumType   type,
                            GChecksumType  *found_type,
                            const char     *source,
                            GError        **error)
{
  g_autofree char *copy = g_strndup (text, len);
  g_auto(GStrv) lines = g_strsplit (copy, "\n", -1);
  enum { PLAIN, PGP_HEADERS, PGP_BODY, PGP_SIGNATURE } state = PLAIN;
  GChecksumType found = -1;

  /* A PGP signed message (Fedora's CHECKSUM) is read for its payload
   * only. Where the catalog says that a distribution signs its checksum
   * file, the signature is checked first (qlean_signature_verify()) and
   * only the text gpgv vouches for comes here. */
  for (guint i = 0; lines[i] != NULL; i++)
    {
      char *line = lines[i];
      char *hex;

      g_strchomp (line);

      switch (state)
        {
        case PLAIN:
          if (g_str_equal (line, "-----BEGIN PGP SIGNED MESSAGE-----"))
            {
              state = PGP_HEADERS;
              continue;
            }
          break;
        case PGP_HEADERS:
          if (*line == '\0')
            state = PGP_BODY;
          continue;
        case PGP_BODY:
          if (g_str_has_prefix (line, "-----BEGIN PGP SIGNATURE-----"))
            {
              state = PGP_SIGNATURE;
              continue;
            }
          /* Dash-escaped lines (RFC 4880, 7.1). */
          if (g_str_has_prefix (line, "- "))
            line += 2;
          break;
        case PGP_SIGNATURE:
          if (g_str_has_prefix (line, "-----END PGP SIGNATURE-----"))
            state = PLAIN;
          continue;
        }

      hex = parse_checksum_line (line, file_name, type, &found);
      if (hex != NULL)
        {
          if (found_type != NULL)
            *found_type = found;
          return hex;
        }
    }

  if ((int) type != -1)
    g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_NO_CHECKSUM,
                 _("The checksum file %s lists no %s checksum for %s"),
                 source, qlean_checksum_type_to_name (type), file_name);
  else
    g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_NO_CHECKSUM,
                 _("The checksum file %s lists no checksum for %s"), source, file_name);
  return NULL;
}

/* Signatures */

/* The line of gpgv's messages that says what is wrong with a signature:
 * not the ones that say when and with which key it was made, nor the
 * reminder that follows a failure. */
static char *
gpgv_reason (const char *text)
{
  static const char * const noise[] = {
    "Signature made", "using ", "Please remember", "should be the first", "the signature could not",
  };
  g_auto(GStrv) lines = g_strsplit (text ? text : "", "\n", -1);

  for (guint i = 0; lines[i] != NULL; i++)
    {
      char *line = g_strstrip (lines[i]);
      gboolean skip = *line == '\0';

      if (g_str_has_prefix (line, "gpgv: "))
        line = g_strstrip (line + strlen ("gpgv: "));
      for (guint n = 0; n < G_N_ELEMENTS (noise) && !skip; n++)
        skip = g_str_has_prefix (line, noise[n]);
      if (skip)
        continue;
      while (g_str_has_suffix (line, "."))
        line[strlen (line) - 1] = '\0';
      return g_strdup (line);
    }

  return g_strdup (_("gpgv gave no reason"));
}

/* gpgv's verdict, from its status lines (doc/DETAILS in GnuPG): one good,
 * valid signature and nothing bad, expired or revoked beside it. */
static gboolean
status_says_good (const char *status)
{
  static const char * const bad[] = {
    "BADSIG", "ERRSIG", "EXPSIG", "EXPKEYSIG", "REVKEYSIG", "NO_PUBKEY", "FAILURE",
  };
  g_auto(GStrv) lines = g_strsplit (status ? status : "", "\n", -1);
  gboolean good = FALSE, valid = FALSE;

  for (guint i = 0; lines[i] != NULL; i++)
    {
      const char *line = lines[i];

      if (!g_str_has_prefix (line, "[GNUPG:] "))
        continue;
      line += strlen ("[GNUPG:] ");
      for (guint b = 0; b < G_N_ELEMENTS (bad); b++)
        if (g_str_has_prefix (line, bad[b]) && (line[strlen (bad[b])] == ' ' || line[strlen (bad[b])] == '\0'))
          return FALSE;
      if (g_str_has_prefix (line, "GOODSIG "))
        good = TRUE;
      else if (g_str_has_prefix (line, "VALIDSIG "))
        valid = TRUE;
    }

  return good && valid;
}

GBytes *
qlean_signature_verify (const char    *keyring,
                        GBytes        *data,
                        GBytes        *signature,
                        const char    *source,
                        GCancellable  *cancellable,
                        GError       **error)
{
  g_autofree char *gpgv = g_find_program_in_path ("gpgv");
  g_autofree char *tmp = NULL;
  g_autofree char *data_path = NULL;
  g_autofree char *signature_path = NULL;
  g_autofree char *payload_path = NULL;
  g_autofree char *status = NULL;
  g_autofree char *messages = NULL;
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autoptr(GError) local_error = NULL;
  GBytes *payload = NULL;
  char *contents = NULL;
  gsize len;

  if (gpgv == NULL)
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
                   _("Cannot check the signature of %s: gpgv is not installed "
                     "(install the gpgv package)"),
                   source);
      return NULL;
    }

  if (!g_file_test (keyring, G_FILE_TEST_IS_REGULAR))
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
                   _("Cannot check the signature of %s: the keyring %s is missing; "
                     "reinstall Qlean"),
                   source, keyring);
      return NULL;
    }

  /* gpgv reads files; a private directory keeps them from anyone else. */
  tmp = g_dir_make_tmp ("qlean-gpgv-XXXXXX", error);
  if (tmp == NULL)
    return NULL;
  data_path = g_build_filename (tmp, "signed", NULL);
  signature_path = g_build_filename (tmp, "signature", NULL);
  payload_path = g_build_filename (tmp, "payload", NULL);

  if (!g_file_set_contents (data_path, g_bytes_get_data (data, NULL), g_bytes_get_size (data), error) ||
      (signature != NULL &&
       !g_file_set_contents (signature_path, g_bytes_get_data (signature, NULL),
                             g_bytes_get_size (signature), error)))
    goto out;

  g_ptr_array_add (argv, gpgv);
  g_ptr_array_add (argv, "--status-fd=1");
  g_ptr_array_add (argv, "--keyring");
  g_ptr_array_add (argv, (char *) keyring);
  if (signature != NULL)
    {
      g_ptr_array_add (argv, "--");
      g_ptr_array_add (argv, signature_path);
      g_ptr_array_add (argv, data_path);
    }
  else
    {
      /* A clear-signed file: what gpgv writes out is the signed text,
       * without whatever was put around it. */
      g_ptr_array_add (argv, "--output");
      g_ptr_array_add (argv, payload_path);
      g_ptr_array_add (argv, "--");
      g_ptr_array_add (argv, data_path);
    }
  g_ptr_array_add (argv, NULL);

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                        G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_subprocess_launcher_setenv (launcher, "LC_ALL", "C", TRUE);
  g_subprocess_launcher_setenv (launcher, "GNUPGHOME", tmp, TRUE);
  process = g_subprocess_launcher_spawnv (launcher, (const char * const *) argv->pdata, error);
  if (process == NULL ||
      !g_subprocess_communicate_utf8 (process, NULL, cancellable, &status, &messages, error))
    goto out;

  if (!g_subprocess_get_if_exited (process) || g_subprocess_get_exit_status (process) != 0 ||
      !status_says_good (status))
    {
      g_autofree char *reason = gpgv_reason (messages);

      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_BAD_SIGNATURE,
                   _("The signature of %s does not verify with the distribution's key "
                     "(%s): %s. The file was changed on the way or on the mirror, or is "
                     "not the distribution's; nothing was downloaded. Try again later, "
                     "or use another mirror"),
                   source, keyring, reason);
      goto out;
    }

  if (signature != NULL)
    payload = g_bytes_ref (data);
  else if (g_file_get_contents (payload_path, &contents, &len, &local_error))
    payload = g_bytes_new_take (contents, len);
  else
    g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_BAD_SIGNATURE,
                 _("gpgv verified %s but wrote no signed text: %s"), source, local_error->message);

out:
  qlean_rm_rf (tmp, NULL);
  return payload;
}

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

static void
set_errno_error (GError     **error,
                 int          saved_errno,
                 const char  *what,
                 const char  *path)
{
  if (saved_errno == ENOSPC || saved_errno == EDQUOT)
    g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_NO_SPACE,
                 _("No space left to %s %s; free some space (or remove old images "
                   "from the cache) and try again"),
                 what, path);
  else
    qlean_set_error_from_errno (error, saved_errno,
                                _("Cannot %s %s"), what, path);
}

gboolean
qlean_cache_mkdir (const char  *dir,
                   GError     **error)
{
  if (g_mkdir_with_parents (dir, 0755) != 0)
    {
      set_errno_error (error, errno, _("create the cache directory"), dir);
      return FALSE;
    }

  return TRUE;
}

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
      set_errno_error (hard_error, errno, _("create"), part);
      return CURLE_WRITE_ERROR;
    }

  g_checksum_reset (checksum);
  if (!hash_fd (t.fd, checksum, &t.offset, cancellable, hard_error) ||
      lseek (t.fd, 0, SEEK_END) < 0)
    {
      if (hard_error != NULL && *hard_error == NULL)
        set_errno_error (hard_error, errno, _("read"), part);
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

      set_errno_error (error, saved_errno, _("rename into"), dest);
      g_unlink (part);
      g_unlink (sidecar);
      return FALSE;
    }

  return TRUE;
}

/* Sidecars */

void
qlean_cache_info_clear (QleanCacheInfo *info)
{
  g_clear_pointer (&info->hex, g_free);
  g_clear_pointer (&info->source, g_free);
  g_clear_pointer (&info->name, g_free);
}

char *
qlean_cache_sidecar_path (const char *path)
{
  return g_strconcat (path, SIDECAR_SUFFIX, NULL);
}

static gint64
mtime_ns (const struct stat *st)
{
  return (gint64) st->st_mtim.tv_sec * G_GINT64_CONSTANT (1000000000) + st->st_mtim.tv_nsec;
}

gboolean
qlean_cache_write_sidecar (const char            *path,
                           const char            *sidecar_of,
                           const QleanCacheInfo  *info,
                           GError               **error)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  g_autoptr(JsonNode) root = NULL;
  g_autofree char *sidecar = qlean_cache_sidecar_path (path);
  g_autofree char *text = NULL;
  struct stat st;

  if (g_stat (sidecar_of, &st) != 0)
    {
      set_errno_error (error, errno, _("read"), sidecar_of);
      return FALSE;
    }

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "version");
  json_builder_add_int_value (builder, 1);
  json_builder_set_member_name (builder, "name");
  json_builder_add_string_value (builder, info->name);
  json_builder_set_member_name (builder, "source");
  json_builder_add_string_value (builder, info->source);
  json_builder_set_member_name (builder, "checksum");
  json_builder_add_string_value (builder, qlean_checksum_type_to_name (info->type));
  json_builder_set_member_name (builder, "digest");
  json_builder_add_string_value (builder, info->hex);
  json_builder_set_member_name (builder, "size");
  json_builder_add_int_value (builder, st.st_size);
  json_builder_set_member_name (builder, "inode");
  json_builder_add_int_value (builder, st.st_ino);
  json_builder_set_member_name (builder, "mtime-ns");
  json_builder_add_int_value (builder, mtime_ns (&st));
  json_builder_set_member_name (builder, "source-size");
  json_builder_add_int_value (builder, info->source_size);
  json_builder_set_member_name (builder, "source-mtime");
  json_builder_add_int_value (builder, info->source_mtime);
  json_builder_end_object (builder);

  root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  json_generator_set_pretty (generator, TRUE);
  text = json_generator_to_data (generator, NULL);

  if (!g_file_set_contents_full (sidecar, text, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0644, error))
    return FALSE;

  return TRUE;
}

typedef struct
{
  QleanCacheInfo info;
  guint64        inode;
  gint64         mtime;
} Sidecar;

static gboolean
read_sidecar (const char *path,
              Sidecar    *out)
{
  g_autofree char *sidecar = qlean_cache_sidecar_path (path);
  g_autoptr(JsonParser) parser = json_parser_new ();
  JsonObject *object;
  JsonNode *root;

  if (!json_parser_load_from_file (parser, sidecar, NULL))
    return FALSE;

  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    return FALSE;
  object = json_node_get_object (root);

  out->info.type = qlean_checksum_type_from_name (json_object_get_string_member_with_default (object, "checksum", NULL));
  out->info.hex = g_strdup (json_object_get_string_member_with_default (object, "digest", NULL));
  out->info.source = g_strdup (json_object_get_string_member_with_default (object, "source", NULL));
  out->info.name = g_strdup (json_object_get_string_member_with_default (object, "name", NULL));
  out->info.size = json_object_get_int_member_with_default (object, "size", -1);
  out->info.source_size = json_object_get_int_member_with_default (object, "source-size", 0);
  out->info.source_mtime = json_object_get_int_member_with_default (object, "source-mtime", 0);
  out->inode = json_object_get_int_member_with_default (object, "inode", 0);
  out->mtime = json_object_get_int_member_with_default (object, "mtime-ns", 0);

  if ((int) out->info.type == -1 || out->info.hex == NULL)
    {
      qlean_cache_info_clear (&out->info);
      return FALSE;
    }

  return TRUE;
}

gboolean
qlean_cache_read_sidecar (const char     *path,
                          QleanCacheInfo *info)
{
  Sidecar sidecar = { { 0 } };

  if (!read_sidecar (path, &sidecar))
    return FALSE;

  qlean_cache_info_clear (info);
  *info = sidecar.info;
  return TRUE;
}

gboolean
qlean_cache_lookup (const char     *path,
                    QleanCacheInfo *info)
{
  Sidecar sidecar = { { 0 } };
  struct stat st;

  if (g_stat (path, &st) != 0 || !S_ISREG (st.st_mode))
    return FALSE;

  if (!read_sidecar (path, &sidecar))
    return FALSE;

  if ((guint64) st.st_size != sidecar.info.size || (guint64) st.st_ino != sidecar.inode ||
      mtime_ns (&st) != sidecar.mtime)
    {
      qlean_cache_info_clear (&sidecar.info);
      return FALSE;
    }

  if (info != NULL)
    {
      qlean_cache_info_clear (info);
      *info = sidecar.info;
    }
  else
    qlean_cache_info_clear (&sidecar.info);

  return TRUE;
}

char *
qlean_hash_file (const char                 *path,
                 GChecksumType               type,
                 QleanDownloadProgressFunc   progress,
                 gpointer                    progress_data,
                 GCancellable               *cancellable,
                 GError                    **error)
{
  g_autoptr(GChecksum) checksum = g_checksum_new (type);
  g_autofree guchar *buffer = NULL;
  guint64 done = 0;
  struct stat st;
  int fd;

  fd = g_open (path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0 || fstat (fd, &st) != 0)
    {
      set_errno_error (error, errno, _("read"), path);
      if (fd >= 0)
        close (fd);
      return NULL;
    }

  buffer = g_malloc (HASH_BUFFER_SIZE);
  for (;;)
    {
      ssize_t n = read (fd, buffer, HASH_BUFFER_SIZE);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          set_errno_error (error, errno, _("read"), path);
          close (fd);
          return NULL;
        }
      if (n == 0)
        break;
      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        {
          close (fd);
          return NULL;
        }
      g_checksum_update (checksum, buffer, n);
      done += n;
      if (progress != NULL)
        progress (done, st.st_size, progress_data);
    }

  close (fd);
  return g_strdup (g_checksum_get_string (checksum));
}

/* Locks */

int
qlean_cache_lock (const char    *path,
                  GCancellable  *cancellable,
                  GError       **error)
{
  int fd = g_open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);

  if (fd < 0)
    {
      set_errno_error (error, errno, _("create the lock file"), path);
      return -1;
    }

  /* flock() locks belong to the open file description, so this excludes
   * other threads of this process (each opens its own) as well as other
   * processes. Polling lets a waiter be cancelled. */
  while (flock (fd, LOCK_EX | LOCK_NB) != 0)
    {
      if (errno == EINTR)
        continue;
      if (errno != EWOULDBLOCK)
        {
          set_errno_error (error, errno, _("lock"), path);
          close (fd);
          return -1;
        }
      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        {
          close (fd);
          return -1;
        }
      g_usleep (G_USEC_PER_SEC / 10);
    }

  return fd;
}

void
qlean_cache_unlock (int fd)
{
  if (fd < 0)
    return;

  flock (fd, LOCK_UN);
  close (fd);
}
