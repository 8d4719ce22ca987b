#!/usr/bin/env bash
# build-lab.sh LABDIR GUESTDIR HOSPES_BINARY
#
# Builds the "nested lab" host: this machine's /dev/kvm is PVM and cannot run
# an unmodified Linux guest, so tests boot a Debian kernel under QEMU TCG with
# `-cpu max` (emulated AMD-V) as a lab host that loads kvm_amd, and run
# `hospes run` inside it (see shared docs, machines.md).
#
# GUESTDIR is the output of scripts/build-guest.sh: its vmlinuz doubles as
# the lab host kernel and its kernel-root/ (the unpacked kernel package, with
# a modules.dep made by build-guest.sh) provides the kvm modules, so nothing
# is downloaded twice.
#
# Produces in LABDIR:
#   bzImage     the lab host kernel (a copy of GUESTDIR/vmlinuz).
#   lab.cpio    the lab host initramfs, an uncompressed newc cpio (see
#               "Compression" below):
#                 busybox-static + applet symlinks,
#                 the kvm, tun and bridge modules and their dependencies (load order in
#                 /etc/lab-modules),
#                 /usr/bin/hospes (HOSPES_BINARY), /usr/bin/hospes-blkback and
#                 /usr/bin/hospes-netback, /usr/bin/hospesd (built beside it; xl a
#                 link to hospes) with their shared
#                 libraries,
#                 /usr/bin/qemu-storage-daemon with its shared libraries,
#                 /usr/bin/qemu-system-x86_64 with its shared libraries and
#                 the firmware a `-M microvm` direct boot needs in /qemu-fw
#                 (pass `-L /qemu-fw`), as a comparison peer on the same KVM,
#                 /guest/{vmlinuz,vmlinux,initramfs.cpio.gz} (HOSPES_GUEST_DIR),
#                 /init (below).
#   lab.stamp   checksums of every input; an unchanged lab is not rebuilt.
#
# The lab /init mounts proc, sysfs, devtmpfs, devpts and tmpfs (/tmp,
# /dev/shm), insmods the kvm, tun and bridge modules, prints "lab: kvm ready" (or
# "lab: kvm missing" and powers off), exports HOSPES_GUEST_DIR=/guest, runs
# /lab/test.sh (added by tests/lab/lab-run.sh as a second cpio archive) with
# its output on the console, prints "lab: test exit status N" and powers off.
#
# Compression: the lab is booted under TCG, where the kernel's gunzip of
# ~150 MB costs several seconds more than reading an uncompressed archive
# (measured: see the timings printed by lab-run.sh); building is faster too.
# Set LAB_CPIO_GZIP=1 to produce a gzip -1 archive (lab.cpio.gz) instead.
set -euo pipefail

die() { echo "build-lab: error: $*" >&2; exit 1; }
log() { echo "build-lab: $*" >&2; }

if [[ $# -ne 3 ]]; then
    echo "usage: $0 LABDIR GUESTDIR HOSPES_BINARY" >&2
    exit 2
fi
LABDIR=$1
GUESTDIR=$(cd "$2" && pwd) || die "guest directory $2 not found (run scripts/build-guest.sh)"
HOSPES=$(readlink -f "$3")
[[ -f "$HOSPES" && -x "$HOSPES" ]] || die "hospes binary $3 is not an executable file"
SCRIPT_PATH=$(readlink -f "${BASH_SOURCE[0]}")
QEMU=$(command -v qemu-system-x86_64) || die "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"
# The block back-end is built beside the monitor; qemu-storage-daemon is the
# peer back-end of the vhost-user tests.
BLKBACK=$(dirname "$HOSPES")/hospes-blkback
[[ -x "$BLKBACK" ]] || die "$BLKBACK not found (build the hospes-blkback target)"
NETBACK=$(dirname "$HOSPES")/hospes-netback
[[ -x "$NETBACK" ]] || die "$NETBACK not found (build the hospes-netback target)"
HOSPESD=$(dirname "$HOSPES")/hospesd
[[ -x "$HOSPESD" ]] || die "$HOSPESD not found (build the hospesd target)"
QSD=$(command -v qemu-storage-daemon) || die "qemu-storage-daemon not found (apt-get install qemu-utils)"
QSD=$(readlink -f "$QSD")
QEMU=$(readlink -f "$QEMU")
BUSYBOX=$(dpkg-query -L busybox-static 2>/dev/null | grep -m1 -E '/s?bin/busybox$') ||
    die "busybox-static is not installed"

for f in vmlinuz vmlinux initramfs.cpio.gz kernel-release; do
    [[ -s "$GUESTDIR/$f" ]] || die "$GUESTDIR/$f missing (run scripts/build-guest.sh $GUESTDIR)"
done
RELEASE=$(cat "$GUESTDIR/kernel-release")
KMODDIR=$GUESTDIR/kernel-root/lib/modules/$RELEASE
[[ -s "$KMODDIR/modules.dep" ]] || die "$KMODDIR/modules.dep missing (rerun scripts/build-guest.sh)"

# Firmware for QEMU's microvm direct boot (its BIOS, Linux boot option ROMs,
# PVH boot of an ELF vmlinux) plus SeaBIOS for the occasional `-M pc`
# comparison, found where this QEMU looks for firmware (`-L help`: Debian
# splits it between qemu, seabios and ipxe folders, differently by version).
QEMU_FIRMWARE=()
QEMU_DATA_DIRS=$("$QEMU" -L help 2>/dev/null) || die "$QEMU -L help failed"
for name in bios-microvm.bin linuxboot_dma.bin linuxboot.bin pvh.bin kvmvapic.bin multiboot_dma.bin bios-256k.bin qboot.rom; do
    found=
    while IFS= read -r dir; do
        if [[ -f "$dir/$name" ]]; then found=$(readlink -f "$dir/$name"); break; fi
    done <<<"$QEMU_DATA_DIRS"
    case $name in
        bios-microvm.bin|linuxboot_dma.bin|pvh.bin|qboot.rom) [[ -n $found ]] || die "QEMU firmware $name not found in: $QEMU_DATA_DIRS" ;;
    esac
    [[ -n $found ]] && QEMU_FIRMWARE+=("$name=$found")
done

# kvm_amd for /dev/kvm; virtio_pci and virtio_blk for disks given to the lab
# (lab-run.sh --disk); tun and bridge for the network tests' taps and bridges.
KVM_MODULES=(kvm_amd virtio_pci virtio_blk tun bridge)

if [[ "${LAB_CPIO_GZIP:-0}" == 1 ]]; then
    CPIO_NAME=lab.cpio.gz
else
    CPIO_NAME=lab.cpio
fi

mkdir -p "$LABDIR"
LABDIR=$(cd "$LABDIR" && pwd)
STAMP=$LABDIR/lab.stamp

# ---------------------------------------------------------------------------
# Inputs and the stamp. Every file that goes into the lab is listed, with its
# shared libraries, and checksummed: a changed hospes, guest, QEMU, library or
# this script rebuilds the lab.
# ---------------------------------------------------------------------------

# shared_libs BINARY: absolute paths of the libraries (and dynamic loader) the
# binary loads, as ldd reports them; nothing for static binaries and scripts.
shared_libs() {
    local out
    out=$(ldd "$1" 2>/dev/null) || return 0
    awk '
        $2 == "=>" && $3 ~ /^\// { print $3; next }
        $1 ~ /^\// { print $1 }
    ' <<<"$out"
}

# module_order NAME...: module paths (relative to the modules dir) in load
# order, dependencies first, resolved through modules.dep.
declare -A MODDEP=() MODPATH=() MODDONE=()
while IFS= read -r line; do
    p=${line%%:*}
    n=${p##*/}; n=${n%.ko*}; n=${n//-/_}
    MODPATH[$n]=$p
    MODDEP[$p]=${line#*:}
done <"$KMODDIR/modules.dep"
MODORDER=()
visit_module() {
    local p=$1 d
    [[ -n "${MODDONE[$p]:-}" ]] && return 0
    MODDONE[$p]=1
    for d in ${MODDEP[$p]}; do visit_module "$d"; done
    MODORDER+=("$p")
}
for m in "${KVM_MODULES[@]}"; do
    [[ -n "${MODPATH[$m]:-}" ]] || die "module $m not found in $KMODDIR/modules.dep"
    visit_module "${MODPATH[$m]}"
done

HOSPES_LIBS=$(shared_libs "$HOSPES")
QEMU_LIBS=$(shared_libs "$QEMU")
BLKBACK_LIBS=$(shared_libs "$BLKBACK")
NETBACK_LIBS=$(shared_libs "$NETBACK")
HOSPESD_LIBS=$(shared_libs "$HOSPESD")
QSD_LIBS=$(shared_libs "$QSD")

inputs_sums() {
    local f
    {
        for f in vmlinuz vmlinux initramfs.cpio.gz kernel-release; do echo "$GUESTDIR/$f"; done
        echo "$HOSPES"; echo "$QEMU"; echo "$BUSYBOX"; echo "$SCRIPT_PATH"; echo "$BLKBACK"; echo "$NETBACK"; echo "$HOSPESD"; echo "$QSD"
        for f in "${MODORDER[@]}"; do echo "$KMODDIR/$f"; done
        for f in "${QEMU_FIRMWARE[@]}"; do echo "${f#*=}"; done
        echo "$HOSPES_LIBS"; echo "$QEMU_LIBS"; echo "$BLKBACK_LIBS"; echo "$NETBACK_LIBS"; echo "$HOSPESD_LIBS"; echo "$QSD_LIBS"
    } | grep -v '^$' | LC_ALL=C sort -u | while IFS= read -r f; do
        sha256sum "$(readlink -f "$f")" | sed "s|  .*|  $f|"
    done
    echo "cpio $CPIO_NAME"
}
STAMP_TEXT=$(inputs_sums)

if [[ -f "$STAMP" && -s "$LABDIR/bzImage" && -s "$LABDIR/$CPIO_NAME" ]] &&
    [[ "$(cat "$STAMP")" == "$STAMP_TEXT" ]]; then
    echo "lab up to date ($LABDIR)"
    exit 0
fi

log "building lab in $LABDIR (kernel $RELEASE, hospes $HOSPES)"
rm -f "$STAMP"
WORK=$(mktemp -d "$LABDIR/.work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ROOT=$WORK/root
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,root,etc,lab,guest,qemu-fw}
chmod 1777 "$ROOT/tmp"
mknod -m 600 "$ROOT/dev/console" c 5 1

# busybox and its applets (links made first so real binaries copied later,
# e.g. /usr/bin/hospes, are never shadowed by an applet of the same name).
cp "$BUSYBOX" "$ROOT/bin/busybox"
while read -r applet; do
    if [[ "$applet" == bin/busybox ]]; then continue; fi
    mkdir -p "$ROOT/$(dirname "$applet")"
    ln -sf /bin/busybox "$ROOT/$applet"
done < <("$BUSYBOX" --list-full)

# install_file SRC DEST: copy (following symlinks) to DEST inside the root.
install_file() {
    mkdir -p "$ROOT$(dirname "$2")"
    rm -f "$ROOT$2"
    cp -L "$1" "$ROOT$2"
}

# install_program SRC DEST: the program at DEST and its shared libraries (and
# dynamic loader) at the very paths ldd reports, so the loader finds them
# through its built-in search paths without an ld.so.cache.
install_program() {
    local lib
    install_file "$1" "$2"
    chmod 755 "$ROOT$2"
    while IFS= read -r lib; do
        if [[ -n "$lib" && ! -e "$ROOT$lib" ]]; then install_file "$lib" "$lib"; fi
    done <<<"$3"
}
install_program "$HOSPES" /usr/bin/hospes "$HOSPES_LIBS"
install_program "$QEMU" /usr/bin/qemu-system-x86_64 "$QEMU_LIBS"
install_program "$BLKBACK" /usr/bin/hospes-blkback "$BLKBACK_LIBS"
install_program "$NETBACK" /usr/bin/hospes-netback "$NETBACK_LIBS"
install_program "$HOSPESD" /usr/bin/hospesd "$HOSPESD_LIBS"
ln -sf hospes "$ROOT/usr/bin/xl"
install_program "$QSD" /usr/bin/qemu-storage-daemon "$QSD_LIBS"
for f in "${QEMU_FIRMWARE[@]}"; do
    install_file "${f#*=}" "/qemu-fw/${f%%=*}"
done

# kvm modules in load order.
LMODDIR=/lib/modules/$RELEASE
for p in "${MODORDER[@]}"; do
    install_file "$KMODDIR/$p" "$LMODDIR/$p"
done
printf '%s\n' "${MODORDER[@]}" >"$ROOT/etc/lab-modules"
log "kvm modules: ${MODORDER[*]##*/}"

# The guest hospes boots by default.
for f in vmlinuz vmlinux initramfs.cpio.gz; do
    cp "$GUESTDIR/$f" "$ROOT/guest/$f"
done

echo hospes-lab >"$ROOT/etc/hostname"

cat >"$ROOT/init" <<EOF
#!/bin/sh
# hospes nested lab host init (generated by tests/lab/build-lab.sh).
KERNEL_RELEASE=$RELEASE
EOF
cat >>"$ROOT/init" <<'EOF'
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
hostname hospes-lab

# kvm_amd, tun and bridge with their dependencies, in dependency order.
while read -r mod; do
    insmod "/lib/modules/$KERNEL_RELEASE/$mod" || echo "lab: insmod $mod failed"
done </etc/lab-modules

if [ -c /dev/kvm ]; then
    echo "lab: kvm ready"
else
    echo "lab: kvm missing"
    poweroff -f
fi
read -r uptime _ </proc/uptime
echo "lab: up after $uptime s"

export HOSPES_GUEST_DIR=/guest
# A heartbeat on the console: lab-run.sh takes a console silent for long as
# a hung lab host (an emulation fault) rather than a slow test.
(while :; do sleep 10; echo "lab: alive"; done) &
if [ -f /lab/test.sh ]; then
    cd /tmp
    # stdin is /dev/null: tests feed guests through their own pipes, and the
    # console has no input anyway.
    sh /lab/test.sh </dev/null
    status=$?
    echo "lab: test exit status $status"
else
    echo "lab: no /lab/test.sh"
fi
poweroff -f
EOF
chmod 755 "$ROOT/init"

log "packing $CPIO_NAME"
# Padded to a 4-byte multiple so a second archive can be appended (the
# kernel looks for a following cpio header only at 4-byte aligned offsets).
(cd "$ROOT" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$WORK/lab.cpio"
if [[ "$CPIO_NAME" == lab.cpio.gz ]]; then
    gzip -1n <"$WORK/lab.cpio" >"$WORK/$CPIO_NAME"
    size=$(stat -c %s "$WORK/$CPIO_NAME")
    if ((size % 4)); then head -c $((4 - size % 4)) /dev/zero >>"$WORK/$CPIO_NAME"; fi
fi

cp "$GUESTDIR/vmlinuz" "$LABDIR/bzImage"
rm -f "$LABDIR/lab.cpio" "$LABDIR/lab.cpio.gz"
mv "$WORK/$CPIO_NAME" "$LABDIR/$CPIO_NAME"
echo "$STAMP_TEXT" >"$STAMP"

echo "lab built:"
printf '  %-40s %s\n' "$LABDIR/bzImage" "$(du -h "$LABDIR/bzImage" | cut -f1)" \
    "$LABDIR/$CPIO_NAME" "$(du -h "$LABDIR/$CPIO_NAME" | cut -f1)"
