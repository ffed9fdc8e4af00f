"""`paperlab llamagen train|sample`: an image folder -> a checkpoint folder -> a PNG grid."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from paperlab.cli import main
from paperlab.core.data.image_io import read_image, save_png

TINY = ["--size", "8", "--codebook-size", "16", "--dim", "32", "--layers", "1"]
TINY += ["--tok-steps", "2", "--gen-steps", "2", "--batch-size", "4", "--no-progress"]


def image_folder(root: Path) -> Path:
    gen = torch.Generator().manual_seed(0)
    for name, channel in (("reds", 0), ("blues", 2)):
        for i in range(3):
            image = torch.rand(3, 10, 10, generator=gen) * 0.2
            image[channel] += 0.7
            save_png(image, root / name / f"{i}.png")
    return root


def test_train_then_sample(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    images = image_folder(tmp_path / "images")
    ckpt = tmp_path / "ckpt"
    assert main(["llamagen", "train", str(images), "--out", str(ckpt), *TINY]) == 0
    names = sorted(p.name for p in ckpt.iterdir())
    assert names == [
        "classes.json",
        "generator.safetensors",
        "samples.png",
        "tokenizer.safetensors",
    ]
    grid = tmp_path / "grid.png"
    argv = ["llamagen", "sample", str(ckpt), "--out", str(grid), "--class", "blues"]
    assert main([*argv, "--per-class", "3", "--no-progress"]) == 0
    assert read_image(grid).shape == (3, 8 + 2, 3 * 9 + 1)  # one row of 3 tiles, 1 px padding
    assert "1 class(es) x 3" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--out", "{out}"], "image folder or --demo"),
        (["train", "{missing}", "--out", "{out}"], "not a folder"),
        (["train", "--demo", "--out", "{out}", "--size", "9"], "divisible"),
        (["train", "--demo", "--out", "{out}", "--tok-steps", "0"], "--tok-steps"),
        (["sample", "{missing}", "--out", "{png}"], "classes.json"),
        (["sample", "{missing}", "--out", "{out}"], ".png"),
    ],
)
def test_bad_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str], message: str
) -> None:
    paths = {"out": tmp_path / "out", "missing": tmp_path / "nope", "png": tmp_path / "g.png"}
    assert main(["llamagen", *[a.format(**paths) for a in argv]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not paths["out"].exists() and not paths["png"].exists()
