"""cffi build of libxenuma (API, out-of-line mode): C declarations -> _libxenuma.

Our C sources are compiled first, on their own, with -Wall -Wextra -Werror
into a static archive; the cffi wrapper module links it with libxenctrl.
XenServer's patched ops are used when the installed xenctrl.h declares them.
"""
from __future__ import annotations

import os
import subprocess
import sysconfig
import tempfile

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = ["libxenuma.c", "udump.c"]
WARNINGS = ["-Wall", "-Wextra", "-Werror"]
XENCTRL_H = os.environ.get("XENCTRL_H", "/usr/include/xenctrl.h")

CDEF = """
typedef struct xn_handle xn_handle;
struct xn_physinfo {
    uint32_t nr_cpus, max_cpu_id, nr_nodes, max_node_id;
    uint32_t threads_per_core, cores_per_socket;
    uint64_t total_pages, free_pages, outstanding_pages;
    uint32_t sched_id;
};
struct xn_domain {
    uint32_t domid; uint32_t flags;
    uint64_t tot_pages, max_pages, outstanding_pages;
    uint32_t nr_online_vcpus, max_vcpu_id; uint32_t cpupool;
    uint8_t handle[16];
};
struct xn_vcpu { uint8_t online, blocked, running; uint32_t cpu; };
struct xn_features { int node_pages; int node_claims; int claims; };
#define XN_DOM_DYING ...
#define XN_DOM_HVM ...
#define XN_DOM_PAUSED ...
#define XN_DOM_HAP ...
#define XN_NATIVE ...
#define XN_FALLBACK ...
#define XN_UNAVAILABLE ...
int xn_open(xn_handle **out);
void xn_close(xn_handle *h);
int xn_physinfo(xn_handle *h, struct xn_physinfo *out);
int xn_numainfo(xn_handle *h, unsigned int *nr_nodes, uint64_t *size, uint64_t *free_bytes, uint32_t *distances);
int xn_cputopo(xn_handle *h, unsigned int *nr_cpus, uint32_t *core, uint32_t *socket, uint32_t *node);
int xn_domains(xn_handle *h, uint32_t first_domid, unsigned int max, struct xn_domain *out);
int xn_vcpu_info(xn_handle *h, uint32_t domid, uint32_t vcpu, struct xn_vcpu *out);
int xn_cpumap_bytes(xn_handle *h);
int xn_nodemap_bytes(xn_handle *h);
int xn_vcpu_get_affinity(xn_handle *h, uint32_t domid, uint32_t vcpu, uint8_t *hard, uint8_t *soft);
int xn_vcpu_set_affinity(xn_handle *h, uint32_t domid, uint32_t vcpu, uint8_t *hard, uint8_t *soft);
int xn_node_affinity_get(xn_handle *h, uint32_t domid, uint8_t *nodes);
int xn_node_affinity_set(xn_handle *h, uint32_t domid, uint8_t *nodes);
int xn_pause(xn_handle *h, uint32_t domid);
int xn_unpause(xn_handle *h, uint32_t domid);
int xn_claim(xn_handle *h, uint32_t domid, uint32_t node, uint64_t nr_pages);
int xn_node_pages_native(xn_handle *h, uint32_t domid, unsigned int nr_nodes, uint64_t *pages);
int xn_udump_capture(xn_handle *h, char *buf, size_t *len, unsigned int timeout_ms);
int xn_udump_parse(const char *buf, size_t len, uint32_t domid, unsigned int nr_nodes, uint64_t *pages, uint64_t *total);
void xn_features(xn_handle *h, struct xn_features *out);
"""


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
    for src in SOURCES:
        obj = os.path.join(outdir, src.replace(".c", ".o"))
        subprocess.check_call([cc, "-std=gnu11", "-O2", "-fPIC", *WARNINGS, *patched_ops_defines(),
                               "-c", os.path.join(HERE, src), "-o", obj])
        objects.append(obj)
    archive = os.path.join(outdir, "libxenuma.a")
    subprocess.check_call(["ar", "rcs", archive, *objects])
    return archive


ffibuilder = FFI()
ffibuilder.cdef(CDEF)
_archive = build_archive(tempfile.mkdtemp(prefix="libxenuma-"))
ffibuilder.set_source(
    "xapi_numa._libxenuma",
    '#include "libxenuma.h"',
    include_dirs=[HERE],
    extra_objects=[_archive],
    libraries=["xenctrl", "xentoollog"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
