"""Helpers for tests that run inside dom0 of a real Xen host (make xen-test)."""
import re
import subprocess
import time

GUEST_KERNEL = "/opt/guest/vmlinux"
GUEST_INITRD = "/opt/guest/initrd.cpio"


def xl(*args: str) -> str:
    proc = subprocess.run(["xl", *args], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"xl {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def create_guest(name: str, paused: bool = True, memory: int = 128, maxmem: int = 0, vcpus: int = 2,
                 **cfg: str) -> int:
    """xl create a PV guest with the tiny busybox initramfs; returns its domid."""
    lines = [f'name = "{name}"', 'type = "pv"', f'kernel = "{GUEST_KERNEL}"', f'ramdisk = "{GUEST_INITRD}"',
             'extra = "console=hvc0 rdinit=/init quiet"', f"memory = {memory}", f"vcpus = {vcpus}",
             'on_crash = "destroy"']
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
