/* qlean-agent-tar.c: directory trees over the stock guest agent, as one tar stream
 *
 * SPDX-License-Identifier: MIT
 *
 * Over the agent alone, every guest-exec and every guest-file-* call is
 * a round trip of tens of milliseconds under TCG, and a tree moved file
 * by file (qlean-machine-upload.c, qlean-machine-download.c) pays several
 * per file: a 1,000-file tree took 49 s up and 9 s down. Here a tree is
 * one tar stream instead, in a temporary file in the guest: packed on the
 * host (qlean_tree_tar_write()) and unpacked by the guest's tar on the
 * way in; packed by the guest's tar and unpacked on the host, by a reader
 * that trusts nothing in it (qlean_tree_tar_extract()), on the way out.
 * The guest's tar is GNU tar or busybox's: only the options both have
 * (-c, -x, -f, -C) are used, and paths reach it as argv elements, never
 * as shell text. A guest without tar changes nothing and says so; the
 * caller then moves the files one by one. The guest's temporary file is
 * removed whether the transfer worked or not.
 */

#include "config.h"

#include <string.h>
#include <glib/gi18n-lib.h>

#include "qlean-machine-fs.h"
#include "qlean-machine-fs-private.h"
#include "qlean-machine-private.h"
#include "qlean-machine-transfer-private.h"
#include "qlean-qga-client.h"
#include "qlean-tree-tar-private.h"

/* The exit status of the scripts below when the guest has no tar. */
#define NO_TAR_STATUS 97

/* Makes the guest's temporary file, once tar is known to be there. */
static const char mktemp_script[] =
  "command -v tar >/dev/null 2>&1 || exit 97\n"
  "mktemp\n";

/* $1: the stream; $2: where it goes. The stream goes whatever tar says. */
static const char unpack_script[] =
  "tar -x -f \"$1\" -C \"$2\"\n"
  "s=$?\n"
  "rm -f -- \"$1\"\n"
  "exit $s\n";

/* $1: the directory. Prints the stream's path, and leaves no stream
 * behind when tar fails. */
static const char pack_script[] =
  "command -v tar >/dev/null 2>&1 || exit 97\n"
  "t=$(mktemp) || exit 1\n"
  "if (cd -- \"$1\" && tar -c -f \"$t\" .); then printf '%s' \"$t\"; exit 0; fi\n"
  "rm -f -- \"$t\"\n"
  "exit 1\n";

static const char remove_script[] = "rm -f -- \"$1\"\n";

/* A host file for the stream, already unlinked: nothing stays behind,
 * whatever happens to this process. */
static GFileIOStream *
host_temporary (GError **error)
{
  g_autoptr(GFileIOStream) io = NULL;
  g_autoptr(GFile) file = g_file_new_tmp ("qlean-tree-XXXXXX.tar", &io, error);

  if (file == NULL)
    return NULL;
  g_file_delete (file, NULL, NULL);
  return g_steal_pointer (&io);
}

static gboolean
rewind_stream (GFileIOStream  *io,
               GCancellable   *cancellable,
               GError        **error)
{
  return g_output_stream_flush (g_io_stream_get_output_stream (G_IO_STREAM (io)), cancellable, error) &&
         g_seekable_seek (G_SEEKABLE (io), 0, G_SEEK_SET, cancellable, error);
}

/* The last line the guest's command wrote on stderr, for an error. */
static char *
stderr_line (QleanExecResult *result)
{
  g_autofree char *text = qlean_exec_result_get_stderr_text (result);
  const char *line;

  if (text == NULL)
    return g_strdup ("");
  g_strchomp (text);
  line = strrchr (text, '\n');
  return g_strdup (line ? line + 1 : text);
}

/* Runs @script; NO_TAR when it says so, FAILED with @error set (naming
 * @what, a whole sentence's start) when it fails, DONE with its
 * output in *@out otherwise. */
static QleanAgentTarOutcome
guest_run (QleanTransferCtx    *ctx,
           const char          *script,
           const char * const  *args,
           char               **out,
           const char          *what,
           GError             **error)
{
  g_autoptr(QleanExecResult) result = NULL;
  g_autoptr(GError) local_error = NULL;

  result = qlean_machine_agent_sh_run (ctx->machine, ctx->cancellable, &local_error, script, args);
  if (result == NULL)
    {
      g_set_error (error, local_error->domain, local_error->code, "%s: %s", what,
                   local_error->message);
      return QLEAN_AGENT_TAR_FAILED;
    }

  if (!qlean_exec_result_get_if_signaled (result) &&
      qlean_exec_result_get_exit_status (result) == NO_TAR_STATUS)
    return QLEAN_AGENT_TAR_NO_TAR;

  if (!qlean_exec_result_success (result))
    {
      g_autofree char *line = stderr_line (result);

      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, _("%s: the guest's tar failed: %s"), what,
                   line);
      return QLEAN_AGENT_TAR_FAILED;
    }

  if (out != NULL)
    {
      *out = qlean_exec_result_get_stdout_text (result);
      if (*out == NULL || **out == '\0' || **out != '/')
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                       _("%s: the guest did not name its temporary file"), what);
          g_clear_pointer (out, g_free);
          return QLEAN_AGENT_TAR_FAILED;
        }
      g_strchomp (*out);
    }

  return QLEAN_AGENT_TAR_DONE;
}

/* Best effort, after a success as after a failure, and even once the
 * transfer was cancelled: the guest keeps no stream. */
static void
guest_remove (QleanTransferCtx *ctx,
              const char       *guest_tmp)
{
  const char *args[] = { guest_tmp, NULL };
  g_autoptr(QleanExecResult) result = NULL;
  g_autoptr(GError) error = NULL;

  result = qlean_machine_agent_sh_run (ctx->machine, NULL, &error, remove_script, args);
  if (result == NULL || !qlean_exec_result_success (result))
    g_debug ("agent tar: could not remove %s from the guest: %s", guest_tmp,
             error ? error->message : "rm failed");
}

/* The agent, with the guest file @guest_tmp open in @mode in *@handle;
 * NULL with @error set (starting with @what) when either fails. */
static QleanQgaClient *
agent_open (QleanTransferCtx  *ctx,
            const char        *guest_tmp,
            const char        *mode,
            gint64            *handle,
            const char        *what,
            GError           **error)
{
  g_autoptr(QleanQgaClient) qga = qlean_machine_dup_qga (ctx->machine);
  g_autoptr(GError) local_error = NULL;

  if (qga == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_CLOSED, _("%s: the guest agent is gone"), what);
      return NULL;
    }

  *handle = qlean_qga_client_file_open (qga, guest_tmp, mode, ctx->cancellable, &local_error);
  if (*handle < 0)
    {
      g_set_error (error, local_error->domain, local_error->code, "%s: %s", what, local_error->message);
      return NULL;
    }

  return g_steal_pointer (&qga);
}

/* Copies @in into the guest file @guest_tmp with guest-file-write. */
static gboolean
send_stream (QleanTransferCtx  *ctx,
             GInputStream      *in,
             const char        *guest_tmp,
             const char        *what,
             GError           **error)
{
  g_autoptr(GError) local_error = NULL;
  gint64 handle;
  g_autoptr(QleanQgaClient) qga = agent_open (ctx, guest_tmp, "w", &handle, what, error);
  gboolean ok;

  if (qga == NULL)
    return FALSE;

  ok = qlean_agent_write_all (qga, handle, in, NULL, ctx->cancellable, error, &local_error);
  /* The agent writes through stdio: a full disk may only show here. */
  if (!qlean_qga_client_file_close (qga, handle, ok ? ctx->cancellable : NULL, ok ? &local_error : NULL) && ok)
    ok = FALSE;
  if (!ok && local_error != NULL)
    g_set_error (error, local_error->domain, local_error->code, "%s: %s", what, local_error->message);
  return ok;
}

/* Copies the guest file @guest_tmp into @out with guest-file-read. */
static gboolean
fetch_stream (QleanTransferCtx  *ctx,
              const char        *guest_tmp,
              GOutputStream     *out,
              const char        *what,
              GError           **error)
{
  g_autoptr(GError) local_error = NULL;
  gint64 handle;
  g_autoptr(QleanQgaClient) qga = agent_open (ctx, guest_tmp, "r", &handle, what, error);
  gboolean ok;

  if (qga == NULL)
    return FALSE;

  ok = qlean_agent_read_to_end (qga, handle, out, NULL, ctx->cancellable, &local_error);
  /* Even after a failure: the agent keeps a handle open until closed. */
  qlean_qga_client_file_close (qga, handle, NULL, NULL);
  if (!ok)
    g_set_error (error, local_error->domain, local_error->code, "%s: %s", what, local_error->message);
  return ok;
}

QleanAgentTarOutcome
qlean_agent_tar_upload (QleanTransferCtx  *ctx,
                        GFile             *source,
                        const char        *target,
                        GError           **error)
{
  g_autoptr(GFileIOStream) io = NULL;
  g_autofree char *guest_tmp = NULL;
  g_autofree char *what = g_strdup_printf (_("Cannot upload %s to machine “%s”"),
                                           g_file_peek_path (source),
                                           qlean_machine_get_name (ctx->machine));
  QleanAgentTarOutcome outcome;
  gboolean ok;

  /* Packed first: a local file that cannot be read fails the upload
   * before anything changes in the guest. */
  io = host_temporary (error);
  if (io == NULL)
    return QLEAN_AGENT_TAR_FAILED;
  if (!qlean_tree_tar_write (source, g_io_stream_get_output_stream (G_IO_STREAM (io)),
                             ctx->cancellable, error) ||
      !rewind_stream (io, ctx->cancellable, error))
    return QLEAN_AGENT_TAR_FAILED;

  {
    const char *args[] = { NULL };

    outcome = guest_run (ctx, mktemp_script, args, &guest_tmp, what, error);
    if (outcome != QLEAN_AGENT_TAR_DONE)
      return outcome;
  }

  /* The target as the one-by-one upload makes it (mkdir -p), with the
   * same errors when something else is in the way. */
  ok = qlean_machine_create_dir_all (ctx->machine, target, ctx->cancellable, error) &&
       send_stream (ctx, g_io_stream_get_input_stream (G_IO_STREAM (io)), guest_tmp, what, error);
  if (ok)
    {
      const char *args[] = { guest_tmp, target, NULL };

      /* The script removes the stream itself, whatever tar did. */
      ok = guest_run (ctx, unpack_script, args, NULL, what, error) == QLEAN_AGENT_TAR_DONE;
    }
  if (!ok)
    guest_remove (ctx, guest_tmp);

  return ok ? QLEAN_AGENT_TAR_DONE : QLEAN_AGENT_TAR_FAILED;
}

QleanAgentTarOutcome
qlean_agent_tar_download (QleanTransferCtx  *ctx,
                          const char        *guest_dir,
                          const char        *local_dir,
                          GError           **error)
{
  g_autoptr(GFileIOStream) io = NULL;
  g_autofree char *guest_tmp = NULL;
  g_autofree char *what = g_strdup_printf (_("Cannot download “%s” from machine “%s”"), guest_dir,
                                           qlean_machine_get_name (ctx->machine));
  const char *args[] = { guest_dir, NULL };
  QleanAgentTarOutcome outcome;
  gboolean ok;

  io = host_temporary (error);
  if (io == NULL)
    return QLEAN_AGENT_TAR_FAILED;

  outcome = guest_run (ctx, pack_script, args, &guest_tmp, what, error);
  if (outcome != QLEAN_AGENT_TAR_DONE)
    return outcome;

  ok = fetch_stream (ctx, guest_tmp, g_io_stream_get_output_stream (G_IO_STREAM (io)), what, error);
  guest_remove (ctx, guest_tmp);

  ok = ok && rewind_stream (io, ctx->cancellable, error) &&
       qlean_tree_tar_extract (g_io_stream_get_input_stream (G_IO_STREAM (io)), local_dir,
                               qlean_transfer_local_mode (07777, ctx->flags), ctx->cancellable, error);

  return ok ? QLEAN_AGENT_TAR_DONE : QLEAN_AGENT_TAR_FAILED;
}
