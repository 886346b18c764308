/* qlean-machine-private.h: what the rest of Qlean may use of a machine
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-machine-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include "qlean-guest-channel-private.h"
#include "qlean-machine.h"
#include "qlean-machine-run-private.h"
#include "qlean-network-private.h"

G_BEGIN_DECLS

/* Fails with QLEAN_MACHINE_ERROR_INVALID_STATE unless the machine is
 * RUNNING, saying that @op cannot be done (qlean_machine_ref_run()
 * without keeping the run). */
gboolean qlean_machine_check_running (QleanMachine    *self,
                                      QleanMachineOp   op,
                                      GError         **error);

const char *qlean_machine_state_to_string (QleanMachineState state);

/* The serial console of the current run (qlean-run-logs.c), or NULL
 * when the machine is not running. */
typedef struct _QleanConsoleLog QleanConsoleLog;
QleanConsoleLog *qlean_machine_ref_console_log (QleanMachine *self);

/* Sets the guest's clock from the host's through the current run
 * (qlean_machine_run_fix_clock()). Any thread. */
void qlean_machine_fix_clock (QleanMachine *self);

/* Whether a start of @self maps a shared memory template (fast start,
 * QleanMachineConfig:memory-template), where the template can be used. */
gboolean qlean_machine_would_use_memory_template (QleanMachine *self);

/* The next start loads @state_path (a saved migration stream) instead of
 * booting; with @new_identity the guest then gets this machine's name,
 * a new machine-id and fresh randomness (clones, golden pools), and its
 * network card, saved with @old_mac, gets this machine's. */
void  qlean_machine_set_incoming     (QleanMachine  *self,
                                      const char    *state_path,
                                      gboolean       new_identity,
                                      const char    *old_mac);
/* qlean-machine-incoming-stream.c: the next start of @self, whose
 * incoming state (qlean_machine_set_incoming(), with @socket_path) is
 * not a file, has QEMU listen on the Unix socket @socket_path for a
 * migration; @listening is called with @listener (held weakly) on the
 * worker once it listens, while that start is still on. */
typedef void (*QleanIncomingListening) (QleanMachine *self,
                                        GObject      *listener);
void     qlean_machine_set_incoming_stream     (QleanMachine           *self,
                                                const char             *socket_path,
                                                QleanIncomingListening  listening,
                                                GObject                *listener);
/* Worker thread, for the start that loads the incoming state: whether
 * it streams in (the stream then goes with this run); QEMU's URI to
 * load it from; and, once QEMU listens, telling whoever streams. */
gboolean qlean_machine_prepare_incoming_stream (QleanMachine           *self);
gboolean qlean_machine_incoming_streams        (QleanMachine           *self);
char    *qlean_machine_incoming_uri            (QleanMachine           *self);
void     qlean_machine_incoming_listening      (QleanMachine           *self);
/* A directory for state that outlives runs (snapshots), removed with
 * the machine when its config says clear. */
char *qlean_machine_ensure_state_dir (QleanMachine  *self,
                                      const char    *subdir,
                                      GError       **error);
/* Worker thread: whether host folders are mounted in the guest now; QEMU
 * cannot save the state of such a machine. */
gboolean qlean_machine_shares_mounted (QleanMachine *self);
/* Worker thread: saves the machine's state (qlean-machine-save-state.c). */
void     qlean_machine_save_state_async  (QleanMachine        *self,
                                          const char          *path,
                                          gboolean             keep_stopped,
                                          GCancellable        *cancellable,
                                          GAsyncReadyCallback  callback,
                                          gpointer             user_data);
/* What a stream that starts before its listener waits for: opened once
 * the other QEMU listens, or with the error that ends its wait. */
typedef struct _QleanStreamGate QleanStreamGate;
QleanStreamGate *qlean_stream_gate_new   (void);
void             qlean_stream_gate_open  (QleanStreamGate     *gate,
                                          const GError        *error);
void             qlean_stream_gate_unref (QleanStreamGate     *gate);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (QleanStreamGate, qlean_stream_gate_unref)
/* The same, migrating to QEMU's @uri (another QEMU that listens for
 * it) instead of a file. With @ram_to (a cloneable machine's clone),
 * the machine stops at once and its RAM file is copied to @ram_to, and
 * its devices alone migrate once @gate opens. Finished with
 * qlean_machine_save_state_finish(). */
void     qlean_machine_stream_state_async (QleanMachine        *self,
                                           const char          *uri,
                                           const char          *ram_to,
                                           QleanStreamGate     *gate,
                                           gboolean             keep_stopped,
                                           GCancellable        *cancellable,
                                           GAsyncReadyCallback  callback,
                                           gpointer             user_data);
gboolean qlean_machine_save_state_finish (QleanMachine        *self,
                                          GAsyncResult        *result,
                                          GError             **error);
/* QEMU leaves a machine it saved while paused in its "postmigrate"
 * state, where it refuses the next save ("paused due to previous
 * migration"), and only `cont` leaves that state: sends `cont` and then
 * `stop`, so that the guest runs for that moment alone and is plainly
 * paused again. @callback (nullable) gets `stop`'s reply. */
void     qlean_machine_repause_after_save (QleanQmpClient      *qmp,
                                           GAsyncReadyCallback  callback,
                                           gpointer             user_data);

/* What a machine's network does at each of its starts. The network's
 * side of a machine (qlean-machine-network.c) sets them, so that the
 * machine's files call it by no name and it alone calls the machine:
 * the start only calls these. */
typedef struct
{
  /* As QEMU's argv is resolved: attaches @machine to @network and
   * returns what its network card needs (@mac_address, when set,
   * replaces the network's), kept until QEMU has its argv. */
  QleanNetworkLease *(*plug)    (QleanMachine  *machine,
                                 QleanNetwork  *network,
                                 const char    *mac_address,
                                 GError       **error);
  /* Once the argv is resolved: fails unless @network can take the
   * start, else registers the network's boot stages on @run. */
  gboolean           (*prepare) (QleanMachine     *machine,
                                 QleanMachineRun  *run,
                                 QleanNetwork     *network,
                                 GError          **error);
  /* A start that took a warmed spare, whose card is alone on a hub of
   * QEMU's own (qlean-machine-spares.c): attaches @machine to @network
   * as plug() does, and registers on @run the stages that configure the
   * guest's card with the machine's MAC and address and then join the
   * hub to the network's switch. */
  gboolean           (*join_from_spare) (QleanMachine     *machine,
                                         QleanMachineRun  *run,
                                         QleanNetwork     *network,
                                         const char       *mac_address,
                                         GError          **error);
  /* Runs, in a started spare that has a card on its hub alone, what the
   * network stage of the machine that takes it will run, so that it is
   * translated already; completes with a boolean GTask. */
  void               (*warm_spare_card) (QleanMachine        *spare,
                                         GCancellable        *cancellable,
                                         GAsyncReadyCallback  callback,
                                         gpointer             user_data);
} QleanMachineNetworkHooks;

/* Starts the warmed spares that @model's starts would take (those of a
 * machine on a network have its card: see qlean-machine-spares.c), and
 * completes once they are ready; as qlean_machine_prepare_spares_async()
 * does for machines of an image and config. */
void     qlean_machine_prepare_spares_like_async  (QleanMachine        *model,
                                                   GCancellable        *cancellable,
                                                   GAsyncReadyCallback  callback,
                                                   gpointer             user_data);
gboolean qlean_machine_prepare_spares_like_finish (GAsyncResult        *result,
                                                   GError             **error);

/* Any thread; set once, before the first machine on a network starts
 * (QleanNetwork's class does it). */
void qlean_machine_set_network_hooks (const QleanMachineNetworkHooks *hooks);

/* qlean_machine_exec_async() with an argument vector (argv[0] absolute),
 * so that paths never travel inside a shell string; finish with
 * qlean_machine_exec_finish(). */
void               qlean_machine_exec_argv_async          (QleanMachine        *self,
                                                           const char * const  *argv,
                                                           GCancellable        *cancellable,
                                                           GAsyncReadyCallback  callback,
                                                           gpointer             user_data);
/* The same for the commands Qlean runs in a machine that is still
 * starting (a restored machine's identity, its network), with @stdin_bytes
 * as their input. Both go through qlean-guest when it answers (vfork:
 * about 80 ms of the guest's CPU less under TCG than the agent's fork of
 * itself), else through the agent. */
void               qlean_machine_exec_starting_async      (QleanMachine        *self,
                                                           const char * const  *argv,
                                                           GBytes              *stdin_bytes,
                                                           GCancellable        *cancellable,
                                                           GAsyncReadyCallback  callback,
                                                           gpointer             user_data);
G_END_DECLS
