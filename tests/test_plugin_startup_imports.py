"""The numa plugin is a fresh process for every call (``place`` and ``settle`` on every VM
start), so what it imports is paid on every call.  Loading the plugin imports only what
checking a call needs; a call imports the modules it uses, and nothing else.  These tests
check which modules a plugin process loaded; they measure no time (bench/bench_plugin.py
does that).
"""
import json
import os
import subprocess
import sys
import uuid

from conftest import PLUGIN_DIR, REPO
from hypothesis import given
from hypothesis import strategies as st

from xapi_numa.core.host import UUID_RE, uuid4_text

# loaded by a call that uses them, never by loading the plugin: the state database (sqlite3),
# the XenAPI client, the hypervisor port and backends (Xen: the cffi binding), the use cases
FIRST_USE_ONLY = ("sqlite3", "xapi_numa.state.db", "xapi_numa.state.ledger", "xapi_numa.backends.xapi",
                  "xapi_numa.backends.open", "xapi_numa.ports.hypervisor", "xapi_numa.backends.xen",
                  "xapi_numa._libxenuma", "_cffi_backend", "xapi_numa.backends.sim.backend", "xapi_numa.ops")
# the page mover, the balancer, the daemon's dry run, vNUMA and the queries: not a VM start's
NOT_ON_THE_START_PATH = ("xapi_numa.ops.move_memory", "xapi_numa.ops.background_mover", "xapi_numa.ops.runtime",
                         "xapi_numa.ops.rebalancing", "xapi_numa.core.rebalance", "xapi_numa.ops.vnuma_xapi",
                         "xapi_numa.ops.queries", "xapi_numa.ops.xapi_link")


def loaded(names, present):
    """Those of ``names`` that are loaded modules, a package standing for its modules."""
    return sorted(n for n in names if any(m == n or m.startswith(n + ".") for m in present))


def modules_after(tmp_path, imports):
    """The modules a new Python process has loaded after ``import`` of ``imports``."""
    code = "import sys, json; import {}; print(json.dumps(sorted(sys.modules)))".format(", ".join(imports))
    done = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), stdout=subprocess.PIPE, check=True,
                          env=dict(os.environ, PYTHONPATH=REPO))
    return json.loads(done.stdout.decode())


def test_loading_the_plugin_imports_nothing_a_call_opens(tmp_path):
    """The entry module, imported as plugins/numa imports it: none of the modules a call
    opens on first use (a top-level import of one would put it on every call)."""
    present = modules_after(tmp_path, ["xapi_numa.plugin.boundary"])
    assert "xapi_numa.plugin.functions" in present  # (what was loaded is the plugin's)
    assert loaded(FIRST_USE_ONLY, present) == []


def test_a_vm_start_on_a_dom0_does_not_import_uuid(tmp_path):
    """What place and settle import on a dom0 (the simulator of the tests imports more)
    leaves out the uuid module: on dom0's Python 3.6 it loads ctypes and runs ldconfig."""
    present = modules_after(tmp_path, ["xapi_numa.plugin.boundary", "xapi_numa.ops.start_placement",
                                       "xapi_numa.ops.settle", "xapi_numa.state.ledger", "xapi_numa.backends.xapi",
                                       "xapi_numa.backends.open", "xapi_numa.backends.inventory"])
    assert "xapi_numa.ops.start_placement" in present and "uuid" not in present


@given(st.binary(min_size=16, max_size=16))
def test_uuid4_text_is_uuid4s(random16):
    """The text of a random UUID as the uuid module makes it of the same bytes."""
    made = uuid4_text(random16)
    assert made == str(uuid.UUID(bytes=random16, version=4)) and UUID_RE.match(made)


def recording_plugin(tmp_path, name):
    """plugins/numa run in-process by a wrapper that writes the process's modules, at exit,
    to ``name``.json in tmp_path; the wrapper's path, and the file."""
    out, wrapper = tmp_path / (name + ".json"), tmp_path / name
    wrapper.write_text("#!{}\nimport atexit, json, runpy, sys\n"
                       "atexit.register(lambda: open({!r}, 'w').write(json.dumps(sorted(sys.modules))))\n"
                       "sys.argv[0] = {!r}\nrunpy.run_path(sys.argv[0], run_name='__main__')\n".format(
                           sys.executable, str(out), os.path.join(PLUGIN_DIR, "numa")))
    wrapper.chmod(0o755)
    return str(wrapper), out


def test_a_vm_start_imports_no_mover_and_no_balancer(ctx, tmp_path):
    """place and settle, as a VM start calls them, through xapi's convention: each loads
    what it uses (the state database, the XenAPI client) and none of the modules only other
    functions use."""
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("vm", 2, 1 << 30)
    place, place_modules = recording_plugin(tmp_path, "place")
    placed = json.loads(server.run_plugin(host, sid, "place", {"vm": uuid}, path=place))
    assert placed["reserved"]
    session.xenapi.VM.start_on(ref, host, False, False)
    settle, settle_modules = recording_plugin(tmp_path, "settle")
    assert json.loads(server.run_plugin(host, sid, "settle", {"vm": uuid}, path=settle))["nodes"] == placed["nodes"]
    for modules in (place_modules, settle_modules):
        present = json.loads(modules.read_text())
        assert loaded(("sqlite3", "xapi_numa.backends.xapi"), present) == ["sqlite3", "xapi_numa.backends.xapi"]
        assert loaded(NOT_ON_THE_START_PATH, present) == []
