/* qlean-pool.h: machines that live, and talk, together
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#if !defined(QLEAN_INSIDE) && !defined(QLEAN_COMPILATION)
# error "Only <qlean/qlean.h> can be included directly."
#endif

#include <gio/gio.h>

#include "qlean-image.h"
#include "qlean-machine-config.h"
#include "qlean-machine.h"
#include "qlean-network.h"
#include "qlean-version-macros.h"

G_BEGIN_DECLS

/**
 * QLEAN_POOL_ERROR:
 *
 * Error domain of [class@Pool]. Errors in this domain are from the
 * #QleanPoolError enumeration.
 *
 * Since: 0.1
 */
#define QLEAN_POOL_ERROR (qlean_pool_error_quark ())

/**
 * QleanPoolError:
 * @QLEAN_POOL_ERROR_FAILED: a failure with no more specific code.
 * @QLEAN_POOL_ERROR_DUPLICATE_NAME: the pool already has a machine of that
 *   name; the message names it.
 * @QLEAN_POOL_ERROR_NOT_FOUND: the pool has no machine of that name; the
 *   message names it and lists the machines it has.
 * @QLEAN_POOL_ERROR_MACHINES_FAILED: one or more machines failed to start
 *   or stop; the message names each one and says why.
 *
 * Error codes of #QLEAN_POOL_ERROR.
 *
 * Since: 0.1
 */
typedef enum
{
  QLEAN_POOL_ERROR_FAILED,
  QLEAN_POOL_ERROR_DUPLICATE_NAME,
  QLEAN_POOL_ERROR_NOT_FOUND,
  QLEAN_POOL_ERROR_MACHINES_FAILED,
} QleanPoolError;

/**
 * qlean_pool_error_quark:
 *
 * The function behind #QLEAN_POOL_ERROR.
 *
 * Returns: the error domain of [class@Pool]
 *
 * Since: 0.1
 */
QLEAN_AVAILABLE_IN_0_1
GQuark qlean_pool_error_quark (void);

#define QLEAN_TYPE_POOL (qlean_pool_get_type ())

QLEAN_AVAILABLE_IN_0_1
G_DECLARE_FINAL_TYPE (QleanPool, qlean_pool, QLEAN, POOL, GObject)

QLEAN_AVAILABLE_IN_0_1
QleanPool    *qlean_pool_new                (void);
QLEAN_AVAILABLE_IN_0_1
QleanPool    *qlean_pool_new_with_network   (QleanNetwork        *network);

QLEAN_AVAILABLE_IN_0_1
void          qlean_pool_set_golden         (QleanPool           *self,
                                             gboolean             golden);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_pool_get_golden         (QleanPool           *self);
QLEAN_AVAILABLE_IN_0_1
QleanNetwork *qlean_pool_get_network        (QleanPool           *self);

QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_pool_add                (QleanPool           *self,
                                             const char          *name,
                                             QleanImage          *image,
                                             QleanMachineConfig  *config,
                                             GError             **error);
QLEAN_AVAILABLE_IN_0_1
QleanMachine *qlean_pool_get                (QleanPool           *self,
                                             const char          *name,
                                             GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_pool_remove             (QleanPool           *self,
                                             const char          *name,
                                             GError             **error);

QLEAN_AVAILABLE_IN_0_1
void          qlean_pool_init_all_async     (QleanPool           *self,
                                             GCancellable        *cancellable,
                                             GAsyncReadyCallback  callback,
                                             gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_pool_init_all_finish    (QleanPool           *self,
                                             GAsyncResult        *result,
                                             GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_pool_init_all           (QleanPool           *self,
                                             GCancellable        *cancellable,
                                             GError             **error);

QLEAN_AVAILABLE_IN_0_1
void          qlean_pool_spawn_all_async    (QleanPool           *self,
                                             GCancellable        *cancellable,
                                             GAsyncReadyCallback  callback,
                                             gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_pool_spawn_all_finish   (QleanPool           *self,
                                             GAsyncResult        *result,
                                             GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_pool_spawn_all          (QleanPool           *self,
                                             GCancellable        *cancellable,
                                             GError             **error);

QLEAN_AVAILABLE_IN_0_1
void          qlean_pool_shutdown_all_async (QleanPool           *self,
                                             GCancellable        *cancellable,
                                             GAsyncReadyCallback  callback,
                                             gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_pool_shutdown_all_finish (QleanPool          *self,
                                             GAsyncResult        *result,
                                             GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_pool_shutdown_all       (QleanPool           *self,
                                             GCancellable        *cancellable,
                                             GError             **error);

QLEAN_AVAILABLE_IN_0_1
void          qlean_pool_prepare_spares_async  (QleanPool           *self,
                                                GCancellable        *cancellable,
                                                GAsyncReadyCallback  callback,
                                                gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_pool_prepare_spares_finish (QleanPool           *self,
                                                GAsyncResult        *result,
                                                GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_pool_prepare_spares     (QleanPool           *self,
                                             GCancellable        *cancellable,
                                             GError             **error);

QLEAN_AVAILABLE_IN_0_1
void          qlean_pool_partition_async    (QleanPool           *self,
                                             const char * const  *side_a,
                                             const char * const  *side_b,
                                             GCancellable        *cancellable,
                                             GAsyncReadyCallback  callback,
                                             gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_pool_partition_finish   (QleanPool           *self,
                                             GAsyncResult        *result,
                                             GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_pool_partition          (QleanPool           *self,
                                             const char * const  *side_a,
                                             const char * const  *side_b,
                                             GCancellable        *cancellable,
                                             GError             **error);

QLEAN_AVAILABLE_IN_0_1
void          qlean_pool_heal_async         (QleanPool           *self,
                                             GCancellable        *cancellable,
                                             GAsyncReadyCallback  callback,
                                             gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_pool_heal_finish        (QleanPool           *self,
                                             GAsyncResult        *result,
                                             GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_pool_heal               (QleanPool           *self,
                                             GCancellable        *cancellable,
                                             GError             **error);

G_END_DECLS
