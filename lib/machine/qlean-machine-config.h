/* qlean-machine-config.h: what a machine is made of
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#if !defined(QLEAN_INSIDE) && !defined(QLEAN_COMPILATION)
# error "Only <qlean/qlean.h> can be included directly."
#endif

#include <glib-object.h>

#include "qlean-version-macros.h"

G_BEGIN_DECLS

/**
 * QleanShareFlags:
 * @QLEAN_SHARE_NONE: a read-write share; files the guest creates belong
 *   to the user running QEMU, and their owners and modes in the guest
 *   are the host's (9p `security_model=none`).
 * @QLEAN_SHARE_READONLY: the guest can read the folder but not change
 *   it: writes fail with `EROFS`, in QEMU as well as in the guest mount.
 * @QLEAN_SHARE_MAPPED_XATTR: owners, modes and special files the guest
 *   sets are kept in extended attributes of the host files rather than
 *   applied to them (9p `security_model=mapped-xattr`): a guest running
 *   as root can then chown and mknod in the share without privileges
 *   on the host. The host folder's file system needs user xattrs.
 * @QLEAN_SHARE_CACHED: with %QLEAN_SHARE_READONLY only: the guest keeps
 *   what it read (names, attributes, contents) in its caches, with no
 *   check that the host changed them: 9p `cache=loose`, about four
 *   times faster on a tree of small files (`bench/bench-shares`);
 *   virtiofs `cache=always`. Changes the host makes while the machine
 *   runs may then not show in the guest: for folders that stay as they
 *   are, such as a build's output shared to be tested.
 *
 * How a host folder is shared with a machine; see
 * [method@MachineConfig.add_share_full].
 *
 * Since: 0.1
 */
typedef enum /*< flags >*/
{
  QLEAN_SHARE_NONE = 0,
  QLEAN_SHARE_READONLY = 1 << 0,
  QLEAN_SHARE_MAPPED_XATTR = 1 << 1,
  QLEAN_SHARE_CACHED = 1 << 2,
} QleanShareFlags;

/**
 * QleanShareKind:
 * @QLEAN_SHARE_KIND_AUTO: virtiofs where it can run, else virtio-9p.
 * @QLEAN_SHARE_KIND_9P: virtio-9p, served by QEMU itself.
 * @QLEAN_SHARE_KIND_VIRTIOFS: virtiofs, served by `virtiofsd`; starting
 *   fails when it cannot run.
 *
 * How a machine's host folders reach its guest; see
 * [property@MachineConfig:share-kind].
 *
 * Since: 0.1
 */
typedef enum
{
  QLEAN_SHARE_KIND_AUTO,
  QLEAN_SHARE_KIND_9P,
  QLEAN_SHARE_KIND_VIRTIOFS,
} QleanShareKind;

/**
 * QleanAccel:
 * @QLEAN_ACCEL_AUTO: KVM when /dev/kvm can be opened read-write, else TCG.
 * @QLEAN_ACCEL_KVM: KVM; starting fails when it is not usable.
 * @QLEAN_ACCEL_TCG: QEMU's software emulation, which works everywhere.
 *
 * How QEMU runs guest code.
 *
 * Since: 0.1
 */
typedef enum
{
  QLEAN_ACCEL_AUTO,
  QLEAN_ACCEL_KVM,
  QLEAN_ACCEL_TCG,
} QleanAccel;

/**
 * QleanGuestTransport:
 * @QLEAN_GUEST_TRANSPORT_AUTO: qlean-guest when it answers by the time
 *   the machine is ready, else the QEMU guest agent alone.
 * @QLEAN_GUEST_TRANSPORT_AGENT: the QEMU guest agent alone; qlean-guest's
 *   channel is never used, so the guest does not need qlean-guest.
 * @QLEAN_GUEST_TRANSPORT_QLEAN_GUEST: qlean-guest; starting fails when it
 *   does not answer.
 *
 * Which channel runs processes and moves files in the guest. The choice
 * is made once, when the machine becomes ready, and kept for the whole
 * run (see [property@Machine:guest-transport]).
 *
 * Since: 0.1
 */
typedef enum
{
  QLEAN_GUEST_TRANSPORT_AUTO,
  QLEAN_GUEST_TRANSPORT_AGENT,
  QLEAN_GUEST_TRANSPORT_QLEAN_GUEST,
} QleanGuestTransport;

/**
 * QleanFirmware:
 * @QLEAN_FIRMWARE_AUTO: the kernel booted directly when the machine has
 *   one (the image's or the configuration's); else the disk's own boot
 *   loader, through the BIOS where the machine type has one (x86-64) and
 *   through UEFI where it has none (aarch64).
 * @QLEAN_FIRMWARE_BIOS: QEMU's own firmware for the machine type: SeaBIOS
 *   on x86-64, OpenSBI on riscv64, none on aarch64, whose `virt` machine
 *   then needs a kernel to boot directly.
 * @QLEAN_FIRMWARE_UEFI: UEFI firmware from the host's packages (AAVMF
 *   from `qemu-efi-aarch64`, OVMF from `ovmf`), with variables of its own
 *   for each run. It boots the machine's kernel when there is one (any
 *   kernel with an EFI stub, compressed EFI zboot ones included), else
 *   the disk's boot loader.
 *
 * How a machine boots. A UEFI boot costs several seconds of firmware
 * under TCG before the kernel starts, so Qlean boots kernels directly
 * wherever it can.
 *
 * Since: 0.1
 */
typedef enum
{
  QLEAN_FIRMWARE_AUTO,
  QLEAN_FIRMWARE_BIOS,
  QLEAN_FIRMWARE_UEFI,
} QleanFirmware;

#define QLEAN_TYPE_MACHINE_CONFIG (qlean_machine_config_get_type ())

/**
 * QLEAN_MACHINE_CONFIG_MAX_SPARES:
 *
 * The most warmed spare machines one shape may keep
 * ([property@MachineConfig:spares]).
 *
 * Since: 0.1
 */
#define QLEAN_MACHINE_CONFIG_MAX_SPARES 8

QLEAN_AVAILABLE_IN_0_1
G_DECLARE_FINAL_TYPE (QleanMachineConfig, qlean_machine_config, QLEAN, MACHINE_CONFIG, GObject)

QLEAN_AVAILABLE_IN_0_1
QleanMachineConfig *qlean_machine_config_new            (void);
QLEAN_AVAILABLE_IN_0_1
QleanMachineConfig *qlean_machine_config_copy           (QleanMachineConfig *self);

QLEAN_AVAILABLE_IN_0_1
guint               qlean_machine_config_get_cores      (QleanMachineConfig *self);
QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_config_set_cores      (QleanMachineConfig *self,
                                                         guint               cores);
QLEAN_AVAILABLE_IN_0_1
guint               qlean_machine_config_get_memory_mib (QleanMachineConfig *self);
QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_config_set_memory_mib (QleanMachineConfig *self,
                                                         guint               memory_mib);
QLEAN_AVAILABLE_IN_0_1
guint               qlean_machine_config_get_disk_gib   (QleanMachineConfig *self);
QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_config_set_disk_gib   (QleanMachineConfig *self,
                                                         guint               disk_gib);
QLEAN_AVAILABLE_IN_0_1
gboolean            qlean_machine_config_get_clear      (QleanMachineConfig *self);
QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_config_set_clear      (QleanMachineConfig *self,
                                                         gboolean            clear);
QLEAN_AVAILABLE_IN_0_1
const char         *qlean_machine_config_get_qemu_binary (QleanMachineConfig *self);
QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_config_set_qemu_binary (QleanMachineConfig *self,
                                                         const char         *qemu_binary);
QLEAN_AVAILABLE_IN_0_1
QleanAccel          qlean_machine_config_get_accel      (QleanMachineConfig *self);
QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_config_set_accel      (QleanMachineConfig *self,
                                                         QleanAccel          accel);
QLEAN_AVAILABLE_IN_0_1
QleanFirmware       qlean_machine_config_get_firmware   (QleanMachineConfig *self);
QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_config_set_firmware   (QleanMachineConfig *self,
                                                         QleanFirmware       firmware);
QLEAN_AVAILABLE_IN_0_1
const char         *qlean_machine_config_get_kernel     (QleanMachineConfig *self);
QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_config_set_kernel     (QleanMachineConfig *self,
                                                         const char         *kernel);
QLEAN_AVAILABLE_IN_0_1
const char         *qlean_machine_config_get_initrd     (QleanMachineConfig *self);
QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_config_set_initrd     (QleanMachineConfig *self,
                                                         const char         *initrd);
QLEAN_AVAILABLE_IN_0_1
const char         *qlean_machine_config_get_cmdline    (QleanMachineConfig *self);
QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_config_set_cmdline    (QleanMachineConfig *self,
                                                         const char         *cmdline);
QLEAN_AVAILABLE_IN_0_1
const char * const *qlean_machine_config_get_extra_args (QleanMachineConfig *self);
QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_config_set_extra_args (QleanMachineConfig *self,
                                                         const char * const *extra_args);

QLEAN_AVAILABLE_IN_0_1
gboolean            qlean_machine_config_get_fast_start (QleanMachineConfig *self);
QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_config_set_fast_start (QleanMachineConfig *self,
                                                         gboolean            fast_start);

QLEAN_AVAILABLE_IN_0_1
gboolean            qlean_machine_config_get_memory_template (QleanMachineConfig *self);
QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_config_set_memory_template (QleanMachineConfig *self,
                                                              gboolean            memory_template);

QLEAN_AVAILABLE_IN_0_1
gboolean            qlean_machine_config_get_cloneable  (QleanMachineConfig *self);
QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_config_set_cloneable  (QleanMachineConfig *self,
                                                         gboolean            cloneable);

QLEAN_AVAILABLE_IN_0_1
guint               qlean_machine_config_get_spares     (QleanMachineConfig *self);
QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_config_set_spares     (QleanMachineConfig *self,
                                                         guint               spares);

QLEAN_AVAILABLE_IN_0_1
const char         *qlean_machine_config_get_bridge     (QleanMachineConfig *self);
QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_config_set_bridge     (QleanMachineConfig *self,
                                                         const char         *bridge);

QLEAN_AVAILABLE_IN_0_1
QleanGuestTransport qlean_machine_config_get_guest_transport (QleanMachineConfig  *self);
QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_config_set_guest_transport (QleanMachineConfig  *self,
                                                              QleanGuestTransport  guest_transport);

QLEAN_AVAILABLE_IN_0_1
QleanShareKind      qlean_machine_config_get_share_kind (QleanMachineConfig  *self);
QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_config_set_share_kind (QleanMachineConfig  *self,
                                                         QleanShareKind       share_kind);

QLEAN_AVAILABLE_IN_0_1
gboolean            qlean_machine_config_add_share      (QleanMachineConfig  *self,
                                                         const char          *host_path,
                                                         const char          *guest_path,
                                                         gboolean             readonly,
                                                         GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean            qlean_machine_config_add_share_full (QleanMachineConfig  *self,
                                                         const char          *host_path,
                                                         const char          *guest_path,
                                                         QleanShareFlags      flags,
                                                         GError             **error);
QLEAN_AVAILABLE_IN_0_1
guint               qlean_machine_config_get_n_shares   (QleanMachineConfig  *self);
QLEAN_AVAILABLE_IN_0_1
const char         *qlean_machine_config_get_share      (QleanMachineConfig  *self,
                                                         guint                index,
                                                         const char         **guest_path,
                                                         QleanShareFlags     *flags);
QLEAN_AVAILABLE_IN_0_1
void                qlean_machine_config_clear_shares   (QleanMachineConfig  *self);

G_END_DECLS
