#!/bin/sh
# shellcheck shell=dash disable=SC1091,SC2016,SC2034  # sourced /lab/lib.sh; guest commands are literal
# In-lab test: `poweroff -f` in the guest (ACPI S5 or whatever power-off path
# the guest kernel picks) ends hospes with status 0.
LAB_TEST_NAME=poweroff
. /lab/lib.sh

guest_start poweroff --vcpus 1 --memory 512M
if guest_boot; then
    guest_send 'poweroff -f'
    guest_finish 120
    check '[ "$GUEST_STATUS" = 0 ]' "poweroff -f ends hospes with status 0 (got $GUEST_STATUS)"
    check 'guest_text | grep -q "reboot: Power down"' "guest kernel reports power down"
fi
finish
