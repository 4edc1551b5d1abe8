#!/bin/busybox sh
# /init of the backends test's PVH guest: load the disk and network frontends, bring
# the network device up, then read the whole disk over and over (dropping the page
# cache each time, so every pass goes to blkback in dom0).
/bin/busybox mkdir -p /proc /sys /dev
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
insmod /xen-blkfront.ko
insmod /xen-netfront.ko
n=0
while [ ! -b /dev/xvda ] && [ $n -lt 60 ]; do sleep 1; n=$((n + 1)); done
ifconfig eth0 up 2>/dev/null
echo "guest: io up ($(ls /dev | grep xvd))"
while :; do
    dd if=/dev/xvda of=/dev/null bs=64k 2>/dev/null
    echo 3 > /proc/sys/vm/drop_caches
done
