/* qlean-machine-firmware.c: how a machine boots, and UEFI's per-run variables
 *
 * A machine boots its kernel directly wherever it can: it is the fastest
 * boot under TCG, where UEFI firmware alone costs seconds. A disk
 * without a kernel boots its own boot loader, through the BIOS on x86-64
 * and through UEFI on aarch64, whose `virt` machine has no BIOS. This
 * file decides which (QleanMachineConfig:firmware) and keeps the one
 * file a UEFI boot adds to a run: the firmware's variables, which the
 * guest writes, copied for each run from the package's template and
 * removed when the run ends, as everything else in the run directory.
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include <glib/gi18n-lib.h>

#include "qlean-errno-private.h"
#include "qlean-error.h"
#include "qlean-machine-firmware-private.h"

/* The firmware files of @arch, installed and readable, or an error that
 * says which package has them. */
static gboolean
check_uefi_installed (const char           *name,
                      const QleanArchInfo  *arch,
                      GError              **error)
{
  const char *files[] = { arch->uefi_code, arch->uefi_vars };

  for (guint i = 0; i < G_N_ELEMENTS (files); i++)
    if (g_access (files[i], R_OK) != 0)
      {
        int saved_errno = errno;

        g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG,
                     _("Machine “%s” boots through UEFI, but the firmware file %s cannot be "
                       "read (%s); install the %s package (qlean check --arch %s lists what "
                       "is missing)"),
                     name, files[i], g_strerror (saved_errno), arch->uefi_package, arch->name);
        return FALSE;
      }

  return TRUE;
}

gboolean
qlean_machine_resolve_firmware (const char     *name,
                                QleanFirmware   firmware,
                                QleanQemuSpec  *spec,
                                GError        **error)
{
  const QleanArchInfo *arch = spec->arch;
  gboolean uefi;

  switch (firmware)
    {
    case QLEAN_FIRMWARE_UEFI:
      uefi = TRUE;
      break;
    case QLEAN_FIRMWARE_BIOS:
      if (spec->kernel == NULL && !arch->bios_boots_disk)
        {
          g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG,
                       _("Machine “%s” is to boot without UEFI, but it has no kernel to boot "
                         "and QEMU's %s machine for %s guests has no BIOS to boot its disk; "
                         "use firmware “auto” or “uefi”"),
                       name, arch->machine, arch->name);
          return FALSE;
        }
      uefi = FALSE;
      break;
    case QLEAN_FIRMWARE_AUTO:
    default:
      /* A disk with no kernel to boot directly, where no BIOS can boot
       * it: its boot loader, through UEFI. */
      uefi = spec->kernel == NULL && !arch->bios_boots_disk;
      break;
    }

  spec->uefi_code = NULL;
  if (!uefi)
    return TRUE;

  if (arch->uefi_code == NULL)
    {
      if (firmware == QLEAN_FIRMWARE_UEFI)
        g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG,
                     _("Machine “%s” is to boot through UEFI, but Qlean knows no UEFI firmware "
                       "for %s guests; use firmware “auto” or “bios”"), name, arch->name);
      else
        g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_INVALID_CONFIG,
                     _("Machine “%s” has no kernel to boot, and Qlean knows no UEFI firmware "
                       "to boot its disk with (guest architecture %s); give the machine a "
                       "kernel (the kernel setting)"), name, arch->name);
      return FALSE;
    }

  if (!check_uefi_installed (name, arch, error))
    return FALSE;

  spec->uefi_code = arch->uefi_code;
  return TRUE;
}

static gboolean
all_zero (const guchar *data,
          gsize         len)
{
  for (gsize i = 0; i < len; i++)
    if (data[i] != 0)
      return FALSE;

  return TRUE;
}

/* Copies @src to @dst, leaving holes where @src has zeros: Debian's
 * variable templates are 64 MiB (the size of virt's flash chip) of
 * which the firmware uses a few hundred KiB, AAVMF's none until its
 * first boot, so each run's copy takes almost no disk. */
static gboolean
copy_sparse (const char  *src,
             const char  *dst,
             GError     **error)
{
  g_autofree guchar *buffer = g_malloc (64 * 1024);
  int in_fd, out_fd;
  goffset size = 0;
  gboolean ok = FALSE;

  in_fd = g_open (src, O_RDONLY | O_CLOEXEC, 0);
  if (in_fd < 0)
    {
      int saved_errno = errno;

      qlean_set_error_from_errno (error, saved_errno, _("Could not open %s"), src);
      return FALSE;
    }
  out_fd = g_open (dst, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (out_fd < 0)
    {
      int saved_errno = errno;

      qlean_set_error_from_errno (error, saved_errno, _("Could not create %s"), dst);
      close (in_fd);
      return FALSE;
    }

  for (;;)
    {
      gssize n = read (in_fd, buffer, 64 * 1024);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          int saved_errno = errno;

          qlean_set_error_from_errno (error, saved_errno, _("Could not read %s"), src);
          goto out;
        }
      if (n == 0)
        break;
      if (all_zero (buffer, n))
        {
          if (lseek (out_fd, n, SEEK_CUR) < 0)
            goto write_error;
        }
      else
        {
          for (gssize done = 0; done < n;)
            {
              gssize w = write (out_fd, buffer + done, n - done);

              if (w < 0 && errno == EINTR)
                continue;
              if (w < 0)
                goto write_error;
              done += w;
            }
        }
      size += n;
    }

  /* The holes at the end count only once the size says so. */
  if (ftruncate (out_fd, size) < 0)
    goto write_error;
  ok = TRUE;
  goto out;

write_error:
  {
    int saved_errno = errno;

    qlean_set_error_from_errno (error, saved_errno, _("Could not write %s"), dst);
  }
out:
  close (in_fd);
  if (close (out_fd) < 0 && ok)
    {
      int saved_errno = errno;

      qlean_set_error_from_errno (error, saved_errno, _("Could not write %s"), dst);
      ok = FALSE;
    }
  if (!ok)
    g_unlink (dst);
  return ok;
}

gboolean
qlean_machine_firmware_copy_vars (const QleanQemuSpec  *spec,
                                  GError              **error)
{
  g_autofree char *vars = NULL;

  if (spec->uefi_code == NULL)
    return TRUE;

  vars = g_build_filename (spec->run_dir, QLEAN_UEFI_VARS, NULL);
  if (!copy_sparse (spec->arch->uefi_vars, vars, error))
    {
      g_prefix_error (error, _("Cannot make the UEFI variables of machine “%s”: "), spec->name);
      return FALSE;
    }

  return TRUE;
}

void
qlean_machine_firmware_remove_vars (const char *run_dir)
{
  g_autofree char *vars = NULL;

  if (run_dir == NULL)
    return;

  vars = g_build_filename (run_dir, QLEAN_UEFI_VARS, NULL);
  if (g_unlink (vars) < 0 && errno != ENOENT)
    g_debug ("Could not remove %s: %s", vars, g_strerror (errno));
}
