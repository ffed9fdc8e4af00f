"""Timed claims: the runner records the load other programs put on the machine while a claim
timed, and withholds a speed verdict measured on a busy machine (issue: timing claims flipped
under load)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from paperlab import catalog
from paperlab.catalog import PaperInfo
from paperlab.claims import Claim, PaperClaims, RunContext, at_least
from paperlab.core import timing
from paperlab.core.criteria import MAX_OTHER_LOAD_PER_CORE, timing_guard
from paperlab.core.timing import LoadMonitor, time_interleaved
from paperlab.runner import plan_run, run_plans


@dataclass
class Cfg:
    reps: int = 3


def _speed(ctx: RunContext) -> dict[str, float]:
    t = time_interleaved(
        {"slow": lambda x: sum(range(20_000)), "fast": lambda x: sum(range(2_000))},
        [0],
        reps=ctx.config.reps,
    )
    return {"speedup": t.ratio("slow", "fast")}


PAPER = PaperClaims(
    config=Cfg,
    presets={"tiny": {}, "default": {}, "full": {}},
    claims=[Claim("speed", "fast is faster", "10x", at_least("speedup", 1.0), _speed, timed=True)],
)


@pytest.fixture
def timed_paper(monkeypatch: pytest.MonkeyPatch) -> None:
    papers = dict(catalog.PAPERS)
    papers["timedfake"] = PaperInfo("timedfake", "Timed", "0000.00001", catalog.MODELS)
    monkeypatch.setattr(catalog, "PAPERS", papers)
    real_load, real_impl = catalog.load_paper, catalog.is_implemented
    monkeypatch.setattr(
        catalog, "load_paper", lambda s: PAPER if s == "timedfake" else real_load(s)
    )
    monkeypatch.setattr(catalog, "is_implemented", lambda s: s == "timedfake" or real_impl(s))


def run(tmp_path: Path):
    plans = plan_run(["timedfake"], scale="tiny")
    return run_plans(plans, scale="tiny", seed=0, device="cpu", out=tmp_path, progress=False)[0][0]


@pytest.mark.parametrize(("others", "verdict"), [(0, "holds"), (64, "inconclusive")])
def test_a_busy_machine_withholds_the_speed_verdict(
    timed_paper, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, others: int, verdict: str
) -> None:
    monkeypatch.setattr(timing, "other_running_threads", lambda ours=None: others)
    result = run(tmp_path)
    assert result.verdict == verdict, result.reason
    assert result.measured["other_load_per_core"] == round(others / (os.cpu_count() or 1), 3)
    assert "withheld if other load" in result.criterion
    if others:
        assert "machine busy" in result.reason and "would be holds" in result.reason


def test_guard_passes_inconclusive_through_and_ignores_a_nan_load() -> None:
    guard = timing_guard(at_least("x", 1.0, margin=0.5))
    assert guard.judge({"x": 0.8, "other_load_per_core": 9.0})[0] == "inconclusive"
    assert guard.judge({"x": 2.0, "other_load_per_core": float("nan")})[0] == "holds"
    busy = MAX_OTHER_LOAD_PER_CORE
    assert guard.judge({"x": 0.1, "other_load_per_core": busy})[0] == "inconclusive"
    assert guard.judge({"x": 0.1, "other_load_per_core": busy / 2})[0] == "fails"


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_monitor_counts_another_program_but_not_our_children() -> None:
    spin = [sys.executable, "-c", "import time\nt = time.time() + 20\nwhile time.time() < t: pass"]
    child = subprocess.Popen(spin)  # ours: not counted
    # a program that is not ours: started by a shell that exits at once (re-parented)
    out = subprocess.run(
        ["sh", "-c", '"$@" >/dev/null 2>&1 & echo $!', "sh", *spin],
        capture_output=True,
        text=True,
        check=True,
    )
    other = int(out.stdout.strip())
    try:
        time.sleep(0.3)
        ours = timing._descendants(os.getpid())
        assert child.pid in ours and other not in ours
        with LoadMonitor(interval=0.05) as monitor:
            time.sleep(0.5)
        assert min(monitor.samples) >= 1  # the spinning program is runnable all along
    finally:
        child.kill()
        os.kill(other, 9)
        child.wait()
