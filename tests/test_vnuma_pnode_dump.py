"""The pnodes of a vNUMA layout on stock Xen come from debug key 'u''s dump, which the
Xen adapter keeps for a second (it walks every page under a lock).  The kept dump was
trusted for any read within that second, so a read after the adapter set the layout
itself (a vnode move records the new pnode) answered the old pnode, and a domain rebuilt
on the same domid with another layout was given the pnodes of the one before.  Now a
dump answers only for a layout it shows as Xen returns it (vCPUs and ranges) and only
if begun after this adapter last set that layout; the dump is still taken no more often
than the interval allows, and never again for pages per node or for a layout it shows."""
import sys
import types

import pytest

xen = pytest.importorskip("xapi_numa.backends.xen")

from test_udump_overrun import DumpingHost  # noqa: E402
from test_vnuma_moves import FakeGetvnuma, layout  # noqa: E402

from xapi_numa.core import vnuma  # noqa: E402

INTERVAL = 10.0


def _runs(vcpus):
    """Xen's way of printing a vnode's vCPUs: "0-1 3"."""
    out, vcpus = [], sorted(vcpus)
    for c in vcpus:
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return " ".join(str(a) if a == b else f"{a}-{b}" for a, b in out)


def dump_of(layouts):
    """Debug key 'u' as Xen 4.17 prints it (xen/arch/x86/numa.c) for domains with these layouts."""
    lines = ["'u' pressed -> dumping numa info (now = 1)", "Memory location of each domain:"]
    for domid, lay in sorted(layouts.items()):
        pages = sum(v.memory for v in lay.vnodes) >> 12
        lines += [f"Domain {domid} (total: {pages}):", f"    Node 0: {pages}", "    Node 1: 0",
                  f"     {len(lay.vnodes)} vnodes, {sum(len(v.vcpus) for v in lay.vnodes)} vcpus, "
                  "guest physical layout:"]
        for v in lay.vnodes:
            pnode = "???" if v.pnode is None else f"{v.pnode:3d}"
            lines.append(f"       {v.index:3d}: pnode {pnode}, vcpus {_runs(v.vcpus)}")
            lines += [f"           {r.start:016x} - {r.end:016x}" for r in lay.ranges_of(v.index)]
    return "".join(f"(XEN) {line}\n" for line in lines).encode()


class VnumaHost(DumpingHost):
    """Stock Xen with vNUMA: getvnuma and setvnuma on ``layouts``; each capture prints
    ``shown`` (what the dump shows; by default the layouts Xen holds) and is counted."""

    def __init__(self, layouts, now):
        super().__init__(b"")
        self.layouts, self.shown, self.captures, self.now, self.takes = dict(layouts), None, 0, now, 0.0

    def xn_udump_capture(self, h, buf, length, timeout_ms):
        self.captures += 1
        self.now[0] += self.takes  # (the walk of every page takes its time)
        self.dump = dump_of(self.layouts if self.shown is None else self.shown)
        return super().xn_udump_capture(h, buf, length, timeout_ms)

    def xn_domain_getvnuma(self, h, domid, *rest):
        return FakeGetvnuma([self.layouts[domid]] if domid in self.layouts else []).xn_domain_getvnuma(h, domid, *rest)

    def xn_domain_setvnuma(self, h, domid, k, nr_ranges, ranges, nr_vcpus, dist, v2n, n2p):
        self.layouts[domid] = vnuma.layout_from_arrays(
            [(ranges[i].start, ranges[i].end, ranges[i].vnode) for i in range(nr_ranges)],
            [dist[i] for i in range(k * k)], [v2n[i] for i in range(nr_vcpus)], [n2p[i] for i in range(k)])
        return 0


@pytest.fixture
def host(monkeypatch):
    """The adapter over a VnumaHost whose domain 1 has 2 vnodes on pnodes 0 and 1, and a
    clock that moves only when the adapter waits."""
    now = [100.0]
    clock = types.SimpleNamespace(monotonic=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    for module in (xen, sys.modules.get("xapi_numa.backends.xen_udump")):  # (wherever the dumps are timed)
        if module is not None:
            monkeypatch.setattr(module, "time", clock)
    fake = VnumaHost({1: layout([0, 1], vcpus_each=2)}, now)
    monkeypatch.setattr(xen, "lib", fake)
    return xen.XenHypervisor(dump_interval=INTERVAL), fake, now


def test_a_layout_this_adapter_set_is_read_back_with_its_new_pnodes(host):
    hv, fake, now = host
    assert hv.vnuma(1).pnodes == (0, 1) and fake.captures == 1
    moved = hv.vnuma(1).with_pnode(1, 0)  # a vnode move records vnode 1 on pnode 0
    hv.set_vnuma(1, moved.as_plan(), moved.ranges)
    assert hv.node_pages(1) == {0: 512 << 8, 1: 0} and fake.captures == 1  # pages: the dump there is
    assert hv.vnuma(1).pnodes == (0, 0)
    assert fake.captures == 2 and now[0] >= 100.0 + INTERVAL  # a new dump, no sooner than the interval
    assert hv.vnuma(1).pnodes == (0, 0) and fake.captures == 2  # and that one serves on


def test_a_domain_rebuilt_on_the_same_domid_gets_its_own_pnodes(host):
    hv, fake, _ = host
    assert hv.vnuma(1).pnodes == (0, 1)
    fake.layouts[1] = layout([1, 0], [128, 384])  # destroyed and built again by another, same domid
    assert hv.vnuma(1).pnodes == (1, 0) and fake.captures == 2


def test_pnodes_no_dump_agrees_on_stay_unknown(host):
    hv, fake, _ = host
    fake.shown = {1: layout([1, 1], vcpus_each=2, memory=[128, 384])}  # the dump shows another layout
    assert hv.vnuma(1).pnodes == (None, None) and fake.captures == 2


def test_one_dump_serves_pages_and_a_layout_it_shows(host):
    hv, fake, _ = host
    assert hv.node_pages(1)[0] == 512 << 8
    assert hv.vnuma(1).pnodes == (0, 1) and hv.vnuma(1).pnodes == (0, 1)
    assert fake.captures == 1


def test_a_new_dump_waits_the_interval_from_the_end_of_the_last(host):
    hv, fake, now = host
    fake.takes = 3.0
    moved = hv.vnuma(1).with_pnode(0, 1)
    hv.set_vnuma(1, moved.as_plan(), moved.ranges)
    assert hv.vnuma(1).pnodes == (1, 1) and fake.captures == 2
    assert now[0] == 100.0 + 3.0 + INTERVAL + 3.0  # the first dump, the rest after it, the second
