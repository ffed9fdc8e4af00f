"""`paperlab mceval doctor | install-toolchains | tasks | generate | run`.

paperlab mceval doctor                                  # toolchains and sandbox isolation
paperlab mceval install-toolchains lua ruby php         # Debian/npm packages (root)
paperlab mceval tasks --languages python,c --kinds generation,completion_span --out t.jsonl
paperlab mceval generate t.jsonl --model qwen --config paperlab.toml --out g.jsonl
paperlab mceval run g.jsonl --out results.jsonl --workers 2 [--resume]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from paperlab.claims import UserError

EPILOG = """examples:
  paperlab mceval doctor
  paperlab mceval install-toolchains lua ruby php
  paperlab mceval tasks --languages python,rust --kinds generation --out tasks.jsonl
  paperlab mceval generate tasks.jsonl --model qwen --config paperlab.toml --out gen.jsonl
  paperlab mceval run gen.jsonl --out results.jsonl --workers 2
  paperlab mceval run CPP.jsonl --out cpp-results.jsonl --resume   # McEval's official format
"""


def add_parser(sub: Any) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser(
        "mceval",
        help="McEval: sandboxed, execution-based code evaluation in many languages",
        description="McEval (arXiv 2406.07436): build tasks, query a model, and execute its "
        "answers with their tests in a sandbox (no network, limits, scrubbed environment).",
        epilog=EPILOG,
        formatter_class=fmt,
    )
    msub = p.add_subparsers(dest="mceval_command", metavar="COMMAND", required=True)
    msub.add_parser(
        "doctor",
        help="list every language: toolchain found/missing, version; "
        "and what the sandbox can isolate",
    )
    inst = msub.add_parser(
        "install-toolchains", help="install languages' toolchains (apt-get / npm; needs root)"
    )
    inst.add_argument(
        "languages",
        nargs="*",
        metavar="LANG",
        help="languages (default: all that have packages and are missing)",
    )
    inst.add_argument("--dry-run", action="store_true", help="print the commands only")

    tasks = msub.add_parser(
        "tasks",
        help="write task records for our problems (official McEval format)",
        formatter_class=fmt,
    )
    tasks.add_argument("--languages", default="python", help="comma-separated (python)")
    tasks.add_argument(
        "--kinds",
        default="generation",
        help="comma-separated: generation, "
        "completion_single_line, completion_multi_line, completion_span, "
        "explanation (generation)",
    )
    tasks.add_argument("--seed", type=int, default=0)
    tasks.add_argument("--out", type=Path, required=True)

    gen = msub.add_parser("generate", help="ask a model for every task (through the LLM layer)")
    gen.add_argument("file", type=Path, help="task records (JSONL)")
    gen.add_argument("--model", required=True, help="a model name of the LLM config")
    gen.add_argument("--config", type=Path, help="LLM config TOML (default ./paperlab.toml)")
    gen.add_argument("--samples", type=int, default=1, help="answers per task (1)")
    gen.add_argument("--temperature", type=float, default=0.2)
    gen.add_argument("--max-tokens", type=int, default=1024)
    gen.add_argument("--out", type=Path, required=True)
    gen.add_argument("--resume", action="store_true", help="continue an interrupted --out")
    gen.add_argument("--no-cache", action="store_true", help="bypass the request cache")

    run = msub.add_parser(
        "run",
        help="execute answers with their tests and report pass@k",
        epilog=EPILOG,
        formatter_class=fmt,
    )
    run.add_argument(
        "file", type=Path, help="records with raw_generation (official McEval format or ours)"
    )
    run.add_argument("--out", type=Path, required=True, help="per-sample results (JSONL)")
    run.add_argument("--workers", type=int, default=2, help="parallel sandboxes (2)")
    run.add_argument("--resume", action="store_true", help="skip samples already in --out")
    run.add_argument(
        "--canonical",
        action="store_true",
        help="execute the records' canonical solutions instead of raw_generation",
    )
    run.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    return {
        "doctor": _doctor,
        "install-toolchains": _install,
        "tasks": _tasks,
        "generate": _generate,
        "run": _run,
    }[args.mceval_command](args)


def toolchain_rows() -> list[dict[str, str]]:
    """One row per language: key, name, status (found/missing/not executed), version or what
    is missing."""
    from paperlab.papers.mceval.languages import LANGUAGES

    rows = []
    for spec in LANGUAGES.values():
        if not spec.executable:
            rows.append(
                dict(
                    key=spec.key,
                    name=spec.name,
                    status="compared",
                    detail="scored by comparison with the reference",
                )
            )
            continue
        if why := spec.why_missing():
            rows.append(dict(key=spec.key, name=spec.name, status="missing", detail=why))
            continue
        rows.append(dict(key=spec.key, name=spec.name, status="found", detail=_version(spec)))
    return rows


def _version(spec) -> str:
    try:
        p = subprocess.run(
            spec.version, capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"(version unknown: {e})"
    lines = [ln.strip() for ln in (p.stdout + "\n" + p.stderr).splitlines() if ln.strip()]
    return lines[0][:70] if lines else "(no version printed)"


def _doctor(args: argparse.Namespace) -> int:
    from paperlab.core.sandbox import isolation_report

    rows = toolchain_rows()
    found = sum(r["status"] == "found" for r in rows)
    print(f"{'language':14} {'status':9} version / detail")
    for r in rows:
        print(f"{r['name']:14} {r['status']:9} {r['detail']}")
    print(
        f"\n{found} of {sum(r['status'] != 'compared' for r in rows)} executable languages "
        "have their toolchain here; `paperlab mceval install-toolchains LANG` adds more."
    )
    print("\nsandbox isolation:")
    weak = []
    for feature, ok, detail in isolation_report():
        print(f"  {feature:22} {'yes' if ok else 'NO':4} {detail}")
        if not ok:
            weak.append(feature)
    if weak:
        print(
            f"\nWARNING: the sandbox cannot provide: {', '.join(weak)}. Untrusted code runs "
            "with weaker isolation; results record what was in force.",
            file=sys.stderr,
        )
    return 0


def _install(args: argparse.Namespace) -> int:
    from paperlab.papers.mceval.languages import LANGUAGES, get_language

    specs = (
        [get_language(x) for x in args.languages]
        if args.languages
        else [s for s in LANGUAGES.values() if s.missing_tools()]
    )
    debian = sorted({p for s in specs for p in s.debian if s.missing_tools()})
    npm = sorted({p for s in specs for p in s.npm if s.missing_tools()})
    none = [s.key for s in specs if s.missing_tools() and not (s.debian or s.npm)]
    cmds = []
    if debian:
        cmds.append(["apt-get", "install", "-y", "--no-install-recommends", *debian])
    if npm:
        cmds.append(["npm", "install", "-g", *npm])
    if none:
        print(f"no package known for: {', '.join(none)} (install them by hand)", file=sys.stderr)
    if not cmds:
        print("nothing to install: the toolchains asked for are present")
        return 0
    for cmd in cmds:
        print("$ " + " ".join(cmd), flush=True)
        if args.dry_run:
            continue
        if shutil.which(cmd[0]) is None:
            raise UserError(f"{cmd[0]} not found: install {' '.join(cmd[3:])} by hand")
        if cmd[0] == "apt-get" and subprocess.run(["apt-get", "update", "-q"]).returncode:
            raise UserError("apt-get update failed (are you root? is the network up?)")
        if subprocess.run(cmd).returncode:
            raise UserError(f"{' '.join(cmd[:2])} failed (see its output above)")
    return 0


def _tasks(args: argparse.Namespace) -> int:
    from paperlab.papers.mceval.tasks import build_tasks

    records = build_tasks(_csv(args.languages), _csv(args.kinds), seed=args.seed)
    tmp = args.out.with_name(args.out.name + ".tmp")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    tmp.replace(args.out)  # all or nothing
    print(f"{len(records)} tasks -> {args.out}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    import asyncio

    from paperlab.core.llm.cache import RequestCache
    from paperlab.core.llm.client import LLMClient
    from paperlab.core.llm.config import load_config
    from paperlab.papers.mceval.tasks import generate_file

    if args.samples < 1:
        raise UserError("--samples must be >= 1")
    client = LLMClient(load_config(args.config), cache=None if args.no_cache else RequestCache())
    asyncio.run(
        generate_file(
            client,
            args.model,
            args.file,
            args.out,
            resume=args.resume,
            samples=args.samples,
            temperature=args.temperature,
            max_tokens=args.max_tokens,
        )
    )
    print(f"answers -> {args.out}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from paperlab.core.llm.results import read_jsonl
    from paperlab.papers.mceval.harness import evaluate_samples, summarize
    from paperlab.papers.mceval.tasks import samples_from_records

    records = read_jsonl(args.file, id_key="task_id")
    samples = samples_from_records(records, use_canonical=args.canonical)
    results = evaluate_samples(
        samples, args.out, workers=args.workers, resume=args.resume, progress=not args.no_progress
    )
    table = summarize(results)
    print(f"{'language':12} {'tasks':>5} {'samples':>7} {'pass@1':>7}  failures")
    for lang, row in table.items():
        p1 = row.get("pass@1", float("nan"))
        fails = ", ".join(f"{k} {v}" for k, v in sorted(row["failures"].items())) or "-"
        print(f"{lang:12} {row['tasks']:>5} {row['samples']:>7} {p1:>7.1%}  {fails}")
    print(f"results -> {args.out}")
    return 0


def _csv(text: str) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise UserError("expected a comma-separated list")
    return items
