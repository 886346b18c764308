#!/usr/bin/env bash
# Builds the offline test fixture: a Debian 12 cloud-style disk image made
# with mmdebstrap from the Debian package registry, laid out the way a
# Qlean image mirror is (QLEAN_IMAGE_MIRROR):
#
#   DIR/debian-12-generic-amd64/debian-12-generic-amd64.qcow2
#   DIR/debian-12-generic-amd64/SHA512SUMS
#
# The image has systemd, udev, cloud-init and Debian's cloud kernel, and on
# purpose no qemu-guest-agent: Qlean must inject one. Its root file system
# is the first partition of a GPT disk, labelled "root". There is no boot
# loader: Qlean boots the kernel it extracts.
#
# Usage: tests/images/build-debian-fixture.sh [CACHE]
#   CACHE defaults to $QLEAN_FIXTURE_CACHE, else
#   ${XDG_CACHE_HOME:-$HOME/.cache}/qlean-test-fixtures.
# Prints DIR. The result is cached under CACHE, keyed by this script's
# checksum, so a machine builds it once; concurrent callers build it once.
# Needs: mmdebstrap, sfdisk, mkfs.ext4 (e2fsprogs), qemu-img; root for the
# fast path (mkfs.ext4 -d), else virt-make-fs (libguestfs-tools).
set -euo pipefail

script=$(readlink -f "${BASH_SOURCE[0]}")
here=$(dirname "$script")
# shellcheck source=fixture-lib.sh
. "$here/fixture-lib.sh"
cache=${1:-${QLEAN_FIXTURE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qlean-test-fixtures}}
key=debian-12-$(cat "$script" "$here/fixture-lib.sh" | sha256sum | cut -c1-16)
name=debian-12-generic-amd64

log() { echo "build-debian-fixture: $*" >&2; }

fixture_cached_or_lock "$cache" "$key" "$name"

for tool in mmdebstrap sfdisk mkfs.ext4 qemu-img sha512sum; do
  command -v "$tool" >/dev/null || PATH=$PATH:/usr/sbin:/sbin
  command -v "$tool" >/dev/null || {
    log "$tool is missing: apt-get install mmdebstrap fdisk e2fsprogs qemu-utils"
    exit 1
  }
done

# The Debian mirror this host already uses, so that the fixture needs no
# network the host's apt does not have.
mirror=
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  mirror=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")
  [ -n "$mirror" ] && break
done
if [ -z "$mirror" ]; then
  mirror=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) { print $i; exit } }' \
             /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n 1)
fi
if [ -z "$mirror" ]; then
  log "no Debian mirror found in /etc/apt/sources.list*; the fixture is built from one"
  exit 1
fi

work=$(mktemp -d "$cache/.build-XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/$name"
start=$SECONDS

packages=systemd-sysv,udev,cloud-init,cloud-guest-utils,netbase,e2fsprogs,linux-image-cloud-amd64

# Documentation, man pages and translations only make the image bigger.
fast=1
[ "$(id -u)" -eq 0 ] || fast=0
if [ $fast -eq 1 ]; then
  target=$work/root
else
  target=$work/root.tar
fi

log "mmdebstrap bookworm from $mirror"
mmdebstrap --variant=minbase --include="$packages" \
  --aptopt='Acquire::Languages "none"' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --customize-hook='echo debian > "$1/etc/hostname"' \
  --customize-hook='printf "127.0.0.1\tlocalhost\n" > "$1/etc/hosts"' \
  --customize-hook='printf "LABEL=root\t/\text4\trw,errors=remount-ro\t0\t1\n" > "$1/etc/fstab"' \
  --customize-hook=': > "$1/etc/machine-id"' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/log/*.log' \
  --quiet \
  bookworm "$target" "deb $mirror bookworm main" </dev/null
log "rootfs after $((SECONDS - start)) s"

fixture_make_disk "$target" "$work/$name/$name.qcow2" 2G
rm -rf "$work/root" "$work/root.tar"
log "disk after $((SECONDS - start)) s"

# Like Debian's own SHA512SUMS: more than one file is listed, so a reader
# must pick its line by name.
printf '%s\n' "$packages" | tr , '\n' > "$work/$name/$name.packages"
(cd "$work/$name" && sha512sum "$name.packages" "$name.qcow2" > SHA512SUMS)

mv "$work" "$dir"
trap - EXIT
log "done in $((SECONDS - start)) s: $dir"
echo "$dir"
