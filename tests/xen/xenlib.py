"""Helpers for tests that run inside dom0 of a real Xen host (make xen-test)."""
import re
import subprocess
import time

GUEST_KERNEL = "/opt/guest/vmlinux"
GUEST_INITRD = "/opt/guest/initrd.cpio"
MEMCHECK_INITRD = "/opt/guest/initrd-mem.cpio"
CONSOLE_LOGS = "/var/log/xen/console"


def xl(*args: str) -> str:
    proc = subprocess.run(["xl", *args], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"xl {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


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


def debug_key_dump() -> dict:
    """Pages per node per domain from a fresh 'u' dump, parsed here independently of libxenuma."""
    xl("debug-keys", "u")
    time.sleep(0.5)
    text = xl("dmesg")
    start = text.rfind("Memory location of each domain:")
    assert start >= 0, "no debug-key 'u' dump in the console ring"
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


def wait_console(name: str, pattern: str, timeout: float = 120.0, after: int = 0) -> re.Match:
    """Wait until the guest's console (from offset ``after``) matches ``pattern``."""
    deadline = time.monotonic() + timeout
    while True:
        m = re.search(pattern, console(name)[after:])
        if m:
            return m
        if time.monotonic() > deadline:
            raise AssertionError(f"guest {name} never printed /{pattern}/; console tail:\n{console(name)[-1500:]}")
        time.sleep(0.5)
