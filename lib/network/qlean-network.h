/* qlean-network.h: a rootless virtual switch that machines plug into
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#if !defined(QLEAN_INSIDE) && !defined(QLEAN_COMPILATION)
# error "Only <qlean/qlean.h> can be included directly."
#endif

#include <gio/gio.h>

#include "qlean-version-macros.h"

G_BEGIN_DECLS

/**
 * QLEAN_NETWORK_ERROR:
 *
 * Error domain of [class@Network]. Errors in this domain are from the
 * #QleanNetworkError enumeration.
 *
 * Since: 0.1
 */
#define QLEAN_NETWORK_ERROR (qlean_network_error_quark ())

/**
 * QleanNetworkError:
 * @QLEAN_NETWORK_ERROR_FAILED: a failure with no more specific code.
 * @QLEAN_NETWORK_ERROR_SWITCH_NOT_FOUND: `vde_switch` (or, for NAT,
 *   `vde_plug` with its slirp module) is not installed; the message names
 *   the package to install.
 * @QLEAN_NETWORK_ERROR_SWITCH_FAILED: the switch or its NAT plug exited or
 *   did not answer; the message holds what it printed.
 * @QLEAN_NETWORK_ERROR_INVALID_SUBNET: the subnet is not an IPv4 CIDR with
 *   a prefix between 8 and 29.
 * @QLEAN_NETWORK_ERROR_NAME_IN_USE: another machine with that name is
 *   already attached to the network.
 * @QLEAN_NETWORK_ERROR_FULL: every address of the subnet is taken.
 * @QLEAN_NETWORK_ERROR_NOT_RUNNING: the call needs a running switch.
 * @QLEAN_NETWORK_ERROR_UNKNOWN_MACHINE: no machine of that name is
 *   attached to the network.
 * @QLEAN_NETWORK_ERROR_INVALID_NAME: a machine name that cannot be a host
 *   name (letters, digits and inner hyphens, at most 63 characters).
 *
 * Error codes of #QLEAN_NETWORK_ERROR.
 *
 * Since: 0.1
 */
typedef enum
{
  QLEAN_NETWORK_ERROR_FAILED,
  QLEAN_NETWORK_ERROR_SWITCH_NOT_FOUND,
  QLEAN_NETWORK_ERROR_SWITCH_FAILED,
  QLEAN_NETWORK_ERROR_INVALID_SUBNET,
  QLEAN_NETWORK_ERROR_NAME_IN_USE,
  QLEAN_NETWORK_ERROR_FULL,
  QLEAN_NETWORK_ERROR_NOT_RUNNING,
  QLEAN_NETWORK_ERROR_UNKNOWN_MACHINE,
  QLEAN_NETWORK_ERROR_INVALID_NAME,
} QleanNetworkError;

/**
 * qlean_network_error_quark:
 *
 * The function behind #QLEAN_NETWORK_ERROR.
 *
 * Returns: the error domain of [class@Network]
 *
 * Since: 0.1
 */
QLEAN_AVAILABLE_IN_0_1
GQuark qlean_network_error_quark (void);

#define QLEAN_TYPE_NETWORK (qlean_network_get_type ())

QLEAN_AVAILABLE_IN_0_1
G_DECLARE_FINAL_TYPE (QleanNetwork, qlean_network, QLEAN, NETWORK, GObject)

QLEAN_AVAILABLE_IN_0_1
QleanNetwork *qlean_network_new             (void);
QLEAN_AVAILABLE_IN_0_1
QleanNetwork *qlean_network_new_full        (const char          *name,
                                             const char          *subnet,
                                             gboolean             nat,
                                             GError             **error);
QLEAN_AVAILABLE_IN_0_1
QleanNetwork *qlean_network_new_for_socket  (const char          *name,
                                             const char          *subnet,
                                             const char          *socket_path,
                                             GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_network_add_host        (QleanNetwork        *self,
                                             const char          *machine_name,
                                             const char          *address,
                                             GError             **error);

QLEAN_AVAILABLE_IN_0_1
const char   *qlean_network_get_name        (QleanNetwork        *self);
QLEAN_AVAILABLE_IN_0_1
const char   *qlean_network_get_subnet      (QleanNetwork        *self);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_network_get_nat         (QleanNetwork        *self);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_network_is_running      (QleanNetwork        *self);
QLEAN_AVAILABLE_IN_0_1
char         *qlean_network_dup_socket_path (QleanNetwork        *self);
QLEAN_AVAILABLE_IN_0_1
GPid          qlean_network_get_switch_pid  (QleanNetwork        *self);
QLEAN_AVAILABLE_IN_0_1
char         *qlean_network_dup_address     (QleanNetwork        *self,
                                             const char          *machine_name);
QLEAN_AVAILABLE_IN_0_1
char         *qlean_network_dup_mac_address (QleanNetwork        *self,
                                             const char          *machine_name);

QLEAN_AVAILABLE_IN_0_1
void          qlean_network_start_async     (QleanNetwork        *self,
                                             GCancellable        *cancellable,
                                             GAsyncReadyCallback  callback,
                                             gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_network_start_finish    (QleanNetwork        *self,
                                             GAsyncResult        *result,
                                             GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_network_start           (QleanNetwork        *self,
                                             GCancellable        *cancellable,
                                             GError             **error);

QLEAN_AVAILABLE_IN_0_1
void          qlean_network_stop_async      (QleanNetwork        *self,
                                             GCancellable        *cancellable,
                                             GAsyncReadyCallback  callback,
                                             gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_network_stop_finish     (QleanNetwork        *self,
                                             GAsyncResult        *result,
                                             GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_network_stop            (QleanNetwork        *self,
                                             GCancellable        *cancellable,
                                             GError             **error);

QLEAN_AVAILABLE_IN_0_1
void          qlean_network_partition_async (QleanNetwork        *self,
                                             const char * const  *side_a,
                                             const char * const  *side_b,
                                             GCancellable        *cancellable,
                                             GAsyncReadyCallback  callback,
                                             gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_network_partition_finish (QleanNetwork       *self,
                                             GAsyncResult        *result,
                                             GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_network_partition       (QleanNetwork        *self,
                                             const char * const  *side_a,
                                             const char * const  *side_b,
                                             GCancellable        *cancellable,
                                             GError             **error);

QLEAN_AVAILABLE_IN_0_1
void          qlean_network_heal_async      (QleanNetwork        *self,
                                             GCancellable        *cancellable,
                                             GAsyncReadyCallback  callback,
                                             gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_network_heal_finish     (QleanNetwork        *self,
                                             GAsyncResult        *result,
                                             GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean      qlean_network_heal            (QleanNetwork        *self,
                                             GCancellable        *cancellable,
                                             GError             **error);

G_END_DECLS
