#!/bin/busybox sh
# /init of the tiny PV test guest: say hello, then keep a vCPU busy.
# (For the daemon suite both vCPUs must stay busy; this does not achieve it
# reliably yet: see tests/xen/daemon/test_daemon_real.py.)
/bin/busybox mkdir -p /proc
/bin/busybox mount -t proc proc /proc
echo "guest: up"
while :; do :; done &
while :; do :; done
