#!/usr/bin/env bash
# valgrind.sh: the exe_wrapper of `meson test --setup valgrind`.
#
#   valgrind.sh BUILD_ROOT SUPPRESSIONS... -- TEST [ARG...]
#
# Runs the test programs built here under memcheck, with leak checking:
# any definitely lost byte or invalid access fails the test. Tests that
# are scripts (bash, python) run as they are: their interpreters' leaks
# are not Qlean's, and the C they drive is covered by the C tests.
#
# SPDX-License-Identifier: MIT
set -euo pipefail
build_root=$(realpath "$1")
shift
supps=()
while [ "$1" != -- ]; do supps+=("--suppressions=$1"); shift; done
shift

program=$(realpath "$1" 2>/dev/null || echo "$1")
case $program in
  "$build_root"/*) ;;
  *) exec "$@" ;;
esac

# G_SLICE: see what GLib allocates as it is; G_DEBUG=gc-friendly: freed
# memory is cleared, so no stale pointers keep leaks "reachable".
export G_SLICE=always-malloc G_DEBUG=gc-friendly
exec valgrind --quiet --tool=memcheck --leak-check=full --show-leak-kinds=definite \
  --errors-for-leak-kinds=definite --error-exitcode=1 --num-callers=30 \
  --track-fds=no --trace-children=no "${supps[@]}" "$@"
