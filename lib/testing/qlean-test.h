/* qlean-test.h: helpers for g_test suites that use machines
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

/* Like the umbrella header, this one is included directly:
 * #include <qlean/qlean-test.h> brings in all of Qlean. */
#include "qlean.h"

G_BEGIN_DECLS

/**
 * QleanTestFixture:
 * @machine: (nullable): the test binary's shared machine, ready and
 *   reset, or %NULL when the test was skipped or failed before it ran
 *
 * The fixture of tests added with `qlean_test_add_func()`, or with
 * g_test_add() and `qlean_test_fixture_setup()` /
 * `qlean_test_fixture_teardown()`.
 *
 * Since: 0.1
 */
typedef struct
{
  QleanMachine *machine;
} QleanTestFixture;

QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_test_skip_unless_available (void);
QLEAN_AVAILABLE_IN_0_1
QleanMachine *qlean_test_get_machine           (void);
QLEAN_AVAILABLE_IN_0_1
void          qlean_test_watch_machine         (QleanMachine     *machine);

QLEAN_AVAILABLE_IN_0_1
void          qlean_test_set_reset             (gboolean          reset);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_test_get_reset             (void);

QLEAN_AVAILABLE_IN_0_1
char         *qlean_test_get_artifacts_dir     (void);
QLEAN_AVAILABLE_IN_0_1
char         *qlean_test_save_artifacts        (const char       *reason);

QLEAN_AVAILABLE_IN_0_1
void          qlean_test_fixture_setup         (QleanTestFixture *fixture,
                                                gconstpointer     user_data);
QLEAN_AVAILABLE_IN_0_1
void          qlean_test_fixture_teardown      (QleanTestFixture *fixture,
                                                gconstpointer     user_data);
QLEAN_AVAILABLE_IN_0_1
void          qlean_test_add_func              (const char       *testpath,
                                                GTestFunc         test_func);

G_END_DECLS
