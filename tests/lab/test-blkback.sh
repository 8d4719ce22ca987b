#!/bin/sh
# shellcheck shell=dash disable=SC1091,SC2016,SC2034  # sourced /lab/lib.sh; guest commands are literal
# In-lab test: disks served by a driver domain over vhost-user.
#  1. Crash under writes. hospes-blkback serves the Debian root disk (the
#     lab's /dev/vda, a copy run-rootdisk.sh passes) to a hospes guest,
#     which boots from it with the stock virtio_blk driver. In the guest a
#     loop writes numbered, checksummed 4 KiB records 1, 2, 3, ... into
#     /records (preallocated with fallocate: every write also turns part of
#     an unwritten extent into a written one, metadata that the fsync
#     commits through ext4's journal): each record is one
#     `dd oflag=direct conv=fsync` (direct I/O, then fsync), and only after
#     dd succeeded does the guest print "ACK n" on its console, the log of
#     acknowledged records. Meanwhile hospes-blkback is SIGKILLed 20 times,
#     each after a random pause of 0.3-2 s: 15 times its worker (the
#     process that serves the guest; the supervisor starts another at once)
#     and every 4th time (5 times) the whole back-end, which the test starts
#     again. Before the next pause the test waits until the monitor has
#     reconnected and the guest has acknowledged a record since (so no kill
#     lands while a restarted back-end still waits for the disk's lock, and
#     each kill finds a back-end serving a writing guest). Afterwards the writer
#     stops, the guest drops its caches and reads every acknowledged record
#     back with direct I/O: each must hold its own number, the content
#     derived from it and the MD5 of its body in its trailer. The guest must
#     still answer, its kernel log no I/O error or hung task; the figures
#     (records, kills, reconnect times with median and worst, requests the
#     back-end ran again from the inflight region) are printed as lab-test
#     lines.
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

# The socket is made only after the disk is opened and locked (a back-end
# started again at once may wait up to 5 s for its predecessor's lock).
start_blkback() {
    rm -f $SOCKETS/root.sock
    # The guest's socket alone in its directory (its control and manage
    # sockets elsewhere), as hospesd gives each domain one: a jailed monitor
    # sees that directory, and a back-end started again makes its new
    # socket there.
    hospes-blkback --socket-dir $SOCKETS --control /tmp/blkback-control --manage /tmp/blkback-manage \
        --disk root=/dev/vda 2>>/tmp/blkback.log &
    BLKBACK=$!
    i=0
    while [ ! -S $SOCKETS/root.sock ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    [ -S $SOCKETS/root.sock ] || { fail "hospes-blkback did not make its socket"; cat /tmp/blkback.log; return 1; }
}
stop_blkback() { kill -TERM "$BLKBACK" 2>/dev/null; wait "$BLKBACK" 2>/dev/null; }

KILLS=20               # SIGKILLs of hospes-blkback under writes
BACKEND_EVERY=4        # every 4th kills the whole back-end, the others its worker

uptime_ms() { awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime; }
# A pause of 0.3 to 2 s, random (the lab's shell may have no $RANDOM).
random_pause() {
    local r ms
    r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
    ms=$((300 + r % 1701))
    sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
}
# The record numbers the guest acknowledged, in console order. A monitor
# log line written into the middle of an ACK line hides that line (it is
# then not counted here; every record up to the last acknowledged one is
# read back anyway, since the writer acknowledges them in order).
acked() { guest_text | grep -E '^ACK [0-9]+$' | cut -d' ' -f2; }
last_acked() { local n; n=$(acked | tail -n 1); echo "${n:-0}"; }
reconnects() { guest_text | grep -c 'reconnected after [0-9]* ms'; }
# The worker proper: the supervisor's child only waits for it (its child,
# pid 1 of a pid namespace of its own).
worker_pid() {
    local waiter inner
    waiter=$(cut -d' ' -f1 /proc/"$BLKBACK"/task/"$BLKBACK"/children 2>/dev/null)
    [ -n "$waiter" ] && inner=$(cut -d' ' -f1 /proc/"$waiter"/task/"$waiter"/children 2>/dev/null)
    echo "${inner:-$waiter}"
}
# resumed N: wait (60 s at most) until the monitor has reconnected N times
# and the guest has then acknowledged one more record; 1 when it does not
# (or a write failed, or the monitor exited).
resumed() {
    local deadline n
    deadline=$(($(now) + 60))
    while [ "$(reconnects)" -lt "$1" ]; do
        guest_text | grep -q '^WRITE-FAILED' && return 1
        { guest_exited || [ "$(now)" -ge $deadline ]; } && return 1
        sleep 0.3
    done
    n=$(last_acked)
    while [ "$(last_acked)" -le "$n" ]; do
        guest_text | grep -q '^WRITE-FAILED' && return 1
        { guest_exited || [ "$(now)" -ge $deadline ]; } && return 1
        sleep 0.3
    done
}
# median_worst: "median M ms, worst W ms" of the numbers on stdin.
median_worst() {
    sort -n | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "none"; exit }
        m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "median %g ms, worst %d ms, of %d\n", m, v[NR], NR }'
}

# The guest's side, typed on its console (bash). w N writes record N: 63
# lines "rec N line I" with numbers derived from N, then the trailer
# "sum N MD5-of-the-63-lines", 4096 bytes, at offset (N-1)*4 KiB of
# /records, O_DIRECT, then fsync. v N reads records 1..N back (O_DIRECT, one
# file each), checks every line against what N gives and every trailer's
# MD5 against its body, prints "BAD N: why" for each bad record (the first
# 20) and "VERIFIED-42 <records read> <bad records>".
W_DEF=$(cat <<'EOF'
w() { local n=$1 a b c F s; a=$((n*40503%999999937)); b=$((a*48271%999999937)); c=$((b*48271%999999937)); printf -v F 'rec %010d line %%s %010d %010d %010d %07d\\n' $n $a $b $c $((c%10000000)); printf -v R "$F" {01..63}; printf %s "$R" >/dev/shm/rec; s=$(md5sum </dev/shm/rec); printf 'sum %010d %s%16s\n' $n "${s%% *}" '' >>/dev/shm/rec; dd if=/dev/shm/rec of=/records bs=4096 count=1 seek=$((n-1)) oflag=direct conv=notrunc,fsync status=none; }
EOF
)
V_DEF=$(cat <<'EOF'
v() { local W=$1; rm -rf /dev/shm/v; mkdir /dev/shm/v; cd /dev/shm/v && dd if=/records of=rb bs=4096 count=$W iflag=direct status=none && split -b 4096 -d -a 6 rb r && rm rb && awk -v W=$W 'FNR==1{close(f); k=substr(FILENAME,2)+1; f="b" k; a=k*40503%999999937; b=a*48271%999999937; c=b*48271%999999937} FNR<64{if(!e[k]&&$0!=sprintf("rec %010d line %02d %010d %010d %010d %07d",k,FNR,a,b,c,c%10000000))e[k]="line " FNR; print>f} FNR==64{if(!e[k]&&($0!=sprintf("sum %010d %s%16s",k,$3,"")||$3!~/^[0-9a-f]+$/||length($3)!=32))e[k]="trailer"; print $3"  "f>"list"} {n[k]=FNR} END{for(k=1;k<=W;k++){if(!e[k]&&n[k]!=64)e[k]=n[k]+0" lines"; if(e[k])print "BAD "k": "e[k]}}' r* >bad; md5sum -c --quiet list 2>/dev/null | sed -n 's/^b\([0-9]*\): FAILED.*/BAD \1: checksum/p' >>bad; head -n 20 bad; echo "VERIFIED-$((40+2)) $(ls | grep -c '^r') $(cut -d: -f1 bad | sort -u | wc -l)"; cd /; }
EOF
)
# Writes records until a line arrives on the console (echo off, so that
# nothing typed lands in the ACK lines), or one fails.
WRITER='stty -echo; n=0; while ! read -t 0 && [ $n -lt 16384 ]; do n=$((n+1)); if w $n; then echo "ACK $n"; else echo "WRITE-FAILED-$((40+2)) $n"; n=$((n-1)); break; fi; done; read -r _; stty echo; echo "WRITER-END-$((40+2)) $n"'

start_blkback
guest_start blkback-1 --disk vhost-user=$SOCKETS/root.sock --root /dev/vda --memory 512M
if guest_boot 300 "$ROOTFS_MARKER"; then
    guest_cmd 'echo ROOT=$(awk "\$2 == \"/\" {r = \$1 \" \" \$3} END {print r}" /proc/mounts)-$(basename $(readlink /sys/block/vda/device/driver))' '^ROOT='
    check '[ "$(guest_value ROOT)" = "/dev/vda ext4-virtio_blk" ]' \
        "the guest's / is /dev/vda from hospes-blkback, ext4, on virtio_blk (got $(guest_value ROOT))"
    guest_cmd "$W_DEF; echo W-DEFINED-\$((40+2))" '^W-DEFINED-42'
    guest_cmd "$V_DEF; echo V-DEFINED-\$((40+2))" '^V-DEFINED-42'
    # 64 MiB (16384 records), unwritten extents.
    guest_cmd 'fallocate -l 64M /records && sync && echo PREALLOCATED-$((40+2))' '^PREALLOCATED-42'
    guest_send "$WRITER"
    guest_wait '^ACK [0-9]+$' 120
    T0=$(now)
    kills=0 worker_kills=0 backend_kills=0 restarts=
    while [ $kills -lt $KILLS ]; do
        random_pause
        kills=$((kills + 1))
        if [ $((kills % BACKEND_EVERY)) -eq 0 ]; then
            t=$(uptime_ms)
            kill -KILL "$BLKBACK"
            wait "$BLKBACK" 2>/dev/null
            start_blkback || break
            restarts="$restarts $(($(uptime_ms) - t))"
            backend_kills=$((backend_kills + 1))
        else
            worker=$(worker_pid)
            [ -n "$worker" ] || { fail "kill $kills: hospes-blkback has no worker to kill"; break; }
            kill -KILL "$worker"
            worker_kills=$((worker_kills + 1))
        fi
        if ! resumed $kills; then
            fail "after kill $kills the monitor did not reconnect and the guest did not acknowledge a record within 60 s ($(reconnects) reconnects, last record $(last_acked))"
            guest_text | grep -A3 '^WRITE-FAILED' | head -n 8
            break
        fi
    done
    echo "lab-test: $((worker_kills + backend_kills)) SIGKILLs in $(($(now) - T0)) s: $worker_kills of the worker, $backend_kills of the whole back-end (started again in$restarts ms)"
    check '[ $worker_kills = $((KILLS - KILLS / BACKEND_EVERY)) ] && [ $backend_kills = $((KILLS / BACKEND_EVERY)) ]' \
        "hospes-blkback was SIGKILLed $KILLS times under writes ($worker_kills times its worker, $backend_kills times whole), and each time the monitor reconnected and the guest's writes resumed"
    guest_send stop
    guest_wait '^WRITER-END-42 [0-9]+$' 120
    WRITTEN=$(guest_text | grep -E '^WRITER-END-42 [0-9]+$' | tail -n 1 | cut -d' ' -f2)
    ACK_LINES=$(acked | wc -l)
    OUT_OF_ORDER=$(acked | awk 'NR > 1 && $1 <= p { n++ } { p = $1 } END { print n + 0 }')
    check '! guest_text | grep -q "^WRITE-FAILED" && [ -n "$WRITTEN" ] && [ "$(last_acked)" = "$WRITTEN" ] && [ "$OUT_OF_ORDER" = 0 ]' \
        "every write succeeded and was acknowledged in order: $WRITTEN records, the last acknowledged $(last_acked) ($ACK_LINES ACK lines intact on the console, $OUT_OF_ORDER out of order)"
    guest_cmd "echo 3 >/proc/sys/vm/drop_caches; v $WRITTEN" '^VERIFIED-42 [0-9]+ [0-9]+' 300
    VERIFIED=$(guest_text | grep -E '^VERIFIED-42 [0-9]+ [0-9]+' | tail -n 1)
    READ_BACK=$(echo "$VERIFIED" | cut -d' ' -f2)
    BAD=$(echo "$VERIFIED" | cut -d' ' -f3)
    guest_text | grep -E '^BAD [0-9]+:' | head -n 20 | sed 's/^/lab-test: /'
    check '[ "$WRITTEN" -gt 0 ] && [ "$READ_BACK" = "$WRITTEN" ] && [ "$BAD" = 0 ]' \
        "all $WRITTEN acknowledged records read back intact with direct I/O after dropping caches (read $READ_BACK, bad $BAD)"
    echo "lab-test: records acknowledged: $WRITTEN; read back intact: $((READ_BACK - BAD)); bad: $BAD"
    guest_cmd 'echo ERRORS=$(dmesg | grep -c -i -E "I/O error|error.*vda|vda.*error|EXT4-fs error|blocked for more")' '^ERRORS=[0-9]'
    check '[ "$(guest_value ERRORS)" = 0 ]' "the guest is alive, and its kernel logged no I/O errors or hung tasks (got $(guest_value ERRORS) lines)"
    check '[ "$(grep -c "worker killed by signal 9" /tmp/blkback.log)" = $worker_kills ]' \
        "the supervisor started the worker again after each of its $worker_kills deaths (log: $(grep -c "worker killed by signal 9" /tmp/blkback.log))"
    check '[ "$(reconnects)" = $kills ]' "the monitor reconnected once after each kill ($(reconnects) reconnects, $kills kills)"
    guest_cmd 'rm -r /records /dev/shm/v /dev/shm/rec; sync; echo REMOVED-$((40+2))' '^REMOVED-42'
    guest_send 'poweroff'
    guest_finish 180
    check '[ "$GUEST_STATUS" = 0 ]' "a clean poweroff ends the monitor with status 0 (got $GUEST_STATUS)"
fi
# Reconnect times (the monitor's "reconnected after N ms", one per kill, in
# order: every BACKEND_EVERY-th was a restart of the whole back-end).
guest_text | grep -o 'reconnected after [0-9]* ms' | sed 's/reconnected after //; s/ ms//' >/tmp/reconnect-ms
echo "lab-test: the monitor reconnected $(wc -l </tmp/reconnect-ms) times: $(tr '\n' ' ' </tmp/reconnect-ms)"
echo "lab-test: reconnect, all kills: $(median_worst </tmp/reconnect-ms)"
echo "lab-test: reconnect, worker killed: $(awk -v e=$BACKEND_EVERY 'NR % e' /tmp/reconnect-ms | median_worst)"
echo "lab-test: reconnect, whole back-end killed and started again: $(awk -v e=$BACKEND_EVERY 'NR % e == 0' /tmp/reconnect-ms | median_worst)"
# The back-end logs, at each start of a connection, the requests of each
# queue found in flight in the inflight region and submitted again.
echo "lab-test: hospes-blkback: $(grep -c ': connected (' /tmp/blkback.log) connections; requests in flight at a kill run again at $(grep -c 'requests in flight before are run again' /tmp/blkback.log) of them:" \
    "$(grep -o '[0-9]* requests in flight before' /tmp/blkback.log | cut -d' ' -f1 | tr '\n' ' ')" \
    "(total $(grep -o '[0-9]* requests in flight before' /tmp/blkback.log | awk '{ t += $1 } END { print t + 0 }'))"
echo "lab-test: hospes-blkback's worker: $(grep -c 'worker killed' /tmp/blkback.log) deaths; as user $(grep Uid /proc/"$(worker_pid)"/status 2>/dev/null)"

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
