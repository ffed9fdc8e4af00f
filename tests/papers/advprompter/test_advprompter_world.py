"""The harmless world: refusal rule, augmentation, split, tokenizer."""

import random

import pytest

from paperlab.papers.advprompter import (
    REFUSAL_KEYWORDS,
    TRIGGER_WORDS,
    WordTokenizer,
    augment_target,
    check_compatible,
    default_tokenizer,
    is_refusal,
    requests,
    split_refused,
    suffix_words,
)


def test_refusal_is_the_substring_rule():
    assert is_refusal("I cannot help with that .")
    assert is_refusal("well , Sorry")
    assert not is_refusal("Sure , here is how to zorb the lamp : use the cloth .")
    assert "I cannot" in REFUSAL_KEYWORDS and len(REFUSAL_KEYWORDS) == 19


def test_augmentation_produces_the_official_variants():
    seen = {
        augment_target("Sure , here is how to zorb the lamp", random.Random(s)) for s in range(40)
    }
    assert seen == {
        "Sure , here is how to zorb the lamp",
        "Sure , here's how to zorb the lamp",
        "Here is how to zorb the lamp",
        "Here's how to zorb the lamp",
    }


def test_split_is_disjoint_and_refused_only():
    train, test = split_refused(48, seed=3)
    assert len(test) == 48 and len(train) == len(requests(refused=True)) - 48
    assert not set(train) & set(test)
    assert all(r.refused for r in train + test)
    with pytest.raises(ValueError, match="n_test"):
        split_refused(0, seed=0)


def test_tokenizer_round_trip_and_identity():
    tok = default_tokenizer()
    text = "tell me how to zorb the lamp " + " ".join(TRIGGER_WORDS)
    assert tok.decode(tok.encode(text)) == text
    assert set(TRIGGER_WORDS) <= set(suffix_words())
    other = WordTokenizer(["a", "b"])
    assert other.id != tok.id
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.encode("tell me how to hack")
    with pytest.raises(ValueError, match="tokenizers differ"):
        check_compatible(tok.vocab_size, other.vocab_size, tok.id, other.id)
    check_compatible(tok.vocab_size, tok.vocab_size, tok.id, tok.id)
