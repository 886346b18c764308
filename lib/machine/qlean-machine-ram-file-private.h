/* qlean-machine-ram-file-private.h: a cloneable machine's memory, a file of its own
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-machine-ram-file-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include "qlean-machine-object-private.h"

G_BEGIN_DECLS

/* Creates @path (never an existing file), @size bytes long, sparse,
 * mode 0600, when its folder has @room bytes free; FALSE with @reason
 * when it cannot. */
gboolean qlean_sparse_file_create          (const char          *path,
                                            guint64              size,
                                            guint64              room,
                                            char               **reason);
/* A new, empty RAM file of @size bytes (sparse, mode 0600) in the RAM
 * folder, named after this process; NULL with @reason when there is no
 * tmpfs for it or no room. */
char    *qlean_ram_file_new                (guint64              size,
                                            char               **reason);
/* Copies @from's data (its holes stay holes) into @to, which is at
 * least as long and all holes (a new RAM file: what it held where
 * @from has holes would stay); in the kernel where it can. */
gboolean qlean_ram_file_copy               (const char          *from,
                                            const char          *to,
                                            GError             **error);

/* Whether @size bytes at @page are all zeros. */
gboolean qlean_ram_page_is_zero            (const char          *page,
                                            gsize                size);
/* Punches holes in @fd for the pages of zeros among @n bytes of
 * @buffer, read from it at @offset, and writes the other pages to the
 * same place in @out (unless -1): a RAM file's pages of zeros go, while
 * its guest is stopped, and its data is copied (a template's store). */
gboolean qlean_ram_punch_zeros             (int                  fd,
                                            const char          *buffer,
                                            gsize                n,
                                            off_t                offset,
                                            int                  out);
/* Turns the pages of zeros of the RAM file @path into holes, while its
 * guest is stopped: a page of a shared tmpfs mapping that was only
 * read stays allocated, and QEMU reads every page when it saves or
 * loads a whole state. QEMU's devices still run while the guest is
 * stopped: a byte a channel delivers into a page between its read and
 * its hole would be lost, as in any page of zeros a device fills then;
 * receive buffers the guest gave its devices are rarely all zeros. */
gboolean qlean_ram_file_drop_zeros         (const char          *path,
                                            GError             **error);
/* qlean_ram_file_copy() and qlean_ram_file_drop_zeros() in a thread of
 * their own (they read the whole file), calling @callback in the
 * thread-default context; finished with qlean_ram_file_job_finish(). */
void     qlean_ram_file_copy_async         (const char          *from,
                                            const char          *to,
                                            GAsyncReadyCallback  callback,
                                            gpointer             user_data);
void     qlean_ram_file_drop_zeros_async   (const char          *path,
                                            GAsyncReadyCallback  callback,
                                            gpointer             user_data);
gboolean qlean_ram_file_job_finish         (GAsyncResult        *result,
                                            GError             **error);

/* The next start of @self runs on @path (a RAM file, taken: removed if
 * that start never comes), into which its state's memory is copied
 * while its QEMU starts: a clone of a cloneable machine. */
void     qlean_machine_set_incoming_ram    (QleanMachine        *self,
                                            char                *path);
/* As a start prepares its QEMU, after the saved boot or state it loads
 * set up @resolved's memory: a cloneable machine's memory moves to a
 * RAM file of its own (see QleanMachineConfig:cloneable), or it starts
 * as any other, with the reason logged. */
void     qlean_machine_ram_file_prepare    (QleanMachine        *self,
                                            ResolvedSpec        *resolved);
/* The RAM file a start of @self that makes its boot's memory template
 * runs on (see qlean_machine_template_make_work()): a RAM file that it
 * keeps when @self is cloneable. NULL with @reason when there is none. */
char    *qlean_machine_template_work_file  (QleanMachine        *self,
                                            const char          *state,
                                            guint                memory_mib,
                                            char               **reason);
/* The RAM file @self runs on, or NULL (worker thread). */
const char *qlean_machine_get_ram_file     (QleanMachine        *self);

G_END_DECLS
