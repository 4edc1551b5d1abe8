"""``xapi-numa sim create`` refuses a guest too large for the host naming the most it takes; that
figure, typed back, is accepted.  It was stated rounded to a tenth of the unit ("7.2G" for 7372.5 MiB),
which is not a whole number of bytes (or is more than the most), so the same command refused it.
A size range states its bounds exactly wherever they are not whole in the unit it names
(``core.units.SizeRange``)."""
import re

import pytest

from xapi_numa.cli.main import main
from xapi_numa.core.units import SizeRange, parse_size

STATED = re.compile(r"more than (\S+) \(allowed: (\S+) \.\. (\S+) ")


def _refusal(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and err.count("\n") == 0, err
    return err


@pytest.mark.parametrize("dtype", ["pv", "pvh", "hvm"])
@pytest.mark.parametrize("vcpus", ["1", "2", "7"])
def test_the_most_sim_create_states_is_what_it_takes(tmp_path, capsys, dtype, vcpus):
    path = str(tmp_path / "h.db")
    assert main(["sim", "init", path, "--nodes", "2", "--cpus-per-node", "4", "--memory-per-node", "4G"]) == 0
    capsys.readouterr()
    create = ["sim", "create", path, "g", "--vcpus", vcpus, "--type", dtype, "--memory"]
    err = _refusal(capsys, create + ["100G"])
    most, _low, high = STATED.search(err).groups()
    assert most == high, err  # (one figure for the most, said once)
    assert main(create + [most]) == 0, capsys.readouterr().err  # the stated most is accepted
    assert int(capsys.readouterr().out) > 0


def test_a_size_range_states_bounds_that_parse_back_to_themselves():
    for low, high in ((1 << 20, 7730626560), (4096, (10 << 30) + 4096), (1, 1 << 50), (64 << 20, 3 << 29)):
        sizes = SizeRange(low, high, "why")
        said_low, said_high = re.match(r"(\S+) \.\. (\S+) \(why\)", sizes.allowed).groups()
        assert parse_size(said_low, "f", sizes) == low and parse_size(said_high, "f", sizes) == high
