"""Dispatch through the graph over real HTTP (`paperlab serve`, the official `openai` client):
stub models trained to one constant reply play the router and the workers."""

from __future__ import annotations

import json
import random

import pytest

from paperlab.cli import main
from paperlab.core.llm.client import LLMClient
from paperlab.core.llm.local import LocalServer
from paperlab.core.llm.tiny import TinyChatConfig, save_chat_model, train_chat_model
from paperlab.papers.octopus_v4 import (
    GraphOfModels,
    HopLog,
    PromptedRouter,
    Route,
    parse_graph,
)

STUBS = {
    "router": "<nexa_0>('what's up?')<nexa_end>",  # an apostrophe inside, as users write
    "lost-router": "I do not know",
    "handover": "<nexa_1>('please take it')<nexa_end>",
    "answerer": "42",
}


def _constant(reply: str):
    def example(rng: random.Random):
        words = "".join(rng.choices("abc xyz'?", k=rng.randint(1, 30)))
        system = [{"role": "system", "content": "Route:"}] if rng.random() < 0.5 else []
        return [*system, {"role": "user", "content": words}], reply

    return example


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("octopus-stubs")
    cfg = TinyChatConfig(
        dim=32, n_layers=1, n_heads=2, max_seq_len=256, steps=80, batch_size=8, lr=2e-2, warmup=5
    )
    dirs = [
        save_chat_model(train_chat_model([(_constant(r), 1.0)], cfg, seed=0), root / n, n)
        for n, r in STUBS.items()
    ]
    with LocalServer(dirs) as s:
        yield s


def _graph(edges=(("handover", "answerer"),), max_hops=2):
    return parse_graph(
        {
            "graph": {"fallback": "answerer", "max_hops": max_hops},
            "nodes": {
                "handover": {"model": "handover", "token": 0},
                "answerer": {"model": "answerer", "token": 1},
            },
            "edges": [{"from": a, "to": b} for a, b in edges],
        }
    )


def _ask(server, graph, router_model="router", **kw):
    client = LLMClient(server.config())
    router = PromptedRouter(client, router_model, system_prompt="Route:", max_tokens=64)
    system = GraphOfModels(graph, client, router, max_tokens=48, **kw)
    return client.run(system.ask("hi there", query_id=7))


def test_stubs_say_their_line(server):
    client = LLMClient(server.config())
    for name, reply in STUBS.items():
        out = client.run(client.chat(name, [{"role": "user", "content": "abc"}], temperature=0))
        assert out.text == reply


def test_a_worker_hands_over_to_its_neighbour_and_every_hop_is_logged(server, tmp_path):
    with HopLog(tmp_path / "hops.jsonl") as log:
        answer = _ask(server, _graph(), log=log)
    assert answer.answer == "42" and answer.routed_to == "handover" and answer.node == "answerer"
    assert [h.node for h in answer.hops] == ["router", "handover", "answerer"]
    assert answer.hops[1].query == "what's up?"  # the router's reformulation, apostrophe kept
    assert answer.hops[2].query == "please take it" and "hands over" in answer.hops[1].note
    lines = [json.loads(x) for x in (tmp_path / "hops.jsonl").read_text().splitlines()]
    assert [(x["query_id"], x["hop"], x["node"]) for x in lines] == [
        (7, 0, "router"),
        (7, 1, "handover"),
        (7, 2, "answerer"),
    ]


def test_no_edge_or_no_hops_left_keeps_the_answer(server):
    answer = _ask(server, _graph(edges=()))
    assert answer.node == "handover" and "not a neighbour" in answer.hops[-1].note
    answer = _ask(server, _graph(max_hops=1))
    assert answer.node == "handover" and "max_hops=1" in answer.hops[-1].note


def test_no_functional_token_falls_back(server):
    answer = _ask(server, _graph(), router_model="lost-router")
    assert answer.fell_back and answer.routed_to == "answerer" and answer.answer == "42"
    assert "no functional token" in answer.hops[0].note
    assert answer.hops[1].query == "hi there"  # no reformulation: the user's query


def test_a_precomputed_route_skips_the_router(server):
    client = LLMClient(server.config())
    system = GraphOfModels(_graph(), client, None, max_tokens=8)
    route = Route(index=1, query="", output="<nexa_1>")
    answer = client.run(system.ask("q", route=route))
    assert answer.node == "answerer" and answer.hops[1].query == "q"


def _files(tmp_path, server, router_table='family = "prompted"\nmodel = "router"\n'):
    graph = tmp_path / "graph.toml"
    graph.write_text(
        f'[graph]\nfallback = "answerer"\nmax_hops = 2\n[router]\n{router_table}'
        'prompt = "Route:"\nnode_list = false\n'
        f'[defaults]\nbase_url = "{server.base_url}"\nmax_retries = 0\n'
        + "".join(f'[models.{n}]\nmodel = "{n}"\n' for n in STUBS)
        + '[nodes.handover]\nmodel = "handover"\ntoken = 0\n'
        '[nodes.answerer]\nmodel = "answerer"\ntoken = 1\n'
        '[[edges]]\nfrom = "handover"\nto = "answerer"\n'
    )
    return graph


def test_cli_ask_and_resumable_batch(tmp_path, server, capsys):
    graph = _files(tmp_path, server)
    assert main(["octopus", "ask", "hello", "--graph", str(graph), "--no-cache"]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == "42" and "routed to handover (<nexa_0>)" in out.err
    queries = tmp_path / "q.jsonl"
    queries.write_text('{"id": "a", "query": "one"}\n{"id": "b", "query": "two"}\n')
    results, log = tmp_path / "out.jsonl", tmp_path / "hops.jsonl"
    args = ["octopus", "batch", str(queries), "--graph", str(graph), "--out", str(results)]
    args += ["--no-progress", "--no-cache", "--log", str(log)]
    assert main(args) == 0
    rows = [json.loads(x) for x in results.read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == ["a", "b"] and {r["answer"] for r in rows} == {"42"}
    assert len(log.read_text().splitlines()) == 6  # 3 hops per query
    queries.write_text(queries.read_text() + '{"id": "c", "query": "three"}\n')
    assert main([*args, "--resume"]) == 0
    assert "1 answered, 2 already" in capsys.readouterr().err
    assert len(results.read_text().splitlines()) == 3


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda t: t.replace('[graph]\nfallback = "answerer"\n', "[graph]\n"), "no fallback"),
        (lambda t: t.replace('to = "answerer"', 'to = "nowhere"'), "dangling"),
        (lambda t: t.replace('family = "prompted"', 'family = "oracle"'), "unknown router family"),
        (
            lambda t: t.replace('family = "prompted"\nmodel = "router"\n', 'family = "prompted"\n'),
            "needs --router-model",
        ),
        (
            lambda t: t.replace(
                '[nodes.answerer]\nmodel = "answerer"', '[nodes.answerer]\nmodel = "x"'
            ),
            "no model named 'x'",
        ),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, server, capsys, edit, needle):
    graph = _files(tmp_path, server)
    graph.write_text(edit(graph.read_text()))
    out = tmp_path / "out.jsonl"
    queries = tmp_path / "q.jsonl"
    queries.write_text('{"query": "one"}\n')
    code = main(["octopus", "batch", str(queries), "--graph", str(graph), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and len(err.splitlines()) == 1
    assert not out.exists()  # nothing half-written


def test_cli_unknown_router_flag_is_one_line(tmp_path, server, capsys):
    graph = _files(tmp_path, server)
    with pytest.raises(SystemExit) as e:
        main(["octopus", "ask", "hi", "--graph", str(graph), "--router", "oracle"])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err
