# fixture-lib.sh: what the image tests' fixture builders share; sourced
# by build-debian-fixture.sh and build-arm64-fixture.sh.
#
# SPDX-License-Identifier: MIT

# Prints DIR and ends the calling script when CACHE/KEY already holds the
# fixture NAME (its SHA512SUMS is written last); otherwise takes CACHE's
# lock, so that concurrent callers build it once, and checks again.
# Usage: fixture_cached_or_lock CACHE KEY NAME; sets $dir to CACHE/KEY.
fixture_cached_or_lock() {
  dir=$1/$2
  if [ -f "$dir/$3/SHA512SUMS" ]; then
    echo "$dir"
    exit 0
  fi
  mkdir -p "$1"
  exec 9>"$1/.lock"
  flock 9
  if [ -f "$dir/$3/SHA512SUMS" ]; then
    echo "$dir"
    exit 0
  fi
}

# Writes a qcow2 disk whose GPT's first partition holds an ext4 file
# system labelled "root" with the files of TREE, the way distributions'
# cloud images are laid out: with mkfs.ext4 -d as root, else with
# virt-make-fs (libguestfs-tools), which TREE may then be a tarball for.
# Usage: fixture_make_disk TREE QCOW2 SIZE (e.g. 2G); the caller's $work
# directory holds the raw disk meanwhile.
fixture_make_disk() {
  local raw=$work/disk.raw part_start part_sectors
  if [ "$(id -u)" -eq 0 ]; then
    rm -f "$raw"
    truncate -s "$3" "$raw"
    printf 'label: gpt\nstart=2048, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=root\n' |
      sfdisk -q "$raw"
    read -r part_start part_sectors < <(sfdisk -q -l -o Start,Sectors "$raw" | tail -n 1)
    mkfs.ext4 -q -F -L root -b 4096 -E offset=$((part_start * 512)) -d "$1" \
      "$raw" $((part_sectors * 512 / 4096))
    qemu-img convert -f raw -O qcow2 "$raw" "$2"
    rm -f "$raw"
  else
    virt-make-fs --partition=gpt --type=ext4 --label=root --size="$3" --format=qcow2 "$1" "$2"
  fi
}
