/* qlean-machine-state-template-private.h: memory templates of saved states
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-machine-state-template-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include "qlean-machine-object-private.h"

G_BEGIN_DECLS

/* qlean-machine-boot-state.c: a template's files (`<state>.ram`) and
 * the migration capability that leaves its RAM out of a state. */
/* Adds what identifies the file at @path (its name, inode, size and
 * mtime) to @checksum: keys of saved states change with the files. */
void     qlean_machine_checksum_file_identity (GChecksum      *checksum,
                                               const char     *path);
gboolean qlean_machine_template_usable     (const char           *state,
                                            guint                 memory_mib,
                                            char                **reason);
char    *qlean_machine_template_make_work  (const char           *state,
                                            guint                 memory_mib,
                                            char                **reason);
gboolean qlean_machine_template_store      (const char           *work,
                                            const char           *state,
                                            gboolean              durable,
                                            GError              **error);
void     qlean_machine_set_ignore_shared   (QleanQmpClient       *qmp,
                                            gboolean              on,
                                            GAsyncReadyCallback   callback,
                                            gpointer              user_data);

/* qlean-machine-state-template.c */

/* The next start of @self (which loads a state, see
 * qlean_machine_set_incoming()) makes that state's template when it has
 * none: for states that are loaded more than once (snapshots). */
void     qlean_machine_set_incoming_template  (QleanMachine        *self,
                                               gboolean             make);
/* The next start of @self maps, or makes, the template of its state in
 * the user's cache, shared with every start of this host whose state
 * has the same @key (a digest of validated content, never a name): for
 * the same state loaded by machines that share nothing else (imports of
 * one archive). */
void     qlean_machine_set_incoming_shared_template (QleanMachine  *self,
                                                     const char    *key);
/* As a start that loads a state prepares: map its template (and load
 * its device state only), or make it, or neither. */
void     qlean_machine_state_template_prepare (QleanMachine        *self,
                                               ResolvedSpec        *resolved);
/* Worker thread, once the state is loaded and before the guest runs
 * (it notes that a mapped template loaded): TRUE when this start makes
 * the template; it then sends QMP's `cont` itself, with @cont_cb and a
 * reference to @self. */
gboolean qlean_machine_state_template_make    (QleanMachine        *self,
                                               GAsyncReadyCallback  cont_cb);
/* Whether the leftover file @name, named `…MARKER<pid>…`, was left by
 * a process that is gone. */
gboolean qlean_machine_leftover_is_orphan     (const char          *name,
                                               const char          *marker);
/* Removes the template of @state, if any (it replaces or deletes @state). */
void     qlean_machine_state_template_remove  (const char          *state);

G_END_DECLS
