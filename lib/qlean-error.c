/* qlean-error.c: error domains of machines and images
 *
 * The quarks live here, below every folder of lib/, so that code which
 * only reports a machine or image error (the host checks, the archive
 * reader) does not depend on the machine or image code.
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include "qlean-error.h"

G_DEFINE_QUARK (qlean-machine-error-quark, qlean_machine_error)
G_DEFINE_QUARK (qlean-image-error-quark, qlean_image_error)
