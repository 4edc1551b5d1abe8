"""``make demo``'s rebalancing part: both scenarios, static and rebalancer side by side
(shortened runs: what is shown, not the figures)."""
import io

from xapi_numa.cli import demo_rebalance


def test_the_demo_shows_asymmetric_and_bursty_static_against_the_rebalancer(tmp_path, monkeypatch):
    monkeypatch.setattr(demo_rebalance, "SCENARIOS", (("asymmetric", 24.0, "uneven"), ("bursty", 4.0, "phases")))
    out = io.StringIO()
    chart = tmp_path / "demo.svg"
    demo_rebalance.run_rebalance_demo(1, out, str(chart))
    text = out.getvalue()
    assert "== asymmetric (24 simulated seconds)" in text and "== bursty (4 simulated seconds)" in text
    assert text.count("static n0") == 2 and text.count("rebal. n3") == 2  # one table per scenario, both arms
    assert text.count("-> work done") == 2 and "rebalancer: balance home move" in text  # asymmetric moves at once
    svg = chart.read_text()
    assert svg.count("node load</text>") == 4  # 2 scenarios x (static, rebalancer)
    assert 'translate(560,220)' in svg  # the rebalancer's bursty panel, right of the static one
