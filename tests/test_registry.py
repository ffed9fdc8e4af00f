"""One test over the whole registry: every implemented paper imports, documents itself, runs
its tiny claims end to end, and gets verdicts computed from what was measured."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from paperlab import catalog
from paperlab.claims import VERDICTS
from paperlab.runner import plan_run, run_plans

IMPLEMENTED = catalog.implemented()
SRC = Path(__file__).resolve().parents[1] / "src" / "paperlab" / "papers"


def test_some_paper_is_implemented():
    assert "kan" in IMPLEMENTED


@pytest.mark.parametrize("slug", IMPLEMENTED)
def test_paper_package_is_complete(slug: str):
    module = importlib.import_module(f"paperlab.papers.{slug}")
    doc = module.__doc__ or ""
    assert catalog.PAPERS[slug].arxiv in doc, "docstring names the arXiv id"
    readme = (SRC / slug / "README.md").read_text()
    assert "Differences from the paper" in readme and "@" in readme  # BibTeX entry
    paper = catalog.load_paper(slug)
    assert set(paper.presets) >= {"tiny", "default", "full"}
    ids = [c.id for c in paper.claims]
    assert len(ids) == len(set(ids)) and ids


@pytest.mark.parametrize("slug", IMPLEMENTED)
def test_tiny_claims_yield_measured_verdicts(slug: str, tmp_path: Path):
    plans = plan_run([slug], scale="tiny")
    results, errors, interrupted = run_plans(
        plans, scale="tiny", seed=0, device="cpu", out=tmp_path, progress=False
    )
    assert not errors, errors
    assert not interrupted
    paper = catalog.load_paper(slug)
    assert [r.claim_id for r in results] == [c.id for c in paper.claims]
    for r in results:
        assert r.verdict in VERDICTS
        if r.verdict == "skipped":
            assert r.reason
            continue
        assert r.measured, f"{r.claim_id}: nothing measured"
        # the verdict is the criterion applied to this run's measurements
        assert paper.claim(r.claim_id).criterion.judge(r.measured)[0] == r.verdict
        stored = json.loads(next(tmp_path.glob(f"{slug}/{r.claim_id}/*/result.json")).read_text())
        assert stored["verdict"] == r.verdict and stored["measured"] == r.measured
