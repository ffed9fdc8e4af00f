"""The evaluator recipe: graded items whose score is true by construction, a base pre-trained
once, evaluators fine-tuned from it (same parameter names and shapes), seeds that reproduce."""

from __future__ import annotations

import random

import pytest
import torch

from paperlab.core.artifacts import ArtifactCache
from paperlab.core.data.graded import (
    SCORES,
    SYSTEMS,
    GradedSystem,
    Question,
    grade,
    make_graded_items,
    read_int,
    response_with_score,
    sample_questions,
)
from paperlab.core.device import torch_threads
from paperlab.core.llm.evaluators import (
    EvaluatorBaseConfig,
    EvaluatorFamily,
    EvaluatorJob,
    FinetuneConfig,
    answer_task,
    base_codec,
    compare_task,
    digit_marks,
    finetune_evaluator,
    finetune_evaluators,
    in_share,
    pretrain_evaluator_base,
    pretrain_family_bases,
    same_architecture,
)

TINY_BASE = dict(dim=16, n_layers=1, n_heads=2, max_seq_len=160, steps=3, batch_size=4, warmup=1)
TINY_FT = FinetuneConfig(steps=3, batch_size=4, warmup=1)


def absolute_example(rng: random.Random):
    item = make_graded_items(1, seed=rng)[0]
    prompt = f"{item.instruction}\nResponse: {item.response}\nScore 1-5:"
    return [{"role": "user", "content": prompt}], f"ok [RESULT] {item.score}"


def relative_example(rng: random.Random):
    a, b = make_graded_items(2, seed=rng)
    return [{"role": "user", "content": f"A: {a.response} B: {b.response}"}], (
        "[RESULT] A" if a.score >= b.score else "[RESULT] B"
    )


@pytest.fixture(scope="module")
def base():
    with torch_threads(1):
        return pretrain_evaluator_base(EvaluatorBaseConfig(**TINY_BASE), seed=0)


# -- graded items -------------------------------------------------------------------------------


def test_grade_follows_the_rubric():
    assert grade("85", "85") == 5
    assert grade("85", "The answer is 085") == 5
    assert grade("85", "86") == 4 and grade("85", "84") == 4
    assert grade("85", "80") == 3 and grade("85", "94") == 3
    assert grade("85", "95") == 2 and grade("85", "185") == 2 and grade("85", "15") == 2
    assert grade("85", "no idea") == 1
    assert read_int("x -07 y") == "-7" and read_int("none") is None
    with pytest.raises(ValueError, match="reference"):
        grade("none", "85")


def test_responses_have_the_score_they_were_built_for():
    rng = random.Random(0)
    for q in sample_questions(300, seed=1):
        for score in SCORES:
            response = response_with_score(q, score, rng)
            assert grade(q.answer, response) == score
            assert read_int(response) is None or int(read_int(response)) >= 0


def test_graded_items_are_true_by_construction_and_seeded():
    items = make_graded_items(500, seed=3)
    assert items == make_graded_items(500, seed=3)
    assert items != make_graded_items(500, seed=4)
    for it in items:
        assert it.score == grade(it.reference, it.response)
        assert it.correct == (it.score == 5)
        assert it.reference == it.question.answer and it.instruction == it.question.question
        assert it.system in {s.name for s in SYSTEMS}
    assert {it.score for it in items} == set(SCORES)
    assert 0.25 < sum(it.correct for it in items) / len(items) < 0.6
    strong = [it.correct for it in items if it.system == "strong"]
    weak = [it.correct for it in items if it.system == "weak"]
    assert sum(strong) / len(strong) > sum(weak) / len(weak)


def test_questions_are_never_negative_and_fixed_questions_are_used():
    qs = sample_questions(200, seed=0, ops="-")
    assert all(q.value >= 0 and 10 <= q.a <= 99 and 10 <= q.b <= 99 for q in qs)
    fixed = [Question(12, 30, "+")]
    assert {it.question for it in make_graded_items(20, seed=0, questions=fixed)} == set(fixed)
    only = (GradedSystem("perfect", {5: 1.0}),)
    assert all(it.correct for it in make_graded_items(20, seed=0, systems=only))


def test_bad_arguments_name_the_field():
    with pytest.raises(ValueError, match="op"):
        Question(1, 2, "*")
    with pytest.raises(ValueError, match="negative"):
        Question(1, 2, "-")
    with pytest.raises(ValueError, match="digits"):
        sample_questions(3, digits=0)
    with pytest.raises(ValueError, match="n=-1"):
        make_graded_items(-1)
    with pytest.raises(ValueError, match="grade_probs"):
        GradedSystem("x", {6: 1.0})
    with pytest.raises(ValueError, match="data_share"):
        EvaluatorBaseConfig(data_share=0.0)
    with pytest.raises(ValueError, match="EvaluatorBaseConfig.steps"):
        EvaluatorBaseConfig(steps=0)
    with pytest.raises(ValueError, match="EvaluatorBaseConfig"):
        EvaluatorBaseConfig(dim=30, n_heads=4)
    with pytest.raises(ValueError, match="FinetuneConfig.lr"):
        FinetuneConfig(lr=0)
    with pytest.raises(ValueError, match="EvaluatorFamily.name"):
        EvaluatorFamily("")


# -- base tasks ---------------------------------------------------------------------------------


def test_data_share_is_a_fixed_subset_per_seed():
    qs = sample_questions(2000, seed=0)
    a = [in_share(q, 0.5, seed=1) for q in qs]
    assert a == [in_share(q, 0.5, seed=1) for q in qs]
    assert a != [in_share(q, 0.5, seed=2) for q in qs]
    assert 0.45 < sum(a) / len(a) < 0.55
    assert all(in_share(q, 1.0, seed=1) for q in qs)
    family = EvaluatorFamily("f", EvaluatorBaseConfig(data_share=0.5), seed=1)
    assert [family.knows(q) for q in qs] == a


def test_base_tasks_give_right_replies():
    rng = random.Random(0)
    fn = answer_task(share=0.3, seed=5)
    for _ in range(50):
        messages, reply = fn(rng)
        a, op, b = messages[0]["content"].removeprefix("What is ").rstrip("?").partition("+")
        if not op:
            a, op, b = messages[0]["content"].removeprefix("What is ").rstrip("?").partition("-")
        q = Question(int(a), int(b), op)
        assert reply == q.answer and in_share(q, 0.3, seed=5)
    compare = compare_task()
    replies = []
    for _ in range(200):
        messages, reply = compare(rng)
        y, x = messages[0]["content"].removeprefix("Compare ").rstrip(".").split(" and ")
        assert reply == f"{digit_marks(y, x)} {x == y}"
        replies.append(reply)
    assert 0.35 < sum(r.endswith("True") for r in replies) / len(replies) < 0.65


def test_digit_marks_compare_digit_by_digit_units_first():
    assert digit_marks("86", "85") == "65x 88= 00="
    assert digit_marks("85", "85") == "55= 88= 00="
    assert digit_marks("185", "85") == "55= 88= 10x"
    assert digit_marks("no idea", "7") == "-7x -0x -0x"
    assert digit_marks("1234", "34", width=4) == "44= 33= 20x 10x"
    with pytest.raises(ValueError, match="reference"):
        digit_marks("1", "none")
    with pytest.raises(ValueError, match="width"):
        digit_marks("1", "1", width=0)


# -- training -----------------------------------------------------------------------------------


def test_finetuning_keeps_the_base_architecture_and_leaves_the_base_alone(base):
    before = {k: v.clone() for k, v in base.state_dict().items()}
    with torch_threads(1):
        absolute = finetune_evaluator(base, [(absolute_example, 1.0)], TINY_FT, seed=0)
        relative = finetune_evaluator(base, [(relative_example, 1.0)], TINY_FT, seed=1)
    assert same_architecture(absolute, base) and same_architecture(relative, base)
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())
    sa, sr = absolute.state_dict(), relative.state_dict()
    assert any(not torch.equal(sa[k], before[k]) for k in sa)
    merged = {k: (sa[k] + sr[k]) / 2 for k in sa}  # what a weight merge needs: same names
    absolute.load_state_dict(merged)


def test_seeds_reproduce(base):
    cfg = EvaluatorBaseConfig(**TINY_BASE)
    with torch_threads(1):
        again = pretrain_evaluator_base(cfg, seed=0)
        other = pretrain_evaluator_base(cfg, seed=1)
        a = finetune_evaluator(base, [(absolute_example, 1.0)], TINY_FT, seed=2)
        b = finetune_evaluator(base, [(absolute_example, 1.0)], TINY_FT, seed=2)
    sd = base.state_dict()
    assert all(torch.equal(sd[k], v) for k, v in again.state_dict().items())
    assert any(not torch.equal(sd[k], v) for k, v in other.state_dict().items())
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())


def test_parallel_training_matches_one_at_a_time(base):
    cfg = EvaluatorBaseConfig(**TINY_BASE)
    families = [EvaluatorFamily("f0", cfg, seed=0), EvaluatorFamily("f1", cfg, seed=1)]
    bases = pretrain_family_bases(families, workers=2)
    assert all(torch.equal(base.state_dict()[k], v) for k, v in bases["f0"].state_dict().items())
    jobs = [
        EvaluatorJob(f.name, bases[f.name], [(absolute_example, 1.0)], TINY_FT, seed=7)
        for f in families
    ]
    tuned = finetune_evaluators(jobs, workers=2)
    with torch_threads(1):
        alone = finetune_evaluator(bases["f1"], [(absolute_example, 1.0)], TINY_FT, seed=7)
    assert all(torch.equal(alone.state_dict()[k], v) for k, v in tuned["f1"].state_dict().items())
    with pytest.raises(ValueError, match="distinct"):
        pretrain_family_bases([families[0], families[0]])
    with pytest.raises(ValueError, match="tasks"):
        finetune_evaluator(base, [], TINY_FT, seed=0)
    with pytest.raises(ValueError, match="base"):
        finetune_evaluator(torch.nn.Linear(2, 2), [(absolute_example, 1.0)], TINY_FT, seed=0)


def test_base_codec_round_trips_through_the_disk_cache(base, tmp_path):
    cfg = EvaluatorBaseConfig(**TINY_BASE)
    for run in range(2):
        with ArtifactCache(tmp_path) as cache:
            got, info = cache.get(
                "base", (cfg, 0), lambda: (base, {"steps": 3}), codec=base_codec(cfg)
            )
            assert info == {"steps": 3} and cache.hits["disk"] == run
            assert all(torch.equal(base.state_dict()[k], v) for k, v in got.state_dict().items())
