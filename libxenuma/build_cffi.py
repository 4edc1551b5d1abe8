"""cffi build of libxenuma (API, out-of-line mode): C declarations -> _libxenuma.

Our C sources are compiled first, on their own, with -Wall -Wextra -Werror
into a static archive; the cffi wrapper module links it with libxenctrl.
XenServer's patched libxenctrl calls are looked up at run time (see
xn_patched_ops in libxenuma.h), so nothing here depends on which Xen is installed.
"""

import os
import subprocess
import sysconfig
import tempfile

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "src")


def sources() -> list:
    """The library's C files: the one list in libxenuma/SOURCES (the Makefile reads it too)."""
    with open(os.path.join(HERE, "SOURCES"), encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]

WARNINGS = ["-Wall", "-Wextra", "-Werror"]

def header_declarations() -> str:
    """The cffi declarations: libxenuma.h less its preprocessor lines, by the one rule the
    ABI-mode loader uses too (loaded by path: the package need not be importable here)."""
    import importlib.util
    path = os.path.join(os.path.dirname(HERE), "xapi_numa", "backends", "libxenuma_abi.py")
    spec = importlib.util.spec_from_file_location("_libxenuma_abi", path)
    abi = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(abi)
    with open(os.path.join(SRC, "libxenuma.h"), encoding="utf-8") as f:
        return abi.declarations(f.read())




def build_archive(outdir: str) -> str:
    """Compile our C with warnings as errors into a static archive.  GNU C (as every build of
    it: the Makefile, dom0-lib.sh, the OCaml stubs): our own C needs no extension, but Xen's
    public headers, which xenctrl.h pulls in, refuse strict ISO C (xen/hvm/save.h: "Anonymous
    structs/unions are a GNU extension."; xen/foreign/x86_64.h's __align8__ is FIXME)."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC").split()[0] or "cc"
    objects = []
    for src in sources():
        obj = os.path.join(outdir, src.replace(".c", ".o"))
        subprocess.check_call([cc, "-std=gnu11", "-O2", "-fPIC", *WARNINGS,
                               "-c", os.path.join(SRC, src), "-o", obj])
        objects.append(obj)
    archive = os.path.join(outdir, "libxenuma.a")
    subprocess.check_call(["ar", "rcs", archive, *objects])
    return archive


ffibuilder = FFI()
ffibuilder.cdef(header_declarations())
_archive = build_archive(tempfile.mkdtemp(prefix="libxenuma-"))
ffibuilder.set_source(
    "xapi_numa._libxenuma",
    '#include "libxenuma.h"',
    include_dirs=[SRC],
    extra_objects=[_archive],
    libraries=["xenctrl", "xenforeignmemory", "xentoollog", "dl"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
