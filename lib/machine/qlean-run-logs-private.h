/* qlean-run-logs-private.h: the logs a machine's run leaves, kept and saved
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-run-logs-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include <gio/gio.h>

#include "qlean-qga-client.h"
#include "qlean-qmp-client.h"

G_BEGIN_DECLS

/* The file, in the run directory, holding every QMP and agent line. */
#define QLEAN_TRANSCRIPT_LOG "transcript.log"

/* The log domain of traffic messages: G_MESSAGES_DEBUG=qlean-traffic
 * prints every QMP and agent line as it passes. */
#define QLEAN_TRAFFIC_LOG_DOMAIN "qlean-traffic"

/* A transcript of a machine's QMP and agent traffic: one line per JSON
 * message, with the time, the channel and the direction. Written from
 * the channels' trace hooks on the worker thread, unbuffered, so that a
 * copy taken at any moment holds everything exchanged so far. */
typedef struct _QleanTranscript QleanTranscript;

QleanTranscript *qlean_transcript_new        (const char      *path,
                                              const char      *machine_name,
                                              GError         **error);
QleanTranscript *qlean_transcript_ref        (QleanTranscript *transcript);
void             qlean_transcript_unref      (QleanTranscript *transcript);
/* The machine the traffic is now that of: a warmed spare's run goes on
 * as that of the machine that took it (qlean-machine-spares.c), which
 * a line of the transcript notes. Any thread. */
void             qlean_transcript_set_machine_name (QleanTranscript *transcript,
                                                    const char      *machine_name);
/* Must be called before the client's first message (see the clients'
 * set_trace); the client keeps a reference to @transcript. */
void             qlean_transcript_attach_qmp (QleanTranscript *transcript,
                                              QleanQmpClient  *client);
void             qlean_transcript_attach_qga (QleanTranscript *transcript,
                                              QleanQgaClient  *client);

/* The logs of a run (serial console, QEMU's log, transcript) read into
 * memory, their last QLEAN_RUN_LOGS_MAX_BYTES each, so that they can be
 * saved after the run directory is gone. */
#define QLEAN_RUN_LOGS_MAX_BYTES (1024 * 1024)

typedef struct _QleanRunLogs QleanRunLogs;

QleanRunLogs    *qlean_run_logs_capture      (const char      *run_dir);
void             qlean_run_logs_free         (QleanRunLogs    *logs);
/* Copies the logs of @run_dir, or the captured @logs, into @directory
 * (made if missing). */
gboolean         qlean_run_logs_save_dir     (const char      *run_dir,
                                              const char      *directory,
                                              GError         **error);
gboolean         qlean_run_logs_save         (QleanRunLogs    *logs,
                                              const char      *directory,
                                              GError         **error);

/* The serial console of a run. QEMU writes it into a pipe and a thread
 * of ours copies it to the console file, which keeps the first
 * QLEAN_CONSOLE_HEAD_BYTES of the output (the boot) and the latest
 * QLEAN_CONSOLE_TAIL_BYTES to twice that: a guest flooding its console
 * costs bounded disk (the run directory is often a tmpfs, that is host
 * memory). When output is dropped, the file says so in a marker line
 * between the head and the tail, and the file is replaced (renamed
 * over), so that a reader holding it open keeps a consistent copy. */
#define QLEAN_CONSOLE_HEAD_BYTES (1024 * 1024)
#define QLEAN_CONSOLE_TAIL_BYTES (2 * 1024 * 1024)
/* What the console file may take at most, the marker included, and the
 * copy made while dropping output. */
#define QLEAN_CONSOLE_MAX_BYTES (QLEAN_CONSOLE_HEAD_BYTES + 2 * QLEAN_CONSOLE_TAIL_BYTES + 128)

typedef struct _QleanConsoleLog QleanConsoleLog;

/* Called once, from the console's thread, when the kernel's panic line
 * ("Kernel panic - not syncing") first passes. */
typedef void (*QleanConsolePanicFunc) (gpointer user_data);

/* Makes @path (mode 0600) and the pipe; *@qemu_fd is the write end for
 * QEMU, the caller's to close (or to hand to the child). */
QleanConsoleLog *qlean_console_log_new       (const char            *path,
                                              int                   *qemu_fd,
                                              GError               **error);
/* For tests: what logs made from now on keep, instead of the limits
 * above, so that a test shows them without megabytes of output. */
void             qlean_console_log_set_limits (gsize                  head_bytes,
                                               gsize                  tail_bytes);
QleanConsoleLog *qlean_console_log_ref       (QleanConsoleLog       *log);
void             qlean_console_log_unref     (QleanConsoleLog       *log);
/* Before the first output: @func is called from the console's thread. */
void             qlean_console_log_set_panic_func (QleanConsoleLog       *log,
                                                   QleanConsolePanicFunc  func,
                                                   gpointer               user_data,
                                                   GDestroyNotify         destroy);
/* The file moved to @path with its directory (a run directory renamed
 * while QEMU runs): later cuts write there. Any thread. */
void             qlean_console_log_set_path  (QleanConsoleLog       *log,
                                              const char            *path);
/* Copies what QEMU has written so far into the file, from any thread
 * (so that an error quoting the console sees the latest lines). */
void             qlean_console_log_flush     (QleanConsoleLog       *log);
/* Copies what is left in the pipe and stops the thread: call it once
 * QEMU is gone. Reading still works. */
void             qlean_console_log_close     (QleanConsoleLog       *log);
/* Reads the console output from *@offset, counted in bytes of output
 * since the start (dropped bytes included), and moves *@offset on. Adds
 * to *@skipped the bytes dropped between *@offset and what it read.
 * Returns the bytes read: 0 when there is nothing new. */
gsize            qlean_console_log_read      (QleanConsoleLog       *log,
                                              guint64               *offset,
                                              char                  *buffer,
                                              gsize                  size,
                                              guint64               *skipped);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (QleanConsoleLog, qlean_console_log_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (QleanTranscript, qlean_transcript_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (QleanRunLogs, qlean_run_logs_free)

G_END_DECLS
