/* qlean-util-private.h: small helpers shared by the library
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-util-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include <gio/gio.h>

G_BEGIN_DECLS

/* g_set_str() arrived in GLib 2.76; we support 2.74. */
gboolean  qlean_set_str            (char       **str_pointer,
                                    const char  *new_str);
/* The last @n_lines lines of a text file, or NULL if unreadable. */
char     *qlean_file_tail          (const char  *path,
                                    guint        n_lines);
/* The pid of a child just spawned, or 0 when it has already exited and
 * been reaped (GLib then forgets the pid): its exit watch reports that
 * exit, and there is nothing left to signal. */
GPid      qlean_subprocess_get_pid (GSubprocess *process);
/* Bytes as text fit for an error message: lossy UTF-8, trimmed. */
/* write(2) until all of @data is written, EINTR retried; FALSE with
 * errno set otherwise. */
gboolean  qlean_write_all          (int          fd,
                                    const void  *data,
                                    gsize        len);
char     *qlean_bytes_to_message   (GBytes      *bytes);
/* Removes a directory tree without following symlinks. */
gboolean  qlean_rm_rf              (const char  *path,
                                    GError     **error);
/* The library's embedded resources. Use this, never qlean_get_resource():
 * GLib registers static resources lazily and two threads asking first at
 * the same time can get NULL (seen as a crash when two machines prepare
 * their image at once). */
GResource *qlean_resources         (void);

/* A shared, thread-safe weak reference: what worker callbacks that may
 * outlive an operation (QEMU's exit watch, QMP events, switch timers)
 * hold instead of their object, so that dropping the last reference to
 * a running machine or network still disposes it. */
typedef struct _QleanLink QleanLink;

QleanLink *qlean_link_new            (gpointer   object);
QleanLink *qlean_link_ref            (QleanLink *link);
/* A GDestroyNotify. */
void       qlean_link_unref          (gpointer   link);
/* The object, with a new reference, or NULL once it is gone. */
gpointer   qlean_link_get            (QleanLink *link);
/* Points @link at @object from now on: the callbacks that hold it reach
 * @object instead (a machine that takes over another's run, see
 * qlean-machine-spares.c). */
void       qlean_link_set            (QleanLink *link,
                                      gpointer   object);

G_END_DECLS
