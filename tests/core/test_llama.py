import pytest
import torch

from paperlab.core.generate import generate, logits_to_probs, sample_next
from paperlab.core.kv_cache import KVCache
from paperlab.core.llama import DecoderLayer, Llama, LlamaConfig

MHA = dict(vocab_size=256, dim=64, n_layers=3, n_heads=4, max_seq_len=128, ffn_hidden=96)
GQA = dict(MHA, n_kv_heads=2)


def make_model(seed=0, **overrides) -> Llama:
    torch.manual_seed(seed)
    return Llama(LlamaConfig(**{**MHA, **overrides})).eval()


def ids(B, T, seed=1):
    return torch.randint(0, 256, (B, T), generator=torch.Generator().manual_seed(seed))


def test_config_defaults_and_errors():
    config = LlamaConfig()
    assert (config.n_kv_heads, config.ffn_hidden, config.head_dim) == (8, 768, 32)
    with pytest.raises(ValueError, match="n_kv_heads"):
        LlamaConfig(n_heads=8, n_kv_heads=3)
    with pytest.raises(ValueError, match="unknown keys"):
        LlamaConfig.from_dict({"dim": 64, "n_layer": 2})


@pytest.mark.parametrize("kind", [MHA, GQA], ids=["mha", "gqa"])
def test_kv_cache_decode_equals_full_forward(kind):
    model = make_model(**kind)
    x = ids(2, 24)
    with torch.no_grad():
        full = model(x)
        cache = model.new_cache(batch_size=2)
        steps = [model(x[:, t : t + 1], cache=cache) for t in range(x.shape[1])]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)
    assert cache.length == 24


@pytest.mark.parametrize("kind", [MHA, GQA], ids=["mha", "gqa"])
def test_multi_token_append_and_truncate(kind):
    model = make_model(**kind)
    x = ids(2, 20)
    with torch.no_grad():
        full = model(x)
        cache = model.new_cache(batch_size=2, max_len=4)  # small: forces the buffers to grow
        first = model(x[:, :10], cache=cache)
        three = model(x[:, 10:13], cache=cache)  # 3 tokens appended at once (causal offset)
        torch.testing.assert_close(torch.cat([first, three], 1), full[:, :13], atol=1e-5, rtol=0)
        cache.truncate(11)  # reject the last two, as a speculative decoder would
        rest = model(x[:, 11:], cache=cache)
        torch.testing.assert_close(rest, full[:, 11:], atol=1e-5, rtol=0)
        fresh = model.new_cache(batch_size=2)
        model(x[:, :11], cache=fresh)
        assert torch.equal(fresh.k[0][:, :, :11], cache.k[0][:, :, :11])


def test_cache_clone_is_independent():
    model = make_model()
    x = ids(1, 8)
    with torch.no_grad():
        cache = model.new_cache()
        model(x[:, :5], cache=cache)
        copy = cache.clone()
        a = model(x[:, 5:], cache=cache)
        b = model(x[:, 5:], cache=copy)
    assert torch.equal(a, b) and cache.length == copy.length == 8


def test_layer_subsets_with_separate_progress():
    """Kangaroo's pattern: shallow layers run ahead token by token, deep layers catch up over
    the stored hidden states in one call; a second cache may cover only some layers."""
    model = make_model(n_layers=4)
    x = ids(1, 12)
    with torch.no_grad():
        full_logits, full_hidden = model(x, return_hidden=True)
        cache = model.new_cache()
        h = model.run_layers(model.embed(x[:, :8]), 0, 2, cache=cache)
        model.run_layers(h, 2, None, cache=cache)
        shallow = [
            model.run_layers(model.embed(x[:, t : t + 1]), 0, 2, cache=cache)
            for t in (8, 9, 10, 11)
        ]
        assert (cache.seq_len(1), cache.seq_len(2)) == (12, 8)
        deep = model.run_layers(torch.cat(shallow, 1), 2, None, cache=cache)
        torch.testing.assert_close(model.head(deep), full_logits[:, 8:], atol=1e-5, rtol=0)
        torch.testing.assert_close(model.head(full_hidden), full_logits)

        draft_cache = model.new_cache(layers=range(0, 2))
        assert draft_cache.layers == [0, 1]
        h = model.run_layers(model.embed(x), 0, 2, cache=draft_cache)
        torch.testing.assert_close(
            model.head(model.run_layers(h, 2)), full_logits, atol=1e-5, rtol=0
        )


def test_extra_blocks_share_the_cache():
    """MTP's pattern: extra blocks (cache slots after the trunk's) run on the trunk output."""
    model = make_model()
    n = model.config.n_layers
    extra = torch.nn.ModuleList([DecoderLayer(model.config, layer_idx=n)]).eval()
    x = ids(1, 10)
    with torch.no_grad():
        trunk = model.run_layers(model.embed(x))
        full = model.head(model.run_layers(trunk, layers=extra))
        cache = model.new_cache(layers=range(n + 1))
        steps = []
        for t in range(10):
            h = model.run_layers(model.embed(x[:, t : t + 1]), cache=cache)
            steps.append(model.head(model.run_layers(h, cache=cache, layers=extra)))
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=0)
    assert cache.seq_len(n) == 10


def test_padding_mask_forward_matches_unpadded():
    model = make_model(**GQA)
    x = ids(1, 10)
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), x], 1)
    mask = torch.tensor([[0, 0, 0] + [1] * 10])
    with torch.no_grad():
        ref = model(x)
        out = model(padded, attention_mask=mask)
    assert not out.isnan().any()
    torch.testing.assert_close(out[:, 3:], ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "prompts, max_new_tokens, says",
    [
        ([[1, 2]], -1, "max_new_tokens must be >= 0"),
        ([[1, 2]], 2.0, "max_new_tokens must be an integer"),
        ([[1, 2]], True, "max_new_tokens must be an integer"),
        ([], 2, "non-empty list of non-empty token lists"),
        ([[1, 2], []], 2, "non-empty list of non-empty token lists"),
        (torch.tensor([1, 2, 3]), 2, r"\(batch, length\) tensor .* got shape \(3,\)"),
        (torch.zeros(1, 0, dtype=torch.long), 2, "both > 0"),
        (torch.ones(1, 3), 2, "token ids, got dtype torch.float32"),
        ([[1, 10_000]], 2, r"token id 10000 is outside the vocabulary \[0, "),
        ([[-1, 2]], 2, "token id -1 is outside"),
    ],
)
def test_generate_refuses_what_it_cannot_decode(prompts, max_new_tokens, says):
    model = make_model(**GQA)
    with pytest.raises(ValueError, match=says):
        generate(model, prompts, max_new_tokens=max_new_tokens)


def test_generate_reaches_the_context_limit_exactly():
    """The last new token is never fed back: a prompt of T and max_seq_len - T + 1 new tokens
    fit, and the last one is the greedy argmax of the full forward at the limit."""
    model = make_model(**{**GQA, "max_seq_len": 8})
    prompt = torch.tensor([[3, 1, 4, 1]])
    out = generate(model, prompt, max_new_tokens=5)
    assert out.shape == (1, 9)
    with torch.no_grad():
        last = model(out[:, :8])[:, -1].argmax(-1)
    assert int(last) == int(out[0, 8])
    with pytest.raises(ValueError, match="exceeds max_seq_len=8"):
        generate(model, prompt, max_new_tokens=6)


def test_left_padded_batch_generate_equals_single():
    model = make_model(**GQA)
    prompts = [[5, 6, 7, 8, 9, 10, 11], [1, 2], [40, 41, 42, 43]]
    batched = generate(model, prompts, max_new_tokens=12)
    alone = [generate(model, [p], max_new_tokens=12)[0] for p in prompts]
    assert batched == alone and all(len(row) == 12 for row in batched)
    # the tensor form with an explicit mask gives the same tokens
    input_ids = torch.tensor([[0, 0, 0, 1, 2], [3, 4, 5, 6, 7]])
    mask = torch.tensor([[0, 0, 0, 1, 1], [1, 1, 1, 1, 1]])
    out = generate(model, input_ids, attention_mask=mask, max_new_tokens=6)
    assert out.shape == (2, 11)
    assert out[0, 5:].tolist() == generate(model, [[1, 2]], max_new_tokens=6)[0]
    assert out[1, 5:].tolist() == generate(model, [[3, 4, 5, 6, 7]], max_new_tokens=6)[0]


def test_sampling_reproducible_and_top_k_1_is_greedy():
    model = make_model()
    prompt = [[1, 2, 3]]

    def sample(seed, **kw):
        g = torch.Generator().manual_seed(seed)
        return generate(model, prompt, max_new_tokens=16, temperature=1.0, generator=g, **kw)

    assert sample(0) == sample(0)
    assert sample(0, top_p=0.9, top_k=50) == sample(0, top_p=0.9, top_k=50)
    assert sample(0) != sample(1)
    assert sample(3, top_k=1) == generate(model, prompt, max_new_tokens=16)


def test_logits_to_probs_rules():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    torch.testing.assert_close(logits_to_probs(logits), torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    top2 = logits_to_probs(logits, top_k=2)
    torch.testing.assert_close(top2, torch.tensor([[0.625, 0.375, 0.0, 0.0]]))
    nucleus = logits_to_probs(logits, top_p=0.8)  # 0.5 + 0.3 reaches 0.8: two tokens kept
    torch.testing.assert_close(nucleus, torch.tensor([[0.625, 0.375, 0.0, 0.0]]))
    assert (logits_to_probs(logits, top_p=0.81)[0, 2] > 0).item()
    hot = logits_to_probs(logits, temperature=100.0)
    assert hot.max() - hot.min() < 0.01
    assert sample_next(logits).item() == 0
    with pytest.raises(ValueError, match="top_p"):
        logits_to_probs(logits, top_p=0.0)


def test_stop_tokens():
    model = make_model()
    greedy = generate(model, [[1, 2, 3], [9, 8]], max_new_tokens=10)
    stop = greedy[0][3]
    first = greedy[0].index(stop)
    out = generate(model, [[1, 2, 3], [9, 8]], max_new_tokens=10, stop_tokens=[stop])
    assert out[0] == greedy[0][: first + 1]
    other = greedy[1][: greedy[1].index(stop) + 1] if stop in greedy[1] else greedy[1]
    assert out[1] == other
    tensor_out = generate(model, torch.tensor([[1, 2, 3]]), max_new_tokens=10, stop_tokens=[stop])
    assert tensor_out[0, 3:].tolist() == greedy[0][: first + 1]


@pytest.mark.parametrize("tie", [False, True])
def test_save_load_round_trip(tmp_path, tie):
    model = make_model(tie_embeddings=tie, **{k: GQA[k] for k in ("n_kv_heads",)})
    file = model.save_pretrained(tmp_path / "ckpt")
    assert file.name == "model.safetensors" and not list(file.parent.glob(".*tmp*"))
    loaded = Llama.from_pretrained(tmp_path / "ckpt")
    assert loaded.config == model.config
    assert (loaded.lm_head.weight is loaded.embed_tokens.weight) == tie
    x = ids(2, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    with pytest.raises(FileNotFoundError, match="save_pretrained"):
        Llama.from_pretrained(tmp_path / "missing")


def test_reglu_ffn_is_sparse_and_exact():
    """hidden_act="relu" (ReGLU): neurons with a non-positive gate contribute exactly zero."""
    model = make_model(**MHA, hidden_act="relu")
    mlp = model.layers[0].mlp
    x = torch.randn(3, 5, model.config.dim)
    gate = mlp.gate_proj(x)
    active = gate > 0
    assert 0.2 < active.float().mean() < 0.8  # about half the neurons fire at init
    with torch.no_grad():
        masked = (torch.relu(gate) * mlp.up_proj(x) * active) @ mlp.down_proj.weight.T
        torch.testing.assert_close(mlp(x), masked)
    with pytest.raises(ValueError, match="hidden_act"):
        LlamaConfig(hidden_act="gelu")


def test_cache_for_subset_rejects_uncovered_layer():
    cache = KVCache(batch_size=1, n_kv_heads=2, head_dim=8, layers=[2, 3], max_len=4)
    assert cache.seq_len() == 0
    with pytest.raises(KeyError):
        cache.update(0, torch.zeros(1, 2, 1, 8), torch.zeros(1, 2, 1, 8))


# -- reference: Hugging Face transformers on the same weights ------------------------------------


@pytest.mark.parametrize(
    "kind",
    [dict(MHA, rope_theta=500.0), dict(GQA, tie_embeddings=True), dict(MHA, hidden_act="relu")],
)
def test_hf_logits_match_and_round_trip(kind):
    pytest.importorskip("transformers")
    from paperlab.core.hf import from_hf_model, to_hf_model

    model = make_model(**kind)
    hf_model = to_hf_model(model)
    x = ids(2, 40)
    with torch.no_grad():
        ours = model(x)
        torch.testing.assert_close(hf_model(x).logits, ours, atol=1e-4, rtol=0)
        back = from_hf_model(hf_model)
        assert back.config == model.config
        assert torch.equal(back(x), ours)


def test_hf_greedy_generate_matches():
    pytest.importorskip("transformers")
    from paperlab.core.hf import to_hf_model

    model = make_model(**GQA)
    hf_model = to_hf_model(model)
    for prompt in ([[1, 2, 3]], [[200, 17, 17, 42, 9, 0, 255]], [[65]]):
        x = torch.tensor(prompt)
        theirs = hf_model.generate(x, max_new_tokens=20, do_sample=False, min_new_tokens=20)
        assert torch.equal(generate(model, x, max_new_tokens=20), theirs)
    # a left-padded batch: HF's mask and position handling agrees with ours
    x = torch.tensor([[0, 0, 0, 1, 2], [3, 4, 5, 6, 7], [0, 9, 9, 9, 9]])
    mask = torch.tensor([[0, 0, 0, 1, 1], [1, 1, 1, 1, 1], [0, 1, 1, 1, 1]])
    theirs = hf_model.generate(
        x,
        attention_mask=mask,
        max_new_tokens=15,
        min_new_tokens=15,
        do_sample=False,
        pad_token_id=0,
    )
    assert torch.equal(generate(model, x, attention_mask=mask, max_new_tokens=15), theirs)
