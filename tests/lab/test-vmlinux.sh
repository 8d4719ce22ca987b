#!/bin/sh
# shellcheck shell=dash disable=SC1091,SC2016,SC2034  # sourced /lab/lib.sh; guest commands are literal
# In-lab test: boot the uncompressed ELF kernel (extracted from the bzImage by
# scripts/build-guest.sh) through hospes's ELF/PVH loader.
LAB_TEST_NAME=vmlinux
. /lab/lib.sh

guest_start vmlinux -v --kernel /guest/vmlinux --initrd /guest/initramfs.cpio.gz --vcpus 1 --memory 512M
if guest_boot; then
    check 'guest_text | grep -q "PVH 32-bit entry"' "the monitor took the ELF's PVH entry"
    guest_cmd 'echo ECHO-$((6*7))' '^ECHO-42'
    pass "console input answered (ECHO-42)"
    guest_send 'reboot -f'
    guest_finish 120
    check '[ "$GUEST_STATUS" = 0 ]' "reboot -f ends hospes with status 0 (got $GUEST_STATUS)"
fi
finish
