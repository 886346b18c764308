/* qlean-version-macros.h: symbol visibility and availability annotations
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#if !defined(QLEAN_INSIDE) && !defined(QLEAN_COMPILATION)
# error "Only <qlean/qlean.h> can be included directly."
#endif

#include <glib.h>

#include "qlean-version.h"

#ifndef _QLEAN_EXTERN
# define _QLEAN_EXTERN __attribute__((visibility("default"))) extern
#endif

/**
 * QLEAN_AVAILABLE_IN_0_1:
 *
 * Marks a symbol that appeared in Qlean 0.1. Every public symbol carries
 * the macro of the release that added it, so that with
 * `-fvisibility=hidden` the ABI is exactly what the headers declare, and
 * so that a later release can warn about symbols newer than the version
 * an application asks for.
 *
 * Since: 0.1
 */
#define QLEAN_AVAILABLE_IN_0_1 _QLEAN_EXTERN
