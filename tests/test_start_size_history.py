"""The host's start-size history (state table ``start_size``): a place that reserves counts the
VM's size in the reservation's transaction, every place reads it (what the single-node rule's
split risk weighs), a dry run counts nothing, and a file of schema 16 gets the table."""
import sqlite3

import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.placement import Request
from xapi_numa.core.start_sizes import NO_STARTS, StartSizes
from xapi_numa.core.topology import Topology
from xapi_numa.errors import NoCapacity
from xapi_numa.ops.reserve import place_and_reserve, place_as_if_stopped
from xapi_numa.state import schema, start_sizes
from xapi_numa.state.db import Database
from xapi_numa.state.ledger import Ledger

G, M = 1 << 30, 1 << 20
UUIDS = ["11111111-2222-4333-8444-55555555555{}".format(i) for i in range(6)]


@pytest.fixture
def host(tmp_path):
    """2 nodes of 4 CPUs and 8G."""
    sim = SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 4, 8 * G), "credit2", 1)
    return sim, Ledger(str(tmp_path / "l.db"))


def rows(ledger):
    with ledger.db.read() as conn:
        return conn.execute("SELECT size, count FROM start_size ORDER BY size").fetchall()


def test_a_place_counts_its_size_and_a_dry_run_does_not(host):
    sim, ledger = host
    _, reservation, loads = place_and_reserve(sim, ledger, Request(2, 2 * G), UUIDS[0])
    assert reservation is not None and loads.starts == NO_STARTS and rows(ledger) == [(2 * G, 1)]
    # the next place reads it, a dry run too, and counts its own (1000 MiB: the 1024 MiB bucket)
    _, _, dry = place_and_reserve(sim, ledger, Request(1, 1000 * M), UUIDS[1], dry_run=True)
    assert dry.starts == StartSizes.of([2 * G]) and rows(ledger) == [(2 * G, 1)]
    _, _, loads = place_and_reserve(sim, ledger, Request(1, 1000 * M), UUIDS[1])
    assert loads.starts == StartSizes.of([2 * G]) and rows(ledger) == [(G, 1), (2 * G, 1)]
    place_and_reserve(sim, ledger, Request(4, 2 * G), UUIDS[2])
    assert rows(ledger) == [(G, 1), (2 * G, 2)] and start_sizes.read(ledger.db) == StartSizes.of([G, 2 * G, 2 * G])


def test_a_vm_that_fits_no_node_or_is_refused_counts_nothing(host):
    sim, ledger = host
    place_and_reserve(sim, ledger, Request(5, G), UUIDS[0])  # 5 vCPUs, nodes of 4 cores
    place_and_reserve(sim, ledger, Request(1, 8 * G), UUIDS[1])  # a whole node's memory
    with pytest.raises(NoCapacity):
        place_and_reserve(sim, ledger, Request(1, 40 * G), UUIDS[2])
    assert rows(ledger) == []


def test_a_what_if_reads_the_history_and_counts_nothing(host):
    sim, ledger = host
    place_and_reserve(sim, ledger, Request(1, G), UUIDS[0])
    domid = sim.create("g", 1, G, uuid=UUIDS[0])
    place_as_if_stopped(sim, ledger, Request(1, G), UUIDS[0], domid)
    assert rows(ledger) == [(G, 1)]


def test_the_history_changes_a_real_place(host):
    """Nodes with about 5.25G and 5G free above the DMA zone and a vCPU each, a 512M VM: with no
    history levelling takes node 0 (4.75/5G less a page left); after starts of 5G VMs, node 1
    (5.25/4.5G left: a hole for them)."""
    sim, ledger = host
    sim.create("a", 1, G // 4, soft=frozenset(range(4)))
    sim.create("b", 1, 2 * G + G // 2, soft=frozenset(range(4, 8)))
    request = Request(1, G // 2)
    first = place_and_reserve(sim, ledger, request, UUIDS[0], dry_run=True)[0].nodes
    with ledger.db.write() as conn:
        for _ in range(3):
            start_sizes.record(conn, 5 * G)
    assert (first, place_and_reserve(sim, ledger, request, UUIDS[0], dry_run=True)[0].nodes) == ((0,), (1,))


def test_a_schema_16_file_gets_the_table_and_keeps_its_rows(tmp_path):
    path = str(tmp_path / "l.db")
    old = sqlite3.connect(path)
    for statement in schema.SCHEMA.split(";"):
        if statement.strip() and "start_size" not in statement:
            old.execute(statement)
    old.execute("INSERT INTO reservation (vm, created, expires) VALUES ('vm-1', 1.0, 2.0)")
    old.execute("PRAGMA user_version=16")
    old.commit()
    old.close()
    db = Database(path)
    assert start_sizes.read(db) == NO_STARTS
    with db.write() as conn:
        start_sizes.record(conn, 3 * G)
        start_sizes.record(conn, 3 * G - M)  # (the same bucket: 3072 MiB has 2 significant bits)
    assert start_sizes.read(db) == StartSizes(((3 * G, 2),))
    with db.read() as conn:
        assert conn.execute("SELECT vm FROM reservation").fetchall() == [("vm-1",)]
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION == 17


def test_rows_no_version_writes_are_left_out(host):
    _, ledger = host
    with ledger.db.write() as conn:
        conn.executemany("INSERT INTO start_size (size, count) VALUES (?, ?)",
                         [(G, 2), (2 * G, 0), (-5, 3), (3 * G, 1.5), (4 * G, "many"), (1 << 60, 1)])
    assert start_sizes.read(ledger.db) == StartSizes(((G, 2),))


def test_a_start_placed_again_is_counted_once(host):
    """A place that replaces the VM's own reservation (placed again before its start) is the same
    start; a place after its reservation was released is another."""
    sim, ledger = host
    place_and_reserve(sim, ledger, Request(2, 2 * G), UUIDS[0])
    place_and_reserve(sim, ledger, Request(2, 2 * G), UUIDS[0])
    assert rows(ledger) == [(2 * G, 1)]
    ledger.release(UUIDS[0])
    place_and_reserve(sim, ledger, Request(2, 2 * G), UUIDS[0])
    assert rows(ledger) == [(2 * G, 2)]
