"""BuildRoom (core/set_room.py) tells whether Xen's build over a set of nodes keeps a VM's memory
there from a host of the set's nodes alone, or without a build where every extent surely fits:
its answer is the builds' own (xenalloc.striped_outside over the whole host, from every start)."""
from hypothesis import given, settings
from hypothesis import strategies as st

from xapi_numa.core import xenalloc
from xapi_numa.core.set_room import BuildRoom
from xapi_numa.core.units import PAGE_SHIFT
from xapi_numa.errors import NoCapacity

GIB = 1 << 30
MIB = 1 << 20


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 40).map(lambda q: q * GIB // 8 + 3 * MIB * (q % 3)), min_size=2, max_size=6),
       st.integers(1, 80).map(lambda q: q * GIB // 8), st.sampled_from(["pv", "pvh", "hvm"]),
       st.integers(0, 300), st.data())
def test_a_set_keeps_the_build_exactly_when_no_build_of_it_spills(free, memory, dtype, overhead, data):
    pages = [f >> PAGE_SHIFT for f in free]
    room = BuildRoom(pages, overhead * 256, memory >> PAGE_SHIFT, dtype, binding=True)
    for _ in range(3):  # several sets of one room: what it remembers of one is right for the next
        nodes = sorted(data.draw(st.sets(st.integers(0, len(free) - 1), min_size=1)))
        try:
            spills = bool(xenalloc.striped_outside(overhead * 256, memory >> PAGE_SHIFT, dtype, pages, nodes))
        except NoCapacity:
            spills = True
        assert room.keeps(nodes) == (not spills), nodes
