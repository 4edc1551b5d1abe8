"""A move by hand's home-move row must survive the daemon's next record.

xapi-numad stamps a home move it made with its period's snapshot time (``snap.time``) and
records it once the executor has made the period's writes (memory-follow steps included:
seconds later).  A ``move-memory`` by hand that ends in between records its 'by hand' row
stamped with the clock then: later than the daemon's stamp.  ``HomeMoves.record`` took
every row stamped later than the row it writes for an earlier boot's and deleted it, so
the hand move's row went, and with it the hold-down it exists for."""
from xapi_numa.core import rebalance
from xapi_numa.state.db import Database
from xapi_numa.state.homes import HAND, HomeMove, HomeMoves

HOLD = rebalance.Settings().hold_down


def test_a_hand_move_recorded_during_a_period_keeps_its_row(tmp_path):
    homes = HomeMoves(Database(str(tmp_path / "ledger.db")))
    # the daemon's snapshot at 1000.0; a move by hand ends at 1002.5 (hold_down_hand_move)
    homes.record(HomeMove("vm-a", 1002.5, 0, 1, HAND, "its memory moved by hand to node 1"), HOLD)
    # the daemon's period ends: its swap of b and c, stamped with the snapshot's time
    homes.record(HomeMove("vm-b", 1000.0, 1, 0, "swap", "swap"), HOLD)
    homes.record(HomeMove("vm-c", 1000.0, 0, 1, "swap", "swap"), HOLD)
    assert set(homes.last_moved(1010.0)) == {"vm-a", "vm-b", "vm-c"}


def test_a_rebalancer_row_recorded_while_a_hand_move_waits_is_kept(tmp_path):
    """The other way round: the hand move's clock read (1000.0) before the daemon's row
    (stamped 1000.2) is written, its own record after."""
    homes = HomeMoves(Database(str(tmp_path / "ledger.db")))
    homes.record(HomeMove("vm-b", 1000.2, 1, 0, "balance", "balance"), HOLD)
    homes.record(HomeMove("vm-a", 1000.0, 0, 1, HAND, "its memory moved by hand to node 1"), HOLD)
    assert set(homes.last_moved(1010.0)) == {"vm-a", "vm-b"}


def test_an_earlier_boots_rows_still_go(tmp_path):
    """The host clock restarts at every boot: rows stamped far later than now are an
    earlier boot's, and the next record drops them (as before)."""
    homes = HomeMoves(Database(str(tmp_path / "ledger.db")))
    homes.record(HomeMove("vm-old", 86400.0, 0, 1, "balance", "balance"), HOLD)
    homes.record(HomeMove("vm-new", 120.0, 1, 0, "balance", "balance"), HOLD)
    assert [m.uuid for m in homes.recent()] == ["vm-new"]
