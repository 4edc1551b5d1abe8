"""A start's dry run reads the world afresh every time, in as little work as it can
(bench_placement's decision latency): each shortcut gives what the plain way gives, and
nothing read for one decision is taken for the next."""
import random
import uuid as uuidlib

import pytest
from hypothesis import given, strategies as st

from xapi_numa.backends import xen_domains
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.live_domains import LiveDomains, SIEVE_FROM, handle_of, handles_of
from xapi_numa.core.placement import Request
from xapi_numa.core.topology import OFFLINE, Topology, cpus_by_node
from xapi_numa.errors import DamagedRow
from xapi_numa.ops.reserve import place_and_reserve
from xapi_numa.state.ledger import Ledger

cffi = pytest.importorskip("cffi")
G = 1 << 30


# --- the topology's CPUs per node ------------------------------------------------------------
@given(st.lists(st.integers(-1, 5), max_size=40), st.booleans())
def test_cpus_by_node_is_the_grouping_in_node_order_or_not(table, in_order):
    table = sorted(table) if in_order else table
    want = {node: frozenset(c for c, n in enumerate(table) if n == node) for node in set(table) - {OFFLINE}}
    assert cpus_by_node(table) == want
    assert cpus_by_node(tuple(table)) == want


@given(st.lists(st.tuples(st.integers(-1, 3), st.integers(0, 2), st.integers(0, 3)), min_size=1, max_size=40))
def test_cores_per_node_counts_each_nodes_distinct_socket_and_core(cpus):
    nodes = 4
    table = [n for n, _, _ in cpus]
    topo = Topology.from_arrays(table, [[10 if i == j else 20 for j in range(nodes)] for i in range(nodes)],
                                [G] * nodes, cpu_to_core=[c for _, _, c in cpus], cpu_to_socket=[s for _, s, _ in cpus])
    assert topo.cores_per_node() == [len({(s, c) for n, s, c in cpus if n == node}) for node in range(nodes)]


def test_cpus_by_node_refuses_a_node_that_is_no_integer_in_order_or_not():
    assert cpus_by_node([0, 1.0]) is None and cpus_by_node([1.0, 0]) is None


# --- the domain list's handles, whatever the records' layout ------------------------------------
LAYOUTS = {
    "libxenuma.h (handle at 44 of 64)": "uint32_t domid; uint32_t flags; uint64_t tot_pages, max_pages, "
                                        "outstanding_pages; uint32_t nr_online_vcpus, max_vcpu_id; "
                                        "uint32_t cpupool; uint8_t handle[16];",
    "handle at 48 of 64": "uint32_t domid; uint32_t flags; uint64_t a, b, c; uint32_t d, e, f, g; "
                          "uint8_t handle[16];",
    "records of 28 bytes": "uint32_t domid; uint32_t flags; uint32_t a; uint8_t handle[16];",
    "handle first": "uint8_t handle[16]; uint32_t domid; uint32_t flags;",
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("count", [0, 1, 2, 5, 300])
def test_the_handles_are_read_whole_whatever_the_layout(layout, count):
    ffi = cffi.FFI()
    ffi.cdef("struct xn_domain { " + LAYOUTS[layout] + " };")
    rng = random.Random(count)
    raws = {d: bytes(rng.randrange(256) for _ in range(16)) for d in range(1, 3 * count + 1, 3)}
    dying = {d for d in raws if d % 7 == 0}

    class Lib:
        XN_DOM_DYING = 1

        def xn_domains(self, handle, first, size, out):
            chosen = [d for d in sorted(raws) if d >= first][:size]
            for i, domid in enumerate(chosen):
                out[i].domid, out[i].flags, out[i].handle = domid, 1 if domid in dying else 0, list(raws[domid])
            return len(chosen)

    live = xen_domains.uuids(ffi, Lib(), None, lambda rc, what: rc)
    assert live == {d: str(uuidlib.UUID(bytes=raw)) for d, raw in raws.items() if d not in dying}


# --- the live domains a reservation has --------------------------------------------------------
def test_alive_sieves_uuids_that_share_a_live_ones_first_bytes_and_finds_the_live_ones():
    rng = random.Random(5)
    live = {d: str(uuidlib.UUID(int=rng.getrandbits(128))) for d in range(1, 200)}
    domains = LiveDomains.of(live)
    near = []
    for text in list(live.values())[:SIEVE_FROM * 2]:  # the first 4, 8 or 15 bytes a live one's, not the rest
        raw = uuidlib.UUID(text).bytes
        for keep in (4, 8, 15):
            near.append(str(uuidlib.UUID(bytes=raw[:keep] + bytes(b ^ 0xFF for b in raw[keep:]))))
    asked = near + list(live.values())[::10] + ["not a uuid"]
    assert domains.alive(asked) == set(list(live.values())[::10])
    assert domains.alive(asked) == {u for u in asked if domains.domid_of(u) is not None}


_HEX = "0123456789abcdefABCDEF"


@st.composite
def uuid_like(draw):
    """A UUID's text in the usual form (either case), or one with a character changed (a space,
    which ``fromhex`` skips, a dash, a non-hex digit or letter, a non-ASCII digit), or cut or
    grown, or another form ``uuid.UUID`` reads, or no UUID at all."""
    text = str(uuidlib.UUID(int=draw(st.integers(0, (1 << 128) - 1))))
    text = "".join(draw(st.sampled_from([c, c.upper()])) if c.isalpha() else c for c in text)
    kind = draw(st.integers(0, 6))
    if kind == 1:
        at = draw(st.integers(0, 35))
        text = text[:at] + draw(st.sampled_from([" ", "-", "g", "\u0661", "\t", "0"])) + text[at + 1:]
    elif kind == 2:
        text = text[:draw(st.integers(0, 35))]
    elif kind == 3:
        text = text + draw(st.sampled_from(["0", " ", "-"]))
    elif kind == 4:
        form = draw(st.sampled_from(["{%s}", "urn:uuid:%s", "%s"]))
        text = form % text.replace("-", draw(st.sampled_from(["", "-"])))
    elif kind == 5:
        text = draw(st.text(max_size=40))
    return text


@given(st.lists(uuid_like(), max_size=40))
def test_the_handles_read_all_at_once_are_each_ones_handle_or_none_is_given(uuids):
    together = handles_of(uuids)
    one_by_one = [handle_of(u) for u in uuids]
    if together is not None:
        assert together == b"".join(one_by_one)
    usual = [len(u) == 36 and all(u[at] == "-" for at in (8, 13, 18, 23))
             and all(c in _HEX for i, c in enumerate(u) if i not in (8, 13, 18, 23)) for u in uuids]
    assert (together is not None) == all(usual)  # (none given only where one is not in the usual form)


@given(st.lists(uuid_like(), max_size=40), st.integers(0, 2 ** 32 - 1))
def test_alive_is_those_that_domid_of_finds_whatever_the_texts(asked, seed):
    rng = random.Random(seed)
    live = {d: str(uuidlib.UUID(int=rng.getrandbits(128))) for d in range(1, 60)}
    for u in asked:  # some of the texts asked for are live domains' UUIDs
        raw = handle_of(u)
        if raw is not None and rng.random() < 0.5:
            live[rng.randrange(60, 200)] = str(uuidlib.UUID(bytes=raw))
    domains = LiveDomains.of(live)
    assert domains.alive(asked) == {u for u in asked if domains.domid_of(u) is not None}


# --- the ledger a dry run reads ------------------------------------------------------------
@pytest.fixture
def storm(tmp_path):
    """2 nodes x 16G; ten starts reserved, the first one's domain being built."""
    sim = SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 4, 16 * G), "credit2", 1)
    ledger = Ledger(str(tmp_path / "l.db"))
    vms = [str(uuidlib.UUID(int=n + 1, version=4)) for n in range(10)]
    for vm in vms:
        ledger.reserve(vm, {0: G // 4, 1: G // 4}, 300.0, lambda: {0: 16 * G, 1: 16 * G})
    sim.create_shell("building", 1, G // 4, uuid=vms[0])
    return sim, ledger, vms


def test_a_damaged_flag_of_a_reservation_with_no_domain_still_stops_a_dry_run(storm):
    sim, ledger, vms = storm
    with ledger.db.write() as db:
        db.execute("UPDATE reservation SET claim_ours = 2 WHERE vm = ?", (vms[5],))
    with pytest.raises(DamagedRow) as err:
        place_and_reserve(sim, ledger, Request(1, G), "next", dry_run=True)
    assert "column claim_ours holds 2" in err.value.message


def test_two_dry_runs_in_a_row_each_read_the_ledger_the_domains_and_free_memory_afresh(storm):
    sim, ledger, vms = storm
    _, _, before = place_and_reserve(sim, ledger, Request(1, G), "next", dry_run=True)
    ledger.reserve("more", {1: 4 * G}, 300.0, lambda: {0: 16 * G, 1: 16 * G})  # another start, meanwhile
    _, _, after = place_and_reserve(sim, ledger, Request(1, G), "next", dry_run=True)
    assert after.reserved[1] == before.reserved[1] + 4 * G and after.reserved[0] == before.reserved[0]
    # the build under way lands on node 0: its reservation shrinks there, and the free memory with it
    domid = LiveDomains.of(sim.domain_uuids()).domid_of(vms[0])
    sim.build(domid)
    _, _, built = place_and_reserve(sim, ledger, Request(1, G), "next", dry_run=True)
    assert built.free != after.free and built.reserved != after.reserved
    # and a domain started since is among those counted
    sim.create("late", 4, G, soft=frozenset(range(4)))
    _, _, later = place_and_reserve(sim, ledger, Request(1, G), "next", dry_run=True)
    assert sum(later.vcpus) == sum(built.vcpus) + 4
