"""Sampling, pairs, one iteration, checkpoints and resume, LoRA through peft, bad input."""

from __future__ import annotations

import json

import pytest
import torch

from paperlab.claims import UserError
from paperlab.papers.irpo import (
    IRPOConfig,
    build_pairs,
    iterative_rpo,
    last_iteration,
    load_iteration,
    pair_batch,
    sample_chains,
    sample_completions,
    sequence_logps,
    sft,
    tiny_llama,
    train_iteration,
)

SMALL = dict(iterations=2, samples=3, pairs=2, steps=2, batch_size=4, maj_k=2)


@pytest.fixture(scope="module")
def m0():
    torch.manual_seed(0)
    model = tiny_llama(dim=32, n_layers=1)
    sft(model, sample_chains(32, seed=1), steps=5, batch_size=8)
    return model


def test_build_pairs_winners_beat_losers_and_respect_k():
    problems = sample_chains(3, seed=0)
    gold = [p.solution for p in problems]
    wrong = [s[:-1] + str((int(s[-1]) + 1) % 10) for s in gold]
    completions = [[gold[0], wrong[0], wrong[0] + "0", "1+1"], [gold[1]] * 3, [wrong[2]] * 2]
    pairs, stats = build_pairs(problems, completions, k=2, seed=0)
    assert len(pairs) == 2  # only problem 0 has both winners and losers; capped at k
    assert stats["pair_fraction"] == pytest.approx(1 / 3)
    assert stats["sample_acc"] == pytest.approx(4 / 9)
    for pair in pairs:
        assert pair.chosen != pair.rejected
    with pytest.raises(UserError, match="pairs"):
        build_pairs(problems, completions, k=0, seed=0)


def test_sampling_is_seeded(m0):
    problems = sample_chains(4, seed=2)
    a = sample_completions(m0, problems, n=3, temperature=0.8, seed=5)
    b = sample_completions(m0, problems, n=3, temperature=0.8, seed=5)
    assert a == b and len(a) == 4 and all(len(x) == 3 for x in a)
    with pytest.raises(UserError, match="samples"):
        sample_completions(m0, problems, n=0, temperature=0.8, seed=5)


def test_pair_batch_masks_only_completions():
    problems = sample_chains(2, seed=0)
    pairs, _ = build_pairs(
        problems, [[p.solution, p.solution + "1"] for p in problems], k=1, seed=0
    )
    b = pair_batch(pairs)
    n_tokens = [len(p.chosen) for p in pairs] + [len(p.rejected) for p in pairs]
    assert b["mask"].sum(-1).tolist() == n_tokens


def _pairs(m0):
    problems = sample_chains(8, seed=3)
    texts = [[p.solution, p.solution + "0"] for p in problems]  # the loser's answer is off
    return build_pairs(problems, texts, k=1, seed=0)[0]


def test_train_iteration_leaves_reference_untouched(m0):
    before = {k: v.clone() for k, v in m0.state_dict().items()}
    pairs = _pairs(m0)
    new, hist = train_iteration(m0, pairs, IRPOConfig(**SMALL), seed=0)
    assert all(torch.equal(before[k], v) for k, v in m0.state_dict().items())
    assert any(not torch.equal(before[k], v) for k, v in new.state_dict().items())
    assert len(hist["chosen_logp"]) == 2


def test_nll_term_raises_winner_logprob_more_than_dpo_alone(m0):
    pairs = _pairs(m0)
    start = sequence_logps(m0, pairs)[: len(pairs)].mean()
    cfg = dict(SMALL, steps=15, lr=3e-3)
    with_nll, _ = train_iteration(m0, pairs, IRPOConfig(**cfg, alpha=1.0), seed=0)
    dpo, _ = train_iteration(m0, pairs, IRPOConfig(**cfg, alpha=0.0), seed=0)
    gain_nll = sequence_logps(with_nll, pairs)[: len(pairs)].mean() - start
    gain_dpo = sequence_logps(dpo, pairs)[: len(pairs)].mean() - start
    assert gain_nll > gain_dpo


def test_lora_goes_through_peft_and_merges(m0):
    pytest.importorskip("peft")
    pairs = _pairs(m0)
    new, _ = train_iteration(m0, pairs, IRPOConfig(**SMALL, lora_rank=2, lr=1e-2), seed=0)
    assert type(new) is type(m0)  # merged back into a plain Llama
    assert set(new.state_dict()) == set(m0.state_dict())
    changed = [k for k, v in new.state_dict().items() if not torch.equal(v, m0.state_dict()[k])]
    assert changed and all("proj" in k for k in changed)  # only the adapted projections


def test_checkpoints_load_back_and_resume_continues(m0, private_tempdir):
    problems, test = sample_chains(6, seed=4), sample_chains(4, seed=5)
    out = private_tempdir / "run"
    cfg = IRPOConfig(**SMALL)
    full = iterative_rpo(m0, problems, cfg, eval_problems=test, out_dir=out, seed=1)
    assert last_iteration(out) == 2
    assert [h["iteration"] for h in json.loads((out / "history.json").read_text())] == [0, 1, 2]
    loaded = load_iteration(out / "iter_2.safetensors")
    for k, v in full.model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    with pytest.raises(UserError, match="resume"):
        iterative_rpo(m0, problems, cfg, out_dir=out, seed=1)
    # stop after 1 iteration, then resume to 2: the same models as the uninterrupted run
    out2 = private_tempdir / "run2"
    kw = dict(eval_problems=test, out_dir=out2, seed=1)
    iterative_rpo(m0, problems, IRPOConfig(**{**SMALL, "iterations": 1}), **kw)
    resumed = iterative_rpo(m0, problems, cfg, resume=True, **kw)
    assert [h["iteration"] for h in resumed.history] == [0, 1, 2]
    for k, v in full.model.state_dict().items():
        assert torch.allclose(resumed.model.state_dict()[k], v, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(samples=0), "samples"),
        (dict(pairs=-1), "pairs"),
        (dict(nll="mean"), "nll"),
        (dict(iterations=0), "iterations"),
    ],
)
def test_config_errors_name_the_field(kwargs, match):
    with pytest.raises(UserError, match=match):
        IRPOConfig(**kwargs)


def test_empty_problem_set_is_refused(m0, private_tempdir):
    with pytest.raises(UserError, match="empty"):
        iterative_rpo(m0, [], IRPOConfig(**SMALL), out_dir=private_tempdir / "x")
    assert not (private_tempdir / "x").exists()


def test_a_model_of_another_vocabulary_is_refused(private_tempdir):
    from paperlab.core.llama import Llama, LlamaConfig

    other = Llama(LlamaConfig(vocab_size=256, dim=16, n_layers=1, n_heads=2, max_seq_len=64))
    with pytest.raises(UserError, match="vocabulary"):
        iterative_rpo(other, sample_chains(2), IRPOConfig(**SMALL), out_dir=private_tempdir / "y")
    assert not (private_tempdir / "y").exists()
