/* test-image.c: distribution images, offline: catalog, checksum files,
 * downloads through a real HTTP server on 127.0.0.1, preparation with
 * libguestfs, cloud-init seeds
 *
 * SPDX-License-Identifier: MIT
 *
 * The image is a Debian 12 cloud-style disk built once per machine by
 * tests/images/build-debian-fixture.sh (mmdebstrap, cached under
 * $QLEAN_FIXTURE_CACHE or ~/.cache/qlean-test-fixtures) and served by
 * tests/images/fixture-server.c. Every test keeps its own image cache
 * and removes it.
 */

#include "config.h"

#include <errno.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include <guestfs.h>
#include <json-glib/json-glib.h>

#include <qlean/qlean.h>

#include "images/fixture-build.h"
#include "images/fixture-server.h"
#include "qlean-distro-private.h"
#include "qlean-host-private.h"
#include "qlean-image-download-private.h"
#include "qlean-image-private.h"
#include "qlean-util-private.h"

#define FIXTURE_NAME "debian-12-generic-amd64"
#define FIXTURE_FILE "/" FIXTURE_NAME "/" FIXTURE_NAME ".qcow2"
#define FIXTURE_SUMS "/" FIXTURE_NAME "/SHA512SUMS"

static char *fixture_dir;
static char *fixture_skip_reason;
static FixtureServer *server;

/* The fixture: built (or found) once per run. */
static gboolean
need_fixture (void)
{
  return fixture_need ("build-debian-fixture.sh", "the Debian fixture", &fixture_dir,
                       &fixture_skip_reason, &server);
}

/* A fresh, empty cache for one test. */
static char *
make_cache (const char *name)
{
  return fixture_make_cache ("image-tests", name);
}

static QleanImage *
fixture_image (const char *cache,
               const char *fault)
{
  QleanImage *image = qlean_image_new_from_distro (QLEAN_DISTRO_DEBIAN, FIXTURE_NAME);
  g_autofree char *mirror = g_strdup_printf ("%s%s", fixture_server_get_url (server), fault ? fault : "");

  qlean_image_set_mirror (image, mirror);
  qlean_image_set_cache_dir (image, cache);
  return image;
}

static char *
fixture_digest (void)
{
  g_autofree char *sums = g_build_filename (fixture_dir, FIXTURE_SUMS, NULL);
  g_autofree char *text = NULL;
  gsize len;

  g_assert_true (g_file_get_contents (sums, &text, &len, NULL));
  return qlean_checksum_file_lookup (text, len, FIXTURE_NAME ".qcow2", G_CHECKSUM_SHA512, NULL, sums, NULL);
}

/* Regular files under @dir other than lock files. */
static guint
count_cache_files (const char *dir)
{
  g_autoptr(GDir) d = g_dir_open (dir, 0, NULL);
  const char *name;
  guint n = 0;

  while (d != NULL && (name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *path = g_build_filename (dir, name, NULL);

      if (g_file_test (path, G_FILE_TEST_IS_DIR) && !g_file_test (path, G_FILE_TEST_IS_SYMLINK))
        n += count_cache_files (path);
      else if (!g_str_equal (name, ".lock"))
        n++;
    }

  return n;
}

/* Checksum files */

static const char sha256_a[] = "1111111111111111111111111111111111111111111111111111111111111111";
static const char sha256_b[] = "ABCDEFabcdef0123456789abcdef0123456789abcdef0123456789abcdef0123";
static const char sha512_a[] =
  "2222222222222222222222222222222222222222222222222222222222222222"
  "2222222222222222222222222222222222222222222222222222222222222222";

static void
assert_lookup (const char    *text,
               const char    *name,
               GChecksumType  type,
               const char    *expected)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *hex = qlean_checksum_file_lookup (text, strlen (text), name, type, NULL, "test", &error);

  if (expected == NULL)
    {
      g_assert_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_NO_CHECKSUM);
      g_assert_null (hex);
      g_assert_nonnull (strstr (error->message, name));
    }
  else
    {
      g_autofree char *lower = g_ascii_strdown (expected, -1);

      g_assert_no_error (error);
      g_assert_cmpstr (hex, ==, lower);
    }
}

static void
test_checksum_file_formats (void)
{
  g_autofree char *gnu = g_strdup_printf ("# comment\n%s  other.qcow2\n%s  disk.qcow2\n", sha256_b, sha256_a);
  g_autofree char *binary = g_strdup_printf ("%s *disk.qcow2\n", sha256_a);
  g_autofree char *dotslash = g_strdup_printf ("%s  ./disk.qcow2\r\n", sha256_a);
  g_autofree char *subdir = g_strdup_printf ("%s  images/disk.qcow2\n", sha256_a);
  g_autofree char *escaped = g_strdup_printf ("\\%s  dir\\\\disk.qcow2\n", sha256_a);
  g_autofree char *bsd = g_strdup_printf ("SHA256 (other.qcow2) = %s\nSHA256 (disk.qcow2) = %s\n", sha256_a, sha256_b);
  g_autofree char *both = g_strdup_printf ("%s  disk.qcow2\n%s  disk.qcow2\n", sha256_a, sha512_a);
  /* Fedora's CHECKSUM: a PGP signed message with BSD lines and comments. */
  g_autofree char *fedora = g_strdup_printf (
    "-----BEGIN PGP SIGNED MESSAGE-----\n"
    "Hash: SHA256\n"
    "\n"
    "# Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2: 491323392 bytes\n"
    "SHA256 (Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2) = %s\n"
    "- -dash escaped line\n"
    "-----BEGIN PGP SIGNATURE-----\n"
    "\n"
    "iQIzBAEBCAAdFiEE%s  Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2\n"
    "-----END PGP SIGNATURE-----\n", sha256_b, sha256_a);

  assert_lookup (gnu, "disk.qcow2", G_CHECKSUM_SHA256, sha256_a);
  assert_lookup (gnu, "other.qcow2", G_CHECKSUM_SHA256, sha256_b);
  assert_lookup (gnu, "missing.qcow2", G_CHECKSUM_SHA256, NULL);
  assert_lookup (gnu, "disk.qcow2", G_CHECKSUM_SHA512, NULL);
  assert_lookup (binary, "disk.qcow2", G_CHECKSUM_SHA256, sha256_a);
  assert_lookup (dotslash, "disk.qcow2", G_CHECKSUM_SHA256, sha256_a);
  assert_lookup (subdir, "disk.qcow2", G_CHECKSUM_SHA256, sha256_a);
  assert_lookup (escaped, "dir\\disk.qcow2", G_CHECKSUM_SHA256, sha256_a);
  assert_lookup (bsd, "disk.qcow2", G_CHECKSUM_SHA256, sha256_b);
  assert_lookup (bsd, "disk.qcow2", G_CHECKSUM_SHA512, NULL);
  assert_lookup (both, "disk.qcow2", G_CHECKSUM_SHA512, sha512_a);
  assert_lookup (both, "disk.qcow2", G_CHECKSUM_SHA256, sha256_a);
  assert_lookup (fedora, "Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2", G_CHECKSUM_SHA256, sha256_b);
  assert_lookup ("", "disk.qcow2", G_CHECKSUM_SHA256, NULL);
  assert_lookup ("not a checksum file\n<html>404</html>\n", "disk.qcow2", G_CHECKSUM_SHA256, NULL);

  /* Any algorithm, told by the digest's length. */
  {
    GChecksumType found = -1;
    g_autofree char *hex = qlean_checksum_file_lookup (both + strlen (sha256_a) + strlen ("  disk.qcow2\n"),
                                                       strlen (sha512_a) + strlen ("  disk.qcow2\n"),
                                                       "disk.qcow2", -1, &found, "test", NULL);

    g_assert_cmpstr (hex, ==, sha512_a);
    g_assert_cmpint (found, ==, G_CHECKSUM_SHA512);
  }
}

static void
test_digest_parse (void)
{
  static const char * const bad[] = {
    "", "sha256", "sha256:", ":abc", "md5:d41d8cd98f00b204e9800998ecf8427e", "sha256:xyz",
    "sha512:1111111111111111111111111111111111111111111111111111111111111111",
  };
  g_autofree char *good = g_strdup_printf ("SHA256:%s", sha256_b);
  g_autofree char *hex = NULL;
  GChecksumType type;

  g_assert_true (qlean_digest_parse (good, &type, &hex, NULL));
  g_assert_cmpint (type, ==, G_CHECKSUM_SHA256);
  g_assert_cmpstr (hex, ==, "abcdefabcdef0123456789abcdef0123456789abcdef0123456789abcdef0123");

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *h = NULL;

      g_assert_false (qlean_digest_parse (bad[i], &type, &h, &error));
      g_assert_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_INVALID_SOURCE);
    }
}

/* The catalog */

static void
test_catalog_builtin (void)
{
  GPtrArray *catalog = qlean_catalog_get ();
  g_autoptr(GHashTable) names = g_hash_table_new (g_str_hash, g_str_equal);
  static const struct { QleanDistro distro; const char *name; } wanted[] = {
    { QLEAN_DISTRO_DEBIAN, "debian-13-generic-amd64" },
    { QLEAN_DISTRO_DEBIAN, "debian-12-generic-amd64" },
    { QLEAN_DISTRO_DEBIAN, "debian-12-genericcloud-amd64" },
    { QLEAN_DISTRO_UBUNTU, "ubuntu-22.04" },
    { QLEAN_DISTRO_UBUNTU, "ubuntu-24.04" },
    { QLEAN_DISTRO_UBUNTU, "ubuntu-26.04" },
    { QLEAN_DISTRO_FEDORA, "fedora-43" },
    { QLEAN_DISTRO_FEDORA, "fedora-44" },
    /* End of life, kept so that a pinned name still resolves. */
    { QLEAN_DISTRO_FEDORA, "fedora-40" },
    { QLEAN_DISTRO_FEDORA, "fedora-41" },
    { QLEAN_DISTRO_ARCH, "arch" },
  };
  /* What each distribution supports in December 2026, per architecture. */
  static const char * const supported[] = {
    "debian-13-generic-amd64", "debian-13-generic-arm64", "debian-13-generic-riscv64",
    "debian-12-generic-amd64", "debian-12-generic-arm64",
    "ubuntu-26.04-server-cloudimg-amd64", "ubuntu-26.04-server-cloudimg-arm64",
    "ubuntu-26.04-server-cloudimg-riscv64",
    "ubuntu-24.04-server-cloudimg-amd64", "ubuntu-24.04-server-cloudimg-arm64",
    "ubuntu-24.04-server-cloudimg-riscv64",
    "ubuntu-22.04-server-cloudimg-amd64", "ubuntu-22.04-server-cloudimg-arm64",
    "fedora-44-cloud-base-generic-amd64", "fedora-44-cloud-base-generic-arm64",
    "fedora-43-cloud-base-generic-amd64", "fedora-43-cloud-base-generic-arm64",
    "arch-linux-cloudimg-amd64",
  };

  g_assert_cmpuint (catalog->len, >=, G_N_ELEMENTS (wanted));
  for (guint i = 0; i < catalog->len; i++)
    {
      const QleanCatalogEntry *entry = g_ptr_array_index (catalog, i);

      /* No name or alias twice. */
      g_assert_true (g_hash_table_add (names, entry->name));
      for (guint a = 0; entry->aliases[a] != NULL; a++)
        g_assert_true (g_hash_table_add (names, entry->aliases[a]));
      g_assert_true (g_str_has_prefix (entry->url, "https://"));
      g_assert_true (g_str_has_prefix (entry->checksum_url, "https://"));
      g_assert_true (g_str_equal (entry->arch, "amd64") || g_str_equal (entry->arch, "arm64") ||
                     g_str_equal (entry->arch, "riscv64"));
      /* Every release has an end of life, but Arch's rolling one. */
      g_assert_true ((entry->eol == NULL) == (entry->distro == QLEAN_DISTRO_ARCH));

      /* Ubuntu and Fedora sign their checksum files; Debian's cloud
       * images and Arch's lists are not signed. */
      switch (entry->distro)
        {
        case QLEAN_DISTRO_UBUNTU:
          g_assert_cmpint (entry->signature, ==, QLEAN_SIGNATURE_DETACHED);
          g_assert_cmpstr (entry->keyring, ==, "ubuntu-cloudimage-keyring.gpg");
          g_assert_true (g_str_has_prefix (entry->signature_url, "https://"));
          g_assert_true (g_str_has_suffix (entry->signature_url, "/SHA256SUMS.gpg"));
          break;
        case QLEAN_DISTRO_FEDORA:
          {
            g_autofree char *keyring = g_strdup_printf ("fedora-%s-primary.gpg", entry->release);

            g_assert_cmpint (entry->signature, ==, QLEAN_SIGNATURE_CLEARSIGNED);
            g_assert_cmpstr (entry->keyring, ==, keyring);
            g_assert_true (g_str_has_suffix (entry->checksum_url, "-CHECKSUM"));
          }
          break;
        default:
          g_assert_cmpint (entry->signature, ==, QLEAN_SIGNATURE_NONE);
          break;
        }
    }

  for (guint i = 0; i < G_N_ELEMENTS (supported); i++)
    {
      const QleanCatalogEntry *entry = qlean_catalog_lookup (catalog, -1, supported[i], NULL);

      g_assert_nonnull (entry);
      g_assert_false (qlean_eol_reached (entry->eol));
    }

  for (guint i = 0; i < G_N_ELEMENTS (wanted); i++)
    {
      g_autoptr(QleanImage) image = qlean_image_new_from_distro (wanted[i].distro, wanted[i].name);
      g_autofree char *url = qlean_image_dup_url (image);

      g_assert_nonnull (url);
      g_assert_cmpint (qlean_image_get_distro (image), ==, wanted[i].distro);
      g_assert_cmpint (qlean_image_get_kind (image), ==, QLEAN_IMAGE_KIND_DISTRO);
      g_assert_cmpuint (qlean_image_get_default_memory_mib (image), ==, 1024);
      g_assert_cmpstr (qlean_image_get_arch (image), ==, "amd64");
    }

  /* The seed's name, and each distribution's default: amd64, and not
   * past its end of life. */
  {
    g_autoptr(QleanImage) image = qlean_image_new_from_distro (QLEAN_DISTRO_DEBIAN, NULL);

    g_assert_cmpstr (qlean_image_get_name (image), ==, "debian-13-generic-amd64");
  }
  for (QleanDistro d = QLEAN_DISTRO_DEBIAN; d < QLEAN_DISTRO_CUSTOM; d++)
    {
      g_autoptr(QleanImage) image = qlean_image_new_from_distro (d, NULL);
      g_autofree char *eol = NULL;

      g_object_get (image, "eol", &eol, NULL);
      g_assert_cmpint (qlean_image_get_distro (image), ==, d);
      g_assert_cmpstr (qlean_image_get_arch (image), ==, "amd64");
      g_assert_false (qlean_eol_reached (eol));
    }
  {
    g_autoptr(QleanImage) image = qlean_image_new_from_distro (QLEAN_DISTRO_FEDORA, NULL);

    g_assert_cmpstr (qlean_image_get_name (image), ==, "fedora-44-cloud-base-generic-amd64");
  }
  {
    g_autoptr(QleanImage) old = qlean_image_new_from_distro (QLEAN_DISTRO_FEDORA, "fedora-41");
    g_autoptr(QleanImage) ubuntu = qlean_image_new_from_distro (QLEAN_DISTRO_UBUNTU, "noble");
    g_autoptr(QleanImage) debian = qlean_image_new_from_distro (QLEAN_DISTRO_DEBIAN, "trixie");
    g_autofree char *eol = NULL;
    gboolean is_signed = FALSE;

    g_object_get (old, "eol", &eol, "signed", &is_signed, NULL);
    g_assert_cmpstr (eol, ==, "2025-12-15");
    g_assert_true (qlean_eol_reached (eol));
    g_assert_true (is_signed);
    g_object_get (ubuntu, "signed", &is_signed, NULL);
    g_assert_true (is_signed);
    g_object_get (debian, "signed", &is_signed, NULL);
    g_assert_false (is_signed);
  }
}

static void
test_catalog_mirror (void)
{
  g_autoptr(QleanImage) image = qlean_image_new_from_distro (QLEAN_DISTRO_DEBIAN, "debian-13");
  g_autofree char *url = NULL;
  g_autofree char *checksum_url = NULL;
  guint notified = 0;

  g_signal_connect_swapped (image, "notify::mirror", G_CALLBACK (g_atomic_int_inc), &notified);
  qlean_image_set_mirror (image, "http://mirror.invalid/qlean/");
  g_assert_cmpuint (notified, ==, 1);
  url = qlean_image_dup_url (image);
  g_object_get (image, "checksum-url", &checksum_url, NULL);
  g_assert_cmpstr (url, ==, "http://mirror.invalid/qlean/debian-13-generic-amd64/debian-13-generic-amd64.qcow2");
  g_assert_cmpstr (checksum_url, ==, "http://mirror.invalid/qlean/debian-13-generic-amd64/SHA512SUMS");

  /* A directory works as a mirror. */
  qlean_image_set_mirror (image, "/srv/images");
  g_clear_pointer (&url, g_free);
  url = qlean_image_dup_url (image);
  g_assert_cmpstr (url, ==, "file:///srv/images/debian-13-generic-amd64/debian-13-generic-amd64.qcow2");

  qlean_image_set_mirror (image, NULL);
  g_clear_pointer (&url, g_free);
  url = qlean_image_dup_url (image);
  g_assert_true (g_str_has_prefix (url, "https://"));
}

static void
test_catalog_errors (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanImage) unknown = qlean_image_new_from_distro (QLEAN_DISTRO_DEBIAN, "debian-99");
  g_autoptr(QleanImage) mismatch = qlean_image_new_from_distro (QLEAN_DISTRO_FEDORA, "debian-13");
  g_autoptr(QleanImage) arm = qlean_image_new_from_distro (QLEAN_DISTRO_DEBIAN, "debian-13-generic-arm64");
  g_autoptr(QleanImage) by_name = NULL;

  g_assert_false (qlean_image_pull (unknown, NULL, &error));
  g_assert_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "debian-99"));
  g_assert_nonnull (strstr (error->message, "debian-13-generic-amd64"));
  g_clear_error (&error);

  g_assert_false (qlean_image_prepare (mismatch, NULL, &error));
  g_assert_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* Catalog entries carry their architecture (test-image-arm64.c pulls
   * and boots one). */
  g_assert_cmpstr (qlean_image_get_arch (arm), ==, "arm64");
  g_assert_cmpint (qlean_image_get_guest_arch (arm), ==, QLEAN_ARCH_AARCH64);

  by_name = qlean_image_new_from_catalog ("no-such-image", &error);
  g_assert_null (by_name);
  g_assert_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  by_name = qlean_image_new_from_catalog ("jammy", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (qlean_image_get_name (by_name), ==, "ubuntu-22.04-server-cloudimg-amd64");
}

static void
test_catalog_parse_errors (void)
{
  static const char * const bad[] = {
    "", "[]", "{\"images\": 3}",
    "{\"images\": [{\"name\": \"x\"}]}",
    "{\"images\": [{\"name\": \"x\", \"distro\": \"plan9\", \"arch\": \"amd64\", \"url\": \"u\", "
    "\"checksum-url\": \"c\", \"checksum\": \"sha256\"}]}",
    "{\"images\": [{\"name\": \"x\", \"distro\": \"debian\", \"arch\": \"amd64\", \"url\": \"u\", "
    "\"checksum-url\": \"c\", \"checksum\": \"md5\"}]}",
    "{\"images\": [{\"name\": \"x\", \"distro\": \"debian\", \"arch\": \"sparc\", \"url\": \"u\", "
    "\"checksum-url\": \"c\", \"checksum\": \"sha256\"}]}",
    "{\"images\": [{\"name\": \"x\", \"distro\": \"debian\", \"url\": \"u\", \"eol\": \"2027-13-01\", "
    "\"checksum-url\": \"c\", \"checksum\": \"sha256\"}]}",
    "{\"images\": [{\"name\": \"x\", \"distro\": \"debian\", \"url\": \"u\", \"eol\": \"soon\", "
    "\"checksum-url\": \"c\", \"checksum\": \"sha256\"}]}",
    "{\"images\": [{\"name\": \"x\", \"distro\": \"debian\", \"url\": \"u\", \"signature\": \"pgp\", "
    "\"checksum-url\": \"c\", \"checksum\": \"sha256\", \"keyring\": \"k\"}]}",
    /* Signed, but nothing to check the signature with. */
    "{\"images\": [{\"name\": \"x\", \"distro\": \"fedora\", \"url\": \"u\", \"signature\": \"clearsigned\", "
    "\"checksum-url\": \"c\", \"checksum\": \"sha256\"}]}",
    "{\"images\": [{\"name\": \"x\", \"distro\": \"ubuntu\", \"url\": \"u\", \"signature\": \"detached\", "
    "\"checksum-url\": \"c\", \"checksum\": \"sha256\", \"keyring\": \"k\"}]}",
  };

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GPtrArray) catalog = qlean_catalog_parse (bad[i], -1, "test.json", &error);

      g_assert_null (catalog);
      g_assert_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_FAILED);
      g_assert_nonnull (strstr (error->message, "test.json"));
    }

  /* The architecture defaults to amd64, and the kernel's names work. */
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) catalog = qlean_catalog_parse (
      "{\"images\": [{\"name\": \"a\", \"distro\": \"debian\", \"url\": \"u\", "
      "\"checksum-url\": \"c\", \"checksum\": \"sha256\"}, "
      "{\"name\": \"b\", \"distro\": \"debian\", \"arch\": \"aarch64\", \"url\": \"u\", "
      "\"checksum-url\": \"c\", \"checksum\": \"sha256\", \"eol\": \"2030-06-30\"}, "
      "{\"name\": \"c\", \"distro\": \"debian\", \"arch\": \"x86_64\", \"url\": \"u\", "
      "\"checksum-url\": \"c\", \"checksum\": \"sha256\"}]}", -1, "test.json", &error);
    const QleanCatalogEntry *entry;

    g_assert_no_error (error);
    entry = g_ptr_array_index (catalog, 0);
    g_assert_cmpstr (entry->arch, ==, "amd64");
    g_assert_null (entry->eol);
    g_assert_cmpint (entry->signature, ==, QLEAN_SIGNATURE_NONE);
    entry = g_ptr_array_index (catalog, 1);
    g_assert_cmpstr (entry->arch, ==, "arm64");
    g_assert_cmpstr (entry->eol, ==, "2030-06-30");
    entry = g_ptr_array_index (catalog, 2);
    g_assert_cmpstr (entry->arch, ==, "amd64");
  }
}

/* Custom sources */

static void
test_custom_source_rules (void)
{
  g_autofree char *digest = g_strdup_printf ("sha256:%s", sha256_a);
  static const char * const bad_sources[] = { "", "ftp://example.invalid/x.qcow2", "http://" };
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanImage) image = NULL;

  /* A remote image without its digest: refused. */
  image = qlean_image_new_from_url ("https://example.invalid/disk.qcow2", NULL, &error);
  g_assert_null (image);
  g_assert_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_INVALID_SOURCE);
  g_assert_nonnull (strstr (error->message, "digest"));
  g_clear_error (&error);

  /* A digest needs both halves. */
  image = qlean_image_new_from_url ("https://example.invalid/disk.qcow2", "sha256", &error);
  g_assert_null (image);
  g_assert_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_INVALID_SOURCE);
  g_clear_error (&error);

  for (guint i = 0; i < G_N_ELEMENTS (bad_sources); i++)
    {
      image = qlean_image_new_from_url (bad_sources[i], digest, &error);
      g_assert_null (image);
      g_assert_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_INVALID_SOURCE);
      g_clear_error (&error);
    }

  image = qlean_image_new_from_url ("https://example.invalid/dir/disk%20one.qcow2?x=1", digest, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (qlean_image_get_name (image), ==, "disk one.qcow2");
  g_assert_cmpint (qlean_image_get_distro (image), ==, QLEAN_DISTRO_CUSTOM);
  g_clear_object (&image);

  /* A local file may go without a digest. */
  image = qlean_image_new_from_url ("/nonexistent/disk.raw", NULL, &error);
  g_assert_no_error (error);
  g_assert_false (qlean_image_pull (image, NULL, &error));
  g_assert_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_NOT_FOUND);
}

static void
test_custom_local_verify (void)
{
  g_autofree char *cache = make_cache ("custom-local");
  g_autofree char *source = g_build_filename (cache, "small.raw", NULL);
  g_autofree char *digest = NULL;
  g_autofree char *cached = NULL;
  g_autoptr(GBytes) data = NULL;
  g_autoptr(QleanImage) image = NULL;
  g_autoptr(GError) error = NULL;
  guint8 buffer[256 * 1024];
  FILE *f;

  for (guint i = 0; i < sizeof buffer; i++)
    buffer[i] = g_random_int ();
  g_assert_true (g_file_set_contents (source, (const char *) buffer, sizeof buffer, NULL));
  {
    g_autofree char *hex = g_compute_checksum_for_data (G_CHECKSUM_SHA256, buffer, sizeof buffer);

    digest = g_strdup_printf ("sha256:%s", hex);
  }

  image = qlean_image_new_from_url (source, digest, &error);
  g_assert_no_error (error);
  qlean_image_set_cache_dir (image, cache);
  g_assert_null (qlean_image_get_cached_path (image));
  qlean_image_pull (image, NULL, &error);
  g_assert_no_error (error);
  cached = qlean_image_get_cached_path (image);
  g_assert_nonnull (cached);
  qlean_image_verify (image, NULL, &error);
  g_assert_no_error (error);

  /* Flip one byte in place: the quick check notices the change of mtime,
   * the full check the change of content, and removes the file. */
  f = g_fopen (cached, "r+b");
  g_assert_nonnull (f);
  fseek (f, 1000, SEEK_SET);
  fputc (buffer[1000] ^ 0xff, f);
  fclose (f);
  g_assert_false (qlean_image_verify (image, NULL, &error));
  g_assert_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_CHECKSUM_MISMATCH);
  g_assert_false (g_file_test (cached, G_FILE_TEST_EXISTS));
  g_clear_error (&error);

  /* Not cached any more. */
  g_assert_false (qlean_image_verify (image, NULL, &error));
  g_assert_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* A wrong digest for a local file: nothing enters the cache. */
  g_clear_object (&image);
  g_clear_pointer (&digest, g_free);
  digest = g_strdup_printf ("sha256:%s", sha256_a);
  image = qlean_image_new_from_url (source, digest, &error);
  g_assert_no_error (error);
  qlean_image_set_cache_dir (image, cache);
  g_assert_false (qlean_image_pull (image, NULL, &error));
  g_assert_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_CHECKSUM_MISMATCH);
  g_clear_error (&error);
  g_assert_cmpuint (count_cache_files (cache), ==, 1);  /* the source file */

  fixture_remove_cache (cache);
}

/* Downloads through the fixture server */

typedef struct
{
  GMainLoop *loop;
  GError    *error;
  gboolean   done;
  double     max_progress;
  guint      notifies;
  guint64    last_done;
  guint64    last_total;
  double     cancel_at;
  GCancellable *cancellable;
} PullWatch;

static void
on_progress_notify (GObject    *object,
                    GParamSpec *pspec,
                    gpointer    user_data)
{
  PullWatch *watch = user_data;
  double progress = qlean_image_get_download_progress (QLEAN_IMAGE (object));

  watch->notifies++;
  watch->max_progress = MAX (watch->max_progress, progress);
  if (watch->cancel_at > 0 && progress >= watch->cancel_at)
    g_cancellable_cancel (watch->cancellable);
}

static void
on_progress (QleanImage *image,
             guint64     done,
             guint64     total,
             gpointer    user_data)
{
  PullWatch *watch = user_data;

  watch->last_done = done;
  watch->last_total = total;
}

static void
pull_done (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  PullWatch *watch = user_data;

  qlean_image_pull_finish (QLEAN_IMAGE (source), result, &watch->error);
  watch->done = TRUE;
  g_main_loop_quit (watch->loop);
}

/* Pulls on this thread's main loop, watching progress. */
static gboolean
pull_watched (QleanImage *image,
              PullWatch  *watch,
              GError    **error)
{
  gulong notify_id, progress_id;

  watch->loop = g_main_loop_new (NULL, FALSE);
  notify_id = g_signal_connect (image, "notify::download-progress", G_CALLBACK (on_progress_notify), watch);
  progress_id = g_signal_connect (image, "progress", G_CALLBACK (on_progress), watch);
  qlean_image_pull_async (image, watch->cancellable, pull_done, watch);
  g_main_loop_run (watch->loop);
  /* The last report may still be queued. */
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_signal_handler_disconnect (image, notify_id);
  g_signal_handler_disconnect (image, progress_id);
  g_clear_pointer (&watch->loop, g_main_loop_unref);

  if (watch->error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&watch->error));
      return FALSE;
    }
  return TRUE;
}

static char *
prepared_cache;

static char *run_capture (const char * const *argv);

static gboolean
guest_is_file (guestfs_h  *g,
               const char *path)
{
  return guestfs_is_file_opts (g, path, GUESTFS_IS_FILE_OPTS_FOLLOWSYMLINKS, 1, -1) == 1;
}

/* A disk image's root file system, mounted with libguestfs. */
static guestfs_h *
open_disk (const char *disk,
           gboolean    readonly)
{
  guestfs_h *g = guestfs_create ();
  g_autofree char *qemu = qlean_host_find_qemu (NULL, NULL);
  g_auto(GStrv) roots = NULL;

  g_assert_nonnull (g);
  guestfs_set_backend (g, "direct");
  if (qemu == NULL || !qlean_host_kvm_usable (qemu, NULL))
    guestfs_set_backend_setting (g, "force_tcg", "1");
  g_assert_cmpint (guestfs_add_drive_opts (g, disk, GUESTFS_ADD_DRIVE_OPTS_FORMAT, "qcow2",
                                           GUESTFS_ADD_DRIVE_OPTS_READONLY, readonly, -1), ==, 0);
  g_assert_cmpint (guestfs_launch (g), ==, 0);
  roots = guestfs_inspect_os (g);
  g_assert_nonnull (roots);
  g_assert_nonnull (roots[0]);
  g_assert_cmpint (readonly ? guestfs_mount_ro (g, roots[0], "/") : guestfs_mount (g, roots[0], "/"), ==, 0);

  return g;
}

/* Opens the prepared disk read-only and checks what was injected. */
static void
check_prepared_disk (const char *disk)
{
  guestfs_h *g = open_disk (disk, TRUE);
  g_autofree char *cfg = NULL;
  size_t size;

  /* The agent (the fixture has none) and qlean-guest, with their units
   * pulled in by the ports' device units. */
  g_assert_true (guest_is_file (g, "/opt/qlean/qlean-guest"));
  g_assert_true (guest_is_file (g, "/opt/qlean/bin/qemu-ga"));
  g_assert_true (guest_is_file (g, "/opt/qlean/lib/ld-linux.so"));
  g_assert_true (guest_is_file (g, "/opt/qlean/lib/libglib-2.0.so.0"));
  g_assert_true (guest_is_file (g, "/etc/systemd/system/dev-virtio\\x2dports-org.qemu.guest_agent.0.device.wants/qlean-qemu-ga.service"));
  g_assert_true (guest_is_file (g, "/etc/systemd/system/dev-virtio\\x2dports-org.qlean.data.0.device.wants/qlean-guest.service"));
  cfg = guestfs_read_file (g, "/etc/systemd/system/qlean-qemu-ga.service", &size);
  g_assert_nonnull (strstr (cfg, "DefaultDependencies=no"));
  g_clear_pointer (&cfg, g_free);
  cfg = guestfs_read_file (g, "/etc/cloud/cloud.cfg.d/90-qlean.cfg", &size);
  g_assert_nonnull (strstr (cfg, "NoCloud"));

  guestfs_close (g);
}

static void
test_pull_verify_prepare (void)
{
  g_autoptr(QleanImage) image = NULL;
  g_autoptr(QleanImage) again = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *cached = NULL;
  g_autofree char *expected = NULL;
  g_auto(QleanCacheInfo) info = { 0 };
  PullWatch watch = { 0 };
  struct stat st;
  gint64 start;

  if (!need_fixture ())
    return;

  prepared_cache = make_cache ("prepared");
  image = fixture_image (prepared_cache, NULL);
  fixture_server_reset_counts (server);
  g_assert_null (qlean_image_get_cached_path (image));

  start = g_get_monotonic_time ();
  g_assert_true (pull_watched (image, &watch, &error));
  g_assert_no_error (error);
  g_test_message ("pull over HTTP: %.1f s", (g_get_monotonic_time () - start) / 1e6);

  cached = qlean_image_get_cached_path (image);
  g_assert_nonnull (cached);
  g_assert_cmpint (g_stat (cached, &st), ==, 0);
  g_assert_cmpuint (fixture_server_count (server, FIXTURE_FILE), ==, 1);
  g_assert_cmpuint (fixture_server_count (server, FIXTURE_SUMS), ==, 1);
  /* Progress went up to 1 on this thread's main context. */
  g_assert_cmpuint (watch.notifies, >, 0);
  g_assert_cmpfloat (watch.max_progress, ==, 1.0);
  g_assert_cmpuint (watch.last_total, ==, st.st_size);
  g_assert_cmpuint (watch.last_done, ==, st.st_size);
  expected = fixture_digest ();
  g_assert_true (qlean_cache_lookup (cached, &info));
  g_assert_cmpstr (info.hex, ==, expected);

  /* Cached: a second image object only checks the checksum list. */
  again = fixture_image (prepared_cache, NULL);
  qlean_image_pull (again, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (fixture_server_count (server, FIXTURE_FILE), ==, 1);
  g_assert_cmpuint (fixture_server_count (server, FIXTURE_SUMS), ==, 2);

  start = g_get_monotonic_time ();
  qlean_image_verify (image, NULL, &error);
  g_assert_no_error (error);
  g_test_message ("verify: %.1f s", (g_get_monotonic_time () - start) / 1e6);

  start = g_get_monotonic_time ();
  qlean_image_prepare (image, NULL, &error);
  g_assert_no_error (error);
  g_test_message ("prepare: %.1f s", (g_get_monotonic_time () - start) / 1e6);

  g_assert_true (qlean_image_is_prepared (image));
  g_assert_true (g_file_test (qlean_image_get_kernel (image), G_FILE_TEST_IS_REGULAR));
  g_assert_true (g_file_test (qlean_image_get_initrd (image), G_FILE_TEST_IS_REGULAR));
  g_assert_true (g_file_test (qlean_image_get_disk (image), G_FILE_TEST_IS_REGULAR));
  g_assert_true (g_str_has_suffix (qlean_image_get_disk (image), ".qcow2"));
  g_assert_true (g_str_has_prefix (qlean_image_get_cmdline (image), "console=ttyS0 root=UUID="));
  g_assert_nonnull (strstr (qlean_image_get_cmdline (image), " rw "));
  g_assert_true (qlean_image_has_cloud_init (image));
  g_assert_cmpuint (qlean_image_get_default_memory_mib (image), ==, 1024);

  /* The download is untouched, and still verifies. */
  g_assert_true (qlean_cache_lookup (cached, NULL));
  qlean_image_verify (image, NULL, &error);
  g_assert_no_error (error);

  /* Offline (the mirror refuses connections), the cached download is
   * used as it is. */
  {
    g_autoptr(QleanImage) offline = fixture_image (prepared_cache, NULL);

    qlean_image_set_mirror (offline, "http://127.0.0.1:1");
    qlean_image_pull (offline, NULL, &error);
    g_assert_no_error (error);
  }

  /* A second image of the same download finds the prepared copy. */
  start = g_get_monotonic_time ();
  qlean_image_prepare (again, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (qlean_image_get_disk (again), ==, qlean_image_get_disk (image));
  g_assert_cmpfloat ((g_get_monotonic_time () - start) / 1e6, <, 5.0);

  check_prepared_disk (qlean_image_get_disk (image));
}

static void
test_pull_resumes_after_drop (void)
{
  g_autofree char *cache = NULL;
  g_autoptr(QleanImage) image = NULL;
  g_autoptr(GError) error = NULL;

  if (!need_fixture ())
    return;

  cache = make_cache ("drop");
  image = fixture_image (cache, "/drop-once");
  fixture_server_reset_counts (server);

  qlean_image_pull (image, NULL, &error);
  g_assert_no_error (error);
  /* The connection broke halfway; the second request asked for the rest. */
  g_assert_cmpuint (fixture_server_count (server, FIXTURE_FILE), ==, 2);
  g_assert_cmpuint (fixture_server_count_ranged (server, FIXTURE_FILE), ==, 1);
  qlean_image_verify (image, NULL, &error);
  g_assert_no_error (error);

  fixture_remove_cache (cache);
}

static void
test_pull_resumes_after_cancel (void)
{
  g_autofree char *cache = NULL;
  g_autofree char *part = NULL;
  g_autoptr(QleanImage) image = NULL;
  g_autoptr(QleanImage) again = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  PullWatch watch = { 0 };
  struct stat st;

  if (!need_fixture ())
    return;

  cache = make_cache ("cancel");
  image = fixture_image (cache, "/slow");
  fixture_server_reset_counts (server);
  watch.cancellable = cancellable;
  watch.cancel_at = 0.2;

  g_assert_false (pull_watched (image, &watch, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);
  g_assert_null (qlean_image_get_cached_path (image));

  part = g_strconcat (cache, "/images/amd64/" FIXTURE_NAME "/" FIXTURE_NAME ".qcow2.part", NULL);
  g_assert_cmpint (g_stat (part, &st), ==, 0);
  g_assert_cmpint (st.st_size, >, 0);

  /* The next pull, by another image object, asks for the rest only. */
  again = fixture_image (cache, NULL);
  qlean_image_pull (again, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (fixture_server_count_ranged (server, FIXTURE_FILE), ==, 1);
  g_assert_false (g_file_test (part, G_FILE_TEST_EXISTS));
  qlean_image_verify (again, NULL, &error);
  g_assert_no_error (error);

  fixture_remove_cache (cache);
}

static void
test_pull_bad_checksum (void)
{
  g_autofree char *cache = NULL;
  g_autoptr(QleanImage) image = NULL;
  g_autoptr(GError) error = NULL;

  if (!need_fixture ())
    return;

  cache = make_cache ("bad-checksum");
  image = fixture_image (cache, "/bad-checksum");

  g_assert_false (qlean_image_pull (image, NULL, &error));
  g_assert_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_CHECKSUM_MISMATCH);
  g_assert_nonnull (strstr (error->message, fixture_server_get_url (server)));
  g_clear_error (&error);

  /* Nothing but lock files: no image, no part, no sidecar. */
  g_assert_cmpuint (count_cache_files (cache), ==, 0);
  g_assert_null (qlean_image_get_cached_path (image));
  g_assert_false (qlean_image_prepare (image, NULL, &error));
  g_assert_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_CHECKSUM_MISMATCH);
  g_assert_cmpuint (count_cache_files (cache), ==, 0);

  fixture_remove_cache (cache);
}

typedef struct
{
  const char *cache;
  GError     *error;
} ThreadPull;

static gpointer
pull_thread (gpointer data)
{
  ThreadPull *pull = data;
  g_autoptr(QleanImage) image = fixture_image (pull->cache, "/slow");

  qlean_image_pull (image, NULL, &pull->error);
  return NULL;
}

static void
test_pull_concurrent (void)
{
  g_autofree char *cache = NULL;
  g_autofree char *root = NULL;
  g_autofree char *cli = g_test_build_filename (G_TEST_BUILT, "..", "tools", "qlean", NULL);
  g_autofree char *mirror = NULL;
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GError) error = NULL;
  ThreadPull pulls[2] = { { 0 } };
  GThread *threads[2];

  if (!need_fixture ())
    return;

  /* The CLI uses $XDG_CACHE_HOME/qlean. */
  root = make_cache ("concurrent");
  cache = g_build_filename (root, "qlean", NULL);
  mirror = g_strdup_printf ("%s/slow", fixture_server_get_url (server));
  fixture_server_reset_counts (server);

  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    {
      pulls[i].cache = cache;
      threads[i] = g_thread_new ("pull", pull_thread, &pulls[i]);
    }

  /* And another process. */
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_MERGE);
  g_subprocess_launcher_setenv (launcher, "XDG_CACHE_HOME", root, TRUE);
  process = g_subprocess_launcher_spawn (launcher, &error, cli, "image", "pull", "--no-prepare",
                                         "--mirror", mirror, FIXTURE_NAME, NULL);
  g_assert_no_error (error);

  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    {
      g_thread_join (threads[i]);
      g_assert_no_error (pulls[i].error);
    }
  {
    g_autofree char *out = NULL;

    g_assert_true (g_subprocess_communicate_utf8 (process, NULL, NULL, &out, NULL, &error));
    g_assert_no_error (error);
    g_test_message ("qlean image pull: %s", out);
    g_assert_cmpint (g_subprocess_get_exit_status (process), ==, 0);
    g_assert_nonnull (strstr (out, "downloaded and verified"));
  }

  g_assert_cmpuint (fixture_server_count (server, FIXTURE_FILE), ==, 1);

  /* The CLI lists it as cached, and verifies it. */
  {
    g_autoptr(GSubprocess) ls = NULL;
    g_autoptr(GSubprocess) verify = NULL;
    g_autoptr(JsonParser) parser = json_parser_new ();
    g_autofree char *out = NULL;
    gboolean found = FALSE;
    JsonArray *array;

    ls = g_subprocess_launcher_spawn (launcher, &error, cli, "image", "ls", "--json", NULL);
    g_assert_no_error (error);
    g_assert_true (g_subprocess_communicate_utf8 (ls, NULL, NULL, &out, NULL, &error));
    g_assert_cmpint (g_subprocess_get_exit_status (ls), ==, 0);
    g_assert_true (json_parser_load_from_data (parser, out, -1, &error));
    array = json_node_get_array (json_parser_get_root (parser));
    for (guint i = 0; i < json_array_get_length (array); i++)
      {
        JsonObject *object = json_array_get_object_element (array, i);

        if (g_str_equal (json_object_get_string_member (object, "name"), FIXTURE_NAME))
          {
            found = TRUE;
            g_assert_nonnull (json_object_get_string_member (object, "cached"));
            g_assert_true (g_str_has_prefix (json_object_get_string_member (object, "cached"), cache));
          }
      }
    g_assert_true (found);
    g_clear_pointer (&out, g_free);

    verify = g_subprocess_launcher_spawn (launcher, &error, cli, "image", "verify", "debian-12", NULL);
    g_assert_no_error (error);
    g_assert_true (g_subprocess_communicate_utf8 (verify, NULL, NULL, &out, NULL, &error));
    g_assert_cmpint (g_subprocess_get_exit_status (verify), ==, 0);
    g_assert_true (g_str_has_prefix (out, "ok "));
  }

  fixture_remove_cache (root);
}

static void
test_pull_http_404 (void)
{
  g_autofree char *cache = NULL;
  g_autofree char *url = NULL;
  g_autofree char *digest = g_strdup_printf ("sha256:%s", sha256_a);
  g_autoptr(QleanImage) image = NULL;
  g_autoptr(QleanImage) catalog_image = NULL;
  g_autoptr(GError) error = NULL;

  if (!need_fixture ())
    return;

  cache = make_cache ("404");
  url = g_strdup_printf ("%s/nowhere/missing.qcow2", fixture_server_get_url (server));
  image = qlean_image_new_from_url (url, digest, &error);
  g_assert_no_error (error);
  qlean_image_set_cache_dir (image, cache);

  g_assert_false (qlean_image_pull (image, NULL, &error));
  g_assert_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_HTTP);
  g_assert_nonnull (strstr (error->message, url));
  g_assert_nonnull (strstr (error->message, "404"));
  g_clear_error (&error);

  /* A mirror without the image: its checksum list is missing. */
  catalog_image = fixture_image (cache, "/empty-mirror");
  g_assert_false (qlean_image_pull (catalog_image, NULL, &error));
  g_assert_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_HTTP);
  g_assert_nonnull (strstr (error->message, "/empty-mirror/" FIXTURE_NAME "/SHA512SUMS"));

  g_assert_cmpuint (count_cache_files (cache), ==, 0);
  fixture_remove_cache (cache);
}

static void
test_pull_no_network (void)
{
  g_autofree char *cache = make_cache ("no-network");
  g_autofree char *digest = g_strdup_printf ("sha256:%s", sha256_a);
  g_autoptr(GSocket) socket = NULL;
  g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) address = g_inet_socket_address_new (loopback, 0);
  g_autoptr(GSocketAddress) bound = NULL;
  g_autoptr(QleanImage) image = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *url = NULL;

  /* A port that was just free, closed again: connection refused. */
  socket = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
  g_assert_no_error (error);
  g_assert_true (g_socket_bind (socket, address, TRUE, &error));
  bound = g_socket_get_local_address (socket, &error);
  url = g_strdup_printf ("http://127.0.0.1:%u/disk.qcow2",
                         g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound)));
  g_socket_close (socket, NULL);

  image = qlean_image_new_from_url (url, digest, &error);
  g_assert_no_error (error);
  qlean_image_set_cache_dir (image, cache);
  g_assert_false (qlean_image_pull (image, NULL, &error));
  g_assert_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_NETWORK);
  g_assert_nonnull (strstr (error->message, url));
  g_assert_cmpuint (count_cache_files (cache), ==, 0);

  fixture_remove_cache (cache);
}

static void
test_pull_no_space (void)
{
  g_autofree char *cache = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *part = NULL;
  g_autoptr(QleanImage) image = NULL;
  g_autoptr(GError) error = NULL;

  if (!need_fixture ())
    return;
  if (!g_file_test ("/dev/full", G_FILE_TEST_EXISTS))
    {
      g_test_skip ("no /dev/full to stand for a full disk");
      return;
    }

  /* The download's part file is /dev/full: every write fails with
   * ENOSPC, as on a full disk. */
  cache = make_cache ("no-space");
  dir = g_build_filename (cache, "images", "amd64", FIXTURE_NAME, NULL);
  g_assert_cmpint (g_mkdir_with_parents (dir, 0755), ==, 0);
  part = g_build_filename (dir, FIXTURE_NAME ".qcow2.part", NULL);
  g_assert_cmpint (symlink ("/dev/full", part), ==, 0);

  image = fixture_image (cache, NULL);
  g_assert_false (qlean_image_pull (image, NULL, &error));
  g_assert_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_NO_SPACE);
  g_assert_nonnull (strstr (error->message, dir));
  g_assert_false (g_file_test (part, G_FILE_TEST_EXISTS) || g_file_test (part, G_FILE_TEST_IS_SYMLINK));

  fixture_remove_cache (cache);
}

/* Preparation failures */

static void
test_prepare_no_os (void)
{
  g_autofree char *cache = make_cache ("no-os");
  g_autofree char *blank = g_build_filename (cache, "blank.img", NULL);
  g_autofree char *prepared = g_build_filename (cache, "prepared", NULL);
  g_autoptr(QleanImage) image = NULL;
  g_autoptr(GError) error = NULL;
  FILE *f;

  f = g_fopen (blank, "wb");
  g_assert_nonnull (f);
  g_assert_cmpint (ftruncate (fileno (f), 64 * 1024 * 1024), ==, 0);
  fclose (f);

  image = qlean_image_new_from_url (blank, NULL, &error);
  g_assert_no_error (error);
  qlean_image_set_cache_dir (image, cache);

  g_assert_false (qlean_image_prepare (image, NULL, &error));
  g_assert_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_PREPARE_FAILED);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "no operating system"));
  g_assert_false (qlean_image_is_prepared (image));
  /* No half-prepared image is left: only the lock. */
  g_assert_cmpuint (count_cache_files (prepared), ==, 0);

  fixture_remove_cache (cache);
}

/* An image with its own agent keeps it, started early and with the
 * distribution's command filters lifted. */
static void
test_prepare_image_agent (void)
{
  g_autofree char *cache = NULL;
  g_autofree char *base = NULL;
  g_autofree char *derived = NULL;
  g_autofree char *text = NULL;
  g_autoptr(QleanImage) image = NULL;
  g_autoptr(GError) error = NULL;
  static const char unit[] =
    "[Unit]\nDescription=QEMU Guest Agent\nBindsTo=dev-virtio\\x2dports-org.qemu.guest_agent.0.device\n"
    "[Service]\nEnvironmentFile=-/etc/sysconfig/qemu-ga\nExecStart=/usr/bin/qemu-ga $FILTER_RPC_ARGS\n";
  static const char sysconfig[] = "# Fedora\nFILTER_RPC_ARGS=\"--allow-rpcs=guest-ping\"\n";
  static const char conf[] = "[general]\nblock-rpcs=guest-exec,guest-file-open\nverbose=0\n";
  guestfs_h *g;
  size_t size;

  if (!need_fixture ())
    return;

  /* The fixture, plus what Fedora ships: an agent, its unit (masked
   * here), and filters. The agent binary is a stand-in: nothing runs. */
  cache = make_cache ("image-agent");
  base = g_build_filename (fixture_dir, FIXTURE_FILE, NULL);
  derived = g_build_filename (cache, "with-agent.qcow2", NULL);
  /* A whole copy: custom images that name a backing file of this host
   * are refused. */
  {
    const char *argv[] = { "qemu-img", "convert", "-q", "-f", "qcow2", "-O", "qcow2", base, derived, NULL };

    g_free (run_capture (argv));
  }
  g = open_disk (derived, FALSE);
  g_assert_cmpint (guestfs_write (g, "/usr/bin/qemu-ga", "#!/bin/sh\n", 10), ==, 0);
  g_assert_cmpint (guestfs_chmod (g, 0755, "/usr/bin/qemu-ga"), ==, 0);
  g_assert_cmpint (guestfs_write (g, "/lib/systemd/system/qemu-guest-agent.service", unit, strlen (unit)), ==, 0);
  g_assert_cmpint (guestfs_mkdir_p (g, "/etc/sysconfig"), ==, 0);
  g_assert_cmpint (guestfs_write (g, "/etc/sysconfig/qemu-ga", sysconfig, strlen (sysconfig)), ==, 0);
  g_assert_cmpint (guestfs_mkdir_p (g, "/etc/qemu"), ==, 0);
  g_assert_cmpint (guestfs_write (g, "/etc/qemu/qemu-ga.conf", conf, strlen (conf)), ==, 0);
  g_assert_cmpint (guestfs_ln_s (g, "/dev/null", "/etc/systemd/system/qemu-guest-agent.service"), ==, 0);
  g_assert_cmpint (guestfs_shutdown (g), ==, 0);
  guestfs_close (g);

  image = qlean_image_new_from_url (derived, NULL, &error);
  g_assert_no_error (error);
  qlean_image_set_cache_dir (image, cache);
  qlean_image_prepare (image, NULL, &error);
  g_assert_no_error (error);

  g = open_disk (qlean_image_get_disk (image), TRUE);
  /* Its own agent, not the host's. */
  g_assert_false (guest_is_file (g, "/opt/qlean/bin/qemu-ga"));
  g_assert_false (guest_is_file (g, "/etc/systemd/system/qlean-qemu-ga.service"));
  g_assert_true (guest_is_file (g, "/opt/qlean/qlean-guest"));
  /* Unmasked, pulled in by the port, early, unfiltered. */
  g_assert_cmpint (guestfs_is_symlink (g, "/etc/systemd/system/qemu-guest-agent.service"), ==, 0);
  g_assert_true (guest_is_file (g, "/etc/systemd/system/dev-virtio\\x2dports-org.qemu.guest_agent.0.device.wants/qemu-guest-agent.service"));
  text = guestfs_read_file (g, "/etc/systemd/system/qemu-guest-agent.service.d/90-qlean.conf", &size);
  g_assert_nonnull (text);
  g_assert_nonnull (strstr (text, "DefaultDependencies=no"));
  g_assert_nonnull (strstr (text, "ExecStart=\nExecStart=/usr/bin/qemu-ga --method=virtio-serial"));
  g_clear_pointer (&text, g_free);
  text = guestfs_read_file (g, "/etc/sysconfig/qemu-ga", &size);
  g_assert_nonnull (strstr (text, "# disabled by Qlean: FILTER_RPC_ARGS="));
  g_clear_pointer (&text, g_free);
  text = guestfs_read_file (g, "/etc/qemu/qemu-ga.conf", &size);
  g_assert_nonnull (strstr (text, "# disabled by Qlean: block-rpcs="));
  g_assert_nonnull (strstr (text, "\nverbose=0"));
  guestfs_close (g);

  fixture_remove_cache (cache);
}

/* The cloud-init seed */

static char *
run_capture (const char * const *argv)
{
  g_autofree char *out = NULL;
  g_autoptr(GError) error = NULL;
  int status;

  g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDERR_TO_DEV_NULL,
                               NULL, NULL, &out, NULL, &status, &error));
  g_assert_no_error (error);
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  return g_steal_pointer (&out);
}

static void
test_seed (void)
{
  g_autofree char *dir = make_cache ("seed");
  g_autofree char *iso = g_build_filename (dir, "seed.iso", NULL);
  g_autofree char *iso2 = g_build_filename (dir, "seed2.iso", NULL);
  g_autofree char *out = g_build_filename (dir, "out", NULL);
  g_autofree char *out2 = g_build_filename (dir, "out2", NULL);
  g_autoptr(QleanImage) image = qlean_image_new_from_distro (QLEAN_DISTRO_DEBIAN, NULL);
  g_autoptr(GError) error = NULL;
  g_autofree char *pvd = NULL;
  g_autofree char *meta = NULL;
  g_autofree char *meta2 = NULL;
  g_autofree char *user = NULL;
  g_autofree char *path = NULL;
  g_autofree char *xorriso = g_find_program_in_path ("xorriso");
  g_autofree char *tmp_iso = g_strconcat (iso, ".tmp", NULL);

  if (xorriso == NULL)
    {
      g_test_skip ("xorriso is not installed (apt-get install xorriso)");
      return;
    }

  g_assert_true (qlean_image_write_seed (image, "alice", iso, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_image_write_seed (image, "alice", iso2, &error));
  g_assert_no_error (error);

  {
    const char *argv[] = { "xorriso", "-indev", iso, "-pvd_info", NULL };

    pvd = run_capture (argv);
    g_assert_nonnull (strstr (pvd, "Volume Id    : cidata"));
  }
  {
    const char *argv[] = { "xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/", out, NULL };
    const char *argv2[] = { "xorriso", "-osirrox", "on", "-indev", iso2, "-extract", "/", out2, NULL };

    g_free (run_capture (argv));
    g_free (run_capture (argv2));
  }

  path = g_build_filename (out, "meta-data", NULL);
  g_assert_true (g_file_get_contents (path, &meta, NULL, NULL));
  g_assert_nonnull (strstr (meta, "local-hostname: \"alice\""));
  g_assert_nonnull (strstr (meta, "instance-id: \"qlean-alice-"));
  g_clear_pointer (&path, g_free);
  path = g_build_filename (out2, "meta-data", NULL);
  g_assert_true (g_file_get_contents (path, &meta2, NULL, NULL));
  /* Each seed is a new instance. */
  g_assert_cmpstr (meta, !=, meta2);

  g_clear_pointer (&path, g_free);
  path = g_build_filename (out, "user-data", NULL);
  g_assert_true (g_file_get_contents (path, &user, NULL, NULL));
  g_assert_true (g_str_has_prefix (user, "#cloud-config\n"));
  g_assert_nonnull (strstr (user, "hostname: \"alice\""));
  g_assert_null (strstr (user, "ssh_authorized_keys"));

  /* Nothing but the two seeds and what was extracted. */
  g_assert_false (g_file_test (tmp_iso, G_FILE_TEST_EXISTS));

  fixture_remove_cache (dir);
}

/* First boot (cloud-init from the seed) and normal boot, on the
 * prepared fixture: the whole path of a distribution image. */
static char *
exec_text (QleanMachine *machine,
           const char   *command)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanExecResult) result = qlean_machine_exec (machine, command, NULL, &error);

  g_assert_no_error (error);
  g_assert_true (qlean_exec_result_success (result));
  return g_strstrip (qlean_exec_result_get_stdout_text (result));
}

static void
test_boot_init_then_spawn (void)
{
  g_autoptr(QleanImage) image = NULL;
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *text = NULL;
  gint64 start;

  if (!need_fixture ())
    return;
  g_assert_nonnull (prepared_cache);

  image = fixture_image (prepared_cache, NULL);
  qlean_image_prepare (image, NULL, &error);
  g_assert_no_error (error);
  machine = qlean_machine_new_with_name ("alice", image, NULL);
  /* A systemd guest under TCG on a busy 2-core host: minutes, not 60 s. */
  qlean_machine_set_boot_timeout (machine, 300 * 1000);

  /* First boot: cloud-init runs from the seed and is waited for. */
  start = g_get_monotonic_time ();
  qlean_machine_initialize (machine, NULL, &error);
  g_assert_no_error (error);
  g_test_message ("init: %.1f s", (g_get_monotonic_time () - start) / 1e6);
  text = exec_text (machine, "hostname");
  g_assert_cmpstr (text, ==, "alice");
  g_clear_pointer (&text, g_free);
  text = exec_text (machine, "whoami");
  g_assert_cmpstr (text, ==, "root");
  g_clear_pointer (&text, g_free);
  text = exec_text (machine, "cloud-init status");
  g_assert_nonnull (strstr (text, "done"));
  g_clear_pointer (&text, g_free);
  g_assert_true (qlean_machine_shutdown (machine, NULL, &error));
  g_assert_no_error (error);

  /* Normal boot: no seed, and cloud-init's first-boot modules do not run
   * again: still one instance, still the same hostname. This boot runs
   * on the stock agent alone, so that the agent's paths meet a
   * distribution's tools (util-linux's setpriv, GNU tar) and not only
   * busybox's. */
  qlean_machine_config_set_guest_transport (qlean_machine_get_config (machine),
                                            QLEAN_GUEST_TRANSPORT_AGENT);
  start = g_get_monotonic_time ();
  qlean_machine_spawn (machine, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (qlean_machine_get_guest_transport (machine), ==, QLEAN_GUEST_TRANSPORT_AGENT);
  g_test_message ("spawn: %.1f s", (g_get_monotonic_time () - start) / 1e6);
  text = exec_text (machine, "hostname");
  g_assert_cmpstr (text, ==, "alice");
  g_clear_pointer (&text, g_free);
  text = exec_text (machine, "ls /var/lib/cloud/instances | wc -l; grep -c \"running 'modules:config'\" /var/log/cloud-init.log");
  g_assert_cmpstr (text, ==, "1\n1");
  g_clear_pointer (&text, g_free);
  /* A process as another user and file system calls, over the agent:
   * they run the guest's own tools. */
  {
    const char * const id[] = { "sh", "-c", "echo $(id -u):$(id -g):$HOME:$USER", NULL };
    g_autoptr(QleanGuestLauncher) launcher = qlean_guest_launcher_new (QLEAN_GUEST_PROCESS_FLAGS_NONE);
    g_autoptr(QleanExecResult) result = NULL;
    g_autofree char *dir = g_dir_make_tmp ("qlean-distro-tree-XXXXXX", &error);
    g_autofree char *sub = g_build_filename (dir, "tree", "sub", NULL);
    g_autofree char *file = g_build_filename (sub, "file", NULL);
    g_autofree char *back_file = g_build_filename (dir, "back", "sub", "file", NULL);
    g_autofree char *contents = NULL;
    g_autoptr(GFile) tree = g_file_new_build_filename (dir, "tree", NULL);
    g_autoptr(GFile) back = g_file_new_build_filename (dir, "back", NULL);
    const char *rm[] = { "rm", "-rf", dir, NULL };

    qlean_guest_launcher_set_user (launcher, "nobody");
    result = qlean_guest_launcher_run (launcher, machine, id, NULL, &error);
    g_assert_no_error (error);
    g_clear_pointer (&text, g_free);
    text = qlean_exec_result_get_stdout_text (result);
    g_assert_cmpstr (text, ==, "65534:65534:/nonexistent:nobody\n");

    /* A tree both ways: one GNU tar stream each way. */
    g_assert_cmpint (g_mkdir_with_parents (sub, 0755), ==, 0);
    g_assert_true (g_file_set_contents (file, "in a tree\n", -1, &error));
    g_assert_true (qlean_machine_upload (machine, tree, "/root/tree", NULL, &error));
    g_assert_no_error (error);
    g_assert_true (qlean_machine_download (machine, "/root/tree", back, NULL, &error));
    g_assert_no_error (error);
    g_assert_true (g_file_get_contents (back_file, &contents, NULL, &error));
    g_assert_cmpstr (contents, ==, "in a tree\n");
    g_assert_true (g_spawn_sync (NULL, (char **) rm, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                                 NULL, NULL, NULL, &error));
  }
  {
    g_autoptr(GBytes) hello = g_bytes_new_static ("hello\n", 6);
    g_autoptr(GBytes) back = NULL;
    g_autoptr(GFileInfo) info = NULL;

    g_assert_true (qlean_machine_write (machine, "/root/hello", hello, NULL, &error));
    g_assert_no_error (error);
    back = qlean_machine_read (machine, "/root/hello", NULL, &error);
    g_assert_no_error (error);
    g_assert_true (g_bytes_equal (back, hello));
    info = qlean_machine_metadata (machine, "/opt/qlean", NULL, &error);
    g_assert_no_error (error);
    g_assert_cmpint (g_file_info_get_file_type (info), ==, G_FILE_TYPE_DIRECTORY);
    g_assert_true (qlean_machine_create_dir_all (machine, "/root/a/b", NULL, &error));
    g_assert_true (qlean_machine_exists (machine, "/root/a/b", NULL, &error));
  }
  g_assert_true (qlean_machine_shutdown (machine, NULL, &error));
  g_assert_no_error (error);
}

/* Signed checksum files, with throwaway keys made for this run in a
 * private GNUPGHOME (nothing secret is shipped), served by a fixture
 * server over a directory of small files. */

typedef struct
{
  char          *root;      /* served: signed/, other/ */
  char          *gnupghome;
  char          *keyring;   /* key A's public key, binary */
  char          *image_hex; /* sha256 of signed/tiny.img */
  FixtureServer *server;
} SignedFixture;

static SignedFixture *signed_fixture;
static gboolean signed_fixture_tried;

static gboolean
run_gpg (const char  *home,
         const char  *input,
         GError     **error,
         ...)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_auto(GStrv) envp = g_environ_setenv (g_get_environ (), "GNUPGHOME", home, TRUE);
  g_autofree char *err = NULL;
  const char *arg;
  int status = 0;
  va_list args;

  g_ptr_array_add (argv, "gpg");
  g_ptr_array_add (argv, "--batch");
  g_ptr_array_add (argv, "--quiet");
  g_ptr_array_add (argv, "--yes");
  va_start (args, error);
  while ((arg = va_arg (args, const char *)) != NULL)
    g_ptr_array_add (argv, (char *) arg);
  va_end (args);
  g_ptr_array_add (argv, NULL);

  envp = g_environ_setenv (envp, "LC_ALL", "C", TRUE);
  if (!g_spawn_sync (input, (char **) argv->pdata, envp, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL,
                     NULL, NULL, NULL, &err, &status, error))
    return FALSE;
  if (!g_spawn_check_wait_status (status, error))
    {
      g_prefix_error (error, "gpg: %s: ", err);
      return FALSE;
    }

  return TRUE;
}

static void
write_file (const char *dir,
            const char *name,
            const char *text,
            gssize      len)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_autoptr(GError) error = NULL;

  g_file_set_contents (path, text, len, &error);
  g_assert_no_error (error);
}

static void
signed_fixture_free (SignedFixture *fixture)
{
  if (fixture == NULL)
    return;

  g_clear_pointer (&fixture->server, fixture_server_free);
  if (fixture->gnupghome != NULL)
    {
      const char *argv[] = { "gpgconf", "--kill", "all", NULL };
      g_auto(GStrv) envp = g_environ_setenv (g_get_environ (), "GNUPGHOME", fixture->gnupghome, TRUE);

      g_spawn_sync (NULL, (char **) argv, envp, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL |
                    G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, NULL, NULL, NULL, NULL);
      qlean_rm_rf (fixture->gnupghome, NULL);
    }
  if (fixture->root != NULL)
    qlean_rm_rf (fixture->root, NULL);
  g_free (fixture->root);
  g_free (fixture->gnupghome);
  g_free (fixture->keyring);
  g_free (fixture->image_hex);
  g_free (fixture);
}

/* signed/: tiny.img, SHA256SUMS with its detached signature by key A,
 * CHECKSUM clear-signed by key A with an unsigned line before it that
 * names tiny.img with a wrong digest; other/: the same SHA256SUMS signed
 * by key B, which the keyring does not hold. */
static SignedFixture *
need_signed_fixture (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *signed_dir = NULL;
  g_autofree char *other_dir = NULL;
  g_autofree char *sums = NULL;
  g_autofree char *bsd = NULL;
  g_autofree char *wrapped = NULL;
  g_autofree char *clearsigned = NULL;
  g_autofree char *path = NULL;
  g_autofree char *home_b = NULL;
  g_autofree char *key_a = NULL;
  guchar image[64 * 1024];
  SignedFixture *fixture;

  if (signed_fixture_tried)
    {
      if (signed_fixture == NULL)
        g_test_skip ("gpg cannot make throwaway keys here");
      return signed_fixture;
    }
  signed_fixture_tried = TRUE;

  if (g_find_program_in_path ("gpg") == NULL || g_find_program_in_path ("gpgv") == NULL)
    {
      g_test_skip ("gpg and gpgv are needed (tools/setup.sh deps installs them)");
      return NULL;
    }

  fixture = g_new0 (SignedFixture, 1);
  fixture->root = g_dir_make_tmp ("qlean-signed-XXXXXX", &error);
  g_assert_no_error (error);
  fixture->gnupghome = g_dir_make_tmp ("qlean-gnupg-XXXXXX", &error);
  g_assert_no_error (error);
  home_b = g_build_filename (fixture->gnupghome, "b", NULL);
  g_assert_cmpint (g_mkdir (home_b, 0700), ==, 0);
  signed_dir = g_build_filename (fixture->root, "signed", NULL);
  other_dir = g_build_filename (fixture->root, "other", NULL);
  g_assert_cmpint (g_mkdir (signed_dir, 0755), ==, 0);
  g_assert_cmpint (g_mkdir (other_dir, 0755), ==, 0);

  for (gsize i = 0; i < sizeof image; i++)
    image[i] = (guchar) (i * 7 + i / 251);
  write_file (signed_dir, "tiny.img", (const char *) image, sizeof image);
  fixture->image_hex = g_compute_checksum_for_data (G_CHECKSUM_SHA256, image, sizeof image);

  sums = g_strdup_printf ("%s *other.img\n%s *tiny.img\n", sha256_a, fixture->image_hex);
  write_file (signed_dir, "SHA256SUMS", sums, -1);
  write_file (other_dir, "SHA256SUMS", sums, -1);
  bsd = g_strdup_printf ("# tiny.img: 65536 bytes\nSHA256 (tiny.img) = %s\n", fixture->image_hex);
  write_file (fixture->gnupghome, "CHECKSUM.in", bsd, -1);

  if (!run_gpg (fixture->gnupghome, NULL, &error, "--passphrase", "", "--quick-gen-key",
                "Qlean test key A <a@qlean.invalid>", "ed25519", "sign", "never", NULL) ||
      !run_gpg (home_b, NULL, &error, "--passphrase", "", "--quick-gen-key",
                "Qlean test key B <b@qlean.invalid>", "ed25519", "sign", "never", NULL))
    {
      g_test_message ("%s", error->message);
      signed_fixture_free (fixture);
      g_test_skip ("gpg cannot make throwaway keys here");
      return NULL;
    }

  key_a = g_build_filename (fixture->root, "keyring.gpg", NULL);
  fixture->keyring = g_steal_pointer (&key_a);
  path = g_build_filename (signed_dir, "SHA256SUMS", NULL);
  g_assert_true (run_gpg (fixture->gnupghome, NULL, &error, "--output", fixture->keyring, "--export", NULL));
  g_assert_true (run_gpg (fixture->gnupghome, signed_dir, &error, "--detach-sign", "--output",
                          "SHA256SUMS.gpg", "SHA256SUMS", NULL));
  g_assert_true (run_gpg (home_b, other_dir, &error, "--detach-sign", "--output",
                          "SHA256SUMS.gpg", "SHA256SUMS", NULL));
  g_assert_true (run_gpg (fixture->gnupghome, fixture->gnupghome, &error, "--clearsign", "--output",
                          "CHECKSUM.asc", "CHECKSUM.in", NULL));
  g_assert_no_error (error);

  /* Text around a clear-signed message is not signed: a line that names
   * the image there must not count. */
  g_clear_pointer (&path, g_free);
  path = g_build_filename (fixture->gnupghome, "CHECKSUM.asc", NULL);
  g_assert_true (g_file_get_contents (path, &clearsigned, NULL, NULL));
  wrapped = g_strdup_printf ("SHA256 (tiny.img) = %s\n%s", sha256_a, clearsigned);
  write_file (signed_dir, "Tiny-CHECKSUM", wrapped, -1);

  /* The signed text changed, its armour intact: another image's digest. */
  {
    char *at = strstr (clearsigned, fixture->image_hex);

    g_assert_nonnull (at);
    memcpy (at, sha256_a, strlen (sha256_a));
    write_file (signed_dir, "Tampered-CHECKSUM", clearsigned, -1);
  }

  fixture->server = fixture_server_new (fixture->root, &error);
  g_assert_no_error (error);

  signed_fixture = fixture;
  return fixture;
}

/* A catalog image of tiny.img, its checksums at @checksum_path (with a
 * fault prefix, maybe) and signed as @signature says. */
static QleanImage *
signed_image (SignedFixture *fixture,
              const char    *cache,
              const char    *checksum_path,
              const char    *signature,
              const char    *signature_path,
              const char    *keyring)
{
  const char *url = fixture_server_get_url (fixture->server);
  g_autofree char *signature_member = signature_path
    ? g_strdup_printf ("\"signature-url\": \"%s%s\", ", url, signature_path) : g_strdup ("");
  g_autofree char *json = g_strdup_printf (
    "{\"images\": [{\"name\": \"tiny\", \"distro\": \"ubuntu\", \"release\": \"1\", "
    "\"url\": \"%s/signed/tiny.img\", \"checksum-url\": \"%s%s\", \"checksum\": \"sha256\", "
    "\"signature\": \"%s\", %s\"keyring\": \"%s\", \"format\": \"raw\"}]}",
    url, url, checksum_path, signature, signature_member, keyring ? keyring : fixture->keyring);
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) catalog = qlean_catalog_parse (json, -1, "test.json", &error);
  QleanImage *image;

  g_assert_no_error (error);
  image = qlean_image_new_from_catalog_entry (g_ptr_array_index (catalog, 0));
  qlean_image_set_cache_dir (image, cache);
  return image;
}

static void
assert_pull_refused (QleanImage    *image,
                     const char    *cache,
                     GQuark         domain,
                     int            code,
                     const char    *in_message)
{
  g_autoptr(GError) error = NULL;

  g_assert_false (qlean_image_pull (image, NULL, &error));
  g_assert_error (error, domain, code);
  g_test_message ("refused: %s", error->message);
  if (in_message != NULL)
    g_assert_nonnull (strstr (error->message, in_message));
  /* Nothing was downloaded, nothing was kept. */
  g_assert_null (qlean_image_get_cached_path (image));
  g_assert_cmpuint (count_cache_files (cache), ==, 0);
  g_assert_cmpuint (fixture_server_count (signed_fixture->server, "/signed/tiny.img"), ==, 0);
}

static void
test_signature_detached (void)
{
  SignedFixture *fixture = need_signed_fixture ();
  g_autofree char *cache = NULL;
  g_autoptr(QleanImage) good = NULL;
  g_autoptr(QleanImage) tampered = NULL;
  g_autoptr(QleanImage) other_key = NULL;
  g_autoptr(QleanImage) unsigned_list = NULL;
  g_autoptr(QleanImage) no_keyring = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *cached = NULL;
  g_auto(QleanCacheInfo) info = { 0 };

  if (fixture == NULL)
    return;
  cache = make_cache ("signature-detached");
  fixture_server_reset_counts (fixture->server);

  /* A list whose digits were changed on the way: refused before the
   * image is asked for. */
  tampered = signed_image (fixture, cache, "/bad-checksum/signed/SHA256SUMS", "detached",
                           "/signed/SHA256SUMS.gpg", NULL);
  assert_pull_refused (tampered, cache, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_BAD_SIGNATURE, "BAD signature");

  /* The same list, signed by a key that is not the distribution's. */
  other_key = signed_image (fixture, cache, "/other/SHA256SUMS", "detached", "/other/SHA256SUMS.gpg", NULL);
  assert_pull_refused (other_key, cache, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_BAD_SIGNATURE, "No public key");

  /* No signature to be had: refused, not taken unsigned. */
  unsigned_list = signed_image (fixture, cache, "/signed/SHA256SUMS", "detached",
                                "/signed/SHA256SUMS.sig", NULL);
  assert_pull_refused (unsigned_list, cache, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_HTTP, "404");

  /* No keyring to check it with. */
  no_keyring = signed_image (fixture, cache, "/signed/SHA256SUMS", "detached", "/signed/SHA256SUMS.gpg",
                             "no-such-keyring.gpg");
  assert_pull_refused (no_keyring, cache, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
                       "no-such-keyring.gpg");

  /* Signed by the key in the keyring: pulled and verified. */
  good = signed_image (fixture, cache, "/signed/SHA256SUMS", "detached", "/signed/SHA256SUMS.gpg", NULL);
  g_assert_true (qlean_image_pull (good, NULL, &error));
  g_assert_no_error (error);
  cached = qlean_image_get_cached_path (good);
  g_assert_nonnull (cached);
  g_assert_true (qlean_cache_lookup (cached, &info));
  g_assert_cmpstr (info.hex, ==, fixture->image_hex);
  g_assert_cmpuint (fixture_server_count (fixture->server, "/signed/SHA256SUMS.gpg"), >=, 1);

  fixture_remove_cache (cache);
}

static void
test_signature_clearsigned (void)
{
  SignedFixture *fixture = need_signed_fixture ();
  g_autofree char *cache = NULL;
  g_autoptr(QleanImage) good = NULL;
  g_autoptr(QleanImage) tampered = NULL;
  g_autoptr(QleanImage) plain = NULL;
  g_autoptr(GError) error = NULL;
  g_auto(QleanCacheInfo) info = { 0 };
  g_autofree char *cached = NULL;

  if (fixture == NULL)
    return;
  cache = make_cache ("signature-clearsigned");
  fixture_server_reset_counts (fixture->server);

  /* Another digest in the signed text: the signature no longer fits. */
  tampered = signed_image (fixture, cache, "/signed/Tampered-CHECKSUM", "clearsigned", NULL, NULL);
  assert_pull_refused (tampered, cache, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_BAD_SIGNATURE, "BAD signature");
  g_clear_object (&tampered);

  /* Digits changed on the way, armour included. */
  tampered = signed_image (fixture, cache, "/bad-checksum/signed/Tiny-CHECKSUM", "clearsigned", NULL, NULL);
  assert_pull_refused (tampered, cache, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_BAD_SIGNATURE, NULL);

  /* A list that is not signed at all, where a signed one is expected. */
  plain = signed_image (fixture, cache, "/signed/SHA256SUMS", "clearsigned", NULL, NULL);
  assert_pull_refused (plain, cache, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_BAD_SIGNATURE, NULL);

  /* Only the signed text counts: the unsigned line before it, with a
   * wrong digest for tiny.img, is not read. */
  good = signed_image (fixture, cache, "/signed/Tiny-CHECKSUM", "clearsigned", NULL, NULL);
  g_assert_true (qlean_image_pull (good, NULL, &error));
  g_assert_no_error (error);
  cached = qlean_image_get_cached_path (good);
  g_assert_nonnull (cached);
  g_assert_true (qlean_cache_lookup (cached, &info));
  g_assert_cmpstr (info.hex, ==, fixture->image_hex);

  fixture_remove_cache (cache);
}

/* The keyrings Qlean ships hold the distributions' keys, and nothing
 * else: the fingerprints in data/keyrings/README.md. */
static void
test_signature_shipped_keyrings (void)
{
  static const struct { const char *keyring; const char *fingerprints; } expected[] = {
    { "ubuntu-cloudimage-keyring.gpg",
      "D2EB44626FDDC30B513D5BB71A5D6C4C7DB87C81 4A3CE3CD565D7EB5C810E2B97FF3F408476CF100" },
    { "fedora-44-primary.gpg", "36F612DCF27F7D1A48A835E4DBFCF71C6D9F90A6" },
    { "fedora-43-primary.gpg", "C6E7F081CF80E13146676E88829B606631645531" },
    { "fedora-41-primary.gpg", "466CF2D8B60BC3057AA9453ED0622462E99D6AD1" },
    { "fedora-40-primary.gpg", "115DF9AEF857853EE8445D0A0727707EA15B79CC" },
  };
  GPtrArray *catalog = qlean_catalog_get ();
  guint signed_entries = 0;

  if (g_find_program_in_path ("gpg") == NULL)
    {
      g_test_skip ("gpg is needed to read the keyrings");
      return;
    }

  for (guint i = 0; i < catalog->len; i++)
    {
      const QleanCatalogEntry *entry = g_ptr_array_index (catalog, i);
      g_autoptr(GError) error = NULL;
      g_autofree char *path = NULL;
      g_autofree char *out = NULL;
      g_autoptr(GString) found = g_string_new (NULL);
      g_auto(GStrv) lines = NULL;
      const char *want = NULL;
      int status = 0;

      if (entry->signature == QLEAN_SIGNATURE_NONE)
        continue;
      signed_entries++;

      path = qlean_keyring_find (entry->keyring, &error);
      g_assert_no_error (error);
      for (guint k = 0; k < G_N_ELEMENTS (expected); k++)
        if (g_str_equal (expected[k].keyring, entry->keyring))
          want = expected[k].fingerprints;
      g_assert_nonnull (want);

      {
        g_autofree char *home = g_dir_make_tmp ("qlean-gnupg-XXXXXX", NULL);
        const char *argv[] = { "gpg", "--homedir", home, "--batch", "--with-colons", "--show-keys", path, NULL };

        g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDERR_TO_DEV_NULL,
                                     NULL, NULL, &out, NULL, &status, &error));
        g_assert_no_error (error);
        qlean_rm_rf (home, NULL);
      }
      g_assert_true (g_spawn_check_wait_status (status, NULL));

      /* Primary keys only: "pub" then its "fpr". */
      lines = g_strsplit (out, "\n", -1);
      for (guint l = 0; lines[l] != NULL; l++)
        if (g_str_has_prefix (lines[l], "pub:") && lines[l + 1] != NULL && g_str_has_prefix (lines[l + 1], "fpr:"))
          {
            g_auto(GStrv) fields = g_strsplit (lines[l + 1], ":", -1);

            g_string_append_printf (found, "%s%s", found->len ? " " : "", fields[9]);
          }
      g_assert_cmpstr (found->str, ==, want);
    }

  g_assert_cmpuint (signed_entries, >=, 10);
}

/* Pulling an image past its end of life says so (once per image). */
static guint eol_messages;

static GLogWriterOutput
count_eol_messages (GLogLevelFlags   level,
                    const GLogField *fields,
                    gsize            n_fields,
                    gpointer         user_data)
{
  for (gsize i = 0; i < n_fields; i++)
    if (g_str_equal (fields[i].key, "MESSAGE") && fields[i].length < 0 &&
        strstr (fields[i].value, "reached its end of life") != NULL)
      g_atomic_int_inc (&eol_messages);

  return g_log_writer_default (level, fields, n_fields, user_data);
}

static void
test_catalog_eol_pull (void)
{
  g_autofree char *cache = make_cache ("eol");
  g_autofree char *dir = g_build_filename (cache, "mirror", NULL);
  g_autofree char *file_dir = g_build_filename (dir, "old", NULL);
  g_autofree char *hex = NULL;
  g_autofree char *sums = NULL;
  g_autofree char *json = NULL;
  g_autofree char *eol = NULL;
  g_autoptr(GPtrArray) catalog = NULL;
  g_autoptr(QleanImage) old = NULL;
  g_autoptr(QleanImage) current = NULL;
  g_autoptr(GError) error = NULL;
  static const char data[] = "not really a disk";

  g_assert_cmpint (g_mkdir_with_parents (file_dir, 0755), ==, 0);
  write_file (file_dir, "old.img", data, sizeof data - 1);
  hex = g_compute_checksum_for_data (G_CHECKSUM_SHA256, (const guchar *) data, sizeof data - 1);
  sums = g_strdup_printf ("%s  old.img\n", hex);
  write_file (file_dir, "SHA256SUMS", sums, -1);
  json = g_strdup_printf ("{\"images\": ["
                          "{\"name\": \"old\", \"distro\": \"fedora\", \"release\": \"9\", "
                          "\"url\": \"file://%s/old.img\", \"checksum-url\": \"file://%s/SHA256SUMS\", "
                          "\"checksum\": \"sha256\", \"eol\": \"2000-01-01\", \"format\": \"raw\"}, "
                          "{\"name\": \"current\", \"distro\": \"fedora\", \"release\": \"99\", "
                          "\"url\": \"file://%s/old.img\", \"checksum-url\": \"file://%s/SHA256SUMS\", "
                          "\"checksum\": \"sha256\", \"eol\": \"2999-01-01\", \"format\": \"raw\"}]}",
                          file_dir, file_dir, file_dir, file_dir);
  catalog = qlean_catalog_parse (json, -1, "test.json", &error);
  g_assert_no_error (error);

  old = qlean_image_new_from_catalog_entry (g_ptr_array_index (catalog, 0));
  qlean_image_set_cache_dir (old, cache);
  g_object_get (old, "eol", &eol, NULL);
  g_assert_cmpstr (eol, ==, "2000-01-01");

  g_atomic_int_set (&eol_messages, 0);
  g_assert_true (qlean_image_pull (old, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_image_pull (old, NULL, &error));
  g_assert_cmpuint (g_atomic_int_get (&eol_messages), ==, 1);

  current = qlean_image_new_from_catalog_entry (g_ptr_array_index (catalog, 1));
  qlean_image_set_cache_dir (current, cache);
  g_assert_true (qlean_image_pull (current, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (g_atomic_int_get (&eol_messages), ==, 1);

  fixture_remove_cache (cache);
}

/* Redirects: only to http and https, never from https down to http, at
 * most five of them. */
static void
test_download_redirects (void)
{
  g_autofree char *root = g_dir_make_tmp ("qlean-redirect-XXXXXX", NULL);
  g_autoptr(FixtureServer) local = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) bytes = NULL;
  g_autofree char *url = NULL;
  g_autofree char *out_dir = g_build_filename (root, "out", NULL);
  g_autofree char *dest = g_build_filename (out_dir, "f", NULL);
  g_autofree char *part = g_strconcat (dest, ".part", NULL);
  g_auto(QleanCacheInfo) info = { 0 };
  static const char * const refused[] = { "/redirect-file/f", "/redirect-ftp/f", "/redirect-loop/f" };

  /* The policy itself: an https download is redirected to https only. */
  g_assert_cmpstr (qlean_download_redirect_protocols ("https://example.invalid/x"), ==, "https");
  g_assert_cmpstr (qlean_download_redirect_protocols ("HTTPS://example.invalid/x"), ==, "https");
  g_assert_cmpstr (qlean_download_redirect_protocols ("http://example.invalid/x"), ==, "http,https");
  g_assert_cmpstr (qlean_download_redirect_protocols ("file:///x"), ==, "http,https");

  write_file (root, "f", "payload\n", -1);
  g_assert_cmpint (g_mkdir (out_dir, 0755), ==, 0);
  local = fixture_server_new (root, &error);
  g_assert_no_error (error);

  /* http to http is followed. */
  url = g_strdup_printf ("%s/redirect/f", fixture_server_get_url (local));
  bytes = qlean_download_bytes (url, 1024, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes), "payload\n", 8);

  for (guint i = 0; i < G_N_ELEMENTS (refused); i++)
    {
      g_clear_pointer (&url, g_free);
      g_clear_pointer (&bytes, g_bytes_unref);
      url = g_strdup_printf ("%s%s", fixture_server_get_url (local), refused[i]);
      bytes = qlean_download_bytes (url, 1024, NULL, &error);
      g_assert_null (bytes);
      g_assert_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_HTTP);
      g_test_message ("%s: %s", refused[i], error->message);
      g_assert_nonnull (strstr (error->message, url));
      if (i == 2)
        g_assert_nonnull (strstr (error->message, "more than 5"));
      else
        g_assert_nonnull (strstr (error->message, "refuses to follow"));
      g_clear_error (&error);

      /* A file download too, and it leaves nothing behind. */
      g_assert_false (qlean_download_file (url, dest, G_CHECKSUM_SHA256, NULL, &info, NULL, NULL,
                                           NULL, &error));
      g_assert_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_HTTP);
      g_clear_error (&error);
      g_assert_false (g_file_test (dest, G_FILE_TEST_EXISTS));
      g_assert_false (g_file_test (part, G_FILE_TEST_EXISTS));
    }
  /* The loop stopped after the cap. */
  g_assert_cmpuint (fixture_server_count (local, "/redirect-loop/f"), <=, 2 * 6);

  g_clear_pointer (&local, fixture_server_free);
  qlean_rm_rf (root, NULL);
}

/* The local HTTPS server dies with the test, even when an assertion
 * aborts it. */
static void
die_with_parent (gpointer user_data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

/* A real HTTPS server (openssl s_server with a throwaway certificate that
 * only this test trusts) that redirects to plain HTTP: refused, and no
 * connection goes out over HTTP. https to https is followed. */
static void
test_download_https_downgrade (void)
{
  g_autofree char *openssl = g_find_program_in_path ("openssl");
  g_autofree char *root = NULL;
  g_autofree char *www = NULL;
  g_autofree char *cert = NULL;
  g_autofree char *key = NULL;
  g_autofree char *line = NULL;
  g_autofree char *url = NULL;
  g_autofree char *text = NULL;
  g_autofree char *dest = NULL;
  g_autofree char *part = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) server_process = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autoptr(FixtureServer) plain = NULL;
  g_autoptr(GBytes) bytes = NULL;
  g_auto(QleanCacheInfo) info = { 0 };
  guint port = 0;

  if (openssl == NULL)
    {
      g_test_skip ("openssl is needed for a local HTTPS server");
      return;
    }

  root = g_dir_make_tmp ("qlean-https-XXXXXX", &error);
  g_assert_no_error (error);
  www = g_build_filename (root, "www", NULL);
  g_assert_cmpint (g_mkdir (www, 0755), ==, 0);
  cert = g_build_filename (root, "cert.pem", NULL);
  key = g_build_filename (root, "key.pem", NULL);
  {
    const char *argv[] = { openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                           "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                           "-addext", "subjectAltName=IP:127.0.0.1", NULL };
    int status = 0;

    g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL,
                                 NULL, NULL, NULL, NULL, &status, &error));
    g_assert_true (g_spawn_check_wait_status (status, &error));
  }

  /* The plain HTTP server the downgrade would reach. */
  write_file (root, "f", "over http\n", -1);
  plain = fixture_server_new (root, &error);
  g_assert_no_error (error);

  /* -HTTP serves each file as a whole response, headers included. */
  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                        G_SUBPROCESS_FLAGS_STDERR_SILENCE);
  g_subprocess_launcher_set_cwd (launcher, www);
  g_subprocess_launcher_set_child_setup (launcher, die_with_parent, NULL, NULL);
  server_process = g_subprocess_launcher_spawn (launcher, &error, openssl, "s_server", "-HTTP", "-accept",
                                                "127.0.0.1:0", "-cert", cert, "-key", key, NULL);
  g_assert_no_error (error);
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (server_process));
  while ((line = g_data_input_stream_read_line (out, NULL, NULL, NULL)) != NULL)
    {
      const char *colon = strrchr (line, ':');

      if (g_str_has_prefix (line, "ACCEPT") && colon != NULL)
        {
          port = (guint) g_ascii_strtoull (colon + 1, NULL, 10);
          break;
        }
      g_clear_pointer (&line, g_free);
    }
  g_assert_cmpuint (port, >, 0);

  write_file (www, "ok", "HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nover tls\r\n", -1);
  text = g_strdup_printf ("HTTP/1.0 302 Found\r\nLocation: https://127.0.0.1:%u/ok\r\n"
                          "Content-Length: 0\r\n\r\n", port);
  write_file (www, "up", text, -1);
  g_clear_pointer (&text, g_free);
  text = g_strdup_printf ("HTTP/1.0 302 Found\r\nLocation: %s/f\r\nContent-Length: 0\r\n\r\n",
                          fixture_server_get_url (plain));
  write_file (www, "down", text, -1);

  qlean_download_set_test_ca_file (cert);

  /* https to https: followed. */
  url = g_strdup_printf ("https://127.0.0.1:%u/up", port);
  bytes = qlean_download_bytes (url, 1024, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes), "over tls\r\n", 10);

  /* https to http: refused, before anything is asked of the HTTP server. */
  g_clear_pointer (&url, g_free);
  url = g_strdup_printf ("https://127.0.0.1:%u/down", port);
  g_clear_pointer (&bytes, g_bytes_unref);
  bytes = qlean_download_bytes (url, 1024, NULL, &error);
  g_assert_null (bytes);
  g_assert_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_HTTP);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "only be redirected to https"));
  g_clear_error (&error);

  dest = g_build_filename (root, "image", NULL);
  part = g_strconcat (dest, ".part", NULL);
  g_assert_false (qlean_download_file (url, dest, G_CHECKSUM_SHA256, NULL, &info, NULL, NULL, NULL, &error));
  g_assert_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_HTTP);
  g_assert_false (g_file_test (dest, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (part, G_FILE_TEST_EXISTS));
  g_assert_cmpuint (fixture_server_count (plain, "/f"), ==, 0);

  qlean_download_set_test_ca_file (NULL);
  g_subprocess_force_exit (server_process);
  g_subprocess_wait (server_process, NULL, NULL);
  g_clear_pointer (&plain, fixture_server_free);
  qlean_rm_rf (root, NULL);
}

/* `qlean run -i NAME`: a catalog image by name, from the command line,
 * first boot with cloud-init included. The CLI's cache is the prepared
 * one, seen through $XDG_CACHE_HOME/qlean. */
static void
test_boot_cli_by_name (void)
{
  g_autofree char *home = NULL;
  g_autofree char *link = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) envp = NULL;
  int status = -1;

  if (!need_fixture ())
    return;
  g_assert_nonnull (prepared_cache);

  home = g_dir_make_tmp ("qlean-cli-cache-XXXXXX", &error);
  g_assert_no_error (error);
  link = g_build_filename (home, "qlean", NULL);
  g_assert_cmpint (symlink (prepared_cache, link), ==, 0);
  envp = g_environ_setenv (g_get_environ (), "XDG_CACHE_HOME", home, TRUE);

  {
    const char *argv[] = { QLEAN_BUILD_CLI, "run", "-i", FIXTURE_NAME,
                           "--mirror", fixture_server_get_url (server),
                           "--", "sh", "-c", "cat /etc/debian_version; cloud-init status", NULL };

    g_spawn_sync (NULL, (char **) argv, envp, G_SPAWN_DEFAULT, NULL, NULL, &out, &err, &status, &error);
  }
  g_unlink (link);
  g_rmdir (home);
  g_assert_no_error (error);
  g_test_message ("qlean run said: %s%s", out, err);
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  g_assert_true (g_str_has_prefix (out, "12."));
  g_assert_nonnull (strstr (out, "status: done"));

  /* A name that is not in the catalog: a usage error that lists them. */
  {
    const char *argv[] = { QLEAN_BUILD_CLI, "run", "-i", "no-such-image", "--", "true", NULL };

    g_clear_pointer (&err, g_free);
    g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL, &err,
                  &status, &error);
    g_assert_no_error (error);
    g_assert_true (WIFEXITED (status));
    g_assert_cmpint (WEXITSTATUS (status), ==, 2);
    g_assert_nonnull (strstr (err, "no-such-image"));
    g_assert_nonnull (strstr (err, FIXTURE_NAME));
  }
}

int
main (int    argc,
      char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  g_log_set_writer_func (count_eol_messages, NULL, NULL);

  g_test_add_func ("/image/checksum-file/formats", test_checksum_file_formats);
  g_test_add_func ("/image/digest/parse", test_digest_parse);
  g_test_add_func ("/image/catalog/builtin", test_catalog_builtin);
  g_test_add_func ("/image/catalog/mirror", test_catalog_mirror);
  g_test_add_func ("/image/catalog/errors", test_catalog_errors);
  g_test_add_func ("/image/catalog/parse-errors", test_catalog_parse_errors);
  g_test_add_func ("/image/catalog/eol-pull", test_catalog_eol_pull);
  g_test_add_func ("/image/download/redirects", test_download_redirects);
  g_test_add_func ("/image/download/https-downgrade", test_download_https_downgrade);
  g_test_add_func ("/image/signature/detached", test_signature_detached);
  g_test_add_func ("/image/signature/clearsigned", test_signature_clearsigned);
  g_test_add_func ("/image/signature/shipped-keyrings", test_signature_shipped_keyrings);
  g_test_add_func ("/image/custom/source-rules", test_custom_source_rules);
  g_test_add_func ("/image/custom/local-verify", test_custom_local_verify);
  g_test_add_func ("/image/seed", test_seed);
  g_test_add_func ("/image/pull/no-network", test_pull_no_network);
  g_test_add_func ("/image/pull/verify-prepare", test_pull_verify_prepare);
  g_test_add_func ("/image/pull/resume-after-drop", test_pull_resumes_after_drop);
  g_test_add_func ("/image/pull/resume-after-cancel", test_pull_resumes_after_cancel);
  g_test_add_func ("/image/pull/bad-checksum", test_pull_bad_checksum);
  g_test_add_func ("/image/pull/concurrent", test_pull_concurrent);
  g_test_add_func ("/image/pull/http-404", test_pull_http_404);
  g_test_add_func ("/image/pull/no-space", test_pull_no_space);
  g_test_add_func ("/image/prepare/no-os", test_prepare_no_os);
  g_test_add_func ("/image/prepare/image-agent", test_prepare_image_agent);
  g_test_add_func ("/image/boot/init-then-spawn", test_boot_init_then_spawn);
  g_test_add_func ("/image/boot/cli-by-name", test_boot_cli_by_name);

  status = g_test_run ();

  g_clear_pointer (&signed_fixture, signed_fixture_free);
  g_clear_pointer (&server, fixture_server_free);
  if (prepared_cache != NULL)
    fixture_remove_cache (prepared_cache);
  g_free (prepared_cache);
  g_free (fixture_dir);
  g_free (fixture_skip_reason);

  return status;
}
