/* qlean-image-agent.c: the guest agent put into images that lack one
 *
 * SPDX-License-Identifier: MIT
 *
 * An image without qemu-ga gets one under /opt/qlean, with its dynamic
 * loader and every library it loads, so that it runs whatever the
 * guest's own libc is. For a guest of the host's architecture that is
 * the host's qemu-ga and what `ldd` lists; for another architecture it
 * is the one in that architecture's sysroot (tools/setup.sh deps makes
 * it), whose libraries are found by reading its ELF headers, since
 * nothing of it can run on the host, nor in libguestfs's appliance.
 * Apart from qlean-image-prepare.c, because finding these files is a
 * question about the host, not about the image being prepared.
 */

#include "config.h"

#include <elf.h>
#include <string.h>
#include <glib/gstdio.h>
#include <glib/gi18n-lib.h>

#include "qlean-arch-private.h"
#include "qlean-error.h"
#include "qlean-host-private.h"
#include "qlean-image-guestfs-private.h"

void
qlean_host_agent_clear (QleanHostAgent *agent)
{
  g_clear_pointer (&agent->qemu_ga, g_free);
  g_clear_pointer (&agent->loader, g_free);
  g_clear_pointer (&agent->libs, g_ptr_array_unref);
  g_clear_pointer (&agent->sonames, g_ptr_array_unref);
}

static char *
find_host_qemu_ga (void)
{
  const char *env = g_getenv ("QLEAN_QEMU_GA");
  static const char * const candidates[] = { "/usr/sbin/qemu-ga", "/usr/bin/qemu-ga", "/usr/libexec/qemu-ga" };

  if (env != NULL && *env != '\0')
    return g_strdup (env);

  for (guint i = 0; i < G_N_ELEMENTS (candidates); i++)
    if (g_file_test (candidates[i], G_FILE_TEST_IS_EXECUTABLE))
      return g_strdup (candidates[i]);

  return g_find_program_in_path ("qemu-ga");
}

/* Where Debian's qemu-guest-agent puts it, in a sysroot. */
static char *
find_sysroot_qemu_ga (const char *sysroot)
{
  g_autofree char *path = g_build_filename (sysroot, "usr", "sbin", "qemu-ga", NULL);

  return g_file_test (path, G_FILE_TEST_IS_REGULAR) ? g_steal_pointer (&path) : NULL;
}

/* See qlean-image-guestfs-private.h. */
char *
qlean_find_agent_program (QleanArch arch)
{
  g_autofree char *sysroot = NULL;

  if (qlean_arch_is_host (arch))
    return find_host_qemu_ga ();

  sysroot = qlean_arch_find_sysroot (arch, NULL);
  return sysroot != NULL ? find_sysroot_qemu_ga (sysroot) : NULL;
}

static gboolean
find_host_agent (QleanHostAgent  *agent,
                 GError         **error)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_auto(GStrv) lines = NULL;
  g_auto(GStrv) envp = g_environ_setenv (g_get_environ (), "LC_ALL", "C", TRUE);
  const char *argv[] = { "ldd", NULL, NULL };
  int status;

  agent->qemu_ga = find_host_qemu_ga ();
  if (agent->qemu_ga == NULL)
    {
      g_autofree char *hint = qlean_host_install_hint ("qemu-guest-agent");

      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
                   _("The image has no QEMU guest agent, and the host has none to give it; "
                     "install it on the host: %s"), hint);
      return FALSE;
    }

  argv[1] = agent->qemu_ga;
  if (!g_spawn_sync (NULL, (char **) argv, envp, G_SPAWN_SEARCH_PATH, NULL, NULL,
                     &out, &err, &status, error))
    return FALSE;
  if (!g_spawn_check_wait_status (status, NULL))
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
                   _("Cannot list the libraries of %s (ldd: %s)"), agent->qemu_ga, g_strstrip (err));
      return FALSE;
    }

  agent->libs = g_ptr_array_new_with_free_func (g_free);
  agent->sonames = g_ptr_array_new_with_free_func (g_free);
  lines = g_strsplit (out, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      char *line = g_strstrip (lines[i]);
      char *arrow = strstr (line, " => ");
      char *paren;

      if (*line == '\0')
        continue;
      if (arrow != NULL)
        {
          char *path = arrow + 4;

          if (g_str_has_prefix (path, "not found"))
            {
              g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
                           _("%s needs %s, which is missing on the host"), agent->qemu_ga, line);
              return FALSE;
            }
          paren = strstr (path, " (");
          if (paren != NULL)
            *paren = '\0';
          *arrow = '\0';
          if (*path != '/')
            continue;
          g_ptr_array_add (agent->sonames, g_strdup (line));
          g_ptr_array_add (agent->libs, g_strdup (path));
        }
      else if (*line == '/')
        {
          paren = strstr (line, " (");
          if (paren != NULL)
            *paren = '\0';
          agent->loader = g_strdup (line);
        }
    }

  if (agent->loader == NULL)
    {
      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
                   _("ldd names no dynamic loader for %s; Qlean needs a dynamically "
                     "linked qemu-ga"), agent->qemu_ga);
      return FALSE;
    }

  return TRUE;
}

/* Reading a foreign program's ELF headers */

/* What `readelf -l -d` would say of a 64-bit little-endian program: its
 * loader (PT_INTERP) and the sonames it needs (DT_NEEDED). */
typedef struct
{
  char      *interp;
  GPtrArray *needed;
} ElfDeps;

static void
elf_deps_clear (ElfDeps *deps)
{
  g_clear_pointer (&deps->interp, g_free);
  g_clear_pointer (&deps->needed, g_ptr_array_unref);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (ElfDeps, elf_deps_clear)

/* Whether [offset, offset + size) lies in a file of @len bytes. */
static gboolean
elf_range_ok (guint64 offset,
              guint64 size,
              gsize   len)
{
  return offset <= len && size <= len - offset;
}

/* The file offset of virtual address @addr, through the PT_LOAD segment
 * that maps it (DT_STRTAB is an address, not an offset). */
static gboolean
elf_addr_to_offset (const Elf64_Phdr *phdrs,
                    guint             n,
                    guint64           addr,
                    guint64          *offset)
{
  for (guint i = 0; i < n; i++)
    if (phdrs[i].p_type == PT_LOAD && addr >= phdrs[i].p_vaddr &&
        addr - phdrs[i].p_vaddr < phdrs[i].p_filesz)
      {
        *offset = phdrs[i].p_offset + (addr - phdrs[i].p_vaddr);
        return TRUE;
      }

  return FALSE;
}

static gboolean
elf_read_dynamic (const char        *data,
                  gsize              len,
                  const Elf64_Phdr  *phdrs,
                  guint              n,
                  const Elf64_Phdr  *dynamic,
                  GPtrArray         *needed)
{
  const Elf64_Dyn *dyn = (const Elf64_Dyn *) (data + dynamic->p_offset);
  guint64 count = dynamic->p_filesz / sizeof (Elf64_Dyn);
  guint64 strtab = 0, strsz = 0, offset;

  for (guint64 i = 0; i < count && dyn[i].d_tag != DT_NULL; i++)
    if (dyn[i].d_tag == DT_STRTAB)
      strtab = dyn[i].d_un.d_ptr;
    else if (dyn[i].d_tag == DT_STRSZ)
      strsz = dyn[i].d_un.d_val;

  if (!elf_addr_to_offset (phdrs, n, strtab, &offset) || !elf_range_ok (offset, strsz, len))
    return FALSE;

  for (guint64 i = 0; i < count && dyn[i].d_tag != DT_NULL; i++)
    if (dyn[i].d_tag == DT_NEEDED)
      {
        guint64 name = dyn[i].d_un.d_val;

        if (name >= strsz || memchr (data + offset + name, '\0', strsz - name) == NULL)
          return FALSE;
        g_ptr_array_add (needed, g_strdup (data + offset + name));
      }

  return TRUE;
}

static gboolean
elf_read_deps (const char  *path,
               guint16      machine,
               ElfDeps     *deps,
               GError     **error)
{
  g_autoptr(GMappedFile) file = g_mapped_file_new (path, FALSE, error);
  const char *data;
  const Elf64_Phdr *phdrs;
  Elf64_Ehdr ehdr;
  gsize len;

  if (file == NULL)
    return FALSE;
  data = g_mapped_file_get_contents (file);
  len = g_mapped_file_get_length (file);

  if (len < sizeof ehdr || memcmp (data, ELFMAG, SELFMAG) != 0)
    goto invalid;
  memcpy (&ehdr, data, sizeof ehdr);
  /* Program headers are read in place: mmap aligns the file, and their
   * offset must be 8-aligned for a valid ELF64 file. */
  if (ehdr.e_ident[EI_CLASS] != ELFCLASS64 || ehdr.e_ident[EI_DATA] != ELFDATA2LSB ||
      ehdr.e_machine != machine || ehdr.e_phentsize != sizeof (Elf64_Phdr) ||
      ehdr.e_phoff % 8 != 0 ||
      !elf_range_ok (ehdr.e_phoff, (guint64) ehdr.e_phnum * sizeof (Elf64_Phdr), len))
    goto invalid;
  phdrs = (const Elf64_Phdr *) (data + ehdr.e_phoff);

  deps->needed = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < ehdr.e_phnum; i++)
    {
      const Elf64_Phdr *ph = &phdrs[i];

      if (!elf_range_ok (ph->p_offset, ph->p_filesz, len))
        goto invalid;
      if (ph->p_type == PT_INTERP && ph->p_filesz > 1 && data[ph->p_offset + ph->p_filesz - 1] == '\0')
        deps->interp = g_strdup (data + ph->p_offset);
      else if (ph->p_type == PT_DYNAMIC &&
               (ph->p_offset % 8 != 0 || !elf_read_dynamic (data, len, phdrs, ehdr.e_phnum, ph, deps->needed)))
        goto invalid;
    }

  return TRUE;

invalid:
  g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
               _("%s is not a valid program or library for this guest architecture"), path);
  return FALSE;
}

/* The loader's search path of a Debian system, the multiarch directory
 * first; returns the path inside @sysroot, or NULL. */
static char *
sysroot_find_library (const char *sysroot,
                      const char *triplet,
                      const char *soname)
{
  g_autofree char *lib_triplet = g_build_filename ("/lib", triplet, NULL);
  g_autofree char *usr_triplet = g_build_filename ("/usr/lib", triplet, NULL);
  const char * const dirs[] = { lib_triplet, usr_triplet, "/lib", "/usr/lib", "/lib64", "/usr/lib64" };

  for (guint i = 0; i < G_N_ELEMENTS (dirs); i++)
    {
      g_autofree char *path = g_build_filename (sysroot, dirs[i], soname, NULL);

      if (g_file_test (path, G_FILE_TEST_IS_REGULAR))
        return g_steal_pointer (&path);
    }

  return NULL;
}

/* The agent in @arch's sysroot and every library it loads, found as
 * `ldd` would, from the DT_NEEDED entries of each in turn. */
static gboolean
find_sysroot_agent (QleanHostAgent  *agent,
                    QleanArch        arch,
                    GError         **error)
{
  const QleanArchInfo *info = qlean_arch_get_info (arch);
  g_autofree char *tried = NULL;
  g_autofree char *sysroot = qlean_arch_find_sysroot (arch, &tried);
  g_autofree char *triplet = g_strdup_printf ("%s-linux-gnu", info->name);
  g_autofree char *loader_real = NULL;
  g_autoptr(GPtrArray) pending = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  if (sysroot != NULL)
    agent->qemu_ga = find_sysroot_qemu_ga (sysroot);
  if (agent->qemu_ga == NULL)
    {
      g_autofree char *env_name = g_ascii_strup (info->name, -1);

      g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
                   _("The image has no QEMU guest agent, and there is no %s one to give it: "
                     "it comes from the %s sysroot (looked in %s); make one with "
                     "“tools/setup.sh deps” as root, or point QLEAN_SYSROOT_%s at one that "
                     "has qemu-guest-agent:%s unpacked"),
                   info->name, info->debian_name, tried, env_name, info->debian_name);
      return FALSE;
    }

  agent->libs = g_ptr_array_new_with_free_func (g_free);
  agent->sonames = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (pending, g_strdup (agent->qemu_ga));
  for (guint p = 0; p < pending->len; p++)
    {
      const char *elf = g_ptr_array_index (pending, p);
      g_auto(ElfDeps) deps = { 0 };

      if (!elf_read_deps (elf, info->elf_machine, &deps, error))
        return FALSE;

      if (p == 0)
        {
          if (deps.interp == NULL)
            {
              g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
                           _("%s has no dynamic loader; Qlean needs a dynamically linked qemu-ga"),
                           agent->qemu_ga);
              return FALSE;
            }
          agent->loader = g_build_filename (sysroot, deps.interp, NULL);
          loader_real = realpath (agent->loader, NULL);
          if (loader_real == NULL)
            {
              g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
                           _("The loader %s of %s is missing in the sysroot %s; unpack libc6:%s "
                             "into it (tools/setup.sh deps does)"),
                           deps.interp, agent->qemu_ga, sysroot, info->debian_name);
              return FALSE;
            }
        }

      for (guint i = 0; i < deps.needed->len; i++)
        {
          const char *soname = g_ptr_array_index (deps.needed, i);
          g_autofree char *path = NULL;
          g_autofree char *real = NULL;

          if (!g_hash_table_add (seen, g_strdup (soname)))
            continue;
          path = sysroot_find_library (sysroot, triplet, soname);
          if (path == NULL)
            {
              g_set_error (error, QLEAN_IMAGE_ERROR, QLEAN_IMAGE_ERROR_MISSING_INPUT,
                           _("The library %s, which %s needs, is missing in the sysroot %s; "
                             "rerun “tools/setup.sh deps” with QLEAN_SYSROOT_REFRESH=1"),
                           soname, elf, sysroot);
              return FALSE;
            }
          /* The loader goes in under a name of its own. */
          real = realpath (path, NULL);
          if (g_strcmp0 (real, loader_real) != 0)
            {
              g_ptr_array_add (agent->sonames, g_strdup (soname));
              g_ptr_array_add (agent->libs, g_strdup (path));
            }
          g_ptr_array_add (pending, g_steal_pointer (&path));
        }
    }

  return TRUE;
}

/* See qlean-image-guestfs-private.h. */
gboolean
qlean_find_agent (QleanHostAgent  *agent,
                  QleanArch        arch,
                  GError         **error)
{
  if (qlean_arch_is_host (arch))
    return find_host_agent (agent, error);

  return find_sysroot_agent (agent, arch, error);
}
