"""`paperlab advprompter train|attack|harden`: a tiny run end to end and the one-line errors."""

import json

import pytest

from paperlab.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("adv")
    argv = [
        "advprompter",
        "train",
        "--dir",
        str(d),
        "--epochs",
        "1",
        "--target-steps",
        "3",
        "--base-steps",
        "3",
        "--n-test",
        "140",
        "--suffix-len",
        "2",
        "--no-progress",
    ]
    assert main(argv) == 0
    assert main([*argv[:5], "2", *argv[6:], "--resume"]) == 0  # continue to 2 epochs
    return d


def test_train_attack_harden(trained, capsys):
    assert {"target.safetensors", "base.safetensors", "prompter.safetensors", "world.json"} <= {
        p.name for p in trained.iterdir()
    }
    assert main(["advprompter", "attack", "--dir", str(trained), "-k", "2", "-n", "3"]) == 0
    assert "ASR@2" in capsys.readouterr().out
    argv = [
        "advprompter",
        "harden",
        "--dir",
        str(trained),
        "--steps",
        "2",
        "-k",
        "1",
        "--no-progress",
    ]
    assert main(argv) == 0
    assert (trained / "target_hardened.safetensors").is_file()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["-k", "0"], "k must be >= 1"),
        (["-n", "-1"], "n must be >= 1"),
        (["--request", "tell me how to hack the bank"], "outside the vocabulary"),
        (["--request", "zorb the lamp"], "tell me how to VERB the OBJECT"),
    ],
)
def test_attack_bad_input(trained, capsys, extra, message):
    assert main(["advprompter", "attack", "--dir", str(trained), *extra]) == 2
    assert message in capsys.readouterr().err


def test_empty_request_file(trained, tmp_path, capsys):
    empty = tmp_path / "none.txt"
    empty.write_text("\n\n")
    assert main(["advprompter", "attack", "--dir", str(trained), "--requests", str(empty)]) == 2
    assert "no request" in capsys.readouterr().err


def test_incompatible_tokenizer_is_refused(trained, tmp_path, capsys):
    from paperlab.core.checkpoint import load_model, save_model
    from paperlab.papers.advprompter import ModelSize, build_llama

    def build(cfg):
        size = ModelSize(dim=cfg["dim"], n_layers=cfg["n_layers"], n_heads=cfg["n_heads"])
        return build_llama(cfg["vocab_size"], size)

    model, meta = load_model(trained / "target.safetensors", build, kind="AdvPrompterTarget")
    other = tmp_path / "other.safetensors"
    save_model(
        other,
        model,
        kind="AdvPrompterTarget",
        config=meta["config"] | {"tokenizer": "words-000000000000"},
    )
    argv = ["advprompter", "attack", "--dir", str(trained), "--target", str(other)]
    assert main(argv) == 2
    assert "tokenizers differ" in capsys.readouterr().err


def test_harden_bad_input_writes_nothing(trained, capsys):
    before = sorted(p.name for p in trained.iterdir())
    assert main(["advprompter", "harden", "--dir", str(trained), "--steps", "0"]) == 2
    assert "steps must be >= 1" in capsys.readouterr().err
    assert sorted(p.name for p in trained.iterdir()) == before
    assert json.loads((trained / "world.json").read_text())["n_test"] == 140


def test_missing_world(tmp_path, capsys):
    assert main(["advprompter", "attack", "--dir", str(tmp_path / "none")]) == 2
    assert "no trained world" in capsys.readouterr().err
