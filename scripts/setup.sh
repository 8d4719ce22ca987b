#!/usr/bin/env bash
# Installs everything hospes needs to build, test and run its lab, from
# Debian's packages. Idempotent: when every package is present it does nothing.
set -euo pipefail

packages=(
  # build
  cmake ninja-build g++ pkg-config
  # libraries
  libcli11-dev libfmt-dev libspdlog-dev libgtest-dev libgmock-dev libbenchmark-dev liburing-dev
  # fuzzing (libFuzzer comes with clang's runtime)
  clang-19 libclang-rt-19-dev
  # default guest and nested lab
  busybox-static cpio lz4 xz-utils gzip zstd qemu-system-x86 file
  # guest root file system image (scripts/build-rootfs.sh)
  debootstrap e2fsprogs
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "setup: error: missing packages and not root; run: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
