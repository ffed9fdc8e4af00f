"""The ``paperlab`` command: list the papers, reproduce their claims, render the report.

    paperlab list
    paperlab reproduce kan --scale tiny --seed 0
    paperlab reproduce                     # every implemented paper, default scale
    paperlab report                        # runs/report.md + runs/report.html

User mistakes (unknown slug, scale, --set key, bad value, unwritable --out) print one line
and exit with status 2, having written nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from paperlab import __version__, catalog
from paperlab.claims import SCALES, UserError

# Paper commands, imported only when used: `paperlab --help` and `paperlab list` load no torch
# and no paper. Each module has add_parser(sub) and run(args).
PAPER_COMMANDS: dict[str, tuple[str, str]] = {
    "moa": (
        "paperlab.papers.moa.cli",
        "Mixture-of-Agents: ask layered proposers and an aggregator",
    ),
    "poll": ("paperlab.papers.poll.cli", "PoLL: a jury of judges over answers (verdicts, kappa)"),
    "mceval": ("paperlab.papers.mceval.cli", "McEval: sandboxed multilingual code evaluation"),
    "powerinfer2": (
        "paperlab.papers.powerinfer2.cli",
        "PowerInfer-2: train, convert, plan and run a sparse decoder from disk",
    ),
    "prometheus2": ("paperlab.papers.prometheus2.cli", "Prometheus 2: evaluator grading, merging"),
    "depth": (
        "paperlab.papers.depth_anything_v2.cli",
        "Depth Anything V2: photo -> relative depth; teacher/pseudo-label/student pipeline",
    ),
    "crag": ("paperlab.papers.crag.cli", "CRAG: mock KG API, RAG baselines, scoring"),
    "octopus": (
        "paperlab.papers.octopus_v4.cli",
        "Octopus v4: route a query through a graph of models with functional tokens",
    ),
    "magpie": (
        "paperlab.papers.magpie.cli",
        "Magpie: synthesise alignment data from the pre-query template; tag and filter it",
    ),
    "irpo": ("paperlab.papers.irpo.cli", "Iterative RPO: DPO + NLL on the model's own CoT samples"),
    "advprompter": (
        "paperlab.papers.advprompter.cli",
        "AdvPrompter: train a suffix prompter, attack a target, harden it",
    ),
    "mmlu-redux": (
        "paperlab.papers.mmlu_redux.cli",
        "MMLU-Redux: error taxonomy, corrupt MC data, detect errors, re-score rankings",
    ),
    "prompt-report": (
        "paperlab.papers.prompt_report.cli",
        "The Prompt Report: the technique taxonomy, techniques as programs, a benchmark",
    ),
    "llamagen": (
        "paperlab.papers.llamagen.cli",
        "LlamaGen: train tokenizer + generator on an image folder, sample a PNG grid",
    ),
    "titok": (
        "paperlab.papers.titok.cli",
        "TiTok: train a 1-D tokenizer + generator on an image folder, sample a PNG grid",
    ),
    "narcan": (
        "paperlab.papers.narcan.cli",
        "NaRCan: fit a canonical image with a diffusion prior to a clip; edit it once",
    ),
    "motionclone": (
        "paperlab.papers.motionclone.cli",
        "MotionClone: clone a reference clip's motion into a new prompt, training-free",
    ),
    "instantfamily": (
        "paperlab.papers.instantfamily.cli",
        "InstantFamily: generate several given identities in given boxes (masked attention)",
    ),
    "pllava": ("paperlab.papers.pllava.cli", "PLLaVA: ask a pooled image-LLM about a clip"),
    "recap": (
        "paperlab.papers.recap.cli",
        "Recap-DataComp: recaption images with an image-LLM; train and evaluate CLIP on the mix",
    ),
}

EPILOG = """examples:
  paperlab list
  paperlab reproduce kan --scale tiny
  paperlab reproduce kan --set kan.steps=50 --seed 1
  paperlab reproduce kan --show-config
  paperlab reproduce && paperlab report
  paperlab cache list
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (and exit 2), like every other user error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"paperlab: error: {message} (see `{self.prog} --help`)\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; the paper command ``command`` (if any) gets its real sub-parser, the others
    a placeholder that only shows their help line."""
    parser = _Parser(
        prog="paperlab",
        description="Faithful miniature re-runs of 25 AI papers from spring 2024.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"paperlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p_list = sub.add_parser("list", help="all 25 papers: slug, title, arXiv id, status, claims")
    p_list.add_argument("--markdown", action="store_true", help="print a Markdown table")

    p_rep = sub.add_parser(
        "reproduce",
        help="re-run papers' claims in miniature and write runs/<slug>/<claim>/<time>/",
        description="Re-run each selected paper's claims (all implemented papers if none are "
        "named) and print paper figure vs ours with a verdict computed from the measurements.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_rep.add_argument("slugs", nargs="*", metavar="SLUG", help="papers to run (default: all)")
    p_rep.add_argument(
        "--scale",
        default="default",
        metavar="|".join(SCALES),
        help="tiny: seconds (tests); default: minutes on a 2-core CPU; "
        "full: the paper's own settings where feasible",
    )
    p_rep.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p_rep.add_argument("--device", default="auto", help="auto|cpu|cuda|mps (default auto)")
    p_rep.add_argument("--out", type=Path, default=Path("runs"), help="output folder (runs/)")
    p_rep.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set steps=50 or kan.steps=50",
    )
    p_rep.add_argument(
        "--claim",
        dest="claims",
        action="append",
        default=[],
        metavar="ID",
        help="run only this claim (one paper only; repeatable)",
    )
    p_rep.add_argument(
        "--show-config",
        action="store_true",
        help="print the config fields and their values at --scale, then exit",
    )
    p_rep.add_argument("--no-progress", action="store_true", help="no progress bars")
    p_rep.add_argument(
        "--cache-dir",
        type=Path,
        help="disk cache of trained models, reused by the next run "
        "(default: $PAPERLAB_CACHE_DIR or ~/.cache/paperlab; off: none)",
    )
    p_rep.add_argument(
        "--no-disk-cache",
        action="store_true",
        help="train everything afresh and keep nothing on disk",
    )
    p_rep.add_argument(
        "--config",
        type=Path,
        help="LLM config TOML: LLM-backed papers (moa, poll, ...) run their claims on the real "
        "models it names instead of the miniature models trained here",
    )

    p_report = sub.add_parser("report", help="render the latest results to report.md/.html")
    p_report.add_argument(
        "--out",
        type=Path,
        default=Path("runs"),
        help="folder with results; the report is written there (runs/)",
    )
    p_serve = sub.add_parser(
        "serve",
        help="serve paperlab chat models over an OpenAI-compatible HTTP API",
        description="Serve one or more paperlab chat models (directories holding "
        "model.safetensors and paperlab_chat.json) at /v1/models, /v1/chat/completions and "
        "/v1/completions, for the `openai` client or any tool that speaks its API.",
        epilog="example:\n  paperlab serve runs/zoo/adder-0 --port 8000\n"
        "  curl http://127.0.0.1:8000/v1/models",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_serve.add_argument("model_dirs", nargs="+", type=Path, metavar="MODEL_DIR")
    p_serve.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    p_serve.add_argument("--port", type=int, default=8000, help="port; 0 picks a free one (8000)")
    p_serve.add_argument("--threads", type=int, default=1, help="torch threads per request (1)")
    p_serve.add_argument(
        "--api-key-env", metavar="NAME", help="require the key held in this environment variable"
    )
    p_serve.add_argument(
        "--latency", type=float, default=0.0, help="add this many seconds to every completion"
    )
    p_serve.add_argument(
        "--fault",
        dest="faults",
        action="append",
        default=[],
        metavar="KIND",
        help="fail the next completion request on purpose (tests): 429, 500, 503, malformed, "
        "drop, slow:SECONDS; repeat to queue several",
    )
    p_serve.add_argument("--ready-file", type=Path, help=argparse.SUPPRESS)
    p_serve.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    p_cache = sub.add_parser(
        "cache",
        help="list or clear the disk cache of trained models",
        description="The disk cache `paperlab reproduce` keeps trained models in, keyed by their "
        "spec and the package version (default ~/.cache/paperlab; $PAPERLAB_CACHE_DIR).",
    )
    p_cache.add_argument("action", choices=("list", "clear"))
    p_cache.add_argument("--cache-dir", type=Path, help="the cache folder (default as above)")
    p_cache.add_argument("--name", help="clear: only entries of this artifact name")
    for name, (module, help_text) in PAPER_COMMANDS.items():
        if name == command:
            importlib.import_module(module).add_parser(sub)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def cmd_list(args: argparse.Namespace) -> int:
    from paperlab.runner import format_table

    rows = [("slug", "arXiv", "status", "claims", "title")]
    for slug, info in catalog.PAPERS.items():
        if catalog.is_implemented(slug):
            claims = ", ".join(catalog.claim_ids(slug))
            status = "implemented"
        else:
            status, claims = "planned", "-"
        rows.append((slug, info.arxiv, status, claims, info.title))
    if args.markdown:
        print("| " + " | ".join(rows[0]) + " |")
        print("|" + "---|" * len(rows[0]))
        for r in rows[1:]:
            print("| " + " | ".join(r) + " |")
    else:
        print(format_table(rows, width=140))
    n = sum(1 for s in catalog.PAPERS if catalog.is_implemented(s))
    print(
        f"\n{len(catalog.PAPERS)} papers, {n} implemented. `paperlab reproduce SLUG` re-runs one."
    )
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from paperlab.core.device import resolve_device
    from paperlab.runner import check_writable, plan_run, run_plans, summary_table

    if not sys.stderr.isatty():  # a log file, CI: a progress line every 10 s, not every step
        os.environ.setdefault("TQDM_MININTERVAL", "10")
    slugs = list(dict.fromkeys(args.slugs)) or catalog.implemented()
    if args.claims and len(slugs) != 1:
        raise UserError("--claim needs exactly one SLUG (e.g. paperlab reproduce kan --claim a)")
    plans = plan_run(slugs, scale=args.scale, overrides=args.overrides, claim_ids=args.claims)
    if args.show_config:
        for plan in plans:
            print(f"[{plan.slug}] --scale {args.scale}")
            for f in dataclasses.fields(plan.config):
                print(f"  {f.name} = {getattr(plan.config, f.name)!r}  ({f.type})")
        return 0
    try:
        device = resolve_device(args.device)
    except ValueError as e:
        raise UserError(str(e)) from None
    check_writable(args.out)
    llm_config = None
    if args.config is not None:
        from paperlab.core.llm.config import load_config

        load_config(args.config)  # a malformed config fails now, before any claim runs
        llm_config = str(args.config)

    n = sum(len(p.claims) for p in plans)
    print(
        f"paperlab {__version__}: {n} claims of {', '.join(slugs)} at scale {args.scale}, "
        f"seed {args.seed}, device {device} -> {args.out}/",
        file=sys.stderr,
    )
    results, errors, interrupted = run_plans(
        plans,
        scale=args.scale,
        seed=args.seed,
        device=device,
        out=args.out,
        progress=not args.no_progress,
        llm_config=llm_config,
        cache_dir=_cache_dir(args),
    )
    if results:
        print(summary_table(results))
        secs = sum(r.seconds for r in results)
        print(
            f"\n{len(results)} claims in {secs:.0f}s; results under {args.out}/. "
            f"`paperlab report --out {args.out}` renders them."
        )
    for e in errors:
        print(f"paperlab: claim crashed: {e}", file=sys.stderr)
    if interrupted:
        print(f"paperlab: interrupted; {len(results)} finished claims were kept.", file=sys.stderr)
        return 130
    return 1 if errors else 0


def _cache_dir(args: argparse.Namespace) -> Path | None:
    from paperlab.core.artifacts import default_cache_dir

    if getattr(args, "no_disk_cache", False):
        return None
    if args.cache_dir is not None:  # `--cache-dir off` means what PAPERLAB_CACHE_DIR=off means
        return None if str(args.cache_dir).strip().lower() == "off" else args.cache_dir
    return default_cache_dir()


def cmd_cache(args: argparse.Namespace) -> int:
    from paperlab.core.artifacts import clear_entries, list_entries
    from paperlab.runner import format_table

    folder = _cache_dir(args)
    if folder is None:
        raise UserError("the disk cache is off ($PAPERLAB_CACHE_DIR=off); pass --cache-dir DIR")
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--cache-dir {folder}: a file, not a folder")
    entries = list_entries(folder) if folder.is_dir() else []
    if args.action == "clear":
        n = clear_entries(folder, args.name) if folder.is_dir() else 0
        print(f"removed {n} entries from {folder}")
        return 0
    if not entries:
        print(f"{folder}: empty")
        return 0
    rows = [("name", "key", "MB", "created", "version", "spec")]
    for e in entries:
        rows.append((e.name, e.key, f"{e.bytes / 1e6:.2f}", e.created, e.version, e.spec))
    print(format_table(rows, width=140))
    total = sum(e.bytes for e in entries) / 1e6
    print(f"\n{len(entries)} entries, {total:.1f} MB in {folder}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from paperlab.report import write_report

    if not args.out.is_dir():
        raise UserError(f"--out {args.out}: no such folder; run `paperlab reproduce` first")
    md, html, n = write_report(args.out)
    print(f"report of {n} results: {md} and {html}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from paperlab.core.llm.server import serve

    try:
        serve(
            args.model_dirs,
            host=args.host,
            port=args.port,
            threads=args.threads,
            latency=args.latency,
            faults=args.faults,
            api_key_env=args.api_key_env,
            ready_file=args.ready_file,
            parent_pid=args.parent_pid,
        )
    except (OSError, ValueError) as e:
        raise UserError(str(e)) from None
    return 0


COMMANDS = {
    "list": cmd_list,
    "reproduce": cmd_reproduce,
    "report": cmd_report,
    "serve": cmd_serve,
    "cache": cmd_cache,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in PAPER_COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command in PAPER_COMMANDS:
            return importlib.import_module(PAPER_COMMANDS[args.command][0]).run(args)
        return COMMANDS[args.command](args)
    except UserError as e:
        print(f"paperlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("paperlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `paperlab list | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
