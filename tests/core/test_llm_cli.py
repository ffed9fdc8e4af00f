"""`paperlab serve` and `paperlab moa ask` mistakes: exit 2, one line on stderr, as the shell
sees them (each command runs in its own `python -m paperlab` process, all at once)."""

from __future__ import annotations

import pytest
from llm_helpers import cli_env, closed_port, run_cli_many

QUESTION = "What is 2+2?"
MOA = ["--proposers", "m0", "--aggregator", "m0"]
BAD_CONFIGS = {
    "malformed": "[models.m0\nbase_url = 1\n",
    "no_key": '[models.m0]\nbase_url = "http://127.0.0.1:{port}/v1"\nmodel = "m0"\n'
    'api_key_env = "PAPERLAB_TEST_UNSET_KEY"\n',
    "closed_port": '[models.m0]\nbase_url = "http://127.0.0.1:{port}/v1"\nmodel = "m0"\n'
    "max_retries = 0\ntimeout = 5\n",
}


@pytest.fixture(scope="module")
def runs(tiny_model_dirs, tmp_path_factory):
    """name -> the finished process of each bad command line."""
    tmp = tmp_path_factory.mktemp("cli")
    port = closed_port()
    argvs = {
        "serve_missing_dir": ["serve", "/nonexistent"],
        "serve_bad_fault": ["serve", tiny_model_dirs[0], "--port", "0", "--fault", "bogus"],
    }
    for name, text in BAD_CONFIGS.items():
        (tmp / f"{name}.toml").write_text(text.format(port=port))
        argvs[f"moa_{name}"] = ["moa", "ask", QUESTION, "--config", f"{name}.toml", *MOA]
    env = cli_env(PAPERLAB_CACHE_DIR=str(tmp / "cache"))
    done = run_cli_many(list(argvs.values()), env=env, cwd=tmp)
    return dict(zip(argvs, done, strict=True))


def one_error_line(proc) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("paperlab: error: ")
    assert proc.stdout == ""
    return lines[0]


def test_serve_missing_model_dir(runs):
    line = one_error_line(runs["serve_missing_dir"])
    assert "/nonexistent" in line


def test_serve_unknown_fault(runs):
    line = one_error_line(runs["serve_bad_fault"])
    assert "bogus" in line and "429" in line  # names the bad kind and lists the known ones


def test_moa_ask_malformed_config(runs):
    line = one_error_line(runs["moa_malformed"])
    assert "malformed.toml" in line and "TOML" in line


def test_moa_ask_unset_key_variable(runs):
    line = one_error_line(runs["moa_no_key"])
    assert "PAPERLAB_TEST_UNSET_KEY" in line and "not set" in line


def test_moa_ask_closed_port(runs):
    line = one_error_line(runs["moa_closed_port"])
    assert "unreachable" in line and "'m0'" in line
