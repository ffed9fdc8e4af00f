"""The trainings behind the claims: one :class:`RunSpec` per model, dataset and seed.

Every claim asks :func:`ensure_runs` for the specs it needs; specs already trained in this
``reproduce`` run, or found in the disk cache (one entry per spec, keyed by the spec and the
config fields its training reads, :func:`run_key`), are reused (e.g. the learned-position PiT
on digits serves claims 1-4); the rest run at once in worker processes
(``core.parallel.run_jobs``), longest first. The claims' run functions are in
``paperlab.papers.pit.experiments``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from paperlab.claims import RunContext
from paperlab.core.checkpoint import save_safetensors_atomic
from paperlab.core.data.images import ImageDataset, load_digits, make_shapes
from paperlab.core.parallel import run_jobs
from paperlab.core.train import TrainConfig, row_batches, train
from paperlab.papers.pit.mae import MAE, classifier_from_mae
from paperlab.papers.pit.model import model_name, patch_vit, permute_pixels, pixel_permutation


@dataclass(frozen=True)
class RunSpec:
    """One training: a classifier (from scratch, or fine-tuned after MAE pre-training)."""

    dataset: str  # "digits" or "shapes"
    patch_size: int  # 1 = PiT
    seed: int
    pos_embed: str = "learned"
    permuted: bool = False  # one fixed pixel permutation on train and test images
    mae: bool = False  # MAE pre-training on the training images first

    @property
    def name(self) -> str:
        name = model_name(self.patch_size, self.pos_embed)
        return name + ("_perm" if self.permuted else "") + ("_mae" if self.mae else "")


@dataclass
class RunResult:
    accuracy: float  # held-out top-1
    seconds: float  # wall time of the training steps (MAE pre-training included)
    final_loss: float
    mae_loss: float = float("nan")  # last MAE pre-training loss (MAE runs)
    mae_state: dict[str, Tensor] | None = None  # the pre-trained MAE (MAE runs; for plots)


def load_data(cfg: Any, dataset: str, seed: int) -> tuple[ImageDataset, ImageDataset]:
    """(train, test): digits 8x8 (1797 images, ``cfg.digits_test`` held out) or procedural
    shapes at ``cfg.shapes_size`` px (``cfg.shapes_train`` + ``cfg.shapes_test``)."""
    if dataset == "digits":
        return load_digits(size=8).split(cfg.digits_test, seed=seed)
    data = make_shapes(cfg.shapes_train + cfg.shapes_test, size=cfg.shapes_size, seed=seed)
    return data.split(cfg.shapes_test, seed=seed)


def shared_data(ctx: RunContext, dataset: str) -> tuple[ImageDataset, ImageDataset]:
    """:func:`load_data` once per paper run (the split depends on the run's seed)."""
    return ctx.shared(f"data_{dataset}", lambda: load_data(ctx.config, dataset, ctx.seed))


def dataset_steps(cfg: Any, dataset: str) -> int:
    return cfg.digits_steps if dataset == "digits" else cfg.shapes_steps


# ---------------------------------------------------------------------------------------------
# Jobs (module-level functions with picklable arguments, for run_jobs)


@torch.no_grad()
def accuracy(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy, computed in batches on the model's device."""
    model.eval()
    device = next(model.parameters()).device
    correct = sum(
        int((model(x.to(device)).argmax(-1) == y.to(device)).sum())
        for x, y in zip(images.split(batch_size), labels.split(batch_size), strict=True)
    )
    return correct / len(labels)


def _cross_entropy(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    x, y = batch
    return F.cross_entropy(model(x), y)


def _train_config(steps: int, lr: float, cfg: dict, seed: int, desc: str) -> TrainConfig:
    return TrainConfig(
        steps=steps,
        lr=lr,
        weight_decay=cfg["weight_decay"],
        warmup_steps=max(1, steps // 10),
        betas=(0.9, 0.999),
        seed=seed,
        progress=False,
        log_every=max(1, steps // 20),
        desc=desc,
    )


def fit(
    *,
    spec: RunSpec,
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    num_classes: int,
    steps: int,
    cfg: dict,
    device: str = "cpu",
) -> RunResult:
    """Train one classifier of ``spec`` (after MAE pre-training if ``spec.mae``) on ``device``
    and measure its held-out accuracy. ``cfg``: the claims config as a dict (picklable). The
    data stay where they are; the training loop moves each batch to ``device``."""
    seconds = 0.0
    if spec.permuted:
        perm = pixel_permutation(train_x.shape[-1], seed=cfg["perm_seed"])
        train_x, test_x = permute_pixels(train_x, perm), permute_pixels(test_x, perm)
    arch = dict(dim=cfg["dim"], depth=cfg["depth"], n_heads=cfg["n_heads"])
    mae_loss, mae_state = float("nan"), None
    torch.manual_seed(spec.seed)
    if spec.mae:
        mae = MAE(
            image_size=train_x.shape[-1],
            patch_size=spec.patch_size,
            in_channels=train_x.shape[1],
            pos_embed=spec.pos_embed,
            decoder_dim=cfg["decoder_dim"],
            decoder_depth=cfg["decoder_depth"],
            decoder_heads=cfg["n_heads"],
            mask_ratio=cfg["mask_ratio"],
            **arch,
        )
        pre_cfg = _train_config(cfg["mae_steps"], cfg["mae_lr"], cfg, spec.seed, "mae")
        hist = train(
            mae,
            lambda m, x: m.loss(x),
            row_batches(train_x, cfg["batch_size"], seed=spec.seed + 7919),
            pre_cfg,
            device=device,
        )
        # kept on the CPU (the cache's codec and the plots read it there)
        mae_loss, mae_state = hist["loss"][-1], {k: v.cpu() for k, v in mae.state_dict().items()}
        seconds += sum(hist["seconds"])
        model = classifier_from_mae(mae, num_classes=num_classes)
    else:
        model = patch_vit(
            image_size=train_x.shape[-1],
            patch_size=spec.patch_size,
            in_channels=train_x.shape[1],
            num_classes=num_classes,
            pos_embed=spec.pos_embed,
            **arch,
        )
    # the same fine-tuning / from-scratch recipe and batch stream for every model of a seed
    # DEVIATION: no augmentation, mixup, label smoothing or drop path (the paper's DeiT-style
    # recipe), and MAE fine-tuning without layer-wise lr decay: the from-scratch recipe.
    batches = row_batches((train_x, train_y), cfg["batch_size"], seed=spec.seed)
    train_cfg = _train_config(steps, cfg["lr"], cfg, spec.seed, spec.name)
    hist = train(model, _cross_entropy, batches, train_cfg, device=device)
    acc = accuracy(model, test_x, test_y)
    seconds += sum(hist["seconds"])
    return RunResult(acc, seconds, hist["loss"][-1], mae_loss, mae_state)


def _cost(spec: RunSpec, cfg: Any, image_size: int) -> float:
    """Rough relative cost (token-steps, attention included) to schedule long jobs first."""
    n = (image_size // spec.patch_size) ** 2 + 1
    cost = dataset_steps(cfg, spec.dataset) * n * (1 + n / 64)
    if spec.mae:
        k = int((n - 1) * (1 - cfg.mask_ratio)) + 1
        cost += cfg.mae_steps * (k * (1 + k / 64) + 0.5 * n * (1 + n / 64))
    return cost


def run_key(cfg: Any, spec: RunSpec) -> dict[str, Any]:
    """What one training's result depends on: its spec and the config fields it reads (the
    run's seed, which splits the data, is added by ``ctx.shared``)."""
    if spec.dataset == "digits":
        data: dict[str, Any] = {"digits_test": cfg.digits_test}
    else:
        data = {k: getattr(cfg, k) for k in ("shapes_size", "shapes_train", "shapes_test")}
    fields = ("dim", "depth", "n_heads", "batch_size", "lr", "weight_decay", "threads")
    if spec.permuted:
        fields += ("perm_seed",)
    if spec.mae:
        fields += ("mae_steps", "mae_lr", "mask_ratio", "decoder_dim", "decoder_depth")
    train_fields = {k: getattr(cfg, k) for k in fields}
    return {"spec": spec, "data": data, "steps": dataset_steps(cfg, spec.dataset)} | train_fields


class RunResultCodec:
    """A :class:`RunResult` on disk: its figures as JSON, the MAE weights as safetensors."""

    def save(self, obj: RunResult, folder: Path) -> None:
        figures = dict(
            accuracy=obj.accuracy,
            seconds=obj.seconds,
            final_loss=obj.final_loss,
            mae_loss=obj.mae_loss,
        )
        (folder / "result.json").write_text(json.dumps(figures))
        if obj.mae_state is not None:
            state = {k: v.detach().clone().contiguous() for k, v in obj.mae_state.items()}
            save_safetensors_atomic(state, folder / "mae.safetensors", {"kind": "PiTMAE"})

    def load(self, folder: Path) -> RunResult:
        from safetensors.torch import load_file

        figures = json.loads((folder / "result.json").read_text())
        mae_file = folder / "mae.safetensors"
        state = load_file(str(mae_file)) if mae_file.is_file() else None
        return RunResult(**figures, mae_state=state)


class _NotCached(Exception):
    pass


def _not_cached() -> RunResult:
    raise _NotCached


def cached_run(ctx: RunContext, spec: RunSpec, result: RunResult | None = None) -> RunResult | None:
    """The result of ``spec`` from this run's memory or the disk cache (``None`` if neither
    has it); with ``result``: store that one (memory, and disk when the run has one)."""
    build = _not_cached if result is None else (lambda: result)
    try:
        return ctx.shared("pit-run", build, spec=run_key(ctx.config, spec), codec=RunResultCodec())
    except _NotCached:
        return None


def job_workers(ctx: RunContext) -> int:
    """Worker processes for the trainings: ``workers`` on the CPU; on an accelerator one (the
    trainings run in this process, one after the other, on ``ctx.device``: forked workers
    cannot reuse a CUDA context, and models this small do not share a GPU usefully)."""
    return ctx.config.workers if ctx.device == "cpu" else 1


def ensure_runs(ctx: RunContext, specs: list[RunSpec]) -> dict[RunSpec, RunResult]:
    """The results of ``specs``, training those not yet trained in this run (or cached)."""
    cfg = ctx.config
    done = {s: cached_run(ctx, s) for s in dict.fromkeys(specs)}
    todo = [s for s, r in done.items() if r is None]
    size = {d: shared_data(ctx, d)[0].size for d in {s.dataset for s in todo}}
    todo.sort(key=lambda s: -_cost(s, cfg, size[s.dataset]))
    jobs = []
    for s in todo:
        train_set, test_set = shared_data(ctx, s.dataset)
        kwargs = dict(
            spec=s,
            train_x=train_set.images,
            train_y=train_set.labels,
            test_x=test_set.images,
            test_y=test_set.labels,
            num_classes=train_set.num_classes,
            steps=dataset_steps(cfg, s.dataset),
            cfg=vars(cfg).copy(),
            device=ctx.device,
        )
        jobs.append((fit, kwargs))
    if jobs:
        results = run_jobs(
            jobs,
            workers=job_workers(ctx),
            threads=cfg.threads,
            progress=ctx.progress,
            desc=f"pit: {len(jobs)} trainings",
        )
        for s, r in zip(todo, results, strict=True):
            done[s] = cached_run(ctx, s, r)
    return {s: done[s] for s in specs}


# ---------------------------------------------------------------------------------------------
# Seeds and spreads


def seeds(ctx: RunContext) -> list[int]:
    return [ctx.seed + k for k in range(ctx.config.seeds)]


def accuracies(ctx: RunContext, runs: dict[RunSpec, RunResult], **spec_kw: Any) -> np.ndarray:
    """Held-out accuracies of one model over the seeds, in seed order."""
    return np.array([runs[RunSpec(seed=s, **spec_kw)].accuracy for s in seeds(ctx)])


def mean_std(values: np.ndarray) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1) over seeds."""
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return float(np.mean(values)), std


def mae_model(ctx: RunContext, run: RunResult, dataset: str) -> MAE:
    """The pre-trained MAE of a run, rebuilt from its state (for the reconstruction plot)."""
    cfg = ctx.config
    train_set, _ = shared_data(ctx, dataset)
    mae = MAE(
        image_size=train_set.size,
        patch_size=1,
        in_channels=train_set.channels,
        dim=cfg.dim,
        depth=cfg.depth,
        n_heads=cfg.n_heads,
        decoder_dim=cfg.decoder_dim,
        decoder_depth=cfg.decoder_depth,
        decoder_heads=cfg.n_heads,
        mask_ratio=cfg.mask_ratio,
    )
    mae.load_state_dict(run.mae_state)
    return mae.to(ctx.device).eval()
