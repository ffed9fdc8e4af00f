"""LlamaGen's experiment pieces on very small configs (the registry test runs the tiny claims
end to end): the models trained once per spec and read back from the disk cache, the CFG
sweep's helpers, and clear errors for bad config values."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from paperlab.claims import RunContext, UserError
from paperlab.core.artifacts import ArtifactCache
from paperlab.papers.llamagen.claims import PAPER
from paperlab.papers.llamagen.experiments import (
    fd_minimum,
    scale_key,
    shared_generator,
    shared_tokenizer,
)
from paperlab.runner import plan_run


def small_ctx(tmp_path: Path, cache: ArtifactCache, **overrides: str) -> RunContext:
    cfg = PAPER.make_config("tiny", {"tok_steps": "2", "gen_steps": "2"} | overrides)
    return RunContext(cfg, "tiny", 0, "cpu", tmp_path, progress=False, cache=cache)


def test_tokenizers_and_generator_train_once_and_come_back_from_the_disk_cache(tmp_path: Path):
    with ArtifactCache(tmp_path / "cache") as cache:
        ctx = small_ctx(tmp_path, cache)
        l2, plain = shared_tokenizer(ctx, l2=True), shared_tokenizer(ctx, l2=False)
        gen, _ = shared_generator(ctx)
        assert cache.hits["built"] == 4  # the data split, two tokenizers, the generator
        assert shared_tokenizer(ctx, l2=True) is l2
    with ArtifactCache(tmp_path / "cache") as cache:
        ctx = small_ctx(tmp_path, cache)
        gen2, history = shared_generator(ctx)
        l2_again = shared_tokenizer(ctx, l2=True)
        plain_again = shared_tokenizer(ctx, l2=False)
        assert cache.hits["disk"] == 3 and cache.hits["built"] == 1  # the data split only
    assert history["seconds"][0] > 0
    for a, b in ((l2[0], l2_again[0]), (plain[0], plain_again[0]), (gen, gen2)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not gen2.training and l2_again[0].config.l2_norm and not plain_again[0].config.l2_norm


def test_generator_settings_do_not_retrain_the_tokenizer(tmp_path: Path):
    with ArtifactCache(tmp_path / "cache") as cache:
        shared_tokenizer(small_ctx(tmp_path, cache), l2=True)
    with ArtifactCache(tmp_path / "cache") as cache:
        shared_tokenizer(small_ctx(tmp_path, cache, gen_steps="3", judge_steps="5"), l2=True)
        assert cache.hits["disk"] == 1
        shared_tokenizer(small_ctx(tmp_path, cache, tok_steps="3"), l2=True)
        assert cache.hits["disk"] == 1 and cache.hits["built"] == 3  # 2 data splits + 1


def test_fd_minimum_and_scale_keys():
    assert fd_minimum([30.0, 10.0, 20.0], (1.0, 2.0, 4.0)) == {
        "fd_best": 10.0,
        "fd_argmin_scale": 2.0,
    }
    nan = fd_minimum([math.nan, math.nan], (1.0, 2.0))
    assert math.isnan(nan["fd_best"]) and math.isnan(nan["fd_argmin_scale"])
    assert scale_key(1.5) == "1_5" and scale_key(4.0) == "4"


@pytest.mark.parametrize(
    "pair, message",
    [
        ("cfg_scales=2,4", "start with 1"),
        ("downsample=3", "downsample"),
        ("dataset=cifar", "dataset"),
        ("gen_heads=3", "multiple of 4"),
        ("n_test=480", "n_test"),
    ],
)
def test_bad_config_is_one_clear_error(pair: str, message: str):
    with pytest.raises(UserError, match=message):
        plan_run(["llamagen"], scale="tiny", overrides=[pair])
