#!/usr/bin/env bash
# report.sh LABDIR: one line per lab test of the last `make test` (from the
# LABDIR/logs/*.result files lab-run.sh writes): outcome, retries used (a
# retry is a boot that ended in a crash or hang of the emulated lab host,
# see lab-run.sh) and wall time; then the total of retries.
set -euo pipefail
LABDIR=${1:?usage: report.sh LABDIR}
shopt -s nullglob
results=("$LABDIR"/logs/*.log.result)
[[ ${#results[@]} -gt 0 ]] || exit 0
total=0
echo "lab tests: outcome, retries, wall time"
for f in "${results[@]}"; do
    # shellcheck disable=SC2046  # the file holds NAME=VALUE words
    declare $(cat "$f")
    printf '  lab.%-12s %-13s %s retries  %7.1f s\n' "${test#test-}" "$outcome" "$retries" "$total_seconds"
    total=$((total + retries))
done
echo "lab retries in this run: $total"
