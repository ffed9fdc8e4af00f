"""The claim contract: criteria, overrides, result records written atomically."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from paperlab.claims import (
    Result,
    UserError,
    all_of,
    apply_overrides,
    at_least,
    at_most,
    write_text_atomic,
)
from paperlab.runner import latest_results, plan_run, run_plans

REQUIRED = [
    "slug",
    "claim_id",
    "statement",
    "paper_figure",
    "criterion",
    "measured",
    "verdict",
    "reason",
    "scale",
    "seed",
    "device",
    "seconds",
    "paperlab_version",
]


def test_criteria_combinators():
    assert at_least("x", 1.0).judge({"x": 2.0})[0] == "holds"
    assert at_least("x", 1.0).judge({"x": 0.5})[0] == "fails"
    assert at_least("x", 1.0, margin=0.1).judge({"x": 0.95})[0] == "inconclusive"
    assert at_most("x", 1.0).judge({"x": 0.5})[0] == "holds"
    assert at_most("x", 1.0).judge({"x": math.nan})[0] == "inconclusive"
    assert at_most("x", 1.0).judge({})[0] == "inconclusive"  # figure not measured
    both = all_of(at_least("a", 1), at_most("b", 1))
    assert both.judge({"a": 2, "b": 0})[0] == "holds"
    assert both.judge({"a": 2, "b": 3})[0] == "fails"
    assert "a >= 1" in both.text and "b <= 1" in both.text


def test_overrides_are_typed_and_checked(fake_paper):
    cfg = fake_paper.make_config("tiny", {"n": "7", "threshold": "0.5", "crash": "no"})
    assert (cfg.n, cfg.threshold, cfg.crash) == (7, 0.5, False)
    with pytest.raises(UserError, match="unknown --set key 'nn'"):
        apply_overrides(cfg, {"nn": "1"})
    with pytest.raises(UserError, match="expected a value of type int"):
        apply_overrides(cfg, {"n": "seven"})
    with pytest.raises(UserError, match="unknown scale"):
        fake_paper.make_config("huge")


def test_run_writes_complete_results(fake_paper, tmp_path: Path):
    plans = plan_run(["fake"], scale="tiny")
    results, errors, interrupted = run_plans(
        plans, scale="tiny", seed=0, device="cpu", out=tmp_path, progress=False
    )
    assert not errors and not interrupted
    by_id = {r.claim_id: r for r in results}
    assert by_id["mean"].verdict == "holds" and by_id["second"].verdict == "holds"
    assert by_id["skip"].verdict == "skipped" and "llm-endpoint" in by_id["skip"].reason
    files = list(tmp_path.glob("fake/mean/*/result.json"))
    assert len(files) == 1
    data = json.loads(files[0].read_text())
    for key in REQUIRED:
        assert key in data, key
    assert data["seed"] == 0 and data["scale"] == "tiny" and data["config"]["n"] == 50
    assert data["smoke"] is True  # tiny is a smoke scale: marked in result.json
    assert (files[0].parent / "line.png").is_file() and data["artifacts"] == ["line.png"]
    assert not list(tmp_path.rglob(".tmp-*"))


def test_verdict_comes_from_the_measurement(fake_paper, tmp_path: Path):
    """Same claim, a stricter threshold through the config would not change the criterion;
    but a measurement below the fixed threshold must fail: n=1 draws give a spread mean."""
    seen = set()
    for seed in range(12):
        plans = plan_run(["fake"], scale="tiny", overrides=["n=1"], claim_ids=["mean"])
        results, _, _ = run_plans(
            plans, scale="tiny", seed=seed, device="cpu", out=tmp_path, progress=False
        )
        r = results[0]
        assert r.verdict == ("holds" if r.measured["mean"] >= 0.4 else "fails")
        seen.add(r.verdict)
    assert seen == {"holds", "fails"}


def test_same_seed_same_measurement(fake_paper, tmp_path: Path):
    runs = []
    for _ in range(2):
        plans = plan_run(["fake"], scale="tiny", claim_ids=["mean"])
        runs.append(
            run_plans(plans, scale="tiny", seed=5, device="cpu", out=tmp_path, progress=False)[0][
                0
            ].measured
        )
    assert runs[0] == runs[1]


def test_crash_keeps_other_claims_and_leaves_no_partial_dir(fake_paper, tmp_path: Path):
    plans = plan_run(["fake"], scale="tiny", overrides=["crash=true"])
    results, errors, interrupted = run_plans(
        plans, scale="tiny", seed=0, device="cpu", out=tmp_path, progress=False
    )
    assert len(errors) == 1 and "boom" in errors[0] and not interrupted
    assert {r.claim_id for r in results} == {"mean", "skip"}
    assert not (tmp_path / "fake" / "second").exists()  # no empty folder for the crash
    assert (tmp_path / "fake" / "mean").is_dir()


def test_interrupt_keeps_finished_claims(fake_paper, tmp_path: Path):
    plans = plan_run(["fake"], scale="tiny", overrides=["interrupt=1"])
    results, _, interrupted = run_plans(
        plans, scale="tiny", seed=0, device="cpu", out=tmp_path, progress=False
    )
    assert interrupted and [r.claim_id for r in results] == ["mean"]
    assert list(tmp_path.glob("fake/mean/*/result.json"))
    assert not list(tmp_path.rglob(".tmp-*"))


def test_latest_results_picks_newest_and_skips_broken(fake_paper, tmp_path: Path, capsys):
    for seed in (1, 2):
        plans = plan_run(["fake"], scale="tiny", claim_ids=["mean"])
        run_plans(plans, scale="tiny", seed=seed, device="cpu", out=tmp_path, progress=False)
    broken = tmp_path / "fake" / "mean" / "99999999-000000-000" / "result.json"
    broken.parent.mkdir(parents=True)
    broken.write_text("{not json")
    found = latest_results(tmp_path)
    assert found["fake"]["mean"].seed == 2
    assert "skipping unreadable" in capsys.readouterr().err


def test_write_text_atomic_leaves_no_temp(tmp_path: Path):
    path = tmp_path / "a" / "r.json"
    write_text_atomic(path, "{}")
    write_text_atomic(path, '{"x": 1}')
    assert json.loads(path.read_text()) == {"x": 1}
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]


def test_result_roundtrip():
    r = Result(
        slug="s",
        claim_id="c",
        statement="",
        paper_figure="",
        criterion="",
        measured={},
        verdict="holds",
        reason="",
        ours="",
        scale="tiny",
        seed=0,
        device="cpu",
        seconds=0.0,
        paperlab_version="0",
        config={},
        timestamp="t",
    )
    assert Result.from_dict(json.loads(r.to_json())) == r


def test_smoke_results_cannot_pass_for_verdicts(tmp_path: Path):
    """A tiny run's verdicts are marked "(smoke)" in the table and the report, with a note; a
    default run's are not. Old result files without the field are marked from their scale."""
    from paperlab.report import render_html, render_markdown
    from paperlab.runner import summary_table

    def result(scale: str) -> Result:
        return Result(
            slug="kan",
            claim_id="a",
            statement="s",
            paper_figure="p",
            criterion="c",
            measured={"x": 1.0},
            verdict="holds",
            reason="",
            ours="o",
            scale=scale,
            seed=0,
            device="cpu",
            seconds=1.0,
            paperlab_version="0",
            config={},
            timestamp="t",
        )

    tiny, default = result("tiny"), result("default")
    assert tiny.smoke and not default.smoke
    table = summary_table([tiny])
    assert "holds (smoke)" in table and "say nothing about the paper" in table
    assert "smoke" not in summary_table([default])
    old = json.loads(tiny.to_json())
    del old["smoke"]
    assert Result.from_dict(old).smoke
    found = {"kan": {"a": tiny}}
    assert "**holds (smoke)**" in render_markdown(tmp_path, found)
    assert "holds (smoke)" in render_html(tmp_path, found)
    assert "(smoke)" not in render_markdown(tmp_path, {"kan": {"a": default}})
