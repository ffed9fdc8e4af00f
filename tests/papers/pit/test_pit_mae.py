"""Pixel-token MAE: masking counts, encoder on visible tokens only, loss on masked ones only."""

from __future__ import annotations

import pytest
import torch

from paperlab.core.device import torch_threads
from paperlab.papers.pit import MAE, classifier_from_mae, masked_mse, random_masking


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


def small_mae(**kw) -> MAE:
    torch.manual_seed(0)
    args = dict(
        image_size=8,
        patch_size=1,
        in_channels=3,
        dim=16,
        depth=1,
        n_heads=2,
        decoder_dim=16,
        decoder_depth=1,
        decoder_heads=2,
    )
    return MAE(**(args | kw))


def images(n: int = 3) -> torch.Tensor:
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(1))


def test_random_masking_keeps_a_quarter_and_marks_the_rest():
    keep, mask = random_masking(5, 64, 0.75, generator=torch.Generator().manual_seed(0))
    assert keep.shape == (5, 16) and mask.shape == (5, 64)
    assert (mask.sum(1) == 48).all()
    for b in range(5):
        assert keep[b].unique().numel() == 16
        assert (mask[b, keep[b]] == 0).all()
    assert not torch.equal(keep[0], keep[1])  # a fresh mask per image
    assert random_masking(1, 10, 0.75)[0].shape == (1, 2)  # MAE: int(10 * 0.25) = 2
    with pytest.raises(ValueError, match="mask_ratio"):
        random_masking(1, 4, 1.0)


def test_encoder_sees_only_the_visible_tokens():
    mae = small_mae()
    seen = []
    mae.encoder.transformer.register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    pred, mask = mae(images())
    assert seen == [torch.Size([3, 1 + 16, 16])]  # class token + 25% of 64 pixels
    assert pred.shape == (3, 64, 3) and mask.shape == (3, 64)


def test_loss_counts_the_masked_tokens_only():
    mae = small_mae()
    x = images()
    keep, mask = random_masking(3, 64, 0.75, generator=torch.Generator().manual_seed(2))
    target = mae.target(x)
    # perfect on the masked tokens, wildly wrong on the visible ones: the loss is zero
    pred = torch.where(mask[..., None].bool(), target, target + 10.0)
    assert masked_mse(pred, target, mask).item() == 0.0
    # and wrong on one masked token only: the loss sees it
    b, n = mask.bool().nonzero()[0].tolist()
    pred[b, n] += 1.0
    assert masked_mse(pred, target, mask).item() > 0.0
    # through the model: no gradient reaches the predictions of visible tokens
    out, _ = mae(x, keep)
    out.retain_grad()
    masked_mse(out, target, mask).backward()
    assert (out.grad[~mask.bool()] == 0).all() and out.grad[mask.bool()].abs().sum() > 0


def test_reconstruction_keeps_the_visible_pixels():
    mae = small_mae().eval()
    x = images()
    shown, filled = mae.reconstruct(x, seed=0)
    visible = (shown != 0).any(1)  # rand images: a visible pixel is nonzero in some channel
    assert 0.2 < visible.float().mean() < 0.3
    assert torch.equal(filled.permute(0, 2, 3, 1)[visible], x.permute(0, 2, 3, 1)[visible])


def test_classifier_carries_the_encoder_weights():
    mae = small_mae()
    clf = classifier_from_mae(mae, num_classes=7)
    assert torch.equal(clf.pos_embed, mae.encoder.pos_embed)
    assert torch.equal(
        clf.transformer.blocks[0].attn.qkv.weight, mae.encoder.transformer.blocks[0].attn.qkv.weight
    )
    assert clf.head.out_features == 7 and clf(images()).shape == (3, 7)


def test_bad_mae_settings_are_refused():
    with pytest.raises(ValueError, match="norm_target"):
        small_mae(in_channels=1, norm_target=True)
    with pytest.raises(ValueError, match="pos_embed"):
        small_mae(pos_embed="none")
