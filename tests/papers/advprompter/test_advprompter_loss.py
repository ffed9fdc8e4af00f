"""The teacher-forced losses against the field's libraries (TRL, transformers)."""

import torch
from transformers.loss.loss_utils import ForCausalLMLoss
from trl.trainer.utils import selective_log_softmax

from paperlab.papers.advprompter import ModelSize, build_llama, continuation_loss

PROMPTS = [[1, 5, 6, 7], [1, 8, 9, 10]]
CONTS = [[11, 12, 13], [14, 15]]


def _model():
    torch.manual_seed(0)
    return build_llama(32, ModelSize(dim=16, n_layers=1, n_heads=2, max_seq_len=16)).eval()


def _reference_nll(model, weights):
    """Per-row mean of -log p(continuation token) via TRL's selective_log_softmax."""
    out = []
    for p, c in zip(PROMPTS, CONTS, strict=True):
        ids = torch.tensor([p + c])
        logits = model(ids[:, :-1])[:, len(p) - 1 :]
        logp = selective_log_softmax(logits, torch.tensor([c]))[0]
        w = torch.tensor([weights(t) for t in range(1, len(c) + 1)])
        out.append(-(logp * w).sum() / len(c))
    return torch.stack(out)


def test_continuation_loss_matches_trl_log_probs():
    model = _model()
    with torch.no_grad():
        ours = continuation_loss(model, PROMPTS, CONTS)
        ref = _reference_nll(model, lambda t: 1.0)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)


def test_reweighted_loss_weights_token_t_by_one_over_t():
    model = _model()
    with torch.no_grad():
        ours = continuation_loss(model, PROMPTS, CONTS, reweight=True)
        ref = _reference_nll(model, lambda t: 1.0 / t)
        plain = continuation_loss(model, PROMPTS, CONTS)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    assert bool((ours < plain).all())


def test_single_row_loss_matches_transformers_causal_lm_loss():
    model = _model()
    p, c = PROMPTS[0], CONTS[0]
    ids = torch.tensor([p + c])
    labels = ids.clone()
    labels[0, : len(p)] = -100  # the prompt is not trained on
    with torch.no_grad():
        ref = ForCausalLMLoss(model(ids), labels, vocab_size=32)
        ours = continuation_loss(model, [p], [c])[0]
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)


def test_loss_ignores_right_padding_of_other_rows():
    model = _model()
    with torch.no_grad():
        both = continuation_loss(model, PROMPTS, CONTS)
        alone = continuation_loss(model, PROMPTS[1:], CONTS[1:])
    torch.testing.assert_close(both[1:], alone, rtol=1e-5, atol=1e-6)
