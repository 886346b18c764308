/* qlean-run-logs.c: the logs a machine's run leaves, kept and saved
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <glib/gi18n-lib.h>

#include "qlean-qemu-argv-private.h"
#include "qlean-qga-client-private.h"
#include "qlean-qmp-client-private.h"
#include "qlean-run-logs-private.h"
#include "qlean-errno-private.h"
#include "qlean-util-private.h"

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

      qlean_set_error_from_errno (error, saved_errno,
                                  _("Could not create the transcript %s"), path);
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

void
qlean_transcript_set_machine_name (QleanTranscript *transcript,
                                   const char      *machine_name)
{
  gint64 elapsed = g_get_monotonic_time () - transcript->start_us;
  g_autofree char *line = NULL;

  g_mutex_lock (&transcript->lock);
  line = g_strdup_printf ("# %" G_GINT64_FORMAT ".%06d: from here on, the traffic of machine %s "
                          "(which took this spare)\n",
                          elapsed / G_USEC_PER_SEC, (int) (elapsed % G_USEC_PER_SEC), machine_name);
  g_free (transcript->machine_name);
  transcript->machine_name = g_strdup (machine_name);
  if (write (transcript->fd, line, strlen (line)) < 0)
    g_debug ("Could not write to the transcript of %s: %s", machine_name, g_strerror (errno));
  g_mutex_unlock (&transcript->lock);
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

  g_mutex_lock (&transcript->lock);
  /* Only format what someone asked to see. */
  if (!g_log_writer_default_would_drop (G_LOG_LEVEL_DEBUG, QLEAN_TRAFFIC_LOG_DOMAIN))
    g_log_structured (QLEAN_TRAFFIC_LOG_DOMAIN, G_LOG_LEVEL_DEBUG,
                      "MESSAGE", "%s: %s", transcript->machine_name, line->str);

  g_string_append_c (line, '\n');

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

/* Console */

/* QEMU could write the console file itself, but then the file could only
 * be cut from outside and after the fact, while QEMU goes on writing at
 * its own offset: only the writer can bound a file. So QEMU writes into
 * a pipe (a full pipe holds the guest's serial port back) and this
 * thread is the file's only writer. */
#define CONSOLE_CHUNK 65536
/* Per turn of the thread, so that readers get the lock in a flood. */
#define CONSOLE_TURN_BYTES (16 * CONSOLE_CHUNK)
/* QEMU writes the serial port a byte at a time: after a turn that found
 * little, the thread lets output gather this long, rather than wake for
 * every byte. */
#define CONSOLE_GATHER_MS 2
#define CONSOLE_PANIC_TEXT "Kernel panic - not syncing"

static const char console_cut_marker[] =
  "\n[qlean: console output dropped here, to bound the size of this file]\n";
#define CONSOLE_MARKER_LEN (sizeof console_cut_marker - 1)

G_STATIC_ASSERT (CONSOLE_MARKER_LEN <= 128);

/* Tests make them small (qlean_console_log_set_limits()). */
static gsize console_head_bytes = QLEAN_CONSOLE_HEAD_BYTES;
static gsize console_tail_bytes = QLEAN_CONSOLE_TAIL_BYTES;

struct _QleanConsoleLog
{
  gatomicrefcount        ref_count;
  GMutex                 lock;
  char                  *path;
  int                    pipe_fd;      /* read end, non-blocking; -1 once closed */
  int                    wake_fd;      /* an eventfd that stops the thread */
  int                    file_fd;      /* the console file; -1 once writing failed */
  GThread               *thread;
  gsize                  head_max;
  gsize                  tail_max;

  /* The file holds the first head_len bytes of the output, then (once
   * dropped > 0) the marker, then the output from head_len + dropped
   * on, up to total. */
  guint64                head_len;
  guint64                dropped;
  guint64                total;

  char                   panic_carry[sizeof CONSOLE_PANIC_TEXT];
  gsize                  panic_carry_len;
  gboolean               panic_seen;
  gboolean               panic_reported;
  QleanConsolePanicFunc  panic_func;
  gpointer               panic_data;
  GDestroyNotify         panic_destroy;
};

static guint64
console_file_len (QleanConsoleLog *log)
{
  return log->total - log->dropped + (log->dropped > 0 ? CONSOLE_MARKER_LEN : 0);
}

static gboolean
copy_range (int     from,
            guint64 offset,
            guint64 len,
            int     to)
{
  char buffer[CONSOLE_CHUNK];

  while (len > 0)
    {
      ssize_t n = pread (from, buffer, MIN (len, sizeof buffer), offset);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0 || !qlean_write_all (to, buffer, n))
        return FALSE;
      offset += n;
      len -= n;
    }

  return TRUE;
}

/* Keeps the head and the last tail_max bytes in a new file
 * renamed over the old one. Lock held. */
static gboolean
console_cut (QleanConsoleLog *log)
{
  g_autofree char *tmp_path = g_strconcat (log->path, ".cut", NULL);
  guint64 file_len = console_file_len (log);
  guint64 tail_at = log->head_len + (log->dropped > 0 ? CONSOLE_MARKER_LEN : 0);
  guint64 keep_at = file_len - log->tail_max;
  int fd;

  fd = g_open (tmp_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return FALSE;

  if (!copy_range (log->file_fd, 0, log->head_len, fd) ||
      !qlean_write_all (fd, console_cut_marker, CONSOLE_MARKER_LEN) ||
      !copy_range (log->file_fd, keep_at, file_len - keep_at, fd) ||
      g_rename (tmp_path, log->path) < 0)
    {
      close (fd);
      g_unlink (tmp_path);
      return FALSE;
    }

  close (log->file_fd);
  log->file_fd = fd;
  log->dropped += keep_at - tail_at;

  return TRUE;
}

/* Writes @data at the end of the file, cutting it first whenever it is
 * full, so that it never holds more than its bound. Lock held. */
static gboolean
console_append (QleanConsoleLog *log,
                const char      *data,
                gsize            len)
{
  const guint64 bound = log->head_max + CONSOLE_MARKER_LEN + 2 * log->tail_max;

  while (len > 0)
    {
      gsize part;

      if (console_file_len (log) >= bound && !console_cut (log))
        return FALSE;
      part = MIN (len, bound - console_file_len (log));
      if (!qlean_write_all (log->file_fd, data, part))
        return FALSE;
      log->total += part;
      if (log->total <= log->head_max)
        log->head_len = log->total;
      data += part;
      len -= part;
    }

  return TRUE;
}

/* Looks for the kernel's panic line, also across two chunks. */
static void
console_scan_panic (QleanConsoleLog *log,
                    const char      *data,
                    gsize            len)
{
  const gsize needle_len = strlen (CONSOLE_PANIC_TEXT);
  char joined[2 * sizeof CONSOLE_PANIC_TEXT];
  gsize head;

  if (log->panic_seen || log->panic_func == NULL)
    return;

  /* The carried end of the last chunk with this chunk's start. */
  head = MIN (len, needle_len - 1);
  memcpy (joined, log->panic_carry, log->panic_carry_len);
  memcpy (joined + log->panic_carry_len, data, head);
  if (memmem (joined, log->panic_carry_len + head, CONSOLE_PANIC_TEXT, needle_len) != NULL ||
      memmem (data, len, CONSOLE_PANIC_TEXT, needle_len) != NULL)
    {
      log->panic_seen = TRUE;
      return;
    }

  if (len >= needle_len - 1)
    {
      memcpy (log->panic_carry, data + len - (needle_len - 1), needle_len - 1);
      log->panic_carry_len = needle_len - 1;
    }
  else
    {
      gsize keep = MIN (log->panic_carry_len, needle_len - 1 - len);

      memmove (log->panic_carry, log->panic_carry + log->panic_carry_len - keep, keep);
      memcpy (log->panic_carry + keep, data, len);
      log->panic_carry_len = keep + len;
    }
}

/* Appends what the pipe holds, up to @max bytes; adds what it read to
 * *@moved. Lock held. Returns FALSE at the end of the output. */
static gboolean
console_pump (QleanConsoleLog *log,
              gsize            max,
              gsize           *moved)
{
  char buffer[CONSOLE_CHUNK];

  max += *moved;

  while (log->pipe_fd >= 0 && *moved < max)
    {
      ssize_t n = read (log->pipe_fd, buffer, sizeof buffer);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == EAGAIN)
        return TRUE;
      if (n <= 0)
        return FALSE;
      *moved += n;

      console_scan_panic (log, buffer, n);

      /* Output that cannot be written is dropped: QEMU must never wait
       * on a full disk. */
      if (log->file_fd >= 0 && !console_append (log, buffer, n))
        {
          g_debug ("Could not write the console log %s: %s", log->path, g_strerror (errno));
          close (log->file_fd);
          log->file_fd = -1;
        }
    }

  return TRUE;
}

/* Lock held; returns whether the caller must call the panic function,
 * which it does without the lock. */
static gboolean
console_take_panic (QleanConsoleLog *log)
{
  if (!log->panic_seen || log->panic_reported)
    return FALSE;
  log->panic_reported = TRUE;
  return TRUE;
}

static gpointer
console_thread (gpointer user_data)
{
  QleanConsoleLog *log = user_data;

  for (;;)
    {
      struct pollfd fds[2] = {
        { .fd = log->pipe_fd, .events = POLLIN },
        { .fd = log->wake_fd, .events = POLLIN },
      };
      gboolean more, panic;
      gsize moved = 0;

      if (poll (fds, G_N_ELEMENTS (fds), -1) < 0)
        {
          if (errno == EINTR)
            continue;
          break;
        }
      if (fds[1].revents != 0)
        break;

      g_mutex_lock (&log->lock);
      more = console_pump (log, CONSOLE_TURN_BYTES, &moved);
      panic = console_take_panic (log);
      g_mutex_unlock (&log->lock);

      if (panic)
        log->panic_func (log->panic_data);
      if (!more)
        break;
      if (moved < CONSOLE_CHUNK / 4 &&
          poll (&fds[1], 1, CONSOLE_GATHER_MS) > 0)
        break;
    }

  return NULL;
}

QleanConsoleLog *
qlean_console_log_new (const char  *path,
                       int         *qemu_fd,
                       GError     **error)
{
  QleanConsoleLog *log;
  int fds[2];
  int file_fd, wake_fd;

  file_fd = g_open (path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (file_fd < 0)
    {
      int saved_errno = errno;

      qlean_set_error_from_errno (error, saved_errno,
                                  _("Could not create the console log %s"), path);
      return NULL;
    }

  wake_fd = eventfd (0, EFD_CLOEXEC);
  if (wake_fd < 0 || pipe2 (fds, O_CLOEXEC) < 0)
    {
      int saved_errno = errno;

      qlean_set_error_from_errno (error, saved_errno,
                                  _("Could not make the pipe of the console log %s"), path);
      if (wake_fd >= 0)
        close (wake_fd);
      close (file_fd);
      return NULL;
    }
  g_unix_set_fd_nonblocking (fds[0], TRUE, NULL);

  log = g_new0 (QleanConsoleLog, 1);
  g_atomic_ref_count_init (&log->ref_count);
  g_mutex_init (&log->lock);
  log->path = g_strdup (path);
  log->pipe_fd = fds[0];
  log->wake_fd = wake_fd;
  log->file_fd = file_fd;
  log->head_max = g_atomic_pointer_get (&console_head_bytes);
  log->tail_max = g_atomic_pointer_get (&console_tail_bytes);
  *qemu_fd = fds[1];
  log->thread = g_thread_new ("qlean-console", console_thread, log);

  return log;
}

void
qlean_console_log_set_limits (gsize head_bytes,
                              gsize tail_bytes)
{
  g_return_if_fail (tail_bytes > 0);

  g_atomic_pointer_set (&console_head_bytes, head_bytes);
  g_atomic_pointer_set (&console_tail_bytes, tail_bytes);
}

void
qlean_console_log_set_panic_func (QleanConsoleLog       *log,
                                  QleanConsolePanicFunc  func,
                                  gpointer               user_data,
                                  GDestroyNotify         destroy)
{
  g_mutex_lock (&log->lock);
  g_return_if_fail (log->panic_func == NULL);
  log->panic_func = func;
  log->panic_data = user_data;
  log->panic_destroy = destroy;
  g_mutex_unlock (&log->lock);
}

QleanConsoleLog *
qlean_console_log_ref (QleanConsoleLog *log)
{
  g_atomic_ref_count_inc (&log->ref_count);
  return log;
}

void
qlean_console_log_unref (QleanConsoleLog *log)
{
  if (!g_atomic_ref_count_dec (&log->ref_count))
    return;

  qlean_console_log_close (log);
  if (log->file_fd >= 0)
    close (log->file_fd);
  close (log->wake_fd);
  if (log->panic_destroy != NULL)
    log->panic_destroy (log->panic_data);
  g_mutex_clear (&log->lock);
  g_free (log->path);
  g_free (log);
}

void
qlean_console_log_set_path (QleanConsoleLog *log,
                            const char      *path)
{
  g_mutex_lock (&log->lock);
  g_free (log->path);
  log->path = g_strdup (path);
  g_mutex_unlock (&log->lock);
}

void
qlean_console_log_flush (QleanConsoleLog *log)
{
  gboolean panic;
  gsize moved = 0;

  g_mutex_lock (&log->lock);
  console_pump (log, CONSOLE_TURN_BYTES, &moved);
  panic = console_take_panic (log);
  g_mutex_unlock (&log->lock);

  if (panic)
    log->panic_func (log->panic_data);
}

void
qlean_console_log_close (QleanConsoleLog *log)
{
  if (log->thread != NULL)
    {
      guint64 one = 1;

      if (write (log->wake_fd, &one, sizeof one) < 0)
        g_debug ("Could not stop the console thread: %s", g_strerror (errno));
      g_thread_join (g_steal_pointer (&log->thread));
    }

  /* QEMU is gone: what it wrote is all in the pipe. */
  g_mutex_lock (&log->lock);
  if (log->pipe_fd >= 0)
    {
      gsize moved = 0;

      console_pump (log, QLEAN_CONSOLE_MAX_BYTES, &moved);
      close (log->pipe_fd);
      log->pipe_fd = -1;
    }
  g_mutex_unlock (&log->lock);
}

gsize
qlean_console_log_read (QleanConsoleLog *log,
                        guint64         *offset,
                        char            *buffer,
                        gsize            size,
                        guint64         *skipped)
{
  guint64 at = *offset;
  guint64 phys, limit;
  ssize_t n = 0;

  g_mutex_lock (&log->lock);

  at = MIN (at, log->total);
  if (log->dropped == 0)
    {
      phys = at;
      limit = log->total - at;
    }
  else if (at < log->head_len)
    {
      phys = at;
      limit = log->head_len - at;
    }
  else
    {
      guint64 tail_start = log->head_len + log->dropped;

      if (at < tail_start)
        {
          *skipped += tail_start - at;
          at = tail_start;
        }
      phys = log->head_len + CONSOLE_MARKER_LEN + (at - tail_start);
      limit = log->total - at;
    }

  if (log->file_fd >= 0 && limit > 0)
    {
      do
        n = pread (log->file_fd, buffer, MIN (size, limit), phys);
      while (n < 0 && errno == EINTR);
    }
  if (n > 0)
    at += n;
  *offset = at;

  g_mutex_unlock (&log->lock);

  return n > 0 ? (gsize) n : 0;
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

      qlean_set_error_from_errno (error, saved_errno,
                                  _("Could not create the directory %s"),
                                  directory);
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
