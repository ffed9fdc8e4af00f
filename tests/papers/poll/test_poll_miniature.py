"""PoLL's miniature world: judge replies follow the rubric, evaluated questions are held out
from every family's training, families differ in size, share and seed."""

from __future__ import annotations

import random

from paperlab.core.data.graded import grade, make_graded_items
from paperlab.papers.poll.claims import PoLLClaimsConfig
from paperlab.papers.poll.miniature import (
    evaluation_items,
    families,
    held_out,
    judge_reply,
    judge_task,
)
from paperlab.papers.poll.prompts import parse_verdict


def test_judge_reply_ends_with_the_true_verdict():
    for item in make_graded_items(200, seed=0):
        reply = judge_reply(item)
        assert parse_verdict(reply) is item.correct
        assert ("x" not in reply) is item.correct


def test_evaluated_questions_are_held_out_and_never_trained_on():
    items, questions = evaluation_items(50, 20, seed=0)
    assert len(items) == 50 and len(questions) == 20
    assert all(held_out(it.question) for it in items) and all(held_out(q) for q in questions)
    assert all(it.score == grade(it.reference, it.response) for it in items)
    assert evaluation_items(50, 20, seed=0) == (items, questions)
    fam = families(PoLLClaimsConfig())[0]
    example = judge_task(fam)
    rng = random.Random(0)
    for _ in range(100):
        messages, reply = example(rng)
        question = messages[0]["content"].split("\n")[0].removeprefix("Question: ")
        assert question not in {it.instruction for it in items}
        assert reply.endswith(("True", "False"))


def test_families_differ_in_size_share_and_seed():
    fams = families(PoLLClaimsConfig())
    assert [f.name for f in fams] == ["f0", "f1", "f2", "big"]
    assert len({f.seed for f in fams}) == 4
    assert len({(f.base.dim, f.base.n_layers) for f in fams}) >= 3
    assert fams[-1].base.dim > max(f.base.dim for f in fams[:-1])
    assert fams[-1].base.data_share > fams[0].base.data_share
