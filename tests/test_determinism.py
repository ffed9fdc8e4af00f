"""Same seed, same machine -> the same figures: real claims of trained models run twice (the
disk cache off, so both runs train) and every figure that is not a wall time must agree."""

from __future__ import annotations

from pathlib import Path

import pytest

from paperlab.runner import plan_run, run_plans

TIMING_WORDS = ("second", "wall", "time", "load", "per_s", "throughput", "speed")


def figures(slug: str, claim: str, out: Path) -> dict[str, float]:
    plans = plan_run([slug], scale="tiny", claim_ids=[claim])
    result = run_plans(plans, scale="tiny", seed=3, device="cpu", out=out, progress=False)[0][0]
    assert result.verdict != "error", result.reason
    return {k: v for k, v in result.measured.items() if not any(w in k for w in TIMING_WORDS)}


@pytest.mark.parametrize(
    ("slug", "claim"), [("kan", "b"), ("pit", "pixel_permutation"), ("transnar", "nar_ood")]
)
def test_a_claim_run_twice_gives_the_same_figures(slug: str, claim: str, tmp_path: Path) -> None:
    first = figures(slug, claim, tmp_path / "1")
    second = figures(slug, claim, tmp_path / "2")
    assert first and first == second
