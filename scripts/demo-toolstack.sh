#!/bin/sh
# shellcheck shell=dash disable=SC1091,SC2016
# The toolstack demo (`make demo`), on a host with KVM or inside the nested
# lab: start hospesd, create two domains from xl.cfg files, list them, run
# a command in one through `xl console`, shut both down with
# `xl shutdown -w -a`. Needs hospesd and xl on PATH and the default guest
# in $HOSPES_GUEST_DIR.
[ -f /lab/lib.sh ] && LAB_TEST_NAME=demo && . /lab/lib.sh
set -e
guest=${HOSPES_GUEST_DIR:?set HOSPES_GUEST_DIR to the default guest}
work=$(mktemp -d)
export HOSPESD_SOCKET="$work/hospesd.sock"
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

say "hospesd --socket $HOSPESD_SOCKET --state-dir $work/state &"
hospesd --socket "$HOSPESD_SOCKET" --state-dir "$work/state" --no-cgroups 2>"$work/hospesd.log" &
daemon=$!
i=0
while [ ! -S "$HOSPESD_SOCKET" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done

for d in web1:256:2 web2:128:1; do
    name=${d%%:*} rest=${d#*:}
    cat >"$work/$name.cfg" <<CFG
# $name: Debian's kernel with the default guest's busybox initramfs
name    = "$name"
kernel  = "$guest/vmlinuz"
ramdisk = "$guest/initramfs.cpio.gz"
memory  = ${rest%%:*}
vcpus   = ${rest#*:}
on_poweroff = "destroy"
CFG
done
say "cat web1.cfg"
cat "$work/web1.cfg"
for name in web1 web2; do
    say "xl create $name.cfg"
    xl create "$work/$name.cfg"
done
for id in 1 2; do
    i=0
    while ! grep -q 'hospes-guest: user space reached' "$work/state/logs/domain-$id.console.log" 2>/dev/null &&
        [ $i -lt 600 ]; do
        sleep 0.2
        i=$((i + 1))
    done
done
say "xl list"
xl list

say "xl console web1   (typing: uname -sr; grep MemTotal /proc/meminfo; then Ctrl-])"
mkfifo "$work/in"
xl console web1 <"$work/in" >"$work/out" &
console=$!
exec 9>"$work/in"
sleep 0.5
printf '%s\n' 'uname -sr; grep MemTotal /proc/meminfo; echo DONE-$((40+2))' >&9
i=0
while ! grep -q '^DONE-42' "$work/out" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.2; i=$((i + 1)); done
printf '\035' >&9
exec 9>&-
wait $console
tr -d '\r' <"$work/out" | sed "s/$(printf '\033')\[6n//g"
echo

say "xl shutdown -w -a"
xl shutdown -w -a
say "xl list"
xl list
kill $daemon
wait $daemon || true
# hospesd's shared back-ends outlive it, as the monitors do: they go too.
for state in "$work"/state/*/hospes-*.json; do
    [ -f "$state" ] && kill "$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p' "$state")" 2>/dev/null || true
done
rm -rf "$work"
echo
echo "demo: both domains powered off on the ACPI power button and were destroyed (on_poweroff)"
