#!/usr/bin/env bash
# build-rootfs.sh OUTDIR [SIZE]
#
# Builds a Debian root file system image for hospes guests, meant to be their
# virtio-blk root disk (/dev/vda): the default guest's initramfs (see
# build-guest.sh) mounts it when the kernel command line says root=/dev/vda
# and switch_roots into its /sbin/init.
#
# Produces in OUTDIR:
#   rootfs.ext4    an ext4 image (label hospes-root, a sparse file of SIZE,
#                  default 1G) holding `debootstrap --variant=minbase` of the
#                  machine's own Debian release plus the packages in
#                  ROOTFS_PACKAGES below, built without mounting anything
#                  (mke2fs -d) and checked with e2fsck.
#   cache/         the downloaded packages, kept between runs (see below).
#   rootfs.stamp   what the image was built from.
#
# The guest's user space (no systemd: minbase has no init at all, and
# systemd-sysv would triple the image for nothing the tests need):
#   /sbin/init     a bash script. It mounts /proc, /sys, /dev (unless the
#                  initramfs moved them in already), /dev/pts, /dev/shm and
#                  /run, sets the host name (hospes-guest), brings up lo,
#                  prints "hospes-rootfs: user space reached" and runs a root
#                  login shell (bash, prompt "hospes# ", no password) on the
#                  console, started again whenever it exits.
#   poweroff, reboot, halt
#                  with -f: immediately (busybox-static's, which syncs
#                  first), as in the initramfs. Without -f: they signal init
#                  (busybox's convention: USR2, TERM, USR1), which stops all
#                  processes, remounts / read-only so the file system is left
#                  clean, and then powers off / reboots / halts. busybox-static
#                  is installed for this because nothing in minbase can make
#                  the reboot system call (util-linux has no poweroff; the
#                  alternative, sysrq 'o', is asynchronous and not guaranteed
#                  to be enabled).
#
# Caching: the build is skipped ("rootfs up to date") when the stamp matches
# the release, architecture, package list, SIZE and this script's checksum.
# The packages are downloaded once per (release, architecture, mirror,
# package list) into a debootstrap tarball in OUTDIR/cache
# (--make-tarball) and installed from it (--unpack-tarball), so rebuilding
# after a script change works offline. That also pins the package versions:
# to pick up newer ones, delete OUTDIR/cache. Only the release's main suite
# is used (debootstrap takes one suite from one mirror), not -updates or
# -security: fine for a test guest that never touches a network.
#
# The mirror is the one the machine's apt uses for that suite, read from apt's
# configuration (apt-get indextargets) at run time.
#
# Needs root (debootstrap chroots and runs maintainer scripts) and the host
# packages debootstrap and e2fsprogs (mke2fs >= 1.43 for -d). A missing
# debootstrap is installed with apt-get; the project's setup step lists both.
set -euo pipefail

die() { echo "build-rootfs: error: $*" >&2; exit 1; }
log() { echo "build-rootfs: $*" >&2; }

if [[ $# -lt 1 || $# -gt 2 || "${1:-}" == -h || "${1:-}" == --help ]]; then
    echo "usage: $0 OUTDIR [SIZE]   (SIZE as mke2fs takes it, e.g. 1G, 512M; default 1G)" >&2
    exit 2
fi

OUTDIR=$1
SIZE=${2:-1G}
SCRIPT_PATH=$(readlink -f "${BASH_SOURCE[0]}")
[[ "$SIZE" =~ ^[1-9][0-9]*[KMGT]$ ]] || die "SIZE '$SIZE' is not a number with a unit K, M, G or T (e.g. 1G)"

# Added to minbase (which already has bash, util-linux, e2fsprogs, mount,
# coreutils): network tools for the virtio-net tests, procps for ps/top, and
# busybox-static for poweroff/reboot (see above). --include pulls in their
# dependencies, not their recommendations.
ROOTFS_PACKAGES=(busybox-static iproute2 iputils-ping netcat-openbsd procps)
VARIANT=minbase

[[ -r /etc/os-release ]] || die "/etc/os-release is missing; cannot tell which Debian release to build"
# shellcheck disable=SC1091
RELEASE=$(. /etc/os-release && [[ "${ID:-}" == debian ]] && echo "${VERSION_CODENAME:-}") || true
[[ -n "$RELEASE" ]] || die "this machine is not Debian with a VERSION_CODENAME in /etc/os-release"
ARCH=$(dpkg --print-architecture)

mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
CACHE=$OUTDIR/cache
STAMP=$OUTDIR/rootfs.stamp
IMAGE=$OUTDIR/rootfs.ext4
mkdir -p "$CACHE"

SCRIPT_SUM=$(sha256sum "$SCRIPT_PATH" | cut -d' ' -f1)
STAMP_TEXT="script-sha256 $SCRIPT_SUM
release $RELEASE $ARCH $VARIANT
packages ${ROOTFS_PACKAGES[*]}
size $SIZE"

if [[ -f "$STAMP" ]] && [[ "$(cat "$STAMP")" == "$STAMP_TEXT" ]] && [[ -s "$IMAGE" ]]; then
    echo "rootfs up to date ($IMAGE)"
    exit 0
fi

[[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap needs chroot and device nodes)"
if ! command -v mke2fs >/dev/null || ! command -v e2fsck >/dev/null; then
    die "mke2fs/e2fsck missing: install Debian package e2fsprogs"
fi
if ! command -v debootstrap >/dev/null; then
    log "debootstrap is missing; installing it (add it to scripts/setup.sh)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null ||
        die "apt-get install debootstrap failed (try 'apt-get update')"
fi

rm -f "$STAMP"  # a half-finished build must never look up to date

# ---------------------------------------------------------------------------
# Mirror: the repository apt uses for "$RELEASE" main on this architecture.
# indextargets lists what sources.list(.d) configure; RELEASE is the suite as
# written there, CODENAME the one from the downloaded Release file (so a
# source written as "stable" is found too once apt-get update has run).
# ---------------------------------------------------------------------------
find_mirror() {
    # shellcheck disable=SC2016  # $(...) are apt's format fields, not shell
    apt-get indextargets --format '$(TARGET_OF)|$(IDENTIFIER)|$(ARCHITECTURE)|$(COMPONENT)|$(RELEASE)|$(CODENAME)|$(REPO_URI)' |
        awk -F'|' -v rel="$RELEASE" -v arch="$ARCH" \
            '$1 == "deb" && $2 == "Packages" && $3 == arch && $4 == "main" && ($5 == rel || $6 == rel) {print $7; exit}'
}
MIRROR=$(find_mirror) || true
[[ -n "$MIRROR" ]] || die "apt has no source for '$RELEASE main' ($ARCH); check /etc/apt/sources.list(.d) and run 'apt-get update'"
MIRROR=${MIRROR%/}
case "$MIRROR" in
    http://* | https://* | file:/*) ;;
    *) die "apt's mirror for $RELEASE is '$MIRROR'; debootstrap supports only http, https and file URIs" ;;
esac

# ---------------------------------------------------------------------------
# Work directory (same file system as OUTDIR, so the result is moved into
# place atomically), cleaned up on every exit.
# ---------------------------------------------------------------------------
WORK=$(mktemp -d "$OUTDIR/.work.XXXXXX")
cleanup() {
    # debootstrap mounts /proc and /sys inside the target while it runs and
    # unmounts them when it exits; if it was killed they may still be there,
    # and rm must never descend into them.
    local m
    while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done < <(findmnt -rn -o TARGET | awk -v w="$WORK/" 'index($0, w) == 1' | sort -r)
    rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

# run_debootstrap LOG ARGS...: debootstrap with its chatter in LOG; on failure
# show the end of it and of debootstrap's own log in the target.
run_debootstrap() {
    local out=$1 target=${*: -2:1}
    shift
    if ! debootstrap "$@" >"$out" 2>&1; then
        tail -n 15 "$out" >&2
        if [[ -f "$target/debootstrap/debootstrap.log" ]]; then
            echo "--- end of $target/debootstrap/debootstrap.log:" >&2
            tail -n 25 "$target/debootstrap/debootstrap.log" >&2
        fi
        return 1
    fi
}

INCLUDE=$(IFS=,; echo "${ROOTFS_PACKAGES[*]}")
DEBOOTSTRAP_ARGS=(--variant="$VARIANT" --arch="$ARCH" --include="$INCLUDE")

# ---------------------------------------------------------------------------
# Packages: a debootstrap tarball per (release, arch, mirror, package list).
# ---------------------------------------------------------------------------
TARBALL_KEY=$(printf '%s\n' "$RELEASE" "$ARCH" "$VARIANT" "$MIRROR" "${ROOTFS_PACKAGES[@]}" | sha256sum | cut -c1-16)
TARBALL=$CACHE/debs-$RELEASE-$ARCH-$TARBALL_KEY.tgz
if [[ -s "$TARBALL" ]]; then
    log "using cached packages $(basename "$TARBALL")"
else
    log "downloading $RELEASE $VARIANT + ${ROOTFS_PACKAGES[*]} from $MIRROR"
    partial=$WORK/debs.tgz
    run_debootstrap "$WORK/download.log" "${DEBOOTSTRAP_ARGS[@]}" --make-tarball="$partial" \
        "$RELEASE" "$WORK/download" "$MIRROR" ||
        die "debootstrap could not download the packages (see above)"
    mv "$partial" "$TARBALL"  # only complete tarballs ever appear in the cache
    # Tarballs for other package lists or mirrors are obsolete now.
    find "$CACHE" -maxdepth 1 -name 'debs-*.tgz' ! -name "$(basename "$TARBALL")" -delete
fi

# ---------------------------------------------------------------------------
# Install (offline, from the tarball).
# ---------------------------------------------------------------------------
ROOT=$WORK/root
log "installing into $ROOT"
run_debootstrap "$WORK/install.log" "${DEBOOTSTRAP_ARGS[@]}" --unpack-tarball="$TARBALL" \
    "$RELEASE" "$ROOT" "$MIRROR" ||
    die "debootstrap failed to install $RELEASE (see above)"

# ---------------------------------------------------------------------------
# Configure.
# ---------------------------------------------------------------------------
# Files go to usr/sbin when sbin is the merged-/usr symlink; writing through
# the link would be the same, but a link pointing anywhere unexpected must not
# send files outside the root.
SBIN=$ROOT/sbin
if [[ -L "$SBIN" ]]; then
    [[ "$(readlink "$SBIN")" == usr/sbin ]] || die "unexpected $SBIN -> $(readlink "$SBIN")"
    SBIN=$ROOT/usr/sbin
fi
for f in init poweroff reboot halt; do
    [[ ! -e "$SBIN/$f" ]] || die "the image already has /sbin/$f (from a package); refusing to replace it"
done
[[ -x "$ROOT/bin/busybox" ]] || die "busybox-static did not install /bin/busybox"

echo hospes-guest >"$ROOT/etc/hostname"
cat >"$ROOT/etc/hosts" <<'EOF'
127.0.0.1	localhost
127.0.1.1	hospes-guest
::1		localhost ip6-localhost ip6-loopback
EOF
# Informational (init does not read it): how the disk is meant to be mounted.
cat >"$ROOT/etc/fstab" <<'EOF'
# <file system>     <mount point> <type> <options> <dump> <pass>
LABEL=hospes-root   /             ext4   defaults  0      1
EOF
# Root without a password (the console shell needs none; this is for su/login).
sed -i 's/^root:[^:]*:/root::/' "$ROOT/etc/shadow"
# Same prompt as the initramfs shell, so tests can wait for it either way.
# /root/.bashrc runs after /etc/bash.bashrc, which would set its own.
cat >>"$ROOT/root/.bashrc" <<'EOF'

# hospes: fixed prompt for tests driving the console.
PS1='hospes# '
EOF

# bash 5.2 turns on bracketed paste, which wraps every prompt in escape
# sequences (ESC[?2004h ... ESC[?2004l) that end up at the start of the next
# output line and break tests matching '^KEY=value' on the console.
echo 'set enable-bracketed-paste off' >>"$ROOT/etc/inputrc"

cat >"$SBIN/init" <<'EOF'
#!/bin/bash
# /sbin/init of the hospes guest root file system (scripts/build-rootfs.sh).
# Deliberately tiny: mount the kernel file systems, print the marker, and keep
# a root shell on the console. poweroff/reboot/halt (without -f) signal this
# process, which then shuts down cleanly (see shutdown_now).
if (($$ != 1)); then
    echo "init: must run as process 1" >&2
    exit 1
fi
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root USER=root LOGNAME=root TERM=${TERM:-linux}
umask 022

# mount_once TYPE DIR OPTIONS: the initramfs moves /proc, /sys and /dev in,
# so mount only what is not there yet.
mount_once() {
    mountpoint -q "$2" && return 0
    mkdir -p "$2"
    mount -t "$1" -o "$3" "$1" "$2" || echo "hospes-rootfs: mounting $2 failed"
}
mount_once proc /proc nosuid,nodev,noexec
mount_once sysfs /sys nosuid,nodev,noexec
mount_once devtmpfs /dev nosuid,mode=755
mount_once devpts /dev/pts nosuid,noexec,gid=5,mode=620,ptmxmode=666
mount_once tmpfs /dev/shm nosuid,nodev,mode=1777
mount_once tmpfs /run nosuid,nodev,mode=755
# devtmpfs lacks these links; bash's process substitution wants /dev/fd.
ln -sfn /proc/self/fd /dev/fd
ln -sfn /proc/self/fd/0 /dev/stdin
ln -sfn /proc/self/fd/1 /dev/stdout
ln -sfn /proc/self/fd/2 /dev/stderr

read -r name </etc/hostname && echo "$name" >/proc/sys/kernel/hostname
ip link set lo up 2>/dev/null

# others_running: whether any user process other than init is left (kernel
# threads and zombies have an empty command line).
others_running() {
    local d cmd
    for d in /proc/[0-9]*; do
        [[ ${d#/proc/} == 1 ]] && continue
        cmd=
        IFS= read -r -d '' cmd 2>/dev/null <"$d/cmdline"
        [[ -n $cmd ]] && return 0
    done
    return 1
}

# shutdown_now poweroff|reboot|halt: stop every process, leave / clean
# (read-only, journal flushed), then do it.
shutdown_now() {
    trap '' TERM INT USR1 USR2
    echo "hospes-rootfs: $1"
    # Silence bash's reports of the jobs killed below ("... Hangup ...").
    exec 2>/dev/null
    kill -TERM -1 2>/dev/null
    kill -HUP -1 2>/dev/null # interactive bash ignores TERM
    for _ in {1..20}; do
        others_running || break
        sleep 0.1
    done
    kill -KILL -1 2>/dev/null
    sync
    mount -o remount,ro / || echo "hospes-rootfs: could not remount / read-only"
    exec /bin/busybox "$1" -f
}
# Busybox's signals for poweroff/halt/reboot; the kernel sends INT on
# Ctrl-Alt-Del.
trap 'shutdown_now poweroff' USR2
trap 'shutdown_now halt' USR1
trap 'shutdown_now reboot' TERM INT

# console_tty: the device behind /dev/console (the last console= on the
# command line). A shell needs the real tty as its controlling terminal for
# job control and Ctrl-C; /dev/console cannot be one.
console_tty() {
    local -a active
    read -r -a active 2>/dev/null </sys/class/tty/console/active
    local dev=/dev/${active[-1]:-console}
    [[ -c $dev ]] || dev=/dev/console
    echo "$dev"
}

echo "hospes-rootfs: user space reached"

cd /root || cd /
while :; do
    tty=$(console_tty)
    started=$SECONDS
    # In the background, so that `wait` (unlike a foreground command) is
    # interrupted when a shutdown signal arrives. Without job control bash
    # starts background commands with SIGINT and SIGQUIT ignored, and the
    # login shell would pass that on to every command (Ctrl-C would not stop
    # them); env puts the defaults back.
    env --default-signal=INT,QUIT setsid -c -w bash -l <>"$tty" >&0 2>&1 &
    wait $!
    # A shell that cannot start must not turn into a busy loop.
    ((SECONDS - started >= 2)) || sleep 2
done
EOF

cat >"$SBIN/poweroff" <<'EOF'
#!/bin/sh
# poweroff / reboot / halt of the hospes guest root file system
# (scripts/build-rootfs.sh). With -f: at once (busybox syncs first). Without:
# ask init (process 1) to stop everything and leave / clean first.
action=${0##*/}
for arg in "$@"; do
    case $arg in
        -f | --force) exec /bin/busybox "$action" -f ;;
    esac
done
case $action in
    poweroff) kill -s USR2 1 ;;
    reboot) kill -s TERM 1 ;;
    *) kill -s USR1 1 ;;
esac
EOF
chmod 755 "$SBIN/init" "$SBIN/poweroff"
ln -s poweroff "$SBIN/reboot"
ln -s poweroff "$SBIN/halt"

# ---------------------------------------------------------------------------
# Trim what a test guest never reads (documentation, translations, apt's
# package lists, debootstrap's log). Copyright files stay.
# ---------------------------------------------------------------------------
find "$ROOT/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
find "$ROOT/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$ROOT"/usr/share/{man,info,locale}/* "$ROOT"/var/lib/apt/lists/* \
    "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/log/bootstrap.log
mkdir -p "$ROOT/var/lib/apt/lists/partial"

CONTENT_SIZE=$(du -sh --apparent-size "$ROOT" | cut -f1)

# ---------------------------------------------------------------------------
# Image: mke2fs copies the tree in (-d), so nothing is mounted; the file is
# created sparse.
# ---------------------------------------------------------------------------
log "making ext4 image ($SIZE, contents $CONTENT_SIZE)"
if ! mke2fs -q -t ext4 -L hospes-root -d "$ROOT" "$WORK/rootfs.ext4" "$SIZE" >"$WORK/mke2fs.err" 2>&1; then
    cat "$WORK/mke2fs.err" >&2
    die "mke2fs failed (is SIZE $SIZE big enough for $CONTENT_SIZE of contents?)"
fi
if ! e2fsck -fn "$WORK/rootfs.ext4" >"$WORK/e2fsck.out" 2>&1; then
    cat "$WORK/e2fsck.out" >&2
    die "e2fsck found problems in the new image"
fi

# ---------------------------------------------------------------------------
# Publish: the image atomically, then the stamp.
# ---------------------------------------------------------------------------
mv "$WORK/rootfs.ext4" "$IMAGE"
echo "$STAMP_TEXT" >"$STAMP"

echo "rootfs built ($RELEASE $ARCH, $VARIANT + ${ROOTFS_PACKAGES[*]}):"
printf '  %s  %s sparse file, %s allocated, contents %s\n' "$IMAGE" "$SIZE" \
    "$(du -h "$IMAGE" | cut -f1)" "$CONTENT_SIZE"
