"""One limit per size field, stated the same way in every refusal of that field.

``place --memory 0`` answered "at most 1024P" (the size syntax's bound) and ``--memory 2P``
"1 byte .. 1P" (one VM's): two upper bounds for one field.  So did ``move-memory --max``
(4K or more / at most 1024P), the simulator's sizes (``sim init --memory-per-node``,
``--dom0-memory``, ``sim create --memory``), ``vnuma --memory`` / ``--dynamic-min``, and the
plugin's ``memory`` and ``max``.  Each field now has one range (core.units.SizeRange): a
size too small, too large, or not a size at all is refused naming the same range."""
import re

import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.cli.main import main
from xapi_numa.core.topology import Topology
from xapi_numa.errors import InvalidArgument
from xapi_numa.plugin import functions

MiB = 1 << 20
ALLOWED = re.compile(r"\(allowed: (.*)\)$")


@pytest.fixture
def sim(tmp_path):
    hv = SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 2, 2 << 30), "credit2", 1,
                            dom0_vcpus=1, dom0_memory=128 * MiB)
    hv.create("g", 2, 256 * MiB, dtype="pvh", load="idle")
    return hv


def _cli_allowed(capsys, argv):
    assert main(argv) == 2
    line = capsys.readouterr().err.strip()
    assert "Traceback" not in line and line.count("\n") == 0, line
    return ALLOWED.search(line).group(1), line


def _plugin_allowed(call):
    with pytest.raises(InvalidArgument) as err:
        call()
    return ALLOWED.search(err.value.message).group(1), err.value.message


def _one_range(said):
    """Every refusal of the field names the same range, and it is not the syntax's alone."""
    ranges = {allowed for allowed, _ in said}
    assert len(ranges) == 1, "\n".join(line for _, line in said)
    return ranges.pop()


CLI_FIELDS = {  # field: (argv with X for the size, sizes too small, too large)
    "place --memory": (["place", "--vcpus", "1", "--memory", "X", "--dry-run"], ["0"], ["2P", "1025P"]),
    "vnuma --memory": (["vnuma", "g", "--vcpus", "2", "--memory", "X"], ["0", "1M"], ["2P"]),
    "vnuma --dynamic-min": (["vnuma", "g", "--vcpus", "2", "--memory", "512M", "--dynamic-min", "X"], ["0"], ["4G"]),
    "move-memory --max": (["move-memory", "g", "--to", "1", "--max", "X", "--dry-run", "--no-xapi"], ["0", "4095"],
                          ["1025P"]),
}


@pytest.mark.parametrize("field", sorted(CLI_FIELDS))
def test_a_cli_size_field_states_one_range(sim, tmp_path, capsys, field):
    argv, small, large = CLI_FIELDS[field]
    flags = ["--backend", "sim:" + sim.path]
    ledger = ["--ledger", str(tmp_path / "l.db")] if argv[0] in ("place", "move-memory") else []
    said = [_cli_allowed(capsys, flags + [size if a == "X" else a for a in argv] + ledger)
            for size in small + large + ["lots", "0.5B"]]
    flag = field.split()[1]
    assert all(line.startswith("xapi-numa: error: {}: ".format(flag)) for _, line in said), said
    allowed = _one_range(said)
    if flag != "--max":  # (a move's most is the size syntax's: 1024P)
        assert "1024P" not in allowed, allowed


def test_the_simulators_sizes_state_one_range_each(sim, tmp_path, capsys):
    new = str(tmp_path / "new.json")
    init = ["sim", "init", new, "--nodes", "2", "--cpus-per-node", "2"]
    _one_range([_cli_allowed(capsys, init + ["--memory-per-node", size]) for size in ["0", "63M", "65T", "lots"]])
    dom0 = _one_range([_cli_allowed(capsys, init + ["--memory-per-node", "1G", "--dom0-memory", size])
                       for size in ["0", "2G", "lots"]])
    assert dom0.startswith("64M .. 1G (half the host)"), dom0
    free = sim.guest_memory().high
    create = ["sim", "create", sim.path, "x", "--vcpus", "1", "--memory"]
    said = [_cli_allowed(capsys, create + [size]) for size in ["0", "512K", str(free + 1), "100G", "lots"]]
    assert _one_range(said).startswith("1M .. "), said[0][0]
    with pytest.raises(InvalidArgument) as err:  # the backend's own refusal, as the CLI says it
        sim.create("y", 1, 4096)
    assert ALLOWED.search(err.value.message).group(1) == said[0][0]


def test_the_plugins_size_arguments_state_one_range_each(sim):
    what_if = [_plugin_allowed(lambda size=size: functions.place(None, {"vcpus": "1", "memory": size}))
               for size in ["0", "2P", "lots"]]
    assert _one_range(what_if).startswith("1B .. 1P (one VM)")
    ctx = functions.Context("", hv=sim)
    uuid = next(d.uuid for d in sim.domains() if d.name == "g")
    _one_range([_plugin_allowed(lambda size=size: functions.move_memory_fn(ctx, {"vm": uuid, "to": "1", "max": size}))
                for size in ["0", "1025P", "lots"]])
