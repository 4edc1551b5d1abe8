#!/bin/busybox sh
# /init of the tiny PV test guest: say hello, then keep a vCPU busy.
# (The daemon suite's guests use tests/xen/guest/spin.c instead: shell loops
# here leave a vCPU blocked.)
/bin/busybox mkdir -p /proc
/bin/busybox mount -t proc proc /proc
echo "guest: up"
while :; do :; done &
while :; do :; done
