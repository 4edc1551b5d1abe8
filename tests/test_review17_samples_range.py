"""``rebalance --samples`` gets the one message the range-checked number flags share for
a negative value too: the flag, the value, the range.

It kept the type that refuses a minus sign itself ("invalid whole number (0 or more,
ASCII digits) value: '-1'"), then said the range for 0: two messages where the other
range-checked flags (review 16) have one."""
import os

import pytest

from test_review17_minus_space import host  # noqa: F401 (a fixture: a simulated host)

from xapi_numa.cli.main import main


@pytest.mark.parametrize("value", ["-1", "0", "31"])
def test_samples_out_of_range_gets_the_flags_range(host, tmp_path, capsys, value):
    capsys.readouterr()
    code = main(["--backend", "sim:" + host, "rebalance", "--dry-run", "--no-xapi",
                 "--samples", value])
    err = capsys.readouterr().err
    assert code == 2 and "--samples: {} (allowed: 1..30)".format(value) in err, err
    assert "0 or more" not in err and len(err.strip().splitlines()) == 1, err
    assert not os.path.exists(str(tmp_path / "ledger.db"))
