"""Offline activation profiling: how often each FFN neuron fires.

PowerInfer (arXiv 2312.12456, Sec. 6.1) runs the model on general text and records, per layer,
how many tokens activate each neuron; its Sec. 3.1 finds a power law (a minority of "hot"
neurons covers 80% of all activations). PowerInfer-2 (arXiv 2406.06282,
Sec. 4.2 and 5.2) feeds the same statistics to its offline planner to fill the hot, pinned
segment of its neuron cache. Here the statistics are exact counts over a byte corpus.

A neuron i of layer l is *active* on a token iff `gate_proj(x)[i] > 0`, x the layer's FFN input
(the ReGLU output `relu(gate(x)) * up(x)` is exactly 0 otherwise).

    prof = profile_activations(model, (batch(i) for i in range(16)))
    prof.sparsity()           # per layer, share of (neuron, token) pairs that are inactive
    prof.share_covering(0.8)  # per layer, share of neurons that make up 80% of activations
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from paperlab.core.checkpoint import read_safetensors_metadata, save_safetensors_atomic
from paperlab.core.llama import Llama
from paperlab.core.train import eval_mode

PROFILE_KIND = "PowerInfer2ActivationProfile"


@torch.no_grad()
def ffn_inputs(model: Llama, ids: torch.Tensor) -> list[torch.Tensor]:
    """Per layer, the FFN input x (N = B*T, dim) of one full forward pass on ids (B, T)."""
    captured: list[torch.Tensor] = []
    hooks = [
        layer.mlp.register_forward_pre_hook(lambda _m, args: captured.append(args[0].detach()))
        for layer in model.layers
    ]
    try:
        model(ids)
    finally:
        for hook in hooks:
            hook.remove()
    return [x.reshape(-1, x.shape[-1]) for x in captured]  # (B, T, dim) -> (N, dim)


@torch.no_grad()
def activation_masks(model: Llama, xs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per layer, bool (N, ffn_hidden): which neurons the FFN inputs xs activate."""
    if len(xs) != len(model.layers):
        raise ValueError(f"activation_masks: {len(xs)} inputs for {len(model.layers)} layers")
    return [layer.mlp.gate_proj(x) > 0 for layer, x in zip(model.layers, xs, strict=True)]


@dataclass
class ActivationProfile:
    counts: list[torch.Tensor]  # per layer (ffn_hidden,) int64: tokens activating neuron i
    n_tokens: int  # tokens profiled

    def __post_init__(self) -> None:
        if not self.counts or self.n_tokens < 1:
            raise ValueError("ActivationProfile: need >= 1 layer and n_tokens >= 1")
        for l, c in enumerate(self.counts):
            if c.dim() != 1 or c.dtype != torch.int64:
                raise ValueError(f"ActivationProfile: counts[{l}] must be a 1-D int64 tensor")
            if len(c) and (int(c.min()) < 0 or int(c.max()) > self.n_tokens):
                raise ValueError(f"ActivationProfile: counts[{l}] outside 0..n_tokens")

    @property
    def n_layers(self) -> int:
        return len(self.counts)

    def frequency(self, layer: int) -> torch.Tensor:
        """Activation frequency of each neuron of `layer`: counts / n_tokens, in [0, 1]."""
        return self.counts[layer].double() / self.n_tokens

    def sparsity(self) -> list[float]:
        """Per layer: share of (neuron, token) pairs on which the neuron is inactive."""
        return [1.0 - float(c.sum()) / (len(c) * self.n_tokens) for c in self.counts]

    def share_covering(self, q: float = 0.8) -> list[float]:
        """Per layer: smallest share of neurons whose activations make up a share q of all the
        layer's activations (Sec. 3.1 of PowerInfer: the power-law skew). 0 if none fired."""
        if not 0.0 < q <= 1.0:
            raise ValueError(f"share_covering: q={q} must be in (0, 1]")
        return [_share_covering(c, q) for c in self.counts]

    def save(self, path: str | os.PathLike) -> Path:
        """One safetensors file (counts stacked (n_layers, ffn)), written atomically (a raw
        tensor file, not a module checkpoint: kind and n_tokens in its metadata)."""
        widths = {len(c) for c in self.counts}
        if len(widths) != 1:
            raise ValueError("ActivationProfile.save: all layers must have the same width")
        tensors = {"counts": torch.stack(self.counts).contiguous()}
        metadata = {"paperlab_model": PROFILE_KIND, "n_tokens": str(self.n_tokens)}
        return save_safetensors_atomic(tensors, path, metadata)

    @classmethod
    def load(cls, path: str | os.PathLike) -> ActivationProfile:
        """Read a file written by `save`; a missing or damaged file -> ValueError (one line)."""
        tensors, metadata = _read_safetensors(path, PROFILE_KIND, "activation profile")
        counts = tensors.get("counts")
        try:
            n_tokens = int(metadata["n_tokens"])
            if counts is None or counts.dim() != 2:
                raise ValueError("no (n_layers, ffn) counts tensor")
            return cls(counts=[c.to(torch.int64).clone() for c in counts], n_tokens=n_tokens)
        except (KeyError, ValueError) as e:
            raise ValueError(f"{path}: not a valid activation profile ({e})") from None


def _share_covering(counts: torch.Tensor, q: float) -> float:
    total = int(counts.sum())
    if total == 0:
        return 0.0
    cumulative = torch.sort(counts, descending=True).values.cumsum(0)  # int64: exact
    # smallest k with cumulative[k-1] >= q * total (counts below 2**53 are exact in float64)
    need = q * total
    k = int(torch.searchsorted(cumulative.double(), torch.tensor([need]).double())[0]) + 1
    return min(k, len(counts)) / len(counts)


def _read_safetensors(path, kind: str, what: str) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, metadata) of a paperlab safetensors file of `kind`; ValueError on any damage."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no {what} at {path}")
    metadata = read_safetensors_metadata(path, kind=kind)  # ValueError if damaged / other kind
    try:
        return load_file(str(path)), metadata
    except Exception as e:  # a header that parses over a truncated body
        raise ValueError(f"{path}: damaged {what} ({e})") from None


@torch.no_grad()
def profile_activations(
    model: Llama, batches: Iterable[torch.Tensor], *, progress: bool = False
) -> ActivationProfile:
    """Count, over every token of `batches` (ids (B, T), or (x, y) pairs: x is used), how many
    tokens activate each neuron of each layer (Sec. 6.1 of PowerInfer)."""
    counts = [
        torch.zeros(layer.mlp.gate_proj.out_features, dtype=torch.int64) for layer in model.layers
    ]
    n_tokens = 0
    with eval_mode(model):
        for ids in tqdm(batches, desc="profile", leave=False, disable=not progress):
            ids = ids[0] if isinstance(ids, tuple | list) else ids
            masks = activation_masks(model, ffn_inputs(model, ids))
            for total, mask in zip(counts, masks, strict=True):
                total += mask.sum(0)
            n_tokens += ids.numel()
    if n_tokens == 0:
        raise ValueError("profile_activations: batches yielded no tokens")
    return ActivationProfile(counts=counts, n_tokens=n_tokens)
