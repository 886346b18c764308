/* bench-ssh.h: the minimal image with dropbear, for benchmarks that
 * compare Qlean with SSH into the same guest
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#include <qlean/qlean.h>

G_BEGIN_DECLS

typedef struct
{
  char *dir;     /* keys, the image, ssh's control sockets */
  char *kernel;
  char *initrd;
  char *key;     /* the client's private key, authorized in the guest */
} BenchSshImage;

void          bench_ssh_image_build      (BenchSshImage       *image,
                                          const char          *workdir,
                                          gboolean             with_scp);
void          bench_ssh_image_remove_dir (BenchSshImage       *image);
QleanMachine *bench_ssh_machine_new      (const BenchSshImage *image,
                                          guint                memory_mib);
QleanMachine *bench_ssh_machine_new_full (const BenchSshImage *image,
                                          guint                memory_mib,
                                          QleanGuestTransport  transport);
guint         bench_ssh_machine_get_port (QleanMachine        *machine);
GPtrArray    *bench_ssh_argv             (const BenchSshImage *image,
                                          guint                port,
                                          gboolean             scp);
gboolean      bench_ssh_run              (const BenchSshImage *image,
                                          guint                port,
                                          const char          *control,
                                          const char * const  *extra,
                                          const char          *command);

G_END_DECLS
