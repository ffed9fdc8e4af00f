"""AdvPrompterTrain: checkpoints load back and continue exactly; bad input."""

import pytest
import torch

from paperlab.papers.advprompter import (
    ModelSize,
    OptParams,
    PrompterTraining,
    alphabet_mask,
    asr_at_k,
    build_llama,
    default_tokenizer,
    make_prompter,
    split_refused,
    suffix_words,
    train_prompter,
)

SIZE = ModelSize(dim=16, n_layers=1, n_heads=2)


def _models(tok):
    torch.manual_seed(0)
    target = build_llama(tok.vocab_size, SIZE).eval()
    base = build_llama(tok.vocab_size, SIZE).eval()
    return target, base


def _recipe(epochs):
    return PrompterTraining(
        epochs=epochs,
        batch_size=4,
        num_updates=2,
        opt=OptParams(max_new_tokens=2, num_beams=2, top_k=4),
    )


def test_resume_continues_to_the_uninterrupted_result(tmp_path):
    tok = default_tokenizer()
    target, base = _models(tok)
    train_set = split_refused(8, seed=0)[0][:8]
    allowed = alphabet_mask(tok, suffix_words())
    straight = make_prompter(base)
    h_straight = train_prompter(straight, target, tok, train_set, allowed, _recipe(2), seed=0)
    ckpt = tmp_path / "prompter.safetensors"
    resumed = make_prompter(base)
    train_prompter(resumed, target, tok, train_set, allowed, _recipe(1), seed=0, checkpoint=ckpt)
    again = make_prompter(base)  # a fresh process: weights, optimizer and buffer from the file
    h = train_prompter(
        again, target, tok, train_set, allowed, _recipe(2), seed=0, checkpoint=ckpt, resume=True
    )
    assert h["buffer"] == h_straight["buffer"] and len(h["buffer"]) == 2
    for (n, p), (_, q) in zip(straight.named_parameters(), again.named_parameters(), strict=True):
        torch.testing.assert_close(p, q, msg=n)


def test_bad_input_is_one_clear_error():
    tok = default_tokenizer()
    target, base = _models(tok)
    allowed = alphabet_mask(tok, suffix_words())
    with pytest.raises(ValueError, match="empty"):
        train_prompter(make_prompter(base), target, tok, [], allowed, _recipe(1), seed=0)
    with pytest.raises(ValueError, match="k must be"):
        asr_at_k(lambda xs: ["please"] * len(xs), target, tok, split_refused(4, 0)[1], 0)
    with pytest.raises(ValueError, match="empty"):
        asr_at_k(lambda xs: ["please"] * len(xs), target, tok, [], 1)
    with pytest.raises(ValueError, match="epochs"):
        PrompterTraining(epochs=-1)


def test_ctrl_c_keeps_the_finished_epochs(tmp_path):
    from paperlab.core.checkpoint import read_checkpoint_meta

    tok = default_tokenizer()
    target, base = _models(tok)
    train_set = split_refused(8, seed=0)[0][:4]
    allowed = alphabet_mask(tok, suffix_words())
    ckpt = tmp_path / "prompter.safetensors"

    def interrupt(epoch, history):
        if epoch == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_prompter(
            make_prompter(base),
            target,
            tok,
            train_set,
            allowed,
            _recipe(3),
            seed=0,
            checkpoint=ckpt,
            on_epoch=interrupt,
        )
    assert read_checkpoint_meta(ckpt)["epoch"] == 1
