/* qlean-image-seed.c: cloud-init's NoCloud seed for a machine's first boot
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <string.h>
#include <glib/gstdio.h>
#include <glib/gi18n-lib.h>

#include "qlean-error.h"
#include "qlean-host-private.h"
#include "qlean-image-private.h"
#include "qlean-util-private.h"
#include "qlean-errno-private.h"

/* A YAML double-quoted scalar; machine names are plain, but nothing a
 * caller passes may break the document. */
static char *
yaml_quote (const char *s)
{
  GString *out = g_string_new ("\"");

  for (const char *p = s; *p != '\0'; p++)
    {
      if (*p == '"' || *p == '\\')
        g_string_append_printf (out, "\\%c", *p);
      else if ((guchar) *p < 0x20)
        g_string_append_printf (out, "\\x%02x", (guchar) *p);
      else
        g_string_append_c (out, *p);
    }
  g_string_append_c (out, '"');

  return g_string_free (out, FALSE);
}

/* The user-data: the hostname, and as little else as a machine driven
 * through the agent needs. Every value must pass cloud-init's schema
 * (22.4 as in Debian 12): newer versions report a machine whose
 * user-data does not as degraded. C.UTF-8 exists everywhere, so the
 * locale module generates nothing; one host key type keeps sshd (where
 * installed) working without the seconds RSA key generation costs under
 * TCG. */
static char *
make_user_data (const char *hostname)
{
  return g_strdup_printf ("#cloud-config\n"
                          "# Written by Qlean: the machine is driven through the QEMU guest\n"
                          "# agent, so nothing here sets up SSH, users or packages.\n"
                          "hostname: %s\n"
                          "preserve_hostname: false\n"
                          "manage_etc_hosts: localhost\n"
                          "locale: C.UTF-8\n"
                          "ssh_genkeytypes: [ed25519]\n"
                          "ssh_deletekeys: false\n"
                          "package_update: false\n"
                          "package_upgrade: false\n"
                          "package_reboot_if_required: false\n",
                          hostname);
}

gboolean
qlean_image_write_seed (QleanImage  *image,
                        const char  *machine_name,
                        const char  *path,
                        GError     **error)
{
  g_autofree char *xorriso = g_find_program_in_path ("xorriso");
  g_autofree char *tmpdir = NULL;
  g_autofree char *meta_data = NULL;
  g_autofree char *user_data = NULL;
  g_autofree char *meta_path = NULL;
  g_autofree char *user_path = NULL;
  g_autofree char *tmp_iso = NULL;
  g_autofree char *quoted = NULL;
  g_autofree char *instance_id = NULL;
  g_autofree char *output = NULL;
  g_autoptr(GError) cleanup_error = NULL;
  g_autofree char *uuid = g_uuid_string_random ();
  int status = 0;
  gboolean ok = FALSE;

  g_return_val_if_fail (QLEAN_IS_IMAGE (image), FALSE);
  g_return_val_if_fail (machine_name != NULL && *machine_name != '\0', FALSE);
  g_return_val_if_fail (path != NULL, FALSE);

  if (xorriso == NULL)
    {
      g_autofree char *hint = qlean_host_install_hint ("xorriso");

      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
                   _("The first boot of a distribution image needs xorriso to write the "
                     "cloud-init seed; install it: %s"), hint);
      return FALSE;
    }

  tmpdir = g_dir_make_tmp ("qlean-seed-XXXXXX", error);
  if (tmpdir == NULL)
    return FALSE;

  /* A new instance-id per seed: cloud-init runs its first-boot modules
   * once per instance, and every machine is a new one. */
  quoted = yaml_quote (machine_name);
  instance_id = g_strdup_printf ("qlean-%s-%.8s", machine_name, uuid);
  {
    g_autofree char *quoted_id = yaml_quote (instance_id);

    meta_data = g_strdup_printf ("instance-id: %s\nlocal-hostname: %s\n", quoted_id, quoted);
  }
  user_data = make_user_data (quoted);

  meta_path = g_build_filename (tmpdir, "meta-data", NULL);
  user_path = g_build_filename (tmpdir, "user-data", NULL);
  tmp_iso = g_strconcat (path, ".tmp", NULL);
  if (!g_file_set_contents (meta_path, meta_data, -1, error) ||
      !g_file_set_contents (user_path, user_data, -1, error))
    goto out;

  {
    const char *argv[] = {
      xorriso, "-as", "mkisofs", "-quiet", "-output", tmp_iso, "-volid", "cidata",
      "-joliet", "-rock", meta_path, user_path, NULL
    };

    if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL,
                       NULL, &output, &status, error))
      goto out;
  }

  if (!g_spawn_check_wait_status (status, NULL))
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_FAILED,
                   _("xorriso could not write the cloud-init seed %s: %s"),
                   path, output ? g_strstrip (output) : "");
      g_unlink (tmp_iso);
      goto out;
    }

  if (g_rename (tmp_iso, path) != 0)
    {
      int saved_errno = errno;

      qlean_set_error_from_errno (error, saved_errno,
                                  _("Cannot write the cloud-init seed %s"), path);
      g_unlink (tmp_iso);
      goto out;
    }

  ok = TRUE;

out:
  if (!qlean_rm_rf (tmpdir, &cleanup_error))
    g_warning ("Could not remove %s: %s", tmpdir, cleanup_error->message);

  return ok;
}
