#!/bin/busybox sh
# /init of the test guests built from tests/xen/guest: devices, the grant
# allocator, then memcheck (keeps checksumming its own memory; the page-migration
# tests) or, with guest=spin, one spinner per vCPU (the daemon suite).
/bin/busybox mkdir -p /proc /dev /sys
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox insmod /xen-gntalloc.ko 2>/dev/null
echo "guest: up"
# guest=spin on the kernel command line: the daemon suite's busy guest
case "$(cat /proc/cmdline)" in
    *guest=spinmem*) /spin & exec /memcheck 8 ;;  # busy on every vCPU, and checksumming
    *guest=spin*) exec /spin ;;
esac
exec /memcheck 8
