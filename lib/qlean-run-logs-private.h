/* qlean-run-logs-private.h: the logs a machine's run leaves, kept and saved
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

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

G_DEFINE_AUTOPTR_CLEANUP_FUNC (QleanTranscript, qlean_transcript_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (QleanRunLogs, qlean_run_logs_free)

G_END_DECLS
