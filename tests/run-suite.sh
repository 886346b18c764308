#!/usr/bin/env bash
# Runs Qlean's whole test suite in BUILDDIR and ends with one line,
# "N passed, N failed, N skipped", counted from meson's test log; exits
# non-zero when any test failed.
set -uo pipefail

builddir=${1:?usage: tests/run-suite.sh BUILDDIR}
log=$builddir/meson-logs/testlog.json

rm -f "$log"
meson test -C "$builddir" --print-errorlogs --no-rebuild
meson_status=$?

if [ ! -s "$log" ]; then
  echo "0 passed, 1 failed, 0 skipped"
  echo "run-suite: meson wrote no test log (exit status $meson_status)" >&2
  exit 1
fi

# Debian's python3: the one on PATH may be a private build without json.
summary=$(/usr/bin/python3 - "$log" <<'PY'
import json, sys
passed = failed = skipped = 0
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    result = json.loads(line).get("result", "")
    if result in ("OK", "EXPECTEDFAIL"):
        passed += 1
    elif result == "SKIP":
        skipped += 1
    else:
        failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
)
echo "$summary"

case $summary in
  *" 0 failed,"*) [ "$meson_status" -eq 0 ] || exit "$meson_status"; exit 0 ;;
  *) exit 1 ;;
esac
