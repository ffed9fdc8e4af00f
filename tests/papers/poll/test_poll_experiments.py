"""PoLL's experiment pieces: the miniature world (trained judges served for one run, released
with its cache, loaded from the disk cache the second time) and the claims' criteria."""

from __future__ import annotations

import dataclasses
import glob
import math
import os
import tempfile

import pytest

from paperlab.claims import RunContext
from paperlab.core.artifacts import ArtifactCache
from paperlab.papers.poll.claims import (
    KAPPA_TOLERANCE,
    MIN_JUDGE_KAPPA,
    PAPER,
    PoLLClaimsConfig,
    judge_bias,
    judge_kappa,
)
from paperlab.papers.poll.experiments import nanmean
from paperlab.papers.poll.world import MODEL_FIELDS, get_world, model_spec

SMALL = dict(
    family_dims=(16, 16, 16),
    family_layers=(1, 1, 1),
    big_dim=16,
    big_layers=1,
    base_steps=2,
    steps=2,
    big_steps=2,
    batch_size=4,
    n_items=6,
    n_questions=2,
)


def paperlab_temp_dirs() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "paperlab-*")))


def test_world_serves_the_judges_for_one_run_and_the_disk_cache_keeps_them(
    tmp_path, private_tempdir
):
    before = paperlab_temp_dirs()
    disk = tmp_path / "disk"
    for run in range(2):
        with ArtifactCache(disk) as cache:
            ctx = RunContext(
                PoLLClaimsConfig(**SMALL), "tiny", 0, "cpu", tmp_path, progress=False, cache=cache
            )
            world = get_world(ctx)
            assert get_world(ctx) is world
            assert world.jury == ["f0", "f1", "f2"] and world.big == "big"
            assert set(world.params) == {"f0", "f1", "f2", "big"}
            assert len(world.items) == 6 and len(world.questions) == 2
            proc = world.server.proc
            assert proc.poll() is None
            assert cache.hits["disk"] == run  # the second run trains nothing
        assert proc.poll() is not None, "the server outlived the run"
        assert paperlab_temp_dirs() <= before, "a temp folder outlived the run"


def test_model_spec_is_the_training_fields():
    cfg = PoLLClaimsConfig()
    assert set(MODEL_FIELDS) <= {f.name for f in dataclasses.fields(cfg)}
    assert model_spec(dataclasses.replace(cfg, n_items=3, concurrency=2)) == model_spec(cfg)
    assert model_spec(dataclasses.replace(cfg, big_share=0.7)) != model_spec(cfg)


def test_nanmean_skips_nan():
    assert nanmean([1.0, math.nan, 3.0]) == 2.0
    assert math.isnan(nanmean([math.nan]))


def test_kappa_criterion_bounds_are_constants():
    base = {"kappa_panel": 0.5, "kappa_best_single": 0.5}
    weak = MIN_JUDGE_KAPPA / 2
    assert judge_kappa({**base, "kappa_weakest_judge": weak, "kappa_gain": 0.3})[0] == (
        "inconclusive"
    )
    assert judge_kappa({**base, "kappa_weakest_judge": math.nan, "kappa_gain": 0.0})[0] == (
        "inconclusive"
    )
    ok = {**base, "kappa_weakest_judge": MIN_JUDGE_KAPPA}
    assert judge_kappa({**ok, "kappa_gain": 0.1})[0] == "holds"
    assert judge_kappa({**ok, "kappa_gain": -KAPPA_TOLERANCE / 2})[0] == "inconclusive"
    assert judge_kappa({**ok, "kappa_gain": -0.1})[0] == "fails"
    assert judge_bias({"single_bias": 0.2, "bias_reduction": 0.1, "panel_bias": 0.1})[0] == "holds"
    assert judge_bias({"single_bias": 0.2, "bias_reduction": 0.0, "panel_bias": 0.2})[0] == "fails"
    assert judge_bias({"single_bias": 0.0, "bias_reduction": 0.0, "panel_bias": 0.0})[0] == (
        "inconclusive"
    )


def test_presets_build_and_no_goalpost_is_a_config_field():
    for scale in PAPER.presets:
        PAPER.make_config(scale)
    names = {f.name for f in dataclasses.fields(PoLLClaimsConfig)}
    assert not any("kappa" in n or "bias" in n or "ratio" in n for n in names)
    with pytest.raises(ValueError, match="2 judge families"):
        PoLLClaimsConfig(family_dims=(64,))
    with pytest.raises(ValueError, match="family_shares"):
        PoLLClaimsConfig(family_shares=(0.5, 0.5))
    with pytest.raises(ValueError, match="n_items"):
        PoLLClaimsConfig(n_items=0)
    with pytest.raises(ValueError, match="dim"):
        PoLLClaimsConfig(big_dim=30)
