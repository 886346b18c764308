/* qlean-image-disk-check.c: disk files from elsewhere
 *
 * SPDX-License-Identifier: MIT
 *
 * The check of a disk file that Qlean did not write itself (a file or
 * custom image, an archived disk, a download): `qemu-img info` on its
 * header, bounded in time, memory and output, and the refusal of what
 * would make QEMU open another file of the host. Apart from the image
 * object because it is a stranger's header read through a child
 * process, and because machines' archives check their disks with it
 * too.
 */

#include "config.h"

#include <errno.h>
#include <poll.h>
#include <sys/resource.h>
#include <glib/gi18n-lib.h>
#include <gio/gunixinputstream.h>
#include <json-glib/json-glib.h>

#include "qlean-error.h"
#include "qlean-host-private.h"
#include "qlean-image-private.h"
#include "qlean-errno-private.h"

/* Bounds on one `qemu-img info`: it reads only an image's header, in
 * milliseconds, but the header is the stranger's. */
#define DISK_INFO_TIMEOUT_S   30
#define DISK_INFO_MAX_OUTPUT  (1024 * 1024)
#define DISK_INFO_MAX_STDERR  (64 * 1024)
#define DISK_INFO_MAX_MEMORY  ((rlim_t) 1 << 30)

static void
disk_info_limits (gpointer user_data)
{
  struct rlimit memory = { DISK_INFO_MAX_MEMORY, DISK_INFO_MAX_MEMORY };
  struct rlimit cpu = { DISK_INFO_TIMEOUT_S, DISK_INFO_TIMEOUT_S };

  /* In the child, between fork and exec: async-signal-safe calls only. */
  setrlimit (RLIMIT_AS, &memory);
  setrlimit (RLIMIT_CPU, &cpu);
}

/* Reads @process's stdout (at most DISK_INFO_MAX_OUTPUT) and stderr (its
 * first DISK_INFO_MAX_STDERR bytes) to their ends, within the deadline;
 * the process is killed otherwise. */
static gboolean
read_disk_info (GSubprocess   *process,
                const char    *path,
                GByteArray    *out,
                GByteArray    *err,
                GCancellable  *cancellable,
                GError       **error)
{
  int fds[2] = {
    g_unix_input_stream_get_fd (G_UNIX_INPUT_STREAM (g_subprocess_get_stdout_pipe (process))),
    g_unix_input_stream_get_fd (G_UNIX_INPUT_STREAM (g_subprocess_get_stderr_pipe (process))),
  };
  gboolean open[2] = { TRUE, TRUE };
  gint64 deadline = g_get_monotonic_time () + DISK_INFO_TIMEOUT_S * G_USEC_PER_SEC;
  GPollFD cancel_fd = { -1, 0, 0 };
  gboolean has_cancel = cancellable != NULL && g_cancellable_make_pollfd (cancellable, &cancel_fd);
  gboolean ok = TRUE;

  while (ok && (open[0] || open[1]))
    {
      struct pollfd pfds[3];
      nfds_t n = 0;
      int slots[3];
      gint64 left = (deadline - g_get_monotonic_time ()) / 1000;
      int ready;

      for (int i = 0; i < 2; i++)
        if (open[i])
          {
            pfds[n] = (struct pollfd) { fds[i], POLLIN, 0 };
            slots[n++] = i;
          }
      if (has_cancel)
        {
          pfds[n] = (struct pollfd) { cancel_fd.fd, POLLIN, 0 };
          slots[n++] = 2;
        }

      if (left <= 0)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                       _("qemu-img did not read the header of %s within %d s"), path,
                       DISK_INFO_TIMEOUT_S);
          ok = FALSE;
          break;
        }
      ready = poll (pfds, n, (int) MIN (left, G_MAXINT));
      if (ready < 0 && errno == EINTR)
        continue;
      if (ready < 0)
        {
          int saved_errno = errno;

          qlean_set_error_from_errno (error, saved_errno,
                                      _("Cannot wait for qemu-img"));
          ok = FALSE;
          break;
        }

      for (nfds_t j = 0; ok && j < n; j++)
        {
          guint8 buffer[16384];
          GByteArray *into;
          gssize got;

          if (pfds[j].revents == 0)
            continue;
          if (slots[j] == 2)
            {
              ok = !g_cancellable_set_error_if_cancelled (cancellable, error);
              continue;
            }

          got = read (pfds[j].fd, buffer, sizeof buffer);
          if (got < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
          if (got <= 0)
            {
              open[slots[j]] = FALSE;
              continue;
            }
          into = slots[j] == 0 ? out : err;
          if (slots[j] == 0 && into->len + got > DISK_INFO_MAX_OUTPUT)
            {
              g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_INVALID_SOURCE,
                           _("qemu-img describes %s in more than %d bytes; Qlean does not "
                             "use an image with a header that large"), path, DISK_INFO_MAX_OUTPUT);
              ok = FALSE;
              break;
            }
          if (slots[j] == 1)
            got = MIN ((gsize) got, DISK_INFO_MAX_STDERR - MIN (into->len, DISK_INFO_MAX_STDERR));
          g_byte_array_append (into, buffer, got);
        }
    }

  if (has_cancel)
    g_cancellable_release_fd (cancellable);
  if (!ok)
    g_subprocess_force_exit (process);
  /* Killed, or with both pipes at their ends: it is gone or going. */
  g_subprocess_wait (process, NULL, NULL);

  return ok;
}

static const char *
string_member (JsonObject *object,
               const char *member)
{
  JsonNode *node = object ? json_object_get_member (object, member) : NULL;

  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return NULL;
  if (JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING)
    return json_node_get_string (node);
  /* There, but not a string: still there. */
  return "?";
}

/* See qlean-image-private.h. */
char *
qlean_image_check_disk_file (const char    *path,
                             const char    *format,
                             GCancellable  *cancellable,
                             GError       **error)
{
  g_autofree char *qemu_img = g_find_program_in_path ("qemu-img");
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GSubprocess) process = NULL;
  g_autoptr(GByteArray) out = g_byte_array_new ();
  g_autoptr(GByteArray) err = g_byte_array_new ();
  g_autoptr(JsonParser) parser = json_parser_new ();
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_autofree char *absolute = NULL;
  JsonObject *info, *specific_data = NULL;
  JsonNode *node;
  const char *found, *backing, *data_file;

  g_return_val_if_fail (path != NULL, NULL);

  if (qemu_img == NULL)
    {
      g_autofree char *hint = qlean_host_install_hint ("qemu-utils");

      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
                   _("Cannot check the disk image %s: qemu-img is not installed; install it: %s"),
                   path, hint);
      return NULL;
    }

  /* The header alone: without --backing-chain, qemu-img opens no backing
   * file, and (with -U) takes no lock, so an image that is refused below
   * has not made it open the files it names either. An absolute path
   * never reads as a protocol prefix ("json:", "nbd:"). */
  absolute = g_canonicalize_filename (path, NULL);
  g_ptr_array_add (argv, qemu_img);
  g_ptr_array_add (argv, (char *) "info");
  g_ptr_array_add (argv, (char *) "-U");
  g_ptr_array_add (argv, (char *) "--output=json");
  if (format != NULL)
    {
      g_ptr_array_add (argv, (char *) "-f");
      g_ptr_array_add (argv, (char *) format);
    }
  g_ptr_array_add (argv, absolute);
  g_ptr_array_add (argv, NULL);

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_subprocess_launcher_set_child_setup (launcher, disk_info_limits, NULL, NULL);
  process = g_subprocess_launcher_spawnv (launcher, (const char * const *) argv->pdata, error);
  if (process == NULL)
    return NULL;

  if (!read_disk_info (process, path, out, err, cancellable, error))
    return NULL;

  if (!g_subprocess_get_successful (process) ||
      !json_parser_load_from_data (parser, (const char *) out->data, out->len, NULL) ||
      !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    {
      g_autofree char *message = g_strndup ((const char *) err->data, err->len);

      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_PREPARE_FAILED,
                   _("%s is not a disk image that qemu-img can read%s%s"), path,
                   *g_strstrip (message) != '\0' ? ": " : "", message);
      return NULL;
    }
  info = json_node_get_object (json_parser_get_root (parser));

  found = string_member (info, "format");
  if (g_strcmp0 (found, "qcow2") != 0 && g_strcmp0 (found, "raw") != 0)
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_INVALID_SOURCE,
                   _("%s is a %s image, not qcow2 or raw: other formats can name further "
                     "files of this host, as vmdk's extents do"),
                   path, found ? found : "?");
      return NULL;
    }

  backing = string_member (info, "full-backing-filename");
  if (backing == NULL)
    backing = string_member (info, "backing-filename");
  if (backing == NULL && json_object_has_member (info, "backing-filename-format"))
    backing = "?";
  if (backing != NULL)
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_INVALID_SOURCE,
                   _("%s names a backing file (%s): QEMU would read that file of this "
                     "host into the guest's disk"),
                   path, backing);
      return NULL;
    }

  node = json_object_get_member (info, "format-specific");
  if (node != NULL && JSON_NODE_HOLDS_OBJECT (node))
    {
      JsonNode *data = json_object_get_member (json_node_get_object (node), "data");

      if (data != NULL && JSON_NODE_HOLDS_OBJECT (data))
        specific_data = json_node_get_object (data);
    }
  data_file = string_member (specific_data, "data-file");
  if (data_file == NULL && specific_data != NULL && json_object_has_member (specific_data, "data-file-raw"))
    data_file = "?";
  if (data_file != NULL)
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_INVALID_SOURCE,
                   _("%s keeps its data in another file (%s): QEMU would read and write "
                     "that file of this host as the guest's disk"),
                   path, data_file);
      return NULL;
    }

  return g_strdup (found);
}
