/* qlean-machine-fs-private.h: shared by the file calls and the transfers
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-machine-fs-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include "qlean-guest-channel-private.h"
#include "qlean-machine.h"

G_BEGIN_DECLS

GError    *qlean_machine_fs_error    (QleanMachine         *machine,
                                      const char           *verb,
                                      const char           *path,
                                      const char           *path2,
                                      GBytes               *payload);
/* The end of a stream before its answer (its type 0 @error), about
 * @verb on the path shown as @display: a timeout or a request too large
 * to send keep their G_IO_ERROR code, anything else means the guest went
 * away (QLEAN_MACHINE_ERROR_CRASHED). */
GError    *qlean_machine_fs_stream_error (QleanMachine     *machine,
                                          const char       *verb,
                                          const char       *display,
                                          const GError     *error);
/* @path for a message, shortened when too long to read. */
char      *qlean_machine_fs_display_path (const char       *path);
GFileInfo *qlean_file_info_from_stat (const QleanGuestStat *st,
                                      const char           *name,
                                      const char           *symlink_target,
                                      gboolean              is_symlink);

/* Sets a guest path's modification time, never following a link. */
gboolean   qlean_machine_fs_set_mtime (QleanMachine        *machine,
                                       const char          *path,
                                       gint64               mtime_ns,
                                       GCancellable        *cancellable,
                                       GError             **error);

/* qlean-machine-agent-files.c: single files through the guest agent's
 * guest-file-* calls, for when qlean-guest does not answer. Blocking:
 * call them from a thread of their own, never from the worker. */

/* The channel to qlean-guest when it answers (waiting briefly for a
 * HELLO already on its way), or NULL: then the agent must do. A run
 * whose transport is qlean-guest gets NULL with @error set instead when
 * qlean-guest does not answer: it never switches to the agent. */
QleanGuestChannel *qlean_machine_fs_pick_channel (QleanMachine  *self,
                                                  GCancellable  *cancellable,
                                                  GError       **error);
/* @error from the agent as a G_IO_ERROR naming @path, its code read from
 * the strerror() text the agent puts in its messages. */
GError    *qlean_machine_agent_error    (QleanMachine   *machine,
                                         const char     *verb,
                                         const char     *path,
                                         const GError   *error);
/* Reads the agent's open file @handle to its end into @out, or appends
 * it to @collected; ends with G_IO_ERROR_TIMED_OUT when the agent keeps
 * answering with neither data nor end of file. Errors are unwrapped. */
gboolean   qlean_agent_read_to_end      (QleanQgaClient *qga,
                                         gint64          handle,
                                         GOutputStream  *out,
                                         GByteArray     *collected,
                                         GCancellable   *cancellable,
                                         GError        **error);
/* Streams the guest file into @out, or appends it to @collected. */
gboolean   qlean_machine_agent_get      (QleanMachine   *machine,
                                         const char     *guest_path,
                                         GOutputStream  *out,
                                         GByteArray     *collected,
                                         GCancellable   *cancellable,
                                         GError        **error);
/* Makes @guest_path hold @in (streamed) or @contents, atomically, with
 * @mode and, when @mtime_ns >= 0, that modification time. */
gboolean   qlean_machine_agent_put      (QleanMachine   *machine,
                                         const char     *guest_path,
                                         GInputStream   *in,
                                         GBytes         *contents,
                                         guint32         mode,
                                         gint64          mtime_ns,
                                         GCancellable   *cancellable,
                                         GError        **error);
/* Whether the agent can open @guest_path for reading; the error names
 * the path, for a download that must fail before it writes anything. */
gboolean   qlean_machine_agent_check    (QleanMachine   *machine,
                                         const char     *guest_path,
                                         GCancellable   *cancellable,
                                         GError        **error);
gboolean   qlean_machine_agent_is_dir   (QleanMachine   *machine,
                                         const char     *guest_path,
                                         GCancellable   *cancellable);
/* Best effort: FALSE when the guest cannot tell. */
gboolean   qlean_machine_agent_get_mode (QleanMachine   *machine,
                                         const char     *guest_path,
                                         guint32        *mode,
                                         gint64         *mtime_ns,
                                         GCancellable   *cancellable);

G_END_DECLS
