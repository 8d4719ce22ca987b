#!/usr/bin/env bash
# build-guest.sh OUTDIR [KERNEL_PACKAGE]
#
# Builds hospes's default Linux guest from Debian's own packages, so the guest
# is an unmodified distribution kernel rather than something we configured to
# suit our monitor.
#
# Produces in OUTDIR:
#   vmlinuz            the kernel bzImage from the package (/boot/vmlinuz-*);
#                      exercises the bzImage (boot protocol) loader.
#   vmlinux            the uncompressed ELF kernel taken out of that bzImage;
#                      exercises the ELF/PVH loader.
#   initramfs.cpio.gz  busybox-static, the virtio/ext4 modules (with their
#                      dependencies) and an /init that prints
#                      "hospes-guest: user space reached" and then runs an
#                      interactive shell (prompt "hospes# ") on the console
#                      (with console=hvcN, once virtio_console has made it);
#                      when that shell exits the guest powers off.
#                      With root=/dev/... on the kernel command line (e.g.
#                      root=/dev/vda; also ro, rootfstype=, init=) it instead
#                      waits up to 10 s for that disk, mounts it (ext4,
#                      read-write unless ro) and switch_roots into its
#                      /sbin/init (the image from build-rootfs.sh); if that
#                      fails it says why and runs the shell as above.
#   kernel-root/       the kernel package unpacked (dpkg-deb -x); the lab
#                      (tests/lab/build-lab.sh) takes the lab host's kvm
#                      modules from here instead of downloading them again.
#   kernel-release     the kernel's release string (the /lib/modules/<release>
#                      directory name, what `uname -r` prints in the guest).
#   cache/             downloaded .deb files, kept between runs.
#   guest.stamp        what the outputs were built from (see below).
#
# KERNEL_PACKAGE defaults to linux-image-cloud-amd64 (small; ext4 built in,
# the virtio drivers are modules). It may be a metapackage or a versioned package name; a
# metapackage is followed through its linux-image-* dependency.
#
# Caching: the build is skipped ("guest up to date") when the stamp matches the
# resolved kernel package and version, the busybox-static version and checksum,
# and this script's checksum. Packages are downloaded with `apt-get download`
# through the machine's own apt configuration, and only when the .deb for the
# resolved version is not in the cache. Resolving versions needs only the local
# package lists (apt-cache), so a warm rebuild works offline.
#
# Host tools needed: apt, dpkg-deb, cpio, gzip, busybox-static (installed by
# the project's setup step), plus the decompressor matching the kernel's
# payload compression (Debian 12's 6.1 cloud kernel uses lz4: package lz4;
# others may use xz (xz-utils), zstd, gzip...). It is never installed here:
# a missing one stops the build with the package name to add to the setup.
set -euo pipefail

die() { echo "build-guest: error: $*" >&2; exit 1; }
log() { echo "build-guest: $*" >&2; }

if [[ $# -lt 1 || $# -gt 2 || "${1:-}" == -h || "${1:-}" == --help ]]; then
    echo "usage: $0 OUTDIR [KERNEL_PACKAGE]" >&2
    exit 2
fi

OUTDIR=$1
KERNEL_PACKAGE=${2:-linux-image-cloud-amd64}
SCRIPT_PATH=$(readlink -f "${BASH_SOURCE[0]}")

mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
CACHE=$OUTDIR/cache
STAMP=$OUTDIR/guest.stamp
mkdir -p "$CACHE"

# Modules the guest should have when they are loadable modules (on the cloud
# kernel ext4 and the crc helpers are built in, the virtio drivers are not;
# only what exists as .ko is copied).
# Names use '_'; module file names may use '-' (virtio-rng.ko).
GUEST_MODULES=(virtio virtio_ring virtio_mmio virtio_pci virtio_pci_modern_dev
    virtio_pci_legacy_dev virtio_blk virtio_net net_failover failover
    virtio_console virtio_rng ext4 jbd2 mbcache crc16 crc32c_generic libcrc32c
    pvpanic pvpanic_mmio button evdev virtio_balloon)

# ---------------------------------------------------------------------------
# Version resolution (apt-cache only: works offline after `apt-get update`).
# ---------------------------------------------------------------------------

# candidate_version PKG: the version apt would install, or fail clearly.
candidate_version() {
    local pkg=$1 cand
    cand=$(apt-cache policy "$pkg" 2>/dev/null | awk '/^ *Candidate:/ && !found {print $2; found = 1}')
    if [[ -z "$cand" || "$cand" == "(none)" ]]; then
        die "apt knows no installable version of '$pkg'; run 'apt-get update' (as root) and retry"
    fi
    echo "$cand"
}

# resolve_kernel_package PKG: follow metapackages (packages whose dependencies
# name another linux-image-* package) down to the package that ships the kernel.
# Each apt-cache call costs about half a second, so a name that is already
# versioned (linux-image-6.1.0-56-cloud-amd64) is taken as it is.
resolve_kernel_package() {
    local pkg=$1 next deps
    for _ in 1 2 3 4; do
        if [[ "$pkg" =~ ^linux-image-[0-9]+\.[0-9]+\.[0-9]+- ]]; then
            echo "$pkg"
            return
        fi
        deps=$(apt-cache depends --important "$pkg" 2>/dev/null) ||
            die "apt knows no package '$pkg'; run 'apt-get update' (as root) and retry"
        next=$(awk '$1 == "Depends:" && $2 ~ /^linux-image-/ {print $2; exit}' <<<"$deps")
        if [[ -z "$next" ]]; then
            echo "$pkg"
            return
        fi
        pkg=$next
    done
    die "could not resolve '$1' to a kernel package (metapackage chain too long)"
}

KPKG=$(resolve_kernel_package "$KERNEL_PACKAGE")
KVER=$(candidate_version "$KPKG")

# busybox: the installed busybox-static (the setup step installs it); it must
# be statically linked because the initramfs has no C library.
BUSYBOX_VERSION=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null) ||
    die "busybox-static is not installed (apt-get install busybox-static)"
BUSYBOX=$(dpkg-query -L busybox-static | grep -m1 -E '/s?bin/busybox$' || true)
[[ -x "$BUSYBOX" ]] || die "busybox-static installed but its binary was not found"
if LC_ALL=C readelf -l "$BUSYBOX" 2>/dev/null | grep -q 'INTERP'; then
    die "$BUSYBOX is dynamically linked; the initramfs needs busybox-static"
fi
BUSYBOX_SUM=$(sha256sum "$BUSYBOX" | cut -d' ' -f1)
SCRIPT_SUM=$(sha256sum "$SCRIPT_PATH" | cut -d' ' -f1)

STAMP_TEXT="script-sha256 $SCRIPT_SUM
kernel-package $KPKG $KVER
busybox-static $BUSYBOX_VERSION $BUSYBOX_SUM"

outputs_present() {
    local f
    for f in vmlinuz vmlinux initramfs.cpio.gz kernel-release; do
        [[ -s "$OUTDIR/$f" ]] || return 1
    done
    [[ -d "$OUTDIR/kernel-root" ]]
}

if [[ -f "$STAMP" ]] && [[ "$(cat "$STAMP")" == "$STAMP_TEXT" ]] && outputs_present; then
    echo "guest up to date ($OUTDIR)"
    exit 0
fi

log "building guest from $KPKG $KVER (requested: $KERNEL_PACKAGE), busybox-static $BUSYBOX_VERSION"
rm -f "$STAMP"  # a half-finished build must never look up to date

# ---------------------------------------------------------------------------
# Download (only when not cached).
# ---------------------------------------------------------------------------

# deb_path PKG VERSION: where the cached .deb lives (':' of an epoch escaped
# the way apt names its files).
deb_path() { echo "$CACHE/${1}_${2//:/%3a}_amd64.deb"; }

fetch_deb() {
    local pkg=$1 ver=$2 dest tmp got
    dest=$(deb_path "$pkg" "$ver")
    if [[ -s "$dest" ]]; then
        log "using cached $(basename "$dest")"
        return
    fi
    log "downloading $pkg=$ver"
    tmp=$(mktemp -d "$CACHE/.download.XXXXXX")
    # _apt cannot write into a root-only temp dir; let apt download as root
    # instead of printing a sandbox warning.
    if ! (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$pkg=$ver" >&2); then
        rm -rf "$tmp"
        die "apt-get download $pkg=$ver failed (try 'apt-get update')"
    fi
    got=$(find "$tmp" -maxdepth 1 -name '*.deb' -print -quit)
    [[ -n "$got" ]] || { rm -rf "$tmp"; die "apt-get download produced no .deb for $pkg"; }
    mv "$got" "$dest"   # moved only when complete: the cache never holds partial files
    rm -rf "$tmp"
    # Drop other versions of the same package so the cache does not grow with
    # every security update of the kernel.
    find "$CACHE" -maxdepth 1 -name "${pkg}_*.deb" ! -name "$(basename "$dest")" -delete
}

fetch_deb "$KPKG" "$KVER"
KDEB=$(deb_path "$KPKG" "$KVER")

# ---------------------------------------------------------------------------
# Unpack the kernel package.
# ---------------------------------------------------------------------------
WORK=$(mktemp -d "$OUTDIR/.work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

log "unpacking $(basename "$KDEB")"
rm -rf "$OUTDIR/kernel-root"
dpkg-deb -x "$KDEB" "$WORK/kernel-root"

shopt -s nullglob
vmlinuz_files=("$WORK"/kernel-root/boot/vmlinuz-*)
shopt -u nullglob
[[ ${#vmlinuz_files[@]} -eq 1 ]] ||
    die "$KPKG does not contain exactly one /boot/vmlinuz-* (is it a kernel image package?)"
VMLINUZ=${vmlinuz_files[0]}
RELEASE=${VMLINUZ##*/vmlinuz-}
MODDIR=$WORK/kernel-root/lib/modules/$RELEASE
[[ -d "$MODDIR/kernel" ]] || die "no modules for $RELEASE in $KPKG"
# Debian packages ship no modules.dep (the postinst runs depmod); generate it
# with busybox's depmod, so kmod need not be installed on the build machine.
# It also serves the lab, which takes its kvm modules from kernel-root.
"$BUSYBOX" depmod -b "$WORK/kernel-root" "$RELEASE"
[[ -s "$MODDIR/modules.dep" ]] || die "depmod produced no modules.dep for $RELEASE"

cp "$VMLINUZ" "$WORK/vmlinuz"

# ---------------------------------------------------------------------------
# vmlinux: take the compressed payload out of the bzImage and decompress it.
# The x86 boot protocol (>= 2.08) says where it is: payload_offset (0x248) and
# payload_length (0x24c) count from the start of the protected-mode code,
# which follows the real-mode setup of (setup_sects (0x1f1), 0 meaning 4, + 1)
# 512-byte sectors.
# ---------------------------------------------------------------------------

# le_uint FILE OFFSET SIZE: little-endian unsigned integer, byte by byte so the
# result does not depend on od's host byte order.
le_uint() {
    local -a bytes
    local value=0 i
    read -r -a bytes <<<"$(od -An -tu1 -j "$2" -N "$3" -v "$1")"
    [[ ${#bytes[@]} -eq $3 ]] || die "$1: short read at offset $2"
    for ((i = $3 - 1; i >= 0; i--)); do
        value=$((value * 256 + bytes[i]))
    done
    echo "$value"
}

hdr_magic=$(od -An -c -j 0x202 -N 4 "$WORK/vmlinuz" | tr -d ' ')
[[ "$hdr_magic" == HdrS ]] || die "$VMLINUZ is not a bzImage (no HdrS setup header)"
protocol=$(le_uint "$WORK/vmlinuz" $((0x206)) 2)
((protocol >= 0x208)) || die "boot protocol $(printf %#x "$protocol") has no payload fields (need >= 2.08)"
setup_sects=$(le_uint "$WORK/vmlinuz" $((0x1f1)) 1)
((setup_sects == 0)) && setup_sects=4
pm_start=$(((setup_sects + 1) * 512))
payload_offset=$(le_uint "$WORK/vmlinuz" $((0x248)) 4)
payload_length=$(le_uint "$WORK/vmlinuz" $((0x24c)) 4)
payload_start=$((pm_start + payload_offset))
vmlinuz_size=$(stat -c %s "$WORK/vmlinuz")
((payload_length > 4 && payload_start + payload_length <= vmlinuz_size)) ||
    die "payload fields out of range (start $payload_start, length $payload_length, file $vmlinuz_size)"

dd if="$WORK/vmlinuz" of="$WORK/payload" bs=1M skip="$payload_start" count="$payload_length" \
    iflag=skip_bytes,count_bytes status=none
# The kernel build appends the decompressed size as 4 little-endian bytes
# (for gzip that is gzip's own ISIZE trailer); use it to check the result.
expected_size=$(le_uint "$WORK/payload" $((payload_length - 4)) 4)

magic=$(od -An -tx1 -N 6 -v "$WORK/payload" | tr -d ' \n')
strip_size=1   # the appended size is not part of the stream, except for gzip
case "$magic" in
    1f8b*)         fmt=gzip;  tool=gzip;  pkg_needed=gzip;      strip_size=0 ;;
    fd377a585a00)  fmt=xz;    tool=xz;    pkg_needed=xz-utils ;;
    28b52ffd*)     fmt=zstd;  tool=zstd;  pkg_needed=zstd ;;
    02214c18*)     fmt=lz4;   tool=lz4;   pkg_needed=lz4 ;;
    5d0000*)       fmt=lzma;  tool=xz;    pkg_needed=xz-utils ;;
    425a68*)       fmt=bzip2; tool=bzip2; pkg_needed=bzip2 ;;
    894c5a4f*)     fmt=lzo;   tool=lzop;  pkg_needed=lzop ;;
    *) die "unknown kernel payload compression (magic $magic)" ;;
esac
command -v "$tool" >/dev/null ||
    die "the kernel payload is $fmt-compressed but '$tool' is missing: add Debian package '$pkg_needed' to the project's setup step"
if ((strip_size)); then
    truncate -s $((payload_length - 4)) "$WORK/payload"
fi

log "extracting vmlinux ($fmt payload, $payload_length bytes)"
dec_status=0
case "$fmt" in
    gzip)  gzip -dc <"$WORK/payload" >"$WORK/vmlinux" 2>"$WORK/dec.err" || dec_status=$? ;;
    xz)    xz -dc --single-stream <"$WORK/payload" >"$WORK/vmlinux" 2>"$WORK/dec.err" || dec_status=$? ;;
    lzma)  xz -dc --format=lzma <"$WORK/payload" >"$WORK/vmlinux" 2>"$WORK/dec.err" || dec_status=$? ;;
    zstd)  zstd -dcq <"$WORK/payload" >"$WORK/vmlinux" 2>"$WORK/dec.err" || dec_status=$? ;;
    lz4)   lz4 -dcq <"$WORK/payload" >"$WORK/vmlinux" 2>"$WORK/dec.err" || dec_status=$? ;;
    bzip2) bzip2 -dc <"$WORK/payload" >"$WORK/vmlinux" 2>"$WORK/dec.err" || dec_status=$? ;;
    lzo)   lzop -dc <"$WORK/payload" >"$WORK/vmlinux" 2>"$WORK/dec.err" || dec_status=$? ;;
esac
# gzip exits 2 for a mere warning; any status is acceptable when the output
# has exactly the size the kernel build recorded and is an ELF file.
actual_size=$(stat -c %s "$WORK/vmlinux")
if ((actual_size != expected_size)) || [[ "$(head -c 4 "$WORK/vmlinux" | od -An -tx1 | tr -d ' ')" != 7f454c46 ]]; then
    cat "$WORK/dec.err" >&2
    die "vmlinux extraction failed ($fmt exit $dec_status, $actual_size bytes, expected an ELF of $expected_size bytes)"
fi
rm -f "$WORK/payload" "$WORK/dec.err"

# ---------------------------------------------------------------------------
# Initramfs.
# ---------------------------------------------------------------------------
ROOT=$WORK/initramfs
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,root,etc,lib/modules}
chmod 1777 "$ROOT/tmp"
cp "$BUSYBOX" "$ROOT/bin/busybox"
# One symlink per applet, at the path busybox itself reports for it.
while read -r applet; do
    if [[ "$applet" == bin/busybox ]]; then continue; fi
    mkdir -p "$ROOT/$(dirname "$applet")"
    ln -sf /bin/busybox "$ROOT/$applet"
done < <("$BUSYBOX" --list-full)
[[ -L "$ROOT/bin/sh" ]] || die "busybox provides no sh applet"

# The kernel opens /dev/console before /init runs; provide it in case the
# kernel's built-in initramfs does not.
mknod -m 600 "$ROOT/dev/console" c 5 1

# Modules: the wanted ones that exist as .ko, plus everything they depend on
# according to modules.dep.
declare -A dep_of=() path_of=() selected=()
while IFS= read -r line; do
    mod_path=${line%%:*}
    name=${mod_path##*/}
    name=${name%.ko*}
    name=${name//-/_}
    path_of[$name]=$mod_path
    dep_of[$mod_path]=${line#*:}
done <"$MODDIR/modules.dep"

select_module() {
    local path=$1 dep
    [[ -n "${selected[$path]:-}" ]] && return
    selected[$path]=1
    for dep in ${dep_of[$path]}; do
        select_module "$dep"
    done
}
for m in "${GUEST_MODULES[@]}"; do
    if [[ -n "${path_of[$m]:-}" ]]; then
        select_module "${path_of[$m]}"
    fi
done

GMODDIR=$ROOT/lib/modules/$RELEASE
mkdir -p "$GMODDIR"
for path in "${!selected[@]}"; do
    mkdir -p "$GMODDIR/$(dirname "$path")"
    cp "$MODDIR/$path" "$GMODDIR/$path"
done
# A modules.dep (and modules.alias) naming only the copied modules; busybox
# modprobe resolves dependencies from it. Builtin lists are copied whole so
# tools can tell "built in" from "missing".
while IFS= read -r line; do
    if [[ -n "${selected[${line%%:*}]:-}" ]]; then echo "$line"; fi
done <"$MODDIR/modules.dep" >"$GMODDIR/modules.dep"
if [[ -f "$MODDIR/modules.alias" ]]; then
    while IFS= read -r line; do
        read -r _ _ mod <<<"$line"
        if [[ -n "$mod" && -n "${path_of[$mod]:-}" && -n "${selected[${path_of[$mod]}]:-}" ]]; then
            echo "$line"
        fi
    done < <(grep '^alias ' "$MODDIR/modules.alias" || true) >"$GMODDIR/modules.alias"
fi
for f in modules.builtin modules.builtin.modinfo modules.order; do
    if [[ -f "$MODDIR/$f" ]]; then cp "$MODDIR/$f" "$GMODDIR/$f"; fi
done
module_list=$(for p in "${!selected[@]}"; do basename "$p"; done | LC_ALL=C sort | tr '\n' ' ')
log "guest modules: ${module_list:-none (all built in)}"

echo hospes-guest >"$ROOT/etc/hostname"
mkdir -p "$ROOT/etc/acpi/PWRF"
cat >"$ROOT/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
echo "hospes-guest: power button pressed, powering off" >/dev/kmsg
sync
poweroff -f
EOF
chmod 755 "$ROOT/etc/acpi/PWRF/00000080"

cat >"$ROOT/init" <<'EOF'
#!/bin/sh
# hospes default guest: minimal user space for booting tests.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
hostname hospes-guest

# Load virtio drivers that are modules; failures are expected when a driver is
# built in or its device is absent.
for m in virtio_mmio virtio_blk virtio_net virtio_console virtio_rng pvpanic_mmio button evdev virtio_balloon; do
    modprobe -q "$m" 2>/dev/null
done

# console=hvc0 (hospes run --console virtio): the kernel found no console
# when it opened /dev/console for this script, since virtio_console is one of
# the modules just loaded. Once its device node appears, move stdin, stdout
# and stderr there; the shell below and a switched-to root's init inherit
# them. The last console= is the kernel's /dev/console.
console=
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        console=*)
            console=${arg#console=}
            console=${console%%,*}
            ;;
    esac
done
case "$console" in
    hvc*)
        i=0
        while [ ! -c "/dev/$console" ] && [ $i -lt 100 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        if [ -c "/dev/$console" ]; then
            exec <"/dev/$console" >"/dev/$console" 2>&1
        else
            # Nowhere to say it but the kernel log (and so the UART, if
            # it is a console too).
            echo "hospes-guest: error: /dev/$console did not appear within 10 s" >/dev/kmsg
        fi
        ;;
esac

# Root file system on a block device (scripts/build-rootfs.sh builds one):
# with root=/dev/... on the command line, mount it and hand over to its init.
# The kernel itself ignores root= when an initramfs has an /init. Any failure
# falls through to the shell below, as a rescue shell.
root= rootmode=rw rootfstype=ext4 rootinit=/sbin/init
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        root=*) root=${arg#root=} ;;
        rootfstype=*) rootfstype=${arg#rootfstype=} ;;
        init=*) rootinit=${arg#init=} ;;
        ro) rootmode=ro ;;
        rw) rootmode=rw ;;
    esac
done
try_root() {
    case "$root" in
        /dev/?*) ;;
        *) echo "hospes-guest: error: root=$root is not supported (only root=/dev/...)"; return 1 ;;
    esac
    # Under QEMU the virtio devices are PCI ones (hospes's are virtio-mmio).
    modprobe -q virtio_pci 2>/dev/null
    # devtmpfs creates the node once the driver has probed the disk.
    i=0
    while [ ! -b "$root" ]; do
        if [ $i -ge 100 ]; then
            echo "hospes-guest: error: root device $root did not appear within 10 s"
            return 1
        fi
        sleep 0.1
        i=$((i + 1))
    done
    mkdir -p /newroot
    echo "hospes-guest: mounting $root ($rootfstype, $rootmode) as the root file system"
    mount -t "$rootfstype" -o "$rootmode" "$root" /newroot || {
        echo "hospes-guest: error: cannot mount $root"
        return 1
    }
    if [ ! -x "/newroot$rootinit" ] && [ ! -L "/newroot$rootinit" ]; then
        echo "hospes-guest: error: $root has no $rootinit"
        umount /newroot
        return 1
    fi
    for d in dev proc sys; do
        if [ -d "/newroot/$d" ]; then mount -o move "/$d" "/newroot/$d"; fi
    done
    exec switch_root /newroot "$rootinit"
}
if [ -n "$root" ]; then
    try_root
    echo "hospes-guest: staying in the initramfs"
fi

# The power button (a monitor's power-button request, `xl shutdown`): the
# ACPI button driver makes it a key press, busybox acpid runs
# /etc/acpi/PWRF/00000080 for it, and that powers the guest off.
mkdir -p /var/log
acpid

echo "hospes-guest: user space reached"

# Interactive shell on the console (ttyS0 or hvc0). cttyhack makes the
# console's tty (from /sys/class/tty/console/active) the controlling terminal
# so job control and Ctrl-C work; tests pipe commands in through it.
export PS1='hospes# ' HOME=/root TERM=${TERM:-linux}
setsid cttyhack /bin/sh

# The shell exited: end the VM rather than let the kernel panic on init exit.
poweroff -f
EOF
chmod 755 "$ROOT/init"

log "packing initramfs"
# Fixed timestamps make the archive byte-identical for identical inputs, so a
# rebuild does not needlessly invalidate the lab built from it.
find "$ROOT" -exec touch -h -d @0 {} +
(cd "$ROOT" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) |
    gzip -9n >"$WORK/initramfs.cpio.gz"

# ---------------------------------------------------------------------------
# Publish: move finished files into place, then write the stamp last.
# ---------------------------------------------------------------------------
mv "$WORK/vmlinuz" "$OUTDIR/vmlinuz"
mv "$WORK/vmlinux" "$OUTDIR/vmlinux"
mv "$WORK/initramfs.cpio.gz" "$OUTDIR/initramfs.cpio.gz"
mv "$WORK/kernel-root" "$OUTDIR/kernel-root"
echo "$RELEASE" >"$OUTDIR/kernel-release"
echo "$STAMP_TEXT" >"$STAMP"

echo "guest built ($KPKG $KVER, kernel $RELEASE):"
for f in vmlinuz vmlinux initramfs.cpio.gz; do
    printf '  %-40s %s\n' "$OUTDIR/$f" "$(du -h "$OUTDIR/$f" | cut -f1)"
done
echo "  $OUTDIR/kernel-root (unpacked kernel package, used by tests/lab/build-lab.sh)"
