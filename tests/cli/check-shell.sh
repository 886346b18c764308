#!/usr/bin/env bash
# check-shell.sh: `qlean shell` and `qlean exec -t` on a started machine,
# driven through a pseudo-terminal by shell-session.py.
#
#   check-shell.sh QLEAN SHELL_SESSION_PY
#
# SPDX-License-Identifier: MIT
set -uo pipefail
qlean=$1
driver=$2
machine=shell-test
trap '"$qlean" --quiet stop "$machine" >/dev/null 2>&1' EXIT

if ! "$qlean" --quiet check; then
  echo "SKIP: this host cannot run machines ($("$qlean" check | tail -n1))"
  exit 77
fi

"$qlean" --quiet stop "$machine" >/dev/null 2>&1
"$qlean" --quiet start "$machine" || { echo "FAIL: qlean start"; exit 1; }

# Without a terminal the command still runs, with its status.
out=$("$qlean" exec -t "$machine" -- sh -c 'test -t 0 && test -t 1 && echo on-a-tty; exit 3' </dev/null)
rc=$?
[ "$rc" = 3 ] || { echo "FAIL: exec -t exited with $rc, not 3"; exit 1; }
case $out in *on-a-tty*) ;; *) echo "FAIL: exec -t gave no terminal: $out"; exit 1 ;; esac

/usr/bin/python3 "$driver" "$qlean" "$machine"
