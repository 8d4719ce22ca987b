#!/bin/sh
# shellcheck shell=dash disable=SC1091,SC2016,SC2034  # sourced /lab/lib.sh; guest commands are literal
# In-lab test: hospesd and the xl verbs, with stock Debian guests (the
# default guest) started from xl.cfg files.
#  1. Three domains created; `xl list` shows them (Xen's columns, a
#     Domain-0 row) with their memory and vCPUs; a bad file is one error.
#  2. `xl console`: a command typed reaches the guest, its output comes
#     back, Ctrl-] detaches.
#  3. `xl pause` stops the guest (state p, its clock does not advance);
#     `xl unpause` resumes it.
#  3b. `xl mem-set` through the balloon: the guest's MemTotal and the
#     monitor's RSS fall, a higher target gives MemTotal back, more than
#     maxmem is one error.
#  4. `xl shutdown -w` (on_poweroff=destroy): the guest powers off on the
#     ACPI power button and the domain is gone.
#  4b. `xl top` (xentop's columns), hospesd's Prometheus metrics and
#     `xl dmesg`: a guest's disk reads and another's pings are counted;
#     a vif's rate= holds the guest's sending to it within 10 %, and
#     top's rate column shows it.
#  5. `xl reboot` (on_reboot=restart): a new boot of the same domain.
#  5b. web2's disk is served by the hospes-blkback hospesd runs; killed,
#     the back-end is started again by hospesd and web2's writes reach the
#     image through the new one; the metrics count the restart.
#  6. A kernel panic (on_crash=preserve): the domain stays, state "---sc-".
#  7. `kill -9` of hospesd: the domains run on; a new hospesd re-adopts
#     them: `list` and `console` work.
#  8. `xl destroy` leaves no process, port or socket.
#  9. CPU policy on cgroup v2 (the host's v1 is tested by the unit tests):
#     two busy domains with cpu_weight 256 and 512 on the lab's one CPU
#     get CPU time 1:2 within 10 %; `xl sched-credit -c 50` holds one at
#     50 % of a CPU within 10 %. vcpu-list and vcpu-pin.
LAB_TEST_NAME=toolstack
. /lab/lib.sh

mount -t cgroup2 none /sys/fs/cgroup

# The monitors' pids: processes running `hospes run` (a jailed monitor and
# its jailer).
monitors() {
    for p in /proc/[0-9]*; do
        if tr '\0' ' ' <$p/cmdline 2>/dev/null | grep -q '^/usr/bin/hospes run '; then echo "${p#/proc/}"; fi
    done
}
ip link set lo up  # the metrics are served on 127.0.0.1
start_hospesd --metrics 127.0.0.1:9101
check "[ -S $HOSPESD_SOCKET ]" "hospesd serves its socket"

ip link add xenbr0 type bridge && ip link set xenbr0 up
mkdir -p /tmp/cfg
# domain_file NAME MEMORY VCPUS EXTRA: an xl.cfg for the default guest.
domain_file() {
    cat >/tmp/cfg/$1.cfg <<CFG
# $1: the default guest, as an operator would write it
name = "$1"
kernel = "/guest/vmlinuz"
ramdisk = "/guest/initramfs.cpio.gz"
memory = $2
vcpus = $3
$4
CFG
}
domain_file web1 160 2 'on_poweroff = "destroy"'
truncate -s 16M /tmp/web2-data.img
domain_file web2 128 1 'on_reboot = "restart"
on_crash = "preserve"
disk = [ "file:/tmp/web2-data.img,xvdb,w" ]'
domain_file web3 96 1 "vif = [ 'mac=00:16:3e:00:00:03, bridge=xenbr0, ip=10.9.0.3, rate=100KB/s' ]"

for d in web1 web2 web3; do
    out=$(xl create /tmp/cfg/$d.cfg 2>&1)
    check "[ $? = 0 ]" "xl create $d.cfg (said: $(echo $out))"
done
for d in web1 web2 web3; do
    check "booted $d 1" "$d boots to user space"
done

xl list >/tmp/list.txt
cat /tmp/list.txt
check "head -n 1 /tmp/list.txt | grep -q -x -F \"$(printf 'Name                                        ID   Mem VCPUs\tState\tTime(s)')\"" \
    "xl list prints Xen's header"
check "grep -q -E '^Domain-0 +0 +[0-9]+ +[0-9]+ +r----- +[0-9.]+\$' /tmp/list.txt" "xl list has a Domain-0 row"
check "grep -q -E '^web1 +[0-9]+ +160 +2 +[-rb]{2}---- +[0-9.]+\$' /tmp/list.txt" "web1: 160 MiB, 2 vCPUs"
check "grep -q -E '^web2 +[0-9]+ +128 +1 ' /tmp/list.txt && grep -q -E '^web3 +[0-9]+ +96 +1 ' /tmp/list.txt" \
    "web2: 128 MiB, web3: 96 MiB, 1 vCPU each"
check "[ \$(xl list | wc -l) = 5 ]" "xl list: a header and four rows"
check "xl list -l web2 | grep -q '\"on_crash\": \"preserve\"'" "xl list -l shows the domain's configuration as JSON"
printf 'name = "bad"\nmemory = [ 64\n' >/tmp/cfg/bad.cfg
out=$(xl create /tmp/cfg/bad.cfg 2>&1)
status=$?
check "[ $status != 0 ] && [ \$(echo \"\$out\" | grep -c .) -le 2 ] && echo \"\$out\" | grep -q 'bad.cfg:[0-9]*:[0-9]*:'" \
    "a malformed file: one error with file:line:column, status $status (said: $(echo $out))"
out=$(xl create /tmp/cfg/web1.cfg 2>&1)
check "[ $? != 0 ] && echo \"\$out\" | grep -q 'already exists'" "a second web1 is refused (said: $(echo $out))"
out=$(xl pause nosuch 2>&1)
check "[ $? = 1 ] && [ \"\$(echo \"\$out\" | wc -l)\" = 1 ]" "xl pause of an unknown domain: one line, status 1 (said: $out)"

console_cmd web1 'echo CONSOLE=$((40+2))' '^CONSOLE='
check "[ \"$CONSOLE_VALUE\" = 42 ] && [ $CONSOLE_STATUS = 0 ]" \
    "xl console: the command ran in web1 and Ctrl-] detached (got '$CONSOLE_VALUE', status $CONSOLE_STATUS)"

# 3. Pause: the guest's clock stands still while it is paused.
lab_uptime() { cut -d' ' -f1 /proc/uptime; }
console_cmd web1 'echo UP1=$(cut -d" " -f1 /proc/uptime)' '^UP1='
g1=$CONSOLE_VALUE l1=$(lab_uptime)
xl pause web1
check "xl list web1 | grep -q -E '^web1 .* --p--- '" "a paused domain's state is --p---"
sleep 8
xl unpause web1
console_cmd web1 'echo UP2=$(cut -d" " -f1 /proc/uptime)' '^UP2='
g2=$CONSOLE_VALUE l2=$(lab_uptime)
echo "lab-test: guest uptime $g1 -> $g2, lab uptime $l1 -> $l2 (8 s paused)"
check "awk -v g=\$(echo '$g2 - $g1' | awk '{print \$1 - \$3}') -v l=\$(echo '$l2 - $l1' | awk '{print \$1 - \$3}') 'BEGIN { exit !(g > 0 && g < l - 6) }'" \
    "the guest's clock did not advance while paused"
check "xl list web1 | grep -q -E '^web1 .* [-rb]{2}---- '" "unpaused, web1 runs again"

# 3b. mem-set: the balloon lowers the guest's MemTotal and gives the
# memory back to the host (the monitor's RSS).
meminfo() { console_cmd web1 "echo $1=\$(grep $2 /proc/meminfo | tr -s ' ' | cut -d' ' -f2)" "^$1="; }
rss_kib() { awk '/VmRSS/ { print $2 }' "/proc/$(monitor_of "$1")/status"; }
meminfo MT1 MemTotal
mt1=$CONSOLE_VALUE
console_cmd web1 'dd if=/dev/zero of=/tmp/fill bs=1M count=80 2>/dev/null; echo FILLED=1' '^FILLED='
rss1=$(rss_kib "$(pid_of web1)")
console_cmd web1 'rm /tmp/fill; echo EMPTIED=1' '^EMPTIED='
xl mem-set web1 96
check "[ $? = 0 ] && xl list web1 | grep -q -E '^web1 +[0-9]+ +96 '" "xl mem-set web1 96: listed with 96 MiB"
sleep 10
meminfo MT2 MemTotal
mt2=$CONSOLE_VALUE
rss2=$(rss_kib "$(pid_of web1)")
echo "lab-test: web1 MemTotal $mt1 -> $mt2 kB, monitor RSS $rss1 -> $rss2 kB (80 MiB filled and freed, then mem-set 160 -> 96 MiB)"
check "[ $((mt1 - mt2)) -ge 60000 ]" "the guest's MemTotal fell by about 64 MiB ($mt1 -> $mt2 kB)"
check "[ $((rss1 - rss2)) -ge 49152 ]" "the monitor's RSS fell by at least 48 MiB ($rss1 -> $rss2 kB)"
xl mem-set web1 160m
sleep 5
meminfo MT3 MemTotal
echo "lab-test: after mem-set web1 160m, MemTotal $CONSOLE_VALUE kB"
check "[ $CONSOLE_VALUE = $mt1 ]" "mem-set back to 160 MiB deflates: MemTotal is $mt1 kB again (got $CONSOLE_VALUE)"
out=$(xl mem-set web1 4g 2>&1)
check "[ $? = 1 ] && echo \"\$out\" | grep -q 'mem-set: from 16 to 160 MiB'" "mem-set above maxmem is one error (said: $out)"

# 4. shutdown -w with on_poweroff=destroy.
pid1=$(pid_of web1)
id1=$(id_of web1)
timeout 120 xl shutdown -w web1
check "[ $? = 0 ] && ! xl list | grep -q '^web1 '" "xl shutdown -w web1 returns once it is gone (on_poweroff=destroy)"
check "grep -q 'power button pressed' $STATE/logs/domain-$id1.console.log" "web1's acpid powered it off on the power button"
check "[ -n \"$pid1\" ] && ! kill -0 $pid1 2>/dev/null" "web1's monitor ($pid1) has ended"

xl block-list web2 >/tmp/disks.txt
cat /tmp/disks.txt
check "grep -q -E '^51728 +0 +[0-9]+ +4 +-1 +-1 +/tmp/web2-data.img' /tmp/disks.txt" "xl block-list shows web2's xvdb (51728) and its image"
console_cmd web2 'echo VDA=$(cat /sys/block/vda/size)' '^VDA='
check "[ \"$CONSOLE_VALUE\" = 32768 ]" "web2's guest sees its 16 MiB disk as vda (got $CONSOLE_VALUE sectors)"

# 4b. xl top, the metrics and xl dmesg: web2 reads its 16 MiB disk, web3
# pings the lab host over its bridge, and both are counted.
ip addr add 10.9.0.1/24 dev xenbr0
console_cmd web2 'dd if=/dev/vda of=/dev/null bs=64k 2>/dev/null; echo READ=$?' '^READ='
check "[ \"$CONSOLE_VALUE\" = 0 ]" "web2 reads its whole disk"
# Its disk is served by the one hospes-blkback hospesd runs for all domains.
blk_query() { hospes-blkback --control $STATE/blkback/control --send '{"execute":"query"}'; }
check "blk_query | grep -q '\"name\":\"dom$(id_of web2)-vda\"'" "hospes-blkback serves web2's disk (dom$(id_of web2)-vda)"
console_cmd web3 'ip addr add 10.9.0.3/24 dev eth0; ip link set eth0 up; ping -c 3 -s 1000 -W 3 10.9.0.1 >/dev/null; echo PING=$?' '^PING='
check "[ \"$CONSOLE_VALUE\" = 0 ]" "web3 pings the lab host over xenbr0 (ping said $CONSOLE_VALUE)"
xl top -b -i 2 -d 1 >/tmp/top.txt
check "[ \$? = 0 ] && [ \$(grep -c '^ *NAME  *STATE  *CPU(sec) CPU(%)  *MEM(k) MEM(%)  MAXMEM(k) MAXMEM(%) VCPUS NETS  *NETTX(k)  *NETRX(k) VBDS  *VBD_OO  *VBD_RD  *VBD_WR  *VBD_RSECT  *VBD_WSECT SSID' /tmp/top.txt) = 2 ]" \
    "xl top -b -i 2 -d 1: two frames with xentop's columns"
cat /tmp/top.txt
xl top -i 2 -d 1 </dev/null >/tmp/top-screen.txt
check "[ \$(grep -c 'xentop - [0-9:]*   Xen ' /tmp/top-screen.txt) = 2 ] && grep -q '^3 domains: ' /tmp/top-screen.txt" \
    "xl top without -b: two screens, each with xentop's summary lines"
# xentop's fields: 5 MEM(k), 9 VCPUS, 10 NETS, 11 NETTX(k), 12 NETRX(k), 13 VBDS, 15 VBD_RD, 17 VBD_RSECT.
top_field() { awk -v n="$1" -v f="$2" '$1 == n { v = $f } END { print v }' /tmp/top.txt; }
check "[ \"$(top_field web2 5)\" = 131072 ] && [ \"$(top_field web2 9)\" = 1 ] && [ \"$(top_field web2 13)\" = 1 ]" \
    "xl top: web2 has 131072 KiB, 1 vCPU, 1 disk"
check "[ \"$(top_field web2 17)\" -ge 32768 ] && [ \"$(top_field web2 15)\" -ge 1 ]" \
    "xl top: web2 read at least its 32768 sectors ($(top_field web2 15) requests, $(top_field web2 17) sectors)"
check "[ \"$(top_field web3 10)\" = 1 ] && [ \"$(top_field web3 11)\" -ge 3 ] && [ \"$(top_field web3 12)\" -ge 3 ]" \
    "xl top: web3's card sent and received the pings ($(top_field web3 11) KiB out, $(top_field web3 12) KiB in)"
# web3's vif has rate=100KB/s: streaming to the lab host, it sends at
# that rate (counted by its port in the hospes-netback hospesd runs for
# xenbr0), and xl top's NETTX(k/s) says so.
nb_query() { hospes-netback --control $STATE/netback-xenbr0/control --send '{"execute":"query"}'; }
# port_field PORT KEY: a number from the port's entry (keys come sorted,
# and only "drops" nests, before them).
port_field() { nb_query | tr '{' '\n' | grep "\"name\":\"$1\"" | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p"; }
check "nb_query | tr '{' '\n' | grep '\"name\":\"dom$(id_of web3)-0\"' | grep -q '\"ips\":\[\"10.9.0.3\"\].*\"mac\":\"00:16:3e:00:00:03\"'" \
    "web3's card is port dom$(id_of web3)-0 of hospes-netback-xenbr0, with its MAC and ip= as the only address it may use"
check "[ -n \"\$(ls /sys/class/net/xenbr0/brif)\" ]" "hospes-netback-xenbr0's uplink is a port of xenbr0 ($(ls /sys/class/net/xenbr0/brif))"
console_cmd web3 'nc -l -p 5001 -e cat /dev/zero & sleep 1; echo SERVE=ok' '^SERVE='
nc 10.9.0.3 5001 </dev/null >/dev/null &
STREAM=$!
sleep 3
# Each count's time is the middle of its query (a query takes a while on a
# busy lab: one that took a second longer than the other counted 11 %
# too many bytes per second over a fixed 10 s).
PORT3="dom$(id_of web3)-0"
t0=$(now_ms); b0=$(port_field "$PORT3" in_bytes); t0=$(((t0 + $(now_ms)) / 2))
sleep 10
t1=$(now_ms); b1=$(port_field "$PORT3" in_bytes); t1=$(((t1 + $(now_ms)) / 2))
xl top -b -i 2 -d 2 >/tmp/top2.txt
kill $STREAM
RATE=$(((b1 - b0) * 1000 / (t1 - t0)))
echo "lab-test: web3 with rate=100KB/s sent $RATE bytes/s over $((t1 - t0)) ms"
check "[ $RATE -ge 90000 ] && [ $RATE -le 110000 ]" "vif rate=100KB/s holds within 10 % over 10 s (got $RATE bytes/s)"
web3_rate=$(awk '$1 == "web3" { v = $20 } END { print int(v) }' /tmp/top2.txt)
check "[ $web3_rate -ge 85 ] && [ $web3_rate -le 110 ]" "xl top: web3's NETTX(k/s) is the cap's 98 (got $web3_rate)"
wget -q -O /tmp/metrics.txt http://127.0.0.1:9101/metrics
check "[ \$? = 0 ] && grep -q '^# TYPE hospes_block_bytes_total counter' /tmp/metrics.txt" "hospesd serves Prometheus metrics"
[ -s /tmp/metrics.txt ] || tail -n 5 /tmp/hospesd.log
read_bytes=$(sed -n 's/^hospes_block_bytes_total{domain="web2",id="[0-9]*",device="xvdb",op="read"} \([0-9]*\)$/\1/p' /tmp/metrics.txt)
check "[ \"\${read_bytes:-0}\" -ge 16777216 ]" "metrics: web2's xvdb read $read_bytes bytes"
sent=$(sed -n 's/^hospes_network_bytes_total{domain="web3",id="[0-9]*",device="vif[0-9.]*",direction="tx"} \([0-9]*\)$/\1/p' /tmp/metrics.txt)
check "[ \"\${sent:-0}\" -ge 3000 ]" "metrics: web3's vif sent $sent bytes"
check "xl dmesg | grep -q '(web1) created'" "xl dmesg shows hospesd's messages"
xl dmesg -c >/dev/null
check "[ -z \"\$(xl dmesg)\" ]" "xl dmesg -c clears them"

# 5. reboot with on_reboot=restart: a new boot, the same domain.
id2=$(id_of web2)
xl reboot web2
check "booted web2 2" "xl reboot web2: it boots again"
check "[ \"\$(id_of web2)\" = $id2 ]" "the same domain (id $id2)"

# 5b. The block back-end killed: hospesd starts it again, it serves web2's
# disk again, and web2's writes reach the image through it.
blkback_pid() { sed -n 's/.*"pid":\([0-9]*\).*/\1/p' $STATE/blkback/hospes-blkback.json; }
old_blkback=$(blkback_pid)
kill -9 "$old_blkback"
i=0
while { [ "$(blkback_pid)" = "$old_blkback" ] || ! blk_query | grep -q "dom$id2-vda"; } && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
check "[ \"\$(blkback_pid)\" != $old_blkback ] && blk_query | grep -q '\"name\":\"dom$id2-vda\"'" \
    "hospes-blkback killed ($old_blkback): hospesd started it again ($(blkback_pid)) with web2's disk"
console_cmd web2 'dd if=/dev/urandom of=/dev/vda bs=4k count=16 conv=fsync 2>/dev/null; echo WROTE=$(dd if=/dev/vda bs=4k count=16 2>/dev/null | md5sum | cut -c1-32)' '^WROTE='
check "[ \"$CONSOLE_VALUE\" = \"\$(dd if=/tmp/web2-data.img bs=4k count=16 2>/dev/null | md5sum | cut -c1-32)\" ]" \
    "web2's write reaches its image through the new back-end (md5 $CONSOLE_VALUE)"
wget -q -O /tmp/metrics2.txt http://127.0.0.1:9101/metrics
check "grep -q -x 'hospes_backend_restarts_total{backend=\"hospes-blkback\",level=\"process\"} 1' /tmp/metrics2.txt" \
    "metrics: hospes-blkback was started again once"

# 6. A panic with on_crash=preserve.
console_cmd web2 'echo c >/proc/sysrq-trigger' 'Kernel panic'
i=0
while ! xl list web2 | grep -q -- '---sc-' && [ $i -lt 100 ]; do sleep 0.2; i=$((i + 1)); done
check "xl list web2 | grep -q -E '^web2 .* ---sc- '" "after a panic web2 is preserved, crashed (---sc-)"
check "! blk_query | grep -q 'dom$id2-vda'" "its disk is no longer served (its monitor ended)"
xl destroy web2
check "[ $? = 0 ] && ! xl list | grep -q '^web2 '" "xl destroy removes the preserved web2"

# 7. hospesd killed and started again: web3 is re-adopted.
pid3=$(monitors)
kill -9 $HOSPESD
wait $HOSPESD 2>/dev/null
sleep 1
check "[ -n \"$pid3\" ] && [ \"\$(monitors)\" = \"$pid3\" ]" "web3's monitor ($pid3) outlives hospesd"
rm -f $HOSPESD_SOCKET
start_hospesd --metrics 127.0.0.1:9101
check "xl list | grep -q -E '^web3 +[0-9]+ +96 +1 '" "a new hospesd lists web3"
console_cmd web3 'echo READOPTED=$((40+2))' '^READOPTED='
check "[ \"$CONSOLE_VALUE\" = 42 ]" "xl console works on the re-adopted web3"
check "nb_query | grep -q '\"name\":\"dom$(id_of web3)-0\"'" "the re-adopted hospes-netback-xenbr0 still serves web3's card"
xl network-list web3 >/tmp/nics.txt
cat /tmp/nics.txt
check "grep -q -E '^0 +0 +00:16:3e:00:00:03 +0 +4 ' /tmp/nics.txt && grep -q 'hospes-netback-xenbr0/dom$(id_of web3)-0' /tmp/nics.txt" \
    "xl network-list shows web3's card, its MAC and its back-end port"
xl vcpu-list web3 >/tmp/vcpus.txt
cat /tmp/vcpus.txt
check "grep -q -E '^web3 +[0-9]+ +0 +0 +(r--|-b-) +[0-9.]+  all / all\$' /tmp/vcpus.txt" "xl vcpu-list shows web3's vCPU 0 and its affinity"
check "xl vcpu-pin web3 0 0" "xl vcpu-pin web3 0 0"
out=$(xl vcpu-pin web3 0 3 2>&1)
check "[ $? = 1 ] && echo \"\$out\" | grep -q 'this host has CPUs 0 to 0'" "pinning to a CPU the host lacks is one error (said: $out)"

# 8. destroy leaves nothing behind.
id3=$(id_of web3)
xl destroy web3
check "[ -z \"\$(monitors)\" ]" "no monitor process is left"
check "! nb_query | grep -q '\"name\":\"dom$id3-0\"'" "web3's port is gone from hospes-netback-xenbr0"
check "[ -z \"\$(find $STATE /run/hospes -type s ! -path $HOSPESD_SOCKET ! -name control ! -name manage)\" ]" \
    "no socket is left but hospesd's own and the back-ends' control and manage"
check "[ \$(xl list | wc -l) = 2 ]" "xl list: Domain-0 alone"

# 9. CPU weights and a cap.
domain_file cpu1 96 1 'cpu_weight = 256'
domain_file cpu2 96 1 'cpu_weight = 512'
xl create /tmp/cfg/cpu1.cfg && xl create /tmp/cfg/cpu2.cfg
check "booted cpu1 1 && booted cpu2 1" "two domains with weights 256 and 512 boot"
for d in cpu1 cpu2; do console_cmd $d 'while :; do :; done & echo SPIN=$((40+2))' '^SPIN='; done
ticks() { awk '{ print $14 + $15 }' "/proc/$(monitor_of "$1")/stat"; }
p1=$(pid_of cpu1) p2=$(pid_of cpu2)
sleep 3
a0=$(ticks "$p1") b0=$(ticks "$p2")
sleep 20
a1=$(ticks "$p1") b1=$(ticks "$p2")
RATIO=$(((b1 - b0) * 100 / (a1 - a0 + (a1 == a0))))
echo "lab-test: CPU ticks in 20 s: cpu1 (256) $((a1 - a0)), cpu2 (512) $((b1 - b0)): 1:$((RATIO / 100)).$((RATIO % 100))"
check "[ $RATIO -ge 180 ] && [ $RATIO -le 220 ]" "weights 256:512 give CPU time 1:2 within 10 % (got 1:$((RATIO / 100)).$((RATIO % 100)))"
check "xl sched-credit -d cpu2 | grep -q -E '^cpu2 +[0-9]+ +512 +0\$'" "xl sched-credit shows cpu2's weight 512"
xl destroy cpu2
check "xl sched-credit -d cpu1 -c 50" "xl sched-credit -d cpu1 -c 50"
sleep 3
a0=$(ticks "$p1") u0=$(lab_uptime)
sleep 20
a1=$(ticks "$p1") u1=$(lab_uptime)
PERCENT=$(awk -v t=$((a1 - a0)) -v hz=100 -v s="$(echo "$u1 $u0" | awk '{ print $1 - $2 }')" 'BEGIN { printf "%d", t / hz / s * 100 }')
echo "lab-test: cpu1 capped at 50: $PERCENT % of a CPU over 20 s"
check "[ $PERCENT -ge 45 ] && [ $PERCENT -le 55 ]" "a cap of 50 holds within 10 % (got $PERCENT %)"
check "xl sched-credit -d cpu1 | grep -q -E '^cpu1 +[0-9]+ +256 +50\$'" "xl sched-credit shows cpu1's cap 50"
out=$(xl sched-credit -d cpu1 -c 500 2>&1)
check "[ $? = 1 ] && echo \"\$out\" | grep -q 'the cap is 0'" "a cap above the domain's vCPUs is one error (said: $out)"
xl destroy cpu1
check "[ -z \"\$(ls /sys/fs/cgroup/hospes | grep domain-)\" ]" "no domain's cgroup is left"
kill -TERM $HOSPESD
wait $HOSPESD
# The back-ends outlive hospesd, as the monitors do.
kill -TERM "$(blkback_pid)" "$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p' $STATE/netback-xenbr0/hospes-netback-xenbr0.json)"
echo "lab-test: hospesd's log:"
cat /tmp/hospesd.log
finish
