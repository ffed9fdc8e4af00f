"""AdvPrompterOpt's pieces: the repetition penalty, the keep-the-best sampling, the search."""

import torch
from torch import nn
from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

from paperlab.papers.advprompter import (
    ModelSize,
    OptParams,
    advprompter_opt,
    alphabet_mask,
    apply_repetition_penalty,
    build_llama,
    default_tokenizer,
    make_prompter,
    sample_keep_best,
)


def test_repetition_penalty_matches_transformers():
    torch.manual_seed(0)
    logits = torch.randn(3, 20)
    prev = torch.tensor([[1, 2, 2], [5, 0, 19], [7, 8, 9]])
    ref = RepetitionPenaltyLogitsProcessor(penalty=1.2)(prev, logits.clone())
    torch.testing.assert_close(apply_repetition_penalty(logits, prev, 1.2), ref)


def test_sample_keep_best_always_holds_the_argmax_and_no_repeats():
    torch.manual_seed(0)
    scores = torch.randn(5, 30)
    gen = torch.Generator().manual_seed(1)
    picked = sample_keep_best(scores, 6, 0.6, gen)
    assert picked.shape == (5, 6)
    assert torch.equal(picked[:, 0], scores.argmax(-1))
    assert all(len(set(row)) == 6 for row in picked.tolist())
    assert torch.equal(sample_keep_best(scores, 1, 0.6, gen)[:, 0], scores.argmax(-1))


class TriggerTarget(nn.Module):
    """A stand-in target: every position favours the affirmative words once the trigger id is
    anywhere in the row, so the target loss drops exactly when the suffix holds it."""

    def __init__(self, vocab: int, trigger: int, favoured: list[int]) -> None:
        super().__init__()
        self.vocab, self.trigger, self.favoured = vocab, trigger, favoured
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, ids):
        B, T = ids.shape
        logits = torch.zeros(B, T, self.vocab)
        seen = (ids == self.trigger).cumsum(1) > 0  # (B, T)
        logits[..., self.favoured] += 8.0 * seen[..., None]
        return logits


def test_the_search_finds_the_token_that_lowers_the_target_loss():
    tok = default_tokenizer()
    words = ["please", "now", "kindly", "quick", "simple", "steps", "with", "velvet"]
    allowed = alphabet_mask(tok, words)
    target_text = "Sure , here is how to zorb the lamp"
    target = TriggerTarget(tok.vocab_size, tok.index["velvet"], tok.encode(target_text))
    torch.manual_seed(0)
    base = build_llama(tok.vocab_size, ModelSize(dim=16, n_layers=1, n_heads=2))
    prompter = make_prompter(base)
    params = OptParams(max_new_tokens=3, num_beams=2, top_k=8)  # every word a candidate
    gen = torch.Generator().manual_seed(0)
    instructs = ["tell me how to zorb the lamp", "tell me how to blick the door"]
    suffixes = advprompter_opt(
        prompter, target, tok, instructs, [target_text] * 2, allowed, params, generator=gen
    )
    assert len(suffixes) == 2
    for s in suffixes:
        assert len(s.split()) == 3 and set(s.split()) <= set(words)
        assert "velvet" in s.split()
