#!/bin/sh
# shellcheck shell=dash
# In-lab benchmark, run by tests/lab/lab-run.sh inside the nested lab host
# (its /dev/kvm): what the jail costs a monitor at launch. monitor_bench
# --jail launches the test guest unjailed and jailed (`hospes run --jail`,
# as hospesd runs every monitor) round after round and prints spawn -> first
# KVM_RUN and the monitor's RSS for both, with their ratios (goal: jailed /
# unjailed at most 1.10). Needs /lab/monitor_bench and /lab/test-guest.elf
# (the bench target passes them with --file). Environment: BENCH_ROUNDS
# (default 30), BENCH_LAUNCHES (default 10).
set -e
echo "lab-test: monitor_bench --jail in the lab"
HOSPES_BINARY=/usr/bin/hospes HOSPES_TEST_GUEST=/lab/test-guest.elf \
    /lab/monitor_bench --runs "${BENCH_ROUNDS:-30}" --launches "${BENCH_LAUNCHES:-10}" --jail
