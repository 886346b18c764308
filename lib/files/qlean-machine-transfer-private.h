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

G_END_DECLS
