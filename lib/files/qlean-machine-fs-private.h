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
#include "qlean-machine-run-private.h"

G_BEGIN_DECLS

/* What a file call was doing, for its error messages: each names one
 * whole translatable sentence (qlean_fs_action_failed()), never a verb
 * pasted into another. The ones marked "two paths" name both. */
typedef enum
{
  QLEAN_FS_ACTION_CREATE_DIR,
  QLEAN_FS_ACTION_REMOVE,
  QLEAN_FS_ACTION_REMOVE_DIR,
  QLEAN_FS_ACTION_RENAME,            /* two paths */
  QLEAN_FS_ACTION_HARD_LINK,         /* two paths */
  QLEAN_FS_ACTION_SYMLINK,           /* two paths */
  QLEAN_FS_ACTION_COPY,              /* two paths */
  QLEAN_FS_ACTION_SET_PERMISSIONS,
  QLEAN_FS_ACTION_SET_TIME,
  QLEAN_FS_ACTION_METADATA,
  QLEAN_FS_ACTION_READ_LINK,
  QLEAN_FS_ACTION_READ_DIR,
  QLEAN_FS_ACTION_READ,
  QLEAN_FS_ACTION_WRITE,
  QLEAN_FS_ACTION_DOWNLOAD,
} QleanFsAction;

/* "Cannot <do @action on> “@display” in machine “NAME”", translated;
 * @display2 is the second path of a two-path action (NULL otherwise).
 * Callers add ": " and the reason. */
char      *qlean_fs_action_failed    (QleanFsAction         action,
                                      QleanMachine         *machine,
                                      const char           *display,
                                      const char           *display2);

GError    *qlean_machine_fs_error    (QleanMachine         *machine,
                                      QleanFsAction         action,
                                      const char           *path,
                                      const char           *path2,
                                      GBytes               *payload);
/* The end of a stream before its answer (its type 0 @error), about
 * @action on @path (and @path2): a timeout or a request too large
 * to send keep their G_IO_ERROR code, anything else means the guest went
 * away (QLEAN_MACHINE_ERROR_CRASHED). */
GError    *qlean_machine_fs_stream_error (QleanMachine     *machine,
                                          QleanFsAction     action,
                                          const char       *path,
                                          const char       *path2,
                                          const GError     *error);
/* @path for a message, shortened when too long to read. */
char      *qlean_machine_fs_display_path (const char       *path);
GFileInfo *qlean_file_info_from_stat (const QleanGuestStat *st,
                                      const char           *name,
                                      const char           *symlink_target,
                                      gboolean              is_symlink);

/* The request engine (qlean-machine-fs.c) */

typedef enum
{
  QLEAN_FS_RESULT_NONE,      /* the DONE payload */
  QLEAN_FS_RESULT_LISTING,   /* DATA fd 1 frames and DONE, concatenated */
  QLEAN_FS_RESULT_CONTENTS,  /* GET: DONE, then the file's bytes */
} QleanFsResult;

/* One file call: what goes to the guest, and (filled in on the worker
 * or a backend's thread) what came back. */
typedef struct
{
  guint8         request;      /* FS, GET or PUT */
  guint32        op;
  char          *path;
  char          *path2;
  gboolean       has_mode;
  guint32        mode;
  guint32        flags;
  gboolean       has_mtime;
  gint64         mtime_ns;
  GBytes        *contents;     /* PUT */
  QleanFsAction  action;
  QleanFsResult  kind;
  gboolean       port_only;    /* GET, PUT: never through the agent */
  QleanMachineRun *run;        /* the run the call goes to (set by qlean_fs_request_async) */

  /* worker */
  GByteArray       *collected;
  GBytes           *done;
  gboolean          seen_done;
  QleanGuestStream *stream;         /* borrowed; open until the task returns */
  GSource          *cancel_source;  /* holds the task until it returns */
} QleanFsRequest;

/* An FS request for @op (a QleanGuestFsOp) on @path (and @path2). */
QleanFsRequest *qlean_fs_request_new    (guint32         op,
                                         const char     *path,
                                         const char     *path2,
                                         QleanFsAction   action);
/* Runs @req (taking it) on whichever transport the machine's run uses;
 * the task's source tag is @source_tag. */
void            qlean_fs_request_async  (QleanMachine        *self,
                                         QleanFsRequest      *req,
                                         GCancellable        *cancellable,
                                         gpointer             source_tag,
                                         GAsyncReadyCallback  callback,
                                         gpointer             user_data);
/* On success, the request with what the guest answered (owned by the
 * task); NULL with @error set otherwise. Checks no source tag: the
 * public _finish functions do. */
QleanFsRequest *qlean_fs_request_finish (QleanMachine   *self,
                                         GAsyncResult   *result,
                                         GError        **error);
/* Runs @req (taking it) to completion; returns the finished task
 * (holding the request) or NULL with @error set. */
GTask          *qlean_fs_request_run    (QleanMachine   *self,
                                         QleanFsRequest *req,
                                         GCancellable   *cancellable,
                                         GError        **error);
gboolean        qlean_fs_bool_finish    (QleanMachine   *self,
                                         GAsyncResult   *result,
                                         GError        **error);
gboolean        qlean_fs_bool_run       (QleanMachine   *self,
                                         QleanFsRequest *req,
                                         GCancellable   *cancellable,
                                         GError        **error);
/* The value of the first @wanted tag in the TLV @payload. */
gboolean        qlean_fs_find_tag       (GBytes         *payload,
                                         guint16         wanted,
                                         const guint8  **value,
                                         gsize          *len);

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
QleanGuestChannel *qlean_machine_fs_pick_channel (QleanMachineRun *run,
                                                  GCancellable  *cancellable,
                                                  GError       **error);
/* @error from the agent as a G_IO_ERROR naming @path (and @path2), its code read from
 * the strerror() text the agent puts in its messages. */
GError    *qlean_machine_agent_error    (QleanMachine   *machine,
                                         QleanFsAction   action,
                                         const char     *path,
                                         const char     *path2,
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
/* Writes @in to its end (or all of @contents) to the agent's open file
 * @handle, in chunks of the size measured best. A failure to read @in
 * is set in @read_error as it is; the agent's, in @agent_error, unwrapped. */
gboolean   qlean_agent_write_all        (QleanQgaClient *qga,
                                         gint64          handle,
                                         GInputStream   *in,
                                         GBytes         *contents,
                                         GCancellable   *cancellable,
                                         GError        **read_error,
                                         GError        **agent_error);
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
/* Uploads @in as cp and scp do: into @guest_destination under @name
 * when that is a directory, else as @guest_destination itself; one
 * guest-exec in all (the final rename). */
gboolean   qlean_machine_agent_upload_file (QleanMachine   *machine,
                                            const char     *guest_destination,
                                            const char     *name,
                                            GInputStream   *in,
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
/* Runs @script, a constant, with /bin/sh and the NULL-terminated @args
 * as its $1, $2...: through the agent's guest-exec, as an argument
 * vector, so paths never travel inside a shell string. */
QleanExecResult *qlean_machine_agent_sh_run (QleanMachine        *machine,
                                             GCancellable        *cancellable,
                                             GError             **error,
                                             const char          *script,
                                             const char * const  *args);
/* Best effort: FALSE when the guest cannot tell. */
gboolean   qlean_machine_agent_get_mode (QleanMachine   *machine,
                                         const char     *guest_path,
                                         guint32        *mode,
                                         gint64         *mtime_ns,
                                         GCancellable   *cancellable);

G_END_DECLS
