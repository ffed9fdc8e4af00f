"""The graph file: nodes, edges, fallback; bad files are one error line naming the problem."""

from __future__ import annotations

import pytest

from paperlab.papers.octopus_v4 import GraphError, load_graph, parse_graph

GOOD = """
[graph]
fallback = "general"
max_hops = 2

[nodes.math]
model = "math-worker"
token = 4
description = "arithmetic"
examples = ["What is 2+2?"]

[nodes.general]
model = "generalist"
token = 16

[[edges]]
from = "math"
to = "general"
"""


def test_a_graph_file_reads(tmp_path):
    path = tmp_path / "graph.toml"
    path.write_text(GOOD)
    g = load_graph(path)
    assert set(g.nodes) == {"math", "general"} and g.fallback == "general" and g.max_hops == 2
    assert g.nodes["math"].token == 4 and g.nodes["math"].domain == "math"
    assert g.by_token(16).name == "general" and g.by_token(3) is None
    assert g.neighbours("math") == ["general"] and g.neighbours("general") == []
    assert g.n_functional == 17


def test_tokens_default_to_the_official_table_then_17_up():
    nodes = {"a": {"model": "x"}, "math": {"model": "m"}, "b": {"model": "y"}}
    nodes["h"] = {"model": "z", "domain": "history"}
    g = parse_graph({"graph": {"fallback": "b"}, "nodes": nodes})
    assert [g.nodes[n].token for n in ("a", "math", "b", "h")] == [17, 4, 18, 6]
    assert g.nodes["math"].description.startswith("mathematics") and g.max_hops == 1


def _bad(data):
    with pytest.raises(GraphError) as e:
        parse_graph(data, "g.toml")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("g.toml")
    return msg


NODES = {"a": {"model": "x"}, "b": {"model": "y"}}


def test_dangling_edge_is_named():
    msg = _bad({"graph": {"fallback": "a"}, "nodes": NODES, "edges": [{"from": "a", "to": "c"}]})
    assert "dangling" in msg and "'c'" in msg


def test_no_fallback_is_named():
    assert "no fallback" in _bad({"graph": {}, "nodes": NODES})
    assert "no [graph] table" in _bad({"nodes": NODES})
    assert "fallback 'zz' is not a node" in _bad({"graph": {"fallback": "zz"}, "nodes": NODES})


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"graph": {"fallback": "a"}, "nodes": {}}, "no nodes"),
        ({"graph": {"fallback": "a"}, "nodes": {"a": {}}}, "needs model"),
        ({"graph": {"fallback": "a"}, "nodes": {"a": {"model": "x", "colour": 1}}}, "colour"),
        ({"graph": {"fallback": "a", "hops": 2}, "nodes": NODES}, "unknown key 'hops'"),
        ({"graph": {"fallback": "a", "max_hops": 0}, "nodes": NODES}, "max_hops"),
        ({"graph": {"fallback": "a"}, "nodes": {"a": {"model": "x", "token": -1}}}, "token"),
        (
            {
                "graph": {"fallback": "a"},
                "nodes": {"a": {"model": "x"}, "b": {"model": "y", "token": 17}},
            },
            "share the functional token <nexa_17>",
        ),
        ({"graph": {"fallback": "a"}, "nodes": NODES, "edges": [{"from": "a"}]}, "edge 1"),
        (
            {"graph": {"fallback": "a"}, "nodes": {"a": {"model": "x", "examples": "hi"}}},
            "examples",
        ),
    ],
)
def test_malformed_graphs_are_one_line(data, needle):
    assert needle in _bad(data)


def test_missing_or_broken_files(tmp_path):
    with pytest.raises(GraphError, match="no such file"):
        load_graph(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[graph\n")
    with pytest.raises(GraphError, match="not valid TOML"):
        load_graph(bad)
