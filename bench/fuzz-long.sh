#!/usr/bin/env bash
# fuzz-long.sh [--build DIR] [--minutes M] [--jobs J] [--out DIR] [TARGET...]
#
# Long fuzz runs, apart from `make test` (whose runs are 20-60 s each): every
# fuzz target (or the ones named: virtqueue, blk, ...) for M minutes
# (default 30), J targets at a time (default 1; each run is one process on
# one CPU). Each starts from the target's seeds and the corpus `make test`
# has grown, and keeps what it finds new in OUT/corpus-NAME. Prints per
# target the executions, executions per second, coverage (edges, features),
# the corpus's size and the findings: every kept crash, leak, timeout or
# out-of-memory input is listed with how to reproduce it (fuzz/run.sh
# prints it in base64 too). Exit status 1 when anything was found.
set -euo pipefail

REPO=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
BUILD=$REPO/build
MINUTES=30
JOBS=1
OUT=
usage() { echo "usage: $0 [--build DIR] [--minutes M] [--jobs J] [--out DIR] [TARGET...]" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --build) [[ $# -ge 2 ]] || usage; BUILD=$2; shift 2 ;;
        --minutes) [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || usage; MINUTES=$2; shift 2 ;;
        --jobs) [[ $# -ge 2 && $2 =~ ^[1-9][0-9]*$ ]] || usage; JOBS=$2; shift 2 ;;
        --out) [[ $# -ge 2 ]] || usage; OUT=$2; shift 2 ;;
        -h|--help) usage ;;
        -*) usage ;;
        *) break ;;
    esac
done
BUILD=$(cd "$BUILD" && pwd) || { echo "fuzz-long: error: no build tree $BUILD" >&2; exit 2; }
OUT=${OUT:-$BUILD/fuzz/long/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"

# The targets and their ctest command lines, as make test runs them.
mapfile -t ALL < <(cd "$BUILD" && ctest -N -L fuzz | sed -n 's/^ *Test *#[0-9]*: fuzz\.//p')
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=("${ALL[@]}")
for t in "${TARGETS[@]}"; do
    printf '%s\n' "${ALL[@]}" | grep -qx "$t" || { echo "fuzz-long: error: no fuzz target $t (${ALL[*]})" >&2; exit 2; }
done
echo "fuzz-long: ${TARGETS[*]} for $MINUTES min each, $JOBS at a time; logs and corpora in $OUT"

# run_target NAME: one long run with the test's environment, options and
# seeds (ctest's own record of them; the time and the artifact prefix are
# this run's).
run_target() {
    local name=$1 test options=() dirs=() environment=()
    local binary=$BUILD/fuzz/${name}_fuzz
    test=$(cd "$BUILD" && ctest --show-only=json-v1 -R "^fuzz\\.$name\$" | python3 -c '
import json, sys
t = json.load(sys.stdin)["tests"][0]
for p in t.get("properties", []):
    if p["name"] == "ENVIRONMENT":
        for e in p["value"]: print("env", e)
for a in t["command"][3:]: print("arg", a)')
    while read -r kind a; do
        case $kind:$a in
            env:*) environment+=("$a") ;;
            arg:-max_total_time=*) ;;
            arg:-*) options+=("$a") ;;
            arg:*) dirs+=("$a") ;;
        esac
    done <<<"$test"
    mkdir -p "$OUT/corpus-$name"
    # New inputs go to the first directory: this run's own corpus.
    (cd "$BUILD/fuzz" && env "${environment[@]}" "$REPO/fuzz/run.sh" "$OUT/$name-" "$binary" \
        -max_total_time=$((MINUTES * 60)) "${options[@]}" "$OUT/corpus-$name" "${dirs[@]}") >"$OUT/$name.log" 2>&1 &&
        echo 0 >"$OUT/$name.status" || echo $? >"$OUT/$name.status"
}

running=0
for t in "${TARGETS[@]}"; do
    run_target "$t" &
    running=$((running + 1))
    if [[ $running -ge $JOBS ]]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait || true

found=0
{
    printf '%-16s %12s %9s %7s %8s %8s %s\n' target executions exec/s edges features corpus findings
    for t in "${TARGETS[@]}"; do
        log=$OUT/$t.log
        execs=$(sed -n 's/^stat::number_of_executed_units: //p' "$log" | tail -n 1)
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
        done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
        [[ -n $done_line ]] || done_line=$(grep -E '^#[0-9]+[[:space:]]+(pulse|NEW|REDUCE)' "$log" | tail -n 1 || true)
        edges=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")
        features=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$done_line")
        corpus=$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$done_line")
        kept=$(find "$OUT" -maxdepth 1 -name "$t-*" | wc -l)
        status=$(cat "$OUT/$t.status" 2>/dev/null || echo '?')
        what=none
        if [[ $status != 0 || $kept -gt 0 ]]; then
            what="status $status, $kept input(s): $(find "$OUT" -maxdepth 1 -name "$t-*" -printf "%f ")"
            found=1
        fi
        printf '%-16s %12s %9s %7s %8s %8s %s\n' "$t" "${execs:--}" "${rate:--}" "${edges:--}" "${features:--}" \
            "${corpus:--}" "$what"
    done
} | tee "$OUT/summary.txt"
exit $found
