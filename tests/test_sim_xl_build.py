"""What the simulated ``xl create`` builds, against libxl and Xen 4.17 (RELEASE-4.17.7), the figures
written here from the sources, not from the code under test.

Video RAM: libxl gives an HVM guest video RAM by default (libxl__domain_build_info_setdefault: with
qemu-xen, the device model it picks when there is no stub domain, and the default Cirrus VGA, 8 MiB;
none for PV or PVH), builds the target less it (libxl__build_hvm: ``target_memkb - video_memkb``) and
QEMU populates it afterwards, page by page with no node (xen_ram_alloc), so Xen's get_free_buddy
deals each page to the next node of the domain's node affinity after its last_alloc_node.

The paging pool: libxl sizes it itself (libxl__get_required_paging_memory: 256 pages per vCPU and, with
HAP, one per MiB of the maximum; EXTRA_DEFAULT_PAGING_MEM_MB is 0 on x86) and sets it for HVM and PVH
only (libxl__arch_domain_create); Xen adds its own per-vCPU memory (38 pages, CA-423172) for every type.
"""
import pytest

from xapi_numa.backends.sim import guestmem
from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.backends.sim.model import Host
from xapi_numa.backends.sim.toolstack import xl_create
from xapi_numa.core.topology import Topology
from xapi_numa.errors import InvalidArgument, NoCapacity

GiB, MiB, PAGE = 1 << 30, 1 << 20, 12
XEN_PER_VCPU = 38


def _hv(tmp_path):
    return SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 4, 8 * GiB), "credit2", seed=3,
                              dom0_vcpus=1, dom0_memory=256 * MiB)


def _free(hv):
    return sum(m.free for m in hv.node_memory()) >> PAGE


def _host():
    h = Host(Topology.uniform(2, 2, 4 * GiB), "credit2", seed=5)
    h.create_domain("Domain-0", 1, 1, load="idle")
    return h


@pytest.mark.parametrize("dtype,vcpus,memory,pool", [
    ("hvm", 2, GiB, 256 * 2 + 1024),            # 256 per vCPU, one per MiB of the maximum (HAP)
    ("pvh", 4, 3 * GiB, 256 * 4 + 3072),
    ("hvm", 1, 2 * GiB + 12 * 1024, 256 + 2048),  # max_memkb / 1024: whole MiB, rounded down
    ("pv", 3, GiB, 0),                           # libxl sets no pool for PV
])
def test_xl_takes_libxls_paging_pool_and_xens_per_vcpu_memory(tmp_path, dtype, vcpus, memory, pool):
    hv = _hv(tmp_path)
    before = _free(hv)
    hv.create("g", vcpus, memory, dtype=dtype, load="idle")
    assert before - _free(hv) == (memory >> PAGE) + pool + XEN_PER_VCPU * vcpus


def test_xl_builds_an_hvm_guests_target_less_its_video_ram_then_the_video_page_by_page():
    h = _host()
    # a soft affinity given: no placement, the node affinity every node
    d = xl_create(h, "g", 2, GiB >> PAGE, None, h.online, "idle", "hvm", True, None)
    video = 8 * MiB >> PAGE
    assert d.video == video
    gfns = [node for first, count, node in guestmem.current_runs(d) for _ in range(count)]
    assert len(gfns) == GiB >> PAGE
    tail = gfns[-video:]  # after the RAM, one page from each node in turn
    assert all(a != b for a, b in zip(tail, tail[1:])) and tail.count(0) == tail.count(1) == video // 2
    assert all(gfns[i] == gfns[i - 1] for i in range(len(gfns) - video - 511, len(gfns) - video))  # RAM: extents


@pytest.mark.parametrize("dtype", ["pvh", "pv"])
def test_xl_gives_no_video_ram_to_pvh_or_pv(dtype):
    h = _host()
    assert xl_create(h, "g", 1, GiB >> PAGE, None, None, "idle", dtype, True, None).video == 0


def test_an_hvm_guest_no_bigger_than_its_video_ram_is_refused_naming_memory(tmp_path):
    hv = _hv(tmp_path)
    before = hv.node_memory()
    with pytest.raises(InvalidArgument) as err:
        hv.create("small", 1, 8 * MiB, dtype="hvm")
    assert err.value.field == "memory" and "9M .. " in err.value.message
    assert hv.node_memory() == before
    hv.create("small", 1, 9 * MiB, dtype="hvm")


@pytest.mark.parametrize("dtype,vcpus", [("pv", 1), ("pv", 4), ("hvm", 2), ("pvh", 8)])
def test_the_largest_guest_offered_fits_with_its_build_overhead(tmp_path, dtype, vcpus):
    hv = _hv(tmp_path)
    high = hv.guest_memory(vcpus, dtype).high
    with pytest.raises(NoCapacity):
        hv.create("big", vcpus, high + (1 << PAGE), dtype=dtype)
    hv.create("big", vcpus, high, dtype=dtype)


def test_the_default_largest_guest_is_a_one_vcpu_pv_guests(tmp_path):
    """As ``sim create``'s defaults: one vCPU, PV (it stated the host's free memory, which a guest
    of that size cannot have: Xen's per-vCPU memory comes out of it too)."""
    hv = _hv(tmp_path)
    high = hv.guest_memory().high
    hv.create("big", 1, high)
    assert _free(hv) == 0


@pytest.mark.parametrize("node", [None, 1])
def test_the_largest_guest_offered_leaves_other_domains_claims(tmp_path, node):
    """A claim made host-wide (xc_domain_claim_pages) is on no node: the free memory stated left it in."""
    hv = _hv(tmp_path)
    shell = hv.create_shell("s", 1, 2 * GiB)
    hv.claim(shell, 2 * GiB >> PAGE, node)
    high = hv.guest_memory(2, "hvm").high
    with pytest.raises(NoCapacity):
        hv.create("big", 2, high + (1 << PAGE), dtype="hvm")
    hv.create("big", 2, high, dtype="hvm")
