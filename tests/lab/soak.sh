#!/usr/bin/env bash
# soak.sh [-n RUNS] [--build DIR] [--out DIR] [--load] TEST...
#
# The lab's flake report: runs the chosen lab tests RUNS times (default 10),
# interleaved (net, rootdisk, net, rootdisk, ...), each exactly as `make
# test` runs it (through ctest, in a configured build tree) but with no
# retries (LAB_RETRIES=0), and prints per test the passes, the failures by
# kind (tests/lab/lab-run.sh's outcomes: test-failure, guest-fault,
# guest-hang, lab-crash, lab-hang, lab-down, timeout) and the median wall
# time of the passing runs. TEST is a lab test's name (net, rootdisk, boot,
# ...; `ctest -N -L lab` lists them) or, for a name that is no lab test, a
# lab benchmark's (blk-exits runs bench/lab-blk-exits.sh). A fuzz target
# is named fuzz.NAME (fuzz.all: every one), run as `make test` runs it.
#
# --load keeps the machine doing something else, as a newcomer's or a busy
# CI machine is: a busy loop pinned to the last CPU for the whole soak (the
# lab's emulator is left to the others).
#
# The environment reaches every run: LAB_QEMU, LAB_ACCEL, LAB_CPU, LAB_SMP
# and LAB_QEMU_ARGS choose the lab's emulator and its options, LAB_MONITOR=qemu
# runs the guests under QEMU's microvm instead of hospes (tests/lab/lib.sh),
# LAB_MEMORY and so on.
#
# Every run's lab log is kept in OUT (default BUILD/lab/soak/<date>), with
# runs.txt (one line per run) and summary.txt (the table printed at the end).
set -euo pipefail

REPO=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)
RUNS=10
BUILD=$REPO/build
OUT=
LOAD=0
usage() { echo "usage: $0 [-n RUNS] [--build DIR] [--out DIR] [--load] TEST..." >&2; exit 2; }
while [[ $# -gt 0 ]]; do
    case $1 in
        -n) [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || usage; RUNS=$2; shift 2 ;;
        --build) [[ $# -ge 2 ]] || usage; BUILD=$2; shift 2 ;;
        --out) [[ $# -ge 2 ]] || usage; OUT=$2; shift 2 ;;
        --load) LOAD=1; shift ;;
        -h|--help) usage ;;
        -*) usage ;;
        *) break ;;
    esac
done
[[ $# -ge 1 ]] || usage
TESTS=("$@")
BUILD=$(cd "$BUILD" && pwd) || { echo "soak: error: no build tree $BUILD" >&2; exit 2; }
LABDIR=$BUILD/lab
OUT=${OUT:-$LABDIR/soak/$(date +%Y%m%d-%H%M%S)}
# The tests of one build tree share its lab and its log files: one soak per
# tree at a time (for two at once, configure a second tree).
mkdir -p "$LABDIR"
exec 8>"$LABDIR/.soak.lock"
flock -n 8 || { echo "soak: error: another soak is running in $BUILD" >&2; exit 2; }
mkdir -p "$OUT"
export LAB_RETRIES=0

QEMU=${LAB_QEMU:-qemu-system-x86_64}
EMULATOR=$("$QEMU" --version | head -n 1)
{
    echo "soak: $RUNS runs of ${TESTS[*]}, no retries"
    echo "soak: lab emulator $EMULATOR ($(command -v "$QEMU")${LAB_ACCEL:+ -accel $LAB_ACCEL}${LAB_CPU:+ -cpu $LAB_CPU}${LAB_SMP:+ -smp $LAB_SMP} ${LAB_QEMU_ARGS:-}; lab-run.sh's defaults otherwise)"
    echo "soak: guest monitor ${LAB_MONITOR:-hospes}; logs in $OUT"
} | tee "$OUT/header.txt"

ctest_names=$(cd "$BUILD" && ctest -N -L lab | sed -n 's/^ *Test *#[0-9]*: lab\.//p')
fuzz_names=$(cd "$BUILD" && ctest -N -L fuzz | sed -n 's/^ *Test *#[0-9]*: \(fuzz\.\)/\1/p')
if [[ " ${TESTS[*]} " == *" fuzz.all "* ]]; then
    expanded=()
    for test in "${TESTS[@]}"; do
        if [[ $test == fuzz.all ]]; then mapfile -t -O "${#expanded[@]}" expanded <<<"$fuzz_names"; else expanded+=("$test"); fi
    done
    TESTS=("${expanded[@]}")
fi

if [[ $LOAD -eq 1 ]]; then
    cpu=$(($(nproc) - 1))
    taskset -c "$cpu" sh -c 'while :; do :; done' &
    HOG=$!
    trap 'kill $HOG 2>/dev/null' EXIT
    echo "soak: load: a busy loop on CPU $cpu (pid $HOG)" | tee -a "$OUT/header.txt"
fi

# run_one TEST RUN: one run; appends "TEST RUN OUTCOME SECONDS" to runs.txt.
run_one() {
    local test=$1 run=$2 log=$LABDIR/logs/$1.log status=0 outcome seconds
    if grep -qx "$test" <<<"$fuzz_names"; then
        local start=$SECONDS
        (cd "$BUILD" && ctest -R "^${test//./\\.}\$" >"$OUT/$test.$run.ctest" 2>&1) || status=$?
        outcome=pass
        [[ $status -eq 0 ]] || outcome=test-failure
        echo "$test $run $outcome $((SECONDS - start))" | tee -a "$OUT/runs.txt"
        return
    elif grep -qx "$test" <<<"$ctest_names"; then
        (cd "$BUILD" && ctest -R "^lab\.$test\$" --timeout 3000 >"$OUT/$test.$run.ctest" 2>&1) || status=$?
    elif [[ -f $REPO/bench/lab-$test.sh ]]; then
        bash "$REPO/tests/lab/lab-run.sh" --lab-dir "$LABDIR" --timeout 1800 --log "$log" \
            "$REPO/bench/lab-$test.sh" >"$OUT/$test.$run.ctest" 2>&1 || status=$?
    else
        echo "soak: error: no lab test, lab benchmark or fuzz target named $test" >&2
        exit 2
    fi
    outcome=$(sed -n 's/.*outcome=\([a-z-]*\).*/\1/p' "$log.result" 2>/dev/null || true)
    seconds=$(sed -n 's/.* seconds=\([0-9.]*\).*/\1/p' "$log.result" 2>/dev/null || true)
    # A lab run that passed inside a test that failed (the root disk's fsck
    # on this host) is a test failure.
    [[ $outcome == pass && $status -ne 0 ]] && outcome=test-failure
    cp "$log" "$OUT/$test.$run.log" 2>/dev/null || true
    echo "$test $run ${outcome:-unknown} ${seconds:-0}" | tee -a "$OUT/runs.txt"
}

for run in $(seq 1 "$RUNS"); do
    for test in "${TESTS[@]}"; do run_one "$test" "$run"; done
done

KINDS="pass test-failure guest-fault guest-hang lab-crash lab-hang lab-down timeout unknown"
{
    printf '%-22s %4s' test runs
    for k in $KINDS; do printf ' %6s' "${k/test-failure/fail}"; done
    printf ' %9s %9s\n' median-s max-s
    for test in "${TESTS[@]}"; do
        awk -v t="$test" -v kinds="$KINDS" '
            $1 == t { n++; count[$3]++; if ($3 == "pass") s[++p] = $4 }
            END {
                printf "%-22s %4d", t, n
                k = split(kinds, kind, " ")
                for (i = 1; i <= k; i++) printf " %6d", count[kind[i]]
                # median and maximum of the passing runs
                for (i = 1; i <= p; i++) for (j = i + 1; j <= p; j++) if (s[j] < s[i]) { x = s[i]; s[i] = s[j]; s[j] = x }
                if (p == 0) printf " %9s %9s\n", "-", "-"
                else printf " %9.1f %9.1f\n", (p % 2 ? s[(p + 1) / 2] : (s[p / 2] + s[p / 2 + 1]) / 2), s[p]
            }' "$OUT/runs.txt"
    done
} | tee "$OUT/summary.txt"
cat "$OUT/header.txt" "$OUT/summary.txt" >"$OUT/report.txt"
