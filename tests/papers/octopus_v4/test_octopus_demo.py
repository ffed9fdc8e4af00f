"""`paperlab octopus demo`: a servable miniature graph on disk, nothing half-written."""

from __future__ import annotations

from paperlab.cli import main
from paperlab.core.llm.chat import ChatModelInfo
from paperlab.papers.octopus_v4 import FunctionalTokenRouter, load_graph


def test_demo_writes_a_graph_its_models_and_router(tmp_path, capsys):
    out = tmp_path / "octo"
    args = ["octopus", "demo", "--out", str(out), "--scale", "tiny", "--no-progress"]
    assert main([*args, "--port", "8123"]) == 0
    graph = load_graph(out / "graph.toml")
    assert graph.fallback == "general" and graph.nodes["math"].token == 4
    assert graph.nodes["general"].model == "generalist" and graph.nodes["math"].examples
    assert graph.sections["defaults"]["base_url"] == "http://127.0.0.1:8123/v1"
    for node in graph.nodes.values():
        assert ChatModelInfo.load(out / "models" / node.model).model_id == node.model
    assert FunctionalTokenRouter.load(out / graph.sections["router"]["path"]).tokenizer
    assert not list(tmp_path.glob(".*partial"))
    assert main(args) == 2  # an existing folder is refused
    assert "exists" in capsys.readouterr().err
