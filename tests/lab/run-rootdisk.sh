#!/usr/bin/env bash
# run-rootdisk.sh ROOTFS_IMAGE LAB_RUN_ARGS... [TEST_SCRIPT]
#
# Runs TEST_SCRIPT (default test-rootdisk.sh) in the lab on a sparse copy of the root disk image,
# then checks the copy with `e2fsck -fn` on this host: whatever the guests
# did, the file system they leave must be clean.
set -euo pipefail
[[ $# -ge 1 && -f "$1" ]] || { echo "run-rootdisk: error: root disk image ${1:-} not found (build the rootfs target)" >&2; exit 125; }
IMAGE=$1
shift
HERE=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
COPY=$(mktemp "${TMPDIR:-/tmp}/rootdisk.XXXXXX.ext4")
trap 'rm -f "$COPY"' EXIT
cp --sparse=always "$IMAGE" "$COPY"
status=0
script=$HERE/test-rootdisk.sh
if [[ $# -gt 0 && "${*: -1}" == *.sh ]]; then
    script=${*: -1}
    set -- "${@:1:$#-1}"
fi
"$HERE/lab-run.sh" --disk "$COPY" "$@" "$script" || status=$?
if ! e2fsck -fn "$COPY"; then
    echo "FAIL: e2fsck -fn finds the root disk unclean after the test"
    exit 1
fi
echo "PASS: e2fsck -fn: the root disk is clean after the test"
exit "$status"
