"""What the simulated ``xl create`` builds, against libxl and Xen 4.17 (RELEASE-4.17.7), the figures
written here from the sources, not from the code under test.

The paging pool: libxl sizes it itself (libxl__get_required_paging_memory: 256 pages per vCPU and, with
HAP, one per MiB of the maximum; EXTRA_DEFAULT_PAGING_MEM_MB is 0 on x86) and sets it for HVM and PVH
only (libxl__arch_domain_create); Xen adds its own per-vCPU memory (38 pages, CA-423172) for every type.
"""
import pytest

from xapi_numa.backends.sim.backend import SimHypervisor
from xapi_numa.core.topology import Topology

GiB, MiB, PAGE = 1 << 30, 1 << 20, 12
XEN_PER_VCPU = 38


def _hv(tmp_path):
    return SimHypervisor.init(str(tmp_path / "h.json"), Topology.uniform(2, 4, 8 * GiB), "credit2", seed=3,
                              dom0_vcpus=1, dom0_memory=256 * MiB)


def _free(hv):
    return sum(m.free for m in hv.node_memory()) >> PAGE


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
