"""The seed report reproduces in the simulator (the demo's scenario)."""
import pytest

from xapi_numa.cli.demo import END, TIMELINE, run_scenario


@pytest.fixture(scope="module")
def credit1_rows(tmp_path_factory):
    return run_scenario(str(tmp_path_factory.mktemp("seed") / "c1.json"), "credit", seed=1)


def test_credit1_leaves_a_and_c_swapped(credit1_rows):
    last_event = max(t for t, _, _ in TIMELINE)
    after = [r for r in credit1_rows if r["time"] > last_event]
    assert after and after[-1]["time"] == END
    final = after[-1]["outside"]
    assert final["B"] is None  # paused
    assert final["A"] > 0 and final["C"] > 0
    # a swap: as many of A's vCPUs sit on C's node as C's on A's node
    assert final["A"] == final["C"]
    # and it does not heal: unchanged from the first second after the last event
    assert {(r["outside"]["A"], r["outside"]["C"]) for r in after[1:]} == {(final["A"], final["C"])}


def test_credit2_keeps_equal_load_run_queues_as_they_are(tmp_path):
    rows = run_scenario(str(tmp_path / "c2.json"), "credit2", seed=1)
    tail = rows[-5:]
    assert len({(r["outside"]["A"], r["outside"]["C"]) for r in tail}) == 1


def test_same_seed_same_report(tmp_path, credit1_rows):
    again = run_scenario(str(tmp_path / "again.json"), "credit", seed=1)
    assert again == credit1_rows
