#!/usr/bin/env bash
# lab-run.sh [--lab-dir DIR] [--timeout S] [--log FILE] [--disk IMAGE]... TEST_SCRIPT
#
# Boots the nested lab (built by tests/lab/build-lab.sh) under QEMU TCG with
# emulated AMD-V, runs TEST_SCRIPT inside it as /lab/test.sh (busybox sh,
# hospes at /usr/bin/hospes, the default guest in /guest) and reports the
# script's result.
#
# Options:
#   --lab-dir DIR  the lab (default: $LAB_DIR, else build/lab of this repo)
#   --timeout S    wall-clock limit for the whole lab run (default 600)
#   --log FILE     keep the lab console here (default:
#                  LABDIR/logs/<test name>.log); it is also streamed to stdout
#   --disk IMAGE   give the lab host IMAGE as a virtio disk (the first is its
#                  /dev/vda, then /dev/vdb...); repeatable. The lab writes to
#                  it: pass a copy.
# Environment: LAB_MEMORY (default 8G) is the lab host's memory.
#
# Exit status: the test script's own status as the lab init reports it
# ("lab: test exit status N"); 124 when the time limit was hit (QEMU is
# killed); 125 when the lab host did not come up, kvm_amd did not give it a
# /dev/kvm, or it stopped before reporting a test status; 126 when the lab
# host hung (its console heartbeat stopped). Runs that end in a crash or a
# hang of the emulated host are retried (see the end of this file).
#
# The console log is written verbatim (the serial port's bytes, \r\n and all),
# since tests parse it.
set -euo pipefail

die() { echo "lab-run: error: $*" >&2; exit 125; }

usage() {
    echo "usage: $0 [--lab-dir DIR] [--timeout S] [--log FILE] [--disk IMAGE]... TEST_SCRIPT" >&2
    exit 2
}

REPO=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)
LIB=$REPO/tests/lab/lib.sh
LABDIR=${LAB_DIR:-$REPO/build/lab}
TIMEOUT=600
LOG=
DISKS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --lab-dir) [[ $# -ge 2 ]] || usage; LABDIR=$2; shift 2 ;;
        --timeout) [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || usage; TIMEOUT=$2; shift 2 ;;
        --log) [[ $# -ge 2 ]] || usage; LOG=$2; shift 2 ;;
        --disk) [[ $# -ge 2 && -f "$2" ]] || die "--disk: image ${2:-} not found"
            DISKS+=(-drive "file=$2,if=virtio,format=raw,cache=writeback"); shift 2 ;;
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
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"

if [[ -z "$LOG" ]]; then
    mkdir -p "$LABDIR/logs"
    LOG=$LABDIR/logs/$TEST_NAME.log
fi
mkdir -p "$(dirname "$LOG")"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/lab-run.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# The initrd: the lab archive, then a second archive with the test script
# (and the helpers in lib.sh). Linux unpacks concatenated archives, plain or
# compressed, into the same rootfs, as long as each starts at a 4-byte
# aligned offset (build-lab.sh pads lab.cpio.gz; cpio output is padded to
# 512 bytes).
mkdir -p "$TMP/extra/lab"
cp "$TEST_SCRIPT" "$TMP/extra/lab/test.sh"
cp "$LIB" "$TMP/extra/lab/lib.sh"
chmod 755 "$TMP/extra/lab/test.sh"
(cd "$TMP/extra" && find lab | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$TMP/extra.cpio"
cat "$LAB_CPIO" "$TMP/extra.cpio" >"$TMP/initrd"

# One boot of the lab with the test; returns the status described above.
attempt() {
    local log=$1 start qemu_status elapsed lab_up test_status
    echo "lab-run: $TEST_NAME (lab $LABDIR, timeout ${TIMEOUT}s, log $log)" >&2
    start=$(date +%s.%N)
    # The serial console goes to QEMU's stdout, into the log; tail streams it to
    # our stdout. stdin is /dev/null so the run is the same under CI (no stdin)
    # as in a terminal; the monitor is off so nothing else shares the output.
    set +e
    : >"$log"
    timeout --kill-after=10 "$TIMEOUT" \
        qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp 2 -m "${LAB_MEMORY:-8G}" \
        -display none -monitor none -serial stdio -no-reboot \
        -kernel "$LABDIR/bzImage" -initrd "$TMP/initrd" "${DISKS[@]}" \
        -append "console=ttyS0 quiet panic=-1" </dev/null >"$log" &
    local qemu_pid=$! silent=0 beats=0 last_beats=0
    tail -n +1 -f --pid="$qemu_pid" "$log" &
    local tail_pid=$!
    # The lab init prints a heartbeat ("lab: alive") every 10 s; none for
    # HANG_SECONDS means the emulated host hung: stop it. The heartbeat, not
    # any output, is what counts: a host whose CPUs are all stuck in its
    # kernel still prints soft-lockup reports, but its user space is gone.
    rm -f "$TMP/hung"
    while kill -0 "$qemu_pid" 2>/dev/null; do
        sleep 1
        beats=$(grep -a -c 'lab: alive' "$log" 2>/dev/null || true)
        if [[ ${beats:-0} -ne $last_beats ]]; then
            last_beats=${beats:-0}
            silent=0
        elif ((++silent >= HANG_SECONDS)); then
            touch "$TMP/hung"
            pkill -KILL -P "$qemu_pid" 2>/dev/null
            kill -KILL "$qemu_pid" 2>/dev/null
            break
        fi
    done
    wait "$qemu_pid"
    qemu_status=$?
    wait "$tail_pid"
    set -e
    elapsed=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')

    # The lab init's own lines, read from a copy without carriage returns (not
    # through `... | grep -q`, which under pipefail fails when grep stops reading
    # early); grep -o because a kernel message may share the line.
    tr -d '\r' <"$log" >"$TMP/console.txt"
    lab_up=$(grep -a -o 'lab: up after [0-9.]* s' "$TMP/console.txt" | tail -n 1 | awk '{print $4}' || true)
    test_status=$(grep -a -o 'lab: test exit status [0-9]*' "$TMP/console.txt" | tail -n 1 | awk '{print $5}' || true)

    if [[ -e "$TMP/hung" ]]; then
        echo "lab-run: $TEST_NAME: the lab host stopped responding (no heartbeat for ${HANG_SECONDS}s; log $log)" >&2
        return 126
    fi
    if [[ $qemu_status -eq 124 || $qemu_status -eq 137 ]]; then
        echo "lab-run: $TEST_NAME: TIMEOUT after ${TIMEOUT}s (log $log)" >&2
        return 124
    fi
    if ! grep -a -q 'lab: kvm ready' "$TMP/console.txt"; then
        if grep -a -q 'lab: kvm missing' "$TMP/console.txt"; then
            echo "lab-run: $TEST_NAME: the lab host has no /dev/kvm (kvm_amd did not load; log $log)" >&2
        else
            echo "lab-run: $TEST_NAME: the lab host did not come up (qemu status $qemu_status, log $log)" >&2
        fi
        return 125
    fi
    if [[ -z "$test_status" ]]; then
        echo "lab-run: $TEST_NAME: the lab stopped before the test reported a status (qemu status $qemu_status, log $log)" >&2
        return 125
    fi
    echo "lab-run: $TEST_NAME: test exit status $test_status (lab host up after ${lab_up:-?} s, total ${elapsed} s)" >&2
    return "$test_status"
}

# The emulated machine itself sometimes fails: under TCG the lab host's
# kernel can crash in its own exception entry, or hang (faults of the
# emulation, not of hospes or the guest: the lab host's own heartbeat stops).
# Such a run reports no test status; it is run again, up to LAB_RETRIES
# times, and says so. So is a test that failed with a guest triple fault
# (see below); a test that failed otherwise is never retried.
retries=${LAB_RETRIES:-2}
HANG_SECONDS=${LAB_HANG_SECONDS:-90}
for try in $(seq 0 "$retries"); do
    log=$LOG
    [[ $try -gt 0 ]] && log=$LOG.retry$try
    status=0
    attempt "$log" || status=$?
    if [[ $try -lt $retries ]]; then
        if [[ $status -eq 125 ]] && grep -a -q 'Kernel panic' "$log"; then
            echo "lab-run: $TEST_NAME: the lab host's kernel crashed under emulation (log $log); running the test again" >&2
            continue
        fi
        if [[ $status -eq 126 ]]; then
            echo "lab-run: $TEST_NAME: the lab host hung under emulation (log $log); running the test again" >&2
            continue
        fi
        # A nested guest's triple fault has also been seen at random under
        # TCG, even 0.04 s into a boot before any device is active. A fault
        # hospes causes repeats and still fails after the retries.
        if [[ $status -ne 0 && $status -lt 124 ]] && grep -a -q 'hospes: error: guest triple fault' "$log"; then
            echo "lab-run: $TEST_NAME: a guest triple-faulted (log $log); nested SVM under TCG does that at random;" \
                "running the test again" >&2
            continue
        fi
    fi
    exit "$status"
done
