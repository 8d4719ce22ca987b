#!/bin/sh
# shellcheck shell=dash disable=SC1091,SC2016,SC2034  # sourced /lab/lib.sh; guest commands are literal
# In-lab test: how a guest ends.
#  1. `poweroff -f` in the guest (ACPI S5 or whatever power-off path the
#     guest kernel picks) ends hospes with status 0.
#  2. A kernel panic (`echo c > /proc/sysrq-trigger`): the stock kernel's
#     pvpanic-mmio driver bound to the DSDT's QEMU0001 device reports it
#     before the kernel reboots (panic=1), and hospes ends with status 3
#     (the guest crashed), saying why: a crash, not a reboot.
#  3. The power button: `hospes run --control SOCKET`; `hospes control
#     SOCKET '{"execute":"query"}'` answers, and power-button makes the
#     guest (the ACPI button driver, busybox acpid) power off: status 0.
LAB_TEST_NAME=poweroff
. /lab/lib.sh

guest_start poweroff --vcpus 1 --memory 512M
if guest_boot; then
    guest_send 'poweroff -f'
    guest_finish 120
    check '[ "$GUEST_STATUS" = 0 ]' "poweroff -f ends hospes with status 0 (got $GUEST_STATUS)"
    check 'guest_text | grep -q "reboot: Power down"' "guest kernel reports power down"
fi

guest_start panic --vcpus 1 --memory 512M
if guest_boot; then
    guest_cmd 'echo PVPANIC=$(ls /sys/bus/acpi/devices/ | grep -c QEMU0001)/$(ls /sys/bus/platform/drivers/pvpanic-mmio/ 2>/dev/null | grep -c QEMU0001)' '^PVPANIC=[0-9]'
    check '[ "$(guest_value PVPANIC)" = 1/1 ]' "the guest's kernel found the pvpanic device and bound pvpanic-mmio to it (ACPI devices/bound: $(guest_value PVPANIC))"
    guest_send 'echo c >/proc/sysrq-trigger'
    guest_finish 120
    check '[ "$GUEST_STATUS" = 3 ]' "a kernel panic ends hospes with status 3, the guest crashed (got $GUEST_STATUS)"
    check 'guest_text | grep -q "Kernel panic"' "the guest kernel panicked"
    check 'guest_text | grep -q "kernel panicked (pvpanic)"' "hospes says the guest's kernel panicked"
fi

CONTROL=/tmp/poweroff-control.sock
guest_start button --vcpus 2 --memory 512M --control $CONTROL
if guest_boot; then
    answer=$(hospes control $CONTROL '{"execute":"query"}')
    check 'echo "$answer" | grep -q "\"status\":\"running\"" && echo "$answer" | grep -q "\"vcpus\":2"' \
        "the control socket answers query (got $answer)"
    bad=$(hospes control $CONTROL '{"execute":"explode"}'; echo "status $?")
    check 'echo "$bad" | grep -q "unknown command" && echo "$bad" | grep -q "status 1"' \
        "an unknown request is one error line and status 1 (got $bad)"
    answer=$(hospes control $CONTROL '{"execute":"power-button"}')
    check '[ "$answer" = "{\"return\":{}}" ]' "power-button is accepted (got $answer)"
    guest_finish 120
    check '[ "$GUEST_STATUS" = 0 ]' "the power button powers the guest off: status 0 (got $GUEST_STATUS)"
    check 'guest_text | grep -q "power button pressed, powering off"' "the guest's acpid acted on the power button"
    check '[ ! -e $CONTROL ]' "the control socket is gone with the monitor"
fi
finish
