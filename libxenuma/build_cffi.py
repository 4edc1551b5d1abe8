"""cffi build of libxenuma (API, out-of-line mode): C declarations -> _libxenuma.

Our C sources are compiled first, on their own, with -Wall -Wextra -Werror
into a static archive; the cffi wrapper module links it with libxenctrl.
XenServer's patched ops are used when the installed xenctrl.h declares them.
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
XENCTRL_H = os.environ.get("XENCTRL_H", "/usr/include/xenctrl.h")

def header_declarations() -> str:
    """The cffi declarations: libxenuma.h itself, less its preprocessor lines."""
    with open(os.path.join(SRC, "libxenuma.h"), encoding="utf-8") as f:
        lines = f.read().splitlines()
    keep = [l for l in lines if not l.startswith(("#ifndef", "#endif", "#include", "#define LIBXENUMA_H"))]
    return "\n".join(keep)




def patched_ops_defines() -> list:
    """-D flags for the XenServer ops the installed xenctrl.h declares."""
    try:
        text = open(XENCTRL_H, encoding="utf-8", errors="replace").read()
    except OSError:
        return []
    defines = []
    if "xc_domain_numa_get_node_pages" in text:
        defines.append("-DXN_HAVE_NUMA_GET_NODE_PAGES")
    if "xc_domain_claim_pages_node" in text:
        defines.append("-DXN_HAVE_CLAIM_PAGES_NODE")
    return defines


def build_archive(outdir: str) -> str:
    """Compile our C with warnings as errors into a static archive."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC").split()[0] or "cc"
    objects = []
    for src in sources():
        obj = os.path.join(outdir, src.replace(".c", ".o"))
        subprocess.check_call([cc, "-std=gnu11", "-O2", "-fPIC", *WARNINGS, *patched_ops_defines(),
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
    libraries=["xenctrl", "xenforeignmemory", "xentoollog"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
