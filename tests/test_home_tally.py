"""xapi-numad's vCPU-home tally and the starts that read it instead of every vCPU."""
import attrs

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.live_domains import LiveDomains
from xapi_numa.core.locality import single_homes
from xapi_numa.core.placement import Request
from xapi_numa.core.topology import Topology
from xapi_numa.ops.reserve import node_loads, place_and_reserve
from xapi_numa.ops.runtime import Runtime
from xapi_numa.state.db import Database
from xapi_numa.state.home_tally import MAX_AGE, HomeTally
from xapi_numa.state.ledger import Ledger

TOPO = Topology.uniform(2, 4, 8 << 30)


class Counting:
    """A host that counts the vCPU reads a start makes."""

    def __init__(self, hv) -> None:
        self.hv = hv
        self.vcpu_reads = 0

    def __getattr__(self, name):
        return getattr(self.hv, name)

    def vcpus(self, domid):
        self.vcpu_reads += 1
        return self.hv.vcpus(domid)


def host(tmp_path):
    sim = SimHypervisor.init(str(tmp_path / "h.json"), TOPO, "credit2", seed=1)
    sim.create("a", 2, 1 << 30, soft=TOPO.nodes[0].cpus)
    sim.create("b", 3, 1 << 30, soft=TOPO.nodes[1].cpus)
    sim.create("c", 2, 1 << 30)  # no affinity given: libxl's automatic placement
    return sim


def published(db):
    """domid -> {node: vCPUs homed there alone}, as the tally's rows hold them."""
    out = {}
    with db.read() as c:
        for domid, node, count in c.execute("SELECT domid, node, vcpus FROM home_tally"):
            out.setdefault(domid, {}).update({node: count} if node >= 0 else {})
    return out


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_daemons_cycle_publishes_each_guests_homes_and_a_start_reads_them_instead_of_every_vcpu(tmp_path):
    sim, clock = host(tmp_path), Clock()
    db = Database(str(tmp_path / "state.db"), clock=clock)
    Runtime(sim, db).cycle()
    assert published(db) == {d.domid: single_homes(sim.vcpus(d.domid), TOPO) for d in sim.domains() if d.domid}
    # (c too: libxl's automatic placement gave it one node's soft affinity)
    assert sorted(c for counts in published(db).values() for c in counts.values()) == [2, 2, 3]
    counting = Counting(sim)
    with_tally = node_loads(counting, {}, TOPO, tally=HomeTally(db))
    assert counting.vcpu_reads == 0
    assert with_tally == node_loads(sim, {}, TOPO)  # the same loads as reading every vCPU
    ledger = Ledger(db=db)
    counting.vcpu_reads = 0
    place_and_reserve(counting, ledger, Request(1, 1 << 30), "vm", dry_run=True)
    assert counting.vcpu_reads == 0
    clock.now += MAX_AGE + 1  # the daemon stopped: the tally goes stale and starts read again
    place_and_reserve(counting, ledger, Request(1, 1 << 30), "vm", dry_run=True)
    assert counting.vcpu_reads == 3


def test_a_domain_the_tally_does_not_name_or_a_reused_domid_is_read_and_a_gone_ones_count_dropped(tmp_path):
    sim = host(tmp_path)
    doms = {d.name: d for d in sim.domains()}
    tally = HomeTally(Database(str(tmp_path / "state.db")))
    tally.publish({doms["a"].domid: (doms["a"].uuid, {0: 2}),  # b missing: started since the tally
                   doms["c"].domid: ("not-c's-uuid", {1: 7}),  # c's domid was another VM's
                   99: ("stopped-since", {0: 5, 1: 6})})  # not running any more
    counting = Counting(sim)
    loads = node_loads(counting, {}, TOPO, tally=tally)
    assert counting.vcpu_reads == 2 and loads == node_loads(sim, {}, TOPO)
    counting.vcpu_reads = 0  # a domain left out (a dry run as if it had stopped) counts nowhere
    left_out = node_loads(counting, {}, TOPO, tally=tally, leave_out=doms["a"].domid)
    assert counting.vcpu_reads == 2 and left_out == node_loads(sim, {}, TOPO, leave_out=doms["a"].domid)
    assert left_out.vcpus != loads.vcpus


def test_the_tallys_sums_match_reading_every_vcpu_as_domains_come_and_go(tmp_path):
    """The sums SQLite makes, less the domains gone and plus those read, are the counts
    read from every vCPU, whichever domains started or stopped since the cycle."""
    import random

    sim, clock = host(tmp_path), Clock()
    db = Database(str(tmp_path / "state.db"), clock=clock)
    rng = random.Random(3)
    for round_ in range(6):
        Runtime(sim, db).cycle()  # publishes
        counting = Counting(sim)  # the domains it summed: its sums, no vCPU read
        assert node_loads(counting, {}, TOPO, tally=HomeTally(db)) == node_loads(sim, {}, TOPO)
        assert counting.vcpu_reads == 0
        for _ in range(rng.randint(1, 3)):  # then domains come and go before the next cycle
            guests = [d for d in sim.domains() if d.domid]
            if guests and rng.random() < 0.5:
                sim.destroy(rng.choice(guests).domid)
            else:
                cpus = TOPO.nodes[rng.randrange(2)].cpus
                sim.create("n{}-{}".format(round_, rng.random()), rng.randint(1, 4), 1 << 28, soft=cpus)
        counting = Counting(sim)
        assert node_loads(counting, {}, TOPO, tally=HomeTally(db)) == node_loads(sim, {}, TOPO)
        assert counting.vcpu_reads < len(sim.domains())


def test_a_tally_from_a_clock_stepped_back_or_never_written_is_not_used(tmp_path):
    clock = Clock()
    db = Database(str(tmp_path / "state.db"), clock=clock)
    tally = HomeTally(db)
    u5 = "00000000-0000-4000-8000-000000000005"
    live = LiveDomains.of({0: "00000000-0000-4000-8000-000000000000", 5: u5})
    assert tally.count(live, 2) is None
    tally.publish({5: (u5, {1: 4})})
    assert tally.count(live, 2) == ([0, 4], [])
    clock.now -= 10  # written "in the future": the clock was stepped back
    assert tally.count(live, 2) is None
    clock.now += 10 + MAX_AGE + 1  # the daemon stopped
    assert tally.count(live, 2) is None
    clock.now -= MAX_AGE + 1
    tally.publish({})  # every guest gone (5 started since, say): it is read
    assert tally.count(live, 2) == ([0, 0], [5])


def test_a_tally_the_state_database_refuses_does_not_stop_the_cycle(tmp_path):
    """The tally only spares starts some reads: a locked or read-only state database must
    not cost the cycle its fix-ups (a review found the cycle ended there)."""
    from xapi_numa.errors import StateError

    sim = host(tmp_path)
    rt = Runtime(sim, Database(str(tmp_path / "state.db")))

    def refuse(homes):
        raise StateError("database is locked")

    rt.home_tally.publish = refuse
    report = rt.cycle()
    assert "host_clock" in report and "publish-homes" in rt._failing


def test_the_very_domains_summed_are_answered_from_the_one_row(tmp_path):
    """A start that lists what the daemon summed takes its sums: the per-domain rows are
    not read (a review found that no test failed with the one-row path taken out)."""
    u = {n: "00000000-0000-4000-8000-00000000000{}".format(n) for n in (0, 3, 4)}
    db = Database(str(tmp_path / "s.db"))
    HomeTally(db).publish({3: (u[3], {0: 2}), 4: (u[4], {1: 3})})
    with db.write() as c:
        c.execute("DELETE FROM home_tally")  # only the sums can answer now
    assert HomeTally(db).count(LiveDomains.of(u), 2) == ([2, 3], [])
    assert HomeTally(db).count(LiveDomains.of({0: u[0], 3: u[3]}), 2) == ([0, 0], [3])  # another set: the rows


def test_a_tally_naming_a_domain_by_no_uuid_is_never_taken_for_a_live_list(tmp_path):
    """A published text that is no UUID went into the fingerprint as its own bytes: 16 of
    them read as some handle, so a domain whose handle they are matched the tally, and a
    start took the sums of a domain the tally does not name (the rows say "gone, unread")."""
    db = Database(str(tmp_path / "s.db"))
    text = "abcdefghijklmnop"  # 16 characters: no UUID, but 16 bytes, as a handle is
    for homes, live in (({3: (text, {0: 2})}, LiveDomains([3], text.encode())),
                        # two texts end to end read as two handles
                        ({3: ("abcdefgh", {0: 2}), 4: ("ijklmnopqrstuvwxyz012345", {1: 1})},
                         LiveDomains([3, 4], b"abcdefghijklmnopqrstuvwxyz012345"))):
        HomeTally(db).publish(homes)
        assert HomeTally(db).count(live, 2) == ([0, 0], sorted(live))


def test_the_tally_written_now_is_not_taken_by_a_schema_8_reader_for_a_host_without_guests(tmp_path):
    """Schema 8 compared (domids, uuids) with the live domains' list: left empty, they match
    that of a host whose guests are all gone, and such a reader took the sums of the guests
    the daemon last counted as its own."""
    db = Database(str(tmp_path / "s.db"))
    HomeTally(db).publish({3: ("00000000-0000-4000-8000-000000000003", {0: 2})})
    with db.read() as c:
        listed = c.execute("SELECT domids, uuids FROM home_tally_time WHERE id = 0").fetchone()
    assert listed != ("", "")  # what schema 8's fingerprint of no domains is
