/* qlean-cli-image.c: `qlean image ls|pull|verify`
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>
#include <unistd.h>
#include <glib-unix.h>
#include <glib/gi18n.h>

#include "qlean-cli-private.h"

static gboolean opt_image_json;
static char *opt_digest;
static char *opt_mirror;
static gboolean opt_no_prepare;

static const char *
distro_name (QleanDistro distro)
{
  g_autoptr(GEnumClass) klass = g_type_class_ref (QLEAN_TYPE_DISTRO);
  GEnumValue *value = g_enum_get_value (klass, distro);

  return value ? value->value_nick : "?";
}

/* Whether the end of life @eol ("YYYY-MM-DD", or NULL for a rolling
 * release) is today or past, in UTC. */
static gboolean
eol_reached (const char *eol)
{
  g_autoptr(GDateTime) now = g_date_time_new_now_utc ();
  g_autofree char *today = g_date_time_format (now, "%Y-%m-%d");

  /* ISO dates compare as strings. */
  return eol != NULL && strcmp (eol, today) <= 0;
}

/* "2030-06-30", "2025-12-15 (past)", or "-" for a rolling release. */
static char *
eol_text (const char *eol)
{
  if (eol == NULL)
    return g_strdup ("-");
  if (eol_reached (eol))
    return g_strdup_printf (_("%s (past)"), eol);
  return g_strdup (eol);
}

/* A catalog name or alias, or a URL or path with an optional digest. */
/* NAME (a catalog name or alias), URL or PATH, as `qlean image pull`
 * and `qlean run -i` take them; @digest is for a URL or a path. */
QleanImage *
cli_image_from_argument (const char  *argument,
                         const char  *digest,
                         GError     **error)
{
  if (strchr (argument, '/') != NULL || g_file_test (argument, G_FILE_TEST_EXISTS))
    return qlean_image_new_from_url (argument, digest, error);

  if (digest != NULL)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _("--digest is for an image given by URL or path; catalog images are "
                     "verified against their distribution's checksums"));
      return NULL;
    }

  return qlean_image_new_from_catalog (argument, error);
}

/* qlean image ls */

/* The size of an image's file in the cache (0 when it cannot be read). */
static goffset
cached_file_size (const char *cached)
{
  g_autoptr(GFile) file = g_file_new_for_path (cached);
  g_autoptr(GFileInfo) info = g_file_query_info (file, G_FILE_ATTRIBUTE_STANDARD_SIZE,
                                                 G_FILE_QUERY_INFO_NONE, NULL, NULL);

  return info ? g_file_info_get_size (info) : 0;
}

/* One image of qlean image ls --json. */
static void
add_image_json (JsonBuilder *builder,
                QleanImage  *image)
{
  g_autofree char *cached = qlean_image_get_cached_path (image);
  g_autofree char *url = qlean_image_dup_url (image);
  g_autofree char *checksum_url = NULL;
  g_autofree char *release = NULL;
  g_autofree char *format = NULL;
  g_autofree char *eol = NULL;
  g_auto(GStrv) aliases = NULL;
  gboolean is_signed = FALSE;

  g_object_get (image, "checksum-url", &checksum_url, "release", &release,
                "format", &format, "aliases", &aliases, "eol", &eol,
                "signed", &is_signed, NULL);

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "name");
  json_builder_add_string_value (builder, qlean_image_get_name (image));
  json_builder_set_member_name (builder, "aliases");
  json_builder_begin_array (builder);
  for (guint a = 0; aliases != NULL && aliases[a] != NULL; a++)
    json_builder_add_string_value (builder, aliases[a]);
  json_builder_end_array (builder);
  json_builder_set_member_name (builder, "distro");
  json_builder_add_string_value (builder, distro_name (qlean_image_get_distro (image)));
  json_builder_set_member_name (builder, "release");
  json_builder_add_string_value (builder, release);
  json_builder_set_member_name (builder, "arch");
  json_builder_add_string_value (builder, qlean_image_get_arch (image));
  json_builder_set_member_name (builder, "format");
  json_builder_add_string_value (builder, format);
  json_builder_set_member_name (builder, "url");
  json_builder_add_string_value (builder, url);
  json_builder_set_member_name (builder, "checksum-url");
  json_builder_add_string_value (builder, checksum_url);
  json_builder_set_member_name (builder, "signed");
  json_builder_add_boolean_value (builder, is_signed);
  json_builder_set_member_name (builder, "eol");
  json_builder_add_string_value (builder, eol);
  json_builder_set_member_name (builder, "end-of-life");
  json_builder_add_boolean_value (builder, eol_reached (eol));
  json_builder_set_member_name (builder, "cached");
  json_builder_add_string_value (builder, cached);
  json_builder_set_member_name (builder, "size");
  if (cached != NULL)
    json_builder_add_int_value (builder, cached_file_size (cached));
  else
    json_builder_add_null_value (builder);
  json_builder_end_object (builder);
}

static void
print_images_json (GPtrArray *images)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(JsonNode) root = NULL;

  json_builder_begin_array (builder);
  for (guint i = 0; i < images->len; i++)
    add_image_json (builder, g_ptr_array_index (images, i));
  json_builder_end_array (builder);
  root = json_builder_get_root (builder);
  print_json (root);
}

static void
print_images_table (GPtrArray *images)
{
  g_print ("%-36s %-7s %-7s %-7s %-17s %-9s %-10s %s\n", _("NAME"), _("DISTRO"), _("RELEASE"),
           _("ARCH"), _("END OF LIFE"), _("SIGNATURE"), _("CACHED"), _("ALIASES"));
  for (guint i = 0; i < images->len; i++)
    {
      QleanImage *image = g_ptr_array_index (images, i);
      g_autofree char *cached = qlean_image_get_cached_path (image);
      g_autofree char *release = NULL;
      g_autofree char *size = NULL;
      g_autofree char *alias_list = NULL;
      g_autofree char *eol = NULL;
      g_autofree char *eol_column = NULL;
      g_auto(GStrv) aliases = NULL;
      gboolean is_signed = FALSE;

      g_object_get (image, "release", &release, "aliases", &aliases, "eol", &eol,
                    "signed", &is_signed, NULL);
      eol_column = eol_text (eol);
      if (cached != NULL)
        size = g_format_size (cached_file_size (cached));
      alias_list = aliases ? g_strjoinv (", ", aliases) : g_strdup ("");

      g_print ("%-36s %-7s %-7s %-7s %-17s %-9s %-10s %s\n", qlean_image_get_name (image),
               distro_name (qlean_image_get_distro (image)), release ? release : "-",
               qlean_image_get_arch (image), eol_column, is_signed ? _("checked") : _("none"),
               size ? size : "-", alias_list);
    }
}

static int
image_ls (int    argc,
          char **argv)
{
  static GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &opt_image_json, N_("Print the list as JSON"), NULL },
    { NULL }
  };
  g_autoptr(GPtrArray) images = NULL;
  int status;

  if (!parse_options ("image ls", "",
                      _("List the images of the catalog, and the custom images in the cache,\n"
                        "with what is downloaded. NAME or any alias works for “qlean image pull”.\n"
                        "END OF LIFE is the day the release stops getting security updates\n"
                        "(“(past)” once it has); SIGNATURE says whether the distribution signs\n"
                        "the checksum file and Qlean checks that signature with its key."),
                      entries, &argc, &argv, &status))
    return status;
  if (argc > 1)
    {
      g_printerr (_("qlean image ls: unexpected argument “%s”\n"), argv[1]);
      return EXIT_USAGE;
    }

  images = qlean_image_list_available ();
  if (opt_image_json)
    print_images_json (images);
  else
    print_images_table (images);

  return 0;
}

/* qlean image pull */

typedef struct
{
  GMainLoop    *loop;
  GError       *error;
  FILE         *out;
  gboolean      tty;
  gboolean      drawn;
  gint64        started;
  gint64        last_draw;
} PullState;

static void
draw_progress (QleanImage *image,
               guint64     done,
               guint64     total,
               gpointer    user_data)
{
  PullState *state = user_data;
  gint64 now = g_get_monotonic_time ();
  double seconds = (now - state->started) / (double) G_USEC_PER_SEC;
  g_autofree char *done_text = g_format_size (done);
  g_autofree char *total_text = total ? g_format_size (total) : g_strdup ("?");
  g_autofree char *rate = g_format_size (seconds > 0.2 ? (guint64) (done / seconds) : 0);
  char bar[31];
  guint filled = total ? (guint) (30.0 * done / total) : 0;

  if (!state->tty || (now - state->last_draw < G_USEC_PER_SEC / 10 && done != total))
    return;
  state->last_draw = now;

  for (guint i = 0; i < 30; i++)
    bar[i] = i < filled ? '#' : '-';
  bar[30] = '\0';

  /* Carriage return and clear-to-end: one line that updates in place. */
  fprintf (state->out, "\r\033[K%s [%s] %3.0f%%  %s / %s  %s/s", qlean_image_get_name (image), bar,
           total ? 100.0 * done / total : 0.0, done_text, total_text, rate);
  fflush (state->out);
  state->drawn = TRUE;
}

static void
end_progress (PullState *state)
{
  if (state->drawn)
    fputs ("\n", state->out);
  state->drawn = FALSE;
}

static void
pull_done_cb (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  PullState *state = user_data;

  qlean_image_pull_finish (QLEAN_IMAGE (source), result, &state->error);
  g_main_loop_quit (state->loop);
}

static void
prepare_done_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  PullState *state = user_data;

  qlean_image_prepare_finish (QLEAN_IMAGE (source), result, &state->error);
  g_main_loop_quit (state->loop);
}

static gboolean
on_pull_interrupt (gpointer user_data)
{
  g_cancellable_cancel (user_data);
  return G_SOURCE_CONTINUE;
}

static int
image_pull (int    argc,
            char **argv)
{
  static GOptionEntry entries[] = {
    { "digest", 0, 0, G_OPTION_ARG_STRING, &opt_digest,
      N_("Digest of an image given by URL or path: sha256:HEX or sha512:HEX"), N_("DIGEST") },
    { "mirror", 0, 0, G_OPTION_ARG_STRING, &opt_mirror,
      N_("Download from MIRROR/NAME/ instead (default: $QLEAN_IMAGE_MIRROR)"), N_("URL") },
    { "no-prepare", 0, 0, G_OPTION_ARG_NONE, &opt_no_prepare,
      N_("Only download and verify; do not prepare the image for booting"), NULL },
    { NULL }
  };
  g_autoptr(QleanImage) image = NULL;
  g_autoptr(GError) error = NULL;
  int status;

  if (!parse_options ("image pull", _("NAME|URL|PATH"),
                      _("Download an image into the cache, verify it, and prepare it for booting\n"
                        "(inject the guest agent, extract the kernel). NAME is a catalog name or\n"
                        "alias (see “qlean image ls”); a URL or a path is a custom image, which\n"
                        "needs --digest unless it is a local file. An interrupted download\n"
                        "resumes where it stopped. Exits with 0 when the image is ready, 1 when\n"
                        "it could not be downloaded, verified or prepared, 2 on bad usage."),
                      entries, &argc, &argv, &status))
    return status;
  if (argc != 2)
    {
      g_printerr (_("qlean image pull: give one image\nTry “qlean image pull --help”.\n"));
      return EXIT_USAGE;
    }

  image = cli_image_from_argument (argv[1], opt_digest, &error);
  if (image == NULL)
    {
      print_error ("image pull", error);
      return g_error_matches (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE) ? EXIT_USAGE : EXIT_FAILED;
    }
  if (opt_mirror != NULL)
    qlean_image_set_mirror (image, opt_mirror);

  if (!cli_pull_image (image, !opt_no_prepare, stdout, TRUE, &error))
    {
      print_error ("image pull", error);
      return EXIT_FAILED;
    }

  return 0;
}

/**
 * cli_pull_image:
 * @image: a catalog or custom image
 * @prepare: also prepare it for booting
 * @out: where progress and what happened go: stdout for `image pull`,
 *   stderr where stdout is a guest command's
 * @always_report: say "downloaded and verified" and "ready" even when the
 *   cache had the image already
 *
 * Downloads, verifies and (with @prepare) prepares @image where the cache
 * lacks it, drawing a progress bar on @out when that is a terminal and
 * the CLI is not quiet. SIGINT and SIGTERM cancel; an interrupted
 * download resumes next time.
 */
gboolean
cli_pull_image (QleanImage  *image,
                gboolean     prepare,
                FILE        *out,
                gboolean     always_report,
                GError     **error)
{
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autofree char *before = qlean_image_get_cached_path (image);
  g_autofree char *cached = NULL;
  gboolean report = !cli_is_quiet () && (always_report || before == NULL);
  PullState state = { 0 };
  guint sigint, sigterm;

  state.loop = loop;
  state.out = out;
  state.tty = isatty (fileno (out)) && !cli_is_quiet ();
  state.started = g_get_monotonic_time ();
  g_signal_connect (image, "progress", G_CALLBACK (draw_progress), &state);
  sigint = g_unix_signal_add (SIGINT, on_pull_interrupt, cancellable);
  sigterm = g_unix_signal_add (SIGTERM, on_pull_interrupt, cancellable);

  qlean_image_pull_async (image, cancellable, pull_done_cb, &state);
  g_main_loop_run (loop);
  end_progress (&state);

  if (state.error == NULL && report)
    {
      cached = qlean_image_get_cached_path (image);
      fprintf (out, _("%s: downloaded and verified: %s\n"), qlean_image_get_name (image),
               cached ? cached : "?");
    }

  if (state.error == NULL && prepare)
    {
      if (state.tty && report)
        fprintf (out, _("%s: preparing (the first time takes a minute)…\n"), qlean_image_get_name (image));
      fflush (out);
      qlean_image_prepare_async (image, cancellable, prepare_done_cb, &state);
      g_main_loop_run (loop);
      if (state.error == NULL && report)
        fprintf (out, _("%s: ready: %s\n"), qlean_image_get_name (image), qlean_image_get_disk (image));
    }
  fflush (out);

  g_source_remove (sigint);
  g_source_remove (sigterm);
  g_signal_handlers_disconnect_by_data (image, &state);

  if (state.error != NULL)
    {
      g_propagate_error (error, state.error);
      return FALSE;
    }

  return TRUE;
}

/* qlean image verify */

static gboolean
verify_one (QleanImage *image)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *cached = qlean_image_get_cached_path (image);

  if (!qlean_image_verify (image, NULL, &error))
    {
      g_print ("%-7s %s: %s\n", _("FAILED"), qlean_image_get_name (image), error->message);
      return FALSE;
    }

  g_print ("%-7s %s %s\n", _("ok"), qlean_image_get_name (image), cached ? cached : "");
  return TRUE;
}

static int
image_verify (int    argc,
              char **argv)
{
  g_autoptr(GPtrArray) images = NULL;
  gboolean all_ok = TRUE;
  guint checked = 0;
  int status;

  if (!parse_options ("image verify", _("[NAME]"),
                      _("Hash cached images in full and compare them with the checksums they were\n"
                        "verified against when downloaded; a file that does not match is removed.\n"
                        "Without NAME, every cached image is checked. Exits with 0 when all match,\n"
                        "1 when one does not (or NAME is not cached), 2 on bad usage."),
                      NULL, &argc, &argv, &status))
    return status;
  if (argc > 2)
    {
      g_printerr (_("qlean image verify: give at most one image\n"));
      return EXIT_USAGE;
    }

  images = qlean_image_list_available ();
  for (guint i = 0; i < images->len; i++)
    {
      QleanImage *image = g_ptr_array_index (images, i);
      g_autofree char *cached = qlean_image_get_cached_path (image);
      g_auto(GStrv) aliases = NULL;

      g_object_get (image, "aliases", &aliases, NULL);
      if (argc == 2 && !g_str_equal (argv[1], qlean_image_get_name (image)) &&
          !(aliases != NULL && g_strv_contains ((const char * const *) aliases, argv[1])))
        continue;

      if (cached == NULL)
        {
          if (argc == 2)
            {
              g_autoptr(GError) error = NULL;

              /* Says that it is not cached, and how to fix that. */
              qlean_image_verify (image, NULL, &error);
              print_error ("image verify", error);
              return EXIT_FAILED;
            }
          continue;
        }

      checked++;
      all_ok = verify_one (image) && all_ok;
    }

  if (argc == 2 && checked == 0)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(QleanImage) image = cli_image_from_argument (argv[1], opt_digest, &error);

      if (image == NULL)
        {
          print_error ("image verify", error);
          return EXIT_FAILED;
        }
      return verify_one (image) ? 0 : EXIT_FAILED;
    }

  if (checked == 0)
    g_print (_("No image is cached.\n"));

  return all_ok ? 0 : EXIT_FAILED;
}

static const Command image_commands[] = {
  { "ls", N_("List the catalog and the cached images"), image_ls },
  { "pull", N_("Download, verify and prepare an image"), image_pull },
  { "verify", N_("Check cached images against their checksums"), image_verify },
};

static void
print_image_usage (FILE *out)
{
  fprintf (out, _("Usage:\n  qlean image COMMAND [OPTION...]\n\n"
                  "Distribution cloud images and custom images.\n\nCommands:\n"));
  for (guint i = 0; i < G_N_ELEMENTS (image_commands); i++)
    fprintf (out, "  %-8s %s\n", image_commands[i].name, _(image_commands[i].summary));
  fprintf (out, _("\nRun “qlean image COMMAND --help” for a command's options.\n"
                  "Images are cached in $XDG_CACHE_HOME/qlean; QLEAN_IMAGE_MIRROR points\n"
                  "downloads at a mirror (MIRROR/NAME/FILE).\n"));
}

int
cmd_image (int    argc,
           char **argv)
{
  if (argc < 2)
    {
      print_image_usage (stderr);
      return EXIT_USAGE;
    }

  if (g_str_equal (argv[1], "--help") || g_str_equal (argv[1], "-h") || g_str_equal (argv[1], "help"))
    {
      print_image_usage (stdout);
      return 0;
    }

  for (guint i = 0; i < G_N_ELEMENTS (image_commands); i++)
    if (g_str_equal (argv[1], image_commands[i].name))
      return image_commands[i].run (argc - 1, argv + 1);

  g_printerr (_("qlean image: unknown command “%s”\n"), argv[1]);
  print_image_usage (stderr);
  return EXIT_USAGE;
}
