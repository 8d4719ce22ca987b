#!/bin/sh
# shellcheck shell=dash disable=SC1091,SC2016,SC2034,SC2086  # sourced /lab/lib.sh; guest commands are literal
# In-lab benchmark, run by tests/lab/lab-run.sh inside the nested lab host:
# TCP throughput of the stock Debian guest's virtio_net through
#   tap      hospes run --net tap=..., the monitor's own virtio-net (today's
#            path), guest -> lab host;
#   netback  hospes run --net vhost-user=..., a port of hospes-netback with
#            an uplink tap, guest -> lab host;
#   g2g      guest -> guest, two guests on that hospes-netback (the frames
#            never leave the back-end).
# The same kernel, initramfs and command line, in the same lab run; each
# round runs the three in a rotated order. A guest serves one random MiB
# over and over (busybox nc listening, cat writing into the socket) to a
# client that connects and discards it, for
# BENCH_SECONDS (default 20) after 3 s of warm-up; the rate is the bytes of
# Ethernet frames the receiving side counted (the lab's tap for the first
# two, the back-end's counter of frames it gave guest B for g2g). Printed:
# per round, then medians and the ratios netback/tap and g2g/tap.
# Environment: BENCH_ROUNDS (default 3), BENCH_SECONDS.
LAB_TEST_NAME=net-tcp
. /lab/lib.sh

ROUNDS=${BENCH_ROUNDS:-3}
SECONDS_MEASURED=${BENCH_SECONDS:-20}
DIR=/tmp/netback
RESULTS=/tmp/net-tcp.results
: >$RESULTS
mkdir -p $DIR
echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6

hospes-netback --socket-dir $DIR --port a,mac=02:48:4f:53:01:0a --port b,mac=02:48:4f:53:01:0b --uplink tap=nbtap0 \
    2>/tmp/netback.log &
NETBACK=$!
i=0
while [ ! -S $DIR/control ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
ip addr add 10.0.3.1/24 dev nbtap0
ip link set nbtap0 up
ctl() { hospes-netback --control $DIR/control --send "$1"; }
field() { netback_field $DIR/control "$1" "$2"; }
rx_bytes() { cat /sys/class/net/$1/statistics/rx_bytes; }

# boot NAME FD ADDRESS NET-OPTION: a guest with its card up at ADDRESS.
boot() {
    GUEST_FD=$2 guest_start $1 --net "$4" --memory 256M
    guest_use $1
    guest_boot 300
    guest_cmd "echo 1 >/proc/sys/net/ipv6/conf/all/disable_ipv6; ip addr add $3/24 dev eth0; ip link set eth0 up; dd if=/dev/urandom of=/tmp/blk bs=1M count=1 2>/dev/null; echo UP-\$((40+2))" '^UP-42'
}
# serve GUEST PORT: the guest sends to whoever connects to PORT until that
# client goes away.
serve() {
    guest_use $1
    guest_cmd "nc -l -p $2 -e sh -c 'while cat /tmp/blk; do :; done' & sleep 1; echo SERVE$2-\$((40+2))" "^SERVE$2-42"
}
# rate NAME COUNTER: bytes per second of COUNTER (a command) over the
# measured seconds, after the warm-up; appended to the results.
rate() {
    local c0 c1
    sleep 3
    c0=$($2)
    sleep $SECONDS_MEASURED
    c1=$($2)
    echo "$1 $(((c1 - c0) / SECONDS_MEASURED)) $ROUND" >>$RESULTS
    echo "bench: round $ROUND $1: $(((c1 - c0) / SECONDS_MEASURED)) bytes/s"
}

run_tap() {
    boot tcp-tap 9 10.0.4.2 tap=labtap4
    ip addr add 10.0.4.1/24 dev labtap4
    serve tcp-tap 6001
    nc 10.0.4.2 6001 </dev/null >/dev/null &
    CLIENT=$!
    rate tap "rx_bytes labtap4"
    kill $CLIENT
    guest_use tcp-tap
    guest_send 'poweroff -f'
    guest_finish 60
}
run_netback() {
    boot tcp-a 9 10.0.3.2 vhost-user=$DIR/a.sock
    serve tcp-a 6002
    nc 10.0.3.2 6002 </dev/null >/dev/null &
    CLIENT=$!
    rate netback "rx_bytes nbtap0"
    kill $CLIENT
    guest_use tcp-a
    guest_send 'poweroff -f'
    guest_finish 60
}
run_g2g() {
    boot tcp-a 9 10.0.3.2 vhost-user=$DIR/a.sock
    boot tcp-b 8 10.0.3.3 vhost-user=$DIR/b.sock
    serve tcp-a 6003
    guest_use tcp-b
    guest_cmd "nc 10.0.3.2 6003 </dev/null >/dev/null & echo CLIENT-\$((40+2))" '^CLIENT-42'
    rate g2g "field b out_bytes"
    for g in tcp-a tcp-b; do
        guest_use $g
        guest_send 'poweroff -f'
        guest_finish 60
    done
}

ROUND=1
while [ $ROUND -le "$ROUNDS" ]; do
    case $((ROUND % 3)) in
        1) ORDER="tap netback g2g" ;;
        2) ORDER="netback g2g tap" ;;
        0) ORDER="g2g tap netback" ;;
    esac
    for path in $ORDER; do run_$path; done
    ROUND=$((ROUND + 1))
done

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print 0 }'; }
TAP=$(awk '$1 == "tap" { print $2 }' $RESULTS | median)
NETBACK_RATE=$(awk '$1 == "netback" { print $2 }' $RESULTS | median)
G2G=$(awk '$1 == "g2g" { print $2 }' $RESULTS | median)
echo "bench: medians over $ROUNDS rounds, bytes/s: in-monitor tap $TAP, netback to the lab $NETBACK_RATE, guest to guest $G2G"
echo "bench: ratios: netback/tap $(awk -v a="$NETBACK_RATE" -v b="$TAP" 'BEGIN { printf "%.2f", b ? a / b : 0 }')," \
    "guest-to-guest/tap $(awk -v a="$G2G" -v b="$TAP" 'BEGIN { printf "%.2f", b ? a / b : 0 }')"
check "[ $(grep -c . $RESULTS) -eq $((3 * ROUNDS)) ] && [ $TAP -gt 0 ] && [ $NETBACK_RATE -gt 0 ] && [ $G2G -gt 0 ]" \
    "every measurement of $ROUNDS rounds made"
kill -TERM $NETBACK 2>/dev/null
wait $NETBACK 2>/dev/null
finish
