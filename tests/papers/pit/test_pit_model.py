"""PiT's model invariants: exact permutation equivariance, patch embedding vs references."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from paperlab.core.device import torch_threads
from paperlab.papers.pit import (
    patch_vit,
    permute_pixels,
    permute_positions,
    pixel_permutation,
    pixel_transformer,
)


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


def images(n: int = 4, channels: int = 3, size: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed))


def test_permute_pixels_moves_whole_pixels_and_is_invertible():
    x = images()
    perm = pixel_permutation(8, seed=3)
    y = permute_pixels(x, perm)
    # output pixel i (row-major) is input pixel perm[i], all channels together
    assert torch.equal(y.flatten(2), x.flatten(2)[:, :, perm])
    assert torch.equal(permute_pixels(y, perm.argsort()), x)
    assert not torch.equal(y, x)


@pytest.mark.parametrize("channels", [1, 3])
def test_pit_is_equivariant_to_a_pixel_permutation_with_its_positions(channels: int):
    torch.manual_seed(0)
    pit = pixel_transformer(
        image_size=8, in_channels=channels, num_classes=5, dim=16, depth=2, n_heads=2
    ).eval()
    with torch.no_grad():  # weights far from the (tiny) init: the logits depend on the input
        for param in pit.parameters():
            param.normal_(0, 0.5)
    x, perm = images(channels=channels), pixel_permutation(8, seed=1)
    with torch.no_grad():
        reference = pit(x)
        permuted = permute_positions(pit, perm)(permute_pixels(x, perm))
        positions_left_alone = pit(permute_pixels(x, perm))
    torch.testing.assert_close(permuted, reference, atol=1e-5, rtol=1e-5)
    # the control: permuting the pixels but not the positions changes the logits
    assert (positions_left_alone - reference).abs().max() > 1e-2


def test_permute_positions_rejects_models_without_learned_pixel_positions():
    with pytest.raises(ValueError, match="learned positions"):
        permute_positions(
            pixel_transformer(image_size=8, in_channels=1, num_classes=2, pos_embed="sincos"),
            torch.arange(64),
        )
    with pytest.raises(ValueError, match="patch size 1"):
        permute_positions(
            patch_vit(image_size=8, patch_size=2, in_channels=1, num_classes=2), torch.arange(16)
        )


def loop_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, p: int):
    """Patches cut out one by one in row-major order, each flattened as (p, p, C), then
    multiplied by the projection: the plain reading of ViT Eq. 1."""
    B, C, H, W = x.shape
    tokens = []
    for i in range(H // p):
        for j in range(W // p):
            patch = x[:, :, i * p : (i + 1) * p, j * p : (j + 1) * p]  # (B, C, p, p)
            tokens.append(patch.permute(0, 2, 3, 1).reshape(B, -1) @ weight.T + bias)
    return torch.stack(tokens, dim=1)


@pytest.mark.parametrize("p", [1, 2, 4])
def test_patch_embedding_equals_reshape_linear_and_strided_conv(p: int):
    torch.manual_seed(p)
    vit = patch_vit(image_size=8, patch_size=p, in_channels=3, num_classes=2, dim=12)
    embed = vit.patch_embed
    with torch.no_grad():
        embed.proj.bias.normal_()
    x = images()
    w, b = embed.proj.weight.detach(), embed.proj.bias.detach()
    out = embed(x).detach()
    assert out.shape == (4, (8 // p) ** 2, 12)
    torch.testing.assert_close(out, loop_reference(x, w, b, p))
    conv_w = w.reshape(12, p, p, 3).permute(0, 3, 1, 2)  # (D, C, p, p)
    conv = F.conv2d(x, conv_w, b, stride=p).flatten(2).transpose(1, 2)  # (B, N, D)
    torch.testing.assert_close(out, conv, atol=1e-5, rtol=1e-5)


def test_pit_is_a_vit_with_one_token_per_pixel():
    pit = pixel_transformer(image_size=8, in_channels=3, num_classes=4, dim=16)
    assert pit.patch_embed.num_patches == 64 and pit.patch_embed.proj.in_features == 3
    assert pit.pos_embed.shape == (1, 65, 16)  # class token + one position per pixel
    assert pit(images()).shape == (4, 4)
