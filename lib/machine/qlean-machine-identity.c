/* qlean-machine-identity.c: a copy's own identity after a restore
 *
 * A clone or a member of a golden-snapshot pool starts as a copy of
 * another machine, and so does a machine that takes a warmed spare:
 * it gets its own hostname, machine-id (when the guest has one), MAC
 * and random state here, in the identity boot stage.
 *
 * Two ways. Where qlean-guest answers (version 4), one FS IDENTITY
 * request does it all inside the running qlean-guest, with system calls
 * alone: right after a restore the guest's QEMU has a cold TCG
 * translation cache, so each new process (a shell, a second program to
 * reseed) costs tens of milliseconds, and the script below took about
 * 0.12 s of a clone's 0.5 s. Elsewhere (the stock agent alone, an older
 * qlean-guest, or a request qlean-guest refused) the same steps run as
 * a shell script through an exec.
 *
 * Apart from qlean-machine-boot-state.c because it is the guest's side
 * of a restore, not the loading of a state.
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <string.h>

#include <glib/gi18n-lib.h>

#include "qlean-error.h"
#include "qlean-machine-network-private.h"
#include "qlean-machine-object-private.h"
#include "qlean-task-private.h"
#include "qlean-worker-private.h"

/* The identity one fix gives, the same either way. */
typedef struct
{
  QleanMachineRun *run;
  char            *machine_id;
  char            *old_mac;   /* "" when the card needs no new MAC */
  char            *new_mac;   /* "" without a card */
  guint8           seed[64];
} Identity;

G_STATIC_ASSERT (sizeof ((Identity *) NULL)->seed == 16 * sizeof (guint32));

static void
identity_free (Identity *identity)
{
  qlean_machine_run_unref (identity->run);
  g_free (identity->machine_id);
  g_free (identity->old_mac);
  g_free (identity->new_mac);
  g_free (identity);
}

/* The way through the stock agent (or a qlean-guest older than FS
 * IDENTITY): the same steps as a script. Values travel as arguments and
 * stdin, never inside the script. */
static const char identity_script[] =
  "printf %s \"$1\" > /proc/sys/kernel/hostname\n"
  "if [ -f /etc/hostname ]; then printf '%s\\n' \"$1\" > /etc/hostname; fi\n"
  /* Debian's (and our init's) line for the own name: left as it was,
   * the copy would resolve its source's name to itself. Shell builtins
   * only: right after a restore every new process runs on a cold TCG
   * translation cache and costs tens of milliseconds. */
  "if [ -f /etc/hosts ]; then\n"
  "  h= own=\n"
  "  while IFS= read -r l || [ -n \"$l\" ]; do\n"
  "    case $l in\n"
  "      '127.0.1.1 '* | '127.0.1.1\t'*) own=1 ;;\n"
  "      *) h=\"$h$l\n\" ;;\n"
  "    esac\n"
  "  done < /etc/hosts\n"
  "  [ -z \"$own\" ] || printf '%s127.0.1.1 %s\\n' \"$h\" \"$1\" > /etc/hosts\n"
  "fi\n"
  "if [ -s /etc/machine-id ]; then printf '%s\\n' \"$2\" > /etc/machine-id; fi\n"
  /* The saved network card keeps the MAC of the machine it came from. */
  "if [ -n \"$3\" ]; then\n"
  "  for i in /sys/class/net/*; do\n"
  "    read -r a < \"$i/address\" && [ \"$a\" = \"$3\" ] || continue\n"
  "    n=${i##*/}\n"
  "    ip link set dev \"$n\" address \"$4\"\n"
  /* On a bridge, a new MAC needs a lease of its own: release the old
   * one (udhcpc drops the address) before asking anew, so that nobody
   * reads the source machine's address from the clone meanwhile. */
  "    [ -s /run/qlean/udhcpc.pid ] && read -r p < /run/qlean/udhcpc.pid || continue\n"
  "    kill -USR2 \"$p\"\n"
  "    j=0\n"
  "    while [ -n \"$(ip -4 -o addr show dev \"$n\")\" ] && [ $j -lt 200 ]; do sleep 0.01; j=$((j + 1)); done\n"
  "    kill -USR1 \"$p\"\n"
  "  done\n"
  "fi\n"
  /* The host's random bytes come on stdin as printf's octal escapes
   * (private, unlike arguments), so that builtins can pass them on. */
  "IFS= read -r seed && printf \"$seed\" > /dev/urandom\n"
  /* Mixed in, but unused until the kernel reseeds, up to a minute
   * later: copies of one state would read the same bytes meanwhile.
   * qlean-guest reseeds at once where it is installed (the minimal
   * image's and a prepared image's path); elsewhere a kernel with the
   * VM generation ID driver reseeded as it woke (qlean-qemu-argv.c). */
  "for q in /usr/lib/qlean/qlean-guest /opt/qlean/qlean-guest; do\n"
  "  if [ -x \"$q\" ]; then \"$q\" reseed || :; break; fi\n"
  "done\n";

static void
qlean_machine_identity_ran_cb (GObject      *source,
                               GAsyncResult *result,
                               gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  g_autoptr(QleanExecResult) ran = NULL;
  GError *error = NULL;

  ran = qlean_machine_exec_finish (QLEAN_MACHINE (source), result, &error);
  if (ran == NULL)
    {
      g_task_return_error (task, error);
      return;
    }

  if (!qlean_exec_result_success (ran))
    {
      g_autofree char *err = qlean_exec_result_get_stderr_text (ran);

      g_task_return_new_error (task, QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
                               _("Could not give the restored machine its own identity: %s"),
                               err ? g_strstrip (err) : "");
      return;
    }

  g_debug ("machine %s: identity set by the script", QLEAN_MACHINE (source)->name);
  qlean_machine_network_release_link (((Identity *) g_task_get_task_data (task))->run, task);
}

/* Main context. */
static void
identity_by_script (GTask *task)
{
  QleanMachine *self = g_task_get_source_object (task);
  Identity *identity = g_task_get_task_data (task);
  g_autoptr(GBytes) entropy = NULL;
  GString *escaped = g_string_new (NULL);
  const char *argv[] = { "/bin/sh", "-c", identity_script, "sh", self->name,
                         identity->machine_id, identity->old_mac, identity->new_mac, NULL };

  for (guint i = 0; i < sizeof identity->seed; i++)
    g_string_append_printf (escaped, "\\%03o", identity->seed[i]);
  g_string_append_c (escaped, '\n');
  entropy = g_string_free_to_bytes (escaped);

  qlean_machine_exec_starting_async (self, argv, entropy, NULL, qlean_machine_identity_ran_cb,
                                     g_object_ref (task));
}

/* The way through qlean-guest: FS IDENTITY, answered DONE or ERROR.
 * The answer comes in the worker thread; the fix goes on in the task's
 * context, where the script way and the link live. */

static gboolean
identity_set_in_context (gpointer user_data)
{
  GTask *task = user_data;
  QleanMachine *self = g_task_get_source_object (task);

  g_debug ("machine %s: identity set by qlean-guest", self->name);
  qlean_machine_network_release_link (((Identity *) g_task_get_task_data (task))->run, task);
  return G_SOURCE_REMOVE;
}

static gboolean
identity_by_script_in_context (gpointer user_data)
{
  identity_by_script (user_data);
  return G_SOURCE_REMOVE;
}

/* Refused, lost or unknown to this qlean-guest: the script does the
 * same steps again (each can run twice), and its failure is the one the
 * caller sees. */
static void
identity_set_cb (const GError *error,
                 gpointer      user_data)
{
  GTask *task = user_data;
  QleanMachine *self = g_task_get_source_object (task);

  if (error != NULL)
    g_debug ("machine %s: qlean-guest did not set its identity (%s); the script does",
             self->name, error->message);
  g_main_context_invoke_full (g_task_get_context (task), G_PRIORITY_DEFAULT,
                              error ? identity_by_script_in_context : identity_set_in_context,
                              g_object_ref (task), g_object_unref);
}

/* Worker thread: sends FS IDENTITY. */
static gboolean
identity_in_worker (gpointer user_data)
{
  GTask *task = user_data;
  QleanMachine *self = g_task_get_source_object (task);
  Identity *identity = g_task_get_task_data (task);
  g_autoptr(GBytes) request = NULL;
  QleanGuestTlv *tlv;

  tlv = qlean_guest_tlv_new ();
  qlean_guest_tlv_add_u32 (tlv, QLEAN_GUEST_TAG_OP, QLEAN_GUEST_FS_IDENTITY);
  qlean_guest_tlv_add_string (tlv, QLEAN_GUEST_TAG_PATH, "/");
  /* The script's processes warmed process creation for the first
   * command, and a warmed spare relies on that for the machine that
   * takes it (qlean-machine-spares.c): FLAG_WARM runs one shell. The
   * taker's guest has run it already. */
  if (!identity->run->guest_warm)
    qlean_guest_tlv_add_u32 (tlv, QLEAN_GUEST_TAG_FLAGS, QLEAN_GUEST_FLAG_WARM);
  qlean_guest_tlv_add_string (tlv, QLEAN_GUEST_TAG_HOSTNAME, self->name);
  qlean_guest_tlv_add_string (tlv, QLEAN_GUEST_TAG_MACHINE_ID, identity->machine_id);
  qlean_guest_tlv_add (tlv, QLEAN_GUEST_TAG_SEED, identity->seed, sizeof identity->seed);
  if (identity->old_mac[0] != '\0' && identity->new_mac[0] != '\0')
    {
      qlean_guest_tlv_add_string (tlv, QLEAN_GUEST_TAG_OLD_MAC, identity->old_mac);
      qlean_guest_tlv_add_string (tlv, QLEAN_GUEST_TAG_NEW_MAC, identity->new_mac);
    }
  request = qlean_guest_tlv_free_to_bytes (tlv);
  qlean_machine_run_send_guest_request (identity->run, 4, request, "FS IDENTITY",
                                        identity_set_cb, g_object_ref (task), g_object_unref);
  return G_SOURCE_REMOVE;
}

static void
qlean_machine_fix_identity_async (QleanMachine        *self,
                                  gboolean             new_identity,
                                  GAsyncReadyCallback  callback,
                                  gpointer             user_data)
{
  g_autoptr(GTask) task = qlean_task_new (self, NULL, callback, user_data,
                                          qlean_machine_fix_identity_async,
                                          "[qlean] fix a restored guest's identity");
  Identity *identity;
  guint32 random[16];

  if (!new_identity)
    {
      g_task_return_boolean (task, TRUE);
      return;
    }

  for (guint i = 0; i < G_N_ELEMENTS (random); i++)
    random[i] = g_random_int ();
  identity = g_new0 (Identity, 1);
  identity->run = qlean_machine_run_ref (self->run);
  memcpy (identity->seed, random, sizeof identity->seed);
  identity->machine_id = g_strdup_printf ("%08x%08x%08x%08x", random[0] ^ random[4],
                                          random[1] ^ random[5], random[2] ^ random[6],
                                          random[3] ^ random[7]);
  identity->old_mac = g_strdup (self->incoming_old_mac ? self->incoming_old_mac : "");
  identity->new_mac = qlean_machine_dup_mac_address (self);
  if (identity->new_mac == NULL)
    identity->new_mac = g_strdup ("");
  g_task_set_task_data (task, identity, (GDestroyNotify) identity_free);

  if (qlean_machine_run_uses_agent_only (self->run))
    identity_by_script (task);
  else
    qlean_worker_invoke (identity_in_worker, g_steal_pointer (&task), g_object_unref);
}

/* A restored guest wakes up with the clock, and the name, of the
 * moment it was saved. */
static gboolean
qlean_machine_identity_stage_start (QleanMachine    *self,
                                    QleanMachineRun *run,
                                    GTask           *spawn_task)
{
  qlean_machine_run_fix_clock (self->run);
  qlean_machine_fix_identity_async (self, self->incoming_new_identity,
                                    qlean_machine_boot_stage_cb, g_object_ref (spawn_task));
  return TRUE;
}

static const QleanBootStage identity_stage = {
  "identity", QLEAN_BOOT_STAGE_IDENTITY, qlean_machine_identity_stage_start
};

/* A machine that took a warmed spare (qlean-machine-spares.c) fixes
 * its identity as a restored one does, in the spare's run. */
void
qlean_machine_add_identity_stage (QleanMachineRun *run)
{
  qlean_machine_run_add_boot_stage (run, &identity_stage);
}

