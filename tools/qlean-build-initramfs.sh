#!/usr/bin/env bash
# Builds Qlean's minimal guest initramfs: busybox-static, the host's qemu-ga with
# its libraries, the virtio modules of one kernel release and an init script,
# as an uncompressed newc cpio (the kernel unpacks it faster than it inflates one).
#
#   qlean-build-initramfs.sh --kernel-release REL --init PATH --output FILE
#                            [--modules-dir DIR] [--add SRC:DEST ...]
#                            [--arch ARCH] [--sysroot DIR]
#
# For another architecture than the host's (--arch aarch64), --sysroot names a
# directory holding that architecture's Debian packages unpacked (dpkg-deb -x,
# as tools/setup.sh deps makes it): the agent's libraries are looked up there
# with readelf instead of ldd, since nothing of it can run on the host.
#
# Needs no root: file ownership is rewritten to 0:0 by cpio. The result appears
# at FILE only when everything succeeded.
set -euo pipefail
shopt -s nullglob

prog=${0##*/}
die() { echo "$prog: $*" >&2; exit 1; }
usage() {
  echo "usage: $prog --kernel-release REL --init PATH --output FILE [--modules-dir DIR] [--add SRC:DEST ...]" >&2
  echo "       [--kernel BZIMAGE --vmlinux-output FILE] [--arch x86_64|aarch64|riscv64] [--sysroot DIR]" >&2
  exit 2
}

# Entry points of the needed drivers, the console first so that its port can
# appear while the others load; their dependencies come from modules.dep.
wanted_modules=(virtio_pci virtio_console virtio_mmio virtio_net virtio_blk)
# Wanted when the kernel has them: pvpanic reports a guest panic to QEMU,
# which Qlean turns into a CRASHED machine.
optional_modules=(pvpanic_pci)
# Wanted when the kernel has them, but loaded only when a host folder is
# mounted (they cost boot time otherwise): 9p over virtio, in
# /lib/modules/qlean/9p (Debian's cloud kernel has none; its generic one does),
# and virtiofs (with fuse), in /lib/modules/qlean/virtiofs (both kernels).
share_modules=(9pnet_virtio 9p)
virtiofs_modules=(virtiofs)
busybox_bin=${QLEAN_BUSYBOX:-/bin/busybox}
agent_bin=${QLEAN_QEMU_GA:-/usr/sbin/qemu-ga}

kernel_release='' init_script='' output='' modules_dir='' kernel='' vmlinux_output=''
arch=x86_64 sysroot=''
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
    --arch) [ $# -ge 2 ] || usage; arch=$2; shift 2 ;;
    --sysroot) [ $# -ge 2 ] || usage; sysroot=$2; shift 2 ;;
    -h|--help) usage ;;
    *) echo "$prog: unknown argument: $1" >&2; usage ;;
  esac
done
if [ -z "$kernel_release" ] || [ -z "$init_script" ] || [ -z "$output" ]; then usage; fi
modules_dir=${modules_dir:-$sysroot/lib/modules/$kernel_release}
# The ELF machine number of each architecture (e_machine), and its Debian name.
case $arch in
  x86_64) elf_machine=62 deb_arch=amd64 ;;
  aarch64) elf_machine=183 deb_arch=arm64 ;;
  riscv64) elf_machine=243 deb_arch=riscv64 ;;
  *) die "unknown --arch '$arch' (x86_64, aarch64 or riscv64)" ;;
esac
if [ -n "$sysroot" ]; then
  [ -d "$sysroot" ] || die "missing --sysroot directory $sysroot (tools/setup.sh deps makes it)"
  busybox_bin=${QLEAN_BUSYBOX:-$sysroot/bin/busybox}
  agent_bin=${QLEAN_QEMU_GA:-$sysroot/usr/sbin/qemu-ga}
fi

# --- check every input before doing any work ---------------------------------
need_tool() { # tool package
  command -v "$1" >/dev/null 2>&1 || die "missing tool '$1' (Debian package: $2)"
}
need_tool cpio cpio
need_tool ldd libc-bin
need_tool perl perl-base

[ -f "$init_script" ] || die "missing init script '$init_script' (it ships with Qlean as data/minimal/init)"
# e_machine, the 16-bit field at offset 18 of an ELF header (little-endian
# on every architecture Qlean runs), or nothing when FILE is no ELF file.
elf_machine_of() {
  [ "$(head -c 4 -- "$1" | od -An -c | tr -d ' ')" = '177ELF' ] || return 0
  od -An -tu2 -j18 -N2 -- "$1" | tr -d ' '
}
need_arch() { # file what-to-do
  local m
  m=$(elf_machine_of "$1")
  [ "$m" = "$elf_machine" ] ||
    die "$1 is not an $arch program (ELF machine ${m:-none}, expected $elf_machine); $2"
}

if [ -n "$sysroot" ]; then pkg_suffix=":$deb_arch"; else pkg_suffix=''; fi
[ -x "$busybox_bin" ] || die "missing $busybox_bin (Debian package: busybox-static$pkg_suffix)"
need_arch "$busybox_bin" "use the busybox-static:$deb_arch package"
# The dynamic busybox package installs the same path; it would need its libc.
if [ -n "$sysroot" ]; then
  need_tool readelf binutils
  if LC_ALL=C readelf -l -- "$busybox_bin" | grep -q 'program interpreter'; then
    die "$busybox_bin is dynamically linked; unpack the static one (Debian package: busybox-static$pkg_suffix)"
  fi
elif LC_ALL=C ldd "$busybox_bin" 2>&1 | grep -q '=>'; then
  die "$busybox_bin is dynamically linked; install the static one (Debian package: busybox-static)"
fi
[ -x "$agent_bin" ] || die "missing $agent_bin (Debian package: qemu-guest-agent$pkg_suffix)"
need_arch "$agent_bin" "use the qemu-guest-agent:$deb_arch package"
kpkg="linux-image-$kernel_release (e.g. linux-image-cloud-$deb_arch)"
[ -d "$modules_dir" ] || die "missing kernel modules directory $modules_dir (Debian package: $kpkg)"
[ -f "$modules_dir/modules.dep" ] || die "missing $modules_dir/modules.dep (Debian package: $kpkg; or run depmod $kernel_release)"

for a in "${adds[@]}"; do
  case $a in *:/*) ;; *) die "--add '$a': expected SRC:/absolute/dest" ;; esac
  [ -e "${a%:*}" ] || die "missing --add input '${a%:*}'"
  # A program for another architecture would only fail inside the guest.
  if [ -f "${a%:*}" ] && [ -n "$(elf_machine_of "${a%:*}")" ]; then need_arch "${a%:*}" "build it for $arch"; fi
done

# Shared libraries of the agent, plus the dynamic loader (listed without '=>').
# In a sysroot they are paths inside it, copied to the same path in the image.
agent_libs=()
if [ -z "$sysroot" ]; then
  while read -r line; do
    case $line in
      *'not found'*) die "library ${line%% *} needed by $agent_bin not found (reinstall qemu-guest-agent and its dependencies)" ;;
      *'=> /'*) lib=${line#*=> }; agent_libs+=("${lib%% (*}") ;;
      /*) agent_libs+=("${line%% (*}") ;;
    esac
  done < <(LC_ALL=C ldd "$agent_bin")
  [ ${#agent_libs[@]} -gt 0 ] || die "ldd listed no libraries for $agent_bin"
else
  # What ldd does, by reading DT_NEEDED entries: the loader's search path of
  # a Debian system, the multiarch directories first.
  triplet=$(find "$sysroot/lib" "$sysroot/usr/lib" -maxdepth 1 -name "$arch-linux-gnu*" -printf '%f\n' 2>/dev/null | head -n 1)
  lib_dirs=()
  [ -z "$triplet" ] || lib_dirs+=("/lib/$triplet" "/usr/lib/$triplet")
  lib_dirs+=(/lib /usr/lib /lib64 /usr/lib64)
  interp=$(LC_ALL=C readelf -l -- "$agent_bin" | sed -n 's/.*program interpreter: \(.*\)]$/\1/p')
  [ -n "$interp" ] || die "$agent_bin has no program interpreter; is it a dynamic $arch program?"
  [ -e "$sysroot$interp" ] || die "the loader $interp of $agent_bin is missing in $sysroot (Debian package: libc6:$deb_arch)"
  agent_libs+=("$interp")
  declare -A lib_seen=()
  pending=("$agent_bin")
  while [ ${#pending[@]} -gt 0 ]; do
    elf=${pending[0]}; pending=("${pending[@]:1}")
    while read -r soname; do
      [ -z "${lib_seen[$soname]:-}" ] || continue
      lib_seen[$soname]=1
      found=''
      for d in "${lib_dirs[@]}"; do
        if [ -e "$sysroot$d/$soname" ]; then found=$d/$soname; break; fi
      done
      [ -n "$found" ] || die "library $soname needed by ${elf#"$sysroot"} is missing in $sysroot (rerun tools/setup.sh deps)"
      [ "$found" = "$interp" ] || [ "$(readlink -f -- "$sysroot$found")" = "$(readlink -f -- "$sysroot$interp")" ] ||
        agent_libs+=("$found")
      pending+=("$sysroot$found")
    done < <(LC_ALL=C readelf -d -- "$elf" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p')
  done
fi

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
n_boot_modules=${#module_order[@]}
have_share_modules=1
for m in "${share_modules[@]}"; do
  [ -n "${mod_path[$m]:-}" ] || [ -n "${builtin[$m]:-}" ] || have_share_modules=''
done
if [ -n "$have_share_modules" ]; then
  for m in "${share_modules[@]}"; do visit "$m"; done
fi
n_9p_modules=${#module_order[@]}
for m in "${virtiofs_modules[@]}"; do
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
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,lib64,etc,proc,sys,dev,run,tmp,root,var,lib/modules/qlean/9p,lib/modules/qlean/virtiofs}
chmod 1777 "$stage/tmp"
chmod 0700 "$stage/root"
ln -s /run "$stage/var/run"
ln -s /tmp "$stage/var/tmp"

cp -- "$busybox_bin" "$stage/bin/busybox"
# Applet links are made here, not with `busybox --install -s` at boot (10-20 ms
# under TCG). poweroff/reboot/halt are left to init, which replaces them with
# scripts. No modprobe: without a module tree it cannot succeed, and the kernel
# runs it (synchronously, before /init) for every crypto module it asks for.
# A busybox of another architecture cannot tell its applets: their names are
# read from its table (NUL-separated, after "[" and "[["), and they go where
# the host's busybox puts them, else into /bin.
busybox_applets() {
  if [ -z "$sysroot" ]; then
    "$busybox_bin" --list-full
    return
  fi
  local host_list=''
  if command -v busybox >/dev/null 2>&1; then host_list=$(busybox --list-full 2>/dev/null || true); fi
  perl -0777 -ne 'BEGIN { my $l = shift; %dir = map { m{^(.*/)?([^/]+)$}; ($2, $1 // "") } split /\n/, $l }
                  /\[\0\[\[\0((?:[^\0\/\s]+\0)+)\0/ or die "no applet table\n";
                  print map { ($dir{$_} // "bin/") . "$_\n" } "[", "[[", split /\0/, $1' \
    -- "$host_list" "$busybox_bin"
}
busybox_applets |
  perl -ne 'BEGIN { $d = shift } chomp; next if m{^(linuxrc|sbin/(init|poweroff|reboot|halt|modprobe))$};
            -e "$d/$_" or symlink("/bin/busybox", "$d/$_") or die "symlink $_: $!\n";' \
    -- "$stage" || die "creating busybox applet links failed"

cp -- "$agent_bin" "$stage/usr/sbin/qemu-ga"
for lib in "${agent_libs[@]}"; do
  mkdir -p "$stage${lib%/*}"
  cp -L -- "$sysroot$lib" "$stage$lib" || die "copying $sysroot$lib failed"
done

n=10
i=0
for m in "${module_order[@]}"; do
  f=$modules_dir/${mod_path[$m]}
  dst=$stage/lib/modules/qlean/$n-$m.ko
  [ $i -lt "$n_boot_modules" ] || dst=$stage/lib/modules/qlean/9p/$n-$m.ko
  [ $i -lt "$n_9p_modules" ] || dst=$stage/lib/modules/qlean/virtiofs/$n-$m.ko
  i=$((i + 1))
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
