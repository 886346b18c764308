/* test-files-tree.c: whole trees up and down, on real QEMU
 *
 * SPDX-License-Identifier: MIT
 *
 * Part of test-files (and of files-agent, the same tests over the stock
 * guest agent alone), apart from test-files.c because it is about one
 * thing: a tree with everything a transfer must keep, and, over the
 * agent, the single tar stream that moves it (lib/files/qlean-agent-tar.c):
 * that it is one, that the guest keeps no temporary file whether the
 * transfer worked or not, that a guest without tar still gets its
 * files, and that a hostile guest's stream writes nothing outside the
 * destination. The guest's tar is swapped for scripts to play those
 * guests.
 */

#include "config.h"

#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <utime.h>
#include <glib/gstdio.h>

#include <qlean/qlean.h>
#include "test-common.h"
#include "test-files.h"
#include "tree-fixture.h"

static void
guest_sh (QleanMachine *machine,
          const char   *command)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanExecResult) result = qlean_machine_exec (machine, command, NULL, &error);

  g_assert_no_error (error);
  if (!qlean_exec_result_success (result))
    g_error ("guest command failed: %s: %s", command,
             (char *) g_bytes_get_data (qlean_exec_result_get_stderr (result), NULL));
}

static char *
guest_output (QleanMachine *machine,
              const char   *command)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QleanExecResult) result = qlean_machine_exec (machine, command, NULL, &error);

  g_assert_no_error (error);
  g_assert_true (qlean_exec_result_success (result));
  return qlean_exec_result_get_stdout_text (result);
}

/* The guest's temporary files that mktemp names. */
static char *
guest_temporaries (QleanMachine *machine)
{
  return guest_output (machine, "ls -A /tmp | grep '^tmp\\.' || :");
}

/* The guest's /bin/sh for the tests below: a sh -c script runs after
 * the shell functions in /sh-prefix, which replace tar as a hostile or
 * broken guest's would (a script in PATH would not do: busybox's shell
 * runs its own tar whatever PATH holds). */
static const char fake_sh[] =
  "#!/bin/busybox sh\n"
  "if [ \"$1\" = -c ] && [ -f /sh-prefix ]; then s=$2; shift 2; exec /bin/busybox sh -c \"$(cat /sh-prefix)\n$s\" \"$@\"; fi\n"
  "exec /bin/busybox sh \"$@\"\n";

/* The guest's tar, as the guest's shell runs it, replaced by the shell
 * functions @functions (which may run the real one as `command tar`);
 * put_back_tar() undoes it. */
static void
replace_tar (QleanMachine *machine,
             const char   *functions)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) script = g_bytes_new_static (fake_sh, strlen (fake_sh));
  g_autoptr(GBytes) prefix = g_bytes_new (functions, strlen (functions));

  g_assert_true (qlean_machine_write (machine, "/sh-prefix", prefix, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_machine_write (machine, "/fake-sh", script, NULL, &error));
  g_assert_no_error (error);
  guest_sh (machine, "chmod 755 /fake-sh && mv /bin/sh /bin/sh.real && mv /fake-sh /bin/sh");
}

/* Whether the guest has the busybox that fake_sh runs; the test is
 * skipped, saying why, where it has not. */
static gboolean
have_busybox_sh (QleanMachine *machine)
{
  g_autofree char *out = guest_output (machine, "[ -x /bin/busybox ] && echo yes || :");

  if (g_str_equal (out, "yes\n"))
    return TRUE;
  g_test_skip ("the guest has no /bin/busybox to play a hostile or broken tar with");
  return FALSE;
}

static void
put_back_tar (QleanMachine *machine)
{
  guest_sh (machine, "rm -f /sh-prefix && mv /bin/sh.real /bin/sh");
}

static void
assert_guest_tree (QleanMachine *machine,
                   const char   *path)
{
  g_autofree char *command = g_strdup_printf ("cd %s && stat -c '%%n %%a %%Y' . a a/b a/b/run.sh empty "
                                              "a/'-dash name\nnewline' && readlink link && "
                                              "sh a/b/run.sh", path);
  g_autofree char *stats = guest_output (machine, command);

  g_assert_cmpstr (stats, ==,
                   ". 751 1000000005\na 755 1000000003\na/b 750 1000000002\n"
                   "a/b/run.sh 750 1000000000\nempty 700 1000000004\n"
                   "a/-dash name\nnewline 604 1000000001\na/b/run.sh\ntree\n");
}

/* Up, onto a new path whose parents are missing and into an existing
 * directory; back, to a new path and twice into an existing directory
 * (the second time over what the first made). */
static void
test_tree_keeps_everything (void)
{
  QleanMachine *machine = test_files_machine ();
  g_autoptr(GError) error = NULL;
  g_autofree char *tree = NULL;
  g_autofree char *base = NULL;
  g_autofree char *guest_into = NULL;
  g_autofree char *out = NULL;
  g_autofree char *back = NULL;
  g_autofree char *inside = NULL;
  g_autoptr(GFile) src = NULL;
  g_autoptr(GFile) back_file = NULL;
  g_autoptr(GFile) out_file = NULL;

  if (machine == NULL)
    return;

  tree = tree_fixture_make ();
  base = g_path_get_basename (tree);
  src = g_file_new_for_path (tree);
  guest_sh (machine, "rm -rf /tk");

  g_assert_true (qlean_machine_upload (machine, src, "/tk/new/copy", NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_machine_upload (machine, src, "/tk/new", NULL, &error));
  g_assert_no_error (error);
  guest_into = g_strdup_printf ("/tk/new/%s", base);
  assert_guest_tree (machine, "/tk/new/copy");
  assert_guest_tree (machine, guest_into);

  out = g_dir_make_tmp ("qlean-ftree-out-XXXXXX", &error);
  g_assert_no_error (error);
  out_file = g_file_new_for_path (out);
  back = g_build_filename (out, "back", NULL);
  back_file = g_file_new_for_path (back);
  g_assert_true (qlean_machine_download (machine, "/tk/new/copy", back_file, NULL, &error));
  g_assert_no_error (error);
  tree_fixture_assert_same (tree, back);
  inside = g_build_filename (out, "copy", NULL);
  for (int round = 0; round < 2; round++)
    {
      g_assert_true (qlean_machine_download (machine, "/tk/new/copy", out_file, NULL, &error));
      g_assert_no_error (error);
      tree_fixture_assert_same (tree, inside);
    }

  tree_fixture_rm_rf (tree);
  tree_fixture_rm_rf (out);
}

/* A single file keeps the same destination rules as a tree, on both
 * transports: a new name, replacing a file, inside an existing
 * directory (under an awkward name too), missing parents made; and it
 * fails, leaving no temporary file, where a directory of its name is in
 * the way. Over the agent the upload finds out whether the destination
 * is a directory by itself (qlean_machine_agent_upload_file()). */
static void
test_file_destinations (void)
{
  QleanMachine *machine = test_files_machine ();
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *path = NULL;
  g_autofree char *listing = NULL;
  g_autoptr(GFile) src = NULL;
  struct utimbuf times = { 1000000007, 1000000007 };

  if (machine == NULL)
    return;

  dir = g_dir_make_tmp ("qlean-fdest-XXXXXX", &error);
  g_assert_no_error (error);
  path = g_build_filename (dir, "-dash 'q' name", NULL);
  g_assert_true (g_file_set_contents (path, "one\n", -1, &error));
  g_assert_cmpint (g_chmod (path, 0640), ==, 0);
  g_assert_cmpint (g_utime (path, &times), ==, 0);
  src = g_file_new_for_path (path);
  guest_sh (machine, "rm -rf /fd && mkdir -p /fd/into /fd/blocked/'-dash '\\''q'\\'' name' && echo old > /fd/old");

  /* A new name, whose parents are missing. */
  g_assert_true (qlean_machine_upload (machine, src, "/fd/new/parents/named", NULL, &error));
  g_assert_no_error (error);
  /* Over an existing file. */
  g_assert_true (qlean_machine_upload (machine, src, "/fd/old", NULL, &error));
  g_assert_no_error (error);
  /* Into an existing directory, under its own name. */
  g_assert_true (qlean_machine_upload (machine, src, "/fd/into", NULL, &error));
  g_assert_no_error (error);
  listing = guest_output (machine, "cd /fd && stat -c '%n %a %Y' new/parents/named old into/* && "
                                   "cat new/parents/named old into/*");
  g_assert_cmpstr (listing, ==,
                   "new/parents/named 640 1000000007\nold 640 1000000007\n"
                   "into/-dash 'q' name 640 1000000007\none\none\none\n");

  /* A directory of the file's name is in the way: refused as rename(2)
   * does, and nothing is left behind in either directory. */
  g_assert_false (qlean_machine_upload (machine, src, "/fd/blocked", NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_IS_DIRECTORY);
  g_clear_error (&error);
  g_free (listing);
  listing = guest_output (machine, "ls -A /fd /fd/blocked");
  g_assert_cmpstr (listing, ==, "/fd:\nblocked\ninto\nnew\nold\n\n/fd/blocked:\n-dash 'q' name\n");

  tree_fixture_rm_rf (dir);
}

/* Over the agent, a tree is one tar stream each way, and the guest keeps
 * no temporary file, whether the transfer worked or failed. */
static void
test_tree_one_stream (void)
{
  QleanMachine *machine = test_files_machine ();
  g_autoptr(GError) error = NULL;
  g_autofree char *tree = NULL;
  g_autofree char *out = NULL;
  g_autofree char *back = NULL;
  g_autofree char *before = NULL;
  g_autofree char *after = NULL;
  g_autofree char *calls = NULL;
  g_autoptr(GFile) src = NULL;
  g_autoptr(GFile) dst = NULL;

  if (!test_files_on_agent ())
    {
      g_test_skip ("qlean-guest moves trees over its own channel, without tar");
      return;
    }
  if (machine == NULL || !have_busybox_sh (machine))
    return;

  tree = tree_fixture_make ();
  src = g_file_new_for_path (tree);
  out = g_dir_make_tmp ("qlean-ftree-out-XXXXXX", &error);
  g_assert_no_error (error);
  back = g_build_filename (out, "back", NULL);
  dst = g_file_new_for_path (back);
  guest_sh (machine, "rm -rf /ts /tar-calls");
  before = guest_temporaries (machine);

  /* Worked: one tar each way. */
  replace_tar (machine, "tar () { echo \"$1\" >> /tar-calls; command tar \"$@\"; }\n");
  g_assert_true (qlean_machine_upload (machine, src, "/ts", NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_machine_download (machine, "/ts", dst, NULL, &error));
  g_assert_no_error (error);
  tree_fixture_assert_same (tree, back);
  calls = guest_output (machine, "cat /tar-calls");
  g_assert_cmpstr (calls, ==, "-x\n-c\n");
  after = guest_temporaries (machine);
  g_assert_cmpstr (after, ==, before);
  put_back_tar (machine);

  /* Failed: the guest's tar fails either way, after writing a part. */
  replace_tar (machine,
               "tar () { [ \"$1\" = -c ] && echo partial > \"$3\"; "
               "echo 'tar: this tar always fails' >&2; return 2; }\n");
  g_assert_false (qlean_machine_upload (machine, src, "/ts-fail", NULL, &error));
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "this tar always fails"));
  g_clear_error (&error);
  tree_fixture_rm_rf (back);
  g_assert_false (qlean_machine_download (machine, "/ts", dst, NULL, &error));
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "this tar always fails"));
  g_clear_error (&error);
  g_free (after);
  after = guest_temporaries (machine);
  g_assert_cmpstr (after, ==, before);
  put_back_tar (machine);

  /* A stream the host refuses, after the guest's tar worked. */
  replace_tar (machine, "tar () { [ \"$1\" = -c ] && { echo 'not a tar stream' > \"$3\"; return 0; }; "
                        "command tar \"$@\"; }\n");
  g_assert_false (qlean_machine_download (machine, "/ts", dst, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
  g_clear_error (&error);
  g_free (after);
  after = guest_temporaries (machine);
  g_assert_cmpstr (after, ==, before);
  put_back_tar (machine);

  /* No tar at all: the files move one by one, all the same. */
  tree_fixture_rm_rf (back);
  replace_tar (machine, "tar () { echo 'sh: tar: not found' >&2; return 127; }\n"
                        "command () { [ \"$1\" = -v ] && [ \"$2\" = tar ] && return 1; "
                        "unset -f command; command \"$@\"; }\n");
  g_assert_true (qlean_machine_upload (machine, src, "/ts-none", NULL, &error));
  g_assert_no_error (error);
  g_assert_true (qlean_machine_download (machine, "/ts-none", dst, NULL, &error));
  g_assert_no_error (error);
  put_back_tar (machine);
  tree_fixture_assert_same (tree, back);

  tree_fixture_rm_rf (tree);
  tree_fixture_rm_rf (out);
}

/* A guest's tree with links that point outside, and a guest whose tar
 * sends a stream that would write through a link it planted: nothing
 * outside the destination changes. */
static void
test_tree_hostile_download (void)
{
  QleanMachine *machine = test_files_machine ();
  g_autoptr(GError) error = NULL;
  g_autofree char *top = NULL;
  g_autofree char *outside = NULL;
  g_autofree char *sentinel = NULL;
  g_autofree char *dest = NULL;
  g_autofree char *setup = NULL;
  g_autofree char *contents = NULL;
  g_autofree char *listing = NULL;
  g_autofree char *list_outside = NULL;
  g_autoptr(GFile) dest_file = NULL;

  if (machine == NULL)
    return;

  top = g_dir_make_tmp ("qlean-ftree-hostile-XXXXXX", &error);
  g_assert_no_error (error);
  outside = g_build_filename (top, "outside", NULL);
  sentinel = g_build_filename (outside, "sentinel", NULL);
  dest = g_build_filename (top, "dest", NULL);
  dest_file = g_file_new_for_path (dest);
  g_assert_cmpint (g_mkdir (outside, 0755), ==, 0);
  g_assert_true (g_file_set_contents (sentinel, "untouched", -1, NULL));
  list_outside = g_strdup_printf ("ls -A %s", outside);

  /* Links in the guest's tree come as links, never followed, the second
   * time over what the first made. */
  setup = g_strdup_printf ("rm -rf /th && mkdir -p /th/d && ln -s %s /th/abs && "
                           "ln -s ../../../../../../..%s /th/d/up && echo x > /th/f",
                           sentinel, outside);
  guest_sh (machine, setup);
  g_assert_cmpint (g_mkdir (dest, 0755), ==, 0);
  for (int round = 0; round < 2; round++)
    {
      g_autofree char *abs = g_build_filename (dest, "th", "abs", NULL);
      g_autofree char *target = NULL;

      g_assert_true (qlean_machine_download (machine, "/th", dest_file, NULL, &error));
      g_assert_no_error (error);
      target = g_file_read_link (abs, NULL);
      g_assert_cmpstr (target, ==, sentinel);
    }
  g_assert_true (g_file_get_contents (sentinel, &contents, NULL, NULL));
  g_assert_cmpstr (contents, ==, "untouched");
  g_clear_pointer (&contents, g_free);
  tree_fixture_rm_rf (dest);

  /* The stream itself hostile: a link to the host directory, then a
   * file through it. Only the agent's path reads a guest's stream. */
  if (test_files_on_agent () && have_busybox_sh (machine))
    {
      g_autoptr(GByteArray) tar = g_byte_array_new ();
      g_autoptr(GBytes) bytes = NULL;

      tree_fixture_add_member (tar, "./", '5', NULL, NULL);
      tree_fixture_add_member (tar, "./l", '2', outside, NULL);
      tree_fixture_add_member (tar, "./l/sentinel", '0', NULL, "pwned");
      tree_fixture_add_member (tar, "./l/new", '0', NULL, "pwned");
      tree_fixture_end (tar);
      bytes = g_byte_array_free_to_bytes (g_steal_pointer (&tar));
      g_assert_true (qlean_machine_write (machine, "/hostile.tar", bytes, NULL, &error));
      g_assert_no_error (error);

      replace_tar (machine, "tar () { [ \"$1\" = -c ] && { cat /hostile.tar > \"$3\"; return 0; }; "
                            "command tar \"$@\"; }\n");
      g_assert_false (qlean_machine_download (machine, "/th", dest_file, NULL, &error));
      put_back_tar (machine);
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS);
      g_clear_error (&error);
    }

  g_assert_true (g_file_get_contents (sentinel, &contents, NULL, NULL));
  g_assert_cmpstr (contents, ==, "untouched");
  listing = tree_fixture_run (list_outside);
  g_assert_cmpstr (listing, ==, "sentinel\n");

  tree_fixture_rm_rf (top);
}

void
test_files_tree_add_tests (void)
{
  g_test_add_func ("/files/tree-keeps-everything", test_tree_keeps_everything);
  g_test_add_func ("/files/file-destinations", test_file_destinations);
  g_test_add_func ("/files/tree-one-stream", test_tree_one_stream);
  g_test_add_func ("/files/tree-hostile-download", test_tree_hostile_download);
}
