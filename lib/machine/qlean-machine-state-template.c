/* qlean-machine-state-template.c: memory templates of saved states (snapshots)
 *
 * A snapshot is a whole migration stream (about 80 MB for the minimal
 * image, the guest's RAM inside), and each restore or clone from it read
 * all of it into memory of its own. A state loaded by several machines
 * (clones of a snapshot) gets, the first time, a memory template like
 * the fast start's saved boot (qlean-machine-boot-state.c): that first
 * machine runs on a RAM file of its own (share=on), loads the stream
 * into it and, before its guest runs, saves its devices alone
 * (x-ignore-shared) to `<state>.tmpl` and copies the file to
 * `<state>.ram`. The next machines map `<state>.ram` privately
 * (share=off) and load only `<state>.tmpl` (a few hundred KB): they
 * share the template's pages until their guests write them. Making it
 * costs the first machine about a second more (loading into a file),
 * which is why restores, one machine each, map a template but make none.
 *
 * Apart from the boot cache because these templates live beside the
 * states they come from and go with them, and are made by a machine that
 * loads a state rather than one that boots. Anything that stops a
 * template (a config without memory templates, another architecture,
 * no room, a QMP error) is logged and the whole stream loaded as before.
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <glib/gstdio.h>
#include <glib/gi18n-lib.h>

#include "qlean-machine-state-template-private.h"
#include "qlean-machine-private.h"
#include "qlean-errno-private.h"

#define MAKE_KEY  "qlean-incoming-make-template"
#define MAKER_KEY "qlean-state-template-maker"

/* A template being made, kept on the run that makes it. */
typedef struct
{
  char                *state;     /* the whole stream it is made from */
  char                *work;      /* the machine's RAM file (share=on) */
  char                *devices;   /* the device state being saved */
  int                  lock;      /* `<state>.tmpl.lock`, held throughout */
  struct stat          identity;  /* of @state when the start began */
  GAsyncReadyCallback  cont_cb;
  gint64               since;     /* when the stream was loaded, for the log */
} Maker;

static void
maker_free (Maker *maker)
{
  if (maker->work != NULL)
    g_unlink (maker->work);
  if (maker->devices != NULL)
    g_unlink (maker->devices);
  if (maker->lock >= 0)
    close (maker->lock);
  g_free (maker->devices);
  g_free (maker->work);
  g_free (maker->state);
  g_free (maker);
}

void
qlean_machine_set_incoming_template (QleanMachine *self,
                                     gboolean      make)
{
  g_object_set_data (G_OBJECT (self), MAKE_KEY, GINT_TO_POINTER (!!make));
}

void
qlean_machine_state_template_remove (const char *state)
{
  g_autofree char *devices = g_strconcat (state, ".tmpl", NULL);
  g_autofree char *ram = g_strconcat (state, ".ram", NULL);

  /* The device state first: without it the pair is not used. The lock
   * file stays (a few bytes, gone with the state's folder): removed, a
   * second maker could lock a new one while the first still writes. */
  g_unlink (devices);
  g_unlink (ram);
}

/* Whether @a and @b are the same file, unchanged. */
static gboolean
same_file (const struct stat *a,
           const struct stat *b)
{
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
         a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* This start maps the template of @state and loads its device state. */
static void
map_template (QleanMachine *self,
              ResolvedSpec *resolved,
              const char   *state,
              char         *devices)
{
  self->run->mem_template_load = TRUE;
  self->run->mem_template_ram = g_strconcat (state, ".ram", NULL);
  resolved->spec.mem_path = self->run->mem_template_ram;
  resolved->spec.mem_share = FALSE;
  /* Opened as the launch makes QEMU's descriptors. */
  g_free (self->incoming);
  self->incoming = devices;
}

/* This start makes the template of @state: its RAM on a file of its
 * own, shared, until the template is stored. NULL with @reason when it
 * cannot; NULL without one when another start makes it now. */
static Maker *
maker_new (QleanMachine  *self,
           const char    *state,
           guint          memory_mib,
           char         **reason)
{
  g_autofree char *lock = g_strconcat (state, ".tmpl.lock", NULL);
  Maker *maker = g_new0 (Maker, 1);

  maker->lock = g_open (lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  maker->state = g_strdup (state);
  if (maker->lock < 0 || flock (maker->lock, LOCK_EX | LOCK_NB) != 0 ||
      g_stat (state, &maker->identity) != 0)
    {
      maker_free (maker);
      return NULL;
    }
  maker->work = qlean_machine_template_make_work (state, memory_mib, reason);
  if (maker->work == NULL)
    {
      maker_free (maker);
      return NULL;
    }
  maker->devices = g_strdup_printf ("%s.tmpl.new-%08x", state, g_random_int ());
  return maker;
}

void
qlean_machine_state_template_prepare (QleanMachine *self,
                                      ResolvedSpec *resolved)
{
  gboolean make = GPOINTER_TO_INT (g_object_steal_data (G_OBJECT (self), MAKE_KEY));
  const char *state = self->incoming;
  g_autofree char *devices = g_strconcat (state, ".tmpl", NULL);
  g_autofree char *reason = NULL;
  Maker *maker;

  /* The RAM's id is q35's only on x86-64 (see qlean_qemu_argv_build()),
   * and a start whose memory is set up otherwise keeps it. */
  if (!qlean_machine_config_get_memory_template (self->config) ||
      resolved->spec.arch == NULL || resolved->spec.arch->arch != QLEAN_ARCH_X86_64 ||
      resolved->spec.mem_path != NULL)
    return;

  if (g_file_test (devices, G_FILE_TEST_IS_REGULAR))
    {
      if (qlean_machine_template_usable (state, resolved->spec.memory_mib, &reason))
        {
          map_template (self, resolved, state, g_steal_pointer (&devices));
          return;
        }
      g_message ("machine %s: the memory template of %s is unusable, loading the whole "
                 "state: %s", self->name, state, reason);
      g_clear_pointer (&reason, g_free);
      qlean_machine_state_template_remove (state);
    }

  if (!make)
    return;
  maker = maker_new (self, state, resolved->spec.memory_mib, &reason);
  if (maker == NULL)
    {
      if (reason != NULL)
        g_message ("machine %s: no memory template for %s, loading the whole state: %s",
                   self->name, state, reason);
      return;
    }
  resolved->spec.mem_path = maker->work;
  resolved->spec.mem_share = TRUE;
  qlean_machine_run_set_data (self->run, MAKER_KEY, maker, (GDestroyNotify) maker_free);
}

/* Ends the making, stored or not (@error, taken, says why not): the
 * machine's own states carry its RAM again, and its guest runs on. */
static void
maker_done (QleanMachine *self,
            Maker        *maker,
            GError       *error)
{
  g_autoptr(QleanQmpClient) qmp = qlean_machine_dup_qmp (self);
  GAsyncReadyCallback cont_cb = maker->cont_cb;

  if (error != NULL)
    {
      g_message ("machine %s: no memory template for %s, the next start loads the whole "
                 "state: %s", self->name, maker->state, error->message);
      g_error_free (error);
    }
  else
    g_debug ("machine %s: made the memory template of %s in %.3f s", self->name,
             maker->state, (g_get_monotonic_time () - maker->since) / 1e6);
  /* The machine keeps its RAM file (unlinked as the maker goes). */
  qlean_machine_run_set_data (self->run, MAKER_KEY, NULL, NULL);
  if (qmp == NULL)
    return;
  qlean_machine_set_ignore_shared (qmp, FALSE, NULL, NULL);
  qlean_qmp_client_execute_async (qmp, "cont", NULL, NULL, cont_cb, g_object_ref (self));
}

/* Stores the pair: the RAM first, then the device state, whose name
 * says the pair is whole, and only if @state is still the file it was
 * made from (a snapshot replaced meanwhile removes its template). */
static gboolean
maker_store (Maker   *maker,
             GError **error)
{
  g_autofree char *devices = g_strconcat (maker->state, ".tmpl", NULL);
  struct stat now;

  /* Not flushed: a snapshot, and so its template, does not outlive
   * the process that made it. */
  if (!qlean_machine_template_store (maker->work, maker->state, FALSE, error))
    return FALSE;
  if (g_stat (maker->state, &now) != 0 || !same_file (&now, &maker->identity))
    {
      g_autofree char *ram = g_strconcat (maker->state, ".ram", NULL);

      g_unlink (ram);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   "%s was replaced or removed meanwhile", maker->state);
      return FALSE;
    }
  if (g_rename (maker->devices, devices) != 0)
    {
      int saved_errno = errno;

      qlean_set_error_from_errno (error, saved_errno, "Cannot store %s", devices);
      return FALSE;
    }
  return TRUE;
}

static void
maker_saved_cb (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  g_autoptr(QleanMachine) self = user_data;
  Maker *maker = qlean_machine_run_get_data (self->run, MAKER_KEY);
  GError *error = NULL;

  if (!qlean_machine_save_state_finish (self, result, &error) && maker == NULL)
    g_clear_error (&error);
  if (maker == NULL)
    return;
  if (error == NULL)
    g_debug ("machine %s: devices saved for the template of %s after %.3f s", self->name,
             maker->state, (g_get_monotonic_time () - maker->since) / 1e6);
  if (error == NULL && !maker_store (maker, &error))
    g_prefix_error (&error, "storing it: ");
  maker_done (self, maker, error);
}

static void
maker_capability_cb (GObject      *source,
                     GAsyncResult *result,
                     gpointer      user_data)
{
  g_autoptr(QleanMachine) self = user_data;
  Maker *maker = qlean_machine_run_get_data (self->run, MAKER_KEY);
  g_autoptr(JsonNode) reply = NULL;
  GError *error = NULL;

  reply = qlean_qmp_client_execute_finish (QLEAN_QMP_CLIENT (source), result, &error);
  if (maker == NULL)
    {
      g_clear_error (&error);
      return;
    }
  if (reply == NULL)
    {
      maker_done (self, maker, error);
      return;
    }
  /* Stopped after saving: the device state and the RAM file must be the
   * same instant, the one the stream held. */
  qlean_machine_save_state_async (self, maker->devices, TRUE, NULL, maker_saved_cb,
                                  g_object_ref (self));
}

gboolean
qlean_machine_state_template_make (QleanMachine        *self,
                                   GAsyncReadyCallback  cont_cb)
{
  Maker *maker = qlean_machine_run_get_data (self->run, MAKER_KEY);

  if (maker == NULL || maker->cont_cb != NULL || self->run->qmp == NULL)
    return FALSE;

  maker->cont_cb = cont_cb;
  maker->since = g_get_monotonic_time ();
  /* The state leaves out the RAM that is in the file. */
  qlean_machine_set_ignore_shared (self->run->qmp, TRUE, maker_capability_cb,
                                   g_object_ref (self));
  return TRUE;
}
