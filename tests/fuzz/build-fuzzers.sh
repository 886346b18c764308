#!/usr/bin/env bash
# build-fuzzers.sh: builds the libFuzzer targets with clang.
#
#   build-fuzzers.sh OUTDIR SOURCE_ROOT BUILD_ROOT [TARGET...]
#
# The project is built with whatever compiler meson chose (gcc on Debian),
# and meson uses one C compiler per project, so the fuzz targets are built
# here with clang directly: the protocol sources they exercise (qmp/ and
# qga/, which need nothing from lib/) are compiled once with the fuzzer's
# coverage instrumentation and ASan+UBSan into OUTDIR/obj, then each
# target links them with its harness. BUILD_ROOT supplies config.h.
# tests/fuzz/meson.build runs this when clang is installed; bench/fuzz
# runs the targets for real.
#
# SPDX-License-Identifier: MIT
set -euo pipefail
out=$1 src=$2 build=$3
shift 3
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(json-framer qmp-client qga-client guest-frames archive-import)

clang=${CLANG:-clang}
pkgs=(glib-2.0 gobject-2.0 gio-2.0 gio-unix-2.0 json-glib-1.0)
read -ra pkg_cflags <<<"$(pkg-config --cflags "${pkgs[@]}")"
read -ra pkg_libs <<<"$(pkg-config --libs "${pkgs[@]}")"
sanitize=(-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
cflags=(-g -O1 -std=gnu11 -D_GNU_SOURCE -DQLEAN_COMPILATION '-DG_LOG_DOMAIN="qlean"'
        -DGLIB_VERSION_MIN_REQUIRED=GLIB_VERSION_2_74 -DGLIB_VERSION_MAX_ALLOWED=GLIB_VERSION_2_74
        -I"$build" -I"$build/lib" -I"$src/lib" -I"$src/common" -I"$src/qmp" -I"$src/qga" -I"$src/channel" -I"$src/guest" -I"$src/lib/host" -I"$src/tests/fuzz"
        "${pkg_cflags[@]}" "${sanitize[@]}")

# Every source of the protocol folders (see docs/overview.md), which need
# nothing from lib/: a file split or added there is fuzzed with the rest.
protocol_sources=()
for f in "$src"/common/*.c "$src"/qmp/*.c "$src"/qga/*.c "$src"/channel/*.c; do
  protocol_sources+=("${f#"$src"/}")
done
protocol_sources+=(tests/fuzz/fuzz-peer.c)

mkdir -p "$out/obj"
objects=()
for s in "${protocol_sources[@]}"; do
  o=$out/obj/$(basename "${s%.c}").o
  "$clang" "${cflags[@]}" -fsanitize=fuzzer-no-link -c "$src/$s" -o "$o"
  objects+=("$o")
done

for t in "${targets[@]}"; do
  extra=()
  case $t in
    json-framer) harness=$src/tests/unit/fuzz-json-framer.c ;;
    # The archive reader of qlean_machine_import() (lib/host/qlean-archive.c)
    # needs nothing else from lib/.
    archive-import)
      harness=$src/tests/unit/fuzz-archive.c
      "$clang" "${cflags[@]}" -fsanitize=fuzzer-no-link -c "$src/lib/host/qlean-archive.c" -o "$out/obj/qlean-archive.o"
      extra=("$out/obj/qlean-archive.o") ;;
    *) harness=$src/tests/fuzz/fuzz-$t.c ;;
  esac
  "$clang" "${cflags[@]}" -fsanitize=fuzzer "$harness" "${extra[@]}" "${objects[@]}" "${pkg_libs[@]}" -o "$out/fuzz-$t"
done
