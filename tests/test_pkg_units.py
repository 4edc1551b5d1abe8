"""The systemd units the package ships: ordered after the toolstack's services but never
starting them (an admin who stopped xapi or xcp-rrdd keeps them stopped through an install
or upgrade of ours), and xapi-numad's flags set by the admin in /etc/sysconfig (review rF:
``Wants=`` started them, and the flags could only be changed by editing a file an upgrade
replaces)."""
import configparser
import os
import shlex

import pytest

from xapi_numa import daemon

PACKAGING = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "packaging")
TOOLSTACK = {"xapi-numad.service": "xapi.service", "xapi-numa-rrdd.service": "xcp-rrdd.service"}


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # (systemd's keys are case-sensitive)
    with open(os.path.join(PACKAGING, name)) as f:
        parser.read_file(f)
    return parser


@pytest.mark.parametrize("name", sorted(TOOLSTACK))
def test_a_unit_is_ordered_after_the_toolstack_but_never_starts_it(name):
    section = unit(name)["Unit"]
    assert TOOLSTACK[name] in section.get("After", "").split()
    for key in ("Wants", "Requires", "BindsTo", "Requisite"):
        assert TOOLSTACK[name] not in section.get(key, "").split(), (name, key)


def test_the_daemons_flags_come_from_an_optional_file_of_the_admins():
    service = unit("xapi-numad.service")["Service"]
    assert service["EnvironmentFile"] == "-/etc/sysconfig/xapi-numad"  # ("-": none is fine)
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/xapi-numad") and argv[-1] == "$XAPI_NUMAD_ARGS"
    # systemd splits an unquoted $VAR into words and drops it when unset: both parse
    for extra in ([], ["--no-rebalance", "--page-scan-interval", "600"]):
        args = daemon.parse_args(argv[1:-1] + extra)
        assert daemon.check_ranges(args) is None
        assert args.period == 1.0 and args.rebalance == (extra == [])
