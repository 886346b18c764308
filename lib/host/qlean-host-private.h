/* qlean-host-private.h: what the host offers: QEMU, KVM, run directories
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-host-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include <gio/gio.h>

#include "qlean-arch.h"

G_BEGIN_DECLS

/* Finds the QEMU binary: @name may be a path or a name in PATH; NULL
 * means the host architecture's (qemu-system-x86_64). The error names
 * the package to install. */
char     *qlean_host_find_qemu       (const char  *name,
                                      GError     **error);
/* The same for guests of @arch: NULL means qemu-system-aarch64 and so on. */
char     *qlean_host_find_qemu_for_arch (const char  *name,
                                         QleanArch    arch,
                                         GError     **error);
/* Whether KVM really runs guests with @qemu_binary. /dev/kvm existing is
 * not enough: nested setups open it and create VMs, then QEMU aborts or
 * hangs. So this boots firmware under KVM on the host architecture's
 * machine (SeaBIOS on q35, OpenSBI or a few instructions of Qlean's on
 * virt) for up to two seconds and looks for its first words; the QEMU
 * of another architecture is never tried. Checked once per binary per
 * process. */
gboolean  qlean_host_kvm_usable      (const char  *qemu_binary,
                                      char       **reason);
/* The directory all run directories of this user live in, made 0700. */
char     *qlean_host_run_base        (GError     **error);
/* A fresh 0700 run directory for a machine, with an owner file naming
 * this process so that `qlean gc` can tell it from a dead one. */
char     *qlean_host_make_run_dir    (const char  *name,
                                      GError     **error);
/* Moves the run directory @dir to a fresh name of machine @name beside
 * it, for a machine that takes over another's run; the new path, or
 * NULL with @error set and @dir left as it was. */
char     *qlean_host_rename_run_dir  (const char  *dir,
                                      const char  *name,
                                      GError     **error);
/* The package-manager command that installs @debian_package, for the
 * distribution this host runs. */
char     *qlean_host_install_hint    (const char  *debian_package);

/* A launcher whose children die with this process (PR_SET_PDEATHSIG,
 * bound to the forking thread: spawn from Qlean's worker, which lives as
 * long as the process) and leave the terminal's process group, so that
 * ^C reaches only their owner, which stops them in order. */
GSubprocessLauncher *qlean_host_child_launcher (GSubprocessFlags flags);
/* Makes QEMU's glibc back its large allocations with transparent huge
 * pages (glibc 2.35 and later; older ones ignore it). QEMU reads the
 * kernel into fresh buffers, an arm64 Image (27 MB) three times over, and
 * where page faults are dear (nested or paravirtualized hosts, this one)
 * those faults cost more than all else QEMU does to start: 0.7 s of an
 * aarch64 fast start's 1.7 s, measured; with huge pages 2,800 faults
 * instead of 24,700, and the same RSS (+1 MiB). */
void      qlean_host_tune_qemu_launcher (GSubprocessLauncher *launcher);
/* Waits, briefly (up to a second), until a SIGKILLed child is gone or a
 * zombie: the worker's child watch reaps it later. */
void      qlean_host_wait_for_death  (GPid         pid);

G_END_DECLS
