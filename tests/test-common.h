/* test-common.h: what the integration tests on real QEMU share
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <qlean/qlean.h>

G_BEGIN_DECLS

/* Whether qemu-system-x86_64 is installed; skips the test, saying what
 * to install, when it is not. */
gboolean         test_have_qemu            (void);

/* One running machine of the default image for the tests of a binary
 * that only run commands in it: booted on the first call, checked to be
 * running on every call. NULL (the test skipped) without QEMU. */
QleanMachine    *test_shared_machine       (void);

/* Shuts the shared machine down, if one was booted; for the end of main. */
void             test_shared_machine_end   (void);

/* Runs @command with /bin/sh -c; it must run, whatever its status. */
QleanExecResult *test_run                  (QleanMachine *machine,
                                            const char   *command);

/* @command's stdout; the command must succeed, else the test fails
 * with its status and stderr. */
char            *test_run_out              (QleanMachine *machine,
                                            const char   *command);

/* The same, without leading and trailing white space. */
char            *test_run_text             (QleanMachine *machine,
                                            const char   *command);

/* @machine's QEMU command line, its arguments joined by spaces. */
char            *test_qemu_cmdline         (QleanMachine *machine);

/* Starts a guest process that counts in /root/counter, ten times a
 * second, and waits until it moves: a copy of the machine (a clone, a
 * restore) runs it on, which test_wait_counter_moves() then sees. */
void             test_start_counter        (QleanMachine *machine);
/* Waits up to 10 s for the counter to move, failing the test if not. */
void             test_wait_counter_moves   (QleanMachine *machine);

/* Qlean logs with the structured API, which g_test_expect_message()
 * does not see: test_log_capture(), at the start of main, keeps the
 * messages of the "qlean" domain too, and test_logged() says whether
 * one matching @pattern came since its last call. */
void             test_log_capture          (void);
/* The same, with the debug messages of the domain too (which say, for
 * example, which way a step went). */
void             test_log_capture_debug    (void);
gboolean         test_logged               (const char   *pattern);

G_END_DECLS
