"""The claims' judges (their goalposts are claims.py constants) and the miniature's data."""

from __future__ import annotations

import random

import pytest

from paperlab.core.errors import UserError
from paperlab.papers.prompt_report.claims import (
    NON_INFERIORITY,
    PAPER,
    PromptReportConfig,
    at_least_as_good,
    best_of_six,
    powered,
    sc_powering,
)
from paperlab.papers.prompt_report.miniature import (
    known_names,
    make_facts,
    make_items,
    name_of,
    training_tasks,
)

POWERED = {"powering_acc": 0.8}


def m(gain, low, high, **kw):
    return {"gain": gain, "gain_ci_low": low, "gain_ci_high": high, **POWERED, **kw}


def test_at_least_as_good() -> None:
    judge = powered(at_least_as_good("a - b")).judge
    assert judge(m(0.1, 0.05, 0.2))[0] == "holds"
    assert judge(m(-0.01, -NON_INFERIORITY + 0.01, 0.02))[0] == "holds"
    assert judge(m(-0.02, -0.08, 0.03))[0] == "inconclusive"
    assert judge(m(-0.1, -0.15, -0.05))[0] == "fails"
    verdict, reason = judge({**m(0.3, 0.2, 0.4), "powering_acc": 0.3})
    assert verdict == "inconclusive" and "not powered" in reason


def test_sc_powering_and_best_of_six() -> None:
    sc = powered(at_least_as_good("sc"), sc_powering).judge
    ok = dict(single_sample_acc=0.6, sample_disagreement=0.4)
    assert sc(m(0.05, 0.01, 0.1, **ok))[0] == "holds"
    assert sc(m(0.05, 0.01, 0.1, single_sample_acc=0.6, sample_disagreement=0.0))[0] == (
        "inconclusive"
    )
    assert best_of_six(m(0.0, -0.05, 0.05))[0] == "holds"
    assert best_of_six(m(-0.03, -0.08, 0.02))[0] == "inconclusive"
    assert best_of_six(m(-0.1, -0.2, -0.01))[0] == "fails"


def test_config_validation_names_the_field() -> None:
    with pytest.raises(UserError, match="selector"):
        PAPER.make_config("default", {"selector": "psychic"})
    with pytest.raises(ValueError, match="known_rate"):
        PromptReportConfig(known_rate=1.5)


def test_miniature_training_examples() -> None:
    cfg = PAPER.make_config("tiny")
    facts = make_facts(cfg.n_facts, 0)
    known = known_names(facts, cfg.known_rate, 0)
    assert len(known) == round(cfg.known_rate * cfg.n_facts)
    items = make_items(facts, 2 * cfg.n_facts, seed=1)
    assert sorted(name_of(x) for x in items) == sorted(list(facts) * 2)
    assert all(x.options[x.answer] == facts[name_of(x)] for x in items)
    zero_shot, zero_cot, few, few_cot = (fn for fn, _ in training_tasks(cfg, 0))
    rng = random.Random(3)
    messages, reply = zero_cot(rng)
    name = messages[0]["content"].split("?")[0].removeprefix("What is the code of ")
    assert name in known and reply == f"{name}: {facts[name]}. The answer is {facts[name]}."
    for _ in range(20):  # a fact the reader does not know: the last exemplar is about it
        messages, reply = few(rng)
        blocks = messages[0]["content"].split("\n\n")
        asked = blocks[-1].split("?")[0]
        if asked.removeprefix("What is the code of ") not in known:
            assert blocks[-2].split("?")[0] == asked
        assert reply.startswith("The answer is ")
