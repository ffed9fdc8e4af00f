"""PowerInfer-2's experiments on tiny inputs (the registry test runs the tiny claims end to
end): the model and engine folder go through the run's cache and its disk cache, the decode
timing keeps the timed calls' stats, the per-budget figures, the claims' config errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from paperlab.claims import RunContext, UserError
from paperlab.core.artifacts import ArtifactCache
from paperlab.core.device import torch_threads
from paperlab.papers.powerinfer2.claims import PAPER, PRESETS
from paperlab.papers.powerinfer2.experiments import (
    MMAP_COPY,
    budget_figures,
    measure_decode,
    relu_model_config,
    shared_folder,
    shared_model,
    stepwise_logits,
    storage_type,
    time_budget,
)
from paperlab.papers.powerinfer2.layout import FILES

TINY = dict(train_steps="4", predictor_steps="3", budgets="1,0.5")


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


def tiny_ctx(tmp_path: Path, cache: ArtifactCache, **overrides: str) -> RunContext:
    cfg = PAPER.make_config("tiny", {**TINY, **overrides})
    return RunContext(cfg, "tiny", 0, "cpu", tmp_path, progress=False, cache=cache)


def test_model_and_engine_folder_are_built_once_and_kept_in_the_disk_cache(
    tmp_path: Path, private_tempdir: Path
):
    disk = tmp_path / "cache"
    with ArtifactCache(disk) as cache:
        ctx = tiny_ctx(tmp_path, cache)
        model, info = shared_model(ctx)
        folder = shared_folder(ctx)
        assert cache.hits["built"] == 2 and shared_model(ctx)[0] is model  # memory
        assert not model.training and model.config.hidden_act == "relu"
        assert info["seconds"] > 0 and info["val_loss"] > 0 and len(info["history"]["loss"]) == 4
        assert {FILES["bundles"], FILES["profile"], MMAP_COPY} <= {p.name for p in folder.iterdir()}
        assert folder.is_relative_to(private_tempdir)
    assert not list(private_tempdir.iterdir())  # the run's temp folder is gone after release
    with ArtifactCache(disk) as cache:
        ctx = tiny_ctx(tmp_path, cache)
        again, info2 = shared_model(ctx)
        cached = shared_folder(ctx)
        assert cache.hits == {"memory": 0, "disk": 2, "built": 0}
        assert info2["val_loss"] == info["val_loss"]
        assert all(
            torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters(), strict=True)
        )
        assert cached.is_relative_to(disk) and (cached / MMAP_COPY).is_file()
    with ArtifactCache(disk) as cache:  # a decode knob changes neither the model nor the folder
        ctx = tiny_ctx(tmp_path, cache, reps="2", hot_share="0.3")
        shared_model(ctx), shared_folder(ctx)
        assert cache.hits["built"] == 0


def test_measure_decode_runs_every_budget_within_it_and_like_dense(tmp_path: Path):
    with ArtifactCache() as cache:
        ctx = tiny_ctx(tmp_path, cache)
        model, _ = shared_model(ctx)
        m = measure_decode(shared_folder(ctx), ctx.config, model)
    assert m["storage_is_tmpfs"] in (0.0, 1.0) and m["dense_tps"] > 0
    for tag in ("100", "50"):
        assert m[f"mmap_same_tokens_{tag}"] == 1.0  # the baseline decodes what dense decodes
        assert m[f"engine_peak_ffn_bytes_{tag}"] <= m[f"budget_bytes_{tag}"]
        assert m[f"speedup_{tag}"] == m[f"engine_tps_{tag}"] / m[f"mmap_tps_{tag}"]
    assert m["budget_bytes_50"] < m["budget_bytes_100"]


class Counter:
    """A stand-in engine: ``generate`` returns the prompt, ``stats`` counts the calls."""

    def __init__(self) -> None:
        self.stats = {"calls": 0}

    def generate(self, ids, max_new_tokens: int):
        self.stats = {"calls": self.stats["calls"] + 1, "new": max_new_tokens}
        return ids


def test_time_budget_drops_the_warm_up_and_keeps_the_last_outputs():
    runs = {"a": Counter(), "b": Counter()}
    prompts = [torch.tensor([[1, 2]]), torch.tensor([[3]])]
    stats, outputs = time_budget(runs, prompts, new_tokens=5, reps=3, progress=False, desc="t")
    for name in runs:
        assert [s["calls"] for s in stats[name]] == list(range(2, 8))  # call 1: the warm-up
        assert all(s["new"] == 5 for s in stats[name])
        assert [torch.equal(o, p) for o, p in zip(outputs[name], prompts, strict=True)] == [
            True,
            True,
        ]


def test_budget_figures_prefer_the_kernels_byte_count():
    def stats(tps: float, block: float, ours: float) -> list[dict]:
        keys = ("hit_rate", "io_wait_share", "reads_per_token", "active_share")
        row = dict.fromkeys(keys, 0.5) | dict(
            tokens_per_s=tps,
            block_read_bytes_per_token=block,
            bytes_read_per_token=ours,
            peak_resident_ffn_bytes=10,
            budget_bytes=12,
        )
        return [row, row]

    m = budget_figures(0.25, {"engine": stats(20, 100, 80), "mmap": stats(10, 400, 0)}, True)
    assert m["speedup_25"] == 2.0 and m["bytes_ratio_25"] == 0.25
    assert m["engine_bytes_per_token_25"] == 80 and m["mmap_same_tokens_25"] == 1.0
    no_kernel = budget_figures(0.1, {"engine": stats(1, 0, 80), "mmap": stats(1, 0, 0)}, False)
    assert no_kernel["engine_block_bytes_per_token_10"] == 80 and "bytes_ratio_10" not in no_kernel
    assert storage_type(Path("/")) != ""


def test_stepwise_logits_match_the_full_forward():
    cfg = relu_model_config(PAPER.make_config("tiny"))
    torch.manual_seed(0)
    from paperlab.core.llama import Llama

    model = Llama(cfg.llama_config()).eval()
    ids = torch.randint(256, (1, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(ids)[0]
    assert torch.allclose(stepwise_logits(model, ids), full, atol=1e-5)


def test_claims_config_rejects_bad_values_and_presets_are_valid():
    for scale in PRESETS:
        PAPER.make_config(scale)
    for key, value, words in [
        ("budgets", "0.5,1", "largest first"),
        ("budgets", "0,0.5", "budgets"),
        ("hot_share", "1", "hot_share"),
        ("reps", "0", "reps"),
        ("new_tokens", "1", "new_tokens"),
    ]:
        with pytest.raises((ValueError, UserError), match=words):
            PAPER.make_config("tiny", {key: value})


def test_claims_model_and_folder_reads_the_entries_a_reproduce_wrote(tmp_path: Path):
    """The benchmark's model is the claims' own: the helper finds what a run of the claims
    (same config and seed) put in the disk cache, and builds nothing."""
    from paperlab.papers.powerinfer2.experiments import claims_model_and_folder

    disk = tmp_path / "cache"
    with ArtifactCache(disk) as cache:
        ctx = tiny_ctx(tmp_path, cache)
        model, _ = shared_model(ctx)
        shared_folder(ctx)
    with claims_model_and_folder(ctx.config, cache_dir=disk, progress=False) as (m, info, f):
        pairs = zip(model.parameters(), m.parameters(), strict=True)
        assert all(torch.equal(a, b) for a, b in pairs)
        assert f.is_relative_to(disk) and (f / FILES["bundles"]).is_file() and info["seconds"] > 0
    other = PAPER.make_config("tiny", {**TINY, "train_steps": "5"})  # another recipe
    with claims_model_and_folder(other, cache_dir=disk, progress=False) as (m2, _, _):
        pairs = zip(model.parameters(), m2.parameters(), strict=True)
        assert any(not torch.equal(a, b) for a, b in pairs)
