"""PowerInfer-2's experiments (Xue et al. 2024, arXiv 2406.06282): one ReLU decoder trained per
run and converted once into an engine folder on disk (profile, predictors, hot-first bundle
file), both shared by the claims through the run's artifact cache and kept in its disk cache
(a later run loads them instead of training and converting again).

Claims 1-2 read what convert measured; claims 3, 4 and 6 share one set of decode timings: for
each budget, engine vs memory-mapped dense vs in-memory dense, interleaved
(`time_interleaved`), medians of decode tokens/s, one torch thread for every variant (timings
are measured on every run, never cached on disk); claim 5 feeds validation windows one token
at a time through the engine's sparse decode path.

`claims_model_and_folder`, `time_budget` and `budget_figures` are also used by
`benchmarks/powerinfer2_decode.py`, so the benchmark runs on the claims' own model and engine
folder (the same recipe and disk-cache entries as `paperlab reproduce powerinfer2`).
"""

from __future__ import annotations

import contextlib
import math
import shutil
import statistics
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from paperlab.claims import RunContext
from paperlab.core.artifacts import ArtifactCache, FolderCodec, ModuleCodec, default_cache_dir
from paperlab.core.data.text import code_prompts
from paperlab.core.device import torch_threads
from paperlab.core.llama import Llama
from paperlab.core.timing import time_interleaved
from paperlab.papers.powerinfer2 import plots
from paperlab.papers.powerinfer2.baseline import InMemoryDense, MmapDense
from paperlab.papers.powerinfer2.engine import ConvertConfig, PowerInferEngine, convert
from paperlab.papers.powerinfer2.layout import FILES, load_engine_folder
from paperlab.papers.powerinfer2.profile import ActivationProfile
from paperlab.papers.powerinfer2.sparse_model import ReluModelConfig, fit_relu_model

if TYPE_CHECKING:
    from paperlab.papers.powerinfer2.claims import PowerInfer2ClaimsConfig

# the config fields the model's weights depend on, and those convert adds
MODEL_FIELDS = (
    "dim",
    "n_layers",
    "n_heads",
    "ffn_hidden",
    "train_steps",
    "train_batch",
    "train_seq_len",
)
CONVERT_FIELDS = (
    "profile_batches",
    "predictor_rank",
    "predictor_steps",
    "predictor_batches",
    "pos_weight",
    "threshold",
)
MMAP_COPY = "bundles-mmap.bin"  # the baseline maps its own copy of the bundle file


# ---------------------------------------------------------------------------------------------
# Shared work: the trained model and its engine folder on disk


def relu_model_config(cfg: PowerInfer2ClaimsConfig) -> ReluModelConfig:
    """The ReLU decoder of the claims (`sparse_model.ReluModelConfig`, other fields default)."""
    return ReluModelConfig(
        dim=cfg.dim,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        ffn_hidden=cfg.ffn_hidden,
        steps=cfg.train_steps,
        batch_size=cfg.train_batch,
        seq_len=cfg.train_seq_len,
        warmup_steps=min(20, cfg.train_steps),
    )


def convert_config(cfg: PowerInfer2ClaimsConfig, seed: int) -> ConvertConfig:
    """convert's settings (profile and predictors) of the claims."""
    return ConvertConfig(
        profile_batches=cfg.profile_batches,
        seq_len=cfg.train_seq_len,
        predictor_rank=cfg.predictor_rank,
        predictor_steps=cfg.predictor_steps,
        predictor_batches=cfg.predictor_batches,
        pos_weight=cfg.pos_weight,
        threshold=cfg.threshold,
        seed=seed,
    )


def shared_model(ctx: RunContext) -> tuple[Llama, dict]:
    """(the trained ReLU decoder in eval mode, info: seconds, val_loss, train_loss, history),
    trained once per spec in this paper's run (disk-cached)."""
    cfg: PowerInfer2ClaimsConfig = ctx.config
    mcfg = relu_model_config(cfg)

    def build() -> tuple[Llama, dict]:
        with torch_threads(cfg.train_threads):
            return fit_relu_model(mcfg, seed=ctx.seed, progress=ctx.progress)

    return ctx.shared(
        "powerinfer2-model",
        build,
        spec={f: getattr(cfg, f) for f in MODEL_FIELDS},
        codec=ModuleCodec(build=lambda: Llama(mcfg.llama_config()), kind="Llama"),
    )


def shared_folder(ctx: RunContext) -> Path:
    """The engine folder (convert's output, plus the baseline's copy of the bundle file):
    converted once per spec in this paper's run, in a temp folder the run removes, and kept in
    the disk cache (a later run reads the cached copy; nothing writes to it)."""
    cfg: PowerInfer2ClaimsConfig = ctx.config

    def build() -> Path:
        model, _ = shared_model(ctx)
        root = ctx.cache.tempdir("paperlab-powerinfer2-")
        with torch_threads(cfg.train_threads):
            out = convert(
                None,
                root / "engine",
                config=convert_config(cfg, ctx.seed),
                model=model,
                progress=ctx.progress,
            )
        # the baseline maps its own copy: two readers of one file would share its page cache
        shutil.copyfile(out / FILES["bundles"], out / MMAP_COPY)
        return out

    spec = {f: getattr(cfg, f) for f in MODEL_FIELDS + CONVERT_FIELDS}
    return ctx.shared("powerinfer2-engine", build, spec=spec, codec=FolderCodec())


@contextlib.contextmanager
def claims_model_and_folder(
    cfg: PowerInfer2ClaimsConfig | None = None,
    *,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> Iterator[tuple[Llama, dict, Path]]:
    """(model, info, engine folder) of the claims at ``cfg`` (default: the default scale) and
    ``seed``, through the same disk-cache entries as ``paperlab reproduce powerinfer2``
    (``cache_dir``: default ``~/.cache/paperlab`` / ``$PAPERLAB_CACHE_DIR``): loaded when a
    reproduce (or an earlier call) built them, else trained, converted and cached. The folder
    is valid inside the ``with`` block."""
    from paperlab.papers.powerinfer2.claims import PowerInfer2ClaimsConfig

    cfg = cfg or PowerInfer2ClaimsConfig()
    disk = default_cache_dir() if cache_dir is None else Path(cache_dir)
    with tempfile.TemporaryDirectory() as tmp, ArtifactCache(disk) as cache:
        ctx = RunContext(
            config=cfg,
            scale="default",
            seed=seed,
            device="cpu",
            out_dir=Path(tmp),
            progress=progress,
            cache=cache,
        )
        model, info = shared_model(ctx)
        yield model, info, shared_folder(ctx)


def storage_type(path: Path) -> str:
    """The filesystem type under ``path`` (from /proc/mounts), e.g. ext4 or tmpfs."""
    try:
        mounts = [line.split() for line in open("/proc/mounts")]
    except OSError:
        return "unknown"
    best = max(
        (m for m in mounts if str(path.resolve()).startswith(m[1])),
        key=lambda m: len(m[1]),
        default=None,
    )
    return best[2] if best else "unknown"


# ---------------------------------------------------------------------------------------------
# (1) sparsity and (2) predictors: read from what convert measured


def run_sparsity(ctx: RunContext) -> dict[str, float]:
    folder = shared_folder(ctx)
    _, info = shared_model(ctx)
    ctx.notes["train_seconds"] = round(info["seconds"], 1)
    profile = ActivationProfile.load(folder / FILES["profile"])
    sparsity, share = profile.sparsity(), profile.share_covering(0.8)
    m = {f"sparsity_layer{i}": s for i, s in enumerate(sparsity)}
    m |= {f"share80_layer{i}": s for i, s in enumerate(share)}
    m["mean_sparsity"] = statistics.mean(sparsity)
    m["mean_share80"] = statistics.mean(share)
    m["val_loss"] = info["val_loss"]
    plots.plot_profile(ctx, profile)
    return m


def run_predictor(ctx: RunContext) -> dict[str, float]:
    meta, _, _ = load_engine_folder(shared_folder(ctx))
    metrics = meta["predictor_metrics"]
    m: dict[str, float] = {}
    for i, layer in enumerate(metrics):
        m |= {f"{k}_layer{i}": float(v) for k, v in layer.items()}
    for k in ("recall", "precision", "predicted_share", "true_share"):
        m[f"mean_{k}"] = statistics.mean(float(layer[k]) for layer in metrics)
    return m


# ---------------------------------------------------------------------------------------------
# (3), (4), (6): decode under budgets, interleaved


def decode_runs(ctx: RunContext) -> dict[str, float]:
    """`measure_decode` once per paper run (in memory only: timings are taken every run)."""
    cfg: PowerInfer2ClaimsConfig = ctx.config
    return ctx.shared(
        "powerinfer2-decode",
        lambda: measure_decode(
            shared_folder(ctx), cfg, shared_model(ctx)[0], progress=ctx.progress
        ),
    )


def measure_decode(
    folder: Path, cfg: PowerInfer2ClaimsConfig, model: Llama, *, progress: bool = False
) -> dict[str, float]:
    """Per budget b: engine@b, mmap@b and the in-memory model, interleaved; decode tokens/s
    medians, bytes read per token (ours and the kernel's count), hit rate, I/O wait share."""
    prompts = [torch.tensor([p]) for p in code_prompts(cfg.prompts, cfg.prompt_len)]
    dense = InMemoryDense(model, threads=cfg.threads)
    m: dict[str, float] = {"storage_is_tmpfs": float(storage_type(folder) == "tmpfs")}
    dense_tps: list[float] = []
    for b in cfg.budgets:
        engine = PowerInferEngine.from_pretrained(
            folder,
            memory_budget=b,
            hot_share=cfg.hot_share,
            io_threads=cfg.io_threads,
            max_gap=cfg.max_gap,
            threads=cfg.threads,
        )
        mm = MmapDense(folder, memory_budget=b, file=folder / MMAP_COPY, threads=cfg.threads)
        try:
            runs = {"engine": engine, "mmap": mm, "dense": dense}
            stats, outputs = time_budget(
                runs,
                prompts,
                new_tokens=cfg.new_tokens,
                reps=cfg.reps,
                progress=progress,
                desc=f"decode @ {b:.0%}",
            )
        finally:
            engine.close()
            mm.close()
        same = all(
            torch.equal(a, d) for a, d in zip(outputs["mmap"], outputs["dense"], strict=True)
        )
        m |= budget_figures(b, stats, same)
        dense_tps += [s["tokens_per_s"] for s in stats["dense"]]
    m["dense_tps"] = statistics.median(dense_tps)
    return m


def time_budget(
    runs: dict, prompts: list, *, new_tokens: int, reps: int, progress: bool, desc: str
) -> tuple[dict[str, list[dict]], dict[str, list]]:
    """`time_interleaved` over ``runs`` (name -> an engine or baseline with ``generate`` and
    ``stats``); per method the stats of every timed call (the warm-up call is dropped) and the
    last repetition's outputs."""
    stats: dict[str, list[dict]] = {k: [] for k in runs}

    def method(name: str):
        def call(ids):
            out = runs[name].generate(ids, max_new_tokens=new_tokens)
            stats[name].append(dict(runs[name].stats))
            return out

        return call

    t = time_interleaved({k: method(k) for k in runs}, prompts, reps, progress=progress, desc=desc)
    return {k: v[1:] for k, v in stats.items()}, t.outputs


def _median(stats: list[dict], key: str) -> float:
    return statistics.median(s[key] for s in stats)


def budget_figures(b: float, stats: dict[str, list[dict]], same: bool) -> dict[str, float]:
    """The measured figures of one budget (keys suffixed with the budget in %)."""
    tag, e, mm = f"{round(b * 100)}", stats["engine"], stats["mmap"]
    # storage reads as the kernel counts them (/proc/self/io), else the engine's own count
    eb = _median(e, "block_read_bytes_per_token") or _median(e, "bytes_read_per_token")
    mb = _median(mm, "block_read_bytes_per_token") or _median(mm, "bytes_read_per_token")
    e_tps, mm_tps = _median(e, "tokens_per_s"), _median(mm, "tokens_per_s")
    return {
        f"engine_tps_{tag}": e_tps,
        f"mmap_tps_{tag}": mm_tps,
        f"speedup_{tag}": e_tps / mm_tps,
        f"engine_bytes_per_token_{tag}": _median(e, "bytes_read_per_token"),
        f"engine_block_bytes_per_token_{tag}": eb,
        f"mmap_block_bytes_per_token_{tag}": mb,
        f"hit_rate_{tag}": _median(e, "hit_rate"),
        f"io_wait_share_{tag}": _median(e, "io_wait_share"),
        f"reads_per_token_{tag}": _median(e, "reads_per_token"),
        f"active_share_{tag}": _median(e, "active_share"),
        f"engine_peak_ffn_bytes_{tag}": max(s["peak_resident_ffn_bytes"] for s in e),
        f"budget_bytes_{tag}": _median(e, "budget_bytes"),
        f"mmap_same_tokens_{tag}": float(same),
    } | ({f"bytes_ratio_{tag}": eb / mb} if mb > 0 else {})


def run_decode_speed(ctx: RunContext) -> dict[str, float]:
    cfg: PowerInfer2ClaimsConfig = ctx.config
    m = dict(decode_runs(ctx))
    tags = [f"{round(b * 100)}" for b in cfg.budgets]
    m["speedup_at_largest"] = m[f"speedup_{tags[0]}"]
    m["speedup_at_smallest"] = m[f"speedup_{tags[-1]}"]
    m["speedup_growth"] = m[f"speedup_{tags[-1]}"] / m[f"speedup_{tags[0]}"]
    m["budget_ok"] = float(
        all(m[f"engine_peak_ffn_bytes_{t}"] <= m[f"budget_bytes_{t}"] for t in tags)
    )
    plots.plot_decode(ctx, cfg, m)
    return m


def run_bytes_per_token(ctx: RunContext) -> dict[str, float]:
    cfg: PowerInfer2ClaimsConfig = ctx.config
    m = decode_runs(ctx)
    tags = [f"{round(b * 100)}" for b in cfg.budgets if b < 1]
    out = {k: v for k, v in m.items() if "bytes" in k}
    ratios = [m[f"bytes_ratio_{t}"] for t in tags if f"bytes_ratio_{t}" in m]
    out["max_bytes_ratio"] = max(ratios, default=math.nan)
    return out


def run_memory_at_equal_speed(ctx: RunContext, *, equal_speed: float) -> dict[str, float]:
    """The smallest budget whose engine speed reaches ``equal_speed`` times the in-memory
    model's (a criterion constant; none reaching it: saving 0)."""
    cfg: PowerInfer2ClaimsConfig = ctx.config
    m = decode_runs(ctx)
    out = {"dense_tps": m["dense_tps"]}
    reached = [
        b for b in cfg.budgets if m[f"engine_tps_{round(b * 100)}"] >= equal_speed * m["dense_tps"]
    ]
    for b in cfg.budgets:
        out[f"engine_over_dense_{round(b * 100)}"] = (
            m[f"engine_tps_{round(b * 100)}"] / m["dense_tps"]
        )
    if reached:  # (no figure when no budget reaches it: JSON has no NaN that equals itself)
        out["smallest_equal_speed_budget"] = min(reached)
    out["memory_saving"] = 1 - min(reached) if reached else 0.0
    return out


# ---------------------------------------------------------------------------------------------
# (5) agreement: teacher-forced, one token at a time (the engine's sparse decode path)


@torch.inference_mode()
def stepwise_logits(model, ids: torch.Tensor) -> torch.Tensor:
    """Logits (T, V) of ids (1, T) fed one token at a time through ``model`` with a KV cache:
    every position goes through the decode path (for the engine: the predictor's mask)."""
    cache = model.new_cache(batch_size=1, max_len=ids.shape[1])
    return torch.cat([model(ids[:, t : t + 1], cache=cache)[0] for t in range(ids.shape[1])])


def run_agreement(ctx: RunContext) -> dict[str, float]:
    cfg: PowerInfer2ClaimsConfig = ctx.config
    model, _ = shared_model(ctx)
    windows = [torch.tensor([p]) for p in code_prompts(cfg.eval_windows, cfg.eval_len + 1)]
    agree, nll_engine, nll_dense, n = 0, 0.0, 0.0, 0
    engine = PowerInferEngine.from_pretrained(shared_folder(ctx), memory_budget=1.0)
    with torch_threads(cfg.threads), engine as e:
        for w in windows:
            x, y = w[:, :-1], w[0, 1:]
            le, ld = stepwise_logits(e.model, x), stepwise_logits(model, x)
            agree += int((le.argmax(-1) == ld.argmax(-1)).sum())
            nll_engine += float(F.cross_entropy(le, y, reduction="sum"))
            nll_dense += float(F.cross_entropy(ld, y, reduction="sum"))
            n += len(y)
    ppl_e, ppl_d = math.exp(nll_engine / n), math.exp(nll_dense / n)
    return {
        "top1_agreement": agree / n,
        "ppl_engine": ppl_e,
        "ppl_dense": ppl_d,
        "ppl_drift": ppl_e / ppl_d - 1,
        "tokens": float(n),
    }
