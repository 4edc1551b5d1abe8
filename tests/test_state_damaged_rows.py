"""A state database edited by hand, or damaged: every column every reader reads, holding a value
of the wrong type (or text that is not what we wrote), gives a clear state error naming the
database, the table, the row and the column, never a TypeError or a JSON error ("internal error",
exit 70), nor minutes of work on a CPU list of a billion ids.  The journals that only undo our
own changes (temporary pins, dom0 backend affinity) leave such a row out with a warning instead:
xapi-numad reads them at its start and in every cycle, and refusing them would stop it for good.

Each case makes the database through the code (one genuine row in every table), spoils one
column of one row with sqlite3, and runs the reader the commands run."""
import logging
import os
import re
import sqlite3

import pytest
from hypothesis import given, strategies as st

from xapi_numa import daemon
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.cli.main import main
from xapi_numa.core.backend_affinity import THREAD, Owned
from xapi_numa.core.homing import PinRecord
from xapi_numa.core.live_domains import LiveDomains
from xapi_numa.core.topology import Topology
from xapi_numa.errors import StateError
from xapi_numa.ops.runtime import Runtime, Settings
from xapi_numa.state.backend_pins import BackendJournal
from xapi_numa.state.db import Database
from xapi_numa.state.home_tally import HomeTally
from xapi_numa.state.homes import HomeMove, HomeMoves
from xapi_numa.state.ledger import Ledger
from xapi_numa.state.moves import MoveJournal
from xapi_numa.state import rows
from xapi_numa.state.pins import PinJournal

G = 1 << 30
UUID = "aaaaaaaa-0000-4000-8000-000000000001"
OTHER = "bbbbbbbb-0000-4000-8000-000000000002"
BLOB = b"\xff\x00"  # a TEXT column takes anything but a blob as text
NOT_UTF8 = b'{"0": "0-3\xff"}'  # text, but no UTF-8 (Python's sqlite3 refused the whole query, naming no row)
WIDE = "0-100000"   # a CPU list past any host's (Xen has at most 4096; modest: read whole, it still ends)
MADE, LATER = 1000.0, 1100.0  # when the rows were written; when the ledger is read (one lease expired)


class Host:
    """A simulated 2 x 4 host with one VM, and its state database with a row in every table."""

    def __init__(self, folder: str) -> None:
        self.path = os.path.join(folder, "h.json")
        self.db_path = self.path + ".ledger.db"
        topo = Topology.uniform(2, 4, 4 * G)
        self.sim = SimHypervisor.init(self.path, topo, "credit", 1, dom0_vcpus=1, dom0_memory=128 << 20)
        self.domid = self.sim.create("A", 2, 256 << 20, soft=topo.parse_cpus("node:0"), uuid=UUID)
        db = Database(self.db_path, clock=lambda: MADE)
        ledger = Ledger(db=db)
        ledger.reserve("vm-live", {0: G}, 600, lambda: {0: 4 * G, 1: 4 * G})
        ledger.reserve("vm-expired", {1: G}, 10, lambda: {0: 4 * G, 1: 4 * G})  # (not dropped until a write)
        moves = MoveJournal(db)
        dom = next(d for d in self.sim.domains() if d.uuid == UUID)
        moves.begin(dom, 1, {"planned_pages": 10, "moved_pages": 2}).release()  # a dead mover's row
        PinJournal(db).record(PinRecord(UUID, 0, self.domid, frozenset({0}), topo.all_cpus, 1.0))
        HomeMoves(db).record(HomeMove(UUID, 1.0, 0, 1, "balance", "test"))
        HomeMoves(db).intend(UUID, self.domid, 0, 1, None, {0: frozenset({0, 1})})
        HomeTally(db).publish({self.domid: (UUID, {0: 2})})
        BackendJournal(db).record(Owned(UUID, THREAD, 500, "vif1.0-q0-guest-rx", 77))
        db.close()

    def spoil(self, table: str, column: str, value, where: str = "") -> None:
        raw = sqlite3.connect(self.db_path)
        if (table, column) == ("reservation_node", "node"):  # its trigger refuses: reservation_total's node is a rowid
            raw.execute("DROP TRIGGER reservation_total_update")
        # (bytes that are no UTF-8 are stored as text, as a hand or a damaged disk may leave them)
        placeholder = "CAST(? AS TEXT)" if value == NOT_UTF8 else "?"
        raw.execute("UPDATE {} SET {} = {} {}".format(table, column, placeholder, where), (value,))
        raw.commit()
        raw.close()

    def dump(self) -> list:
        raw = sqlite3.connect(self.db_path)
        raw.text_factory = lambda data: data.decode("utf-8", "surrogateescape")  # (NOT_UTF8 too)
        try:
            return list(raw.iterdump())
        finally:
            raw.close()


@pytest.fixture
def host(tmp_path, monkeypatch):
    monkeypatch.delenv("XAPI_NUMA_LEDGER", raising=False)
    monkeypatch.setenv("XAPI_NUMA_RUN_DIR", str(tmp_path))
    return Host(str(tmp_path))


def _db(host, now: float = LATER):
    return Database(host.db_path, clock=lambda: now)


# --- the readers, as the commands call them ------------------------------------------------------------------
def reservations(host):
    Ledger(db=_db(host)).reservations()  # `reservations`, reconcile, settle


def outstanding(host):
    Ledger(db=_db(host)).outstanding()  # every `place` and VM start


def move_rows(host):
    MoveJournal(_db(host)).rows()  # `memory-moves`, every move's recovery, the rebalancer


def move_pending(host):
    MoveJournal(_db(host)).pending()  # every `place`, every page move's room


def home_moves(host):
    HomeMoves(_db(host)).recent()  # `top`, `rebalance --dry-run`, the hold-down


def intents(host):
    rt = Runtime(host.sim, _db(host), Settings())
    rt.rebalance(rt.snapshot())  # xapi-numad mends the home moves noted and not known whole


def tally_rows(host):
    return HomeTally(_db(host, MADE)).count(LiveDomains.of({host.domid: OTHER}), 2)  # a start: other domains


def tally_sums(host):
    return HomeTally(_db(host, MADE)).count(LiveDomains.of({host.domid: UUID}), 2)  # a start: the domains summed


LIVE, N = "WHERE vm = 'vm-live'", "garbage"  # (N: what an INTEGER or REAL column takes as text)
# the reader, the table, the row spoiled (all: ""), and each column's garbage: one case each
SPOILED = [
    (reservations, "reservation", LIVE, [("vm", BLOB), ("created", N), ("expires", "soon"), ("claimed", N),
                                         ("owner", BLOB)]),
    (reservations, "reservation_node", LIVE, [("vm", BLOB), ("node", N), ("bytes", N), ("initial", N)]),
    (outstanding, "reservation", LIVE, [("expires", "soon"), ("expires", BLOB)]),  # (would never expire)
    (outstanding, "reservation_node", "WHERE vm = 'vm-expired'", [("bytes", N)]),  # summed by SQLite
    (outstanding, "reservation_total", "WHERE node = 0", [("bytes", N)]),  # (its node is a rowid: an integer)
    (move_rows, "memory_move", "", [("uuid", BLOB), ("domid", N), ("pid", N), ("state", "bogus"), ("target", N),
                                    ("report", "not json"), ("report", "[]"), ("report", '{"moved_pages": "many"}'),
                                    ("started", N), ("updated", N)]),
    (move_pending, "memory_move", "", [("target", N), ("report", "not json")]),
    (home_moves, "home_move", "", [("uuid", BLOB), ("moved_at", N), ("from_node", N), ("to_node", N),
                                   ("kind", BLOB), ("reason", BLOB), ("followed_domid", N), ("followed_pages", N)]),
    (intents, "home_move_intent", "", [("uuid", BLOB), ("domid", N), ("from_node", N), ("to_node", N),
                                       ("vnode", N), ("soft_before", "not json"),
                                       ("soft_before", '{"0": "' + WIDE + '"}')]),
]
# every text column a refusing reader reads, holding text that is no UTF-8
SPOILED += [(read, table, where, [(column, NOT_UTF8) for column in columns]) for read, table, where, columns in [
    (reservations, "reservation", LIVE, ["vm", "owner"]),
    (move_rows, "memory_move", "", ["uuid", "report"]),
    (home_moves, "home_move", "", ["uuid", "kind", "reason"]),
    (intents, "home_move_intent", "", ["soft_before"]),
]]
REFUSED = [(table, column, value, where, read) for read, table, where, values in SPOILED for column, value in values]
# the vCPU-home tally only saves a start reading the hypervisor: a damaged one is not used
TALLY = [(table, column, value, read) for read, table, values in [
    (tally_rows, "home_tally", [("domid", N), ("uuid", BLOB), ("node", N), ("vcpus", N)]),
    (tally_sums, "home_tally_time", [("at", N), ("summed", BLOB), ("totals", "not json"), ("totals", '[["0", 2]]')]),
] for column, value in values]


@pytest.mark.parametrize("table,column,value,where,read", REFUSED,
                         ids=["{}.{}={!r}:{}".format(c[0], c[1], c[2], c[4].__name__) for c in REFUSED])
def test_a_damaged_row_is_a_clear_state_error_naming_it(host, table, column, value, where, read):
    host.spoil(table, column, value, where)
    before = host.dump()
    with pytest.raises(StateError) as err:
        read(host)
    message = err.value.message
    assert host.db_path in message and "table {},".format(table) in message, message
    assert "column {} ".format(column) in message and "expected" in message, message
    assert re.search(r", row \w+=", message) and "sqlite3" in message, message  # which row, and what to do
    assert host.dump() == before  # nothing changed


@pytest.mark.parametrize("table,column,value,read", TALLY,
                         ids=["{}.{}={!r}".format(c[0], c[1], c[2]) for c in TALLY])
def test_a_damaged_home_tally_refuses_no_start(host, caplog, table, column, value, read):
    """It refused every VM start ("state database ...: table home_tally ..."): the start now
    reads the hypervisor, as for a tally gone stale, and a warning names the row."""
    assert read(host) is not None  # fresh and whole: used
    host.spoil(table, column, value)
    before = host.dump()
    with caplog.at_level(logging.WARNING):
        assert read(host) is None
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "tally is not used" in said and "table {},".format(table) in said and column in said, said
    assert host.dump() == before


def test_a_start_that_retries_warns_of_a_damaged_tally_once(host, caplog):
    """A start plans again when another took the room first (up to 8 tries), with one tally:
    it warned once per try."""
    host.spoil("home_tally_time", "totals", "not json")
    tally = HomeTally(_db(host, MADE))
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert tally.count(LiveDomains.of({host.domid: UUID}), 2) is None
    assert len([r for r in caplog.records if "tally is not used" in r.getMessage()]) == 1


def pins_read_at_start(host):
    return Runtime(host.sim, _db(host), Settings()).restore_all_pins("start")  # xapi-numad's start


def pins_read_by_a_dry_run(host):
    return Runtime(host.sim, _db(host), Settings()).what_now()  # `homing --dry-run`


def backend_entries(host):
    return BackendJournal(_db(host)).entries()  # every cycle's backend alignment, --hand-back


LEFT_OUT = [(table, column, value, read) for read, table, values in [
    (pins_read_at_start, "temp_pin", [("uuid", BLOB), ("vcpu", N), ("domid", N), ("original_hard", N),
                                      ("original_hard", WIDE)]),
    (pins_read_by_a_dry_run, "temp_pin", [("pinned_to", WIDE), ("pinned_at", N)]),
    (backend_entries, "backend_affinity", [("kind", "bogus"), ("ident", N), ("uuid", BLOB), ("name", BLOB),
                                           ("starttime", N)]),
    (pins_read_at_start, "temp_pin", [("uuid", NOT_UTF8), ("original_hard", NOT_UTF8)]),
    (backend_entries, "backend_affinity", [("name", NOT_UTF8)]),
] for column, value in values]


@pytest.mark.parametrize("table,column,value,read", LEFT_OUT,
                         ids=["{}.{}={!r}:{}".format(c[0], c[1], c[2], c[3].__name__) for c in LEFT_OUT])
def test_a_damaged_row_of_an_undo_journal_is_left_out_with_a_warning(host, caplog, table, column, value, read):
    host.spoil(table, column, value)
    before = host.dump()
    with caplog.at_level(logging.WARNING):
        read(host)
    said = [r.getMessage() for r in caplog.records if "table {},".format(table) in r.getMessage()]
    assert len(said) == 1 and host.db_path in said[0] and "column {} ".format(column) in said[0], said
    assert "left out" in said[0] and "sqlite3" in said[0], said
    assert host.dump() == before  # the row stays for the admin to see; nothing changed
    # said once per journal (xapi-numad keeps one for its life), and counted at every read
    journal = PinJournal(_db(host)) if table == "temp_pin" else BackendJournal(_db(host))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert (journal.entries() if table == "temp_pin" else journal.entries()) == []
            assert journal.left_out.count == 1
    assert len([r for r in caplog.records if "table {},".format(table) in r.getMessage()]) == 1


# --- the commands the fuzzing review ran ----------------------------------------------------------------------
def _cli(host, capsys, argv):
    capsys.readouterr()
    code = main(argv + ["--ledger", host.db_path])
    return code, capsys.readouterr().err


def test_memory_moves_with_a_report_that_is_not_json_says_which_row(host, capsys, monkeypatch):
    monkeypatch.setenv("XAPI_NUMA_BACKEND", "sim:" + host.path)
    host.spoil("memory_move", "report", "{not json")
    code, err = _cli(host, capsys, ["memory-moves"])
    assert code == 1 and "internal error" not in err, err  # was: internal error: JSONDecodeError, exit 70
    assert "table memory_move, row uuid='{}': column report holds".format(UUID) in err, err


def test_reservations_with_an_expiry_given_as_text_says_which_row(host, capsys, monkeypatch):
    monkeypatch.setenv("XAPI_NUMA_BACKEND", "sim:" + host.path)
    host.spoil("reservation", "expires", "tomorrow", "WHERE vm = 'vm-live'")
    code, err = _cli(host, capsys, ["reservations"])
    assert code == 1 and "internal error" not in err, err  # was: internal error: TypeError, exit 70
    assert "table reservation, row vm='vm-live': column expires holds 'tomorrow', expected" in err, err


def test_rebalance_dry_run_with_a_pin_past_any_hosts_cpus_leaves_it_out(host, capsys, caplog, monkeypatch):
    """The review's pin held ``0-1000000000``: the dry run expanded it and ran for minutes.  The
    CPU list is bounded by Xen's 4096 CPUs before it is expanded (this one is modest: read
    whole, it would still end)."""
    monkeypatch.setenv("XAPI_NUMA_BACKEND", "sim:" + host.path)
    host.spoil("temp_pin", "original_hard", WIDE)
    before = host.dump()
    with caplog.at_level(logging.WARNING):
        code, err = _cli(host, capsys, ["rebalance", "--dry-run", "--samples", "1"])
    assert code == 0, err
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "table temp_pin" in said and "column original_hard holds '0-100000'" in said, said
    assert "CPU list of ids 0..4095" in said, said
    assert host.dump() == before


def test_xapi_numad_keeps_working_over_damaged_rows(host, capsys):
    """A damaged pin row is left out (the daemon starts, cycles and stops); a damaged memory-move
    row fails the cycle's rebalancing and upkeep with the clear error, logged, and the daemon runs on.
    The stop does not call itself clean: the damaged row stays, and its pin may be in force."""
    host.spoil("temp_pin", "pinned_to", "garbage")
    host.spoil("memory_move", "report", "{not json")
    code = daemon.main(["--backend", "sim:" + host.path, "--cycles", "3", "--period", "0.05", "--no-xapi",
                        "--ledger", host.db_path])
    err = capsys.readouterr().err
    assert code == daemon.EXIT_PINS_LEFT and "temporary pins left at stop" in err, err
    assert "table temp_pin, row uuid='{}', vcpu=0: column pinned_to holds 'garbage'".format(UUID) in err, err
    assert "table memory_move, row uuid='{}': column report holds".format(UUID) in err, err
    assert '"event": "stopped"' in err and "Traceback" not in err, err


def test_a_hand_back_over_a_damaged_backend_row_does_not_call_itself_done(host, capsys):
    """--hand-back left the damaged row out and said "left": 0, exit 0, while the row (and
    whatever it stood for) stayed."""
    host.spoil("backend_affinity", "kind", "bogus")
    code = daemon.main(["--backend", "sim:" + host.path, "--hand-back", "--no-xapi", "--ledger", host.db_path])
    err = capsys.readouterr().err
    assert code == 1 and '"left": 1' in err and "table backend_affinity" in err, err


VALUES = st.one_of(st.integers(-2, 2), st.booleans(), st.floats(allow_nan=True), st.text(max_size=3),
                   st.binary(max_size=2), st.none())


@given(st.lists(VALUES, max_size=6))
def test_a_column_read_at_once_reads_as_value_by_value(column):
    """A start reads its rows a column at a time (C-speed passes): what passes so reads each
    value as itself, and what does not goes value by value, which names a damaged one."""
    for kind in (rows.INTEGER, rows.NUMBER, rows.TEXT, rows.one_of(0, 1)):
        if kind.as_read(column):
            assert all(type(kind.read(v)) is type(v) and kind.read(v) == v for v in column)
        elif all(type(v) is not int for v in column) or kind is not rows.NUMBER:  # (NUMBER reads 1 as 1.0)
            with pytest.raises(rows.UNREADABLE):
                for v in column:
                    kind.read(v)
