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

/* Every public symbol carries this, so that with -fvisibility=hidden the
 * ABI is exactly what the headers declare. */
#define QLEAN_AVAILABLE_IN_ALL _QLEAN_EXTERN
#define QLEAN_AVAILABLE_IN_0_1 _QLEAN_EXTERN
