"""A minus sign apart from its digits (``- 5``) is no number: a signed number flag
refuses it with its type's message, as any other text that is not a number.

The signed types took the sign off, then trimmed the digits: ``- 5`` read as -5."""
import pytest

from xapi_numa.cli.main import main
from xapi_numa.core.numbers import signed_decimal_number, signed_whole_number


@pytest.fixture
def host(tmp_path, monkeypatch):
    monkeypatch.setenv("XAPI_NUMA_LEDGER", str(tmp_path / "ledger.db"))
    path = str(tmp_path / "host.json")
    assert main(["sim", "init", path, "--nodes", "2", "--cpus-per-node", "4", "--memory-per-node", "2G"]) == 0
    return path


@pytest.mark.parametrize("text", ["- 5", "-\t5", "-  0.5", "-", "--5"])
def test_a_minus_apart_from_its_digits_is_no_number(text):
    for read in (signed_whole_number, signed_decimal_number):
        with pytest.raises(ValueError):
            read(text)


def test_signed_numbers_still_read_as_typed():
    assert signed_whole_number("-5") == -5 and signed_whole_number(" -5 ") == -5 and signed_whole_number("7") == 7
    assert signed_decimal_number("-0.5") == -0.5 and signed_decimal_number("2") == 2.0


@pytest.mark.parametrize("argv, flag, kind", [
    (["--backend", "sim:{host}", "place", "--vcpus", "- 5", "--memory", "1G"], "--vcpus", "whole number"),
    (["--backend", "sim:{host}", "place", "--vcpus", "1", "--memory", "1G", "--ttl", "- 5"], "--ttl", "number"),
    (["--backend", "sim:{host}", "rebalance", "--dry-run", "--no-xapi", "--samples", "- 5"], "--samples",
     "whole number"),
    (["sim", "create", "{host}", "h", "--vcpus", "- 2", "--memory", "1G"], "--vcpus", "whole number"),
])
def test_a_flag_given_minus_space_digits_is_refused_by_its_type(host, capsys, argv, flag, kind):
    before = open(host).read()
    capsys.readouterr()
    code = main([a.replace("{host}", host) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "argument {}: invalid {} (ASCII digits".format(flag, kind) in err and "value: '- " in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert open(host).read() == before
