"""CRAG's official data format: one JSON object a line, `*.jsonl` or `*.jsonl.bz2`.

    records = load_crag("crag_task_1_and_2_dev_v4.jsonl.bz2")
    records[0]["alt_ans"]       # always a list of strings here
    write_crag(records, "mine.jsonl.bz2")

Fields (`docs/dataset.md` of the official repository): `interaction_id`, `query_time`, `domain`
(finance, music, movie, sports, open), `question_type` (simple, simple_w_condition, comparison,
aggregation, set, false_premise, post-processing, multi-hop), `static_or_dynamic` (static,
slow-changing, fast-changing, real-time), `query`, `answer`, the alternative answers, `split`,
`popularity` (head, torso, tail) and `search_results` (page_name, page_url, page_snippet,
page_result, page_last_modified).

The alternative answers are documented as `alt_ans` (a list) but the released files carry
`alternative_answers`, a *string* holding a list ("[]", "['a', 'b']"): both are accepted and
normalised to `alt_ans`, a list. A malformed line or a missing or mistyped field is one
`ValueError` naming the file, the line and the field. Other fields are kept as they are.
"""

from __future__ import annotations

import ast
import bz2
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from paperlab.papers.crag.world import DOMAINS, DYNAMISM, POPULARITY, QUESTION_TYPES

REQUIRED = ("interaction_id", "query_time", "domain", "question_type", "query", "answer")
PAGE_FIELDS = ("page_name", "page_url", "page_snippet", "page_result", "page_last_modified")
CHOICES = {
    "domain": DOMAINS,
    "question_type": QUESTION_TYPES,
    "static_or_dynamic": DYNAMISM,
    "popularity": POPULARITY,
}


def _open(path: Path, mode: str):
    if path.suffix == ".bz2":
        return bz2.open(path, mode + "t", encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def parse_alternatives(value: Any, where: str) -> list[str]:
    """`alt_ans` (a list) or `alternative_answers` (a string holding a list) -> a list."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            try:  # the released files write Python reprs: "['a', 'b']"
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise ValueError(
                    f"{where}: field 'alternative_answers' is not a list ({text[:40]!r})"
                ) from None
    if not isinstance(value, list) or not all(isinstance(v, str | int | float) for v in value):
        raise ValueError(f"{where}: alternative answers must be a list of strings")
    return [str(v) for v in value]


def validate_record(record: Any, where: str, *, need_answer: bool = True) -> dict[str, Any]:
    """A checked copy of one record with `alt_ans` as a list; a problem is a ValueError naming
    `where` (file:line) and the field."""
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
    out = dict(record)
    for key in REQUIRED if need_answer else REQUIRED[:-1]:
        if key not in out:
            raise ValueError(f"{where}: missing field {key!r}")
    for key in ("interaction_id", "query_time", "query"):
        if not isinstance(out[key], str):
            raise ValueError(f"{where}: field {key!r} must be a string")
    if need_answer and not isinstance(out["answer"], str | int | float):
        raise ValueError(f"{where}: field 'answer' must be a string")
    if "answer" in out:
        out["answer"] = str(out["answer"])
    for key, allowed in CHOICES.items():
        if key in out and out[key] not in allowed:
            raise ValueError(
                f"{where}: field {key!r} is {out[key]!r}, not one of {', '.join(allowed)}"
            )
    if "alt_ans" in out:
        out["alt_ans"] = parse_alternatives(out["alt_ans"], where)
    elif "alternative_answers" in out:
        out["alt_ans"] = parse_alternatives(out.pop("alternative_answers"), where)
    else:
        out["alt_ans"] = []
    results = out.setdefault("search_results", [])
    if not isinstance(results, list):
        raise ValueError(f"{where}: field 'search_results' must be a list")
    for i, page in enumerate(results):
        if not isinstance(page, dict):
            raise ValueError(f"{where}: field 'search_results[{i}]' must be an object")
        if not isinstance(page.get("page_result", ""), str):
            raise ValueError(f"{where}: field 'search_results[{i}].page_result' must be a string")
        for key in PAGE_FIELDS:
            page.setdefault(key, "")
    return out


def iter_crag(path: str | os.PathLike, *, need_answer: bool = True) -> Iterable[dict[str, Any]]:
    """The records of an official-format file, one at a time (checked as they are read)."""
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"path={str(file)!r}: no such file")
    seen: set[str] = set()
    with _open(file, "r") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{file}:{n}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not valid JSON ({e.msg})") from None
            record = validate_record(record, where, need_answer=need_answer)
            if record["interaction_id"] in seen:
                raise ValueError(
                    f"{where}: field 'interaction_id' {record['interaction_id']!r} is repeated"
                )
            seen.add(record["interaction_id"])
            yield record


def load_crag(path: str | os.PathLike, *, need_answer: bool = True) -> list[dict[str, Any]]:
    """Every record of an official-format file (`.jsonl` or `.jsonl.bz2`)."""
    records = list(iter_crag(path, need_answer=need_answer))
    if not records:
        raise ValueError(f"path={str(path)!r}: no records")
    return records


def write_crag(
    records: Iterable[Mapping[str, Any]], path: str | os.PathLike, *, official: bool = False
) -> Path:
    """Write records as JSONL (bz2 when the name ends in .bz2), atomically (a temp file, then a
    rename). `official=True` writes the alternatives as the released files do: a string field
    `alternative_answers`."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=file.name + ".", suffix=".tmp", dir=file.parent)
    os.close(fd)
    tmp_path = Path(tmp).with_suffix(file.suffix) if file.suffix == ".bz2" else Path(tmp)
    try:
        with _open(tmp_path, "w") as fh:
            for r in records:
                r = dict(r)
                if official:
                    r["alternative_answers"] = json.dumps(r.pop("alt_ans", []))
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        os.replace(tmp_path, file)
    finally:
        for p in {Path(tmp), tmp_path}:
            if p.exists():
                p.unlink()
    return file
