"""xapi-numad's and the rrdd plugin's range-checked number flags say a negative value as
they say any value out of range (the flag, the value, the range allowed), not as the
type's "0 or more, ASCII digits" message (a review, rB: the fix of ``rebalance
--samples`` and ``--dma-bits`` had not reached these)."""
import pytest

from xapi_numa import daemon, rrdd_plugin

RANGES = {"--period": "0.05..3600", "--threshold": "0..3600", "--cycles": "0..2147483648; 0: until SIGTERM",
          "--page-scan-interval": "1..604800", "--page-scan-max-memory": "0..1048576"}


@pytest.mark.parametrize("flag", sorted(RANGES))
def test_a_negative_daemon_flag_gets_its_range(flag, capsys):
    assert daemon._run(daemon.parse_args([flag, "-1"])) == 2
    err = capsys.readouterr().err
    assert err.strip() == "xapi-numad: error: {}: -1 (allowed: {})".format(flag, RANGES[flag]), err


@pytest.mark.parametrize("flag", ["--page-scan-interval", "--page-scan-max-memory"])
def test_a_negative_rrdd_plugin_flag_gets_its_range(flag, capsys):
    with pytest.raises(SystemExit) as out:
        rrdd_plugin.parse_args([flag, "-1"])
    err = capsys.readouterr().err
    assert out.value.code == 2 and "{}: -1 (allowed: {})".format(flag, RANGES[flag]) in err, err
    assert "0 or more" not in err, err


@pytest.mark.parametrize("value", ["- 1", "--1", "-x"])
def test_a_minus_sign_alone_is_no_number(value, capsys):
    with pytest.raises(SystemExit):
        daemon.parse_args(["--period", value])
