#!/usr/bin/env bash
# check-man.sh: qlean(1) covers every subcommand `qlean --help` lists
# (and `qlean image --help`), and every long option their --help shows.
#
#   check-man.sh QLEAN MAN_PAGE
#
# SPDX-License-Identifier: MIT
set -euo pipefail
qlean=$1 man=$2

commands() { "$@" --help | awk '/^Commands:/ { f = 1; next } f && /^  [a-z]/ { print $1; next } f && /^$/ { exit }'; }
# The page's text with roff escapes for '-' undone.
text=$(sed 's/\\-/-/g' "$man")

status=0
check_command() {
  local title=$1; shift
  if ! grep -qx ".SS $title" <<<"$text"; then
    echo "qlean.1 has no section for “qlean $title”"
    status=1
  fi
  for option in $("$qlean" "$@" --help | grep -oE '^ +(-[[:alnum:]], )?--[[:alnum:]-]+' | grep -oE -- '--[[:alnum:]-]+'); do
    case $option in --help | --version | --quiet | --verbose) continue ;; esac
    if ! grep -qF -- "$option" <<<"$text"; then
      echo "qlean.1 does not document “qlean $title $option”"
      status=1
    fi
  done
}

for c in $(commands "$qlean"); do
  if [ "$c" = image ]; then
    for s in $(commands "$qlean" image); do check_command "image $s" image "$s"; done
  else
    check_command "$c" "$c"
  fi
done
for option in --quiet --verbose --version; do
  grep -qF -- "$option" <<<"$text" || { echo "qlean.1 does not document $option"; status=1; }
done
for code in 0 1 2 125 128+; do
  grep -qE "^\.B(I)? $code" <<<"$text" || { echo "qlean.1 does not document exit status $code"; status=1; }
done

[ $status -eq 0 ] && echo "qlean.1 covers every subcommand, option and exit status"
exit $status
