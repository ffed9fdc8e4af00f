"""Kangaroo (arXiv 2404.18911): greedy decoding identical to the target's, the caches against a
no-cache recomputation, adapter training, the speculative sampling rule against the target's
exact marginals, argument checks, and adapter checkpoints."""

from __future__ import annotations

import itertools

import pytest
import torch

from paperlab.core.data.text import random_batches
from paperlab.core.device import torch_threads
from paperlab.core.generate import generate, logits_to_probs
from paperlab.core.llama import Llama, LlamaConfig
from paperlab.core.stats import chain_marginals, chi_square_goodness_of_fit
from paperlab.core.train import TrainConfig
from paperlab.papers.kangaroo import (
    KangarooAdapter,
    KangarooDecoder,
    evaluate_adapter,
    soft_cross_entropy,
    teacher,
    train_adapter,
)
from paperlab.papers.kangaroo.experiments import sample_from_draft

SMALL = dict(vocab_size=16, dim=32, n_layers=4, n_heads=2, ffn_hidden=64, max_seq_len=96)
EXIT = 2


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    with torch_threads(1):  # tiny models: per-op overhead, and the machine may be shared
        yield


def peaky_model(
    seed: int = 0, *, scale=8.0, deep_scale=4.0, exit_layer=EXIT, dtype=torch.float64, **overrides
) -> Llama:
    """A random target with weights scaled up, so its distributions are peaky. The layers after
    the exit are scaled less, so the shallow draft agrees with the target often but not always."""
    torch.manual_seed(seed)
    model = Llama(LlamaConfig(**{**SMALL, **overrides})).to(dtype).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2:
                deep = name.startswith("layers.") and int(name.split(".")[1]) >= exit_layer
                p.mul_(deep_scale if deep else scale)
    return model


def peaky_adapter(model: Llama, *, exit_layer=EXIT, scale=4.0, seed=0) -> KangarooAdapter:
    """An untrained adapter whose attention is large enough to matter (so its cache matters)."""
    torch.manual_seed(seed)
    adapter = KangarooAdapter.for_model(model, exit_layer=exit_layer)
    with torch.no_grad():
        for p in adapter.parameters():
            if p.dim() == 2:
                p.mul_(scale)
    return adapter.eval()


def random_prompts(count: int, vocab: int, seed: int = 0, max_len: int = 20) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, max_len + 1, (count,), generator=g).tolist()
    return [torch.randint(0, vocab, (n,), generator=g).tolist() for n in lengths]


@pytest.fixture(scope="module")
def target() -> Llama:
    return peaky_model()


@pytest.fixture(scope="module")
def adapter(target) -> KangarooAdapter:
    return peaky_adapter(target)


PROMPTS = random_prompts(10, SMALL["vocab_size"], seed=1)
NEW = 20


@pytest.fixture(scope="module")
def plain(target) -> list[list[int]]:
    return [generate(target, [p], max_new_tokens=NEW)[0] for p in PROMPTS]


# ---------------------------------------------------------------------------------------------
# greedy decoding is the target's greedy decoding


@pytest.mark.parametrize("gamma", [1, 3, 6])
@pytest.mark.parametrize("eta", [0.0, 0.4, 0.6, 0.8, 1.0])
def test_greedy_equals_plain_greedy(target, adapter, plain, eta, gamma):
    drafted = accepted = 0
    for draft in (adapter, None):
        dec = KangarooDecoder(target, draft, exit_layer=EXIT, eta=eta, gamma=gamma)
        for prompt, expected in zip(PROMPTS, plain, strict=True):
            result = dec.generate(prompt, max_new_tokens=NEW)
            assert result.tokens == expected, (prompt, draft is None)
            drafted, accepted = drafted + result.drafted, accepted + result.accepted
    assert 0 < accepted < drafted  # both branches of the verification ran


def test_greedy_with_stop_tokens(target, adapter, plain):
    dec = KangarooDecoder(target, adapter, eta=0.0, gamma=4)
    cut_early = 0
    for prompt, full in zip(PROMPTS, plain, strict=True):
        # the first token (from the prefill), one in the middle, one at the end, and an absent one
        absent = next(t for t in range(SMALL["vocab_size"]) if t not in full)
        for stops in ([full[0]], [full[len(full) // 2]], [full[-1]], [absent], [absent, full[5]]):
            expected = generate(target, [prompt], max_new_tokens=NEW, stop_tokens=stops)[0]
            result = dec.generate(prompt, max_new_tokens=NEW, stop_tokens=stops)
            assert result.tokens == expected, (prompt, stops)
            assert sum(t in stops for t in result.tokens) <= 1
            cut_early += len(expected) < NEW
    assert cut_early > 10


@pytest.mark.parametrize("draft", ["adapter", "none"])
def test_greedy_zero_one_and_full_budget(target, adapter, draft):
    dec = KangarooDecoder(
        target, adapter if draft == "adapter" else None, exit_layer=EXIT, eta=0.0, gamma=6
    )
    prompt = PROMPTS[0]
    empty = dec.generate(prompt, max_new_tokens=0)
    assert empty.tokens == [] == generate(target, [prompt], max_new_tokens=0)[0]
    assert empty.target_forwards == empty.drafted == empty.draft_steps == 0
    one = dec.generate(prompt, max_new_tokens=1)
    assert one.tokens == generate(target, [prompt], max_new_tokens=1)[0]
    assert (one.target_forwards, one.drafted, one.accept_lengths) == (1, 0, [])
    two = dec.generate(prompt, max_new_tokens=2)  # room for the prefill token + a bonus only
    assert two.tokens == generate(target, [prompt], max_new_tokens=2)[0]
    assert two.drafted == 0 and two.accept_lengths == [1]
    # up to the last position the model has (drafting never runs past the budget)
    n = SMALL["max_seq_len"] - len(prompt)
    assert (
        dec.generate(prompt, max_new_tokens=n).tokens
        == generate(target, [prompt], max_new_tokens=n)[0]
    )


def test_prompt_as_tensor(target, adapter, plain):
    dec = KangarooDecoder(target, adapter)
    prompt = PROMPTS[3]
    for form in (torch.tensor(prompt), torch.tensor([prompt])):
        assert dec.generate(form, max_new_tokens=NEW).tokens == plain[3]


# ---------------------------------------------------------------------------------------------
# the caches: every draft and target distribution equals a recomputation without cache


class RecordingDecoder(KangarooDecoder):
    """Records what the decoder computed with its caches, and on which tokens.

    The token at each position is tracked through `model.embed` (patched by `instrument`): a
    call writes its tokens at the shallow cache's current length, after any truncation."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cache = None
        self.tokens: list[int] = []
        self.drafts: list[tuple[int, int, list[int], torch.Tensor]] = []
        self.verifies: list[tuple[int, list[int], torch.Tensor, int, int]] = []

    def instrument(self, monkeypatch: pytest.MonkeyPatch) -> None:
        model = self.model
        real_new_cache, real_embed = model.new_cache, model.embed

        def new_cache(*args, **kwargs):
            self.cache, self.tokens = real_new_cache(*args, **kwargs), []
            return self.cache

        def embed(ids):
            self.tokens[self.cache.seq_len(0) :] = ids[0].tolist()
            return real_embed(ids)

        monkeypatch.setattr(model, "new_cache", new_cache)
        monkeypatch.setattr(model, "embed", embed)

    def _draft_logits(self, h_exit, acache):
        logits = super()._draft_logits(h_exit, acache)
        pos = self.cache.seq_len(0) - 1  # the shallow layers have just run the last token
        assert len(self.tokens) == pos + 1
        if acache is not None:  # the adapter has caught up with the shallow layers
            assert acache.seq_len(0) == pos + 1
        self.drafts.append((pos, h_exit.shape[1], list(self.tokens), logits.clone()))
        return logits

    def _verify(self, logits, drafts, qs, sampling):
        verified = super()._verify(logits, drafts, qs, sampling)
        end = self.cache.seq_len(self.model.config.n_layers - 1)
        assert len(self.tokens) == end == self.cache.seq_len(0)  # deep layers caught up
        assert logits.shape[0] == len(drafts) + 1
        self.verifies.append((end, list(self.tokens), logits.clone(), len(drafts), len(verified)))
        return verified


@torch.no_grad()
def draft_logits_no_cache(model, adapter, tokens, exit_layer):
    h_exit = model.run_layers(model.embed_tokens(torch.tensor([tokens])), 0, exit_layer)
    if adapter is None:
        return model.head(h_exit)[0]
    return adapter(model, h_exit)[0]


@pytest.mark.parametrize(
    "draft, eta, gamma, temperature",
    [
        ("adapter", 0.0, 4, 0.0),
        ("adapter", 0.6, 6, 0.0),
        ("adapter", 0.0, 3, 1.0),
        ("none", 0.0, 4, 0.0),
    ],
)
def test_cached_draft_and_target_logits_equal_recompute(
    target, adapter, monkeypatch, draft, eta, gamma, temperature
):
    draft = adapter if draft == "adapter" else None
    dec = RecordingDecoder(target, draft, exit_layer=EXIT, eta=eta, gamma=gamma)
    dec.instrument(monkeypatch)
    gen = torch.Generator().manual_seed(0)
    full_rounds = rejected_rounds = unread_feeds = 0
    for prompt in PROMPTS[:5]:
        dec.drafts, dec.verifies = [], []
        result = dec.generate(prompt, max_new_tokens=30, temperature=temperature, generator=gen)
        seq = prompt + result.tokens
        # every draft distribution, on the tokens it saw (rejected drafts included)
        for pos, fed, seen, logits in dec.drafts:
            assert seen[: len(prompt)] == prompt
            expected = draft_logits_no_cache(target, draft, seen, EXIT)[pos]
            torch.testing.assert_close(logits, expected, atol=1e-6, rtol=0)
            unread_feeds += fed == 2  # the last draft of an all-accepted round, read late
        # every verification: the target's logits at the round's positions [t, d_1..d_k]
        for end, seen, logits, k, n_verified in dec.verifies:
            with torch.no_grad():
                expected = target(torch.tensor([seen]))[0, end - k - 1 : end]
            torch.testing.assert_close(logits, expected, atol=1e-6, rtol=0)
            # the accepted drafts are in the output, right after the verified prefix
            accepted = slice(end - k, end - k + n_verified - 1)
            assert seq[accepted] == seen[accepted]
            full_rounds += k > 0 and n_verified == k + 1
            rejected_rounds += n_verified <= k
        # the bookkeeping agrees with what happened
        ks = [v[3] for v in dec.verifies]
        assert result.accept_lengths == [v[4] for v in dec.verifies]
        assert result.target_forwards == 1 + len(result.accept_lengths)
        assert result.drafted == sum(ks) and result.accepted == sum(result.accept_lengths) - len(ks)
        assert 0 <= result.accepted <= result.drafted
        assert result.draft_steps == sum(k + 1 for k in ks)
        assert len(result.tokens) == 1 + sum(result.accept_lengths) == 30
        if temperature == 0.0:
            assert result.tokens == generate(target, [prompt], max_new_tokens=30)[0]
    assert full_rounds > 0 and rejected_rounds > 0
    if draft is not None:
        assert unread_feeds > 0


# ---------------------------------------------------------------------------------------------
# the adapter and its training


def test_adapter_starts_as_the_exit_layer_through_the_targets_head(target):
    fresh = KangarooAdapter.for_model(target, exit_layer=EXIT)
    x = torch.randint(0, SMALL["vocab_size"], (2, 12), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        h_exit, logits = teacher(target, x, EXIT)
        torch.testing.assert_close(logits, target(x))
        torch.testing.assert_close(h_exit, target.run_layers(target.embed(x), 0, EXIT))
        # attention output is small at init: the draft is close to norm + head at the exit
        draft = fresh(target, h_exit)
        no_adapter = target.head(h_exit)
    assert float((draft.softmax(-1) - no_adapter.softmax(-1)).abs().max()) < 0.2
    assert fresh.num_params() < 0.3 * target.num_params()


def test_soft_cross_entropy_is_the_entropy_when_draft_equals_target():
    logits = torch.randn(3, 5, 11, generator=torch.Generator().manual_seed(0))
    loss, accept = soft_cross_entropy(logits, logits)
    p = logits.softmax(-1)
    torch.testing.assert_close(loss, -(p * p.log()).sum(-1).mean())
    assert float(accept) == pytest.approx(1.0)
    other = torch.randn(3, 5, 11, generator=torch.Generator().manual_seed(1))
    loss2, accept2 = soft_cross_entropy(other, logits)
    assert float(loss2) > float(loss) and float(accept2) < 1.0  # Gibbs' inequality


def test_adapter_training_lowers_soft_ce_and_leaves_target_untouched():
    model = peaky_model(seed=2, deep_scale=8.0, dtype=torch.float32)  # the draft has room to learn
    V = SMALL["vocab_size"]
    data = torch.randint(0, V, (4096,), generator=torch.Generator().manual_seed(0))
    fixed = list(itertools.islice(random_batches(data, 8, 32, generator=123), 2))
    adapter = KangarooAdapter.for_model(model, exit_layer=EXIT)
    model.train()
    model.lm_head.weight.requires_grad_(False)  # mixed flags, restored exactly
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    before_state = {k: v.clone() for k, v in model.state_dict().items()}
    adapter_before = {k: v.clone() for k, v in adapter.state_dict().items()}

    before = evaluate_adapter(model, adapter, fixed, n_batches=2)
    cfg = TrainConfig(steps=40, lr=3e-3, progress=False)
    hist = train_adapter(model, adapter, random_batches(data, 8, 32, generator=1), cfg)
    after = evaluate_adapter(model, adapter, fixed, n_batches=2)

    assert after["soft_ce"] < before["soft_ce"] - 0.05
    assert after["accept"] > before["accept"] + 0.02
    assert {"loss", "accept", "top1"} <= set(hist)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before_state[k]), k
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())
    assert model.training  # the mode is restored too
    assert any(not torch.equal(v, adapter_before[k]) for k, v in adapter.state_dict().items())


# ---------------------------------------------------------------------------------------------
# sampling keeps the target's distribution (exact marginals, chi-square goodness of fit)


S_V, S_PROMPT, S_NEW, S_N = 6, [1, 4, 2, 0, 5, 3, 3, 1], 4, 800


@pytest.fixture(scope="module")
def sampling_pair():
    """A peaky 6-token target and an untrained adapter at layer 1: a poor draft on purpose."""
    model = peaky_model(0, deep_scale=8.0, exit_layer=1, vocab_size=S_V, n_layers=3)
    return model, KangarooAdapter.for_model(model, exit_layer=1).eval()


@pytest.mark.parametrize(
    "warp, eta, gamma",
    [({}, 0.0, 3), ({"top_k": 4, "top_p": 0.9}, 0.5, 3)],
)
def test_sampling_matches_exact_target_marginals(sampling_pair, warp, eta, gamma):
    model, adapter = sampling_pair

    def target_probs(seqs):
        return logits_to_probs(model(seqs)[:, -1], temperature=1.0, **warp)

    def draft_probs(seqs):
        h_exit = model.run_layers(model.embed(seqs), 0, adapter.exit_layer)
        return logits_to_probs(adapter(model, h_exit)[:, -1], temperature=1.0, **warp)

    p_exact = chain_marginals(target_probs, S_PROMPT, S_V, S_NEW)
    q_exact = chain_marginals(draft_probs, S_PROMPT, S_V, S_NEW)
    for m in p_exact + q_exact:
        assert float(m.sum()) == pytest.approx(1.0)
    tv = [0.5 * float((p - q).abs().sum()) for p, q in zip(p_exact, q_exact, strict=True)]
    assert min(tv) > 0.1  # the draft's marginals are clearly not the target's

    gen = torch.Generator().manual_seed(0)
    dec = KangarooDecoder(model, adapter, eta=eta, gamma=gamma)
    results = [
        dec.generate(S_PROMPT, max_new_tokens=S_NEW, temperature=1.0, generator=gen, **warp)
        for _ in range(S_N)
    ]
    samples = torch.tensor([r.tokens for r in results])
    drafted, accepted = sum(r.drafted for r in results), sum(r.accepted for r in results)
    assert 0.2 * drafted < accepted < 0.95 * drafted  # the accept and the resample path both ran

    # draft-only sampling at the same n, from the same draft
    if warp:  # sample_from_draft has no top_k / top_p: the same chain, warped
        seqs = torch.tensor([S_PROMPT] * S_N)
        with torch.no_grad():
            for _ in range(S_NEW):
                step = torch.multinomial(draft_probs(seqs), 1, generator=gen)
                seqs = torch.cat([seqs, step], dim=1)
        draft_only = seqs[:, len(S_PROMPT) :]
    else:
        draft_only = sample_from_draft(model, adapter, S_PROMPT, S_N, S_NEW, 1.0, gen)

    # new token 1 comes from the prefill; 2 and 3 from the accept / resample rule (the first
    # round drafts 2 tokens), 4 from it or as the bonus token
    for t in range(S_NEW):
        support = p_exact[t] > 0
        assert int(torch.isin(samples[:, t], torch.nonzero(~support).flatten()).sum()) == 0
        assert chi_square_goodness_of_fit(samples[:, t], p_exact[t]) > 1e-3, t
        # the test has power: it rejects the draft's own distribution
        assert chi_square_goodness_of_fit(draft_only[:, t], p_exact[t]) < 1e-3, t


# ---------------------------------------------------------------------------------------------
# argument checks


def test_decoder_rejects_bad_arguments(target, adapter):
    L = SMALL["n_layers"]
    for bad in (0, L, L + 1, -1):
        with pytest.raises(ValueError, match="exit_layer"):
            KangarooDecoder(target, None, exit_layer=bad)
    with pytest.raises(ValueError, match="pass exit_layer"):
        KangarooDecoder(target, None)
    with pytest.raises(ValueError, match="trained at"):
        KangarooDecoder(target, adapter, exit_layer=EXIT + 1)
    KangarooDecoder(target, adapter, exit_layer=EXIT)  # agreeing is fine
    for eta in (-0.1, 1.1):
        with pytest.raises(ValueError, match="eta"):
            KangarooDecoder(target, adapter, eta=eta)
    for gamma in (0, -2):
        with pytest.raises(ValueError, match="gamma"):
            KangarooDecoder(target, adapter, gamma=gamma)
    dec = KangarooDecoder(target, adapter)
    with pytest.raises(ValueError, match="batch size 1"):
        dec.generate(torch.tensor([[1, 2, 3], [4, 5, 6]]), max_new_tokens=4)
    with pytest.raises(ValueError, match="non-empty"):
        dec.generate([], max_new_tokens=4)
    with pytest.raises(ValueError, match="max_seq_len"):
        dec.generate([1, 2, 3], max_new_tokens=SMALL["max_seq_len"] - 2)
    with pytest.raises(ValueError, match="temperature"):
        dec.generate([1, 2, 3], max_new_tokens=4, temperature=-1.0)


def test_adapter_rejects_bad_shapes(target, adapter):
    L = SMALL["n_layers"]
    for bad in (0, L, L + 3):
        with pytest.raises(ValueError, match="exit_layer"):
            KangarooAdapter(target.config, exit_layer=bad)
    with pytest.raises(ValueError, match="n_layers"):
        KangarooAdapter(target.config, exit_layer=1, n_layers=0)
    wider = Llama(LlamaConfig(**{**SMALL, "dim": 64}))
    with pytest.raises(ValueError, match="differ"):
        adapter.check_target(wider)
    with pytest.raises(ValueError, match="differ"):
        KangarooDecoder(wider, adapter)
    same = Llama(LlamaConfig(**{**SMALL, "dropout": 0.1})).to(adapter.norm.weight.dtype)
    adapter.check_target(same)  # dropout is ignored
    with pytest.raises(ValueError, match="float"):  # same shape, other dtype: one clear line
        adapter.check_target(same.to(torch.float16))


def test_from_pretrained_keeps_dtype(tmp_path):
    model = peaky_model(seed=5, dtype=torch.float64)
    adapter = peaky_adapter(model, seed=5)
    loaded = KangarooAdapter.from_pretrained(adapter.save_pretrained(tmp_path / "a.safetensors"))
    assert loaded.norm.weight.dtype == torch.float64
    want = KangarooDecoder(model, adapter, eta=0.0, gamma=3).generate([1, 2], max_new_tokens=8)
    got = KangarooDecoder(model, loaded, eta=0.0, gamma=3).generate([1, 2], max_new_tokens=8)
    assert got.tokens == want.tokens
    as32 = KangarooAdapter.from_pretrained(tmp_path / "a.safetensors", dtype=torch.float32)
    assert as32.norm.weight.dtype == torch.float32


# ---------------------------------------------------------------------------------------------
# checkpoints


def test_save_load_roundtrip(tmp_path):
    model = peaky_model(seed=4, dtype=torch.float32)
    adapter = peaky_adapter(model, seed=4)
    two_layer = KangarooAdapter(model.config, exit_layer=3, n_layers=2)
    for a in (adapter, two_layer):
        path = a.save_pretrained(tmp_path / f"a{len(a.layers)}.safetensors")
        loaded = KangarooAdapter.from_pretrained(path)
        assert (loaded.exit_layer, len(loaded.layers)) == (a.exit_layer, len(a.layers))
        assert loaded.config == a.config
        state = loaded.state_dict()
        assert state.keys() == a.state_dict().keys()
        for k, v in a.state_dict().items():
            assert torch.equal(state[k], v), k
    loaded = KangarooAdapter.from_pretrained(tmp_path / "a1.safetensors").eval()
    for prompt in PROMPTS[:4]:
        ours = KangarooDecoder(model, adapter, eta=0.4, gamma=4).generate(prompt, max_new_tokens=16)
        theirs = KangarooDecoder(model, loaded, eta=0.4, gamma=4).generate(
            prompt, max_new_tokens=16
        )
        assert ours == theirs


def test_load_rejects_other_checkpoints(tmp_path):
    model = Llama(LlamaConfig(**SMALL))
    path = model.save_pretrained(tmp_path / "llama.safetensors")
    with pytest.raises(ValueError, match="expected a KangarooAdapter checkpoint, found Llama"):
        KangarooAdapter.from_pretrained(path)
    with pytest.raises(FileNotFoundError):
        KangarooAdapter.from_pretrained(tmp_path / "missing.safetensors")
