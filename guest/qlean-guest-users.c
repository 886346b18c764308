/* qlean-guest-users.c: USER, from /etc/passwd and /etc/group
 *
 * SPDX-License-Identifier: MIT
 *
 * The program is static, and NSS does not work in a static program, so
 * the user an EXEC asks for is looked up by parsing the two files by
 * hand. Apart from exec because it is a parser with its own rules
 * (numeric uids, users without an entry), not a step of starting.
 */

#include "qlean-guest-private.h"

/* ------------------------------------------------------------------------ */
/* Users                                                                     */

void user_info_clear (UserInfo *ui)
{
  free (ui->name);
  free (ui->home);
  free (ui->groups);
  memset (ui, 0, sizeof *ui);
}

/* Splits `line` at ':' into at most `max` fields; returns how many. */
static int split_fields (char *line, char **f, int max)
{
  int n = 0;
  f[n++] = line;
  for (char *p = line; *p && n < max; p++)
    if (*p == ':')
      {
        *p = 0;
        f[n++] = p + 1;
      }
  return n;
}

bool parse_id (const char *s, unsigned long *out)
{
  char *end;
  unsigned long v;

  if (!*s || *s < '0' || *s > '9')
    return false;
  errno = 0;
  v = strtoul (s, &end, 10);
  if (errno || *end || v >= 0xFFFFFFFFul)
    return false;
  *out = v;
  return true;
}

static void add_group (UserInfo *ui, size_t *cap, gid_t g)
{
  for (size_t i = 0; i < ui->n_groups; i++)
    if (ui->groups[i] == g)
      return;
  if (ui->n_groups == *cap)
    {
      *cap = *cap ? *cap * 2 : 16;
      ui->groups = xrealloc (ui->groups, *cap * sizeof *ui->groups);
    }
  ui->groups[ui->n_groups++] = g;
}

/* Resolves USER (a name, or a decimal uid) from /etc/passwd and
 * /etc/group, parsed by hand: NSS does not work in a static program. A
 * uid that has no passwd entry runs with gid = uid, no supplementary
 * groups and HOME=/. Returns 0 or an errno (ENOENT: no such user). */
int lookup_user (const char *spec, UserInfo *ui)
{
  unsigned long want = 0;
  bool numeric = parse_id (spec, &want);
  bool found = false;
  size_t cap = 0;
  char *pw, *gr, *line, *save = NULL;

  memset (ui, 0, sizeof *ui);
  pw = read_small_file ("/etc/passwd", NULL);
  for (line = pw ? strtok_r (pw, "\n", &save) : NULL; line; line = strtok_r (NULL, "\n", &save))
    {
      char *f[7];
      unsigned long uid, gid;
      if (split_fields (line, f, 7) < 7)
        continue;
      if (!parse_id (f[2], &uid) || !parse_id (f[3], &gid))
        continue;
      if (numeric ? uid != want : strcmp (f[0], spec) != 0)
        continue;
      ui->uid = (uid_t) uid;
      ui->gid = (gid_t) gid;
      ui->name = xstrdup (f[0]);
      ui->home = xstrdup (*f[5] ? f[5] : "/");
      found = true;
      break;
    }
  free (pw);
  if (!found)
    {
      if (!numeric)
        return ENOENT;
      ui->uid = (uid_t) want;
      ui->gid = (gid_t) want;
      ui->name = xstrdup (spec);
      ui->home = xstrdup ("/");
      add_group (ui, &cap, ui->gid);
      return 0;
    }

  add_group (ui, &cap, ui->gid);
  gr = read_small_file ("/etc/group", NULL);
  save = NULL;
  for (line = gr ? strtok_r (gr, "\n", &save) : NULL; line; line = strtok_r (NULL, "\n", &save))
    {
      char *f[4], *m, *msave = NULL;
      unsigned long gid;
      if (split_fields (line, f, 4) < 4 || !parse_id (f[2], &gid))
        continue;
      for (m = strtok_r (f[3], ",", &msave); m; m = strtok_r (NULL, ",", &msave))
        if (strcmp (m, ui->name) == 0)
          {
            add_group (ui, &cap, (gid_t) gid);
            break;
          }
    }
  free (gr);
  return 0;
}
