"""`paperlab pllava make-clip|train|ask`: a clip folder -> a tiny checkpoint -> an answer;
bad input is one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from paperlab.cli import main
from paperlab.core.data.image_io import save_png


def test_make_clip_train_ask(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    clip = tmp_path / "clip"
    assert main(["pllava", "make-clip", str(clip), "--task", "count", "--seed", "1"]) == 0
    assert len(list(clip.glob("*.png"))) == 16
    assert "how many flashes? ->" in capsys.readouterr().out
    ckpt = tmp_path / "ckpt"
    argv = ["pllava", "train", "--out", str(ckpt), "--scale", "tiny", "--no-progress"]
    assert main([*argv, "--device", "cpu"]) == 0
    assert sorted(p.name for p in ckpt.iterdir()) == ["figures.json", "model.safetensors"]
    capsys.readouterr()
    argv = ["pllava", "ask", str(clip), "how many flashes?", "--checkpoint", str(ckpt)]
    assert main([*argv, "--alpha", "4", "--max-new-tokens", "4", "--device", "cpu"]) == 0
    answer = capsys.readouterr().out.splitlines()
    assert len(answer) == 1 and len(answer[0]) <= 4 * 4  # at most 4 tokens, UTF-8 bytes


def _frames(folder: Path, sizes: list[int]) -> Path:
    for k, s in enumerate(sizes):
        save_png(torch.full((3, s, s), 0.5), folder / f"f{k}.png")
    return folder


@pytest.mark.parametrize(
    ("clip", "extra", "message"),
    [
        ("missing", [], "not a folder"),
        ("mixed", [], "different sizes"),
        ("single", [], "need at least 2"),
        ("good", ["--alpha", "0"], "--alpha"),
        ("good", ["--checkpoint-missing"], "no model.safetensors"),
    ],
)
def test_bad_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, clip: str, extra: list[str], message: str
) -> None:
    folders = {
        "missing": tmp_path / "nope",
        "mixed": _frames(tmp_path / "mixed", [8, 8, 12]),
        "single": _frames(tmp_path / "single", [8]),
        "good": _frames(tmp_path / "good", [8, 8, 8]),
    }
    source = ["--demo"]
    if "--checkpoint-missing" in extra:
        extra, source = [], ["--checkpoint", str(tmp_path / "no-ckpt")]
    argv = ["pllava", "ask", str(folders[clip]), "which way?", *source, *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_bad_train_arguments(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    for extra, message in (
        (["--pooling", "2,2"], "--pooling"),
        (["--pooling", "9,2,2"], "--pooling"),
        (["--video-steps", "0"], "--video-steps"),
    ):
        assert main(["pllava", "train", "--out", str(out), "--scale", "tiny", *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert not out.exists()
