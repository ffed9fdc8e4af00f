"""TransNAR's experiment pieces on a very small config (the registry test runs the tiny claims
end to end): both phases trained once per spec and read back from the disk cache; the figures
the criteria judge."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from paperlab.claims import RunContext
from paperlab.core.artifacts import ArtifactCache
from paperlab.core.device import torch_threads
from paperlab.papers.transnar.claims import PAPER
from paperlab.papers.transnar.experiments import models, nar_figures, text_figures, trained_nar

SMALL = dict(nar_steps="2", nar_pool="8", steps="2", n_train="8", n_eval="1")


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


def small_ctx(tmp_path: Path, cache: ArtifactCache, **overrides: str) -> RunContext:
    cfg = PAPER.make_config("tiny", SMALL | overrides)
    return RunContext(
        config=cfg,
        scale="tiny",
        seed=0,
        device="cpu",
        out_dir=tmp_path,
        cache=cache,
        progress=False,
    )


def test_both_phases_train_once_and_come_back_from_the_disk_cache(tmp_path: Path):
    with ArtifactCache(tmp_path / "cache") as cache:
        ctx = small_ctx(tmp_path, cache)
        first = models(ctx)
        assert models(ctx) is first
        assert cache.hits["built"] == 2  # the NAR and the phase-2 results
        nar, acc = trained_nar(ctx)
        assert acc == first["nar_acc"]
        weights = {k: v.clone() for k, v in nar.state_dict().items()}
    with ArtifactCache(tmp_path / "cache") as cache:
        ctx = small_ctx(tmp_path, cache)
        again = models(ctx)
        assert cache.hits == {"memory": 0, "disk": 1, "built": 0}
        nar2, _ = trained_nar(ctx)
        assert cache.hits["disk"] == 2 and cache.hits["built"] == 0
        assert all(torch.equal(weights[k], v) for k, v in nar2.state_dict().items())
    assert again["nar_acc"] == first["nar_acc"]
    for name in ("transnar", "baseline"):
        assert again[name]["scores"] == first[name]["scores"]
        assert "state" not in again[name] and again[name]["train_seconds"] > 0
    assert first["transnar"]["params"] > first["baseline"]["params"]


def test_phase_two_settings_do_not_retrain_the_nar(tmp_path: Path):
    with ArtifactCache(tmp_path / "cache") as cache:
        trained_nar(small_ctx(tmp_path, cache))
    with ArtifactCache(tmp_path / "cache") as cache:
        trained_nar(small_ctx(tmp_path, cache, steps="3", workers="2"))
        assert cache.hits["disk"] == 1
        trained_nar(small_ctx(tmp_path, cache, nar_steps="3"))
        assert cache.hits["built"] == 1


def test_figures_the_criteria_judge(tmp_path: Path):
    cfg = PAPER.make_config("tiny", {"algorithms": "bfs"})  # train 4,5; eval 4 (in), 6 (out)
    m = nar_figures(cfg, {"nar_acc_bfs_n4": 0.8, "nar_acc_bfs_n6": 0.6})
    assert (m["nar_acc_id"], m["nar_acc_ood"]) == (0.8, 0.6)
    assert m["nar_ood_over_id"] == pytest.approx(0.75)

    def result(clrs_in: float, clrs_out: float) -> dict:
        scores = {}
        for metric in ("exact", "shape", "clrs", "parse"):
            scores[f"{metric}_bfs_n4"], scores[f"{metric}_bfs_n6"] = clrs_in, clrs_out
        history = {"loss": [1.0], "step": [0]}
        figures = {"scores": scores, "samples": {}}
        return {"scores": figures, "params": 1, "train_seconds": 1.0, "history": history}

    ctx = RunContext(config=cfg, scale="tiny", seed=0, device="cpu", out_dir=tmp_path)
    m = text_figures(ctx, {"transnar": result(0.5, 0.3), "baseline": result(0.4, 0.1)})
    assert m["clrs_gain_id"] == pytest.approx(0.1) and m["clrs_gain_ood"] == pytest.approx(0.2)
    assert m["ood_minus_id_gain"] == pytest.approx(0.1)
    holds = PAPER.claim("out_of_distribution").criterion.judge(m)[0]
    assert holds == "holds"
    m2 = text_figures(ctx, {"transnar": result(0.5, 0.1), "baseline": result(0.4, 0.1)})
    assert PAPER.claim("out_of_distribution").criterion.judge(m2)[0] == "fails"
