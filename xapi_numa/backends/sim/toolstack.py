"""What ``xl create`` adds on top of the hypervisor: libxl's automatic NUMA placement.

Xen 4.17's libxl (``libxl__build_pre`` -> ``numa_place_domain`` ->
``libxl__get_numa_candidate``, tools/libs/light/libxl_dom.c and libxl_numa.c),
re-implemented from reading it; each rule below is libxl's, including its quirks.

When it runs: the config gives no soft affinity (``cpus_soft``) and no node
affinity, and xl has not turned placement off (it does for ``cpus_soft``, for
a per-vCPU list of hard masks and for vNUMA ``pnode``).  A single hard mask
(``cpus="..."``) does *not* stop it.  Hosts with one node, or more than 16,
get no placement.

Inputs (read when the domain already exists, so it counts itself):

* *suitable CPUs*: the domain's cpupool (the simulator has one pool of every
  CPU).  libxl 4.17 computes hard affinity AND pool, but only to check it is
  not empty; the search itself runs over the whole pool.
* *memory needed* (``libxl__domain_need_memory_calculate`` with xl's
  defaults): the target, plus the paging pool ``4 * (256 * vcpus +
  maxmem_MiB)`` KiB, plus 1 MiB (PV) or 2 MiB (PVH, HVM), rounded up to 2 MiB.
* *free memory* per node in KiB (bytes / 1024, outstanding claims not
  subtracted), summed over a candidate in an **unsigned 32-bit** total.
* *vCPUs per node* (``nr_vcpus_on_nodes``): every vCPU of every domain
  (dom0, paused domains and the new one included) counts once on each node
  where a CPU of its **hard** affinity is suitable, in its pool, and on a node
  of its domain's node affinity.  Soft affinity does not count.

Candidates: node sets over the nodes with suitable CPUs, by size from
``ceil(vcpus / CPUs per node)`` (1 when nodes have different CPU counts) up,
in lexicographic order within a size; a set qualifies with at least the memory
needed free and at least as many suitable CPUs as the guest has vCPUs.  The
first size with a qualifying set ends the search.

Comparison (``numa_cmpf``): fewer vCPUs wins; then more free memory, computed
as ``(int)(best.free - new.free)`` (so a difference of 2 TiB or more wraps);
there is **no tolerance** in 4.17.  A new candidate replaces the best only if
strictly better, so ties keep the earlier set.

Afterwards libxl sets the domain's node affinity to the chosen nodes (Xen
then populates memory from them, whatever the hard affinity says) and every
vCPU's soft affinity to all CPUs of those nodes; a given hard mask is applied
after, leaving soft alone.  With no candidate nothing changes.

The build's overhead: libxl 4.17 sets an HVM/PVH guest's paging pool after placement, the
node affinity and the vCPUs' affinity (``libxl__build_pre`` through ``libxl__arch_domain_create``;
none for PV), so Xen takes it page by page round the chosen nodes before the guest's RAM, moving
``last_alloc_node``; a PV guest gets Xen's per-vCPU memory only.  The pool is libxl's own size
(:func:`paging_kib`, what :func:`need_memkb` counts too), not the planner's model of xenopsd's.

Video RAM: libxl gives an HVM guest some by default (:func:`video_pages`), builds its target less
it (``libxl__build_hvm``) and QEMU populates it after the build, page by page with no node
(``xen_ram_alloc``), so Xen deals each page to the next node of the domain's node affinity.

Not modelled: cpupools and stub domains.
"""

from itertools import combinations
from typing import List, Optional, Sequence, Tuple

import attrs

from xapi_numa.backends.sim.heap import build_overhead
from xapi_numa.backends.sim.masks import count, has, iter_bits

MAX_NODES = 16  # libxl skips placement on bigger hosts
KIB_PER_PAGE = 4
U32 = 1 << 32
_EXTRA_KIB = {"pv": 1024, "pvh": 2048, "hvm": 2048}
# libxl's default video_memkb (libxl__domain_build_info_setdefault, libxl_create.c, 4.17): an HVM guest
# with qemu-xen (its device model when there is no stub domain) and the default Cirrus VGA; PV and PVH none
_VIDEO_KIB = {"hvm": 8 * 1024}


@attrs.frozen
class Candidate:
    """One set of nodes libxl considered, with the figures it compares."""

    nodes: Tuple[int, ...]
    nr_cpus: int
    nr_vcpus: int
    free_memkb: int


def paging_kib(max_kib: int, vcpus: int, dtype: str) -> int:
    """libxl's default ``shadow_memkb`` for a guest of ``max_kib`` (libxl__get_required_paging_memory,
    tools/libs/light/libxl_create.c, Xen RELEASE-4.17.7): 4 KiB times 256 per vCPU, plus per MiB of
    the maximum one page for a non-PV guest's p2m and one more without HAP (a PV guest has none),
    plus EXTRA_DEFAULT_PAGING_MEM_MB (0 on x86).  HAP is taken for HVM and PVH (libxl's default on
    hardware that has it).  libxl asks Xen for a pool of that size for HVM and PVH only
    (libxl__domain_set_paging_mempool_size; hap_set_allocation makes it that many pages)."""
    hap = dtype != "pv"
    return KIB_PER_PAGE * (256 * vcpus + ((dtype != "pv") + (not hap)) * (max_kib // 1024))


def xl_overhead(dtype: str, vcpus: int, pages: int) -> int:
    """Pages of the build's overhead of a guest ``xl create`` builds with ``pages`` (its maximum):
    libxl's paging pool (:func:`paging_kib`; none for PV) and Xen's per-vCPU memory."""
    pool = 0 if dtype == "pv" else paging_kib(pages * KIB_PER_PAGE, vcpus, dtype) // KIB_PER_PAGE
    return pool + build_overhead(dtype, vcpus, pages, pool=False)


def video_pages(dtype: str) -> int:
    """Pages of video RAM libxl gives a guest of ``dtype`` when its config names none (xl's
    ``videoram=``): 8 MiB for HVM (qemu-xen, Cirrus VGA), none for PV and PVH."""
    return _VIDEO_KIB.get(dtype, 0) // KIB_PER_PAGE


def largest_guest(usable: int, vcpus: int, dtype: str) -> int:
    """Pages of the largest guest ``xl create`` can build from ``usable`` free pages: its memory
    and its build's overhead (:func:`xl_overhead`, which grows with the memory) both out of them."""
    low, high = 0, max(0, usable)
    while low < high:  # memory + overhead only grows with the memory: the last size that fits
        mid = (low + high + 1) // 2
        low, high = (mid, high) if mid + xl_overhead(dtype, vcpus, mid) <= usable else (low, mid - 1)
    return low


def need_memkb(pages: int, vcpus: int, dtype: str) -> int:
    """Memory libxl requires free on a candidate for a guest of ``pages``."""
    target_kib = pages * KIB_PER_PAGE
    need = target_kib + paging_kib(target_kib, vcpus, dtype) + _EXTRA_KIB[dtype]
    return -(-need // 2048) * 2048


def cpus_per_node_if_uniform(host) -> int:
    """libxl's count_cpus_per_node: the common count, or 0 if nodes differ."""
    counts = {count(mask) for mask in host.node_mask}
    return counts.pop() if len(counts) == 1 else 0


def vcpus_on_nodes(host, suitable: int, new_vcpus: int) -> List[int]:
    """libxl's nr_vcpus_on_nodes, the domain being built included (it exists by then)."""
    nr = len(host.node_mask)
    per_node = [0] * nr
    for d in host.domains.values():
        affine_nodes = host.effective_node_affinity(d)
        for v in d.vcpus:
            counted = 0
            for cpu in iter_bits(v.hard & suitable):
                node = host.cpu_node[cpu]
                if has(affine_nodes, node) and not has(counted, node):
                    counted |= 1 << node
                    per_node[node] += 1
    # The new domain: default hard affinity (every CPU) and automatic node affinity.
    for node in range(nr):
        if host.node_mask[node] & suitable:
            per_node[node] += new_vcpus
    return per_node


def _as_c_int(value: int) -> int:
    """A uint64 difference returned as a C int (two's complement truncation)."""
    return ((value + (1 << 31)) % U32) - (1 << 31)


def compare(new: Candidate, best: Candidate) -> int:
    """libxl's numa_cmpf: negative when ``new`` is better than ``best``."""
    if new.nr_vcpus != best.nr_vcpus:
        return new.nr_vcpus - best.nr_vcpus
    return _as_c_int(best.free_memkb - new.free_memkb)


def candidates_of_size(host, size: int, suitable_nodes: Sequence[int], suitable: int,
                       per_node: Sequence[int]) -> List[Candidate]:
    """Every node set of ``size`` in libxl's order, with its figures (unfiltered)."""
    out = []
    for combo in combinations(suitable_nodes, size):
        free = 0
        for n in combo:
            free = (free + (host.free[n] * KIB_PER_PAGE)) % U32  # nodemap_to_free_memkb is uint32_t
        cpus = sum(count(host.node_mask[n] & suitable) for n in combo)
        out.append(Candidate(combo, cpus, sum(per_node[n] for n in combo), free))
    return out


def best_candidate(host, memkb: int, vcpus: int, suitable: Optional[int] = None) -> Optional[Candidate]:
    """libxl__get_numa_candidate with numa_cmpf, or None when nothing qualifies."""
    nr = len(host.node_mask)
    if nr <= 1 or nr > MAX_NODES:
        return None
    suitable = host.online if suitable is None else suitable
    suitable_nodes = [n for n in range(nr) if host.node_mask[n] & suitable]
    per_node = vcpus_on_nodes(host, suitable, vcpus)
    per = cpus_per_node_if_uniform(host)
    min_nodes = -(-vcpus // per) if per else 1
    min_nodes = min(max(min_nodes, 0), len(suitable_nodes))
    for size in range(min_nodes, len(suitable_nodes) + 1):
        best = None
        for c in candidates_of_size(host, size, suitable_nodes, suitable, per_node):
            if memkb and c.free_memkb < memkb:
                continue
            if vcpus and c.nr_cpus < vcpus:
                continue
            if best is None or compare(c, best) < 0:
                best = c
        if best is not None:
            return best
    return None


def placement_runs(soft: Optional[int], auto_numa: bool) -> bool:
    """Does libxl run automatic placement?  A hard mask (one for every vCPU, as the
    simulator takes it) does not stop it; a soft one does."""
    return auto_numa and soft is None


def xl_create(host, name: str, vcpus: int, pages: int, hard: Optional[int], soft: Optional[int],
              load: str, dtype: str, paused: bool, uuid: Optional[str], auto_numa: bool = True,
              video: Optional[int] = None):
    """Build a domain the way ``xl create`` does, automatic NUMA placement included, its build's
    overhead (:func:`xl_overhead`) round its nodes then, its RAM less ``video`` pages of video RAM
    (None: libxl's default, :func:`video_pages`) and those last, page by page."""
    node_affinity = None
    if placement_runs(soft, auto_numa) and dtype in _EXTRA_KIB:
        best = best_candidate(host, need_memkb(pages, vcpus, dtype), vcpus)
        if best is not None:
            node_affinity = sum(1 << n for n in best.nodes)
            soft = 0
            for n in best.nodes:
                soft |= host.node_mask[n]
    return host.create_domain(name, vcpus, pages, hard, soft, load, dtype, paused, uuid,
                              node_affinity=node_affinity,
                              overhead=xl_overhead(dtype, vcpus, pages),
                              video=video_pages(dtype) if video is None else video)

