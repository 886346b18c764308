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
/* As a start that loads a state prepares: map its template (and load
 * its device state only), or make it, or neither. */
void     qlean_machine_state_template_prepare (QleanMachine        *self,
                                               ResolvedSpec        *resolved);
/* Worker thread, once the state is loaded and before the guest runs:
 * TRUE when this start makes the template; it then sends QMP's `cont`
 * itself, with @cont_cb and a reference to @self. */
gboolean qlean_machine_state_template_make    (QleanMachine        *self,
                                               GAsyncReadyCallback  cont_cb);
/* Removes the template of @state, if any (it replaces or deletes @state). */
void     qlean_machine_state_template_remove  (const char          *state);

G_END_DECLS
