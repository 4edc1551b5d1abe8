"""A VM's place reads its vGPUs once, while it holds the VM.

``start_placement.place_vm`` built the start's request before it held the VM (to refuse a bad
policy, mask or start target before writing its owner key), asking xapi about every VGPU's type
and that type's implementation, then again once it held the VM (place lock and owner key), where
it read the record afresh: each vGPU read twice, the first read of no use (it may be stale).  It is
now read once, while holding; what is refused before the hold, and the answer, are as before.
"""
import types

import pytest

from test_plugin import err, ok, run
from xapi_numa.backends.xapi_owner_key import owner_of
from xapi_numa.core import dma_zone
from xapi_numa.ops import start_placement
from xapi_numa.state.ledger import Ledger

G, MIB = 1 << 30, 1 << 20
READS = ("VGPU.get_type", "VGPU_type.get_implementation")
VGPUS = ["passthrough", "nvidia"]  # (a passthrough one does not count, but is read: both are)


def _reads(server) -> dict:
    return {name: server.calls[name] for name in READS}


@pytest.fixture
def gpu_vm(ctx, monkeypatch):
    """A halted VM with vGPUs; whether the VM was held (its owner key set) at each read of one;
    the video RAM of each request the engine placed."""
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("gpu", 2, 2 * G)
    for implementation in VGPUS:
        server.add_vgpu(ref, implementation)
    held, videos = [], []
    read = server.VGPU_get_type

    def get_type(self, session_id, vgpu):
        held.append(owner_of(server.vms[ref]["other_config"], start_placement.OWNER_KEY) is not None)
        return read(session_id, vgpu)
    monkeypatch.setattr(server, "VGPU_get_type", types.MethodType(get_type, server))
    place = dma_zone.place

    def spy(planner, loads, request, *args, **kwargs):
        videos.append(request.video)
        return place(planner, loads, request, *args, **kwargs)
    monkeypatch.setattr(dma_zone, "place", spy)
    return server, session, host, sid, ref, uuid, held, videos


def test_place_vm_reads_each_vgpu_once_while_holding_the_vm(gpu_vm, tmp_path):
    server, session, host, _, ref, uuid, held, videos = gpu_vm
    hv, ledger, here = server.sims[host], Ledger(str(tmp_path / "ledger")), session.xenapi.host.get_uuid(host)
    dry = start_placement.place_vm(hv, ledger, session, uuid, dry_run=True, host_uuid=here)
    before, held[:] = _reads(server), []
    placed = start_placement.place_vm(hv, ledger, session, uuid, host_uuid=here)
    assert {name: server.calls[name] - before[name] for name in READS} == {name: len(VGPUS) for name in READS}
    assert held == [True] * len(VGPUS), held  # before: read twice, first before the hold
    # the answer as before: the start's memory with a vGPU's 16 MiB of video RAM, where a dry run puts it
    assert videos == [16 * MIB] * len(videos) and len(videos) == 2, videos
    assert placed["reserved"] and (placed["nodes"], placed["memory_target"]) == (dry["nodes"], dry["memory_target"])


def test_the_plugins_place_reads_each_vgpu_once_on_a_host_with_a_database(gpu_vm):
    server, session, host, sid, ref, uuid, held, videos = gpu_vm
    Ledger(server.ledgers[host])  # (with none, check_place reads them too, before the place: a dry run)
    before = _reads(server)
    assert ok(run(server, host, sid, "place", {"vm": uuid}))["reserved"]
    assert {name: server.calls[name] - before[name] for name in READS} == {name: len(VGPUS) for name in READS}


def test_a_bad_policy_is_still_refused_before_the_vm_is_held(gpu_vm):
    """Its policy is refused before the owner key is written, as before, and now reads no vGPU
    (before: all of them, for the request built only to be refused)."""
    server, session, host, sid, ref, uuid, held, videos = gpu_vm
    Ledger(server.ledgers[host])
    server.vms[ref]["other_config"]["numa_nodes"] = "7"
    before, writes = _reads(server), server.calls["VM.add_to_other_config"]
    assert err(run(server, host, sid, "place", {"vm": uuid}))[:2] == ["NUMA_INVALID_ARGUMENT",
                                                                     "other_config:numa_nodes"]
    assert _reads(server) == before and server.calls["VM.add_to_other_config"] == writes
