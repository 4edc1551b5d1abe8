"""Real-Xen tests of the native layer and the xen backend (run in dom0 by make xen-test).

Each check compares libxenuma's answer with what Xen's own tools say.
"""
import errno
import json
import os
import subprocess
import sys

import pytest
from conftest import debug_key_dump, expected_scheduler, xl  # re-exported from xenlib

from xapi_numa.errors import HypervisorError
from xapi_numa.core.topology import Topology

MIB = 1 << 20


def test_scheduler_is_the_one_booted(hv, xen_cmdline):
    assert hv.capabilities().scheduler == expected_scheduler(xen_cmdline)


def test_topology_matches_xl_info(hv):
    ours = hv.topology()
    theirs = Topology.from_xl_info(xl("info", "-n"))
    assert len(ours.nodes) == len(theirs.nodes) == 2  # max_node_id is 63 on 4.17: counted right
    assert [n.cpus for n in ours.nodes] == [n.cpus for n in theirs.nodes]
    assert ours.distances == theirs.distances
    assert [c.node for c in ours.cpus] == [c.node for c in theirs.cpus]
    assert [c.socket for c in ours.cpus] == [c.socket for c in theirs.cpus]
    assert [n.memory_size // MIB for n in ours.nodes] == [n.memory_size // MIB for n in theirs.nodes]


def test_features_report(hv):
    features = hv.capabilities().features
    assert features["node_pages"] in ("native", "fallback")
    assert features["claims"] == "native"
    assert set(features.values()) <= {"native", "fallback", "unavailable"}


def _pages_on(pages):
    return {n for n, p in pages.items() if p}


def test_pages_land_where_affinity_says(hv, guests):
    soft1 = guests("soft-node1", cpus_soft="node:1")
    hard0 = guests("hard-node0", cpus="node:0")
    auto = guests("no-affinity")
    dump = debug_key_dump()
    for domid in (soft1, hard0, auto):
        assert hv.node_pages(domid) == {n: dump[domid].get(n, 0) for n in (0, 1)}
    assert _pages_on(hv.node_pages(soft1)) == {1}
    assert _pages_on(hv.node_pages(hard0)) == {0}
    # libxl's automatic placement puts a small guest on one node, and says which in soft affinity
    node = _pages_on(hv.node_pages(auto))
    assert len(node) == 1
    soft = {v.soft for v in hv.vcpus(auto)}
    assert soft == {hv.topology().cpus_of_nodes(node)}
    total = sum(hv.node_pages(soft1).values())
    assert total * 4096 >= 128 * MIB


def _xl_vcpu_affinity(name: str):
    rows = {}
    for line in xl("vcpu-list", name).splitlines()[1:]:
        parts = line.split()
        hard, soft = line.rsplit("/", 1)[0].split()[-1], line.rsplit("/", 1)[1].strip()
        rows[int(parts[2])] = (hard, soft)
    return rows


def test_vcpu_affinity_round_trip_matches_xl(hv, guests):
    domid = guests("pin-me")
    topo = hv.topology()
    hv.set_vcpu_affinity(domid, 0, hard=frozenset({0, 1, 2}), soft=frozenset({2}))
    hv.set_vcpu_affinity(domid, 1, soft=topo.cpus_of_nodes([0]))
    vcpus = {v.vcpu: v for v in hv.vcpus(domid)}
    assert (vcpus[0].hard, vcpus[0].soft) == ({0, 1, 2}, {2})
    assert vcpus[1].soft == {0, 1}
    assert vcpus[0].cpu in {0, 1, 2}
    listed = _xl_vcpu_affinity("pin-me")
    assert listed[0] == ("0-2", "2")
    assert listed[1][1] == "0-1"
    # a PV guest created paused has only vCPU 0 online until it boots
    assert vcpus[0].state == "paused" and vcpus[1].state in ("paused", "offline")


def test_node_affinity_round_trip(hv, guests):
    domid = guests("node-aff")
    hv.set_node_affinity(domid, frozenset({1}))
    assert hv.node_affinity(domid) == {1}
    hv.set_node_affinity(domid, None)  # automatic again: derived from the vCPUs' affinity
    topo = hv.topology()
    derived = set()
    for v in hv.vcpus(domid):
        derived |= topo.nodes_of_cpus(v.soft & v.hard or v.hard)
    assert hv.node_affinity(domid) == derived


def test_claims_visible_and_released(hv, guests):
    domid = guests("claimer", maxmem=256)
    # libxl sets max_pages to the target memory at build; a claim may not exceed it
    with pytest.raises(HypervisorError) as err:
        hv.claim(domid, 1 << 20)
    assert err.value.errno == errno.EINVAL and "maximum" in err.value.message
    xl("mem-max", "claimer", "256m")
    dom = [d for d in hv.domains() if d.domid == domid][0]
    target = (dom.memory >> 12) + 16384  # 64 MiB more than it has
    hv.claim(domid, target)
    dom = [d for d in hv.domains() if d.domid == domid][0]
    assert dom.claimed == 16384 << 12
    assert hv.physinfo().outstanding_pages >= 16384
    # a start reads the host's claims from physinfo (one call), not from every domain's record
    assert hv.claims_outstanding() == sum(d.claimed for d in hv.domains()) >= 16384 << 12
    hv.claim(domid, 0)
    assert [d.claimed for d in hv.domains() if d.domid == domid] == [0]


def test_a_starts_domain_read_matches_the_full_list_and_xl(hv, guests):
    """A start reads domid -> UUID without names, and single records: the same domains,
    UUIDs as xl prints them, and nothing for a domid that is not there."""
    domid = guests("uuids")
    listed = hv.domains()
    assert hv.domain_uuids() == {d.domid: d.uuid for d in listed}
    assert hv.domain(domid) == next(d for d in listed if d.domid == domid)
    assert hv.domain(domid).name == "uuids"
    assert hv.domain(32000) is None
    xl_uuid = next(line.split()[-1] for line in xl("list", "-l", "uuids").splitlines() if '"uuid"' in line)
    assert hv.domain_uuids()[domid] == xl_uuid.strip('",')


def test_pause_unpause(hv, guests):
    domid = guests("pauser")
    assert [d.paused for d in hv.domains() if d.domid == domid] == [True]
    hv.unpause(domid)
    assert [d.paused for d in hv.domains() if d.domid == domid] == [False]
    hv.pause(domid)
    assert [d.paused for d in hv.domains() if d.domid == domid] == [True]


def test_errors_are_explained(hv):
    with pytest.raises(HypervisorError) as err:
        hv.vcpus(31999)
    assert err.value.errno == errno.ESRCH and "no such domain" in err.value.message
    with pytest.raises(HypervisorError) as err:
        hv.node_pages(31999)
    assert err.value.errno == errno.ESRCH
    with pytest.raises(HypervisorError) as err:
        hv.set_vcpu_affinity(0, 0, hard=frozenset({100000}))
    assert err.value.errno == errno.EINVAL
    with pytest.raises(HypervisorError) as err:
        hv.set_vcpu_affinity(0, 0, hard=frozenset())
    assert err.value.errno == errno.EINVAL
    with pytest.raises(HypervisorError) as err:
        hv.claim(31999, 10)  # Xen says EINVAL here; the adapter finds out it is ESRCH
    assert err.value.errno == errno.ESRCH and "no such domain" in err.value.message


def test_unprivileged_use_is_refused_clearly():
    code = ("from xapi_numa.errors import BackendUnavailable\n"
            "from xapi_numa.backends.xen import XenHypervisor\n"
            "try:\n    XenHypervisor()\nexcept BackendUnavailable as e:\n    print(e.message)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          preexec_fn=lambda: (os.setgid(65534), os.setuid(65534)),
                          env=dict(os.environ, PYTHONPATH="/opt/xapi-numa"))
    assert "Traceback" not in proc.stderr
    assert "not privileged" in proc.stdout or "EACCES" in proc.stdout or "EPERM" in proc.stdout


def test_cli_on_xen():
    proc = subprocess.run([sys.executable, "-m", "xapi_numa.cli", "--backend", "xen", "vcpus", "--json"],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH="/opt/xapi-numa"))
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert any(r["domid"] == 0 for r in rows)
    assert {"domid", "name", "vcpu", "cpu", "node", "hard", "soft", "outside_soft"} <= set(rows[0])
    proc = subprocess.run([sys.executable, "-m", "xapi_numa.cli", "--backend", "xen", "memory", "--json"],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH="/opt/xapi-numa"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["name"] == "Domain-0"


def test_simulator_places_memory_like_xen(hv, guests, tmp_path):
    """Simulator fidelity: the same guests on the simulator and on Xen land on the same nodes.

    Before each guest, a simulated host is made with the real host's topology and free
    memory per node as they are then, and the earlier guests are created on it again:
    memory freed or taken on Xen meanwhile (a guest of an earlier test rebooted, pages
    scrubbed late) would otherwise change libxl's most-free-memory choice on one side
    only (seen in CI once, with a guest dying), and the earlier guests' vCPUs are libxl's
    other key.
    """
    from xapi_numa.backends.sim.backend import SimHypervisor

    topo = hv.topology()
    scenario = [("f-soft1", {"cpus_soft": "node:1"}, {"soft": "node:1"}),
                ("f-hard0", {"cpus": "node:0"}, {"hard": "node:0"}),
                ("f-auto", {}, {})]

    def create(sim, name, sim_cfg):
        return sim.create(name, 2, 128 << 20, hard=topo.parse_cpus(sim_cfg["hard"]) if "hard" in sim_cfg else None,
                          soft=topo.parse_cpus(sim_cfg["soft"]) if "soft" in sim_cfg else None, paused=True)

    made = []  # (name, sim_cfg, pages per node on the simulator) of the guests so far
    for name, xl_cfg, sim_cfg in scenario:
        free = {m.node: m.free for m in hv.node_memory()}
        earlier = {n.id: sum(pages.get(n.id, 0) for _, _, pages in made) << 12 for n in topo.nodes}
        sim_topo = Topology.from_arrays([c.node for c in topo.cpus], topo.distances,
                                        [free[n.id] + earlier[n.id] + (64 << 20) for n in topo.nodes],
                                        cpu_to_core=[c.core for c in topo.cpus],
                                        cpu_to_socket=[c.socket for c in topo.cpus])
        sim = SimHypervisor.init(str(tmp_path / "{}.json".format(name)), sim_topo, hv.capabilities().scheduler, 1,
                                 dom0_vcpus=1, dom0_memory=128 << 20)
        for before, before_cfg, pages in made:
            assert _pages_on(sim.node_pages(create(sim, before, before_cfg))) == _pages_on(pages), before
        real = guests(name, **xl_cfg)
        fake = create(sim, name, sim_cfg)
        made.append((name, sim_cfg, sim.node_pages(fake)))
        real_nodes = _pages_on(hv.node_pages(real))
        sim_nodes = _pages_on(sim.node_pages(fake))
        assert real_nodes == sim_nodes, f"{name}: Xen put it on {real_nodes}, the simulator on {sim_nodes}"


def test_simulator_stripes_a_pv_build_like_xen(hv, guests, tmp_path):
    """Simulator fidelity, page by page: a PV guest of 4 vCPUs (libxl's placement needs both
    nodes of this 2 x 2-pCPU host, and sets the node affinity to them) of 130 MiB is built in
    65 extents of 2 MiB (libxc's meminit_pv), striped from the node after node 0 (a new domain's
    last_alloc_node is 0; get_free_buddy starts at cycle_node).  Judged by pages per node on a
    simulated host made with this host's topology and free memory, never by time."""
    from xapi_numa.backends.sim.backend import SimHypervisor

    topo = hv.topology()
    free = {m.node: m.free for m in hv.node_memory()}
    sim_topo = Topology.from_arrays([c.node for c in topo.cpus], topo.distances,
                                    [free[n.id] + (64 << 20) for n in topo.nodes],
                                    cpu_to_core=[c.core for c in topo.cpus],
                                    cpu_to_socket=[c.socket for c in topo.cpus])
    sim = SimHypervisor.init(str(tmp_path / "pv-striped.json"), sim_topo, hv.capabilities().scheduler, 1,
                             dom0_vcpus=1, dom0_memory=128 << 20)  # 64 MiB a node: its free as on Xen
    real = guests("pv-striped", memory=130, vcpus=4)
    fake = sim.create("pv-striped", 4, 130 << 20, paused=True)
    real_pages = {n: p for n, p in hv.node_pages(real).items() if p}
    sim_pages = {n: p for n, p in sim.node_pages(fake).items() if p}
    assert real_pages == sim_pages, f"Xen put {real_pages} pages per node, the simulator {sim_pages}"
