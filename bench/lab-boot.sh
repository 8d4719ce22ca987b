#!/bin/sh
# shellcheck shell=dash disable=SC1091  # sourced /lab/lib.sh
# In-lab benchmark, run by tests/lab/lab-run.sh inside the nested lab host
# (busybox sh): boot-to-init time of the default guest under hospes and under
# QEMU's microvm machine, on the same kernel, initramfs and command line, in
# the same lab run (docs/benchmarks.md).
#
# Boot to init: from just before the monitor process is started to the
# guest console line "hospes-guest: user space reached" (the default guest's
# /init prints it first thing). The monitor is then stopped with SIGTERM
# (QEMU microvm's reboot can hang in its firmware, and both are stopped the
# same way), SIGKILL if it is still there after 10 s.
#
# Variants, run alternately, round after round:
#   hospes      hospes run --vcpus 1 --memory 512M (the default guest: bzImage)
#   qemu        qemu-system-x86_64 -M microvm, same bzImage and initramfs
#   hospes-pvh  hospes with the ELF vmlinux (PVH entry)        [BENCH_PVH=1]
#   qemu-pvh    QEMU microvm with the ELF vmlinux (PVH entry)  [BENCH_PVH=1]
# Environment: BENCH_ROUNDS (default 3), BENCH_PVH (default 1),
# BENCH_BOOT_TIMEOUT seconds per boot (default 300).
#
# Prints each time, the median of each variant and the ratios of the medians
# (hospes/qemu, and hospes-pvh/qemu-pvh). Exit status 0 when every hospes boot
# reached user space and at least one QEMU boot did (QEMU under emulated
# AMD-V has been seen to stop in its firmware), 1 otherwise.

MARKER='hospes-guest: user space reached'
# hospes's default kernel command line (src/cli/run_command.hpp), passed to
# QEMU too so that both kernels do exactly the same work.
CMDLINE='console=ttyS0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux'
ROUNDS=${BENCH_ROUNDS:-3}
PVH=${BENCH_PVH:-1}
BOOT_TIMEOUT=${BENCH_BOOT_TIMEOUT:-300}
MEMORY_MIB=512

QEMU_COMMON="-M microvm -enable-kvm -cpu host -smp 1 -m $MEMORY_MIB -nodefaults -no-user-config
 -display none -monitor none -serial stdio -L /qemu-fw -initrd /guest/initramfs.cpio.gz"

# now_ms and CLOCK, the clock it reads.
. /lab/lib.sh

# boot NAME COMMAND...: boots once, prints the milliseconds to the marker or
# "fail". The console goes through a fifo into awk, which copies it to
# /tmp/bench-NAME.out and exits at the marker line.
boot() {
    local name=$1 fifo out t0 t1 pid found i
    shift
    fifo=/tmp/bench-$name.fifo
    out=/tmp/bench-$name.out
    rm -f "$fifo" "$out"
    mkfifo "$fifo"
    t0=$(now_ms)
    timeout -s KILL "$BOOT_TIMEOUT" "$@" </dev/null >"$fifo" 2>&1 &
    pid=$!
    found=0
    if awk -v m="$MARKER" '{ print } index($0, m) { seen = 1; exit } END { exit !seen }' <"$fifo" >"$out"; then
        t1=$(now_ms)
        found=1
    fi
    # Stop the monitor (it may be blocked writing to the fifo nobody reads now).
    kill -TERM "$pid" 2>/dev/null
    i=0
    while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rm -f "$fifo"
    if [ "$found" = 1 ]; then
        echo $((t1 - t0))
    else
        echo fail
    fi
}

run_variant() {
    # shellcheck disable=SC2086  # QEMU_COMMON is a list of words
    case $1 in
    hospes) boot "$1" hospes run --vcpus 1 --memory "${MEMORY_MIB}M" ;;
    hospes-pvh)
        boot "$1" hospes run --kernel /guest/vmlinux --initrd /guest/initramfs.cpio.gz \
            --vcpus 1 --memory "${MEMORY_MIB}M"
        ;;
    qemu) boot "$1" qemu-system-x86_64 $QEMU_COMMON -kernel /guest/vmlinuz -append "$CMDLINE" ;;
    qemu-pvh) boot "$1" qemu-system-x86_64 $QEMU_COMMON -kernel /guest/vmlinux -append "$CMDLINE" ;;
    esac
}

# median_of VALUES...: the median of the numbers among VALUES ("-" if none).
median_of() { printf '%s\n' "$@" | grep -E '^[0-9]+$' | median; }

count_ok() { printf '%s\n' "$@" | grep -c -E '^[0-9]+$'; }

secs() { awk -v ms="$1" 'BEGIN { if (ms == "-") print "-"; else printf "%.2f s", ms / 1000 }'; }

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "n/a"; else printf "%.2f", a / b }'
}

VARIANTS="hospes qemu"
[ "$PVH" = 1 ] && VARIANTS="$VARIANTS hospes-pvh qemu-pvh"

echo "bench: boot to init ('$MARKER'), 1 vCPU, $MEMORY_MIB MiB, $ROUNDS rounds of: $VARIANTS"
echo "bench: kernel command line for all: $CMDLINE"
echo "bench: clock: $CLOCK; lab host: $(nproc) CPUs, $(uname -r)"

times_hospes='' times_qemu='' times_hospes_pvh='' times_qemu_pvh=''
round=1
while [ "$round" -le "$ROUNDS" ]; do
    for v in $VARIANTS; do
        t=$(run_variant "$v")
        echo "bench: round $round: $v: $t ms"
        if [ "$t" = fail ]; then
            echo "----- last console lines of $v -----"
            tail -n 15 "/tmp/bench-$v.out" | tr -d '\r'
            echo "----- end -----"
        fi
        case $v in
        hospes) times_hospes="$times_hospes $t" ;;
        qemu) times_qemu="$times_qemu $t" ;;
        hospes-pvh) times_hospes_pvh="$times_hospes_pvh $t" ;;
        qemu-pvh) times_qemu_pvh="$times_qemu_pvh $t" ;;
        esac
    done
    round=$((round + 1))
done

# shellcheck disable=SC2086  # the lists are words
{
    m_hospes=$(median_of $times_hospes) m_qemu=$(median_of $times_qemu)
    m_hospes_pvh=$(median_of $times_hospes_pvh) m_qemu_pvh=$(median_of $times_qemu_pvh)
    ok_hospes=$(count_ok $times_hospes) ok_qemu=$(count_ok $times_qemu)
    ok_hospes_pvh=$(count_ok $times_hospes_pvh) ok_qemu_pvh=$(count_ok $times_qemu_pvh)
}

echo "bench: summary (median of the boots that reached user space)"
echo "bench:   hospes (bzImage)          $(secs "$m_hospes")  ($ok_hospes of $ROUNDS:$times_hospes ms)"
echo "bench:   qemu microvm (bzImage)    $(secs "$m_qemu")  ($ok_qemu of $ROUNDS:$times_qemu ms)"
echo "bench:   ratio hospes/qemu = $(ratio "$m_hospes" "$m_qemu")"
if [ "$PVH" = 1 ]; then
    echo "bench:   hospes (vmlinux, PVH)       $(secs "$m_hospes_pvh")  ($ok_hospes_pvh of $ROUNDS:$times_hospes_pvh ms)"
    echo "bench:   qemu microvm (vmlinux, PVH) $(secs "$m_qemu_pvh")  ($ok_qemu_pvh of $ROUNDS:$times_qemu_pvh ms)"
    echo "bench:   ratio hospes-pvh/qemu-pvh = $(ratio "$m_hospes_pvh" "$m_qemu_pvh")"
    echo "bench:   ratio hospes (bzImage)/qemu-pvh = $(ratio "$m_hospes" "$m_qemu_pvh")"
fi

status=0
if [ "$ok_hospes" -ne "$ROUNDS" ] || { [ "$PVH" = 1 ] && [ "$ok_hospes_pvh" -ne "$ROUNDS" ]; }; then
    echo "bench: a hospes boot did not reach user space"
    status=1
fi
if [ "$ok_qemu" -eq 0 ]; then
    echo "bench: no QEMU microvm boot reached user space: no ratio"
    status=1
fi
echo "bench: lab-boot done (status $status)"
exit "$status"
