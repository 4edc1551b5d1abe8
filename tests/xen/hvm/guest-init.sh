#!/bin/busybox sh
# /init of the HVM test guest (tests/xen/hvm): reports the NUMA topology the guest
# sees, loads the emulated IDE disk's driver, runs memcheck (self-checksumming
# memory) in the background and, in the foreground, writes random blocks to the
# emulated disk through QEMU and reads them back (page cache dropped) to check them.
# Only "guest: up" goes to the serial port; the rest goes to the PV console.
/bin/busybox mkdir -p /proc /dev /sys /tmp
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
echo "guest: up"
# The workload's lines go to the PV console (hvc0): xenconsoled copies its shared ring in
# bulk and logs it.  On the emulated serial port each character is a round trip to QEMU in
# dom0; on a loaded host CPU 0 then sat for minutes in the port's interrupt handler with
# interrupts off, the disk's interrupt waited behind it and the lines trickled out.
if [ -c /dev/hvc0 ]; then
    exec > /dev/hvc0 2>&1
    echo "guest: up on hvc0"
else
    echo "guest: no /dev/hvc0, the workload's lines stay on the serial port"
fi
for node in /sys/devices/system/node/node*; do
    [ -d "$node" ] || continue
    kb=$(grep MemTotal "$node/meminfo" | tr -s ' ' | cut -d' ' -f4)
    echo "numa: $(basename "$node") cpus=$(cat "$node/cpulist") memkb=$kb"
done
# the node spans the kernel set up from the SRAT (MemTotal lacks what the kernel keeps)
/bin/busybox dmesg | /bin/busybox grep -E "SRAT: Node|Initmem setup node|NUMA: " | while read -r line; do
    echo "numa-log: $line"
done
echo "numa: done"
for name in scsi_common scsi_mod libata ata_piix crct10dif_common crc-t10dif crc64 crc64-rocksoft t10-pi sd_mod; do
    insmod "/modules/$name.ko" 2>/dev/null || echo "guest: insmod $name failed"
done
/memcheck 16 &
memcheck=$!
# The disk needs a moment to be probed after its driver loads.
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
    [ -b /dev/sda ] && break
    sleep 1
done
[ -b /dev/sda ] || { echo "diskcheck: no /dev/sda"; ls /sys/block; exec sleep 100000; }
echo "diskcheck: /dev/sda present"
n=0
while :; do
    n=$((n + 1))
    slot=$((n % 16))
    dd if=/dev/urandom of=/tmp/blk bs=64k count=16 2>/dev/null
    md5sum < /tmp/blk | cut -d' ' -f1 > "/tmp/sum.$slot"
    dd if=/tmp/blk of=/dev/sda bs=64k seek=$((slot * 16)) conv=fsync 2>/dev/null || echo "diskcheck: write failed"
    echo 3 > /proc/sys/vm/drop_caches
    bad=""
    # the block just written, and one written eight passes ago (before any move in between)
    for s in $slot $(((n + 8) % 16)); do
        [ -f "/tmp/sum.$s" ] || continue
        got=$(dd if=/dev/sda bs=64k skip=$((s * 16)) count=16 2>/dev/null | md5sum | cut -d' ' -f1)
        [ "$got" = "$(cat /tmp/sum.$s)" ] || bad="$bad $s"
    done
    # memcheck's state (R, S, D...) and where it waits: what a silent memcheck was doing
    mc="gone"
    [ -r "/proc/$memcheck/stat" ] && mc="$(cut -d' ' -f3 "/proc/$memcheck/stat") $(cat "/proc/$memcheck/wchan" 2>/dev/null)"
    if [ -n "$bad" ]; then echo "diskcheck: CORRUPT pass $n slots$bad"; else echo "diskcheck: pass $n ok (memcheck $mc)"; fi
    sleep 2
done
