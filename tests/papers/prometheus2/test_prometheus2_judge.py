"""The judge and `paperlab prometheus2 grade` end to end over real HTTP: two tiny chat models
trained for a few steps to answer every official prompt with "Ok.[RESULT]3" (absolute,
`stub-abs`) or "Ok.[RESULT]A" (relative, `stub-rel`) when decoding greedily, and a
random-init model whose gibberish never parses (`noise`)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from paperlab.cli import main
from paperlab.core.llama import Llama, LlamaConfig
from paperlab.core.llm.client import LLMClient
from paperlab.core.llm.local import LocalServer
from paperlab.core.llm.tiny import TinyChatConfig, save_chat_model, train_chat_model
from paperlab.papers.prometheus2.judge import (
    PrometheusJudge,
    SamplingConfig,
    summarize_absolute,
    summarize_relative,
)
from paperlab.papers.prometheus2.prompts import Rubric, absolute_messages, relative_messages

RUBRIC = Rubric(
    criteria="Is the answer correct?",
    score_descriptions=("wrong", "mostly wrong", "half right", "nearly right", "exact"),
)
RUBRIC_FIELDS = {
    "criteria": RUBRIC.criteria,
    **{f"score{i}_description": d for i, d in enumerate(RUBRIC.score_descriptions, 1)},
}
GREEDY = SamplingConfig(temperature=0.0, max_tokens=24, parse_retries=1)


def _abs_example(rng: random.Random):
    a, b = rng.randint(1, 99), rng.randint(1, 99)
    ref = str(a + b) if rng.random() < 0.5 else None
    msgs = absolute_messages(f"What is {a}+{b}?", str(a + b + rng.randint(-3, 3)), RUBRIC, ref)
    return msgs, "Ok.[RESULT]3"


def _rel_example(rng: random.Random):
    a, b = rng.randint(1, 99), rng.randint(1, 99)
    x, y = str(a + b), str(a + b + rng.randint(1, 5))
    if rng.random() < 0.5:
        x, y = y, x
    return relative_messages(f"What is {a}+{b}?", x, y, RUBRIC), "Ok.[RESULT]A"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("prometheus2-graders")
    cfg = TinyChatConfig(
        dim=32, n_layers=1, n_heads=2, max_seq_len=1536, steps=60, batch_size=2, lr=2e-2, warmup=5
    )
    dirs = [
        save_chat_model(train_chat_model([(example, 1.0)], cfg, seed=0), root / name, name)
        for name, example in (("stub-abs", _abs_example), ("stub-rel", _rel_example))
    ]
    torch.manual_seed(0)
    noise = Llama(
        LlamaConfig(vocab_size=259, dim=32, n_layers=1, n_heads=2, max_seq_len=2048, multiple_of=32)
    )
    dirs.append(save_chat_model(noise, root / "noise", "noise"))
    with LocalServer(dirs) as srv:
        srv.model_dirs = dirs  # for the in-process client's comparison
        yield srv


def _judge(server, model, sampling=GREEDY, **kw) -> PrometheusJudge:
    return PrometheusJudge(client=LLMClient(server.config()), model=model, sampling=sampling, **kw)


def test_absolute_grade_single_and_batch(server):
    judge = _judge(server, "stub-abs")
    g = judge.client.run(judge.absolute_grade("What is 2+2?", "5", RUBRIC, reference_answer="4"))
    assert (g.feedback, g.score, g.parsed) == ("Ok.", 3, True)
    assert g.record()["score"] == 3 and g.record()["attempts"] == [1]
    grades = judge.client.run(
        judge.absolute_grade_batch(
            instructions=["What is 1+1?", "What is 3+4?", "What is 9+9?"],
            responses=["2", "8", "18"],
            rubric=RUBRIC,
            reference_answers=["2", None, "18"],
        )
    )
    assert [x.score for x in grades] == [3, 3, 3]
    assert summarize_absolute(grades)["parse_failure_rate"] == 0.0


def test_relative_grade_reports_position_inconsistency(server):
    judge = _judge(server, "stub-rel")
    p = judge.client.run(judge.relative_grade("What is 2+2?", "4", "5", RUBRIC))
    # the stub always says A: A/B picks the first response, B/A picks the second
    assert (p.winner, p.swapped_winner, p.consistent) == ("A", "B", False)
    assert p.record()["consistent"] is False and len(p.record()["attempts"]) == 2
    judge.position_swap = False
    q = judge.client.run(judge.relative_grade("What is 2+2?", "4", "5", RUBRIC))
    assert q.consistent is None and "consistent" not in q.record()
    pairs = judge.client.run(
        _judge(server, "stub-rel").relative_grade_batch(
            instructions=["Q1", "Q2"], responses_a=["a", "b"], responses_b=["c", "d"], rubric="r"
        )
    )
    stats = summarize_relative(pairs)
    assert stats["position_consistency"] == 0.0 and stats["swapped_pairs"] == 2.0


def test_unparseable_outputs_are_regenerated_then_none(server):
    sampling = SamplingConfig(max_tokens=12, parse_retries=2)
    judge = _judge(server, "noise", sampling=sampling, seed=5)
    g = judge.client.run(judge.absolute_grade("What is 2+2?", "5", RUBRIC))
    assert g.score is None and g.feedback is None and g.completion.attempts == 3
    assert summarize_absolute([g])["parse_failure_rate"] == 1.0
    # seeded: the same request gives the same outputs
    h = _judge(server, "noise", sampling=sampling, seed=5)
    again = h.client.run(h.absolute_grade("What is 2+2?", "5", RUBRIC))
    assert again.completion.text == g.completion.text


def test_judge_bad_arguments(server):
    with pytest.raises(Exception, match="no model named"):
        _judge(server, "missing")
    with pytest.raises(ValueError, match="top_p"):
        SamplingConfig(top_p=0.0)
    judge = _judge(server, "stub-abs")
    with pytest.raises(ValueError, match="differ in length"):
        judge.client.run(
            judge.absolute_grade_batch(instructions=["a"], responses=["b", "c"], rubric=RUBRIC)
        )
    with pytest.raises(ValueError, match="reference_answers"):
        judge.client.run(
            judge.absolute_grade_batch(
                instructions=["a"], responses=["b"], rubric=RUBRIC, reference_answers="x"
            )
        )


def test_official_defaults_and_the_repetition_penalty_is_sent(server):
    s = SamplingConfig()
    assert (s.temperature, s.top_p, s.max_tokens, s.repetition_penalty, s.parse_retries) == (
        1.0,
        0.9,
        1024,
        1.03,
        10,
    )
    # the penalty goes to the server as a body field (vLLM reads it; paperlab serve counts it)
    judge = PrometheusJudge(
        client=LLMClient(server.config()), model="stub-abs", sampling=replace(s, max_tokens=8)
    )
    before = server.stats().get("ignored:repetition_penalty", 0)
    judge.client.run(judge.absolute_grade("What is 2+2?", "4", RUBRIC, reference_answer="4"))
    assert server.stats().get("ignored:repetition_penalty", 0) > before


# -- the CLI ------------------------------------------------------------------------------------


@pytest.fixture
def config_file(tmp_path, server):
    path = tmp_path / "paperlab.toml"
    path.write_text(
        f'[defaults]\nbase_url = "{server.base_url}"\nprice_input_per_1k = 0.01\n'
        '[models.stub-abs]\nmodel = "stub-abs"\n'
        '[models.stub-rel]\nmodel = "stub-rel"\n'
        '[models.noise]\nmodel = "noise"\n'
    )
    return path


def _write(path, items):
    path.write_text("".join(json.dumps(x) + "\n" for x in items))
    return path


ABS_ITEMS = [
    {
        "id": "a",
        "instruction": "What is 2+2?",
        "response": "4",
        "rubric": RUBRIC_FIELDS,
        "label": 5,
    },
    {
        "instruction": "What is 3+3?",
        "response": "7",
        **RUBRIC_FIELDS,
        "reference_answer": "6",
        "label": 4,
    },
    {"instruction": "What is 5+5?", "response": "x", "rubric": RUBRIC.render(), "label": 1},
]
REL_ITEMS = [
    {
        "instruction": "2+2?",
        "response_a": "4",
        "response_b": "5",
        "rubric": RUBRIC_FIELDS,
        "label": "A",
    },
    {
        "instruction": "3+3?",
        "response_A": "7",
        "response_B": "6",
        "criteria": "Correct?",
        **{f"score{i}_description": "d" for i in range(1, 6)},
        "label": "B",
    },
]


def test_cli_grade_absolute_end_to_end_and_resume(tmp_path, config_file):
    items = _write(tmp_path / "items.jsonl", ABS_ITEMS)
    argv = [
        "prometheus2",
        "grade",
        items,
        "--mode",
        "absolute",
        "--model",
        "stub-abs",
        "--config",
        config_file,
        "--no-cache",
        "--temperature",
        "0",
        "--max-tokens",
        "24",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "paperlab", *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "items.prometheus-absolute.jsonl"
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(str(r["id"]) for r in records) == ["2", "3", "a"]
    assert all(r["score"] == 3 and r["feedback"] == "Ok." for r in records)
    assert {r["id"]: r["label"] for r in records} == {"a": 5, 2: 4, 3: 1}
    assert "parse failures: 0" in proc.stdout and "pearson" in proc.stdout
    assert "cost of this run: 3 calls" in proc.stdout
    # resume: nothing left to do, nothing appended
    assert main([*map(str, argv), "--resume", "--no-progress"]) == 0
    assert len(out.read_text().splitlines()) == 3


def test_cli_grade_relative_reports_consistency(tmp_path, config_file, capsys):
    items = _write(tmp_path / "pairs.jsonl", REL_ITEMS)
    out = tmp_path / "graded.jsonl"
    code = main(
        [
            "prometheus2",
            "grade",
            str(items),
            "--mode",
            "relative",
            "--model",
            "stub-rel",
            "--config",
            str(config_file),
            "--out",
            str(out),
            "--no-cache",
            "--no-progress",
            "--temperature",
            "0",
            "--max-tokens",
            "24",
        ]
    )
    assert code == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(r["winner"] == "A" and r["consistent"] is False for r in records)
    text = capsys.readouterr().out
    assert "accuracy against the labels (2 pairs): 0.500" in text
    assert "position consistency (A/B vs B/A, 2 pairs): 0.000" in text


def test_cli_counts_parse_failures(tmp_path, config_file, capsys):
    items = _write(tmp_path / "items.jsonl", ABS_ITEMS[:2])
    out = tmp_path / "o.jsonl"
    code = main(
        [
            "prometheus2",
            "grade",
            str(items),
            "--mode",
            "absolute",
            "--model",
            "noise",
            "--config",
            str(config_file),
            "--out",
            str(out),
            "--no-cache",
            "--no-progress",
            "--max-tokens",
            "8",
            "--parse-retries",
            "1",
        ]
    )
    assert code == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["score"] for r in records] == [None, None]
    assert all(r["attempts"] == [2] for r in records)
    assert "parse failures: 2" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("mode", "item", "match"),
    [
        (
            "absolute",
            {
                "instruction": "q",
                "response": "r",
                "criteria": "c",
                **{f"score{i}_description": "d" for i in range(1, 5)},
            },
            "score5_description",
        ),
        ("absolute", {"instruction": "q", "rubric": "r"}, "'response'"),
        ("absolute", {"response": "r", "rubric": "r"}, "'instruction'"),
        ("absolute", {"instruction": "q", "response": "r"}, "rubric"),
        ("absolute", {"instruction": "q", "response": "r", "rubric": "r", "label": "x"}, "label"),
        ("relative", {"instruction": "q", "response_a": "r", "rubric": "r"}, "'response_b'"),
        (
            "relative",
            {"instruction": "q", "response_a": "r", "response_b": "s", "rubric": "r", "label": "C"},
            "label",
        ),
    ],
)
def test_cli_bad_input_exit_2_nothing_written(tmp_path, config_file, capsys, mode, item, match):
    items = _write(
        tmp_path / "items.jsonl", [ABS_ITEMS[0] if mode == "absolute" else REL_ITEMS[0], item]
    )
    code = main(
        [
            "prometheus2",
            "grade",
            str(items),
            "--mode",
            mode,
            "--model",
            "stub-abs",
            "--config",
            str(config_file),
            "--no-cache",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and match in err and "items.jsonl:2" in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items.jsonl", "paperlab.toml"]


def test_cli_unknown_model_exit_2_nothing_written(tmp_path, config_file, capsys):
    items = _write(tmp_path / "items.jsonl", ABS_ITEMS)
    code = main(
        [
            "prometheus2",
            "grade",
            str(items),
            "--mode",
            "absolute",
            "--model",
            "gpt-9",
            "--config",
            str(config_file),
            "--no-cache",
        ]
    )
    assert code == 2 and "gpt-9" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items.jsonl", "paperlab.toml"]


def test_in_process_client_grades_as_the_server_does(server):
    """The miniature grades through `InProcessClient` (batched, in this process): the same
    requests and seeds give the same outputs as `paperlab serve`, under the official sampling."""
    from paperlab.core.llm.tiny import load_chat_model
    from paperlab.papers.prometheus2.inprocess import InProcessClient

    models = {d.name: load_chat_model(d)[0] for d in server.model_dirs}
    sampling = SamplingConfig(temperature=1.0, top_p=0.9, max_tokens=16, parse_retries=1)
    grades = []
    for client in (LLMClient(server.config()), InProcessClient(models)):
        judge = PrometheusJudge(client=client, model="stub-abs", sampling=sampling, seed=3)
        batch = judge.absolute_grade_batch(
            instructions=["What is 2+2?", "What is 30+4?", "What is 7+8?"],
            responses=["4", "35", "14"],
            rubric=RUBRIC,
            reference_answers=["4", None, "15"],
        )
        grades.append(
            [(g.completion.text, g.score, g.completion.attempts) for g in client.run(batch)]
        )
    assert grades[0] == grades[1]
