"""`paperlab serve` against the official `openai` client, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import openai
import pytest
import torch
from llm_helpers import BOS, make_tiny_models, user

from paperlab.core.artifacts import ArtifactCache
from paperlab.core.data.text import ByteTokenizer
from paperlab.core.llm.chat import ChatModelInfo, render_chat
from paperlab.core.llm.local import LocalServer, serve_chat_models, trained_chat_zoo
from paperlab.core.llm.tiny import load_chat_model

TOK = ByteTokenizer(special_tokens=True)


@pytest.fixture(scope="module")
def sdk(llm_server):
    with openai.OpenAI(base_url=llm_server.base_url, api_key="x", max_retries=0) as client:
        yield client


@pytest.fixture(scope="module")
def m0(tiny_model_dirs):
    model, _ = load_chat_model(tiny_model_dirs[0])
    return model


@torch.inference_mode()
def direct_logprobs(model, ids):
    """log p(ids[i] | ids[:i]) for i >= 1, by one plain forward pass (no KV cache)."""
    lp = torch.log_softmax(model(torch.tensor([ids]))[0].float(), dim=-1)
    return [float(lp[i - 1, ids[i]]) for i in range(1, len(ids))]


def token_id(entry) -> int:
    """The id of a chat logprob entry: its byte, or <N> for a special token."""
    return entry.bytes[0] if entry.bytes else int(entry.token.strip("<>"))


def test_models_lists_ids(sdk):
    assert sorted(m.id for m in sdk.models.list()) == ["m0", "m1"]


def test_chat_returns_text_usage_and_finish_reason(sdk):
    r = sdk.chat.completions.create(model="m0", messages=user("hi"), max_tokens=5)
    choice = r.choices[0]
    assert isinstance(choice.message.content, str)
    assert choice.message.role == "assistant"
    assert choice.finish_reason in ("stop", "length")
    n_prompt = len(TOK.encode(render_chat(user("hi")), bos=True))
    assert r.usage.prompt_tokens == n_prompt
    assert 0 <= r.usage.completion_tokens <= 5
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    if choice.finish_reason == "length":
        assert r.usage.completion_tokens == 5


def test_temperature_zero_is_deterministic(sdk):
    texts = {
        sdk.chat.completions.create(model="m0", messages=user("same"), max_tokens=12, temperature=0)
        .choices[0]
        .message.content
        for _ in range(3)
    }
    assert len(texts) == 1


def test_seed_makes_sampling_reproducible(sdk):
    def sample(seed):
        return (
            sdk.chat.completions.create(
                model="m0", messages=user("x"), max_tokens=24, temperature=1.0, seed=seed
            )
            .choices[0]
            .message.content
        )

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)  # near-uniform model: 24 tokens never coincide


def test_greedy_chat_logprob_is_max_of_top(sdk):
    r = sdk.chat.completions.create(
        model="m0",
        messages=user("q"),
        max_tokens=6,
        temperature=0,
        logprobs=True,
        top_logprobs=3,
    )
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens > 0
    for entry in content:
        assert len(entry.top_logprobs) == 3
        tops = [t.logprob for t in entry.top_logprobs]
        assert tops == sorted(tops, reverse=True)
        assert entry.logprob == max(tops)
        assert token_id(entry.top_logprobs[0]) == token_id(entry)


def test_chat_logprobs_match_torch(sdk, m0):
    msgs = user("compare me")
    r = sdk.chat.completions.create(
        model="m0",
        messages=msgs,
        max_tokens=8,
        temperature=1.0,
        seed=3,
        logprobs=True,
        top_logprobs=1,
    )
    prompt = TOK.encode(render_chat(msgs), bos=True)
    generated = [token_id(e) for e in r.choices[0].logprobs.content]
    assert generated
    expected = direct_logprobs(m0, prompt + generated)[len(prompt) - 1 :]
    served = [e.logprob for e in r.choices[0].logprobs.content]
    assert served == pytest.approx(expected, abs=1e-4)


def test_raw_completion_echo_returns_prompt_tokens_first(sdk, m0):
    prompt = "The cat"
    r = sdk.completions.create(
        model="m0", prompt=prompt, max_tokens=3, temperature=0, logprobs=2, echo=True
    )
    choice = r.choices[0]
    lp = choice.logprobs
    n_prompt = len(prompt)  # bytes after the BOS, which has no log-probability
    assert r.usage.prompt_tokens == n_prompt + 1
    assert len(lp.tokens) == n_prompt + r.usage.completion_tokens
    assert lp.tokens[:n_prompt] == list(prompt)
    assert choice.text.startswith(prompt)
    assert all(len(top) <= 2 for top in lp.top_logprobs)
    ids = TOK.encode(prompt, bos=True)
    assert ids[0] == BOS
    expected = direct_logprobs(m0, ids)
    assert lp.token_logprobs[:n_prompt] == pytest.approx(expected, abs=1e-4)


def test_unknown_model_is_404(sdk):
    with pytest.raises(openai.NotFoundError, match="nope"):
        sdk.chat.completions.create(model="nope", messages=user("hi"), max_tokens=2)


def test_prompt_longer_than_context_is_400(sdk):
    with pytest.raises(openai.BadRequestError, match="context"):
        sdk.completions.create(model="m0", prompt="a" * 300, max_tokens=2)
    with pytest.raises(openai.BadRequestError, match="context"):
        sdk.chat.completions.create(model="m0", messages=user("a" * 300), max_tokens=2)


def test_n_returns_that_many_choices(sdk):
    r = sdk.chat.completions.create(
        model="m1", messages=user("two"), max_tokens=8, temperature=1.0, seed=0, n=2
    )
    assert [c.index for c in r.choices] == [0, 1]
    assert r.choices[0].message.content != r.choices[1].message.content
    assert 0 < r.usage.completion_tokens <= 2 * 8


def test_chat_streams_the_same_reply_in_server_sent_events(sdk):
    """stream=True: a role chunk, content deltas that add up to the non-streamed reply (same
    seed), a finish reason, and the usage chunk when asked for."""
    kw = dict(model="m0", messages=user("stream"), max_tokens=20, temperature=1.0, seed=3)
    whole = sdk.chat.completions.create(**kw)
    chunks = list(
        sdk.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True})
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == whole.choices[0].finish_reason and not any(finishes[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump() == whole.usage.model_dump()
    assert all(c.object == "chat.completion.chunk" for c in chunks)


def test_completion_streams_and_holds_back_a_stop_string(sdk):
    base = dict(model="m1", prompt="abc", max_tokens=30, temperature=1.0, seed=5)
    full = sdk.completions.create(**base).choices[0].text
    stop = full[10:12]  # a stop string the reply meets (two characters: held back, then cut)
    whole = sdk.completions.create(**base, stop=[stop]).choices[0]
    parts = list(sdk.completions.create(**base, stop=[stop], stream=True))
    assert "".join(c.choices[0].text for c in parts) == whole.text
    assert stop not in whole.text and parts[-1].choices[0].finish_reason == whole.finish_reason


def test_streamed_text_never_sends_half_a_character_or_a_stop_prefix():
    from paperlab.core.llm.server import settled_text

    assert settled_text("ab\ufffd", []) == "ab"  # the UTF-8 character may still complete
    assert settled_text("abc EN", ["END"]) == "abc "  # "EN" may become the stop string
    assert settled_text("abc E", ["END", "Ex"]) == "abc "
    assert settled_text("abc", ["END"]) == "abc"


def test_model_by_id_and_request_caps(sdk):
    assert sdk.models.retrieve("m0").id == "m0"
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("nope")
    with pytest.raises(openai.BadRequestError, match="n <= 16"):
        sdk.chat.completions.create(model="m0", messages=user("x"), max_tokens=2, n=17)
    with pytest.raises(openai.BadRequestError, match="top_logprobs"):
        sdk.chat.completions.create(
            model="m0", messages=user("x"), max_tokens=2, logprobs=True, top_logprobs=21
        )
    with pytest.raises(openai.BadRequestError, match="stream"):
        sdk.chat.completions.create(
            model="m0", messages=user("x"), max_tokens=2, logprobs=True, stream=True
        )


def test_a_streamed_generation_stops_when_its_client_goes_away(tmp_path):
    import http.client
    import json
    import time

    with LocalServer([_long_model(tmp_path)]) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        body = {"model": "long", "messages": user("go"), "max_tokens": 4000, "stream": True}
        body["temperature"] = 0  # _long_model's greedy reply never ends
        headers = {"content-type": "application/json"}
        conn.request("POST", "/v1/chat/completions", json.dumps(body), headers)
        response = conn.getresponse()
        assert response.status == 200
        for _ in range(6):  # the role chunk and a few deltas ("data: ..." and a blank line)
            response.fp.readline()
        conn.sock.close()
        conn.close()
        time.sleep(1.0)
        before = server.stats()["streamed_tokens"]
        time.sleep(1.0)
        assert server.stats()["streamed_tokens"] == before < 4000


# -- trained chat models served for one run, through the run's artifact cache ------------------


def test_local_server_stop_removes_its_scratch_folder(tiny_model_dirs):
    server = LocalServer(tiny_model_dirs[:1]).start()
    scratch = server.scratch_dir
    assert scratch is not None and (scratch / "port").is_file()
    server.stop()
    assert server.proc.poll() is not None
    assert not scratch.exists()
    server.stop()  # idempotent


def test_zoo_is_trained_once_per_spec_and_released_with_its_server(tmp_path):
    trained = []

    def train(folder):
        trained.append(folder)
        return make_tiny_models(folder / "zoo", ids=("a", "b"))

    disk = tmp_path / "disk"
    with ArtifactCache(disk) as cache:
        dirs = trained_chat_zoo(cache, "test-zoo", {"size": 1}, train)
        assert [d.name for d in dirs] == ["a", "b"]
        assert trained_chat_zoo(cache, "test-zoo", {"size": 1}, train) == dirs  # memory
        server = serve_chat_models(cache, dirs)
        assert server.model_ids == ["a", "b"]
        proc, scratch, folder = server.proc, server.scratch_dir, trained[0]
        assert proc.poll() is None
    # released: the server stopped, its scratch folder and the training folder removed
    assert proc.poll() is not None and not scratch.exists() and not folder.exists()
    assert len(trained) == 1
    with ArtifactCache(disk) as cache:  # a later run: the disk copy, no training
        again = trained_chat_zoo(cache, "test-zoo", {"size": 1}, train)
        assert len(trained) == 1 and cache.hits["disk"] == 1
        assert [d.name for d in again] == ["a", "b"]
        assert ChatModelInfo.load(again[0]).model_id == "a"
        trained_chat_zoo(cache, "test-zoo", {"size": 2}, train)  # another spec: trained
        assert len(trained) == 2


def _long_model(tmp_path):
    """A random model whose greedy reply never ends: EOS's logit is 0 while one of two opposite
    rows ('a', 'b') is always >= 0, so greedy decoding runs to max_tokens."""
    from paperlab.core.llama import Llama, LlamaConfig
    from paperlab.core.llm.tiny import save_chat_model

    config = LlamaConfig(vocab_size=259, dim=64, n_layers=2, n_heads=2, max_seq_len=4096)
    torch.manual_seed(0)
    model = Llama(config)
    with torch.no_grad():
        w = model.lm_head.weight
        w[257] = 0.0  # EOS
        w[ord("b")] = -w[ord("a")]
    return save_chat_model(model, tmp_path / "long", "long")


def _post_long(port: int, timeout: float = 60):
    import http.client
    import json

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    body = {"model": "long", "messages": user("go"), "max_tokens": 4000, "temperature": 0}
    conn.request(
        "POST", "/v1/chat/completions", json.dumps(body), {"content-type": "application/json"}
    )
    return conn


def test_a_plain_generation_stops_when_its_client_goes_away(tmp_path):
    import time

    with LocalServer([_long_model(tmp_path)]) as server:
        conn = _post_long(server.port)
        time.sleep(1.0)  # the generation is running in a worker thread
        conn.sock.close()
        conn.close()
        for _ in range(50):
            if server.stats().get("cancelled_generations"):
                break
            time.sleep(0.1)
        assert server.stats().get("cancelled_generations") == 1


def test_sigterm_stops_running_generations_and_exits(tmp_path):
    """The waiting client gets a 503 (its generation was stopped at the next token, not cut
    off by a timeout) and the server process ends."""
    import json
    import subprocess
    import time

    server = LocalServer([_long_model(tmp_path)]).start()
    try:
        conn = _post_long(server.port)
        time.sleep(1.0)
        server.proc.terminate()
        response = conn.getresponse()
        assert response.status == 503
        assert "server is exiting" in json.loads(response.read())["error"]["message"]
        assert server.proc.wait(timeout=30) is not None
    except subprocess.TimeoutExpired:
        raise AssertionError("paperlab serve did not exit after SIGTERM") from None
    finally:
        server.stop()
