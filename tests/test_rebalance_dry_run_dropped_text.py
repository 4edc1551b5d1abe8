"""``xapi-numa rebalance --dry-run`` showed the demand samples the rebalancer dropped (a NaN, an
infinity, a negative number: ``dropped_samples``) in its ``--json`` output only: the text, what an
admin reads, said nothing of them, though the plan it showed was made without them.  The text now
shows each, one line per VM, its name escaped as every name of a guest's is."""
import json

import attrs

from xapi_numa.backends.sim import scenarios
from xapi_numa.cli.main import main
from xapi_numa.ops import runtime

REASONS = ("vm2\nx (u2): 1 demand sample(s) (nan) dropped, not a finite number >= 0; the sample before each "
           "stands in", "vm5 (u5): its demand now (inf) dropped, not a finite number >= 0; none left: taken as idle, "
           "not moved")


def test_the_text_shows_the_samples_dropped_as_the_json_does(tmp_path, capsys, monkeypatch):
    path = str(tmp_path / "asym.json")
    scenarios.build("asymmetric", path, 1).run(2)
    monkeypatch.setenv("XAPI_NUMA_BACKEND", "sim:" + path)
    monkeypatch.delenv("XAPI_NUMA_LEDGER", raising=False)
    real = runtime.Runtime.rebalance_dry_run

    def with_dropped(rt, samples=3):  # the plan as the rebalancer makes it when samples were dropped
        decision = real(rt, samples)
        return attrs.evolve(decision, assessment=attrs.evolve(decision.assessment, dropped=REASONS))
    monkeypatch.setattr(runtime.Runtime, "rebalance_dry_run", with_dropped)
    assert main(["rebalance", "--dry-run", "--samples", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["dropped_samples"] == list(REASONS)
    assert main(["rebalance", "--dry-run", "--samples", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    said = [line for line in lines if line.startswith("demand samples dropped: ")]
    assert said == ["demand samples dropped: " + r.replace("\n", "\\n") for r in REASONS], lines


def test_the_text_says_nothing_of_dropped_samples_when_none_were(tmp_path, capsys, monkeypatch):
    path = str(tmp_path / "asym.json")
    scenarios.build("asymmetric", path, 1).run(2)
    monkeypatch.setenv("XAPI_NUMA_BACKEND", "sim:" + path)
    monkeypatch.delenv("XAPI_NUMA_LEDGER", raising=False)
    assert main(["rebalance", "--dry-run", "--samples", "1"]) == 0
    assert "dropped" not in capsys.readouterr().out
