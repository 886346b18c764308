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
 *
 * Since: 0.1
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
 * @QLEAN_MACHINE_ERROR_BAD_ARCHIVE: a machine archive given to
 *   qlean_machine_import() is not one, is truncated or damaged (a checksum
 *   does not match), holds what an archive must not (paths, links,
 *   devices, unknown members, a disk that names a backing or data file),
 *   or asks for what an import does not take from a stranger (host files
 *   as kernel or initrd; extra QEMU arguments without
 *   %QLEAN_IMPORT_FLAGS_TRUST_EXTRA_ARGS); nothing of it was kept.
 *
 * Error codes of #QLEAN_MACHINE_ERROR.
 *
 * Since: 0.1
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
  QLEAN_MACHINE_ERROR_BAD_ARCHIVE,
} QleanMachineError;

/**
 * QLEAN_IMAGE_ERROR:
 *
 * Error domain of [class@Image]. Errors in this domain are from the
 * #QleanImageError enumeration.
 *
 * Since: 0.1
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
 * @QLEAN_IMAGE_ERROR_HTTP: a server answered a download with an HTTP error;
 *   the message holds the status and the URL.
 * @QLEAN_IMAGE_ERROR_NETWORK: a download failed for want of a network: the
 *   host name did not resolve, the connection was refused, dropped or
 *   stalled; the message names the URL. An interrupted download resumes
 *   where it stopped on the next try.
 * @QLEAN_IMAGE_ERROR_CHECKSUM_MISMATCH: a downloaded or cached image does
 *   not have the checksum its distribution publishes (or the digest that
 *   was given); the file has been removed.
 * @QLEAN_IMAGE_ERROR_NO_CHECKSUM: the checksum file could not be read or
 *   does not list the image.
 * @QLEAN_IMAGE_ERROR_NO_SPACE: the disk holding the image cache is full;
 *   the message names the cache directory.
 * @QLEAN_IMAGE_ERROR_UNSUPPORTED_ARCH: the image is for an architecture
 *   Qlean does not know (it runs x86_64, aarch64 and riscv64 guests).
 * @QLEAN_IMAGE_ERROR_INVALID_SOURCE: a custom image source or digest is
 *   malformed, or a remote source comes without a digest; or an image
 *   file is not self-contained (it names a backing file or a data file,
 *   or is neither qcow2 nor raw), so QEMU would read other files of the
 *   host into the guest.
 * @QLEAN_IMAGE_ERROR_PREPARE_FAILED: the image could not be prepared for
 *   Qlean (no operating system found in it, no kernel, a libguestfs
 *   failure); the message says why.
 * @QLEAN_IMAGE_ERROR_BAD_SIGNATURE: the distribution signs its checksum
 *   file, and the signature does not verify with the distribution's key
 *   that Qlean ships; nothing was downloaded.
 *
 * Error codes of #QLEAN_IMAGE_ERROR.
 *
 * Since: 0.1
 */
typedef enum
{
  QLEAN_IMAGE_ERROR_FAILED,
  QLEAN_IMAGE_ERROR_MISSING_INPUT,
  QLEAN_IMAGE_ERROR_BUILD_FAILED,
  QLEAN_IMAGE_ERROR_NOT_FOUND,
  QLEAN_IMAGE_ERROR_HTTP,
  QLEAN_IMAGE_ERROR_NETWORK,
  QLEAN_IMAGE_ERROR_CHECKSUM_MISMATCH,
  QLEAN_IMAGE_ERROR_NO_CHECKSUM,
  QLEAN_IMAGE_ERROR_NO_SPACE,
  QLEAN_IMAGE_ERROR_UNSUPPORTED_ARCH,
  QLEAN_IMAGE_ERROR_INVALID_SOURCE,
  QLEAN_IMAGE_ERROR_PREPARE_FAILED,
  QLEAN_IMAGE_ERROR_BAD_SIGNATURE,
} QleanImageError;

/**
 * qlean_machine_error_quark:
 *
 * The function behind #QLEAN_MACHINE_ERROR.
 *
 * Returns: the error domain of [class@Machine]
 *
 * Since: 0.1
 */
QLEAN_AVAILABLE_IN_0_1
GQuark qlean_machine_error_quark (void);

/**
 * qlean_image_error_quark:
 *
 * The function behind #QLEAN_IMAGE_ERROR.
 *
 * Returns: the error domain of [class@Image]
 *
 * Since: 0.1
 */
QLEAN_AVAILABLE_IN_0_1
GQuark qlean_image_error_quark   (void);

G_END_DECLS
