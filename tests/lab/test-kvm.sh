#!/bin/sh
# shellcheck shell=dash disable=SC1091  # sourced /lab/lib.sh
# In-lab test: the kvm tests (tests/kvm: the KVM wrappers and `hospes run`
# with the freestanding test guest) on the lab host's /dev/kvm, a KVM with
# real (emulated AMD-V) semantics. lab.kvm puts the test binary at
# /lab/kvm_tests and the test guest at /lab/test-guest.elf; they drive the
# lab's /usr/bin/hospes. Every test must run and pass: a skip (exit 77,
# no usable /dev/kvm) fails here.
LAB_TEST_NAME=kvm
. /lab/lib.sh

HOSPES_BINARY=/usr/bin/hospes HOSPES_TEST_GUEST=/lab/test-guest.elf /lab/kvm_tests >/tmp/kvm_tests.out 2>&1
status=$?
cat /tmp/kvm_tests.out
ran=$(grep -c '^\[       OK \]' /tmp/kvm_tests.out)
failed=$(grep -c '^\[  FAILED  \] [A-Za-z]' /tmp/kvm_tests.out)
total=$(sed -n 's/^\[==========\] \([0-9]*\) tests\{0,1\} from .* ran\..*/\1/p' /tmp/kvm_tests.out)
check '[ "$status" = 0 ]' "kvm_tests exit status 0 (got $status)"
check '[ "${total:-0}" -gt 0 ] && [ "$ran" = "$total" ] && [ "$failed" = 0 ]' \
    "all ${total:-0} kvm tests ran and passed on the lab's /dev/kvm ($ran passed, $failed failed)"
finish
