/* test-files.h: what test-files.c shares with test-files-tree.c
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <qlean/qlean.h>

G_BEGIN_DECLS

/* The machine the file tests share, started on first use; NULL (the
 * test skipped) where there is no QEMU. */
QleanMachine *test_files_machine        (void);
/* Whether this run is over the stock guest agent alone (files-agent). */
gboolean      test_files_on_agent       (void);
/* Adds the tree tests (test-files-tree.c). */
void          test_files_tree_add_tests (void);

G_END_DECLS
