"""The McEval harness on our own problems, for real: every language with a toolchain here
compiles and runs canonical solutions (which must pass) and wrong variants (which must fail)
in the sandbox. Languages whose toolchain is missing are skipped with the reason."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from paperlab.claims import UserError
from paperlab.cli import main
from paperlab.papers.mceval import execute, extract_code, get_language, pass_at_k, summarize
from paperlab.papers.mceval.harness import Sample, evaluate_samples
from paperlab.papers.mceval.languages import LANGUAGES
from paperlab.papers.mceval.problems import languages_with_problems, problems, solutions

PER_LANGUAGE = 4  # problems per language in the suite (claims run all 20)


def test_every_problem_file_covers_every_problem_and_its_wrong_edits_apply():
    assert len(problems()) >= 20
    langs = languages_with_problems()
    assert len(langs) >= 12, langs
    for key in langs:
        assert key in LANGUAGES, f"{key}.toml names no language of the spec table"
        sols = solutions(key)
        assert set(sols) == set(problems()), f"{key}: missing {set(problems()) - set(sols)}"
        for s in sols.values():
            assert s.wrong, f"{key}/{s.problem}: no wrong variant"
            for w in s.wrong_variants():  # each edit applies exactly once
                assert w != s.solution


@pytest.mark.parametrize("key", languages_with_problems())
def test_canonical_pass_and_wrong_variants_fail(key: str):
    spec = get_language(key)
    if why := spec.why_missing():
        pytest.skip(f"{spec.name}: {why}")
    for s in list(solutions(key).values())[:PER_LANGUAGE]:
        ex = execute(spec, s.program())
        assert ex.passed, f"{key}/{s.problem}: {ex.status}: {ex.detail}"
        assert "netns" in ex.isolation  # the program really ran without network
        for i, wrong in enumerate(s.wrong_variants()):
            ex = execute(spec, s.program(wrong))
            assert not ex.passed, f"{key}/{s.problem}: wrong variant {i} passed"


@pytest.mark.parametrize(
    ("source", "statuses"),
    [
        ("while True:\n    pass\n", {"timeout", "signal"}),
        ("raise SystemExit(3)\n", {"error"}),
        ("import os\nos.kill(os.getpid(), 11)\n", {"signal"}),
        ("print('x' * 10_000_000)\n", {"output_limit"}),
        ("", {"no_code"}),
    ],
)
def test_timeouts_crashes_and_limits_fail(source: str, statuses: set[str]):
    from paperlab.core.sandbox import Limits

    ex = execute(get_language("python"), source, run_limits=Limits(wall_s=1.5, cpu_s=1.5))
    assert not ex.passed
    assert ex.status in statuses, (ex.status, ex.detail)


def test_compile_error_is_reported_as_such():
    ex = execute(get_language("c"), "int main(void) { return x; }\n")
    assert (ex.passed, ex.status, ex.stage) == (False, "compile_error", "compile")
    assert "x" in ex.detail


def test_missing_toolchain_is_a_failure_with_the_reason():
    spec = next((s for s in LANGUAGES.values() if s.executable and s.missing_tools()), None)
    if spec is None:
        pytest.skip("every toolchain is installed here")
    ex = execute(spec, "anything")
    assert (ex.passed, ex.status) == (False, "toolchain_missing")
    assert ex.detail == spec.why_missing() != ""


def test_extract_code_prefers_the_language_block_and_never_takes_another_language():
    py = get_language("python")
    answer = "Here:\n```rust\nfn main() {}\n```\nand\n```python\ndef f():\n    return 1\n```\n"
    assert extract_code(answer, py) == "def f():\n    return 1\n"
    assert extract_code("```\nx = 1\n```", py) == "x = 1\n"
    assert extract_code("```rust\nfn main() {}\n```", py) == ""
    assert extract_code("def f(): pass", py) == "def f(): pass\n"
    assert extract_code("~~~py\nprint(1)\n~~~", py) == "print(1)\n"


def test_pass_at_k_matches_the_definition():
    # 1 - C(n-c, k) / C(n, k)
    for n, c, k in [(10, 3, 1), (10, 3, 5), (5, 0, 2), (5, 5, 3), (20, 1, 10)]:
        want = 1 - math.comb(n - c, k) / math.comb(n, k)
        assert pass_at_k(n, c, k) == pytest.approx(want)
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_evaluate_samples_writes_each_result_and_resumes(tmp_path: Path):
    s = solutions("python")["gcd"]
    samples = [
        Sample("gcd#0", "gcd", "python", s.solution, s.test),
        Sample("gcd#1", "gcd", "python", s.wrong_variants()[0], s.test),
    ]
    out = tmp_path / "r.jsonl"
    records = evaluate_samples(samples[:1], out, workers=2, progress=False)
    assert [r["passed"] for r in records] == [True]
    with pytest.raises(UserError):  # an existing output needs --resume
        evaluate_samples(samples, out, progress=False)
    records = evaluate_samples(samples, out, workers=2, resume=True, progress=False)
    assert sorted(r["id"] for r in records) == ["gcd#0", "gcd#1"]  # nothing redone twice
    table = summarize(records)
    assert table["python"]["pass@1"] == pytest.approx(0.5)


def test_cli_run_on_official_format_and_doctor(tmp_path: Path, capsys):
    s = solutions("python")["factorial"]
    record = {
        "task_id": "Python/10",
        "prompt": "",
        "canonical_solution": s.solution,
        "test": s.test,
        "entry_point": "factorial",
        "signature": "",
        "docstring": "",
        "instruction": "",
        "raw_generation": [f"```python\n{s.solution}```", ""],
    }
    src = tmp_path / "Python.jsonl"
    src.write_text(json.dumps(record) + "\n")
    out = tmp_path / "results.jsonl"
    assert main(["mceval", "run", str(src), "--out", str(out), "--no-progress"]) == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted((r["passed"], r["status"]) for r in lines) == [
        (False, "no_code"),
        (True, "passed"),
    ]
    assert "50.0%" in capsys.readouterr().out
    assert main(["mceval", "doctor"]) == 0
    shown = capsys.readouterr().out
    for spec in LANGUAGES.values():  # every language, with its real status
        assert spec.name in shown
    assert "netns" in shown
