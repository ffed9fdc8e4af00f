"""The DPO + NLL loss: its parts by hand, and against TRL's DPOTrainer on the same log-probs."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from paperlab.papers.irpo import dpo_nll_loss, token_logps


def _batch(seed: int = 0, B: int = 3, T: int = 7, V: int = 11):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2 * B, T, V, generator=g)
    labels = torch.randint(0, V, (2 * B, T), generator=g)
    mask = torch.zeros(2 * B, T)
    lengths = [7, 3, 5, 2, 6, 4][: 2 * B]  # unequal lengths: the two NLL modes differ
    for row, n in enumerate(lengths):
        mask[row, T - n :] = 1.0
    ref = torch.randn(2 * B, generator=g) * 3 - 10
    return logits, labels, mask, ref


def test_token_logps_is_log_softmax_gather_masked():
    logits, labels, mask, _ = _batch()
    got = token_logps(logits, labels, mask)
    want = torch.gather(F.log_softmax(logits, -1), -1, labels[..., None]).squeeze(-1) * mask
    assert torch.allclose(got, want)


def test_token_logps_checks_shapes():
    logits, labels, mask, _ = _batch()
    with pytest.raises(ValueError, match="must agree"):
        token_logps(logits, labels[:, :-1], mask)


def test_loss_parts_by_hand():
    logits, labels, mask, ref = _batch()
    lp = token_logps(logits, labels, mask)
    (c, r), (mc, mr), (rc, rr) = lp.chunk(2), mask.chunk(2), ref.chunk(2)
    loss, m = dpo_nll_loss(c, r, mc, mr, rc, rr, beta=0.1, alpha=1.0, nll="sequence")
    sc, sr = c.sum(-1), r.sum(-1)
    dpo = -F.logsigmoid(0.1 * ((sc - rc) - (sr - rr))).mean()
    nll = (-sc / mc.sum(-1)).mean()
    assert torch.allclose(loss, dpo + nll)
    assert m["dpo"] == pytest.approx(float(dpo), rel=1e-5)
    assert m["chosen_logp"] == pytest.approx(float(sc.mean()), rel=1e-5)
    loss0, _ = dpo_nll_loss(c, r, mc, mr, rc, rr, alpha=0.0)
    assert torch.allclose(loss0, dpo)  # alpha = 0: DPO alone


def test_nll_modes_differ_with_unequal_lengths_and_agree_with_equal():
    logits, labels, mask, ref = _batch()
    lp = token_logps(logits, labels, mask)
    (c, r), (mc, mr), (rc, rr) = lp.chunk(2), mask.chunk(2), ref.chunk(2)
    _, seq = dpo_nll_loss(c, r, mc, mr, rc, rr, nll="sequence")
    _, tok = dpo_nll_loss(c, r, mc, mr, rc, rr, nll="tokens")
    assert seq["nll"] != pytest.approx(tok["nll"])
    full = torch.ones_like(mc)
    _, seq = dpo_nll_loss(c, r, full, mr, rc, rr, nll="sequence")
    _, tok = dpo_nll_loss(c, r, full, mr, rc, rr, nll="tokens")
    assert seq["nll"] == pytest.approx(tok["nll"], rel=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(nll="batch"), "nll="),
        (dict(beta=0.0), "beta"),
        (dict(alpha=-1.0), "alpha"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    logits, labels, mask, ref = _batch()
    lp = token_logps(logits, labels, mask)
    (c, r), (mc, mr), (rc, rr) = lp.chunk(2), mask.chunk(2), ref.chunk(2)
    with pytest.raises(ValueError, match=match):
        dpo_nll_loss(c, r, mc, mr, rc, rr, **kwargs)


# ---------------------------------------------------------------------------------------------
# TRL 1.16: RPO is DPOConfig(loss_type=["sigmoid", "sft"], loss_weights=[1, alpha]); the loss is
# computed in DPOTrainer._compute_loss from the model's per-token log-probs. We call that very
# method with the same per-token log-probs (a stand-in model returns them) and compare.


class _Accelerator:
    device = torch.device("cpu")

    @staticmethod
    def gather_for_metrics(x):
        return x

    @staticmethod
    def gather(x):
        return x


def _trl_loss(per_token_logps, completion_mask, ref, *, beta: float, alpha: float) -> torch.Tensor:
    """TRL's DPOTrainer._compute_loss on given per-token log-probs (shifted, as TRL's)."""
    trl_dpo = pytest.importorskip("trl.trainer.dpo_trainer")
    B2, T = per_token_logps.shape

    def model(**_):
        zeros = torch.zeros(B2, T)
        return SimpleNamespace(
            log_probs=per_token_logps, entropy=zeros, mean_logits=zeros, is_top1=zeros.bool()
        )

    fake = SimpleNamespace(
        model=SimpleNamespace(training=True),
        accelerator=_Accelerator(),
        aux_loss_enabled=False,
        ld_alpha=None,
        precompute_ref_logps=True,
        f_divergence_type="reverse_kl",
        loss_types=["sigmoid", "sft"],
        loss_weights=[1.0, alpha],
        beta=beta,
        label_smoothing=0.0,
        use_weighting=False,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
    )
    # TRL's completion_mask covers input_ids (length T + 1); the loss reads [..., 1:]
    full_mask = torch.cat([torch.zeros(B2, 1), completion_mask], dim=1).long()
    rc, rr = ref.chunk(2)
    inputs = {
        "input_ids": torch.zeros(B2, T + 1, dtype=torch.long),
        "attention_mask": torch.ones(B2, T + 1, dtype=torch.long),
        "completion_mask": full_mask,
        "ref_chosen_logps": rc,
        "ref_rejected_logps": rr,
    }
    return trl_dpo.DPOTrainer._compute_loss(fake, model, inputs, return_outputs=False)


@pytest.mark.parametrize("alpha", [0.0, 1.0, 0.5])
def test_tokens_mode_matches_trl_rpo(alpha):
    logits, labels, mask, ref = _batch(seed=3)
    lp = token_logps(logits, labels, mask)
    (c, r), (mc, mr), (rc, rr) = lp.chunk(2), mask.chunk(2), ref.chunk(2)
    ours, _ = dpo_nll_loss(c, r, mc, mr, rc, rr, beta=0.1, alpha=alpha, nll="tokens")
    theirs = _trl_loss(lp, mask, ref, beta=0.1, alpha=alpha)
    assert torch.allclose(ours, theirs, atol=1e-6), (float(ours), float(theirs))


def test_sequence_mode_differs_from_trl_when_lengths_differ():
    logits, labels, mask, ref = _batch(seed=4)
    lp = token_logps(logits, labels, mask)
    (c, r), (mc, mr), (rc, rr) = lp.chunk(2), mask.chunk(2), ref.chunk(2)
    ours, _ = dpo_nll_loss(c, r, mc, mr, rc, rr, beta=0.1, alpha=1.0, nll="sequence")
    theirs = _trl_loss(lp, mask, ref, beta=0.1, alpha=1.0)
    assert not torch.allclose(ours, theirs)


def test_gradients_match_trl():
    logits, labels, mask, ref = _batch(seed=5)
    a = logits.clone().requires_grad_(True)
    b = logits.clone().requires_grad_(True)
    lp_a = token_logps(a, labels, mask)
    (c, r), (mc, mr), (rc, rr) = lp_a.chunk(2), mask.chunk(2), ref.chunk(2)
    dpo_nll_loss(c, r, mc, mr, rc, rr, beta=0.1, alpha=1.0, nll="tokens")[0].backward()
    _trl_loss(token_logps(b, labels, mask), mask, ref, beta=0.1, alpha=1.0).backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-7)
