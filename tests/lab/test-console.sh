#!/bin/sh
# shellcheck shell=dash disable=SC1091,SC2016,SC2034  # sourced /lab/lib.sh; guest commands are literal
# In-lab test: `--console virtio` gives the guest its console on hvc0. The
# kernel's virtio_console binds to the device, the initramfs moves to
# /dev/hvc0, and commands typed on hospes's stdin reach the shell there and
# are answered on its stdout, all through the virtqueues (the command line
# names no ttyS0, so the UART carries nothing).
LAB_TEST_NAME=console
. /lab/lib.sh

guest_start console --console virtio --vcpus 1 --memory 512M
if guest_boot; then
    guest_cmd 'echo TTY=$(tty)' '^TTY='
    check '[ "$(guest_value TTY)" = /dev/hvc0 ]' "the shell's terminal is /dev/hvc0 (got $(guest_value TTY))"
    guest_cmd 'echo CONSOLES=$(cut -d" " -f1 /proc/consoles | tr "\n" " ")' '^CONSOLES='
    check 'guest_value CONSOLES | grep -q "hvc0"' "/proc/consoles lists hvc0 (got $(guest_value CONSOLES))"
    check '! guest_value CONSOLES | grep -q "ttyS"' "the UART is no console (got $(guest_value CONSOLES))"
    guest_cmd 'echo DEVICES=$(cat /sys/bus/virtio/devices/*/device | tr "\n" " ")' '^DEVICES='
    check 'guest_value DEVICES | grep -q 0x0003' "a virtio console device is present (got $(guest_value DEVICES))"
    guest_cmd 'echo DRIVER=$(for d in /sys/bus/virtio/devices/*; do grep -q 0x0003 $d/device && basename $(readlink $d/driver); done)' '^DRIVER='
    check '[ "$(guest_value DRIVER)" = virtio_console ]' "virtio_console drives it (got $(guest_value DRIVER))"
    # A value only the guest computes: the answer cannot be the echoed line.
    guest_cmd 'echo SUM=$((6 * 7))-$(seq 1 100 | awk "{ s += \$1 } END { print s }")' '^SUM=[0-9]'
    check '[ "$(guest_value SUM)" = 42-5050 ]' "a computed value comes back (got $(guest_value SUM))"
    # More output than one receive/transmit buffer holds, in order.
    guest_cmd 'seq 1 3000 | tail -n 1 | sed "s/^/LAST=/"; seq 1 3000 | md5sum | sed "s/ .*//; s/^/SEQSUM=/"' '^SEQSUM='
    check '[ "$(guest_value LAST)" = 3000 ]' "a long command's output arrives (got $(guest_value LAST))"
    check '[ "$(guest_value SEQSUM)" = "$(seq 1 3000 | md5sum | cut -c1-32)" ]' "14 KiB of output arrive intact"
    # A long input line arrives whole (busybox's line editor keeps at most
    # 1024 characters, so it is 0.8 KiB: still several host reads).
    long=$(seq 1 220 | tr '\n' ' ')
    guest_cmd "echo WORDS=\$(echo $long | wc -w)" '^WORDS='
    check '[ "$(guest_value WORDS)" = 220 ]' "a 0.8 KiB input line arrives whole (got $(guest_value WORDS))"
    # More input than the device holds for the guest (4 KiB), typed ahead
    # of the shell: 50 lines of 100 digits into a here-document.
    line=$(printf '%0100d' 0)
    guest_send 'wc -c <<EOF | sed "s/^ */HEREDOC=/"'
    i=0
    while [ $i -lt 50 ]; do
        guest_send "$line"
        i=$((i + 1))
    done
    guest_cmd 'EOF' '^HEREDOC='
    check '[ "$(guest_value HEREDOC)" = 5050 ]' "5 KiB of typed input arrive in order (got $(guest_value HEREDOC))"
    guest_cmd 'echo BYTES=$(dd if=/dev/hwrng bs=256 count=4 2>/dev/null | wc -c)' '^BYTES='
    check '[ "$(guest_value BYTES)" = 1024 ]' "/dev/hwrng gives 1024 bytes beside the console (got $(guest_value BYTES))"
    guest_send 'reboot -f'
    guest_finish 120
    check '[ "$GUEST_STATUS" = 0 ]' "reboot -f ends hospes with status 0 (got $GUEST_STATUS)"
fi
finish
