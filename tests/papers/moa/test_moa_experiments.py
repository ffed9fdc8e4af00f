"""MoA's experiment pieces: the miniature world (trained once, served, released with the run's
cache; a second run loads the models from the disk cache), and the evaluation's helpers."""

from __future__ import annotations

import asyncio
import dataclasses
import glob
import math
import os
import tempfile
from types import SimpleNamespace

import pytest

from paperlab.claims import RunContext
from paperlab.core.artifacts import ArtifactCache
from paperlab.papers.moa.claims import PAPER, MoAClaimsConfig
from paperlab.papers.moa.experiments import correct, layer_accuracies, mixtures
from paperlab.papers.moa.world import MODEL_FIELDS, World, get_world, model_spec

SMALL = dict(
    n_facts=6,
    proposer_rates=(0.6, 0.4),
    base_steps=2,
    proposer_steps=2,
    dim=16,
    batch_size=4,
)


def context(tmp_path, cache: ArtifactCache, **overrides) -> RunContext:
    cfg = MoAClaimsConfig(**{**SMALL, **overrides})
    return RunContext(cfg, "tiny", 0, "cpu", tmp_path, progress=False, cache=cache)


def paperlab_temp_dirs() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "paperlab-*")))


def test_world_is_built_once_served_and_released_with_the_cache(tmp_path, private_tempdir):
    before = paperlab_temp_dirs()
    disk = tmp_path / "disk"
    with ArtifactCache(disk) as cache:
        ctx = context(tmp_path, cache)
        world = get_world(ctx)
        assert get_world(ctx) is world
        assert world.proposers == ["p0", "p1"] and world.aggregator == "agg"
        assert len(world.questions) == 6
        calls = world.calls_made()
        reply = asyncio.run(
            world.client.chat("p0", [{"role": "user", "content": "hi"}], max_tokens=2)
        )
        assert isinstance(reply.text, str) and world.calls_made() == calls + 1
        proc = world.server.proc
        assert proc.poll() is None
        assert cache.hits["built"] >= 2  # the models and the world
    assert proc.poll() is not None, "the server outlived the run"
    assert paperlab_temp_dirs() <= before, "a temp folder outlived the run"

    with ArtifactCache(disk) as cache:  # a second run: the models come from the disk cache
        world = get_world(context(tmp_path, cache, temperature=0.3))  # not a model field
        assert cache.hits["disk"] == 1
        assert world.proposers == ["p0", "p1"]
    assert paperlab_temp_dirs() <= before


def test_model_spec_names_config_fields_and_only_training_ones():
    cfg = MoAClaimsConfig()
    names = {f.name for f in dataclasses.fields(cfg)}
    assert set(MODEL_FIELDS) <= names
    other = dataclasses.replace(cfg, temperature=0.1, concurrency=3, timing_queries=1)
    assert model_spec(other) == model_spec(cfg)
    assert model_spec(dataclasses.replace(cfg, base_steps=7)) != model_spec(cfg)


def test_presets_build_and_goalposts_are_not_config_fields():
    for scale in PAPER.presets:
        PAPER.make_config(scale)
    names = {f.name for f in dataclasses.fields(MoAClaimsConfig)}
    assert not names & {"min_efficiency", "margin", "level", "threshold"}
    with pytest.raises(ValueError, match="layers"):
        MoAClaimsConfig(layers=1)


def fact(answer: str):
    return SimpleNamespace(question="q", answer=answer, read=lambda text: text.strip()[:1])


def test_correct_and_layer_accuracies():
    questions = [fact("A"), fact("B")]
    assert correct(questions, ["A!", "C"]) == [1.0, 0.0]
    reply = lambda t: SimpleNamespace(text=t)  # noqa: E731
    results = [
        SimpleNamespace(layers=[[reply("A"), reply("C")], [reply("A")]]),
        SimpleNamespace(layers=[[reply("B"), reply("B")], []]),
    ]
    assert layer_accuracies(questions, results, layers=3) == [0.75, 1.0]
    empty = [SimpleNamespace(layers=[[]]) for _ in questions]
    assert math.isnan(layer_accuracies(questions, empty, layers=2)[0])


def test_mixtures_cost_the_calls_the_paper_counts():
    cfg = MoAClaimsConfig()
    world = World(
        client=None,
        proposers=[f"p{i}" for i in range(6)],
        aggregator="agg",
        questions=[],
        max_tokens=5,
    )
    configs = mixtures(cfg, world, best_proposer="p3", seed=0)
    assert configs["moa"].n_calls == 6 * 2 + 1  # proposers x (layers - 1) + 1
    assert configs["moa_lite"].n_calls == 7
    assert configs["self_moa"].layers == (("p3",) * 6,)
    assert {c.temperature for c in configs.values()} == {0.7}  # Sec. 3.1
