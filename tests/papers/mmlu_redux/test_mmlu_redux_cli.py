"""`paperlab mmlu-redux`: load -> corrupt -> detect (heuristic, and a model over `paperlab
serve`, resumable) -> rescore, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paperlab.cli import main
from paperlab.core.llm.local import LocalServer
from paperlab.papers.mmlu_redux import Record, write_records


def clean_file(path: Path, n: int = 30) -> Path:
    records = [
        Record(f"What is {i} + {i}?", [str(2 * i + d) for d in (0, 1, 2, 3)], 0, id=f"q{i}")
        for i in range(n)
    ]
    return write_records(records, path)


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_corrupt_detect_rescore(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    clean = clean_file(tmp_path / "clean.jsonl")
    noisy = tmp_path / "noisy.jsonl"
    assert main(["mmlu-redux", "corrupt", str(clean), "--out", str(noisy), "--seed", "1"]) == 0
    assert len(lines(noisy)) == 30
    flags = tmp_path / "flags.jsonl"
    assert main(["mmlu-redux", "detect", str(noisy), "--heuristic", "--out", str(flags)]) == 0
    out = capsys.readouterr().out
    assert "overall" in out and "wrong_groundtruth" in out
    assert len(lines(flags)) == 30
    answers = tmp_path / "answers.jsonl"
    rows = [{"model": m, "id": r["id"], "answer": 0} for m in ("a", "b") for r in lines(noisy)]
    answers.write_text("\n".join(json.dumps(r) for r in rows))
    assert main(["mmlu-redux", "rescore", str(noisy), "--answers", str(answers)]) == 0
    assert "(all)" in capsys.readouterr().out


def test_train_detector_then_detect_through_paperlab_serve_resumes(tmp_path: Path) -> None:
    directory, noisy = tmp_path / "det", tmp_path / "noisy.jsonl"
    argv = ["mmlu-redux", "train-detector", "--out", str(directory), "--steps", "2"]
    assert main([*argv, "--write-data", str(noisy)]) == 0
    assert noisy.with_suffix(".passages.txt").read_text().startswith("The code of ")
    noisy.write_text("".join(noisy.read_text().splitlines(keepends=True)[:6]))
    flags = tmp_path / "flags.jsonl"
    with LocalServer([directory]) as server:
        config = tmp_path / "paperlab.toml"
        config.write_text(
            f'[models.detector]\nbase_url = "{server.base_url}"\nmodel = "detector"\n'
        )
        argv = ["mmlu-redux", "detect", str(noisy), "--model", "detector", "--prompts", "tiny"]
        argv += ["--config", str(config), "--out", str(flags), "--max-tokens", "4"]
        argv += ["--no-progress", "--no-cache"]
        assert main(argv) == 0
        done = lines(flags)
        assert len(done) == 6 and all("reply" in d for d in done)
        flags.write_text("".join(json.dumps(d) + "\n" for d in done[:4]))
        before = server.stats()["completion_requests"]
        assert main([*argv, "--resume"]) == 0
        assert server.stats()["completion_requests"] - before == 2
        assert len(lines(flags)) == 6


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["corrupt", "{clean}", "--out", "{out}", "--rates", "wrong_groundtruth=2"], "--rates"),
        (["corrupt", "{clean}", "--out", "{out}", "--rates", "typo=0.1"], "unknown error type"),
        (["detect", "{clean}", "--out", "{out}"], "--model"),
        (
            ["detect", "{clean}", "--out", "{out}", "--heuristic", "--concurrency", "0"],
            "concurrency",
        ),
        (["detect", "{missing}", "--out", "{out}", "--heuristic"], "no such file"),
        (["rescore", "{clean}", "--answers", "{clean}"], "--answers line 1"),
        (["rescore", "{clean}", "--answers", "{letter_z}"], "not a letter A-J"),
        (["rescore", "{clean}", "--answers", "{index_12}"], "not a letter A-J or 0-9"),
    ],
)
def test_bad_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str], message: str
) -> None:
    clean = clean_file(tmp_path / "clean.jsonl", n=3)
    paths = {"clean": clean, "out": tmp_path / "out.jsonl", "missing": tmp_path / "nope.jsonl"}
    for name, answer in (("letter_z", "Z"), ("index_12", 12)):
        paths[name] = tmp_path / f"{name}.jsonl"
        rows = [{"model": m, "id": "q0", "answer": answer} for m in ("a", "b")]
        paths[name].write_text("".join(json.dumps(r) + "\n" for r in rows))
    argv = [a.format(**paths) for a in argv]
    assert main(["mmlu-redux", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out.jsonl").exists()
