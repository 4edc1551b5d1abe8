"""Temporary pins journalled in an earlier boot of the host were put back on the new boot's domains.

A host that loses power with a temporary pin of xapi-numad's in force keeps its journal row
(uuid, vCPU, domid, pinned to, hard affinity before).  After the boot the domids start again
from 1, and xapi starts the VMs in much the same order: the same VM can be the same domid,
and built with a boot pin from ``place`` on the same node's CPUs as the old temporary pin.
xapi-numad's start then took the row for its own pin on the new domain and wrote the old
domain's hard affinity (every CPU) over the boot pin of a build under way.  A pin row now
says the boot it was made in (``Hypervisor.boot_id``), and one of another boot is forgotten,
never put back; one that does not say (written before) is judged as before."""
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.actions import PinTemporarily
from xapi_numa.core.topology import Topology
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.state.db import Database
from xapi_numa.state.pins import PinJournal

BEFORE, AFTER = "0b0b0b0b-0000-4000-8000-00000000000a", "0b0b0b0b-0000-4000-8000-00000000000b"


def _crashed_with_a_pin(tmp_path, monkeypatch, boot_after):
    topo = Topology.uniform(2, 4, 4 << 30)
    sim = SimHypervisor.init(str(tmp_path / "h.json"), topo, "credit", 1, dom0_vcpus=1, dom0_memory=128 << 20)
    domid = sim.create("A", 2, 256 << 20, soft=topo.parse_cpus("node:0"), load="idle")
    uuid = next(d.uuid for d in sim.domains() if d.domid == domid)
    node0 = topo.parse_cpus("node:0")
    monkeypatch.setattr(SimHypervisor, "boot_id", lambda self: BEFORE)
    before = Runtime(sim, Database(str(tmp_path / "l.db")), Settings())
    before.executor.apply([PinTemporarily(domid, uuid, 0, node0, topo.all_cpus, "displaced")])
    assert [p.vcpu for p in PinJournal(before.db).entries()] == [0]
    # power lost; the host boots again and xapi starts A as the same domid, its build boot-pinned to node 0
    monkeypatch.setattr(SimHypervisor, "boot_id", lambda self: boot_after)
    for vcpu in range(2):
        sim.set_vcpu_affinity(domid, vcpu, hard=node0, soft=node0)
    return sim, domid, node0, Runtime(sim, Database(str(tmp_path / "l.db")), Settings())


def test_a_pin_of_an_earlier_boot_is_forgotten_at_start_not_put_back(tmp_path, monkeypatch):
    sim, domid, node0, rt = _crashed_with_a_pin(tmp_path, monkeypatch, AFTER)
    rt.restore_all_pins("start: pins left by a previous run")
    assert [v.hard for v in sim.vcpus(domid)] == [node0, node0], "the new build's boot pin was overwritten"
    assert PinJournal(rt.db).entries() == []


def test_a_pin_of_an_earlier_boot_is_forgotten_by_a_cycle_not_put_back(tmp_path, monkeypatch):
    sim, domid, node0, rt = _crashed_with_a_pin(tmp_path, monkeypatch, AFTER)
    rt.cycle()
    assert [v.hard for v in sim.vcpus(domid)] == [node0, node0]
    assert PinJournal(rt.db).entries() == []


def test_a_pin_of_this_boot_is_still_put_back(tmp_path, monkeypatch):
    sim, domid, node0, rt = _crashed_with_a_pin(tmp_path, monkeypatch, BEFORE)  # the daemon restarted, no reboot
    rt.restore_all_pins("start: pins left by a previous run")
    assert sim.vcpus(domid)[0].hard == sim.topology().all_cpus
    assert PinJournal(rt.db).entries() == []
