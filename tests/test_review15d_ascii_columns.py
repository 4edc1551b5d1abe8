"""Review 15d: on an ASCII locale (dom0's Python 3.6 under cron or systemd) a VM name
with an accent is written escaped (``caf\\xe9``), but the table's columns were measured
on the name unescaped, so every column after it in that row was shifted right by the
escape's extra characters."""
import io
import sys

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.cli.main import main
from xapi_numa.core.topology import Topology


def _ascii_output(monkeypatch, argv):
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="ascii")  # strict, as a C locale's stdout on Python 3.6
    monkeypatch.setattr(sys, "stdout", out)
    code = main(argv)
    sys.stdout.flush()
    return code, raw.getvalue().decode("ascii")


def test_a_name_escaped_for_an_ascii_locale_keeps_its_row_in_columns(tmp_path, monkeypatch):
    path = str(tmp_path / "host.json")
    sim = SimHypervisor.init(path, Topology.uniform(2, 2, 1 << 30), "credit2", 1, dom0_vcpus=1,
                             dom0_memory=128 << 20, force=True)
    sim.create("caf\u00e9", 1, 64 << 20, soft=frozenset({0, 1}), load="idle")
    sim.create("plain", 1, 64 << 20, soft=frozenset({0, 1}), load="idle")
    code, text = _ascii_output(monkeypatch, ["--backend", "sim:" + path, "memory"])
    assert code == 0
    lines = text.splitlines()
    header = lines[0]
    row = next(line for line in lines if "caf\\xe9" in line)
    plain = next(line for line in lines if "plain" in line)
    # the node0 column starts at the same place in the header and in every row
    assert row.index("64M") == plain.index("64M") == header.index("node0"), text
