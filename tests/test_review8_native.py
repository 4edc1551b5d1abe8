"""Review 8: the Xen binding layers read against Xen 4.17's own structures.

Pure Python: a stand-in for the libxenuma binding answers as Xen 4.17 does, with the
buffers made by a cffi FFI declared from libxenuma.h (no compiler, no Xen).
"""
import os

import pytest

cffi = pytest.importorskip("cffi")

from xapi_numa.backends import libxenuma_abi, xen_topology  # noqa: E402
from xapi_numa.errors import HypervisorError  # noqa: E402

HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "libxenuma", "src", "libxenuma.h")


def _ffi():
    ffi = cffi.FFI()
    with open(HEADER, encoding="utf-8") as f:
        ffi.cdef(libxenuma_abi.declarations(f.read()))
    return ffi


def _check(rc, what):
    if rc < 0:
        raise HypervisorError(-rc, what)
    return rc


class ParkedThreadsHost:
    """Xen 4.17 booted with smt=0 on one node of 4 cores x 2 threads: the second thread
    of each core is parked -- present, never online.  XEN_SYSCTL_cputopoinfo lists CPUs
    up to the last *online* one (6) and fills an entry for every *present* CPU
    (cpu_present(), not cpu_online(): xen/common/sysctl.c), so parked threads 1, 3 and 5
    come back with their real core, socket and node.  physinfo's nr_cpus is
    num_online_cpus(): 4."""

    def xn_numainfo(self, handle, n, size, free, dist):
        n[0] = 1
        size[0], free[0], dist[0] = 8 << 30, 4 << 30, 10
        return 0

    def xn_cputopo(self, handle, n, core, socket, node):
        n[0] = 7
        for cpu in range(7):
            core[cpu], socket[cpu], node[cpu] = cpu // 2, 0, 0
        return 0

    def xn_physinfo(self, handle, info):
        info.nr_cpus, info.max_cpu_id, info.nr_nodes, info.max_node_id = 4, 7, 1, 63
        info.threads_per_core, info.cores_per_socket = 1, 4
        return 0


def test_parked_cpus_are_not_taken_for_online_ones():
    """A parked CPU (smt=0, xen-hptool cpu-offline) is not one a vCPU runs on: the topology
    must not offer it (pinning a vCPU there pins it to nothing).  It was offered as online;
    then the host was refused; now the pools' and the free CPUs say which are online."""
    asked = []
    topo, online = xen_topology.topology(_ffi(), ParkedThreadsHost(), None, _check,
                                         lambda: asked.append(1) or frozenset({0, 2, 4, 6}))
    assert online == topo.all_cpus == {0, 2, 4, 6} and asked == [1]
    assert topo.node_cpus == {0: {0, 2, 4, 6}} and topo.cores_per_node() == [4]


def test_the_online_cpus_are_read_only_where_one_listed_is_not():
    """Every start reads the topology: the pools are read only where physinfo counts fewer
    online CPUs than are listed."""
    class AllOnline(ParkedThreadsHost):
        def xn_physinfo(self, handle, info):
            super().xn_physinfo(handle, info)
            info.nr_cpus = 7
            return 0

    topo, online = xen_topology.topology(_ffi(), AllOnline(), None, _check, lambda: pytest.fail("read"))
    assert online == set(range(7))
