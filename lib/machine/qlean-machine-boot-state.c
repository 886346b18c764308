/* qlean-machine-boot-state.c: fast start: saved boots, memory templates and loading a state
 *
 * The boot-state cache (a machine's fresh boot saved once, loaded by
 * the next machines of its shape), memory templates (the saved boot's
 * RAM, mapped privately), and loading a saved state through QMP (the
 * identity fixes a copy of another machine needs then are in
 * qlean-machine-identity.c). Apart because it
 * is an optimisation with its own files, locks and pruning: a machine
 * without it boots the same, only slower.
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <utime.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <glib/gstdio.h>
#include <glib/gi18n-lib.h>

#include "qlean-enums.h"
#include "qlean-error.h"
#include "qlean-machine-object-private.h"
#include "qlean-machine-state-template-private.h"
#include "qlean-machine-ram-file-private.h"
#include "qlean-image-private.h"
#include "qlean-machine-network-private.h"
#include "qlean-task-private.h"
#include "qlean-worker-private.h"
#include "qlean-errno-private.h"

/* Fast start */

/* Bump when anything changes what a saved boot depends on outside the
 * command line (the guest's init, the post-restore repairs). */
#define BOOT_STATE_VERSION "1"

void
qlean_machine_checksum_file_identity (GChecksum  *checksum,
                                      const char *path)
{
  g_autofree char *line = NULL;
  GStatBuf st;

  if (path == NULL || g_stat (path, &st) != 0)
    memset (&st, 0, sizeof st);
  line = g_strdup_printf ("%s %llu %llu %lld\n", path ? path : "",
                          (unsigned long long) st.st_ino, (unsigned long long) st.st_size,
                          (long long) st.st_mtime);
  g_checksum_update (checksum, (const guchar *) line, -1);
}

/* Where a saved boot of a machine with this command line lives, or NULL
 * when the machine must boot: only the minimal image qualifies (its
 * whole state is in memory), without disk or extra arguments, whose
 * effects a restored state could not match. The key is the whole
 * command line with the per-run parts made constant, and the identity
 * of QEMU, kernel and initrd: anything else gets its own saved boot. */
/* Whether a start of @self would map a memory template (the conditions
 * of qlean_machine_boot_state_path() and of the launch), the template
 * permitting. */
gboolean
qlean_machine_would_use_memory_template (QleanMachine *self)
{
  QleanMachineConfig *config = self->config;
  const char * const *extra = qlean_machine_config_get_extra_args (config);

  return qlean_machine_config_get_fast_start (config) &&
         qlean_machine_config_get_memory_template (config) &&
         qlean_image_get_kind (self->image) == QLEAN_IMAGE_KIND_MINIMAL &&
         qlean_image_get_guest_arch (self->image) == QLEAN_ARCH_X86_64 &&
         (extra == NULL || extra[0] == NULL) &&
         qlean_machine_config_get_disk_gib (config) == 0 && !self->attached &&
         qlean_machine_config_get_bridge (config) == NULL &&
         qlean_image_get_disk (self->image) == NULL;
}

char *
qlean_machine_boot_state_path (QleanMachine       *self,
                               const ResolvedSpec *resolved,
                               gboolean            mem_template)
{
  QleanMachineConfig *config = self->config;
  const char * const *extra = qlean_machine_config_get_extra_args (config);
  g_autoptr(GChecksum) checksum = NULL;
  g_autofree char *cmdline = NULL;
  g_autofree char *file = NULL;
  g_autofree QleanQemuShare *shares = NULL;
  g_auto(GStrv) argv = NULL;
  QleanQemuSpec spec;
  const char *hostname;

  if (!qlean_machine_config_get_fast_start (config) ||
      qlean_image_get_kind (self->image) != QLEAN_IMAGE_KIND_MINIMAL ||
      (extra != NULL && extra[0] != NULL) ||
      qlean_machine_config_get_disk_gib (config) > 0 || self->attached ||
      qlean_machine_config_get_bridge (config) != NULL ||
      qlean_image_get_disk (self->image) != NULL)
    return NULL;

  spec = resolved->spec;
  spec.name = "template";
  /* Which folders a machine shares is not part of its saved boot: the
   * shares are mounted only after it is saved (QEMU cannot migrate a
   * mounted 9p export), and a restore opens its own. How many, and how,
   * is: they are devices. */
  if (spec.n_shares > 0)
    {
      shares = g_new0 (QleanQemuShare, spec.n_shares);
      for (guint i = 0; i < spec.n_shares; i++)
        {
          shares[i] = spec.shares[i];
          shares[i].host_path = "/share";
        }
      spec.shares = shares;
    }
  spec.run_dir = "/run";
  spec.qmp_fd = QLEAN_QMP_FD;
  spec.qga_fd = QLEAN_QGA_FD;
  spec.data_fd = QLEAN_DATA_FD;
  spec.incoming = FALSE;
  /* A saved boot whose RAM is in a template holds device state only: it
   * gets its own key, and the old path's saved boot stays usable. */
  spec.mem_path = mem_template ? "/template.ram" : NULL;
  spec.mem_share = FALSE;
  /* A network card is part of the machine; which switch, port and MAC
   * it has is not (the restore gives it its own). */
  if (spec.net_socket != NULL)
    {
      spec.net_socket = "/net";
      spec.net_port = 1;
      spec.net_mac = "02:00:00:00:00:01";
    }
  hostname = strstr (resolved->cmdline, " qlean.hostname=");
  cmdline = hostname ? g_strndup (resolved->cmdline, hostname - resolved->cmdline)
                     : g_strdup (resolved->cmdline);
  spec.cmdline = cmdline;
  argv = qlean_qemu_argv_build (&spec);

  checksum = g_checksum_new (G_CHECKSUM_SHA256);
  g_checksum_update (checksum, (const guchar *) BOOT_STATE_VERSION PACKAGE_VERSION, -1);
  /* The argv names QEMU's machine and CPU already; the architecture is
   * said outright so that no two guests of different ones ever share a
   * saved boot. */
  g_checksum_update (checksum, (const guchar *) spec.arch->name, strlen (spec.arch->name) + 1);
  for (guint i = 0; argv[i] != NULL; i++)
    g_checksum_update (checksum, (const guchar *) argv[i], strlen (argv[i]) + 1);
  qlean_machine_checksum_file_identity (checksum, spec.qemu_binary);
  qlean_machine_checksum_file_identity (checksum, spec.kernel);
  qlean_machine_checksum_file_identity (checksum, spec.initrd);

  file = g_strdup_printf ("%.16s.state", g_checksum_get_string (checksum));
  return g_build_filename (g_get_user_cache_dir (), "qlean", "boot-states", file, NULL);
}

/* How many saved boots (about 80 MB each) the cache keeps: one per
 * machine shape, QEMU, kernel and initramfs; an upgrade makes new ones. */
#define BOOT_STATES_KEPT 6

typedef struct
{
  char   *path;
  gint64  mtime;
} SavedBoot;

static void
saved_boot_free (SavedBoot *saved)
{
  g_free (saved->path);
  g_free (saved);
}

static gint
saved_boot_newer_first (gconstpointer a,
                        gconstpointer b)
{
  const SavedBoot *sa = *(SavedBoot * const *) a;
  const SavedBoot *sb = *(SavedBoot * const *) b;

  return (sb->mtime > sa->mtime) - (sb->mtime < sa->mtime);
}

/* Keeps the BOOT_STATES_KEPT saved boots used last (a start touches
 * the one it loads) and removes the others, except those being saved or
 * loaded right now (their lock is held). Best effort. */
static void
qlean_machine_prune_boot_states (const char *dir)
{
  g_autoptr(GPtrArray) saved = g_ptr_array_new_with_free_func ((GDestroyNotify) saved_boot_free);
  g_autoptr(GDir) listing = g_dir_open (dir, 0, NULL);
  const char *name;

  if (listing == NULL)
    return;

  while ((name = g_dir_read_name (listing)) != NULL)
    {
      SavedBoot *entry;
      GStatBuf st;
      g_autofree char *path = g_build_filename (dir, name, NULL);

      /* The RAM file of a template machine whose process died without
       * removing it (the work file is named after the pid). */
      if (strstr (name, ".state.ram.work-") != NULL)
        {
          const char *pid = strstr (name, ".state.ram.work-") + strlen (".state.ram.work-");
          g_autofree char *proc = g_strdup_printf ("/proc/%d", atoi (pid));

          if (atoi (pid) > 0 && !g_file_test (proc, G_FILE_TEST_EXISTS))
            g_unlink (path);
          continue;
        }
      /* The lock of a save that never finished, if nobody holds it. */
      if (g_str_has_suffix (name, ".state.lock"))
        {
          g_autofree char *state = g_strndup (path, strlen (path) - strlen (".lock"));
          int fd;

          if (!g_file_test (state, G_FILE_TEST_EXISTS) &&
              (fd = g_open (path, O_RDWR | O_CLOEXEC, 0)) >= 0)
            {
              if (flock (fd, LOCK_EX | LOCK_NB) == 0)
                g_unlink (path);
              close (fd);
            }
          continue;
        }
      if (!g_str_has_suffix (name, ".state") || g_stat (path, &st) != 0 || !S_ISREG (st.st_mode))
        continue;
      entry = g_new0 (SavedBoot, 1);
      entry->path = g_steal_pointer (&path);
      entry->mtime = st.st_mtime;
      g_ptr_array_add (saved, entry);
    }

  g_ptr_array_sort (saved, saved_boot_newer_first);
  for (guint i = BOOT_STATES_KEPT; i < saved->len; i++)
    {
      SavedBoot *entry = g_ptr_array_index (saved, i);
      g_autofree char *lock = g_strconcat (entry->path, ".lock", NULL);
      g_autofree char *mac = g_strconcat (entry->path, ".mac", NULL);
      g_autofree char *ram = g_strconcat (entry->path, ".ram", NULL);
      int fd = g_open (lock, O_RDWR | O_CLOEXEC, 0);

      if (fd >= 0 && flock (fd, LOCK_EX | LOCK_NB) != 0)
        {
          close (fd);
          continue;
        }
      g_debug ("Removing the saved boot %s, unused since %" G_GINT64_FORMAT, entry->path, entry->mtime);
      g_unlink (entry->path);
      g_unlink (mac);
      g_unlink (ram);
      g_unlink (lock);
      if (fd >= 0)
        close (fd);
    }
}

/* The lock of a saved boot: exclusive to save it (of the machines that
 * boot at once with no saved boot yet, one saves it), shared to load it
 * (so that pruning, which needs it exclusive, leaves it alone). It goes
 * with its holder, however that ends. Never waits: a machine that cannot
 * have it boots the slow way. */
static gboolean
qlean_machine_lock_boot_state (QleanMachine *self,
                               const char   *path,
                               gboolean      exclusive)
{
  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *lock = g_strconcat (path, ".lock", NULL);
  struct stat held, named;
  int fd;

  if (g_mkdir_with_parents (dir, 0700) != 0)
    return FALSE;

  fd = g_open (lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    return FALSE;

  /* Pruning unlinks lock files it holds: one opened just before is no
   * longer the lock, whatever flock() says. */
  if (flock (fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0 ||
      fstat (fd, &held) != 0 || stat (lock, &named) != 0 ||
      held.st_dev != named.st_dev || held.st_ino != named.st_ino ||
      (!exclusive && !g_file_test (path, G_FILE_TEST_IS_REGULAR)))
    {
      close (fd);
      return FALSE;
    }

  self->run->boot_state_lock = fd;
  return TRUE;
}

void
qlean_machine_unlock_boot_state (QleanMachine *self)
{
  if (self->run->boot_state_lock < 0)
    return;

  close (self->run->boot_state_lock);
  self->run->boot_state_lock = -1;
}

/* Memory templates (QleanMachineConfig:memory-template). The machine
 * that saves a boot runs on a RAM file of its own, shared (share=on);
 * its saved state then leaves that RAM out (x-ignore-shared) and, while
 * it is still stopped, the file is copied to `<state>.ram`, which is
 * never written again: it is replaced by rename or removed, never
 * rewritten. Later machines map it privately (share=off): they read its
 * pages from the page cache, all of them the same pages, and copy only
 * those their guest writes. QEMU 7.2 opens the file for writing even to
 * map it privately, so its mode cannot protect it; nothing else opens it. */

/* Whether the template of @state can be mapped by a machine of
 * @memory_mib; if not, why, for the log. */
gboolean
qlean_machine_template_usable (const char  *state,
                               guint        memory_mib,
                               char       **reason)
{
  g_autofree char *ram = g_strconcat (state, ".ram", NULL);
  GStatBuf st;

  if (g_stat (ram, &st) != 0)
    {
      *reason = g_strdup_printf ("%s: %s", ram, g_strerror (errno));
      return FALSE;
    }
  if (!S_ISREG (st.st_mode) || (guint64) st.st_size != (guint64) memory_mib * 1024 * 1024)
    {
      *reason = g_strdup_printf ("%s is not a %u MiB file", ram, memory_mib);
      return FALSE;
    }
  /* QEMU opens it read-write, even to map it privately. */
  if (access (ram, R_OK | W_OK) != 0)
    {
      *reason = g_strdup_printf ("%s: %s", ram, g_strerror (errno));
      return FALSE;
    }
  return TRUE;
}

/* Makes the RAM file the machine saving @state runs on: sparse, the
 * size of its memory, removed with the run. */
char *
qlean_machine_template_make_work (const char  *state,
                                  guint        memory_mib,
                                  char       **reason)
{
  g_autofree char *work = g_strdup_printf ("%s.ram.work-%d-%u", state, (int) getpid (),
                                           g_random_int ());
  guint64 size = (guint64) memory_mib * 1024 * 1024;

  /* Room for the machine's file and the template, were all written. */
  if (!qlean_sparse_file_create (work, size, 2 * size, reason))
    return NULL;
  return g_steal_pointer (&work);
}

/* Copies the template machine's RAM file (its guest stopped) to the
 * template of @state: the data only, holes and pages of zeros stay
 * holes; with @durable
 * flushed before it is renamed into place (a template that outlives
 * this process must survive a crash whole). */
gboolean
qlean_machine_template_store (const char  *work,
                              const char  *state,
                              gboolean     durable,
                              GError     **error)
{
  g_autofree char *ram = g_strconcat (state, ".ram", NULL);
  g_autofree char *part = g_strconcat (ram, ".part", NULL);
  g_autofree char *buffer = g_malloc (1024 * 1024);
  int in = -1, out = -1;
  off_t size, offset = 0;
  gboolean ok = FALSE;

  in = g_open (work, O_RDWR | O_CLOEXEC, 0);
  if (in < 0)
    goto out;
  out = g_open (part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (out < 0)
    goto out;
  size = lseek (in, 0, SEEK_END);
  if (size < 0 || ftruncate (out, size) != 0)
    goto out;

  while (offset < size)
    {
      off_t data = lseek (in, offset, SEEK_DATA);
      off_t hole;

      if (data < 0 && errno == ENXIO)
        data = size;
      else if (data < 0)
        goto out;
      /* A hole read through the mapping still has its pages of zeros
       * in the page cache: they go too. */
      if (data > offset)
        fallocate (in, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, data - offset);
      if (data == size)
        break;
      hole = lseek (in, data, SEEK_HOLE);
      if (hole < 0)
        goto out;
      for (offset = data; offset < hole;)
        {
          ssize_t n = pread (in, buffer, MIN ((off_t) 1024 * 1024, hole - offset), offset);

          if (n <= 0 || !qlean_ram_punch_zeros (in, buffer, n, offset, out))
            {
              if (n == 0)
                errno = EIO;
              goto out;
            }
          offset += n;
        }
    }
  if ((durable && fdatasync (out) != 0) || close (out) != 0)
    {
      out = -1;
      goto out;
    }
  out = -1;
  if (g_rename (part, ram) != 0)
    goto out;
  ok = TRUE;

out:
  if (!ok)
    {
      int saved_errno = errno;

      qlean_set_error_from_errno (error, saved_errno,
                                  "Cannot store the memory template %s", ram);
      g_unlink (part);
    }
  if (in >= 0)
    close (in);
  if (out >= 0)
    close (out);
  return ok;
}

void
qlean_machine_set_ignore_shared (QleanQmpClient       *qmp,
                                 gboolean             on,
                                 GAsyncReadyCallback  callback,
                                 gpointer             user_data)
{
  g_autoptr(JsonObject) arguments = json_object_new ();
  g_autoptr(JsonArray) capabilities = json_array_new ();
  JsonObject *capability = json_object_new ();

  json_object_set_string_member (capability, "capability", "x-ignore-shared");
  json_object_set_boolean_member (capability, "state", on);
  json_array_add_object_element (capabilities, capability);
  json_object_set_array_member (arguments, "capabilities", json_array_ref (capabilities));
  qlean_qmp_client_execute_async (qmp, "migrate-set-capabilities", arguments, NULL,
                                  callback, user_data);
}

static void
qlean_machine_boot_state_saved_cb (GObject      *source,
                                   GAsyncResult *result,
                                   gpointer      user_data)
{
  QleanMachine *self = QLEAN_MACHINE (source);
  g_autoptr(GTask) spawn_task = user_data;
  g_autoptr(GError) error = NULL;

  /* Without a saved boot, the next start boots: not worth failing for. */
  if (!qlean_machine_save_state_finish (self, result, &error))
    g_debug ("machine %s: could not save its boot for fast starts: %s", self->name, error->message);
  else if (self->run->boot_state_save != NULL)
    {
      g_autofree char *dir = g_path_get_dirname (self->run->boot_state_save);

      qlean_machine_prune_boot_states (dir);
    }

  qlean_machine_unlock_boot_state (self);
  if (self->run->spawn_task != spawn_task)
    return;

  g_clear_pointer (&self->run->boot_state_save, g_free);
  qlean_machine_boot_stage_done (self, spawn_task, NULL);
}

static void
qlean_machine_template_cont_cb (GObject      *source,
                                GAsyncResult *result,
                                gpointer      user_data)
{
  g_autoptr(GTask) spawn_task = user_data;
  QleanMachine *self = g_task_get_source_object (spawn_task);
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;

  reply = qlean_qmp_client_execute_finish (QLEAN_QMP_CLIENT (source), result, &error);
  qlean_machine_unlock_boot_state (self);
  if (self->run->spawn_task != spawn_task)
    return;
  if (reply == NULL)
    {
      qlean_machine_spawn_fail (self, g_steal_pointer (&error));
      return;
    }
  qlean_machine_run_fix_clock (self->run);
  g_clear_pointer (&self->run->boot_state_save, g_free);
  qlean_machine_boot_stage_done (self, spawn_task, NULL);
}

/* The state is saved and the guest still stopped: its RAM file is the
 * template's content. */
static void
qlean_machine_template_saved_cb (GObject      *source,
                                 GAsyncResult *result,
                                 gpointer      user_data)
{
  QleanMachine *self = QLEAN_MACHINE (source);
  g_autoptr(GTask) spawn_task = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanQmpClient) qmp = qlean_machine_dup_qmp (self);

  if (!qlean_machine_save_state_finish (self, result, &error))
    g_message ("machine %s: could not save its boot for fast starts: %s", self->name, error->message);
  else if (self->run->boot_state_save != NULL && self->run->mem_template_work != NULL &&
           !qlean_machine_template_store (self->run->mem_template_work, self->run->boot_state_save,
                                          TRUE, &error))
    {
      g_message ("machine %s: %s; the next machine boots", self->name, error->message);
      g_unlink (self->run->boot_state_save);
    }
  else if (self->run->boot_state_save != NULL)
    {
      g_autofree char *dir = g_path_get_dirname (self->run->boot_state_save);

      qlean_machine_prune_boot_states (dir);
    }
  /* The machine keeps its RAM file (unlinked: nothing else needs its
   * name, unless it is cloneable: its clones copy it) and from now on
   * saves its RAM into states like any other. */
  if (self->run->mem_template_work != NULL)
    {
      if (g_strcmp0 (self->run->mem_template_work, self->run->ram_file) != 0)
        g_unlink (self->run->mem_template_work);
      g_clear_pointer (&self->run->mem_template_work, g_free);
    }

  if (qmp == NULL)
    {
      qlean_machine_unlock_boot_state (self);
      return;
    }
  qlean_machine_set_ignore_shared (qmp, FALSE, NULL, NULL);
  qlean_qmp_client_execute_async (qmp, "cont", NULL, NULL, qlean_machine_template_cont_cb,
                                  g_steal_pointer (&spawn_task));
}

static void
qlean_machine_template_capability_cb (GObject      *source,
                                      GAsyncResult *result,
                                      gpointer      user_data)
{
  g_autoptr(GTask) spawn_task = user_data;
  QleanMachine *self = g_task_get_source_object (spawn_task);
  g_autoptr(JsonNode) reply = NULL;
  g_autoptr(GError) error = NULL;

  reply = qlean_qmp_client_execute_finish (QLEAN_QMP_CLIENT (source), result, &error);
  if (self->run->spawn_task != spawn_task)
    return;
  if (reply == NULL || self->run->boot_state_save == NULL)
    {
      g_message ("machine %s: no memory template (%s); the next machine boots", self->name,
                 error ? error->message : "cancelled");
      qlean_machine_unlock_boot_state (self);
      g_clear_pointer (&self->run->boot_state_save, g_free);
      qlean_machine_boot_stage_done (self, spawn_task, NULL);
      return;
    }
  /* Stopped after saving until the template is copied: its RAM and
   * the saved devices must be the same instant. */
  qlean_machine_save_state_async (self, self->run->boot_state_save, TRUE, NULL,
                                  qlean_machine_template_saved_cb, g_steal_pointer (&spawn_task));
}

/* Before a template is saved: the guest's caches go and its free
 * memory is compacted, so that what machines of the template find free
 * is free, and what they write stays small. */
static const char template_clean_script[] =
  "echo 3 > /proc/sys/vm/drop_caches\n"
  "echo 1 > /proc/sys/vm/compact_memory 2>/dev/null\n"
  "exit 0\n";

static void
qlean_machine_template_cleaned_cb (GObject      *source,
                                   GAsyncResult *result,
                                   gpointer      user_data)
{
  g_autoptr(GTask) spawn_task = user_data;
  QleanMachine *self = QLEAN_MACHINE (source);
  g_autoptr(QleanExecResult) ran = NULL;
  g_autoptr(GError) error = NULL;

  /* Not worth failing for: the template is only larger. */
  ran = qlean_machine_exec_finish (self, result, &error);
  if (ran == NULL)
    g_debug ("machine %s: could not drop its caches before saving: %s", self->name,
             error->message);
  if (self->run->spawn_task != spawn_task || self->run->qmp == NULL)
    return;
  /* The state leaves out the RAM that is in the file. */
  qlean_machine_set_ignore_shared (self->run->qmp, TRUE, qlean_machine_template_capability_cb,
                                   g_steal_pointer (&spawn_task));
}

/* The first machine of its kind saves its fresh boot for the next. */
static gboolean
qlean_machine_save_boot_stage_start (QleanMachine    *self,
                                     QleanMachineRun *run,
                                     GTask           *spawn_task)
{
  g_autofree char *dir = g_path_get_dirname (self->run->boot_state_save);

  if (g_mkdir_with_parents (dir, 0700) == 0)
    {
      g_autofree char *mac = qlean_machine_dup_mac_address (self);
      g_autofree char *mac_file = g_strconcat (self->run->boot_state_save, ".mac", NULL);

      /* Written first: a state without it must not be loaded with a
       * stale one (the save renames its file into place last). */
      if (mac != NULL)
        g_file_set_contents (mac_file, mac, -1, NULL);
      else
        g_unlink (mac_file);
      if (self->run->mem_template_work != NULL)
        {
          const char *argv[] = { "/bin/sh", "-c", template_clean_script, NULL };

          qlean_machine_exec_starting_async (self, argv, NULL, NULL,
                                             qlean_machine_template_cleaned_cb,
                                             g_object_ref (spawn_task));
          return TRUE;
        }
      qlean_machine_save_state_async (self, self->run->boot_state_save, FALSE, NULL,
                                      qlean_machine_boot_state_saved_cb,
                                      g_object_ref (spawn_task));
      return TRUE;
    }
  g_clear_pointer (&self->run->boot_state_save, g_free);
  return FALSE;
}

static const QleanBootStage save_boot_stage = {
  "save-boot", QLEAN_BOOT_STAGE_SAVE_BOOT, qlean_machine_save_boot_stage_start
};

/* Fast start, as a start without a state to load begins: load the saved
 * boot of this machine's shape when there is one (with its memory
 * template when it has one), or save this boot for the next machines
 * (on a RAM file that becomes the template), or neither when another
 * machine holds the lock. Sets up @resolved's memory for it. */
void
qlean_machine_pick_boot_state (QleanMachine *self,
                               ResolvedSpec *resolved)
{
  gboolean mem_template = qlean_machine_config_get_memory_template (self->config);
  g_autofree char *boot_state = NULL;
  g_autofree char *reason = NULL;

  /* Memory templates only where the RAM's id is q35's (see
   * qlean_qemu_argv_build()). */
  if (mem_template && resolved->spec.arch != NULL &&
      resolved->spec.arch->arch != QLEAN_ARCH_X86_64)
    mem_template = FALSE;
  boot_state = qlean_machine_boot_state_path (self, resolved, mem_template);
  if (boot_state != NULL && mem_template)
    {
      if (g_file_test (boot_state, G_FILE_TEST_EXISTS))
        {
          if (!qlean_machine_template_usable (boot_state, resolved->spec.memory_mib, &reason))
            {
              /* Useless without its template: made anew by a
               * later machine, unless one is loading it now. */
              if (qlean_machine_lock_boot_state (self, boot_state, TRUE))
                {
                  g_unlink (boot_state);
                  qlean_machine_unlock_boot_state (self);
                }
            }
        }
      else if (qlean_machine_lock_boot_state (self, boot_state, TRUE))
        {
          self->run->mem_template_work =
            qlean_machine_template_work_file (self, boot_state, resolved->spec.memory_mib,
                                              &reason);
          qlean_machine_unlock_boot_state (self);
        }
      if (reason != NULL)
        {
          g_message ("machine %s: no memory template, starting the old way: %s", self->name,
                     reason);
          g_free (boot_state);
          boot_state = qlean_machine_boot_state_path (self, resolved, FALSE);
        }
    }

  if (boot_state != NULL && g_file_test (boot_state, G_FILE_TEST_IS_REGULAR) &&
      qlean_machine_lock_boot_state (self, boot_state, FALSE))
    {
      g_autofree char *mac_file = g_strconcat (boot_state, ".mac", NULL);
      g_autofree char *saved_mac = NULL;

      /* The card in the saved state has its template's MAC. */
      if (g_file_get_contents (mac_file, &saved_mac, NULL, NULL))
        g_strstrip (saved_mac);
      qlean_machine_set_incoming (self, boot_state, TRUE, saved_mac);
      self->run->boot_state_used = g_strdup (boot_state);
      /* Its mtime says when it was last used: pruning keeps the newest. */
      g_utime (boot_state, NULL);
      if (mem_template && reason == NULL)
        {
          self->run->mem_template_load = TRUE;
          self->run->mem_template_ram = g_strconcat (boot_state, ".ram", NULL);
        }
    }
  else if (boot_state != NULL && !g_file_test (boot_state, G_FILE_TEST_EXISTS) &&
           qlean_machine_lock_boot_state (self, boot_state, TRUE))
    self->run->boot_state_save = g_steal_pointer (&boot_state);

  if (self->run->boot_state_save == NULL && self->run->mem_template_work != NULL)
    {
      g_unlink (self->run->mem_template_work);
      g_clear_pointer (&self->run->mem_template_work, g_free);
    }
  if (self->run->mem_template_work != NULL)
    {
      resolved->spec.mem_path = self->run->mem_template_work;
      resolved->spec.mem_share = TRUE;
    }
  else if (self->run->mem_template_load)
    {
      resolved->spec.mem_path = self->run->mem_template_ram;
      resolved->spec.mem_share = FALSE;
    }
  if (self->run->boot_state_save != NULL)
    qlean_machine_run_add_boot_stage (self->run, &save_boot_stage);
}

/* A copy's card wakes up with the MAC of the machine it was saved from,
 * until the identity fix gives it its own: its link stays down until
 * then (qlean_machine_network_hold_link()). */
static gboolean
qlean_machine_wakes_with_foreign_mac (QleanMachine *self)
{
  g_autofree char *mac = NULL;

  if (!self->incoming_new_identity || self->incoming_old_mac == NULL ||
      self->incoming_old_mac[0] == '\0')
    return FALSE;
  mac = qlean_machine_dup_mac_address (self);
  return mac != NULL && g_ascii_strcasecmp (mac, self->incoming_old_mac) != 0;
}

/* This start loads the machine's incoming state (see
 * qlean_machine_load_incoming()), and then fixes the guest's identity. */
void
qlean_machine_prepare_incoming (QleanMachine *self,
                                ResolvedSpec *resolved)
{
  self->run->restoring = TRUE;
  resolved->spec.incoming = TRUE;
  /* A state loaded more than once loads through its memory template;
   * one that streams in (a clone of a running machine) is loaded once. */
  if (!qlean_machine_prepare_incoming_stream (self))
    qlean_machine_state_template_prepare (self, resolved);
  qlean_machine_add_identity_stage (self->run);
}

/* Loading a saved state: QEMU waits (-incoming defer) until told where
 * the stream is, loads it, and runs the guest on when told to. */

static void
qlean_machine_incoming_cont_cb (GObject      *source,
                                GAsyncResult *result,
                                gpointer      user_data)
{
  g_autoptr(QleanMachine) self = user_data;
  g_autoptr(JsonNode) reply = NULL;
  GError *error = NULL;

  reply = qlean_qmp_client_execute_finish (QLEAN_QMP_CLIENT (source), result, &error);
  if (reply == NULL)
    {
      qlean_machine_spawn_fail (self, error);
      return;
    }

  self->run->qmp_ready = TRUE;
  qlean_machine_guest_resumed (self);
  qlean_machine_spawn_maybe_done (self);
}

static void qlean_machine_incoming_poll (QleanMachine *self);

/* The state is loaded: the first machine from a state makes its
 * template, and then runs on; any other runs on at once. */
static void
qlean_machine_incoming_loaded (QleanMachine *self)
{
  if (qlean_machine_state_template_make (self, qlean_machine_incoming_cont_cb))
    return;
  /* Off again: this machine's own snapshots carry its RAM. */
  if (self->run->mem_template_load)
    qlean_machine_set_ignore_shared (self->run->qmp, FALSE, NULL, NULL);
  qlean_qmp_client_execute_async (self->run->qmp, "cont", NULL, NULL,
                                  qlean_machine_incoming_cont_cb, g_object_ref (self));
}

/* A start whose RAM file loses its pages of zeros, meanwhile. */
typedef struct
{
  QleanMachine    *machine;
  QleanMachineRun *run;
} LoadedStart;

/* Only memory is at stake: a failure is said, not returned. The start
 * goes on unless it ended meanwhile (failed, killed, or followed by
 * another run). */
static void
zeros_dropped_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  LoadedStart *start = user_data;
  g_autoptr(QleanMachine) self = start->machine;
  g_autoptr(QleanMachineRun) run = start->run;
  g_autoptr(GError) error = NULL;

  g_free (start);
  if (!qlean_ram_file_job_finish (result, &error))
    g_message ("machine %s: %s", self->name, error->message);
  if (self->run != run || run->spawn_task == NULL || run->spawn_error != NULL)
    return;
  qlean_machine_incoming_loaded (self);
}

static void
qlean_machine_incoming_query_cb (GObject      *source,
                                 GAsyncResult *result,
                                 gpointer      user_data)
{
  g_autoptr(QleanMachine) self = user_data;
  g_autoptr(JsonNode) reply = NULL;
  GError *error = NULL;
  JsonObject *object;
  const char *status;

  reply = qlean_qmp_client_execute_finish (QLEAN_QMP_CLIENT (source), result, &error);
  if (reply == NULL)
    {
      qlean_machine_spawn_fail (self, error);
      return;
    }
  if (self->run->spawn_task == NULL || self->run->spawn_error != NULL)
    return;

  object = JSON_NODE_HOLDS_OBJECT (reply) ? json_node_get_object (reply) : NULL;
  status = object ? json_object_get_string_member_with_default (object, "status", "") : "";

  if (g_str_equal (status, "completed"))
    {
      /* A whole state loaded into a RAM file (a cloneable machine's)
       * read every page of it, and kept each: the zeros go first, in
       * a thread of their own. */
      if (self->run->ram_file != NULL && !self->run->mem_template_load)
        {
          LoadedStart *start = g_new0 (LoadedStart, 1);

          start->machine = g_object_ref (self);
          start->run = qlean_machine_run_ref (self->run);
          qlean_ram_file_drop_zeros_async (self->run->ram_file, zeros_dropped_cb, start);
          return;
        }
      qlean_machine_incoming_loaded (self);
      return;
    }

  if (g_str_equal (status, "failed") || g_str_equal (status, "cancelled"))
    {
      qlean_machine_spawn_fail (self,
          g_error_new (QLEAN_MACHINE_ERROR, QLEAN_MACHINE_ERROR_FAILED,
                       _("QEMU could not load the saved state of machine “%s”: %s"), self->name,
                       object ? json_object_get_string_member_with_default (object, "error-desc", status)
                              : status));
      return;
    }

  qlean_machine_incoming_poll (self);
}

static gboolean
qlean_machine_incoming_poll_cb (gpointer user_data)
{
  QleanMachine *self = user_data;

  g_clear_pointer (&self->run->incoming_poll, g_source_unref);
  qlean_qmp_client_execute_async (self->run->qmp, "query-migrate", NULL, NULL,
                                  qlean_machine_incoming_query_cb, g_object_ref (self));
  return G_SOURCE_REMOVE;
}

static void
qlean_machine_incoming_poll (QleanMachine *self)
{
  self->run->incoming_poll = qlean_add_timeout (qlean_worker_get_context (), 5,
                                           qlean_machine_incoming_poll_cb, self);
}

static void
qlean_machine_incoming_started_cb (GObject      *source,
                                   GAsyncResult *result,
                                   gpointer      user_data)
{
  g_autoptr(QleanMachine) self = user_data;
  g_autoptr(JsonNode) reply = NULL;
  GError *error = NULL;

  reply = qlean_qmp_client_execute_finish (QLEAN_QMP_CLIENT (source), result, &error);
  if (reply == NULL)
    {
      qlean_machine_spawn_fail (self, error);
      return;
    }

  /* A stream's source may start now: QEMU listens. */
  qlean_machine_incoming_listening (self);
  qlean_machine_incoming_poll (self);
}

void
qlean_machine_load_incoming (QleanMachine *self)
{
  g_autoptr(JsonObject) arguments = json_object_new ();
  /* The file opened for QEMU, or the socket of a stream. */
  g_autofree char *uri = qlean_machine_incoming_uri (self);

  json_object_set_string_member (arguments, "uri", uri);
  /* A state saved from a template has no RAM: the capability on both
   * sides says so (QMP runs the commands in order). */
  if (self->run->mem_template_load)
    qlean_machine_set_ignore_shared (self->run->qmp, TRUE, NULL, NULL);
  /* Before the load: QMP runs commands in order, so the link is down
   * before the guest runs a single instruction. */
  if (qlean_machine_wakes_with_foreign_mac (self))
    qlean_machine_network_hold_link (self->run);
  qlean_qmp_client_execute_async (self->run->qmp, "migrate-incoming", arguments, NULL,
                                  qlean_machine_incoming_started_cb, g_object_ref (self));
}
