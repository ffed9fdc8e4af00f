"""One test over the whole registry: every implemented paper imports, documents itself, runs
its tiny claims end to end, and gets verdicts computed from what was measured."""

from __future__ import annotations

import ast
import importlib
import json
from pathlib import Path

import pytest

from paperlab import catalog
from paperlab.claims import VERDICTS
from paperlab.runner import plan_run, run_plans

IMPLEMENTED = catalog.implemented()
SRC = Path(__file__).resolve().parents[1] / "src" / "paperlab" / "papers"


def test_some_paper_is_implemented():
    assert "kan" in IMPLEMENTED


@pytest.mark.parametrize("slug", IMPLEMENTED)
def test_paper_package_is_complete(slug: str):
    module = importlib.import_module(f"paperlab.papers.{slug}")
    doc = module.__doc__ or ""
    assert catalog.PAPERS[slug].arxiv in doc, "docstring names the arXiv id"
    readme = (SRC / slug / "README.md").read_text()
    assert "Differences from the paper" in readme and "@" in readme  # BibTeX entry
    paper = catalog.load_paper(slug)
    assert set(paper.presets) >= {"tiny", "default", "full"}
    ids = [c.id for c in paper.claims]
    assert len(ids) == len(set(ids)) and ids


@pytest.mark.parametrize("slug", IMPLEMENTED)
def test_tiny_claims_yield_measured_verdicts(slug: str, tmp_path: Path):
    plans = plan_run([slug], scale="tiny")
    results, errors, interrupted = run_plans(
        plans, scale="tiny", seed=0, device="cpu", out=tmp_path, progress=False
    )
    assert not errors, errors
    assert not interrupted
    paper = catalog.load_paper(slug)
    assert [r.claim_id for r in results] == [c.id for c in paper.claims]
    for r in results:
        assert r.verdict in VERDICTS
        if r.verdict == "skipped":
            assert r.reason
            continue
        assert r.measured, f"{r.claim_id}: nothing measured"
        # the verdict is the criterion applied to this run's measurements
        assert paper.claim(r.claim_id).judged_by.judge(r.measured)[0] == r.verdict
        stored = json.loads(next(tmp_path.glob(f"{slug}/{r.claim_id}/*/result.json")).read_text())
        assert stored["verdict"] == r.verdict and stored["measured"] == r.measured


# -- the shape every paper shares ----------------------------------------------------------------

ROOT = SRC.parents[2]
CLAIMS_MAX_LINES = 300  # a declaration: config, presets, criteria, PAPER (about 150-250 lines)
# functools caches allowed in paper packages: read-only package data, never trained state
STATIC_CACHES = {
    ("mceval/problems/__init__.py", "problems"),
    ("mceval/problems/__init__.py", "solutions"),
}


@pytest.mark.parametrize("slug", IMPLEMENTED)
def test_claims_module_is_a_declaration(slug: str):
    path = SRC / slug / "claims.py"
    lines = path.read_text().splitlines()
    assert len(lines) <= CLAIMS_MAX_LINES, (
        f"{slug}/claims.py has {len(lines)} lines: the runs belong in experiments.py"
    )
    assert catalog.claim_ids(slug) == [c.id for c in catalog.load_paper(slug).claims]


def _module_caches(path: Path) -> list[str]:
    """Module-level state a paper could keep trained things in: empty mutable containers
    assigned at module level, and functools caches on functions."""
    tree = ast.parse(path.read_text())
    found = []
    rel = path.relative_to(SRC).as_posix()
    for node in tree.body:
        value = (
            getattr(node, "value", None) if isinstance(node, ast.Assign | ast.AnnAssign) else None
        )
        empty = (isinstance(value, ast.Dict) and not value.keys) or (
            isinstance(value, ast.List | ast.Set) and not value.elts
        )
        called = isinstance(value, ast.Call) and ast.unparse(value.func) in {
            "dict",
            "list",
            "set",
            "OrderedDict",
            "defaultdict",
            "collections.OrderedDict",
        }
        if empty or called:
            found.append(f"{rel}:{node.lineno} {ast.unparse(node)[:60]}")
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for deco in node.decorator_list:
                if "cache" in ast.unparse(deco) and (rel, node.name) not in STATIC_CACHES:
                    found.append(f"{rel}:{node.lineno} @{ast.unparse(deco)} {node.name}")
    return found


def test_papers_keep_no_module_level_caches():
    """Trained state goes through the run's artifact cache (ctx.shared), released after the
    paper's run, never into module globals that outlive it."""
    found = [hit for path in sorted(SRC.rglob("*.py")) for hit in _module_caches(path)]
    assert not found, found


def test_tests_and_benchmarks_import_public_names_only():
    private = []
    for base in ("tests", "benchmarks"):
        for path in sorted((ROOT / base).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("paperlab"):
                    names = [a.name for a in node.names if a.name.startswith("_")]
                    names = [n for n in names if not n.startswith("__")]
                    if names:
                        private.append(f"{path.relative_to(ROOT)}: {node.module} {names}")
    assert not private, private


def test_the_repo_stands_alone():
    """Nothing in the repository points at notes that live outside it."""
    outside = ("PAPERS" + ".md", "STYLE" + ".md", "ARCHITECTURE" + ".md", "../" + "shared")
    hits = []
    for path in sorted(ROOT.rglob("*")):
        parts = path.relative_to(ROOT).parts
        if not path.is_file() or parts[0].startswith(".") and parts[0] != ".ci":
            continue
        if any(p.endswith(".egg-info") or p == "__pycache__" for p in parts):
            continue
        if path.suffix not in {".py", ".md", ".toml", ".cfg", ".yaml", ".yml", ".txt", ""}:
            continue
        text = path.read_text(errors="ignore")
        hits += [f"{path.relative_to(ROOT)}: {name}" for name in outside if name in text]
    assert not hits, hits
