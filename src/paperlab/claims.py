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
import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Verdict = Literal["holds", "fails", "inconclusive", "skipped"]
VERDICTS: tuple[str, ...] = ("holds", "fails", "inconclusive", "skipped")
SCALES: tuple[str, ...] = ("tiny", "default", "full")


class UserError(Exception):
    """A mistake in what the user asked for. The CLI prints it as one line and exits 2."""


class SkipClaim(Exception):
    """Raised by a claim's run when an external resource is missing (``skipped (needs X)``)."""


# ---------------------------------------------------------------------------------------------
# Criteria: readable text + the function that judges, built from small combinators.


@dataclass(frozen=True)
class Criterion:
    """A rule from measured figures to a verdict. ``text`` is what the report shows."""

    text: str
    judge_fn: Callable[[Mapping[str, float]], tuple[Verdict, str]]

    def judge(self, measured: Mapping[str, float]) -> tuple[Verdict, str]:
        try:
            return self.judge_fn(measured)
        except KeyError as e:  # a criterion naming a figure the run did not measure
            return "inconclusive", f"figure {e} was not measured"


def _cmp(key: str, op: str, value: float, margin: float | None) -> Criterion:
    """``key op value``; if ``margin`` is given, results within it of the threshold are
    ``inconclusive`` (too close to call); beyond it on the wrong side they ``fail``."""

    def judge(m: Mapping[str, float]) -> tuple[Verdict, str]:
        x = float(m[key])
        if math.isnan(x):
            return "inconclusive", f"{key} is NaN"
        ok = x >= value if op == ">=" else x <= value
        if ok:
            return "holds", f"{key}={x:.4g} {op} {value:g}"
        if margin is not None and abs(x - value) <= margin:
            return "inconclusive", f"{key}={x:.4g} misses {op} {value:g} by less than {margin:g}"
        return "fails", f"{key}={x:.4g} not {op} {value:g}"

    band = f" (within {margin:g}: inconclusive)" if margin is not None else ""
    return Criterion(f"{key} {op} {value:g}{band}", judge)


def at_least(key: str, value: float, *, margin: float | None = None) -> Criterion:
    return _cmp(key, ">=", value, margin)


def at_most(key: str, value: float, *, margin: float | None = None) -> Criterion:
    return _cmp(key, "<=", value, margin)


def all_of(*criteria: Criterion) -> Criterion:
    """Holds if every part holds; fails if any part fails; otherwise inconclusive."""

    def judge(m: Mapping[str, float]) -> tuple[Verdict, str]:
        results = [c.judge(m) for c in criteria]
        reasons = "; ".join(r for _, r in results)
        verdicts = {v for v, _ in results}
        if "fails" in verdicts:
            return "fails", reasons
        if verdicts == {"holds"}:
            return "holds", reasons
        return "inconclusive", reasons

    return Criterion(" and ".join(c.text for c in criteria), judge)


def custom(text: str, judge_fn: Callable[[Mapping[str, float]], tuple[Verdict, str]]) -> Criterion:
    return Criterion(text, judge_fn)


# ---------------------------------------------------------------------------------------------
# Claims and papers


_SHARED: dict[tuple, Any] = {}  # RunContext.shared


@dataclass
class RunContext:
    """Everything a claim's experiment gets: the config for this scale (after ``--set``
    overrides), the seed, the torch device, and a folder for its plots."""

    config: Any
    scale: str
    seed: int
    device: str
    out_dir: Path
    progress: bool = True
    llm_config: str | None = None  # `reproduce --config FILE`: run on these real models
    artifacts: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    def shared(self, name: str, build: Callable[[], Any]) -> Any:
        """``build()``, run once per (name, config, seed, device, LLM config) and shared by the
        claims of one ``reproduce`` run: e.g. the models a paper's claims all query."""
        key = (name, repr(self.config), self.seed, self.device, self.llm_config)
        if key not in _SHARED:
            _SHARED[key] = build()
        return _SHARED[key]

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


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
