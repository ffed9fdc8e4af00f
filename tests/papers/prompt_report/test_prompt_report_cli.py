"""`paperlab prompt-report`: list, render, make-data, bench against `paperlab serve`, and
one-line errors (exit 2) for bad input."""

from __future__ import annotations

import json

import pytest
import torch

from paperlab.cli import main
from paperlab.core.llama import Llama, LlamaConfig
from paperlab.core.llm.local import LocalServer
from paperlab.core.llm.tiny import save_chat_model


def test_list_prints_the_taxonomy(capsys) -> None:
    assert main(["prompt-report", "list"]) == 0
    out = capsys.readouterr().out
    assert "58 techniques in 6 groups" in out and "Ensembling (10)" in out
    assert main(["prompt-report", "list", "--group", "self_criticism", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["self_criticism"]) == 6
    assert main(["prompt-report", "list", "--group", "magic"]) == 2
    assert "--group" in capsys.readouterr().err


def test_render_and_unknown_technique(capsys) -> None:
    assert main(["prompt-report", "render", "zero-shot-cot", "--format", "mmlu"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("--- user ---\n") and "Answer: Let's think step by step." in out
    assert main(["prompt-report", "render", "telepathy"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown technique 'telepathy'" in err[0]


def test_bench_against_paperlab_serve(tmp_path, capsys) -> None:
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=259, dim=32, n_layers=1, n_heads=2, max_seq_len=1024)
    model_dir = save_chat_model(Llama(cfg), tmp_path / "stub", "stub")
    items, pool = tmp_path / "items.jsonl", tmp_path / "pool.jsonl"
    assert (
        main(
            [
                "prompt-report",
                "make-data",
                "--out",
                str(items),
                "--pool-out",
                str(pool),
                "--n",
                "4",
                "--facts",
                "4",
            ]
        )
        == 0
    )
    with items.open("a") as f:  # an item without four options: skipped and counted
        f.write(json.dumps({"question": "q", "options": ["1", "2"], "answer": 0}) + "\n")
    with LocalServer([model_dir]) as server:
        toml = tmp_path / "paperlab.toml"
        toml.write_text(f'[models.stub]\nbase_url = "{server.base_url}"\nmodel = "stub"\n')
        table, records = tmp_path / "table.md", tmp_path / "calls.jsonl"
        common = ["prompt-report", "bench", str(items), "--model", "stub", "--config", str(toml)]
        code = main(
            [
                *common,
                "--pool",
                str(pool),
                "--techniques",
                "zero-shot,few-shot",
                "--shots",
                "2",
                "--selector",
                "random",
                "--max-tokens",
                "4",
                "--no-cache",
                "--no-progress",
                "--out",
                str(table),
                "--records",
                str(records),
                "--plot",
                str(tmp_path / "p.png"),
            ]
        )
        captured = capsys.readouterr()
        assert code == 0, captured.err
        assert "1 skipped" in captured.err and "| few-shot |" in table.read_text()
        lines = [json.loads(x) for x in records.read_text().splitlines()]
        assert len(lines) == 8 and {r["technique"] for r in lines} == {"zero-shot", "few-shot"}
        assert (tmp_path / "p.png").stat().st_size > 0
        # few-shot without a pool, an unknown model: one line, exit 2, nothing written
        assert main([*common, "--techniques", "few-shot"]) == 2
        assert "--pool" in capsys.readouterr().err
        assert (
            main(
                [
                    *common[:3],
                    "--model",
                    "nope",
                    "--config",
                    str(toml),
                    "--techniques",
                    "zero-shot",
                    "--out",
                    str(tmp_path / "t2.md"),
                ]
            )
            == 2
        )
        assert "nope" in capsys.readouterr().err and not (tmp_path / "t2.md").exists()


def test_bad_csv_label_is_one_line(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text('"Q",1,2,3,4,A\n"Q2",1,2,3,4,Z\n')
    code = main(["prompt-report", "render", "zero-shot", "--data", str(bad)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "row 2" in err[0] and "'Z'" in err[0]


@pytest.mark.parametrize("flag", [["--shots", "0"], ["--format", "xml"]])
def test_bad_flags(flag, capsys) -> None:
    assert main(["prompt-report", "render", "few-shot", *flag]) == 2
