/* test-exec.h: what test-exec.c shares with test-exec-cli.c
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <qlean/qlean.h>

G_BEGIN_DECLS

/* Whether this run is over the stock guest agent alone (exec-agent):
 * then the test is skipped for @reason, and TRUE. */
gboolean  skip_on_agent  (const char *reason);
double    seconds_since  (gint64      start);
/* @size random bytes from @seed. */
GBytes   *random_bytes   (gsize       size,
                          guint32     seed);
/* The `qlean start/exec/ls/stop` cycle (test-exec-cli.c). */
void      test_cli_cycle (void);

G_END_DECLS
