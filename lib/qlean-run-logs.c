/* qlean-run-logs.c: the logs a machine's run leaves, kept and saved
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

#include "qlean-qemu-argv-private.h"
#include "qlean-qga-client-private.h"
#include "qlean-qmp-client-private.h"
#include "qlean-run-logs-private.h"

/* A line longer than this is cut in the transcript: uploads travel as
 * base64 in guest-file-write, and a transcript is for reading. */
#define TRANSCRIPT_MAX_LINE 4096

/* The files a run leaves that are worth keeping, in the order of their
 * usefulness after a failure. */
static const char * const run_log_files[] = {
  QLEAN_CONSOLE_LOG,
  QLEAN_TRANSCRIPT_LOG,
  QLEAN_QEMU_LOG,
};

/* Transcript */

struct _QleanTranscript
{
  gatomicrefcount  ref_count;
  GMutex           lock;
  int              fd;
  gint64           start_us;
  char            *machine_name;
};

typedef struct
{
  QleanTranscript *transcript;
  const char      *channel;
} TraceHook;

QleanTranscript *
qlean_transcript_new (const char  *path,
                      const char  *machine_name,
                      GError     **error)
{
  QleanTranscript *transcript;
  g_autoptr(GDateTime) now = g_date_time_new_now_utc ();
  g_autofree char *stamp = g_date_time_format_iso8601 (now);
  g_autofree char *header = NULL;
  int fd;

  fd = g_open (path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0)
    {
      int saved_errno = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   _("Could not create the transcript %s: %s"), path, g_strerror (saved_errno));
      return NULL;
    }

  transcript = g_new0 (QleanTranscript, 1);
  g_atomic_ref_count_init (&transcript->ref_count);
  g_mutex_init (&transcript->lock);
  transcript->fd = fd;
  transcript->start_us = g_get_monotonic_time ();
  transcript->machine_name = g_strdup (machine_name);

  header = g_strdup_printf ("# QMP and guest agent traffic of machine %s, from %s\n"
                            "# seconds since then, channel, -> to QEMU or the guest, "
                            "<- from them, the line\n",
                            machine_name, stamp);
  if (write (fd, header, strlen (header)) < 0)
    g_debug ("Could not write to transcript %s: %s", path, g_strerror (errno));

  return transcript;
}

QleanTranscript *
qlean_transcript_ref (QleanTranscript *transcript)
{
  g_atomic_ref_count_inc (&transcript->ref_count);
  return transcript;
}

void
qlean_transcript_unref (QleanTranscript *transcript)
{
  if (!g_atomic_ref_count_dec (&transcript->ref_count))
    return;

  close (transcript->fd);
  g_mutex_clear (&transcript->lock);
  g_free (transcript->machine_name);
  g_free (transcript);
}

/* The agent channel carries 0xFF sync bytes and may carry anything a
 * broken guest writes: keep the transcript one readable line per
 * message. */
static void
append_escaped (GString    *out,
                const char *data,
                gsize       len)
{
  gsize shown = MIN (len, TRANSCRIPT_MAX_LINE);

  while (shown > 0 && (data[shown - 1] == '\n' || data[shown - 1] == '\r'))
    shown--;

  for (gsize i = 0; i < shown; i++)
    {
      guchar c = data[i];

      if (c < 0x20 || c == 0x7f || c == 0xff)
        g_string_append_printf (out, "\\x%02x", c);
      else
        g_string_append_c (out, c);
    }

  if (len > TRANSCRIPT_MAX_LINE)
    g_string_append_printf (out, " [… %" G_GSIZE_FORMAT " more bytes]",
                            len - TRANSCRIPT_MAX_LINE);
}

static void
trace_cb (gpointer    user_data,
          gboolean    outgoing,
          const char *data,
          gsize       len)
{
  TraceHook *hook = user_data;
  QleanTranscript *transcript = hook->transcript;
  g_autoptr(GString) line = g_string_sized_new (MIN (len, TRANSCRIPT_MAX_LINE) + 64);
  gint64 elapsed = g_get_monotonic_time () - transcript->start_us;
  const char *arrow = outgoing ? "->" : "<-";

  g_string_append_printf (line, "%" G_GINT64_FORMAT ".%06d %s %s ",
                          elapsed / G_USEC_PER_SEC, (int) (elapsed % G_USEC_PER_SEC),
                          hook->channel, arrow);
  append_escaped (line, data, len);

  /* Only format what someone asked to see. */
  if (!g_log_writer_default_would_drop (G_LOG_LEVEL_DEBUG, QLEAN_TRAFFIC_LOG_DOMAIN))
    g_log_structured (QLEAN_TRAFFIC_LOG_DOMAIN, G_LOG_LEVEL_DEBUG,
                      "MESSAGE", "%s: %s", transcript->machine_name, line->str);

  g_string_append_c (line, '\n');

  g_mutex_lock (&transcript->lock);
  if (write (transcript->fd, line->str, line->len) < 0)
    g_debug ("Could not write to the transcript of %s: %s",
             transcript->machine_name, g_strerror (errno));
  g_mutex_unlock (&transcript->lock);
}

static void
trace_hook_free (gpointer data)
{
  TraceHook *hook = data;

  qlean_transcript_unref (hook->transcript);
  g_free (hook);
}

static TraceHook *
trace_hook_new (QleanTranscript *transcript,
                const char      *channel)
{
  TraceHook *hook = g_new0 (TraceHook, 1);

  hook->transcript = qlean_transcript_ref (transcript);
  hook->channel = channel;

  return hook;
}

void
qlean_transcript_attach_qmp (QleanTranscript *transcript,
                             QleanQmpClient  *client)
{
  qlean_qmp_client_set_trace (client, trace_cb, trace_hook_new (transcript, "qmp"),
                              trace_hook_free);
}

void
qlean_transcript_attach_qga (QleanTranscript *transcript,
                             QleanQgaClient  *client)
{
  qlean_qga_client_set_trace (client, trace_cb, trace_hook_new (transcript, "qga"),
                              trace_hook_free);
}

/* Kept logs */

struct _QleanRunLogs
{
  GBytes *files[G_N_ELEMENTS (run_log_files)];
};

/* The last @max bytes of @path, or NULL when it cannot be read. */
static GBytes *
read_tail (const char *path,
           gsize       max)
{
  g_autofree char *buffer = NULL;
  struct stat st;
  gsize want, got = 0;
  int fd;

  fd = g_open (path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0)
    return NULL;

  if (fstat (fd, &st) < 0)
    {
      close (fd);
      return NULL;
    }

  want = MIN ((gsize) st.st_size, max);
  if ((gsize) st.st_size > want)
    lseek (fd, st.st_size - want, SEEK_SET);

  buffer = g_malloc (want + 1);
  while (got < want)
    {
      ssize_t n = read (fd, buffer + got, want - got);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      got += n;
    }
  close (fd);

  return g_bytes_new_take (g_steal_pointer (&buffer), got);
}

QleanRunLogs *
qlean_run_logs_capture (const char *run_dir)
{
  QleanRunLogs *logs = g_new0 (QleanRunLogs, 1);

  for (guint i = 0; i < G_N_ELEMENTS (run_log_files); i++)
    {
      g_autofree char *path = g_build_filename (run_dir, run_log_files[i], NULL);

      logs->files[i] = read_tail (path, QLEAN_RUN_LOGS_MAX_BYTES);
    }

  return logs;
}

void
qlean_run_logs_free (QleanRunLogs *logs)
{
  for (guint i = 0; i < G_N_ELEMENTS (run_log_files); i++)
    g_clear_pointer (&logs->files[i], g_bytes_unref);
  g_free (logs);
}

static gboolean
make_directory (const char  *directory,
                GError     **error)
{
  if (g_mkdir_with_parents (directory, 0755) < 0)
    {
      int saved_errno = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   _("Could not create the directory %s: %s"),
                   directory, g_strerror (saved_errno));
      return FALSE;
    }

  return TRUE;
}

static gboolean
save_bytes (const char  *directory,
            const char  *name,
            GBytes      *bytes,
            GError     **error)
{
  g_autofree char *path = g_build_filename (directory, name, NULL);
  gsize len;
  const char *data = g_bytes_get_data (bytes, &len);

  return g_file_set_contents_full (path, data, len, G_FILE_SET_CONTENTS_NONE, 0644, error);
}

gboolean
qlean_run_logs_save_dir (const char  *run_dir,
                         const char  *directory,
                         GError     **error)
{
  g_autoptr(QleanRunLogs) logs = qlean_run_logs_capture (run_dir);

  return qlean_run_logs_save (logs, directory, error);
}

gboolean
qlean_run_logs_save (QleanRunLogs  *logs,
                     const char    *directory,
                     GError       **error)
{
  if (!make_directory (directory, error))
    return FALSE;

  for (guint i = 0; i < G_N_ELEMENTS (run_log_files); i++)
    if (logs->files[i] != NULL &&
        !save_bytes (directory, run_log_files[i], logs->files[i], error))
      return FALSE;

  return TRUE;
}
