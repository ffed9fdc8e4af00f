"""`paperlab prometheus2 merge`: a merged checkpoint that loads like its base; bad input is one
line, exit 2, nothing written."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from paperlab.cli import main
from paperlab.core.llama import Llama, LlamaConfig
from paperlab.papers.prometheus2.merge import merge_state_dicts

CFG = dict(vocab_size=259, dim=16, n_layers=1, n_heads=2, max_seq_len=32, multiple_of=16)


@pytest.fixture
def checkpoints(private_tempdir):
    """A base Llama folder and two "fine-tuned" folders (the base plus seeded noise)."""
    torch.manual_seed(0)
    base = Llama(LlamaConfig(**CFG))
    base.save_pretrained(private_tempdir / "base")
    for i, name in enumerate(("abs", "rel")):
        g = torch.Generator().manual_seed(i)
        with torch.no_grad():
            tuned = Llama(LlamaConfig(**CFG))
            tuned.load_state_dict(base.state_dict())
            for p in tuned.parameters():
                p.add_(0.01 * torch.randn(p.shape, generator=g))
        tuned.save_pretrained(private_tempdir / name)
    return private_tempdir


def _listing(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_merge_linear_loads_as_a_llama(checkpoints, capsys):
    root = checkpoints
    code = main(
        [
            "prometheus2",
            "merge",
            str(root / "base"),
            str(root / "abs"),
            str(root / "rel"),
            "--method",
            "linear",
            "--weights",
            "0.5,0.5",
            "--out",
            str(root / "merged"),
        ]
    )
    assert code == 0 and "merged 2 models (linear)" in capsys.readouterr().out
    merged = Llama.from_pretrained(root / "merged")  # the base's metadata came along
    a = load_file(str(root / "abs" / "model.safetensors"))
    b = load_file(str(root / "rel" / "model.safetensors"))
    got = load_file(str(root / "merged" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(got[k], 0.5 * a[k] + 0.5 * b[k])
    assert merged.config.dim == CFG["dim"]


def test_merge_dare_ties_matches_the_library(checkpoints):
    root = checkpoints
    out = root / "m.safetensors"
    argv = ["prometheus2", "merge", root / "base", root / "abs", root / "rel"]
    argv += ["--method", "dare_ties", "--density", "0.5", "--seed", "4", "--out", out]
    assert main(list(map(str, argv))) == 0
    sds = [load_file(str(root / n / "model.safetensors")) for n in ("base", "abs", "rel")]
    expected = merge_state_dicts(sds[0], sds[1:], method="dare_ties", density=0.5, seed=4)
    got = load_file(str(out))
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    # an existing output is kept unless --force
    assert main(list(map(str, argv))) == 2
    assert main([*map(str, argv), "--force"]) == 0


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--method", "slerp"], "--method"),
        (["--method", "ties", "--density", "0"], "--density"),
        (["--method", "ties", "--density", "1.5"], "--density"),
        (["--method", "linear", "--weights", "1,2,3"], "weights"),
        (["--method", "linear", "--weights", "a,b"], "--weights"),
    ],
)
def test_merge_bad_arguments(checkpoints, capsys, extra, match):
    root = checkpoints
    before = _listing(root)
    argv = ["prometheus2", "merge", str(root / "base"), str(root / "abs"), str(root / "rel")]
    code = main([*argv, *extra, "--out", str(root / "out")])
    err = capsys.readouterr().err
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1
    assert _listing(root) == before


def test_merge_checkpoints_of_different_shapes(checkpoints, capsys):
    root = checkpoints
    odd = {k: v for k, v in load_file(str(root / "rel" / "model.safetensors")).items()}
    odd["norm.weight"] = torch.ones(3)
    save_file(odd, str(root / "odd.safetensors"))
    before = _listing(root)
    code = main(
        [
            "prometheus2",
            "merge",
            str(root / "base"),
            str(root / "abs"),
            str(root / "odd.safetensors"),
            "--method",
            "ties",
            "--out",
            str(root / "out.safetensors"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "odd.safetensors" in err and "shape" in err
    assert len(err.strip().splitlines()) == 1
    assert _listing(root) == before


def test_merge_missing_checkpoint(checkpoints, capsys):
    root = checkpoints
    code = main(
        ["prometheus2", "merge", str(root / "base"), str(root / "nope"), "--method", "linear"]
        + ["--out", str(root / "o.safetensors")]
    )
    assert code == 2 and "nope" in capsys.readouterr().err
