/* qlean-machine-config-shares.c: the host folders a config shares
 *
 * The shares of a QleanMachineConfig: adding one (each path checked
 * once, here: the host's must be an existing directory, the guest's a
 * clean absolute path, neither twice), reading and clearing them. Apart
 * from qlean-machine-config.c because checking paths is a concern of
 * its own; the rest of the config is plain properties.
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <glib/gi18n-lib.h>

#include "qlean-error.h"
#include "qlean-machine-config.h"
#include "qlean-machine-config-private.h"
#include "qlean-util-private.h"

static void
qlean_share_free (QleanShare *share)
{
  g_free (share->host_path);
  g_free (share->guest_path);
  g_free (share);
}

GPtrArray *
qlean_share_list_new (void)
{
  return g_ptr_array_new_with_free_func ((GDestroyNotify) qlean_share_free);
}

void
qlean_share_list_append_copies (GPtrArray *to,
                                GPtrArray *from)
{
  for (guint i = 0; i < from->len; i++)
    {
      const QleanShare *share = g_ptr_array_index (from, i);
      QleanShare *dup = g_new0 (QleanShare, 1);

      dup->host_path = g_strdup (share->host_path);
      dup->guest_path = g_strdup (share->guest_path);
      dup->flags = share->flags;
      g_ptr_array_add (to, dup);
    }
}

/* Each share is a QEMU device and a 9p mount tag (qleanN): a bound keeps
 * the command line and the guest's PCI bus reasonable. */
#define MAX_SHARES 16

/**
 * qlean_machine_config_add_share:
 * @self: a #QleanMachineConfig
 * @host_path: (type filename): an existing directory on the host
 * @guest_path: (type filename): an absolute path in the guest where it appears
 * @readonly: whether the guest may only read it
 * @error: return location for a #GError
 *
 * Shares a host folder with machines made from this configuration, as
 * [method@MachineConfig.add_share_full] with %QLEAN_SHARE_READONLY or
 * %QLEAN_SHARE_NONE.
 *
 * Returns: %TRUE, or %FALSE with @error set when a path is unusable
 *
 * Since: 0.1
 */
gboolean
qlean_machine_config_add_share (QleanMachineConfig  *self,
                                const char          *host_path,
                                const char          *guest_path,
                                gboolean             readonly,
                                GError             **error)
{
  return qlean_machine_config_add_share_full (self, host_path, guest_path,
                                              readonly ? QLEAN_SHARE_READONLY : QLEAN_SHARE_NONE,
                                              error);
}

/* An absolute guest path without empty, `.` or `..` components, and not
 * the root: the mount must land where the caller said, nowhere else. */
static gboolean
guest_path_is_clean (const char *path)
{
  g_auto(GStrv) parts = NULL;

  if (path[0] != '/' || path[1] == '\0' || g_str_has_suffix (path, "/"))
    return FALSE;

  parts = g_strsplit (path + 1, "/", -1);
  for (guint i = 0; parts[i] != NULL; i++)
    if (parts[i][0] == '\0' || g_str_equal (parts[i], ".") || g_str_equal (parts[i], ".."))
      return FALSE;

  return TRUE;
}

/**
 * qlean_machine_config_add_share_full:
 * @self: a #QleanMachineConfig
 * @host_path: (type filename): an existing directory on the host
 * @guest_path: (type filename): an absolute path in the guest where it appears
 * @flags: how the folder is shared
 * @error: return location for a #GError
 *
 * Shares a host folder with machines made from this configuration,
 * through virtiofs or virtio-9p (QEMU's `-fsdev local`; no privileges
 * needed), as [property@MachineConfig:share-kind] says. The folder is
 * mounted at @guest_path, made if missing, before the machine's first
 * command runs, on every start, fast ones included.
 *
 * @host_path is resolved now (symbolic links and `..` included), and
 * the share is that directory: the guest cannot reach anything outside
 * it, not even through a symbolic link inside the share that points
 * out, because the guest resolves links itself, within its own view.
 * Over 9p the minimal image boots a kernel that has 9p for such
 * machines (Debian's `linux-image-amd64`); other images need 9p, or
 * virtiofs, in their kernel.
 *
 * A machine whose share is mounted cannot save its state
 * ([method@Machine.snapshot], archives): QEMU refuses to migrate a
 * mounted 9p export or a virtiofs device.
 *
 * Returns: %TRUE, or %FALSE with @error set (%QLEAN_MACHINE_ERROR_INVALID_CONFIG)
 *   when @host_path is not an existing directory or @guest_path is not a
 *   clean absolute path other than `/`, or is shared already
 *
 * Since: 0.1
 */
gboolean
qlean_machine_config_add_share_full (QleanMachineConfig  *self,
                                     const char          *host_path,
                                     const char          *guest_path,
                                     QleanShareFlags      flags,
                                     GError             **error)
{
  g_autofree char *canonical = NULL;
  QleanShare *share;

  g_return_val_if_fail (QLEAN_IS_MACHINE_CONFIG (self), FALSE);
  g_return_val_if_fail (host_path != NULL, FALSE);
  g_return_val_if_fail (guest_path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  canonical = realpath (host_path, NULL);
  if (canonical == NULL || !g_file_test (canonical, G_FILE_TEST_IS_DIR))
    {
      int saved_errno = canonical == NULL ? errno : ENOTDIR;

      g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG,
                   _("Cannot share “%s” with the guest: %s; give an existing directory"),
                   host_path, g_strerror (saved_errno));
      return FALSE;
    }

  if (!guest_path_is_clean (guest_path))
    {
      g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG,
                   _("Cannot share “%s” at “%s” in the guest: give an absolute path other than "
                     "/, without “.”, “..” or empty parts"),
                   host_path, guest_path);
      return FALSE;
    }

  for (guint i = 0; i < qlean_machine_config_peek_shares (self)->len; i++)
    if (g_str_equal (((QleanShare *) g_ptr_array_index (qlean_machine_config_peek_shares (self), i))->guest_path, guest_path))
      {
        g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG,
                     _("Cannot share “%s” at “%s” in the guest: another folder is shared there"),
                     host_path, guest_path);
        return FALSE;
      }

  /* A guest that writes through a cache nobody keeps coherent would
   * lose writes or read stale ones: only a read-only share is cached. */
  if ((flags & QLEAN_SHARE_CACHED) && !(flags & QLEAN_SHARE_READONLY))
    {
      g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG,
                   _("Cannot share “%s” cached: only a read-only share can be cached"), host_path);
      return FALSE;
    }

  if (qlean_machine_config_peek_shares (self)->len >= MAX_SHARES)
    {
      g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG,
                   _("Cannot share “%s”: a machine has at most %u shared folders"),
                   host_path, MAX_SHARES);
      return FALSE;
    }

  share = g_new0 (QleanShare, 1);
  share->host_path = g_steal_pointer (&canonical);
  share->guest_path = g_strdup (guest_path);
  share->flags = flags & (QLEAN_SHARE_READONLY | QLEAN_SHARE_MAPPED_XATTR | QLEAN_SHARE_CACHED);
  g_ptr_array_add (qlean_machine_config_peek_shares (self), share);

  return TRUE;
}

/**
 * qlean_machine_config_get_n_shares:
 * @self: a #QleanMachineConfig
 *
 * Returns: how many host folders are shared
 *
 * Since: 0.1
 */
guint
qlean_machine_config_get_n_shares (QleanMachineConfig *self)
{
  g_return_val_if_fail (QLEAN_IS_MACHINE_CONFIG (self), 0);

  return qlean_machine_config_peek_shares (self)->len;
}

/**
 * qlean_machine_config_get_share:
 * @self: a #QleanMachineConfig
 * @index: which share, from 0, in the order they were added
 * @guest_path: (out) (optional) (type filename) (transfer none): where it is mounted in the guest
 * @flags: (out) (optional): how it is shared
 *
 * Returns: (type filename) (transfer none): the shared host directory,
 *   resolved to its canonical path
 *
 * Since: 0.1
 */
const char *
qlean_machine_config_get_share (QleanMachineConfig  *self,
                                guint                index,
                                const char         **guest_path,
                                QleanShareFlags     *flags)
{
  const QleanShare *share;

  g_return_val_if_fail (QLEAN_IS_MACHINE_CONFIG (self), NULL);
  g_return_val_if_fail (index < qlean_machine_config_peek_shares (self)->len, NULL);

  share = g_ptr_array_index (qlean_machine_config_peek_shares (self), index);
  if (guest_path != NULL)
    *guest_path = share->guest_path;
  if (flags != NULL)
    *flags = share->flags;

  return share->host_path;
}

/**
 * qlean_machine_config_clear_shares:
 * @self: a #QleanMachineConfig
 *
 * Removes every shared folder.
 *
 * Since: 0.1
 */
void
qlean_machine_config_clear_shares (QleanMachineConfig *self)
{
  g_return_if_fail (QLEAN_IS_MACHINE_CONFIG (self));

  g_ptr_array_set_size (qlean_machine_config_peek_shares (self), 0);
}
