#!/usr/bin/env bash
# check-install.sh: `meson install` into a scratch DESTDIR, then checks
# that everything landed where it belongs and that a program builds
# against the installed qlean-1.pc, links and runs.
#
#   check-install.sh BUILDDIR VERSION PREFIX BINDIR LIBDIR LIBEXECDIR
#                    INCLUDEDIR DATADIR MANDIR CONSUMER_C
#
# SPDX-License-Identifier: MIT
set -euo pipefail

builddir=$1 version=$2 prefix=$3 bindir=$4 libdir=$5 libexecdir=$6
includedir=$7 datadir=$8 mandir=$9 consumer=${10}

destdir=$(mktemp -d "${TMPDIR:-/tmp}/qlean-install-XXXXXX")
trap 'rm -rf "$destdir"' EXIT

# Relative option values are under the prefix; absolute ones are not.
under_prefix() { case $1 in /*) echo "$1" ;; *) echo "$prefix/$1" ;; esac; }
root=$destdir
bin=$root$(under_prefix "$bindir")
lib=$root$(under_prefix "$libdir")
libexec=$root$(under_prefix "$libexecdir")
include=$root$(under_prefix "$includedir")
data=$root$(under_prefix "$datadir")
man=$root$(under_prefix "$mandir")

meson install -C "$builddir" --no-rebuild --destdir "$destdir" --quiet

failed=0
expect() {
  if [ -e "$1" ]; then
    echo "ok: ${1#"$destdir"}"
  else
    echo "MISSING: ${1#"$destdir"}"
    failed=1
  fi
}

expect "$bin/qlean"
expect "$libexec/qlean/qlean-guest"
expect "$lib/libqlean-1.so"
expect "$lib/libqlean-1.so.0"
expect "$lib/pkgconfig/qlean-1.pc"
for h in qlean.h qlean-test.h qlean-version.h qlean-version-macros.h qlean-enums.h \
         qlean-machine.h qlean-wait.h qlean-qmp-client.h qlean-qga-client.h; do
  expect "$include/qlean-1/qlean/$h"
done
expect "$man/man1/qlean.1"
expect "$data/bash-completion/completions/qlean"
if [ -f "$builddir/lib/Qlean-1.0.typelib" ]; then
  expect "$data/gir-1.0/Qlean-1.0.gir"
  expect "$lib/girepository-1.0/Qlean-1.0.typelib"
fi
[ "$failed" -eq 0 ] || { echo "check-install: files missing from the installation"; exit 1; }

# Every header the installed umbrella includes must be installed.
for h in $(grep -ho '#include "[^"]*"' "$include/qlean-1/qlean/"*.h | sed 's/.*"\(.*\)"/\1/' | sort -u); do
  expect "$include/qlean-1/qlean/$h"
done
[ "$failed" -eq 0 ] || { echo "check-install: an installed header includes one that is not installed"; exit 1; }

bash -n "$data/bash-completion/completions/qlean"

# A consumer, as the README tells users to build one. The installed
# qlean-1.pc is used as it is, except that its prefix points into
# DESTDIR: PKG_CONFIG_SYSROOT_DIR cannot do that here, since it would
# move glib's and json-glib's paths into DESTDIR as well.
pc=$lib/pkgconfig/qlean-1.pc
grep -qx "prefix=$prefix" "$pc" || { echo "check-install: qlean-1.pc does not say prefix=$prefix"; exit 1; }
mkdir "$destdir/pkgconfig"
sed "s|^prefix=.*|prefix=$destdir$prefix|" "$pc" > "$destdir/pkgconfig/qlean-1.pc"
export PKG_CONFIG_PATH=$destdir/pkgconfig
[ "$(pkg-config --modversion qlean-1)" = "$version" ]
cflags_libs=$(pkg-config --cflags --libs qlean-1)
echo "pkg-config: $cflags_libs"
case $cflags_libs in
  *"-I$include/qlean-1"*) ;;
  *) echo "check-install: qlean-1.pc does not point at the installed headers"; exit 1 ;;
esac
cc -o "$destdir/consumer" "$consumer" $cflags_libs
output=$(LD_LIBRARY_PATH=$lib "$destdir/consumer")
echo "consumer: $output"
[ "$output" = "qlean $version, 2 cores, state 0" ]

# The installed typelib, from Python (Debian's python3 has python3-gi).
if [ -f "$lib/girepository-1.0/Qlean-1.0.typelib" ] && /usr/bin/python3 -c 'import gi' 2>/dev/null; then
  py=$(GI_TYPELIB_PATH=$lib/girepository-1.0 LD_LIBRARY_PATH=$lib /usr/bin/python3 -c '
import gi
gi.require_version("Qlean", "1.0")
from gi.repository import Qlean
print(Qlean.VERSION_S, Qlean.MachineConfig.new().get_cores())')
  echo "python: $py"
  [ "$py" = "$version 1" ]
fi

echo "check-install: installed tree is complete and usable"
