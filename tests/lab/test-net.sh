#!/bin/sh
# shellcheck shell=dash disable=SC1091,SC2016,SC2034  # sourced /lab/lib.sh; guest commands are literal
# In-lab test: one guest with two virtio-net cards, `--net tap=NAME,mac=..`
# (the lab host addresses the tap hospes creates) and `--net bridge=BR,mac=..`
# (hospes creates a kernel-named tap and adds it to a bridge the lab host made
# and addressed). The guest's own virtio_net driver: MACs as given, ping both
# ways, and TCP transfers with busybox nc checked by md5sum on both ends:
# NET_MIB each way over the tap card (default 100; `make test` passes 24 to
# keep within its time), 16 MiB lab -> guest and 8 MiB guest -> lab over the
# bridge card. Afterwards the taps hospes created are gone.
# With LAB_MONITOR=qemu (lib.sh) the same workload runs under QEMU's
# microvm, for comparison; the checks of hospes's own behaviour are skipped.
LAB_TEST_NAME=net
. /lab/lib.sh

TAP=labtap0
BRIDGE=labbr0
MAC_TAP=02:48:4f:53:00:01
MAC_BRIDGE=02:48:4f:53:00:02
BIG_MIB=${NET_MIB:-100}
UP_MIB=${NET_MIB:-100}
SMALL_MIB=16
SMALL_UP_MIB=8

# Hundredths of a second since boot, for transfer rates.
centis() { awk '{ printf "%d\n", $1 * 100 }' /proc/uptime; }
# rate MIB CENTIS: KiB/s
rate() { echo $(($1 * 1024 * 100 / ($2 > 0 ? $2 : 1))); }

# For diagnosis: the lab side's frame counts on an interface and KVM's exit
# counters (all VMs: only one runs), printed per transfer.
mount -t debugfs none /sys/kernel/debug 2>/dev/null
KVM_STATS=/sys/kernel/debug/kvm
counters() {
    local n=/sys/class/net/$1/statistics
    echo "$(cat $n/rx_packets $n/rx_bytes $n/tx_packets $n/tx_bytes $KVM_STATS/exits $KVM_STATS/io_exits \
        $KVM_STATS/mmio_exits $KVM_STATS/irq_injections 2>/dev/null | tr '\n' ' ')"
}
# traffic LABEL BEFORE AFTER: what a transfer cost (the lab's rx is the
# guest's transmit).
traffic() {
    # shellcheck disable=SC2086  # two lists of numbers
    set -- "$1" $2 $3
    [ $# -eq 17 ] || return 0
    echo "lab-test: $1: guest sent $((${10} - $2)) frames ($(((${11} - $3) / (${10} - $2 + 1))) B avg)," \
        "received $((${12} - $4)) frames ($(((${13} - $5) / (${12} - $4 + 1))) B avg);" \
        "VM exits $((${14} - $6)) (io $((${15} - $7)), mmio $((${16} - $8))), interrupts injected $((${17} - $9))"
}

# down PORT MIB ADDRESS LABEL IFACE: the guest downloads MIB MiB from the lab.
down() {
    local port=$1 mib=$2 address=$3 label=$4 t0 t1 want c0
    dd if=/dev/urandom of=/tmp/down.bin bs=1M count="$mib" 2>/dev/null
    want=$(md5sum </tmp/down.bin | cut -c1-32)
    # -e: the listener's own stdin is not the socket, so it does not hang up
    # when the other side half-closes.
    nc -l -p "$port" -e cat /tmp/down.bin &
    sleep 1
    t0=$(centis)
    c0=$(counters "$5")
    guest_cmd "echo DOWN$port=\$(nc $address $port </dev/null | md5sum | cut -c1-32)" "^DOWN$port=[0-9a-f]{32}" 540
    t1=$(centis)
    traffic "$label down" "$c0" "$(counters "$5")"
    local got
    got=$(guest_value "DOWN$port")
    check '[ "$got" = "$want" ]' "$label: $mib MiB lab -> guest in $(((t1 - t0) / 100)) s, $(rate "$mib" $((t1 - t0))) KiB/s, md5 $want (guest: $got)"
    rm -f /tmp/down.bin
}

# up PORT MIB ADDRESS LABEL IFACE: the guest sends MIB MiB of its /dev/urandom,
# hashing it on the way through a fifo, so nothing is stored.
up() {
    local port=$1 mib=$2 address=$3 label=$4 t0 t1 got want c0
    rm -f /tmp/up.md5
    nc -l -p "$port" -e sh -c 'md5sum | cut -c1-32 >/tmp/up.md5.part && mv /tmp/up.md5.part /tmp/up.md5' &
    sleep 1
    t0=$(centis)
    c0=$(counters "$5")
    guest_cmd "rm -f /tmp/f; mkfifo /tmp/f; md5sum </tmp/f >/tmp/up.md5 & dd if=/dev/urandom bs=64k count=$((mib * 16)) 2>/dev/null | tee /tmp/f | nc $address $port; wait; echo UP$port=\$(cut -c1-32 /tmp/up.md5)" "^UP$port=[0-9a-f]{32}" 540
    t1=$(centis)
    traffic "$label up" "$c0" "$(counters "$5")"
    want=$(guest_value "UP$port")
    local i=0
    while [ ! -s /tmp/up.md5 ] && [ $i -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
    got=$(cat /tmp/up.md5 2>/dev/null)
    check '[ -n "$want" ] && [ "$got" = "$want" ]' "$label: $mib MiB guest -> lab in $(((t1 - t0) / 100)) s, $(rate "$mib" $((t1 - t0))) KiB/s (includes the guest's urandom), md5 $want (lab: $got)"
}

brctl addbr $BRIDGE && ip addr add 10.0.2.1/24 dev $BRIDGE && ip link set $BRIDGE up
check '[ -d /sys/class/net/$BRIDGE/bridge ]' "lab bridge $BRIDGE made"

guest_start net --vcpus 1 --memory 512M --net "tap=$TAP,mac=$MAC_TAP" --net "bridge=$BRIDGE,mac=$MAC_BRIDGE"
# The monitor creates both taps while it builds the machine, before the
# guest runs.
i=0
while [ ! -d /sys/class/net/$TAP ] && [ $i -lt 300 ] && ! guest_exited; do sleep 0.2; i=$((i + 1)); done
check '[ -d /sys/class/net/$TAP ]' "the monitor created tap $TAP"
ip addr add 10.0.1.1/24 dev $TAP
# The bridge card's tap comes right after the first one: wait for it too.
i=0
while [ -z "$(ls /sys/class/net/$BRIDGE/brif 2>/dev/null)" ] && [ $i -lt 300 ] && ! guest_exited; do
    sleep 0.2
    i=$((i + 1))
done
PORTS=$(ls /sys/class/net/$BRIDGE/brif 2>/dev/null | tr '\n' ' ')
if is_hospes; then
    check 'echo "$PORTS" | grep -q "^hospes[0-9]"' "a tap hospes named is a port of $BRIDGE (ports: $PORTS)"
else
    check '[ -n "$PORTS" ]' "the monitor's tap is a port of $BRIDGE (ports: $PORTS)"
fi
check '[ "$(cat /sys/class/net/$TAP/operstate 2>/dev/null)" != down ]' "the monitor brought $TAP up"

if guest_boot; then
    # Each card as NAME/MAC/VIRTIO-DEVICE/DEVICE-ID, in the kernel's order.
    guest_cmd 'echo CARDS=$(for i in /sys/class/net/eth*; do printf "%s/%s/%s/%s " ${i##*/} $(cat $i/address) $(basename $(readlink $i/device)) $(cat $i/device/device); done)' '^CARDS=eth'
    CARDS=$(guest_value CARDS)
    card() { echo "$CARDS" | tr ' ' '\n' | grep "/$1/"; }
    TAP_CARD=$(card $MAC_TAP)
    BRIDGE_CARD=$(card $MAC_BRIDGE)
    check '[ "${TAP_CARD##*/}" = 0x0001 ] && [ "${BRIDGE_CARD##*/}" = 0x0001 ]' \
        "two virtio network cards with the MACs given (cards: $CARDS)"
    if is_hospes; then
        check '[ "${TAP_CARD%%/*}" = eth0 ] && [ "${BRIDGE_CARD%%/*}" = eth1 ]' \
            "the cards are in the order of --net: eth0 tap=, eth1 bridge="
    fi
    IF_TAP=${TAP_CARD%%/*}
    IF_BRIDGE=${BRIDGE_CARD%%/*}
    DEV_TAP=$(echo "$TAP_CARD" | cut -d/ -f3)
    # Offloads the guest's driver took (the features string's character N is
    # bit N): CSUM 0, GUEST_CSUM 1, GUEST_TSO4 7, HOST_TSO4 11, MRG_RXBUF 15.
    guest_cmd "echo FEATURES=\$(cut -c1,2,8,12,16 /sys/bus/virtio/devices/$DEV_TAP/features)" '^FEATURES=[01]'
    check '[ "$(guest_value FEATURES)" = 11111 ]' \
        "the guest's driver uses checksum and TSO offloads both ways and mergeable buffers (got $(guest_value FEATURES))"
    guest_cmd "ip addr add 10.0.1.2/24 dev $IF_TAP; ip link set $IF_TAP up; ip addr add 10.0.2.2/24 dev $IF_BRIDGE; ip link set $IF_BRIDGE up; echo LINKS-\$((40+2))" '^LINKS-42'
    guest_cmd 'ping -c 3 -W 10 10.0.1.1 >/dev/null && echo PING1=ok || echo PING1=failed' '^PING1=' 90
    check '[ "$(guest_value PING1)" = ok ]' "guest pings the lab over the tap card"
    guest_cmd 'ping -c 3 -W 10 10.0.2.1 >/dev/null && echo PING2=ok || echo PING2=failed' '^PING2=' 90
    check '[ "$(guest_value PING2)" = ok ]' "guest pings the lab over the bridge card"
    check 'ping -c 3 -W 10 10.0.1.2 >/dev/null' "lab pings the guest over the tap"
    check 'ping -c 3 -W 10 10.0.2.2 >/dev/null' "lab pings the guest over the bridge"
    down 5001 $BIG_MIB 10.0.1.1 "tap card" $TAP
    up 5002 $UP_MIB 10.0.1.1 "tap card" $TAP
    down 5003 $SMALL_MIB 10.0.2.1 "bridge card" $BRIDGE
    up 5004 $SMALL_UP_MIB 10.0.2.1 "bridge card" $BRIDGE
    guest_cmd 'S=$(cut -d" " -f1 /proc/uptime); dd if=/dev/urandom bs=64k count=160 of=/dev/null 2>/dev/null; echo URANDOM=$S,$(cut -d" " -f1 /proc/uptime)' '^URANDOM=' 300
    echo "lab-test: guest urandom 10 MiB from/to uptime $(guest_value URANDOM)"
    guest_cmd 'cat /proc/net/dev; echo NETDEV-$((40+2))' '^NETDEV-42'
    guest_send 'reboot -f'
    guest_finish 120
    check '[ "$GUEST_STATUS" = 0 ]' "reboot -f ends the monitor with status 0 (got $GUEST_STATUS)"
    if is_hospes; then
        check '! guest_text | grep -q "needs a reset"' "no virtio device needed a reset"
        check '! guest_text | grep -q "virtio-net"' "hospes logged no virtio-net warnings"
    fi
    check '[ ! -d /sys/class/net/$TAP ]' "tap $TAP is gone after the monitor exited"
    check '[ -z "$(ls /sys/class/net/$BRIDGE/brif)" ]' "the bridge has no ports left"
fi
finish
