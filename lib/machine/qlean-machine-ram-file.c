/* qlean-machine-ram-file.c: a cloneable machine's memory, a file of its own on tmpfs
 *
 * A clone of a running machine took its memory through QEMU's migration
 * stream: every 4 KiB page of the machine's RAM read and sent, 0.3 s of
 * the clone's 0.6 s for a machine of the memory template, whose private
 * mapping QEMU faults in page by page. A machine whose config is
 * cloneable (QleanMachineConfig:cloneable) runs instead on a RAM file of
 * its own, mapped shared (`share=on`) on tmpfs: its clone is a sparse
 * copy of that file, made in the kernel while the machine is stopped
 * (about 90 MiB in 0.03 s), and the machine's devices alone through
 * QEMU (x-ignore-shared: a few hundred KiB). The clone runs on its copy,
 * shared too, so it is cloneable in turn.
 *
 * Apart from the templates (qlean-machine-state-template.c,
 * qlean-machine-boot-state.c) because those are shared and never
 * written, and a RAM file is one machine's, written all the time; it is
 * set up last, over whatever the start chose for its memory: the
 * template it maps is copied into it, a whole state is loaded into it, a
 * boot runs on it.
 *
 * tmpfs because a file elsewhere sends the guest's writes to disk. The
 * file goes with the run; files of processes that died are removed as
 * the next one is made.
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <glib/gstdio.h>
#include <glib/gi18n-lib.h>

#include "qlean-machine-ram-file-private.h"
#include "qlean-machine-private.h"
#include "qlean-machine-state-template-private.h"
#include "qlean-errno-private.h"
#include "qlean-host-private.h"

#define INCOMING_RAM_KEY "qlean-incoming-ram"
#define RAM_FILE_PREFIX  "ram-"

/* Where RAM files go: `$QLEAN_RAM_DIR`, else the run directory's base
 * when it is on tmpfs (`$XDG_RUNTIME_DIR` on most desktops), else
 * `/dev/shm/qlean-UID`; a folder only this user can enter, on tmpfs. */
static char *
ram_dir (char **reason)
{
  const char *env = g_getenv ("QLEAN_RAM_DIR");
  g_autofree char *dir = NULL;
  struct statfs fs;
  struct stat st;

  if (env != NULL && *env != '\0')
    dir = g_strdup (env);
  else
    {
      g_autofree char *base = qlean_host_run_base (NULL);

      if (base != NULL && statfs (base, &fs) == 0 && fs.f_type == TMPFS_MAGIC)
        dir = g_build_filename (base, "ram", NULL);
      else
        dir = g_strdup_printf ("/dev/shm/qlean-%u", (guint) getuid ());
    }

  if (g_mkdir_with_parents (dir, 0700) != 0 && errno != EEXIST)
    {
      *reason = g_strdup_printf ("cannot create %s: %s", dir, g_strerror (errno));
      return NULL;
    }
  if (lstat (dir, &st) != 0 || !S_ISDIR (st.st_mode) || st.st_uid != getuid () ||
      (st.st_mode & 0077) != 0)
    {
      *reason = g_strdup_printf ("%s is not a folder that only this user can enter", dir);
      return NULL;
    }
  if (statfs (dir, &fs) != 0 || fs.f_type != TMPFS_MAGIC)
    {
      *reason = g_strdup_printf ("%s is not on tmpfs, and the guest's writes would go to disk",
                                 dir);
      return NULL;
    }
  return g_steal_pointer (&dir);
}

/* Removes the RAM files in @dir of processes that are gone. */
static void
prune_orphans (const char *dir)
{
  g_autoptr(GDir) entries = g_dir_open (dir, 0, NULL);
  const char *name;

  while (entries != NULL && (name = g_dir_read_name (entries)) != NULL)
    if (g_str_has_prefix (name, RAM_FILE_PREFIX) &&
        qlean_machine_leftover_is_orphan (name, RAM_FILE_PREFIX))
      {
        g_autofree char *path = g_build_filename (dir, name, NULL);

        g_debug ("Removing %s, the RAM file of a process that is gone", path);
        g_unlink (path);
      }
}

gboolean
qlean_sparse_file_create (const char  *path,
                          guint64      size,
                          guint64      room,
                          char       **reason)
{
  g_autofree char *dir = g_path_get_dirname (path);
  struct statvfs fs;
  int fd;

  if (statvfs (dir, &fs) == 0 && (guint64) fs.f_bavail * fs.f_frsize < room)
    {
      *reason = g_strdup_printf ("%s has less than %" G_GUINT64_FORMAT " MiB free", dir,
                                 room / (1024 * 1024));
      return FALSE;
    }
  fd = g_open (path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 || ftruncate (fd, size) != 0)
    {
      *reason = g_strdup_printf ("%s: %s", path, g_strerror (errno));
      if (fd >= 0)
        {
          close (fd);
          g_unlink (path);
        }
      return FALSE;
    }
  close (fd);
  return TRUE;
}

char *
qlean_ram_file_new (guint64   size,
                    char    **reason)
{
  g_autofree char *dir = ram_dir (reason);
  g_autofree char *path = NULL;

  if (dir == NULL)
    return NULL;
  prune_orphans (dir);
  path = g_strdup_printf ("%s/" RAM_FILE_PREFIX "%d-%08x", dir, (int) getpid (), g_random_int ());
  /* Room for the whole of it, were the guest to write all its memory. */
  if (!qlean_sparse_file_create (path, size, size, reason))
    return NULL;
  return g_steal_pointer (&path);
}

/* What is done to each run of data of a sparse file: @n bytes at
 * @offset of @fd. */
typedef gboolean (*ExtentFunc) (int      fd,
                                off_t    offset,
                                off_t    n,
                                gpointer data);

/* Calls @func on each run of data of @fd, in order, until one fails:
 * a RAM file is mostly holes, and only its data is worth reading. */
static gboolean
each_data_extent (int         fd,
                  ExtentFunc  func,
                  gpointer    data)
{
  off_t size = lseek (fd, 0, SEEK_END);
  off_t offset = 0;
  gboolean ok = size >= 0;

  while (ok && offset < size)
    {
      off_t start = lseek (fd, offset, SEEK_DATA);
      off_t hole;

      if (start < 0 && errno == ENXIO)
        break;
      hole = start >= 0 ? lseek (fd, start, SEEK_HOLE) : -1;
      ok = hole >= 0 && func (fd, start, hole - start, data);
      offset = hole;
    }
  return ok;
}

/* Copies @n bytes at @offset of @in to the same place in the file
 * whose descriptor @out_fd points to. */
static gboolean
copy_range (int      in,
            off_t    offset,
            off_t    n,
            gpointer out_fd)
{
  int out = *(int *) out_fd;
  loff_t in_at = offset, out_at = offset;
  g_autofree char *buffer = NULL;

  while (n > 0)
    {
      ssize_t done = copy_file_range (in, &in_at, out, &out_at, n, 0);

      if (done > 0)
        {
          n -= done;
          continue;
        }
      if (done == 0)
        {
          errno = EIO;
          return FALSE;
        }
      if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
        return FALSE;
      /* Between file systems (a template on disk into tmpfs): by hand. */
      break;
    }

  if (n > 0)
    buffer = g_malloc (1024 * 1024);
  while (n > 0)
    {
      ssize_t got = pread (in, buffer, MIN (n, 1024 * 1024), in_at);
      ssize_t put;

      if (got <= 0)
        {
          if (got == 0)
            errno = EIO;
          return FALSE;
        }
      put = pwrite (out, buffer, got, out_at);
      if (put != got)
        {
          /* A short write says nothing in errno. */
          if (put >= 0)
            errno = EIO;
          return FALSE;
        }
      in_at += got;
      out_at += got;
      n -= got;
    }
  return TRUE;
}

gboolean
qlean_ram_file_copy (const char  *from,
                     const char  *to,
                     GError     **error)
{
  int in = g_open (from, O_RDONLY | O_CLOEXEC, 0);
  int out = g_open (to, O_WRONLY | O_CLOEXEC, 0);
  gboolean ok = in >= 0 && out >= 0 && each_data_extent (in, copy_range, &out);

  if (!ok)
    qlean_set_error_from_errno (error, errno, _("Could not copy the memory file %s to %s"),
                                from, to);
  if (in >= 0)
    close (in);
  if (out >= 0)
    close (out);
  return ok;
}

gboolean
qlean_ram_page_is_zero (const char *page,
                        gsize       size)
{
  return page[0] == 0 && memcmp (page, page + 1, size - 1) == 0;
}

gboolean
qlean_ram_punch_zeros (int         fd,
                       const char *buffer,
                       gsize       n,
                       off_t       offset,
                       int         out)
{
  const gsize page = 4096;

  for (gsize at = 0; at < n;)
    {
      gsize end;

      for (end = at; end < n && qlean_ram_page_is_zero (buffer + end, MIN (page, n - end));)
        end += MIN (page, n - end);
      /* Only memory is at stake: a file system that cannot punch holes
       * keeps its zeros. */
      if (end > at)
        fallocate (fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset + at, end - at);
      at = end;
      for (end = at; end < n && !qlean_ram_page_is_zero (buffer + end, MIN (page, n - end));)
        end += MIN (page, n - end);
      if (end > at && out >= 0 &&
          pwrite (out, buffer + at, end - at, offset + at) != (ssize_t) (end - at))
        return FALSE;
      at = end;
    }
  return TRUE;
}

/* Reads @n bytes at @offset of @fd, a MiB at a time into @buffer, and
 * punches holes for their pages of zeros. */
static gboolean
drop_zeros_in_range (int      fd,
                     off_t    offset,
                     off_t    n,
                     gpointer buffer)
{
  for (off_t end = offset + n; offset < end;)
    {
      ssize_t got = pread (fd, buffer, MIN ((off_t) 1024 * 1024, end - offset), offset);

      if (got == 0)
        errno = EIO;
      if (got <= 0 || !qlean_ram_punch_zeros (fd, buffer, got, offset, -1))
        return FALSE;
      offset += got;
    }
  return TRUE;
}

gboolean
qlean_ram_file_drop_zeros (const char  *path,
                           GError     **error)
{
  g_autofree char *buffer = g_malloc (1024 * 1024);
  int fd = g_open (path, O_RDWR | O_CLOEXEC, 0);
  gboolean ok = fd >= 0 && each_data_extent (fd, drop_zeros_in_range, buffer);

  if (!ok)
    qlean_set_error_from_errno (error, errno, _("Could not free the zero pages of the memory file %s"),
                                path);
  if (fd >= 0)
    close (fd);
  return ok;
}

/* Work on a RAM file in a thread of its own: it reads the whole file,
 * too long for the worker. @to: copy @from there; NULL: drop the pages
 * of zeros of @from. */
typedef struct
{
  char *from;
  char *to;
} RamFileJob;

static void
ram_file_job_free (RamFileJob *job)
{
  g_free (job->from);
  g_free (job->to);
  g_free (job);
}

static void
ram_file_job_in_thread (GTask        *task,
                        gpointer      source_object,
                        gpointer      task_data,
                        GCancellable *cancellable)
{
  RamFileJob *job = task_data;
  GError *error = NULL;
  gboolean ok = job->to != NULL ? qlean_ram_file_copy (job->from, job->to, &error)
                                : qlean_ram_file_drop_zeros (job->from, &error);

  if (ok)
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

static void
ram_file_job_start (const char          *from,
                    const char          *to,
                    GAsyncReadyCallback  callback,
                    gpointer             user_data)
{
  g_autoptr(GTask) task = g_task_new (NULL, NULL, callback, user_data);
  RamFileJob *job = g_new0 (RamFileJob, 1);

  job->from = g_strdup (from);
  job->to = g_strdup (to);
  g_task_set_task_data (task, job, (GDestroyNotify) ram_file_job_free);
  g_task_run_in_thread (task, ram_file_job_in_thread);
}

void
qlean_ram_file_copy_async (const char          *from,
                           const char          *to,
                           GAsyncReadyCallback  callback,
                           gpointer             user_data)
{
  ram_file_job_start (from, to, callback, user_data);
}

void
qlean_ram_file_drop_zeros_async (const char          *path,
                                 GAsyncReadyCallback  callback,
                                 gpointer             user_data)
{
  ram_file_job_start (path, NULL, callback, user_data);
}

gboolean
qlean_ram_file_job_finish (GAsyncResult  *result,
                           GError       **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}

static void
unlink_and_free (char *path)
{
  g_unlink (path);
  g_free (path);
}

void
qlean_machine_set_incoming_ram (QleanMachine *self,
                                char         *path)
{
  g_object_set_data_full (G_OBJECT (self), INCOMING_RAM_KEY, path,
                          (GDestroyNotify) unlink_and_free);
}

const char *
qlean_machine_get_ram_file (QleanMachine *self)
{
  return self->run->ram_file;
}

/* Whether @path is a RAM file (in the RAM folder): a start that makes
 * its boot's template may run on one (qlean_machine_pick_boot_state()). */
static gboolean
is_ram_file (const char *path)
{
  g_autofree char *reason = NULL;
  g_autofree char *dir = ram_dir (&reason);
  g_autofree char *parent = g_path_get_dirname (path);

  return dir != NULL && g_str_equal (dir, parent);
}

/* Why a machine to be started with @spec cannot have a RAM file of its
 * own, or NULL when it can. */
static char *
why_not_cloneable (const QleanQemuSpec *spec)
{
  if (spec->mem_memfd)
    return g_strdup ("its virtiofs shares need memory that QEMU hands to virtiofsd");
  if (spec->arch == NULL || spec->arch->arch != QLEAN_ARCH_X86_64)
    return g_strdup_printf ("only x86-64 machines can have one, and this one is %s",
                            spec->arch != NULL ? spec->arch->name : "of no known architecture");
  if (spec->mem_path != NULL && spec->mem_share && !is_ram_file (spec->mem_path))
    return g_strdup ("it makes its boot's memory template, on a file that is not on tmpfs");
  return NULL;
}

void
qlean_machine_ram_file_prepare (QleanMachine *self,
                                ResolvedSpec *resolved)
{
  QleanQemuSpec *spec = &resolved->spec;
  char *incoming = g_object_steal_data (G_OBJECT (self), INCOMING_RAM_KEY);
  g_autofree char *reason = NULL;
  g_autoptr(GError) error = NULL;
  char *file;

  /* A clone's memory comes only in that file: its state has none. */
  if (incoming != NULL)
    {
      self->run->ram_file = incoming;
      self->run->mem_template_load = TRUE;
      spec->mem_path = self->run->ram_file;
      spec->mem_share = TRUE;
      return;
    }
  if (!qlean_machine_config_get_cloneable (self->config))
    return;

  reason = why_not_cloneable (spec);
  if (reason == NULL && spec->mem_path != NULL && spec->mem_share)
    {
      /* It makes its boot's template on a RAM file, its own after. */
      self->run->ram_file = g_strdup (spec->mem_path);
      return;
    }
  file = reason == NULL ? qlean_ram_file_new ((guint64) spec->memory_mib * 1024 * 1024, &reason)
                        : NULL;
  /* The template it maps is copied: from now on its pages are its own. */
  if (file != NULL && spec->mem_path != NULL && !qlean_ram_file_copy (spec->mem_path, file, &error))
    {
      reason = g_strdup (error->message);
      g_clear_pointer (&file, unlink_and_free);
    }
  if (file == NULL)
    {
      g_message ("machine %s: no RAM file of its own, so its clones take its memory "
                 "through QEMU: %s", self->name, reason);
      return;
    }

  g_debug ("machine %s runs on the RAM file %s", self->name, file);
  self->run->ram_file = file;
  spec->mem_path = self->run->ram_file;
  spec->mem_share = TRUE;
}

/* The RAM file a start that makes its boot's memory template runs on:
 * for a cloneable machine, a RAM file that it keeps; else a work file
 * beside the saved boot, removed once the template is stored. */
char *
qlean_machine_template_work_file (QleanMachine  *self,
                                  const char    *state,
                                  guint          memory_mib,
                                  char         **reason)
{
  if (qlean_machine_config_get_cloneable (self->config))
    {
      g_autofree char *why = NULL;
      char *file = qlean_ram_file_new ((guint64) memory_mib * 1024 * 1024, &why);

      if (file != NULL)
        return file;
      g_debug ("machine %s: its boot's template is made beside it: %s", self->name, why);
    }
  return qlean_machine_template_make_work (state, memory_mib, reason);
}
