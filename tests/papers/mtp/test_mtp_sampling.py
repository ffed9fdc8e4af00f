"""MTP self-speculative *sampling* (the speculative-sampling rule on the model's own heads) keeps
head 1's distribution: chi-square goodness of fit against the exact marginals of plain sampling
(every prefix enumerated), with a power check; plus the model's own FFN activation in the
batched draft heads."""

from __future__ import annotations

import pytest
import torch

from paperlab.core.generate import logits_to_probs
from paperlab.core.stats import chain_marginals, chi_square_goodness_of_fit
from paperlab.papers.mtp import (
    DraftHeads,
    MTPConfig,
    MultiTokenLlama,
    greedy_generate,
    self_speculative_generate,
)
from paperlab.papers.mtp.speculative import verify_sampled

V, PROMPT, NEW, N = 6, [1, 4, 2, 0, 5, 3, 3, 1], 4, 800


def small_model(seed: int = 0, **overrides) -> MultiTokenLlama:
    torch.manual_seed(seed)
    config = dict(vocab_size=V, dim=32, n_layers=5, n_heads=2, ffn_hidden=64, max_seq_len=64)
    model = MultiTokenLlama(config=MTPConfig(**{**config, **overrides}, n_future=4)).eval()
    with torch.no_grad():  # peakier distributions than a fresh init: a real chain to verify
        model.llama.lm_head.weight.mul_(40.0)
    return model


def test_self_speculative_sampling_matches_exact_head1_marginals():
    model = small_model()
    warp = {"temperature": 0.9, "top_p": 0.95}  # the claims' range, and a warp on p and q alike

    def head1_probs(seqs):
        return logits_to_probs(model(seqs, n_heads=1)[:, -1, 0], **warp)

    exact = chain_marginals(head1_probs, PROMPT, V, NEW)
    gen = torch.Generator().manual_seed(0)
    results = [
        self_speculative_generate(model, PROMPT, max_new_tokens=NEW, generator=gen, **warp)
        for _ in range(N)
    ]
    samples = torch.tensor([r.tokens for r in results])
    drafted, accepted = sum(r.drafted for r in results), sum(r.accepted for r in results)
    assert 0.1 * drafted < accepted < 0.95 * drafted  # the accept and the resample path both ran
    # the lossy alternative at the same N: the heads' own samples at the prompt, unverified
    with torch.no_grad():
        heads = logits_to_probs(model(torch.tensor([PROMPT]))[0, -1], **warp)  # (n, V)
    lossy = torch.multinomial(heads, N, replacement=True, generator=gen).T  # (N, n)
    for t in range(NEW):
        assert chi_square_goodness_of_fit(samples[:, t], exact[t]) > 1e-3, t
        if t > 0:  # token 1 is head 1's in both
            assert chi_square_goodness_of_fit(lossy[:, t], exact[t]) < 1e-3, t  # the test has power


def test_verify_sampled_accepts_when_draft_equals_target():
    p = torch.tensor([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    gen = torch.Generator().manual_seed(0)
    # q == p: every draft stands, then the bonus token from the last row
    assert verify_sampled(p, [0, 1], p[:2], gen) == [0, 1, 2]
    # a draft the target gives zero mass is always rejected, the resample comes from p - q
    q = torch.tensor([[0.0, 0.0, 1.0]])
    out = verify_sampled(p[:2], [2], q, gen)
    assert len(out) == 1 and out[0] in (0, 1)


def test_sampling_with_stop_tokens_and_budget():
    model = small_model(1)
    gen = torch.Generator().manual_seed(3)
    for n in (1, 2, 5, 9):
        out = self_speculative_generate(
            model, PROMPT, max_new_tokens=n, temperature=1.0, generator=gen
        )
        assert len(out.tokens) == n
    out = self_speculative_generate(
        model, PROMPT, max_new_tokens=30, temperature=1.0, generator=gen, stop_tokens=[2]
    )
    assert 2 not in out.tokens[:-1]
    with pytest.raises(ValueError, match="temperature"):
        self_speculative_generate(model, PROMPT, max_new_tokens=3, temperature=-1.0)
    with pytest.raises(ValueError, match="top_p"):
        self_speculative_generate(model, PROMPT, max_new_tokens=3, temperature=1.0, top_p=2.0)


def test_same_generator_seed_same_sampled_text():
    model = small_model(2)

    def run(seed):
        gen = torch.Generator().manual_seed(seed)
        return self_speculative_generate(
            model, PROMPT, max_new_tokens=12, temperature=0.9, generator=gen
        ).tokens

    assert run(5) == run(5)
    plain = greedy_generate(model, PROMPT, max_new_tokens=12)
    assert self_speculative_generate(model, PROMPT, max_new_tokens=12).tokens == plain


def test_draft_heads_use_the_models_activation():
    model = small_model(0, hidden_act="relu").double()
    z = torch.randn(1, 7, 32, dtype=torch.double)
    drafts = DraftHeads(model, n_draft=3, max_len=8)
    with torch.no_grad():
        reference = torch.stack([model.head_hidden(i, z)[0] for i in range(1, 4)])
        torch.testing.assert_close(drafts(z), reference)
