"""xapi-numad's auto-settle does not wait for a place of the same VM (hJ's note).

Since settle holds the VM as a place does, it waited up to PLACE_LOCK_WAIT (60 s) for
this host's lock of the VM, and xapi-numad's auto-settle runs inside its cycle: a
place stuck on a hung call stalled homing, pin restores and mover recovery for a
minute per due VM.  The daemon's settle now takes the lock only if it is free, and
the settler looks at the VM again after its back-off."""
import pytest

from test_settle_policy_hold import running_on_x  # noqa: F401 (a fixture: a VM started on X after place)
from xapi_numa import daemon
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.topology import Topology
from xapi_numa.errors import VmBusy
from xapi_numa.ops import settle as settle_ops
from xapi_numa.ops.start_placement import PLACE
from xapi_numa.state.locks import FileLock, vm_lock


def test_a_settle_that_may_not_wait_is_refused_at_once_while_a_place_holds_the_vm(running_on_x, monkeypatch):
    server, session, ledger, ref, uuid, call = running_on_x
    from xapi_numa.plugin import functions
    ctx = functions.Context(session._session)
    waits = []
    real = FileLock.acquire_within
    monkeypatch.setattr(FileLock, "acquire_within", lambda self, seconds, *a: waits.append(seconds) or
                        real(self, seconds, *a))
    held = vm_lock(ledger.path, PLACE, uuid)
    assert held.try_acquire()  # (a place of the VM, stuck)
    try:
        with pytest.raises(VmBusy) as err:
            settle_ops.settle(ctx.hv, ctx.session, ctx.ledger, uuid, lock_wait=0.0)
    finally:
        held.release()
    assert waits == [0.0] and "did not wait for the place lock" in err.value.message, err.value.message
    assert "stuck" not in err.value.message
    settled = settle_ops.settle(ctx.hv, ctx.session, ctx.ledger, uuid, lock_wait=0.0)  # free now: settled
    assert settled["vm"] == uuid


def test_xapi_numads_auto_settle_asks_for_no_wait(tmp_path, monkeypatch, request):
    path = str(tmp_path / "h.json")
    sim = SimHypervisor.init(path, Topology.uniform(2, 2, 1 << 30), "credit2", 1, dom0_vcpus=1, dom0_memory=64 << 20)
    monkeypatch.setenv("XAPI_NUMA_XENAPI_URL", "http://127.0.0.1:9")  # a xapi named: one is read
    spec = "sim:" + path
    rt, reader = daemon.build_runtime(daemon.parse_args(["--backend", spec, "--ledger", str(tmp_path / "l.db")]),
                                      spec, sim)
    request.addfinalizer(reader.close)
    asked = []
    monkeypatch.setattr(daemon, "settle", lambda *args, **kwargs: asked.append(kwargs) or {})
    rt.settler._settle_one("a session", "a VM")
    assert asked == [{"lock_wait": 0.0}], asked
