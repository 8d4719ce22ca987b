#!/bin/sh
# shellcheck shell=dash disable=SC1091  # sourced /lab/lib.sh
# In-lab benchmark, run by tests/lab/lab-run.sh inside the nested lab host
# (busybox sh): one hospesd with many domains of the freestanding test guest
# (16 MiB each, its "idle" scenario: it says so and halts), as an operator's
# host with many small virtual servers (docs/benchmarks.md).
#
# Creates BENCH_DOMAINS domains (default 100) one after another with
# `xl create`, timing each; times `xl list` after every tenth create and five
# times at the end; times one `xl top -b -i 1` frame; destroys them all,
# timing each. Reads hospesd's RSS and open file descriptors at 0 domains,
# at all of them and after the last destroy.
#
# Prints the median and worst time of create, list (with all domains) and
# destroy, top's time, RSS and descriptors. Exit status 0 when every domain
# was created, ran its guest, was destroyed, and hospesd has as many
# descriptors at the end as at the start; 1 otherwise.

. /lab/lib.sh
COUNT=${BENCH_DOMAINS:-100}
export HOSPESD_SOCKET=/run/hospes/hospesd.sock
STATE=/var/lib/hospes
mount -t cgroup2 none /sys/fs/cgroup

hospesd >/tmp/hospesd.log 2>&1 &
HOSPESD=$!
i=0
while ! xl list >/dev/null 2>&1 && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
rss() { awk '$1 == "VmRSS:" { print $2 }' /proc/$HOSPESD/status; }
fds() { ls /proc/$HOSPESD/fd | wc -l; }
monitors() {
    for p in /proc/[0-9]*; do
        if tr '\0' ' ' <$p/cmdline 2>/dev/null | grep -q '^/usr/bin/hospes run '; then echo "${p#/proc/}"; fi
    done
}
RSS0=$(rss) FDS0=$(fds)

cat >/tmp/scale.cfg <<'CFG'
# A small domain: the freestanding test guest, halted once it has started.
name = "scale"
kernel = "/lab/test-guest.elf"
memory = 16
vcpus = 1
cmdline = "idle"
CFG

# timed FILE COMMAND...: runs COMMAND quietly, appends its milliseconds to
# FILE; its status is COMMAND's.
timed() {
    local file=$1 t0 t1 status
    shift
    t0=$(now_ms)
    "$@" >/dev/null 2>>/tmp/errors.txt
    status=$?
    t1=$(now_ms)
    echo $((t1 - t0)) >>"$file"
    return $status
}
summary() { echo "$(median <"$1") ms median, $(sort -n "$1" | tail -n 1) ms worst, $(wc -l <"$1") runs"; }

rm -f /tmp/create.ms /tmp/list.ms /tmp/list-all.ms /tmp/destroy.ms /tmp/top.ms /tmp/errors.txt
failed=0
n=1
while [ $n -le "$COUNT" ]; do
    timed /tmp/create.ms xl create /tmp/scale.cfg "name=\"s$n\"" || failed=$((failed + 1))
    if [ $((n % 10)) = 0 ]; then
        timed /tmp/list.ms xl list
        echo "bench: $n domains, last create $(tail -n 1 /tmp/create.ms) ms, list $(tail -n 1 /tmp/list.ms) ms, hospesd RSS $(rss) KiB, $(fds) fds"
    fi
    n=$((n + 1))
done
for round in 1 2 3 4 5; do timed /tmp/list-all.ms xl list; done
ROWS=$(xl list | grep -c -E '^s[0-9]+ ')
sleep 2  # every guest has printed its line
IDLE=$(grep -l '^idle' $STATE/logs/domain-*.console.log 2>/dev/null | wc -l)
timed /tmp/top.ms xl top -b -i 1
xl top -b -i 1 >/tmp/top.txt
TOP_ROWS=$(grep -c -E '^ *s[0-9]+ ' /tmp/top.txt)
RSS1=$(rss) FDS1=$(fds) MONITORS=$(monitors | wc -l)
n=1
while [ $n -le "$COUNT" ]; do
    timed /tmp/destroy.ms xl destroy s$n || failed=$((failed + 1))
    n=$((n + 1))
done
RSS2=$(rss) FDS2=$(fds) LEFT=$(monitors | wc -l)

echo "bench: hospesd with $COUNT domains of the 16 MiB test guest (lab, one vCPU under TCG; clock: $CLOCK)"
echo "bench: create:  $(summary /tmp/create.ms)"
echo "bench: list with 10..$COUNT domains: $(summary /tmp/list.ms)"
echo "bench: list with $COUNT domains:  $(summary /tmp/list-all.ms)"
echo "bench: top, one frame with $COUNT domains: $(cat /tmp/top.ms) ms"
echo "bench: destroy: $(summary /tmp/destroy.ms)"
echo "bench: hospesd RSS $RSS0 KiB with 0 domains, $RSS1 KiB with $COUNT, $RSS2 KiB after destroying them"
echo "bench: hospesd open fds $FDS0 before, $FDS1 with $COUNT domains, $FDS2 after"
echo "bench: $ROWS domains listed, $TOP_ROWS in top, $IDLE guests said idle, $MONITORS monitors ran, $LEFT left; $failed verbs failed"
[ -s /tmp/errors.txt ] && head -n 5 /tmp/errors.txt
kill $HOSPESD
[ $failed = 0 ] && [ "$ROWS" = "$COUNT" ] && [ "$IDLE" = "$COUNT" ] && [ "$TOP_ROWS" = "$COUNT" ] &&
    [ "$MONITORS" = "$COUNT" ] && [ "$LEFT" = 0 ] && [ "$FDS2" = "$FDS0" ]
