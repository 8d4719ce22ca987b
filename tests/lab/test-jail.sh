#!/bin/sh
# shellcheck shell=dash disable=SC1091,SC2016,SC2034  # sourced /lab/lib.sh; guest commands are literal
# In-lab test: every domain's monitor is jailed (hospesd, with its test
# hooks armed: hospesd --test-hooks).
#  1. Seen from outside: a domain's monitor and the blkback and netback
#     workers serving its disk and card each run as a user of their own
#     (not root, not each other's),
#     with no capability (effective, permitted, bounding, ambient),
#     NoNewPrivs, seccomp (mode 2) on every thread, namespaces other than
#     the host's, nothing of the host under their root; the domain's cgroup
#     has memory.max and pids.max.
#  2. The escape drill (vmm/escape_drill.hpp) against a victim domain (a
#     stock Debian guest with a disk) from small domains (the freestanding
#     test guest): each attempt first on a thread without a filter (what the
#     jail alone stops), then on the I/O thread under its filter, in a domain
#     of its own: it fails, or the kernel kills that monitor (SIGSYS) and
#     hospesd reports the domain crashed with that cause. The victim answers
#     on its console throughout and its disk is unchanged.
#  3. Console flood: a jailed guest writes to its console as fast as it can
#     for 60 s; the log on disk stays within its cap (rate and size, one
#     rotated generation) and the lab host stays responsive.
#  4. Destroyed, a domain leaves nothing owned by its user.
LAB_TEST_NAME=jail
. /lab/lib.sh

mount -t cgroup2 none /sys/fs/cgroup 2>/dev/null
ip link set lo up
start_hospesd --test-hooks
check "[ -S $HOSPESD_SOCKET ]" "hospesd serves its socket"
BASE=1879048192  # the jails' users: BASE + the domain's id

mkdir -p /tmp/cfg
truncate -s 16M /tmp/victim.img
dd if=/dev/urandom of=/tmp/victim.img bs=1M count=4 conv=notrunc 2>/dev/null
VICTIM_MD5=$(md5sum /tmp/victim.img | cut -d' ' -f1)
cat >/tmp/cfg/victim.cfg <<'CFG'
name = "victim"
kernel = "/guest/vmlinuz"
ramdisk = "/guest/initramfs.cpio.gz"
memory = 128
vcpus = 1
disk = [ "file:/tmp/victim.img,xvda,r" ]
vif = [ "mac=00:16:3e:00:00:09, bridge=xenbr0" ]
CFG
ip link add xenbr0 type bridge && ip link set xenbr0 up
xl create /tmp/cfg/victim.cfg
check "booted victim 1" "the victim domain boots"
VID=$(id_of victim)

# 1. Seen from outside.
status_field() { awk -v k="$2:" '$1 == k { $1 = ""; print substr($0, 2) }' "/proc/$1/status"; }
jail_report() {  # PID WHAT EXPECTED_UID: checks on the process and each of its threads
    local pid=$1 what=$2 uid=$3 t bad=""
    check "[ \"\$(status_field $pid Uid | tr -s '\t ' ' ')\" = \"$uid $uid $uid $uid\" ]" \
        "$what: runs as user $uid (Uid: $(status_field $pid Uid))"
    for k in CapEff CapPrm CapBnd CapAmb CapInh; do
        [ "$(status_field $pid $k)" = 0000000000000000 ] || bad="$bad $k=$(status_field $pid $k)"
    done
    check "[ -z \"$bad\" ]" "$what: no capability in any set${bad:+ (got$bad)}"
    check "[ \"\$(status_field $pid NoNewPrivs)\" = 1 ]" "$what: NoNewPrivs 1"
    bad=""
    # (The escape drill's own unfiltered thread, there only with the test
    # hooks, is named drill-nofilter.)
    for t in /proc/$pid/task/*; do
        [ "$(cat $t/comm)" = drill-nofilter ] && continue
        [ "$(awk '$1 == "Seccomp:" { print $2 }' $t/status)" = 2 ] || bad="$bad ${t##*/}($(cat $t/comm))"
    done
    check "[ -z \"$bad\" ]" "$what: seccomp mode 2 on all $(ls /proc/$pid/task | wc -l) threads but the drill's${bad:+ (not on$bad)}"
    bad=""
    for n in mnt net pid ipc uts; do
        [ "$(readlink /proc/$pid/ns/$n)" != "$(readlink /proc/1/ns/$n)" ] || bad="$bad $n"
    done
    check "[ -z \"$bad\" ]" "$what: its own mount, net, pid, ipc and uts namespaces${bad:+ (the host's:$bad)}"
    check "[ -z \"\$(ls /proc/$pid/root | grep -v '^vhost-user-[0-9]*\(\.sock\)\{0,1\}\$')\" ]" \
        "$what: nothing of the host under its root (it holds: $(ls /proc/$pid/root | tr '\n' ' '))"
}
MONITOR=$(monitor_of "$(pid_of victim)")
jail_report "$MONITOR" "the victim's monitor" $((BASE + VID))
# Its jailer (the process hospesd started), once the guest runs: in the
# monitor's jail (its user, mount and network namespaces, empty root), no
# capability, its own filter; the pid namespace is the host's (the
# monitor's is its children's).
JAILER=$(pid_of victim)
J_UID=$(status_field "$JAILER" Uid | tr -s '\t ' ' ')
J_CAPS="$(status_field "$JAILER" CapEff) $(status_field "$JAILER" CapBnd)"
J_MODES="$(status_field "$JAILER" NoNewPrivs)/$(status_field "$JAILER" Seccomp)"
J_NS="$(readlink /proc/"$JAILER"/ns/mnt) $(readlink /proc/"$JAILER"/ns/net)"
M_NS="$(readlink /proc/"$MONITOR"/ns/mnt) $(readlink /proc/"$MONITOR"/ns/net)"
J_ROOT=$(ls /proc/"$JAILER"/root | grep -v '^vhost-user-[0-9]*\(\.sock\)\{0,1\}$' | tr '\n' ' ')
J_USER=$((BASE + VID))
check '[ "$J_UID" = "$J_USER $J_USER $J_USER $J_USER" ]' "the jailer of the victim: runs as the monitor's user (Uid: $J_UID)"
check '[ "$J_CAPS" = "0000000000000000 0000000000000000" ]' "the jailer of the victim: no capability (CapEff, CapBnd: $J_CAPS)"
check '[ "$J_MODES" = 1/2 ]' "the jailer of the victim: NoNewPrivs 1, seccomp mode 2 (got $J_MODES)"
check '[ "$J_NS" = "$M_NS" ]' "the jailer of the victim: in the monitor's mount and network namespaces ($J_NS)"
check '[ -z "$J_ROOT" ]' "the jailer of the victim: nothing of the host under its root (it holds: $J_ROOT)"
GROUP=/sys/fs/cgroup/hospes/domain-$VID
check "[ \"\$(cat $GROUP/memory.max)\" = $(((128 + 64) * 1048576)) ]" \
    "the victim's cgroup: memory.max is its RAM and 64 MiB ($(cat $GROUP/memory.max))"
check "[ \"\$(cat $GROUP/pids.max)\" = 73 ]" "the victim's cgroup: pids.max 73, vCPUs + 72 ($(cat $GROUP/pids.max))"
# hospes-blkback: its supervisor, the worker's waiting parent, the worker.
BLKBACK=$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' $STATE/blkback/hospes-blkback.json)
WORKER=$(monitor_of "$(monitor_of "$BLKBACK")")
jail_report "$WORKER" "the worker of hospes-blkback" $((BASE - 1))
# hospes-netback for xenbr0, the second back-end hospesd started.
NETBACK=$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' $STATE/netback-xenbr0/hospes-netback-xenbr0.json)
jail_report "$(monitor_of "$(monitor_of "$NETBACK")")" "the worker of hospes-netback-xenbr0" $((BASE - 2))

# 2. The escape drill.
cat >/tmp/cfg/drill.cfg <<'CFG'
name = "drill"
kernel = "/lab/test-guest.elf"
memory = 16
vcpus = 1
cmdline = "idle"
on_crash = "preserve"
CFG
VICTIM_PID=$MONITOR
OTHERS="open:/etc/shadow open:/tmp/victim.img write:/tmp/escaped connect:$HOSPESD_SOCKET
connect:$STATE/domains/$VID/control.sock connect:$STATE/domains/$VID/console.sock process_vm_readv:$VICTIM_PID
proc_mem:$VICTIM_PID ptrace:$VICTIM_PID kill:$VICTIM_PID execve:/bin/sh fork: module: io_uring:"
drill() {  # CONTROL ATTEMPT ARG UNFILTERED
    local arg=""
    case $2 in
        process_vm_readv|proc_mem|ptrace|kill) arg=",\"pid\":$3" ;;
        *) [ -n "$3" ] && arg=",\"path\":\"$3\"" ;;
    esac
    timeout 10 hospes control "$1" "{\"execute\":\"escape-drill\",\"attempt\":\"$2\"$arg,\"unfiltered\":$4}" 2>&1
}
# Unfiltered: the jail alone. Only fork (into the same jail) and io_uring
# (a ring that can reach nothing the jail hides) get through: the filters
# stop those.
xl create /tmp/cfg/drill.cfg >/dev/null
DID=$(id_of drill)
for a in $OTHERS; do
    what=${a%%:*} arg=${a#*:}
    out=$(drill $STATE/domains/$DID/control.sock "$what" "$arg" true)
    # (What was said is looked at here, not inside check's eval: it may hold quotes.)
    through=0 refused=0
    echo "$out" | grep -q '"errno":0' && through=1
    echo "$out" | grep -q '"result":-1' && refused=1
    case $what in
        fork|io_uring) check "[ $through = 1 ]" "jail alone: $what gets through, in the jail (said: $out)" ;;
        *) check "[ $refused = 1 ] && [ $through = 0 ]" "jail alone: $what $arg fails (said: $out)" ;;
    esac
done
check "[ ! -e /tmp/escaped ]" "nothing was written on the host"
xl destroy drill
# Filtered: each attempt in a domain of its own.
crashed=0 failed=0
for a in $OTHERS; do
    what=${a%%:*} arg=${a#*:}
    xl create /tmp/cfg/drill.cfg >/dev/null
    DID=$(id_of drill)
    out=$(drill $STATE/domains/$DID/control.sock "$what" "$arg" false)
    sleep 0.5
    state=$(xl list | awk '$1 == "drill" { print $5 }')
    cause=$(xl list -l drill | sed -n 's/.*"cause": "\(.*\)",*$/\1/p')
    if echo "$out" | grep -q '"result":-1'; then
        failed=$((failed + 1))
        check "[ \"$state\" != '---sc-' ]" "filtered: $what $arg fails and the monitor goes on (said: $out)"
    else
        crashed=$((crashed + 1))
        sigsys=0
        echo "$cause" | grep -q SIGSYS && sigsys=1
        check "[ \"$state\" = '---sc-' ] && [ $sigsys = 1 ]" \
            "filtered: $what $arg kills that monitor only; hospesd: crashed, $cause"
    fi
    xl destroy drill
done
echo "lab-test: escape drill under the filters: $failed attempts failed, $crashed killed their monitor"
console_cmd victim 'echo VICTIM=$((40+2))' '^VICTIM='
check "[ \"$CONSOLE_VALUE\" = 42 ]" "the victim still answers on its console (got '$CONSOLE_VALUE')"
check "[ \"\$(md5sum /tmp/victim.img | cut -d' ' -f1)\" = $VICTIM_MD5 ]" "the victim's disk is unchanged"
check "grep -q 'SIGSYS' /tmp/hospesd.log" "hospesd's log says why the drilled monitors crashed"

# 4. Destroyed, nothing is left owned by the domain's user.
xl destroy victim
check "[ -z \"\$(find / -xdev -uid $((BASE + VID)) 2>/dev/null)\" ]" "nothing is owned by the victim's user after destroy"
check "[ ! -d $GROUP ]" "the victim's cgroup is gone"

# 3. Console flood: a jailed monitor by hand, its virtio console into a
# file (its own messages apart).
GUEST_STDERR=/tmp/flood.log guest_start flood --console virtio --memory 128M
guest_boot 300
guest_send 'yes 0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz | head -c 2000000000 &'
t0=$(now_ms)
slow=0 worst=0
for i in 1 2 3 4 5 6; do
    sleep 10
    a=$(now_ms)
    ls /proc >/dev/null
    b=$(now_ms)
    [ $((b - a)) -gt $worst ] && worst=$((b - a))
    [ $((b - a)) -gt 2000 ] && slow=$((slow + 1))
done
t1=$(now_ms)
log1=$(stat -c %s /tmp/flood.out) log2=$(stat -c %s /tmp/flood.out.1 2>/dev/null || echo 0)
size=$((log1 + log2))
echo "lab-test: $((t1 - t0)) ms of flood: console log $log1 and previous generation $log2 bytes; a look at /proc took $worst ms at worst"
# 1 MiB of burst, 64 KiB/s, and the notices; never more than two 16 MiB files.
check "[ $size -le $((1048576 + 65536 * (t1 - t0) / 1000 + 65536)) ] && [ $size -le 33554432 ]" \
    "the console log holds the cap: $size bytes in $(((t1 - t0) / 1000)) s"
# Under the lab's emulated CPU a guest may not write faster than the cap
# (one run: 2.9 MB in 60 s): the drop notice is asked for only when the
# output reached the cap.
allowed=$((1048576 + 65536 * (t1 - t0) / 1000))
if [ $size -ge $((allowed * 9 / 10)) ]; then
    check "cat /tmp/flood.out /tmp/flood.out.1 2>/dev/null | grep -a -q 'bytes of output dropped'" \
        "the log says what the cap dropped"
else
    echo "lab-test: the guest wrote $size bytes, under the cap's $allowed: nothing was dropped"
fi
check "[ $slow = 0 ]" "the lab host stayed responsive ($slow of 6 looks at /proc took over 2 s)"
guest_stop
finish
