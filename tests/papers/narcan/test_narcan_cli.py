"""`paperlab narcan fit|edit`: a demo fit and an edit end to end (tiny), and one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from paperlab.cli import main
from paperlab.core.device import torch_threads
from paperlab.papers.narcan import DiffusionPrior, PriorConfig, load_fit, lora_finetune, make_clip
from paperlab.papers.narcan.prior import corrupt, pretrain_prior


def _frames(folder: Path, sizes: list[tuple[int, int]]) -> Path:
    folder.mkdir(parents=True)
    for k, (h, w) in enumerate(sizes):
        Image.fromarray(np.full((h, w, 3), 40 * k, np.uint8)).save(folder / f"f{k}.png")
    return folder


def test_fit_demo_then_edit(tmp_path: Path, capsys: pytest.CaptureFixture):
    out = tmp_path / "fit"
    args = [
        "narcan",
        "fit",
        "--demo",
        "--out",
        str(out),
        "--size",
        "16",
        "--max-frames",
        "3",
        "--homography-steps",
        "5",
        "--steps",
        "10",
        "--hidden",
        "16",
        "--canonical-size",
        "24",
        "--no-prior",
        "--no-progress",
        "--device",
        "cpu",
    ]
    assert main(args) == 0
    assert (out / "fields.safetensors").is_file() and (out / "canonical.png").is_file()
    model = load_fit(out)
    assert model.shape == (3, 16, 16)
    edited = tmp_path / "edited"
    assert (
        main(
            [
                "narcan",
                "edit",
                str(out),
                "--edit",
                str(out / "canonical_edited.png"),
                "--out",
                str(edited),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert len(list(edited.glob("frame_*.png"))) == 3 and (edited / "edited.gif").is_file()
    assert "edited frames" in capsys.readouterr().out


@pytest.mark.parametrize(
    "case, message",
    [
        ("one", "need at least 3"),
        ("sizes", "different sizes"),
        ("text", "not a readable image"),
    ],
)
def test_fit_bad_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, case: str, message: str
):
    if case == "one":
        folder = _frames(tmp_path / "v", [(16, 16)])
    elif case == "sizes":
        folder = _frames(tmp_path / "v", [(16, 16), (16, 16), (20, 16)])
    else:
        folder = _frames(tmp_path / "v", [(16, 16), (16, 16)])
        (folder / "f2.png").write_text("not an image")
    assert main(["narcan", "fit", str(folder), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_edit_needs_a_fit(tmp_path: Path, capsys: pytest.CaptureFixture):
    assert main(["narcan", "edit", str(tmp_path), "--demo-edit", "--out", str(tmp_path / "o")]) == 2
    assert "fields.safetensors" in capsys.readouterr().err


def test_prior_pretrains_tunes_and_refines():
    cfg = PriorConfig(
        pretrain_steps=3, pretrain_patches=32, batch_size=4, lora_steps=2, sdedit_steps=4
    )
    clip = make_clip(num_frames=3, size=16, seed=0)
    with torch_threads(1):  # tiny convolutions: per-op overhead dominates
        base, info = pretrain_prior(cfg, exclude=clip.picture)
        tuned, _ = lora_finetune(cfg, base, clip.frames)
    trainable = [n for n, p in tuned.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    prior = DiffusionPrior(tuned, steps=cfg.sdedit_steps)
    damaged = corrupt(clip.canonical, seed=0)
    with torch_threads(1):
        out = prior(damaged, 0.4, 0)
    assert out.shape == clip.canonical.shape and out.abs().max() <= 1
    assert not (out - damaged).abs().max() < 1e-6  # the prior changed the image
