#!/usr/bin/env bash
# run.sh PREFIX FUZZER [LIBFUZZER ARGUMENTS...]
#
# One bounded fuzz run as ctest runs it: FUZZER with -artifact_prefix=PREFIX.
# When it fails, the last lines name each input it kept (a crash, leak,
# timeout or out-of-memory reproducer), how to run it again, and the input in
# base64: a CI machine's build tree is gone when its log is read, and the
# log alone must be enough to reproduce the finding. Exit status: the
# fuzzer's (77, the target cannot run here, is ctest's "skipped").
set -uo pipefail

[[ $# -ge 2 ]] || { echo "usage: $0 PREFIX FUZZER [ARGUMENTS...]" >&2; exit 2; }
prefix=$1 fuzzer=$2
shift 2

before=$(ls -1 "$prefix"* 2>/dev/null | sort)
"$fuzzer" -artifact_prefix="$prefix" "$@"
status=$?
[[ $status -eq 0 || $status -eq 77 ]] && exit $status

kept=$(comm -13 <(echo "$before") <(ls -1 "$prefix"* 2>/dev/null | sort) | sed '/^$/d')
name=$(basename "$fuzzer")
if [[ -z $kept ]]; then
    echo "fuzz: $name failed with status $status and kept no input (see its output above)"
    exit $status
fi
while read -r input; do
    size=$(stat -c %s "$input")
    echo "fuzz: $name failed with status $status; the input is kept in $input ($size bytes)"
    echo "fuzz: reproduce it with: $fuzzer $input"
    echo "fuzz: or from this log alone: the lines between the markers below, through base64 -d, are the input"
    echo "----- base64 of $(basename "$input") -----"
    base64 "$input" | head -c 65536
    echo "----- end -----"
done <<<"$kept"
exit $status
