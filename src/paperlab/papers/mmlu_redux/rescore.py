"""Re-scoring (Sec. 6): the accuracy of several models on the original questions vs on the
re-annotated ones, and how their ranking moves.

Two corrected scorings: ``filtered`` keeps only the questions annotated ok (the paper's
"MMLU-Redux ok subset"); ``corrected`` also keeps the wrong-ground-truth questions, scored
against their corrected answer (where the annotation gives one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from paperlab.core.mc import ranking_change
from paperlab.papers.mmlu_redux.records import Record
from paperlab.papers.mmlu_redux.taxonomy import OK


def corrected_answer(r: Record) -> int | None:
    """The right answer of a record once fixed: the original ground truth of a
    wrong-ground-truth record (kept in ``meta`` by the corruption tool, or ``correct_answer``
    as a letter or index in the released data); None when there is none to give."""
    if r.error_type == OK:
        return r.answer
    if r.error_type != "wrong_groundtruth":
        return None
    if "original_groundtruth" in r.meta:
        return r.meta["original_groundtruth"]
    text = r.correct_answer.strip()
    if len(text) == 1 and text.upper() in "ABCDEFGHIJ":
        return "ABCDEFGHIJ".index(text.upper())
    if text.isdigit() and int(text) < len(r.choices):
        return int(text)
    return None


def scores(records: Sequence[Record], answers: Sequence[int | None]) -> dict[str, float]:
    """Accuracy of one model's answers (a choice index or None per record) under the three
    scorings: original labels, ok subset, corrected."""
    if len(records) != len(answers):
        raise ValueError(f"answers: {len(answers)} answers for {len(records)} records")
    if not records:
        raise ValueError("records: empty")
    original = [a is not None and a == r.answer for r, a in zip(records, answers, strict=True)]
    ok = [(r, a) for r, a in zip(records, answers, strict=True) if r.error_type == OK]
    fixed = [
        (corrected_answer(r), a)
        for r, a in zip(records, answers, strict=True)
        if corrected_answer(r) is not None
    ]
    return {
        "original": sum(original) / len(original),
        "filtered": sum(a == r.answer for r, a in ok) / len(ok) if ok else float("nan"),
        "corrected": sum(a == c for c, a in fixed) / len(fixed) if fixed else float("nan"),
        "n": float(len(records)),
        "n_ok": float(len(ok)),
    }


def rescore(
    records: Sequence[Record],
    answers: Mapping[str, Sequence[int | None]],
    *,
    scoring: str = "filtered",
) -> dict[str, float]:
    """Per model: original vs corrected accuracy; and the ranking change between the two
    (Kendall tau, models moved, largest move), over the given records."""
    if scoring not in ("filtered", "corrected"):
        raise ValueError(f"scoring: {scoring!r} must be 'filtered' or 'corrected'")
    per = {m: scores(records, a) for m, a in answers.items()}
    before = {m: s["original"] for m, s in per.items()}
    after = {m: s[scoring] for m, s in per.items()}
    out = ranking_change(before, after)
    for m, s in per.items():
        out[f"{m}_original"] = s["original"]
        out[f"{m}_{scoring}"] = s[scoring]
    out["error_rate"] = sum(r.error_type != OK for r in records) / len(records)
    return out
