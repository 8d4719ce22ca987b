#!/bin/sh
# shellcheck shell=dash disable=SC1091,SC2016  # sourced /lab/lib.sh; guest commands are literal
# In-lab benchmark, run by tests/lab/lab-run.sh inside the nested lab host:
# VM exits per 1,000 block requests of the guest's own dd, under hospes and
# under QEMU (microvm, virtio-blk on virtio-mmio, the same image, kernel,
# initramfs and command line), in the same lab run (docs/benchmarks.md).
#
# Exits are KVM's own count for the lab host (debugfs kvm/exits, plus the
# io and mmio kinds); requests are what the guest's block layer completed
# on /dev/vda (/sys/block/vda/stat, reads + writes). Only one VM runs at a
# time, so the host-wide counters are that VM's. Workloads, each on a
# 256 MiB image in the lab's tmpfs:
#   read4k    dd, 4 KiB direct reads, queue depth 1, 16384 requests
#   read4k-qd4 four such dd at once on disjoint ranges
#   write64k  dd, 64 KiB direct writes, 2048 requests
# The guest's console output during a measurement is kept to a few bytes
# (each byte is a UART exit under both monitors).
# Environment: BENCH_ROUNDS (default 2).
LAB_TEST_NAME=blk-exits
. /lab/lib.sh

ROUNDS=${BENCH_ROUNDS:-2}
CMDLINE='console=ttyS0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux'
mount -t debugfs none /sys/kernel/debug 2>/dev/null
KVM_STATS=/sys/kernel/debug/kvm
if [ ! -r "$KVM_STATS/exits" ]; then
    fail "no $KVM_STATS/exits in the lab host"
    finish
fi
dd if=/dev/zero of=/tmp/bench.img bs=1M count=256 2>/dev/null

counters() { echo "$(cat $KVM_STATS/exits) $(cat $KVM_STATS/io_exits) $(cat $KVM_STATS/mmio_exits)"; }

# measure LABEL GUEST-COMMAND: runs the command in the guest (its output to
# a file there) and appends "LABEL requests exits io_exits mmio_exits" to
# $RESULTS. Each
# measurement has keys and a marker of its own (N), since the console log
# keeps every earlier line.
N=0
measure() {
    local label=$1 command=$2 s0 s1 e0 e1
    N=$((N + 1))
    guest_cmd "echo S0_$N=\$(awk '{print \$1 + \$5}' /sys/block/vda/stat)" "^S0_$N=[0-9]"
    s0=$(guest_value "S0_$N")
    # Typed characters are echoed before the command runs: let that settle.
    guest_send "sleep 2; { $command; } >/tmp/out 2>&1; echo DONE\$((1000 + $N))"
    sleep 1
    e0=$(counters)
    guest_wait "^DONE$((1000 + N))" 600
    e1=$(counters)
    guest_cmd "echo S1_$N=\$(awk '{print \$1 + \$5}' /sys/block/vda/stat)" "^S1_$N=[0-9]"
    s1=$(guest_value "S1_$N")
    # shellcheck disable=SC2086  # two lists of three numbers
    set -- $e0 $e1
    echo "$label $((s1 - s0)) $(($4 - $1)) $(($5 - $2)) $(($6 - $3))" >>"$RESULTS"
}

DD_READ='dd if=/dev/vda of=/dev/null bs=4k count=16384 iflag=direct'
DD_READ_QD4='for i in 0 1 2 3; do dd if=/dev/vda of=/dev/null bs=4k count=4096 skip=$((i * 4096)) iflag=direct & done; wait'
DD_WRITE='dd if=/dev/zero of=/dev/vda bs=64k count=2048 oflag=direct'

RESULTS=/tmp/blk-exits.results
: >"$RESULTS"
run_one() {
    local vmm=$1
    shift
    guest_spawn "$vmm" "$@"
    guest_boot 300
    guest_cmd 'echo DIRECT=$(dd if=/dev/vda of=/dev/null bs=4k count=1 iflag=direct 2>&1 >/dev/null | grep -c -i invalid)' '^DIRECT='
    [ "$(guest_value DIRECT)" = 0 ] || fail "the guest's dd has no iflag=direct"
    measure "$vmm read4k" "$DD_READ"
    measure "$vmm read4k-qd4" "$DD_READ_QD4"
    measure "$vmm write64k" "$DD_WRITE"
    # A guest whose clock source fell back to a port-based one (the
    # clocksource watchdog, on a badly loaded host) makes I/O exits of its
    # own: say so next to the figures.
    guest_cmd 'echo CLOCK=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)' '^CLOCK='
    echo "bench: $vmm round $round: guest clock source $(guest_value CLOCK)"
    guest_stop >/dev/null
}

QEMU="qemu-system-x86_64 -M microvm -enable-kvm -cpu host -smp 1 -m 512 -nodefaults -no-user-config
 -display none -monitor none -serial stdio -L /qemu-fw -kernel /guest/vmlinuz -initrd /guest/initramfs.cpio.gz
 -drive id=d0,file=/tmp/bench.img,format=raw,if=none -device virtio-blk-device,drive=d0"
round=1
while [ "$round" -le "$ROUNDS" ]; do
    run_one hospes hospes run --vcpus 1 --memory 512M --disk /tmp/bench.img
    # shellcheck disable=SC2086  # QEMU is a list of words
    run_one qemu $QEMU -append "$CMDLINE"
    round=$((round + 1))
done

echo "bench: VM exits per 1000 block requests (lab, KVM debugfs; all rounds)"
printf 'bench: %-20s %9s %9s %11s %9s %9s\n' workload requests exits 'exits/1000' io mmio
for workload in read4k read4k-qd4 write64k; do
    for vmm in hospes qemu; do
        grep "^$vmm $workload " "$RESULTS" | awk -v w="$vmm $workload" '
            { r += $3; e += $4; io += $5; mmio += $6; n++ }
            END { if (n && r) printf "bench: %-20s %9d %9d %11.0f %9d %9d\n", w, r, e, 1000 * e / r, io, mmio }'
    done
done
for workload in read4k read4k-qd4 write64k; do
    awk -v w="$workload" '
        $2 == w && $1 == "hospes" { hr += $3; he += $4 }
        $2 == w && $1 == "qemu" { qr += $3; qe += $4 }
        END { if (hr && qr && qe) printf "bench: ratio hospes/qemu exits per request, %s: %.2f\n", w, (he / hr) / (qe / qr) }' "$RESULTS"
done
check '[ "$(grep -c "^hospes " "$RESULTS")" -ge 3 ]' "hospes measurements complete"
finish
