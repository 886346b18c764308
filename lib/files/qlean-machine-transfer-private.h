/* qlean-machine-transfer-private.h: shared by uploads and downloads
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-machine-transfer-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include <gio/gio.h>

#include "qlean-guest-channel-private.h"
#include "qlean-machine-fs.h"

G_BEGIN_DECLS

/* One transfer's walk: the machine, the channel to qlean-guest (NULL:
 * the agent moves the files), and what the caller asked. */
typedef struct
{
  QleanMachine       *machine;
  QleanGuestChannel  *channel;
  GCancellable       *cancellable;
  QleanTransferFlags  flags;
  QleanMachineRun    *run;       /* the run the transfer goes to */
} QleanTransferCtx;

/* What a GET's DONE says about the file. */
typedef struct
{
  guint32 mode;
  gint64  mtime_ns;
} QleanTransferGetInfo;

/* What a transfer task runs with (its task data). */
typedef struct
{
  GFile              *file;
  char               *guest_path;
  QleanTransferFlags  flags;
} QleanTransferArgs;

/* Streams @in into the guest file @guest_path (blocking). */
gboolean qlean_transfer_put_stream (QleanMachine          *machine,
                                    QleanMachineRun       *run,
                                    QleanGuestChannel     *channel,
                                    const char            *guest_path,
                                    GInputStream          *in,
                                    guint32                mode,
                                    gint64                 mtime_ns,
                                    guint32                flags,
                                    GCancellable          *cancellable,
                                    GError               **error);
/* Streams the guest file @guest_path into @out (blocking). */
gboolean qlean_transfer_get_stream (QleanMachine          *machine,
                                    QleanMachineRun       *run,
                                    QleanGuestChannel     *channel,
                                    const char            *guest_path,
                                    GOutputStream         *out,
                                    QleanTransferGetInfo  *info,
                                    GCancellable          *cancellable,
                                    GError               **error);
/* Whether @name is one entry of a directory: never "", ".", ".." nor
 * anything with a slash. */
gboolean qlean_transfer_is_plain_name  (const char *name);
gint64   qlean_transfer_info_mtime_ns  (GFileInfo  *info);
/* The mode a file or directory downloaded with @flags gets on the host,
 * from the one the guest reports (qlean-machine-download.c). */
guint32  qlean_transfer_local_mode     (guint32             guest_mode,
                                        QleanTransferFlags  flags);
/* Sets @error: a directory transfer where only the agent answers.
 * Returns FALSE. */
gboolean qlean_transfer_needs_guest_program (QleanMachine  *machine,
                                             gboolean       upload,
                                             const char    *path,
                                             GError       **error);
/* Runs @func on a thread of its own with a QleanTransferArgs, after
 * checking that the machine runs. */
void     qlean_transfer_run (QleanMachine        *self,
                             GFile               *file,
                             const char          *guest_path,
                             QleanTransferFlags   flags,
                             GTaskThreadFunc      func,
                             GCancellable        *cancellable,
                             gpointer             source_tag,
                             GAsyncReadyCallback  callback,
                             gpointer             user_data);

/* qlean-agent-tar.c: a whole tree over the stock guest agent as one
 * tar stream. NO_TAR: the guest has no tar, and nothing was changed
 * there; the caller moves the files one by one instead. */
typedef enum
{
  QLEAN_AGENT_TAR_DONE,
  QLEAN_AGENT_TAR_FAILED,
  QLEAN_AGENT_TAR_NO_TAR,
} QleanAgentTarOutcome;

/* Makes the local directory @source the guest directory @target (made
 * with its parents when missing; what it holds is replaced or kept as
 * tar does). Blocking. */
QleanAgentTarOutcome qlean_agent_tar_upload   (QleanTransferCtx  *ctx,
                                               GFile             *source,
                                               const char        *target,
                                               GError           **error);
/* Makes the guest directory @guest_dir the local directory @local_dir,
 * as safely as a download must be (qlean_tree_tar_extract()). Blocking. */
QleanAgentTarOutcome qlean_agent_tar_download (QleanTransferCtx  *ctx,
                                               const char        *guest_dir,
                                               const char        *local_dir,
                                               GError           **error);

G_END_DECLS
