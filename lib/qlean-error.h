/* qlean-error.h: error domains of machines and images
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
 * QLEAN_MACHINE_ERROR:
 *
 * Error domain of [class@Machine]. Errors in this domain are from the
 * #QleanMachineError enumeration. Timeouts of guest commands are
 * %G_IO_ERROR_TIMED_OUT, cancellation %G_IO_ERROR_CANCELLED, and file
 * operations in the guest report %G_IO_ERROR codes.
 */
#define QLEAN_MACHINE_ERROR (qlean_machine_error_quark ())

/**
 * QleanMachineError:
 * @QLEAN_MACHINE_ERROR_FAILED: a failure with no more specific code.
 * @QLEAN_MACHINE_ERROR_INVALID_STATE: the call is not allowed in the
 *   machine's current state (exec on a stopped machine, spawn twice); the
 *   message names the state.
 * @QLEAN_MACHINE_ERROR_QEMU_NOT_FOUND: the QEMU binary could not be found
 *   or run; the message names the path and the package to install.
 * @QLEAN_MACHINE_ERROR_QEMU_EXITED: QEMU exited while the machine was
 *   starting; the message holds its exit status and the end of its
 *   standard error.
 * @QLEAN_MACHINE_ERROR_AGENT_TIMEOUT: the guest agent did not answer
 *   within the boot timeout; the message holds the last lines of the
 *   serial console.
 * @QLEAN_MACHINE_ERROR_CRASHED: QEMU died or the guest panicked while the
 *   call was running.
 * @QLEAN_MACHINE_ERROR_INVALID_CONFIG: the configuration cannot work (a
 *   kernel path that does not exist, zero cores).
 * @QLEAN_MACHINE_ERROR_COMMAND_NOT_FOUND: the program to run does not
 *   exist in the guest, or is not executable.
 *
 * Error codes of #QLEAN_MACHINE_ERROR.
 */
typedef enum
{
  QLEAN_MACHINE_ERROR_FAILED,
  QLEAN_MACHINE_ERROR_INVALID_STATE,
  QLEAN_MACHINE_ERROR_QEMU_NOT_FOUND,
  QLEAN_MACHINE_ERROR_QEMU_EXITED,
  QLEAN_MACHINE_ERROR_AGENT_TIMEOUT,
  QLEAN_MACHINE_ERROR_CRASHED,
  QLEAN_MACHINE_ERROR_INVALID_CONFIG,
  QLEAN_MACHINE_ERROR_COMMAND_NOT_FOUND,
} QleanMachineError;

/**
 * QLEAN_IMAGE_ERROR:
 *
 * Error domain of [class@Image]. Errors in this domain are from the
 * #QleanImageError enumeration.
 */
#define QLEAN_IMAGE_ERROR (qlean_image_error_quark ())

/**
 * QleanImageError:
 * @QLEAN_IMAGE_ERROR_FAILED: a failure with no more specific code.
 * @QLEAN_IMAGE_ERROR_MISSING_INPUT: something the image is built from is
 *   missing on the host (a kernel, busybox, qemu-ga); the message names it
 *   and the package that provides it.
 * @QLEAN_IMAGE_ERROR_BUILD_FAILED: building the image failed; the message
 *   holds the builder's output.
 * @QLEAN_IMAGE_ERROR_NOT_FOUND: an image file or catalog entry does not
 *   exist.
 *
 * Error codes of #QLEAN_IMAGE_ERROR.
 */
typedef enum
{
  QLEAN_IMAGE_ERROR_FAILED,
  QLEAN_IMAGE_ERROR_MISSING_INPUT,
  QLEAN_IMAGE_ERROR_BUILD_FAILED,
  QLEAN_IMAGE_ERROR_NOT_FOUND,
} QleanImageError;

QLEAN_AVAILABLE_IN_ALL
GQuark qlean_machine_error_quark (void);
QLEAN_AVAILABLE_IN_ALL
GQuark qlean_image_error_quark   (void);

G_END_DECLS
