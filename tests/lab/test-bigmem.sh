#!/bin/sh
# shellcheck shell=dash disable=SC1091,SC2016,SC2034  # sourced /lab/lib.sh; guest commands are literal
# In-lab test: a guest with 4.5 GiB of memory, so RAM continues above the
# 32-bit PCI hole below 4 GiB; the guest must see (nearly) all of it.
LAB_TEST_NAME=bigmem
. /lab/lib.sh

guest_start bigmem --vcpus 1 --memory 4608M
if guest_boot 400; then
    guest_cmd 'set -- $(grep MemTotal /proc/meminfo); echo MEMTOTAL=$2' '^MEMTOTAL=[0-9]'
    memtotal=$(guest_value MEMTOTAL)
    check '[ "${memtotal:-0}" -gt 4300000 ]' "MemTotal above 4300000 kB (got $memtotal kB)"

    guest_send 'reboot -f'
    guest_finish 120
    check '[ "$GUEST_STATUS" = 0 ]' "reboot -f ends hospes with status 0 (got $GUEST_STATUS)"
fi
finish
