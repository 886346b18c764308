/* qlean-errno.c: a failed system call as a GError
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include "qlean-errno-private.h"

static GError *
error_new_from_errno_valist (int         saved_errno,
                             const char *format,
                             va_list     args)
{
  g_autofree char *what = g_strdup_vprintf (format, args);

  return g_error_new (G_IO_ERROR, g_io_error_from_errno (saved_errno),
                      "%s: %s", what, g_strerror (saved_errno));
}

GError *
qlean_error_new_from_errno (int         saved_errno,
                            const char *format,
                            ...)
{
  GError *error;
  va_list args;

  va_start (args, format);
  error = error_new_from_errno_valist (saved_errno, format, args);
  va_end (args);
  return error;
}

gboolean
qlean_set_error_from_errno (GError    **error,
                            int         saved_errno,
                            const char *format,
                            ...)
{
  va_list args;

  if (error == NULL)
    return FALSE;
  va_start (args, format);
  g_propagate_error (error, error_new_from_errno_valist (saved_errno, format, args));
  va_end (args);
  return FALSE;
}
