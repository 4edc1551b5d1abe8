"""The systemd units the package ships: ordered after the toolstack's services but never
starting them (an admin who stopped xapi or xcp-rrdd keeps them stopped through an install
or upgrade of ours), and xapi-numad's flags set by the admin in /etc/sysconfig (review rF:
``Wants=`` started them, and the flags could only be changed by editing a file an upgrade
replaces)."""
import configparser
import os
import shlex

import pytest

from test_daemon import swapped_host
from xapi_numa import daemon, rrdd_plugin
from xapi_numa.ops import instance_lock

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


# --- a daemon that keeps failing, and a stop that left pins (packager's review) ----------------

SYSTEMD_219_DEFAULTS = {"StartLimitInterval": 10, "StartLimitBurst": 5}  # (DefaultStartLimit* of 219)


def starts_before_refused(service: configparser.SectionProxy, horizon: float = 86400.0):
    """How many starts systemd 219 makes of a service whose every start fails at once,
    restarted RestartSec later (Restart=on-failure), before its start limit refuses one;
    None if it is still restarting after ``horizon`` seconds.  systemd 219 reads the limit
    in [Service] only, and counts starts in a window that opens at the first start after
    the last window ran out (its ratelimit_test)."""
    interval = float(service.get("StartLimitInterval", SYSTEMD_219_DEFAULTS["StartLimitInterval"]))
    burst = int(service.get("StartLimitBurst", SYSTEMD_219_DEFAULTS["StartLimitBurst"]))
    restart_sec = float(service["RestartSec"])
    begin, count, now, starts = None, 0, 0.0, 0
    while now < horizon:
        if begin is None or begin + interval < now:
            begin, count = now, 0
        if count >= burst:
            return starts
        count += 1
        starts += 1
        now += restart_sec
    return None


@pytest.mark.parametrize("name", sorted(TOOLSTACK))
def test_a_daemon_that_keeps_failing_stops_being_retried_and_the_unit_shows_failed(name):
    parsed = unit(name)
    service = parsed["Service"]
    assert service["Restart"] == "on-failure"
    # where systemd 219 (CentOS 7, a XenServer 8 dom0) reads them; in [Unit] it ignores them
    assert "StartLimitInterval" in service and "StartLimitBurst" in service, name
    assert not [key for key in parsed["Unit"] if key.startswith("StartLimit")], name
    starts = starts_before_refused(service)
    assert starts is not None, "{}: a failing start is retried every {} s for ever".format(name, service["RestartSec"])
    assert 3 <= starts <= 10, (name, starts)


def test_bad_flags_are_not_retried():
    """Flags the daemon refuses (exit 2, a bad /etc/sysconfig/xapi-numad) do not mend by themselves."""
    service = unit("xapi-numad.service")["Service"]
    assert "2" in service.get("RestartPreventExitStatus", "").split()
    assert daemon.main(["--period", "0"]) == 2


def test_a_copy_refused_for_another_holding_the_lock_is_not_restarted(tmp_path, capsys):
    """A copy that found the host's lock held by another xapi-numad (one started by hand) exited 1,
    as a start that fails does: Restart=on-failure started it again every 5 s, refused again each
    time, until the start limit left the unit failed.  It exits EXIT_ANOTHER_COPY, which the unit
    does not restart on and does not count a success; its stderr names the copy that holds the lock."""
    path = str(tmp_path / "h.json")
    swapped_host(path)
    held = instance_lock.acquire("sim:" + path)  # the other copy (a flock: another open file conflicts)
    try:
        status = daemon.main(["--backend", "sim:" + path, "--no-xapi", "--cycles", "1"])
    finally:
        os.close(held)
    assert "another xapi-numad (pid {}) already runs".format(os.getpid()) in capsys.readouterr().err
    assert status == daemon.EXIT_ANOTHER_COPY and status not in (0, 1, 2, daemon.EXIT_PINS_LEFT)
    service = unit("xapi-numad.service")["Service"]
    assert str(status) in service.get("RestartPreventExitStatus", "").split()
    assert str(status) not in service.get("SuccessExitStatus", "").split()  # (the unit shows failed)


def test_a_stop_that_left_pins_is_a_stop_with_its_own_status_not_a_failed_unit():
    """A SIGTERM whose restores could not all be made (the journal keeps them for the next start)
    exited 1, as a start that fails does: the unit ended "failed" after every such stop (rpm -e,
    a reboot).  It exits EXIT_PINS_LEFT, which the unit counts a success (inactive, not failed,
    no restart) and systemctl status still shows; 1 and 2 stay failures."""
    service = unit("xapi-numad.service")["Service"]
    success = service.get("SuccessExitStatus", "").split()
    assert success == [str(daemon.EXIT_PINS_LEFT)]
    assert daemon.EXIT_PINS_LEFT not in (0, 1, 2)
    assert not unit("xapi-numa-rrdd.service")["Service"].get("SuccessExitStatus"), "its stop always exits 0"


def test_an_rrdd_copy_refused_for_another_holding_the_lock_is_not_restarted(tmp_path, capsys):
    """xapi-numa-rrdd refused for another copy holding its lock exited 1, which its unit's
    Restart=on-failure retried every 10 s, refused each time, until the start limit.  It exits
    EXIT_ANOTHER_COPY, as xapi-numad does, which its unit does not restart on."""
    path = str(tmp_path / "h.json")
    swapped_host(path)
    held = instance_lock.acquire("sim:" + path, "xapi-numa-rrdd")
    try:
        status = rrdd_plugin.main(["--backend", "sim:" + path])
    finally:
        os.close(held)
    assert "(pid {})".format(os.getpid()) in capsys.readouterr().err
    assert status == instance_lock.EXIT_ANOTHER_COPY
    service = unit("xapi-numa-rrdd.service")["Service"]
    assert str(status) in service.get("RestartPreventExitStatus", "").split()
    assert str(status) not in service.get("SuccessExitStatus", "").split()
