# lib.sh: helpers for in-lab test scripts (sourced as /lab/lib.sh).
# shellcheck shell=dash
#
# Runs under the lab host's busybox sh (not bash). tests/lab/lab-run.sh packs
# this file next to the test script, so changing it needs no lab rebuild.
#
# A guest is driven through its serial console: the monitor's stdin is a
# fifo the test writes commands into, its stdout+stderr go to /tmp/NAME.out.
# Commands are sent one at a time, each only after the previous one's output
# has appeared, so nothing is typed before the guest's shell is there to read
# it (a UART driver being set up may drop characters that arrive early).
#
# Markers: the guest's tty echoes every command line, so the patterns waited
# for must not match the echoed command itself. Print values as
# `echo KEY=$(cmd)` and match '^KEY=<value>' (the echo shows "KEY=$(..."), or
# compute a marker in the guest (`echo DONE-$((40+2))`, wait for DONE-42).
#
# A guest that stops answering (a wait times out) or whose monitor exits
# while the test waits for it is *lost*: that is one failure, reported once
# ("lab-test: guest NAME lost: ..."), the monitor is stopped, its last
# console lines are shown, and the test ends there: nothing after it could
# pass, and a monitor left running would hold its disks and taps.
#
# LAB_MONITOR (from lab-run.sh --env; default hospes) chooses the monitor
# that guest_start runs: `hospes run ARGS`, or QEMU's microvm machine with
# the same devices (qemu_args below), so a workload can be run under both.
#
#   guest_start NAME [hospes run args...]   start the guest (jailed: hospes run --jail)
#   guest_spawn NAME COMMAND...             start a guest under any monitor
#   guest_wait PATTERN [TIMEOUT]            wait for an ERE in the output
#   guest_send LINE                         type a line on the console
#   guest_cmd LINE PATTERN [TIMEOUT]        both of the above
#   guest_value KEY                         value of the last "KEY=..." line
#   guest_boot [TIMEOUT] [MARKER]           wait for user space and the prompt
#   guest_finish [TIMEOUT]                  wait for the monitor to exit
#                                           (killing it on timeout), print its
#                                           console; sets GUEST_STATUS
#   is_hospes                               true when the monitor is hospes
#   pass MSG / fail MSG / check COND MSG    report results
#   finish                                  summary; exit status for the lab

# shellcheck disable=SC1091
[ -f /lab/env ] && . /lab/env
LAB_MONITOR=${LAB_MONITOR:-hospes}

# LAB_TRACE=1: the lab host's KVM traces its exits and the exceptions it
# injects, and a lost guest's report ends with the last 300 events (KVM on
# AMD resets a vCPU that triple-faulted, so this is the only record of what
# led to the fault). It slows the lab a little.
TRACING=/sys/kernel/tracing
if [ -n "${LAB_TRACE:-}" ]; then
    mount -t tracefs nodev $TRACING 2>/dev/null
    echo 8192 >$TRACING/buffer_size_kb
    for event in kvm_exit kvm_inj_exception kvm_nested_vmexit kvm_pio kvm_mmio kvm_msr kvm_cr kvm_inj_virq; do
        echo 1 >$TRACING/events/kvm/$event/enable 2>/dev/null
    done
    echo 1 >$TRACING/tracing_on
fi
# Guest RAM is a memfd (shared memory), which gets transparent huge pages
# only where shmem_enabled allows it; hospes asks for them (MADV_HUGEPAGE),
# so "advise" gives guests the huge pages anonymous memory had.
# LAB_SHMEM_THP sets another mode (for experiments: the lab host's hangs
# came with "never" as well, docs/testing.md).
echo "${LAB_SHMEM_THP:-advise}" >/sys/kernel/mm/transparent_hugepage/shmem_enabled 2>/dev/null
[ -n "${LAB_SHMEM_THP:-}" ] && echo "lab-test: shmem huge pages: $(cat /sys/kernel/mm/transparent_hugepage/shmem_enabled)"
# LAB_THP: the lab host's transparent huge page mode (always, madvise or
# never) for the guests' memory.
if [ -n "${LAB_THP:-}" ]; then
    echo "$LAB_THP" >/sys/kernel/mm/transparent_hugepage/enabled
    echo "lab-test: transparent huge pages: $(cat /sys/kernel/mm/transparent_hugepage/enabled)"
fi
LAB_TEST_NAME=${LAB_TEST_NAME:-$(basename "$0" .sh)}
CHECKS_PASSED=0
CHECKS_FAILED=0
GUEST_PID=
GUEST_STATUS=

pass() { echo "PASS: $*"; CHECKS_PASSED=$((CHECKS_PASSED + 1)); }
fail() { echo "FAIL: $*"; CHECKS_FAILED=$((CHECKS_FAILED + 1)); }

# check COMMAND... -- MESSAGE is clumsy in sh; instead: check "TEST-EXPR" MSG
# evaluates TEST-EXPR with eval.
check() {
    if eval "$1"; then pass "$2"; else fail "$2"; fi
}

now() { date +%s; }
# now_ms: milliseconds on a clock, busybox date with nanoseconds when this
# busybox has them, else /proc/uptime (10 ms steps; read without a fork);
# CLOCK says which.
if date +%s%N 2>/dev/null | grep -q -E '^[0-9]{19}$'; then
    CLOCK='date +%s%N (1 ns steps)'
    now_ms() { echo $(($(date +%s%N) / 1000000)); }
else
    CLOCK='/proc/uptime (10 ms steps)'
    now_ms() {
        local up rest
        read -r up rest </proc/uptime
        # "123.45" -> 12345 centiseconds (no arithmetic on "05": octal).
        echo $((${up%.*}${up#*.} * 10))
    }
fi
# median: the median of the numbers on stdin ("-" for none).
median() {
    sort -n | awk '{ v[NR] = $1 } END {
        if (NR == 0) print "-"; else print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

# Console output without carriage returns, for matching.
guest_text() { tr -d '\r' <"$GUEST_OUT"; }

guest_start() {
    local name=$1
    shift
    if is_hospes; then
        # Jailed, as hospesd runs every monitor (LAB_JAIL=0: not).
        if [ "${LAB_JAIL:-1}" = 1 ]; then
            guest_spawn "$name" hospes run --jail "$@"
        else
            guest_spawn "$name" hospes run "$@"
        fi
    else
        qemu_args "$@"
        # shellcheck disable=SC2086  # QEMU_ARGS is a list of words
        guest_spawn "$name" qemu-system-x86_64 $QEMU_ARGS -append "$QEMU_CMDLINE"
    fi
}

is_hospes() { [ "$LAB_MONITOR" = hospes ]; }

# qemu_args [hospes run args...]: the QEMU microvm command line (QEMU_ARGS,
# QEMU_CMDLINE) with the devices those arguments give hospes: virtio-rng
# first, then disks, cards and the console, all on virtio-mmio, and the
# same default kernel command line. A tap card's tap is brought up, a
# bridge card's added to its bridge, by an ifup script, as hospes does.
qemu_args() {
    local vcpus=1 memory=512M kernel=/guest/vmlinuz initrd=/guest/initramfs.cpio.gz
    local cmdline='' root='' devices='' console=serial n=0 spec path opts mac shared_memory=
    while [ $# -gt 0 ]; do
        case $1 in
            -v) shift; continue ;;
            --vcpus) vcpus=$2 ;;
            --memory) memory=$2 ;;
            --kernel) kernel=$2 ;;
            --initrd) initrd=$2 ;;
            --cmdline) cmdline=$2 ;;
            --root) root=$2 ;;
            --console) console=$2 ;;
            --disk)
                n=$((n + 1))
                case $2 in
                    vhost-user=*)
                        # QEMU's vhost-user front-end needs guest memory it can share.
                        # Its virtio-mmio offers the driver 1024 entries whatever the
                        # device's queue-size; the same size keeps the inflight region
                        # in use.
                        devices="$devices -chardev socket,id=c$n,path=${2#vhost-user=} -device vhost-user-blk,chardev=c$n,queue-size=1024"
                        shared_memory=1
                        shift 2
                        continue
                        ;;
                esac
                path=${2%%,*}
                # hospes: io_uring, the page cache unless ",direct", discard.
                opts=format=raw,if=none,discard=unmap,aio=io_uring
                case ,$2, in *,ro,*) opts=$opts,readonly=on ;; esac
                case ,$2, in *,direct,*) opts=$opts,cache=none ;; esac
                devices="$devices -drive id=d$n,file=$path,$opts -device virtio-blk-device,drive=d$n,serial=${path##*/}"
                ;;
            --net)
                n=$((n + 1))
                spec=$2
                mac=$(echo "$spec" | sed -n 's/.*mac=\([0-9a-f:]*\).*/\1/p')
                case $spec in
                    tap=*)
                        spec=${spec#tap=}
                        printf '#!/bin/sh\nip link set "$1" up\n' >/tmp/qemu-ifup
                        chmod 755 /tmp/qemu-ifup
                        devices="$devices -netdev tap,id=n$n,ifname=${spec%%,*},script=/tmp/qemu-ifup,downscript=no"
                        ;;
                    bridge=*)
                        spec=${spec#bridge=}
                        printf '#!/bin/sh\nip link set "$1" up && brctl addif %s "$1"\n' "${spec%%,*}" >/tmp/qemu-ifup-$n
                        chmod 755 /tmp/qemu-ifup-$n
                        devices="$devices -netdev tap,id=n$n,script=/tmp/qemu-ifup-$n,downscript=no"
                        ;;
                esac
                devices="$devices -device virtio-net-device,netdev=n$n${mac:+,mac=$mac}"
                ;;
            *) echo "lab-test: qemu_args: no QEMU equivalent for $1"; return 1 ;;
        esac
        shift 2
    done
    # microvm has no i8042 to reset through (reboot=k would fall back to a
    # real-mode restart through the firmware, which boots the guest again):
    # the guest resets with a triple fault, which -no-reboot turns into exit.
    if [ "$console" = virtio ]; then
        devices="$devices -serial none -device virtio-serial-device -chardev stdio,id=con0 -device virtconsole,chardev=con0"
        QEMU_CMDLINE=${cmdline:-console=hvc0 reboot=t panic=1 pci=off i8042.noaux i8042.nomux}
    else
        devices="$devices -serial stdio"
        QEMU_CMDLINE=${cmdline:-console=ttyS0 reboot=t panic=1 pci=off i8042.noaux i8042.nomux}
    fi
    [ -n "$root" ] && QEMU_CMDLINE="$QEMU_CMDLINE root=$root"
    QEMU_ARGS="-M microvm -enable-kvm -cpu host -smp $vcpus -m $memory -nodefaults -no-user-config -no-reboot"
    # With a vhost-user disk the firmware is qboot: microvm's default,
    # SeaBIOS, reads virtio-mmio disks itself with buffers in its ROM area,
    # which QEMU does not share with back-ends (only RAM); the back-end
    # refuses the request and SeaBIOS waits for it forever. qboot loads the
    # kernel without touching disks.
    [ -n "$shared_memory" ] &&
        QEMU_ARGS="$QEMU_ARGS -object memory-backend-memfd,id=ram,size=$memory,share=on -machine memory-backend=ram -bios /qemu-fw/qboot.rom"
    QEMU_ARGS="$QEMU_ARGS -display none -monitor none -L /qemu-fw -kernel $kernel -initrd $initrd"
    QEMU_ARGS="$QEMU_ARGS -device virtio-rng-device$devices"
}

# guest_spawn NAME COMMAND...: as guest_start, for any monitor command line
# (QEMU as a peer in benchmarks).
guest_spawn() {
    GUEST_NAME=$1
    shift
    GUEST_OUT=/tmp/$GUEST_NAME.out
    GUEST_FIFO=/tmp/$GUEST_NAME.in
    GUEST_STATUS_FILE=/tmp/$GUEST_NAME.status
    GUEST_PID_FILE=/tmp/$GUEST_NAME.pid
    rm -f "$GUEST_OUT" "$GUEST_FIFO" "$GUEST_STATUS_FILE" "$GUEST_PID_FILE"
    mkfifo "$GUEST_FIFO"
    : >"$GUEST_OUT"
    # Hold the fifo open read-write on fd GUEST_FD (9; another for a second
    # guest at once, see guest_use): opening it never blocks, and hospes
    # never sees end-of-file on its console input while the test runs.
    GUEST_FD=${GUEST_FD:-9}
    echo "$GUEST_FD" >"/tmp/$GUEST_NAME.fd"
    eval "exec $GUEST_FD<>\"\$GUEST_FIFO\""
    echo "lab-test: $*"
    GUEST_T0=$(now)
    # A subshell waits for hospes and records its exit status in a file: a
    # finished child stays a zombie (and `kill -0` keeps succeeding) until the
    # shell reaps it, so polling the pid alone would not notice the exit.
    (
        # GUEST_STDERR: the monitor's messages apart from the console.
        if [ -n "${GUEST_STDERR:-}" ]; then
            "$@" <"$GUEST_FIFO" >"$GUEST_OUT" 2>"$GUEST_STDERR" 7>&- 8>&- 9>&- &
        else
            "$@" <"$GUEST_FIFO" >"$GUEST_OUT" 2>&1 7>&- 8>&- 9>&- &
        fi
        echo $! >"$GUEST_PID_FILE"
        wait $!
        echo $? >"$GUEST_STATUS_FILE"
    ) 7>&- 8>&- 9>&- &
    while [ ! -s "$GUEST_PID_FILE" ]; do sleep 0.1; done
    GUEST_PID=$(cat "$GUEST_PID_FILE")
}

guest_exited() { [ -s "$GUEST_STATUS_FILE" ]; }

# Several guests at once: each guest_start makes its guest the current one
# (what guest_send, guest_wait and the rest act on); start the second with
# GUEST_FD=8 (the third 7), and guest_use NAME makes a running one current.
guest_use() {
    GUEST_NAME=$1
    GUEST_OUT=/tmp/$1.out
    GUEST_FIFO=/tmp/$1.in
    GUEST_STATUS_FILE=/tmp/$1.status
    GUEST_PID_FILE=/tmp/$1.pid
    GUEST_PID=$(cat "$GUEST_PID_FILE")
    GUEST_FD=$(cat "/tmp/$1.fd")
    guest_exited && GUEST_PID=
}

# guest_wait PATTERN [TIMEOUT]: 0 once an output line matches the extended
# regular expression, 1 on timeout or when hospes exits first.
guest_wait() {
    local pattern=$1 timeout=${2:-60} deadline
    deadline=$(($(now) + timeout))
    while :; do
        if guest_text | grep -q -E -- "$pattern"; then return 0; fi
        if guest_exited; then
            # One last look: the line may have been written just before exit.
            guest_text | grep -q -E -- "$pattern" && return 0
            # QEMU ends a guest's triple fault as a reset, silently.
            if ! is_hospes && ! guest_text | grep -q -E 'reboot: (Restarting system|Power down)'; then
                guest_lost "triple fault: QEMU reset the guest, which asked for no reset, while the test waited for /$pattern/"
            fi
            guest_lost "the monitor exited with status $(cat "$GUEST_STATUS_FILE") while the test waited for /$pattern/"
        fi
        if [ "$(now)" -ge "$deadline" ]; then
            guest_lost "no answer in ${timeout}s (waiting for /$pattern/)"
        fi
        sleep 0.2
    done
}

guest_send() { printf '%s\n' "$1" >&"$GUEST_FD"; }

guest_cmd() {
    guest_send "$1"
    guest_wait "$2" "${3:-60}"
}

# guest_value KEY: the text after "KEY=" on the last line starting with it.
guest_value() {
    guest_text | grep -E "^$1=" | tail -n 1 | cut -d= -f2-
}

# Boot to the prompt: user space marker (default: the initramfs's; pass
# 'hospes-rootfs: user space reached' for the root disk), then the shell's
# prompt. A guest that never gets there is lost (the test ends).
guest_boot() {
    guest_wait "${2:-hospes-guest: user space reached}" "${1:-300}"
    pass "user space reached after $(($(now) - GUEST_T0)) s"
    guest_wait 'hospes# ' 60
}

# guest_lost REASON: the guest failed; one failure, the monitor stopped, its
# last console lines shown, and the test ends.
guest_lost() {
    echo "lab-test: guest $GUEST_NAME lost: $1"
    fail "guest $GUEST_NAME: $1"
    guest_exited || guest_activity
    guest_stop
    guest_tail
    kvm_trace_tail
    finish
}

# kvm_trace_tail: with LAB_TRACE=1, the lab KVM's last 300 trace events
# (the trace goes on, for a test that carries on).
kvm_trace_tail() {
    [ -n "${LAB_TRACE:-}" ] || return 0
    echo "----- the lab host's last 300 KVM trace events -----"
    tail -n 300 $TRACING/trace
    echo "----- end of the KVM trace -----"
}

# guest_activity: what a guest that stopped answering still does, over 2 s:
# the CPU time of the monitor's threads and the lab KVM's counters (all VMs;
# one runs). A halted, idle guest (halt exits, few others) waits for an
# interrupt that never came; a busy one loops.
guest_activity() {
    local kvm=/sys/kernel/debug/kvm c0 c1 t0 t1
    mount -t debugfs none /sys/kernel/debug 2>/dev/null
    snapshot() {
        cat $kvm/exits $kvm/halt_exits $kvm/io_exits $kvm/mmio_exits $kvm/irq_injections 2>/dev/null | tr '\n' ' '
    }
    # utime + stime of every thread, in ticks: stat's fields 14 and 15,
    # counted after the name in parentheses (which may hold spaces).
    ticks() {
        cat /proc/"$GUEST_PID"/task/*/stat 2>/dev/null | sed 's/.*) //' | awk '{ t += $12 + $13 } END { print t + 0 }'
    }
    c0=$(snapshot); t0=$(ticks)
    sleep 2
    c1=$(snapshot); t1=$(ticks)
    echo "$c0 $c1" | awk -v cpu=$((t1 - t0)) '{
        printf "lab-test: in 2 s the monitor used %d ticks of CPU; KVM exits +%d (halt +%d, io +%d, mmio +%d), interrupts injected +%d\n",
            cpu, $6 - $1, $7 - $2, $8 - $3, $9 - $4, $10 - $5 }'
}

# guest_tail: the last 60 lines of the console (as guest_dump).
guest_tail() {
    echo "----- last 60 lines of the console of $GUEST_NAME -----"
    guest_text | tail -n 60 | sed "s/$(printf '\033')/^[/g"
    echo "----- end of the console of $GUEST_NAME -----"
}

# guest_stop: end a monitor that is still running (TERM, then KILL) and
# reap it.
guest_stop() {
    local i=0
    [ -n "$GUEST_PID" ] || return 0
    if ! guest_exited; then
        kill "$GUEST_PID" 2>/dev/null
        while ! guest_exited && [ $i -lt 25 ]; do sleep 0.2; i=$((i + 1)); done
        guest_exited || kill -9 "$GUEST_PID" 2>/dev/null
        i=0
        while ! guest_exited && [ $i -lt 150 ]; do sleep 0.2; i=$((i + 1)); done
        if ! guest_exited; then
            # A process that SIGKILL cannot end is stuck in the lab host's
            # kernel: say where, rather than wait for ever.
            echo "lab-test: $GUEST_NAME did not end 30 s after SIGKILL; its threads in the lab kernel:"
            for t in /proc/"$GUEST_PID"/task/*; do
                echo "  thread ${t##*/} $(grep '^State' "$t/status" 2>/dev/null)"
                sed 's/^/    /' "$t/stack" 2>/dev/null
            done
            GUEST_PID=
            eval "exec $GUEST_FD>&-"
            return 1
        fi
        echo "lab-test: $GUEST_NAME stopped (monitor exit status $(cat "$GUEST_STATUS_FILE"))"
    fi
    GUEST_PID=
    eval "exec $GUEST_FD>&-"
}

guest_finish() {
    local timeout=${1:-120} deadline
    deadline=$(($(now) + timeout))
    while ! guest_exited; do
        if [ "$(now)" -ge "$deadline" ]; then
            echo "lab-test: the monitor is still running after ${timeout}s; stopping it"
            guest_stop
            # Whatever status a killed monitor returned, it did not exit by
            # itself: make every "status is 0" check fail.
            GUEST_STATUS="killed-after-timeout"
            guest_dump
            return
        fi
        sleep 0.2
    done
    GUEST_STATUS=$(cat "$GUEST_STATUS_FILE")
    GUEST_PID=
    eval "exec $GUEST_FD>&-"
    echo "lab-test: the monitor exited with status $GUEST_STATUS after $(($(now) - GUEST_T0)) s"
    guest_dump
}

# Print the guest console into the lab console for diagnosis: carriage
# returns dropped and ESC shown as "^[" so the shell's terminal queries
# (ESC[6n) do not reach whatever terminal shows the lab log.
guest_dump() {
    local esc
    esc=$(printf '\033')
    echo "----- guest console: $GUEST_NAME -----"
    guest_text | sed "s/$esc/^[/g"
    echo "----- end of guest console: $GUEST_NAME -----"
}

# netback_field CONTROL PORT KEY: a number from the query answer of the
# hospes-netback whose control socket is CONTROL (each object in "ports",
# three braces deep, on a line of its own; then PORT's KEY).
netback_field() {
    hospes-netback --control "$1" --send '{"execute":"query"}' | netback_pick "$2" "$3"
}
# netback_pick PORT KEY: the number KEY of port PORT in a query's answer on
# standard input (each port's object whole, its nested "drops" included).
netback_pick() {
    awk '{ for (i = 1; i <= length($0); i++) { c = substr($0, i, 1); if (c == "{") d++; if (d >= 3) b = b c;
           if (c == "}") { if (d == 3) { print b; b = "" } d-- } } }' |
        grep "\"name\":\"$1\"" | grep -o "\"$2\":[0-9]*" | cut -d: -f2
}

# hospesd in the lab (lab.toolstack, lab.jail): its state, socket and the
# helpers that find its domains.
STATE=/var/lib/hospes
export HOSPESD_SOCKET=/run/hospes/hospesd.sock
# start_hospesd [OPTIONS...]: in the background (HOSPESD), once it answers
# (a killed one leaves its socket file behind).
start_hospesd() {
    hospesd "$@" >>/tmp/hospesd.log 2>&1 &
    HOSPESD=$!
    local i=0
    while ! xl list >/dev/null 2>&1 && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
}
id_of() { xl list | awk -v n="$1" '$1 == n { print $2 }'; }
log_of() { echo "$STATE/logs/domain-$(id_of "$1").console.log"; }
# pid_of NAME: the process hospesd started for the domain (the jailer of a
# jailed monitor); monitor_of PID: the monitor itself, the jailer's child.
pid_of() { xl list -l "$1" | sed -n 's/.*"pid": \([0-9]*\).*/\1/p'; }
monitor_of() {
    local child
    child=$(cat "/proc/$1/task/$1/children" 2>/dev/null | cut -d' ' -f1)
    echo "${child:-$1}"
}
# booted NAME COUNT: waits until the domain's console shows its COUNT-th boot.
booted() {
    [ -n "$(id_of "$1")" ] || return 1
    local i=0
    while [ "$(grep -c 'hospes-guest: user space reached' "$(log_of "$1")" 2>/dev/null)" -lt "$2" ] && [ $i -lt 600 ]; do
        sleep 0.5
        i=$((i + 1))
    done
    [ $i -lt 600 ]
}

# console_cmd NAME COMMAND MARKER: types COMMAND on the domain's console
# through `xl console`, waits for MARKER in what comes back, detaches.
console_cmd() {
    rm -f /tmp/cin /tmp/cout
    mkfifo /tmp/cin
    xl console "$1" </tmp/cin >/tmp/cout 2>&1 &
    cpid=$!
    exec 9>/tmp/cin
    sleep 0.3
    printf '%s\n' "$2" >&9
    i=0
    while ! tr -d '\r' </tmp/cout | grep -q "$3" && [ $i -lt 300 ]; do sleep 0.2; i=$((i + 1)); done
    printf '\035' >&9
    exec 9>&-
    wait $cpid
    CONSOLE_STATUS=$?
    CONSOLE_VALUE=$(tr -d '\r' </tmp/cout | grep "$3" | tail -n 1 | cut -d= -f2-)
}

finish() {
    if [ -n "$GUEST_PID" ] && ! guest_exited; then
        guest_stop
        guest_tail
    fi
    if [ "$CHECKS_FAILED" -eq 0 ] && [ "$CHECKS_PASSED" -gt 0 ]; then
        echo "RESULT: $LAB_TEST_NAME ok ($CHECKS_PASSED checks)"
        exit 0
    fi
    echo "RESULT: $LAB_TEST_NAME FAILED ($CHECKS_FAILED of $((CHECKS_PASSED + CHECKS_FAILED)) checks)"
    exit 1
}
