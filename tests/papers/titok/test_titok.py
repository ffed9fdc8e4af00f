"""TiTok (arXiv 2406.07550): tokenizer shapes and the latent-only bottleneck, checkpoints,
MaskGIT's mask schedule and sampler, classifier-free guidance, the AR generator's KV cache,
the label-smoothed masked-token loss."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from paperlab.claims import UserError
from paperlab.core.device import torch_threads
from paperlab.core.parallel import run_jobs
from paperlab.papers.titok import (
    ARGenerator,
    GridTokenizer,
    MaskGIT,
    TiTokTokenizer,
    guided_logits,
    gumbel_noise,
    linear_probe,
    mask_counts,
    mask_ratio,
    masked_token_loss,
    random_mask,
    train_tokenizer,
)
from paperlab.papers.titok.claims import PAPER


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: per-op overhead dominates, and one thread is steadier on a shared CPU."""
    with torch_threads(1):
        yield


SMALL = dict(
    image_size=8,
    channels=3,
    width=32,
    enc_depth=1,
    dec_depth=1,
    n_heads=2,
    codebook_size=16,
    code_dim=4,
)


def images(n: int = 5, size: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------
# Tokenizers


@pytest.mark.parametrize("k", [1, 3, 6])
def test_titok_encodes_to_k_tokens_and_decodes_to_images(k: int):
    torch.manual_seed(0)
    tok = TiTokTokenizer(patch_size=2, num_latent_tokens=k, **SMALL).eval()
    x = images()
    ids = tok.encode(x)
    assert ids.shape == (5, k) and ids.dtype == torch.long
    assert 0 <= ids.min() and ids.max() < 16
    out = tok.decode_indices(ids)
    assert out.shape == x.shape and 0.0 <= out.min() and out.max() <= 1.0
    recon, vq = tok(x)
    assert recon.shape == x.shape and torch.equal(vq.indices, ids)
    assert tok.latents(x).shape == (5, k, 32)


def test_grid_tokenizer_has_one_token_per_patch():
    torch.manual_seed(0)
    tok = GridTokenizer(patch_size=2, **SMALL).eval()
    ids = tok.encode(images())
    assert ids.shape == (5, 16) and tok.num_tokens == 16
    assert tok.decode_indices(ids).shape == (5, 3, 8, 8)


@pytest.mark.parametrize("kind,tokens", [("titok", 3), ("grid", 16)])
def test_only_the_latent_tokens_are_quantised(kind: str, tokens: int):
    """TiTok's quantiser sees exactly B*K vectors (not the N patch tokens); the grid's B*N."""
    torch.manual_seed(0)
    if kind == "titok":
        tok = TiTokTokenizer(patch_size=2, num_latent_tokens=tokens, **SMALL)
    else:
        tok = GridTokenizer(patch_size=2, **SMALL)
    seen = []
    tok.quantizer.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape))
    tok(images(n=4))
    assert seen == [torch.Size([4, tokens, 4])]


def test_decoder_output_depends_on_the_codes():
    torch.manual_seed(0)
    tok = TiTokTokenizer(patch_size=2, num_latent_tokens=2, **SMALL).eval()
    a = tok.decode_indices(torch.tensor([[0, 1]]))
    b = tok.decode_indices(torch.tensor([[2, 3]]))
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="expected 2"):
        tok.decode_indices(torch.zeros(1, 5, dtype=torch.long))


def test_save_and_load_round_trip(tmp_path: Path):
    torch.manual_seed(0)
    tok = TiTokTokenizer(patch_size=4, num_latent_tokens=3, **SMALL).eval()
    folder = tok.save_pretrained(tmp_path / "tok")
    assert (folder / "config.json").is_file()
    loaded = TiTokTokenizer.from_pretrained(folder)
    x = images()
    assert torch.equal(loaded.encode(x), tok.encode(x))
    assert torch.equal(loaded.reconstruct(x), tok.reconstruct(x))
    grid = GridTokenizer(patch_size=4, **SMALL)
    grid.save_pretrained(tmp_path / "grid")
    with pytest.raises(ValueError, match="expected titok"):
        TiTokTokenizer.from_pretrained(tmp_path / "grid")
    with pytest.raises(FileNotFoundError):
        TiTokTokenizer.from_pretrained(tmp_path / "missing")


def test_training_reduces_mse_and_dead_code_restarts_keep_codes_alive():
    x = images(n=64, seed=1)
    torch.manual_seed(0)
    tok = TiTokTokenizer(patch_size=2, num_latent_tokens=4, **SMALL)
    before = F.mse_loss(tok.reconstruct(x), x).item()
    history = train_tokenizer(tok, x, steps=40, batch_size=16, lr=3e-3, restart_every=10)
    assert F.mse_loss(tok.reconstruct(x), x).item() < before
    assert history["usage_step"] == [10, 20, 30] and len(history["restarted"]) == 3
    assert sum(history["restarted"]) > 0  # from-scratch codebooks start mostly dead


def test_linear_probe_separates_separable_features():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (300,), generator=g)
    x = F.one_hot(y, 3).float() * 3 + torch.randn(300, 3, generator=g)
    acc = linear_probe(x[:200], y[:200], x[200:], y[200:])
    assert acc > 0.9
    noise = torch.randn(300, 3, generator=g)
    assert linear_probe(noise[:200], y[:200], noise[200:], y[200:]) < 0.6


# ---------------------------------------------------------------------------------------------
# MaskGIT: schedule, sampler, guidance, loss


@pytest.mark.parametrize("schedule", ["arccos", "cosine"])
@pytest.mark.parametrize("n,steps", [(8, 8), (16, 8), (64, 8), (256, 12), (5, 1)])
def test_mask_counts_reveal_tokens_every_step_down_to_zero(schedule: str, n: int, steps: int):
    counts = mask_counts(n, steps, schedule)
    assert len(counts) == steps and counts[-1] == 0
    assert all(b < a for a, b in zip([n, *counts], counts, strict=False))  # >= 1 revealed/step
    assert all(c >= 1 for c in counts[:-1])  # every step but the last keeps some masked
    # follows floor(N * gamma((t+1)/T)) whenever the clamps do not bite
    for t, c in enumerate(counts[:-1]):
        target = math.floor(n * float(mask_ratio((t + 1) / steps, schedule)))
        assert c <= max(target, 1)


def test_mask_count_values_and_schedules_differ():
    # arccos keeps more tokens masked early than cosine at the same progress
    assert float(mask_ratio(0.5, "arccos")) == pytest.approx(2 / 3)
    assert float(mask_ratio(0.5, "cosine")) == pytest.approx(math.cos(math.pi / 4))
    arccos, cosine = mask_counts(64, 8, "arccos"), mask_counts(64, 8, "cosine")
    assert arccos[0] == math.floor(64 * math.acos(1 / 8) / (math.pi / 2))
    assert cosine[0] == math.floor(64 * math.cos(math.pi / 16))
    assert arccos != cosine
    with pytest.raises(ValueError, match="num_steps"):
        mask_counts(4, 8)
    with pytest.raises(ValueError, match="unknown mask schedule"):
        mask_counts(8, 4, "linear")  # type: ignore[arg-type]


def small_maskgit(seq_len: int = 12, seed: int = 0) -> MaskGIT:
    torch.manual_seed(seed)
    model = MaskGIT(codebook_size=10, seq_len=seq_len, num_classes=3, dim=32, depth=1, n_heads=2)
    with torch.no_grad():  # untrained but opinionated: logits that depend on tokens and class
        model.token_embed.weight.normal_()
        model.head.weight.normal_()
    return model


@pytest.mark.parametrize("schedule", ["arccos", "cosine"])
def test_sampler_leaves_exactly_the_scheduled_number_masked(schedule: str):
    model = small_maskgit()
    trace: list[torch.Tensor] = []
    labels = torch.tensor([0, 1, 2, 1])
    ids = model.generate(
        labels,
        num_steps=6,
        schedule=schedule,
        trace=trace,
        generator=torch.Generator().manual_seed(0),
    )
    expected = mask_counts(12, 6, schedule)
    masked = [(t == model.mask_token_id).sum(dim=1).tolist() for t in trace]
    assert masked == [[c] * 4 for c in expected]
    for before, after in zip(trace, trace[1:], strict=False):  # revealed tokens never change
        kept = before != model.mask_token_id
        assert torch.equal(after[kept], before[kept])
    assert torch.equal(ids, trace[-1]) and ids.max() < 10


def test_cfg_scale_one_equals_the_conditional_sampler():
    model = small_maskgit()
    labels = torch.tensor([0, 2, 1])
    plain = model.generate(labels, generator=torch.Generator().manual_seed(3))
    guided = model.generate(
        labels, cfg_scale=1.0, cfg_schedule="constant", generator=torch.Generator().manual_seed(3)
    )
    assert torch.equal(plain, guided)
    ids = torch.randint(0, 11, (3, 12), generator=torch.Generator().manual_seed(0))
    conditional = model._logits(ids, labels, None)
    assert torch.allclose(model._logits(ids, labels, 1.0), conditional, atol=1e-5)
    assert not torch.allclose(model._logits(ids, labels, 8.0), conditional, atol=1e-2)
    cond, uncond = torch.randn(2, 5, 7).unbind(0)
    assert torch.allclose(guided_logits(cond, uncond, 1.0), cond, atol=1e-6)
    assert torch.allclose(guided_logits(cond, uncond, 0.0), uncond)


def test_masked_token_loss_matches_cross_entropy_with_label_smoothing():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 9, 11, generator=g)
    targets = torch.randint(0, 11, (4, 9), generator=g)
    mask = torch.rand(4, 9, generator=g) < 0.5
    ours = masked_token_loss(logits, targets, mask, label_smoothing=0.1, unmasked_weight=0.0)
    ref = F.cross_entropy(logits[mask], targets[mask], label_smoothing=0.1)
    assert torch.allclose(ours, ref, atol=1e-6)
    per = F.cross_entropy(
        logits.reshape(-1, 11), targets.reshape(-1), label_smoothing=0.1, reduction="none"
    ).view(4, 9)
    w = mask.float() + 0.1 * (~mask).float()
    weighted = masked_token_loss(logits, targets, mask)  # TiTok: 0.1 on unmasked tokens
    assert torch.allclose(weighted, (per * w).sum() / w.sum(), atol=1e-6)
    assert not torch.allclose(weighted, ref)


def test_gumbel_noise_is_finite_with_the_euler_mascheroni_mean():
    g = gumbel_noise(torch.Size([200_000]), torch.Generator().manual_seed(0), "cpu")
    assert torch.isfinite(g).all()
    assert abs(g.mean().item() - 0.5772) < 0.01 and abs(g.var().item() - math.pi**2 / 6) < 0.03


def test_random_mask_masks_at_least_one_and_follows_the_schedule():
    mask = random_mask(2000, 16, "arccos", torch.Generator().manual_seed(0))
    counts = mask.sum(dim=1).float()
    assert counts.min() >= 1 and counts.max() <= 16
    # E[ceil(16 gamma(r))] for the arccos schedule: mean of gamma over U[0,1) is 2/pi
    assert abs(counts.mean().item() / 16 - 2 / math.pi) < 0.05


# ---------------------------------------------------------------------------------------------
# AR generator


@pytest.mark.parametrize("cfg_scale", [None, 3.0])
def test_ar_kv_cache_sampling_equals_recompute(cfg_scale):
    torch.manual_seed(0)
    model = ARGenerator(codebook_size=12, seq_len=9, num_classes=3, dim=32, n_layers=2, n_heads=2)
    labels = torch.tensor([0, 1, 2, 2])
    kw = dict(temperature=1.0, cfg_scale=cfg_scale)
    cached = model.generate(
        labels, use_cache=True, generator=torch.Generator().manual_seed(5), **kw
    )
    full = model.generate(labels, use_cache=False, generator=torch.Generator().manual_seed(5), **kw)
    assert cached.shape == (4, 9) and cached.max() < 12
    assert torch.equal(cached, full)


def test_ar_teacher_forcing_logits_match_the_sampler_prefix():
    torch.manual_seed(0)
    model = ARGenerator(codebook_size=12, seq_len=6, num_classes=3, dim=32, n_layers=1, n_heads=2)
    labels = torch.tensor([1, 2])
    tokens = model.generate(labels, temperature=0.0)  # greedy
    logits = model(tokens, labels)
    assert torch.equal(
        logits.argmax(-1), tokens
    )  # each greedy token is the argmax given its prefix


# ---------------------------------------------------------------------------------------------
# Claims


def _job(*, x: int, seed: int) -> tuple[int, float]:
    torch.manual_seed(seed)
    return x * x, torch.rand(1).item()


def test_run_jobs_in_worker_processes_equals_in_process():
    jobs = [(_job, dict(x=x, seed=x)) for x in range(5)]
    assert run_jobs(jobs, workers=2) == run_jobs(jobs, workers=1)
    assert [r[0] for r in run_jobs(jobs, workers=2)] == [0, 1, 4, 9, 16]  # order kept


def test_config_rejects_bad_overrides():
    with pytest.raises(UserError, match="gen_tokens"):
        PAPER.make_config("default", {"gen_tokens": "5"})
    with pytest.raises(UserError, match="schedule"):
        PAPER.make_config("default", {"schedule": "linear"})
    with pytest.raises(UserError, match="unknown --set key"):
        PAPER.make_config("default", {"K": "3"})


def test_probe_rank_correlation_is_spearmans_with_ties():
    from paperlab.core.stats import spearman

    assert spearman([2, 4, 8], [0.5, 0.5, 0.4]) == pytest.approx(-0.8660254)


def test_models_train_once_and_come_back_from_the_disk_cache(tmp_path: Path):
    from paperlab.claims import RunContext
    from paperlab.core.artifacts import ArtifactCache
    from paperlab.papers.titok.experiments import shared_generators, shared_tokenizers

    small = dict(tok_steps="2", gen_steps="2", judge_steps="2", n_train="64", n_test="32")

    def run(cache: ArtifactCache):
        cfg = PAPER.make_config("tiny", small)
        ctx = RunContext(cfg, "tiny", 0, "cpu", tmp_path, progress=False, cache=cache)
        with torch_threads(1):
            tokenizers = shared_tokenizers(ctx)
            generators, judge = shared_generators(ctx, tokenizers)
            name = next(iter(tokenizers))
            assert shared_tokenizers(ctx)[name].model is tokenizers[name].model
        return tokenizers, generators

    with ArtifactCache(tmp_path / "cache") as cache:
        toks, gens = run(cache)
    with ArtifactCache(tmp_path / "cache") as cache:
        toks2, gens2 = run(cache)
        assert len(gens) == 4 and cache.hits["disk"] == len(toks) + len(gens)
        assert cache.hits["built"] == 2  # the data split and the judge (memory only)
    for a, b in ((toks, toks2), (gens, gens2)):
        for name in a:
            sa, sb = a[name].model.state_dict(), b[name].model.state_dict()
            assert all(torch.equal(sa[k], sb[k]) for k in sa)
            assert a[name].seconds == b[name].seconds > 0
