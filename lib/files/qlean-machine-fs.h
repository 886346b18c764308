/* qlean-machine-fs.h: std::fs in the guest
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#if !defined(QLEAN_INSIDE) && !defined(QLEAN_COMPILATION)
# error "Only <qlean/qlean.h> can be included directly."
#endif

#include <gio/gio.h>

#include "qlean-machine.h"
#include "qlean-version-macros.h"

G_BEGIN_DECLS

/**
 * QleanTransferFlags:
 * @QLEAN_TRANSFER_FLAGS_NONE: the defaults: a download drops the setuid,
 *   setgid and sticky bits and the group and world write bits.
 * @QLEAN_TRANSFER_FLAGS_PRESERVE_MODES: a download keeps the guest's
 *   exact permission bits, as `tar --same-permissions` does. Only for
 *   files you trust: they become the host user's.
 *
 * How [method@Machine.download_full] treats what comes out of a guest.
 *
 * Since: 0.1
 */
typedef enum /*< flags >*/
{
  QLEAN_TRANSFER_FLAGS_NONE           = 0,
  QLEAN_TRANSFER_FLAGS_PRESERVE_MODES = 1 << 0,
} QleanTransferFlags;

QLEAN_AVAILABLE_IN_0_1
void qlean_machine_copy_async (QleanMachine       *self,
                               const char         *from,
                               const char         *to,
                               GCancellable       *cancellable,
                               GAsyncReadyCallback callback,
                               gpointer            user_data);
QLEAN_AVAILABLE_IN_0_1
gint64 qlean_machine_copy_finish (QleanMachine       *self,
                                  GAsyncResult       *result,
                                  GError            **error);
QLEAN_AVAILABLE_IN_0_1
gint64 qlean_machine_copy (QleanMachine       *self,
                           const char         *from,
                           const char         *to,
                           GCancellable       *cancellable,
                           GError            **error);

QLEAN_AVAILABLE_IN_0_1
void qlean_machine_create_dir_async (QleanMachine       *self,
                                     const char         *path,
                                     GCancellable       *cancellable,
                                     GAsyncReadyCallback callback,
                                     gpointer            user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean qlean_machine_create_dir_finish (QleanMachine       *self,
                                          GAsyncResult       *result,
                                          GError            **error);
QLEAN_AVAILABLE_IN_0_1
gboolean qlean_machine_create_dir (QleanMachine       *self,
                                   const char         *path,
                                   GCancellable       *cancellable,
                                   GError            **error);

QLEAN_AVAILABLE_IN_0_1
void qlean_machine_create_dir_all_async (QleanMachine       *self,
                                         const char         *path,
                                         GCancellable       *cancellable,
                                         GAsyncReadyCallback callback,
                                         gpointer            user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean qlean_machine_create_dir_all_finish (QleanMachine       *self,
                                              GAsyncResult       *result,
                                              GError            **error);
QLEAN_AVAILABLE_IN_0_1
gboolean qlean_machine_create_dir_all (QleanMachine       *self,
                                       const char         *path,
                                       GCancellable       *cancellable,
                                       GError            **error);

QLEAN_AVAILABLE_IN_0_1
void qlean_machine_exists_async (QleanMachine       *self,
                                 const char         *path,
                                 GCancellable       *cancellable,
                                 GAsyncReadyCallback callback,
                                 gpointer            user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean qlean_machine_exists_finish (QleanMachine       *self,
                                      GAsyncResult       *result,
                                      GError            **error);
QLEAN_AVAILABLE_IN_0_1
gboolean qlean_machine_exists (QleanMachine       *self,
                               const char         *path,
                               GCancellable       *cancellable,
                               GError            **error);

QLEAN_AVAILABLE_IN_0_1
void qlean_machine_hard_link_async (QleanMachine       *self,
                                    const char         *original,
                                    const char         *link,
                                    GCancellable       *cancellable,
                                    GAsyncReadyCallback callback,
                                    gpointer            user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean qlean_machine_hard_link_finish (QleanMachine       *self,
                                         GAsyncResult       *result,
                                         GError            **error);
QLEAN_AVAILABLE_IN_0_1
gboolean qlean_machine_hard_link (QleanMachine       *self,
                                  const char         *original,
                                  const char         *link,
                                  GCancellable       *cancellable,
                                  GError            **error);

QLEAN_AVAILABLE_IN_0_1
void qlean_machine_metadata_async (QleanMachine       *self,
                                   const char         *path,
                                   GCancellable       *cancellable,
                                   GAsyncReadyCallback callback,
                                   gpointer            user_data);
QLEAN_AVAILABLE_IN_0_1
GFileInfo * qlean_machine_metadata_finish (QleanMachine       *self,
                                           GAsyncResult       *result,
                                           GError            **error);
QLEAN_AVAILABLE_IN_0_1
GFileInfo * qlean_machine_metadata (QleanMachine       *self,
                                    const char         *path,
                                    GCancellable       *cancellable,
                                    GError            **error);

QLEAN_AVAILABLE_IN_0_1
void qlean_machine_symlink_metadata_async (QleanMachine       *self,
                                           const char         *path,
                                           GCancellable       *cancellable,
                                           GAsyncReadyCallback callback,
                                           gpointer            user_data);
QLEAN_AVAILABLE_IN_0_1
GFileInfo * qlean_machine_symlink_metadata_finish (QleanMachine       *self,
                                                   GAsyncResult       *result,
                                                   GError            **error);
QLEAN_AVAILABLE_IN_0_1
GFileInfo * qlean_machine_symlink_metadata (QleanMachine       *self,
                                            const char         *path,
                                            GCancellable       *cancellable,
                                            GError            **error);

QLEAN_AVAILABLE_IN_0_1
void qlean_machine_read_async (QleanMachine       *self,
                               const char         *path,
                               GCancellable       *cancellable,
                               GAsyncReadyCallback callback,
                               gpointer            user_data);
QLEAN_AVAILABLE_IN_0_1
GBytes * qlean_machine_read_finish (QleanMachine       *self,
                                    GAsyncResult       *result,
                                    GError            **error);
QLEAN_AVAILABLE_IN_0_1
GBytes * qlean_machine_read (QleanMachine       *self,
                             const char         *path,
                             GCancellable       *cancellable,
                             GError            **error);

QLEAN_AVAILABLE_IN_0_1
void qlean_machine_read_dir_async (QleanMachine       *self,
                                   const char         *path,
                                   GCancellable       *cancellable,
                                   GAsyncReadyCallback callback,
                                   gpointer            user_data);
QLEAN_AVAILABLE_IN_0_1
GPtrArray * qlean_machine_read_dir_finish (QleanMachine       *self,
                                           GAsyncResult       *result,
                                           GError            **error);
QLEAN_AVAILABLE_IN_0_1
GPtrArray * qlean_machine_read_dir (QleanMachine       *self,
                                    const char         *path,
                                    GCancellable       *cancellable,
                                    GError            **error);

QLEAN_AVAILABLE_IN_0_1
void qlean_machine_read_link_async (QleanMachine       *self,
                                    const char         *path,
                                    GCancellable       *cancellable,
                                    GAsyncReadyCallback callback,
                                    gpointer            user_data);
QLEAN_AVAILABLE_IN_0_1
char * qlean_machine_read_link_finish (QleanMachine       *self,
                                       GAsyncResult       *result,
                                       GError            **error);
QLEAN_AVAILABLE_IN_0_1
char * qlean_machine_read_link (QleanMachine       *self,
                                const char         *path,
                                GCancellable       *cancellable,
                                GError            **error);

QLEAN_AVAILABLE_IN_0_1
void qlean_machine_read_to_string_async (QleanMachine       *self,
                                         const char         *path,
                                         GCancellable       *cancellable,
                                         GAsyncReadyCallback callback,
                                         gpointer            user_data);
QLEAN_AVAILABLE_IN_0_1
char * qlean_machine_read_to_string_finish (QleanMachine       *self,
                                            GAsyncResult       *result,
                                            GError            **error);
QLEAN_AVAILABLE_IN_0_1
char * qlean_machine_read_to_string (QleanMachine       *self,
                                     const char         *path,
                                     GCancellable       *cancellable,
                                     GError            **error);

QLEAN_AVAILABLE_IN_0_1
void qlean_machine_remove_dir_async (QleanMachine       *self,
                                     const char         *path,
                                     GCancellable       *cancellable,
                                     GAsyncReadyCallback callback,
                                     gpointer            user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean qlean_machine_remove_dir_finish (QleanMachine       *self,
                                          GAsyncResult       *result,
                                          GError            **error);
QLEAN_AVAILABLE_IN_0_1
gboolean qlean_machine_remove_dir (QleanMachine       *self,
                                   const char         *path,
                                   GCancellable       *cancellable,
                                   GError            **error);

QLEAN_AVAILABLE_IN_0_1
void qlean_machine_remove_dir_all_async (QleanMachine       *self,
                                         const char         *path,
                                         GCancellable       *cancellable,
                                         GAsyncReadyCallback callback,
                                         gpointer            user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean qlean_machine_remove_dir_all_finish (QleanMachine       *self,
                                              GAsyncResult       *result,
                                              GError            **error);
QLEAN_AVAILABLE_IN_0_1
gboolean qlean_machine_remove_dir_all (QleanMachine       *self,
                                       const char         *path,
                                       GCancellable       *cancellable,
                                       GError            **error);

QLEAN_AVAILABLE_IN_0_1
void qlean_machine_remove_file_async (QleanMachine       *self,
                                      const char         *path,
                                      GCancellable       *cancellable,
                                      GAsyncReadyCallback callback,
                                      gpointer            user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean qlean_machine_remove_file_finish (QleanMachine       *self,
                                           GAsyncResult       *result,
                                           GError            **error);
QLEAN_AVAILABLE_IN_0_1
gboolean qlean_machine_remove_file (QleanMachine       *self,
                                    const char         *path,
                                    GCancellable       *cancellable,
                                    GError            **error);

QLEAN_AVAILABLE_IN_0_1
void qlean_machine_rename_async (QleanMachine       *self,
                                 const char         *from,
                                 const char         *to,
                                 GCancellable       *cancellable,
                                 GAsyncReadyCallback callback,
                                 gpointer            user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean qlean_machine_rename_finish (QleanMachine       *self,
                                      GAsyncResult       *result,
                                      GError            **error);
QLEAN_AVAILABLE_IN_0_1
gboolean qlean_machine_rename (QleanMachine       *self,
                               const char         *from,
                               const char         *to,
                               GCancellable       *cancellable,
                               GError            **error);

QLEAN_AVAILABLE_IN_0_1
void qlean_machine_set_permissions_async (QleanMachine       *self,
                                          const char         *path,
                                          guint               mode,
                                          GCancellable       *cancellable,
                                          GAsyncReadyCallback callback,
                                          gpointer            user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean qlean_machine_set_permissions_finish (QleanMachine       *self,
                                               GAsyncResult       *result,
                                               GError            **error);
QLEAN_AVAILABLE_IN_0_1
gboolean qlean_machine_set_permissions (QleanMachine       *self,
                                        const char         *path,
                                        guint               mode,
                                        GCancellable       *cancellable,
                                        GError            **error);

QLEAN_AVAILABLE_IN_0_1
void qlean_machine_symlink_async (QleanMachine       *self,
                                  const char         *target,
                                  const char         *link,
                                  GCancellable       *cancellable,
                                  GAsyncReadyCallback callback,
                                  gpointer            user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean qlean_machine_symlink_finish (QleanMachine       *self,
                                       GAsyncResult       *result,
                                       GError            **error);
QLEAN_AVAILABLE_IN_0_1
gboolean qlean_machine_symlink (QleanMachine       *self,
                                const char         *target,
                                const char         *link,
                                GCancellable       *cancellable,
                                GError            **error);

QLEAN_AVAILABLE_IN_0_1
void qlean_machine_write_async (QleanMachine       *self,
                                const char         *path,
                                GBytes             *contents,
                                GCancellable       *cancellable,
                                GAsyncReadyCallback callback,
                                gpointer            user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean qlean_machine_write_finish (QleanMachine       *self,
                                     GAsyncResult       *result,
                                     GError            **error);
QLEAN_AVAILABLE_IN_0_1
gboolean qlean_machine_write (QleanMachine       *self,
                              const char         *path,
                              GBytes             *contents,
                              GCancellable       *cancellable,
                              GError            **error);

QLEAN_AVAILABLE_IN_0_1
void     qlean_machine_upload_async    (QleanMachine        *self,
                                        GFile               *source,
                                        const char          *guest_destination,
                                        GCancellable        *cancellable,
                                        GAsyncReadyCallback  callback,
                                        gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean qlean_machine_upload_finish   (QleanMachine        *self,
                                        GAsyncResult        *result,
                                        GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean qlean_machine_upload          (QleanMachine        *self,
                                        GFile               *source,
                                        const char          *guest_destination,
                                        GCancellable        *cancellable,
                                        GError             **error);
QLEAN_AVAILABLE_IN_0_1
void     qlean_machine_download_async  (QleanMachine        *self,
                                        const char          *guest_source,
                                        GFile               *destination,
                                        GCancellable        *cancellable,
                                        GAsyncReadyCallback  callback,
                                        gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean qlean_machine_download_finish (QleanMachine        *self,
                                        GAsyncResult        *result,
                                        GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean qlean_machine_download        (QleanMachine        *self,
                                        const char          *guest_source,
                                        GFile               *destination,
                                        GCancellable        *cancellable,
                                        GError             **error);
QLEAN_AVAILABLE_IN_0_1
void     qlean_machine_download_full_async  (QleanMachine        *self,
                                             const char          *guest_source,
                                             GFile               *destination,
                                             QleanTransferFlags   flags,
                                             GCancellable        *cancellable,
                                             GAsyncReadyCallback  callback,
                                             gpointer             user_data);
QLEAN_AVAILABLE_IN_0_1
gboolean qlean_machine_download_full_finish (QleanMachine        *self,
                                             GAsyncResult        *result,
                                             GError             **error);
QLEAN_AVAILABLE_IN_0_1
gboolean qlean_machine_download_full        (QleanMachine        *self,
                                             const char          *guest_source,
                                             GFile               *destination,
                                             QleanTransferFlags   flags,
                                             GCancellable        *cancellable,
                                             GError             **error);

G_END_DECLS
