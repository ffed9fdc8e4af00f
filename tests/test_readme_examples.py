"""The Python examples of the READMEs run as written (root README and every paper's README).

Each ```python block runs in a fresh interpreter, in a temp folder (files it writes land
there). A block preceded by an HTML comment ``<!-- not run: REASON -->`` is listed as skipped
with that reason (e.g. it needs a real LLM endpoint); every other block must run cleanly."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
READMES = [ROOT / "README.md", *sorted((ROOT / "src" / "paperlab" / "papers").glob("*/README.md"))]
BLOCK = re.compile(
    r"(?:<!--\s*not run:\s*(?P<reason>[^\n]*?)\s*-->\s*\n)?```python\n(?P<code>.*?)\n```", re.S
)
TIMEOUT = 240  # seconds per block


def examples() -> list:
    params = []
    for readme in READMES:
        for i, m in enumerate(BLOCK.finditer(readme.read_text())):
            name = f"{readme.parent.name if readme.parent != ROOT else 'root'}-{i}"
            marks = [pytest.mark.skip(reason=m["reason"])] if m["reason"] else []
            params.append(pytest.param(m["code"], id=name, marks=marks))
    return params


def test_the_readmes_have_examples():
    assert len(examples()) >= 8


@pytest.mark.parametrize("code", examples())
def test_readme_example_runs(code: str, tmp_path: Path):
    env = {**os.environ, "MPLBACKEND": "Agg", "PAPERLAB_CACHE_DIR": "off"}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
