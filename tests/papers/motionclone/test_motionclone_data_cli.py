"""The procedural clips, the judge's inputs, and `paperlab motionclone`'s bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from paperlab.cli import main
from paperlab.core.data.image_io import save_png
from paperlab.core.device import torch_threads
from paperlab.papers.motionclone import (
    COLOURS,
    SHAPES,
    centroids,
    judge_clips,
    make_clips,
    parse_prompt,
    train_judge,
)


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


def test_clips_stay_inside_and_centroids_track_the_exact_centres():
    data = make_clips(60, frames=8, size=16, seed=0)
    assert data.clips.shape == (60, 3, 8, 16, 16)
    assert data.clips.min() >= -1 and data.clips.max() <= 1
    assert set(data.paths) == {"linear", "circular", "zigzag"}
    assert data.centres.min() >= 3.5 - 1e-6 and data.centres.max() <= 11.5 + 1e-6
    assert (centroids(data.clips) - data.centres).abs().max() <= 0.5 + 1e-5  # rounding only
    moves = (data.centres[:, 1:] - data.centres[:, :-1]).norm(dim=-1)
    assert moves.min() > 0.3  # every clip moves in every frame
    assert torch.equal(make_clips(5, seed=3).clips, make_clips(5, seed=3).clips)


def test_prompts_parse_and_bad_ones_name_the_argument():
    assert parse_prompt("Blue plus") == (list(COLOURS).index("blue"), SHAPES.index("plus"))
    for bad in ("", "red", "purple square", "red circle", "red square now"):
        with pytest.raises(ValueError, match="prompt"):
            parse_prompt(bad)


def test_judge_learns_colour_and_shape_quickly():
    torch.manual_seed(0)
    train, test = make_clips(300, seed=1), make_clips(40, seed=2)
    with torch.random.fork_rng():
        judge, _ = train_judge(train, steps=60, seed=0)
    pred = judge_clips(judge, test.clips)
    assert (pred[:, 0] == test.prompts[:, 0]).float().mean() >= 0.9  # colour is easy


def _frames(folder: Path, sizes: list[int]) -> Path:
    folder.mkdir()
    for i, s in enumerate(sizes):
        save_png(torch.rand(3, s, s), folder / f"{i}.png")
    return folder


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ([16, 16, 20, 16, 16, 16, 16, 16], "different sizes"),
        ([16], "frame"),
        ([16] * 5, "5 frames"),
    ],
)
def test_cli_bad_reference_is_one_line_exit_2(tmp_path, capsys, sizes, message):
    clip = _frames(tmp_path / "clip", sizes)
    code = main(
        [
            "motionclone",
            "--reference",
            str(clip),
            "--prompt",
            "red square",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing written, nothing trained


def test_cli_bad_prompt_and_npy_length(tmp_path, capsys):
    npy = tmp_path / "clip.npy"
    np.save(npy, np.zeros((3, 16, 16, 3), dtype=np.uint8))
    assert main(["motionclone", "--reference", str(npy), "--prompt", "red square"]) == 2
    assert "3 frames" in capsys.readouterr().err
    assert main(["motionclone", "--demo", "--prompt", "mauve blob"]) == 2
    assert "prompt" in capsys.readouterr().err
    bad = ["motionclone", "--demo", "--prompt", "red bar", "--reference-prompt", "mauve blob"]
    assert main(bad) == 2
    assert "--reference-prompt" in capsys.readouterr().err
    assert main(["motionclone", "--demo", "--prompt", "red bar", "--semantic-weight", "-1"]) == 2
    assert "semantic_weight" in capsys.readouterr().err


def test_cli_demo_writes_frames_and_gifs(tmp_path):
    out = tmp_path / "out"
    args = [
        "motionclone",
        "--demo",
        "--prompt",
        "green plus",
        "--out",
        str(out),
        "--train-steps",
        "1",
        "--steps",
        "3",
        "--guidance-steps",
        "1",
        "--no-progress",
        "--device",
        "cpu",
    ]
    assert main(args) == 0
    assert (out / "base.safetensors").exists() and (out / "clone.gif").exists()
    assert len(list((out / "clone").glob("*.png"))) == 8
    assert (out / "reference.gif").exists()
    # the saved base model is reused, and the written reference folder is a valid CLIP
    again = [
        "motionclone",
        "--reference",
        str(out / "reference"),
        "--prompt",
        "red bar",
        "--model",
        str(out / "base.safetensors"),
        "--out",
        str(tmp_path / "b"),
        "--steps",
        "3",
        "--guidance-steps",
        "1",
        "--device",
        "cpu",
        "--semantic-weight",  # the first version's location-aware semantic guidance
        "100",
        "--reference-prompt",
        "green plus",
    ]
    assert main(again) == 0
    assert (tmp_path / "b" / "clone.gif").exists()
