/* qlean-image-private.h: what machines need to know of an image
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include "qlean-image.h"

G_BEGIN_DECLS

/* The minimal image's build inputs, found on the host. */
typedef struct
{
  char *kernel;
  char *kernel_release;
  char *modules_dir;
  char *busybox;
  char *qemu_ga;
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
/* The kernel parameters the minimal image boots with. */
const char *qlean_minimal_cmdline     (void);

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (QleanMinimalInputs, qlean_minimal_inputs_clear)

G_END_DECLS
