/* qlean-machine-incoming-stream.c: a state that streams into a start
 *
 * A clone of a running machine saved the source's state to a file (80 MB
 * for the minimal image) and then started the clone from that file: the
 * whole stream written, then read back, one after the other. Streamed,
 * the clone's QEMU listens on a Unix socket (`-incoming defer`, then
 * `migrate-incoming unix:…`) and the source migrates straight into it:
 * no file, and the clone loads while the source saves.
 *
 * Apart from the loading of states in files (qlean-machine-boot-state.c)
 * because it is a few hooks there: where QEMU reads from, who is told
 * that it listens. The socket lives in the source's state folder, named
 * by the caller, who removes it.
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include "qlean-machine-object-private.h"
#include "qlean-machine-private.h"

#define STREAM_KEY "qlean-incoming-stream"

typedef struct
{
  char                   *socket_path;
  QleanIncomingListening  listening;
  GWeakRef                listener;
} IncomingStream;

static void
incoming_stream_free (IncomingStream *stream)
{
  g_weak_ref_clear (&stream->listener);
  g_free (stream->socket_path);
  g_free (stream);
}

void
qlean_machine_set_incoming_stream (QleanMachine           *self,
                                   const char             *socket_path,
                                   QleanIncomingListening  listening,
                                   GObject                *listener)
{
  IncomingStream *stream = g_new0 (IncomingStream, 1);

  stream->socket_path = g_strdup (socket_path);
  stream->listening = listening;
  /* Weak: the listener (a clone's task) holds this machine. */
  g_weak_ref_init (&stream->listener, listener);
  g_object_set_data_full (G_OBJECT (self), STREAM_KEY, stream,
                          (GDestroyNotify) incoming_stream_free);
}

gboolean
qlean_machine_prepare_incoming_stream (QleanMachine *self)
{
  IncomingStream *stream = g_object_steal_data (G_OBJECT (self), STREAM_KEY);

  if (stream == NULL)
    return FALSE;
  /* One start streams; the next loads or boots as it is told. */
  qlean_machine_run_set_data (self->run, STREAM_KEY, stream,
                              (GDestroyNotify) incoming_stream_free);
  return TRUE;
}

gboolean
qlean_machine_incoming_streams (QleanMachine *self)
{
  return qlean_machine_run_get_data (self->run, STREAM_KEY) != NULL;
}

char *
qlean_machine_incoming_uri (QleanMachine *self)
{
  IncomingStream *stream = qlean_machine_run_get_data (self->run, STREAM_KEY);

  if (stream != NULL)
    return g_strconcat ("unix:", stream->socket_path, NULL);
  /* The file itself, opened before QEMU started: no `cat` copying it
   * through a pipe (a load took 72-76 ms that way, 33-64 ms from the
   * descriptor), and nothing to quote. */
  return g_strdup_printf ("fd:%d", QLEAN_STATE_FD);
}

void
qlean_machine_incoming_listening (QleanMachine *self)
{
  IncomingStream *stream = qlean_machine_run_get_data (self->run, STREAM_KEY);
  g_autoptr(GObject) listener = NULL;
  QleanIncomingListening listening;

  /* Only while the start is on: a failed one has told its caller. */
  if (stream == NULL || stream->listening == NULL || self->run->spawn_task == NULL ||
      self->run->spawn_error != NULL)
    return;

  listening = stream->listening;
  stream->listening = NULL;
  listener = g_weak_ref_get (&stream->listener);
  if (listener != NULL)
    listening (self, listener);
}
