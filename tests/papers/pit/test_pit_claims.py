"""PiT's claims: tiny scale end to end through the runner; config errors; the criteria."""

from __future__ import annotations

from pathlib import Path

import pytest

from paperlab.claims import VERDICTS, UserError
from paperlab.papers.pit.claims import PAPER
from paperlab.runner import plan_run, run_plans


def test_tiny_claims_produce_measured_verdicts(tmp_path: Path):
    plans = plan_run(["pit"], scale="tiny")
    results, errors, interrupted = run_plans(
        plans, scale="tiny", seed=0, device="cpu", out=tmp_path, progress=False
    )
    assert not errors and not interrupted
    ids = ["pixels_vs_patches", "pixel_permutation", "position_embedding", "mae"]
    assert [r.claim_id for r in results] == ids
    for r in results:
        assert r.verdict in VERDICTS and r.verdict != "skipped"
        assert PAPER.claim(r.claim_id).criterion.judge(r.measured)[0] == r.verdict
        assert r.artifacts
        for a in r.artifacts:
            assert list((tmp_path / "pit").glob(f"{r.claim_id}/*/{a}")), a
    m = results[0].measured
    assert 0.0 <= m["acc_digits_pit"] <= 1.0 and m["std_shapes_vit_p4"] >= 0.0


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("seeds", "1", "seeds"),
        ("patch_sizes", "3", "patch_sizes"),
        ("perm_dataset", "cifar", "dataset"),
        ("mask_ratio", "1.5", "mask_ratio"),
        ("n_heads", "5", "n_heads"),
        ("dim", "lots", "expected a value of type int"),
        ("width", "8", "unknown --set key"),
    ],
)
def test_bad_set_values_give_one_clear_line(key: str, value: str, match: str):
    with pytest.raises(UserError, match=match) as err:
        PAPER.make_config("default", {key: value})
    assert "\n" not in str(err.value)


def judge(claim_id: str, **m: float) -> str:
    return PAPER.claim(claim_id).criterion.judge(m)[0]


def test_criteria_can_fail_and_hold():
    base = dict(digits_band=0.02, shapes_band=0.02)
    assert judge("pixels_vs_patches", digits_gap=0.01, shapes_gap=0.0, **base) == "holds"
    assert judge("pixels_vs_patches", digits_gap=0.01, shapes_gap=-0.05, **base) == "fails"
    assert judge("pixels_vs_patches", digits_gap=-0.01, shapes_gap=0.0, **base) == "inconclusive"
    perm = dict(drop_pit=0.0, band_pit=0.01, band_vit_p2=0.01, band_vit_p4=0.01)
    assert judge("pixel_permutation", drop_vit_p2=0.05, drop_vit_p4=0.03, **perm) == "holds"
    assert judge("pixel_permutation", drop_vit_p2=0.05, drop_vit_p4=-0.01, **perm) == "fails"
    assert judge("pixel_permutation", drop_vit_p2=0.05, drop_vit_p4=0.01, **perm) == (
        "inconclusive"
    )
    assert (
        judge("pixel_permutation", **(perm | dict(drop_pit=0.05)), drop_vit_p2=0.1, drop_vit_p4=0.1)
        == "fails"
    )
    assert judge("position_embedding", learned_minus_sincos=0.01, learned_sincos_band=0.02) == (
        "holds"
    )
    assert judge("position_embedding", learned_minus_sincos=-0.05, learned_sincos_band=0.02) == (
        "fails"
    )
    assert judge("mae", gain=0.03, band=0.02) == "holds"
    assert judge("mae", gain=0.01, band=0.02) == "inconclusive"
    assert judge("mae", gain=-0.01, band=0.02) == "fails"
