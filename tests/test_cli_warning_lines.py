"""A warning the shared modules log while a command runs is said as one line on standard
error, as the command's own errors are: ``xapi-numa: warning: EVENT (field=value, ...)``.

Before, nothing set up logging in ``xapi-numa``, so Python's last-resort handler printed
the bare event ("xapi unreachable: running without it"), with no program name and none of
the details (which xapi, what failed)."""
import os
import socket
import subprocess
import sys

from xapi_numa.cli.log_lines import warning_line

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _closed_port() -> int:
    with socket.socket() as s:  # a port just freed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(*argv: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xapi_numa.cli"] + list(argv), env=env, cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=120)


def test_a_dry_run_says_an_unreachable_xapi_as_one_warning_line_with_its_details(tmp_path):
    host = str(tmp_path / "host.json")
    env = dict(os.environ, PYTHONPATH=ROOT, XAPI_NUMA_BACKEND="sim:" + host,
               XAPI_NUMA_XENAPI_URL="http://127.0.0.1:{}".format(_closed_port()),
               XAPI_NUMA_POOL_USER="root", XAPI_NUMA_POOL_PASSWORD="not-said-anywhere")
    env.pop("XAPI_NUMA_DEBUG", None)
    init = _cli("sim", "init", host, "--nodes", "2", "--cpus-per-node", "2", "--memory-per-node", "1G", env=env)
    assert init.returncode == 0, init.stderr
    out = _cli("rebalance", "--dry-run", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("xapi: unreachable"), out.stdout
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("xapi-numa: warning: xapi unreachable: running without it ("), lines
    assert "xapi=" + env["XAPI_NUMA_XENAPI_URL"] in lines[0] and "not-said-anywhere" not in out.stderr
    # a command tries once: xapi-numad's next login ("retry_in") is no detail of it (a review)
    assert "retry_in" not in lines[0], lines


def test_a_warning_line_quotes_details_that_would_read_ambiguously():
    assert warning_line("hypervisor refused", {"domid": 3, "op": "pin"}) == \
        "xapi-numa: warning: hypervisor refused (domid=3, op=pin)"
    assert warning_line("x", {"why": "no room, node 1", "empty": ""}) == \
        "xapi-numa: warning: x (empty='', why='no room, node 1')"
    assert warning_line("nothing more", {}) == "xapi-numa: warning: nothing more"
    assert warning_line("xapi refused the login: running without it", {"user": "root", "retry_in": 60.0}) == \
        "xapi-numa: warning: xapi refused the login: running without it (user=root)"
