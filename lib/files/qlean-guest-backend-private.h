/* qlean-guest-backend-private.h: how a machine's run reaches its guest's files
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-guest-backend-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include <gio/gio.h>

#include "qlean-machine.h"
#include "qlean-machine-fs-private.h"
#include "qlean-machine-run-private.h"

G_BEGIN_DECLS

/* A guest I/O backend: the file calls delegate to the one of the
 * machine's run instead of asking, call by call, which transport it
 * has. Two exist: qlean-guest's, over its channel on the data port
 * (qlean-machine-fs.c), and the stock QEMU guest agent's
 * (qlean-guest-backend-agent.c), which answers as qlean-guest would. */
typedef struct _QleanGuestBackend QleanGuestBackend;

struct _QleanGuestBackend
{
  const char *name;
  /* Whether a path that is not UTF-8 reaches the guest: the agent
   * speaks JSON, whose strings are UTF-8. */
  gboolean    any_path;
  /* Starts the request that @task holds (its task data, a
   * QleanFsRequest) on the caller's thread; it answers through @task,
   * with a boolean, having filled in the request's done and collected.
   * Takes the caller's reference to @task. */
  void      (*fs_start) (QleanMachine *machine,
                         GTask        *task);
};

extern const QleanGuestBackend qlean_guest_backend_qlean_guest;
extern const QleanGuestBackend qlean_guest_backend_agent;

/* The backend of @run: the agent's when its transport is, or is
 * configured to be, the agent alone; qlean-guest's otherwise (which
 * itself lets the agent move whole files while a run has not decided
 * yet). Safe from any thread. */
const QleanGuestBackend *qlean_guest_backend_get (QleanMachineRun *run);

/* Blocking (a task thread, never the worker): runs @req through the
 * QEMU guest agent alone, answering as qlean-guest would: FS requests
 * as one guest-exec of a fixed script each, GET and PUT with the
 * agent's guest-file-* calls (qlean-machine-agent-files.c). */
gboolean qlean_guest_backend_agent_run (QleanMachine    *machine,
                                        QleanFsRequest  *req,
                                        GCancellable    *cancellable,
                                        GError         **error);

G_END_DECLS
