#!/usr/bin/env bash
# Qlean set-up: installs the Debian packages Qlean needs, builds it, and then
#   demo  boots a throwaway machine and runs `whoami` in it (prints "root");
#   test  runs the whole test suite and prints "N passed, N failed, N skipped";
#   deps  only installs the packages;  build  installs and builds.
# As non-root it prints the apt-get command to run instead of running it.
#
# It also makes the sysroots of the foreign guest architectures (arm64 for
# aarch64 machines): that architecture's Debian packages for the minimal
# image, fetched through multiarch and unpacked with dpkg-deb -x into
# /var/cache/qlean/sysroots/ARCH (as non-root: $XDG_CACHE_HOME/qlean/...),
# never installed. Once made, a sysroot is kept and no network is needed;
# QLEAN_SYSROOT_REFRESH=1 fetches the packages anew, QLEAN_SYSROOTS=none
# makes none.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
builddir=${QLEAN_BUILDDIR:-$here/_build}
action=${1:-build}

packages=(
  # build
  build-essential meson ninja-build pkg-config gettext
  libglib2.0-dev libglib2.0-bin libjson-glib-dev libcurl4-openssl-dev libguestfs-dev
  gobject-introspection libgirepository1.0-dev
  # run: QEMU, the minimal image's kernel, agent and userland
  qemu-system-x86 qemu-utils qemu-guest-agent linux-image-cloud-amd64 busybox-static cpio lz4
  # shared folders: the generic kernel has 9p (the cloud one has not); the
  # minimal image of a machine with shares boots it
  linux-image-amd64
  # aarch64 guests: their QEMU, and the cross compiler of qlean-guest;
  # binutils and kmod read and index the arm64 packages' files
  qemu-system-arm gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils kmod
  # aarch64 disks without a kernel QEMU boots (virt has no BIOS): UEFI
  # (AAVMF), and what tests/images/build-uefi-fixture.sh makes its
  # GRUB-on-FAT disk with
  qemu-efi-aarch64 grub-common dosfstools mtools
  # images and networking; gpgv checks distributions' signed checksum files
  libguestfs-tools xorriso vde2 libvdeplug-slirp mmdebstrap fdisk gpgv
  # tests and benchmarks; clang builds the fuzz targets, valgrind runs
  # `meson test --setup valgrind`
  python3-gi python3-pytest dropbear-bin openssh-client clang libclang-rt-14-dev valgrind
  # the image tests' throwaway signing keys and local HTTPS server
  gpg openssl
  # the API reference, built and link-checked with the tests (-Ddocs=true)
  gi-docgen
)

missing_packages() {
  local p
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
  done
}

install_packages() {
  local missing
  missing=$(missing_packages | tr '\n' ' ')
  [ -z "${missing// /}" ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "qlean setup: missing Debian packages; run as root:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends $missing" >&2
    exit 1
  fi
  echo "qlean setup: installing $missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

# --- foreign sysroots -----------------------------------------------------------
sysroot_arches=(arm64)
# What the minimal image takes from each; the kernel is resolved from its
# metapackage, the agent's libraries from its dependencies and theirs.
sysroot_packages=(busybox-static qemu-guest-agent)

sysroot_base() {
  if [ "$(id -u)" -eq 0 ]; then echo /var/cache/qlean/sysroots
  else echo "${XDG_CACHE_HOME:-$HOME/.cache}/qlean/sysroots"; fi
}

# The direct dependencies of the packages named, for ARCH, as pkg:ARCH.
arch_depends() { # arch pkg...
  local a=$1; shift
  apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
      --no-replaces --no-enhances --no-pre-depends "${@/%/:$a}" 2>/dev/null |
    sed -n "s/^ *Depends: \([^<>]*:$a\)\$/\1/p" | sort -u
}

# Downloads the packages of ARCH's sysroot into DIR (needs the network).
download_sysroot_debs() { # arch dir
  local arch=$1 dir=$2 kernel libs=() lib_deps=() pkgs=() apt_opts=()
  if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "qlean setup: the $arch sysroot needs $arch packages; run as root:" >&2
      echo "  dpkg --add-architecture $arch && apt-get update" >&2
      return 1
    fi
    dpkg --add-architecture "$arch"
    apt-get update -qq || return 1
  elif ! apt-cache show "busybox-static:$arch" >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq || return 1
  fi
  kernel=$(arch_depends "$arch" "linux-image-cloud-$arch" | grep '^linux-image-[0-9]' | head -n 1) || true
  [ -n "$kernel" ] || { echo "qlean setup: no linux-image-cloud-$arch:$arch in the package lists" >&2; return 1; }
  mapfile -t libs < <(arch_depends "$arch" qemu-guest-agent)
  mapfile -t lib_deps < <(arch_depends "$arch" "${libs[@]%:"$arch"}")
  pkgs=("$kernel" "${sysroot_packages[@]/%/:$arch}" "${libs[@]}" "${lib_deps[@]}")
  # As root, apt hands downloads to its _apt user, who cannot write here.
  [ "$(id -u)" -ne 0 ] || apt_opts=(-o APT::Sandbox::User=root)
  mkdir -p -- "$dir"
  # apt-get download writes into the current directory.
  (cd "$dir" && apt-get download -qq "${apt_opts[@]}" "${pkgs[@]}") || {
    echo "qlean setup: downloading the $arch packages failed" >&2
    return 1
  }
  touch "$dir/.complete"
}

make_sysroot() { # arch
  local arch=$1 base root debs d
  base=$(sysroot_base)
  root=$base/$arch debs=$base/$arch.debs
  if [ -f "$root/.qlean-sysroot" ] && [ "${QLEAN_SYSROOT_REFRESH:-0}" != 1 ]; then
    return 0
  fi
  rm -rf -- "$debs.new" "$root.new"
  # Downloaded packages are kept: the sysroot is made again from them
  # without the network.
  if [ ! -f "$debs/.complete" ] || [ "${QLEAN_SYSROOT_REFRESH:-0}" = 1 ]; then
    download_sysroot_debs "$arch" "$debs.new" || { rm -rf -- "$debs.new"; return 1; }
    rm -rf -- "$debs"
    mv -- "$debs.new" "$debs"
  fi
  mkdir -p -- "$root.new"
  for d in "$debs"/*.deb; do
    dpkg-deb -x "$d" "$root.new" || { rm -rf -- "$root.new"; return 1; }
  done
  # The kernel package's postinst would index its modules; the image
  # builder reads that index (modules.dep).
  for d in "$root.new"/lib/modules/*/; do
    depmod -b "$root.new" "$(basename "$d")" || { rm -rf -- "$root.new"; return 1; }
  done
  (cd "$debs" && ls -- *.deb) > "$root.new/.qlean-sysroot"
  rm -rf -- "$root"
  mv -- "$root.new" "$root"
  echo "qlean setup: made the $arch sysroot in $root" >&2
}

make_sysroots() {
  local a
  [ "${QLEAN_SYSROOTS:-}" != none ] || return 0
  for a in "${sysroot_arches[@]}"; do
    # A foreign architecture is optional: without it, its tests skip.
    make_sysroot "$a" || echo "qlean setup: no $a sysroot; $a machines will not start" >&2
  done
}

build() {
  if [ ! -f "$builddir/build.ninja" ]; then
    # The API reference is part of the build, so that the suite's
    # docs-links test checks every link in it.
    meson setup -Ddocs=true "$builddir" "$here" >/dev/null
  fi
  meson compile -C "$builddir" >/dev/null
}

install_packages
make_sysroots
case "$action" in
  deps) ;;
  build) build ;;
  demo)
    build
    exec "$builddir/tools/qlean" run -- whoami
    ;;
  test)
    build
    exec "$here/tests/run-suite.sh" "$builddir"
    ;;
  *)
    echo "usage: tools/setup.sh [deps|build|demo|test]" >&2
    exit 2
    ;;
esac
