#!/bin/busybox sh
# /init of the PVH page-migration test guest: devices, the grant allocator,
# then memcheck keeps checksumming its own memory and reports on the console.
/bin/busybox mkdir -p /proc /dev /sys
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox insmod /xen-gntalloc.ko 2>/dev/null
echo "guest: up"
exec /memcheck 16
