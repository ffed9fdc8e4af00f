"""The pre-query template table: the official strings, stop tokens, multi-turn prompts."""

from __future__ import annotations

import pytest

from paperlab.core.errors import UserError
from paperlab.core.llm.chat import render_chat
from paperlab.papers.magpie import FAMILIES, get_family


def test_llama3_matches_the_official_table():
    fam = get_family("llama3")
    assert fam.pre_query_template == "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
    assert "<|eot_id|>" in fam.stop_tokens and "assistant" in fam.instruction_stops()
    assert get_family("Llama3.1") is fam  # aliases, case-insensitive


def test_qwen25_carries_its_default_system_prompt():
    assert "You are Qwen, created by Alibaba Cloud" in get_family("qwen2.5").pre_query_template
    assert get_family("qwen2").pre_query_template == "<|im_start|>user\n"


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_is_complete(name: str):
    fam = FAMILIES[name]
    assert fam.pre_query_template and fam.stop_tokens and fam.post_query
    assert fam.mt_append_template
    with_newline, without = (
        fam.instruction_stops(newline=True),
        fam.instruction_stops(newline=False),
    )
    assert "\n" in with_newline and set(without) < set(with_newline)


def test_the_newline_stop_is_an_option():
    fam = get_family("gemma2")
    assert fam.instruction_stops(newline=False)[-1] != "\n"


def test_unknown_family_is_one_clear_error():
    with pytest.raises(UserError, match="unknown chat family 'llama9'.*known: llama3"):
        get_family("llama9")


def test_paperlab_family_agrees_with_our_chat_format():
    """Reference: core's render_chat, the format `paperlab serve` applies."""
    fam = get_family("paperlab")
    turns = [("Add 3 and 4.", "7"), ("Add 1 and 1.", "2")]
    messages = []
    for q, r in turns:
        messages += [{"role": "user", "content": q}, {"role": "assistant", "content": r}]
    rendered = render_chat(messages, add_generation_prompt=False)
    assert fam.multi_turn_prompt(turns) == rendered + fam.mt_append_template
    assert render_chat([{"role": "user", "content": "x"}]) == fam.pre_query_template + "x" + (
        fam.post_query
    )


def test_multi_turn_prompt_llama3():
    fam = get_family("llama3")
    prompt = fam.multi_turn_prompt([("Hi", "Hello!")])
    assert prompt == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n"
    )
