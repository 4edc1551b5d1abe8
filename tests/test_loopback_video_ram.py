"""The loopback's VM.start_on builds an HVM guest's video RAM as xapi and xenopsd do: xapi's
``video_mib`` (platform:videoram, 4 MiB when unset; at least 16 MiB when the VM has a vGPU that
is not a passed-through GPU), which xenopsd leaves out of the build and QEMU populates after it,
page by page.  The start built the dynamic maximum as RAM, with no video RAM at all."""
import pytest

MiB, PAGE = 1 << 20, 12


def _video_pages(server, session, host, ref):
    session.xenapi.VM.start_on(ref, host, False, False)
    sim, domid = server.sims[host], int(session.xenapi.VM.get_domid(ref))
    with sim.store.snapshot() as h:
        d = h.domain(domid)
        assert d.tot_pages == 1 << (30 - PAGE)  # the whole dynamic maximum, the video RAM in it
        return d.video


@pytest.mark.parametrize("platform,vgpu,domain_type,mib", [
    ({}, None, "hvm", 4),                       # xapi's default videoram
    ({"videoram": "8"}, None, "hvm", 8),
    ({"videoram": "8"}, "nvidia", "hvm", 16),   # a vGPU: at least 16 MiB
    ({}, "passthrough", "hvm", 4),              # a whole GPU passed through is a PCI device
    ({"videoram": "8"}, None, "pvh", 0),        # no emulated VGA
])
def test_the_start_builds_xapis_video_ram_for_the_vm(ctx, platform, vgpu, domain_type, mib):
    server, session, host, _sid = ctx
    ref, _uuid = server.add_vm("v", 2, 1 << 30, domain_type=domain_type, platform=platform)
    if vgpu:
        server.add_vgpu(ref, vgpu)
    assert _video_pages(server, session, host, ref) == mib * MiB >> PAGE
