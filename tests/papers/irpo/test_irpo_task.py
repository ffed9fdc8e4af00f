"""The chain-arithmetic task and its tokenizer."""

from __future__ import annotations

import pytest

from paperlab.papers.irpo import TOKENIZER, ChainProblem, final_answer, is_correct, sample_chains


def test_gold_solution_is_correct_and_steps_reduce_left_to_right():
    p = ChainProblem((47, 8, 5, 9), ("+", "-", "+"))
    assert p.prompt == "47+8-5+9:"
    assert p.solution == "47+8=55,55-5=50,50+9=59#59"
    assert p.answer == "59"
    assert is_correct(p, p.solution)
    assert not is_correct(p, "47+8=55,55-5=50,50+9=58#58")
    assert is_correct(p, "47+8=54,54-5=49,49+9=59#59")  # only the final answer is checked


@pytest.mark.parametrize(
    "text, answer",
    [("1+2=3#3", "3"), ("1+2=3#", None), ("1+2=3", None), ("#4#12", "12"), ("#1,2", None)],
)
def test_final_answer(text, answer):
    assert final_answer(text) == answer


def test_sample_chains_is_seeded_and_never_negative():
    a, b = sample_chains(200, seed=3), sample_chains(200, seed=3)
    assert a == b and a != sample_chains(200, seed=4)
    for p in a:
        assert all(r >= 0 for *_, r in p.steps())
        assert len(p.numbers) == 4


def test_tokenizer_round_trip_and_errors():
    p = sample_chains(1, seed=0)[0]
    ids = TOKENIZER.encode(p.prompt + p.solution)
    assert TOKENIZER.decode(ids) == p.prompt + p.solution
    assert max(ids) < TOKENIZER.vocab_size
    assert TOKENIZER.decode([*ids[:3], TOKENIZER.eos_id, *ids[3:]]) == p.prompt[:3]
    with pytest.raises(ValueError, match="'x'"):
        TOKENIZER.encode("1x2")


def test_problem_validation():
    with pytest.raises(ValueError, match="ops"):
        ChainProblem((1, 2), ("*",))
    with pytest.raises(ValueError, match="numbers"):
        ChainProblem((1,), ())
