#!/bin/sh
# shellcheck shell=dash disable=SC1091,SC2016,SC2034  # sourced /lab/lib.sh; guest commands are literal
# In-lab test (run by tests/lab/lab-run.sh inside the nested lab host):
# boot the default guest with 1 vCPU and 512 MiB, check that user space is
# reached, that the console takes input, that the guest uses kvm-clock with a
# wall clock close to the host's and the TSC-deadline APIC timer, and that
# `reboot -f` ends hospes with 0.
LAB_TEST_NAME=boot
. /lab/lib.sh

guest_start boot --vcpus 1 --memory 512M
if guest_boot; then
    # Interactive input: the answer is computed in the guest, so it cannot be
    # the tty's echo of the command.
    guest_cmd 'echo ECHO-$((6*7))' '^ECHO-42'
    pass "console input answered (ECHO-42)"

    guest_cmd 'echo NPROC=$(nproc)' '^NPROC=[0-9]'
    check '[ "$(guest_value NPROC)" = 1 ]' "one vCPU online (NPROC=$(guest_value NPROC))"

    guest_cmd 'echo CLOCKSOURCE=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)' \
        '^CLOCKSOURCE=[a-z]'
    check '[ "$(guest_value CLOCKSOURCE)" = kvm-clock ]' \
        "clocksource is kvm-clock (got $(guest_value CLOCKSOURCE))"

    # The per-CPU timer is the APIC's in TSC-deadline mode. Without that
    # mode the guest first calibrates its APIC timer against the PIT, and
    # where that check fails (as it did in this lab) it ticks on the PIT
    # alone, an I/O exit per timer.
    guest_cmd 'echo CLOCKEVENTS=$(grep "Clock Event Device:" /proc/timer_list | grep -v NULL | sed "s/.*: *//" | sort -u)' \
        '^CLOCKEVENTS='
    check '[ "$(guest_value CLOCKEVENTS)" = lapic-deadline ]' \
        "the timer is lapic-deadline (got $(guest_value CLOCKEVENTS))"

    guest_cmd 'echo DATE=$(date +%s)' '^DATE=[0-9]'
    lab_date=$(now)
    guest_date=$(guest_value DATE)
    skew=$((lab_date - ${guest_date:-0}))
    [ "$skew" -lt 0 ] && skew=$((-skew))
    check '[ -n "$guest_date" ] && [ "$skew" -le 120 ]' \
        "guest clock within 120 s of the lab host's (guest $guest_date, lab $lab_date)"

    # For diagnosis only: what the guest says about its paravirtual features.
    guest_cmd "dmesg | grep -i -E 'kvm-clock|PV spinlock|kvm-guest'; echo DMESG-\$((40+2))" '^DMESG-42'

    guest_send 'reboot -f'
    guest_finish 120
    check '[ "$GUEST_STATUS" = 0 ]' "reboot -f ends hospes with status 0 (got $GUEST_STATUS)"
fi
finish
