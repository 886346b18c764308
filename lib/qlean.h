/* qlean.h: throwaway QEMU machines for tests and tools
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#define QLEAN_INSIDE

#include "qlean-version.h"
#include "qlean-version-macros.h"
#include "qlean-enums.h"
#include "qlean-error.h"
#include "qlean-arch.h"
#include "qlean-qmp-error.h"
#include "qlean-qmp-client.h"
#include "qlean-qga-error.h"
#include "qlean-qga-client.h"
#include "qlean-exec-result.h"
#include "qlean-guest-process.h"
#include "qlean-guest-launcher.h"
#include "qlean-image.h"
#include "qlean-distro.h"
#include "qlean-machine-config.h"
#include "qlean-machine.h"
#include "qlean-machine-fs.h"
#include "qlean-machine-archive.h"
#include "qlean-machine-snapshot.h"
#include "qlean-network.h"
#include "qlean-pool.h"
#include "qlean-requirements.h"
#include "qlean-wait.h"

#undef QLEAN_INSIDE
