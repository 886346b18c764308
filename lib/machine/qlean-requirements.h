/* qlean-requirements.h: can this host run machines?
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#if !defined(QLEAN_INSIDE) && !defined(QLEAN_COMPILATION)
# error "Only <qlean/qlean.h> can be included directly."
#endif

#include <glib-object.h>

#include "qlean-arch.h"
#include "qlean-version-macros.h"

G_BEGIN_DECLS

/**
 * QleanRequirement:
 * @name: what was checked: `qemu`, `accel`, `kernel`, `busybox`,
 *   `qemu-ga`, `qemu-img`; for a foreign architecture also `sysroot`
 *   and `qlean-guest`
 * @ok: whether it is there and works
 * @required: whether machines cannot start without it
 * @detail: what was found: a path and version, or what is wrong
 * @hint: (nullable): the command that installs it, when it is missing
 *
 * One line of the host report made by qlean_check_requirements().
 *
 * Since: 0.1
 */
typedef struct
{
  char     *name;
  gboolean  ok;
  gboolean  required;
  char     *detail;
  char     *hint;
} QleanRequirement;

#define QLEAN_TYPE_REQUIREMENT (qlean_requirement_get_type ())

QLEAN_AVAILABLE_IN_0_1
GType             qlean_requirement_get_type (void) G_GNUC_CONST;
QLEAN_AVAILABLE_IN_0_1
QleanRequirement *qlean_requirement_copy     (const QleanRequirement *requirement);
QLEAN_AVAILABLE_IN_0_1
void              qlean_requirement_free     (QleanRequirement       *requirement);

QLEAN_AVAILABLE_IN_0_1
GPtrArray        *qlean_check_requirements   (const char             *qemu_binary);
QLEAN_AVAILABLE_IN_0_1
GPtrArray        *qlean_check_requirements_for_arch (const char      *qemu_binary,
                                                     QleanArch        arch);
QLEAN_AVAILABLE_IN_0_1
gboolean          qlean_requirements_met     (GPtrArray              *report);

QLEAN_AVAILABLE_IN_0_1
char             *qlean_get_run_base_dir     (GError                **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (QleanRequirement, qlean_requirement_free)

G_END_DECLS
