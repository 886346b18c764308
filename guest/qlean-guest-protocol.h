/* qlean-guest-protocol.h: the wire format between the host and qlean-guest
 *
 * SPDX-License-Identifier: MIT
 *
 * Shared by the host (channel/qlean-guest-channel.c) and the guest program
 * (guest/qlean-guest.c), so it depends on nothing but <stdint.h>.
 *
 * Why a second channel beside the guest agent: QGA has no streaming.
 * guest-exec returns output only after exit, capped at 16 MiB, and is
 * polled; guest-file-* moves base64 in JSON at ~4 MB/s. qlean-guest is a
 * small static program that serves one virtio-serial port
 * (org.qlean.data.0, a chardev socket on the host) with a multiplexed
 * binary protocol: live stdout/stderr, stdin, signals, exit status as
 * soon as the process ends (waited for, not polled), and bulk file data
 * at the speed of the port. The minimal image starts it from its init;
 * in other guests the host uploads it through the agent and starts it
 * with guest-exec, so it needs nothing installed in the guest.
 *
 * Framing. Every frame is a 16-byte header followed by `length` payload
 * bytes. All integers are little-endian.
 *
 *   u32 magic   QLEAN_GUEST_MAGIC
 *   u8  type    QleanGuestFrameType
 *   u8  fd      DATA/EOF/CREDIT: 0 stdin (host to guest), 1 stdout,
 *               2 stderr (guest to host); 0 otherwise
 *   u16 flags   0
 *   u32 stream  chosen by the host per request, never 0; 0 is the
 *               connection itself (HELLO)
 *   u32 length  payload bytes, at most QLEAN_GUEST_MAX_PAYLOAD (a reader
 *               skips a longer header as debris and reads its payload
 *               as frames, so no sender may build one: the host refuses
 *               such a request before it is sent)
 *
 * Synchronisation. A port is a byte stream that outlives programs on
 * either end, so each side may find debris from an earlier peer. The
 * host starts by sending HELLO with a random 64-bit nonce; the guest
 * answers HELLO with the same nonce, its protocol version and its pid.
 * Until the host sees that answer it discards everything; a reader that
 * finds a bad magic or an over-long frame skips ahead to the next magic.
 *
 * Requests (host to guest) carry a TLV list (below) and start a stream:
 *
 *   EXEC   ARG+ (argv; ARG[0] is looked up in PATH when it has no
 *          slash), ENV* ("NAME=value" sets NAME in the environment, or
 *          in an empty one with FLAG_CLEAR_ENV; a bare "NAME" without '='
 *          removes NAME), CWD?, USER? (a name or
 *          a number), FLAGS?.  The guest answers STARTED (u32 pid) or
 *          ERROR, then DATA/EOF for fds 1 and 2 (only fd 1 with
 *          FLAG_MERGE_STDERR), and finally EXIT (i32 wait status, as
 *          waitpid(2) gives it) after both EOFs. The process leads its own
 *          process group. With FLAG_STDIN the host sends DATA fd 0 and
 *          then EOF fd 0; without it stdin is /dev/null.
 *   SIGNAL u32 signal number, sent to the stream's process group.
 *   PUT    PATH, MODE?, MTIME?, FLAGS?; then DATA fd 0 and EOF fd 0. The
 *          guest writes a temporary file beside PATH and renames it over
 *          PATH at EOF (so a failed transfer never leaves a file that
 *          looks complete), creating missing parents with FLAG_PARENTS.
 *          Answers DONE (TLV SIZE) or ERROR.
 *   GET    PATH. The guest answers ERROR, or DONE (TLV SIZE, MODE,
 *          MTIME) followed by DATA fd 1 chunks and EOF fd 1.
 *   FS     OP (u32 QleanGuestFsOp), PATH, PATH2?, MODE?, FLAGS?. Answers
 *          DONE with op-specific TLVs (STAT entries, DIRENT entries,
 *          TARGET) or ERROR.
 *   CONNECT PORT (u32, 1..65535), ADDR? (a numeric IPv4 or IPv6
 *          address; default 127.0.0.1). The guest connects a TCP socket
 *          to ADDR:PORT and answers STARTED (empty) or ERROR (its errno:
 *          ECONNREFUSED, ...). Then the stream is a byte pipe both ways:
 *          DATA fd 0 (host to guest, credited like stdin) goes to the
 *          socket and EOF fd 0 shuts down its sending side; what the
 *          socket gives comes as DATA fd 1, and its end as EOF fd 1.
 *          DONE (empty) ends the stream once both directions are closed.
 *          This is how the host forwards a local TCP port to a server in
 *          the guest without any network between them.
 *
 * ERROR carries i32 errno then a UTF-8 message, and ends its stream.
 *
 * PROGRESS (guest to host, version 2 and later) says that a request the
 * guest works on in one go is still going: FS COPY and REMOVE_ALL send
 * one about every 250 ms while they run, so that the host can bound its
 * wait for them by time without an answer, as it does for the others.
 * Its payload is empty (a host ignores any); it never ends a stream. A
 * host that finds version 1 in the HELLO answer gets no PROGRESS and
 * cannot bound those two requests.
 *
 * TERMINAL (version 3 and later). EXEC with FLAG_TERMINAL runs the
 * process on a new pseudo-terminal: it leads a new session whose
 * controlling terminal is the pty's slave, which is its stdin, stdout
 * and stderr. The master's output comes as DATA fd 1 (there is no fd 2,
 * as with FLAG_MERGE_STDERR), and its end (the last slave closed) as EOF
 * fd 1; host DATA fd 0 goes to the master (FLAG_STDIN is implied), so
 * the terminal's line discipline turns a 0x03 byte into SIGINT and 0x04
 * into end-of-file for the process, as on any terminal. TLV WINSIZE
 * gives the initial size (default 24x80); a WINSIZE frame (payload u16
 * rows, u16 cols) on the running stream resizes the terminal, and the
 * process gets SIGWINCH. WINSIZE on a stream without a terminal is
 * ignored. EOF fd 0 closes nothing (a terminal has no end-of-file but
 * the byte 0x04). A guest of version 2 or older ignores the flag and
 * would run the process without a terminal, so a host must not send it
 * unless the HELLO answer says version 3 or later; from version 3 a
 * guest answers ERROR EINVAL to an EXEC with flags it does not know.
 *
 * Flow control. Host-to-guest DATA is credit based: per stream, the host
 * may have at most QLEAN_GUEST_WINDOW bytes the guest has not
 * acknowledged; the guest sends CREDIT (u32 bytes) as it writes them
 * out. Guest-to-host DATA is not limited (the host always reads), except
 * a CONNECT's: there the guest keeps at most QLEAN_GUEST_WINDOW bytes of
 * DATA fd 1 unacknowledged, and the host sends CREDIT fd 1 as it hands
 * them on, so a slow reader on the host slows the guest's socket down
 * instead of filling the host's memory.
 *
 * Details, as guest/qlean-guest.c implements them (clarifications only;
 * nothing above changes):
 *
 * - Payloads. HELLO host to guest: u64 nonce (longer payloads are
 *   accepted, the rest ignored); guest to host: u64 nonce, u32 version,
 *   u32 pid (16 bytes). HELLO is only valid on stream 0. STARTED: u32
 *   pid. EXIT: i32 wait status. SIGNAL: u32 signal. CREDIT: u32 bytes,
 *   fd 0. EOF: empty.
 * - Syncing. Until it has answered a HELLO (and again after the host
 *   closes the port) the guest ignores everything and sends nothing; it
 *   looks only for the exact HELLO header (magic, type 1, fd 0, flags 0,
 *   stream 0, length 8..4096), so lengths in debris cannot swallow it.
 *   The host must do the same: look for the exact 24 bytes that start
 *   the answer (its header with length 16, then the nonce) rather than
 *   parse frames, because what precedes the answer can be the tail of a
 *   frame meant for an earlier host. The host resends HELLO about every
 *   500 ms until answered: if the previous host vanished mid-frame and
 *   the guest never saw the port close, that half frame swallows the
 *   first HELLO; the guest drops a frame that stays incomplete for
 *   500 ms once a HELLO header came after it. Every HELLO kills all
 *   process groups and forgets all streams; queued output is dropped
 *   (a frame already partly written is finished first).
 * - Streams. A request on a stream id that is still in use is answered
 *   ERROR EBUSY; the running stream is unaffected. DATA, EOF, SIGNAL and
 *   CREDIT for unknown streams (for example one that just ended) are
 *   ignored. Malformed TLVs give ERROR EPROTO, missing or invalid fields
 *   EINVAL. A protocol violation on a running stream (DATA beyond the
 *   window, DATA without FLAG_STDIN, DATA/EOF on fd != 0, an unexpected
 *   frame type) ends it with ERROR EPROTO; its process group is killed.
 *   Unknown TLV tags are skipped; a repeated single-valued tag keeps its
 *   last value. Nothing follows a stream's EXIT or ERROR, nor its DONE
 *   (except a GET's data, below); CREDIT for the last DATA comes before
 *   EXIT or DONE.
 * - EXEC. Without CWD a process runs in "/" (relative paths in every
 *   request are relative to "/"). PATH (for the lookup of ARG[0], too)
 *   comes from the process's own environment, defaulting to
 *   /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin. USER
 *   also sets HOME, USER and LOGNAME (even with FLAG_CLEAR_ENV; ENV
 *   entries still override them); an unknown name gives ERROR ENOENT;
 *   a uid without a passwd entry runs with gid = uid, no supplementary
 *   groups and HOME=/. An ENV entry without '=' removes that name. A
 *   failed chdir, user switch or exec is ERROR with its errno (ENOENT,
 *   EACCES, ...) and no STARTED. Errors of SIGNAL on a process (ESRCH,
 *   EINVAL) are not reported. When the process stops reading its stdin,
 *   the rest of DATA fd 0 is credited and dropped. EXIT waits for EOF
 *   on both pipes, so a background process that keeps stdout open
 *   delays it. Output DATA frames hold at most 64 KiB.
 * - PUT. MODE defaults to 0644; modes (here and in MKDIR) are exact, no
 *   umask. Missing parents are created 0755. PATH that is a directory
 *   (or a link to one, or ends in '/') gives EISDIR before any data; a
 *   symlink at PATH is replaced, not written through. MTIME sets the
 *   modification time only. SIGNAL on a PUT or GET cancels it: ERROR
 *   ECANCELED, and a PUT leaves no file behind.
 * - GET. DONE carries SIZE = st_size at open, MODE = permission bits
 *   (st_mode & 07777) and MTIME; the data is whatever reading gives up to
 *   EOF (so /proc files have SIZE 0 and data). DATA chunks hold at most
 *   256 KiB. ERROR may follow DONE and some DATA (a read error, a file
 *   that shrank meanwhile, a cancel) and ends the stream.
 * - FS. MKDIR MODE defaults to 0755; FLAG_EXCLUSIVE matters only with
 *   FLAG_PARENTS (without it MKDIR always fails with EEXIST if anything
 *   exists there; with it an existing directory, or a link to one, is
 *   fine and anything else is EEXIST). REMOVE_ALL of a missing PATH is
 *   ENOENT. CHMOD needs MODE and follows links; UTIME needs MTIME and
 *   leaves the access time alone. COPY refuses directories (EISDIR),
 *   other non-regular files and copying a file onto itself (EINVAL).
 *   COPY and REMOVE_ALL send PROGRESS about every 250 ms while they
 *   run, none in their first 250 ms: a quick one sends none at all.
 *   READDIR entries that do not fit into one payload come first in DATA
 *   fd 1 frames, each holding whole DIRENT TLVs; DONE, with the last
 *   entries (possibly none), always comes last. Entries that vanish
 *   while being listed are left out.
 * - CONNECT. The socket has TCP_NODELAY. DATA fd 0 that comes before
 *   STARTED waits for the connection (and is dropped with it if that
 *   fails). When the guest's peer stops taking data (a write fails), the
 *   rest of DATA fd 0 is credited and dropped, as for a process that stops
 *   reading its stdin; a failed read ends the stream with ERROR (errno
 *   ECONNRESET, say). CREDIT fd 1 beyond what was sent is capped at what
 *   was sent. SIGNAL (any number) resets the connection (the guest's
 *   peer sees a reset) and is answered ERROR ECANCELED. A qlean-guest
 *   older than CONNECT answers ERROR EPROTO ("unexpected frame type").
 * - FS IDENTITY (version 4) gives a copy of a saved machine (a clone, a
 *   taken spare) its own identity inside the running qlean-guest, where
 *   a shell script would start several processes on the cold translation
 *   cache of a restored TCG guest. PATH is ignored (send "/"); HOSTNAME
 *   is required, the rest optional. In order: the kernel's hostname;
 *   /etc/hostname, when it is a file, gets "NAME\n"; every line of
 *   /etc/hosts that starts with "127.0.1.1" and a space or tab goes, and
 *   "127.0.1.1 NAME" is appended, when the file had one;
 *   /etc/machine-id, when it is a non-empty file, gets "MACHINE_ID\n"; a
 *   network card whose address is OLD_MAC gets NEW_MAC and, when
 *   /run/qlean/udhcpc.pid names a DHCP client, that client releases its
 *   lease (SIGUSR2; the guest waits up to 2 s for the card's IPv4
 *   address to go) and asks for a new one (SIGUSR1); SEED is written to
 *   /dev/urandom, and the kernel reseeds its generator from it
 *   (RNDRESEEDCRNG, whose failure on an old kernel is ignored). The
 *   files are rewritten in place, as a shell's `>` does. With FLAG_WARM
 *   the guest then runs `/bin/sh -c :` as EXEC would (when /bin/sh
 *   exists) and waits for it before DONE: a restored TCG guest
 *   translates process creation afresh, and this pays for it before the
 *   machine is ready rather than in its first command. The first
 *   failure ends it with ERROR (what came before stays done; every step
 *   can run again). A host sends it to a guest of version 4 or later; an
 *   older one would answer ERROR EINVAL ("unknown FS operation").
 *   Elsewhere, and after an ERROR, the host runs the same steps as a
 *   shell script.
 * - FS NET CONFIGURE (version 5) gives a machine's network card its
 *   place on a Qlean network, as the host's configure script would with
 *   `ip`. PATH is ignored (send "/"). The card is the one whose address
 *   (as /sys/class/net/CARD/address shows it, lower case) is OLD_MAC,
 *   a card with a `device` link before a bridge or VLAN with the same
 *   MAC: none is ERROR ENODEV, and nothing was changed. In order: with
 *   NEW_MAC, the card goes down and gets NEW_MAC; it goes up; its IPv4
 *   addresses go (dumped again until none is left); ADDR/PREFIX is
 *   added; with GATEWAY, the default route is replaced by one through
 *   GATEWAY on the card, and /etc/resolv.conf, unless it is a symbolic
 *   link, gets "nameserver GATEWAY\n" (a failure to write it is logged
 *   and passed over, as the script does); the lines of /etc/hosts that
 *   end in " # qlean" go, every other line is kept (with a newline), and
 *   each line of HOSTS (newline-separated "ADDRESS NAME") follows with
 *   " # qlean" appended. Files are written as a shell's `>` does: created
 *   when missing, with the umask commands get. The first failure ends it
 *   with ERROR; every step can run again, and the host's script after an
 *   ERROR does them all anew, looking for the card under OLD_MAC or
 *   NEW_MAC (the card may have NEW_MAC already). An older qlean-guest
 *   answers ERROR EINVAL ("unknown FS operation").
 */

#ifndef QLEAN_GUEST_PROTOCOL_H
#define QLEAN_GUEST_PROTOCOL_H

#include <stdint.h>

#define QLEAN_GUEST_MAGIC        0x314e4c51u  /* "QLN1" */
#define QLEAN_GUEST_VERSION      5u   /* 2: PROGRESS; 3: FLAG_TERMINAL, WINSIZE; 4: FS IDENTITY;
                                       * 5: FS NET CONFIGURE */
#define QLEAN_GUEST_HEADER_SIZE  16u
#define QLEAN_GUEST_MAX_PAYLOAD  (1024u * 1024u)
#define QLEAN_GUEST_WINDOW       (4u * 1024u * 1024u)
#define QLEAN_GUEST_PORT_NAME    "org.qlean.data.0"

typedef enum
{
  /* No frame has type 0, and none is ever sent: a reader answers one as
   * an unexpected type (ERROR EPROTO). The host's stream callbacks use
   * the value for "the stream ended without the guest's last frame"
   * (the channel closed, say), as QLEAN_GUEST_STREAM_CLOSED. */
  QLEAN_GUEST_FRAME_NONE    = 0,
  QLEAN_GUEST_FRAME_HELLO   = 1,
  QLEAN_GUEST_FRAME_EXEC    = 2,
  QLEAN_GUEST_FRAME_STARTED = 3,
  QLEAN_GUEST_FRAME_DATA    = 4,
  QLEAN_GUEST_FRAME_EOF     = 5,
  QLEAN_GUEST_FRAME_SIGNAL  = 6,
  QLEAN_GUEST_FRAME_EXIT    = 7,
  QLEAN_GUEST_FRAME_ERROR   = 8,
  QLEAN_GUEST_FRAME_PUT     = 9,
  QLEAN_GUEST_FRAME_GET     = 10,
  QLEAN_GUEST_FRAME_DONE    = 11,
  QLEAN_GUEST_FRAME_FS      = 12,
  QLEAN_GUEST_FRAME_CREDIT  = 13,
  QLEAN_GUEST_FRAME_CONNECT = 14,
  QLEAN_GUEST_FRAME_PROGRESS = 15,
  QLEAN_GUEST_FRAME_WINSIZE = 16,
} QleanGuestFrameType;

/* TLV entries: u16 tag, u32 length, then the bytes (no terminator). */
typedef enum
{
  QLEAN_GUEST_TAG_ARG    = 1,   /* bytes */
  QLEAN_GUEST_TAG_ENV    = 2,   /* "NAME=value" */
  QLEAN_GUEST_TAG_CWD    = 3,   /* bytes */
  QLEAN_GUEST_TAG_USER   = 4,   /* name, or decimal uid */
  QLEAN_GUEST_TAG_FLAGS  = 5,   /* u32 */
  QLEAN_GUEST_TAG_PATH   = 6,   /* bytes */
  QLEAN_GUEST_TAG_PATH2  = 7,   /* bytes */
  QLEAN_GUEST_TAG_MODE   = 8,   /* u32 */
  QLEAN_GUEST_TAG_MTIME  = 9,   /* i64 nanoseconds since the epoch */
  QLEAN_GUEST_TAG_SIZE   = 10,  /* u64 */
  QLEAN_GUEST_TAG_OP     = 11,  /* u32 QleanGuestFsOp */
  QLEAN_GUEST_TAG_STAT   = 12,  /* QleanGuestStat, packed */
  QLEAN_GUEST_TAG_DIRENT = 13,  /* QleanGuestStat then the entry's name */
  QLEAN_GUEST_TAG_TARGET = 14,  /* a symlink's target */
  QLEAN_GUEST_TAG_PORT   = 15,  /* u32 TCP port (CONNECT) */
  QLEAN_GUEST_TAG_ADDR   = 16,  /* a numeric IP address, text (CONNECT, NET CONFIGURE) */
  QLEAN_GUEST_TAG_WINSIZE = 17, /* u16 rows, u16 cols (EXEC with FLAG_TERMINAL) */
  QLEAN_GUEST_TAG_HOSTNAME = 18, /* text (FS IDENTITY) */
  QLEAN_GUEST_TAG_MACHINE_ID = 19, /* text (FS IDENTITY) */
  QLEAN_GUEST_TAG_SEED   = 20,  /* bytes for /dev/urandom (FS IDENTITY) */
  QLEAN_GUEST_TAG_OLD_MAC = 21, /* "aa:bb:cc:dd:ee:ff" (FS IDENTITY, NET CONFIGURE) */
  QLEAN_GUEST_TAG_NEW_MAC = 22, /* "aa:bb:cc:dd:ee:ff" (FS IDENTITY, NET CONFIGURE) */
  QLEAN_GUEST_TAG_PREFIX = 23,  /* u32 IPv4 prefix length (FS NET CONFIGURE) */
  QLEAN_GUEST_TAG_GATEWAY = 24, /* a numeric IPv4 address, text (FS NET CONFIGURE) */
  QLEAN_GUEST_TAG_HOSTS  = 25,  /* "ADDRESS NAME" lines, text (FS NET CONFIGURE) */
} QleanGuestTag;

typedef enum
{
  QLEAN_GUEST_FLAG_CLEAR_ENV    = 1u << 0,
  QLEAN_GUEST_FLAG_MERGE_STDERR = 1u << 1,
  QLEAN_GUEST_FLAG_STDIN        = 1u << 2,
  QLEAN_GUEST_FLAG_PARENTS      = 1u << 3,  /* PUT, FS MKDIR: create missing parents */
  QLEAN_GUEST_FLAG_NOFOLLOW     = 1u << 4,  /* FS STAT: lstat */
  QLEAN_GUEST_FLAG_EXCLUSIVE    = 1u << 5,  /* FS MKDIR: fail if it exists */
  QLEAN_GUEST_FLAG_TERMINAL     = 1u << 6,  /* EXEC: a pseudo-terminal (version 3) */
  QLEAN_GUEST_FLAG_WARM         = 1u << 7,  /* FS IDENTITY: run `/bin/sh -c :` (version 4) */
} QleanGuestFlags;

typedef enum
{
  QLEAN_GUEST_FS_STAT       = 1,  /* PATH, FLAGS(NOFOLLOW) -> STAT [TARGET when PATH is a link] */
  QLEAN_GUEST_FS_READDIR    = 2,  /* PATH -> DIRENT* (lstat of each, no . ..) */
  QLEAN_GUEST_FS_MKDIR      = 3,  /* PATH, MODE, FLAGS(PARENTS) */
  QLEAN_GUEST_FS_UNLINK     = 4,  /* PATH: a non-directory */
  QLEAN_GUEST_FS_RMDIR      = 5,  /* PATH: an empty directory */
  QLEAN_GUEST_FS_REMOVE_ALL = 6,  /* PATH: a tree, never following links */
  QLEAN_GUEST_FS_RENAME     = 7,  /* PATH -> PATH2 */
  QLEAN_GUEST_FS_LINK       = 8,  /* hard link PATH2 -> PATH */
  QLEAN_GUEST_FS_SYMLINK    = 9,  /* PATH2 is a symlink whose target is PATH */
  QLEAN_GUEST_FS_READLINK   = 10, /* PATH -> TARGET */
  QLEAN_GUEST_FS_CHMOD      = 11, /* PATH, MODE */
  QLEAN_GUEST_FS_COPY       = 12, /* PATH -> PATH2, contents and mode bits -> SIZE */
  QLEAN_GUEST_FS_UTIME      = 13, /* PATH, MTIME; never follows a symlink */
  QLEAN_GUEST_FS_SET_CLOCK  = 14, /* PATH (ignored), MTIME: sets CLOCK_REALTIME */
  QLEAN_GUEST_FS_IDENTITY   = 15, /* PATH (ignored), HOSTNAME, MACHINE_ID?, SEED?,
                                   * OLD_MAC? NEW_MAC?: a copy's own identity */
  QLEAN_GUEST_FS_NET_CONFIGURE = 16, /* PATH (ignored), OLD_MAC, NEW_MAC?, ADDR, PREFIX,
                                      * GATEWAY?, HOSTS: a card's place on its network */
} QleanGuestFsOp;

/* The STAT payload, 56 bytes, fields in this order, each little-endian
 * (written field by field, never as a struct, so padding cannot creep in):
 *   u64 ino, u64 size, u32 mode (st_mode with type bits), u32 uid,
 *   u32 gid, u32 nlink, i64 atime_ns, i64 mtime_ns, i64 ctime_ns */
typedef struct
{
  uint64_t ino;
  uint64_t size;
  uint32_t mode;
  uint32_t uid;
  uint32_t gid;
  uint32_t nlink;
  int64_t  atime_ns;
  int64_t  mtime_ns;
  int64_t  ctime_ns;
} QleanGuestStat;

#define QLEAN_GUEST_STAT_SIZE 56u

#endif /* QLEAN_GUEST_PROTOCOL_H */
