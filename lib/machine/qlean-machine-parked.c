/* qlean-machine-parked.c: a QEMU started ahead for a cloneable machine's next clone
 *
 * Once a cloneable machine's RAM file is copied instead of streamed
 * (qlean-machine-ram-file.c), the largest part of a clone that is not
 * the guest's own is its QEMU's start: 0.06 s under TCG on this kind
 * of host before its QMP greets, most of it QEMU's own initialisation
 * (`qemu-system-x86_64 -version` alone takes as long). A cloneable
 * machine keeps one QEMU parked for its next clone: from its start, or,
 * for a clone, from its own first clone on. The parked QEMU is started
 * with `-incoming defer` on a RAM file of its own, its QMP connected,
 * nothing loaded, and its guest channels not yet greeted (nothing in it
 * runs, so nothing could answer). The next clone takes its run, the way
 * a start takes a warmed spare (qlean_machine_adopt_run()), has it
 * listen for the machine's devices, and goes on as any clone; the
 * machine's RAM file is copied into the parked one meanwhile. A new one
 * is parked a little after that clone runs (PARK_AFTER_CLONE_MS); a
 * clone that comes while it is still starting takes it all the same,
 * and waits for the rest of its start.
 *
 * Apart from the spares (qlean-machine-spares.c) because a spare is a
 * whole machine, booted, warmed and named later, shared by all starts
 * of a shape; a parked QEMU is one machine's, empty, and only a clone
 * of that machine can fill it. Machines on a network park none: a
 * parked QEMU has no card, and joining one later is the spares' long
 * way; nor do machines with a disk, whose overlay would be the hidden
 * machine's. A parked QEMU costs an idle QEMU process (Pss about 22
 * MiB), and goes with its machine's run.
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <signal.h>
#include <glib/gstdio.h>
#include <glib/gi18n-lib.h>

#include "qlean-machine-object-private.h"
#include "qlean-machine-ram-file-private.h"
#include "qlean-worker-private.h"
#include "qlean-error.h"

#define PARKED_KEY     "qlean-parked-qemu"
#define DONOR_KEY      "qlean-parked-donor"
#define PARK_TIMER_KEY "qlean-park-timer"

/* How long a clone runs before its machine parks the next QEMU. That
 * QEMU's start (0.07 s of CPU) took a core from the clone's load and
 * from its guest's first steps, which under TCG translate some 20,000
 * blocks of code anew: parked as the clone's copy was made, it slowed
 * the clone by 0.03-0.05 s of its 0.25 s on a 2-core host. Later, it
 * leaves the clone's first commands alone too. A clone that comes
 * sooner starts a QEMU of its own, as it would without parking. */
#define PARK_AFTER_CLONE_MS 250

/* The QEMU a machine's run keeps parked for its next clone: held by
 * the run until a clone takes it, then by the hidden machine; and by
 * its start until that ends. */
typedef struct
{
  QleanMachine *machine;      /* hidden, RUNNING once parked; NULL once dropped or taken */
  GCancellable *cancellable;  /* of its start */
  char         *ram_file;     /* its RAM file, which its run removes */
  gboolean      ended;        /* its start ended: parked, or failed with start_error */
  GError       *start_error;
  QleanMachine *taker;        /* a clone that took it as it started, waiting */
} Parked;

static void
parked_clear (Parked *parked)
{
  g_clear_object (&parked->machine);
  g_clear_object (&parked->cancellable);
  g_clear_pointer (&parked->ram_file, g_free);
  g_clear_error (&parked->start_error);
  g_clear_object (&parked->taker);
}

static void
parked_unref (Parked *parked)
{
  g_rc_box_release_full (parked, (GDestroyNotify) parked_clear);
}

/* Not taken: it goes with the machine's run (worker thread). A start
 * still on is cancelled; a parked QEMU gets SIGKILL and its RAM file
 * goes at once, as the machine's run ends, and the kill then reaps it
 * and removes its run directory. */
static void
parked_drop (Parked *parked)
{
  g_autoptr(QleanMachine) machine = g_steal_pointer (&parked->machine);

  if (machine != NULL)
    {
      QleanMachineRun *run = machine->run;

      g_cancellable_cancel (parked->cancellable);
      qlean_machine_signal_qemu (machine, SIGKILL);
      if (run->ram_file != NULL)
        g_unlink (run->ram_file);
      qlean_machine_kill_async (machine, NULL, NULL, NULL);
    }
  parked_unref (parked);
}

/* Worker thread: a parked machine's start ends here, with its QMP
 * connected and QEMU waiting for `migrate-incoming`. It is RUNNING for
 * the kill that ends it if no clone takes it; it has no boot timer. */
void
qlean_machine_park (QleanMachine *self)
{
  g_autoptr(GTask) task = g_steal_pointer (&self->run->spawn_task);

  self->run->qmp_ready = TRUE;
  qlean_clear_source (&self->run->boot_timer);
  qlean_clear_source (&self->run->spawn_cancel);
  qlean_machine_set_state (self, QLEAN_MACHINE_STATE_RUNNING);
  g_debug ("machine %s: parked for a clone", self->name);
  g_task_return_boolean (task, TRUE);
}

static void donor_started (QleanMachine *self,
                           const GError *error);

static void
parked_cb (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  Parked *parked = user_data;
  g_autoptr(QleanMachine) taker = g_steal_pointer (&parked->taker);

  /* The machine's run may have ended meanwhile: the start was
   * cancelled, or it parked just before, and the kill ends it. */
  parked->ended = TRUE;
  if (!qlean_machine_spawn_finish (QLEAN_MACHINE (source), result, &parked->start_error))
    g_debug ("machine %s: no QEMU parked: %s", qlean_machine_get_name (QLEAN_MACHINE (source)),
             parked->start_error->message);
  if (taker != NULL)
    donor_started (taker, parked->start_error);
  parked_unref (parked);
}

void
qlean_machine_park_for_clone (QleanMachine *self)
{
  const char *ram_from = qlean_machine_get_ram_file (self);
  g_autofree char *name = NULL;
  g_autofree char *socket_path = NULL;
  g_autofree char *reason = NULL;
  QleanMachine *machine;
  Parked *parked;
  char *ram;
  GStatBuf st;

  /* A machine with a disk: the parked QEMU's overlay would be the
   * hidden machine's, which goes with it. */
  if (ram_from == NULL || self->network != NULL || self->parked ||
      qlean_image_get_disk (self->image) != NULL ||
      qlean_machine_run_get_data (self->run, PARKED_KEY) != NULL ||
      qlean_machine_get_state (self) != QLEAN_MACHINE_STATE_RUNNING)
    return;
  if (g_stat (ram_from, &st) != 0 || (ram = qlean_ram_file_new (st.st_size, &reason)) == NULL)
    {
      g_debug ("machine %s: no QEMU parked for its next clone: %s", self->name,
               reason != NULL ? reason : g_strerror (errno));
      return;
    }

  name = g_strconcat (self->name, "-next-clone", NULL);
  machine = g_object_new (QLEAN_TYPE_MACHINE,
                          "name", name,
                          "image", self->image,
                          "config", self->config,
                          NULL);
  machine->parked = TRUE;
  /* A stream that it never listens for: the clone that takes it names
   * its own. Its RAM file goes with its run, or with it unstarted. */
  socket_path = g_build_filename (g_get_tmp_dir (), "qlean-parked.sock", NULL);
  qlean_machine_set_incoming (machine, socket_path, TRUE, NULL);
  qlean_machine_set_incoming_stream (machine, socket_path, NULL, NULL);
  qlean_machine_set_incoming_ram (machine, ram);

  parked = g_rc_box_new0 (Parked);
  parked->machine = machine;
  parked->cancellable = g_cancellable_new ();
  parked->ram_file = g_strdup (ram);
  qlean_machine_run_set_data (self->run, PARKED_KEY, parked, (GDestroyNotify) parked_drop);
  qlean_machine_spawn_async (machine, parked->cancellable, parked_cb, g_rc_box_acquire (parked));
}

static gboolean
park_later_cb (gpointer user_data)
{
  g_autoptr(QleanMachine) self = qlean_link_get (user_data);

  if (self != NULL)
    qlean_machine_park_for_clone (self);
  return G_SOURCE_REMOVE;
}

/* One timer per run, which the next clone's start stops: clones that
 * follow each other closely park nothing between them. */
void
qlean_machine_park_after_clone (QleanMachine *self)
{
  GSource *source = g_timeout_source_new (PARK_AFTER_CLONE_MS);

  g_source_set_callback (source, park_later_cb, qlean_link_ref (self->link), qlean_link_unref);
  g_source_attach (source, qlean_worker_get_context ());
  qlean_machine_run_set_data (self->run, PARK_TIMER_KEY, source, qlean_destroy_source);
}

/* A QEMU still starting is taken too: its clone waits for the rest of
 * its start (qlean_machine_take_parked_run()), which is sooner than a
 * start of its own, and is what clones that follow each other closely
 * get. */
QleanMachine *
qlean_machine_take_parked (QleanMachine *self)
{
  Parked *parked = qlean_machine_run_get_data (self->run, PARKED_KEY);
  QleanMachine *machine;

  qlean_machine_run_set_data (self->run, PARK_TIMER_KEY, NULL, NULL);
  if (parked == NULL)
    return NULL;
  /* One that could not start goes, so that the next clone parks anew. */
  if (parked->start_error != NULL)
    {
      qlean_machine_run_set_data (self->run, PARKED_KEY, NULL, NULL);
      return NULL;
    }
  machine = g_steal_pointer (&parked->machine);
  g_object_set_data_full (G_OBJECT (machine), PARKED_KEY, g_rc_box_acquire (parked),
                          (GDestroyNotify) parked_unref);
  qlean_machine_run_set_data (self->run, PARKED_KEY, NULL, NULL);
  /* One whose QEMU died as it waited: its exit may not have reached it. */
  if (parked->ended && !qlean_machine_qemu_runs (machine))
    {
      qlean_machine_kill_async (machine, NULL, NULL, NULL);
      g_object_unref (machine);
      return NULL;
    }
  return machine;
}

/* A donor whose taker never started (its start failed before, or it
 * was dropped): its QEMU goes, its start too if that is still on. */
static void
donor_free (QleanMachine *donor)
{
  Parked *parked = g_object_get_data (G_OBJECT (donor), PARKED_KEY);

  g_cancellable_cancel (parked->cancellable);
  qlean_machine_kill_async (donor, NULL, NULL, NULL);
  g_object_unref (donor);
}

void
qlean_machine_set_parked_donor (QleanMachine *self,
                                QleanMachine *parked)
{
  g_object_set_data_full (G_OBJECT (self), DONOR_KEY, parked, (GDestroyNotify) donor_free);
}

const char *
qlean_machine_get_parked_ram_file (QleanMachine *parked)
{
  return ((Parked *) g_object_get_data (G_OBJECT (parked), PARKED_KEY))->ram_file;
}

/* The clone runs on in the donor's run. */
static void
take_donor_run (QleanMachine *self,
                QleanMachine *donor)
{
  /* Its QEMU died since the clone took it (the machine's memory may
   * have gone into its file already): the clone fails, its source runs
   * on. */
  if (!qlean_machine_qemu_runs (donor))
    {
      qlean_machine_kill_async (donor, NULL, NULL, NULL);
      qlean_machine_spawn_fail (self, g_error_new (QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_QEMU_EXITED,
                                                   _("The QEMU started ahead for clone “%s” exited "
                                                     "before the clone could use it; clone again"),
                                                   self->name));
      return;
    }

  qlean_machine_adopt_run (self, donor);
  /* The stream this clone names, instead of the parked one's. */
  qlean_machine_prepare_incoming_stream (self);
  g_debug ("machine %s: takes the QEMU parked for it", self->name);

  /* What the parked start left for its taker: greeting the guest's
   * channels, and the load. */
  qlean_machine_greet_guest (self);
  qlean_machine_load_incoming (self);
}

/* The start of the QEMU that @self waits for ended (worker thread). */
static void
donor_started (QleanMachine *self,
               const GError *error)
{
  g_autoptr(QleanMachine) donor = g_object_steal_data (G_OBJECT (self), DONOR_KEY);

  if (donor == NULL)
    return;
  /* The clone's start ended meanwhile (cancelled, or its source's save
   * failed): the donor goes. */
  if (self->run->spawn_task == NULL || self->run->spawn_error != NULL)
    {
      qlean_machine_kill_async (donor, NULL, NULL, NULL);
      return;
    }
  if (error != NULL)
    {
      qlean_machine_kill_async (donor, NULL, NULL, NULL);
      qlean_machine_spawn_fail (self, g_error_new (QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
                                                   _("The QEMU started ahead for clone “%s” did not "
                                                     "start (%s); clone again"),
                                                   self->name, error->message));
      return;
    }
  take_donor_run (self, donor);
}

gboolean
qlean_machine_take_parked_run (QleanMachine *self)
{
  QleanMachine *donor = g_object_get_data (G_OBJECT (self), DONOR_KEY);
  Parked *parked;

  if (donor == NULL)
    return FALSE;

  /* Taken as it started: the clone waits for the rest of that start,
   * its donor kept where it was, so that it goes should the clone. */
  parked = g_object_get_data (G_OBJECT (donor), PARKED_KEY);
  if (!parked->ended)
    {
      g_debug ("machine %s: waits for the QEMU being parked for it", self->name);
      g_set_object (&parked->taker, self);
    }
  else
    donor_started (self, parked->start_error);
  return TRUE;
}
