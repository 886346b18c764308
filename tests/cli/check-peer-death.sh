#!/usr/bin/env bash
# check-peer-death.sh: CLI calls on a started machine end, quickly and
# with exit status 125 and the reason, when the machine's QEMU or the
# machine's owner process dies under them.
#
#   check-peer-death.sh QLEAN
#
# Two boots: on each, a long `exec` (sleep), an `exec -i` of cat that is
# still reading its input, and a long `cp` in each direction run at once;
# then the QEMU (first boot) or the owner (second boot) is killed with
# SIGKILL. Every client runs under `timeout`, so a client that would wait
# forever fails the test instead of hanging it.
#
# SPDX-License-Identifier: MIT
set -uo pipefail
qlean=$1
scratch=$(mktemp -d "${TMPDIR:-/tmp}/qlean-peer-death-XXXXXX")
run_dir=${QLEAN_RUN_DIR:?the test environment sets QLEAN_RUN_DIR}
machine=peer-death
trap '"$qlean" --quiet stop "$machine" >/dev/null 2>&1; rm -rf "$scratch"' EXIT

if ! "$qlean" --quiet check; then
  echo "SKIP: this host cannot run machines ($("$qlean" check | tail -n1))"
  exit 77
fi

# The bound: the requirement is a second; a loaded CI host gets slack.
limit_ms=2500
# What bounds a client that never ends (far beyond any honest end).
hang_s=20

now_ms () { date +%s%3N; }

state_member () {
  /usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' \
    "$run_dir/machines/$machine/state.json" "$1"
}

# The position of PID's descriptor on FILE (0 while nothing was read).
fd_pos () {
  local fd
  for fd in /proc/"$1"/fd/*; do
    if [ "$(readlink "$fd" 2>/dev/null)" = "$2" ]; then
      awk '/^pos:/ { print $2 }' /proc/"$1"/fdinfo/"${fd##*/}" 2>/dev/null
      return
    fi
  done
  echo 0
}

# client TAG INPUT COMMAND...: runs COMMAND in the background with its
# standard input from INPUT, noting its status and end time.
client () {
  local tag=$1 input=$2
  shift 2
  ( timeout "$hang_s" "$@" <"$input" >"$scratch/$tag.out" 2>"$scratch/$tag.err"
    echo $? >"$scratch/$tag.rc"
    now_ms >"$scratch/$tag.end" ) &
}

# check_client TAG KILLED_AT EXPECTED_MESSAGE
check_client () {
  local tag=$1 killed=$2 message=$3 rc elapsed
  rc=$(cat "$scratch/$tag.rc")
  elapsed=$(( $(cat "$scratch/$tag.end") - killed ))
  if [ "$rc" -eq 124 ]; then
    echo "$tag: still waiting ${hang_s}s after its peer died (killed by timeout)"
    cat "$scratch/$tag.err"
    return 1
  fi
  [ "$rc" -eq 125 ] || { echo "$tag: exited with $rc, not 125:"; cat "$scratch/$tag.err"; return 1; }
  grep -qF "$message" "$scratch/$tag.err" || {
    echo "$tag: does not say “$message”:"; cat "$scratch/$tag.err"; return 1; }
  [ "$elapsed" -le "$limit_ms" ] || { echo "$tag: took ${elapsed} ms to end, over ${limit_ms} ms"; return 1; }
  echo "$tag: 125 after ${elapsed} ms: $(head -n1 "$scratch/$tag.err")"
}

# A host file whose upload takes long (sparse: reading it costs nothing)
# and a guest file whose download does (sparse in the guest's tmpfs).
truncate -s 4G "$scratch/up-src"

run_case () {
  local victim=$1 pid killed message tag cat_pid
  rm -rf "$scratch"/*.rc "$scratch"/*.end "$scratch/down"
  mkdir -p "$scratch/down"

  # Memory enough for the upload's first second in the guest's tmpfs.
  "$qlean" --quiet start -m 2048 "$machine" 2>"$scratch/start.err" || {
    echo "qlean start failed: $(cat "$scratch/start.err")"; return 1; }
  "$qlean" exec "$machine" -- truncate -s 4G /tmp/down-src || { echo "cannot make the guest file"; return 1; }

  client exec /dev/null "$qlean" exec "$machine" -- sleep 30
  # cat with its input still open: like an interactive shell.
  rm -f "$scratch/in"
  mkfifo "$scratch/in"
  sleep 60 >"$scratch/in" &
  cat_pid=$!
  client exec-i "$scratch/in" "$qlean" exec -i "$machine" -- cat
  client cp-up /dev/null "$qlean" cp "$scratch/up-src" "$machine:/tmp/up"
  client cp-down /dev/null "$qlean" cp "$machine:/tmp/down-src" "$scratch/down/"

  # Kill once all four are under way: cat answered, both copies moved
  # data (the upload read its file, the download wrote its).
  local deadline=$(( $(now_ms) + 120000 ))
  timeout 10 bash -c 'echo hello >"$1"' _ "$scratch/in"
  while :; do
    local up_pid ready=1
    up_pid=$(pgrep -n -f -- "cp $scratch/up-src" || true)
    grep -q hello "$scratch/exec-i.out" 2>/dev/null || ready=0
    [ -n "$up_pid" ] && [ "$(fd_pos "$up_pid" "$scratch/up-src")" -gt 0 ] || ready=0
    [ -n "$(find "$scratch/down" -type f -size +0 2>/dev/null)" ] || ready=0
    [ $ready -eq 1 ] && break
    for tag in exec exec-i cp-up cp-down; do
      [ -e "$scratch/$tag.rc" ] && { echo "$tag ended before the kill:"; cat "$scratch/$tag.err"; return 1; }
    done
    [ "$(now_ms)" -lt $deadline ] || { echo "the clients did not get under way"; return 1; }
    sleep 0.1
  done

  if [ "$victim" = qemu ]; then
    pid=$(state_member qemu-pid)
    message="Machine “$machine” crashed: QEMU was killed by signal 9"
  else
    pid=$(state_member owner-pid)
    message="The owner process of machine $machine (pid $pid) died"
  fi
  killed=$(now_ms)
  kill -9 "$pid"
  wait_for_clients
  kill "$cat_pid" 2>/dev/null

  local failed=0 call rc
  for tag in exec exec-i cp-up cp-down; do
    check_client "$tag" "$killed" "$message" || failed=1
  done

  if [ "$victim" = qemu ]; then
    "$qlean" ls | grep -E "^$machine +crashed " >/dev/null || { echo "qlean ls does not show $machine crashed"; "$qlean" ls; failed=1; }
  fi
  # Calls made afterwards say so as well, through the owner's admin
  # socket too.
  for call in "exec $machine -- true" "pause $machine"; do
    # shellcheck disable=SC2086
    "$qlean" $call 2>"$scratch/after.err"
    rc=$?
    [ $rc -eq 125 ] && grep -qF "${message%%:*}" "$scratch/after.err" || {
      echo "qlean $call after the kill exited $rc: $(cat "$scratch/after.err")"; failed=1; }
  done
  # gc forgets a machine whose owner died, all its files with it (the
  # owner's admin socket too, which a SIGKILL leaves behind).
  if [ "$victim" = owner ]; then
    "$qlean" --quiet gc 2>"$scratch/gc.err" || { echo "qlean gc after the owner died failed: $(cat "$scratch/gc.err")"; failed=1; }
    [ ! -e "$run_dir/machines/$machine" ] || {
      echo "qlean gc left $run_dir/machines/$machine behind: $(ls -A "$run_dir/machines/$machine")"; failed=1; }
  fi
  "$qlean" --quiet stop "$machine" >/dev/null 2>&1
  return $failed
}

wait_for_clients () {
  local tag
  for tag in exec exec-i cp-up cp-down; do
    while [ ! -e "$scratch/$tag.end" ]; do sleep 0.05; done
  done
}

status=0
echo "# the machine's QEMU is killed"
run_case qemu || status=1
echo "# the machine's owner process is killed"
run_case owner || status=1
exit $status
