/* qlean-qga-error.h: errors of the guest agent client
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#if !defined(QLEAN_INSIDE) && !defined(QLEAN_COMPILATION)
# error "Only <qlean/qlean.h> can be included directly."
#endif

#include <glib.h>

#include "qlean-version-macros.h"

G_BEGIN_DECLS

/**
 * QLEAN_QGA_ERROR:
 *
 * Error domain of the guest agent client. Errors in this domain are from
 * the #QleanQgaError enumeration. Timeouts are reported as
 * %G_IO_ERROR_TIMED_OUT and cancellation as %G_IO_ERROR_CANCELLED.
 *
 * Since: 0.1
 */
#define QLEAN_QGA_ERROR (qlean_qga_error_quark ())

/**
 * QleanQgaError:
 * @QLEAN_QGA_ERROR_FAILED: the agent answered with an error
 *   (`GenericError`); the message holds its description.
 * @QLEAN_QGA_ERROR_COMMAND_NOT_FOUND: the agent does not know the command.
 * @QLEAN_QGA_ERROR_COMMAND_DISABLED: the agent knows the command but was
 *   started with it disabled (`--block-rpcs`, or not in `--allow-rpcs`).
 * @QLEAN_QGA_ERROR_PROTOCOL: the agent broke the protocol: malformed JSON,
 *   a reply over the size cap, a reply of the wrong shape.
 * @QLEAN_QGA_ERROR_DISCONNECTED: the channel to the agent is closed.
 *
 * Error codes of #QLEAN_QGA_ERROR.
 *
 * Since: 0.1
 */
typedef enum
{
  QLEAN_QGA_ERROR_FAILED,
  QLEAN_QGA_ERROR_COMMAND_NOT_FOUND,
  QLEAN_QGA_ERROR_COMMAND_DISABLED,
  QLEAN_QGA_ERROR_PROTOCOL,
  QLEAN_QGA_ERROR_DISCONNECTED,
} QleanQgaError;

/**
 * qlean_qga_error_quark:
 *
 * The function behind #QLEAN_QGA_ERROR.
 *
 * Returns: the error domain of [class@QgaClient]
 *
 * Since: 0.1
 */
QLEAN_AVAILABLE_IN_0_1
GQuark qlean_qga_error_quark (void);

G_END_DECLS
