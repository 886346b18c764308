/* qlean-image-digest.c: what says a download is the distribution's
 *
 * SPDX-License-Identifier: MIT
 *
 * Digests ("sha512:<hex>"), the checksum files distributions publish
 * (GNU and BSD styles, clear-signed or not) and the check of their
 * signatures with gpgv. Apart from the transfer (qlean-image-download.c)
 * because none of it touches the network: it reads text a download
 * brought, and decides what of it to trust.
 */

#include "config.h"

#include <errno.h>
#include <string.h>
#include <glib/gstdio.h>
#include <glib/gi18n-lib.h>

#include "qlean-error.h"
#include "qlean-image-download-private.h"
#include "qlean-util-private.h"
#include "qlean-errno-private.h"

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
