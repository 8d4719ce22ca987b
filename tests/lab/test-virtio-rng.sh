#!/bin/sh
# shellcheck shell=dash disable=SC1091,SC2016,SC2034  # sourced /lab/lib.sh; guest commands are literal
# In-lab test: the guest's own virtio_mmio driver finds the entropy device
# through ACPI, virtio_rng binds to it, and /dev/hwrng gives random data.
LAB_TEST_NAME=virtio-rng
. /lab/lib.sh

guest_start virtio-rng --vcpus 1 --memory 512M
if guest_boot; then
    guest_cmd 'echo DEVICE=$(cat /sys/bus/virtio/devices/virtio0/device)' '^DEVICE='
    check '[ "$(guest_value DEVICE)" = 0x0004 ]' "virtio device 0 is an entropy source (got $(guest_value DEVICE))"
    guest_cmd 'echo RNG=$(cat /sys/class/misc/hw_random/rng_current)' '^RNG='
    check 'guest_value RNG | grep -q "^virtio_rng"' "the kernel uses virtio_rng (got $(guest_value RNG))"
    guest_cmd 'echo BYTES=$(dd if=/dev/hwrng bs=256 count=4 2>/dev/null | wc -c)' '^BYTES='
    check '[ "$(guest_value BYTES)" = 1024 ]' "/dev/hwrng gave 1024 bytes (got $(guest_value BYTES))"
    guest_cmd 'echo A=$(dd if=/dev/hwrng bs=32 count=1 2>/dev/null | md5sum | cut -c1-32)' '^A=[0-9a-f]'
    guest_cmd 'echo B=$(dd if=/dev/hwrng bs=32 count=1 2>/dev/null | md5sum | cut -c1-32)' '^B=[0-9a-f]'
    check '[ "$(guest_value A)" != "$(guest_value B)" ]' "two reads differ"
    guest_cmd 'dmesg | grep -i -E "virtio|hwrng|random"; echo DMESG-$((40+2))' '^DMESG-42'
    guest_send 'reboot -f'
    guest_finish 120
    check '[ "$GUEST_STATUS" = 0 ]' "reboot -f ends hospes with status 0 (got $GUEST_STATUS)"
fi
finish
