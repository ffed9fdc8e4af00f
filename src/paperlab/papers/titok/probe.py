"""Linear probe on a tokenizer's frozen encoder latents (TiTok's preliminary study, Fig. 4).

The paper probes the TiTok encoder on ImageNet with the MAE linear-probing protocol and finds
that fewer latent tokens give higher accuracy. Here the K pre-quantisation latents (encoder
outputs after its final norm) are mean-pooled into one width-sized vector, so the probe's input
size is the same for every K and only the representation differs; a flattened (K * width)
input would give larger K more probe parameters and confound the comparison.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@torch.no_grad()
def pooled_latents(tokenizer: nn.Module, images: Tensor, *, batch_size: int = 512) -> Tensor:
    """(N, width): mean over the tokenizer's latent tokens of ``tokenizer.latents(images)``,
    computed on the tokenizer's device and returned on the device of ``images``."""
    tokenizer.eval()
    device = next(tokenizer.parameters()).device
    return torch.cat(
        [tokenizer.latents(b.to(device)).mean(dim=1).to(b.device) for b in images.split(batch_size)]
    )


def linear_probe(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    *,
    weight_decay: float = 1e-3,
    max_iter: int = 200,
) -> float:
    """Test accuracy of a multinomial logistic regression (full-batch LBFGS, L2 penalty
    ``weight_decay``) on standardised features (mean / std of the training features, as MAE's
    BatchNorm without affine parameters before the linear head). Deterministic. Fitted on
    the device of ``train_features``."""
    device = train_features.device
    test_features = test_features.to(device)
    train_labels, test_labels = train_labels.to(device), test_labels.to(device)
    mean, std = train_features.mean(0), train_features.std(0) + 1e-6
    x_train, x_test = (train_features - mean) / std, (test_features - mean) / std
    n_classes = int(max(train_labels.max(), test_labels.max())) + 1
    head = nn.Linear(x_train.shape[1], n_classes).to(device)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    opt = torch.optim.LBFGS(head.parameters(), max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(head(x_train), train_labels)
        loss = loss + weight_decay * head.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        return (head(x_test).argmax(-1) == test_labels).float().mean().item()
