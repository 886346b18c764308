/* qlean-cli.c: the qlean command line
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <glib/gi18n.h>
#include <glib-unix.h>
#include <json-glib/json-glib.h>

#include <qlean/qlean.h>

#include "qlean-cli-private.h"
#include "qlean-run-owner-private.h"


static gboolean opt_version;
static gboolean opt_quiet;
static gboolean opt_verbose;

static GOptionEntry common_entries[] = {
  { "version", 0, 0, G_OPTION_ARG_NONE, &opt_version, N_("Print the version and exit"), NULL },
  { "quiet", 'q', 0, G_OPTION_ARG_NONE, &opt_quiet, N_("Print only errors and the command's own output"), NULL },
  { "verbose", 'v', 0, G_OPTION_ARG_NONE, &opt_verbose, N_("Log what happens, with every QMP and guest agent message"), NULL },
  { NULL }
};

/* --verbose: Qlean's debug messages and its QMP/agent traffic (the
 * machines' transcripts, as they are written) on stderr. Called before
 * any machine exists, so before the worker thread: setenv is safe. */
static void
apply_verbosity (void)
{
  const char *domains[] = { "qlean", "qlean-traffic", "qlean-cli" };
  g_autofree char *value = g_strdup (g_getenv ("G_MESSAGES_DEBUG"));

  if (!opt_verbose || (value != NULL && g_str_equal (value, "all")))
    return;

  for (guint i = 0; i < G_N_ELEMENTS (domains); i++)
    {
      char *joined = value && *value ? g_strjoin (" ", value, domains[i], NULL) : g_strdup (domains[i]);

      g_free (value);
      value = joined;
    }
  g_setenv ("G_MESSAGES_DEBUG", value, TRUE);
}

gboolean
cli_is_quiet (void)
{
  return opt_quiet && !opt_verbose;
}

gboolean
cli_process_alive (gint64 pid)
{
  g_autofree char *start = NULL;

  /* A zombie counts as dead: an owner whose parent has not reaped it yet
   * (it is reparented when `qlean start` exits, maybe to a subreaper
   * that never waits). */
  start = pid > 0 ? qlean_process_start_time (pid) : NULL;
  return start != NULL;
}

static int
print_version (void)
{
  g_print ("qlean %s\n", QLEAN_VERSION_S);
  return 0;
}

void
print_error (const char *command,
             GError     *error)
{
  g_printerr ("qlean %s: %s\n", command, error->message);
}

/* Parses a subcommand's options; returns FALSE when the caller must exit
 * with *status (usage error, or --version handled). */
gboolean
parse_options (const char    *command,
               const char    *parameter_string,
               const char    *summary,
               GOptionEntry  *entries,
               int           *argc,
               char        ***argv,
               int           *status)
{
  g_autoptr(GOptionContext) context = g_option_context_new (parameter_string);
  g_autoptr(GError) error = NULL;
  g_autofree char *prgname = g_strdup_printf ("qlean %s", command);
  GOptionEntry common[G_N_ELEMENTS (common_entries)];

  g_set_prgname (prgname);
  g_option_context_set_summary (context, summary);
  g_option_context_set_translation_domain (context, GETTEXT_PACKAGE);
  if (entries != NULL)
    g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  /* A command whose own option is -v (run and start: --volume) keeps
   * --verbose without its short name (GOption copies the entries). */
  memcpy (common, common_entries, sizeof common);
  for (guint i = 0; entries != NULL && entries[i].long_name != NULL; i++)
    if (entries[i].short_name == 'v')
      for (guint j = 0; common[j].long_name != NULL; j++)
        if (common[j].short_name == 'v')
          common[j].short_name = 0;
  g_option_context_add_main_entries (context, common, GETTEXT_PACKAGE);
  /* Everything after the command belongs to the guest. */
  g_option_context_set_strict_posix (context, TRUE);

  if (!g_option_context_parse (context, argc, argv, &error))
    {
      g_printerr ("qlean %s: %s\n", command, error->message);
      g_printerr (_("Try “qlean %s --help”.\n"), command);
      *status = EXIT_USAGE;
      return FALSE;
    }

  if (opt_version)
    {
      *status = print_version ();
      return FALSE;
    }

  apply_verbosity ();
  return TRUE;
}

void
cli_json_add_string_or_null (JsonBuilder *builder,
                             const char  *value)
{
  if (value != NULL)
    json_builder_add_string_value (builder, value);
  else
    json_builder_add_null_value (builder);
}

void
print_json (JsonNode *node)
{
  g_autoptr(JsonGenerator) generator = json_generator_new ();
  g_autofree char *text = NULL;

  json_generator_set_root (generator, node);
  json_generator_set_pretty (generator, TRUE);
  text = json_generator_to_data (generator, NULL);
  g_print ("%s\n", text);
}

/* Machine options shared by run and dry-run */

static char *opt_image;
static int opt_cores = 0;
static int opt_memory = 0;
static char *opt_qemu;
static char *opt_accel;
static char *opt_bridge;
static char *opt_transport;
static char *opt_arch;
static char *opt_digest;
static char *opt_mirror;
static int opt_boot_timeout = 0;
static gboolean opt_json;
static char **opt_volumes;
static char *opt_share_kind;
static char *opt_firmware;

/* --arch, or the host's architecture. */
static gboolean
arch_from_option (QleanArch  *arch,
                  GError    **error)
{
  *arch = qlean_arch_get_host ();
  if (opt_arch == NULL || qlean_arch_from_string (opt_arch, arch))
    return TRUE;

  g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
               _("--arch must be x86_64, aarch64 or riscv64, not “%s”"), opt_arch);
  return FALSE;
}

GOptionEntry machine_entries[] = {
  { "image", 'i', 0, G_OPTION_ARG_STRING, &opt_image,
    N_("Image to boot: “minimal” (default), a disk image file, a catalog name or alias (see “qlean image ls”; "
       "downloaded on first use) or a URL with --digest"), N_("IMAGE") },
  { "digest", 0, 0, G_OPTION_ARG_STRING, &opt_digest,
    N_("Digest of an image given by URL: sha256:HEX or sha512:HEX"), N_("DIGEST") },
  { "mirror", 0, 0, G_OPTION_ARG_STRING, &opt_mirror,
    N_("Download catalog images from MIRROR/NAME/ (default: $QLEAN_IMAGE_MIRROR)"), N_("URL") },
  { "boot-timeout", 0, 0, G_OPTION_ARG_INT, &opt_boot_timeout,
    N_("Seconds to wait for the guest to answer (default 60; 600 for distribution images, whose "
       "first boot runs cloud-init)"), N_("SECONDS") },
  { "cores", 'c', 0, G_OPTION_ARG_INT, &opt_cores, N_("Number of virtual CPUs (default 1)"), N_("N") },
  { "memory", 'm', 0, G_OPTION_ARG_INT, &opt_memory, N_("Guest memory in MiB (default: the image's)"), N_("MIB") },
  { "qemu", 0, 0, G_OPTION_ARG_FILENAME, &opt_qemu, N_("QEMU binary (default: qemu-system-ARCH of the guest's architecture)"), N_("PATH") },
  { "accel", 0, 0, G_OPTION_ARG_STRING, &opt_accel, N_("auto, kvm or tcg (default auto)"), N_("ACCEL") },
  { "firmware", 0, 0, G_OPTION_ARG_STRING, &opt_firmware,
    N_("How the machine boots: auto (its kernel directly, else its disk through the BIOS or, on aarch64, UEFI), "
       "bios or uefi (default auto)"), N_("FIRMWARE") },
  { "arch", 0, 0, G_OPTION_ARG_STRING, &opt_arch,
    N_("Guest architecture: x86_64, aarch64 or riscv64 (default: the host's); another than the host's runs under TCG"),
    N_("ARCH") },
  { "bridge", 0, 0, G_OPTION_ARG_STRING, &opt_bridge,
    N_("Plug the machine into host bridge BRIDGE, where it gets an address by DHCP (needs /etc/qemu/bridge.conf)"),
    N_("BRIDGE") },
  { "transport", 0, 0, G_OPTION_ARG_STRING, &opt_transport,
    N_("How to reach the guest: auto, agent (the QEMU guest agent alone) or qlean-guest (default auto)"),
    N_("TRANSPORT") },
  /* -v as in docker run; --verbose keeps -v only before the command. */
  { "volume", 'v', 0, G_OPTION_ARG_FILENAME_ARRAY, &opt_volumes,
    N_("Share host directory HOST with the machine at GUEST (an absolute path), read-only with :ro, "
       "read-only and cached in the guest with :ro,cached; repeatable"), N_("HOST:GUEST[:ro[,cached]]") },
  { "share-kind", 0, 0, G_OPTION_ARG_STRING, &opt_share_kind,
    N_("How --volume folders reach the guest: auto (virtiofs where virtiofsd can run, else 9p), "
       "9p or virtiofs (default auto)"), N_("KIND") },
  { NULL }
};

/* -v HOST:GUEST[:ro|:rw|:ro,cached]: the guest path is after the last
 * colon once the mode is taken off, so that a host path may hold colons. */
static gboolean
add_volume_option (QleanMachineConfig  *config,
                   const char          *volume,
                   GError             **error)
{
  static const struct { const char *suffix; QleanShareFlags flags; } modes[] = {
    { ":ro,cached", QLEAN_SHARE_READONLY | QLEAN_SHARE_CACHED },
    { ":ro", QLEAN_SHARE_READONLY },
    { ":rw", QLEAN_SHARE_NONE },
  };
  g_autofree char *spec = g_strdup (volume);
  QleanShareFlags flags = QLEAN_SHARE_NONE;
  char *colon;

  for (guint i = 0; i < G_N_ELEMENTS (modes); i++)
    if (g_str_has_suffix (spec, modes[i].suffix))
      {
        flags = modes[i].flags;
        spec[strlen (spec) - strlen (modes[i].suffix)] = '\0';
        break;
      }
  colon = strrchr (spec, ':');
  /* The guest path is absolute: what else follows the last colon is a
   * mode we do not know (":rw,cached", ":cached"). */
  if (colon == NULL || colon == spec || colon[1] != '/')
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _("--volume takes HOST:GUEST, HOST:GUEST:ro or HOST:GUEST:ro,cached, with GUEST "
                     "an absolute path, not “%s”"),
                   volume);
      return FALSE;
    }
  *colon = '\0';

  return qlean_machine_config_add_share_full (config, spec, colon + 1, flags, error);
}

/* --share-kind auto|9p|virtiofs */
static gboolean
set_share_kind_option (QleanMachineConfig  *config,
                       GError             **error)
{
  if (opt_share_kind == NULL || g_str_equal (opt_share_kind, "auto"))
    qlean_machine_config_set_share_kind (config, QLEAN_SHARE_KIND_AUTO);
  else if (g_str_equal (opt_share_kind, "9p"))
    qlean_machine_config_set_share_kind (config, QLEAN_SHARE_KIND_9P);
  else if (g_str_equal (opt_share_kind, "virtiofs"))
    qlean_machine_config_set_share_kind (config, QLEAN_SHARE_KIND_VIRTIOFS);
  else
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _("--share-kind must be auto, 9p or virtiofs, not “%s”"), opt_share_kind);
      return FALSE;
    }
  return TRUE;
}

const char *
cli_get_bridge_option (void)
{
  return opt_bridge;
}

/* -i: "minimal" (the default), a disk image file used as it is, or what
 * `qlean image pull` takes: a catalog name or alias, or a URL (with
 * --digest). */
static QleanImage *
image_from_options (QleanArch   arch,
                    GError    **error)
{
  QleanImage *image;

  if (opt_image == NULL || g_str_equal (opt_image, "minimal"))
    return qlean_image_new_minimal_for_arch (arch);

  if (strstr (opt_image, "://") == NULL && g_file_test (opt_image, G_FILE_TEST_EXISTS))
    {
      if (opt_digest != NULL)
        {
          g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                               _("--digest is for an image given by URL; a local disk image file "
                                 "is booted as it is"));
          return NULL;
        }
      image = qlean_image_new_from_file (opt_image);
      qlean_image_set_guest_arch (image, arch);
      return image;
    }

  image = cli_image_from_argument (opt_image, opt_digest, error);
  if (image != NULL && opt_mirror != NULL)
    qlean_image_set_mirror (image, opt_mirror);
  return image;
}

/**
 * cli_pull_image_option:
 * @error: return location for a #GError
 *
 * For `run` and `start`: when -i names a catalog image or a URL, downloads,
 * verifies and prepares it now, in the foreground, with its progress on
 * stderr (stdout is the guest command's), so that the machine that boots
 * it finds it in the cache. Nothing to do for the minimal image or a file.
 *
 * Returns: %FALSE with @error set when the image cannot be had
 */
gboolean
cli_pull_image_option (GError **error)
{
  g_autoptr(QleanImage) image = NULL;
  QleanArch arch;

  if (!arch_from_option (&arch, error))
    return FALSE;
  image = image_from_options (arch, error);
  if (image == NULL)
    return FALSE;
  if (qlean_image_get_kind (image) != QLEAN_IMAGE_KIND_DISTRO)
    return TRUE;

  return cli_pull_image (image, TRUE, stderr, FALSE, error);
}

/**
 * cli_machine_entries_with:
 * @extra: a command's own options, %NULL-terminated
 *
 * The machine options followed by @extra, as one %NULL-terminated array
 * for parse_options(). Free with g_free().
 */
GOptionEntry *
cli_machine_entries_with (const GOptionEntry *extra)
{
  guint n_machine = 0, n_extra = 0;
  GOptionEntry *all;

  while (machine_entries[n_machine].long_name != NULL)
    n_machine++;
  while (extra[n_extra].long_name != NULL)
    n_extra++;

  all = g_new0 (GOptionEntry, n_machine + n_extra + 1);
  memcpy (all, machine_entries, n_machine * sizeof *all);
  memcpy (all + n_machine, extra, n_extra * sizeof *all);
  return all;
}

QleanMachine *
machine_from_options (const char  *name,
                      GError     **error)
{
  g_autoptr(QleanImage) image = NULL;
  g_autoptr(QleanMachineConfig) config = qlean_machine_config_new ();
  QleanMachine *machine;
  QleanArch arch;

  if (!arch_from_option (&arch, error))
    return NULL;

  image = image_from_options (arch, error);
  if (image == NULL)
    return NULL;

  if (opt_cores < 0 || opt_cores > 255 || opt_memory < 0)
    {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                           _("--cores must be 1 to 255 and --memory positive"));
      return NULL;
    }
  if (opt_cores > 0)
    qlean_machine_config_set_cores (config, opt_cores);
  if (opt_memory > 0)
    qlean_machine_config_set_memory_mib (config, opt_memory);
  if (opt_qemu != NULL)
    qlean_machine_config_set_qemu_binary (config, opt_qemu);
  if (opt_accel != NULL)
    {
      if (g_str_equal (opt_accel, "kvm"))
        qlean_machine_config_set_accel (config, QLEAN_ACCEL_KVM);
      else if (g_str_equal (opt_accel, "tcg"))
        qlean_machine_config_set_accel (config, QLEAN_ACCEL_TCG);
      else if (!g_str_equal (opt_accel, "auto"))
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       _("--accel must be auto, kvm or tcg, not “%s”"), opt_accel);
          return NULL;
        }
    }

  if (opt_firmware != NULL)
    {
      g_autoptr(GEnumClass) firmwares = g_type_class_ref (QLEAN_TYPE_FIRMWARE);
      GEnumValue *firmware = g_enum_get_value_by_nick (firmwares, opt_firmware);

      if (firmware == NULL)
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       _("--firmware must be auto, bios or uefi, not “%s”"), opt_firmware);
          return NULL;
        }
      qlean_machine_config_set_firmware (config, firmware->value);
    }

  if (opt_bridge != NULL)
    qlean_machine_config_set_bridge (config, opt_bridge);

  for (guint i = 0; opt_volumes != NULL && opt_volumes[i] != NULL; i++)
    if (!add_volume_option (config, opt_volumes[i], error))
      return NULL;
  if (!set_share_kind_option (config, error))
    return NULL;

  if (opt_transport != NULL)
    {
      if (g_str_equal (opt_transport, "agent"))
        qlean_machine_config_set_guest_transport (config, QLEAN_GUEST_TRANSPORT_AGENT);
      else if (g_str_equal (opt_transport, "qlean-guest"))
        qlean_machine_config_set_guest_transport (config, QLEAN_GUEST_TRANSPORT_QLEAN_GUEST);
      else if (!g_str_equal (opt_transport, "auto"))
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       _("--transport must be auto, agent or qlean-guest, not “%s”"), opt_transport);
          return NULL;
        }
    }

  if (opt_boot_timeout < 0 || opt_boot_timeout > G_MAXINT / 1000)
    {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                           _("--boot-timeout must be a positive number of seconds"));
      return NULL;
    }

  machine = qlean_machine_new_with_name (name, image, config);
  /* A systemd guest's first boot with cloud-init takes minutes under
   * TCG on a small host, where the minimal image takes seconds. */
  if (opt_boot_timeout > 0)
    qlean_machine_set_boot_timeout (machine, opt_boot_timeout * 1000);
  else if (qlean_image_get_kind (image) == QLEAN_IMAGE_KIND_DISTRO)
    qlean_machine_set_boot_timeout (machine, 600 * 1000);

  return machine;
}

/* qlean check */

static int
cmd_check (int    argc,
           char **argv)
{
  static GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &opt_json, N_("Print the report as JSON"), NULL },
    { "qemu", 0, 0, G_OPTION_ARG_FILENAME, &opt_qemu, N_("QEMU binary to check"), N_("PATH") },
    { "arch", 0, 0, G_OPTION_ARG_STRING, &opt_arch,
      N_("Check for guests of this architecture: x86_64, aarch64 or riscv64 (default: the host's)"),
      N_("ARCH") },
    { NULL }
  };
  g_autoptr(GPtrArray) report = NULL;
  g_autoptr(GError) error = NULL;
  QleanArch arch;
  gboolean met;
  int status;

  if (!parse_options ("check", "", _("Check that this host can run Qlean machines.\n\n"
                                     "Exits with 0 when a machine can be started, 1 otherwise."),
                      entries, &argc, &argv, &status))
    return status;

  if (!arch_from_option (&arch, &error))
    {
      print_error ("check", error);
      return EXIT_USAGE;
    }

  report = qlean_check_requirements_for_arch (opt_qemu, arch);
  met = qlean_requirements_met (report);

  if (opt_json)
    {
      g_autoptr(JsonBuilder) builder = json_builder_new ();
      g_autoptr(JsonNode) root = NULL;

      json_builder_begin_object (builder);
      json_builder_set_member_name (builder, "ok");
      json_builder_add_boolean_value (builder, met);
      json_builder_set_member_name (builder, "requirements");
      json_builder_begin_array (builder);
      for (guint i = 0; i < report->len; i++)
        {
          QleanRequirement *r = g_ptr_array_index (report, i);

          json_builder_begin_object (builder);
          json_builder_set_member_name (builder, "name");
          json_builder_add_string_value (builder, r->name);
          json_builder_set_member_name (builder, "ok");
          json_builder_add_boolean_value (builder, r->ok);
          json_builder_set_member_name (builder, "required");
          json_builder_add_boolean_value (builder, r->required);
          json_builder_set_member_name (builder, "detail");
          json_builder_add_string_value (builder, r->detail);
          json_builder_set_member_name (builder, "hint");
          cli_json_add_string_or_null (builder, r->hint);
          json_builder_end_object (builder);
        }
      json_builder_end_array (builder);
      json_builder_end_object (builder);
      root = json_builder_get_root (builder);
      print_json (root);
    }
  else if (!cli_is_quiet ())
    {
      for (guint i = 0; i < report->len; i++)
        {
          QleanRequirement *r = g_ptr_array_index (report, i);

          g_print ("%-6s %-13s %s\n",
                   r->ok ? "ok" : r->required ? "MISSING" : "missing",
                   r->name, r->detail);
          if (r->hint != NULL)
            g_print ("       %-13s %s %s\n", "", _("to fix:"), r->hint);
        }
      g_print ("%s\n", met ? _("This host can run Qlean machines.")
                           : _("This host cannot run Qlean machines yet: install what is missing."));
    }

  return met ? 0 : EXIT_FAILED;
}

/* qlean run */

static char *
join_command (int    argc,
              char **argv)
{
  GString *command = g_string_new (NULL);

  /* The agent runs the command through /bin/sh -c: quote every word so
   * that what the user typed reaches the program unchanged. */
  for (int i = 0; i < argc; i++)
    {
      g_autofree char *quoted = g_shell_quote (argv[i]);

      if (i > 0)
        g_string_append_c (command, ' ');
      g_string_append (command, quoted);
    }

  return g_string_free (command, FALSE);
}

static gboolean
write_all (int           fd,
           GBytes       *bytes)
{
  gsize len;
  const char *data = g_bytes_get_data (bytes, &len);

  while (len > 0)
    {
      ssize_t n = write (fd, data, len);

      if (n < 0)
        return FALSE;
      data += n;
      len -= n;
    }

  return TRUE;
}

static GCancellable *interrupted;

static gboolean
on_interrupt (gpointer user_data)
{
  if (!cli_is_quiet ())
    g_printerr (_("qlean: interrupted, stopping the machine\n"));
  g_cancellable_cancel (interrupted);
  return G_SOURCE_CONTINUE;
}

typedef struct
{
  GMainLoop        *loop;
  QleanExecResult  *result;
  GError           *error;
} RunState;

static void
run_exec_cb (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  RunState *state = user_data;

  state->result = qlean_machine_exec_finish (QLEAN_MACHINE (source), result, &state->error);
  g_main_loop_quit (state->loop);
}

static void
run_initialize_cb (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  RunState *state = user_data;

  qlean_machine_initialize_finish (QLEAN_MACHINE (source), result, &state->error);
  g_main_loop_quit (state->loop);
}

/* run --json: the result as one object; output as text, lossy where it
 * is not UTF-8, since JSON strings cannot carry arbitrary bytes. */
static void
print_result_json (QleanExecResult *result)
{
  g_autoptr(JsonBuilder) builder = json_builder_new ();
  g_autoptr(JsonNode) root = NULL;
  GBytes *streams[] = { qlean_exec_result_get_stdout (result), qlean_exec_result_get_stderr (result) };
  const char *names[] = { "stdout", "stderr" };

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "exit-status");
  json_builder_add_int_value (builder, qlean_exec_result_get_exit_status (result));
  json_builder_set_member_name (builder, "signal");
  json_builder_add_int_value (builder, qlean_exec_result_get_signal (result));
  for (guint i = 0; i < G_N_ELEMENTS (streams); i++)
    {
      gsize len = 0;
      const char *data = streams[i] ? g_bytes_get_data (streams[i], &len) : "";
      g_autofree char *text = g_utf8_make_valid (data, len);

      json_builder_set_member_name (builder, names[i]);
      json_builder_add_string_value (builder, text);
    }
  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  print_json (root);
}

static int
cmd_run (int    argc,
         char **argv)
{
  static gboolean run_json;
  static GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &run_json, N_("Print the result as a JSON object instead of the output"), NULL },
    { NULL }
  };
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GMainLoop) loop = NULL;
  g_autofree char *command = NULL;
  RunState state = { 0 };
  g_autofree GOptionEntry *all = cli_machine_entries_with (entries);
  guint sigint, sigterm;
  int status;

  if (!parse_options ("run", _("[--] COMMAND [ARG...]"),
                      _("Boot a throwaway machine, run COMMAND in it as root, print its output,\n"
                        "shut the machine down, and exit with the command's exit status\n"
                        "(128+N when signal N killed it, 125 when the machine failed)."),
                      all, &argc, &argv, &status))
    return status;

  if (argc > 1 && g_str_equal (argv[1], "--"))
    {
      argv++;
      argc--;
    }
  if (argc < 2)
    {
      g_printerr (_("qlean run: no command given\nTry “qlean run --help”.\n"));
      return EXIT_USAGE;
    }

  machine = machine_from_options (NULL, &error);
  if (machine == NULL)
    {
      print_error ("run", error);
      return EXIT_USAGE;
    }
  if (!cli_pull_image_option (&error))
    {
      print_error ("run", error);
      return EXIT_FAILED;
    }

  command = join_command (argc - 1, argv + 1);
  interrupted = g_cancellable_new ();
  sigint = g_unix_signal_add (SIGINT, on_interrupt, NULL);
  sigterm = g_unix_signal_add (SIGTERM, on_interrupt, NULL);
  loop = g_main_loop_new (NULL, FALSE);
  state.loop = loop;

  /* A throwaway machine's boot is always its first: with cloud-init,
   * where the image has it. */
  qlean_machine_initialize_async (machine, interrupted, run_initialize_cb, &state);
  g_main_loop_run (loop);

  if (state.error == NULL)
    {
      qlean_machine_exec_async (machine, command, interrupted, run_exec_cb, &state);
      g_main_loop_run (loop);
    }

  g_source_remove (sigint);
  g_source_remove (sigterm);

  if (state.error != NULL)
    {
      print_error ("run", state.error);
      g_clear_error (&state.error);
      qlean_machine_kill (machine, NULL, NULL);
      g_clear_object (&interrupted);
      return EXIT_MACHINE;
    }

  if (run_json)
    print_result_json (state.result);
  else
    {
      write_all (STDOUT_FILENO, qlean_exec_result_get_stdout (state.result));
      write_all (STDERR_FILENO, qlean_exec_result_get_stderr (state.result));
    }

  if (!qlean_machine_shutdown (machine, NULL, &error))
    g_printerr ("qlean run: %s\n", error->message);

  if (qlean_exec_result_get_if_signaled (state.result))
    status = 128 + qlean_exec_result_get_signal (state.result);
  else
    status = qlean_exec_result_get_exit_status (state.result);

  g_clear_object (&state.result);
  g_clear_object (&interrupted);
  return status;
}

/* qlean dry-run */

static int
cmd_dry_run (int    argc,
             char **argv)
{
  static GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &opt_json, N_("Print the command line as a JSON array"), NULL },
    { NULL }
  };
  g_autoptr(QleanMachine) machine = NULL;
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) qemu_argv = NULL;
  g_autoptr(GOptionGroup) unused = NULL;
  g_autofree GOptionEntry *all = cli_machine_entries_with (entries);
  int status;

  if (!parse_options ("dry-run", "",
                      _("Print the QEMU command line “qlean run” would use, one argument per line.\n"
                        "Nothing is started, but the minimal image is built if it is not cached."),
                      all, &argc, &argv, &status))
    return status;

  machine = machine_from_options (NULL, &error);
  if (machine != NULL)
    qemu_argv = qlean_machine_dry_run (machine, &error);
  if (qemu_argv == NULL)
    {
      print_error ("dry-run", error);
      return EXIT_FAILED;
    }

  if (opt_json)
    {
      g_autoptr(JsonArray) array = json_array_new ();
      g_autoptr(JsonNode) root = json_node_new (JSON_NODE_ARRAY);

      for (guint i = 0; qemu_argv[i] != NULL; i++)
        json_array_add_string_element (array, qemu_argv[i]);
      json_node_set_array (root, array);
      print_json (root);
    }
  else
    for (guint i = 0; qemu_argv[i] != NULL; i++)
      g_print ("%s\n", qemu_argv[i]);

  return 0;
}

static const Command commands[] = {
  { "check", N_("Check that this host can run machines"), cmd_check },
  { "run", N_("Run a command in a throwaway machine"), cmd_run },
  { "dry-run", N_("Print the QEMU command line a machine would use"), cmd_dry_run },
  { "start", N_("Boot a machine that outlives this command"), cmd_start },
  { "exec", N_("Run a command in a started machine"), cmd_exec },
  { "shell", N_("Open an interactive terminal in a started machine"), cmd_shell },
  { "stop", N_("Shut a started machine down"), cmd_stop },
  { "ls", N_("List started machines"), cmd_ls },
  { "cp", N_("Copy files between the host and a started machine"), cmd_cp },
  { "pause", N_("Stop the CPUs of a started machine"), cmd_pause },
  { "resume", N_("Let a paused machine run again"), cmd_resume },
  { "snapshot", N_("Save a started machine's state, memory included"), cmd_snapshot },
  { "restore", N_("Bring a started machine back to a snapshot"), cmd_restore },
  { "clone", N_("Start a copy of a started machine"), cmd_clone },
  { "export", N_("Write a started machine into one archive file"), cmd_export },
  { "import", N_("Start a machine from an archive of “qlean export”"), cmd_import },
  { "image", N_("List, download and verify distribution images"), cmd_image },
  { "gc", N_("Remove what killed processes left behind"), cmd_gc },
};

static void
print_usage (FILE *out)
{
  fprintf (out, _("Usage:\n  qlean [--version] [--help] [--quiet|--verbose] COMMAND [OPTION...]\n\n"
                  "Throwaway QEMU machines, driven through QMP and the guest agent.\n\n"
                  "Commands:\n"));
  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    fprintf (out, "  %-10s %s\n", commands[i].name, _(commands[i].summary));
  fprintf (out, _("\nRun “qlean COMMAND --help” for a command's options.\n\n"
                  "Exit status: 0 on success, 1 when an operation failed, 2 on bad usage;\n"
                  "run passes the guest command's status through (128+N for signal N)\n"
                  "and uses 125 when the machine could not be started.\n"));
}

int
main (int    argc,
      char **argv)
{
  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);

  /* Logging must not mix with what commands print on stdout. */
  g_log_writer_default_set_use_stderr (TRUE);

  /* Global options may come before the command, too. */
  while (argc > 1 && argv[1][0] == '-')
    {
      if (g_str_equal (argv[1], "-q") || g_str_equal (argv[1], "--quiet"))
        opt_quiet = TRUE;
      else if (g_str_equal (argv[1], "-v") || g_str_equal (argv[1], "--verbose"))
        opt_verbose = TRUE;
      else
        break;
      argv[1] = argv[0];
      argv++;
      argc--;
    }
  apply_verbosity ();

  if (argc < 2)
    {
      print_usage (stderr);
      return EXIT_USAGE;
    }

  if (g_str_equal (argv[1], "--help") || g_str_equal (argv[1], "-h") || g_str_equal (argv[1], "help"))
    {
      print_usage (stdout);
      return 0;
    }

  if (g_str_equal (argv[1], "--version"))
    return print_version ();

  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    if (g_str_equal (argv[1], commands[i].name))
      return commands[i].run (argc - 1, argv + 1);

  g_printerr (_("qlean: unknown command “%s”\n"), argv[1]);
  print_usage (stderr);
  return EXIT_USAGE;
}
