#!/bin/sh
# shellcheck shell=dash disable=SC1091,SC2016
# The demo, inside the nested lab (run by tests/lab/lab-run.sh): boot the
# default guest with 2 vCPUs, show its console live, type a few commands,
# power it off, and report the monitor's exit status.
LAB_TEST_NAME=demo
. /lab/lib.sh

esc=$(printf '\033')
echo "demo: hospes run --vcpus 2 --memory 512M   (the default guest)"
guest_start demo --vcpus 2 --memory 512M
# Live console; the shell's cursor-position queries are dropped so they do
# not make the viewer's terminal type an answer.
tail -f "$GUEST_OUT" | sed "s/${esc}\[6n//g" &
TAIL_PID=$!
if guest_boot; then
    for command in 'uname -sr' 'echo "vCPUs: $(nproc)"' \
        'echo "clock: $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"' \
        'date -u' 'grep MemTotal /proc/meminfo' 'poweroff -f'; do
        guest_send "$command"
    done
fi
deadline=$(($(now) + 120))
while ! guest_exited && [ "$(now)" -lt "$deadline" ]; do sleep 0.2; done
sleep 2  # busybox tail -f polls once a second
kill "$TAIL_PID" 2>/dev/null
if guest_exited; then
    status=$(cat "$GUEST_STATUS_FILE")
else
    kill -9 "$GUEST_PID"
    status=timeout
fi
echo
echo "demo: the guest powered off; hospes exited with status $status"
[ "$status" = 0 ]
