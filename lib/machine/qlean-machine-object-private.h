/* qlean-machine-object-private.h: what the machine's own files share
 *
 * QleanMachine is one object in several files, one concern each (see
 * the comment at the top of each); this header holds its instance
 * struct and the functions those files call in each other. Nothing
 * outside lib/machine/qlean-machine*.c includes it: the rest of Qlean
 * uses qlean-machine-private.h.
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-machine-object-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include "qlean-guest-channel-private.h"
#include "qlean-guest-relay-private.h"
#include "qlean-host-private.h"
#include "qlean-machine-private.h"
#include "qlean-machine-run-private.h"
#include "qlean-network-private.h"
#include "qlean-qemu-argv-private.h"
#include "qlean-qga-client-private.h"
#include "qlean-qmp-client-private.h"
#include "qlean-run-logs-private.h"
#include "qlean-util-private.h"

G_BEGIN_DECLS

#define DEFAULT_BOOT_TIMEOUT_MS 60000
#define DEFAULT_SHUTDOWN_TIMEOUT_MS 20000
#define ESCALATION_STEP_MS 3000
#define SYNC_ATTEMPT_MS 3000
/* How long a start that greets qlean-guest alone waits for it, once
 * the guest runs on, before it greets the agent after all. */
#define GUEST_ONLY_HELLO_MS 5000
#define QMP_FAILURE_GRACE_MS 1000
#define TAIL_LINES 20
/* Where the kernel's panic line is looked for: it prints a stack trace
 * and more after it. */
#define PANIC_TAIL_LINES 80
/* The descriptors QEMU inherits: its listening sockets for QMP, the
 * agent's port and qlean-guest's data port (we listen, QEMU accepts). */
#define QLEAN_QMP_FD 3
#define QLEAN_QGA_FD 4
#define QLEAN_DATA_FD 5
/* The descriptor QEMU inherits the saved state it loads on. */
#define QLEAN_STATE_FD 6
/* The descriptor QEMU writes the serial console to (a pipe). */
#define QLEAN_CONSOLE_FD 7

struct _QleanMachine
{
  GObject             parent_instance;

  char               *name;
  QleanImage         *image;
  QleanMachineConfig *config;
  GMainContext       *owner_context;
  QleanLink          *link;
  gint                state;
  guint               boot_timeout_ms;
  guint               shutdown_timeout_ms;
  gint                notify_pending;
  /* Pool network (qlean-machine-network.c); fixed at construction. */
  QleanNetwork       *network;
  char               *mac_address;
  /* A warmed spare for machines on a network (qlean-machine-spares.c):
   * it has their card, on a hub of its own. Set before its start. */
  gboolean            spare_card;
  /* A QEMU parked for a machine's next clone (qlean-machine-parked.c):
   * its start ends once QMP is connected. Set before its start. */
  gboolean            parked;

  /* Replaced on the worker, read anywhere: under the lock (the run's
   * published fields also under its own, see its header). */
  GMutex              lock;
  /* The current run, or the last one until the next start; never NULL.
   * Its fields have the lock zones its header says. */
  QleanMachineRun    *run;
  char               *crash_reason;
  QleanRunLogs       *last_logs;   /* of the last run, for save_logs */
  gboolean            attached;

  /* Worker only. */
  gboolean            first_boot;       /* initialize(): boot with the cloud-init seed */
  /* The state file the next start loads (qlean-machine-snapshot.c),
   * and how: that start's run does the loading. */
  char               *incoming;
  gboolean            incoming_new_identity;
  char               *incoming_old_mac; /* the saved card's MAC, to replace */
  /* The state ran qlean-guest, which answers as soon as the guest runs
   * on: the start greets it alone, and the agent at its first call
   * (a clone of a running machine, qlean-machine-snapshot.c). */
  gboolean            incoming_greets_guest;
  char               *state_dir;        /* snapshots; lives as long as the machine */
  GPtrArray          *exit_waiters;
};

typedef enum
{
  SIGNAL_READY,
  SIGNAL_STOPPED,
  SIGNAL_CRASHED,
  N_SIGNALS
} QleanMachineSignal;

/* qlean-machine-spares.c: worker thread; @self's start takes @donor's
 * run (its QEMU, clients, run directory and every callback, which reach
 * @self from now on), renamed for @self, with the start's task, its
 * cancel watch and a boot timer; @donor is left STOPPED with a fresh
 * run. */
void   qlean_machine_adopt_run (QleanMachine *self,
                                QleanMachine *donor);

/* qlean-machine-parked.c: worker thread. */
/* A parked start ends here, QEMU waiting for its state. */
void          qlean_machine_park                (QleanMachine *self);
/* A cloneable machine that runs, on no network, parks a QEMU for its
 * next clone, unless its run has one already. */
void          qlean_machine_park_for_clone      (QleanMachine *self);
/* The same, a little later: once @self's new clone has run a while. */
void          qlean_machine_park_after_clone    (QleanMachine *self);
/* The QEMU parked for @self's next clone, ready or still starting:
 * taken (its RAM file is qlean_machine_get_parked_ram_file()'s), or
 * NULL. */
QleanMachine *qlean_machine_take_parked         (QleanMachine *self);
const char   *qlean_machine_get_parked_ram_file (QleanMachine *parked);
/* The next start of @self (a clone) takes @parked's run (taken). */
void          qlean_machine_set_parked_donor    (QleanMachine *self,
                                                 QleanMachine *parked);
/* The start of @self takes its donor's run, if it has one (TRUE), and
 * goes on with the load of its state; or, while the donor still
 * starts, once that start ends (its failure is @self's). */
gboolean      qlean_machine_take_parked_run     (QleanMachine *self);

/* qlean-machine-launch.c: greets the guest's channels, the agent and
 * qlean-guest, which the start waits for. */
void          qlean_machine_greet_guest         (QleanMachine *self);
/* qlean-machine-boot.c: a loaded guest runs on (its `cont` answered):
 * a start that greeted qlean-guest alone gives it GUEST_ONLY_HELLO_MS. */
void          qlean_machine_guest_resumed       (QleanMachine *self);

/* qlean-machine.c: state and signals */
void qlean_machine_emit_signal (QleanMachine       *self,
                                QleanMachineSignal  which);
void qlean_machine_set_state   (QleanMachine       *self,
                                QleanMachineState   state);

/* qlean-machine-run.c: what a run leaves and how it ends */
char *qlean_machine_run_file_tail (QleanMachine *self,
                                   const char   *file,
                                   guint         n_lines);
void  qlean_machine_release_run   (QleanMachine *self);
void  qlean_machine_signal_qemu   (QleanMachine *self,
                                   int           signum);
char *qlean_machine_panic_text    (QleanMachine *self);
/* Worker thread: whether @self is RUNNING and its QEMU still runs,
 * which the exit watch (later on this thread) may not have told it. */
gboolean qlean_machine_qemu_runs (QleanMachine *self);

/* qlean-machine-launch.c: QEMU's command line and its start */
typedef struct
{
  QleanQemuSpec      spec;
  char              *qemu_binary;
  char              *cmdline;
  QleanNetworkLease *net_lease;
  QleanQemuShare    *shares;
} ResolvedSpec;

void resolved_spec_clear (ResolvedSpec *resolved);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (ResolvedSpec, resolved_spec_clear)

/* QEMU's spec for a run of @self in @run_dir (which need not exist). */
gboolean   qlean_machine_resolve_spec (QleanMachine    *self,
                                       const char      *run_dir,
                                       QleanShareKind   share_kind,
                                       ResolvedSpec    *resolved,
                                       GError         **error);
/* A start of @self, on a network, that took a warmed spare: attaches
 * it and registers the stages that give the spare's card its MAC and
 * address and join it to the switch (QleanMachineNetworkHooks.join_from_spare). */
gboolean   qlean_machine_join_network_from_spare (QleanMachine     *self,
                                                  QleanMachineRun  *run,
                                                  GError          **error);
/* A started spare with a card (QleanMachine:spare_card) runs what the
 * network stage of a machine that takes it will run
 * (QleanMachineNetworkHooks.warm_spare_card). */
void       qlean_machine_warm_spare_card_async (QleanMachine        *spare,
                                                GCancellable        *cancellable,
                                                GAsyncReadyCallback  callback,
                                                gpointer             user_data);
GIOStream *qlean_machine_connect_unix (const char  *path,
                                       GError     **error);
/* A unix socket listening at @path (non-blocking, as GSocket makes it). */
GSocket   *qlean_machine_listen_unix  (const char  *path,
                                       GError     **error);

/* qlean-machine-boot-state.c: fast start and loading a saved state */
void     qlean_machine_unlock_boot_state   (QleanMachine       *self);
void     qlean_machine_pick_boot_state     (QleanMachine       *self,
                                            ResolvedSpec       *resolved);
void     qlean_machine_load_incoming       (QleanMachine       *self);
void     qlean_machine_prepare_incoming    (QleanMachine       *self,
                                            ResolvedSpec       *resolved);
/* Where the saved boot of a machine of @resolved's shape lives (its
 * key), NULL when it cannot have one. */
char    *qlean_machine_boot_state_path     (QleanMachine       *self,
                                            const ResolvedSpec *resolved,
                                            gboolean            mem_template);
void     qlean_machine_add_identity_stage  (QleanMachineRun    *run);

/* qlean-machine-spares.c: warmed spares */
/* Worker thread: the start of @self, its image prepared, takes a ready
 * spare of its shape, if there is one, and goes on in the spare's run:
 * TRUE when it did. */
gboolean qlean_machine_take_spare          (QleanMachine       *self);
/* Worker thread: starts the spares @self's config asks for that its
 * shape lacks (after a start of @self). */
void     qlean_machine_spares_top_up       (QleanMachine       *self);

/* qlean-machine-boot.c: from QEMU's start to a ready guest */
void     qlean_machine_spawn_fail          (QleanMachine       *self,
                                            GError             *error);
void     qlean_machine_spawn_maybe_done    (QleanMachine       *self);
void     qlean_machine_guest_panicked      (QleanMachine       *self);
void     qlean_machine_guest_hello_cb      (GObject            *source,
                                            GAsyncResult       *result,
                                            gpointer            user_data);
void     qlean_machine_qmp_ready_cb        (GObject            *source,
                                            GAsyncResult       *result,
                                            gpointer            user_data);
gboolean qlean_machine_boot_timeout_cb     (gpointer            user_data);
gboolean qlean_machine_spawn_cancelled_cb  (gpointer            user_data);
void     qlean_machine_try_agent           (QleanMachine       *self);
void     qlean_machine_watch_console_panic (QleanMachine       *self,
                                            QleanConsoleLog    *console);

/* qlean-machine-control.c: exec, stop, pause, and QEMU's end */
void     qlean_machine_qemu_exited_cb      (GObject            *source,
                                            GAsyncResult       *result,
                                            gpointer            user_data);

/* qlean-machine-shares.c: host folders in the guest */
void     qlean_machine_prepare_shares      (QleanMachine       *self);

G_END_DECLS
