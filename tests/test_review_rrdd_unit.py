"""Review: xapi-numa-rrdd.service is PartOf=xcp-rrdd.service, so a stop of xcp-rrdd stops
it, but nothing starts it again when xcp-rrdd starts: PartOf= propagates stop and restart
only (systemd.unit(5): "limited to stopping and restarting of units"), and the unit is
only WantedBy=multi-user.target.  xe-toolstack-restart (XenCenter's "Restart Toolstack",
the step every XenServer/XCP-ng update tells admins to run) does `systemctl stop` of each
toolstack service, xcp-rrdd among them, then `systemctl start` of each: after it the
metrics plugin stays stopped until the next boot, and every NUMA data source goes stale.

The model below is systemd's documented behaviour for the two operations, applied to the
units as packaging/ ships them."""
import configparser
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def unit(name):
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(os.path.join(ROOT, "packaging", name))
    return parser


def words(parser, section, key):
    return parser.get(section, key, fallback="").split()


def after_stop_then_start(target, ours_name, ours):
    """Is `ours` running after `systemctl stop target; systemctl start target`, when both
    ran before and `ours` is enabled (its [Install] links made)?"""
    running = True
    # stop: propagated to units that are PartOf=, BindsTo= or Requires= the target
    if any(target in words(ours, "Unit", key) for key in ("PartOf", "BindsTo", "Requires")):
        running = False
    # start: pulls in what the target wants or requires, which includes every enabled unit
    # whose [Install] says WantedBy=/RequiredBy= the target (its .wants/.requires link)
    if any(target in words(ours, "Install", key) for key in ("WantedBy", "RequiredBy")):
        running = True
    return running


def test_the_metrics_plugin_runs_again_after_a_toolstack_restart():
    ours = unit("xapi-numa-rrdd.service")
    assert "xcp-rrdd.service" in words(ours, "Unit", "PartOf")
    assert after_stop_then_start("xcp-rrdd.service", "xapi-numa-rrdd.service", ours), \
        "xe-toolstack-restart (stop xcp-rrdd, then start it) leaves xapi-numa-rrdd stopped"


def test_the_daemon_runs_after_a_toolstack_restart():
    ours = unit("xapi-numad.service")
    assert after_stop_then_start("xapi.service", "xapi-numad.service", ours)
