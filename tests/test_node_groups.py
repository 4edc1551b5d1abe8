"""core/node_sets.node_groups: the planner's groups of nodes within a distance threshold.

Until 2026-12-07 the planner listed every maximal clique of each threshold's graph: a table of
many irregular distances (64 nodes, 30 random distances, a BIOS's odd SLIT) has millions (3.3
million at one threshold, 29 s for a start's placement, and every start waited on it).  Past
CLIQUE_BUDGET steps each node with its later neighbours stands in, the search keeps to sets within
the threshold, and fitting_clique says whether one fits: the same answer as the cliques' where the
searches end within their budget, on tables with sockets (whose cliques are always listed) and on
irregular ones alike; the max distance never more than theirs.
"""
import itertools
import random

import pytest

from test_node_set_search import irregular_table, seeded_host
from xapi_numa.core import node_sets, placement
from xapi_numa.core.node_sets import CLIQUE_BUDGET, bits, fitting_clique, maximal_cliques, node_groups
from xapi_numa.core.placement import NodeLoads, Planner, Request
from xapi_numa.core.topology import Topology

G = 1 << 30


def odd_host(seed: int, n: int = 64):
    """A host whose SLIT has 30 random distances (11-40), its nodes partly full."""
    rng = random.Random(seed)
    topo = Topology.from_arrays([c // 4 for c in range(n * 4)], irregular_table(rng, n, list(range(11, 41))),
                                [32 * G] * n)
    return topo, NodeLoads.of([rng.randrange(0, 81) * G // 4 for _ in range(n)], None, [0] * n)


class CountingRows(list):
    """An adjacency that counts its reads: the clique listing's work."""
    reads = 0

    def __getitem__(self, i):
        CountingRows.reads += 1
        return list.__getitem__(self, i)


def test_an_odd_table_of_64_nodes_is_placed_with_bounded_clique_work(monkeypatch):
    topo, loads = odd_host(1)
    real = node_sets.maximal_cliques

    def counting(adjacency, *budget):
        return real(CountingRows(adjacency), *budget)
    monkeypatch.setattr(node_sets, "maximal_cliques", counting)
    monkeypatch.setattr(placement, "maximal_cliques", counting)  # (the planner's own listing, before node_groups)
    CountingRows.reads = 0
    planner = Planner(topo)
    answer = planner.place(loads, Request(8, 300 * G))
    # the max distance the cliques' answer had: listing them read the adjacency 45.6 million times (37 s), the
    # steps a few reads each; now at most CLIQUE_BUDGET steps a threshold (1.3 million reads, 1 s)
    assert planner._distance_key(answer.nodes)[0] == 38
    assert CountingRows.reads < len(planner.thresholds) * CLIQUE_BUDGET * 3
    assert any(not node_groups(planner.sym, t)[1] for t in planner.thresholds)  # (the cover stood in)


def test_the_cover_holds_every_clique_and_fitting_clique_finds_the_heaviest():
    rng = random.Random(3)
    for _ in range(30):
        n = rng.randrange(2, 11)
        d = irregular_table(rng, n, list(range(11, 41)))
        cap = [rng.randrange(0, 5) for _ in range(n)]
        for t in sorted({x for row in d for x in row} - {10}):
            adjacency = [sum(1 << j for j in range(n) if j != i and d[i][j] <= t) for i in range(n)]
            cliques = [set(bits(c)) for c in maximal_cliques(adjacency)]
            cover = [[v] + [u for u in bits(adjacency[v]) if u > v] for v in range(n)]
            assert all(any(c <= set(g) for g in cover) for c in cliques)
            heaviest = max(sum(cap[v] for v in c) for c in cliques)
            for need in range(0, heaviest + 2):
                found = fitting_clique(d, t, cap, [1] * n, need, 1)
                assert (found != []) == (need <= heaviest and any(cap))
                assert all(d[a][b] <= t for a, b in itertools.combinations(found, 2))
                assert not found or sum(cap[v] for v in found) >= need


def cover_only(monkeypatch):
    """The planner as it goes past CLIQUE_BUDGET, at every threshold."""
    real = node_sets.maximal_cliques
    monkeypatch.setattr(node_sets, "maximal_cliques", lambda adjacency, budget=None: None if budget else
                        real(adjacency))


def decision(topo, loads, request):
    made = []

    class Recording(node_sets.SubsetSearch):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)
    placement.SubsetSearch, kept = Recording, placement.SubsetSearch
    try:
        planner = Planner(topo)
        answer = planner.place(loads, request)
        answer = (answer.nodes, answer.memory, answer.reason, planner._distance_key(answer.nodes)[0])
    except Exception as e:  # a refusal must be the same refusal
        answer = repr(e)
    finally:
        placement.SubsetSearch = kept
    return answer, any(s.exhausted for s in made)


@pytest.mark.parametrize("seed", range(120))
def test_the_cover_answers_as_the_cliques_on_seeded_hosts(monkeypatch, seed):
    topo, loads, request = seeded_host(seed)
    planner = Planner(topo)
    assert all(node_groups(planner.sym, t)[1] for t in planner.thresholds)  # (their cliques are listed, as before)
    cliques, cut = decision(topo, loads, request)
    cover_only(monkeypatch)
    covered, cover_cut = decision(topo, loads, request)
    if not cut and not cover_cut:
        assert covered == cliques
    elif not isinstance(cliques, str) and not isinstance(covered, str):
        assert covered[-1] <= cliques[-1]  # (the max distance: fitting_clique decides each threshold)
