#!/usr/bin/env bash
# check-potfiles.sh: po/POTFILES.in lists exactly the sources that mark
# strings for translation (_(), N_(), C_(), NC_(), Q_()), and every file
# it lists exists: else `meson compile qlean-pot` misses strings or fails.
#
#   check-potfiles.sh SOURCE_ROOT
#
# SPDX-License-Identifier: MIT
set -euo pipefail
cd "$1"

listed=$(grep -v '^#' po/POTFILES.in | sed '/^$/d' | sort -u)
marked=$(grep -lE '\b(N_|_|C_|NC_|Q_)\("' lib/*/*.c common/*.c qmp/*.c qga/*.c channel/*.c guest/*.c tools/*.c | sort -u)

status=0
for f in $listed; do
  [ -f "$f" ] || { echo "po/POTFILES.in lists $f, which does not exist"; status=1; }
done
missing=$(comm -13 <(echo "$listed") <(echo "$marked"))
for f in $missing; do
  echo "$f marks strings for translation but is not in po/POTFILES.in"
  status=1
done
[ $status -eq 0 ] && echo "po/POTFILES.in lists the $(echo "$marked" | wc -l) files with translatable strings"
exit $status
