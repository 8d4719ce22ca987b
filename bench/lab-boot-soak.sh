#!/bin/sh
# shellcheck shell=dash disable=SC1091  # sourced /lab/lib.sh
# In-lab soak, run by tests/lab/lab-run.sh inside the nested lab host: boot
# the default guest BENCH_BOOTS times (default 20) to user space and power it
# off, one boot after the other, and count how each boot ended: pass, guest
# fault (the monitor ended the guest, or QEMU reset it, before user space),
# guest hang (no user space in 240 s), stuck (the monitor still running 60 s
# after the guest's `poweroff -f`). A boot is the cheapest workload that
# still crosses every early-boot path (alternatives, SMP bring-up, the first
# interrupts), so it measures a lab configuration's fault rate quickly.
#
# Environment: BENCH_BOOTS; BENCH_VCPUS (default 2); BENCH_KVM_AMD, options
# for the lab host's kvm_amd (e.g. "vgif=0"): the module is reloaded with
# them first; LAB_MONITOR=qemu boots the guests under QEMU instead.
LAB_TEST_NAME=boot-soak
. /lab/lib.sh

BOOTS=${BENCH_BOOTS:-20}
VCPUS=${BENCH_VCPUS:-2}
if [ -n "${BENCH_KVM_AMD:-}" ]; then
    module=$(find /lib/modules -name 'kvm-amd.ko*' | head -n 1)
    # shellcheck disable=SC2086  # the options are words
    if rmmod kvm_amd && insmod "$module" $BENCH_KVM_AMD; then
        echo "boot-soak: kvm_amd reloaded with: $BENCH_KVM_AMD"
    else
        fail "kvm_amd could not be reloaded with: $BENCH_KVM_AMD"
        finish
    fi
fi
for p in /sys/module/kvm_amd/parameters/*; do
    printf '%s=%s ' "${p##*/}" "$(cat "$p")"
done
echo

passed=0 faults=0 hangs=0 stuck=0 times=''
i=0
while [ $i -lt "$BOOTS" ]; do
    i=$((i + 1))
    guest_start "soak$i" --vcpus "$VCPUS" --memory 512M >/dev/null
    outcome=''
    while [ -z "$outcome" ]; do
        if guest_text | grep -q 'hospes-guest: user space reached'; then
            outcome=pass
        elif guest_exited; then
            outcome=fault
        elif [ $(($(now) - GUEST_T0)) -ge 240 ]; then
            outcome=hang
        else
            sleep 0.5
        fi
    done
    seconds=$(($(now) - GUEST_T0))
    case $outcome in
        pass)
            guest_wait 'hospes# ' 60
            guest_send 'poweroff -f'
            j=0
            while ! guest_exited && [ $j -lt 300 ]; do sleep 0.2; j=$((j + 1)); done
            if guest_exited; then
                passed=$((passed + 1))
                times="$times $seconds"
            else
                outcome='no exit 60 s after poweroff'
                stuck=$((stuck + 1))
                guest_tail
                guest_stop
            fi
            ;;
        fault)
            faults=$((faults + 1))
            guest_tail
            ;;
        hang)
            hangs=$((hangs + 1))
            guest_activity
            guest_stop
            guest_tail
            kvm_trace_tail
            ;;
    esac
    echo "boot-soak: boot $i: $outcome after $seconds s"
    GUEST_PID=
    exec 9>&-
done
median=$(printf '%s\n' $times | sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "-" }')
echo "BOOT-SOAK: monitor=$LAB_MONITOR boots=$BOOTS pass=$passed fault=$faults hang=$hangs stuck=$stuck median_seconds=$median"
check "[ $passed -eq $BOOTS ]" "$passed of $BOOTS boots reached user space and powered off"
finish
