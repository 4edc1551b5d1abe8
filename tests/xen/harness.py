#!/usr/bin/env python3
"""``make xen-test``: real Xen 4.17 with two NUMA nodes, under QEMU.

Builds (and caches in .cache/xen) a Debian 12 dom0 image with Xen's
toolstack and this project in it, boots Xen under QEMU (software
emulation) with 2 NUMA nodes, runs the real-Xen pytest suite inside dom0
and reads the results back from the serial console.  It boots twice: with
credit2 (Xen's default) and with credit1 (``sched=credit``).  A hang or a
panic ends at a timeout and fails.  Follows ../shared/xen-in-qemu.md.

The dom0 build of libxenuma (``make dom0-lib``: build/dom0/libxenuma.so, the
file the RPM ships) goes into dom0 byte for byte, laid out as the RPM lays out
its private directory, and the dom0 suite runs it on the stock path
(tests/xen/dom0/test_dom0_lib_real.py); its sha256 is logged here and checked
against what dom0 loaded.

Run as root (debootstrap, chroot); needs qemu-system-x86 debootstrap cpio
busybox-static kmod libxen-dev gcc (the CI script installs them).
"""

import argparse
import glob
import hashlib
import importlib.util
import lzma
import os
import re
import shutil
import subprocess
import sys
import time

from xenlib import DEATH_WORDS, GUEST_UNTOUCHED, SILENT_GUEST, chatter  # this directory: the helpers shared with the suites in dom0

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(ROOT, ".cache", "xen")
MIRROR = os.environ.get("XEN_TEST_MIRROR")  # else the machine's own apt sources
DOM0_PACKAGES = ["xen-utils-4.17", "xenstore-utils", "python3", "python3-attr", "python3-cffi-backend",
                 "python3-pytest", "kmod", "procps"]
XEN_MODULES = ["xen-evtchn", "xen-gntdev", "xen-gntalloc", "xen-privcmd", "xenfs"]
# Xen's lazy FPU switching (its default on the emulated AMD CPU) sets CR0.TS when a vCPU is
# switched out and restores its vector registers on the #NM trap that the vCPU's next FPU or
# vector instruction raises.  QEMU's TCG (7.2, Debian 12) raises #NM for FXSAVE, FXRSTOR and
# SSE/AVX instructions but not for XSAVE, XSAVEOPT or XRSTOR (translate.c, opcode 0F AE), which
# Linux uses to switch its own tasks' vector state: a guest's or dom0's kernel then saved or
# loaded registers that belonged to another vCPU.  Seen: an HVM guest's xmm0 changing under
# memcheck, xl and our CLI dying of SIGSEGV in dom0, glibc's printf in a PVH guest returning its
# format unfilled.  Eager switching (Xen's choice on Intel since XSA-267) never runs a vCPU with
# CR0.TS set, so the missing trap never matters.  Real hardware traps all of them.
EAGER_FPU = "spec-ctrl=eager-fpu"
REASON_CHARS = 400  # of each failed test's reason, repeated at the end of the run
BOOT_TIMEOUT = int(os.environ.get("XEN_TEST_TIMEOUT", "2700"))  # a hang guard above dom0-init.sh's 2400 s
# Backends for the backend-alignment test: blkback over a loop device, netback (dom0),
# and the frontends its PVH guest loads (paths under the kernel's modules directory).
BACKEND_MODULES = ["drivers/block/loop.ko", "drivers/block/xen-blkback/xen-blkback.ko",
                   "drivers/net/xen-netback/xen-netback.ko"]
FRONTEND_MODULES = ["drivers/block/xen-blkfront.ko", "drivers/net/xen-netfront.ko"]
# HVM guests (the hvm suite): Xen's device model; hvmloader comes with xen-utils.
HVM_PACKAGES = ["qemu-system-xen"]
# The dom0 build of libxenuma (make dom0-lib) and where dom0 finds it: the RPM's layout
# (/opt/xapi-numa/lib there), with the package copied as the RPM copies it.
DOM0_LIB = os.path.join(ROOT, "build", "dom0")
DOM0_LIB_DEST = "opt/xapi-numa/dom0-lib"
# cffi's Python half for dom0's python3-cffi-backend (ABI mode parses the header): Debian 12's
# own, the versions that backend pairs with; unpacked into the overlay, not the cached image.
CFFI_DEBS = ["python3-cffi", "python3-pycparser", "python3-ply"]
CFFI_MODULES = ["cffi", "pycparser", "ply"]
# The emulated IDE disk inside the HVM guest, in load order (Debian builds them as modules).
HVM_GUEST_MODULES = ["scsi_common", "scsi_mod", "libata", "ata_piix", "crct10dif_common", "crc-t10dif",
                     "crc64", "crc64-rocksoft", "t10-pi", "sd_mod"]


def log(msg: str) -> None:
    print(f"[xen-test] {msg}", flush=True)


def run(cmd, **kw) -> None:
    subprocess.run(cmd, check=True, **kw)


def mirror() -> str:
    """$XEN_TEST_MIRROR, else the machine's own Debian mirror from its apt sources."""
    if MIRROR:
        return MIRROR
    for path in glob.glob("/etc/apt/sources.list.d/*.sources") + ["/etc/apt/sources.list"]:
        try:
            text = open(path).read()
        except OSError:
            continue
        m = re.search(r"^URIs:\s*(\S+/debian)\s*$", text, re.M) or re.search(r"^deb\s+(\S+/debian)\s+bookworm", text, re.M)
        if m:
            return m.group(1)
    raise SystemExit("no Debian mirror in this machine's apt sources (/etc/apt/sources.list*); "
                     "set XEN_TEST_MIRROR to the Debian mirror debootstrap should use")


# --- pieces from Debian packages -----------------------------------------------------------
def kernel_version() -> str:
    out = subprocess.run(["apt-cache", "depends", "linux-image-amd64"], capture_output=True, text=True,
                         check=True).stdout
    m = re.search(r"Depends: linux-image-(\S+-amd64)", out)
    if not m:
        raise SystemExit("cannot tell which kernel linux-image-amd64 depends on (run apt-get update)")
    return m.group(1)


def fetch_debs() -> str:
    debs = os.path.join(CACHE, "debs")
    stamp = os.path.join(debs, ".done")
    if os.path.exists(stamp):
        return debs
    os.makedirs(debs, exist_ok=True)
    version = kernel_version()
    log(f"downloading xen-hypervisor-4.17-amd64 and linux-image-{version}")
    run(["apt-get", "download", "-q", "xen-hypervisor-4.17-amd64", f"linux-image-{version}"], cwd=debs,
        stderr=subprocess.DEVNULL)
    for deb in glob.glob(os.path.join(debs, "*.deb")):
        run(["dpkg", "-x", deb, os.path.join(debs, "x")])
    open(stamp, "w").close()
    return debs


def xen_image(debs: str) -> str:
    out = os.path.join(CACHE, "xen-4.17")
    if not os.path.exists(out):
        gz = glob.glob(os.path.join(debs, "x", "boot", "xen-4.17-amd64.gz"))[0]
        with open(out, "wb") as f:
            run(["zcat", gz], stdout=f)
    return out


def vmlinux(debs: str) -> str:
    """The uncompressed kernel inside the bzImage (emulated Xen is slow to decompress)."""
    out = os.path.join(CACHE, "vmlinux")
    if os.path.exists(out):
        return out
    bz = glob.glob(os.path.join(debs, "x", "boot", "vmlinuz-*"))[0]
    data = open(bz, "rb").read()
    at = data.find(b"\xfd7zXZ\x00")
    if at < 0:
        raise SystemExit("no XZ payload in the kernel image")
    raw = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[at:])
    with open(out, "wb") as f:
        f.write(raw)
    return out


# --- the dom0 root file system ---------------------------------------------------------------
def rootfs(debs: str) -> str:
    root = os.path.join(CACHE, "rootfs")
    stamp = os.path.join(CACHE, "rootfs.done")
    if os.path.exists(stamp):
        return root
    if not os.path.exists(os.path.join(root, "usr", "bin", "apt-get")):
        shutil.rmtree(root, ignore_errors=True)
        log("debootstrap (minbase bookworm)")
        run(["debootstrap", "--variant=minbase", "bookworm", root, mirror()], stdout=subprocess.DEVNULL)
    log("installing Xen tools and Python into the dom0 image")
    with open(os.path.join(root, "usr", "sbin", "policy-rc.d"), "w") as f:
        f.write("#!/bin/sh\nexit 101\n")  # no service starts in the chroot
    os.chmod(os.path.join(root, "usr", "sbin", "policy-rc.d"), 0o755)
    shutil.copy("/etc/resolv.conf", os.path.join(root, "etc", "resolv.conf"))
    proc = os.path.join(root, "proc")
    run(["mount", "--bind", "/proc", proc])
    try:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C")
        run(["chroot", root, "apt-get", "update", "-qq"], env=env)
        run(["chroot", root, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *DOM0_PACKAGES],
            env=env, stdout=subprocess.DEVNULL)
        run(["chroot", root, "apt-get", "clean"], env=env)
    finally:
        run(["umount", proc])
    trim(root)
    add_modules(root, debs)
    add_guest_kernel(root, debs)
    open(stamp, "w").close()
    return root


def add_device_model(root: str, debs: str) -> None:
    """qemu-system-xen and the bzImage (HVM direct kernel boot) on top of the cached
    image, with its own stamp so an image built before the hvm suite is not rebuilt."""
    stamp = os.path.join(CACHE, "rootfs-hvm.done")
    if os.path.exists(stamp):
        return
    log("installing the HVM device model into the dom0 image")
    proc = os.path.join(root, "proc")
    run(["mount", "--bind", "/proc", proc])
    try:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C")
        run(["chroot", root, "apt-get", "update", "-qq"], env=env)
        run(["chroot", root, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *HVM_PACKAGES],
            env=env, stdout=subprocess.DEVNULL)
        run(["chroot", root, "apt-get", "clean"], env=env)
    finally:
        run(["umount", proc])
    trim(root)
    shutil.copy(glob.glob(os.path.join(debs, "x", "boot", "vmlinuz-*"))[0],
                os.path.join(root, "opt", "guest", "vmlinuz"))
    open(stamp, "w").close()


def trim(root: str) -> None:
    for pattern in ("usr/share/doc/*", "usr/share/man/*", "usr/share/locale/*", "usr/share/info/*",
                    "var/lib/apt/lists/*", "var/cache/apt/*", "usr/share/zoneinfo/*"):
        for path in glob.glob(os.path.join(root, pattern)):
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.unlink(path)


def add_modules(root: str, debs: str) -> None:
    src = glob.glob(os.path.join(debs, "x", "lib", "modules", "*"))[0]
    version = os.path.basename(src)
    dst = os.path.join(root, "lib", "modules", version)
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(os.path.join(src, "kernel", "drivers", "xen"), os.path.join(dst, "kernel", "drivers", "xen"))
    for rel in BACKEND_MODULES:
        os.makedirs(os.path.dirname(os.path.join(dst, "kernel", rel)), exist_ok=True)
        shutil.copy(os.path.join(src, "kernel", rel), os.path.join(dst, "kernel", rel))
    for name in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        if os.path.exists(os.path.join(src, name)):
            shutil.copy(os.path.join(src, name), dst)
    run(["depmod", "-b", root, version])


def add_guest_kernel(root: str, debs: str) -> None:
    """The guest kernel (the same vmlinux) goes into the cached image."""
    guest = os.path.join(root, "opt", "guest")
    os.makedirs(guest, exist_ok=True)
    shutil.copy(vmlinux(debs), os.path.join(guest, "vmlinux"))


def busybox_tree(name: str, tools, init_script: str) -> str:
    """A fresh initramfs tree in the cache: busybox with these applets and /init."""
    tree = os.path.join(CACHE, name)
    shutil.rmtree(tree, ignore_errors=True)
    os.makedirs(os.path.join(tree, "bin"))
    shutil.copy("/bin/busybox", os.path.join(tree, "bin", "busybox"))
    for tool in tools:
        os.symlink("busybox", os.path.join(tree, "bin", tool))
    shutil.copy(init_script, os.path.join(tree, "init"))
    os.chmod(os.path.join(tree, "init"), 0o755)
    return tree


def guest_initrd(out: str) -> None:
    """A busybox initramfs for PV test guests (rebuilt per run: its /init is a test file)."""
    pack(busybox_tree("guest-initrd", ("sh", "mount", "mkdir", "echo", "sleep"),
                      os.path.join(HERE, "guest-init.sh")), out)


def memcheck_initrd(debs: str, out: str) -> None:
    """The guests that run programs: busybox, the grant allocator module, memcheck and
    spin (static, built here); /init picks one (see guest/init.sh)."""
    tree = busybox_tree("guest-mem-initrd", ("sh", "mount", "mkdir", "echo", "insmod"),
                        os.path.join(HERE, "guest", "init.sh"))
    for program in ("memcheck", "spin"):
        run(["gcc", "-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o", os.path.join(tree, program),
             os.path.join(HERE, "guest", f"{program}.c")])
    module = glob.glob(os.path.join(debs, "x", "lib", "modules", "*", "kernel", "drivers", "xen", "xen-gntalloc.ko"))
    if module:
        shutil.copy(module[0], os.path.join(tree, "xen-gntalloc.ko"))
    pack(tree, out)


def hvm_initrd(debs: str, out: str) -> None:
    """The HVM guest: memcheck plus a disk checker over the emulated IDE disk
    (hvm/guest-init.sh), with the disk driver modules it loads."""
    tree = busybox_tree("guest-hvm-initrd", ("sh", "mount", "mkdir", "echo", "insmod", "dd", "md5sum", "cat",
                                             "sleep", "ls", "grep", "head", "sync", "cut", "tr"),
                        os.path.join(HERE, "hvm", "guest-init.sh"))
    run(["gcc", "-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o", os.path.join(tree, "memcheck"),
         os.path.join(HERE, "guest", "memcheck.c")])
    os.makedirs(os.path.join(tree, "modules"))
    for name in HVM_GUEST_MODULES:
        found = glob.glob(os.path.join(debs, "x", "lib", "modules", "*", "kernel", "**", name + ".ko"),
                          recursive=True)
        if not found:
            raise SystemExit(f"kernel module {name} missing from the Debian kernel package")
        shutil.copy(found[0], os.path.join(tree, "modules", name + ".ko"))
    pack(tree, out)


def backend_io(debs: str, tree: str) -> None:
    """The backend-alignment test's pieces, in the per-run overlay (no image rebuild): the
    backend modules for dom0 (insmod'ed by the test) and its guest's initramfs, which loads
    the frontends and keeps the disk busy (guest/io-init.sh)."""
    src = glob.glob(os.path.join(debs, "x", "lib", "modules", "*", "kernel"))[0]
    modules = os.path.join(tree, "opt", "xapi-numa", "tests", "xen", "modules")
    os.makedirs(modules, exist_ok=True)
    for rel in BACKEND_MODULES:
        shutil.copy(os.path.join(src, rel), modules)
    guest = busybox_tree("guest-io-initrd", ("sh", "mount", "mkdir", "echo", "insmod", "dd", "sleep", "ls",
                                             "grep", "ifconfig"), os.path.join(HERE, "guest", "io-init.sh"))
    for rel in FRONTEND_MODULES:
        shutil.copy(os.path.join(src, rel), guest)
    pack(guest, os.path.join(tree, "opt", "guest", "initrd-io.cpio"))


def pack(tree: str, out: str) -> None:
    files = subprocess.run(["find", "."], cwd=tree, capture_output=True, check=True).stdout
    with open(out, "wb") as f:
        subprocess.run(["cpio", "--quiet", "-o", "-H", "newc"], cwd=tree, input=files, stdout=f, check=True)


def base_cpio(root: str) -> str:
    out = os.path.join(CACHE, "base.cpio")
    stamps = [os.path.join(CACHE, name) for name in ("rootfs.done", "rootfs-hvm.done")]
    if os.path.exists(out) and all(os.path.getmtime(out) >= os.path.getmtime(s) for s in stamps if os.path.exists(s)):
        return out
    log("packing the dom0 image")
    pack(root, out)
    return out


def sha256_of(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def cffi_debs() -> str:
    """Debian 12's cffi, pycparser and ply (pure Python), unpacked once into the cache."""
    out = os.path.join(CACHE, "debs-cffi")
    stamp = os.path.join(out, ".done")
    if not os.path.exists(stamp):
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        log(f"downloading {' '.join(CFFI_DEBS)}")
        run(["apt-get", "download", "-q", *CFFI_DEBS], cwd=out, stderr=subprocess.DEVNULL)
        for deb in glob.glob(os.path.join(out, "*.deb")):
            run(["dpkg", "-x", deb, os.path.join(out, "x")])
        open(stamp, "w").close()
    return os.path.join(out, "x", "usr", "lib", "python3", "dist-packages")


C_SOURCES = glob.glob(os.path.join(ROOT, "libxenuma", "src", "*")) + [os.path.join(ROOT, "libxenuma", "SOURCES")]


def dom0_lib_problem() -> str:
    """Why build/dom0/libxenuma.so cannot be shipped as it is ("" when it can)."""
    lib = os.path.join(DOM0_LIB, "libxenuma.so")
    if not (os.path.isfile(lib) and os.path.isfile(os.path.join(DOM0_LIB, "libxenuma.h"))):
        return f"{lib} and its libxenuma.h are not built: run make dom0-lib"
    stale = newer_than(lib, C_SOURCES)
    return f"{lib} is older than {stale}: run make dom0-lib" if stale else ""


def newer_than(built: str, sources) -> str:
    """The first of ``sources`` changed since ``built`` was (relative to the tree), or ""."""
    newer = [s for s in sources if os.path.getmtime(s) > os.path.getmtime(built)]
    return os.path.relpath(newer[0], ROOT) if newer else ""


def ship_dom0_lib(tree: str) -> str:
    """build/dom0's library and header, byte for byte, the package as build_rpm.py copies it
    (no API-mode module) and cffi, under /opt/xapi-numa/dom0-lib; returns the library's sha256."""
    dest = os.path.join(tree, DOM0_LIB_DEST)
    os.makedirs(dest)
    for name in ("libxenuma.so", "libxenuma.h"):
        shutil.copy2(os.path.join(DOM0_LIB, name), dest)
    digest = sha256_of(os.path.join(DOM0_LIB, "libxenuma.so"))
    with open(os.path.join(dest, "SHA256SUMS"), "w") as f:
        f.write(f"{digest}  libxenuma.so\n")
    spec = importlib.util.spec_from_file_location("build_rpm", os.path.join(ROOT, "packaging", "build_rpm.py"))
    build_rpm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_rpm)
    python = os.path.join(dest, "python")
    build_rpm.copy_package(python)
    site = cffi_debs()
    for module in CFFI_MODULES:
        shutil.copytree(os.path.join(site, module), os.path.join(python, module),
                        ignore=shutil.ignore_patterns("__pycache__"))
    log(f"dom0-lib: build/dom0/libxenuma.so sha256 {digest} shipped as /{DOM0_LIB_DEST}/libxenuma.so")
    return digest


def dom0_lib_verdict(text: str, digest: str) -> str:
    """What the dom0 suite said it loaded ("" when it is the host's build)."""
    seen = re.findall(r"dom0-lib: sha256 ([0-9a-f]{64}) loaded from", text)
    if not seen:
        return "the dom0-lib test printed no sha256 (did it run?)"
    if any(s != digest for s in seen):
        return f"dom0 loaded libxenuma.so sha256 {seen[0]}, not the host's build {digest}"
    return ""


def project_cpio(debs: str, need_dom0_lib: bool) -> tuple:
    """This project (with its built libxenuma) as a small overlay: no image rebuild per change.
    Returns the overlay and the sha256 of the dom0 library shipped ("" if none)."""
    tree = os.path.join(CACHE, "overlay")
    shutil.rmtree(tree, ignore_errors=True)
    dest = os.path.join(tree, "opt", "xapi-numa")
    os.makedirs(dest)
    built = glob.glob(os.path.join(ROOT, "xapi_numa", "_libxenuma*.so"))
    if not built:
        raise SystemExit("libxenuma is not built: install libxen-dev and run 'make' (pip install -e .)")
    stale = newer_than(built[0], C_SOURCES + [os.path.join(ROOT, "libxenuma", "build_cffi.py")])
    if stale:  # dom0 would run the old C while the tests read the new
        raise SystemExit(f"{os.path.relpath(built[0], ROOT)} is older than {stale}: run make native")
    shutil.copytree(os.path.join(ROOT, "xapi_numa"), os.path.join(dest, "xapi_numa"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    os.makedirs(os.path.join(dest, "tests"))
    shutil.copytree(os.path.join(ROOT, "tests", "xen"), os.path.join(dest, "tests", "xen"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    os.makedirs(os.path.join(tree, "opt", "guest"))
    guest_initrd(os.path.join(tree, "opt", "guest", "initrd.cpio"))
    memcheck_initrd(debs, os.path.join(tree, "opt", "guest", "initrd-mem.cpio"))
    hvm_initrd(debs, os.path.join(tree, "opt", "guest", "initrd-hvm.cpio"))
    backend_io(debs, tree)
    bindir = os.path.join(dest, "tests", "xen", "bin")
    os.makedirs(bindir)
    run(["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", os.path.join(bindir, "holdpage"),
         os.path.join(HERE, "holdpage.c"), "-lxenforeignmemory"])
    # The OCaml binding's check program (same Debian 12 and libxenctrl as the
    # dom0 image); tests/xen/dom0/test_ocaml_real.py skips where it is absent.
    if shutil.which("dune"):
        # its own build directory: dune 2.9 takes no lock on one, and .ci/run builds this
        # image while the unit suites run dune on ocaml-stubs/_build
        stubs, build = os.path.join(ROOT, "ocaml-stubs"), os.path.join(CACHE, "ocaml-build")
        run(["dune", "build", "--root", stubs, "--build-dir", build, "test/xenuma_check.exe"])
        shutil.copy(os.path.join(build, "default", "test", "xenuma_check.exe"), os.path.join(bindir, "xenuma_check"))
    else:
        log("dune not installed: the OCaml binding's real-Xen test will be skipped")
    problem = dom0_lib_problem()
    if problem and need_dom0_lib:
        raise SystemExit(f"the dom0 suite runs the dom0 build of libxenuma: {problem}")
    if problem:
        log(f"dom0-lib not shipped: {problem}")
    digest = "" if problem else ship_dom0_lib(tree)
    shutil.copy(os.path.join(HERE, "dom0-init.sh"), os.path.join(tree, "init"))
    os.chmod(os.path.join(tree, "init"), 0o755)
    out = os.path.join(CACHE, "project.cpio")
    pack(tree, out)
    return out, digest


# --- booting ------------------------------------------------------------------------------------
def boot(xen: str, kernel: str, initrd: str, scheduler: str, suite: str = "dom0", pool: str = "",
         only: str = "", attempt: int = 1) -> tuple:
    """Boot Xen under QEMU and run one suite in dom0.

    dom0: 2 nodes x 2 pCPUs, the native layer suite.  daemon: 3 nodes x 2 pCPUs,
    dom0 alone on node 0 (2 vCPUs, pinned), guests in a cpupool over nodes 1-2.
    """
    nodes = 3 if suite == "daemon" else 2
    numa = []
    for n in range(nodes):
        numa += ["-object", f"memory-backend-ram,id=m{n},size=2G",
                 "-numa", f"node,nodeid={n},cpus={2 * n}-{2 * n + 1},memdev=m{n}"]
    for a in range(nodes):
        for b in range(a + 1, nodes):
            numa += ["-numa", f"dist,src={a},dst={b},val={20 if b - a == 1 else 30}"]
    # for experiments only (e.g. XEN_TEST_XEN_ARGS=asid=0): more options for Xen; make xen-test sets none
    experiment = " ".join(os.environ.get("XEN_TEST_XEN_ARGS", "").split())
    extra = (" sched=credit" if scheduler == "credit" else "") + " " + EAGER_FPU + (
        " " + experiment if experiment else "")
    # the daemon suite's dom0 keeps node 0 (both its pCPUs): the daemon and a page mover it
    # starts each get a vCPU (with one, under QEMU, the mover crawled beside the daemon)
    dom0 = "dom0_max_vcpus=2 dom0_vcpus_pin" if suite == "daemon" else "dom0_max_vcpus=4"
    cmd = ["timeout", str(BOOT_TIMEOUT), "qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-cpu", "max",
           "-smp", str(2 * nodes), "-m", f"{2 * nodes}G", *numa,
           "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot", "-net", "none",
           "-kernel", xen,
           "-append", f"console=com1 com1=115200,8n1 dom0_mem=1024M,max:1024M {dom0} loglvl=all "
                      "guest_loglvl=all smap=0" + extra,
           "-initrd", f"{kernel} console=hvc0 earlyprintk=xen rdinit=/init quiet xentest={suite}{' poolsched=' + pool if pool else ''}{' xenonly=' + only.replace(',', '+') if only else ''},{initrd}"]
    log(f"booting Xen ({scheduler}, {EAGER_FPU}{', ' + experiment if experiment else ''}) under QEMU")
    started = time.monotonic()
    # The console goes to its log as it comes, so a slow run can be watched.
    path = os.path.join(CACHE, f"console-{suite}-{pool or scheduler}{'-boot' + str(attempt) if attempt > 1 else ''}.log")
    with open(path, "wb") as f:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT)
        code = run_until_powered_off(proc, path)
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    return code, text, time.monotonic() - started


EXIT_GRACE = 20  # seconds QEMU gets to exit by itself once dom0 has said it is done
# A hang guard, not a measure: dom0 reaches its tests in under a minute (a few on a busy
# machine).  Seen once here: dom0's kernel locked up enumerating PCI under QEMU (a soft
# lockup on one vCPU for 800 s) and would have held the boot until BOOT_TIMEOUT.
READY_GUARD = int(os.environ.get("XEN_TEST_READY_TIMEOUT", "600"))
READY_MARKER = b"XEN-TEST: dom0 ready"
NEVER_READY = -1000  # run_until_powered_off's answer when dom0 never reached its tests
NEVER_READY_WHY = (f"dom0 never reached its tests in {READY_GUARD} s (its kernel hung at boot, before anything "
                   "of this project ran): see its console tail above")


def run_until_powered_off(proc: subprocess.Popen, console: str) -> int:
    """QEMU's exit code once it exits; or, EXIT_GRACE seconds after dom0 printed its last
    line, QEMU is stopped and 0 returned.  dom0 powers off through sysrq, which Xen may
    answer by halting the CPUs (a hardware domain's power-off is a halt for Xen) instead
    of powering the machine off.  A dom0 that has not reached its tests READY_GUARD
    seconds after the start is stopped too: NEVER_READY."""
    marker = b"XEN-TEST-EXIT: done"
    started, ready, done_at, offset = time.monotonic(), False, None, 0
    while True:
        try:
            return proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        if done_at is None:
            with open(console, "rb") as f:
                f.seek(max(0, offset - len(marker) - len(READY_MARKER)))  # a marker may straddle two reads
                chunk = f.read()
                offset = f.tell()
            ready = ready or READY_MARKER in chunk
            if marker in chunk:
                done_at = time.monotonic()
            elif not ready and time.monotonic() - started > READY_GUARD:
                log(f"dom0 has not reached its tests after {READY_GUARD} s: stopping QEMU")
                stop(proc)
                return NEVER_READY
        elif time.monotonic() - done_at > EXIT_GRACE:
            log(f"dom0 was done {EXIT_GRACE} s ago and QEMU still runs: stopping it")
            stop(proc)
            return 0


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def results(text: str) -> tuple:
    lines = [l.split("XEN-TEST: ", 1)[1].rstrip("\r") for l in text.splitlines() if "XEN-TEST: " in l]
    summary = None
    for line in lines:
        if re.search(r"\b\d+ (passed|failed|error)", line) and " in " in line:
            summary = line
    finished = "XEN-TEST-EXIT: done" in text
    return lines, summary, finished


def failed_tests(lines) -> list:
    """pytest's short summary lines of the tests that failed or erred, with their reasons."""
    return [line for line in lines if line.startswith(("FAILED ", "ERROR "))]


NAMED_TESTS = 3  # of the tests that share one reason, named on its line


def same_reason_once(failed: list) -> list:
    """Failed tests that share one reason (a module or session fixture's error
    repeats for every test using it) as one line: how many, the first few, and
    the reason (cut to REASON_CHARS on its own, so that many tests never push it off)."""
    tests_by_reason = {}
    for line in failed:
        head, sep, reason = line.partition(" - ")
        outcome, _, test = head.partition(" ")
        tests_by_reason.setdefault((outcome, sep + reason[:REASON_CHARS]), []).append(test)
    out = []
    for (outcome, sep_reason), tests in tests_by_reason.items():
        if len(tests) == 1:
            out.append(f"{outcome} {tests[0]}{sep_reason}")
            continue
        more = f" and {len(tests) - NAMED_TESTS} more" if len(tests) > NAMED_TESTS else ""
        out.append(f"{outcome} {len(tests)} tests ({', '.join(tests[:NAMED_TESTS])}{more}){sep_reason}")
    return out


def guest_deaths(text: str, top: int = 4) -> list:
    """The hypervisor's console lines that say a guest died (a triple fault, a crash it
    reported, a domain_crash() of Xen's), the first ``top``: a test that then finds its
    guest gone says only "no such domain"."""
    return [line.strip()[:REASON_CHARS] for line in text.splitlines()
            if line.startswith("(XEN)") and any(w in line for w in DEATH_WORDS)
            and "Hardware Dom0 crashed" not in line][:top]


def boot_failures(ok: bool, finished: bool, summary, lines, dom0_lib_wrong: str, deaths=()) -> list:
    """Why a boot failed, a line each: its failed tests' reasons (once per reason),
    or what else went wrong."""
    if ok:
        return []
    why = same_reason_once(failed_tests(lines))
    why += [f"a guest died: {line}" for line in deaths]
    if not finished:
        why.append("dom0 did not finish (timeout, hang or panic): see its console tail above")
    if dom0_lib_wrong:
        why.append(f"dom0-lib: {dom0_lib_wrong[:REASON_CHARS]}")
    return why or [f"no failed test named; pytest said: {summary or 'nothing'}"]


def _commit() -> str:
    """The checkout's commit, for the figures' provenance (``?`` outside a git checkout)."""
    done = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "?"


def save_bench(text: str, label: str) -> None:
    """Page-move figures the suite printed (XEN-BENCH lines), for make bench."""
    import json

    runs = []
    for line in text.splitlines():
        if "XEN-BENCH: " in line:
            try:
                runs.append(dict(json.loads(line.split("XEN-BENCH: ", 1)[1]), label=label, commit=_commit(),
                                 when=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())))
            except ValueError:
                continue
    if runs:
        with open(os.path.join(CACHE, "bench-pagemove.json"), "w") as f:
            json.dump(runs, f, indent=1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scheduler", choices=("credit2", "credit", "both"), default="both",
                    help="Xen's default scheduler for the native-layer suite")
    ap.add_argument("--suite", choices=("dom0", "daemon", "hvm", "all"), default="all",
                    help="dom0: the native layer and page moves (2 nodes, one boot per scheduler); daemon: "
                         "xapi-numad on 3 nodes, guests in a cpupool (one boot per pool scheduler); hvm: one HVM "
                         "guest with QEMU (one credit2 boot); all: the three")
    ap.add_argument("--only", default="", metavar="FILES",
                    help="run only these test files of the suite, comma-separated module names (e.g. "
                         "test_dom0_lib_real,test_mover_records): for iterating on one file; make xen-test runs all")
    ap.add_argument("--build-only", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("make xen-test needs root (debootstrap, chroot, mount)", file=sys.stderr)
        return 2
    os.makedirs(CACHE, exist_ok=True)
    t0 = time.monotonic()
    debs = fetch_debs()
    xen, kernel = xen_image(debs), vmlinux(debs)
    root = rootfs(debs)
    add_device_model(root, debs)
    base = base_cpio(root)
    suites = ["dom0", "daemon", "hvm"] if args.suite == "all" else [args.suite]
    overlay, lib_digest = project_cpio(debs, need_dom0_lib="dom0" in suites)
    initrd = os.path.join(CACHE, "initrd.cpio")
    with open(initrd, "wb") as out:
        for part in (base, overlay):
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out)
    log(f"image ready in {time.monotonic() - t0:.0f}s ({os.path.getsize(initrd) >> 20} MiB)")
    if args.only and args.suite != "dom0":
        ap.error("--only selects test files of the dom0 suite: give --suite dom0")
    if args.build_only:
        return 0
    schedulers = ["credit2", "credit"] if args.scheduler == "both" else [args.scheduler]
    # HVM under emulation boots in minutes and tests nothing scheduler-specific: one boot
    runs = [Boot(xen, kernel, initrd, suite, s, lib_digest)
            for suite in suites for s in (schedulers[:1] if suite == "hvm" else schedulers)]
    failures, reasons = run_boots(runs, args.only)
    log(f"real-Xen tests: {len(runs) - failures} of {len(runs)} boots passed "
        f"in {time.monotonic() - t0:.0f}s")
    # last, so that a log kept only by its tail (CI's) still says why
    for word, reason in reasons:
        log(f"{word}: {reason}")
    return 1 if failures else 0


def run_boots(runs: list, only: str) -> tuple:
    """Each boot, and a failed one's files once more when Xen saw a guest die:
    (how many boots failed, [(word, reason)] to print at the end)."""
    failures, reasons = 0, []
    for run in runs:
        ok, why, deaths, failed = run.once(only)
        # dom0 that never reached its tests ran none of ours: the same selection boots again
        again = only if why[:1] == [NEVER_READY_WHY] else retry_files(run.suite, ok, why, deaths, failed)
        if again is not None:
            # A guest that Xen saw die (a triple fault, seen in a guest whose memory
            # nothing had touched: QEMU's emulated SVM, docs/testing.md "Guest triple faults")
            # fails every test after it: the failed files get one fresh boot, and the
            # first boot's reasons are still printed at the end.
            # A guest with an empty console after minutes (seen under load, with no death reported),
            # and one that died or hung before anything under test had touched it (a CI run's
            # fixture guest never reached its program; a PVH guest's own crash shutdown makes Xen
            # print nothing) are the same kind of emulator trouble, not the code under test: they
            # get the same rerun.  A guest that died after the code acted on it does not.
            cause = ("dom0 never reached its tests" if why[:1] == [NEVER_READY_WHY] else
                     f"a guest died ({deaths[0]})" if deaths else
                     f"a guest stopped on its own ({troubled_guests(failed)[0].partition(' - ')[2][:REASON_CHARS]})")
            log(f"{run.label}: {cause}; running {again or 'the suite'} again in a fresh boot")
            ok, why_again, _, _ = run.once(again, attempt=2)
            reasons += [("retried" if ok else "failed", f"[{run.label}, first boot] {w}") for w in why]
            why = why_again
        failures += 0 if ok else 1
        reasons += [("failed", f"[{run.label}] {w}") for w in why]
    return failures, reasons


def troubled_guests(failed: list) -> list:
    """Failed tests whose guest printed nothing at all, or died or stopped before anything
    under test touched it (xenlib.wait_console says which)."""
    return [line for line in failed if any(mark in line for mark in (SILENT_GUEST, GUEST_UNTOUCHED))]


def retry_files(suite: str, ok: bool, why: list, deaths: list, failed: list):
    """What to run again after a failed boot in which Xen saw a guest die, or a test's
    guest printed nothing at all, or died or stopped untouched: the dom0 suite's files with a failed test
    (comma-separated), or "" for a whole (short) suite; None when there is nothing to
    retry (it passed, no guest died or stayed silent, no test failed, or dom0 loaded
    the wrong library)."""
    if ok or not (deaths or troubled_guests(failed)) or not failed or any(line.startswith("dom0-lib") for line in why):
        return None
    if suite != "dom0":
        return ""
    files = []
    for line in failed:
        for name in re.findall(r"tests/xen/dom0/(test_\w+)\.py", line.partition(" - ")[0]):
            if name not in files:
                files.append(name)
    return ",".join(files) if files else None


class Boot:
    """One suite under one scheduler: boots it (again if need be) and judges the run."""

    def __init__(self, xen: str, kernel: str, initrd: str, suite: str, scheduler: str, lib_digest: str):
        self.xen, self.kernel, self.initrd, self.lib_digest = xen, kernel, initrd, lib_digest
        self.suite, self.scheduler = suite, scheduler
        self.label = f"{suite}/{scheduler}"

    def once(self, only: str, attempt: int = 1) -> tuple:
        """(ok, why it failed a line each, the guest deaths Xen reported, pytest's lines of
        the tests that failed)."""
        suite, label = self.suite, self.label + (f" (boot {attempt})" if attempt > 1 else "")
        # the daemon suite keeps Xen's default for Pool-0 and tests `scheduler` in its cpupool
        code, text, seconds = (
            boot(self.xen, self.kernel, self.initrd, "credit2", suite, pool=self.scheduler, only=only, attempt=attempt)
            if suite == "daemon" else
            boot(self.xen, self.kernel, self.initrd, self.scheduler, suite, only=only, attempt=attempt))
        lines, summary, finished = results(text)
        save_bench(text, label)
        for line in lines:
            print(f"  [{label}] {line}")
        ok = finished and summary is not None and " failed" not in summary and " error" not in summary
        wrong = ""
        if suite == "dom0" and finished and (not only or "test_dom0_lib_real" in only.split(",")):
            wrong = dom0_lib_verdict(text, self.lib_digest)
            log(f"{label}: dom0-lib: " + (wrong or f"dom0 loaded the host's build, sha256 {self.lib_digest}"))
            ok = ok and not wrong
        log(f"{label}: {summary or 'no test summary'} ({seconds:.0f}s, qemu exit {code}) -> {'ok' if ok else 'FAILED'}")
        if not finished:
            tail = "\n".join(text.splitlines()[-30:])
            log(f"{label}: dom0 did not finish (timeout, hang or panic); console tail:\n{tail}")
        if not ok:
            # Xen's (XEN) and guests' (dN) lines: whether something flooded the console (CI keeps a tail)
            xen_lines = (line for line in text.splitlines() if line.startswith(("(XEN)", "(d")))
            log(f"{label}: the hypervisor's most repeated console lines: {chatter(xen_lines, top=6)}")
        deaths = guest_deaths(text)
        if code == NEVER_READY:
            return False, [NEVER_READY_WHY], deaths, []
        return ok, boot_failures(ok, finished, summary, lines, wrong, deaths), deaths, failed_tests(lines)


if __name__ == "__main__":
    sys.exit(main())
