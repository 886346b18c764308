/* tree-fixture.h: a local tree and tar members by hand, for the tree tests
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Runs @command on the host; it must succeed. Returns its stdout. */
char *tree_fixture_run         (const char *command);
void  tree_fixture_rm_rf       (const char *path);
/* A new temporary directory holding nested and empty directories, a
 * link, names with a space, a newline and a leading dash, a name and a
 * link target too long for a tar header, modes and set times. */
char *tree_fixture_make        (void);
/* Asserts that @b holds what @a holds, modes and times included. */
void  tree_fixture_assert_same (const char *a,
                                const char *b);
/* Appends a tar member (POSIX ustar header, mode 0644, time 0) and its
 * data: what no honest tar would write. */
void  tree_fixture_add_member  (GByteArray *tar,
                                const char *name,
                                char        type,
                                const char *linkname,
                                const char *data);
/* Appends the end marker. */
void  tree_fixture_end         (GByteArray *tar);

G_END_DECLS
