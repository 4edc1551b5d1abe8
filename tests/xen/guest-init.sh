#!/bin/busybox sh
# /init of the tiny PV test guest: say hello, then keep a vCPU busy.
/bin/busybox mkdir -p /proc
/bin/busybox mount -t proc proc /proc
echo "guest: up"
while :; do :; done
