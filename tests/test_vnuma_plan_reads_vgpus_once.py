"""The plugin's ``vnuma_plan`` reads the VM's vGPUs once.

A follow plan asked xapi whether it builds the VM with a vGPU for the start it predicts
(``vnuma_xapi.plan_for`` through ``place_request.start_request``), then ``vnuma_plan`` asked
again for the video RAM it answers and stores (``video_ram_in``): every VGPU's type and that
type's implementation read twice.  The answer is now read once and handed to both.
"""
import pytest

from test_plugin import ok, run
from xapi_numa.ops import vnuma_xapi

G, MIB = 1 << 30, 1 << 20
READS = ("VGPU.get_type", "VGPU_type.get_implementation")


@pytest.mark.parametrize("args", [{}, {"store": "true"}, {"mode": "split", "half": "1"}])
def test_a_vnuma_plan_reads_each_vgpu_once(ctx, args):
    server, session, host, sid = ctx
    ref, uuid = server.add_vm("gpu", 2, 2 * G)
    vgpus = ["passthrough", "nvidia"]  # (a passthrough one does not count: both are read)
    for implementation in vgpus:
        server.add_vgpu(ref, implementation)
    before = {name: server.calls[name] for name in READS}
    answer = ok(run(server, host, sid, "vnuma_plan", dict(args, vm=uuid)))
    assert {name: server.calls[name] - before[name] for name in READS} == {name: len(vgpus) for name in READS}, \
        args  # before: twice each for a follow plan
    assert answer["video_ram"] == 16 * MIB and answer["stored"] == ("store" in args), answer
    if "store" in args:
        assert vnuma_xapi.stored_plan(server.vms[ref]["other_config"])["video_ram"] == 16 * MIB
