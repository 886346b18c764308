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

# --- -v: host folders in the guest, read-write and read-only ---
mkdir -p "$scratch/share"
echo from-host > "$scratch/share/in"
"$qlean" run -v "$scratch/share:/mnt/s" -v "$scratch/share/:/mnt/r:ro" -v "$scratch/share:/mnt/c:ro,cached" -- \
  sh -c 'cat /mnt/s/in; echo from-guest > /mnt/s/out; touch /mnt/r/x 2>&1; touch /mnt/c/y 2>&1; cat /mnt/c/in; true' \
  >"$scratch/out" 2>"$scratch/err"
status=$?
if [ $status -ne 0 ] && grep -q 'need a guest kernel with 9p' "$scratch/err"; then
  echo "run -v not run: $(cat "$scratch/err")"
else
  [ $status -eq 0 ] || { echo "run -v exited with $status: $(cat "$scratch/err")"; exit 1; }
  grep -qx from-host "$scratch/out" || { echo "run -v: the guest did not read the host's file: $(cat "$scratch/out")"; exit 1; }
  grep -q 'Read-only file system' "$scratch/out" || { echo "run -v :ro was writable: $(cat "$scratch/out")"; exit 1; }
  [ "$(cat "$scratch/share/out" 2>/dev/null)" = from-guest ] || { echo "run -v: the guest's file is not on the host"; exit 1; }
  [ ! -e "$scratch/share/x" ] || { echo "run -v :ro let the guest create a file"; exit 1; }
  [ ! -e "$scratch/share/y" ] || { echo "run -v :ro,cached let the guest create a file"; exit 1; }
  [ "$(grep -cx from-host "$scratch/out")" -eq 2 ] || { echo "run -v :ro,cached: the guest did not read the host's file: $(cat "$scratch/out")"; exit 1; }
  echo "run -v shares host folders"
fi
"$qlean" run -v "$scratch/share:/mnt/c:rw,cached" -- true 2>"$scratch/err"
[ $? -eq 2 ] || { echo "run -v :rw,cached was taken: $(cat "$scratch/err")"; exit 1; }
"$qlean" run -v "$scratch/no-such-dir:/mnt/s" -- true 2>"$scratch/err"
[ $? -eq 2 ] && grep -q "no-such-dir" "$scratch/err" || { echo "run -v with a missing folder: $(cat "$scratch/err")"; exit 1; }

# --- a started machine on the stock agent alone: exec, cp and stop ---
# It is shared as its agent (a proxy, marked by ctl.sock.agent).
trap '"$qlean" --quiet stop agent-only >/dev/null 2>&1; rm -rf "$scratch"' EXIT
"$qlean" --quiet start --transport agent agent-only 2>"$scratch/err" ||
  { echo "start --transport agent failed: $(cat "$scratch/err")"; exit 1; }
"$qlean" exec agent-only -- sh -c 'hostname; echo err >&2; exit 5' >"$scratch/out" 2>"$scratch/err"
status=$?
[ $status -eq 5 ] && grep -qx agent-only "$scratch/out" && grep -qx err "$scratch/err" ||
  { echo "exec on the agent-only machine: status $status, out $(cat "$scratch/out"), err $(cat "$scratch/err")"; exit 1; }
mkdir -p "$scratch/tree/d" && echo leaf > "$scratch/tree/d/f"
"$qlean" cp -r "$scratch/tree" agent-only:/tmp/tree && "$qlean" cp -r agent-only:/tmp/tree "$scratch/back" ||
  { echo "cp -r over the agent-only machine failed"; exit 1; }
[ "$(cat "$scratch/back/d/f")" = leaf ] || { echo "cp -r over the agent alone lost the tree"; exit 1; }
"$qlean" exec -t agent-only -- true 2>"$scratch/err"
[ $? -eq 125 ] && grep -q 'needs qlean-guest' "$scratch/err" || { echo "exec -t on the agent alone: $(cat "$scratch/err")"; exit 1; }
"$qlean" --quiet stop agent-only || { echo "stop agent-only failed"; exit 1; }
[ ! -e "${QLEAN_RUN_DIR:?the test environment sets QLEAN_RUN_DIR}/machines/agent-only" ] ||
  { echo "the agent-only machine's directory was left"; ls -la "$QLEAN_RUN_DIR/machines/agent-only"; exit 1; }
trap 'rm -rf "$scratch"' EXIT
echo "qlean start --transport agent serves exec and cp"

# --- named networks: qlean start --network, --bridge, and ls ---
run_dir=${QLEAN_RUN_DIR:?the test environment sets QLEAN_RUN_DIR}
qlean_path=$(readlink -f "$qlean")

# Whatever ends the test, the machines of this section go, at once: a
# hang here once left net-b running into the next test (lifecycle's
# `qlean ls` found it), because meson kills a test that timed out, and
# the `qlean stop` of its trap with it, half a second after SIGTERM.
# Owners (of machines, of the network) are killed outright, which takes
# each QEMU and the switch along (PR_SET_PDEATHSIG); `qlean stop` then
# forgets the machines and `qlean gc` the rest, under `timeout`, which
# puts them in a process group of their own: meson's SIGKILL to the
# test's group does not cut them short.
network_cleanup () {
  [ -z "${q_pid-}" ] || kill -TERM "$q_pid" 2>/dev/null
  pkill -KILL -f -- "$qlean_path start --foreground .*--network lab net-[abc]\$"
  pkill -KILL -f -- "$qlean_path start --network-owner=lab"
  timeout 40 sh -c '"$1" --quiet stop net-a net-b net-c; "$1" --quiet gc' sh "$qlean" >/dev/null 2>&1
  rm -rf "$scratch"
}
trap network_cleanup EXIT
trap 'exit 143' TERM INT

# Every qlean command of this section runs under a time limit, so that
# one that hangs fails the test at once, by name, and well before meson's
# 300 s, with time left for the cleanup. Starts and stops get longer: the
# first start on a network boots and saves a boot under TCG, and a stop
# may wait for each guest to shut down. Messages go to the test's output
# (fd 9) even when the command's own output is redirected.
exec 9>&1
qlean_within () {
  local limit=$1 started=$SECONDS status
  shift
  # In the background, because `wait` lets a trap run at once: a SIGTERM
  # from meson then gets its cleanup done before the SIGKILL that follows.
  timeout -k 5 "$limit" "$qlean" "$@" &
  q_pid=$!
  wait $q_pid
  status=$?
  q_pid=
  if { [ $status -eq 124 ] || [ $status -eq 137 ]; } && [ $((SECONDS - started)) -ge "$limit" ]; then
    echo "HANG: qlean $* did not end within $limit s" >&9
  fi
  return $status
}
q () { qlean_within 60 "$@"; }
q_long () { qlean_within 120 "$@"; }

# Bad names and bad combinations are usage errors that make nothing.
q_long start --network 'no/such' net-a 2>"$scratch/err"
[ $? -eq 2 ] && grep -q 'not a valid network name' "$scratch/err" || { echo "--network with a bad name: $(cat "$scratch/err")"; exit 1; }
q_long start --network lab net_a 2>"$scratch/err"
[ $? -eq 2 ] && grep -q 'host name' "$scratch/err" || { echo "--network with a machine name that is no host name: $(cat "$scratch/err")"; exit 1; }
q_long start --network lab --bridge qlbr0 net-a 2>"$scratch/err"
[ $? -eq 2 ] || { echo "--network with --bridge was not refused: $(cat "$scratch/err")"; exit 1; }

# --bridge: the QEMU command line, and without bridge.conf a clear refusal.
q dry-run --bridge qlbr0 >"$scratch/argv" 2>"$scratch/err" || { echo "dry-run --bridge failed: $(cat "$scratch/err")"; exit 1; }
grep -q '^bridge,id=net0,br=qlbr0,helper=' "$scratch/argv" || { echo "dry-run --bridge shows no bridge netdev"; cat "$scratch/argv"; exit 1; }

# --arch: another architecture's command line, and what it needs.
if q --quiet check --arch aarch64; then
  q dry-run --arch aarch64 >"$scratch/argv" 2>"$scratch/err" || { echo "dry-run --arch aarch64 failed: $(cat "$scratch/err")"; exit 1; }
  { head -n1 "$scratch/argv" | grep -q 'qemu-system-aarch64$' && grep -qx virt "$scratch/argv" &&
    grep -qx 'max,pauth=off' "$scratch/argv" && grep -q '^console=ttyAMA0 ' "$scratch/argv"; } ||
    { echo "dry-run --arch aarch64 is no aarch64 command line"; cat "$scratch/argv"; exit 1; }
else
  echo "dry-run --arch aarch64 not run: $(q check --arch aarch64 | tail -n1)"
fi
QLEAN_SYSROOT_RISCV64=$scratch/none q check --arch riscv64 >"$scratch/out"
[ $? -eq 1 ] && grep -q "^MISSING sysroot .*$scratch/none" "$scratch/out" ||
  { echo "check --arch riscv64 without a sysroot did not say so"; cat "$scratch/out"; exit 1; }
q run --arch sparc64 -- true 2>"$scratch/err"
[ $? -eq 2 ] && grep -q -- '--arch must be x86_64, aarch64 or riscv64' "$scratch/err" || { echo "run --arch sparc64: $(cat "$scratch/err")"; exit 1; }
if [ ! -e /etc/qemu/bridge.conf ]; then
  q_long start --bridge qlbr0 net-b 2>"$scratch/err"
  [ $? -eq 1 ] && grep -q '/etc/qemu/bridge.conf' "$scratch/err" || { echo "start --bridge without bridge.conf: $(cat "$scratch/err")"; exit 1; }
  [ ! -e "$run_dir/machines/net-b" ] || { echo "start --bridge left machines/net-b behind"; exit 1; }
fi

# Two machines on one network, started at once (the address allocation
# is locked), reach each other by address and by name.
q_long --quiet start --network lab net-a 2>"$scratch/err-a" & pid_a=$!
q_long --quiet start --network lab net-b 2>"$scratch/err-b" & pid_b=$!
wait $pid_a || { echo "start --network lab net-a failed: $(cat "$scratch/err-a")"; exit 1; }
wait $pid_b || { echo "start --network lab net-b failed: $(cat "$scratch/err-b")"; exit 1; }
q ls --json >"$scratch/ls" || { echo "qlean ls --json failed"; exit 1; }
read -r ip_a ip_b < <(/usr/bin/python3 - "$scratch/ls" <<'PY'
import json, sys
entries = {e["name"]: e for e in json.load(open(sys.argv[1]))}
a, b = entries["net-a"], entries["net-b"]
for e in (a, b):
    assert e["network"] == "lab", f"ls --json shows network {e['network']!r} for {e['name']}"
    assert e["ip"], f"ls --json shows no address for {e['name']}"
assert a["ip"] != b["ip"], f"both machines got {a['ip']}"
print(a["ip"], b["ip"])
PY
) || { echo "qlean ls --json is wrong:"; cat "$scratch/ls"; exit 1; }
q ls | grep -E "^net-a .* $ip_a +lab " >/dev/null || { echo "qlean ls shows no address and network for net-a"; q ls; exit 1; }
q exec net-a -- ping -c 1 -W 10 "$ip_b" >"$scratch/out" 2>&1 || { echo "net-a cannot ping net-b at $ip_b"; cat "$scratch/out"; exit 1; }
q exec net-b -- ping -c 1 -W 10 "$ip_a" >"$scratch/out" 2>&1 || { echo "net-b cannot ping net-a at $ip_a"; cat "$scratch/out"; exit 1; }
q exec net-a -- ping -c 1 -W 10 net-b >"$scratch/out" 2>&1 || { echo "net-a cannot ping net-b by name"; cat "$scratch/out"; exit 1; }
q exec net-b -- ping -c 1 -W 10 net-a >"$scratch/out" 2>&1 || { echo "net-b cannot ping net-a by name"; cat "$scratch/out"; exit 1; }

# The network's owner killed: gc forgets the network and its switch's run
# directory, and leaves alone the machines that were plugged into it.
pkill -KILL -f -- "$qlean_path start --network-owner=lab" || { echo "no network owner of lab to kill"; exit 1; }
sleep 0.5
q gc >"$scratch/out" 2>&1 || { echo "qlean gc failed after the network owner died"; cat "$scratch/out"; exit 1; }
for m in net-a net-b; do
  q exec "$m" -- true || { echo "qlean gc killed $m along with its dead network:"; cat "$scratch/out"; exit 1; }
done

# ls says their network is down and shows no address; a machine started
# on lab now gets a new network, which the old ones are not on.
q_long --quiet start --network lab net-c 2>"$scratch/err" || { echo "start --network lab net-c after the owner died failed: $(cat "$scratch/err")"; exit 1; }
q ls --json >"$scratch/ls" || { echo "qlean ls --json failed"; exit 1; }
/usr/bin/python3 - "$scratch/ls" <<'PY' || { echo "qlean ls --json after the network owner died is wrong:"; cat "$scratch/ls"; exit 1; }
import json, sys
entries = {e["name"]: e for e in json.load(open(sys.argv[1]))}
for name in ("net-a", "net-b"):
    e = entries[name]
    assert e["network"] == "lab" and e["network-down"] is True and e["ip"] is None, e
c = entries["net-c"]
assert c["network"] == "lab" and c["network-down"] is False and c["ip"], c
PY
q ls | grep -E "^net-a .* - +lab\(down\) " >/dev/null || { echo "qlean ls does not show net-a's network down"; q ls; exit 1; }

# The last machine out takes the network with it: no switch, no QEMU, no state.
q_long --quiet stop net-a net-b net-c || { echo "qlean stop net-a net-b net-c failed"; exit 1; }
[ ! -e "$run_dir/networks/lab" ] || { echo "network state left behind:"; find "$run_dir/networks"; exit 1; }
if pgrep -f -- "$run_dir/net-lab-" >/dev/null || pgrep -f -- "$qlean_path start --network-owner=lab" >/dev/null; then
  echo "processes of network lab left running:"; pgrep -af -- "$run_dir/net-lab-"; pgrep -af -- "$qlean start --network-owner"; exit 1
fi
echo "qlean start --network, --bridge and ls work"
