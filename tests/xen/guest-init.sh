#!/bin/busybox sh
# /init of the tiny PV test guest: say hello, then keep every vCPU busy
# (one spinning loop pinned to each guest CPU, so no vCPU ever blocks).
/bin/busybox mkdir -p /proc /sys
/bin/busybox mount -t proc proc /proc
echo "guest: up"
cpus=$(/bin/busybox grep -c ^processor /proc/cpuinfo)
i=0
while [ "$i" -lt "$cpus" ]; do
    /bin/busybox taskset -c "$i" /bin/busybox sh -c 'while :; do :; done' &
    i=$((i + 1))
done
while :; do /bin/busybox sleep 3600; done
