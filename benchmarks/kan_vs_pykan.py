"""Our KAN (paperlab.papers.kan) vs pykan 0.2.8 (the official code), side by side in one process.

Two measures, on the same data (1000 train / 1000 test points on [-1, 1]^n), the same widths,
grid size and spline order, each library trained through its own ``fit``:

1. **Time to pykan's accuracy** (the fair figure). Per function and repetition (one seed
   each): pykan trains ``--steps`` full-batch LBFGS steps with its default grid updates
   (every 5 steps before step 50); its final test RMSE is the target and its wall time the
   reference. Ours trains with the same settings for up to ``--cap`` times as many steps; the
   wall time at the end of the first step whose test RMSE is <= the target (our ``fit``
   evaluates the test set after every step; a forward hook timestamps that evaluation) is
   our time to the target. **time-to-RMSE ratio = ours / pykan** (< 1: ours gets there
   first); "not reached" if ours does not get there within the cap (the ratio is then a
   lower bound, shown with ">"). Also shown: both RMSEs at equal steps.
2. **Per-step throughput**: LBFGS steps/s with ``update_grid=False`` (same evaluations per
   step for both libraries on these nets; ``evals/step`` shows it) and Adam steps/s
   (lr 1e-2), after one warm-up step. Goal from the issue: >= 5x pykan.

Functions: the paper's toy functions (Fig. 3.1: J0(20x), exp(sin(pi x) + y^2), x y, the
four-variable one) at pykan tutorial widths, and two of our own (``OWN``). Runs are
interleaved (ours first on even repetitions, pykan first on odd ones); medians over
repetitions. pykan is built with ``auto_save=False, save_act=False,
symbolic_enabled=False`` and runs in a temporary working directory: nothing is written into
the repository. Writes ``benchmarks/results/kan_vs_pykan.json`` (machine, versions, date,
other programs' load during the run, every repetition).

    python benchmarks/kan_vs_pykan.py            # default: 3 reps
    python benchmarks/kan_vs_pykan.py --quick    # 1 rep, fewer steps: a smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import hashlib
import io
import json
import math
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from paperlab.core.files import write_text_atomic
from paperlab.core.timing import LoadMonitor
from paperlab.papers.kan.kan import KAN
from paperlab.papers.kan.toy import make_dataset, toy_functions

OUT = Path(__file__).resolve().parent / "results" / "kan_vs_pykan.json"
TARGET_SPEEDUP = 5.0  # the per-step goal


def _sincos(x: torch.Tensor) -> torch.Tensor:
    return (torch.sin(math.pi * x[:, :1]) * torch.cos(math.pi * x[:, 1:2])).reshape(-1, 1)


def _gauss_tanh(x: torch.Tensor) -> torch.Tensor:
    r2 = (x[:, :2] ** 2).sum(1, keepdim=True)
    return torch.exp(-2 * r2) + 0.5 * torch.tanh(3 * x[:, 2:3])


# name, formula, n_var, width, fn: the paper's functions (toy.py) and two of our own
PAPER = [("j0", (1, 1)), ("exp_sin", (2, 5, 1)), ("xy", (2, 2, 1)), ("four_var", (4, 4, 2, 1))]
OWN = [
    ("sincos", "sin(pi x) cos(pi y)", 2, (2, 5, 1), _sincos),
    ("gauss_tanh", "exp(-2(x^2+y^2)) + tanh(3z)/2", 3, (3, 5, 1), _gauss_tanh),
]


@dataclass
class BenchConfig:
    reps: int = 3
    steps: int = 20  # pykan's LBFGS steps (its fit's default grid schedule: updates < step 50)
    cap: float = 3.0  # ours may take up to cap * steps to reach pykan's RMSE
    tput_steps: int = 5  # LBFGS steps of the throughput runs
    adam_steps: int = 30
    grid: int = 5
    threads: int = 1
    n_train: int = 1000
    n_test: int = 1000


PRESETS = {
    "default": BenchConfig(),
    "quick": BenchConfig(reps=1, steps=6, tput_steps=3, adam_steps=10),
}


# --- the two libraries behind one interface --------------------------------------------------


def build(lib: str, width: tuple[int, ...], grid: int, seed: int, ckpt_dir: str) -> Any:
    if lib == "ours":
        return KAN(width=list(width), grid_size=grid, spline_order=3, seed=seed)
    from kan import KAN as PyKAN

    with quiet():
        return PyKAN(
            width=list(width),
            grid=grid,
            k=3,
            seed=seed,
            auto_save=False,
            save_act=False,
            symbolic_enabled=False,
            ckpt_path=ckpt_dir,
        )


def first_layer(model: Any) -> torch.nn.Module:
    return model.layers[0] if hasattr(model, "layers") else model.act_fun[0]


@contextlib.contextmanager
def quiet():
    """Swallow pykan's tqdm bar (stderr) and prints (stdout)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def fit(model: Any, data: dict, opt: str, steps: int, update_grid: bool) -> dict:
    lr = 1e-2 if opt == "Adam" else 1.0
    with quiet():
        return model.fit(data, opt=opt, steps=steps, lr=lr, update_grid=update_grid)


@torch.no_grad()
def test_rmse(model: Any, data: dict) -> float:
    pred = model(data["test_input"])
    return float(torch.sqrt(torch.mean((pred - data["test_label"]) ** 2)))


# --- (1) time to pykan's test RMSE -----------------------------------------------------------


def time_to_rmse(s: dict, seed: int, cfg: BenchConfig, tmp: str, order: tuple) -> dict:
    out: dict = {}
    for lib in order:
        model = build(lib, s["width"], cfg.grid, seed, tmp)
        if lib == "pykan":
            t0 = time.perf_counter()
            hist = fit(model, s["data"], "LBFGS", cfg.steps, True)
            out["pykan_seconds"] = time.perf_counter() - t0
            out["pykan_rmse"] = float(hist["test_loss"][-1])
            continue
        stamps: list[float] = []
        x_test = s["data"]["test_input"]

        def hook(_m, inputs, _out, stamps=stamps, x_test=x_test):
            if inputs[0] is x_test:  # our fit's per-step test evaluation
                stamps.append(time.perf_counter())

        handle = model.register_forward_hook(hook)
        steps = int(round(cfg.cap * cfg.steps))
        t0 = time.perf_counter()
        hist = fit(model, s["data"], "LBFGS", steps, True)
        handle.remove()
        out["ours_times"] = [t - t0 for t in stamps]
        out["ours_test"] = [float(v) for v in hist["test_loss"]]
    target = out["pykan_rmse"]
    hit = next((i for i, v in enumerate(out["ours_test"]) if v <= target), None)
    times, test = out.pop("ours_times"), out.pop("ours_test")
    out["ours_rmse_equal_steps"] = test[cfg.steps - 1]
    out["ours_seconds_equal_steps"] = times[cfg.steps - 1]
    out["ours_best_rmse"] = min(test)
    out["reached"] = hit is not None
    out["ours_steps_to_target"] = (hit + 1) if hit is not None else None
    out["ours_seconds_to_target"] = times[hit] if hit is not None else times[-1]
    out["ratio"] = out["ours_seconds_to_target"] / out["pykan_seconds"]
    return out


# --- (2) per-step throughput ------------------------------------------------------------------


def throughput(s: dict, seed: int, cfg: BenchConfig, tmp: str, order: tuple) -> dict:
    out: dict = {}
    for opt, steps in (("LBFGS", cfg.tput_steps), ("Adam", cfg.adam_steps)):
        for lib in order:
            model = build(lib, s["width"], cfg.grid, seed, tmp)
            fit(model, s["data"], opt, 1, False)  # warm-up step
            calls = [0]
            handle = first_layer(model).register_forward_hook(
                lambda *_, c=calls: c.__setitem__(0, c[0] + 1)
            )
            t0 = time.perf_counter()
            fit(model, s["data"], opt, steps, False)
            elapsed = time.perf_counter() - t0
            handle.remove()
            out[f"{lib}_{opt}_steps_s"] = steps / elapsed
            out[f"{lib}_{opt}_evals_per_step"] = calls[0] / steps - 1  # minus the test pass
    for opt in ("LBFGS", "Adam"):
        out[f"{opt}_ratio"] = out[f"ours_{opt}_steps_s"] / out[f"pykan_{opt}_steps_s"]
    return out


# --- the benchmark ------------------------------------------------------------------------


def settings(cfg: BenchConfig) -> list[dict]:
    toys = toy_functions()
    funcs = [(n, toys[n].formula, toys[n].n_var, w, toys[n].fn, "paper") for n, w in PAPER]
    funcs += [(n, f, v, w, fn, "ours") for n, f, v, w, fn in OWN]
    return [
        dict(
            name=name,
            formula=formula,
            width=width,
            source=source,
            data=make_dataset(fn, n_var, n_train=cfg.n_train, n_test=cfg.n_test, seed=0),
        )
        for name, formula, n_var, width, fn, source in funcs
    ]


def run(cfg: BenchConfig, tmp: str) -> list[dict]:
    sets = settings(cfg)
    for s in sets:  # process-level warm-up of every code path, both libraries
        for lib in ("ours", "pykan"):
            fit(build(lib, s["width"], cfg.grid, 0, tmp), s["data"], "LBFGS", 2, True)
    for s in sets:
        s["reps"] = []
    for rep in range(cfg.reps):
        order = ("ours", "pykan") if rep % 2 == 0 else ("pykan", "ours")
        for s in sets:
            r = time_to_rmse(s, rep, cfg, tmp, order)
            r |= throughput(s, rep, cfg, tmp, order)
            s["reps"].append(r)
        print(f"  rep {rep + 1}/{cfg.reps} done", file=sys.stderr, flush=True)
    return sets


def summary(s: dict) -> dict:
    """Medians over repetitions. The time-to-RMSE ratio counts a repetition in which ours does
    not reach pykan's RMSE within the cap as infinitely slow (None in the JSON when the
    median is such a repetition)."""
    reps = s["reps"]

    def med(key: str) -> float:
        return statistics.median(r[key] for r in reps)

    out = {k: med(k) for k in reps[0] if isinstance(reps[0][k], float)}
    ratio = statistics.median(r["ratio"] if r["reached"] else math.inf for r in reps)
    out["ratio"] = ratio if math.isfinite(ratio) else None
    out["reached"] = sum(r["reached"] for r in reps)
    out["reps"] = len(reps)
    return out


def fmt_ratio(m: dict) -> str:
    if m["ratio"] is None:
        return f"not reached ({m['reached']}/{m['reps']} reps)"
    text = f"{m['ratio']:.2f}"
    return text if m["reached"] == m["reps"] else f"{text} ({m['reached']}/{m['reps']} reached)"


def markdown(sets: list[dict]) -> str:
    head = (
        "| function | width | pykan RMSE (target) | pykan s | ours s to target | time-to-RMSE "
        "ratio | ours RMSE at equal steps / best | LBFGS steps/s ours / pykan | ratio | Adam "
        "steps/s ours / pykan | ratio |"
    )
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for s in sets:
        m = s["summary"]
        lines.append(
            f"| {s['formula']} ({s['source']}) | {list(s['width'])} | {m['pykan_rmse']:.2e} "
            f"| {m['pykan_seconds']:.2f} | {m['ours_seconds_to_target']:.2f} | {fmt_ratio(m)} "
            f"| {m['ours_rmse_equal_steps']:.2e} / {m['ours_best_rmse']:.2e} "
            f"| {m['ours_LBFGS_steps_s']:.1f} / {m['pykan_LBFGS_steps_s']:.1f} "
            f"| {m['LBFGS_ratio']:.2f}x "
            f"| {m['ours_Adam_steps_s']:.0f} / {m['pykan_Adam_steps_s']:.0f} "
            f"| {m['Adam_ratio']:.2f}x |"
        )
    return "\n".join(lines)


def source_fingerprint() -> str:
    """Short hash of our KAN's source, so a result can be tied to the code it measured."""
    import paperlab.papers.kan.kan as kan_module

    folder = Path(kan_module.__file__).parent
    digest = hashlib.sha1()
    for name in ("kan.py", "spline.py"):
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()[:10]


def parse_args(argv: list[str] | None = None) -> tuple[BenchConfig, Path]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 rep, few steps: a smoke run")
    ap.add_argument("--reps", type=int, help="repetitions, one seed each (default 3)")
    ap.add_argument("--steps", type=int, help="pykan's LBFGS steps, the target run (20)")
    ap.add_argument("--cap", type=float, help="ours may take cap x steps to the target (3)")
    ap.add_argument("--tput-steps", type=int, help="LBFGS steps of the throughput runs (5)")
    ap.add_argument("--adam-steps", type=int, help="Adam steps of the throughput runs (30)")
    ap.add_argument("--grid", type=int, help="grid intervals G (5)")
    ap.add_argument("--threads", type=int, help="torch.set_num_threads (1)")
    ap.add_argument("--out", type=Path, default=OUT, help=f"result JSON ({OUT.name})")
    args = ap.parse_args(argv)
    cfg = PRESETS["quick" if args.quick else "default"]
    overrides = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(cfg)
        if getattr(args, f.name, None) is not None
    }
    cfg = dataclasses.replace(cfg, **overrides)
    small = [
        n
        for n in ("reps", "steps", "tput_steps", "adam_steps", "grid", "threads")
        if getattr(cfg, n) < 1
    ]
    if small or cfg.cap < 1:
        ap.error(f"{', '.join(small) or 'cap'}: must be >= 1")
    return cfg, args.out


def main(argv: list[str] | None = None) -> None:
    cfg, out_path = parse_args(argv)
    torch.set_num_threads(cfg.threads)
    import kan as pykan_pkg

    command = f"python {shlex.join(sys.argv)}"
    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pykan": getattr(pykan_pkg, "__version__", "0.2.8"),
        "ours_source_sha1": source_fingerprint(),
    }
    print(f"command: {command}\n{versions}, torch threads {torch.get_num_threads()}")
    print(f"config: {cfg}")
    cwd, t0, load0 = os.getcwd(), time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="kan_vs_pykan_") as tmp, LoadMonitor() as load:
        os.chdir(tmp)  # whatever pykan writes lands here
        try:
            sets = run(cfg, tmp)
        finally:
            os.chdir(cwd)
    wall = time.perf_counter() - t0
    for s in sets:
        s["summary"] = summary(s)
    print(f"\nwall {wall:.0f} s; other programs' load per core {load.load_per_core:.2f}\n")
    print(markdown(sets))
    ratios = [fmt_ratio(s["summary"]) for s in sets]
    names = [s["name"] for s in sets]
    print(
        f"\ntime-to-RMSE ratio (ours / pykan; < 1: ours first): "
        f"{', '.join(f'{name} {r}' for name, r in zip(names, ratios, strict=True))}; "
        f"LBFGS steps/s >= {TARGET_SPEEDUP:.0f}x pykan in "
        f"{sum(s['summary']['LBFGS_ratio'] >= TARGET_SPEEDUP for s in sets)}/{len(sets)}"
    )
    result = {
        "benchmark": "kan_vs_pykan: time to pykan's test RMSE, per-step throughput",
        "command": command,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "torch_threads": cfg.threads,
            **versions,
        },
        "load": {
            "other_load_per_core": load.load_per_core,
            "loadavg_start": load0,
            "loadavg_end": os.getloadavg()[0],
        },
        "wall_seconds": wall,
        "config": dataclasses.asdict(cfg),
        "target_speedup": TARGET_SPEEDUP,
        "functions": [
            {k: v for k, v in s.items() if k != "data"} | {"width": list(s["width"])} for s in sets
        ],
    }
    write_text_atomic(out_path, json.dumps(result, indent=1) + "\n")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
