"""Multi-token prediction (arXiv 2404.19737): parameter parity, the memory-efficient schedule
against the naive backward, head-1 decoding, self-speculative decoding == greedy, and the tiny
claims end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from paperlab.claims import VERDICTS
from paperlab.core.llama import Llama
from paperlab.core.train import TrainConfig, train
from paperlab.papers.mtp import (
    IGNORE_INDEX,
    DraftHeads,
    MTPConfig,
    MultiTokenLlama,
    efficient_backward,
    greedy_generate,
    head_losses,
    make_loss_fn,
    mtp_loss,
    self_speculative_generate,
)
from paperlab.runner import plan_run, run_plans

SMALL = dict(vocab_size=16, dim=32, n_layers=5, n_heads=2, ffn_hidden=64, max_seq_len=256)


def make_model(n_future: int = 4, seed: int = 0, **overrides) -> MultiTokenLlama:
    torch.manual_seed(seed)
    return MultiTokenLlama(config=MTPConfig(**{**SMALL, **overrides}, n_future=n_future)).eval()


def random_prompts(count: int, vocab: int, seed: int = 0) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 24, (count,), generator=g).tolist()
    return [torch.randint(0, vocab, (n,), generator=g).tolist() for n in lengths]


@pytest.fixture(scope="module")
def trained() -> MultiTokenLlama:
    """A 4-head model trained briefly on arithmetic progressions mod 16: its heads agree often
    but not always, so drafts are both accepted and rejected."""
    model = make_model(4)
    g = torch.Generator().manual_seed(0)

    def batches(step):
        start = torch.randint(0, 16, (16, 1), generator=g)
        stride = torch.randint(1, 4, (16, 1), generator=g)
        seq = (start + stride * torch.arange(33)) % 16
        return seq[:, :-1], seq[:, 1:]

    cfg = TrainConfig(steps=80, lr=1e-2, warmup_steps=10, manual_backward=True, progress=False)
    train(model, make_loss_fn(efficient=True), batches, cfg)
    return model.eval()


# ---------------------------------------------------------------------------------------------
# model


@pytest.mark.parametrize("n_future", [1, 2, 3, 5])
def test_parameter_parity_with_next_token_model(n_future):
    model = make_model(n_future)
    ntp = Llama(MTPConfig(**SMALL, n_future=1).base_config())
    assert ntp.config.n_layers == SMALL["n_layers"]
    assert model.num_params() == ntp.num_params()
    assert model.config.trunk_layers == SMALL["n_layers"] - n_future
    assert len(model.heads) == n_future
    # n = 1 is exactly a core Llama of depth L: same state-dict keys and shapes
    if n_future == 1:
        model.llama.load_state_dict(ntp.state_dict())


def test_config_rejects_more_heads_than_layers():
    with pytest.raises(ValueError, match="n_future"):
        MTPConfig(**SMALL, n_future=6)


def test_forward_stacks_the_heads():
    model = make_model(3)
    x = torch.randint(0, 16, (2, 10))
    with torch.no_grad():
        logits = model(x)  # (B, T, n, V)
        z = model.trunk(x)
        for i in range(3):
            torch.testing.assert_close(logits[:, :, i], model.unembed(model.head_hidden(i, z)))
        # head 1 alone is the plain core Llama (trunk + its last layer)
        torch.testing.assert_close(logits[:, :, 0], model.llama(x))
    assert logits.shape == (2, 10, 3, 16)


def test_cached_forward_of_all_heads_equals_full_forward():
    model = make_model(3)
    x = torch.randint(0, 16, (2, 12))
    cache = model.new_cache(batch_size=2, max_len=4)  # grows
    with torch.no_grad():
        steps = torch.cat(
            [
                model(x[:, :5], cache=cache),
                model(x[:, 5:6], cache=cache),
                model(x[:, 6:], cache=cache),
            ],
            dim=1,
        )
        torch.testing.assert_close(steps, model(x), atol=1e-5, rtol=0)
    assert {cache.seq_len(i) for i in range(SMALL["n_layers"])} == {12}


def test_efficient_schedule_gradients_equal_naive():
    x = torch.randint(0, 16, (3, 12), generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 16, (3, 12), generator=torch.Generator().manual_seed(2))
    y[0, :5] = IGNORE_INDEX  # masked targets are handled the same way in both
    naive, efficient = make_model(4).double().train(), make_model(4).double().train()
    loss_naive, heads_naive = mtp_loss(naive, x, y)
    loss_naive.backward()
    loss_eff, heads_eff = efficient_backward(efficient, x, y)
    torch.testing.assert_close(loss_eff, loss_naive.detach())
    torch.testing.assert_close(torch.stack(heads_eff), torch.stack(heads_naive).detach())
    grads = dict(naive.named_parameters())
    for name, p in efficient.named_parameters():
        assert p.grad is not None, name
        torch.testing.assert_close(p.grad, grads[name].grad, rtol=1e-9, atol=1e-12, msg=name)


def test_training_loop_with_manual_backward_learns(trained):
    x = torch.arange(32)[None] % 16
    assert all(loss < 1.0 for loss in head_losses(trained, x[:, :-1], x[:, 1:]))  # chance: 2.77


# ---------------------------------------------------------------------------------------------
# decoding


def test_head1_greedy_equals_full_recompute():
    model = make_model(3)
    for prompt in random_prompts(5, 16):
        ids = list(prompt)
        with torch.no_grad():
            for _ in range(12):  # no cache: the whole sequence each step, head 1 only
                ids.append(int(model(torch.tensor([ids]), n_heads=1)[0, -1, 0].argmax()))
        assert greedy_generate(model, prompt, max_new_tokens=12) == ids[len(prompt) :]


def test_self_speculative_equals_greedy_on_random_model():
    model = make_model(4, vocab_size=6).double()  # tiny vocab: drafts sometimes agree by chance
    drafted = accepted = 0
    for prompt in random_prompts(40, 6, seed=1):
        for new in (1, 2, 7, 30):
            result = self_speculative_generate(model, prompt, max_new_tokens=new)
            assert result.tokens == greedy_generate(model, prompt, max_new_tokens=new)
            drafted, accepted = drafted + result.drafted, accepted + result.accepted
    assert 0 < accepted < drafted


def test_self_speculative_equals_greedy_on_trained_model(trained):
    drafted = accepted = forwards = tokens = 0
    for prompt in random_prompts(30, 16, seed=2):
        for n_draft in (1, 3):
            r = self_speculative_generate(trained, prompt, max_new_tokens=40, n_draft=n_draft)
            assert r.tokens == greedy_generate(trained, prompt, max_new_tokens=40)
            assert sum(r.per_forward) + 1 == len(r.tokens)  # + the prefill's token
            drafted, accepted = drafted + r.drafted, accepted + r.accepted
            forwards, tokens = forwards + r.forwards, tokens + len(r.tokens)
    assert 0.3 < accepted / drafted < 1.0  # both acceptance and rejection were exercised
    assert tokens / forwards > 1.5


def test_stop_tokens_match_greedy(trained):
    for prompt in random_prompts(10, 16, seed=3):
        r = self_speculative_generate(trained, prompt, max_new_tokens=40, stop_tokens=(5,))
        assert r.tokens == greedy_generate(trained, prompt, max_new_tokens=40, stop_tokens=(5,))


def test_cache_after_speculative_decoding_equals_fresh_prefill(trained):
    """After rejections and truncations the trunk/head-1 cache holds exactly the keys and values
    of the accepted sequence (prompt + all new tokens but the last)."""
    for prompt in random_prompts(20, 16, seed=4):
        cache = trained.new_cache(max_len=8)  # small: the buffers must grow on the way
        r = self_speculative_generate(trained, prompt, max_new_tokens=50, cache=cache)
        if 0 < r.accepted < r.drafted:  # drafts were both accepted and rejected (truncated)
            break
    else:
        pytest.fail("no prompt with both accepted and rejected drafts")
    seq = torch.tensor([prompt + r.tokens[:-1]])
    fresh = trained.new_cache()
    with torch.no_grad():
        trained.head_hidden(0, trained.trunk(seq, cache=fresh), cache=fresh)
    for layer in range(trained.config.trunk_layers + 1):
        n = seq.shape[1]
        assert cache.seq_len(layer) == n
        torch.testing.assert_close(cache.k[layer][:, :, :n], fresh.k[layer][:, :, :n])
        torch.testing.assert_close(cache.v[layer][:, :, :n], fresh.v[layer][:, :, :n])


@pytest.mark.parametrize("n_kv_heads", [2, 1])
def test_draft_heads_equal_the_head_layers(n_kv_heads):
    model = make_model(4, n_kv_heads=n_kv_heads).double()
    z = torch.randn(1, 9, 32, dtype=torch.double)
    drafts = DraftHeads(model, n_draft=3, max_len=4)
    with torch.no_grad():
        chunks = [drafts(z[:, :5]), drafts(z[:, 5:6]), drafts(z[:, 6:])]  # prefill, 1, then 3
        reference = torch.stack([model.head_hidden(i, z)[0] for i in range(1, 4)])
    torch.testing.assert_close(torch.cat(chunks, dim=1), reference)


def test_hf_conversion_of_head1_model():
    pytest.importorskip("transformers")
    from paperlab.core.hf import to_hf_model

    model = make_model(3)
    hf = to_hf_model(model.llama)
    x = torch.randint(0, 16, (2, 11))
    with torch.no_grad():
        torch.testing.assert_close(hf(x).logits, model(x, n_heads=1)[:, :, 0], atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------
# claims


def test_tiny_claims_run(tmp_path: Path):
    plans = plan_run(["mtp"], scale="tiny")
    results, errors, interrupted = run_plans(
        plans, scale="tiny", seed=0, device="cpu", out=tmp_path, progress=False
    )
    assert not errors and not interrupted, errors
    assert [r.claim_id for r in results] == [
        "speedup",
        "speedup_sampled",
        "memory",
        "induction",
        "val_loss",
    ]
    for r in results:
        assert r.verdict in VERDICTS and r.verdict != "skipped"
        assert (
            r.measured
            and plans[0].paper.claim(r.claim_id).judged_by.judge(r.measured)[0] == r.verdict
        )
    by_id = {r.claim_id: r.measured for r in results}
    assert by_id["speedup"]["identical_fraction"] == 1.0  # exactness does not depend on scale
