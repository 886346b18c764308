/* qlean-qmp-error.h: errors of the QMP client
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
 * QLEAN_QMP_ERROR:
 *
 * Error domain of the QMP client. Errors in this domain are from the
 * #QleanQmpError enumeration. Timeouts are reported as
 * %G_IO_ERROR_TIMED_OUT and cancellation as %G_IO_ERROR_CANCELLED.
 *
 * Since: 0.1
 */
#define QLEAN_QMP_ERROR (qlean_qmp_error_quark ())

/**
 * QleanQmpError:
 * @QLEAN_QMP_ERROR_GENERIC: QEMU answered with the error class `GenericError`.
 * @QLEAN_QMP_ERROR_COMMAND_NOT_FOUND: QEMU does not know the command
 *   (`CommandNotFound`).
 * @QLEAN_QMP_ERROR_DEVICE_NOT_ACTIVE: `DeviceNotActive`.
 * @QLEAN_QMP_ERROR_DEVICE_NOT_FOUND: `DeviceNotFound`.
 * @QLEAN_QMP_ERROR_KVM_MISSING_CAP: `KVMMissingCap`.
 * @QLEAN_QMP_ERROR_PROTOCOL: the peer broke the protocol: malformed JSON,
 *   a message over the size cap, a missing greeting.
 * @QLEAN_QMP_ERROR_DISCONNECTED: the connection is closed, or closed while
 *   the call was pending.
 *
 * Error codes of #QLEAN_QMP_ERROR. For errors QEMU reports, the message
 * holds QEMU's description and names the command and error class.
 *
 * Since: 0.1
 */
typedef enum
{
  QLEAN_QMP_ERROR_GENERIC,
  QLEAN_QMP_ERROR_COMMAND_NOT_FOUND,
  QLEAN_QMP_ERROR_DEVICE_NOT_ACTIVE,
  QLEAN_QMP_ERROR_DEVICE_NOT_FOUND,
  QLEAN_QMP_ERROR_KVM_MISSING_CAP,
  QLEAN_QMP_ERROR_PROTOCOL,
  QLEAN_QMP_ERROR_DISCONNECTED,
} QleanQmpError;

/**
 * qlean_qmp_error_quark:
 *
 * The function behind #QLEAN_QMP_ERROR.
 *
 * Returns: the error domain of [class@QmpClient]
 *
 * Since: 0.1
 */
QLEAN_AVAILABLE_IN_0_1
GQuark qlean_qmp_error_quark (void);

G_END_DECLS
