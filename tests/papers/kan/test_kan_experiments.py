"""KAN's experiments on tiny inputs (the registry test runs the tiny claims end to end): the
grid-extension staircase's record, the claims' results through the disk cache (figures and
plots come back the same), the recovery rule, the claims' config errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from paperlab.claims import RunContext, UserError
from paperlab.core.artifacts import ArtifactCache
from paperlab.core.device import torch_threads
from paperlab.papers.kan.claims import EXPECTED_FUNCS, PAPER, PRESETS, RECOVERY_R2
from paperlab.papers.kan.experiments import (
    run_continual,
    run_prune_snap,
    train_kan_staircase,
)
from paperlab.papers.kan.toy import make_dataset, toy_functions


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


def tiny_ctx(out: Path, cache: ArtifactCache, **overrides: str) -> RunContext:
    cfg = PAPER.make_config("tiny", overrides)
    out.mkdir(parents=True, exist_ok=True)
    return RunContext(cfg, "tiny", 0, "cpu", out, progress=False, cache=cache)


def test_staircase_records_every_grid_and_the_finer_grids_fit_better():
    f = toy_functions()["exp_sin"]
    data = make_dataset(f.fn, 2, n_train=200, n_test=200, seed=0)
    model, h = train_kan_staircase((2, 1, 1), (3, 10), data, 10, 0)
    assert h["grid"] == [3, 10] and model.layers[0].grid_size == 10
    assert len(h["train"]) == len(h["test"]) == 2 and len(h["curve_train"]) <= 20
    assert h["train"][1] < h["train"][0]


def test_continual_result_comes_back_from_the_disk_cache_unchanged(tmp_path: Path):
    disk = tmp_path / "cache"
    with ArtifactCache(disk) as cache:
        ctx = tiny_ctx(tmp_path / "one", cache, cl_steps="3")
        first = run_continual(ctx)
        assert cache.hits["built"] == 1
    with ArtifactCache(disk) as cache:
        ctx = tiny_ctx(tmp_path / "two", cache, cl_steps="3")
        again = run_continual(ctx)
        assert cache.hits == {"memory": 0, "disk": 1, "built": 0}
    assert first == again and first["kan_params"] <= first["mlp_params"]
    assert (tmp_path / "two" / "continual.png").stat().st_size > 0
    with ArtifactCache(disk) as cache:  # another phase budget: trained again
        run_continual(tiny_ctx(tmp_path / "three", cache, cl_steps="2"))
        assert cache.hits["built"] == 1


def test_prune_snap_keeps_its_plot_and_judges_recovery_from_the_cached_runs(tmp_path: Path):
    disk = tmp_path / "cache"
    kw = dict(expected=EXPECTED_FUNCS, min_r2=RECOVERY_R2)
    with ArtifactCache(disk) as cache:
        first = run_prune_snap(tiny_ctx(tmp_path / "one", cache, steps="5", snap_steps="3"), **kw)
    with ArtifactCache(disk) as cache:
        ctx = tiny_ctx(tmp_path / "two", cache, steps="5", snap_steps="3")
        again = run_prune_snap(ctx, **kw)
        assert cache.hits["disk"] == 1 and cache.hits["built"] == 0
        assert ctx.artifacts == ["pruned_kan.png"] and "formula" in ctx.notes
    assert first == again and first["seeds"] == 1
    assert (tmp_path / "two" / "pruned_kan.png").stat().st_size > 1000
    with ArtifactCache(disk) as cache:  # an impossible R^2: nothing counts as recovered
        ctx = tiny_ctx(tmp_path / "three", cache, steps="5", snap_steps="3")
        none = run_prune_snap(ctx, expected=EXPECTED_FUNCS, min_r2=2.0)
    assert (
        none["recovery_rate"] == 0.0
        and none["best_formula_test_r2"] == first["best_formula_test_r2"]
    )


def test_claims_config_rejects_bad_values_and_presets_are_valid():
    for scale in PRESETS:
        PAPER.make_config(scale)
    for key, value, words in [
        ("functions", "nope", "unknown function"),
        ("grids_b", "5,3", "increasing"),
        ("width_c", "3,5,1", "width_c"),
        ("lamb", "-1", "lamb"),
        ("cl_steps", "0", "cl_steps"),
    ]:
        with pytest.raises((ValueError, UserError), match=words):
            PAPER.make_config("tiny", {key: value})
    assert torch.get_num_threads() == 1
