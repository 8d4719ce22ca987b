#!/usr/bin/env bash
# Installs everything hospes needs to build, test and run its lab, from
# Debian's packages. Idempotent: when every package is present it does nothing.
set -euo pipefail

packages=(
  # build
  cmake ninja-build g++ pkg-config
  # libraries
  libcli11-dev libfmt-dev libspdlog-dev libgtest-dev libgmock-dev libbenchmark-dev liburing-dev libseccomp-dev nlohmann-json3-dev libcpp-httplib-dev
  # fuzzing (libFuzzer comes with clang's runtime; llvm-19 has the
  # llvm-symbolizer-19 its sanitizers name functions and lines with)
  clang-19 libclang-rt-19-dev llvm-19
  # default guest and nested lab (the lab's emulator: see below)
  busybox-static cpio lz4 xz-utils gzip zstd file
  # guest root file system image (scripts/build-rootfs.sh)
  debootstrap e2fsprogs
)

# The nested lab's emulator is QEMU 10 or newer: Debian 12's QEMU 7.2
# emulates nested AMD-V with faults that crash and hang the lab host and
# lose the guest's XCR0 (docs/testing.md has the measurements). Debian 12
# has it in its backports suite, which is added from the archive address the
# machine's own apt sources use for its main suite.
# qemu-utils brings qemu-storage-daemon, the peer back-end of the vhost-user
# tests; it comes from the same suite as the emulator.
QEMU_PACKAGES=(qemu-system-x86 qemu-utils)
QEMU_MIN_VERSION=1:10~

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
old_qemu=0
qemu_version=
for p in "${QEMU_PACKAGES[@]}"; do
  v=$(dpkg-query -W -f='${Status} ${Version}' "$p" 2>/dev/null | sed -n 's/^install ok installed //p' || true)
  if [ -z "$v" ] || dpkg --compare-versions "$v" lt "$QEMU_MIN_VERSION"; then old_qemu=1; qemu_version=${v:-$qemu_version}; fi
done
[ ${#missing[@]} -eq 0 ] && [ $old_qemu -eq 0 ] && exit 0

die() { echo "setup: error: $*" >&2; exit 1; }
if [ "$(id -u)" -ne 0 ]; then
  die "missing packages and not root; run: sudo apt-get install ${missing[*]}" \
    "$([ $old_qemu -eq 1 ] && echo "and ${QEMU_PACKAGES[*]} (>= ${QEMU_MIN_VERSION#1:}) from backports")"
fi
export DEBIAN_FRONTEND=noninteractive
updated=0
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  updated=1
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The newest QEMU the machine's suites offer, taking the backports suite
# from the same archive as the main suite when none is configured yet.
if [ $old_qemu -eq 1 ]; then
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ -n "$codename" ] || die "cannot tell the Debian release (no VERSION_CODENAME in /etc/os-release)"
  suite=$codename-backports
  targets() { apt-get indextargets --format '$(SITE) $(RELEASE) $(COMPONENT)' | sort -u; }
  if ! targets | awk -v s="$suite" '$2 == s { found = 1 } END { exit !found }'; then
    site=$(targets | awk -v s="$codename" '$2 == s && $3 == "main" { print $1; exit }')
    [ -n "$site" ] || die "no apt source for '$codename main' to take the archive address of $suite from"
    echo "setup: adding the $suite suite of $site (sources.list.d/hospes-backports.list)"
    echo "deb $site $suite main" >/etc/apt/sources.list.d/hospes-backports.list
    updated=0
  fi
  [ $updated -eq 1 ] || apt-get update -qq
  echo "setup: installing ${QEMU_PACKAGES[*]} from $suite (installed: ${qemu_version:-none})"
  apt-get install -y -qq --no-install-recommends -t "$suite" "${QEMU_PACKAGES[@]}" >/dev/null
  for p in "${QEMU_PACKAGES[@]}"; do
    qemu_version=$(dpkg-query -W -f='${Version}' "$p")
    if dpkg --compare-versions "$qemu_version" lt "$QEMU_MIN_VERSION"; then
      die "$suite offers $p $qemu_version; the lab needs ${QEMU_MIN_VERSION#1:} or newer"
    fi
  done
fi
