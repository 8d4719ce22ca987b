#!/bin/sh
# shellcheck shell=dash disable=SC1091,SC2016,SC2034  # sourced /lab/lib.sh; guest commands are literal
# In-lab test: the default guest with 2 vCPUs sees both and enables PV
# spinlocks (KVM_FEATURE_PV_UNHALT is offered); `reboot -f` ends hospes with 0.
LAB_TEST_NAME=smp
. /lab/lib.sh

guest_start smp --vcpus 2 --memory 512M
if guest_boot; then
    guest_cmd 'echo NPROC=$(nproc)' '^NPROC=[0-9]'
    check '[ "$(guest_value NPROC)" = 2 ]' "two vCPUs online (NPROC=$(guest_value NPROC))"

    guest_cmd "dmesg | grep -i -E 'smpboot|PV spinlock|kvm-guest'; echo PVSPIN=\$(dmesg | grep -ci 'PV spinlocks enabled')" \
        '^PVSPIN=[0-9]'
    check '[ "$(guest_value PVSPIN)" -ge 1 ]' "dmesg shows PV spinlocks enabled"

    guest_send 'reboot -f'
    guest_finish 120
    check '[ "$GUEST_STATUS" = 0 ]' "reboot -f ends hospes with status 0 (got $GUEST_STATUS)"
fi
finish
