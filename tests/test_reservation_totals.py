"""The reserved bytes per node that SQLite keeps as the ledger changes (schema 9):
always what summing every unexpired reservation's rows gives, whatever changed them."""
import sqlite3

from hypothesis import example, given, settings
from hypothesis import strategies as st

from xapi_numa.errors import NoCapacity, VmBusy
from xapi_numa.state.db import SCHEMA_VERSION
from xapi_numa.state.ledger import Ledger

G = 1 << 30
FREE = {n: 8 * G for n in range(4)}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def summed(ledger: Ledger, exclude=None):
    """The sum the totals stand for, made the slow way (a join over every row): unexpired
    rows, and claimed ones (or ones whose claim call was made) past their lease too."""
    rows = ledger.db._connection().execute(
        "SELECT n.node, SUM(n.bytes) FROM reservation_node n JOIN reservation r ON r.vm = n.vm "
        "WHERE (r.expires > ? OR r.claimed = 1 OR r.claim_ours = 1) AND r.vm IS NOT ? GROUP BY n.node", (ledger.clock(), exclude)).fetchall()
    return {node: total for node, total in rows if total}


VMS = st.sampled_from(["vm-a", "vm-b", "vm-c", "vm-d"])
STEP = st.one_of(
    st.tuples(st.just("reserve"), VMS, st.dictionaries(st.integers(0, 3), st.integers(0, 3 * G), max_size=4),
              st.floats(1, 100)),
    st.tuples(st.just("release"), VMS),
    st.tuples(st.just("shrink"), VMS, st.dictionaries(st.integers(0, 3), st.integers(0, 4 * G), max_size=4)),
    st.tuples(st.just("claim"), VMS),
    st.tuples(st.just("reconciled"), VMS),  # a claimed one ended by its creation time, as reconcile does
    st.tuples(st.just("time"), st.floats(0, 60)),
    st.tuples(st.just("expire"),),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(STEP, max_size=30), VMS)
@example([("reserve", "vm-a", {2: 1}, 1.0), ("claim", "vm-a"), ("shrink", "vm-a", {2: 1}), ("time", 1.0)], "vm-b")
def test_the_totals_are_the_sum_of_the_rows_after_any_changes(tmp_path_factory, steps, exclude):
    clock = Clock()
    ledger = Ledger(str(tmp_path_factory.mktemp("t") / "l.db"), clock)
    for step in steps:
        try:
            if step[0] == "reserve":
                ledger.reserve(step[1], step[2], step[3], lambda: FREE)
            elif step[0] == "release":
                ledger.release(step[1])
            elif step[0] == "shrink":
                ledger.shrink(step[1], step[2])
            elif step[0] == "claim":
                ledger.mark_claimed(step[1])
            elif step[0] == "reconciled":
                mine = ledger.reservation(step[1])
                if mine is not None:
                    ledger.release(step[1], created=mine.created)
            elif step[0] == "time":
                clock.now += step[1]
            else:
                ledger.expire()
        except (NoCapacity, VmBusy):
            pass
        assert ledger.outstanding() == summed(ledger)
        assert ledger.outstanding(exclude=exclude) == summed(ledger, exclude)
    ledger.close()


def test_a_reservation_deleted_without_foreign_keys_leaves_no_bytes_behind(tmp_path):
    """Another connection (an admin's sqlite3 shell, say) has foreign keys off: deleting a
    reservation there must still take its bytes out of the totals."""
    ledger = Ledger(str(tmp_path / "l.db"), Clock())
    ledger.reserve("vm-a", {0: G, 1: 2 * G}, 60, lambda: FREE)
    ledger.reserve("vm-b", {1: G}, 60, lambda: FREE)
    other = sqlite3.connect(ledger.path)
    other.execute("DELETE FROM reservation WHERE vm = 'vm-a'")
    other.commit()
    other.close()
    assert ledger.outstanding() == {1: G} == summed(ledger)


def test_a_schema_8_ledger_gets_totals_of_the_reservations_it_holds(tmp_path):
    path = str(tmp_path / "l.db")
    ledger = Ledger(path, Clock())
    ledger.reserve("vm-a", {0: G, 1: 2 * G}, 60, lambda: FREE)
    ledger.reserve("vm-b", {1: G}, 60, lambda: FREE)
    ledger.close()
    old = sqlite3.connect(path)  # as a schema-8 build left it: no totals, no triggers, an orphan row
    for name in ("reservation_total_insert", "reservation_total_delete", "reservation_total_update",
                 "reservation_rows_delete"):
        old.execute("DROP TRIGGER {}".format(name))
    old.execute("DROP TABLE reservation_total")
    old.execute("INSERT INTO reservation_node VALUES ('vm-gone', 2, 5, 5)")
    old.execute("PRAGMA user_version=8")
    old.commit()
    old.close()
    ledger = Ledger(path, Clock())
    assert ledger.outstanding() == {0: G, 1: 3 * G} == summed(ledger)
    ledger.reserve("vm-c", {2: G}, 60, lambda: FREE)
    assert ledger.outstanding() == {0: G, 1: 3 * G, 2: G}
    assert ledger.db._connection().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
