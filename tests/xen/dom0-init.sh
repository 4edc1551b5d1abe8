#!/bin/sh
# /init of the test dom0: bring up the Xen toolstack daemons, run the
# real-Xen tests, print their results on the console, power off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/lib/xen-4.17/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
# / is the unpacked image in the kernel's rootfs tmpfs, sized half of dom0's memory: 284 MiB
# of its 306 were the image, and Xen's userdata, logs and bytecode ran out of the rest now and
# then (XEN-TEST-SPACE, 2026-12-03 and -04). Its pages are taken only as files are written.
mount -o remount,size=75% / 2>/dev/null || echo "XEN-TEST: the root file system keeps its size"
mkdir -p /run/xen /run/xenstored /var/run/xen /var/lib/xen /var/log/xen /var/lib/xenstored
for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs; do
    modprobe "$m" || echo "XEN-TEST: modprobe $m failed"
done
mount -t xenfs xenfs /proc/xen
XENSTORED=$(command -v oxenstored || command -v xenstored || ls /usr/lib/xen-4.17/bin/*xenstored 2>/dev/null | head -n1)
"$XENSTORED" --pid-file /run/xenstored.pid 2>/dev/null || "$XENSTORED"
sleep 1
xen-init-dom0 || echo "XEN-TEST: xen-init-dom0 failed"
mkdir -p /var/log/xen/console
xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console || echo "XEN-TEST: xenconsoled failed"
echo "XEN-TEST: dom0 ready: $(xl info | grep -E '^xen_scheduler' | tr -s ' ')"
cd /opt/xapi-numa
# a crash in native code shows the Python stack that led to it (children inherit it)
export PYTHONFAULTHANDLER=1
# The timeout only catches a hang: a busy host runs QEMU several times slower (tests judge
# placement and page counts, never time), so it is far above an idle run's 4-8 minutes.
SUITE=$(sed -n 's/.*xentest=\([a-z0-9]*\).*/\1/p' /proc/cmdline)
# -rfE and a wide "terminal": each failure's reason on one line in the short summary
COLUMNS=400 PYTHONPATH=/opt/xapi-numa XAPI_NUMA_BACKEND=xen timeout 2400 python3 -m pytest -p no:cacheprovider -q -rfEsP --durations=12 \
    "tests/xen/${SUITE:-dom0}" 2>&1 | sed -u 's/^/XEN-TEST: /'
echo "XEN-TEST-EXIT: done"
sync
# debootstrap's minbase has no poweroff(8): the kernel's own power-off (sysrq o) ends the run at
# once; were it missing, init exiting makes dom0 panic and Xen reset the machine 5 s later
echo o > /proc/sysrq-trigger
sleep 60
