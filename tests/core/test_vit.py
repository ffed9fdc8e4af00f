"""Tests of paperlab.core.vit: patch order and inverses, patch embedding vs reference and
Conv2d, MAE sin-cos embedding, attention masks, ViT shapes, permutation invariance without
position embeddings, and a tiny ViT that learns a separable toy task."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from paperlab.core.device import torch_threads
from paperlab.core.vit import (
    Attention,
    Block,
    PatchEmbed,
    Transformer,
    ViT,
    patchify,
    sincos_position_embedding,
    unpatchify,
)


def _images(B=2, C=3, S=8, seed=0):
    return torch.rand(B, C, S, S, generator=torch.Generator().manual_seed(seed))


def _reference_patches(images: torch.Tensor, p: int) -> torch.Tensor:
    """Loop reference: row-major patches, each flattened as (p, p, C)."""
    B, C, H, W = images.shape
    out = []
    for i in range(H // p):
        for j in range(W // p):
            patch = images[:, :, i * p : (i + 1) * p, j * p : (j + 1) * p]  # (B, C, p, p)
            out.append(patch.permute(0, 2, 3, 1).reshape(B, -1))
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("C,S,p", [(3, 8, 2), (1, 8, 4), (3, 6, 1), (2, 4, 4)])
def test_patchify_order_and_round_trip(C, S, p):
    x = _images(C=C, S=S)
    tokens = patchify(x, p)
    assert tokens.shape == (2, (S // p) ** 2, p * p * C)
    assert torch.equal(tokens, _reference_patches(x, p))
    assert torch.equal(unpatchify(tokens, p, C), x)
    t = torch.randn(2, (S // p) ** 2, p * p * C)
    assert torch.equal(patchify(unpatchify(t, p, C), p), t)


def test_patchify_rejects_bad_shapes():
    with pytest.raises(ValueError, match="not divisible by patch size 3"):
        patchify(_images(S=8), 3)
    with pytest.raises(ValueError, match="not divisible"):
        PatchEmbed(image_size=10, patch_size=4, in_channels=1, dim=8)
    with pytest.raises(ValueError, match="token length"):
        unpatchify(torch.randn(1, 4, 10), 2, 3)
    with pytest.raises(ValueError, match="square"):
        unpatchify(torch.randn(1, 5, 12), 2, 3)


def test_patch_embed_matches_linear_reference_and_conv2d():
    torch.manual_seed(0)
    C, S, p, dim = 3, 8, 4, 16
    pe = PatchEmbed(image_size=S, patch_size=p, in_channels=C, dim=dim)
    x = _images(C=C, S=S)
    out = pe(x)
    assert out.shape == (2, 4, dim) and pe.num_patches == 4 and pe.grid_size == 2
    ref = _reference_patches(x, p) @ pe.proj.weight.t() + pe.proj.bias
    torch.testing.assert_close(out, ref)
    conv = nn.Conv2d(C, dim, kernel_size=p, stride=p)
    with torch.no_grad():  # Linear columns are (p, p, C) ordered; Conv2d weights (C, p, p)
        conv.weight.copy_(pe.proj.weight.reshape(dim, p, p, C).permute(0, 3, 1, 2))
        conv.bias.copy_(pe.proj.bias)
    torch.testing.assert_close(out, conv(x).flatten(2).transpose(1, 2), rtol=1e-5, atol=1e-5)


def test_patch_size_one_gives_pixel_tokens():
    pe = PatchEmbed(image_size=6, patch_size=1, in_channels=3, dim=8)
    x = _images(C=3, S=6)
    out = pe(x)
    assert out.shape == (2, 36, 8)
    torch.testing.assert_close(out[:, 2 * 6 + 5], pe.proj(x[:, :, 2, 5]))  # row 2, column 5


def _mae_reference(grid_size: int, dim: int) -> np.ndarray:
    """MAE's get_2d_sincos_pos_embed, restated in numpy (meshgrid with w first)."""

    def one_d(d, pos):
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    grid = np.meshgrid(np.arange(grid_size, dtype=np.float64), np.arange(grid_size))
    return np.concatenate([one_d(dim // 2, grid[0]), one_d(dim // 2, grid[1])], axis=1)


def test_sincos_position_embedding():
    emb = sincos_position_embedding(5, 16)
    assert emb.shape == (25, 16) and emb.dtype == torch.float32
    np.testing.assert_allclose(emb.numpy(), _mae_reference(5, 16), atol=1e-6)
    assert torch.pdist(emb).min() > 1e-2  # distinct positions get distinct rows
    assert torch.equal(emb[0, :4], torch.tensor([0.0, 0.0, 0.0, 0.0]))  # sin(0) at (0, 0)
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_position_embedding(4, 10)


def test_block_and_transformer_shapes():
    torch.manual_seed(0)
    x = torch.randn(2, 7, 16)
    block = Block(dim=16, n_heads=4, mlp_ratio=2.5)
    assert block(x).shape == x.shape
    assert block.mlp.fc1.out_features == 40
    tr = Transformer(dim=16, depth=3, n_heads=4)
    y = tr(x)
    assert y.shape == x.shape and len(tr.blocks) == 3
    # the final LayerNorm: each token standardised
    torch.testing.assert_close(y.mean(-1), torch.zeros(2, 7), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="n_heads"):
        Attention(dim=10, n_heads=4)


def test_block_is_pre_layernorm():
    torch.manual_seed(0)
    block = Block(dim=8, n_heads=2)
    with torch.no_grad():  # non-trivial norms, so skipping or moving one changes the output
        for norm in (block.norm1, block.norm2):
            norm.weight.uniform_(0.5, 2.0)
            norm.bias.uniform_(-1.0, 1.0)
    x = torch.randn(2, 5, 8) * 3 + 1
    h = x + block.attn(block.norm1(x))  # Eq. 2
    ref = h + block.mlp.fc2(F.gelu(block.mlp.fc1(block.norm2(h))))  # Eq. 3
    torch.testing.assert_close(block(x), ref)


def test_attention_matches_manual_softmax():
    torch.manual_seed(0)
    attn = Attention(dim=8, n_heads=2)
    x = torch.randn(3, 5, 8)
    q, k, v = attn.qkv(x).reshape(3, 5, 3, 2, 4).permute(2, 0, 3, 1, 4)
    weights = torch.softmax(q @ k.transpose(-1, -2) / 2.0, dim=-1)  # sqrt(head_dim) = 2
    ref = attn.proj((weights @ v).transpose(1, 2).reshape(3, 5, 8))
    torch.testing.assert_close(attn(x), ref)


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_attention_mask_blocks_a_token(kind):
    torch.manual_seed(0)
    T, blocked = 6, 2
    allowed = torch.ones(T, T, dtype=torch.bool)
    allowed[:, blocked] = False  # nobody attends to token 2 ...
    allowed[blocked, blocked] = True  # ... except itself (a fully masked row would be NaN)
    mask = allowed if kind == "bool" else torch.zeros(T, T).masked_fill(~allowed, float("-inf"))
    model = Transformer(dim=16, depth=2, n_heads=4).eval()
    x = torch.randn(2, T, 16)
    x2 = x.clone()
    x2[:, blocked] = torch.randn(2, 16) * 5
    others = [t for t in range(T) if t != blocked]
    y, y2 = model(x, mask), model(x2, mask)
    torch.testing.assert_close(y[:, others], y2[:, others])
    assert not torch.allclose(model(x)[:, others], model(x2)[:, others], atol=1e-3)  # guard


@pytest.mark.parametrize("pos_embed", ["learned", "sincos", "none"])
@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_vit_shapes(pos_embed, pool):
    torch.manual_seed(0)
    vit = ViT(
        image_size=8,
        patch_size=2,
        in_channels=3,
        num_classes=5,
        dim=16,
        depth=2,
        n_heads=2,
        pos_embed=pos_embed,
        pool=pool,
    )
    x = _images(C=3, S=8)
    assert vit(x).shape == (2, 5)
    assert vit.features(x).shape == (2, 16)
    n_tokens = 16 + (pool == "cls")
    tokens = vit.tokens(x)
    assert tokens.shape == (2, n_tokens, 16)
    pooled = tokens[:, 0] if pool == "cls" else tokens.mean(dim=1)  # the class token is first
    torch.testing.assert_close(vit.features(x), pooled)
    params = dict(vit.named_parameters())
    assert ("cls_token" in params) == (pool == "cls")
    if pos_embed == "learned":
        assert params["pos_embed"].shape == (1, n_tokens, 16)
    elif pos_embed == "sincos":
        assert "pos_embed" not in params and vit.pos_embed.shape == (1, 16, 16)
    else:
        assert vit.pos_embed is None


def test_vit_init_and_bad_options():
    torch.manual_seed(0)
    vit = ViT(image_size=8, patch_size=2, in_channels=1, num_classes=3, dim=64, depth=1)
    assert torch.count_nonzero(vit.transformer.blocks[0].attn.qkv.bias) == 0
    std = vit.transformer.blocks[0].mlp.fc1.weight.std().item()
    assert 0.015 < std < 0.025
    assert torch.equal(vit.transformer.norm.weight, torch.ones(64))
    with pytest.raises(ValueError, match="pos_embed"):
        ViT(image_size=8, patch_size=2, in_channels=1, num_classes=3, pos_embed="rope")
    with pytest.raises(ValueError, match="pool"):
        ViT(image_size=8, patch_size=2, in_channels=1, num_classes=3, pool="max")
    with pytest.raises(ValueError, match="expected images"):
        vit(torch.rand(2, 1, 16, 16))


def _small_vit(*, pos_embed: str, pool: str) -> ViT:
    return ViT(
        image_size=8,
        patch_size=2,
        in_channels=3,
        num_classes=4,
        dim=16,
        depth=2,
        n_heads=2,
        pos_embed=pos_embed,
        pool=pool,
    ).eval()


def test_dropout_only_in_training():
    torch.manual_seed(0)
    vit = ViT(image_size=8, patch_size=2, in_channels=3, num_classes=4, dim=16, dropout=0.3)
    x = _images(C=3, S=8)
    assert not torch.allclose(vit(x), vit(x))
    vit.eval()
    assert torch.equal(vit(x), vit(x))


def _permute_patches(x: torch.Tensor, p: int, seed: int = 0) -> torch.Tensor:
    tokens = patchify(x, p)
    perm = torch.randperm(tokens.shape[1], generator=torch.Generator().manual_seed(seed))
    return unpatchify(tokens[:, perm], p, x.shape[1])


@pytest.mark.parametrize("pos_embed", ["none", "learned", "sincos"])
def test_vit_without_positions_is_permutation_invariant(pos_embed):
    torch.manual_seed(0)
    vit = _small_vit(pos_embed=pos_embed, pool="mean")
    x = _images(C=3, S=8)
    xp = _permute_patches(x, 2)
    assert not torch.equal(x, xp)
    if pos_embed == "none":
        torch.testing.assert_close(vit(xp), vit(x))
    else:  # guard: position embeddings break the symmetry
        assert not torch.allclose(vit(xp), vit(x), atol=1e-4)


def test_cls_token_comes_first_and_patch_tokens_permute():
    torch.manual_seed(0)
    vit = _small_vit(pos_embed="none", pool="cls")
    x = _images(C=3, S=8)
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    xp = unpatchify(patchify(x, 2)[:, perm], 2, 3)
    tokens, tokens_p = vit.tokens(x), vit.tokens(xp)
    torch.testing.assert_close(tokens_p[:, 0], tokens[:, 0])  # the class token: invariant
    torch.testing.assert_close(tokens_p[:, 1:], tokens[:, 1:][:, perm])  # patches: equivariant
    torch.testing.assert_close(vit(xp), vit(x))


def _toy_task(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """8x8 grey images: class 0 has a bright top half, class 1 a bright bottom half."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(2, (n,), generator=g)
    x = 0.3 * torch.rand(n, 1, 8, 8, generator=g)
    top = labels == 0
    x[top, :, :4] += 0.6
    x[~top, :, 4:] += 0.6
    return x, labels


def test_tiny_vit_learns_a_separable_task():
    torch.manual_seed(0)
    x_train, y_train = _toy_task(512, seed=1)
    x_test, y_test = _toy_task(256, seed=2)
    vit = ViT(image_size=8, patch_size=4, in_channels=1, num_classes=2, dim=32, depth=2, n_heads=2)
    opt = torch.optim.AdamW(vit.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    with torch_threads(1):
        for _ in range(100):
            idx = torch.randint(512, (32,), generator=g)
            loss = F.cross_entropy(vit(x_train[idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        vit.eval()
        with torch.no_grad():
            accuracy = (vit(x_test).argmax(-1) == y_test).float().mean().item()
    assert accuracy > 0.9
