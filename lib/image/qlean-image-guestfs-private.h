/* qlean-image-guestfs-private.h: between a preparation and its appliance
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-image-guestfs-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include <gio/gio.h>

#include "qlean-arch.h"

G_BEGIN_DECLS

/* The resources (data/distro) that go into prepared images; they are
 * part of the prepared copy's cache key too. */
#define QLEAN_PREPARE_RESOURCE_DIR "/org/qlean/distro/"

/* The qemu-ga to put into an image that has no agent of its own: the
 * host's, or for a guest of another architecture the one in its sysroot
 * (qlean-image-agent.c finds it, only once an image needs it). */
typedef struct
{
  char      *qemu_ga;
  char      *loader;
  GPtrArray *libs;     /* host paths; copied under their soname */
  GPtrArray *sonames;
} QleanHostAgent;

void      qlean_host_agent_clear          (QleanHostAgent *agent);
/* The qemu-ga for @arch and what it loads (`ldd` on the host's; the
 * DT_NEEDED entries of a sysroot's): copied into a guest under
 * /opt/qlean and started through the copied loader, it runs whatever
 * the guest's own libc is. */
gboolean  qlean_find_agent                (QleanHostAgent *agent,
                                           QleanArch       arch,
                                           GError        **error);
/* Only the path of that qemu-ga, or NULL: for the prepared copy's
 * cache key, which must change when the agent does. */
char     *qlean_find_agent_program        (QleanArch       arch);

/* What the appliance found and did, for prepared.json. */
typedef struct
{
  char     *cmdline;
  gboolean  cloud_init;
  gboolean  injected_agent;
  /* No kernel was taken out: the image's boot loader boots through UEFI. */
  gboolean  uefi_boot;
  char     *os;
} QleanPrepareResult;

void      qlean_prepare_result_clear      (QleanPrepareResult *result);

/* Changes the qcow2 @disk (a copy of the download @input, named in
 * messages), a system for @arch, in a libguestfs appliance, copying its
 * kernel and initrd out into @dir; @agent is filled in when the image
 * needs one. Nothing of the guest runs: the appliance is the host's
 * architecture, so everything is done with file operations. */
gboolean  qlean_image_prepare_in_guestfs  (QleanArch            arch,
                                           const char          *disk,
                                           const char          *input,
                                           const char          *dir,
                                           const char          *guest_binary,
                                           QleanHostAgent      *agent,
                                           QleanPrepareResult  *result,
                                           GCancellable        *cancellable,
                                           GError             **error);

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (QleanHostAgent, qlean_host_agent_clear)
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (QleanPrepareResult, qlean_prepare_result_clear)

G_END_DECLS
