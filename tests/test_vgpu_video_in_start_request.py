"""A VM xapi builds with a vGPU gets at least 16 MiB of video RAM (Xapi_xenops.builder_of_vm:
``video_mib`` raised to 16 when ``vgpus_of_vm`` is not empty), part of the memory the domain is
given with its node affinity (QEMU populates it after the RAM, page by page).  Every start
predicted from a VM's record (place, its dry run, check_place, a vNUMA follow plan) built its
request with ``vgpu=False``: only the stored plan's ``video_ram`` asked xapi about the vGPUs,
so the build was predicted with the VM's ``platform:videoram`` (4 MiB by default)."""
import pytest

from xapi_numa.core import dma_zone
from xapi_numa.ops import start_placement, vnuma_xapi
from xapi_numa.state.ledger import Ledger

G, MIB = 1 << 30, 1 << 20


@pytest.fixture
def seen(monkeypatch):
    """The video RAM of every request the engine is asked to place."""
    videos = []
    place = dma_zone.place

    def spy(planner, loads, request, *args, **kwargs):
        videos.append(request.video)
        return place(planner, loads, request, *args, **kwargs)
    monkeypatch.setattr(dma_zone, "place", spy)
    return videos


@pytest.mark.parametrize("implementations, videoram, mib", [
    ([], None, 4), (["nvidia"], None, 16), (["passthrough"], None, 4), (["passthrough", "gvt_g"], "8", 16),
    (["mxgpu"], "32", 32)])
def test_every_start_predicted_from_the_record_counts_the_vgpus_video_ram(ctx, tmp_path, seen, implementations,
                                                                           videoram, mib):
    server, session, host, _ = ctx
    ref, uuid = server.add_vm("gpu", 2, 2 * G, platform={"videoram": videoram} if videoram else None)
    for implementation in implementations:
        server.add_vgpu(ref, implementation)
    hv, ledger = server.sims[host], Ledger(str(tmp_path / "ledger"))
    start_placement.place_vm(hv, ledger, session, uuid, dry_run=True)
    start_placement.check_place(hv, ledger, session, uuid)
    vnuma_xapi.plan_for(hv, ledger, session.xenapi.VM.get_record(ref), uuid, session=session)
    start_placement.place_vm(hv, ledger, session, uuid)
    assert seen == [mib * MIB] * len(seen) and len(seen) >= 4, seen
    # the stored plan's video RAM is the one its placement was predicted with
    assert vnuma_xapi.video_ram_in(session, session.xenapi.VM.get_record(ref)) == mib * MIB
