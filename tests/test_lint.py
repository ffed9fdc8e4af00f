"""ruff is the repo's linter and formatter: the tree stays clean and formatted, without skip
markers. (The test extra installs ruff, so in CI these never skip.)"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff not installed")
def test_ruff_check_is_clean():
    proc = subprocess.run(
        ["ruff", "check", "--output-format", "concise", "src", "tests", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff not installed")
def test_ruff_format_is_applied():
    proc = subprocess.run(
        ["ruff", "format", "--check", "src", "tests", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_format_skip_markers():
    marked = [
        f"{p.relative_to(ROOT)}:{i}"
        for base in ("src", "tests", "benchmarks")
        for p in (ROOT / base).rglob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if "fmt: " + "skip" in line or "fmt: " + "off" in line
    ]
    assert not marked, marked


def test_test_modules_have_unique_basenames():
    """The tests are not packages (no __init__.py): pytest imports each test module by its
    basename, so two test_cli.py files stop the whole collection on a fresh clone."""
    seen: dict[str, Path] = {}
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        assert path.name not in seen, f"{path} and {seen[path.name]} share a basename"
        seen[path.name] = path
