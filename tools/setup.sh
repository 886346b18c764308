#!/usr/bin/env bash
# Qlean set-up: installs the Debian packages Qlean needs, builds it, and then
#   demo  boots a throwaway machine and runs `whoami` in it (prints "root");
#   test  runs the whole test suite and prints "N passed, N failed, N skipped";
#   deps  only installs the packages;  build  installs and builds.
# As non-root it prints the apt-get command to run instead of running it.
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
  # images and networking; gpgv checks distributions' signed checksum files
  libguestfs-tools xorriso vde2 libvdeplug-slirp mmdebstrap fdisk gpgv
  # tests and benchmarks; clang builds the fuzz targets, valgrind runs
  # `meson test --setup valgrind`
  python3-gi python3-pytest dropbear-bin openssh-client clang libclang-rt-14-dev valgrind
  # the image tests' throwaway signing keys and local HTTPS server
  gpg openssl
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

build() {
  if [ ! -f "$builddir/build.ninja" ]; then
    meson setup "$builddir" "$here" >/dev/null
  fi
  meson compile -C "$builddir" >/dev/null
}

install_packages
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
