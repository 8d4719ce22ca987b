#!/usr/bin/env bash
# `make demo`: the toolstack (scripts/demo-toolstack.sh): hospesd, two
# domains from xl.cfg files, xl list, a command through xl console, xl
# shutdown -w -a. On a host whose KVM cannot run an unmodified kernel at
# speed (no VT-x/AMD-V, e.g. PVM) the same demo runs inside the nested lab.
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
hospes=$build/hospes

if ! grep -qE '^flags.* (vmx|svm)( |$)' /proc/cpuinfo || [ ! -w /dev/kvm ]; then
    echo "demo: this host's KVM cannot run an unmodified kernel at speed (no VT-x/AMD-V); running the demo in the nested lab"
    cmake --build "$build" --target lab
    exec "$root/tests/lab/lab-run.sh" --lab-dir "$build/lab" --timeout 900 --log "$build/lab/logs/demo.log" \
        "$root/scripts/demo-toolstack.sh"
fi

cmake --build "$build" --target guest hospesd
PATH="$(cd "$build" && pwd):$PATH" HOSPES_GUEST_DIR="$(cd "$build" && pwd)/guest" exec sh "$root/scripts/demo-toolstack.sh"
