"""`paperlab crag make-world | run | score` end to end over real HTTP: stub chat models behind
`paperlab serve`, the mock API in a thread, MiniLM retrieval; resumability; an unreachable API
or LLM is one line and keeps the finished predictions."""

from __future__ import annotations

import json
import random

import pytest

from paperlab.cli import main
from paperlab.core.llm.local import LocalServer
from paperlab.core.llm.tiny import TinyChatConfig, save_chat_model, train_chat_model
from paperlab.papers.crag import (
    answer_messages,
    judge_messages,
    load_crag,
    make_questions,
    make_world,
    serve_api,
)


def _constant(reply: str, judge: bool):
    """Examples with the prompts the stub will see (a reader's or a judge's), one reply."""

    records = make_questions(make_world(3, seed=5), 40, seed=5)

    def example(rng: random.Random):
        n = rng.randint(1, 99)
        if judge:
            r = rng.choice(records)
            return judge_messages(r["query"], r["answer"], "41", style="mini"), reply
        refs = [f"the eps of k{n} is {n}."] * rng.randint(0, 5)
        return answer_messages(f"what is the eps of k{n}?", "", refs or None, style="mini"), reply

    return example


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    """A reader that always answers "41" and a judge that always says yes."""
    root = tmp_path_factory.mktemp("crag-stubs")
    cfg = TinyChatConfig(
        dim=32, n_layers=1, n_heads=2, max_seq_len=768, steps=60, batch_size=4, lr=2e-2, warmup=5
    )
    dirs = [
        save_chat_model(train_chat_model([(_constant(r, j), 1.0)], cfg, seed=0), root / n, n)
        for n, r, j in (("reader", "41", False), ("judge", '{"score": 1}', True))
    ]
    with LocalServer(dirs) as server:
        yield server


@pytest.fixture(scope="module")
def world_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("crag-world")
    data, kg = root / "world.jsonl", root / "kg.json"
    assert (
        main(
            [
                "crag",
                "make-world",
                "--out",
                str(data),
                "--kg-out",
                str(kg),
                "--questions",
                "10",
                "--entities",
                "3",
                "--official",
            ]
        )
        == 0
    )
    return data, kg


def _config(tmp_path, base_url: str):
    path = tmp_path / "paperlab.toml"
    path.write_text(
        f'[defaults]\nbase_url = "{base_url}"\nmax_retries = 0\ntimeout = 5\n'
        '[models.reader]\nmodel = "reader"\n[models.judge]\nmodel = "judge"\n'
    )
    return path


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_run_score_round_trip_and_resume(tmp_path, stubs, world_files, capsys):
    data, kg = world_files
    config = _config(tmp_path, stubs.base_url)
    out = tmp_path / "preds.jsonl"
    with serve_api(json.loads(kg.read_text())) as api:
        argv = [
            "crag",
            "run",
            "--system",
            "rag-kg",
            "--data",
            str(data),
            "--model",
            "reader",
            "--config",
            str(config),
            "--out",
            str(out),
            "--api-url",
            api.url,
            "--k",
            "3",
            "--style",
            "mini",
            "--max-tokens",
            "4",
            "--no-cache",
            "--no-progress",
        ]
        assert main(argv) == 0
        preds = _lines(out)
        assert len(preds) == 10 and {p["prediction"] for p in preds} == {"41"}
        # a stopped run: drop the last three answers, resume
        out.write_text("".join(json.dumps(p) + "\n" for p in preds[:7]))
        before = stubs.stats()["completion_requests"]
        assert main([*argv, "--resume"]) == 0
        assert stubs.stats()["completion_requests"] - before == 3
        assert len(_lines(out)) == 10
        assert main(argv) == 2  # exists, no --resume
        assert "--resume" in capsys.readouterr().err
    capsys.readouterr()
    scored = tmp_path / "scored.jsonl"
    argv = [
        "crag",
        "score",
        "--data",
        str(data),
        "--predictions",
        str(out),
        "--judge",
        "judge",
        "--config",
        str(config),
        "--style",
        "mini",
        "--out",
        str(scored),
        "--json",
    ]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    records = load_crag(data)
    exact = sum(r["answer"] == "41" for r in records)
    invalid = sum(r["answer"] == "invalid question" for r in records)
    # the stub judge says yes to every non-exact answer, except where a rule decides first
    assert report["all"]["accuracy"] == pytest.approx((len(records) - invalid) / 10)
    assert report["all"]["n"] == 10 and exact <= 10
    assert set(report) == {"all", "domain", "question_type", "static_or_dynamic", "popularity"}
    assert len(_lines(scored)) == 10


def test_unreachable_api_is_one_line_and_keeps_finished(tmp_path, stubs, world_files, capsys):
    data, _ = world_files
    config = _config(tmp_path, stubs.base_url)
    out = tmp_path / "preds.jsonl"
    first = load_crag(data)[0]["interaction_id"]
    out.write_text(json.dumps({"interaction_id": first, "prediction": "41"}) + "\n")
    argv = [
        "crag",
        "run",
        "--system",
        "rag-kg",
        "--data",
        str(data),
        "--model",
        "reader",
        "--config",
        str(config),
        "--out",
        str(out),
        "--api-url",
        "http://127.0.0.1:9",
        "--resume",
        "--no-cache",
        "--no-progress",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "unreachable" in err and len(err.strip().splitlines()) == 1
    assert [p["interaction_id"] for p in _lines(out)] == [first]


def test_unreachable_llm_is_one_line_and_keeps_finished(tmp_path, world_files, capsys):
    data, _ = world_files
    config = _config(tmp_path, "http://127.0.0.1:9/v1")
    out = tmp_path / "preds.jsonl"
    first = load_crag(data)[0]["interaction_id"]
    out.write_text(json.dumps({"interaction_id": first, "prediction": "41"}) + "\n")
    argv = [
        "crag",
        "run",
        "--system",
        "llm-only",
        "--data",
        str(data),
        "--model",
        "reader",
        "--config",
        str(config),
        "--out",
        str(out),
        "--resume",
        "--no-cache",
        "--no-progress",
        "--batch",
        "4",
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "unreachable" in err and len(err.strip().splitlines()) == 1
    assert [p["interaction_id"] for p in _lines(out)] == [first]


def test_bad_input_is_one_line(tmp_path, world_files, capsys):
    data, _ = world_files
    bad = tmp_path / "bad.jsonl"
    bad.write_text(data.read_text().splitlines()[0] + "\n{oops\n")
    assert main(["crag", "score", "--data", str(bad), "--predictions", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: not valid JSON" in err and len(err.strip().splitlines()) == 1
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"interaction_id": "x", "prediction": 3}\n')
    assert main(["crag", "score", "--data", str(data), "--predictions", str(preds)]) == 2
    assert "field 'prediction'" in capsys.readouterr().err
