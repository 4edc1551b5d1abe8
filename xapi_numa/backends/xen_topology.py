"""Xen's NUMA and CPU topology, read through libxenuma's ``xn_numainfo`` and ``xn_cputopo``.

Part of the Xen adapter (:mod:`xapi_numa.backends.xen` calls these with its
libxenuma binding and handle).  What this module owns: the buffers of the two
calls, which nodes and CPUs count (valid nodes and online CPUs, their ids
without gaps: our node n is Xen's node n in every call), and the arrays turned
into a :class:`Topology`.  Every start reads the topology, so the arrays are
copied out in C-speed passes (``ffi.unpack``), never an element at a time.
"""
import errno
from typing import FrozenSet, List, Tuple

from xapi_numa.core.topology import Topology
from xapi_numa.errors import HypervisorError

NODES_MAX = 256
CPUS_MAX = 4096
INVALID_U32 = 0xFFFFFFFF
INVALID_U64 = 0xFFFFFFFF  # XEN_INVALID_MEM_SZ is ~0U, widened


def numainfo(ffi, lib, handle, check) -> Tuple[List[int], List[int], List[List[int]]]:
    """Each valid node's memory size and free memory (bytes), and their SLIT distances."""
    n = ffi.new("unsigned int *", NODES_MAX)
    size, free = ffi.new("uint64_t[]", NODES_MAX), ffi.new("uint64_t[]", NODES_MAX)
    dist = ffi.new("uint32_t[]", NODES_MAX * NODES_MAX)
    check(lib.xn_numainfo(handle, n, size, free, dist), "xc_numainfo")
    count = n[0]
    sizes, frees, distances = ffi.unpack(size, count), ffi.unpack(free, count), ffi.unpack(dist, count * count)
    # Offline nodes report an invalid size; 4.17's physinfo says max_node_id 63: count valid entries
    valid = [i for i in range(count) if sizes[i] != INVALID_U64 and distances[i * count + i] != INVALID_U32]
    if valid != list(range(len(valid))):
        raise HypervisorError(errno.ENOTSUP, "node ids with gaps (online nodes {}) are not supported".format(
            ",".join(map(str, valid))))
    k = len(valid)
    return sizes[:k], frees[:k], [distances[a * count:a * count + k] for a in range(k)]


def topology(ffi, lib, handle, check) -> Tuple[Topology, FrozenSet[int]]:
    """The host's topology, and its online CPUs."""
    sizes, frees, distances = numainfo(ffi, lib, handle, check)
    n = ffi.new("unsigned int *", CPUS_MAX)
    core, socket, node = ffi.new("uint32_t[]", CPUS_MAX), ffi.new("uint32_t[]", CPUS_MAX), \
        ffi.new("uint32_t[]", CPUS_MAX)
    check(lib.xn_cputopo(handle, n, core, socket, node), "xc_cputopoinfo")
    nodes = ffi.unpack(node, n[0])
    m = online_prefix(nodes, len(sizes))
    # cputopoinfo gives a node to every *present* CPU up to the last online one: a parked
    # one (smt=0, xen-hptool cpu-offline) among them has its node too.  physinfo's nr_cpus
    # is the online count: more CPUs with a node than that are offline ones in the middle.
    info = ffi.new("struct xn_physinfo *")
    check(lib.xn_physinfo(handle, info), "xc_physinfo")
    if m > info.nr_cpus:
        raise HypervisorError(errno.ENOTSUP, "offline CPUs in the middle of the CPU range ({} of CPUs 0-{} are "
                                             "parked: smt=0 or xen-hptool cpu-offline)".format(m - info.nr_cpus, m - 1))
    return Topology.from_arrays(nodes[:m], distances, sizes, frees, cpu_to_core=ffi.unpack(core, m),
                                cpu_to_socket=ffi.unpack(socket, m)), frozenset(range(m))


def online_prefix(cpu_nodes: List[int], nodes: int) -> int:
    """How many CPUs are online: they must be CPUs 0..m-1 (an offline CPU's node is ~0).
    Every CPU online is checked in one C-speed pass; the walk runs only when one is not."""
    if not cpu_nodes or max(cpu_nodes) < nodes:
        return len(cpu_nodes)
    online = [cpu for cpu, on in enumerate(cpu_nodes) if on < nodes]
    if online != list(range(len(online))):
        raise HypervisorError(errno.ENOTSUP, "offline CPUs in the middle of the CPU range")
    return len(online)
