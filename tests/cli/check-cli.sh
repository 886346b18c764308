#!/usr/bin/env bash
# check-cli.sh: the CLI's global options and --json on a real machine.
# One boot: `qlean --verbose run --json -- ...` must print the result as
# JSON on stdout, QMP/agent traffic on stderr, and pass the status on.
#
#   check-cli.sh QLEAN
#
# SPDX-License-Identifier: MIT
set -uo pipefail
qlean=$1
scratch=$(mktemp -d "${TMPDIR:-/tmp}/qlean-cli-XXXXXX")
trap 'rm -rf "$scratch"' EXIT

if ! "$qlean" --quiet check; then
  echo "SKIP: this host cannot run machines ($("$qlean" check | tail -n1))"
  exit 77
fi
[ -z "$("$qlean" --quiet check)" ] || { echo "qlean --quiet check printed something"; exit 1; }
"$qlean" check --json | /usr/bin/python3 -c 'import json, sys; assert json.load(sys.stdin)["ok"] is True'

"$qlean" --verbose run --json -- sh -c 'echo out; echo err >&2; exit 3' >"$scratch/out" 2>"$scratch/err"
status=$?
[ $status -eq 3 ] || { echo "qlean run exited with $status, not the command's 3"; cat "$scratch/err"; exit 1; }
/usr/bin/python3 - "$scratch/out" <<'PY' || exit 1
import json, sys
result = json.load(open(sys.argv[1]))
expected = {"exit-status": 3, "signal": 0, "stdout": "out\n", "stderr": "err\n"}
assert result == expected, f"run --json printed {result}, expected {expected}"
PY
grep -q 'qmp -> {"execute":"qmp_capabilities"' "$scratch/err" || { echo "--verbose showed no QMP traffic"; head -20 "$scratch/err"; exit 1; }
grep -q 'qga <- ' "$scratch/err" || { echo "--verbose showed no agent traffic"; exit 1; }

# --quiet keeps errors: a bad option still says what is wrong.
"$qlean" --quiet run --cores=-1 -- true 2>"$scratch/err"
[ $? -eq 2 ] && [ -s "$scratch/err" ] || { echo "qlean --quiet hid a usage error"; exit 1; }

echo "qlean --quiet, --verbose and run --json work"
