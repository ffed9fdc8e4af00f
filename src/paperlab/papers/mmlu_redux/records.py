"""Annotated multiple-choice records, and a loader for the released annotations in both shapes
users meet:

- the data set's rows (JSONL, or the Parquet/JSON export): ``question``, ``choices`` (a list),
  ``answer`` (an index), ``error_type`` (snake_case), ``source``, ``correct_answer``,
  ``potential_reason``;
- the repository's per-subject CSVs: the same columns, but ``choices`` written as a Python list
  literal, labels in mixed casing ("OK", "Wrong Groundtruth"), most files ';'-delimited and
  some ','; BOMs; one file not UTF-8.

Everything is normalised and every oddity is reported in a `LoadReport` (the delimiter guessed,
a BOM, a non-UTF-8 file, a label spelling, a skipped row with its line): nothing is dropped
silently. An unknown label stops the load with one error naming the file, row and label.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from paperlab.core.files import write_jsonl_atomic
from paperlab.papers.mmlu_redux.taxonomy import LABELS, OK, normalize_label

COLUMNS = ("question", "choices", "answer", "error_type")


@dataclass
class Record:
    """One question as MMLU-Redux stores it. `answer`: index of the ground-truth choice (None
    for a record without one, e.g. after a "no correct answer" corruption). `error_type`: one of
    `taxonomy.LABELS`. `original`: the clean record a corruption started from, if any."""

    question: str
    choices: list[str]
    answer: int | None
    error_type: str = OK
    subject: str = ""
    id: str = ""
    source: str = ""
    correct_answer: str = ""
    potential_reason: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.question, str):
            raise ValueError(f"question must be a string, got {self.question!r}")
        if not isinstance(self.choices, list | tuple) or len(self.choices) < 2:
            raise ValueError(f"choices must be a list of >= 2 strings, got {self.choices!r}"[:160])
        self.choices = [str(c) for c in self.choices]
        if self.answer is not None and not (
            isinstance(self.answer, int)
            and not isinstance(self.answer, bool)
            and 0 <= self.answer < len(self.choices)
        ):
            raise ValueError(
                f"answer must be an index into the {len(self.choices)} choices, got {self.answer!r}"
            )
        if self.error_type not in LABELS:
            raise ValueError(f"error_type {self.error_type!r} is not one of {', '.join(LABELS)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> Record:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


@dataclass
class LoadReport:
    records: list[Record]
    notes: list[str] = field(default_factory=list)  # every oddity met, one line each
    skipped: list[str] = field(default_factory=list)  # "file:line: why"
    label_spellings: Counter = field(default_factory=Counter)  # raw spelling -> count

    def summary(self) -> str:
        counts = Counter(r.error_type for r in self.records)
        parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        return (
            f"{len(self.records)} records ({parts}); {len(self.skipped)} rows skipped; "
            f"{len(self.notes)} notes"
        )


def _parse_choices(value, where: str) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    if not isinstance(value, str):
        raise ValueError(f"{where}: choices {value!r} is not a list")
    text = value.strip()
    for parse in (json.loads, ast.literal_eval):
        try:
            out = parse(text)
        except (ValueError, SyntaxError):
            continue
        if isinstance(out, list | tuple):
            return [str(v) for v in out]
    raise ValueError(f"{where}: choices {text[:60]!r} is not a list literal")


def _parse_answer(value, n: int, where: str) -> int | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "n/a", "nan")):
        return None
    if isinstance(value, str):
        v = value.strip()
        if len(v) == 1 and v.upper() in "ABCDEFGHIJ":
            return "ABCDEFGHIJ".index(v.upper())
        try:
            value = int(float(v))
        except ValueError:
            raise ValueError(f"{where}: answer {value!r} is not an index or a letter") from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or not 0 <= value < n:
        raise ValueError(f"{where}: answer {value!r} is outside the {n} choices")
    return value


def _record(row: Mapping, where: str, subject: str, report: LoadReport) -> Record | None:
    missing = [c for c in COLUMNS if c not in row]
    if missing:
        raise ValueError(f"{where}: missing columns {missing}")
    raw = row["error_type"]
    raw = "" if raw is None else str(raw).strip()
    label = normalize_label(raw) if raw else OK
    if not raw:
        report.notes.append(f"{where}: empty error_type read as ok")
    report.label_spellings[raw] += 1
    try:
        choices = _parse_choices(row["choices"], where)
        answer = _parse_answer(row["answer"], len(choices), where)
        return Record(
            question=str(row["question"] or ""),
            choices=choices,
            answer=answer,
            error_type=label,
            subject=str(row["subject"] or "") if "subject" in row else subject,
            id=str(row.get("id") or ""),
            source=str(row.get("source") or ""),
            correct_answer=str(row.get("correct_answer") or ""),
            potential_reason=str(row.get("potential_reason") or ""),
            meta=dict(row["meta"]) if isinstance(row.get("meta"), dict) else {},
        )
    except ValueError as e:
        report.skipped.append(str(e))
        return None


def _decode(data: bytes, name: str, report: LoadReport) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        report.notes.append(f"{name}: UTF-8 byte-order mark removed")
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        report.notes.append(f"{name}: not UTF-8; read as cp1252")
        return data.decode("cp1252", errors="replace")


def _read_csv(path: Path, report: LoadReport, subject: str) -> None:
    text = _decode(path.read_bytes(), path.name, report)
    header = text.split("\n", 1)[0]
    delimiter = ";" if header.count(";") > header.count(",") else ","
    if delimiter == ",":
        report.notes.append(f"{path.name}: ',' delimited (most files use ';')")
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    fields = [f.strip() for f in reader.fieldnames or []]
    reader.fieldnames = fields
    missing = [c for c in COLUMNS if c not in fields]
    if missing:
        raise ValueError(f"{path}: missing columns {missing} (header: {fields})")
    for row in reader:
        where = f"{path.name}:{reader.line_num}"
        try:
            rec = _record(row, where, subject, report)
        except ValueError as e:  # an unknown label: stop, naming file, row and label
            raise ValueError(f"{where}: {e}") from None
        if rec is not None:
            report.records.append(rec)


def _read_jsonl(path: Path, report: LoadReport, subject: str) -> None:
    text = _decode(path.read_bytes(), path.name, report)
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path.name}:{n}"
        try:
            row = json.loads(line)
        except ValueError:
            report.skipped.append(f"{where}: not JSON")
            continue
        try:
            rec = _record(row, where, subject, report)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        if rec is not None:
            report.records.append(rec)


def _subject_of(path: Path) -> str:
    return path.stem.removeprefix("mmlu_")


def load_annotations(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> LoadReport:
    """Records from files or folders (``*.csv`` and ``*.jsonl``; a folder is read in sorted
    order). The subject is the file's stem without ``mmlu_`` unless a row names one."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(q for q in p.rglob("*") if q.suffix in (".csv", ".jsonl"))
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"paths: no such file or folder {p}")
    if not files:
        raise ValueError("paths: no .csv or .jsonl file found")
    report = LoadReport([])
    for f in files:
        subject = f.parent.name if f.name == "test.csv" else _subject_of(f)
        (_read_csv if f.suffix == ".csv" else _read_jsonl)(f, report, subject)
    odd = sorted(s for s in report.label_spellings if s and s != normalize_label(s))
    if odd:
        report.notes.append(f"label spellings normalised: {', '.join(map(repr, odd))}")
    return report


def write_records(records: Sequence[Record], path: str | os.PathLike) -> Path:
    """JSONL in the data set's shape, written atomically."""
    return write_jsonl_atomic(path, (r.to_dict() for r in records))


def read_records(path: str | os.PathLike) -> list[Record]:
    """Records written by `write_records` (or any JSONL in the data set's shape)."""
    return load_annotations(path).records
