"""PoLL end to end: a panel of random-init tiny judges served over real HTTP, and the CLI."""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import pytest
import torch

from paperlab.claims import UserError
from paperlab.core.llama import Llama, LlamaConfig
from paperlab.core.llm.client import Completion, LLMClient
from paperlab.core.llm.config import LLMConfig, ModelSpec
from paperlab.core.llm.local import LocalServer
from paperlab.core.llm.tiny import save_chat_model
from paperlab.papers.poll import cli
from paperlab.papers.poll.poll import PanelOfJudges, average_pool

JUDGES = ["j0", "j1", "j2"]
ITEMS = [
    {
        "id": "q1",
        "question": "2+2?",
        "answer": "4",
        "reference": "4",
        "label": True,
        "system": "alpha",
    },
    {
        "id": "q2",
        "question": "3+3?",
        "answer": "7",
        "reference": "6",
        "label": False,
        "system": "alpha",
    },
    {
        "id": "q3",
        "question": "Capital of France?",
        "answer": "Paris",
        "reference": "Paris",
        "label": True,
        "system": "beta",
    },
    {"question": "1+1?", "answer": "3", "label": False, "system": "beta"},
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("judges")
    dirs = []
    for seed, name in enumerate(JUDGES):
        torch.manual_seed(seed)
        model = Llama(
            LlamaConfig(
                vocab_size=259, dim=32, n_layers=1, n_heads=2, max_seq_len=384, multiple_of=32
            )
        )
        dirs.append(save_chat_model(model, root / name, name))
    with LocalServer(dirs) as srv:
        yield srv


@pytest.fixture
def inputs(tmp_path):
    path = tmp_path / "answers.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in ITEMS))
    return path


@pytest.fixture
def config_file(tmp_path, server):
    lines = [f'[defaults]\nbase_url = "{server.base_url}"\nmax_concurrency = 4\n']
    for name in JUDGES:
        lines.append(f'[models.{name}]\nmodel = "{name}"\nprice_input_per_1k = 0.01\n')
    path = tmp_path / "paperlab.toml"
    path.write_text("\n".join(lines))
    return path


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="paperlab")
    cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_panel_over_http_random_judges_abstain(server):
    client = LLMClient(server.config())  # no cache: every attempt reaches the server
    panel = PanelOfJudges(client, JUDGES, parse_retries=2)

    async def go():
        try:
            return await asyncio.gather(
                *(
                    panel.judge_qa(it["question"], it["answer"], it.get("reference"))
                    for it in ITEMS[:2]
                ),
                panel.score("2+2?", "4"),
            )
        finally:
            await client.aclose()

    v1, v2, scored = asyncio.run(go())
    for v in (v1, v2):
        # random weights never say exactly one of True/False: each judge is asked 1 + 2
        # times, then abstains; the panel has no majority to report
        assert v.votes == {j: None for j in JUDGES}
        assert v.verdict is None
        assert {j: c.attempts for j, c in v.completions.items()} == {j: 3 for j in JUDGES}
        assert v.record()["attempts"] == {j: 3 for j in JUDGES}
    assert set(scored.scores) == set(JUDGES)
    assert all(s is None or 1 <= s <= 5 for s in scored.scores.values())
    assert scored.mean == average_pool(list(scored.scores.values()))
    usage = client.usage.models
    assert all(usage[j].calls >= 6 + 1 and usage[j].cached == 0 for j in JUDGES)


class FakeClient:
    """Answers from a table, to check the pooling wiring without a model."""

    def __init__(self, replies: dict[str, str]):
        self.replies = replies
        spec = {"base_url": "http://127.0.0.1:9/v1"}
        self.config = LLMConfig({j: ModelSpec(name=j, model=j, **spec) for j in replies})
        self.calls: list[str] = []

    async def chat(self, model, messages, *, temperature, max_tokens, parse, parse_retries):
        self.calls.append(model)
        text = self.replies[model]
        return Completion(text, model, cost=0.5, parsed=parse(text))


def test_panel_pools_parsed_votes_and_scores():
    client = FakeClient({"a": "**True**", "b": "Verdict: false", "c": "True."})
    panel = PanelOfJudges(client, ["a", "b", "c"])
    v = asyncio.run(panel.judge_qa("q", "a", "ref"))
    assert v.votes == {"a": True, "b": False, "c": True} and v.verdict is True
    assert v.cost == 1.5 and v.record()["costs"] == {"a": 0.5, "b": 0.5, "c": 0.5}
    client = FakeClient({"a": "4", "b": "Score: 2", "c": "9"})
    s = asyncio.run(PanelOfJudges(client, ["a", "b", "c"]).score("q", "a"))
    assert s.scores == {"a": 4, "b": 2, "c": None} and s.mean == 3.0
    with pytest.raises(ValueError):
        PanelOfJudges(client, [])
    with pytest.raises(ValueError):
        PanelOfJudges(client, ["a", "a"])
    with pytest.raises(UserError, match="no model named 'zz'"):
        PanelOfJudges(client, ["a", "zz"])
    raw = ModelSpec(name="r", model="r", base_url="http://h/v1", capabilities=("raw_completion",))
    client.config.models["r"] = raw
    with pytest.raises(UserError, match="capability 'chat'"):
        PanelOfJudges(client, ["a", "r"])


def test_cli_judge_end_to_end_and_resume(inputs, config_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PAPERLAB_CACHE_DIR", str(tmp_path / "cache"))
    argv = [
        "poll",
        "judge",
        str(inputs),
        "--jury",
        "j0,j1,j2",
        "--config",
        str(config_file),
        "--no-progress",
    ]
    start = time.perf_counter()
    assert cli.run(parse_args(argv)) == 0
    first = time.perf_counter() - start
    out = tmp_path / "answers.poll.jsonl"  # the default output, beside the input
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(str(r["id"]) for r in records) == ["4", "q1", "q2", "q3"]
    for r in records:
        assert set(r["votes"]) == set(JUDGES) and r["verdict"] is None
        assert r["attempts"] == {j: 3 for j in JUDGES} and r["cost"] > 0
        assert r["system"] in ("alpha", "beta") and isinstance(r["label"], bool)
    text = capsys.readouterr().out
    assert "judged 4 items now" in text
    assert "agreement with the labels (4 labelled items)" in text
    assert "per system (fraction judged correct; abstentions skipped)" in text
    assert "system ranking vs the labels' ranking" in text
    # every verdict is None: no agreement with any label (accuracy 0, kappa 0, 4 unparsed)
    assert "panel  0.000     0.000  4" in text

    # resume: nothing left to do, the file is unchanged
    assert cli.run(parse_args([*argv, "--resume"])) == 0
    assert "judged 0 items now (4 in" in capsys.readouterr().out
    assert [json.loads(line) for line in out.read_text().splitlines()] == records
    # without --resume an existing output is an error
    with pytest.raises(UserError, match="exists"):
        cli.run(parse_args(argv))
    # another output, same requests: every call comes from the cache, for free
    again = tmp_path / "again.jsonl"
    assert cli.run(parse_args([*argv, "--out", str(again)])) == 0
    text = capsys.readouterr().out
    assert "panel  0      36      0.0000" in text
    assert [json.loads(line)["votes"] for line in again.read_text().splitlines()]
    assert first < 15


def test_cli_score_mode_without_cache(inputs, config_file, tmp_path, capsys):
    items = [{**it, "label": i + 1} for i, it in enumerate(ITEMS)]
    inputs.write_text("".join(json.dumps(it) + "\n" for it in items))
    argv = [
        "poll",
        "judge",
        str(inputs),
        "--jury",
        "j0,j2",
        "--config",
        str(config_file),
        "--mode",
        "score",
        "--no-cache",
        "--no-progress",
        "--concurrency",
        "2",
    ]
    assert cli.run(parse_args(argv)) == 0
    records = [
        json.loads(line)
        for line in (tmp_path / "answers.poll-score.jsonl").read_text().splitlines()
    ]
    assert len(records) == 4 and all(set(r["scores"]) == {"j0", "j2"} for r in records)
    assert "per system (mean score; abstentions skipped)" in capsys.readouterr().out
    # resuming the score run with another jury would mix two juries in one file
    with pytest.raises(UserError, match="another jury or mode"):
        cli.run(parse_args([*argv[:4], "j0,j1", *argv[5:], "--resume"]))


def test_cli_unknown_judge_is_a_user_error(inputs, config_file, tmp_path):
    argv = [
        "poll",
        "judge",
        str(inputs),
        "--jury",
        "j0,nope",
        "--config",
        str(config_file),
        "--no-cache",
    ]
    with pytest.raises(UserError, match="no model named 'nope'"):
        cli.run(parse_args(argv))
    assert not (tmp_path / "answers.poll.jsonl").exists()  # nothing written


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"question": "q"}, r"answers.jsonl:3: missing required field 'answer'"),
        ({"question": "q", "answer": 3}, r"answers.jsonl:3: field 'answer' must be a string"),
        ({"question": "q", "answer": "a", "label": "yes"}, r":3: field 'label' must be true"),
    ],
)
def test_cli_bad_input_names_file_and_line(tmp_path, config_file, line, message):
    path = tmp_path / "answers.jsonl"
    path.write_text(json.dumps(ITEMS[0]) + "\n\n" + json.dumps(line) + "\n")
    argv = ["poll", "judge", str(path), "--jury", "j0", "--config", str(config_file), "--no-cache"]
    with pytest.raises(UserError, match=message):
        cli.run(parse_args(argv))


def test_cli_jury_from_config_and_bad_jury(inputs, config_file, tmp_path):
    config_file.write_text(config_file.read_text() + '\n[poll]\njury = ["j0", "j0"]\n')
    argv = ["poll", "judge", str(inputs), "--config", str(config_file), "--no-cache"]
    with pytest.raises(UserError, match="more than once"):
        cli.run(parse_args(argv))
    with pytest.raises(UserError, match="names no judges"):
        cli.run(parse_args([*argv, "--jury", " , "]))
