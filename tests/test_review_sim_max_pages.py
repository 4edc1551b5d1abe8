"""Review: the simulator had no model of max_pages in a page move.  On Xen a populate
beyond a domain's max_pages is refused (assign_pages), so the mover raises the maximum
by what a batch lacks (frames a release could not free still count against it; the
toolstack may have capped it below the pages the guest has), records the toolstack's
value in its batch record before the raise, and gives it back after; a mover killed
inside the raise leaves it to recovery, which sets the toolstack's value again.  The
simulator gave a moved or recovered gfn its frame whatever the maximum, reported no
raise, and had no raise for a dead mover to leave: none of those paths ran there."""
import json

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.backends.sim.guestmem import UNBACKED, node_lookup
from xapi_numa.core.topology import Topology

MiB = 1 << 20
GFNS = list(range(0x400, 0x600))  # 512 gfns of guest RAM, none the mover leaves alone


def _host(tmp_path):
    hv = SimHypervisor.init(str(tmp_path / "host.json"), Topology.uniform(2, 2, 1 << 30), "credit2", 3,
                            dom0_vcpus=2, dom0_memory=64 * MiB)
    return hv, hv.create("g", 2, 64 * MiB, hard=frozenset({0, 1}), dtype="pvh", load="busy")


def _pages(hv, domid) -> int:
    return hv.domain(domid).memory >> 12


def _max(hv, domid) -> int:
    return hv.domain(domid).max_memory >> 12


def _cap(hv, domid, below: int) -> int:
    """squeezed caps the guest ``below`` pages under what it has (Xen allows max < tot)."""
    cap = _pages(hv, domid) - below
    hv.set_max_memory(domid, cap << 12)
    assert _max(hv, domid) == cap
    return cap


def test_a_populate_beyond_max_pages_is_refused(tmp_path):
    hv, domid = _host(tmp_path)
    _cap(hv, domid, 0)
    with hv.store.transaction() as host:
        d = host.domain(domid)
        assert host.take_exact(d, 1, 10) == 0  # at its maximum: the populate gets nothing
        before = list(d.node_pages)
    assert hv.domain(domid).memory >> 12 == sum(before)


def test_a_batch_of_a_capped_guest_raises_its_maximum_and_gives_it_back(tmp_path):
    hv, domid = _host(tmp_path)
    pages = _pages(hv, domid)
    cap = _cap(hv, domid, 100)
    result = hv.move_pages(domid, GFNS, 1)
    assert result.error == 0 and result.moved == 512 and result.lost == 0
    assert result.raised_max == 100  # 412 fitted under the cap after the release, 100 did not
    assert _pages(hv, domid) == pages and _max(hv, domid) == cap  # the toolstack's cap stands again
    assert hv.node_pages(domid)[1] == 512


def test_a_frame_the_release_could_not_free_takes_a_raise_given_back(tmp_path):
    hv, domid = _host(tmp_path)
    cap = _max(hv, domid)
    assert _pages(hv, domid) == cap  # built to its maximum
    hv.hold(domid, GFNS[3])
    result = hv.move_pages(domid, GFNS, 1, verify_chunk=16)
    assert result.not_freed == 1 and result.lost == 0
    assert result.raised_max == 1  # the held old frame still counts: one more for its new one
    assert _max(hv, domid) == cap and _pages(hv, domid) == cap + 1  # until the holder lets go
    hv.release_hold(domid, GFNS[3])
    assert _pages(hv, domid) == cap


def _unbacked(hv, domid):
    with hv.store.snapshot() as host:
        look = node_lookup(host.domain(domid).gfn_runs or [])
        return [g for g in GFNS if look(g) == UNBACKED]


def test_a_mover_killed_inside_the_raise_is_recovered_to_the_toolstacks_maximum(tmp_path):
    hv, domid = _host(tmp_path)
    pages = _pages(hv, domid)
    cap = _cap(hv, domid, 100)
    result = hv.move_pages(domid, GFNS, 1, fault="die-after-raise")
    assert result.stage == "died" and result.raised_max == 100
    assert hv.domain(domid).paused and hv.batch_records() == [domid] and _max(hv, domid) == cap + 100
    assert len(_unbacked(hv, domid)) == 100
    note = hv.recover_move(domid)
    assert "max_pages set back to the toolstack's {} pages".format(cap) in note
    assert _max(hv, domid) == cap and _pages(hv, domid) == pages  # (recovery's own raise given back too)
    assert not hv.domain(domid).paused and hv.batch_records() == [] and _unbacked(hv, domid) == []


def test_a_maximum_the_toolstack_set_since_the_raise_stands(tmp_path):
    hv, domid = _host(tmp_path)
    _cap(hv, domid, 100)
    hv.move_pages(domid, GFNS, 1, fault="die-after-raise")
    mine = _pages(hv, domid) + 1000
    hv.set_max_memory(domid, mine << 12)  # a balloon target change meanwhile
    note = hv.recover_move(domid)
    assert "max_pages set back" not in note and _max(hv, domid) == mine
    assert not hv.domain(domid).paused and _unbacked(hv, domid) == []


def test_a_state_file_from_before_raises_were_modelled_still_loads(tmp_path):
    hv, domid = _host(tmp_path)
    with open(hv.path) as f:
        data = json.load(f)
    for d in data["domains"]:
        del d["max_raise"]
    with open(hv.path, "w") as f:
        json.dump(data, f)
    assert hv.move_pages(domid, GFNS, 1).moved == 512
