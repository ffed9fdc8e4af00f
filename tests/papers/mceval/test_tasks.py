"""McEval task records: building, completion masks, answers -> samples, and asking a real
`paperlab serve` (random-init tiny model) through `LLMClient`."""

from __future__ import annotations

import asyncio
import json

import pytest
import torch

from paperlab.claims import UserError
from paperlab.core.llama import Llama, LlamaConfig
from paperlab.core.llm.client import LLMClient
from paperlab.core.llm.local import LocalServer
from paperlab.core.llm.tiny import save_chat_model
from paperlab.papers.mceval import tasks
from paperlab.papers.mceval.harness import execute
from paperlab.papers.mceval.languages import get_language
from paperlab.papers.mceval.problems import languages_with_problems, solutions
from paperlab.papers.mceval.tasks import (
    COMPLETION_KINDS,
    FILL,
    KINDS,
    assemble,
    build_tasks,
    generate,
    generate_file,
    samples_from_records,
)

LANGS = languages_with_problems()
needs_python = pytest.mark.skipif("python" not in LANGS, reason="problems/python.toml not written")


def fenced(code: str, tag: str = "python") -> str:
    return f"Here you go:\n\n```{tag}\n{code}\n```\n\nThis works because..."


# -- build_tasks ------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGS)
def test_build_tasks_counts_ids_and_fields(language):
    records = build_tasks([language], KINDS)
    n = len(solutions(language))
    assert len(records) == n * len(KINDS)
    ids = [r["task_id"] for r in records]
    assert len(set(ids)) == len(ids)
    spec = get_language(language)
    for r in records:
        assert get_language(r["task_id"].split("/")[0]) is spec  # McEval's name resolves
        assert r["language"] == language and r["task"] in KINDS
        assert r["canonical_solution"] == solutions(language)[r["problem"]].solution
        assert r["test"] and r["instruction"] and r["entry_point"] == r["problem"]
        if r["task"] == "generation":
            assert r["task_id"].count("/") == 1
            assert r["docstring"] in r["instruction"] and r["signature"] in r["instruction"]
    assert {r["task_id"] for r in records if r["task"] == "completion_span"} == {
        i + "/span" for i in ids if i.count("/") == 1
    }
    assert len(build_tasks([language])) == n  # default: generation only


def test_build_tasks_rejects_unknown_kind_and_language():
    with pytest.raises(UserError, match="unknown task kind"):
        build_tasks(["python"], ["generation", "haiku"])
    with pytest.raises(UserError, match="unknown language"):
        build_tasks(["klingon"])


def test_masks_are_deterministic_per_seed():
    a = build_tasks(LANGS, COMPLETION_KINDS, seed=0)
    assert a == build_tasks(LANGS, COMPLETION_KINDS, seed=0)
    b = build_tasks(LANGS, COMPLETION_KINDS, seed=1)
    assert [r["masked"] for r in a] != [r["masked"] for r in b]


# -- completion masks -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", COMPLETION_KINDS)
@pytest.mark.parametrize("language", LANGS)
def test_masking_reassembles_to_the_canonical_solution(language, kind):
    records = build_tasks([language], [kind])
    tag = tasks.fence_tag(get_language(language))
    lengths = []
    for r in records:
        code, masked, head = r["canonical_solution"], r["masked"], r["prompt"]
        assert r["prefix"] + FILL + r["suffix"] == head  # the prompt shows the gap
        assert head.count(FILL) == 1 and head.strip("\n") in r["instruction"]
        assert assemble(r, masked) == code
        assert masked.strip() and len(r["prefix"]) >= len(tasks.code_head(code, r["problem"]))
        if kind == "completion_span":
            assert "\n" not in masked and masked == masked.strip()
            line_start = r["prefix"].rfind("\n") + 1
            line = (r["prefix"] + masked + r["suffix"])[line_start:].split("\n")[0]
            assert masked != line.strip()  # a span is never the whole line (here)
        else:
            lengths.append(masked.count("\n") + 1)
            indent = r["prefix"][r["prefix"].rfind("\n") + 1 :]
            assert indent.strip() == ""  # the gap starts at a line's indentation
            # a model that copies the lines with their original indentation still fits
            answer = fenced(indent + masked.replace("\n", "\n" + indent), tag)
            [sample] = samples_from_records([{**r, "raw_generation": [answer]}])
            assert sample.code == code
        # the answer's fence is stripped; the fill lands in place
        [sample] = samples_from_records([{**r, "raw_generation": [fenced(masked, tag)]}])
        assert sample.code == code
    if kind == "completion_single_line":
        assert set(lengths) == {1}
    if kind == "completion_multi_line":
        assert max(lengths) <= 4 and sum(n >= 2 for n in lengths) >= len(lengths) // 2


def test_mask_span_and_inline_backticks():
    r = {
        "task": "completion_span",
        "prefix": "x = a ",
        "suffix": " b\n",
        "task_id": "Python/9/span",
        "language": "python",
        "test": "",
    }
    assert tasks.code_of_answer(r, get_language("python"), "`+`") == "x = a + b\n"
    assert tasks.code_of_answer(r, get_language("python"), "```\n+\n```") == "x = a + b\n"
    assert tasks.code_of_answer(r, get_language("python"), "") == ""  # no code, no program


@needs_python
def test_reassembled_programs_pass_and_a_wrong_fill_fails():
    records = [r for r in build_tasks(["python"], KINDS) if r["problem"] in ("gcd", "fizzbuzz")]
    samples = samples_from_records(records, use_canonical=True)
    assert len(samples) == len(records)
    for s in samples:
        ex = execute(get_language("python"), s.program())
        assert ex.passed, (s.id, ex.status, ex.detail)
    span = next(r for r in records if r["task"] == "completion_span")
    [wrong] = samples_from_records([{**span, "raw_generation": ["```python\n)(\n```"]}])
    assert not execute(get_language("python"), wrong.program()).passed


# -- samples_from_records ---------------------------------------------------------------------


def test_samples_from_generation_answers():
    rec = {
        "task_id": "Python/1",
        "test": "assert f() == 1\n",
        "raw_generation": [
            fenced("def f():\n    return 1"),
            "def f():\n    return 1\n",  # bare code
            fenced("fn f() -> i32 { 1 }", "rust"),  # another language: no code
            "",
        ],
    }
    samples = samples_from_records([rec])
    assert [s.id for s in samples] == [f"Python/1#{i}" for i in range(4)]
    assert {s.language for s in samples} == {"python"} and samples[0].test == rec["test"]
    assert samples[0].code.strip() == samples[1].code.strip() == "def f():\n    return 1"
    assert samples[2].code == samples[3].code == ""
    # McEval's own names in the task_id (no "language" field)
    cpp = samples_from_records([{"task_id": "CPP/7", "test": "", "raw_generation": ["x"]}])
    lisp = samples_from_records([{"task_id": "CommonLisp/2", "test": "", "raw_generation": []}])
    assert cpp[0].language == "cpp" and lisp == []


@pytest.mark.parametrize(
    ("record", "use_canonical", "message"),
    [
        ({"task_id": "Python/1", "raw_generation": ["x"]}, False, "'Python/1'.*no 'test'"),
        (
            {"task_id": "Klingon/1", "test": "", "raw_generation": []},
            False,
            "Klingon/1.*unknown language",
        ),
        ({"task_id": "Python/1", "test": ""}, False, "'Python/1'.*raw_generation"),
        ({"task_id": "Python/1", "test": ""}, True, "'Python/1'.*canonical_solution"),
        (
            {
                "task_id": "Python/1/span",
                "task": "completion_span",
                "test": "",
                "raw_generation": [],
            },
            False,
            "prefix",
        ),
        ({"task_id": "Python/1", "task": "poem", "test": "", "raw_generation": []}, False, "poem"),
        ({"test": "", "raw_generation": []}, False, "#1.*task_id"),
    ],
)
def test_malformed_record_is_one_user_error(record, use_canonical, message):
    with pytest.raises(UserError, match=message):
        samples_from_records([record], use_canonical=use_canonical)


# -- asking a model over real HTTP ------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    torch.manual_seed(0)
    model = Llama(
        LlamaConfig(vocab_size=259, dim=32, n_layers=1, n_heads=2, max_seq_len=1536, multiple_of=32)
    )
    path = save_chat_model(model, tmp_path_factory.mktemp("mceval-tiny") / "coder", "coder")
    with LocalServer([path]) as srv:
        yield srv


class SpyClient(LLMClient):
    """The real client, remembering every conversation it sends."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.sent: list[str] = []

    async def chat(self, model, messages, **kw):
        self.sent.append(messages[-1]["content"])
        return await super().chat(model, messages, **kw)


def chat_calls(server) -> int:
    return server.stats().get("/v1/chat/completions", 0)


def small_task_set() -> list[dict]:
    records = build_tasks(["python"], KINDS)
    return [r for r in records if r["problem"] == "gcd"]  # one record per kind


@needs_python
def test_generate_fills_raw_generation_and_chains_explanations(server):
    records = small_task_set()
    client = SpyClient(server.config())
    before = chat_calls(server)
    out = asyncio.run(generate(client, "coder", records, samples=2, max_tokens=8))
    assert [r["task_id"] for r in out] == [r["task_id"] for r in records]
    assert all(len(r["raw_generation"]) == 2 for r in out)
    assert all(isinstance(a, str) for r in out for a in r["raw_generation"])
    assert "raw_generation" not in records[0]  # the inputs are not modified
    # explanation: two calls per sample (explain, then regenerate); others: one
    assert chat_calls(server) - before == 2 * (len(records) - 1) + 2 * 2
    assert client.usage.total.calls == 2 * (len(records) - 1) + 2 * 2
    [expl] = [r for r in out if r["task"] == "explanation"]
    assert len(expl["explanation"]) == 2
    regen = [p for p in client.sent if p.startswith("Write a function named `gcd` in Python from")]
    assert len(regen) == 2
    for prompt in regen:  # the second step sees the explanation, not the code
        assert "a, b = b, a % b" not in prompt
        assert any(tasks._without_code(e).strip() in prompt for e in expl["explanation"])
    assert len(samples_from_records(out)) == 2 * len(out)


@needs_python
def test_generate_file_writes_as_it_goes_and_resumes(server, tmp_path):
    records = small_task_set()[:3]
    src, dst = tmp_path / "tasks.jsonl", tmp_path / "gen.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    client = LLMClient(server.config())

    def run(**kw):
        return asyncio.run(
            generate_file(client, "coder", src, dst, max_tokens=4, progress=False, **kw)
        )

    first = run()
    assert sorted(r["task_id"] for r in first) == sorted(r["task_id"] for r in records)
    with pytest.raises(UserError, match="exists"):
        run()
    # a killed run: one complete line and half of the next
    lines = dst.read_text().splitlines(keepends=True)
    dst.write_text(lines[0] + lines[1][:20])
    before = chat_calls(server)
    again = run(resume=True)
    assert chat_calls(server) - before == len(records) - 1  # only the missing ones
    assert sorted(r["task_id"] for r in again) == sorted(r["task_id"] for r in records)
    assert all(len(r["raw_generation"]) == 1 for r in again)
