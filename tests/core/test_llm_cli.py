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
    model = BAD_CONFIGS["closed_port"].format(port=port)
    (tmp / "layers_str.toml").write_text(model + '[moa]\nproposers = ["m0"]\nlayers = "three"\n')
    (tmp / "proposers_str.toml").write_text(model + '[moa]\nproposers = "m0"\naggregator = "m0"\n')
    (tmp / "prompts.jsonl").write_text('{"prompt": "hi"}\n')
    (tmp / "latin1.jsonl").write_bytes(b'{"prompt": "hi"}\n{"prompt": "caf\xe9"}\n')
    (tmp / "outdir").mkdir()
    closed = ["--config", "closed_port.toml", *MOA]
    argvs |= {
        "moa_layers_0": ["moa", "ask", QUESTION, *closed, "--layers", "0"],
        "moa_layers_str": ["moa", "ask", QUESTION, "--config", "layers_str.toml"],
        "moa_proposers_str": ["moa", "ask", QUESTION, "--config", "proposers_str.toml"],
        "moa_concurrency_0": [
            "moa",
            "batch",
            "prompts.jsonl",
            "--out",
            "c0.jsonl",
            "--concurrency",
            "0",
            *closed,
        ],
        "moa_not_utf8": ["moa", "batch", "latin1.jsonl", "--out", "u.jsonl", *closed],
        "moa_out_folder": ["moa", "batch", "prompts.jsonl", "--out", "outdir", "--resume", *closed],
    }
    env = cli_env(PAPERLAB_CACHE_DIR=str(tmp / "cache"))
    done = run_cli_many(list(argvs.values()), env=env, cwd=tmp)
    return dict(zip(argvs, done, strict=True), tmp=tmp)


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


@pytest.mark.parametrize(
    "name, says",
    [
        ("moa_layers_0", "layers must be an integer >= 2, got 0"),
        ("moa_layers_str", "layers must be an integer >= 2, got 'three'"),
        ("moa_proposers_str", "must be a list of model names"),
        ("moa_concurrency_0", "--concurrency must be >= 1, got 0"),
        ("moa_not_utf8", "latin1.jsonl:2: not UTF-8 (byte 0xe9 at column 16)"),
        ("moa_out_folder", "outdir is a folder; the output is a JSONL file"),
    ],
)
def test_moa_settings_and_files_that_cannot_work(runs, name, says):
    assert says in one_error_line(runs[name])
    assert not (runs["tmp"] / "c0.jsonl").exists()  # nothing half-written
    assert not (runs["tmp"] / "u.jsonl").exists()
