#!/usr/bin/env bash
# Builds the offline aarch64 test fixture: a small arm64 disk image laid
# out the way a Qlean image mirror is (QLEAN_IMAGE_MIRROR):
#
#   DIR/debian-12-generic-arm64/debian-12-generic-arm64.qcow2
#   DIR/debian-12-generic-arm64/SHA512SUMS
#   DIR/zboot/zboot-arm64.qcow2      the same with an EFI zboot kernel
#   DIR/zboot/zboot-efi-arm64.qcow2  and with an EFI boot loader too
#
# It is made from the arm64 sysroot that `tools/setup.sh deps` unpacks
# (Debian 12's linux-image-cloud-arm64 and busybox-static), with no
# network and no emulation, in seconds. A Debian system built with
# `mmdebstrap --architectures=arm64` under qemu-user-static had not
# finished after 27 minutes here (2 busy cores): its maintainer scripts
# run emulated, update-initramfs alone for over 13 minutes; far beyond
# what CI can spend on one test.
#
# The image is what Qlean must handle in a distribution's image, small:
# a GPT disk whose first partition, labelled "root", holds an ext4 root
# file system with /etc/fstab and /etc/os-release; in /boot Debian's arm64
# kernel (a gzip'd Image) and an initrd that finds root=UUID= with
# busybox; BusyBox's init with an /etc/inittab (so Qlean takes its
# sysvinit path); and on purpose no qemu-guest-agent: Qlean must inject
# the arm64 one from the sysroot. /etc/init.d/rcS does what udev would:
# the virtio-serial ports' /dev/virtio-ports links.
#
# Usage: tests/images/build-arm64-fixture.sh [CACHE]
#   CACHE defaults to $QLEAN_FIXTURE_CACHE, else
#   ${XDG_CACHE_HOME:-$HOME/.cache}/qlean-test-fixtures.
# The sysroot is $QLEAN_SYSROOT_AARCH64, else
# ${XDG_CACHE_HOME:-$HOME/.cache}/qlean/sysroots/arm64, else
# /var/cache/qlean/sysroots/arm64 (where Qlean looks, qlean-arch.c).
# Prints DIR. The result is cached under CACHE, keyed by this script and
# the sysroot's package list. Needs: sfdisk, mkfs.ext4, qemu-img, cpio,
# gzip; root for the fast path (mkfs.ext4 -d), else virt-make-fs.
set -euo pipefail

script=$(readlink -f "${BASH_SOURCE[0]}")
here=$(dirname "$script")
# shellcheck source=fixture-lib.sh
. "$here/fixture-lib.sh"
cache=${1:-${QLEAN_FIXTURE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qlean-test-fixtures}}
name=debian-12-generic-arm64

log() { echo "build-arm64-fixture: $*" >&2; }
die() { log "$*"; exit 1; }

sysroot=${QLEAN_SYSROOT_AARCH64:-}
if [ -z "$sysroot" ]; then
  for d in "${XDG_CACHE_HOME:-$HOME/.cache}/qlean/sysroots/arm64" /var/cache/qlean/sysroots/arm64; do
    if [ -d "$d" ]; then sysroot=$d; break; fi
  done
fi
[ -n "$sysroot" ] && [ -d "$sysroot" ] ||
  die "no arm64 sysroot (tools/setup.sh deps makes /var/cache/qlean/sysroots/arm64)"

key=arm64-$({ cat "$script" "$here/fixture-lib.sh"; cat "$sysroot/.qlean-sysroot" 2>/dev/null || true; } |
             sha256sum | cut -c1-16)
fixture_cached_or_lock "$cache" "$key" "$name"

for tool in sfdisk mkfs.ext4 qemu-img sha512sum cpio gzip; do
  command -v "$tool" >/dev/null || PATH=$PATH:/usr/sbin:/sbin
  command -v "$tool" >/dev/null || die "$tool is missing: apt-get install fdisk e2fsprogs qemu-utils cpio gzip"
done

# Debian's cloud kernel, the newest in the sysroot.
release=$(cd "$sysroot/boot" && ls vmlinuz-*-cloud-arm64 2>/dev/null | sed 's/^vmlinuz-//' | sort -V | tail -n 1)
[ -n "$release" ] || die "the sysroot $sysroot has no boot/vmlinuz-*-cloud-arm64 (rerun tools/setup.sh deps)"
modules=$sysroot/lib/modules/$release
[ -f "$modules/modules.dep" ] || die "$modules/modules.dep is missing (rerun tools/setup.sh deps)"
[ -x "$sysroot/bin/busybox" ] || die "$sysroot/bin/busybox is missing (rerun tools/setup.sh deps)"

work=$(mktemp -d "$cache/.build-XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/$name"
start=$SECONDS

# Modules in load order: each after its dependencies (modules.dep lists
# them; built-in ones have no line and are skipped).
declare -A dep_line=() visited=()
while IFS= read -r line; do
  dep_line[${line%%:*}]=${line#*:}
done < "$modules/modules.dep"
order=()
visit() { # path in modules.dep
  local m=$1 d
  [ -z "${visited[$m]:-}" ] || return 0
  visited[$m]=1
  for d in ${dep_line[$m]:-}; do visit "$d"; done
  order+=("$m")
}
module_path() { # name
  local m
  for m in "${!dep_line[@]}"; do
    case $m in */"$1".ko*) echo "$m"; return 0 ;; esac
  done
  die "kernel $release has no module $1"
}
for m in virtio_pci virtio_blk; do p=$(module_path "$m"); visit "$p"; done
boot_modules=("${order[@]}")
order=()
for m in virtio_console virtio_net; do p=$(module_path "$m"); visit "$p"; done
late_modules=("${order[@]}")

# The initrd: busybox finds the root file system by its UUID, as an
# initramfs-tools one does, and hands over to the root's /sbin/init.
initrd=$work/initrd
mkdir -p "$initrd/bin" "$initrd/lib/modules"
cp "$sysroot/bin/busybox" "$initrd/bin/busybox"
for m in "${boot_modules[@]}"; do
  cp "$modules/$m" "$initrd/lib/modules/"
  echo "/lib/modules/${m##*/}" >> "$initrd/modules"
done
cat > "$initrd/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r m; do insmod "$m"; done < /modules
root=
for p in $(cat /proc/cmdline); do
  case $p in root=*) root=${p#root=} ;; esac
done
dev=
i=0
while [ -z "$dev" ] && [ $i -lt 100 ]; do
  case $root in
    /dev/*) [ -b "$root" ] && dev=$root ;;
    *) dev=$(findfs "$root" 2>/dev/null) ;;
  esac
  [ -n "$dev" ] || { sleep 0.1; i=$((i + 1)); }
done
if [ -z "$dev" ] || ! mount -o rw "$dev" /root; then
  echo "fixture initrd: cannot mount the root file system $root" >&2
  exec sh
fi
mount --move /dev /root/dev
umount /proc /sys
exec switch_root /root /sbin/init
EOF
chmod 755 "$initrd/init"

# The root file system.
root=$work/root
mkdir -p "$root"/{bin,sbin,etc/init.d,boot,dev,proc,sys,run,tmp,root,var,lib/modules/"$release"}
cp "$sysroot/bin/busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
ln -s ../bin/busybox "$root/sbin/init"
cp "$sysroot/boot/vmlinuz-$release" "$root/boot/"
(cd "$initrd" && find . | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 | gzip -9n) > "$root/boot/initrd.img-$release"
for m in "${late_modules[@]}"; do
  mkdir -p "$root/lib/modules/$release/${m%/*}"
  cp "$modules/$m" "$root/lib/modules/$release/$m"
  echo "/lib/modules/$release/$m" >> "$root/etc/modules-load"
done
echo debian > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n' > "$root/etc/hosts"
printf 'LABEL=root\t/\text4\trw,errors=remount-ro\t0\t1\n' > "$root/etc/fstab"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
cat > "$root/etc/os-release" <<'EOF'
PRETTY_NAME="Debian GNU/Linux 12 (bookworm), Qlean's arm64 test fixture"
NAME="Debian GNU/Linux"
VERSION_ID="12"
ID=debian
EOF
cat > "$root/etc/inittab" <<'EOF'
::sysinit:/etc/init.d/rcS
::ctrlaltdel:/bin/busybox poweroff -f
::shutdown:/bin/busybox umount -a -r
EOF
cat > "$root/etc/init.d/rcS" <<'EOF'
#!/bin/sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /dev/pts /dev/virtio-ports
mount -t devpts devpts /dev/pts
hostname -F /etc/hostname
while read -r m; do insmod "$m"; done < /etc/modules-load
# What udev does on a full system: /dev/virtio-ports/NAME for each port.
# Names arrive one by one as the host opens them: rescan for a while.
i=0
while [ $i -lt 100 ]; do
  for n in /sys/class/virtio-ports/*/name; do
    [ -s "$n" ] || continue
    d=${n%/name}
    ln -sfn "../${d##*/}" "/dev/virtio-ports/$(cat "$n")"
  done
  [ -e /dev/virtio-ports/org.qemu.guest_agent.0 ] && [ -e /dev/virtio-ports/org.qlean.data.0 ] && break
  sleep 0.1
  i=$((i + 1))
done
EOF
chmod 755 "$root/etc/init.d/rcS"
log "trees after $((SECONDS - start)) s"

fixture_make_disk "$root" "$work/$name/$name.qcow2" 256M

# The same system with its kernel packed as an EFI zboot image, as
# Fedora's aarch64 kernels are, which QEMU 7.2 cannot boot directly:
# only its header matters, since preparation must refuse it.
mkdir "$work/zboot"
{ printf 'MZ\0\0zimg'; head -c 24 /dev/zero; printf 'gzip'; head -c 28 /dev/zero; } > "$root/boot/vmlinuz-$release"
fixture_make_disk "$root" "$work/zboot/zboot-arm64.qcow2" 256M
# And with an EFI boot loader beside it (only its name matters), which
# such an image's machines boot through UEFI instead.
mkdir -p "$root/boot/efi/EFI/BOOT"
printf 'MZ' > "$root/boot/efi/EFI/BOOT/BOOTAA64.EFI"
fixture_make_disk "$root" "$work/zboot/zboot-efi-arm64.qcow2" 256M
rm -rf "$root" "$initrd"
log "disks after $((SECONDS - start)) s"

printf 'linux-image-%s\nbusybox-static\n' "$release" > "$work/$name/$name.packages"
(cd "$work/$name" && sha512sum "$name.packages" "$name.qcow2" > SHA512SUMS)

mv "$work" "$dir"
trap - EXIT
log "done in $((SECONDS - start)) s: $dir"
echo "$dir"
