"""Xen's NUMA and CPU topology, read through libxenuma's ``xn_numainfo`` and ``xn_cputopo``,
and the free memory of its DMA zone (``xn_node_free_below``).

Part of the Xen adapter (:mod:`xapi_numa.backends.xen` calls these with its
libxenuma binding and handle).  What this module owns: the buffers of the two
calls, which nodes and CPUs count (valid nodes, their ids without gaps: our
node n is Xen's node n in every call; online CPUs, by Xen's ids: a parked or
absent CPU among them is :data:`~xapi_numa.core.topology.OFFLINE`), and the
arrays turned into a :class:`Topology`.  Every start reads the topology, so the arrays are
copied out in C-speed passes (``ffi.unpack``), never an element at a time.
"""
import errno
from typing import Callable, FrozenSet, List, Tuple

from xapi_numa.core.topology import OFFLINE, Topology
from xapi_numa.errors import HypervisorError

NODES_MAX = 256
CPUS_MAX = 4096
INVALID_U32 = 0xFFFFFFFF
INVALID_U64 = 0xFFFFFFFF  # XEN_INVALID_MEM_SZ is ~0U, widened
COMMANDLINE_BYTES = 1024  # xen_commandline_t


def numainfo(ffi, lib, handle, check) -> Tuple[List[int], List[int], List[List[int]]]:
    """Each valid node's memory size and free memory (bytes), and their SLIT distances."""
    n = ffi.new("unsigned int *", NODES_MAX)
    size, free = ffi.new("uint64_t[]", NODES_MAX), ffi.new("uint64_t[]", NODES_MAX)
    # room for the largest host, not cleared first (256 KiB, twice a start): xn_numainfo writes the
    # count x count entries read below, and refuses (ENOSPC) a host that would not fit
    dist = ffi.new_allocator(should_clear_after_alloc=False)("uint32_t[]", NODES_MAX * NODES_MAX)
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


def dma_free(ffi, lib, handle, check, width: int, nodes: int) -> List[int]:
    """Each node's free bytes below 2^``width`` (the DMA zone at Xen's DMA width)."""
    out = ffi.new("uint64_t *")
    found = []
    for node in range(nodes):
        check(lib.xn_node_free_below(handle, node, width, out), "xc_availheap")
        found.append(out[0])
    return found


def xen_commandline(ffi, lib, handle, check) -> str:
    """Xen's own command line (XENVER_commandline)."""
    buf = ffi.new("char[]", COMMANDLINE_BYTES)
    check(lib.xn_xen_commandline(handle, buf, COMMANDLINE_BYTES), "xc_version(XENVER_commandline)")
    return ffi.string(buf).decode("utf-8", "replace")


def topology(ffi, lib, handle, check,
             online_cpus: Callable[[], FrozenSet[int]]) -> Tuple[Topology, FrozenSet[int]]:
    """The host's topology, and its online CPUs.  ``online_cpus`` reads which CPUs are
    online (every pool's and the free ones), asked only where some listed CPU is not."""
    sizes, frees, distances = numainfo(ffi, lib, handle, check)
    n = ffi.new("unsigned int *", CPUS_MAX)
    new = ffi.new_allocator(should_clear_after_alloc=False)  # (xn_cputopo writes the entries read below)
    core, socket, node = new("uint32_t[]", CPUS_MAX), new("uint32_t[]", CPUS_MAX), new("uint32_t[]", CPUS_MAX)
    check(lib.xn_cputopo(handle, n, core, socket, node), "xc_cputopoinfo")
    count = n[0]
    cpu_nodes = absent_marked(ffi.unpack(node, count), len(sizes))
    # cputopoinfo lists the CPUs up to the last online one and gives every *present* one its
    # node: a parked one (smt=0, xen-hptool cpu-offline) among them too.  physinfo counts the
    # online ones: only where more are listed are the online ones read, to tell them apart.
    info = ffi.new("struct xn_physinfo *")
    check(lib.xn_physinfo(handle, info), "xc_physinfo")
    if count - cpu_nodes.count(OFFLINE) > info.nr_cpus:
        online = online_cpus()
        cpu_nodes = [n if cpu in online else OFFLINE for cpu, n in enumerate(cpu_nodes)]
    topo = Topology.from_arrays(cpu_nodes, distances, sizes, frees, cpu_to_core=ffi.unpack(core, count),
                                cpu_to_socket=ffi.unpack(socket, count))
    return topo, topo.all_cpus


def absent_marked(cpu_nodes: List[int], nodes: int) -> List[int]:
    """Each listed CPU's node, :data:`OFFLINE` for a CPU that is not there (a hotplug
    slot: its node is ~0) -- in one C-speed pass where every one is there."""
    if not cpu_nodes or max(cpu_nodes) < nodes:
        return cpu_nodes
    return [n if n < nodes else OFFLINE for n in cpu_nodes]
