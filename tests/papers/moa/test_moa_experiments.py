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
from paperlab.core.data.facts import make_facts
from paperlab.core.stats import improves
from paperlab.papers.moa.claims import MIN_AGGREGATOR_VS_MAJORITY, PAPER, MoAClaimsConfig, powered
from paperlab.papers.moa.experiments import (
    aggregator_reads,
    correct,
    layer_accuracies,
    majority_scores,
    mixtures,
    powering,
)
from paperlab.papers.moa.miniature import SHORT_INSTRUCTION, agreement_task, synthesise_task
from paperlab.papers.moa.world import MODEL_FIELDS, World, get_world, model_spec

SMALL = dict(
    n_facts=6,
    proposer_rates=(0.6, 0.4),
    base_easy_steps=2,
    base_steps=2,
    proposer_steps=2,
    aggregator_steps=2,
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
    assert model_spec(dataclasses.replace(cfg, aggregator_agree=0.0)) != model_spec(cfg)
    assert model_spec(dataclasses.replace(cfg, aggregator_lr=1e-3)) != model_spec(cfg)


def test_presets_build_and_goalposts_are_not_config_fields():
    for scale in PAPER.presets:
        PAPER.make_config(scale)
    names = {f.name for f in dataclasses.fields(MoAClaimsConfig)}
    assert not names & {"min_efficiency", "margin", "level", "threshold"}
    with pytest.raises(ValueError, match="layers"):
        MoAClaimsConfig(layers=1)
    with pytest.raises(ValueError, match="lr"):
        MoAClaimsConfig(aggregator_lr=0.0)


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


def test_majority_scores_and_powering_figure():
    questions = [fact("A"), fact("B"), fact("C")]
    reply = lambda t: SimpleNamespace(text=t)  # noqa: E731
    results = [
        SimpleNamespace(layers=[[reply("A"), reply("C"), reply("A")]]),  # right
        SimpleNamespace(layers=[[reply("C"), reply("C"), reply("B")]]),  # wrong
        SimpleNamespace(layers=[[reply("C"), reply("B")]]),  # tie: the first seen, right
    ]
    assert majority_scores(questions, results) == [1.0, 0.0, 1.0]
    ev = {
        "scores": {
            "aggregator_l1": [1.0, 0.0, 0.0],  # greedy: the powering figure
            "moa_lite": [0.0, 0.0, 0.0],  # sampled: reported beside it
            "majority_lite": [1.0, 0.0, 1.0],
        }
    }
    figures = powering(ev)
    assert figures["aggregator_l1_acc"] == pytest.approx(1 / 3)
    assert figures["aggregator_l1_sampled_acc"] == 0.0
    assert figures["majority_l1_acc"] == pytest.approx(2 / 3)
    assert figures["aggregator_vs_majority"] == pytest.approx(-1 / 3)


def test_aggregator_reads_layer_1_greedily_with_moa_lites_prompt():
    """The powering figure's aggregator call: the same references MoA-Lite's aggregator got, in
    the same prompt, at temperature 0."""
    questions = [fact("A"), fact("B")]
    seen = []

    class Client:
        async def chat(self, model, messages, *, temperature, max_tokens):
            seen.append((model, messages, temperature))
            refs = [line[-1] for line in messages[0]["content"].split("\n")[-3:]]
            return SimpleNamespace(text=max(sorted(set(refs)), key=refs.count))  # a plurality

        def run(self, coro):
            return asyncio.run(coro)

    world = World(
        client=Client(),
        proposers=["p0", "p1", "p2"],
        aggregator="agg",
        questions=questions,
        max_tokens=5,
        instruction=SHORT_INSTRUCTION,
    )
    world.calls_made = lambda: 0  # no server: nothing counts the calls
    reply = lambda t: SimpleNamespace(text=t)  # noqa: E731
    results = [
        SimpleNamespace(layers=[[reply("A"), reply("C"), reply("A")]]),
        SimpleNamespace(layers=[[reply("C"), reply("C"), reply("B")]]),
    ]
    assert aggregator_reads(world, results, concurrency=2) == [1.0, 0.0]
    assert all(model == "agg" and t == 0.0 for model, _, t in seen)
    assert seen[0][1][0]["content"].startswith(SHORT_INSTRUCTION)
    assert seen[0][1][-1] == {"role": "user", "content": questions[0].question}


def test_accuracy_and_diversity_are_judged_only_when_the_aggregator_reads_references():
    criterion = powered(improves("gain", "gain_ci_low", "MoA - best single"))
    gain = dict(gain=0.1, gain_ci_low=0.05)
    verdict, why = criterion.judge(dict(gain, aggregator_l1_acc=0.6, majority_l1_acc=0.7))
    assert verdict == "inconclusive" and "not powered" in why and "60.0%" in why
    verdict, why = criterion.judge(dict(gain, aggregator_l1_acc=0.7, majority_l1_acc=0.7))
    assert verdict == "holds" and "powered" in why
    lost = dict(gain=-0.1, gain_ci_low=-0.2, aggregator_l1_acc=0.8, majority_l1_acc=0.7)
    assert criterion.judge(lost)[0] == "fails"  # powered, and MoA loses: a real fails
    assert criterion.judge(dict(gain))[0] == "inconclusive"  # the powering figure is missing
    assert MIN_AGGREGATOR_VS_MAJORITY == 0.0  # "at least a majority vote's accuracy"
    for claim in PAPER.claims:
        if claim.id in ("accuracy", "diversity"):
            assert "aggregator_l1_acc" in claim.criterion.text


def test_synthesise_task_reference_counts_and_prompt():
    import random

    facts = make_facts(5, seed=0)
    taken = {f.name for f in facts}
    task = synthesise_task(facts, taken, max_refs=6, min_refs=3, p_right=(1.0, 1.0))
    rng = random.Random(0)
    for _ in range(50):
        messages, reply = task(rng)
        system = messages[0]["content"]
        assert system.startswith(SHORT_INSTRUCTION) and messages[-1]["role"] == "user"
        refs = system.split("Responses:\n")[1].splitlines()
        assert 3 <= len(refs) <= 6
        assert all(r.endswith(f" {reply}") for r in refs)  # p_right 1: every reference right
    with pytest.raises(ValueError, match="min_refs"):
        synthesise_task(facts, taken, max_refs=2, min_refs=3)


def test_agreement_task_the_right_code_is_the_strict_plurality_of_one_per_proposer():
    import random
    from collections import Counter

    facts = make_facts(20, seed=0)
    taken = {f.name for f in facts}
    task = agreement_task(facts, taken, refs=6)
    rng = random.Random(0)
    seen_k = set()
    for _ in range(200):
        messages, reply = task(rng)
        system = messages[0]["content"]
        assert system.startswith(SHORT_INSTRUCTION) and messages[-1]["role"] == "user"
        codes = [r.split(". ")[1] for r in system.split("Responses:\n")[1].splitlines()]
        assert len(codes) == 6
        counts = Counter(codes)
        assert all(n < counts[reply] for c, n in counts.items() if c != reply)
        assert messages[-1]["content"].split()[-1][:-1] not in taken  # an unseen fact
        seen_k.add(counts[reply])
    assert seen_k == {2, 3, 4, 5, 6}
    messages, reply = agreement_task(facts, taken, refs=1)(rng)
    assert messages[0]["content"].endswith(f"1. {reply}")
    with pytest.raises(ValueError, match="refs"):
        agreement_task(facts, taken, refs=0)


def test_agreement_task_with_ties_puts_the_right_code_first_among_the_tied():
    import random
    from collections import Counter

    from paperlab.core.stats import majority

    facts = make_facts(20, seed=0)
    taken = {f.name for f in facts}
    task = agreement_task(facts, taken, refs=6, ties=True)
    rng = random.Random(1)
    tied = 0
    for _ in range(300):
        messages, reply = task(rng)
        system = messages[0]["content"]
        codes = [r.split(". ")[1] for r in system.split("Responses:\n")[1].splitlines()]
        counts = Counter(codes)
        assert len(codes) == 6 and all(n <= counts[reply] for n in counts.values())
        others = [c for c, n in counts.items() if c != reply and n == counts[reply]]
        tied += bool(others)
        assert all(codes.index(reply) < codes.index(c) for c in others)
        assert majority(codes) == reply  # a vote breaking ties by order gives the label too
    assert 20 < tied < 280  # ties occur, and so do strict pluralities


def test_agreement_task_min_right_and_skew_collide_made_up_codes_and_keep_the_vote():
    import random
    from collections import Counter

    from paperlab.core.stats import majority

    facts = make_facts(40, seed=0)
    taken = {f.name for f in facts}

    def collisions(task, seed):
        rng = random.Random(seed)
        seen_k, collided = set(), 0
        for _ in range(300):
            messages, reply = task(rng)
            system = messages[0]["content"]
            codes = [r.split(". ")[1] for r in system.split("Responses:\n")[1].splitlines()]
            counts = Counter(codes)
            assert len(codes) == 6 and majority(codes) == reply  # the label is the vote's
            seen_k.add(counts[reply])
            collided += any(n >= 2 for c, n in counts.items() if c != reply)
        return seen_k, collided

    skewed = agreement_task(facts, taken, refs=6, ties=True, min_right=1, skew=3.0)
    seen_k, collided = collisions(skewed, 0)
    assert 1 in seen_k and 6 in seen_k  # all six different (the right one first) occur too
    _, uniform = collisions(agreement_task(facts, taken, refs=6, ties=True, min_right=1), 0)
    assert collided > uniform  # made-up codes collide more often when they are skewed
    with pytest.raises(ValueError, match="ties"):
        agreement_task(facts, taken, refs=6, min_right=1)
    with pytest.raises(ValueError, match="skew"):
        agreement_task(facts, taken, refs=6, ties=True, skew=-1.0)


def test_default_aggregator_is_a_pure_reader_and_its_skew_is_a_model_field():
    cfg = MoAClaimsConfig()
    assert cfg.aggregator_synth == 1.0 and cfg.aggregator_agree == 1.0
    assert model_spec(dataclasses.replace(cfg, aggregator_skew=0.0)) != model_spec(cfg)
    with pytest.raises(ValueError, match="aggregator_skew"):
        MoAClaimsConfig(aggregator_skew=-0.5)
