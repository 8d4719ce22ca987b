# lib.sh: helpers for in-lab test scripts (sourced as /lab/lib.sh).
# shellcheck shell=dash
#
# Runs under the lab host's busybox sh (not bash). tests/lab/lab-run.sh packs
# this file next to the test script, so changing it needs no lab rebuild.
#
# A guest is driven through its serial console: hospes's stdin is a fifo the
# test writes commands into, its stdout+stderr go to /tmp/NAME.out. Commands
# are sent one at a time, each only after the previous one's output has
# appeared, so nothing is typed before the guest's shell is there to read it
# (a UART driver being set up may drop characters that arrive early).
#
# Markers: the guest's tty echoes every command line, so the patterns waited
# for must not match the echoed command itself. Print values as
# `echo KEY=$(cmd)` and match '^KEY=<value>' (the echo shows "KEY=$(..."), or
# compute a marker in the guest (`echo DONE-$((40+2))`, wait for DONE-42).
#
#   guest_start NAME [hospes run args...]   start the guest
#   guest_spawn NAME COMMAND...             start a guest under any monitor
#   guest_wait PATTERN [TIMEOUT]            wait for an ERE in the output
#   guest_send LINE                         type a line on the console
#   guest_cmd LINE PATTERN [TIMEOUT]        both of the above
#   guest_value KEY                         value of the last "KEY=..." line
#   guest_boot [TIMEOUT] [MARKER]           wait for user space and the prompt
#   guest_finish [TIMEOUT]                  wait for hospes to exit (killing
#                                           it on timeout), print its console;
#                                           sets GUEST_STATUS
#   pass MSG / fail MSG / check COND MSG    report results
#   finish                                  summary; exit status for the lab

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

# Console output without carriage returns, for matching.
guest_text() { tr -d '\r' <"$GUEST_OUT"; }

guest_start() {
    local name=$1
    shift
    guest_spawn "$name" hospes run "$@"
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
    # Hold the fifo open read-write on fd 9: opening it never blocks, and
    # hospes never sees end-of-file on its console input while the test runs.
    exec 9<>"$GUEST_FIFO"
    echo "lab-test: $*"
    GUEST_T0=$(now)
    # A subshell waits for hospes and records its exit status in a file: a
    # finished child stays a zombie (and `kill -0` keeps succeeding) until the
    # shell reaps it, so polling the pid alone would not notice the exit.
    (
        "$@" <"$GUEST_FIFO" >"$GUEST_OUT" 2>&1 9>&- &
        echo $! >"$GUEST_PID_FILE"
        wait $!
        echo $? >"$GUEST_STATUS_FILE"
    ) 9>&- &
    while [ ! -s "$GUEST_PID_FILE" ]; do sleep 0.1; done
    GUEST_PID=$(cat "$GUEST_PID_FILE")
}

guest_exited() { [ -s "$GUEST_STATUS_FILE" ]; }

# guest_wait PATTERN [TIMEOUT]: 0 once an output line matches the extended
# regular expression, 1 on timeout or when hospes exits first.
guest_wait() {
    local pattern=$1 timeout=${2:-60} deadline
    deadline=$(($(now) + timeout))
    while :; do
        if guest_text | grep -q -E -- "$pattern"; then return 0; fi
        if guest_exited; then
            # One last look: the line may have been written just before exit.
            guest_text | grep -q -E -- "$pattern"
            return
        fi
        if [ "$(now)" -ge "$deadline" ]; then
            echo "lab-test: timed out after ${timeout}s waiting for /$pattern/"
            return 1
        fi
        sleep 0.2
    done
}

guest_send() { printf '%s\n' "$1" >&9; }

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
# prompt. Returns 1 (after recording a failure) when the guest never got there.
guest_boot() {
    if guest_wait "${2:-hospes-guest: user space reached}" "${1:-300}"; then
        pass "user space reached after $(($(now) - GUEST_T0)) s"
    else
        fail "user space not reached"
        guest_exited && echo "lab-test: hospes exited with status $(cat "$GUEST_STATUS_FILE")"
        guest_dump
        return 1
    fi
    if guest_wait 'hospes# ' 60; then
        return 0
    fi
    fail "no shell prompt"
    return 1
}

guest_finish() {
    local timeout=${1:-120} deadline
    deadline=$(($(now) + timeout))
    while ! guest_exited; do
        if [ "$(now)" -ge "$deadline" ]; then
            echo "lab-test: hospes still running after ${timeout}s; killing it"
            kill "$GUEST_PID" 2>/dev/null
            sleep 2
            kill -9 "$GUEST_PID" 2>/dev/null
            while ! guest_exited; do sleep 0.2; done
            exec 9>&-
            # Whatever status a killed hospes returned, it did not exit by
            # itself: make every "status is 0" check fail.
            GUEST_STATUS="killed-after-timeout"
            echo "lab-test: hospes killed (exit status $(cat "$GUEST_STATUS_FILE")) after $(($(now) - GUEST_T0)) s"
            guest_dump
            return
        fi
        sleep 0.2
    done
    GUEST_STATUS=$(cat "$GUEST_STATUS_FILE")
    exec 9>&-
    echo "lab-test: hospes exited with status $GUEST_STATUS after $(($(now) - GUEST_T0)) s"
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

# Stop a guest that is still running (after a failed step) and show its
# console.
guest_abort() {
    if [ -n "$GUEST_PID" ] && ! guest_exited; then
        guest_finish 1
    fi
}

finish() {
    guest_abort
    if [ "$CHECKS_FAILED" -eq 0 ] && [ "$CHECKS_PASSED" -gt 0 ]; then
        echo "RESULT: $LAB_TEST_NAME ok ($CHECKS_PASSED checks)"
        exit 0
    fi
    echo "RESULT: $LAB_TEST_NAME FAILED ($CHECKS_FAILED of $((CHECKS_PASSED + CHECKS_FAILED)) checks)"
    exit 1
}
