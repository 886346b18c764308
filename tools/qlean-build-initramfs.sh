#!/usr/bin/env bash
# Builds Qlean's minimal guest initramfs: busybox-static, the host's qemu-ga with
# its libraries, the virtio modules of one kernel release and an init script,
# as an uncompressed newc cpio (the kernel unpacks it faster than it inflates one).
#
#   qlean-build-initramfs.sh --kernel-release REL --init PATH --output FILE
#                            [--modules-dir DIR] [--add SRC:DEST ...]
#
# Needs no root: file ownership is rewritten to 0:0 by cpio. The result appears
# at FILE only when everything succeeded.
set -euo pipefail
shopt -s nullglob

prog=${0##*/}
die() { echo "$prog: $*" >&2; exit 1; }
usage() {
  echo "usage: $prog --kernel-release REL --init PATH --output FILE [--modules-dir DIR] [--add SRC:DEST ...]" >&2
  echo "       [--kernel BZIMAGE --vmlinux-output FILE]" >&2
  exit 2
}

# Entry points of the needed drivers, the console first so that its port can
# appear while the others load; their dependencies come from modules.dep.
wanted_modules=(virtio_pci virtio_console virtio_mmio virtio_net virtio_blk)
# Wanted when the kernel has them: pvpanic reports a guest panic to QEMU,
# which Qlean turns into a CRASHED machine.
optional_modules=(pvpanic_pci)
busybox_bin=${QLEAN_BUSYBOX:-/bin/busybox}
agent_bin=${QLEAN_QEMU_GA:-/usr/sbin/qemu-ga}

kernel_release='' init_script='' output='' modules_dir='' kernel='' vmlinux_output=''
adds=()
while [ $# -gt 0 ]; do
  case $1 in
    --kernel-release) [ $# -ge 2 ] || usage; kernel_release=$2; shift 2 ;;
    --kernel-release=*) kernel_release=${1#*=}; shift ;;
    --init) [ $# -ge 2 ] || usage; init_script=$2; shift 2 ;;
    --init=*) init_script=${1#*=}; shift ;;
    --output) [ $# -ge 2 ] || usage; output=$2; shift 2 ;;
    --output=*) output=${1#*=}; shift ;;
    --modules-dir) [ $# -ge 2 ] || usage; modules_dir=$2; shift 2 ;;
    --modules-dir=*) modules_dir=${1#*=}; shift ;;
    --add) [ $# -ge 2 ] || usage; adds+=("$2"); shift 2 ;;
    --kernel) [ $# -ge 2 ] || usage; kernel=$2; shift 2 ;;
    --vmlinux-output) [ $# -ge 2 ] || usage; vmlinux_output=$2; shift 2 ;;
    --add=*) adds+=("${1#*=}"); shift ;;
    -h|--help) usage ;;
    *) echo "$prog: unknown argument: $1" >&2; usage ;;
  esac
done
if [ -z "$kernel_release" ] || [ -z "$init_script" ] || [ -z "$output" ]; then usage; fi
modules_dir=${modules_dir:-/lib/modules/$kernel_release}

# --- check every input before doing any work ---------------------------------
need_tool() { # tool package
  command -v "$1" >/dev/null 2>&1 || die "missing tool '$1' (Debian package: $2)"
}
need_tool cpio cpio
need_tool ldd libc-bin
need_tool perl perl-base

[ -f "$init_script" ] || die "missing init script '$init_script' (it ships with Qlean as data/minimal/init)"
[ -x "$busybox_bin" ] || die "missing $busybox_bin (Debian package: busybox-static)"
# The dynamic busybox package installs the same path; it would need its libc.
if LC_ALL=C ldd "$busybox_bin" 2>&1 | grep -q '=>'; then
  die "$busybox_bin is dynamically linked; install the static one (Debian package: busybox-static)"
fi
[ -x "$agent_bin" ] || die "missing $agent_bin (Debian package: qemu-guest-agent)"
kpkg="linux-image-$kernel_release (e.g. linux-image-cloud-amd64)"
[ -d "$modules_dir" ] || die "missing kernel modules directory $modules_dir (Debian package: $kpkg)"
[ -f "$modules_dir/modules.dep" ] || die "missing $modules_dir/modules.dep (Debian package: $kpkg; or run depmod $kernel_release)"

for a in "${adds[@]}"; do
  case $a in *:/*) ;; *) die "--add '$a': expected SRC:/absolute/dest" ;; esac
  [ -e "${a%:*}" ] || die "missing --add input '${a%:*}'"
done

# Shared libraries of the agent, plus the dynamic loader (listed without '=>').
agent_libs=()
while read -r line; do
  case $line in
    *'not found'*) die "library ${line%% *} needed by $agent_bin not found (reinstall qemu-guest-agent and its dependencies)" ;;
    *'=> /'*) lib=${line#*=> }; agent_libs+=("${lib%% (*}") ;;
    /*) agent_libs+=("${line%% (*}") ;;
  esac
done < <(LC_ALL=C ldd "$agent_bin")
[ ${#agent_libs[@]} -gt 0 ] || die "ldd listed no libraries for $agent_bin"

# Module order: depth-first over modules.dep so that every module follows its
# dependencies; built-in ones are skipped, a missing one is an error.
declare -A dep_line=() mod_path=() builtin=() visited=()
while IFS= read -r line; do
  path=${line%%:*} base=${line%%:*}
  base=${base##*/}; base=${base%%.ko*}; base=${base//-/_}
  mod_path[$base]=$path
  dep_line[$base]=${line#*:}
done < "$modules_dir/modules.dep"
if [ -f "$modules_dir/modules.builtin" ]; then
  while IFS= read -r line; do
    base=${line##*/}; base=${base%%.ko*}; builtin[${base//-/_}]=1
  done < "$modules_dir/modules.builtin"
fi
module_order=()
visit() {
  local m=${1//-/_} d dn
  [ -z "${visited[$m]:-}" ] || return 0
  visited[$m]=1
  [ -z "${builtin[$m]:-}" ] || return 0
  [ -n "${mod_path[$m]:-}" ] || die "kernel module $m is neither built into $kernel_release nor in $modules_dir (Debian package: $kpkg)"
  for d in ${dep_line[$m]}; do
    dn=${d##*/}; dn=${dn%%.ko*}
    visit "$dn"
  done
  module_order+=("$m")
}
for m in "${wanted_modules[@]}"; do visit "$m"; done
for m in "${optional_modules[@]}"; do
  if [ -n "${mod_path[$m]:-}" ] || [ -n "${builtin[$m]:-}" ]; then visit "$m"; fi
done
for m in "${module_order[@]}"; do
  f=$modules_dir/${mod_path[$m]}
  [ -f "$f" ] || die "missing module file $f (Debian package: $kpkg)"
  case $f in
    *.ko.xz) need_tool xz xz-utils ;;
    *.ko.zst) need_tool zstd zstd ;;
    *.ko.gz) need_tool gzip gzip ;;
  esac
done

# --- stage and pack ------------------------------------------------------------
out_dir=$(dirname -- "$output")
[ -d "$out_dir" ] || die "output directory $out_dir does not exist"
stage='' tmp_out='' tmp_vmlinux=''
cleanup() {
  [ -z "$stage" ] || rm -rf -- "$stage"
  [ -z "$tmp_out" ] || rm -f -- "$tmp_out"
  [ -z "$tmp_vmlinux" ] || rm -f -- "$tmp_vmlinux"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM
stage=$(mktemp -d "${TMPDIR:-/tmp}/qlean-initramfs.XXXXXX")
tmp_out=$(mktemp "$output.tmp.XXXXXX")

umask 022
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,lib64,etc,proc,sys,dev,run,tmp,root,var,lib/modules/qlean}
chmod 1777 "$stage/tmp"
chmod 0700 "$stage/root"
ln -s /run "$stage/var/run"
ln -s /tmp "$stage/var/tmp"

cp -- "$busybox_bin" "$stage/bin/busybox"
# Applet links are made here, not with `busybox --install -s` at boot (10-20 ms
# under TCG). poweroff/reboot/halt are left to init, which replaces them with
# scripts. No modprobe: without a module tree it cannot succeed, and the kernel
# runs it (synchronously, before /init) for every crypto module it asks for.
"$busybox_bin" --list-full |
  perl -ne 'BEGIN { $d = shift } chomp; next if m{^(linuxrc|sbin/(init|poweroff|reboot|halt|modprobe))$};
            -e "$d/$_" or symlink("/bin/busybox", "$d/$_") or die "symlink $_: $!\n";' \
    -- "$stage" || die "creating busybox applet links failed"

cp -- "$agent_bin" "$stage/usr/sbin/qemu-ga"
for lib in "${agent_libs[@]}"; do
  mkdir -p "$stage${lib%/*}"
  cp -L -- "$lib" "$stage$lib" || die "copying $lib failed"
done

n=10
for m in "${module_order[@]}"; do
  f=$modules_dir/${mod_path[$m]}
  dst=$stage/lib/modules/qlean/$n-$m.ko
  case $f in
    *.ko.xz) xz -dc -- "$f" > "$dst" ;;
    *.ko.zst) zstd -qdc -- "$f" > "$dst" ;;
    *.ko.gz) gzip -dc -- "$f" > "$dst" ;;
    *) cp -- "$f" "$dst" ;;
  esac || die "unpacking $f failed"
  n=$((n + 1))
done
echo "$kernel_release" > "$stage/lib/modules/qlean/release"

cp -- "$init_script" "$stage/init"
chmod 0755 "$stage/init"

for a in "${adds[@]}"; do
  src=${a%:*} dst=$stage${a##*:}
  mkdir -p -- "$(dirname -- "$dst")"
  # An applet link there points at /bin/busybox, which is the HOST's until
  # the archive is unpacked: cp would write through it.
  if [ -L "$dst" ] || [ -f "$dst" ]; then
    rm -f -- "$dst"
  elif [ -e "$dst" ]; then
    die "--add destination ${a##*:} already exists in the image"
  fi
  cp -a -- "$src" "$dst" || die "copying --add $src failed"
done

(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort |
   cpio --quiet -o -H newc -R 0:0 --reproducible) > "$tmp_out" ||
  die "cpio failed writing $tmp_out"
chmod 0644 "$tmp_out"
mv -f -- "$tmp_out" "$output"
tmp_out=''

# The uncompressed kernel boots about 0.2 s sooner under TCG (direct PVH
# entry, no decompression). Optional: when the kernel's compressor is not
# installed, Qlean boots the bzImage instead.
if [ -n "$vmlinux_output" ] && [ -n "$kernel" ]; then
  tmp_vmlinux=$(mktemp "$vmlinux_output.tmp.XXXXXX")
  extracted=''
  # magic (as grep -P bytes), tool
  for pair in '\x02\x21\x4c\x18:lz4 -dc' '\x1f\x8b\x08:gzip -dc' '\xfd\x37\x7a\x58\x5a\x00:xz -dc' \
              '\x28\xb5\x2f\xfd:zstd -qdc'; do
    magic=${pair%%:*} tool=${pair#*:}
    command -v "${tool%% *}" >/dev/null 2>&1 || continue
    for off in $(LC_ALL=C grep -aboP "$magic" -- "$kernel" 2>/dev/null | cut -d: -f1 | head -n 4 || true); do
      # Trailing data after the stream makes some tools complain: judge
      # by what came out, not by their status.
      tail -c +$((off + 1)) -- "$kernel" | $tool > "$tmp_vmlinux" 2>/dev/null || true
      if [ "$(head -c 4 -- "$tmp_vmlinux" | od -An -c | tr -d ' ')" = '177ELF' ]; then
        extracted=1
        break 2
      fi
    done
  done
  if [ -n "$extracted" ]; then
    chmod 0644 "$tmp_vmlinux"
    mv -f -- "$tmp_vmlinux" "$vmlinux_output"
    tmp_vmlinux=''
  fi
fi
tmp_out=
