#!/bin/sh
# shellcheck shell=dash disable=SC1091,SC2016,SC2034  # sourced /lab/lib.sh; guest commands are literal
# In-lab test: two guests share one host disk through hospes-blkback (the
# noisy neighbour). Both guests (the default guest, stock Debian kernel and
# virtio_blk) read their own disk with 4 KiB direct reads from many readers
# at once; their images are on one host file system; guest B's RAM is on huge
# pages. The figures are the back-end's own counters (requests taken from
# each guest's ring, and how often a guest's turn found its ring empty),
# read through its control socket.
#  1. A alone, no cap: its rate R says what the lab can do.
#  2. The host disk is capped at a quarter of what both guests read
#     together (a disk they saturate, with room left in the lab's CPU for
#     the guests to keep their rings full when the lab slows down): with
#     equal weights B gets 45 to 55 % of it.
#  3. Weights 1:3 (set while running): A's share is within 10 % of 25 %.
#  4. The host disk uncapped, B idle, A capped at 30 % of R with a burst of
#     R requests: A is held back first only once it has taken the burst,
#     and the next 30 s hold the cap within 5 %, with no second burst.
# A work-conserving scheduler rightly gives a guest whatever the other
# leaves unused, so phases 2 and 3 judge the weights only over windows in
# which both guests were backlogged: neither ring sat empty for more than
# 2 % of the window, which the back-end's ring_empty_us counters prove. The
# lab's one CPU runs both guests and the back-end; when it is busy (a CI
# machine doing something else), a guest's readers fall behind and its ring
# runs dry (a run with 8 readers in B found it empty 898 times in 20 s and
# gave A 28.7 % at 1:3): such windows say nothing of the scheduler and are
# left out.
LAB_TEST_NAME=blkshare
. /lab/lib.sh

DIR=/tmp/share
mkdir -p $DIR
truncate -s 64M $DIR/a.img $DIR/b.img
hospes-blkback --socket-dir $DIR --disk a=$DIR/a.img --disk b=$DIR/b.img 2>/tmp/blkshare.log &
BLKBACK=$!
i=0
while [ ! -S $DIR/b.sock ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
ctl() { hospes-blkback --control $DIR/control --send "$1"; }
# counts: one query's figures, "requests_A requests_B ring_empty_us_A
# ring_empty_us_B ring_empty_A ring_empty_B".
counts() {
    q=$(ctl '{"execute":"query"}')
    for key in requests ring_empty_us ring_empty; do
        echo "$q" | grep -o "\"$key\":[0-9]*" | cut -d: -f2 | tr '\n' ' '
    done
}
# requests A B: the back-end's counts so far, "A B".
requests() { set -- $(counts); echo "$1 $2"; }
# a_counts: A's requests and the times its own cap held it back, from one
# query, "REQUESTS THROTTLED".
a_counts() {
    q=$(ctl '{"execute":"query"}')
    for key in requests throttled; do echo "$q" | grep -o "\"$key\":[0-9]*" | head -n 1 | cut -d: -f2; done | tr '\n' ' '
}
HOST_DISK=$(ctl '{"execute":"query"}' | grep -o '"host_disk":"[0-9:]*"' | head -n 1 | cut -d'"' -f4)
echo "lab-test: both images are on host disk $HOST_DISK"

# Readers per guest and phase: enough that a ring stays full while the
# guest's vCPU waits for the lab's CPU.
READERS_A=${BLKSHARE_READERS_A:-16} READERS_B=${BLKSHARE_READERS_B:-16}
READERS='i=0; while [ $i -lt $N ]; do (while [ ! -e /tmp/stop ]; do dd if=/dev/vda of=/dev/null bs=4096 count=4096 iflag=direct 2>/dev/null; done) & i=$((i + 1)); done; echo READING-$((40+2))'

guest_start share-a --disk vhost-user=$DIR/a.sock --memory 256M
guest_boot 300
# Guest B's RAM is on the lab's huge pages (--hugepages), which the
# back-end maps as well.
echo 136 >/proc/sys/vm/nr_hugepages
free0=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
GUEST_FD=8 guest_start share-b --disk vhost-user=$DIR/b.sock --memory 256M --hugepages
guest_boot 300
free1=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
rsvd=$(awk '/HugePages_Rsvd/ {print $2}' /proc/meminfo)
check "[ $((free0 - free1 + rsvd)) -eq 128 ]" \
    "guest B's 256 MiB are 128 huge pages (free $free0 -> $free1, reserved and not yet touched $rsvd)"

# rate FROM TO SECONDS: requests per second between two counts.
rate() { echo $((($2 - $1) / $3)); }

# 1. A alone.
guest_use share-a
guest_cmd "rm -f /tmp/stop; N=$READERS_A; $READERS" '^READING-42'
sleep 3
set -- $(requests); a0=$1
sleep 10
set -- $(requests); a1=$1
R=$(rate "$a0" "$a1" 10)
echo "lab-test: guest A alone, uncapped: $R requests/s"
check "[ $R -ge 100 ]" "guest A alone reads at least 100 requests/s (got $R)"

# backlogged NEED MAX: the 2 s windows, for at most MAX seconds, until NEED
# seconds of windows in which both guests were backlogged are found: each
# guest's ring sat empty for at most 2 % of the window (the back-end's
# ring_empty_us, which counts a spell still going on) and each started
# requests. Sets A and B (their requests in those windows), MS (the
# windows' milliseconds), WINDOWS and SEEN (the windows found and looked
# at), IDLE (the most either ring sat empty in them, per mille); each
# window is printed.
backlogged() {
    need=$(($1 / 2)) max=$(($2 / 2))
    A=0 B=0 MS=0 WINDOWS=0 SEEN=0 IDLE=0
    set -- $(counts)
    pa=$1 pb=$2 pua=$3 pub=$4 pea=$5 peb=$6 t0=$(now_ms)
    while [ $WINDOWS -lt $need ] && [ $SEEN -lt $max ]; do
        sleep 2
        set -- $(counts)
        t1=$(now_ms)
        da=$(($1 - pa)) db=$(($2 - pb)) dt=$((t1 - t0))
        ia=$((($3 - pua) / dt)) ib=$((($4 - pub) / dt))  # per mille of the window
        ea=$(($5 - pea)) eb=$(($6 - peb))
        pa=$1 pb=$2 pua=$3 pub=$4 pea=$5 peb=$6 t0=$t1
        SEEN=$((SEEN + 1))
        verdict="not backlogged"
        if [ $ia -le 20 ] && [ $ib -le 20 ] && [ $da -gt 0 ] && [ $db -gt 0 ]; then
            A=$((A + da)) B=$((B + db)) MS=$((MS + dt)) WINDOWS=$((WINDOWS + 1))
            [ $ia -gt $IDLE ] && IDLE=$ia
            [ $ib -gt $IDLE ] && IDLE=$ib
            verdict=backlogged
        fi
        echo "lab-test:   window $SEEN ($dt ms): A $da, B $db requests; rings empty A $ea times, $ia per mille of the time, B $eb times, $ib per mille; $verdict"
    done
}

# 2. Equal weights on a saturated host disk. The cap is a quarter of what
# the two guests read together uncapped (RB), not a share of A's rate
# alone: both guests share the lab's one CPU, and a CI run where A alone
# did 1,180/s had the pair reach only 342/s of a cap at 40 % of that. At
# half of RB, a run beside a busy host CPU found the guests' rings full in
# only 8 of 90 s: the lab slowed down, and the guests could no longer
# offer the cap.
guest_use share-b
guest_cmd "rm -f /tmp/stop; N=$READERS_B; $READERS" '^READING-42'
sleep 3
set -- $(requests); a0=$1 b0=$2
sleep 10
set -- $(requests); a1=$1 b1=$2
RB=$(rate "$((a0 + b0))" "$((a1 + b1))" 10)
echo "lab-test: the two guests together, uncapped: $RB requests/s"
CAP=$((RB / 4))
ctl "{\"execute\":\"set-host-disk\",\"host_disk\":\"$HOST_DISK\",\"iops\":$CAP}" >/dev/null
sleep 3
echo "lab-test: host disk capped at $CAP/s, equal weights:"
backlogged 20 120
check "[ $WINDOWS -ge 10 ]" "both guests were backlogged in 20 s of 2 s windows within 120 s (found $((WINDOWS * 2)) s in $((SEEN * 2)) s)"
if [ $WINDOWS -gt 0 ]; then
    SHARE=$((B * 1000 / (A + B))) TOTAL=$(((A + B) * 1000 / MS))
    echo "lab-test: backlogged, equal weights: A $A, B $B requests in $MS ms (B $((SHARE / 10)).$((SHARE % 10)) %), $TOTAL/s; rings empty at most $IDLE per mille of a window"
    check "[ $SHARE -ge 450 ] && [ $SHARE -le 550 ]" "with equal weights guest B gets 45 to 55 % of the host disk (got $SHARE per mille)"
    check "[ $TOTAL -ge $((CAP * 95 / 100)) ] && [ $TOTAL -le $((CAP * 105 / 100)) ]" \
        "the two guests together get the host disk's $CAP/s within 5 % (got $TOTAL/s)"
fi

# 3. Weights 1:3. B must keep 75 % of the cap in flight: it gets more
# readers.
guest_cmd "N=$READERS_B; $READERS" '^READING-42'
ctl '{"execute":"set-disk","disk":"b","weight":300}' >/dev/null
sleep 3
echo "lab-test: weights 1:3:"
backlogged 20 120
check "[ $WINDOWS -ge 10 ]" "both guests were backlogged in 20 s of 2 s windows within 120 s (found $((WINDOWS * 2)) s in $((SEEN * 2)) s)"
if [ $WINDOWS -gt 0 ]; then
    SHARE=$((A * 1000 / (A + B))) TOTAL=$(((A + B) * 1000 / MS))
    echo "lab-test: backlogged, weights 1:3: A $A, B $B requests in $MS ms (A $((SHARE / 10)).$((SHARE % 10)) %), $TOTAL/s; rings empty at most $IDLE per mille of a window"
    check "[ $SHARE -ge 225 ] && [ $SHARE -le 275 ]" "with weights 1:3 guest A's share is within 10 % of 25 % (got $SHARE per mille)"
    check "[ $TOTAL -ge $((CAP * 95 / 100)) ] && [ $TOTAL -le $((CAP * 105 / 100)) ]" \
        "the two guests together still get the host disk's $CAP/s within 5 % (got $TOTAL/s)"
fi

# 4. A's own cap and burst, B idle, the host disk uncapped.
# The readers' dd are killed, not waited for: B's 12 readers finishing
# 16 MiB each at B's share of the capped disk took over 120 s in a CI run.
STOP='touch /tmp/stop; killall dd 2>/dev/null; wait'
guest_cmd "$STOP; echo IDLE-\$((40+2))" '^IDLE-42' 120
ctl "{\"execute\":\"set-host-disk\",\"host_disk\":\"$HOST_DISK\",\"iops\":0}" >/dev/null
ctl '{"execute":"set-disk","disk":"b","weight":100}' >/dev/null
guest_use share-a
ACAP=$((R * 30 / 100))
set -- $(a_counts); a0=$1 held0=$2
ctl "{\"execute\":\"set-disk\",\"disk\":\"a\",\"iops\":$ACAP,\"iops_burst\":$R}" >/dev/null
# The burst is judged at the moment the cap first holds A back (its bucket
# is empty then), not over a fixed time: a lab slowed down since R was
# measured asks for less than R/s and reaches the cap later (a soak beside
# a compiler got 1,311 of the 2,484 requests due in 5 s, never held back).
# A query that first sees A held finds it has taken at least the burst and
# the cap's rate for the time up to the query before.
t0=$(now_ms) before=$t0 HELD_AT= TAKEN=
while [ $((before - t0)) -lt 30000 ]; do
    now=$(now_ms)
    set -- $(a_counts)
    if [ "$2" -gt "$held0" ]; then HELD_AT=$((before - t0)) TAKEN=$(($1 - a0)); break; fi
    before=$now
    sleep 0.5
done
# Then the cap alone: 30 s with the bucket spent.
sleep 2
set -- $(requests); a2=$1
sleep 30
set -- $(requests); a3=$1
HELD=$(((a3 - a2) / 30))
echo "lab-test: guest A capped at $ACAP/s with a burst of $R: first held back ${HELD_AT:-never} ms in, after ${TAKEN:-all} requests; then $HELD/s over 30 s"
check "[ -n '$HELD_AT' ]" "guest A reaches its cap of $ACAP/s within 30 s"
[ -z "$HELD_AT" ] || check "[ $TAKEN -ge $(((R + HELD_AT * ACAP / 1000) * 85 / 100)) ]" \
    "the burst is honoured: A is first held back after about $R + $ACAP/s x $HELD_AT ms requests (got $TAKEN)"
check "[ $HELD -ge $((ACAP * 95 / 100)) ] && [ $HELD -le $((ACAP * 105 / 100)) ]" \
    "the cap of $ACAP/s holds within 5 % over 30 s, with no second burst (got $HELD/s)"
guest_cmd "$STOP; "'echo ERRORS=$(dmesg | grep -c -i -E "I/O error|blocked for more")' '^ERRORS=' 120
check '[ "$(guest_value ERRORS)" = 0 ]' "no I/O errors or hung tasks in guest A's kernel log"
echo "lab-test: hospes-blkback's counters: $(ctl '{"execute":"query"}')"

for g in share-a share-b; do
    guest_use $g
    guest_send 'poweroff -f'
    guest_finish 120
    check '[ "$GUEST_STATUS" = 0 ]' "guest $g powers off, status 0 (got $GUEST_STATUS)"
done
kill -TERM $BLKBACK 2>/dev/null
wait $BLKBACK 2>/dev/null
finish
