"""Run claims: validate everything first, then run each claim into a hidden temp folder and
rename it into place when its result is complete, so an interrupted or crashed run never
leaves a half-written result behind and every finished claim is kept.

Layout: ``OUT/<slug>/<claim_id>/<timestamp>/result.json`` (+ the claim's plots).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import time
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from paperlab import __version__, catalog
from paperlab.claims import (
    SCALES,
    Claim,
    PaperClaims,
    Result,
    SkipClaim,
    UserError,
    clean_measured,
    format_ours,
    write_text_atomic,
)
from paperlab.core.artifacts import ArtifactCache


@dataclass
class Plan:
    """A validated run: which claims of which papers, with which config."""

    slug: str
    paper: PaperClaims
    claims: list[Claim]
    config: Any


def split_overrides(pairs: Sequence[str]) -> list[tuple[str | None, str, str]]:
    """``["kan.steps=5", "seed_points=10"]`` -> ``[("kan", "steps", "5"), (None, ...)]``."""
    out = []
    for pair in pairs:
        if "=" not in pair:
            raise UserError(f"--set {pair!r}: expected key=value (e.g. --set steps=100)")
        key, value = pair.split("=", 1)
        key = key.strip()
        prefix, _, name = key.rpartition(".")
        if not name:
            raise UserError(f"--set {pair!r}: empty key")
        out.append((prefix or None, name, value.strip()))
    return out


def plan_run(
    slugs: Sequence[str],
    *,
    scale: str,
    overrides: Sequence[str] = (),
    claim_ids: Sequence[str] = (),
) -> list[Plan]:
    """Resolve slugs, configs and overrides; raise UserError before anything is written."""
    if scale not in SCALES:
        raise UserError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    for slug in slugs:
        if slug not in catalog.PAPERS:
            catalog.load_paper(slug)  # raises the "unknown paper" error with a hint
    parsed = split_overrides(overrides)
    for prefix, name, _ in parsed:
        if prefix is not None and prefix not in slugs:
            raise UserError(f"--set {prefix}.{name}: {prefix!r} is not among the papers being run")
    plans = []
    used: set[tuple[str | None, str]] = set()
    for slug in slugs:
        paper = catalog.load_paper(slug)
        fields = {f.name for f in dataclasses.fields(paper.config)}
        mine = {}
        for prefix, name, value in parsed:
            if prefix == slug or (prefix is None and name in fields):
                mine[name] = value
                used.add((prefix, name))
        config = paper.make_config(scale, mine)
        claims = list(paper.claims)
        if claim_ids:
            claims = [paper.claim(cid) for cid in claim_ids] if len(slugs) == 1 else claims
        plans.append(Plan(slug, paper, claims, config))
    for prefix, name, _ in parsed:
        if prefix is None and (None, name) not in used:
            raise UserError(
                f"unknown --set key {name!r}: no selected paper has it "
                f"(`paperlab reproduce SLUG --show-config` lists a paper's keys)"
            )
    return plans


def check_writable(out: Path) -> None:
    """Fail early, writing nothing, if ``out`` cannot be created or written."""
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UserError(f"--out {out}: {probe} is a file, not a folder; choose another --out")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"--out {out}: {probe} is not writable; choose another --out")


def timestamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")[:-3]


def run_claim(
    slug: str,
    claim: Claim,
    config: Any,
    *,
    scale: str,
    seed: int,
    device: str,
    out: Path,
    progress: bool = True,
    llm_config: str | None = None,
    cache: ArtifactCache | None = None,
) -> Result:
    """Run one claim and write its result folder atomically; return the result. ``cache`` is
    the paper's artifact cache (a fresh in-memory one, released at the end, if None)."""
    from paperlab.claims import RunContext  # local: keep the import graph obvious
    from paperlab.core.device import seed_everything  # torch: only when claims run

    claim_dir = out / slug / claim.id
    stamp = timestamp()
    tmp = claim_dir / f".tmp-{stamp}-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=False)
    try:
        ctx = RunContext(
            config=config,
            scale=scale,
            seed=seed,
            device=device,
            out_dir=tmp,
            progress=progress,
            llm_config=llm_config,
            cache=cache if cache is not None else ArtifactCache(),
        )
        seed_everything(seed)
        start = time.perf_counter()
        reason = ""
        try:
            if "cuda" in claim.needs and not device.startswith("cuda"):
                raise SkipClaim("needs cuda")
            if "llm-endpoint" in claim.needs and llm_config is None:
                raise SkipClaim("needs llm-endpoint: pass --config FILE naming real models")
            if claim.timed:
                measured = _run_timed(claim, ctx)
                verdict, reason = claim.judged_by.judge(measured)
            else:
                measured = clean_measured(claim.run(ctx))
                verdict, reason = claim.criterion.judge(measured)
        except SkipClaim as e:
            measured, verdict, reason = {}, "skipped", str(e) or f"needs {', '.join(claim.needs)}"
        seconds = time.perf_counter() - start
        result = Result(
            slug=slug,
            claim_id=claim.id,
            statement=claim.statement,
            paper_figure=claim.paper_figure,
            criterion=claim.judged_by.text,
            measured=measured,
            verdict=verdict,
            reason=reason,
            ours=format_ours(claim.ours, {**ctx.notes, **measured}) if measured else "",
            scale=scale,
            seed=seed,
            device=device,
            seconds=round(seconds, 3),
            paperlab_version=__version__,
            config=dataclasses.asdict(config),
            timestamp=stamp,
            artifacts=[a for a in ctx.artifacts if (tmp / a).exists()],
            notes=ctx.notes,
        )
        write_text_atomic(tmp / "result.json", result.to_json())
        final = claim_dir / stamp
        os.replace(tmp, final)
        return result
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty_dirs(claim_dir, stop=out)
        raise
    finally:
        if cache is None and "ctx" in locals():
            ctx.cache.release()


def _run_timed(claim: Claim, ctx: Any) -> dict[str, float]:
    """Run a timed claim; add ``other_load_per_core``: the highest load other programs put on
    the machine during its ``time_interleaved`` calls (or over the whole run if it made none)."""
    from paperlab.core.timing import LoadMonitor, collect_timing_loads

    with collect_timing_loads() as loads, LoadMonitor() as whole:
        measured = clean_measured(claim.run(ctx))
    load = max(loads) if loads else whole.load_per_core
    return {**measured, "other_load_per_core": round(load, 3)}


def _remove_empty_dirs(path: Path, *, stop: Path) -> None:
    """Remove `path` and its parents up to (not including) `stop` while they are empty, so a
    crashed claim leaves no empty folders behind."""
    while path != stop and stop in path.parents:
        try:
            path.rmdir()
        except OSError:  # not empty (earlier results) or already gone
            return
        path = path.parent


def run_plans(
    plans: Iterable[Plan],
    *,
    scale: str,
    seed: int,
    device: str,
    out: Path,
    progress: bool = True,
    llm_config: str | None = None,
    cache_dir: Path | None = None,
) -> tuple[list[Result], list[str], bool]:
    """Run every planned claim. Returns (results, errors, interrupted). A claim that raises
    is reported as an error (the others still run); Ctrl-C stops and keeps what finished.

    Each paper's claims share one :class:`ArtifactCache` (on disk under ``cache_dir`` if
    given), released when the paper is done: its models freed, servers stopped, temp folders
    removed."""
    from tqdm.auto import tqdm

    from paperlab.core.device import resolve_device

    plans = list(plans)
    device = resolve_device(device)
    results: list[Result] = []
    errors: list[str] = []
    total = sum(len(p.claims) for p in plans)
    bar = tqdm(total=total, desc="claims", unit="claim", disable=not progress, file=sys.stderr)
    try:
        for plan in plans:
            with ArtifactCache(cache_dir) as cache:
                for claim in plan.claims:
                    bar.set_description(f"{plan.slug}/{claim.id}")
                    try:
                        results.append(
                            run_claim(
                                plan.slug,
                                claim,
                                plan.config,
                                scale=scale,
                                seed=seed,
                                device=device,
                                out=out,
                                progress=progress,
                                llm_config=llm_config,
                                cache=cache,
                            )
                        )
                    except KeyboardInterrupt:
                        raise
                    except Exception as e:  # a bug in a claim: report it, run the others
                        errors.append(f"{plan.slug}/{claim.id}: {type(e).__name__}: {e}")
                        traceback.print_exc(file=sys.stderr)
                    bar.update(1)
    except KeyboardInterrupt:
        bar.close()
        return results, errors, True
    bar.close()
    return results, errors, False


def summary_table(results: Sequence[Result], width: int = 110) -> str:
    """One screen: claim | paper figure | ours | verdict."""
    rows = [("claim", "paper", "ours", "verdict")]
    for r in results:
        rows.append((f"{r.slug}/{r.claim_id}", r.paper_figure, r.ours, r.shown_verdict))
    table = format_table(rows, width=width)
    if any(r.smoke for r in results):
        table += (
            "\n(smoke) a smoke scale's run: it tests that the pipeline runs, its models are barely "
            "trained, and its verdicts say nothing about the paper; use --scale default"
        )
    return table


def format_table(rows: Sequence[Sequence[str]], *, width: int = 110) -> str:
    ncol = len(rows[0])
    widths = [max(len(str(r[i])) for r in rows) for i in range(ncol)]
    # shrink the widest middle columns until the table fits
    while sum(widths) + 3 * (ncol - 1) > width and max(widths[1:-1]) > 12:
        i = max(range(1, ncol - 1), key=lambda k: widths[k])
        widths[i] -= 1

    def cell(s: str, w: int) -> str:
        s = str(s)
        return (s if len(s) <= w else s[: w - 1] + "…").ljust(w)

    lines = [" | ".join(cell(r[i], widths[i]) for i in range(ncol)).rstrip() for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def latest_results(out: Path) -> dict[str, dict[str, Result]]:
    """``{slug: {claim_id: newest Result}}`` from ``OUT/<slug>/<claim>/<stamp>/result.json``.
    Unreadable result files are skipped with a warning on stderr."""
    import json

    found: dict[str, dict[str, Result]] = {}
    if not out.is_dir():
        return found
    for path in sorted(out.glob("*/*/*/result.json")):
        stamp_dir = path.parent
        if stamp_dir.name.startswith("."):
            continue
        try:
            result = Result.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as e:
            print(f"paperlab: warning: skipping unreadable {path}: {e}", file=sys.stderr)
            continue
        slot = found.setdefault(result.slug, {})
        prev = slot.get(result.claim_id)
        if prev is None or result.timestamp >= prev.timestamp:
            slot[result.claim_id] = result
    return found


def result_dir(out: Path, result: Result) -> Path:
    return out / result.slug / result.claim_id / result.timestamp


def measured_str(measured: Mapping[str, float], limit: int = 6) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in list(measured.items())[:limit])
