"""Weight merging of models fine-tuned from one base (Prometheus 2, arXiv 2405.01535, Sec. 3).

Prometheus 2 trains one evaluator on direct assessment and one on pairwise ranking, both from
the same base, and merges their weights into one model that does both (Sec. 3.3; the 7B is a
linear merge with weights 0.5/0.5; Sec. 6 compares task arithmetic, TIES and DARE). The
methods, over state dicts in the Hugging Face layout (name -> tensor, safetensors on disk):

- ``linear``: the weighted average of the fine-tuned weights, weights normalised to sum 1
  (Wortsman et al. 2022; mergekit's ``linear``): ``sum_i w_i theta_i / sum_i w_i``.
- ``task_arithmetic``: ``base + sum_i w_i tau_i`` with task vectors ``tau_i = theta_i - base``
  (Ilharco et al. 2023).
- ``ties``: each task vector trimmed to its top-``density`` fraction by magnitude, per
  tensor; a sign elected per parameter (the sign of the trimmed vectors' sum); the disjoint
  mean of the weighted values that agree with it (Yadav et al. 2023): ``base + mean``.
- ``dare_linear``: each task vector's entries dropped with probability ``1 - density`` and the
  survivors rescaled by ``1 / density`` (Yu et al. 2024), then task arithmetic.
- ``dare_ties``: DARE's drop-and-rescale, then TIES's sign election and disjoint mean.

Default weights: equal and normalised for ``linear``; ``1/n`` for ``task_arithmetic`` and
``dare_linear`` (so with equal weights all three average the task vectors); ``1`` for ``ties``
and ``dare_ties`` (their disjoint mean already averages: the TIES paper's lambda = 1).

The task-vector methods compute as `peft.utils.merge_utils` does (the reference tests compare
them tensor by tensor), except that DARE's rescale by ``1/density`` is applied (peft 0.18's
`random_pruning` computes it and discards the result). DARE's random masks come from one
``torch.Generator`` seeded with ``seed``, drawn key by key in sorted key order and model by
model. Floating-point tensors are merged in float32 and cast back to the base's dtype;
other tensors (integer buffers) must be equal in every checkpoint and are copied.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

METHODS = ("linear", "task_arithmetic", "ties", "dare_linear", "dare_ties")
_TASK_VECTOR_METHODS = METHODS[1:]


def default_weights(method: str, n: int) -> list[float]:
    """The weights a merge uses when none are given (see the module docstring)."""
    if method in ("ties", "dare_ties"):
        return [1.0] * n
    return [1.0 / n] * n


def _check(
    base: dict[str, Tensor],
    models: Sequence[dict[str, Tensor]],
    method: str,
    weights: Sequence[float] | None,
    density: float,
) -> list[float]:
    if method not in METHODS:
        raise ValueError(f"method: unknown merge method {method!r}; known: {', '.join(METHODS)}")
    if not models:
        raise ValueError("models: give at least one fine-tuned state dict")
    if isinstance(density, bool) or not isinstance(density, int | float):
        raise ValueError(f"density: must be a number in (0, 1], got {density!r}")
    if not (0.0 < density <= 1.0):
        raise ValueError(f"density: must be in (0, 1], got {density}")
    if weights is None:
        weights = default_weights(method, len(models))
    weights = [float(w) for w in weights]
    if len(weights) != len(models):
        raise ValueError(f"weights: {len(weights)} given for {len(models)} models")
    if not all(math.isfinite(w) for w in weights):
        raise ValueError(f"weights: must be finite, got {weights}")
    if method == "linear" and sum(weights) == 0:
        raise ValueError("weights: a linear merge normalises by their sum, which is 0")
    keys = set(base)
    for i, model in enumerate(models):
        if set(model) != keys:
            missing, extra = sorted(keys - set(model)), sorted(set(model) - keys)
            raise ValueError(
                f"models[{i}]: its keys differ from the base's (missing {missing[:3]}, "
                f"extra {extra[:3]}); checkpoints must come from one base"
            )
        for k in sorted(keys):
            if model[k].shape != base[k].shape:
                raise ValueError(
                    f"models[{i}]: {k} has shape {tuple(model[k].shape)}, the base "
                    f"{tuple(base[k].shape)}; checkpoints must come from one base"
                )
            if not base[k].is_floating_point() and not torch.equal(model[k], base[k]):
                raise ValueError(
                    f"models[{i}]: the non-float tensor {k} differs from the base's; "
                    "only floating-point weights can be merged"
                )
    return weights


# -- the pieces (TIES Sec. 3, DARE Sec. 3) ---------------------------------------------------


def magnitude_trim(tau: Tensor, density: float) -> Tensor:
    """TIES "trim": keep the ``int(density * numel)`` entries of largest magnitude."""
    if density >= 1:
        return tau
    k = int(density * tau.numel())
    flat = tau.reshape(-1)
    keep = torch.zeros_like(flat)
    keep[torch.topk(flat.abs(), k=k, largest=True).indices] = 1
    return (flat * keep).reshape(tau.shape)


def dare_drop(tau: Tensor, density: float, generator: torch.Generator) -> Tensor:
    """DARE: drop each entry with probability ``1 - density``, rescale survivors by
    ``1/density`` (the expectation of every entry is kept)."""
    if density >= 1:
        return tau
    mask = torch.bernoulli(torch.full_like(tau, density), generator=generator)
    return tau * mask / density


def elect_sign(stacked: Tensor) -> Tensor:
    """TIES "elect": per parameter, which entries agree with the sign of the sum over the
    task vectors (a zero sum elects +). `stacked` has the models on dimension 0."""
    majority = torch.where(stacked.sum(dim=0) >= 0, 1.0, -1.0)
    return stacked.sign() == majority


def disjoint_mean(weighted: Tensor, agree: Tensor) -> Tensor:
    """TIES "disjoint merge": the mean over the models of the entries that agree with the
    elected sign (entries trimmed to zero never agree)."""
    total = (weighted * agree).sum(dim=0)
    return total / agree.sum(dim=0).clamp(min=1)


def _weighted(stacked: Tensor, weights: Tensor) -> Tensor:
    return stacked * weights.view(-1, *([1] * (stacked.dim() - 1)))


# -- the merge -------------------------------------------------------------------------------


def merge_state_dicts(
    base: dict[str, Tensor],
    models: Sequence[dict[str, Tensor]],
    *,
    method: str,
    weights: Sequence[float] | None = None,
    density: float = 1.0,
    seed: int = 0,
) -> dict[str, Tensor]:
    """Merge fine-tuned state dicts of one base (module docstring). `density` is the fraction
    of each task vector kept by TIES / DARE (ignored by linear and task arithmetic); `seed`
    seeds DARE's drop masks. Bad input raises one ValueError naming the argument."""
    weights = _check(base, models, method, weights, density)
    w = torch.tensor(weights, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    merged: dict[str, Tensor] = {}
    for key in sorted(base):
        ref = base[key]
        if not ref.is_floating_point():
            merged[key] = ref.clone()
            continue
        thetas = [m[key].to(torch.float32) for m in models]
        if method == "linear":
            out = _weighted(torch.stack(thetas), w).sum(dim=0) / w.sum()
        else:
            b = ref.to(torch.float32)
            taus = [t - b for t in thetas]
            if method in ("dare_linear", "dare_ties"):
                taus = [dare_drop(t, density, generator) for t in taus]
            elif method == "ties":
                taus = [magnitude_trim(t, density) for t in taus]
            stacked = torch.stack(taus)
            if method in ("ties", "dare_ties"):
                delta = disjoint_mean(_weighted(stacked, w), elect_sign(stacked))
            else:
                delta = _weighted(stacked, w).sum(dim=0)
            out = b + delta
        merged[key] = out.to(ref.dtype).contiguous()
    return merged


# -- checkpoints on disk ---------------------------------------------------------------------

WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"


def _files(path: Path) -> list[Path]:
    """The safetensors files of a checkpoint: a file, or a Hugging Face model folder (one
    `model.safetensors`, or shards listed in `model.safetensors.index.json`)."""
    if path.is_file():
        return [path]
    if path.is_dir():
        if (path / WEIGHTS_NAME).is_file():
            return [path / WEIGHTS_NAME]
        if (path / INDEX_NAME).is_file():
            index = json.loads((path / INDEX_NAME).read_text())
            return [path / name for name in sorted(set(index["weight_map"].values()))]
    raise ValueError(f"{path}: no checkpoint ({WEIGHTS_NAME}, {INDEX_NAME} or a .safetensors file)")


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Tensor], dict[str, str]]:
    """(state dict, metadata of its first file) of a safetensors checkpoint file or folder."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    files = _files(Path(path))
    state: dict[str, Tensor] = {}
    for f in files:
        try:
            state.update(load_file(str(f)))
        except Exception as e:  # safetensors has its own error types for damaged files
            raise ValueError(f"{f}: not a readable safetensors file ({e})") from None
    with safe_open(str(files[0]), framework="pt") as f:
        metadata = dict(f.metadata() or {})
    return state, metadata


def merge_checkpoints(
    base_path: str | os.PathLike,
    paths: Sequence[str | os.PathLike],
    out_path: str | os.PathLike,
    *,
    method: str,
    weights: Sequence[float] | None = None,
    density: float = 1.0,
    seed: int = 0,
) -> Path:
    """Merge checkpoint files or Hugging Face folders into one safetensors file: `out_path`
    itself if it ends in `.safetensors`, else `out_path/model.safetensors`. The base's
    metadata is kept (a paperlab model loads the merge as it loads the base) and the merge's
    recipe is added. Written atomically (temp file, fsync, rename): an error leaves nothing."""
    from paperlab.core.checkpoint import save_safetensors_atomic

    out = Path(out_path)
    out = out if out.suffix == ".safetensors" else out / WEIGHTS_NAME
    base, metadata = load_checkpoint(base_path)
    models = [load_checkpoint(p)[0] for p in paths]
    merged = merge_state_dicts(
        base, models, method=method, weights=weights, density=density, seed=seed
    )
    recipe = {"method": method, "weights": weights, "density": density, "seed": seed}
    metadata = {**metadata, "paperlab_merge": json.dumps(recipe)}
    metadata.setdefault("format", "pt")
    return save_safetensors_atomic(merged, out, metadata)
