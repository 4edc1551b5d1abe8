"""Review 10: hosts with CPUs that are not online among online ones, end to end.

The Xen adapter (``backends/xen.py``) is driven over a stand-in for the libxenuma
binding that answers as Xen 4.17 does (no Xen, no compiler: the module's own cffi
``ffi`` makes the buffers): a CPU taken offline (xen-hptool cpu-offline) keeps its
node in cputopoinfo, leaves physinfo's online count and every pool, and Xen leaves
every vCPU affinity map as it was (a map is cut to the online CPUs by the reader).
"""
import errno

import pytest

xen = pytest.importorskip("xapi_numa.backends.xen")

from xapi_numa.core import locality, settling  # noqa: E402
from xapi_numa.core.policy import Policy  # noqa: E402
from xapi_numa.errors import InvalidArgument  # noqa: E402
from xapi_numa.ops import observe  # noqa: E402

ffi = xen.ffi
ALL = 0xFF  # an unpinned vCPU's map as Xen holds it: every bit (xl's "all", cpumask_all)


class TwoNodeHost:
    """2 nodes x 2 CPUs (CPUs 0,1 on node 0; 2,3 on node 1), dom0 (1 vCPU) and guest
    domain 1 (1 vCPU, soft affinity node 0: CPUs 0,1).  ``parked``: CPUs offline."""

    XN_DOM_DYING, XN_DOM_HVM, XN_DOM_SHUTDOWN, XN_DOM_PAUSED, XN_DOM_PVH = 0x1, 0x2, 0x4, 0x8, 0x200

    def __init__(self):
        self.parked = set()
        self.maps = {(0, 0): [ALL, ALL], (1, 0): [ALL, 0x03]}  # (domid, vcpu) -> [hard, soft]

    def _online(self):
        return [c for c in range(4) if c not in self.parked]

    def xn_open(self, out):
        out[0] = ffi.cast("xn_handle *", 1)
        return 0

    def xn_close(self, h):
        pass

    def xn_cpumap_bytes(self, h):
        return 1

    def xn_nodemap_bytes(self, h):
        return 1

    def xn_numainfo(self, h, n, size, free, dist):
        n[0] = 2
        for i in range(2):
            size[i], free[i] = 8 << 30, 4 << 30
        dist[0], dist[1], dist[2], dist[3] = 10, 20, 20, 10
        return 0

    def xn_xen_commandline(self, h, buf, length):
        buf[0:1] = b"\0"
        return 0

    def xn_node_free_below(self, h, node, width, out):
        out[0] = 0  # nothing free in the DMA zone
        return 0

    def xn_cputopo(self, h, n, core, socket, node):
        n[0] = 4  # up to the last online CPU; a parked one keeps its node (cpu_present)
        for cpu in range(4):
            core[cpu], socket[cpu], node[cpu] = cpu % 2, cpu // 2, cpu // 2
        return 0

    def xn_physinfo(self, h, info):
        info.nr_cpus, info.max_cpu_id, info.nr_nodes, info.max_node_id = len(self._online()), 3, 2, 63
        info.sched_id = 6
        return 0

    def xn_cpupool_free_cpus(self, h, cpumap):
        cpumap[0] = 0
        return 0

    def xn_cpupool_next(self, h, first, pool_id, cpumap):
        if first > 0:
            return -errno.ENOENT
        pool_id[0], cpumap[0] = 0, sum(1 << c for c in self._online())
        return 0

    def xn_domains(self, h, first, count, out):
        got = 0
        for domid in (0, 1):
            if domid >= first and got < count:
                r = out[got]
                r.domid, r.flags, r.tot_pages, r.max_pages, r.outstanding_pages = domid, 0, 256, 256, 0
                r.nr_online_vcpus, r.max_vcpu_id, r.cpupool = 1, 0, 0
                r.handle = list(bytes([domid + 1]) * 16)
                got += 1
        return got

    def xn_vcpu_info(self, h, domid, vcpu, info):
        info.online, info.blocked, info.running, info.cpu, info.cpu_time_ns = 1, 0, 1, 2 * domid, 0
        return 0

    def xn_vcpu_get_affinity(self, h, domid, vcpu, hard, soft):
        hard[0], soft[0] = self.maps[(domid, vcpu)]
        return 0

    def xn_vcpu_set_affinity(self, h, domid, vcpu, hard, soft):
        if hard != ffi.NULL:
            self.maps[(domid, vcpu)][0] = hard[0]
        if soft != ffi.NULL:
            self.maps[(domid, vcpu)][1] = soft[0]
        return 0

    def xn_node_pages_native(self, h, domid, nr, pages):
        for i in range(nr):
            pages[i] = 256 if i == 0 else 0
        return 0

    def xn_features(self, h, out):
        out.node_pages, out.node_claims, out.claims = 0, 0, 2


@pytest.fixture
def host(monkeypatch):
    stand_in = TwoNodeHost()
    monkeypatch.setattr(xen, "lib", stand_in)
    return stand_in


def test_a_cycle_after_a_cpu_goes_offline_reads_the_masks_against_the_topology_it_holds(host):
    """The daemon's snapshot reads every vCPU (maps cut to the online CPUs the adapter
    knows) and then the topology: the maps were cut to the CPUs online at the *last*
    cycle.  CPU 1 taken offline between two cycles: the guest's soft map {0,1} was kept
    whole against a topology where CPU 1 is on no node, and its home (publish-homes,
    backend alignment, the rebalancer) raised InvalidArgument for CPU 1."""
    hv = xen.XenHypervisor()
    observe.take(hv)  # a cycle, every CPU online
    host.parked.add(1)  # xen-hptool cpu-offline 1
    snap = observe.take(hv)  # the next cycle
    assert 1 not in snap.topology.all_cpus
    guest = snap.vcpus[1][0]
    assert guest.soft <= snap.topology.all_cpus and guest.hard <= snap.topology.all_cpus
    assert locality.home_nodes(snap.vcpus[1], snap.topology) == {0}


def test_an_unpinned_vcpu_settled_while_a_cpu_is_parked_may_run_on_it_once_online(host):
    """Settling a best_effort VM writes hard affinity "every CPU" (topo.all_cpus).  Written
    as the online CPUs' bits, Xen keeps it so: once the parked CPU is online again
    (xen-hptool cpu-online) the VM may never run there, and every planner takes its hard
    affinity, narrower than the host, for an admin's pin (homing, the rebalancer and the
    fix-up leave the VM alone for good).  xl writes "all" as every bit; so must we."""
    hv = xen.XenHypervisor()
    host.parked.add(1)
    topo = hv.topology()
    vcpus = hv.vcpus(1)
    plan = settling.plan(hv.domain(1), vcpus, topo, Policy.from_other_config({}), frozenset({0}), {}, None)
    assert plan.hard == topo.all_cpus == {0, 2, 3}  # not pinned: every CPU online now
    for a in plan.actions:
        hv.set_vcpu_affinity(a.domid, a.vcpu, hard=a.hard, soft=a.soft)
    host.parked.discard(1)  # xen-hptool cpu-online 1
    snap = observe.take(hv)
    guest = snap.vcpus[1][0]
    assert 1 in guest.hard  # the CPU back online is the VM's too
    assert guest.hard >= snap.unpinned  # nobody's pin: homing and the rebalancer may act on it


def test_a_cpu_online_during_a_snapshot_is_in_no_pool_of_it_before_its_topology_has_it(host):
    """A snapshot reads the topology, every domain's vCPUs (on a host of many VMs, many
    thousand hypercalls), then the CPU pools.  A parked CPU brought online meanwhile
    (xen-hptool cpu-online: Xen puts it in Pool-0) was in the snapshot's pool while its
    topology has it on no node: the rebalancer's VM loads (``nodes_of_cpus`` of the VM's
    pool, ops/rebalancing.py) raised InvalidArgument and that period decided nothing."""
    hv = xen.XenHypervisor()
    host.parked.add(1)
    observe.take(hv)
    read_vcpu = host.xn_vcpu_info

    def online_meanwhile(h, domid, vcpu, info):
        host.parked.discard(1)  # xen-hptool cpu-online 1, while the vCPUs are read
        return read_vcpu(h, domid, vcpu, info)

    host.xn_vcpu_info = online_meanwhile
    snap = observe.take(hv)
    assert 1 not in snap.topology.all_cpus  # read before: still parked then
    assert snap.topology.nodes_of_cpus(snap.pool_cpus(1)) == {0, 1}  # as the rebalancer asks


def test_top_survives_a_vcpu_on_a_cpu_online_since_its_topology_was_read(host):
    """``top`` (and ``vcpus`` likewise) reads the topology and then where each vCPU runs;
    a parked CPU brought online meanwhile may already run a vCPU, and ``node_of`` of
    that CPU, on no node of the topology read, raised: the query failed.  Such a CPU is
    counted on no node (its node is not in the topology read; the next refresh has it),
    and a vcpus row says node None ('?' in the table)."""
    from xapi_numa.ops import queries
    hv = xen.XenHypervisor()
    host.parked.add(1)
    read_vcpu = host.xn_vcpu_info

    def running_there(h, domid, vcpu, info):
        host.parked.discard(1)  # xen-hptool cpu-online 1; the scheduler puts the guest's vCPU on it
        read_vcpu(h, domid, vcpu, info)
        info.cpu = 1 if domid == 1 else info.cpu
        return 0

    host.xn_vcpu_info = running_there
    report = queries.top_report(hv)
    assert sum(n["busy_cpus"] for n in report["nodes"]) == 1  # dom0 on CPU 0; the guest on CPU 1, on no node
    host.parked.add(1)
    hv.topology()
    rows = {(r["domid"], r["vcpu"]): r for r in queries.vcpu_rows(hv)}
    assert rows[(1, 0)]["cpu"] == 1 and rows[(1, 0)]["node"] is None


def test_a_pool_of_the_last_id_ends_the_pool_walk(host):
    """The walk asks for the pool after each one (id + 1): after a pool of id 2^32 - 1 that
    overflowed the call's uint32_t (cffi's OverflowError, an internal error); the OCaml stub
    stops there, and so does the adapter now."""
    last = (1 << 32) - 1

    def pools(h, first, pool_id, cpumap):
        if first > last:
            raise AssertionError("asked for a pool past the last id")
        pool_id[0] = 0 if first == 0 else last
        cpumap[0] = 0b0011 if first == 0 else 0b1100
        return 0

    host.xn_cpupool_next = pools
    assert xen.XenHypervisor().cpupools() == {0: {0, 1}, last: {2, 3}}
