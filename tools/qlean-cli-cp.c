/* qlean-cli-cp.c: qlean cp, files between this host and a started machine
 *
 * SPDX-License-Identifier: MIT
 *
 * One side of the copy is NAME:/path in a machine started with `qlean
 * start`, reached through its owner's socket; the library does the
 * copying. A copy that loses its machine fails as qlean exec does.
 */

#include "config.h"

#include <string.h>
#include <glib/gi18n.h>

#include "qlean-cli-private.h"

/* qlean cp */

/* NAME:/path is a path in a started machine; anything else is local. A
 * local path with a colon can be written ./a:b. */
static gboolean
split_remote (const char  *arg,
              char       **name,
              char       **path)
{
  const char *colon = strchr (arg, ':');

  if (colon == NULL || colon == arg || strchr (arg, '/') < colon)
    return FALSE;

  *name = g_strndup (arg, colon - arg);
  *path = g_strdup (colon + 1);
  return TRUE;
}

int
cmd_cp (int    argc,
        char **argv)
{
  static gboolean recursive;
  static gboolean preserve_modes;
  static GOptionEntry entries[] = {
    { "recursive", 'r', 0, G_OPTION_ARG_NONE, &recursive, N_("Copy directories and their contents"), NULL },
    { "preserve-modes", 0, 0, G_OPTION_ARG_NONE, &preserve_modes,
      N_("From a machine, keep the guest's exact modes, setuid and group/world write bits included"),
      NULL },
    { NULL }
  };
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanMachine) machine = NULL;
  g_autofree char *src_name = NULL, *src_path = NULL;
  g_autofree char *dst_name = NULL, *dst_path = NULL;
  gboolean src_remote, dst_remote, is_dir;
  int status;

  if (!parse_options ("cp", _("SRC DST"),
                      _("Copy files and directories between this host and machines started with\n"
                        "“qlean start”. Either SRC or DST is NAME:/path in a machine. Modes,\n"
                        "times and symbolic links are kept, except that files from a machine lose\n"
                        "setuid, setgid, sticky and group/world write bits (a guest is not trusted\n"
                        "with them; --preserve-modes keeps them); onto an existing directory, SRC\n"
                        "lands inside it, as with cp and scp. Exits with 125 when the machine\n"
                        "dies under the copy."),
                      entries, &argc, &argv, &status))
    return status;

  if (argc != 3)
    {
      g_printerr (_("qlean cp: give a source and a destination\nTry “qlean cp --help”.\n"));
      return EXIT_USAGE;
    }

  src_remote = split_remote (argv[1], &src_name, &src_path);
  dst_remote = split_remote (argv[2], &dst_name, &dst_path);
  if (src_remote == dst_remote)
    {
      g_printerr (_("qlean cp: exactly one of SRC and DST must be NAME:/path in a machine\n"));
      return EXIT_USAGE;
    }

  machine = cli_machine_attach_by_name (src_remote ? src_name : dst_name, &error);
  if (machine == NULL)
    {
      print_error ("cp", error);
      return EXIT_FAILED;
    }

  if (src_remote)
    {
      g_autoptr(GFileInfo) info = qlean_machine_metadata (machine, src_path, NULL, &error);
      g_autoptr(GFile) dst = g_file_new_for_commandline_arg (argv[2]);

      if (info == NULL)
        goto failed;
      is_dir = g_file_info_get_file_type (info) == G_FILE_TYPE_DIRECTORY;
      if (is_dir && !recursive)
        {
          g_printerr (_("qlean cp: %s is a directory; use -r to copy it\n"), argv[1]);
          return EXIT_FAILED;
        }
      if (!qlean_machine_download_full (machine, src_path, dst,
                                        preserve_modes ? QLEAN_TRANSFER_FLAGS_PRESERVE_MODES
                                                       : QLEAN_TRANSFER_FLAGS_NONE,
                                        NULL, &error))
        goto failed;
    }
  else
    {
      g_autoptr(GFile) src = g_file_new_for_commandline_arg (argv[1]);

      is_dir = g_file_test (argv[1], G_FILE_TEST_IS_DIR);
      if (is_dir && !recursive)
        {
          g_printerr (_("qlean cp: %s is a directory; use -r to copy it\n"), argv[1]);
          return EXIT_FAILED;
        }
      if (!qlean_machine_upload (machine, src, dst_path, NULL, &error))
        goto failed;
    }

  return 0;

failed:
  /* A copy that lost its machine fails as exec does: 125, and why. */
  if (cli_is_lost_machine (error))
    {
      cli_explain_lost_machine (src_remote ? src_name : dst_name, &error);
      print_error ("cp", error);
      return EXIT_MACHINE;
    }
  print_error ("cp", error);
  return EXIT_FAILED;
}
