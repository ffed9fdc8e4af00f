"""`paperlab instantfamily`: faces -> train -> generate, and bad input (one line, exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from paperlab.cli import main
from paperlab.core.device import torch_threads


@pytest.fixture(autouse=True)
def one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("instantfamily")
    assert main(["instantfamily", "faces", "--out", str(folder / "ids"), "--count", "3"]) == 0
    train = ["instantfamily", "train", "--out", str(folder / "model"), "--steps", "2"]
    train += ["--encoder-steps", "2", "--pool", "4", "--batch-size", "2", "--size", "16"]
    assert main([*train, "--no-progress"]) == 0
    Image.new("RGB", (20, 20)).save(folder / "big.png")
    return folder


def _ids(folder: Path, *names: str) -> str:
    return ",".join(str(folder / "ids" / n) for n in names)


def test_generate_writes_the_grid(workdir):
    out = workdir / "grid.png"
    args = ["instantfamily", "generate", "--model", str(workdir / "model"), "--out", str(out)]
    args += ["--ids", _ids(workdir, "id0.png", "id1.png"), "--boxes", "1,5,6;9,5,6"]
    assert main([*args, "--samples", "2", "--steps", "2", "--colour", "green"]) == 0
    with Image.open(out) as im:
        assert im.size[1] == 4 * 16 + 2  # one row: 2 identity images, 2 canvases, 4x up
    three = ["--ids", _ids(workdir, "id0.png", "id1.png", "id2.png")]
    out3 = workdir / "grid3.png"
    base = ["instantfamily", "generate", "--model", str(workdir / "model"), "--out", str(out3)]
    assert main([*base, *three, "--samples", "1", "--steps", "2"]) == 0 and out3.exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--boxes", "20,2,6;1,8,6"], "not inside the 16 px canvas"),
        (["--boxes", "1,5,6;7,5,6"], "overlap once grown by the 25% mask margin"),
        (["--boxes", "1,5,6"], "2 identities for 1 boxes"),
        (["--boxes", "1,5"], "three numbers"),
        (["--colour", "mauve"], "--colour"),
        (["--samples", "0"], "--samples must be >= 1"),
    ],
)
def test_generate_bad_input_is_one_line_exit_2(workdir, capsys, extra, message):
    out = workdir / "bad.png"
    args = ["instantfamily", "generate", "--model", str(workdir / "model"), "--out", str(out)]
    assert main([*args, "--ids", _ids(workdir, "id0.png", "id1.png"), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_generate_bad_identity_images_and_model(workdir, capsys, tmp_path):
    model = ["--model", str(workdir / "model")]
    big = ["instantfamily", "generate", *model, "--ids", str(workdir / "big.png"), "--out", "x.png"]
    assert main(big) == 2
    assert "identity images are 16x16" in capsys.readouterr().err
    missing = ["instantfamily", "generate", "--model", str(tmp_path), "--out", "x.png"]
    assert main([*missing, "--ids", _ids(workdir, "id0.png")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["instantfamily", "generate", *model, "--ids", "nope.png", "--out", "x.png"]) == 2
    assert "nope.png does not exist" in capsys.readouterr().err


def test_a_first_version_folder_still_loads(workdir, tmp_path):
    """Folders written before `heads` and `id_norm` existed (8 heads, no LayerNorm) load as
    they were trained."""
    import dataclasses
    import shutil

    from paperlab.core.checkpoint import save_model
    from paperlab.papers.instantfamily.cli import GENERATOR_KIND, load_models
    from paperlab.papers.instantfamily.model import GeneratorConfig, InstantFamily

    old = tmp_path / "old"
    shutil.copytree(workdir / "model", old)
    cfg = GeneratorConfig(size=16, id_local_dim=16, heads=8, id_norm=False)
    config = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("heads", "id_norm")}
    save_model(
        old / "generator.safetensors", InstantFamily(cfg), kind=GENERATOR_KIND, config=config
    )
    _, gen = load_models(old, "cpu")
    assert (gen.cfg.heads, gen.cfg.id_norm) == (8, False)
