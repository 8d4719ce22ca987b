#!/usr/bin/env bash
# lab-run.sh [--lab-dir DIR] [--timeout S] [--log FILE] [--disk IMAGE]...
#            [--env NAME=VALUE]... [--file SRC:DEST]... TEST_SCRIPT
#
# Boots the nested lab (built by tests/lab/build-lab.sh) under QEMU TCG with
# emulated AMD-V, runs TEST_SCRIPT inside it as /lab/test.sh (busybox sh,
# hospes at /usr/bin/hospes, the default guest in /guest) and reports the
# script's result.
#
# Options:
#   --lab-dir DIR  the lab (default: $LAB_DIR, else build/lab of this repo)
#   --timeout S    wall-clock limit for one boot of the lab (default 600)
#   --log FILE     keep the lab console here (default:
#                  LABDIR/logs/<test name>.log); it is also streamed to stdout
#   --disk IMAGE   give the lab host IMAGE as a virtio disk (the first is its
#                  /dev/vda, then /dev/vdb...); repeatable. The lab writes to
#                  it: pass a copy.
#   --env N=V      set N=V for the test script (written to /lab/env, which
#                  lib.sh reads); repeatable. Of the caller's environment
#                  only LAB_MONITOR, LAB_JAIL, LAB_TRACE, LAB_THP, LAB_SHMEM_THP and BENCH_* reach the lab, the same way.
#   --file S:D     put the file S into the lab at the absolute path D (with
#                  the test script, so the lab is not rebuilt); repeatable.
# Environment:
#   LAB_QEMU       the emulator (default qemu-system-x86_64 on the PATH)
#   LAB_QEMU_ARGS  extra emulator arguments (e.g. -L DIR for its firmware)
#   LAB_ACCEL      the -accel option (default tcg,thread=multi; a second
#                  -accel in LAB_QEMU_ARGS would only be QEMU's fallback)
#   LAB_CPU        the lab host's CPU model (default max)
#   LAB_SMP        the lab host's CPUs (default 1: with two, QEMU's TCG now
#                  and then delivers an interrupt KVM injected into a nested
#                  guest twice; docs/testing.md)
#   LAB_MEMORY     the lab host's memory (default 8G)
#   LAB_APPEND     the lab kernel's timer options (default "lapic=notscdeadline
#                  nohz=off highres=off": a periodic tick, which one lost
#                  timer interrupt cannot stop; docs/testing.md)
#   LAB_RETRIES    boots after a lab host crash or hang (default 2)
#   LAB_HANG_SECONDS  heartbeat silence that means a hung lab host (90)
#
# Exit status: the test script's own status as the lab init reports it
# ("lab: test exit status N"); 124 when the time limit was hit (QEMU is
# killed); 125 when the lab host did not come up, kvm_amd did not give it a
# /dev/kvm, or it stopped before reporting a test status; 126 when the lab
# host hung (its console heartbeat stopped).
#
# Each boot ends with one line "lab-run: NAME: outcome KIND ..." where KIND
# is pass, test-failure, guest-fault (a guest triple fault: hospes reports
# it, a guest under QEMU resets without having asked to),
# guest-hang (the guest stopped answering), lab-crash (the lab host's kernel
# panicked), lab-hang, lab-down (no lab host, or no /dev/kvm in it) or
# timeout. Only lab-crash and lab-hang are retried: they are faults of the
# emulated host, which never reported a test result. The last line of the
# run, also written to LOG.result, says how many retries were used.
#
# The console log is written verbatim (the serial port's bytes, \r\n and all),
# since tests parse it.
set -euo pipefail

die() { echo "lab-run: error: $*" >&2; exit 125; }

usage() {
    echo "usage: $0 [--lab-dir DIR] [--timeout S] [--log FILE] [--disk IMAGE]... [--env NAME=VALUE]..." \
        "[--file SRC:DEST]... TEST_SCRIPT" >&2
    exit 2
}

REPO=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)
LIB=$REPO/tests/lab/lib.sh
LABDIR=${LAB_DIR:-$REPO/build/lab}
TIMEOUT=600
LOG=
DISKS=()
ENVS=()
FILES=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --lab-dir) [[ $# -ge 2 ]] || usage; LABDIR=$2; shift 2 ;;
        --timeout) [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || usage; TIMEOUT=$2; shift 2 ;;
        --log) [[ $# -ge 2 ]] || usage; LOG=$2; shift 2 ;;
        --disk) [[ $# -ge 2 && -f "$2" ]] || die "--disk: image ${2:-} not found"
            DISKS+=(-drive "file=$2,if=virtio,format=raw,cache=writeback"); shift 2 ;;
        --env) [[ $# -ge 2 && "$2" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env: expected NAME=VALUE, got '${2:-}'"
            ENVS+=("$2"); shift 2 ;;
        --file) [[ $# -ge 2 && "$2" == *:/* && -f "${2%%:*}" ]] ||
                die "--file: expected SRC:/DEST with an existing SRC, got '${2:-}'"
            FILES+=("$2"); shift 2 ;;
        -h|--help) usage ;;
        --) shift; break ;;
        -*) usage ;;
        *) break ;;
    esac
done
[[ $# -eq 1 ]] || usage
TEST_SCRIPT=$1
[[ -f "$TEST_SCRIPT" ]] || die "test script $TEST_SCRIPT not found"
TEST_NAME=$(basename "$TEST_SCRIPT" .sh)

[[ -s "$LABDIR/bzImage" ]] || die "$LABDIR/bzImage missing (run tests/lab/build-lab.sh)"
if [[ -s "$LABDIR/lab.cpio" ]]; then
    LAB_CPIO=$LABDIR/lab.cpio
elif [[ -s "$LABDIR/lab.cpio.gz" ]]; then
    LAB_CPIO=$LABDIR/lab.cpio.gz
else
    die "no lab.cpio in $LABDIR (run tests/lab/build-lab.sh)"
fi
QEMU=${LAB_QEMU:-qemu-system-x86_64}
command -v "$QEMU" >/dev/null || die "$QEMU not found (apt-get install qemu-system-x86)"
read -r -a QEMU_EXTRA <<<"${LAB_QEMU_ARGS:-}"
ACCEL=${LAB_ACCEL:-tcg,thread=multi}
CPU=${LAB_CPU:-max}
SMP=${LAB_SMP:-1}

if [[ -z "$LOG" ]]; then
    mkdir -p "$LABDIR/logs"
    LOG=$LABDIR/logs/$TEST_NAME.log
fi
mkdir -p "$(dirname "$LOG")"
rm -f "$LOG".retry* "$LOG.result"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/lab-run.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# The initrd: the lab archive, then a second archive with the test script,
# the helpers in lib.sh, the environment and any --file. Linux unpacks
# concatenated archives, plain or compressed, into the same rootfs, as long
# as each starts at a 4-byte aligned offset (build-lab.sh pads lab.cpio.gz;
# cpio output is padded to 512 bytes).
mkdir -p "$TMP/extra/lab"
cp "$TEST_SCRIPT" "$TMP/extra/lab/test.sh"
cp "$LIB" "$TMP/extra/lab/lib.sh"
chmod 755 "$TMP/extra/lab/test.sh"
: >"$TMP/extra/lab/env"
# The caller's LAB_MONITOR, LAB_JAIL, LAB_TRACE, LAB_THP, LAB_SHMEM_THP and BENCH_* first, so --env wins.
FROM_ENV=()
while IFS= read -r e; do FROM_ENV+=("$e"); done < <(env | grep -E '^(LAB_MONITOR|LAB_JAIL|LAB_TRACE|LAB_THP|LAB_SHMEM_THP|BENCH_[A-Z0-9_]+)=' || true)
for e in "${FROM_ENV[@]}" "${ENVS[@]}"; do
    # Single-quoted for the lab's sh, whatever the value holds.
    printf "export %s='%s'\n" "${e%%=*}" "$(printf '%s' "${e#*=}" | sed "s/'/'\\\\''/g")" >>"$TMP/extra/lab/env"
done
for f in "${FILES[@]}"; do
    mkdir -p "$TMP/extra$(dirname "${f#*:}")"
    cp -L "${f%%:*}" "$TMP/extra${f#*:}"
done
(cd "$TMP/extra" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$TMP/extra.cpio"
cat "$LAB_CPIO" "$TMP/extra.cpio" >"$TMP/initrd"

# classify LOG QEMU_STATUS HUNG: the outcome of one boot (see the top).
classify() {
    local log=$1 qemu_status=$2 hung=$3 text=$TMP/console.txt status
    # grep -o because a kernel message may share the line; the lab init's
    # own lines are read from a copy without carriage returns (not through
    # `... | grep -q`, which under pipefail fails when grep stops early).
    tr -d '\r' <"$log" >"$text"
    status=$(grep -a -o 'lab: test exit status [0-9]*' "$text" | tail -n 1 | awk '{print $5}' || true)
    if [[ -n "$status" ]]; then
        if [[ $status -eq 0 ]]; then
            echo pass
        elif grep -a -q -E 'hospes: error: guest triple fault|lab-test: guest .* lost: triple fault' "$text"; then
            echo guest-fault
        elif grep -a -q 'lab-test: guest .* lost: no answer' "$text"; then
            echo guest-hang
        else
            echo test-failure
        fi
    elif [[ $hung == 1 ]]; then
        echo lab-hang
    elif grep -a -q 'Kernel panic' "$text"; then
        echo lab-crash
    elif [[ $qemu_status -eq 124 || $qemu_status -eq 137 ]]; then
        echo timeout
    else
        echo lab-down
    fi
}

# One boot of the lab with the test. Sets OUTCOME and ELAPSED; returns the
# status described at the top.
attempt() {
    local log=$1 start qemu_status lab_up test_status hung=0
    echo "lab-run: $TEST_NAME (lab $LABDIR, emulator $QEMU -accel $ACCEL -cpu $CPU -smp $SMP, lab kernel timer \"${LAB_APPEND-lapic=notscdeadline nohz=off highres=off}\", timeout ${TIMEOUT}s, log $log)" >&2
    start=$(date +%s.%N)
    # The serial console goes to QEMU's stdout, into the log; tail streams it to
    # our stdout. stdin is /dev/null so the run is the same under CI (no stdin)
    # as in a terminal; the monitor is off so nothing else shares the output.
    set +e
    : >"$log"
    timeout --kill-after=10 "$TIMEOUT" \
        "$QEMU" -accel "$ACCEL" -cpu "$CPU" -smp "$SMP" -m "${LAB_MEMORY:-8G}" "${QEMU_EXTRA[@]}" \
        -display none -monitor none -serial stdio -nic none -no-reboot \
        -kernel "$LABDIR/bzImage" -initrd "$TMP/initrd" "${DISKS[@]}" \
        -append "console=ttyS0 quiet panic=-1 ${LAB_APPEND-lapic=notscdeadline nohz=off highres=off}" </dev/null >"$log" &
    local qemu_pid=$! silent=0 beats=0 last_beats=0
    tail -n +1 -f --pid="$qemu_pid" "$log" &
    local tail_pid=$!
    # The lab init prints a heartbeat ("lab: alive") every 10 s; none for
    # HANG_SECONDS means the emulated host hung: stop it. The heartbeat, not
    # any output, is what counts: a host whose CPUs are all stuck in its
    # kernel still prints soft-lockup reports, but its user space is gone.
    while kill -0 "$qemu_pid" 2>/dev/null; do
        sleep 1
        beats=$(grep -a -c 'lab: alive' "$log" 2>/dev/null || true)
        if [[ ${beats:-0} -ne $last_beats ]]; then
            last_beats=${beats:-0}
            silent=0
        elif ((++silent >= HANG_SECONDS)); then
            hung=1
            pkill -KILL -P "$qemu_pid" 2>/dev/null
            kill -KILL "$qemu_pid" 2>/dev/null
            break
        fi
    done
    wait "$qemu_pid"
    qemu_status=$?
    wait "$tail_pid"
    set -e
    ELAPSED=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
    OUTCOME=$(classify "$log" "$qemu_status" "$hung")
    lab_up=$(grep -a -o 'lab: up after [0-9.]* s' "$TMP/console.txt" | tail -n 1 | awk '{print $4}' || true)
    test_status=$(grep -a -o 'lab: test exit status [0-9]*' "$TMP/console.txt" | tail -n 1 | awk '{print $5}' || true)
    echo "lab-run: $TEST_NAME: outcome $OUTCOME (lab host up after ${lab_up:-?} s, total $ELAPSED s, log $log)" >&2

    case $OUTCOME in
        lab-hang) echo "lab-run: $TEST_NAME: the lab host stopped responding (no heartbeat for ${HANG_SECONDS}s)" >&2
            return 126 ;;
        timeout) echo "lab-run: $TEST_NAME: TIMEOUT after ${TIMEOUT}s" >&2; return 124 ;;
        lab-crash) echo "lab-run: $TEST_NAME: the lab host's kernel crashed before the test reported" >&2
            return 125 ;;
        lab-down)
            if grep -a -q 'lab: kvm missing' "$TMP/console.txt"; then
                echo "lab-run: $TEST_NAME: the lab host has no /dev/kvm (kvm_amd did not load)" >&2
            elif ! grep -a -q 'lab: kvm ready' "$TMP/console.txt"; then
                echo "lab-run: $TEST_NAME: the lab host did not come up (qemu status $qemu_status)" >&2
            else
                echo "lab-run: $TEST_NAME: the lab stopped before the test reported a status (qemu status $qemu_status)" >&2
            fi
            return 125 ;;
    esac
    return "$test_status"
}

# The emulated machine itself can fail: its kernel crash in its own
# exception entry, or hang (faults of the emulation, not of hospes or the
# guest: no test result was reported, the lab host's heartbeat stopped).
# Only such a boot is run again, up to LAB_RETRIES times, and says so. A
# test that reported a failure, whatever its kind (a guest's triple fault
# included), is never retried.
retries=${LAB_RETRIES:-2}
HANG_SECONDS=${LAB_HANG_SECONDS:-90}
used=0
total=0
for try in $(seq 0 "$retries"); do
    log=$LOG
    [[ $try -gt 0 ]] && log=$LOG.retry$try
    status=0
    attempt "$log" || status=$?
    total=$(awk -v a="$total" -v b="$ELAPSED" 'BEGIN { printf "%.1f", a + b }')
    if [[ $try -lt $retries && ($OUTCOME == lab-crash || $OUTCOME == lab-hang) ]]; then
        used=$((used + 1))
        echo "lab-run: $TEST_NAME: RETRY $used of $retries: $OUTCOME of the emulated lab host (log $log kept); booting the lab again" >&2
        continue
    fi
    break
done
summary="test=$TEST_NAME outcome=$OUTCOME status=$status retries=$used seconds=$ELAPSED total_seconds=$total"
echo "$summary" >"$LOG.result"
echo "lab-run: $TEST_NAME: $([[ $status -eq 0 ]] && echo passed || echo FAILED) ($OUTCOME) with $used retries, $total s" >&2
exit "$status"
