"""The command line: list, reproduce, report, and one-line errors that write nothing."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from paperlab import catalog
from paperlab.catalog import PAPERS, PaperInfo
from paperlab.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run_main(argv: list[str]) -> int:
    """``main`` as the shell sees it: argparse's own errors exit through SystemExit."""
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code)


def test_list_shows_all_25(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert len(PAPERS) == 25
    for slug, info in PAPERS.items():
        assert re.search(rf"^{slug}\s+\| {re.escape(info.arxiv)}", out, re.M), slug
    assert "25 papers" in out


def test_planned_papers_have_no_verdict(capsys):
    main(["list"])
    for line in capsys.readouterr().out.splitlines():
        if "| planned" in line:
            assert not re.search(r"holds|fails|inconclusive", line)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["reproduce", "nope"], "unknown paper 'nope'"),
        (["reproduce", "fake", "--scale", "huge"], "unknown scale 'huge'"),
        (["reproduce", "fake", "--set", "bogus=1"], "unknown --set key 'bogus'"),
        (["reproduce", "fake", "--set", "n=lots"], "expected a value of type int"),
        (["reproduce", "fake", "--set", "n"], "expected key=value"),
        (["reproduce", "fake", "--set", "other.n=1"], "not among the papers"),
        (["reproduce", "fake", "--seed", "x"], "invalid int value"),
        (["reproduce", "fake", "--device", "tpu"], "unknown device"),
        pytest.param(
            ["reproduce", "fake", "--device", "cuda"],
            "no CUDA device",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="has CUDA"),
        ),
        (["reproduce", "fake", "--claim", "zzz"], "unknown claim 'zzz'"),
        (["reproduce", "kan", "--set", "functions=nope"], "unknown function(s) nope"),
        (["reproduce", "kan", "--set", "grids_b=5,3"], "must be increasing"),
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(fake_paper, tmp_path, capsys, argv, message):
    out = tmp_path / "runs"
    code = run_main([*argv, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_a_planned_paper_is_refused_in_one_line(monkeypatch, tmp_path, capsys):
    # all 25 papers are implemented now: a paper added to the catalog before its package is
    # the planned one
    papers = dict(catalog.PAPERS)
    papers["later"] = PaperInfo("later", "A Paper Not Built Yet", "0000.00001", catalog.MODELS)
    monkeypatch.setattr(catalog, "PAPERS", papers)
    out = tmp_path / "runs"
    assert run_main(["reproduce", "later", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "planned, not implemented" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    assert main(["list"]) == 0
    assert re.search(r"^later\s+\|.*\| planned", capsys.readouterr().out, re.M)


def test_unwritable_out_dir(fake_paper, tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    code = main(["reproduce", "fake", "--scale", "tiny", "--out", str(blocker / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and "is a file, not a folder" in err and len(err.strip().splitlines()) == 1
    assert blocker.read_text() == "x"


def test_reproduce_then_report(fake_paper, tmp_path, capsys):
    out = tmp_path / "runs"
    code = main(["reproduce", "fake", "--scale", "tiny", "--out", str(out), "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0
    assert "fake/mean" in text and "holds" in text and "skipped" in text
    assert main(["report", "--out", str(out)]) == 0
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    assert "data:image/png;base64," in html  # plots embedded: self-contained
    for slug in PAPERS:
        assert f'id="{slug}"' in html and f"### {slug}:" in md
    assert "A Fake Paper for Testing" in md and "holds" in md
    assert "not run yet" in md  # implemented papers without results (none is planned now)


def test_show_config(fake_paper, capsys):
    assert main(["reproduce", "fake", "--scale", "tiny", "--show-config"]) == 0
    assert "n = 50" in capsys.readouterr().out


def test_module_entry_point_and_help():
    proc = subprocess.run(
        [sys.executable, "-m", "paperlab", "reproduce", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "--scale" in proc.stdout and "--set" in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "paperlab", "reproduce", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    commands = re.findall(r"```(?:bash|sh)?\n(.*?)\n```", readme, re.S)
    test_cmd = next(c.strip() for c in commands if "pytest" in c)
    assert test_cmd in ci


@pytest.mark.parametrize("argv", [["--help"], ["list"]])
def test_help_and_list_import_no_torch_and_no_paper(argv):
    """The CLI is lazy: `paperlab --help` and `paperlab list` load no torch and no paper
    package (each subcommand imports what it needs when it runs)."""
    probe = (
        "import sys, runpy\n"
        f"sys.argv = ['paperlab', *{argv!r}]\n"
        "try:\n"
        "    runpy.run_module('paperlab', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in sys.modules\n"
        "               if m == 'torch' or m.startswith('paperlab.papers.'))\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in proc.stderr, proc.stderr[-2000:]
    assert proc.stdout.strip()
