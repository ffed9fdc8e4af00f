"""PiT's experiments on tiny inputs (the registry test runs the tiny claims end to end):
one training, the disk-cache codec and key of a run, the noise band; config errors; the
criteria."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from paperlab.claims import PaperClaims, RunContext, UserError
from paperlab.core.artifacts import ArtifactCache
from paperlab.core.device import torch_threads
from paperlab.papers.pit.claims import PAPER
from paperlab.papers.pit.experiments import band
from paperlab.papers.pit.runs import RunResultCodec, RunSpec, ensure_runs, run_key


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


def tiny_ctx(paper: PaperClaims, tmp_path: Path, cache: ArtifactCache, **overrides: str):
    cfg = paper.make_config("tiny", overrides)
    return RunContext(config=cfg, scale="tiny", seed=0, device="cpu", out_dir=tmp_path, cache=cache)


def test_ensure_runs_trains_once_and_the_disk_cache_gives_the_same_results(tmp_path: Path):
    specs = [RunSpec("digits", 1, 0, mae=True), RunSpec("digits", 4, 1, permuted=True)]
    with ArtifactCache(tmp_path / "cache") as cache:
        ctx = tiny_ctx(PAPER, tmp_path, cache, digits_steps="3", mae_steps="2")
        first = ensure_runs(ctx, specs)
        assert cache.hits["built"] == 3  # the two trainings and the digits split (memory only)
        assert len(list((tmp_path / "cache" / "pit-run").iterdir())) == 2
        assert ensure_runs(ctx, specs[:1])[specs[0]] is first[specs[0]]  # memory
    with ArtifactCache(tmp_path / "cache") as cache:
        ctx = tiny_ctx(PAPER, tmp_path, cache, digits_steps="3", mae_steps="2")
        again = ensure_runs(ctx, specs)
        assert cache.hits == {"memory": 0, "disk": 2, "built": 0}
    for s in specs:
        a, b = first[s], again[s]
        assert 0.0 <= a.accuracy <= 1.0 and a.seconds > 0
        assert (a.accuracy, a.final_loss) == (b.accuracy, b.final_loss)
    assert math.isnan(again[specs[1]].mae_loss) and again[specs[1]].mae_state is None
    mae_a, mae_b = first[specs[0]].mae_state, again[specs[0]].mae_state
    assert mae_a.keys() == mae_b.keys()
    assert all(torch.equal(mae_a[k], mae_b[k]) for k in mae_a)


def test_run_key_holds_the_fields_a_training_reads():
    cfg = PAPER.make_config("default")
    plain, mae = RunSpec("digits", 1, 0), RunSpec("digits", 1, 0, mae=True)
    assert run_key(cfg, plain) == run_key(dataclasses.replace(cfg, mae_steps=5), plain)
    assert run_key(cfg, mae) != run_key(dataclasses.replace(cfg, mae_steps=5), mae)
    assert run_key(cfg, plain) != run_key(dataclasses.replace(cfg, digits_steps=5), plain)
    assert run_key(cfg, plain) == run_key(dataclasses.replace(cfg, workers=1), plain)
    shapes = RunSpec("shapes", 2, 0)
    assert run_key(cfg, shapes) != run_key(dataclasses.replace(cfg, shapes_size=8), shapes)


def test_codec_round_trips_a_result_without_mae(tmp_path: Path):
    from paperlab.papers.pit.runs import RunResult

    codec = RunResultCodec()
    codec.save(RunResult(0.5, 1.25, 2.0), tmp_path)
    back = codec.load(tmp_path)
    assert (back.accuracy, back.seconds, back.final_loss) == (0.5, 1.25, 2.0)
    assert math.isnan(back.mae_loss) and back.mae_state is None


def test_band_is_two_standard_errors_with_a_floor():
    a, b = np.array([0.5, 0.6, 0.7]), np.array([0.5, 0.5, 0.5])
    assert band(a, b, paired=True, floor=0.0) == pytest.approx(2 * 0.1 / np.sqrt(3))
    assert band(a, a, paired=True, floor=0.01) == 0.01
    unpaired = 2 * np.sqrt(np.var(a, ddof=1) / 3)
    assert band(a, b, paired=False, floor=0.0) == pytest.approx(unpaired)


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
