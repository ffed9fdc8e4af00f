"""``--device`` is honoured: every training a claim runs is handed the run's device
(``ctx.device``) and leaves its model there, and every job sent to a worker process carries it.

Without a GPU the device is "cpu", which is also ``core.train.train``'s default, so a training
that was never told the device would look right. The run's device is therefore passed as an
object of its own (:class:`RunDevice`, a ``str`` equal to "cpu"): the runner keeps it as
``ctx.device``, and a training counts as honouring it only when it receives that very object.
A default, or a literal "cpu", fails. Spies wrap ``core.train.train`` (every alias of it),
``KAN.fit``, ``fit_lbfgs`` (KAN's MLP baseline) and ``core.parallel.run_jobs`` (the job
kwargs); one tiny claim per paper (two for KAN) keeps this fast."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

import paperlab.core.parallel
import paperlab.core.train
from paperlab.papers.kan import KAN
from paperlab.papers.kan import toy as kan_toy
from paperlab.runner import plan_run, run_plans

# claims that train every kind of model their paper has (tiny scale, seconds each)
CLAIMS = {
    "kan": ("b", "d"),  # grid-extension staircase (KAN.fit, refine); continual (KAN + MLP)
    "pit": ("mae",),  # MAE pre-training, fine-tuning and from-scratch PiT (worker jobs)
    "titok": ("generation",),  # six tokenizers, MaskGIT + AR generators, the FD judge
    "transnar": ("nar_ood",),  # the NAR (phase 1), TransNAR and the baseline (phase 2)
}
# the trainings each paper must be seen to run (so the test cannot pass by seeing none)
EXPECTED = {
    "kan": {"KAN.fit", "fit_lbfgs"},
    "pit": {"core.train.train", "job"},
    "titok": {"core.train.train", "job"},
    "transnar": {"core.train.train", "job"},
}
MISSING = "<not passed>"


class RunDevice(str):
    """The run's device, as an object a training can only have got from ``ctx.device``."""

    __slots__ = ()


@dataclass
class Seen:
    what: str  # which spy: core.train.train, KAN.fit, fit_lbfgs, job
    where: str  # the caller (function name) or the job's function
    device: Any  # the device argument (MISSING if not passed)
    params_on: torch.device | None  # where the model's parameters are after the call


def _params_device(model: Any) -> torch.device | None:
    params = list(model.parameters()) if isinstance(model, torch.nn.Module) else []
    devices = {p.device for p in params}
    assert len(devices) <= 1, f"a model split over devices {devices}"
    return devices.pop() if devices else None


def _import_all(package: str) -> None:
    """Import every module of ``package`` so each alias of a spied function is patched."""
    pkg = importlib.import_module(package)
    for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}."):
        if not info.name.endswith(".cli"):
            importlib.import_module(info.name)


def _patch_everywhere(mp: pytest.MonkeyPatch, original: Callable, spy: Callable) -> int:
    """Replace ``original`` in every loaded paperlab module that holds it (any alias)."""
    count = 0
    for name, module in list(sys.modules.items()):
        if not name.startswith("paperlab") or module is None:
            continue
        for attr, value in list(vars(module).items()):
            if value is original:
                mp.setattr(module, attr, spy)
                count += 1
    return count


@pytest.fixture
def spies(monkeypatch: pytest.MonkeyPatch) -> list[Seen]:
    for slug in CLAIMS:
        _import_all(f"paperlab.papers.{slug}")
    importlib.import_module("paperlab.core.image_metric")
    seen: list[Seen] = []

    def caller() -> str:
        return sys._getframe(2).f_code.co_name

    real_train = paperlab.core.train.train

    def train(model, *args, **kwargs):
        where = caller()
        history = real_train(model, *args, **kwargs)
        seen.append(Seen("core.train.train", where, kwargs.get("device", MISSING), None))
        seen[-1].params_on = _params_device(model)
        return history

    real_fit = KAN.fit

    def fit(self, *args, **kwargs):
        where = caller()
        history = real_fit(self, *args, **kwargs)
        seen.append(Seen("KAN.fit", where, kwargs.get("device", MISSING), _params_device(self)))
        return history

    real_lbfgs = kan_toy.fit_lbfgs

    def fit_lbfgs(model, *args, **kwargs):
        where = caller()
        losses = real_lbfgs(model, *args, **kwargs)
        device = kwargs.get("device", MISSING)
        seen.append(Seen("fit_lbfgs", where, device, _params_device(model)))
        return losses

    real_run_jobs = paperlab.core.parallel.run_jobs

    def run_jobs(jobs, **kwargs):
        for fn, job_kwargs in jobs:
            seen.append(Seen("job", fn.__name__, job_kwargs.get("device", MISSING), None))
        return real_run_jobs(jobs, **kwargs)

    assert _patch_everywhere(monkeypatch, real_train, train) >= 4
    assert _patch_everywhere(monkeypatch, real_lbfgs, fit_lbfgs) >= 1
    assert _patch_everywhere(monkeypatch, real_run_jobs, run_jobs) >= 3
    monkeypatch.setattr(KAN, "fit", fit)
    return seen


@pytest.mark.parametrize("slug", sorted(CLAIMS))
def test_every_training_a_claim_runs_gets_the_run_device(
    slug: str, spies: list[Seen], tmp_path: Path
):
    device = RunDevice("cpu")
    plans = plan_run([slug], scale="tiny", claim_ids=CLAIMS[slug])
    results, errors, interrupted = run_plans(
        plans, scale="tiny", seed=0, device=device, out=tmp_path, progress=False
    )
    assert not errors and not interrupted, errors
    assert [r.claim_id for r in results] == list(CLAIMS[slug])
    assert all(r.device == "cpu" for r in results)

    kinds = {s.what for s in spies}
    assert kinds >= EXPECTED[slug], f"{slug}: expected trainings {EXPECTED[slug]}, saw {kinds}"
    wrong = [s for s in spies if not isinstance(s.device, RunDevice)]
    assert not wrong, (
        f"{slug}: trainings not handed ctx.device (pass it through, as device=ctx.device): "
        + "; ".join(sorted({f"{s.what} from {s.where}: device={s.device!r}" for s in wrong}))
    )
    off = [s for s in spies if s.params_on is not None and s.params_on != torch.device(device)]
    assert not off, f"{slug}: models trained off {device}: {off}"


# the public functions of these papers that train something: each takes the device
TRAINERS = (
    "kan.KAN.fit",
    "kan.toy.fit_lbfgs",
    "kan.experiments.train_kan_staircase",
    "kan.experiments.kan_vs_mlp",
    "kan.experiments.grid_extension",
    "kan.experiments.prune_snap_once",
    "kan.experiments.continual",
    "pit.runs.fit",
    "titok.train_tokenizer",
    "titok.train_generator",
    "titok.experiments.fit_tokenizer",
    "titok.experiments.fit_generator",
    "titok.experiments.fit_judge",
    "titok.experiments.build_tokenizers",
    "titok.experiments.build_generators",
    "transnar.training.pretrain_nar",
    "transnar.training.fit_text_model",
)


@pytest.mark.parametrize("path", TRAINERS)
def test_public_trainers_take_the_device(path: str):
    module, _, name = path.rpartition(".")
    try:
        obj = importlib.import_module(f"paperlab.papers.{module}")
    except ModuleNotFoundError:  # a class: paperlab.papers.kan.KAN
        module, _, cls = module.rpartition(".")
        obj = getattr(importlib.import_module(f"paperlab.papers.{module}"), cls)
    parameter = inspect.signature(getattr(obj, name)).parameters.get("device")
    assert parameter is not None, f"{path} takes no device"
    assert parameter.default in ("cpu", None), f"{path}: device defaults to {parameter.default!r}"
