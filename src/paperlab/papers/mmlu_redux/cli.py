"""`paperlab mmlu-redux load|corrupt|detect|rescore`: read the released annotations, inject
errors into clean multiple-choice data, run a detector over an LLM endpoint (or the heuristic
baseline), re-score models' answers on the corrected questions."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from paperlab.claims import UserError

EPILOG = """examples:
  paperlab mmlu-redux load mmlu_redux/ --out records.jsonl     # CSVs or the data set JSONL
  paperlab mmlu-redux corrupt clean.jsonl --out corrupted.jsonl --rates paper --seed 0
  paperlab mmlu-redux detect corrupted.jsonl --heuristic --out flags.jsonl
  paperlab mmlu-redux detect corrupted.jsonl --model gpt-4o --method few_shot_cot \\
      --shots shots.jsonl --config paperlab.toml --out flags.jsonl --resume
  paperlab mmlu-redux rescore records.jsonl --answers answers.jsonl
  paperlab mmlu-redux train-detector --out detector/ --write-data noisy.jsonl
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "mmlu-redux",
        help="MMLU-Redux: error taxonomy, corrupt MC data, detect errors, re-score rankings",
        description="MMLU-Redux (arXiv 2406.04127): the error taxonomy as a tool.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s = p.add_subparsers(
        dest="redux_command",
        metavar="load|corrupt|detect|rescore|train-detector",
        required=True,
    )
    load = s.add_parser(
        "load",
        help="read annotations (CSV or JSONL files or folders), report every oddity",
        description="Reads the data set's JSONL rows and the repository's per-subject CSVs (';' "
        "or ',' delimited, BOMs, non-UTF-8, mixed label casing), normalises the labels, and "
        "prints what it met. An unknown label stops with file, row and label.",
    )
    load.add_argument("paths", nargs="+", type=Path)
    load.add_argument("--out", type=Path, help="write the normalised records as JSONL")

    cor = s.add_parser(
        "corrupt",
        help="inject the taxonomy's errors into clean records at chosen rates",
        description="Input: records JSONL (question, choices, answer[, error_type]) or a folder "
        "of annotation files; only clean ones (ok, with a ground truth) are corrupted.",
    )
    cor.add_argument("input", type=Path)
    cor.add_argument("--out", type=Path, required=True)
    cor.add_argument(
        "--rates",
        default="paper",
        help="'paper' (0.1 per error type) or type=rate,... e.g. wrong_groundtruth=0.2",
    )
    cor.add_argument("--seed", type=int, default=0)

    det = s.add_parser(
        "detect",
        help="label each record with a detection program (or the heuristic baseline)",
        description="Writes one JSON line per record (id, predicted label, reply) to --out, "
        "appending as they complete (--resume skips done ids); prints P/R/F1/F2 when the "
        "records carry labels.",
    )
    det.add_argument("input", type=Path)
    det.add_argument("--out", type=Path, required=True)
    det.add_argument("--resume", action="store_true", help="continue an interrupted --out")
    det.add_argument("--heuristic", action="store_true", help="the rule baseline, no model")
    det.add_argument("--model", help="model name in the LLM config")
    det.add_argument("--config", type=Path, help="LLM config TOML (default ./paperlab.toml)")
    det.add_argument(
        "--method",
        default="zero_shot",
        help="zero_shot | few_shot | zero_shot_cot | few_shot_cot (default zero_shot)",
    )
    det.add_argument("--shots", type=Path, help="solved example records (JSONL) for few-shot")
    det.add_argument(
        "--prompts",
        choices=("official", "tiny"),
        default="official",
        help="official: the paper's instructions and JSON; tiny: the one-line instructions and "
        "compact replies the `train-detector` model was trained on (default official)",
    )
    det.add_argument(
        "--retrieval", type=Path, help="a text file of passages, one per line (MiniLM top-k)"
    )
    det.add_argument("--top-k", type=int, default=3, help="passages per question (3)")
    det.add_argument("--max-tokens", type=int, default=512, help="reply length cap (512)")
    det.add_argument("--concurrency", type=int, default=4, help="requests in flight (4)")
    det.add_argument("--no-cache", action="store_true", help="bypass the request cache")
    det.add_argument("--no-progress", action="store_true")

    res = s.add_parser(
        "rescore",
        help="models' accuracy on original vs corrected records; ranking changes per subject",
        description='--answers JSONL lines: {"model": "m", "id": "<record id>", "answer": 2} '
        "(an index or a letter). Records need ids and error_type labels.",
    )
    res.add_argument("input", type=Path)
    res.add_argument("--answers", type=Path, required=True)
    res.add_argument("--scoring", choices=("filtered", "corrected"), default="filtered")
    _add_train_detector(s)


def _add_train_detector(s: Any) -> None:
    t = s.add_parser(
        "train-detector",
        help="train the miniature's tiny detector and save it where `paperlab serve` serves it",
        description="The tiny byte-level chat model of the claims (made-up facts, every error "
        "type, the four detection programs with and without retrieval), saved as a servable "
        "folder: `paperlab serve DIR` then `detect --model detector`.",
    )
    t.add_argument("--out", type=Path, required=True, help="the model folder to write")
    from paperlab.papers.mmlu_redux.claims import MMLUReduxConfig

    steps = MMLUReduxConfig.detector_steps
    t.add_argument("--steps", type=int, default=steps, help=f"training steps ({steps})")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="cpu", help="cpu, cuda or mps (cpu)")
    t.add_argument(
        "--write-data",
        type=Path,
        help="also write a corrupted test set (JSONL) and its passages (<name>.passages.txt)",
    )


def _train_detector(args: argparse.Namespace) -> int:
    from paperlab.core.device import resolve_device
    from paperlab.core.llm.tiny import save_chat_model, train_chat_model
    from paperlab.papers.mmlu_redux.claims import MMLUReduxConfig
    from paperlab.papers.mmlu_redux.experiments import detector_config, test_pool
    from paperlab.papers.mmlu_redux.records import write_records
    from paperlab.papers.mmlu_redux.world import detector_tasks, make_world

    if args.steps < 1:
        raise UserError(f"--steps must be >= 1, got {args.steps}")
    if args.out.exists() and any(args.out.iterdir()):
        raise UserError(f"--out {args.out}: exists and is not empty")
    try:
        device = resolve_device(args.device)
    except ValueError as e:
        raise UserError(str(e)) from None
    cfg = MMLUReduxConfig(detector_steps=args.steps)
    world = make_world(cfg.subjects, cfg.per_subject, seed=args.seed)
    model = train_chat_model(
        detector_tasks(world, cfg.reading_weight),
        detector_config(cfg),
        seed=args.seed,
        device=device,
        progress=True,
        desc="mmlu-redux: detector",
    )
    save_chat_model(model.cpu(), args.out, "detector")
    print(f"wrote {args.out} (model id: detector)")
    if args.write_data:
        from paperlab.core.files import write_text_atomic

        write_records(test_pool(cfg, world, args.seed), args.write_data)
        passages = args.write_data.with_suffix(".passages.txt")
        write_text_atomic(passages, "\n".join(world.passages()) + "\n")
        print(f"wrote {args.write_data} and {passages} (the retrieval corpus)")
    return 0


def _records(path: Path):
    from paperlab.papers.mmlu_redux.records import load_annotations

    try:
        report = load_annotations(path)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(str(e)) from None
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    for skip in report.skipped:
        print(f"skipped: {skip}", file=sys.stderr)
    if not report.records:
        raise UserError(f"{path}: no record read")
    return report


def _rates(text: str) -> dict[str, float]:
    from paperlab.papers.mmlu_redux.corrupt import check_rates
    from paperlab.papers.mmlu_redux.taxonomy import PAPER_MIX

    if text == "paper":
        return dict(PAPER_MIX)
    out = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise UserError(f"--rates: {part!r} is not type=rate") from None
        if not sep:
            raise UserError(f"--rates: {part!r} is not type=rate")
    try:
        return check_rates(out)
    except ValueError as e:
        raise UserError(f"--{e}") from None


def _ids(records) -> None:
    for i, r in enumerate(records):
        r.id = r.id or f"{r.subject or 'row'}-{i}"


def run(args: argparse.Namespace) -> int:
    from paperlab.papers.mmlu_redux.records import write_records

    if args.redux_command == "load":
        report = _records(args.paths[0]) if len(args.paths) == 1 else None
        if report is None:
            from paperlab.papers.mmlu_redux.records import load_annotations

            try:
                report = load_annotations(args.paths)
            except (FileNotFoundError, ValueError) as e:
                raise UserError(str(e)) from None
        print(report.summary())
        if args.out:
            write_records(report.records, args.out)
            print(f"wrote {args.out}", file=sys.stderr)
        return 0
    if args.redux_command == "corrupt":
        from paperlab.papers.mmlu_redux.corrupt import corrupt_records

        rates = _rates(args.rates)
        records = _records(args.input).records
        _ids(records)
        out = corrupt_records(records, rates, seed=args.seed)
        write_records(out, args.out)
        from collections import Counter

        counts = Counter(r.error_type for r in out)
        print(", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        return 0
    if args.redux_command == "detect":
        return _detect(args)
    if args.redux_command == "train-detector":
        return _train_detector(args)
    return _rescore(args)


def _detect(args: argparse.Namespace) -> int:
    from paperlab.core.llm.results import JsonlResults
    from paperlab.papers.mmlu_redux.detect import METHODS, Detector, heuristic_detect
    from paperlab.papers.mmlu_redux.taxonomy import parse_classification

    if args.concurrency < 1:
        raise UserError(f"--concurrency must be >= 1, got {args.concurrency}")
    if args.max_tokens < 1:
        raise UserError(f"--max-tokens must be >= 1, got {args.max_tokens}")
    if args.top_k < 1:
        raise UserError(f"--top-k must be >= 1, got {args.top_k}")
    if not args.heuristic and not args.model:
        raise UserError("detect: pass --model NAME (an LLM config model) or --heuristic")
    if args.method not in METHODS:
        raise UserError(f"--method: unknown {args.method!r}; choose from {', '.join(METHODS)}")
    records = _records(args.input).records
    _ids(records)
    with JsonlResults(args.out, resume=args.resume) as results:
        todo = [r for r in records if r.id not in results.done]
        if args.heuristic:
            for r in todo:
                results.append({"id": r.id, "label": heuristic_detect(r), "reply": ""})
        else:
            detector = _detector(args, Detector, METHODS)
            from paperlab.core.llm.cache import RequestCache
            from paperlab.core.llm.client import LLMClient
            from paperlab.core.llm.config import load_config
            from paperlab.core.llm.results import map_to_jsonl

            client = LLMClient(
                load_config(args.config), cache=None if args.no_cache else RequestCache()
            )
            by_id = {r.id: r for r in todo}

            async def one(item):
                r = by_id[item["id"]]
                msgs = detector.messages(r)
                out = await client.chat(
                    args.model, msgs, temperature=0.0, max_tokens=args.max_tokens
                )
                return {"label": parse_classification(out.text), "reply": out.text}

            _, failed = asyncio.run(
                map_to_jsonl(
                    [{"id": r.id} for r in todo],
                    one,
                    results,
                    concurrency=args.concurrency,
                    progress=not args.no_progress,
                    desc="detect",
                )
            )
            for item_id, err in failed[:3]:
                print(f"paperlab: record {item_id!r} failed: {err}", file=sys.stderr)
            if failed:
                print(
                    f"paperlab: {len(failed)} records failed; re-run with --resume to retry them",
                    file=sys.stderr,
                )
                return 1
        predicted = {rec["id"]: rec.get("label") for rec in results.records()}
    _print_metrics(records, predicted)
    return 0


def _detector(args: argparse.Namespace, Detector, METHODS):
    shots = _records(args.shots).records if args.shots else ()
    retriever = None
    if args.retrieval:
        from paperlab.core.embed import MiniLM, top_k

        try:
            passages = [x for x in args.retrieval.read_text().splitlines() if x.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"--retrieval: cannot read {args.retrieval}: {e}") from None
        embedder = MiniLM()

        def retriever(q: str) -> list[str]:
            return top_k(q, passages, embedder, k=args.top_k)

    try:
        if args.prompts == "tiny":
            from paperlab.papers.mmlu_redux.world import TINY_COT_INSTRUCTION, TINY_INSTRUCTION

            cot = "cot" in args.method
            return Detector(
                method=args.method,
                instruction=TINY_COT_INSTRUCTION if cot else TINY_INSTRUCTION,
                shots=shots,
                retriever=retriever,
                reasoning=lambda r: r.potential_reason or "Step 4: checked.",
                compact=True,
                layout="compact",
            )
        return Detector(
            method=args.method,
            shots=shots,
            retriever=retriever,
            reasoning=lambda r: r.potential_reason or "",
        )
    except ValueError as e:
        raise UserError(str(e)) from None


def _print_metrics(records, predicted: dict) -> None:
    from paperlab.papers.mmlu_redux.detect import detection_metrics

    labelled = [r for r in records if r.id in predicted]
    if not labelled:
        return
    m = detection_metrics([r.error_type for r in labelled], [predicted[r.id] for r in labelled])
    print(f"{'':28} precision recall  F1     F2")
    for group, v in m.items():
        print(
            f"{group:28} {v['precision']:.3f}     {v['recall']:.3f}   {v['f1']:.3f}  {v['f2']:.3f}"
        )


def _rescore(args: argparse.Namespace) -> int:
    from paperlab.papers.mmlu_redux.rescore import rescore

    records = _records(args.input).records
    _ids(records)
    index = {r.id: i for i, r in enumerate(records)}
    answers: dict[str, list] = {}
    try:
        lines = args.answers.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"--answers: cannot read {args.answers}: {e}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            model, rid, ans = row["model"], str(row["id"]), row["answer"]
        except (ValueError, KeyError, TypeError):
            raise UserError(f"--answers line {n}: need model, id and answer") from None
        if rid not in index:
            raise UserError(f"--answers line {n}: unknown record id {rid!r}")
        if isinstance(ans, str) and ans.strip():
            letter = ans.strip().upper()
            if len(letter) != 1 or letter not in "ABCDEFGHIJ":
                raise UserError(f"--answers line {n}: answer {ans!r} is not a letter A-J")
            ans = "ABCDEFGHIJ".index(letter)
        elif isinstance(ans, str) or ans is None:
            ans = None
        elif isinstance(ans, bool) or not isinstance(ans, int) or not 0 <= ans < 10:
            raise UserError(f"--answers line {n}: answer {ans!r} is not a letter A-J or 0-9")
        answers.setdefault(model, [None] * len(records))[index[rid]] = ans
    if len(answers) < 2:
        raise UserError("--answers: need the answers of at least 2 models")
    subjects = sorted({r.subject for r in records})
    print(f"{'subject':24} n   errors  tau    moved")
    for subject in [*subjects, "(all)"]:
        keep = [i for i, r in enumerate(records) if subject == "(all)" or r.subject == subject]
        part = [records[i] for i in keep]
        out = rescore(
            part, {m: [a[i] for i in keep] for m, a in answers.items()}, scoring=args.scoring
        )
        print(
            f"{subject:24} {len(part):<4}{out['error_rate']:>6.1%}  {out['kendall_tau']:+.2f}  "
            f"{out['n_moved']:.0f}"
        )
    return 0
