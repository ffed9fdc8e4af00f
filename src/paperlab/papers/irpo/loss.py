"""The DPO + NLL objective of Iterative RPO (Sec. 2, Eq. 1 of arXiv 2404.19733).

For a preference pair (prompt x, winner c_w y_w, loser c_l y_l), a policy M_theta and the frozen
reference M_t (the previous iteration's model)::

    L_DPO = -log sigmoid( beta * [ log M_theta(w|x) - log M_t(w|x)
                                   - log M_theta(l|x) + log M_t(l|x) ] )
    L_NLL = -log M_theta(c_w, y_w | x) / |c_w y_w|          (length-normalised per sequence)
    L     = L_DPO + alpha * L_NLL                           (beta = 0.1, alpha = 1)

``nll="sequence"`` is the paper's per-sequence normalisation: each winner's NLL is divided by its
own length, then averaged over the pairs. ``nll="tokens"`` is what TRL does when RPO is asked for
(``DPOConfig(loss_type=["sigmoid", "sft"], loss_weights=[1, alpha])``, formerly ``rpo_alpha``):
the mean NLL over *all* winner tokens of the batch, so long winners weigh more. With winners of
equal length both are the same number. ``alpha = 0`` is plain DPO.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

NLLMode = Literal["sequence", "tokens"]
NLL_MODES: tuple[str, ...] = ("sequence", "tokens")


def token_logps(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log p(labels[b, t]) under ``logits`` (B, T, V), 0 where ``mask`` (B, T) is 0.
    ``labels`` are the *next* tokens already aligned with the logits' positions."""
    if logits.shape[:2] != labels.shape or labels.shape != mask.shape:
        raise ValueError(
            f"token_logps: logits {tuple(logits.shape)}, labels {tuple(labels.shape)} and mask "
            f"{tuple(mask.shape)} must agree on (batch, length)"
        )
    logp = torch.gather(logits.float().log_softmax(-1), -1, labels.clamp_min(0)[..., None])
    return logp.squeeze(-1) * mask


def dpo_nll_loss(
    chosen_token_logps: torch.Tensor,
    rejected_token_logps: torch.Tensor,
    chosen_mask: torch.Tensor,
    rejected_mask: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    *,
    beta: float = 0.1,
    alpha: float = 1.0,
    nll: NLLMode = "sequence",
) -> tuple[torch.Tensor, dict[str, float]]:
    """The Iterative RPO loss of a batch of pairs and its parts.

    chosen/rejected_token_logps (B, T): the policy's per-token log-probs of the completions
    (0 off the completion); chosen/rejected_mask (B, T): 1 on completion tokens;
    ref_chosen/rejected_logps (B,): the reference's summed log-probs of the same completions.
    Returns ``(loss, metrics)``: ``dpo``, ``nll``, ``chosen_logp`` (mean summed log-prob of the
    winners), ``rejected_logp``, ``reward_margin`` and ``reward_acc``."""
    if nll not in NLL_MODES:
        raise ValueError(f"nll={nll!r}: choose one of {', '.join(NLL_MODES)}")
    if beta <= 0 or alpha < 0:
        raise ValueError(f"beta must be > 0 and alpha >= 0, got beta={beta}, alpha={alpha}")
    chosen_mask, rejected_mask = (
        chosen_mask.to(chosen_token_logps),
        rejected_mask.to(rejected_token_logps),
    )
    if bool((chosen_mask.sum(-1) == 0).any()):
        raise ValueError("dpo_nll_loss: a winner has no completion tokens (chosen_mask row of 0s)")
    chosen = (chosen_token_logps * chosen_mask).sum(-1)  # (B,) log M_theta(c_w y_w | x)
    rejected = (rejected_token_logps * rejected_mask).sum(-1)
    chosen_ratio = chosen - ref_chosen_logps
    rejected_ratio = rejected - ref_rejected_logps
    dpo = -F.logsigmoid(beta * (chosen_ratio - rejected_ratio)).mean()
    if nll == "sequence":  # Eq. 1: each winner normalised by its own length
        nll_loss = (-chosen / chosen_mask.sum(-1)).mean()
    else:  # TRL's "sft" term: the mean over every winner token of the batch
        nll_loss = -(chosen_token_logps * chosen_mask).sum() / chosen_mask.sum()
    loss = dpo + alpha * nll_loss
    margin = beta * (chosen_ratio - rejected_ratio).detach()
    metrics = {
        "dpo": float(dpo.detach()),
        "nll": float(nll_loss.detach()),
        "chosen_logp": float(chosen.detach().mean()),
        "rejected_logp": float(rejected.detach().mean()),
        "reward_margin": float(margin.mean()),
        "reward_acc": float((margin > 0).float().mean()),
    }
    return loss, metrics
