"""core.data.image_io: a user's folders in (classes, frames), PNG and GIF out, one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from paperlab.core.data.image_io import (
    load_image_folder,
    read_frames,
    read_image,
    save_gif,
    save_grid_png,
    save_png,
)
from paperlab.core.errors import UserError


def write(path: Path, value: int, size: tuple[int, int] = (6, 5)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.full((size[0], size[1], 3), value, np.uint8)
    array[0, 0] = (255, 0, 0)
    Image.fromarray(array).save(path)
    return path


def test_png_round_trip_is_exact(tmp_path: Path) -> None:
    image = torch.randint(0, 256, (3, 7, 9)).float() / 255.0
    out = save_png(image, tmp_path / "x.png")
    assert torch.equal(read_image(out), image)
    grey = read_image(out, channels=1)
    assert grey.shape == (1, 7, 9)
    assert read_image(out, size=(4, 5)).shape == (3, 4, 5)


def test_folder_classes_and_flat_folder(tmp_path: Path) -> None:
    for i in range(3):
        write(tmp_path / "cats" / f"{i}.png", 10 * i)
    write(tmp_path / "dogs" / "a.jpg", 200)
    (tmp_path / "notes.txt").write_text("not an image")
    data = load_image_folder(tmp_path)
    assert data.class_names == ("cats", "dogs")
    assert data.labels.tolist() == [0, 0, 0, 1] and data.images.shape == (4, 3, 6, 5)
    flat = load_image_folder(tmp_path / "cats", size=4)
    assert flat.class_names == ("cats",) and flat.images.shape == (3, 3, 4, 4)


def test_frames_in_natural_order(tmp_path: Path) -> None:
    for i in (1, 2, 10):
        write(tmp_path / f"frame{i}.png", i)
    clip = read_frames(tmp_path)
    assert clip.shape == (3, 3, 6, 5)
    assert [round(float(x[1, 2, 2]) * 255) for x in clip] == [1, 2, 10]


@pytest.mark.parametrize(
    ("setup", "call", "message"),
    [
        (lambda d: write(d / "a.png", 1), lambda d: read_frames(d), "need at least 2"),
        (
            lambda d: (write(d / "a.png", 1), write(d / "b.png", 1, (4, 4))),
            lambda d: read_frames(d),
            "different sizes",
        ),
        (
            lambda d: (write(d / "a.png", 1), write(d / "b.png", 1)),
            lambda d: read_frames(d, num_frames=8),
            "need 8",
        ),
        (lambda d: (d / "x.png").write_text("no"), lambda d: read_image(d / "x.png"), "x.png"),
        (lambda d: None, lambda d: load_image_folder(d / "missing"), "not a folder"),
        (lambda d: None, lambda d: load_image_folder(d), "no images"),
        (lambda d: None, lambda d: save_png(torch.zeros(4, 2, 2), d / "o.png"), "image"),
        (lambda d: None, lambda d: save_gif(torch.zeros(2, 3, 2, 2), d / "o.gif", fps=0), "fps"),
    ],
)
def test_bad_input_is_one_user_error(tmp_path: Path, setup, call, message: str) -> None:
    setup(tmp_path)
    with pytest.raises(UserError, match=message):
        call(tmp_path)
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "o.gif").exists()


def test_gif_and_grid(tmp_path: Path) -> None:
    clip = torch.rand(4, 3, 5, 5)
    gif = save_gif(clip, tmp_path / "c.gif", fps=4, scale=3)
    with Image.open(gif) as im:
        assert im.n_frames == 4 and im.size == (15, 15)
    grid = save_grid_png(torch.rand(6, 1, 4, 4), tmp_path / "g.png", nrow=3, pad=1)
    assert read_image(grid).shape == (3, 2 * 5 + 1, 3 * 5 + 1)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
