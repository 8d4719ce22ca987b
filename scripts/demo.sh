#!/usr/bin/env bash
# `make demo`: boot the default guest with its console on this terminal,
# type a few commands into it, and power it off. On a host whose KVM cannot
# run an unmodified kernel at speed (no VT-x/AMD-V, e.g. PVM) the same demo
# runs inside the nested lab.
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
hospes=$build/hospes

if ! grep -qE '^flags.* (vmx|svm)( |$)' /proc/cpuinfo || [ ! -w /dev/kvm ]; then
    echo "demo: this host's KVM cannot run an unmodified kernel at speed (no VT-x/AMD-V); running the demo in the nested lab"
    cmake --build "$build" --target lab
    exec "$root/tests/lab/lab-run.sh" --lab-dir "$build/lab" --timeout 900 --log "$build/lab/logs/demo.log" \
        "$root/scripts/demo-in-lab.sh"
fi

cmake --build "$build" --target guest
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkfifo "$work/console-in"
exec 9<>"$work/console-in"
echo "demo: $hospes run --vcpus 2 --memory 512M   (the default guest)"
"$hospes" run --vcpus 2 --memory 512M <"$work/console-in" > >(tee "$work/console-out") 2>&1 &
monitor=$!
# Type only once the guest's shell is there: input sent while the UART
# driver initialises is discarded by the guest.
for _ in $(seq 600); do
    grep -q 'hospes-guest: user space reached' "$work/console-out" 2>/dev/null && break
    sleep 0.1
done
sleep 1
for command in 'uname -sr' 'echo "vCPUs: $(nproc)"' \
    'echo "clock: $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"' \
    'date -u' 'grep MemTotal /proc/meminfo' 'poweroff -f'; do
    printf '%s\n' "$command" >&9
done
status=0
wait "$monitor" || status=$?
echo
echo "demo: the guest powered off; hospes exited with status $status"
exit "$status"
