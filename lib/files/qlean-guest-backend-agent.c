/* qlean-guest-backend-agent.c: the file system calls over the stock guest agent
 *
 * SPDX-License-Identifier: MIT
 */

#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <glib/gi18n-lib.h>

#include "qlean-guest-backend-private.h"
#include "qlean-guest-channel-private.h"
#include "qlean-guest-protocol.h"
#include "qlean-machine-fs-private.h"
#include "qlean-machine-private.h"
#include "qlean-sync-private.h"

/* A machine whose transport is the agent runs each file system call as
 * one guest-exec of this fixed script, with the operation and the paths
 * as its positional parameters: paths never become shell text. Only
 * busybox applets are used (the minimal image has nothing else), each
 * chosen for doing the one system call qlean-guest does (unlink, link,
 * rmdir...), with checks before the ones that do more (ln -s and mv into
 * a directory). A failure leaves the tool's "...: strerror" line on
 * stderr, which gives back the guest's errno. The stat format is
 * qlean-guest's STAT fields, in its order. */
static const char fs_script[] =
  "F='%i %s %f %u %g %h %X %Y %Z'\n"
  "fail () { echo \"$1\" >&2; exit 1; }\n"
  "exists () { [ -e \"$1\" ] || [ -L \"$1\" ]; }\n"
  "op=$1; shift\n"
  "case $op in\n"
  "stat) stat -L -c \"$F\" -- \"$1\" || exit 1\n"
  "  if [ -L \"$1\" ]; then readlink -- \"$1\"; fi ;;\n"
  "lstat) stat -c \"$F\" -- \"$1\" || exit 1\n"
  "  if [ -L \"$1\" ]; then readlink -- \"$1\"; fi ;;\n"
  "readdir) cd -- \"$1\" || exit 1\n"
  "  for f in .* *; do\n"
  "    case $f in .|..) continue ;; esac\n"
  "    exists \"$f\" || continue\n"
  "    stat -c \"$F\" -- \"$f\" 2>/dev/null && printf '%s\\0' \"$f\"\n"
  "  done; exit 0 ;;\n"
  "mkdir) mkdir -m \"$2\" -- \"$1\" ;;\n"
  "mkdir-p) mkdir -p -m \"$2\" -- \"$1\" ;;\n"
  "mkdir-px) if exists \"$1\"; then fail 'File exists'; fi; mkdir -p -m \"$2\" -- \"$1\" ;;\n"
  "unlink) if [ -d \"$1\" ] && [ ! -L \"$1\" ]; then fail 'Is a directory'; fi\n"
  "  unlink -- \"$1\" ;;\n"
  "rmdir) rmdir -- \"$1\" ;;\n"
  "remove-all) exists \"$1\" || { stat -c '' -- \"$1\"; exit 1; }\n"
  "  rm -rf -- \"$1\" ;;\n"
  "rename) if [ \"$1\" -ef \"$2\" ]; then exit 0; fi\n"
  "  if [ -d \"$2\" ] && [ ! -L \"$2\" ]; then\n"
  "    if [ ! -d \"$1\" ] || [ -L \"$1\" ]; then exists \"$1\" || { stat -c '' -- \"$1\"; exit 1; }\n"
  "      fail 'Is a directory'; fi\n"
  "    rmdir -- \"$2\" || exit 1\n"
  "  fi\n"
  "  mv -f -T -- \"$1\" \"$2\" ;;\n"
  "link) link -- \"$1\" \"$2\" ;;\n"
  "symlink) if exists \"$2\"; then fail 'File exists'; fi; ln -s -- \"$1\" \"$2\" ;;\n"
  "readlink) if [ ! -L \"$1\" ]; then stat -c '' -- \"$1\" || exit 1; fail 'Invalid argument'; fi\n"
  "  readlink -- \"$1\" ;;\n"
  "chmod) chmod \"$2\" -- \"$1\" ;;\n"
  "utime) exists \"$1\" || { stat -c '' -- \"$1\"; exit 1; }\n"
  "  touch -c -h -d \"@$2\" -- \"$1\" ;;\n"
  "copy) stat -L -c '' -- \"$1\" || exit 1\n"
  "  if [ -d \"$1\" ]; then fail 'Is a directory'; fi\n"
  "  cat -- \"$1\" > \"$2\" || exit 1\n"
  "  chmod \"$(stat -L -c %a -- \"$1\")\" -- \"$2\" || exit 1\n"
  "  stat -L -c %s -- \"$2\" ;;\n"
  "*) fail 'Function not implemented' ;;\n"
  "esac\n";

/* The errno whose text ends the last line of @text: glibc's strerror()
 * texts, which busybox (static against glibc in Debian) prints too. */
static int
errno_from_text (const char *text)
{
  g_autofree char *copy = g_strchomp (g_strdup (text ? text : ""));
  const char *line = strrchr (copy, '\n');
  gsize best_len = 0;
  int best = 0;

  line = line ? line + 1 : copy;
  for (int e = 1; e < 134; e++)
    {
      const char *message = g_strerror (e);
      gsize len = strlen (message);

      if (len > best_len && g_str_has_suffix (line, message))
        {
          best = e;
          best_len = len;
        }
    }

  return best;
}

/* The stat line's nine fields in qlean-guest's STAT encoding. */
static gboolean
parse_stat_line (const char *line,
                 guint8      out[QLEAN_GUEST_STAT_SIZE])
{
  guint64 ino, size;
  guint mode, uid, gid, nlink;
  gint64 atime, mtime, ctime;
  guint32 u32;
  guint64 u64;
  gsize at = 0;

  if (sscanf (line, "%" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %x %u %u %u %" G_GINT64_FORMAT
              " %" G_GINT64_FORMAT " %" G_GINT64_FORMAT,
              &ino, &size, &mode, &uid, &gid, &nlink, &atime, &mtime, &ctime) != 9)
    return FALSE;

#define PUT64(v) (u64 = GUINT64_TO_LE ((guint64) (v)), memcpy (out + at, &u64, 8), at += 8)
#define PUT32(v) (u32 = GUINT32_TO_LE ((guint32) (v)), memcpy (out + at, &u32, 4), at += 4)
  PUT64 (ino);
  PUT64 (size);
  PUT32 (mode);
  PUT32 (uid);
  PUT32 (gid);
  PUT32 (nlink);
  PUT64 (atime * G_GINT64_CONSTANT (1000000000));
  PUT64 (mtime * G_GINT64_CONSTANT (1000000000));
  PUT64 (ctime * G_GINT64_CONSTANT (1000000000));
#undef PUT64
#undef PUT32

  return at == QLEAN_GUEST_STAT_SIZE;
}

static const char *
op_name (guint32 op,
         guint32 flags)
{
  switch (op)
    {
    case QLEAN_GUEST_FS_STAT: return (flags & QLEAN_GUEST_FLAG_NOFOLLOW) ? "lstat" : "stat";
    case QLEAN_GUEST_FS_READDIR: return "readdir";
    case QLEAN_GUEST_FS_MKDIR:
      if (!(flags & QLEAN_GUEST_FLAG_PARENTS))
        return "mkdir";
      return (flags & QLEAN_GUEST_FLAG_EXCLUSIVE) ? "mkdir-px" : "mkdir-p";
    case QLEAN_GUEST_FS_UNLINK: return "unlink";
    case QLEAN_GUEST_FS_RMDIR: return "rmdir";
    case QLEAN_GUEST_FS_REMOVE_ALL: return "remove-all";
    case QLEAN_GUEST_FS_RENAME: return "rename";
    case QLEAN_GUEST_FS_LINK: return "link";
    case QLEAN_GUEST_FS_SYMLINK: return "symlink";
    case QLEAN_GUEST_FS_READLINK: return "readlink";
    case QLEAN_GUEST_FS_CHMOD: return "chmod";
    case QLEAN_GUEST_FS_COPY: return "copy";
    case QLEAN_GUEST_FS_UTIME: return "utime";
    default: return NULL;
    }
}

/* Output of the script after its first line: a link's target, as
 * readlink printed it with its newline. */
static void
add_target (QleanGuestTlv *tlv,
            const char    *rest,
            gsize          len)
{
  if (len > 0 && rest[len - 1] == '\n')
    len--;
  qlean_guest_tlv_add (tlv, QLEAN_GUEST_TAG_TARGET, rest, len);
}

/* "Cannot <action> ...: the guest agent's command answered something
 * unexpected", for output that does not parse. */
static gboolean
malformed (QleanMachine    *machine,
           QleanFsRequest  *req,
           GError         **error)
{
  g_autofree char *display = g_filename_display_name (req->path);
  g_autofree char *display2 = req->path2 ? g_filename_display_name (req->path2) : NULL;
  g_autofree char *what = qlean_fs_action_failed (req->action, machine, display, display2);

  g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
               _("%s: the guest agent's command answered something unexpected"), what);
  return FALSE;
}

/* Runs the script for @req in the guest; returns its result, or NULL
 * with @error set when the agent could not run it. */
static QleanExecResult *
run_script (QleanMachine    *machine,
            QleanFsRequest  *req,
            const char      *name,
            GCancellable    *cancellable,
            GError         **error)
{
  g_autofree char *number = NULL;
  QleanExecResult *result;
  GError *local_error = NULL;
  const char *args[] = { name, req->path, NULL, NULL };

  if (req->op == QLEAN_GUEST_FS_MKDIR || req->op == QLEAN_GUEST_FS_CHMOD)
    args[2] = number = g_strdup_printf ("%o", req->has_mode ? (req->mode & 07777) : 0755);
  else if (req->op == QLEAN_GUEST_FS_UTIME)   /* busybox's touch takes whole seconds */
    args[2] = number = g_strdup_printf ("%" G_GINT64_FORMAT,
                                        req->mtime_ns / G_GINT64_CONSTANT (1000000000));
  else
    args[2] = req->path2;

  result = qlean_machine_agent_sh_run (machine, cancellable, &local_error, fs_script, args);
  if (result == NULL)
    {
      g_propagate_error (error, qlean_machine_agent_error (machine, req->action, req->path,
                                                           req->path2, local_error));
      g_error_free (local_error);
    }

  return result;
}

/* The script failed: its last stderr line, as qlean-guest's ERROR
 * payload (errno, then the text), makes the error. */
static GError *
script_error (QleanMachine    *machine,
              QleanFsRequest  *req,
              QleanExecResult *result)
{
  g_autofree char *text = qlean_exec_result_get_stderr_text (result);
  g_autoptr(GByteArray) payload = g_byte_array_new ();
  g_autoptr(GBytes) bytes = NULL;
  guint32 err = GUINT32_TO_LE (errno_from_text (text));
  const char *message;

  g_strchomp (text);
  message = strrchr (text, '\n') ? strrchr (text, '\n') + 1 : text;
  g_byte_array_append (payload, (const guint8 *) &err, 4);
  g_byte_array_append (payload, (const guint8 *) message, strlen (message));
  bytes = g_byte_array_free_to_bytes (g_steal_pointer (&payload));
  return qlean_machine_fs_error (machine, req->action, req->path, req->path2, bytes);
}

/* STAT's output: the stat line, then a link's target. */
static gboolean
decode_stat (QleanGuestTlv *tlv,
             const char    *out,
             gsize          out_len)
{
  guint8 st[QLEAN_GUEST_STAT_SIZE];
  const char *nl = memchr (out, '\n', out_len);
  g_autofree char *line = nl ? g_strndup (out, nl - out) : NULL;

  if (line == NULL || !parse_stat_line (line, st))
    return FALSE;
  qlean_guest_tlv_add (tlv, QLEAN_GUEST_TAG_STAT, st, sizeof st);
  if ((gsize) (nl + 1 - out) < out_len)
    add_target (tlv, nl + 1, out_len - (nl + 1 - out));
  return TRUE;
}

/* READDIR's output: a stat line and a NUL-terminated name per entry,
 * appended to @listing as qlean-guest's DIRENT entries. */
static gboolean
decode_listing (GByteArray *listing,
                const char *out,
                gsize       out_len)
{
  gsize at = 0;

  while (at < out_len)
    {
      guint8 st[QLEAN_GUEST_STAT_SIZE];
      const char *nl = memchr (out + at, '\n', out_len - at);
      const char *nul = nl ? memchr (nl + 1, '\0', out_len - (nl + 1 - out)) : NULL;
      g_autofree char *line = NULL;
      g_autoptr(GByteArray) entry = NULL;
      g_autoptr(QleanGuestTlv) one = qlean_guest_tlv_new ();
      g_autoptr(GBytes) encoded = NULL;

      if (nul == NULL)
        return FALSE;
      line = g_strndup (out + at, nl - (out + at));
      if (!parse_stat_line (line, st))
        return FALSE;
      entry = g_byte_array_sized_new (QLEAN_GUEST_STAT_SIZE + (nul - nl));
      g_byte_array_append (entry, st, sizeof st);
      g_byte_array_append (entry, (const guint8 *) nl + 1, nul - (nl + 1));
      qlean_guest_tlv_add (one, QLEAN_GUEST_TAG_DIRENT, entry->data, entry->len);
      encoded = qlean_guest_tlv_free_to_bytes (g_steal_pointer (&one));
      g_byte_array_append (listing, g_bytes_get_data (encoded, NULL), g_bytes_get_size (encoded));
      at = nul + 1 - out;
    }

  return TRUE;
}

/* Blocking (a task thread): runs the FS request @req through the QEMU
 * guest agent alone, and answers as qlean-guest would: req->done gets
 * the DONE payload, req->collected the DIRENT entries of a READDIR,
 * and a failure the same G_IO_ERROR code and message form. */
static gboolean
agent_fs (QleanMachine    *machine,
          QleanFsRequest  *req,
          GCancellable    *cancellable,
          GError         **error)
{
  const char *name = op_name (req->op, req->flags);
  g_autoptr(QleanExecResult) result = NULL;
  g_autoptr(QleanGuestTlv) tlv = qlean_guest_tlv_new ();
  const char *out;
  gsize out_len;
  gboolean ok = TRUE;

  if (name == NULL)
    {
      g_autofree char *display = g_filename_display_name (req->path);
      g_autofree char *display2 = req->path2 ? g_filename_display_name (req->path2) : NULL;
      g_autofree char *what = qlean_fs_action_failed (req->action, machine, display, display2);

      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   _("%s: this call needs qlean-guest, and the machine reaches its guest "
                     "through the QEMU guest agent alone"), what);
      return FALSE;
    }

  result = run_script (machine, req, name, cancellable, error);
  if (result == NULL)
    return FALSE;

  if (!qlean_exec_result_success (result))
    {
      g_propagate_error (error, script_error (machine, req, result));
      return FALSE;
    }

  out = g_bytes_get_data (qlean_exec_result_get_stdout (result), &out_len);
  if (out == NULL)
    out = "";

  switch (req->op)
    {
    case QLEAN_GUEST_FS_STAT:
      ok = decode_stat (tlv, out, out_len);
      break;

    case QLEAN_GUEST_FS_READDIR:
      ok = decode_listing (req->collected, out, out_len);
      break;

    case QLEAN_GUEST_FS_READLINK:
      add_target (tlv, out, out_len);
      break;

    case QLEAN_GUEST_FS_COPY:
      {
        g_autofree char *text = g_strndup (out, out_len);
        guint64 size = g_ascii_strtoull (text, NULL, 10);
        guint64 le = GUINT64_TO_LE (size);

        qlean_guest_tlv_add (tlv, QLEAN_GUEST_TAG_SIZE, &le, 8);
        break;
      }

    default:
      break;
    }

  if (!ok)
    return malformed (machine, req, error);

  req->done = qlean_guest_tlv_free_to_bytes (g_steal_pointer (&tlv));
  return TRUE;
}

gboolean
qlean_guest_backend_agent_run (QleanMachine    *machine,
                               QleanFsRequest  *req,
                               GCancellable    *cancellable,
                               GError         **error)
{
  if (req->request == QLEAN_GUEST_FRAME_GET)
    return qlean_machine_agent_get (machine, req->path, NULL, req->collected, cancellable, error);
  if (req->request == QLEAN_GUEST_FRAME_PUT)
    return qlean_machine_agent_put (machine, req->path, NULL, req->contents, req->mode, -1,
                                    cancellable, error);
  return agent_fs (machine, req, cancellable, error);
}

static void
agent_fs_thread (GTask        *task,
                 gpointer      source_object,
                 gpointer      task_data,
                 GCancellable *cancellable)
{
  GError *error = NULL;

  if (qlean_guest_backend_agent_run (source_object, task_data, cancellable, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

/* Every call blocks on the agent's answers, so each runs on a thread
 * of its own rather than on the worker. */
static void
agent_fs_start (QleanMachine *machine,
                GTask        *task)
{
  g_task_run_in_thread (task, agent_fs_thread);
  g_object_unref (task);
}

const QleanGuestBackend qlean_guest_backend_agent = {
  .name = "agent",
  .any_path = FALSE,
  .fs_start = agent_fs_start,
};
