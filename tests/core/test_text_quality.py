import math

import pytest

from paperlab.core.criteria import at_least
from paperlab.core.text_quality import (
    distinct_n,
    longest_repeated_span,
    quality_gated,
    text_quality,
)


def brute_longest_repeat(seq):
    best = 0
    for i in range(len(seq)):
        for j in range(i + 1, len(seq)):
            k = 0
            while j + k < len(seq) and seq[i + k] == seq[j + k]:
                k += 1
            best = max(best, k)
    return best


def test_distinct_n_counts_unique_ngrams():
    assert distinct_n([1, 2, 3, 4, 5], 4) == 1.0
    assert distinct_n([7] * 10, 4) == pytest.approx(1 / 7)
    assert distinct_n("abab", 2) == pytest.approx(2 / 3)
    assert math.isnan(distinct_n([1, 2], 4))
    # a loop of period p over T tokens: about p / T
    loop = [1, 2, 3, 4, 5] * 20
    assert distinct_n(loop, 4) == pytest.approx(5 / 97)


def test_longest_repeated_span_matches_brute_force():
    import random

    rng = random.Random(0)
    for _ in range(200):
        seq = [rng.randrange(3) for _ in range(rng.randrange(0, 30))]
        assert longest_repeated_span(seq) == brute_longest_repeat(seq), seq
    assert longest_repeated_span("abcabc") == 3
    assert longest_repeated_span("aaaa") == 3  # overlapping occurrences count
    assert longest_repeated_span("abcd") == 0


def test_text_quality_summary():
    q = text_quality([b"for i in range(10):\n    x += i", [5] * 20, b"ab"])
    assert q["distinct4"] == pytest.approx((1.0 + 1 / 17) / 2)  # b"ab" is too short: skipped
    assert q["distinct4_min"] == pytest.approx(1 / 17)
    assert q["longest_repeat"] == 19
    assert q["longest_repeat_fraction"] == pytest.approx(19 / 20)
    with pytest.raises(ValueError, match="continuations"):
        text_quality([])
    with pytest.raises(ValueError, match="n must be"):
        distinct_n([1, 2, 3], 0)


def test_quality_gated_withholds_below_floor():
    crit = quality_gated(at_least("speedup", 1.0), floor=0.5)
    assert crit.judge({"speedup": 2.0, "distinct4": 0.9})[0] == "holds"
    assert crit.judge({"speedup": 0.5, "distinct4": 0.9})[0] == "fails"
    verdict, reason = crit.judge({"speedup": 2.0, "distinct4": 0.2})
    assert verdict == "inconclusive" and "0.20" in reason and "would be holds" in reason
    assert crit.judge({"speedup": 2.0, "distinct4": float("nan")})[0] == "inconclusive"
    assert crit.judge({"speedup": 2.0})[0] == "inconclusive"  # figure not measured


def test_decode_target_spec_and_training():
    import dataclasses

    import torch

    from paperlab.core.lm import DecodeTarget, decode_prompts, train_decode_target

    spec = DecodeTarget(dim=16, n_layers=2, n_heads=2, seq_len=16, batch_size=2, steps=2)
    assert spec.llama_config().n_layers == 2 and spec.llama_config(1).n_layers == 1
    assert spec.recipe().steps == 2 and dataclasses.asdict(spec)["lr"] == spec.lr
    a, hist = train_decode_target(spec, seed=0)
    b, _ = train_decode_target(spec, seed=0)
    assert not a.training and len(hist["loss"]) == 2
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k  # the seed fixes weights and batches
    prompts = decode_prompts(3, 20)
    assert len(prompts) == 3 and all(len(p) == 20 for p in prompts)
    with pytest.raises(ValueError, match="n_heads"):
        DecodeTarget(dim=10, n_heads=4)
    with pytest.raises(ValueError, match="steps"):
        DecodeTarget(steps=0)
    with pytest.raises(TypeError, match="DecodeTarget"):
        train_decode_target({"dim": 16}, seed=0)
