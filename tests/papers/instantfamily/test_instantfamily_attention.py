"""The masked cross-attention processor: what each mask mode lets a pixel see."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor

from paperlab.papers.instantfamily import MaskedAttnProcessor, RegionMask, masked_logits

SIZE = 16  # canvas px; the query map is 8 x 8 (cells of 2 px)
BOXES = torch.tensor([[[1.0, 1.0, 5.0], [9.0, 9.0, 5.0]]])  # two people, regions apart
OWNER = torch.tensor([-1, -1, 0, 0, 0, 1, 1, 1])  # 2 text tokens, 3 ID tokens per person


def _attention() -> Attention:
    torch.manual_seed(0)
    return Attention(query_dim=8, cross_attention_dim=6, heads=2, dim_head=4)


def _run(mode: str, context: torch.Tensor, *, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    attn = _attention()
    proc = MaskedAttnProcessor(record=True)
    attn.set_processor(proc)
    torch.manual_seed(seed)
    x = torch.randn(1, 64, 8)
    region = RegionMask(BOXES, OWNER, SIZE, mode)
    out = attn(x, encoder_hidden_states=context, region=region)
    return out, proc.probs[0]  # (heads, P, L)


def _cells() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    inside = RegionMask(BOXES, OWNER, SIZE).inside(8, 8)[0]  # (K, P)
    return inside[0], inside[1], ~inside.any(0)


def test_neg_inf_background_sees_text_only_and_box_i_never_sees_identity_j():
    torch.manual_seed(2)
    _, probs = _run("neg_inf", torch.randn(1, 8, 6))
    in0, in1, background = _cells()
    ids0, ids1 = OWNER == 0, OWNER == 1
    assert background.any() and in0.any() and in1.any()
    assert probs[:, background][..., ids0 | ids1].abs().max() == 0
    assert probs[:, in0][..., ids1].abs().max() == 0
    assert probs[:, in1][..., ids0].abs().max() == 0
    assert probs[:, in0][..., ids0].min() > 0  # and box i does see identity i
    torch.testing.assert_close(probs.sum(-1), torch.ones_like(probs.sum(-1)))


def test_neg_inf_box_output_ignores_the_other_persons_tokens():
    torch.manual_seed(3)
    context = torch.randn(1, 8, 6)
    changed = context.clone()
    changed[:, OWNER == 1] = torch.randn(1, 3, 6) * 5
    in0, _, background = _cells()
    a, _ = _run("neg_inf", context)
    b, _ = _run("neg_inf", changed)
    torch.testing.assert_close(a[0, in0 | background], b[0, in0 | background])


def test_multiply_zeroes_logits_so_masked_tokens_keep_weight_exp0_over_z():
    # the paper's M ⊙ QKᵀ: a masked logit is 0, not -inf. Every masked token of a pixel gets the
    # same probability exp(0)/Z whatever its key, and its value still reaches the output.
    torch.manual_seed(4)
    context = torch.randn(1, 8, 6)
    _, probs = _run("multiply", context)
    in0, _, background = _cells()
    ids = OWNER >= 0
    bg = probs[:, background][..., ids]  # (heads, P_bg, 6)
    assert bg.min() > 0
    torch.testing.assert_close(bg, bg[..., :1].expand_as(bg))
    other = probs[:, in0][..., OWNER == 1]
    torch.testing.assert_close(other, other[..., :1].expand_as(other))
    changed = context.clone()
    changed[:, OWNER == 1] = torch.randn(1, 3, 6) * 5
    a, _ = _run("multiply", context)
    b, _ = _run("multiply", changed)
    assert not torch.allclose(a[0, in0], b[0, in0])  # identity 1's values leak into box 0


def test_none_matches_diffusers_attention():
    torch.manual_seed(5)
    context = torch.randn(1, 8, 6)
    ours, probs = _run("none", context)
    attn = _attention()
    attn.set_processor(AttnProcessor())
    torch.manual_seed(1)
    ref = attn(torch.randn(1, 64, 8), encoder_hidden_states=context)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    assert probs.min() > 0


def test_margin_rule_grows_each_box_by_a_quarter():
    boxes = torch.tensor([[[8.0, 8.0, 8.0]]])  # region [7, 17) x [7, 17) at 25% margin
    inside = RegionMask(boxes, torch.tensor([-1, 0]), 32).inside(32, 32)[0, 0].view(32, 32)
    assert inside[7, 7] and inside[16, 16]
    assert not inside[6, 10] and not inside[17, 10]
    assert int(inside.sum()) == 10 * 10


def test_masked_logits_and_bad_modes():
    logits = torch.tensor([[2.0, -1.0]])
    mask = torch.tensor([[True, False]])
    assert masked_logits(logits, mask, "multiply").tolist() == [[2.0, 0.0]]
    assert masked_logits(logits, mask, "neg_inf")[0, 1] == float("-inf")
    with pytest.raises(ValueError, match="mode"):
        masked_logits(logits, mask, "add")
    with pytest.raises(ValueError, match="mode"):
        RegionMask(BOXES, OWNER, SIZE, "soft")
    with pytest.raises(ValueError, match="owner"):
        RegionMask(BOXES, torch.tensor([-1, 2]), SIZE)
