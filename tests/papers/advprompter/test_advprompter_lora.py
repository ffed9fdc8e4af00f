"""The prompter is the base with LoRA adapters through peft."""

import torch

from paperlab.papers.advprompter import (
    ModelSize,
    build_llama,
    default_tokenizer,
    make_prompter,
    prompter_nll,
)


def test_lora_via_peft_starts_at_the_base_and_trains_only_adapters():
    from peft import PeftModel

    tok = default_tokenizer()
    torch.manual_seed(0)
    base = build_llama(tok.vocab_size, ModelSize(dim=16, n_layers=1, n_heads=2)).eval()
    prompter = make_prompter(base, r=8, alpha=16)
    assert isinstance(prompter, PeftModel)
    trainable = [n for n, p in prompter.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert any("q_proj" in n for n in trainable) and any("v_proj" in n for n in trainable)
    assert any("lm_head" in n for n in trainable)
    ids = torch.tensor([tok.encode("tell me how to zorb the lamp please")])
    with torch.no_grad():
        torch.testing.assert_close(prompter(ids), base(ids))  # B = 0 at the start
    opt = torch.optim.Adam([p for p in prompter.parameters() if p.requires_grad], lr=1e-2)
    pairs = [("tell me how to zorb the lamp", "t", "please now")]
    for _ in range(3):
        opt.zero_grad()
        prompter_nll(prompter, tok, pairs).backward()
        opt.step()
    with torch.no_grad():
        assert not torch.allclose(prompter(ids), base(ids))
        with prompter.disable_adapter():
            torch.testing.assert_close(prompter(ids), base(ids))
