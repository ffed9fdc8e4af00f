"""The techniques run over real HTTP against `paperlab serve` (a random-init tiny chat model:
its replies are noise, so these tests check the data flow: which calls are made, with which
prompts, how the answers are combined), plus exemplar selection and the data readers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from paperlab.core.errors import UserError
from paperlab.core.llama import Llama, LlamaConfig
from paperlab.core.llm.client import LLMClient
from paperlab.core.llm.local import LocalServer
from paperlab.core.llm.tiny import save_chat_model
from paperlab.core.mc import make_mc_items
from paperlab.papers.prompt_report import (
    ChainOfVerification,
    Endpoint,
    KNNSelector,
    LeastToMost,
    RandomSelector,
    Role,
    SelfCalibration,
    SelfConsistency,
    SelfRefine,
    StepBack,
    UniversalSelfConsistency,
    ZeroShot,
    ZeroShotCoT,
    load_items,
    make_technique,
    read_mc_csv,
    results_table,
    run_case_study,
)

ITEMS = make_mc_items(6, seed=0, subjects=["addition"])


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=259, dim=32, n_layers=1, n_heads=2, max_seq_len=1024)
    root = tmp_path_factory.mktemp("stub")
    with LocalServer([save_chat_model(Llama(cfg), root / "stub", "stub")]) as server:
        client = LLMClient(server.config(max_concurrency=8))
        yield Endpoint(client, "stub", max_tokens=6, seed=0)


def run(ep, technique, item=ITEMS[0]):
    return ep.client.run(technique.run(ep, item))


def test_single_call_records_its_prompt_and_reply(endpoint) -> None:
    t = Role(ZeroShot(fmt="mmlu"))
    out = run(endpoint, t)
    assert len(out.calls) == 1 and out.technique == "role+zero-shot"
    assert out.calls[0].messages == t.render(ITEMS[0])
    assert out.calls[0].temperature == 0.0 and out.answer == out.calls[0].parsed
    assert run(endpoint, t).calls[0].reply == out.calls[0].reply  # greedy: deterministic


def test_self_consistency_samples_and_votes(endpoint) -> None:
    sc = SelfConsistency(ZeroShotCoT(), n=3, temperature=0.5)
    out = run(endpoint, sc)
    assert [c.sample for c in out.calls] == [0, 1, 2]
    assert all(c.temperature == 0.5 for c in out.calls)
    votes = [a for a in out.info["samples"] if a is not None]
    assert (
        out.answer is None if not votes else votes.count(out.answer) == max(map(votes.count, votes))
    )
    with pytest.raises(ValueError, match="temperature"):
        SelfConsistency(ZeroShot(), temperature=0.0)


def test_multi_step_techniques_chain_their_replies(endpoint) -> None:
    item = ITEMS[1]
    sb = run(endpoint, StepBack(), item)
    assert [c.step for c in sb.calls] == ["step-back", "answer"]
    assert sb.calls[1].messages == StepBack().render_answer(item, sb.calls[0].reply)

    l2m = run(endpoint, LeastToMost(max_steps=2), item)
    steps = [c.step for c in l2m.calls]
    assert steps[0] == "decompose" and steps[-1] == "answer"
    assert steps.count("solve") == l2m.info["sub_questions"] <= 2

    usc = run(endpoint, UniversalSelfConsistency(ZeroShotCoT(), n=2), item)
    assert [c.step for c in usc.calls] == ["answer", "answer", "select"]
    replies = [c.reply for c in usc.calls[:2]]
    assert usc.calls[2].messages == UniversalSelfConsistency(ZeroShotCoT(), n=2).render_select(
        item, replies
    )

    refine = run(endpoint, SelfRefine(iterations=1), item)
    assert [c.step for c in refine.calls][:2] == ["answer", "feedback"]
    cove = run(endpoint, ChainOfVerification(max_questions=2), item)
    assert cove.calls[1].step == "plan" and cove.calls[-1].step == "answer"
    assert len(cove.calls) == 3 + cove.info["verifications"]
    cal = run(endpoint, SelfCalibration(), item)
    assert cal.answer == cal.calls[0].parsed
    assert len(cal.calls) == (1 if cal.answer is None else 2)


def test_case_study_runner_scores_every_item(endpoint) -> None:
    selector = RandomSelector(make_mc_items(10, seed=5, prefix="pool"), 2)
    techniques = {n: make_technique(n, selector) for n in ("zero-shot", "few-shot-cot+sc")}
    res = endpoint.client.run(run_case_study(endpoint, ITEMS, techniques, concurrency=3))
    assert res["zero-shot"].accuracy.n == len(ITEMS) and res["zero-shot"].calls == len(ITEMS)
    assert res["few-shot-cot+sc"].calls == 3 * len(ITEMS)
    table = results_table(res)
    assert table.splitlines()[2].startswith("| zero-shot |") and "0.627" in table
    with pytest.raises(UserError, match="unknown technique"):
        make_technique("telepathy")
    with pytest.raises(UserError, match="exemplars"):
        make_technique("few-shot")


def test_random_selection_is_seeded_and_excludes_the_item() -> None:
    pool = make_mc_items(20, seed=1)
    sel = RandomSelector(pool, 3, seed=4)
    assert sel.select(pool[0]) == sel.select(pool[0]) and pool[0] not in sel.select(pool[0])
    assert sel.select(pool[0]) != RandomSelector(pool, 3, seed=5).select(pool[0])
    with pytest.raises(ValueError, match="k"):
        RandomSelector(pool, 0)


def test_knn_matches_sklearn_nearest_neighbours() -> None:
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(0)
    table = {}

    def embed(texts):  # a fixed random embedding per text, unit norm
        for t in texts:
            if t not in table:
                v = rng.normal(size=8)
                table[t] = v / np.linalg.norm(v)
        return np.stack([table[t] for t in texts])

    pool = make_mc_items(30, seed=2)
    knn = KNNSelector(pool, 4, embed=embed)
    query = make_mc_items(1, seed=9)[0]
    nn = NearestNeighbors(n_neighbors=4, metric="cosine").fit(knn.vectors)
    _, idx = nn.kneighbors(embed([KNNSelector.text_of(query)]))
    assert knn.select(query) == [pool[i] for i in reversed(idx[0])]


def test_csv_reader_reports_rows(tmp_path) -> None:
    good = tmp_path / "astronomy_test.csv"
    good.write_text('"What is 1+1?",1,2,3,4,B\nshort,row,C\n"Pick",a,b,c,d,a\n')
    report = read_mc_csv(good)
    assert [i.answer for i in report.items] == [1, 0] and report.items[0].subject == "astronomy"
    assert report.skipped == ["row 2: 3 columns, need question, A, B, C, D, answer"]
    bad = tmp_path / "bad.csv"
    bad.write_text('"Q1",1,2,3,4,A\n"Q2",1,2,3,4,E\n')
    with pytest.raises(UserError, match=r"bad.csv: row 2: unknown answer label 'E'"):
        read_mc_csv(bad)
    jl = tmp_path / "items.jsonl"
    jl.write_text(
        json.dumps({"question": "q", "options": ["1", "2", "3", "4"], "answer": "C"})
        + "\n"
        + json.dumps({"question": "q", "options": ["1", "2"], "answer": 0})
        + "\n"
    )
    report = load_items(jl)
    assert len(report.items) == 1 and len(report.skipped) == 1
    with pytest.raises(UserError, match="format"):
        load_items(tmp_path / "x.parquet")
