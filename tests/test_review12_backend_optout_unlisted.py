"""Review 12: a VM xapi has not listed yet (started since the last read of the VMs'
records, every 30 s; or xapi away since xapi-numad started) had its backend work
aligned whatever its other_config:numa_backend_affinity says, and the VM that opted
out got it handed back only at the next read: its threads and IRQs pinned to one
node (the IRQs banned from irqbalance) against the admin's word.  Its opt-out is
not known, so its backend work is left alone until xapi lists it, as the rebalancer
leaves such a VM alone."""
import types

from test_backend_affinity import N1, allowed, sim_host

from xapi_numa.backends.sim.dom0_tree import SimDom0
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.ops.xapi_link import VmRecords, XapiLink
from xapi_numa.state.backend_pins import BackendJournal
from xapi_numa.state.db import Database


def test_a_vm_not_listed_by_xapi_yet_has_no_known_opt_in():
    records = VmRecords(opted_out={"listed": False}, backend_off=frozenset({"off"}))
    assert records.backend_affinity_off("off")
    assert not records.backend_affinity_off("listed")
    assert records.backend_affinity_off("started-since")   # not known: left alone
    assert VmRecords().backend_affinity_off("any")          # xapi never read


def test_a_vm_started_since_the_last_read_that_opted_out_is_never_aligned(tmp_path):
    hv = sim_host(tmp_path)
    first = hv.create("first", 1, 256 << 20, soft=N1, dtype="pvh")
    uuid_of = {d.domid: d.uuid for d in hv.domains()}
    vms = {"ref1": {"uuid": uuid_of[first], "other_config": {}}}
    session = types.SimpleNamespace(xenapi=types.SimpleNamespace(VM=types.SimpleNamespace(
        get_all_records=lambda *a: dict(vms))))
    link = XapiLink(lambda: session, hv.clock)
    dom0 = SimDom0(hv, str(tmp_path / "host"))
    db = Database(str(tmp_path / "l.db"))
    rt = Runtime(hv, db, Settings(rebalancing=False), dom0=dom0, backend_opt_out=link.backend_affinity_off)
    rt.cycle()
    assert {tuple(v) for v in allowed(dom0, first)[0].values()} == {(1,)}     # listed, not opted out
    # a VM that opted out starts before the next read of the records (30 s later)
    late = hv.create("late", 1, 256 << 20, soft=N1, dtype="pvh")
    late_uuid = next(d.uuid for d in hv.domains() if d.domid == late)
    vms["ref2"] = {"uuid": late_uuid, "other_config": {"numa_backend_affinity": "false"}}
    hv.run(1.0)
    rt.cycle()
    threads, irqs = allowed(dom0, late)
    assert threads and {tuple(v) for v in threads.values()} == {(0, 1)}, threads
    assert {tuple(v) for v in irqs.values()} == {(0, 1)}, irqs
    assert not [o for o in BackendJournal(db).entries() if o.uuid == late_uuid]
    assert not set(irqs) & dom0.banned()
    hv.run(31.0)                                                              # read again: known now
    rt.cycle()
    assert {tuple(v) for v in allowed(dom0, late)[0].values()} == {(0, 1)}
    assert {tuple(v) for v in allowed(dom0, first)[0].values()} == {(1,)}
