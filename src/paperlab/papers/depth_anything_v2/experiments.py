"""The claims' runs: one teacher and five kinds of student, trained once per paper run.

Every claim asks :func:`ensure_runs` for *all* the trainings of the paper (so the first claim
trains them in one balanced pool of worker processes and the others read the cache):

- ``teacher``: the larger ViT-DPT on the exact synthetic labels (GM on);
- ``real``: student on the teacher's pseudo-labels of the real crops (GM on, top 10% ignored);
- ``synthetic``: student on the exact synthetic labels (GM on) - the paper's "synthetic only";
- ``synthetic_nogm``: the same without gradient matching;
- ``noisy`` / ``noisy_noignore``: student on synthetic images whose labels carry gross
  region-wise errors (``data.add_outlier_blobs``), with / without ignoring the top 10%.

Each training job also evaluates its model (in the worker) on DA-2K-mini (the motorcycle photo)
and on held-out synthetic scenes with exact depth; models and figures go through ``ctx.shared``
with a ModuleCodec (the disk cache). Criteria constants are passed in from ``claims.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paperlab.claims import RunContext
from paperlab.core.artifacts import ModuleCodec
from paperlab.core.parallel import run_jobs
from paperlab.core.timing import time_interleaved
from paperlab.papers.depth_anything_v2 import data as D
from paperlab.papers.depth_anything_v2.model import DepthAnythingV2, DepthConfig, small_config
from paperlab.papers.depth_anything_v2.pipeline import KIND, fit_job, predict
from paperlab.papers.depth_anything_v2.transform import infer_disparity, preprocess

KINDS = ("synthetic", "synthetic_nogm", "noisy", "noisy_noignore", "real")


@dataclass(frozen=True)
class RunSpec:
    kind: str  # "teacher" or one of KINDS
    seed: int


# ---------------------------------------------------------------------------------------------
# Data (built once per run; tensors on disk through a codec)


class TensorsCodec:
    """A dict of tensors as one safetensors file."""

    def save(self, obj: dict[str, torch.Tensor], folder: Path) -> None:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in obj.items()}, str(folder / "tensors.safetensors"))

    def load(self, folder: Path) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file

        return load_file(str(folder / "tensors.safetensors"))


def data_spec(cfg: Any) -> dict[str, Any]:
    keys = ("size", "n_synthetic", "n_real", "n_test", "supersample", "noise_fraction")
    return {k: getattr(cfg, k) for k in keys} | {"scenes": D.SCENES}


def build_data(cfg: Any, seed: int) -> dict[str, torch.Tensor]:
    x, d = D.make_synthetic(cfg.n_synthetic, size=cfg.size, seed=seed, supersample=cfg.supersample)
    xt, dt = D.make_synthetic(cfg.n_test, size=cfg.size, seed=seed + 10_000, supersample=1)
    # DEVIATION: claim 3's noisy labels are exact synthetic labels with gross region-wise
    # errors added (the kind pseudo-labels have), not the teacher's own pseudo-labels: held-out
    # exact depth then measures what the ignoring buys, without the teacher's bias.
    noisy = D.add_outlier_blobs(d, fraction=cfg.noise_fraction, seed=seed + 1)
    real = D.make_real(cfg.n_real, size=cfg.size, seed=seed + 2)
    return dict(syn_x=x, syn_d=d, noisy_d=noisy, test_x=xt, test_d=dt, real_x=real)


def shared_data(ctx: RunContext) -> dict[str, torch.Tensor]:
    cfg = ctx.config
    return ctx.shared(
        "da2-data", lambda: build_data(cfg, ctx.seed), spec=data_spec(cfg), codec=TensorsCodec()
    )


def model_config(cfg: Any, role: str) -> DepthConfig:
    who = "teacher" if role == "teacher" else "student"
    return small_config(
        image_size=cfg.size,
        patch_size=cfg.patch_size,
        dim=getattr(cfg, f"{who}_dim"),
        depth=getattr(cfg, f"{who}_depth"),
        n_heads=getattr(cfg, f"{who}_heads"),
        features=getattr(cfg, f"{who}_features"),
    )


# ---------------------------------------------------------------------------------------------
# Evaluation (runs inside the training workers)


@dataclass(frozen=True)
class Benchmark:
    """DA-2K-mini (motorcycle) pairs and the held-out synthetic pairs, fixed before training."""

    photo: np.ndarray
    disparity: np.ndarray
    valid: np.ndarray
    pairs: np.ndarray  # random pairs, ratio > 1.15
    edge_pairs: np.ndarray  # pairs <= edge_distance px apart, ratio > 1.15
    test_pairs: list  # per held-out scene: random pairs
    test_edges: list  # per held-out scene: pairs <= 2 px apart across a depth jump
    eval_size: int


def make_benchmark(cfg: Any, test_d: torch.Tensor) -> Benchmark:
    photo, disp, valid = D.motorcycle()
    full = np.ones(test_d.shape[1:], bool)
    return Benchmark(
        photo=photo,
        disparity=disp,
        valid=valid,
        pairs=D.sample_pairs(disp, valid, cfg.n_pairs, seed=0),
        edge_pairs=D.sample_pairs(disp, valid, cfg.n_pairs, max_distance=cfg.edge_distance, seed=1),
        test_pairs=[D.sample_pairs(t.numpy(), full, 200, seed=i) for i, t in enumerate(test_d)],
        test_edges=[
            D.sample_pairs(t.numpy(), full, 200, max_distance=2, seed=i)
            for i, t in enumerate(test_d)
        ],
        eval_size=cfg.eval_size,
    )


def evaluate(
    model: DepthAnythingV2,
    bench: Benchmark,
    test_x: torch.Tensor,
    test_d: torch.Tensor,
    device: str = "cpu",
) -> dict[str, float]:
    """DA-2K-mini pair accuracy / edge-pair accuracy / AbsRel / delta1 on the photo, and pair
    accuracy / edge accuracy / AbsRel averaged over the held-out synthetic scenes."""
    model = model.to(device)
    pred = infer_disparity(model, bench.photo, input_size=bench.eval_size, device=device)
    m = {
        "pair_acc": D.pair_accuracy(pred, bench.pairs),
        "edge_acc": D.pair_accuracy(pred, bench.edge_pairs),
    } | D.depth_metrics(pred, bench.disparity, bench.valid)
    preds = predict(model, test_x, device=device).numpy()
    full = np.ones(test_d.shape[1:], bool)
    m["syn_pair_acc"] = float(
        np.mean([D.pair_accuracy(p, q) for p, q in zip(preds, bench.test_pairs, strict=True)])
    )
    edges = [D.pair_accuracy(p, q) for p, q in zip(preds, bench.test_edges, strict=True) if len(q)]
    m["syn_edge_acc"] = float(np.mean(edges))
    m["syn_abs_rel"] = float(
        np.mean(
            [
                D.depth_metrics(p, t.numpy(), full)["abs_rel"]
                for p, t in zip(preds, test_d, strict=True)
            ]
        )
    )
    return m


def train_and_evaluate(*, fit: dict[str, Any], bench: Benchmark, test_x, test_d):
    """A worker job: fit (``pipeline.fit_job``), then evaluate; (state dict, info)."""
    state, info = fit_job(**fit)
    model = DepthAnythingV2(DepthConfig(**fit["model_config"]))
    model.load_state_dict(state)
    return state, info | evaluate(model.eval(), bench, test_x, test_d, fit["device"])


# ---------------------------------------------------------------------------------------------
# The trainings


def run_key(cfg: Any, spec: RunSpec) -> dict[str, Any]:
    fields = ["size", "patch_size", "batch_size", "lr", "n_pairs", "edge_distance", "eval_size"]
    who = "teacher" if spec.kind == "teacher" else "student"
    fields += [f"{who}_{k}" for k in ("dim", "depth", "heads", "features", "steps")]
    data = data_spec(cfg)
    if not spec.kind.startswith("noisy"):
        del data["noise_fraction"]  # only the noisy-label students read it
    key = {"spec": spec, "data": data} | {k: getattr(cfg, k) for k in fields}
    if spec.kind == "real":  # depends on the run's teacher too (its seed is the run's)
        key["teacher"] = run_key(cfg, RunSpec("teacher", -1))
    return key


def _codec(cfg: Any, spec: RunSpec) -> ModuleCodec:
    mc = model_config(cfg, spec.kind)
    return ModuleCodec(build=lambda: DepthAnythingV2(mc), kind=KIND)


class _NotCached(Exception):
    pass


def _raise() -> Any:
    raise _NotCached


def cached(ctx: RunContext, spec: RunSpec, value: Any = None) -> tuple[Any, dict] | None:
    """(model, info) of ``spec`` from this run or the disk cache (None); with ``value``: store."""
    build = _raise if value is None else (lambda: value)
    try:
        return ctx.shared(
            "da2-run", build, spec=run_key(ctx.config, spec), codec=_codec(ctx.config, spec)
        )
    except _NotCached:
        return None


def _job(ctx: RunContext, spec: RunSpec, images, targets, bench: Benchmark, data) -> tuple:
    cfg = ctx.config
    teacher = spec.kind == "teacher"
    fit = dict(
        model_config=model_config(cfg, spec.kind).to_dict(),
        images=images,
        targets=targets,
        steps=cfg.teacher_steps if teacher else cfg.student_steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        seed=spec.seed,
        gm_weight=0.0 if spec.kind == "synthetic_nogm" else cfg.gm_weight,
        top_ignore=cfg.top_ignore if spec.kind in ("real", "noisy") else 0.0,
        device=ctx.device,
    )
    kwargs = dict(fit=fit, bench=bench, test_x=data["test_x"], test_d=data["test_d"])
    return train_and_evaluate, kwargs


def _train(ctx: RunContext, specs: list[RunSpec], bench: Benchmark, data: dict) -> None:
    """Train ``specs`` (not cached) in worker processes, longest first; store them."""
    if not specs:
        return
    cfg = ctx.config
    pseudo = None
    jobs = []
    for s in specs:
        if s.kind == "real":
            if pseudo is None:  # stage 2: the run's teacher pseudo-labels the real crops
                teacher, _ = cached(ctx, RunSpec("teacher", ctx.seed))
                pseudo = predict(teacher.to(ctx.device), data["real_x"], device=ctx.device)
                teacher.cpu()
            jobs.append(_job(ctx, s, data["real_x"], pseudo, bench, data))
        else:
            targets = data["noisy_d"] if s.kind.startswith("noisy") else data["syn_d"]
            jobs.append(_job(ctx, s, data["syn_x"], targets, bench, data))
    workers = cfg.workers if ctx.device == "cpu" else 1  # one process owns an accelerator
    results = run_jobs(
        jobs, workers=workers, threads=cfg.threads, progress=ctx.progress, desc="da2 trainings"
    )
    for s, (state, info) in zip(specs, results, strict=True):
        model = _codec(cfg, s).build()
        model.load_state_dict(state)
        cached(ctx, s, (model.eval(), info))


def seeds(ctx: RunContext) -> list[int]:
    return [ctx.seed + k for k in range(ctx.config.seeds)]


def ensure_runs(ctx: RunContext) -> dict[RunSpec, tuple[DepthAnythingV2, dict]]:
    """Every training of the paper: teachers first (with the other independent students), then
    the students on the teachers' pseudo-labels."""
    specs = [RunSpec("teacher", ctx.seed)] + [RunSpec(k, s) for k in KINDS for s in seeds(ctx)]
    todo = [s for s in specs if cached(ctx, s) is None]
    if todo:
        data = shared_data(ctx)
        bench = make_benchmark(ctx.config, data["test_d"])
        # all real-set students learn from the one teacher of the run (seed ctx.seed)
        first = [s for s in todo if s.kind != "real"]
        _train(ctx, sorted(first, key=lambda s: s.kind != "teacher"), bench, data)
        _train(ctx, [s for s in todo if s.kind == "real"], bench, data)
    return {s: cached(ctx, s) for s in specs}


def figures(runs: dict, kind: str, key: str, ctx: RunContext) -> np.ndarray:
    return np.array([runs[RunSpec(kind, s)][1][key] for s in seeds(ctx)])


def band(a: np.ndarray, b: np.ndarray, floor: float) -> float:
    """2 standard errors of mean(a) - mean(b) (paired by seed), at least ``floor``."""
    se = float(np.std(a - b, ddof=1)) / np.sqrt(len(a)) if len(a) > 1 else 0.0
    return max(2.0 * se, floor)


def record(m: dict[str, float], runs: dict, ctx: RunContext, kind: str, keys: tuple[str, ...]):
    """``<key>_<kind>`` (mean over seeds) and ``<key>_<kind>_std`` into ``m``."""
    for key in keys:
        v = figures(runs, kind, key, ctx)
        m[f"{key}_{kind}"] = float(v.mean())
        m[f"{key}_{kind}_std"] = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0


def same_row_pairs(ctx: RunContext, row_offset: int, mirrored: bool = False) -> np.ndarray:
    """DA-2K-mini's same-row pairs: the two points at most ``row_offset`` rows apart (of the
    photo's 500), anywhere in its width; "lower in the picture is closer" is at chance there.
    ``mirrored``: the second point also near the first's mirror column, so that "the sides are
    closer than the centre" is at chance too (the powering set)."""
    _, disp, valid = D.motorcycle()
    n, seed = ctx.config.n_pairs, 3 if mirrored else 2
    return D.sample_pairs(disp, valid, n, max_row_offset=row_offset, mirrored=mirrored, seed=seed)


def row_pair_acc(model: DepthAnythingV2, ctx: RunContext, pairs: np.ndarray) -> float:
    """A model's pair accuracy on the same-row pairs (the photo fed at ``eval_size``)."""
    photo, _, _ = D.motorcycle()
    device = str(next(model.parameters()).device)
    pred = infer_disparity(model.eval(), photo, input_size=ctx.config.eval_size, device=device)
    return D.pair_accuracy(pred, pairs)


def teacher_power(m: dict[str, float], runs: dict, ctx: RunContext, row_offset: int) -> None:
    """The powering figures, recorded by every claim: the teacher's pair accuracy on all of
    DA-2K-mini and on its same-row pairs (where the layout rule scores ~0.5), the layout rule's
    own figure on both, and the teacher's held-out synthetic pair accuracy."""
    teacher, info = runs[RunSpec("teacher", ctx.seed)]
    pairs, mirror = same_row_pairs(ctx, row_offset), same_row_pairs(ctx, row_offset, True)
    m["teacher_pair_acc"] = info["pair_acc"]
    m["teacher_row_pair_acc"] = row_pair_acc(teacher, ctx, pairs)
    m["teacher_mirror_pair_acc"] = row_pair_acc(teacher, ctx, mirror)
    m["teacher_syn_pair_acc"] = info["syn_pair_acc"]
    rows, sides = _layout()
    m["row_prior_pair_acc"] = row_prior(ctx)
    m["row_prior_row_pair_acc"] = D.pair_accuracy(rows, pairs)
    m["row_prior_mirror_pair_acc"] = D.pair_accuracy(rows, mirror)
    m["side_prior_row_pair_acc"] = D.pair_accuracy(sides, pairs)
    m["side_prior_mirror_pair_acc"] = D.pair_accuracy(sides, mirror)


PHOTO_KEYS = ("pair_acc", "edge_acc", "abs_rel", "delta1")


# ---------------------------------------------------------------------------------------------
# (1) pseudo-labelled real images vs synthetic labels only


def run_real_vs_synthetic(ctx: RunContext, *, min_gap: float, row_offset: int) -> dict[str, float]:
    runs = ensure_runs(ctx)
    m: dict[str, float] = {}
    teacher_power(m, runs, ctx, row_offset)
    sets = {"row": same_row_pairs(ctx, row_offset), "mirror": same_row_pairs(ctx, row_offset, True)}
    for kind in ("real", "synthetic"):
        record(m, runs, ctx, kind, PHOTO_KEYS)
        for name, pairs in sets.items():
            models = [runs[RunSpec(kind, s)][0] for s in seeds(ctx)]
            v = np.array([row_pair_acc(model, ctx, pairs) for model in models])
            m[f"{name}_pair_acc_{kind}"] = float(v.mean())
            m[f"{name}_pair_acc_{kind}_std"] = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
    a, b = figures(runs, "real", "pair_acc", ctx), figures(runs, "synthetic", "pair_acc", ctx)
    m["pair_gap"] = float(a.mean() - b.mean())
    m["pair_band"] = band(a, b, min_gap)
    m["abs_rel_gain"] = m["abs_rel_synthetic"] - m["abs_rel_real"]
    m["delta1_gain"] = m["delta1_real"] - m["delta1_synthetic"]
    plot_bars(ctx, m, runs)
    plot_photo(ctx, runs)
    return m


def _layout() -> tuple[np.ndarray, np.ndarray]:
    """The two layout rules as disparity maps of the photo: the row index ("lower in the
    picture is closer") and the distance from the centre column ("the sides are closer")."""
    _, disp, _ = D.motorcycle()
    rows, cols = np.mgrid[0 : disp.shape[0], 0 : disp.shape[1]].astype(np.float32)
    return rows, np.abs(cols - (disp.shape[1] - 1) / 2)


def row_prior(ctx: RunContext) -> float:
    """Pair accuracy of "lower in the picture is closer" on DA-2K-mini: a floor to read with."""
    photo, disp, valid = D.motorcycle()
    pairs = D.sample_pairs(disp, valid, ctx.config.n_pairs, seed=0)
    return D.pair_accuracy(_layout()[0], pairs)


# ---------------------------------------------------------------------------------------------
# (2) gradient matching on / off


def run_gradient_matching(ctx: RunContext, *, min_gap: float, row_offset: int) -> dict[str, float]:
    runs = ensure_runs(ctx)
    m: dict[str, float] = {}
    teacher_power(m, runs, ctx, row_offset)
    keys = ("syn_edge_acc", "syn_pair_acc", "syn_abs_rel", "edge_acc", "pair_acc")
    for kind in ("synthetic", "synthetic_nogm"):
        record(m, runs, ctx, kind, keys)
    a = figures(runs, "synthetic", "syn_edge_acc", ctx)
    b = figures(runs, "synthetic_nogm", "syn_edge_acc", ctx)
    m["edge_gap"] = float(a.mean() - b.mean())
    m["edge_band"] = band(a, b, min_gap)
    return m


# ---------------------------------------------------------------------------------------------
# (3) ignoring the top-10% loss on noisy labels


def run_top_ignore(ctx: RunContext, *, min_gap: float, row_offset: int) -> dict[str, float]:
    runs = ensure_runs(ctx)
    m: dict[str, float] = {}
    teacher_power(m, runs, ctx, row_offset)
    keys = ("syn_abs_rel", "syn_pair_acc", "syn_edge_acc", "pair_acc", "abs_rel")
    for kind in ("noisy", "noisy_noignore", "synthetic"):
        record(m, runs, ctx, kind, keys)
    a = figures(runs, "noisy_noignore", "syn_abs_rel", ctx)
    b = figures(runs, "noisy", "syn_abs_rel", ctx)
    m["abs_rel_gain"] = float(a.mean() - b.mean())
    m["abs_rel_band"] = band(a, b, min_gap)
    m["noise_harm"] = m["syn_abs_rel_noisy_noignore"] - m["syn_abs_rel_synthetic"]  # powering
    return m


# ---------------------------------------------------------------------------------------------
# (4) the student close to its teacher at a fraction of the cost


def run_student_vs_teacher(ctx: RunContext, *, reps: int, row_offset: int) -> dict[str, float]:
    runs = ensure_runs(ctx)
    m: dict[str, float] = {}
    teacher_power(m, runs, ctx, row_offset)
    record(m, runs, ctx, "real", ("pair_acc",))
    m["pair_acc_drop"] = m["teacher_pair_acc"] - m["pair_acc_real"]
    teacher = runs[RunSpec("teacher", ctx.seed)][0]
    student = runs[RunSpec("real", ctx.seed)][0]
    photo, _, _ = D.motorcycle()
    x = preprocess(photo, input_size=ctx.config.eval_size, multiple_of=ctx.config.patch_size)
    batch = x.expand(8, -1, -1, -1).contiguous().to(ctx.device)
    teacher, student = teacher.to(ctx.device), student.to(ctx.device)

    def run_model(model: DepthAnythingV2):
        def f(inp: torch.Tensor) -> None:
            with torch.no_grad():
                model(inp)

        return f

    with torch.inference_mode():
        t = time_interleaved(
            {"teacher": run_model(teacher.eval()), "student": run_model(student.eval())},
            [batch] * 3,
            reps=reps,
        )
    m["speedup"] = t.ratio("teacher", "student")
    m["student_images_per_s"] = 8 * 3 / t.median("student")
    m["teacher_images_per_s"] = 8 * 3 / t.median("teacher")
    m["param_ratio"] = sum(p.numel() for p in teacher.parameters()) / sum(
        p.numel() for p in student.parameters()
    )
    return m


from paperlab.papers.depth_anything_v2.plots import plot_bars, plot_photo  # noqa: E402
