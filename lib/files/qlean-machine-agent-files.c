/* qlean-machine-agent-files.c: files through the guest agent alone
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>
#include <glib/gi18n-lib.h>

#include "qlean-error.h"
#include "qlean-machine-fs-private.h"
#include "qlean-machine-private.h"
#include "qlean-qga-client.h"
#include "qlean-qga-error.h"
#include "qlean-sync-private.h"

/* When qlean-guest does not answer on the data port (an image it was
 * never put into, or it exited and nothing restarted it), whole single
 * files still move with the agent's guest-file-open/read/write/close:
 * base64 in JSON, one chunk at a time, so host memory stays bounded
 * whatever the file's size. It is slower than the data port (see
 * bench/transfer), and the agent reports errors as text only, so the
 * G_IO_ERROR code is read from the strerror() text in its message. */

/* Bytes per guest-file-read/write. Measured under TCG with 3 MiB files
 * on a busy 2-core host (tests/test-files.c, /files/agent-fallback): 64 KiB 2.2/2.1 MB/s up/down,
 * 128 KiB 2.1/5.7, 256 KiB 3.0/8.3, 1 MiB 2.1/5.3, 4 MiB 1.7/3.9; larger
 * chunks lose to the agent's base64 and JSON handling of a big line.
 * bench/bench-agent measures it again (16 MiB, median of 3, load 10,
 * 2026-12-07): 64 KiB 2.3/5.3, 256 KiB 2.5/8.0, 1 MiB 1.7/7.3, 4 MiB
 * 1.9/6.4, 16 MiB 1.7/6.9: flat from 256 KiB up, so a call's round trip
 * is not the limit and pipelining calls would gain little. */
#define AGENT_CHUNK (256 * 1024)

/* Empty answers in a row, none saying "end of file", after which a
 * read gives up: qemu-ga says end of file whenever a read gives nothing,
 * so only a broken or hostile agent repeats them. */
#define AGENT_MAX_EMPTY_READS 64

/* How long a HELLO already on its way (the machine just started, or
 * qlean-guest restarted) may take before the agent does the work. */
#define HELLO_GRACE_MS 1000

QleanGuestChannel *
qlean_machine_fs_pick_channel (QleanMachineRun  *run,
                               GCancellable     *cancellable,
                               GError          **error)
{
  g_autoptr(QleanGuestChannel) channel = NULL;
  gint64 deadline = g_get_monotonic_time () + HELLO_GRACE_MS * G_TIME_SPAN_MILLISECOND;

  if (qlean_machine_run_uses_agent_only (run))
    return NULL;

  /* The run decided on qlean-guest: a restarting one gets the usual
   * chance to answer, a dead one fails the call; never the agent. */
  if (qlean_machine_run_get_guest_transport (run) == QLEAN_GUEST_TRANSPORT_QLEAN_GUEST)
    {
      g_auto(QleanSyncCall) call = { 0 };
      GAsyncResult *result;

      if (!qlean_sync_call_begin (&call, error))
        return NULL;
      qlean_machine_run_get_guest_channel_async (run, cancellable, qlean_sync_call_done, &call);
      result = qlean_sync_call_wait (&call);
      return qlean_machine_run_get_guest_channel_finish (run, result, error);
    }

  channel = qlean_machine_run_dup_guest_channel (run);
  if (channel == NULL)
    return NULL;

  while (!qlean_guest_channel_is_ready (channel) && qlean_guest_channel_is_syncing (channel) &&
         g_get_monotonic_time () < deadline && !g_cancellable_is_cancelled (cancellable))
    g_usleep (10 * G_TIME_SPAN_MILLISECOND);

  return qlean_guest_channel_is_ready (channel) ? g_steal_pointer (&channel) : NULL;
}

static int
code_from_text (const char *text)
{
  static const struct { const char *strerror; int code; } known[] = {
    { "No such file", G_IO_ERROR_NOT_FOUND },
    { "Permission denied", G_IO_ERROR_PERMISSION_DENIED },
    { "Operation not permitted", G_IO_ERROR_PERMISSION_DENIED },
    { "Is a directory", G_IO_ERROR_IS_DIRECTORY },
    { "Not a directory", G_IO_ERROR_NOT_DIRECTORY },
    { "No space", G_IO_ERROR_NO_SPACE },
    { "Read-only file system", G_IO_ERROR_READ_ONLY },
  };

  for (guint i = 0; i < G_N_ELEMENTS (known); i++)
    if (text != NULL && strstr (text, known[i].strerror) != NULL)
      return known[i].code;

  return G_IO_ERROR_FAILED;
}

GError *
qlean_machine_agent_error (QleanMachine  *machine,
                           QleanFsAction  action,
                           const char    *path,
                           const char    *path2,
                           const GError  *error)
{
  g_autofree char *display = g_filename_display_name (path);
  g_autofree char *display2 = path2 ? g_filename_display_name (path2) : NULL;
  g_autofree char *what = qlean_fs_action_failed (action, machine, display, display2);
  GQuark domain = G_IO_ERROR;
  int code;

  /* Only the agent's own failures are errno text; a timeout, a
   * cancellation or a closed channel keeps its code. */
  if (error->domain == QLEAN_QGA_ERROR && error->code == QLEAN_QGA_ERROR_FAILED)
    code = code_from_text (error->message);
  else
    {
      domain = error->domain;
      code = error->code;
    }

  return g_error_new (domain, code, "%s: %s", what, error->message);
}

static QleanQgaClient *
get_agent (QleanMachine   *machine,
           QleanFsAction   action,
           const char     *path,
           GError        **error)
{
  QleanQgaClient *qga = qlean_machine_dup_qga (machine);
  g_autofree char *display = NULL;
  g_autofree char *what = NULL;

  if (qga != NULL)
    return qga;

  /* An attached machine (qlean_machine_attach()) has no agent. */
  display = g_filename_display_name (path);
  what = qlean_fs_action_failed (action, machine, display, NULL);
  g_set_error (error, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
               _("%s: qlean-guest does not answer and there is no guest agent to fall back to"),
               what);
  return NULL;
}

gboolean
qlean_agent_read_to_end (QleanQgaClient  *qga,
                         gint64           handle,
                         GOutputStream   *out,
                         GByteArray      *collected,
                         GCancellable    *cancellable,
                         GError         **error)
{
  gint64 timeout_us = (gint64) qlean_qga_client_get_timeout (qga) * G_TIME_SPAN_MILLISECOND;
  gint64 last_data = g_get_monotonic_time ();
  guint empty_reads = 0;
  gboolean eof = FALSE;

  while (!eof)
    {
      g_autoptr(GBytes) chunk = qlean_qga_client_file_read (qga, handle, AGENT_CHUNK, &eof,
                                                            cancellable, error);

      if (chunk == NULL)
        return FALSE;

      if (g_bytes_get_size (chunk) == 0 && !eof)
        {
          /* A file read to its end says so (eof); "nothing, and more to
           * come" again and again would keep this loop going for ever.
           * Each read is bounded by the agent client's timeout; the loop
           * is too, by the same time without data and by a number of
           * empty answers. */
          gint64 silent_us = g_get_monotonic_time () - last_data;

          if (++empty_reads >= AGENT_MAX_EMPTY_READS || (timeout_us > 0 && silent_us >= timeout_us))
            {
              g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                           _("the guest agent answered %u reads in %.1f s with no data and no end "
                             "of file (the wait is the guest agent client's timeout, "
                             "QleanQgaClient:timeout)"),
                           empty_reads, silent_us / (double) G_USEC_PER_SEC);
              return FALSE;
            }
          continue;
        }

      empty_reads = 0;
      last_data = g_get_monotonic_time ();
      if (out == NULL)
        g_byte_array_append (collected, g_bytes_get_data (chunk, NULL), g_bytes_get_size (chunk));
      else if (!g_output_stream_write_all (out, g_bytes_get_data (chunk, NULL), g_bytes_get_size (chunk),
                                           NULL, cancellable, error))
        return FALSE;
    }

  return TRUE;
}

/* The agent, with @guest_path open for reading in *@handle; NULL with
 * @error set (about @action) when either fails. */
static QleanQgaClient *
agent_open_read (QleanMachine   *machine,
                 QleanFsAction   action,
                 const char     *guest_path,
                 gint64         *handle,
                 GCancellable   *cancellable,
                 GError        **error)
{
  g_autoptr(QleanQgaClient) qga = get_agent (machine, action, guest_path, error);
  g_autoptr(GError) local_error = NULL;

  if (qga == NULL)
    return NULL;

  *handle = qlean_qga_client_file_open (qga, guest_path, "r", cancellable, &local_error);
  if (*handle < 0)
    {
      g_propagate_error (error, qlean_machine_agent_error (machine, action, guest_path, NULL,
                                                           local_error));
      return NULL;
    }

  return g_steal_pointer (&qga);
}

gboolean
qlean_machine_agent_get (QleanMachine   *machine,
                         const char     *guest_path,
                         GOutputStream  *out,
                         GByteArray     *collected,
                         GCancellable   *cancellable,
                         GError        **error)
{
  g_autoptr(QleanQgaClient) qga = NULL;
  g_autoptr(GError) local_error = NULL;
  gint64 handle;

  qga = agent_open_read (machine, QLEAN_FS_ACTION_READ, guest_path, &handle, cancellable, error);
  if (qga == NULL)
    return FALSE;

  if (!qlean_agent_read_to_end (qga, handle, out, collected, cancellable, &local_error))
    g_propagate_error (error, qlean_machine_agent_error (machine, QLEAN_FS_ACTION_READ, guest_path,
                                                         NULL, local_error));

  /* Even after a failure or a cancellation: the agent keeps a handle
   * open until it is closed. */
  qlean_qga_client_file_close (qga, handle, NULL, NULL);

  return local_error == NULL;
}

/* Runs @script, a constant, with /bin/sh and @args as its $1, $2...:
 * through the agent's guest-exec here, as an argument vector, so paths
 * never travel inside a shell string. */
QleanExecResult *
qlean_machine_agent_sh_run (QleanMachine        *machine,
                            GCancellable        *cancellable,
                            GError             **error,
                            const char          *script,
                            const char * const  *args)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_auto(QleanSyncCall) call = { 0 };

  g_ptr_array_add (argv, (gpointer) "/bin/sh");
  g_ptr_array_add (argv, (gpointer) "-c");
  g_ptr_array_add (argv, (gpointer) script);
  g_ptr_array_add (argv, (gpointer) "sh");
  for (guint i = 0; args[i] != NULL; i++)
    g_ptr_array_add (argv, (gpointer) args[i]);
  g_ptr_array_add (argv, NULL);

  if (!qlean_sync_call_begin (&call, error))
    return NULL;
  qlean_machine_exec_argv_async (machine, (const char * const *) argv->pdata, cancellable,
                                 qlean_sync_call_done, &call);
  return qlean_machine_exec_finish (machine, qlean_sync_call_wait (&call), error);
}

/* qlean_machine_agent_sh_run() of @script with the NULL-terminated arguments that
 * follow, for a command that must succeed: its failure, with its
 * stderr, is an error about @action on @path. */
static gboolean
agent_sh (QleanMachine  *machine,
          QleanFsAction  action,
          const char    *path,
          GCancellable  *cancellable,
          GError       **error,
          const char    *script,
          ...)
{
  g_autoptr(GPtrArray) args = g_ptr_array_new ();
  g_autoptr(QleanExecResult) result = NULL;
  g_autoptr(GError) local_error = NULL;
  const char *arg;
  va_list ap;

  va_start (ap, script);
  while ((arg = va_arg (ap, const char *)) != NULL)
    g_ptr_array_add (args, (gpointer) arg);
  va_end (ap);
  g_ptr_array_add (args, NULL);

  result = qlean_machine_agent_sh_run (machine, cancellable, &local_error, script,
                                       (const char * const *) args->pdata);
  if (result == NULL)
    {
      g_propagate_error (error, qlean_machine_agent_error (machine, action, path, NULL, local_error));
      return FALSE;
    }

  if (!qlean_exec_result_success (result))
    {
      g_autofree char *text = qlean_exec_result_get_stderr_text (result);
      g_autofree char *display = g_filename_display_name (path);
      g_autofree char *what = qlean_fs_action_failed (action, machine, display, NULL);

      if (text == NULL)
        text = g_strdup ("");
      g_strchomp (text);
      g_set_error (error, G_IO_ERROR, code_from_text (text), "%s: %s", what, text);
      return FALSE;
    }

  return TRUE;
}

gboolean
qlean_machine_agent_get_mode (QleanMachine *machine,
                              const char   *guest_path,
                              guint32      *mode,
                              gint64       *mtime_ns,
                              GCancellable *cancellable)
{
  const char *args[] = { guest_path, NULL };
  g_autoptr(QleanExecResult) result = qlean_machine_agent_sh_run (machine, cancellable, NULL,
                                                                  "stat -c '%a %Y' -- \"$1\"", args);
  g_autofree char *text = NULL;
  guint64 seconds;
  char *end;

  if (result == NULL || !qlean_exec_result_success (result))
    return FALSE;

  text = qlean_exec_result_get_stdout_text (result);
  if (text == NULL)
    return FALSE;
  *mode = (guint32) g_ascii_strtoull (text, &end, 8);
  if (end == text || *end != ' ')
    return FALSE;
  seconds = g_ascii_strtoull (end + 1, NULL, 10);
  *mtime_ns = (gint64) seconds * G_GINT64_CONSTANT (1000000000);
  return TRUE;
}

gboolean
qlean_machine_agent_check (QleanMachine  *machine,
                           const char    *guest_path,
                           GCancellable  *cancellable,
                           GError       **error)
{
  g_autoptr(QleanQgaClient) qga = NULL;
  gint64 handle;

  qga = agent_open_read (machine, QLEAN_FS_ACTION_DOWNLOAD, guest_path, &handle, cancellable,
                         error);
  if (qga == NULL)
    return FALSE;
  qlean_qga_client_file_close (qga, handle, NULL, NULL);

  return TRUE;
}

gboolean
qlean_machine_agent_is_dir (QleanMachine *machine,
                            const char   *guest_path,
                            GCancellable *cancellable)
{
  g_autoptr(QleanQgaClient) qga = qlean_machine_dup_qga (machine);
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) chunk = NULL;
  gint64 handle;

  if (qga == NULL)
    return FALSE;

  /* Opening a directory for reading works; reading it fails. */
  handle = qlean_qga_client_file_open (qga, guest_path, "r", cancellable, NULL);
  if (handle < 0)
    return FALSE;
  chunk = qlean_qga_client_file_read (qga, handle, 1, NULL, cancellable, &error);
  qlean_qga_client_file_close (qga, handle, NULL, NULL);

  return chunk == NULL && code_from_text (error->message) == G_IO_ERROR_IS_DIRECTORY;
}

gboolean
qlean_agent_write_all (QleanQgaClient  *qga,
                       gint64           handle,
                       GInputStream    *in,
                       GBytes          *contents,
                       GCancellable    *cancellable,
                       GError         **read_error,
                       GError         **agent_error)
{
  gsize offset = 0;

  for (;;)
    {
      g_autoptr(GBytes) chunk = NULL;

      if (in != NULL)
        {
          chunk = g_input_stream_read_bytes (in, AGENT_CHUNK, cancellable, read_error);
          if (chunk == NULL)
            return FALSE;
        }
      else
        {
          gsize size = g_bytes_get_size (contents);

          chunk = g_bytes_new_from_bytes (contents, offset, MIN (AGENT_CHUNK, size - offset));
          offset += g_bytes_get_size (chunk);
        }

      if (g_bytes_get_size (chunk) == 0)
        return TRUE;

      /* The agent may take less than it was given. */
      while (g_bytes_get_size (chunk) > 0)
        {
          gssize written = qlean_qga_client_file_write (qga, handle, chunk, cancellable, agent_error);
          GBytes *rest;

          if (written <= 0)
            {
              if (agent_error != NULL && *agent_error == NULL)
                *agent_error = g_error_new_literal (QLEAN_QGA_ERROR, QLEAN_QGA_ERROR_FAILED,
                                                    _("guest-file-write wrote nothing"));
              return FALSE;
            }
          rest = g_bytes_new_from_bytes (chunk, written, g_bytes_get_size (chunk) - written);
          g_bytes_unref (chunk);
          chunk = rest;
        }
    }
}

/* The name of a new file in @dir for @base's contents: hidden, and not
 * one anybody else would pick. */
static char *
temp_name (const char *dir,
           const char *base)
{
  return g_strdup_printf ("%s/.%s.qlean-%08x", dir, base, g_random_int ());
}

/* Fills @tmp, opened as @handle, and renames it over @guest_path with
 * @mode and @mtime_ns; on any failure it removes @tmp. */
static gboolean
put_and_rename (QleanMachine    *machine,
                QleanQgaClient  *qga,
                gint64           handle,
                const char      *tmp,
                const char      *guest_path,
                GInputStream    *in,
                GBytes          *contents,
                guint32          mode,
                gint64           mtime_ns,
                GCancellable    *cancellable,
                GError         **error)
{
  g_autoptr(GError) local_error = NULL;
  g_autofree char *mode_text = g_strdup_printf ("%o", mode & 07777);
  g_autofree char *mtime_text = NULL;
  gboolean ok = TRUE;

  if (!qlean_agent_write_all (qga, handle, in, contents, cancellable, error, &local_error))
    {
      if (local_error != NULL)
        g_propagate_error (error, qlean_machine_agent_error (machine, QLEAN_FS_ACTION_WRITE,
                                                             guest_path, NULL, local_error));
      g_clear_error (&local_error);
      ok = FALSE;
    }

  /* The agent writes through stdio: a full disk may only show here. */
  if (!qlean_qga_client_file_close (qga, handle, ok ? cancellable : NULL, ok ? &local_error : NULL) && ok)
    {
      g_propagate_error (error, qlean_machine_agent_error (machine, QLEAN_FS_ACTION_WRITE, guest_path,
                                                           NULL, local_error));
      ok = FALSE;
    }

  if (ok)
    {
      mtime_text = mtime_ns >= 0 ? g_strdup_printf ("%" G_GINT64_FORMAT,
                                                     mtime_ns / G_GINT64_CONSTANT (1000000000))
                                 : g_strdup ("");
      /* A time busybox's touch cannot set is no reason to fail. mv
       * would move the file into a directory of the target's name and
       * succeed: refuse that as rename(2) does. */
      ok = agent_sh (machine, QLEAN_FS_ACTION_WRITE, guest_path, cancellable, error,
                     "if [ -d \"$4\" ]; then echo \"$4: Is a directory\" >&2; exit 1; fi; "
                     "chmod -- \"$1\" \"$2\" && { [ -z \"$3\" ] || touch -c -d \"@$3\" -- \"$2\" 2>/dev/null || :; } "
                     "&& mv -f -- \"$2\" \"$4\"",
                     mode_text, tmp, mtime_text, guest_path, NULL);
    }

  if (!ok)
    agent_sh (machine, QLEAN_FS_ACTION_WRITE, guest_path, NULL, NULL, "rm -f -- \"$1\"", tmp, NULL);

  return ok;
}

/* Into a new file beside @guest_path, renamed over it at the end, as
 * qlean-guest does: the file appears complete or not at all, and a
 * failure leaves any old one as it was. With @make_parents, a missing
 * parent directory is made, as qlean-guest makes it. */
static gboolean
put_beside (QleanMachine    *machine,
            QleanQgaClient  *qga,
            const char      *guest_path,
            gboolean         make_parents,
            GInputStream    *in,
            GBytes          *contents,
            guint32          mode,
            gint64           mtime_ns,
            GCancellable    *cancellable,
            GError         **error)
{
  g_autoptr(GError) local_error = NULL;
  g_autofree char *dir = g_path_get_dirname (guest_path);
  g_autofree char *base = g_path_get_basename (guest_path);
  g_autofree char *tmp = temp_name (dir, base);
  gint64 handle;

  handle = qlean_qga_client_file_open (qga, tmp, "w", cancellable, &local_error);
  if (handle < 0 && make_parents && code_from_text (local_error->message) == G_IO_ERROR_NOT_FOUND)
    {
      g_clear_error (&local_error);
      if (!agent_sh (machine, QLEAN_FS_ACTION_WRITE, guest_path, cancellable, error,
                     "mkdir -p -- \"$1\"", dir, NULL))
        return FALSE;
      handle = qlean_qga_client_file_open (qga, tmp, "w", cancellable, &local_error);
    }
  if (handle < 0)
    {
      g_propagate_error (error, qlean_machine_agent_error (machine, QLEAN_FS_ACTION_WRITE, guest_path,
                                                           NULL, local_error));
      return FALSE;
    }

  return put_and_rename (machine, qga, handle, tmp, guest_path, in, contents, mode,
                         mtime_ns, cancellable, error);
}

gboolean
qlean_machine_agent_put (QleanMachine  *machine,
                         const char    *guest_path,
                         GInputStream  *in,
                         GBytes        *contents,
                         guint32        mode,
                         gint64         mtime_ns,
                         GCancellable  *cancellable,
                         GError       **error)
{
  g_autoptr(QleanQgaClient) qga = get_agent (machine, QLEAN_FS_ACTION_WRITE, guest_path, error);

  return qga != NULL &&
         put_beside (machine, qga, guest_path, FALSE, in, contents, mode, mtime_ns, cancellable, error);
}

gboolean
qlean_machine_agent_upload_file (QleanMachine  *machine,
                                 const char    *guest_destination,
                                 const char    *name,
                                 GInputStream  *in,
                                 guint32        mode,
                                 gint64         mtime_ns,
                                 GCancellable  *cancellable,
                                 GError       **error)
{
  g_autoptr(QleanQgaClient) qga = get_agent (machine, QLEAN_FS_ACTION_WRITE, guest_destination, error);
  g_autoptr(GError) local_error = NULL;
  g_autofree char *tmp = NULL;
  g_autofree char *target = NULL;
  gint64 handle;
  int code;

  if (qga == NULL)
    return FALSE;

  /* Like cp and scp: onto an existing directory, the file goes inside
   * it under its own name. Creating the temporary file inside answers
   * whether the destination is a directory in the round trip that
   * starts the upload; asking first would cost a guest-exec. */
  tmp = temp_name (guest_destination, name);
  handle = qlean_qga_client_file_open (qga, tmp, "w", cancellable, &local_error);
  if (handle >= 0)
    {
      target = g_build_filename (guest_destination, name, NULL);
      return put_and_rename (machine, qga, handle, tmp, target, in, NULL, mode, mtime_ns,
                             cancellable, error);
    }

  /* Missing, or not a directory: the destination is the file's new
   * name. Anything else says it is a directory we cannot write into
   * (or that nothing can be reached there): that is the answer. */
  code = code_from_text (local_error->message);
  if (code != G_IO_ERROR_NOT_FOUND && code != G_IO_ERROR_NOT_DIRECTORY)
    {
      g_propagate_error (error, qlean_machine_agent_error (machine, QLEAN_FS_ACTION_WRITE,
                                                           guest_destination, NULL, local_error));
      return FALSE;
    }

  return put_beside (machine, qga, guest_destination, TRUE, in, NULL, mode, mtime_ns, cancellable,
                     error);
}
