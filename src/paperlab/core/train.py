"""The one training loop every paper reuses.

    cfg = TrainConfig(steps=500, lr=1e-3, warmup_steps=50)
    history = train(model, loss_fn, batches, cfg)       # history["loss"][-1], history["lr"], ...

- ``loss_fn(model, batch)`` returns a scalar loss, or ``(loss, metrics)`` with a dict of floats.
- ``batches`` is an iterable of batches (tensors, or tuples/lists/dicts of them, moved to the
  device for you) or a callable ``step -> batch``.
- AdamW with weight decay on matrices only (nanoGPT's habit), linear warmup then cosine decay to
  ``lr * min_lr_ratio``, gradient clipping, autocast (bf16, else fp16 + GradScaler) on CUDA.
- ``on_step(step, model, history)`` runs after every optimizer step (e.g. KAN grid updates);
  ``eval_fn(model) -> dict`` every ``eval_every`` steps and at the end, in eval mode, no grad.
- ``manual_backward=True``: ``loss_fn`` calls ``.backward()`` itself (e.g. multi-token
  prediction backpropagates head by head, or accumulates micro-batches) and returns the loss
  only for logging; the loop still clips, steps and zeroes the gradients. Under DDP every
  backward all-reduces; wrap all but the last in ``model.no_sync()``.
- Checkpoints (safetensors, see :mod:`paperlab.core.checkpoint`) every ``checkpoint_every``
  steps, at the end, and on Ctrl-C before the KeyboardInterrupt propagates.
  ``resume=True`` continues from ``checkpoint_path``: model, optimizer, step, history and the
  torch RNG (bit-for-bit the uninterrupted run, in one process). Re-run the same command: a
  callable ``batches`` is called with the global step; an iterable is read from its start and
  the finished steps' batches are skipped.
- Under ``torchrun --nproc-per-node N`` the model is wrapped in DistributedDataParallel (gloo on
  CPU, nccl on CUDA); each rank must get its own share of data (see :func:`shard`); only rank 0
  shows progress and writes checkpoints; the history holds rank 0's local losses.
  ``loss_fn`` receives the DDP wrapper (call it; reach attributes via ``model.module``);
  ``on_step`` and ``eval_fn`` receive the plain model.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import itertools
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from paperlab.core.checkpoint import load_checkpoint, save_checkpoint
from paperlab.core.device import resolve_device, seed_everything

T = TypeVar("T")
History = dict[str, list[float]]
LossFn = Callable[[nn.Module, Any], "torch.Tensor | tuple[torch.Tensor, dict[str, float]]"]


@dataclass
class TrainConfig:
    steps: int  # optimizer steps
    lr: float = 3e-4  # peak learning rate
    weight_decay: float = 0.1  # AdamW, applied to >=2-D params only
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 0  # linear warmup to lr
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio at the last step
    grad_clip: float | None = 1.0  # max global grad norm; 0 or None disables
    log_every: int = 1  # history and progress bar every this many steps (and the last)
    eval_every: int = 0  # eval_fn every this many steps (and the last); 0 = only the last
    checkpoint_path: str | None = None
    checkpoint_every: int = 0  # 0 = only at the end (and on Ctrl-C)
    resume: bool = False  # continue from checkpoint_path if it exists
    manual_backward: bool = False  # loss_fn calls backward itself
    progress: bool = True
    seed: int = 0
    amp: bool = True  # autocast on CUDA only; a no-op on CPU
    desc: str = "train"

    def __post_init__(self) -> None:
        if self.steps < 0 or self.warmup_steps < 0 or self.log_every < 1:
            raise ValueError("TrainConfig: steps, warmup_steps >= 0 and log_every >= 1 please")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"TrainConfig.min_lr_ratio={self.min_lr_ratio}: must be in [0, 1]")


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate at 0-based ``step``: linear warmup, then cosine down to lr * min_lr_ratio."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    decay_steps = max(1, cfg.steps - 1 - cfg.warmup_steps)  # reach the minimum at the last step
    progress = min(1.0, (step - cfg.warmup_steps) / decay_steps)
    min_lr = cfg.lr * cfg.min_lr_ratio
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - min_lr)


def configure_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices/embeddings (>=2-D), none on biases and norm gains."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


# ---------------------------------------------------------------------------------------------
# Distributed helpers


def dist_info() -> tuple[int, int]:
    """(rank, world_size): from the process group if up, else torchrun's env, else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def shard(
    items: Iterable[T], rank: int | None = None, world_size: int | None = None
) -> Iterable[T]:
    """This rank's share of ``items``: every world_size-th item starting at ``rank``.

    Sequences and tensors are sliced; other iterables are read lazily. For a torch Dataset use
    ``DistributedSampler``.
    """
    if rank is None or world_size is None:
        rank, world_size = dist_info()
    if isinstance(items, Sequence | torch.Tensor):
        return items[rank::world_size]
    return itertools.islice(items, rank, None, world_size)


def row_batches(
    data: torch.Tensor | Sequence[torch.Tensor], batch_size: int, *, seed: int = 0
) -> Callable[[int], Any]:
    """``step -> batch``: rows drawn at random (with replacement) from ``data`` (one tensor, or
    several indexed together, e.g. images and labels) that depend only on (seed, step), so a
    resumed or repeated run sees the same batches. Usable as the ``batches`` of :func:`train`."""
    tensors = (data,) if isinstance(data, torch.Tensor) else tuple(data)
    n = tensors[0].shape[0]
    if batch_size < 1 or n == 0 or any(t.shape[0] != n for t in tensors):
        raise ValueError(
            f"row_batches: need batch_size >= 1 and non-empty tensors of equal length, got "
            f"batch_size={batch_size}, lengths {[t.shape[0] for t in tensors]}"
        )

    def batch(step: int) -> Any:
        gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
        index = torch.randint(n, (batch_size,), generator=gen)
        picked = tuple(t[index] for t in tensors)
        return picked[0] if isinstance(data, torch.Tensor) else picked

    return batch


def _setup_distributed(device: str) -> tuple[int, int, str, bool]:
    """Join torchrun's process group if launched by it; returns (rank, world, device, created)."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world <= 1:
        return 0, 1, device, False
    if device.startswith("cuda"):
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        torch.cuda.set_device(device)
    created = not dist.is_initialized()
    if created:
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return dist.get_rank(), dist.get_world_size(), device, created


# ---------------------------------------------------------------------------------------------
# Small pieces of the loop


def _to_device(batch: Any, device: str) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, tuple | list):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


def _batch_source(batches: Iterable | Callable[[int], Any], start: int) -> Callable[[int], Any]:
    """A ``step -> batch`` function; an iterable is advanced past the ``start`` finished steps."""
    if callable(batches) and not isinstance(batches, Iterable):
        return batches
    iterator: Iterator = iter(batches)

    def next_batch(step: int) -> Any:
        try:
            return next(iterator)
        except StopIteration:
            raise ValueError(f"batches ran out at step {step}; it must yield cfg.steps") from None

    for step in range(start):
        next_batch(step)
    return next_batch


@contextlib.contextmanager
def _sigint_deferred():
    """Hold Ctrl-C until the block ends, so a checkpoint never holds a half-applied update."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)
        if caught and previous in (None, signal.default_int_handler):
            raise KeyboardInterrupt
        if caught and callable(previous):  # someone else's Ctrl-C handler: let it decide
            previous(signal.SIGINT, None)


def _rng_state(device: str) -> dict[str, str]:
    """torch's CPU (and this CUDA device's) RNG state, as base64 text for the checkpoint meta."""
    states = {"cpu": torch.get_rng_state()}
    if device.startswith("cuda"):
        states["cuda"] = torch.cuda.get_rng_state(device)
    return {k: base64.b64encode(v.numpy().tobytes()).decode() for k, v in states.items()}


def _set_rng_state(encoded: dict[str, str], device: str) -> None:
    states = {
        k: torch.frombuffer(bytearray(base64.b64decode(v)), dtype=torch.uint8)
        for k, v in encoded.items()
    }
    torch.set_rng_state(states["cpu"])
    if "cuda" in states and device.startswith("cuda"):
        torch.cuda.set_rng_state(states["cuda"], device)


def _record(history: History, **values: Any) -> None:
    for key, value in values.items():
        if isinstance(value, torch.Tensor):
            value = value.detach().item()
        history.setdefault(key, []).append(int(value) if key.endswith("step") else float(value))


@contextlib.contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Put ``modules`` in eval mode for the block and restore each one's own mode after, even
    on an exception: ``with eval_mode(model, adapter): ...``. Gradients are untouched (combine
    with ``torch.no_grad()`` where wanted)."""
    modes = [[m.training for m in module.modules()] for module in modules]
    try:
        for module in modules:
            module.eval()
        yield
    finally:
        for module, flags in zip(modules, modes, strict=True):
            for m, flag in zip(module.modules(), flags, strict=True):
                m.train(flag)


# ---------------------------------------------------------------------------------------------
# The loop


def train(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Iterable | Callable[[int], Any],
    cfg: TrainConfig,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    eval_fn: Callable[[nn.Module], dict[str, float]] | None = None,
    on_step: Callable[[int, nn.Module, History], None] | None = None,
    device: str = "cpu",
) -> History:
    """Train ``model`` in place for ``cfg.steps`` optimizer steps; return the history.

    History: lists ``step``, ``loss``, ``lr``, ``grad_norm`` (before clipping) and any metrics
    ``loss_fn`` returns, every ``log_every`` steps; ``seconds`` (one value: the wall time of the
    steps this call ran); ``eval_step`` and ``eval_<name>`` for
    ``eval_fn``. A custom ``optimizer`` keeps its own per-group lr as the peak and the schedule
    scales it by ``lr_at(step) / cfg.lr``.
    """
    rank, world, device, created_group = _setup_distributed(resolve_device(device))
    seed_everything(cfg.seed + rank)  # nanoGPT: a different dropout stream per rank
    raw_model = model.to(device)
    optimizer = configure_optimizer(raw_model, cfg) if optimizer is None else optimizer
    peak_lrs = [group["lr"] for group in optimizer.param_groups]
    ckpt = Path(cfg.checkpoint_path) if cfg.checkpoint_path else None
    start, history, rng = 0, {}, None
    if cfg.resume and ckpt is not None and ckpt.exists():
        meta = load_checkpoint(ckpt, raw_model, optimizer=optimizer, map_location=device)
        start, history, rng = meta["step"], meta["history"], meta["rng"]
    next_batch = _batch_source(batches, start)
    if rng is not None and world == 1:
        _set_rng_state(rng, device)  # after skipping batches: as if never interrupted
    if world > 1:
        device_ids = [torch.device(device).index] if device.startswith("cuda") else None
        model = nn.parallel.DistributedDataParallel(raw_model, device_ids=device_ids)
    autocast, scaler = _mixed_precision(device, cfg)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    max_norm = cfg.grad_clip if cfg.grad_clip else math.inf  # inf: measure the norm, no clip

    def save(done: int) -> None:
        if ckpt is not None and rank == 0:
            meta = {"step": done, "history": history, "rng": _rng_state(device)}
            meta["config"] = dataclasses.asdict(cfg)
            save_checkpoint(ckpt, raw_model, optimizer=optimizer, meta=meta)

    model.train()
    done = start
    started = time.perf_counter()
    bar = tqdm(
        total=cfg.steps,
        initial=start,
        desc=cfg.desc,
        leave=False,
        dynamic_ncols=True,
        disable=not cfg.progress or rank != 0,
    )
    try:
        for step in range(start, cfg.steps):
            lr = lr_at(step, cfg)
            for group, peak in zip(optimizer.param_groups, peak_lrs, strict=True):
                group["lr"] = lr if peak == cfg.lr else peak * lr / cfg.lr

            batch = _to_device(next_batch(step), device)
            with autocast:
                out = loss_fn(model, batch)
            loss, metrics = out if isinstance(out, tuple) else (out, {})
            value = float(loss.detach() if isinstance(loss, torch.Tensor) else loss)
            if not math.isfinite(value):  # stop before the update spreads it
                save(done)
                raise FloatingPointError(
                    f"train: the loss is {value} at step {step} (lr {lr:.3g}); nothing of "
                    f"this step was applied, {done} steps are done. Lower the learning rate or "
                    "check the batch"
                )
            if not cfg.manual_backward:
                scaler.scale(loss).backward()
            scaler.unscale_(optimizer)  # clip the true gradients
            grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
            log = step % cfg.log_every == 0 or step + 1 == cfg.steps
            with _sigint_deferred():  # the update, its count and its record: all or nothing
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                done = step + 1
                if log:
                    lr = optimizer.param_groups[0]["lr"]
                    _record(history, step=step, loss=loss, lr=lr, grad_norm=grad_norm, **metrics)
            bar.update(1)
            if log:
                bar.set_postfix(loss=f"{history['loss'][-1]:.4f}", lr=f"{lr:.2e}", refresh=False)

            if on_step is not None:
                on_step(step, raw_model, history)
            if eval_fn is not None and (
                done == cfg.steps or (cfg.eval_every and done % cfg.eval_every == 0)
            ):
                _evaluate(raw_model, eval_fn, step, history)
            if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < cfg.steps:
                save(done)
        # wall time of this call's steps (a resumed run counts only what it ran)
        history["seconds"] = [time.perf_counter() - started]
        save(done)
    except KeyboardInterrupt:
        save(done)  # nothing finished is lost; resume=True picks it up
        raise
    finally:
        bar.close()
        if created_group:
            dist.destroy_process_group()
    return history


def _mixed_precision(device: str, cfg: TrainConfig) -> tuple[Any, torch.amp.GradScaler]:
    """Autocast on CUDA (bf16 if supported, else fp16 with loss scaling); a no-op elsewhere."""
    use_amp = cfg.amp and device.startswith("cuda")
    if not use_amp:
        return contextlib.nullcontext(), torch.amp.GradScaler("cuda", enabled=False)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    # with manual_backward, loss_fn calls backward itself: its loss cannot be scaled for it
    scaling = dtype == torch.float16 and not cfg.manual_backward
    return torch.autocast("cuda", dtype=dtype), torch.amp.GradScaler("cuda", enabled=scaling)


def _evaluate(model: nn.Module, eval_fn: Callable, step: int, history: History) -> None:
    model.eval()
    with torch.no_grad():
        metrics = eval_fn(model)
    model.train()
    _record(history, eval_step=step, **{f"eval_{k}": v for k, v in metrics.items()})
