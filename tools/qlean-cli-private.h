/* qlean-cli-private.h: what the qlean command's files share
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <stdio.h>
#include <json-glib/json-glib.h>
#include <qlean/qlean.h>

G_BEGIN_DECLS

/* Exit codes, documented in qlean(1) and --help:
 *   0     success (for run/exec: the command's own status is passed through)
 *   1     an operation failed (the message says which and why)
 *   2     bad usage
 *   125   run/exec: the machine could not be started or reached
 *   128+N run/exec: the command was killed by signal N */
#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define EXIT_MACHINE 125

typedef struct
{
  const char *name;
  const char *summary;
  int (*run) (int argc, char **argv);
} Command;

/* Options that describe a machine: --image, --cores, --memory, --qemu, --accel,
 * --bridge. */
extern GOptionEntry machine_entries[];
GOptionEntry *cli_machine_entries_with (const GOptionEntry *extra);

gboolean      parse_options        (const char    *command,
                                    const char    *parameter_string,
                                    const char    *summary,
                                    GOptionEntry  *entries,
                                    int           *argc,
                                    char        ***argv,
                                    int           *status);
void          print_error          (const char    *command,
                                    GError        *error);
void          print_json           (JsonNode      *node);
/* --quiet (and not --verbose): print no progress or status chatter,
 * only errors and what the command is asked to produce. */
gboolean      cli_is_quiet         (void);
/* Whether process @pid lives (a zombie counts as dead). */
gboolean      cli_process_alive    (gint64         pid);
QleanMachine *machine_from_options (const char    *name,
                                    GError       **error);
/* --bridge of machine_entries, or NULL. */
const char   *cli_get_bridge_option (void);

/* A JSON string, or null for NULL. */
void          cli_json_add_string_or_null (JsonBuilder *builder,
                                           const char  *value);

/* tools/qlean-cli-machines.c: where machines that outlive one command
 * are kept, RUNBASE/machines/NAME, written by their owner process
 * (tools/qlean-cli-start.c) and read by every other command. */
#define MACHINE_STATE_FILE "state.json"
#define MACHINE_SOCKET_FILE "ctl.sock"
#define MACHINE_LOG_FILE "owner.log"

/* A machine's state.json, checked against the processes that run. */
typedef struct
{
  char    *name;
  char    *state;
  gint64   owner;
  gint64   qemu;
  char    *image;
  gint64   started;
  char    *run_dir;
  /* Port forwards (qlean start -p): host port << 16 | guest port */
  GArray  *forwards;
  char    *ip;
  char    *network;   /* qlean start --network */
  gboolean network_down;
  char    *reason;    /* why a crashed machine crashed, when known */
  char    *kept_by;   /* who kept it (qlean import --kept-by), or NULL */
} MachineState;

void          cli_machine_state_free   (MachineState  *state);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MachineState, cli_machine_state_free)

/* RUNBASE/machines/NAME, for a valid NAME. */
char         *cli_machine_dir          (const char    *name,
                                        GError       **error);
/* The machine in @dir, or NULL when there is none (or none yet). */
MachineState *cli_machine_state_read   (const char    *dir);
/* The forwards of state.json (host port << 16 | guest port). */
void          cli_json_add_forwards    (JsonBuilder   *builder,
                                        GArray        *forwards);
/* Removes the machine's directory and what its owner wrote there. */
gboolean      cli_machine_dir_remove   (const char    *dir);
/* Machine NAME through its owner's socket, or why it cannot be reached. */
QleanMachine *cli_machine_attach_by_name (const char  *name,
                                          GError     **error);
/* Whether @error tells that the connection to the machine's owner ended
 * under a request: the library fails whatever was under way as lost. */
gboolean      cli_is_lost_machine      (const GError  *error);
/* After a call to machine NAME failed with @error because it lost the
 * machine: when the machine crashed, was stopped or lost its owner
 * process, replaces @error with that (the crash's reason included) and
 * returns TRUE. Waits a moment for the owner to note a crash. */
gboolean      cli_explain_lost_machine (const char    *name,
                                        GError       **error);
int cmd_stop  (int argc, char **argv);
int cmd_ls    (int argc, char **argv);

/* tools/qlean-cli-start.c: qlean start, and the owner process. */
int cmd_start (int argc, char **argv);

/* tools/qlean-cli-exec.c: qlean exec and qlean shell. */
int cmd_exec  (int argc, char **argv);
int cmd_shell (int argc, char **argv);

/* tools/qlean-cli-cp.c: qlean cp. */
int cmd_cp    (int argc, char **argv);

/* tools/qlean-cli-lifecycle.c: qlean pause|resume|snapshot|restore|clone|
 * export|import, and the owner's side of them: a second socket in the
 * machine's directory for one-line JSON requests. */
#define ADMIN_SOCKET_FILE "ctl-admin.sock"

typedef struct _OwnerAdmin OwnerAdmin;
/* Called by the admin when the machine's state changed under it
 * ("running", "paused", or "crashed" when a restore left it dead). */
typedef void (*OwnerAdminUpdate) (gpointer    user_data,
                                  const char *state);

OwnerAdmin   *owner_admin_start    (QleanMachine      *machine,
                                    const char        *dir,
                                    const char        *share_path,
                                    OwnerAdminUpdate   update,
                                    gpointer           update_data,
                                    GError           **error);
void          owner_admin_stop     (OwnerAdmin        *admin);
QleanMachine *owner_import_machine (const char        *name,
                                    const char        *archive_path,
                                    QleanImportFlags   flags,
                                    GError           **error);
/* qlean-cli-image.c */
QleanImage   *cli_image_from_argument (const char   *argument,
                                       const char   *digest,
                                       GError      **error);
gboolean      cli_pull_image       (QleanImage        *image,
                                    gboolean           prepare,
                                    FILE              *out,
                                    gboolean           always_report,
                                    GError           **error);
gboolean      cli_pull_image_option (GError          **error);

int cmd_pause    (int argc, char **argv);
int cmd_resume   (int argc, char **argv);
int cmd_snapshot (int argc, char **argv);
int cmd_restore  (int argc, char **argv);
int cmd_clone    (int argc, char **argv);
int cmd_export   (int argc, char **argv);
int cmd_import   (int argc, char **argv);

/* tools/qlean-cli-image.c: qlean image ls|pull|verify. */
int cmd_image (int argc, char **argv);

/* tools/qlean-cli-network.c: named networks of `qlean start --network`,
 * kept in RUNBASE/networks/NAME by an owner process of their own. */
gboolean      cli_network_check_name   (const char    *name,
                                        GError       **error);
char         *cli_network_dir          (const char    *name,
                                        GError       **error);
/* In a machine owner, before its machine starts: a network for it on
 * the switch of network NAME (started when none runs), with its address. */
QleanNetwork *cli_network_join         (const char    *name,
                                        const char    *machine,
                                        char         **address,
                                        GError       **error);
/* Once the machine runs: every running member lists all in /etc/hosts. */
void          cli_network_update_hosts (const char    *name,
                                        QleanMachine  *self);
/* Whether machine NAME of owner OWNER_PID is still on the switch of
 * network NAME: its network owner runs, and has it as a member. */
gboolean      cli_network_has_member   (const char    *name,
                                        const char    *machine,
                                        gint64         owner_pid);
/* When the machine stopped; the last one out ends the network. */
void          cli_network_leave        (const char    *name,
                                        const char    *machine);
/* `qlean start --network-owner=NAME`: runs the network's switch. */
int           cli_network_owner_run    (const char    *name,
                                        int            ready_fd);
/* qlean gc: forgets networks whose owner died. */
gboolean      cli_network_collect      (const char    *base,
                                        gboolean       dry_run,
                                        guint         *removed,
                                        guint         *kept);

/* tools/qlean-cli-gc.c: qlean gc. */
int cmd_gc (int argc, char **argv);

G_END_DECLS
