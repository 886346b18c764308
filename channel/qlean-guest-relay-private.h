/* qlean-guest-relay-private.h: serving a machine's qlean-guest to other processes
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-guest-relay-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include <gio/gio.h>

#include "qlean-guest-channel-private.h"

G_BEGIN_DECLS

/* Listens on a unix socket and speaks the qlean-guest protocol to every
 * client, relaying each request to @channel under a stream id of its own:
 * so several processes (the `qlean exec` of a machine that `qlean start`
 * owns) share one data port, which QEMU lets only one peer hold. Worker
 * thread only. */
#define QLEAN_TYPE_GUEST_RELAY (qlean_guest_relay_get_type ())
G_DECLARE_FINAL_TYPE (QleanGuestRelay, qlean_guest_relay, QLEAN, GUEST_RELAY, GObject)

QleanGuestRelay *qlean_guest_relay_new   (QleanGuestChannel  *channel,
                                          const char         *socket_path,
                                          GError            **error);
void             qlean_guest_relay_close (QleanGuestRelay    *self);

G_END_DECLS
