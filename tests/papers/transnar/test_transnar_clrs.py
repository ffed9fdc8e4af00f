"""TransNAR's CLRS tasks: generators against Python's own algorithms, the CLRS-Text layout on a
hand-written example, parse(format(x)) == x, and the scores on hand examples."""

from __future__ import annotations

import heapq
from collections import deque

import numpy as np
import pytest

from paperlab.papers.transnar.clrs import (
    ALGORITHMS,
    Instance,
    format_example,
    graph_form,
    parse_example,
    pred_to_order,
    sample,
    sample_many,
    score_answer,
)

SIZES = (2, 4, 7, 12, 16)


def instances(algo: str, count: int = 40):
    rng = np.random.default_rng(123)
    return [sample(algo, SIZES[i % len(SIZES)], rng) for i in range(count)]


def test_insertion_sort_pred_gives_pythons_sorted_order():
    for x in instances("insertion_sort"):
        key = x.inputs["key"]
        order = pred_to_order(x.outputs["pred"])
        assert [key[i] for i in order] == sorted(key)
        assert sorted(order) == list(range(x.n))  # a permutation


def test_minimum_is_pythons_min_first_index():
    for x in instances("minimum"):
        key = x.inputs["key"]
        assert x.outputs["min"] == key.index(min(key))


def _deque_bfs_levels(A, s):
    level = {s: 0}
    queue = deque([s])
    while queue:
        u = queue.popleft()
        for v in range(len(A)):
            if A[u][v] > 0 and v not in level:
                level[v] = level[u] + 1
                queue.append(v)
    return level


def test_bfs_parents_match_a_deque_bfs():
    for x in instances("bfs"):
        A, s, pi = x.inputs["A"], x.inputs["s"], x.outputs["pi"]
        level = _deque_bfs_levels(A, s)
        for v in range(x.n):
            if v == s or v not in level:
                assert pi[v] == v
            else:  # CLRS ties: the lowest-index neighbour one level up
                ups = [u for u in range(x.n) if A[u][v] > 0 and level.get(u) == level[v] - 1]
                assert pi[v] == min(ups)


def _heapq_dijkstra(A, s):
    dist = {s: 0.0}
    heap = [(0.0, s)]
    while heap:
        d, u = heapq.heappop(heap)
        if d > dist[u]:
            continue
        for v in range(len(A)):
            if A[u][v] != 0 and d + A[u][v] < dist.get(v, float("inf")):
                dist[v] = d + A[u][v]
                heapq.heappush(heap, (dist[v], v))
    return dist


def test_dijkstra_parents_form_a_shortest_path_tree_of_heapq_dijkstra():
    for x in instances("dijkstra"):
        A, s, pi = x.inputs["A"], x.inputs["s"], x.outputs["pi"]
        dist = _heapq_dijkstra(A, s)
        for v in range(x.n):
            if v == s or v not in dist:
                assert pi[v] == v
            else:
                assert A[pi[v]][v] != 0
                assert dist[pi[v]] + A[pi[v]][v] == pytest.approx(dist[v], abs=1e-9)


def test_official_layout_on_hand_written_examples():
    x = Instance(
        "insertion_sort", {"key": (0.549, 0.715, 0.603, 0.545, 0.424)}, {"pred": (3, 2, 0, 4, 4)}
    )
    assert format_example(x) == (
        "insertion_sort:\nkey: [0.549 0.715 0.603 0.545 0.424]\npred:\n",
        "[0.424 0.545 0.549 0.603 0.715]\n\n",
    )
    y = Instance(
        "bfs", {"s": 0, "A": ((0.0, 1.0, 0.0), (1.0, 0.0, 1.0), (0.0, 1.0, 1.0))}, {"pi": (0, 0, 1)}
    )
    assert format_example(y) == ("bfs:\ns: 0, A: [[0 1 0], [1 0 1], [0 1 1]]\npi:\n", "[0 0 1]\n\n")
    z = Instance("minimum", {"key": (0.5, 0.04, 0.3)}, {"min": 1})
    assert format_example(z) == ("minimum:\nkey: [0.5 0.04 0.3]\nmin:\n", "1\n\n")


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_text_round_trips(algo: str):
    for x in instances(algo):
        q, a = format_example(x)
        assert parse_example(q, a) == x


def test_graph_form_matches_the_instance():
    x = sample("bfs", 6, np.random.default_rng(0))
    g = graph_form(x)
    A = np.asarray(x.inputs["A"])
    assert g.node.shape == (6, 3) and g.edge.shape == (6, 6, 2)
    assert g.node[:, 2].argmax() == x.inputs["s"] and g.node[:, 2].sum() == 1
    assert np.array_equal(g.adj, ((A + np.eye(6)) != 0).astype(np.float32))
    assert list(g.target) == list(x.outputs["pi"])


def test_sample_many_is_seeded_and_covers_sizes():
    a = sample_many(ALGORITHMS, (4, 8), 40, seed=3)
    assert a == sample_many(ALGORITHMS, (4, 8), 40, seed=3)
    assert a != sample_many(ALGORITHMS, (4, 8), 40, seed=4)
    assert {x.n for x in a} == {4, 8} and {x.algo for x in a} == set(ALGORITHMS)


def test_scores_on_hand_examples():
    t = "[0 0 1 2]\n\n"
    assert score_answer("bfs", t, t) == {"exact": 1.0, "parse": 1.0, "shape": 1.0, "clrs": 1.0}
    s = score_answer("bfs", "[0 1 1 2]\n\n", t)
    assert s["exact"] == 0.0 and s["shape"] == 1.0 and s["clrs"] == 0.75
    s = score_answer("bfs", "[0 0 1]\n\n", t)  # wrong shape: the CLRS score is 0
    assert s == {"exact": 0.0, "parse": 1.0, "shape": 0.0, "clrs": 0.0}
    s = score_answer("bfs", "[0 0 x 2]", t)  # does not parse
    assert s["parse"] == 0.0 and s["shape"] == 0.0
    assert score_answer("minimum", "12\n\n", "12\n\n")["clrs"] == 1.0
    assert score_answer("minimum", "1\n\n", "12\n\n")["clrs"] == 0.0
    sorted_t = "[0.1 0.25 0.9]\n\n"
    assert score_answer("insertion_sort", "[0.1 0.3 0.9]\n\n", sorted_t)["clrs"] == 2 / 3
