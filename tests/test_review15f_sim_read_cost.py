"""The simulated host parsed its whole state file at every read: xapi-numad's cycle reads
each domain's vCPUs, so a cycle parsed the host once per domain, and its cost grew with the
square of the domains (23-56 s a cycle at 800 VMs on 16 nodes).  Counted here, not timed."""
from xapi_numa.backends.sim import store
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.topology import Topology
from xapi_numa.ops import observe


def _counting(monkeypatch):
    parses = []
    real = store.host_from_dict

    def counted(data):
        parses.append(1)
        return real(data)
    monkeypatch.setattr(store, "host_from_dict", counted)
    return parses


def _host(tmp_path, vms):
    hv = SimHypervisor.init(str(tmp_path / "host.json"), Topology.uniform(2, 4, 4 << 30), "credit2", 1)
    for i in range(vms):
        hv.create("vm{}".format(i), 2, 64 << 20, load="busy", dtype="pvh")
    hv.run(1)
    return hv


def test_a_snapshot_of_an_unchanged_host_parses_it_once_whatever_its_domains(tmp_path, monkeypatch):
    hv = _host(tmp_path, 20)
    parses = _counting(monkeypatch)
    snap = observe.take(hv)
    assert len(snap.domains) == 21 and len(snap.vcpus) == 21
    assert len(parses) == 1  # not one per domain read


def test_a_change_by_another_process_is_seen_at_the_next_read(tmp_path, monkeypatch):
    hv = _host(tmp_path, 3)
    other = SimHypervisor(hv.path)  # another process's view of the same file
    before = {d.domid for d in hv.domains()}
    victim = max(before)
    other.destroy(victim)
    assert {d.domid for d in hv.domains()} == before - {victim}
    new = other.create("late", 1, 64 << 20)
    assert new in {d.domid for d in hv.domains()}
    other.run(1)
    assert hv.now_ms() == other.now_ms()


def test_a_transaction_changes_its_own_host_not_the_one_reads_share(tmp_path):
    hv = _host(tmp_path, 2)
    with hv.store.snapshot() as seen:
        shared = seen
    hv.set_load(max(d.domid for d in hv.domains()), "idle")  # a transaction
    assert shared is not None
    with hv.store.snapshot() as now:
        assert now is not shared  # parsed again: the file changed
