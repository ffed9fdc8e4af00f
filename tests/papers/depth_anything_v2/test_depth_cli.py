"""`paperlab depth`: a tiny image end to end, one-line errors (exit 2), the pipeline stages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from paperlab.cli import main
from paperlab.papers.depth_anything_v2.model import DepthAnythingV2, small_config
from paperlab.papers.depth_anything_v2.pipeline import save_depth_model


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    cfg = small_config(image_size=16, patch_size=8, dim=16, depth=4, n_heads=2, features=8)
    return save_depth_model(tmp_path / "tiny.safetensors", DepthAnythingV2(cfg))


def _photo(path: Path, size=(30, 20)) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(path)
    return path


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("paperlab: error:") and "\n" not in err, err
    return err


def test_predict_writes_a_colour_map_and_a_16_bit_disparity(tmp_path, checkpoint, capsys):
    photo = _photo(tmp_path / "room.png")
    out = tmp_path / "out"
    assert (
        main(
            [
                "depth",
                str(photo),
                "--checkpoint",
                str(checkpoint),
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    colour = Image.open(out / "room_depth.png")
    sixteen = Image.open(out / "room_disparity16.png")
    assert colour.mode == "RGB" and colour.size == (20, 30)
    assert sixteen.mode.startswith("I") and sixteen.size == (20, 30)
    values = np.asarray(sixteen)
    assert values.max() <= 65535 and values.max() > 255  # really 16-bit, min-max scaled
    assert "1 image(s)" in capsys.readouterr().out


def test_bad_inputs_are_one_line_and_exit_2(tmp_path, checkpoint, capsys):
    fake = tmp_path / "notes.png"
    fake.write_text("not an image")
    args = ["--checkpoint", str(checkpoint), "--no-progress"]
    assert main(["depth", str(fake), "--out", str(tmp_path), *args]) == 2
    assert "not a readable image" in _one_line_error(capsys)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["depth", str(empty), *args]) == 2
    assert "no images" in _one_line_error(capsys)
    official_like = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(2)}, official_like)
    assert main(["depth", "convert", str(official_like), "--out", str(tmp_path / "c")]) == 2
    assert "not an official Depth Anything V2" in _one_line_error(capsys)
    wrong = tmp_path / "wrong.safetensors"
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(wrong))
    photo = _photo(tmp_path / "ok.png")
    assert main(["depth", str(photo), "--checkpoint", str(wrong), "--no-progress"]) == 2
    assert "checkpoint" in _one_line_error(capsys)


def test_a_batch_keeps_the_outputs_already_written(tmp_path, checkpoint, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    _photo(folder / "a.png")
    (folder / "b.png").write_bytes(b"\x89PNG broken")
    out = tmp_path / "out"
    code = main(
        ["depth", str(folder), "--checkpoint", str(checkpoint), "--out", str(out), "--no-progress"]
    )
    assert code == 2 and "b.png" in _one_line_error(capsys)
    assert (out / "a_depth.png").is_file() and (out / "a_disparity16.png").is_file()
    assert not list(out.glob("b_*")) and not list(out.glob(".*tmp"))


def test_pipeline_stages_run_in_order_and_resume(tmp_path, capsys):
    work = tmp_path / "work"
    sizes = [
        "--size",
        "16",
        "--teacher-dim",
        "16",
        "--teacher-heads",
        "2",
        "--teacher-depth",
        "4",
        "--student-dim",
        "16",
        "--student-heads",
        "2",
        "--teacher-features",
        "8",
        "--student-features",
        "8",
        "--n-synthetic",
        "6",
        "--n-real",
        "6",
        "--teacher-steps",
        "2",
        "--student-steps",
        "2",
        "--batch-size",
        "2",
    ]
    assert main(["depth", "pseudo-label", "--work", str(work), "--no-progress"]) == 2
    assert "train-teacher first" in _one_line_error(capsys)
    for stage in ("train-teacher", "pseudo-label", "train-student"):
        assert main(["depth", stage, "--work", str(work), "--no-progress", *sizes]) == 0
    for name in ("teacher", "pseudo_labels", "student"):
        assert (work / f"{name}.safetensors").is_file()
    # re-running a finished stage resumes at its end (its checkpoint): nothing to redo
    before = (work / "student.train.safetensors").stat().st_mtime_ns
    assert main(["depth", "train-student", "--work", str(work), "--no-progress"]) == 0
    assert (work / "student.train.safetensors").stat().st_mtime_ns >= before
    photo = _photo(tmp_path / "p.png")
    assert (
        main(
            [
                "depth",
                str(photo),
                "--work",
                str(work),
                "--out",
                str(tmp_path / "o"),
                "--no-progress",
            ]
        )
        == 0
    )
