"""Checkpoints as safetensors: a model, optionally its optimizer, and a JSON ``meta`` dict.

One file holds everything, and nothing in it is ever unpickled:

    tensors   model.<name>                   the model's state_dict
              optim.state.<param_idx>.<name> optimizer state tensors (AdamW: exp_avg,
                                             exp_avg_sq, and ``step`` as a 0-d tensor)
    metadata  (str -> str, JSON-encoded values)
              format                         "paperlab.checkpoint/1"
              model.aliases                  {name: kept_name} for tied weights (see below)
              optim.param_groups             hyperparameters + param indices per group
              optim.extra                    non-tensor optimizer state (Python numbers, None)
              meta                           the caller's dict

Tied weights (``lm_head.weight is embed.weight``) are stored once: safetensors refuses tensors
that share memory, so a second name for the very same tensor becomes an alias and is filled in
again on load; any other overlap of storage is written as a copy. Loading copies into the
model's existing parameters, so the tie itself survives.

Writes are atomic: a temp file in the same directory, then ``os.replace``; a failed save
leaves no partial file and keeps any earlier checkpoint at that path intact.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

FORMAT = "paperlab.checkpoint/1"
KIND_KEY = "paperlab_model"  # metadata key naming what a file holds (plain string, not JSON)


def _unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _model_tensors(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """state_dict as ``model.<name>`` tensors, with exact duplicates (tied weights) as aliases."""
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for name, t in _unwrap(model).state_dict().items():
        t = t.detach()
        view = (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), t.shape, t.stride())
        if t.numel() > 0 and (view, t.dtype) in seen:
            aliases[name] = seen[(view, t.dtype)]
            continue
        seen[(view, t.dtype)] = name
        tensors[f"model.{name}"] = t
    return tensors, aliases


def _optimizer_parts(optimizer: torch.optim.Optimizer) -> tuple[dict, dict, list]:
    """Optimizer state split into tensors, JSON-able leftovers and param_groups."""
    state_dict = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    extra: dict[str, Any] = {}
    for idx, param_state in state_dict["state"].items():
        for name, value in param_state.items():
            key = f"optim.state.{idx}.{name}"
            if isinstance(value, torch.Tensor):
                tensors[key] = value.detach()
            else:
                extra[key] = value  # e.g. a Python-number step, or None (SGD without momentum)
    return tensors, extra, state_dict["param_groups"]


def _to_json(value: Any, what: str) -> str:
    def fallback(obj: Any) -> Any:
        if isinstance(obj, torch.Tensor) and obj.numel() == 1:
            return obj.item()  # e.g. a tensor learning rate
        raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")

    try:
        return json.dumps(value, default=fallback)
    except (TypeError, ValueError) as err:
        raise ValueError(f"checkpoint {what} must be JSON-serialisable: {err}") from None


def _separate_storage(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous, and no two tensors on one storage (what safetensors accepts)."""
    out: dict[str, torch.Tensor] = {}
    storages: set[int] = set()
    for key, t in tensors.items():
        t = t.to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        if t.numel() > 0 and ptr in storages:
            t = t.clone()
        storages.add(t.untyped_storage().data_ptr())
        out[key] = t
    return out


def save_safetensors_atomic(
    tensors: Mapping[str, torch.Tensor], path: str | os.PathLike, metadata: Mapping[str, str]
) -> Path:
    """Write a safetensors file atomically: temp file in the same folder, fsync, rename; the
    file gets ordinary permissions (umask) and a failed write leaves the old file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        tmp.touch(exist_ok=False)  # a new file gets the user's default permissions (umask) ...
        mode = tmp.stat().st_mode & 0o777
        save_file(dict(tensors), str(tmp), metadata=dict(metadata))
        os.chmod(tmp, mode)  # ... which safetensors does not keep (0.8 writes 0600)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_safetensors_metadata(path: str | os.PathLike, *, kind: str | None = None) -> dict:
    """The string metadata of a safetensors file, without loading its tensors. With `kind`,
    check that it was written as that paperlab model (metadata key `paperlab_model`)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
    except Exception as e:  # safetensors raises its own error types for a damaged header
        raise ValueError(f"{path}: not a readable safetensors file ({e})") from None
    if kind is not None and metadata.get("paperlab_model") != kind:
        found = metadata.get("paperlab_model", "no paperlab model")
        raise ValueError(f"{path}: expected a {kind} checkpoint, found {found}")
    return metadata


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    meta: Mapping[str, Any] | None = None,
    kind: str | None = None,
) -> Path:
    """Write ``model`` (and ``optimizer``, and JSON ``meta``) to ``path`` atomically.

    ``kind`` names what the file holds (``"MultiTokenLlama"``, ``"KangarooAdapter"``); loaders
    that pass the same ``kind`` refuse any other file with one clear error."""
    path = Path(path)
    tensors, aliases = _model_tensors(model)
    metadata = {"format": FORMAT, "model.aliases": _to_json(aliases, "aliases")}
    if kind is not None:
        metadata[KIND_KEY] = kind
    if optimizer is not None:
        optim_tensors, extra, groups = _optimizer_parts(optimizer)
        tensors.update(optim_tensors)
        metadata["optim.param_groups"] = _to_json(groups, "optimizer param_groups")
        metadata["optim.extra"] = _to_json(extra, "optimizer state")
    metadata["meta"] = _to_json(dict(meta or {}), "meta")
    tensors = _separate_storage(tensors)

    save_safetensors_atomic(tensors, path, metadata)
    return path


def _read(
    path: Path, device: str | torch.device, kind: str | None = None
) -> tuple[dict[str, torch.Tensor], dict]:
    """All tensors and the (JSON-decoded) metadata of a paperlab checkpoint, with clear errors."""
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as err:  # safetensors raises its own error type for corrupt headers
        raise ValueError(f"{path}: not a readable safetensors file ({err})") from None
    if metadata.pop("format", None) != FORMAT:
        raise ValueError(f"{path}: a safetensors file, but not a paperlab checkpoint (no format)")
    if kind is not None and metadata.get(KIND_KEY) != kind:
        found = metadata.get(KIND_KEY, "no paperlab model")
        raise ValueError(f"{path}: expected a {kind} checkpoint, found {found}")
    kind_found = metadata.pop(KIND_KEY, None)
    try:
        decoded = {key: json.loads(value) for key, value in metadata.items()}
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: corrupt checkpoint metadata ({err})") from None
    if kind_found is not None:
        decoded[KIND_KEY] = kind_found
    return tensors, decoded


def load_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    map_location: str | torch.device = "cpu",
    strict: bool = True,
    kind: str | None = None,
) -> dict[str, Any]:
    """Load ``path`` into ``model`` (and ``optimizer``) in place; return the saved ``meta``.

    ``strict`` checks that checkpoint and model have exactly the same parameter names;
    ``kind`` that the file was saved with that kind.
    """
    path = Path(path)
    tensors, metadata = _read(path, map_location, kind)
    model = _unwrap(model)
    state = {k.removeprefix("model."): t for k, t in tensors.items() if k.startswith("model.")}
    for name, kept in metadata.get("model.aliases", {}).items():
        state[name] = state[kept]
    current = model.state_dict()
    if strict:
        missing, unexpected = sorted(set(current) - set(state)), sorted(set(state) - set(current))
        if missing or unexpected:
            raise ValueError(
                f"{path}: checkpoint does not match the model: missing {missing[:5]}"
                f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                f"{'...' if len(unexpected) > 5 else ''}"
            )
    wrong = [
        f"{k}: {tuple(t.shape)} in the file, {tuple(current[k].shape)} in the model"
        for k, t in state.items()
        if k in current and t.shape != current[k].shape
    ]
    if wrong:
        raise ValueError(f"{path}: checkpoint shapes do not fit the model: {'; '.join(wrong[:3])}")
    model.load_state_dict(state, strict=strict)

    if optimizer is not None:
        if "optim.param_groups" not in metadata:
            raise ValueError(f"{path}: has no optimizer state; load it with optimizer=None")
        optimizer.load_state_dict(_optimizer_state(tensors, metadata, optimizer, path))
    return metadata.get("meta", {})


def _optimizer_state(tensors: dict, metadata: dict, optimizer: torch.optim.Optimizer, path: Path):
    """Rebuild ``optimizer.state_dict()`` from the flat tensors and the metadata."""
    state: dict[int, dict[str, Any]] = {}
    flat = {k: v for k, v in tensors.items() if k.startswith("optim.state.")}
    flat.update(metadata.get("optim.extra", {}))
    for key, value in flat.items():
        idx, name = key.removeprefix("optim.state.").split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    groups = metadata["optim.param_groups"]
    sizes = [len(g["params"]) for g in groups]
    if sizes != [len(g["params"]) for g in optimizer.param_groups]:
        raise ValueError(
            f"{path}: optimizer state has {sizes} params per group; the optimizer differs"
        )
    for group, current in zip(groups, optimizer.param_groups, strict=True):
        for key, value in group.items():  # JSON turned tuples (betas) into lists
            if isinstance(current.get(key), tuple) and isinstance(value, list):
                group[key] = tuple(value)
    return {"state": state, "param_groups": groups}


def read_checkpoint_meta(path: str | os.PathLike, *, kind: str | None = None) -> dict[str, Any]:
    """The saved ``meta`` of a paperlab checkpoint without loading its tensors (kind-checked),
    e.g. the config a loader needs to build the model before :func:`load_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
    except Exception as err:
        raise ValueError(f"{path}: not a readable safetensors file ({err})") from None
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path}: a safetensors file, but not a paperlab checkpoint (no format)")
    if kind is not None and metadata.get(KIND_KEY) != kind:
        found = metadata.get(KIND_KEY, "no paperlab model")
        raise ValueError(f"{path}: expected a {kind} checkpoint, found {found}")
    try:
        return json.loads(metadata.get("meta", "{}"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: corrupt checkpoint metadata ({err})") from None


def checkpoint_file(path: str | os.PathLike, default_name: str) -> Path:
    """The file a ``save_pretrained(path)`` / ``from_pretrained(path)`` pair means: ``path``
    itself when it names a ``.safetensors`` file, else ``path / default_name`` (a folder)."""
    path = Path(path)
    return path if path.suffix == ".safetensors" else path / default_name


def checkpoint_kind(path: str | os.PathLike) -> str | None:
    """The ``kind`` a paperlab checkpoint was saved with (None if it has none), without loading
    its tensors; for loaders that accept several kinds and build the class the file names."""
    metadata = read_safetensors_metadata(path)
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path}: a safetensors file, but not a paperlab checkpoint (no format)")
    return metadata.get(KIND_KEY)


def save_model(
    path: str | os.PathLike, model: nn.Module, *, kind: str, config: Mapping[str, Any], **meta: Any
) -> Path:
    """Save a model with what rebuilds it: ``kind`` and its constructor ``config`` (JSON)."""
    return save_checkpoint(path, model, kind=kind, meta={"config": dict(config), **meta})


def load_model(
    path: str | os.PathLike,
    build: Any,
    *,
    kind: str,
    map_location: str | torch.device = "cpu",
) -> tuple[nn.Module, dict[str, Any]]:
    """``(model, meta)`` from a file written by :func:`save_model`: ``build(meta["config"])``
    constructs the module, then its weights are loaded (kind- and shape-checked)."""
    meta = read_checkpoint_meta(path, kind=kind)
    if "config" not in meta:
        raise ValueError(f"{path}: a {kind} checkpoint without its config; re-save it")
    model = build(meta["config"])
    load_checkpoint(path, model, map_location=map_location, kind=kind)
    return model.to(map_location), meta
