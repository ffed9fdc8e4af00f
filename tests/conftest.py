"""Shared fixtures: a fake paper registered in the catalog, for testing the harness itself, and a
private temp folder for tests that check nothing is left behind.

The suite never writes the user's disk cache (``~/.cache/paperlab``): it is off unless a test
passes its own folder."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from paperlab import catalog
from paperlab.catalog import PaperInfo
from paperlab.claims import Claim, PaperClaims, RunContext, SkipClaim, at_least
from paperlab.core.artifacts import ENV as CACHE_ENV

os.environ[CACHE_ENV] = "off"


@pytest.fixture
def private_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temp folder of this test alone (for it and its child processes), so "nothing left
    behind" is checked without seeing what tests in other workers create meanwhile."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setenv("TMPDIR", str(root))
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@dataclass
class FakeConfig:
    n: int = 100
    threshold: float = 0.4
    crash: bool = False
    interrupt: bool = False
    label: str = "x"


def _measure(ctx: RunContext) -> dict[str, float]:
    cfg = ctx.config
    x = torch.rand(cfg.n).mean().item()  # seeded by the runner
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, x])
    fig.savefig(ctx.plot_path("line.png"))
    plt.close(fig)
    return {"mean": x, "n": cfg.n}


def _maybe_fail(ctx: RunContext) -> dict[str, float]:
    if ctx.config.crash:
        raise RuntimeError("boom")
    if ctx.config.interrupt:
        raise KeyboardInterrupt
    return {"ok": 1.0}


def _skip(ctx: RunContext) -> dict[str, float]:
    raise SkipClaim("needs llm-endpoint (none configured)")


FAKE = PaperClaims(
    config=FakeConfig,
    presets={"tiny": {"n": 50}, "default": {"n": 500}, "full": {"n": 5000}},
    claims=[
        Claim(
            "mean",
            "the mean of U(0,1) is above a threshold",
            "0.5",
            at_least("mean", 0.4),
            _measure,
            ours="{mean:.3f}",
        ),
        Claim("second", "second claim", "1", at_least("ok", 1.0), _maybe_fail),
        Claim(
            "skip", "needs an endpoint", "-", at_least("ok", 1.0), _skip, needs=("llm-endpoint",)
        ),
    ],
)


@pytest.fixture
def fake_paper(monkeypatch: pytest.MonkeyPatch) -> PaperClaims:
    papers = dict(catalog.PAPERS)
    papers["fake"] = PaperInfo("fake", "A Fake Paper for Testing", "0000.00000", catalog.MODELS)
    monkeypatch.setattr(catalog, "PAPERS", papers)
    real_load, real_impl = catalog.load_paper, catalog.is_implemented
    monkeypatch.setattr(catalog, "load_paper", lambda s: FAKE if s == "fake" else real_load(s))
    monkeypatch.setattr(catalog, "is_implemented", lambda s: s == "fake" or real_impl(s))
    return FAKE
