/* qlean-guest-output-pipe-private.h: a guest's output on its way to a host pipe
 *
 * SPDX-License-Identifier: MIT
 */

#pragma once

#ifndef QLEAN_COMPILATION
#error "qlean-guest-output-pipe-private.h is private to Qlean: include <qlean/qlean.h>"
#endif

#include <glib.h>

G_BEGIN_DECLS

/* Output forwarded from the port to a host pipe, never blocking the
 * worker: what the pipe does not take now waits for POLLOUT. Worker
 * thread only. */
typedef struct
{
  int      fd;        /* the pipe's near end, non-blocking; -1 once closed */
  GQueue   chunks;    /* GBytes not yet written */
  gsize    offset;    /* into the head chunk */
  GSource *source;    /* waits for POLLOUT */
  gboolean eof;       /* close once the chunks are out */
} QleanGuestOutputPipe;

void qlean_guest_output_pipe_init  (QleanGuestOutputPipe *pipe);
/* Writes what it can, and closes the pipe after the last chunk when
 * @pipe->eof is set. */
void qlean_guest_output_pipe_flush (QleanGuestOutputPipe *pipe);
/* Closes the pipe now: what waits is dropped, the reader sees its end. */
void qlean_guest_output_pipe_close (QleanGuestOutputPipe *pipe);
/* How many bytes wait for the pipe's reader. */
gsize qlean_guest_output_pipe_get_queued (QleanGuestOutputPipe *pipe);

G_END_DECLS
