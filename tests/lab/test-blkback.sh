#!/bin/sh
# shellcheck shell=dash disable=SC1091,SC2016,SC2034  # sourced /lab/lib.sh; guest commands are literal
# In-lab test: disks served by a driver domain over vhost-user.
#  1. hospes-blkback serves the Debian root disk (the lab's /dev/vda, a copy
#     run-rootdisk.sh passes) to a hospes guest, which boots from it with
#     the stock virtio_blk driver; while the guest writes 48 MiB with fsync,
#     the back-end's worker is killed with SIGKILL four times (its
#     supervisor starts another at once) and then the whole back-end once
#     (the test starts it again): the guest goes on, the file reads back with the checksum of what was
#     written (after dropping the guest's page cache), and its kernel logs
#     no I/O error.
#  2. QEMU (microvm with memfd memory and qboot, vhost-user-blk on
#     virtio-mmio) boots the same root disk from hospes-blkback: a front-end
#     nobody here wrote.
#  3. qemu-storage-daemon's vhost-user-blk export serves the root disk to
#     hospes: a back-end nobody here wrote.
# run-rootdisk.sh then runs e2fsck -fn on the image.
LAB_TEST_NAME=blkback
. /lab/lib.sh

ROOTFS_MARKER='hospes-rootfs: user space reached'
SOCKETS=/tmp/blkback
mkdir -p $SOCKETS

start_blkback() {
    rm -f $SOCKETS/root.sock
    hospes-blkback --socket-dir $SOCKETS --disk root=/dev/vda 2>>/tmp/blkback.log &
    BLKBACK=$!
    i=0
    while [ ! -S $SOCKETS/root.sock ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    [ -S $SOCKETS/root.sock ] || { fail "hospes-blkback did not make its socket"; cat /tmp/blkback.log; }
}
stop_blkback() { kill -TERM "$BLKBACK" 2>/dev/null; wait "$BLKBACK" 2>/dev/null; }

start_blkback
guest_start blkback-1 --disk vhost-user=$SOCKETS/root.sock --root /dev/vda --memory 512M
if guest_boot 300 "$ROOTFS_MARKER"; then
    guest_cmd 'echo ROOT=$(awk "\$2 == \"/\" {r = \$1 \" \" \$3} END {print r}" /proc/mounts)-$(basename $(readlink /sys/block/vda/device/driver))' '^ROOT='
    check '[ "$(guest_value ROOT)" = "/dev/vda ext4-virtio_blk" ]' \
        "the guest's / is /dev/vda from hospes-blkback, ext4, on virtio_blk (got $(guest_value ROOT))"
    # 48 MiB in 1 MiB writes, each followed by fsync (dd conv=fsync syncs
    # once at the end; oflag=dsync makes every write durable before the next).
    guest_send 'head -c 50331648 /dev/urandom | tee /tmp/src | md5sum | sed "s/ .*//; s/^/WRITTEN=/"; dd if=/tmp/src of=/data48 bs=1M oflag=dsync 2>/dev/null; sync; echo WROTE-$((40+2))'
    # Four times the worker (the process that serves the guest; its
    # supervisor starts another at once), then the whole back-end, which
    # the test starts again.
    kills=0
    while [ $kills -lt 5 ]; do
        sleep 2
        kills=$((kills + 1))
        if [ $kills -lt 5 ]; then
            worker=$(cat /proc/$BLKBACK/task/$BLKBACK/children 2>/dev/null | cut -d' ' -f1)
            [ -n "$worker" ] && kill -KILL "$worker"
        else
            kill -KILL "$BLKBACK" 2>/dev/null && wait "$BLKBACK" 2>/dev/null
            start_blkback
        fi
    done
    guest_wait '^WROTE-42' 300
    pass "the guest's writes went on through 4 SIGKILLs of hospes-blkback's worker and 1 of the whole back-end"
    check '[ "$(grep -c "worker killed by signal 9" /tmp/blkback.log)" = 4 ]' \
        "the supervisor started the worker again after each of its 4 deaths (log: $(grep -c "worker killed by signal 9" /tmp/blkback.log))"
    WRITTEN=$(guest_value WRITTEN)
    guest_cmd 'echo 3 >/proc/sys/vm/drop_caches; echo READ=$(md5sum </data48 | cut -c1-32)' '^READ=[0-9a-f]' 300
    check '[ -n "$WRITTEN" ] && [ "$(guest_value READ)" = "$WRITTEN" ]' \
        "the 48 MiB file reads back from the disk as written (md5 $(guest_value READ), written $WRITTEN)"
    guest_cmd 'echo ERRORS=$(dmesg | grep -c -i -E "I/O error|error.*vda|vda.*error|EXT4-fs error|blocked for more")' '^ERRORS=[0-9]'
    check '[ "$(guest_value ERRORS)" = 0 ]' "no I/O errors or hung tasks in the guest's kernel log (got $(guest_value ERRORS) lines)"
    guest_cmd 'rm /data48; sync; echo REMOVED-$((40+2))' '^REMOVED-42'
    guest_send 'poweroff'
    guest_finish 180
    check '[ "$GUEST_STATUS" = 0 ]' "a clean poweroff ends the monitor with status 0 (got $GUEST_STATUS)"
fi
echo "lab-test: the monitor reconnected $(guest_text | grep -c 'reconnected after') times:" \
    "$(guest_text | grep -o 'reconnected after [0-9]* ms' | sed 's/reconnected after //' | tr '\n' ' ')"
echo "lab-test: hospes-blkback resubmitted requests in flight at $(grep -c 'run again' /tmp/blkback.log) of its starts:" \
    "$(grep -o '[0-9]* requests in flight before' /tmp/blkback.log | cut -d' ' -f1 | tr '\n' ' ')"
echo "lab-test: hospes-blkback's worker: $(grep -c 'worker killed' /tmp/blkback.log) deaths; as user $(grep Uid /proc/$(cat /proc/$BLKBACK/task/$BLKBACK/children | cut -d' ' -f1)/status 2>/dev/null)"

# QEMU as the front-end of hospes-blkback (a front-end nobody here wrote).
LAB_MONITOR=qemu
guest_start blkback-qemu --disk vhost-user=$SOCKETS/root.sock --root /dev/vda --memory 512M
if guest_boot 300 "$ROOTFS_MARKER"; then
    guest_cmd 'echo QROOT=$(awk "\$2 == \"/\" {print \$1}" /proc/mounts)-$(head -c 1048576 /dev/urandom | tee /qemu1m | md5sum | cut -c1-8)-$(sync; echo 3 >/proc/sys/vm/drop_caches; md5sum </qemu1m | cut -c1-8)' '^QROOT='
    Q=$(guest_value QROOT)
    check 'echo "$Q" | grep -q "^/dev/vda-" && [ "$(echo "$Q" | cut -d- -f2)" = "$(echo "$Q" | cut -d- -f3)" ]' \
        "QEMU boots the root disk from hospes-blkback; a 1 MiB file reads back (got $Q)"
    guest_cmd 'rm /qemu1m; sync; echo QREMOVED-$((40+2))' '^QREMOVED-42'
    guest_send 'poweroff'
    guest_finish 180
fi
LAB_MONITOR=hospes
stop_blkback

# qemu-storage-daemon as the back-end of hospes.
rm -f /tmp/qsd.sock
qemu-storage-daemon --blockdev driver=host_device,node-name=root,filename=/dev/vda \
    --export type=vhost-user-blk,id=exp,node-name=root,addr.type=unix,addr.path=/tmp/qsd.sock,writable=on \
    2>/tmp/qsd.log &
QSD=$!
i=0
while [ ! -S /tmp/qsd.sock ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
guest_start blkback-qsd --disk vhost-user=/tmp/qsd.sock --root /dev/vda --memory 512M
if guest_boot 300 "$ROOTFS_MARKER"; then
    guest_cmd 'echo SROOT=$(awk "\$2 == \"/\" {print \$1}" /proc/mounts)-$(head -c 1048576 /dev/urandom | tee /qsd1m | md5sum | cut -c1-8)-$(sync; echo 3 >/proc/sys/vm/drop_caches; md5sum </qsd1m | cut -c1-8)' '^SROOT='
    S=$(guest_value SROOT)
    check 'echo "$S" | grep -q "^/dev/vda-" && [ "$(echo "$S" | cut -d- -f2)" = "$(echo "$S" | cut -d- -f3)" ]' \
        "hospes boots the root disk from qemu-storage-daemon; a 1 MiB file reads back (got $S)"
    guest_cmd 'rm /qsd1m; sync; echo SREMOVED-$((40+2))' '^SREMOVED-42'
    guest_send 'poweroff'
    guest_finish 180
    check '[ "$GUEST_STATUS" = 0 ]' "a clean poweroff ends the monitor with status 0 (got $GUEST_STATUS)"
fi
kill -TERM $QSD 2>/dev/null; wait $QSD 2>/dev/null
finish
