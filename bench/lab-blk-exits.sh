#!/bin/sh
# shellcheck shell=dash disable=SC1091,SC2016,SC2034  # sourced /lab/lib.sh; guest commands are literal
# In-lab benchmark, run by tests/lab/lab-run.sh inside the nested lab host:
# the guest's own dd on /dev/vda, IOPS and VM exits per 1,000 block
# requests, for each disk path in the same lab run on the same image, with
# the same kernel, initramfs and command line (docs/benchmarks.md):
#   hospes   hospes run, the monitor's own virtio-blk (io_uring, page cache)
#   blkback  hospes run --disk vhost-user=SOCK, served by hospes-blkback
#            (its worker, io_uring, page cache; issue 8)
#   qsd      hospes run --disk vhost-user=SOCK, served by qemu-storage-daemon's
#            vhost-user-blk export (driver=file, its defaults: page cache,
#            aio=threads)
#   qsd-uring  the same with aio=io_uring (not in the default set)
#   qemu     QEMU microvm, virtio-blk on virtio-mmio (its own back-end,
#            its defaults: page cache, aio=threads)
# Each round boots one guest per path, in an order rotated every round (so
# no path always comes first), and runs the workloads in it.
#
# Exits are KVM's own count for the lab host (debugfs kvm/exits, plus the
# io, mmio and halt kinds and the interrupts KVM injected); requests are what
# the guest's block layer completed on /dev/vda (/sys/block/vda/stat, reads +
# writes), and its interrupts the vda device's line of the guest's
# /proc/interrupts. Only one VM runs at a time, so the host-wide counters are
# that VM's (a back-end process is no VM). IOPS: those requests over the
# command's wall time, read in the guest (/proc/uptime, 10 ms). Workloads,
# each on a 256 MiB image in the lab's tmpfs:
#   read4k    dd, 4 KiB direct reads, queue depth 1, 16384 requests
#   read4k-qd4 four such dd at once on disjoint ranges
#   write64k  dd, 64 KiB direct writes, 2048 requests
#   busy      no I/O: a shell loop spins for 5 s (the guest busy, as it is
#             during the dd: it hardly ever halts), for the exits a busy
#             guest makes per second of wall time whatever it does (its
#             timer, chiefly). "net" exits per request are a workload's exits
#             less that rate times its wall time: what the requests
#             themselves cost, apart from a slower path's longer time.
# The guest's console output during a measurement is kept to a few bytes
# (each byte is a UART exit under both monitors).
# The lab host has one CPU (lab-run.sh's LAB_SMP): the guest's vCPU, the
# monitor's threads and a back-end's take turns on it.
# Environment: BENCH_ROUNDS (default 3), BENCH_PATHS (default
# "hospes blkback qsd qemu").
LAB_TEST_NAME=blk-exits
. /lab/lib.sh

ROUNDS=${BENCH_ROUNDS:-3}
PATHS=${BENCH_PATHS:-hospes blkback qsd qemu}
CMDLINE='console=ttyS0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux'
WORKLOADS='read4k read4k-qd4 write64k'
mount -t debugfs none /sys/kernel/debug 2>/dev/null
KVM_STATS=/sys/kernel/debug/kvm
if [ ! -r "$KVM_STATS/exits" ]; then
    fail "no $KVM_STATS/exits in the lab host"
    finish
fi
dd if=/dev/zero of=/tmp/bench.img bs=1M count=256 2>/dev/null

counters() {
    echo "$(cat $KVM_STATS/exits) $(cat $KVM_STATS/io_exits) $(cat $KVM_STATS/mmio_exits)" \
        "$(cat $KVM_STATS/halt_exits) $(cat $KVM_STATS/irq_injections)"
}

# measure PATH WORKLOAD GUEST-COMMAND: runs the command in the guest (its
# output to a file there) and appends
#   "PATH WORKLOAD requests exits io mmio halt injected guest-irqs seconds round"
# to $RESULTS. Each measurement has keys and a marker of its own (N), since
# the console log keeps every earlier line. The guest's shell has $VIRTIO
# (vda's virtio device, its name in /proc/interrupts).
N=0
STAT='$(awk '"'"'{print $1 + $5}'"'"' /sys/block/vda/stat) $(awk -v v=$VIRTIO '"'"'$NF == v {n = $2} END {print n + 0}'"'"' /proc/interrupts)'
measure() {
    local path=$1 workload=$2 command=$3 s0 s1 e0 e1
    N=$((N + 1))
    guest_cmd "echo S0_$N=$STAT" "^S0_$N=[0-9]+ [0-9]+"
    s0=$(guest_value "S0_$N")
    # Typed characters are echoed before the command runs: let that settle.
    guest_send "sleep 2; read t0 x </proc/uptime; { $command; } >/tmp/out 2>&1; read t1 x </proc/uptime; echo DONE\$((1000 + $N))"
    sleep 1
    e0=$(counters)
    guest_wait "^DONE$((1000 + N))" 600
    e1=$(counters)
    guest_cmd "echo S1_$N=$STAT \$(echo \$t0 \$t1 | awk '{print \$2 - \$1}')" "^S1_$N=[0-9]+ [0-9]+ [0-9.]+"
    s1=$(guest_value "S1_$N")
    # shellcheck disable=SC2086  # lists of numbers
    set -- $s0 $s1 $e0 $e1
    # $1 $2: requests, irqs before; $3 $4 $5: after, seconds;
    # $6..$10 exits, io, mmio, halt, injected before; ${11}..${15} after.
    echo "$path $workload $(($3 - $1)) $((${11} - $6)) $((${12} - $7)) $((${13} - $8)) $((${14} - $9)) $((${15} - ${10})) $(($4 - $2)) $5 $round" >>"$RESULTS"
    tail -n 1 "$RESULTS" | awk '$3 == 0 && $10 > 0 { printf "bench: round %d %-8s %-10s %6.2f s: %5.0f exits/s (io %.0f, mmio %.0f, halt %.0f; injected %.0f)\n",
        $11, $1, $2, $10, $4 / $10, $5 / $10, $6 / $10, $7 / $10, $8 / $10 }
        $3 > 0 { k = 1000 / $3
        printf "bench: round %d %-8s %-10s %6d requests in %6.2f s: %6.0f IOPS, %5.0f exits/1000 requests (io %.0f, mmio %.0f, halt %.0f; injected %.0f, guest irqs %.0f)\n",
        $11, $1, $2, $3, $10, ($10 > 0 ? $3 / $10 : 0), k * $4, k * $5, k * $6, k * $7, k * $8, k * $9 }'
}

DD_READ='dd if=/dev/vda of=/dev/null bs=4k count=16384 iflag=direct'
DD_READ_QD4='for i in 0 1 2 3; do dd if=/dev/vda of=/dev/null bs=4k count=4096 skip=$((i * 4096)) iflag=direct & done; wait'
DD_WRITE='dd if=/dev/zero of=/dev/vda bs=64k count=2048 oflag=direct'
BUSY='sh -c "while :; do :; done" & p=$!; sleep 5; kill $p'

# The back-ends of the vhost-user paths, started before their guest and
# stopped after it (each holds the image's lock while it runs).
BB=/tmp/bb
BACKEND=
start_blkback() {
    rm -rf $BB
    mkdir -p $BB
    hospes-blkback --socket-dir $BB --disk bench=/tmp/bench.img 2>>/tmp/blkback.log &
    BACKEND=$!
    wait_socket $BB/bench.sock
}
# start_qsd [,BLOCKDEV-OPTIONS]
start_qsd() {
    rm -f /tmp/qsd.sock
    qemu-storage-daemon --blockdev "driver=file,node-name=n,filename=/tmp/bench.img$1" \
        --export type=vhost-user-blk,id=e,node-name=n,addr.type=unix,addr.path=/tmp/qsd.sock,writable=on \
        2>>/tmp/qsd.log &
    BACKEND=$!
    wait_socket /tmp/qsd.sock
}
wait_socket() {
    local i=0
    while [ ! -S "$1" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    [ -S "$1" ] && return 0
    fail "no socket $1 from the back-end"
    cat /tmp/blkback.log /tmp/qsd.log 2>/dev/null | tail -n 20
    return 1
}
stop_backend() {
    [ -n "$BACKEND" ] || return 0
    kill -TERM "$BACKEND" 2>/dev/null
    wait "$BACKEND" 2>/dev/null
    BACKEND=
}

RESULTS=/tmp/blk-exits.results
: >"$RESULTS"
QEMU="qemu-system-x86_64 -M microvm -enable-kvm -cpu host -smp 1 -m 512 -nodefaults -no-user-config
 -display none -monitor none -serial stdio -L /qemu-fw -kernel /guest/vmlinuz -initrd /guest/initramfs.cpio.gz
 -drive id=d0,file=/tmp/bench.img,format=raw,if=none -device virtio-blk-device,drive=d0"
HOSPES="hospes run --vcpus 1 --memory 512M"
# shellcheck disable=SC2086  # HOSPES and QEMU are lists of words
run_one() {
    local path=$1 t0 features
    t0=$(now)
    case $path in
        hospes) guest_spawn "$path" $HOSPES --disk /tmp/bench.img ;;
        blkback) start_blkback || return 0; guest_spawn "$path" $HOSPES --disk vhost-user=$BB/bench.sock ;;
        qsd) start_qsd || return 0; guest_spawn "$path" $HOSPES --disk vhost-user=/tmp/qsd.sock ;;
        qsd-uring) start_qsd ,aio=io_uring || return 0; guest_spawn "$path" $HOSPES --disk vhost-user=/tmp/qsd.sock ;;
        qemu) guest_spawn "$path" $QEMU -append "$CMDLINE" ;;
        *) fail "no disk path $path"; return 0 ;;
    esac
    guest_boot 300
    guest_cmd 'echo DIRECT=$(dd if=/dev/vda of=/dev/null bs=4k count=1 iflag=direct 2>&1 >/dev/null | grep -c -i invalid)' '^DIRECT='
    [ "$(guest_value DIRECT)" = 0 ] || fail "the guest's dd has no iflag=direct"
    guest_cmd 'VIRTIO=$(basename $(readlink /sys/block/vda/device)); echo VIRTIO=$VIRTIO-$(cat /sys/block/vda/device/features)-$(ls /sys/block/vda/mq | wc -l)' '^VIRTIO=virtio[0-9]+-[01]+-[0-9]+'
    # The features the driver accepted: bit 28 indirect descriptors, 29
    # EVENT_IDX (notification suppression by index).
    features=$(guest_value VIRTIO | cut -d- -f2)
    measure "$path" read4k "$DD_READ"
    measure "$path" read4k-qd4 "$DD_READ_QD4"
    measure "$path" write64k "$DD_WRITE"
    measure "$path" busy "$BUSY"
    # A guest whose clock source fell back to a port-based one (the
    # clocksource watchdog, on a badly loaded host) makes I/O exits of its
    # own: say so next to the figures.
    guest_cmd 'echo CLOCK=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)' '^CLOCK='
    echo "bench: round $round $path: guest clock source $(guest_value CLOCK);" \
        "virtio features: indirect $(echo "$features" | cut -c29), event_idx $(echo "$features" | cut -c30);" \
        "$(guest_value VIRTIO | cut -d- -f3) queue(s)"
    guest_stop >/dev/null
    if [ "$path" = blkback ]; then
        echo "bench: round $round blkback: query $(hospes-blkback --control $BB/control --send '{"execute":"query"}' 2>&1 |
            sed -n 's/.*"reads":\([0-9]*\).*"requests":\([0-9]*\).*"writes":\([0-9]*\).*/requests \2 (reads \1, writes \3)/p')"
    fi
    stop_backend
    echo "bench: round $round $path: $(($(now) - t0)) s"
}

round=1
while [ "$round" -le "$ROUNDS" ]; do
    # This round's order: PATHS rotated by round - 1.
    # shellcheck disable=SC2086  # PATHS is a list of words
    order=$(echo $PATHS | awk -v r="$round" '{ for (i = 0; i < NF; i++) printf "%s ", $((i + r - 1) % NF + 1) }')
    for path in $order; do run_one "$path"; done
    round=$((round + 1))
done

# per_round PATH WORKLOAD AWK-EXPR: the expression's value for each round
# (fields as in $RESULTS; rate[$11]: the busy guest's exits per second in
# that round), one a line, in round order.
per_round() {
    awk -v p="$1" -v w="$2" 'NR == FNR { if ($1 == p && $2 == "busy" && $10 > 0) rate[$11] = $4 / $10; next }
        $1 == p && $2 == w && $3 > 0 && $10 > 0 { print $11, '"$3"' }' "$RESULTS" "$RESULTS" | sort -n | cut -d' ' -f2
}
IOPS='$3 / $10'
EXITS='1000 * $4 / $3'
NET='1000 * ($4 - rate[$11] * $10) / $3'

echo "bench: medians over $ROUNDS rounds (lab, KVM debugfs); per 1000 requests: exits, net of the busy guest's exits per second" \
    "times the wall time, and of all exits io, mmio, halt; interrupts KVM injected; the guest's vda interrupts"
printf 'bench: %-20s %6s %7s %6s %6s %6s %6s %6s %8s %9s\n' workload rounds IOPS exits net io mmio halt injected guest-irq
for workload in $WORKLOADS; do
    for path in $PATHS; do
        [ -n "$(per_round "$path" "$workload" 1)" ] || continue
        printf 'bench: %-20s %6d %7.0f %6.0f %6.0f %6.0f %6.0f %6.0f %8.0f %9.0f\n' "$path $workload" \
            "$(per_round "$path" "$workload" 1 | wc -l)" \
            "$(per_round "$path" "$workload" "$IOPS" | median)" "$(per_round "$path" "$workload" "$EXITS" | median)" \
            "$(per_round "$path" "$workload" "$NET" | median)" \
            "$(per_round "$path" "$workload" '1000 * $5 / $3' | median)" "$(per_round "$path" "$workload" '1000 * $6 / $3' | median)" \
            "$(per_round "$path" "$workload" '1000 * $7 / $3' | median)" "$(per_round "$path" "$workload" '1000 * $8 / $3' | median)" \
            "$(per_round "$path" "$workload" '1000 * $9 / $3' | median)"
    done
done
for path in $PATHS; do
    echo "bench: $path busy guest, no I/O: $(awk -v p="$path" '$1 == p && $2 == "busy" && $10 > 0 { print $4 / $10 }' "$RESULTS" | median | awk '{ printf "%.0f", $1 }')" \
        "exits/s (median; rounds: $(awk -v p="$path" '$1 == p && $2 == "busy" && $10 > 0 { printf "%s%.0f", n++ ? " " : "", $4 / $10 }' "$RESULTS"))"
done
# ratio A B: A/B of the medians of IOPS, of exits per request and of net
# exits per request, per workload, with the ratios of each round (same
# round, same lab) after.
ratio() {
    local a=$1 b=$2 workload
    for workload in $WORKLOADS; do
        if [ -z "$(per_round "$a" "$workload" 1)" ] || [ -z "$(per_round "$b" "$workload" 1)" ]; then continue; fi
        for metric in "$IOPS" "$EXITS" "$NET"; do
            per_round "$a" "$workload" "$metric" >/tmp/ratio.a
            per_round "$b" "$workload" "$metric" >/tmp/ratio.b
            echo "$(median </tmp/ratio.a) $(median </tmp/ratio.b)" \
                "$(awk 'NR == FNR { a[FNR] = $1; next } $1 > 0 && FNR in a { printf "%.2f ", a[FNR] / $1 }' /tmp/ratio.a /tmp/ratio.b)"
        done | awk -v name="$a/$b $workload" '{ r = ""; for (k = 3; k <= NF; k++) r = r " " $k; v[NR] = $2 > 0 ? sprintf("%.2f", $1 / $2) : "-"; rs[NR] = r }
            END { printf "bench: ratio %-26s IOPS %s (rounds%s), exits per request %s (rounds%s), net %s (rounds%s)\n",
                name, v[1], rs[1], v[2], rs[2], v[3], rs[3] }'
    done
}
has() { case " $PATHS " in *" $1 "*) return 0 ;; esac; return 1; }
has blkback && has qsd && ratio blkback qsd
has blkback && has qsd-uring && ratio blkback qsd-uring
has blkback && has hospes && ratio blkback hospes
has qsd && has hospes && ratio qsd hospes
has hospes && has qemu && ratio hospes qemu
for path in $PATHS; do
    check '[ "$(grep -c "^$path read4k " "$RESULTS")" = "$ROUNDS" ] && [ "$(grep -c "^$path " "$RESULTS")" = $((4 * ROUNDS)) ]' \
        "$path: every measurement of $ROUNDS rounds made"
done
short_reads() { awk '$2 ~ /^read/ && $3 < 16384 { n++ } END { print n + 0 }' "$RESULTS"; }
check '[ "$(short_reads)" = 0 ]' "every read measurement counted its 16384 requests or more ($(short_reads) did not)"
finish
