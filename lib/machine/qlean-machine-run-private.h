/* qlean-machine-run-private.h: one run of a machine's QEMU
 *
 * A QleanMachine is a definition (name, image, config, network), a state
 * and signals; a QleanMachineRun is what exists only while its QEMU
 * runs, as GSubprocess is one run of what a GSubprocessLauncher
 * defines. The machine makes a new run at each start and keeps the last
 * one until the next (its fields then say how it ended); releasing it
 * (qlean_machine_release_run()) drops its process, clients and timers.
 *
 * Other parts of Qlean that keep something for as long as a run lasts
 * (port forwards) keep it in the run's data, which goes with the run.
 *
 * The parts that work in the guest (processes, files, forwards, the
 * network's set-up) take a run, not the machine: they ask the machine
 * once for its run (qlean_machine_ref_run()), then ask the run for its
 * channels, its transport and its timeouts. The run never calls back
 * into the machine, so no call goes round in a loop between them.
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-machine-run-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include <gio/gio.h>

#include "qlean-guest-channel-private.h"
#include "qlean-guest-relay-private.h"
#include "qlean-machine-config.h"
#include "qlean-qga-client.h"
#include "qlean-qmp-client.h"

G_BEGIN_DECLS

typedef struct _QleanConsoleLog QleanConsoleLog;
typedef struct _QleanMachine QleanMachine;
typedef struct _QleanMachineRun QleanMachineRun;

/* A start completes once QMP and the agent answer, the transport is
 * decided and then each stage of its run is done, one after the other
 * (as a shutdown goes through its stages). A stage is registered on the
 * run by the part of Qlean it belongs to, as the start prepares: the
 * machine knows none of them by name. @order places it; these are the
 * ones there are. */
typedef enum
{
  QLEAN_BOOT_STAGE_IDENTITY  = 10,  /* a restored guest's name and clock */
  QLEAN_BOOT_STAGE_NETWORK   = 20,  /* the guest's address and hosts */
  QLEAN_BOOT_STAGE_UPLINK    = 25,  /* a taken spare's card joins the switch */
  QLEAN_BOOT_STAGE_SAVE_BOOT = 30,  /* fast start: save this boot */
  QLEAN_BOOT_STAGE_SHARES    = 40,  /* mount the host's folders (after saving: 9p blocks it) */
} QleanBootStageOrder;

typedef struct
{
  const char          *name;    /* for the debug log */
  QleanBootStageOrder  order;
  /* Starts the stage for the start @spawn_task of @run: TRUE when it
   * runs and ends with qlean_machine_boot_stage_done(), FALSE when it
   * found nothing to do. */
  gboolean           (*start) (QleanMachine    *machine,
                               QleanMachineRun *run,
                               GTask           *spawn_task);
} QleanBootStage;

/* Worker thread: ends the running stage of the start @spawn_task (with
 * @error, taken, it fails the start) and starts the next
 * (qlean-machine-boot.c). */
void             qlean_machine_boot_stage_done (QleanMachine *machine,
                                                GTask        *spawn_task,
                                                GError       *error);
/* A GAsyncReadyCallback for a stage whose task returns a boolean;
 * @user_data is the start's task (a reference it takes). */
void             qlean_machine_boot_stage_cb   (GObject      *source,
                                                GAsyncResult *result,
                                                gpointer      user_data);

struct _QleanMachineRun
{
  /* Fixed when the run is made (the name changes once, on the worker
   * under both locks, when a machine takes a spare's run). */
  char               *name;             /* the machine's, for messages */
  QleanGuestTransport wanted_transport; /* its config's guest-transport */

  /* Written on the worker holding the machine's lock and then this
   * lock; read anywhere under either (the machine's own files take the
   * machine's, the run's callers take this one). */
  GMutex              lock;
  /* The transport of this run (QleanGuestTransport, atomic): AUTO
   * until it is decided, once, as the machine becomes ready. */
  gint                guest_transport;
  char               *run_dir;
  GPid                pid;
  QleanQmpClient     *qmp;
  QleanQgaClient     *qga;
  QleanGuestChannel  *guest;
  QleanGuestRelay    *relay;
  QleanConsoleLog    *console;

  /* Worker only. */
  struct _QleanTranscript *transcript;  /* NULL when it could not be made */
  GSubprocess        *qemu;
  gboolean            qemu_exited;
  gboolean            stop_requested;
  gboolean            panicked;
  /* Loading a saved state (the machine's incoming) */
  gboolean            restoring;        /* this start loads a state */
  GSource            *incoming_poll;
  /* The network card's link, down from the load until the identity fix
   * gives the card its own MAC (qlean_machine_network_hold_link()). */
  gboolean            link_held_down;
  /* A taken spare's card (QLEAN_NETWORK_SPARE_MAC), on QEMU's hub until
   * the guest gives it the machine's MAC and the switch joins the hub;
   * FALSE for a card on the switch from the start. */
  gboolean            card_on_spare_hub;
  /* A taken spare: its guest has run processes already (its own
   * identity fix and card warm-up), so the taker's identity fix need
   * not warm process creation again. */
  gboolean            guest_warm;
  /* Fast start (qlean-machine-boot-state.c) */
  char               *boot_state_save;  /* save the boot here once ready */
  int                 boot_state_lock;  /* flock held while saving or loading */
  char               *boot_state_used;  /* the state this start loads */
  /* Memory templates: the RAM file a saving machine runs on (shared;
   * copied to the template when saved, removed with the run), and
   * whether this start maps a template privately. */
  char               *mem_template_work;
  gboolean            mem_template_load;
  char               *mem_template_ram;   /* the template this start maps */
  /* A cloneable machine's memory, a file of its own on tmpfs, removed
   * with the run (qlean-machine-ram-file.c). */
  char               *ram_file;
  /* The start (qlean-machine-boot.c) */
  GTask              *spawn_task;
  GError             *spawn_error;
  GSource            *boot_timer;
  GSource            *spawn_cancel;
  GSource            *qmp_grace_timer;
  gboolean            qmp_ready;
  gboolean            agent_ready;
  /* The agent is not greeted: qlean-guest answers first, and the agent's
   * client syncs before its first call (qlean_machine_greet_guest()). */
  gboolean            agent_lazy;
  GSource            *agent_lazy_timer;  /* from the guest's `cont` */
  gint64              hello_deadline;   /* auto transport: how long HELLO may take */
  GSource            *hello_timer;
  GPtrArray          *boot_stages;      /* of const QleanBootStage, in order */
  guint               boot_stage;       /* the one running or next */
  gboolean            boot_stage_running;
  /* Shared folders: mounted in the guest by the start's stage. */
  gboolean            shares_mounted;
  /* Shutting down (qlean-machine-control.c) */
  GSource            *shutdown_timer;
  guint               shutdown_stage;

  /* What other parts keep for this run (worker only). */
  GData              *data;
};

QleanMachineRun *qlean_machine_run_new   (const char           *name,
                                          QleanGuestTransport   wanted_transport);
QleanMachineRun *qlean_machine_run_ref   (QleanMachineRun *run);
void             qlean_machine_run_unref (QleanMachineRun *run);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (QleanMachineRun, qlean_machine_run_unref)

/* What the caller of qlean_machine_ref_run() is about to do: its
 * message is one whole sentence for each. */
typedef enum
{
  QLEAN_MACHINE_OP_RUN_COMMAND,
  QLEAN_MACHINE_OP_START_PROCESS,
  QLEAN_MACHINE_OP_SHARE,
  QLEAN_MACHINE_OP_READ_IP,
  QLEAN_MACHINE_OP_FORWARD_PORT,
  QLEAN_MACHINE_OP_TRANSFER_FILES,
} QleanMachineOp;

/* Any thread (qlean-machine.c): the machine's current run, a new
 * reference. Fails with QLEAN_MACHINE_ERROR_INVALID_STATE, saying that
 * @op cannot be done, unless the machine is RUNNING, or with @starting
 * also while it starts (the commands Qlean itself runs during a start). */
QleanMachineRun *qlean_machine_ref_run (QleanMachine    *machine,
                                        QleanMachineOp   op,
                                        gboolean         starting,
                                        GError         **error);

/* Any thread: what the parts working in the guest ask of a run. */
const char        *qlean_machine_run_get_name            (QleanMachineRun *run);
QleanGuestTransport qlean_machine_run_get_guest_transport (QleanMachineRun *run);
/* Whether this run never uses qlean-guest (its config asks for the
 * agent transport, or that is what it decided). */
gboolean           qlean_machine_run_uses_agent_only     (QleanMachineRun *run);
/* How long a data port call waits for each frame of qlean-guest (the
 * agent client's timeout; 0 = forever). */
guint              qlean_machine_run_get_guest_timeout   (QleanMachineRun *run);
/* New references, NULL once the run is over. The channel as it is,
 * answering or not. */
QleanQgaClient    *qlean_machine_run_dup_qga             (QleanMachineRun *run);
QleanGuestChannel *qlean_machine_run_dup_guest_channel   (QleanMachineRun *run);

/* The run's channel to qlean-guest, once it answers; fails when the
 * run is over or uses the agent alone. */
void               qlean_machine_run_get_guest_channel_async  (QleanMachineRun      *run,
                                                               GCancellable         *cancellable,
                                                               GAsyncReadyCallback   callback,
                                                               gpointer              user_data);
QleanGuestChannel *qlean_machine_run_get_guest_channel_finish (QleanMachineRun      *run,
                                                               GAsyncResult         *result,
                                                               GError              **error);

/* Sets the guest's clock from the host's, through qlean-guest when it
 * answers, else through the agent. Fire and forget; any thread. */
void               qlean_machine_run_fix_clock           (QleanMachineRun *run);

/* How a request to qlean-guest ended: @error NULL for DONE; the guest's
 * ERROR, the loss of the stream, or G_IO_ERROR_NOT_SUPPORTED when
 * qlean-guest does not answer or is older than the request. */
typedef void (*QleanGuestRequestFunc) (const GError *error,
                                       gpointer      user_data);

/* Worker thread only: sends @request (an FS frame's payload; @what
 * names it in errors) to the run's qlean-guest, when it answers with
 * protocol @min_version or later, and calls @func once in the worker
 * thread, then @destroy on @user_data. */
void               qlean_machine_run_send_guest_request  (QleanMachineRun       *run,
                                                          guint                  min_version,
                                                          GBytes                *request,
                                                          const char            *what,
                                                          QleanGuestRequestFunc  func,
                                                          gpointer               user_data,
                                                          GDestroyNotify         destroy);

/* Worker thread: adds @stage to the stages of the run's start. */
void             qlean_machine_run_add_boot_stage (QleanMachineRun      *run,
                                                   const QleanBootStage *stage);

/* Worker thread: data kept for as long as the run lasts; @destroy runs
 * when the run is released (on the worker) or, for a machine dropped
 * while it runs, when the run is freed (on any thread). */
gpointer         qlean_machine_run_get_data (QleanMachineRun *run,
                                             const char      *key);
void             qlean_machine_run_set_data (QleanMachineRun *run,
                                             const char      *key,
                                             gpointer         data,
                                             GDestroyNotify   destroy);

G_END_DECLS
