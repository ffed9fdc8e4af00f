"""The claim contract: what "the paper's claim holds here" means, in code.

A paper declares its claims in ``papers/<slug>/claims.py`` as one :class:`PaperClaims`:
a config dataclass with presets per scale (``tiny``, ``default``, ``full``) and a list of
:class:`Claim`. A claim's ``run`` gets a :class:`RunContext` and returns the measured figures
(a flat dict of numbers); its :class:`Criterion`, fixed in code before the run, turns them
into a verdict. Nothing is hard-coded: the verdict is computed from this run's measurements.

    criterion = all_of(at_most("rmse_ratio", 1.0), at_least("wins", 3))
    verdict, why = criterion.judge({"rmse_ratio": 0.4, "wins": 4})   # ("holds", "...")
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paperlab.core.artifacts import ArtifactCache
from paperlab.core.criteria import (  # noqa: F401  (re-exported: the claim contract's API)
    VERDICTS,
    Criterion,
    Verdict,
    all_of,
    at_least,
    at_most,
    custom,
    timing_guard,
)
from paperlab.core.errors import SkipClaim, UserError  # noqa: F401  (re-exported)
from paperlab.core.files import write_text_atomic  # noqa: F401 - re-exported

SCALES: tuple[str, ...] = ("tiny", "default", "full")
# scales that test the plumbing (seconds, untrained models), not the paper: their verdicts are
# marked "smoke" in result.json, the printed table and the report
SMOKE_SCALES: tuple[str, ...] = ("tiny",)


# ---------------------------------------------------------------------------------------------
# Claims and papers


@dataclass
class RunContext:
    """Everything a claim's experiment gets: the config for this scale (after ``--set``
    overrides), the seed, the torch device, a folder for its plots, and the artifact cache
    its paper's claims share (released when the paper's run ends)."""

    config: Any
    scale: str
    seed: int
    device: str
    out_dir: Path
    progress: bool = True
    llm_config: str | None = None  # `reproduce --config FILE`: run on these real models
    artifacts: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)
    cache: ArtifactCache = field(default_factory=ArtifactCache)

    def shared(
        self, name: str, build: Callable[[], Any], *, spec: Any = None, codec: Any = None
    ) -> Any:
        """``build()`` once per (name, spec, seed, device, LLM config) in this paper's run,
        through :attr:`cache`. ``spec`` defaults to the whole config; pass the fields the
        artifact depends on (and a ``codec``) to share it across configs and keep it on disk."""
        spec = self.config if spec is None else spec
        return self.cache.get(
            name, (spec, self.seed, self.device, self.llm_config), build, codec=codec
        )

    def plot_path(self, name: str) -> Path:
        """Path for a plot; recorded as an artifact of this result."""
        self.artifacts.append(name)
        return self.out_dir / name

    @staticmethod
    def figure(nrows: int = 1, ncols: int = 1, **subplots_kw: Any) -> tuple[Any, Any]:
        """``(fig, axes)`` on matplotlib's Agg canvas: no window, no pyplot global state.
        ``figsize`` and the rest go to ``Figure.subplots``; save with :meth:`save_figure`."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=subplots_kw.pop("figsize", None))
        return fig, fig.subplots(nrows, ncols, **subplots_kw)

    def save_figure(self, fig: Any, name: str, *, dpi: int = 110) -> Path:
        """Lay out and save a figure as an artifact of this result."""
        fig.tight_layout()
        path = self.plot_path(name)
        fig.savefig(path, dpi=dpi)
        return path


@dataclass(frozen=True)
class Claim:
    """One headline claim of a paper and its miniature re-run.

    ``ours`` formats the measured dict for the one-line summary, e.g.
    ``"{kan_rmse:.1e} vs MLP {mlp_rmse:.1e}"`` (``str.format`` over ``measured``).
    ``timed`` marks a speed claim (see ``core.criteria.timing_guard``).
    ``needs`` names external resources (``"llm-endpoint"``, ``"cuda"``); when one is missing
    the run raises :class:`SkipClaim` and the claim is reported ``skipped``.
    """

    id: str
    statement: str
    paper_figure: str
    criterion: Criterion
    run: Callable[[RunContext], Mapping[str, float]]
    ours: str = ""
    needs: tuple[str, ...] = ()
    # a speed claim: the runner records the load other programs put on the machine while it
    # timed (``other_load_per_core``) and withholds the verdict when it was too busy to call
    timed: bool = False

    @property
    def judged_by(self) -> Criterion:
        """The criterion the runner applies: ``criterion``, behind ``timing_guard`` if timed."""
        return timing_guard(self.criterion) if self.timed else self.criterion


@dataclass(frozen=True)
class PaperClaims:
    """What ``papers/<slug>/claims.py`` exports as ``PAPER``."""

    config: type
    presets: Mapping[str, Mapping[str, Any]]
    claims: Sequence[Claim]

    def make_config(self, scale: str, overrides: Mapping[str, str] | None = None) -> Any:
        if scale not in self.presets:
            raise UserError(f"unknown scale {scale!r}; choose one of {', '.join(self.presets)}")
        cfg = self.config(**self.presets[scale])
        return apply_overrides(cfg, overrides or {})

    def claim(self, claim_id: str) -> Claim:
        for c in self.claims:
            if c.id == claim_id:
                return c
        raise UserError(
            f"unknown claim {claim_id!r}; claims: {', '.join(c.id for c in self.claims)}"
        )


def parse_value(raw: str, typ: Any, key: str) -> Any:
    """Convert a ``--set`` string to a config field's type, or raise a clear UserError."""
    typ_name = typ if isinstance(typ, str) else getattr(typ, "__name__", str(typ))
    typ_name = typ_name.replace(" ", "")
    try:
        if typ_name in ("bool",):
            low = raw.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if typ_name == "int":
            return int(raw)
        if typ_name == "float":
            return float(raw)
        if typ_name == "str":
            return raw
        if typ_name.startswith("tuple[int") or typ_name.startswith("list[int"):
            return tuple(int(v) for v in raw.split(",") if v)
        if typ_name.startswith("tuple[float") or typ_name.startswith("list[float"):
            return tuple(float(v) for v in raw.split(",") if v)
        if typ_name.startswith("tuple[str") or typ_name.startswith("list[str"):
            return tuple(v for v in raw.split(",") if v)
    except ValueError:
        raise UserError(f"--set {key}={raw}: expected a value of type {typ_name}") from None
    raise UserError(f"--set {key}: fields of type {typ_name} cannot be set from the command line")


def apply_overrides(cfg: Any, overrides: Mapping[str, str]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    changes = {}
    for key, raw in overrides.items():
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise UserError(f"unknown --set key {key!r}; known keys: {known}")
        changes[key] = parse_value(raw, fields[key].type, key)
    try:  # a config's __post_init__ may reject well-typed but invalid values
        return dataclasses.replace(cfg, **changes)
    except ValueError as e:
        raise UserError(f"--set: {e}") from None


# ---------------------------------------------------------------------------------------------
# Results


@dataclass
class Result:
    slug: str
    claim_id: str
    statement: str
    paper_figure: str
    criterion: str
    measured: dict[str, float]
    verdict: Verdict
    reason: str
    ours: str
    scale: str
    seed: int
    device: str
    seconds: float
    paperlab_version: str
    config: dict[str, Any]
    timestamp: str
    artifacts: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)
    smoke: bool = False  # a smoke scale's result (SMOKE_SCALES): not a verdict on the paper

    def __post_init__(self) -> None:
        self.smoke = bool(self.smoke) or self.scale in SMOKE_SCALES

    @property
    def shown_verdict(self) -> str:
        """The verdict as printed: "holds (smoke)" for a smoke scale's result."""
        return f"{self.verdict} (smoke)" if self.smoke else self.verdict

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=False, default=str)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Result:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def format_ours(template: str, measured: Mapping[str, Any]) -> str:
    """The one-line figure: ``template.format(**measured)`` (claims' notes included)."""
    nums = {k: v for k, v in measured.items() if isinstance(v, int | float)}
    if not template:
        return ", ".join(f"{k}={v:.4g}" for k, v in list(nums.items())[:3])
    try:
        return template.format(**measured)
    except (KeyError, ValueError, IndexError):
        return ", ".join(f"{k}={v:.4g}" for k, v in list(nums.items())[:3])


def clean_measured(measured: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in measured.items():
        if hasattr(v, "item"):
            v = v.item()
        if isinstance(v, bool):
            v = float(v)
        if not isinstance(v, int | float):
            raise TypeError(f"measured[{k!r}] must be a number, got {type(v).__name__}")
        out[str(k)] = float(v)
    return out
