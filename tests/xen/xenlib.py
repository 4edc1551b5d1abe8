"""Helpers for tests that run inside dom0 of a real Xen host (make xen-test)."""
import json
import re
import subprocess
import time
from typing import Callable, Optional

GUEST_KERNEL = "/opt/guest/vmlinux"
GUEST_INITRD = "/opt/guest/initrd.cpio"
MEMCHECK_INITRD = "/opt/guest/initrd-mem.cpio"
CONSOLE_LOGS = "/var/log/xen/console"
# Every wait below is a hang guard, never a measurement: on a busy machine the emulated
# dom0 runs several times slower (an HVM guest's `xl create` took over 120 s with both host
# cores kept busy), so each wait is stretched by this much.  Tests judge by placement,
# page counts and checksums only.
PATIENCE = 4


def patient(seconds: float) -> float:
    """A hang guard of ``seconds`` on an idle machine, stretched for a busy one."""
    return seconds * PATIENCE


def xl(*args: str) -> str:
    proc = subprocess.run(["xl", *args], capture_output=True, text=True, timeout=patient(120))
    if proc.returncode != 0:
        raise RuntimeError(f"xl {' '.join(args)} failed: {one_line(proc.stderr)}")
    return proc.stdout


def one_line(text: str) -> str:
    """xl's stderr on one line, without its "Parsing config" preamble: a failed test's
    reason is the first line of its message, and CI keeps only that."""
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.startswith("Parsing config from")]
    return " | ".join(lines) or "(nothing on stderr)"


# Xen's words when a guest dies on its own (the harness looks for them too)
DEATH_WORDS = ("Triple fault", "domain_crash", "crashed", "HVM shutdown", "Dumping Dom")


def live_domain(hv, domid: int):
    """The domain's record; if it is gone, an AssertionError quoting what Xen's console
    says of it (a guest that died says nothing else: the next call just gets ESRCH)."""
    for d in hv.domains():
        if d.domid == domid:
            return d
    raise AssertionError(f"domain {domid} is gone; Xen's console says: {death_said(domid)}")


def death_said(domid: int) -> str:
    said = [line.strip() for line in xl("dmesg").splitlines()
            if any(w in line for w in DEATH_WORDS) and re.search(rf"\b(d|Dom|Domain ){domid}(v|\b)", line)]
    return " / ".join(said[-3:]) or "nothing of it"


def running_domain(hv, domid: int):
    """:func:`live_domain`, and an AssertionError too for a domain that has shut down (a
    crash kept by ``on_crash = "preserve"``, as an HVM guest's triple fault is): a wait
    for its output would otherwise last its whole hang guard, the next one as long."""
    d = live_domain(hv, domid)
    if d.shutdown:
        raise AssertionError(f"domain {domid} has shut down ({GUEST_DIED}); Xen's console says: {death_said(domid)}")
    return d


def create_guest(name: str, paused: bool = True, memory: int = 128, maxmem: int = 0, vcpus: int = 2,
                 kind: str = "pv", initrd: str = GUEST_INITRD, extra: str = "", **cfg: str) -> int:
    """xl create a guest (PV, or PVH) with a tiny busybox initramfs; returns its domid."""
    lines = [f'name = "{name}"', f'type = "{kind}"', f'kernel = "{GUEST_KERNEL}"', f'ramdisk = "{initrd}"',
             f'extra = "console=hvc0 rdinit=/init quiet {extra}"', f"memory = {memory}", f"vcpus = {vcpus}",
             'on_crash = "destroy"']
    if kind == "pvh":
        lines.append('tsc_mode = "native"')
    if maxmem:
        lines.append(f"maxmem = {maxmem}")
    lines += [f'{k} = "{v}"' for k, v in cfg.items()]
    path = f"/tmp/{name}.cfg"
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    xl("create", *(["-p"] if paused else []), path)
    return int(xl("domid", name).strip())


# --- Xen's console ring, read through libxenctrl directly ---------------------------------------
# Not `xl dmesg`: libxl reads each next chunk no larger than the last one it got, so once a
# short read has shrunk its window, a steady stream of hypervisor messages keeps it reading
# for ever (a CI run's `xl dmesg` had not returned after 480 s; the cause was not kept, and
# this is the likely one).  This reader's window stays
# fixed and it stops at a byte limit, whatever Xen is printing meanwhile.
RING_CHUNK = 16384
RING_LIMIT = 4 << 20


def _xenctrl():
    import ctypes

    lib = ctypes.CDLL("libxenctrl.so.4.17", use_errno=True)
    lib.xc_interface_open.restype = ctypes.c_void_p
    lib.xc_interface_open.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint]
    lib.xc_interface_close.argtypes = [ctypes.c_void_p]
    lib.xc_readconsolering.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint),
                                       ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_uint32)]
    xch = lib.xc_interface_open(None, None, 0)
    if not xch:
        raise OSError(ctypes.get_errno(), "xc_interface_open")
    return ctypes, lib, xch


def read_ring(index: int = 0, limit: int = RING_LIMIT) -> tuple:
    """(text, next index): the console ring from ``index`` (0: its oldest byte) on, at most
    ``limit`` bytes.  Stops at the first short read, i.e. once it has caught up."""
    ctypes, lib, xch = _xenctrl()
    try:
        idx = ctypes.c_uint32(index)
        buf = ctypes.create_string_buffer(RING_CHUNK)
        parts, total = [], 0
        while total < limit:
            nr = ctypes.c_uint(RING_CHUNK)
            if lib.xc_readconsolering(xch, buf, ctypes.byref(nr), 0, 1, ctypes.byref(idx)) != 0:
                raise OSError(ctypes.get_errno(), "xc_readconsolering")
            parts.append(buf.raw[:nr.value])
            total += nr.value
            if nr.value < RING_CHUNK:
                break
        return b"".join(parts).decode("utf-8", "replace"), idx.value
    finally:
        lib.xc_interface_close(xch)


def ring_end() -> int:
    """The index just past the ring's newest byte, or as near as four bounded reads get
    while the hypervisor floods its console."""
    index = 0
    for _ in range(4):
        text, index = read_ring(index)
        if len(text) < RING_LIMIT:
            break
    return index


def chatter(lines, top: int = 5) -> str:
    """The most repeated of ``lines`` (numbers folded), most first: says who floods a console."""
    counts = {}
    for line in lines:
        key = re.sub(r"[0-9a-f]{4,}|\d+", "N", line.strip())
        counts[key] = counts.get(key, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
    return "; ".join(f"{n}x {line[:100]}" for line, n in ranked) or "none"


def debug_key_dump() -> dict:
    """Pages per node per domain from a fresh 'u' dump, parsed here independently of libxenuma.

    The dump is printed inside the debug-keys hypercall, so it is all in the ring once
    `xl debug-keys` returns: one bounded read from the index taken before it finds it."""
    start_index = ring_end()
    xl("debug-keys", "u")
    text, _ = read_ring(start_index)
    start = text.rfind("Memory location of each domain:")
    if start < 0:
        raise AssertionError(f"no debug-key 'u' dump in {len(text)} bytes of the console ring after the key; "
                             f"most repeated there: {chatter(text.splitlines())}")
    if len(text) > 256 << 10:
        print(f"XEN-INFO the console ring grew by {len(text)} bytes around one 'u' dump: {chatter(text.splitlines())}")
    result, current = {}, None
    for line in text[start:].splitlines()[1:]:
        m = re.search(r"(?:Domain |\bd)(\d+) \(total: (\d+)\):", line)
        if m:
            current = int(m.group(1))
            result[current] = {}
            continue
        m = re.search(r"Node (\d+): (\d+)\s*$", line)
        if m and current is not None:
            result[current][int(m.group(1))] = int(m.group(2))
    return result


def console(name: str) -> str:
    """What the guest has printed on its console so far (xenconsoled's log)."""
    try:
        with open(f"{CONSOLE_LOGS}/guest-{name}.log", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


SILENT_GUEST = "printed nothing at all (an empty console)"
# What wait_console says of a guest the emulator, not the code under test, stopped: one that
# died or hung before anything under test had touched it (a fixture's first wait after
# ``xl create``; a PVH guest's own crash shutdown makes Xen print nothing).  The harness
# reruns such a boot's files (docs/testing.md, "Guest triple faults under QEMU").  A guest that died
# after the code under test acted on it (a page move) is that code's failure: GUEST_DIED
# says so, and gets no rerun.
GUEST_DIED = "the guest died"
GUEST_UNTOUCHED = "before anything under test touched it"
PANIC_WORDS = ("Kernel panic - ", "Oops: ", "general protection fault", "double fault")
LOOK_EVERY = 5.0  # seconds between checks that the guest's domain is still there


def domain_exists(name: str) -> bool:
    """False only when xl says the domain is not there (a failing or hung xl says nothing)."""
    try:
        proc = subprocess.run(["xl", "domid", name], capture_output=True, text=True, timeout=patient(60))
    except subprocess.TimeoutExpired:
        return True
    return proc.returncode == 0 or "does not exist" not in proc.stderr


def last_lines(text: str, count: int = 2, limit: int = 240) -> str:
    """The last ``count`` non-blank lines of a console, on one line (pytest's summary and
    CI's log tail keep only a failure's first line)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()][-count:]
    return " | ".join(lines)[-limit:]


def console_verdict(name: str, pattern: str, text: str, after: int, gone: bool, untouched: bool,
                    waited: float) -> str:
    """Why a guest never printed ``pattern`` past ``after``: the first line says how the
    guest ended and what it printed last."""
    if not text.strip():  # the harness reruns such a boot's files (docs/testing.md, "a guest that printed nothing")
        return f"guest {name} {SILENT_GUEST} in {waited:.0f} s" + ("; its domain is gone" if gone else "")
    text = text[after:]
    died = gone or any(word in text for word in PANIC_WORDS)
    how = (f": it {'died' if died else 'stopped'} {GUEST_UNTOUCHED}" if untouched else
           f": {GUEST_DIED}" if died else "")
    return (f"guest {name} never printed /{pattern}/{how}; its last lines: {last_lines(text)}"
            f"\nconsole tail:\n{text[-1500:]}")


def wait_console(name: str, pattern: str, timeout: float = 120.0, after: int = 0,
                 untouched: bool = False) -> re.Match:
    """Wait until the guest's console (from offset ``after``) matches ``pattern``; fail at
    once if the guest's domain goes.  ``untouched``: nothing under test has acted on the
    guest yet (a fixture's first wait after ``xl create``)."""
    start = time.monotonic()
    deadline, look = start + patient(timeout), start + LOOK_EVERY
    while True:
        m = re.search(pattern, console(name)[after:])
        if m:
            return m
        now = time.monotonic()
        gone = now >= look and not domain_exists(name)
        look = now + LOOK_EVERY if now >= look else look
        if gone or now > deadline:
            text = console(name)  # read after the domain went: all it ever printed
            m = re.search(pattern, text[after:])
            if m:
                return m
            raise AssertionError(console_verdict(name, pattern, text, after, gone, untouched, now - start))
        time.sleep(0.5)


# --- HVM guests (tests/xen/hvm) ------------------------------------------------------------------
GUEST_BZIMAGE = "/opt/guest/vmlinuz"
HVM_INITRD = "/opt/guest/initrd-hvm.cpio"


def hvm_config(name: str, memory: int, vcpus: int, serial_log: str, disk: str, extra_lines=()) -> str:
    """An xl.cfg for an HVM guest with QEMU: direct kernel boot of the Debian bzImage,
    one emulated IDE disk (kept by xen_emul_unplug=never, so its I/O goes through QEMU),
    QEMU's serial port on a pty (xenconsoled does not log an HVM guest's serial: copy it
    with follow_serial).  ``serial_log`` is where follow_serial will copy it."""
    del serial_log  # the pty's path is known only once QEMU runs
    lines = [f'name = "{name}"', 'type = "hvm"', f'kernel = "{GUEST_BZIMAGE}"', f'ramdisk = "{HVM_INITRD}"',
             # ttyS0 last: /dev/console, where the guest's /init says it is up (the serial
             # path works); its workload then writes to hvc0, which xenconsoled logs
             'cmdline = "console=hvc0 console=ttyS0,115200 rdinit=/init xen_emul_unplug=never quiet"',
             f"memory = {memory}", f"maxmem = {memory}", f"vcpus = {vcpus}",
             'serial = "pty"', 'vga = "none"', "vnc = 0", "sdl = 0",
             # Xen's TSC emulation needs the instruction length SVM's NRIP gives; QEMU's
             # software SVM has none, so an intercepted RDTSCP loops for ever (seen here)
             'tsc_mode = "native"',
             # qdisk: QEMU serves the PV side of the disk too (the test dom0 has no blkback or loop)
             f'disk = ["format=raw,vdev=hda,access=rw,backendtype=qdisk,target={disk}"]',
             'on_crash = "preserve"', 'on_reboot = "destroy"']
    return "\n".join(lines + list(extra_lines)) + "\n"


def read_file(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def wait_file(path: str, pattern: str, timeout: float, after: int = 0,
              alive: Optional[Callable[[], object]] = None) -> re.Match:
    """Wait until the file (from offset ``after``) matches ``pattern``; ``timeout`` is a
    hang guard, stretched (patient).  ``alive`` is called every LOOK_EVERY seconds and
    raises once the guest writing the file has died (:func:`running_domain`)."""
    timeout = patient(timeout)
    deadline = time.monotonic() + timeout
    look = time.monotonic() + LOOK_EVERY
    while True:
        m = re.search(pattern, read_file(path)[after:])
        if m:
            return m
        if alive is not None and time.monotonic() >= look:
            look = time.monotonic() + LOOK_EVERY
            alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never showed /{pattern}/ in {timeout:.0f} s; tail:\n{read_file(path)[-1500:]}")
        time.sleep(1)


def follow_serial(domid: int, out_path: str, timeout: float = 120.0):
    """Copy the HVM guest's serial port (QEMU's pty, which libxl records in xenstore)
    into ``out_path`` from a daemon thread; returns the thread."""
    import os
    import threading
    import tty

    deadline = time.monotonic() + patient(timeout)
    path = ""
    while not path:
        out = subprocess.run(["xenstore-read", f"/local/domain/{domid}/serial/0/tty"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, universal_newlines=True, timeout=patient(30))
        path = out.stdout.strip() if out.returncode == 0 else ""
        if not path:
            if time.monotonic() > deadline:
                raise AssertionError(f"no serial pty for domain {domid} in xenstore")
            time.sleep(1)
    fd = os.open(path, os.O_RDONLY | os.O_NOCTTY)
    tty.setraw(fd)  # no echo: an echo would go back to the guest as input

    def copy():
        with open(out_path, "ab", buffering=0) as f:
            while True:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    return
                if not data:
                    return
                f.write(data.replace(b"\r", b""))

    thread = threading.Thread(target=copy, daemon=True)
    thread.start()
    return thread


def gfns_in(ranges: str) -> list:
    """The gfns of a report's ranges ('0x10-0x1f,0x40')."""
    out = []
    for part in filter(None, ranges.split(",")):
        first, _, last = part.partition("-")
        out.extend(range(int(first, 16), int(last or first, 16) + 1))
    return out


def stopped_move(hv, domid: int, err) -> str:
    """A move's MoveStopped as a test failure's text: its whole report (which gfns stayed
    referenced) and what a fresh scan takes each of those gfns for now."""
    from xapi_numa.core.memory_move import SKIP_REASONS

    report = json.loads(err.params[2])
    classes = hv.memory_map(domid).classes
    stuck = {hex(g): SKIP_REASONS.get(classes[g], classes[g]) if g < len(classes) else None
             for g in gfns_in(report.get("stuck_gfns", ""))}
    return "{}\nreport: {}\nscan classes of the stuck gfns now: {}".format(err.message, report, stuck)
