#!/bin/sh
# shellcheck shell=dash disable=SC1091,SC2016,SC2034  # sourced /lab/lib.sh; guest commands are literal
# In-lab test: the Debian root disk (scripts/build-rootfs.sh) on virtio-blk.
# The lab host sees the image as its own /dev/vda (run-rootdisk.sh passes a
# copy), so hospes serves it as a host block device, like Xen's phy: disks.
# A 64 MiB file written and synced in one monitor process reads back the
# same in the next; a second, read-only disk is /dev/vdb, reads right and
# refuses writes, and its image is unchanged. A third boot has the virtio
# console (hvc0). run-rootdisk.sh then runs e2fsck -n on the image.
LAB_TEST_NAME=rootdisk
. /lab/lib.sh

ROOTFS_MARKER='hospes-rootfs: user space reached'
DISK_ARGS="--disk /dev/vda --disk /tmp/data.img,ro --root /dev/vda --memory 512M"

dd if=/dev/urandom of=/tmp/data.img bs=1M count=16 2>/dev/null
DATA_MD5=$(md5sum </tmp/data.img | cut -c1-32)

# shellcheck disable=SC2086  # DISK_ARGS is a list of words
guest_start rootdisk-1 $DISK_ARGS
if guest_boot 300 "$ROOTFS_MARKER"; then
    guest_cmd 'echo ROOT=$(awk "\$2 == \"/\" {r = \$1 \" \" \$3 \" \" substr(\$4, 1, 2)} END {print r}" /proc/mounts)' '^ROOT='
    check '[ "$(guest_value ROOT)" = "/dev/vda ext4 rw" ]' "/ is /dev/vda, ext4, read-write (got $(guest_value ROOT))"
    guest_cmd 'echo DRIVER=$(basename $(readlink /sys/block/vda/device/driver))' '^DRIVER='
    check '[ "$(guest_value DRIVER)" = virtio_blk ]' "the stock virtio_blk driver serves /dev/vda (got $(guest_value DRIVER))"

    # 64 MiB of known content: the checksum is taken of the data in flight,
    # before it reaches the disk, so the later read compares against it.
    guest_cmd 'head -c 67108864 /dev/urandom | tee /data64 | md5sum | sed "s/ .*//; s/^/WRITTEN=/"; sync; echo SYNCED-$((40+2))' \
        '^SYNCED-42' 300
    WRITTEN=$(guest_value WRITTEN)
    guest_cmd 'echo SIZE=$(stat -c %s /data64)' '^SIZE='
    check '[ "$(guest_value SIZE)" = 67108864 ]' "a 64 MiB file written (got $(guest_value SIZE) bytes)"

    guest_cmd 'echo VDB=$(cat /sys/block/vdb/ro)-$(cat /sys/block/vdb/size)-$(cat /sys/block/vdb/serial)' '^VDB='
    check '[ "$(guest_value VDB)" = 1-32768-data.img ]' \
        "/dev/vdb is read-only, 16 MiB, serial data.img (got $(guest_value VDB))"
    guest_cmd 'echo VDBMD5=$(md5sum </dev/vdb | cut -c1-32)' '^VDBMD5=[0-9a-f]'
    check '[ "$(guest_value VDBMD5)" = "$DATA_MD5" ]' "/dev/vdb reads what the lab wrote"
    guest_cmd 'dd if=/dev/zero of=/dev/vdb bs=4096 count=1 oflag=direct conv=notrunc; echo DDVDB=$?' '^DDVDB='
    check '[ "$(guest_value DDVDB)" != 0 ]' "a write to the read-only /dev/vdb fails (dd status $(guest_value DDVDB))"
    guest_cmd 'echo TRIM=$(fstrim / >/dev/null 2>&1; echo $?)' '^TRIM='
    check '[ "$(guest_value TRIM)" = 0 ]' "fstrim / (virtio-blk discard) succeeds (got $(guest_value TRIM))"
    guest_cmd 'echo ERRORS=$(dmesg | grep -c -i -E "error.*vda|vda.*error|EXT4-fs error")' '^ERRORS=[0-9]'
    check '[ "$(guest_value ERRORS)" = 0 ]' "no errors on vda in the kernel log (got $(guest_value ERRORS) lines)"
    guest_send 'reboot'
    guest_finish 180
    check '[ "$GUEST_STATUS" = 0 ]' "a clean reboot ends the monitor with status 0 (got $GUEST_STATUS)"
fi
check '[ "$(md5sum </tmp/data.img | cut -c1-32)" = "$DATA_MD5" ]' "the read-only image is unchanged"

# A new monitor process on the same disk (the first one, if it failed, was
# stopped, so the disk is free).
# shellcheck disable=SC2086
guest_start rootdisk-2 $DISK_ARGS
if guest_boot 300 "$ROOTFS_MARKER"; then
    guest_cmd 'echo READ=$(md5sum </data64 | cut -c1-32)' '^READ=[0-9a-f]' 300
    check '[ -n "$WRITTEN" ] && [ "$(guest_value READ)" = "$WRITTEN" ]' \
        "the 64 MiB file reads back after the reboot (md5 $(guest_value READ), written $WRITTEN)"
    guest_cmd 'rm /data64; sync; echo REMOVED-$((40+2))' '^REMOVED-42'
    guest_send 'poweroff'
    guest_finish 180
    check '[ "$GUEST_STATUS" = 0 ]' "a clean poweroff ends the monitor with status 0 (got $GUEST_STATUS)"
fi

# The root disk with the virtio console: its init and shell are on hvc0.
guest_start rootdisk-hvc --disk /dev/vda --root /dev/vda --console virtio --memory 512M
if guest_boot 300 "$ROOTFS_MARKER"; then
    guest_cmd 'echo TTY=$(tty)' '^TTY='
    check '[ "$(guest_value TTY)" = /dev/hvc0 ]' "the root disk's shell runs on /dev/hvc0 (got $(guest_value TTY))"
    guest_send 'poweroff'
    guest_finish 180
    check '[ "$GUEST_STATUS" = 0 ]' "poweroff from hvc0 ends the monitor with status 0 (got $GUEST_STATUS)"
fi
finish
