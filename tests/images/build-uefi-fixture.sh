#!/usr/bin/env bash
# Builds an aarch64 disk image that boots only through UEFI: a GPT disk
# whose one partition is an EFI system partition (FAT) holding GRUB's
# arm64 EFI binary as the removable-media boot loader
# (\EFI\BOOT\BOOTAA64.EFI), a kernel, an initramfs and a grub.cfg that
# boots them. There is nothing else on the disk, so a test that boots it
# and runs a command has gone through the firmware, GRUB and the kernel's
# EFI stub: the path of a distribution image whose kernel QEMU cannot
# load directly (Fedora's EFI zboot kernels).
#
# GRUB comes from Debian's grub-efi-arm64-bin, downloaded with
# `apt-get download` and unpacked with `dpkg-deb -x`, never installed;
# grub-mkstandalone (grub-common, any host architecture) makes the EFI
# binary with grub.cfg inside it.
#
# Usage: tests/images/build-uefi-fixture.sh KERNEL INITRD CMDLINE [CACHE]
#   KERNEL and INITRD are the aarch64 minimal image's; CMDLINE is the
#   kernel command line grub.cfg gives them. CACHE defaults to
#   $QLEAN_FIXTURE_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/qlean-test-fixtures.
# Prints the disk's path (qcow2). The result is cached under CACHE, keyed
# by this script and its inputs; concurrent callers build it once.
# Needs: apt-get with the arm64 architecture added (tools/setup.sh deps
# adds it), dpkg-deb, grub-mkstandalone (grub-common), mkfs.vfat
# (dosfstools), mtools, sfdisk (fdisk), qemu-img (qemu-utils).
set -euo pipefail

if [ $# -lt 3 ]; then
  echo "usage: $0 KERNEL INITRD CMDLINE [CACHE]" >&2
  exit 2
fi
kernel=$1
initrd=$2
cmdline=$3
script=$(readlink -f "${BASH_SOURCE[0]}")
cache=${4:-${QLEAN_FIXTURE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qlean-test-fixtures}}

log() { echo "build-uefi-fixture: $*" >&2; }

# The inputs by identity (path, size, time) rather than by content: the
# kernel and initramfs are tens of MB, and the minimal image's cache
# never rewrites a file in place.
key=$( { sha256sum "$script"; stat -L -c '%n %s %Y' "$kernel" "$initrd"; echo "$cmdline"; } |
       sha256sum | cut -c1-16)
disk=$cache/uefi-aarch64-$key.qcow2

if [ -f "$disk" ]; then
  echo "$disk"
  exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/.lock-uefi"
flock 9
if [ -f "$disk" ]; then
  echo "$disk"
  exit 0
fi

PATH=$PATH:/usr/sbin:/sbin
for tool in apt-get dpkg-deb grub-mkstandalone mkfs.vfat mcopy mmd sfdisk qemu-img; do
  command -v "$tool" >/dev/null || {
    log "$tool is missing: apt-get install grub-common dosfstools mtools fdisk qemu-utils"
    exit 1
  }
done

work=$(mktemp -d "$cache/.build-uefi-XXXXXX")
trap 'rm -rf "$work"' EXIT

# GRUB's arm64 modules, kept beside the fixtures: the .deb is fetched once.
deb=$(ls "$cache"/grub-efi-arm64-bin_*_arm64.deb 2>/dev/null | head -n 1 || true)
if [ -z "$deb" ]; then
  if ! (cd "$work" && apt-get download grub-efi-arm64-bin:arm64 >&2); then
    log "could not download grub-efi-arm64-bin:arm64 (is the arm64 architecture added? dpkg --add-architecture arm64 && apt-get update)"
    exit 1
  fi
  mv "$work"/grub-efi-arm64-bin_*_arm64.deb "$cache/"
  deb=$(ls "$cache"/grub-efi-arm64-bin_*_arm64.deb | head -n 1)
fi
dpkg-deb -x "$deb" "$work/grub"

# No menu, no wait: the kernel straight away, found by a file only this
# partition has (GRUB starts with its own memdisk as root).
cat > "$work/grub.cfg" <<EOF
set timeout=0
search --no-floppy --file --set=root /qlean-uefi-fixture
linux /vmlinuz $cmdline
initrd /initrd.img
boot
EOF
grub-mkstandalone -O arm64-efi -d "$work/grub/usr/lib/grub/arm64-efi" \
  --modules="part_gpt fat search search_fs_file linux normal" \
  --locales= --themes= --fonts= \
  -o "$work/BOOTAA64.EFI" "boot/grub/grub.cfg=$work/grub.cfg"

# The ESP: everything plus a few MiB, in 1 MiB steps.
size_kib=$(( ( $(stat -L -c %s "$kernel") + $(stat -L -c %s "$initrd") +
               $(stat -c %s "$work/BOOTAA64.EFI") ) / 1024 + 8192 ))
size_mib=$(( size_kib / 1024 + 1 ))
mkfs.vfat -C -F 32 -n ESP "$work/esp.img" $(( size_mib * 1024 )) >/dev/null
mmd -i "$work/esp.img" ::/EFI ::/EFI/BOOT
mcopy -i "$work/esp.img" "$work/BOOTAA64.EFI" ::/EFI/BOOT/BOOTAA64.EFI
mcopy -i "$work/esp.img" "$kernel" ::/vmlinuz
mcopy -i "$work/esp.img" "$initrd" ::/initrd.img
: > "$work/marker"
mcopy -i "$work/esp.img" "$work/marker" ::/qlean-uefi-fixture

# The GPT disk: the ESP at 1 MiB, and 1 MiB at the end for the backup table.
truncate -s $(( size_mib + 2 ))M "$work/disk.raw"
echo "start=2048, size=$(( size_mib * 2048 )), type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=ESP" |
  sfdisk --quiet --label gpt "$work/disk.raw"
dd if="$work/esp.img" of="$work/disk.raw" bs=1M seek=1 conv=notrunc status=none
qemu-img convert -q -f raw -O qcow2 "$work/disk.raw" "$work/disk.qcow2"
mv "$work/disk.qcow2" "$disk"
log "built $disk"
echo "$disk"
