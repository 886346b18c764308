/* qlean-machine-state-template.c: memory templates of saved states (snapshots, imports)
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
 * The state of an imported archive is extracted anew by every import,
 * into a directory of that machine's own: its template cannot live
 * beside it. Such a template is shared through the user's cache
 * (`state-templates/`), named by a digest of the state's validated
 * content, the QEMU that loads it and the machine's memory, so that
 * every import of one archive on this host, in any process, maps the
 * same file. Nothing of the archive but checked digests names it, and
 * it is made only by loading the checked state, like a snapshot's.
 *
 * Apart from the boot cache because these templates come from states
 * that were saved or imported rather than from a boot, and are made by a
 * machine that loads a state rather than one that boots. Anything that
 * stops a template (a config without memory templates, another
 * architecture, no room, a QMP error) is logged and the whole stream
 * loaded as before; a template that QEMU could not load is removed, so
 * that the next start loads the whole stream (and makes it anew).
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utime.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <glib/gstdio.h>
#include <glib/gi18n-lib.h>

#include "qlean-machine-state-template-private.h"
#include "qlean-machine-private.h"
#include "qlean-errno-private.h"

#define WANTED_KEY "qlean-incoming-template"
#define MAKER_KEY  "qlean-state-template-maker"
#define USER_KEY   "qlean-state-template-user"

/* Bump when anything a shared template depends on changes outside its
 * key (what the import loads, how a template is made). */
#define SHARED_TEMPLATE_VERSION "1"

/* How many shared templates (each up to a guest's memory, on disk) the
 * cache keeps: those of the archives imported last. */
#define SHARED_TEMPLATES_KEPT 4

/* What the next start wants of its state's template. */
typedef struct
{
  gboolean  make;
  char     *key;      /* a shared template's; NULL: beside the state */
} Wanted;

static void
wanted_free (Wanted *wanted)
{
  g_free (wanted->key);
  g_free (wanted);
}

/* A template being made, kept on the run that makes it. */
typedef struct
{
  char                *state;     /* the whole stream it is made from */
  char                *base;      /* it goes to `<base>.ram` and `<base>.tmpl` */
  gboolean             shared;    /* in the cache: it outlives this process */
  char                *work;      /* the machine's RAM file (share=on) */
  char                *devices;   /* the device state being saved */
  int                  lock;      /* `<base>.tmpl.lock`, held throughout */
  struct stat          identity;  /* of @state when the start began */
  GAsyncReadyCallback  cont_cb;
  gint64               since;     /* when the stream was loaded, for the log */
} Maker;

/* A template a start maps, kept on its run: a shared one's lock, held
 * shared until QEMU loaded it so that pruning leaves it alone meanwhile
 * (once mapped, removing it disturbs nobody, and a new one can be made
 * while machines map the old), and whether QEMU loaded it. */
typedef struct
{
  char     *base;
  int       lock;
  gboolean  loaded;
} User;

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
  g_free (maker->base);
  g_free (maker->state);
  g_free (maker);
}

void
qlean_machine_set_incoming_template (QleanMachine *self,
                                     gboolean      make)
{
  Wanted *wanted = g_new0 (Wanted, 1);

  wanted->make = make;
  g_object_set_data_full (G_OBJECT (self), WANTED_KEY, wanted, (GDestroyNotify) wanted_free);
}

void
qlean_machine_set_incoming_shared_template (QleanMachine *self,
                                            const char   *key)
{
  Wanted *wanted = g_new0 (Wanted, 1);

  wanted->make = TRUE;
  wanted->key = g_strdup (key);
  g_object_set_data_full (G_OBJECT (self), WANTED_KEY, wanted, (GDestroyNotify) wanted_free);
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

/* The lock of the template at @base, taken with @operation (LOCK_EX to
 * make or prune it, LOCK_SH to map it); never waits. -1 when someone
 * else holds it, or when the lock file was pruned after it was opened
 * (then it is no longer the lock); -1 with @reason (if not NULL) set
 * when it cannot be opened at all. */
static int
lock_template (const char  *base,
               int          operation,
               char       **reason)
{
  g_autofree char *path = g_strconcat (base, ".tmpl.lock", NULL);
  struct stat held, named;
  int fd = g_open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

  if (fd < 0)
    {
      if (reason != NULL)
        *reason = g_strdup_printf ("%s: %s", path, g_strerror (errno));
      return -1;
    }
  if (flock (fd, operation | LOCK_NB) != 0 || fstat (fd, &held) != 0 ||
      g_stat (path, &named) != 0 || held.st_dev != named.st_dev || held.st_ino != named.st_ino)
    {
      close (fd);
      return -1;
    }
  return fd;
}

/* A template that QEMU could not load is of no use to the next start
 * either: it goes, and that start loads the whole stream (or makes it
 * anew). So does one whose start failed before its load ended, for
 * whatever reason: making it again costs only time. */
static void
user_free (User *user)
{
  if (!user->loaded)
    {
      g_message ("the memory template %s was not loaded; it is removed", user->base);
      qlean_machine_state_template_remove (user->base);
    }
  if (user->lock >= 0)
    close (user->lock);
  g_free (user->base);
  g_free (user);
}

/* This start maps the template at @base and loads its device state;
 * @lock, taken, is the shared template's (or -1). */
static void
map_template (QleanMachine *self,
              ResolvedSpec *resolved,
              const char   *base,
              char         *devices,
              int           lock)
{
  User *user = g_new0 (User, 1);

  self->run->mem_template_load = TRUE;
  self->run->mem_template_ram = g_strconcat (base, ".ram", NULL);
  resolved->spec.mem_path = self->run->mem_template_ram;
  resolved->spec.mem_share = FALSE;
  user->base = g_strdup (base);
  user->lock = lock;
  qlean_machine_run_set_data (self->run, USER_KEY, user, (GDestroyNotify) user_free);
  /* Opened as the launch makes QEMU's descriptors. */
  g_free (self->incoming);
  self->incoming = devices;
}

/* This start makes the template at @base of @state: its RAM on a file
 * of its own, shared, until the template is stored. NULL with @reason
 * when it cannot; NULL without one when another start makes it now. */
static Maker *
maker_new (QleanMachine  *self,
           const char    *state,
           const char    *base,
           gboolean       shared,
           guint          memory_mib,
           char         **reason)
{
  Maker *maker = g_new0 (Maker, 1);

  maker->lock = lock_template (base, LOCK_EX, reason);
  maker->state = g_strdup (state);
  maker->base = g_strdup (base);
  maker->shared = shared;
  if (maker->lock < 0 || g_stat (state, &maker->identity) != 0)
    {
      maker_free (maker);
      return NULL;
    }
  maker->work = qlean_machine_template_make_work (base, memory_mib, reason);
  if (maker->work == NULL)
    {
      maker_free (maker);
      return NULL;
    }
  /* Named after its process, like the work file: what a maker that died
   * left, pruning knows by the pid. */
  maker->devices = g_strdup_printf ("%s.tmpl.new-%d-%08x", base, (int) getpid (),
                                    g_random_int ());
  return maker;
}

/* Where the shared template of a state with @key, loaded by this start,
 * lives: the same QEMU and memory size load the same state into the
 * same RAM. NULL when the cache cannot be made (logged). */
static char *
shared_template_base (QleanMachine       *self,
                      const ResolvedSpec *resolved,
                      const char         *key)
{
  g_autoptr(GChecksum) checksum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autofree char *dir = g_build_filename (g_get_user_cache_dir (), "qlean", "state-templates",
                                           NULL);
  g_autofree char *shape = g_strdup_printf ("%s %u", resolved->spec.arch->name,
                                            resolved->spec.memory_mib);
  g_autofree char *file = NULL;

  if (g_mkdir_with_parents (dir, 0700) != 0)
    {
      g_message ("machine %s: no memory template, loading the whole state: cannot create %s: %s",
                 self->name, dir, g_strerror (errno));
      return NULL;
    }
  g_checksum_update (checksum, (const guchar *) SHARED_TEMPLATE_VERSION PACKAGE_VERSION, -1);
  g_checksum_update (checksum, (const guchar *) key, strlen (key) + 1);
  g_checksum_update (checksum, (const guchar *) shape, strlen (shape) + 1);
  qlean_machine_checksum_file_identity (checksum, resolved->spec.qemu_binary);
  file = g_strdup_printf ("%.32s", g_checksum_get_string (checksum));
  return g_build_filename (dir, file, NULL);
}

/* Maps the template at @base when there is a usable one (TRUE). One
 * that is there but unusable is said so and removed. */
static gboolean
try_map_template (QleanMachine *self,
                  ResolvedSpec *resolved,
                  const char   *base,
                  gboolean      shared)
{
  g_autofree char *devices = g_strconcat (base, ".tmpl", NULL);
  g_autofree char *reason = NULL;
  int lock = -1;

  if (!g_file_test (devices, G_FILE_TEST_IS_REGULAR))
    return FALSE;
  /* A shared template is mapped under its lock; someone who holds it
   * for good is making or pruning it: the whole state then. */
  if (shared && (lock = lock_template (base, LOCK_SH, NULL)) < 0)
    return FALSE;
  if (qlean_machine_template_usable (base, resolved->spec.memory_mib, &reason))
    {
      /* Its mtime says when it was last used: pruning keeps the newest. */
      if (shared)
        g_utime (devices, NULL);
      map_template (self, resolved, base, g_steal_pointer (&devices), lock);
      return TRUE;
    }
  g_message ("machine %s: the memory template of %s is unusable, loading the whole "
             "state: %s", self->name, self->incoming, reason);
  if (lock >= 0)
    close (lock);
  qlean_machine_state_template_remove (base);
  return FALSE;
}

void
qlean_machine_state_template_prepare (QleanMachine *self,
                                      ResolvedSpec *resolved)
{
  Wanted *wanted = g_object_steal_data (G_OBJECT (self), WANTED_KEY);
  const char *state = self->incoming;
  /* A cloneable machine's memory is a file of its own: it maps a
   * template, copied (qlean-machine-ram-file.c), but makes none. */
  gboolean make = wanted != NULL && wanted->make &&
                  !qlean_machine_config_get_cloneable (self->config);
  gboolean shared = wanted != NULL && wanted->key != NULL;
  g_autofree char *base = NULL;
  g_autofree char *reason = NULL;
  Maker *maker;

  /* The RAM's id is q35's only on x86-64 (see qlean_qemu_argv_build()),
   * and a start whose memory is set up otherwise keeps it. */
  if (qlean_machine_config_get_memory_template (self->config) &&
      resolved->spec.arch != NULL && resolved->spec.arch->arch == QLEAN_ARCH_X86_64 &&
      resolved->spec.mem_path == NULL)
    base = shared ? shared_template_base (self, resolved, wanted->key) : g_strdup (state);
  g_clear_pointer (&wanted, wanted_free);
  if (base == NULL || try_map_template (self, resolved, base, shared) || !make)
    return;

  maker = maker_new (self, state, base, shared, resolved->spec.memory_mib, &reason);
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

/* Whether the leftover @name (`….work-PID-…` or `….new-PID-…`) was
 * left by a process that is gone. */
gboolean
qlean_machine_leftover_is_orphan (const char *name,
                                  const char *marker)
{
  const char *at = strstr (name, marker);
  g_autofree char *proc = NULL;
  int pid;

  if (at == NULL)
    return FALSE;
  pid = atoi (at + strlen (marker));
  proc = g_strdup_printf ("/proc/%d", pid);
  return pid > 0 && !g_file_test (proc, G_FILE_TEST_EXISTS);
}

typedef struct
{
  char   *base;
  gint64  mtime;
} SharedTemplate;

static void
shared_template_free (SharedTemplate *entry)
{
  g_free (entry->base);
  g_free (entry);
}

static gint
shared_template_newer_first (gconstpointer a,
                             gconstpointer b)
{
  const SharedTemplate *sa = *(SharedTemplate * const *) a;
  const SharedTemplate *sb = *(SharedTemplate * const *) b;

  return (sb->mtime > sa->mtime) - (sb->mtime < sa->mtime);
}

/* Removes the shared template at @base unless someone holds its lock:
 * being made, or mapped by a machine that runs. */
static void
remove_shared_template (const char *base)
{
  g_autofree char *lock_path = g_strconcat (base, ".tmpl.lock", NULL);
  g_autofree char *part = g_strconcat (base, ".ram.part", NULL);
  int lock = lock_template (base, LOCK_EX, NULL);

  if (lock < 0)
    return;
  g_debug ("Removing the memory template %s", base);
  qlean_machine_state_template_remove (base);
  g_unlink (part);
  /* Held: whoever opened it meanwhile sees it is no longer the lock. */
  g_unlink (lock_path);
  close (lock);
}

/* Keeps the SHARED_TEMPLATES_KEPT shared templates used last (a start
 * that maps one touches it) and removes the others, and what makers
 * that died left. Best effort. */
static void
prune_shared_templates (const char *dir)
{
  g_autoptr(GPtrArray) kept = g_ptr_array_new_with_free_func ((GDestroyNotify) shared_template_free);
  g_autoptr(GDir) listing = g_dir_open (dir, 0, NULL);
  const char *name;

  while (listing != NULL && (name = g_dir_read_name (listing)) != NULL)
    {
      g_autofree char *path = g_build_filename (dir, name, NULL);
      SharedTemplate *entry;
      GStatBuf st;

      if (qlean_machine_leftover_is_orphan (name, ".ram.work-") ||
          qlean_machine_leftover_is_orphan (name, ".tmpl.new-"))
        g_unlink (path);
      /* The lock of a template that is gone (made by nobody now). */
      else if (g_str_has_suffix (name, ".tmpl.lock"))
        {
          g_autofree char *base = g_strndup (path, strlen (path) - strlen (".tmpl.lock"));
          g_autofree char *devices = g_strconcat (base, ".tmpl", NULL);

          if (!g_file_test (devices, G_FILE_TEST_EXISTS))
            remove_shared_template (base);
        }
      else if (g_str_has_suffix (name, ".tmpl") && g_stat (path, &st) == 0 && S_ISREG (st.st_mode))
        {
          entry = g_new0 (SharedTemplate, 1);
          entry->base = g_strndup (path, strlen (path) - strlen (".tmpl"));
          entry->mtime = st.st_mtime;
          g_ptr_array_add (kept, entry);
        }
    }

  g_ptr_array_sort (kept, shared_template_newer_first);
  for (guint i = SHARED_TEMPLATES_KEPT; i < kept->len; i++)
    remove_shared_template (((SharedTemplate *) g_ptr_array_index (kept, i))->base);
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
  g_autofree char *dir = maker->shared ? g_path_get_dirname (maker->base) : NULL;

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
  /* Once its lock is free: this one is the newest. */
  if (dir != NULL)
    prune_shared_templates (dir);
  if (qmp == NULL)
    return;
  qlean_machine_set_ignore_shared (qmp, FALSE, NULL, NULL);
  qlean_qmp_client_execute_async (qmp, "cont", NULL, NULL, cont_cb, g_object_ref (self));
}

/* Flushes @path to disk (a shared template's device state, whose name
 * must not outlive a crash that its content did not). */
static gboolean
flush_file (const char  *path,
            GError     **error)
{
  int fd = g_open (path, O_RDONLY | O_CLOEXEC, 0);

  if (fd < 0 || fdatasync (fd) != 0)
    {
      int saved_errno = errno;

      if (fd >= 0)
        close (fd);
      qlean_set_error_from_errno (error, saved_errno, "Cannot flush %s", path);
      return FALSE;
    }
  close (fd);
  return TRUE;
}

/* Stores the pair: the RAM first, then the device state, whose name
 * says the pair is whole, and only if @state is still the file it was
 * made from (a snapshot replaced meanwhile removes its template). */
static gboolean
maker_store (Maker   *maker,
             GError **error)
{
  g_autofree char *devices = g_strconcat (maker->base, ".tmpl", NULL);
  struct stat now;

  /* A snapshot's is not flushed: a snapshot, and so its template, does
   * not outlive the process that made it. A shared one does. */
  if (!qlean_machine_template_store (maker->work, maker->base, maker->shared, error) ||
      (maker->shared && !flush_file (maker->devices, error)))
    return FALSE;
  if (g_stat (maker->state, &now) != 0 || !same_file (&now, &maker->identity))
    {
      g_autofree char *ram = g_strconcat (maker->base, ".ram", NULL);

      g_unlink (ram);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   "%s was replaced or removed meanwhile", maker->state);
      return FALSE;
    }
  /* Ours alone, like the RAM file, whatever QEMU's umask made it. */
  if (g_chmod (maker->devices, 0600) != 0 || g_rename (maker->devices, devices) != 0)
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
  User *user = qlean_machine_run_get_data (self->run, USER_KEY);

  if (user != NULL)
    {
      user->loaded = TRUE;
      if (user->lock >= 0)
        close (user->lock);
      user->lock = -1;
    }
  if (maker == NULL || maker->cont_cb != NULL || self->run->qmp == NULL)
    return FALSE;

  maker->cont_cb = cont_cb;
  maker->since = g_get_monotonic_time ();
  /* The state leaves out the RAM that is in the file. */
  qlean_machine_set_ignore_shared (self->run->qmp, TRUE, maker_capability_cb,
                                   g_object_ref (self));
  return TRUE;
}
