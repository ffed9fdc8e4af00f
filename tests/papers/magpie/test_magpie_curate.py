"""Tagging, nearest-neighbour deduplication, the official filter, export and statistics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from paperlab.core.errors import UserError
from paperlab.papers.magpie import (
    QUALITY_LEVELS,
    TASK_CATEGORIES,
    RuleTagger,
    curate,
    magpie_filter,
    nearest_neighbours,
    parse_tag_json,
    passes,
    stats,
    write_jsonl,
)


def test_twelve_official_task_categories():
    assert len(TASK_CATEGORIES) == 12 and "Coding & Debugging" in TASK_CATEGORIES


def test_nearest_neighbours_match_sklearn():
    """Reference: scikit-learn's exact nearest neighbours (squared euclidean)."""
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    x[10] = x[3] + 0.01  # a near-duplicate pair
    ids = [f"c{i}" for i in range(len(x))]
    ours = nearest_neighbours(x, ids, threshold=0.05)
    dist, _ = NearestNeighbors(n_neighbors=2).fit(x).kneighbors(x)
    np.testing.assert_allclose(
        [o["min_neighbor_distance"] for o in ours], dist[:, 1] ** 2, rtol=1e-3, atol=1e-4
    )
    assert ours[3]["min_similar_conversation_id"] == "c3" == ours[10]["min_similar_conversation_id"]
    assert ours[3]["repeat_count"] == 1 and ours[0]["min_similar_conversation_id"] is None


def test_nearest_neighbours_bad_input():
    with pytest.raises(ValueError, match="embeddings must be"):
        nearest_neighbours(np.zeros((3, 2)), [1, 2])
    with pytest.raises(ValueError, match="threshold"):
        nearest_neighbours(np.zeros((2, 2)), [1, 2], threshold=-1)


def _rec(i, instruction, response="ok", quality="good", group=None, **kw):
    return {
        "conversation_id": i,
        "instruction": instruction,
        "response": response,
        "input_quality": quality,
        "min_similar_conversation_id": group,
        **kw,
    }


def test_the_official_filter():
    records = [
        _rec(0, "Add 3 and 4.", "7", group=0),  # first of its duplicate group: kept
        _rec(1, "Add 3 and 4!", "7", group=0),  # a duplicate of 0: dropped
        _rec(2, "Solve the following:", "x"),  # ends in ':'
        _rec(3, "What is up", "not much", quality="poor"),  # quality below average
        _rec(4, "Be nice", "sure", quality="average"),  # average: kept
        _rec(5, "Reward me", "no", instruct_reward=-12.0),  # reward <= -10
        _rec(6, "Unanswered", ""),  # no response
    ]
    assert [r["conversation_id"] for r in magpie_filter(records)] == [0, 4]
    assert [r["conversation_id"] for r in magpie_filter(records, min_quality="good")] == [0]
    assert [r["conversation_id"] for r in magpie_filter(records, keep=1)] == [4]  # longest
    with pytest.raises(UserError, match="min_quality"):
        passes(records[0], min_quality="great")


def test_parse_tag_json_tolerates_prose_and_fences():
    assert parse_tag_json('Sure!\n```\n{"input_quality": "good", "explanation": "{x}"}\n```') == {
        "input_quality": "good",
        "explanation": "{x}",
    }
    assert parse_tag_json("no json here") is None
    assert parse_tag_json('{"a": [1, 2}') is None


def test_rule_tagger():
    tags = RuleTagger().tag(["Add 3 and 4.", "add 3 and 4", "Add 30 and 4.", "add it up", "zzz"])
    assert [t["input_quality"] for t in tags] == [
        "excellent",
        "good",
        "average",
        "poor",
        "very poor",
    ]
    assert tags[0]["task_category"] == "Math" and tags[4]["task_category"] == "Others"
    assert all(t["input_quality"] in QUALITY_LEVELS for t in tags)


class _Hash:
    """A deterministic stand-in embedder: one unit vector per distinct lower-cased text."""

    def encode(self, texts):
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i, hash(t.lower().rstrip(".")) % 64] = 1.0
        return out


def test_curate_keeps_every_record_and_adds_the_fields():
    records = [_rec(i, t) for i, t in enumerate(["Add 3 and 4.", "add 3 and 4", "Add 1 and 2."])]
    out = curate(records, tagger=RuleTagger(), embedder=_Hash())
    assert len(out) == 3
    assert out[1]["min_similar_conversation_id"] == 0 and out[2]["repeat_count"] == 0
    assert {"difficulty", "task_category", "response_length"} <= set(out[0])
    s = stats(out, magpie_filter(out))
    assert s["n"] == 3 and s["duplicate_rate"] == pytest.approx(1 / 3) and s["kept"] == 2


def test_write_jsonl_formats(tmp_path):
    rec = _rec(7, "Add 3 and 4.", "7", difficulty="easy")
    sharegpt = write_jsonl([rec], tmp_path / "a.jsonl")
    plain = write_jsonl([rec], tmp_path / "b.jsonl", fmt="plain")
    a = json.loads(sharegpt.read_text())
    assert a["conversations"] == [
        {"from": "human", "value": "Add 3 and 4."},
        {"from": "gpt", "value": "7"},
    ]
    assert a["difficulty"] == "easy"  # every tag kept
    assert json.loads(plain.read_text())["instruction"] == "Add 3 and 4."
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "b.jsonl"]  # no temp left
    with pytest.raises(UserError, match="format"):
        write_jsonl([rec], tmp_path / "c.jsonl", fmt="csv")
    assert not (tmp_path / "c.jsonl").exists()
