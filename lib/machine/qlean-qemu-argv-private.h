/* qlean-qemu-argv-private.h: the QEMU command line of a machine
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-qemu-argv-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include <glib.h>

#include "qlean-arch-private.h"

G_BEGIN_DECLS

/* A host folder shared with the guest (see qlean_machine_config_add_share_full). */
typedef struct _QleanQemuShare
{
  const char *host_path;
  gboolean    readonly;
  gboolean    mapped_xattr;
} QleanQemuShare;

#define QLEAN_SHARE_TAG_PREFIX "qlean"

/* Everything that decides QEMU's argv, already resolved: no defaults are
 * looked up here, so the same spec always gives the same command. */
typedef struct
{
  const char         *qemu_binary;
  const QleanArchInfo *arch;         /* the guest's; NULL: x86-64 */
  const char         *name;
  gboolean            kvm;
  guint               cores;
  guint               memory_mib;
  const char         *kernel;
  const char         *initrd;
  /* UEFI's code, mapped read-only, when the machine boots through UEFI
   * (else NULL: the machine type's own firmware, or none); its variables
   * are the run's copy, QLEAN_UEFI_VARS in run_dir. */
  const char         *uefi_code;
  const char         *cmdline;
  const char         *disk;          /* the machine's own qcow2, or NULL */
  /* The image's disk under it and its format: when set, QEMU opens this
   * as the backing, read-only and with no backing of its own, rather
   * than whatever the overlay's header names. */
  const char         *disk_base;
  const char         *disk_base_format;
  const char         *run_dir;
  /* Listening sockets QEMU inherits at these fds; -1 makes QEMU create
   * the socket at its path in run_dir instead (dry runs). */
  int                 qmp_fd;
  int                 qga_fd;
  int                 data_fd;
  /* The write end of the console pipe QEMU inherits at this fd (see
   * QleanConsoleLog); -1 makes QEMU write console.log itself. */
  int                 console_fd;
  const char * const *extra_args;
  /* Host folders shared over virtio-9p, mount tag qleanN for the Nth;
   * or with shares_virtiofs, over virtiofs: QEMU connects to the Nth's
   * virtiofsd at virtiofs-N.sock in run_dir (QLEAN_VIRTIOFS_SOCKET_FORMAT). */
  const struct _QleanQemuShare *shares;
  guint               n_shares;
  gboolean            shares_virtiofs;
  /* The network card, when the machine is on a QleanNetwork: the
   * switch's socket directory (NULL: no card), port and MAC address. */
  const char         *net_socket;
  guint               net_port;
  const char         *net_mac;
  /* Or a host bridge, through qemu-bridge-helper, with net_mac. */
  const char         *net_bridge;
  const char         *net_bridge_helper;
  /* Or, for a warmed spare of machines on a network, a card with
   * net_mac on QEMU's hub QLEAN_NETWORK_SPARE_HUB, alone there until a
   * machine takes the spare and its switch joins the hub. */
  gboolean            net_hub;
  gboolean            incoming;      /* wait for a saved state (-incoming defer) */
  /* Guest RAM from this file (a memory template) rather than anonymous
   * memory: shared (the template machine, whose writes make the
   * template) or private (copy-on-write: the file is never written). */
  const char         *mem_path;
  gboolean            mem_share;
  /* Or (with no mem_path) from a shared memfd, which vhost-user devices
   * (virtiofsd) map. */
  gboolean            mem_memfd;
  const char         *seed;          /* a cloud-init seed image, attached read-only */
} QleanQemuSpec;

#define QLEAN_QMP_SOCKET "qmp.sock"
#define QLEAN_QGA_SOCKET "qga.sock"
#define QLEAN_DATA_SOCKET "data.sock"
/* The vhost-user socket of the Nth share's virtiofsd, in the run
 * directory (virtiofsd listens, QEMU connects). */
#define QLEAN_VIRTIOFS_SOCKET_FORMAT "virtiofs-%u.sock"
#define QLEAN_CONSOLE_LOG "console.log"
#define QLEAN_QEMU_LOG "qemu.log"
/* The run's own copy of the UEFI variables, which the guest writes. */
#define QLEAN_UEFI_VARS "uefi-vars.fd"
#define QLEAN_QGA_PORT_ID "qga0"

GStrv qlean_qemu_argv_build (const QleanQemuSpec *spec);

G_END_DECLS
