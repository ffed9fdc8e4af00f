"""LlamaGen: 2D RoPE, the generator's invariants, sampling exactness (KV cache == recompute,
CFG at scale 1 == conditional sampling), the tokenizer, and the tiny claims end to end."""

from __future__ import annotations

import math

import pytest
import torch

from paperlab.core.device import torch_threads
from paperlab.core.llama import apply_rotary
from paperlab.papers.llamagen import (
    LlamaGen,
    LlamaGenConfig,
    RotaryEmbedding2D,
    VQTokenizer,
    VQTokenizerConfig,
    cfg_logits,
    generate_images,
    sample,
    tokenizer_loss,
    train_generator,
)


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


def small_generator(seed: int = 0, **kw) -> LlamaGen:
    torch.manual_seed(seed)
    cfg = dict(codebook_size=32, num_classes=5, grid_size=4, dim=32, n_layers=2, n_heads=2)
    model = LlamaGen(**(cfg | kw))
    torch.nn.init.normal_(model.model.lm_head.weight, std=0.3)  # zero-init gives flat logits
    return model.eval()


# ---------------------------------------------------------------------------------------------
# 2D RoPE


def test_rope2d_shapes_and_identity_prefix():
    rope = RotaryEmbedding2D(head_dim=16, grid_size=4)
    cos, sin = rope(0, 17)
    assert cos.shape == sin.shape == (17, 16)
    assert torch.equal(cos[0], torch.ones(16)) and torch.equal(sin[0], torch.zeros(16))
    q = torch.randn(1, 1, 1, 16)
    q_rot, _ = apply_rotary(q, q, cos[:1], sin[:1])
    assert torch.equal(q_rot, q)  # the class token is not rotated
    zero = RotaryEmbedding2D(head_dim=16, grid_size=4, prefix="zero")
    assert torch.equal(zero.cos[0], torch.zeros(16))  # the official code's table
    c1, s1 = rope(3, 2)
    assert torch.equal(c1, cos[3:5]) and torch.equal(s1, sin[3:5])
    with pytest.raises(ValueError, match="beyond"):
        rope(16, 2)


def test_rope2d_rows_and_columns():
    g, d = 5, 16
    rope = RotaryEmbedding2D(head_dim=d, grid_size=g)
    cos, sin = rope(0, 1 + g * g)
    angle = torch.atan2(sin, cos)[1:].view(g, g, d)  # per grid cell (r, c)
    q = d // 4  # the first d/4 rotary pairs rotate by the row, the next d/4 by the column
    base = 1.0 / (10000 ** (torch.arange(0, d // 2, 2).float() / (d // 2)))
    r, c = 3, 1
    assert torch.allclose(angle[r, c, :q], r * base, atol=1e-5)  # all angles < pi: no wrap
    assert torch.allclose(angle[r, c, q : 2 * q], c * base, atol=1e-5)
    assert torch.equal(angle[:, 2, :q], angle[:, 4, :q])  # row part ignores the column
    assert torch.equal(angle[1, :, q : 2 * q], angle[4, :, q : 2 * q])  # and vice versa
    assert torch.equal(angle[..., : d // 2], angle[..., d // 2 :])  # HF layout: cat(f, f)


def test_rope2d_scores_depend_only_on_relative_offset():
    g, d = 6, 16
    rope = RotaryEmbedding2D(head_dim=d, grid_size=g)
    cos, sin = rope(0, 1 + g * g)
    torch.manual_seed(0)
    q, k = torch.randn(d), torch.randn(d)

    def score(a: tuple[int, int], b: tuple[int, int]) -> float:
        ia, ib = 1 + a[0] * g + a[1], 1 + b[0] * g + b[1]
        qa, _ = apply_rotary(q, q, cos[ia], sin[ia])
        _, kb = apply_rotary(k, k, cos[ib], sin[ib])
        return float(qa @ kb)

    ref = score((1, 1), (3, 4))  # offset (+2, +3)
    assert score((0, 0), (2, 3)) == pytest.approx(ref, abs=1e-4)
    assert score((3, 2), (5, 5)) == pytest.approx(ref, abs=1e-4)
    assert abs(score((1, 1), (4, 3)) - ref) > 1e-3  # offset (+3, +2): a different score
    assert abs(score((1, 1), (3, 5)) - ref) > 1e-3
    # the same raster distance (1) but different 2D offsets, (+1, -5) vs (0, +1): 1D RoPE over
    # the raster index could not tell them apart
    assert abs(score((0, 5), (1, 0)) - score((0, 0), (0, 1))) > 1e-3


# ---------------------------------------------------------------------------------------------
# Generator


def test_generator_zero_init_head_and_vocab():
    model = LlamaGen(codebook_size=32, num_classes=5, grid_size=4, dim=32, n_layers=1, n_heads=2)
    assert torch.count_nonzero(model.model.lm_head.weight) == 0
    assert model.config.vocab_size == 32 + 5 + 1
    assert isinstance(model.model.rotary_emb, RotaryEmbedding2D)
    assert model.class_tokens(torch.tensor([0, 4, 5])).tolist() == [32, 36, 37]
    idx = torch.randint(32, (3, 4, 4))
    logits = model(idx, torch.tensor([0, 1, 2]))
    assert logits.shape == (3, 16, 32)
    assert torch.allclose(logits, torch.zeros_like(logits))  # uniform before training
    assert model.loss(idx, torch.tensor([0, 1, 2])).item() == pytest.approx(math.log(32), rel=1e-5)


def test_class_dropout_rate():
    model = LlamaGen(codebook_size=8, num_classes=10, grid_size=2, dim=16, n_layers=1, n_heads=1)
    labels = torch.zeros(20000, dtype=torch.long)
    dropped = model.drop_labels(labels, torch.Generator().manual_seed(0))
    rate = (dropped == 10).float().mean().item()
    assert abs(rate - 0.1) < 4 * math.sqrt(0.1 * 0.9 / 20000)  # ~4 sigma
    assert set(dropped.unique().tolist()) == {0, 10}


def test_teacher_forcing_is_causal_and_matches_sampling_logits():
    model = small_generator()
    idx = torch.randint(32, (2, 4, 4))
    labels = torch.tensor([1, 3])
    logits = model(idx, labels)
    idx2 = idx.clone().view(2, -1)
    idx2[:, 10:] = (idx2[:, 10:] + 1) % 32  # change the future: logits up to 10 are unchanged
    logits2 = model(idx2, labels)
    assert torch.allclose(logits[:, :11], logits2[:, :11], atol=1e-5)
    assert not torch.allclose(logits[:, 11:], logits2[:, 11:])
    tokens, sampled = sample(model, labels, temperature=1.0, seed=0, return_logits=True)
    assert torch.allclose(model(tokens, labels), sampled, atol=1e-5)  # same model, same logits


def test_label_checks():
    model = small_generator()
    with pytest.raises(ValueError, match="labels"):
        sample(model, torch.tensor([5]))  # 5 = the null class is not a class to sample
    with pytest.raises(ValueError, match="image tokens"):
        model(torch.zeros(1, 3, 3, dtype=torch.long), torch.tensor([0]))


# ---------------------------------------------------------------------------------------------
# Sampling


@pytest.mark.parametrize("cfg_scale", [1.0, 2.5])
@pytest.mark.parametrize("filters", [{}, {"top_k": 5, "top_p": 0.9, "temperature": 0.8}])
def test_kv_cache_equals_recompute(cfg_scale, filters):
    model = small_generator()
    labels = torch.tensor([0, 1, 2, 3, 4, 2])
    kw = dict(cfg_scale=cfg_scale, seed=7, return_logits=True) | filters
    cached, lc = sample(model, labels, use_cache=True, **kw)
    recomputed, lr = sample(model, labels, use_cache=False, **kw)
    separate, ls = sample(model, labels, batch_cfg=False, **kw)
    assert torch.equal(cached, recomputed) and torch.equal(cached, separate)
    assert torch.allclose(lc, lr, atol=1e-5) and torch.allclose(lc, ls, atol=1e-5)
    other = sample(model, labels, cfg_scale=cfg_scale, seed=8, **filters)
    assert not torch.equal(cached, other)  # the seed matters


def test_cfg_scale_one_equals_conditional_sampling():
    model = small_generator()
    labels = torch.tensor([0, 1, 2, 3])
    cond, lc = sample(model, labels, cfg_scale=1.0, double_batch=False, seed=3, return_logits=True)
    doubled, ld = sample(
        model, labels, cfg_scale=1.0, double_batch=True, seed=3, return_logits=True
    )
    assert torch.equal(cond, doubled)
    assert torch.allclose(lc, ld, atol=1e-5)
    guided = sample(model, labels, cfg_scale=4.0, seed=3)
    assert not torch.equal(cond, guided)  # guidance changes the samples


def test_cfg_formula_and_greedy():
    c, u = torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 1.0]])
    assert torch.equal(cfg_logits(c, u, 3.0), torch.tensor([[4.0, -2.0]]))
    model = small_generator()
    labels = torch.tensor([0, 1])
    a = sample(model, labels, temperature=0.0, seed=1)
    b = sample(model, labels, temperature=0.0, seed=2)
    assert torch.equal(a, b)  # greedy ignores the seed
    assert a.max() < 32  # only image codes, never class ids


def test_top_k_one_is_greedy():
    model = small_generator()
    labels = torch.tensor([0, 3])
    greedy = sample(model, labels, temperature=0.0, cfg_scale=2.0)
    top1 = sample(model, labels, top_k=1, cfg_scale=2.0, seed=5)
    assert torch.equal(greedy, top1)


# ---------------------------------------------------------------------------------------------
# Tokenizer


def small_tokenizer(**kw) -> VQTokenizer:
    torch.manual_seed(0)
    cfg = dict(channels=8, channel_mult=(1, 2), z_channels=16, codebook_size=32, norm_groups=4)
    return VQTokenizer(config=VQTokenizerConfig(**(cfg | kw)))


def test_tokenizer_shapes_and_codes():
    tok = small_tokenizer().eval()
    images = torch.rand(3, 3, 16, 16)
    recon, vq = tok(images)
    assert recon.shape == images.shape and vq.quantized.shape == (3, 8, 8, 8)
    assert torch.allclose(vq.quantized.norm(dim=-1), torch.ones(3, 8, 8), atol=1e-5)  # l2-norm
    indices = tok.encode(images)
    assert indices.shape == (3, 8, 8) and indices.dtype == torch.long
    assert torch.allclose(vq.quantized, tok.quantize.codebook[indices], atol=1e-6)
    decoded = tok.decode_indices(indices)
    assert decoded.shape == images.shape and decoded.min() >= 0 and decoded.max() <= 1
    assert torch.allclose(decoded, recon.clamp(0, 1), atol=1e-5)
    assert torch.equal(tok.decode_indices(indices.view(3, 64)), decoded)
    plain = small_tokenizer(l2_norm=False, codebook_dim=64)
    assert plain.quantize.codebook.shape == (32, 64)
    with pytest.raises(ValueError, match="divisible"):
        tok.encode(torch.rand(1, 3, 15, 15))


@pytest.mark.parametrize(
    ("images", "says"),
    [
        (torch.rand(1, 3, 15, 16), "divisible by 2"),  # an odd height (was silently 7x8 codes)
        (torch.rand(1, 1, 16, 16), r"\(B, 3, H, W\)"),
        ((torch.rand(1, 3, 16, 16) * 255).to(torch.uint8), "uint8 pixels: divide by 255"),
        (torch.rand(1, 3, 16, 16) * 2 - 1, r"in \[0, 1\]"),
        (torch.full((1, 3, 16, 16), float("nan")), r"in \[0, 1\]"),
    ],
)
def test_tokenizer_refuses_bad_images(images, says):
    with pytest.raises(ValueError, match=says):
        small_tokenizer().encode(images)


def test_decode_refuses_out_of_range_codes():
    with pytest.raises(ValueError, match=r"code ids must be in \[0, 32\)"):
        small_tokenizer().decode_indices(torch.full((1, 8, 8), 32))


def test_tokenizer_loss_trains_and_grads_reach_encoder():
    tok = small_tokenizer()
    images = torch.rand(4, 3, 16, 16)
    loss, metrics = tokenizer_loss(tok, images)
    loss.backward()
    assert tok.encoder.conv_in.weight.grad.abs().sum() > 0  # straight-through estimator
    assert tok.quantize.embedding.weight.grad.abs().sum() > 0  # codebook loss
    assert set(metrics) == {"rec_loss", "vq_loss"}


def test_tokenizer_save_load_round_trip(tmp_path):
    tok = small_tokenizer().eval()
    tok.quantize.embedding.weight.data.normal_()
    path = tok.save_pretrained(tmp_path / "tok")
    assert path.name == "tokenizer.safetensors"
    loaded = VQTokenizer.from_pretrained(tmp_path / "tok").eval()
    assert loaded.config == tok.config
    images = torch.rand(2, 3, 16, 16)
    assert torch.equal(loaded.encode(images), tok.encode(images))
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*missing"):
        VQTokenizer.from_pretrained(tmp_path / "missing")


def test_generator_save_load_round_trip(tmp_path):
    model = small_generator()
    model.save_pretrained(tmp_path / "gen")
    loaded = LlamaGen.from_pretrained(tmp_path / "gen")
    labels = torch.tensor([0, 4])
    assert torch.equal(
        sample(model, labels, cfg_scale=2.0, seed=1), sample(loaded, labels, cfg_scale=2.0, seed=1)
    )
    with pytest.raises(ValueError, match="expected a LlamaGen checkpoint, found VQTokenizer"):
        LlamaGen.from_pretrained(small_tokenizer().save_pretrained(tmp_path / "t.safetensors"))


def test_train_generator_learns_and_generate_images():
    # a deterministic code per class: a trained model must sample it at low temperature
    torch.manual_seed(0)
    labels = torch.arange(4).repeat(16)
    codes = torch.randint(16, (4, 2, 2))[labels]
    config = LlamaGenConfig(
        codebook_size=16,
        num_classes=4,
        grid_size=2,
        dim=32,
        n_layers=1,
        n_heads=2,
        class_dropout=0.0,
    )
    model, history = train_generator(None, codes, labels, config=config, steps=80, lr=1e-2)
    assert history["loss"][-1] < 0.2 * history["loss"][0]
    out = sample(model, torch.arange(4), temperature=0.0)
    assert torch.equal(out, codes[:4])
    tok = small_tokenizer(codebook_size=16, channel_mult=(1, 2, 2))
    images = generate_images(model, tok, torch.arange(4), cfg_scale=1.0, seed=0)
    assert images.shape == (4, 3, 8, 8)
