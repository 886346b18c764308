/* bench-exec-steps.h: where the time of one `true` round trip goes
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <qlean/qlean.h>

G_BEGIN_DECLS

/* Boots a machine of @image that traces its EXECs and prints, for @n
 * round trips each, the host's and the guest's steps of `sh -c true`
 * and `/bin/true` sent on the channel by hand, and the same through
 * qlean_machine_exec(). */
void bench_exec_steps (QleanImage *image,
                       int         n);

G_END_DECLS
