#!/usr/bin/env bash
# check-completion.sh: data/qlean.bash-completion completes subcommands,
# options and values against the built qlean, with bash-completion's
# helpers stubbed so that the package need not be installed.
#
#   check-completion.sh QLEAN COMPLETION_FILE
#
# SPDX-License-Identifier: MIT
set -uo pipefail
qlean=$1

_init_completion() {
  words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD
  cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}
}
_filedir() { :; }
complete() { :; }
# shellcheck source=/dev/null
source "$2"

status=0
expect() {  # expect "WORDS..." WANTED...: completing the last word offers each WANTED
  local line=$1; shift
  read -ra COMP_WORDS <<<"$line"
  [[ $line == *" " ]] && COMP_WORDS+=("")
  COMP_WORDS[0]=$qlean
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  _qlean
  for wanted in "$@"; do
    if [[ " ${COMPREPLY[*]} " != *" $wanted "* ]]; then
      echo "completing “$line” does not offer $wanted (offers: ${COMPREPLY[*]})"
      status=1
    fi
  done
}
expect_none() {
  local line=$1
  read -ra COMP_WORDS <<<"$line"
  [[ $line == *" " ]] && COMP_WORDS+=("")
  COMP_WORDS[0]=$qlean
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  _qlean
  if [ ${#COMPREPLY[@]} -ne 0 ]; then
    echo "completing “$line” offers ${COMPREPLY[*]}, expected nothing"
    status=1
  fi
}

expect "qlean " check run dry-run
expect "qlean r" run
expect "qlean -" --quiet --verbose --version
expect "qlean --verbose ru" run
expect "qlean run --" --image --cores --json --quiet
expect "qlean run --accel " auto kvm tcg
expect "qlean dry-run --arch " x86_64 aarch64 riscv64
expect "qlean check --a" --arch
expect "qlean run --image " minimal
expect "qlean run --" --volume
expect "qlean start --" --volume
expect "qlean run -v /" /tmp:
expect "qlean check --" --json --qemu
expect_none "qlean run -- ls --"
if "$qlean" --help | grep -q '^  image '; then
  expect "qlean image " ls pull verify
fi
if "$qlean" --help | grep -q '^  gc '; then
  expect "qlean gc --" --dry-run
  expect_none "qlean gc "
fi
if "$qlean" --help | grep -q '^  exec '; then
  expect "qlean exec --" --user --env
  expect_none "qlean exec box "
fi
if "$qlean" start --help 2>/dev/null | grep -q -- '--forward'; then
  expect "qlean start --" --forward --foreground
  expect_none "qlean start -p "
  expect_none "qlean start --forward "
fi
if "$qlean" --help | grep -q '^  export '; then
  expect "qlean " pause resume snapshot restore clone export import
  expect "qlean sn" snapshot
  expect_none "qlean snapshot box "
  expect_none "qlean clone box "
  expect_none "qlean import box.qlean "
fi
if "$qlean" start --help 2>/dev/null | grep -q -- '--network'; then
  expect "qlean start --" --network --bridge
  expect "qlean dry-run --" --bridge
  expect "qlean start --" --transport
  expect "qlean run --transport " auto agent qlean-guest
  # Network names come from `qlean ls --json`: one entry, made by hand.
  fake_run=$(mktemp -d "${TMPDIR:-/tmp}/qlean-completion-XXXXXX")
  mkdir -p "$fake_run/machines/box"
  echo '{"name": "box", "state": "crashed", "network": "lab"}' >"$fake_run/machines/box/state.json"
  QLEAN_RUN_DIR=$fake_run expect "qlean start --network " lab
  QLEAN_RUN_DIR=$fake_run expect "qlean start -n l" lab
  QLEAN_RUN_DIR=$fake_run expect_none "qlean start --bridge no-such-bridge"
  rm -rf "$fake_run"
fi
[ $status -eq 0 ] && echo "bash completion offers commands, options and values"
exit $status
