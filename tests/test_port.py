"""The simulator through the Hypervisor port, as every caller sees it."""
import pytest

from xapi_numa.errors import BackendUnavailable, HypervisorError, InvalidArgument
from xapi_numa.ports.hypervisor import Hypervisor
from xapi_numa.backends.open import open_hypervisor
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.topology import Topology


@pytest.fixture
def sim(tmp_path):
    return SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 4, 1 << 30), "credit2", 1,
                              dom0_vcpus=1, dom0_memory=128 << 20)


def test_is_a_hypervisor(sim):
    assert isinstance(sim, Hypervisor)


def test_backend_selection(tmp_path, monkeypatch, sim):
    monkeypatch.setenv("XAPI_NUMA_BACKEND", f"sim:{sim.path}")
    assert isinstance(open_hypervisor(), SimHypervisor)
    with pytest.raises(InvalidArgument) as err:
        open_hypervisor("kvm")
    assert "sim:PATH" in err.value.message
    with pytest.raises(BackendUnavailable) as err:
        open_hypervisor("xen")  # not dom0 here: built or not, it says why
    assert "libxenuma" in err.value.message or "not running in dom0" in err.value.message


def test_affinity_round_trip_and_node_pages(sim):
    domid = sim.create("g", 2, 256 << 20, soft=frozenset({4, 5, 6, 7}))
    assert sim.node_pages(domid) == {0: 0, 1: (256 << 20) >> 12}
    sim.set_vcpu_affinity(domid, 1, hard=frozenset({0, 1}), soft=frozenset({1}))
    v = sim.vcpus(domid)[1]
    assert (v.hard, v.soft) == ({0, 1}, {1}) and v.cpu in {0, 1}
    assert sim.node_affinity(domid) == {0, 1}
    sim.set_node_affinity(domid, frozenset({1}))
    assert sim.node_affinity(domid) == {1}
    sim.set_node_affinity(domid, None)
    with pytest.raises(HypervisorError) as err:
        sim.set_vcpu_affinity(domid, 0, hard=frozenset())
    assert err.value.errno_name == "EINVAL"
    with pytest.raises(HypervisorError) as err:
        sim.vcpus(42)
    assert "no such domain" in err.value.message


def test_claims_visible_and_released(sim):
    domid = sim.create_shell("g", 1, 64 << 20)  # a claim is for a domain still to be built
    sim.claim(domid, 1000, node=1)
    assert [m.claimed for m in sim.node_memory()] == [0, 1000 << 12]
    assert [d.claimed for d in sim.domains() if d.domid == domid] == [1000 << 12]
    sim.claim(domid, 0, node=1)
    assert all(m.claimed == 0 for m in sim.node_memory())


def test_a_shell_claimed_on_a_node_is_built_there_and_uses_its_claim_up(sim):
    # xenopsd's order: domain_create (no memory), a claim on the planned node, then xenguest
    domid = sim.create_shell("g", 2, 256 << 20)
    assert [(d.memory, d.paused) for d in sim.domains() if d.domid == domid] == [(0, True)]
    sim.claim(domid, (256 << 20) >> 12, node=1)
    assert sim.build(domid, 1) == {1: (256 << 20) >> 12}
    assert all(m.claimed == 0 for m in sim.node_memory())
    assert [d.paused for d in sim.domains() if d.domid == domid] == [False]


def test_pause_unpause_states(sim):
    domid = sim.create("g", 2, 64 << 20)
    sim.run(0.1)
    assert {v.state for v in sim.vcpus(domid)} == {"running"}
    sim.pause(domid)
    assert {v.state for v in sim.vcpus(domid)} == {"paused"}
    assert [d.paused for d in sim.domains() if d.domid == domid] == [True]
    sim.unpause(domid)
    sim.run(0.1)
    assert {v.state for v in sim.vcpus(domid)} == {"running"}


def test_xl_like_auto_placement(sim):
    domid = sim.create("auto", 2, 512 << 20)
    pages = sim.node_pages(domid)
    assert sorted(pages.values()) == [0, (512 << 20) >> 12]  # one node, not striped
    node = max(pages, key=pages.get)
    assert all(v.soft == sim.topology().cpus_of_nodes([node]) for v in sim.vcpus(domid))


def test_a_starts_read_of_the_domains_agrees_with_the_full_list(sim):
    """domid -> UUID (what a start's count of homes needs) and one record by domid are the
    domain list's own answers; a domid that is not there has no record."""
    domid = sim.create("g", 2, 256 << 20)
    listed = sim.domains()
    assert sim.domain_uuids() == {d.domid: d.uuid for d in listed} and len(listed) == 2
    assert sim.domain(domid) == next(d for d in listed if d.domid == domid)
    assert sim.domain(domid + 100) is None
    sim.destroy(domid)
    assert domid not in sim.domain_uuids() and sim.domain(domid) is None


def test_a_simulated_host_file_whose_domain_uuid_is_no_uuid_is_refused_clearly(sim):
    """Before 2026-12-04 the Python API took any text as a domain's UUID; Xen keeps 16
    bytes.  Such a file is refused naming the field (placement crashed on it), and a UUID
    in upper case reads back in lower case, as Xen gives it."""
    import json

    sim.create("web", 1, 64 << 20)
    with pytest.raises(InvalidArgument):
        sim.create("bad", 1, 64 << 20, uuid="web-02")  # none is made now
    state = json.load(open(sim.path))
    web = next(d for d in state["domains"] if d["name"] == "web")
    web["uuid"] = web["uuid"].upper()
    json.dump(state, open(sim.path, "w"))
    assert next(d.uuid for d in SimHypervisor(sim.path).domains() if d.name == "web") == web["uuid"].lower()
    web["uuid"] = "web-01"
    json.dump(state, open(sim.path, "w"))
    from xapi_numa.errors import NumaError

    with pytest.raises(NumaError) as err:  # (the store reports it as a damaged file, with the reason)
        SimHypervisor(sim.path).domains()
    assert "host.domains[1].uuid must be a UUID, not 'web-01'" in err.value.message
    assert "sim init PATH --force" in err.value.message
