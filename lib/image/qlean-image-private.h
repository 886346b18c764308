/* qlean-image-private.h: what machines need to know of an image
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-image-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include "qlean-image.h"

G_BEGIN_DECLS

/* The minimal image's build inputs, found on the host, or for another
 * architecture than the host's in that architecture's sysroot. */
typedef struct
{
  QleanArch arch;   /* set by the caller; 0 is x86-64 */
  char *sysroot;    /* NULL for the host's own architecture */
  char *kernel;
  char *kernel_release;
  char *modules_dir;
  char *busybox;
  char *qemu_ga;
  char *guest;      /* qlean-guest, or NULL: then exec falls back to the agent */
  gboolean want_9p; /* set by the caller: a kernel with 9p, for shared folders */
} QleanMinimalInputs;

void      qlean_minimal_inputs_clear  (QleanMinimalInputs *inputs);
gboolean  qlean_minimal_find_inputs   (QleanMinimalInputs *inputs,
                                       GError            **error);
/* Builds (or finds in the cache) the initramfs; returns its path, and in
 * @kernel the kernel to boot with it (uncompressed when possible). */
char     *qlean_minimal_build         (const QleanMinimalInputs *inputs,
                                       char                    **kernel,
                                       GCancellable             *cancellable,
                                       GError                  **error);
/* The static qlean-guest program to put into images, or NULL. */
char     *qlean_find_guest_program    (void);
/* The same, built for @arch (cross-compiled for another architecture
 * than the host's), or NULL. */
char     *qlean_find_guest_program_for_arch (QleanArch arch);
/* A machine with shared folders (9p) calls this before preparing the
 * image: a minimal image then also builds its share boot, from a kernel
 * that has 9p (Debian's cloud kernel has none). Sticky. */
void      qlean_image_want_share_boot (QleanImage  *self);
/* The kernel and initramfs of the share boot, once prepared; FALSE (and
 * nothing set) for other images, whose own kernel must have 9p. */
gboolean  qlean_image_get_share_boot  (QleanImage  *self,
                                       const char **kernel,
                                       const char **initrd);
/* The kernel parameters the minimal image boots with. */
const char *qlean_minimal_cmdline     (QleanArch arch);

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (QleanMinimalInputs, qlean_minimal_inputs_clear)

/* Distribution and custom images (qlean-image-source.c). */
/* The cache root for this image's downloads and preparations, instead of
 * $XDG_CACHE_HOME/qlean; tests use it to keep their caches apart. */
void              qlean_image_set_cache_dir   (QleanImage  *self,
                                               const char  *dir);
/* Whether the prepared image runs cloud-init at boot, so that its first
 * boot (qlean_machine_init) needs a seed and should wait for it. FALSE
 * for the minimal image and until prepared. A normal boot (spawn) of
 * such an image should add QLEAN_IMAGE_NORMAL_BOOT_CMDLINE to the kernel
 * command line: cloud-init then does not run at all (measured: boot done
 * at 16 s instead of 45 s under TCG), and the first boot's hostname and
 * users stay. Without it, cloud-init keeps the first boot's instance
 * (manual_cache_clean in the injected 90-qlean.cfg) but runs every
 * stage again. */
#define QLEAN_IMAGE_NORMAL_BOOT_CMDLINE "cloud-init=disabled"

gboolean          qlean_image_has_cloud_init  (QleanImage  *self);
/* Writes the NoCloud seed of @machine_name's first boot to @path: an
 * ISO 9660 image labelled "cidata" holding meta-data (a fresh instance-id
 * and local-hostname = @machine_name) and user-data (#cloud-config that
 * sets the hostname and skips what a throwaway test machine does not
 * need: SSH keys, locale, package updates). Attach it read-only, e.g.
 * as a virtio disk. Blocks for a fraction of a second (xorriso). */
gboolean          qlean_image_write_seed      (QleanImage  *image,
                                               const char  *machine_name,
                                               const char  *path,
                                               GError     **error);

/* Disk files that Qlean did not write itself: a custom image, an
 * archived disk, a download. Reads @path's header with `qemu-img info`
 * (bounded in time, memory and output, opening nothing else) and refuses
 * (QLEAN_IMAGE_ERROR_INVALID_SOURCE) an image that would make QEMU or
 * qemu-img open another file of the host: one that names a backing file
 * or an external data file, or that is neither qcow2 nor raw; one that
 * qemu-img cannot read is QLEAN_IMAGE_ERROR_PREPARE_FAILED. @format:
 * read it as this, or NULL to probe. Returns its format, or NULL. */
char             *qlean_image_check_disk_file (const char    *path,
                                               const char    *format,
                                               GCancellable  *cancellable,
                                               GError       **error);
/* The format of the prepared image's disk ("qcow2", "raw"), for the
 * overlays that name it; NULL without a disk. */
const char       *qlean_image_get_disk_format (QleanImage    *self);

G_END_DECLS
