"""The official data format: both spellings of the alternative answers, bz2, and one error line
naming the line and the field for a malformed file."""

from __future__ import annotations

import bz2
import json
from pathlib import Path

import pytest

from paperlab.papers.crag import load_crag, make_questions, make_world, write_crag
from paperlab.papers.crag.world import QUESTION_TYPES

FIXTURE = Path(__file__).parent / "data" / "fixture.jsonl"


def test_fixture_loads_with_both_alternative_spellings():
    records = load_crag(FIXTURE)
    assert [r["interaction_id"] for r in records] == ["fx-1", "fx-2", "fx-3"]
    assert records[0]["alt_ans"] == ["41 dollars"]  # documented: alt_ans, a list
    assert records[1]["alt_ans"] == ["23, 41", "41 and 23"]  # shipped: a string holding a list
    assert records[2]["alt_ans"] == []  # shipped: "[]"
    assert all("alternative_answers" not in r for r in records)
    assert records[0]["search_results"][0]["page_last_modified"].startswith("Sat, 01 Jun")


def test_bz2_round_trip_official_spelling(tmp_path):
    world = make_world(3, seed=1)
    records = make_questions(world, 16, seed=1)
    path = write_crag(records, tmp_path / "w.jsonl.bz2", official=True)
    with bz2.open(path, "rt") as fh:
        first = json.loads(fh.readline())
    assert isinstance(first["alternative_answers"], str) and "alt_ans" not in first
    back = load_crag(path)
    assert [r["alt_ans"] for r in back] == [r["alt_ans"] for r in records]
    assert [r["query"] for r in back] == [r["query"] for r in records]
    assert list(tmp_path.iterdir()) == [path]  # no temp file left


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _good(**changes) -> str:
    record = json.loads(FIXTURE.read_text().splitlines()[0])
    record.update(changes)
    for key, value in changes.items():
        if value is None:
            del record[key]
    return json.dumps(record)


@pytest.mark.parametrize(
    "bad, message",
    [
        ("{not json", ":2: not valid JSON"),
        (_good(query=None), ":2: missing field 'query'"),
        (_good(domain="cooking"), ":2: field 'domain' is 'cooking'"),
        (_good(alt_ans=None, alternative_answers="[unclosed"), ":2: field 'alternative_answers'"),
        (_good(search_results="pages"), ":2: field 'search_results' must be a list"),
        (_good(interaction_id="fx-1"), ":2: field 'interaction_id' 'fx-1' is repeated"),
        (_good(query_time=5), ":2: field 'query_time' must be a string"),
    ],
)
def test_malformed_line_names_line_and_field(tmp_path, bad, message):
    path = _write(tmp_path, [_good(), bad])
    with pytest.raises(ValueError) as e:
        load_crag(path)
    assert message in str(e.value) and str(path) in str(e.value)
    assert len(str(e.value).splitlines()) == 1


def test_missing_file_and_empty_file(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        load_crag(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="no records"):
        load_crag(tmp_path / "empty.jsonl")


def test_world_questions_cover_every_type_domain_and_label():
    world = make_world(6, seed=0)
    records = make_questions(world, 120, seed=0)
    assert {r["question_type"] for r in records} == set(QUESTION_TYPES)
    assert len(QUESTION_TYPES) == 8
    assert {r["domain"] for r in records} == {"finance", "music", "movie", "sports", "open"}
    assert {r["static_or_dynamic"] for r in records} == {
        "static",
        "slow-changing",
        "fast-changing",
        "real-time",
    }
    assert {r["popularity"] for r in records} == {"head", "torso", "tail"}
    assert all(len(r["search_results"]) == 5 for r in records)
    fp = [r for r in records if r["question_type"] == "false_premise"]
    assert fp and all(r["answer"] == "invalid question" for r in fp)
    assert make_questions(world, 10, seed=0) == records[:10]  # seeded
