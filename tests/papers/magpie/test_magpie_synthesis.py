"""Synthesis over real HTTP: a stub aligned model behind `paperlab serve`, the official `openai`
client, raw completions for the instruction and chat for the reply; the CLI's generate (with
--resume) and filter; a chat-only endpoint refused with one line."""

from __future__ import annotations

import json

import pytest

from paperlab.cli import main
from paperlab.core.errors import UserError
from paperlab.core.llm.client import LLMClient
from paperlab.core.llm.local import LocalServer
from paperlab.core.llm.tiny import save_chat_model
from paperlab.papers.magpie import LLMTagger, Magpie, SynthesisConfig, synthesize
from paperlab.papers.magpie.miniature import ModelConfig, align, new_model


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """An 'aligned' stub: after `user: ` it writes "Add 3 and 4." and answers it with "7"."""
    cfg = ModelConfig(
        dim=32, n_layers=1, n_heads=2, batch_size=8, align_steps=80, lr=2e-2, max_seq_len=640
    )
    model = align(new_model(cfg, 0), cfg, seed=0, sample=lambda rng: ("Add 3 and 4.", "7"))
    root = tmp_path_factory.mktemp("magpie-stub")
    with LocalServer([save_chat_model(model, root / "stub", "stub")]) as s:
        yield s


def _config(tmp_path, base_url: str, capabilities='["chat", "raw_completion"]'):
    path = tmp_path / "paperlab.toml"
    path.write_text(
        f'[defaults]\nbase_url = "{base_url}"\nmax_retries = 0\ntimeout = 10\n'
        f'[models.stub]\nmodel = "stub"\ncapabilities = {capabilities}\n'
    )
    return path


def test_synthesize_from_the_template_alone(server):
    client = LLMClient(server.config())
    magpie = Magpie(
        client,
        "stub",
        family="paperlab",
        config=SynthesisConfig(instruction_max_tokens=32, response_max_tokens=8),
    )
    records = synthesize(magpie, 3)
    assert [r["conversation_id"] for r in records] == [0, 1, 2]
    for r in records:
        assert r["instruction"] == "Add 3 and 4." and r["response"] == "7"
        assert r["conversations"][0] == {"from": "human", "value": "Add 3 and 4."}
        assert r["pre_query_template"] == "user: " and r["gen_input_configs"]["temperature"] == 1.0
    stats = server.stats()
    assert stats["/v1/completions"] >= 3 and stats["/v1/chat/completions"] >= 3


def test_multi_turn(server):
    magpie = Magpie(
        LLMClient(server.config()),
        "stub",
        family="paperlab",
        config=SynthesisConfig(instruction_max_tokens=32, response_max_tokens=8, turns=2),
    )
    r = synthesize(magpie, 1)[0]
    assert "instruction_2" in r and len(r["conversations"]) in (2, 4)


def test_chat_only_endpoint_is_refused(server, tmp_path, capsys):
    from paperlab.core.llm.config import load_config

    config = load_config(_config(tmp_path, server.base_url, '["chat"]'))
    with pytest.raises(UserError, match="chat-only.*raw completion"):
        Magpie(LLMClient(config), "stub", family="llama3")
    out = tmp_path / "data.jsonl"
    code = main(
        [
            "magpie",
            "generate",
            "--model",
            "stub",
            "--family",
            "paperlab",
            "-n",
            "2",
            "--out",
            str(out),
            "--config",
            str(tmp_path / "paperlab.toml"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "chat-only" in err[0] and not out.exists()


def test_cli_generate_resume_and_filter(server, tmp_path, capsys):
    cfg = _config(tmp_path, server.base_url)
    out = tmp_path / "data.jsonl"
    common = [
        "--model",
        "stub",
        "--family",
        "paperlab",
        "--out",
        str(out),
        "--config",
        str(cfg),
        "--max-tokens",
        "32",
        "--response-max-tokens",
        "8",
        "--no-progress",
        "--no-cache",
    ]
    assert main(["magpie", "generate", "-n", "2", *common]) == 0
    assert main(["magpie", "generate", "-n", "4", *common]) == 2  # exists: needs --resume
    assert main(["magpie", "generate", "-n", "4", "--resume", *common]) == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(r["conversation_id"] for r in lines) == [0, 1, 2, 3]
    assert "well_formed_rate: 1.000" in capsys.readouterr().out
    filtered = tmp_path / "filtered.jsonl"
    assert main(["magpie", "filter", str(out), "--tagger", "rule", "--out", str(filtered)]) == 0
    kept = [json.loads(x) for x in filtered.read_text().splitlines()]
    # the stub writes (nearly) one instruction: one duplicate group, its lowest id kept
    assert kept and all(
        r["min_similar_conversation_id"] in (None, r["conversation_id"]) for r in kept
    )
    adds = [r for r in kept if r["instruction"] == "Add 3 and 4."]
    assert len(adds) == 1 and adds[0]["task_category"] == "Math"
    assert "duplicate_rate:" in capsys.readouterr().out


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    out = tmp_path / "x.jsonl"
    code = main(["magpie", "generate", "--model", "m", "--family", "llama9", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "unknown chat family" in err[0] and not out.exists()
    data = tmp_path / "d.jsonl"
    data.write_text('{"conversation_id": 0, "instruction": "Add 3 and 4.", "response": "7"}\n')
    code = main(["magpie", "filter", str(data), "--out", str(tmp_path / "f.jsonl")])
    assert code == 2 and "untagged" in capsys.readouterr().err
    assert main(["magpie", "families"]) == 0 and "qwen2.5" in capsys.readouterr().out


def test_llm_tagger_leaves_unparseable_tags_none(server):
    tags = LLMTagger(LLMClient(server.config()), "stub", max_tokens=8).tag(["Add 3 and 4."])
    assert tags[0]["input_quality"] is None and tags[0]["tagger"] == "stub"
